// Allocator settings for the training process (see MemoryPolicy.swift in Tensors).
#include "CTensorKernels.h"
#include <stdlib.h>  // defines __GLIBC__ with glibc
#if defined(__GLIBC__)
#include <malloc.h>
#endif

int tk_retain_freed_memory(void) {
#if defined(__GLIBC__)
    // No mmap for large blocks (they would be unmapped on free and faulted in again), never trim the heap top.
    int ok = mallopt(M_MMAP_MAX, 0);
    ok &= mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
    ok &= mallopt(M_TOP_PAD, 64 << 20);
    // One arena: a secondary arena (a thread's) grows in heaps of at most 64 MiB, and glibc serves a larger block
    // there with its own mapping whatever M_MMAP_MAX says, unmapped on free: a 100 MB model built on a worker thread
    // was faulted in afresh every round (perf, 2026-12-08: 14 % of a federated client's CPU in clear_page).
    ok &= mallopt(M_ARENA_MAX, 1);
    return ok;
#else
    return 0;
#endif
}

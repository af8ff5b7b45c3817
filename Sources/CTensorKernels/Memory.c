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
    return ok;
#else
    return 0;
#endif
}

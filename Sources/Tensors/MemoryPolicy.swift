import CTensorKernels

/// How the process's allocator treats the large, short-lived buffers of a training step.
public enum MemoryPolicy {
    /// Keeps freed memory in the process for reuse (glibc: no `mmap` for large blocks, no trimming of the heap top).
    ///
    /// Every training step allocates and frees the same multi-megabyte activations and gradients. By default glibc
    /// serves blocks above its mmap threshold (at most 32 MB) with fresh mappings and unmaps them on free, so each one
    /// is page-faulted and zeroed by the kernel again on the next step: measured 10–20 % of a `unet3d` step in the
    /// kernel's fault path (perf, 2026-11-21). Call once at process start, before the first large allocation; the
    /// process then keeps its peak heap size. One arena for every thread: a thread's own arena serves blocks larger
    /// than its 64 MiB heaps with fresh mappings whatever the mmap setting. No effect on other C libraries.
    /// - Returns: whether the setting was applied (false with a C library other than glibc).
    @discardableResult
    public static func retainFreedMemory() -> Bool {
        tk_retain_freed_memory() != 0
    }
}

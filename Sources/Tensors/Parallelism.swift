import CBLAS
import Dispatch
import Synchronization

/// How many threads the kernels use, shared between OpenBLAS and Tessera's own loops so the two never
/// oversubscribe the cores.
///
/// With `threads > 1` and a batch of at least two images, a convolution runs its images on `threads` workers, each
/// calling single-threaded OpenBLAS on its own image (coarse-grained, no barrier per GEMM); with one image the GEMM
/// itself runs on `threads` OpenBLAS threads.
public enum Parallelism {
    private static let state = Mutex((threads: 1, blasThreads: -1, columnBudget: 1 << 21))

    /// Floats one worker's im2col tile may take (default 2M = 8 MB): convolutions lower a tile of output rows at a
    /// time instead of the whole image, which for 3-D inputs would take hundreds of MB per call.
    public static var columnBudget: Int {
        get { state.withLock { $0.columnBudget } }
        set { state.withLock { $0.columnBudget = max(1, newValue) } }
    }

    /// Worker threads for the kernels (default 1). Setting it also sizes OpenBLAS's pool.
    public static var threads: Int {
        get { state.withLock { $0.threads } }
        set { state.withLock { $0.threads = max(1, newValue) } }
    }

    /// Sets OpenBLAS's thread count only when it changes (the call is not free).
    static func useBLASThreads(_ count: Int) {
        let change = state.withLock { s -> Bool in
            guard s.blasThreads != count else { return false }
            s.blasThreads = count
            return true
        }
        if change { openblas_set_num_threads(Int32(count)) }
    }

    /// Runs `body(worker, workers)` on `workers = min(threads, items)` threads; OpenBLAS is single-threaded inside
    /// when more than one worker runs, and uses all `threads` otherwise.
    static func forEachWorker(items: Int, _ body: (_ worker: Int, _ workers: Int) -> Void) {
        let workers = min(threads, items)
        if workers <= 1 {
            useBLASThreads(threads)
            body(0, 1)
            return
        }
        useBLASThreads(1)
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in box.value(w, workers) }
        }
    }
}

/// Hands pointers and closures to worker threads; every use partitions the memory by image so no two workers
/// write the same element.
struct UncheckedSendable<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

extension Parallelism {
    /// Runs `body(range)` over `count` elements split into one contiguous range per worker (at most `threads`, and
    /// one below `minimumPerWorker` elements each): for memory-bound pointwise passes. OpenBLAS is not called inside.
    static func forEachRange(count: Int, minimumPerWorker: Int = 1 << 16, _ body: (Range<Int>) -> Void) {
        let workers = max(1, min(threads, count / max(1, minimumPerWorker)))
        if workers <= 1 {
            body(0..<count)
            return
        }
        let chunk = (count + workers - 1) / workers
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let lower = min(count, w * chunk)
                let upper = min(count, lower + chunk)
                if lower < upper { box.value(lower..<upper) }
            }
        }
    }
}

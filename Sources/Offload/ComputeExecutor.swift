import Foundation
import Synchronization

/// Threads of their own for compute-bound work — training epochs, evaluation, loading volumes — so that it never
/// occupies Swift's cooperative pool.
///
/// The cooperative pool has one thread per core. Synchronous work of minutes run on it (an epoch of `Trainer.fit`
/// called from an async function) leaves nothing for the async work beside it: a site's heartbeats, its gRPC calls,
/// the timers of an in-process server. Run such work under this executor's preference instead:
///
/// ```swift
/// let weights = try await withTaskExecutorPreference(ComputeExecutor.shared) { try trainer.fit(…) }
/// ```
///
/// Jobs run in the order they were enqueued on `threadCount` threads; the kernels' own worker threads
/// (`Parallelism.threads`) are separate. Async work awaited inside resumes here too (task executor preference);
/// unstructured tasks started inside do not inherit it.
public final class ComputeExecutor: TaskExecutor, @unchecked Sendable {
    /// One thread per active core, started on first use.
    public static let shared = ComputeExecutor(threadCount: ProcessInfo.processInfo.activeProcessorCount)

    /// The number of threads running jobs.
    public let threadCount: Int

    // Jobs waiting for a thread; `pending` counts them so idle threads sleep instead of spinning.
    private let queue = Mutex(JobQueue())
    private let pending = DispatchSemaphore(value: 0)

    /// An executor of its own, for work that must not queue behind `shared`'s.
    /// - Parameter threadCount: the number of threads, at least 1 (clamped). They run for the rest of the process.
    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        for index in 0..<self.threadCount {
            let thread = Thread { self.work() }
            thread.name = "tessera-compute-\(index)"
            thread.start()
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.withLock { $0.push(job) }
        pending.signal()
    }

    /// A thread's loop: the oldest waiting job, run to its next suspension.
    private func work() {
        while true {
            pending.wait()
            guard let job = queue.withLock({ $0.pop() }) else { continue }
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// A first-in, first-out list of jobs: appended at the back, taken from the front without shifting the rest each
/// time. The taken ones are dropped once they are half the array, so a queue that is never empty (a site busy for
/// months) stays as long as the jobs actually waiting, at an amortised constant cost per job.
private struct JobQueue: ~Copyable {
    private var jobs: [UnownedJob] = []
    private var head = 0

    mutating func push(_ job: UnownedJob) { jobs.append(job) }

    mutating func pop() -> UnownedJob? {
        guard head < jobs.count else { return nil }
        let job = jobs[head]
        head += 1
        if head == jobs.count {
            jobs.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && 2 * head >= jobs.count {
            jobs.removeFirst(head)
            head = 0
        }
        return job
    }
}

/// Blocking calls — waiting for a child process, reading a pipe to its end, `recv` on a socket — run on a thread of
/// their own, never on Swift's cooperative pool (nor on `DispatchQueue.global()`, which on Linux is the same pool):
/// a few such waits would otherwise stop every task of the process.
public enum Blocking {
    /// Runs `body` on a new thread and returns its result. Meant for waits, not for compute (`ComputeExecutor`).
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.name = "tessera-blocking"
            thread.start()
        }
    }
}

extension Blocking {
    /// Reads `handle` (a child's standard output) until a line contains `text`, on a thread of its own.
    /// - Returns: that line, or nil when the stream ends first (the child exited).
    public static func firstLine(of handle: FileHandle, containing text: String) async -> String? {
        await run {
            var buffer = Data()
            while true {
                let data = handle.availableData
                if data.isEmpty { return nil }
                buffer.append(data)
                let lines = String(decoding: buffer, as: UTF8.self).split(separator: "\n")
                if let line = lines.first(where: { $0.contains(text) }) { return String(line) }
            }
        }
    }
}

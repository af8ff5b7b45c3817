import Foundation

/// Prepares the next batches on a background producer while the caller trains on the current one.
///
/// Batches are made by `make(index)` for `index` in `0..<count`, strictly in order and at most `depth` ahead of the
/// caller, so the sequence the caller sees is exactly `make(0), make(1), …` whatever the scheduling: determinism
/// needs only that `make` is a function of its index (draw every random choice, e.g. the patch locations, before
/// creating the prefetcher).
///
/// The producer is a dedicated thread, not a task on Swift's cooperative pool: the training loop is synchronous and
/// waits for the producer, and a synchronous wait on a cooperative-pool task can starve the pool (measured here: with
/// Swift Testing running tests in parallel on 2 cores, every pool thread ended up waiting and nothing ran). A thread
/// of its own always makes progress, from synchronous code or from inside a task.
public final class BatchPrefetcher<Batch: Sendable>: @unchecked Sendable {
    // @unchecked: every mutable property is only touched under `condition`'s lock.
    private let condition = NSCondition()
    private var ready: [Int: Result<Batch, any Error>] = [:]
    private var consumed = 0
    private var cancelled = false
    public let count: Int
    public let depth: Int

    /// Starts producing batch 0 at once.
    /// - Parameters:
    ///   - count: number of batches.
    ///   - depth: batches made ahead of the caller (≥ 1).
    ///   - make: batch `index`; runs on the producer thread.
    public init(count: Int, depth: Int = 1, make: @escaping @Sendable (Int) throws -> Batch) {
        self.count = count
        self.depth = max(1, depth)
        guard count > 0 else { return }
        let thread = Thread { [weak self] in
            for index in 0..<count {
                guard let self, self.waitForRoom(index) else { return }
                let result = Result { try make(index) }
                self.deliver(result, for: index)
            }
        }
        thread.name = "tessera.prefetch"
        thread.start()
    }

    deinit {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks the producer until batch `index` is at most `depth` ahead of the caller; false when cancelled.
    private func waitForRoom(_ index: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !cancelled && index - consumed >= depth { condition.wait() }
        return !cancelled
    }

    private func deliver(_ result: Result<Batch, any Error>, for index: Int) {
        condition.lock()
        ready[index] = result
        condition.broadcast()
        condition.unlock()
    }

    /// The next batch in order, nil after the last; the producer moves on to the following one.
    /// - Throws: whatever `make` threw for this index.
    public func next() throws -> Batch? {
        condition.lock()
        guard consumed < count else {
            condition.unlock()
            return nil
        }
        let index = consumed
        while ready[index] == nil { condition.wait() }
        let result = ready.removeValue(forKey: index)
        consumed += 1
        condition.broadcast()
        condition.unlock()
        return try result?.get()
    }
}

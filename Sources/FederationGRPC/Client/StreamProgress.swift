import FederationCore
import Synchronization

/// A stream's sign of life: the body of `StreamProgress.watch` marks it each time a message is sent or received.
final class StreamProgress: Sendable {
    private let marks = Atomic<Int>(0)

    /// A message went out or came in.
    func mark() { _ = marks.add(1, ordering: .relaxed) }

    fileprivate var count: Int { marks.load(ordering: .relaxed) }

    /// Runs `body` (one streaming call), abandoning it when it marks no progress for `limit`: a deadline on each
    /// message rather than on the whole stream, whose length grows with the model. The check runs every `limit / 4`,
    /// so a stalled stream ends between `limit` and `1.25 · limit` after its last message.
    /// - Throws: `.transient` when the stream stalled (the site retries it); else what `body` throws.
    static func watch<T: Sendable>(
        _ what: String, limit: Duration,
        _ body: @escaping @Sendable (StreamProgress) async throws -> T
    ) async throws -> T {
        let progress = StreamProgress()
        return try await withThrowingTaskGroup(of: WatchOutcome<T>.self) { group in
            group.addTask { .finished(try await body(progress)) }
            group.addTask {
                let step = limit / 4
                var last = -1
                var quiet = 0
                while !Task.isCancelled {
                    do { try await Task.sleep(for: step) } catch { return .watchdogStopped }
                    let now = progress.count
                    quiet = now == last ? quiet + 1 : 0
                    last = now
                    if quiet >= 4 {
                        throw FederationError(
                            .transient,
                            "\(what) stalled: no message for \(limit) "
                                + "(streamProgressTimeout); abandoned, retrying")
                    }
                }
                return .watchdogStopped
            }
            defer { group.cancelAll() }
            while let outcome = try await group.next() {
                if case .finished(let value) = outcome { return value }
            }
            throw CancellationError()
        }
    }
}

/// What ends first in `StreamProgress.watch`: the stream (with its value) or the watchdog (cancelled with it).
private enum WatchOutcome<T: Sendable>: Sendable {
    case finished(T)
    case watchdogStopped
}

import GRPCCore
import Synchronization

/// The server's "stop waiting" signal, fired when its graceful shutdown begins: every call that waits in a service
/// (a long-poll, a job watch) ends then, so the shutdown, which waits for calls in flight, ends too.
final class ServerDrain: Sendable {
    private struct State {
        var fired = false
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    /// Ends every wait, now and from now on.
    func fire() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard !s.fired else { return [] }
            s.fired = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once `fire()` was called, or when the calling task is cancelled.
    func wait() async {
        let id = state.withLock { s -> Int in
            defer { s.nextID += 1 }
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { s -> Bool in
                    if s.fired || Task.isCancelled { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}

extension ServerContext {
    /// Runs `body` until it returns, the call is cancelled (the client reset its stream, or the call's deadline
    /// passed), the server begins its shutdown (`drain`), or `limit` passes.
    ///
    /// grpc-swift marks a call cancelled but does not cancel the handler's task; and when the client resets its
    /// stream before the handler has started, grpc-swift-nio-transport (2.x) never marks it cancelled at all (the
    /// stream's handler is gone by the time the cancellation handle is attached). Hence `limit`: a wait with a client
    /// behind it is bounded by the server's own limit, whatever the client asked (or failed to say) — an orphaned
    /// long-poll cannot wait in the service for ever, nor hold the server's shutdown.
    /// - Throws: `RPCError(.cancelled)` when the call was cancelled first; `RPCError(.unavailable)` when the server
    ///   is shutting down; `RPCError(.deadlineExceeded)` when `limit` passed; else what `body` throws.
    func untilCancelled<T: Sendable>(
        or drain: ServerDrain, atMost limit: Duration? = nil,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let cancellation = self.cancellation
        return try await withThrowingTaskGroup(of: WaitOutcome<T>.self) { group in
            group.addTask { .finished(try await body()) }
            group.addTask {
                try? await cancellation.cancelled  // returns early when the group is cancelled
                return .cancelled
            }
            group.addTask {
                await drain.wait()
                return .draining
            }
            if let limit {
                group.addTask {
                    try? await Task.sleep(for: limit)
                    return .timedOut(limit)
                }
            }
            defer { group.cancelAll() }
            switch try await group.next() {
            case .finished(let value): return value
            case .cancelled, nil: throw RPCError(code: .cancelled, message: "the client cancelled the call")
            case .draining: throw RPCError(code: .unavailable, message: "the server is shutting down; call again")
            case .timedOut(let limit):
                throw RPCError(code: .deadlineExceeded, message: "no answer within the server's limit of \(limit)")
            }
        }
    }
}

/// What ends `untilCancelled` first.
private enum WaitOutcome<T: Sendable>: Sendable {
    case finished(T)
    case cancelled
    case draining
    case timedOut(Duration)
}

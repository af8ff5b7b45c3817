import GRPCCore

extension ServerContext {
    /// Runs `body` until it returns or the call is cancelled (the client reset its stream, or the call's deadline
    /// passed). grpc-swift marks the call cancelled but does not cancel the handler's task: without this, a long-poll
    /// whose client gave up (`ConnectionLimits.longPollWait`) would go on waiting in the service, one more waiter
    /// for every poll re-issued, and a job watch whose admin left would wait for the job's next event.
    /// - Throws: `RPCError(.cancelled)` when the call was cancelled first (the client no longer listens); else what
    ///   `body` throws.
    func untilCancelled<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let cancellation = self.cancellation
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try? await cancellation.cancelled  // returns early when the body finished first
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw RPCError(code: .cancelled, message: "the client cancelled the call")
            }
            return value
        }
    }
}

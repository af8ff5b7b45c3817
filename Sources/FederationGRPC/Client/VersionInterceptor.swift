import FederationCore
import GRPCCore

/// Adds `tessera-version: <TesseraVersion.current>` to the metadata of every call a Tessera client makes, so the
/// server can show which version each site runs (`tessera admin sites`).
struct VersionInterceptor: ClientInterceptor {
    /// The metadata key.
    static let key = "tessera-version"

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>, context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        request.metadata.replaceOrAddString(TesseraVersion.current, forKey: Self.key)
        return try await next(request, context)
    }
}

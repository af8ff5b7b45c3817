import FederationCore
import GRPCCore

/// Tells the service of every call a site certificate makes to the `Federation` service, with the version its client
/// reports in the `tessera-version` metadata (`VersionInterceptor`), before the call is handled: the "last contact"
/// and "version" of `tessera admin sites`. Calls of other certificates pass untouched (the handler refuses them).
struct SiteContactInterceptor: ServerInterceptor {
    let service: any FederationService

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if let peer = try? PeerIdentity(context), peer.role == PeerIdentity.siteRole {
            // Bounded: a version is a short label, never a payload.
            let version = request.metadata[stringValues: VersionInterceptor.key].first(where: { _ in true }) ?? ""
            await service.noteContact(site: peer.commonName, version: String(version.prefix(64)))
        }
        return try await next(request, context)
    }
}

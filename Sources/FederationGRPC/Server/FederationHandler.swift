import FederationCore
import GRPCCore

/// The generated gRPC service, forwarding each call to a `FederationService` after checking that the caller's
/// certificate speaks for the site it names. Errors leave as gRPC statuses (`StatusMapping`).
struct FederationHandler: Tessera_Federation_V1_Federation.SimpleServiceProtocol {
    let service: any FederationService
    let limits: TransportLimits

    /// Runs `body`, turning a `FederationError` into the matching `RPCError`.
    private func mapped<T>(_ body: () async throws(FederationError) -> T) async throws -> T {
        do { return try await body() } catch { throw StatusMapping.rpcError(error) }
    }

    func register(request: Tessera_Federation_V1_RegisterRequest,
                  context: ServerContext) async throws -> Tessera_Federation_V1_RegisterResponse {
        try await mapped { () async throws(FederationError) in
            let site = try PeerIdentity(context).authorize(site: request.site)
            var response = Tessera_Federation_V1_RegisterResponse()
            response.jobID = try await service.register(site: site)
            return response
        }
    }

    func nextTask(request: Tessera_Federation_V1_NextTaskRequest,
                  context: ServerContext) async throws -> Tessera_Federation_V1_NextTaskResponse {
        try await mapped { () async throws(FederationError) in
            let site = try PeerIdentity(context).authorize(site: request.site)
            var response = Tessera_Federation_V1_NextTaskResponse()
            // The long-poll: this call waits in the service until the site has a task or the job ends.
            if let task = try await service.nextTask(site: site) { response.task = task.wire }
            return response
        }
    }

    func downloadModel(request: Tessera_Federation_V1_DownloadModelRequest,
                       response: RPCWriter<Tessera_Federation_V1_ParameterChunk>, context: ServerContext) async throws {
        let chunks = try await mapped { () async throws(FederationError) in
            let task = try TaskAssignment(wire: request.task)
            _ = try PeerIdentity(context).authorize(site: task.site)
            let asked = request.maxScalars > 0 ? Int(request.maxScalars) : limits.chunkScalars
            let maxScalars = min(asked, limits.chunkScalars)
            return try await service.model(for: task, maxScalars: maxScalars)
        }
        for chunk in chunks { try await response.write(chunk.wire) }
    }

    func uploadResult(request: RPCAsyncSequence<Tessera_Federation_V1_UploadResultPart, any Error>,
                      context: ServerContext) async throws -> Tessera_Federation_V1_UploadResultResponse {
        let peer = try await mapped { () async throws(FederationError) in try PeerIdentity(context) }
        var site: String?
        do {
            for try await part in request {
                switch part.part {
                case .header(let wire):
                    let header = ResultHeader(wire: wire)
                    if let site {
                        let error = FederationError(.invalidConfiguration, "a result stream carries one header, first")
                        await service.abandonResult(site: site, reason: error.message)
                        throw error
                    }
                    let authorized = try peer.authorize(site: header.site)
                    try await service.beginResult(header)
                    site = authorized
                case .chunk(let wire):
                    guard let site else {
                        throw FederationError(.invalidConfiguration, "a result stream starts with its header")
                    }
                    let chunk: ParameterChunk
                    do throws(FederationError) {
                        chunk = try ParameterChunk(wire: wire)
                        guard chunk.values.count <= limits.chunkScalars else {
                            throw FederationError(.tooLarge, "chunk of \(chunk.values.count) values from \(site); "
                                                  + "at most "
                                                  + "\(limits.chunkScalars) per message")
                        }
                    } catch {
                        await service.abandonResult(site: site, reason: error.message)
                        throw error
                    }
                    try await service.resultChunk(site: site, chunk)
                case nil:
                    let error = FederationError(.invalidConfiguration, "empty message in a result stream")
                    if let site { await service.abandonResult(site: site, reason: error.message) }
                    throw error
                }
            }
            guard let site else { throw FederationError(.invalidConfiguration, "a result stream without a header") }
            try await service.endResult(site: site)
            return Tessera_Federation_V1_UploadResultResponse()
        } catch let error as FederationError {
            // Refused by the service (which has taken the partial result back out and logged why) or above.
            throw StatusMapping.rpcError(error)
        } catch {
            // The stream broke (client gone, message over the limit): take the partial result back out.
            if let site { await service.abandonResult(site: site, reason: "result stream broke: \(error)") }
            throw error
        }
    }

    func heartbeat(request: Tessera_Federation_V1_HeartbeatRequest,
                   context: ServerContext) async throws -> Tessera_Federation_V1_HeartbeatResponse {
        try await mapped { () async throws(FederationError) in
            await service.heartbeat(site: try PeerIdentity(context).authorize(site: request.site))
            return Tessera_Federation_V1_HeartbeatResponse()
        }
    }
}

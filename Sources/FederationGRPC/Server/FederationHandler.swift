import FederationCore
import GRPCCore
import GRPCProtobuf

/// The generated gRPC service, forwarding each call to a `FederationService` after checking that the caller's
/// certificate speaks for the site it names. Errors leave as gRPC statuses (`StatusMapping`).
struct FederationHandler: Tessera_Federation_V1_Federation.SimpleServiceProtocol {
    let service: any FederationService
    let limits: TransportLimits
    /// Fired when the server begins its shutdown: ends the calls waiting in the service.
    let drain: ServerDrain

    /// Runs `body`, turning a `FederationError` into the matching `RPCError`.
    private func mapped<T>(_ body: () async throws(FederationError) -> T) async throws -> T {
        do { return try await body() } catch { throw StatusMapping.rpcError(error) }
    }

    func register(
        request: Tessera_Federation_V1_RegisterRequest,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_RegisterResponse {
        try await mapped { () async throws(FederationError) in
            let site = try PeerIdentity(context).authorize(site: request.site)
            var response = Tessera_Federation_V1_RegisterResponse()
            response.jobID = try await service.register(site: site)
            return response
        }
    }

    func nextTask(
        request: Tessera_Federation_V1_NextTaskRequest,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_NextTaskResponse {
        let site = try await mapped { () throws(FederationError) in
            try PeerIdentity(context).authorize(site: request.site)
        }
        // The long-poll: this call waits in the service until the site has a task or the job ends. A site asks again
        // after `longPollWait`; the server's own bound (`orphanWait`) is for a poll whose site is gone.
        let service = self.service
        let task = try await waiting(context, atMost: orphanWait(limits.connection.longPollWait)) {
            () async throws(FederationError) in
            try await service.nextTask(site: site)
        }
        var response = Tessera_Federation_V1_NextTaskResponse()
        if let task { response.task = task.wire }
        return response
    }

    /// How long the server lets a call wait in the service when the site waits at most `clientWait`: twice that, so
    /// a site still listening always gives up (or asks again) first. The bound is for calls whose site is gone
    /// without the server seeing it (`ServerContext.untilCancelled`).
    private func orphanWait(_ clientWait: Duration) -> Duration { clientWait * 2 }

    /// A call into the service that may wait (the long-poll, a model snapshot): ended when the call is cancelled,
    /// the server shuts down or `limit` passes (`ServerContext.untilCancelled`); service errors leave as statuses.
    private func waiting<T: Sendable>(
        _ context: ServerContext, atMost limit: Duration,
        _ body: @escaping @Sendable () async throws(FederationError) -> T
    ) async throws -> T {
        try await context.untilCancelled(or: drain, atMost: limit) {
            do throws(FederationError) { return try await body() } catch { throw StatusMapping.rpcError(error) }
        }
    }

    func downloadModel(
        request: Tessera_Federation_V1_DownloadModelRequest,
        response: RPCWriter<Tessera_Federation_V1_ParameterChunk>, context: ServerContext
    ) async throws {
        for chunk in try await modelRange(request: request, held: nil, context: context).chunks {
            try await response.write(chunk.wire)
        }
    }

    /// Initial-metadata key of a DownloadModel response: the model's number of chunks at the call's chunk size.
    static let chunkCountKey = "tessera-model-chunks"
    /// Metadata key of a DownloadModel request: the digest (16 hex digits, `ModelDigest`) of the model the site
    /// holds, offered as the base of a change.
    static let heldModelKey = "tessera-model-held"
    /// Initial-metadata key of a DownloadModel response: the digest of the model the chunks build.
    static let digestKey = "tessera-model-digest"
    /// Initial-metadata key of a DownloadModel response whose chunks are a change: the digest of the model they
    /// change (the one the site offered). Absent: the chunks are the whole model.
    static let baseKey = "tessera-model-base"

    /// The digest a DownloadModel request's metadata offers as the base (nil when absent or malformed: the site
    /// then gets the whole model).
    static func heldModel(_ metadata: Metadata) -> ModelDigest? {
        metadata[stringValues: heldModelKey].first(where: { _ in true }).flatMap { ModelDigest(hex: $0) }
    }

    /// The chunks a DownloadModel call asks for — views into the coordinator's snapshot, each encoded only as it is
    /// written — at most `limits.downloadChunksPerCall` of them, and the model's number of chunks. The site pulls
    /// the model range by range, so the transport never holds more than one range per download (its writer does
    /// not wait for the HTTP/2 window).
    func modelRange(
        request: Tessera_Federation_V1_DownloadModelRequest, held: ModelDigest?,
        context: ServerContext
    ) async throws -> (chunks: ArraySlice<ParameterChunk>, total: Int, digest: ModelDigest?, base: ModelDigest?) {
        let (task, maxScalars) = try await mapped { () throws(FederationError) in
            let task = try TaskAssignment(wire: request.task)
            _ = try PeerIdentity(context).authorize(site: task.site)
            guard request.firstChunk >= 0, request.chunkCount >= 0 else {
                throw FederationError(
                    .invalidConfiguration,
                    "download range [\(request.firstChunk), "
                        + "+\(request.chunkCount)) is negative")
            }
            // Clamped into [minChunkScalars, chunkScalars]: tiny chunks would cost a struct and a message each.
            return (task, limits.downloadChunkScalars(asked: Int(clamping: request.maxScalars)))
        }
        // A site gives up a download that brings nothing for `streamProgressTimeout`.
        let service = self.service
        let download = try await waiting(context, atMost: orphanWait(limits.connection.streamProgressTimeout)) {
            () async throws(FederationError) in
            try await service.modelDownload(for: task, maxScalars: maxScalars, held: held)
        }
        return try await mapped { () throws(FederationError) in
            let chunks = download.chunks
            let perCall = limits.downloadChunksPerCall
            let count = request.chunkCount == 0 ? perCall : Int(min(request.chunkCount, Int64(perCall)))
            let first = Int(min(request.firstChunk, Int64(chunks.count)))
            return (chunks[first..<min(first + count, chunks.count)], chunks.count, download.digest, download.base)
        }
    }

    func uploadResult(
        request: RPCAsyncSequence<Tessera_Federation_V1_UploadResultPart, any Error>,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_UploadResultResponse {
        let parts = request.map { (part: Tessera_Federation_V1_UploadResultPart) throws -> IncomingPart in
            switch part.part {
            case .header(let wire): return .header(ResultHeader(wire: wire))
            case .chunk(let wire): return .chunk(try ParameterChunk(wire: wire))
            case nil: throw FederationError(.invalidConfiguration, "empty message in a result stream")
            }
        }
        return try await uploadParts(parts, context: context)
    }

    /// A result stream: the header, then chunks handed to the service one by one as they arrive.
    func uploadParts(
        _ request: some AsyncSequence<IncomingPart, any Error>,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_UploadResultResponse {
        let peer = try await mapped { () async throws(FederationError) in try PeerIdentity(context) }
        var site: String?
        do {
            for try await part in request {
                switch part {
                case .header(let header):
                    if let site {
                        let error = FederationError(.invalidConfiguration, "a result stream carries one header, first")
                        await service.abandonResult(site: site, reason: error.message)
                        throw error
                    }
                    let authorized = try peer.authorize(site: header.site)
                    try await service.beginResult(header)
                    site = authorized
                case .chunk(let chunk):
                    guard let site else {
                        throw FederationError(.invalidConfiguration, "a result stream starts with its header")
                    }
                    guard chunk.valueCount <= limits.chunkScalars else {
                        let error = FederationError(
                            .tooLarge,
                            "chunk of \(chunk.valueCount) values from \(site); "
                                + "at most \(limits.chunkScalars) per message")
                        await service.abandonResult(site: site, reason: error.message)
                        throw error
                    }
                    try await service.resultChunk(site: site, chunk)
                case .refused(let refusal):
                    // An encoded chunk whose sizes or scales do not check out: refused as the intake refuses values.
                    guard let site else {
                        throw FederationError(.invalidConfiguration, "a result stream starts with its header")
                    }
                    let error = FederationError(refusal.code, "result from \(site) rejected: \(refusal.message)")
                    await service.abandonResult(site: site, reason: error.message)
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
            // The stream broke (client gone, message over the limit, malformed message): take the partial result
            // back out.
            if let site { await service.abandonResult(site: site, reason: "result stream broke: \(error)") }
            throw error
        }
    }

    func heartbeat(
        request: Tessera_Federation_V1_HeartbeatRequest,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_HeartbeatResponse {
        try await mapped { () async throws(FederationError) in
            await service.heartbeat(site: try PeerIdentity(context).authorize(site: request.site))
            return Tessera_Federation_V1_HeartbeatResponse()
        }
    }
}

/// Registers `FederationHandler` with the router: the generated registrations, then DownloadModel and UploadResult
/// again with the hand-written codec of `ChunkCodec.swift` (same wire format, one copy fewer of every value).
struct FederationRegistration: RegistrableRPCService {
    let handler: FederationHandler

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        handler.registerMethods(with: &router)
        let handler = self.handler
        router.registerHandler(
            forMethod: Tessera_Federation_V1_Federation.Method.DownloadModel.descriptor,
            deserializer: ProtobufDeserializer<Tessera_Federation_V1_DownloadModelRequest>(),
            serializer: ChunkSerializer()
        ) { request, context in
            let held = FederationHandler.heldModel(request.metadata)
            let message = try await ServerRequest(stream: request).message
            let range = try await handler.modelRange(request: message, held: held, context: context)
            var metadata: Metadata = [FederationHandler.chunkCountKey: "\(range.total)"]
            if let digest = range.digest { metadata.addString("\(digest)", forKey: FederationHandler.digestKey) }
            if let base = range.base { metadata.addString("\(base)", forKey: FederationHandler.baseKey) }
            let chunks = range.chunks
            return StreamingServerResponse<ParameterChunk>(metadata: metadata) {
                writer in
                for chunk in chunks { try await writer.write(chunk) }
                return [:]
            }
        }
        router.registerHandler(
            forMethod: Tessera_Federation_V1_Federation.Method.UploadResult.descriptor,
            deserializer: IncomingPartDeserializer(maxChunkScalars: handler.limits.chunkScalars),
            serializer: ProtobufSerializer<Tessera_Federation_V1_UploadResultResponse>()
        ) { request, context in
            let response = try await handler.uploadParts(request.messages, context: context)
            return StreamingServerResponse(single: ServerResponse(message: response))
        }
    }
}

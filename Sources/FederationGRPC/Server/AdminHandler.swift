import FederationCore
import Foundation
import GRPCCore

/// The generated `Admin` service, forwarding to an `AdminService` after checking that the caller's certificate has
/// the admin role.
struct AdminHandler: Tessera_Federation_V1_Admin.SimpleServiceProtocol {
    let service: any AdminService
    /// Bytes per `FilePart` of a download.
    let pieceBytes: Int

    private func mapped<T>(_ body: () async throws(FederationError) -> T) async throws -> T {
        do { return try await body() } catch { throw StatusMapping.rpcError(error) }
    }

    func submitJob(
        request: Tessera_Federation_V1_SubmitJobRequest,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_SubmitJobResponse {
        try await mapped { () async throws(FederationError) in
            let admin = try PeerIdentity(context).authorizeAdmin()
            var response = Tessera_Federation_V1_SubmitJobResponse()
            response.jobID = try await service.submit(pipeline: request.pipeline, name: request.name, by: admin)
            return response
        }
    }

    func jobStatus(
        request: Tessera_Federation_V1_JobStatusRequest,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_JobStatusResponse {
        try await mapped { () async throws(FederationError) in
            _ = try PeerIdentity(context).authorizeAdmin()
            var response = Tessera_Federation_V1_JobStatusResponse()
            response.jobs = try await service.status(jobID: request.jobID.isEmpty ? nil : request.jobID).map(\.wire)
            return response
        }
    }

    func abortJob(
        request: Tessera_Federation_V1_AbortJobRequest,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_AbortJobResponse {
        try await mapped { () async throws(FederationError) in
            let admin = try PeerIdentity(context).authorizeAdmin()
            try await service.abort(jobID: request.jobID, by: admin)
            return Tessera_Federation_V1_AbortJobResponse()
        }
    }

    func downloadJob(
        request: Tessera_Federation_V1_DownloadJobRequest,
        response: RPCWriter<Tessera_Federation_V1_FilePart>, context: ServerContext
    ) async throws {
        let files = try await mapped { () async throws(FederationError) in
            _ = try PeerIdentity(context).authorizeAdmin()
            return try await service.files(jobID: request.jobID)
        }
        for file in files {
            guard let handle = FileHandle(forReadingAtPath: file.path) else {
                throw StatusMapping.rpcError(
                    FederationError(.noResults, "file \(file.name) of job \(request.jobID) is gone"))
            }
            defer { try? handle.close() }
            var offset: Int64 = 0
            while true {
                let data = try handle.read(upToCount: pieceBytes) ?? Data()
                var part = Tessera_Federation_V1_FilePart()
                part.name = file.name
                part.offset = offset
                part.data = data
                // An empty file still announces itself with one empty piece.
                if !data.isEmpty || offset == 0 { try await response.write(part) }
                if data.count < pieceBytes { break }
                offset += Int64(data.count)
            }
        }
    }

    func watchJob(
        request: Tessera_Federation_V1_WatchJobRequest,
        response: RPCWriter<Tessera_Federation_V1_JobEventMessage>, context: ServerContext
    ) async throws {
        let events = try await mapped { () async throws(FederationError) in
            _ = try PeerIdentity(context).authorizeAdmin()
            return try await service.events(jobID: request.jobID)
        }
        // Until the job ends or the admin leaves (`untilCancelled`: a quiet job would otherwise keep this handler).
        try await context.untilCancelled {
            for await event in events { try await response.write(event.wire) }
        }
    }
}

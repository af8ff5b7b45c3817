import FederationCore
import Foundation
import GRPCCore

/// The generated `Admin` service: every call is decided by `AdminPolicy` on the caller's certificate (CN, role, and a
/// site admin's site), recorded in the server's audit log (`AdminService.audit`) with its outcome, then forwarded to
/// the `AdminService`. A refusal is PERMISSION_DENIED with the reason.
struct AdminHandler: Tessera_Federation_V1_Admin.SimpleServiceProtocol {
    let service: any AdminService
    /// Bytes per `FilePart` of a download.
    let pieceBytes: Int
    /// Fired when the server begins its shutdown: ends the job watches.
    let drain: ServerDrain

    /// Runs `body` for the caller of `context` if `AdminPolicy` allows `action` (on `jobID`), and records the call:
    /// `refused` with the reason, `failed` with the error, or `ok`. `jobOf` names the job a call created (`submit`).
    private func admitted<T>(
        _ action: AdminAction, job jobID: String?, _ context: ServerContext,
        jobOf: (T) -> String? = { _ in nil },
        _ body: (AdminCaller) async throws(FederationError) -> T
    ) async throws -> T {
        let caller: AdminCaller
        do { caller = try PeerIdentity(context).adminCaller } catch { throw StatusMapping.rpcError(error) }
        let job = jobID.flatMap { $0.isEmpty ? nil : $0 }
        let summary: JobSummary? =
            if let job { try? await service.status(jobID: job).first } else { nil }
        var entry = AuditEntry(
            kind: .admin, actor: caller.name, role: caller.roleName, action: action.rawValue, jobID: job ?? "",
            site: caller.site ?? "")
        if case .refused(let reason) = AdminPolicy.decide(caller, action, job: summary) {
            entry.outcome = .refused
            entry.detail = reason
            await service.audit(entry)
            throw StatusMapping.rpcError(FederationError(.permissionDenied, reason))
        }
        do {
            let value = try await body(caller)
            if let created = jobOf(value) { entry.jobID = created }
            await service.audit(entry)
            return value
        } catch {
            entry.outcome = .failed
            entry.detail = error.message
            await service.audit(entry)
            throw StatusMapping.rpcError(error)
        }
    }

    func submitJob(
        request: Tessera_Federation_V1_SubmitJobRequest,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_SubmitJobResponse {
        let submit = { (caller: AdminCaller) async throws(FederationError) -> String in
            try await service.submit(pipeline: request.pipeline, name: request.name, by: caller.name)
        }
        let id = try await admitted(.submit, job: nil, context, jobOf: { $0 }, submit)
        return Tessera_Federation_V1_SubmitJobResponse.with { $0.jobID = id }
    }

    func jobStatus(
        request: Tessera_Federation_V1_JobStatusRequest,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_JobStatusResponse {
        try await admitted(.status, job: request.jobID, context) { (caller) async throws(FederationError) in
            let jobs = try await service.status(jobID: request.jobID.isEmpty ? nil : request.jobID)
            var response = Tessera_Federation_V1_JobStatusResponse()
            response.jobs = jobs.filter { AdminPolicy.mayView($0, by: caller) }.map(\.wire)
            return response
        }
    }

    func abortJob(
        request: Tessera_Federation_V1_AbortJobRequest,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_AbortJobResponse {
        try await admitted(.abort, job: request.jobID, context) { (caller) async throws(FederationError) in
            try await service.abort(jobID: request.jobID, by: caller.name)
            return Tessera_Federation_V1_AbortJobResponse()
        }
    }

    func listSites(
        request: Tessera_Federation_V1_ListSitesRequest,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_ListSitesResponse {
        try await admitted(.sites, job: nil, context) { (caller) async throws(FederationError) in
            let sites = await service.sites().filter { AdminPolicy.mayView(site: $0.site, by: caller) }
            return Tessera_Federation_V1_ListSitesResponse.with { $0.sites = sites.map(\.wire) }
        }
    }

    func jobLog(
        request: Tessera_Federation_V1_JobLogRequest,
        context: ServerContext
    ) async throws -> Tessera_Federation_V1_JobLogResponse {
        try await admitted(.logs, job: request.jobID, context) { (caller) async throws(FederationError) in
            let entries = try await service.log(jobID: request.jobID).filter {
                AdminPolicy.mayView(entryAbout: $0.site.isEmpty ? nil : $0.site, by: caller)
            }
            return Tessera_Federation_V1_JobLogResponse.with { $0.entries = entries.map(\.wire) }
        }
    }

    func downloadJob(
        request: Tessera_Federation_V1_DownloadJobRequest,
        response: RPCWriter<Tessera_Federation_V1_FilePart>, context: ServerContext
    ) async throws {
        let files = try await admitted(.download, job: request.jobID, context) {
            (_: AdminCaller) async throws(FederationError) -> [JobFile] in
            try await service.files(jobID: request.jobID)
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
        let (events, caller) = try await admitted(.logs, job: request.jobID, context) {
            (caller) async throws(FederationError) in
            (try await service.events(jobID: request.jobID), caller)
        }
        // Until the job ends, the admin leaves or the server shuts down (`untilCancelled`: a quiet job would
        // otherwise keep this handler).
        try await context.untilCancelled(or: drain) {
            for await event in events where AdminPolicy.mayView(entryAbout: event.site, by: caller) {
                try await response.write(event.wire)
            }
        }
    }
}

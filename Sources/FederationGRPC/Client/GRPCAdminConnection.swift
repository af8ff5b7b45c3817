import FederationCore
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// An admin's connection to the federation server (`tessera admin`): submit, status, abort, download, watch and read
/// the log of jobs, list sites, over gRPC with mutual TLS. What the certificate's role allows is decided by the
/// server (`AdminPolicy`); a refusal is `.permissionDenied` with the reason. Calls have a deadline
/// (`ConnectionLimits.callTimeout`), a download a progress timeout (`streamProgressTimeout`); `watch` follows a job
/// for as long as it runs (keepalive detects a dead server).
public final class GRPCAdminConnection: Sendable {
    private let client: GRPCClient<ClientTransport.Transport>
    private let stub: Tessera_Federation_V1_Admin.Client<ClientTransport.Transport>
    private let connections: Task<Void, Never>
    private let limits: ConnectionLimits

    /// - Throws: `.invalidConfiguration` when the target or the certificate files are unusable.
    public init(
        host: String, port: Int, tls: MutualTLSFiles, serverName: String? = nil,
        limits: TransportLimits = .defaults
    ) throws(FederationError) {
        client = try ClientTransport.makeClient(
            host: host, port: port, tls: tls, serverName: serverName, limits: limits)
        stub = Tessera_Federation_V1_Admin.Client(wrapping: client)
        self.limits = limits.connection
        let client = self.client
        connections = Task { try? await client.runConnections() }
    }

    deinit { client.beginGracefulShutdown() }

    public func close() async {
        client.beginGracefulShutdown()
        await connections.value
    }

    private func call<T>(_ what: String, _ body: () async throws -> T) async throws(FederationError) -> T {
        do { return try await body() } catch { throw StatusMapping.federationError(error, during: what) }
    }

    /// Options of a unary call: its deadline.
    private var unary: CallOptions {
        var options = CallOptions.defaults
        options.timeout = limits.callTimeout
        return options
    }

    /// Queues a job; returns its id.
    public func submit(pipeline: String, name: String = "") async throws(FederationError) -> String {
        var request = Tessera_Federation_V1_SubmitJobRequest()
        request.pipeline = pipeline
        request.name = name
        return try await call("submit") { try await stub.submitJob(request, options: unary) }.jobID
    }

    /// One job, or all.
    public func status(jobID: String? = nil) async throws(FederationError) -> [JobSummary] {
        var request = Tessera_Federation_V1_JobStatusRequest()
        request.jobID = jobID ?? ""
        let response = try await call("status") { try await stub.jobStatus(request, options: unary) }
        var out: [JobSummary] = []
        for job in response.jobs { out.append(try JobSummary(wire: job)) }
        return out
    }

    public func abort(jobID: String) async throws(FederationError) {
        var request = Tessera_Federation_V1_AbortJobRequest()
        request.jobID = jobID
        _ = try await call("abort") { try await stub.abortJob(request, options: unary) }
    }

    /// The sites the server has heard from since it started (a site admin's certificate sees only its own site).
    public func sites() async throws(FederationError) -> [SiteStatus] {
        let response = try await call("sites") {
            try await stub.listSites(Tessera_Federation_V1_ListSitesRequest(), options: unary)
        }
        return response.sites.map(SiteStatus.init(wire:))
    }

    /// The job's entries in the server's audit log, oldest first (a site admin sees the job's entries and those
    /// about its own site).
    public func log(jobID: String) async throws(FederationError) -> [AuditEntry] {
        let request = Tessera_Federation_V1_JobLogRequest.with { $0.jobID = jobID }
        let response = try await call("logs") { try await stub.jobLog(request, options: unary) }
        var out: [AuditEntry] = []
        for entry in response.entries { out.append(try AuditEntry(wire: entry)) }
        return out
    }

    /// Writes the job's files into `folder` (created if needed); returns their paths.
    /// - Throws: `.invalidConfiguration` for a file name that is not a plain name (the server may not write outside
    ///   `folder`) or a folder that cannot be written.
    public func download(jobID: String, to folder: String) async throws(FederationError) -> [String] {
        var request = Tessera_Federation_V1_DownloadJobRequest()
        request.jobID = jobID
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw FederationError(.invalidConfiguration, "cannot create \(folder)", cause: "\(error)")
        }
        let stub = self.stub
        let message = request
        return try await call("download") {
            try await StreamProgress.watch("job download", limit: limits.streamProgressTimeout) { progress in
                try await stub.downloadJob(message) { response in
                    var written: [String] = []
                    var handle: FileHandle?
                    defer { try? handle?.close() }
                    for try await part in response.messages {
                        progress.mark()
                        let name = part.name
                        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", !name.hasPrefix(".") else {
                            throw FederationError(
                                .invalidConfiguration,
                                "the server sent a file named '\(name)', "
                                    + "which is not a plain file name: refused")
                        }
                        let path = folder + "/" + name
                        if written.last != path {
                            try handle?.close()
                            guard part.offset == 0, FileManager.default.createFile(atPath: path, contents: nil),
                                let h = FileHandle(forWritingAtPath: path)
                            else {
                                throw FederationError(.invalidConfiguration, "cannot write \(path)")
                            }
                            handle = h
                            written.append(path)
                        }
                        try handle?.write(contentsOf: part.data)
                    }
                    return written
                }
            }
        }
    }

    /// The job's events as they happen; the stream ends with the job.
    public func watch(jobID: String) -> AsyncThrowingStream<JobEvent, any Error> {
        let request = Tessera_Federation_V1_WatchJobRequest.with { $0.jobID = jobID }
        let stub = self.stub
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await stub.watchJob(request) { response in
                        for try await message in response.messages {
                            continuation.yield(try JobEvent(wire: message))
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: StatusMapping.federationError(error, during: "watch"))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

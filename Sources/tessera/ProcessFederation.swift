import FederationClient
import FederationCore
import FederationGRPC
import FederationServer
import FederationSimulation
import Foundation
import Provisioning
import SafeTensorsFormat
import Synchronization

/// `tessera simulate`'s federated rounds as a real deployment runs them: a throw-away project provisioned into
/// `<output>/federation/kits`, a `tessera server` process, one `tessera client` process per site folder, all over
/// loopback mutual TLS; this process is the admin (submits the pipeline, follows its events, downloads the models).
/// Logs of every process go to `<output>/federation/logs/`.
struct ProcessFederation: StudyFederation {
    /// Longest the whole job may take before the simulation gives up (the job's own deadlines come first).
    var deadline: Duration = .seconds(6 * 3600)

    func federate(pipeline: String, sites: [String], dataRoot: String, output: String, initialModel: ParameterSet,
                  trainers: [String: SegmentationSiteTrainer],
                  progress: @escaping @Sendable (String) -> Void) async throws -> FederatedOutcome {
        let base = URL(fileURLWithPath: output).appendingPathComponent("federation").path
        try? FileManager.default.removeItem(atPath: base)
        let kits = base + "/kits", logs = base + "/logs"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let project = try Project(name: "tessera-simulate",
                                  server: .init(name: "server", address: ServerAddress(host: "localhost", port: 8443)),
                                  sites: sites, admins: [.init(name: "simulate")], validityDays: 2)
        _ = try Provisioner(project: project, output: kits).run()
        progress("provisioned a throw-away project: CA, server, \(sites.count) site and 1 admin kit(s) in \(kits)")

        let binary = try Self.ownExecutable()
        let processes = ProcessGroup()
        defer { processes.terminateAll() }
        let serverOut = Pipe()
        let server = try processes.start(binary, ["server", "--kit", kits + "/server", "--state", base + "/state",
                                                  "--host", "127.0.0.1", "--port", "0"],
                                         log: logs + "/server.log", stdout: serverOut)
        let line = try await Self.firstLine(of: serverOut, containing: "listening on", process: server)
        guard let portText = line.split(separator: ":").last?.split(separator: ",").first, let port = Int(portText) else {
            throw CommandFailure(description: "the server did not report its port (see \(logs)/server.log)")
        }
        progress("server process \(server.processIdentifier) listening on 127.0.0.1:\(port) (mutual TLS)")
        for site in sites {
            let client = try processes.start(binary, ["client", "--kit", kits + "/" + site, "--data", dataRoot + "/" + site,
                                                      "--server", "127.0.0.1:\(port)", "--once", "--retry-cap", "2"],
                                             log: logs + "/\(site).log")
            progress("site \(site): client process \(client.processIdentifier)")
        }
        let admin = try GRPCAdminConnection(host: "127.0.0.1", port: port,
                                            tls: MutualTLSFiles(certificateChain: kits + "/simulate/cert.pem",
                                                                privateKey: kits + "/simulate/key.pem",
                                                                trustRoots: kits + "/simulate/ca.pem"),
                                            serverName: "localhost")
        let name = "simulate"
        let job = try await admin.submit(pipeline: pipeline, name: name)
        progress("submitted \(job); following its events")
        let summaries = try await follow(admin, job: job, progress: progress)
        let files = try await admin.download(jobID: job, to: base + "/job")
        await admin.close()
        var global: ParameterSet?
        var models: [Int: ParameterSet] = [:]
        for path in files where path.hasSuffix(".safetensors") {
            let contents = try SafeTensorsFile.read(contentsOf: path)
            let model = ParameterSet(contents.entries.map { ParameterTensor(name: $0.name, shape: $0.shape, values: $0.values) })
            let file = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            if file == "global" { global = model }
            if file.hasPrefix("round-"), let r = Int(file.dropFirst("round-".count)) { models[r] = model }
        }
        guard let global else { throw CommandFailure(description: "the server sent no global model for \(job)") }
        server.terminate()
        for process in processes.all where process !== server { process.waitUntilExit() }
        server.waitUntilExit()
        progress("server and site processes ended; logs in \(logs)")
        return FederatedOutcome(global: try global.reordered(like: initialModel), rounds: summaries, roundModels: models)
    }

    /// Prints the job's progress (round, each site's result and Dice) and collects the round summaries.
    private func follow(_ admin: GRPCAdminConnection, job: String,
                        progress: @escaping @Sendable (String) -> Void) async throws -> [RoundSummary] {
        try await withThrowingTaskGroup(of: [RoundSummary]?.self) { group in
            group.addTask {
                var summaries: [RoundSummary] = []
                var siteDice: [String: Double] = [:]
                var started = Date()
                for try await event in admin.watch(jobID: job) {
                    switch event {
                    case .roundStarted(let r, let attempt, let sites):
                        started = Date()
                        siteDice = [:]
                        progress("round \(r)\(attempt > 0 ? " (attempt \(attempt + 1))" : ""): training at \(sites.joined(separator: ", "))")
                    case .resultAccepted(_, let site, let n, let metrics):
                        siteDice[site] = metrics["dice"]
                        progress("  \(site): result accepted (\(n) slices), local validation Dice "
                                 + (metrics["dice"].map { String(format: "%.3f", $0) } ?? "-"))
                    case .resultRejected(_, let site, let reason):
                        progress("  \(site): result rejected: \(reason)")
                    case .gracePeriodStarted(let r, let n):
                        progress("  round \(r): \(n) results in, grace period started")
                    case .roundClosed(let r, let participants, let reason):
                        let seconds = Date().timeIntervalSince(started)
                        summaries.append(RoundSummary(round: r, participants: participants, closedBy: reason,
                                                      siteDice: siteDice, globalDice: [:], seconds: seconds))
                        progress(String(format: "round %d closed (%@) after %.1f s", r, reason, seconds))
                    case .roundRetried(let r, _, let reason):
                        progress("round \(r) retried: \(reason)")
                    case .jobFinished:
                        return summaries
                    case .jobFailed(let reason):
                        throw CommandFailure(description: "the federated job failed: \(reason)")
                    }
                }
                throw CommandFailure(description: "the server stopped reporting job \(job) before it ended")
            }
            let limit = deadline
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let summaries = first else {
                throw CommandFailure(description: "job \(job) did not end within \(limit)")
            }
            return summaries
        }
    }

    /// The running tessera binary (to start the server and clients as separate processes).
    static func ownExecutable() throws -> String {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw CommandFailure(description: "cannot find the tessera binary to start the server and clients (\(path))")
        }
        return path
    }

    /// The first line of a child's standard output containing `text`; fails if the child exits first.
    static func firstLine(of pipe: Pipe, containing text: String, process: Process) async throws -> String {
        let handle = pipe.fileHandleForReading
        let line: String = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var buffer = Data()
                while true {
                    let data = handle.availableData
                    if data.isEmpty { continuation.resume(returning: ""); return }
                    buffer.append(data)
                    if let line = String(decoding: buffer, as: UTF8.self).split(separator: "\n").first(where: { $0.contains(text) }) {
                        continuation.resume(returning: String(line))
                        return
                    }
                }
            }
        }
        guard !line.isEmpty else {
            throw CommandFailure(description: "the server process exited before listening (status \(process.terminationStatus))")
        }
        return line
    }
}

/// Child processes started together and stopped together (SIGTERM, then SIGKILL if they linger).
final class ProcessGroup: Sendable {
    private let processes = Mutex<[Process]>([])

    var all: [Process] { processes.withLock { $0 } }

    func start(_ binary: String, _ arguments: [String], log: String, stdout: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardError = handle
        process.standardOutput = stdout ?? handle
        try process.run()
        processes.withLock { $0.append(process) }
        return process
    }

    func terminateAll() {
        for process in all where process.isRunning { process.terminate() }
        for process in all where process.isRunning {
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }
}

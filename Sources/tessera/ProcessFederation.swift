import FederationClient
import FederationCore
import FederationGRPC
import FederationJobs
import FederationServer
import FederationSimulation
import Foundation
import Offload
import Provisioning
import SafeTensorsFormat
import Synchronization
import Training

/// `tessera simulate`'s federated rounds as a real deployment runs them: a throw-away project provisioned into
/// `<output>/federation/kits`, a `tessera server` process, one `tessera client` process per site folder, all over
/// loopback mutual TLS; this process is the admin (submits the pipeline, follows its events, downloads the models).
/// Logs of every process go to `<output>/federation/logs/`.
/// A throw-away federation on this machine, as a real deployment runs: a project provisioned into `<base>/kits`, a
/// `tessera server` process, one `tessera client` process per site, all over loopback mutual TLS; this process is
/// the admin. Logs of every process go to `<base>/logs/`. `stop()` (or deinit) ends the processes.
final class LocalDeployment: Sendable {
    let base: String
    let port: Int
    let admin: GRPCAdminConnection
    private let processes: ProcessGroup
    private let server: Process

    /// - Parameters:
    ///   - sitePolicy: a site-policy YAML copied into every site's kit (statistics queries), or nil.
    ///   - tensorboard: TensorBoard's log directory, or nil: the server writes its event files under
    ///     `<tensorboard>/server`, each site under `<tensorboard>/<site>` (their `--tensorboard`).
    init(
        base: String, sites: [String], dataRoot: String, sitePolicy: String? = nil, tensorboard: String? = nil,
        progress: @escaping @Sendable (String) -> Void
    ) async throws {
        self.base = base
        try? FileManager.default.removeItem(atPath: base)
        let kits = base + "/kits"
        let logs = base + "/logs"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let project = try Project(
            name: "tessera-simulate",
            server: .init(name: "server", address: ServerAddress(host: "localhost", port: 8443)),
            sites: sites, admins: [.init(name: "simulate")], validityDays: 2)
        _ = try Provisioner(project: project, output: kits).run()
        if let sitePolicy {
            for site in sites {
                try FileManager.default.copyItem(atPath: sitePolicy, toPath: kits + "/" + site + "/site-policy.yaml")
            }
        }
        progress(
            "provisioned a throw-away project: CA, server, \(sites.count) site and 1 admin kit(s) in \(kits)"
                + (sitePolicy.map { "; site policy \($0) in every site kit" } ?? ""))
        let binary = try Self.ownExecutable()
        let processes = ProcessGroup()
        self.processes = processes
        let serverOut = Pipe()
        let server = try processes.start(
            binary,
            [
                "server", "--kit", kits + "/server", "--state", base + "/state",
                "--host", "127.0.0.1", "--port", "0",
            ] + (tensorboard.map { ["--tensorboard", $0 + "/server"] } ?? []),
            log: logs + "/server.log", stdout: serverOut)
        self.server = server
        do {
            let line = try await Self.firstLine(of: serverOut, containing: "listening on", process: server)
            guard let portText = line.split(separator: ":").last?.split(separator: ",").first, let port = Int(portText)
            else {
                throw CommandFailure(description: "the server did not report its port (see \(logs)/server.log)")
            }
            self.port = port
            progress("server process \(server.processIdentifier) listening on 127.0.0.1:\(port) (mutual TLS)")
            for site in sites {
                let client = try processes.start(
                    binary,
                    [
                        "client", "--kit", kits + "/" + site, "--data", dataRoot + "/" + site,
                        "--server", "127.0.0.1:\(port)", "--once", "--retry-cap", "2",
                    ] + (tensorboard.map { ["--tensorboard", $0 + "/" + site] } ?? []),
                    log: logs + "/\(site).log")
                progress("site \(site): client process \(client.processIdentifier)")
            }
            admin = try GRPCAdminConnection(
                host: "127.0.0.1", port: port,
                tls: MutualTLSFiles(
                    certificateChain: kits + "/simulate/cert.pem",
                    privateKey: kits + "/simulate/key.pem",
                    trustRoots: kits + "/simulate/ca.pem"),
                serverName: "localhost")
        } catch {
            processes.terminateAll()
            throw error
        }
    }

    deinit { processes.terminateAll() }

    /// Waits for the sites to exit (they do after the job, `--once`), then stops the server.
    func stop(progress: @escaping @Sendable (String) -> Void) async {
        // The admin connection closes gracefully (calls in flight finish); it may not hold up the shutdown.
        let admin = self.admin
        let closed = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await admin.close()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(5))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !closed { progress("the admin connection did not close within 5 s; going on") }
        // The sites exit on their own once told the job ended; a straggler is stopped after 30 s.
        let deadline = Date().addingTimeInterval(30)
        for process in processes.all where process !== server {
            while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(50)) }
            if process.isRunning {
                progress("site process \(process.processIdentifier) still running after the job: stopping it")
                process.terminate()
            }
            process.waitUntilExit()
        }
        server.terminate()
        let serverDeadline = Date().addingTimeInterval(15)
        while server.isRunning && Date() < serverDeadline { try? await Task.sleep(for: .milliseconds(50)) }
        if server.isRunning {
            progress("the server did not stop within 15 s of SIGTERM: killing it")
            kill(server.processIdentifier, SIGKILL)
        }
        server.waitUntilExit()
        progress("server and site processes ended; logs in \(base)/logs")
    }

    /// The job's events until it ends, through `handle`; fails on a failed job or after `deadline`.
    func follow(job: String, deadline: Duration, _ handle: @escaping @Sendable (JobEvent) async throws -> Void)
        async throws
    {
        let admin = self.admin
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for try await event in admin.watch(jobID: job) {
                    try await handle(event)
                    if case .jobFinished = event { return true }
                    if case .jobFailed(let reason) = event {
                        throw CommandFailure(description: "job \(job) failed: \(reason)")
                    }
                }
                throw CommandFailure(description: "the server stopped reporting job \(job) before it ended")
            }
            group.addTask {
                try await Task.sleep(for: deadline)
                return false
            }
            defer { group.cancelAll() }
            guard try await group.next() == true else {
                throw CommandFailure(description: "job \(job) did not end within \(deadline)")
            }
        }
    }

    /// The running tessera binary (to start the server and clients as separate processes).
    static func ownExecutable() throws -> String {
        let path =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw CommandFailure(
                description: "cannot find the tessera binary to start the server and clients (\(path))")
        }
        return path
    }

    /// The first line of a child's standard output containing `text`; fails if the child exits first.
    static func firstLine(of pipe: Pipe, containing text: String, process: Process) async throws -> String {
        guard let line = await Blocking.firstLine(of: pipe.fileHandleForReading, containing: text) else {
            throw CommandFailure(
                description: "the server process exited before listening (status \(process.terminationStatus))")
        }
        return line
    }
}

/// `tessera simulate`'s federated rounds as separate processes (`LocalDeployment`), the study's in-memory twin
/// being `InProcessFederation`.
struct ProcessFederation: StudyFederation {
    /// Longest the whole job may take before the simulation gives up (the job's own deadlines come first).
    var deadline: Duration = .seconds(6 * 3600)
    /// The site policy copied into every site's kit: its privacy budget binds the DP updates too.
    var sitePolicy: String?
    /// TensorBoard's log directory (`simulate --tensorboard`): server and site event files, or nil.
    var tensorboard: String?

    func federate(
        pipeline: String, sites: [String], dataRoot: String, output: String, initialModel: ParameterSet,
        trainers: [String: any LocalTrainer],
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> FederatedOutcome {
        let base = URL(fileURLWithPath: output).appendingPathComponent("federation").path
        let deployment = try await LocalDeployment(
            base: base, sites: sites, dataRoot: dataRoot, sitePolicy: sitePolicy, tensorboard: tensorboard,
            progress: progress)
        let job = try await deployment.admin.submit(pipeline: pipeline, name: "simulate")
        progress("submitted \(job); following its events")
        let metric = (try? TrainingConfiguration(yaml: pipeline)).map(StudySites.metric(for:)) ?? "dice"
        let follower = StudyProgress(metric: metric, progress)
        try await deployment.follow(job: job, deadline: deadline) { event in follower.handle(event) }
        let files = try await deployment.admin.download(jobID: job, to: base + "/job")
        await deployment.stop(progress: progress)
        var global: ParameterSet?
        var models: [Int: ParameterSet] = [:]
        for path in files
        where path.hasSuffix(".safetensors") && !URL(fileURLWithPath: path).lastPathComponent.hasPrefix("local-") {
            let contents = try SafeTensorsFile.read(contentsOf: path)
            let model = ParameterSet(
                contents.entries.map { ParameterTensor(name: $0.name, shape: $0.shape, values: $0.values) })
            let file = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            if file == "global" { global = model }
            if file.hasPrefix("round-"), let r = Int(file.dropFirst("round-".count)) { models[r] = model }
        }
        guard let global else { throw CommandFailure(description: "the server sent no global model for \(job)") }
        var crossSite: CrossSiteMatrix?
        if let path = files.first(where: { $0.hasSuffix("/cross-site.json") }) {
            crossSite = try JSONDecoder().decode(
                CrossSiteMatrix.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        }
        return FederatedOutcome(
            global: try global.reordered(like: initialModel), rounds: follower.summaries,
            roundModels: models, crossSite: crossSite)
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

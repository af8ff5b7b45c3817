import FederationCore
import FederationGRPC
import Foundation
import Offload
import Synchronization

/// A throw-away federation of real `tessera` processes over loopback mutual TLS: a project provisioned by
/// `tessera provision`, a `tessera server` and one `tessera client` per site of `sample-data/`. The test itself talks
/// to the server as the admin (or as a rogue site) over real sockets. Every wait is bounded by a deadline.
final class ProcessCluster: @unchecked Sendable {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let sites = ["community-hospital", "research-center", "treatment-center"]

    let folder: URL
    let binary: String
    private(set) var port = 0
    private let lock = NSLock()
    private var server: Process?
    private var clients: [String: Process] = [:]

    /// Provisions the project into a fresh temporary folder, with `admins` (the YAML of `project.yaml`'s list).
    init(admins: String = "[lead]") throws {
        binary = try Self.tesseraBinary()
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let project = """
            name: e2e
            server: {name: server, host: localhost, port: 8443}
            sites: [\(Self.sites.joined(separator: ", "))]
            admins: \(admins)
            """
        try project.write(to: folder.appendingPathComponent("project.yaml"), atomically: true, encoding: .utf8)
        let provision = try run(
            [
                binary, "provision", folder.appendingPathComponent("project.yaml").path,
                "--output", kit(""),
            ], log: "provision")
        provision.waitUntilExit()
        guard provision.terminationStatus == 0 else {
            throw ClusterError("tessera provision failed: \(logText("provision"))")
        }
    }

    /// The `tessera` binary the tests run: `$TESSERA`, or the one beside the test bundle.
    static func tesseraBinary() throws -> String {
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var candidates = [products.appendingPathComponent("tessera").path]
        if let bin = ProcessInfo.processInfo.environment["TESSERA"] { candidates.insert(bin, at: 0) }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ClusterError(
                "no tessera binary beside the test bundle (\(candidates)); build it first: swift build --build-tests")
        }
        return found
    }

    deinit {
        for process in [server].compactMap({ $0 }) + clients.values where process.isRunning { process.terminate() }
        // TESSERA_KEEP_E2E=1 keeps the folder (kits, logs, server state) to look into a failure.
        if ProcessInfo.processInfo.environment["TESSERA_KEEP_E2E"] == nil {
            try? FileManager.default.removeItem(at: folder)
        }
    }

    func kit(_ name: String) -> String { folder.appendingPathComponent("kits").appendingPathComponent(name).path }
    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
    func logText(_ name: String) -> String {
        (try? String(contentsOfFile: path("\(name).log"), encoding: .utf8)) ?? ""
    }

    /// A small pipeline over the sample sites: 2-D U-Net [4, 8] on 32×32×16 voxels of 8 mm, one short epoch a round.
    func pipeline(
        rounds: Int = 3, minClients: Int = 2, gracePeriod: Int = 5, roundTimeout: Int = 120,
        retries: Int = 2, sites: [String] = sites, crossSite: Bool = false
    ) throws -> String {
        let text = """
            preprocessing:
              orientation: RAS
              spacing: [8.0, 8.0, 8.0]
              crop_pad: {mode: foreground, threshold: -500, margin: [2, 2, 0], shape: [32, 32, 16], fill: -1024}
              window: soft_tissue
              scale: unit
            model:
              {architecture: unet2d, encoder_channels: [4, 8], bottleneck_channels: 8, segments: [1], seed: 7,
               segment_names: {1: [Liver, LIVER_GTV]}, nifti_labels: "labels/{PatientID}.nii.gz"}
            training:
              epochs: 1
              batch_size: 4
              slices_per_epoch: 8
              validation_fraction: 0.25
              loss: dice_ce
              seed: 1
              optimizer: {name: adam, learning_rate: 0.01}
            federation:
              rounds: \(rounds)
              local_epochs: 1
              min_clients: \(minClients)
              round_timeout_seconds: \(roundTimeout)
              grace_period_seconds: \(gracePeriod)
              max_round_retries: \(retries)
              strategy: fedavg
              sites: [\(sites.joined(separator: ", "))]
              cross_site_evaluation: \(crossSite)
            """
        return text
    }

    private func run(_ arguments: [String], log name: String, stdout: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let logPath = path("\(name).log")
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try log.seekToEnd()
        process.standardError = log
        process.standardOutput = stdout ?? log
        try process.run()
        return process
    }

    /// Runs `tessera <arguments>` to its end within `deadline`: its exit status and its output (stdout, then stderr).
    func tessera(_ arguments: [String], deadline: Duration = .seconds(60)) async throws -> (
        status: Int32, output: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return try await within(deadline, "tessera \(arguments.joined(separator: " "))") {
            await Blocking.run {
                let stdout = out.fileHandleForReading.readDataToEndOfFile()
                let stderr = err.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return (process.terminationStatus, String(decoding: stdout + stderr, as: UTF8.self))
            }
        }
    }

    /// Starts the server (again, on the same port and state after a kill) and waits for its "listening" line;
    /// `extra` arguments are added (e.g. `--metrics-address`).
    func startServer(deadline: Duration = .seconds(60), extra: [String] = []) async throws {
        let out = Pipe()
        let arguments =
            [
                binary, "server", "--kit", kit("server"), "--state", path("state"), "--host", "127.0.0.1",
                "--port", String(port),
            ] + extra
        let process = try run(arguments, log: "server", stdout: out)
        lock.withLock { server = process }
        let line = try await firstLine(of: out, containing: "listening on", deadline: deadline)
        guard let portText = line.split(separator: ":").last?.split(separator: ",").first, let p = Int(portText) else {
            throw ClusterError("unexpected server line: \(line)")
        }
        port = p
    }

    /// Stops the server as an operator does (SIGTERM) and waits for it to exit within `deadline`; its status.
    @discardableResult
    func stopServer(deadline: Duration = .seconds(30)) async throws -> Int32 {
        guard let process = lock.withLock({ server }) else { throw ClusterError("no server") }
        process.terminate()
        return try await within(deadline, "the server to exit after SIGTERM (log: \(path("server.log")))") {
            await Blocking.run {
                process.waitUntilExit()
                return process.terminationStatus
            }
        }
    }

    /// Kills the server at once (SIGKILL: no shutdown, as a crash).
    func killServer() {
        lock.withLock {
            server?.interrupt()
            if let pid = server?.processIdentifier { kill(pid, SIGKILL) }
            server?.waitUntilExit()
        }
    }

    /// Starts a site's client on its sample folder under `dataRoot` (`sample-data`, or `sample-data/classification`
    /// for the screening cohorts), with `extra` arguments (e.g. `--labels FILE`).
    func startClient(
        _ site: String, once: Bool = true, dataRoot: String = "sample-data", extra: [String] = []
    ) throws {
        var arguments = [
            binary, "client", "--kit", kit(site), "--data",
            Self.repository.appendingPathComponent(dataRoot).appendingPathComponent(site).path,
            "--server", "127.0.0.1:\(port)", "--retry-cap", "1",
        ]
        if once { arguments.append("--once") }
        arguments += extra
        let process = try run(arguments, log: site)
        lock.withLock { clients[site] = process }
    }

    /// Starts one client per sample site.
    func startClients(once: Bool = true) throws {
        for site in Self.sites { try startClient(site, once: once) }
    }

    func killClient(_ site: String) {
        lock.withLock {
            if let pid = clients[site]?.processIdentifier { kill(pid, SIGKILL) }
            clients[site]?.waitUntilExit()
        }
    }

    /// Waits for a client to exit; its status.
    func waitForClient(_ site: String, deadline: Duration = .seconds(60)) async throws -> Int32 {
        guard let process = lock.withLock({ clients[site] }) else { throw ClusterError("no client \(site)") }
        return try await within(deadline, "client \(site) to exit") {
            await Blocking.run {
                process.waitUntilExit()
                return process.terminationStatus
            }
        }
    }

    func tls(_ participant: String) -> MutualTLSFiles {
        MutualTLSFiles(
            certificateChain: kit(participant) + "/cert.pem", privateKey: kit(participant) + "/key.pem",
            trustRoots: kit(participant) + "/ca.pem")
    }

    func admin() throws -> GRPCAdminConnection {
        try GRPCAdminConnection(host: "127.0.0.1", port: port, tls: tls("lead"), serverName: "localhost")
    }

    func site(_ name: String, as participant: String? = nil) throws -> GRPCFederationConnection {
        try GRPCFederationConnection(
            host: "127.0.0.1", port: port, tls: tls(participant ?? name), serverName: "localhost")
    }

    /// The events of a job until `stop` says so or the job ends, within the deadline.
    func events(
        _ admin: GRPCAdminConnection, job: String, deadline: Duration = .seconds(240),
        until stop: @escaping @Sendable (JobEvent) async throws -> Bool = { _ in false }
    ) async throws -> [JobEvent] {
        try await within(deadline, "job \(job)'s events") {
            var seen: [JobEvent] = []
            for try await event in admin.watch(jobID: job) {
                seen.append(event)
                if try await stop(event) { break }
            }
            return seen
        }
    }

    private func firstLine(of pipe: Pipe, containing text: String, deadline: Duration) async throws -> String {
        let handle = pipe.fileHandleForReading
        return try await within(deadline, "the server to listen (log: \(path("server.log")))") {
            await Blocking.firstLine(of: handle, containing: text) ?? ""
        }
    }
}

struct ClusterError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body`, failing with a clear message if it takes longer than `deadline`.
func within<T: Sendable>(
    _ deadline: Duration, _ what: String,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: deadline)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw ClusterError("timed out after \(deadline) waiting for \(what)")
        }
        return value
    }
}

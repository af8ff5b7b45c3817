import ArgumentParser
import FederationClient
import FederationCore
import FederationGRPC
import FederationServer
import FederationTestSupport
import Foundation
import SecureAggregation
import Synchronization
import Tensors

/// Federation round overhead, as `../shared/bench/fl_flwr_legacy.py` and `fl_nvflare_run.py` measure it: a
/// synthetic model of N float32 parameters, K clients that do no training (they return the model plus a small
/// delta), R rounds of FedAvg over loopback gRPC with mutual TLS (a throw-away CA).
///
/// With `--client-processes` (what the results table uses) this process is the server only and each client is a
/// child process (`federation-client`), so the server's peak RSS is its own; without it, all run in this process.
/// One JSON line per round: seconds from the previous round's close (from the start for round 1) and this
/// process's peak RSS so far; then a summary line with the server's and the clients' peak RSS.
struct FederationRound: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "federation-round")

    @Option(help: "Model parameters (float32).") var parameters = 1_000_000
    @Option(help: "Clients (sites).") var clients = 3
    @Option(help: "Rounds.") var rounds = 3
    @Flag(help: "Run each client as a child process (federation-client); this process is then the server only.")
    var clientProcesses = false
    @Option(help: "Print this process's resident set size to standard error every so many milliseconds (0: never).")
    var traceMemoryMs = 0
    @Flag(help: "Secure aggregation of the updates (five stages a round; sites sign keys with their certificates).")
    var secureAggregation = false
    @Option(help: "With --secure-aggregation: neighbours per site (0: every other site; SecAgg+ uses a few).")
    var neighbours = 0
    @Option(help: "Update compression at the sites: none | fp16 | bf16 | int8 (blocks of 256), with error feedback.")
    var compression = "none"
    @Option(help: "Download compression: none | fp16 | bf16 | int8: the change from the model each site holds.")
    var downloadCompression = "none"
    @OptionGroup var transport: TransportOptions

    func validate() throws {
        guard parameters >= 1, clients >= 1, rounds >= 1 else {
            throw ValidationError("--parameters, --clients and --rounds must be at least 1")
        }
        do { _ = try UpdateEncoding(name: compression) } catch {
            throw ValidationError("--compression: \(error.message)")
        }
        do { _ = try UpdateEncoding(name: downloadCompression) } catch {
            throw ValidationError("--download-compression: \(error.message)")
        }
        try transport.validate()
    }

    /// The root command is synchronous: wait here for the asynchronous measurement.
    func run() throws {
        let (parameters, clients, rounds, processes, limits) = (
            parameters, clients, rounds, clientProcesses,
            transport.limits
        )
        let secure = secureAggregation ? try SecureAggregationSettings(neighbours: neighbours) : nil
        let encoding = try UpdateEncoding(name: compression)
        let download = try UpdateEncoding(name: downloadCompression)
        if traceMemoryMs > 0 {
            let interval = traceMemoryMs
            Thread.detachNewThread {
                let start = ContinuousClock.now
                while true {
                    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
                    let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
                    FileHandle.standardError.write(Data("\((ContinuousClock.now - start).seconds) \(rss)\n".utf8))
                    Thread.sleep(forTimeInterval: Double(interval) / 1000)
                }
            }
        }
        try runBlocking {
            try await Self.measure(
                parameters: parameters, clients: clients, rounds: rounds, limits: limits,
                clientProcesses: processes, secure: secure, encoding: encoding, download: download)
        }
    }

    static func measure(
        parameters: Int, clients: Int, rounds: Int, limits: TransportLimits,
        clientProcesses: Bool, secure: SecureAggregationSettings? = nil, encoding: UpdateEncoding = .float32,
        download: UpdateEncoding = .float32
    ) async throws {
        let start = ContinuousClock.now
        let pki = try TemporaryPKI(name: "tessera-bench")
        defer { pki.remove() }
        let sites = (0..<clients).map { "site-\($0)" }
        var job = JobConfiguration(
            jobID: "bench", rounds: rounds, sites: sites, minClients: clients,
            gracePeriod: .zero, maxUpdateBytes: parameters * 4 + 1024)
        job.secureAggregation = secure
        job.taskConfig = encoding.taskConfig  // the sites encode their updates as the task says
        job.downloadEncoding = download
        // The initial model is built in place: held by the coordinator only, it is updated in place every round.
        let coordinator = Coordinator(
            configuration: job,
            initialModel: ParameterSet([
                ParameterTensor(
                    name: "w", shape: [parameters], values: [Float](repeating: 0.5, count: parameters))
            ]),
            strategy: FedAvg(), clock: ContinuousClock())
        let events = await coordinator.observe()
        let server = GRPCFederationServer(
            service: coordinator, host: "127.0.0.1", port: 0,
            tls: try pki.issue("server", role: "server"), limits: limits)
        let credentials = try sites.map { try pki.issue($0, role: "site") }
        let clientPeaks = Mutex<[Double]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            let port = try await server.listeningPort()
            group.addTask {
                var last = start
                var lastCPU = cpuSeconds(RUSAGE_SELF)
                for await event in events {
                    if case .jobFinished = event { break }
                    if case .jobFailed = event { break }
                    guard case .roundClosed(let round, let participants, _) = event else { continue }
                    let now = ContinuousClock.now
                    let seconds = (now - last).seconds
                    let cpu = cpuSeconds(RUSAGE_SELF)
                    let serverCPU = cpu - lastCPU
                    (last, lastCPU) = (now, cpu)
                    emitLine(
                        #"{"bench":"federation-round","parameters":\#(parameters),"clients":\#(clients),"#
                            + #""secure_aggregation":\#(secure != nil),"compression":"\#(encoding.name)","#
                            + #""download_compression":"\#(download.name)","#
                            + #""client_processes":\#(clientProcesses),"round":\#(round),"#
                            + #""participants":\#(participants.count),"seconds":\#(seconds),"#
                            + #""server_cpu_seconds":\#(serverCPU),"#
                            + #""peak_rss_mb":\#(peakRSSMegabytes())}"#)
                    if round == rounds { break }
                }
            }
            group.addTask { _ = try await coordinator.run() }
            if clientProcesses {
                let peaks = try await Self.runClientProcesses(
                    sites: sites, credentials: credentials, port: port,
                    limits: limits, secure: secure != nil)
                clientPeaks.withLock { $0 = peaks }
            } else {
                try await Self.runClientsInProcess(
                    sites: sites, credentials: credentials, port: port, limits: limits, secure: secure != nil)
            }
            server.beginGracefulShutdown()
            try await group.waitForAll()
        }
        let records = await coordinator.records
        let rebuilds = await coordinator.sumRebuilds
        let peaks = clientPeaks.withLock { $0 }
        let io = ioBytes()
        emitLine(
            #"{"bench":"federation-round-summary","parameters":\#(parameters),"clients":\#(clients),"#
                + #""secure_aggregation":\#(secure != nil),"neighbours":\#(secure?.neighbours ?? 0),"#
                + #""compression":"\#(encoding.name)","#
                + #""download_compression":"\#(download.name)","#
                + #""server_read_bytes":\#(io.read),"server_written_bytes":\#(io.written),"#
                + #""client_written_bytes_total":\#(peaks.isEmpty ? -1 : lastClientWrittenBytes.withLock { $0 }),"#
                + #""client_processes":\#(clientProcesses),"rounds":\#(records.count),"#
                + #""chunk_scalars":\#(limits.chunkScalars),"window_bytes":\#(limits.targetWindowSize),"#
                + #""frame_bytes":\#(limits.maxFrameSize),"download_chunks":\#(limits.downloadChunksPerCall),"#
                + #""sum_rebuilds":\#(rebuilds),"server_peak_rss_mb":\#(peakRSSMegabytes()),"#
                + #""client_peak_rss_mb_max":\#(peaks.max() ?? -1),"client_peak_rss_mb_total":\#(peaks.reduce(0, +)),"#
                + #""wall_seconds":\#((ContinuousClock.now - start).seconds),"#
                + #""server_cpu_seconds":\#(cpuSeconds(RUSAGE_SELF)),"#
                + #""client_cpu_seconds":\#(cpuSeconds(RUSAGE_CHILDREN)),"#
                + #""load_average":"\#(loadAverage())"}"#)
    }

    static func runClientsInProcess(
        sites: [String], credentials: [MutualTLSFiles], port: Int,
        limits: TransportLimits, secure: Bool
    ) async throws {
        var connections: [GRPCFederationConnection] = []
        for files in credentials {
            connections.append(
                try GRPCFederationConnection(
                    host: "127.0.0.1", port: port, tls: files,
                    serverName: "localhost", limits: limits))
        }
        try await withThrowingTaskGroup(of: Void.self) { agents in
            for ((site, connection), files) in zip(zip(sites, connections), credentials) {
                var agent = SiteAgent(
                    site: site, connection: connection, trainer: DeltaTrainer(),
                    clock: ContinuousClock(), chunkScalars: limits.chunkScalars)
                if secure { agent.secureAggregation = try Self.credentials(site, files) }
                agents.addTask { _ = try await agent.run() }
            }
            try await agents.waitForAll()
        }
        for connection in connections { await connection.close() }
    }

    static func credentials(_ site: String, _ files: MutualTLSFiles) throws -> SecureAggregationCredentials {
        try SecureAggregationCredentials.load(
            site: site, certificatePath: files.certificateChain, privateKeyPath: files.privateKey,
            caPath: files.trustRoots, minimumParticipants: 2)
    }

    /// Starts one `federation-client` child per site and waits for all; returns each one's peak RSS, MiB.
    static func runClientProcesses(
        sites: [String], credentials: [MutualTLSFiles], port: Int,
        limits: TransportLimits, secure: Bool
    ) async throws -> [Double] {
        var children: [(Process, Pipe)] = []
        for (site, files) in zip(sites, credentials) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
            process.arguments =
                [
                    "federation-client", "--port", "\(port)", "--site", site,
                    "--certificate", files.certificateChain, "--key", files.privateKey,
                    "--ca", files.trustRoots,
                ] + TransportOptions.arguments(for: limits) + (secure ? ["--secure-aggregation"] : [])
            // A profiler preloaded into the server (heaptrack) stays out of the clients.
            process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "LD_PRELOAD" }
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            children.append((process, output))
        }
        var peaks: [Double] = []
        var written = 0
        for (process, output) in children {
            // Blocking reads belong on their own thread, not on the cooperative pool the server runs on.
            let text = await withCheckedContinuation { (done: CheckedContinuation<String, Never>) in
                Thread.detachNewThread {
                    // Read to the end first (a full pipe would block the child), then reap it.
                    let data = output.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    done.resume(returning: String(decoding: data, as: UTF8.self))
                }
            }
            guard process.terminationStatus == 0,
                let line = text.split(separator: "\n").last(where: { $0.contains("peak_rss_mb") }),
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let peak = object["peak_rss_mb"] as? Double
            else {
                throw ValidationError("a client process failed (status \(process.terminationStatus)): \(text)")
            }
            peaks.append(peak)
            written += (object["written_bytes"] as? Int) ?? 0
        }
        lastClientWrittenBytes.withLock { $0 = written }
        return peaks
    }
}

/// Bytes the last `runClientProcesses` children wrote in all (sockets included), from their own reports.
let lastClientWrittenBytes = Mutex<Int>(0)

/// Bytes this process read and wrote through system calls (sockets included: what went over the wire, TLS records),
/// from /proc/self/io; -1 where there is no /proc.
func ioBytes() -> (read: Int, written: Int) {
    guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return (-1, -1) }
    func value(_ key: String) -> Int {
        text.split(separator: "\n").first { $0.hasPrefix(key + ":") }.flatMap {
            Int($0.split(separator: " ").last ?? "")
        } ?? -1
    }
    return (value("rchar"), value("wchar"))
}

/// One benchmark client in its own process: a `SiteAgent` with `DeltaTrainer` over gRPC + mTLS, until the job ends.
/// Prints one JSON line with its peak RSS.
struct FederationClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "federation-client")

    @Option(help: "Server host.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port: Int
    @Option(help: "Site name (the certificate's CN).") var site: String
    @Option(help: "Site certificate, PEM.") var certificate: String
    @Option(help: "Site private key, PEM.") var key: String
    @Option(help: "Project CA certificate, PEM.") var ca: String
    @Flag(help: "Take part in secure aggregation with this certificate.") var secureAggregation = false
    @OptionGroup var transport: TransportOptions

    func validate() throws { try transport.validate() }

    func run() throws {
        MemoryPolicy.retainFreedMemory()  // as `tessera client` does (a site trains); the server does not
        let (host, port, site, limits, secure) = (host, port, site, transport.limits, secureAggregation)
        let files = MutualTLSFiles(certificateChain: certificate, privateKey: key, trustRoots: ca)
        try runBlocking {
            let connection = try GRPCFederationConnection(
                host: host, port: port, tls: files, serverName: "localhost",
                limits: limits)
            var agent = SiteAgent(
                site: site, connection: connection, trainer: DeltaTrainer(),
                clock: ContinuousClock(), chunkScalars: limits.chunkScalars)
            if secure { agent.secureAggregation = try FederationRound.credentials(site, files) }
            let rounds = try await agent.run()
            await connection.close()
            let io = ioBytes()
            emitLine(
                #"{"bench":"federation-client","site":"\#(site)","rounds":\#(rounds.count),"#
                    + #""read_bytes":\#(io.read),"written_bytes":\#(io.written),"#
                    + #""peak_rss_mb":\#(peakRSSMegabytes())}"#)
        }
    }
}

/// Chunk size and HTTP/2 tuning, shared by the server and its client processes.
struct TransportOptions: ParsableArguments {
    @Option(help: "Values per chunk on the wire.") var chunkScalars = TransportLimits.defaults.chunkScalars
    @Option(help: "HTTP/2 flow-control window, bytes.") var windowBytes = TransportLimits.defaults.targetWindowSize
    @Option(help: "HTTP/2 maximum frame size, bytes.") var frameBytes = TransportLimits.defaults.maxFrameSize
    @Option(help: "Chunks the server sends per model-download call (the site pulls range after range).")
    var downloadChunks = TransportLimits.defaults.downloadChunksPerCall

    func validate() throws {
        guard chunkScalars >= 1, chunkScalars <= 1 << 22 else {
            throw ValidationError("--chunk-scalars must be in 1...4194304")
        }
        guard windowBytes >= 1 << 16, windowBytes <= (1 << 31) - 1 else {
            throw ValidationError("--window-bytes must be in 65536...2147483647")
        }
        guard frameBytes >= 1 << 14, frameBytes <= (1 << 24) - 1 else {
            throw ValidationError("--frame-bytes must be in 16384...16777215 (HTTP/2's range)")
        }
        guard downloadChunks >= 1 else { throw ValidationError("--download-chunks must be at least 1") }
    }

    var limits: TransportLimits {
        TransportLimits(
            maxMessageBytes: chunkScalars * 4 + 64 << 10, chunkScalars: chunkScalars,
            targetWindowSize: windowBytes, maxFrameSize: frameBytes, downloadChunksPerCall: downloadChunks)
    }

    static func arguments(for limits: TransportLimits) -> [String] {
        [
            "--chunk-scalars", "\(limits.chunkScalars)", "--window-bytes", "\(limits.targetWindowSize)",
            "--frame-bytes", "\(limits.maxFrameSize)", "--download-chunks", "\(limits.downloadChunksPerCall)",
        ]
    }
}

/// Returns the global model plus 0.001 per value, with 100 samples: no training, only the federation's overhead.
private struct DeltaTrainer: LocalTrainer {
    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        // One pass per tensor, written once (no zero fill first): the "training" should cost next to nothing.
        let weights = ParameterSet(
            global.tensors.map { t in
                ParameterTensor(
                    name: t.name, shape: t.shape,
                    values: [Float](unsafeUninitializedCapacity: t.count) { w, n in
                        t.values.withUnsafeBufferPointer { g in for i in 0..<g.count { w[i] = g[i] + 0.001 } }
                        n = t.count
                    })
            })
        return (weights, 100, [:])
    }
}

/// Writes one line to standard output at once (unbuffered: the lines of a run interleave in time order).
func emitLine(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

/// Runs `body` to completion from synchronous code (the root command is synchronous).
func runBlocking(_ body: @escaping @Sendable () async throws -> Void) throws {
    let outcome = Mutex<Result<Void, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            try await body()
            outcome.withLock { $0 = .success(()) }
        } catch {
            outcome.withLock { $0 = .failure(error) }
        }
        done.signal()
    }
    done.wait()
    try outcome.withLock { $0 }?.get()
}

/// User + system CPU seconds of this process (`RUSAGE_SELF`) or of its finished children (`RUSAGE_CHILDREN`).
func cpuSeconds(_ who: __rusage_who) -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(who.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) * 1e-6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) * 1e-6
}

/// The 1-, 5- and 15-minute load averages (others' work on this machine shows here).
func loadAverage() -> String {
    ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").prefix(3)
        .joined(separator: " ")
}

/// Peak resident set size of this process (VmHWM in /proc/self/status), MiB; -1 where there is no /proc.
func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kB = Double(line.split(separator: " ").dropFirst().first ?? "")
    else { return -1 }
    return kB / 1024
}

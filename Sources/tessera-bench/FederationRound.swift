import ArgumentParser
import FederationClient
import FederationCore
import FederationGRPC
import FederationTestSupport
import FederationServer
import Foundation
import Synchronization

/// Federation round overhead, as `../shared/bench/fl_flwr_legacy.py` and `fl_nvflare_run.py` measure it: a
/// synthetic model of N float32 parameters, K clients that do no training (they return the model plus a small
/// delta), R rounds of FedAvg. Server and clients run in this one process over loopback gRPC with mutual TLS
/// (a throw-away CA). One JSON line per round: seconds from the previous round's close (from the start for round
/// 1) and the process's peak RSS so far (server and all clients together: an upper bound for the server's).
struct FederationRound: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "federation-round")

    @Option(help: "Model parameters (float32).") var parameters = 1_000_000
    @Option(help: "Clients (sites).") var clients = 3
    @Option(help: "Rounds.") var rounds = 3
    @Option(help: "Values per chunk on the wire.") var chunkScalars = 1 << 20

    func validate() throws {
        guard parameters >= 1, clients >= 1, rounds >= 1 else {
            throw ValidationError("--parameters, --clients and --rounds must be at least 1")
        }
        guard chunkScalars >= 1, chunkScalars <= 1 << 22 else {
            throw ValidationError("--chunk-scalars must be in 1...4194304")
        }
    }

    /// The root command is synchronous: wait here for the asynchronous measurement.
    func run() throws {
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let (parameters, clients, rounds, chunkScalars) = (parameters, clients, rounds, chunkScalars)
        Task {
            do {
                try await Self.measure(parameters: parameters, clients: clients, rounds: rounds,
                                       chunkScalars: chunkScalars)
                outcome.withLock { $0 = .success(()) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        try outcome.withLock { $0 }?.get()
    }

    static func measure(parameters: Int, clients: Int, rounds: Int, chunkScalars: Int) async throws {
        let pki = try TemporaryPKI(name: "tessera-bench")
        defer { pki.remove() }
        let sites = (0..<clients).map { "site-\($0)" }
        let model = ParameterSet([ParameterTensor(name: "w", shape: [parameters],
                                                  values: [Float](repeating: 0.5, count: parameters))])
        let job = JobConfiguration(jobID: "bench", rounds: rounds, sites: sites, minClients: clients,
                                   gracePeriod: .zero, maxUpdateBytes: parameters * 4 + 1024)
        let coordinator = Coordinator(configuration: job, initialModel: model, strategy: FedAvg(),
                                      clock: ContinuousClock())
        let events = await coordinator.observe()
        let limits = TransportLimits(maxMessageBytes: chunkScalars * 4 + 64 << 10, chunkScalars: chunkScalars)
        let server = GRPCFederationServer(service: coordinator, host: "127.0.0.1", port: 0,
                                          tls: try pki.issue("server", role: "server"), limits: limits)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            let port = try await server.listeningPort()
            group.addTask {
                var last = start
                for await event in events {
                    if case .jobFinished = event { break }
                    if case .jobFailed = event { break }
                    guard case let .roundClosed(round, participants, _) = event else { continue }
                    let now = ContinuousClock.now, elapsed = (now - last).components
                    let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
                    last = now
                    print(#"{"bench":"federation-round","parameters":\#(parameters),"clients":\#(clients),"#
                          + #""round":\#(round),"participants":\#(participants.count),"seconds":\#(seconds),"#
                          + #""peak_rss_mb":\#(peakRSSMegabytes())}"#)
                    if round == rounds { break }
                }
            }
            var connections: [GRPCFederationConnection] = []
            for site in sites {
                connections.append(try GRPCFederationConnection(host: "127.0.0.1", port: port,
                                                                tls: try pki.issue(site, role: "site"),
                                                                serverName: "localhost", limits: limits))
            }
            group.addTask { _ = try await coordinator.run() }
            try await withThrowingTaskGroup(of: Void.self) { agents in
                for (site, connection) in zip(sites, connections) {
                    let agent = SiteAgent(site: site, connection: connection, trainer: DeltaTrainer(),
                                          clock: ContinuousClock(),
                                          chunkScalars: chunkScalars)
                    agents.addTask { _ = try await agent.run() }
                }
                try await agents.waitForAll()
            }
            for connection in connections { await connection.close() }
            server.beginGracefulShutdown()
            try await group.waitForAll()
        }
    }
}

/// Returns the global model plus 0.001 per value, with 100 samples: no training, only the federation's overhead.
private struct DeltaTrainer: LocalTrainer {
    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double]) {
        let weights = ParameterSet(global.tensors.map {
            ParameterTensor(name: $0.name, shape: $0.shape, values: $0.values.map { $0 + 0.001 })
        })
        return (weights, 100, [:])
    }
}

/// Peak resident set size of this process (VmHWM in /proc/self/status), MiB; -1 where there is no /proc.
func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kB = Double(line.split(separator: " ").dropFirst().first ?? "") else { return -1 }
    return kB / 1024
}


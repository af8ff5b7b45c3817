import ExperimentTracking
import FederationCore
import FederationGRPC
import FederationTestSupport
import Foundation
import Testing

/// `tessera server --metrics-address --tensorboard` and `tessera client --tensorboard` as an operator runs them: a
/// two-round job over real processes, then the server's Prometheus endpoint scraped over loopback and the
/// TensorBoard event files of the server and of each site read back.
@Suite("Metrics and TensorBoard over real processes", .serialized)
struct ObservabilityProcessTests {
    @Test(
        "A two-round job: the scrape counts its rounds and results; server and sites wrote their curves",
        .timeLimit(.minutes(10)))
    func metricsAndEventFiles() async throws {
        let cluster = try ProcessCluster()
        let board = cluster.path("tensorboard")
        try await cluster.startServer(extra: [
            "--metrics-address", "127.0.0.1:0", "--tensorboard", board + "/server",
        ])
        // The endpoint is up before the server listens: its log line is already written.
        let line = cluster.logText("server").split(separator: "\n").first { $0.contains("/metrics") } ?? ""
        let port = try #require(
            line.split(separator: ":").last.flatMap { Int($0.split(separator: "/").first ?? "") }, "\(line)")
        let admin = try cluster.admin()
        let sites = Array(ProcessCluster.sites.prefix(2))
        let job = try await admin.submit(
            pipeline: try cluster.pipeline(rounds: 2, minClients: 2, sites: sites), name: "observed")
        let events = try await cluster.events(admin, job: job) { event in
            if case .roundStarted(1, 0, _) = event {
                for site in sites { try cluster.startClient(site, extra: ["--tensorboard", board + "/" + site]) }
            }
            return false
        }
        #expect(events.last == .jobFinished, "\(events.suffix(3))")
        for site in sites {
            #expect(try await cluster.waitForClient(site) == 0, "\(site): \(cluster.logText(site))")
        }

        let response = try await LoopbackHTTP.request("GET /metrics HTTP/1.1\r\n\r\n", port: port)
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(response.prefix(300))")
        let values = LoopbackHTTP.samples(response)
        #expect(values["tessera_rounds_started_total"] == 2, "\(response)")
        #expect(values["tessera_rounds_closed_total"] == 2)
        #expect(values["tessera_round_duration_seconds_count"] == 2)
        for site in sites {
            #expect(values["tessera_results_accepted_total{site=\"\(site)\"}"] == 2, "\(site)")
        }
        #expect(values[#"tessera_jobs{state="finished"}"#] == 1)
        #expect(values[#"tessera_jobs_ended_total{state="finished"}"#] == 1)
        // Each site downloaded the model twice and uploaded two diffs over TLS: far more than a few kB both ways.
        #expect((values[#"tessera_transport_bytes_total{direction="in"}"#] ?? 0) > 10_000)
        #expect((values[#"tessera_transport_bytes_total{direction="out"}"#] ?? 0) > 10_000)
        #expect((values["tessera_connections_accepted_total"] ?? 0) >= 3)

        // The server: global means, timings and bytes per round; each site's reported metrics in its own run.
        let global = try EventFileReader.run(board + "/server/" + job)
        #expect(global["metrics/dice"]?.map(\.step) == [1, 2], "\(global.keys.sorted())")
        #expect(global["round/participants"]?.map(\.value) == [2, 2])
        #expect(global["round/duration_seconds"]?.allSatisfy { $0.value > 0 } == true)
        #expect(global["transport/bytes_in"]?.allSatisfy { $0.value > 1000 } == true)
        for site in sites {
            let reported = try EventFileReader.run(board + "/server/" + job + "/sites/" + site)
            let local = try EventFileReader.run(board + "/" + site + "/" + job)
            #expect(reported["metrics/dice"]?.map(\.step) == [1, 2], "\(site): \(reported.keys.sorted())")
            // What the site wrote for itself is what the server received from it.
            #expect(local["local/dice"]?.map(\.value) == reported["metrics/dice"]?.map(\.value), "\(site)")
            #expect(local["local/train_seconds"]?.count == 2, "\(site): \(local.keys.sorted())")
            // One local epoch a round: the loss of each, one after another.
            #expect(local["local/epoch_train_loss"]?.map(\.step) == [1, 2], "\(site): \(local.keys.sorted())")
            #expect(local["local/epoch_train_loss"]?.allSatisfy { $0.value.isFinite && $0.value > 0 } == true)
        }
        // The global Dice is the sample-weighted mean of the sites' (float32 in the files).
        for round in 0..<2 {
            let pairs = try sites.map { site -> (Double, Double) in
                let reported = try EventFileReader.run(board + "/server/" + job + "/sites/" + site)
                let n = Double(reported["metrics/train_slices"]?[round].value ?? 0)
                return (n, Double(reported["metrics/dice"]?[round].value ?? 0))
            }
            let mean = pairs.map { $0.0 * $0.1 }.reduce(0, +) / pairs.map(\.0).reduce(0, +)
            let written = Double(global["metrics/dice"]?[round].value ?? -1)
            #expect(abs(written - mean) < 1e-6, "round \(round + 1): \(written) vs \(mean)")
        }
    }

    @Test(
        "tessera simulate --tensorboard: the server's run in DIR/server, each site's own in DIR/<site>",
        .timeLimit(.minutes(10)))
    func simulateWritesEventFiles() async throws {
        let cluster = try ProcessCluster()
        let pipeline = cluster.path("pipeline.yaml")
        try cluster.pipeline(rounds: 2, minClients: 3).write(toFile: pipeline, atomically: true, encoding: .utf8)
        let board = cluster.path("tensorboard")
        let (status, output) = try await cluster.tessera(
            [
                "simulate", pipeline, "--data", ProcessCluster.repository.appendingPathComponent("sample-data").path,
                "--output", cluster.path("simulate"), "--no-baselines", "--tensorboard", board,
            ], deadline: .seconds(400))
        try #require(status == 0, "\(output)")
        // The study's one job: the server's global means and the three sites' reports, per round.
        let global = try EventFileReader.run(board + "/server/job-0001")
        #expect(global["metrics/dice"]?.map(\.step) == [1, 2], "\(global.keys.sorted())")
        #expect(global["round/participants"]?.map(\.value) == [3, 3])
        for site in ProcessCluster.sites {
            let reported = try EventFileReader.run(board + "/server/job-0001/sites/" + site)
            let local = try EventFileReader.run(board + "/" + site + "/job-0001")
            #expect(reported["metrics/dice"]?.map(\.step) == [1, 2], "\(site): \(reported.keys.sorted())")
            #expect(local["local/dice"]?.map(\.value) == reported["metrics/dice"]?.map(\.value), "\(site)")
            #expect(local["local/epoch_train_loss"]?.map(\.step) == [1, 2], "\(site): \(local.keys.sorted())")
        }
    }
}

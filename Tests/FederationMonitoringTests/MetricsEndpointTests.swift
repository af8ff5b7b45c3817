import FederationCore
import FederationGRPC
import FederationMonitoring
import FederationServer
import FederationTestSupport
import Foundation
import Testing

/// The Prometheus endpoint over a real socket: the values a known sequence of job events and a known server state
/// produce, and what the responder answers to anything but `GET /metrics`.
@Suite("Metrics endpoint")
struct MetricsEndpointTests {
    @Test("A known sequence of events and state, scraped over loopback, gives exactly the expected values")
    func scrapeAfterEvents() async throws {
        let metrics = ServerMetrics()
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let events: [(JobEvent, Double)] = [
            (.roundStarted(round: 1, attempt: 0, sites: ["a", "b"]), 0),
            (.resultAccepted(round: 1, site: "a", sampleCount: 10, metrics: ["dice": 0.5]), 4),
            (.siteDeclined(round: 1, site: "b", reason: "its privacy budget has no room"), 5),
            (.roundRetried(round: 1, attempt: 1, reason: "1 of 2 results"), 6),
            (.roundStarted(round: 1, attempt: 1, sites: ["a", "b"]), 6),
            (.resultRejected(round: 1, site: "b", reason: "result from b rejected: a value is not finite"), 8),
            (.resultAccepted(round: 1, site: "a", sampleCount: 10, metrics: ["dice": 0.6]), 10),
            (.resultAccepted(round: 1, site: "b", sampleCount: 12, metrics: ["dice": 0.7]), 12),
            (.roundClosed(round: 1, participants: ["a", "b"], reason: "all"), 18.5),
            (.jobFinished, 19),
        ]
        for (event, seconds) in events {
            metrics.observe(event, job: "job-0001", at: t0.addingTimeInterval(seconds))
        }
        var running = JobSummary(
            jobID: "job-0002", name: "n", kind: .training, state: .running, rounds: 3, completedRounds: 1,
            sites: ["a"], reason: "", submittedBy: "lead", submittedAt: "", finishedAt: "")
        running.siteStates = [SiteState(site: "a", secondsSinceSeen: 3, lastRound: 1, lastMetrics: [:])]
        var finished = running
        finished.jobID = "job-0001"
        finished.state = .finished
        var connections = ConnectionStatistics()
        connections.established = 2
        connections.accepted = 5
        connections.refused = 1
        connections.bytesIn = 1000
        connections.bytesOut = 4000
        metrics.refresh(jobs: [finished, running], connections: connections, now: t0.addingTimeInterval(100))
        connections.accepted = 7
        connections.bytesIn = 1500
        let later = t0.addingTimeInterval(100)
        let (jobs, scraped) = ([finished, running], connections)
        let endpoint = MetricsEndpoint(port: 0) {
            metrics.refresh(jobs: jobs, connections: scraped, now: later)
            return metrics.render()
        }
        let port = try await endpoint.start()
        defer { Task { await endpoint.stop() } }

        let response = try await LoopbackHTTP.request("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", port: port)
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(response)")
        #expect(response.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
        let body = response.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        #expect(response.contains("Content-Length: \(body.utf8.count)\r\n"))
        let values = LoopbackHTTP.samples(body)
        let expected: [String: Double] = [
            "tessera_rounds_started_total": 2,
            "tessera_rounds_retried_total": 1,
            "tessera_rounds_closed_total": 1,
            #"tessera_results_accepted_total{site="a"}"#: 2,
            #"tessera_results_accepted_total{site="b"}"#: 1,
            #"tessera_results_refused_total{reason="declined",site="b"}"#: 1,
            #"tessera_results_refused_total{reason="non_finite",site="b"}"#: 1,
            #"tessera_jobs_ended_total{state="finished"}"#: 1,
            // The second attempt's start (6 s) to the close (18.5 s).
            "tessera_round_duration_seconds_count": 1,
            "tessera_round_duration_seconds_sum": 12.5,
            #"tessera_round_duration_seconds_bucket{le="10.0"}"#: 0,
            #"tessera_round_duration_seconds_bucket{le="30.0"}"#: 1,
            #"tessera_jobs{state="running"}"#: 1,
            #"tessera_jobs{state="finished"}"#: 1,
            #"tessera_jobs{state="queued"}"#: 0,
            #"tessera_site_last_contact_timestamp_seconds{site="a"}"#: 1_800_000_097,
            #"tessera_site_last_round{site="a"}"#: 1,
            #"tessera_connections{state="established"}"#: 2,
            "tessera_connections_accepted_total": 7,
            #"tessera_connections_closed_total{reason="over_cap"}"#: 1,
            #"tessera_transport_bytes_total{direction="in"}"#: 1500,
            #"tessera_transport_bytes_total{direction="out"}"#: 4000,
        ]
        for (name, value) in expected.sorted(by: { $0.key < $1.key }) {
            let read = values[name]
            #expect(read == value, "\(name): \(read.map { "\($0)" } ?? "absent")\n\(body)")
        }
    }

    @Test(
        "Anything but GET /metrics is 404, a malformed request line 400, an oversized head 431",
        arguments: [
            ("GET / HTTP/1.1\r\n\r\n", "404 Not Found"),
            ("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "404 Not Found"),
            ("GET /metrics/../etc HTTP/1.1\r\n\r\n", "404 Not Found"),
            ("GET /metrics?x=1 HTTP/1.0\r\n\r\n", "200 OK"),
            ("HELLO\r\n\r\n", "400 Bad Request"),
            (Self.oversized, "431 Request Header Fields Too Large"),
        ] as [(String, String)])
    func refusals(request: String, status: String) async throws {
        let endpoint = MetricsEndpoint(port: 0) { "up 1\n" }
        let port = try await endpoint.start()
        defer { Task { await endpoint.stop() } }
        let response = try await LoopbackHTTP.request(request, port: port)
        #expect(response.hasPrefix("HTTP/1.1 \(status)\r\n"), "\(response.prefix(200))")
        #expect(response.contains("Connection: close\r\n"))
    }

    @Test("Before any event the round counters and the duration histogram are exported at 0")
    func zeroAtStart() {
        let values = LoopbackHTTP.samples(ServerMetrics().render())
        for name in [
            "tessera_rounds_started_total", "tessera_rounds_closed_total", "tessera_rounds_retried_total",
            "tessera_cross_site_evaluations_total", "tessera_connections_accepted_total",
            "tessera_round_duration_seconds_count", #"tessera_round_duration_seconds_bucket{le="+Inf"}"#,
        ] {
            #expect(values[name] == 0, "\(name)")
        }
    }

    @Test("Refusal messages fall into the bounded reasons")
    func reasons() {
        let cases: [(String, RefusalReason)] = [
            ("result from b rejected: a value is not finite", .nonFinite),
            ("result from b reports 9 metrics (at most 64)", .tooLarge),
            ("counted, then taken out with the round's sums: another result failed part-way", .resent),
            ("no result stream open for b", .stale),
            ("the site sent no model", .missing),
            ("the tensor conv.weight has shape [3] but the model's is [4]", .shape),
            ("something new", .other),
        ]
        // Compressed chunks refused as they are read (EncodedValues.check), in the words the server records.
        func encodedRefusal(_ count: Int, _ bytes: [UInt8]) -> String {
            do {
                _ = try EncodedValues(
                    encoding: .int8Blocks(blockSize: 16), count: count, bytes: bytes[...], maxCount: 1 << 17)
                return ""
            } catch { return "result from b rejected: chunk of 'w': \(error.message)" }
        }
        let nanScale: [UInt8] = [0x00, 0x00, 0xC0, 0x7F] + [UInt8](repeating: 1, count: 16)
        let encodedCases: [(String, RefusalReason)] = [
            (encodedRefusal(16, Array(nanScale.dropLast())), .shape),
            (encodedRefusal(16, nanScale), .nonFinite),
            (encodedRefusal(1 << 40, nanScale), .tooLarge),
        ]
        for (message, reason) in cases + encodedCases {
            #expect(RefusalReason(.resultRejected(round: 1, site: "b", reason: message)) == reason, "\(message)")
        }
        #expect(RefusalReason(.siteDeclined(round: 1, site: "b", reason: "x")) == .declined)
        #expect(RefusalReason(.jobFinished) == nil)
    }

    // MARK: - Helpers

    /// A request head of more than 8192 bytes (the endpoint's limit).
    static let oversized = "GET /metrics HTTP/1.1\r\nX-Fill: " + String(repeating: "a", count: 9000) + "\r\n\r\n"

}

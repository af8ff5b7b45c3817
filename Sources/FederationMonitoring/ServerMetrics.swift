import CoreMetrics
import FederationCore
import FederationGRPC
import FederationServer
import Foundation
import Prometheus
import Synchronization

/// The server's Prometheus metrics (`tessera server --metrics-address`): counters fed by the jobs' event stream
/// (a `JobObserver`), and gauges of the server's state brought up to date before each scrape (`refresh`). Metric
/// names, types and labels are listed in docs/operations-observability.md; every label takes a bounded set of values
/// (site names come from certificates the project CA issued, refusal reasons from `RefusalReason`).
public final class ServerMetrics: JobObserver {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let state = Mutex(State())

    private struct State {
        /// When each job's current round attempt started (for its duration).
        var roundStarts: [String: Date] = [:]
        /// The transport counters at the last refresh (counters only go up: each refresh adds the difference).
        var connections = ConnectionStatistics()
    }

    /// Buckets of `tessera_round_duration_seconds`: rounds last from seconds to the round timeout (default 10 min).
    public static let roundDurationBuckets: [Duration] = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600].map {
        .seconds($0)
    }

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["tessera_round_duration_seconds"] = Self.roundDurationBuckets
        self.factory = factory
        // Exported at 0 from the start, so a dashboard sees them before the first round.
        for name in [
            "tessera_rounds_started_total", "tessera_rounds_closed_total", "tessera_rounds_retried_total",
            "tessera_cross_site_evaluations_total", "tessera_connections_accepted_total",
        ] {
            _ = counter(name)
        }
        _ = CoreMetrics.Timer(label: "tessera_round_duration_seconds", factory: factory)
    }

    /// The exposition text (Prometheus text format 0.0.4).
    public func render() -> String { registry.emitToString() }

    // MARK: - The event stream

    public func observe(_ event: JobEvent, job: String, at time: Date) {
        switch event {
        case .roundStarted:
            counter("tessera_rounds_started_total").increment()
            state.withLock { $0.roundStarts[job] = time }
        case .roundClosed:
            counter("tessera_rounds_closed_total").increment()
            if let start = state.withLock({ $0.roundStarts.removeValue(forKey: job) }) {
                let seconds = max(0, time.timeIntervalSince(start))
                CoreMetrics.Timer(label: "tessera_round_duration_seconds", factory: factory)
                    .recordNanoseconds(Self.nanoseconds(seconds))
            }
        case .roundRetried:
            counter("tessera_rounds_retried_total").increment()
        case .resultAccepted(_, let site, _, _):
            counter("tessera_results_accepted_total", ["site": site]).increment()
        case .resultRejected, .siteDeclined:
            guard let reason = RefusalReason(event), let site = Self.site(of: event) else { return }
            counter("tessera_results_refused_total", ["site": site, "reason": reason.rawValue]).increment()
        case .localModelReceived(let site):
            counter("tessera_local_models_received_total", ["site": site]).increment()
        case .crossSiteEvaluated:
            counter("tessera_cross_site_evaluations_total").increment()
        case .jobFinished:
            counter("tessera_jobs_ended_total", ["state": JobState.finished.rawValue]).increment()
            state.withLock { _ = $0.roundStarts.removeValue(forKey: job) }
        case .jobFailed:
            counter("tessera_jobs_ended_total", ["state": JobState.failed.rawValue]).increment()
            state.withLock { _ = $0.roundStarts.removeValue(forKey: job) }
        case .gracePeriodStarted, .crossSiteStarted:
            break
        }
    }

    // MARK: - State, before each scrape

    /// Brings the gauges up to date: jobs by state, each site's last contact (from the running job), the
    /// transport's connections and the bytes it has moved since the last refresh.
    /// - Parameters:
    ///   - jobs: every job the server knows (`AdminService.status(jobID: nil)`).
    ///   - connections: the transport's statistics (`GRPCFederationServer.connectionStatistics`).
    ///   - now: the wall clock, for the sites' last contact as a Unix time.
    public func refresh(jobs: [JobSummary], connections: ConnectionStatistics?, now: Date) {
        for jobState in [JobState.queued, .running, .finished, .failed, .aborted] {
            gauge("tessera_jobs", ["state": jobState.rawValue]).record(jobs.filter { $0.state == jobState }.count)
        }
        for job in jobs where job.state == .running {
            for site in job.siteStates {
                guard let ago = site.secondsSinceSeen, ago.isFinite, ago >= 0 else { continue }
                gauge("tessera_site_last_contact_timestamp_seconds", ["site": site.site])
                    .record(now.timeIntervalSince1970 - ago)
                gauge("tessera_site_last_round", ["site": site.site]).record(site.lastRound)
            }
        }
        guard let connections else { return }
        gauge("tessera_connections", ["state": "established"]).record(connections.established)
        gauge("tessera_connections", ["state": "handshake"]).record(connections.pendingHandshakes)
        let last = state.withLock { s in
            defer { s.connections = connections }
            return s.connections
        }
        func add(_ name: String, _ labels: [String: String], _ path: KeyPath<ConnectionStatistics, Int>) {
            let delta = connections[keyPath: path] - last[keyPath: path]
            if delta > 0 { counter(name, labels).increment(by: Int64(delta)) }
        }
        add("tessera_connections_accepted_total", [:], \.accepted)
        add("tessera_connections_closed_total", ["reason": "over_cap"], \.refused)
        add("tessera_connections_closed_total", ["reason": "handshake_timeout"], \.handshakeTimeouts)
        add("tessera_connections_closed_total", ["reason": "handshake_evicted"], \.evicted)
        add("tessera_connections_closed_total", ["reason": "read_timeout"], \.readTimeouts)
        add("tessera_transport_bytes_total", ["direction": "in"], \.bytesIn)
        add("tessera_transport_bytes_total", ["direction": "out"], \.bytesOut)
    }

    // MARK: - Helpers

    private func counter(_ name: String, _ labels: [String: String] = [:]) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: name, dimensions: labels.sorted { $0.key < $1.key }, factory: factory)
    }

    private func gauge(_ name: String, _ labels: [String: String] = [:]) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: name, dimensions: labels.sorted { $0.key < $1.key }, factory: factory)
    }

    private static func site(of event: JobEvent) -> String? {
        switch event {
        case .resultRejected(_, let site, _), .siteDeclined(_, let site, _): site
        default: nil
        }
    }

    /// Seconds as nanoseconds, clamped to what an `Int64` holds (a round lasts at most days).
    static func nanoseconds(_ seconds: Double) -> Int64 {
        let value = (seconds * 1e9).rounded()
        guard value.isFinite, value < 9.2e18 else { return Int64.max }
        return Int64(exactly: value) ?? 0
    }
}

import CoreMetrics
import FederationCore
import Foundation
import Prometheus

/// A site's Prometheus metrics (`tessera client --metrics-address`): what its connection to the server did. It wraps
/// the site's `FederationConnection` (`connection(_:)`), so every call is counted in one place: tasks by kind,
/// results sent, model values received and sent (float32 bytes), failed calls by call, and the last time the server
/// answered. Nothing about the site's data is exported.
public final class SiteMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let now: @Sendable () -> Date

    public init(
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.registry = registry
        self.factory = PrometheusMetricsFactory(registry: registry)
        self.now = now
        _ = counter("tessera_site_results_sent_total")  // exported at 0 from the start
    }

    /// The exposition text (Prometheus text format 0.0.4).
    public func render() -> String { registry.emitToString() }

    /// `connection` with every call counted here.
    public func connection(_ connection: any FederationConnection) -> any FederationConnection {
        MeteredConnection(base: connection, metrics: self)
    }

    fileprivate func contact() {
        CoreMetrics.Gauge(label: "tessera_site_last_contact_timestamp_seconds", factory: factory)
            .record(now().timeIntervalSince1970)
    }

    fileprivate func failed(_ call: String) {
        counter("tessera_site_call_failures_total", [("call", call)]).increment()
    }

    fileprivate func counter(_ name: String, _ labels: [(String, String)] = []) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
    }

    /// Runs one call: a success is a contact with the server, a failure is counted under `call`.
    fileprivate func measure<T>(_ call: String, _ body: () async throws(FederationError) -> T)
        async throws(FederationError) -> T
    {
        do {
            let value = try await body()
            contact()
            return value
        } catch {
            failed(call)
            throw error
        }
    }
}

/// The site's connection, counted (`SiteMetrics.connection(_:)`).
private struct MeteredConnection: FederationConnection {
    let base: any FederationConnection
    let metrics: SiteMetrics

    func register(site: String) async throws(FederationError) -> String? {
        try await metrics.measure("register") { () async throws(FederationError) in
            try await base.register(site: site)
        }
    }

    func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        let task = try await metrics.measure("next_task") { () async throws(FederationError) in
            try await base.nextTask(site: site)
        }
        if let task { metrics.counter("tessera_site_tasks_total", [("kind", task.kind.rawValue)]).increment() }
        return task
    }

    func downloadModel(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk] {
        let chunks = try await metrics.measure("download_model") { () async throws(FederationError) in
            try await base.downloadModel(for: task, maxScalars: maxScalars)
        }
        received(chunks.reduce(0) { $0 + $1.values.count })
        return chunks
    }

    func downloadParameters(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> ParameterSet {
        let model = try await metrics.measure("download_model") { () async throws(FederationError) in
            try await base.downloadParameters(for: task, maxScalars: maxScalars)
        }
        received(model.scalarCount)
        return model
    }

    func downloadParameters(
        for task: TaskAssignment, maxScalars: Int, reusing storage: consuming ParameterSet?
    ) async throws(FederationError) -> ParameterSet {
        var spare = consume storage  // handed on, not kept: its arrays stay uniquely referenced
        let model = try await metrics.measure("download_model") { () async throws(FederationError) in
            try await base.downloadParameters(for: task, maxScalars: maxScalars, reusing: spare.take())
        }
        received(model.scalarCount)
        return model
    }

    /// Forwarded, so that the site still offers its held model (a change instead of the whole model) and the
    /// digest is still checked; counts the bytes that came.
    func downloadModel(
        for task: TaskAssignment, maxScalars: Int, holding held: inout HeldModel?
    ) async throws(FederationError) -> HeldModel {
        var spare = held.take()
        defer { held = spare.take() }
        let model = try await metrics.measure("download_model") { () async throws(FederationError) in
            try await base.downloadModel(for: task, maxScalars: maxScalars, holding: &spare)
        }
        metrics.counter("tessera_site_model_bytes_total", [("direction", "in")]).increment(by: model.receivedBytes)
        return model
    }

    func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
        try await metrics.measure("upload_result") { () async throws(FederationError) in
            try await base.uploadResult(header, chunks: chunks)
        }
        metrics.counter("tessera_site_results_sent_total").increment()
        // As they travel: encoded values (`federation.compression`) count their encoded bytes.
        let valueBytes = chunks.reduce(0) { $0 + $1.valueBytes }
        metrics.counter("tessera_site_model_bytes_total", [("direction", "out")])
            .increment(by: valueBytes + header.payload.count)
    }

    func heartbeat(site: String) async throws(FederationError) {
        try await metrics.measure("heartbeat") { () async throws(FederationError) in
            try await base.heartbeat(site: site)
        }
    }

    private func received(_ scalars: Int) {
        metrics.counter("tessera_site_model_bytes_total", [("direction", "in")])
            .increment(by: scalars * MemoryLayout<Float>.size)
    }
}

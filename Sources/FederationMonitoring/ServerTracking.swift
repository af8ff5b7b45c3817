import ExperimentTracking
import FederationCore
import FederationServer
import Foundation
import Synchronization

/// The server's TensorBoard event files (`tessera server --tensorboard DIR`), written from the jobs' event stream
/// (a `JobObserver`). Per job, step = round number:
///
/// - run `DIR/<job>`: `metrics/<name>`, the sample-weighted mean of each metric the round's participants reported
///   (the weights are the sample counts the server accepted); `round/duration_seconds` (the closing attempt's start
///   to its close), `round/participants`, `round/refused` (refusals and declines during the round) and
///   `transport/bytes_in`, `transport/bytes_out` (application bytes the server moved during the round, all
///   connections);
/// - run `DIR/<job>/sites/<site>`: `metrics/<name>` as the site reported it with each accepted result, and
///   `cross_site/<model>/<name>` for its cross-site evaluations (step = the last round).
///
/// A failed write is logged once per run and the job goes on: tracking never stops training.
public final class ServerTracking: JobObserver {
    public let folder: String
    private let transport = Mutex<(@Sendable () -> (in: Int, out: Int)?)?>(nil)
    private let log: @Sendable (String) -> Void
    private let state = Mutex(State())

    private struct State {
        var writers: [String: EventFileWriter] = [:]
        var failed: Set<String> = []
        var rounds: [String: Round] = [:]
        var lastRound: [String: Int] = [:]
    }

    private struct Round {
        var start: Date
        var bytes: (in: Int, out: Int)?
        var accepted: [(site: String, samples: Int, metrics: [String: Double])] = []
        var refused = 0
    }

    /// - Parameters:
    ///   - folder: TensorBoard's log directory (created when missing).
    ///   - log: where a failed write is said.
    public init(folder: String, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.folder = folder
        self.log = log
    }

    /// Where the round's transport bytes come from (`GRPCFederationServer.connectionStatistics`' `bytesIn`,
    /// `bytesOut`); until it is set, `transport/bytes_*` are not written.
    public func countBytes(with counters: @escaping @Sendable () -> (in: Int, out: Int)?) {
        transport.withLock { $0 = counters }
    }

    private func transportBytes() -> (in: Int, out: Int)? { transport.withLock { $0 }?() }

    public func observe(_ event: JobEvent, job: String, at time: Date) {
        let run = folder + "/" + EventFileWriter.component(job)
        switch event {
        case .roundStarted:
            let bytes = transportBytes()
            state.withLock { $0.rounds[job] = Round(start: time, bytes: bytes) }
        case .resultAccepted(let round, let site, let samples, let metrics):
            state.withLock { $0.rounds[job]?.accepted.append((site, samples, metrics)) }
            write(
                run + "/sites/" + EventFileWriter.component(site), Self.tagged("metrics/", metrics), step: round,
                at: time)
        case .resultRejected, .siteDeclined:
            state.withLock { $0.rounds[job]?.refused += 1 }
        case .roundClosed(let round, let participants, _):
            guard
                let closed = state.withLock({ s -> Round? in
                    s.lastRound[job] = round
                    return s.rounds.removeValue(forKey: job)
                })
            else { return }
            var values = Self.tagged("metrics/", Self.weightedMeans(closed.accepted, participants: participants))
            values.append(("round/duration_seconds", max(0, time.timeIntervalSince(closed.start))))
            values.append(("round/participants", Double(participants.count)))
            values.append(("round/refused", Double(closed.refused)))
            if let before = closed.bytes, let after = transportBytes() {
                values.append(("transport/bytes_in", Double(after.in - before.in)))
                values.append(("transport/bytes_out", Double(after.out - before.out)))
            }
            write(run, values, step: round, at: time)
        case .crossSiteEvaluated(let model, let site, let metrics):
            let step = state.withLock { $0.lastRound[job] ?? 0 }
            write(
                run + "/sites/" + EventFileWriter.component(site),
                Self.tagged("cross_site/\(EventFileWriter.component(model))/", metrics),
                step: step, at: time)
        case .jobFinished, .jobFailed:
            let writers = state.withLock { s in
                s.rounds[job] = nil
                s.lastRound[job] = nil
                let mine = s.writers.filter { $0.key == run || $0.key.hasPrefix(run + "/") }
                for key in mine.keys { s.writers[key] = nil }
                return Array(mine.values)
            }
            for writer in writers { writer.close() }
        case .gracePeriodStarted, .roundRetried, .crossSiteStarted, .localModelReceived:
            break
        }
    }

    /// Per metric, Σ nᵢ·mᵢ / Σ nᵢ over the participants' accepted results that report it (a result counted twice
    /// in a round, after a resend, counts once: its last one).
    static func weightedMeans(
        _ accepted: [(site: String, samples: Int, metrics: [String: Double])], participants: [String]
    ) -> [String: Double] {
        var last: [String: (samples: Int, metrics: [String: Double])] = [:]
        for result in accepted where participants.contains(result.site) {
            last[result.site] = (result.samples, result.metrics)
        }
        var sums: [String: (weighted: Double, weight: Double)] = [:]
        for (_, result) in last where result.samples > 0 {
            for (name, value) in result.metrics where value.isFinite {
                let n = Double(result.samples)
                sums[name, default: (0, 0)].weighted += n * value
                sums[name, default: (0, 0)].weight += n
            }
        }
        return sums.compactMapValues { $0.weight > 0 ? $0.weighted / $0.weight : nil }
    }

    private static func tagged(_ prefix: String, _ metrics: [String: Double]) -> [(tag: String, value: Double)] {
        metrics.sorted { $0.key < $1.key }.map { (prefix + $0.key, $0.value) }
    }

    private func write(_ run: String, _ values: [(tag: String, value: Double)], step: Int, at time: Date) {
        guard !values.isEmpty else { return }
        do throws(TrackingError) {
            let writer = try state.withLock { (s: inout State) throws(TrackingError) -> EventFileWriter? in
                if s.failed.contains(run) { return nil }
                if let existing = s.writers[run] { return existing }
                let created = try EventFileWriter(folder: run, wallTime: time)
                s.writers[run] = created
                return created
            }
            try writer?.write(values, step: step, wallTime: time)
        } catch {
            log("TensorBoard: \(error.description); no more events are written to \(run)")
            state.withLock { s in
                _ = s.failed.insert(run)
                s.writers[run] = nil
            }
        }
    }
}

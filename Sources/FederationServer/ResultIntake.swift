import FederationCore
import Foundation

/// The training results of one round as they stream in: each chunk checked and added into the round's sums at once
/// (never kept), a result counting once it is complete, and a broken result taken back out. The mechanism behind
/// `Coordinator`'s site API; the coordinator decides what a round is, this decides what a result is.
///
/// A result that fails after part of it was added (a bad chunk half-way, a broken stream, a missing tensor at the
/// end) must leave no trace in the sums, yet the server keeps none of its values. Two ways out, by cost:
/// - **Rebuild (the common path, no writes):** the round's sums are zeroed and every result that was in them —
///   committed or still streaming — is asked for again: streams in flight are refused with `.transient` (the site
///   resends the same result at once), committed sites get their task again (a `SiteAgent` keeps its last result
///   until its next task and sends the same one again, without training again). Nothing is written per chunk, so an
///   uneventful round costs the additions only; the price of a failure is a resend of the results received so far.
/// - **Spill (fallback, per site):** a site whose result failed that way is on probation for the rest of the job:
///   its later results are also written to its spill file (`ResultSpill`: anonymous, reused from round to round), so
///   when one of them fails again it is taken out by reading its chunks back and subtracting them, and a site that
///   keeps failing (diverged training sending NaN every round) costs the others nothing.
/// A result rejected before any of its chunks was added (stale round, unknown tensor or NaN in its first chunk,
/// wrong header) needs neither.
///
/// Bounds (from `JobConfiguration`): a result's weight is its sample count capped at `maxSampleCount` and at the
/// site's declared count (or 1 with equal weights); every value is finite and within ±`maxUpdateMagnitude`; a result
/// is never larger than the model (nor `maxUpdateBytes`); chunks of a tensor arrive in order, each value once.
///
/// How results are kept follows the job's `RobustAggregation` (one `Mode` per job):
/// - `streaming` (mean, no norm bound): as above, added into the round's sums at once.
/// - `deferred` (mean with a norm bound): each chunk is checked and booked in the sums' accumulator (`admit`) but
///   written to the site's spill file instead of the sums, and its squares summed into the result's norm (computed
///   here, never taken from the site). At the round's close the bound is known (fixed, or a factor of the median
///   norm), and every committed result is read back once and added scaled to it. A result that fails part-way
///   never touched the sums: its spill is voided, nothing is rebuilt.
/// - `held` (median, trimmed mean, Krum): each site's result goes into its own `StreamingAccumulator` (same checks),
///   kept until the close; a failed one is dropped. The job was refused beforehand if sites × model exceeds
///   `maxHeldUpdateBytes`.
struct ResultIntake {
    /// How a job's results are kept until the round closes (see the type's documentation).
    enum Mode: Equatable {
        case streaming, deferred, held

        init(_ aggregation: RobustAggregation) {
            if aggregation.requiresIndividualUpdates {
                self = .held
            } else {
                self = aggregation.normBound == nil ? .streaming : .deferred
            }
        }
    }

    /// One result being received: its header, how many values were added, and, for a site on probation, the file
    /// its chunks are spilled to.
    private struct InFlight {
        var header: ResultHeader
        var weight: Double
        var spill: ResultSpill?
        var scalars = 0
        /// Σ v² over the values received so far (client-level DP checks it against clip_norm²; the `deferred` mode's
        /// norm bound scales by it). Not summed in the other cases.
        var squaredNorm = 0.0
    }

    /// What a taken-back result asks of the round.
    enum TakeBack {
        /// Nothing more: the round goes on.
        case done
        /// The sums were rebuilt: these committed sites must send their results again.
        case resend([String])
        /// The sums cannot be repaired: the round cannot close correctly.
        case lost(String)
    }

    let configuration: JobConfiguration
    let mode: Mode
    /// The round's sums; nil between rounds (and always in `held` mode).
    private(set) var accumulator: StreamingAccumulator?
    /// The model's names and shapes while a round is open; nil between rounds.
    private var structure: [(name: String, shape: [Int])]?
    /// `deferred`: committed results waiting for the close (their chunks are in their sites' spill files).
    private var pending: [String: (weight: Double, squaredNorm: Double)] = [:]
    /// `held`: each site's result in its own accumulator (weight 1: its sums are its diff).
    private var held: [String: StreamingAccumulator] = [:]
    /// Committed results: weight (capped sample count) and metrics.
    private(set) var committed: [String: (samples: Int, metrics: [String: Double])] = [:]
    private var inFlight: [String: InFlight] = [:]
    /// Sites whose stream was voided by a rebuild of the sums: their next chunk is refused with `.transient`.
    private var voided: Set<String> = []
    /// Sites whose result failed after part of it was added: their results are spilled from then on.
    private(set) var probation: Set<String> = []
    /// How many times the sums of a round were rebuilt during the job.
    private(set) var sumRebuilds = 0
    private let workDirectory: String?
    private var spillDirectory: String?
    private var spills: [String: ResultSpill] = [:]
    private var spillCount = 0
    /// An encoded chunk's values, decoded (`UpdateEncoding`): one chunk's worth, reused from chunk to chunk.
    private var decoded: [Float] = []

    init(configuration: JobConfiguration, workDirectory: String?) {
        self.configuration = configuration
        self.mode = Mode(configuration.robustAggregation)
        self.workDirectory = workDirectory
    }

    // MARK: - Rounds

    /// Opens a round's sums (reusing `storage`'s arrays, zeroed, when it has the model's structure; `held` mode keeps
    /// no sums and drops `storage`).
    mutating func open(structure: ParameterSet, reusing storage: consuming ParameterSet?) {
        close()
        committed = [:]
        voided = []
        self.structure = structure.structure
        if mode == .held {
            accumulator = nil
        } else if let storage {
            accumulator = StreamingAccumulator(structure: structure, reusing: storage)
        } else {
            accumulator = StreamingAccumulator(structure: structure)
        }
    }

    /// Closes the round: the aggregate diff of the committed results (see `Mode`), and what the server computed
    /// about each of them (`Aggregated.notes`).
    /// - Throws: `.noResults` without a committed result; the aggregation rule's error; `.transient` when a spilled
    ///   result cannot be read back (the round cannot close correctly).
    mutating func takeAggregate() throws(FederationError) -> Aggregated {
        guard self.structure != nil else { throw FederationError(.noResults, "the round has no sums") }
        dropInFlight()
        defer { close() }
        switch mode {
        case .streaming:
            guard var accumulator else { throw FederationError(.noResults, "the round has no sums") }
            self.accumulator = nil
            return Aggregated(diff: try accumulator.takeWeightedMean(), notes: [:])
        case .deferred: return try takeDeferred()
        case .held: return try takeHeld()
        }
    }

    /// A round's aggregate diff and, per committed site, what the server computed about its result: `update_norm`
    /// (L2 norm of the diff it received), `norm_scale` (the factor the norm bound applied, 1 when none) and, for
    /// Krum, `krum_selected` (1 or 0). Recorded with the round beside the site's own metrics, prefixed
    /// `serverMetricPrefix`.
    struct Aggregated {
        var diff: ParameterSet
        var notes: [String: [String: Double]]
    }

    /// `deferred`: the bound from the round's norms, then every committed result read back from its spill file and
    /// added with its weight × its scale.
    private mutating func takeDeferred() throws(FederationError) -> Aggregated {
        guard var sums = accumulator, let structure else {
            throw FederationError(.noResults, "the round has no sums")
        }
        accumulator = nil
        let sites = pending.keys.sorted()
        let norms = sites.map { (pending[$0]?.squaredNorm ?? 0).squareRoot() }
        let bound = configuration.robustAggregation.roundNormBound(norms: norms)
        var notes: [String: [String: Double]] = [:]
        for (site, norm) in zip(sites, norms) {
            guard let entry = pending[site], let spill = spills[site] else { continue }
            let scale = RobustAggregation.normScale(norm: norm, bound: bound)
            try spill.replay { tensor, offset, values in
                guard structure.indices.contains(tensor) else { return }
                sums.add(
                    admitted: ParameterChunk(
                        tensor: structure[tensor].name, shape: structure[tensor].shape, offset: offset,
                        values: values),
                    weight: entry.weight * Double(scale))
            }
            spill.reset()
            try sums.commit(client: site, weight: entry.weight)
            notes[site] = ["update_norm": norm, "norm_scale": Double(scale)]
        }
        return Aggregated(diff: try sums.takeWeightedMean(), notes: notes)
    }

    /// `held`: each committed site's diff, scaled to the round's norm bound, then the rule.
    private mutating func takeHeld() throws(FederationError) -> Aggregated {
        let aggregation = configuration.robustAggregation
        var sites: [String] = []
        var diffs: [ParameterSet] = []
        for site in committed.keys.sorted() {
            guard var own = held.removeValue(forKey: site) else { continue }
            diffs.append(try own.takeWeightedMean(omittingUnsent: true))
            sites.append(site)
        }
        held = [:]
        let norms = diffs.map(\.l2Norm)
        let bound = aggregation.roundNormBound(norms: norms)
        var notes: [String: [String: Double]] = [:]
        for i in diffs.indices {
            let scale = RobustAggregation.normScale(norm: norms[i], bound: bound)
            if let bound { try diffs[i].clipL2Norm(to: bound) }
            notes[sites[i]] = ["update_norm": norms[i], "norm_scale": Double(scale)]
        }
        let diff: ParameterSet
        switch aggregation.rule {
        case .mean:
            // Not held (mode `streaming` or `deferred`); kept total: the unweighted mean.
            diff = try trimmedMean(diffs, trimFraction: 0, structure: structure)
        case .median:
            diff = try coordinateMedian(diffs, structure: structure)
        case .trimmedMean(let beta):
            diff = try trimmedMean(diffs, trimFraction: beta, structure: structure)
        case .krum(let f, let m):
            let (aggregate, chosen) = try multiKrum(diffs, byzantine: f, selected: m, structure: structure)
            for (i, site) in sites.enumerated() { notes[site]?["krum_selected"] = chosen.contains(i) ? 1 : 0 }
            diff = aggregate
        }
        return Aggregated(diff: diff, notes: notes)
    }

    /// Forgets every unfinished result, the held and pending results, and the sums (the round or the job is over).
    mutating func close() {
        dropInFlight()
        for site in pending.keys { spills[site]?.reset() }
        pending = [:]
        held = [:]
        accumulator = nil
        structure = nil
    }

    /// Closes every spill file and removes the temporary folder (when made here).
    mutating func removeSpills() {
        close()
        for spill in spills.values { spill.close() }
        spills = [:]
        guard let spillDirectory else { return }
        if workDirectory == nil { try? FileManager.default.removeItem(atPath: spillDirectory) }
        self.spillDirectory = nil
    }

    // MARK: - Results

    func isCommitted(_ site: String) -> Bool { committed[site] != nil }

    /// Starts receiving a result whose header was checked by the round (participant, job, round, not counted yet).
    /// - Throws: `.invalidConfiguration` for a sample count below 1 or non-finite metrics; a spill error.
    /// - Returns: what taking back a stream of the same site that was still open asks of the round.
    mutating func begin(_ header: ResultHeader) throws(FederationError) -> TakeBack {
        let site = header.site
        guard header.sampleCount > 0 else {
            throw FederationError(.invalidConfiguration, "result from \(site) reports \(header.sampleCount) samples")
        }
        try Self.checkMetrics(header.metrics, from: site)
        var outcome = TakeBack.done
        if inFlight[site] != nil { outcome = takeBack(site: site, reason: "its stream started again") }
        voided.remove(site)
        let spill =
            mode == .deferred || (mode == .streaming && probation.contains(site)) ? try makeSpill(site: site) : nil
        if mode == .held, let structure {
            // Bounded: one model per participant, checked against maxHeldUpdateBytes when the job started.
            held[site] = StreamingAccumulator(structure: structure)
        }
        // Client-level DP: equal weights (a sample count would be the result's sensitivity).
        let weight =
            configuration.clientDP == nil
            ? configuration.robustAggregation.weight(
                site: site, reported: header.sampleCount, maxSampleCount: configuration.maxSampleCount) : 1
        inFlight[site] = InFlight(header: header, weight: weight, spill: spill)
        return outcome
    }

    /// Checks one chunk and adds it into the sums (spilled too for a site on probation); nothing of it is kept.
    ///
    /// A chunk still in its message (`ParameterChunk.inMessage`: float32 or encoded, sizes and scales already
    /// checked) is checked and added from the message's bytes in the common case — the round's sums
    /// (`streaming`), no spill, no norm to sum — when all its values are within the bound. Otherwise (another mode,
    /// a site on probation, or a value out of bounds, which is then reported as for decoded values), and for an
    /// `encoded` chunk, the values are decoded first into a buffer reused from chunk to chunk, then checked and added
    /// as float32 values are: the bounds, norms, spill and rules see decoded values.
    /// - Throws: what is wrong with the chunk, and what taking the result back asks of the round.
    mutating func add(_ chunk: ParameterChunk, from site: String, modelBytes: Int) throws(Failure) {
        if let wire = chunk.inMessage {
            if mode == .streaming, configuration.clientDP?.noise != .server, let entry = inFlight[site],
                entry.spill == nil, wire.allWithin(configuration.maxUpdateMagnitude)
            {
                return try addValues(chunk, from: site, modelBytes: modelBytes, inPlace: true)
            }
            return try addDecoded(chunk, wire.appendDecoded, from: site, modelBytes: modelBytes)
        }
        guard let encoded = chunk.encoded else { return try addValues(chunk, from: site, modelBytes: modelBytes) }
        try addDecoded(chunk, encoded.appendDecoded, from: site, modelBytes: modelBytes)
    }

    private mutating func addDecoded(
        _ chunk: ParameterChunk, _ decode: (inout [Float]) -> Void, from site: String, modelBytes: Int
    ) throws(Failure) {
        // At most 4 bytes per encoded byte or two: the chunk's own size bounds the buffer.
        decoded.removeAll(keepingCapacity: true)
        decode(&decoded)
        let values = ParameterChunk(
            tensor: chunk.tensor, shape: chunk.shape, offset: chunk.offset, values: decoded[...])
        try addValues(values, from: site, modelBytes: modelBytes)
    }

    /// - Parameter inPlace: `chunk` is still in its message (`wire`), its values checked within the bound, and it
    ///   goes to the round's sums only (`streaming`, no spill, no norm): what `add` checked before choosing it.
    private mutating func addValues(
        _ chunk: ParameterChunk, from site: String, modelBytes: Int, inPlace: Bool = false
    ) throws(Failure) {
        guard var entry = inFlight[site], structure != nil else {
            if voided.contains(site) { throw Failure(error: Self.resend(site), takeBack: .done) }
            throw Failure(
                error: FederationError(.staleRound, "chunk from \(site) outside a result stream"),
                takeBack: .done)
        }
        do throws(FederationError) {
            precondition(inPlace == (chunk.inMessage != nil), "a chunk in its message is added in place, checked first")
            let count = chunk.valueCount
            let limit = min(configuration.maxUpdateBytes, modelBytes) / MemoryLayout<Float>.size
            // An update is never larger than the model it updates.
            guard count <= limit, entry.scalars <= limit - count else {
                throw FederationError(
                    .tooLarge,
                    "result from \(site) exceeds \(limit) values (the model's size or "
                        + "the job's limit)")
            }
            let bound = configuration.maxUpdateMagnitude
            if let i = chunk.values.firstIndex(where: { !($0.magnitude <= bound) }) {
                let code: FederationError.Code = chunk.values[i].isFinite ? .tooLarge : .nonFinite
                throw FederationError(
                    code,
                    "tensor '\(chunk.tensor)' holds \(chunk.values[i]) at element "
                        + "\(chunk.offset + i - chunk.values.startIndex); weight-diff values must be "
                        + "finite and within ±\(bound) (the job's max_update_value)")
            }
            if mode == .deferred || configuration.clientDP?.noise == .server {
                entry.squaredNorm += chunk.values.withUnsafeBufferPointer { v in
                    v.reduce(0.0) { $0 + Double($1) * Double($1) }
                }
            }
            // With the noise added by the sites, a result's norm is mostly noise: only the server's own placement
            // lets it check the clipping.
            if let dp = configuration.clientDP, dp.noise == .server {
                // Sites scale in float32: a relative slack of 10⁻³ covers the rounding, never a real excess.
                let bound = dp.clipNorm * (1 + 1e-3)
                guard entry.squaredNorm <= bound * bound else {
                    throw FederationError(
                        .tooLarge,
                        "the update's L2 norm exceeds the job's client_dp.clip_norm "
                            + "\(dp.clipNorm) (\(entry.squaredNorm.squareRoot()) so far): client-level DP "
                            + "needs every site's diff clipped")
                }
            }
            switch mode {
            case .held:
                // The site's own accumulator: the same checks, its sums are its diff.
                guard var own = held.removeValue(forKey: site) else {
                    throw FederationError(.staleRound, "no result stream open for \(site)")
                }
                do throws(FederationError) { try own.accept(chunk, weight: 1, from: site) } catch {
                    held[site] = own
                    throw error
                }
                held[site] = own
                entry.scalars += count
                inFlight[site] = entry
                return
            case .deferred:
                // Booked (order, shape, finite) but not added: the weight depends on the whole result's norm.
                let tensor = try accumulator?.admit(chunk, from: site) ?? 0
                try entry.spill?.append(tensor: tensor, offset: chunk.offset, values: chunk.values)
                entry.scalars += count
                inFlight[site] = entry
                return
            case .streaming: break
            }
            guard let sums = accumulator else { return }
            let tensor = try sums.tensorIndex(of: chunk, from: site)
            // Checked whole before a single value is added: a refused chunk never touches the sums.
            try accumulator?.accept(chunk, weight: entry.weight, from: site)
            if let spill = entry.spill {
                do throws(FederationError) {
                    try spill.append(tensor: tensor, offset: chunk.offset, values: chunk.values)
                } catch {
                    accumulator?.retract(chunk, weight: entry.weight)  // in the sums but not in the file: out again
                    throw error
                }
            }
            entry.scalars += count
            inFlight[site] = entry
        } catch {
            let takeBack = self.takeBack(site: site, reason: error.message)
            throw Failure(
                error: FederationError(
                    error.code, "result from \(site) rejected: \(error.message)",
                    cause: error.cause),
                takeBack: takeBack)
        }
    }

    /// An error for the caller and what taking the result back asks of the round.
    struct Failure: Error {
        var error: FederationError
        var takeBack: TakeBack
    }

    /// Completes a result: it counts from now on.
    mutating func end(site: String) throws(Failure) -> (samples: Int, metrics: [String: Double]) {
        guard let entry = inFlight[site] else {
            if voided.contains(site) { throw Failure(error: Self.resend(site), takeBack: .done) }
            throw Failure(error: FederationError(.staleRound, "no result stream open for \(site)"), takeBack: .done)
        }
        do throws(FederationError) {
            switch mode {
            case .streaming: try accumulator?.commit(client: site, weight: entry.weight)
            case .deferred:
                // Added at the close, once the round's norm bound is known; the spill keeps the values until then.
                try accumulator?.checkComplete(client: site)
                pending[site] = (entry.weight, entry.squaredNorm)
            case .held:
                guard var own = held.removeValue(forKey: site) else {
                    throw FederationError(.staleRound, "no result stream open for \(site)")
                }
                try own.commit(client: site, weight: 1)
                held[site] = own
            }
        } catch {
            let takeBack = self.takeBack(site: site, reason: error.message)
            throw Failure(
                error: FederationError(error.code, "result from \(site) rejected: \(error.message)"),
                takeBack: takeBack)
        }
        inFlight[site] = nil
        if mode != .deferred { entry.spill?.reset() }
        let counted = (samples: Int(entry.weight), metrics: entry.header.metrics)
        committed[site] = counted
        return counted
    }

    /// Whether a stream of `site` is open (chunks of it may be in the sums).
    func isStreaming(_ site: String) -> Bool { inFlight[site] != nil }

    func isVoided(_ site: String) -> Bool { voided.contains(site) }

    /// Bytes spilled so far by each site on probation whose result is streaming in.
    var inFlightSpillBytes: [String: Int] { inFlight.compactMapValues { $0.spill?.byteCount } }

    var spillFileCount: Int { spills.count }

    /// Prefix of the metrics the server records about a result (`Aggregated.notes`); refused from sites.
    static let serverMetricPrefix = "aggregation."

    /// Metrics are finite, at most 64 of them, names at most 128 bytes: they go into checkpoints and JSON files.
    static func checkMetrics(_ metrics: [String: Double], from site: String) throws(FederationError) {
        guard metrics.count <= 64 else {
            throw FederationError(.tooLarge, "result from \(site) reports \(metrics.count) metrics (at most 64)")
        }
        for (name, value) in metrics.sorted(by: { $0.key < $1.key }) {
            guard !name.hasPrefix(Self.serverMetricPrefix) else {
                throw FederationError(
                    .invalidConfiguration,
                    "result from \(site) reports metric '\(name.prefix(128))': names starting with "
                        + "'\(Self.serverMetricPrefix)' are the server's (what it computed about the result)")
            }
            guard name.utf8.count <= 128 else {
                throw FederationError(
                    .tooLarge,
                    "result from \(site) names a metric of \(name.utf8.count) bytes "
                        + "(at most 128)")
            }
            guard value.isFinite else {
                throw FederationError(
                    .nonFinite,
                    "result from \(site) reports metric '\(name)' = \(value); metrics "
                        + "must be finite")
            }
        }
    }

    // MARK: - Taking results back

    /// The error a stream voided by a rebuild gets: transient, so the site sends the same result again.
    private static func resend(_ site: String) -> FederationError {
        FederationError(
            .transient,
            "the server rebuilt this round's sums after another site's result failed "
                + "part-way; \(site) sends its result again")
    }

    /// Takes an unfinished result's contribution back out of the sums: nothing to do when none of it was added;
    /// subtracted chunk by chunk from its spill file for a site on probation; otherwise the sums are rebuilt and the
    /// site goes on probation.
    mutating func takeBack(site: String, reason: String) -> TakeBack {
        guard let entry = inFlight.removeValue(forKey: site) else { return .done }
        defer { entry.spill?.reset() }
        switch mode {
        case .held:
            held[site] = nil
            return .done
        case .deferred:
            // Nothing of it reached the sums: only its bookkeeping goes.
            accumulator?.forget(client: site)
            return .done
        case .streaming: break
        }
        guard accumulator != nil else { return .done }
        guard entry.scalars > 0 else {
            accumulator?.forget(client: site)
            return .done
        }
        guard let spill = entry.spill else {
            probation.insert(site)
            return .resend(rebuildSums())
        }
        var outcome = TakeBack.done
        do throws(FederationError) {
            if let structure = accumulator?.structure {
                try spill.replay { tensor, offset, values in
                    guard structure.indices.contains(tensor) else { return }
                    accumulator?.retract(
                        ParameterChunk(
                            tensor: structure[tensor].name, shape: structure[tensor].shape,
                            offset: offset, values: values), weight: entry.weight)
                }
            }
        } catch {
            outcome = .lost("the partial result of \(site) could not be taken back out of the sums (\(error.message))")
        }
        accumulator?.forget(client: site)
        return outcome
    }

    /// Zeroes the round's sums and voids every result that was in them: streams in flight are refused with
    /// `.transient` from now on; committed results are uncounted.
    /// - Returns: the committed sites, which must send their results again.
    private mutating func rebuildSums() -> [String] {
        accumulator?.reset()
        for (site, entry) in inFlight {
            entry.spill?.reset()
            voided.insert(site)
        }
        inFlight = [:]
        let lost = committed.keys.sorted()
        committed = [:]
        sumRebuilds += 1
        return lost
    }

    private mutating func dropInFlight() {
        for entry in inFlight.values { entry.spill?.reset() }
        inFlight = [:]
    }

    /// The site's spill file, emptied; created on the site's first result.
    private mutating func makeSpill(site: String) throws(FederationError) -> ResultSpill {
        if let spill = spills[site] {
            spill.reset()
            return spill
        }
        let directory: String
        if let spillDirectory {
            directory = spillDirectory
        } else {
            directory =
                workDirectory
                ?? FileManager.default.temporaryDirectory
                .appendingPathComponent(
                    "tessera-coordinator-\(Self.fileName(configuration.jobID))-\(UUID().uuidString)"
                ).path
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw FederationError(
                    .transient,
                    "the server cannot use its work directory \(directory) for "
                        + "in-flight results: check that it is writable",
                    cause: String(describing: error))
            }
            spillDirectory = directory
        }
        spillCount += 1
        let spill = try ResultSpill(path: directory + "/\(spillCount)-\(Self.fileName(site)).spill")
        spills[site] = spill
        return spill
    }

    /// A site or job name as a file-name component: letters, digits, '-', '_' and '.' kept, the rest replaced.
    static func fileName(_ name: String) -> String {
        String(
            name.unicodeScalars.map { s in
                (s.properties.isAlphabetic && s.isASCII) || ("0"..."9").contains(s) || "-_.".unicodeScalars.contains(s)
                    ? Character(s) : "_"
            }.prefix(64))
    }
}

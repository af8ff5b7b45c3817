import FederationCore
import Foundation
import SecureAggregation

/// The server's side of one attempt of a secure-aggregation round: what each stage's tasks carry, what each answer
/// must be, and the weighted mean once the sum is unmasked. Transport- and time-free; `Coordinator` runs the stages.
///
/// Sets: U1 = sites whose advert arrived (stage 1), U2 ⊆ U1 = sites whose shares arrived, U3 ⊆ U2 = sites whose
/// masked vector arrived whole, U4 ⊆ U3 = sites that signed U3. Each stage needs at least `needed` =
/// max(min_clients, threshold) sites, else the attempt is retried with a new session.
struct SecureRound: Sendable {
    typealias Committed = [String: (samples: Int, metrics: [String: Double])]

    let parameters: SecAggParameters
    let settings: SecureAggregationSettings
    /// The fewest sites each stage needs.
    let needed: Int
    private(set) var stage: SecureAggregationStage = .advertise
    private(set) var adverts: [String: KeyAdvert] = [:]
    /// Stage-1 sample counts and metrics (the site's training report, aggregate figures).
    private(set) var trained: Committed = [:]
    private var shares: [String: [EncryptedShare]] = [:]
    /// U1: the sites whose advert arrived, fixed when the advertise stage closes. Share x-coordinates, the
    /// neighbour ring and the quantiser's scale all come from this set, at the sites and here.
    private(set) var advertised: [String] = []
    private var sum: MaskedSum
    private(set) var senders: [String] = []
    private(set) var survivors: [String] = []
    private var signatures: [String: Data] = [:]
    private var unmasking: SecAggUnmasking?
    private var unmasked: Set<String> = []
    /// Answers between their header and their end.
    private var pending: [String: [UInt8]] = [:]

    /// Largest encrypted share (nonce, two 32-byte shares and an x, tag), bytes.
    static let maxShareBox = 256
    /// Largest ECDSA P-256 signature (DER), bytes.
    static let maxSignature = 80

    init(
        jobID: String, round: Int, attempt: Int, settings: SecureAggregationSettings, global: ParameterSet,
        sites: Int, minClients: Int
    ) throws(FederationError) {
        var nonce = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for i in nonce.indices { nonce[i] = UInt8(truncatingIfNeeded: generator.next()) }
        let session = "\(jobID)/\(round)/\(attempt)/" + nonce.map { String(format: "%02x", $0) }.joined()
        let threshold = settings.threshold(participants: sites)
        do {
            parameters = try SecAggParameters(
                session: session, purpose: "training", threshold: threshold, neighbours: settings.neighbours,
                clipRange: settings.clipRange, vectorLength: global.scalarCount + 1)
        } catch {
            throw FederationError(
                .invalidConfiguration, "secure aggregation cannot run on this model: \(error.message)")
        }
        self.settings = settings
        self.needed = max(minClients, threshold)
        self.sum = MaskedSum(structure: global)
    }

    // MARK: - Tasks

    /// The configuration every stage's task carries besides the job's.
    func config(_ stage: SecureAggregationStage) -> [String: ConfigValue] {
        var config: [String: ConfigValue] = [
            "secure_aggregation": .bool(true), SecureAggregationStage.configKey: .string(stage.rawValue),
            "secagg_weighting": .string(settings.weighting.rawValue),
            "secagg_max_weight_samples": .int(settings.maxWeightSamples),
        ]
        if let bound = settings.normBound { config["secagg_norm_bound"] = .double(bound) }
        return config
    }

    /// The payload of `stage`'s task for `site`.
    func payload(_ stage: SecureAggregationStage, for site: String) throws(FederationError) -> [UInt8] {
        do {
            switch stage {
            case .advertise: return try SecAggMessage.encode(parameters)
            case .share:
                return try SecAggMessage.encode(
                    SecAggMessage.ShareRequest(parameters: parameters, adverts: senders.compactMap { adverts[$0] }))
            case .mask:
                let mine = senders.flatMap { shares[$0] ?? [] }.filter { $0.to == site }
                return try SecAggMessage.encode(
                    SecAggMessage.MaskRequest(session: parameters.session, senders: senders, shares: mine))
            case .confirm:
                return try SecAggMessage.encode(
                    SecAggMessage.ConfirmRequest(session: parameters.session, survivors: survivors))
            case .unmask:
                return try SecAggMessage.encode(
                    SecAggMessage.UnmaskRequest(
                        session: parameters.session, survivors: survivors, signatures: signatures))
            }
        } catch {
            throw FederationError(.invalidConfiguration, "secure aggregation: \(error.message)")
        }
    }

    /// Closes the current stage with the sites that answered it and opens `next`; the sites asked next are returned.
    /// - Throws: `.secureAggregationShortfall` (as `.jobFailed`-free `.invalidConfiguration`) when fewer than
    ///   `needed` answered: the caller retries the attempt.
    mutating func advance(answered: Set<String>) throws(SecureAggregationShortfall) -> [String] {
        let count: Int
        switch stage {
        case .advertise:
            senders = adverts.keys.filter { answered.contains($0) }.sorted()
            advertised = senders
            count = senders.count
            if count >= needed {
                do {
                    _ = try NeighbourGraph(participants: senders, parameters: parameters)
                } catch {
                    throw SecureAggregationShortfall(
                        "the \(count) sites that advertised keys cannot reach the threshold: \(error.message)")
                }
            }
            stage = .share
        case .share:
            senders = senders.filter { answered.contains($0) && shares[$0] != nil }
            count = senders.count
            stage = .mask
        case .mask:
            if let broken = sum.partial.first {
                throw SecureAggregationShortfall(
                    "the masked vector of \(broken) stopped part-way: its words cannot be taken out of the sum")
            }
            survivors = senders.filter { sum.isComplete($0) }
            count = survivors.count
            stage = .confirm
        case .confirm:
            signatures = signatures.filter { answered.contains($0.key) }
            count = signatures.count
            stage = .unmask
        case .unmask:
            count = unmasked.count
        }
        guard count >= needed else {
            throw SecureAggregationShortfall(
                "only \(count) sites completed the \(stage.rawValue) stage; secure aggregation needs \(needed) "
                    + "(max of min_clients and the threshold \(parameters.threshold))")
        }
        switch stage {
        case .share: return senders
        case .mask: return senders
        case .confirm: return survivors
        case .unmask: return signatures.keys.sorted()
        case .advertise: return []
        }
    }

    // MARK: - Answers

    /// Starts an answer: checks it belongs to the current stage and decodes its payload.
    mutating func begin(_ header: ResultHeader) throws(FederationError) {
        let answered = header.metrics[SecureAggregationStage.configKey] ?? 0
        guard answered == Double(stage.number) else {
            throw FederationError(
                .staleRound,
                "\(header.site) answered secure-aggregation stage \(answered); the round is at stage "
                    + "\(stage.number) (\(stage.rawValue))")
        }
        guard header.payload.count <= SecAggMessage.maxPayloadBytes else {
            throw FederationError(
                .tooLarge, "\(header.site)'s \(stage.rawValue) answer is \(header.payload.count) bytes")
        }
        pending[header.site] = header.payload
        if stage == .advertise {
            var metrics = header.metrics
            metrics[SecureAggregationStage.configKey] = nil
            trained[header.site] = (header.sampleCount, metrics)
        }
    }

    /// True while `site`'s masked vector is streaming in.
    func isUploading(_ site: String) -> Bool { stage == .mask && pending[site] != nil }

    mutating func add(_ chunk: ParameterChunk, from site: String) throws(FederationError) {
        guard isUploading(site) else {
            throw FederationError(.staleRound, "values from \(site) outside the masked-upload stage")
        }
        try sum.add(chunk, from: site)
    }

    /// Ends an answer: validates and keeps it.
    mutating func end(site: String) throws(FederationError) {
        guard let payload = pending.removeValue(forKey: site) else {
            throw FederationError(.staleRound, "no answer of \(site) is open")
        }
        do throws(SecureAggregationError) {
            switch stage {
            case .advertise:
                let advert = try SecAggMessage.decode(KeyAdvert.self, from: payload)
                guard advert.site == site, advert.encryptionKey.count == 32, advert.maskKey.count == 32,
                    advert.seedCommitment.count == 32, advert.certificate.count <= KeyAdvert.maxCertificateBytes,
                    advert.signature.count <= Self.maxSignature
                else {
                    throw SecureAggregationError(.malformedMessage, "the advert of \(site) is malformed")
                }
                adverts[site] = advert
            case .share:
                let response = try SecAggMessage.decode(SecAggMessage.ShareResponse.self, from: payload)
                let targets = response.shares.map(\.to)
                guard response.shares.allSatisfy({ $0.from == site && $0.box.count <= Self.maxShareBox }),
                    Set(targets).count == targets.count, Set(targets).isSubset(of: Set(senders))
                else {
                    throw SecureAggregationError(.malformedMessage, "the shares of \(site) are malformed")
                }
                shares[site] = response.shares
            case .mask:
                guard sum.isComplete(site) else {
                    throw SecureAggregationError(
                        .malformedMessage, "the masked vector of \(site) ended before its last word")
                }
            case .confirm:
                let response = try SecAggMessage.decode(SecAggMessage.ConfirmResponse.self, from: payload)
                guard response.signature.count <= Self.maxSignature else {
                    throw SecureAggregationError(.malformedMessage, "the signature of \(site) is too large")
                }
                signatures[site] = response.signature
            case .unmask:
                let response = try SecAggMessage.decode(SecAggMessage.UnmaskResponse.self, from: payload)
                if unmasking == nil {
                    unmasking = try SecAggUnmasking(
                        parameters: parameters, adverts: advertised.compactMap { adverts[$0] }, senders: Set(senders),
                        survivors: Set(survivors))
                }
                try unmasking?.add(response, from: site)
                unmasked.insert(site)
            }
        } catch {
            throw FederationError(.invalidConfiguration, "secure aggregation: \(error.message)")
        }
    }

    /// Drops an answer that broke off (its masked words already added stay: the site may resend).
    mutating func abandon(site: String) { pending[site] = nil }

    /// The unmasked weighted mean of the survivors' updates, shaped like the model, and their stage-1 reports.
    /// - Throws: `SecureAggregationShortfall` when the masks cannot be removed or the sum is implausible.
    mutating func mean() throws(SecureAggregationShortfall) -> (meanDiff: ParameterSet, committed: Committed) {
        // The sum is moved out and unmasked in place; the mean is written straight into the model's tensors.
        var words = sum.takeWords()
        do throws(SecureAggregationError) {
            guard let unmasking else {
                throw SecureAggregationError(.reconstruction, "no unmask shares arrived")
            }
            var removal = try unmasking.masks()
            try words.withUnsafeMutableBufferPointer { (buffer) throws(SecureAggregationError) in
                try removal.apply(to: buffer, at: 0)
            }
        } catch {
            throw SecureAggregationShortfall("the sum cannot be unmasked: \(error.message)")
        }
        let quantizer: RingQuantizer
        do {
            quantizer = try RingQuantizer(clipRange: parameters.clipRange, participants: advertised.count)
        } catch {
            throw SecureAggregationShortfall("\(error.message)")
        }
        let weightSum = quantizer.decode(words[words.count - 1])
        // Each survivor's weight is in [0, 1]: a total outside (0, |U3|] means a participant sent garbage.
        guard weightSum > 0, weightSum <= Double(survivors.count) + quantizer.sumError else {
            throw SecureAggregationShortfall(
                "the unmasked weights sum to \(weightSum) for \(survivors.count) sites: a participant sent words "
                    + "outside the protocol")
        }
        var committed: Committed = [:]
        for site in survivors { committed[site] = trained[site] }
        return (sum.parameters(words) { Float(quantizer.decode($0) / weightSum) }, committed)
    }
}

/// A secure-aggregation attempt that cannot complete (too few sites at a stage, a broken masked upload, shares that
/// do not rebuild the secrets): the round is tried again with a new session, never finished with partial data.
struct SecureAggregationShortfall: Error, Sendable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

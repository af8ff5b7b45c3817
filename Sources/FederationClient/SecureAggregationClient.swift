import FederationCore
import Foundation
import SecureAggregation

/// What a site needs to take part in secure aggregation: its certificate and key (to sign its key adverts and its
/// confirmation of the survivors), the project CA (to check every other site's), and its policy's minimum number of
/// participants (`min_participants` of its training policy): it reveals nothing among fewer.
public struct SecureAggregationCredentials: Sendable {
    public var identity: SigningIdentity
    public var verifier: PeerVerifier
    public var minimumParticipants: Int

    public init(identity: SigningIdentity, verifier: PeerVerifier, minimumParticipants: Int) {
        self.identity = identity
        self.verifier = verifier
        self.minimumParticipants = minimumParticipants
    }

    /// Reads the site's kit: `cert.pem`, `key.pem` and `ca.pem` (PEM).
    /// - Throws: `.invalidConfiguration` naming the file that cannot be read or parsed.
    public static func load(
        site: String, certificatePath: String, privateKeyPath: String, caPath: String, minimumParticipants: Int
    ) throws(FederationError) -> SecureAggregationCredentials {
        func read(_ path: String) throws(FederationError) -> String {
            do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw FederationError(.invalidConfiguration, "cannot read \(path)", cause: "\(error)")
            }
        }
        let certificate = try read(certificatePath)
        let key = try read(privateKeyPath)
        let ca = try read(caPath)
        do throws(SecureAggregationError) {
            return SecureAggregationCredentials(
                identity: try SigningIdentity(name: site, privateKeyPEM: key, certificatePEM: certificate),
                verifier: try PeerVerifier(caCertificatePEM: ca), minimumParticipants: minimumParticipants)
        } catch {
            throw FederationError(
                .invalidConfiguration, "the kit's certificate, key or CA cannot be used for secure aggregation",
                cause: "\(error)")
        }
    }
}

/// The site's side of secure-aggregation rounds (`SecAggSiteSession`) inside `SiteAgent`: keeps the update of the
/// current round (trained and released once, whatever number of sessions the server opens for the round), the
/// session, and the rounds whose shares it revealed: a second unmasking of one round is refused, since two sums over
/// different survivor sets would give the server their difference.
struct SecureAggregationClient: Sendable {
    let site: String
    let credentials: SecureAggregationCredentials?
    let chunkScalars: Int
    /// The released update of the current round and the global model's structure (names, shapes, in order).
    private var held: (jobID: String, round: Int, update: ModelUpdate, structure: [(name: String, shape: [Int])])?
    private var session: SecAggSiteSession?
    private var weight = 1.0
    private var revealed: Set<String> = []
    /// Whether this site revealed unmasking shares for (job, round) before this process started: read from its
    /// egress log, so a restarted client refuses a second unmasking too. Nil: no log (in-process runs).
    let revealedBefore: (@Sendable (_ job: String, _ round: Int) -> Bool)?
    /// The masked vector of the current session (sent again as it was if the server asks again).
    private var masked: [ParameterChunk]?

    init(
        site: String, credentials: SecureAggregationCredentials?, chunkScalars: Int,
        revealedBefore: (@Sendable (_ job: String, _ round: Int) -> Bool)? = nil
    ) {
        self.site = site
        self.credentials = credentials
        self.chunkScalars = chunkScalars
        self.revealedBefore = revealedBefore
    }

    /// Whether the egress log holds this site's unmask answer for (job, round): the answer to stage 5 that the
    /// server accepted.
    static func revealed(in log: EgressLog, job: String, round: Int) -> Bool {
        // A log that cannot be read counts as "revealed": the site then refuses rather than risk a second unmasking.
        guard let records = try? log.records(job: job) else { return true }
        return records.contains {
            $0.round == round && $0.kind == .secureAggregation
                && $0.metrics[SecureAggregationStage.configKey] == Double(SecureAggregationStage.unmask.number)
        }
    }

    static func stage(of task: TaskAssignment) -> SecureAggregationStage? {
        guard case .bool(true)? = task.config["secure_aggregation"],
            case .string(let name)? = task.config[SecureAggregationStage.configKey]
        else { return nil }
        return SecureAggregationStage(rawValue: name)
    }

    /// The update already released for `task`'s round, if any (a new session of the same round reuses it).
    func heldUpdate(for task: TaskAssignment) -> ModelUpdate? {
        guard let held, held.jobID == task.jobID, held.round == task.round else { return nil }
        return held.update
    }

    /// Stage 1: keeps `update` (norm-bounded when the job asks) and answers with this site's signed advert. A new
    /// session of a round already trained reuses the update and structure kept then (`given` may be nil).
    /// - Throws: `.declined` with the reason when the site cannot take part (no credentials, a round it already
    ///   revealed shares for, parameters that do not fit the model).
    mutating func advertise(
        _ task: TaskAssignment, update released: ModelUpdate, structure given: [(name: String, shape: [Int])]?
    ) throws(FederationError) -> ResultHeader {
        guard let credentials else {
            throw FederationError(
                .declined,
                "the job asks for secure aggregation, and this client was started without its kit's "
                    + "certificate and CA for it")
        }
        let key = "\(task.jobID)/\(task.round)"
        guard !revealed.contains(key), revealedBefore?(task.jobID, task.round) != true else {
            throw FederationError(
                .declined,
                "this site already revealed its unmasking shares for round \(task.round); a second session of the "
                    + "same round could let the server difference two sums, so it takes no part")
        }
        let parameters = try decode(SecAggParameters.self, task.payload)
        guard parameters.session.hasPrefix(key + "/"), parameters.purpose == "training" else {
            throw FederationError(
                .declined, "the secure-aggregation session \(parameters.session) does not belong to round \(key)")
        }
        var update = released
        var structure = given ?? []
        if let held, held.jobID == task.jobID, held.round == task.round {
            update = held.update
            structure = held.structure
        }
        if case .double(let bound)? = task.config["secagg_norm_bound"] {
            do { try update.diff.clipL2Norm(to: bound) } catch { throw FederationError(.declined, error.message) }
        }
        let total = structure.reduce(0) { $0 + $1.shape.reduce(1, *) }
        guard parameters.vectorLength == total + 1 else {
            throw FederationError(
                .declined,
                "the secure-aggregation vector has \(parameters.vectorLength) words; the model has \(total) values")
        }
        var weighting = SecureAggregationSettings.Weighting.samples
        if case .string(let w)? = task.config["secagg_weighting"],
            let parsed = SecureAggregationSettings.Weighting(
                rawValue: w)
        {
            weighting = parsed
        }
        var cap = 1000
        if case .int(let c)? = task.config["secagg_max_weight_samples"], c >= 1, c <= 1_000_000 { cap = c }
        weight = weighting == .equal ? 1 : Double(min(max(update.sampleCount, 0), cap)) / Double(cap)
        held = (task.jobID, task.round, update, structure)
        masked = nil
        let advert: KeyAdvert
        do throws(SecureAggregationError) {
            let created = try SecAggSiteSession(
                parameters: parameters, identity: credentials.identity, verifier: credentials.verifier,
                minimumParticipants: credentials.minimumParticipants)
            advert = try created.advertise()
            session = created
        } catch {
            throw FederationError(.declined, "secure aggregation: \(error.message)")
        }
        var metrics = update.metrics
        metrics[SecureAggregationStage.configKey] = Double(SecureAggregationStage.advertise.number)
        return ResultHeader(
            jobID: task.jobID, round: task.round, site: site, sampleCount: max(1, update.sampleCount),
            metrics: metrics, payload: try encode(advert))
    }

    /// Stages 2–5: the answer to `task` (and, for the mask stage, the masked vector's chunks).
    /// - Throws: `.declined` with the reason whenever the site refuses the step (a set or key that fails its
    ///   checks): the server and its admin see why.
    mutating func respond(
        _ task: TaskAssignment, stage: SecureAggregationStage
    ) async throws(FederationError) -> (ResultHeader, [ParameterChunk]) {
        guard var current = session, let held, held.jobID == task.jobID, held.round == task.round else {
            throw FederationError(
                .declined,
                "no secure-aggregation session of round \(task.round) at this site (its client restarted, or it "
                    + "declined the round)")
        }
        var header = ResultHeader(jobID: task.jobID, round: task.round, site: site, sampleCount: 1)
        header.metrics[SecureAggregationStage.configKey] = Double(stage.number)
        var chunks: [ParameterChunk] = []
        do throws(SecureAggregationError) {
            switch stage {
            case .advertise:
                throw SecureAggregationError(.protocolState, "a second advertise task in one session")
            case .share:
                let request = try SecAggMessage.decode(SecAggMessage.ShareRequest.self, from: task.payload)
                header.payload = try SecAggMessage.encode(try current.share(request))
            case .mask:
                if let masked, current.stage == .masking {
                    chunks = masked
                } else {
                    let request = try SecAggMessage.decode(SecAggMessage.MaskRequest.self, from: task.payload)
                    try current.prepareMasking(request)
                    chunks = try maskedChunks(&current, update: held.update, structure: held.structure)
                    masked = chunks
                }
            case .confirm:
                let request = try SecAggMessage.decode(SecAggMessage.ConfirmRequest.self, from: task.payload)
                header.payload = try SecAggMessage.encode(try current.confirm(request))
                masked = nil
            case .unmask:
                let request = try SecAggMessage.decode(SecAggMessage.UnmaskRequest.self, from: task.payload)
                let answer = try current.unmask(request)
                revealed.insert("\(task.jobID)/\(task.round)")
                header.payload = try SecAggMessage.encode(answer)
            }
        } catch {
            session = current
            throw FederationError(.declined, "secure aggregation, \(stage.rawValue) stage: \(error.message)")
        }
        session = current
        return (header, chunks)
    }

    /// The masked vector as chunks: the model's tensors in order (a tensor the site keeps to itself counts as zeros),
    /// then the weight word.
    private func maskedChunks(
        _ session: inout SecAggSiteSession, update: ModelUpdate, structure: [(name: String, shape: [Int])]
    ) throws(SecureAggregationError) -> [ParameterChunk] {
        var chunks: [ParameterChunk] = []
        var position = 0
        let step = max(1, chunkScalars)
        for (name, shape) in structure {
            let count = shape.reduce(1, *)
            let values = update.diff[name]?.values ?? [Float](repeating: 0, count: count)
            guard values.count == count else {
                throw SecureAggregationError(
                    .invalidParameters, "tensor \(name) has \(values.count) values, not \(count)")
            }
            var offset = 0
            while offset < count {
                let end = min(count, offset + step)
                let words = try session.mask(values[offset..<end], at: position + offset, weight: weight)
                chunks.append(
                    ParameterChunk(
                        tensor: name, shape: shape, offset: offset, values: words.map(Float.init(bitPattern:))))
                offset = end
            }
            position += count
        }
        let weightWord = try session.maskedWeight(weight)
        chunks.append(
            ParameterChunk(
                tensor: SecureAggregationStage.weightTensor, shape: [1], offset: 0,
                values: [Float(bitPattern: weightWord)]))
        return chunks
    }

    private func decode<T: Decodable>(_ type: T.Type, _ payload: [UInt8]) throws(FederationError) -> T {
        do { return try SecAggMessage.decode(type, from: payload) } catch {
            throw FederationError(.declined, "secure aggregation: \(error.message)")
        }
    }

    private func encode<T: Encodable>(_ value: T) throws(FederationError) -> [UInt8] {
        do { return try SecAggMessage.encode(value) } catch {
            throw FederationError(.declined, "secure aggregation: \(error.message)")
        }
    }
}

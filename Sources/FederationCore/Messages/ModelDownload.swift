/// A model as the server sends it for a task: the chunks, and what they build.
///
/// Two kinds of answer: the whole model (`base` nil: float32 chunks, the model itself), or its change from a model
/// the site said it holds (`base` = that model's digest: encoded chunks of the difference, in the job's
/// `download_compression`, which the site adds to the model it holds; `ModelReceiver`). `digest` is the digest of
/// the model the site has once it has every chunk, either way (nil: the service does not say). A change of no chunks
/// whose base is its digest says the site holds the model already (asked again in a retried round).
public struct ModelDownload: Sendable {
    public var chunks: [ParameterChunk]
    public var digest: ModelDigest?
    public var base: ModelDigest?

    public init(chunks: [ParameterChunk], digest: ModelDigest? = nil, base: ModelDigest? = nil) {
        self.chunks = chunks
        self.digest = digest
        self.base = base
    }
}

/// A model a site holds (the last one it downloaded, untouched) and its digest: what it offers the server as the
/// base of the next download.
public struct HeldModel: Sendable {
    public var parameters: ParameterSet
    public var digest: ModelDigest
    /// For a model just downloaded: the digest of the model its download changed (nil: it came whole).
    public var changed: ModelDigest?
    /// For a model just downloaded: the bytes of values that came (float32 words, or a change's encoded bytes).
    public var receivedBytes: Int

    public init(parameters: ParameterSet, digest: ModelDigest, changed: ModelDigest? = nil, receivedBytes: Int = 0) {
        self.parameters = parameters
        self.digest = digest
        self.changed = changed
        self.receivedBytes = receivedBytes
    }
}

/// Builds a downloaded model from its chunks as they arrive, either answer of `ModelDownload`: a whole model is
/// assembled (in the held model's arrays where the names match: no fresh pages), a change is added to the held model
/// in place. The answer's digest, when the server gives one, is checked against the model built.
///
/// A change must cover the held model exactly: the same tensors in the same order and shapes, each tensor's chunks
/// in offset order from 0 without gaps, no value twice (a chunk that does not fit is refused, `.shapeMismatch`).
/// The held model is consumed: once a change has been added to part of it, it is no longer the model it was.
public struct ModelReceiver: Sendable {
    private enum State: Sendable {
        /// Before the first answer: the model offered as the base, if any.
        case waiting(HeldModel?)
        case whole(ParameterAssembler, digest: ModelDigest?)
        case change(Change, digest: ModelDigest?)
    }

    /// A change being added to the held model, tensor after tensor.
    fileprivate struct Change: Sendable {
        var tensors: [ParameterTensor]
        /// The held model's digest.
        var base: ModelDigest
        /// The tensor being changed, how many of its values have been, and whether a chunk of it came (an empty
        /// tensor takes exactly one chunk, of no values).
        var current = 0
        var done = 0
        var started = false

        /// No chunk has been added: the held model is as it was.
        var untouched: Bool { current == 0 && done == 0 && !started }
    }

    private var state: State
    /// Bytes of values taken so far.
    private var receivedBytes = 0

    /// - Parameter held: the model the site offers as the base (its digest was sent with the request); nil: a whole
    ///   model is expected.
    public init(holding held: consuming HeldModel?) {
        state = .waiting(held)
    }

    /// The held model back, when nothing has changed it yet (no answer taken, or a change none of whose chunks came):
    /// what a site keeps for its next download after this one failed. Nil otherwise (a whole model being built
    /// has taken its arrays).
    public mutating func reclaim() -> HeldModel? {
        switch state {
        case .waiting(let held):
            state = .waiting(nil)
            return held
        case .change(let change, _) where change.untouched:
            state = .waiting(nil)
            return HeldModel(parameters: ParameterSet(change.tensors), digest: change.base)
        default:
            return nil
        }
    }

    /// The digest the site offers as the base, if any (what the request names).
    public var offered: ModelDigest? {
        if case .waiting(let held) = state { return held?.digest }
        return nil
    }

    /// Takes an answer's header: its base (nil: a whole model) and the digest of the model it builds. Every answer
    /// of one download (a transport may pull the model in several calls) must say the same.
    /// - Throws: `.invalidConfiguration` for a base that is not the model offered; `.transient` for a header that
    ///   changes part-way (the server restarted or moved on: the site downloads again).
    public mutating func begin(base: ModelDigest?, digest: ModelDigest?) throws(FederationError) {
        switch state {
        case .waiting(let held):
            if let base {
                guard digest != nil else {
                    throw FederationError(
                        .invalidConfiguration,
                        "the server sent a change without the digest of the model it builds: check that the server "
                            + "and this site run the same tessera version")
                }
                guard let held, held.digest == base else {
                    throw FederationError(
                        .invalidConfiguration,
                        "the server sent a change from model \(base), which this site did not offer as its base "
                            + "(\(held.map { "\($0.digest)" } ?? "none")): check that the server and this site run "
                            + "the same tessera version")
                }
                state = .change(Change(tensors: held.parameters.tensors, base: base), digest: digest)
            } else {
                state = .whole(ParameterAssembler(reusing: held?.parameters), digest: digest)
            }
        case .whole(_, let d) where base == nil && d == digest: break
        case .change(let c, let d) where base == c.base && d == digest: break
        default:
            // The server's model changed between two calls of one download (it restarted, or the round moved on):
            // the site downloads again from the start, the whole model (the held one may be changed part-way).
            throw FederationError(
                .transient,
                "the server's model changed during the download (now base \(base.map { "\($0)" } ?? "none"), "
                    + "digest \(digest.map { "\($0)" } ?? "none")); downloading it again")
        }
    }

    /// Takes one chunk (float32, encoded, or still in its message).
    /// - Throws: `.invalidConfiguration` before `begin`; `.shapeMismatch` for a chunk that does not fit (see the
    ///   type's description).
    public mutating func append(_ chunk: ParameterChunk) throws(FederationError) {
        switch state {
        case .waiting:
            throw FederationError(.invalidConfiguration, "a model chunk came before the answer's header")
        case .whole(var assembler, let digest):
            state = .waiting(nil)  // the assembler moves out while it grows: its arrays stay uniquely referenced
            try assembler.append(chunk)
            state = .whole(assembler, digest: digest)
        case .change(var change, let digest):
            state = .waiting(nil)
            try change.add(chunk)
            state = .change(change, digest: digest)
        }
        receivedBytes += chunk.valueBytes
    }

    /// The model built, with its digest (the server's, checked; computed here when the server gave none).
    /// - Throws: `.shapeMismatch` for an incomplete model; `.nonFinite` for a model holding NaN or ±Inf (a change
    ///   whose values overflow the held ones, or a whole model sent so); `.transient` when the model built does not
    ///   have the digest the server announced (the site downloads the whole model again).
    public consuming func finish() throws(FederationError) -> HeldModel {
        let model: ParameterSet
        let announced: ModelDigest?
        var changed: ModelDigest?
        switch state {
        case .waiting:
            throw FederationError(.invalidConfiguration, "the model download ended before the server answered")
        case .whole(let assembler, let digest):
            model = try assembler.finish()
            announced = digest
        case .change(let change, let digest):
            changed = change.base
            // A change of no chunks to the model itself: the site already holds what it asked for.
            model = digest == change.base && change.untouched ? ParameterSet(change.tensors) : try change.finish()
            announced = digest
        }
        let (digest, nonFinite) = ModelDigest.checked(model)
        if let nonFinite {
            // What the server sent, or the change added to the held model, overflowed: nothing to train from.
            throw FederationError(
                .nonFinite, "the downloaded model holds NaN or ±Inf in tensor '\(nonFinite.prefix(128))'")
        }
        if let announced, announced != digest {
            throw FederationError(
                .transient,
                "the model built from the download has digest \(digest), not the \(announced) the server announced; "
                    + "downloading the whole model again")
        }
        return HeldModel(parameters: model, digest: digest, changed: changed, receivedBytes: receivedBytes)
    }
}

extension ModelReceiver.Change {
    mutating func add(_ chunk: ParameterChunk) throws(FederationError) {
        // The tensors are changed in order: a chunk continues the current tensor or starts the next one.
        if current < tensors.count, started, done == tensors[current].count, chunk.offset == 0,
            tensors[current].name != chunk.tensor
        {
            current += 1
            done = 0
            started = false
        }
        // A chunk brings values, but for an empty tensor's one chunk: a server repeating empty chunks makes no
        // progress and is refused.
        let empty = current < tensors.count && tensors[current].count == 0
        guard current < tensors.count, tensors[current].name == chunk.tensor,
            tensors[current].shape == chunk.shape, chunk.offset == done,
            chunk.valueCount <= tensors[current].count - done,
            empty ? !started : chunk.valueCount > 0
        else {
            throw FederationError(
                .shapeMismatch,
                "change chunk of '\(chunk.tensor.prefix(128))' (shape \(chunk.shape), offset \(chunk.offset), "
                    + "\(chunk.valueCount) values) does not continue the held model where the change stands")
        }
        let n = chunk.valueCount
        let offset = done
        tensors[current].values.withUnsafeMutableBufferPointer { all in
            guard let base = all.baseAddress else { return }
            let out = base + offset
            if let wire = chunk.inMessage {
                wire.add(scaledBy: 1, to: out)
            } else if let encoded = chunk.encoded {
                encoded.add(to: UnsafeMutableBufferPointer(start: out, count: n))
            } else {
                for i in 0..<n { out[i] += chunk.values[chunk.values.startIndex + i] }
            }
        }
        done += n
        started = true
    }

    consuming func finish() throws(FederationError) -> ParameterSet {
        // Every tensor before the current one was completed when the change moved past it.
        let complete =
            tensors.isEmpty || (current == tensors.count - 1 && started && done == tensors[current].count)
        guard complete else {
            let name = current < tensors.count ? tensors[current].name : "?"
            throw FederationError(
                .shapeMismatch, "the change ended at tensor '\(name)' (\(done) values): the held model is incomplete")
        }
        return ParameterSet(tensors)
    }
}

import FederationCore

/// What a training job's sites download each round: the model they train from, its digest, and — with a
/// `download_compression` — the change from the model they held the round before, encoded once and sent to every
/// site that names that model's digest (`FederationService.modelDownload`).
///
/// Without compression the sites download the global model G itself. With it (error feedback on the server, as
/// DoubleSqueeze, Tang et al. 2019): the server keeps the sites' model R beside G, and each round sends
///
///     d = encode(G − R)         (one encoding for every site)
///     R ← R + decode(d)         (the same arithmetic the site runs on its copy: `EncodedValues.add(to:)`)
///
/// so R follows G within one encoding's error (≤ s/2 per value for int8 blocks of scale s), the loss of one round
/// carried into the next round's change instead of accumulating. Sites train from R; their diffs update G as
/// always. A site that does not hold the previous R (new, restarted, or it sat a round out) downloads R whole.
///
/// Memory: with compression, R (one model of float32, copy-on-write from G until the strategy first updates G) and
/// the encoded change (a quarter of a model for int8, half for fp16/bf16); none without. In memory only: a server
/// that resumes from a checkpoint starts again from R = G, and every site downloads the whole model once.
struct ModelBroadcast {
    /// The change's encoding; nil: float32 downloads of G itself.
    let encoding: UpdateEncoding?
    /// R, the model the sites hold (with compression only; without, they download G).
    private var reference: ParameterSet?
    /// The digest of what the sites download: R, or G without compression.
    private(set) var digest: ModelDigest
    /// The encoded change from the previous model (digest `base`) to R, in chunks of at most `pieceLength` values:
    /// nil before the first change, or when the model's structure changed.
    private var change: (base: ModelDigest, chunks: [ParameterChunk])?

    /// Values encoded at a time; a change's chunks are cut from these pieces (each encoded on its own: int8 blocks
    /// start at a piece's start).
    static let pieceLength = 1 << 20

    init(global: ParameterSet, encoding: UpdateEncoding?) {
        self.encoding = encoding == .float32 ? nil : encoding
        reference = self.encoding == nil ? nil : global
        digest = ModelDigest(of: global)
    }

    /// Takes the round's new global model: without compression it is what the sites download next; with it the
    /// change to it is encoded (see the type's description). A change whose values are not finite (G and R far
    /// apart near float32's range), an R that the change would make non-finite, or a model whose structure changed,
    /// is not encoded: the sites download R = G whole.
    mutating func advance(to global: ParameterSet) throws(FederationError) {
        let base = digest
        guard let encoding, var next = reference.take() else {
            digest = ModelDigest(of: global)
            return
        }
        // R is changed in place (its arrays uniquely referenced now that `reference` let go of them).
        var chunks: [ParameterChunk] = []
        var encodable =
            next.names == global.names && next.tensors.map(\.shape) == global.tensors.map(\.shape)
        if encodable {
            var scratch = [Float](repeating: 0, count: Self.pieceLength)
            try next.updateValues { (i, r) throws(FederationError) in
                guard encodable else { return }
                encodable = Self.encodeChange(
                    tensor: global.tensors[i], reference: &r, encoding: encoding, scratch: &scratch, into: &chunks)
            }
        }
        // R + decode(d) can still overflow where G is near float32's largest value (bf16 rounds up, int8 by ulps).
        var nextDigest = base
        if encodable {
            let checked = ModelDigest.checked(next)
            nextDigest = checked.digest
            encodable = checked.nonFinite == nil
        }
        guard encodable else {
            reference = global
            digest = ModelDigest(of: global)
            change = nil
            return
        }
        digest = nextDigest
        reference = next
        change = (base, chunks)
    }

    /// Encodes g − r piece by piece into `chunks` and adds each decoded piece to `r`; false (with `r` partly
    /// changed) when a difference is not finite.
    private static func encodeChange(
        tensor g: ParameterTensor, reference r: inout [Float], encoding: UpdateEncoding, scratch: inout [Float],
        into chunks: inout [ParameterChunk]
    ) -> Bool {
        if g.count == 0 {
            chunks.append(ParameterChunk(tensor: g.name, shape: g.shape, offset: 0, values: []))
            return true
        }
        var finite = true
        g.values.withUnsafeBufferPointer { gv in
            r.withUnsafeMutableBufferPointer { rv in
                scratch.withUnsafeMutableBufferPointer { x in
                    var start = 0
                    while start < gv.count, finite {
                        let n = min(pieceLength, gv.count - start)
                        var largest: UInt32 = 0
                        for i in 0..<n {
                            let d = gv[start + i] - rv[start + i]
                            x[i] = d
                            largest = max(largest, d.bitPattern & 0x7fff_ffff)
                        }
                        guard Float(bitPattern: largest).isFinite else {
                            finite = false
                            return
                        }
                        let encoded = EncodedValues(
                            encoding: encoding, values: UnsafeBufferPointer(rebasing: x[0..<n]))
                        encoded.add(to: UnsafeMutableBufferPointer(rebasing: rv[start..<(start + n)]))
                        chunks.append(ParameterChunk(tensor: g.name, shape: g.shape, offset: start, encoded: encoded))
                        start += n
                    }
                }
            }
        }
        return finite
    }

    /// The download for a site holding the model of digest `held`: nothing when it is the model itself (a site asked
    /// again in a retried round), the change when it builds on that model, else the whole model; chunks of at most
    /// `maxScalars` values (a change's int8 chunks: whole blocks, at least one).
    /// `global`: the job's global model (what sites download without compression).
    func download(global: ParameterSet, maxScalars: Int, held: ModelDigest?) -> ModelDownload {
        // The site already holds this model (it downloaded it in an earlier attempt of the round): an empty change.
        if let held, held == digest { return ModelDownload(chunks: [], digest: digest, base: digest) }
        guard let change, let held, held == change.base, let encoding else {
            return ModelDownload(chunks: (reference ?? global).chunks(maxScalars: maxScalars), digest: digest)
        }
        var length = maxScalars
        if case .int8Blocks(let b) = encoding { length = max(b, maxScalars / b * b) }
        var chunks: [ParameterChunk] = []
        for piece in change.chunks {
            guard let encoded = piece.encoded, encoded.count > length else {
                chunks.append(piece)
                continue
            }
            for start in stride(from: 0, to: encoded.count, by: length) {
                chunks.append(
                    ParameterChunk(
                        tensor: piece.tensor, shape: piece.shape, offset: piece.offset + start,
                        encoded: encoded.piece(start..<min(start + length, encoded.count))))
            }
        }
        return ModelDownload(chunks: chunks, digest: digest, base: change.base)
    }
}

/// The last step before a site's training update leaves it: encodes the released diff (after the site's filter chain
/// and its privacy step: percentile privacy, clipping, DP noise) in the job's `UpdateEncoding`, with error feedback.
///
/// Error feedback (as in Seide et al. 2014, "1-bit SGD"; Karimireddy et al. 2019, "EF-SGD"): the site keeps what the
/// encoding lost and adds it to its next update. For every value, with e = 0 at the start of a job,
///
///     y = x + e        (this round's diff plus the previous rounds' loss)
///     sent: ŷ = decode(encode(y))
///     e ← y − ŷ
///
/// so Σ_rounds ŷ = Σ_rounds x − e_last: over rounds the server receives the uncompressed sum, up to the one residual
/// still held (bounded by one encoding's error: ≤ s/2 per value for int8, the relative bound of fp16/bf16 of y).
///
/// State is per job (`jobID`), in the site agent's memory only: a new job, or a restarted client, starts from e = 0.
/// The residual is computed from the released diff alone, so it is post-processing of what DP already protected:
/// no privacy cost. One float32 per parameter of the tensors sent.
public struct UpdateCompressor: Sendable {
    public let jobID: String
    public let encoding: UpdateEncoding
    /// e per tensor name: what earlier rounds' encodings lost.
    private var residual: [String: [Float]] = [:]
    /// y of the chunk being encoded (reused from chunk to chunk).
    private var scratch: [Float] = []

    public init(jobID: String, encoding: UpdateEncoding) {
        self.jobID = jobID
        self.encoding = encoding
    }

    /// The residual e held for `tensor` (nil before its first round).
    public func residual(of tensor: String) -> [Float]? { residual[tensor] }

    /// Chunk length for `maxScalars`: for int8, whole blocks (at least one), so blocks never straddle chunks.
    public func chunkLength(maxScalars: Int) -> Int {
        guard case .int8Blocks(let b) = encoding else { return maxScalars }
        return max(b, maxScalars / b * b)
    }

    /// Encodes `diff` in chunks of at most `chunkLength(maxScalars:)` values, in tensor order (as
    /// `ParameterSet.chunks(maxScalars:)`), adding the residual first and keeping the new one.
    /// `float32` sends the diff as it is (plain chunks, no residual).
    public mutating func encode(_ diff: ParameterSet, maxScalars: Int) -> [ParameterChunk] {
        precondition(maxScalars > 0)
        guard encoding != .float32 else { return diff.chunks(maxScalars: maxScalars) }
        let length = chunkLength(maxScalars: maxScalars)
        var out: [ParameterChunk] = []
        for t in diff.tensors {
            guard t.count > 0 else {
                out.append(ParameterChunk(tensor: t.name, shape: t.shape, offset: 0, values: []))
                continue
            }
            var e = residual.removeValue(forKey: t.name) ?? []
            if e.count != t.count { e = [Float](repeating: 0, count: t.count) }
            var offset = 0
            repeat {
                let end = min(offset + length, t.count)
                let encoded = encodeChunk(t.values[offset..<end], residual: &e, at: offset)
                out.append(ParameterChunk(tensor: t.name, shape: t.shape, offset: offset, encoded: encoded))
                offset = end
            } while offset < t.count
            residual[t.name] = e
        }
        return out
    }

    /// y = x + e into the scratch buffer, encoded; e ← y − ŷ for the chunk's values (int8: block by block in place,
    /// `EncodedValues.init(int8Blocks:values:residual:)`).
    private mutating func encodeChunk(_ x: ArraySlice<Float>, residual e: inout [Float], at offset: Int)
        -> EncodedValues
    {
        let n = x.count
        if case .int8Blocks(let b) = encoding {
            return x.withUnsafeBufferPointer { xs in
                e.withUnsafeMutableBufferPointer { eAll in
                    EncodedValues(
                        int8Blocks: b, values: xs,
                        residual: UnsafeMutableBufferPointer(rebasing: eAll[offset..<(offset + n)]))
                }
            }
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: repeatElement(0, count: n))
        return scratch.withUnsafeMutableBufferPointer { y in
            e.withUnsafeMutableBufferPointer { eAll in
                let eChunk = UnsafeMutableBufferPointer(rebasing: eAll[offset..<(offset + n)])
                x.withUnsafeBufferPointer { xs in
                    for i in 0..<n { y[i] = xs[i] + eChunk[i] }
                }
                let encoded = EncodedValues(encoding: encoding, values: UnsafeBufferPointer(y))
                encoded.decode(into: eChunk)  // ŷ, then e = y − ŷ in place
                for i in 0..<n { eChunk[i] = y[i] - eChunk[i] }
                return encoded
            }
        }
    }
}

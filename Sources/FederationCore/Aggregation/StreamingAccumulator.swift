/// Accumulates Σ wᵢ·xᵢ and Σ wᵢ per tensor as results stream in, chunk by chunk: the server holds the model
/// structure, one accumulator and the chunk in flight — never N models. Used for FedAvg on weight diffs
/// (wᵢ = sample count).
///
/// Chunks go straight into the sum; a result counts once `commit` confirms that every tensor it sent arrived
/// complete, each scalar once. Tensors a site keeps to itself (exclude-variables filter) are simply absent: their
/// mean is over the sites that sent them, and zero (no change) when none did. A client whose stream breaks
/// half-way is taken back out with `discard`, given the chunks it had sent.
public struct StreamingAccumulator: Sendable {
    public let structure: ParameterSet
    private var sums: [[Float]]
    private var weights: [Double]
    private var index: [String: Int]
    public private(set) var contributors: [String] = []
    /// Scalars received per client and tensor.
    private var received: [String: [Int: Int]] = [:]

    public init(structure: ParameterSet) {
        self.structure = structure.zeros()
        self.sums = structure.tensors.map { [Float](repeating: 0, count: $0.count) }
        self.weights = [Double](repeating: 0, count: structure.tensors.count)
        self.index = Dictionary(uniqueKeysWithValues: structure.tensors.enumerated().map { ($1.name, $0) })
    }

    /// Total weight of committed results (sample counts).
    public var totalWeight: Double { weights.max() ?? 0 }

    /// Adds `weight · chunk` into the sum.
    /// - Throws: `.shapeMismatch` for an unknown tensor or a chunk past its end, `.nonFinite` for NaN/Inf.
    public mutating func accept(_ chunk: ParameterChunk, weight: Double, from client: String) throws(FederationError) {
        guard let t = index[chunk.tensor] else {
            throw FederationError(.shapeMismatch, "chunk for unknown tensor '\(chunk.tensor)' from \(client)")
        }
        guard chunk.shape == structure.tensors[t].shape, chunk.offset >= 0, chunk.offset + chunk.values.count <= sums[t].count else {
            throw FederationError(.shapeMismatch, "chunk [\(chunk.offset), +\(chunk.values.count)) past the end of "
                                  + "'\(chunk.tensor)' (\(sums[t].count) values) from \(client)")
        }
        if let bad = chunk.values.first(where: { !$0.isFinite }) {
            throw FederationError(.nonFinite, "tensor '\(chunk.tensor)' from \(client) holds \(bad)")
        }
        let w = Float(weight)
        sums[t].withUnsafeMutableBufferPointer { s in
            for (i, v) in chunk.values.enumerated() { s[chunk.offset + i] += w * v }
        }
        received[client, default: [:]][t, default: 0] += chunk.values.count
    }

    /// Marks a client's result complete, adding its weight to every tensor it sent.
    /// - Throws: `.shapeMismatch` when a tensor it started is incomplete (or over-complete), or it sent nothing.
    public mutating func commit(client: String, weight: Double) throws(FederationError) {
        guard let got = received[client], !got.isEmpty else {
            throw FederationError(.shapeMismatch, "\(client) sent no values")
        }
        for (t, n) in got where n != sums[t].count {
            throw FederationError(.shapeMismatch, "\(client) sent \(n) of \(sums[t].count) values of '\(structure.tensors[t].name)'")
        }
        for t in got.keys { weights[t] += weight }
        contributors.append(client)
        received[client] = nil
    }

    /// Removes a client's partial contribution given the chunks it had sent (stream broken mid-way).
    public mutating func discard(client: String, chunks: [ParameterChunk], weight: Double) {
        let w = Float(weight)
        for c in chunks {
            guard let t = index[c.tensor], c.offset >= 0, c.offset + c.values.count <= sums[t].count else { continue }
            for (i, v) in c.values.enumerated() { sums[t][c.offset + i] -= w * v }
        }
        received[client] = nil
    }

    /// Per tensor Σ wᵢ·xᵢ / Σ wᵢ over the sites that sent it; zeros for a tensor no site sent.
    /// - Throws: `.noResults` when nothing was committed.
    public func weightedMean() throws(FederationError) -> ParameterSet {
        guard !contributors.isEmpty else { throw FederationError(.noResults, "no complete result to aggregate") }
        return ParameterSet(structure.tensors.enumerated().map { t, tensor in
            let w = weights[t]
            let inv = w > 0 ? Float(1 / w) : 0
            return ParameterTensor(name: tensor.name, shape: tensor.shape, values: sums[t].map { $0 * inv })
        })
    }
}

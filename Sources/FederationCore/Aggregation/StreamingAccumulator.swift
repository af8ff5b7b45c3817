/// Accumulates Σ wᵢ·xᵢ and Σ wᵢ per tensor as results stream in, chunk by chunk: the server holds the model
/// structure (names and shapes), one float32 sum per parameter and the chunk in flight — never N models. Used for
/// FedAvg on weight diffs (wᵢ = sample count); with a norm bound, chunks are booked with `admit` as they arrive and
/// added later with `add(admitted:weight:)`; the robust rules that hold each diff give every site its own
/// accumulator (weight 1: its sums are its diff), so every rule checks chunks the same way.
///
/// Chunks go straight into the sum, each tensor's in order (a chunk starts where the previous one ended, so every
/// scalar is added once); a result counts once `commit` confirms that every tensor it sent arrived complete. Tensors
/// a site keeps to itself (exclude-variables filter) are simply absent: their mean is over the sites that sent them,
/// and zero (no change) when none did. A client whose stream breaks half-way is either taken back out chunk by chunk
/// with `retract` and then `forget` (or in one call with `discard`), when its chunks are still at hand (the
/// coordinator's spill file for a site on probation), or the whole accumulator is dropped and rebuilt from the
/// results sent again (the coordinator's common path: see `Coordinator`).
public struct StreamingAccumulator: Sendable {
    /// Names and shapes of the model's tensors, in order.
    public let structure: [(name: String, shape: [Int])]
    private var sums: [[Float]]
    private var weights: [Double]
    private var index: [String: Int]
    public private(set) var contributors: [String] = []
    /// Scalars received per client and tensor.
    private var received: [String: [Int: Int]] = [:]

    public init(structure: ParameterSet) {
        self.init(structure: structure.structure)
    }

    /// Zero sums for tensors of these names and shapes (the model's: trusted sizes, names unique).
    public init(structure: [(name: String, shape: [Int])]) {
        self.structure = structure
        self.sums = structure.map { [Float](repeating: 0, count: $0.shape.reduce(1, *)) }
        self.weights = [Double](repeating: 0, count: structure.count)
        self.index = Dictionary(uniqueKeysWithValues: structure.enumerated().map { ($1.name, $0) })
    }

    /// An accumulator whose sums are `storage`'s own arrays, zeroed in place (the last round's mean, once the global
    /// model has taken it in): no fresh model-sized allocation, no page faults, from round to round. `storage` must
    /// have `structure`'s names and shapes; anything else gets fresh sums.
    public init(structure: ParameterSet, reusing storage: consuming ParameterSet) {
        self.structure = structure.structure
        self.weights = [Double](repeating: 0, count: structure.tensors.count)
        self.index = Dictionary(uniqueKeysWithValues: structure.tensors.enumerated().map { ($1.name, $0) })
        if storage.structure.map(\.name) == structure.structure.map(\.name),
            storage.structure.map(\.shape) == structure.structure.map(\.shape)
        {
            var zeroed = consume storage  // the only reference: zeroed in place, not copied
            try? zeroed.updateValues { _, values in values.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
            self.sums = zeroed.tensors.map(\.values)
        } else {
            self.sums = structure.tensors.map { [Float](repeating: 0, count: $0.count) }
        }
    }

    /// Back to empty: sums zeroed in their own storage, nothing committed or in flight (a rebuild of the round's sums).
    public mutating func reset() {
        for t in sums.indices { sums[t].withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
        weights = [Double](repeating: 0, count: weights.count)
        contributors = []
        received = [:]
    }

    /// Total weight of committed results (sample counts).
    public var totalWeight: Double { weights.max() ?? 0 }

    /// Bytes of the float32 sums (the accumulator's memory, one model's worth).
    public var byteCount: Int { sums.reduce(0) { $0 + $1.count } * MemoryLayout<Float>.size }

    /// The position of `chunk`'s tensor in `structure`.
    /// - Throws: `.shapeMismatch` for an unknown tensor, another shape or a chunk past the tensor's end.
    public func tensorIndex(of chunk: ParameterChunk, from client: String) throws(FederationError) -> Int {
        guard let t = index[chunk.tensor] else {
            throw FederationError(.shapeMismatch, "chunk for unknown tensor '\(chunk.tensor)' from \(client)")
        }
        // `offset` comes off the wire: compared without adding, so Int.max cannot overflow.
        guard chunk.shape == structure[t].shape, chunk.offset >= 0, chunk.valueCount <= sums[t].count,
            chunk.offset <= sums[t].count - chunk.valueCount
        else {
            throw FederationError(
                .shapeMismatch,
                "chunk [\(chunk.offset), +\(chunk.valueCount)) of '\(chunk.tensor)' "
                    + "\(chunk.shape) does not fit the model's \(structure[t].shape) (from \(client))")
        }
        return t
    }

    /// Adds `weight · chunk` into the sum.
    /// - Throws: `.shapeMismatch` for an unknown tensor or a chunk past its end, `.nonFinite` for NaN/Inf; the sum
    ///   is unchanged then.
    public mutating func accept(_ chunk: ParameterChunk, weight: Double, from client: String) throws(FederationError) {
        let t = try admit(chunk, from: client)
        add(chunk, to: t, scale: Float(weight))
    }

    /// Checks a chunk as `accept` does (tensor, shape, order, finite values) and books it as received from
    /// `client`, without adding it: the chunk is added later with `add(admitted:weight:)` (a result whose weight
    /// depends on all of its values, e.g. a norm bound), and `commit` then checks the result complete.
    /// - Returns: the chunk's tensor position in `structure`.
    /// - Throws: as `accept`; nothing is booked then.
    @discardableResult
    public mutating func admit(_ chunk: ParameterChunk, from client: String) throws(FederationError) -> Int {
        guard chunk.encoded == nil else {
            throw FederationError(.invalidConfiguration, "encoded values are decoded before they are summed")
        }
        let t = try tensorIndex(of: chunk, from: client)
        // Each value once: a tensor's chunks arrive in order, each where the previous one ended.
        let expected = received[client]?[t] ?? 0
        guard chunk.offset == expected else {
            throw FederationError(
                .shapeMismatch,
                "chunk of '\(chunk.tensor)' from \(client) starts at \(chunk.offset); "
                    + "the next expected value is \(expected) (chunks of a tensor arrive in order, once)")
        }
        // Values still in their message are checked there, without a copy.
        let finite =
            chunk.inMessage?.allWithin(.greatestFiniteMagnitude)
            ?? chunk.values.withUnsafeBufferPointer { v in
                // Branch-free scan (vectorises); the rare failure is located afterwards.
                var bad = false
                for x in v { bad = bad || !x.isFinite }
                return !bad
            }
        guard finite else {
            let bad = (chunk.inMessage?.decoded()[...] ?? chunk.values).first(where: { !$0.isFinite }) ?? .nan
            throw FederationError(.nonFinite, "tensor '\(chunk.tensor)' from \(client) holds \(bad)")
        }
        received[client, default: [:]][t, default: 0] += chunk.valueCount
        return t
    }

    /// Adds `weight · chunk` for a chunk booked with `admit` (read back from where it was kept). Chunks that do not
    /// fit the model are ignored (they were never admitted).
    public mutating func add(admitted chunk: ParameterChunk, weight: Double) {
        guard let t = index[chunk.tensor], chunk.offset >= 0, chunk.encoded == nil, chunk.valueCount <= sums[t].count,
            chunk.offset <= sums[t].count - chunk.valueCount
        else {
            return
        }
        add(chunk, to: t, scale: Float(weight))
    }

    /// Subtracts `weight · chunk` from the sum: the inverse of `accept` for one chunk of a result that will not
    /// count. Chunks that do not fit the model are ignored (they were never accepted).
    public mutating func retract(_ chunk: ParameterChunk, weight: Double) {
        guard let t = index[chunk.tensor], chunk.offset >= 0, chunk.encoded == nil, chunk.valueCount <= sums[t].count,
            chunk.offset <= sums[t].count - chunk.valueCount
        else {
            return
        }
        add(chunk, to: t, scale: -Float(weight))
    }

    /// Drops the bookkeeping of a client's unfinished result (after its chunks were retracted).
    public mutating func forget(client: String) { received[client] = nil }

    private mutating func add(_ chunk: ParameterChunk, to t: Int, scale w: Float) {
        if let wire = chunk.inMessage {
            // Straight from the message's bytes: no decoded copy.
            sums[t].withUnsafeMutableBufferPointer { s in
                guard let base = s.baseAddress else { return }
                wire.add(scaledBy: w, to: base + chunk.offset)
            }
            return
        }
        chunk.values.withUnsafeBufferPointer { v in
            sums[t].withUnsafeMutableBufferPointer { s in
                guard let base = s.baseAddress, v.count > 0 else { return }
                let out = base + chunk.offset
                // x + (−w)·v rounds exactly as x − w·v: a retraction mirrors its `accept`.
                for i in 0..<v.count { out[i] += w * v[i] }
            }
        }
    }

    /// Marks a client's result complete, adding its weight to every tensor it sent.
    /// - Throws: `.shapeMismatch` when a tensor it started is incomplete (or over-complete), or it sent nothing.
    public mutating func commit(client: String, weight: Double) throws(FederationError) {
        try checkComplete(client: client)
        for t in (received[client] ?? [:]).keys { weights[t] += weight }
        contributors.append(client)
        received[client] = nil
    }

    /// Checks that every tensor `client` started arrived complete (what `commit` checks), committing nothing.
    /// - Throws: `.shapeMismatch` when a tensor it started is incomplete, or it sent nothing.
    public func checkComplete(client: String) throws(FederationError) {
        guard let got = received[client], !got.isEmpty else {
            throw FederationError(.shapeMismatch, "\(client) sent no values")
        }
        for (t, n) in got.sorted(by: { $0.key < $1.key }) where n != sums[t].count {
            throw FederationError(
                .shapeMismatch, "\(client) sent \(n) of \(sums[t].count) values of '\(structure[t].name)'")
        }
    }

    /// Removes a client's partial contribution given the chunks it had sent (stream broken mid-way).
    public mutating func discard(client: String, chunks: [ParameterChunk], weight: Double) {
        for c in chunks { retract(c, weight: weight) }
        forget(client: client)
    }

    /// Per tensor Σ wᵢ·xᵢ / Σ wᵢ over the sites that sent it; zeros for a tensor no site sent.
    /// - Throws: `.noResults` when nothing was committed.
    public func weightedMean() throws(FederationError) -> ParameterSet {
        var copy = self
        return try copy.takeWeightedMean()
    }

    /// The weighted mean, computed in the sums' own storage and moved out: no second model-sized buffer. The
    /// accumulator is empty afterwards.
    /// - Throws: `.noResults` when nothing was committed (the accumulator is unchanged then).
    /// - Parameter omittingUnsent: leave out the tensors no committed result sent (instead of zeros): one site's
    ///   own diff, when the accumulator held only its result.
    public mutating func takeWeightedMean(omittingUnsent: Bool = false) throws(FederationError) -> ParameterSet {
        guard !contributors.isEmpty else { throw FederationError(.noResults, "no complete result to aggregate") }
        var tensors: [ParameterTensor] = []
        tensors.reserveCapacity(structure.count)
        for t in structure.indices {
            let w = weights[t]
            if omittingUnsent && w == 0 { continue }
            let inv = w > 0 ? Float(1 / w) : 0
            var values: [Float] = []
            swap(&values, &sums[t])
            values.withUnsafeMutableBufferPointer { v in for i in v.indices { v[i] *= inv } }
            tensors.append(ParameterTensor(name: structure[t].name, shape: structure[t].shape, values: values))
        }
        sums = Array(repeating: [], count: structure.count)  // nothing fits any more: late chunks are refused
        weights = Array(repeating: 0, count: structure.count)
        contributors = []
        received = [:]
        return ParameterSet(tensors)
    }
}

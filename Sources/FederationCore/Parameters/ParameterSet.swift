/// One named float32 tensor of a model, row-major, with PyTorch `state_dict` naming (`enc.0.conv1.weight`).
public struct ParameterTensor: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "\(name): \(values.count) values for shape \(shape)")
        self.name = name
        self.shape = shape
        self.values = values
    }

    public var count: Int { values.count }
}

/// The parameters of a model (or an update to them), in a fixed order. What travels between server and sites.
public struct ParameterSet: Sendable, Equatable {
    public private(set) var tensors: [ParameterTensor]
    private var index: [String: Int]

    public init(_ tensors: [ParameterTensor] = []) {
        self.tensors = tensors
        self.index = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    public subscript(name: String) -> ParameterTensor? { index[name].map { tensors[$0] } }

    public var names: [String] { tensors.map(\.name) }
    /// Total number of scalars.
    public var scalarCount: Int { tensors.reduce(0) { $0 + $1.count } }
    /// Bytes of float32 payload.
    public var byteCount: Int { scalarCount * MemoryLayout<Float>.size }

    /// Names and shapes: what two parameter sets must share to be combined.
    public var structure: [(name: String, shape: [Int])] { tensors.map { ($0.name, $0.shape) } }

    /// - Throws: `.shapeMismatch` naming the first tensor whose name or shape differs from `reference`.
    public func checkStructure(matches reference: ParameterSet) throws(FederationError) {
        guard tensors.count == reference.tensors.count else {
            let mine = Set(names)
            let theirs = Set(reference.names)
            let missing = theirs.subtracting(mine).sorted().prefix(3)
            let extra = mine.subtracting(theirs).sorted().prefix(3)
            throw FederationError(
                .shapeMismatch,
                "the update has \(tensors.count) tensors, the model \(reference.tensors.count)"
                    + (missing.isEmpty ? "" : "; missing \(missing.joined(separator: ", "))")
                    + (extra.isEmpty ? "" : "; unexpected \(extra.joined(separator: ", "))"))
        }
        for (a, b) in zip(tensors, reference.tensors) where a.name != b.name || a.shape != b.shape {
            throw FederationError(
                .shapeMismatch, "tensor '\(a.name)' \(a.shape) where the model has '\(b.name)' \(b.shape)")
        }
    }

    /// Every tensor of `self` exists in `model` with the same shape (an update may leave tensors out: variables a
    /// site keeps to itself).
    /// - Throws: `.shapeMismatch` naming the first unknown tensor or differing shape.
    public func checkSubset(of model: ParameterSet) throws(FederationError) {
        for t in tensors {
            guard let m = model[t.name] else {
                throw FederationError(.shapeMismatch, "tensor '\(t.name)' is not part of the model")
            }
            guard m.shape == t.shape else {
                throw FederationError(
                    .shapeMismatch, "tensor '\(t.name)' has shape \(t.shape), the model's is \(m.shape)")
            }
        }
    }

    /// The same tensors in `reference`'s order (files store tensors by name).
    /// - Throws: `.shapeMismatch` when the names or shapes differ.
    public func reordered(like reference: ParameterSet) throws(FederationError) -> ParameterSet {
        var out: [ParameterTensor] = []
        for r in reference.tensors {
            guard let t = self[r.name], t.shape == r.shape else {
                throw FederationError(.shapeMismatch, "tensor '\(r.name)' \(r.shape) is missing or has another shape")
            }
            out.append(t)
        }
        guard out.count == tensors.count else {
            throw FederationError(.shapeMismatch, "\(tensors.count - out.count) tensors are not part of the model")
        }
        return ParameterSet(out)
    }

    /// - Throws: `.nonFinite` naming the first tensor holding NaN or ±Inf.
    public func checkFinite() throws(FederationError) {
        for t in tensors {
            if let i = t.values.firstIndex(where: { !$0.isFinite }) {
                throw FederationError(.nonFinite, "tensor '\(t.name)' holds \(t.values[i]) at element \(i)")
            }
        }
    }

    /// Elementwise `self − other` (e.g. local weights − global weights = the weight diff a site sends).
    public func subtracting(_ other: ParameterSet) throws(FederationError) -> ParameterSet {
        var out = self
        try out.subtract(other)
        return out
    }

    /// Elementwise `self + scale · other`.
    public func adding(_ other: ParameterSet, scaledBy scale: Float = 1) throws(FederationError) -> ParameterSet {
        var out = self
        try out.add(other, scaledBy: scale)
        return out
    }

    /// In place: `self ← self − other`. Writes into `self`'s storage when it is not shared (no copy of the model).
    /// - Throws: `.shapeMismatch` when the structures differ (then `self` is unchanged).
    public mutating func subtract(_ other: ParameterSet) throws(FederationError) {
        try checkStructure(matches: other)
        for t in tensors.indices {
            other.tensors[t].values.withUnsafeBufferPointer { b in
                tensors[t].values.withUnsafeMutableBufferPointer { a in
                    for i in a.indices { a[i] -= b[i] }
                }
            }
        }
    }

    /// In place: `self ← self + scale · other`. Writes into `self`'s storage when it is not shared.
    /// - Throws: `.shapeMismatch` when the structures differ (then `self` is unchanged).
    public mutating func add(_ other: ParameterSet, scaledBy scale: Float = 1) throws(FederationError) {
        try checkStructure(matches: other)
        for t in tensors.indices {
            other.tensors[t].values.withUnsafeBufferPointer { b in
                tensors[t].values.withUnsafeMutableBufferPointer { a in
                    for i in a.indices { a[i] += scale * b[i] }
                }
            }
        }
    }

    /// In place: applies `body` to every tensor's values (optimisers, scaling), without copying unshared storage.
    public mutating func updateValues(_ body: (_ tensor: Int, inout [Float]) throws(FederationError) -> Void)
        throws(FederationError)
    {
        for t in tensors.indices {
            let count = tensors[t].values.count
            try body(t, &tensors[t].values)
            precondition(tensors[t].values.count == count, "updateValues must keep every tensor's size")
        }
    }

    /// A zero set with the same structure.
    public func zeros() -> ParameterSet {
        ParameterSet(
            tensors.map {
                ParameterTensor(name: $0.name, shape: $0.shape, values: [Float](repeating: 0, count: $0.count))
            })
    }

    /// The set without the named tensors (for filters that keep variables at the site).
    public func removing(where predicate: (String) -> Bool) -> ParameterSet {
        ParameterSet(tensors.filter { !predicate($0.name) })
    }

    /// L2 norm over all tensors (float64 accumulation).
    public var l2Norm: Double {
        tensors.reduce(0.0) { acc, t in t.values.reduce(acc) { $0 + Double($1) * Double($1) } }.squareRoot()
    }

    /// Splits into chunks of at most `maxScalars` values, in tensor order: how parameters travel. The chunks are
    /// views (`ArraySlice`) into this set's storage: nothing is copied, and the set's storage stays alive (copy on
    /// write) for as long as a chunk does — a download streams from a snapshot of the model without a full copy.
    public func chunks(maxScalars: Int) -> [ParameterChunk] {
        precondition(maxScalars > 0)
        var out: [ParameterChunk] = []
        out.reserveCapacity(tensors.reduce(0) { $0 + max(1, ($1.count + maxScalars - 1) / maxScalars) })
        for t in tensors {
            var offset = 0
            repeat {
                let end = min(offset + maxScalars, t.count)
                out.append(
                    ParameterChunk(tensor: t.name, shape: t.shape, offset: offset, values: t.values[offset..<end]))
                offset = end
            } while offset < t.count
        }
        return out
    }
}

/// A slice of one tensor: values[offset ..< offset + valueCount] of the tensor `tensor` of shape `shape`.
///
/// `values` is an `ArraySlice`: a chunk cut from a parameter set (`ParameterSet.chunks(maxScalars:)`) shares that
/// set's storage instead of copying it. Index it from `values.startIndex`, or through `withUnsafeBufferPointer`.
///
/// A site's update may travel compressed (`UpdateEncoding`): then `encoded` holds the values and `values` is empty.
/// Whoever reads a chunk from outside decodes it first (`ResultIntake` at the server, `ParameterAssembler`).
public struct ParameterChunk: Sendable, Equatable {
    public var tensor: String
    public var shape: [Int]
    public var offset: Int
    /// The float32 values; empty when `encoded` holds them.
    public var values: ArraySlice<Float>
    /// The values in a compressed encoding; nil: they are `values` (or `inMessage`).
    public var encoded: EncodedValues?
    /// The values still in the message they arrived in (server side, float32 or encoded); nil: `values` or
    /// `encoded` hold them. See `materialized()`.
    public var inMessage: WireValues?

    public init(tensor: String, shape: [Int], offset: Int, values: ArraySlice<Float>) {
        self.tensor = tensor
        self.shape = shape
        self.offset = offset
        self.values = values
    }

    /// A chunk whose values travel encoded.
    public init(tensor: String, shape: [Int], offset: Int, encoded: EncodedValues) {
        self.tensor = tensor
        self.shape = shape
        self.offset = offset
        self.values = []
        self.encoded = encoded
    }

    /// Number of values, encoded or not.
    public var valueCount: Int { inMessage?.count ?? encoded?.count ?? values.count }

    /// Bytes of the values as they travel (float32: 4 per value).
    public var valueBytes: Int {
        inMessage.map { $0.encoding.byteCount(values: $0.count) } ?? encoded?.bytes.count ?? 4 * values.count
    }

    public init(tensor: String, shape: [Int], offset: Int, values: [Float]) {
        self.init(tensor: tensor, shape: shape, offset: offset, values: values[...])
    }
}

extension ParameterSet {
    /// Rebuilds a parameter set from chunks (each tensor's chunks in offset order), in order of first appearance.
    /// - Throws: `.shapeMismatch` for chunks out of order, inconsistent shapes or an incomplete tensor.
    public init(assembling chunks: [ParameterChunk]) throws(FederationError) {
        var assembler = ParameterAssembler()
        for c in chunks { try assembler.append(c) }
        self = try assembler.finish()
    }
}

/// Rebuilds a parameter set from chunks as they arrive (a download), copying each chunk once into its tensor's
/// storage: the set being built plus the chunk in hand, never a list of chunks and then the set.
public struct ParameterAssembler: Sendable {
    private var order: [String] = []
    private var shapes: [String: [Int]] = [:]
    private var values: [String: [Float]] = [:]
    /// Arrays of a model no longer used, by tensor name: a tensor of that name is built in its array (emptied, its
    /// capacity kept) instead of a fresh one — no page faults, no reallocations, from round to round.
    private var spare: [String: [Float]] = [:]

    public init() {}

    /// An assembler that builds each tensor in `storage`'s array of the same name (a previous model, consumed;
    /// an array still shared elsewhere is left alone by copy-on-write: a fresh one is allocated as without it).
    public init(reusing storage: consuming ParameterSet?) {
        for t in storage?.tensors ?? [] { spare[t.name] = t.values }
    }

    /// Appends a chunk (decoding it when it is encoded or still in its message); it must continue its tensor where
    /// the previous chunk of that tensor ended.
    /// - Throws: `.shapeMismatch` for a chunk out of order, past the tensor's end or changing its shape.
    public mutating func append(_ chunk: ParameterChunk) throws(FederationError) {
        try append(tensor: chunk.tensor, shape: chunk.shape, offset: chunk.offset, count: chunk.valueCount) { out in
            if let wire = chunk.inMessage {
                wire.appendDecoded(to: &out)
            } else if let encoded = chunk.encoded {
                encoded.appendDecoded(to: &out)
            } else {
                out.append(contentsOf: chunk.values)
            }
        }
    }

    /// Appends `count` values of `tensor` at `offset`, written by `write` (which appends exactly `count` values to
    /// the tensor's storage: a transport decodes its wire bytes straight into place).
    /// - Throws: `.shapeMismatch` for a chunk out of order, past the tensor's end or changing its shape.
    public mutating func append(
        tensor: String, shape: [Int], offset: Int, count: Int,
        write: (inout [Float]) -> Void
    ) throws(FederationError) {
        var total = 1
        var overflow = false
        for d in shape where !overflow { (total, overflow) = total.multipliedReportingOverflow(by: d) }
        if shapes[tensor] == nil {
            guard shape.allSatisfy({ $0 >= 0 }), !overflow, total <= 1 << 40 else {
                throw FederationError(.shapeMismatch, "tensor '\(tensor)' has an impossible shape \(shape)")
            }
            order.append(tensor)
            shapes[tensor] = shape
            var storage = spare.removeValue(forKey: tensor) ?? []
            storage.removeAll(keepingCapacity: true)  // capacity of our own making, never a peer's declared size
            values[tensor] = storage
        }
        guard shapes[tensor] == shape, values[tensor]?.count == offset, count >= 0, count <= total - offset else {
            throw FederationError(
                .shapeMismatch,
                "chunk of '\(tensor)' at offset \(offset) (\(count) values) is out of "
                    + "order, past the tensor's end or changes its shape")
        }
        // Storage grows with the values that arrived, never to the declared shape up front: a peer's 18-byte chunk
        // declaring [2^20, 2^20] once made this reserve 4 TiB (Fuzz/chunk-codec/crashes). Doubling, capped at the
        // tensor's size, keeps a whole download to about one reallocation per doubling.
        let needed = offset + count
        if let capacity = values[tensor]?.capacity, capacity < needed {
            values[tensor]?.reserveCapacity(min(total, max(needed, 2 * capacity)))
        }
        write(&values[tensor, default: []])
        guard values[tensor]?.count == offset + count else {
            preconditionFailure("the writer of '\(tensor)' appended another count than \(count)")
        }
    }

    /// The assembled set, tensors in order of first appearance.
    /// - Throws: `.shapeMismatch` naming an incomplete tensor.
    public consuming func finish() throws(FederationError) -> ParameterSet {
        var tensors: [ParameterTensor] = []
        tensors.reserveCapacity(order.count)
        for name in order {
            let shape = shapes[name] ?? []
            let v = values.removeValue(forKey: name) ?? []
            guard shape.reduce(1, *) == v.count else {
                throw FederationError(
                    .shapeMismatch, "tensor '\(name)' arrived with \(v.count) values for shape \(shape)")
            }
            tensors.append(ParameterTensor(name: name, shape: shape, values: v))
        }
        return ParameterSet(tensors)
    }
}

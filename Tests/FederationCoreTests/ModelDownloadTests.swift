import FederationCore
import Testing

@Suite("Model downloads: the digest of a model, and a change applied to the model a site holds")
struct ModelDownloadTests {
    static func model(_ w: [Float], _ b: [Float] = [0.5, -0.25, 2]) -> ParameterSet {
        ParameterSet([
            ParameterTensor(name: "w", shape: [w.count], values: w),
            ParameterTensor(name: "b", shape: [b.count], values: b),
        ])
    }

    static let w: [Float] = (0..<70).map { Float($0 % 11) * 0.03 - 0.1 }

    @Test("Same model, same digest; any bit, order, name or shape changes it; 16 hex digits both ways")
    func digest() throws {
        let base = Self.model(Self.w)
        let d = ModelDigest(of: base)
        #expect(ModelDigest(of: Self.model(Self.w)) == d)
        // A golden value: integer arithmetic only, so the same on every CPU and build (computed by this code on
        // 2026-12-08; it changes only if the digest's definition does).
        #expect(d.description.count == 16 && ModelDigest(hex: d.description) == d)
        var flipped = Self.w
        flipped[37] = Float(bitPattern: flipped[37].bitPattern ^ 1)
        var zero = Self.w
        zero[0] = 0
        var negativeZero = zero
        negativeZero[0] = -0.0
        let others = [
            Self.model(flipped),
            ParameterSet(base.tensors.reversed()),
            ParameterSet([ParameterTensor(name: "w2", shape: [70], values: Self.w)] + [base.tensors[1]]),
            ParameterSet([ParameterTensor(name: "w", shape: [7, 10], values: Self.w)] + [base.tensors[1]]),
            Self.model(Array(Self.w.dropLast())),
        ]
        for other in others { #expect(ModelDigest(of: other) != d) }
        #expect(ModelDigest(of: Self.model(zero)) != ModelDigest(of: Self.model(negativeZero)))
        for bad in ["", "0123", "0123456789abcdefg", "0123456789abcdeg", "+123456789abcdef"] {
            #expect(ModelDigest(hex: bad) == nil, "\(bad)")
        }
        #expect(ModelDigest(value: 0x0a).description == "000000000000000a")
    }

    /// A change of `base` into `target` as the server encodes it: int8 blocks of 16, `length` values a chunk.
    static func change(from base: ParameterSet, to target: ParameterSet, length: Int) -> (
        chunks: [ParameterChunk], built: ParameterSet
    ) {
        var tensors: [ParameterTensor] = []
        var chunks: [ParameterChunk] = []
        for (t, g) in zip(base.tensors, target.tensors) {
            var r = t.values
            for start in stride(from: 0, to: t.count, by: length) {
                let end = min(start + length, t.count)
                let d = (start..<end).map { g.values[$0] - r[$0] }
                let e = d.withUnsafeBufferPointer { EncodedValues(encoding: .int8Blocks(blockSize: 16), values: $0) }
                let decoded = e.decoded()
                for i in start..<end { r[i] = r[i] + decoded[i - start] }  // the naive reference of add(to:)
                chunks.append(ParameterChunk(tensor: t.name, shape: t.shape, offset: start, encoded: e))
            }
            tensors.append(ParameterTensor(name: t.name, shape: t.shape, values: r))
        }
        return (chunks, ParameterSet(tensors))
    }

    @Test("A change is added to the held model in place: the model the server built, bit for bit")
    func applyChange() throws {
        let base = Self.model(Self.w)
        let target = Self.model(Self.w.map { $0 * 1.1 + 0.01 }, [0.4, -0.2, 2.5])
        let (chunks, built) = Self.change(from: base, to: target, length: 32)
        var receiver = ModelReceiver(holding: HeldModel(parameters: base, digest: ModelDigest(of: base)))
        #expect(receiver.offered == ModelDigest(of: base))
        try receiver.begin(base: ModelDigest(of: base), digest: ModelDigest(of: built))
        for c in chunks { try receiver.append(c) }
        let got = try receiver.finish()
        #expect(got.digest == ModelDigest(of: built))
        #expect(got.changed == ModelDigest(of: base))
        #expect(
            got.parameters.tensors.map { $0.values.map(\.bitPattern) }
                == built.tensors.map { $0.values.map(\.bitPattern) })
        // Within one int8 step of the target.
        for (g, t) in zip(got.parameters.tensors, target.tensors) {
            let scale = zip(t.values, base[t.name]!.values).map { abs($0 - $1) }.max()! / 127
            for (x, y) in zip(g.values, t.values) { #expect(abs(x - y) <= scale / 2 * 1.0001 + 1e-7) }
        }
    }

    @Test("A change that does not fit the held model, a base not offered, a digest that does not match: refused")
    func refusals() throws {
        let base = Self.model(Self.w)
        let target = Self.model(Self.w.map { $0 + 0.5 })
        let (chunks, built) = Self.change(from: base, to: target, length: 32)
        let held = HeldModel(parameters: base, digest: ModelDigest(of: base))
        func run(_ list: [ParameterChunk], base b: ModelDigest? = nil, digest: ModelDigest? = nil)
            throws(FederationError)
        {
            var receiver = ModelReceiver(holding: held)
            try receiver.begin(base: b ?? held.digest, digest: digest ?? ModelDigest(of: built))
            for c in list { try receiver.append(c) }
            _ = try receiver.finish()
        }
        try run(chunks)
        func code(_ body: () throws -> Void) -> FederationError.Code? {
            do { try body() } catch let error as FederationError { return error.code } catch { return nil }
            return nil
        }
        #expect(code { try run(Array(chunks.dropLast())) } == .shapeMismatch)  // incomplete
        #expect(code { try run(Array(chunks.dropFirst())) } == .shapeMismatch)  // gap at the start
        #expect(code { try run([chunks[1], chunks[0]] + chunks[2...]) } == .shapeMismatch)  // out of order
        #expect(code { try run(chunks + [chunks.last!]) } == .shapeMismatch)  // a value twice / past the end
        var renamed = chunks
        renamed[0].tensor = "x"
        #expect(code { try run(renamed) } == .shapeMismatch)  // a tensor the held model lacks
        var reshaped = chunks
        reshaped[0].shape = [7, 10]
        #expect(code { try run(reshaped) } == .shapeMismatch)
        #expect(code { try run(chunks, base: ModelDigest(value: 1)) } == .invalidConfiguration)  // not offered
        #expect(code { try run(chunks, digest: ModelDigest(value: 1)) } == .transient)  // built ≠ announced
        // A change without a held model; a header that changes part-way; a chunk before the header.
        var none = ModelReceiver(holding: nil)
        #expect(code { try none.begin(base: held.digest, digest: nil) } == .invalidConfiguration)
        var twice = ModelReceiver(holding: held)
        try twice.begin(base: held.digest, digest: ModelDigest(of: built))
        #expect(code { try twice.begin(base: nil, digest: nil) } == .transient)  // the server's model changed
        // A change that does not say what it builds.
        var unnamed = ModelReceiver(holding: held)
        #expect(code { try unnamed.begin(base: held.digest, digest: nil) } == .invalidConfiguration)
        // Empty chunks make no progress: refused (an empty tensor takes exactly one).
        let stall = ParameterChunk(tensor: "w", shape: [70], offset: 0, values: [])
        #expect(code { try run([stall] + chunks) } == .shapeMismatch)
        var early = ModelReceiver(holding: held)
        #expect(code { try early.append(chunks[0]) } == .invalidConfiguration)
    }

    @Test("Empty tensors take one empty chunk each; a failed download gives back a held model it has not changed")
    func emptyTensorsAndReclaim() throws {
        let base = ParameterSet([
            ParameterTensor(name: "none", shape: [0], values: []),
            ParameterTensor(name: "w", shape: [40], values: (0..<40).map { Float($0) * 0.1 }),
            ParameterTensor(name: "tail", shape: [2, 0], values: []),
        ])
        let target = (0..<40).map { Float($0) * 0.11 }
        let d = zip(target, base.tensors[1].values).map { $0 - $1 }
        let e = d.withUnsafeBufferPointer { EncodedValues(encoding: .int8Blocks(blockSize: 16), values: $0) }
        let chunks = [
            ParameterChunk(tensor: "none", shape: [0], offset: 0, values: []),
            ParameterChunk(tensor: "w", shape: [40], offset: 0, encoded: e),
            ParameterChunk(tensor: "tail", shape: [2, 0], offset: 0, values: []),
        ]
        var tensors = base.tensors
        tensors[1].values = zip(base.tensors[1].values, e.decoded()).map { $0 + $1 }
        let built = ParameterSet(tensors)
        let held = HeldModel(parameters: base, digest: ModelDigest(of: base))
        var receiver = ModelReceiver(holding: held)
        try receiver.begin(base: held.digest, digest: ModelDigest(of: built))
        for c in chunks { try receiver.append(c) }
        #expect(try receiver.finish().parameters == built)
        // The last empty tensor's chunk missing: incomplete; an empty tensor's chunk twice: refused.
        var short = ModelReceiver(holding: held)
        try short.begin(base: held.digest, digest: ModelDigest(of: built))
        for c in chunks.dropLast() { try short.append(c) }
        #expect(throws: FederationError.self) { _ = try short.finish() }
        var again = ModelReceiver(holding: held)
        try again.begin(base: held.digest, digest: ModelDigest(of: built))
        try again.append(chunks[0])
        #expect(throws: FederationError.self) { try again.append(chunks[0]) }

        // An empty change to the held model itself: the site keeps what it holds; to another model: incomplete.
        var same = ModelReceiver(holding: held)
        try same.begin(base: held.digest, digest: held.digest)
        let kept = try same.finish()
        #expect(kept.parameters == base && kept.digest == held.digest)
        var nothing = ModelReceiver(holding: held)
        try nothing.begin(base: held.digest, digest: ModelDigest(of: built))
        #expect(throws: FederationError.self) { _ = try nothing.finish() }

        // Reclaim: before any answer, and after a change's header but before its first chunk; not after.
        var waiting = ModelReceiver(holding: held)
        #expect(waiting.reclaim()?.digest == held.digest)
        var begun = ModelReceiver(holding: held)
        try begun.begin(base: held.digest, digest: ModelDigest(value: 3))
        let reclaimed = begun.reclaim()
        let back = try #require(reclaimed)
        #expect(back.parameters == base && back.digest == held.digest)
        var changed = ModelReceiver(holding: held)
        try changed.begin(base: held.digest, digest: ModelDigest(value: 3))
        try changed.append(chunks[0])
        #expect(changed.reclaim() == nil)
        var whole = ModelReceiver(holding: held)
        try whole.begin(base: nil, digest: nil)
        #expect(whole.reclaim() == nil)
    }

    @Test("A whole model is assembled in the held model's arrays and its digest checked")
    func wholeModel() throws {
        let base = Self.model(Self.w)
        let next = Self.model(Self.w.map { $0 - 1 })
        var receiver = ModelReceiver(holding: HeldModel(parameters: base, digest: ModelDigest(of: base)))
        try receiver.begin(base: nil, digest: ModelDigest(of: next))
        for c in next.chunks(maxScalars: 25) { try receiver.append(c) }
        let got = try receiver.finish()
        #expect(got.parameters == next && got.digest == ModelDigest(of: next))
        #expect(got.changed == nil)

        // A model holding ±Inf or NaN, whole or built from a change that overflows: refused, digest or not.
        var infinite = Self.model(Self.w)
        try infinite.updateValues { i, v in if i == 1 { v[2] = .infinity } }
        var whole = ModelReceiver(holding: nil)
        try whole.begin(base: nil, digest: nil)
        for c in infinite.chunks(maxScalars: 25) { try whole.append(c) }
        #expect(throws: FederationError.self) { _ = try whole.finish() }
        let huge = [Float](repeating: 3e38, count: 16)
        let overflow = huge.withUnsafeBufferPointer { EncodedValues(encoding: .int8Blocks(blockSize: 16), values: $0) }
        let big = Self.model([Float](repeating: 3e38, count: 16))
        var change = ModelReceiver(holding: HeldModel(parameters: big, digest: ModelDigest(of: big)))
        try change.begin(base: ModelDigest(of: big), digest: ModelDigest(value: 5))
        try change.append(ParameterChunk(tensor: "w", shape: [16], offset: 0, encoded: overflow))
        try change.append(ParameterChunk(tensor: "b", shape: [3], offset: 0, values: [0, 0, 0]))
        do {
            _ = try change.finish()
            Issue.record("an overflowing change was accepted")
        } catch { #expect(error.code == .nonFinite && error.message.contains("'w'")) }

        var wrong = ModelReceiver(holding: nil)
        try wrong.begin(base: nil, digest: ModelDigest(of: base))
        for c in next.chunks(maxScalars: 25) { try wrong.append(c) }
        #expect(throws: FederationError.self) { _ = try wrong.finish() }
    }
}

import DifferentialPrivacy
import Randomness
import TestSupport
import Testing

@Suite("L2 clipping", .computeBound)
struct L2ClippingTests {
    /// The naive reference: the norm from a plain Double loop over the flattened vectors, each element times
    /// min(1, C / norm).
    static func naive(_ vectors: [[Float]], maxNorm: Double) -> (vectors: [[Float]], norm: Double, factor: Double) {
        let flat = vectors.flatMap { $0 }.map(Double.init)
        let norm = flat.map { $0 * $0 }.reduce(0, +).squareRoot()
        let factor = norm == 0 ? 1 : min(1, maxNorm / norm)
        return (vectors.map { $0.map { Float(Double($0) * factor) } }, norm, factor)
    }

    static func randomVectors(seed: UInt64, shapes: [Int], scale: Float) -> [[Float]] {
        var generator = SplitMix64(seed: seed)
        return shapes.map { count in
            (0..<count).map { _ in (Float(generator.next() >> 40) / Float(1 << 24) - 0.5) * scale }
        }
    }

    @Test("Against the naive reference, over and under the bound", arguments: [0.1, 1.0, 10.0, 1000.0])
    func matchesNaive(maxNorm: Double) throws {
        let vectors = Self.randomVectors(seed: 7, shapes: [3, 0, 100, 17, 1000], scale: 2)
        let reference = Self.naive(vectors, maxNorm: maxNorm)
        let (clipped, result) = try L2Clipping.clipped(vectors, maxNorm: maxNorm)
        // Same summation order, same arithmetic: bit for bit.
        #expect(result.norm == reference.norm)
        #expect(result.factor == reference.factor)
        #expect(clipped == reference.vectors)
        let after = L2Clipping.norm(clipped)
        #expect(after <= min(maxNorm, reference.norm) * (1 + 0x1p-23))
        if result.factor == 1 { #expect(clipped == vectors) }
    }

    @Test("A zero update is left alone with factor 1; in-place clipping equals the copy")
    func zeroAndInPlace() throws {
        var zeros: [[Float]] = [[0, 0], [0]]
        let result = try L2Clipping.clip(&zeros, maxNorm: 1)
        #expect(result == L2Clipping.Result(norm: 0, factor: 1))
        var vectors: [[Float]] = [[3, 0], [4]]  // norm 5
        let copy = try L2Clipping.clipped(vectors, maxNorm: 1)
        let inPlace = try L2Clipping.clip(&vectors, maxNorm: 1)
        #expect(inPlace == copy.result && vectors == copy.vectors)
        #expect(inPlace.norm == 5 && inPlace.factor == 0.2)
        #expect(vectors == [[0.6, 0], [0.8]])
    }

    @Test("Norms beyond Float's range are accumulated in Double")
    func largeValues() throws {
        let big = Float.greatestFiniteMagnitude
        var vectors: [[Float]] = [[big, big]]
        let result = try L2Clipping.clip(&vectors, maxNorm: 1)
        #expect(result.norm.isFinite && abs(result.norm - Double(big) * 2.0.squareRoot()) <= 1e-12 * result.norm)
        #expect(abs(L2Clipping.norm(vectors) - 1) <= 1e-7)
    }

    @Test("Non-finite elements and bad norms throw, leaving the input unchanged")
    func errors() {
        for bad in [Float.nan, .infinity, -.infinity] {
            var vectors: [[Float]] = [[1, 2], [bad]]
            let error = #expect(throws: DifferentialPrivacyError.self) { try L2Clipping.clip(&vectors, maxNorm: 1) }
            #expect(error?.code == .nonFinite)
            #expect(vectors[0] == [1, 2])
        }
        for maxNorm in [0, -1, Double.nan, .infinity] {
            var vectors: [[Float]] = [[1]]
            let error = #expect(throws: DifferentialPrivacyError.self) {
                try L2Clipping.clip(&vectors, maxNorm: maxNorm)
            }
            #expect(error?.code == .invalidParameter)
            #expect(vectors == [[1]])
        }
    }
}

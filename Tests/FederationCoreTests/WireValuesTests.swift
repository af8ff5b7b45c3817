import FederationCore
import Foundation
import Randomness
import Testing

/// Values still in their message's bytes (`WireValues`): decoded, bound-checked and added in place must say and do
/// exactly what a naive decode (written here, independently of the library) followed by the float32 loops does.
@Suite("Wire values: float32, fp16, bf16 and int8 read in place match a naive decode; hostile bytes refused")
struct WireValuesTests {
    static let encodings: [UpdateEncoding] = [
        .float32, .float16, .bfloat16, .int8Blocks(blockSize: 16), .int8Blocks(blockSize: 256),
    ]

    /// Seeded values over many magnitudes (fp16 subnormals and saturation included), zeros and a zero block.
    static func values(count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { i in
            if i % 97 == 0 || (32..<48).contains(i) { return 0 }
            let r = rng.next()
            let exponent = -30 + Int(r % 50)
            let mantissa = 1 + Float(Double(r >> 40) / Double(1 << 24))
            return (r & 1 == 0 ? 1 : -1) * mantissa * Float(sign: .plus, exponent: exponent, significand: 1)
        }
    }

    /// The wire bytes of `x` in `encoding` (float32: little-endian words), as a message would hold them.
    static func bytes(_ x: [Float], _ encoding: UpdateEncoding) -> [UInt8] {
        if encoding == .float32 { return x.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }
        return Array(x.withUnsafeBufferPointer { EncodedValues(encoding: encoding, values: $0) }.bytes)
    }

    /// The naive reference: one value at a time, with Swift's own Float16 for fp16.
    static func naiveDecode(_ b: [UInt8], _ encoding: UpdateEncoding, count: Int) -> [Float] {
        func word(_ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
        func word32(_ at: Int) -> UInt32 { UInt32(word(at)) | UInt32(word(at + 2)) << 16 }
        switch encoding {
        case .float32: return (0..<count).map { Float(bitPattern: word32(4 * $0)) }
        case .float16: return (0..<count).map { Float(Float16(bitPattern: word(2 * $0))) }
        case .bfloat16: return (0..<count).map { Float(bitPattern: UInt32(word(2 * $0)) << 16) }
        case .int8Blocks(let size):
            var out: [Float] = []
            var at = 0
            while out.count < count {
                let scale = Float(bitPattern: word32(at))
                let n = min(size, count - out.count)
                for i in 0..<n { out.append(Float(Int8(bitPattern: b[at + 4 + i])) * scale) }
                at += 4 + n
            }
            return out
        }
    }

    /// `bytes` placed at an odd offset of a larger message (so every load is unaligned), read in place.
    static func wire(_ b: [UInt8], _ encoding: UpdateEncoding, count: Int) throws -> WireValues {
        let message = [0x42, 0x13, 0x07] + b + [0x99]
        return try WireValues(
            encoding: encoding, count: count, storage: message, range: 3..<(3 + b.count), maxCount: 1 << 17)
    }

    @Test("Decode, bound check and weighted add read in place equal the naive decode and loops", arguments: encodings)
    func matchesNaive(encoding: UpdateEncoding) throws {
        let count = 1000  // not a multiple of either block: a short last block
        let x = Self.values(count: count, seed: 7)
        let b = Self.bytes(x, encoding)
        let reference = Self.naiveDecode(b, encoding, count: count)
        let wire = try Self.wire(b, encoding, count: count)
        #expect(wire.decoded().map(\.bitPattern) == reference.map(\.bitPattern))
        if encoding != .float32 {
            // The copy-out path of the encoded values decodes the same.
            let encoded = x.withUnsafeBufferPointer { EncodedValues(encoding: encoding, values: $0) }
            #expect(encoded.decoded().map(\.bitPattern) == reference.map(\.bitPattern))
        }
        // Weighted add into existing sums, as the accumulator does with decoded values.
        let start = (0..<count).map { Float($0 % 11) * 0.25 - 1 }
        for w: Float in [1, 3, -0.7] {
            var sums = start
            sums.withUnsafeMutableBufferPointer { wire.add(scaledBy: w, to: $0.baseAddress!) }
            let expected = (0..<count).map { start[$0] + w * reference[$0] }
            #expect(sums.map(\.bitPattern) == expected.map(\.bitPattern), "weight \(w)")
        }
        // Bounds: around the largest magnitude, exactly what the decoded values say.
        let largest = reference.map(\.magnitude).max() ?? 0
        for bound in [largest, largest.nextDown, largest / 2, 0, -0.0, -1, .nan, .greatestFiniteMagnitude, .infinity] {
            #expect(wire.allWithin(bound) == reference.allSatisfy { $0.magnitude <= bound }, "bound \(bound)")
        }
    }

    @Test("Non-finite and out-of-range values found in place; an int8 block whose largest code overflows")
    func hostileValues() throws {
        // float32: NaN and +Inf at the end of a run.
        for bad in [Float.nan, .infinity, -.infinity] {
            var x = Self.values(count: 300, seed: 3)
            x[299] = bad
            let wire = try Self.wire(Self.bytes(x, .float32), .float32, count: 300)
            #expect(!wire.allWithin(.greatestFiniteMagnitude))
            #expect(wire.allWithin(.infinity) == !bad.isNaN)
        }
        // fp16: Inf (0x7C00) and NaN (0x7E00) words.
        for word: [UInt8] in [[0x00, 0x7C], [0x00, 0x7E]] {
            let b = Self.bytes(Array(repeating: 0.5, count: 9), .float16) + word
            #expect(!(try Self.wire(b, .float16, count: 10)).allWithin(.greatestFiniteMagnitude))
        }
        // int8: a scale near float32's largest; code −128 (never written by a site) and 127 overflow to ±Inf.
        let scale = withUnsafeBytes(of: (Float.greatestFiniteMagnitude / 100).bitPattern.littleEndian, Array.init)
        for code: UInt8 in [0x80, 0x7F, 0x01] {
            let b = scale + [UInt8](repeating: 0, count: 15) + [code]
            let wire = try Self.wire(b, .int8Blocks(blockSize: 16), count: 16)
            let reference = Self.naiveDecode(b, .int8Blocks(blockSize: 16), count: 16)
            #expect(wire.allWithin(.greatestFiniteMagnitude) == reference.allSatisfy(\.isFinite), "code \(code)")
            #expect(wire.allWithin(1e30) == reference.allSatisfy { $0.magnitude <= 1e30 }, "code \(code)")
        }
    }

    @Test("Sizes and scales are checked before anything is read: outside the message, truncated, NaN scale")
    func refusals() throws {
        let message = [UInt8](repeating: 0, count: 64)
        func refused(_ encoding: UpdateEncoding, _ count: Int, _ range: Range<Int>, _ code: FederationError.Code) {
            do {
                _ = try WireValues(encoding: encoding, count: count, storage: message, range: range, maxCount: 1 << 17)
                Issue.record("accepted \(encoding) \(count) \(range)")
            } catch { #expect(error.code == code, "\(error)") }
        }
        refused(.float32, 16, 60..<124, .shapeMismatch)  // past the message's end
        refused(.float32, 15, 0..<64, .shapeMismatch)  // not 4 bytes a value
        refused(.float32, Int.max / 2, 0..<64, .shapeMismatch)
        refused(.float16, 33, 0..<64, .shapeMismatch)
        refused(.int8Blocks(blockSize: 16), 1 << 20, 0..<64, .tooLarge)
        var nan = message
        nan.replaceSubrange(0..<4, with: [0x00, 0x00, 0xC0, 0x7F])
        do {
            _ = try WireValues(
                encoding: .int8Blocks(blockSize: 16), count: 16, storage: nan, range: 0..<20, maxCount: 64)
            Issue.record("a NaN scale was accepted")
        } catch { #expect(error.code == .nonFinite) }
        // The well-formed ones are read.
        #expect(try WireValues(encoding: .float32, count: 16, storage: message, range: 0..<64, maxCount: 1).count == 16)
        #expect(
            try WireValues(
                encoding: .int8Blocks(blockSize: 16), count: 16, storage: message, range: 0..<20, maxCount: 64
            ).decoded() == Array(repeating: 0, count: 16))
    }

    @Test("The accumulator adds chunks in their message exactly as decoded chunks, and refuses non-finite ones")
    func accumulator() throws {
        let count = 600
        let structure: [(name: String, shape: [Int])] = [("w", [count])]
        for encoding in Self.encodings {
            var inPlace = StreamingAccumulator(structure: structure)
            var decoded = StreamingAccumulator(structure: structure)
            for (site, seed, weight) in [("a", UInt64(1), 2.0), ("b", 2, 1.0)] {
                let x = Self.values(count: count, seed: seed).map { $0 * 1e-3 }
                for start in stride(from: 0, to: count, by: 256) {
                    let piece = Array(x[start..<min(start + 256, count)])
                    let wire = try Self.wire(Self.bytes(piece, encoding), encoding, count: piece.count)
                    try inPlace.accept(
                        ParameterChunk(tensor: "w", shape: [count], offset: start, inMessage: wire), weight: weight,
                        from: site)
                    try decoded.accept(
                        ParameterChunk(tensor: "w", shape: [count], offset: start, values: wire.decoded()),
                        weight: weight,
                        from: site)
                }
                try inPlace.commit(client: site, weight: weight)
                try decoded.commit(client: site, weight: weight)
            }
            let got = try #require(try inPlace.weightedMean()["w"]?.values)
            let want = try #require(try decoded.weightedMean()["w"]?.values)
            #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "\(encoding)")
        }
        // A NaN in place is refused with the value, and nothing of the chunk reaches the sums.
        var sums = StreamingAccumulator(structure: structure)
        var x = [Float](repeating: 1, count: count)
        x[5] = .nan
        let wire = try Self.wire(Self.bytes(x, .float32), .float32, count: count)
        do {
            try sums.accept(
                ParameterChunk(tensor: "w", shape: [count], offset: 0, inMessage: wire), weight: 1, from: "a")
            Issue.record("a NaN was accepted")
        } catch {
            #expect(error.code == .nonFinite && error.message.contains("nan"), "\(error)")
        }
        #expect(throws: FederationError.self) { try sums.commit(client: "a", weight: 1) }  // nothing booked
    }

    @Test("A chunk still in its message assembles to its decoded values (it once trapped: Fuzz/chunk-codec/crashes)")
    func assembledInMessage() throws {
        let x = Self.values(count: 300, seed: 11)
        for encoding in Self.encodings {
            let wire = try Self.wire(Self.bytes(x, encoding), encoding, count: 300)
            var assembler = ParameterAssembler()
            try assembler.append(ParameterChunk(tensor: "w", shape: [2, 150], offset: 0, inMessage: wire))
            let set = try assembler.finish()
            #expect(set["w"]?.values.map(\.bitPattern) == wire.decoded().map(\.bitPattern), "\(encoding)")
            #expect(set["w"]?.shape == [2, 150])
        }
    }

}

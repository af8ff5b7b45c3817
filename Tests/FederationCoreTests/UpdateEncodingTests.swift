import FederationCore
import Foundation
import Randomness
import Testing

/// Seeded values over many magnitudes: sign, binade and mantissa drawn from SplitMix64.
private func values(count: Int, seed: UInt64, binades: ClosedRange<Int>) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in
        let r = rng.next()
        let exponent = binades.lowerBound + Int(r % UInt64(binades.count))
        let mantissa = 1 + Float(Double(r >> 40) / Double(1 << 24))
        return (r & 1 == 0 ? 1 : -1) * mantissa * Float(sign: .plus, exponent: exponent, significand: 1)
    }
}

/// Round to nearest even at `bits` significant bits, in Double (exact for float32 inputs): the naive reference of
/// fp16's and bf16's normal range.
private func roundSignificand(_ x: Float, bits: Int) -> Float {
    guard x != 0 else { return x }
    let ulp = Double(sign: .plus, exponent: Int(x.exponent) - (bits - 1), significand: 1)
    return Float((Double(x) / ulp).rounded(.toNearestOrEven) * ulp)
}

private func roundTrip(_ x: [Float], _ encoding: UpdateEncoding) -> (EncodedValues, [Float]) {
    let encoded = x.withUnsafeBufferPointer { EncodedValues(encoding: encoding, values: $0) }
    return (encoded, encoded.decoded())
}

@Suite("Update encodings: fp16, bf16, int8 blocks; documented error bounds, naive references, hostile bytes")
struct UpdateEncodingTests {
    @Test("fp16: the normal range within 2⁻¹¹ relative, equal to rounding to 11 significant bits")
    func float16Normal() {
        let x = values(count: 20_000, seed: 1, binades: -14...15)
        let (encoded, y) = roundTrip(x, .float16)
        #expect(encoded.bytes.count == 2 * x.count)
        for i in x.indices {
            #expect(abs(y[i] - x[i]) <= 0x1p-11 * abs(x[i]), "\(x[i]) → \(y[i])")
            // Values that round up past 65504 saturate there; every other one is the naive rounding.
            #expect(y[i] == min(max(roundSignificand(x[i], bits: 11), -65504), 65504), "\(x[i]) → \(y[i])")
        }
    }

    #if !(os(macOS) && arch(x86_64))
        @Test("fp16: bit for bit as Swift's Float16 over every binary16 value and the midpoints between them")
        func float16MatchesNative() {
            var inputs: [Float] = []
            for bits in UInt16(0)...0x7BFF {
                let h = Float(Float16(bitPattern: bits))
                inputs += [h, -h]
                let next = Float(Float16(bitPattern: bits + 1))
                if bits < 0x7BFF { inputs.append((h + next) / 2) }  // exact ties: round to even
            }
            let (_, y) = roundTrip(inputs, .float16)
            for i in inputs.indices {
                #expect(y[i].bitPattern == Float(Float16(inputs[i])).bitPattern, "\(inputs[i]) → \(y[i])")
            }
        }
    #endif

    @Test("fp16: subnormals within 2⁻²⁵ absolute; beyond ±65504 saturated, never infinite")
    func float16Edges() {
        let tiny = values(count: 5_000, seed: 2, binades: -30 ... -15)
        let (_, y) = roundTrip(tiny, .float16)
        for i in tiny.indices { #expect(abs(y[i] - tiny[i]) <= 0x1p-25, "\(tiny[i]) → \(y[i])") }
        let (_, big) = roundTrip([65504, 65519, 65520, 1e6, -3e38, 0, -0.0], .float16)
        #expect(big == [65504, 65504, 65504, 65504, -65504, 0, 0])
        #expect(big[6].sign == .minus)
    }

    @Test("bf16: within 2⁻⁸ relative over float32's range, equal to rounding to 8 significant bits")
    func bfloat16() {
        let x = values(count: 20_000, seed: 3, binades: -126...126)
        let (encoded, y) = roundTrip(x, .bfloat16)
        #expect(encoded.bytes.count == 2 * x.count)
        for i in x.indices {
            #expect(abs(y[i] - x[i]) <= 0x1p-8 * abs(x[i]), "\(x[i]) → \(y[i])")
            #expect(y[i] == roundSignificand(x[i], bits: 8), "\(x[i]) → \(y[i])")
        }
        let (_, edge) = roundTrip([.greatestFiniteMagnitude, -.greatestFiniteMagnitude], .bfloat16)
        #expect(edge.allSatisfy { $0.isFinite && abs($0) == Float(bitPattern: 0x7F7F_0000) })
    }

    @Test(
        "int8 blocks: |x − x̂| ≤ s/2 with s = max|x|/127 per block; codes as the naive Double reference",
        arguments: [16, 100, 256, 4096])
    func int8Blocks(blockSize: Int) throws {
        var x = values(count: 10_007, seed: UInt64(blockSize), binades: -20...3)
        for i in stride(from: 0, to: x.count, by: 7) { x[i] = 0 }
        x.replaceSubrange(0..<blockSize, with: repeatElement(0, count: blockSize))  // an all-zero block
        let encoding = UpdateEncoding.int8Blocks(blockSize: blockSize)
        let (encoded, y) = roundTrip(x, encoding)
        let blocks = (x.count + blockSize - 1) / blockSize
        #expect(encoded.bytes.count == x.count + 4 * blocks)
        let raw = Array(encoded.bytes)
        for k in 0..<blocks {
            let range = (k * blockSize)..<min((k + 1) * blockSize, x.count)
            let maxAbs = x[range].map(\.magnitude).max() ?? 0
            let at = k * (blockSize + 4)
            let scale = raw[at..<(at + 4)].withUnsafeBytes {
                Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)))
            }
            #expect(scale == maxAbs / 127)
            for (j, i) in range.enumerated() {
                let code = Int8(bitPattern: raw[at + 4 + j])
                let naive = scale > 0 ? Int8((Double(x[i]) / Double(scale)).rounded(.toNearestOrEven)) : 0
                #expect(abs(Int(code) - Int(naive)) <= 1, "block \(k) value \(i)")  // float32 vs Double at a tie
                #expect(y[i] == Float(code) * scale)
                #expect(abs(y[i] - x[i]) <= scale / 2 * (1 + 0x1p-20), "\(x[i]) → \(y[i]), s = \(scale)")
                if x[i] == 0 { #expect(y[i] == 0) }
            }
        }
    }

    @Test(
        "int8 with the residual fused: the bytes and residual of encoding y = x + e, decoding, and e = y − ŷ",
        arguments: [16, 96, 256])
    func int8FusedResidual(blockSize: Int) {
        // Counts off the block size, a block of zeros and one of subnormals (the Double fallback) among them.
        var x = values(count: 3 * blockSize + 7, seed: UInt64(blockSize), binades: -20...4)
        for i in blockSize..<(2 * blockSize) { x[i] = 0 }
        for i in (2 * blockSize)..<(3 * blockSize) { x[i] = Float.leastNonzeroMagnitude * Float(i % 5) }
        let start = values(count: x.count, seed: 99, binades: -30...(-8)).enumerated().map { i, v in
            (2 * blockSize)..<(3 * blockSize) ~= i || blockSize..<(2 * blockSize) ~= i ? 0 : v
        }
        let y = (0..<x.count).map { x[$0] + start[$0] }
        let (reference, decoded) = roundTrip(y, .int8Blocks(blockSize: blockSize))
        let expectedResidual = (0..<y.count).map { y[$0] - decoded[$0] }
        var residual = start
        let fused = x.withUnsafeBufferPointer { xs in
            residual.withUnsafeMutableBufferPointer { EncodedValues(int8Blocks: blockSize, values: xs, residual: $0) }
        }
        #expect(fused == reference)
        #expect(residual.map(\.bitPattern) == expectedResidual.map(\.bitPattern))
    }

    @Test("A piece cut on a block boundary decodes as the same values of the whole, sharing its bytes")
    func pieces() {
        let x = values(count: 1000, seed: 9, binades: -8...2)
        for encoding in [UpdateEncoding.float16, .bfloat16, .int8Blocks(blockSize: 64)] {
            let (encoded, y) = roundTrip(x, encoding)
            for range in [0..<64, 64..<1000, 960..<1000, 128..<129] {
                let piece = encoded.piece(range)
                #expect(piece.count == range.count)
                #expect(piece.decoded() == Array(y[range]))
            }
        }
    }

    @Test("Hostile encoded chunks are refused before anything is allocated, naming the reason")
    func hostile() {
        let x = values(count: 300, seed: 4, binades: -4...0)
        let (encoded, _) = roundTrip(x, .int8Blocks(blockSize: 128))
        let bytes = Array(encoded.bytes)
        func refusal(_ count: Int, _ b: [UInt8], _ encoding: UpdateEncoding = .int8Blocks(blockSize: 128))
            -> FederationError?
        {
            do {
                _ = try EncodedValues(encoding: encoding, count: count, bytes: b[...], maxCount: 1 << 17)
                return nil
            } catch { return error }
        }
        #expect(refusal(300, bytes) == nil)
        #expect(refusal(300, Array(bytes.dropLast()))?.code == .shapeMismatch)  // truncated
        #expect(refusal(301, bytes)?.code == .shapeMismatch)  // a count the bytes do not hold
        #expect(refusal(1 << 17 + 1, bytes)?.code == .tooLarge)  // above the chunk limit
        #expect(refusal(Int.max, bytes)?.code == .tooLarge)  // no overflow computing its size
        #expect(refusal(-1, bytes)?.code == .tooLarge)
        #expect(refusal(151, Array(bytes.prefix(300)), .float16)?.code == .shapeMismatch)
        for bad in [Float.nan, .infinity, -1] {
            var hostile = bytes
            withUnsafeBytes(of: bad.bitPattern.littleEndian) { hostile.replaceSubrange(132..<136, with: $0) }
            let error = refusal(300, hostile)
            #expect(error?.code == .nonFinite, "\(bad)")
            #expect(error?.message.contains("block 1") == true, "\(error?.message ?? "")")
        }
        #expect(throws: FederationError.self) { try UpdateEncoding(wireCode: 3, blockSize: 1 << 40) }
        #expect(throws: FederationError.self) { try UpdateEncoding(wireCode: 9, blockSize: 0) }
        #expect(throws: FederationError.self) { try UpdateEncoding(name: "int4") }
        #expect(throws: FederationError.self) { try UpdateEncoding(name: "int8", blockSize: 8) }
    }

    @Test("A task's configuration names the encoding; a site told nothing sends float32")
    func taskConfig() throws {
        for encoding in [UpdateEncoding.float32, .float16, .bfloat16, .int8Blocks(blockSize: 512)] {
            #expect(try UpdateEncoding(taskConfig: encoding.taskConfig) == encoding)
        }
        #expect(try UpdateEncoding(taskConfig: [:]) == .float32)
        #expect(throws: FederationError.self) {
            try UpdateEncoding(taskConfig: [
                UpdateEncoding.configKey: .string("int8"), "update_encoding_block_size": .int(3),
            ])
        }
    }
}

@Suite("Error feedback at the site: the sum received over rounds follows the uncompressed sum")
struct UpdateCompressorTests {
    /// A seeded sequence of diffs: a steady drift plus noise, as local training gives round after round.
    static func diffs(rounds: Int, count: Int) -> [ParameterSet] {
        var rng = SplitMix64(seed: 20_261_207)
        return (0..<rounds).map { _ in
            ParameterSet([
                ParameterTensor(
                    name: "w", shape: [count],
                    values: (0..<count).map { i in
                        let noise = Float(rng.uniform(-0.5, 0.5))
                        return 1e-3 * Float(i % 17) + 2e-3 * noise
                    }),
                ParameterTensor(name: "b", shape: [3], values: [1e-4, -3e-2, 0]),
            ])
        }
    }

    /// Σ over rounds of what the server decodes, per value (Double).
    static func received(_ chunks: [[ParameterChunk]], count: Int) throws -> [Double] {
        var sum = [Double](repeating: 0, count: count)
        for round in chunks {
            let set = try ParameterSet(assembling: round)
            for (i, v) in (set["w"]?.values ?? []).enumerated() { sum[i] += Double(v) }
        }
        return sum
    }

    @Test(
        "Σ decoded − Σ sent is the last residual (one encoding's error), not the sum of every round's",
        arguments: [UpdateEncoding.float16, .bfloat16, .int8Blocks(blockSize: 64)])
    func accumulatedSumConverges(encoding: UpdateEncoding) throws {
        let rounds = 60
        let count = 1000
        let diffs = Self.diffs(rounds: rounds, count: count)
        var truth = [Double](repeating: 0, count: count)
        for d in diffs { for (i, v) in (d["w"]?.values ?? []).enumerated() { truth[i] += Double(v) } }

        var compressor = UpdateCompressor(jobID: "j", encoding: encoding)
        var withFeedback: [[ParameterChunk]] = []
        var without: [[ParameterChunk]] = []
        for d in diffs {
            withFeedback.append(compressor.encode(d, maxScalars: 256))
            var fresh = UpdateCompressor(jobID: "j", encoding: encoding)  // no memory: plain quantisation
            without.append(fresh.encode(d, maxScalars: 256))
        }
        let fed = try Self.received(withFeedback, count: count)
        let plain = try Self.received(without, count: count)
        let residual = compressor.residual(of: "w") ?? []
        // Σ ŷ = Σ x − e_last, up to float32 rounding of the additions.
        var worstFed = 0.0
        var worstPlain = 0.0
        for i in 0..<count {
            #expect(abs(fed[i] + Double(residual[i]) - truth[i]) <= 1e-6 * Double(rounds), "value \(i)")
            worstFed = max(worstFed, abs(fed[i] - truth[i]))
            worstPlain = max(worstPlain, abs(plain[i] - truth[i]))
        }
        // One encoding's error of one round's y (|y| < 0.02 here): int8 s/2 ≤ 0.02/254, fp16/bf16 relative.
        let oneStep: Double =
            switch encoding {
            case .int8Blocks: 0.02 / 254 * 1.01
            case .float16: 0.02 * 0x1p-11
            default: 0.02 * 0x1p-8
            }
        #expect(worstFed <= oneStep, "\(encoding): \(worstFed)")
        #expect(worstPlain > 3 * worstFed, "\(encoding): without feedback \(worstPlain), with \(worstFed)")
    }

    @Test("Chunks hold whole int8 blocks; tensor order and offsets as ParameterSet.chunks; empty tensors plain")
    func chunking() throws {
        let d = ParameterSet([
            ParameterTensor(name: "a", shape: [1000], values: (0..<1000).map { Float($0) / 1000 }),
            ParameterTensor(name: "e", shape: [0], values: []),
        ])
        var compressor = UpdateCompressor(jobID: "j", encoding: .int8Blocks(blockSize: 96))
        #expect(compressor.chunkLength(maxScalars: 300) == 288)
        #expect(compressor.chunkLength(maxScalars: 10) == 96)
        let chunks = compressor.encode(d, maxScalars: 300)
        #expect(chunks.map(\.offset) == [0, 288, 576, 864, 0])
        #expect(chunks.map(\.valueCount) == [288, 288, 288, 136, 0])
        #expect(chunks[4].encoded == nil)
        let back = try ParameterSet(assembling: chunks)
        #expect(back.structure.map(\.name) == ["a", "e"])
        var plain = UpdateCompressor(jobID: "j", encoding: .float32)
        #expect(plain.encode(d, maxScalars: 300) == d.chunks(maxScalars: 300))
    }
}

import FederationCore
import GRPCCore
import Testing

@testable import FederationGRPC

/// Compressed update chunks on the wire: written by the site, checked and read by the server before any copy.
@Suite("Encoded chunks: fp16, bf16 and int8 blocks through the hand-written codec; hostile encodings refused")
struct EncodedChunkCodecTests {
    static let values: [Float] = (0..<1000).map { Float($0 % 37) * 0.013 - 0.2 }

    static func encoded(_ encoding: UpdateEncoding, _ x: [Float] = values) -> ParameterChunk {
        let e = x.withUnsafeBufferPointer { EncodedValues(encoding: encoding, values: $0) }
        return ParameterChunk(tensor: "enc.0.conv1.weight", shape: [10, 100], offset: 0, encoded: e)
    }

    /// The server's reading of one upload message.
    static func upload(_ bytes: [UInt8], maxChunkScalars: Int = 1 << 17) throws -> IncomingPart {
        try IncomingPartDeserializer(maxChunkScalars: maxChunkScalars).deserialize(bytes)
    }

    @Test(
        "An encoded chunk written by the site reads back at the server with the same bytes and shape",
        arguments: [UpdateEncoding.float16, .bfloat16, .int8Blocks(blockSize: 256), .int8Blocks(blockSize: 16)])
    func roundTrip(encoding: UpdateEncoding) throws {
        let chunk = Self.encoded(encoding)
        let bytes: [UInt8] = try OutgoingPartSerializer().serialize(.chunk(chunk))
        // The message is the encoded size plus a few bytes of fields, not 4 bytes a value.
        #expect(bytes.count < encoding.byteCount(values: 1000) + 64)
        guard case .chunk(let back) = try Self.upload(bytes) else {
            Issue.record("not read as a chunk")
            return
        }
        // Left in the message (no copy); the same bytes and values once copied out.
        #expect(back.inMessage?.encoding == encoding && back.encoded == nil)
        #expect(back.materialized() == chunk)
        #expect(back.inMessage?.decoded() == chunk.encoded?.decoded())
        // Byte-compatible with the generated code of federation.proto, both ways.
        let alone: [UInt8] = try ChunkSerializer().serialize(chunk)
        #expect(alone == (try chunk.wire.serializedBytes() as [UInt8]))
        #expect(try ParameterChunk(wire: try WireChunk(serializedBytes: alone)) == chunk)
    }

    @Test("The site cuts an encoded chunk at block boundaries into messages of at most the transport's values")
    func pieces() throws {
        let chunk = Self.encoded(.int8Blocks(blockSize: 96))
        let pieces = GRPCFederationConnection.pieces(of: try #require(chunk.encoded), chunk: chunk, pieceSize: 300)
        #expect(pieces.map(\.offset) == [0, 288, 576, 864])
        #expect(pieces.map(\.valueCount) == [288, 288, 288, 136])
        var assembler = ParameterAssembler()
        for p in pieces { try assembler.append(p) }
        let whole = try #require(chunk.encoded?.decoded())
        #expect(try assembler.finish()["enc.0.conv1.weight"]?.values == whole)
        let fp16 = Self.encoded(.float16)
        #expect(GRPCFederationConnection.pieces(of: try #require(fp16.encoded), chunk: fp16, pieceSize: 300).count == 4)
        #expect(GRPCFederationConnection.pieces(of: try #require(fp16.encoded), chunk: fp16, pieceSize: 1000) == [fp16])
    }

    /// An UploadResultPart holding a ParameterChunk with the encoded fields as given (hand-built, as a hostile site).
    static func hostile(encoding: UInt64, blockSize: UInt64, count: UInt64, bytes: [UInt8], values: [UInt8] = [])
        -> [UInt8]
    {
        func varint(_ v: UInt64) -> [UInt8] {
            var out: [UInt8] = []
            var v = v
            while v >= 0x80 {
                out.append(UInt8(truncatingIfNeeded: v) | 0x80)
                v >>= 7
            }
            return out + [UInt8(v)]
        }
        var chunk: [UInt8] = [0x0A, 0x01, 0x77, 0x12, 0x01, 0x40]  // tensor "w", shape [64]
        if !values.isEmpty { chunk += [0x22] + varint(UInt64(values.count)) + values }
        chunk += [0x28] + varint(encoding) + [0x30] + varint(blockSize) + [0x38] + varint(count)
        chunk += [0x42] + varint(UInt64(bytes.count)) + bytes
        return [0x12] + varint(UInt64(chunk.count)) + chunk
    }

    @Test("Hostile encodings are refused with the reason before their bytes are copied")
    func hostileRefused() throws {
        let good = Array(
            try #require(Self.encoded(.int8Blocks(blockSize: 16), Array(Self.values[0..<64])).encoded).bytes)
        guard case .chunk = try Self.upload(Self.hostile(encoding: 3, blockSize: 16, count: 64, bytes: good)) else {
            Issue.record("the well-formed chunk was refused")
            return
        }
        var nanScale = good
        nanScale.replaceSubrange(20..<24, with: [0x00, 0x00, 0xC0, 0x7F])  // block 1's scale: NaN
        let cases: [([UInt8], FederationError.Code, String)] = [
            (
                Self.hostile(encoding: 3, blockSize: 16, count: 64, bytes: Array(good.dropLast())), .shapeMismatch,
                "truncated"
            ),
            (Self.hostile(encoding: 3, blockSize: 16, count: 64, bytes: nanScale), .nonFinite, "scale nan"),
            (Self.hostile(encoding: 3, blockSize: 16, count: 1 << 40, bytes: good), .tooLarge, "at most"),
            (Self.hostile(encoding: 3, blockSize: 16, count: UInt64.max >> 1, bytes: good), .tooLarge, "at most"),
            (
                Self.hostile(encoding: 1, blockSize: 0, count: 64, bytes: Array(good.prefix(100))), .shapeMismatch,
                "80 long, not 128"
            ),
            (Self.hostile(encoding: 3, blockSize: 1 << 30, count: 64, bytes: good), .invalidConfiguration, "block"),
            (Self.hostile(encoding: 7, blockSize: 0, count: 64, bytes: good), .invalidConfiguration, "unknown"),
            (
                Self.hostile(encoding: 2, blockSize: 0, count: 2, bytes: [0, 0, 0, 0], values: [0, 0, 0x80, 0x3F]),
                .invalidConfiguration, "both"
            ),
        ]
        for (bytes, code, mentions) in cases {
            guard case .refused(let error) = try Self.upload(bytes) else {
                Issue.record("accepted: \(mentions)")
                continue
            }
            #expect(error.code == code, "\(error)")
            #expect(error.message.lowercased().contains(mentions), "\(error.message)")
        }
        // Within the transport's own chunk limit only.
        guard
            case .refused(let small) = try Self.upload(
                Self.hostile(encoding: 3, blockSize: 16, count: 64, bytes: good), maxChunkScalars: 63)
        else {
            Issue.record("a count over the limit was accepted")
            return
        }
        #expect(small.code == .tooLarge)
    }
}

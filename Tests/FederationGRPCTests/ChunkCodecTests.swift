import FederationCore
import GRPCCore
import SwiftProtobuf
import Testing

@testable import FederationGRPC

/// The hand-written codec of the parameter-carrying messages must be byte-compatible with the generated code.
@Suite("Chunk codec: protobuf wire format by hand, one copy per value")
struct ChunkCodecTests {
    static let cases: [ParameterChunk] = [
        ParameterChunk(
            tensor: "enc.0.conv1.weight", shape: [2, 3], offset: 2,
            values: [1.5, -.infinity, .leastNonzeroMagnitude, -0.0]),
        ParameterChunk(tensor: "w", shape: [300], offset: 0, values: [Float](repeating: 0.25, count: 200)),
        ParameterChunk(tensor: "é", shape: [1 << 20, 3], offset: 1 << 21, values: [7]),
        ParameterChunk(tensor: "empty", shape: [0], offset: 0, values: []),
    ]

    @Test("A chunk written by hand reads back identically through SwiftProtobuf", arguments: cases)
    func writeMatchesGenerated(chunk: ParameterChunk) throws {
        let bytes: [UInt8] = try ChunkSerializer().serialize(chunk)
        #expect(bytes == (try chunk.wire.serializedBytes() as [UInt8]))  // same bytes, field for field
        let back = try ParameterChunk(wire: try WireChunk(serializedBytes: bytes))
        #expect(back.values.map(\.bitPattern) == chunk.values.map(\.bitPattern))
        #expect(back.tensor == chunk.tensor && back.shape == chunk.shape && back.offset == chunk.offset)
    }

    @Test("A chunk written by SwiftProtobuf reads back identically by hand, downloaded or uploaded", arguments: cases)
    func readMatchesGenerated(chunk: ParameterChunk) throws {
        let bytes: [UInt8] = try chunk.wire.serializedBytes()
        let received = try ReceivedChunkDeserializer().deserialize(bytes)
        var assembler = ParameterAssembler()
        try assembler.append(tensor: chunk.tensor, shape: chunk.shape, offset: 0, count: chunk.offset) {
            $0.append(contentsOf: repeatElement(0, count: chunk.offset))
        }
        try assembler.append(received: received)
        #expect(received.tensor == chunk.tensor && received.shape == chunk.shape && received.offset == chunk.offset)

        var part = WireUploadPart()
        part.chunk = chunk.wire
        let partBytes: [UInt8] = try part.serializedBytes()
        guard case .chunk(let uploaded) = try IncomingPartDeserializer().deserialize(partBytes) else {
            Issue.record("not a chunk")
            return
        }
        // Left in the message, read in place: the same bits.
        #expect(uploaded.inMessage?.encoding == .float32)
        #expect(uploaded.materialized().values.map(\.bitPattern) == chunk.values.map(\.bitPattern))
        #expect(uploaded.tensor == chunk.tensor && uploaded.shape == chunk.shape && uploaded.offset == chunk.offset)
    }

    @Test("Upload parts written by hand are the generated UploadResultPart")
    func uploadParts() throws {
        let header = ResultHeader(jobID: "j", round: 3, site: "a", sampleCount: 12, metrics: ["dice": 0.5])
        let headerBytes: [UInt8] = try OutgoingPartSerializer().serialize(.header(header))
        #expect(ResultHeader(wire: try WireUploadPart(serializedBytes: headerBytes).header) == header)
        guard case .header(let back) = try IncomingPartDeserializer().deserialize(headerBytes) else {
            Issue.record("not a header")
            return
        }
        #expect(back == header)

        let tensor = ParameterTensor(name: "w", shape: [10], values: (0..<10).map(Float.init))
        let view = ParameterSet([tensor]).chunks(maxScalars: 4)[1]  // a view: values 4..<8
        let chunkBytes: [UInt8] = try OutgoingPartSerializer().serialize(.chunk(view))
        let wire = try WireUploadPart(serializedBytes: chunkBytes)
        #expect(
            try ParameterChunk(wire: wire.chunk)
                == ParameterChunk(tensor: "w", shape: [10], offset: 4, values: [4, 5, 6, 7]))
    }

    @Test("Unpacked shapes and unknown fields are read; malformed messages are refused")
    func lenient() throws {
        // tensor "w", shape 3 unpacked (field 2 varint), unknown field 9 (fixed32), values one float (1.0).
        let bytes: [UInt8] = [0x0A, 0x01, 0x77, 0x10, 0x03, 0x4D, 1, 2, 3, 4, 0x22, 0x04, 0, 0, 0x80, 0x3F]
        let received = try ReceivedChunkDeserializer().deserialize(bytes)
        #expect(received.shape == [3] && received.valueCount == 1)
        for bad: [UInt8] in [
            [0x22, 0x05, 0, 0, 0x80, 0x3F, 0],  // 5 bytes: not whole floats
            [0x22, 0x09, 0, 0],  // longer than the message
            [0x0A],  // truncated
            [0x0B, 0x00],  // wire type 3 (groups)
            [0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],  // offset −1
        ] {
            #expect(throws: RPCError.self) { _ = try ReceivedChunkDeserializer().deserialize(bad) }
        }
    }
    /// Fuzz/chunk-codec/crashes/download-shape-2p40-reserves-4TiB: an 18-byte chunk declaring shape [2^20, 2^20]
    /// made the assembler reserve the whole tensor (4 TiB) before any value arrived, which traps.
    @Test("A chunk declaring a huge tensor is assembled without reserving the tensor up front")
    func hugeDeclaredShape() throws {
        // ParameterChunk { tensor: "w", shape: [2^20, 2^20] (packed), values: one float32 }
        let bytes: [UInt8] = [
            0x0A, 0x01, 0x77, 0x12, 0x06, 0x80, 0x80, 0x40, 0x80, 0x80, 0x40, 0x22, 0x04,
            0x00, 0x00, 0x80, 0x3F,
        ]
        let received = try ReceivedChunkDeserializer().deserialize(bytes)
        #expect(received.shape == [1 << 20, 1 << 20] && received.valueCount == 1)
        var assembler = ParameterAssembler()
        try assembler.append(received: received)
        #expect(throws: FederationError.self) { try assembler.finish() }  // 1 value of 2^40: incomplete

        var wireAssembler = ParameterAssembler()
        try wireAssembler.append(wire: try WireChunk(serializedBytes: bytes))
        var part = WireUploadPart()
        part.chunk = try WireChunk(serializedBytes: bytes)
        let partBytes: [UInt8] = try part.serializedBytes()
        guard case .chunk(let uploaded) = try IncomingPartDeserializer().deserialize(partBytes) else {
            Issue.record("not read as a chunk")
            return
        }
        var uploadAssembler = ParameterAssembler()
        try uploadAssembler.append(uploaded.materialized())
        #expect(uploaded.materialized().values == [1])
    }
}

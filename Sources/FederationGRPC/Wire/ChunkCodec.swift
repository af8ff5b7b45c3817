import FederationCore
import Foundation
import GRPCCore
import GRPCNIOTransportCore
import GRPCProtobuf
import SwiftProtobuf

// The two methods that carry parameters (DownloadModel's chunks, UploadResult's parts) are encoded and decoded here
// by hand, in exactly the protobuf wire format of federation.proto, so that float32 values go from a tensor's storage
// into the message bytes in one copy and back in one copy. SwiftProtobuf would add one more each way (a `Data` for
// the `bytes` field): 100 MB per site per direction and round at 25M parameters. Every other message, and these
// messages' headers, still go through the generated code.

/// A result stream's message as the server reads it: the header, one chunk, or a chunk refused as it was read (an
/// encoded chunk whose sizes or scales do not check out: the handler refuses the result with the reason).
enum IncomingPart: Sendable {
    case header(ResultHeader)
    case chunk(ParameterChunk)
    case refused(FederationError)
}

/// A result stream's message as the site writes it.
enum OutgoingPart: Sendable {
    case header(ResultHeader)
    case chunk(ParameterChunk)
}

/// A downloaded chunk still in its message bytes (float32, or encoded: a change from the model the site holds): the
/// values are read once, straight into the tensor being built (`ModelReceiver`).
struct ReceivedChunk: Sendable {
    /// The chunk, its values in the message (`ParameterChunk.inMessage`, checked as `WireValues` are).
    var chunk: ParameterChunk

    var tensor: String { chunk.tensor }
    var shape: [Int] { chunk.shape }
    var offset: Int { chunk.offset }
    var valueCount: Int { chunk.valueCount }

    /// The chunk with its values copied out of the message.
    func parameterChunk() -> ParameterChunk { chunk.materialized() }
}

/// Message bytes kept as they arrived (NIO's buffer: no copy) or, from another transport, copied once.
private enum ReceivedBytes: WireBytes {
    case nio(GRPCNIOTransportBytes)
    case array([UInt8])

    init<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) {
        if let nio = bytes as? GRPCNIOTransportBytes {
            self = .nio(nio)
        } else {
            self = .array(bytes.withUnsafeBytes { Array($0) })
        }
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .nio(let b): try b.withUnsafeBytes(body)
        case .array(let a): try a.withUnsafeBytes(body)
        }
    }
}

// MARK: - Serializers and deserializers

/// DownloadModel's responses, server side: a chunk (a view into the model) written straight into the message.
struct ChunkSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ chunk: ParameterChunk) throws -> Bytes {
        var bytes = Bytes(repeating: 0, count: ChunkWire.size(of: chunk))
        bytes.withUnsafeMutableBytes { out in _ = ChunkWire.write(chunk, to: out, at: 0) }
        return bytes
    }
}

/// DownloadModel's responses, site side: fields parsed, values left in place until assembled; an encoded chunk's
/// bytes checked first (`EncodedValues.check`: count ≤ `maxChunkScalars`, byte length, scales).
struct ReceivedChunkDeserializer: MessageDeserializer {
    /// Most values one chunk may declare (`TransportLimits.chunkScalars`).
    var maxChunkScalars = TransportLimits().chunkScalars

    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> ReceivedChunk {
        let storage = ReceivedBytes(bytes)
        let fields = try storage.withUnsafeBytes { raw in try ChunkWire.parseChunk(raw, in: 0..<raw.count) }
        switch IncomingPartDeserializer.chunk(fields, storage: storage, maxCount: maxChunkScalars) {
        case .chunk(let chunk): return ReceivedChunk(chunk: chunk)
        case .refused(let error): throw RPCError(code: .invalidArgument, message: error.message)
        case .header: throw ChunkWire.malformed("a header in a model download")
        }
    }
}

/// UploadResult's requests, site side.
struct OutgoingPartSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ part: OutgoingPart) throws -> Bytes {
        switch part {
        case .header(let header):
            var wire = WireUploadPart()
            wire.header = header.wire
            return try ProtobufSerializer<WireUploadPart>().serialize(wire)
        case .chunk(let chunk):
            // UploadResultPart { ParameterChunk chunk = 2; }: tag, length, then the chunk message.
            let inner = ChunkWire.size(of: chunk)
            var bytes = Bytes(repeating: 0, count: 1 + ChunkWire.varintSize(UInt64(inner)) + inner)
            bytes.withUnsafeMutableBytes { out in
                var at = ChunkWire.writeVarint(ChunkWire.tag(2, .lengthDelimited), to: out, at: 0)
                at = ChunkWire.writeVarint(UInt64(inner), to: out, at: at)
                _ = ChunkWire.write(chunk, to: out, at: at)
            }
            return bytes
        }
    }
}

/// UploadResult's requests, server side: a chunk's values stay in the message (`ParameterChunk.inMessage`, no copy, no
/// allocation), float32 or encoded; an encoded chunk's bytes are checked first (`EncodedValues.check`: count ≤
/// `maxChunkScalars`, byte length, scales). The result intake checks and adds them from there.
struct IncomingPartDeserializer: MessageDeserializer {
    /// Most values one chunk may declare (`TransportLimits.chunkScalars`).
    var maxChunkScalars = TransportLimits().chunkScalars

    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> IncomingPart {
        let storage = ReceivedBytes(bytes)
        return try storage.withUnsafeBytes { raw in
            var part: IncomingPart?
            var reader = ChunkWire.Reader(raw, 0..<raw.count)
            while let (field, wireType) = try reader.nextTag() {
                switch (field, wireType) {
                case (1, .lengthDelimited):
                    let range = try reader.lengthDelimited()
                    let header = try WireHeader(serializedBytes: Array(raw[range]))
                    part = .header(ResultHeader(wire: header))
                case (2, .lengthDelimited):
                    let fields = try ChunkWire.parseChunk(raw, in: try reader.lengthDelimited())
                    part = Self.chunk(fields, storage: storage, maxCount: maxChunkScalars)
                default:
                    try reader.skip(wireType)
                }
            }
            guard let part else {
                throw RPCError(code: .invalidArgument, message: "empty message in a result stream")
            }
            return part
        }
    }

    /// A chunk with its values left in the message, or why it is refused (an encoded one is checked first).
    fileprivate static func chunk(
        _ fields: ChunkWire.ChunkFields, storage: ReceivedBytes, maxCount: Int
    ) -> IncomingPart {
        do throws(FederationError) {
            let values: WireValues
            if fields.encoding != 0 || !fields.encodedValues.isEmpty {
                guard fields.values.isEmpty else {
                    throw FederationError(.invalidConfiguration, "a chunk carries both float32 and encoded values")
                }
                let encoding = try UpdateEncoding(wireCode: fields.encoding, blockSize: fields.blockSize)
                guard encoding != .float32 else {
                    throw FederationError(
                        .invalidConfiguration, "float32 values travel unencoded, not as encoded values")
                }
                values = try WireValues(
                    encoding: encoding, count: fields.valueCount, storage: storage, range: fields.encodedValues,
                    maxCount: maxCount)
            } else {
                // float32: whole words (`parseChunk` checked); the count against the limit in the handler.
                values = try WireValues(
                    encoding: .float32, count: fields.values.count / 4, storage: storage, range: fields.values,
                    maxCount: maxCount)
            }
            return .chunk(
                ParameterChunk(tensor: fields.tensor, shape: fields.shape, offset: fields.offset, inMessage: values))
        } catch {
            return .refused(
                FederationError(error.code, "chunk of '\(fields.tensor.prefix(128))': \(error.message)"))
        }
    }
}

extension ParameterAssembler {
    /// Appends a downloaded chunk, copying its values from the message straight into the tensor being built.
    /// - Throws: `.shapeMismatch` for a chunk out of order or not fitting its tensor.
    mutating func append(received chunk: ReceivedChunk) throws(FederationError) {
        try append(chunk.chunk)
    }
}

// MARK: - The wire format

/// Protobuf's wire format for `ParameterChunk` (tensor = 1, shape = 2 packed, offset = 3, values = 4; an encoded
/// chunk: encoding = 5, block_size = 6, value_count = 7, encoded_values = 8), written in field order with default
/// values left out, as SwiftProtobuf writes it; read leniently (any field order, packed or unpacked shape, unknown
/// fields skipped, the last value of a repeated scalar wins).
enum ChunkWire {
    enum WireType: UInt64 { case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5 }

    static func tag(_ field: UInt64, _ type: WireType) -> UInt64 { field << 3 | type.rawValue }

    static func varintSize(_ v: UInt64) -> Int {
        var n = 1
        var v = v
        while v >= 0x80 {
            v >>= 7
            n += 1
        }
        return n
    }

    static func writeVarint(_ value: UInt64, to out: UnsafeMutableRawBufferPointer, at start: Int) -> Int {
        var v = value
        var at = start
        while v >= 0x80 {
            out[at] = UInt8(truncatingIfNeeded: v) | 0x80
            v >>= 7
            at += 1
        }
        out[at] = UInt8(v)
        return at + 1
    }

    private static func shapeSize(_ shape: [Int]) -> Int {
        shape.reduce(0) { $0 + varintSize(UInt64(bitPattern: Int64($1))) }
    }

    /// Bytes of the encoded `ParameterChunk` message.
    static func size(of c: ParameterChunk) -> Int {
        var n = 0
        let name = c.tensor.utf8.count
        if name > 0 { n += 1 + varintSize(UInt64(name)) + name }
        if !c.shape.isEmpty {
            let s = shapeSize(c.shape)
            n += 1 + varintSize(UInt64(s)) + s
        }
        if c.offset != 0 { n += 1 + varintSize(UInt64(bitPattern: Int64(c.offset))) }
        let values = c.values.count * 4
        if values > 0 { n += 1 + varintSize(UInt64(values)) + values }
        if let e = c.encoded {
            n += 1 + varintSize(UInt64(e.encoding.wireCode))
            if case .int8Blocks(let b) = e.encoding { n += 1 + varintSize(UInt64(b)) }
            n += 1 + varintSize(UInt64(e.count))
            n += 1 + varintSize(UInt64(e.bytes.count)) + e.bytes.count
        }
        return n
    }

    /// Writes the `ParameterChunk` message at `start`; returns the index after it.
    static func write(_ c: ParameterChunk, to out: UnsafeMutableRawBufferPointer, at start: Int) -> Int {
        var at = start
        let name = Array(c.tensor.utf8)
        if !name.isEmpty {
            at = writeVarint(tag(1, .lengthDelimited), to: out, at: at)
            at = writeVarint(UInt64(name.count), to: out, at: at)
            name.withUnsafeBytes {
                UnsafeMutableRawBufferPointer(rebasing: out[at..<(at + name.count)]).copyMemory(from: $0)
            }
            at += name.count
        }
        if !c.shape.isEmpty {
            at = writeVarint(tag(2, .lengthDelimited), to: out, at: at)
            at = writeVarint(UInt64(shapeSize(c.shape)), to: out, at: at)
            for d in c.shape { at = writeVarint(UInt64(bitPattern: Int64(d)), to: out, at: at) }
        }
        if c.offset != 0 {
            at = writeVarint(tag(3, .varint), to: out, at: at)
            at = writeVarint(UInt64(bitPattern: Int64(c.offset)), to: out, at: at)
        }
        let count = c.values.count * 4
        if count > 0 {
            at = writeVarint(tag(4, .lengthDelimited), to: out, at: at)
            at = writeVarint(UInt64(count), to: out, at: at)
            let target = UnsafeMutableRawBufferPointer(rebasing: out[at..<(at + count)])
            #if _endian(little)
                c.values.withUnsafeBytes { target.copyMemory(from: $0) }
            #else
                for (i, v) in c.values.enumerated() {
                    target.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                }
            #endif
            at += count
        }
        if let e = c.encoded {
            at = writeVarint(tag(5, .varint), to: out, at: at)
            at = writeVarint(UInt64(e.encoding.wireCode), to: out, at: at)
            if case .int8Blocks(let b) = e.encoding {
                at = writeVarint(tag(6, .varint), to: out, at: at)
                at = writeVarint(UInt64(b), to: out, at: at)
            }
            at = writeVarint(tag(7, .varint), to: out, at: at)
            at = writeVarint(UInt64(e.count), to: out, at: at)
            at = writeVarint(tag(8, .lengthDelimited), to: out, at: at)
            at = writeVarint(UInt64(e.bytes.count), to: out, at: at)
            e.bytes.withUnsafeBytes {
                UnsafeMutableRawBufferPointer(rebasing: out[at..<(at + e.bytes.count)]).copyMemory(from: $0)
            }
            at += e.bytes.count
        }
        return at
    }

    struct ChunkFields {
        var tensor = ""
        var shape: [Int] = []
        var offset = 0
        var values: Range<Int>
        /// Encoded chunks (fields 5–8), as read: checked by `EncodedValues.check` before use.
        var encoding = 0
        var blockSize = 0
        var valueCount = 0
        var encodedValues: Range<Int>
    }

    /// Parses a `ParameterChunk` message in `raw[range]`, leaving its values where they are.
    /// - Throws: `RPCError(.invalidArgument)` for malformed protobuf, a byte count that is not whole float32 values,
    ///   or an offset or shape out of range.
    static func parseChunk(_ raw: UnsafeRawBufferPointer, in range: Range<Int>) throws -> ChunkFields {
        var fields = ChunkFields(
            values: range.lowerBound..<range.lowerBound, encodedValues: range.lowerBound..<range.lowerBound)
        var reader = Reader(raw, range)
        while let (field, wireType) = try reader.nextTag() {
            switch (field, wireType) {
            case (1, .lengthDelimited):
                fields.tensor = String(
                    decoding: UnsafeRawBufferPointer(rebasing: raw[try reader.lengthDelimited()]),
                    as: UTF8.self)
            case (2, .lengthDelimited):
                var packed = Reader(raw, try reader.lengthDelimited())
                fields.shape = []
                while !packed.atEnd { fields.shape.append(try checkedDimension(try packed.varint())) }
            case (2, .varint):
                fields.shape.append(try checkedDimension(try reader.varint()))
            case (3, .varint):
                let offset = Int64(bitPattern: try reader.varint())
                guard offset >= 0 else { throw malformed("negative chunk offset \(offset)") }
                fields.offset = Int(offset)
            case (4, .lengthDelimited):
                fields.values = try reader.lengthDelimited()
            case (5, .varint):
                fields.encoding = Int(truncatingIfNeeded: min(try reader.varint(), 1 << 31))
            case (6, .varint):
                fields.blockSize = Int(truncatingIfNeeded: min(try reader.varint(), 1 << 31))
            case (7, .varint):
                let count = Int64(bitPattern: try reader.varint())
                guard count >= 0 else { throw malformed("negative value count \(count)") }
                fields.valueCount = Int(count)
            case (8, .lengthDelimited):
                fields.encodedValues = try reader.lengthDelimited()
            default:
                try reader.skip(wireType)
            }
        }
        guard fields.values.count % 4 == 0 else {
            throw malformed("chunk of '\(fields.tensor)' holds \(fields.values.count) bytes, not whole float32 values")
        }
        return fields
    }

    private static func checkedDimension(_ v: UInt64) throws -> Int {
        let d = Int64(bitPattern: v)
        guard d >= 0, d <= Int64(Int32.max) else { throw malformed("tensor dimension \(d) out of range") }
        return Int(d)
    }

    static func malformed(_ what: String) -> RPCError {
        RPCError(code: .invalidArgument, message: "malformed parameter message: \(what)")
    }

    /// Reads protobuf fields from `raw[range]`.
    struct Reader {
        let raw: UnsafeRawBufferPointer
        var at: Int
        let end: Int

        init(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>) {
            self.raw = raw
            at = range.lowerBound
            end = range.upperBound
        }

        var atEnd: Bool { at >= end }

        mutating func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard at < end, shift < 64 else { throw malformed("truncated or overlong varint") }
                let byte = raw[at]
                at += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
        }

        mutating func nextTag() throws -> (UInt64, WireType)? {
            guard !atEnd else { return nil }
            let key = try varint()
            guard let type = WireType(rawValue: key & 7), key >> 3 > 0 else {
                throw malformed("unsupported wire type \(key & 7) or field 0")
            }
            return (key >> 3, type)
        }

        mutating func lengthDelimited() throws -> Range<Int> {
            let length = try varint()
            guard length <= UInt64(end - at) else { throw malformed("field longer than its message") }
            let range = at..<(at + Int(length))
            at = range.upperBound
            return range
        }

        mutating func skip(_ type: WireType) throws {
            switch type {
            case .varint: _ = try varint()
            case .fixed64: try advance(8)
            case .fixed32: try advance(4)
            case .lengthDelimited: _ = try lengthDelimited()
            }
        }

        private mutating func advance(_ n: Int) throws {
            guard end - at >= n else { throw malformed("truncated fixed-width field") }
            at += n
        }
    }
}

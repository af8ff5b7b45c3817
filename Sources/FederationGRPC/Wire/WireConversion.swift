import FederationCore
import Foundation

// Conversions between FederationCore's value types and the generated protobuf messages. Float values travel as
// little-endian float32 bytes (one copy each way, no per-value encoding).

typealias WireTask = Tessera_Federation_V1_Task
typealias WireChunk = Tessera_Federation_V1_ParameterChunk
typealias WireHeader = Tessera_Federation_V1_ResultHeader
typealias WireUploadPart = Tessera_Federation_V1_UploadResultPart

extension TaskAssignment {
    var wire: WireTask {
        var t = WireTask()
        t.jobID = jobID
        t.round = Int64(round)
        t.kind = kind.wire
        t.site = site
        t.config = config.mapValues(\.wire)
        t.payload = Data(payload)
        return t
    }

    /// - Throws: `.invalidConfiguration` for a task kind or configuration value this build does not know.
    init(wire t: WireTask) throws(FederationError) {
        var config: [String: ConfigValue] = [:]
        for (key, value) in t.config {
            guard let v = ConfigValue(wire: value) else {
                throw FederationError(.invalidConfiguration, "task configuration '\(key)' has no value")
            }
            config[key] = v
        }
        self.init(
            jobID: t.jobID, round: Int(t.round), kind: try TaskKind(wire: t.kind), site: t.site, config: config,
            payload: [UInt8](t.payload))
    }
}

extension TaskKind {
    var wire: Tessera_Federation_V1_TaskKind {
        switch self {
        case .train: .train
        case .evaluate: .evaluate
        case .statistics: .statistics
        case .submitModel: .submitModel
        }
    }

    init(wire: Tessera_Federation_V1_TaskKind) throws(FederationError) {
        switch wire {
        case .train: self = .train
        case .evaluate: self = .evaluate
        case .statistics: self = .statistics
        case .submitModel: self = .submitModel
        default:
            throw FederationError(.invalidConfiguration, "unknown task kind \(wire.rawValue): update the site client")
        }
    }
}

extension ConfigValue {
    var wire: Tessera_Federation_V1_ConfigValue {
        var v = Tessera_Federation_V1_ConfigValue()
        switch self {
        case .int(let i): v.intValue = Int64(i)
        case .double(let d): v.doubleValue = d
        case .bool(let b): v.boolValue = b
        case .string(let s): v.stringValue = s
        }
        return v
    }

    init?(wire: Tessera_Federation_V1_ConfigValue) {
        switch wire.value {
        case .intValue(let i): self = .int(Int(i))
        case .doubleValue(let d): self = .double(d)
        case .boolValue(let b): self = .bool(b)
        case .stringValue(let s): self = .string(s)
        case nil: return nil
        }
    }
}

extension ResultHeader {
    var wire: WireHeader {
        var h = WireHeader()
        h.jobID = jobID
        h.round = Int64(round)
        h.site = site
        h.sampleCount = Int64(sampleCount)
        h.metrics = metrics
        h.payload = Data(payload)
        return h
    }

    init(wire h: WireHeader) {
        self.init(
            jobID: h.jobID, round: Int(h.round), site: h.site, sampleCount: Int(h.sampleCount),
            metrics: h.metrics, payload: [UInt8](h.payload))
    }
}

extension ParameterChunk {
    var wire: WireChunk {
        var c = WireChunk()
        c.tensor = tensor
        c.shape = shape.map(Int64.init)
        c.offset = Int64(offset)
        c.values = Self.encode(values)
        if let e = encoded {
            c.encoding = Tessera_Federation_V1_ValueEncoding(rawValue: e.encoding.wireCode) ?? .float32
            if case .int8Blocks(let b) = e.encoding { c.blockSize = Int64(b) }
            c.valueCount = Int64(e.count)
            c.encodedValues = Data(e.bytes)
        }
        return c
    }

    /// - Throws: `.shapeMismatch` for a byte count that is not a whole number of float32 values or an offset or
    ///   shape outside the platform's integers; for an encoded chunk, what `EncodedValues.check` refuses (at most
    ///   `TransportLimits.defaults.chunkScalars` values).
    init(wire c: WireChunk) throws(FederationError) {
        try Self.checkWire(c)
        if c.encoding.rawValue != 0 || !c.encodedValues.isEmpty {
            guard c.values.isEmpty else {
                throw FederationError(.invalidConfiguration, "a chunk carries both float32 and encoded values")
            }
            let encoding = try UpdateEncoding(wireCode: c.encoding.rawValue, blockSize: Int(clamping: c.blockSize))
            let encoded = try EncodedValues(
                encoding: encoding, count: Int(clamping: c.valueCount), bytes: [UInt8](c.encodedValues)[...],
                maxCount: TransportLimits.defaults.chunkScalars)
            self.init(tensor: c.tensor, shape: c.shape.map { Int($0) }, offset: Int(c.offset), encoded: encoded)
            return
        }
        self.init(
            tensor: c.tensor, shape: c.shape.map { Int($0) }, offset: Int(c.offset),
            values: Self.decode(c.values))
    }

    static func checkWire(_ c: WireChunk) throws(FederationError) {
        guard c.values.count % 4 == 0 else {
            throw FederationError(
                .shapeMismatch,
                "chunk of '\(c.tensor)' holds \(c.values.count) bytes, "
                    + "not whole float32 values")
        }
        guard c.offset >= 0, c.shape.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else {
            throw FederationError(
                .shapeMismatch,
                "chunk of '\(c.tensor)' has offset \(c.offset) or shape "
                    + "\(c.shape) out of range")
        }
    }

    static func encode(_ values: ArraySlice<Float>) -> Data {
        #if _endian(little)
            return values.withUnsafeBytes { Data($0) }
        #else
            return values.withUnsafeBufferPointer { b in
                Data(b.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } })
            }
        #endif
    }

    static func decode(_ bytes: Data) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(bytes.count / 4)
        appendDecoded(bytes, to: &out)
        return out
    }

    /// Appends the little-endian float32 values of `bytes` to `out`: one copy, straight from the message's bytes.
    static func appendDecoded(_ bytes: Data, to out: inout [Float]) {
        let count = bytes.count / 4
        bytes.withUnsafeBytes { raw in
            #if _endian(little)
                if let base = raw.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
                    UnsafeRawBufferPointer(rebasing: raw[..<(count * 4)]).withMemoryRebound(to: Float.self) {
                        out.append(contentsOf: $0)
                    }
                    return
                }
            #endif
            out.reserveCapacity(out.count + count)
            for i in 0..<count {
                out.append(
                    Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))))
            }
        }
    }
}

extension ParameterAssembler {
    /// Appends a chunk straight from its wire form: its values are decoded once, into the tensor being built.
    /// - Throws: `.shapeMismatch` for a malformed chunk or one out of order.
    mutating func append(wire c: WireChunk) throws(FederationError) {
        try ParameterChunk.checkWire(c)
        try append(tensor: c.tensor, shape: c.shape.map { Int($0) }, offset: Int(c.offset), count: c.values.count / 4) {
            ParameterChunk.appendDecoded(c.values, to: &$0)
        }
    }
}

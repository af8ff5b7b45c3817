import Foundation

/// One float32 tensor of a safetensors file: name, shape (outermost first) and row-major values.
public struct SafeTensorEntry: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }

    public var count: Int { values.count }
}

/// Why a safetensors file could not be used.
public struct SafeTensorsError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable { case invalidHeader, unsupportedDType, io }
    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { "SafeTensorsError.\(code.rawValue): \(message)" }
}

/// The safetensors format (https://huggingface.co/docs/safetensors): 8-byte little-endian header length `N`, then
/// `N` bytes of UTF-8 JSON `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, …,
/// "__metadata__": {"k": "v"}}`, then the data buffer; offsets are relative to the buffer's start. Float32 (`F32`)
/// only. Shared by the neural network (checkpoints) and the federation server (one global model per round).
public enum SafeTensorsFile {
    /// The tensors (sorted by name) and the `__metadata__` string map of a file.
    public struct Contents: Sendable {
        public var entries: [SafeTensorEntry]
        public var metadata: [String: String]
    }

    /// Headers longer than this many bytes (100 MB, the limit of the reference implementation) are rejected as
    /// corrupt before anything is allocated for them.
    public static let maximumHeaderLength = 100_000_000

    /// The dtypes of the safetensors specification, with their element sizes in bytes. Tessera reads `F32` only;
    /// the others are named in the error, anything else is a corrupt header.
    static let knownDTypes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
    ]

    /// Bound on shape dimensions, data offsets and tensor byte sizes: 2^53, beyond which a JSON number (an IEEE
    /// double) no longer holds every integer exactly.
    static let maximumHeaderInteger: Int = 1 << 53

    /// Reads a safetensors file.
    /// - Throws: `SafeTensorsError` `.io`, `.invalidHeader` or `.unsupportedDType`, naming the tensor at fault.
    public static func read(contentsOf path: String) throws(SafeTensorsError) -> Contents {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw SafeTensorsError(
                .io, "cannot read '\(path)': check the path and permissions",
                cause: error as NSError)
        }
        do {
            return try decode(data)
        } catch {
            var e = error
            e.message = "\(path): " + e.message
            throw e
        }
    }

    /// Decodes safetensors bytes.
    ///
    /// Every header value is checked before it is used, with checked arithmetic: the header length against
    /// `maximumHeaderLength` and the file size, each dtype, each shape dimension (non-negative, at most 2^53), the
    /// element count (shape product) and its byte size, and each tensor's `data_offsets` (in the data buffer, and
    /// `end - begin` equal to the byte size); the tensors must tile the buffer without gap or overlap. Memory
    /// allocated is bounded by the size of `data`.
    /// - Throws: `SafeTensorsError` `.invalidHeader` or `.unsupportedDType`, naming the tensor and the limit.
    public static func decode(_ data: Data) throws(SafeTensorsError) -> Contents {
        guard data.count >= 8 else {
            throw SafeTensorsError(
                .invalidHeader,
                "file of \(data.count) bytes is too short for a safetensors "
                    + "header (8-byte length first): the file is truncated or not safetensors")
        }
        let declaredLength = data.prefix(8).enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << (8 * UInt64($1.offset))
        }
        // Both comparisons in UInt64: no conversion of an unchecked 64-bit value to Int.
        guard declaredLength <= UInt64(maximumHeaderLength) else {
            throw SafeTensorsError(
                .invalidHeader,
                "header length \(declaredLength) exceeds the limit of "
                    + "\(maximumHeaderLength) bytes: the file is corrupt or not safetensors")
        }
        guard declaredLength <= UInt64(data.count - 8) else {
            throw SafeTensorsError(
                .invalidHeader,
                "header length \(declaredLength) exceeds the file size "
                    + "(\(data.count) bytes): the file is truncated or not safetensors")
        }
        let headerLength = Int(declaredLength)
        let bufferStart = data.startIndex + 8 + headerLength
        let bufferLength = data.count - 8 - headerLength
        let headerBytes = data.subdata(in: (data.startIndex + 8)..<bufferStart)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw SafeTensorsError(
                .invalidHeader,
                "header is not valid JSON: the file is corrupt or not "
                    + "safetensors", cause: error as NSError)
        }
        guard let header = json as? [String: Any] else {
            throw SafeTensorsError(.invalidHeader, "header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var entries: [(name: String, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let map = value as? [String: Any], map.values.allSatisfy({ $0 is String }) else {
                    throw SafeTensorsError(.invalidHeader, "__metadata__ must map strings to strings")
                }
                metadata = map.compactMapValues { $0 as? String }
                continue
            }
            let entry = try tensorEntry(name: name, value: value, bufferLength: bufferLength)
            entries.append(entry)
        }
        // The format requires the tensors to tile the buffer without gaps or overlaps.
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var cursor = 0
        for e in entries {
            guard e.begin == cursor else {
                throw SafeTensorsError(
                    .invalidHeader,
                    "tensor '\(e.name)' starts at byte \(e.begin) of the data "
                        + "buffer, expected \(cursor): tensors overlap or leave a gap, the file is corrupt")
            }
            cursor = e.end
        }
        guard cursor == bufferLength else {
            throw SafeTensorsError(
                .invalidHeader,
                "the data buffer has \(bufferLength - cursor) bytes no tensor "
                    + "covers: the file is corrupt")
        }
        var tensors: [SafeTensorEntry] = []
        tensors.reserveCapacity(entries.count)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            // Offsets were checked against bufferLength above, so every slice is inside `raw`.
            let buffer = UnsafeRawBufferPointer(rebasing: raw[(bufferStart - data.startIndex)...])
            for e in entries.sorted(by: { $0.name < $1.name }) {
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[e.begin..<e.end])
                let values = [Float](unsafeUninitializedCapacity: bytes.count / 4) { out, initialized in
                    for i in 0..<out.count {
                        out[i] = Float(
                            bitPattern: UInt32(
                                littleEndian: bytes.loadUnaligned(
                                    fromByteOffset: 4 * i,
                                    as: UInt32.self)))
                    }
                    initialized = out.count
                }
                tensors.append(SafeTensorEntry(name: e.name, shape: e.shape, values: values))
            }
        }
        return Contents(entries: tensors, metadata: metadata)
    }

    /// One tensor's header entry, validated: dtype F32, shape of non-negative dimensions whose product (× 4
    /// bytes) does not overflow, `data_offsets` = [begin, end] inside the data buffer holding exactly that many bytes.
    static func tensorEntry(name: String, value: Any, bufferLength: Int)
        throws(SafeTensorsError) -> (name: String, shape: [Int], begin: Int, end: Int)
    {
        guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
            let shapeValues = info["shape"] as? [Any], let offsetValues = info["data_offsets"] as? [Any]
        else {
            throw SafeTensorsError(
                .invalidHeader,
                "tensor '\(name)': entry needs \"dtype\", \"shape\" and "
                    + "\"data_offsets\"")
        }
        guard let elementSize = knownDTypes[dtype] else {
            throw SafeTensorsError(
                .invalidHeader,
                "tensor '\(name)' has unknown dtype '\(dtype)' (known: "
                    + "\(knownDTypes.keys.sorted().joined(separator: ", "))): the file is corrupt")
        }
        guard dtype == "F32" else {
            throw SafeTensorsError(
                .unsupportedDType,
                "tensor '\(name)' has dtype \(dtype); Tessera reads "
                    + "float32 (F32) only: convert the tensor with `.float()` before saving")
        }
        let shape = try integers(shapeValues, name: name, field: "shape")
        let offsets = try integers(offsetValues, name: name, field: "data_offsets")
        guard offsets.count == 2 else {
            throw SafeTensorsError(
                .invalidHeader,
                "tensor '\(name)': data_offsets must be [begin, end], found "
                    + "\(offsets.count) values")
        }
        if let d = shape.first(where: { $0 < 0 }) {
            throw SafeTensorsError(.invalidHeader, "tensor '\(name)': shape \(shape) has the negative dimension \(d)")
        }
        var byteCount = elementSize
        for d in shape {
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: d)
            guard !overflow, product <= maximumHeaderInteger else {
                throw SafeTensorsError(
                    .invalidHeader,
                    "tensor '\(name)': shape \(shape) holds more than "
                        + "2^53 bytes of \(dtype): the file is corrupt")
            }
            byteCount = product
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0, begin <= end, end <= bufferLength else {
            throw SafeTensorsError(
                .invalidHeader,
                "tensor '\(name)': data_offsets \(offsets) are not an "
                    + "interval [begin, end] of the \(bufferLength)-byte data buffer: the file is corrupt or truncated")
        }
        guard end - begin == byteCount else {
            throw SafeTensorsError(
                .invalidHeader,
                "tensor '\(name)': data_offsets \(offsets) hold \(end - begin) "
                    + "bytes but shape \(shape) of \(dtype) needs \(byteCount): the file is corrupt")
        }
        return (name, shape, begin, end)
    }

    /// Encodes tensors (in name order) and metadata as safetensors bytes; the header is padded with spaces to a
    /// multiple of 8 bytes so the data buffer is aligned.
    public static func encode(_ tensors: [SafeTensorEntry], metadata: [String: String] = [:]) -> Data {
        var parts: [String] = []
        if !metadata.isEmpty {
            let items = metadata.sorted { $0.key < $1.key }.map { "\(quote($0.key)):\(quote($0.value))" }
            parts.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        let ordered = tensors.sorted { $0.name < $1.name }
        for t in ordered {
            let name = t.name
            let end = offset + 4 * t.count
            let shape = t.shape.map(String.init).joined(separator: ",")
            parts.append("\(quote(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var data = Data(capacity: 8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: header)
        for t in ordered {
            t.values.withUnsafeBufferPointer { p in
                var bytes = [UInt8](repeating: 0, count: 4 * p.count)
                for (i, v) in p.enumerated() {
                    let bits = v.bitPattern.littleEndian
                    withUnsafeBytes(of: bits) { b in for k in 0..<4 { bytes[4 * i + k] = b[k] } }
                }
                data.append(contentsOf: bytes)
            }
        }
        return data
    }

    /// Writes a safetensors file atomically.
    /// - Throws: `SafeTensorsError.io`.
    public static func write(
        _ tensors: [SafeTensorEntry], metadata: [String: String] = [:],
        to path: String
    ) throws(SafeTensorsError) {
        do {
            try encode(tensors, metadata: metadata).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw SafeTensorsError(
                .io, "cannot write '\(path)': check that the folder exists and is writable",
                cause: error as NSError)
        }
    }

    static func integers(_ values: [Any], name: String, field: String) throws(SafeTensorsError) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(values.count)
        for v in values {
            // JSON true/false also arrive as NSNumber, of type "c" (char): rejected. Doubles below 2^53 are exact.
            guard let n = v as? NSNumber, String(cString: n.objCType) != "c",
                let integer = Int(exactly: n.doubleValue), integer.magnitude < UInt(maximumHeaderInteger)
            else {
                throw SafeTensorsError(
                    .invalidHeader,
                    "tensor '\(name)': \(field) must hold integers of "
                        + "magnitude below 2^53, found \(v)")
            }
            out.append(integer)
        }
        return out
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

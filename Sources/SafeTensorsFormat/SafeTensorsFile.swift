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

    /// Headers above this size are rejected as corrupt (the reference implementation uses 100 MB).
    static let maximumHeaderLength = 100_000_000

    /// Reads a safetensors file.
    /// - Throws: `SafeTensorsError` `.io`, `.invalidHeader` or `.unsupportedDType`, naming the tensor at fault.
    public static func read(contentsOf path: String) throws(SafeTensorsError) -> Contents {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw SafeTensorsError(.io, "cannot read '\(path)': check the path and permissions", cause: error as NSError)
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
    public static func decode(_ data: Data) throws(SafeTensorsError) -> Contents {
        guard data.count >= 8 else {
            throw SafeTensorsError(.invalidHeader, "file of \(data.count) bytes is too short for a safetensors "
                + "header (8-byte length first): the file is truncated or not safetensors")
        }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << (8 * UInt64($1.offset))
        }
        guard headerLength <= UInt64(maximumHeaderLength), 8 + Int(headerLength) <= data.count else {
            throw SafeTensorsError(.invalidHeader, "header length \(headerLength) exceeds the file size "
                + "(\(data.count) bytes) or the 100 MB limit: the file is truncated or not safetensors")
        }
        let headerBytes = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + Int(headerLength)))
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw SafeTensorsError(.invalidHeader, "header is not valid JSON: the file is corrupt or not "
                + "safetensors", cause: error as NSError)
        }
        guard let header = json as? [String: Any] else {
            throw SafeTensorsError(.invalidHeader, "header is not a JSON object")
        }
        let bufferStart = data.startIndex + 8 + Int(headerLength)
        let bufferLength = data.count - 8 - Int(headerLength)
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
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shapeValues = info["shape"] as? [Any], let offsetValues = info["data_offsets"] as? [Any]
            else {
                throw SafeTensorsError(.invalidHeader, "tensor '\(name)': entry needs \"dtype\", \"shape\" and "
                    + "\"data_offsets\"")
            }
            guard dtype == "F32" else {
                throw SafeTensorsError(.unsupportedDType, "tensor '\(name)' has dtype \(dtype); Tessera reads "
                    + "float32 (F32) only: convert the tensor with `.float()` before saving")
            }
            let shape = try integers(shapeValues, name: name, field: "shape")
            let offsets = try integers(offsetValues, name: name, field: "data_offsets")
            guard offsets.count == 2, shape.allSatisfy({ $0 >= 0 }) else {
                throw SafeTensorsError(.invalidHeader, "tensor '\(name)': data_offsets must be [begin, end] and "
                    + "the shape non-negative")
            }
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            guard !overflow, offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= bufferLength,
                  offsets[1] - offsets[0] == elements * 4
            else {
                throw SafeTensorsError(.invalidHeader, "tensor '\(name)': data_offsets \(offsets) do not hold "
                    + "shape \(shape) as float32 within the \(bufferLength)-byte data buffer: the file is corrupt")
            }
            entries.append((name, shape, offsets[0], offsets[1]))
        }
        // The format requires the tensors to tile the buffer without gaps or overlaps.
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for e in entries {
            guard e.begin == cursor else {
                throw SafeTensorsError(.invalidHeader, "tensor '\(e.name)' starts at byte \(e.begin) of the data "
                    + "buffer, expected \(cursor): tensors overlap or leave a gap, the file is corrupt")
            }
            cursor = e.end
        }
        guard cursor == bufferLength else {
            throw SafeTensorsError(.invalidHeader, "the data buffer has \(bufferLength - cursor) bytes no tensor "
                + "covers: the file is corrupt")
        }
        var tensors: [SafeTensorEntry] = []
        for e in entries.sorted(by: { $0.name < $1.name }) {
            let count = (e.end - e.begin) / 4
            var values = [Float](repeating: 0, count: count)
            data.withUnsafeBytes { raw in
                let base = raw.baseAddress! + (bufferStart - data.startIndex) + e.begin
                for i in 0..<count {
                    values[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i,
                                                                                          as: UInt32.self)))
                }
            }
            tensors.append(SafeTensorEntry(name: e.name, shape: e.shape, values: values))
        }
        return Contents(entries: tensors, metadata: metadata)
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
    public static func write(_ tensors: [SafeTensorEntry], metadata: [String: String] = [:],
                             to path: String) throws(SafeTensorsError) {
        do {
            try encode(tensors, metadata: metadata).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw SafeTensorsError(.io, "cannot write '\(path)': check that the folder exists and is writable",
                                   cause: error as NSError)
        }
    }

    static func integers(_ values: [Any], name: String, field: String) throws(SafeTensorsError) -> [Int] {
        var out: [Int] = []
        for v in values {
            guard let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded(), abs(n.doubleValue) < 9e15 else {
                throw SafeTensorsError(.invalidHeader, "tensor '\(name)': \(field) must hold integers")
            }
            out.append(n.intValue)
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

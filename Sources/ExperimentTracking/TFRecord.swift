/// TFRecord framing, the container of TensorBoard event files (TensorFlow's `tensorflow/core/lib/io/record_writer.cc`):
/// each record is
///
/// ```
/// uint64 length          little-endian
/// uint32 masked_crc32c(length bytes)
/// byte   data[length]
/// uint32 masked_crc32c(data)
/// ```
public enum TFRecord {
    /// Bytes of framing around each record's data.
    public static let overhead = 16

    /// One record around `data`.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + overhead)
        let length = littleEndian(UInt64(data.count))
        out += length
        out += littleEndian(CRC32C.masked(CRC32C.checksum(length)))
        out += data
        out += littleEndian(CRC32C.masked(CRC32C.checksum(data)))
        return out
    }

    /// Why bytes are not a sequence of TFRecords.
    public struct FormatError: Error, Sendable, Equatable, CustomStringConvertible {
        /// Offset of the record that fails.
        public var offset: Int
        public var message: String
        public var description: String { "TFRecord at byte \(offset): \(message)" }

        public init(offset: Int, message: String) {
            self.offset = offset
            self.message = message
        }
    }

    /// The records of `bytes`, each checked against its CRCs; a record longer than `maxRecordBytes` is refused before
    /// anything is allocated for it.
    /// - Throws: `FormatError` for a truncated record, a bad CRC or a record over the limit.
    public static func records(in bytes: [UInt8], maxRecordBytes: Int = 1 << 24) throws(FormatError) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= overhead else {
                throw FormatError(offset: offset, message: "truncated header")
            }
            let lengthBytes = Array(bytes[offset..<(offset + 8)])
            let length = lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard read32(bytes, at: offset + 8) == CRC32C.masked(CRC32C.checksum(lengthBytes)) else {
                throw FormatError(offset: offset, message: "length CRC mismatch")
            }
            guard let count = Int(exactly: length), count <= maxRecordBytes else {
                throw FormatError(offset: offset, message: "record of \(length) bytes, over \(maxRecordBytes)")
            }
            guard bytes.count - offset - overhead >= count else {
                throw FormatError(offset: offset, message: "truncated data")
            }
            let data = Array(bytes[(offset + 12)..<(offset + 12 + count)])
            guard read32(bytes, at: offset + 12 + count) == CRC32C.masked(CRC32C.checksum(data)) else {
                throw FormatError(offset: offset, message: "data CRC mismatch")
            }
            out.append(data)
            offset += overhead + count
        }
        return out
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
    }

    static func read32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << ($1 * 8) }
    }
}

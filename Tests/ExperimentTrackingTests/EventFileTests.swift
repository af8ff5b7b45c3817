import ExperimentTracking
import Foundation
import Testing

/// TensorBoard event files: CRC-32C against RFC 3720's vectors, TFRecord framing byte for byte, and a fixture file
/// whose records TensorBoard's own reader (`EventAccumulator`, scripts/reference/tensorboard_golden.py) read back
/// as the values written here (Golden/tensorboard_golden.json).
@Suite("TensorBoard event files")
struct EventFileTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
    static let fixtureName = "events.out.tfevents.1800000000.tessera-fixture"
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000.25)

    /// What the fixture holds: (step, seconds after t0, tag → value).
    static let events: [(step: Int, after: Double, values: [(tag: String, value: Double)])] = [
        (1, 10, [("train/loss", 0.6931471805599453), ("validation/dice", 0.125)]),
        (2, 20.5, [("train/loss", 0.5), ("validation/dice", 0.3333333333333333), ("epoch/seconds", 12.75)]),
        (3, 31, [("train/loss", 0.25), ("validation/dice", 0.875)]),
        (10, 42, [("metrics/dice", -1.5e-7), ("transport/bytes_in", 123_456_789)]),
    ]

    /// RFC 3720 appendix B.4 (and the check value of "123456789"): bytes → CRC-32C.
    static let vectors: [(name: String, bytes: [UInt8], crc: UInt32)] = [
        ("32 zero bytes", [UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ("32 bytes 0xFF", [UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ("00 to 1F", (0..<32).map { UInt8($0) }, 0x46DD_794E),
        ("1F to 00", (0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
        ("123456789", Array("123456789".utf8), 0xE306_9283),
    ]

    @Test("CRC-32C of RFC 3720 appendix B.4's vectors and of \"123456789\"")
    func crc32c() {
        for vector in Self.vectors {
            #expect(CRC32C.checksum(vector.bytes) == vector.crc, "\(vector.name)")
        }
    }

    @Test("RFC 3720's iSCSI read command PDU (48 bytes) has CRC-32C 0xD9963A56")
    func crc32cPDU() {
        var pdu = [UInt8](repeating: 0, count: 48)
        pdu[0] = 0x01
        pdu[1] = 0xC0
        pdu[16] = 0x14
        pdu[22] = 0x04
        pdu[27] = 0x14
        pdu[31] = 0x18
        pdu[32] = 0x28
        pdu[40] = 0x02
        #expect(CRC32C.checksum(pdu) == 0xD996_3A56)
    }

    @Test("A TFRecord is length, masked CRC of the length, data, masked CRC of the data, little-endian")
    func framing() throws {
        let data = Array("tessera".utf8)
        let record = TFRecord.frame(data)
        #expect(record.count == 7 + 16)
        #expect(record[0..<8] == [7, 0, 0, 0, 0, 0, 0, 0])
        let lengthCRC = CRC32C.masked(CRC32C.checksum([7, 0, 0, 0, 0, 0, 0, 0]))
        #expect(Array(record[8..<12]) == (0..<4).map { UInt8(truncatingIfNeeded: lengthCRC >> ($0 * 8)) })
        #expect(Array(record[12..<19]) == data)
        let dataCRC = CRC32C.masked(CRC32C.checksum(data))
        #expect(Array(record[19..<23]) == (0..<4).map { UInt8(truncatingIfNeeded: dataCRC >> ($0 * 8)) })
        // The mask: rotate right 15, add 0xa282ead8 (wrapping).
        #expect(CRC32C.masked(0) == 0xA282_EAD8)
        #expect(CRC32C.masked(0x0000_8000) == 0xA282_EAD9)
        #expect(CRC32C.masked(0xFFFF_FFFF) == 0xA282_EAD7)
        #expect(try TFRecord.records(in: record + TFRecord.frame([])) == [data, []])
    }

    @Test("A damaged, truncated or oversized record is refused with its offset")
    func damaged() {
        let good = TFRecord.frame(Array("abc".utf8)) + TFRecord.frame(Array("defg".utf8))
        var flipped = good
        flipped[good.count - 6] ^= 0x01
        #expect(throws: TFRecord.FormatError(offset: 19, message: "data CRC mismatch")) {
            try TFRecord.records(in: flipped)
        }
        #expect(throws: TFRecord.FormatError(offset: 19, message: "truncated data")) {
            try TFRecord.records(in: Array(good.dropLast(2)))
        }
        #expect(throws: TFRecord.FormatError.self) { try TFRecord.records(in: good, maxRecordBytes: 3) }
        var length = good
        length[0] = 0xFF
        #expect(throws: TFRecord.FormatError(offset: 0, message: "length CRC mismatch")) {
            try TFRecord.records(in: length)
        }
    }

    /// Writes the fixture's events into `folder`.
    static func writeFixture(into folder: String) throws -> String {
        let writer = try EventFileWriter(folder: folder, fileName: fixtureName, wallTime: t0)
        for event in events {
            try writer.write(event.values, step: event.step, wallTime: t0.addingTimeInterval(event.after))
        }
        writer.close()
        return writer.path
    }

    @Test("The fixture is written byte for byte as committed, and TensorBoard's reader read back what was written")
    func fixture() throws {
        let folder = NSTemporaryDirectory() + "tessera-tfevents-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let written = try Array(Data(contentsOf: URL(fileURLWithPath: try Self.writeFixture(into: folder))))
        let committed = try Array(Data(contentsOf: Self.golden.appendingPathComponent(Self.fixtureName)))
        #expect(written == committed, "regenerate with TESSERA_WRITE_TFEVENTS_FIXTURE=1 if the format changed")
        // One file_version record, then one record per event.
        #expect(try TFRecord.records(in: written).count == 1 + Self.events.count)

        struct Golden: Decodable {
            struct Point: Decodable {
                var step: Int
                var wall_time: Double
                var value: Double
            }
            /// The version EventAccumulator parsed from "brain.Event:2".
            var file_version: Double
            /// Records TensorBoard's CRC-checking record reader read.
            var records: Int
            var scalars: [String: [Point]]
        }
        let golden = try JSONDecoder().decode(
            Golden.self, from: Data(contentsOf: Self.golden.appendingPathComponent("tensorboard_golden.json")))
        #expect(golden.file_version == 2 && golden.records == 1 + Self.events.count)
        var expected: [String: [(Int, Double, Double)]] = [:]
        for event in Self.events {
            for (tag, value) in event.values {
                expected[tag, default: []].append(
                    (event.step, Self.t0.timeIntervalSince1970 + event.after, Double(Float(value))))
            }
        }
        #expect(Set(golden.scalars.keys) == Set(expected.keys))
        for (tag, points) in expected {
            let read = golden.scalars[tag] ?? []
            #expect(read.count == points.count, "\(tag)")
            for (point, (step, wall, value)) in zip(read, points) {
                // Exactly: float32 values and float64 wall times survive TensorBoard's reader unchanged.
                #expect(point.step == step && point.wall_time == wall && point.value == value, "\(tag): \(point)")
            }
        }
    }

    @Test("Writing the fixture again (TESSERA_WRITE_TFEVENTS_FIXTURE=1) updates the committed file")
    func regenerate() throws {
        guard ProcessInfo.processInfo.environment["TESSERA_WRITE_TFEVENTS_FIXTURE"] != nil else { return }
        try? FileManager.default.removeItem(at: Self.golden.appendingPathComponent(Self.fixtureName))
        _ = try Self.writeFixture(into: Self.golden.path)
    }
}

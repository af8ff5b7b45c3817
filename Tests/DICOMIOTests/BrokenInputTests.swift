import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

/// Every kind of bad input yields a `DICOMError` with a code and advice; nothing crashes, a folder scan goes on.
@Suite("Broken input", .computeBound)
struct BrokenInputTests {
    /// Writes a small valid CT slice, with attributes replaced (value) or left out (nil).
    func writeSlice(
        _ path: String, _ overrides: [DICOMTag: String?] = [:], rows: Int = 8, columns: Int = 8,
        samples: UInt16 = 1, bitsAllocated: UInt16 = 16, pixelWords: Int? = nil,
        syntax: TransferSyntax = .explicitVRLittleEndian
    ) throws {
        var tags: [DICOMTag: String] = [
            .sopClassUID: SOPClass.ctImageStorage,
            .sopInstanceUID: "2.25.1\(path.utf8.count)\(abs(path.hashValue % 100000))",
            .studyInstanceUID: "2.25.77", .seriesInstanceUID: "2.25.78", .modality: "CT",
            .imagePositionPatient: "0\\0\\0", .imageOrientationPatient: "1\\0\\0\\0\\1\\0", .pixelSpacing: "1\\1",
            .photometricInterpretation: samples == 3 ? "RGB" : "MONOCHROME2", .rescaleIntercept: "0",
            .rescaleSlope: "1",
        ]
        for (tag, value) in overrides { tags[tag] = value }
        let w = DICOMWriter()
        for (tag, value) in tags { try w.dataset.set(tag, value) }
        try w.dataset.set(.rows, uint16: UInt16(rows))
        try w.dataset.set(.columns, uint16: UInt16(columns))
        try w.dataset.set(.samplesPerPixel, uint16: samples)
        try w.dataset.set(.bitsAllocated, uint16: bitsAllocated)
        try w.dataset.set(.bitsStored, uint16: min(max(bitsAllocated, 1), 16))
        try w.dataset.set(.highBit, uint16: min(max(bitsAllocated, 1), 16) - 1)
        try w.dataset.set(.pixelRepresentation, uint16: 0)
        if samples == 3 { try w.dataset.set(DICOMTag(0x0028, 0x0006), uint16: 0) }
        if bitsAllocated == 8 {
            try w.dataset.setPixelData(bytes: [UInt8](repeating: 7, count: rows * columns * Int(samples)))
        } else {
            try w.dataset.setPixelData([UInt16](repeating: 7, count: pixelWords ?? rows * columns))
        }
        try w.write(to: path, transferSyntax: syntax)
    }

    /// Reads a file the way `inspect` and `convert` do: header, then pixels.
    func read(_ path: String) throws(DICOMError) {
        let instance = try ImageInstance(path: path)
        let file = try DICOMFile(path: path, maxReadLength: 0)
        var buffer = [Float](repeating: 0, count: instance.rows * instance.columns * instance.numberOfFrames)
        try buffer.withUnsafeMutableBufferPointer { (b) throws(DICOMError) in
            try instance.decodeFrames(from: file, into: b)
        }
    }

    func expectFailure(
        _ path: String, _ codes: Set<DICOMError.Code>, _ words: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            try read(path)
            Issue.record("\(path) was read without error", sourceLocation: sourceLocation)
        } catch {
            #expect(codes.contains(error.code), "\(error)", sourceLocation: sourceLocation)
            #expect(error.path == path, sourceLocation: sourceLocation)
            #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
            if let words { #expect(error.description.contains(words), "\(error)", sourceLocation: sourceLocation) }
        }
    }

    func patch(_ path: String, replacing old: String, with new: String) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        let range = try #require(data.range(of: Data(old.utf8)))
        data.replaceSubrange(range, with: Data(new.utf8))
        try data.write(to: URL(fileURLWithPath: path))
    }

    func truncate(_ source: String, to path: String, keeping fraction: Double) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: source))
        try data.prefix(Int(Double(data.count) * fraction)).write(to: URL(fileURLWithPath: path))
    }

    func firstFile(_ folder: String) throws -> String {
        fixture(folder) + "/" + (try FileManager.default.contentsOfDirectory(atPath: fixture(folder)).sorted()[0])
    }

    @Test("Empty, text and random files are not DICOM")
    func notDICOM() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        FileManager.default.createFile(atPath: dir + "/empty", contents: Data())
        FileManager.default.createFile(atPath: dir + "/notes.txt", contents: Data("Patient list\nnothing here\n".utf8))
        var g = SystemRandomNumberGenerator()
        FileManager.default.createFile(
            atPath: dir + "/random.bin", contents: Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &g) }))
        for name in ["empty", "notes.txt", "random.bin"] { expectFailure(dir + "/" + name, [.notDICOM], "not DICOM") }
    }

    @Test("A DICM preamble followed by garbage is a parse error")
    func garbageAfterPreamble() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        var bytes = [UInt8](repeating: 0, count: 128) + Array("DICM".utf8)
        bytes += [0x02, 0x00, 0x10, 0x00, 0x55, 0x49, 0xFF, 0x7F] + [UInt8](repeating: 0x41, count: 64)
        FileManager.default.createFile(atPath: dir + "/bad.dcm", contents: Data(bytes))
        expectFailure(dir + "/bad.dcm", [.parse], "re-export")
    }

    @Test("Truncated header and truncated pixel data")
    func truncated() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        let source = try firstFile("explicit-le")
        try truncate(source, to: dir + "/header-cut", keeping: 0.08)
        try truncate(source, to: dir + "/pixels-cut", keeping: 0.8)
        expectFailure(dir + "/header-cut", [.parse, .missingAttribute])
        expectFailure(dir + "/pixels-cut", [.parse, .truncatedPixelData])
        try truncate(try firstFile("rle"), to: dir + "/rle-cut", keeping: 0.7)
        expectFailure(dir + "/rle-cut", [.parse, .decode, .truncatedPixelData])
        try writeSlice(dir + "/short-pixels", pixelWords: 10)
        expectFailure(dir + "/short-pixels", [.truncatedPixelData, .parse], "truncated")
    }

    @Test("A value length longer than the file is refused before it is allocated, eager or lazy")
    func valueLongerThanFile() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        let path = dir + "/liar.dcm"
        try writeSlice(path)
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        // (7FE0,0010) OW in explicit VR little endian: tag, "OW", two reserved bytes, then the 32-bit length.
        let header = Data([0xE0, 0x7F, 0x10, 0x00, 0x4F, 0x57, 0x00, 0x00])
        let at = try #require(data.range(of: header)).upperBound
        data.replaceSubrange(at..<(at + 4), with: [0x00, 0xFF, 0xFF, 0xFE])  // 0xFEFFFF00 bytes, in a file of ~1 kB
        try data.write(to: URL(fileURLWithPath: path))
        for maxReadLength: UInt32 in [0, 4096] {
            do {
                _ = try DICOMFile(path: path, maxReadLength: maxReadLength)
                Issue.record("a 4 GB value in a \(data.count)-byte file was accepted (maxReadLength \(maxReadLength))")
            } catch {
                // Either way the value is never allocated: DCMTK leaves a value longer than the read limit (the
                // caller's, or the shim's bound from the file's size when "everything" is asked for) on disk,
                // skips it and meets the end of the file.
                #expect(error.code == .parse, "\(error)")
            }
        }
    }

    // RLE (PS3.5 G) has no integrity check: damaged RLE data decodes to wrong values undetectably, so only the
    // entropy-coded syntaxes are tested here; a truncated RLE file is caught by the truncation test's parse check.
    @Test("Corrupt compressed pixel data fails to decode", arguments: ["jpegls-lossless", "jpeg-lossless"])
    func corruptCodestream(folder: String) throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        var data = try Data(contentsOf: URL(fileURLWithPath: try firstFile(folder)))
        // Cut the codestream in the middle of the last fragment: keep the tail's item structure valid.
        let cut = data.count - 600
        data.replaceSubrange(cut..<(cut + 500), with: [UInt8](repeating: 0xFF, count: 500))
        try data.write(to: URL(fileURLWithPath: dir + "/corrupt"))
        expectFailure(dir + "/corrupt", [.decode, .parse])
    }

    @Test("An unsupported transfer syntax is named in the error")
    func unsupportedSyntax() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        let path = dir + "/jp2-part2"
        try FileManager.default.copyItem(atPath: try firstFile("jpegls-lossless"), toPath: path)
        try patch(path, replacing: "1.2.840.10008.1.2.4.80", with: "1.2.840.10008.1.2.4.92")
        expectFailure(path, [.unsupportedTransferSyntax], "1.2.840.10008.1.2.4.92")
    }

    @Test(
        "Missing or malformed geometry attributes",
        arguments: [
            (DICOMTag.imagePositionPatient, String?.none, "(0020,0032)"),
            (DICOMTag.imageOrientationPatient, String?.none, "(0020,0037)"),
            (DICOMTag.pixelSpacing, String?.none, "(0028,0030)"),
            (DICOMTag.pixelSpacing, "0\\1", "positive"),
            (DICOMTag.imageOrientationPatient, "1\\0\\0\\1\\0\\0", "orthonormal"),
            (DICOMTag.imagePositionPatient, "a\\b\\c", "not a number"),
            (DICOMTag.seriesInstanceUID, String?.none, "(0020,000E)"),
            (DICOMTag.rescaleSlope, "0", "Rescale Slope"),
        ])
    func badGeometry(tag: DICOMTag, value: String?, words: String) throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try writeSlice(dir + "/slice", [tag: value])
        expectFailure(dir + "/slice", [.missingAttribute, .invalidAttribute], words)
    }

    @Test("Colour images are refused for volumes, not converted")
    func colour() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try writeSlice(dir + "/rgb", samples: 3, bitsAllocated: 8)
        expectFailure(dir + "/rgb", [.unsupportedImage], "colour")
        let all = try series(in: dir)
        #expect(all[0].problems.contains { $0.kind == .colour && $0.isBlocking })
    }

    @Test("Bits Allocated 12 is an inconsistent pixel format")
    func badBits() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try writeSlice(dir + "/bits", bitsAllocated: 12)
        expectFailure(dir + "/bits", [.invalidAttribute], "Bits Allocated")
    }

    @Test("A folder with every kind of bad file: the good series is intact, each bad file listed with a reason")
    func folderScan() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try FileManager.default.createDirectory(atPath: dir + "/good/nested", withIntermediateDirectories: true)
        try copyFixture("explicit-le", to: dir + "/good/nested")
        FileManager.default.createFile(atPath: dir + "/empty", contents: Data())
        FileManager.default.createFile(atPath: dir + "/README", contents: Data("hello".utf8))
        try truncate(try firstFile("explicit-le"), to: dir + "/cut", keeping: 0.05)
        try writeSlice(dir + "/noipp", [.imagePositionPatient: nil, .seriesInstanceUID: "2.25.99"])
        let dicomdir = DICOMWriter()
        try dicomdir.dataset.set(.sopClassUID, SOPClass.mediaStorageDirectory)
        try dicomdir.dataset.set(.sopInstanceUID, "2.25.5")
        try dicomdir.write(to: dir + "/DICOMDIR")
        let report = try FolderInspection(folder: dir)
        #expect(report.series.count == 1)
        #expect(report.series[0].sliceCount == 8)
        #expect(report.series[0].problems.isEmpty)
        let skipped = Dictionary(
            uniqueKeysWithValues: report.skipped.map { (URL(fileURLWithPath: $0.path).lastPathComponent, $0) })
        #expect(Set(skipped.keys) == ["empty", "README", "cut", "noipp", "DICOMDIR"])
        #expect(skipped["DICOMDIR"]?.reason.contains("DICOMDIR") == true)
        #expect(skipped["noipp"]?.code == "missing-attribute")
        #expect(skipped["empty"]?.code == "not-dicom")
        // The same folder converts the good series.
        let volume = try loadVolume(dir)
        #expect(volume.voxels == (try loadVolume(fixture("explicit-le"))).voxels)
    }

    @Test("A missing folder is a clear error")
    func missingFolder() {
        #expect(throws: DICOMError.self) { try DirectoryScanner().scan("/nonexistent/tessera") }
    }
}

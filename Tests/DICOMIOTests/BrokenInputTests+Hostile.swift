import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

/// Crafted files of a few hundred bytes (issue #11): each must end in a `DICOMError` naming the file, the tag and,
/// for sizes, the `ReadingLimits` field, never in a trap or a huge allocation; a folder holding them scans on.
extension BrokenInputTests {
    @Test(
        "Size tags out of range are refused before anything is allocated",
        arguments: [
            (DICOMTag.numberOfFrames, "1000000000000", "(0028,0008) Number of Frames"),
            (DICOMTag.numberOfFrames, "-5", "(0028,0008) Number of Frames"),
            (DICOMTag.numberOfFrames, "0", "(0028,0008) Number of Frames"),
            (DICOMTag.numberOfFrames, "70000", "maxFrames"),
            (DICOMTag.numberOfFrames, "1e400", "(0028,0008)"),
            (DICOMTag.numberOfFrames, "nan", "(0028,0008)"),
        ])
    func hostileSizes(tag: DICOMTag, value: String, words: String) throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try writeSlice(dir + "/slice", [tag: value])
        expectFailure(dir + "/slice", [.invalidAttribute], words)
    }

    @Test("Rows 0 and a 65535 × 65535 × 1000 header with 20 bytes of pixels are refused from the header")
    func hugeImage() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try writeSlice(dir + "/rows0", rows: 0)
        expectFailure(dir + "/rows0", [.invalidAttribute], "(0028,0010) Rows")
        // 65535 columns are legal; × 65535 rows × 1000 frames is 4.3 × 10¹² voxels.
        try writeSlice(dir + "/huge", [.numberOfFrames: "1000"], rows: 65535, columns: 65535, pixelWords: 10)
        expectFailure(dir + "/huge", [.invalidAttribute], "maxVoxelsPerVolume")
        // One such frame is within the limits: the header is accepted, the short pixel data is not.
        try writeSlice(dir + "/wide", rows: 2, columns: 65535, pixelWords: 10)
        expectFailure(dir + "/wide", [.truncatedPixelData], "truncated")
    }

    @Test("Limits are the caller's: a smaller ReadingLimits refuses what the defaults accept")
    func callerLimits() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try writeSlice(dir + "/slice", [.numberOfFrames: "2"], pixelWords: 128)
        #expect(try ImageInstance(path: dir + "/slice").numberOfFrames == 2)
        var limits = ReadingLimits()
        limits.maxVoxelsPerVolume = 100
        do {
            _ = try ImageInstance(path: dir + "/slice", limits: limits)
            Issue.record("read despite the limit")
        } catch {
            #expect(error.code == .invalidAttribute)
            #expect(error.path == dir + "/slice")
            #expect(
                error.message.contains("8 × 8 × 2") && error.message.contains("100")
                    && error.message.contains("maxVoxelsPerVolume"), "\(error)")
        }
        limits = ReadingLimits()
        limits.maxColumns = 4
        #expect(throws: DICOMError.self) { try ImageInstance(path: dir + "/slice", limits: limits) }
    }

    @Test(
        "Non-finite, huge and degenerate geometry in DS strings",
        arguments: [
            (DICOMTag.imagePositionPatient, "0\\0\\1e400", "not finite"),
            (DICOMTag.imagePositionPatient, "nan\\0\\0", "not finite"),
            (DICOMTag.imagePositionPatient, "0\\0\\1e19", "maxCoordinate"),
            (DICOMTag.imageOrientationPatient, "0\\0\\0\\0\\0\\0", "orthonormal"),
            (DICOMTag.imageOrientationPatient, "nan\\0\\0\\0\\1\\0", "orthonormal"),
            (DICOMTag.imageOrientationPatient, "1e400\\0\\0\\0\\1\\0", "orthonormal"),
            (DICOMTag.pixelSpacing, "nan\\1", "not finite"),
            (DICOMTag.pixelSpacing, "1e400\\1", "not finite"),
            (DICOMTag.pixelSpacing, "-1\\1", "positive"),
            (DICOMTag.pixelSpacing, "1e300\\1", "maxCoordinate"),
            (DICOMTag.rescaleSlope, "1e300", "float32"),
            (DICOMTag.rescaleIntercept, "inf", "not finite"),
            (DICOMTag.sliceThickness, "nan", "(0018,0050)"),
        ])
    func hostileGeometry(tag: DICOMTag, value: String, words: String) throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try writeSlice(dir + "/slice", [tag: value])
        expectFailure(dir + "/slice", [.invalidAttribute, .missingAttribute], words)
    }

    @Test("Classic multi-frame with a non-finite spacing between slices")
    func hostileFrameSpacing() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try writeSlice(dir + "/slice", [.numberOfFrames: "2", .spacingBetweenSlices: "1e400"], pixelWords: 128)
        expectFailure(dir + "/slice", [.invalidAttribute], "(0018,0088)")
    }

    @Test("Pixel format tags: Bits Allocated 0 and 64, Samples per Pixel 0 and 3, planar configuration")
    func hostilePixelFormat() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try writeSlice(dir + "/bits0", bitsAllocated: 0)
        expectFailure(dir + "/bits0", [.invalidAttribute], "(0028,0100) Bits Allocated 0")
        try writeSlice(dir + "/bits64", bitsAllocated: 64)
        expectFailure(dir + "/bits64", [.invalidAttribute], "(0028,0100) Bits Allocated 64")
        try writeSlice(dir + "/samples0", samples: 0)
        expectFailure(dir + "/samples0", [.invalidAttribute], "(0028,0002) Samples per Pixel")
        try writeSlice(
            dir + "/samples3-mono", [.photometricInterpretation: "MONOCHROME2"], samples: 3,
            bitsAllocated: 8)
        expectFailure(dir + "/samples3-mono", [.unsupportedImage], "(0028,0002) Samples per Pixel 3")
        try writeSlice(dir + "/planar", samples: 3, bitsAllocated: 8)
        try patchPlanar(dir + "/planar")
        expectFailure(dir + "/planar", [.unsupportedImage], "colour")
        try writeSlice(dir + "/frames-short", [.numberOfFrames: "4"], pixelWords: 64)
        expectFailure(dir + "/frames-short", [.truncatedPixelData], "4 frame(s)")
    }

    /// Sets (0028,0006) Planar Configuration to 1 (colour-by-plane).
    func patchPlanar(_ path: String) throws {
        try runDcmodify(["-m", "(0028,0006)=1", path])
    }

    func runDcmodify(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dcmodify")
        process.arguments = ["-nb", "-q"] + arguments
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "dcmodify \(arguments) failed")
    }

    @Test(
        "Modality LUT Descriptor of -1 (SS), 0 entries with short data, 0 and 32 bits",
        arguments: [
            ("-1\\0\\16", "(0028,3006) LUT Data holds"),
            ("0\\0\\16", "(0028,3006) LUT Data holds"),
            ("4\\0\\0", "(0028,3002) LUT Descriptor value 3"),
            ("4\\0\\32", "(0028,3002) LUT Descriptor value 3"),
        ])
    func hostileLUT(descriptor: String, words: String) throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        let path = dir + "/lut"
        try writeSlice(path)
        try runDcmodify([
            "-i", "(0028,3000)[0].(0028,3002)=\(descriptor)", "-i",
            "(0028,3000)[0].(0028,3006)=1\\2\\3\\4", path,
        ])
        expectFailure(path, [.invalidAttribute], words)
    }

    @Test(
        "Objects that are not images for training are skipped with a reason",
        arguments: [
            (SOPClass.rtDoseStorage, "RT Dose"),
            (SOPClass.rtStructureSetStorage, "RT Structure Set"),
            ("1.2.840.10008.5.1.4.1.1.88.33", "Structured Report"),
            ("1.2.840.10008.5.1.4.1.1.11.1", "Presentation State"),
        ])
    func nonImage(sopClass: String, kind: String) throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try writeSlice(dir + "/object", [.sopClassUID: sopClass])
        expectFailure(dir + "/object", [.notImage], kind)
        let scan = try DirectoryScanner().scan(dir)
        #expect(scan.instances.isEmpty)
        #expect(scan.skipped.map(\.error.code) == [.notImage])
    }

    @Test("A folder of crafted files: each listed with the file, the tag and the limit; the good series reads")
    func hostileFolder() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        try FileManager.default.createDirectory(atPath: dir + "/good", withIntermediateDirectories: true)
        try copyFixture("explicit-le", to: dir + "/good")
        let bad: [(String, [DICOMTag: String?], String)] = [
            ("frames", [.numberOfFrames: "1000000000000"], "(0028,0008) Number of Frames"),
            ("far", [.imagePositionPatient: "0\\0\\1e19"], "ReadingLimits.maxCoordinate"),
            ("nan", [.pixelSpacing: "nan\\nan"], "(0028,0030)"),
            ("dose", [.sopClassUID: SOPClass.rtDoseStorage], "RT Dose"),
        ]
        for (name, overrides, _) in bad {
            try writeSlice(dir + "/" + name, overrides.merging([.seriesInstanceUID: "2.25.4242"]) { a, _ in a })
        }
        try writeSlice(
            dir + "/huge", [.numberOfFrames: "1000", .seriesInstanceUID: "2.25.4242"], rows: 65535,
            columns: 65535, pixelWords: 10)
        // Within every limit, but 20 bytes of pixels for 4096 × 4096: refused at the scan, before a volume exists.
        try writeSlice(dir + "/short", [.seriesInstanceUID: "2.25.4242"], rows: 4096, columns: 4096, pixelWords: 10)
        let report = try FolderInspection(folder: dir)
        #expect(report.series.count == 1)
        #expect(report.series.first?.sliceCount == 8)
        let skipped = Dictionary(
            uniqueKeysWithValues: report.skipped.map {
                (URL(fileURLWithPath: $0.path).lastPathComponent, $0)
            })
        #expect(Set(skipped.keys) == Set(bad.map(\.0) + ["huge", "short"]))
        #expect(skipped["short"]?.code == "truncated-pixel-data")
        #expect(skipped["short"]?.reason.contains("(7FE0,0010) Pixel Data holds 20 bytes") == true)
        for (name, _, words) in bad {
            #expect(skipped[name]?.reason.contains(words) == true, "\(name): \(skipped[name]?.reason ?? "-")")
        }
        #expect(skipped["huge"]?.reason.contains("maxVoxelsPerVolume") == true)
        #expect(try loadVolume(dir).geometry.dimensions.z == 8)
    }

    @Test("Scans stop at maxFilesPerScan and list the rest; series above maxSlicesPerSeries are blocked")
    func scanLimits() throws {
        var limits = ReadingLimits()
        limits.maxFilesPerScan = 3
        let scan = try DirectoryScanner(limits: limits).scan(fixture("explicit-le"))
        #expect(scan.instances.count == 3)
        #expect(scan.skipped.count == 5)
        #expect(scan.skipped.allSatisfy { $0.error.message.contains("maxFilesPerScan") })
        limits = ReadingLimits()
        limits.maxSlicesPerSeries = 4
        let instances = try DirectoryScanner().scan(fixture("explicit-le")).instances
        let all = SeriesAssembler(limits: limits).assemble(instances)
        #expect(
            all[0].problems.contains {
                $0.kind == .tooLarge && $0.isBlocking
                    && $0.message.contains("maxSlicesPerSeries")
            })
        limits = ReadingLimits()
        limits.maxVoxelsPerVolume = 1000
        let small = SeriesAssembler(limits: limits).assemble(instances)
        #expect(small[0].problems.contains { $0.kind == .tooLarge && $0.message.contains("maxVoxelsPerVolume") })
        #expect(throws: DICOMError.self) { try Volume<Float>(series: small[0]) }
        #expect(throws: DICOMError.self) {
            try Volume<Float>(series: all[0], stack: all[0].stacks[0], limits: limits)
        }
    }

    @Test("A slice at z = 1e19 among z = 0, 1, 2 (limits raised): non-uniform spacing, no trap")
    func farSliceInAssembler() throws {
        var instances = try DirectoryScanner().scan(fixture("explicit-le")).instances
        instances = Array(instances.prefix(4))
        let normal = instances[0].frames[0].normal
        let origin = instances[0].frames[0].position
        for (k, z) in [0, 1, 2, 1e19].enumerated() { instances[k].frames[0].position = origin + z * normal }
        var limits = ReadingLimits()
        limits.maxCoordinate = .infinity
        let all = SeriesAssembler(limits: limits).assemble(instances)
        #expect(all[0].problems.contains { $0.kind == .nonUniformSpacing && $0.isBlocking })
        // A gap of a million slices is reported as such, not counted one by one.
        instances[3].frames[0].position = origin + 1e6 * normal
        let gap = SeriesAssembler().assemble(instances)
        #expect(gap[0].problems.contains { $0.kind == .nonUniformSpacing && $0.isBlocking })
        #expect(throws: DICOMError.self) { try Volume<Float>(series: gap[0]) }
    }

    @Test("A SEG frame at z = 1e300 lies on no slice")
    func farSegmentationFrame() throws {
        let folder = fixture("seg-binary")
        let all = try series(in: folder)
        let file = try DICOMFile(path: folder + "/seg.dcm", maxReadLength: 0)
        var seg = try Segmentation(file: file)
        for f in seg.instance.frames.indices {
            seg.instance.frames[f].referencedSOPInstanceUIDs = []
            seg.instance.frames[f].position.z = 1e300
        }
        do {
            _ = try seg.labelMap(onto: all[0].stacks[0], of: all[0], file: file)
            Issue.record("a frame at z = 1e300 was placed")
        } catch {
            #expect(error.code == .segmentation && error.message.contains("lies on no slice"), "\(error)")
        }
    }

    @Test("JPEG 2000: Number of Frames 2^30 (4 × frames wraps in 32 bits) and a SIZ larger than Rows × Columns")
    func hostileJPEG2000() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        let frames = dir + "/frames"
        let bomb = dir + "/bomb"
        try FileManager.default.copyItem(atPath: try firstFile("jpeg2000-lossless"), toPath: frames)
        try FileManager.default.copyItem(atPath: try firstFile("jpeg2000-lossless"), toPath: bomb)
        try runDcmodify(["-i", "(0028,0008)=1073741824", frames])
        // The header check refuses it first...
        expectFailure(frames, [.invalidAttribute], "maxFrames")
        // ...and the shim, reached directly, refuses it without sizing anything from it.
        do {
            try DICOMFile(path: frames, maxReadLength: 0).withPixelData { (_) throws(DICOMError) in }
            Issue.record("pixel data of 2^30 frames decoded")
        } catch {
            #expect(error.code == .parse && error.message.contains("1073741824"), "\(error)")
        }
        // The codestream's SIZ says more pixels than the header: refused before OpenJPEG decodes it.
        try runDcmodify(["-m", "(0028,0010)=4", "-m", "(0028,0011)=4", bomb])
        expectFailure(bomb, [.decode], "not decoded")
    }
}

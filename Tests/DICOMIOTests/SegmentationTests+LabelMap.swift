import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

/// LABELMAP SEG (Label Map Segmentation Storage 1.2.840.10008.5.1.4.1.1.66.7, DICOM 2024 Supplement 243): one frame
/// per slice holding segment numbers.
extension SegmentationTests {
    /// Writes a LABELMAP SEG of `labels` (`slices × rows × columns`) on the stack of `series`, one frame per slice
    /// placed by (0020,0032) in the Plane Position Sequence.
    func writeLabelMap(_ path: String, labels: [UInt8], on series: DICOMSeries, bitsAllocated: UInt16 = 8) throws {
        let stack = try series.primaryStack()
        let w = DICOMWriter()
        let d = w.dataset
        try d.set(.sopClassUID, SOPClass.labelMapSegmentationStorage)
        try d.set(.sopInstanceUID, "2.25.90001")
        try d.set(.studyInstanceUID, series.studyInstanceUID)
        try d.set(.seriesInstanceUID, "2.25.90002")
        try d.set(.modality, "SEG")
        try d.set(.segmentationType, "LABELMAP")
        try d.set(.numberOfFrames, String(stack.slices.count))
        try d.set(.rows, uint16: UInt16(stack.rows))
        try d.set(.columns, uint16: UInt16(stack.columns))
        try d.set(.samplesPerPixel, uint16: 1)
        try d.set(.photometricInterpretation, "MONOCHROME2")
        try d.set(.bitsAllocated, uint16: bitsAllocated)
        try d.set(.bitsStored, uint16: bitsAllocated)
        try d.set(.highBit, uint16: bitsAllocated - 1)
        try d.set(.pixelRepresentation, uint16: 0)
        for (number, label) in [(UInt16(1), "Sphere"), (2, "Box")] {
            let item = try d.appendItem(.segmentSequence)
            try item.set(.segmentNumber, uint16: number)
            try item.set(.segmentLabel, label)
        }
        try d.appendItem(.referencedSeriesSequence).set(.seriesInstanceUID, series.seriesInstanceUID)
        let shared = try d.appendItem(.sharedFunctionalGroupsSequence)
        let r = stack.rowCosine
        let c = stack.columnCosine
        try shared.appendItem(.planeOrientationSequence).set(
            .imageOrientationPatient,
            "\(r.x)\\\(r.y)\\\(r.z)\\\(c.x)\\\(c.y)\\\(c.z)")
        try shared.appendItem(.pixelMeasuresSequence).set(
            .pixelSpacing,
            "\(stack.pixelSpacing.row)\\\(stack.pixelSpacing.column)")
        for slice in stack.slices {
            let p = slice.position
            try d.appendItem(.perFrameFunctionalGroupsSequence).appendItem(.planePositionSequence)
                .set(.imagePositionPatient, "\(p.x)\\\(p.y)\\\(p.z)")
        }
        if bitsAllocated == 16 {
            try d.setPixelData(labels.map(UInt16.init))
        } else {
            try d.setPixelData(bytes: labels)
        }
        try w.write(to: path)
    }

    @Test("LABELMAP SEG (Supplement 243) maps onto the referenced series", arguments: [UInt16(8), 16])
    func labelMap(bitsAllocated: UInt16) throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        let all = try series(in: fixture("seg-binary"))
        let want = expectedLabels()
        try writeLabelMap(dir + "/labelmap.dcm", labels: want, on: all[0], bitsAllocated: bitsAllocated)
        let seg = try Segmentation(path: dir + "/labelmap.dcm")
        #expect(seg.kind == .labelMap)
        #expect(seg.segments.map(\.label) == ["Sphere", "Box"])
        let result = try Volume<UInt8>.labels(segmentation: dir + "/labelmap.dcm", series: all[0])
        #expect(result.volume.geometry == VolumeGeometry(stack: all[0].stacks[0]))
        #expect(zip(result.volume.voxels, want).filter { $0 != $1 }.count == 0)
        #expect(result.overlaps == 0)
    }

    @Test("LABELMAP SEG in a folder: reported, not read as an image series; undefined labels are an error")
    func labelMapInFolder() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        for name in try FileManager.default.contentsOfDirectory(atPath: fixture("seg-binary")) where name != "seg.dcm" {
            try FileManager.default.copyItem(atPath: fixture("seg-binary") + "/" + name, toPath: dir + "/" + name)
        }
        let all = try series(in: dir)
        try writeLabelMap(dir + "/labelmap.dcm", labels: expectedLabels(), on: all[0])
        let report = try FolderInspection(folder: dir)
        #expect(report.series.count == 1)
        #expect(report.segmentations.map(\.segmentationType) == ["LABELMAP"])
        #expect(report.series[0].segmentations.count == 1)
        var wrong = expectedLabels()
        wrong[100] = 3
        try writeLabelMap(dir + "/labelmap.dcm", labels: wrong, on: all[0])
        do {
            _ = try Volume<UInt8>.labels(segmentation: dir + "/labelmap.dcm", series: all[0])
            Issue.record("label 3 was accepted")
        } catch {
            #expect(error.code == .segmentation && error.message.contains("label 3"), "\(error)")
        }
    }
}

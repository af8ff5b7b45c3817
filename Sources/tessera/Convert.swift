import ArgumentParser
import DICOMIO
import Foundation
import Volumes

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a DICOM series (float32 HU) or a DICOM SEG (uint8 labels) to NIfTI-1.",
        discussion: """
            Without --series the folder must hold exactly one image series. With --segmentation the labels are \
            written on the grid of the series the SEG references (0 = background, segment number otherwise).
            """)

    @Argument(help: "A folder of DICOM files.")
    var folder: String

    @Option(help: "(0020,000E) Series Instance UID of the series to convert.")
    var series: String?

    @Option(help: "Stack of a series whose slices disagree in orientation (0 = largest), as `inspect` lists them.")
    var stack: Int?

    @Option(help: "A DICOM SEG file: write its label volume instead of the image.")
    var segmentation: String?

    @Option(name: .shortAndLong, help: "Output file, .nii or .nii.gz.")
    var output: String

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard output.hasSuffix(".nii") || output.hasSuffix(".nii.gz") else {
            throw ValidationError("--output must end in .nii or .nii.gz (NIfTI-1), got '\(output)'")
        }
        if let stack, stack < 0 {
            throw ValidationError("--stack must be 0 or more (0 = the largest stack), got \(stack)")
        }
    }

    func run() throws {
        common.apply()
        do {
            let scan = try DirectoryScanner().scan(folder)
            let all = SeriesAssembler(stackChoice: stack.map { .index($0) } ?? .refuseMixedOrientations)
                .assemble(scan.instances)
            if let segmentation {
                let seg = try Segmentation(path: segmentation)
                let chosen = try SeriesSelection.select(from: all, uid: series, referencedBy: seg)
                let (volume, segments, overlaps) = try Volume<UInt8>.labels(segmentation: segmentation, series: chosen)
                try NIfTI.write(
                    volume, to: output,
                    description: "Tessera labels " + segments.map { "\($0.number)=\($0.label)" }.joined(separator: " "))
                var counts = [Int](repeating: 0, count: 256)
                for v in volume.voxels { counts[Int(v)] += 1 }
                let summary = segments.map { "\($0.number) \($0.label): \(counts[$0.number]) voxels" }.joined(
                    separator: ", ")
                print(
                    "wrote \(output): \(dims(volume.geometry)) labels on series \(chosen.seriesInstanceUID); \(summary)"
                        + (overlaps > 0 ? "; \(overlaps) overlapping voxels (higher segment kept)" : ""))
            } else {
                let chosen = try SeriesSelection.select(from: all, uid: series)
                let volume = try Volume<Float>(series: chosen)
                try NIfTI.write(
                    volume, to: output, description: "Tessera \(chosen.modality) \(chosen.seriesDescription)")
                let s = volume.statistics
                print(
                    "wrote \(output): \(dims(volume.geometry)) float32, spacing "
                        + String(
                            format: "%.3g × %.3g × %.3g mm", volume.geometry.spacing.x, volume.geometry.spacing.y,
                            volume.geometry.spacing.z)
                        + String(format: ", values %.1f to %.1f (mean %.2f)", s.minimum, s.maximum, s.mean))
                for p in chosen.problems where !p.isBlocking { log("warning: \(p)") }
            }
            if !scan.skipped.isEmpty { log("\(scan.skipped.count) file(s) skipped; `tessera inspect` lists them") }
        } catch let error as DICOMError {
            throw CommandFailure(error)
        } catch let error as NIfTI.Error {
            throw CommandFailure(description: error.description)
        }
    }

    func dims(_ g: VolumeGeometry) -> String { "\(g.dimensions.x)×\(g.dimensions.y)×\(g.dimensions.z)" }
}

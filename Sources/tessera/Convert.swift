import ArgumentParser
import DICOMIO
import Foundation
import Training
import Volumes

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a DICOM series (float32 HU), a DICOM SEG or an RT Structure Set (uint8 labels) to NIfTI-1.",
        discussion: """
            Without --series the folder must hold exactly one image series. With --segmentation the labels are \
            written on the grid of the series the SEG references (0 = background, segment number otherwise). With \
            --rtstruct the structure set's CLOSED_PLANAR contours are filled on the grid of the series it \
            references (even-odd rule at voxel centres): each ROI becomes its ROI Number, or the label --label or \
            the pipeline's model.segment_names gives it (ROI names matched ignoring case; unmatched ROIs reported).
            """)

    @Argument(help: "A folder of DICOM files.")
    var folder: String

    @Option(help: "(0020,000E) Series Instance UID of the series to convert.")
    var series: String?

    @Option(help: "Stack of a series whose slices disagree in orientation (0 = largest), as `inspect` lists them.")
    var stack: Int?

    @Option(help: "A DICOM SEG file: write its label volume instead of the image.")
    var segmentation: String?

    @Option(help: "An RT Structure Set file: write its ROIs' label volume instead of the image.")
    var rtstruct: String?

    @Option(
        help: ArgumentHelp(
            "With --rtstruct: a label and its ROI names, NUMBER=NAME[,SYNONYM...] (e.g. 1=Liver,liver_1); repeat "
                + "per label.", valueName: "label"))
    var label: [String] = []

    @Option(help: "With --rtstruct: take the ROI names of each label from this pipeline's model.segment_names.")
    var pipeline: String?

    @Option(name: .shortAndLong, help: "Output file, .nii or .nii.gz.")
    var output: String

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard output.hasSuffix(".nii") || output.hasSuffix(".nii.gz") else {
            throw ValidationError("--output must end in .nii or .nii.gz (NIfTI-1), got '\(output)'")
        }
        if segmentation != nil && rtstruct != nil {
            throw ValidationError("give --segmentation or --rtstruct, not both")
        }
        if rtstruct == nil && (!label.isEmpty || pipeline != nil) {
            throw ValidationError("--label and --pipeline name the ROIs of an --rtstruct file; give one")
        }
        if !label.isEmpty && pipeline != nil {
            throw ValidationError("give the ROI names with --label or with --pipeline, not both")
        }
        _ = try labelMapping()
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
            if let rtstruct {
                let set = try StructureSet(path: rtstruct)
                let chosen = try SeriesSelection.select(from: all, uid: series, referencedBy: set)
                let mapping = try pipelineMapping() ?? labelMapping()
                let result = try Volume<UInt8>.labels(structureSet: set, series: chosen, mapping: mapping)
                try NIfTI.write(
                    result.volume, to: output,
                    description: "Tessera labels "
                        + result.filled.map { "\($0.label)=\($0.roiName)" }.joined(separator: " "))
                for w in result.warnings { log("warning: \(w)") }
                let summary = result.filled.map {
                    "\($0.label) \($0.roiName): \($0.contours) contour(s), \($0.voxels) voxels"
                }.joined(separator: ", ")
                print(
                    "wrote \(output): \(dims(result.volume.geometry)) labels on series \(chosen.seriesInstanceUID); "
                        + (summary.isEmpty ? "no ROI filled" : summary)
                        + (result.overlaps > 0 ? "; \(result.overlaps) overlapping voxels (higher label kept)" : ""))
            } else if let segmentation {
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
            // RT Structure Sets are skipped by the image scan but are not lost files.
            let skipped = scan.skipped.count - scan.structureSetPaths.count
            if skipped > 0 { log("\(skipped) file(s) skipped; `tessera inspect` lists them") }
        } catch let error as DICOMError {
            throw CommandFailure(error)
        } catch let error as NIfTI.Error {
            throw CommandFailure(description: error.description)
        }
    }

    /// `--label` values as a mapping, nil without any.
    func labelMapping() throws -> ROILabelMapping? {
        guard !label.isEmpty else { return nil }
        var entries: [ROILabelMapping.Entry] = []
        for text in label {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            let names = parts.count == 2 ? parts[1].split(separator: ",").map(String.init) : []
            guard parts.count == 2, let number = Int(parts[0]), let first = names.first else {
                throw ValidationError("--label '\(text)' must be NUMBER=NAME[,SYNONYM...], e.g. 1=Liver,liver_1")
            }
            entries.append(.init(label: number, name: first, synonyms: Array(names.dropFirst())))
        }
        do { return try ROILabelMapping(entries: entries) } catch {
            throw ValidationError("--label: \(error.message)")
        }
    }

    /// `model.segment_names` of `--pipeline`, nil without the option or the key.
    func pipelineMapping() throws -> ROILabelMapping? {
        guard let pipeline else { return nil }
        let text = try readPipeline(pipeline)
        do { return try TrainingConfiguration(yaml: text).model.segmentNames } catch {
            throw CommandFailure(description: "\(pipeline): \(error.message)")
        }
    }

    func dims(_ g: VolumeGeometry) -> String { "\(g.dimensions.x)×\(g.dimensions.y)×\(g.dimensions.z)" }
}

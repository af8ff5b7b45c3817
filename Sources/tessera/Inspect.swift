import ArgumentParser
import DICOMIO
import Training
import Volumes

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "List the series, segmentations and RT structure sets (ROIs, contour counts) in a DICOM folder, with "
            + "problems and skipped files.",
        discussion: """
            With --nifti-labels (the pipeline's model.nifti_labels, e.g. 'labels/{PatientID}.nii.gz', relative to \
            the folder) each series' NIfTI label file is looked up and checked as training would: found or not, \
            whether its grid matches the series' (what differs otherwise) and its voxel counts per label. With \
            --pipeline naming `model.input_channels`, each study's series are matched to the channels as training \
            would: the series of every channel, or the channels a study lacks (it would be skipped), or why a \
            match is ambiguous.
            """)

    @Argument(help: "A folder of DICOM files (searched recursively, any file names) or one file.")
    var folder: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @Option(help: "Where the site's NIfTI label maps are, as the pipeline's model.nifti_labels (text output only).")
    var niftiLabels: String?

    @Option(help: "A pipeline YAML with model.input_channels: report how each study's series match them (text output).")
    var pipeline: String?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if niftiLabels != nil && json { throw ValidationError("--nifti-labels reports in text; leave out --json") }
        if pipeline != nil && json { throw ValidationError("--pipeline reports in text; leave out --json") }
        if let niftiLabels {
            do { _ = try NIfTILabelFiles(template: niftiLabels) } catch { throw ValidationError(error.message) }
        }
    }

    func run() throws {
        common.apply()
        do {
            guard niftiLabels != nil || pipeline != nil else {
                let report = try FolderInspection(folder: folder)
                print(json ? try report.json() : report.text)
                return
            }
            let scan = try DirectoryScanner().scan(folder)
            let all = SeriesAssembler().assemble(scan.instances)
            print(try FolderInspection(folder: folder, scan: scan, series: all).text)
            if let pipeline { try channelReport(pipeline, all) }
            guard let niftiLabels else { return }
            let files = try NIfTILabelFiles(template: niftiLabels)
            print("NIfTI label maps (\(niftiLabels)):")
            for series in all { print("  series \(series.seriesInstanceUID): " + niftiReport(files, series)) }
        } catch let error as DICOMError {
            throw CommandFailure(error)
        } catch let error as TrainingError {
            throw CommandFailure(description: error.description)
        } catch {
            throw CommandFailure(description: "\(error)")
        }
    }

    /// How the pipeline's `model.input_channels` match each study (one line per study).
    func channelReport(_ path: String, _ all: [DICOMSeries]) throws {
        guard let channels = try TrainingConfiguration.load(path: path).model.inputChannels else {
            print("\(path) has no model.input_channels: one channel, the labelled series")
            return
        }
        print("Input channels (\(channels.names.joined(separator: ", ")); the first is the reference grid):")
        let images = all.filter { s in !s.instances.contains { $0.isSegmentation } }
        do {
            for study in try channels.match(images) {
                guard let series = study.series else {
                    print(
                        "  study \(study.studyInstanceUID): skipped, no series for channel(s) "
                            + study.missing.joined(separator: ", "))
                    continue
                }
                print(
                    "  study \(study.studyInstanceUID): "
                        + zip(channels.names, series).map { "\($0.0) = \(SeriesSelector.describe($0.1))" }
                        .joined(separator: "; "))
            }
        } catch {
            print("  refused: \(error.message)")
        }
    }

    /// One line on a series' NIfTI label file.
    func niftiReport(_ files: NIfTILabelFiles, _ series: DICOMSeries) -> String {
        guard let path = SegmentationDataset.labelFile(files, folder: folder, series: series) else {
            return "no label file"
        }
        do {
            let stack = try series.primaryStack()
            let labels = try Volume<UInt8>(niftiLabels: path, matching: VolumeGeometry(stack: stack))
            var counts = [Int](repeating: 0, count: 256)
            for v in labels.voxels { counts[Int(v)] += 1 }
            let present = (1..<256).filter { counts[$0] > 0 }.map { "label \($0): \(counts[$0]) voxels" }
            return "\(path) matches the series' grid; "
                + (present.isEmpty ? "no labelled voxel" : present.joined(separator: ", "))
        } catch let error as NIfTI.Error {
            return "\(path) refused: \(error.message)"
        } catch {
            return "\(path): the series cannot be read as a volume: \(error)"
        }
    }
}

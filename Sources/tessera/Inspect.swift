import ArgumentParser
import DICOMIO

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "List the series, segmentations and RT structure sets (ROIs, contour counts) in a DICOM folder, with "
            + "problems and skipped files.")

    @Argument(help: "A folder of DICOM files (searched recursively, any file names) or one file.")
    var folder: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @OptionGroup var common: CommonOptions

    func run() throws {
        common.apply()
        do {
            let report = try FolderInspection(folder: folder)
            print(json ? try report.json() : report.text)
        } catch {
            throw CommandFailure(error)
        }
    }
}

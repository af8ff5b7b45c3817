import Foundation
import Volumes
import Yams

/// A site whose images are NIfTI-1 files, not DICOM (`model.nifti_images`): one image per case in one folder, its
/// label map under the same file name in another, as the Medical Segmentation Decathlon and nnU-Net lay them out.
///
/// ```yaml
/// model:
///   nifti_images: {images: imagesTr, labels: labelsTr}
/// ```
///
/// ```
/// <site data folder>/imagesTr/case_001.nii.gz    image: uint8 … float64, × scl_slope + scl_inter
/// <site data folder>/labelsTr/case_001.nii.gz    labels on the image's grid (voxel values = segment numbers)
/// ```
///
/// A case is every `.nii` or `.nii.gz` file of the images folder (its name without the extension is the case and
/// the patient: held-out validation splits by it), sorted by name, at most `maxCases`; one without a label file is
/// skipped and reported. The image's grid comes from its sform (else qform) as the label reader's does; the label
/// map must be on that grid within `NIfTI.GeometryTolerance.default`. Both folders are relative to the site's data
/// folder, without `..`, at most 256 characters.
public struct NIfTIImageFolders: Sendable, Equatable {
    /// The most image files read from one site folder.
    public static let maxCases = 10_000
    public static let keys: Set<String> = ["images", "labels"]

    public let images: String
    public let labels: String

    /// - Throws: `.configuration` for an absolute folder, one with `..`, a backslash or NUL, or too long a path.
    public init(images: String, labels: String) throws(TrainingError) {
        for (key, value) in [("images", images), ("labels", labels)] {
            guard (1...NIfTILabelFiles.maxTemplateLength).contains(value.count), !value.hasPrefix("/"),
                !value.contains("\\"), !value.contains("\0"), !value.split(separator: "/").contains("..")
            else {
                throw TrainingError(
                    .configuration,
                    "`model.nifti_images.\(key)` must be a folder relative to the site's data folder, without `..`, "
                        + "of 1...\(NIfTILabelFiles.maxTemplateLength) characters; got "
                        + CheckedConversion.quoted(String(value.prefix(80))))
            }
        }
        self.images = images
        self.labels = labels
    }

    static func parse(_ node: Node) throws(TrainingError) -> NIfTIImageFolders {
        let path = "model.nifti_images"
        guard let m = node.mapping else {
            throw TrainingError(.configuration, "`\(path)` must be a mapping {images: <folder>, labels: <folder>}")
        }
        var values: [String: String] = [:]
        for (k, v) in m {
            let key = k.string ?? ""
            guard keys.contains(key) else {
                throw TrainingError(
                    .configuration,
                    "unknown key `\(path).\(String(key.prefix(64)))`; known: " + keys.sorted().joined(separator: ", "))
            }
            guard let text = v.scalar?.string else {
                throw TrainingError(.configuration, "`\(path).\(key)` must be a folder name")
            }
            values[key] = text
        }
        guard let images = values["images"], let labels = values["labels"] else {
            throw TrainingError(.configuration, "`\(path)` needs both `images` and `labels` folders")
        }
        return try NIfTIImageFolders(images: images, labels: labels)
    }

    /// The case name of an image file (`case_001` for `case_001.nii.gz`), or nil when not a NIfTI file name.
    public static func caseName(_ file: String) -> String? {
        for suffix in [".nii.gz", ".nii"] where file.hasSuffix(suffix) && file.count > suffix.count {
            return String(file.dropLast(suffix.count))
        }
        return nil
    }
}

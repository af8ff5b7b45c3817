import Foundation

/// Where a site keeps NIfTI-1 label maps (`model.nifti_labels`): a path relative to the site's data folder with
/// placeholders filled from each series, e.g. `labels/{SeriesInstanceUID}.nii.gz` or `labels/{PatientID}.nii.gz`.
///
/// Placeholders: `{SeriesInstanceUID}` (0020,000E), `{StudyInstanceUID}` (0020,000D), `{PatientID}` (0010,0020).
/// A series whose value would not be a plain file name (empty, `.`/`..`, or containing `/`, `\` or a NUL) has no
/// label file. The template is validated when the pipeline is read: relative, no `..` component, at least one
/// placeholder, ending in `.nii` or `.nii.gz`, at most 256 characters.
public struct NIfTILabelFiles: Sendable, Equatable {
    public static let placeholders = ["{SeriesInstanceUID}", "{StudyInstanceUID}", "{PatientID}"]
    public static let maxTemplateLength = 256

    public let template: String

    public init(template: String) throws(TrainingError) {
        func fail(_ why: String) -> TrainingError {
            TrainingError(.configuration, "`model.nifti_labels` \(why), got '\(String(template.prefix(80)))'")
        }
        guard !template.isEmpty, template.count <= Self.maxTemplateLength else {
            throw fail("must be a path of 1...\(Self.maxTemplateLength) characters")
        }
        guard !template.hasPrefix("/"), !template.contains("\\"), !template.contains("\0") else {
            throw fail("must be relative to the site's data folder (no leading /, no backslash)")
        }
        guard !template.split(separator: "/").contains("..") else {
            throw fail("must stay inside the site's data folder (no `..`)")
        }
        guard template.hasSuffix(".nii") || template.hasSuffix(".nii.gz") else {
            throw fail("must end in .nii or .nii.gz")
        }
        guard Self.placeholders.contains(where: template.contains) else {
            throw fail("must name each series' file with " + Self.placeholders.joined(separator: ", "))
        }
        let rest = Self.placeholders.reduce(template) { $0.replacingOccurrences(of: $1, with: "") }
        guard !rest.contains("{"), !rest.contains("}") else {
            throw fail("has an unknown placeholder; known: " + Self.placeholders.joined(separator: ", "))
        }
        self.template = template
    }

    /// The label file of a series under `folder`, or nil when a value is not a plain file name.
    public func path(folder: String, seriesInstanceUID: String, studyInstanceUID: String?, patientID: String?)
        -> String?
    {
        var out = template
        for (key, value) in zip(Self.placeholders, [seriesInstanceUID, studyInstanceUID, patientID]) {
            guard out.contains(key) else { continue }
            guard let value, Self.isPlainName(value) else { return nil }
            out = out.replacingOccurrences(of: key, with: value)
        }
        return folder + "/" + out
    }

    static func isPlainName(_ s: String) -> Bool {
        !s.isEmpty && s != "." && s != ".." && !s.contains("/") && !s.contains("\\") && !s.contains("\0")
            && s.utf8.count <= 255
    }
}

import DICOMIO
import Foundation
import Volumes

/// One study to classify: the series the pipeline selected, preprocessed onto the canonical grid, and its class
/// when the site's labels give one.
public struct ClassificationCase: Sendable {
    public var patientID: String
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var seriesDescription: String
    /// Class index into `ClassificationConfiguration.classes`; nil when unlabelled (prediction).
    public var label: Int?
    /// The canonical volume (after the pipeline's `preprocessing:`).
    public var sample: Sample

    public init(
        patientID: String, studyInstanceUID: String, seriesInstanceUID: String, seriesDescription: String,
        label: Int?, sample: Sample
    ) {
        self.patientID = patientID
        self.studyInstanceUID = studyInstanceUID
        self.seriesInstanceUID = seriesInstanceUID
        self.seriesDescription = seriesDescription
        self.label = label
        self.sample = sample
    }
}

/// What matching a site's labels against its studies found: studies without a label and label rows without a
/// study. Both are reported, never guessed; unlabelled studies do not train.
public struct LabelReport: Sendable, Equatable {
    /// Key values (or tag values) of studies that have no usable label, with the reason.
    public var unlabelled: [(key: String, reason: String)] = []
    /// CSV keys that match no study in the folder.
    public var unusedRows: [String] = []

    public static func == (a: LabelReport, b: LabelReport) -> Bool {
        a.unusedRows == b.unusedRows && a.unlabelled.map(\.key) == b.unlabelled.map(\.key)
            && a.unlabelled.map(\.reason) == b.unlabelled.map(\.reason)
    }

    /// One line per finding (at most `limit` each), for logs.
    public func lines(limit: Int = 10) -> [String] {
        var out: [String] = []
        if !unlabelled.isEmpty {
            out.append(
                "\(unlabelled.count) stud(ies) without a label (not used for training): "
                    + unlabelled.prefix(limit).map { "\($0.key) (\($0.reason))" }.joined(separator: ", ")
                    + (unlabelled.count > limit ? ", …" : ""))
        }
        if !unusedRows.isEmpty {
            out.append(
                "\(unusedRows.count) label row(s) match no study in the folder: "
                    + unusedRows.prefix(limit).joined(separator: ", ") + (unusedRows.count > limit ? ", …" : ""))
        }
        return out
    }
}

/// A site folder's studies for a classification pipeline.
public enum ClassificationDataset {
    /// The selected series of every study in `series`, in study order.
    /// - Throws: `.data` naming every study with no matching series or with several (and what it holds), so the
    ///   pipeline's `classification.series` can be made precise.
    public static func selectSeries(_ series: [DICOMSeries], selector: SeriesSelector) throws(TrainingError)
        -> [DICOMSeries]
    {
        var studies: [String: [DICOMSeries]] = [:]
        var order: [String] = []
        for s in series {
            if studies[s.studyInstanceUID] == nil { order.append(s.studyInstanceUID) }
            studies[s.studyInstanceUID, default: []].append(s)
        }
        var selected: [DICOMSeries] = []
        var problems: [String] = []
        for study in order {
            switch selector.select(studies[study] ?? []) {
            case .selected(let s): selected.append(s)
            case .none(let present):
                problems.append(
                    "study \(study) has no series matching the selection; it holds: " + present.joined(separator: "; "))
            case .several(let matching):
                problems.append(
                    "study \(study) has \(matching.count) matching series: " + matching.joined(separator: "; "))
            }
        }
        guard problems.isEmpty else {
            throw TrainingError(
                .data,
                "`classification.series` (modality \(selector.modality ?? "any"), description "
                    + "\(selector.description.map { "\"\($0)\"" } ?? "any"), orientation "
                    + "\(selector.orientation.rawValue)) "
                    + "must pick exactly one series per study: "
                    + problems.prefix(5).joined(separator: " | ") + (problems.count > 5 ? " | …" : ""))
        }
        return selected
    }

    /// The label of each selected series (nil: unlabelled, reported), from the CSV table or the mapped tag.
    /// - Parameter readTag: reads an attribute of a file (the first instance of a series); injectable for tests.
    public static func resolveLabels(
        _ series: [DICOMSeries], source: ClassificationConfiguration.LabelSource, table: LabelTable?,
        readTag: (String, DICOMTag) throws(DICOMError) -> String? = Self.readTag
    ) throws(TrainingError) -> (labels: [Int?], report: LabelReport) {
        var report = LabelReport()
        var labels: [Int?] = []
        switch source {
        case .csv(_, let key, _, _):
            guard let table else { throw TrainingError(.data, "no labels CSV was read") }
            var used = Set<String>()
            for s in series {
                let value = Self.keyValue(s, key)
                if let c = table.labels[value] {
                    labels.append(c)
                    used.insert(value)
                } else {
                    labels.append(nil)
                    report.unlabelled.append((value, "no row for this \(key.rawValue) in the labels CSV"))
                }
            }
            report.unusedRows = table.labels.keys.filter { !used.contains($0) }.sorted()
        case .tag(let tag, let map):
            for s in series {
                guard let first = s.instances.first else {
                    labels.append(nil)
                    continue
                }
                let raw: String?
                do { raw = try readTag(first.path, tag) } catch {
                    throw TrainingError(
                        .data, "cannot read \(tag) of \(first.path): \(error.message)", cause: error.description)
                }
                let value = raw?.trimmingCharacters(in: .whitespaces) ?? ""
                if let c = map[value] {
                    labels.append(c)
                } else {
                    labels.append(nil)
                    let shown = raw == nil ? "absent" : LabelTable.shown(value)
                    report.unlabelled.append(
                        (s.studyInstanceUID, "\(tag) is \(shown), not in `classification.labels.map`"))
                }
            }
        }
        return (labels, report)
    }

    /// The series' key value: (0010,0020), (0020,000D) or (0020,000E).
    public static func keyValue(_ s: DICOMSeries, _ key: LabelKey) -> String {
        switch key {
        case .patientID: return s.instances.first?.tags["PatientID"] ?? ""
        case .studyInstanceUID: return s.studyInstanceUID
        case .seriesInstanceUID: return s.seriesInstanceUID
        }
    }

    /// An attribute's text from a file (values longer than 256 bytes are refused as labels by the caller's map).
    public static func readTag(_ path: String, _ tag: DICOMTag) throws(DICOMError) -> String? {
        try DICOMFile(path: path).dataset.string(tag)
    }

    /// Reads and preprocesses every study of `folder` for `configuration`.
    /// - Parameters:
    ///   - labelsPath: the labels CSV (CSV labels); nil reads `classification.labels.csv` under `folder`.
    ///   - requireLabels: training: unlabelled studies are dropped (and reported) and at least one labelled study
    ///     is required; prediction (false): every study is kept.
    /// - Throws: `.data` for unreadable studies, series selection problems, a bad labels CSV; `.io` for a missing
    ///   CSV.
    public static func load(
        folder: String, preprocessing: PreprocessingConfiguration, configuration: ClassificationConfiguration,
        labelsPath: String? = nil, requireLabels: Bool = true, csvLimits: LabelCSVLimits = .default,
        limits: PreprocessingLimits = .default
    ) throws(TrainingError) -> (cases: [ClassificationCase], report: LabelReport) {
        let all: [DICOMSeries]
        do {
            let scan = try DirectoryScanner().scan(folder)
            all = SeriesAssembler().assemble(scan.instances).filter { s in
                !s.instances.contains { $0.isSegmentation }
            }
        } catch {
            throw TrainingError(.data, "cannot read \(folder): \(error.message)", cause: error.description)
        }
        let selected = try selectSeries(all, selector: configuration.series)
        guard !selected.isEmpty else {
            throw TrainingError(.data, "no image series in \(folder); `tessera inspect` lists what was skipped")
        }
        var labels: [Int?] = Array(repeating: nil, count: selected.count)
        var report = LabelReport()
        if requireLabels || labelsPath != nil {
            var table: LabelTable?
            if case .csv(let path, let key, let keyColumn, let labelColumn) = configuration.labels {
                table = try LabelTable.load(
                    path: labelsPath ?? (folder + "/" + path), key: key, keyColumn: keyColumn,
                    labelColumn: labelColumn, classes: configuration.classes, limits: csvLimits)
            }
            (labels, report) = try resolveLabels(selected, source: configuration.labels, table: table)
        }
        var cases: [ClassificationCase] = []
        for (s, label) in zip(selected, labels) {
            if requireLabels && label == nil { continue }
            do {
                let image = try Volume<Float>(series: s, stack: try s.primaryStack())
                var pipeline = preprocessing.preprocessingPipeline(limits: limits)
                let sample = try pipeline.apply(Sample(image: image))
                cases.append(
                    ClassificationCase(
                        patientID: s.instances.first?.tags["PatientID"] ?? "", studyInstanceUID: s.studyInstanceUID,
                        seriesInstanceUID: s.seriesInstanceUID, seriesDescription: s.seriesDescription,
                        label: label, sample: sample))
            } catch let error as DICOMError {
                throw TrainingError(.data, "series \(s.seriesInstanceUID): \(error.message)", cause: error.description)
            } catch let error as VolumesError {
                throw TrainingError(
                    .data, "series \(s.seriesInstanceUID): preprocessing failed: \(error.message)",
                    cause: error.description)
            } catch {
                throw TrainingError(.data, "series \(s.seriesInstanceUID): \(error)")
            }
        }
        guard !cases.isEmpty else {
            throw TrainingError(
                .data,
                "no study in \(folder) has a label; " + (report.lines().first ?? "check the labels source"))
        }
        let shapes = Set(cases.map { "\($0.sample.image.geometry.dimensions)" })
        guard shapes.count == 1 else {
            throw TrainingError(
                .data,
                "the preprocessed volumes differ in shape (\(shapes.sorted().joined(separator: ", "))); give "
                    + "`preprocessing.crop_pad.shape` or `preprocessing.resize` so every study has the same grid")
        }
        return (cases, report)
    }
}

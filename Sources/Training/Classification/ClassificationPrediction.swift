import Foundation

/// A classifier's output for one study, as `tessera predict` writes it.
public struct StudyPrediction: Sendable, Codable, Equatable {
    public var patientID: String
    public var studyInstanceUID: String
    /// The series the pipeline's `classification.series` selected and the model read.
    public var seriesInstanceUID: String
    public var seriesDescription: String
    /// Probability per class name.
    public var probabilities: [String: Double]
    /// The arg-max class.
    public var predicted: String
    /// The positive class's probability ≥ `classification.threshold` (binary call).
    public var positive: Bool

    enum CodingKeys: String, CodingKey {
        case patientID = "patient_id", studyInstanceUID = "study_instance_uid"
        case seriesInstanceUID = "series_instance_uid", seriesDescription = "series_description"
        case probabilities, predicted, positive
    }
}

/// Per-study predictions and their files.
public struct ClassificationPrediction: Sendable, Codable {
    public var classes: [String]
    public var positiveClass: String
    public var threshold: Double
    public var studies: [StudyPrediction]

    enum CodingKeys: String, CodingKey {
        case classes, positiveClass = "positive_class", threshold, studies
    }

    /// Pairs each study with its probabilities.
    public init(cases: [ClassificationCase], probabilities: [[Double]], configuration: ClassificationConfiguration) {
        classes = configuration.classes
        positiveClass = configuration.classes[configuration.positiveClass]
        threshold = configuration.threshold
        studies = zip(cases, probabilities).map { c, p in
            var best = 0
            for k in p.indices where p[k] > p[best] { best = k }
            var named: [String: Double] = [:]
            for (name, v) in zip(configuration.classes, p) { named[name] = v }
            return StudyPrediction(
                patientID: c.patientID, studyInstanceUID: c.studyInstanceUID, seriesInstanceUID: c.seriesInstanceUID,
                seriesDescription: c.seriesDescription, probabilities: named, predicted: configuration.classes[best],
                positive: p[configuration.positiveClass] >= configuration.threshold)
        }
    }

    /// CSV: `PatientID,StudyInstanceUID,SeriesInstanceUID,SeriesDescription,p_<class>…,predicted,positive`; text
    /// fields quoted (RFC 4180), probabilities with 6 decimals.
    public var csv: String {
        func quoted(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        var lines = [
            (["PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SeriesDescription"] + classes.map { "p_\($0)" }
                + ["predicted", "positive"]).map(quoted).joined(separator: ",")
        ]
        for s in studies {
            let fields =
                [s.patientID, s.studyInstanceUID, s.seriesInstanceUID, s.seriesDescription].map(quoted)
                + classes.map { String(format: "%.6f", s.probabilities[$0] ?? 0) }
                + [quoted(s.predicted), s.positive ? "1" : "0"]
            lines.append(fields.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes `<base>.csv` and `<base>.json` for an output path `<base>.csv` (or `<base>.json`, or `<base>`).
    /// - Returns: the two paths.
    public func write(to output: String) throws(TrainingError) -> (csv: String, json: String) {
        var base = output
        for suffix in [".csv", ".json"] where base.hasSuffix(suffix) { base = String(base.dropLast(suffix.count)) }
        let paths = (base + ".csv", base + ".json")
        do {
            let folder = (base as NSString).deletingLastPathComponent
            if !folder.isEmpty {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            }
            try Data(csv.utf8).write(to: URL(fileURLWithPath: paths.0))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(self).write(to: URL(fileURLWithPath: paths.1))
        } catch {
            throw TrainingError(.io, "cannot write the predictions \(paths.0)", cause: "\(error)")
        }
        return paths
    }
}

import DICOMIO
import Foundation
import Volumes
import Yams

/// The `classification:` section of a pipeline (`pipelines/classification-resnet2d.yaml` documents every key):
/// the classes, where each study's label comes from, which series of a study is read, how a volume becomes the
/// classifier's input, and how the metrics are computed.
public struct ClassificationConfiguration: Sendable, Equatable {
    /// How a preprocessed volume `[z, y, x]` becomes one input.
    public enum Input: String, Sendable, CaseIterable {
        /// Maximum intensity projection along z: `[1, y, x]`.
        case mip
        /// Minimum intensity projection along z.
        case minip
        /// Mean along z.
        case mean
        /// The middle axial slice.
        case middleSlice = "middle_slice"
        /// The whole volume (3-D classifiers): `[1, z, y, x]`.
        case volume
    }

    /// Where labels come from.
    public enum LabelSource: Sendable, Equatable {
        /// A CSV the site keeps; `path` is relative to the site's data folder (or given on the command line).
        case csv(path: String, key: LabelKey, keyColumn: String, labelColumn: String)
        /// A DICOM attribute of the selected series' first instance, mapped value → class index. Values not in
        /// `map` leave the study unlabelled (reported), never guessed.
        case tag(DICOMTag, map: [String: Int])
    }

    /// Class imbalance handling.
    public enum Imbalance: String, Sendable, CaseIterable {
        /// Cross-entropy weighted by `n / (classes · n_c)` per class (scikit-learn's "balanced" weights).
        case weightedLoss = "weighted_loss"
        /// Each batch draws classes uniformly, then a study of that class.
        case balancedSampling = "balanced_sampling"
        case none
    }

    public var classes: [String] = ["0", "1"]
    /// Index into `classes` of the positive class for binary metrics (AUC, sensitivity, specificity).
    public var positiveClass = 1
    public var input = Input.mip
    public var labels = LabelSource.csv(
        path: "labels.csv", key: .patientID, keyColumn: "PatientID", labelColumn: "label")
    public var series = SeriesSelector()
    /// Probability of the positive class at or above which a study is called positive (sensitivity/specificity).
    public var threshold = 0.5
    public var imbalance = Imbalance.weightedLoss
    /// Bootstrap resamples for the AUC's confidence interval (0: none).
    public var bootstrapSamples = 1000
    /// Two-sided confidence level of the interval.
    public var confidence = 0.95
    public var bootstrapSeed: UInt64 = 20_261_207

    public init() {}

    static let keys: Set<String> = [
        "classes", "positive_class", "input", "labels", "series", "threshold", "imbalance", "bootstrap",
    ]
    static let labelKeys: Set<String> = ["csv", "key", "key_column", "label_column", "tag", "map"]
    static let seriesKeys: Set<String> = ["modality", "description", "orientation"]
    static let bootstrapKeys: Set<String> = ["samples", "confidence", "seed"]

    /// Parses the section.
    /// - Throws: `.configuration` naming the key for unknown keys, wrong types, values out of range or past `limits`.
    public init(node: Node, limits: PipelineLimits) throws(TrainingError) {
        let p = "classification"
        let root = try Self.mapping(node, p, Self.keys)
        if let n = root["classes"] {
            guard let seq = n.sequence, (2...limits.maxClasses).contains(seq.count) else {
                throw Self.fail("\(p).classes", "must be a list of 2...\(limits.maxClasses) names (limit max_classes)")
            }
            var names: [String] = []
            for (i, item) in seq.enumerated() {
                names.append(try Self.name(item, "\(p).classes[\(i)]"))
            }
            guard Set(names).count == names.count else {
                throw Self.fail("\(p).classes", "lists a class twice")
            }
            classes = names
        }
        if let n = root["positive_class"] {
            let name = try Self.name(n, "\(p).positive_class")
            guard let i = classes.firstIndex(of: name) else {
                throw Self.fail("\(p).positive_class", "is \(CheckedConversion.quoted(name)): not one of the classes")
            }
            positiveClass = i
        } else {
            positiveClass = classes.count - 1
        }
        if let v = try Self.choice(root["input"], "\(p).input", Input.allCases.map(\.rawValue)) {
            input = Input(rawValue: v) ?? input
        }
        if let v = try Self.choice(root["imbalance"], "\(p).imbalance", Imbalance.allCases.map(\.rawValue)) {
            imbalance = Imbalance(rawValue: v) ?? imbalance
        }
        if let n = root["threshold"] { threshold = try Self.number(n, "\(p).threshold", 0...1) }
        if let n = root["bootstrap"] {
            let b = try Self.mapping(n, "\(p).bootstrap", Self.bootstrapKeys)
            if let s = b["samples"] {
                guard s.scalar != nil, let v = s.int, (0...limits.maxBootstrapSamples).contains(v) else {
                    throw Self.fail(
                        "\(p).bootstrap.samples",
                        "must be an integer in 0...\(limits.maxBootstrapSamples) (limit max_bootstrap_samples)")
                }
                bootstrapSamples = v
            }
            if let c = b["confidence"] { confidence = try Self.number(c, "\(p).bootstrap.confidence", 0.5...0.999) }
            if let s = b["seed"] {
                guard let text = s.scalar?.string, let v = UInt64(text) else {
                    throw Self.fail("\(p).bootstrap.seed", "must be an integer in 0...\(UInt64.max)")
                }
                bootstrapSeed = v
            }
        }
        if let n = root["series"] {
            let s = try Self.mapping(n, "\(p).series", Self.seriesKeys)
            var selector = SeriesSelector()
            if let m = s["modality"] {
                let v = try Self.name(m, "\(p).series.modality")
                selector.modality = v == "any" ? nil : v
            }
            if let d = s["description"] { selector.description = try Self.name(d, "\(p).series.description") }
            if let o = try Self.choice(
                s["orientation"], "\(p).series.orientation", SeriesSelector.Orientation.allCases.map(\.rawValue))
            {
                selector.orientation = SeriesSelector.Orientation(rawValue: o) ?? .axial
            }
            series = selector
        }
        if let n = root["labels"] {
            labels = try Self.labelSource(n, classes: classes, limits: limits)
        }
    }

    static func labelSource(_ node: Node, classes: [String], limits: PipelineLimits) throws(TrainingError)
        -> LabelSource
    {
        let p = "classification.labels"
        let l = try mapping(node, p, labelKeys)
        switch (l["csv"], l["tag"]) {
        case (let csv?, nil):
            for key in ["map"] where l[key] != nil {
                throw fail("\(p).\(key)", "belongs to tag labels; a CSV names its classes in its label column")
            }
            let path = try name(csv, "\(p).csv")
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            guard !path.hasPrefix("/"), !parts.contains(".."), !path.contains("\\") else {
                throw fail(
                    "\(p).csv",
                    "is \(CheckedConversion.quoted(path)): give a path inside the site's data folder (relative, "
                        + "no `..`); a site can point at another file with --labels")
            }
            let keyName = try choice(l["key"], "\(p).key", LabelKey.allCases.map(\.rawValue)) ?? "PatientID"
            let key = LabelKey(rawValue: keyName) ?? .patientID
            let keyColumn = try l["key_column"].map { n throws(TrainingError) in try name(n, "\(p).key_column") }
            let labelColumn = try l["label_column"].map { n throws(TrainingError) in try name(n, "\(p).label_column") }
            return .csv(
                path: path, key: key, keyColumn: keyColumn ?? key.rawValue, labelColumn: labelColumn ?? "label")
        case (nil, let tagNode?):
            for key in ["key", "key_column", "label_column"] where l[key] != nil {
                throw fail("\(p).\(key)", "belongs to CSV labels; tag labels read the selected series")
            }
            let text = try name(tagNode, "\(p).tag")
            guard let tag = parseTag(text) else {
                throw fail("\(p).tag", "is \(CheckedConversion.quoted(text)): give the tag as \"GGGG,EEEE\" (hex)")
            }
            guard let mapNode = l["map"], let m = mapNode.mapping, !m.isEmpty else {
                throw fail("\(p).map", "must map tag values to classes, e.g. {\"LESION\": lesion}")
            }
            guard m.count <= limits.maxLabelMapEntries else {
                throw fail(
                    "\(p).map",
                    "has \(m.count) entries, more than \(limits.maxLabelMapEntries) (limit max_label_map_entries)")
            }
            var map: [String: Int] = [:]
            for (k, v) in m {
                let value = try name(k, "\(p).map key")
                let cls = try name(v, "\(p).map.\(value)")
                guard let c = classes.firstIndex(of: cls) else {
                    throw fail("\(p).map.\(value)", "is \(CheckedConversion.quoted(cls)): not one of the classes")
                }
                map[value] = c
            }
            return .tag(tag, map: map)
        case (nil, nil):
            throw fail(p, "needs `csv` (a labels file) or `tag` with `map`")
        case (.some, .some):
            throw fail(p, "gives both `csv` and `tag`; choose one source of labels")
        }
    }

    /// `"0008,1030"` or `"(0008,1030)"`.
    public static func parseTag(_ text: String) -> DICOMTag? {
        var t = text.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("(") && t.hasSuffix(")") { t = String(t.dropFirst().dropLast()) }
        let parts = t.split(separator: ",")
        guard parts.count == 2, parts.allSatisfy({ $0.count == 4 }), let g = UInt16(parts[0], radix: 16),
            let e = UInt16(parts[1], radix: 16)
        else { return nil }
        return DICOMTag(g, e)
    }

    // MARK: - Parsing helpers

    static func fail(_ path: String, _ message: String) -> TrainingError {
        TrainingError(.configuration, "`\(path)` \(message)")
    }

    static func mapping(_ node: Node, _ path: String, _ allowed: Set<String>) throws(TrainingError) -> [String: Node] {
        guard let m = node.mapping else { throw fail(path, "must be a mapping") }
        var out: [String: Node] = [:]
        for (k, v) in m {
            let key = k.string ?? ""
            guard allowed.contains(key) else {
                throw TrainingError(
                    .configuration,
                    "unknown key `\(path).\(String(key.prefix(64)))`; known: "
                        + allowed.sorted().joined(separator: ", "))
            }
            out[key] = v
        }
        return out
    }

    /// A non-empty scalar of at most 256 bytes.
    static func name(_ node: Node, _ path: String) throws(TrainingError) -> String {
        guard let v = node.scalar?.string, !v.isEmpty, v.utf8.count <= 256 else {
            throw fail(path, "must be a non-empty text of at most 256 bytes")
        }
        return v
    }

    static func choice(_ node: Node?, _ path: String, _ allowed: [String]) throws(TrainingError) -> String? {
        guard let node else { return nil }
        guard let v = node.scalar?.string, allowed.contains(v) else {
            let shown = node.scalar.map { CheckedConversion.quoted($0.string) } ?? "not a scalar"
            throw fail(path, "is \(shown): must be " + allowed.joined(separator: " | "))
        }
        return v
    }

    static func number(_ node: Node, _ path: String, _ range: ClosedRange<Double>) throws(TrainingError) -> Double {
        guard node.scalar != nil, let v = node.float, v.isFinite, range.contains(v) else {
            throw fail(path, "must be a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }
}

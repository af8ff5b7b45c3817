import Foundation

/// Which label value each RT Structure Set ROI becomes: a name per label plus the synonyms sites use for it.
///
/// Matching rule: an ROI's (3006,0026) ROI Name, with leading and trailing spaces removed, matches an entry when it
/// equals the entry's `name` or one of its `synonyms` ignoring case (Unicode case folding of `lowercased()`); there
/// is no partial or fuzzy matching, so `liver_1` matches only an entry that lists `liver_1` (or `LIVER_1`). Names
/// and synonyms must be unique across entries (ignoring case), so an ROI name matches at most one label.
///
/// Outcome per structure set (`match(_:)`): ROIs matched by no entry are *unmatched* (reported, left out of the
/// label map); a label matched by two or more ROIs is *ambiguous* (reported; rasterising refuses it, since which
/// contour is the organ is unknown); a label no ROI matches is *missing* (reported).
///
/// In a pipeline: `model.segment_names` (see `pipelines/segmentation-unet2d.yaml`); `tessera convert --rtstruct`
/// takes `--label NUMBER=NAME[,SYNONYM...]`. Without a mapping every ROI becomes its (3006,0022) ROI Number.
public struct ROILabelMapping: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// The label value, 1...255 (label volumes are uint8; 0 is background).
        public var label: Int
        public var name: String
        public var synonyms: [String]

        public init(label: Int, name: String, synonyms: [String] = []) {
            self.label = label
            self.name = name
            self.synonyms = synonyms
        }
    }

    /// One ROI that matched an entry.
    public struct Assignment: Sendable, Equatable {
        public var roiNumber: Int
        public var roiName: String
        public var label: Int

        public init(roiNumber: Int, roiName: String, label: Int) {
            self.roiNumber = roiNumber
            self.roiName = roiName
            self.label = label
        }
    }

    /// A label that two or more ROIs match.
    public struct Ambiguity: Sendable, Equatable {
        public var label: Int
        public var roiNames: [String]

        public init(label: Int, roiNames: [String]) {
            self.label = label
            self.roiNames = roiNames
        }
    }

    public struct Match: Sendable, Equatable {
        /// ROIs with the label they became, in structure-set order (ambiguous labels excluded).
        public var assignments: [Assignment]
        /// Names of ROIs no entry matches.
        public var unmatched: [String]
        public var ambiguous: [Ambiguity]
        /// Labels (with their entry's name) that no ROI matches.
        public var missing: [Entry]

        /// One line per finding, for logs and reports; empty when every ROI and label matched once.
        public var report: [String] {
            unmatched.map { "ROI '\($0)' matches no label; left out" }
                + ambiguous.map {
                    "label \($0.label) is matched by \($0.roiNames.count) ROIs ("
                        + $0.roiNames.map { "'\($0)'" }.joined(separator: ", ")
                        + "); rename them or narrow the label's synonyms"
                }
                + missing.map { "label \($0.label) ('\($0.name)'): no ROI matches it" }
        }
    }

    public private(set) var entries: [Entry]

    /// - Throws: `.invalidArgument` for a label outside 1...255, a label given twice, an empty name or synonym,
    ///   or a name/synonym that two labels share (ignoring case).
    public init(entries: [Entry]) throws(DICOMError) {
        var owner: [String: Int] = [:]
        var labels: Set<Int> = []
        for entry in entries {
            guard (1...255).contains(entry.label) else {
                throw DICOMError(.invalidArgument, "ROI label \(entry.label) is outside 1...255 (uint8 label maps)")
            }
            guard labels.insert(entry.label).inserted else {
                throw DICOMError(.invalidArgument, "label \(entry.label) is given twice; list its names once")
            }
            for text in [entry.name] + entry.synonyms {
                let key = Self.key(text)
                guard !key.isEmpty else {
                    throw DICOMError(.invalidArgument, "label \(entry.label) has an empty name or synonym")
                }
                if let other = owner[key], other != entry.label {
                    throw DICOMError(
                        .invalidArgument,
                        "the name '\(text)' is given for labels \(other) and \(entry.label); an ROI name must "
                            + "match one label")
                }
                owner[key] = entry.label
            }
        }
        self.entries = entries
    }

    /// The comparison key: trimmed of spaces, lower-cased.
    static func key(_ name: String) -> String {
        name.trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// The label an ROI name matches, or nil.
    public func label(for roiName: String) -> Int? {
        let key = Self.key(roiName)
        return entries.first { e in ([e.name] + e.synonyms).contains { Self.key($0) == key } }?.label
    }

    /// Matches ROIs (number, name) in order against the entries.
    public func match(_ rois: [(number: Int, name: String)]) -> Match {
        var byLabel: [Int: [(number: Int, name: String)]] = [:]
        var unmatched: [String] = []
        for roi in rois {
            if let label = label(for: roi.name) {
                byLabel[label, default: []].append(roi)
            } else {
                unmatched.append(roi.name)
            }
        }
        var assignments: [Assignment] = []
        var ambiguous: [Ambiguity] = []
        for roi in rois {
            guard let label = label(for: roi.name), let all = byLabel[label] else { continue }
            if all.count == 1 {
                assignments.append(Assignment(roiNumber: roi.number, roiName: roi.name, label: label))
            } else if all[0].number == roi.number {
                ambiguous.append(Ambiguity(label: label, roiNames: all.map(\.name)))
            }
        }
        let missing = entries.filter { byLabel[$0.label] == nil }
        return Match(assignments: assignments, unmatched: unmatched, ambiguous: ambiguous, missing: missing)
    }
}

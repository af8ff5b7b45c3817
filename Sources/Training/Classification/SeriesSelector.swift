import DICOMIO
import Foundation

/// Which series of a study a classifier reads (`classification.series` in the pipeline): every criterion given
/// must hold; a study must have exactly one series that meets them.
public struct SeriesSelector: Sendable, Equatable {
    /// Plane of the series' primary stack, from its direction cosines (not from tags).
    public enum Orientation: String, Sendable, CaseIterable {
        case axial, coronal, sagittal, any
    }

    /// (0008,0060) Modality, compared exactly (e.g. `CT`); nil: any.
    public var modality: String? = "CT"
    /// A pattern on (0008,103E) Series Description: `*` any run of characters, `?` one character, case-insensitive,
    /// matching the whole description; nil: any.
    public var description: String?
    /// Plane of the primary stack.
    public var orientation = Orientation.axial

    public init(modality: String? = "CT", description: String? = nil, orientation: Orientation = .axial) {
        self.modality = modality
        self.description = description
        self.orientation = orientation
    }

    /// The outcome of selecting within one study.
    public enum Outcome: Sendable {
        case selected(DICOMSeries)
        /// No series meets the criteria; `present` describes the study's series.
        case none(present: [String])
        /// Several series meet them (their descriptions).
        case several([String])
    }

    /// Applies the criteria to the series of one study.
    public func select(_ series: [DICOMSeries]) -> Outcome {
        let matching = series.filter(matches)
        if matching.count == 1 { return .selected(matching[0]) }
        if matching.isEmpty { return .none(present: series.map(Self.describe)) }
        return .several(matching.map(Self.describe))
    }

    /// True when `series` meets every criterion.
    public func matches(_ series: DICOMSeries) -> Bool {
        if let modality, series.modality != modality { return false }
        if let description, !Self.glob(description, matches: series.seriesDescription) { return false }
        if orientation != .any {
            guard let stack = try? series.primaryStack(), Self.plane(of: stack) == orientation else { return false }
        }
        return true
    }

    /// `CT "Abdomen PV 5mm" (34 slices, axial) 1.2.3…`: how errors list a series.
    public static func describe(_ s: DICOMSeries) -> String {
        let plane = (try? s.primaryStack()).map { Self.plane(of: $0).rawValue } ?? "no stack"
        return "\(s.modality) \"\(s.seriesDescription)\" (\(s.sliceCount) slices, \(plane)) \(s.seriesInstanceUID)"
    }

    /// The plane whose normal is closest to the stack's (oblique stacks go to the nearest plane).
    public static func plane(of stack: SliceStack) -> Orientation {
        let n = stack.normal
        let (x, y, z) = (abs(n.x), abs(n.y), abs(n.z))
        if z >= x && z >= y { return .axial }
        return y >= x ? .coronal : .sagittal
    }

    /// Whole-string match of a pattern with `*` and `?`, case-insensitive.
    public static func glob(_ pattern: String, matches text: String) -> Bool {
        let p = Array(pattern.lowercased())
        let t = Array(text.lowercased())
        var (pi, ti) = (0, 0)
        var star: Int?
        var mark = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == "?" || (p[pi] != "*" && p[pi] == t[ti])) {
                pi += 1
                ti += 1
            } else if pi < p.count && p[pi] == "*" {
                star = pi
                mark = ti
                pi += 1
            } else if let s = star {
                pi = s + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

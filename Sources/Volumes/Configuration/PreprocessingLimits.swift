import DICOMIO
import Yams

/// Upper bounds on what a pipeline's `preprocessing:` and `augmentation:` sections may ask for: the one place the
/// Volumes module keeps them. `PreprocessingConfiguration.validate(limits:)` checks a configuration against them
/// before anything is allocated, and `preprocessingPipeline(limits:)` makes the spatial steps refuse, at run time,
/// a grid larger than `maxVoxelsPerVolume` (a resample's output depends on the input's size and spacing).
///
/// The defaults fit a 24 GiB machine with room for the training that follows: one float32 volume of
/// `maxVoxelsPerVolume` is 512 MiB, and a resample holds its input, its output and a filtered copy at once.
/// Raise them in the server's and each site's `limits.yaml` (section `pipeline.preprocessing`, see
/// `docs/limits-pipeline.md`); each side checks with its own.
public struct PreprocessingLimits: Sendable, Equatable {
    /// Size of the pipeline text, bytes (bounds every list and string in it); checked before it is parsed.
    public var maxPipelineBytes = 1_048_576
    /// Voxels of any grid a step produces (resample, resize, crop/pad, random crop): 512³.
    public var maxVoxelsPerVolume = 134_217_728
    /// Voxels along one axis of any grid a step produces.
    public var maxAxisVoxels = 2048
    /// Target spacing range, mm.
    public var minSpacingMM = 0.01
    public var maxSpacingMM = 100.0
    /// Crop/pad margin per axis, voxels.
    public var maxMarginVoxels = 1024
    /// Elastic deformation control points per axis.
    public var maxControlPoints = 64
    /// Landmarks of a histogram-matching reference.
    public var maxHistogramLandmarks = 1024
    /// Magnitude of any intensity the pipeline gives (thresholds, fills, window bounds, landmarks, padding), in
    /// image units (HU before scaling).
    public var maxIntensityMagnitude = 1_000_000.0
    /// Translation per axis and elastic displacement, mm.
    public var maxDisplacementMM = 1000.0
    /// Intensity shift/scale, noise std (image units after preprocessing).
    public var maxIntensityAugmentation = 1000.0
    /// Affine scale and gamma ranges lie in [minFactor, maxFactor].
    public var minFactor = 0.01
    public var maxFactor = 100.0

    public init() {}

    /// The defaults.
    public static let `default` = PreprocessingLimits()
}

/// Checked conversions from outside numbers (YAML, messages) to integers: never traps.
public enum CheckedConversion {
    /// `value` rounded by `rule` as an `Int`, or nil when it is NaN, infinite or outside `Int`'s range.
    /// (`Int(checked:)` of DICOMIO after rounding: one checked conversion in the project.)
    public static func int(_ value: Double, rounding rule: FloatingPointRoundingRule = .toNearestOrEven) -> Int? {
        Int(checked: value.rounded(rule))
    }

    /// The product of `values`, or nil on overflow or a negative factor.
    public static func product(_ values: [Int]) -> Int? {
        var total = 1
        for v in values {
            guard v >= 0 else { return nil }
            let (p, overflow) = total.multipliedReportingOverflow(by: v)
            if overflow { return nil }
            total = p
        }
        return total
    }

    /// A short rendering of an outside value for an error message (long strings cut, so a huge value cannot
    /// make a huge message).
    public static func quoted(_ text: String, limit: Int = 64) -> String {
        text.count <= limit ? "'\(text)'" : "'\(text.prefix(limit))…' (\(text.utf8.count) bytes)"
    }
}

/// The size of a composed YAML document, counted with a budget: anchors and aliases let a few kilobytes of text
/// stand for an exponentially large tree ("billion laughs"), which re-serialising or decoding would walk. Every
/// pipeline and query reader checks its document with this before using it.
public enum YAMLSize {
    /// Nodes a pipeline or query document may have once its aliases are expanded.
    public static let maxNodes = 200_000

    /// Flow collections (`[`, `{`) a document may nest; the YAML parser recurses on them.
    public static let maxFlowDepth = 64

    /// Why `text` must not be parsed (more than `maxBytes` bytes, flow collections nested deeper than
    /// `maxFlowDepth`), or nil. Brackets inside quoted strings count too: a conservative check.
    public static func problem(in text: String, maxBytes: Int) -> String? {
        let bytes = text.utf8.count
        if bytes > maxBytes {
            return "the document is \(bytes) bytes, more than \(maxBytes) (limit max_pipeline_bytes)"
        }
        var depth = 0
        var deepest = 0
        var comment = false
        var previous: UInt8 = 10
        for byte in text.utf8 {
            switch byte {
            case 10: comment = false
            case UInt8(ascii: "#") where previous == 10 || previous == 32 || previous == 9: comment = true
            case UInt8(ascii: "[") where !comment, UInt8(ascii: "{") where !comment:
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]") where !comment, UInt8(ascii: "}") where !comment: depth = max(0, depth - 1)
            default: break
            }
            previous = byte
        }
        return deepest > maxFlowDepth ? "lists or mappings nested \(deepest) deep, more than \(maxFlowDepth)" : nil
    }

    /// Why a pipeline or query document was refused before any reader looked at it: what is wrong, and the parser's
    /// error when it is not valid YAML.
    public struct Refusal: Error {
        public var problem: String
        public var parserError: (any Error)?
        /// True when the text is not YAML at all (the parser failed), false when it is refused for its size.
        public var isSyntax: Bool { parserError != nil }
    }

    /// The one way a pipeline or query document is read: size and nesting checked on the text
    /// (`problem(in:maxBytes:)`), then composed, then its expanded size and duplicate keys checked (`problem(in:)`).
    /// Every reader maps the refusal to its own error type.
    /// - Returns: the document's root node (nil for an empty document).
    public static func compose(_ text: String, maxBytes: Int) throws(Refusal) -> Node? {
        if let problem = problem(in: text, maxBytes: maxBytes) { throw Refusal(problem: problem) }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw Refusal(problem: "not valid YAML", parserError: error)
        }
        if let node, let problem = problem(in: node) { throw Refusal(problem: problem) }
        return node
    }

    /// Why a composed document must not be used, or nil: more than `limit` nodes once its aliases are expanded
    /// (counting stops as soon as it passes), or a key given twice in one mapping (YAML forbids it, and readers
    /// would disagree on which value counts). The path of a duplicate key is named, e.g. `federation.rounds`.
    public static func problem(in node: Node, maxNodes limit: Int = maxNodes) -> String? {
        var budget = limit
        var found: String?
        func walk(_ n: Node, _ path: String) -> Bool {
            budget -= 1
            guard budget >= 0 else {
                found = "more than \(limit) values once its anchors and aliases are expanded"
                return false
            }
            if let mapping = n.mapping {
                var seen = Set<String>()
                for (k, v) in mapping {
                    let name = String((k.string ?? "\(k)").prefix(64))
                    let child = path.isEmpty ? name : path + "." + name
                    guard seen.insert(k.string ?? "\(k)").inserted else {
                        found = "the key `\(child)` is given twice"
                        return false
                    }
                    guard walk(k, child), walk(v, child) else { return false }
                }
            } else if let sequence = n.sequence {
                for (i, item) in sequence.enumerated() { guard walk(item, path + "[\(i)]") else { return false } }
            }
            return true
        }
        return walk(node, "") ? nil : found
    }
}

import Randomness
import DICOMIO
import Foundation
import Yams

/// The `preprocessing:` and `augmentation:` sections of a pipeline YAML (`pipelines/*.yaml`), and the pipelines
/// they build. Other top-level sections (training, federation, ...) are left to their own readers.
///
/// Every key is documented in `pipelines/segmentation-unet2d.yaml`. Unknown keys and bad values are errors
/// (`VolumesError.configuration`) naming the key, e.g. `preprocessing.crop_pad.marign`.
public struct PreprocessingConfiguration: Codable, Sendable, Equatable {
    public var preprocessing: Preprocessing
    public var augmentation: Augmentation?

    public init(preprocessing: Preprocessing = Preprocessing(), augmentation: Augmentation? = nil) {
        self.preprocessing = preprocessing
        self.augmentation = augmentation
    }

    /// Deterministic steps, applied in this order: orientation, spacing, resize, crop_pad, histogram_matching,
    /// window, scale, normalize.
    public struct Preprocessing: Codable, Sendable, Equatable {
        /// `RAS` or `LPS`; absent: keep the acquisition's axes.
        public var orientation: Orientation?
        /// Target spacing [x, y, z] in mm.
        public var spacing: [Double]?
        public var interpolation: Interpolation?
        public var antiAlias: Bool?
        /// Target shape [x, y, z] in voxels (after spacing).
        public var resize: [Int]?
        public var cropPad: CropPadOptions?
        public var histogramMatching: ReferenceHistogram?
        public var window: WindowOption?
        public var scale: IntensityRange?
        public var normalize: NormalizeOptions?

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case orientation, spacing, interpolation, antiAlias = "anti_alias", resize, cropPad = "crop_pad"
            case histogramMatching = "histogram_matching", window, scale, normalize
        }
    }

    public struct CropPadOptions: Codable, Sendable, Equatable {
        /// `centre`, `foreground` or `label`.
        public var mode: String
        public var shape: [Int]?
        public var margin: [Int]?
        /// Foreground threshold (image units) for `mode: foreground`.
        public var threshold: Float?
        /// The label value for `mode: label` (any non-zero when absent).
        public var label: UInt8?
        /// Padding value for the image (its minimum when absent).
        public var fill: Float?

        enum CodingKeys: String, CodingKey, CaseIterable { case mode, shape, margin, threshold, label, fill }
    }

    /// `soft_tissue`, `lung`, `bone`, or `{min: HU, max: HU}`, or `{width: HU, level: HU}`.
    public struct WindowOption: Codable, Sendable, Equatable {
        public var window: Window
        public var preset: String?

        public init(from decoder: any Decoder) throws {
            if let single = try? decoder.singleValueContainer(), let name = try? single.decode(String.self) {
                let presets = ["soft_tissue": Window.softTissue, "lung": .lung, "bone": .bone]
                guard let window = presets[name] else {
                    throw DecodingError.dataCorruptedError(
                        in: single, debugDescription: "unknown window preset '\(name)'; use soft_tissue, lung, bone, "
                            + "{min: HU, max: HU} or {width: HU, level: HU}")
                }
                self.window = window
                preset = name
                return
            }
            let keyed = try decoder.container(keyedBy: Keys.self)
            if let width = try keyed.decodeIfPresent(Double.self, forKey: .width) {
                window = Window(width: width, level: try keyed.decode(Double.self, forKey: .level))
            } else {
                window = Window(minimum: try keyed.decode(Double.self, forKey: .min),
                                maximum: try keyed.decode(Double.self, forKey: .max))
            }
            preset = nil
        }

        public func encode(to encoder: any Encoder) throws {
            if let preset {
                var single = encoder.singleValueContainer()
                try single.encode(preset)
            } else {
                var keyed = encoder.container(keyedBy: Keys.self)
                try keyed.encode(window.minimum, forKey: .min)
                try keyed.encode(window.maximum, forKey: .max)
            }
        }

        enum Keys: String, CodingKey { case min, max, width, level }
    }

    public struct NormalizeOptions: Codable, Sendable, Equatable {
        /// `zscore` or `percentile`.
        public var method: String
        /// z-score mask: `all`, `label`, or a number (image threshold).
        public var mask: String?
        /// Percentiles [lower, upper] for `percentile` (default [0.5, 99.5]).
        public var percentiles: [Double]?
        /// Output range for `percentile`: `unit` or `symmetric`.
        public var range: IntensityRange?

        enum CodingKeys: String, CodingKey, CaseIterable { case method, mask, percentiles, range }
    }

    public struct Augmentation: Codable, Sendable, Equatable {
        /// Seeds every transform's generator (each gets its own, derived in a fixed order).
        public var seed: UInt64
        public var flip: Flip?
        public var rotate90: Rotate90?
        public var affine: Affine?
        public var elastic: Elastic?
        public var intensity: Intensity?
        public var noise: Noise?
        public var gamma: Gamma?
        public var randomCrop: Crop?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case seed, flip, rotate90, affine, elastic, intensity, noise, gamma, randomCrop = "random_crop"
        }

        public struct Flip: Codable, Sendable, Equatable {
            public var probability: Double
            public var axes: [Axis]?
        }
        public struct Rotate90: Codable, Sendable, Equatable {
            public var probability: Double
            public var plane: [Axis]?
        }
        public struct Affine: Codable, Sendable, Equatable {
            public var probability: Double
            public var rotationDegrees: [Double]?
            public var scale: [Double]?
            public var translationMM: [Double]?
            public var padding: Float?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case probability, rotationDegrees = "rotation_degrees", scale, translationMM = "translation_mm", padding
            }
        }
        public struct Elastic: Codable, Sendable, Equatable {
            public var probability: Double
            public var controlPoints: [Int]?
            public var magnitudeMM: Double?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case probability, controlPoints = "control_points", magnitudeMM = "magnitude_mm"
            }
        }
        public struct Intensity: Codable, Sendable, Equatable {
            public var probability: Double
            public var shift: Double?
            public var scale: Double?
        }
        public struct Noise: Codable, Sendable, Equatable {
            public var probability: Double
            public var std: Double
        }
        public struct Gamma: Codable, Sendable, Equatable {
            public var probability: Double
            public var range: [Double]?
        }
        public struct Crop: Codable, Sendable, Equatable {
            public var shape: [Int]
            public var positive: Double?
            public var negative: Double?
        }
    }
}

// MARK: - Loading

extension PreprocessingConfiguration {
    /// The keys each section accepts (nested mappings by path). Anything else is an error naming the key.
    static let schema: [String: Set<String>] = [
        "preprocessing": Set(Preprocessing.CodingKeys.allCases.map(\.rawValue)),
        "preprocessing.crop_pad": Set(CropPadOptions.CodingKeys.allCases.map(\.rawValue)),
        "preprocessing.window": ["min", "max", "width", "level"],
        "preprocessing.normalize": Set(NormalizeOptions.CodingKeys.allCases.map(\.rawValue)),
        "preprocessing.histogram_matching": ["probabilities", "values"],
        "augmentation": Set(Augmentation.CodingKeys.allCases.map(\.rawValue)),
        "augmentation.flip": ["probability", "axes"],
        "augmentation.rotate90": ["probability", "plane"],
        "augmentation.affine": Set(Augmentation.Affine.CodingKeys.allCases.map(\.rawValue)),
        "augmentation.elastic": Set(Augmentation.Elastic.CodingKeys.allCases.map(\.rawValue)),
        "augmentation.intensity": ["probability", "shift", "scale"],
        "augmentation.noise": ["probability", "std"],
        "augmentation.gamma": ["probability", "range"],
        "augmentation.random_crop": ["shape", "positive", "negative"],
    ]

    /// Parses the two sections of a pipeline YAML document (other top-level keys are ignored).
    /// - Throws: `.configuration` naming the key for YAML syntax errors, unknown keys, wrong types and bad values.
    public init(yaml: String) throws(VolumesError) {
        let node: Node?
        do { node = try Yams.compose(yaml: yaml) } catch {
            throw VolumesError(.configuration, transform: "pipeline YAML", "not valid YAML: \(error)")
        }
        guard let root = node?.mapping else {
            throw VolumesError(.configuration, transform: "pipeline YAML",
                               "expected a mapping with `preprocessing:` (and optionally `augmentation:`) at the top")
        }
        var sections = Node.Mapping([])
        for (key, value) in root where ["preprocessing", "augmentation"].contains(key.string ?? "") {
            sections[key] = value
        }
        guard sections["preprocessing"] != nil else {
            throw VolumesError(.configuration, transform: "preprocessing", "the `preprocessing:` section is missing")
        }
        try Self.checkKeys(Node.mapping(sections), path: "")
        do {
            // Only the two sections are decoded: other sections belong to other readers.
            let text = try Yams.serialize(node: Node.mapping(sections))
            self = try YAMLDecoder().decode(PreprocessingConfiguration.self, from: text)
        } catch let error as DecodingError {
            throw Self.describe(error)
        } catch {
            throw VolumesError(.configuration, transform: "pipeline YAML", "\(error)")
        }
        try validate()
    }

    /// Reads `path` and parses it as `init(yaml:)` does.
    public init(contentsOf path: String) throws(VolumesError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw VolumesError(.configuration, transform: path, "cannot read the pipeline file")
        }
        try self.init(yaml: String(decoding: data, as: UTF8.self))
    }

    static func checkKeys(_ node: Node, path: String) throws(VolumesError) {
        guard let mapping = node.mapping else { return }
        for (key, value) in mapping {
            let name = key.string ?? "\(key)"
            let child = path.isEmpty ? name : path + "." + name
            if let allowed = path.isEmpty ? Set(["preprocessing", "augmentation"]) : schema[path],
               !allowed.contains(name) {
                throw VolumesError(.configuration, transform: child,
                                   "unknown key `\(name)`; \(path.isEmpty ? "top level" : path) accepts: "
                                       + allowed.sorted().joined(separator: ", "))
            }
            if schema[child] != nil { try checkKeys(value, path: child) }
        }
    }

    static func describe(_ error: DecodingError) -> VolumesError {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
                .replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .typeMismatch(let type, let context):
            return VolumesError(.configuration, transform: path(context.codingPath),
                                "expected \(type): \(context.debugDescription)", cause: error)
        case .valueNotFound(let type, let context):
            return VolumesError(.configuration, transform: path(context.codingPath), "missing \(type) value",
                                cause: error)
        case .keyNotFound(let key, let context):
            return VolumesError(.configuration, transform: path(context.codingPath + [key]),
                                "required key `\(key.stringValue)` is missing", cause: error)
        case .dataCorrupted(let context):
            return VolumesError(.configuration, transform: path(context.codingPath), context.debugDescription,
                                cause: error)
        @unknown default:
            return VolumesError(.configuration, transform: "pipeline YAML", "\(error)", cause: error)
        }
    }

    /// Checks values the types cannot: lengths, ranges, windows.
    public func validate() throws(VolumesError) {
        func fail(_ key: String, _ message: String) -> VolumesError {
            VolumesError(.configuration, transform: key, message)
        }
        let p = preprocessing
        if let s = p.spacing, s.count != 3 || s.contains(where: { !($0 > 0 && $0.isFinite) }) {
            throw fail("preprocessing.spacing", "\(s): give three positive spacings in mm, [x, y, z]")
        }
        if let r = p.resize, r.count != 3 || r.contains(where: { $0 < 1 }) {
            throw fail("preprocessing.resize", "\(r): give three positive voxel counts, [x, y, z]")
        }
        if let c = p.cropPad {
            guard ["centre", "center", "foreground", "label"].contains(c.mode) else {
                throw fail("preprocessing.crop_pad.mode", "'\(c.mode)': use centre, foreground or label")
            }
            if let s = c.shape, s.count != 3 || s.contains(where: { $0 < 1 }) {
                throw fail("preprocessing.crop_pad.shape", "\(s): give three positive voxel counts")
            }
            if let m = c.margin, m.count != 3 || m.contains(where: { $0 < 0 }) {
                throw fail("preprocessing.crop_pad.margin", "\(m): give three voxel counts ≥ 0")
            }
            if c.mode == "foreground" && c.threshold == nil {
                throw fail("preprocessing.crop_pad.threshold", "mode foreground needs a threshold (image units)")
            }
        }
        if let w = p.window?.window, !(w.minimum < w.maximum) || !w.minimum.isFinite || !w.maximum.isFinite {
            throw fail("preprocessing.window", "[\(w.minimum), \(w.maximum)] HU: min must be below max")
        }
        if let h = p.histogramMatching {
            do { try h.validate(for: "preprocessing.histogram_matching") } catch {
                throw fail(error.transform, error.message)
            }
        }
        if let n = p.normalize {
            guard ["zscore", "percentile"].contains(n.method) else {
                throw fail("preprocessing.normalize.method", "'\(n.method)': use zscore or percentile")
            }
            if let m = n.mask, !["all", "label"].contains(m), Float(m) == nil {
                throw fail("preprocessing.normalize.mask", "'\(m)': use all, label or a threshold number")
            }
            if let q = n.percentiles, q.count != 2 || !(q[0] >= 0 && q[0] < q[1] && q[1] <= 100) {
                throw fail("preprocessing.normalize.percentiles",
                           "\(q): give [lower, upper] with 0 ≤ lower < upper ≤ 100")
            }
        }
        guard let a = augmentation else { return }
        let probabilities: [(String, Double?)] = [
            ("flip", a.flip?.probability), ("rotate90", a.rotate90?.probability), ("affine", a.affine?.probability),
            ("elastic", a.elastic?.probability), ("intensity", a.intensity?.probability),
            ("noise", a.noise?.probability), ("gamma", a.gamma?.probability),
        ]
        for (name, value) in probabilities {
            if let value, !(0...1).contains(value) {
                throw fail("augmentation.\(name).probability", "\(value): a probability is in [0, 1]")
            }
        }
        func triple(_ v: [Double]?, _ key: String) throws(VolumesError) {
            if let v, v.count != 3 || v.contains(where: { !($0 >= 0 && $0.isFinite) }) {
                throw fail(key, "\(v): give three values ≥ 0, [x, y, z]")
            }
        }
        func range(_ v: [Double]?, _ key: String) throws(VolumesError) {
            if let v, v.count != 2 || !(v[0] > 0 && v[0] <= v[1] && v[1].isFinite) {
                throw fail(key, "\(v): give [low, high] with 0 < low ≤ high")
            }
        }
        try triple(a.affine?.rotationDegrees, "augmentation.affine.rotation_degrees")
        try triple(a.affine?.translationMM, "augmentation.affine.translation_mm")
        try range(a.affine?.scale, "augmentation.affine.scale")
        try range(a.gamma?.range, "augmentation.gamma.range")
        if let c = a.elastic?.controlPoints, c.count != 3 || c.contains(where: { $0 < 3 }) {
            throw fail("augmentation.elastic.control_points", "\(c): give three counts ≥ 3")
        }
        if let m = a.elastic?.magnitudeMM, !(m >= 0 && m.isFinite) {
            throw fail("augmentation.elastic.magnitude_mm", "\(m): a standard deviation in mm ≥ 0")
        }
        if let s = a.noise?.std, !(s >= 0 && s.isFinite) { throw fail("augmentation.noise.std", "\(s): must be ≥ 0") }
        if let p = a.rotate90?.plane, p.count != 2 || p[0] == p[1] {
            throw fail("augmentation.rotate90.plane", "\(p): give two different axes, e.g. [x, y]")
        }
        if let c = a.randomCrop {
            if c.shape.count != 3 || c.shape.contains(where: { $0 < 1 }) {
                throw fail("augmentation.random_crop.shape", "\(c.shape): give three positive voxel counts")
            }
            if (c.positive ?? 1) < 0 || (c.negative ?? 1) < 0 || (c.positive ?? 1) + (c.negative ?? 1) <= 0 {
                throw fail("augmentation.random_crop", "positive and negative ratios must be ≥ 0, not both 0")
            }
        }
    }
}

// MARK: - Building pipelines

extension PreprocessingConfiguration {
    /// The deterministic pipeline of the `preprocessing:` section (invertible spatial steps are recorded).
    public func preprocessingPipeline() -> VolumePipeline {
        let p = preprocessing
        var steps: [any VolumeTransform] = []
        let interpolation = p.interpolation ?? .linear
        let antiAlias = p.antiAlias ?? true
        if let o = p.orientation { steps.append(Reorient(to: o)) }
        if let s = p.spacing, s.count == 3 {
            steps.append(Resample(spacing: Vector3(s[0], s[1], s[2]), interpolation: interpolation,
                                  antiAlias: antiAlias))
        }
        if let r = p.resize, r.count == 3 {
            steps.append(Resize(shape: SIMD3(r[0], r[1], r[2]), interpolation: interpolation, antiAlias: antiAlias))
        }
        if let c = p.cropPad {
            let region: CropPad.Region = c.mode == "foreground" ? .foreground(threshold: c.threshold ?? 0)
                : c.mode == "label" ? .label(c.label) : .centre
            let margin = c.margin.map { SIMD3($0[0], $0[1], $0[2]) } ?? .zero
            steps.append(CropPad(region: region, margin: margin, shape: c.shape.map { SIMD3($0[0], $0[1], $0[2]) },
                                 imageFill: c.fill))
        }
        if let h = p.histogramMatching { steps.append(HistogramMatch(reference: h)) }
        if let w = p.window { steps.append(WindowClip(w.window)) }
        if let s = p.scale { steps.append(ScaleIntensity(to: s, from: p.window?.window)) }
        if let n = p.normalize {
            if n.method == "percentile" {
                let q = n.percentiles ?? [0.5, 99.5]
                steps.append(PercentileNormalize(lower: q[0], upper: q[1], to: n.range ?? .unit))
            } else {
                let mask: IntensityMask = n.mask == "label" ? .label : n.mask.flatMap(Float.init).map { .threshold($0) }
                    ?? .all
                steps.append(ZScore(mask: mask))
            }
        }
        return VolumePipeline(steps)
    }

    /// The random pipeline of the `augmentation:` section (empty without one). Each transform's seed is drawn
    /// from `seed` in a fixed order, so enabling one transform does not change the others' streams.
    public func augmentationPipeline() -> VolumePipeline {
        guard let a = augmentation else { return VolumePipeline() }
        var seeds = SplitMix64(seed: a.seed)
        let s = (0..<8).map { _ in seeds.next() }
        var steps: [any VolumeTransform] = []
        if let f = a.flip {
            steps.append(RandomFlip(axes: f.axes ?? [.x, .y, .z], probability: f.probability, seed: s[0]))
        }
        if let r = a.rotate90 {
            let plane = r.plane ?? [.x, .y]
            steps.append(RandomRotate90(plane: (plane[0], plane[1]), probability: r.probability, seed: s[1]))
        }
        if let f = a.affine {
            let degrees = f.rotationDegrees ?? [0, 0, 15], shift = f.translationMM ?? [5, 5, 5]
            let scale = f.scale ?? [0.9, 1.1]
            steps.append(RandomAffine(rotation: Vector3(degrees[0], degrees[1], degrees[2]) * (.pi / 180),
                                      scale: scale[0]...scale[1], translation: Vector3(shift[0], shift[1], shift[2]),
                                      probability: f.probability, padding: f.padding ?? -1000, seed: s[2]))
        }
        if let e = a.elastic {
            let c = e.controlPoints ?? [5, 5, 5]
            steps.append(ElasticDeformation(controlPoints: SIMD3(c[0], c[1], c[2]), magnitude: e.magnitudeMM ?? 3,
                                            probability: e.probability, seed: s[3]))
        }
        if let i = a.intensity {
            steps.append(RandomIntensityShiftScale(shift: i.shift ?? 0.1, scale: i.scale ?? 0.1,
                                                   probability: i.probability, seed: s[4]))
        }
        if let n = a.noise {
            steps.append(RandomGaussianNoise(standardDeviation: n.std, probability: n.probability, seed: s[5]))
        }
        if let g = a.gamma {
            let range = g.range ?? [0.7, 1.5]
            steps.append(RandomGamma(gamma: range[0]...range[1], probability: g.probability, seed: s[6]))
        }
        if let c = a.randomCrop {
            steps.append(RandomCrop(shape: SIMD3(c.shape[0], c.shape[1], c.shape[2]), positive: c.positive ?? 1,
                                    negative: c.negative ?? 1, seed: s[7]))
        }
        return VolumePipeline(steps)
    }
}

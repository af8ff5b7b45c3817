import DICOMIO
import Foundation
import Randomness
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
            case orientation, spacing, interpolation
            case antiAlias = "anti_alias"
            case resize
            case cropPad = "crop_pad"
            case histogramMatching = "histogram_matching"
            case window, scale, normalize
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
                        in: single,
                        debugDescription: "unknown window preset '\(name)'; use soft_tissue, lung, bone, "
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
                window = Window(
                    minimum: try keyed.decode(Double.self, forKey: .min),
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
            case seed, flip, rotate90, affine, elastic, intensity, noise, gamma
            case randomCrop = "random_crop"
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
                case probability
                case rotationDegrees = "rotation_degrees"
                case scale
                case translationMM = "translation_mm"
                case padding
            }
        }
        public struct Elastic: Codable, Sendable, Equatable {
            public var probability: Double
            public var controlPoints: [Int]?
            public var magnitudeMM: Double?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case probability
                case controlPoints = "control_points"
                case magnitudeMM = "magnitude_mm"
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
    public init(yaml: String, limits: PreprocessingLimits = .default) throws(VolumesError) {
        let node: Node?
        do { node = try YAMLSize.compose(yaml, maxBytes: limits.maxPipelineBytes) } catch {
            let detail = error.parserError.map { ": \($0)" } ?? ""
            throw VolumesError(.configuration, transform: "pipeline YAML", error.problem + detail)
        }
        guard let root = node?.mapping else {
            throw VolumesError(
                .configuration, transform: "pipeline YAML",
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
        try validate(limits: limits)
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
            let full = key.string ?? "\(key)"
            // A key is echoed in the error: cut a huge one.
            let name = full.count <= 64 ? full : String(full.prefix(64)) + "…"
            let child = path.isEmpty ? name : path + "." + name
            if let allowed = path.isEmpty ? Set(["preprocessing", "augmentation"]) : schema[path],
                !allowed.contains(full)
            {
                throw VolumesError(
                    .configuration, transform: child,
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
            return VolumesError(
                .configuration, transform: path(context.codingPath),
                "expected \(type): \(context.debugDescription.prefix(200))", cause: error)
        case .valueNotFound(let type, let context):
            return VolumesError(
                .configuration, transform: path(context.codingPath), "missing \(type) value",
                cause: error)
        case .keyNotFound(let key, let context):
            return VolumesError(
                .configuration, transform: path(context.codingPath + [key]),
                "required key `\(key.stringValue)` is missing", cause: error)
        case .dataCorrupted(let context):
            return VolumesError(
                .configuration, transform: path(context.codingPath),
                String(context.debugDescription.prefix(200)),
                cause: error)
        @unknown default:
            return VolumesError(.configuration, transform: "pipeline YAML", "\(error)", cause: error)
        }
    }

    /// Checks values the types cannot (lengths, ranges, windows) and every size against `limits`, before anything
    /// is allocated.
    /// - Throws: `.configuration` naming the key (e.g. `preprocessing.resize[0]`), the value and the limit.
    public func validate(limits: PreprocessingLimits = .default) throws(VolumesError) {
        func fail(_ key: String, _ message: String) -> VolumesError {
            VolumesError(.configuration, transform: key, message)
        }
        func brief<T>(_ list: [T]) -> String {
            list.count <= 8 ? "\(list)" : "a list of \(list.count) values"
        }
        /// Three voxel counts in 1...maxAxisVoxels whose product is at most maxVoxelsPerVolume.
        func shape(_ s: [Int]?, _ key: String) throws(VolumesError) {
            guard let s else { return }
            guard s.count == 3 else { throw fail(key, "\(brief(s)): give three positive voxel counts, [x, y, z]") }
            for (i, n) in s.enumerated() where !(1...limits.maxAxisVoxels).contains(n) {
                throw fail(
                    "\(key)[\(i)]",
                    "\(n) voxels: must be in 1...\(limits.maxAxisVoxels) (limit "
                        + "max_axis_voxels)")
            }
            guard let total = CheckedConversion.product(s), total <= limits.maxVoxelsPerVolume else {
                throw fail(key, "\(s) is more than \(limits.maxVoxelsPerVolume) voxels (limit max_voxels_per_volume)")
            }
        }
        func finite(_ v: Double?, _ key: String, magnitude: Double) throws(VolumesError) {
            if let v, !(v.isFinite && abs(v) <= magnitude) {
                throw fail(key, "\(v): must be a finite number of magnitude at most \(magnitude)")
            }
        }
        let intensity = limits.maxIntensityMagnitude
        let p = preprocessing
        if let s = p.spacing {
            guard s.count == 3 else { throw fail("preprocessing.spacing", "\(brief(s)): give three spacings in mm") }
            for (i, v) in s.enumerated() where !(v >= limits.minSpacingMM && v <= limits.maxSpacingMM) {
                throw fail(
                    "preprocessing.spacing[\(i)]",
                    "\(v) mm: must be in \(limits.minSpacingMM)..."
                        + "\(limits.maxSpacingMM) mm (limits min_spacing_mm, max_spacing_mm)")
            }
        }
        try shape(p.resize, "preprocessing.resize")
        if let c = p.cropPad {
            guard ["centre", "center", "foreground", "label"].contains(c.mode) else {
                throw fail(
                    "preprocessing.crop_pad.mode",
                    "\(CheckedConversion.quoted(c.mode)): use centre, foreground or label")
            }
            try shape(c.shape, "preprocessing.crop_pad.shape")
            if let m = c.margin {
                guard m.count == 3 else {
                    throw fail("preprocessing.crop_pad.margin", "\(brief(m)): give three voxel counts ≥ 0")
                }
                for (i, n) in m.enumerated() where !(0...limits.maxMarginVoxels).contains(n) {
                    throw fail(
                        "preprocessing.crop_pad.margin[\(i)]",
                        "\(n): must be in 0...\(limits.maxMarginVoxels) "
                            + "voxels (limit max_margin_voxels)")
                }
            }
            if c.mode == "foreground" && c.threshold == nil {
                throw fail("preprocessing.crop_pad.threshold", "mode foreground needs a threshold (image units)")
            }
            try finite(c.threshold.map(Double.init), "preprocessing.crop_pad.threshold", magnitude: intensity)
            try finite(c.fill.map(Double.init), "preprocessing.crop_pad.fill", magnitude: intensity)
        }
        if let w = p.window?.window {
            guard w.minimum.isFinite, w.maximum.isFinite, w.minimum < w.maximum else {
                throw fail("preprocessing.window", "[\(w.minimum), \(w.maximum)] HU: min must be below max")
            }
            try finite(w.minimum, "preprocessing.window.min", magnitude: intensity)
            try finite(w.maximum, "preprocessing.window.max", magnitude: intensity)
        }
        if let h = p.histogramMatching {
            let key = "preprocessing.histogram_matching"
            for (name, list) in [("probabilities", h.probabilities), ("values", h.values)]
            where list.count > limits.maxHistogramLandmarks {
                throw fail(
                    "\(key).\(name)",
                    "\(list.count) landmarks: at most \(limits.maxHistogramLandmarks) "
                        + "(limit max_histogram_landmarks)")
            }
            for (i, v) in h.values.enumerated() { try finite(v, "\(key).values[\(i)]", magnitude: intensity) }
            do { try h.validate(for: key) } catch { throw fail(error.transform, error.message) }
        }
        if let n = p.normalize {
            guard ["zscore", "percentile"].contains(n.method) else {
                throw fail(
                    "preprocessing.normalize.method",
                    "\(CheckedConversion.quoted(n.method)): use zscore or percentile")
            }
            if let m = n.mask, !["all", "label"].contains(m) {
                guard let t = Double(m), t.isFinite, abs(t) <= intensity else {
                    throw fail(
                        "preprocessing.normalize.mask",
                        "\(CheckedConversion.quoted(m)): use all, label or a finite threshold number")
                }
            }
            if let q = n.percentiles, q.count != 2 || !(q[0] >= 0 && q[0] < q[1] && q[1] <= 100) {
                throw fail(
                    "preprocessing.normalize.percentiles",
                    "\(brief(q)): give [lower, upper] with 0 ≤ lower < upper ≤ 100")
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
        func triple(_ v: [Double]?, _ key: String, maximum: Double) throws(VolumesError) {
            guard let v else { return }
            guard v.count == 3 else { throw fail(key, "\(brief(v)): give three values ≥ 0, [x, y, z]") }
            for (i, x) in v.enumerated() where !(x >= 0 && x <= maximum) {
                throw fail("\(key)[\(i)]", "\(x): must be in 0...\(maximum)")
            }
        }
        func range(_ v: [Double]?, _ key: String) throws(VolumesError) {
            if let v, v.count != 2 || !(v[0] >= limits.minFactor && v[0] <= v[1] && v[1] <= limits.maxFactor) {
                throw fail(
                    key,
                    "\(brief(v)): give [low, high] with \(limits.minFactor) ≤ low ≤ high ≤ "
                        + "\(limits.maxFactor) (limits min_factor, max_factor)")
            }
        }
        if let axes = a.flip?.axes, axes.count > 3 || Set(axes).count != axes.count {
            throw fail("augmentation.flip.axes", "\(brief(axes)): give distinct axes among x, y, z")
        }
        try triple(a.affine?.rotationDegrees, "augmentation.affine.rotation_degrees", maximum: 180)
        try triple(a.affine?.translationMM, "augmentation.affine.translation_mm", maximum: limits.maxDisplacementMM)
        try range(a.affine?.scale, "augmentation.affine.scale")
        try finite(a.affine?.padding.map(Double.init), "augmentation.affine.padding", magnitude: intensity)
        try range(a.gamma?.range, "augmentation.gamma.range")
        if let c = a.elastic?.controlPoints {
            guard c.count == 3 else {
                throw fail("augmentation.elastic.control_points", "\(brief(c)): give three counts")
            }
            for (i, n) in c.enumerated() where !(3...limits.maxControlPoints).contains(n) {
                throw fail(
                    "augmentation.elastic.control_points[\(i)]",
                    "\(n): must be in 3...\(limits.maxControlPoints) (limit max_control_points)")
            }
        }
        if let m = a.elastic?.magnitudeMM, !(m >= 0 && m <= limits.maxDisplacementMM) {
            throw fail(
                "augmentation.elastic.magnitude_mm",
                "\(m): a standard deviation in mm in 0..."
                    + "\(limits.maxDisplacementMM) (limit max_displacement_mm)")
        }
        let augmentationMagnitude = limits.maxIntensityAugmentation
        let magnitudes = [
            ("augmentation.intensity.shift", a.intensity?.shift),
            ("augmentation.intensity.scale", a.intensity?.scale),
            ("augmentation.noise.std", a.noise?.std),
        ]
        for (key, value) in magnitudes {
            if let value, !(value >= 0 && value <= augmentationMagnitude) {
                throw fail(key, "\(value): must be in 0...\(augmentationMagnitude) (limit max_intensity_augmentation)")
            }
        }
        if let p = a.rotate90?.plane, p.count != 2 || p[0] == p[1] {
            throw fail("augmentation.rotate90.plane", "\(brief(p)): give two different axes, e.g. [x, y]")
        }
        if let c = a.randomCrop {
            try shape(c.shape, "augmentation.random_crop.shape")
            for (key, value) in [("positive", c.positive), ("negative", c.negative)] {
                if let value, !(value >= 0 && value <= 1e6) {
                    throw fail("augmentation.random_crop.\(key)", "\(value): a ratio in 0...1e6")
                }
            }
            if (c.positive ?? 1) + (c.negative ?? 1) <= 0 {
                throw fail("augmentation.random_crop", "positive and negative ratios must be ≥ 0, not both 0")
            }
        }
    }
}

// MARK: - Building pipelines

extension PreprocessingConfiguration {
    /// The deterministic pipeline of the `preprocessing:` section (invertible spatial steps are recorded).
    /// - Parameter limits: a resample whose output grid would pass `maxVoxelsPerVolume` or `maxAxisVoxels` (it
    ///   depends on the input volume) throws instead of allocating.
    public func preprocessingPipeline(limits: PreprocessingLimits = .default) -> VolumePipeline {
        let p = preprocessing
        var steps: [any VolumeTransform] = []
        let interpolation = p.interpolation ?? .linear
        let antiAlias = p.antiAlias ?? true
        if let o = p.orientation { steps.append(Reorient(to: o)) }
        if let s = p.spacing, s.count == 3 {
            var resample = Resample(
                spacing: Vector3(s[0], s[1], s[2]), interpolation: interpolation,
                antiAlias: antiAlias)
            resample.maxVoxels = limits.maxVoxelsPerVolume
            resample.maxAxisVoxels = limits.maxAxisVoxels
            steps.append(resample)
        }
        if let r = p.resize, r.count == 3 {
            steps.append(Resize(shape: SIMD3(r[0], r[1], r[2]), interpolation: interpolation, antiAlias: antiAlias))
        }
        if let c = p.cropPad {
            let region: CropPad.Region =
                c.mode == "foreground"
                ? .foreground(threshold: c.threshold ?? 0)
                : c.mode == "label" ? .label(c.label) : .centre
            let margin = c.margin.map { SIMD3($0[0], $0[1], $0[2]) } ?? .zero
            steps.append(
                CropPad(
                    region: region, margin: margin, shape: c.shape.map { SIMD3($0[0], $0[1], $0[2]) },
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
                let mask: IntensityMask =
                    n.mask == "label"
                    ? .label
                    : n.mask.flatMap(Float.init).map { .threshold($0) }
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
            let degrees = f.rotationDegrees ?? [0, 0, 15]
            let shift = f.translationMM ?? [5, 5, 5]
            let scale = f.scale ?? [0.9, 1.1]
            steps.append(
                RandomAffine(
                    rotation: Vector3(degrees[0], degrees[1], degrees[2]) * (.pi / 180),
                    scale: scale[0]...scale[1], translation: Vector3(shift[0], shift[1], shift[2]),
                    probability: f.probability, padding: f.padding ?? -1000, seed: s[2]))
        }
        if let e = a.elastic {
            let c = e.controlPoints ?? [5, 5, 5]
            steps.append(
                ElasticDeformation(
                    controlPoints: SIMD3(c[0], c[1], c[2]), magnitude: e.magnitudeMM ?? 3,
                    probability: e.probability, seed: s[3]))
        }
        if let i = a.intensity {
            steps.append(
                RandomIntensityShiftScale(
                    shift: i.shift ?? 0.1, scale: i.scale ?? 0.1,
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
            steps.append(
                RandomCrop(
                    shape: SIMD3(c.shape[0], c.shape[1], c.shape[2]), positive: c.positive ?? 1,
                    negative: c.negative ?? 1, seed: s[7]))
        }
        return VolumePipeline(steps)
    }
}

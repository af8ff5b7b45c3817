import DICOMIO
import Foundation
import Volumes
import Yams

/// The input channels of a multi-series pipeline (`model.input_channels`): which series of a study feeds which
/// tensor channel, and how each channel's intensities are prepared.
///
/// Each study must hold exactly one series per channel. The first channel is the **reference**: its series carries
/// the labels (DICOM SEG, RT Structure Set or NIfTI label map) and the pipeline's spatial steps (orientation,
/// spacing, resize, crop_pad) run on it. Every other channel's series is resampled once, through patient
/// coordinates, from its own grid straight onto the reference's grid after those steps (trilinear, anti-aliased as
/// `preprocessing.interpolation` and `anti_alias` say; outside its own field of view a channel reads its minimum
/// value, e.g. air). Then each channel gets the intensity steps (histogram_matching, window, scale, normalize):
/// the `preprocessing:` section's, or, when the channel has an `intensity:` mapping, those it gives (absent ones
/// off). Channels are stacked in the order listed: tensors `[batch, channels, (depth,) height, width]`.
///
/// ```yaml
/// model:
///   input_channels:
///     - {name: ct_venous, modality: CT, series_description: "*venous*"}   # reference grid, labels
///     - name: ct_arterial
///       modality: CT
///       series_description: "*arterial*"
///       intensity: {window: {min: -100, max: 400}, scale: unit}
///     - {name: t2, tag: "0018,0024", tag_value: "*T2*"}                  # (0018,0024) Sequence Name
/// ```
///
/// Limits: 1...`PipelineLimits.maxInputChannels` (8) channels; names 1...64 characters of letters, digits, `_`,
/// `-` and `.`, unique; `series_description` and `tag_value` patterns at most 128 characters; every channel needs
/// at least one criterion. A study missing a channel is skipped and reported; two series matching one channel, or
/// one series matching two channels, is an error.
public struct InputChannels: Sendable, Equatable {
    /// One channel: what selects its series, and its intensity steps.
    public struct Channel: Sendable, Equatable {
        public var name: String
        /// (0008,0060) Modality, exact.
        public var modality: String?
        /// Pattern on (0008,103E) Series Description: `*` any run, `?` one character, case-insensitive, whole text.
        public var seriesDescription: String?
        /// Any attribute of the series' first image and a pattern (as `seriesDescription`) its text must match.
        public var tag: (tag: DICOMTag, pattern: String)?
        /// The channel's own intensity steps (`intensity:`); nil: the `preprocessing:` section's.
        public var intensity: PreprocessingConfiguration?

        public init(
            name: String, modality: String? = nil, seriesDescription: String? = nil,
            tag: (tag: DICOMTag, pattern: String)? = nil, intensity: PreprocessingConfiguration? = nil
        ) {
            self.name = name
            self.modality = modality
            self.seriesDescription = seriesDescription
            self.tag = tag
            self.intensity = intensity
        }

        public static func == (a: Channel, b: Channel) -> Bool {
            a.name == b.name && a.modality == b.modality && a.seriesDescription == b.seriesDescription
                && a.tag?.tag == b.tag?.tag && a.tag?.pattern == b.tag?.pattern && a.intensity == b.intensity
        }

        /// True when `series` meets every criterion; `readTag` reads an attribute of a file (the first image).
        public func matches(
            _ series: DICOMSeries, readTag: (String, DICOMTag) throws(DICOMError) -> String?
        ) throws(TrainingError) -> Bool {
            let selector = SeriesSelector(modality: modality, description: seriesDescription, orientation: .any)
            guard selector.matches(series) else { return false }
            guard let tag else { return true }
            guard let first = series.instances.first else { return false }
            let value: String?
            do { value = try readTag(first.path, tag.tag) } catch {
                throw TrainingError(
                    .data, "cannot read \(tag.tag) of \(first.path): \(error.message)", cause: error.description)
            }
            return SeriesSelector.glob(tag.pattern, matches: value?.trimmingCharacters(in: .whitespaces) ?? "")
        }

        /// The intensity steps of this channel: `intensity` when given, else `preprocessing`'s.
        public func intensitySteps(_ preprocessing: PreprocessingConfiguration) -> PreprocessingConfiguration {
            var steps = intensity ?? preprocessing
            steps.augmentation = nil
            steps.preprocessing = Self.intensityOnly(steps.preprocessing)
            return steps
        }

        /// `p` without its spatial steps (orientation, spacing, resize, crop_pad).
        static func intensityOnly(_ p: PreprocessingConfiguration.Preprocessing)
            -> PreprocessingConfiguration.Preprocessing
        {
            var out = p
            out.orientation = nil
            out.spacing = nil
            out.resize = nil
            out.cropPad = nil
            return out
        }
    }

    public static let maxNameLength = 64
    public static let maxPatternLength = 128
    /// Keys of one channel.
    static let channelKeys: Set<String> = ["name", "modality", "series_description", "tag", "tag_value", "intensity"]
    /// Keys of a channel's `intensity:` (the intensity steps of `preprocessing:`).
    static let intensityKeys: Set<String> = ["histogram_matching", "window", "scale", "normalize"]

    public var channels: [Channel]

    /// - Throws: `.configuration` for no channel, more than `maxChannels`, or repeated names.
    public init(channels: [Channel], maxChannels: Int = PipelineLimits().maxInputChannels) throws(TrainingError) {
        guard (1...max(1, maxChannels)).contains(channels.count) else {
            throw TrainingError(
                .configuration,
                "`model.input_channels` has \(channels.count) entries: give 1...\(maxChannels) "
                    + "(limit max_input_channels)")
        }
        var seen = Set<String>()
        for c in channels where !seen.insert(c.name).inserted {
            throw TrainingError(.configuration, "`model.input_channels` names the channel \(c.name) twice")
        }
        self.channels = channels
    }

    /// The channel names, in tensor order.
    public var names: [String] { channels.map(\.name) }

    /// Parses `model.input_channels` (a list of channel mappings).
    /// - Throws: `.configuration` naming the entry and key: unknown keys, no criterion, bad names, patterns or tags,
    ///   an `intensity:` that the preprocessing parser refuses (its message, under this channel's path).
    static func parse(_ node: Node, limits: PipelineLimits) throws(TrainingError) -> InputChannels {
        let path = "model.input_channels"
        func fail(_ p: String, _ message: String) -> TrainingError {
            TrainingError(.configuration, "`\(p)` \(message)")
        }
        guard let list = node.sequence else {
            throw fail(path, "must be a list of channels, e.g. [{name: ct, modality: CT}]")
        }
        guard (1...limits.maxInputChannels).contains(list.count) else {
            throw fail(
                path, "has \(list.count) entries: give 1...\(limits.maxInputChannels) (limit max_input_channels)")
        }
        var channels: [Channel] = []
        for (i, item) in list.enumerated() {
            let p = "\(path)[\(i)]"
            guard let m = item.mapping else { throw fail(p, "must be a mapping with a name and criteria") }
            var fields: [String: Node] = [:]
            for (k, v) in m {
                let key = k.string ?? ""
                guard channelKeys.contains(key) else {
                    throw TrainingError(
                        .configuration,
                        "unknown key `\(p).\(String(key.prefix(64)))`; known: "
                            + channelKeys.sorted().joined(separator: ", "))
                }
                fields[key] = v
            }
            func text(_ key: String, max: Int) throws(TrainingError) -> String? {
                guard let n = fields[key] else { return nil }
                guard let v = n.scalar?.string, (1...max).contains(v.count) else {
                    throw fail("\(p).\(key)", "must be a text of 1...\(max) characters")
                }
                return v
            }
            guard let name = try text("name", max: maxNameLength) else {
                throw fail("\(p).name", "is missing: every channel is named (it names the channel in reports)")
            }
            let allowed = CharacterSet(charactersIn: "_-.").union(.alphanumerics)
            guard name.unicodeScalars.allSatisfy({ $0.isASCII && allowed.contains($0) }) else {
                throw fail("\(p).name", "is \(CheckedConversion.quoted(name)): use letters, digits, _, - and .")
            }
            var channel = Channel(name: name)
            channel.modality = try text("modality", max: 16)
            channel.seriesDescription = try text("series_description", max: maxPatternLength)
            let tagText = try text("tag", max: 16)
            let tagPattern = try text("tag_value", max: maxPatternLength)
            switch (tagText, tagPattern) {
            case (nil, nil): break
            case (let t?, let pattern?):
                guard let tag = ClassificationConfiguration.parseTag(t) else {
                    throw fail("\(p).tag", "is \(CheckedConversion.quoted(t)): give the tag as \"GGGG,EEEE\" (hex)")
                }
                channel.tag = (tag, pattern)
            default:
                throw fail(p, "gives one of `tag` and `tag_value`: a tag criterion needs both")
            }
            guard channel.modality != nil || channel.seriesDescription != nil || channel.tag != nil else {
                throw fail(p, "has no criterion: give modality, series_description or tag with tag_value")
            }
            if let n = fields["intensity"] {
                channel.intensity = try intensity(n, path: "\(p).intensity", limits: limits)
            }
            channels.append(channel)
        }
        return try InputChannels(channels: channels, maxChannels: limits.maxInputChannels)
    }

    /// A channel's `intensity:` read by the preprocessing parser as a `preprocessing:` section holding only
    /// intensity steps (one parser, one set of rules and limits).
    static func intensity(_ node: Node, path: String, limits: PipelineLimits) throws(TrainingError)
        -> PreprocessingConfiguration
    {
        guard let m = node.mapping else {
            throw TrainingError(.configuration, "`\(path)` must be a mapping of intensity steps")
        }
        for (k, _) in m where !intensityKeys.contains(k.string ?? "") {
            throw TrainingError(
                .configuration,
                "unknown key `\(path).\(String((k.string ?? "").prefix(64)))`; known: "
                    + intensityKeys.sorted().joined(separator: ", "))
        }
        do {
            let text = try Yams.serialize(node: Node.mapping(Node.Mapping([(Node("preprocessing"), node)])))
            return try PreprocessingConfiguration(yaml: text, limits: limits.preprocessing)
        } catch let error as VolumesError {
            throw TrainingError(
                .configuration,
                "`\(path)`: " + error.message.replacingOccurrences(of: "`preprocessing.", with: "`\(path)."),
                cause: error.description)
        } catch {
            throw TrainingError(.configuration, "`\(path)` cannot be read", cause: "\(error)")
        }
    }
}

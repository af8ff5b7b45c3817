import DICOMIO
import Foundation
import Volumes

/// What loading a site's cases found besides the cases: the studies (or NIfTI cases) left out, each with its reason.
/// Printed by `tessera train`, logged by a site, listed by `tessera inspect --pipeline`.
public struct DatasetReport: Sendable, Equatable {
    public struct Skipped: Sendable, Equatable {
        /// (0020,000D) Study Instance UID, or the NIfTI case name.
        public var study: String
        public var reason: String

        public init(study: String, reason: String) {
            self.study = study
            self.reason = reason
        }
    }

    public var skipped: [Skipped] = []

    public init(skipped: [Skipped] = []) { self.skipped = skipped }

    /// One line per skipped study (at most `limit`, then a count).
    public func lines(limit: Int = 10) -> [String] {
        guard !skipped.isEmpty else { return [] }
        var out = ["\(skipped.count) stud(ies) skipped:"]
        out += skipped.prefix(limit).map { "  \($0.study): \($0.reason)" }
        if skipped.count > limit { out.append("  … and \(skipped.count - limit) more") }
        return out
    }
}

/// How `model.input_channels` matched the series of one study.
public struct StudyChannels: Sendable {
    public var studyInstanceUID: String
    public var patientID: String
    /// Each channel's series in channel order; nil when a channel has none (`missing`).
    public var series: [DICOMSeries]?
    /// Names of the channels no series of the study matches.
    public var missing: [String]
}

extension InputChannels {
    /// Assigns one series to each channel in every study of `series` (image series only; studies in order of first
    /// appearance).
    ///
    /// - Parameter readTag: reads an attribute of a file (for `tag` criteria); injectable for tests.
    /// - Returns: per study, the series of every channel, or the channels it lacks.
    /// - Throws: `.data` naming every study where a channel matches several series or one series matches several
    ///   channels (ambiguous: make the criteria precise), and when a tag cannot be read.
    public func match(
        _ series: [DICOMSeries],
        readTag: (String, DICOMTag) throws(DICOMError) -> String? = ClassificationDataset.readTag
    ) throws(TrainingError) -> [StudyChannels] {
        var studies: [String: [DICOMSeries]] = [:]
        var order: [String] = []
        for s in series {
            if studies[s.studyInstanceUID] == nil { order.append(s.studyInstanceUID) }
            studies[s.studyInstanceUID, default: []].append(s)
        }
        var out: [StudyChannels] = []
        var problems: [String] = []
        for study in order {
            let members = studies[study] ?? []
            var chosen: [DICOMSeries] = []
            var missing: [String] = []
            var owner: [String: String] = [:]
            for channel in channels {
                var matching: [DICOMSeries] = []
                for s in members {
                    if try channel.matches(s, readTag: readTag) { matching.append(s) }
                }
                if matching.count > 1 {
                    problems.append(
                        "study \(study): channel \(channel.name) matches \(matching.count) series: "
                            + matching.map(SeriesSelector.describe).joined(separator: "; "))
                } else if let s = matching.first {
                    if let other = owner[s.seriesInstanceUID] {
                        problems.append(
                            "study \(study): series \(SeriesSelector.describe(s)) matches both channel \(other) "
                                + "and channel \(channel.name)")
                    }
                    owner[s.seriesInstanceUID] = channel.name
                    chosen.append(s)
                } else {
                    missing.append(channel.name)
                }
            }
            let patient = members.first?.instances.first?.tags["PatientID"] ?? ""
            out.append(
                StudyChannels(
                    studyInstanceUID: study, patientID: patient, series: missing.isEmpty ? chosen : nil,
                    missing: missing))
        }
        guard problems.isEmpty else {
            throw TrainingError(
                .data,
                "`model.input_channels` is ambiguous: each channel must match at most one series of a study, and "
                    + "each series at most one channel; make modality, series_description or tag precise. "
                    + problems.prefix(5).joined(separator: " | ") + (problems.count > 5 ? " | …" : ""))
        }
        return out
    }

    /// Stacks one study's channels on the reference channel's grid.
    ///
    /// The pipeline's spatial steps (orientation, spacing, resize, crop_pad) run on `inputs[0]` with `label`; every
    /// other input is resampled once, through patient coordinates, from its own grid onto that result's grid
    /// (`preprocessing.interpolation`, default linear; `anti_alias`, default on; outside its own grid a channel
    /// reads its minimum); then each channel gets its intensity steps (`Channel.intensitySteps`).
    ///
    /// - Parameter inputs: one volume per channel, in channel order (HU for CT).
    /// - Returns: the reference channel as a `Sample` (with the label and the spatial history that
    ///   `Sample.inverse` undoes) and the other channels on its grid.
    /// - Throws: `.shapeMismatch` when `inputs` does not hold one volume per channel; the steps' errors.
    public func prepare(
        _ inputs: [Volume<Float>], label: Volume<UInt8>?, preprocessing: PreprocessingConfiguration,
        limits: PreprocessingLimits = .default
    ) throws(VolumesError) -> (sample: Sample, additional: [Volume<Float>]) {
        guard inputs.count == channels.count else {
            throw VolumesError(
                .shapeMismatch, transform: "InputChannels",
                "\(inputs.count) volumes for \(channels.count) input channels")
        }
        var spatialOnly = preprocessing
        spatialOnly.augmentation = nil
        spatialOnly.preprocessing.histogramMatching = nil
        spatialOnly.preprocessing.window = nil
        spatialOnly.preprocessing.scale = nil
        spatialOnly.preprocessing.normalize = nil
        var spatial = spatialOnly.preprocessingPipeline(limits: limits)
        let grid = try spatial.apply(Sample(image: inputs[0], label: label))
        var prepared: [Volume<Float>] = []
        for (k, channel) in channels.enumerated() {
            var image = grid.image
            if k > 0 {
                let floor = inputs[k].voxels.min() ?? 0
                image = try inputs[k].resampled(
                    onto: grid.image.geometry, interpolation: preprocessing.preprocessing.interpolation ?? .linear,
                    antiAlias: preprocessing.preprocessing.antiAlias ?? true, outside: .constant(floor))
            }
            var steps = channel.intensitySteps(preprocessing).preprocessingPipeline(limits: limits)
            prepared.append(try steps.apply(Sample(image: image, label: grid.label)).image)
        }
        var sample = grid
        sample.image = prepared[0]
        return (sample, Array(prepared.dropFirst()))
    }
}

extension SegmentationCase {
    /// The case through an augmentation pipeline, every channel with the same draws: the pipeline's state is
    /// copied before the reference channel and replayed on each other channel (with the label, so label-driven
    /// crops pick the same window), so spatial augmentation moves the channels together. Intensity augmentation
    /// draws are shared too (the same shift, scale, gamma and noise field on every channel).
    /// - Throws: the steps' errors, and `.shapeMismatch` should a channel come out on another grid.
    public func augmented(by pipeline: inout VolumePipeline) throws(VolumesError) -> SegmentationCase {
        let start = pipeline
        var out = self
        out.sample = try pipeline.apply(sample)
        for k in additionalChannels.indices {
            var replay = start
            let moved = try replay.apply(Sample(image: additionalChannels[k], label: sample.label))
            guard moved.image.geometry == out.sample.image.geometry else {
                throw VolumesError(
                    .shapeMismatch, transform: "augmentation",
                    "input channel \(k + 1) left the reference channel's grid")
            }
            out.additionalChannels[k] = moved.image
        }
        return out
    }
}

extension SegmentationDataset {
    /// A site's cases and what was left out.
    public struct Loaded: Sendable {
        public var cases: [SegmentationCase]
        public var report: DatasetReport
    }

    /// The site's cases as the pipeline's `model:` section says: NIfTI images (`nifti_images`), several series per
    /// study (`input_channels`), or each labelled series (the default, `load(folder:preprocessing:segments:…)`).
    /// - Throws: `.data` as the loaders do.
    public static func load(
        folder: String, model: TrainingConfiguration.Model, preprocessing: PreprocessingConfiguration,
        limits: PreprocessingLimits = .default
    ) throws(TrainingError) -> Loaded {
        if let folders = model.niftiImages {
            return try loadNIfTI(
                folder: folder, folders: folders, preprocessing: preprocessing,
                segments: model.segments, limits: limits)
        }
        if let channels = model.inputChannels {
            return try loadChannels(
                folder: folder, channels: channels, preprocessing: preprocessing, segments: model.segments,
                segmentNames: model.segmentNames, niftiLabels: model.niftiLabels, limits: limits)
        }
        let cases = try load(
            folder: folder, preprocessing: preprocessing, segments: model.segments,
            segmentNames: model.segmentNames, niftiLabels: model.niftiLabels, limits: limits)
        return Loaded(cases: cases, report: DatasetReport())
    }

    /// Every study of `folder` whose series match `channels`, as multi-channel cases: the reference channel's
    /// series brings the labels (as in `load(folder:preprocessing:segments:…)`), `InputChannels.prepare` stacks the
    /// channels. A study lacking a channel, or whose reference series has no labels, is skipped and reported.
    /// - Throws: `.data` for ambiguous matches (`InputChannels.match`), unreadable series, no usable study, or
    ///   preprocessed grids that differ between studies.
    public static func loadChannels(
        folder: String, channels: InputChannels, preprocessing: PreprocessingConfiguration, segments: [Int],
        segmentNames: ROILabelMapping? = nil, niftiLabels: NIfTILabelFiles? = nil,
        limits: PreprocessingLimits = .default
    ) throws(TrainingError) -> Loaded {
        let (all, inspection) = try scan(folder)
        var reports: [String: FolderInspection.Series] = [:]
        for r in inspection.series { reports[r.seriesInstanceUID] = r }
        let images = all.filter { s in !s.instances.contains { $0.isSegmentation } }
        let lut = classLookup(segments)
        var report = DatasetReport()
        var cases: [SegmentationCase] = []
        for study in try channels.match(images) {
            guard let chosen = study.series else {
                report.skipped.append(
                    .init(
                        study: study.studyInstanceUID,
                        reason: "no series for channel(s) " + study.missing.joined(separator: ", ")))
                continue
            }
            let reference = chosen[0]
            let source = reports[reference.seriesInstanceUID].map {
                LabelSource(folder: folder, series: reference, report: $0, niftiLabels: niftiLabels)
            }
            guard let source, source.exists else {
                report.skipped.append(
                    .init(
                        study: study.studyInstanceUID,
                        reason: "the reference channel's series \(reference.seriesInstanceUID) has no labels "
                            + "(DICOM SEG, RT Structure Set" + (niftiLabels == nil ? ")" : " or NIfTI label map)")))
                continue
            }
            do {
                var inputs: [Volume<Float>] = []
                for s in chosen { inputs.append(try Volume<Float>(series: s)) }
                guard var labels = try source.labels(on: inputs[0].geometry, segmentNames: segmentNames) else {
                    continue
                }
                for i in labels.voxels.indices { labels.voxels[i] = lut[Int(labels.voxels[i])] }
                let stacked = try channels.prepare(inputs, label: labels, preprocessing: preprocessing, limits: limits)
                cases.append(
                    SegmentationCase(
                        patientID: study.patientID.isEmpty ? study.studyInstanceUID : study.patientID,
                        seriesInstanceUID: reference.seriesInstanceUID, sample: stacked.sample,
                        additionalChannels: stacked.additional))
            } catch {
                throw dataError(error, context: "study \(study.studyInstanceUID)")
            }
        }
        guard !cases.isEmpty else {
            throw TrainingError(
                .data,
                "no study in \(folder) has every input channel (\(channels.names.joined(separator: ", "))) and "
                    + "labels on the reference channel's series"
                    + (report.skipped.isEmpty ? "" : "; " + report.lines(limit: 5).joined(separator: " ")))
        }
        try checkSameGrid(cases)
        return Loaded(cases: cases, report: report)
    }

    /// - Throws: `.data` when the preprocessed cases differ in shape (batches need one grid).
    static func checkSameGrid(_ cases: [SegmentationCase]) throws(TrainingError) {
        let shapes = Set(cases.map { "\($0.sample.image.geometry.dimensions)" })
        guard shapes.count <= 1 else {
            throw TrainingError(
                .data,
                "the preprocessed volumes differ in shape (\(shapes.sorted().joined(separator: ", "))); give "
                    + "`preprocessing.crop_pad.shape` so every case has the same grid")
        }
    }
}

import DICOMIO
import Foundation
import Volumes

/// One training case: a patient's CT and its label volume, preprocessed onto the canonical grid.
public struct SegmentationCase: Sendable {
    public var patientID: String
    public var seriesInstanceUID: String
    /// Canonical image (after the pipeline's `preprocessing:`) and labels (0 background, class i for the i-th
    /// requested SEG segment).
    public var sample: Sample
    /// Input channels after the first (`model.input_channels[1...]`), each preprocessed on `sample.image`'s grid;
    /// empty for a one-channel pipeline.
    public var additionalChannels: [Volume<Float>]

    public init(
        patientID: String, seriesInstanceUID: String, sample: Sample, additionalChannels: [Volume<Float>] = []
    ) {
        self.patientID = patientID
        self.seriesInstanceUID = seriesInstanceUID
        self.sample = sample
        self.additionalChannels = additionalChannels
    }

    /// Every input channel in tensor order: `sample.image`, then `additionalChannels`.
    public var inputs: [Volume<Float>] { [sample.image] + additionalChannels }
}

/// Every series of a site folder that has a DICOM SEG, an RT Structure Set or a NIfTI label map, as training cases.
public enum SegmentationDataset {
    /// A site folder's series and what `tessera inspect` reports of them (SEGs, RT Structure Sets, problems).
    /// - Throws: `.data` naming the folder, with the scanner's error as the cause.
    static func scan(_ folder: String) throws(TrainingError) -> (series: [DICOMSeries], inspection: FolderInspection) {
        do {
            let scan = try DirectoryScanner().scan(folder)
            let all = SeriesAssembler().assemble(scan.instances)
            return (all, try FolderInspection(folder: folder, scan: scan, series: all))
        } catch {
            throw TrainingError(.data, "cannot read \(folder): \(error.message)", cause: error.description)
        }
    }

    /// A series' labels come from its DICOM SEG when it has one, else from an RT Structure Set drawn on it,
    /// rasterised onto its grid (`Volume.labels(structureSet:series:mapping:)`): ROIs become segment numbers by
    /// `segmentNames` (the pipeline's `model.segment_names`), or by their (3006,0022) ROI Number without one;
    /// else from its NIfTI-1 label map when `niftiLabels` names one that exists (voxel values are segment numbers,
    /// as `tessera convert --segmentation` writes them; the file's grid must be the series' grid within
    /// `NIfTI.GeometryTolerance.default`, see `Volume.init(niftiLabels:matching:)`).
    ///
    /// - Parameters:
    ///   - segments: SEG segment numbers to learn, mapped to classes 1, 2, …; other segments become background.
    ///   - segmentNames: ROI names of the segment numbers, for RT Structure Sets.
    ///   - niftiLabels: where the site keeps NIfTI label maps (`model.nifti_labels`); nil: not looked for.
    /// - Throws: `.data` naming the series when a volume, SEG or RT Structure Set cannot be read, or when no
    ///   series has labels.
    ///   - limits: the site's limits: a preprocessing step whose output grid would pass them throws instead of
    ///     allocating.
    public static func load(
        folder: String, preprocessing: PreprocessingConfiguration, segments: [Int],
        segmentNames: ROILabelMapping? = nil, niftiLabels: NIfTILabelFiles? = nil,
        limits: PreprocessingLimits = .default
    ) throws(TrainingError) -> [SegmentationCase] {
        let (all, inspection) = try scan(folder)
        let lut = classLookup(segments)
        var cases: [SegmentationCase] = []
        for (series, report) in zip(all, inspection.series) {
            let source = LabelSource(folder: folder, series: series, report: report, niftiLabels: niftiLabels)
            guard source.exists else { continue }
            do {
                let image = try Volume<Float>(series: series)
                guard var labels = try source.labels(on: image.geometry, segmentNames: segmentNames) else {
                    continue
                }
                for i in labels.voxels.indices { labels.voxels[i] = lut[Int(labels.voxels[i])] }
                var pipeline = preprocessing.preprocessingPipeline(limits: limits)
                let sample = try pipeline.apply(Sample(image: image, label: labels))
                cases.append(
                    SegmentationCase(
                        patientID: series.instances[0].tags["PatientID"] ?? series.seriesInstanceUID,
                        seriesInstanceUID: series.seriesInstanceUID, sample: sample))
            } catch {
                throw dataError(error, context: "series \(series.seriesInstanceUID)")
            }
        }
        guard !cases.isEmpty else {
            throw TrainingError(
                .data,
                "no series in \(folder) has a DICOM SEG, an RT Structure Set"
                    + (niftiLabels.map { " or a NIfTI label map (\($0.template))" } ?? "")
                    + " to learn from; `tessera inspect` lists them")
        }
        try checkSameGrid(cases)
        return cases
    }
}

extension SegmentationDataset {
    /// A reading or preprocessing failure as `.data`, prefixed with `context` (the series or case), cause kept.
    /// - Parameter nifti: what a NIfTI file was read as (`labels`, `image`), for the message.
    static func dataError(_ error: any Error, context: String, nifti: String = "labels") -> TrainingError {
        switch error {
        case let error as TrainingError: return error
        case let error as DICOMError:
            return TrainingError(.data, "\(context): \(error.message)", cause: error.description)
        case let error as NIfTI.Error:
            return TrainingError(.data, "\(context): NIfTI \(nifti) \(error.description)", cause: error.description)
        case let error as VolumesError:
            return TrainingError(
                .data, "\(context): preprocessing failed: \(error.message)", cause: error.description)
        default: return TrainingError(.data, "\(context): \(error)")
        }
    }

    /// Segment number → class (1-based position in `segments`; 0 for segments not learned).
    static func classLookup(_ segments: [Int]) -> [UInt8] {
        var lut = [UInt8](repeating: 0, count: 256)
        for (i, s) in segments.enumerated() where (1..<256).contains(s) && i < 255 { lut[s] = UInt8(i + 1) }
        return lut
    }

    /// Where a series' labels come from, in order of preference: its DICOM SEG, an RT Structure Set drawn on it,
    /// its NIfTI label map.
    struct LabelSource {
        var series: DICOMSeries
        var segmentation: String?
        var structureSet: String?
        var nifti: String?

        init(folder: String, series: DICOMSeries, report: FolderInspection.Series, niftiLabels: NIfTILabelFiles?) {
            self.series = series
            segmentation = report.segmentations.first
            structureSet = report.structureSets.first
            nifti = niftiLabels.flatMap { SegmentationDataset.labelFile($0, folder: folder, series: series) }
        }

        var exists: Bool { segmentation != nil || structureSet != nil || nifti != nil }

        /// The label volume (segment numbers) on the series' grid `geometry`; nil when there is none.
        func labels(on geometry: VolumeGeometry, segmentNames: ROILabelMapping?) throws -> Volume<UInt8>? {
            if let segmentation {
                return try Volume<UInt8>.labels(segmentation: segmentation, series: series).volume
            } else if let structureSet {
                let set = try StructureSet(path: structureSet)
                return try Volume<UInt8>.labels(structureSet: set, series: series, mapping: segmentNames).volume
            } else if let nifti {
                return try Volume<UInt8>(niftiLabels: nifti, matching: geometry)
            }
            return nil
        }
    }

    /// The NIfTI label file of a series when it exists (a regular file), else nil.
    public static func labelFile(_ files: NIfTILabelFiles, folder: String, series: DICOMSeries) -> String? {
        let first = series.instances.first
        guard
            let path = files.path(
                folder: folder, seriesInstanceUID: series.seriesInstanceUID,
                studyInstanceUID: first?.studyInstanceUID, patientID: first?.tags["PatientID"])
        else { return nil }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            return nil
        }
        return path
    }
}

extension Volume where Voxel == Float {
    /// Axial slice k as `[height, width]` = `[y, x]` values.
    func slice(_ k: Int) -> ArraySlice<Float> {
        let plane = geometry.dimensions.x * geometry.dimensions.y
        return voxels[(k * plane)..<((k + 1) * plane)]
    }
}

extension Volume where Voxel == UInt8 {
    func slice(_ k: Int) -> ArraySlice<UInt8> {
        let plane = geometry.dimensions.x * geometry.dimensions.y
        return voxels[(k * plane)..<((k + 1) * plane)]
    }
}

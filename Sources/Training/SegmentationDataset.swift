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

    public init(patientID: String, seriesInstanceUID: String, sample: Sample) {
        self.patientID = patientID
        self.seriesInstanceUID = seriesInstanceUID
        self.sample = sample
    }
}

/// Every series of a site folder that has a DICOM SEG, an RT Structure Set or a NIfTI label map, as training cases.
public enum SegmentationDataset {
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
        let inspection: FolderInspection
        let all: [DICOMSeries]
        do {
            let scan = try DirectoryScanner().scan(folder)
            all = SeriesAssembler().assemble(scan.instances)
            inspection = try FolderInspection(folder: folder, scan: scan, series: all)
        } catch {
            throw TrainingError(.data, "cannot read \(folder): \(error.message)")
        }
        var lut = [UInt8](repeating: 0, count: 256)
        for (i, s) in segments.enumerated() where s < 256 { lut[s] = UInt8(i + 1) }
        var cases: [SegmentationCase] = []
        for (series, report) in zip(all, inspection.series) {
            let segPath = report.segmentations.first
            let structureSetPath = report.structureSets.first
            let niftiPath = niftiLabels.flatMap { labelFile($0, folder: folder, series: series) }
            guard segPath != nil || structureSetPath != nil || niftiPath != nil else { continue }
            do {
                let image = try Volume<Float>(series: series)
                var labels: Volume<UInt8>
                if let segPath {
                    labels = try Volume<UInt8>.labels(segmentation: segPath, series: series).volume
                } else if let structureSetPath {
                    let set = try StructureSet(path: structureSetPath)
                    labels = try Volume<UInt8>.labels(structureSet: set, series: series, mapping: segmentNames).volume
                } else if let niftiPath {
                    labels = try Volume<UInt8>(niftiLabels: niftiPath, matching: image.geometry)
                } else {
                    continue
                }
                for i in labels.voxels.indices { labels.voxels[i] = lut[Int(labels.voxels[i])] }
                var pipeline = preprocessing.preprocessingPipeline(limits: limits)
                let sample = try pipeline.apply(Sample(image: image, label: labels))
                cases.append(
                    SegmentationCase(
                        patientID: series.instances[0].tags["PatientID"] ?? series.seriesInstanceUID,
                        seriesInstanceUID: series.seriesInstanceUID, sample: sample))
            } catch let error as DICOMError {
                throw TrainingError(
                    .data, "series \(series.seriesInstanceUID): \(error.message)", cause: error.description)
            } catch let error as NIfTI.Error {
                throw TrainingError(
                    .data, "series \(series.seriesInstanceUID): NIfTI labels \(error.description)",
                    cause: error.description)
            } catch let error as VolumesError {
                throw TrainingError(
                    .data, "series \(series.seriesInstanceUID): preprocessing failed: \(error.message)",
                    cause: error.description)
            } catch {
                throw TrainingError(.data, "series \(series.seriesInstanceUID): \(error)")
            }
        }
        guard !cases.isEmpty else {
            throw TrainingError(
                .data,
                "no series in \(folder) has a DICOM SEG, an RT Structure Set"
                    + (niftiLabels.map { " or a NIfTI label map (\($0.template))" } ?? "")
                    + " to learn from; `tessera inspect` lists them")
        }
        let shapes = Set(cases.map { "\($0.sample.image.geometry.dimensions)" })
        guard shapes.count == 1 else {
            throw TrainingError(
                .data,
                "the preprocessed volumes differ in shape (\(shapes.sorted().joined(separator: ", "))); give "
                    + "`preprocessing.crop_pad.shape` so every case has the same grid")
        }
        return cases
    }
}

extension SegmentationDataset {
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

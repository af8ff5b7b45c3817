import Foundation
import Volumes

extension SegmentationDataset {
    /// A NIfTI site's cases (`model.nifti_images`, layout in `NIfTIImageFolders`): each image of the images folder
    /// with the label map of the same name, on the image's grid, through the pipeline's preprocessing. A case
    /// without a label file is skipped and reported.
    /// - Throws: `.data` for a missing images folder, more than `NIfTIImageFolders.maxCases` images, an unreadable
    ///   image or label map (naming the case and what is wrong), no usable case, or grids that differ after
    ///   preprocessing.
    public static func loadNIfTI(
        folder: String, folders: NIfTIImageFolders, preprocessing: PreprocessingConfiguration, segments: [Int],
        limits: PreprocessingLimits = .default
    ) throws(TrainingError) -> Loaded {
        let imageFolder = folder + "/" + folders.images
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: imageFolder) } catch {
            throw TrainingError(
                .data, "cannot list the NIfTI images folder \(imageFolder) (`model.nifti_images.images`)",
                cause: "\(error)")
        }
        let files = names.filter { NIfTIImageFolders.caseName($0) != nil && !$0.hasPrefix(".") }.sorted()
        guard files.count <= NIfTIImageFolders.maxCases else {
            throw TrainingError(
                .data, "\(imageFolder) holds \(files.count) NIfTI files, more than \(NIfTIImageFolders.maxCases)")
        }
        // A file holds at most maxVoxelsPerVolume voxels of ≤ 8 bytes, plus its header and extensions.
        let voxelBytes = limits.maxVoxelsPerVolume.multipliedReportingOverflow(by: 8)
        let maxBytes =
            voxelBytes.overflow || voxelBytes.partialValue > Int.max - (1 << 20)
            ? Int.max : voxelBytes.partialValue + (1 << 20)
        let lut = classLookup(segments)
        var report = DatasetReport()
        var cases: [SegmentationCase] = []
        for file in files {
            guard let name = NIfTIImageFolders.caseName(file) else { continue }
            let labelPath = folder + "/" + folders.labels + "/" + file
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: labelPath, isDirectory: &isDirectory), !isDirectory.boolValue
            else {
                report.skipped.append(.init(study: name, reason: "no label map \(folders.labels)/\(file)"))
                continue
            }
            var role = "image"
            do {
                let image = try Volume<Float>(
                    niftiImage: imageFolder + "/" + file, maxBytes: maxBytes, maxVoxels: limits.maxVoxelsPerVolume)
                role = "labels"
                var labels = try Volume<UInt8>(
                    niftiLabels: labelPath, matching: image.geometry, maxBytes: maxBytes)
                for i in labels.voxels.indices { labels.voxels[i] = lut[Int(labels.voxels[i])] }
                var pipeline = preprocessing.preprocessingPipeline(limits: limits)
                let sample = try pipeline.apply(Sample(image: image, label: labels))
                cases.append(SegmentationCase(patientID: name, seriesInstanceUID: name, sample: sample))
            } catch {
                throw dataError(error, context: "case \(name)", nifti: role)
            }
        }
        guard !cases.isEmpty else {
            throw TrainingError(
                .data,
                "no image in \(imageFolder) has a label map in \(folder)/\(folders.labels) of the same name"
                    + (report.skipped.isEmpty ? " (the folder holds no .nii or .nii.gz file)" : ""))
        }
        try checkSameGrid(cases)
        return Loaded(cases: cases, report: report)
    }
}

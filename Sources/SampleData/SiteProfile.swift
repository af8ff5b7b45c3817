import DICOMIO

/// How one synthetic hospital scans: scanner, protocol, calibration, storage and file layout. The three profiles
/// differ the way real sites do, so a model trained on one must generalise to the others.
public struct SiteProfile: Sendable {
    public enum Storage: Sendable {
        /// Unsigned, (0028,0101) Bits Stored 12, RescaleIntercept -1024 (stored = HU + 1024).
        case unsigned12
        /// Signed 16-bit, RescaleIntercept 0.
        case signed16
        /// Unsigned 16-bit with RescaleSlope 0.5 and RescaleIntercept -1000 (stored = 2·(HU + 1000)).
        case unsigned16HalfSlope
    }

    public enum Layout: Sendable {
        /// PACS media export: DICOM/<8 hex>/<8 hex>/<8 hex>, no extensions.
        case pacsHex
        /// Research layout: sub-NNN/ct/slice_NNN.dcm and sub-NNN/seg/segmentation.dcm (a SEG) or
        /// sub-NNN/rtstruct/structures.dcm (an RT Structure Set).
        case research
        /// All files of a patient in one folder under random names.
        case flatRandom
    }

    public var name: String
    public var institution: String
    public var manufacturer: String
    public var modelName: String
    public var kvp: Int
    public var convolutionKernel: String
    public var patients: Int
    public var matrix: Int
    /// In-plane pixel spacing, mm.
    public var pixelSpacing: Double
    /// Slice thickness = spacing between slices, mm.
    public var sliceThickness: Double
    public var slices: Int
    /// Standard deviation of the Gaussian image noise, HU.
    public var noise: Double
    /// Calibration offset added to every HU value (a miscalibrated scanner), HU.
    public var calibrationOffset: Double
    /// Mean and spread of the organ size factor.
    public var organScale: (mean: Double, spread: Double)
    /// (0018,5100) Patient Position: HFS or FFS (FFS flips the row direction and slice order).
    public var patientPosition: String
    public var storage: Storage
    public var transferSyntax: TransferSyntax
    public var layout: Layout
    /// How the site keeps its liver and spleen labels.
    public var labels: LabelStorage = .segmentation
    /// The site's screening cohort for the classification task (`sample-data/classification/<site>`); nil: none.
    public var screening: ScreeningCohort? = nil

    /// How a site keeps its organ labels: as real sites do, from the PACS (DICOM SEG), from the radiotherapy
    /// planning system (RTSTRUCT) or from a research tool (NIfTI label maps). Label values are the same everywhere:
    /// 1 liver, 2 spleen.
    public enum LabelStorage: Sendable, Equatable {
        /// A DICOM SEG per study, segments 1 `Liver` and 2 `Spleen`, beside the CT.
        case segmentation
        /// An RT Structure Set per study with the ROI names the site uses (ROI Numbers 1 liver, 2 spleen), traced
        /// from the label map so that it fills back to the same voxels (`Volume.writeStructureSet`).
        case structureSet(liver: String, spleen: String)
        /// A NIfTI-1 label map per patient at `template` (relative to the site folder, `{PatientID}` filled), on the
        /// CT's own grid: the pipeline's `model.nifti_labels`.
        case nifti(template: String)
    }

    /// The three sites of `sample-data/`: community-hospital keeps DICOM SEGs, research-center RT Structure Sets
    /// (ROIs `LIVER_GTV`, `spleen_1`: synonyms in the pipelines' `model.segment_names`), treatment-center NIfTI label
    /// maps under `labels/` (`model.nifti_labels: labels/{PatientID}.nii.gz`).
    public static let all: [SiteProfile] = withScreening([
        SiteProfile(
            name: "community-hospital", institution: "Community Hospital", manufacturer: "GE MEDICAL SYSTEMS",
            modelName: "LightSpeed VCT", kvp: 120, convolutionKernel: "STANDARD", patients: 6, matrix: 128,
            pixelSpacing: 2.8, sliceThickness: 5.0, slices: 34, noise: 22, calibrationOffset: 12,
            organScale: (1.0, 0.08), patientPosition: "HFS", storage: .unsigned12,
            transferSyntax: .jpegLSLossless, layout: .pacsHex),
        SiteProfile(
            name: "research-center", institution: "Research Center", manufacturer: "SIEMENS",
            modelName: "SOMATOM Force", kvp: 100, convolutionKernel: "Br40d", patients: 4, matrix: 128,
            pixelSpacing: 2.6, sliceThickness: 3.0, slices: 52, noise: 10, calibrationOffset: 0,
            organScale: (0.9, 0.1), patientPosition: "HFS", storage: .signed16,
            transferSyntax: .explicitVRLittleEndian, layout: .research,
            labels: .structureSet(liver: "LIVER_GTV", spleen: "spleen_1")),
        SiteProfile(
            name: "treatment-center", institution: "Treatment Center", manufacturer: "Philips",
            modelName: "Brilliance Big Bore", kvp: 140, convolutionKernel: "B", patients: 5, matrix: 112,
            pixelSpacing: 3.2, sliceThickness: 4.0, slices: 40, noise: 16, calibrationOffset: -15,
            organScale: (1.1, 0.08), patientPosition: "FFS", storage: .unsigned16HalfSlope,
            transferSyntax: .rleLossless, layout: .flatRandom,
            labels: .nifti(template: "labels/{PatientID}.nii.gz")),
    ])

    static func withScreening(_ sites: [SiteProfile]) -> [SiteProfile] {
        var out = sites
        let cohorts: [String: ScreeningCohort] = [
            // Metastasis-like lesions (2 to 4 per patient, radius 18–28 mm, 80–100 HU below the liver) in 40 % of
            // patients, 14 slices of 10 mm.
            "community-hospital": ScreeningCohort(
                studies: 36, sliceThickness: 10, slices: 14, prevalence: 0.4, lesionRadius: 18...28,
                lesionContrast: 80...100, labelsFormat: .plain),
            // Smaller, fainter lesions in half of the patients (the harder site), 16 slices of 9 mm.
            "research-center": ScreeningCohort(
                studies: 28, sliceThickness: 9, slices: 16, prevalence: 0.5, lesionRadius: 15...24,
                lesionContrast: 65...90, labelsFormat: .quoted),
            // Large, dark lesions in 30 %, 14 slices of 10 mm; its labels come from a spreadsheet export (byte-order
            // mark, CRLF).
            "treatment-center": ScreeningCohort(
                studies: 36, sliceThickness: 10, slices: 14, prevalence: 0.3, lesionRadius: 20...30,
                lesionContrast: 85...105, labelsFormat: .spreadsheet),
        ]
        for i in out.indices { out[i].screening = cohorts[out[i].name] }
        return out
    }
}

/// A site's screening cohort: low-resolution abdominal CTs (half the in-plane matrix of the site's protocol, thick
/// slices, no SEG), hypodense liver lesions in some patients, and the labels CSV the site keeps beside them
/// (`labels.csv`: PatientID, label = lesion | no_lesion).
public struct ScreeningCohort: Sendable {
    /// How the site's labels CSV is written (the reader must take all three).
    public enum LabelsFormat: Sendable {
        /// LF line ends, bare fields.
        case plain
        /// Every field in double quotes, plus a free-text note column with commas.
        case quoted
        /// UTF-8 byte-order mark and CRLF line ends, as a spreadsheet exports.
        case spreadsheet
    }

    public var studies: Int
    /// mm (in-plane spacing is twice the site's, on a matrix half the size).
    public var sliceThickness: Double
    public var slices: Int
    /// Fraction of patients with lesions (drawn per patient).
    public var prevalence: Double
    /// Lesion radius range, mm.
    public var lesionRadius: ClosedRange<Double>
    /// Lesion darkness below the liver, HU.
    public var lesionContrast: ClosedRange<Double>
    public var labelsFormat: LabelsFormat
}

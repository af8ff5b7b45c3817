import DICOMIO
import Foundation
import Volumes

/// One record of a site's cohort: a series (with its patient and study), its tags and, when present, its SEG.
public struct CohortRecord: Sendable {
    public var patientID: String
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var studyDate: String
    public var modality: String
    /// Selected DICOM tags of the series' first instance, by keyword.
    public var tags: [String: String]
    /// Index into `SiteCohort.series`.
    public var seriesIndex: Int
    /// The DICOM SEG drawn on this series, if any.
    public var segmentationPath: String?
}

/// A site's data as the analytics see it: every image series in a folder, grouped by patient and study.
public struct SiteCohort: Sendable {
    public var folder: String
    public var series: [DICOMSeries]
    /// All series, sorted by patient, study date, series number.
    public var records: [CohortRecord]
    /// Files the scan could not use.
    public var skipped: Int

    /// A cohort with no record: the server uses it to lay out the primitives every site sends for a query.
    static let empty = SiteCohort(folder: "", series: [], records: [], skipped: 0)

    init(folder: String, series: [DICOMSeries], records: [CohortRecord], skipped: Int) {
        self.folder = folder
        self.series = series
        self.records = records
        self.skipped = skipped
    }

    /// Scans a site folder (all series, their SEGs).
    public init(folder: String) throws(AnalyticsError) {
        do {
            let scan = try DirectoryScanner().scan(folder)
            let series = SeriesAssembler().assemble(scan.instances)
            let inspection = try FolderInspection(folder: folder, scan: scan, series: series)
            self.folder = folder
            self.series = series
            self.skipped = inspection.skipped.count
            self.records = series.enumerated().map { index, s in
                let first = s.instances[0]
                let seg = inspection.series.first { $0.seriesInstanceUID == s.seriesInstanceUID }?.segmentations.first
                return CohortRecord(
                    patientID: first.tags["PatientID"] ?? "unknown:\(s.studyInstanceUID)",
                    studyInstanceUID: s.studyInstanceUID, seriesInstanceUID: s.seriesInstanceUID,
                    studyDate: first.tags["StudyDate"] ?? "", modality: s.modality, tags: first.tags,
                    seriesIndex: index, segmentationPath: seg)
            }
        } catch {
            throw AnalyticsError(
                .data, "cannot read the site's DICOM folder: \(error.message)", cause: error.description)
        }
    }

    /// The records one query counts: one per patient (earliest study, first series), one per study, or every
    /// series, keeping at most `maxPerPatient` per patient (earliest first), so no patient weighs more than the cap.
    public func records(unit: CountingUnit, maxPerPatient: Int) -> [CohortRecord] {
        let ordered = records.sorted {
            ($0.patientID, $0.studyDate, $0.studyInstanceUID, $0.seriesIndex)
                < ($1.patientID, $1.studyDate, $1.studyInstanceUID, $1.seriesIndex)
        }
        var out: [CohortRecord] = []
        var perPatient: [String: Int] = [:]
        var seenStudies = Set<String>()
        let cap = (unit == .patient || unit == .voxel) ? 1 : maxPerPatient
        for r in ordered {
            if unit == .study || unit == .patient || unit == .voxel {
                if seenStudies.contains(r.studyInstanceUID) { continue }
            }
            if perPatient[r.patientID, default: 0] >= cap { continue }
            seenStudies.insert(r.studyInstanceUID)
            perPatient[r.patientID, default: 0] += 1
            out.append(r)
        }
        return out
    }
}

// MARK: - Tag values

extension CohortRecord {
    /// A numeric tag feature, nil when missing or unreadable ("missing" bucket).
    public func number(_ feature: TagFeature) -> Double? {
        switch feature {
        case .patientAge: return tags["PatientAge"].flatMap(parseAge)
        case .sliceThickness: return tags["SliceThickness"].flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        case .kvp: return tags["KVP"].flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        case .pixelSpacing:
            let parts = (tags["PixelSpacing"] ?? "").split(separator: "\\").compactMap {
                Double($0.trimmingCharacters(in: .whitespaces))
            }
            return parts.count == 2 ? (parts[0] + parts[1]) / 2 : nil
        case .studyYear: return studyDate.count >= 4 ? Double(studyDate.prefix(4)) : nil
        default: return nil
        }
    }

    /// A categorical tag feature, nil when missing.
    public func category(_ feature: TagFeature) -> String? {
        let value: String?
        switch feature {
        case .modality: value = modality
        default: value = tags[feature.rawValue]
        }
        guard let v = value?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        return v
    }
}

/// (0010,1010) Patient Age, AS: "nnnD", "nnnW", "nnnM" or "nnnY" → years.
func parseAge(_ text: String) -> Double? {
    let t = text.trimmingCharacters(in: .whitespaces)
    guard t.count == 4, let n = Double(t.prefix(3)) else { return nil }
    switch t.last {
    case "Y": return n
    case "M": return n / 12
    case "W": return n * 7 / 365.25
    case "D": return n / 365.25
    default: return nil
    }
}

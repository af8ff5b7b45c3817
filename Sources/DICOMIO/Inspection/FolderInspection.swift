import Foundation

/// What `tessera inspect` reports for a folder: its series, its SEGs and what it could not read. Codable, so the
/// same value prints as text or JSON.
public struct FolderInspection: Codable, Sendable {
    public struct Problem: Codable, Sendable {
        public var kind: String
        public var message: String
        public var blocking: Bool
    }

    public struct Syntax: Codable, Sendable {
        public var uid: String
        public var name: String
    }

    public struct Series: Codable, Sendable {
        public var seriesInstanceUID: String
        public var studyInstanceUID: String
        public var modality: String
        public var seriesDescription: String
        public var seriesNumber: Int?
        /// [x, y, z] voxels of the largest stack.
        public var dimensions: [Int]
        /// [x, y, z] mm; z from slice positions.
        public var spacing: [Double]
        public var sliceCount: Int
        public var instanceCount: Int
        public var stackCount: Int
        public var transferSyntaxes: [Syntax]
        /// Selected DICOM tags of the first instance (PatientAge, Manufacturer, KVP, ...).
        public var tags: [String: String]
        public var problems: [Problem]
        public var segmentations: [String]
        /// Paths of the RT Structure Sets drawn on this series.
        public var structureSets: [String]
    }

    public struct Segment: Codable, Sendable {
        public var number: Int
        public var label: String
        public var propertyType: String?
    }

    public struct SEG: Codable, Sendable {
        public var path: String
        public var sopInstanceUID: String
        public var segmentationType: String
        public var referencedSeriesInstanceUID: String?
        public var frames: Int
        public var segments: [Segment]
        public var problems: [Problem]
    }

    public struct ROI: Codable, Sendable {
        /// (3006,0022) ROI Number and (3006,0026) ROI Name.
        public var number: Int
        public var name: String
        /// CLOSED_PLANAR contours (the ones rasterised) and other contours (skipped).
        public var contours: Int
        public var skippedContours: Int
    }

    public struct RTSTRUCT: Codable, Sendable {
        public var path: String
        public var sopInstanceUID: String
        /// (3006,0002) Structure Set Label.
        public var label: String
        /// The series of this folder it was drawn on, when found (`SeriesSelection` rules: series UID, image,
        /// frame of reference).
        public var referencedSeriesInstanceUID: String?
        public var rois: [ROI]
        /// Skipped contours (POINT, OPEN_*), one sentence each.
        public var warnings: [String]
        public var problems: [Problem]
    }

    public struct Skipped: Codable, Sendable {
        public var path: String
        public var code: String
        public var reason: String
    }

    public var folder: String
    public var series: [Series]
    public var segmentations: [SEG]
    public var structureSets: [RTSTRUCT]
    public var skipped: [Skipped]

    /// Scans and assembles a folder.
    public init(
        folder: String, scanner: DirectoryScanner = DirectoryScanner(),
        assembler: SeriesAssembler = SeriesAssembler()
    ) throws(DICOMError) {
        let scan = try scanner.scan(folder)
        try self.init(folder: folder, scan: scan, series: assembler.assemble(scan.instances), limits: scanner.limits)
    }

    public init(
        folder: String, scan: ScanResult, series assembled: [DICOMSeries],
        limits: ReadingLimits = .default
    ) throws(DICOMError) {
        self.folder = folder
        var segs: [SEG] = []
        let seriesUIDs = Set(assembled.map(\.seriesInstanceUID))
        var segsBySeries: [String: [String]] = [:]
        let structureSetPaths = Set(scan.structureSetPaths)
        var skipped = scan.skipped.filter { !structureSetPaths.contains($0.path) }.map {
            Skipped(path: $0.path, code: $0.error.code.rawValue, reason: $0.error.message)
        }
        for instance in scan.instances where instance.isSegmentation {
            do throws(DICOMError) {
                let seg = try Segmentation(path: instance.path, limits: limits)
                var problems: [Problem] = []
                var reference = seg.referencedSeriesInstanceUID
                if reference == nil {
                    // Without a Referenced Series Sequence, find the series holding the first referenced image.
                    let firstRef = instance.frames.first?.referencedSOPInstanceUIDs.first
                    reference =
                        assembled.first { s in s.instances.contains { $0.sopInstanceUID == firstRef } }?
                        .seriesInstanceUID
                }
                if let reference {
                    if seriesUIDs.contains(reference) {
                        segsBySeries[reference, default: []].append(instance.path)
                    } else {
                        problems.append(
                            Problem(
                                kind: "referenced-series-missing",
                                message: "references series \(reference), which is not in this folder",
                                blocking: true))
                    }
                } else {
                    problems.append(
                        Problem(
                            kind: "no-reference", message: "names no referenced series or image",
                            blocking: true))
                }
                segs.append(
                    SEG(
                        path: instance.path, sopInstanceUID: instance.sopInstanceUID,
                        segmentationType: seg.kind.rawValue, referencedSeriesInstanceUID: reference,
                        frames: instance.numberOfFrames,
                        segments: seg.segments.map {
                            Segment(number: $0.number, label: $0.label, propertyType: $0.propertyType)
                        },
                        problems: problems))
            } catch {
                skipped.append(Skipped(path: instance.path, code: error.code.rawValue, reason: error.message))
            }
        }
        self.segmentations = segs
        var structureSets: [RTSTRUCT] = []
        var structureSetsBySeries: [String: [String]] = [:]
        for path in scan.structureSetPaths {
            do throws(DICOMError) {
                let set = try StructureSet(path: path, limits: limits)
                let reference = set.referencedSeries(in: assembled)?.seriesInstanceUID
                var problems: [Problem] = []
                if let reference {
                    structureSetsBySeries[reference, default: []].append(path)
                } else {
                    let named = set.references.compactMap(\.seriesInstanceUID)
                    problems.append(
                        Problem(
                            kind: "referenced-series-missing",
                            message: "references series "
                                + (named.isEmpty ? "(none named)" : named.joined(separator: ", "))
                                + ", frame of reference "
                                + (set.frameOfReferenceUIDs.isEmpty
                                    ? "(none named)" : set.frameOfReferenceUIDs.sorted().joined(separator: ", "))
                                + ": no series of this folder", blocking: true))
                }
                structureSets.append(
                    RTSTRUCT(
                        path: path, sopInstanceUID: set.sopInstanceUID, label: set.label,
                        referencedSeriesInstanceUID: reference,
                        rois: set.rois.map {
                            ROI(
                                number: $0.number, name: $0.name, contours: $0.contours.count,
                                skippedContours: $0.skippedContours)
                        }, warnings: set.warnings, problems: problems))
            } catch {
                skipped.append(Skipped(path: path, code: error.code.rawValue, reason: error.message))
            }
        }
        self.structureSets = structureSets
        self.skipped = skipped
        self.series = assembled.map { s in
            let stack = s.stacks.first
            let first = s.instances[0]
            return Series(
                seriesInstanceUID: s.seriesInstanceUID, studyInstanceUID: s.studyInstanceUID, modality: s.modality,
                seriesDescription: s.seriesDescription, seriesNumber: s.seriesNumber,
                dimensions: stack.map { [$0.columns, $0.rows, $0.slices.count] } ?? [0, 0, 0],
                spacing: stack.map { [$0.pixelSpacing.column, $0.pixelSpacing.row, $0.sliceSpacing] } ?? [0, 0, 0],
                sliceCount: s.sliceCount, instanceCount: s.instances.count, stackCount: s.stacks.count,
                transferSyntaxes: s.transferSyntaxes.map { Syntax(uid: $0.uid, name: $0.name) },
                tags: first.tags,
                problems: s.problems.map {
                    Problem(kind: $0.kind.rawValue, message: $0.message, blocking: $0.isBlocking)
                },
                segmentations: segsBySeries[s.seriesInstanceUID] ?? [],
                structureSets: structureSetsBySeries[s.seriesInstanceUID] ?? [])
        }
    }

    /// Pretty-printed JSON with sorted keys.
    public func json() throws(DICOMError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do { return String(decoding: try encoder.encode(self), as: UTF8.self) } catch {
            throw DICOMError(.invalidArgument, "cannot encode the report as JSON", cause: "\(error)")
        }
    }

    /// A human-readable report.
    public var text: String {
        var lines: [String] = []
        lines.append(
            "\(folder): \(series.count) series, \(segmentations.count) segmentation(s), "
                + "\(structureSets.count) RT structure set(s), \(skipped.count) file(s) skipped")
        for s in series {
            let dims = s.dimensions.map(String.init).joined(separator: "×")
            let sp = s.spacing.map { String(format: "%.3g", $0) }.joined(separator: " × ")
            lines.append("")
            lines.append("series \(s.seriesInstanceUID)")
            lines.append(
                "  \(s.modality) #\(s.seriesNumber.map(String.init) ?? "-") \"\(s.seriesDescription)\"  \(dims) voxels, \(sp) mm, \(s.sliceCount) slices in \(s.instanceCount) file(s)"
            )
            lines.append("  transfer syntax: " + s.transferSyntaxes.map(\.name).joined(separator: ", "))
            let tagText = [
                "PatientID", "PatientAge", "PatientSex", "Manufacturer", "ManufacturerModelName", "KVP",
                "SliceThickness",
            ]
            .compactMap { k in s.tags[k].map { "\(k)=\($0)" } }.joined(separator: " ")
            if !tagText.isEmpty { lines.append("  " + tagText) }
            for p in s.problems {
                lines.append("  problem (\(p.blocking ? "blocking" : "warning")) \(p.kind): \(p.message)")
            }
            for seg in s.segmentations { lines.append("  segmentation: \(seg)") }
            for set in s.structureSets { lines.append("  RT structure set: \(set)") }
        }
        for seg in segmentations {
            lines.append("")
            lines.append("segmentation \(seg.path)")
            lines.append(
                "  \(seg.segmentationType), \(seg.frames) frames, references series \(seg.referencedSeriesInstanceUID ?? "?")"
            )
            lines.append("  segments: " + seg.segments.map { "\($0.number) \($0.label)" }.joined(separator: ", "))
            for p in seg.problems { lines.append("  problem \(p.kind): \(p.message)") }
        }
        for set in structureSets {
            lines.append("")
            lines.append("RT structure set \(set.path)")
            lines.append(
                "  \"\(set.label)\", \(set.rois.count) ROI(s), references series \(set.referencedSeriesInstanceUID ?? "?")"
            )
            for roi in set.rois {
                lines.append(
                    "  ROI \(roi.number) \"\(roi.name)\": \(roi.contours) contour(s)"
                        + (roi.skippedContours > 0 ? ", \(roi.skippedContours) skipped (not CLOSED_PLANAR)" : ""))
            }
            for w in set.warnings { lines.append("  warning: \(w)") }
            for p in set.problems { lines.append("  problem \(p.kind): \(p.message)") }
        }
        if !skipped.isEmpty {
            lines.append("")
            lines.append("skipped:")
            for f in skipped { lines.append("  \(f.path): [\(f.code)] \(f.reason)") }
        }
        return lines.joined(separator: "\n")
    }
}

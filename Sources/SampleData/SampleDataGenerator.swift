import DICOMIO
import Foundation
import Volumes

/// Writes `sample-data/`: synthetic multi-site abdominal CT studies through DCMTK, each with its liver and spleen
/// labels kept the way its site keeps them (`SiteProfile.LabelStorage`: a DICOM SEG, an RT Structure Set or a NIfTI
/// label map); and `sample-data/classification/<site>/`: each site's screening cohort (low-resolution CTs,
/// hypodense liver lesions in some patients, no SEG) with its `labels.csv`. Deterministic for a seed: same seed,
/// same bytes (the cohorts draw from their own seeds, so the segmentation studies do not depend on them).
public struct SampleDataGenerator: Sendable {
    public var seed: UInt64
    public var sites: [SiteProfile]

    public init(seed: UInt64 = 20_261_121, sites: [SiteProfile] = SiteProfile.all) {
        self.seed = seed
        self.sites = sites
    }

    /// What was written for one patient.
    public struct PatientOutput: Sendable {
        public var site: String
        public var patientID: String
        public var seriesInstanceUID: String
        public var imagePaths: [String]
        /// The labels file: a DICOM SEG, an RT Structure Set or a NIfTI label map (`SiteProfile.labels`).
        public var segmentationPath: String
        public var liverVoxels: Int
        public var spleenVoxels: Int
        /// Liver lesions drawn (screening cohorts; 0 for the segmentation studies).
        public var lesions: Int = 0
    }

    /// Generates every site under `root` (created if needed). Existing files with the same names are replaced.
    public func generate(into root: String) throws(DICOMError) -> [PatientOutput] {
        var outputs: [PatientOutput] = []
        for (siteIndex, site) in sites.enumerated() {
            for p in 0..<site.patients {
                outputs.append(try generatePatient(site: site, siteIndex: siteIndex, index: p, root: root))
            }
        }
        _ = try generateScreening(into: root)
        return outputs
    }

    /// Writes every site's screening cohort under `<root>/classification/<site>/` with its `labels.csv`.
    /// - Returns: the studies written (segmentationPath empty).
    @discardableResult
    public func generateScreening(into root: String) throws(DICOMError) -> [PatientOutput] {
        var outputs: [PatientOutput] = []
        for (siteIndex, site) in sites.enumerated() {
            guard let cohort = site.screening else { continue }
            var studies: [PatientOutput] = []
            for p in 0..<cohort.studies {
                studies.append(
                    try generatePatient(
                        site: site, siteIndex: siteIndex, index: p, root: root + "/classification", screening: cohort))
            }
            try writeLabels(
                studies, format: cohort.labelsFormat, to: root + "/classification/" + site.name + "/labels.csv")
            outputs += studies
        }
        return outputs
    }

    /// The site's labels CSV: PatientID and label (lesion | no_lesion), in the site's export format.
    func writeLabels(_ studies: [PatientOutput], format: ScreeningCohort.LabelsFormat, to path: String)
        throws(DICOMError)
    {
        var text: String
        switch format {
        case .plain:
            text =
                "PatientID,label\n"
                + studies.map { "\($0.patientID),\($0.lesions > 0 ? "lesion" : "no_lesion")\n" }.joined()
        case .quoted:
            text =
                "\"PatientID\",\"label\",\"note\"\n"
                + studies.map {
                    "\"\($0.patientID)\",\"\($0.lesions > 0 ? "lesion" : "no_lesion")\",\"read by R1, "
                        + "\($0.lesions) lesion(s)\"\n"
                }.joined()
        case .spreadsheet:
            text =
                "\u{FEFF}PatientID,label\r\n"
                + studies.map { "\($0.patientID),\($0.lesions > 0 ? "lesion" : "no_lesion")\r\n" }.joined()
        }
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path)) } catch {
            throw DICOMError(.io, "cannot write the labels CSV; check permissions", path: path, cause: "\(error)")
        }
    }

    /// One patient: a segmentation study (CT + SEG), or with `screening` a cohort study (CT only, on the cohort's
    /// coarser grid, lesions drawn from the cohort's rates).
    func generatePatient(
        site profile: SiteProfile, siteIndex: Int, index: Int, root: String, screening: ScreeningCohort? = nil
    ) throws(DICOMError) -> PatientOutput {
        var site = profile
        var g = SeededGenerator(seed: seed &+ UInt64(siteIndex) &* 1_000_003 &+ UInt64(index) &* 7919)
        let uids = UIDFactory(seed: seed)
        var key = "\(site.name)/\(index)"
        let prefix = String(site.name.split(separator: "-").map { $0.prefix(1).uppercased() }.joined())
        var patientID = String(format: "%@-%04d", prefix, index + 1)
        var accession = siteIndex * 10000 + index + 1
        if let screening {
            g = SeededGenerator(seed: (seed ^ 0x5C4E_E41B) &+ UInt64(siteIndex) &* 1_000_003 &+ UInt64(index) &* 7919)
            key = "\(site.name)/screening/\(index)"
            patientID = String(format: "%@-S%03d", prefix, index + 1)
            accession = siteIndex * 10000 + 5000 + index + 1
            site.matrix /= 2
            site.pixelSpacing *= 2
            site.sliceThickness = screening.sliceThickness
            site.slices = screening.slices
        }
        let age = g.integer(34, 86)
        let sex = g.uniform() < 0.5 ? "F" : "M"
        let year = 2023 + g.integer(0, 2)
        let month = g.integer(1, 12)
        let day = g.integer(1, 28)
        let studyDate = String(format: "%04d%02d%02d", year, month, day)
        let studyTime = String(format: "%02d%02d%02d", g.integer(7, 18), g.integer(0, 59), g.integer(0, 59))
        let birthDate = String(
            format: "%04d%02d%02d", year - age - (month < 6 ? 1 : 0), g.integer(1, 12), g.integer(1, 28))
        let studyUID = uids.uid(key + "/study")
        let seriesUID = uids.uid(key + "/series")
        let frameUID = uids.uid(key + "/for")
        let segSeriesUID = uids.uid(key + "/seg-series")
        let segUID = uids.uid(key + "/seg")
        let organScale = site.organScale.mean + site.organScale.spread * max(-2, min(2, g.normal()))
        let tableZ = g.uniform(-40, 40)
        let centreZ = tableZ + Double(site.slices) * site.sliceThickness / 2
        var phantom = AbdomenPhantom(generator: &g, centreZ: centreZ, organScale: organScale)
        if let screening {
            // The lesions from their own stream: the rest of the study is drawn as for any patient.
            var lesionGenerator = SeededGenerator(seed: g.next())
            if lesionGenerator.uniform() < screening.prevalence {
                phantom.addLesions(
                    count: lesionGenerator.integer(2, 4), radius: screening.lesionRadius,
                    contrast: screening.lesionContrast, generator: &lesionGenerator)
            }
        }

        // Geometry: HFS rows run patient right→left (+x), FFS rows run left→right (−x); columns anterior→posterior.
        let feetFirst = site.patientPosition == "FFS"
        let rowCosine = feetFirst ? Vector3(-1, 0, 0) : Vector3(1, 0, 0)
        let n = site.matrix
        let half = Double(n - 1) / 2 * site.pixelSpacing
        let originX = feetFirst ? half : -half
        let originY = -half
        // Slice k is acquired k·thickness from the start of the scan; FFS scans from the feet up.
        let zTop = tableZ + Double(site.slices - 1) * site.sliceThickness
        let folder = patientFolder(site: site, index: index, generator: &g, root: root)
        let ctFolder = folder.ct
        var segPath = folder.seg
        if case .nifti(let template) = site.labels {
            segPath = root + "/" + site.name + "/" + template.replacingOccurrences(of: "{PatientID}", with: patientID)
        }
        try makeDirectory(ctFolder)
        if screening == nil { try makeDirectory((segPath as NSString).deletingLastPathComponent) }
        var names = (0..<site.slices).map { k in fileName(site: site, slice: k, generator: &g) }
        if case .flatRandom = site.layout { names.shuffle(using: &g) }

        var imagePaths: [String] = []
        var masks = [UInt8](repeating: 0, count: 2 * site.slices * n * n)
        var liverVoxels = 0
        var spleenVoxels = 0
        var stored = [UInt16](repeating: 0, count: n * n)
        for k in 0..<site.slices {
            // Instance k+1 is at z decreasing (HFS: head first, top of the scan first) or increasing (FFS).
            let z = feetFirst ? tableZ + Double(k) * site.sliceThickness : zTop - Double(k) * site.sliceThickness
            for j in 0..<n {
                for i in 0..<n {
                    let p = Vector3(
                        originX + Double(i) * site.pixelSpacing * rowCosine.x,
                        originY + Double(j) * site.pixelSpacing, z)
                    let (hu, label) = phantom.sample(p)
                    var value = hu + site.calibrationOffset + site.noise * g.normal()
                    if hu <= AbdomenPhantom.air { value = hu + 4 * g.normal() }  // air is quiet
                    stored[j * n + i] = storedValue(value, site.storage)
                    if label > 0 {
                        masks[((Int(label) - 1) * site.slices + k) * n * n + j * n + i] = 1
                        if label == 1 { liverVoxels += 1 } else { spleenVoxels += 1 }
                    }
                }
            }
            let path = ctFolder + "/" + names[k]
            let w = DICOMWriter()
            let ds = w.dataset
            let sopUID = uids.uid(key + "/image/\(k)")
            let position = Vector3(originX, originY, z)
            let tags: [(DICOMTag, String)] =
                [
                    (.specificCharacterSet, "ISO_IR 100"),
                    (.imageType, "ORIGINAL\\PRIMARY\\AXIAL"),
                    (.sopClassUID, SOPClass.ctImageStorage), (.sopInstanceUID, sopUID),
                    (.studyDate, studyDate), (.seriesDate, studyDate), (.contentDate, studyDate),
                    (.studyTime, studyTime), (.seriesTime, studyTime), (.contentTime, studyTime),
                    (.accessionNumber, String(format: "A%07d", accession)),
                    (.modality, "CT"), (.manufacturer, site.manufacturer), (.institutionName, site.institution),
                    (.referringPhysicianName, ""), (.stationName, "CT01"),
                    (.studyDescription, "CT ABDOMEN WITH CONTRAST"),
                    (.seriesDescription, "Abdomen PV \(formatMM(site.sliceThickness))mm"),
                    (.manufacturerModelName, site.modelName),
                    (.patientName, "Synthetic^\(patientID)"), (.patientID, patientID), (.patientBirthDate, birthDate),
                    (.patientSex, sex), (.patientAge, String(format: "%03dY", age)),
                    (.bodyPartExamined, "ABDOMEN"), (.sliceThickness, formatMM(site.sliceThickness)),
                    (.kvp, String(site.kvp)), (.deviceSerialNumber, String(1000 + siteIndex)),
                    (.softwareVersions, "synthetic-1"), (.gantryDetectorTilt, "0"),
                    (.convolutionKernel, site.convolutionKernel), (.patientPosition, site.patientPosition),
                    (.studyInstanceUID, studyUID), (.seriesInstanceUID, seriesUID), (.studyID, "1"),
                    (.seriesNumber, "2"), (.acquisitionNumber, "1"), (.instanceNumber, String(k + 1)),
                    (
                        .imagePositionPatient,
                        "\(formatMM(position.x))\\\(formatMM(position.y))\\\(formatMM(position.z))"
                    ),
                    (.imageOrientationPatient, "\(Int(rowCosine.x))\\0\\0\\0\\1\\0"),
                    (.frameOfReferenceUID, frameUID), (.positionReferenceIndicator, ""),
                    (.sliceLocation, formatMM(z)),
                    (.photometricInterpretation, "MONOCHROME2"),
                    (.pixelSpacing, "\(formatMM(site.pixelSpacing))\\\(formatMM(site.pixelSpacing))"),
                    (.windowCenter, "50"), (.windowWidth, "400"),
                ] + rescaleTags(site.storage)
            for (tag, value) in tags { try ds.set(tag, value) }
            try ds.set(.samplesPerPixel, uint16: 1)
            try ds.set(.rows, uint16: UInt16(n))
            try ds.set(.columns, uint16: UInt16(n))
            let (bitsStored, signed) = pixelFormat(site.storage)
            try ds.set(.bitsAllocated, uint16: 16)
            try ds.set(.bitsStored, uint16: bitsStored)
            try ds.set(.highBit, uint16: bitsStored - 1)
            try ds.set(.pixelRepresentation, uint16: signed ? 1 : 0)
            try ds.setPixelData(stored)
            try w.write(to: path, transferSyntax: site.transferSyntax)
            imagePaths.append(path)
        }

        if screening != nil {
            return PatientOutput(
                site: site.name, patientID: patientID, seriesInstanceUID: seriesUID, imagePaths: imagePaths,
                segmentationPath: "", liverVoxels: liverVoxels, spleenVoxels: spleenVoxels,
                lesions: phantom.lesions.count)
        }
        switch site.labels {
        case .segmentation:
            var seg = SegmentationWriter()
            seg.seriesDescription = "Liver and spleen"
            seg.seriesNumber = 300
            seg.contentLabel = "ORGANS"
            seg.contentCreator = "Synthetic^Annotator"
            seg.manufacturer = "Tessera"
            seg.modelName = "tessera sample-data"
            seg.softwareVersions = "0.1"
            seg.seriesInstanceUID = segSeriesUID
            seg.sopInstanceUID = segUID
            seg.contentDate = studyDate
            seg.contentTime = studyTime
            try seg.write(
                to: segPath, masks: masks, rows: n, columns: n, sourcePaths: imagePaths,
                segments: [
                    SegmentSpecification(label: "Liver", typeCode: ("10200004", "SCT", "Liver")),
                    SegmentSpecification(label: "Spleen", typeCode: ("78961009", "SCT", "Spleen")),
                ])
        case .structureSet(let liver, let spleen):
            var writer = StructureSetWriter()
            writer.label = "ORGANS"
            writer.seriesDescription = "Liver and spleen"
            writer.seriesNumber = 300
            writer.modelName = "tessera sample-data"
            writer.seriesInstanceUID = segSeriesUID
            writer.sopInstanceUID = segUID
            writer.date = studyDate
            writer.time = studyTime
            let (series, labels) = try labelVolume(masks, imagePaths: imagePaths, size: n)
            try labels.writeStructureSet(
                to: segPath, series: series,
                rois: [StructureSetROIChoice(label: 1, name: liver), StructureSetROIChoice(label: 2, name: spleen)],
                writer: writer)
        case .nifti:
            let (_, labels) = try labelVolume(masks, imagePaths: imagePaths, size: n)
            do { try NIfTI.write(labels, to: segPath, description: "liver 1, spleen 2") } catch {
                throw DICOMError(.write, "cannot write the NIfTI labels: \(error.message)", path: segPath)
            }
        }
        return PatientOutput(
            site: site.name, patientID: patientID, seriesInstanceUID: seriesUID,
            imagePaths: imagePaths, segmentationPath: segPath, liverVoxels: liverVoxels,
            spleenVoxels: spleenVoxels)
    }

    func patientFolder(
        site: SiteProfile, index: Int, generator g: inout SeededGenerator,
        root: String
    ) -> (ct: String, seg: String) {
        let base = root + "/" + site.name
        switch site.layout {
        case .pacsHex:
            let patient = hex8(&g)
            let study = hex8(&g)
            return (
                "\(base)/DICOM/\(patient)/\(study)/\(hex8(&g))",
                "\(base)/DICOM/\(patient)/\(study)/\(hex8(&g))/\(hex8(&g))"
            )
        case .research:
            let sub = String(format: "%@/sub-%03d", base, index + 1)
            if case .structureSet = site.labels { return (sub + "/ct", sub + "/rtstruct/structures.dcm") }
            return (sub + "/ct", sub + "/seg/segmentation.dcm")
        case .flatRandom:
            let folder = String(format: "%@/pt%02d", base, index + 1)
            return (folder, folder + "/SEG\(String(format: "%06d", g.integer(0, 999_999)))")
        }
    }

    /// The series just written (read back as `tessera` reads it) and its labels on the series' grid: 1 liver,
    /// 2 spleen (`masks` is liver then spleen, slices in writing order).
    func labelVolume(_ masks: [UInt8], imagePaths: [String], size n: Int) throws(DICOMError)
        -> (DICOMSeries, Volume<UInt8>)
    {
        var instances: [ImageInstance] = []
        for path in imagePaths { instances.append(try ImageInstance(path: path)) }
        let all = SeriesAssembler().assemble(instances)
        guard all.count == 1, let series = all.first else {
            throw DICOMError(.internalFailure, "the study just written reads back as \(all.count) series")
        }
        let stack = try series.primaryStack()
        let written = Dictionary(uniqueKeysWithValues: imagePaths.enumerated().map { ($1, $0) })
        let plane = n * n
        var voxels = [UInt8](repeating: 0, count: stack.slices.count * plane)
        for (z, slice) in stack.slices.enumerated() {
            guard let k = written[series.instances[slice.instance].path] else { continue }
            for p in 0..<plane {
                if masks[k * plane + p] != 0 {
                    voxels[z * plane + p] = 1
                } else if masks[(imagePaths.count + k) * plane + p] != 0 {
                    voxels[z * plane + p] = 2
                }
            }
        }
        return (series, Volume(geometry: VolumeGeometry(stack: stack), voxels: voxels))
    }

    func fileName(site: SiteProfile, slice k: Int, generator g: inout SeededGenerator) -> String {
        switch site.layout {
        case .pacsHex: return String(format: "%08X", 0x1000 + k)
        case .research: return String(format: "slice_%03d.dcm", k + 1)
        case .flatRandom: return String(format: "IMG%06d", g.integer(0, 999_999)) + String(format: "%02d", k)
        }
    }

    func hex8(_ g: inout SeededGenerator) -> String { String(format: "%08X", UInt32(truncatingIfNeeded: g.next())) }

    func makeDirectory(_ path: String) throws(DICOMError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw DICOMError(.io, "cannot create the folder; check permissions", path: path, cause: "\(error)")
        }
    }
}

func storedValue(_ hu: Double, _ storage: SiteProfile.Storage) -> UInt16 {
    switch storage {
    case .unsigned12: return UInt16(max(0, min(4095, (hu + 1024).rounded())))
    case .signed16: return UInt16(bitPattern: Int16(max(-32768, min(32767, hu.rounded()))))
    case .unsigned16HalfSlope: return UInt16(max(0, min(65535, (2 * (hu + 1000)).rounded())))
    }
}

func rescaleTags(_ storage: SiteProfile.Storage) -> [(DICOMTag, String)] {
    switch storage {
    case .unsigned12: return [(.rescaleIntercept, "-1024"), (.rescaleSlope, "1"), (.rescaleType, "HU")]
    case .signed16: return [(.rescaleIntercept, "0"), (.rescaleSlope, "1"), (.rescaleType, "HU")]
    case .unsigned16HalfSlope: return [(.rescaleIntercept, "-1000"), (.rescaleSlope, "0.5"), (.rescaleType, "HU")]
    }
}

func pixelFormat(_ storage: SiteProfile.Storage) -> (bitsStored: UInt16, signed: Bool) {
    switch storage {
    case .unsigned12: return (12, false)
    case .signed16: return (16, true)
    case .unsigned16HalfSlope: return (16, false)
    }
}

/// A DS value without trailing zeros, e.g. 2.8, -177.8, 5.
func formatMM(_ v: Double) -> String { formatDecimalString(v) }

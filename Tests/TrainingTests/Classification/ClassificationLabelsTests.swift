import DICOMIO
import Foundation
import TestSupport
import Testing
import Training
import Volumes

/// The `classification:` section, series selection within a study, and labels from a CSV or a mapped DICOM tag,
/// on the research-center sample site (4 patients, one CT series and one SEG each).
@Suite("Classification labels and series", .computeBound)
struct ClassificationLabelsTests {
    static let site = repositoryRoot + "/sample-data/research-center"

    static func series() throws -> [DICOMSeries] {
        let scan = try DirectoryScanner().scan(site)
        return SeriesAssembler().assemble(scan.instances).filter { $0.modality == "CT" }
    }

    func configuration(_ section: String, model: String = "architecture: resnet2d") throws -> TrainingConfiguration {
        try TrainingConfiguration(yaml: "model:\n  \(model)\nclassification:\n" + section)
    }

    @Test("The section parses with its defaults; every bad key or value is named")
    func parsing() throws {
        let c = try configuration("  classes: [normal, lesion]\n  labels:\n    csv: labels/site.csv\n")
        let k = try #require(c.classification)
        #expect(k.classes == ["normal", "lesion"] && k.positiveClass == 1 && c.model.classes == 2)
        #expect(
            k.labels == .csv(path: "labels/site.csv", key: .patientID, keyColumn: "PatientID", labelColumn: "label"))
        #expect(k.input == .mip && k.series == SeriesSelector() && k.threshold == 0.5 && c.loss == "ce")
        let t = try configuration(
            "  classes: [a, b, c]\n  positive_class: a\n  labels:\n    tag: \"(0010,0040)\"\n"
                + "    map: {F: a, M: c}\n  series: {modality: any, description: \"Abdomen*\", orientation: any}\n")
        let tk = try #require(t.classification)
        #expect(tk.labels == .tag(DICOMTag(0x0010, 0x0040), map: ["F": 0, "M": 2]) && tk.positiveClass == 0)
        #expect(tk.series == SeriesSelector(modality: nil, description: "Abdomen*", orientation: .any))
        for (section, words) in [
            ("  classes: [a]\n", "classification.classes"),
            ("  classes: [a, a]\n", "lists a class twice"),
            ("  positive_class: z\n", "classification.positive_class"),
            ("  labels:\n    csv: /etc/passwd\n", "inside the site's data folder"),
            ("  labels:\n    csv: ../other/labels.csv\n", "inside the site's data folder"),
            ("  labels:\n    tag: \"0010,0040\"\n", "classification.labels.map"),
            ("  labels:\n    tag: PatientSex\n    map: {F: \"1\"}\n", "GGGG,EEEE"),
            ("  labels:\n    tag: \"0010,0040\"\n    map: {F: three}\n", "not one of the classes"),
            ("  labels:\n    csv: a.csv\n    tag: \"0010,0040\"\n", "choose one source"),
            ("  labels:\n    csv: a.csv\n    key: AccessionNumber\n", "classification.labels.key"),
            ("  input: slab\n", "classification.input"),
            ("  threshold: 1.5\n", "classification.threshold"),
            ("  bootstrap: {samples: 100000000}\n", "max_bootstrap_samples"),
            ("  series: {plane: axial}\n", "classification.series.plane"),
            ("  imbalance: smote\n", "classification.imbalance"),
            ("  input: volume\n", "resnet3d reads the whole volume"),
        ] {
            #expect {
                _ = try configuration(section)
            } throws: { e in
                guard let e = e as? TrainingError, e.message.contains(words) else {
                    Issue.record("\(section): \(e)")
                    return false
                }
                return true
            }
        }
        #expect(throws: TrainingError.self) { _ = try configuration("  input: mip\n", model: "architecture: resnet3d") }
        #expect(throws: TrainingError.self) {
            _ = try TrainingConfiguration(yaml: "model:\n  architecture: resnet2d\n")
        }
        #expect(throws: TrainingError.self) {
            _ = try TrainingConfiguration(yaml: "model:\n  architecture: unet2d\nclassification:\n  input: mip\n")
        }
    }

    @Test("Series selection: one match selected; none and several are errors that list the study's series")
    func selection() throws {
        let all = try Self.series()
        #expect(all.count == 4)
        let chosen = try ClassificationDataset.selectSeries(
            all, selector: SeriesSelector(modality: "CT", description: "abdomen pv*", orientation: .axial))
        #expect(chosen.map(\.seriesInstanceUID) == all.map(\.seriesInstanceUID))
        #expect(SeriesSelector.glob("Abdomen PV 3mm", matches: "abdomen PV 3mm"))
        #expect(SeriesSelector.glob("*PV?3mm", matches: "Abdomen PV 3mm"))
        #expect(!SeriesSelector.glob("*PV", matches: "Abdomen PV 3mm"))
        for selector in [
            SeriesSelector(modality: "MR"), SeriesSelector(description: "Arterial*"),
            SeriesSelector(orientation: .coronal),
        ] {
            #expect {
                _ = try ClassificationDataset.selectSeries(all, selector: selector)
            } throws: { e in
                (e as? TrainingError)?.message.contains(
                    "has no series matching the selection; it holds: CT \"Abdomen PV 3mm\"") == true
            }
        }
        // Two matching series in one study (the same series listed twice stands for a repeated acquisition).
        #expect {
            _ = try ClassificationDataset.selectSeries([all[0], all[0]], selector: SeriesSelector())
        } throws: { e in
            (e as? TrainingError)?.message.contains("has 2 matching series") == true
        }
    }

    @Test("CSV labels by PatientID: missing studies and unused rows are reported, not guessed")
    func csvLabels() throws {
        let all = try Self.series()
        let ids = all.map { ClassificationDataset.keyValue($0, .patientID) }
        #expect(ids == ["RC-0001", "RC-0002", "RC-0003", "RC-0004"])
        let table = try LabelTable(
            csv: Data("PatientID,label\nRC-0001,lesion\nRC-0003,no_lesion\nRC-0009,lesion\n".utf8), key: .patientID,
            keyColumn: "PatientID", labelColumn: "label", classes: ["no_lesion", "lesion"])
        let source = ClassificationConfiguration.LabelSource.csv(
            path: "labels.csv", key: .patientID, keyColumn: "PatientID", labelColumn: "label")
        let (labels, report) = try ClassificationDataset.resolveLabels(all, source: source, table: table)
        #expect(labels == [1, nil, 0, nil])
        #expect(report.unlabelled.map(\.key) == ["RC-0002", "RC-0004"])
        #expect(report.unusedRows == ["RC-0009"])
        #expect(report.lines().count == 2 && report.lines()[0].contains("2 stud(ies) without a label"))
        // By StudyInstanceUID.
        let byStudy = try LabelTable(
            csv: Data("StudyInstanceUID,label\n\(all[1].studyInstanceUID),lesion\n".utf8), key: .studyInstanceUID,
            keyColumn: "StudyInstanceUID", labelColumn: "label", classes: ["no_lesion", "lesion"])
        let studySource = ClassificationConfiguration.LabelSource.csv(
            path: "x", key: .studyInstanceUID, keyColumn: "StudyInstanceUID", labelColumn: "label")
        #expect(
            try ClassificationDataset.resolveLabels(all, source: studySource, table: byStudy).labels == [
                nil, 1, nil, nil,
            ])
    }

    @Test("Tag labels: (0010,0040) Patient Sex read from the files and mapped; unmapped values are reported")
    func tagLabels() throws {
        let all = try Self.series()
        let sexes = try all.map { try ClassificationDataset.readTag($0.instances[0].path, DICOMTag(0x0010, 0x0040)) }
        #expect(sexes.allSatisfy { $0 == "F" || $0 == "M" })
        let source = ClassificationConfiguration.LabelSource.tag(DICOMTag(0x0010, 0x0040), map: ["F": 0, "M": 1])
        let (labels, report) = try ClassificationDataset.resolveLabels(all, source: source, table: nil)
        #expect(labels == sexes.map { $0 == "F" ? 0 : 1 })
        #expect(report.unlabelled.isEmpty)
        let partial = ClassificationConfiguration.LabelSource.tag(DICOMTag(0x0010, 0x0040), map: ["F": 0])
        let p = try ClassificationDataset.resolveLabels(all, source: partial, table: nil)
        #expect(p.labels == sexes.map { $0 == "F" ? 0 : nil })
        #expect(p.report.unlabelled.count == sexes.filter { $0 == "M" }.count)
        #expect(p.report.unlabelled.allSatisfy { $0.reason.contains("(0010,0040) is \"M\", not in") })
        // An absent attribute is reported as absent.
        let absent = ClassificationConfiguration.LabelSource.tag(DICOMTag(0x0008, 0x103F), map: ["x": 0])
        #expect(
            try ClassificationDataset.resolveLabels(all, source: absent, table: nil).report.unlabelled.first?.reason
                .contains("absent") == true)
    }
}

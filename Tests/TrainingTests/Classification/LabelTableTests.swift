import Foundation
import TestSupport
import Testing
import Training

/// The labels CSV reader: the format it accepts (BOM, CRLF, quotes, trailing line end) and every bad row refused
/// with its line named.
@Suite("Labels CSV", .computeBound)
struct LabelTableTests {
    let classes = ["no_lesion", "lesion"]

    func table(_ text: String, limits: LabelCSVLimits = .default, classes: [String]? = nil) throws -> LabelTable {
        try LabelTable(
            csv: Data(text.utf8), key: .patientID, keyColumn: "PatientID", labelColumn: "label",
            classes: classes ?? self.classes, limits: limits)
    }

    @Test("Header, rows, extra columns, quotes, spaces around fields")
    func accepted() throws {
        let t = try table(
            "PatientID,label,note\nCH-0001,lesion,\"two, with comma\"\n  CH-0002 , no_lesion ,x\n"
                + "\"CH-0003\",\"lesion\",\"say \"\"hi\"\"\"\n")
        #expect(t.labels == ["CH-0001": 1, "CH-0002": 0, "CH-0003": 1])
        #expect(t.key == .patientID && t.classes == classes)
    }

    @Test("A byte-order mark, CRLF line ends and no final line end read the same as plain LF")
    func bomAndCRLF() throws {
        let plain = try table("PatientID,label\nA,lesion\nB,no_lesion\n")
        let windows = try LabelTable(
            csv: Data([0xEF, 0xBB, 0xBF]) + Data("PatientID,label\r\nA,lesion\r\nB,no_lesion".utf8), key: .patientID,
            keyColumn: "PatientID", labelColumn: "label", classes: classes)
        #expect(plain == windows)
        #expect(plain.labels == ["A": 1, "B": 0])
        // Trailing blank lines are tolerated; a quoted field may span lines.
        let spanning = try table("PatientID,label,note\nA,lesion,\"line 1\nline 2\"\nB,no_lesion,x\n\n\n")
        #expect(spanning.labels == ["A": 1, "B": 0])
    }

    @Test("Multi-class labels map to the pipeline's class order")
    func multiClass() throws {
        let t = try table("PatientID,label\nA,c\nB,a\nC,b\n", classes: ["a", "b", "c"])
        #expect(t.labels == ["A": 2, "B": 0, "C": 1])
    }

    @Test(
        "Every bad row or file is refused with its line and the fix",
        arguments: [
            ("PatientID,label\nA,lesion\nA,no_lesion\n", "line 3: PatientID \"A\" is given again (first on line 2)"),
            ("PatientID,label\nA,tumour\n", "line 2: unknown class \"tumour\""),
            ("PatientID,label\nA,\n", "line 2: the `label` field is empty"),
            ("PatientID,label\n,lesion\n", "line 2: the `PatientID` field is empty"),
            ("PatientID,label\nA,lesion,extra\n", "line 2: 3 field(s) where the header has 2"),
            ("PatientID,label\nA\n", "line 2: 1 field(s) where the header has 2"),
            ("PatientID,label\nA,lesion\n\nB,lesion\n", "line 3 is empty"),
            ("patient,label\nA,lesion\n", "has no column `PatientID`"),
            ("PatientID,label,label\nA,lesion,x\n", "names `label` 2 times"),
            ("", "is empty"),
            ("PatientID,label\nA,\"lesion\n", "line 2: a quoted field is not closed"),
            ("PatientID,label\nA,les\"ion\n", "a quote inside an unquoted field"),
            ("PatientID,label\nA,\"lesion\"x\n", "text after a closing quote"),
        ])
    func refused(text: String, words: String) {
        #expect {
            _ = try table(text)
        } throws: { error in
            guard let e = error as? TrainingError, e.code == .data, e.message.contains(words) else {
                Issue.record("\(error)")
                return false
            }
            return true
        }
    }

    @Test("Sizes past the documented limits are refused before the rows are kept")
    func limits() throws {
        var small = LabelCSVLimits()
        small.maxRows = 2
        small.maxFieldBytes = 10
        small.maxColumns = 3
        small.maxFileBytes = 64
        #expect(throws: TrainingError.self) {
            try table("PatientID,label\nA,lesion\nB,lesion\nC,lesion\n", limits: small)
        }
        #expect(try table("PatientID,label\nA,lesion\nB,lesion\n", limits: small).labels.count == 2)
        for (text, words) in [
            ("PatientID,label\nABCDEFGHIJK,lesion\n", "max_field_bytes"),
            ("PatientID,label\nA,\"lesion lesion\n", "max_field_bytes"),
            ("PatientID,label,a,b\nA,lesion,1,2\n", "max_columns"),
            ("PatientID,label\n" + String(repeating: "A,lesion\n", count: 10), "max_file_bytes"),
        ] {
            #expect {
                _ = try table(text, limits: small)
            } throws: { e in
                (e as? TrainingError)?.message.contains(words) == true
            }
        }
        // Invalid UTF-8.
        #expect(throws: TrainingError.self) {
            _ = try LabelTable(
                csv: Data("PatientID,label\nA,".utf8) + Data([0xFF, 0xFE]), key: .patientID, keyColumn: "PatientID",
                labelColumn: "label", classes: classes)
        }
    }

    @Test("load(path:) checks the file's size first and names a missing file")
    func load() throws {
        let folder = NSTemporaryDirectory() + "tessera-labels-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Data("StudyInstanceUID,y\n1.2.3,lesion\n".utf8).write(to: URL(fileURLWithPath: folder + "/labels.csv"))
        let t = try LabelTable.load(
            path: folder + "/labels.csv", key: .studyInstanceUID, keyColumn: "StudyInstanceUID", labelColumn: "y",
            classes: classes)
        #expect(t.labels == ["1.2.3": 1])
        var tiny = LabelCSVLimits()
        tiny.maxFileBytes = 10
        #expect {
            _ = try LabelTable.load(
                path: folder + "/labels.csv", key: .studyInstanceUID, keyColumn: "StudyInstanceUID",
                labelColumn: "y", classes: classes, limits: tiny)
        } throws: { e in
            (e as? TrainingError)?.message.contains("max_file_bytes") == true
        }
        #expect {
            _ = try LabelTable.load(
                path: folder + "/missing.csv", key: .patientID, keyColumn: "PatientID", labelColumn: "label",
                classes: classes)
        } throws: { e in
            (e as? TrainingError)?.code == .io
        }
    }
}

import Foundation

/// Which DICOM identifier the rows of a labels CSV are keyed by.
public enum LabelKey: String, Sendable, CaseIterable {
    /// (0010,0020) Patient ID: every study of the patient gets the row's class.
    case patientID = "PatientID"
    /// (0020,000D) Study Instance UID.
    case studyInstanceUID = "StudyInstanceUID"
    /// (0020,000E) Series Instance UID (of the series the pipeline's `classification.series` selects).
    case seriesInstanceUID = "SeriesInstanceUID"
}

/// Bounds on a labels CSV, checked before anything of it is kept: the file is the site's, but it is read by the
/// same process that talks to the network, so it is treated as outside data. Documented in `docs/limits-pipeline.md`.
public struct LabelCSVLimits: Sendable, Equatable {
    /// Size of the file, bytes (checked before it is read).
    public var maxFileBytes = 16 << 20
    /// Data rows (the header not counted).
    public var maxRows = 100_000
    /// Columns of a row.
    public var maxColumns = 64
    /// Bytes of one field (after unquoting).
    public var maxFieldBytes = 256

    public init() {}
    public static let `default` = LabelCSVLimits()
}

/// A site's study labels read from a CSV it keeps beside its data: one row per key (patient, study or series),
/// one class per row.
///
/// Format (RFC 4180): UTF-8 (a leading byte-order mark is dropped), a header row naming the columns, comma
/// separators, fields optionally in double quotes (`""` inside quotes is one quote, quoted fields may hold commas
/// and line breaks), LF or CRLF line ends, an optional final line end. Fields are trimmed of spaces and tabs. Every
/// row must have as many fields as the header; the key must be non-empty and unique; the label must be one of the
/// pipeline's class names. Any other row is an error naming its line: a label is never guessed.
public struct LabelTable: Sendable, Equatable {
    public var key: LabelKey
    /// Class names; a row's class is the index of its label here.
    public var classes: [String]
    /// Class index by key value.
    public var labels: [String: Int]

    public init(key: LabelKey, classes: [String], labels: [String: Int]) {
        self.key = key
        self.classes = classes
        self.labels = labels
    }

    /// Parses CSV text.
    /// - Parameters:
    ///   - keyColumn: header of the key column (e.g. `PatientID`).
    ///   - labelColumn: header of the label column.
    ///   - classes: the pipeline's class names; a label must equal one of them exactly (after trimming).
    /// - Throws: `.data` naming the line and the fix: a size past `limits`, a missing or repeated header column,
    ///   a row with the wrong number of fields, an empty key, a key given twice, an empty or unknown label, an
    ///   unterminated quote, invalid UTF-8.
    public init(
        csv data: Data, key: LabelKey, keyColumn: String, labelColumn: String, classes: [String],
        limits: LabelCSVLimits = .default, source: String = "the labels CSV"
    ) throws(TrainingError) {
        guard data.count <= limits.maxFileBytes else {
            throw TrainingError(
                .data,
                "\(source) is \(data.count) bytes, more than \(limits.maxFileBytes) (limit max_file_bytes); "
                    + "split it or keep only the rows of this study")
        }
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw TrainingError(.data, "\(source) is not valid UTF-8 text; save it as UTF-8 CSV")
        }
        let rows = try Self.records(bytes, limits: limits, source: source)
        guard let header = rows.first, !(header.fields.count == 1 && header.fields[0].isEmpty) else {
            throw TrainingError(
                .data, "\(source) is empty; it needs a header row naming `\(keyColumn)` and `\(labelColumn)`")
        }
        func column(_ name: String) throws(TrainingError) -> Int {
            let matches = header.fields.indices.filter { header.fields[$0] == name }
            guard matches.count == 1 else {
                throw TrainingError(
                    .data,
                    "\(source): the header "
                        + (matches.isEmpty ? "has no column `\(name)`" : "names `\(name)` \(matches.count) times")
                        + " (columns: \(header.fields.map { "`\($0)`" }.joined(separator: ", ")))")
            }
            return matches[0]
        }
        let keyIndex = try column(keyColumn)
        let labelIndex = try column(labelColumn)
        guard rows.count - 1 <= limits.maxRows else {
            throw TrainingError(
                .data, "\(source) has \(rows.count - 1) rows, more than \(limits.maxRows) (limit max_rows)")
        }
        var classIndex: [String: Int] = [:]
        for (i, c) in classes.enumerated() { classIndex[c] = i }
        var labels: [String: Int] = [:]
        var firstLine: [String: Int] = [:]
        for row in rows.dropFirst() {
            let line = row.line
            guard row.fields.count == header.fields.count else {
                throw TrainingError(
                    .data,
                    "\(source) line \(line): \(row.fields.count) field(s) where the header has "
                        + "\(header.fields.count); quote fields that contain commas")
            }
            let keyValue = row.fields[keyIndex]
            guard !keyValue.isEmpty else {
                throw TrainingError(.data, "\(source) line \(line): the `\(keyColumn)` field is empty")
            }
            if let first = firstLine[keyValue] {
                throw TrainingError(
                    .data,
                    "\(source) line \(line): \(key.rawValue) \(Self.shown(keyValue)) is given again (first on "
                        + "line \(first)); keep one row per \(key.rawValue)")
            }
            let label = row.fields[labelIndex]
            guard let c = classIndex[label] else {
                throw TrainingError(
                    .data,
                    "\(source) line \(line): "
                        + (label.isEmpty ? "the `\(labelColumn)` field is empty" : "unknown class \(Self.shown(label))")
                        + "; the pipeline's classes are \(classes.map { "`\($0)`" }.joined(separator: ", "))")
            }
            firstLine[keyValue] = line
            labels[keyValue] = c
        }
        self.init(key: key, classes: classes, labels: labels)
    }

    /// Reads the file at `path` (its size checked before it is read).
    /// - Throws: `.io` when it cannot be read, `.data` as `init(csv:…)`.
    public static func load(
        path: String, key: LabelKey, keyColumn: String, labelColumn: String, classes: [String],
        limits: LabelCSVLimits = .default
    ) throws(TrainingError) -> LabelTable {
        let size: Int
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            size = (attributes[.size] as? NSNumber)?.intValue ?? Int.max
        } catch {
            throw TrainingError(
                .io, "cannot read the labels CSV \(path); check `classification.labels.csv`", cause: "\(error)")
        }
        guard size <= limits.maxFileBytes else {
            throw TrainingError(
                .data,
                "the labels CSV \(path) is \(size) bytes, more than \(limits.maxFileBytes) (limit max_file_bytes)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError(.io, "cannot read the labels CSV \(path)")
        }
        return try LabelTable(
            csv: data, key: key, keyColumn: keyColumn, labelColumn: labelColumn, classes: classes, limits: limits,
            source: "the labels CSV \(path)")
    }

    /// A value as shown in messages: quoted, at most 64 characters.
    static func shown(_ value: String) -> String {
        "\"" + (value.count > 64 ? String(value.prefix(64)) + "…" : value) + "\""
    }

    struct Record {
        var line: Int
        var fields: [String]
    }

    /// Splits RFC 4180 text into records, each with the line it starts on (1-based).
    static func records(_ bytes: [UInt8], limits: LabelCSVLimits, source: String) throws(TrainingError) -> [Record] {
        let quote = UInt8(ascii: "\"")
        let comma = UInt8(ascii: ",")
        let cr = UInt8(ascii: "\r")
        let lf = UInt8(ascii: "\n")
        var records: [Record] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var line = 1
        var recordLine = 1
        var quoted = false
        var wasQuoted = false
        var i = 0
        func finishField() throws(TrainingError) {
            guard field.count <= limits.maxFieldBytes else {
                throw TrainingError(
                    .data,
                    "\(source) line \(line): a field of \(field.count) bytes, more than \(limits.maxFieldBytes) "
                        + "(limit max_field_bytes)")
            }
            guard fields.count < limits.maxColumns else {
                throw TrainingError(
                    .data, "\(source) line \(line): more than \(limits.maxColumns) columns (limit max_columns)")
            }
            let text = String(decoding: field, as: UTF8.self)
            fields.append(wasQuoted ? text : text.trimmingCharacters(in: CharacterSet(charactersIn: " \t")))
            field.removeAll(keepingCapacity: true)
            wasQuoted = false
        }
        func finishRecord() throws(TrainingError) {
            try finishField()
            guard records.count <= limits.maxRows else {
                throw TrainingError(
                    .data, "\(source) has more than \(limits.maxRows) rows (limit max_rows)")
            }
            records.append(Record(line: recordLine, fields: fields))
            fields.removeAll()
        }
        while i < bytes.count {
            let b = bytes[i]
            if quoted {
                if b == quote {
                    if i + 1 < bytes.count && bytes[i + 1] == quote {
                        field.append(quote)
                        i += 1
                    } else {
                        quoted = false
                    }
                } else {
                    if b == lf { line += 1 }
                    field.append(b)
                }
                guard field.count <= limits.maxFieldBytes else {
                    throw TrainingError(
                        .data,
                        "\(source) line \(recordLine): a field longer than \(limits.maxFieldBytes) bytes "
                            + "(limit max_field_bytes); is a closing quote missing?")
                }
            } else if b == quote {
                let blank = field.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                guard blank, !wasQuoted else {
                    throw TrainingError(
                        .data, "\(source) line \(line): a quote inside an unquoted field; quote the whole field")
                }
                field.removeAll()
                quoted = true
                wasQuoted = true
            } else if b == comma {
                try finishField()
            } else if b == lf || b == cr {
                if b == cr && i + 1 < bytes.count && bytes[i + 1] == lf { i += 1 }
                try finishRecord()
                line += 1
                recordLine = line
            } else {
                if wasQuoted && b != UInt8(ascii: " ") && b != UInt8(ascii: "\t") {
                    throw TrainingError(
                        .data, "\(source) line \(line): text after a closing quote; quote the whole field")
                }
                if !wasQuoted { field.append(b) }
                guard field.count <= limits.maxFieldBytes else {
                    throw TrainingError(
                        .data,
                        "\(source) line \(line): a field longer than \(limits.maxFieldBytes) bytes "
                            + "(limit max_field_bytes)")
                }
            }
            i += 1
        }
        if quoted {
            throw TrainingError(
                .data, "\(source) line \(recordLine): a quoted field is not closed before the end of the file")
        }
        // The last record, unless the text ended with a line end (or is empty).
        if !field.isEmpty || !fields.isEmpty || wasQuoted { try finishRecord() }
        // A blank line counts as an empty record; only trailing blank lines are tolerated.
        while let last = records.last, last.fields == [""] { records.removeLast() }
        if let blank = records.first(where: { $0.fields == [""] }) {
            throw TrainingError(.data, "\(source) line \(blank.line) is empty; remove blank lines between rows")
        }
        return records
    }
}

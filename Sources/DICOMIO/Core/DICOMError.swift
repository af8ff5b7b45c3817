/// The one error type of `DICOMIO`: what failed, for which file, and how to fix it.
///
/// Codes mirror the shim's `TSR_*` status codes where the failure comes from DCMTK, plus the geometry and
/// content checks done in Swift.
public struct DICOMError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let fileNotFound = Code("file-not-found")
        public static let io = Code("io")
        public static let notDICOM = Code("not-dicom")
        public static let parse = Code("parse")
        public static let unsupportedTransferSyntax = Code("unsupported-transfer-syntax")
        public static let decode = Code("decode")
        public static let write = Code("write")
        public static let invalidArgument = Code("invalid-argument")
        public static let missingAttribute = Code("missing-attribute")
        public static let invalidAttribute = Code("invalid-attribute")
        public static let unsupportedImage = Code("unsupported-image")
        public static let truncatedPixelData = Code("truncated-pixel-data")
        public static let geometry = Code("geometry")
        public static let segmentation = Code("segmentation")
        public static let seriesSelection = Code("series-selection")
        /// An RT Structure Set that cannot be read or rasterised (contours off the slice planes, oblique planes,
        /// counts that disagree, missing references, empty or ambiguous ROIs).
        public static let structureSet = Code("rtstruct")
        /// DCMTK or OpenJPEG threw inside the shim (out of memory on a hostile size, internal error).
        public static let internalFailure = Code("internal")
        /// A DICOM object that is not an image for training (RT Dose, RT Structure Set, SR, presentation state...).
        public static let notImage = Code("not-image")
    }

    public var code: Code
    /// What failed and what to do about it, in one or two sentences.
    public var message: String
    /// The file concerned, when there is one.
    public var path: String?
    /// The underlying error, if any (e.g. a POSIX error).
    public var cause: String?

    public init(_ code: Code, _ message: String, path: String? = nil, cause: String? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.cause = cause
    }

    public var description: String {
        var text = "[\(code)] "
        if let path { text += "\(path): " }
        text += message
        if let cause { text += " (cause: \(cause))" }
        return text
    }
}

extension DICOMError.Code {
    /// Maps a shim status code to an error code.
    init(shimCode: Int32) {
        switch shimCode {
        case 1: self = .fileNotFound
        case 2: self = .io
        case 3: self = .notDICOM
        case 4: self = .parse
        case 5: self = .unsupportedTransferSyntax
        case 6: self = .decode
        case 7: self = .write
        case 9: self = .internalFailure
        default: self = .invalidArgument
        }
    }

    /// The advice a user needs for a shim failure of this kind.
    var advice: String {
        switch self {
        case .fileNotFound: return "Check the path."
        case .io: return "Check that the file is readable (permissions, disk)."
        case .notDICOM: return "The file is not DICOM; it is skipped. Remove it from the folder if it does not belong."
        case .parse: return "The file is corrupt or truncated; re-export it from the PACS."
        case .unsupportedTransferSyntax:
            return "Re-export the series uncompressed or in a supported syntax (e.g. `dcmdjpeg`/`gdcmconv --raw`)."
        case .decode: return "The compressed pixel data is damaged; re-export the file from the PACS."
        case .write: return "Check the output folder and the values being written."
        case .internalFailure: return "The file is skipped; check its header sizes or re-export it from the PACS."
        default: return ""
        }
    }
}

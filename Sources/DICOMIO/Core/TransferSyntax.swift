/// A transfer syntax (PS3.5 §10, PS3.6 Annex A) and whether Tessera decodes it.
public struct TransferSyntax: Hashable, Sendable, CustomStringConvertible {
    public let uid: String

    public init(uid: String) { self.uid = uid }

    public static let implicitVRLittleEndian = TransferSyntax(uid: "1.2.840.10008.1.2")
    public static let explicitVRLittleEndian = TransferSyntax(uid: "1.2.840.10008.1.2.1")
    public static let deflatedExplicitVRLittleEndian = TransferSyntax(uid: "1.2.840.10008.1.2.1.99")
    public static let explicitVRBigEndian = TransferSyntax(uid: "1.2.840.10008.1.2.2")
    public static let jpegBaseline = TransferSyntax(uid: "1.2.840.10008.1.2.4.50")
    public static let jpegExtended = TransferSyntax(uid: "1.2.840.10008.1.2.4.51")
    public static let jpegLossless = TransferSyntax(uid: "1.2.840.10008.1.2.4.57")
    public static let jpegLosslessSV1 = TransferSyntax(uid: "1.2.840.10008.1.2.4.70")
    public static let jpegLSLossless = TransferSyntax(uid: "1.2.840.10008.1.2.4.80")
    public static let jpegLSNearLossless = TransferSyntax(uid: "1.2.840.10008.1.2.4.81")
    public static let jpeg2000Lossless = TransferSyntax(uid: "1.2.840.10008.1.2.4.90")
    public static let jpeg2000 = TransferSyntax(uid: "1.2.840.10008.1.2.4.91")
    public static let rleLossless = TransferSyntax(uid: "1.2.840.10008.1.2.5")

    static let names: [String: String] = [
        "1.2.840.10008.1.2": "Implicit VR Little Endian",
        "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
        "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
        "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
        "1.2.840.10008.1.2.4.50": "JPEG Baseline (Process 1)",
        "1.2.840.10008.1.2.4.51": "JPEG Extended (Process 2 & 4)",
        "1.2.840.10008.1.2.4.57": "JPEG Lossless (Process 14)",
        "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
        "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
        "1.2.840.10008.1.2.4.81": "JPEG-LS Near-Lossless",
        "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
        "1.2.840.10008.1.2.4.91": "JPEG 2000",
        "1.2.840.10008.1.2.4.201": "HTJ2K Lossless",
        "1.2.840.10008.1.2.4.202": "HTJ2K Lossless RPCL",
        "1.2.840.10008.1.2.4.203": "HTJ2K",
        "1.2.840.10008.1.2.5": "RLE Lossless",
    ]

    /// A human name, e.g. "JPEG-LS Lossless".
    public var name: String { Self.names[uid] ?? "unknown transfer syntax" }

    /// True for syntaxes whose pixel data Tessera decodes (DCMTK codecs, OpenJPEG for JPEG 2000).
    public var isSupported: Bool { Self.names[uid] != nil }

    /// True for the uncompressed syntaxes, whose (7FE0,0010) Pixel Data length is known from the header.
    public var isNative: Bool {
        self == .implicitVRLittleEndian || self == .explicitVRLittleEndian || self == .explicitVRBigEndian
            || self == .deflatedExplicitVRLittleEndian
    }

    public var description: String { "\(name) (\(uid))" }
}

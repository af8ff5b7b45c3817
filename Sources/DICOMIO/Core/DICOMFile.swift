import CDCMTKShim
import Foundation

/// One DICOM file read through DCMTK (`DcmFileFormat`).
///
/// Not `Sendable`: DCMTK decodes pixel data in place, so a file belongs to one task at a time. Open a file per
/// task (the scanner and the series loader do).
public final class DICOMFile {
    let handle: OpaquePointer
    public let path: String
    /// The transfer syntax the file was written in, (0002,0010).
    public let transferSyntax: TransferSyntax

    /// Reads a file's attributes. Values longer than `maxReadLength` bytes (pixel data) stay on disk until
    /// `pixelData()` asks for them; 0 reads everything at once.
    ///
    /// - Throws: `DICOMError` `.fileNotFound`, `.io`, `.notDICOM` or `.parse`, with advice.
    public init(path: String, maxReadLength: UInt32 = 4096) throws(DICOMError) {
        var status = TSRStatus()
        guard let handle = tsr_file_open(path, maxReadLength, &status) else {
            let code = DICOMError.Code(shimCode: status.code)
            throw DICOMError(code, statusMessage(&status) + ". " + code.advice, path: path)
        }
        self.handle = handle
        self.path = path
        var buffer = [CChar](repeating: 0, count: 128)
        let n = tsr_file_transfer_syntax(handle, &buffer, buffer.count)
        let uid = n >= 0 ? decodeCString(buffer) : ""
        self.transferSyntax = TransferSyntax(uid: uid)
    }

    deinit { tsr_file_free(handle) }

    /// The main dataset.
    public var dataset: DICOMItem { DICOMItem(pointer: tsr_file_dataset(handle), owner: self) }
    /// The file meta information (group 0002).
    public var metaHeader: DICOMItem { DICOMItem(pointer: tsr_file_meta_header(handle), owner: self) }

    /// (7FE0,0010) Pixel Data, decoded to native form (all frames), handed to `body` without copying.
    ///
    /// For `BitsAllocated` 16 the bytes are host-order 16-bit words; for 1 (SEG) they are bit-packed.
    /// - Throws: `.unsupportedTransferSyntax` or `.decode` when the codec fails, `.missingAttribute` without pixels.
    public func withPixelData<R>(_ body: (UnsafeRawBufferPointer) throws(DICOMError) -> R) throws(DICOMError) -> R {
        var status = TSRStatus()
        var bytes: UnsafePointer<UInt8>?
        var length = 0
        let rc = tsr_file_pixel_data(handle, &bytes, &length, &status)
        guard rc == 0, let bytes else {
            var code = DICOMError.Code(shimCode: status.code)
            if code == .fileNotFound { code = .missingAttribute }
            throw DICOMError(code, statusMessage(&status) + ". " + code.advice, path: path)
        }
        return try body(UnsafeRawBufferPointer(start: bytes, count: length))
    }

    /// Frees decoded pixel data kept in memory.
    public func releasePixelData() { tsr_file_release_pixel_data(handle) }
}

/// Turns DCMTK's diagnostics off (the default) or on; registers the codecs. Safe to call from any thread.
public func configureDICOMLogging(verbose: Bool) {
    tsr_initialize(verbose ? (ProcessInfo.processInfo.environment["TESSERA_DCMTK_DEBUG"] != nil ? 2 : 1) : 0)
}

func statusMessage(_ status: inout TSRStatus) -> String {
    withUnsafeBytes(of: &status.message) { raw in
        let bytes = raw.bindMemory(to: UInt8.self)
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[0..<end], as: UTF8.self)
    }
}

func decodeCString(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

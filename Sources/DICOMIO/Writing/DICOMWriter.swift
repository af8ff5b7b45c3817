import CDCMTKShim

/// Builds a DICOM dataset and writes it as a Part 10 file in a chosen transfer syntax (encoding through DCMTK's
/// RLE, JPEG and JPEG-LS codecs). Used by the sample-data generator and by test fixtures.
public final class DICOMWriter {
    private let handle: OpaquePointer

    public init() {
        handle = tsr_writer_new()
    }

    deinit { tsr_writer_free(handle) }

    /// The dataset being built.
    public var dataset: WritableDICOMItem { WritableDICOMItem(pointer: tsr_writer_dataset(handle), owner: self) }

    /// Writes the file. `nearLossless` is JPEG-LS NEAR for `.jpegLSNearLossless`.
    public func write(
        to path: String, transferSyntax: TransferSyntax = .explicitVRLittleEndian,
        nearLossless: UInt16 = 2
    ) throws(DICOMError) {
        var status = TSRStatus()
        if tsr_writer_save(handle, path, transferSyntax.uid, nearLossless, &status) != 0 {
            throw DICOMError(DICOMError.Code(shimCode: status.code), statusMessage(&status), path: path)
        }
    }
}

/// A dataset or sequence item being written.
public struct WritableDICOMItem {
    let pointer: UnsafeMutableRawPointer?
    let owner: AnyObject

    /// Puts a value given as text (VR from the data dictionary; several values separated by `\`).
    public func set(_ tag: DICOMTag, _ value: String) throws(DICOMError) {
        var status = TSRStatus()
        if tsr_item_put_string(pointer, tag.group, tag.element, value, &status) != 0 {
            throw DICOMError(.write, statusMessage(&status))
        }
    }

    /// Puts an unsigned short (US) value.
    public func set(_ tag: DICOMTag, uint16 value: UInt16) throws(DICOMError) {
        var status = TSRStatus()
        if tsr_item_put_uint16(pointer, tag.group, tag.element, value, &status) != 0 {
            throw DICOMError(.write, statusMessage(&status))
        }
    }

    /// Puts unsigned shorts with VR US (e.g. (0028,3002) LUT Descriptor, (0028,3006) LUT Data).
    public func set(_ tag: DICOMTag, uint16s values: [UInt16]) throws(DICOMError) {
        var status = TSRStatus()
        if tsr_item_put_uint16s(pointer, tag.group, tag.element, values, values.count, &status) != 0 {
            throw DICOMError(.write, statusMessage(&status))
        }
    }

    /// Appends an item to a sequence (created when absent).
    public func appendItem(_ tag: DICOMTag) throws(DICOMError) -> WritableDICOMItem {
        var status = TSRStatus()
        guard let item = tsr_item_append_item(pointer, tag.group, tag.element, &status) else {
            throw DICOMError(.write, statusMessage(&status))
        }
        return WritableDICOMItem(pointer: item, owner: owner)
    }

    /// Puts (7FE0,0010) Pixel Data as 16-bit words (OW).
    public func setPixelData(_ words: [UInt16]) throws(DICOMError) {
        var status = TSRStatus()
        let rc = words.withUnsafeBytes { tsr_item_put_pixel_data(pointer, $0.baseAddress, $0.count, 16, &status) }
        if rc != 0 { throw DICOMError(.write, statusMessage(&status)) }
    }

    /// Puts (7FE0,0010) Pixel Data as bytes (OB): 8-bit samples or bit-packed 1-bit data.
    public func setPixelData(bytes: [UInt8]) throws(DICOMError) {
        var status = TSRStatus()
        let rc = bytes.withUnsafeBytes { tsr_item_put_pixel_data(pointer, $0.baseAddress, $0.count, 8, &status) }
        if rc != 0 { throw DICOMError(.write, statusMessage(&status)) }
    }
}

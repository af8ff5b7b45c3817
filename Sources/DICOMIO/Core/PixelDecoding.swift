extension ImageInstance {
    /// Bytes of one frame in the decoded pixel data (BitsAllocated 8/16/32; 1-bit data is handled by SEG code).
    var bytesPerFrame: Int { rows * columns * max(bitsAllocated, 8) / 8 }

    /// Checks that the image can be read as a grey-scale volume slice.
    /// - Throws: `.unsupportedImage` for colour images (RGB, YBR, palette) and 1-bit images.
    public func checkGrayscale() throws(DICOMError) {
        guard samplesPerPixel == 1,
            photometricInterpretation == "MONOCHROME2" || photometricInterpretation == "MONOCHROME1"
        else {
            throw DICOMError(
                .unsupportedImage,
                "colour image ((0028,0004) Photometric Interpretation \(photometricInterpretation), "
                    + "(0028,0002) Samples per Pixel \(samplesPerPixel)): CT/MR volumes must be "
                    + "grey-scale; Tessera does not convert colour silently. Remove this series or "
                    + "export the original grey-scale images.", path: path)
        }
        guard bitsAllocated >= 8 else {
            throw DICOMError(.unsupportedImage, "1-bit pixel data is only read as a DICOM SEG", path: path)
        }
    }

    /// Decodes every frame of this instance into real-world values (HU for CT):
    /// `value = stored × (0028,1053) Rescale Slope + (0028,1052) Rescale Intercept`, computed in float, or the
    /// (0028,3000) Modality LUT Sequence when present (PS3.3 C.11.1).
    ///
    /// - Parameters:
    ///   - file: the opened file (its pixel data is decoded in place and released afterwards).
    ///   - destination: `frames × rows × columns` floats, x fastest; frame `f` goes to
    ///     `destination[f * rows * columns]`.
    /// - Throws: `.truncatedPixelData` when the decoded data is shorter than the header says, codec errors otherwise.
    public func decodeFrames(from file: DICOMFile, into destination: UnsafeMutableBufferPointer<Float>)
        throws(DICOMError)
    {
        try checkGrayscale()
        let plane = rows * columns
        precondition(destination.count >= plane * numberOfFrames, "destination too small")
        let bytesPerFrame = self.bytesPerFrame
        let frameCount = numberOfFrames
        let frames = self.frames
        let lut = modalityLUT
        let bitsStored = self.bitsStored
        let highBit = self.highBit
        let signed = pixelRepresentation == 1
        let bitsAllocated = self.bitsAllocated
        let path = self.path
        try file.withPixelData { (raw) throws(DICOMError) in
            guard raw.count >= bytesPerFrame * frameCount else {
                throw DICOMError(
                    .truncatedPixelData,
                    "pixel data holds \(raw.count) bytes but \(frameCount) frame(s) of \(rows)×\(columns) "
                        + "at \(bitsAllocated) bits need \(bytesPerFrame * frameCount): the file is "
                        + "truncated; re-export it", path: path)
            }
            for f in 0..<frameCount {
                let out = UnsafeMutableBufferPointer(rebasing: destination[(f * plane)..<((f + 1) * plane)])
                let slope = Float(frames[f].rescaleSlope)
                let intercept = Float(frames[f].rescaleIntercept)
                let base = raw.baseAddress! + f * bytesPerFrame
                switch bitsAllocated {
                case 16:
                    let words = base.assumingMemoryBound(to: UInt16.self)
                    convert16(
                        words, plane, out, bitsStored: bitsStored, highBit: highBit, signed: signed,
                        slope: slope, intercept: intercept, lut: lut)
                case 8:
                    let bytes = base.assumingMemoryBound(to: UInt8.self)
                    convertGeneric(
                        plane, out, bitsStored: bitsStored, highBit: highBit, signed: signed,
                        slope: slope, intercept: intercept, lut: lut
                    ) { UInt32(bytes[$0]) }
                default:
                    let words = base.assumingMemoryBound(to: UInt32.self)
                    convertGeneric(
                        plane, out, bitsStored: bitsStored, highBit: highBit, signed: signed,
                        slope: slope, intercept: intercept, lut: lut
                    ) { words[$0] }
                }
            }
        }
        file.releasePixelData()
    }
}

/// Fast path for 16-bit words: mask to (0028,0101) Bits Stored below (0028,0102) High Bit, sign-extend if
/// (0028,0103) Pixel Representation is 1, then rescale.
@inline(__always)
func convert16(
    _ words: UnsafePointer<UInt16>, _ n: Int, _ out: UnsafeMutableBufferPointer<Float>,
    bitsStored: Int, highBit: Int, signed: Bool, slope: Float, intercept: Float, lut: ModalityLUT?
) {
    let shift = highBit + 1 - bitsStored
    if let lut {
        for i in 0..<n { out[i] = lut.apply(storedValue16(words[i], bitsStored, shift, signed)) }
        return
    }
    if bitsStored == 16 && shift == 0 {
        if signed {
            words.withMemoryRebound(to: Int16.self, capacity: n) { s in
                for i in 0..<n { out[i] = Float(s[i]) * slope + intercept }
            }
        } else {
            for i in 0..<n { out[i] = Float(words[i]) * slope + intercept }
        }
        return
    }
    if signed {
        let up = Int32(32 - bitsStored)
        for i in 0..<n {
            let v = (Int32(bitPattern: UInt32(words[i] >> UInt16(shift)) << UInt32(up))) >> up
            out[i] = Float(v) * slope + intercept
        }
    } else {
        let mask = UInt16(truncatingIfNeeded: (1 << bitsStored) - 1)
        for i in 0..<n { out[i] = Float((words[i] >> UInt16(shift)) & mask) * slope + intercept }
    }
}

@inline(__always)
func storedValue16(_ w: UInt16, _ bitsStored: Int, _ shift: Int, _ signed: Bool) -> Int {
    let v = Int(w >> UInt16(shift)) & ((1 << bitsStored) - 1)
    if signed && v >= (1 << (bitsStored - 1)) { return v - (1 << bitsStored) }
    return v
}

@inline(__always)
func convertGeneric(
    _ n: Int, _ out: UnsafeMutableBufferPointer<Float>, bitsStored: Int, highBit: Int,
    signed: Bool, slope: Float, intercept: Float, lut: ModalityLUT?, _ word: (Int) -> UInt32
) {
    let shift = UInt32(highBit + 1 - bitsStored)
    let mask: UInt64 = (UInt64(1) << UInt64(bitsStored)) - 1
    for i in 0..<n {
        var v = Int64(UInt64(word(i) >> shift) & mask)
        if signed && v >= Int64(1) << Int64(bitsStored - 1) { v -= Int64(1) << Int64(bitsStored) }
        if let lut { out[i] = lut.apply(Int(v)) } else { out[i] = Float(v) * slope + intercept }
    }
}

import DICOMIO
import Foundation

/// NIfTI-1 images (not only label maps) as float volumes, for sites without DICOM (`model.nifti_images`).
///
/// Intensities are the stored values × scl_slope + scl_inter (nifti1_io's rule: a non-finite or zero slope means
/// no scaling), in float32, so an int16 CT written by dcm2niix with slope 1 and intercept −1024 reads as HU.
extension NIfTI {
    /// NIfTI datatype codes accepted for images, with their names and bits: the label datatypes and float64.
    public static let imageDatatypes: [Int: (name: String, bits: Int)] = labelDatatypes.merging([
        64: ("float64", 64)
    ]) { a, _ in a }

    /// The largest magnitude an image voxel may have after scaling: float32's range, and far beyond any HU.
    public static let maxImageMagnitude = 1e30
}

extension NIfTI.File {
    /// Calls `body(index, value)` for every voxel (x fastest) with its value after scl_slope/scl_inter.
    /// The datatype must be one of `NIfTI.imageDatatypes` with a matching bitpix (the callers check it).
    func forEachScaledValue(_ body: (Int, Double) -> Void) {
        // As nifti1_io: a non-finite scl_slope or scl_inter counts as 0 (nibabel writes NaN for "unset"), and
        // slope 0 means no scaling.
        let slope = scaling.slope.isFinite ? scaling.slope : 0
        let inter = scaling.inter.isFinite ? scaling.inter : 0
        let scaled = slope != 0 && !(slope == 1 && inter == 0)
        let count = dimensions.x * dimensions.y * dimensions.z
        data.withUnsafeBytes { raw in
            func value(_ i: Int) -> Double {
                switch datatype {
                case 2: return Double(raw[i])
                case 4: return Double(raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))
                case 512: return Double(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                case 8: return Double(raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
                case 64: return raw.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)
                default: return Double(raw.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
                }
            }
            for i in 0..<count {
                let v = value(i)
                body(i, scaled ? slope * v + inter : v)
            }
        }
    }

    /// The voxels as float32 intensities (x fastest), after scl_slope/scl_inter.
    /// - Throws: for a datatype other than uint8, int16, uint16, int32, float32 or float64 (or a bitpix that
    ///   disagrees with it), and for a value that is not finite or beyond ±`NIfTI.maxImageMagnitude` after scaling
    ///   (naming the first such voxel and how many there are).
    public func imageValues(path: String = "") throws(NIfTI.Error) -> [Float] {
        guard let type = NIfTI.imageDatatypes[datatype] else {
            throw NIfTI.Error(
                message: "datatype \(datatype) is not an image datatype; images are uint8, int16, uint16, int32, "
                    + "float32 or float64 (codes 2, 4, 512, 8, 16, 64)", path: path)
        }
        guard bitsPerVoxel == type.bits else {
            throw NIfTI.Error(
                message: "bitpix \(bitsPerVoxel) disagrees with datatype \(type.name) (\(type.bits) bits)", path: path)
        }
        var out = [Float](repeating: 0, count: dimensions.x * dimensions.y * dimensions.z)
        var bad = 0
        var first: (index: Int, value: Double)?
        forEachScaledValue { i, v in
            if v.isFinite, abs(v) <= NIfTI.maxImageMagnitude {
                out[i] = Float(v)
            } else {
                bad += 1
                if first == nil { first = (i, v) }
            }
        }
        if let first {
            throw NIfTI.Error(
                message: "\(bad) voxel(s) are not finite or beyond ±\(NIfTI.maxImageMagnitude) after scl_slope "
                    + "\(scaling.slope) and scl_inter \(scaling.inter), the first at index \(first.index) with "
                    + "value \(first.value)", path: path)
        }
        return out
    }
}

extension Volume where Voxel == Float {
    /// A NIfTI-1 image on the grid its sform (else qform) gives, read as LPS (`NIfTI.File.geometry`).
    ///
    /// - Parameters:
    ///   - maxBytes: the largest decompressed file read.
    ///   - maxVoxels: the most voxels accepted (checked from the header, before the voxels are converted).
    /// - Throws: the reader's errors, `imageValues`' (datatype, non-finite values), and a grid beyond `maxVoxels`
    ///   or with a singular affine.
    public init(
        niftiImage path: String, maxBytes: Int = NIfTI.defaultMaxBytes,
        maxVoxels: Int = ReadingLimits.default.maxVoxelsPerVolume
    ) throws(NIfTI.Error) {
        let file = try NIfTI.read(path, maxBytes: maxBytes)
        let grid = try file.geometry(path: path)
        // int16 dims: the product fits in an Int.
        let voxels = grid.dimensions.x * grid.dimensions.y * grid.dimensions.z
        guard voxels <= maxVoxels else {
            throw NIfTI.Error(
                message: "\(grid.dimensions.x)×\(grid.dimensions.y)×\(grid.dimensions.z) voxels is more than "
                    + "\(maxVoxels) (ReadingLimits.maxVoxelsPerVolume)", path: path)
        }
        do { try grid.validate(for: "NIfTI image") } catch {
            throw NIfTI.Error(message: "its grid is not usable: \(error.message)", path: path)
        }
        self.init(geometry: grid, voxels: try file.imageValues(path: path))
    }
}

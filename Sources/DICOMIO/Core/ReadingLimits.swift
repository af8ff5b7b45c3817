/// The bounds every size read from a DICOM header is checked against before anything is allocated.
///
/// A crafted file of a few hundred bytes can declare (0028,0008) Number of Frames 10¹² or 65535 × 65535 pixels;
/// without these checks the reader would try to allocate terabytes. Every header value that sizes an allocation
/// (rows, columns, frames, slices, voxels, LUT entries) is compared with a field of this struct first, and a file
/// that exceeds one is refused with a `DICOMError` naming the file, the tag and the limit.
///
/// The defaults accept every legal CT/MR/SEG object a training site is likely to hold and fit a 24 GiB machine:
/// the largest volume, 2³¹ voxels, is 8 GiB of float32. Raise a limit by passing a modified value to
/// `DirectoryScanner`, `SeriesAssembler`, `ImageInstance(path:limits:)` or `Volume(series:limits:)`:
///
/// ```swift
/// var limits = ReadingLimits()
/// limits.maxVoxelsPerVolume = 1 << 32
/// let scan = try DirectoryScanner(limits: limits).scan(folder)
/// ```
public struct ReadingLimits: Sendable, Equatable {
    /// Largest (0028,0010) Rows and (0028,0011) Columns; 65535 is the largest value a US attribute can hold.
    public var maxRows: Int = 65535
    /// Largest (0028,0011) Columns.
    public var maxColumns: Int = 65535
    /// Largest (0028,0008) Number of Frames of one instance.
    public var maxFrames: Int = 65536
    /// Largest voxel count of one instance (rows × columns × frames) or one assembled volume (rows × columns ×
    /// slices). 2³¹ voxels is 8 GiB of float32.
    public var maxVoxelsPerVolume: Int = 1 << 31
    /// Largest number of slices in one series (all stacks together).
    public var maxSlicesPerSeries: Int = 100_000
    /// Largest number of files one folder scan reads; the rest are listed as skipped.
    public var maxFilesPerScan: Int = 1_000_000
    /// Largest (0028,3002) LUT Descriptor entry count (value 0 means 65536, PS3.3 C.11.1.1.1).
    public var maxLUTEntries: Int = 65536
    /// Largest absolute coordinate (mm) of (0020,0032) Image Position (Patient), and largest (0028,0030) Pixel
    /// Spacing or slice spacing: beyond ±10 km a value is a corrupt header, not a patient.
    public var maxCoordinate: Double = 1e7
    /// Largest RT Structure Set file in bytes: the file is read whole and dcmrt copies its values into its own
    /// model (about twice the file's size in memory), so it is measured before it is read. 256 MiB (clinical
    /// structure sets are tens of MB).
    public var maxStructureSetBytes: Int = 1 << 28
    /// Largest number of ROIs of an RT Structure Set: items of (3006,0020) Structure Set ROI Sequence and of
    /// (3006,0039) ROI Contour Sequence, each.
    public var maxROIs: Int = 10_000
    /// Largest number of contours of an RT Structure Set: (3006,0040) Contour Sequence items of all ROIs together;
    /// also bounds the (3006,0016) Contour Image Sequence items of its referenced series. dcmrt's model takes about
    /// 3.3 KB a contour item (measured: 100 000 three-point contours, a 7.8 MB file, 335 MB resident), so 200 000
    /// is about 660 MB; a whole-body plan has some 10⁴.
    public var maxContours: Int = 200_000
    /// Largest number of contour points of an RT Structure Set, all contours together: the sum of (3006,0046)
    /// Number of Contour Points, checked before (3006,0050) Contour Data is copied (24 bytes a point as copied, 32 as
    /// kept).
    public var maxContourPoints: Int = 20_000_000

    public init() {}

    /// The defaults.
    public static let `default` = ReadingLimits()

    /// The voxel count of a volume of `columns × rows × slices`, checked against `maxVoxelsPerVolume` before it is
    /// allocated.
    /// - Throws: `.invalidAttribute` naming the limit when the product overflows or exceeds it.
    public func checkedVoxelCount(columns: Int, rows: Int, slices: Int, path: String? = nil) throws(DICOMError) -> Int {
        try checkedProduct(
            [columns, rows, slices], limit: maxVoxelsPerVolume,
            "volume (0028,0011) Columns × (0028,0010) Rows × slices", limitName: "maxVoxelsPerVolume",
            path: path)
    }
}

// MARK: - Checked arithmetic on header values

extension Int {
    /// `value` as an integer when it is finite and within Int's range (fraction dropped towards zero), else nil.
    ///
    /// The one place a Double from a file becomes an Int: `Int(someDouble)` traps on NaN, ±∞ and values beyond
    /// ±9.2 × 10¹⁸, all of which a hostile header can hold ("nan", "1e400" in a DS string).
    @inlinable
    public init?(checked value: Double) {
        // 2⁶³ is exactly representable; every finite Double below it in magnitude converts without trapping.
        guard value.isFinite, value >= -9.223_372_036_854_775_808e18, value < 9.223_372_036_854_775_808e18 else {
            return nil
        }
        self.init(value)
    }
}

/// `value` rounded to the nearest integer, or a `DICOMError` `.invalidAttribute` naming `what` when it is not
/// finite or does not fit in an Int.
func checkedInt(_ value: Double, _ what: @autoclosure () -> String, path: String? = nil) throws(DICOMError) -> Int {
    guard let n = Int(checked: value.rounded()) else {
        throw DICOMError(.invalidAttribute, "\(what()) is \(value), which is not a usable integer", path: path)
    }
    return n
}

/// The product of sizes read from a header, or a `DICOMError` `.invalidAttribute` when it overflows or exceeds
/// `limit` (so nothing of that size is ever allocated).
///
/// - Parameters:
///   - factors: the sizes, each ≥ 0.
///   - limit: the largest product accepted.
///   - what: names the product and the tags it comes from, e.g. "(0028,0010) Rows × (0028,0011) Columns".
///   - limitName: the `ReadingLimits` field, named in the message so the user knows what to raise.
func checkedProduct(
    _ factors: [Int], limit: Int, _ what: @autoclosure () -> String, limitName: String,
    path: String? = nil
) throws(DICOMError) -> Int {
    var product = 1
    for f in factors {
        let (p, overflow) = product.multipliedReportingOverflow(by: max(f, 0))
        guard !overflow, p <= limit else {
            throw DICOMError(
                .invalidAttribute,
                "\(what()) = \(factors.map(String.init).joined(separator: " × ")) exceeds the limit of "
                    + "\(limit) (ReadingLimits.\(limitName)); the header is corrupt or the object too "
                    + "large. Raise ReadingLimits.\(limitName) if the file is genuine", path: path)
        }
        product = p
    }
    return product
}

/// Checks one size read from a header against `0...limit` (or `1...limit` when `allowZero` is false).
func checkSize(
    _ value: Int, limit: Int, _ what: @autoclosure () -> String, limitName: String,
    allowZero: Bool = false, path: String? = nil
) throws(DICOMError) {
    guard value >= (allowZero ? 0 : 1) else {
        throw DICOMError(
            .invalidAttribute, "\(what()) is \(value); it must be at least \(allowZero ? 0 : 1)",
            path: path)
    }
    guard value <= limit else {
        throw DICOMError(
            .invalidAttribute,
            "\(what()) is \(value), above the limit of \(limit) (ReadingLimits.\(limitName)); the "
                + "header is corrupt or the object too large. Raise ReadingLimits.\(limitName) if the "
                + "file is genuine", path: path)
    }
}

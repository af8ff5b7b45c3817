import DICOMIO

/// An error from a preprocessing transform or its configuration: what failed, in which transform, with which value,
/// and how to fix it.
///
/// Thrown instead of ever producing a volume with NaN or ±Inf voxels.
public struct VolumesError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// A spacing component is zero, negative or not finite.
        case invalidSpacing
        /// The direction cosines are (nearly) linearly dependent, or not an axis permutation where one is needed.
        case singularDirection
        /// A foreground/label mask is empty where a bounding box or statistics need voxels.
        case emptyMask
        /// An intensity window with min ≥ max, or a non-finite bound.
        case invalidWindow
        /// A shape or index that does not fit the volume (or is not positive).
        case shapeMismatch
        /// A parameter outside its valid range (probability, percentile, σ, ...).
        case invalidParameter
        /// The input volume holds NaN or ±Inf voxels.
        case nonFinite
        /// The pipeline YAML has an unknown key or a bad value.
        case configuration
    }

    public var code: Code
    /// The transform (or configuration key) that failed, e.g. `Resample` or `preprocessing.window`.
    public var transform: String
    /// What failed, with the offending value, and how to fix it.
    public var message: String
    /// The underlying error, if another layer failed first (e.g. the YAML parser).
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, transform: String, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.transform = transform
        self.message = message
        self.cause = cause
    }

    public var description: String {
        var text = "\(transform): \(message)"
        if let cause { text += " (cause: \(cause))" }
        return text
    }
}

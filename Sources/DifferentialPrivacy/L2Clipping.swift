/// Clipping to a maximum L2 norm: what bounds one contribution's sensitivity before Gaussian noise is added
/// (Abadi et al. 2016, "Deep Learning with Differential Privacy", Algorithm 1; McMahan et al. 2018, "Learning
/// Differentially Private Recurrent Language Models", for a whole model update).
///
/// The norm is global: one L2 norm over all the vectors together (e.g. every tensor of a model update), accumulated
/// in Double. Every vector is multiplied by the same factor min(1, C / ‖x‖), so the direction is kept.
public enum L2Clipping {
    /// What one clipping did.
    public struct Result: Sendable, Equatable {
        /// ‖x‖₂ over all the vectors before clipping, accumulated in Double.
        public var norm: Double
        /// The factor applied to every element: min(1, C / norm), and 1 when the norm is 0.
        public var factor: Double

        public init(norm: Double, factor: Double) {
            self.norm = norm
            self.factor = factor
        }
    }

    /// The global L2 norm √(Σ x²) over all elements of all the vectors, accumulated in Double (no overflow for any
    /// finite Float input); +∞ or NaN when an element is.
    public static func norm(_ vectors: [[Float]]) -> Double {
        var squares = 0.0
        for vector in vectors {
            for x in vector {
                let d = Double(x)
                squares += d * d
            }
        }
        return squares.squareRoot()
    }

    /// Clips `vectors` in place to global L2 norm ≤ `maxNorm`.
    ///
    /// Each element is multiplied by the factor in Double and rounded once to Float, so the clipped norm is at most
    /// maxNorm · (1 + 2⁻²⁴) (one Float rounding per element), not exactly maxNorm.
    /// - Parameters:
    ///   - vectors: the vectors (e.g. the tensors of one update), left unchanged when the factor is 1 or on error.
    ///   - maxNorm: C > 0, finite, in the units of the vectors' elements.
    /// - Returns: the norm before clipping and the factor applied.
    /// - Throws: `.invalidParameter` for C ≤ 0 or non-finite; `.nonFinite` when the norm is not finite (an element
    ///   is NaN or infinite): nothing is clipped then.
    @discardableResult
    public static func clip(_ vectors: inout [[Float]], maxNorm: Double) throws(DifferentialPrivacyError) -> Result {
        let result = try measure(vectors, maxNorm: maxNorm)
        if result.factor < 1 {
            for v in vectors.indices {
                for i in vectors[v].indices { vectors[v][i] = Float(Double(vectors[v][i]) * result.factor) }
            }
        }
        return result
    }

    /// A clipped copy of `vectors`: as `clip(_:maxNorm:)`, without changing the input.
    public static func clipped(
        _ vectors: [[Float]], maxNorm: Double
    ) throws(DifferentialPrivacyError) -> (vectors: [[Float]], result: Result) {
        var copy = vectors
        let result = try clip(&copy, maxNorm: maxNorm)
        return (copy, result)
    }

    /// The norm and the factor that clipping to `maxNorm` would apply, without changing anything.
    /// - Throws: as `clip(_:maxNorm:)`.
    public static func measure(_ vectors: [[Float]], maxNorm: Double) throws(DifferentialPrivacyError) -> Result {
        guard maxNorm > 0, maxNorm.isFinite else {
            throw DifferentialPrivacyError(
                .invalidParameter, "the clipping norm C must be > 0 and finite, got \(maxNorm)")
        }
        let norm = norm(vectors)
        guard norm.isFinite else {
            throw DifferentialPrivacyError(
                .nonFinite, "the L2 norm to clip is \(norm): an element is NaN or infinite; nothing was clipped")
        }
        return Result(norm: norm, factor: norm > maxNorm ? maxNorm / norm : 1)
    }
}

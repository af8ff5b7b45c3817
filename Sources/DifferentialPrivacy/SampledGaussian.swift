import Foundation

/// One step of the Poisson-subsampled Gaussian mechanism in RDP (Mironov, Talwar & Zhang 2019, arXiv:1908.10530).
///
/// With μ₀ = N(0, σ²), μ₁ = N(1, σ²) and μ = (1 − q)μ₀ + qμ₁, the step is (α, log(A_α) / (α − 1))-RDP where
/// A_α = E_{z∼μ₀}[(μ(z) / μ₀(z))^α]. Everything is in log space; `rdp` is ≥ 0, never NaN for q in [0, 1] and
/// finite σ > 0, and +∞ only when α / (2σ²) overflows.
enum SampledGaussian {
    /// The most terms of the fractional-order series before `rdp` falls back to the Gaussian bound α / (2σ²).
    static let maximumSeriesTerms = 100_000

    /// The series stops when a term falls below this fraction of the running sum: the tail of an alternating series
    /// with decreasing terms is smaller than its first omitted term.
    static let logRelativeTolerance = log(1e-14)

    /// ρ(α) of one step, in nats.
    ///
    /// Never more than the plain Gaussian mechanism's α / (2σ²) (subsampling only helps: D_α is quasi-convex), which
    /// also stands in for an order whose series cannot be evaluated (no convergence in `maximumSeriesTerms` terms, an
    /// overflow): sound, and far better than giving the order up.
    static func rdp(q: Double, sigma: Double, alpha: Double) -> Double {
        let gaussian = alpha / (2 * sigma * sigma)
        if q == 0 { return 0 }
        if q == 1 || gaussian == 0 { return gaussian }
        // 1/(2σ²) infinite: the noise is negligible, the step is as good as non-private at every α > 1.
        guard gaussian.isFinite else { return .infinity }
        // An integer order within Int's range takes the binomial sum; any other (and NaN) the fractional series.
        let logA =
            Int(exactly: alpha).map { logAInteger(q: q, sigma: sigma, alpha: $0) }
            ?? logAFractional(q: q, sigma: sigma, alpha: alpha)
        let rho = logA / (alpha - 1)
        return rho.isFinite ? min(max(0, rho), gaussian) : gaussian
    }

    /// (k² − k) / (2σ²), the log of E_{μ₀}[(μ₁/μ₀)^k]; 0 for k ∈ {0, 1} even when 1/(2σ²) overflows.
    static func logMoment(_ k: Double, sigma: Double) -> Double {
        let kk = k * (k - 1)
        return kk == 0 ? 0 : kk / (2 * sigma * sigma)
    }

    /// Integer α (MTZ19, Section 3.3): A_α = Σ_{k=0}^{α} C(α, k) (1 − q)^{α−k} q^k exp((k² − k) / (2σ²)).
    ///
    /// As the binomial weights sum to 1, A_α = 1 + S with S = Σ_{k≥2} C(α, k) (1 − q)^{α−k} q^k expm1((k² − k)/(2σ²)),
    /// every term ≥ 0; log A_α = log1p(S) keeps full relative precision when ρ is tiny (large σ or small q), where a
    /// plain log-sum-exp would leave rounding noise of 1e-16 in log A_α. log C(α, k) is built up term by term.
    static func logAInteger(q: Double, sigma: Double, alpha: Int) -> Double {
        guard alpha >= 2 else { return 0 }
        let logQ = log(q)
        let log1MinusQ = log1p(-q)
        var logBinomial = log(Double(alpha))  // log C(α, 1)
        var logTerms: [Double] = []
        logTerms.reserveCapacity(alpha - 1)
        for k in 2...alpha {
            logBinomial += log(Double(alpha - k + 1)) - log(Double(k))
            let kd = Double(k)
            logTerms.append(
                logBinomial + (Double(alpha) - kd) * log1MinusQ + kd * logQ
                    + LogSpace.logExpm1(logMoment(kd, sigma: sigma)))
        }
        return LogSpace.add(0, LogSpace.sumExp(logTerms))
    }

    /// Fractional α (MTZ19, Section 3.3): A_α = A₁ + A₂ with z₀ = σ² log(1/q − 1) + 1/2, where on z ≤ z₀
    /// (1 − q)μ₀ ≥ qμ₁ and on z > z₀ the reverse, so each binomial series converges:
    ///
    ///   A₁ = Σ_{i≥0} C(α, i) (1 − q)^{α−i} q^i exp((i² − i) / (2σ²)) · ½ erfc((i − z₀) / (√2 σ))
    ///   A₂ = Σ_{i≥0} C(α, i) (1 − q)^i q^{α−i} exp((j² − j) / (2σ²)) · ½ erfc((z₀ − j) / (√2 σ)), j = α − i
    ///
    /// C(α, i) is the generalised binomial coefficient, negative for every other i > α: positive and negative terms
    /// are summed apart in log space and subtracted once. The series stops after i > α once both terms are below
    /// `logRelativeTolerance` of the sum; after `maximumSeriesTerms` terms it returns +∞ (not evaluated).
    static func logAFractional(q: Double, sigma: Double, alpha: Double) -> Double {
        let logQ = log(q)
        let log1MinusQ = log1p(-q)
        let z0 = sigma * sigma * (log1p(-q) - logQ) + 0.5
        let scale = 2.0.squareRoot() * sigma
        var positive = -Double.infinity
        var negative = -Double.infinity
        var logBinomial = 0.0  // log |C(α, i)|
        var negativeSign = false  // sign of C(α, i)
        for i in 0..<maximumSeriesTerms {
            let id = Double(i)
            if i > 0 {
                let factor = alpha - id + 1  // C(α, i) = C(α, i − 1) · (α − i + 1) / i
                logBinomial += log(abs(factor)) - log(id)
                if factor < 0 { negativeSign.toggle() }
            }
            let j = alpha - id
            let log1 =
                logBinomial + (alpha - id) * log1MinusQ + id * logQ + logMoment(id, sigma: sigma)
                + LogSpace.logErfc((id - z0) / scale) - M_LN2
            let log2 =
                logBinomial + id * log1MinusQ + j * logQ + logMoment(j, sigma: sigma)
                + LogSpace.logErfc((z0 - j) / scale) - M_LN2
            let term = LogSpace.add(log1, log2)
            if term.isNaN { return .nan }
            if negativeSign {
                negative = LogSpace.add(negative, term)
            } else {
                positive = LogSpace.add(positive, term)
            }
            if id > alpha, term < positive + logRelativeTolerance {
                return LogSpace.subtract(positive, negative)
            }
        }
        return .infinity
    }
}

/// Sums and differences of numbers held as their logarithms.
enum LogSpace {
    /// log(e^a + e^b), exact for −∞ arguments (e^{−∞} = 0), never NaN from two non-NaN arguments.
    static func add(_ a: Double, _ b: Double) -> Double {
        let (high, low) = a >= b ? (a, b) : (b, a)
        if low == -.infinity { return high }
        if high == .infinity { return .infinity }
        return high + log1p(exp(low - high))
    }

    /// log(e^a − e^b) for a ≥ b; NaN when b > a (the difference is negative: the caller gives up that order).
    static func subtract(_ a: Double, _ b: Double) -> Double {
        if b == -.infinity { return a }
        if b > a || a == .infinity { return .nan }
        if a == b { return -.infinity }
        return a + log(-expm1(b - a))
    }

    /// log(Σ e^{xᵢ}), shifted by the maximum so nothing overflows.
    static func sumExp(_ xs: [Double]) -> Double {
        guard let high = xs.max(), high.isFinite else { return xs.max() ?? -.infinity }
        return high + log(xs.reduce(0) { $0 + exp($1 - high) })
    }

    /// log(eˣ − 1) for x ≥ 0, without overflow for large x; −∞ at 0.
    static func logExpm1(_ x: Double) -> Double {
        x > 40 ? x + log1p(-exp(-x)) : log(expm1(x))
    }

    /// log(erfc(x)), also where erfc(x) underflows: for x ≥ 25 the asymptotic series
    /// erfc(x) = e^{−x²} / (x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸)), whose first omitted term is
    /// below 1e-12 there.
    static func logErfc(_ x: Double) -> Double {
        if x < 25 { return log(erfc(x)) }
        if x == .infinity { return -.infinity }
        let r = 1 / (2 * x * x)  // 1/(2x²)
        let series = 1 - r * (1 - 3 * r * (1 - 5 * r * (1 - 7 * r)))
        return -x * x - log(x) - 0.5 * log(Double.pi) + log(series)
    }
}

import Foundation

/// The Rényi-DP accountant: RDP curves of the mechanisms Tessera uses, and their conversion to (ε, δ)-DP.
///
/// Contract, for every function here:
/// - Neighbouring datasets differ by adding or removing one record (the relation of DP-SGD with Poisson sampling and
///   of dp-accounting's default `ADD_OR_REMOVE_ONE`).
/// - The noise multiplier σ is the ratio of the Gaussian noise's standard deviation to the L2 sensitivity (the
///   clipping norm C): noise N(0, σ²C²).
/// - RDP values and ε are in nats.
/// - Invalid inputs throw `DifferentialPrivacyError`; no valid input gives NaN. An order that cannot be evaluated
///   exactly gets a sound upper bound (the subsampled Gaussian falls back to the plain Gaussian's α / (2σ²)), or
///   ρ = ∞ when even that overflows, which only drops the order from the minimum over orders.
///
/// Agreement, on the grid of `scripts/reference/dp_accountant_golden.py` (Tests/DifferentialPrivacyTests/
/// RDPAccountantTests.swift): Google's dp-accounting 0.6.0 `RdpAccountant` to 1e-10 on the integer orders (on the
/// whole grid ε is never above its ε, whose fractional orders are upper bounds); Opacus 1.6.0's `compute_rdp` to
/// 1e-6 order by order on the whole grid, and its ε to 1e-10 with the same conversion.
public enum RDPAccountant {
    /// The most steps one call composes (10⁹).
    public static let maximumSteps = 1_000_000_000

    /// The largest noise multiplier `noiseMultiplier(forEpsilon:delta:samplingRate:steps:)` considers.
    public static let maximumNoiseMultiplier = 1_000.0

    /// The smallest noise multiplier `noiseMultiplier(forEpsilon:delta:samplingRate:steps:)` returns.
    public static let minimumNoiseMultiplier = 0.001

    /// The calibration's tolerance: the σ returned is within this relative distance above the smallest σ that
    /// reaches the target (and always reaches it).
    public static let noiseMultiplierTolerance = 1e-6

    // MARK: - Mechanisms

    /// The Gaussian mechanism with noise multiplier σ: ρ(α) = α / (2σ²) (Mironov 2017, Proposition 7).
    ///
    /// - Parameter noiseMultiplier: σ > 0, finite.
    /// - Throws: `.invalidParameter` for σ ≤ 0, NaN or infinite.
    public static func gaussian(noiseMultiplier sigma: Double) throws(DifferentialPrivacyError) -> RDPCurve {
        try checkNoiseMultiplier(sigma)
        return RDPCurve(evaluating: { alpha in alpha / (2 * sigma * sigma) })
    }

    /// The Poisson-subsampled Gaussian mechanism, composed over `steps` (DP-SGD: each record joins each step's batch
    /// independently with probability q; the batch's clipped sum gets N(0, σ²C²) noise).
    ///
    /// Per step, ρ(α) = log(A_α) / (α − 1), with A_α from Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy
    /// of the Sampled Gaussian Mechanism" (arXiv:1908.10530): for integer α the exact binomial expansion
    /// (Section 3.3); for fractional α the two convergent series split at z₀ = σ² log(1/q − 1) + 1/2 (Section 3.3),
    /// with the signs of the generalised binomial coefficients kept (dp-accounting 0.6.0 adds their magnitudes, an
    /// upper bound up to ~55 % above the exact ρ at orders below 2). Both are summed in log space (log-sum-exp).
    /// Where the fractional series does not converge within 100 000 terms, ρ(α) = α / (2σ²), the plain Gaussian's,
    /// a sound bound. `steps` steps give `steps` · ρ(α).
    ///
    /// q = 0 or steps = 0 gives `RDPCurve.zero`; q = 1 gives exactly `gaussian(noiseMultiplier:)`·steps.
    /// - Parameters:
    ///   - samplingRate: q in [0, 1], the probability that one record is in one step's batch.
    ///   - noiseMultiplier: σ > 0, finite.
    ///   - steps: in 0...`maximumSteps`.
    /// - Throws: `.invalidParameter` for q outside [0, 1] or NaN, σ ≤ 0 or non-finite, steps < 0; `.tooLarge` for
    ///   steps above `maximumSteps`.
    public static func subsampledGaussian(
        samplingRate q: Double, noiseMultiplier sigma: Double, steps: Int
    ) throws(DifferentialPrivacyError) -> RDPCurve {
        guard q >= 0, q <= 1 else {
            throw DifferentialPrivacyError(.invalidParameter, "the sampling rate q must be in [0, 1], got \(q)")
        }
        try checkNoiseMultiplier(sigma)
        try checkSteps(steps)
        if q == 0 || steps == 0 { return .zero }
        let oneStep = RDPCurve(evaluating: { alpha in SampledGaussian.rdp(q: q, sigma: sigma, alpha: alpha) })
        return try oneStep.scaled(by: steps)
    }

    /// Any ε-DP mechanism (Laplace, randomised response …) as an RDP curve: ρ(α) = min(ε, α·ε²/2).
    ///
    /// ε-DP implies (α, ε)-RDP for every α (Mironov 2017, Proposition 3: D_α ≤ D_∞), and ε²/2-zCDP (Bun & Steinke
    /// 2016, "Concentrated Differential Privacy: Simplifications, Extensions, and Lower Bounds", Proposition 3.3),
    /// i.e. (α, α·ε²/2)-RDP. This lets a ledger compose Laplace releases with Gaussian ones on one curve. It is an
    /// upper bound, looser than the Laplace mechanism's exact RDP (Mironov 2017, Proposition 6).
    /// - Parameter epsilon: ε ≥ 0; `+infinity` gives `RDPCurve.noPrivacy`.
    /// - Throws: `.invalidParameter` for ε < 0 or NaN.
    public static func pureDP(epsilon: Double) throws(DifferentialPrivacyError) -> RDPCurve {
        guard epsilon >= 0 else {
            throw DifferentialPrivacyError(.invalidParameter, "a pure-DP ε must be ≥ 0, got \(epsilon)")
        }
        if epsilon == .infinity { return .noPrivacy }
        return RDPCurve(evaluating: { alpha in min(epsilon, alpha * epsilon * epsilon / 2) })
    }

    // MARK: - Conversion to (ε, δ)

    /// The smallest ε over the curve's orders such that the mechanism is (ε, δ)-DP, and the order that gives it.
    ///
    /// Per order, the conversion dp-accounting 0.6.0's `RdpAccountant` uses:
    /// - ε(α) = ρ + log1p(−1/α) − (log δ + log α) / (α − 1) (Canonne, Kamath & Steinke 2020, "The Discrete Gaussian
    ///   for Differential Privacy", Proposition 12; Asoodeh, Liao, Calmon, Kosut & Sankar 2020), for α > 1.01 (the
    ///   bound is unstable as α → 1);
    /// - ε(α) = 0 when δ² + expm1(−ρ) > 0, i.e. δ ≥ √(1 − e^{−ρ}): the total variation is then ≤ δ by the
    ///   Bretagnolle–Huber inequality, since the KL divergence is ≤ D_α;
    /// - ε(α) = ∞ for an infinite ρ or α ≤ 1.01.
    /// The minimum over orders is clamped at 0; ties take the lowest order.
    /// - Parameters:
    ///   - curve: the composed RDP of everything released.
    ///   - delta: δ in (0, 1).
    /// - Returns: ε ≥ 0 in nats (`+infinity` when no order gives a guarantee, with `order` the first order) and the
    ///   order α that attains it.
    /// - Throws: `.invalidParameter` for δ outside (0, 1) or NaN.
    public static func epsilon(
        _ curve: RDPCurve, delta: Double
    ) throws(DifferentialPrivacyError) -> (epsilon: Double, order: Double) {
        try checkDelta(delta)
        let logDelta = log(delta)
        var best = (epsilon: Double.infinity, order: RDPCurve.orders[0])
        for (alpha, rho) in zip(RDPCurve.orders, curve.values) {
            let epsilon: Double
            if !rho.isFinite {
                epsilon = .infinity
            } else if delta * delta + expm1(-rho) > 0 {
                epsilon = 0
            } else if alpha > 1.01 {
                epsilon = rho + log1p(-1 / alpha) - (logDelta + log(alpha)) / (alpha - 1)
            } else {
                epsilon = .infinity
            }
            if epsilon < best.epsilon { best = (epsilon, alpha) }
        }
        return (max(0, best.epsilon), best.order)
    }

    /// The smallest noise multiplier σ with which `steps` steps of the Poisson-subsampled Gaussian at rate q are
    /// (ε, δ)-DP according to `epsilon(_:delta:)`.
    ///
    /// Bisection on log σ over [`minimumNoiseMultiplier`, `maximumNoiseMultiplier`], keeping an upper end that reaches
    /// the target, until the bracket is narrower than `noiseMultiplierTolerance` relative. The σ returned always
    /// reaches the target; it is `minimumNoiseMultiplier` when that already does.
    /// - Parameters:
    ///   - forEpsilon: target ε > 0, finite.
    ///   - delta: δ in (0, 1).
    ///   - samplingRate: q in (0, 1] (q = 0 releases nothing and needs no noise).
    ///   - steps: in 1...`maximumSteps`.
    /// - Returns: σ in [`minimumNoiseMultiplier`, `maximumNoiseMultiplier`].
    /// - Throws: `.invalidParameter` for a parameter out of range; `.tooLarge` for steps above `maximumSteps`;
    ///   `.unreachableTarget` when even σ = `maximumNoiseMultiplier` gives more than the target ε.
    public static func noiseMultiplier(
        forEpsilon target: Double, delta: Double, samplingRate q: Double, steps: Int
    ) throws(DifferentialPrivacyError) -> Double {
        guard target > 0, target.isFinite else {
            throw DifferentialPrivacyError(.invalidParameter, "the target ε must be > 0 and finite, got \(target)")
        }
        try checkDelta(delta)
        guard q > 0, q <= 1 else {
            throw DifferentialPrivacyError(
                .invalidParameter, "the sampling rate q must be in (0, 1] to calibrate noise, got \(q)")
        }
        guard steps >= 1 else {
            throw DifferentialPrivacyError(.invalidParameter, "calibrating noise needs steps ≥ 1, got \(steps)")
        }
        try checkSteps(steps)
        func reaches(_ sigma: Double) throws(DifferentialPrivacyError) -> Bool {
            let curve = try subsampledGaussian(samplingRate: q, noiseMultiplier: sigma, steps: steps)
            return try epsilon(curve, delta: delta).epsilon <= target
        }
        var upper = maximumNoiseMultiplier
        var lower = minimumNoiseMultiplier
        guard try reaches(upper) else {
            throw DifferentialPrivacyError(
                .unreachableTarget,
                "no noise multiplier up to \(maximumNoiseMultiplier) reaches ε = \(target) at δ = \(delta) with "
                    + "q = \(q) over \(steps) steps; allow a larger ε or δ, or fewer steps or a smaller q")
        }
        if try reaches(lower) { return lower }
        // Invariant: `lower` misses the target, `upper` reaches it.
        while upper - lower > noiseMultiplierTolerance * upper {
            let middle = (lower * upper).squareRoot()
            if try reaches(middle) { upper = middle } else { lower = middle }
        }
        return upper
    }

    // MARK: - Checks

    static func checkNoiseMultiplier(_ sigma: Double) throws(DifferentialPrivacyError) {
        guard sigma > 0, sigma.isFinite else {
            throw DifferentialPrivacyError(
                .invalidParameter, "the noise multiplier σ must be > 0 and finite, got \(sigma)")
        }
    }

    static func checkSteps(_ steps: Int) throws(DifferentialPrivacyError) {
        guard steps >= 0 else {
            throw DifferentialPrivacyError(.invalidParameter, "the number of steps must be ≥ 0, got \(steps)")
        }
        guard steps <= maximumSteps else {
            throw DifferentialPrivacyError(.tooLarge, "the number of steps must be ≤ \(maximumSteps), got \(steps)")
        }
    }

    static func checkDelta(_ delta: Double) throws(DifferentialPrivacyError) {
        guard delta > 0, delta < 1 else {
            throw DifferentialPrivacyError(.invalidParameter, "δ must be in (0, 1), got \(delta)")
        }
    }
}

/// Rényi differential privacy of one mechanism or of a composition, on a fixed grid of orders α
/// (Mironov, "Rényi Differential Privacy", CSF 2017).
///
/// A mechanism M is (α, ρ)-RDP when D_α(M(D) ‖ M(D′)) ≤ ρ for all neighbouring D, D′. `values[i]` is the ρ (in nats)
/// at order `RDPCurve.orders[i]`. Composition adds RDP order by order (Proposition 1), so a ledger keeps one curve and
/// adds every release's curve to it; the (ε, δ) spent is read off with `RDPAccountant.epsilon(_:delta:)`.
///
/// Invariants: exactly one value per order; every value ≥ 0 and not NaN. `+infinity` is allowed and means "no
/// guarantee at this order" (a non-private release, or an order that could not be evaluated); a curve of infinities
/// (`noPrivacy`) gives ε = ∞.
public struct RDPCurve: Sendable, Equatable {
    /// The orders α, ascending: 1.1, 1.2, …, 10.9 (computed as `1 + x / 10`), 11, 12, …, 63, 128, 256, 512, 1024.
    ///
    /// The grid of Google's `dp-accounting` `RdpAccountant` (`DEFAULT_RDP_ORDERS`, version 0.6.0), so the golden
    /// values of `scripts/reference/dp_accountant_golden.py` are comparable order by order. 156 orders.
    public static let orders: [Double] = {
        let tenths: [Double] = (1..<100).map { (x: Int) -> Double in 1 + Double(x) / 10.0 }
        let integers: [Double] = (11..<64).map { (x: Int) -> Double in Double(x) }
        let powers: [Double] = [128, 256, 512, 1024]
        return tenths + integers + powers
    }()

    /// The most compositions `scaled(by:)` accepts (10¹²): far beyond any training run, small enough that the count
    /// is exact as a `Double`.
    public static let maximumCompositions = 1_000_000_000_000

    /// RDP in nats, one per element of `orders`: ≥ 0, possibly `+infinity`, never NaN.
    public private(set) var values: [Double]

    /// Nothing released: ρ = 0 at every order. The identity of `+`.
    public static let zero = RDPCurve(unchecked: [Double](repeating: 0, count: orders.count))

    /// No guarantee at all (a non-private release): ρ = ∞ at every order.
    public static let noPrivacy = RDPCurve(unchecked: [Double](repeating: .infinity, count: orders.count))

    /// A curve from its values.
    ///
    /// - Parameter values: ρ in nats for each of `RDPCurve.orders`, in that order; each ≥ 0 or `+infinity`.
    /// - Throws: `.invalidParameter` when the count differs from `orders.count` or a value is negative;
    ///   `.nonFinite` for a NaN.
    public init(values: [Double]) throws(DifferentialPrivacyError) {
        guard values.count == Self.orders.count else {
            throw DifferentialPrivacyError(
                .invalidParameter,
                "an RDP curve needs \(Self.orders.count) values (one per order), got \(values.count)")
        }
        for (alpha, rho) in zip(Self.orders, values) {
            if rho.isNaN {
                throw DifferentialPrivacyError(.nonFinite, "the RDP value at order \(alpha) is NaN")
            }
            if rho < 0 {
                throw DifferentialPrivacyError(
                    .invalidParameter, "the RDP value at order \(alpha) is \(rho); Rényi divergences are ≥ 0")
            }
        }
        self.values = values
    }

    /// A curve whose values the caller has already checked (count, ≥ 0, not NaN).
    init(unchecked values: [Double]) { self.values = values }

    /// A curve from a function of the order, clamped at 0 from below (rounding may give −1e-17 for a zero
    /// divergence); a NaN becomes `+infinity`, i.e. that order is given up, never trusted.
    init(evaluating rho: (Double) -> Double) {
        values = Self.orders.map { alpha in
            let value = rho(alpha)
            return value.isNaN ? .infinity : max(0, value)
        }
    }

    /// ρ at the order `alpha`, or nil when `alpha` is not one of `orders`.
    public func value(atOrder alpha: Double) -> Double? {
        Self.orders.firstIndex(of: alpha).map { values[$0] }
    }

    /// Composition of two mechanisms (Mironov 2017, Proposition 1): ρ adds order by order. ∞ + x = ∞.
    public static func + (lhs: RDPCurve, rhs: RDPCurve) -> RDPCurve {
        RDPCurve(unchecked: zip(lhs.values, rhs.values).map { $0 + $1 })
    }

    public static func += (lhs: inout RDPCurve, rhs: RDPCurve) { lhs = lhs + rhs }

    /// The k-fold composition of this mechanism with itself: ρ·k at every order.
    ///
    /// k = 0 gives `zero` (nothing released, even from a `noPrivacy` curve: ∞·0 is taken as 0, never NaN). A finite
    /// value whose product overflows becomes `+infinity`: that order gives no guarantee, which is sound; the
    /// other orders still bound ε.
    /// - Parameter count: k, in 0...`maximumCompositions`.
    /// - Throws: `.invalidParameter` for a negative k, `.tooLarge` above `maximumCompositions`.
    public func scaled(by count: Int) throws(DifferentialPrivacyError) -> RDPCurve {
        guard count >= 0 else {
            throw DifferentialPrivacyError(.invalidParameter, "a composition count must be ≥ 0, got \(count)")
        }
        guard count <= Self.maximumCompositions else {
            throw DifferentialPrivacyError(
                .tooLarge, "a composition count must be ≤ \(Self.maximumCompositions), got \(count)")
        }
        if count == 0 { return .zero }
        let k = Double(count)
        return RDPCurve(unchecked: values.map { $0 * k })
    }
}

// MARK: - Codable

/// Stored as `{"orders": [...], "rdp": [...]}`, with `null` for an infinite value (JSON has no infinity). Decoding
/// checks the orders against `RDPCurve.orders`, so a ledger written on another grid is refused, never misread.
extension RDPCurve: Codable {
    private enum CodingKeys: String, CodingKey { case orders, rdp }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let orders = try container.decode([Double].self, forKey: .orders)
        guard orders == Self.orders else {
            throw DifferentialPrivacyError(
                .orderMismatch,
                "the stored RDP curve has \(orders.count) orders that are not RDPCurve.orders; recompute it",
                cause: "first stored orders: \(orders.prefix(3))")
        }
        let stored = try container.decode([Double?].self, forKey: .rdp)
        try self.init(values: stored.map { $0 ?? .infinity })
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Self.orders, forKey: .orders)
        try container.encode(values.map { $0.isFinite ? $0 : nil }, forKey: .rdp)
    }
}

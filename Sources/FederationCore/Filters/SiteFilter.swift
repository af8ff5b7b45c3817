/// What a filter knows about the update it processes.
public struct FilterContext: Sendable {
    public var site: String
    public var jobID: String
    public var round: Int

    public init(site: String, jobID: String, round: Int) {
        self.site = site
        self.jobID = jobID
        self.round = round
    }
}

/// A privacy filter on what leaves a site. The chain belongs to the site (its kit's policy decides which filters
/// run), never to the job: a job cannot switch a filter off.
public protocol SiteFilter: Sendable {
    var name: String { get }
    func process(_ update: ModelUpdate, context: FilterContext) async throws(FederationError) -> ModelUpdate
}

/// Filters applied in order; the first failure stops the update from leaving the site.
public struct FilterChain: Sendable {
    public var filters: [any SiteFilter]

    public init(_ filters: [any SiteFilter]) { self.filters = filters }

    public func process(_ update: ModelUpdate, context: FilterContext) async throws(FederationError) -> ModelUpdate {
        var u = update
        for f in filters {
            do { u = try await f.process(u, context: context) } catch {
                throw FederationError(.filter, "site filter '\(f.name)' refused the update: \(error.message)")
            }
        }
        return u
    }
}

/// Keeps variables at the site: tensors whose names match are removed from the update (e.g. normalisation
/// statistics, a site-specific head). The server then keeps its own values for them, and the site puts its own values
/// back into every model it downloads (`LocalVariables` in FederationClient).
public struct ExcludeVariablesFilter: SiteFilter {
    public enum Pattern: Sendable, Equatable {
        case exact(String)
        case prefix(String)
        case suffix(String)
        case contains(String)

        /// Whether `name` is a tensor this pattern keeps at the site.
        public func matches(_ name: String) -> Bool {
            switch self {
            case .exact(let s): return name == s
            case .prefix(let s): return name.hasPrefix(s)
            case .suffix(let s): return name.hasSuffix(s)
            case .contains(let s): return name.contains(s)
            }
        }
    }

    public var patterns: [Pattern]
    public var name: String { "exclude-variables" }

    public init(patterns: [Pattern]) { self.patterns = patterns }

    public func process(_ update: ModelUpdate, context: FilterContext) async throws(FederationError) -> ModelUpdate {
        var u = update
        u.diff = update.diff.removing { name in patterns.contains { $0.matches(name) } }
        return u
    }
}

/// Sparsifies and clips a weight diff: the "selective parameter sharing" of Shokri & Shmatikov, *Privacy-Preserving
/// Deep Learning* (CCS 2015), as NVIDIA FLARE's `PercentilePrivacy` filter applies it.
///
/// Over all values v of the diff (every tensor together, after the filters before it):
/// 1. cutoff = the `percentile`-th percentile of |v|, numpy's default definition (`np.percentile`,
///    method "linear", Hyndman & Fan type 7): with the n absolute values sorted ascending as a₀ ≤ … ≤ aₙ₋₁,
///    h = (n − 1)·(p/100), cutoff = a⌊h⌋ + (h − ⌊h⌋)·(a⌈h⌉ − a⌊h⌋), in Double as numpy computes it (`lerp`);
/// 2. a value with |v| < cutoff becomes 0 (it stays at the site);
/// 3. every other value is clipped to [−γ, γ] (γ rounded to Float).
/// The result has the same tensors and shapes. The filter gives no differential-privacy guarantee of its own (no
/// noise, no ledger charge); it limits how much of each round's update, and how large a step, leaves the site.
///
/// Memory: one Float copy of |v| (4 bytes per scalar) is held while the cutoff is selected (introselect,
/// O(n) expected, O(n log n) at worst), and released before the diff is rewritten.
public struct PercentilePrivacyFilter: SiteFilter {
    /// p, in percent, in the open interval (0, 100).
    public let percentile: Double
    /// γ, the clipping bound in the diff's units (weight units), > 0 and finite.
    public let gamma: Double
    public var name: String { "percentile-privacy" }

    /// - Throws: `.invalidConfiguration` naming the parameter when p is not in (0, 100) or γ is not finite and > 0.
    public init(percentile: Double, gamma: Double) throws(FederationError) {
        guard percentile > 0, percentile < 100 else {
            throw FederationError(
                .invalidConfiguration,
                "percentile_privacy.percentile is \(percentile): it must be "
                    + "in (0, 100), in percent")
        }
        guard gamma.isFinite, gamma > 0, Float(gamma) > 0 else {
            throw FederationError(
                .invalidConfiguration,
                "percentile_privacy.gamma is \(gamma): it must be a finite "
                    + "number > 0 (the clipping bound, in weight units)")
        }
        self.percentile = percentile
        self.gamma = gamma
    }

    /// - Throws: `.nonFinite` when the diff holds a NaN or infinity (the percentile would be meaningless).
    public func process(_ update: ModelUpdate, context: FilterContext) async throws(FederationError) -> ModelUpdate {
        guard let cutoff = try Self.cutoff(of: update.diff, percentile: percentile) else { return update }
        let bound = Float(gamma)
        var u = update
        try u.diff.updateValues { _, values in
            for i in values.indices {
                let v = values[i]
                values[i] = Double(v.magnitude) < cutoff ? 0 : min(max(v, -bound), bound)
            }
        }
        return u
    }

    /// The `percentile`-th percentile of the diff's absolute values (numpy's linear definition, see the type),
    /// nil for an empty diff.
    /// - Throws: `.nonFinite` naming the tensor of the first NaN or infinity.
    public static func cutoff(of diff: ParameterSet, percentile: Double) throws(FederationError) -> Double? {
        let n = diff.scalarCount
        guard n > 0 else { return nil }
        var magnitudes = [Float]()
        magnitudes.reserveCapacity(n)
        for t in diff.tensors {
            for v in t.values {
                guard v.isFinite else {
                    throw FederationError(
                        .nonFinite,
                        "tensor '\(t.name)' of the diff holds \(v); the percentile "
                            + "privacy filter needs finite values")
                }
                magnitudes.append(v.magnitude)
            }
        }
        let h = Double(n - 1) * (percentile / 100)  // numpy: (n − 1) · q, q = p / 100
        // 0 ≤ h ≤ n − 1 for p in [0, 100]; the conversion is checked all the same.
        let lower = min(n - 1, max(0, Int(exactly: h.rounded(.down)) ?? 0))
        let fraction = h - Double(lower)
        return magnitudes.withUnsafeMutableBufferPointer { buffer -> Double in
            let a = Double(select(lower, in: buffer))
            guard fraction > 0, lower + 1 < n else { return a }
            // After selection everything right of `lower` is ≥ it: the next order statistic is their minimum.
            var b = buffer[lower + 1]
            for i in (lower + 1)..<n where buffer[i] < b { b = buffer[i] }
            return lerp(a, Double(b), fraction)
        }
    }

    /// a + t·(b − a), written as numpy's `_lerp` writes it (from b's side for t ≥ 0.5), so that the cutoff is the
    /// same Double numpy computes.
    static func lerp(_ a: Double, _ b: Double, _ t: Double) -> Double {
        t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t
    }

    /// Rearranges `values` so that `values[k]` is the k-th smallest, everything before it ≤ and everything after
    /// it ≥ (C++'s `nth_element`); returns it. Quickselect with median-of-three pivots, falling back to sorting the
    /// remaining range after 2·log₂(n) rounds, so the worst case stays O(n log n).
    static func select(_ k: Int, in values: UnsafeMutableBufferPointer<Float>) -> Float {
        precondition(k >= 0 && k < values.count, "select: k \(k) outside 0..<\(values.count)")
        var low = 0
        var high = values.count - 1
        var budget = 2 * (Int.bitWidth - values.count.leadingZeroBitCount)
        while high > low {
            if budget == 0 {
                var rest = UnsafeMutableBufferPointer(rebasing: values[low...high])
                rest.sort()
                break
            }
            budget -= 1
            let middle = low + (high - low) / 2
            if values[middle] < values[low] { values.swapAt(middle, low) }
            if values[high] < values[low] { values.swapAt(high, low) }
            if values[high] < values[middle] { values.swapAt(high, middle) }
            let pivot = values[middle]
            // Hoare partition: [low, j] ≤ pivot ≤ [i, high].
            var i = low
            var j = high
            while i <= j {
                while values[i] < pivot { i += 1 }
                while values[j] > pivot { j -= 1 }
                if i <= j {
                    values.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if k <= j {
                high = j
            } else if k >= i {
                low = i
            } else {
                break  // j < k < i: values[k] equals the pivot and is in place
            }
        }
        return values[k]
    }
}

/// Secure aggregation of training updates (pipeline key `federation.secure_aggregation`): the server learns only
/// the weighted sum of the sites' updates, never one site's (SecAgg, Bonawitz et al. 2017; sparse neighbourhoods of
/// SecAgg+, Bell et al. 2020). Every round runs five stages over the ordinary task/result exchange: train and
/// advertise keys, share keys, upload the masked vector, confirm the survivors, unmask.
///
/// Each site clips every value of its diff to [−`clipRange`, `clipRange`] (weight units), optionally scales the diff
/// to L2 norm ≤ `normBound`, multiplies it by its weight w = min(samples, `maxWeightSamples`) / `maxWeightSamples`
/// (or 1 with `weighting: equal`) and quantises into Z/2³² (`RingQuantizer`); the server divides the sum by Σ w.
public struct SecureAggregationSettings: Sendable, Equatable {
    public enum Weighting: String, Sendable, Equatable, CaseIterable {
        /// w = min(samples, maxWeightSamples) / maxWeightSamples: FedAvg's weighting, capped.
        case samples
        /// w = 1 for every site.
        case equal
    }

    /// t: shares needed to rebuild a site's secrets; nil: ⌊holders/2⌋ + 1, holders being a site and its neighbours.
    public var threshold: Int?
    /// k: neighbours per site (even, ≥ 2); 0: every other site.
    public var neighbours: Int
    /// Per-value clip range of a diff, weight units (0 < range ≤ 10⁶).
    public var clipRange: Double
    /// L2 bound each site applies to its diff before quantising; nil: none beyond `clipRange`.
    public var normBound: Double?
    public var weighting: Weighting
    /// Samples at which a site's weight reaches 1 (1…10⁶).
    public var maxWeightSamples: Int
    /// Deadline of each key stage (share, confirm, unmask); the train and upload stages use the round timeout.
    public var stageTimeout: Duration

    public init(
        threshold: Int? = nil, neighbours: Int = 0, clipRange: Double = 1, normBound: Double? = nil,
        weighting: Weighting = .samples, maxWeightSamples: Int = 1000, stageTimeout: Duration = .seconds(120)
    ) throws(FederationError) {
        self.threshold = threshold
        self.neighbours = neighbours
        self.clipRange = clipRange
        self.normBound = normBound
        self.weighting = weighting
        self.maxWeightSamples = maxWeightSamples
        self.stageTimeout = stageTimeout
        try validate()
    }

    /// - Throws: `.invalidConfiguration` naming the key out of range.
    public func validate() throws(FederationError) {
        if let threshold, threshold < 2 || threshold > 255 {
            throw FederationError(
                .invalidConfiguration, "secure_aggregation.threshold must be 2…255, is \(threshold)")
        }
        guard neighbours == 0 || (neighbours >= 2 && neighbours % 2 == 0 && neighbours < 255) else {
            throw FederationError(
                .invalidConfiguration,
                "secure_aggregation.neighbours must be 0 (every site) or an even number ≥ 2, is \(neighbours)")
        }
        guard clipRange.isFinite, clipRange > 0, clipRange <= 1e6 else {
            throw FederationError(
                .invalidConfiguration, "secure_aggregation.clip_range must be in (0, 1e6], is \(clipRange)")
        }
        if let normBound, !(normBound.isFinite && normBound > 0) {
            throw FederationError(
                .invalidConfiguration, "secure_aggregation.norm_bound must be positive and finite, is \(normBound)")
        }
        guard maxWeightSamples >= 1, maxWeightSamples <= 1_000_000 else {
            throw FederationError(
                .invalidConfiguration,
                "secure_aggregation.max_weight_samples must be 1…1000000, is \(maxWeightSamples)")
        }
        guard stageTimeout > .zero else {
            throw FederationError(.invalidConfiguration, "secure_aggregation.stage_timeout must be positive")
        }
    }

    /// Share holders of each site among `participants`: itself and its neighbours.
    public func holders(participants: Int) -> Int {
        neighbours == 0 || neighbours >= participants - 1 ? participants : neighbours + 1
    }

    /// The threshold for `participants`: the configured one, or a majority of the holders.
    public func threshold(participants: Int) -> Int {
        threshold ?? (holders(participants: participants) / 2 + 1)
    }

    /// A site's weight for `samples` training examples, in [0, 1].
    public func weight(samples: Int) -> Double {
        switch weighting {
        case .equal: 1
        case .samples: Double(min(max(samples, 0), maxWeightSamples)) / Double(maxWeightSamples)
        }
    }
}

/// Task configuration keys of a secure-aggregation round (every stage is a `train` task of the same round).
public enum SecureAggregationStage: String, Sendable, Equatable, CaseIterable {
    /// Train, release through the site's privacy step, then advertise keys (payload: the session parameters).
    case advertise
    /// Check the advertised set, send encrypted shares.
    case share
    /// Take the shares addressed to the site, upload the masked vector.
    case mask
    /// Sign the survivor set.
    case confirm
    /// Reveal shares for the signed survivor set.
    case unmask

    /// `config["secagg_stage"]` of a task, and the `secagg_stage` metric (1…5) of an answer.
    public static let configKey = "secagg_stage"
    public var number: Int { Self.allCases.firstIndex(of: self).map { $0 + 1 } ?? 0 }
    /// The name of the extra tensor of a masked upload that holds the site's masked weight (shape [1]).
    public static let weightTensor = "secagg.weight"
}

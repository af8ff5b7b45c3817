/// Client-level differential privacy (McMahan, Ramage, Talwar & Zhang 2018, "Learning Differentially Private
/// Recurrent Language Models"): the privacy unit is a whole site. Each site's weight diff is scaled down to an L2
/// norm of at most `clipNorm` (over all tensors it sends), results are averaged with equal weights (a site's sample
/// count would otherwise be its sensitivity), and Gaussian noise of standard deviation `noiseMultiplier · clipNorm`
/// is added to the sum of the clipped diffs — by the server (`NoisePlacement.server`), or split between the sites
/// (`NoisePlacement.sites`: each adds a share of standard deviation `noiseMultiplier · clipNorm / √minClients`).
///
/// Pipeline keys `federation.client_dp.clip_norm`, `.noise_multiplier`, `.noise` (server | sites).
public struct ClientDPSettings: Sendable, Equatable, Codable {
    /// Who adds the Gaussian noise to the sum of the clipped diffs.
    public enum NoisePlacement: String, Sendable, Equatable, Codable, CaseIterable {
        /// The server adds all of it after summing (it sees each site's clipped diff in the clear: protects against
        /// the other sites and everyone who receives the model, not against the server).
        case server
        /// Each site adds its share before the diff leaves: with every share in the sum, the sum carries the full
        /// noise. Without secure aggregation the server sees each diff with only its own share, so a site counts only
        /// its own share in its ledger (noise multiplier `noiseMultiplier / √minClients`).
        case sites
    }

    /// S: largest L2 norm of one site's diff, in weight units (> 0).
    public var clipNorm: Double
    /// z: noise standard deviation on the sum, in units of `clipNorm` (> 0).
    public var noiseMultiplier: Double
    public var noise: NoisePlacement

    public init(clipNorm: Double, noiseMultiplier: Double, noise: NoisePlacement) {
        self.clipNorm = clipNorm
        self.noiseMultiplier = noiseMultiplier
        self.noise = noise
    }

    /// Standard deviation of the Gaussian noise one site adds to its diff (`sites` placement), per value.
    public func siteNoiseStandardDeviation(minClients: Int) -> Double {
        noiseMultiplier * clipNorm / Double(max(1, minClients)).squareRoot()
    }

    /// Standard deviation of the noise the server adds to the mean of `results` clipped diffs (`server` placement):
    /// `z · S / results`, per value.
    public func serverNoiseStandardDeviation(results: Int) -> Double {
        noiseMultiplier * clipNorm / Double(max(1, results))
    }

    /// The noise multiplier a site can count on for its own diff (what its ledger charges): `z` when the server
    /// adds the noise (the site trusts it to); with `sites` placement, `z / √minClients` when the server sees each
    /// diff with its own share only, `z` under secure aggregation (the server sees only the sum of at least
    /// `minClients` diffs, which carries every share).
    public func effectiveNoiseMultiplier(minClients: Int, secureAggregation: Bool = false) -> Double {
        switch noise {
        case .server: noiseMultiplier
        case .sites: secureAggregation ? noiseMultiplier : noiseMultiplier / Double(max(1, minClients)).squareRoot()
        }
    }
}

extension ParameterSet {
    /// Scales every value so that the L2 norm over all tensors is at most `maxNorm` (unchanged when it already is).
    /// - Returns: the norm before clipping (accumulated in Double).
    /// - Throws: `.nonFinite` when the norm is not finite.
    @discardableResult
    public mutating func clipL2Norm(to maxNorm: Double) throws(FederationError) -> Double {
        let norm = l2Norm
        guard norm.isFinite else {
            throw FederationError(.nonFinite, "the update's L2 norm is \(norm); it cannot be clipped")
        }
        guard norm > maxNorm, norm > 0 else { return norm }
        let factor = Float(maxNorm / norm)
        try updateValues { _, values throws(FederationError) in
            for i in values.indices { values[i] *= factor }
        }
        return norm
    }
}

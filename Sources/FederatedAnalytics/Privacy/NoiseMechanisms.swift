import DifferentialPrivacy
import Foundation
import Randomness
import Volumes

/// How one released primitive is noised: mechanism, budget and sensitivity.
public struct NoiseSpec: Sendable, Codable, Equatable {
    public var mechanism: NoiseMechanism
    public var epsilon: Double
    public var delta: Double
    /// L1 sensitivity for Laplace, L2 for Gaussian, in the primitive's units.
    public var sensitivity: Double

    public init(mechanism: NoiseMechanism, epsilon: Double, delta: Double, sensitivity: Double) {
        self.mechanism = mechanism
        self.epsilon = epsilon
        self.delta = delta
        self.sensitivity = sensitivity
    }

    /// Standard deviation of the added noise (0 for `.none`).
    public var standardDeviation: Double {
        switch mechanism {
        case .laplace: return Calibration.laplaceScale(sensitivity: sensitivity, epsilon: epsilon) * 2.0.squareRoot()
        case .gaussian: return Calibration.gaussianSigma(sensitivity: sensitivity, epsilon: epsilon, delta: delta)
        case .none: return 0
        }
    }

    /// Adds independent noise to every value.
    public func apply<S: NoiseSource>(_ values: [Double], using source: inout S) -> [Double] {
        switch mechanism {
        case .none: return values
        case .laplace:
            let b = Calibration.laplaceScale(sensitivity: sensitivity, epsilon: epsilon)
            return values.map { $0 + Calibration.laplace(scale: b, using: &source) }
        case .gaussian:
            let s = Calibration.gaussianSigma(sensitivity: sensitivity, epsilon: epsilon, delta: delta)
            return values.map { $0 + Calibration.gaussian(sigma: s, using: &source) }
        }
    }
}

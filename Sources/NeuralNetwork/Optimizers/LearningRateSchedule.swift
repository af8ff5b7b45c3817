import Foundation

/// A learning rate as a function of the epoch (or step) count `t`, from the optimiser's base rate.
///
/// - `constant`: `base`.
/// - `step(size:gamma:)`: `base · gamma^⌊t / size⌋` (PyTorch's `StepLR`).
/// - `cosine(period:minimum:)`: `minimum + (base − minimum)·(1 + cos(π·t / period)) / 2` for `t ≤ period`, then
///   `minimum` (PyTorch's `CosineAnnealingLR` closed form, without restarts).
public enum LearningRateSchedule: Sendable, Hashable {
    case constant
    case step(size: Int, gamma: Float)
    case cosine(period: Int, minimum: Float)

    /// The rate at epoch (or step) `t ≥ 0`.
    public func rate(base: Float, at t: Int) -> Float {
        switch self {
        case .constant:
            return base
        case .step(let size, let gamma):
            return base * Float(pow(Double(gamma), Double(t / max(1, size))))
        case .cosine(let period, let minimum):
            guard t < period else { return minimum }
            return minimum + (base - minimum) * Float((1 + cos(Double.pi * Double(t) / Double(max(1, period)))) / 2)
        }
    }
}

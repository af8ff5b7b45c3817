import Foundation
import Tensors

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A loss value and its gradient with respect to the logits.
public struct LossResult: Sendable {
    /// The scalar loss (accumulated in double precision).
    public var value: Double
    /// `∂loss/∂logits`, the logits' shape.
    public var gradient: Tensor
}

/// Losses on logits `[N, C, spatial…]` (or `[N, C]`) and integer class targets (`N · spatial` labels in row-major
/// order, values in `0..<C`), matching PyTorch's definitions with mean reduction.
public enum Loss {
    /// Cross-entropy (PyTorch's `cross_entropy`, mean over all `N · spatial` positions):
    /// `L = −(1/M) Σ_i log softmax(z_i)[t_i]`, `∂L/∂z_i = (softmax(z_i) − onehot(t_i)) / M`.
    /// - Throws: `.invalidArgument` when the target count or a label is out of range.
    ///
    /// With `weights` (one per class, PyTorch's `weight=`): `L = Σ_i w_{t_i}·nll_i / Σ_i w_{t_i}` and
    /// `∂L/∂z_i = w_{t_i}·(softmax(z_i) − onehot(t_i)) / Σ_i w_{t_i}`.
    /// - Throws: `.invalidArgument` when the target count or a label is out of range, or the weights are not one
    ///   finite non-negative value per class with a positive total over the targets.
    public static func crossEntropy(logits: Tensor, targets: [Int], weights: [Double]? = nil) throws -> LossResult {
        try check(logits: logits, targets: targets)
        let (n, c, s) = (logits.batch, logits.channels, logits.spatialCount)
        if let weights {
            guard weights.count == c, weights.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw NeuralNetworkError(
                    .invalidArgument, "cross-entropy weights must be \(c) finite values ≥ 0, got \(weights)")
            }
        }
        let p = Softmax.forward(logits)
        var gradient = p
        var total = 0.0
        var weightSum = 0.0
        for b in 0..<n {
            for i in 0..<s {
                let t = targets[b * s + i]
                let w = weights?[t] ?? 1
                let base = b * c * s + i
                // log softmax from the logits directly (no log of a rounded probability).
                var mx = -Float.infinity
                for ch in 0..<c { mx = max(mx, logits.storage[base + ch * s]) }
                var sum = 0.0
                for ch in 0..<c { sum += Foundation.exp(Double(logits.storage[base + ch * s] - mx)) }
                total += w * (Foundation.log(sum) - Double(logits.storage[base + t * s] - mx))
                weightSum += w
                gradient.storage[base + t * s] -= 1
                if weights != nil {
                    for ch in 0..<c { gradient.storage[base + ch * s] *= Float(w) }
                }
            }
        }
        guard weightSum > 0 else {
            throw NeuralNetworkError(.invalidArgument, "cross-entropy weights are 0 for every target")
        }
        return LossResult(value: total / weightSum, gradient: gradient * Float(1 / weightSum))
    }

    /// Soft Dice loss, the reference's exact formula: `p = softmax(z)`, `t = onehot(target)`, per class c
    /// `dice_c = (2·Σ p_c t_c + ε) / (Σ p_c + Σ t_c + ε)` with sums over batch and space, `L = 1 − mean_c dice_c`.
    /// Gradient: `∂L/∂p_c(i) = −(1/C)·(2 t_c(i)·D_c − (2 I_c + ε)) / D_c²` with `D_c = Σp_c + Σt_c + ε`, then
    /// through the softmax.
    public static func softDice(logits: Tensor, targets: [Int], epsilon: Double = 1e-5) throws -> LossResult {
        try check(logits: logits, targets: targets)
        let (n, c, s) = (logits.batch, logits.channels, logits.spatialCount)
        let p = Softmax.forward(logits)
        var intersection = [Double](repeating: 0, count: c)
        var sumP = intersection
        var sumT = intersection
        for b in 0..<n {
            for i in 0..<s {
                let t = targets[b * s + i]
                for ch in 0..<c { sumP[ch] += Double(p.storage[b * c * s + ch * s + i]) }
                intersection[t] += Double(p.storage[b * c * s + t * s + i])
                sumT[t] += 1
            }
        }
        var dice = 0.0
        var dLdP = Tensor(zeros: p.shape)
        var a = [Double](repeating: 0, count: c)
        var k = [Double](repeating: 0, count: c)
        for ch in 0..<c {
            let denominator = sumP[ch] + sumT[ch] + epsilon
            let numerator = 2 * intersection[ch] + epsilon
            dice += numerator / denominator
            // ∂dice_c/∂p_c(i) = 2 t_c(i) / D − N / D²
            a[ch] = 2 / denominator
            k[ch] = numerator / (denominator * denominator)
        }
        let scale = -1 / Double(c)
        for b in 0..<n {
            for i in 0..<s {
                let t = targets[b * s + i]
                for ch in 0..<c {
                    let d = (ch == t ? a[ch] : 0) - k[ch]
                    dLdP.storage[b * c * s + ch * s + i] = Float(scale * d)
                }
            }
        }
        return LossResult(value: 1 - dice / Double(c), gradient: Softmax.backward(dLdP, output: p))
    }

    /// Cross-entropy plus soft Dice, the reference segmentation loss: `L = ceWeight·CE + diceWeight·Dice`.
    public static func diceCrossEntropy(logits: Tensor, targets: [Int], ceWeight: Double = 1, diceWeight: Double = 1)
        throws -> LossResult
    {
        let ce = try crossEntropy(logits: logits, targets: targets)
        let dice = try softDice(logits: logits, targets: targets)
        return LossResult(
            value: ceWeight * ce.value + diceWeight * dice.value,
            gradient: ce.gradient * Float(ceWeight) + dice.gradient * Float(diceWeight))
    }

    /// Binary cross-entropy on logits (PyTorch's `binary_cross_entropy_with_logits`, mean):
    /// `L = (1/M) Σ max(z, 0) − z·t + log(1 + exp(−|z|))`, `∂L/∂z = (σ(z) − t)/M`; targets in [0, 1], logits' shape.
    public static func binaryCrossEntropy(logits: Tensor, targets: Tensor) throws -> LossResult {
        guard logits.shape == targets.shape else {
            throw NeuralNetworkError(
                .shapeMismatch,
                "binary cross-entropy: targets \(targets.shape) must have the "
                    + "logits' shape \(logits.shape)")
        }
        let m = Double(logits.count)
        var total = 0.0
        var gradient = logits
        for i in 0..<logits.count {
            let z = Double(logits.storage[i])
            let t = Double(targets.storage[i])
            total += max(z, 0) - z * t + Foundation.log1p(Foundation.exp(-abs(z)))
            gradient.storage[i] = Float((1 / (1 + Foundation.exp(-z)) - t) / m)
        }
        return LossResult(value: total / m, gradient: gradient)
    }

    static func check(logits: Tensor, targets: [Int]) throws {
        let expected = logits.batch * logits.spatialCount
        guard targets.count == expected else {
            throw NeuralNetworkError(
                .shapeMismatch,
                "\(targets.count) targets for logits \(logits.shape): expected "
                    + "one label per batch element and position (\(expected))")
        }
        if let bad = targets.first(where: { $0 < 0 || $0 >= logits.channels }) {
            throw NeuralNetworkError(
                .invalidArgument,
                "target label \(bad) is outside 0..<\(logits.channels): "
                    + "labels must be class indices below the number of logit channels")
        }
    }
}

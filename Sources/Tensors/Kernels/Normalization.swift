/// What the backward pass of a normalisation needs from its forward pass.
public struct NormalizationCache: Sendable {
    /// `x̂ = (x − mean) / sqrt(var + ε)`, the input's shape.
    public var normalized: Tensor
    /// `1 / sqrt(var + ε)` per statistics group (per `(n, c)` for instance norm, per `c` for batch norm).
    public var inverseStd: [Float]
    /// Whether batch statistics were used (always for instance norm; batch norm in training mode).
    public var batchStatistics: Bool
}

/// Gradients of a normalisation layer.
public struct NormalizationGradients: Sendable {
    public var input: Tensor
    /// `∂L/∂γ` (nil without affine).
    public var weight: Tensor?
    /// `∂L/∂β` (nil without affine).
    public var bias: Tensor?
}

/// Instance normalisation (PyTorch's `instance_norm`): per sample and channel, over space,
/// `y = γ · (x − mean) / sqrt(var + ε) + β` with the biased variance. Shapes `[N, C, spatial…]`, `γ, β: [C]`.
public enum InstanceNormalization {
    public static func forward(_ x: Tensor, weight: Tensor?, bias: Tensor?, epsilon: Float = 1e-5)
        -> (output: Tensor, cache: NormalizationCache)
    {
        let (n, c, s) = (x.batch, x.channels, x.spatialCount)
        var xhat = x
        var output = x
        var inverseStd = [Float](repeating: 0, count: n * c)
        xhat.storage.withUnsafeMutableBufferPointer { h in
            output.storage.withUnsafeMutableBufferPointer { y in
                for plane in 0..<(n * c) {
                    let base = plane * s
                    var sum = 0.0
                    for i in 0..<s { sum += Double(h[base + i]) }
                    let mean = sum / Double(s)
                    var sq = 0.0
                    for i in 0..<s {
                        let d = Double(h[base + i]) - mean
                        sq += d * d
                    }
                    let istd = Float(1 / (sq / Double(s) + Double(epsilon)).squareRoot())
                    inverseStd[plane] = istd
                    let (g, b) = (weight?.storage[plane % c] ?? 1, bias?.storage[plane % c] ?? 0)
                    let m = Float(mean)
                    for i in 0..<s {
                        let v = (h[base + i] - m) * istd
                        h[base + i] = v
                        y[base + i] = g * v + b
                    }
                }
            }
        }
        return (output, NormalizationCache(normalized: xhat, inverseStd: inverseStd, batchStatistics: true))
    }

    /// `∂x = istd/M · (M·ĝ − Σĝ − x̂·Σ(ĝ·x̂))` with `ĝ = γ·∂y` and `M` elements per group.
    public static func backward(_ gradOutput: Tensor, cache: NormalizationCache, weight: Tensor?, affine: Bool)
        -> NormalizationGradients
    {
        let (n, c, s) = (gradOutput.batch, gradOutput.channels, gradOutput.spatialCount)
        var gradInput = gradOutput
        var gw = [Float](repeating: 0, count: c)
        var gb = [Float](repeating: 0, count: c)
        gradInput.storage.withUnsafeMutableBufferPointer { gx in
            gradOutput.storage.withUnsafeBufferPointer { gy in
                cache.normalized.storage.withUnsafeBufferPointer { h in
                    for plane in 0..<(n * c) {
                        let base = plane * s
                        let ch = plane % c
                        let gamma = weight?.storage[ch] ?? 1
                        var sumG = 0.0
                        var sumGH = 0.0
                        for i in 0..<s {
                            sumG += Double(gy[base + i])
                            sumGH += Double(gy[base + i] * h[base + i])
                        }
                        gw[ch] += Float(sumGH)
                        gb[ch] += Float(sumG)
                        let scale = gamma * cache.inverseStd[plane]
                        let (mg, mgh) = (Float(sumG / Double(s)), Float(sumGH / Double(s)))
                        for i in 0..<s { gx[base + i] = scale * (gy[base + i] - mg - h[base + i] * mgh) }
                    }
                }
            }
        }
        return NormalizationGradients(
            input: gradInput, weight: affine ? Tensor(shape: [c], storage: gw) : nil,
            bias: affine ? Tensor(shape: [c], storage: gb) : nil)
    }
}

/// Batch normalisation (PyTorch's `batch_norm`): per channel over batch and space.
///
/// Training: `y = γ · (x − mean_B) / sqrt(var_B + ε) + β` with the biased batch variance, and the running
/// statistics move as `running = (1 − momentum)·running + momentum·batch` (the running variance takes the unbiased
/// batch variance). Evaluation: the running statistics replace the batch ones. Shapes `[N, C, spatial…]`.
public enum BatchNormalization {
    public static func forward(
        _ x: Tensor, weight: Tensor?, bias: Tensor?, runningMean: inout Tensor,
        runningVariance: inout Tensor, training: Bool, momentum: Float = 0.1,
        epsilon: Float = 1e-5
    ) -> (output: Tensor, cache: NormalizationCache) {
        let (n, c, s) = (x.batch, x.channels, x.spatialCount)
        let m = n * s
        var mean = [Double](repeating: 0, count: c)
        var variance = [Double](repeating: 0, count: c)
        if training {
            x.storage.withUnsafeBufferPointer { p in
                for ch in 0..<c {
                    var sum = 0.0
                    for b in 0..<n {
                        let base = (b * c + ch) * s
                        for i in 0..<s { sum += Double(p[base + i]) }
                    }
                    let mu = sum / Double(m)
                    var sq = 0.0
                    for b in 0..<n {
                        let base = (b * c + ch) * s
                        for i in 0..<s {
                            let d = Double(p[base + i]) - mu
                            sq += d * d
                        }
                    }
                    mean[ch] = mu
                    variance[ch] = sq / Double(m)
                    let unbiased = m > 1 ? sq / Double(m - 1) : sq
                    runningMean.storage[ch] = (1 - momentum) * runningMean.storage[ch] + momentum * Float(mu)
                    runningVariance.storage[ch] =
                        (1 - momentum) * runningVariance.storage[ch]
                        + momentum * Float(unbiased)
                }
            }
        } else {
            for ch in 0..<c {
                mean[ch] = Double(runningMean.storage[ch])
                variance[ch] = Double(runningVariance.storage[ch])
            }
        }
        let inverseStd = (0..<c).map { Float(1 / (variance[$0] + Double(epsilon)).squareRoot()) }
        var xhat = x
        var output = x
        xhat.storage.withUnsafeMutableBufferPointer { h in
            output.storage.withUnsafeMutableBufferPointer { y in
                for b in 0..<n {
                    for ch in 0..<c {
                        let base = (b * c + ch) * s
                        let (mu, istd) = (Float(mean[ch]), inverseStd[ch])
                        let (g, bb) = (weight?.storage[ch] ?? 1, bias?.storage[ch] ?? 0)
                        for i in 0..<s {
                            let v = (h[base + i] - mu) * istd
                            h[base + i] = v
                            y[base + i] = g * v + bb
                        }
                    }
                }
            }
        }
        return (output, NormalizationCache(normalized: xhat, inverseStd: inverseStd, batchStatistics: training))
    }

    /// Training: `∂x = istd/M · (M·ĝ − Σĝ − x̂·Σ(ĝ·x̂))` per channel; evaluation: `∂x = γ·istd·∂y`.
    public static func backward(_ gradOutput: Tensor, cache: NormalizationCache, weight: Tensor?, affine: Bool)
        -> NormalizationGradients
    {
        let (n, c, s) = (gradOutput.batch, gradOutput.channels, gradOutput.spatialCount)
        let m = Double(n * s)
        var sumG = [Double](repeating: 0, count: c)
        var sumGH = [Double](repeating: 0, count: c)
        gradOutput.storage.withUnsafeBufferPointer { gy in
            cache.normalized.storage.withUnsafeBufferPointer { h in
                for b in 0..<n {
                    for ch in 0..<c {
                        let base = (b * c + ch) * s
                        for i in 0..<s {
                            sumG[ch] += Double(gy[base + i])
                            sumGH[ch] += Double(gy[base + i] * h[base + i])
                        }
                    }
                }
            }
        }
        var gradInput = gradOutput
        gradInput.storage.withUnsafeMutableBufferPointer { gx in
            cache.normalized.storage.withUnsafeBufferPointer { h in
                for b in 0..<n {
                    for ch in 0..<c {
                        let base = (b * c + ch) * s
                        let scale = (weight?.storage[ch] ?? 1) * cache.inverseStd[ch]
                        if cache.batchStatistics {
                            let (mg, mgh) = (Float(sumG[ch] / m), Float(sumGH[ch] / m))
                            for i in 0..<s { gx[base + i] = scale * (gx[base + i] - mg - h[base + i] * mgh) }
                        } else {
                            for i in 0..<s { gx[base + i] *= scale }
                        }
                    }
                }
            }
        }
        return NormalizationGradients(
            input: gradInput,
            weight: affine ? Tensor(shape: [c], storage: sumGH.map { Float($0) }) : nil,
            bias: affine ? Tensor(shape: [c], storage: sumG.map { Float($0) }) : nil)
    }
}

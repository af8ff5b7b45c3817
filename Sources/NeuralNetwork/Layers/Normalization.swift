import Tensors

/// Instance normalisation (PyTorch's `InstanceNorm2d/3d`): per sample and channel over space,
/// `y = γ·(x − mean)/sqrt(var + ε) + β` (biased variance). `weight` γ and `bias` β are `[channels]`, initialised to
/// 1 and 0; without `affine` there are no parameters. No running statistics (PyTorch's default).
public struct InstanceNorm: Layer {
    public var weight: Tensor?
    public var bias: Tensor?
    public let epsilon: Float

    public init(channels: Int, affine: Bool = true, epsilon: Float = 1e-5) {
        weight = affine ? Tensor(repeating: 1, shape: [channels]) : nil
        bias = affine ? Tensor(zeros: [channels]) : nil
        self.epsilon = epsilon
    }

    public var parameters: NamedTensors {
        guard let weight, let bias else { return NamedTensors() }
        return NamedTensors([("weight", weight), ("bias", bias)])
    }

    /// The whole layer: `weight` and `bias` (none without `affine`).
    public var normalizationVariables: [String] { stateDict.names }

    public mutating func update(parameters state: NamedTensors) throws {
        if weight != nil {
            weight = try state.require("weight")
            bias = try state.require("bias")
        }
    }

    public func forward(_ input: Tensor, training: Bool = false) -> (output: Tensor, cache: NormalizationCache) {
        InstanceNormalization.forward(input, weight: weight, bias: bias, epsilon: epsilon)
    }

    public func backward(_ gradOutput: Tensor, cache: NormalizationCache) -> (input: Tensor?, gradients: NamedTensors) {
        let g = InstanceNormalization.backward(gradOutput, cache: cache, weight: weight, affine: weight != nil)
        guard let gw = g.weight, let gb = g.bias else { return (g.input, NamedTensors()) }
        return (g.input, NamedTensors([("weight", gw), ("bias", gb)]))
    }
}

/// Batch normalisation (PyTorch's `BatchNorm2d/3d`): per channel over batch and space.
///
/// Training uses batch statistics and moves `running_mean`/`running_var` by `momentum` (the variance unbiased);
/// evaluation uses the running statistics. γ (`weight`) = 1, β (`bias`) = 0, running mean 0 and variance 1
/// initially. PyTorch's `num_batches_tracked` (int64) is not kept: it only matters for `momentum=None`.
public struct BatchNorm: Layer {
    public var weight: Tensor?
    public var bias: Tensor?
    public var runningMean: Tensor
    public var runningVariance: Tensor
    public let momentum: Float
    public let epsilon: Float

    public init(channels: Int, affine: Bool = true, momentum: Float = 0.1, epsilon: Float = 1e-5) {
        weight = affine ? Tensor(repeating: 1, shape: [channels]) : nil
        bias = affine ? Tensor(zeros: [channels]) : nil
        runningMean = Tensor(zeros: [channels])
        runningVariance = Tensor(repeating: 1, shape: [channels])
        self.momentum = momentum
        self.epsilon = epsilon
    }

    public var parameters: NamedTensors {
        guard let weight, let bias else { return NamedTensors() }
        return NamedTensors([("weight", weight), ("bias", bias)])
    }

    public var buffers: NamedTensors {
        NamedTensors([("running_mean", runningMean), ("running_var", runningVariance)])
    }

    /// The whole layer: `weight`, `bias` (with `affine`), `running_mean`, `running_var`.
    public var normalizationVariables: [String] { stateDict.names }

    public mutating func update(parameters state: NamedTensors) throws {
        if weight != nil {
            weight = try state.require("weight")
            bias = try state.require("bias")
        }
        runningMean = try state.require("running_mean")
        runningVariance = try state.require("running_var")
    }

    public mutating func forward(_ input: Tensor, training: Bool) -> (output: Tensor, cache: NormalizationCache) {
        BatchNormalization.forward(
            input, weight: weight, bias: bias, runningMean: &runningMean,
            runningVariance: &runningVariance, training: training, momentum: momentum,
            epsilon: epsilon)
    }

    public func backward(_ gradOutput: Tensor, cache: NormalizationCache) -> (input: Tensor?, gradients: NamedTensors) {
        let g = BatchNormalization.backward(gradOutput, cache: cache, weight: weight, affine: weight != nil)
        guard let gw = g.weight, let gb = g.bias else { return (g.input, NamedTensors()) }
        return (g.input, NamedTensors([("weight", gw), ("bias", gb)]))
    }
}

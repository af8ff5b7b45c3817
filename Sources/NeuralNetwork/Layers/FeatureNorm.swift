import Tensors

/// A normalisation layer chosen at construction: batch norm or affine instance norm (a model's `norm` option).
///
/// Shapes as the wrapped layer: input and output `[N, channels, (D,) H, W]`. Parameters `weight`, `bias`
/// (`[channels]`); batch norm adds the buffers `running_mean`, `running_var`.
public enum FeatureNorm: Layer {
    /// Which normalisation a model uses.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// PyTorch's `BatchNorm2d/3d` (running statistics in evaluation).
        case batch
        /// PyTorch's `InstanceNorm2d/3d(affine=True)` (no running statistics).
        case instance
    }

    case batch(BatchNorm)
    case instance(InstanceNorm)

    public init(_ kind: Kind, channels: Int) {
        switch kind {
        case .batch: self = .batch(BatchNorm(channels: channels))
        case .instance: self = .instance(InstanceNorm(channels: channels))
        }
    }

    public var parameters: NamedTensors {
        switch self {
        case .batch(let n): n.parameters
        case .instance(let n): n.parameters
        }
    }

    public var buffers: NamedTensors {
        switch self {
        case .batch(let n): n.buffers
        case .instance(let n): n.buffers
        }
    }

    public var normalizationVariables: [String] { stateDict.names }

    public mutating func update(parameters state: NamedTensors) throws {
        switch self {
        case .batch(var n):
            try n.update(parameters: state)
            self = .batch(n)
        case .instance(var n):
            try n.update(parameters: state)
            self = .instance(n)
        }
    }

    public mutating func forward(_ input: Tensor, training: Bool) -> (output: Tensor, cache: NormalizationCache) {
        switch self {
        case .batch(var n):
            let r = n.forward(input, training: training)
            self = .batch(n)
            return r
        case .instance(let n):
            return n.forward(input, training: training)
        }
    }

    public func backward(_ gradOutput: Tensor, cache: NormalizationCache) -> (input: Tensor?, gradients: NamedTensors) {
        switch self {
        case .batch(let n): n.backward(gradOutput, cache: cache)
        case .instance(let n): n.backward(gradOutput, cache: cache)
        }
    }
}

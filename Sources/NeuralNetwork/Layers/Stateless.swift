import Tensors

/// Layers without parameters.
public protocol StatelessLayer: Layer {}

extension StatelessLayer {
    public var parameters: NamedTensors { NamedTensors() }
    public mutating func update(parameters state: NamedTensors) throws {}
}

/// `relu(x) = max(x, 0)` (PyTorch's `ReLU`).
public struct ReLU: StatelessLayer {
    public init() {}
    public func forward(_ input: Tensor, training: Bool = false) -> (output: Tensor, cache: Tensor) {
        let y = Activation.relu(input)
        return (y, y)
    }
    public func backward(_ gradOutput: Tensor, cache output: Tensor) -> (input: Tensor?, gradients: NamedTensors) {
        (Activation.reluBackward(gradOutput, output: output), NamedTensors())
    }
}

/// `x` for `x > 0`, `negativeSlope·x` otherwise (PyTorch's `LeakyReLU`, MONAI uses slope 0.1).
public struct LeakyReLU: StatelessLayer {
    public let negativeSlope: Float
    public init(negativeSlope: Float = 0.01) { self.negativeSlope = negativeSlope }
    public func forward(_ input: Tensor, training: Bool = false) -> (output: Tensor, cache: Tensor) {
        (Activation.leakyReLU(input, negativeSlope: negativeSlope), input)
    }
    public func backward(_ gradOutput: Tensor, cache input: Tensor) -> (input: Tensor?, gradients: NamedTensors) {
        (Activation.leakyReLUBackward(gradOutput, input: input, negativeSlope: negativeSlope), NamedTensors())
    }
}

/// Max pooling with a cubic window (PyTorch's `MaxPool2d/3d(kernelSize)`, stride defaults to the kernel size).
public struct MaxPool: StatelessLayer {
    public let kernelSize: [Int]
    public let stride: [Int]
    public init(dimensions: Int, kernelSize: Int = 2, stride: Int? = nil) {
        self.kernelSize = Array(repeating: kernelSize, count: dimensions)
        self.stride = Array(repeating: stride ?? kernelSize, count: dimensions)
    }
    public struct Cache: Sendable {
        var argmax: [Int32]
        var inputShape: [Int]
    }
    public func forward(_ input: Tensor, training: Bool = false) -> (output: Tensor, cache: Cache) {
        let (y, argmax) = MaxPooling.forward(input, kernelSize: kernelSize, stride: stride)
        return (y, Cache(argmax: argmax, inputShape: input.shape))
    }
    public func backward(_ gradOutput: Tensor, cache: Cache) -> (input: Tensor?, gradients: NamedTensors) {
        (MaxPooling.backward(gradOutput, argmax: cache.argmax, inputShape: cache.inputShape), NamedTensors())
    }
}

/// Average pooling (PyTorch's `AvgPool2d/3d`, no padding).
public struct AvgPool: StatelessLayer {
    public let kernelSize: [Int]
    public let stride: [Int]
    public init(dimensions: Int, kernelSize: Int = 2, stride: Int? = nil) {
        self.kernelSize = Array(repeating: kernelSize, count: dimensions)
        self.stride = Array(repeating: stride ?? kernelSize, count: dimensions)
    }
    public func forward(_ input: Tensor, training: Bool = false) -> (output: Tensor, cache: [Int]) {
        (AveragePooling.forward(input, kernelSize: kernelSize, stride: stride), input.shape)
    }
    public func backward(_ gradOutput: Tensor, cache shape: [Int]) -> (input: Tensor?, gradients: NamedTensors) {
        (AveragePooling.backward(gradOutput, inputShape: shape, kernelSize: kernelSize, stride: stride), NamedTensors())
    }
}

/// Global average pooling to `[N, C]` (PyTorch's `adaptive_avg_pool(x, 1).flatten(1)`).
public struct GlobalAvgPool: StatelessLayer {
    public init() {}
    public func forward(_ input: Tensor, training: Bool = false) -> (output: Tensor, cache: [Int]) {
        (GlobalAveragePooling.forward(input).reshaped([input.batch, input.channels]), input.shape)
    }
    public func backward(_ gradOutput: Tensor, cache shape: [Int]) -> (input: Tensor?, gradients: NamedTensors) {
        let g = gradOutput.reshaped([shape[0], shape[1]] + Array(repeating: 1, count: shape.count - 2))
        return (GlobalAveragePooling.backward(g, inputShape: shape), NamedTensors())
    }
}

/// Inverted dropout (PyTorch's `Dropout`): in training each element is zeroed with probability `probability` and
/// the rest scaled by `1/(1 − probability)`; identity in evaluation. The mask comes from the layer's own seeded
/// generator, advanced by every training forward pass.
public struct Dropout: StatelessLayer {
    public let probability: Float
    public var generator: SeededGenerator
    public init(probability: Float = 0.5, seed: UInt64) {
        self.probability = probability
        generator = SeededGenerator(seed: seed)
    }
    public mutating func forward(_ input: Tensor, training: Bool) -> (output: Tensor, cache: Tensor?) {
        guard training, probability > 0 else { return (input, nil) }
        let (y, mask) = DropoutMask.forward(input, probability: probability, generator: &generator)
        return (y, mask)
    }
    public func backward(_ gradOutput: Tensor, cache mask: Tensor?) -> (input: Tensor?, gradients: NamedTensors) {
        (mask.map { DropoutMask.backward(gradOutput, mask: $0) } ?? gradOutput, NamedTensors())
    }
}

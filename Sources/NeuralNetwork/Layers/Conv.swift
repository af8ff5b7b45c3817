import Tensors

/// A 2-D or 3-D convolution layer (PyTorch's `Conv2d`/`Conv3d`): `y = W ⋆ x + b`.
///
/// Shapes: input `[N, inputChannels, (D,) H, W]`, `weight` `[outputChannels, inputChannels, (kD,) kH, kW]`,
/// `bias` `[outputChannels]`. Initialisation as PyTorch: `weight, bias ~ U(−1/√fanIn, 1/√fanIn)` with
/// `fanIn = inputChannels · kernel taps` (Kaiming uniform with a = √5).
public struct Conv: Layer {
    public var weight: Tensor
    public var bias: Tensor?
    public let geometry: ConvolutionGeometry
    /// Whether `backward` computes `∂L/∂input` (a first layer skips it).
    public var computesInputGradient = true

    public init(
        dimensions: Int, inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1,
        padding: Int = 0, bias: Bool = true, generator: inout SeededGenerator
    ) {
        geometry = ConvolutionGeometry(dimensions: dimensions, kernelSize: kernelSize, stride: stride, padding: padding)
        let bound = 1 / Float(inputChannels * geometry.taps).squareRoot()
        weight = .randomUniform(
            [outputChannels, inputChannels] + geometry.kernelSize, low: -bound, high: bound,
            generator: &generator)
        self.bias = bias ? .randomUniform([outputChannels], low: -bound, high: bound, generator: &generator) : nil
    }

    public var parameters: NamedTensors {
        var p = NamedTensors([("weight", weight)])
        if let bias { p["bias"] = bias }
        return p
    }

    public mutating func update(parameters state: NamedTensors) throws {
        weight = try state.require("weight")
        if bias != nil { bias = try state.require("bias") }
    }

    public func forward(_ input: Tensor, training: Bool = false) -> (output: Tensor, cache: Tensor) {
        (Convolution.forward(input, weight: weight, bias: bias, geometry: geometry), input)
    }

    /// `relu(conv(x) + b)` with bias and ReLU fused into one pass; the cache is the input, as for `forward`.
    public func forwardReLU(_ input: Tensor) -> (output: Tensor, cache: Tensor) {
        (Convolution.forward(input, weight: weight, bias: bias, geometry: geometry, relu: true), input)
    }

    public func backward(_ gradOutput: Tensor, cache input: Tensor) -> (input: Tensor?, gradients: NamedTensors) {
        backward(gradOutput, cache: input, inputIsReLUOutput: false)
    }

    /// `backward` for a layer whose input is a ReLU's output: `∂x` comes back already multiplied by `[x > 0]` (the
    /// ReLU's backward, fused into the convolution's last pass).
    public func backwardThroughReLU(_ gradOutput: Tensor, cache input: Tensor)
        -> (input: Tensor?, gradients: NamedTensors)
    {
        backward(gradOutput, cache: input, inputIsReLUOutput: true)
    }

    func backward(_ gradOutput: Tensor, cache input: Tensor, inputIsReLUOutput: Bool)
        -> (input: Tensor?, gradients: NamedTensors)
    {
        let g = Convolution.backward(
            gradOutput, input: input, weight: weight, hasBias: bias != nil,
            geometry: geometry, inputGradient: computesInputGradient,
            inputIsReLUOutput: inputIsReLUOutput)
        var grads = NamedTensors([("weight", g.weight)])
        if let b = g.bias { grads["bias"] = b }
        return (g.input, grads)
    }
}

/// A 2-D or 3-D transposed convolution layer (PyTorch's `ConvTranspose2d`/`ConvTranspose3d`).
///
/// Shapes: input `[N, inputChannels, (D,) H, W]`, `weight` `[inputChannels, outputChannels, (kD,) kH, kW]`
/// (PyTorch's layout), output extents `(in − 1)·stride − 2·padding + kernelSize`. Initialisation as PyTorch:
/// `U(−1/√fanIn, 1/√fanIn)` with `fanIn = outputChannels · kernel taps` (PyTorch takes weight dimension 1).
public struct ConvTranspose: Layer {
    public var weight: Tensor
    public var bias: Tensor?
    public let geometry: ConvolutionGeometry

    public init(
        dimensions: Int, inputChannels: Int, outputChannels: Int, kernelSize: Int = 2, stride: Int = 2,
        padding: Int = 0, bias: Bool = true, generator: inout SeededGenerator
    ) {
        geometry = ConvolutionGeometry(dimensions: dimensions, kernelSize: kernelSize, stride: stride, padding: padding)
        let bound = 1 / Float(outputChannels * geometry.taps).squareRoot()
        weight = .randomUniform(
            [inputChannels, outputChannels] + geometry.kernelSize, low: -bound, high: bound,
            generator: &generator)
        self.bias = bias ? .randomUniform([outputChannels], low: -bound, high: bound, generator: &generator) : nil
    }

    public var parameters: NamedTensors {
        var p = NamedTensors([("weight", weight)])
        if let bias { p["bias"] = bias }
        return p
    }

    public mutating func update(parameters state: NamedTensors) throws {
        weight = try state.require("weight")
        if bias != nil { bias = try state.require("bias") }
    }

    public func forward(_ input: Tensor, training: Bool = false) -> (output: Tensor, cache: Tensor) {
        (TransposedConvolution.forward(input, weight: weight, bias: bias, geometry: geometry), input)
    }

    public func backward(_ gradOutput: Tensor, cache input: Tensor) -> (input: Tensor?, gradients: NamedTensors) {
        let g = TransposedConvolution.backward(
            gradOutput, input: input, weight: weight, hasBias: bias != nil,
            geometry: geometry)
        var grads = NamedTensors([("weight", g.weight)])
        if let b = g.bias { grads["bias"] = b }
        return (g.input, grads)
    }
}

/// A fully connected layer (PyTorch's `Linear`): `y = x·Wᵀ + b`, x `[N, inputFeatures]`,
/// `weight` `[outputFeatures, inputFeatures]`. Initialisation `U(−1/√inputFeatures, 1/√inputFeatures)`.
public struct Linear: Layer {
    public var weight: Tensor
    public var bias: Tensor?

    public init(inputFeatures: Int, outputFeatures: Int, bias: Bool = true, generator: inout SeededGenerator) {
        let bound = 1 / Float(inputFeatures).squareRoot()
        weight = .randomUniform([outputFeatures, inputFeatures], low: -bound, high: bound, generator: &generator)
        self.bias = bias ? .randomUniform([outputFeatures], low: -bound, high: bound, generator: &generator) : nil
    }

    public var parameters: NamedTensors {
        var p = NamedTensors([("weight", weight)])
        if let bias { p["bias"] = bias }
        return p
    }

    public mutating func update(parameters state: NamedTensors) throws {
        weight = try state.require("weight")
        if bias != nil { bias = try state.require("bias") }
    }

    /// Inputs of any rank are flattened to `[N, features]`.
    public func forward(_ input: Tensor, training: Bool = false) -> (output: Tensor, cache: Tensor) {
        (Dense.forward(input, weight: weight, bias: bias), input)
    }

    public func backward(_ gradOutput: Tensor, cache input: Tensor) -> (input: Tensor?, gradients: NamedTensors) {
        let g = Dense.backward(gradOutput, input: input, weight: weight, hasBias: bias != nil)
        var grads = NamedTensors([("weight", g.weight)])
        if let b = g.bias { grads["bias"] = b }
        return (g.input.reshaped(input.shape), grads)
    }
}

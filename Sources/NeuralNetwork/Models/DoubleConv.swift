import Tensors

/// Two 3×3 (or 3×3×3) convolutions with padding 1 and bias, each followed by ReLU: the U-Net's building block
/// (`DoubleConv` in `torch_reference.py`; state_dict names `c1.weight`, `c1.bias`, `c2.weight`, `c2.bias`).
///
/// With `normalization: .instance` each convolution is followed by an affine instance norm before its ReLU
/// (`conv → InstanceNorm → ReLU`, MONAI's default block order), whose parameters are `n1.weight`, `n1.bias`,
/// `n2.weight`, `n2.bias`; the reference module has no normalisation, so these names are Tessera's own.
public struct DoubleConv: Module {
    /// Normalisation after each convolution.
    public enum Normalization: Sendable, Hashable {
        case none
        case instance
    }

    public var c1: Conv
    public var c2: Conv
    public var n1: InstanceNorm?
    public var n2: InstanceNorm?

    public init(
        dimensions: Int, inputChannels: Int, outputChannels: Int, normalization: Normalization = .none,
        generator: inout SeededGenerator
    ) {
        c1 = Conv(
            dimensions: dimensions, inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: 3,
            padding: 1, generator: &generator)
        c2 = Conv(
            dimensions: dimensions, inputChannels: outputChannels, outputChannels: outputChannels, kernelSize: 3,
            padding: 1, generator: &generator)
        if normalization == .instance {
            n1 = InstanceNorm(channels: outputChannels)
            n2 = InstanceNorm(channels: outputChannels)
        }
    }

    public var parameters: NamedTensors {
        var p = c1.parameters.prefixed("c1")
        if let n1 { p.merge(n1.parameters.prefixed("n1")) }
        p.merge(c2.parameters.prefixed("c2"))
        if let n2 { p.merge(n2.parameters.prefixed("n2")) }
        return p
    }

    /// `n1.*` and `n2.*` with instance norm; empty without.
    public var normalizationVariables: [String] {
        (n1?.normalizationVariables(prefixed: "n1") ?? []) + (n2?.normalizationVariables(prefixed: "n2") ?? [])
    }

    public mutating func update(parameters state: NamedTensors) throws {
        try c1.update(parameters: state.scoped("c1"))
        try c2.update(parameters: state.scoped("c2"))
        try n1?.update(parameters: state.scoped("n1"))
        try n2?.update(parameters: state.scoped("n2"))
    }

    /// Activations kept for the backward pass.
    public struct Cache: Sendable {
        var input: Tensor
        var hidden: Tensor
        var output: Tensor
        var norm1: NormalizationCache?
        var norm2: NormalizationCache?
    }

    /// `relu(c2(relu(c1(x))))`, or `relu(n2(c2(relu(n1(c1(x))))))` with instance norm.
    public func forward(_ input: Tensor) -> (output: Tensor, cache: Cache) {
        guard let n1, let n2 else {
            let h = c1.forwardReLU(input).output
            let y = c2.forwardReLU(h).output
            return (y, Cache(input: input, hidden: h, output: y))
        }
        let a = n1.forward(c1.forward(input).output)
        let h = Activation.relu(a.output)
        let b = n2.forward(c2.forward(h).output)
        let y = Activation.relu(b.output)
        return (y, Cache(input: input, hidden: h, output: y, norm1: a.cache, norm2: b.cache))
    }

    public func backward(_ gradOutput: Tensor, cache: Cache) -> (input: Tensor?, gradients: NamedTensors) {
        var g = Activation.reluBackward(gradOutput, output: cache.output)
        var normGradients = (NamedTensors(), NamedTensors())
        if let n2, let norm2 = cache.norm2 {
            let r = n2.backward(g, cache: norm2)
            g = r.input!
            normGradients.1 = r.gradients
        }
        // hidden = relu(…): c2's ∂x comes back through that ReLU's backward (fused).
        let g2 = c2.backwardThroughReLU(g, cache: cache.hidden)
        g = g2.input!
        if let n1, let norm1 = cache.norm1 {
            let r = n1.backward(g, cache: norm1)
            g = r.input!
            normGradients.0 = r.gradients
        }
        let g1 = c1.backward(g, cache: cache.input)
        var grads = g1.gradients.prefixed("c1")
        grads.merge(normGradients.0.prefixed("n1"))
        grads.merge(g2.gradients.prefixed("c2"))
        grads.merge(normGradients.1.prefixed("n2"))
        return (g1.input, grads)
    }
}

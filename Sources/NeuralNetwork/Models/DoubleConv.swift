import Tensors

/// Two 3×3 (or 3×3×3) convolutions with padding 1 and bias, each followed by ReLU: the U-Net's building block
/// (`DoubleConv` in `torch_reference.py`; state_dict names `c1.weight`, `c1.bias`, `c2.weight`, `c2.bias`).
public struct DoubleConv: Module {
    public var c1: Conv
    public var c2: Conv

    public init(dimensions: Int, inputChannels: Int, outputChannels: Int, generator: inout SeededGenerator) {
        c1 = Conv(dimensions: dimensions, inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: 3,
                  padding: 1, generator: &generator)
        c2 = Conv(dimensions: dimensions, inputChannels: outputChannels, outputChannels: outputChannels, kernelSize: 3,
                  padding: 1, generator: &generator)
    }

    public var parameters: NamedTensors {
        var p = c1.parameters.prefixed("c1")
        p.merge(c2.parameters.prefixed("c2"))
        return p
    }

    public mutating func update(parameters state: NamedTensors) throws {
        try c1.update(parameters: state.scoped("c1"))
        try c2.update(parameters: state.scoped("c2"))
    }

    /// Activations kept for the backward pass.
    public struct Cache: Sendable {
        var input: Tensor
        var hidden: Tensor
        var output: Tensor
    }

    /// `relu(c2(relu(c1(x))))`.
    public func forward(_ input: Tensor) -> (output: Tensor, cache: Cache) {
        let h = c1.forwardReLU(input).output
        let y = c2.forwardReLU(h).output
        return (y, Cache(input: input, hidden: h, output: y))
    }

    public func backward(_ gradOutput: Tensor, cache: Cache) -> (input: Tensor?, gradients: NamedTensors) {
        let g2 = c2.backward(Activation.reluBackward(gradOutput, output: cache.output), cache: cache.hidden)
        var g = g2.input!
        Activation.applyReLUBackward(&g, output: cache.hidden)  // g2.input is uniquely owned: no copy
        let g1 = c1.backward(g, cache: cache.input)
        var grads = g1.gradients.prefixed("c1")
        grads.merge(g2.gradients.prefixed("c2"))
        return (g1.input, grads)
    }
}

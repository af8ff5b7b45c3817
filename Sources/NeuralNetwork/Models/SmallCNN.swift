import Tensors

/// The reference classifier `SmallCNN` (`cls2d`) of `../shared/bench/torch_reference.py`:
/// `Conv(1→16)-ReLU-MaxPool2 → Conv(16→32)-ReLU-MaxPool2 → Conv(32→64)-ReLU-MaxPool2 → Conv(64→128)-ReLU →
/// global average pool → Linear(128→classes)`, every convolution 3×3 with padding 1 and bias.
///
/// Shapes: input `[N, inputChannels, H, W]`, output logits `[N, classes]`. State_dict names `c1.weight` … `c4.bias`,
/// `fc.weight`, `fc.bias`.
public struct SmallCNN: Module {
    public var c1, c2, c3, c4: Conv
    public var fc: Linear
    let pool = MaxPool(dimensions: 2, kernelSize: 2)

    public init(inputChannels: Int = 1, classes: Int = 2, generator: inout SeededGenerator) {
        c1 = Conv(
            dimensions: 2, inputChannels: inputChannels, outputChannels: 16, kernelSize: 3, padding: 1,
            generator: &generator)
        c1.computesInputGradient = false
        c2 = Conv(
            dimensions: 2, inputChannels: 16, outputChannels: 32, kernelSize: 3, padding: 1,
            generator: &generator)
        c3 = Conv(
            dimensions: 2, inputChannels: 32, outputChannels: 64, kernelSize: 3, padding: 1,
            generator: &generator)
        c4 = Conv(
            dimensions: 2, inputChannels: 64, outputChannels: 128, kernelSize: 3, padding: 1,
            generator: &generator)
        fc = Linear(inputFeatures: 128, outputFeatures: classes, generator: &generator)
    }

    var convolutions: [Conv] { [c1, c2, c3, c4] }

    public var parameters: NamedTensors {
        var p = NamedTensors()
        for (i, c) in convolutions.enumerated() { p.merge(c.parameters.prefixed("c\(i + 1)")) }
        p.merge(fc.parameters.prefixed("fc"))
        return p
    }

    public mutating func update(parameters state: NamedTensors) throws {
        try c1.update(parameters: state.scoped("c1"))
        try c2.update(parameters: state.scoped("c2"))
        try c3.update(parameters: state.scoped("c3"))
        try c4.update(parameters: state.scoped("c4"))
        try fc.update(parameters: state.scoped("fc"))
    }

    public struct Trace: Sendable {
        var convInputs: [Tensor] = []
        var activations: [Tensor] = []
        var pools: [MaxPool.Cache] = []
        var pooledShape: [Int] = []
        var features: Tensor?
    }

    /// Logits `[N, classes]` and the trace for `backward`.
    /// - Throws: `NeuralNetworkError.shapeMismatch` unless the input is `[batch, inputChannels, H, W]` with
    ///   H, W ≥ 8 (three 2× poolings must leave at least one position).
    public func forward(_ input: Tensor) throws -> (output: Tensor, trace: Trace) {
        let channels = c1.weight.shape[1]
        guard input.rank == 4, input.batch > 0, input.channels == channels,
            input.spatialShape.allSatisfy({ $0 >= 8 })
        else {
            throw NeuralNetworkError(
                .shapeMismatch,
                "SmallCNN expects [batch, \(channels), height ≥ 8, width ≥ 8], "
                    + "got \(input.shape)")
        }
        var trace = Trace()
        var x = input
        for (i, conv) in convolutions.enumerated() {
            trace.convInputs.append(x)
            x = conv.forwardReLU(x).output
            trace.activations.append(x)
            if i < 3 {
                let p = pool.forward(x)
                trace.pools.append(p.cache)
                x = p.output
            }
        }
        trace.pooledShape = x.shape
        let features = GlobalAvgPool().forward(x).output
        trace.features = features
        return (fc.forward(features).output, trace)
    }

    public func backward(_ gradOutput: Tensor, trace: Trace) -> NamedTensors {
        let f = fc.backward(gradOutput, cache: trace.features!)
        var g = GlobalAvgPool().backward(f.input!, cache: trace.pooledShape).input!
        var convGrads: [NamedTensors] = Array(repeating: NamedTensors(), count: 4)
        let convs = convolutions
        for i in (0..<4).reversed() {
            if i < 3 { g = pool.backward(g, cache: trace.pools[i]).input! }
            Activation.applyReLUBackward(&g, output: trace.activations[i])
            let r = convs[i].backward(g, cache: trace.convInputs[i])
            convGrads[i] = r.gradients
            if let gi = r.input { g = gi }
        }
        var grads = NamedTensors()
        for (i, c) in convGrads.enumerated() { grads.merge(c.prefixed("c\(i + 1)")) }
        grads.merge(f.gradients.prefixed("fc"))
        return grads
    }
}

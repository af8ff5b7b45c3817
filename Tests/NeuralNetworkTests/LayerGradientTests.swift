import NeuralNetwork
import Tensors
import TestSupport
import Testing

/// Finite-difference checks (float64 accumulation) of every layer's input and parameter gradients.
@Suite("Layers: gradient checks", .computeBound)
struct LayerGradientTests {
    /// Checks ∂x and every parameter of a layer.
    func check<L: Layer>(
        _ layer: L, input x: Tensor, training: Bool = true, tolerance: Double = 2e-2,
        _ what: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        var probe = layer
        let (y, cache) = probe.forward(x, training: training)
        let run = { (l: L, v: Tensor) -> Tensor in
            var copy = l
            return copy.forward(v, training: training).output
        }
        if let gx = layer.backward(Tensor(zeros: y.shape), cache: cache).input, gx.shape == x.shape {
            gradientCheck(
                x, outputShape: y.shape, tolerance: tolerance, "\(what) ∂x", sourceLocation: sourceLocation,
                forward: { run(layer, $0) },
                backward: { layer.backward($0, cache: cache).input! })
        }
        for (name, p) in layer.parameters {
            gradientCheck(
                p, outputShape: y.shape, tolerance: tolerance, "\(what) ∂\(name)",
                sourceLocation: sourceLocation,
                forward: { v in
                    var l = layer
                    var state = l.stateDict
                    state[name] = v
                    try! l.load(state)  // test-only: names and shapes come from the layer itself
                    return run(l, x)
                },
                backward: { layer.backward($0, cache: cache).gradients[name]! })
        }
    }

    @Test("Conv 2-D and 3-D (stride, padding, bias)")
    func conv() {
        var g = SeededGenerator(seed: 1)
        check(
            Conv(
                dimensions: 2, inputChannels: 2, outputChannels: 3, kernelSize: 3, stride: 2, padding: 1,
                generator: &g), input: .randomNormal([2, 2, 7, 6], generator: &g), "Conv2d")
        check(
            Conv(dimensions: 3, inputChannels: 2, outputChannels: 2, kernelSize: 3, padding: 1, generator: &g),
            input: .randomNormal([1, 2, 4, 3, 5], generator: &g), "Conv3d")
        check(
            Conv(dimensions: 2, inputChannels: 3, outputChannels: 2, kernelSize: 1, generator: &g),
            input: .randomNormal([2, 3, 4, 4], generator: &g), "Conv2d 1×1")
    }

    @Test("ConvTranspose 2-D and 3-D, Linear")
    func transposedAndLinear() {
        var g = SeededGenerator(seed: 2)
        check(
            ConvTranspose(dimensions: 2, inputChannels: 3, outputChannels: 2, generator: &g),
            input: .randomNormal([2, 3, 3, 4], generator: &g), "ConvTranspose2d")
        check(
            ConvTranspose(dimensions: 3, inputChannels: 2, outputChannels: 2, generator: &g),
            input: .randomNormal([1, 2, 2, 3, 2], generator: &g), "ConvTranspose3d")
        check(
            Linear(inputFeatures: 5, outputFeatures: 3, generator: &g), input: .randomNormal([4, 5], generator: &g),
            "Linear")
    }

    @Test("ReLU, LeakyReLU, MaxPool, AvgPool, GlobalAvgPool, Dropout")
    func stateless() {
        let x = spread([2, 2, 6, 4], seed: 5)
        check(ReLU(), input: x, "ReLU")
        check(LeakyReLU(negativeSlope: 0.1), input: x, "LeakyReLU")
        check(MaxPool(dimensions: 2), input: x, "MaxPool2d")
        check(MaxPool(dimensions: 3), input: spread([1, 2, 4, 4, 2], seed: 6), "MaxPool3d")
        check(AvgPool(dimensions: 2, kernelSize: 2), input: x, "AvgPool2d")
        check(GlobalAvgPool(), input: x, "GlobalAvgPool")
        check(Dropout(probability: 0.3, seed: 4), input: x, "Dropout")
    }

    @Test("InstanceNorm and BatchNorm (training and evaluation)")
    func normalization() {
        var g = SeededGenerator(seed: 8)
        let x = Tensor.randomNormal([3, 2, 4, 3], mean: 0.5, std: 1.5, generator: &g)
        var inst = InstanceNorm(channels: 2)
        inst.weight = Tensor(shape: [2], storage: [1.3, 0.7])
        inst.bias = Tensor(shape: [2], storage: [0.2, -0.1])
        check(inst, input: x, tolerance: 3e-2, "InstanceNorm")
        var bn = BatchNorm(channels: 2)
        bn.weight = Tensor(shape: [2], storage: [0.8, 1.2])
        bn.runningMean = Tensor(shape: [2], storage: [0.1, -0.3])
        bn.runningVariance = Tensor(shape: [2], storage: [1.5, 0.6])
        check(bn, input: x, training: true, tolerance: 3e-2, "BatchNorm (training)")
        check(bn, input: x, training: false, "BatchNorm (evaluation)")
    }

    @Test("DoubleConv, and every parameter of a small UNet and SmallCNN through the loss")
    func models() throws {
        var g = SeededGenerator(seed: 9)
        let block = DoubleConv(dimensions: 2, inputChannels: 2, outputChannels: 3, generator: &g)
        let x = Tensor.randomNormal([1, 2, 5, 4], generator: &g)
        let (y, cache) = block.forward(x)
        gradientCheck(
            x, outputShape: y.shape, "DoubleConv ∂x", forward: { block.forward($0).output },
            backward: { block.backward($0, cache: cache).input! })

        for (dimensions, normalization) in [(2, DoubleConv.Normalization.none), (3, .none), (2, .instance)] {
            var unet = UNet(
                dimensions: dimensions, encoderChannels: [2, 3], bottleneckChannels: 4, classes: 2,
                normalization: normalization, generator: &g)
            if normalization == .instance {
                // Move γ and β off their initial 1 and 0 so the check sees them in the chain rule.
                var state = unet.parameters
                for name in state.names where name.contains(".n") {
                    state[name] = Tensor.randomUniform(state[name]!.shape, low: 0.5, high: 1.5, generator: &g)
                }
                try unet.load(state)
            }
            let side = dimensions == 2 ? [8, 8] : [4, 4, 4]
            let input = Tensor.randomNormal([2, 1] + side, generator: &g)
            let targets = input.storage.map { $0 > 0 ? 1 : 0 }
            let (logits, trace) = try unet.forward(input)
            let gradients = unet.backward(
                try Loss.diceCrossEntropy(logits: logits, targets: targets).gradient,
                trace: trace)
            #expect(gradients.names == unet.parameters.names)
            for (name, p) in unet.parameters {
                checkAgainstFiniteDifferences(
                    p, analytic: gradients[name]!, samples: 4, step: 5e-3, tolerance: 3e-2,
                    generator: &g, "UNet\(dimensions)D \(normalization) ∂\(name)"
                ) { v in
                    var m = unet
                    var state = m.parameters
                    state[name] = v
                    try! m.load(state)
                    return try! Loss.diceCrossEntropy(logits: m.forward(input).output, targets: targets).value
                }
            }
        }
        let cnn = SmallCNN(generator: &g)
        let input = Tensor.randomNormal([2, 1, 16, 16], generator: &g)
        let labels = [0, 1]
        let (logits, trace) = try cnn.forward(input)
        let gradients = cnn.backward(try Loss.crossEntropy(logits: logits, targets: labels).gradient, trace: trace)
        for (name, p) in cnn.parameters {
            checkAgainstFiniteDifferences(
                p, analytic: gradients[name]!, samples: 4, step: 5e-3, tolerance: 3e-2,
                generator: &g, "SmallCNN ∂\(name)"
            ) { v in
                var m = cnn
                var state = m.parameters
                state[name] = v
                try! m.load(state)
                return try! Loss.crossEntropy(logits: m.forward(input).output, targets: labels).value
            }
        }
    }
}

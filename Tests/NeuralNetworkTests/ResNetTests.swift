import NeuralNetwork
import Tensors
import TestSupport
import Testing

/// The small ResNet classifier: torchvision names, shapes, finite-difference gradients of every parameter.
@Suite("ResNet classifier", .computeBound)
struct ResNetTests {
    @Test("State_dict names follow torchvision (conv1, bn1, layerK.J.conv1, downsample.0/1, fc) with PyTorch shapes")
    func names() {
        var g = SeededGenerator(seed: 0)
        let model = ResNet(inputChannels: 1, classes: 3, widths: [4, 8], blocks: [1, 2], generator: &g)
        let expected: [(String, [Int])] = [
            ("conv1.weight", [4, 1, 3, 3]), ("bn1.weight", [4]), ("bn1.bias", [4]),
            ("layer1.0.conv1.weight", [4, 4, 3, 3]), ("layer1.0.bn1.weight", [4]), ("layer1.0.bn1.bias", [4]),
            ("layer1.0.conv2.weight", [4, 4, 3, 3]), ("layer1.0.bn2.weight", [4]), ("layer1.0.bn2.bias", [4]),
            ("layer2.0.conv1.weight", [8, 4, 3, 3]), ("layer2.0.bn1.weight", [8]), ("layer2.0.bn1.bias", [8]),
            ("layer2.0.conv2.weight", [8, 8, 3, 3]), ("layer2.0.bn2.weight", [8]), ("layer2.0.bn2.bias", [8]),
            ("layer2.0.downsample.0.weight", [8, 4, 1, 1]), ("layer2.0.downsample.1.weight", [8]),
            ("layer2.0.downsample.1.bias", [8]),
            ("layer2.1.conv1.weight", [8, 8, 3, 3]), ("layer2.1.bn1.weight", [8]), ("layer2.1.bn1.bias", [8]),
            ("layer2.1.conv2.weight", [8, 8, 3, 3]), ("layer2.1.bn2.weight", [8]), ("layer2.1.bn2.bias", [8]),
            ("fc.weight", [3, 8]), ("fc.bias", [3]),
        ]
        #expect(model.parameters.names == expected.map(\.0))
        #expect(model.parameters.names.map { model.parameters[$0]!.shape } == expected.map(\.1))
        #expect(model.buffers.names.count == 2 * 8 && model.buffers.names.contains("layer2.0.downsample.1.running_var"))
        let instance = ResNet(widths: [4, 8], blocks: [1, 1], norm: .instance, generator: &g)
        #expect(instance.buffers.isEmpty && instance.parameters.names.contains("layer2.0.downsample.1.weight"))
        // Default: widths 16-32-64, one block each, hand-summed: stem 16·9 + 32 = 176; layer1 2·(16·16·9) + 64 = 4 672;
        // layer2 32·16·9 + 32·32·9 + 32·16 + 3·64 = 14 528; layer3 64·32·9 + 64·64·9 + 64·32 + 3·128 = 57 728;
        // fc 64·2 + 2 = 130; total 77 234.
        #expect(ResNet(generator: &g).parameters.elementCount == 77_234)
    }

    @Test("Shapes: stride-2 stages halve odd and even extents as PyTorch (⌈H/2⌉); bad input is an error")
    func shapes() throws {
        var g = SeededGenerator(seed: 1)
        var model = ResNet(inputChannels: 2, classes: 5, widths: [3, 4, 5], blocks: [1, 1, 1], generator: &g)
        let (logits, trace) = try model.forward(.randomNormal([3, 2, 9, 12], generator: &g), training: true)
        #expect(logits.shape == [3, 5])
        #expect(model.backward(Tensor(repeating: 1, shape: [3, 5]), trace: trace).names == model.parameters.names)
        #expect { try model.forward(Tensor(zeros: [1, 1, 8, 8]), training: false) } throws: { e in
            (e as? NeuralNetworkError)?.code == .shapeMismatch && "\(e)".contains("[batch, 2, height, width]")
        }
    }

    @Test("Batch norm: training moves the running statistics, evaluation uses them and leaves them")
    func runningStatistics() throws {
        var g = SeededGenerator(seed: 2)
        var model = ResNet(widths: [2], blocks: [1], generator: &g)
        let x = Tensor.randomNormal([4, 1, 6, 6], mean: 2, std: 3, generator: &g)
        let before = model.buffers
        let evaluation = try model.forward(x, training: false).output
        #expect(model.buffers == before)
        _ = try model.forward(x, training: true)
        #expect(model.buffers != before)
        // The stem's running mean moved to 0.9·0 + 0.1·(batch mean of conv1's output), per channel.
        let stem = model.conv1.forward(x).output  // forward changes buffers only, not the weights
        let spatial = stem.spatialCount
        for c in 0..<2 {
            var sum = 0.0
            for b in 0..<4 { for i in 0..<spatial { sum += Double(stem.storage[(b * 2 + c) * spatial + i]) } }
            let expected = 0.1 * sum / Double(4 * spatial)
            #expect(abs(Double(model.buffers["bn1.running_mean"]!.storage[c]) - expected) < 1e-6)
        }
        #expect(try model.forward(x, training: false).output != evaluation)
    }

    @Test(
        "Every parameter's gradient through cross-entropy matches finite differences (batch and instance norm)",
        arguments: [FeatureNorm.Kind.batch, .instance])
    func gradients(norm: FeatureNorm.Kind) throws {
        var g = SeededGenerator(seed: norm == .batch ? 11 : 12)
        var model = ResNet(inputChannels: 1, classes: 3, widths: [3, 4], blocks: [1, 1], norm: norm, generator: &g)
        // Move γ and β off 1 and 0 so the check sees them in the chain rule.
        var state = model.stateDict
        for name in state.names where name.contains("bn") || name.contains("downsample.1") {
            if name.hasSuffix("weight") || name.hasSuffix("bias") {
                state[name] = Tensor.randomUniform(state[name]!.shape, low: 0.5, high: 1.5, generator: &g)
            }
        }
        try model.load(state)
        let input = Tensor.randomNormal([3, 1, 6, 5], generator: &g)
        let labels = [0, 2, 1]
        var probe = model
        let (logits, trace) = try probe.forward(input, training: true)
        let gradients = model.backward(try Loss.crossEntropy(logits: logits, targets: labels).gradient, trace: trace)
        #expect(gradients.names == model.parameters.names)
        for (name, p) in model.parameters {
            checkAgainstFiniteDifferences(
                p, analytic: gradients[name]!, samples: 4, step: 5e-3, tolerance: 3e-2,
                generator: &g, "ResNet(\(norm)) ∂\(name)"
            ) { v in
                var m = model
                var s = m.stateDict
                s[name] = v
                try! m.load(s)  // test-only: names and shapes come from the model itself
                return try! Loss.crossEntropy(logits: m.forward(input, training: true).output, targets: labels).value
            }
        }
    }

    @Test("Training a tiny ResNet separates two synthetic classes (loss falls, accuracy 1 on the batch)")
    func learns() throws {
        var g = SeededGenerator(seed: 5)
        var model = ResNet(widths: [4, 8], blocks: [1, 1], generator: &g)
        // Class 1 images have a bright centre square, class 0 a dark one; noise on top.
        var images: [Float] = []
        var labels: [Int] = []
        for i in 0..<8 {
            let label = i % 2
            labels.append(label)
            for y in 0..<8 {
                for x in 0..<8 {
                    let centre = (2..<6).contains(y) && (2..<6).contains(x)
                    images.append((centre ? (label == 1 ? 1 : -1) : 0) + 0.3 * g.nextNormal())
                }
            }
        }
        let input = Tensor(shape: [8, 1, 8, 8], storage: images)
        var optimiser = Adam(learningRate: 0.01)
        var losses: [Double] = []
        for _ in 0..<30 {
            let (logits, trace) = try model.forward(input, training: true)
            let loss = try Loss.crossEntropy(logits: logits, targets: labels)
            losses.append(loss.value)
            try optimiser.update(model: &model, gradients: model.backward(loss.gradient, trace: trace))
        }
        #expect(losses[29] < 0.5 * losses[0], "losses \(losses[0]) → \(losses[29])")
        let logits = try model.forward(input, training: false).output
        var correct = 0
        for b in 0..<8 where (logits.storage[2 * b + 1] > logits.storage[2 * b] ? 1 : 0) == labels[b] { correct += 1 }
        #expect(correct == 8)
    }

    /// ResNet: bn1, bn2, downsample.1 with running statistics; U-Net: its instance norms, or nothing.
    @Test("normalizationVariables name exactly the norm layers' state (what FedBN keeps at the sites)")
    func normalizationVariables() {
        var g = SeededGenerator(seed: 1)
        let resnet = ResNet(widths: [4, 8], blocks: [1, 1], norm: .batch, generator: &g)
        let expected = resnet.stateDict.names.filter {
            $0.hasPrefix("bn1.") || $0.contains(".bn1.") || $0.contains(".bn2.") || $0.contains(".downsample.1.")
        }
        // Stem + 2 blocks × 2 norms + 1 downsample norm, each weight, bias, running_mean, running_var.
        #expect(expected.count == 6 * 4)
        #expect(Set(resnet.normalizationVariables) == Set(expected))
        #expect(resnet.normalizationVariables.contains("layer2.0.downsample.1.running_var"))
        let instance = ResNet(widths: [4], blocks: [1], norm: .instance, generator: &g)
        #expect(
            instance.normalizationVariables == [
                "bn1.weight", "bn1.bias", "layer1.0.bn1.weight",
                "layer1.0.bn1.bias", "layer1.0.bn2.weight", "layer1.0.bn2.bias",
            ])

        let unet = UNet(
            dimensions: 2, encoderChannels: [2, 4], bottleneckChannels: 8, classes: 2, normalization: .instance,
            generator: &g)
        let norms = unet.stateDict.names.filter { $0.contains(".n1.") || $0.contains(".n2.") }
        #expect(norms.count == 5 * 2 * 2)
        #expect(unet.normalizationVariables == norms)
        let plain = UNet(dimensions: 2, encoderChannels: [2, 4], bottleneckChannels: 8, classes: 2, generator: &g)
        #expect(plain.normalizationVariables.isEmpty)
    }
}

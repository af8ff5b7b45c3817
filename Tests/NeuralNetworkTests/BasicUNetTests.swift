import NeuralNetwork
import Tensors
import TestSupport
import Testing

/// The MONAI BasicUNet-compatible model: MONAI's state_dict names and shapes, finite-difference gradients.
@Suite("BasicUNet (MONAI-compatible)", .computeBound)
struct BasicUNetTests {
    @Test("State_dict names and shapes are MONAI's (conv_0.conv_0.conv.weight, upcat_1.upsample.deconv.weight, …)")
    func names() {
        var g = SeededGenerator(seed: 0)
        let model = BasicUNet(dimensions: 3, inputChannels: 1, outputChannels: 2, generator: &g)
        let p = model.parameters
        #expect(p.names.first == "conv_0.conv_0.conv.weight")
        #expect(p["conv_0.conv_0.conv.weight"]?.shape == [32, 1, 3, 3, 3])
        #expect(p["conv_0.conv_0.adn.N.weight"]?.shape == [32])
        #expect(p["down_4.convs.conv_1.conv.weight"]?.shape == [256, 256, 3, 3, 3])
        #expect(p["upcat_4.upsample.deconv.weight"]?.shape == [256, 128, 2, 2, 2])
        #expect(p["upcat_4.convs.conv_0.conv.weight"]?.shape == [128, 256, 3, 3, 3])
        #expect(p["upcat_1.upsample.deconv.weight"]?.shape == [32, 32, 2, 2, 2])
        #expect(p["upcat_1.convs.conv_0.conv.weight"]?.shape == [32, 64, 3, 3, 3])
        #expect(p["final_conv.weight"]?.shape == [2, 32, 1, 1, 1])
        #expect(p.names.last == "final_conv.bias")
        #expect(p.count == 5 * 8 + 4 * 10 + 2 && model.buffers.isEmpty)
        // MONAI 1.6.1: sum(p.numel() for p in BasicUNet(3, 1, 2).parameters()) == 5 749 410.
        #expect(p.elementCount == 5_749_410)
    }

    @Test("Inputs that do not fit are reported; 2-D and 3-D outputs have the input's extents")
    func shapes() throws {
        var g = SeededGenerator(seed: 1)
        var model = BasicUNet(
            dimensions: 2, inputChannels: 2, outputChannels: 3, features: [2, 2, 3, 3, 4, 2],
            generator: &g)
        #expect(try model.forward(Tensor(zeros: [2, 2, 16, 32])).output.shape == [2, 3, 16, 32])
        #expect { try model.forward(Tensor(zeros: [1, 2, 24, 16])) } throws: { e in
            (e as? NeuralNetworkError)?.code == .shapeMismatch && "\(e)".contains("multiples of 16")
        }
        #expect { try model.forward(Tensor(zeros: [1, 1, 16, 16])) } throws: { e in
            (e as? NeuralNetworkError)?.code == .shapeMismatch
        }
        var model3 = BasicUNet(dimensions: 3, features: [2, 2, 2, 2, 2, 2], generator: &g)
        #expect(try model3.forward(Tensor(zeros: [1, 1, 16, 16, 32])).output.shape == [1, 2, 16, 16, 32])
    }

    @Test(
        "Every parameter's gradient through Dice + CE matches finite differences (2-D with dropout, 3-D)",
        arguments: [2, 3])
    func gradients(dimensions: Int) throws {
        var g = SeededGenerator(seed: UInt64(20 + dimensions))
        var model = BasicUNet(
            dimensions: dimensions, inputChannels: 1, outputChannels: 2,
            features: [2, 3, 3, 4, 4, 3], dropout: dimensions == 2 ? 0.2 : 0, seed: 4,
            generator: &g)
        var state = model.parameters
        for name in state.names where name.contains("adn.N") {
            state[name] = Tensor.randomUniform(state[name]!.shape, low: 0.5, high: 1.5, generator: &g)
        }
        try model.load(state)
        // 3-D: [16, 32, 32] leaves 1×2×2 voxels at the bottom (instance norm needs more than one).
        let shape = dimensions == 2 ? [2, 1, 32, 32] : [1, 1, 16, 32, 32]
        let input = Tensor.randomNormal(shape, generator: &g)
        let targets = input.storage.map { $0 > 0.3 ? 1 : 0 }
        var probe = model
        let (logits, trace) = try probe.forward(input, training: true)
        let gradients = model.backward(
            try Loss.diceCrossEntropy(logits: logits, targets: targets).gradient,
            trace: trace)
        #expect(gradients.names == model.parameters.names)
        for (name, p) in model.parameters {
            checkAgainstFiniteDifferences(
                p, analytic: gradients[name]!, samples: 3, step: 5e-3, tolerance: 3e-2,
                generator: &g, "BasicUNet\(dimensions)D ∂\(name)"
            ) { v in
                var m = model  // same dropout generators as `probe`: the same masks
                var s = m.parameters
                s[name] = v
                try! m.load(s)  // test-only: names and shapes come from the model itself
                return try! Loss.diceCrossEntropy(
                    logits: m.forward(input, training: true).output,
                    targets: targets
                ).value
            }
        }
    }
}

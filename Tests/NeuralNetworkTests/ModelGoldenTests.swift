import Foundation
import NeuralNetwork
import Tensors
import TestSupport
import Testing

/// The ResNet classifiers (2-D and 3-D) and the MONAI-compatible BasicUNet against PyTorch 2.15.0 and MONAI 1.6.1:
/// golden values written by scripts/reference/models_golden.py (provenance in Golden/models_golden.json). Tessera
/// loads the reference's initial state_dict (MONAI's own `BasicUNet` class; a torchvision-style ResNet, 2-D and 3-D)
/// with its strict `load` and must reproduce logits, loss (the 3-D ResNet's class-weighted), every gradient and the
/// first 10 SGD(0.01, momentum 0.9) losses at rtol 1e-4 / atol 1e-5; for the ResNets also batch norm's running
/// statistics after a training forward and the evaluation-mode logits after the 10 steps.
@Suite("Golden values from PyTorch and MONAI: ResNet and BasicUNet", .computeBound)
struct ModelGoldenTests {
    struct Document: Decodable {
        struct Model: Decodable {
            var loss: Double
            var sgd_losses: [Double]
            var parameters: Int
        }
        var models: [String: Model]
        var state_dict_shapes: [String: [[GoldenTests.ShapeEntry]]]
    }

    static func document() throws -> Document {
        let data = try Data(contentsOf: URL(fileURLWithPath: goldenRoot + "/models_golden.json"))
        var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        object["provenance"] = nil
        return try JSONDecoder().decode(Document.self, from: JSONSerialization.data(withJSONObject: object))
    }

    func checkGradients(_ gradients: NamedTensors, _ io: NamedTensors, model: String) {
        let expected = NamedTensors(
            io.names.filter { $0.hasPrefix("grad.") }.map { (String($0.dropFirst(5)), io[$0]!) })
        #expect(Set(expected.names) == Set(gradients.names))
        var worst = Comparison()
        for (name, e) in expected {
            guard let a = gradients[name] else { continue }
            let c = compare(a, e)
            #expect(c.within, "\(model) ∂\(name): \(c)")
            worst.maxAbsolute = max(worst.maxAbsolute, c.maxAbsolute)
            worst.maxRelative = max(worst.maxRelative, c.maxRelative)
        }
        print("GOLDEN \(model) gradients (\(expected.count) tensors): \(worst)")
    }

    func checkLosses(_ losses: [Double], _ golden: [Double], _ label: String) {
        var worst = 0.0
        for (k, (a, e)) in zip(losses, golden).enumerated() {
            worst = max(worst, abs(a - e))
            #expect(abs(a - e) <= 1e-5 + 1e-4 * abs(e), "\(label) SGD loss \(k): \(a) vs \(e)")
        }
        print(
            String(
                format: "GOLDEN %@ SGD losses (10 steps): max abs %.2e; %.6f → %.6f", label, worst,
                losses.first ?? 0, losses.last ?? 0))
    }

    @Test(
        "ResNet 2-D and 3-D (batch norm; 3-D with class weights): logits, CE, gradients, running stats, SGD, eval",
        arguments: [2, 3])
    func resnet(dimensions: Int) throws {
        let name = dimensions == 2 ? "resnet_small" : "resnet3d_small"
        let golden = try #require(try Self.document().models[name])
        let weights = try SafeTensors.read(contentsOf: "\(goldenRoot)/\(name)_weights.safetensors").tensors
        let io = try SafeTensors.read(contentsOf: "\(goldenRoot)/\(name)_io.safetensors").tensors
        var g = SeededGenerator(seed: 0)
        var model = ResNet(
            dimensions: dimensions, inputChannels: 1, classes: dimensions == 2 ? 3 : 2, widths: [4, 8, 16],
            blocks: [1, 1, 1], generator: &g)
        try model.load(weights)
        #expect(model.parameters.elementCount == golden.parameters)
        // The reference's loss: plain cross-entropy in 2-D, F.cross_entropy(weight=[0.75, 1.5]) in 3-D.
        let weightsPerClass: [Double]? = dimensions == 3 ? [0.75, 1.5] : nil
        let input = try #require(io["input"])
        let labels = try #require(io["target"]).storage.map { Int($0) }
        var probe = model
        let (logits, trace) = try probe.forward(input, training: true)
        GoldenTests.check(logits, try #require(io["logits"]), "\(name) logits")
        let loss = try Loss.crossEntropy(logits: logits, targets: labels, weights: weightsPerClass)
        GoldenTests.checkLoss(loss.value, golden.loss, "\(name) cross-entropy")
        checkGradients(model.backward(loss.gradient, trace: trace), io, model: name)
        for (buffer, after) in probe.buffers {
            GoldenTests.check(
                after, try #require(io["after." + buffer]), "\(name) \(buffer) after one training forward")
        }
        var optimiser = SGD(learningRate: 0.01, momentum: 0.9)
        var losses: [Double] = []
        for _ in 0..<10 {
            let (z, t) = try model.forward(input, training: true)
            let l = try Loss.crossEntropy(logits: z, targets: labels, weights: weightsPerClass)
            losses.append(l.value)
            try optimiser.update(model: &model, gradients: model.backward(l.gradient, trace: t))
        }
        checkLosses(losses, golden.sgd_losses, name)
        GoldenTests.check(
            try model.forward(input, training: false).output, try #require(io["eval_logits"]),
            "\(name) eval-mode logits after 10 steps (running statistics)")
    }

    @Test(
        "BasicUNet 2-D and 3-D loads MONAI's state_dict; logits, CE, every gradient, 10 SGD losses",
        arguments: [2, 3])
    func basicUNet(dimensions: Int) throws {
        let name = "basicunet\(dimensions)d_small"
        let golden = try #require(try Self.document().models[name])
        let weights = try SafeTensors.read(contentsOf: "\(goldenRoot)/\(name)_weights.safetensors").tensors
        let io = try SafeTensors.read(contentsOf: "\(goldenRoot)/\(name)_io.safetensors").tensors
        var g = SeededGenerator(seed: 0)
        var model = BasicUNet(
            dimensions: dimensions, inputChannels: 1, outputChannels: 2,
            features: [4, 4, 8, 8, 16, 4], generator: &g)
        try model.load(weights)
        #expect(model.parameters.elementCount == golden.parameters)
        let input = try #require(io["input"])
        let targets = try #require(io["target"]).storage.map { Int($0) }
        let (logits, trace) = try model.forward(input, training: true)
        GoldenTests.check(logits, try #require(io["logits"]), "\(name) logits")
        let loss = try Loss.crossEntropy(logits: logits, targets: targets)
        GoldenTests.checkLoss(loss.value, golden.loss, "\(name) cross-entropy")
        checkGradients(model.backward(loss.gradient, trace: trace), io, model: name)
        var optimiser = SGD(learningRate: 0.01, momentum: 0.9)
        var losses: [Double] = []
        for _ in 0..<10 {
            let (z, t) = try model.forward(input, training: true)
            let l = try Loss.crossEntropy(logits: z, targets: targets)
            losses.append(l.value)
            try optimiser.update(model: &model, gradients: model.backward(l.gradient, trace: t))
        }
        checkLosses(losses, golden.sgd_losses, name)
    }

    @Test("Full-size default BasicUNet: state_dict names, order and shapes equal MONAI's (2-D and 3-D)")
    func basicUNetNames() throws {
        let shapes = try Self.document().state_dict_shapes
        var g = SeededGenerator(seed: 0)
        for dimensions in [2, 3] {
            let state = BasicUNet(dimensions: dimensions, generator: &g).stateDict
            let monai: [(String, [Int])] = try #require(shapes["basicunet\(dimensions)d"]).map { pair in
                guard case .name(let n) = pair[0], case .shape(let s) = pair[1] else { return ("?", []) }
                return (n, s)
            }
            #expect(state.names == monai.map(\.0), "basicunet\(dimensions)d names/order")
            #expect(state.names.map { state[$0]!.shape } == monai.map(\.1), "basicunet\(dimensions)d shapes")
        }
    }
}

/// Writes Tessera-initialised checkpoints of the default BasicUNet (2-D and 3-D) and a ResNet, with an input and
/// Tessera's evaluation logits, to `$TESSERA_INTEROP_DIR` (default `/tmp/tessera-interop`);
/// `scripts/reference/models_golden.py --check DIR` loads them into MONAI's `BasicUNet` with
/// `load_state_dict(strict=True)` (and the ResNet into its PyTorch twin) and compares logits. Its output is committed
/// as Golden/interop-models.txt.
@Suite("Interoperability checkpoints for MONAI and PyTorch: BasicUNet, ResNet", .computeBound)
struct ModelInteropTests {
    @Test("Write basicunet2d, basicunet3d, resnet and resnet3d checkpoints and logits; they read back identically")
    func writeCheckpoints() throws {
        let folder = ProcessInfo.processInfo.environment["TESSERA_INTEROP_DIR"] ?? "/tmp/tessera-interop"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var g = SeededGenerator(seed: 2027)
        var unet2 = BasicUNet(dimensions: 2, generator: &g)
        var unet3 = BasicUNet(dimensions: 3, generator: &g)
        var resnet = ResNet(inputChannels: 1, classes: 2, generator: &g)
        // Train the ResNet for one step so its running statistics are not the initial 0 and 1.
        let x = Tensor.randomNormal([4, 1, 16, 16], generator: &g)
        _ = try resnet.forward(x, training: true)
        // The 3-D classifier (resnet3d's default widths) from its own generator: the cases above keep their values.
        var g3 = SeededGenerator(seed: 2028)
        var resnet3 = ResNet(dimensions: 3, inputChannels: 1, classes: 2, widths: [8, 16, 32], generator: &g3)
        _ = try resnet3.forward(Tensor.randomNormal([2, 1, 8, 12, 16], generator: &g3), training: true)
        let cases: [(String, any Module, Tensor)] = [
            ("basicunet2d", unet2, .randomNormal([1, 1, 64, 48], generator: &g)),
            ("basicunet3d", unet3, .randomNormal([1, 1, 16, 32, 16], generator: &g)),
            ("resnet", resnet, .randomNormal([2, 1, 20, 20], generator: &g)),
            ("resnet3d", resnet3, .randomNormal([2, 1, 9, 12, 10], generator: &g3)),
        ]
        for (name, model, input) in cases {
            let logits: Tensor
            switch name {
            case "basicunet2d": logits = try unet2.forward(input).output
            case "basicunet3d": logits = try unet3.forward(input).output
            case "resnet3d": logits = try resnet3.forward(input, training: false).output
            default: logits = try resnet.forward(input, training: false).output
            }
            let path = "\(folder)/\(name).safetensors"
            try SafeTensors.write(model.stateDict, metadata: ["format": "pt", "producer": "tessera"], to: path)
            try SafeTensors.write(
                NamedTensors([("input", input), ("logits", logits)]),
                to: "\(folder)/\(name)_io.safetensors")
            let back = try SafeTensors.read(contentsOf: path)
            #expect(back.tensors == NamedTensors(model.stateDict.names.sorted().map { ($0, model.stateDict[$0]!) }))
        }
    }
}

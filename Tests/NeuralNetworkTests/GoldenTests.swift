import Foundation
import NeuralNetwork
import Tensors
import TestSupport
import Testing

/// The reference models against PyTorch: golden values written by scripts/reference/torch_golden.py (provenance in
/// Golden/golden.json: torch 2.15.0 CPU float32, one thread). Tessera loads PyTorch's initial weights and must
/// reproduce logits, loss, every gradient and the first 10 losses with SGD(lr 0.01, momentum 0.9) (the reference's
/// optimiser), SGD with Nesterov and weight decay, Adam and AdamW, at rtol 1e-4 / atol 1e-5. Comparison figures are
/// printed (`GOLDEN …` lines) for the record.
@Suite("Golden values from PyTorch", .computeBound)
struct GoldenTests {
    struct Document: Decodable {
        struct Model: Decodable {
            var loss: Double
            var cross_entropy: Double?
            var soft_dice: Double?
            var sgd_losses: [Double]
            var sgd_nesterov_losses: [Double]
            var adam_losses: [Double]
            var adamw_losses: [Double]

            /// The optimisers of the reference script, fresh, with the golden losses each must reproduce.
            var optimisers: [(String, any Optimizer, [Double])] {
                [
                    ("SGD(0.01, momentum 0.9)", SGD(learningRate: 0.01, momentum: 0.9), sgd_losses),
                    (
                        "SGD(0.01, momentum 0.9, Nesterov, weight decay 1e-3)",
                        SGD(learningRate: 0.01, momentum: 0.9, weightDecay: 1e-3, nesterov: true), sgd_nesterov_losses
                    ),
                    ("Adam(1e-3)", Adam(learningRate: 1e-3), adam_losses),
                    ("AdamW(1e-3, weight decay 0.01)", AdamW(learningRate: 1e-3, weightDecay: 0.01), adamw_losses),
                ]
            }
        }
        var provenance: [String: String?]?
        var models: [String: Model]
        var state_dict_shapes: [String: [[ShapeEntry]]]
    }

    /// `["name", [shape]]` pairs in the JSON.
    enum ShapeEntry: Decodable {
        case name(String)
        case shape([Int])
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .name(s) } else { self = .shape(try c.decode([Int].self)) }
        }
    }

    static func document() throws -> Document {
        let data = try Data(contentsOf: URL(fileURLWithPath: goldenRoot + "/golden.json"))
        // provenance holds numbers too; decode only what the test needs.
        var object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        object["provenance"] = nil
        return try JSONDecoder().decode(Document.self, from: JSONSerialization.data(withJSONObject: object))
    }

    static func load(_ name: String) throws -> (weights: NamedTensors, io: NamedTensors) {
        (
            try SafeTensors.read(contentsOf: "\(goldenRoot)/\(name)_weights.safetensors").tensors,
            try SafeTensors.read(contentsOf: "\(goldenRoot)/\(name)_io.safetensors").tensors
        )
    }

    /// Compares and records figures per tensor family ("logits", "grad …weight", "grad …bias").
    static func check(
        _ actual: Tensor, _ expected: Tensor, _ what: String, rtol: Float = 1e-4, atol: Float = 1e-5,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let c = compare(actual, expected, rtol: rtol, atol: atol)
        print("GOLDEN \(what): \(c)")
        #expect(c.within, "\(what): \(c)", sourceLocation: sourceLocation)
    }

    static func checkLoss(
        _ actual: Double, _ expected: Double, _ what: String, rtol: Double = 1e-4,
        atol: Double = 1e-5, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        print(
            String(format: "GOLDEN %@: %.8f vs torch %.8f (abs %.2e)", what, actual, expected, abs(actual - expected)))
        #expect(
            abs(actual - expected) <= atol + rtol * abs(expected), "\(what): \(actual) vs \(expected)",
            sourceLocation: sourceLocation)
    }

    @Test("UNet (unet2d spec, channels 4-8-16-32/64): logits, CE + soft Dice, every gradient, 10 losses per optimiser")
    func unet() throws {
        let golden = try Self.document().models["unet2d_small"]!
        let (weights, io) = try Self.load("unet2d_small")
        var g = SeededGenerator(seed: 0)
        var model = UNet(
            dimensions: 2, encoderChannels: [4, 8, 16, 32], bottleneckChannels: 64, classes: 2,
            generator: &g)
        try model.load(weights)
        let input = io["input"]!
        let targets = io["target"]!.storage.map { Int($0) }
        let (logits, trace) = try model.forward(input)
        Self.check(logits, io["logits"]!, "unet logits")
        let ce = try Loss.crossEntropy(logits: logits, targets: targets)
        let dice = try Loss.softDice(logits: logits, targets: targets)
        let loss = try Loss.diceCrossEntropy(logits: logits, targets: targets)
        Self.checkLoss(ce.value, golden.cross_entropy!, "unet cross-entropy")
        Self.checkLoss(dice.value, golden.soft_dice!, "unet soft Dice")
        Self.checkLoss(loss.value, golden.loss, "unet CE + soft Dice")
        let gradients = model.backward(loss.gradient, trace: trace)
        try checkGradients(gradients, io, model: "unet")
        for (label, optimiser, losses) in golden.optimisers {
            try model.load(weights)
            try trajectory(model: &model, optimiser: optimiser, golden: losses, label: "unet \(label)") { m in
                let (z, t) = try m.forward(input)
                let l = try Loss.diceCrossEntropy(logits: z, targets: targets)
                return (l.value, m.backward(l.gradient, trace: t))
            }
        }
    }

    @Test("SmallCNN (cls2d): logits, cross-entropy, every gradient, 10 losses per optimiser")
    func smallCNN() throws {
        let golden = try Self.document().models["cls2d"]!
        let (weights, io) = try Self.load("cls2d")
        var g = SeededGenerator(seed: 0)
        var model = SmallCNN(generator: &g)
        try model.load(weights)
        let input = io["input"]!
        let labels = io["target"]!.storage.map { Int($0) }
        let (logits, trace) = try model.forward(input)
        Self.check(logits, io["logits"]!, "cls2d logits")
        let loss = try Loss.crossEntropy(logits: logits, targets: labels)
        Self.checkLoss(loss.value, golden.loss, "cls2d cross-entropy")
        try checkGradients(model.backward(loss.gradient, trace: trace), io, model: "cls2d")
        for (label, optimiser, losses) in golden.optimisers {
            try model.load(weights)
            try trajectory(model: &model, optimiser: optimiser, golden: losses, label: "cls2d \(label)") { m in
                let (z, t) = try m.forward(input)
                let l = try Loss.crossEntropy(logits: z, targets: labels)
                return (l.value, m.backward(l.gradient, trace: t))
            }
        }
    }

    func checkGradients(_ gradients: NamedTensors, _ io: NamedTensors, model: String) throws {
        let expected = NamedTensors(
            io.names.filter { $0.hasPrefix("grad.") }.map { (String($0.dropFirst(5)), io[$0]!) })
        #expect(Set(expected.names) == Set(gradients.names))
        var families: [String: Comparison] = [:]
        for (name, e) in expected {
            let c = compare(gradients[name]!, e)
            #expect(c.within, "\(model) ∂\(name): \(c)")
            let family = name.hasSuffix("bias") ? "bias" : "weight"
            var f = families[family, default: Comparison()]
            f.maxAbsolute = max(f.maxAbsolute, c.maxAbsolute)
            f.maxRelative = max(f.maxRelative, c.maxRelative)
            families[family] = f
        }
        for (family, c) in families.sorted(by: { $0.key < $1.key }) {
            print(
                "GOLDEN \(model) gradients (\(family), \(expected.names.filter { $0.hasSuffix(family) }.count) tensors): \(c)"
            )
        }
    }

    /// Ten optimiser steps on the fixed batch; each step's loss against PyTorch's.
    func trajectory<M: Module>(
        model: inout M, optimiser: any Optimizer, golden: [Double], label: String,
        step: (M) throws -> (Double, NamedTensors)
    ) throws {
        var optimiser = optimiser
        var losses: [Double] = []
        for _ in 0..<10 {
            let (loss, gradients) = try step(model)
            losses.append(loss)
            try optimiser.update(model: &model, gradients: gradients)
        }
        var worst = 0.0
        for (k, (a, e)) in zip(losses, golden).enumerated() {
            worst = max(worst, abs(a - e))
            #expect(abs(a - e) <= 1e-5 + 1e-4 * abs(e), "\(label) SGD loss \(k): \(a) vs \(e)")
        }
        // The decrease itself (small for the U-Net at lr 0.01) must match too, not only the level.
        let (d, de) = (losses[0] - losses[9], golden[0] - golden[9])
        #expect(abs(d - de) <= 0.02 * abs(de) + 1e-6, "\(label) decrease over 10 steps \(d) vs \(de)")
        print(
            String(
                format: "GOLDEN %@ losses (10 steps): max abs %.2e; decrease %.6e vs torch %.6e", label,
                worst, d, de))
    }

    @Test("State_dict names and shapes of the full-size unet2d, unet3d and cls2d equal PyTorch's")
    func stateDictNames() throws {
        let shapes = try Self.document().state_dict_shapes
        var g = SeededGenerator(seed: 0)
        let models: [String: NamedTensors] = [
            "unet2d": UNet.unet2d(generator: &g).stateDict,
            "unet3d": UNet.unet3d(generator: &g).stateDict,
            "cls2d": SmallCNN(generator: &g).stateDict,
        ]
        for (name, state) in models {
            let torch: [(String, [Int])] = shapes[name]!.map { pair in
                guard case .name(let n) = pair[0], case .shape(let s) = pair[1] else { return ("?", []) }
                return (n, s)
            }
            #expect(state.names == torch.map(\.0), "\(name) names/order")
            #expect(state.names.map { state[$0]!.shape } == torch.map(\.1), "\(name) shapes")
        }
    }
}

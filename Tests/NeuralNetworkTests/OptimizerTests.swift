import NeuralNetwork
import Tensors
import TestSupport
import Testing

/// Optimisers against hand-computed PyTorch update rules.
@Suite("Optimisers", .computeBound)
struct OptimizerTests {
    let theta = NamedTensors([("w", Tensor(shape: [2], storage: [1, -2]))])
    let grad = NamedTensors([("w", Tensor(shape: [2], storage: [0.5, 0.25]))])

    @Test("SGD: plain, momentum (buffer = g on the first step), Nesterov, weight decay")
    func sgd() throws {
        var plain = SGD(learningRate: 0.1)
        #expect(try plain.step(parameters: theta, gradients: grad)["w"]!.storage == [0.95, -2.025])
        var momentum = SGD(learningRate: 0.1, momentum: 0.9)
        let p1 = try momentum.step(parameters: theta, gradients: grad)
        let p2 = try momentum.step(parameters: p1, gradients: grad)
        // b1 = g, b2 = 0.9 g + g = 1.9 g; θ2 = θ − 0.1·g − 0.1·1.9g = θ − 0.29 g
        expectNear(p2["w"]!.storage, [1 - 0.29 * 0.5, -2 - 0.29 * 0.25])
        var nesterov = SGD(learningRate: 0.1, momentum: 0.9, nesterov: true)
        let n1 = try nesterov.step(parameters: theta, gradients: grad)
        // step uses g + 0.9·b = 1.9 g
        expectNear(n1["w"]!.storage, [1 - 0.19 * 0.5, -2 - 0.19 * 0.25])
        var decay = SGD(learningRate: 0.1, weightDecay: 0.1)
        // g' = g + 0.1 θ = [0.6, 0.05]
        expectNear(try decay.step(parameters: theta, gradients: grad)["w"]!.storage, [0.94, -2.005])
    }

    @Test("Adam and AdamW: first step moves each weight by lr·sign(g); AdamW decays first")
    func adam() throws {
        var adam = Adam(learningRate: 0.01)
        let a1 = try adam.step(parameters: theta, gradients: grad)
        // m̂ = g, v̂ = g² ⇒ Δ = lr·g/(|g| + ε)
        expectNear(a1["w"]!.storage, [1 - 0.01, -2 - 0.01], 1e-6)
        let a2 = try adam.step(parameters: a1, gradients: grad)
        expectNear(a2["w"]!.storage, [1 - 0.02, -2 - 0.02], 1e-6)
        var l2 = Adam(learningRate: 0.01, weightDecay: 0.1)
        // L2 goes into the gradient: g + 0.1θ = [0.6, 0.05], the first step is lr·sign of that
        expectNear(try l2.step(parameters: theta, gradients: grad)["w"]!.storage, [0.99, -2.01], 1e-6)
        var adamw = AdamW(learningRate: 0.01, weightDecay: 0.1)
        // θ·(1 − 0.001) then − lr·sign(g)
        expectNear(
            try adamw.step(parameters: theta, gradients: grad)["w"]!.storage, [0.999 - 0.01, -1.998 - 0.01], 1e-6)
    }

    @Test("Gradient clipping by global norm")
    func clipping() {
        var g = NamedTensors([("a", Tensor(shape: [2], storage: [3, 0])), ("b", Tensor(shape: [1], storage: [4]))])
        let norm = clipGradientNorm(&g, maxNorm: 1)
        #expect(norm == 5)
        expectNear(g["a"]!.storage + g["b"]!.storage, [0.6, 0, 0.8], 1e-6)
        var small = g
        clipGradientNorm(&small, maxNorm: 10)
        #expect(small == g)
    }

    @Test("update(model:gradients:) rejects a missing, mis-shaped or non-finite gradient by name")
    func updateModel() throws {
        var generator = SeededGenerator(seed: 1)
        var layer = Linear(inputFeatures: 2, outputFeatures: 1, generator: &generator)
        var sgd = SGD(learningRate: 0.1)
        var grads = NamedTensors([("weight", Tensor(zeros: [1, 2])), ("bias", Tensor(repeating: 1, shape: [1]))])
        let before = layer.bias!.storage[0]
        try sgd.update(model: &layer, gradients: grads)
        #expect(abs(layer.bias!.storage[0] - (before - 0.1)) < 1e-7)
        grads["bias"] = Tensor(repeating: .nan, shape: [1])
        #expect { try sgd.update(model: &layer, gradients: grads) } throws: { e in
            (e as? NeuralNetworkError)?.code == .nonFinite && "\(e)".contains("'bias'")
        }
        grads["bias"] = nil
        #expect { try sgd.update(model: &layer, gradients: grads) } throws: { e in
            (e as? NeuralNetworkError)?.code == .missingTensor && "\(e)".contains("'bias'")
        }
    }
}

func expectNear(
    _ a: [Float], _ b: [Float], _ tolerance: Float = 1e-6, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(a.count == b.count, sourceLocation: sourceLocation)
    for (x, y) in zip(a, b) {
        #expect(abs(x - y) <= tolerance, "\(a) vs \(b)", sourceLocation: sourceLocation)
    }
}

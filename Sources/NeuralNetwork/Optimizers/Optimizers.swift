import Foundation
import Tensors

/// Updates a model's parameters from their gradients (MLX's `update(model:gradients:)`).
public protocol Optimizer: Sendable {
    /// New values for `parameters` given `gradients` (same names); advances the optimiser's state.
    mutating func step(parameters: NamedTensors, gradients: NamedTensors) throws -> NamedTensors
}

extension Optimizer {
    /// Applies one step to `model`'s trainable parameters.
    /// - Throws: `NeuralNetworkError` when a gradient is missing, mis-shaped or not finite (naming it).
    public mutating func update<M: Module>(model: inout M, gradients: NamedTensors) throws {
        let parameters = model.parameters
        try gradients.validate(against: parameters)
        for (name, g) in gradients where g.storage.contains(where: { !$0.isFinite }) {
            throw NeuralNetworkError(
                .nonFinite,
                "gradient of '\(name)' contains NaN or Inf: lower the learning rate "
                    + "or clip gradients; the parameters were left unchanged")
        }
        try model.updateParameters(step(parameters: parameters, gradients: gradients))
    }
}

/// Stochastic gradient descent as PyTorch's `SGD`:
/// `g ← g + weightDecay·θ`; with momentum `b ← momentum·b + (1 − dampening)·g` (`b = g` on the first step);
/// Nesterov uses `g + momentum·b`, otherwise `b`; `θ ← θ − learningRate·g`.
public struct SGD: Optimizer {
    public var learningRate: Float
    public var momentum: Float
    public var dampening: Float
    public var weightDecay: Float
    public var nesterov: Bool
    /// Momentum buffers by parameter name.
    public private(set) var momentumBuffers = NamedTensors()

    public init(
        learningRate: Float, momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0,
        nesterov: Bool = false
    ) {
        precondition(!nesterov || (momentum > 0 && dampening == 0), "Nesterov needs momentum and zero dampening")
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }

    public mutating func step(parameters: NamedTensors, gradients: NamedTensors) throws -> NamedTensors {
        var out = NamedTensors()
        for (name, theta) in parameters {
            var g = try gradients.require(name)
            if weightDecay != 0 { g = g + theta * weightDecay }
            if momentum != 0 {
                var b: Tensor
                if let previous = momentumBuffers[name] {
                    b = previous * momentum + g * (1 - dampening)
                } else {
                    b = g
                }
                momentumBuffers[name] = b
                g = nesterov ? g + b * momentum : b
            }
            out[name] = theta - g * learningRate
        }
        return out
    }
}

/// Adam (Kingma & Ba 2015) as PyTorch's `Adam`, with optional L2 `weightDecay` added to the gradient:
/// `m ← β₁m + (1 − β₁)g`, `v ← β₂v + (1 − β₂)g²`, `θ ← θ − lr·(m/(1 − β₁ᵗ)) / (√(v/(1 − β₂ᵗ)) + ε)`.
public struct Adam: Optimizer {
    public var learningRate: Float
    public var betas: (Float, Float)
    public var epsilon: Float
    public var weightDecay: Float
    /// Decoupled weight decay (AdamW) instead of L2.
    let decoupled: Bool
    public private(set) var stepCount = 0
    public private(set) var firstMoments = NamedTensors()
    public private(set) var secondMoments = NamedTensors()

    public init(
        learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999), epsilon: Float = 1e-8,
        weightDecay: Float = 0
    ) {
        self.init(
            learningRate: learningRate, betas: betas, epsilon: epsilon, weightDecay: weightDecay,
            decoupled: false)
    }

    init(learningRate: Float, betas: (Float, Float), epsilon: Float, weightDecay: Float, decoupled: Bool) {
        self.learningRate = learningRate
        self.betas = betas
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupled = decoupled
    }

    public mutating func step(parameters: NamedTensors, gradients: NamedTensors) throws -> NamedTensors {
        stepCount += 1
        let (b1, b2) = betas
        let c1 = 1 - Float(Foundation.pow(Double(b1), Double(stepCount)))
        let c2 = 1 - Float(Foundation.pow(Double(b2), Double(stepCount)))
        var out = NamedTensors()
        for (name, theta0) in parameters {
            var theta = theta0
            var g = try gradients.require(name)
            if weightDecay != 0 {
                if decoupled { theta = theta * (1 - learningRate * weightDecay) } else { g = g + theta * weightDecay }
            }
            var m = firstMoments[name] ?? Tensor(zeros: g.shape)
            var v = secondMoments[name] ?? Tensor(zeros: g.shape)
            let stepSize = learningRate / c1
            let c2Root = c2.squareRoot()
            for i in 0..<g.count {
                let gi = g.storage[i]
                m.storage[i] = b1 * m.storage[i] + (1 - b1) * gi
                v.storage[i] = b2 * v.storage[i] + (1 - b2) * gi * gi
                let denominator = v.storage[i].squareRoot() / c2Root + epsilon
                theta.storage[i] -= stepSize * m.storage[i] / denominator
            }
            firstMoments[name] = m
            secondMoments[name] = v
            out[name] = theta
        }
        return out
    }
}

/// AdamW (Loshchilov & Hutter 2019) as PyTorch's `AdamW`: Adam with decoupled weight decay
/// `θ ← θ·(1 − lr·weightDecay)` before the Adam step (default decay 0.01).
public struct AdamW: Optimizer {
    var adam: Adam

    public init(
        learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999), epsilon: Float = 1e-8,
        weightDecay: Float = 0.01
    ) {
        adam = Adam(
            learningRate: learningRate, betas: betas, epsilon: epsilon, weightDecay: weightDecay,
            decoupled: true)
    }

    public mutating func step(parameters: NamedTensors, gradients: NamedTensors) throws -> NamedTensors {
        try adam.step(parameters: parameters, gradients: gradients)
    }
}

/// Scales all gradients together so their global L2 norm is at most `maxNorm` (PyTorch's `clip_grad_norm_`:
/// factor `min(1, maxNorm / (norm + 1e-6))`). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: inout NamedTensors, maxNorm: Float) -> Float {
    var sum = 0.0
    for (_, g) in gradients { for v in g.storage { sum += Double(v) * Double(v) } }
    let norm = Float(sum.squareRoot())
    let factor = maxNorm / (norm + 1e-6)
    if factor < 1 {
        for name in gradients.names { gradients[name] = gradients[name]! * factor }
    }
    return norm
}

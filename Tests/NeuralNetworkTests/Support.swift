import Foundation
import NeuralNetwork
import Tensors
import TestSupport
import Testing

/// The package root, found from this file's path (Tests/NeuralNetworkTests/Support.swift).
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

let goldenRoot = repositoryRoot + "/Tests/NeuralNetworkTests/Golden"

/// Largest absolute and relative (|a − e| / max(|e|, 1e-6)) error, and whether all elements are within
/// `atol + rtol·|expected|`.
struct Comparison: CustomStringConvertible {
    var maxAbsolute: Float = 0
    var maxRelative: Float = 0
    var within = true
    var worst = ""
    var description: String { String(format: "max abs %.3e, max rel %.3e", maxAbsolute, maxRelative) + worst }
}

func compare(_ actual: Tensor, _ expected: Tensor, rtol: Float = 1e-4, atol: Float = 1e-5) -> Comparison {
    var c = Comparison()
    guard actual.shape == expected.shape else {
        c.within = false
        c.worst = " shape \(actual.shape) vs \(expected.shape)"
        return c
    }
    for i in 0..<actual.count {
        let d = abs(actual.storage[i] - expected.storage[i])
        c.maxAbsolute = max(c.maxAbsolute, d)
        c.maxRelative = max(c.maxRelative, d / max(abs(expected.storage[i]), 1e-6))
        if !(d <= atol + rtol * abs(expected.storage[i])) {
            if c.within { c.worst = " (first outside at \(i): \(actual.storage[i]) vs \(expected.storage[i]))" }
            c.within = false
        }
    }
    return c
}

/// Finite-difference check of `∂L/∂v` for `L(v) = Σ f(v) · r` with a fixed random `r`, central differences with
/// step `h`, the sums accumulated in double. Checks up to `samples` coordinates of `v`.
func gradientCheck(
    _ v: Tensor, outputShape: [Int], samples: Int = 30, step h: Float = 1e-2, tolerance: Double = 2e-2,
    seed: UInt64 = 3, _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
    forward: (Tensor) -> Tensor, backward: (Tensor) -> Tensor
) {
    var generator = SeededGenerator(seed: seed)
    let r = Tensor.randomNormal(outputShape, generator: &generator)
    let analytic = backward(r)
    func loss(_ x: Tensor) -> Double {
        let y = forward(x)
        var s = 0.0
        for i in 0..<y.count { s += Double(y.storage[i]) * Double(r.storage[i]) }
        return s
    }
    checkAgainstFiniteDifferences(
        v, analytic: analytic, samples: samples, step: h, tolerance: tolerance,
        generator: &generator, what, sourceLocation: sourceLocation, loss: loss)
}

/// Finite-difference check of a scalar function's gradient.
func checkAgainstFiniteDifferences(
    _ v: Tensor, analytic: Tensor, samples: Int = 30, step h: Float = 1e-2,
    tolerance: Double = 2e-2, generator: inout SeededGenerator, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation, loss: (Tensor) -> Double
) {
    #expect(analytic.shape == v.shape, "\(what): gradient shape", sourceLocation: sourceLocation)
    let indices =
        v.count <= samples
        ? Array(0..<v.count) : (0..<samples).map { _ in Int(generator.next() % UInt64(v.count)) }
    for i in indices {
        var plus = v
        var minus = v
        plus.storage[i] += h
        minus.storage[i] -= h
        let numeric = (loss(plus) - loss(minus)) / Double(2 * h)
        let a = Double(analytic.storage[i])
        #expect(
            abs(a - numeric) <= tolerance * max(1, abs(numeric)) + 1e-4,
            "\(what)[\(i)]: analytic \(a) vs finite difference \(numeric)", sourceLocation: sourceLocation)
    }
}

/// Values spread away from 0 and from each other, so ReLU kinks and pooling ties are not crossed by the step.
func spread(_ shape: [Int], seed: UInt64, scale: Float = 0.05) -> Tensor {
    var g = SeededGenerator(seed: seed)
    let n = shape.reduce(1, *)
    var values = (0..<n).map { (Float($0) - Float(n) / 2 + 0.5) * scale }
    values.shuffle(using: &g)
    return Tensor(shape: shape, storage: values)
}

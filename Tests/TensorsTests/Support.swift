import Tensors
import Testing

/// Whether `actual` matches `expected` elementwise within `atol + rtol·|expected|`; records the worst element.
func expectClose(
    _ actual: Tensor, _ expected: Tensor, rtol: Float = 1e-4, atol: Float = 1e-5,
    _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(
        actual.shape == expected.shape, "\(what): shape \(actual.shape) vs \(expected.shape)",
        sourceLocation: sourceLocation)
    guard actual.shape == expected.shape else { return }
    var worst = 0
    var excess: Float = -.infinity
    for i in 0..<actual.count {
        let e = abs(actual.storage[i] - expected.storage[i]) - (atol + rtol * abs(expected.storage[i]))
        if e > excess || e.isNaN {
            excess = e
            worst = i
        }
    }
    #expect(
        !(excess > 0) && !excess.isNaN,
        "\(what): element \(worst) is \(actual.storage[worst]), expected \(expected.storage[worst])",
        sourceLocation: sourceLocation)
}

/// Finite-difference check of a vector–Jacobian product: for `L(x) = Σ f(x) · r` (fixed random `r`), compares the
/// analytic `∂L/∂x` with central differences `(L(x + h·e_i) − L(x − h·e_i)) / 2h`, the sums accumulated in double.
/// Checks up to `samples` coordinates (all when fewer).
func gradientCheck(
    _ x: Tensor, samples: Int = 40, step h: Float = 1e-2, tolerance: Double = 2e-2, seed: UInt64 = 7,
    _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
    forward: (Tensor) -> Tensor, backward: (Tensor) -> Tensor
) {
    var generator = SeededGenerator(seed: seed)
    let y = forward(x)
    let r = Tensor.randomNormal(y.shape, generator: &generator)
    let analytic = backward(r)
    func loss(_ v: Tensor) -> Double {
        let out = forward(v)
        var s = 0.0
        for i in 0..<out.count { s += Double(out.storage[i]) * Double(r.storage[i]) }
        return s
    }
    let indices =
        x.count <= samples ? Array(0..<x.count) : (0..<samples).map { _ in Int(generator.next() % UInt64(x.count)) }
    for i in indices {
        var plus = x
        var minus = x
        plus.storage[i] += h
        minus.storage[i] -= h
        let numeric = (loss(plus) - loss(minus)) / Double(2 * h)
        let a = Double(analytic.storage[i])
        #expect(
            abs(a - numeric) <= tolerance * max(1, abs(numeric)),
            "\(what): ∂/∂x[\(i)] analytic \(a) vs finite difference \(numeric)", sourceLocation: sourceLocation)
    }
}

/// Values spread away from 0 and from each other (so ReLU kinks and max-pool ties are not crossed by `h`).
func spread(_ shape: [Int], seed: UInt64) -> Tensor {
    var g = SeededGenerator(seed: seed)
    let n = shape.reduce(1, *)
    var values = (0..<n).map { Float($0) * 0.05 + 0.025 - Float(n) * 0.025 }
    values.shuffle(using: &g)
    return Tensor(shape: shape, storage: values)
}

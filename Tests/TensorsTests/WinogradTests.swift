import Tensors
import TestSupport
import Testing

/// Winograd F(2×2, 3×3) (`ConvolutionAlgorithm.winograd`, opt-in) against the naive reference: forward with bias
/// and fused ReLU, ∂x through the flipped kernel with and without the fused ReLU mask, ∂W (direct kernels), on even
/// extents (tile rows of 1 to 20 tiles) and odd extents (not supported: the direct kernels take over).
@Suite("Kernels: Winograd convolution vs naive reference", .computeBound)
struct WinogradTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var n, cin, cout: Int
        var spatial: [Int]
        var testDescription: String { "\(n)×\(cin)→\(cout) \(spatial)" }
    }

    @Test(
        "Forward, ∂x (with the fused ReLU mask), ∂w, ∂b match direct loops at rtol 1e-4 / atol 1e-5",
        arguments: [
            Case(n: 2, cin: 3, cout: 4, spatial: [6, 8]), Case(n: 1, cin: 16, cout: 9, spatial: [4, 40]),
            Case(n: 3, cin: 5, cout: 7, spatial: [2, 2]), Case(n: 2, cin: 2, cout: 3, spatial: [5, 7]),
            Case(n: 1, cin: 64, cout: 32, spatial: [8, 8]),
        ])
    func matchesReference(_ c: Case) {
        let (n, cin, cout, spatial) = (c.n, c.cin, c.cout, c.spatial)
        var g = SeededGenerator(seed: UInt64(cin * 31 + cout))
        let x = Activation.relu(Tensor.randomNormal([n, cin] + spatial, generator: &g))
        let w = Tensor.randomNormal([cout, cin, 3, 3], std: 0.3, generator: &g)
        let b = Tensor.randomNormal([cout], generator: &g)
        let geometry = ConvolutionGeometry(dimensions: 2, kernelSize: 3, padding: 1)
        let naiveY = Reference.convolution(x, weight: w, bias: b, geometry: geometry)
        let what = "\(n)×\(cin)→\(cout) \(spatial)"
        expectClose(
            Convolution.forward(x, weight: w, bias: b, geometry: geometry, algorithm: .winograd), naiveY,
            "\(what) forward")
        expectClose(
            Convolution.forward(x, weight: w, bias: b, geometry: geometry, relu: true, algorithm: .winograd),
            Reference.relu(naiveY), "\(what) forward + ReLU")
        let gy = Tensor.randomNormal(naiveY.shape, generator: &g)
        let naive = Reference.convolutionBackward(gy, input: x, weight: w, geometry: geometry)
        let fast = Convolution.backward(
            gy, input: x, weight: w, hasBias: true, geometry: geometry,
            algorithm: .winograd)
        expectClose(fast.input!, naive.input, "\(what) ∂x")
        expectClose(fast.weight, naive.weight, "\(what) ∂w")
        expectClose(fast.bias!, naive.bias, "\(what) ∂b")
        let masked = Convolution.backward(
            gy, input: x, weight: w, hasBias: true, geometry: geometry,
            inputIsReLUOutput: true, algorithm: .winograd)
        expectClose(masked.input!, Activation.reluBackward(naive.input, output: x), "\(what) ∂x through the ReLU")
    }
}

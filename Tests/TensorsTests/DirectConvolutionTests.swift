import Tensors
import TestSupport
import Testing

/// The direct 3×3(×3) kernels (`ConvolutionAlgorithm.direct`) against the naive reference and the im2col path, on
/// widths below, at and across the 16-column vector boundary, channel counts off the 4-channel (forward) and
/// 3-channel (∂W) blocks, batches > 1 (∂W stacking small 2-D images, whole and partial stacks), 2-D and 3-D.
@Suite("Kernels: direct convolution vs naive reference", .computeBound)
struct DirectConvolutionTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var batch, cin, cout: Int
        var spatial: [Int]
        var testDescription: String { "\(batch)×\(cin)→\(cout) x\(spatial)" }
    }

    static let cases: [Case] = [
        .init(batch: 2, cin: 3, cout: 4, spatial: [9, 8]),
        .init(batch: 1, cin: 1, cout: 16, spatial: [5, 17]),
        .init(batch: 3, cin: 5, cout: 7, spatial: [6, 33]),
        .init(batch: 2, cin: 16, cout: 9, spatial: [4, 70]),
        .init(batch: 1, cin: 2, cout: 5, spatial: [3, 130]),
        .init(batch: 2, cin: 2, cout: 3, spatial: [5, 6, 7]),
        .init(batch: 1, cin: 4, cout: 6, spatial: [3, 4, 18]),
        .init(batch: 2, cin: 3, cout: 2, spatial: [4, 3, 35]),
        // Rows a multiple of 16 wide: ∂W reads ∂y in place instead of a padded copy.
        .init(batch: 2, cin: 3, cout: 5, spatial: [5, 32]),
        .init(batch: 2, cin: 2, cout: 3, spatial: [3, 4, 16]),
        // ∂W stacks small 2-D images (here 4 of 16 rows per call, then the fifth alone).
        .init(batch: 5, cin: 3, cout: 5, spatial: [16, 16]),
    ]

    @Test("Forward (bias, fused ReLU), ∂x, ∂w, ∂b match direct loops", arguments: cases)
    func matchesReference(_ c: Case) {
        check(c)
    }

    @Test("Images split over two workers match direct loops")
    func twoWorkers() {
        Parallelism.threads = 2
        defer { Parallelism.threads = 1 }
        for c in Self.cases { check(c) }
    }

    @Test("Forward and backward agree with the im2col path on a U-Net layer shape")
    func agreesWithIm2col() {
        var g = SeededGenerator(seed: 41)
        let x = Tensor.randomNormal([2, 16, 32, 32], generator: &g)
        let w = Tensor.randomNormal([32, 16, 3, 3], std: 0.1, generator: &g)
        let b = Tensor.randomNormal([32], generator: &g)
        let geometry = ConvolutionGeometry(dimensions: 2, kernelSize: 3, padding: 1)
        let direct = Convolution.forward(x, weight: w, bias: b, geometry: geometry, relu: true, algorithm: .direct)
        let gemm = Convolution.forward(x, weight: w, bias: b, geometry: geometry, relu: true, algorithm: .im2col)
        expectClose(direct, gemm, "forward")
        let gy = Tensor.randomNormal(direct.shape, generator: &g)
        let d = Convolution.backward(gy, input: x, weight: w, hasBias: true, geometry: geometry, algorithm: .direct)
        let i = Convolution.backward(gy, input: x, weight: w, hasBias: true, geometry: geometry, algorithm: .im2col)
        expectClose(d.input!, i.input!, "∂x")
        expectClose(d.weight, i.weight, rtol: 1e-4, atol: 1e-4, "∂w (sums of 2048 products)")
    }

    @Test(
        "∂x through a ReLU input (fused mask) equals ∂x times [x > 0], direct and im2col, 2-D and 3-D",
        arguments: [[6, 20], [3, 4, 17], [5, 6]])
    func fusedReLUBackward(_ spatial: [Int]) {
        var g = SeededGenerator(seed: 9)
        let x = Activation.relu(Tensor.randomNormal([2, 3] + spatial, generator: &g))
        let w = Tensor.randomNormal([4, 3] + spatial.map { _ in 3 }, std: 0.3, generator: &g)
        let geometry = ConvolutionGeometry(dimensions: spatial.count, kernelSize: 3, padding: 1)
        let gy = Tensor.randomNormal([2, 4] + spatial, generator: &g)
        for algorithm in [ConvolutionAlgorithm.direct, .im2col, .automatic] {
            let plain = Convolution.backward(
                gy, input: x, weight: w, hasBias: true, geometry: geometry,
                algorithm: algorithm)
            let fused = Convolution.backward(
                gy, input: x, weight: w, hasBias: true, geometry: geometry,
                inputIsReLUOutput: true, algorithm: algorithm)
            #expect(fused.input! == Activation.reluBackward(plain.input!, output: x), "\(algorithm)")
            #expect(fused.weight == plain.weight && fused.bias == plain.bias)
        }
    }

    @Test("Reused scratch buffers: a padded copy left full of NaN by a larger layer does not leak into the next")
    func reusedScratchBuffers() {
        let geometry = ConvolutionGeometry(dimensions: 2, kernelSize: 3, padding: 1)
        let big = Tensor(repeating: .nan, shape: [1, 8, 20, 40])
        _ = Convolution.forward(
            big, weight: Tensor(repeating: 1, shape: [2, 8, 3, 3]), bias: nil, geometry: geometry,
            algorithm: .direct)
        _ = Convolution.backward(
            Tensor(repeating: .nan, shape: [1, 2, 20, 40]), input: big,
            weight: Tensor(repeating: 1, shape: [2, 8, 3, 3]), hasBias: false,
            geometry: geometry, algorithm: .direct)
        check(Case(batch: 1, cin: 3, cout: 2, spatial: [6, 18]))
        check(Case(batch: 1, cin: 2, cout: 2, spatial: [4, 32]))
    }

    @Test("ReLU keeps NaN, as the im2col path does")
    func reluKeepsNaN() {
        var x = Tensor(repeating: 1, shape: [1, 1, 3, 20])
        x.storage[5] = .nan
        let w = Tensor(repeating: 1, shape: [1, 1, 3, 3])
        let y = Convolution.forward(
            x, weight: w, bias: nil,
            geometry: ConvolutionGeometry(
                dimensions: 2, kernelSize: 3,
                padding: 1), relu: true, algorithm: .direct)
        #expect(y.storage[5].isNaN && !y.storage[40].isNaN)
    }

    @Test("Gradient check through the direct kernels, 2-D and 3-D")
    func gradientChecks() {
        for spatial in [[5, 18], [3, 4, 17]] {
            var g = SeededGenerator(seed: 3)
            let x = Tensor.randomNormal([2, 2] + spatial, generator: &g)
            let w = Tensor.randomNormal([3, 2] + spatial.map { _ in 3 }, std: 0.5, generator: &g)
            let b = Tensor.randomNormal([3], generator: &g)
            let geo = ConvolutionGeometry(dimensions: spatial.count, kernelSize: 3, padding: 1)
            let back = { (gy: Tensor) in
                Convolution.backward(gy, input: x, weight: w, hasBias: true, geometry: geo, algorithm: .direct)
            }
            gradientCheck(
                x, "direct ∂x",
                forward: {
                    Convolution.forward($0, weight: w, bias: b, geometry: geo, algorithm: .direct)
                }, backward: { back($0).input! })
            gradientCheck(
                w, "direct ∂w",
                forward: {
                    Convolution.forward(x, weight: $0, bias: b, geometry: geo, algorithm: .direct)
                }, backward: { back($0).weight })
        }
    }

    func check(_ c: Case, sourceLocation: SourceLocation = #_sourceLocation) {
        var g = SeededGenerator(seed: UInt64(c.spatial.reduce(31, *) + c.cin * 7 + c.cout))
        let x = Tensor.randomNormal([c.batch, c.cin] + c.spatial, generator: &g)
        let w = Tensor.randomNormal([c.cout, c.cin] + c.spatial.map { _ in 3 }, std: 0.3, generator: &g)
        let b = Tensor.randomNormal([c.cout], generator: &g)
        let geometry = ConvolutionGeometry(dimensions: c.spatial.count, kernelSize: 3, padding: 1)
        let naiveY = Reference.convolution(x, weight: w, bias: b, geometry: geometry)
        expectClose(
            Convolution.forward(x, weight: w, bias: b, geometry: geometry, algorithm: .direct), naiveY,
            "\(c.testDescription) forward", sourceLocation: sourceLocation)
        expectClose(
            Convolution.forward(x, weight: w, bias: nil, geometry: geometry, algorithm: .direct),
            Reference.convolution(x, weight: w, bias: nil, geometry: geometry),
            "\(c.testDescription) forward without bias", sourceLocation: sourceLocation)
        expectClose(
            Convolution.forward(x, weight: w, bias: b, geometry: geometry, relu: true, algorithm: .direct),
            Reference.relu(naiveY), "\(c.testDescription) forward + ReLU", sourceLocation: sourceLocation)
        let gy = Tensor.randomNormal(naiveY.shape, generator: &g)
        let fast = Convolution.backward(gy, input: x, weight: w, hasBias: true, geometry: geometry, algorithm: .direct)
        let naive = Reference.convolutionBackward(gy, input: x, weight: w, geometry: geometry)
        expectClose(fast.input!, naive.input, "\(c.testDescription) ∂x", sourceLocation: sourceLocation)
        expectClose(fast.weight, naive.weight, "\(c.testDescription) ∂w", sourceLocation: sourceLocation)
        expectClose(fast.bias!, naive.bias, "\(c.testDescription) ∂b", sourceLocation: sourceLocation)
        let noInput = Convolution.backward(
            gy, input: x, weight: w, hasBias: true, geometry: geometry,
            inputGradient: false, algorithm: .direct)
        #expect(noInput.input == nil, sourceLocation: sourceLocation)
        expectClose(noInput.weight, naive.weight, "\(c.testDescription) ∂w without ∂x", sourceLocation: sourceLocation)
    }
}

import Tensors
import TestSupport
import Testing

/// Fast kernels against the naive references in `Tensors/Reference`, on random seeded shapes.
@Suite("Kernels: fast vs naive reference", .computeBound)
struct KernelTests {
    struct ConvCase: Sendable, CustomTestStringConvertible {
        var batch, cin, cout: Int
        var spatial: [Int]
        var kernel, stride, padding: [Int]
        var bias: Bool
        var testDescription: String { "x\(spatial) k\(kernel) s\(stride) p\(padding) \(cin)→\(cout)" }
    }

    static let convolutions: [ConvCase] = [
        .init(
            batch: 2, cin: 3, cout: 4, spatial: [9, 8], kernel: [3, 3], stride: [1, 1], padding: [1, 1], bias: true),
        .init(
            batch: 1, cin: 2, cout: 5, spatial: [11, 7], kernel: [5, 3], stride: [2, 1], padding: [2, 0], bias: true),
        .init(
            batch: 2, cin: 4, cout: 3, spatial: [6, 6], kernel: [1, 1], stride: [1, 1], padding: [0, 0], bias: true),
        .init(
            batch: 1, cin: 3, cout: 2, spatial: [10, 9], kernel: [4, 2], stride: [3, 2], padding: [1, 1], bias: false),
        .init(
            batch: 2, cin: 2, cout: 3, spatial: [5, 6, 7], kernel: [3, 3, 3], stride: [1, 1, 1], padding: [1, 1, 1],
            bias: true),
        .init(
            batch: 1, cin: 3, cout: 2, spatial: [7, 5, 6], kernel: [3, 2, 3], stride: [2, 1, 2], padding: [0, 1, 1],
            bias: true),
        .init(
            batch: 1, cin: 2, cout: 2, spatial: [4, 4, 4], kernel: [1, 1, 1], stride: [1, 1, 1], padding: [0, 0, 0],
            bias: false),
        // Stride 1 with padding ≥ kernel: ∂x through col2im rather than the flipped-kernel convolution.
        .init(
            batch: 2, cin: 2, cout: 3, spatial: [5, 4], kernel: [2, 1], stride: [1, 1], padding: [2, 1], bias: true),
        .init(
            batch: 1, cin: 3, cout: 2, spatial: [6, 7], kernel: [5, 5], stride: [1, 1], padding: [2, 2], bias: true),
    ]

    @Test("Convolution forward and backward match direct loops", arguments: convolutions)
    func convolution(_ c: ConvCase) {
        var g = SeededGenerator(seed: UInt64(c.spatial.reduce(17, *) + c.cin))
        let x = Tensor.randomNormal([c.batch, c.cin] + c.spatial, generator: &g)
        let w = Tensor.randomNormal([c.cout, c.cin] + c.kernel, std: 0.3, generator: &g)
        let b = c.bias ? Tensor.randomNormal([c.cout], generator: &g) : nil
        let geometry = ConvolutionGeometry(kernelSize: c.kernel, stride: c.stride, padding: c.padding)
        let y = Convolution.forward(x, weight: w, bias: b, geometry: geometry)
        let naiveY = Reference.convolution(x, weight: w, bias: b, geometry: geometry)
        expectClose(y, naiveY, "forward")
        expectClose(
            Convolution.forward(x, weight: w, bias: b, geometry: geometry, relu: true), Reference.relu(naiveY),
            "forward with fused bias + ReLU")
        let gy = Tensor.randomNormal(y.shape, generator: &g)
        let fast = Convolution.backward(gy, input: x, weight: w, hasBias: c.bias, geometry: geometry)
        let naive = Reference.convolutionBackward(gy, input: x, weight: w, geometry: geometry)
        expectClose(fast.input!, naive.input, "∂x")
        expectClose(fast.weight, naive.weight, "∂w")
        if c.bias { expectClose(fast.bias!, naive.bias, "∂b") }
        let noInput = Convolution.backward(
            gy, input: x, weight: w, hasBias: c.bias, geometry: geometry,
            inputGradient: false)
        #expect(noInput.input == nil)
        expectClose(noInput.weight, naive.weight, "∂w without ∂x")
    }

    @Test("Convolutions split over two workers (per-image, per-worker ∂W) match direct loops")
    func parallelWorkers() {
        Parallelism.threads = 2
        defer { Parallelism.threads = 1 }
        for c in Self.convolutions { convolution(c) }
        for c in Self.transposed { transposedConvolution(c) }
        var g = SeededGenerator(seed: 77)
        let x = Tensor.randomNormal([5, 3, 6, 7], generator: &g)
        let w = Tensor.randomNormal([4, 3, 3, 3], generator: &g)
        let geometry = ConvolutionGeometry(dimensions: 2, kernelSize: 3, padding: 1)
        let gy = Tensor.randomNormal([5, 4, 6, 7], generator: &g)
        let fast = Convolution.backward(gy, input: x, weight: w, hasBias: false, geometry: geometry)
        let naive = Reference.convolutionBackward(gy, input: x, weight: w, geometry: geometry)
        expectClose(fast.weight, naive.weight, "∂w, 5 images on 2 workers")
        expectClose(fast.input!, naive.input, "∂x, 5 images on 2 workers")
    }

    @Test("Convolutions lowered in tiles of output rows (tiny column budget) match direct loops")
    func tiled() {
        Parallelism.columnBudget = 40
        defer { Parallelism.columnBudget = 1 << 21 }
        for c in Self.convolutions { convolution(c) }
        for c in Self.transposed { transposedConvolution(c) }
    }

    static let transposed: [ConvCase] = [
        .init(
            batch: 2, cin: 4, cout: 3, spatial: [5, 6], kernel: [2, 2], stride: [2, 2], padding: [0, 0], bias: true),
        .init(
            batch: 1, cin: 3, cout: 2, spatial: [4, 5], kernel: [3, 3], stride: [2, 2], padding: [1, 1], bias: true),
        .init(
            batch: 1, cin: 2, cout: 3, spatial: [4, 3], kernel: [3, 2], stride: [1, 3], padding: [0, 0], bias: false),
        .init(
            batch: 2, cin: 3, cout: 2, spatial: [3, 4, 2], kernel: [2, 2, 2], stride: [2, 2, 2], padding: [0, 0, 0],
            bias: true),
    ]

    @Test("Transposed convolution forward and backward match direct loops", arguments: transposed)
    func transposedConvolution(_ c: ConvCase) {
        var g = SeededGenerator(seed: UInt64(c.spatial.reduce(5, *) + c.cout))
        let x = Tensor.randomNormal([c.batch, c.cin] + c.spatial, generator: &g)
        let w = Tensor.randomNormal([c.cin, c.cout] + c.kernel, std: 0.3, generator: &g)
        let b = c.bias ? Tensor.randomNormal([c.cout], generator: &g) : nil
        let geometry = ConvolutionGeometry(kernelSize: c.kernel, stride: c.stride, padding: c.padding)
        let y = TransposedConvolution.forward(x, weight: w, bias: b, geometry: geometry)
        expectClose(y, Reference.transposedConvolution(x, weight: w, bias: b, geometry: geometry), "forward")
        let gy = Tensor.randomNormal(y.shape, generator: &g)
        let fast = TransposedConvolution.backward(gy, input: x, weight: w, hasBias: c.bias, geometry: geometry)
        let naive = Reference.transposedConvolutionBackward(gy, input: x, weight: w, geometry: geometry)
        expectClose(fast.input!, naive.input, "∂x")
        expectClose(fast.weight, naive.weight, "∂w")
        if c.bias { expectClose(fast.bias!, naive.bias, "∂b") }
    }

    @Test(
        "Max and average pooling, 2-D and 3-D, match window loops",
        arguments: [
            ([2, 3, 8, 6], [2, 2], [2, 2]), ([1, 2, 9, 7], [3, 2], [2, 2]), ([1, 2, 6, 4, 5], [2, 2, 2], [2, 2, 2]),
            ([2, 1, 5, 6, 7], [3, 1, 2], [1, 2, 2]),
            // Window 2, stride 2 on the vector kernel: 16 outputs per vector plus a scalar tail, odd extents.
            ([2, 3, 6, 70], [2, 2], [2, 2]), ([1, 2, 5, 3, 35], [2, 2, 2], [2, 2, 2]),
            ([1, 1, 4, 4, 64], [2, 2, 2], [2, 2, 2]),
        ])
    func pooling(_ shape: [Int], _ kernel: [Int], _ stride: [Int]) {
        let x = spread(shape, seed: 3)
        var g = SeededGenerator(seed: 9)
        let (y, argmax) = MaxPooling.forward(x, kernelSize: kernel, stride: stride)
        expectClose(y, Reference.maxPool(x, kernelSize: kernel, stride: stride), "max forward")
        let gy = Tensor.randomNormal(y.shape, generator: &g)
        expectClose(
            MaxPooling.backward(gy, argmax: argmax, inputShape: x.shape),
            Reference.maxPoolBackward(gy, input: x, kernelSize: kernel, stride: stride), "max backward")
        let a = AveragePooling.forward(x, kernelSize: kernel, stride: stride)
        expectClose(a, Reference.averagePool(x, kernelSize: kernel, stride: stride), "average forward")
        expectClose(
            AveragePooling.backward(gy, inputShape: x.shape, kernelSize: kernel, stride: stride),
            Reference.averagePoolBackward(gy, input: x, kernelSize: kernel, stride: stride), "average backward")
        let gp = GlobalAveragePooling.forward(x)
        expectClose(gp, Reference.globalAveragePool(x), "global forward")
        let ggy = Tensor.randomNormal(gp.shape, generator: &g)
        expectClose(
            GlobalAveragePooling.backward(ggy, inputShape: x.shape), Reference.globalAveragePoolBackward(ggy, input: x),
            "global backward")
    }

    @Test("Max pooling: the first of tied maxima takes the gradient (PyTorch's CPU rule)")
    func maxPoolTies() {
        let x = Tensor(shape: [1, 1, 2, 2], storage: [1, 1, 1, 1])
        let (_, argmax) = MaxPooling.forward(x, kernelSize: [2, 2], stride: [2, 2])
        #expect(argmax == [0])
    }

    @Test(
        "Max pooling 2 (vector kernel): ties go to the first in scan order, NaN wins, the first NaN over later ones",
        arguments: [[1, 1, 2, 32], [1, 1, 2, 2, 32]])
    func maxPoolTiesAndNaN(_ shape: [Int]) {
        var x = Tensor(repeating: 1, shape: shape)
        let w = shape.last!
        let threeD = shape.count == 5
        let plane = 2 * w  // one 2 × w plane
        // Window 0: all tied. Window 1 (columns 2, 3): NaN at the second row, second column, and a larger number
        // before it. Window 2 (columns 4, 5): NaN at the first row, second column and at the second row, first column.
        x.storage[w + 3] = .nan
        x.storage[2] = 5
        x.storage[5] = .nan
        x.storage[w + 4] = .nan
        // Window 3 (columns 6, 7): the maximum in the last tap (the second plane in 3-D).
        x.storage[(threeD ? plane : 0) + w + 7] = 9
        let (y, argmax) = MaxPooling.forward(
            x, kernelSize: Array(repeating: 2, count: shape.count - 2),
            stride: Array(repeating: 2, count: shape.count - 2))
        #expect(argmax[0] == 0)
        #expect(argmax[1] == Int32(w + 3) && y.storage[1].isNaN)
        #expect(argmax[2] == 5 && y.storage[2].isNaN)
        #expect(argmax[3] == Int32((threeD ? plane : 0) + w + 7) && y.storage[3] == 9)
        #expect(Array(argmax[4..<16]) == (4..<16).map { Int32(2 * $0) })
    }

    @Test("ReLU backward (vector kernel, split over two workers) matches the reference rule", arguments: [1, 2])
    func reluBackward(threads: Int) {
        Parallelism.threads = threads
        defer { Parallelism.threads = 1 }
        var g = SeededGenerator(seed: 13)
        // Long enough for two workers, not a multiple of 16; a NaN gradient passes where y > 0, never where y ≤ 0.
        var y = Activation.relu(Tensor.randomNormal([3, 5, 97, 181], generator: &g))
        var gy = Tensor.randomNormal(y.shape, generator: &g)
        y.storage[7] = 1
        gy.storage[7] = .nan
        y.storage[8] = 0
        gy.storage[8] = .nan
        y.storage[9] = .nan
        let expected = zip(gy.storage, y.storage).map { $1 > 0 ? $0 : 0 }
        let fresh = Activation.reluBackward(gy, output: y)
        var inPlace = gy
        Activation.applyReLUBackward(&inPlace, output: y)
        for r in [fresh, inPlace] {
            #expect(r.storage[7].isNaN && r.storage[8] == 0 && r.storage[9] == 0)
            var same = true
            for i in 0..<r.count where i != 7 && r.storage[i] != expected[i] { same = false }
            #expect(same)
        }
    }

    @Test(
        "Instance and batch norm forward match double-precision formulas", arguments: [[2, 3, 5, 4], [3, 2, 3, 4, 2]])
    func normalization(_ shape: [Int]) {
        var g = SeededGenerator(seed: 21)
        let x = Tensor.randomNormal(shape, mean: 0.5, std: 2, generator: &g)
        let gamma = Tensor.randomNormal([shape[1]], mean: 1, std: 0.2, generator: &g)
        let beta = Tensor.randomNormal([shape[1]], generator: &g)
        let inst = InstanceNormalization.forward(x, weight: gamma, bias: beta).output
        expectClose(
            inst,
            Reference.normalize(
                x, groups: Reference.instanceGroups(shape), weight: gamma, bias: beta,
                epsilon: 1e-5), rtol: 1e-4, atol: 1e-5, "instance")
        var rm = Tensor(zeros: [shape[1]])
        var rv = Tensor(repeating: 1, shape: [shape[1]])
        let bn = BatchNormalization.forward(
            x, weight: gamma, bias: beta, runningMean: &rm, runningVariance: &rv, training: true)
        expectClose(
            bn.output,
            Reference.normalize(
                x, groups: Reference.batchGroups(shape), weight: gamma, bias: beta,
                epsilon: 1e-5), "batch (training)")
        // Running statistics after one step: 0.9·init + 0.1·batch, unbiased variance.
        let groups = Reference.batchGroups(shape)
        for (c, group) in groups.enumerated() {
            let mu = group.reduce(0.0) { $0 + Double(x.storage[$1]) } / Double(group.count)
            let v =
                group.reduce(0.0) { $0 + (Double(x.storage[$1]) - mu) * (Double(x.storage[$1]) - mu) }
                / Double(group.count - 1)
            #expect(abs(Double(rm.storage[c]) - 0.1 * mu) < 1e-5)
            #expect(abs(Double(rv.storage[c]) - (0.9 + 0.1 * v)) < 1e-4)
        }
        let eval = BatchNormalization.forward(
            x, weight: gamma, bias: beta, runningMean: &rm, runningVariance: &rv, training: false)
        expectClose(
            eval.output,
            Reference.normalize(
                x, groups: groups, weight: gamma, bias: beta, epsilon: 1e-5,
                mean: rm.storage.map(Double.init),
                variance: rv.storage.map(Double.init)), "batch (eval)")
    }

    @Test("ReLU, LeakyReLU, softmax, concat, linear match the references")
    func pointwise() {
        var g = SeededGenerator(seed: 5)
        let x = Tensor.randomNormal([2, 3, 4, 5], generator: &g)
        #expect(Activation.relu(x) == Reference.relu(x))
        #expect(Activation.leakyReLU(x, negativeSlope: 0.1) == Reference.leakyReLU(x, negativeSlope: 0.1))
        expectClose(Softmax.forward(x * 10), Reference.softmax(x * 10), rtol: 1e-5, atol: 1e-6, "softmax")
        let a = Tensor.randomNormal([2, 2, 3, 3], generator: &g)
        let b = Tensor.randomNormal([2, 4, 3, 3], generator: &g)
        let cat = ChannelConcat.forward([a, b])
        #expect(cat == Reference.concat([a, b]))
        let parts = ChannelConcat.backward(cat, channels: [2, 4])
        #expect(parts[0] == a && parts[1] == b)
        let xin = Tensor.randomNormal([3, 7], generator: &g)
        let w = Tensor.randomNormal([4, 7], generator: &g)
        let bias = Tensor.randomNormal([4], generator: &g)
        expectClose(Dense.forward(xin, weight: w, bias: bias), Reference.linear(xin, weight: w, bias: bias), "linear")
    }

    @Test("DropoutMask is seeded, keeps about 1 − p, scales survivors by 1/(1 − p), and is its own backward mask")
    func dropout() {
        let x = Tensor(repeating: 2, shape: [4, 8, 16, 16])
        var g1 = SeededGenerator(seed: 11)
        var g2 = SeededGenerator(seed: 11)
        let (y1, mask) = DropoutMask.forward(x, probability: 0.25, generator: &g1)
        let (y2, _) = DropoutMask.forward(x, probability: 0.25, generator: &g2)
        #expect(y1 == y2)
        let kept = mask.storage.filter { $0 != 0 }
        #expect(kept.allSatisfy { abs($0 - 4.0 / 3.0) < 1e-6 })
        #expect(abs(Double(kept.count) / Double(mask.count) - 0.75) < 0.02)
        #expect(DropoutMask.backward(x, mask: mask) == y1)
    }
}

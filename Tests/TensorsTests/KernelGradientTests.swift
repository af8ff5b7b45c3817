import Tensors
import TestSupport
import Testing

/// Finite-difference checks of every kernel's backward pass (float64 accumulation in the checker).
@Suite("Kernels: gradient checks", .computeBound)
struct KernelGradientTests {
    @Test("Convolution 2-D and 3-D: ∂x and ∂w")
    func convolution() {
        for (spatial, kernel, stride, padding) in [
            ([6, 5], [3, 3], [1, 1], [1, 1]), ([7, 6], [3, 2], [2, 1], [1, 0]),
            ([4, 5, 4], [3, 3, 3], [1, 2, 1], [1, 1, 0]),
        ] {
            var g = SeededGenerator(seed: 1)
            let x = Tensor.randomNormal([2, 2] + spatial, generator: &g)
            let w = Tensor.randomNormal([3, 2] + kernel, std: 0.5, generator: &g)
            let b = Tensor.randomNormal([3], generator: &g)
            let geo = ConvolutionGeometry(kernelSize: kernel, stride: stride, padding: padding)
            gradientCheck(
                x, "conv ∂x", forward: { Convolution.forward($0, weight: w, bias: b, geometry: geo) },
                backward: { Convolution.backward($0, input: x, weight: w, hasBias: true, geometry: geo).input! })
            gradientCheck(
                w, "conv ∂w", forward: { Convolution.forward(x, weight: $0, bias: b, geometry: geo) },
                backward: { Convolution.backward($0, input: x, weight: w, hasBias: true, geometry: geo).weight })
            gradientCheck(
                b, "conv ∂b", forward: { Convolution.forward(x, weight: w, bias: $0, geometry: geo) },
                backward: { Convolution.backward($0, input: x, weight: w, hasBias: true, geometry: geo).bias! })
        }
    }

    @Test("Transposed convolution 2-D and 3-D: ∂x and ∂w")
    func transposed() {
        for (spatial, kernel) in [([3, 4], [2, 2]), ([2, 3, 2], [2, 2, 2])] {
            var g = SeededGenerator(seed: 2)
            let x = Tensor.randomNormal([2, 3] + spatial, generator: &g)
            let w = Tensor.randomNormal([3, 2] + kernel, std: 0.5, generator: &g)
            let b = Tensor.randomNormal([2], generator: &g)
            let geo = ConvolutionGeometry(kernelSize: kernel, stride: kernel, padding: kernel.map { _ in 0 })
            let back = { (gy: Tensor) in
                TransposedConvolution.backward(gy, input: x, weight: w, hasBias: true, geometry: geo)
            }
            gradientCheck(
                x, "convT ∂x", forward: { TransposedConvolution.forward($0, weight: w, bias: b, geometry: geo) },
                backward: { back($0).input! })
            gradientCheck(
                w, "convT ∂w", forward: { TransposedConvolution.forward(x, weight: $0, bias: b, geometry: geo) },
                backward: { back($0).weight })
            gradientCheck(
                b, "convT ∂b", forward: { TransposedConvolution.forward(x, weight: w, bias: $0, geometry: geo) },
                backward: { back($0).bias! })
        }
    }

    @Test("Pooling, activations, softmax, linear")
    func simple() {
        let x = spread([2, 2, 6, 6], seed: 4)
        gradientCheck(
            x, "max pool", forward: { MaxPooling.forward($0, kernelSize: [2, 2], stride: [2, 2]).output },
            backward: {
                MaxPooling.backward(
                    $0, argmax: MaxPooling.forward(x, kernelSize: [2, 2], stride: [2, 2]).argmax,
                    inputShape: x.shape)
            })
        gradientCheck(
            x, "average pool", forward: { AveragePooling.forward($0, kernelSize: [3, 2], stride: [2, 2]) },
            backward: { AveragePooling.backward($0, inputShape: x.shape, kernelSize: [3, 2], stride: [2, 2]) })
        gradientCheck(
            x, "global pool", forward: { GlobalAveragePooling.forward($0) },
            backward: { GlobalAveragePooling.backward($0, inputShape: x.shape) })
        gradientCheck(
            x, "relu", forward: { Activation.relu($0) },
            backward: { Activation.reluBackward($0, output: Activation.relu(x)) })
        gradientCheck(
            x, "leaky relu", forward: { Activation.leakyReLU($0, negativeSlope: 0.1) },
            backward: { Activation.leakyReLUBackward($0, input: x, negativeSlope: 0.1) })
        var g = SeededGenerator(seed: 3)
        let logits = Tensor.randomNormal([2, 3, 4, 4], generator: &g)
        gradientCheck(
            logits, "softmax", forward: { Softmax.forward($0) },
            backward: { Softmax.backward($0, output: Softmax.forward(logits)) })
        let xin = Tensor.randomNormal([3, 5], generator: &g)
        let w = Tensor.randomNormal([4, 5], generator: &g)
        let bias = Tensor.randomNormal([4], generator: &g)
        gradientCheck(
            xin, "linear ∂x", forward: { Dense.forward($0, weight: w, bias: bias) },
            backward: { Dense.backward($0, input: xin, weight: w, hasBias: true).input })
        gradientCheck(
            w, "linear ∂w", forward: { Dense.forward(xin, weight: $0, bias: bias) },
            backward: { Dense.backward($0, input: xin, weight: w, hasBias: true).weight })
        let mask = DropoutMask.forward(x, probability: 0.3, generator: &g).mask
        gradientCheck(x, "dropout", forward: { $0 * mask }, backward: { DropoutMask.backward($0, mask: mask) })
        let a = Tensor.randomNormal([2, 2, 3, 3], generator: &g)
        let b = Tensor.randomNormal([2, 3, 3, 3], generator: &g)
        gradientCheck(
            a, "concat", forward: { ChannelConcat.forward([$0, b]) },
            backward: { ChannelConcat.backward($0, channels: [2, 3])[0] })
    }

    @Test("Instance norm and batch norm (training and eval): ∂x, ∂γ, ∂β")
    func normalization() {
        var g = SeededGenerator(seed: 8)
        let x = Tensor.randomNormal([3, 2, 4, 3], mean: 0.3, std: 1.5, generator: &g)
        let gamma = Tensor.randomNormal([2], mean: 1, std: 0.3, generator: &g)
        let beta = Tensor.randomNormal([2], generator: &g)
        let inst = { (x: Tensor, w: Tensor, b: Tensor) in InstanceNormalization.forward(x, weight: w, bias: b) }
        let ib = { (gy: Tensor) in
            InstanceNormalization.backward(gy, cache: inst(x, gamma, beta).cache, weight: gamma, affine: true)
        }
        gradientCheck(
            x, step: 1e-2, tolerance: 3e-2, "instance ∂x", forward: { inst($0, gamma, beta).output },
            backward: { ib($0).input })
        gradientCheck(gamma, "instance ∂γ", forward: { inst(x, $0, beta).output }, backward: { ib($0).weight! })
        gradientCheck(beta, "instance ∂β", forward: { inst(x, gamma, $0).output }, backward: { ib($0).bias! })
        for training in [true, false] {
            let rm0 = Tensor.randomNormal([2], generator: &g)
            let rv0 = Tensor.randomUniform([2], low: 0.5, high: 2, generator: &g)
            let bn = { (x: Tensor, w: Tensor, b: Tensor) -> (output: Tensor, cache: NormalizationCache) in
                var rm = rm0
                var rv = rv0
                return BatchNormalization.forward(
                    x, weight: w, bias: b, runningMean: &rm, runningVariance: &rv, training: training)
            }
            let bb = { (gy: Tensor) in
                BatchNormalization.backward(gy, cache: bn(x, gamma, beta).cache, weight: gamma, affine: true)
            }
            gradientCheck(
                x, tolerance: 3e-2, "batch ∂x (training \(training))", forward: { bn($0, gamma, beta).output },
                backward: { bb($0).input })
            gradientCheck(gamma, "batch ∂γ", forward: { bn(x, $0, beta).output }, backward: { bb($0).weight! })
            gradientCheck(beta, "batch ∂β", forward: { bn(x, gamma, $0).output }, backward: { bb($0).bias! })
        }
    }
}

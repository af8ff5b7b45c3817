import Tensors

/// MONAI's `Convolution` block as `BasicUNet` builds it: convolution (3×3 or 3×3×3, padding 1, bias), then MONAI's
/// `ADN` in its default order N-D-A: affine instance norm, dropout, LeakyReLU(0.1).
///
/// State_dict names as MONAI's: `conv.weight`, `conv.bias`, `adn.N.weight`, `adn.N.bias` (dropout and activation have
/// no parameters). Shapes `[N, inputChannels, (D,) H, W]` → `[N, outputChannels, (D,) H, W]`.
public struct MONAIConvolution: Module {
    public var conv: Conv
    public var norm: InstanceNorm
    public var dropout: Dropout
    public let activation: LeakyReLU

    public init(
        dimensions: Int, inputChannels: Int, outputChannels: Int, dropout: Float, dropoutSeed: UInt64,
        generator: inout SeededGenerator
    ) {
        conv = Conv(
            dimensions: dimensions, inputChannels: inputChannels, outputChannels: outputChannels,
            kernelSize: 3, padding: 1, generator: &generator)
        norm = InstanceNorm(channels: outputChannels)
        self.dropout = Dropout(probability: dropout, seed: dropoutSeed)
        activation = LeakyReLU(negativeSlope: 0.1)
    }

    public var parameters: NamedTensors {
        var p = conv.parameters.prefixed("conv")
        p.merge(norm.parameters.prefixed("adn.N"))
        return p
    }

    public mutating func update(parameters state: NamedTensors) throws {
        try conv.update(parameters: state.scoped("conv"))
        try norm.update(parameters: state.scoped("adn.N"))
    }

    public struct Cache: Sendable {
        var input: Tensor
        var norm: NormalizationCache
        var dropoutMask: Tensor?
        var activationInput: Tensor
    }

    /// `leaky_relu(dropout(instance_norm(conv(x))), 0.1)`; dropout only when `training`.
    public mutating func forward(_ input: Tensor, training: Bool) -> (output: Tensor, cache: Cache) {
        let n = norm.forward(conv.forward(input).output)
        let d = dropout.forward(n.output, training: training)
        let y = activation.forward(d.output).output
        return (y, Cache(input: input, norm: n.cache, dropoutMask: d.cache, activationInput: d.output))
    }

    public func backward(_ gradOutput: Tensor, cache: Cache) -> (input: Tensor?, gradients: NamedTensors) {
        let a = activation.backward(gradOutput, cache: cache.activationInput).input!
        let d = dropout.backward(a, cache: cache.dropoutMask).input!
        let n = norm.backward(d, cache: cache.norm)
        let c = conv.backward(n.input!, cache: cache.input)
        var gradients = c.gradients.prefixed("conv")
        gradients.merge(n.gradients.prefixed("adn.N"))
        return (c.input, gradients)
    }
}

/// MONAI's `TwoConv`: two `MONAIConvolution` blocks, names `conv_0.*` and `conv_1.*`.
public struct TwoConv: Module {
    public var conv0: MONAIConvolution
    public var conv1: MONAIConvolution

    public init(
        dimensions: Int, inputChannels: Int, outputChannels: Int, dropout: Float, dropoutSeed: UInt64,
        generator: inout SeededGenerator
    ) {
        conv0 = MONAIConvolution(
            dimensions: dimensions, inputChannels: inputChannels, outputChannels: outputChannels,
            dropout: dropout, dropoutSeed: dropoutSeed, generator: &generator)
        conv1 = MONAIConvolution(
            dimensions: dimensions, inputChannels: outputChannels,
            outputChannels: outputChannels, dropout: dropout, dropoutSeed: dropoutSeed &+ 1,
            generator: &generator)
    }

    public var parameters: NamedTensors {
        var p = conv0.parameters.prefixed("conv_0")
        p.merge(conv1.parameters.prefixed("conv_1"))
        return p
    }

    public mutating func update(parameters state: NamedTensors) throws {
        try conv0.update(parameters: state.scoped("conv_0"))
        try conv1.update(parameters: state.scoped("conv_1"))
    }

    public mutating func forward(_ input: Tensor, training: Bool) -> (output: Tensor, cache: [MONAIConvolution.Cache]) {
        let a = conv0.forward(input, training: training)
        let b = conv1.forward(a.output, training: training)
        return (b.output, [a.cache, b.cache])
    }

    public func backward(_ gradOutput: Tensor, cache: [MONAIConvolution.Cache]) -> (
        input: Tensor?,
        gradients: NamedTensors
    ) {
        let b = conv1.backward(gradOutput, cache: cache[1])
        let a = conv0.backward(b.input!, cache: cache[0])
        var gradients = a.gradients.prefixed("conv_0")
        gradients.merge(b.gradients.prefixed("conv_1"))
        return (a.input, gradients)
    }
}

/// A `monai.networks.nets.BasicUNet`-compatible U-Net (2-D or 3-D), with MONAI's state_dict names, so a checkpoint
/// loads into `BasicUNet(spatial_dims, in_channels, out_channels, features, dropout=…)` with
/// `load_state_dict(strict=True)` and back.
///
/// Layout (features `f = (f0, …, f5)`, MONAI's default `(32, 32, 64, 128, 256, 32)`; every convolution block is
/// conv 3×3(×3) + instance norm (affine) + dropout + LeakyReLU(0.1)):
/// - `conv_0`: `TwoConv(in, f0)`;
/// - `down_k` (k = 1…4): max-pool 2, then `TwoConv(f[k−1], f[k])` (names `down_k.convs.…`);
/// - `upcat_k` (k = 4…1): `ConvTranspose(kernel 2, stride 2)` from the deeper features to `u` channels
///   (`upcat_k.upsample.deconv.…`; `u` = half the input channels, except `upcat_1` which keeps f1), concatenation
///   `[skip, upsampled]` on channels, `TwoConv(skip + u, out)` with out = f3, f2, f1, f5 (`upcat_k.convs.…`);
/// - `final_conv`: 1×1(×1) convolution to `outputChannels` logits.
///
/// Shapes: input `[N, inputChannels, (D,) H, W]` with every spatial extent a multiple of 16 (MONAI pads odd extents
/// with replicate padding after upsampling; Tessera asks for a fitting patch size instead), output
/// `[N, outputChannels, (D,) H, W]`. Initialisation: PyTorch's defaults (uniform ±1/√fanIn), norms γ = 1, β = 0.
public struct BasicUNet: Module {
    public let dimensions: Int
    public let features: [Int]
    public var conv0: TwoConv
    /// `down_1` … `down_4`.
    public var downs: [TwoConv]
    /// `upcat_4` … `upcat_1` (deepest first): upsampling transposed convolution and `TwoConv`.
    public var upsamples: [ConvTranspose]
    public var upConvs: [TwoConv]
    public var finalConv: Conv
    let pool: MaxPool

    /// MONAI's default features.
    public static let defaultFeatures = [32, 32, 64, 128, 256, 32]

    /// - Parameters:
    ///   - features: six channel counts as MONAI's `features`.
    ///   - dropout: MONAI's `dropout` probability (applied in every convolution block during training).
    ///   - seed: seed of the dropout masks (each block draws from its own generator derived from it).
    public init(
        dimensions: Int = 3, inputChannels: Int = 1, outputChannels: Int = 2,
        features: [Int] = BasicUNet.defaultFeatures, dropout: Float = 0, seed: UInt64 = 0,
        generator: inout SeededGenerator
    ) {
        precondition((2...3).contains(dimensions) && features.count == 6 && features.allSatisfy { $0 > 0 })
        self.dimensions = dimensions
        self.features = features
        let f = features
        var seed = seed &* 1000
        func nextSeed() -> UInt64 {
            seed &+= 2
            return seed
        }
        conv0 = TwoConv(
            dimensions: dimensions, inputChannels: inputChannels, outputChannels: f[0], dropout: dropout,
            dropoutSeed: nextSeed(), generator: &generator)
        conv0.conv0.conv.computesInputGradient = false
        downs = (1...4).map { k in
            TwoConv(
                dimensions: dimensions, inputChannels: f[k - 1], outputChannels: f[k], dropout: dropout,
                dropoutSeed: nextSeed(), generator: &generator)
        }
        // (input channels, skip channels, output channels, halves) of upcat_4 … upcat_1, as MONAI builds them.
        let specs = [
            (f[4], f[3], f[3], true), (f[3], f[2], f[2], true), (f[2], f[1], f[1], true),
            (f[1], f[0], f[5], false),
        ]
        var upsamples: [ConvTranspose] = []
        var upConvs: [TwoConv] = []
        for (input, skip, output, halves) in specs {
            let up = halves ? input / 2 : input
            upsamples.append(
                ConvTranspose(
                    dimensions: dimensions, inputChannels: input, outputChannels: up,
                    generator: &generator))
            upConvs.append(
                TwoConv(
                    dimensions: dimensions, inputChannels: skip + up, outputChannels: output,
                    dropout: dropout, dropoutSeed: nextSeed(), generator: &generator))
        }
        self.upsamples = upsamples
        self.upConvs = upConvs
        finalConv = Conv(
            dimensions: dimensions, inputChannels: f[5], outputChannels: outputChannels, kernelSize: 1,
            generator: &generator)
        pool = MaxPool(dimensions: dimensions, kernelSize: 2)
    }

    public var parameters: NamedTensors {
        var p = conv0.parameters.prefixed("conv_0")
        for (i, d) in downs.enumerated() { p.merge(d.parameters.prefixed("down_\(i + 1).convs")) }
        for j in upsamples.indices {
            let k = 4 - j
            p.merge(upsamples[j].parameters.prefixed("upcat_\(k).upsample.deconv"))
            p.merge(upConvs[j].parameters.prefixed("upcat_\(k).convs"))
        }
        p.merge(finalConv.parameters.prefixed("final_conv"))
        return p
    }

    public mutating func update(parameters state: NamedTensors) throws {
        try conv0.update(parameters: state.scoped("conv_0"))
        for i in downs.indices { try downs[i].update(parameters: state.scoped("down_\(i + 1).convs")) }
        for j in upsamples.indices {
            try upsamples[j].update(parameters: state.scoped("upcat_\(4 - j).upsample.deconv"))
            try upConvs[j].update(parameters: state.scoped("upcat_\(4 - j).convs"))
        }
        try finalConv.update(parameters: state.scoped("final_conv"))
    }

    /// Everything the backward pass needs.
    public struct Trace: Sendable {
        var encoder: [[MONAIConvolution.Cache]] = []
        var pools: [MaxPool.Cache] = []
        var upInputs: [Tensor] = []
        var decoder: [[MONAIConvolution.Cache]] = []
        var finalInput: Tensor?
    }

    /// Checks that `shape` is `[batch, inputChannels, (D,) H, W]` with every spatial extent a positive multiple of 16.
    /// - Throws: `NeuralNetworkError.shapeMismatch` saying what to change.
    public func validate(inputShape shape: [Int]) throws {
        let channels = conv0.conv0.conv.weight.shape[1]
        guard shape.count == dimensions + 2, shape[0] > 0, shape[1] == channels else {
            throw NeuralNetworkError(
                .shapeMismatch,
                "BasicUNet (\(dimensions)-D, \(channels) input channels) expects "
                    + "[batch, \(channels), \(dimensions == 3 ? "depth, " : "")height, width], got \(shape)")
        }
        guard shape.dropFirst(2).allSatisfy({ $0 > 0 && $0 % 16 == 0 }) else {
            throw NeuralNetworkError(
                .shapeMismatch,
                "BasicUNet's four poolings need spatial extents that are "
                    + "multiples of 16, got \(Array(shape.dropFirst(2))): choose a patch size that is, or pad the input"
            )
        }
    }

    /// Logits `[N, outputChannels, spatial…]` and the trace for `backward`; `training` enables dropout.
    /// - Throws: `NeuralNetworkError.shapeMismatch` when the input does not fit (see `validate(inputShape:)`).
    public mutating func forward(_ input: Tensor, training: Bool = false) throws -> (output: Tensor, trace: Trace) {
        try validate(inputShape: input.shape)
        var trace = Trace()
        let first = conv0.forward(input, training: training)
        trace.encoder.append(first.cache)
        var x = first.output
        var skips = [x]
        for i in downs.indices {
            let p = pool.forward(x)
            trace.pools.append(p.cache)
            let r = downs[i].forward(p.output, training: training)
            trace.encoder.append(r.cache)
            x = r.output
            skips.append(x)
        }
        for j in upsamples.indices {
            trace.upInputs.append(x)
            let up = upsamples[j].forward(x).output
            let r = upConvs[j].forward(ChannelConcat.forward([skips[3 - j], up]), training: training)
            trace.decoder.append(r.cache)
            x = r.output
        }
        trace.finalInput = x
        return (finalConv.forward(x).output, trace)
    }

    /// `∂L/∂parameter` for every parameter (same names and order as `parameters`) from `∂L/∂logits`.
    public func backward(_ gradOutput: Tensor, trace: Trace) -> NamedTensors {
        let h = finalConv.backward(gradOutput, cache: trace.finalInput!)
        var g = h.input!
        var skipGradients: [Tensor?] = Array(repeating: nil, count: 5)
        var upGradients = Array(repeating: NamedTensors(), count: 4)
        var decoderGradients = Array(repeating: NamedTensors(), count: 4)
        for j in upsamples.indices.reversed() {
            let d = upConvs[j].backward(g, cache: trace.decoder[j])
            decoderGradients[j] = d.gradients
            let skipChannels = upConvs[j].conv0.conv.weight.shape[1] - upsamples[j].weight.shape[1]
            let parts = ChannelConcat.backward(d.input!, channels: [skipChannels, upsamples[j].weight.shape[1]])
            skipGradients[3 - j] = parts[0]
            let u = upsamples[j].backward(parts[1], cache: trace.upInputs[j])
            upGradients[j] = u.gradients
            g = u.input!
        }
        var encoderGradients = Array(repeating: NamedTensors(), count: 5)
        for i in (0...4).reversed() {
            if let s = skipGradients[i] { g.add(s) }
            let block = i == 0 ? conv0 : downs[i - 1]
            let e = block.backward(g, cache: trace.encoder[i])
            encoderGradients[i] = e.gradients
            if i > 0 { g = pool.backward(e.input!, cache: trace.pools[i - 1]).input! }
        }
        var gradients = encoderGradients[0].prefixed("conv_0")
        for i in 1...4 { gradients.merge(encoderGradients[i].prefixed("down_\(i).convs")) }
        for j in 0..<4 {
            gradients.merge(upGradients[j].prefixed("upcat_\(4 - j).upsample.deconv"))
            gradients.merge(decoderGradients[j].prefixed("upcat_\(4 - j).convs"))
        }
        gradients.merge(h.gradients.prefixed("final_conv"))
        return gradients
    }
}

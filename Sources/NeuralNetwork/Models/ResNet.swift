import Tensors

/// torchvision's `BasicBlock`: two 3×3 convolutions (no bias) with normalisation, a shortcut, and ReLU after the sum,
/// `y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
///
/// The shortcut is the identity, or `downsample` = 1×1 convolution with the block's stride (no bias) + normalisation
/// when the stride is not 1 or the channel count changes. Shapes: input `[N, inputChannels, H, W]`, output
/// `[N, outputChannels, ⌈H/stride⌉, ⌈W/stride⌉]`. State_dict names as torchvision's: `conv1.weight`, `bn1.weight`,
/// `bn1.bias` (+ `bn1.running_mean`, `bn1.running_var` with batch norm), `conv2.*`, `bn2.*`, `downsample.0.weight`,
/// `downsample.1.*`.
public struct ResidualBlock: Module {
    public var conv1: Conv
    public var bn1: FeatureNorm
    public var conv2: Conv
    public var bn2: FeatureNorm
    public var downsample: (conv: Conv, norm: FeatureNorm)?

    /// - Parameter dimensions: 2 (`Conv2d`, `[N, C, H, W]`) or 3 (`Conv3d`, `[N, C, D, H, W]`).
    public init(
        dimensions: Int = 2, inputChannels: Int, outputChannels: Int, stride: Int = 1, norm: FeatureNorm.Kind,
        generator: inout SeededGenerator
    ) {
        conv1 = Conv(
            dimensions: dimensions, inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: 3,
            stride: stride, padding: 1, bias: false, generator: &generator)
        bn1 = FeatureNorm(norm, channels: outputChannels)
        conv2 = Conv(
            dimensions: dimensions, inputChannels: outputChannels, outputChannels: outputChannels, kernelSize: 3,
            padding: 1, bias: false, generator: &generator)
        bn2 = FeatureNorm(norm, channels: outputChannels)
        if stride != 1 || inputChannels != outputChannels {
            downsample = (
                Conv(
                    dimensions: dimensions, inputChannels: inputChannels, outputChannels: outputChannels,
                    kernelSize: 1, stride: stride, bias: false, generator: &generator),
                FeatureNorm(norm, channels: outputChannels)
            )
        }
    }

    public var parameters: NamedTensors {
        var p = conv1.parameters.prefixed("conv1")
        p.merge(bn1.parameters.prefixed("bn1"))
        p.merge(conv2.parameters.prefixed("conv2"))
        p.merge(bn2.parameters.prefixed("bn2"))
        if let downsample {
            p.merge(downsample.conv.parameters.prefixed("downsample.0"))
            p.merge(downsample.norm.parameters.prefixed("downsample.1"))
        }
        return p
    }

    public var buffers: NamedTensors {
        var b = bn1.buffers.prefixed("bn1")
        b.merge(bn2.buffers.prefixed("bn2"))
        if let downsample { b.merge(downsample.norm.buffers.prefixed("downsample.1")) }
        return b
    }

    /// `bn1.*`, `bn2.*` and `downsample.1.*`.
    public var normalizationVariables: [String] {
        bn1.normalizationVariables(prefixed: "bn1") + bn2.normalizationVariables(prefixed: "bn2")
            + (downsample?.norm.normalizationVariables(prefixed: "downsample.1") ?? [])
    }

    public mutating func update(parameters state: NamedTensors) throws {
        try conv1.update(parameters: state.scoped("conv1"))
        try bn1.update(parameters: state.scoped("bn1"))
        try conv2.update(parameters: state.scoped("conv2"))
        try bn2.update(parameters: state.scoped("bn2"))
        if var d = downsample {
            try d.conv.update(parameters: state.scoped("downsample.0"))
            try d.norm.update(parameters: state.scoped("downsample.1"))
            downsample = d
        }
    }

    /// Activations kept for the backward pass.
    public struct Cache: Sendable {
        var input: Tensor
        var norm1: NormalizationCache
        var hidden: Tensor
        var norm2: NormalizationCache
        var shortcutNorm: NormalizationCache?
        var output: Tensor
    }

    /// `training` selects batch statistics (and moves batch norm's running statistics).
    public mutating func forward(_ input: Tensor, training: Bool) -> (output: Tensor, cache: Cache) {
        let a = bn1.forward(conv1.forward(input).output, training: training)
        let hidden = Activation.relu(a.output)
        let b = bn2.forward(conv2.forward(hidden).output, training: training)
        var y = b.output
        var shortcutNorm: NormalizationCache?
        if var d = downsample {
            let s = d.norm.forward(d.conv.forward(input).output, training: training)
            downsample = d
            shortcutNorm = s.cache
            y.add(s.output)
        } else {
            y.add(input)
        }
        Activation.applyReLU(&y)
        return (
            y,
            Cache(
                input: input, norm1: a.cache, hidden: hidden, norm2: b.cache, shortcutNorm: shortcutNorm,
                output: y)
        )
    }

    public func backward(_ gradOutput: Tensor, cache: Cache) -> (input: Tensor?, gradients: NamedTensors) {
        let g = Activation.reluBackward(gradOutput, output: cache.output)
        let n2 = bn2.backward(g, cache: cache.norm2)
        let c2 = conv2.backward(n2.input!, cache: cache.hidden)
        var gh = c2.input!
        Activation.applyReLUBackward(&gh, output: cache.hidden)
        let n1 = bn1.backward(gh, cache: cache.norm1)
        let c1 = conv1.backward(n1.input!, cache: cache.input)
        var gradients = c1.gradients.prefixed("conv1")
        gradients.merge(n1.gradients.prefixed("bn1"))
        gradients.merge(c2.gradients.prefixed("conv2"))
        gradients.merge(n2.gradients.prefixed("bn2"))
        var gx = c1.input
        if let downsample, let shortcutNorm = cache.shortcutNorm {
            let sn = downsample.norm.backward(g, cache: shortcutNorm)
            let sc = downsample.conv.backward(sn.input!, cache: cache.input)
            gradients.merge(sc.gradients.prefixed("downsample.0"))
            gradients.merge(sn.gradients.prefixed("downsample.1"))
            if gx != nil, let s = sc.input { gx!.add(s) }
        } else if gx != nil {
            gx!.add(g)
        }
        return (gx, gradients)
    }
}

/// A small ResNet-style 2-D classifier (torchvision's `ResNet` layout with a CIFAR-style stem):
/// `conv1` 3×3 stride 1 (no bias) → `bn1` → ReLU → `layer1 … layerK` of `BasicBlock`s (the first block of every
/// stage after the first has stride 2 and a `downsample` shortcut) → global average pool → `fc` (Linear).
///
/// Shapes: input `[N, inputChannels, H, W]` (any H, W ≥ 1), output logits `[N, classes]`. State_dict names as
/// torchvision's (`conv1.weight`, `bn1.running_mean`, `layer2.0.downsample.0.weight`, `fc.bias`); PyTorch's int64
/// `num_batches_tracked` counters are not kept (they only matter for `momentum=None`; PyTorch fills them in when a
/// state_dict lacks them, so Tessera's checkpoints load with `strict=True`). With `norm: .instance` the
/// norms are affine instance norms under the same names (torchvision's `norm_layer` option).
/// Initialisation: convolutions and `fc` as PyTorch's defaults (uniform ±1/√fanIn), norms γ = 1, β = 0.
public struct ResNet: Module {
    public var conv1: Conv
    public var bn1: FeatureNorm
    /// `layers[i]` is PyTorch's `layer{i+1}`.
    public var layers: [[ResidualBlock]]
    public var fc: Linear

    /// - Parameters:
    ///   - widths: output channels of each stage (`layer1`, `layer2`, …); the stem has `widths[0]` channels.
    ///   - blocks: residual blocks per stage (same count as `widths`).
    ///   - norm: batch (torchvision's default) or instance normalisation.
    ///   - dimensions: 2, or 3 for the 3-D variant (every `Conv2d`/`BatchNorm2d` a `Conv3d`/`BatchNorm3d`, same
    ///     names; input `[N, inputChannels, D, H, W]`).
    public init(
        dimensions: Int = 2, inputChannels: Int = 1, classes: Int = 2, widths: [Int] = [16, 32, 64],
        blocks: [Int] = [1, 1, 1], norm: FeatureNorm.Kind = .batch, generator: inout SeededGenerator
    ) {
        precondition(!widths.isEmpty && widths.count == blocks.count && blocks.allSatisfy { $0 > 0 })
        precondition(dimensions == 2 || dimensions == 3)
        conv1 = Conv(
            dimensions: dimensions, inputChannels: inputChannels, outputChannels: widths[0], kernelSize: 3,
            padding: 1, bias: false, generator: &generator)
        conv1.computesInputGradient = false
        bn1 = FeatureNorm(norm, channels: widths[0])
        var layers: [[ResidualBlock]] = []
        var previous = widths[0]
        for (stage, (width, count)) in zip(widths, blocks).enumerated() {
            var stageBlocks: [ResidualBlock] = []
            for b in 0..<count {
                stageBlocks.append(
                    ResidualBlock(
                        dimensions: dimensions, inputChannels: previous, outputChannels: width,
                        stride: stage > 0 && b == 0 ? 2 : 1, norm: norm,
                        generator: &generator))
                previous = width
            }
            layers.append(stageBlocks)
        }
        self.layers = layers
        fc = Linear(inputFeatures: previous, outputFeatures: classes, generator: &generator)
    }

    public var parameters: NamedTensors {
        var p = conv1.parameters.prefixed("conv1")
        p.merge(bn1.parameters.prefixed("bn1"))
        for (i, stage) in layers.enumerated() {
            for (j, block) in stage.enumerated() { p.merge(block.parameters.prefixed("layer\(i + 1).\(j)")) }
        }
        p.merge(fc.parameters.prefixed("fc"))
        return p
    }

    public var buffers: NamedTensors {
        var b = bn1.buffers.prefixed("bn1")
        for (i, stage) in layers.enumerated() {
            for (j, block) in stage.enumerated() { b.merge(block.buffers.prefixed("layer\(i + 1).\(j)")) }
        }
        return b
    }

    /// The stem's `bn1.*` and every block's norms (`layer1.0.bn1.weight`, …).
    public var normalizationVariables: [String] {
        var names = bn1.normalizationVariables(prefixed: "bn1")
        for (i, stage) in layers.enumerated() {
            for (j, block) in stage.enumerated() {
                names += block.normalizationVariables(prefixed: "layer\(i + 1).\(j)")
            }
        }
        return names
    }

    public mutating func update(parameters state: NamedTensors) throws {
        try conv1.update(parameters: state.scoped("conv1"))
        try bn1.update(parameters: state.scoped("bn1"))
        for i in layers.indices {
            for j in layers[i].indices { try layers[i][j].update(parameters: state.scoped("layer\(i + 1).\(j)")) }
        }
        try fc.update(parameters: state.scoped("fc"))
    }

    /// Everything the backward pass needs.
    public struct Trace: Sendable {
        var input: Tensor
        var stemNorm: NormalizationCache
        var stemOutput: Tensor
        var blocks: [[ResidualBlock.Cache]]
        var pooledShape: [Int]
        var features: Tensor
    }

    /// Logits `[N, classes]` and the trace for `backward`. `training` selects batch statistics (batch norm's running
    /// statistics move, as PyTorch's `model.train()`); evaluation uses the running statistics.
    /// - Throws: `NeuralNetworkError.shapeMismatch` unless the input is `[batch, inputChannels, H, W]`.
    public mutating func forward(_ input: Tensor, training: Bool) throws -> (output: Tensor, trace: Trace) {
        let channels = conv1.weight.shape[1]
        let rank = conv1.weight.rank
        guard input.rank == rank, input.batch > 0, input.channels == channels, input.spatialCount > 0 else {
            throw NeuralNetworkError(
                .shapeMismatch,
                "ResNet expects [batch, \(channels), \(rank == 5 ? "depth, " : "")height, width], got "
                    + "\(input.shape)")
        }
        let s = bn1.forward(conv1.forward(input).output, training: training)
        var x = Activation.relu(s.output)
        let stemOutput = x
        var caches: [[ResidualBlock.Cache]] = []
        for i in layers.indices {
            var stage: [ResidualBlock.Cache] = []
            for j in layers[i].indices {
                let r = layers[i][j].forward(x, training: training)
                stage.append(r.cache)
                x = r.output
            }
            caches.append(stage)
        }
        let features = GlobalAvgPool().forward(x).output
        let trace = Trace(
            input: input, stemNorm: s.cache, stemOutput: stemOutput, blocks: caches,
            pooledShape: x.shape, features: features)
        return (fc.forward(features).output, trace)
    }

    /// `∂L/∂parameter` for every parameter (same names and order as `parameters`) from `∂L/∂logits`.
    public func backward(_ gradOutput: Tensor, trace: Trace) -> NamedTensors {
        let f = fc.backward(gradOutput, cache: trace.features)
        var g = GlobalAvgPool().backward(f.input!, cache: trace.pooledShape).input!
        var blockGradients: [[NamedTensors]] = layers.map { Array(repeating: NamedTensors(), count: $0.count) }
        for i in layers.indices.reversed() {
            for j in layers[i].indices.reversed() {
                let r = layers[i][j].backward(g, cache: trace.blocks[i][j])
                blockGradients[i][j] = r.gradients
                g = r.input!
            }
        }
        Activation.applyReLUBackward(&g, output: trace.stemOutput)
        let n = bn1.backward(g, cache: trace.stemNorm)
        let c = conv1.backward(n.input!, cache: trace.input)
        var gradients = c.gradients.prefixed("conv1")
        gradients.merge(n.gradients.prefixed("bn1"))
        for (i, stage) in blockGradients.enumerated() {
            for (j, b) in stage.enumerated() { gradients.merge(b.prefixed("layer\(i + 1).\(j)")) }
        }
        gradients.merge(f.gradients.prefixed("fc"))
        return gradients
    }
}

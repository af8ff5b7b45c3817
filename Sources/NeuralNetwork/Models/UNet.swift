import Tensors

/// The reference U-Net of `../shared/bench/torch_reference.py` (`UNet(dims, enc, bottleneck, ncls)`), 2-D or 3-D.
///
/// - encoder level i: `DoubleConv(c[i−1], c[i])` (c[−1] = input channels), max-pool 2 before every level but the
///   first;
/// - bottleneck: max-pool 2, `DoubleConv(c.last, bottleneck)`;
/// - decoder level j (deepest first): `ConvTranspose(kernel 2, stride 2)` to c[i], concat `[skip, up]` on channels,
///   `DoubleConv(2·c[i], c[i])`;
/// - head: 1×1 convolution to `classes` logits.
///
/// Shapes: input `[N, inputChannels, (D,) H, W]` with every spatial extent divisible by 2^levels, output
/// `[N, classes, (D,) H, W]`. State_dict names as PyTorch's: `enc.0.c1.weight`, `bott.c2.bias`, `ups.0.weight`,
/// `dec.3.c1.weight`, `head.bias`. `unet2d` is `UNet(dimensions: 2, encoderChannels: [16, 32, 64, 128],
/// bottleneckChannels: 256, classes: 2)`; `unet3d` the same with 3, `[8, 16, 32]`, 64.
public struct UNet: Module {
    public let dimensions: Int
    public var enc: [DoubleConv]
    public var bott: DoubleConv
    public var ups: [ConvTranspose]
    public var dec: [DoubleConv]
    public var head: Conv
    let pool: MaxPool
    /// Channels of the input (`[N, inputChannels, (D,) H, W]`), from the first convolution's weight.
    public var inputChannels: Int { enc[0].c1.weight.shape[1] }

    /// Initialised as PyTorch's defaults (uniform ±1/√fanIn) from `generator`, in PyTorch's construction order
    /// (the values differ from PyTorch's generator; load PyTorch weights for identical starts).
    /// - Parameter normalization: `.none` is the reference spec; `.instance` adds an affine instance norm after every
    ///   3×3 convolution of every `DoubleConv` (names `….n1.weight` etc., Tessera's own).
    public init(
        dimensions: Int, inputChannels: Int = 1, encoderChannels: [Int], bottleneckChannels: Int,
        classes: Int, normalization: DoubleConv.Normalization = .none, generator: inout SeededGenerator
    ) {
        precondition(!encoderChannels.isEmpty && (2...3).contains(dimensions))
        self.dimensions = dimensions
        var enc: [DoubleConv] = []
        var previous = inputChannels
        for c in encoderChannels {
            enc.append(
                DoubleConv(
                    dimensions: dimensions, inputChannels: previous, outputChannels: c,
                    normalization: normalization, generator: &generator))
            previous = c
        }
        enc[0].c1.computesInputGradient = false
        self.enc = enc
        bott = DoubleConv(
            dimensions: dimensions, inputChannels: previous, outputChannels: bottleneckChannels,
            normalization: normalization, generator: &generator)
        var ups: [ConvTranspose] = []
        var dec: [DoubleConv] = []
        previous = bottleneckChannels
        for c in encoderChannels.reversed() {
            ups.append(
                ConvTranspose(
                    dimensions: dimensions, inputChannels: previous, outputChannels: c,
                    generator: &generator))
            dec.append(
                DoubleConv(
                    dimensions: dimensions, inputChannels: 2 * c, outputChannels: c,
                    normalization: normalization, generator: &generator))
            previous = c
        }
        self.ups = ups
        self.dec = dec
        head = Conv(
            dimensions: dimensions, inputChannels: previous, outputChannels: classes, kernelSize: 1,
            generator: &generator)
        pool = MaxPool(dimensions: dimensions, kernelSize: 2)
    }

    /// The benchmark's `unet2d`.
    public static func unet2d(generator: inout SeededGenerator) -> UNet {
        UNet(
            dimensions: 2, encoderChannels: [16, 32, 64, 128], bottleneckChannels: 256, classes: 2,
            generator: &generator)
    }

    /// The benchmark's `unet3d`.
    public static func unet3d(generator: inout SeededGenerator) -> UNet {
        UNet(dimensions: 3, encoderChannels: [8, 16, 32], bottleneckChannels: 64, classes: 2, generator: &generator)
    }

    public var parameters: NamedTensors {
        var p = NamedTensors()
        for (i, e) in enc.enumerated() { p.merge(e.parameters.prefixed("enc.\(i)")) }
        p.merge(bott.parameters.prefixed("bott"))
        for (i, u) in ups.enumerated() { p.merge(u.parameters.prefixed("ups.\(i)")) }
        for (i, d) in dec.enumerated() { p.merge(d.parameters.prefixed("dec.\(i)")) }
        p.merge(head.parameters.prefixed("head"))
        return p
    }

    /// The instance norms of every `DoubleConv` (`enc.0.n1.weight`, …); empty without normalisation.
    public var normalizationVariables: [String] {
        var names: [String] = []
        for (i, e) in enc.enumerated() { names += e.normalizationVariables(prefixed: "enc.\(i)") }
        names += bott.normalizationVariables(prefixed: "bott")
        for (i, d) in dec.enumerated() { names += d.normalizationVariables(prefixed: "dec.\(i)") }
        return names
    }

    public mutating func update(parameters state: NamedTensors) throws {
        for i in enc.indices { try enc[i].update(parameters: state.scoped("enc.\(i)")) }
        try bott.update(parameters: state.scoped("bott"))
        for i in ups.indices { try ups[i].update(parameters: state.scoped("ups.\(i)")) }
        for i in dec.indices { try dec[i].update(parameters: state.scoped("dec.\(i)")) }
        try head.update(parameters: state.scoped("head"))
    }

    /// Everything the backward pass needs.
    public struct Trace: Sendable {
        var encoder: [DoubleConv.Cache] = []
        var pools: [MaxPool.Cache] = []
        var bottleneck: DoubleConv.Cache?
        var upInputs: [Tensor] = []
        var decoder: [DoubleConv.Cache] = []
        var headInput: Tensor?
    }

    /// Checks that `shape` is `[batch, inputChannels, (D,) H, W]` with every spatial extent a positive multiple of
    /// 2^levels (each level halves it; odd extents cannot be concatenated with their skip connection).
    /// - Throws: `NeuralNetworkError.shapeMismatch` saying what to change.
    public func validate(inputShape shape: [Int]) throws {
        let channels = enc[0].c1.weight.shape[1]
        guard shape.count == dimensions + 2, shape[0] > 0, shape[1] == channels else {
            throw NeuralNetworkError(
                .shapeMismatch,
                "UNet (\(dimensions)-D, \(channels) input channels) expects "
                    + "[batch, \(channels), \(dimensions == 3 ? "depth, " : "")height, width], got \(shape)")
        }
        let factor = 1 << enc.count
        guard shape.dropFirst(2).allSatisfy({ $0 > 0 && $0 % factor == 0 }) else {
            throw NeuralNetworkError(
                .shapeMismatch,
                "UNet with \(enc.count) pooling levels needs spatial extents "
                    + "that are multiples of \(factor), got \(Array(shape.dropFirst(2))): pad or crop the input")
        }
    }

    /// Logits `[N, classes, spatial…]` and the trace for `backward`.
    /// - Throws: `NeuralNetworkError.shapeMismatch` when the input does not fit (see `validate(inputShape:)`).
    public func forward(_ input: Tensor) throws -> (output: Tensor, trace: Trace) {
        try validate(inputShape: input.shape)
        var trace = Trace()
        var x = input
        var skips: [Tensor] = []
        for (i, block) in enc.enumerated() {
            if i > 0 {
                let p = pool.forward(x)
                trace.pools.append(p.cache)
                x = p.output
            }
            let r = block.forward(x)
            trace.encoder.append(r.cache)
            x = r.output
            skips.append(x)
        }
        let p = pool.forward(x)
        trace.pools.append(p.cache)
        let b = bott.forward(p.output)
        trace.bottleneck = b.cache
        x = b.output
        for j in ups.indices {
            trace.upInputs.append(x)
            let up = ups[j].forward(x).output
            let r = dec[j].forward(ChannelConcat.forward([skips[skips.count - 1 - j], up]))
            trace.decoder.append(r.cache)
            x = r.output
        }
        trace.headInput = x
        return (head.forward(x).output, trace)
    }

    /// `∂L/∂parameter` for every parameter (same names as `parameters`) from `∂L/∂logits`.
    public func backward(_ gradOutput: Tensor, trace: Trace) -> NamedTensors {
        var grads = NamedTensors()
        var decGrads: [NamedTensors] = Array(repeating: NamedTensors(), count: dec.count)
        var upGrads: [NamedTensors] = Array(repeating: NamedTensors(), count: ups.count)
        var encGrads: [NamedTensors] = Array(repeating: NamedTensors(), count: enc.count)
        let h = head.backward(gradOutput, cache: trace.headInput!)
        var g = h.input!
        var skipGrads: [Tensor?] = Array(repeating: nil, count: enc.count)
        for j in dec.indices.reversed() {
            let d = dec[j].backward(g, cache: trace.decoder[j])
            decGrads[j] = d.gradients
            let skipIndex = enc.count - 1 - j
            let c = enc[skipIndex].c2.weight.shape[0]
            let parts = ChannelConcat.backward(d.input!, channels: [c, c])
            skipGrads[skipIndex] = parts[0]
            let u = ups[j].backward(parts[1], cache: trace.upInputs[j])
            upGrads[j] = u.gradients
            g = u.input!
        }
        let b = bott.backward(g, cache: trace.bottleneck!)
        g = pool.backward(b.input!, cache: trace.pools[enc.count - 1]).input!
        for i in enc.indices.reversed() {
            g.add(skipGrads[i]!)
            let e = enc[i].backward(g, cache: trace.encoder[i])
            encGrads[i] = e.gradients
            if i > 0 { g = pool.backward(e.input!, cache: trace.pools[i - 1]).input! }
        }
        for (i, e) in encGrads.enumerated() { grads.merge(e.prefixed("enc.\(i)")) }
        grads.merge(b.gradients.prefixed("bott"))
        for (i, u) in upGrads.enumerated() { grads.merge(u.prefixed("ups.\(i)")) }
        for (i, d) in decGrads.enumerated() { grads.merge(d.prefixed("dec.\(i)")) }
        grads.merge(h.gradients.prefixed("head"))
        return grads
    }
}

import CTensorKernels

/// Which lowering `Convolution` uses for a layer.
public enum ConvolutionAlgorithm: Sendable, Hashable {
    /// Winograd (see `WinogradConvolution.prefersWinograd`) and the direct SIMD kernels (see
    /// `DirectConvolution.prefersDirect`) where they are measured to win, im2col + sgemm elsewhere.
    case automatic
    /// Always im2col + sgemm (the general path).
    case im2col
    /// The direct kernels wherever they apply (3×3 or 3×3×3, stride 1, padding 1), im2col + sgemm elsewhere.
    case direct
    /// Winograd F(2×2, 3×3) for `∂x` and the forward pass wherever it applies (2-D 3×3, stride 1, padding 1, even
    /// extents), the direct kernels for `∂W` and the other 3×3(×3) layers, im2col + sgemm elsewhere.
    case winograd
}

/// Direct convolution for the U-Net's 3×3 (2-D) and 3×3×3 (3-D) stride-1, padding-1 layers: the C kernels of
/// `CTensorKernels` (vector registers hold a block of 4 output channels × 64 output columns across every input
/// channel and tap), instead of im2col + sgemm, whose GEMMs are skinny (16–32 rows) and memory-bound for the
/// small-channel layers.
///
/// Layouts: input `[N, Cin, (D,) H, W]`, weight `[Cout, Cin, (3,) 3, 3]`, output `[N, Cout, (D,) H, W]`. Each
/// worker copies one image at a time into a zero-padded buffer (`[Cin, D + 2 (3-D only), H + 2, ⌈W/16⌉·16 + 16]`, the
/// image at offset (1, 1, 1)) so that the kernels need no bounds checks.
public enum DirectConvolution {
    /// Whether the direct kernels can compute this convolution at all.
    static func supports(_ geometry: ConvolutionGeometry) -> Bool {
        (2...3).contains(geometry.dimensions) && geometry.kernelSize.allSatisfy { $0 == 3 }
            && geometry.stride.allSatisfy { $0 == 1 } && geometry.padding.allSatisfy { $0 == 1 }
    }

    /// Whether `Convolution` takes the direct path for this layer under `algorithm`.
    /// - Parameters:
    ///   - inputChannels, outputChannels: `Cin`, `Cout` of the convolution as computed (for `∂x` through the flipped
    ///     kernel, `Cout` of the layer is the input side).
    ///   - spatial: input extents `[(D,) H, W]`.
    static func uses(
        _ geometry: ConvolutionGeometry, inputChannels: Int, outputChannels: Int, spatial: [Int],
        algorithm: ConvolutionAlgorithm
    ) -> Bool {
        guard supports(geometry) else { return false }
        switch algorithm {
        case .im2col: return false
        case .direct, .winograd: return true
        case .automatic:
            return prefersDirect(
                inputChannels: inputChannels, outputChannels: outputChannels,
                spatial: spatial)
        }
    }

    /// The measured rule, for the forward kernel, `∂x` (a forward convolution of `∂y`) and `∂W` alike: direct wins
    /// from rows of 16 columns up at every channel count of the U-Nets (forward 200–225 GFLOP/s against sgemm's
    /// 90–160 without the im2col copy; `∂W` 150–210 against 20–150); at 8 columns half of every vector is padding
    /// and sgemm is as fast or faster. CPU time on one core (AMD EPYC, AVX-512), see Benchmarks/results.
    static func prefersDirect(inputChannels: Int, outputChannels: Int, spatial: [Int]) -> Bool {
        guard let width = spatial.last else { return false }
        return width >= 16
    }

    /// Forward pass of the direct kernels; `relu` applies `max(·, 0)` after the bias, and a `mask` (shape of the
    /// output) multiplies the result by `[mask > 0]` (a ReLU backward fused into `∂x`). Shapes as `Convolution`.
    static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?, relu: Bool, mask: Tensor? = nil) -> Tensor {
        let (n, cin, cout) = (input.batch, input.channels, weight.shape[0])
        let spatial = input.spatialShape
        let (d, h, w) = extents3(spatial)
        let threeD: Int32 = spatial.count == 3 ? 1 : 0
        let inCount = cin * input.spatialCount
        let outCount = cout * input.spatialCount
        let paddedCount = tk_conv3_padded_count(Int32(cin), Int32(d), Int32(h), Int32(w), threeD)
        var output = Tensor(uninitialized: [n, cout] + spatial)
        input.storage.withUnsafeBufferPointer { xb in
            weight.storage.withUnsafeBufferPointer { wb in
                bias.withUnsafeBufferPointer { bb in
                    mask.withUnsafeBufferPointer { mb in
                        output.storage.withUnsafeMutableBufferPointer { yb in
                            let (x, wt, y) = (xb.baseAddress!, wb.baseAddress!, yb.baseAddress!)
                            Parallelism.forEachWorker(items: n) { worker, workers in
                                ScratchBuffers.with(floats: paddedCount) { padded in
                                    for b in stride(from: worker, to: n, by: workers) {
                                        tk_conv3_pad(
                                            x + b * inCount, Int32(cin), Int32(d), Int32(h), Int32(w), threeD, padded)
                                        tk_conv3_forward(
                                            padded, Int32(cin), Int32(d), Int32(h), Int32(w), threeD, wt,
                                            Int32(cout), bb, relu ? 1 : 0, mb.map { $0 + b * outCount },
                                            y + b * outCount)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    /// `∂L/∂W` (`[Cout, Cin, (3,) 3, 3]`) from `gradOutput` `[N, Cout, (D,) H, W]` and the layer's input, one
    /// partial sum per worker added at the end. 2-D images with fewer rows than the kernel's row block
    /// (`tk_conv3_gradient_block_rows`: 64 rows of 16 columns) go in stacks of up to `group` images per call, as the
    /// planes of one call (the kernel treats the planes of a 2-D layer independently), with their ∂y stacked to
    /// match: a single 16 × 16 image spent a third of the kernel's time on its lane sums.
    static func weightGradient(_ gradOutput: Tensor, input: Tensor, weightShape: [Int]) -> Tensor {
        let (n, cin, cout) = (input.batch, input.channels, weightShape[0])
        let spatial = input.spatialShape
        let (d, h, w) = extents3(spatial)
        let threeD: Int32 = spatial.count == 3 ? 1 : 0
        let inCount = cin * input.spatialCount
        let outCount = cout * input.spatialCount
        let weightCount = weightShape.reduce(1, *)
        let workers = max(1, min(Parallelism.threads, n))
        let perWorker = (n + workers - 1) / workers
        let blockRows = Int(tk_conv3_gradient_block_rows(Int32(w)))
        let group = threeD == 0 ? max(1, min(blockRows / h, perWorker)) : 1
        let paddedCount = tk_conv3_padded_count(Int32(cin), Int32(d), Int32(h), Int32(w), threeD)
        let scratchCount = tk_conv3_gradient_scratch_count(Int32(cout), Int32(d), Int32(h), Int32(w))
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: workers * weightCount)
        partial.initialize(repeating: 0, count: workers * weightCount)
        defer { partial.deallocate() }
        input.storage.withUnsafeBufferPointer { xb in
            gradOutput.storage.withUnsafeBufferPointer { gb in
                let (x, gy) = (xb.baseAddress!, gb.baseAddress!)
                // The ∂y scratch is only used for rows that are not a multiple of 16 wide.
                let scratchCount = w % 16 == 0 ? 0 : scratchCount * group
                let plane = paddedCount / cin  // one channel of one padded image
                let pixels = input.spatialCount
                Parallelism.forEachWorker(items: n) { worker, workers in
                    let mine = Array(stride(from: worker, to: n, by: workers))
                    ScratchBuffers.with(floats: paddedCount * group) { padded in
                        ScratchBuffers.with(floats: scratchCount) { scratch in
                            ScratchBuffers.with(floats: group > 1 ? outCount * group : 0) { stacked in
                                for first in stride(from: 0, to: mine.count, by: group) {
                                    let images = mine[first..<min(first + group, mine.count)]
                                    let g = images.count
                                    let dy: UnsafePointer<Float>
                                    if g == 1 {
                                        tk_conv3_pad(
                                            x + images[first] * inCount, Int32(cin), Int32(d), Int32(h), Int32(w),
                                            threeD, padded)
                                        dy = gy + images[first] * outCount
                                    } else {
                                        // [Cin][g images] padded planes and [Cout][g images][H][W] ∂y.
                                        for (k, b) in images.enumerated() {
                                            for c in 0..<cin {
                                                tk_conv3_pad(
                                                    x + b * inCount + c * pixels, 1, 1, Int32(h), Int32(w), 0,
                                                    padded + (c * g + k) * plane)
                                            }
                                            for o in 0..<cout {
                                                (stacked + (o * g + k) * pixels).update(
                                                    from: gy + b * outCount + o * pixels, count: pixels)
                                            }
                                        }
                                        dy = UnsafePointer(stacked)
                                    }
                                    tk_conv3_weight_gradient(
                                        padded, Int32(cin), Int32(d * g), Int32(h), Int32(w), threeD,
                                        dy, Int32(cout), partial + worker * weightCount, scratch)
                                }
                            }
                        }
                    }
                }
            }
        }
        var gradWeight = Tensor(zeros: weightShape)
        gradWeight.storage.withUnsafeMutableBufferPointer { gw in
            for worker in 0..<workers {
                let src = partial + worker * weightCount
                for i in 0..<weightCount { gw[i] += src[i] }
            }
        }
        return gradWeight
    }
}

extension Optional where Wrapped == Tensor {
    /// Calls `body` with the elements' base address, or nil for a nil tensor.
    func withUnsafeBufferPointer<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .none: return body(nil)
        case .some(let t): return t.storage.withUnsafeBufferPointer { body($0.baseAddress) }
        }
    }
}

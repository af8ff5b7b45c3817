import CTensorKernels

/// Winograd F(2×2, 3×3) for 2-D 3×3 stride-1 padding-1 convolutions with many channels (the U-Net's deeper
/// layers): each 2×2 block of outputs takes 16 multiplications per input channel instead of 36. The input and the
/// output are transformed tile by tile in C (`tk_wino2_*`), and the 16 channel sums are 16 sgemm calls over every
/// tile of the batch (`[Cout, Cin] · [Cin, N·tiles]`). Only taken on request (`ConvolutionAlgorithm.winograd`):
/// see `prefersWinograd` for why `.automatic` does not.
///
/// Accuracy: the transforms add and halve (no division by 3 or 6 as F(4×4, 3×3) would), so the results differ from
/// direct summation by a few units in the last place of the largest partial sums; every test compares them with the
/// naive reference at the project's default rtol 1e-4 / atol 1e-5.
public enum WinogradConvolution {
    /// Whether the transforms can compute this convolution at all (2-D, 3×3, stride 1, padding 1, even extents).
    static func supports(_ geometry: ConvolutionGeometry, spatial: [Int]) -> Bool {
        geometry.dimensions == 2 && geometry.kernelSize == [3, 3] && geometry.stride == [1, 1]
            && geometry.padding == [1, 1] && spatial.count == 2
            && tk_wino2_supports(Int32(spatial[0]), Int32(spatial[1])) != 0
    }

    /// Whether `Convolution` takes Winograd for this layer under `algorithm` (`Cin`, `Cout` as computed: for `∂x`
    /// through the flipped kernel, the layer's `Cout` is the input side).
    static func uses(
        _ geometry: ConvolutionGeometry, inputChannels: Int, outputChannels: Int, spatial: [Int],
        algorithm: ConvolutionAlgorithm
    ) -> Bool {
        guard supports(geometry, spatial: spatial) else { return false }
        switch algorithm {
        case .im2col, .direct: return false
        case .winograd: return true
        case .automatic: return prefersWinograd(inputChannels: inputChannels, outputChannels: outputChannels)
        }
    }

    /// `.automatic` does not take Winograd: measured with `tessera-bench conv-layers --compare direct,winograd` (one
    /// core, AMD EPYC with AVX-512, CPU time) it is slower than the direct kernels on every U-Net layer from 16
    /// columns up (e.g. 128→128 @ 16²: 3.1 against 2.9 ms forward; 16→16 @ 128²: 9.6 against 3.3 ms) and than
    /// im2col + sgemm on the 8² layers (256→256: 5.5 against 4.1 ms). The direct kernels run near the core's peak,
    /// and here the separate transform passes (`tk_wino2_input`/`_output`, about as long as the GEMMs) and sgemm's
    /// packing of the transformed tiles eat the 2.25× saving in multiplications. A Winograd path that wins needs
    /// the transforms fused into its own GEMM micro-kernel; kept as `ConvolutionAlgorithm.winograd` (tested) for that.
    static func prefersWinograd(inputChannels: Int, outputChannels: Int) -> Bool {
        false
    }

    /// Forward pass, shapes as `Convolution.forward`; `relu` applies `max(·, 0)` after the bias and `mask` (shape of
    /// the output) multiplies by `[mask > 0]`, as `DirectConvolution.forward`.
    static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?, relu: Bool, mask: Tensor? = nil) -> Tensor {
        let (n, cin, cout) = (input.batch, input.channels, weight.shape[0])
        let (h, w) = (input.shape[2], input.shape[3])
        let tiles = (h / 2) * (w / 2)
        let allTiles = n * tiles
        let plane = h * w
        var u = [Float](unsafeUninitializedCapacity: 16 * cout * cin) { _, count in count = 16 * cout * cin }
        weight.storage.withUnsafeBufferPointer { wb in
            u.withUnsafeMutableBufferPointer { ub in
                guard let wp = wb.baseAddress, let up = ub.baseAddress else { return }
                tk_wino2_weights(wp, Int32(cout), Int32(cin), up)
            }
        }
        var output = Tensor(uninitialized: [n, cout, h, w])
        let biasValues = bias?.storage
        input.storage.withUnsafeBufferPointer { xb in
            u.withUnsafeBufferPointer { ub in
                mask.withUnsafeBufferPointer { mp in
                    output.storage.withUnsafeMutableBufferPointer { yb in
                        guard let x = xb.baseAddress, let up = ub.baseAddress, let y = yb.baseAddress else { return }
                        ScratchBuffers.with(floats: 16 * cin * allTiles) { v in
                            ScratchBuffers.with(floats: 16 * cout * allTiles) { m in
                                Parallelism.forEachRange(count: n * cin, minimumPerWorker: 1) { planes in
                                    for p in planes {
                                        let (b, ci) = p.quotientAndRemainder(dividingBy: cin)
                                        tk_wino2_input(
                                            x + p * plane, Int32(h), Int32(w),
                                            v + ci * allTiles + b * tiles, cin * allTiles)
                                    }
                                }
                                Parallelism.forEachWorker(items: 16) { worker, workers in
                                    for xi in stride(from: worker, to: 16, by: workers) {
                                        BLAS.gemm(
                                            transposeA: false, transposeB: false, m: cout, n: allTiles, k: cin,
                                            a: up + xi * cout * cin, lda: cin, b: v + xi * cin * allTiles,
                                            ldb: allTiles, beta: 0, c: m + xi * cout * allTiles,
                                            ldc: allTiles)
                                    }
                                }
                                Parallelism.forEachRange(count: n * cout, minimumPerWorker: 1) { planes in
                                    for p in planes {
                                        let (b, co) = p.quotientAndRemainder(dividingBy: cout)
                                        tk_wino2_output(
                                            m + co * allTiles + b * tiles, cout * allTiles, Int32(h),
                                            Int32(w), biasValues?[co] ?? 0, relu ? 1 : 0,
                                            mp.map { $0 + p * plane }, y + p * plane)
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
}

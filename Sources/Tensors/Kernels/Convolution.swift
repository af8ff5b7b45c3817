/// 2-D and 3-D convolution (cross-correlation, as PyTorch's `conv2d`/`conv3d`) lowered to `im2col` + `sgemm`.
///
/// Forward: `y[n, o, p] = bias[o] + Σ_{i, t} weight[o, i, t] · x[n, i, p·stride − padding + t]`.
/// Shapes: input `[N, Cin, (D,) H, W]`, weight `[Cout, Cin, (kD,) kH, kW]`, bias `[Cout]`,
/// output `[N, Cout, (oD,) oH, oW]` with extents from `ConvolutionGeometry.convolutionOutput`.
public enum Convolution {
    /// Gradients of a convolution with respect to its input, weight and bias.
    public struct Gradients: Sendable {
        /// `∂L/∂x`, nil when not requested (e.g. the first layer).
        public var input: Tensor?
        public var weight: Tensor
        public var bias: Tensor?
    }

    /// Forward pass; `bias` may be nil. With `relu`, returns `relu(conv(x) + b)`, the bias and ReLU applied in one
    /// pass over each image's output while it is in cache.
    public static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvolutionGeometry,
                               relu: Bool = false) -> Tensor
    {
        let (n, cin, cout) = (input.batch, input.channels, weight.shape[0])
        precondition(input.rank == geometry.dimensions + 2 && weight.shape[1] == cin,
                     "convolution input \(input.shape) does not fit weight \(weight.shape)")
        let outSpatial = geometry.convolutionOutput(input.spatialShape)
        let plan = Im2col.Plan(channels: cin, input: input.spatialShape, output: outSpatial, geometry: geometry)
        let (k, p, inCount) = (plan.rows, plan.columns, cin * input.spatialCount)
        var output = Tensor(uninitialized: [n, cout] + outSpatial)
        let pointwise = geometry.isPointwise
        var columns = [Float](unsafeUninitializedCapacity: pointwise ? 0 : k * p) { _, c in c = pointwise ? 0 : k * p }
        input.storage.withUnsafeBufferPointer { x in
            weight.storage.withUnsafeBufferPointer { w in
                output.storage.withUnsafeMutableBufferPointer { y in
                    columns.withUnsafeMutableBufferPointer { col in
                        for b in 0..<n {
                            let image = x.baseAddress! + b * inCount
                            let cols: UnsafePointer<Float>
                            if pointwise {
                                cols = image
                            } else {
                                Im2col.im2col(plan, image: image, columns: col.baseAddress!)
                                cols = UnsafePointer(col.baseAddress!)
                            }
                            let out = y.baseAddress! + b * cout * p
                            BLAS.gemm(transposeA: false, transposeB: false, m: cout, n: p, k: k,
                                      a: w.baseAddress!, lda: k, b: cols, ldb: p, beta: 0, c: out, ldc: p)
                            if bias != nil || relu {
                                for o in 0..<cout {
                                    let row = out + o * p
                                    let v = bias?.storage[o] ?? 0
                                    if relu {
                                        for i in 0..<p { let t = row[i] + v; row[i] = t < 0 ? 0 : t }
                                    } else {
                                        for i in 0..<p { row[i] += v }
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

    /// Backward pass: gradients from `gradOutput` (shape of the forward output).
    /// - Parameter inputGradient: whether to compute `∂L/∂x` (false for a first layer saves a GEMM).
    public static func backward(_ gradOutput: Tensor, input: Tensor, weight: Tensor, hasBias: Bool,
                                geometry: ConvolutionGeometry, inputGradient: Bool = true) -> Gradients {
        let (n, cin, cout) = (input.batch, input.channels, weight.shape[0])
        let plan = Im2col.Plan(channels: cin, input: input.spatialShape, output: gradOutput.spatialShape,
                               geometry: geometry)
        let (k, p, inCount) = (plan.rows, plan.columns, cin * input.spatialCount)
        precondition(gradOutput.shape == [n, cout] + gradOutput.spatialShape && k == weight.count / cout)
        var gradWeight = Tensor(zeros: weight.shape)
        var gradBias = hasBias ? Tensor(zeros: [cout]) : nil
        let pointwise = geometry.isPointwise
        // Stride 1 (the common 3×3, padding 1 case): ∂x is itself a convolution of ∂y with the spatially flipped,
        // channel-transposed kernel and padding k − 1 − p; im2col (copies) beats col2im (scattered adds).
        let flipped = inputGradient && !pointwise && geometry.stride.allSatisfy { $0 == 1 }
            && zip(geometry.padding, geometry.kernelSize).allSatisfy { $0 <= $1 - 1 }
        if flipped {
            let g = backward(gradOutput, input: input, weight: weight, hasBias: hasBias, geometry: geometry,
                             inputGradient: false)
            return Gradients(input: flippedInputGradient(gradOutput, inputShape: input.shape, weight: weight,
                                                         geometry: geometry), weight: g.weight, bias: g.bias)
        }
        var gradInput = inputGradient ? (pointwise ? Tensor(uninitialized: input.shape) : Tensor(zeros: input.shape)) : nil
        var columns = [Float](unsafeUninitializedCapacity: pointwise ? 0 : k * p) { _, c in c = pointwise ? 0 : k * p }
        let gradColumnCount = inputGradient && !pointwise ? k * p : 0
        var gradColumns = [Float](unsafeUninitializedCapacity: gradColumnCount) { _, c in c = gradColumnCount }
        input.storage.withUnsafeBufferPointer { x in
            weight.storage.withUnsafeBufferPointer { w in
                gradOutput.storage.withUnsafeBufferPointer { gy in
                    gradWeight.storage.withUnsafeMutableBufferPointer { gw in
                        columns.withUnsafeMutableBufferPointer { col in
                            gradColumns.withUnsafeMutableBufferPointer { gcol in
                                for b in 0..<n {
                                    let image = x.baseAddress! + b * inCount
                                    let g = gy.baseAddress! + b * cout * p
                                    let cols: UnsafePointer<Float>
                                    if pointwise {
                                        cols = image
                                    } else {
                                        Im2col.im2col(plan, image: image, columns: col.baseAddress!)
                                        cols = UnsafePointer(col.baseAddress!)
                                    }
                                    // ∂W[Cout, K] += ∂Y[Cout, P] · colsᵀ[P, K]
                                    BLAS.gemm(transposeA: false, transposeB: true, m: cout, n: k, k: p,
                                              a: g, lda: p, b: cols, ldb: p, beta: 1, c: gw.baseAddress!, ldc: k)
                                    if inputGradient {
                                        gradInput!.storage.withUnsafeMutableBufferPointer { gx in
                                            let dst = gx.baseAddress! + b * inCount
                                            // ∂cols[K, P] = Wᵀ[K, Cout] · ∂Y[Cout, P]
                                            let target = pointwise ? dst : gcol.baseAddress!
                                            BLAS.gemm(transposeA: true, transposeB: false, m: k, n: p, k: cout,
                                                      a: w.baseAddress!, lda: k, b: g, ldb: p, beta: 0,
                                                      c: target, ldc: p)
                                            if !pointwise { Im2col.col2im(plan, columns: gcol.baseAddress!, image: dst) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if hasBias { gradBias = ChannelSums.sum(gradOutput) }
        return Gradients(input: gradInput, weight: gradWeight, bias: gradBias)
    }

    /// `∂x = conv(∂y, flip(W)ᵀ, padding k − 1 − p)` for stride-1 convolutions.
    static func flippedInputGradient(_ gradOutput: Tensor, inputShape: [Int], weight: Tensor,
                                     geometry: ConvolutionGeometry) -> Tensor {
        let (n, cin, cout) = (inputShape[0], inputShape[1], weight.shape[0])
        let taps = geometry.taps
        // W'[ci, co·K + t] = W[co, ci, K − 1 − t]
        var flippedWeight = [Float](repeating: 0, count: weight.count)
        weight.storage.withUnsafeBufferPointer { w in
            for co in 0..<cout {
                for ci in 0..<cin {
                    let src = (co * cin + ci) * taps, dst = ci * cout * taps + co * taps
                    for t in 0..<taps { flippedWeight[dst + t] = w[src + taps - 1 - t] }
                }
            }
        }
        let inputSpatial = Array(inputShape.dropFirst(2))
        let adjoint = ConvolutionGeometry(kernelSize: geometry.kernelSize, stride: geometry.stride,
                                          padding: zip(geometry.kernelSize, geometry.padding).map { $0 - 1 - $1 })
        let plan = Im2col.Plan(channels: cout, input: gradOutput.spatialShape, output: inputSpatial, geometry: adjoint)
        let (k, p) = (plan.rows, plan.columns)
        var gradInput = Tensor(uninitialized: inputShape)
        var columns = [Float](unsafeUninitializedCapacity: k * p) { _, c in c = k * p }
        let outCount = cout * gradOutput.spatialCount
        gradOutput.storage.withUnsafeBufferPointer { gy in
            flippedWeight.withUnsafeBufferPointer { w in
                gradInput.storage.withUnsafeMutableBufferPointer { gx in
                    columns.withUnsafeMutableBufferPointer { col in
                        for b in 0..<n {
                            Im2col.im2col(plan, image: gy.baseAddress! + b * outCount, columns: col.baseAddress!)
                            BLAS.gemm(transposeA: false, transposeB: false, m: cin, n: p, k: k, a: w.baseAddress!,
                                      lda: k, b: col.baseAddress!, ldb: p, beta: 0, c: gx.baseAddress! + b * cin * p,
                                      ldc: p)
                        }
                    }
                }
            }
        }
        return gradInput
    }
}

/// Transposed convolution (PyTorch's `conv_transpose2d`/`conv_transpose3d`, the adjoint of `Convolution` in its
/// input), via `sgemm` + `col2im`.
///
/// Forward: `y[n, o, q·stride − padding + t] += Σ_i x[n, i, q] · weight[i, o, t]`, plus `bias[o]`.
/// Shapes: input `[N, Cin, (D,) H, W]`, weight `[Cin, Cout, (kD,) kH, kW]` (PyTorch layout), bias `[Cout]`,
/// output extents `(in − 1)·stride − 2·padding + kernel` (kernel 2, stride 2 doubles every extent).
public enum TransposedConvolution {
    /// Forward pass; `bias` may be nil.
    public static func forward(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvolutionGeometry)
        -> Tensor
    {
        let (n, cin, cout) = (input.batch, input.channels, weight.shape[1])
        precondition(input.rank == geometry.dimensions + 2 && weight.shape[0] == cin,
                     "transposed convolution input \(input.shape) does not fit weight \(weight.shape)")
        let outSpatial = geometry.transposedOutput(input.spatialShape)
        // The output plays the role of a convolution's input, the input that of its output.
        let plan = Im2col.Plan(channels: cout, input: outSpatial, output: input.spatialShape, geometry: geometry)
        let (k, p) = (plan.rows, plan.columns)
        let outCount = cout * outSpatial.reduce(1, *)
        var output = Tensor(zeros: [n, cout] + outSpatial)
        var columns = [Float](repeating: 0, count: k * p)
        input.storage.withUnsafeBufferPointer { x in
            weight.storage.withUnsafeBufferPointer { w in
                output.storage.withUnsafeMutableBufferPointer { y in
                    columns.withUnsafeMutableBufferPointer { col in
                        for b in 0..<n {
                            // cols[Cout·K, P] = Wᵀ[Cout·K, Cin] · x[Cin, P]
                            BLAS.gemm(transposeA: true, transposeB: false, m: k, n: p, k: cin,
                                      a: w.baseAddress!, lda: k, b: x.baseAddress! + b * cin * p, ldb: p, beta: 0,
                                      c: col.baseAddress!, ldc: p)
                            Im2col.col2im(plan, columns: col.baseAddress!, image: y.baseAddress! + b * outCount)
                        }
                    }
                }
            }
        }
        if let bias { ChannelSums.addBias(&output, bias) }
        return output
    }

    /// Backward pass from `gradOutput` (shape of the forward output).
    public static func backward(_ gradOutput: Tensor, input: Tensor, weight: Tensor, hasBias: Bool,
                                geometry: ConvolutionGeometry, inputGradient: Bool = true) -> Convolution.Gradients {
        let (n, cin, cout) = (input.batch, input.channels, weight.shape[1])
        let plan = Im2col.Plan(channels: cout, input: gradOutput.spatialShape, output: input.spatialShape,
                               geometry: geometry)
        let (k, p) = (plan.rows, plan.columns)
        let outCount = cout * gradOutput.spatialCount
        var gradWeight = Tensor(zeros: weight.shape)
        var gradInput = inputGradient ? Tensor(zeros: input.shape) : nil
        var columns = [Float](repeating: 0, count: k * p)
        input.storage.withUnsafeBufferPointer { x in
            weight.storage.withUnsafeBufferPointer { w in
                gradOutput.storage.withUnsafeBufferPointer { gy in
                    gradWeight.storage.withUnsafeMutableBufferPointer { gw in
                        columns.withUnsafeMutableBufferPointer { col in
                            for b in 0..<n {
                                Im2col.im2col(plan, image: gy.baseAddress! + b * outCount, columns: col.baseAddress!)
                                // ∂W[Cin, Cout·K] += x[Cin, P] · colsᵀ[P, Cout·K]
                                BLAS.gemm(transposeA: false, transposeB: true, m: cin, n: k, k: p,
                                          a: x.baseAddress! + b * cin * p, lda: p, b: col.baseAddress!, ldb: p,
                                          beta: 1, c: gw.baseAddress!, ldc: k)
                                if inputGradient {
                                    gradInput!.storage.withUnsafeMutableBufferPointer { gx in
                                        // ∂x[Cin, P] = W[Cin, Cout·K] · cols[Cout·K, P]
                                        BLAS.gemm(transposeA: false, transposeB: false, m: cin, n: p, k: k,
                                                  a: w.baseAddress!, lda: k, b: col.baseAddress!, ldb: p, beta: 0,
                                                  c: gx.baseAddress! + b * cin * p, ldc: p)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return Convolution.Gradients(input: gradInput, weight: gradWeight,
                                     bias: hasBias ? ChannelSums.sum(gradOutput) : nil)
    }
}

/// Per-channel reductions and broadcasts over `[N, C, spatial…]`.
public enum ChannelSums {
    /// `Σ_{n, p} x[n, c, p]` for every channel: shape `[C]`.
    public static func sum(_ x: Tensor) -> Tensor {
        let (n, c, s) = (x.batch, x.channels, x.spatialCount)
        var out = [Float](repeating: 0, count: c)
        x.storage.withUnsafeBufferPointer { p in
            for b in 0..<n {
                for ch in 0..<c {
                    let base = p.baseAddress! + (b * c + ch) * s
                    var acc: Float = 0
                    for i in 0..<s { acc += base[i] }
                    out[ch] += acc
                }
            }
        }
        return Tensor(shape: [c], storage: out)
    }

    /// `x[n, c, p] += bias[c]`.
    public static func addBias(_ x: inout Tensor, _ bias: Tensor) {
        let (n, c, s) = (x.batch, x.channels, x.spatialCount)
        precondition(bias.count == c, "bias of \(bias.count) for \(c) channels")
        x.storage.withUnsafeMutableBufferPointer { p in
            for b in 0..<n {
                for ch in 0..<c {
                    let base = p.baseAddress! + (b * c + ch) * s
                    let v = bias.storage[ch]
                    for i in 0..<s { base[i] += v }
                }
            }
        }
    }
}

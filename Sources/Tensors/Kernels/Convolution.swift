import CTensorKernels

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
    /// pass over each image's output while it is in cache. Images run on `Parallelism.threads` workers.
    /// - Parameter algorithm: `.automatic` takes `DirectConvolution` for the 3×3(×3), stride-1, padding-1 layers it
    ///   is measured to win on and im2col + sgemm otherwise; tests force either path.
    public static func forward(
        _ input: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvolutionGeometry,
        relu: Bool = false, algorithm: ConvolutionAlgorithm = .automatic
    ) -> Tensor {
        let (n, cin, cout) = (input.batch, input.channels, weight.shape[0])
        precondition(
            input.rank == geometry.dimensions + 2 && weight.shape[1] == cin,
            "convolution input \(input.shape) does not fit weight \(weight.shape)")
        if WinogradConvolution.uses(
            geometry, inputChannels: cin, outputChannels: cout, spatial: input.spatialShape,
            algorithm: algorithm)
        {
            return WinogradConvolution.forward(input, weight: weight, bias: bias, relu: relu)
        }
        if DirectConvolution.uses(
            geometry, inputChannels: cin, outputChannels: cout, spatial: input.spatialShape,
            algorithm: algorithm)
        {
            return DirectConvolution.forward(input, weight: weight, bias: bias, relu: relu)
        }
        let outSpatial = geometry.convolutionOutput(input.spatialShape)
        let plan = Im2col.Plan(channels: cin, input: input.spatialShape, output: outSpatial, geometry: geometry)
        let (k, p, inCount) = (plan.rows, plan.columns, cin * input.spatialCount)
        var output = Tensor(uninitialized: [n, cout] + outSpatial)
        let pointwise = geometry.isPointwise
        let biasValues = bias?.storage
        let (tileRows, oW) = (plan.rowsPerTile(), plan.output.2)
        input.storage.withUnsafeBufferPointer { xb in
            weight.storage.withUnsafeBufferPointer { wb in
                output.storage.withUnsafeMutableBufferPointer { yb in
                    let (x, w, y) = (xb.baseAddress!, wb.baseAddress!, yb.baseAddress!)
                    Parallelism.forEachWorker(items: n) { worker, workers in
                        ScratchBuffers.with(floats: pointwise ? 0 : k * tileRows * oW) { col in
                            for b in stride(from: worker, to: n, by: workers) {
                                let image = x + b * inCount
                                let out = y + b * cout * p
                                if pointwise {
                                    BLAS.gemm(
                                        transposeA: false, transposeB: false, m: cout, n: p, k: k,
                                        a: w, lda: k, b: image, ldb: p, beta: 0, c: out, ldc: p)
                                } else {
                                    for r0 in stride(from: 0, to: plan.outputRows, by: tileRows) {
                                        let rows = r0..<min(plan.outputRows, r0 + tileRows)
                                        let width = rows.count * oW
                                        Im2col.im2col(plan, image: image, columns: col, rows: rows)
                                        BLAS.gemm(
                                            transposeA: false, transposeB: false, m: cout, n: width, k: k, a: w,
                                            lda: k, b: col, ldb: width, beta: 0, c: out + r0 * oW, ldc: p)
                                    }
                                }
                                if biasValues != nil || relu {
                                    for o in 0..<cout {
                                        let row = out + o * p
                                        let v = biasValues?[o] ?? 0
                                        if relu {
                                            for i in 0..<p {
                                                let t = row[i] + v
                                                row[i] = t < 0 ? 0 : t
                                            }
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
        }
        return output
    }

    /// Backward pass: gradients from `gradOutput` (shape of the forward output).
    /// - Parameter inputGradient: whether to compute `∂L/∂x` (false for a first layer saves a GEMM).
    /// - Parameter inputIsReLUOutput: the input is the output of a ReLU; `∂x` is returned multiplied by `[x > 0]`,
    ///   i.e. already through that ReLU's backward (fused into the direct kernel's store).
    /// - Parameter algorithm: as for `forward`.
    public static func backward(
        _ gradOutput: Tensor, input: Tensor, weight: Tensor, hasBias: Bool,
        geometry: ConvolutionGeometry, inputGradient: Bool = true,
        inputIsReLUOutput: Bool = false,
        algorithm: ConvolutionAlgorithm = .automatic
    ) -> Gradients {
        let mask = inputIsReLUOutput ? input : nil
        let (n, cin, cout) = (input.batch, input.channels, weight.shape[0])
        if DirectConvolution.uses(
            geometry, inputChannels: cin, outputChannels: cout, spatial: input.spatialShape,
            algorithm: algorithm)
        {
            precondition(
                gradOutput.shape == [n, cout] + input.spatialShape,
                "∂y \(gradOutput.shape) does not fit the convolution of \(input.shape) by \(weight.shape)")
            // ∂x is the forward convolution of ∂y with the flipped, channel-transposed kernel (padding 1 again),
            // which takes the direct path itself when it applies.
            let gradInput =
                inputGradient
                ? flippedInputGradient(
                    gradOutput, inputShape: input.shape, weight: weight, geometry: geometry,
                    mask: mask, algorithm: algorithm)
                : nil
            return Gradients(
                input: gradInput,
                weight: DirectConvolution.weightGradient(
                    gradOutput, input: input,
                    weightShape: weight.shape),
                bias: hasBias ? ChannelSums.sum(gradOutput) : nil)
        }
        let plan = Im2col.Plan(
            channels: cin, input: input.spatialShape, output: gradOutput.spatialShape,
            geometry: geometry)
        let (k, p, inCount) = (plan.rows, plan.columns, cin * input.spatialCount)
        precondition(gradOutput.shape == [n, cout] + gradOutput.spatialShape && k == weight.count / cout)
        let pointwise = geometry.isPointwise
        // Stride 1 (the common 3×3, padding 1 case): ∂x is itself a convolution of ∂y with the spatially flipped,
        // channel-transposed kernel and padding k − 1 − p; im2col (copies) beats col2im (scattered adds).
        let flipped =
            inputGradient && !pointwise && geometry.stride.allSatisfy { $0 == 1 }
            && zip(geometry.padding, geometry.kernelSize).allSatisfy { $0 <= $1 - 1 }
        let direct = inputGradient && !flipped
        var gradInput = direct ? (pointwise ? Tensor(uninitialized: input.shape) : Tensor(zeros: input.shape)) : nil
        let workers = max(1, min(Parallelism.threads, n))
        let (tileRows, oW) = (plan.rowsPerTile(), plan.output.2)
        // One ∂W accumulator per worker, summed at the end (no two workers write the same element).
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: workers * weight.count)
        partial.initialize(repeating: 0, count: workers * weight.count)
        defer { partial.deallocate() }
        input.storage.withUnsafeBufferPointer { xb in
            weight.storage.withUnsafeBufferPointer { wb in
                gradOutput.storage.withUnsafeBufferPointer { gyb in
                    let (x, w, gy) = (xb.baseAddress!, wb.baseAddress!, gyb.baseAddress!)
                    gradInput.withUnsafeMutablePointer { gx in
                        Parallelism.forEachWorker(items: n) { worker, workers in
                            let tileCount = pointwise ? 0 : k * tileRows * oW
                            ScratchBuffers.with(floats: tileCount) { col in
                                ScratchBuffers.with(floats: direct ? tileCount : 0) { gcol in
                                    let gw = partial + worker * weight.count
                                    for b in stride(from: worker, to: n, by: workers) {
                                        let image = x + b * inCount
                                        let g = gy + b * cout * p
                                        let dst = gx.map { $0 + b * inCount }
                                        if pointwise {
                                            // ∂W[Cout, Cin] += ∂Y[Cout, P] · xᵀ[P, Cin];  ∂x[Cin, P] = Wᵀ · ∂Y
                                            BLAS.gemm(
                                                transposeA: false, transposeB: true, m: cout, n: k, k: p,
                                                a: g, lda: p, b: image, ldb: p, beta: 1, c: gw, ldc: k)
                                            if direct, let dst {
                                                BLAS.gemm(
                                                    transposeA: true, transposeB: false, m: k, n: p, k: cout,
                                                    a: w, lda: k, b: g, ldb: p, beta: 0, c: dst, ldc: p)
                                            }
                                            continue
                                        }
                                        for r0 in stride(from: 0, to: plan.outputRows, by: tileRows) {
                                            let rows = r0..<min(plan.outputRows, r0 + tileRows)
                                            let width = rows.count * oW
                                            Im2col.im2col(plan, image: image, columns: col, rows: rows)
                                            // ∂W[Cout, K] += ∂Y[Cout, tile] · colsᵀ[tile, K]
                                            BLAS.gemm(
                                                transposeA: false, transposeB: true, m: cout, n: k, k: width,
                                                a: g + r0 * oW, lda: p, b: col, ldb: width, beta: 1, c: gw, ldc: k)
                                            if direct, let dst {
                                                // ∂cols[K, tile] = Wᵀ[K, Cout] · ∂Y[Cout, tile], then col2im
                                                BLAS.gemm(
                                                    transposeA: true, transposeB: false, m: k, n: width, k: cout,
                                                    a: w, lda: k, b: g + r0 * oW, ldb: p, beta: 0, c: gcol, ldc: width)
                                                Im2col.col2im(plan, columns: gcol, image: dst, rows: rows)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var gradWeight = Tensor(zeros: weight.shape)
        gradWeight.storage.withUnsafeMutableBufferPointer { gw in
            for worker in 0..<workers {
                let src = partial + worker * weight.count
                for i in 0..<gw.count { gw[i] += src[i] }
            }
        }
        if flipped {
            gradInput = flippedInputGradient(
                gradOutput, inputShape: input.shape, weight: weight, geometry: geometry,
                mask: mask, algorithm: algorithm)
        } else if let mask, gradInput != nil {
            Activation.applyReLUBackward(&gradInput!, output: mask)
        }
        return Gradients(input: gradInput, weight: gradWeight, bias: hasBias ? ChannelSums.sum(gradOutput) : nil)
    }

    /// `∂x = conv(∂y, flip(W)ᵀ, padding k − 1 − p)` for stride-1 convolutions, times `[mask > 0]` with a mask.
    static func flippedInputGradient(
        _ gradOutput: Tensor, inputShape: [Int], weight: Tensor,
        geometry: ConvolutionGeometry, mask: Tensor?,
        algorithm: ConvolutionAlgorithm
    ) -> Tensor {
        let (cin, cout) = (inputShape[1], weight.shape[0])
        let taps = geometry.taps
        // W'[ci, co, t] = W[co, ci, K − 1 − t]: a convolution weight [Cin, Cout, k…]
        var flippedWeight = [Float](repeating: 0, count: weight.count)
        weight.storage.withUnsafeBufferPointer { w in
            for co in 0..<cout {
                for ci in 0..<cin {
                    let src = (co * cin + ci) * taps
                    let dst = ci * cout * taps + co * taps
                    for t in 0..<taps { flippedWeight[dst + t] = w[src + taps - 1 - t] }
                }
            }
        }
        let adjoint = ConvolutionGeometry(
            kernelSize: geometry.kernelSize, stride: geometry.stride,
            padding: zip(geometry.kernelSize, geometry.padding).map { $0 - 1 - $1 })
        let flipped = Tensor(shape: [cin, cout] + geometry.kernelSize, storage: flippedWeight)
        if WinogradConvolution.uses(
            adjoint, inputChannels: cout, outputChannels: cin,
            spatial: gradOutput.spatialShape, algorithm: algorithm)
        {
            return WinogradConvolution.forward(gradOutput, weight: flipped, bias: nil, relu: false, mask: mask)
        }
        if DirectConvolution.uses(
            adjoint, inputChannels: cout, outputChannels: cin, spatial: gradOutput.spatialShape,
            algorithm: algorithm)
        {
            return DirectConvolution.forward(gradOutput, weight: flipped, bias: nil, relu: false, mask: mask)
        }
        var gradInput = forward(gradOutput, weight: flipped, bias: nil, geometry: adjoint, algorithm: algorithm)
        if let mask { Activation.applyReLUBackward(&gradInput, output: mask) }
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
        precondition(
            input.rank == geometry.dimensions + 2 && weight.shape[0] == cin,
            "transposed convolution input \(input.shape) does not fit weight \(weight.shape)")
        let outSpatial = geometry.transposedOutput(input.spatialShape)
        // The output plays the role of a convolution's input, the input that of its output.
        let plan = Im2col.Plan(channels: cout, input: outSpatial, output: input.spatialShape, geometry: geometry)
        let (k, p) = (plan.rows, plan.columns)
        let outCount = cout * outSpatial.reduce(1, *)
        let (tileRows, oW) = (plan.rowsPerTile(), plan.output.2)
        var output = Tensor(zeros: [n, cout] + outSpatial)
        input.storage.withUnsafeBufferPointer { xb in
            weight.storage.withUnsafeBufferPointer { wb in
                output.storage.withUnsafeMutableBufferPointer { yb in
                    let (x, w, y) = (xb.baseAddress!, wb.baseAddress!, yb.baseAddress!)
                    Parallelism.forEachWorker(items: n) { worker, workers in
                        ScratchBuffers.with(floats: k * tileRows * oW) { col in
                            for b in stride(from: worker, to: n, by: workers) {
                                for r0 in stride(from: 0, to: plan.outputRows, by: tileRows) {
                                    let rows = r0..<min(plan.outputRows, r0 + tileRows)
                                    let width = rows.count * oW
                                    // cols[Cout·K, tile] = Wᵀ[Cout·K, Cin] · x[Cin, tile]
                                    BLAS.gemm(
                                        transposeA: true, transposeB: false, m: k, n: width, k: cin, a: w, lda: k,
                                        b: x + b * cin * p + r0 * oW, ldb: p, beta: 0, c: col, ldc: width)
                                    Im2col.col2im(plan, columns: col, image: y + b * outCount, rows: rows)
                                }
                            }
                        }
                    }
                }
            }
        }
        if let bias { ChannelSums.addBias(&output, bias) }
        return output
    }

    /// Backward pass from `gradOutput` (shape of the forward output).
    public static func backward(
        _ gradOutput: Tensor, input: Tensor, weight: Tensor, hasBias: Bool,
        geometry: ConvolutionGeometry, inputGradient: Bool = true
    ) -> Convolution.Gradients {
        let (n, cin, cout) = (input.batch, input.channels, weight.shape[1])
        let plan = Im2col.Plan(
            channels: cout, input: gradOutput.spatialShape, output: input.spatialShape,
            geometry: geometry)
        let (k, p) = (plan.rows, plan.columns)
        let outCount = cout * gradOutput.spatialCount
        let (tileRows, oW) = (plan.rowsPerTile(), plan.output.2)
        var gradInput = inputGradient ? Tensor(uninitialized: input.shape) : nil
        let workers = max(1, min(Parallelism.threads, n))
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: workers * weight.count)
        partial.initialize(repeating: 0, count: workers * weight.count)
        defer { partial.deallocate() }
        input.storage.withUnsafeBufferPointer { xb in
            weight.storage.withUnsafeBufferPointer { wb in
                gradOutput.storage.withUnsafeBufferPointer { gyb in
                    let (x, w, gy) = (xb.baseAddress!, wb.baseAddress!, gyb.baseAddress!)
                    gradInput.withUnsafeMutablePointer { gx in
                        Parallelism.forEachWorker(items: n) { worker, workers in
                            ScratchBuffers.with(floats: k * tileRows * oW) { col in
                                let gw = partial + worker * weight.count
                                for b in stride(from: worker, to: n, by: workers) {
                                    for r0 in stride(from: 0, to: plan.outputRows, by: tileRows) {
                                        let rows = r0..<min(plan.outputRows, r0 + tileRows)
                                        let width = rows.count * oW
                                        let xTile = x + b * cin * p + r0 * oW
                                        Im2col.im2col(plan, image: gy + b * outCount, columns: col, rows: rows)
                                        // ∂W[Cin, Cout·K] += x[Cin, tile] · colsᵀ[tile, Cout·K]
                                        BLAS.gemm(
                                            transposeA: false, transposeB: true, m: cin, n: k, k: width,
                                            a: xTile, lda: p, b: col, ldb: width, beta: 1, c: gw, ldc: k)
                                        if let gx {
                                            // ∂x[Cin, tile] = W[Cin, Cout·K] · cols[Cout·K, tile]
                                            BLAS.gemm(
                                                transposeA: false, transposeB: false, m: cin, n: width, k: k, a: w,
                                                lda: k, b: col, ldb: width, beta: 0, c: gx + b * cin * p + r0 * oW,
                                                ldc: p)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var gradWeight = Tensor(zeros: weight.shape)
        gradWeight.storage.withUnsafeMutableBufferPointer { gw in
            for worker in 0..<workers {
                let src = partial + worker * weight.count
                for i in 0..<gw.count { gw[i] += src[i] }
            }
        }
        return Convolution.Gradients(
            input: gradInput, weight: gradWeight,
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
            out.withUnsafeMutableBufferPointer { o in
                guard let base = p.baseAddress, let sums = o.baseAddress else { return }
                // Channels split across the workers; each channel summed image by image in order, as on one thread.
                Parallelism.forEachRange(count: c, minimumPerWorker: max(1, (1 << 16) / max(1, n * s))) { channels in
                    for b in 0..<n {
                        for ch in channels {
                            // Vectorised (64 lanes): a scalar float loop cannot be reordered and waits on every add.
                            sums[ch] += Float(tk_sum(base + (b * c + ch) * s, s))
                        }
                    }
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

extension Optional where Wrapped == Tensor {
    /// Calls `body` with the storage of the wrapped tensor (nil when there is none), valid only inside `body`.
    mutating func withUnsafeMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>?) -> R) -> R {
        guard self != nil else { return body(nil) }
        return self!.storage.withUnsafeMutableBufferPointer { body($0.baseAddress) }
    }
}

/// Concatenation of image tensors along the channel dimension (PyTorch's `cat(dim=1)`) and its inverse.
public enum ChannelConcat {
    /// `[N, C₁, s…] ++ [N, C₂, s…] → [N, C₁ + C₂, s…]`, first tensor's channels first.
    public static func forward(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty)
        let (n, spatial) = (parts[0].batch, parts[0].spatialShape)
        precondition(
            parts.allSatisfy { $0.batch == n && $0.spatialShape == spatial },
            "concat: shapes \(parts.map(\.shape)) differ outside the channel dimension")
        let total = parts.reduce(0) { $0 + $1.channels }
        let s = spatial.reduce(1, *)
        var out = [Float](unsafeUninitializedCapacity: n * total * s) { _, count in count = n * total * s }
        out.withUnsafeMutableBufferPointer { ob in
            guard let o = ob.baseAddress else { return }
            // Images split across the workers; every element of `out` is copied over.
            Parallelism.forEachRange(count: n, minimumPerWorker: max(1, (1 << 16) / max(1, total * s))) { images in
                for b in images {
                    var offset = b * total * s
                    for part in parts {
                        let block = part.channels * s
                        part.storage.withUnsafeBufferPointer { src in
                            if let p = src.baseAddress { (o + offset).update(from: p + b * block, count: block) }
                        }
                        offset += block
                    }
                }
            }
        }
        return Tensor(shape: [n, total] + spatial, storage: out)
    }

    /// Splits a gradient back into pieces of `channels` channels each.
    public static func backward(_ gradOutput: Tensor, channels: [Int]) -> [Tensor] {
        let (n, s, total) = (gradOutput.batch, gradOutput.spatialCount, gradOutput.channels)
        precondition(channels.reduce(0, +) == total)
        // Every element is copied over below: no zero fill.
        var parts = channels.map { c in
            [Float](unsafeUninitializedCapacity: n * c * s) { _, count in count = n * c * s }
        }
        for b in 0..<n {
            var offset = b * total * s
            for (k, c) in channels.enumerated() {
                let block = c * s
                parts[k].withUnsafeMutableBufferPointer { dst in
                    gradOutput.storage.withUnsafeBufferPointer { src in
                        (dst.baseAddress! + b * block).update(from: src.baseAddress! + offset, count: block)
                    }
                }
                offset += block
            }
        }
        return zip(parts, channels).map { Tensor(shape: [n, $1] + gradOutput.spatialShape, storage: $0) }
    }
}

/// Softmax over the channel dimension of `[N, C, spatial…]` (PyTorch's `softmax(dim=1)`), max-subtracted.
public enum Softmax {
    public static func forward(_ x: Tensor) -> Tensor {
        let (n, c, s) = (x.batch, x.channels, x.spatialCount)
        var y = x
        y.storage.withUnsafeMutableBufferPointer { p in
            for b in 0..<n {
                for i in 0..<s {
                    let base = b * c * s + i
                    var m = -Float.infinity
                    for ch in 0..<c { m = max(m, p[base + ch * s]) }
                    var sum: Float = 0
                    for ch in 0..<c {
                        let e = expf(p[base + ch * s] - m)
                        p[base + ch * s] = e
                        sum += e
                    }
                    for ch in 0..<c { p[base + ch * s] /= sum }
                }
            }
        }
        return y
    }

    /// `∂x_c = y_c · (∂y_c − Σ_k ∂y_k · y_k)`, from the forward output `y`.
    public static func backward(_ gradOutput: Tensor, output y: Tensor) -> Tensor {
        let (n, c, s) = (y.batch, y.channels, y.spatialCount)
        var gx = gradOutput
        gx.storage.withUnsafeMutableBufferPointer { g in
            y.storage.withUnsafeBufferPointer { p in
                for b in 0..<n {
                    for i in 0..<s {
                        let base = b * c * s + i
                        var dot: Float = 0
                        for ch in 0..<c { dot += g[base + ch * s] * p[base + ch * s] }
                        for ch in 0..<c { g[base + ch * s] = p[base + ch * s] * (g[base + ch * s] - dot) }
                    }
                }
            }
        }
        return gx
    }
}

/// Inverted dropout: each element is zeroed with probability `p` and the survivors scaled by `1 / (1 − p)`,
/// so evaluation is the identity. The mask comes from an explicit seeded generator.
public enum DropoutMask {
    /// The output and the mask (0 or `1 / (1 − p)` per element) for the backward pass.
    public static func forward(_ x: Tensor, probability p: Float, generator: inout SeededGenerator)
        -> (output: Tensor, mask: Tensor)
    {
        precondition((0..<1).contains(p), "dropout probability must be in [0, 1)")
        var mask = Tensor(zeros: x.shape)
        let keep = 1 / (1 - p)
        for i in 0..<mask.count where generator.nextUniform() >= p { mask.storage[i] = keep }
        return (x * mask, mask)
    }

    /// `∂x = ∂y · mask`.
    public static func backward(_ gradOutput: Tensor, mask: Tensor) -> Tensor { gradOutput * mask }
}

/// Fully connected map `y = x·Wᵀ + b` (PyTorch's `linear`): x `[N, in]`, W `[out, in]`, b `[out]`, y `[N, out]`.
public enum Dense {
    public static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let (n, inFeatures, outFeatures) = (x.shape[0], x.count / x.shape[0], weight.shape[0])
        precondition(weight.shape[1] == inFeatures, "linear input \(x.shape) does not fit weight \(weight.shape)")
        var y = Tensor(zeros: [n, outFeatures])
        if let bias { for b in 0..<n { for o in 0..<outFeatures { y.storage[b * outFeatures + o] = bias.storage[o] } } }
        x.storage.withUnsafeBufferPointer { xp in
            weight.storage.withUnsafeBufferPointer { w in
                y.storage.withUnsafeMutableBufferPointer { yp in
                    BLAS.gemm(
                        transposeA: false, transposeB: true, m: n, n: outFeatures, k: inFeatures,
                        a: xp.baseAddress!, lda: inFeatures, b: w.baseAddress!, ldb: inFeatures,
                        beta: bias == nil ? 0 : 1, c: yp.baseAddress!, ldc: outFeatures)
                }
            }
        }
        return y
    }

    /// `∂x = ∂y·W`, `∂W = ∂yᵀ·x`, `∂b = Σ_n ∂y`.
    public static func backward(_ gradOutput: Tensor, input x: Tensor, weight: Tensor, hasBias: Bool)
        -> (input: Tensor, weight: Tensor, bias: Tensor?)
    {
        let (n, inFeatures, outFeatures) = (x.shape[0], x.count / x.shape[0], weight.shape[0])
        var gx = Tensor(zeros: x.shape)
        var gw = Tensor(zeros: weight.shape)
        gradOutput.storage.withUnsafeBufferPointer { g in
            weight.storage.withUnsafeBufferPointer { w in
                x.storage.withUnsafeBufferPointer { xp in
                    gx.storage.withUnsafeMutableBufferPointer { gxp in
                        BLAS.gemm(
                            transposeA: false, transposeB: false, m: n, n: inFeatures, k: outFeatures,
                            a: g.baseAddress!, lda: outFeatures, b: w.baseAddress!, ldb: inFeatures, beta: 0,
                            c: gxp.baseAddress!, ldc: inFeatures)
                    }
                    gw.storage.withUnsafeMutableBufferPointer { gwp in
                        BLAS.gemm(
                            transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: n,
                            a: g.baseAddress!, lda: outFeatures, b: xp.baseAddress!, ldb: inFeatures, beta: 0,
                            c: gwp.baseAddress!, ldc: inFeatures)
                    }
                }
            }
        }
        var gb: Tensor? = nil
        if hasBias {
            var sums = [Float](repeating: 0, count: outFeatures)
            for b in 0..<n { for o in 0..<outFeatures { sums[o] += gradOutput.storage[b * outFeatures + o] } }
            gb = Tensor(shape: [outFeatures], storage: sums)
        }
        return (gx, gw, gb)
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

import Foundation

/// Naive reference kernels: direct loops straight from the defining formulas, double-precision accumulation, no
/// BLAS, no lowering. They are slow on purpose and exist to check the fast kernels (`Tests/TensorsTests`).
public enum Reference {
    // MARK: - Convolution

    /// `y[n,o,p] = b[o] + Σ_{i,t} w[o,i,t] · x[n,i,p·s − pad + t]`, direct loops.
    public static func convolution(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvolutionGeometry)
        -> Tensor
    {
        let (n, cin, cout) = (x.batch, x.channels, weight.shape[0])
        let outSpatial = geometry.convolutionOutput(x.spatialShape)
        let (iD, iH, iW) = extents3(x.spatialShape)
        let (oD, oH, oW) = extents3(outSpatial)
        let ((kD, kH, kW), (sD, sH, sW), (pD, pH, pW)) = geometry.volumetric
        var y = Tensor(zeros: [n, cout] + outSpatial)
        for b in 0..<n {
            for o in 0..<cout {
                for od in 0..<oD {
                    for oh in 0..<oH {
                        for ow in 0..<oW {
                            var acc = Double(bias?.storage[o] ?? 0)
                            for i in 0..<cin {
                                for kd in 0..<kD {
                                    for kh in 0..<kH {
                                        for kw in 0..<kW {
                                            let (id, ih, iw) = (od * sD - pD + kd, oh * sH - pH + kh, ow * sW - pW + kw)
                                            guard id >= 0, id < iD, ih >= 0, ih < iH, iw >= 0, iw < iW else { continue }
                                            let xv = x.storage[(((b * cin + i) * iD + id) * iH + ih) * iW + iw]
                                            let wv = weight.storage[(((o * cin + i) * kD + kd) * kH + kh) * kW + kw]
                                            acc += Double(xv) * Double(wv)
                                        }
                                    }
                                }
                            }
                            y.storage[(((b * cout + o) * oD + od) * oH + oh) * oW + ow] = Float(acc)
                        }
                    }
                }
            }
        }
        return y
    }

    /// Gradients of `convolution` by scattering every output gradient along its taps.
    public static func convolutionBackward(
        _ gy: Tensor, input x: Tensor, weight: Tensor,
        geometry: ConvolutionGeometry
    )
        -> (input: Tensor, weight: Tensor, bias: Tensor)
    {
        let (n, cin, cout) = (x.batch, x.channels, weight.shape[0])
        let (iD, iH, iW) = extents3(x.spatialShape)
        let (oD, oH, oW) = extents3(gy.spatialShape)
        let ((kD, kH, kW), (sD, sH, sW), (pD, pH, pW)) = geometry.volumetric
        var gx = [Double](repeating: 0, count: x.count)
        var gw = [Double](repeating: 0, count: weight.count)
        var gb = [Double](repeating: 0, count: cout)
        for b in 0..<n {
            for o in 0..<cout {
                for od in 0..<oD {
                    for oh in 0..<oH {
                        for ow in 0..<oW {
                            let g = Double(gy.storage[(((b * cout + o) * oD + od) * oH + oh) * oW + ow])
                            gb[o] += g
                            for i in 0..<cin {
                                for kd in 0..<kD {
                                    for kh in 0..<kH {
                                        for kw in 0..<kW {
                                            let (id, ih, iw) = (od * sD - pD + kd, oh * sH - pH + kh, ow * sW - pW + kw)
                                            guard id >= 0, id < iD, ih >= 0, ih < iH, iw >= 0, iw < iW else { continue }
                                            let xi = (((b * cin + i) * iD + id) * iH + ih) * iW + iw
                                            let wi = (((o * cin + i) * kD + kd) * kH + kh) * kW + kw
                                            gx[xi] += g * Double(weight.storage[wi])
                                            gw[wi] += g * Double(x.storage[xi])
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (
            Tensor(shape: x.shape, storage: gx.map { Float($0) }),
            Tensor(shape: weight.shape, storage: gw.map { Float($0) }),
            Tensor(shape: [cout], storage: gb.map { Float($0) })
        )
    }

    /// `y[n,o,q·s − pad + t] += Σ_i x[n,i,q] · w[i,o,t]`, plus bias; weight `[Cin, Cout, k…]`.
    public static func transposedConvolution(
        _ x: Tensor, weight: Tensor, bias: Tensor?,
        geometry: ConvolutionGeometry
    ) -> Tensor {
        let (n, cin, cout) = (x.batch, x.channels, weight.shape[1])
        let outSpatial = geometry.transposedOutput(x.spatialShape)
        let (iD, iH, iW) = extents3(x.spatialShape)
        let (oD, oH, oW) = extents3(outSpatial)
        let ((kD, kH, kW), (sD, sH, sW), (pD, pH, pW)) = geometry.volumetric
        var y = [Double](repeating: 0, count: n * cout * oD * oH * oW)
        for b in 0..<n {
            for i in 0..<cin {
                for id in 0..<iD {
                    for ih in 0..<iH {
                        for iw in 0..<iW {
                            let xv = Double(x.storage[(((b * cin + i) * iD + id) * iH + ih) * iW + iw])
                            for o in 0..<cout {
                                for kd in 0..<kD {
                                    for kh in 0..<kH {
                                        for kw in 0..<kW {
                                            let (od, oh, ow) = (id * sD - pD + kd, ih * sH - pH + kh, iw * sW - pW + kw)
                                            guard od >= 0, od < oD, oh >= 0, oh < oH, ow >= 0, ow < oW else { continue }
                                            let wi: Int = (((i * cout + o) * kD + kd) * kH + kh) * kW + kw
                                            let wv = Double(weight.storage[wi])
                                            let yi: Int = (((b * cout + o) * oD + od) * oH + oh) * oW + ow
                                            y[yi] += xv * wv
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let plane = oD * oH * oW
        if let bias { for k in 0..<y.count { y[k] += Double(bias.storage[(k / plane) % cout]) } }
        return Tensor(shape: [n, cout] + outSpatial, storage: y.map { Float($0) })
    }

    /// Gradients of `transposedConvolution`, by gathering.
    public static func transposedConvolutionBackward(
        _ gy: Tensor, input x: Tensor, weight: Tensor,
        geometry: ConvolutionGeometry
    )
        -> (input: Tensor, weight: Tensor, bias: Tensor)
    {
        let (n, cin, cout) = (x.batch, x.channels, weight.shape[1])
        let (iD, iH, iW) = extents3(x.spatialShape)
        let (oD, oH, oW) = extents3(gy.spatialShape)
        let ((kD, kH, kW), (sD, sH, sW), (pD, pH, pW)) = geometry.volumetric
        var gx = [Double](repeating: 0, count: x.count)
        var gw = [Double](repeating: 0, count: weight.count)
        for b in 0..<n {
            for i in 0..<cin {
                for id in 0..<iD {
                    for ih in 0..<iH {
                        for iw in 0..<iW {
                            let xi = (((b * cin + i) * iD + id) * iH + ih) * iW + iw
                            for o in 0..<cout {
                                for kd in 0..<kD {
                                    for kh in 0..<kH {
                                        for kw in 0..<kW {
                                            let (od, oh, ow) = (id * sD - pD + kd, ih * sH - pH + kh, iw * sW - pW + kw)
                                            guard od >= 0, od < oD, oh >= 0, oh < oH, ow >= 0, ow < oW else { continue }
                                            let wi = (((i * cout + o) * kD + kd) * kH + kh) * kW + kw
                                            let g = Double(gy.storage[(((b * cout + o) * oD + od) * oH + oh) * oW + ow])
                                            gx[xi] += g * Double(weight.storage[wi])
                                            gw[wi] += g * Double(x.storage[xi])
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (
            Tensor(shape: x.shape, storage: gx.map { Float($0) }),
            Tensor(shape: weight.shape, storage: gw.map { Float($0) }), channelSums(gy)
        )
    }

    // MARK: - Pooling

    /// Window maximum (first maximum wins), and its backward routing the gradient to that element.
    public static func maxPool(_ x: Tensor, kernelSize: [Int], stride: [Int]) -> Tensor {
        window(x, kernelSize: kernelSize, stride: stride) { $0.max() ?? 0 }
    }

    public static func maxPoolBackward(_ gy: Tensor, input x: Tensor, kernelSize: [Int], stride: [Int]) -> Tensor {
        var gx = Tensor(zeros: x.shape)
        forEachWindow(x, kernelSize: kernelSize, stride: stride) { outIndex, indices in
            var best = indices[0]
            for k in indices where x.storage[k] > x.storage[best] { best = k }
            gx.storage[best] += gy.storage[outIndex]
        }
        return gx
    }

    /// Window mean, and its backward spreading the gradient evenly.
    public static func averagePool(_ x: Tensor, kernelSize: [Int], stride: [Int]) -> Tensor {
        window(x, kernelSize: kernelSize, stride: stride) { v in
            Float(v.reduce(0.0) { $0 + Double($1) } / Double(v.count))
        }
    }

    public static func averagePoolBackward(_ gy: Tensor, input x: Tensor, kernelSize: [Int], stride: [Int]) -> Tensor {
        var gx = Tensor(zeros: x.shape)
        forEachWindow(x, kernelSize: kernelSize, stride: stride) { outIndex, indices in
            for k in indices { gx.storage[k] += gy.storage[outIndex] / Float(indices.count) }
        }
        return gx
    }

    /// Mean over all spatial positions (`[N, C, 1, …]`).
    public static func globalAveragePool(_ x: Tensor) -> Tensor {
        averagePool(x, kernelSize: x.spatialShape, stride: x.spatialShape)
    }

    public static func globalAveragePoolBackward(_ gy: Tensor, input x: Tensor) -> Tensor {
        averagePoolBackward(gy, input: x, kernelSize: x.spatialShape, stride: x.spatialShape)
    }

    private static func window(_ x: Tensor, kernelSize: [Int], stride: [Int], reduce: ([Float]) -> Float) -> Tensor {
        let g = ConvolutionGeometry(kernelSize: kernelSize, stride: stride, padding: kernelSize.map { _ in 0 })
        var y = Tensor(zeros: [x.batch, x.channels] + g.convolutionOutput(x.spatialShape))
        forEachWindow(x, kernelSize: kernelSize, stride: stride) { outIndex, indices in
            y.storage[outIndex] = reduce(indices.map { x.storage[$0] })
        }
        return y
    }

    /// Calls `body(output flat index, input flat indices of its window)` for every output element.
    private static func forEachWindow(_ x: Tensor, kernelSize: [Int], stride: [Int], _ body: (Int, [Int]) -> Void) {
        let g = ConvolutionGeometry(kernelSize: kernelSize, stride: stride, padding: kernelSize.map { _ in 0 })
        let (iD, iH, iW) = extents3(x.spatialShape)
        let (oD, oH, oW) = extents3(g.convolutionOutput(x.spatialShape))
        let ((kD, kH, kW), (sD, sH, sW), _) = g.volumetric
        var outIndex = 0
        for plane in 0..<(x.batch * x.channels) {
            for od in 0..<oD {
                for oh in 0..<oH {
                    for ow in 0..<oW {
                        var indices: [Int] = []
                        for kd in 0..<kD {
                            for kh in 0..<kH {
                                for kw in 0..<kW {
                                    let row: Int = (plane * iD + od * sD + kd) * iH + oh * sH + kh
                                    indices.append(row * iW + ow * sW + kw)
                                }
                            }
                        }
                        body(outIndex, indices)
                        outIndex += 1
                    }
                }
            }
        }
    }

    // MARK: - Normalisation

    /// Normalisation over groups of element indices: `y = γ_c (x − μ_g)/sqrt(σ²_g + ε) + β_c`, in double.
    /// `groups` lists the flat indices of every statistics group, `channelOf` maps a flat index to its channel.
    public static func normalize(
        _ x: Tensor, groups: [[Int]], weight: Tensor?, bias: Tensor?, epsilon: Double,
        mean: [Double]? = nil, variance: [Double]? = nil
    ) -> Tensor {
        var y = x
        let s = x.spatialCount
        let c = x.channels
        for (gi, group) in groups.enumerated() {
            let mu = mean?[gi] ?? group.reduce(0.0) { $0 + Double(x.storage[$1]) } / Double(group.count)
            let v =
                variance?[gi]
                ?? group.reduce(0.0) { $0 + (Double(x.storage[$1]) - mu) * (Double(x.storage[$1]) - mu) }
                / Double(group.count)
            for k in group {
                let ch = (k / s) % c
                let xhat = (Double(x.storage[k]) - mu) / (v + epsilon).squareRoot()
                y.storage[k] = Float(Double(weight?.storage[ch] ?? 1) * xhat + Double(bias?.storage[ch] ?? 0))
            }
        }
        return y
    }

    /// Statistics groups of instance norm: one per `(n, c)`.
    public static func instanceGroups(_ shape: [Int]) -> [[Int]] {
        let s = shape.dropFirst(2).reduce(1, *)
        return (0..<(shape[0] * shape[1])).map { Array(($0 * s)..<(($0 + 1) * s)) }
    }

    /// Statistics groups of batch norm: one per channel, over batch and space.
    public static func batchGroups(_ shape: [Int]) -> [[Int]] {
        let (n, c, s) = (shape[0], shape[1], shape.dropFirst(2).reduce(1, *))
        var groups: [[Int]] = []
        for ch in 0..<c {
            var group: [Int] = []
            for b in 0..<n {
                let start: Int = (b * c + ch) * s
                group.append(contentsOf: start..<(start + s))
            }
            groups.append(group)
        }
        return groups
    }

    // MARK: - Pointwise, softmax, concat, linear

    public static func relu(_ x: Tensor) -> Tensor { Tensor(shape: x.shape, storage: x.storage.map { max($0, 0) }) }

    public static func leakyReLU(_ x: Tensor, negativeSlope: Float) -> Tensor {
        Tensor(shape: x.shape, storage: x.storage.map { $0 > 0 ? $0 : negativeSlope * $0 })
    }

    /// `softmax(x)_c = exp(x_c) / Σ_k exp(x_k)` over channels, in double.
    public static func softmax(_ x: Tensor) -> Tensor {
        let (n, c, s) = (x.batch, x.channels, x.spatialCount)
        var y = x
        for b in 0..<n {
            for i in 0..<s {
                let idx = (0..<c).map { (b * c + $0) * s + i }
                let e = idx.map { Foundation.exp(Double(x.storage[$0])) }
                let total = e.reduce(0, +)
                for (k, j) in idx.enumerated() { y.storage[j] = Float(e[k] / total) }
            }
        }
        return y
    }

    /// Channel concatenation by index arithmetic.
    public static func concat(_ parts: [Tensor]) -> Tensor {
        let n = parts[0].batch
        let s = parts[0].spatialCount
        let total = parts.reduce(0) { $0 + $1.channels }
        var y = Tensor(zeros: [n, total] + parts[0].spatialShape)
        for b in 0..<n {
            var c0 = 0
            for p in parts {
                for c in 0..<p.channels {
                    let (dst, src) = (((b * total) + c0 + c) * s, (b * p.channels + c) * s)
                    for i in 0..<s { y.storage[dst + i] = p.storage[src + i] }
                }
                c0 += p.channels
            }
        }
        return y
    }

    /// `y[n,o] = b[o] + Σ_i x[n,i] w[o,i]`.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let (n, fin, fout) = (x.shape[0], weight.shape[1], weight.shape[0])
        var y = Tensor(zeros: [n, fout])
        for b in 0..<n {
            for o in 0..<fout {
                var acc = Double(bias?.storage[o] ?? 0)
                for i in 0..<fin { acc += Double(x.storage[b * fin + i]) * Double(weight.storage[o * fin + i]) }
                y.storage[b * fout + o] = Float(acc)
            }
        }
        return y
    }

    /// Per-channel sums, `[C]`.
    public static func channelSums(_ x: Tensor) -> Tensor {
        var out = [Double](repeating: 0, count: x.channels)
        for k in 0..<x.count { out[(k / x.spatialCount) % x.channels] += Double(x.storage[k]) }
        return Tensor(shape: [x.channels], storage: out.map { Float($0) })
    }
}

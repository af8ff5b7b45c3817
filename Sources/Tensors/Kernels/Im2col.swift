/// Lowering of a convolution to a matrix product: `im2col` copies every receptive field into a column,
/// `col2im` accumulates columns back into an image (its adjoint).
///
/// Layouts: image `[channels, D, H, W]`; columns `[channels·kD·kH·kW, oD·oH·oW]` (row = channel and tap,
/// column = output position). Out-of-image taps (padding) read as zero and are dropped by `col2im`.
enum Im2col {
    struct Plan {
        var channels: Int
        var input: (Int, Int, Int)
        var output: (Int, Int, Int)
        var kernel: (Int, Int, Int)
        var stride: (Int, Int, Int)
        var padding: (Int, Int, Int)

        init(channels: Int, input: [Int], output: [Int], geometry: ConvolutionGeometry) {
            self.channels = channels
            self.input = extents3(input)
            self.output = extents3(output)
            (kernel, stride, padding) = geometry.volumetric
        }

        var rows: Int { channels * kernel.0 * kernel.1 * kernel.2 }
        var columns: Int { output.0 * output.1 * output.2 }
    }

    /// The valid output range `[lo, hi)` along one axis for tap `k`: positions whose input index is in the image.
    @inline(__always)
    static func validRange(tap k: Int, stride s: Int, padding p: Int, input n: Int, output o: Int) -> (Int, Int) {
        // input index = out*s - p + k must satisfy 0 <= idx < n.
        var lo = 0
        if p - k > 0 { lo = (p - k + s - 1) / s }
        var hi = o
        // out*s - p + k <= n-1  →  out <= (n - 1 + p - k) / s
        let top = n - 1 + p - k
        if top < 0 { hi = 0 } else { hi = min(o, top / s + 1) }
        return (lo, max(lo, hi))
    }

    static func im2col(_ plan: Plan, image: UnsafePointer<Float>, columns: UnsafeMutablePointer<Float>) {
        let (iD, iH, iW) = plan.input, (oD, oH, oW) = plan.output
        let (kD, kH, kW) = plan.kernel, (sD, sH, sW) = plan.stride, (pD, pH, pW) = plan.padding
        let outPlane = oH * oW, outCount = oD * outPlane
        var row = 0
        for c in 0..<plan.channels {
            let src = image + c * iD * iH * iW
            for kd in 0..<kD {
                let (d0, d1) = validRange(tap: kd, stride: sD, padding: pD, input: iD, output: oD)
                for kh in 0..<kH {
                    let (h0, h1) = validRange(tap: kh, stride: sH, padding: pH, input: iH, output: oH)
                    for kw in 0..<kW {
                        let (w0, w1) = validRange(tap: kw, stride: sW, padding: pW, input: iW, output: oW)
                        let dst = columns + row * outCount
                        // Zero only what padding covers: whole planes, whole rows, then row ends.
                        for od in 0..<oD where od < d0 || od >= d1 || h1 <= h0 || w1 <= w0 {
                            (dst + od * outPlane).initialize(repeating: 0, count: outPlane)
                        }
                        if w1 > w0 && h1 > h0 {
                            for od in d0..<d1 {
                                let id = od * sD - pD + kd
                                let plane = dst + od * outPlane
                                if h0 > 0 { plane.initialize(repeating: 0, count: h0 * oW) }
                                if h1 < oH { (plane + h1 * oW).initialize(repeating: 0, count: (oH - h1) * oW) }
                                for oh in h0..<h1 {
                                    let ih = oh * sH - pH + kh
                                    let srcRow = src + (id * iH + ih) * iW - pW + kw
                                    let dstRow = plane + oh * oW
                                    if w0 > 0 { dstRow.initialize(repeating: 0, count: w0) }
                                    if w1 < oW { (dstRow + w1).initialize(repeating: 0, count: oW - w1) }
                                    if sW == 1 {
                                        (dstRow + w0).update(from: srcRow + w0, count: w1 - w0)
                                    } else {
                                        for ow in w0..<w1 { dstRow[ow] = srcRow[ow * sW] }
                                    }
                                }
                            }
                        }
                        row += 1
                    }
                }
            }
        }
    }

    /// Accumulates `columns` into `image` (which the caller zeroes first when it wants a plain adjoint).
    static func col2im(_ plan: Plan, columns: UnsafePointer<Float>, image: UnsafeMutablePointer<Float>) {
        let (iD, iH, iW) = plan.input, (oD, oH, oW) = plan.output
        let (kD, kH, kW) = plan.kernel, (sD, sH, sW) = plan.stride, (pD, pH, pW) = plan.padding
        let outPlane = oH * oW, outCount = oD * outPlane
        var row = 0
        for c in 0..<plan.channels {
            let dstImage = image + c * iD * iH * iW
            for kd in 0..<kD {
                let (d0, d1) = validRange(tap: kd, stride: sD, padding: pD, input: iD, output: oD)
                for kh in 0..<kH {
                    let (h0, h1) = validRange(tap: kh, stride: sH, padding: pH, input: iH, output: oH)
                    for kw in 0..<kW {
                        let (w0, w1) = validRange(tap: kw, stride: sW, padding: pW, input: iW, output: oW)
                        let src = columns + row * outCount
                        if w1 > w0 {
                            for od in d0..<d1 {
                                let id = od * sD - pD + kd
                                for oh in h0..<h1 {
                                    let ih = oh * sH - pH + kh
                                    let dstRow = dstImage + (id * iH + ih) * iW - pW + kw
                                    let srcRow = src + od * outPlane + oh * oW
                                    for ow in w0..<w1 { dstRow[ow * sW] += srcRow[ow] }
                                }
                            }
                        }
                        row += 1
                    }
                }
            }
        }
    }
}

/// Lowering of a convolution to a matrix product: `im2col` copies every receptive field into a column,
/// `col2im` accumulates columns back into an image (its adjoint).
///
/// Layouts: image `[channels, D, H, W]`; columns `[channels·kD·kH·kW, positions]` (row = channel and tap, column =
/// output position). Both work on a tile of output rows `rows` (an output row is one `(od, oh)` pair, `oW`
/// positions), so callers can bound the column buffer: a full 3-D buffer would take hundreds of MB.
/// Out-of-image taps (padding) read as zero and are dropped by `col2im`.
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
        /// Output rows (`oD·oH`), each of `output.2` positions.
        var outputRows: Int { output.0 * output.1 }

        /// Output rows per tile so that one tile's columns take at most `budget` floats (at least one row).
        func rowsPerTile(budget: Int = Parallelism.columnBudget) -> Int {
            max(1, min(outputRows, budget / max(1, rows * output.2)))
        }
    }

    /// The valid output range `[lo, hi)` along one axis for tap `k`: positions whose input index is in the image.
    @inline(__always)
    static func validRange(tap k: Int, stride s: Int, padding p: Int, input n: Int, output o: Int) -> (Int, Int) {
        // input index = out*s - p + k must satisfy 0 <= idx < n.
        var lo = 0
        if p - k > 0 { lo = (p - k + s - 1) / s }
        let top = n - 1 + p - k
        let hi = top < 0 ? 0 : min(o, top / s + 1)
        return (lo, max(lo, hi))
    }

    /// Fills `columns` (`[rows, (rows.count)·oW]`) for the output rows `rows`.
    static func im2col(
        _ plan: Plan, image: UnsafePointer<Float>, columns: UnsafeMutablePointer<Float>,
        rows tile: Range<Int>? = nil
    ) {
        let tile = tile ?? 0..<plan.outputRows
        let (iD, iH, iW) = plan.input
        let (_, oH, oW) = plan.output
        let (kD, kH, kW) = plan.kernel
        let (sD, sH, sW) = plan.stride
        let (pD, pH, pW) = plan.padding
        let width = tile.count * oW
        var row = 0
        for c in 0..<plan.channels {
            let src = image + c * iD * iH * iW
            for kd in 0..<kD {
                for kh in 0..<kH {
                    for kw in 0..<kW {
                        let (w0, w1) = validRange(tap: kw, stride: sW, padding: pW, input: iW, output: oW)
                        let dst = columns + row * width
                        for (t, r) in tile.enumerated() {
                            let (od, oh) = (r / oH, r % oH)
                            let (id, ih) = (od * sD - pD + kd, oh * sH - pH + kh)
                            let dstRow = dst + t * oW
                            guard id >= 0, id < iD, ih >= 0, ih < iH, w1 > w0 else {
                                dstRow.initialize(repeating: 0, count: oW)
                                continue
                            }
                            let srcRow = src + (id * iH + ih) * iW - pW + kw
                            if w0 > 0 { dstRow.initialize(repeating: 0, count: w0) }
                            if w1 < oW { (dstRow + w1).initialize(repeating: 0, count: oW - w1) }
                            if sW == 1 {
                                (dstRow + w0).update(from: srcRow + w0, count: w1 - w0)
                            } else {
                                for ow in w0..<w1 { dstRow[ow] = srcRow[ow * sW] }
                            }
                        }
                        row += 1
                    }
                }
            }
        }
    }

    /// Accumulates `columns` (`[rows, (rows.count)·oW]`, output rows `rows`) into `image`.
    static func col2im(
        _ plan: Plan, columns: UnsafePointer<Float>, image: UnsafeMutablePointer<Float>,
        rows tile: Range<Int>? = nil
    ) {
        let tile = tile ?? 0..<plan.outputRows
        let (iD, iH, iW) = plan.input
        let (_, oH, oW) = plan.output
        let (kD, kH, kW) = plan.kernel
        let (sD, sH, sW) = plan.stride
        let (pD, pH, pW) = plan.padding
        let width = tile.count * oW
        var row = 0
        for c in 0..<plan.channels {
            let dstImage = image + c * iD * iH * iW
            for kd in 0..<kD {
                for kh in 0..<kH {
                    for kw in 0..<kW {
                        let (w0, w1) = validRange(tap: kw, stride: sW, padding: pW, input: iW, output: oW)
                        let src = columns + row * width
                        if w1 > w0 {
                            for (t, r) in tile.enumerated() {
                                let (od, oh) = (r / oH, r % oH)
                                let (id, ih) = (od * sD - pD + kd, oh * sH - pH + kh)
                                guard id >= 0, id < iD, ih >= 0, ih < iH else { continue }
                                let dstRow = dstImage + (id * iH + ih) * iW - pW + kw
                                let srcRow = src + t * oW
                                if sW == 1 {
                                    for ow in w0..<w1 { dstRow[ow] += srcRow[ow] }
                                } else {
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

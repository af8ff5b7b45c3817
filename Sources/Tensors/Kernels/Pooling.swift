import CTensorKernels

/// Max pooling over windows (no padding, floor of partial windows, as PyTorch's `max_pool2d/3d` defaults).
///
/// `y[n, c, p] = max_{t} x[n, c, p·stride + t]`; ties go to the first maximum in scan order (PyTorch's CPU rule).
/// Shapes: `[N, C, (D,) H, W]` → `[N, C, (oD,) oH, oW]`, `o = (i − kernel) / stride + 1`.
public enum MaxPooling {
    /// The output and, for every output element, the flat index within its input channel plane of the maximum.
    public static func forward(_ input: Tensor, kernelSize: [Int], stride: [Int]) -> (output: Tensor, argmax: [Int32]) {
        if kernelSize.allSatisfy({ $0 == 2 }) && stride == kernelSize && (2...3).contains(kernelSize.count)
            && input.rank == kernelSize.count + 2
        {
            return forward2(input)
        }
        return forwardGeneral(input, kernelSize: kernelSize, stride: stride)
    }

    /// Window 2, stride 2 (the U-Nets' pooling): the vectorised C kernel, planes split across the workers.
    static func forward2(_ input: Tensor) -> (output: Tensor, argmax: [Int32]) {
        let spatial = input.spatialShape
        let (iD, iH, iW) = extents3(spatial)
        let threeD = spatial.count == 3
        let outSpatial = spatial.map { $0 / 2 }
        let planes = input.batch * input.channels
        let (inPlane, outPlane) = (iD * iH * iW, outSpatial.reduce(1, *))
        var output = Tensor(uninitialized: [input.batch, input.channels] + outSpatial)
        var argmax = [Int32](unsafeUninitializedCapacity: planes * outPlane) { _, count in count = planes * outPlane }
        input.storage.withUnsafeBufferPointer { xb in
            output.storage.withUnsafeMutableBufferPointer { yb in
                argmax.withUnsafeMutableBufferPointer { ab in
                    guard let x = xb.baseAddress, let y = yb.baseAddress, let am = ab.baseAddress else { return }
                    let minimum = max(1, (1 << 16) / max(1, inPlane))
                    Parallelism.forEachRange(count: planes, minimumPerWorker: minimum) { r in
                        tk_maxpool2(
                            x + r.lowerBound * inPlane, Int32(r.count), Int32(iD), Int32(iH), Int32(iW),
                            threeD ? 1 : 0, y + r.lowerBound * outPlane, am + r.lowerBound * outPlane)
                    }
                }
            }
        }
        return (output, argmax)
    }

    /// Any window and stride (scalar loops).
    static func forwardGeneral(_ input: Tensor, kernelSize: [Int], stride: [Int])
        -> (output: Tensor, argmax: [Int32])
    {
        let geometry = ConvolutionGeometry(
            kernelSize: kernelSize, stride: stride,
            padding: Array(repeating: 0, count: kernelSize.count))
        let outSpatial = geometry.convolutionOutput(input.spatialShape)
        let (iD, iH, iW) = extents3(input.spatialShape)
        let (oD, oH, oW) = extents3(outSpatial)
        let ((kD, kH, kW), (sD, sH, sW), _) = geometry.volumetric
        let planes = input.batch * input.channels
        let (inPlane, outPlane) = (iD * iH * iW, oD * oH * oW)
        var output = Tensor(zeros: [input.batch, input.channels] + outSpatial)
        var argmax = [Int32](repeating: 0, count: planes * outPlane)
        // Window taps as offsets from the window's first element, in scan order.
        var taps: [Int] = []
        for kd in 0..<kD { for kh in 0..<kH { for kw in 0..<kW { taps.append((kd * iH + kh) * iW + kw) } } }
        input.storage.withUnsafeBufferPointer { x in
            output.storage.withUnsafeMutableBufferPointer { y in
                argmax.withUnsafeMutableBufferPointer { am in
                    for plane in 0..<planes {
                        let src = x.baseAddress! + plane * inPlane
                        var o = plane * outPlane
                        for od in 0..<oD {
                            for oh in 0..<oH {
                                for ow in 0..<oW {
                                    // Branch-free scan (random data makes the maximum's position unpredictable):
                                    // the first NaN wins, else the first of tied maxima.
                                    let origin = ((od * sD) * iH + oh * sH) * iW + ow * sW
                                    var best = src[origin]
                                    var bestIndex = origin
                                    for t in taps.indices.dropFirst() {
                                        let i = origin + taps[t]
                                        let v = src[i]
                                        let take = v > best || (v.isNaN && !best.isNaN)
                                        best = take ? v : best
                                        bestIndex = take ? i : bestIndex
                                    }
                                    y[o] = best
                                    am[o] = Int32(bestIndex)
                                    o += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        return (output, argmax)
    }

    /// Routes every output gradient to its window's maximum.
    public static func backward(_ gradOutput: Tensor, argmax: [Int32], inputShape: [Int]) -> Tensor {
        var gradInput = Tensor(zeros: inputShape)
        let planes = inputShape[0] * inputShape[1]
        let inPlane = inputShape.dropFirst(2).reduce(1, *)
        let outPlane = gradOutput.spatialCount
        gradInput.storage.withUnsafeMutableBufferPointer { gxb in
            gradOutput.storage.withUnsafeBufferPointer { gy in
                argmax.withUnsafeBufferPointer { am in
                    guard let gx = gxb.baseAddress else { return }
                    // Planes split across the workers (each writes only its own planes).
                    Parallelism.forEachRange(count: planes, minimumPerWorker: max(1, (1 << 16) / max(1, inPlane))) {
                        for plane in $0 {
                            for o in 0..<outPlane {
                                gx[plane * inPlane + Int(am[plane * outPlane + o])] += gy[plane * outPlane + o]
                            }
                        }
                    }
                }
            }
        }
        return gradInput
    }
}

/// Average pooling over windows (no padding): `y[n, c, p] = mean_t x[n, c, p·stride + t]`.
public enum AveragePooling {
    public static func forward(_ input: Tensor, kernelSize: [Int], stride: [Int]) -> Tensor {
        let geometry = ConvolutionGeometry(
            kernelSize: kernelSize, stride: stride,
            padding: Array(repeating: 0, count: kernelSize.count))
        let outSpatial = geometry.convolutionOutput(input.spatialShape)
        let (iD, iH, iW) = extents3(input.spatialShape)
        let (oD, oH, oW) = extents3(outSpatial)
        let ((kD, kH, kW), (sD, sH, sW), _) = geometry.volumetric
        let scale = 1 / Float(kD * kH * kW)
        let planes = input.batch * input.channels
        var output = Tensor(zeros: [input.batch, input.channels] + outSpatial)
        input.storage.withUnsafeBufferPointer { x in
            output.storage.withUnsafeMutableBufferPointer { y in
                var o = 0
                for plane in 0..<planes {
                    let src = x.baseAddress! + plane * iD * iH * iW
                    for od in 0..<oD {
                        for oh in 0..<oH {
                            for ow in 0..<oW {
                                var acc: Float = 0
                                for kd in 0..<kD {
                                    for kh in 0..<kH {
                                        let row = ((od * sD + kd) * iH + oh * sH + kh) * iW + ow * sW
                                        for kw in 0..<kW { acc += src[row + kw] }
                                    }
                                }
                                y[o] = acc * scale
                                o += 1
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    public static func backward(_ gradOutput: Tensor, inputShape: [Int], kernelSize: [Int], stride: [Int]) -> Tensor {
        let (iD, iH, iW) = extents3(Array(inputShape.dropFirst(2)))
        let (oD, oH, oW) = extents3(gradOutput.spatialShape)
        let geometry = ConvolutionGeometry(
            kernelSize: kernelSize, stride: stride,
            padding: Array(repeating: 0, count: kernelSize.count))
        let ((kD, kH, kW), (sD, sH, sW), _) = geometry.volumetric
        let scale = 1 / Float(kD * kH * kW)
        var gradInput = Tensor(zeros: inputShape)
        let planes = inputShape[0] * inputShape[1]
        gradInput.storage.withUnsafeMutableBufferPointer { gx in
            gradOutput.storage.withUnsafeBufferPointer { gy in
                var o = 0
                for plane in 0..<planes {
                    let dst = gx.baseAddress! + plane * iD * iH * iW
                    for od in 0..<oD {
                        for oh in 0..<oH {
                            for ow in 0..<oW {
                                let g = gy[o] * scale
                                for kd in 0..<kD {
                                    for kh in 0..<kH {
                                        let row = ((od * sD + kd) * iH + oh * sH + kh) * iW + ow * sW
                                        for kw in 0..<kW { dst[row + kw] += g }
                                    }
                                }
                                o += 1
                            }
                        }
                    }
                }
            }
        }
        return gradInput
    }
}

/// Global average pooling (PyTorch's `adaptive_avg_pool(x, 1)`): `[N, C, spatial…]` → `[N, C, 1, …, 1]`.
public enum GlobalAveragePooling {
    public static func forward(_ input: Tensor) -> Tensor {
        let s = input.spatialCount
        let planes = input.batch * input.channels
        var out = [Float](repeating: 0, count: planes)
        input.storage.withUnsafeBufferPointer { x in
            for plane in 0..<planes {
                var acc: Float = 0
                for i in 0..<s { acc += x[plane * s + i] }
                out[plane] = acc / Float(s)
            }
        }
        return Tensor(shape: [input.batch, input.channels] + Array(repeating: 1, count: input.rank - 2), storage: out)
    }

    public static func backward(_ gradOutput: Tensor, inputShape: [Int]) -> Tensor {
        let s = inputShape.dropFirst(2).reduce(1, *)
        var gradInput = Tensor(zeros: inputShape)
        gradInput.storage.withUnsafeMutableBufferPointer { gx in
            for plane in 0..<gradOutput.count {
                let g = gradOutput.storage[plane] / Float(s)
                for i in 0..<s { gx[plane * s + i] = g }
            }
        }
        return gradInput
    }
}

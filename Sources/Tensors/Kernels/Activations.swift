import CTensorKernels

/// Pointwise activations with their derivatives.
public enum Activation {
    /// `relu(x) = max(x, 0)` (NaN stays NaN, as in PyTorch).
    public static func relu(_ x: Tensor) -> Tensor {
        var y = x
        applyReLU(&y)
        return y
    }

    /// `x ← relu(x)` in place.
    public static func applyReLU(_ x: inout Tensor) {
        x.storage.withUnsafeMutableBufferPointer { p in reluInPlace(p.baseAddress!, count: p.count) }
    }

    @inline(__always)
    static func reluInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = p[i]
            p[i] = v < 0 ? 0 : v
        }
    }

    /// `∂L/∂x = ∂L/∂y · [y > 0]`, from the forward output `y` (PyTorch's rule: gradient 0 at 0).
    public static func reluBackward(_ gradOutput: Tensor, output: Tensor) -> Tensor {
        precondition(gradOutput.shape == output.shape)
        // One pass into a fresh buffer (a copy of `gradOutput` followed by an in-place pass would be two).
        var g = Tensor(uninitialized: gradOutput.shape)
        g.storage.withUnsafeMutableBufferPointer { gp in
            gradOutput.storage.withUnsafeBufferPointer { src in
                output.storage.withUnsafeBufferPointer { y in
                    guard let (out, s, yp) = bases(gp, src, y) else { return }
                    Parallelism.forEachRange(count: gp.count) { r in
                        tk_relu_backward(s + r.lowerBound, yp + r.lowerBound, out + r.lowerBound, r.count)
                    }
                }
            }
        }
        return g
    }

    /// `g ← g · [y > 0]` in place.
    public static func applyReLUBackward(_ gradient: inout Tensor, output: Tensor) {
        precondition(gradient.shape == output.shape)
        gradient.storage.withUnsafeMutableBufferPointer { gp in
            output.storage.withUnsafeBufferPointer { y in
                guard let (out, s, yp) = bases(gp, UnsafeBufferPointer(gp), y) else { return }
                Parallelism.forEachRange(count: gp.count) { r in
                    tk_relu_backward(s + r.lowerBound, yp + r.lowerBound, out + r.lowerBound, r.count)
                }
            }
        }
    }

    /// `leakyReLU(x) = x` for `x > 0`, `negativeSlope · x` otherwise.
    public static func leakyReLU(_ x: Tensor, negativeSlope: Float) -> Tensor {
        var y = x
        y.storage.withUnsafeMutableBufferPointer { p in for i in 0..<p.count where p[i] <= 0 { p[i] *= negativeSlope } }
        return y
    }

    /// `∂L/∂x = ∂L/∂y · (x > 0 ? 1 : negativeSlope)`, from the forward input.
    public static func leakyReLUBackward(_ gradOutput: Tensor, input: Tensor, negativeSlope: Float) -> Tensor {
        var g = gradOutput
        g.storage.withUnsafeMutableBufferPointer { gp in
            input.storage.withUnsafeBufferPointer { x in
                for i in 0..<gp.count where !(x[i] > 0) { gp[i] *= negativeSlope }
            }
        }
        return g
    }

    /// The base addresses of three buffers, nil when they are empty.
    private static func bases(
        _ out: UnsafeMutableBufferPointer<Float>, _ a: UnsafeBufferPointer<Float>,
        _ b: UnsafeBufferPointer<Float>
    )
        -> (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>)?
    {
        guard let o = out.baseAddress, let pa = a.baseAddress, let pb = b.baseAddress else { return nil }
        return (o, pa, pb)
    }
}

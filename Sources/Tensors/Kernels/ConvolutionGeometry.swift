/// Kernel size, stride and padding of a 2-D or 3-D convolution (one entry per spatial dimension, outermost first).
///
/// Output extent per dimension: `(input + 2·padding − kernel) / stride + 1` (floor), as in PyTorch.
public struct ConvolutionGeometry: Sendable, Hashable {
    public var kernelSize: [Int]
    public var stride: [Int]
    public var padding: [Int]

    /// A geometry; all three arrays must have the same length (2 or 3).
    public init(kernelSize: [Int], stride: [Int], padding: [Int]) {
        precondition(
            kernelSize.count == stride.count && stride.count == padding.count,
            "kernelSize, stride and padding must have one entry per spatial dimension")
        precondition((1...3).contains(kernelSize.count), "1 to 3 spatial dimensions")
        precondition(
            kernelSize.allSatisfy { $0 > 0 } && stride.allSatisfy { $0 > 0 } && padding.allSatisfy { $0 >= 0 },
            "kernel and stride must be positive, padding non-negative")
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
    }

    /// The same kernel, stride and padding along each of `dimensions` spatial dimensions.
    public init(dimensions: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0) {
        self.init(
            kernelSize: Array(repeating: kernelSize, count: dimensions),
            stride: Array(repeating: stride, count: dimensions),
            padding: Array(repeating: padding, count: dimensions))
    }

    /// Number of spatial dimensions.
    public var dimensions: Int { kernelSize.count }
    /// Number of kernel taps (product of `kernelSize`).
    public var taps: Int { kernelSize.reduce(1, *) }

    /// Output spatial extents of a convolution over `input`.
    public func convolutionOutput(_ input: [Int]) -> [Int] {
        (0..<dimensions).map { (input[$0] + 2 * padding[$0] - kernelSize[$0]) / stride[$0] + 1 }
    }

    /// Output spatial extents of a transposed convolution over `input`: `(input − 1)·stride − 2·padding + kernel`.
    public func transposedOutput(_ input: [Int]) -> [Int] {
        (0..<dimensions).map { (input[$0] - 1) * stride[$0] - 2 * padding[$0] + kernelSize[$0] }
    }

    /// Whether the convolution is a plain per-position matrix product (kernel 1, stride 1, no padding).
    var isPointwise: Bool {
        kernelSize.allSatisfy { $0 == 1 } && stride.allSatisfy { $0 == 1 } && padding.allSatisfy { $0 == 0 }
    }

    /// Padded to three dimensions (depth 1 for 2-D), as the kernels work on `[depth, height, width]`.
    var volumetric: (kernel: (Int, Int, Int), stride: (Int, Int, Int), padding: (Int, Int, Int)) {
        let k = Self.pad3(kernelSize, 1)
        let s = Self.pad3(stride, 1)
        let p = Self.pad3(padding, 0)
        return ((k[0], k[1], k[2]), (s[0], s[1], s[2]), (p[0], p[1], p[2]))
    }

    static func pad3(_ values: [Int], _ fill: Int) -> [Int] {
        Array(repeating: fill, count: 3 - values.count) + values
    }
}

/// `(depth, height, width)` of spatial extents, depth 1 for 2-D.
@inline(__always)
func extents3(_ spatial: [Int]) -> (Int, Int, Int) {
    let e = ConvolutionGeometry.pad3(spatial, 1)
    return (e[0], e[1], e[2])
}

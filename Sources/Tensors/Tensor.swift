/// A dense float32 tensor, row-major (last index fastest).
///
/// Image tensors are `[batch, channels, height, width]` (2-D) or `[batch, channels, depth, height, width]` (3-D);
/// weights follow PyTorch's layouts (`[out, in, kH, kW]` for a convolution). `Tensor` is a value type: copies share
/// storage until one of them is written (copy-on-write of the underlying array).
public struct Tensor: Sendable, Equatable {
    /// Extent of every dimension, outermost first.
    public private(set) var shape: [Int]
    /// The elements, row-major; `storage.count == shape.reduce(1, *)`.
    public var storage: [Float]

    /// A tensor over existing elements. `storage.count` must equal the product of `shape` (programmer error).
    public init(shape: [Int], storage: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative extent in shape \(shape)")
        precondition(shape.reduce(1, *) == storage.count, "shape \(shape) does not hold \(storage.count) elements")
        self.shape = shape
        self.storage = storage
    }

    /// A tensor filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, storage: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// A tensor of zeros.
    public init(zeros shape: [Int]) { self.init(repeating: 0, shape: shape) }

    /// A tensor whose elements the caller overwrites before reading (skips zero-filling large buffers).
    init(uninitialized shape: [Int]) {
        let n = shape.reduce(1, *)
        self.init(shape: shape, storage: [Float](unsafeUninitializedCapacity: n) { _, count in count = n })
    }

    /// Elements drawn from N(mean, std²) with a seeded generator.
    public static func randomNormal(
        _ shape: [Int], mean: Float = 0, std: Float = 1,
        generator: inout SeededGenerator
    ) -> Tensor {
        let n = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: n)
        for i in 0..<n { values[i] = mean + std * generator.nextNormal() }
        return Tensor(shape: shape, storage: values)
    }

    /// Elements drawn from U[low, high) with a seeded generator.
    public static func randomUniform(
        _ shape: [Int], low: Float = 0, high: Float = 1,
        generator: inout SeededGenerator
    ) -> Tensor {
        let n = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: n)
        for i in 0..<n { values[i] = low + (high - low) * generator.nextUniform() }
        return Tensor(shape: shape, storage: values)
    }

    /// Number of elements.
    public var count: Int { storage.count }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// `shape[0]` of an image tensor.
    public var batch: Int { shape[0] }
    /// `shape[1]` of an image tensor.
    public var channels: Int { shape[1] }
    /// The spatial extents of an image tensor: `[height, width]` or `[depth, height, width]`.
    public var spatialShape: [Int] { Array(shape.dropFirst(2)) }
    /// Elements per channel of one image.
    public var spatialCount: Int { shape.dropFirst(2).reduce(1, *) }

    /// The same elements under another shape of the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, storage: storage)
    }

    /// Sum of all elements, accumulated in double precision.
    public func sum() -> Double {
        storage.withUnsafeBufferPointer { p in
            var s = 0.0
            for v in p { s += Double(v) }
            return s
        }
    }

    /// Largest `|self - other|` over all elements; shapes must agree.
    public func maxAbsoluteDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(storage[i] - other.storage[i])) }
        return m
    }

    /// Whether every element satisfies `|a - b| <= atol + rtol * |b|` (numpy's `allclose`, `other` as reference).
    public func isClose(to other: Tensor, rtol: Float = 1e-4, atol: Float = 1e-5) -> Bool {
        guard shape == other.shape else { return false }
        for i in 0..<count where !(abs(storage[i] - other.storage[i]) <= atol + rtol * abs(other.storage[i])) {
            return false
        }
        return true
    }

    /// Elementwise sum.
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor {
        precondition(lhs.shape == rhs.shape, "shapes differ: \(lhs.shape) vs \(rhs.shape)")
        var out = lhs
        out.storage.withUnsafeMutableBufferPointer { o in
            rhs.storage.withUnsafeBufferPointer { r in for i in 0..<o.count { o[i] += r[i] } }
        }
        return out
    }

    /// Elementwise difference.
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor {
        precondition(lhs.shape == rhs.shape, "shapes differ: \(lhs.shape) vs \(rhs.shape)")
        var out = lhs
        out.storage.withUnsafeMutableBufferPointer { o in
            rhs.storage.withUnsafeBufferPointer { r in for i in 0..<o.count { o[i] -= r[i] } }
        }
        return out
    }

    /// Every element times `scale`.
    public static func * (lhs: Tensor, scale: Float) -> Tensor {
        var out = lhs
        out.storage.withUnsafeMutableBufferPointer { o in for i in 0..<o.count { o[i] *= scale } }
        return out
    }

    /// Elementwise product.
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor {
        precondition(lhs.shape == rhs.shape, "shapes differ: \(lhs.shape) vs \(rhs.shape)")
        var out = lhs
        out.storage.withUnsafeMutableBufferPointer { o in
            rhs.storage.withUnsafeBufferPointer { r in for i in 0..<o.count { o[i] *= r[i] } }
        }
        return out
    }

    /// Adds `other` into `self` in place.
    public mutating func add(_ other: Tensor) {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        storage.withUnsafeMutableBufferPointer { o in
            other.storage.withUnsafeBufferPointer { r in for i in 0..<o.count { o[i] += r[i] } }
        }
    }
}

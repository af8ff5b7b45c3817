import Foundation
import Tensors
import Volumes

/// Inference of a 3-D model over a whole volume by overlapping windows (MONAI's `sliding_window_inference`).
///
/// Windows of `windowSize` (`[depth, height, width]`) are placed along each axis at starts
/// `0, s, 2s, …` clamped so the last window ends at the volume's edge, with stride `s = max(1, ⌊w·(1 − overlap)⌋)`
/// (one window when the axis is no longer than the window). Each window's logits are weighted by an importance map
/// and summed; the result is the weighted mean per voxel, `Σ_k m_k·z_k / Σ_k m_k`, and the labels its arg-max.
/// - `constant`: `m = 1` (plain average of overlapping windows);
/// - `gaussian`: `m(p) = Π_a exp(−(p_a − (w_a − 1)/2)² / (2σ_a²))` with `σ_a = sigmaScale · w_a` (MONAI's default
///   `sigma_scale` 0.125), which favours window centres where a model sees the most context.
/// An axis shorter than the window is zero-padded at its end and the padding cropped from the result.
public struct SlidingWindowInference: Sendable {
    /// How overlapping windows are combined.
    public enum Blending: String, Sendable, CaseIterable {
        case constant
        case gaussian
    }

    public var windowSize: [Int]
    public var overlap: Double
    public var blending: Blending
    public var sigmaScale: Double
    /// Windows per forward pass.
    public var batchSize: Int

    /// - Throws: `.invalidArgument` unless `windowSize` is three positive extents, `overlap` in [0, 1),
    ///   `sigmaScale` > 0 and `batchSize` ≥ 1.
    public init(
        windowSize: [Int], overlap: Double = 0.25, blending: Blending = .gaussian, sigmaScale: Double = 0.125,
        batchSize: Int = 1
    ) throws(TrainingError) {
        guard windowSize.count == 3, windowSize.allSatisfy({ $0 >= 1 }) else {
            throw TrainingError(
                .invalidArgument,
                "sliding window size \(windowSize) must be [depth, height, width] "
                    + "with positive extents")
        }
        guard overlap >= 0, overlap < 1 else {
            throw TrainingError(.invalidArgument, "sliding window overlap \(overlap) must be in [0, 1)")
        }
        guard sigmaScale > 0, batchSize >= 1 else {
            throw TrainingError(
                .invalidArgument, "sigma scale \(sigmaScale) must be > 0 and batch size \(batchSize) ≥ 1")
        }
        self.windowSize = windowSize
        self.overlap = overlap
        self.blending = blending
        self.sigmaScale = sigmaScale
        self.batchSize = batchSize
    }

    /// Window starts along one axis of `extent` voxels for a window of `window` voxels.
    public func starts(extent: Int, window: Int) -> [Int] {
        guard extent > window else { return [0] }
        let stride = max(1, CheckedConversion.int(Double(window) * (1 - overlap), rounding: .towardZero) ?? 1)
        let count = (extent - window + stride - 1) / stride + 1
        return (0..<count).map { min($0 * stride, extent - window) }
    }

    /// The importance map of one window, `[depth, height, width]` row-major.
    public func importanceMap() -> [Float] {
        let (d, h, w) = (windowSize[0], windowSize[1], windowSize[2])
        guard blending == .gaussian else { return [Float](repeating: 1, count: d * h * w) }
        func axis(_ n: Int) -> [Double] {
            let sigma = sigmaScale * Double(n)
            let centre = Double(n - 1) / 2
            return (0..<n).map { Foundation.exp(-(Double($0) - centre) * (Double($0) - centre) / (2 * sigma * sigma)) }
        }
        let (gz, gy, gx) = (axis(d), axis(h), axis(w))
        var map = [Float](repeating: 0, count: d * h * w)
        for z in 0..<d { for y in 0..<h { for x in 0..<w { map[(z * h + y) * w + x] = Float(gz[z] * gy[y] * gx[x]) } } }
        return map
    }

    /// Blended logits `[1, classes, depth, height, width]` over the whole volume.
    /// - Parameters:
    ///   - image: the preprocessed volume (z, y, x).
    ///   - predictor: logits `[n, classes, wd, wh, ww]` for windows `[n, 1, wd, wh, ww]` (a model's forward pass).
    /// - Throws: the predictor's errors as `.model`, and `.model` when its output has the wrong shape.
    public func logits(_ image: Volume<Float>, predictor: (Tensor) throws -> Tensor) throws(TrainingError) -> Tensor {
        try logits([image], predictor: predictor)
    }

    /// Blended logits over input channels stacked as windows `[n, inputs.count, wd, wh, ww]`.
    /// - Parameter inputs: the preprocessed channels, all on one grid (the first's).
    /// - Throws: `.data` for no input or channels on different grids; otherwise as `logits(_:predictor:)`.
    public func logits(_ inputs: [Volume<Float>], predictor: (Tensor) throws -> Tensor) throws(TrainingError)
        -> Tensor
    {
        guard let image = inputs.first,
            inputs.allSatisfy({ $0.geometry.dimensions == image.geometry.dimensions })
        else {
            throw TrainingError(.data, "sliding-window inference needs at least one input, all on one grid")
        }
        let channels = inputs.count
        let dims = image.geometry.dimensions
        let extents = [dims.z, dims.y, dims.x]
        let (wd, wh, ww) = (windowSize[0], windowSize[1], windowSize[2])
        let windowVoxels = wd * wh * ww
        var corners: [[Int]] = []
        for z in starts(extent: extents[0], window: wd) {
            for y in starts(extent: extents[1], window: wh) {
                for x in starts(extent: extents[2], window: ww) { corners.append([z, y, x]) }
            }
        }
        let map = importanceMap()
        let plane = dims.x * dims.y
        let total = plane * dims.z
        var sums: [Float] = []
        var weights = [Float](repeating: 0, count: total)
        var classes = 0
        var first = 0
        while first < corners.count {
            let group = Array(corners[first..<min(first + batchSize, corners.count)])
            var input = [Float](repeating: 0, count: group.count * channels * windowVoxels)
            for (b, c) in group.enumerated() {
                for (k, volume) in inputs.enumerated() {
                    let base = (b * channels + k) * windowVoxels
                    visit(c, extents: extents) { source, local in input[base + local] = volume.voxels[source] }
                }
            }
            let output: Tensor
            do { output = try predictor(Tensor(shape: [group.count, channels, wd, wh, ww], storage: input)) } catch {
                throw TrainingError(.model, "the model failed on a \(wd)×\(wh)×\(ww) window: \(error)")
            }
            if classes == 0 {
                classes = output.rank == 5 ? output.shape[1] : 0
                sums = [Float](repeating: 0, count: max(classes, 1) * total)
            }
            guard classes > 0, output.shape == [group.count, classes, wd, wh, ww] else {
                throw TrainingError(
                    .model,
                    "the model returned \(output.shape) for windows [\(group.count), \(channels), \(wd), "
                        + "\(wh), \(ww)]; it must keep the window's extents")
            }
            for (b, c) in group.enumerated() {
                visit(c, extents: extents) { source, local in
                    let m = map[local]
                    weights[source] += m
                    for k in 0..<classes {
                        sums[k * total + source] += m * output.storage[(b * classes + k) * windowVoxels + local]
                    }
                }
            }
            first += group.count
        }
        for k in 0..<classes {
            for i in 0..<total where weights[i] > 0 { sums[k * total + i] /= weights[i] }
        }
        return Tensor(shape: [1, classes, dims.z, dims.y, dims.x], storage: sums)
    }

    /// Arg-max labels on the volume's own grid (0 background, class index otherwise).
    public func labels(_ image: Volume<Float>, predictor: (Tensor) throws -> Tensor) throws(TrainingError)
        -> Volume<UInt8>
    {
        try labels([image], predictor: predictor)
    }

    /// Arg-max labels of stacked input channels on their grid.
    public func labels(_ inputs: [Volume<Float>], predictor: (Tensor) throws -> Tensor) throws(TrainingError)
        -> Volume<UInt8>
    {
        let z = try logits(inputs, predictor: predictor)
        guard let image = inputs.first else { throw TrainingError(.data, "no input to label") }
        let classes = z.shape[1]
        let total = image.geometry.voxelCount
        var out = Volume<UInt8>(geometry: image.geometry, repeating: 0)
        z.storage.withUnsafeBufferPointer { p in
            for i in 0..<total {
                var best = 0
                for k in 1..<max(classes, 1) where p[k * total + i] > p[best * total + i] { best = k }
                out.voxels[i] = UInt8(min(best, 255))
            }
        }
        return out
    }

    /// Calls `body(volumeIndex, windowIndex)` for every window voxel inside the volume (padding skipped).
    private func visit(_ corner: [Int], extents: [Int], _ body: (Int, Int) -> Void) {
        let (wd, wh, ww) = (windowSize[0], windowSize[1], windowSize[2])
        for z in 0..<min(wd, extents[0] - corner[0]) {
            for y in 0..<min(wh, extents[1] - corner[1]) {
                let source = ((corner[0] + z) * extents[1] + corner[1] + y) * extents[2] + corner[2]
                let local = (z * wh + y) * ww
                for x in 0..<min(ww, extents[2] - corner[2]) { body(source + x, local + x) }
            }
        }
    }
}

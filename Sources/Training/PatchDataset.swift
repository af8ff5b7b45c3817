import Randomness
import Tensors
import Volumes

/// Fixed-size 3-D patches drawn from preprocessed cases for training 3-D models, class-balanced: a
/// `foregroundFraction` of the patches is centred on a foreground voxel (label ≠ 0), the rest on a background voxel
/// (MONAI's `RandCropByPosNegLabel` with pos/(pos + neg) = `foregroundFraction`); each window is shifted to lie inside
/// its volume.
///
/// Patch sizes are `[depth, height, width]` (z, y, x), the order of the tensors it produces:
/// input `[batch, channels, depth, height, width]` (channel 0 the case's image, then its `channels`) and one target
/// label per voxel in the same row-major order.
/// Every draw comes from the caller's seeded generator, so the same seed gives the same patches.
public struct PatchDataset: Sendable {
    /// Where one patch lies: the case and the corner voxel (z, y, x) of the window.
    public struct Location: Sendable, Equatable {
        public var caseIndex: Int
        public var corner: [Int]
        /// Whether the window was centred on a foreground voxel.
        public var foreground: Bool
    }

    public let cases: [Sample]
    /// Input channels after the first, per case, each on its case's grid (empty: one channel).
    public let channels: [[Volume<Float>]]
    public let patchSize: [Int]
    public let foregroundFraction: Double
    /// Foreground voxel indices (storage order) per case.
    let foregroundVoxels: [[Int32]]

    /// - Parameters:
    ///   - cases: preprocessed images with labels on the same grid.
    ///   - channels: empty, or for each case the same number of further input channels on its grid.
    ///   - patchSize: `[depth, height, width]`, each ≥ 1 and no larger than every case's extent.
    ///   - foregroundFraction: in [0, 1]; cases without foreground always give background-centred patches.
    /// - Throws: `.invalidArgument` for a bad size or fraction, `.data` when a case lacks labels or is smaller than
    ///   the patch (pad it with `preprocessing.crop_pad`).
    public init(
        cases: [Sample], channels: [[Volume<Float>]] = [], patchSize: [Int], foregroundFraction: Double
    ) throws(TrainingError) {
        guard patchSize.count == 3, patchSize.allSatisfy({ $0 >= 1 }) else {
            throw TrainingError(
                .invalidArgument,
                "patch size \(patchSize) must be [depth, height, width] with "
                    + "positive extents")
        }
        guard (0...1).contains(foregroundFraction) else {
            throw TrainingError(.invalidArgument, "foreground fraction \(foregroundFraction) must be in 0...1")
        }
        guard !cases.isEmpty else { throw TrainingError(.data, "no case to draw patches from") }
        guard channels.isEmpty || channels.count == cases.count else {
            throw TrainingError(.data, "\(channels.count) channel lists for \(cases.count) cases")
        }
        for (i, extra) in channels.enumerated() {
            guard extra.count == channels[0].count,
                extra.allSatisfy({ $0.geometry.dimensions == cases[i].image.geometry.dimensions })
            else {
                throw TrainingError(.data, "case \(i)'s input channels are not \(channels[0].count) on its grid")
            }
        }
        var foreground: [[Int32]] = []
        for (i, c) in cases.enumerated() {
            let d = c.image.geometry.dimensions
            guard let label = c.label, label.geometry.dimensions == d else {
                throw TrainingError(.data, "case \(i) has no label volume on its image's grid")
            }
            guard d.z >= patchSize[0], d.y >= patchSize[1], d.x >= patchSize[2] else {
                throw TrainingError(
                    .data,
                    "case \(i) (\(d.z)×\(d.y)×\(d.x) voxels, z×y×x) is smaller than the patch "
                        + "\(patchSize.map(String.init).joined(separator: "×")); choose a smaller patch or "
                        + "pad the volumes (`preprocessing.crop_pad`)")
            }
            var indices: [Int32] = []
            for (j, v) in label.voxels.enumerated() where v != 0 { indices.append(Int32(j)) }
            foreground.append(indices)
        }
        self.cases = cases
        self.channels = channels
        self.patchSize = patchSize
        self.foregroundFraction = foregroundFraction
        foregroundVoxels = foreground
    }

    /// `count` patch locations: the case uniformly at random, then a foreground centre with probability
    /// `foregroundFraction` (when the case has foreground) or else a background centre.
    public func sampleLocations(count: Int, generator: inout SplitMix64) -> [Location] {
        (0..<count).map { _ in
            let caseIndex = generator.integer(0, cases.count - 1)
            let wantForeground = generator.uniform() < foregroundFraction
            return location(in: caseIndex, foreground: wantForeground, generator: &generator)
        }
    }

    func location(in caseIndex: Int, foreground wantForeground: Bool, generator: inout SplitMix64) -> Location {
        let d = cases[caseIndex].image.geometry.dimensions
        let voxels = foregroundVoxels[caseIndex]
        let total = d.x * d.y * d.z
        let useForeground = !voxels.isEmpty && (wantForeground || voxels.count == total)
        var centre: Int
        if useForeground {
            centre = Int(voxels[generator.integer(0, voxels.count - 1)])
        } else {
            // Rejection sampling of a background voxel (bounded; background is the bulk of a CT).
            let labels = cases[caseIndex].label?.voxels ?? []
            centre = generator.integer(0, total - 1)
            var attempts = 0
            while attempts < 1000 && centre < labels.count && labels[centre] != 0 {
                centre = generator.integer(0, total - 1)
                attempts += 1
            }
        }
        let c = [centre / (d.x * d.y), (centre / d.x) % d.y, centre % d.x]
        let extents = [d.z, d.y, d.x]
        let corner = (0..<3).map { a in min(max(c[a] - patchSize[a] / 2, 0), extents[a] - patchSize[a]) }
        return Location(caseIndex: caseIndex, corner: corner, foreground: useForeground)
    }

    /// The image patches `[locations.count, channels, depth, height, width]` and their labels (row-major, same
    /// order).
    public func batch(_ locations: [Location]) -> (input: Tensor, targets: [Int]) {
        let (pd, ph, pw) = (patchSize[0], patchSize[1], patchSize[2])
        let patchVoxels = pd * ph * pw
        let depth = 1 + (channels.first?.count ?? 0)
        var input = [Float](repeating: 0, count: locations.count * depth * patchVoxels)
        var targets = [Int](repeating: 0, count: locations.count * patchVoxels)
        for (b, location) in locations.enumerated() {
            let sample = cases[location.caseIndex]
            let d = sample.image.geometry.dimensions
            let labels = sample.label?.voxels ?? []
            let inputs = [sample.image] + (channels.isEmpty ? [] : channels[location.caseIndex])
            var local = 0
            for z in 0..<pd {
                for y in 0..<ph {
                    let row = ((location.corner[0] + z) * d.y + location.corner[1] + y) * d.x + location.corner[2]
                    for x in 0..<pw {
                        for (c, volume) in inputs.enumerated() {
                            input[(b * depth + c) * patchVoxels + local] = volume.voxels[row + x]
                        }
                        if !labels.isEmpty { targets[b * patchVoxels + local] = Int(labels[row + x]) }
                        local += 1
                    }
                }
            }
        }
        return (Tensor(shape: [locations.count, depth, pd, ph, pw], storage: input), targets)
    }
}

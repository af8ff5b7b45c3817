extension ResNet {
    /// Number of trainable parameters of `ResNet(inputChannels:classes:widths:blocks:norm:)`, from the
    /// configuration alone (checked arithmetic, nothing allocated): 3×3 convolutions without bias, affine norms
    /// (2 · c; batch norm's running statistics are buffers, not parameters), 1×1 shortcut convolutions where the
    /// stride or the width changes, and the final linear layer.
    /// `dimensions` 3 counts 3×3×3 kernels.
    /// - Returns: nil on overflow, mismatched or empty `widths`/`blocks`, or a non-positive count.
    public static func parameterCount(
        dimensions: Int = 2, inputChannels: Int = 1, classes: Int = 2, widths: [Int] = [16, 32, 64],
        blocks: [Int] = [1, 1, 1]
    ) -> Int? {
        guard !widths.isEmpty, widths.count == blocks.count, widths.allSatisfy({ $0 > 0 }),
            blocks.allSatisfy({ $0 > 0 }), inputChannels > 0, classes > 0, dimensions == 2 || dimensions == 3
        else { return nil }
        let nine = Checked(dimensions == 3 ? 27 : 9)
        var total = Checked(inputChannels) * Checked(widths[0]) * nine + Checked(2) * Checked(widths[0])
        var previous = widths[0]
        for (stage, (width, count)) in zip(widths, blocks).enumerated() {
            for b in 0..<count {
                let input = Checked(previous)
                let output = Checked(width)
                total = total + input * output * nine + output * output * nine + Checked(4) * output
                if (stage > 0 && b == 0) || previous != width {
                    total = total + input * output + Checked(2) * output
                }
                previous = width
            }
        }
        return (total + Checked(previous) * Checked(classes) + Checked(classes)).value
    }
}

extension ResNet {
    /// An upper estimate of the float32 values one sample keeps for the backward pass of
    /// `ResNet(dimensions:…widths:blocks:)` on an input of `spatial` voxels: per residual block about eight
    /// tensors of its width at its resolution (convolution outputs, norm caches, the block input and output), and
    /// four for the stem; each stage after the first halves every axis. Checked arithmetic.
    /// - Returns: nil on overflow or bad arguments.
    public static func activationValuesPerSample(dimensions: Int, spatial: Int, widths: [Int], blocks: [Int]) -> Int? {
        guard spatial > 0, !widths.isEmpty, widths.count == blocks.count, dimensions == 2 || dimensions == 3 else {
            return nil
        }
        var total = Checked(spatial) * Checked(widths[0]) * Checked(4)
        var voxels = spatial
        for (stage, (width, count)) in zip(widths, blocks).enumerated() {
            if stage > 0 { voxels = max(1, voxels >> dimensions) }
            total = total + Checked(voxels) * Checked(width) * Checked(8) * Checked(count)
        }
        return total.value
    }
}

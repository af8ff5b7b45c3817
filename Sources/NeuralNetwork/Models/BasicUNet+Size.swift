extension BasicUNet {
    /// Number of trainable parameters of `BasicUNet(dimensions:inputChannels:outputChannels:features:)`, from the
    /// configuration alone (checked arithmetic, nothing allocated): every block is conv 3×3(×3) with bias +
    /// affine instance norm (`in · out · k^d + out + 2 · out`), the upsampling transposed convolutions 2×2(×2)
    /// with bias, the final 1×1 convolution with bias.
    /// - Returns: nil on overflow, dimensions other than 2 and 3, not six features, or a non-positive count.
    public static func parameterCount(
        dimensions: Int = 3, inputChannels: Int = 1, outputChannels: Int = 2,
        features: [Int] = defaultFeatures
    ) -> Int? {
        guard (2...3).contains(dimensions), features.count == 6, features.allSatisfy({ $0 > 0 }), inputChannels > 0,
            outputChannels > 0
        else { return nil }
        let taps3 = Checked(dimensions == 3 ? 27 : 9)
        let taps2 = Checked(dimensions == 3 ? 8 : 4)
        func block(_ input: Checked, _ output: Checked) -> Checked {
            input * output * taps3 + output + Checked(2) * output
        }
        func twoConv(_ input: Checked, _ output: Checked) -> Checked { block(input, output) + block(output, output) }
        let f = features.map { Checked($0) }
        var total = twoConv(Checked(inputChannels), f[0])
        for k in 1...4 { total = total + twoConv(f[k - 1], f[k]) }
        let specs = [
            (features[4], f[3], f[3], true), (features[3], f[2], f[2], true), (features[2], f[1], f[1], true),
            (features[1], f[0], f[5], false),
        ]
        for (input, skip, output, halves) in specs {
            let up = Checked(halves ? input / 2 : input)
            total = total + Checked(input) * up * taps2 + up + twoConv(skip + up, output)
        }
        total = total + f[5] * Checked(outputChannels) + Checked(outputChannels)
        return total.value
    }
}

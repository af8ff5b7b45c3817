/// Sizes of a `UNet` computed from its configuration alone, before anything is allocated: the job factory and each
/// site check them against their limits. Every product and sum is checked; nil means "does not fit in an `Int`".
extension UNet {
    /// Number of trainable parameters (weights and biases) of
    /// `UNet(dimensions:inputChannels:encoderChannels:bottleneckChannels:classes:normalization:)`.
    ///
    /// Conv k^d: `in · out · k^d + out`; transposed conv 2^d: `in · out · 2^d + out`; affine instance norm `2 · c`.
    /// - Returns: nil on overflow, a non-positive channel count, or dimensions other than 2 and 3.
    public static func parameterCount(
        dimensions: Int, inputChannels: Int = 1, encoderChannels: [Int],
        bottleneckChannels: Int, classes: Int,
        normalization: DoubleConv.Normalization = .none
    ) -> Int? {
        guard (2...3).contains(dimensions), !encoderChannels.isEmpty, inputChannels > 0, bottleneckChannels > 0,
            classes > 0, encoderChannels.allSatisfy({ $0 > 0 })
        else { return nil }
        let taps3 = dimensions == 3 ? 27 : 9
        let taps2 = dimensions == 3 ? 8 : 4
        var total = Checked(0)
        func conv(_ input: Checked, _ output: Checked, _ taps: Int) -> Checked {
            input * output * Checked(taps) + output
        }
        func double(_ input: Checked, _ output: Checked) -> Checked {
            let norms = normalization == .instance ? Checked(4) * output : Checked(0)
            return conv(input, output, taps3) + conv(output, output, taps3) + norms
        }
        var previous = Checked(inputChannels)
        for c in encoderChannels {
            total = total + double(previous, Checked(c))
            previous = Checked(c)
        }
        total = total + double(previous, Checked(bottleneckChannels))
        previous = Checked(bottleneckChannels)
        for c in encoderChannels.reversed() {
            total = total + conv(previous, Checked(c), taps2) + double(Checked(2) * Checked(c), Checked(c))
            previous = Checked(c)
        }
        total = total + conv(previous, Checked(classes), 1)
        return total.value
    }

    /// Float32 values of the activations a training step keeps for one sample of `spatial` voxels (the product of
    /// the input's spatial extents): each level's DoubleConv input, hidden and output maps, the pooled copies,
    /// the decoder's up-sampled and concatenated maps, and as many again for their gradients. An estimate (within a
    /// small factor of the real peak), used to refuse configurations that cannot fit before the model is built.
    /// - Returns: nil on overflow or non-positive sizes.
    public static func activationValuesPerSample(
        dimensions: Int, spatial: Int, inputChannels: Int = 1,
        encoderChannels: [Int], bottleneckChannels: Int,
        classes: Int
    ) -> Int? {
        guard (2...3).contains(dimensions), spatial > 0, !encoderChannels.isEmpty else { return nil }
        let shrink = dimensions == 3 ? 8 : 4
        var total = Checked(spatial) * (Checked(inputChannels) + Checked(classes))
        var voxels = spatial
        for c in encoderChannels {
            // Encoder: hidden + output (+ pooled quarter/eighth); decoder at this level: up (c), concat (2c),
            // hidden and output (c each).
            total = total + Checked(voxels) * Checked(c) * Checked(7)
            voxels = max(1, voxels / shrink)
        }
        total = total + Checked(voxels) * Checked(bottleneckChannels) * Checked(3)
        // Gradients of the kept maps.
        return (total * Checked(2)).value
    }
}

/// Overflow-checked non-negative integer arithmetic: once it overflows it stays nil.
struct Checked: Equatable {
    var value: Int?
    init(_ value: Int) { self.value = value >= 0 ? value : nil }
    init(value: Int?) { self.value = value }

    static func + (a: Checked, b: Checked) -> Checked {
        guard let x = a.value, let y = b.value else { return Checked(value: nil) }
        let (r, o) = x.addingReportingOverflow(y)
        return Checked(value: o ? nil : r)
    }
    static func * (a: Checked, b: Checked) -> Checked {
        guard let x = a.value, let y = b.value else { return Checked(value: nil) }
        let (r, o) = x.multipliedReportingOverflow(by: y)
        return Checked(value: o ? nil : r)
    }
}

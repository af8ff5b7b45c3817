import ArgumentParser
import Foundation
import Tensors

/// Per-layer profile of the reference U-Nets' 3×3(×3) convolutions (the shapes of one `unet2d` batch-8 or `unet3d`
/// batch-2 training step): forward with fused bias + ReLU and backward (`∂x` and `∂W`; `∂W` only for the first
/// layer, as in training) under `.im2col` (im2col + sgemm) and `.automatic` (direct kernels where measured to win).
/// Times are the fastest of repeated runs in process CPU time, so that other processes on the machine inflate them
/// less than wall time would (the machine this runs on is shared).
struct ConvLayers: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conv-layers")

    @Option(help: "unet2d or unet3d.") var model = "unet2d"
    @Option(help: "Seconds of CPU time per measurement.") var minTime = 0.4
    @Option(help: "The two lowerings to compare: im2col, direct, winograd or automatic.")
    var compare = "im2col,automatic"

    static let algorithms: [String: ConvolutionAlgorithm] = [
        "im2col": .im2col, "direct": .direct,
        "winograd": .winograd, "automatic": .automatic,
    ]

    func validate() throws {
        guard ["unet2d", "unet3d"].contains(model) else { throw ValidationError("--model must be unet2d or unet3d") }
        let names = compare.split(separator: ",").map(String.init)
        guard names.count == 2, names.allSatisfy({ Self.algorithms[$0] != nil }) else {
            throw ValidationError("--compare takes two of im2col, direct, winograd, automatic, e.g. direct,winograd")
        }
    }

    func run() throws {
        MemoryPolicy.retainFreedMemory()  // as `tessera train` does: reuse freed step buffers
        Parallelism.threads = 1
        let dims = model == "unet2d" ? 2 : 3
        let batch = dims == 2 ? 8 : 2
        // (input channels, output channels, spatial side), in the order the U-Net runs them.
        let layers: [(Int, Int, Int)] =
            dims == 2
            ? [
                (1, 16, 128), (16, 16, 128), (16, 32, 64), (32, 32, 64), (32, 64, 32), (64, 64, 32), (64, 128, 16),
                (128, 128, 16), (128, 256, 8), (256, 256, 8), (256, 128, 16), (128, 128, 16), (128, 64, 32),
                (64, 64, 32), (64, 32, 64), (32, 32, 64), (32, 16, 128), (16, 16, 128),
            ]
            : [
                (1, 8, 64), (8, 8, 64), (8, 16, 32), (16, 16, 32), (16, 32, 16), (32, 32, 16), (32, 64, 8), (64, 64, 8),
                (64, 32, 16), (32, 32, 16), (32, 16, 32), (16, 16, 32), (16, 8, 64), (8, 8, 64),
            ]
        var generator = SeededGenerator(seed: 0)
        var totals = [0.0, 0.0, 0.0, 0.0]
        let names = compare.split(separator: ",").map(String.init)
        let chosen = names.compactMap { Self.algorithms[$0] }
        print(
            "| layer | \(names[0]) forward ms | \(names[0]) backward ms | \(names[1]) forward ms "
                + "| \(names[1]) backward ms |")
        print("|---|---|---|---|---|")
        for (index, (cin, cout, side)) in layers.enumerated() {
            let spatial = Array(repeating: side, count: dims)
            let x = Tensor.randomNormal([batch, cin] + spatial, generator: &generator)
            let w = Tensor.randomNormal(
                [cout, cin] + Array(repeating: 3, count: dims), std: 0.1, generator: &generator)
            let b = Tensor.randomNormal([cout], generator: &generator)
            let gy = Tensor.randomNormal([batch, cout] + spatial, generator: &generator)
            let geometry = ConvolutionGeometry(dimensions: dims, kernelSize: 3, padding: 1)
            var row: [Double] = []
            for algorithm in chosen {
                row.append(
                    Self.cpuSeconds(minTime) {
                        _ = Convolution.forward(
                            x, weight: w, bias: b, geometry: geometry, relu: true, algorithm: algorithm)
                    })
                row.append(
                    Self.cpuSeconds(minTime) {
                        _ = Convolution.backward(
                            gy, input: x, weight: w, hasBias: true, geometry: geometry,
                            inputGradient: index != 0, algorithm: algorithm)
                    })
            }
            for i in 0..<4 { totals[i] += row[i] }
            print(
                String(
                    format: "| %d→%d @ %d^%d | %.2f | %.2f | %.2f | %.2f |", cin, cout, side, dims,
                    row[0] * 1e3, row[1] * 1e3, row[2] * 1e3, row[3] * 1e3))
        }
        print(
            String(
                format: "| total | %.1f | %.1f | %.1f | %.1f |", totals[0] * 1e3, totals[1] * 1e3,
                totals[2] * 1e3, totals[3] * 1e3))
    }

    /// Fastest process-CPU-time of `body` over runs totalling at least `minTime` seconds (after one warm-up run).
    static func cpuSeconds(_ minTime: Double, _ body: () -> Void) -> Double {
        func now() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
        }
        body()
        var best = Double.infinity
        var total = 0.0
        while total < minTime {
            let t0 = now()
            body()
            let t = now() - t0
            best = min(best, t)
            total += t
        }
        return best
    }
}

import ArgumentParser
import Foundation
import NeuralNetwork
import Tensors

/// One training step of a reference model (zero gradients, forward, loss, backward, SGD(0.01, momentum 0.9)) on a
/// fixed random batch, as `../shared/bench/torch_reference.py` times it: input ~ N(0, 1), target = input > 0 for
/// segmentation (CE + soft Dice), labels 0/1 for classification (CE). `resnet3d` is the sample classification
/// pipeline's model (pipelines/classification-resnet3d.yaml: widths [8, 16, 32], one block a stage, instance norm) on
/// a batch of 4 studies of 14 × 48 × 56 voxels; its PyTorch twin is Benchmarks/torch_classifier.py.
struct TrainStep: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train-step")

    @Option(help: "unet2d, unet3d, cls2d or resnet3d.") var model = "unet2d"
    @Option(help: "Threads (Tessera's workers and OpenBLAS share them).") var threads = 1
    @Option(help: "Batch size (default: 8, 2 for unet3d, 4 for resnet3d).") var batch: Int?
    @Option(help: "Untimed warm-up steps.") var warmup = 2
    @Option(help: "Timed trials.") var trials = 5
    @Option(help: "Seconds per trial (steps per trial calibrated from the warm-up).") var minTime = 3.0

    static let models = ["unet2d", "unet3d", "cls2d", "resnet3d"]

    func validate() throws {
        guard Self.models.contains(model) else {
            throw ValidationError("--model must be one of \(Self.models.joined(separator: ", "))")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        MemoryPolicy.retainFreedMemory()  // as `tessera train` does: reuse freed step buffers
        Parallelism.threads = threads
        let batch = self.batch ?? ["unet3d": 2, "resnet3d": 4][model, default: 8]
        var generator = SeededGenerator(seed: 0)
        var sgd = SGD(learningRate: 0.01, momentum: 0.9)
        let step: () throws -> Double
        switch model {
        case "resnet3d":
            var net = ResNet(
                dimensions: 3, inputChannels: 1, classes: 2, widths: [8, 16, 32], blocks: [1, 1, 1], norm: .instance,
                generator: &generator)
            let x = Tensor.randomNormal([batch, 1, 14, 48, 56], generator: &generator)
            let labels = (0..<batch).map { $0 % 2 }
            step = {
                let (logits, trace) = try net.forward(x, training: true)
                let loss = try Loss.crossEntropy(logits: logits, targets: labels)
                try sgd.update(model: &net, gradients: net.backward(loss.gradient, trace: trace))
                return loss.value
            }
        case "cls2d":
            var net = SmallCNN(generator: &generator)
            let x = Tensor.randomNormal([batch, 1, 128, 128], generator: &generator)
            let labels = (0..<batch).map { $0 % 2 }
            step = {
                let (logits, trace) = try net.forward(x)
                let loss = try Loss.crossEntropy(logits: logits, targets: labels)
                try sgd.update(model: &net, gradients: net.backward(loss.gradient, trace: trace))
                return loss.value
            }
        default:
            var net = model == "unet2d" ? UNet.unet2d(generator: &generator) : UNet.unet3d(generator: &generator)
            let shape = model == "unet2d" ? [batch, 1, 128, 128] : [batch, 1, 64, 64, 64]
            let x = Tensor.randomNormal(shape, generator: &generator)
            let targets = x.storage.map { $0 > 0 ? 1 : 0 }
            step = {
                let (logits, trace) = try net.forward(x)
                let loss = try Loss.diceCrossEntropy(logits: logits, targets: targets)
                try sgd.update(model: &net, gradients: net.backward(loss.gradient, trace: trace))
                return loss.value
            }
        }
        let clock = ContinuousClock()
        var fastest = Double.infinity
        var firstLoss = 0.0
        for k in 0..<max(1, warmup) {
            let t0 = clock.now
            let l = try step()
            if k == 0 { firstLoss = l }
            fastest = min(fastest, (clock.now - t0).seconds)
        }
        let n = max(1, Int(exactly: (minTime / fastest).rounded()) ?? 1)
        var rates: [Double] = []
        var others: [Double] = []
        var cpuRates: [Double] = []
        for t in 0..<trials {
            let (busy0, self0) = (Self.machineBusyTicks(), Self.selfTicks())
            let t0 = clock.now
            for _ in 0..<n { _ = try step() }
            let wall = (clock.now - t0).seconds
            let rate = Double(n) / wall
            // Cores other processes used meanwhile (as torch_reference.py reports): a noise indicator.
            let otherTicks = (Self.machineBusyTicks() - busy0) - (Self.selfTicks() - self0)
            let other = Double(otherTicks) / Self.ticksPerSecond / wall
            rates.append(rate)
            others.append(other)
            // Steps per second of this process's own CPU time per thread (torch_reference.py's "cpu-normalised"
            // rate): an estimate of the uncontended 1-thread rate when other processes time-slice the cores.
            let cpu = Double(Self.selfTicks() - self0) / Self.ticksPerSecond
            cpuRates.append(cpu > 0 ? Double(n) / (cpu / Double(threads)) : rate)
            print(
                String(
                    format: "%@ threads=%d trial %d: %.3f steps/s  %.2f img/s  other-procs CPU %.2f cores", model,
                    threads, t, rate, rate * Double(batch), other))
        }
        let median = rates.sorted()[rates.count / 2]
        let cpuMedian = cpuRates.sorted()[cpuRates.count / 2]
        let otherMean = others.reduce(0, +) / Double(others.count)
        print(
            String(
                format: "SUMMARY tessera %@ threads=%d batch=%d steps/s median %.3f [%.3f, %.3f]  img/s %.2f  "
                    + "other CPU mean %.2f  cpu-normalised steps/s median %.3f", model, threads, batch, median,
                rates.min()!, rates.max()!, median * Double(batch), otherMean, cpuMedian))
        let line: [String: Any] = [
            "tool": "tessera", "model": model, "threads": threads, "batch": batch,
            "steps_per_trial": n, "steps_s_median": median, "steps_s_min": rates.min()!,
            "steps_s_max": rates.max()!, "first_loss": firstLoss,
            "blas_core": BLASRuntime.coreName, "kernels_isa": KernelISA.active.description,
            "other_cpu_mean": otherMean, "per_trial_other_cpu": others,
            "cpu_norm_steps_s_median": cpuMedian,
        ]
        let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
        print("JSON " + String(decoding: data, as: UTF8.self))
    }
}

extension TrainStep {
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// Busy jiffies of the whole machine (user, nice, system, irq, softirq, steal) from /proc/stat; 0 if unreadable.
    static func machineBusyTicks() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = text.split(separator: "\n").first
        else { return 0 }
        let v = line.split(separator: " ").dropFirst().prefix(8).compactMap { Int($0) }
        guard v.count == 8 else { return 0 }
        return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    }

    /// This process's user + system jiffies from /proc/self/stat; 0 if unreadable.
    static func selfTicks() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else { return 0 }
        return user + system
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

import Randomness
import Foundation
import NeuralNetwork
import Tensors
import Volumes

/// Metrics of one epoch.
public struct EpochReport: Sendable, Codable {
    public var epoch: Int
    public var loss: Double
    /// Mean validation Dice per class (1-based classes), over held-out patients' whole volumes.
    public var validationDice: [Double]
    public var seconds: Double
    public var meanDice: Double { validationDice.isEmpty ? 0 : validationDice.reduce(0, +) / Double(validationDice.count) }
}

/// Local training of a 2-D U-Net on axial slices of preprocessed cases: class-balanced slice sampling, seeded
/// augmentation of whole volumes each epoch, Dice + cross-entropy, validation Dice on held-out patients, and the
/// best checkpoint kept (safetensors, PyTorch names). Stops cleanly on a non-finite loss, keeping the last good one.
public struct Trainer: Sendable {
    public var configuration: TrainingConfiguration
    public var preprocessing: PreprocessingConfiguration
    public private(set) var model: UNet
    /// FedProx (Li et al. 2020): adds (μ/2)·‖θ − θ_global‖² to the loss, i.e. μ·(θ − θ_global) to each gradient.
    public var proximal: (mu: Float, reference: NamedTensors)?

    public init(configuration: TrainingConfiguration, preprocessing: PreprocessingConfiguration) {
        self.configuration = configuration
        self.preprocessing = preprocessing
        var g = Tensors.SeededGenerator(seed: configuration.model.seed)
        model = UNet(dimensions: 2, inputChannels: 1, encoderChannels: configuration.model.encoderChannels,
                     bottleneckChannels: configuration.model.bottleneckChannels, classes: configuration.model.classes,
                     generator: &g)
    }

    /// Replaces the model's weights (e.g. the global model of a federated round).
    public mutating func load(_ state: NamedTensors) throws(TrainingError) {
        do { try model.load(state) } catch {
            throw TrainingError(.model, "the weights do not fit the configured model: \(error)")
        }
    }

    /// Patients for training and validation (deterministic for the seed; at least one validation case when there
    /// are two or more patients and `validationFraction` > 0).
    public func split(_ cases: [SegmentationCase]) -> (train: [SegmentationCase], validation: [SegmentationCase]) {
        var g = SplitMix64(seed: configuration.seed)
        let patients = Array(Set(cases.map(\.patientID))).sorted().shuffled(using: &g)
        var n = Int((Double(patients.count) * configuration.validationFraction).rounded())
        if configuration.validationFraction > 0 && patients.count >= 2 { n = max(1, n) }
        n = min(n, patients.count - 1)
        let held = Set(patients.prefix(n))
        return (cases.filter { !held.contains($0.patientID) }, cases.filter { held.contains($0.patientID) })
    }

    /// Trains for the configured epochs.
    /// - Parameters:
    ///   - checkpoint: where the best model is written (nil: not written).
    ///   - progress: called after every epoch.
    /// - Returns: the epoch reports.
    /// - Throws: `.nonFinite` on a NaN/Inf loss (the last good checkpoint stays), `.data` for unusable cases.
    public mutating func fit(train: [SegmentationCase], validation: [SegmentationCase], checkpoint: String? = nil,
                             progress: (EpochReport) -> Void = { _ in }) throws(TrainingError) -> [EpochReport] {
        guard !train.isEmpty else { throw TrainingError(.data, "no training case") }
        let c = configuration
        var optimizer: any NeuralNetwork.Optimizer
        switch c.optimizer.name {
        case "sgd": optimizer = SGD(learningRate: c.optimizer.learningRate, momentum: c.optimizer.momentum,
                                    weightDecay: c.optimizer.weightDecay, nesterov: c.optimizer.nesterov)
        case "adamw": optimizer = AdamW(learningRate: c.optimizer.learningRate, weightDecay: c.optimizer.weightDecay)
        default: optimizer = Adam(learningRate: c.optimizer.learningRate, weightDecay: c.optimizer.weightDecay)
        }
        var rng = SplitMix64(seed: c.seed ^ 0xA5A5)
        var augmentation = preprocessing.augmentationPipeline()
        var reports: [EpochReport] = []
        var best = -1.0
        for epoch in 1...c.epochs {
            let start = Date()
            // Augment whole volumes once per epoch, then draw class-balanced slices.
            var cases: [Sample] = []
            for t in train {
                do { cases.append(try augmentation.apply(t.sample)) } catch {
                    throw TrainingError(.data, "augmentation failed on \(t.patientID): \(error.message)")
                }
            }
            var foreground: [(Int, Int)] = [], background: [(Int, Int)] = []
            for (i, s) in cases.enumerated() {
                guard let label = s.label else { continue }
                for k in 0..<label.geometry.dimensions.z {
                    if label.slice(k).contains(where: { $0 != 0 }) { foreground.append((i, k)) } else { background.append((i, k)) }
                }
            }
            var picks: [(Int, Int)] = []
            for _ in 0..<c.slicesPerEpoch {
                let fromForeground = !foreground.isEmpty && (background.isEmpty || rng.uniform() < c.foregroundFraction)
                let pool = fromForeground ? foreground : background
                picks.append(pool[rng.integer(0, pool.count - 1)])
            }
            var lossSum = 0.0, batches = 0
            for batchStart in stride(from: 0, to: picks.count, by: c.batchSize) {
                let batch = Array(picks[batchStart..<min(batchStart + c.batchSize, picks.count)])
                let (input, targets) = makeBatch(batch, cases)
                let value = try step(input: input, targets: targets, optimizer: &optimizer, epoch: epoch, checkpoint: checkpoint)
                lossSum += value
                batches += 1
            }
            let dice = validation.isEmpty ? [] : try validate(validation)
            let report = EpochReport(epoch: epoch, loss: lossSum / Double(max(batches, 1)), validationDice: dice,
                                     seconds: Date().timeIntervalSince(start))
            reports.append(report)
            let score = validation.isEmpty ? -report.loss : report.meanDice
            if score > best, let checkpoint {
                best = score
                try save(to: checkpoint, metadata: ["epoch": String(epoch), "validation_dice": dice.map { String(format: "%.4f", $0) }.joined(separator: ",")])
            }
            progress(report)
        }
        return reports
    }

    func makeBatch(_ picks: [(Int, Int)], _ cases: [Sample]) -> (Tensor, [Int]) {
        let g = cases[0].image.geometry
        let h = g.dimensions.y, w = g.dimensions.x, plane = h * w
        var input = [Float](repeating: 0, count: picks.count * plane)
        var targets = [Int](repeating: 0, count: picks.count * plane)
        for (b, (i, k)) in picks.enumerated() {
            let image = cases[i].image.slice(k)
            input.replaceSubrange((b * plane)..<((b + 1) * plane), with: image)
            if let label = cases[i].label?.slice(k) {
                for (j, v) in label.enumerated() { targets[b * plane + j] = Int(v) }
            }
        }
        return (Tensor(shape: [picks.count, 1, h, w], storage: input), targets)
    }

    mutating func step(input: Tensor, targets: [Int], optimizer: inout any NeuralNetwork.Optimizer, epoch: Int,
                       checkpoint: String?) throws(TrainingError) -> Double {
        do {
            let (logits, trace) = try model.forward(input)
            let loss: LossResult
            switch configuration.loss {
            case "ce": loss = try Loss.crossEntropy(logits: logits, targets: targets)
            case "dice": loss = try Loss.softDice(logits: logits, targets: targets)
            default: loss = try Loss.diceCrossEntropy(logits: logits, targets: targets)
            }
            guard loss.value.isFinite else {
                throw TrainingError(.nonFinite, "the loss became \(loss.value) in epoch \(epoch); training stopped"
                                    + (checkpoint.map { " and the last good checkpoint \($0) was kept" } ?? "")
                                    + ". Lower the learning rate or enable gradient clipping")
            }
            var gradients = model.backward(loss.gradient, trace: trace)
            if let proximal, proximal.mu > 0 {
                let current = model.parameters
                for (name, g) in gradients {
                    guard let theta = current[name], let ref = proximal.reference[name], ref.shape == theta.shape else { continue }
                    var adjusted = g
                    for i in adjusted.storage.indices {
                        adjusted.storage[i] += proximal.mu * (theta.storage[i] - ref.storage[i])
                    }
                    gradients[name] = adjusted
                }
            }
            if configuration.gradientClipNorm > 0 { _ = clipGradientNorm(&gradients, maxNorm: configuration.gradientClipNorm) }
            try optimizer.update(model: &model, gradients: gradients)
            return loss.value
        } catch let error as TrainingError {
            throw error
        } catch {
            throw TrainingError(.nonFinite, "training step failed in epoch \(epoch): \(error)")
        }
    }

    /// Mean Dice per class over the validation volumes.
    public func validate(_ cases: [SegmentationCase]) throws(TrainingError) -> [Double] {
        let classes = configuration.model.classes
        var sums = [Double](repeating: 0, count: classes - 1)
        for c in cases {
            guard let truth = c.sample.label else { continue }
            let predicted = try Segmenter(model: model).predict(c.sample.image)
            for k in 1..<classes { sums[k - 1] += dice(predicted.voxels, truth.voxels, label: UInt8(k)) }
        }
        return sums.map { $0 / Double(max(cases.count, 1)) }
    }

    /// Writes the model's `state_dict` with the configuration in the metadata.
    public func save(to path: String, metadata: [String: String] = [:]) throws(TrainingError) {
        var meta = metadata
        meta["architecture"] = "unet2d"
        meta["encoder_channels"] = configuration.model.encoderChannels.map(String.init).joined(separator: ",")
        meta["bottleneck_channels"] = String(configuration.model.bottleneckChannels)
        meta["segments"] = configuration.model.segments.map(String.init).joined(separator: ",")
        do {
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
            try SafeTensors.write(model.stateDict, metadata: meta, to: path)
        } catch {
            throw TrainingError(.io, "cannot write the checkpoint \(path)", cause: "\(error)")
        }
    }
}

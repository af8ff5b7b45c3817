import DifferentialPrivacy
import Foundation
import NeuralNetwork
import Randomness
import Tensors
import Volumes

/// Where training is within an epoch, reported after every optimiser step.
public struct StepProgress: Sendable, Equatable {
    public var epoch: Int
    public var epochs: Int
    /// Steps done in this epoch (1-based) out of `steps`.
    public var step: Int
    public var steps: Int
    /// Mean training loss of this epoch so far.
    public var meanLoss: Double
    /// Seconds since the epoch started.
    public var seconds: Double

    public init(epoch: Int, epochs: Int, step: Int, steps: Int, meanLoss: Double, seconds: Double) {
        (self.epoch, self.epochs, self.step, self.steps, self.meanLoss, self.seconds) =
            (epoch, epochs, step, steps, meanLoss, seconds)
    }
}

/// Metrics of one epoch.
public struct EpochReport: Sendable, Codable {
    public var epoch: Int
    public var loss: Double
    /// Mean validation Dice per class (1-based classes), over held-out patients' whole volumes.
    public var validationDice: [Double]
    public var seconds: Double
    /// DP-SGD: the record after this epoch (steps so far in this `fit`); nil without DP-SGD.
    public var dpSGD: DPSGDRecord? = nil
    public var meanDice: Double {
        validationDice.isEmpty ? 0 : validationDice.reduce(0, +) / Double(validationDice.count)
    }
}

/// Local training of a 2-D U-Net on axial slices of preprocessed cases: class-balanced slice sampling, seeded
/// augmentation of whole volumes each epoch, Dice + cross-entropy, validation Dice on held-out patients, and the
/// best checkpoint kept (safetensors, PyTorch names). Stops cleanly on a non-finite loss, keeping the last good one.
///
/// With `configuration.dpSGD` the optimiser steps are DP-SGD with the patient as the privacy unit (see
/// `TrainingConfiguration.DPSGD`, `privatizedGradient`), and `dpSGDRecord` says what the accountant must charge.
public struct Trainer: Sendable {
    public var configuration: TrainingConfiguration
    public var preprocessing: PreprocessingConfiguration
    public internal(set) var model: UNet
    /// FedProx (Li et al. 2020): adds (μ/2)·‖θ − θ_global‖² to the loss, i.e. μ·(θ − θ_global) to each gradient.
    public var proximal: (mu: Float, reference: NamedTensors)?
    /// Where DP-SGD's Gaussian noise comes from: the operating system's CSPRNG, because the noise is what protects
    /// the patients. Tests inject `SeededNoiseSource`; never ship weights trained with one.
    public var noiseSource: any NoiseSource = SystemNoiseSource()
    /// DP-SGD: what the last `fit` released, updated after every noisy step (so it counts the steps taken even when
    /// `fit` throws); nil without DP-SGD.
    public internal(set) var dpSGDRecord: DPSGDRecord?
    /// Measures the time budget (`training.time_budget_seconds`); tests inject a manual clock.
    public var stopwatch = Stopwatch(clock: ContinuousClock())
    /// What the last `fit` decided: its best epoch and why it stopped (nil before, or when it threw).
    public internal(set) var convergence: ConvergenceRecord?

    public init(configuration: TrainingConfiguration, preprocessing: PreprocessingConfiguration) {
        self.configuration = configuration
        self.preprocessing = preprocessing
        var g = Tensors.SeededGenerator(seed: configuration.model.seed)
        model = UNet(
            dimensions: configuration.model.dimensions, inputChannels: configuration.model.inputChannelCount,
            encoderChannels: configuration.model.encoderChannels,
            bottleneckChannels: configuration.model.bottleneckChannels, classes: configuration.model.classes,
            normalization: configuration.model.normalization, generator: &g)
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
        let held = Self.heldOutPatients(cases.map(\.patientID), configuration: configuration)
        return (cases.filter { !held.contains($0.patientID) }, cases.filter { held.contains($0.patientID) })
    }

    /// The patients held out for validation: `validationFraction` of them (at least one when there are two or more
    /// and the fraction is > 0, never all), drawn with `configuration.seed`. Every trainer splits by this rule.
    public static func heldOutPatients(_ ids: [String], configuration: TrainingConfiguration) -> Set<String> {
        var g = SplitMix64(seed: configuration.seed)
        let patients = Array(Set(ids)).sorted().shuffled(using: &g)
        guard !patients.isEmpty else { return [] }
        var n = Int(exactly: (Double(patients.count) * configuration.validationFraction).rounded()) ?? 0
        if configuration.validationFraction > 0 && patients.count >= 2 { n = max(1, n) }
        n = min(n, patients.count - 1)
        return Set(patients.prefix(n))
    }

    /// The configured optimiser (`training.optimizer`), with fresh state.
    static func makeOptimizer(_ c: TrainingConfiguration) -> any NeuralNetwork.Optimizer {
        switch c.optimizer.name {
        case "sgd":
            return SGD(
                learningRate: c.optimizer.learningRate, momentum: c.optimizer.momentum,
                weightDecay: c.optimizer.weightDecay, nesterov: c.optimizer.nesterov)
        case "adamw": return AdamW(learningRate: c.optimizer.learningRate, weightDecay: c.optimizer.weightDecay)
        default: return Adam(learningRate: c.optimizer.learningRate, weightDecay: c.optimizer.weightDecay)
        }
    }

    /// FedProx's term μ·(θ − θ_global) added to each gradient (`proximal`), then clipping by global norm.
    static func adjust(
        _ gradients: inout NamedTensors, current: NamedTensors, proximal: (mu: Float, reference: NamedTensors)?,
        clipNorm: Float
    ) {
        if let proximal, proximal.mu > 0 {
            for (name, g) in gradients {
                guard let theta = current[name], let ref = proximal.reference[name], ref.shape == theta.shape else {
                    continue
                }
                var adjusted = g
                for i in adjusted.storage.indices {
                    adjusted.storage[i] += proximal.mu * (theta.storage[i] - ref.storage[i])
                }
                gradients[name] = adjusted
            }
        }
        if clipNorm > 0 { _ = clipGradientNorm(&gradients, maxNorm: clipNorm) }
    }

    /// Trains for at most `configuration.epochs` epochs, stopping earlier by `configuration.earlyStopping` (only with
    /// validation cases) or `timeBudgetSeconds` (measured by `stopwatch`); `ConvergenceMonitor` decides which epoch is
    /// best and when to stop, and `convergence` records it. With validation cases the model ends with the best
    /// epoch's weights (the ones the checkpoint holds); without them it ends with the last epoch's.
    /// - Parameters:
    ///   - checkpoint: where the best model is written at every improving epoch (nil: not written). The score is the
    ///     mean validation Dice, or −loss without validation cases.
    ///   - progress: called after every epoch.
    ///   - onStep: called after every optimiser step (for a progress bar).
    /// - Returns: the epoch reports (with DP-SGD, each carries the `DPSGDRecord` so far).
    /// - Throws: `.nonFinite` on a NaN/Inf loss (the last good checkpoint stays), `.data` for unusable cases,
    ///   `.configuration` when DP-SGD asks for more patients per step than `train` holds.
    public mutating func fit(
        train: [SegmentationCase], validation: [SegmentationCase], checkpoint: String? = nil,
        onStep: (StepProgress) -> Void = { _ in },
        progress: (EpochReport) -> Void = { _ in }
    ) throws(TrainingError) -> [EpochReport] {
        guard !train.isEmpty else { throw TrainingError(.data, "no training case") }
        let c = configuration
        dpSGDRecord = nil
        let patients = Self.patientGroups(train)
        if let dp = c.dpSGD {
            try dp.validate(limits: nil)
            dpSGDRecord = DPSGDRecord(
                steps: 0, samplingRate: try dp.samplingRate(trainPatients: patients.count),
                noiseMultiplier: dp.noiseMultiplier, maxGradNorm: dp.maxGradNorm,
                sampling: dp.sampling, trainPatients: patients.count,
                patientsPerStep: dp.patientsPerStep)
        }
        var optimizer = Self.makeOptimizer(c)
        var rng = SplitMix64(seed: c.seed ^ 0xA5A5)
        var augmentation = preprocessing.augmentationPipeline()
        var reports: [EpochReport] = []
        convergence = nil
        var monitor = ConvergenceMonitor(c, validating: !validation.isEmpty)
        let elapsed = stopwatch.start()
        var bestState: NamedTensors?
        for epoch in 1...c.epochs {
            let start = Date()
            // Augment whole volumes once per epoch, then draw class-balanced slices (2-D) or patches (3-D).
            // Every input channel of a case with the same draws (`SegmentationCase.augmented`).
            var cases: [Sample] = []
            var channels: [[Volume<Float>]] = []
            for t in train {
                do {
                    let augmented = try t.augmented(by: &augmentation)
                    cases.append(augmented.sample)
                    channels.append(augmented.additionalChannels)
                } catch {
                    throw TrainingError(.data, "augmentation failed on \(t.patientID): \(error.message)")
                }
            }
            var lossSum = 0.0
            var batches = 0
            if let dp = c.dpSGD {
                (lossSum, batches) = try dpSGDEpoch(
                    dp, cases: cases, patients: patients, optimizer: &optimizer,
                    rng: &rng, epoch: epoch, start: start, onStep: onStep)
            } else {
                // Batch k + 1 is assembled on a background task while the model trains on batch k; every random pick
                // is drawn here first, so the order (and the result) does not depend on scheduling.
                let prefetcher: BatchPrefetcher<Batch>
                if c.model.dimensions == 3 {
                    // Class-balanced 3-D patches.
                    let patches = try PatchDataset(
                        cases: cases, channels: channels, patchSize: c.model.patchExtents,
                        foregroundFraction: c.foregroundFraction)
                    let groups = Self.groups(
                        patches.sampleLocations(count: c.patchesPerEpoch, generator: &rng),
                        c.batchSize)
                    prefetcher = BatchPrefetcher<Batch>(count: groups.count) { i in
                        let b = patches.batch(groups[i])
                        return (b.input, b.targets)
                    }
                } else {
                    // Class-balanced axial slices.
                    let groups = Self.groups(
                        Self.slicePicks(
                            cases, count: c.slicesPerEpoch,
                            foregroundFraction: c.foregroundFraction, generator: &rng),
                        c.batchSize)
                    let (epochCases, epochChannels) = (cases, channels)
                    prefetcher = BatchPrefetcher<Batch>(count: groups.count) { i in
                        Self.makeBatch(groups[i], epochCases, channels: epochChannels)
                    }
                }
                while let (input, targets) = try nextBatch(prefetcher) {
                    lossSum += try step(
                        input: input, targets: targets, optimizer: &optimizer, epoch: epoch,
                        checkpoint: checkpoint)
                    batches += 1
                    onStep(
                        StepProgress(
                            epoch: epoch, epochs: c.epochs, step: batches, steps: prefetcher.count,
                            meanLoss: lossSum / Double(batches), seconds: Date().timeIntervalSince(start)))
                }
            }
            let dice = validation.isEmpty ? [] : try validate(validation)
            let report = EpochReport(
                epoch: epoch, loss: lossSum / Double(max(batches, 1)), validationDice: dice,
                seconds: Date().timeIntervalSince(start), dpSGD: dpSGDRecord)
            reports.append(report)
            let decision = monitor.record(
                epoch: epoch, score: validation.isEmpty ? -report.loss : report.meanDice, elapsed: elapsed())
            if decision.improved {
                if let checkpoint {
                    try save(
                        to: checkpoint,
                        metadata: [
                            "epoch": String(epoch),
                            "validation_dice": dice.map { String(format: "%.4f", $0) }.joined(separator: ","),
                        ])
                }
                if !validation.isEmpty { bestState = model.stateDict }
            }
            progress(report)
            if let stop = decision.stop {
                convergence = monitor.summary(epochsRun: epoch, stoppedBy: stop)
                break
            }
        }
        if let bestState { try load(bestState) }
        return reports
    }

    /// `items` in consecutive groups of `size` (the last may be shorter).
    static func groups<T>(_ items: [T], _ size: Int) -> [[T]] {
        stride(from: 0, to: items.count, by: size).map { Array(items[$0..<min($0 + size, items.count)]) }
    }

    /// `count` (case, slice) picks: a slice with foreground with probability `foregroundFraction`, else one without.
    static func slicePicks(
        _ cases: [Sample], count: Int, foregroundFraction: Double,
        generator rng: inout SplitMix64
    ) -> [(Int, Int)] {
        var foreground: [(Int, Int)] = []
        var background: [(Int, Int)] = []
        for (i, s) in cases.enumerated() {
            guard let label = s.label else { continue }
            for k in 0..<label.geometry.dimensions.z {
                if label.slice(k).contains(where: { $0 != 0 }) {
                    foreground.append((i, k))
                } else {
                    background.append((i, k))
                }
            }
        }
        var picks: [(Int, Int)] = []
        for _ in 0..<count {
            let fromForeground = !foreground.isEmpty && (background.isEmpty || rng.uniform() < foregroundFraction)
            let pool = fromForeground ? foreground : background
            guard !pool.isEmpty else { break }
            picks.append(pool[rng.integer(0, pool.count - 1)])
        }
        return picks
    }

    private func nextBatch(_ prefetcher: BatchPrefetcher<Batch>) throws(TrainingError) -> Batch? {
        do { return try prefetcher.next() } catch { throw TrainingError(.data, "cannot assemble a batch: \(error)") }
    }

    typealias Batch = (Tensor, [Int])

    /// Slices `[picks.count, channels, height, width]`: channel 0 from `cases`, then each case's `channels`
    /// (input channels after the first, on its grid; none for one-channel cases).
    static func makeBatch(_ picks: [(Int, Int)], _ cases: [Sample], channels: [[Volume<Float>]] = [])
        -> (Tensor, [Int])
    {
        let g = cases[0].image.geometry
        let h = g.dimensions.y
        let w = g.dimensions.x
        let plane = h * w
        let depth = 1 + (channels.first?.count ?? 0)
        var input = [Float](repeating: 0, count: picks.count * depth * plane)
        var targets = [Int](repeating: 0, count: picks.count * plane)
        for (b, (i, k)) in picks.enumerated() {
            let inputs = [cases[i].image] + (channels.isEmpty ? [] : channels[i])
            for (c, volume) in inputs.enumerated() {
                let start = (b * depth + c) * plane
                input.replaceSubrange(start..<(start + plane), with: volume.slice(k))
            }
            if let label = cases[i].label?.slice(k) {
                for (j, v) in label.enumerated() { targets[b * plane + j] = Int(v) }
            }
        }
        return (Tensor(shape: [picks.count, depth, h, w], storage: input), targets)
    }

    mutating func step(
        input: Tensor, targets: [Int], optimizer: inout any NeuralNetwork.Optimizer, epoch: Int,
        checkpoint: String?
    ) throws(TrainingError) -> Double {
        do {
            let (logits, trace) = try model.forward(input)
            let loss: LossResult
            switch configuration.loss {
            case "ce": loss = try Loss.crossEntropy(logits: logits, targets: targets)
            case "dice": loss = try Loss.softDice(logits: logits, targets: targets)
            default: loss = try Loss.diceCrossEntropy(logits: logits, targets: targets)
            }
            guard loss.value.isFinite else {
                throw TrainingError(
                    .nonFinite,
                    "the loss became \(loss.value) in epoch \(epoch); training stopped"
                        + (checkpoint.map { " and the last good checkpoint \($0) was kept" } ?? "")
                        + ". Lower the learning rate or enable gradient clipping")
            }
            var gradients = model.backward(loss.gradient, trace: trace)
            Self.adjust(
                &gradients, current: model.parameters, proximal: proximal, clipNorm: configuration.gradientClipNorm)
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
            let predicted = try segmenter().predict(c.inputs)
            for k in 1..<classes { sums[k - 1] += dice(predicted.voxels, truth.voxels, label: UInt8(k)) }
        }
        return sums.map { $0 / Double(max(cases.count, 1)) }
    }

    /// The current model as a segmenter (3-D: sliding windows of the configured patch).
    public func segmenter() throws(TrainingError) -> Segmenter {
        guard configuration.model.dimensions == 3 else { return Segmenter(model: model) }
        let window = try SlidingWindowInference(
            windowSize: configuration.model.patchExtents,
            overlap: configuration.model.windowOverlap,
            blending: configuration.model.windowBlending, batchSize: 2)
        return Segmenter(model: model, window: window)
    }

    /// Writes the model's `state_dict` with `CheckpointMetadata` (architecture, preprocessing) and `metadata`.
    public func save(to path: String, metadata: [String: String] = [:]) throws(TrainingError) {
        try CheckpointMetadata.write(
            model.stateDict, configuration: configuration, preprocessing: preprocessing, metadata: metadata, to: path)
    }
}

extension EpochReport {
    /// The epoch as TensorBoard scalars: `train/loss`, `validation/dice` (mean over classes) and
    /// `validation/dice_class_<k>`, `epoch/seconds` (`tessera train --tensorboard`).
    public var trackedScalars: [(tag: String, value: Double)] {
        var values: [(tag: String, value: Double)] = [("train/loss", loss)]
        if !validationDice.isEmpty {
            values.append(("validation/dice", meanDice))
            for (k, dice) in validationDice.enumerated() { values.append(("validation/dice_class_\(k + 1)", dice)) }
        }
        values.append(("epoch/seconds", seconds))
        return values
    }
}

import DifferentialPrivacy
import Foundation
import NeuralNetwork
import Randomness
import Tensors
import Volumes

/// What a site's privacy accountant needs to charge a DP-SGD run: T steps of the subsampled Gaussian mechanism
/// with sampling rate q and noise multiplier σ, on a training set of N patients. The accountant turns this into
/// (ε, δ); the trainer does not.
public struct DPSGDRecord: Sendable, Equatable, Codable {
    /// T: noisy optimiser steps taken so far (each one release of the mechanism, empty Poisson lots included).
    public var steps: Int
    /// q = B / N, in (0, 1].
    public var samplingRate: Double
    /// σ: the noise standard deviation on the summed clipped gradients is σ · C.
    public var noiseMultiplier: Double
    /// C: the per-patient L2 clipping bound.
    public var maxGradNorm: Double
    /// How the lots were drawn (`fixed` is accounted as Poisson with q = B / N: an approximation).
    public var sampling: TrainingConfiguration.DPSGD.Sampling
    /// N: distinct patients (`patientID`) in the training set; the privacy unit is one of them.
    public var trainPatients: Int
    /// B: the expected lot size.
    public var patientsPerStep: Int

    public init(
        steps: Int, samplingRate: Double, noiseMultiplier: Double, maxGradNorm: Double,
        sampling: TrainingConfiguration.DPSGD.Sampling, trainPatients: Int, patientsPerStep: Int
    ) {
        self.steps = steps
        self.samplingRate = samplingRate
        self.noiseMultiplier = noiseMultiplier
        self.maxGradNorm = maxGradNorm
        self.sampling = sampling
        self.trainPatients = trainPatients
        self.patientsPerStep = patientsPerStep
    }
}

// MARK: - DP-SGD

extension Trainer {
    /// One patient's micro-batch: input `[slices, 1, H, W]` (unet2d) or `[patches, 1, D, H, W]` (unet3d) and one
    /// target class per voxel, row-major in the same order.
    public typealias MicroBatch = (input: Tensor, targets: [Int])

    /// The privatised gradient of one DP-SGD step (Abadi et al. 2016, Algorithm 1, lines 4–6), patient-level:
    ///
    ///     g̃ = ( Σ_p g_p · min(1, C / ‖g_p‖₂) + N(0, σ²C² I) ) / B
    ///
    /// where g_p is the gradient of the loss (`training.loss`, mean over the micro-batch's voxels) on patient p's
    /// micro-batch alone, ‖·‖₂ the L2 norm over every parameter (accumulated in Double), and the noise is drawn per
    /// coordinate from `noise` (Box–Muller, both outputs used). Dividing by the expected lot size B rather than the
    /// realised one is what the accounting assumes. Gradients are added into one running sum as they are computed.
    /// The model has no batch statistics (the U-Net's normalisation is none or per-sample instance norm), so one
    /// patient's gradient depends on that patient's data only.
    /// - Parameters:
    ///   - lot: one micro-batch per sampled patient (may be empty: pure noise).
    ///   - noiseMultiplier: σ ≥ 0 (0 only for tests: the configuration requires σ > 0).
    ///   - maxGradNorm: C > 0.
    ///   - expectedLotSize: B ≥ 1.
    /// - Returns: the gradient, named and shaped as `model.parameters`, and each patient's loss.
    /// - Throws: `.invalidArgument` for bad σ, C or B; `.nonFinite` for a NaN/Inf loss or gradient norm.
    public func privatizedGradient<S: NoiseSource>(
        lot: [MicroBatch], noiseMultiplier: Double, maxGradNorm: Double,
        expectedLotSize: Int, noise: inout S
    ) throws(TrainingError)
        -> (gradient: NamedTensors, losses: [Double])
    {
        guard noiseMultiplier.isFinite, noiseMultiplier >= 0, maxGradNorm.isFinite, maxGradNorm > 0,
            expectedLotSize >= 1
        else {
            throw TrainingError(
                .invalidArgument,
                "DP-SGD needs σ ≥ 0, C > 0 and B ≥ 1 (finite); got σ = "
                    + "\(noiseMultiplier), C = \(maxGradNorm), B = \(expectedLotSize)")
        }
        let parameters = model.parameters
        var sums = parameters.map { [Float](repeating: 0, count: $0.tensor.count) }
        var losses: [Double] = []
        for patient in lot {
            let (value, gradients) = try patientGradient(patient)
            guard value.isFinite else {
                throw TrainingError(
                    .nonFinite,
                    "the loss became \(value) in a DP-SGD step; training stopped. Lower "
                        + "the learning rate")
            }
            var squares = 0.0
            for (name, _) in parameters {
                for v in gradients[name]?.storage ?? [] { squares += Double(v) * Double(v) }
            }
            let norm = squares.squareRoot()
            guard norm.isFinite else {
                throw TrainingError(
                    .nonFinite,
                    "a patient's gradient norm became \(norm) in a DP-SGD step; training "
                        + "stopped. Lower the learning rate")
            }
            let factor = norm > maxGradNorm ? maxGradNorm / norm : 1
            for (k, (name, tensor)) in parameters.enumerated() {
                guard let g = gradients[name] else { continue }  // no gradient: zero
                guard g.count == tensor.count else {
                    throw TrainingError(
                        .model,
                        "the gradient of \(name) has \(g.count) values for \(tensor.count) "
                            + "parameters")
                }
                for i in sums[k].indices { sums[k][i] += Float(Double(g.storage[i]) * factor) }
            }
            losses.append(value)
        }
        let std = noiseMultiplier * maxGradNorm
        let lotSize = Double(expectedLotSize)
        var spare: Double?
        var out = NamedTensors()
        for (k, (name, tensor)) in parameters.enumerated() {
            var values = sums[k]
            for i in values.indices {
                var z = 0.0
                if std > 0 {
                    if let s = spare {
                        z = s
                        spare = nil
                    } else {
                        let radius = (-2 * log(noise.uniform())).squareRoot()
                        let angle = 2 * Double.pi * noise.uniform()
                        z = radius * cos(angle)
                        spare = radius * sin(angle)
                    }
                }
                values[i] = Float((Double(values[i]) + std * z) / lotSize)
            }
            out[name] = Tensor(shape: tensor.shape, storage: values)
        }
        return (out, losses)
    }

    /// The loss and the gradient of one micro-batch (no clipping, no proximal term).
    func patientGradient(_ batch: MicroBatch) throws(TrainingError) -> (Double, NamedTensors) {
        do {
            let (logits, trace) = try model.forward(batch.input)
            let loss: LossResult
            switch configuration.loss {
            case "ce": loss = try Loss.crossEntropy(logits: logits, targets: batch.targets)
            case "dice": loss = try Loss.softDice(logits: logits, targets: batch.targets)
            default: loss = try Loss.diceCrossEntropy(logits: logits, targets: batch.targets)
            }
            guard loss.value.isFinite else { return (loss.value, NamedTensors()) }
            return (loss.value, model.backward(loss.gradient, trace: trace))
        } catch {
            throw TrainingError(.model, "a DP-SGD forward/backward pass failed: \(error)")
        }
    }

    /// The patients of one DP-SGD step, as ascending indices into `0..<patientCount`.
    /// - `poisson`: each index independently with probability q = B / N (one `uniform()` per patient, in order);
    /// - `fixed`: exactly min(B, N) distinct indices, uniformly (partial Fisher–Yates).
    public static func sampleLot(
        patientCount: Int, patientsPerStep: Int,
        sampling: TrainingConfiguration.DPSGD.Sampling,
        generator: inout SplitMix64
    ) -> [Int] {
        guard patientCount > 0, patientsPerStep > 0 else { return [] }
        switch sampling {
        case .poisson:
            let q = Double(patientsPerStep) / Double(patientCount)
            var lot: [Int] = []
            for i in 0..<patientCount where generator.uniform() < q { lot.append(i) }
            return lot
        case .fixed:
            var indices = Array(0..<patientCount)
            let b = min(patientsPerStep, patientCount)
            for i in 0..<b { indices.swapAt(i, generator.integer(i, patientCount - 1)) }
            return indices.prefix(b).sorted()
        }
    }

    /// Steps of one DP-SGD epoch: round(N / B), at least 1 (integer arithmetic: no conversion from Double).
    public static func dpSGDStepsPerEpoch(trainPatients: Int, patientsPerStep: Int) -> Int {
        guard trainPatients > 0, patientsPerStep > 0 else { return 1 }
        let (quotient, remainder) = trainPatients.quotientAndRemainder(dividingBy: patientsPerStep)
        // Half up: remainder / B ≥ 1/2 (remainder < B, so the comparison cannot overflow).
        return max(1, quotient + (remainder >= patientsPerStep - remainder ? 1 : 0))
    }

    /// Case indices of each distinct patient, in order of first appearance in `train`.
    static func patientGroups(_ train: [SegmentationCase]) -> [[Int]] {
        var order: [String] = []
        var groups: [String: [Int]] = [:]
        for (i, c) in train.enumerated() {
            if groups[c.patientID] == nil { order.append(c.patientID) }
            groups[c.patientID, default: []].append(i)
        }
        return order.map { groups[$0] ?? [] }
    }

    /// One DP-SGD epoch over the augmented `cases` (see `privatizedGradient`): `dpSGDStepsPerEpoch` lots, each
    /// patient's slices (unet2d) or patches (unet3d) class-balanced from its own cases (from `rng`).
    ///
    /// The lots are drawn from a generator seeded from `noiseSource` (the system's CSPRNG in production), never
    /// from the job's seed: the amplification by subsampling that the accountant counts holds only while nobody
    /// outside the site can tell which patients made up a lot.
    /// - Returns: the sum of the per-patient losses and their count.
    mutating func dpSGDEpoch(
        _ dp: TrainingConfiguration.DPSGD, cases: [Sample], patients: [[Int]],
        optimizer: inout any NeuralNetwork.Optimizer, rng: inout SplitMix64, epoch: Int,
        start: Date, onStep: (StepProgress) -> Void
    ) throws(TrainingError) -> (Double, Int) {
        let c = configuration
        let patches =
            c.model.dimensions == 3
            ? try PatchDataset(cases: cases, patchSize: c.model.patchExtents, foregroundFraction: c.foregroundFraction)
            : nil
        let steps = Self.dpSGDStepsPerEpoch(trainPatients: patients.count, patientsPerStep: dp.patientsPerStep)
        var lossSum = 0.0
        var count = 0
        var secret = noiseSource
        let high = UInt64(exactly: (secret.uniform() * 0x1p32).rounded(.down)) ?? 0
        let low = UInt64(exactly: (secret.uniform() * 0x1p32).rounded(.down)) ?? 0
        let lotSeed = high << 32 | low
        noiseSource = secret
        var lots = SplitMix64(seed: lotSeed)
        for step in 1...steps {
            let lot = Self.sampleLot(
                patientCount: patients.count, patientsPerStep: dp.patientsPerStep,
                sampling: dp.sampling, generator: &lots)
            var batches: [MicroBatch] = []
            for p in lot {
                let own = patients[p]
                if let patches {
                    var locations: [PatchDataset.Location] = []
                    for _ in 0..<dp.slicesPerPatient {
                        let caseIndex = own[rng.integer(0, own.count - 1)]
                        let foreground = rng.uniform() < c.foregroundFraction
                        locations.append(patches.location(in: caseIndex, foreground: foreground, generator: &rng))
                    }
                    batches.append(patches.batch(locations))
                } else {
                    let picks = Self.slicePicks(
                        own.map { cases[$0] }, count: dp.slicesPerPatient,
                        foregroundFraction: c.foregroundFraction, generator: &rng)
                    // A patient without labelled slices contributes a zero gradient.
                    guard !picks.isEmpty else { continue }
                    let batch = Self.makeBatch(picks.map { (own[$0.0], $0.1) }, cases)
                    batches.append((batch.0, batch.1))
                }
            }
            var noise = noiseSource
            let result = try privatizedGradient(
                lot: batches, noiseMultiplier: dp.noiseMultiplier,
                maxGradNorm: dp.maxGradNorm, expectedLotSize: dp.patientsPerStep,
                noise: &noise)
            noiseSource = noise
            var gradients = result.gradient
            let losses = result.losses
            // FedProx's proximal term is data-independent: added after the noise, it costs no privacy.
            if let proximal, proximal.mu > 0 {
                let current = model.parameters
                for (name, g) in gradients {
                    guard let theta = current[name], let ref = proximal.reference[name], ref.shape == theta.shape,
                        g.shape == theta.shape
                    else { continue }
                    var adjusted = g
                    for i in adjusted.storage.indices {
                        adjusted.storage[i] += proximal.mu * (theta.storage[i] - ref.storage[i])
                    }
                    gradients[name] = adjusted
                }
            }
            do { try optimizer.update(model: &model, gradients: gradients) } catch {
                throw TrainingError(.nonFinite, "DP-SGD step failed in epoch \(epoch): \(error)")
            }
            dpSGDRecord?.steps += 1
            lossSum += losses.reduce(0, +)
            count += losses.count
            onStep(
                StepProgress(
                    epoch: epoch, epochs: c.epochs, step: step, steps: steps,
                    meanLoss: lossSum / Double(max(count, 1)), seconds: Date().timeIntervalSince(start)))
        }
        return (lossSum, count)
    }
}

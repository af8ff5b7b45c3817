import DifferentialPrivacy
import Foundation
import NeuralNetwork
import Randomness
import Tensors
import TestSupport
import Testing
import Training
import Volumes

/// FNV-1a over the parameter names and the bit patterns of their values, in state_dict order.
func weightsFingerprint(_ parameters: NamedTensors) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for (name, tensor) in parameters {
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        for v in tensor.storage {
            var bits = v.bitPattern
            for _ in 0..<4 {
                h = (h ^ UInt64(bits & 0xFF)) &* 0x100_0000_01B3
                bits >>= 8
            }
        }
    }
    return h
}

/// A tiny configuration: 2-D U-Net encoder [2, 4], bottleneck 8 (or 3-D with 8³ patches), a few slices per epoch.
func tinyConfiguration(dimensions: Int) -> TrainingConfiguration {
    var c = TrainingConfiguration()
    c.model.architecture = dimensions == 3 ? "unet3d" : "unet2d"
    c.model.encoderChannels = [2, 4]
    c.model.bottleneckChannels = 8
    c.model.patchSize = [8, 8, 8]
    c.epochs = 2
    c.batchSize = 4
    c.slicesPerEpoch = 8
    c.patchesPerEpoch = 8
    c.validationFraction = 0
    c.optimizer.learningRate = 0.01
    return c
}

/// Patients of 16 × 16 × `depth` voxels with a ball each.
func tinyPatients(_ count: Int, depth: Int = 4) -> [SegmentationCase] {
    (0..<count).map { i in
        ballCase(
            "p\(i)", size: SIMD3(16, 16, depth), centre: SIMD3(6 + Double(i), 8, Double(depth) / 2 - 0.5),
            radius: 3.5, seed: UInt64(i + 11))
    }
}

/// A patient's micro-batch of all its slices: input `[depth, 1, 16, 16]` (the volume is stored z, y, x), targets alike.
func wholePatient(_ c: SegmentationCase) -> Trainer.MicroBatch {
    let d = c.sample.image.geometry.dimensions
    return (
        Tensor(shape: [d.z, 1, d.y, d.x], storage: c.sample.image.voxels),
        (c.sample.label?.voxels ?? []).map { Int($0) }
    )
}

/// Mean and standard deviation of every value of `gradient`, in Double.
func moments(_ values: [Double]) -> (mean: Double, std: Double) {
    let mean = values.reduce(0, +) / Double(values.count)
    let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
    return (mean, variance.squareRoot())
}

func dpConfiguration(dimensions: Int, patientsPerStep: Int, sampling: TrainingConfiguration.DPSGD.Sampling = .poisson)
    -> TrainingConfiguration
{
    var c = tinyConfiguration(dimensions: dimensions)
    c.dpSGD = .init(
        noiseMultiplier: 1.1, maxGradNorm: 1, sampling: sampling, patientsPerStep: patientsPerStep,
        slicesPerPatient: 2)
    return c
}

@Suite("DP-SGD: per-patient clipping, noise, Poisson lots, configuration", .computeBound)
struct DPSGDTests {
    /// Weights after two epochs of the non-DP training, recorded with the commit before DP-SGD (f90d0f4) on an
    /// x86_64 Linux machine with AVX-512: the path without `dp_sgd` must stay bit-identical. The values depend on the
    /// kernels the CPU dispatches to; on another instruction set, re-record them from that commit. The 2-D value was
    /// re-recorded at 9e65b82, whose ∂W stacks small 2-D images per kernel call (another summation order).
    @Test(
        "Without dp_sgd, training gives the recorded weights bit for bit",
        arguments: [
            (2, UInt64(3_516_049_627_552_586_025)), (3, UInt64(5_540_404_298_296_789_676)),
        ])
    func unchanged(dimensions: Int, expected: UInt64) throws {
        var trainer = Trainer(
            configuration: tinyConfiguration(dimensions: dimensions),
            preprocessing: PreprocessingConfiguration())
        _ = try trainer.fit(train: tinyPatients(3, depth: dimensions == 3 ? 8 : 4), validation: [])
        let fingerprint = weightsFingerprint(trainer.model.parameters)
        #expect(fingerprint == expected, "fingerprint \(dimensions)-D: \(fingerprint)")
    }

    @Test("σ = 0: the privatised gradient is the naive per-patient clip (Double), summed, divided by the expected B")
    func clippingMatchesReference() throws {
        let trainer = Trainer(
            configuration: tinyConfiguration(dimensions: 2),
            preprocessing: PreprocessingConfiguration())
        let lot = tinyPatients(4).map(wholePatient)
        // Reference: each patient's gradient by a plain forward/backward, its norm and clip in Double.
        let model = trainer.model
        var gradients: [NamedTensors] = []
        var norms: [Double] = []
        var losses: [Double] = []
        for batch in lot {
            let (logits, trace) = try model.forward(batch.input)
            let loss = try Loss.diceCrossEntropy(logits: logits, targets: batch.targets)
            let g = model.backward(loss.gradient, trace: trace)
            gradients.append(g)
            losses.append(loss.value)
            var squares = 0.0
            for (_, t) in g { for v in t.storage { squares += Double(v) * Double(v) } }
            norms.append(squares.squareRoot())
        }
        let clip = ((norms.min() ?? 0) + (norms.max() ?? 0)) / 2
        #expect(norms.contains { $0 > clip } && norms.contains { $0 < clip }, "norms \(norms)")
        let expectedLot = 5  // B ≠ the realised 4: the division is by B
        var noise = SeededNoiseSource(seed: 1)
        let result = try trainer.privatizedGradient(
            lot: lot, noiseMultiplier: 0, maxGradNorm: clip,
            expectedLotSize: expectedLot, noise: &noise)
        #expect(result.losses == losses)
        #expect(result.gradient.names == model.parameters.names)
        var compared = 0
        var mismatches: [String] = []
        for (name, parameter) in model.parameters {
            guard let got = result.gradient[name] else {
                Issue.record("no gradient for \(name)")
                continue
            }
            #expect(got.shape == parameter.shape)
            for i in parameter.storage.indices {
                var reference = 0.0
                for (p, g) in gradients.enumerated() {
                    let factor = min(1, clip / norms[p])
                    reference += Double(g[name]?.storage[i] ?? 0) * factor
                }
                reference /= Double(expectedLot)
                // rtol 1e-5, atol 1e-9 (the sum is float32; the reference Double).
                if abs(Double(got.storage[i]) - reference) > 1e-5 * abs(reference) + 1e-9 {
                    mismatches.append("\(name)[\(i)]: \(got.storage[i]) vs \(reference)")
                }
                compared += 1
            }
        }
        #expect(compared == model.parameters.elementCount && compared > 1000)
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(compared) differ: \(mismatches.prefix(5))")
    }

    @Test("Noise: with an empty lot, and on top of real gradients, its std is σC/B within 4 standard errors")
    func noiseScale() throws {
        var trainer = Trainer(
            configuration: tinyConfiguration(dimensions: 2),
            preprocessing: PreprocessingConfiguration())
        #expect(trainer.noiseSource is SystemNoiseSource)
        trainer.noiseSource = SeededNoiseSource(seed: 3)
        let (sigma, clip, lotSize) = (1.1, 2.0, 4)
        let expected = sigma * clip / Double(lotSize)
        var noise = SeededNoiseSource(seed: 42)
        let empty = try trainer.privatizedGradient(
            lot: [], noiseMultiplier: sigma, maxGradNorm: clip,
            expectedLotSize: lotSize, noise: &noise)
        #expect(empty.losses.isEmpty)
        let pure = empty.gradient.flatMap { $0.tensor.storage.map(Double.init) }
        // On top of gradients: the same lot with and without noise differs by the noise alone.
        let lot = tinyPatients(3).map(wholePatient)
        var silent = SeededNoiseSource(seed: 1)
        let clean = try trainer.privatizedGradient(
            lot: lot, noiseMultiplier: 0, maxGradNorm: clip,
            expectedLotSize: lotSize, noise: &silent)
        let noisy = try trainer.privatizedGradient(
            lot: lot, noiseMultiplier: sigma, maxGradNorm: clip,
            expectedLotSize: lotSize, noise: &noise)
        var added: [Double] = []
        for (name, t) in noisy.gradient {
            let reference = clean.gradient[name]?.storage ?? []
            for (i, v) in t.storage.enumerated() { added.append(Double(v) - Double(reference[i])) }
        }
        for values in [pure, added] {
            let (mean, std) = moments(values)
            let n = Double(values.count)
            #expect(values.count == trainer.model.parameters.elementCount)
            #expect(abs(std - expected) < 4 * expected / (2 * n).squareRoot(), "std \(std), expected \(expected)")
            #expect(abs(mean) < 4 * expected / n.squareRoot(), "mean \(mean)")
        }
        // The same seed gives the same noise; another seed other noise.
        var again = SeededNoiseSource(seed: 42)
        let repeated = try trainer.privatizedGradient(
            lot: [], noiseMultiplier: sigma, maxGradNorm: clip,
            expectedLotSize: lotSize, noise: &again)
        #expect(repeated.gradient == empty.gradient)
    }

    @Test(
        "Poisson lots include each patient with frequency q = B / N; fixed lots hold exactly B distinct patients",
        arguments: [TrainingConfiguration.DPSGD.Sampling.poisson, .fixed])
    func sampling(kind: TrainingConfiguration.DPSGD.Sampling) {
        let (n, b, steps) = (10, 3, 20_000)
        let q = Double(b) / Double(n)
        var g = SplitMix64(seed: 99)
        var counts = [Int](repeating: 0, count: n)
        var sizes: Set<Int> = []
        for _ in 0..<steps {
            let lot = Trainer.sampleLot(patientCount: n, patientsPerStep: b, sampling: kind, generator: &g)
            #expect(lot == lot.sorted() && Set(lot).count == lot.count && lot.allSatisfy { (0..<n).contains($0) })
            sizes.insert(lot.count)
            for p in lot { counts[p] += 1 }
        }
        let standardError = (q * (1 - q) / Double(steps)).squareRoot()
        for (p, count) in counts.enumerated() {
            let frequency = Double(count) / Double(steps)
            #expect(abs(frequency - q) < 4 * standardError, "patient \(p): \(frequency) vs q = \(q)")
        }
        if kind == .fixed {
            #expect(sizes == [b])
        } else {
            #expect(sizes.contains(0) && sizes.count > 3, "Poisson lot sizes vary, empty ones included: \(sizes)")
        }
        var all = SplitMix64(seed: 1)
        #expect(
            Trainer.sampleLot(patientCount: 4, patientsPerStep: 4, sampling: kind, generator: &all) == [0, 1, 2, 3])
    }

    @Test(
        "Steps per epoch: round(N / B), at least 1",
        arguments: [
            (10, 3, 3), (10, 4, 3), (7, 2, 4), (9, 4, 2), (1, 1, 1), (5, 5, 1), (100, 1, 100), (3, 8, 1),
        ])
    func stepsPerEpoch(patients: Int, lot: Int, steps: Int) {
        #expect(Trainer.dpSGDStepsPerEpoch(trainPatients: patients, patientsPerStep: lot) == steps)
    }

    @Test("dp_sgd parses; missing, zero, negative and unknown values are refused naming the key")
    func configuration() throws {
        let c = try TrainingConfiguration(
            yaml: """
                training:
                  dp_sgd:
                    noise_multiplier: 1.1
                    max_grad_norm: 0.5
                    sampling: fixed
                    patients_per_step: 4
                    slices_per_patient: 3
                """)
        #expect(
            c.dpSGD
                == .init(
                    noiseMultiplier: 1.1, maxGradNorm: 0.5, sampling: .fixed, patientsPerStep: 4,
                    slicesPerPatient: 3))
        let minimal = try TrainingConfiguration(
            yaml: """
                training:
                  dp_sgd: {noise_multiplier: 2, max_grad_norm: 1, patients_per_step: 2}
                """)
        #expect(minimal.dpSGD?.sampling == .poisson && minimal.dpSGD?.slicesPerPatient == 4)
        #expect(try TrainingConfiguration(yaml: "training:\n  epochs: 2").dpSGD == nil)
        let full = "noise_multiplier: 1.1, max_grad_norm: 1, patients_per_step: 2"
        for (entries, key) in [
            ("max_grad_norm: 1, patients_per_step: 2", "training.dp_sgd.noise_multiplier"),
            ("noise_multiplier: 1, patients_per_step: 2", "training.dp_sgd.max_grad_norm"),
            ("noise_multiplier: 1, max_grad_norm: 1", "training.dp_sgd.patients_per_step"),
            ("noise_multiplier: 0, max_grad_norm: 1, patients_per_step: 2", "training.dp_sgd.noise_multiplier"),
            ("noise_multiplier: -1, max_grad_norm: 1, patients_per_step: 2", "training.dp_sgd.noise_multiplier"),
            ("noise_multiplier: .nan, max_grad_norm: 1, patients_per_step: 2", "training.dp_sgd.noise_multiplier"),
            ("noise_multiplier: 1, max_grad_norm: 0, patients_per_step: 2", "training.dp_sgd.max_grad_norm"),
            ("noise_multiplier: 1, max_grad_norm: -2, patients_per_step: 2", "training.dp_sgd.max_grad_norm"),
            ("noise_multiplier: 1, max_grad_norm: 1, patients_per_step: 0", "training.dp_sgd.patients_per_step"),
            ("noise_multiplier: 1, max_grad_norm: 1, patients_per_step: 5000", "training.dp_sgd.patients_per_step"),
            (full + ", slices_per_patient: 0", "training.dp_sgd.slices_per_patient"),
            (full + ", slices_per_patient: -3", "training.dp_sgd.slices_per_patient"),
            (full + ", sampling: shuffle", "poisson or fixed"),
            (full + ", delta: 1e-5", "training.dp_sgd.delta"),
        ] {
            #expect { try TrainingConfiguration(yaml: "training:\n  dp_sgd: {\(entries)}") } throws: { error in
                "\(error)".contains(key)
            }
        }
        #expect { try TrainingConfiguration(yaml: "training:\n  dp_sgd: 3") } throws: { error in
            "\(error)".contains("training.dp_sgd")
        }
        // A configuration built in code is checked too (σ = 0 is only for `privatizedGradient`'s tests).
        var built = dpConfiguration(dimensions: 2, patientsPerStep: 2)
        built.dpSGD?.noiseMultiplier = 0
        #expect { try built.validate() } throws: { "\($0)".contains("training.dp_sgd.noise_multiplier") }
        // The U-Net cannot be given batch normalisation (its statistics would mix patients within a step): no key.
        #expect { try TrainingConfiguration(yaml: "model:\n  normalization: batch") } throws: { error in
            "\(error)".contains("model.normalization")
        }
    }

    @Test("B > N is refused when training starts, naming the key; activation memory counts slices per patient")
    func lotLargerThanSite() throws {
        var trainer = Trainer(
            configuration: dpConfiguration(dimensions: 2, patientsPerStep: 4),
            preprocessing: PreprocessingConfiguration())
        // Four cases but three patients: the privacy unit is the patient, not the series.
        var cases = tinyPatients(4)
        cases[3].patientID = cases[0].patientID
        #expect { try trainer.fit(train: cases, validation: []) } throws: { error in
            "\(error)".contains("training.dp_sgd.patients_per_step") && "\(error)".contains("3 training patients")
        }
        #expect(trainer.dpSGDRecord == nil)
        var config = dpConfiguration(dimensions: 3, patientsPerStep: 2)
        config.model.patchSize = [256, 256, 128]
        config.dpSGD?.slicesPerPatient = 1000
        config.batchSize = 1
        #expect { try PipelineLimits.default.validate(config, preprocessing: PreprocessingConfiguration()) } throws: {
            "\($0)".contains("training.dp_sgd.slices_per_patient")
        }
    }

    @Test(
        "fit with dp_sgd: round(N/B) noisy steps per epoch, the record for the accountant, reproducible when seeded",
        arguments: [2, 3])
    func fitRecord(dimensions: Int) throws {
        let patients = tinyPatients(5, depth: dimensions == 3 ? 8 : 4)
        func run(seed: UInt64) throws -> (Trainer, [EpochReport]) {
            var trainer = Trainer(
                configuration: dpConfiguration(dimensions: dimensions, patientsPerStep: 2),
                preprocessing: PreprocessingConfiguration())
            trainer.noiseSource = SeededNoiseSource(seed: seed)
            var steps: [StepProgress] = []
            let reports = try trainer.fit(train: patients, validation: [], onStep: { steps.append($0) })
            #expect(steps.count == 2 * 3 && steps.allSatisfy { $0.steps == 3 })
            return (trainer, reports)
        }
        let (trainer, reports) = try run(seed: 5)
        let expected = DPSGDRecord(
            steps: 6, samplingRate: 0.4, noiseMultiplier: 1.1, maxGradNorm: 1,
            sampling: .poisson, trainPatients: 5, patientsPerStep: 2)
        #expect(trainer.dpSGDRecord == expected)
        #expect(reports.map { $0.dpSGD?.steps } == [3, 6])
        #expect(reports.allSatisfy { $0.loss.isFinite })
        let start = Trainer(
            configuration: dpConfiguration(dimensions: dimensions, patientsPerStep: 2),
            preprocessing: PreprocessingConfiguration())
        #expect(trainer.model.parameters != start.model.parameters)
        let (same, _) = try run(seed: 5)
        let (other, _) = try run(seed: 6)
        #expect(weightsFingerprint(same.model.parameters) == weightsFingerprint(trainer.model.parameters))
        #expect(weightsFingerprint(other.model.parameters) != weightsFingerprint(trainer.model.parameters))
    }
}

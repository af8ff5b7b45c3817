import Foundation
import NeuralNetwork
import Randomness
import Tensors
import Volumes

/// Metrics of one classifier epoch.
public struct ClassifierEpochReport: Sendable, Codable {
    public var epoch: Int
    public var loss: Double
    /// On the held-out patients' studies; nil without validation studies.
    public var validation: ClassificationMetrics?
    public var seconds: Double
}

/// Local training of a ResNet study classifier (`model.architecture` resnet2d / resnet3d): each epoch the
/// training studies are augmented with the pipeline's `augmentation:` (the same seeded transforms as the U-Nets),
/// turned into inputs (`classification.input`: a projection or slice for 2-D, the volume for 3-D), and trained in
/// batches with cross-entropy, class-weighted or with class-balanced sampling (`classification.imbalance`). The
/// split by patient, the optimisers, FedProx and clipping are the segmentation trainer's (`Trainer`).
public struct ClassifierTrainer: Sendable {
    public var configuration: TrainingConfiguration
    public var preprocessing: PreprocessingConfiguration
    public internal(set) var model: ResNet
    /// FedProx: as `Trainer.proximal`.
    public var proximal: (mu: Float, reference: NamedTensors)?
    /// Measures the time budget: as `Trainer.stopwatch`.
    public var stopwatch = Stopwatch(clock: ContinuousClock())
    /// What the last `fit` decided: as `Trainer.convergence`.
    public internal(set) var convergence: ConvergenceRecord?

    /// - Throws: `.configuration` unless the configuration is a classifier's (a `classification:` section).
    public init(configuration: TrainingConfiguration, preprocessing: PreprocessingConfiguration) throws(TrainingError) {
        guard configuration.model.isClassifier, configuration.classification != nil else {
            throw TrainingError(
                .configuration, "`model.architecture` \(configuration.model.architecture) is not a classifier")
        }
        self.configuration = configuration
        self.preprocessing = preprocessing
        var g = Tensors.SeededGenerator(seed: configuration.model.seed)
        let m = configuration.model
        model = ResNet(
            dimensions: m.dimensions, inputChannels: 1, classes: m.classes, widths: m.widths, blocks: m.blocks,
            norm: m.norm, generator: &g)
    }

    var classification: ClassificationConfiguration { configuration.classification ?? ClassificationConfiguration() }

    /// Replaces the model's weights (a checkpoint or the global model of a round).
    public mutating func load(_ state: NamedTensors) throws(TrainingError) {
        do { try model.load(state) } catch {
            throw TrainingError(.model, "the weights do not fit the configured classifier: \(error)")
        }
    }

    /// Training and validation studies, split by patient as every trainer does (`Trainer.heldOutPatients`), and
    /// stratified: the rule runs within each class (a patient counts in the class of its first study), so the
    /// held-out studies hold every class that has two or more patients and their AUC is defined.
    public func split(_ cases: [ClassificationCase]) -> (train: [ClassificationCase], validation: [ClassificationCase])
    {
        var classOf: [String: Int] = [:]
        for c in cases where classOf[c.patientID] == nil { classOf[c.patientID] = c.label ?? -1 }
        var held = Set<String>()
        for k in Set(classOf.values).sorted() {
            let patients = classOf.filter { $0.value == k }.map(\.key)
            held.formUnion(Trainer.heldOutPatients(patients, configuration: configuration))
        }
        return (cases.filter { !held.contains($0.patientID) }, cases.filter { held.contains($0.patientID) })
    }

    // MARK: - Inputs

    /// The classifier's input for one canonical volume `[z, y, x]`: `[1, y, x]` (projection or middle slice) or
    /// `[1, z, y, x]` (volume), as a flat array and its per-sample shape.
    public static func input(_ image: Volume<Float>, mode: ClassificationConfiguration.Input) -> (
        values: [Float], shape: [Int]
    ) {
        let d = image.geometry.dimensions
        let plane = d.x * d.y
        let v = image.voxels
        switch mode {
        case .volume: return (v, [1, d.z, d.y, d.x])
        case .middleSlice:
            let k = d.z / 2
            return (Array(v[(k * plane)..<((k + 1) * plane)]), [1, d.y, d.x])
        case .mip, .minip, .mean:
            var out = Array(v[0..<plane])
            for k in 1..<max(d.z, 1) {
                let base = k * plane
                for i in 0..<plane {
                    let x = v[base + i]
                    switch mode {
                    case .mip: out[i] = max(out[i], x)
                    case .minip: out[i] = min(out[i], x)
                    default: out[i] += x
                    }
                }
            }
            if mode == .mean, d.z > 1 {
                let scale = 1 / Float(d.z)
                for i in out.indices { out[i] *= scale }
            }
            return (out, [1, d.y, d.x])
        }
    }

    /// A batch tensor `[n, 1, …]` from inputs of one shape.
    public static func batch(_ inputs: [[Float]], shape: [Int]) -> Tensor {
        var storage: [Float] = []
        storage.reserveCapacity(inputs.count * (inputs.first?.count ?? 0))
        for x in inputs { storage.append(contentsOf: x) }
        return Tensor(shape: [inputs.count] + shape, storage: storage)
    }

    /// Per-class loss weights `n / (classes · n_c)` (scikit-learn's "balanced"; 0 for a class with no study).
    public static func balancedWeights(_ labels: [Int], classes: Int) -> [Double] {
        var counts = [Int](repeating: 0, count: classes)
        for y in labels where (0..<classes).contains(y) { counts[y] += 1 }
        return counts.map { $0 == 0 ? 0 : Double(labels.count) / (Double(classes) * Double($0)) }
    }

    /// One epoch's order of training studies: a shuffle, or with balanced sampling `count` draws each of a class
    /// drawn uniformly among those present, then a study of that class.
    public static func studyOrder(_ labels: [Int], balanced: Bool, generator g: inout SplitMix64) -> [Int] {
        guard balanced else { return Array(labels.indices).shuffled(using: &g) }
        var byClass: [Int: [Int]] = [:]
        for (i, y) in labels.enumerated() { byClass[y, default: []].append(i) }
        let present = byClass.keys.sorted()
        guard !present.isEmpty else { return [] }
        return labels.indices.map { _ in
            let members = byClass[present[g.integer(0, present.count - 1)]] ?? []
            return members[g.integer(0, members.count - 1)]
        }
    }

    // MARK: - Training

    /// Trains from the current weights for at most the configured epochs, stopping early and keeping the best
    /// epoch's weights as `Trainer.fit` does (`ConvergenceMonitor`).
    /// - Parameters:
    ///   - checkpoint: where the best model is written (highest validation AUC, else balanced accuracy; lowest
    ///     training loss without validation studies); nil: not written.
    /// - Throws: `.data` without labelled training studies, `.nonFinite` on a NaN/Inf loss.
    public mutating func fit(
        train: [ClassificationCase], validation: [ClassificationCase], checkpoint: String? = nil,
        onStep: (StepProgress) -> Void = { _ in }, progress: (ClassifierEpochReport) -> Void = { _ in }
    ) throws(TrainingError) -> [ClassifierEpochReport] {
        let labels = train.compactMap(\.label)
        guard !train.isEmpty, labels.count == train.count else {
            throw TrainingError(.data, "no labelled training study (every training study needs a class)")
        }
        let c = configuration
        let k = classification
        let weights =
            k.imbalance == .weightedLoss ? Self.balancedWeights(labels, classes: c.model.classes) : nil
        var optimizer = Trainer.makeOptimizer(c)
        var rng = SplitMix64(seed: c.seed ^ 0xC1A5)
        var augmentation = preprocessing.augmentationPipeline()
        var reports: [ClassifierEpochReport] = []
        convergence = nil
        var monitor = ConvergenceMonitor(c, validating: !validation.isEmpty)
        let elapsed = stopwatch.start()
        var bestState: NamedTensors?
        for epoch in 1...c.epochs {
            let start = Date()
            var inputs: [[Float]] = []
            var shape: [Int] = []
            for t in train {
                let sample: Sample
                do { sample = try augmentation.apply(t.sample) } catch {
                    throw TrainingError(.data, "augmentation failed on \(t.patientID): \(error.message)")
                }
                let x = Self.input(sample.image, mode: k.input)
                inputs.append(x.values)
                shape = x.shape
            }
            let order = Self.studyOrder(labels, balanced: k.imbalance == .balancedSampling, generator: &rng)
            let groups = Trainer.groups(order, c.batchSize)
            var lossSum = 0.0
            for (i, group) in groups.enumerated() {
                let x = Self.batch(group.map { inputs[$0] }, shape: shape)
                let y = group.map { labels[$0] }
                lossSum += try step(input: x, targets: y, weights: weights, optimizer: &optimizer, epoch: epoch)
                onStep(
                    StepProgress(
                        epoch: epoch, epochs: c.epochs, step: i + 1, steps: groups.count,
                        meanLoss: lossSum / Double(i + 1), seconds: Date().timeIntervalSince(start)))
            }
            let validationMetrics = validation.isEmpty ? nil : try evaluate(validation)
            let report = ClassifierEpochReport(
                epoch: epoch, loss: lossSum / Double(max(groups.count, 1)), validation: validationMetrics,
                seconds: Date().timeIntervalSince(start))
            reports.append(report)
            let score = validationMetrics.map { $0.auc ?? $0.balancedAccuracy } ?? -report.loss
            let decision = monitor.record(epoch: epoch, score: score, elapsed: elapsed())
            if decision.improved {
                if let checkpoint {
                    try save(
                        to: checkpoint,
                        metadata: [
                            "epoch": String(epoch),
                            "validation_auc": validationMetrics?.auc.map { String(format: "%.4f", $0) } ?? "",
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

    /// One optimiser step on a batch; returns the loss.
    mutating func step(
        input: Tensor, targets: [Int], weights: [Double]?, optimizer: inout any NeuralNetwork.Optimizer, epoch: Int
    ) throws(TrainingError) -> Double {
        do {
            let (logits, trace) = try model.forward(input, training: true)
            let loss = try Loss.crossEntropy(logits: logits, targets: targets, weights: weights)
            guard loss.value.isFinite else {
                throw TrainingError(
                    .nonFinite,
                    "the loss became \(loss.value) in epoch \(epoch); training stopped. Lower the learning rate")
            }
            var gradients = model.backward(loss.gradient, trace: trace)
            Trainer.adjust(
                &gradients, current: model.parameters, proximal: proximal, clipNorm: configuration.gradientClipNorm)
            try optimizer.update(model: &model, gradients: gradients)
            return loss.value
        } catch let error as TrainingError {
            throw error
        } catch {
            throw TrainingError(.nonFinite, "training step failed in epoch \(epoch): \(error)", cause: "\(error)")
        }
    }

    // MARK: - Inference

    /// Class probabilities (softmax of the logits, evaluation mode) per study, in batches of `training.batch_size`.
    public func predict(_ cases: [ClassificationCase]) throws(TrainingError) -> [[Double]] {
        var model = self.model
        var out: [[Double]] = []
        let mode = classification.input
        for group in Trainer.groups(Array(cases.indices), max(1, configuration.batchSize)) {
            let xs = group.map { Self.input(cases[$0].sample.image, mode: mode) }
            let x = Self.batch(xs.map(\.values), shape: xs.first?.shape ?? [])
            let logits: Tensor
            do { logits = try model.forward(x, training: false).output } catch {
                throw TrainingError(.model, "the classifier cannot read these studies: \(error)")
            }
            let c = logits.shape[1]
            for b in 0..<logits.shape[0] {
                let row = (0..<c).map { Double(logits.storage[b * c + $0]) }
                let m = row.max() ?? 0
                let e = row.map { Foundation.exp($0 - m) }
                let sum = e.reduce(0, +)
                out.append(e.map { $0 / sum })
            }
        }
        return out
    }

    /// Every classification metric of the current model on labelled studies (bootstrap interval as configured).
    /// - Throws: `.data` when a study has no label.
    public func evaluate(_ cases: [ClassificationCase], bootstrap: Bool = false) throws(TrainingError)
        -> ClassificationMetrics
    {
        let truth = cases.compactMap(\.label)
        guard truth.count == cases.count, !cases.isEmpty else {
            throw TrainingError(.data, "evaluation needs labelled studies")
        }
        let k = classification
        return try Metrics.classification(
            probabilities: try predict(cases), truth: truth, positiveClass: k.positiveClass, threshold: k.threshold,
            bootstrapResamples: bootstrap ? k.bootstrapSamples : 0, level: k.confidence, seed: k.bootstrapSeed)
    }

    /// Writes the model's `state_dict` with `CheckpointMetadata` (architecture, preprocessing) and `metadata`.
    public func save(to path: String, metadata: [String: String] = [:]) throws(TrainingError) {
        try CheckpointMetadata.write(
            model.stateDict, configuration: configuration, preprocessing: preprocessing, metadata: metadata, to: path)
    }

    /// Loads weights from a safetensors checkpoint (`tessera train --initial-weights`).
    /// - Throws: `.io` when unreadable, `.model` when its tensors do not fit the configured classifier.
    public mutating func load(checkpoint path: String) throws(TrainingError) {
        let state: NamedTensors
        do { state = try SafeTensors.read(contentsOf: path).tensors } catch {
            throw TrainingError(.io, "cannot read the checkpoint \(path)", cause: "\(error)")
        }
        try load(state)
    }
}

extension TrainingConfiguration {
    /// The configured model's initial `state_dict` (seeded by `model.seed`): a U-Net or a classifier. The server
    /// starts a federated job from it.
    public func initialState(preprocessing: PreprocessingConfiguration) throws(TrainingError) -> NamedTensors {
        if model.isClassifier {
            return try ClassifierTrainer(configuration: self, preprocessing: preprocessing).model.stateDict
        }
        return Trainer(configuration: self, preprocessing: preprocessing).model.stateDict
    }

    /// The `stateDict` names of the configured model's normalisation layers (`Module.normalizationVariables`):
    /// what `federation.personalization: fedbn` keeps at each site. Empty for a U-Net without `model.norm`.
    /// - Throws: `.configuration` when the classifier cannot be built from the configuration.
    public func normalizationVariables(preprocessing: PreprocessingConfiguration) throws(TrainingError) -> [String] {
        if model.isClassifier {
            return try ClassifierTrainer(configuration: self, preprocessing: preprocessing).model.normalizationVariables
        }
        return Trainer(configuration: self, preprocessing: preprocessing).model.normalizationVariables
    }
}

extension ClassifierEpochReport {
    /// The epoch as TensorBoard scalars: `train/loss`, `validation/<figure>` for every figure a site would report
    /// (AUC and its interval, accuracy, balanced accuracy, sensitivity, specificity, studies), `epoch/seconds`.
    public var trackedScalars: [(tag: String, value: Double)] {
        var values: [(tag: String, value: Double)] = [("train/loss", loss)]
        for (name, value) in (validation?.reported ?? [:]).sorted(by: { $0.key < $1.key }) {
            values.append(("validation/" + name, value))
        }
        values.append(("epoch/seconds", seconds))
        return values
    }
}

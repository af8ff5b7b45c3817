import FederationTestSupport
import Foundation
import NeuralNetwork
import TestSupport
import Testing
import Training
import Volumes

@Suite("Training to convergence: early stopping, best epoch, epoch and time budgets", .computeBound)
struct ConvergenceMonitorTests {
    /// Feeds `scores` (one a second) until the monitor stops; returns each epoch's `improved` and the stop.
    static func run(_ monitor: ConvergenceMonitor, _ scores: [Double]) -> (
        improved: [Bool], stop: (epoch: Int, reason: StopReason)?, best: Int?
    ) {
        var m = monitor
        var improved: [Bool] = []
        for (i, score) in scores.enumerated() {
            let d = m.record(epoch: i + 1, score: score, elapsed: .seconds(i + 1))
            improved.append(d.improved)
            if let stop = d.stop { return (improved, (i + 1, stop), m.best?.epoch) }
        }
        return (improved, nil, m.best?.epoch)
    }

    @Test("A scripted validation-Dice sequence: the stop epoch and best epoch computed by hand")
    func scriptedDice() {
        let scores = [0.50, 0.70, 0.705, 0.72, 0.71, 0.72, 0.725, 0.90]
        // patience 3, min_delta 0.01: e1 improves (first), e2 0.70 > 0.51, e3 0.705 ≤ 0.71 (1 stale), e4 0.72 > 0.71
        // (best), e5 0.71, e6 0.72, e7 0.725 all ≤ 0.73 → 3 stale → stop after epoch 7, best epoch 4 (0.90 unseen).
        let early = Self.run(
            ConvergenceMonitor(epochs: 20, earlyStopping: .init(patience: 3, minDelta: 0.01), timeBudget: nil), scores)
        #expect(early.improved == [true, true, false, true, false, false, false])
        #expect(early.stop?.epoch == 7 && early.stop?.reason == .earlyStopping && early.best == 4)
        // min_delta 0: e3 0.705 > 0.70 improves, e6 0.72 = 0.72 does not, e7 0.725 does; the budget of 7 ends it.
        let plain = Self.run(
            ConvergenceMonitor(epochs: 7, earlyStopping: .init(patience: 3), timeBudget: nil), scores)
        #expect(plain.improved == [true, true, true, true, false, false, true])
        #expect(plain.stop?.epoch == 7 && plain.stop?.reason == .epochBudget && plain.best == 7)
        // Without early stopping the best epoch is still kept: the highest score (strictly higher than before).
        let none = Self.run(ConvergenceMonitor(epochs: 8, earlyStopping: nil, timeBudget: nil), scores)
        #expect(none.stop?.epoch == 8 && none.stop?.reason == .epochBudget && none.best == 8)
    }

    @Test("Time budget: stops after the epoch that ends at or past it; early stopping is checked first")
    func timeBudget() {
        // One second an epoch (`run`), budget 3 s: epoch 3 ends at 3 s.
        let timed = Self.run(
            ConvergenceMonitor(epochs: 10, earlyStopping: nil, timeBudget: .seconds(3)), [0.1, 0.2, 0.3, 0.4])
        #expect(timed.stop?.epoch == 3 && timed.stop?.reason == .timeBudget && timed.best == 3)
        // Epoch 3 is also the second without improvement: patience 2 wins.
        let both = Self.run(
            ConvergenceMonitor(epochs: 10, earlyStopping: .init(patience: 2), timeBudget: .seconds(3)),
            [0.5, 0.4, 0.3])
        #expect(both.stop?.epoch == 3 && both.stop?.reason == .earlyStopping && both.best == 1)
    }

    @Test("A non-finite score never improves; the record is nil when no epoch had a finite score")
    func nonFinite() {
        var m = ConvergenceMonitor(epochs: 3, earlyStopping: nil, timeBudget: nil)
        #expect(m.record(epoch: 1, score: .nan, elapsed: .zero).improved == false)
        #expect(m.summary(epochsRun: 1, stoppedBy: .epochBudget) == nil)
        #expect(m.record(epoch: 2, score: 0.3, elapsed: .zero).improved)
        #expect(m.record(epoch: 3, score: .infinity, elapsed: .zero) == .init(improved: false, stop: .epochBudget))
        #expect(
            m.summary(epochsRun: 3, stoppedBy: .epochBudget)
                == ConvergenceRecord(bestEpoch: 2, bestScore: 0.3, epochs: 3, stoppedBy: .epochBudget))
    }

    @Test("training.early_stopping and time_budget_seconds parse; bad values are named with their limits")
    func configuration() throws {
        let c = try TrainingConfiguration(
            yaml: """
                training:
                  epochs: 40
                  early_stopping:
                    patience: 6
                    min_delta: 0.002
                  time_budget_seconds: 900
                """)
        #expect(
            c.epochs == 40 && c.earlyStopping == TrainingConfiguration.EarlyStopping(patience: 6, minDelta: 0.002)
                && c.timeBudgetSeconds == 900)
        let defaults = try TrainingConfiguration(yaml: "training:\n  early_stopping: {patience: 2}")
        #expect(
            defaults.earlyStopping == TrainingConfiguration.EarlyStopping(patience: 2)
                && defaults.timeBudgetSeconds == nil)
        for (yaml, words) in [
            (
                "training:\n  early_stopping: {patience: 0}",
                "`training.early_stopping.patience` must be an integer in 1"
            ),
            ("training:\n  early_stopping: {min_delta: 0.1}", "`training.early_stopping.patience` is missing"),
            ("training:\n  early_stopping: {patience: 2, min_delta: 2}", "`training.early_stopping.min_delta`"),
            ("training:\n  early_stopping: {patience: 2, patient: 3}", "unknown key `training.early_stopping.patient`"),
            ("training:\n  early_stopping: 5", "`training.early_stopping` must be a mapping"),
            ("training:\n  time_budget_seconds: 0", "`training.time_budget_seconds` must be a number in 1.0...604800"),
            ("training:\n  time_budget_seconds: .nan", "`training.time_budget_seconds`"),
        ] {
            #expect { try TrainingConfiguration(yaml: yaml) } throws: { e in "\(e)".contains(words) }
        }
        var built = TrainingConfiguration()
        built.earlyStopping = .init(patience: 20_000)
        #expect { try built.validate() } throws: { e in "\(e)".contains("(limit max_epochs)") }
        built.earlyStopping = nil
        built.timeBudgetSeconds = 1e9
        #expect { try built.validate() } throws: { e in "\(e)".contains("one week") }
    }

    /// A small 2-D U-Net configuration for 16 × 16 × 4 ball volumes.
    static func tinyConfiguration(epochs: Int) -> TrainingConfiguration {
        var c = TrainingConfiguration()
        c.model.encoderChannels = [4, 8]
        c.model.bottleneckChannels = 8
        c.epochs = epochs
        c.slicesPerEpoch = 8
        c.batchSize = 4
        c.optimizer.learningRate = 0.01
        return c
    }

    static let balls = (0..<3).map { i in
        ballCase(
            "p\(i)", size: SIMD3(16, 16, 4), centre: SIMD3(7 + Double(i), 8, 1.5), radius: 4.5, seed: UInt64(i + 1))
    }

    @Test("Trainer.fit stops at the time budget on an injected clock, without sleeping")
    func trainerTimeBudget() throws {
        var config = Self.tinyConfiguration(epochs: 10)
        config.timeBudgetSeconds = 250
        var trainer = Trainer(configuration: config, preprocessing: PreprocessingConfiguration())
        let clock = ManualClock()
        trainer.stopwatch = Stopwatch(clock: clock)
        // Each epoch "takes" 100 s: epochs end at 100, 200, 300 s → the third is the last.
        let reports = try trainer.fit(
            train: Array(Self.balls.prefix(2)), validation: [],
            onStep: { if $0.step == 1 { clock.advance(by: .seconds(100)) } })
        #expect(reports.map(\.epoch) == [1, 2, 3])
        #expect(trainer.convergence?.stoppedBy == .timeBudget && trainer.convergence?.epochs == 3)
    }

    @Test("Trainer.fit with early stopping ends with the best epoch's weights, the ones its checkpoint holds")
    func trainerKeepsBest() throws {
        var config = Self.tinyConfiguration(epochs: 12)
        config.earlyStopping = .init(patience: 2, minDelta: 0.001)
        var trainer = Trainer(configuration: config, preprocessing: PreprocessingConfiguration())
        let validation = [Self.balls[2]]
        let path = NSTemporaryDirectory() + "tessera-converge-\(UUID().uuidString)/best.safetensors"
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let reports = try trainer.fit(train: Array(Self.balls.prefix(2)), validation: validation, checkpoint: path)
        // The naive rule over the reported Dice: best = last epoch beating the best so far by > 0.001; stop after 2
        // epochs in a row without that, or at 12.
        var best = (epoch: 0, score: -Double.infinity)
        var stale = 0
        var stop = config.epochs
        for r in reports {
            if r.meanDice > best.score + (best.epoch == 0 ? 0 : 0.001) {
                best = (r.epoch, r.meanDice)
                stale = 0
            } else {
                stale += 1
            }
            if stale == 2 {
                stop = r.epoch
                break
            }
        }
        #expect(reports.count == stop)
        #expect(trainer.convergence?.bestEpoch == best.epoch && trainer.convergence?.epochs == stop)
        #expect(trainer.convergence?.stoppedBy == (stop < config.epochs ? .earlyStopping : .epochBudget))
        // The model in memory is the best epoch's: same validation Dice, same weights as the checkpoint.
        let dice = try trainer.validate(validation)
        let reported = reports[best.epoch - 1].validationDice
        #expect(dice.count == reported.count && zip(dice, reported).allSatisfy { abs($0 - $1) < 1e-9 })
        let saved = try SafeTensors.read(contentsOf: path)
        #expect(saved.metadata["epoch"] == String(best.epoch))
        #expect(saved.tensors.count == trainer.model.stateDict.count)
        for (name, tensor) in trainer.model.stateDict { #expect(saved.tensors[name] == tensor, "\(name)") }
    }
}

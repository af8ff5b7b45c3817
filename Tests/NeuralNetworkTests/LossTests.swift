import Foundation
import NeuralNetwork
import Tensors
import TestSupport
import Testing

@Suite("Losses", .computeBound)
struct LossTests {
    static let logits: Tensor = {
        var g = SeededGenerator(seed: 12)
        return Tensor.randomNormal([2, 3, 4, 5], generator: &g)
    }()
    static let targets: [Int] = {
        var g = SeededGenerator(seed: 13)
        return (0..<40).map { _ in Int(g.next() % 3) }
    }()

    func checkLoss(_ what: String, _ f: (Tensor) throws -> LossResult) throws {
        var g = SeededGenerator(seed: 14)
        let r = try f(Self.logits)
        checkAgainstFiniteDifferences(
            Self.logits, analytic: r.gradient, samples: 40, step: 1e-2, tolerance: 1e-2,
            generator: &g, what
        ) { try! f($0).value }
    }

    @Test("Gradient checks: cross-entropy, soft Dice, Dice + CE, binary CE")
    func gradients() throws {
        try checkLoss("cross-entropy") { try Loss.crossEntropy(logits: $0, targets: Self.targets) }
        try checkLoss("soft Dice") { try Loss.softDice(logits: $0, targets: Self.targets) }
        try checkLoss("Dice + CE") { try Loss.diceCrossEntropy(logits: $0, targets: Self.targets) }
        let binaryTargets = Tensor(
            shape: Self.logits.shape,
            storage: (0..<Self.logits.count).map { Float($0 % 3) / 2 })
        try checkLoss("binary CE") { try Loss.binaryCrossEntropy(logits: $0, targets: binaryTargets) }
        // Classification shape [N, C].
        var g = SeededGenerator(seed: 15)
        let z = Tensor.randomNormal([4, 3], generator: &g)
        let r = try Loss.crossEntropy(logits: z, targets: [0, 2, 1, 2])
        checkAgainstFiniteDifferences(z, analytic: r.gradient, generator: &g, "cross-entropy [N, C]") {
            try! Loss.crossEntropy(logits: $0, targets: [0, 2, 1, 2]).value
        }
    }

    @Test("Hand-computed values")
    func values() throws {
        // Two classes, equal logits: CE = log 2; p = 1/2 everywhere.
        let z = Tensor(zeros: [1, 2, 1, 2])
        let ce = try Loss.crossEntropy(logits: z, targets: [0, 1])
        #expect(abs(ce.value - log(2)) < 1e-7)
        // dice_c = (2·0.5 + ε)/(1 + 1 + ε) per class ⇒ loss = 1 − (1 + ε)/(2 + ε).
        let dice = try Loss.softDice(logits: z, targets: [0, 1])
        #expect(abs(dice.value - (1 - (1 + 1e-5) / (2 + 1e-5))) < 1e-7)
        // BCE at z = 0 is log 2 whatever the target.
        let bce = try Loss.binaryCrossEntropy(
            logits: Tensor(zeros: [3]), targets: Tensor(shape: [3], storage: [0, 1, 0.5]))
        #expect(abs(bce.value - log(2)) < 1e-7)
        // A class absent from both prediction and target has dice (0 + ε)/(0 + ε) = 1 (the reference's behaviour).
        let confident = Tensor(shape: [1, 2, 1, 1], storage: [30, -30])
        let d = try Loss.softDice(logits: confident, targets: [0])
        #expect(abs(d.value) < 1e-6)
    }

    @Test("Bad targets are reported with how to fix them")
    func badTargets() {
        #expect(throws: NeuralNetworkError.self) { try Loss.crossEntropy(logits: Self.logits, targets: [0, 1]) }
        do {
            _ = try Loss.softDice(logits: Self.logits, targets: Array(repeating: 3, count: 40))
            Issue.record("label 3 of 3 classes accepted")
        } catch let e as NeuralNetworkError {
            #expect(e.code == .invalidArgument && e.message.contains("0..<3"))
        } catch { Issue.record("unexpected \(error)") }
    }
}

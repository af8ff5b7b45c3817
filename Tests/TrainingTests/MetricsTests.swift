import Foundation
import Tensors
import TestSupport
import Testing
import Training

/// Accuracy and ROC AUC against hand-computed values and against scikit-learn (golden values written by
/// scripts/reference/metrics_golden.py: numpy 2.4.6, scikit-learn 1.9.1; provenance in the JSON).
@Suite("Metrics", .computeBound)
struct MetricsTests {
    struct Golden: Decodable {
        struct AUCCase: Decodable {
            var name: String
            var scores: [Double]
            var labels: [Int]
            var auc: Double
        }
        struct AccuracyCase: Decodable {
            var name: String
            var predicted: [Int]?
            var truth: [Int]?
            var logits: [Float]?
            var shape: [Int]?
            var targets: [Int]?
            var accuracy: Double
        }
        var roc_auc: [AUCCase]
        var accuracy: [AccuracyCase]
    }

    static func golden() throws -> Golden {
        let url = URL(fileURLWithPath: repositoryRoot + "/Tests/TrainingTests/Golden/metrics_golden.json")
        return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }

    @Test("ROC AUC by hand: 3 positives, 2 negatives, one tie between classes")
    func aucByHand() throws {
        // Pairs (positive, negative): 0.9>0.1, 0.9>0.4, 0.4=0.4 (½), 0.4>0.1, 0.35>0.1, 0.35<0.4 → 4.5 / 6 = 0.75.
        let auc = try Metrics.rocAUC(scores: [0.1, 0.4, 0.9, 0.4, 0.35], labels: [0, 0, 1, 1, 1])
        #expect(abs(auc - 0.75) < 1e-15)
        #expect(try Metrics.rocAUC(scores: [1, 2, 3, 4], labels: [0, 0, 1, 1]) == 1)
        #expect(try Metrics.rocAUC(scores: [4, 3, 2, 1], labels: [0, 0, 1, 1]) == 0)
        #expect(try Metrics.rocAUC(scores: [5, 5, 5, 5], labels: [0, 1, 0, 1]) == 0.5)
        // Logit margins z1 − z0: [−1, 2, 0.5] for labels [0, 1, 0] → positive outranks both negatives.
        let logits = Tensor(shape: [3, 2], storage: [1, 0, 0, 2, 0, 0.5])
        #expect(try Metrics.rocAUC(logits: logits, labels: [0, 1, 0]) == 1)
    }

    @Test("ROC AUC: one class, NaN scores, non-binary labels and mismatched counts are errors, not NaN")
    func aucErrors() {
        for (scores, labels, words) in [
            ([0.1, 0.2], [1, 1], "only one class"), ([0.3, 0.1], [0, 0], "only one class"),
            ([Double.nan, 0.2], [0, 1], "finite"), ([0.1, 0.2], [0, 2], "not binary"),
            ([0.1], [0, 1], "one score per label"),
        ] {
            #expect { try Metrics.rocAUC(scores: scores, labels: labels) } throws: { e in
                (e as? TrainingError)?.code == .invalidArgument && "\(e)".contains(words)
            }
        }
        #expect(throws: TrainingError.self) { try Metrics.rocAUC(logits: Tensor(zeros: [2, 3]), labels: [0, 1]) }
    }

    @Test("Accuracy by hand, from labels and from arg-max logits (ties to the lowest class)")
    func accuracyByHand() throws {
        #expect(try Metrics.accuracy(predicted: [0, 1, 2, 2], truth: [0, 1, 1, 2]) == 0.75)
        let logits = Tensor(shape: [3, 3], storage: [1, 1, 0, 0, 2, 2, 3, 0, 1])  // argmax 0, 1, 0
        #expect(Metrics.argmax(logits) == [0, 1, 0])
        #expect(abs(try Metrics.accuracy(logits: logits, targets: [0, 2, 0]) - 2.0 / 3) < 1e-15)
        #expect(throws: TrainingError.self) { try Metrics.accuracy(predicted: [], truth: []) }
        #expect(throws: TrainingError.self) { try Metrics.accuracy(predicted: [1], truth: [1, 0]) }
        #expect(throws: TrainingError.self) { try Metrics.accuracy(logits: Tensor(zeros: [4]), targets: [0]) }
    }

    @Test("Dice per label by hand")
    func dicePerLabel() throws {
        let d = try Metrics.dicePerLabel(predicted: [0, 1, 1, 2, 2, 0], truth: [0, 1, 2, 2, 0, 0], labels: [1, 2, 3])
        #expect(d == [2.0 / 3, 0.5, 1])
        #expect(throws: TrainingError.self) { try Metrics.dicePerLabel(predicted: [1], truth: [], labels: [1]) }
    }

    @Test("ROC AUC and accuracy equal scikit-learn's on the golden cases")
    func golden() throws {
        let g = try Self.golden()
        #expect(g.roc_auc.count == 6 && g.accuracy.count == 2)
        for c in g.roc_auc {
            let auc = try Metrics.rocAUC(scores: c.scores, labels: c.labels)
            print(String(format: "GOLDEN roc_auc %@: %.15f vs sklearn %.15f", c.name, auc, c.auc))
            #expect(abs(auc - c.auc) <= 1e-12 * max(1, abs(c.auc)), "\(c.name): \(auc) vs \(c.auc)")
        }
        for c in g.accuracy {
            let value: Double
            if let logits = c.logits, let shape = c.shape, let targets = c.targets {
                value = try Metrics.accuracy(logits: Tensor(shape: shape, storage: logits), targets: targets)
            } else {
                value = try Metrics.accuracy(predicted: c.predicted ?? [], truth: c.truth ?? [])
            }
            #expect(abs(value - c.accuracy) <= 1e-12, "\(c.name): \(value) vs \(c.accuracy)")
        }
    }
}

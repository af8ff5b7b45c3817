import Foundation
import TestSupport
import Testing
import Training

/// Confusion matrix, balanced accuracy, sensitivity/specificity, per-class recall and AUC, and the bootstrap AUC
/// interval: by hand and against scikit-learn (golden values from scripts/reference/metrics_golden.py).
@Suite("Classification metrics", .computeBound)
struct ClassificationMetricsTests {
    struct Golden: Decodable {
        struct Case: Decodable {
            var name: String
            var probabilities: [[Double]]
            var truth: [Int]
            var positive_class: Int
            var threshold: Double
            var confusion: [[Int]]
            var accuracy: Double
            var balanced_accuracy: Double
            var sensitivity: Double
            var specificity: Double
            var recall: [Double]
            var class_auc: [Double]
            var auc: Double
            var macro_ovr_auc: Double?
        }
        struct Bootstrap: Decodable {
            var name: String
            var scores: [Double]
            var labels: [Int]
            var resamples: Int
            var level: Double
            var seed: UInt64
            var lower: Double
            var upper: Double
            var used: Int
        }
        var classification: [Case]
        var bootstrap: [Bootstrap]
    }

    static func golden() throws -> Golden {
        let url = URL(fileURLWithPath: repositoryRoot + "/Tests/TrainingTests/Golden/metrics_golden.json")
        return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }

    static func close(_ a: Double?, _ b: Double?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return abs(a - b) <= 1e-12 * max(1, abs(b))
    }

    @Test("By hand: 6 binary studies")
    func byHand() throws {
        // p(positive): 0.9 0.6 0.4 | 0.7 0.2 0.1 for truth 1 1 1 | 0 0 0.
        let p: [[Double]] = [0.9, 0.6, 0.4, 0.7, 0.2, 0.1].map { [1 - $0, $0] }
        let m = try Metrics.classification(
            probabilities: p, truth: [1, 1, 1, 0, 0, 0], positiveClass: 1, threshold: 0.5)
        #expect(m.confusion == [[2, 1], [1, 2]])
        #expect(m.accuracy == 4.0 / 6 && m.balancedAccuracy == 4.0 / 6)
        #expect(m.sensitivity == 2.0 / 3 && m.specificity == 2.0 / 3)
        // Pairs: 0.9 beats all 3; 0.6 beats 0.2, 0.1; 0.4 beats 0.2, 0.1 → 7/9.
        #expect(Self.close(m.auc, 7.0 / 9))
        let twoThirds: Double? = 2.0 / 3
        #expect(m.recall == [twoThirds, twoThirds])
        #expect(m.reported["auc"] == m.auc && m.reported["studies"] == 6)
        // A lower threshold calls 0.4 positive too.
        let low = try Metrics.classification(
            probabilities: p, truth: [1, 1, 1, 0, 0, 0], positiveClass: 1, threshold: 0.4)
        #expect(low.sensitivity == 1 && low.specificity == 2.0 / 3)
        // One class only: AUC and specificity undefined, not NaN.
        let one = try Metrics.classification(
            probabilities: Array(p.prefix(3)), truth: [1, 1, 1], positiveClass: 1, threshold: 0.5)
        #expect(one.auc == nil && one.specificity == nil && one.reported["auc"] == nil)
        #expect(throws: TrainingError.self) {
            try Metrics.classification(probabilities: [[0.5, .nan]], truth: [0], positiveClass: 1, threshold: 0.5)
        }
        #expect(throws: TrainingError.self) {
            try Metrics.confusionMatrix(predicted: [0, 3], truth: [0, 1], classes: 2)
        }
    }

    @Test("Equal to scikit-learn on the golden cases (binary, imbalanced, 3 and 4 classes)")
    func golden() throws {
        let cases = try Self.golden().classification
        #expect(cases.count == 4)
        for c in cases {
            let m = try Metrics.classification(
                probabilities: c.probabilities, truth: c.truth, positiveClass: c.positive_class, threshold: c.threshold)
            #expect(m.confusion == c.confusion, "\(c.name)")
            #expect(Self.close(m.accuracy, c.accuracy), "\(c.name)")
            #expect(Self.close(m.balancedAccuracy, c.balanced_accuracy), "\(c.name)")
            #expect(Self.close(m.sensitivity, c.sensitivity) && Self.close(m.specificity, c.specificity), "\(c.name)")
            #expect(Self.close(m.auc, c.auc), "\(c.name): \(String(describing: m.auc)) vs \(c.auc)")
            for k in c.recall.indices {
                // scikit-learn's zero_division=0 stands for a class absent from the truth (ours: nil).
                #expect(Self.close(m.recall[k] ?? 0, c.recall[k]), "\(c.name) class \(k)")
                #expect(Self.close(m.classAUC[k], c.class_auc[k]), "\(c.name) class \(k)")
            }
            if let macro = c.macro_ovr_auc {
                let mean = m.classAUC.compactMap { $0 }.reduce(0, +) / Double(m.classAUC.count)
                #expect(Self.close(mean, macro), "\(c.name)")
            }
        }
    }

    @Test("Bootstrap AUC interval: the same resamples and quantiles as the reference, reproducible from the seed")
    func bootstrap() throws {
        for c in try Self.golden().bootstrap {
            let ci = try #require(
                try Metrics.bootstrapAUC(
                    scores: c.scores, labels: c.labels, resamples: c.resamples, level: c.level, seed: c.seed))
            #expect(
                Self.close(ci.lower, c.lower) && Self.close(ci.upper, c.upper),
                "\(c.name): \(ci) vs \(c.lower) \(c.upper)")
            #expect(ci.resamples == c.used && ci.level == c.level)
            let again = try Metrics.bootstrapAUC(
                scores: c.scores, labels: c.labels, resamples: c.resamples, level: c.level, seed: c.seed)
            #expect(again == ci)
        }
        #expect(
            try Metrics.bootstrapAUC(scores: [0.1, 0.2], labels: [0, 1], resamples: 0, level: 0.95, seed: 1) == nil)
    }
}

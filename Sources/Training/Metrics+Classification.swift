import Randomness

/// A confidence interval.
public struct ConfidenceInterval: Sendable, Equatable, Codable {
    public var lower: Double
    public var upper: Double
    /// Two-sided level, e.g. 0.95.
    public var level: Double
    /// Resamples the interval was computed from (those with both classes).
    public var resamples: Int
}

/// Everything a classification evaluation reports for one model on one set of studies.
public struct ClassificationMetrics: Sendable, Equatable, Codable {
    public var studies: Int
    public var accuracy: Double
    public var balancedAccuracy: Double
    /// `confusion[truth][predicted]` (scikit-learn's `confusion_matrix`), arg-max predictions.
    public var confusion: [[Int]]
    /// Binary (or the positive class one-vs-rest): ROC AUC of the positive class's probability; nil when the
    /// studies hold one class only.
    public var auc: Double?
    public var aucInterval: ConfidenceInterval?
    /// At `threshold` on the positive class's probability.
    public var sensitivity: Double?
    public var specificity: Double?
    public var threshold: Double
    /// Per class (one-vs-rest): recall (sensitivity) and ROC AUC; nil where undefined.
    public var recall: [Double?]
    public var classAUC: [Double?]

    /// The figures a site reports to the server (aggregate values only): `auc`, `accuracy`, `balanced_accuracy`,
    /// `sensitivity`, `specificity`, `auc_lower`, `auc_upper`, `studies`, `auc_class_<k>`.
    public var reported: [String: Double] {
        var m: [String: Double] = [
            "accuracy": accuracy, "balanced_accuracy": balancedAccuracy, "studies": Double(studies),
        ]
        m["auc"] = auc
        m["sensitivity"] = sensitivity
        m["specificity"] = specificity
        m["auc_lower"] = aucInterval?.lower
        m["auc_upper"] = aucInterval?.upper
        if classAUC.count > 2 {
            for (k, a) in classAUC.enumerated() { m["auc_class_\(k)"] = a }
        }
        return m
    }
}

extension Metrics {
    /// Confusion matrix `C[t][p]`: studies of true class t predicted as p (scikit-learn's `confusion_matrix` with
    /// `labels = 0..<classes`).
    /// - Throws: `.invalidArgument` when the counts differ or a class is outside `0..<classes`.
    public static func confusionMatrix(predicted: [Int], truth: [Int], classes: Int) throws(TrainingError) -> [[Int]] {
        guard predicted.count == truth.count, classes > 0 else {
            throw TrainingError(
                .invalidArgument, "confusion matrix: \(predicted.count) predictions for \(truth.count) true labels")
        }
        var c = Array(repeating: Array(repeating: 0, count: classes), count: classes)
        for (p, t) in zip(predicted, truth) {
            guard (0..<classes).contains(p), (0..<classes).contains(t) else {
                throw TrainingError(
                    .invalidArgument,
                    "confusion matrix: class \((0..<classes).contains(p) ? t : p) outside 0..<\(classes)")
            }
            c[t][p] += 1
        }
        return c
    }

    /// Mean recall over the classes present in `truth` (scikit-learn's `balanced_accuracy_score`).
    public static func balancedAccuracy(predicted: [Int], truth: [Int], classes: Int) throws(TrainingError) -> Double {
        let c = try confusionMatrix(predicted: predicted, truth: truth, classes: classes)
        let recalls = c.indices.compactMap { k -> Double? in
            let n = c[k].reduce(0, +)
            return n == 0 ? nil : Double(c[k][k]) / Double(n)
        }
        guard !recalls.isEmpty else { throw TrainingError(.invalidArgument, "balanced accuracy of no samples") }
        return recalls.reduce(0, +) / Double(recalls.count)
    }

    /// Sensitivity TP/(TP+FN) and specificity TN/(TN+FP) when a study is called positive at `score ≥ threshold`
    /// (scikit-learn's `recall_score` with `pos_label` 1 and 0); nil where the class is absent.
    public static func sensitivitySpecificity(scores: [Double], labels: [Int], threshold: Double) -> (
        sensitivity: Double?, specificity: Double?
    ) {
        var (tp, fn, tn, fp) = (0, 0, 0, 0)
        for (s, y) in zip(scores, labels) {
            let positive = s >= threshold
            if y == 1 { if positive { tp += 1 } else { fn += 1 } } else { if positive { fp += 1 } else { tn += 1 } }
        }
        return (
            tp + fn == 0 ? nil : Double(tp) / Double(tp + fn), tn + fp == 0 ? nil : Double(tn) / Double(tn + fp)
        )
    }

    /// Percentile bootstrap interval of the ROC AUC: `resamples` draws of n studies with replacement (index =
    /// `SplitMix64(seed).next() % n`), resamples holding one class only skipped (their AUC is undefined), and the
    /// (1 − level)/2 and (1 + level)/2 quantiles of the AUCs by numpy's linear rule. The golden values of
    /// `scripts/reference/metrics_golden.py` repeat the same draws with scikit-learn.
    /// - Returns: nil when fewer than two resamples hold both classes.
    public static func bootstrapAUC(
        scores: [Double], labels: [Int], resamples: Int, level: Double, seed: UInt64
    ) throws(TrainingError) -> ConfidenceInterval? {
        guard scores.count == labels.count, !scores.isEmpty, resamples >= 0, level > 0, level < 1 else {
            throw TrainingError(.invalidArgument, "bootstrap AUC: \(scores.count) scores for \(labels.count) labels")
        }
        var g = SplitMix64(seed: seed)
        let n = UInt64(scores.count)
        var aucs: [Double] = []
        aucs.reserveCapacity(resamples)
        var s = [Double](repeating: 0, count: scores.count)
        var y = [Int](repeating: 0, count: scores.count)
        for _ in 0..<resamples {
            var positives = 0
            for i in s.indices {
                let j = Int(g.next() % n)
                s[i] = scores[j]
                y[i] = labels[j]
                positives += labels[j] == 1 ? 1 : 0
            }
            guard positives > 0, positives < s.count else { continue }
            aucs.append(try rocAUC(scores: s, labels: y))
        }
        guard aucs.count >= 2 else { return nil }
        aucs.sort()
        return ConfidenceInterval(
            lower: quantile(aucs, (1 - level) / 2), upper: quantile(aucs, (1 + level) / 2), level: level,
            resamples: aucs.count)
    }

    /// numpy's default (linear) quantile of sorted values.
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let h = Double(sorted.count - 1) * q
        let lo = min(max(Int(exactly: h.rounded(.down)) ?? 0, 0), sorted.count - 1)
        let hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
    }

    /// Every classification figure from class probabilities `[studies][classes]` and true classes.
    /// - Parameters:
    ///   - positiveClass: the class whose probability is the binary score (AUC, sensitivity, specificity).
    ///   - threshold: the positive call on that probability.
    /// - Throws: `.invalidArgument` for mismatched counts, a probability row of the wrong length, NaN.
    public static func classification(
        probabilities: [[Double]], truth: [Int], positiveClass: Int, threshold: Double,
        bootstrapResamples: Int = 0, level: Double = 0.95, seed: UInt64 = 0
    ) throws(TrainingError) -> ClassificationMetrics {
        guard let classes = probabilities.first?.count, classes >= 2, probabilities.count == truth.count,
            probabilities.allSatisfy({ $0.count == classes && $0.allSatisfy(\.isFinite) }),
            (0..<classes).contains(positiveClass)
        else {
            throw TrainingError(
                .invalidArgument,
                "classification metrics: \(probabilities.count) probability rows for \(truth.count) labels; each "
                    + "row needs one finite probability per class (≥ 2)")
        }
        let predicted = probabilities.map { row in
            var best = 0
            for k in 1..<row.count where row[k] > row[best] { best = k }
            return best
        }
        let confusion = try confusionMatrix(predicted: predicted, truth: truth, classes: classes)
        let scores = probabilities.map { $0[positiveClass] }
        let binary = truth.map { $0 == positiveClass ? 1 : 0 }
        let both = binary.contains(1) && binary.contains(0)
        let (sensitivity, specificity) = sensitivitySpecificity(scores: scores, labels: binary, threshold: threshold)
        var classAUC: [Double?] = []
        var recall: [Double?] = []
        for k in 0..<classes {
            let y = truth.map { $0 == k ? 1 : 0 }
            let n = confusion[k].reduce(0, +)
            recall.append(n == 0 ? nil : Double(confusion[k][k]) / Double(n))
            classAUC.append(
                y.contains(1) && y.contains(0) ? try rocAUC(scores: probabilities.map { $0[k] }, labels: y) : nil)
        }
        return ClassificationMetrics(
            studies: truth.count, accuracy: try accuracy(predicted: predicted, truth: truth),
            balancedAccuracy: try balancedAccuracy(predicted: predicted, truth: truth, classes: classes),
            confusion: confusion, auc: both ? try rocAUC(scores: scores, labels: binary) : nil,
            aucInterval: both && bootstrapResamples > 0
                ? try bootstrapAUC(
                    scores: scores, labels: binary, resamples: bootstrapResamples, level: level, seed: seed) : nil,
            sensitivity: sensitivity, specificity: specificity, threshold: threshold, recall: recall,
            classAUC: classAUC)
    }
}

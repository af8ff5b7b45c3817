import Tensors

/// Evaluation metrics: Dice per label (segmentation), accuracy and binary ROC AUC (classification).
///
/// Every metric is computed in double precision from plain arrays, so the same numbers come out of the trainer, the
/// federated evaluation and the tests. The definitions are scikit-learn's (`accuracy_score`, `roc_auc_score`), checked
/// against golden values from `scripts/reference/metrics_golden.py`.
public enum Metrics {
    /// Dice coefficient of one label, `2|A ∩ B| / (|A| + |B|)` over the positions where `predicted` (A) and `truth`
    /// (B) equal `label`; 1 when the label is absent from both (nothing to find, nothing found).
    public static func dice(predicted: [UInt8], truth: [UInt8], label: UInt8) -> Double {
        var both = 0
        var na = 0
        var nb = 0
        for i in 0..<min(predicted.count, truth.count) {
            let x = predicted[i] == label
            let y = truth[i] == label
            if x { na += 1 }
            if y { nb += 1 }
            if x && y { both += 1 }
        }
        return na + nb == 0 ? 1 : 2 * Double(both) / Double(na + nb)
    }

    /// Dice of every label in `labels` (e.g. `1...classes-1`, background left out), in that order.
    /// - Throws: `.invalidArgument` when the two label maps differ in length.
    public static func dicePerLabel(predicted: [UInt8], truth: [UInt8], labels: [UInt8]) throws(TrainingError)
        -> [Double]
    {
        guard predicted.count == truth.count else {
            throw TrainingError(
                .invalidArgument,
                "Dice: \(predicted.count) predicted labels but \(truth.count) true "
                    + "ones; compare label maps on the same grid")
        }
        return labels.map { dice(predicted: predicted, truth: truth, label: $0) }
    }

    /// Fraction of positions where `predicted[i] == truth[i]` (scikit-learn's `accuracy_score`).
    /// - Throws: `.invalidArgument` when the arrays are empty or differ in length.
    public static func accuracy(predicted: [Int], truth: [Int]) throws(TrainingError) -> Double {
        guard predicted.count == truth.count, !truth.isEmpty else {
            throw TrainingError(
                .invalidArgument,
                "accuracy: \(predicted.count) predictions for \(truth.count) "
                    + "true labels; give one prediction per sample, at least one sample")
        }
        var hits = 0
        for i in truth.indices where predicted[i] == truth[i] { hits += 1 }
        return Double(hits) / Double(truth.count)
    }

    /// Accuracy of the arg-max class of logits `[batch, classes]` against `targets` (`batch` class indices).
    /// Ties between logits go to the lowest class index (numpy's `argmax`).
    /// - Throws: `.invalidArgument` when the logits are not `[batch, classes]` or `targets.count != batch`.
    public static func accuracy(logits: Tensor, targets: [Int]) throws(TrainingError) -> Double {
        guard logits.rank == 2, logits.shape[0] > 0, logits.shape[1] > 0 else {
            throw TrainingError(.invalidArgument, "accuracy: logits must be [batch, classes], got \(logits.shape)")
        }
        return try accuracy(predicted: argmax(logits), truth: targets)
    }

    /// Arg-max class per row of logits `[batch, classes]` (lowest index on ties).
    public static func argmax(_ logits: Tensor) -> [Int] {
        let (n, c) = (logits.shape[0], logits.shape[1])
        return (0..<n).map { b in
            var best = 0
            for k in 1..<c where logits.storage[b * c + k] > logits.storage[b * c + best] { best = k }
            return best
        }
    }

    /// Area under the binary ROC curve (scikit-learn's `roc_auc_score`).
    ///
    /// Computed as the Mann–Whitney statistic with mid-ranks for tied scores,
    /// `AUC = (Σ rank(positive) − P(P+1)/2) / (P·N)` for P positives and N negatives, which equals the trapezoid
    /// area under the ROC curve with ties counted as half (a tie between a positive and a negative scores ½).
    /// - Parameters:
    ///   - scores: higher means more likely positive (a probability, a logit, or the positive-class logit margin).
    ///   - labels: 0 (negative) or 1 (positive), one per score.
    /// - Returns: a value in [0, 1]; 0.5 for uninformative scores.
    /// - Throws: `.invalidArgument` when the counts differ, a label is not 0/1, a score is NaN or infinite, or only
    ///   one class is present (the AUC is undefined then: evaluate on a set with both classes).
    public static func rocAUC(scores: [Double], labels: [Int]) throws(TrainingError) -> Double {
        guard scores.count == labels.count else {
            throw TrainingError(
                .invalidArgument,
                "ROC AUC: \(scores.count) scores for \(labels.count) labels; give "
                    + "one score per label")
        }
        if let bad = labels.first(where: { $0 != 0 && $0 != 1 }) {
            throw TrainingError(
                .invalidArgument,
                "ROC AUC: label \(bad) is not binary; labels must be 0 (negative) "
                    + "or 1 (positive)")
        }
        if let i = scores.firstIndex(where: { !$0.isFinite }) {
            throw TrainingError(.invalidArgument, "ROC AUC: score \(i) is \(scores[i]); scores must be finite")
        }
        let positives = labels.reduce(0, +)
        let negatives = labels.count - positives
        guard positives > 0, negatives > 0 else {
            throw TrainingError(
                .invalidArgument,
                "ROC AUC is undefined with only one class present (\(positives) "
                    + "positive, \(negatives) negative samples); evaluate on a set with both classes")
        }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var positiveRankSum = 0.0
        var start = 0
        while start < order.count {
            var end = start + 1
            while end < order.count && scores[order[end]] == scores[order[start]] { end += 1 }
            // Ranks start + 1 ... end share their mean (mid-rank).
            let midRank = Double(start + 1 + end) / 2
            for j in start..<end where labels[order[j]] == 1 { positiveRankSum += midRank }
            start = end
        }
        let p = Double(positives)
        let n = Double(negatives)
        return (positiveRankSum - p * (p + 1) / 2) / (p * n)
    }

    /// ROC AUC of two-class logits `[batch, 2]`: the score is the margin `z₁ − z₀` (monotone in softmax p₁).
    /// - Throws: as `rocAUC(scores:labels:)`, and `.invalidArgument` unless the logits are `[batch, 2]`.
    public static func rocAUC(logits: Tensor, labels: [Int]) throws(TrainingError) -> Double {
        guard logits.rank == 2, logits.shape[1] == 2 else {
            throw TrainingError(
                .invalidArgument,
                "ROC AUC: logits must be [batch, 2] for a binary task, got "
                    + "\(logits.shape)")
        }
        let scores = (0..<logits.shape[0]).map { Double(logits.storage[2 * $0 + 1]) - Double(logits.storage[2 * $0]) }
        return try rocAUC(scores: scores, labels: labels)
    }
}

/// Dice coefficient 2|A ∩ B| / (|A| + |B|) of one label; 1 when both are empty (`Metrics.dice`).
public func dice(_ a: [UInt8], _ b: [UInt8], label: UInt8) -> Double {
    Metrics.dice(predicted: a, truth: b, label: label)
}

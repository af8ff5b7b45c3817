#!/usr/bin/env python3
"""Golden values for Tessera's classification metrics (Training/Metrics.swift), computed with scikit-learn.

What
    Seeded cases for binary ROC AUC (`sklearn.metrics.roc_auc_score`) and accuracy (`accuracy_score`), written with
    their inputs to one JSON file that Tests/TrainingTests/MetricsTests.swift compares against
    (|swift - ref| <= 1e-12 * max(1, |ref|)). The cases cover tied scores (scores rounded to one decimal, so many
    positives and negatives share a score), all scores equal (AUC 0.5), perfect and reversed rankings, imbalanced
    classes, and accuracy from arg-max logits with tied maxima (numpy's argmax takes the first).

How to run
    python3 scripts/reference/metrics_golden.py [OUTPUT_JSON]
    (default Tests/TrainingTests/Golden/metrics_golden.json)

    The first run creates the virtual environment scripts/.venv-metrics (git-ignored by `/scripts/.venv*/`),
    installs the pinned packages below and re-executes itself there; later runs reuse it.

Pinned packages
    numpy==2.4.6, scikit-learn==1.9.1

Conventions (the Swift code must do exactly the same)
    ROC AUC     scores are float64, labels 0/1; sklearn's trapezoid over the ROC curve, where tied scores form one
                step (equal to the Mann-Whitney U / (P*N) with mid-ranks). One-class input is an error in both.
    Accuracy    mean(predicted == truth); from logits [batch, classes] the prediction is np.argmax(axis=1).
    Classification (Metrics.classification, Metrics+Classification.swift), from probabilities [n, C]:
                prediction = np.argmax (first on ties); confusion_matrix(labels=0..C-1) [truth][predicted];
                balanced_accuracy_score; sensitivity = recall_score(pos_label=1) and specificity =
                recall_score(pos_label=0) of (p[:, positive] >= threshold) against (truth == positive); per-class
                recall = recall_score(average=None, labels=0..C-1); per-class AUC = roc_auc_score(truth == k, p[:, k]);
                for C > 2 also roc_auc_score(multi_class="ovr", average="macro") = mean of the per-class AUCs.
    Bootstrap   the AUC's percentile interval: SplitMix64(seed) (reimplemented below, as Randomness/SplitMix64.swift),
                index = next() % n for each of n draws per resample, resamples with one class skipped, AUCs by
                roc_auc_score, bounds np.quantile(method="linear") at (1 - level)/2 and (1 + level)/2.
"""
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, "scripts", ".venv-metrics")
PINS = ["numpy==2.4.6", "scikit-learn==1.9.1"]


def ensure_venv():
    python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([python, "-m", "pip", "install", "-q", *PINS])
    os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])


ensure_venv()

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, recall_score,  # noqa: E402
                             roc_auc_score)


def auc_cases(rng):
    cases = []
    n = 60
    labels = rng.integers(0, 2, n)
    scores = np.round(rng.random(n) + 0.3 * labels, 1)  # informative, many ties
    cases.append(("random scores rounded to 0.1 (ties), 60 samples", scores, labels))
    labels = (rng.random(200) < 0.1).astype(int)
    labels[0] = 1
    scores = rng.normal(0, 1, 200) + 0.8 * labels
    cases.append(("imbalanced 1:9, Gaussian scores, 200 samples", scores, labels))
    scores = np.round(rng.normal(0, 1, 40), 0)
    labels = rng.integers(0, 2, 40)
    labels[:2] = [0, 1]
    cases.append(("integer scores (heavy ties), 40 samples", scores, labels))
    cases.append(("all scores equal", np.full(10, 0.7), np.array([0, 1] * 5)))
    cases.append(("perfect ranking", np.array([0.1, 0.2, 0.3, 0.8, 0.9]), np.array([0, 0, 0, 1, 1])))
    cases.append(("reversed ranking", np.array([0.9, 0.8, 0.3, 0.2]), np.array([0, 0, 1, 1])))
    out = []
    for name, s, y in cases:
        out.append({"name": name, "scores": [float(v) for v in s], "labels": [int(v) for v in y],
                    "auc": float(roc_auc_score(y, s))})
    return out


def accuracy_cases(rng):
    out = []
    truth = rng.integers(0, 4, 50)
    predicted = np.where(rng.random(50) < 0.7, truth, rng.integers(0, 4, 50))
    out.append({"name": "4 classes, 50 samples", "predicted": predicted.tolist(), "truth": truth.tolist(),
                "accuracy": float(accuracy_score(truth, predicted))})
    logits = np.round(rng.normal(0, 1, (30, 3)), 0).astype(np.float32)  # integer logits: tied maxima
    targets = rng.integers(0, 3, 30)
    out.append({"name": "argmax of integer logits [30, 3] (ties: first index)",
                "logits": [float(v) for v in logits.ravel()], "shape": [30, 3], "targets": targets.tolist(),
                "accuracy": float(accuracy_score(targets, np.argmax(logits, axis=1)))})
    return out


MASK = (1 << 64) - 1


class SplitMix64:
    """Randomness/SplitMix64.swift, bit for bit."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def bootstrap(scores, labels, resamples, level, seed):
    g = SplitMix64(seed)
    n = len(scores)
    aucs = []
    for _ in range(resamples):
        idx = [g.next() % n for _ in range(n)]
        y = labels[idx]
        if y.min() == y.max():
            continue
        aucs.append(roc_auc_score(y, scores[idx]))
    aucs = np.array(aucs)
    return float(np.quantile(aucs, (1 - level) / 2)), float(np.quantile(aucs, (1 + level) / 2)), len(aucs)


def classification_cases(rng):
    out = []
    specs = [("binary, 40 studies, informative", 40, 2, 1, 0.5), ("binary, imbalanced 1:5, threshold 0.3", 36, 2, 1, 0.3),
             ("3 classes, 45 studies, positive class 2", 45, 3, 2, 0.4),
             ("4 classes, 30 studies, one class never predicted", 30, 4, 0, 0.5)]
    for name, n, c, positive, threshold in specs:
        if "imbalanced" in name:
            truth = (rng.random(n) < 1 / 6).astype(int)
            truth[:2] = [0, 1]
        else:
            truth = rng.integers(0, c, n)
            truth[:c] = np.arange(c)
        logits = rng.normal(0, 1, (n, c))
        logits[np.arange(n), truth] += 1.2
        if "never predicted" in name:
            logits[:, 3] -= 10
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        if c == 2:
            p = np.round(p, 3)  # ties between studies (multi-class rows must sum to 1 for the macro AUC)
        predicted = np.argmax(p, axis=1)
        binary = (truth == positive).astype(int)
        called = (p[:, positive] >= threshold).astype(int)
        case = {"name": name, "probabilities": [[float(v) for v in row] for row in p], "truth": truth.tolist(),
                "positive_class": positive, "threshold": threshold,
                "confusion": confusion_matrix(truth, predicted, labels=list(range(c))).tolist(),
                "accuracy": float(accuracy_score(truth, predicted)),
                "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
                "sensitivity": float(recall_score(binary, called, pos_label=1)),
                "specificity": float(recall_score(binary, called, pos_label=0)),
                "recall": [float(v) for v in recall_score(truth, predicted, average=None, labels=list(range(c)),
                                                          zero_division=0)],
                "class_auc": [float(roc_auc_score((truth == k).astype(int), p[:, k])) for k in range(c)],
                "auc": float(roc_auc_score(binary, p[:, positive]))}
        if c > 2:
            case["macro_ovr_auc"] = float(roc_auc_score(truth, p, multi_class="ovr", average="macro"))
        out.append(case)
    return out


def bootstrap_cases(rng):
    out = []
    for name, n, resamples, level, seed in [("60 studies, 500 resamples, 95 %", 60, 500, 0.95, 20261207),
                                            ("12 studies (skipped one-class resamples), 300 resamples, 90 %", 12, 300,
                                             0.9, 7)]:
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        scores = np.round(rng.random(n) + 0.4 * labels, 2)
        lower, upper, used = bootstrap(scores, labels, resamples, level, seed)
        out.append({"name": name, "scores": [float(v) for v in scores], "labels": labels.tolist(),
                    "resamples": resamples, "level": level, "seed": seed, "lower": lower, "upper": upper,
                    "used": used})
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "TrainingTests", "Golden",
                                                               "metrics_golden.json")
    rng = np.random.default_rng(20261121)
    doc = {
        "provenance": {
            "script": "scripts/reference/metrics_golden.py",
            "numpy": np.__version__, "scikit-learn": sklearn.__version__, "python": platform.python_version(),
            "seed": 20261121,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "roc_auc": auc_cases(rng),
        "accuracy": accuracy_cases(rng),
        # A second generator, so that the cases above keep their values.
        "classification": classification_cases(np.random.default_rng(20261207)),
        "bootstrap": bootstrap_cases(np.random.default_rng(20261208)),
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    for c in doc["roc_auc"]:
        print(f"roc_auc  {c['name']}: {c['auc']:.12f}")
    for c in doc["accuracy"]:
        print(f"accuracy {c['name']}: {c['accuracy']:.12f}")
    for c in doc["classification"]:
        print(f"classification {c['name']}: AUC {c['auc']:.6f}, balanced accuracy {c['balanced_accuracy']:.6f}")
    for c in doc["bootstrap"]:
        print(f"bootstrap {c['name']}: [{c['lower']:.6f}, {c['upper']:.6f}] from {c['used']} resamples")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

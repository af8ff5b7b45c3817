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
from sklearn.metrics import accuracy_score, roc_auc_score  # noqa: E402


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
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    for c in doc["roc_auc"]:
        print(f"roc_auc  {c['name']}: {c['auc']:.12f}")
    for c in doc["accuracy"]:
        print(f"accuracy {c['name']}: {c['accuracy']:.12f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden values for PercentilePrivacyFilter (Sources/FederationCore/Filters/SiteFilter.swift).

What
    The computation of NVIDIA FLARE's PercentilePrivacy filter (nvflare/app_common/filters/percentile_privacy.py)
    on a few small float32 weight diffs of two tensors each:
        cutoff = np.percentile(np.abs(all values), p)        # numpy's default method "linear" (type 7)
        v[np.abs(v) < cutoff] = 0
        v = np.clip(v, -gamma, gamma)
    The cutoff is computed in float64 from the float32 magnitudes (the Swift code does the same), so the
    comparison |v| < cutoff is made in float64.

How to run
    python3 scripts/reference/percentile_privacy_golden.py [OUTPUT_JSON]
    Needs numpy only (made with numpy 2.4.6). Writes Tests/FederationCoreTests/Golden/percentile_privacy_golden.json
    by default; compared by Tests/FederationCoreTests/PercentilePrivacyFilterTests.swift.
"""
import json
import sys

import numpy as np


def case(name, tensors, percentile, gamma):
    flat = np.concatenate([np.asarray(v, dtype=np.float32).ravel() for _, _, v in tensors])
    cutoff = float(np.percentile(np.abs(flat).astype(np.float64), percentile))
    out = []
    for tname, shape, values in tensors:
        v = np.asarray(values, dtype=np.float32).copy()
        v[np.abs(v).astype(np.float64) < cutoff] = 0
        v = np.clip(v, np.float32(-gamma), np.float32(gamma)).astype(np.float32)
        out.append({"name": tname, "shape": shape,
                    "input": [float(x) for x in np.asarray(values, dtype=np.float32)],
                    "output": [float(x) for x in v]})
    return {"name": name, "percentile": percentile, "gamma": gamma, "cutoff": cutoff, "tensors": out}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "Tests/FederationCoreTests/Golden/percentile_privacy_golden.json"
    rng = np.random.default_rng(20151012)  # CCS 2015
    a = rng.normal(0, 0.02, size=(3, 5)).astype(np.float32)
    b = rng.normal(0, 0.05, size=(7,)).astype(np.float32)
    ties = np.array([0.5, -0.5, 0.5, 0.25, -0.25, 0.0, 1.0, -1.0, 0.5, 0.75], dtype=np.float32)
    cases = [
        case("normal-p10-g0.01", [("enc.weight", [3, 5], a.ravel()), ("enc.bias", [7], b)], 10, 0.01),
        case("normal-p50-g0.04", [("enc.weight", [3, 5], a.ravel()), ("enc.bias", [7], b)], 50, 0.04),
        case("normal-p99.5-g1", [("enc.weight", [3, 5], a.ravel()), ("enc.bias", [7], b)], 99.5, 1.0),
        case("ties-p37.5-g0.6", [("w", [2, 4], ties[:8]), ("b", [2], ties[8:])], 37.5, 0.6),
        case("single-p25-g0.1", [("w", [1], np.array([-0.3], dtype=np.float32))], 25, 0.1),
    ]
    doc = {"provenance": "scripts/reference/percentile_privacy_golden.py, numpy " + np.__version__
                         + ", np.percentile default method 'linear'", "cases": cases}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

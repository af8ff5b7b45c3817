#!/usr/bin/env python3
"""Golden values for Tessera's preprocessing tests (Volumes), computed with scipy + numpy.

What
    Small deterministic volumes, resampled and normalised by scipy/numpy, written with their inputs to one JSON
    file that Tests/VolumesTests/GoldenTests.swift compares against (|swift - ref| <= 1e-5 * max(1, |ref|)).

How to run
    python3 scripts/reference/preprocess_golden.py [OUTPUT_JSON]
    (default Tests/VolumesTests/Golden/preprocess_golden.json)

    The first run creates the virtual environment scripts/.venv-preprocess (git-ignored by `/scripts/.venv*/`),
    installs the pinned packages below and re-executes itself there; later runs reuse it.

Pinned packages
    numpy==2.3.5, scipy==1.16.3

Conventions (the Swift code must do exactly the same)
    Arrays      numpy arrays are [z, y, x] (C order), i.e. x fastest, like Volume.voxels; JSON lists are flat in that
                order, shapes/spacings/origins are given as [x, y, z].
    Grid        voxel (i, j, k) has its centre at origin + i*sx*dx + j*sy*dy + k*sz*dz (LPS mm); origin is the centre
                of the first voxel; direction is given as its three columns dx, dy, dz.
    Sampling    output voxel idx samples source continuous index u = A_src^-1 (A_out idx + o_out - o_src), with
                A = [dx dy dz] diag(s). Trilinear = scipy.ndimage.map_coordinates(order=1, mode='nearest',
                prefilter=False): edge values replicated beyond the first/last voxel centre.
    Spacing     resampling to spacing s' keeps origin and direction, shape n' = floor(n*s/s' + 0.5).
    Anti-alias  before sampling, gaussian_filter(sigma, mode='nearest', truncate=4.0) with, per axis,
                sigma = max(0, (r - 1)/2) source voxels, r = s'/s (the downsampling factor).
    Intensity   computed in float64 on the float32 input values. zscore: (v - mean)/std (population std).
                percentile: lo, hi = np.percentile(v, [0.5, 99.5]) (method 'linear'), clip((v - lo)/(hi - lo), 0, 1).
                window: clip(v, -160, 240), then (v + 160)/400 (soft tissue W400/L40 scaled to [0, 1]).
                histogram matching: p = linspace(0, 1, 101); ref_q = percentile(ref, 100p); src_q = percentile(src,
                100p); np.interp(v, src_q, ref_q).
"""
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, "scripts", ".venv-preprocess")
PINS = ["numpy==2.3.5", "scipy==1.16.3"]


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
import scipy  # noqa: E402
from scipy import ndimage  # noqa: E402


def grid(dims, spacing, origin, direction):
    return {"dimensions": list(dims), "spacing": list(spacing), "origin": list(origin),
            "direction": [list(map(float, c)) for c in direction]}


def affine(g):
    d = np.array(g["direction"], dtype=np.float64).T  # columns dx, dy, dz
    return d @ np.diag(g["spacing"]), np.array(g["origin"], dtype=np.float64)


def sample(volume_zyx, src, out, sigma_xyz=None):
    a_src, o_src = affine(src)
    a_out, o_out = affine(out)
    nx, ny, nz = out["dimensions"]
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    idx = np.stack([i.ravel(), j.ravel(), k.ravel()]).astype(np.float64)
    u = np.linalg.solve(a_src, a_out @ idx + (o_out - o_src)[:, None])  # [x, y, z] source indices
    data = volume_zyx.astype(np.float64)
    if sigma_xyz is not None and any(s > 0 for s in sigma_xyz):
        data = ndimage.gaussian_filter(data, sigma=[sigma_xyz[2], sigma_xyz[1], sigma_xyz[0]], mode="nearest",
                                       truncate=4.0)
    coords = np.stack([u[2], u[1], u[0]])
    return ndimage.map_coordinates(data, coords, order=1, mode="nearest", prefilter=False)


def synthetic(dims, seed):
    rng = np.random.default_rng(seed)
    nx, ny, nz = dims
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    smooth = 120 * np.sin(0.37 * i + 0.05 * j * j) + 40 * np.cos(0.23 * k * j) + 0.8 * i * j - 9 * k
    return (smooth + rng.normal(0, 15, size=smooth.shape)).astype(np.float32)


def resample_case(dims, spacing, target, anti_alias, seed):
    identity = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    src = grid(dims, spacing, [3.5, -2.25, 10.0], identity)
    out_dims = [int(np.floor(n * s / t + 0.5)) for n, s, t in zip(dims, spacing, target)]
    out = grid(out_dims, target, src["origin"], identity)
    vol = synthetic(dims, seed)
    sigma = [max(0.0, (t / s - 1) / 2) for s, t in zip(spacing, target)] if anti_alias else None
    return {"input": {**src, "voxels": vol.ravel().tolist()}, "output": {**out, "voxels": sample(vol, src, out, sigma)
            .tolist()}, "anti_alias": anti_alias, "sigma": sigma or [0, 0, 0]}


def oblique_case(seed):
    src = grid([12, 10, 6], [0.9, 1.1, 2.0], [0.0, 0.0, 0.0], [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    c, s = np.cos(0.4), np.sin(0.4)
    out = grid([10, 8, 6], [0.8, 0.8, 1.5], [2.0, -1.0, 0.5], [[c, s, 0], [-s, c, 0], [0, 0, 1]])
    vol = synthetic([12, 10, 6], seed)
    return {"input": {**src, "voxels": vol.ravel().tolist()},
            "output": {**out, "voxels": sample(vol, src, out).tolist()}, "anti_alias": False, "sigma": [0, 0, 0]}


def ct_like(n, seed):
    rng = np.random.default_rng(seed)
    air = rng.uniform(-1024, -900, n // 4)
    fat = rng.normal(-100, 30, n // 4)
    soft = rng.normal(45, 25, n // 3)
    bone = rng.normal(700, 250, n - 3 * (n // 4) - n // 3 + n // 4)
    values = np.concatenate([air, fat, soft, bone])[:n]
    rng.shuffle(values)
    return values.astype(np.float32)


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "VolumesTests", "Golden",
                                                                  "preprocess_golden.json")
    resampling = {
        "upsample_linear": resample_case([9, 7, 5], [0.9, 1.1, 2.0], [0.5, 0.6, 0.75], False, 1),
        "downsample_antialias": resample_case([24, 20, 12], [0.7, 0.7, 1.25], [1.5, 1.5, 1.5], True, 2),
        "downsample_plain": resample_case([24, 20, 12], [0.7, 0.7, 1.25], [1.5, 1.5, 1.5], False, 2),
        "oblique_linear": oblique_case(3),
    }
    dims = [20, 20, 10]
    src = ct_like(int(np.prod(dims)), 4)
    ref = (ct_like(int(np.prod(dims)), 5) * 1.1 + 30).astype(np.float32)
    v = src.astype(np.float64)
    lo, hi = np.percentile(v, [0.5, 99.5])
    p = np.linspace(0, 1, 101)
    ref_q = np.percentile(ref.astype(np.float64), 100 * p)
    src_q = np.percentile(v, 100 * p)
    normalisation = {
        "dimensions": dims,
        "input": src.tolist(),
        "reference": ref.tolist(),
        "zscore": ((v - v.mean()) / v.std()).tolist(),
        "percentile_bounds": [lo, hi],
        "percentile": np.clip((v - lo) / (hi - lo), 0, 1).tolist(),
        "soft_tissue_unit": ((np.clip(v, -160, 240) + 160) / 400).tolist(),
        "reference_quantiles": ref_q.tolist(),
        "histogram_matched": np.interp(v, src_q, ref_q).tolist(),
    }
    document = {
        "provenance": {
            "script": "scripts/reference/preprocess_golden.py",
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "conventions": "see the script's docstring: [z, y, x] arrays flattened x fastest; voxel-centre "
                           "sampling with map_coordinates(order=1, mode='nearest'); gaussian_filter(mode='nearest', "
                           "truncate=4) with sigma = max(0, (s'/s - 1)/2) when anti-aliasing",
            "tolerance": "abs(swift - reference) <= 1e-5 * max(1, abs(reference))",
        },
        "resampling": resampling,
        "normalisation": normalisation,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(document, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()

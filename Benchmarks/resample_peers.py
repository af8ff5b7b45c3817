#!/usr/bin/env python3
"""Peers for `tessera-bench resample`: SimpleITK Resample (linear) + Normalize, MONAI Spacing (bilinear) +
NormalizeIntensity, on the same synthetic 512x512x256 float32 CT (0.7 x 0.7 x 1.25 mm) resampled to 1.5 mm
isotropic. One JSON line per timed run; volume creation is not timed.

usage: resample_peers.py {sitk,monai} [--threads N] [--repeat N] [--warmup N]
       resample_peers.py verify --input IN.f32 --output OUT.f32
         (checks Tessera's output, resampled without anti-aliasing and z-scored, against SimpleITK's on the same
          input; prints the largest absolute difference and exits 1 above 1e-4)
"""
import argparse
import json
import sys
import time

import numpy as np


def synthetic_ct(nx=512, ny=512, nz=256):
    """The same phantom as tessera-bench's (body, bone ring, lungs, +-20 HU noise), as a [z, y, x] float32 array."""
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    y = (j - ny / 2) / (ny * 0.35)
    x = (i - nx / 2) / (nx * 0.45)
    r = x * x + y * y
    plane = np.full((ny, nx), -1000, np.float32)
    plane[r < 1] = 40
    plane[(r < 1) & (r > 0.85)] = 700
    lung = ((np.abs(x) - 0.45) ** 2 / 0.06 + y * y / 0.4 < 1) & (r < 1) & (r <= 0.85)
    vol = np.repeat(plane[None], nz, axis=0)
    vol[nz // 4 + 1:][:, lung] = -850
    rng = np.random.default_rng(0)
    vol += rng.integers(-20, 21, size=vol.shape).astype(np.float32)
    return vol


def run_sitk(vol, args):
    import SimpleITK as sitk
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    image = sitk.GetImageFromArray(vol)
    image.SetSpacing((0.7, 0.7, 1.25))
    size = [int(round(n * s / 1.5)) for n, s in zip(image.GetSize(), image.GetSpacing())]

    def once():
        out = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), (1.5, 1.5, 1.5),
                            image.GetDirection(), 0.0, sitk.sitkFloat32)
        out = sitk.Normalize(out)
        return list(out.GetSize())
    return once, f"SimpleITK {sitk.Version.VersionString()}"


def run_monai(vol, args):
    import monai
    import torch
    from monai.data import MetaTensor
    from monai.transforms import NormalizeIntensity, Spacing
    torch.set_num_threads(args.threads)
    # MONAI arrays are channel-first [C, x, y, z] with the affine mapping those indices to world mm.
    data = torch.from_numpy(np.ascontiguousarray(vol.transpose(2, 1, 0)))[None]
    image = MetaTensor(data, affine=torch.diag(torch.tensor([0.7, 0.7, 1.25, 1.0], dtype=torch.float64)))
    spacing = Spacing(pixdim=(1.5, 1.5, 1.5), mode="bilinear")
    normalize = NormalizeIntensity()

    def once():
        with torch.no_grad():
            out = normalize(spacing(image))
        return list(out.shape[1:])
    return once, f"MONAI {monai.__version__} (torch {torch.__version__})"


def verify(args):
    import SimpleITK as sitk
    vol = np.fromfile(args.input, dtype=np.float32).reshape(256, 512, 512)
    ours = np.fromfile(args.output, dtype=np.float32)
    image = sitk.GetImageFromArray(vol)
    image.SetSpacing((0.7, 0.7, 1.25))
    size = [int(round(n * s / 1.5)) for n, s in zip(image.GetSize(), image.GetSpacing())]
    out = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), (1.5, 1.5, 1.5),
                        image.GetDirection(), 0.0, sitk.sitkFloat64)
    ref = sitk.GetArrayFromImage(out).ravel()
    ref = (ref - ref.mean()) / ref.std()
    worst = float(np.max(np.abs(ours.astype(np.float64) - ref))) if ours.size == ref.size else float("inf")
    print(json.dumps({"verify": "tessera vs SimpleITK (linear, no anti-aliasing, z-scored)", "voxels": int(ref.size),
                      "max_abs_diff": worst}))
    return 0 if worst <= 1e-4 else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("tool", choices=["sitk", "monai", "verify"])
    p.add_argument("--input")
    p.add_argument("--output")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    args = p.parse_args()
    if args.tool == "verify":
        sys.exit(verify(args))
    vol = synthetic_ct()
    once, version = (run_sitk if args.tool == "sitk" else run_monai)(vol, args)
    for run in range(args.warmup + args.repeat):
        t0 = time.perf_counter()
        shape = once()
        wall = time.perf_counter() - t0
        if run >= args.warmup:
            print(json.dumps({"tool": args.tool, "version": version, "threads": args.threads, "output": shape,
                              "wall_s": round(wall, 4)}, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()

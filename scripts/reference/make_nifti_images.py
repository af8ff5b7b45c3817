"""Writes Tests/Fixtures/NIfTIImages deterministically with nibabel: a NIfTI-only site (`model.nifti_images`), images
and label maps as the Medical Segmentation Decathlon lays them out, and nibabel's own reading of every image as the
golden values for `Volume(niftiImage:)` and `SegmentationDataset.loadNIfTI` (Tests/TrainingTests/
NIfTIImagesTests.swift).

Conventions checked: voxel values are nibabel's `get_fdata()` (stored × scl_slope + scl_inter, in float64; the
Swift reader converts to float32), x fastest (Fortran order); the grid is nibabel's `affine` (sform when
sform_code > 0, else qform), RAS, which Tessera reads as LPS by negating x and y.

Files (all 12 × 10 × 6 voxels):
  imagesTr/case_a.nii.gz   int16, scl_slope 0.5, scl_inter -1024, rotated 15° about z, spacing 0.8 × 0.9 × 2.5 mm,
                           sform and qform (code 1)
  labelsTr/case_a.nii.gz   uint8 labels on that grid: 1 inside a sphere, else 0
  imagesTr/case_b.nii      float32, qform only (sform_code 0), axis-aligned, spacing 0.8 × 0.9 × 2.5 mm
  labelsTr/case_b.nii      uint8 labels on that grid
  imagesTr/case_c.nii.gz   float64, no label map (a case the loader must skip and report)
  invalid/nan.nii.gz       float32 with one NaN voxel (refused)
  invalid/rgb.nii.gz       RGB24 (datatype 128), not an image datatype (refused)
`expected.json`: per image, nibabel's affine (RAS), dtype, slope/intercept as stored, and the scaled values x fastest.

Usage: python3 scripts/reference/make_nifti_images.py [OUTPUT_DIR]   (default Tests/Fixtures/NIfTIImages)
Runs in its own pinned venv scripts/.venv-nibabel (nibabel 5.4.2, numpy 2.4.6).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_venv  # noqa: E402

reference_venv.ensure("nibabel", ["nibabel==5.4.2", "numpy==2.4.6"])

import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (12, 10, 6)
SPACING = np.array([0.8, 0.9, 2.5])


def affine(angle_degrees: float, origin) -> np.ndarray:
    a = np.deg2rad(angle_degrees)
    rotation = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = rotation @ np.diag(SPACING)
    out[:3, 3] = origin
    return out


def grid():
    return np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")


def sphere_labels() -> np.ndarray:
    i, j, k = grid()
    r2 = ((i - 6) * 0.8) ** 2 + ((j - 4) * 0.9) ** 2 + ((k - 3) * 2.5) ** 2
    return (r2 < 3.5**2).astype(np.uint8)


def stored_pattern() -> np.ndarray:
    i, j, k = grid()
    # Whole stored values: -1024 + 0.5·s spans about -1000...+700 HU after scaling.
    return ((i * 37 + j * 101 + k * 263) % 3400 + 50).astype(np.int16) + 500 * sphere_labels().astype(np.int16)


def save(img: nib.Nifti1Image, path: Path) -> None:
    img.header.set_xyzt_units("mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def record(path: Path) -> dict:
    back = nib.load(str(path))
    # nibabel moves scl_slope/scl_inter from the header into the array proxy on load.
    slope, inter = back.dataobj.slope, back.dataobj.inter
    return {
        "affine_ras": back.affine.tolist(),
        "dtype": str(back.get_data_dtype()),
        "shape": list(back.shape),
        "scl_slope": None if slope is None else float(slope),
        "scl_inter": None if inter is None else float(inter),
        "sform_code": int(back.header["sform_code"]),
        "qform_code": int(back.header["qform_code"]),
        "values": back.get_fdata().ravel(order="F").tolist(),
    }


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "Tests/Fixtures/NIfTIImages"
    files: dict = {}
    labels = sphere_labels()

    rotated = affine(15, [20.0, -31.5, 12.25])
    a = nib.Nifti1Image(stored_pattern(), None)
    a.set_sform(rotated, code=1)
    a.set_qform(rotated, code=1)
    a.header.set_slope_inter(0.5, -1024)
    save(a, out / "imagesTr/case_a.nii.gz")
    la = nib.Nifti1Image(labels, None)
    la.set_sform(rotated, code=1)
    la.set_qform(rotated, code=1)
    save(la, out / "labelsTr/case_a.nii.gz")

    straight = affine(0, [-5.0, 7.5, -40.0])
    b_data = (np.sin(np.arange(np.prod(SHAPE)) * 0.37).reshape(SHAPE, order="F") * 300 + 200 * labels).astype(
        np.float32)
    b = nib.Nifti1Image(b_data, None)
    b.set_qform(straight, code=1)
    b.set_sform(straight, code=0)
    save(b, out / "imagesTr/case_b.nii")
    lb = nib.Nifti1Image(labels, None)
    lb.set_qform(straight, code=1)
    lb.set_sform(straight, code=0)
    save(lb, out / "labelsTr/case_b.nii")

    c = nib.Nifti1Image(b_data.astype(np.float64) * 1.25 - 3, None)
    c.set_sform(rotated, code=1)
    c.set_qform(rotated, code=1)
    save(c, out / "imagesTr/case_c.nii.gz")

    bad = b_data.copy()
    bad[3, 2, 1] = np.nan
    n = nib.Nifti1Image(bad, None)
    n.set_sform(straight, code=1)
    save(n, out / "invalid/nan.nii.gz")
    rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    r = nib.Nifti1Image(rgb, None)
    r.set_sform(straight, code=1)
    save(r, out / "invalid/rgb.nii.gz")

    for name in ["imagesTr/case_a.nii.gz", "imagesTr/case_b.nii", "imagesTr/case_c.nii.gz"]:
        files[name] = record(out / name)
    expected = {
        "provenance": {
            "script": "scripts/reference/make_nifti_images.py",
            "nibabel": nib.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command_line": shlex.join(["python3", *sys.argv]),
        },
        "files": files,
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(files)} images and their labels to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

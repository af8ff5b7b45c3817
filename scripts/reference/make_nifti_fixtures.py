"""Writes Tests/Fixtures/NIfTI deterministically with nibabel: NIfTI-1 label maps on the grids of two DICOM fixture
series, as 3D Slicer / ITK-SNAP would save them, for `Volume(niftiLabels:matching:)` (Tests/VolumesTests/
NIfTILabelsTests.swift).

The grid of each series comes from pydicom (dicom_golden.build_series: LPS affine from (0020,0032)/(0020,0037) and the
slice positions, independent of the Swift reader); the NIfTI affine is that LPS affine with rows x and y negated
(RAS), set as both sform and qform (code 1) by nibabel, except where a file says otherwise. Voxel (i, j, k) holds the
label (i + 2j + 3k) mod 5, stored x fastest. `expected.json` records, per file, nibabel's own affine read back
(`nib.load(path).affine`, RAS) and the datatype, so the Swift test checks its RAS → LPS reading against nibabel.

Files (series `explicit-le`: 40 × 32 × 8, rotated 11.46° in-plane; `reversed`: x and z axes reversed):
  labels_<dtype>.nii.gz   uint8, int16, uint16, int32, float32: the same labels
  qform_only.nii.gz       uint8, sform_code 0: the position from the quaternion alone
  reversed.nii.gz         uint8 on the `reversed` series
  flipped_y.nii.gz        the same voxel centres with the row order flipped (j → 31 − j, the y column negated and the
                          origin moved): a reoriented copy, which must be refused (nothing is resampled)
  nonint.nii.gz           float32 with one voxel 1.5
  negative.nii.gz         int16 with one voxel −1
  too_big.nii.gz          int16 with one voxel 300
  no_xform.nii.gz         uint8 with sform_code = qform_code = 0

Usage: python3 scripts/reference/make_nifti_fixtures.py [OUTPUT_DIR]   (default Tests/Fixtures/NIfTI)
"""

from __future__ import annotations

import sys
from pathlib import Path

EXTRA_REQUIREMENTS = ["nibabel==5.4.2"]

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import dicom_golden as dg  # noqa: E402

import json  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def series(case: str) -> dg.SeriesVolume:
    scan = dg.scan_folder(ROOT / "Tests/Fixtures/DICOM" / case)
    (uid, files), = scan.images.items()
    return dg.build_series(uid, files)


def pattern(shape) -> np.ndarray:
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return (i + 2 * j + 3 * k) % 5


def save(out: Path, name: str, data: np.ndarray, affine: np.ndarray, sform=1, qform=1) -> dict:
    img = nib.Nifti1Image(data, None)
    img.set_sform(affine, code=sform)
    img.set_qform(affine, code=qform)
    img.header.set_xyzt_units("mm")
    path = out / name
    # Fixed gzip mtime: nibabel's Opener writes mtime 0, so the bytes are reproducible.
    nib.save(img, str(path))
    back = nib.load(str(path))
    return {
        "affine_ras": back.affine.tolist(),
        "dtype": str(back.get_data_dtype()),
        "sform_code": int(back.header["sform_code"]),
        "qform_code": int(back.header["qform_code"]),
        "shape": list(back.shape),
    }


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "Tests/Fixtures/NIfTI"
    out.mkdir(parents=True, exist_ok=True)
    expected: dict = {"provenance": dg.provenance("scripts/reference/make_nifti_fixtures.py"), "files": {}}
    sv = series("explicit-le")
    ras = LPS_TO_RAS @ sv.affine_lps()
    shape = tuple(sv.dimensions)
    labels = pattern(shape)
    files = expected["files"]
    for dtype in ["uint8", "int16", "uint16", "int32", "float32"]:
        files[f"labels_{dtype}.nii.gz"] = save(out, f"labels_{dtype}.nii.gz", labels.astype(dtype), ras)
    files["qform_only.nii.gz"] = save(out, "qform_only.nii.gz", labels.astype("uint8"), ras, sform=0)
    files["no_xform.nii.gz"] = save(out, "no_xform.nii.gz", labels.astype("uint8"), ras, sform=0, qform=0)
    rev = series("reversed")
    files["reversed.nii.gz"] = save(
        out, "reversed.nii.gz", pattern(tuple(rev.dimensions)).astype("uint8"), LPS_TO_RAS @ rev.affine_lps())
    flipped = ras.copy()
    flipped[:3, 3] = ras[:3, 3] + ras[:3, 1] * (shape[1] - 1)
    flipped[:3, 1] = -ras[:3, 1]
    files["flipped_y.nii.gz"] = save(out, "flipped_y.nii.gz", labels[:, ::-1, :].astype("uint8"), flipped)
    bad = labels.astype("float32")
    bad[3, 2, 1] = 1.5
    files["nonint.nii.gz"] = save(out, "nonint.nii.gz", bad, ras)
    bad = labels.astype("int16")
    bad[4, 5, 6] = -1
    files["negative.nii.gz"] = save(out, "negative.nii.gz", bad, ras)
    bad = labels.astype("int16")
    bad[0, 0, 7] = 300
    files["too_big.nii.gz"] = save(out, "too_big.nii.gz", bad, ras)
    expected["series"] = {
        case: {"affine_lps": s.affine_lps().tolist(), "dimensions": list(s.dimensions)}
        for case, s in [("explicit-le", sv), ("reversed", rev)]
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(files)} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

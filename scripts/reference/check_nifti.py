#!/usr/bin/env python3
"""Check a NIfTI export of a DICOM series (and its SEG labels) against pydicom.

What
    Rebuilds the series (and the SEG label volume) with pydicom using exactly the
    conventions of dicom_golden.py (imported from this folder), loads the NIfTI
    files with nibabel and checks geometry, data type and voxel values. Prints
    one PASS/FAIL (or SKIP) line per check, then `N passed, M failed` (plus
    `, K skipped` when some checks did not apply); exits 1 when a check failed,
    2 on bad input. --json writes the checks and the measured numbers, to be
    committed as evidence.

How to run
    python3 scripts/reference/check_nifti.py --dicom SERIES_FOLDER --image image.nii.gz \
        [--labels labels.nii.gz --seg seg.dcm] [--json out.json] [--series-uid UID]

    Uses the virtual environment scripts/.venv-reference (created on first use,
    see dicom_golden.py) with dicom_golden.py's pinned packages plus
    nibabel==5.4.2. SERIES_FOLDER is read like one case of dicom_golden.py
    (recursively, junk skipped); when it holds several series, the one referenced
    by --seg or given by --series-uid is used.

Conventions
    Expected affine (voxel index (i, j, k) = (x, y, z) -> mm), from the DICOM
    geometry of dicom_golden.py (axes x = row cosine, y = column cosine, z =
    slice direction; spacing sx, sy, sz; origin = IPP of the first sorted slice):
        A_lps = [[x_axis*sx, y_axis*sy, z_axis*sz, origin], [0, 0, 0, 1]]  (columns)
        A_ras = diag(-1, -1, 1, 1) @ A_lps
    The NIfTI data array is indexed [x, y, z], i.e. the pydicom volume[z, y, x]
    transposed.

Checks (tolerances in brackets; the defaults can be changed by options)
    image.shape        == (x, y, z)
    image.dtype        on-disk data type float32
    image.sform_code   > 0 (the sform carries the affine)
    image.affine       nibabel's best affine (the sform) == A_ras [1e-3 mm]
    image.qform        qform_code > 0 and get_qform() == A_ras [1e-3 mm], only
                       when the grid is orthonormal (SKIP for a tilted stack)
    image.data         max |nifti - pydicom| <= 1e-3 (lossless); for lossy
                       transfer syntaxes <= --lossy-tolerance stored units
                       (default 4) times the largest |RescaleSlope|
    labels.shape       == image shape
    labels.affine      == image affine and == A_ras [1e-3 mm]
    labels.dtype       on-disk data type uint8
    labels.values      set of values == {0} U segment numbers present in the
                       pydicom label volume
    labels.data        equal, voxel for voxel, to the pydicom label volume
    label.N.median_hu  median image value under label N in [-50, 200]
    label.N.centroid   centroid of label N (RAS mm, from the labels' affine)
                       inside the image's bounding box (corners of the voxel
                       grid, +-0.5 voxel, mapped by the image affine)
    label.N.hu_fraction  fraction of label-N voxels with image value in
                       [-100, 250] >= 0.95
"""

from __future__ import annotations

import sys
from pathlib import Path

# Read by dicom_golden on import: it creates/enters the venv (re-executing this
# script there) with its own pinned packages plus these.
EXTRA_REQUIREMENTS = ["nibabel==5.4.2"]

sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, str(Path(__file__).resolve().parent))
import dicom_golden as dg  # noqa: E402

import argparse  # noqa: E402
import json  # noqa: E402
from typing import NoReturn  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pydicom  # noqa: E402

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def bad_input(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


class Checks:
    def __init__(self) -> None:
        self.results: list[dict] = []

    def add(self, name: str, passed: bool | None, message: str, **measured) -> bool:
        """passed=None means not applicable (SKIP)."""
        status = "SKIP" if passed is None else ("PASS" if passed else "FAIL")
        print(f"{status} {name}: {message}")
        self.results.append({"name": name, "status": status, "message": message,
                             "measured": _jsonable(measured)})
        return bool(passed)

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.results)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def bounding_box(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[i, j, k, 1.0]
                        for i in (-0.5, shape[0] - 0.5)
                        for j in (-0.5, shape[1] - 0.5)
                        for k in (-0.5, shape[2] - 0.5)])
    mm = (affine @ corners.T).T[:, :3]
    return mm.min(axis=0), mm.max(axis=0)


def load_series(folder: Path, series_uid: str | None, seg_ds: pydicom.Dataset | None) -> dg.SeriesVolume:
    scan = dg.scan_folder(folder)
    if not scan.images:
        bad_input(f"no image series under {folder}")
    if series_uid is None and seg_ds is not None:
        refs = [str(i.SeriesInstanceUID) for i in seg_ds.get("ReferencedSeriesSequence", [])
                if str(i.get("SeriesInstanceUID", "")) in scan.images]
        series_uid = refs[0] if len(refs) == 1 else None
    if series_uid is None:
        if len(scan.images) != 1:
            bad_input(f"{folder} holds {len(scan.images)} series; pick one with --series-uid "
                             f"({', '.join(sorted(scan.images))})")
        series_uid = next(iter(scan.images))
    if series_uid not in scan.images:
        bad_input(f"series {series_uid} not found under {folder}")
    try:
        return dg.build_series(series_uid, scan.images[series_uid])
    except dg.ReferenceError_ as exc:
        bad_input(f"cannot build series {series_uid}: {exc}")


def check_image(checks: Checks, img, sv: dg.SeriesVolume, a_ras: np.ndarray, args) -> np.ndarray | None:
    expected_shape = tuple(sv.dimensions)
    shape_ok = checks.add("image.shape", img.shape == expected_shape,
                          f"{img.shape} (expected {expected_shape})",
                          shape=list(img.shape), expected=list(expected_shape))
    dtype = img.get_data_dtype()
    checks.add("image.dtype", dtype == np.float32, f"{dtype} (expected float32)", dtype=str(dtype))

    header = img.header
    sform_code = int(header["sform_code"])
    qform_code = int(header["qform_code"])
    checks.add("image.sform_code", sform_code > 0, f"sform_code={sform_code} qform_code={qform_code}",
               sform_code=sform_code, qform_code=qform_code)
    diff = max_abs(img.affine, a_ras)
    checks.add("image.affine", diff <= args.affine_tolerance,
               f"max |affine - expected| = {diff:.3g} mm (tolerance {args.affine_tolerance})",
               max_abs_diff=diff, affine=img.affine, expected=a_ras)

    axes = sv.axes  # rows = x, y, z axes
    orthonormal = max_abs(axes @ axes.T, np.eye(3)) <= 1e-4
    if orthonormal:
        qform = img.get_qform()
        qdiff = max_abs(qform, a_ras)
        checks.add("image.qform", qform_code > 0 and qdiff <= args.affine_tolerance,
                   f"qform_code={qform_code}, max |qform - expected| = {qdiff:.3g} mm",
                   max_abs_diff=qdiff, qform=qform, qform_code=qform_code)
    else:
        checks.add("image.qform", None, "grid not orthonormal (tilted stack): a qform cannot hold it",
                   qform_code=qform_code)

    data = np.asarray(img.dataobj)
    expected = sv.volume.transpose(2, 1, 0)
    if not shape_ok or data.shape != expected.shape:
        checks.add("image.data", False, "not compared: shape differs")
        return data if data.ndim == 3 else None
    step = max(f.slope for f in sv.frames)
    tolerance = args.lossy_tolerance * step if sv.lossy else args.value_tolerance
    absdiff = np.abs(data.astype(np.float64) - expected.astype(np.float64))
    diff = float(absdiff.max())
    checks.add("image.data", diff <= tolerance,
               f"max |nifti - pydicom| = {diff:.3g}, mean {absdiff.mean():.3g} "
               f"({'lossy' if sv.lossy else 'lossless'}, tolerance {tolerance:g})",
               max_abs_diff=diff, mean_abs_diff=float(absdiff.mean()), tolerance=tolerance, lossy=sv.lossy,
               transfer_syntaxes=sv.transfer_syntaxes)
    return data


def check_labels(checks: Checks, lab_img, img, image_data, seg: dg.SegLabels, a_ras: np.ndarray, args) -> None:
    checks.add("labels.shape", lab_img.shape == img.shape, f"{lab_img.shape} (image {img.shape})",
               shape=list(lab_img.shape))
    diff_image = max_abs(lab_img.affine, img.affine)
    diff_expected = max_abs(lab_img.affine, a_ras)
    checks.add("labels.affine", max(diff_image, diff_expected) <= args.affine_tolerance,
               f"max |labels - image| = {diff_image:.3g} mm, max |labels - expected| = {diff_expected:.3g} mm",
               max_abs_diff_image=diff_image, max_abs_diff_expected=diff_expected, affine=lab_img.affine)
    dtype = lab_img.get_data_dtype()
    checks.add("labels.dtype", dtype == np.uint8, f"{dtype} (expected uint8)", dtype=str(dtype))

    labels = np.asarray(lab_img.dataobj)
    expected = seg.labels.transpose(2, 1, 0)
    present = {int(v) for v in np.unique(labels)}
    wanted = {0} | {n for n in seg.segments if np.any(seg.labels == n)}
    checks.add("labels.values", present == wanted, f"{sorted(present)} (expected {sorted(wanted)})",
               values=sorted(present), expected=sorted(wanted))
    if labels.shape == expected.shape:
        mismatched = int(np.count_nonzero(labels != expected))
        checks.add("labels.data", mismatched == 0, f"{mismatched} voxels differ from the pydicom label volume",
                   mismatched_voxels=mismatched,
                   voxels_per_label={n: int(np.count_nonzero(labels == n)) for n in sorted(present - {0})})
    else:
        checks.add("labels.data", False, f"not compared: shape {labels.shape} vs {expected.shape}")

    lo_box, hi_box = bounding_box(img.affine, img.shape)
    for number in sorted(present - {0}):
        name = f"label.{number}"
        title = seg.segments.get(number, "?")
        mask = labels == number
        if image_data is None or image_data.shape != labels.shape:
            checks.add(f"{name}.median_hu", False, "not measured: image and labels differ in shape")
            continue
        values = image_data[mask].astype(np.float64)
        median = float(np.median(values))
        lo, hi = args.median_range
        checks.add(f"{name}.median_hu", lo <= median <= hi,
                   f"{title}: median {median:.1f} over {values.size} voxels (expected in [{lo:g}, {hi:g}])",
                   label=title, median=median, voxels=int(values.size))
        ijk = np.argwhere(mask).mean(axis=0)
        centroid = (lab_img.affine @ np.append(ijk, 1.0))[:3]
        inside = bool(np.all(centroid >= lo_box) and np.all(centroid <= hi_box))
        checks.add(f"{name}.centroid", inside,
                   f"{title}: centroid RAS {np.round(centroid, 2).tolist()} mm, image box "
                   f"{np.round(lo_box, 2).tolist()}..{np.round(hi_box, 2).tolist()}",
                   centroid_ras=centroid, centroid_voxel=ijk, box_min=lo_box, box_max=hi_box)
        lo, hi = args.hu_range
        fraction = float(np.mean((values >= lo) & (values <= hi)))
        checks.add(f"{name}.hu_fraction", fraction >= args.hu_fraction,
                   f"{title}: {100 * fraction:.2f}% of voxels in [{lo:g}, {hi:g}] "
                   f"(expected >= {100 * args.hu_fraction:g}%)",
                   fraction=fraction, minimum=args.hu_fraction)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dicom", type=Path, required=True, help="folder holding the DICOM series")
    parser.add_argument("--image", type=Path, required=True, help="NIfTI image to check")
    parser.add_argument("--labels", type=Path, help="NIfTI label map to check (needs --seg)")
    parser.add_argument("--seg", type=Path, help="DICOM SEG the label map was made from (needs --labels)")
    parser.add_argument("--json", type=Path, help="write checks and measurements here")
    parser.add_argument("--series-uid", help="series to use when --dicom holds several")
    parser.add_argument("--affine-tolerance", type=float, default=1e-3, metavar="MM")
    parser.add_argument("--value-tolerance", type=float, default=1e-3, help="lossless data (default 1e-3)")
    parser.add_argument("--lossy-tolerance", type=float, default=4.0, metavar="STORED_UNITS",
                        help="lossy data, in stored-value units times |RescaleSlope| (default 4)")
    parser.add_argument("--median-range", type=float, nargs=2, default=(-50.0, 200.0), metavar=("LO", "HI"))
    parser.add_argument("--hu-range", type=float, nargs=2, default=(-100.0, 250.0), metavar=("LO", "HI"))
    parser.add_argument("--hu-fraction", type=float, default=0.95)
    args = parser.parse_args()
    if (args.labels is None) != (args.seg is None):
        parser.error("--labels and --seg go together")
    for path in (args.dicom, args.image, args.labels, args.seg):
        if path is not None and not path.exists():
            parser.error(f"{path} does not exist")

    seg_ds = pydicom.dcmread(args.seg) if args.seg else None
    sv = load_series(args.dicom, args.series_uid, seg_ds)
    a_ras = LPS_TO_RAS @ sv.affine_lps()
    print(f"series {sv.uid}: dimensions {sv.dimensions}, spacing {[round(s, 6) for s in sv.spacing]}, "
          f"transfer syntaxes {sv.transfer_syntaxes}{' (lossy)' if sv.lossy else ''}")

    checks = Checks()
    img = nib.load(str(args.image))
    image_data = check_image(checks, img, sv, a_ras, args)
    seg = None
    if seg_ds is not None:
        try:
            seg = dg.build_seg(seg_ds, {sv.uid: sv})
        except dg.ReferenceError_ as exc:
            bad_input(f"cannot build the SEG label volume: {exc}")
        check_labels(checks, nib.load(str(args.labels)), img, image_data, seg, a_ras, args)

    passed, failed, skipped = checks.count("PASS"), checks.count("FAIL"), checks.count("SKIP")
    summary = f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")
    if args.json:
        document = {
            "provenance": dg.provenance("scripts/reference/check_nifti.py"),
            "inputs": {"dicom": str(args.dicom), "image": str(args.image),
                       "labels": str(args.labels) if args.labels else None,
                       "seg": str(args.seg) if args.seg else None},
            "expected": _jsonable({
                "series": sv.uid, "dimensions": sv.dimensions, "spacing": sv.spacing, "origin_lps": sv.origin,
                "direction": sv.axes.reshape(-1), "affine_ras": a_ras, "lossy": sv.lossy,
                "transfer_syntaxes": sv.transfer_syntaxes,
                "segments": {str(k): v for k, v in seg.segments.items()} if seg else None,
            }),
            "checks": checks.results,
            "summary": {"passed": passed, "failed": failed, "skipped": skipped},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

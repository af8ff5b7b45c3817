#!/usr/bin/env python3
"""Golden rasterisations of Tessera's RTSTRUCT fixtures by two independent references.

What
    Reads Tests/Fixtures/RTSTRUCT/organs.dcm and the CT in Tests/Fixtures/RTSTRUCT/ct/ (made by
    make_rtstruct_fixtures.py) and rasterises every ROI with CLOSED_PLANAR contours twice:

    skimage   pydicom + numpy + skimage.draw.polygon: each contour's points are mapped to voxel indices with the
              inverse of the series' affine (origin = the first slice's (0020,0032) after sorting along the normal,
              columns of (0020,0037) x (0028,0030), slice step from the positions), the slice is round(k), and each
              contour is filled at voxel centres (skimage's crossing test); the contours of an ROI on a slice are
              combined by XOR, which is the even-odd rule over all their edges. This is the rule Tessera documents
              (ContourRasterizer), so Tessera must agree voxel for voxel.
    rt_utils  rt-utils 1.2.7 RTStructBuilder.create_from(ct, rtstruct).get_roi_mask_by_name(name): its own reader,
              slice matching by (3006,0016) Contour Image Sequence, vertices rounded to whole pixels and filled with
              OpenCV's cv.fillPoly (boundary pixels included). An independent implementation with a different
              edge convention: agreement is measured (Dice, differing voxels, how far they lie from an edge), not
              required to be exact. Its mask is indexed [row, column, slice] (rt-utils allocates (Columns, Rows)
              slices but OpenCV fills them as [y, x]; the fixture's slices are square, 48 x 48). rt-utils fills
              every contour whatever its (3006,0042) type, so it reads a copy without the POINT and OPEN_* contours.

    For each ROI the JSON holds both masks as runs [first, length] of flat indices k*rows*columns + j*columns + i
    (x fastest, slices sorted ascending along the normal), the voxel counts, Dice(skimage, rt_utils), the number of
    voxels where they differ, and the largest in-plane distance (in voxels) from a differing voxel's centre to the
    nearest contour edge on its slice.

How to run
    python3 scripts/reference/rtstruct_golden.py [FIXTURE_ROOT] [OUTPUT_JSON]
    defaults: Tests/Fixtures/RTSTRUCT, Tests/VolumesTests/Golden/rtstruct_golden.json

    Creates and reuses the git-ignored venv scripts/.venv-rtstruct (the same pins as make_rtstruct_fixtures.py:
    pydicom==3.0.2, numpy==2.4.6, rt-utils==1.2.7 (which brings opencv-python), scikit-image==0.26.0).
"""
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_venv  # noqa: E402

PINS = ["pydicom==3.0.2", "numpy==2.4.6", "rt-utils==1.2.7", "scikit-image==0.26.0"]
reference_venv.ensure("rtstruct", PINS)

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import skimage  # noqa: E402
from importlib.metadata import version  # noqa: E402
from rt_utils import RTStructBuilder  # noqa: E402
from skimage.draw import polygon as fill_polygon  # noqa: E402

ROOT = reference_venv.ROOT


def series_geometry(folder):
    slices = [pydicom.dcmread(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]
    iop = np.array([float(v) for v in slices[0].ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    slices.sort(key=lambda s: float(np.dot([float(v) for v in s.ImagePositionPatient], normal)))
    positions = np.array([[float(v) for v in s.ImagePositionPatient] for s in slices])
    step = (positions[-1] - positions[0]) / (len(slices) - 1)
    spacing_row, spacing_col = (float(v) for v in slices[0].PixelSpacing)
    # Voxel (i, j, k) centre = origin + i * col_spacing * row_cos + j * row_spacing * col_cos + k * step.
    matrix = np.column_stack([row * spacing_col, col * spacing_row, step])
    return {
        "origin": positions[0],
        "inverse": np.linalg.inv(matrix),
        "rows": int(slices[0].Rows),
        "columns": int(slices[0].Columns),
        "slices": len(slices),
    }


def runs(flat_mask):
    """[first, length] runs of the True entries of a flat boolean array."""
    out, start = [], None
    for index, value in enumerate(flat_mask):
        if value and start is None:
            start = index
        elif not value and start is not None:
            out.append([start, index - start])
            start = None
    if start is not None:
        out.append([start, len(flat_mask) - start])
    return out


def point_segment_distance(p, a, b):
    ab = b - a
    t = 0.0 if not ab.any() else max(0.0, min(1.0, float(np.dot(p - a, ab) / np.dot(ab, ab))))
    return float(np.linalg.norm(p - (a + t * ab)))


def main():
    fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "Fixtures", "RTSTRUCT")
    output = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        ROOT, "Tests", "VolumesTests", "Golden", "rtstruct_golden.json")
    ct = os.path.join(fixtures, "ct")
    g = series_geometry(ct)
    rows, columns, nslices = g["rows"], g["columns"], g["slices"]
    rt_path = os.path.join(fixtures, "organs.dcm")
    ds = pydicom.dcmread(rt_path)
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    # rt-utils fills every contour whatever its (3006,0042) type (the Kidney's OPEN_PLANAR one too): it is given a
    # copy without the POINT/OPEN_* contours, so both references fill the same closed contours.
    closed_only = pydicom.dcmread(rt_path)
    for rc in closed_only.ROIContourSequence:
        if "ContourSequence" in rc:
            rc.ContourSequence = [c for c in rc.ContourSequence if c.ContourGeometricType == "CLOSED_PLANAR"]
    with tempfile.TemporaryDirectory() as scratch:
        closed_path = os.path.join(scratch, "organs-closed.dcm")
        closed_only.save_as(closed_path)
        builder = RTStructBuilder.create_from(dicom_series_path=ct, rt_struct_path=closed_path)
        reference_masks = {name: builder.get_roi_mask_by_name(name) for name in names.values()
                           if name != "Isocenter"}
    rois = []
    for rc in ds.ROIContourSequence:
        number = int(rc.ReferencedROINumber)
        closed = [c for c in getattr(rc, "ContourSequence", []) if c.ContourGeometricType == "CLOSED_PLANAR"]
        if not closed:
            continue
        mask = np.zeros((nslices, rows, columns), dtype=bool)
        edges = {}  # slice -> list of (a, b) in (i, j)
        for contour in closed:
            points = np.array([float(v) for v in contour.ContourData]).reshape(-1, 3)
            ijk = (g["inverse"] @ (points - g["origin"]).T).T
            k = int(round(float(np.mean(ijk[:, 2]))))
            assert np.all(np.abs(ijk[:, 2] - k) <= 0.1), f"{names[number]}: contour off its slice"
            rr, cc = fill_polygon(ijk[:, 1], ijk[:, 0], shape=(rows, columns))
            one = np.zeros((rows, columns), dtype=bool)
            one[rr, cc] = True
            mask[k] ^= one
            poly = ijk[:, :2]
            edges.setdefault(k, []).extend((poly[m - 1], poly[m]) for m in range(len(poly)))
        reference = reference_masks[names[number]]  # [row, column, slice]
        rt_mask = np.transpose(reference, (2, 0, 1)).astype(bool)
        differ = np.argwhere(mask != rt_mask)
        farthest = 0.0
        for k, j, i in differ:
            centre = np.array([float(i), float(j)])
            d = min(point_segment_distance(centre, a, b) for a, b in edges.get(int(k), [])) if k in edges else math.inf
            farthest = max(farthest, d)
        a, b = int(mask.sum()), int(rt_mask.sum())
        rois.append({
            "number": number,
            "name": names[number],
            "contours": len(closed),
            "skimage": {"voxels": a, "runs": runs(mask.ravel())},
            "rt_utils": {"voxels": b, "runs": runs(rt_mask.ravel())},
            "dice_skimage_rt_utils": round(2 * int((mask & rt_mask).sum()) / (a + b), 6),
            "differing_voxels": int(len(differ)),
            "max_edge_distance_of_differences_voxels": round(farthest, 4),
        })
    result = {
        "provenance": {
            "script": "scripts/reference/rtstruct_golden.py",
            "fixtures": "Tests/Fixtures/RTSTRUCT (scripts/reference/make_rtstruct_fixtures.py)",
            "packages": {p: version(p) for p in ("pydicom", "numpy", "rt-utils", "scikit-image", "opencv-python")},
            "skimage": skimage.__version__,
        },
        "grid": {"columns": columns, "rows": rows, "slices": nslices},
        "structure_set": "organs.dcm",
        "rois": rois,
    }
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    for r in rois:
        print(f"{r['name']}: skimage {r['skimage']['voxels']} voxels, rt-utils {r['rt_utils']['voxels']}, "
              f"Dice {r['dice_skimage_rt_utils']}, {r['differing_voxels']} differ, farthest "
              f"{r['max_edge_distance_of_differences_voxels']} voxels from an edge")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Independent readers on the RT Structure Sets Tessera writes: pydicom checks, skimage and rt-utils fills.

What
    For each structure set written by Tessera (`Volume.writeStructureSet`, Sources/Volumes/IO/):
      Tests/Fixtures/RTSTRUCT/written-by-tessera.dcm   on Tests/Fixtures/RTSTRUCT/ct (holes, an island in a hole,
                                                       two components a slice, a checkerboard of diagonal voxels;
                                                       written by StructureSetWritingTests.writeFixture)
      sample-data/research-center/sub-00N/rtstruct/structures.dcm  on sub-00N/ct (tessera sample-data)
    it checks with pydicom, against the CT read with pydicom:
      sop_class, modality              RT Structure Set Storage, RTSTRUCT
      patient_and_study                (0010,0020) and (0020,000D) equal to the CT's
      frame_of_reference               (3006,0010) item's (0020,0052) = the CT's; every ROI's (3006,0024) too
      referenced_series                (3006,0014) item's (0020,000E) = the CT's series
      contour_image_sequence           (3006,0016) of the series = every CT image (SOP Class and Instance UIDs)
      rois_referenced                  every (3006,0039) and (3006,0080) item names a defined ROI Number
      closed_planar_and_counts         every contour CLOSED_PLANAR, (3006,0046) x 3 = values of (3006,0050)
      contour_on_its_image             every point of a contour lies on the plane of the CT image its (3006,0016)
                                       names (|k - k_image| <= 1e-3 slice)
    and fills every ROI twice, as scripts/reference/rtstruct_golden.py does (its functions are reused):
      skimage   skimage.draw.polygon per contour at voxel centres, XOR per slice (the even-odd rule). The Swift
                test (StructureSetWritingTests.independentReaders) requires Tessera's reader to agree voxel for voxel.
      rt_utils  rt-utils 1.2.7 (vertices rounded to pixels, OpenCV fillPoly with boundary pixels): Dice, differing
                voxels and how far they lie from a contour edge, measured, not required to be exact.

How to run
    python3 scripts/reference/rtstruct_written_golden.py [OUTPUT_JSON]
    default Tests/VolumesTests/Golden/rtstruct_written_golden.json; uses the venv scripts/.venv-rtstruct of
    rtstruct_golden.py (same pins). Prints one line per ROI.
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_venv  # noqa: E402
from rtstruct_golden import PINS  # noqa: E402  (the venv is the same)

reference_venv.ensure("rtstruct", PINS)

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from importlib.metadata import version  # noqa: E402
from rt_utils import RTStructBuilder  # noqa: E402
from skimage.draw import polygon as fill_polygon  # noqa: E402

import rtstruct_golden as rg  # noqa: E402

ROOT = reference_venv.ROOT
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


def subjects():
    out = [("Tests/Fixtures/RTSTRUCT/written-by-tessera.dcm", "Tests/Fixtures/RTSTRUCT/ct")]
    for n in range(1, 5):
        study = f"sample-data/research-center/sub-{n:03d}"
        out.append((study + "/rtstruct/structures.dcm", study + "/ct"))
    return out


def check_file(rt_rel, ct_rel):
    rt_path, ct = os.path.join(ROOT, rt_rel), os.path.join(ROOT, ct_rel)
    ds = pydicom.dcmread(rt_path)
    images = [pydicom.dcmread(os.path.join(ct, f)) for f in sorted(os.listdir(ct))]
    g = rg.series_geometry(ct)
    rows, columns, nslices = g["rows"], g["columns"], g["slices"]
    first = images[0]
    frame_item = ds.ReferencedFrameOfReferenceSequence[0]
    series_item = frame_item.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    numbers = {int(r.ROINumber) for r in ds.StructureSetROISequence}
    by_sop = {str(i.SOPInstanceUID): i for i in images}

    def slice_of(image):
        p = np.array([float(v) for v in image.ImagePositionPatient])
        return float((g["inverse"] @ (p - g["origin"]))[2])

    on_plane = True
    closed_and_counts = True
    for rc in ds.ROIContourSequence:
        for c in rc.ContourSequence:
            closed_and_counts &= c.ContourGeometricType == "CLOSED_PLANAR" and 3 * int(c.NumberOfContourPoints) == len(
                c.ContourData)
            image = by_sop.get(str(c.ContourImageSequence[0].ReferencedSOPInstanceUID))
            points = np.array([float(v) for v in c.ContourData]).reshape(-1, 3)
            ks = (g["inverse"] @ (points - g["origin"]).T).T[:, 2]
            on_plane &= image is not None and bool(np.all(np.abs(ks - slice_of(image)) <= 1e-3))
    checks = {
        "sop_class": ds.SOPClassUID == RTSTRUCT_STORAGE,
        "modality": ds.Modality == "RTSTRUCT",
        "patient_and_study": ds.PatientID == first.PatientID and ds.StudyInstanceUID == first.StudyInstanceUID,
        "frame_of_reference": frame_item.FrameOfReferenceUID == first.FrameOfReferenceUID and all(
            r.ReferencedFrameOfReferenceUID == first.FrameOfReferenceUID for r in ds.StructureSetROISequence),
        "referenced_series": series_item.SeriesInstanceUID == first.SeriesInstanceUID,
        "contour_image_sequence": sorted((str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID))
                                         for i in series_item.ContourImageSequence)
        == sorted((str(i.SOPClassUID), str(i.SOPInstanceUID)) for i in images),
        "rois_referenced": all(int(rc.ReferencedROINumber) in numbers for rc in ds.ROIContourSequence) and all(
            int(o.ReferencedROINumber) in numbers for o in ds.RTROIObservationsSequence),
        "closed_planar_and_counts": bool(closed_and_counts),
        "contour_on_its_image": bool(on_plane),
    }
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    builder = RTStructBuilder.create_from(dicom_series_path=ct, rt_struct_path=rt_path)
    rois = []
    for rc in ds.ROIContourSequence:
        number = int(rc.ReferencedROINumber)
        mask = np.zeros((nslices, rows, columns), dtype=bool)
        edges = {}
        for contour in rc.ContourSequence:
            points = np.array([float(v) for v in contour.ContourData]).reshape(-1, 3)
            ijk = (g["inverse"] @ (points - g["origin"]).T).T
            k = int(round(float(np.mean(ijk[:, 2]))))
            rr, cc = fill_polygon(ijk[:, 1], ijk[:, 0], shape=(rows, columns))
            one = np.zeros((rows, columns), dtype=bool)
            one[rr, cc] = True
            mask[k] ^= one
            poly = ijk[:, :2]
            edges.setdefault(k, []).extend((poly[m - 1], poly[m]) for m in range(len(poly)))
        rt_mask = np.transpose(builder.get_roi_mask_by_name(names[number]), (2, 0, 1)).astype(bool)
        differ = np.argwhere(mask != rt_mask)
        farthest = 0.0
        for k, j, i in differ:
            centre = np.array([float(i), float(j)])
            d = min(rg.point_segment_distance(centre, a, b) for a, b in edges[int(k)]) if int(k) in edges else math.inf
            farthest = max(farthest, d)
        a, b = int(mask.sum()), int(rt_mask.sum())
        rois.append({
            "number": number,
            "name": names[number],
            "contours": len(rc.ContourSequence),
            "skimage": {"voxels": a, "runs": rg.runs(mask.ravel())},
            "rt_utils": {"voxels": b},
            "dice_skimage_rt_utils": round(2 * int((mask & rt_mask).sum()) / (a + b), 6),
            "differing_voxels": int(len(differ)),
            "max_edge_distance_of_differences_voxels": round(farthest, 4),
        })
    return {"rtstruct": rt_rel, "ct": ct_rel, "grid": {"columns": columns, "rows": rows, "slices": nslices},
            "checks": checks, "rois": rois}


def main():
    output = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "Tests", "VolumesTests", "Golden", "rtstruct_written_golden.json")
    files = [check_file(rt, ct) for rt, ct in subjects()]
    result = {
        "provenance": {
            "script": "scripts/reference/rtstruct_written_golden.py",
            "packages": {p: version(p) for p in ("pydicom", "numpy", "rt-utils", "scikit-image", "opencv-python")},
        },
        "files": files,
    }
    with open(output, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    for file in files:
        failed = [k for k, v in file["checks"].items() if not v]
        print(f"{file['rtstruct']}: {len(file['checks']) - len(failed)} of {len(file['checks'])} pydicom checks pass"
              + (f" (failed: {', '.join(failed)})" if failed else ""))
        for r in file["rois"]:
            print(f"  {r['name']}: {r['contours']} contours, skimage {r['skimage']['voxels']} voxels, rt-utils "
                  f"{r['rt_utils']['voxels']}, Dice {r['dice_skimage_rt_utils']}, {r['differing_voxels']} differ, "
                  f"farthest {r['max_edge_distance_of_differences_voxels']} voxels from an edge")


if __name__ == "__main__":
    main()

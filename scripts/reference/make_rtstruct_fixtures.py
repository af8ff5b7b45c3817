#!/usr/bin/env python3
"""Deterministic RTSTRUCT fixtures for Tessera's RT Structure Set tests, written with pydicom.

What
    Tests/Fixtures/RTSTRUCT/ct/           a small CT series (48 x 48 pixels, 0.9 x 0.9 mm, 12 axial slices 2.5 mm
                                           apart, origin (-21.35, -19.6, 100.0) mm, explicit VR little endian)
    Tests/Fixtures/RTSTRUCT/<case>.dcm     RT Structure Sets drawn on it, one per test case:
      organs              valid: "Liver" (one contour per slice, a hole on three slices: a second contour inside the
                          first, even-odd rule), "spleen_1" (two disjoint contours per slice), "Kidney" (plus an
                          OPEN_PLANAR contour that must be skipped with a warning), "Isocenter" (one POINT contour);
                          some contours lie up to 0.05 mm off their slice plane (within the 0.25 mm tolerance)
      oblique             "Tilted": a contour whose plane is tilted 20 degrees from the slice planes
      off-plane           "Liver": a contour 1.0 mm off its slice plane (between slices)
      missing-reference   "Liver": references a series and a frame of reference that are not in the folder, and no
                          images
      empty-roi           "Liver" has an (3006,0039) item without contours; "Spleen" is valid
      count-mismatch      "Liver": (3006,0046) Number of Contour Points says 7, (3006,0050) holds 6 points

How to run
    python3 scripts/reference/make_rtstruct_fixtures.py [OUTPUT_ROOT]      (default Tests/Fixtures/RTSTRUCT)

    Creates and reuses the git-ignored venv scripts/.venv-rtstruct (pinned packages below). Every UID, coordinate
    and pixel comes from fixed seeds, so a rerun writes the same bytes (no dates or times from the clock).
    Then run scripts/reference/rtstruct_golden.py to refresh the golden rasterisations.

Pinned packages
    pydicom==3.0.2, numpy==2.4.6 (and rt-utils==1.2.7, scikit-image==0.26.0 for the golden script, same venv).
"""
import hashlib
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_venv  # noqa: E402

PINS = ["pydicom==3.0.2", "numpy==2.4.6", "rt-utils==1.2.7", "scikit-image==0.26.0"]
reference_venv.ensure("rtstruct", PINS)

import numpy as np  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian  # noqa: E402

ROOT = reference_venv.ROOT
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
ROWS = COLUMNS = 48
PIXEL_SPACING = 0.9
SLICE_SPACING = 2.5
SLICES = 12
ORIGIN = (-21.35, -19.6, 100.0)


def uid(*parts):
    """A UID derived from fixed text: 2.25.<the first 128 bits of SHA-256 as an integer> (PS3.5 B.2)."""
    digest = hashlib.sha256("/".join(["tessera-rtstruct-fixture", *map(str, parts)]).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


STUDY = uid("study")
SERIES = uid("ct-series")
FRAME = uid("frame-of-reference")


def ds_text(v):
    """A DS value of at most 16 characters."""
    text = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def common(ds, modality, series_uid, sop_class, sop_uid):
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = "Tessera fixtures"
    ds.ReferringPhysicianName = ""
    ds.PatientName = "RTSTRUCT^Fixture"
    ds.PatientID = "RTSTRUCT-001"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"


def save(ds, path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = uid("implementation")
    meta.ImplementationVersionName = "TESSERA_FIX"
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def slice_z(k):
    return ORIGIN[2] + k * SLICE_SPACING


def write_ct(folder):
    """The CT: HU -1000 outside a water disc (0 HU) of radius 18 mm; returns the slices' SOP Instance UIDs."""
    uids = []
    yy, xx = np.mgrid[0:ROWS, 0:COLUMNS]
    x = ORIGIN[0] + xx * PIXEL_SPACING
    y = ORIGIN[1] + yy * PIXEL_SPACING
    pixels = np.where(x * x + y * y < 18.0**2, 1024, 24).astype(np.int16)
    for k in range(SLICES):
        sop = uid("ct", k)
        uids.append(sop)
        ds = Dataset()
        common(ds, "CT", SERIES, CT_IMAGE_STORAGE, sop)
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = "RTSTRUCT fixture CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = FRAME
        ds.PositionReferenceIndicator = ""
        ds.PatientPosition = "HFS"
        ds.Laterality = ""
        ds.AcquisitionNumber = 1
        ds.ImagePositionPatient = [ds_text(ORIGIN[0]), ds_text(ORIGIN[1]), ds_text(slice_z(k))]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SliceThickness = ds_text(SLICE_SPACING)
        ds.PixelSpacing = [ds_text(PIXEL_SPACING), ds_text(PIXEL_SPACING)]
        ds.KVP = "120"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ROWS
        ds.Columns = COLUMNS
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.PixelData = pixels.tobytes()
        save(ds, os.path.join(folder, f"ct-{k + 1:02d}.dcm"))
    return uids


def polygon(rng, cx, cy, radius, vertices, z, z_jitter=0.0):
    """An irregular star-shaped polygon: angles 2*pi*m/n plus jitter, radius times 1 +- 15 %."""
    points = []
    for m in range(vertices):
        a = 2 * math.pi * (m + rng.uniform(-0.3, 0.3)) / vertices
        r = radius * (1 + rng.uniform(-0.15, 0.15))
        dz = rng.uniform(-z_jitter, z_jitter) if z_jitter else 0.0
        points.append((cx + r * math.cos(a), cy + r * math.sin(a), z + dz))
    return points


class Builder:
    """One RT Structure Set: ROIs with their contours, written as the RT Structure Set IOD (PS3.3 A.19)."""

    def __init__(self, name, ct_uids, series_uid=SERIES, frame_uid=FRAME, contour_images=True):
        self.name = name
        self.ct_uids = ct_uids
        self.series_uid = series_uid
        self.frame_uid = frame_uid
        self.contour_images = contour_images
        self.rois = []  # (number, name, [(type, points, declared count or None, slice index or None)], has_contours)

    def roi(self, number, name, contours, has_contours=True):
        self.rois.append((number, name, contours, has_contours))

    def write(self, path):
        ds = Dataset()
        common(ds, "RTSTRUCT", uid("rtstruct-series", self.name), RT_STRUCTURE_SET_STORAGE, uid("rtstruct", self.name))
        ds.SeriesNumber = 100
        ds.InstanceNumber = 1
        ds.SeriesDescription = f"RTSTRUCT fixture {self.name}"
        ds.OperatorsName = ""
        ds.FrameOfReferenceUID = self.frame_uid
        ds.PositionReferenceIndicator = ""
        ds.StructureSetLabel = self.name[:16]
        ds.StructureSetDate = "20260101"
        ds.StructureSetTime = "120000"
        image = Dataset()
        series = Dataset()
        series.SeriesInstanceUID = self.series_uid
        if self.contour_images:
            items = []
            for sop in self.ct_uids:
                item = Dataset()
                item.ReferencedSOPClassUID = CT_IMAGE_STORAGE
                item.ReferencedSOPInstanceUID = sop
                items.append(item)
            series.ContourImageSequence = Sequence(items)
        study = Dataset()
        study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired), as TPSs do
        study.ReferencedSOPInstanceUID = STUDY
        study.RTReferencedSeriesSequence = Sequence([series])
        image.FrameOfReferenceUID = self.frame_uid
        image.RTReferencedStudySequence = Sequence([study])
        ds.ReferencedFrameOfReferenceSequence = Sequence([image])
        roi_items, contour_items, observations = [], [], []
        for number, name, contours, has_contours in self.rois:
            roi = Dataset()
            roi.ROINumber = number
            roi.ReferencedFrameOfReferenceUID = self.frame_uid
            roi.ROIName = name
            roi.ROIGenerationAlgorithm = "MANUAL"
            roi_items.append(roi)
            rc = Dataset()
            rc.ROIDisplayColor = [255, 0, 0]
            rc.ReferencedROINumber = number
            if has_contours:
                seq = []
                for index, (kind, points, declared, k) in enumerate(contours):
                    c = Dataset()
                    if self.contour_images and k is not None:
                        ref = Dataset()
                        ref.ReferencedSOPClassUID = CT_IMAGE_STORAGE
                        ref.ReferencedSOPInstanceUID = self.ct_uids[k]
                        c.ContourImageSequence = Sequence([ref])
                    c.ContourGeometricType = kind
                    c.NumberOfContourPoints = declared if declared is not None else len(points)
                    c.ContourNumber = index + 1
                    c.ContourData = [ds_text(v) for p in points for v in p]
                    seq.append(c)
                rc.ContourSequence = Sequence(seq)
            contour_items.append(rc)
            obs = Dataset()
            obs.ObservationNumber = number
            obs.ReferencedROINumber = number
            obs.RTROIInterpretedType = "ORGAN" if name != "Isocenter" else "ISOCENTER"
            obs.ROIInterpreter = ""
            observations.append(obs)
        ds.StructureSetROISequence = Sequence(roi_items)
        ds.ROIContourSequence = Sequence(contour_items)
        ds.RTROIObservationsSequence = Sequence(observations)
        ds.ApprovalStatus = "UNAPPROVED"
        save(ds, path)


def organs(ct_uids, out):
    rng = np.random.default_rng(20261207)
    b = Builder("organs", ct_uids)
    liver = []
    for k in range(3, 9):
        liver.append(("CLOSED_PLANAR", polygon(rng, -4.0, 2.5, 11.0, 14, slice_z(k), 0.05), None, k))
        if k in (4, 5, 6):  # the hole: a contour inside the first on the same slice
            liver.append(("CLOSED_PLANAR", polygon(rng, -3.0, 3.0, 4.0, 9, slice_z(k)), None, k))
    b.roi(1, "Liver", liver)
    spleen = []
    for k in range(2, 6):
        spleen.append(("CLOSED_PLANAR", polygon(rng, 12.5, -10.0, 4.5, 10, slice_z(k)), None, k))
        spleen.append(("CLOSED_PLANAR", polygon(rng, 12.0, 6.0, 3.5, 8, slice_z(k), 0.05), None, k))
    b.roi(2, "spleen_1", spleen)
    kidney = [("CLOSED_PLANAR", polygon(rng, -12.0, -11.0, 3.2, 7, slice_z(k)), None, k) for k in range(6, 10)]
    kidney.append(("OPEN_PLANAR", polygon(rng, -12.0, -11.0, 5.0, 5, slice_z(7)), None, 7))
    b.roi(3, "Kidney", kidney)
    b.roi(4, "Isocenter", [("POINT", [(0.5, -0.5, slice_z(6))], None, 6)])
    b.write(os.path.join(out, "organs.dcm"))


def oblique(ct_uids, out):
    rng = np.random.default_rng(7)
    b = Builder("oblique", ct_uids)
    tilt = math.tan(math.radians(20))
    points = [(x, y, slice_z(5) + (x + 4.0) * tilt) for x, y, _ in polygon(rng, -4.0, 2.5, 8.0, 12, 0)]
    b.roi(1, "Tilted", [("CLOSED_PLANAR", points, None, 5)])
    b.write(os.path.join(out, "oblique.dcm"))


def off_plane(ct_uids, out):
    rng = np.random.default_rng(11)
    b = Builder("off-plane", ct_uids)
    good = [("CLOSED_PLANAR", polygon(rng, -4.0, 2.5, 8.0, 12, slice_z(k)), None, k) for k in (4, 5)]
    bad = ("CLOSED_PLANAR", polygon(rng, -4.0, 2.5, 8.0, 12, slice_z(6) + 1.0), None, 6)
    b.roi(1, "Liver", good + [bad])
    b.write(os.path.join(out, "off-plane.dcm"))


def missing_reference(ct_uids, out):
    rng = np.random.default_rng(13)
    b = Builder("missing-reference", ct_uids, series_uid=uid("absent-series"), frame_uid=uid("absent-frame"),
                contour_images=False)
    b.roi(1, "Liver", [("CLOSED_PLANAR", polygon(rng, -4.0, 2.5, 8.0, 12, slice_z(5)), None, None)])
    b.write(os.path.join(out, "missing-reference.dcm"))


def empty_roi(ct_uids, out):
    rng = np.random.default_rng(17)
    b = Builder("empty-roi", ct_uids)
    b.roi(1, "Liver", [], has_contours=False)
    b.roi(2, "Spleen", [("CLOSED_PLANAR", polygon(rng, 12.5, -10.0, 4.5, 10, slice_z(3)), None, 3)])
    b.write(os.path.join(out, "empty-roi.dcm"))


def count_mismatch(ct_uids, out):
    rng = np.random.default_rng(19)
    b = Builder("count-mismatch", ct_uids)
    b.roi(1, "Liver", [("CLOSED_PLANAR", polygon(rng, -4.0, 2.5, 8.0, 6, slice_z(5)), 7, 5)])
    b.write(os.path.join(out, "count-mismatch.dcm"))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "Fixtures", "RTSTRUCT")
    ct_uids = write_ct(os.path.join(out, "ct"))
    for make in (organs, oblique, off_plane, missing_reference, empty_roi, count_mismatch):
        make(ct_uids, out)
    print(f"wrote {out}: ct/ ({SLICES} slices) and 6 RT Structure Sets")


if __name__ == "__main__":
    main()

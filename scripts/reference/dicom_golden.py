#!/usr/bin/env python3
"""Golden values for Tessera's DICOM tests, computed with pydicom.

What
    Walks a fixture tree, rebuilds every image series (and every DICOM SEG) as a
    volume with pydicom + numpy, and writes one JSON file of reference numbers
    (geometry, statistics, SHA-256 of the voxel bytes) that the Swift tests
    compare against.

How to run
    python3 scripts/reference/dicom_golden.py FIXTURE_ROOT OUTPUT_JSON [--allow-errors]

    The first run creates the virtual environment scripts/.venv-reference
    (git-ignored by `/scripts/.venv*/`), installs the pinned packages below into
    it and re-executes itself there; later runs reuse it. Exit status 1 when a
    series or SEG could not be built (the JSON is still written, with an
    "errors" section), unless --allow-errors is given.

Pinned packages (all install from PyPI on Debian 12 / Python 3.11; none dropped)
    pydicom==3.0.2, numpy==2.4.6, pylibjpeg==2.1.0, pylibjpeg-libjpeg==2.5.0,
    pylibjpeg-openjpeg==2.6.0, pylibjpeg-rle==2.2.0, pyjpegls==1.5.1
    (numpy is pinned too so that the golden statistics are reproducible).
    Decoders: JPEG baseline/extended/lossless -> pylibjpeg-libjpeg; JPEG-LS ->
    pyjpegls (pylibjpeg-libjpeg as fallback); JPEG 2000 -> pylibjpeg-openjpeg;
    RLE -> pydicom's own decoder; deflate/big endian -> pydicom.

Fixture layout
    FIXTURE_ROOT/<case>/...   one sub-folder per test case (folders whose name
    starts with "." are ignored). Inside a case every regular file, at any depth,
    is tried with pydicom.dcmread(force=False); files pydicom cannot read (junk,
    no "DICM" preamble) and DICOMDIR files are skipped and listed under
    "skipped". Files without Pixel Data (SR, KO, ...) are skipped too.

Conventions (the Swift code must do exactly the same)
    Series      image files are grouped by SeriesInstanceUID; SEG objects (SOP
                Class 1.2.840.10008.5.1.4.1.1.66.4) are handled separately.
    Frames      a single-frame file is one frame: IPP (0020,0032), IOP (0020,0037),
                PixelSpacing (0028,0030), RescaleSlope/RescaleIntercept (default
                1/0), SliceThickness. An enhanced multi-frame file (it has a
                PerFrameFunctionalGroupsSequence) gives one frame per item of that
                sequence; PlanePositionSequence, PlaneOrientationSequence,
                PixelMeasuresSequence and PixelValueTransformationSequence are
                looked up in the frame's item first, then in
                SharedFunctionalGroupsSequence[0], then (IOP, PixelSpacing,
                rescale, SliceThickness only) at the top level of the file.
                Multi-frame files without functional groups are not supported.
    Consistency all frames of a series must share Rows, Columns, IOP (each
                component within 1e-4) and PixelSpacing (within 1e-4 mm), and no
                two frames may lie within 1e-3 mm along the normal; otherwise the
                series is reported under "errors".
    Normal      row cosine r = IOP[0:3], column cosine c = IOP[3:6],
                n = cross(r, c) / |cross(r, c)| (normalised; r and c are used as
                stored, not normalised). IOP of the first frame in read order.
    Sorting     frames ascending by dot(IPP, n).
    Values      stored values = pydicom pixel_array, then normalised to BitsStored
                for every transfer syntax: unsigned data masked to the low
                BitsStored bits, signed data sign-extended from bit BitsStored-1.
                (pydicom usually does this itself, but 3.0.2 does not for JPEG-LS
                codestreams with precision P > BitsStored, which DCMTK's dcmcjpls
                writes for signed 12-bit data: without this step negative values
                come out +4096.) Then
                    arr.astype(float32) * float32(slope) + float32(intercept)
                i.e. two float32 roundings, no float64 and no fused multiply-add.
                slope/intercept are the DS strings parsed to float64 and then
                rounded to float32. If the file has a Modality LUT Sequence
                (0028,3000), pydicom.pixels.apply_modality_lut is used instead and
                its result cast to float32. Photometric MONOCHROME1 is NOT
                inverted. Stored values above 2^24 lose precision in float32.
    Layout      volume[z, y, x] (x fastest, C order), float32 little endian;
                z follows the sorted frames, y the rows, x the columns.
    Geometry    dimensions = [x=Columns, y=Rows, z=slices]
                spacing    = [PixelSpacing[1], PixelSpacing[0], slice spacing]
                origin     = IPP of the first sorted frame
                direction  = 9 numbers: x axis (= r), y axis (= c), z axis, i.e.
                             the COLUMNS of an ITK direction matrix, one after the
                             other (NOT the row-major ITK matrix).
                With d = IPP_last - IPP_first and N slices:
                  N == 1: z axis = n, slice spacing = SliceThickness, else 1.
                  untilted (angle(d, n) <= 0.5 deg):
                          z axis = n, slice spacing = dot(d, n) / (N - 1).
                  tilted  (angle(d, n) >  0.5 deg, e.g. gantry tilt):
                          z axis = d / |d|, slice spacing = |d| / (N - 1), so that
                          voxel (0, 0, N-1) maps onto IPP_last. (Deliberately
                          not dot(d, n) / (N - 1) here: with the tilted z axis
                          that would shrink the stack by cos(tilt).) The grid
                          is then not orthonormal.
                Voxel (i, j, k) -> LPS mm: origin + i*sx*x_axis + j*sy*y_axis
                + k*sz*z_axis. Uneven slice gaps are kept (average spacing) and
                reported under "warnings" when a gap deviates > 1% from it.
    Statistics  min, max of the float32 volume; mean and std (population,
                ddof=0) accumulated in float64 by numpy (pairwise summation:
                compare mean/std with a relative tolerance ~1e-9, not exactly).
    Hash        sha256 of the float32 little-endian bytes of volume[z, y, x].
    Lossy       "lossy": true when any file of the series uses transfer syntax
                1.2.840.10008.1.2.4.50, .51, .81 or .91 (decoders differ: compare
                these with tolerances, not hashes); false otherwise.
    SEG         SegmentSequence gives numbers and labels. pixel_array (BINARY
                1-bit data unpacked by pydicom) has shape (frames, rows, cols), or
                (rows, cols) for one frame. Each frame i belongs to segment
                PerFrameFunctionalGroups[i].SegmentIdentificationSequence[0]
                .ReferencedSegmentNumber (shared group as fallback) and is placed
                on a slice of the referenced series (ReferencedSeriesSequence, or
                the series holding the source images):
                  1. by ReferencedSOPInstanceUID (+ ReferencedFrameNumber for
                     multi-frame sources) in PerFrameFunctionalGroups[i]
                     .DerivationImageSequence[*].SourceImageSequence[*];
                  2. else by projecting the frame's PlanePositionSequence IPP onto
                     n and taking the nearest slice; the 3-D distance between the
                     two IPPs must then be <= 0.1 * min(pixel spacing, |slice
                     spacing|).
                The SEG frame size must equal the series' Rows x Columns.
                Label volume uint8 [z, y, x]: 0 = background; a voxel gets the
                segment number where the mask is >= 1 (BINARY) or
                >= (MaximumFractionalValue + 1) // 2 (FRACTIONAL); where segments
                overlap the higher number wins. LABELMAP SEGs are not supported.
                voxels_per_label counts every segment of SegmentSequence (after
                overlap resolution, 0 allowed); sha256 is over the uint8 bytes.

Output JSON (keys sorted, 2-space indent)
    {"provenance": {...},
     "cases": {case: {"series": {SeriesInstanceUID: {dimensions, spacing,
                                  origin, direction, min, max, mean, std, sha256,
                                  slices, transfer_syntaxes, lossy, modality,
                                  warnings}},
                      "segmentations": {SOPInstanceUID: {referenced_series,
                                  segments, voxels_per_label, sha256, dimensions,
                                  mapping, transfer_syntaxes}},
                      "skipped": [{path, reason}],
                      "errors": {uid: reason}}}}

check_nifti.py (same folder) imports this file for the same conventions;
importing it runs the venv bootstrap too (adding the importer's
EXTRA_REQUIREMENTS).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT_DIR = Path(__file__).resolve().parent
VENV_DIR = SCRIPT_DIR.parent / ".venv-reference"
REQUIREMENTS = [
    "pydicom==3.0.2",
    "numpy==2.4.6",
    "pylibjpeg==2.1.0",
    "pylibjpeg-libjpeg==2.5.0",
    "pylibjpeg-openjpeg==2.6.0",
    "pylibjpeg-rle==2.2.0",
    "pyjpegls==1.5.1",
]


def ensure_venv(requirements: list[str]) -> None:
    """Create scripts/.venv-reference if needed, install `requirements` into it
    (once; remembered in a stamp file) and re-execute this script inside it."""
    venv_python = VENV_DIR / "bin" / "python"
    if not venv_python.exists():
        print(f"[venv] creating {VENV_DIR}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)], check=True)
    stamp = VENV_DIR / "tessera-requirements.txt"
    have = set(stamp.read_text().split()) if stamp.exists() else set()
    missing = [r for r in requirements if r not in have]
    if missing:
        print(f"[venv] pip install {' '.join(missing)}", file=sys.stderr)
        subprocess.run([str(venv_python), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", *missing], check=True)
        stamp.write_text("\n".join(sorted(have | set(missing))) + "\n")
    if Path(sys.prefix).resolve() != VENV_DIR.resolve():
        os.execv(str(venv_python), [str(venv_python), *sys.argv])


# Runs on import too: a script that imports this module (check_nifti.py) gets
# the venv, plus the EXTRA_REQUIREMENTS it defines before the import.
ensure_venv(REQUIREMENTS + list(getattr(sys.modules.get("__main__"), "EXTRA_REQUIREMENTS", [])))

# ---------------------------------------------------------------------------
# Everything below runs inside the venv.
import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from pydicom.errors import InvalidDicomError  # noqa: E402
from pydicom.multival import MultiValue  # noqa: E402
from pydicom.pixels import apply_modality_lut  # noqa: E402

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
LOSSY_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000 (lossy allowed)
}
IOP_TOLERANCE = 1e-4
PIXEL_SPACING_TOLERANCE = 1e-4  # mm
DUPLICATE_POSITION_TOLERANCE = 1e-3  # mm
TILT_THRESHOLD_DEG = 0.5
UNEVEN_GAP_WARNING = 0.01  # relative


class ReferenceError_(Exception):
    """A series or SEG that cannot be turned into a volume."""


# ---------------------------------------------------------------------------
# Reading


@dataclass
class ScanResult:
    images: dict[str, list[tuple[str, pydicom.Dataset]]] = field(default_factory=dict)
    segs: list[tuple[str, pydicom.Dataset]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def scan_folder(root: Path) -> ScanResult:
    """Read every DICOM file below `root` (sorted walk, any depth)."""
    result = ScanResult()
    paths: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        paths.extend(Path(dirpath) / name for name in sorted(filenames))
    for path in paths:
        rel = path.relative_to(root).as_posix()
        if path.name.upper() == "DICOMDIR" or not path.is_file():
            result.skipped.append({"path": rel, "reason": "DICOMDIR" if path.is_file() else "not a file"})
            continue
        try:
            ds = pydicom.dcmread(path, force=False)
        except InvalidDicomError as exc:
            result.skipped.append({"path": rel, "reason": f"not DICOM: {exc}"})
            continue
        except Exception as exc:  # truncated or otherwise unreadable files
            result.skipped.append({"path": rel, "reason": f"unreadable: {type(exc).__name__}: {exc}"})
            continue
        sop_class = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
        if sop_class == DICOMDIR_SOP_CLASS:
            result.skipped.append({"path": rel, "reason": "DICOMDIR"})
        elif sop_class == SEG_SOP_CLASS or ds.get("Modality") == "SEG":
            result.segs.append((rel, ds))
        elif "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            result.skipped.append({"path": rel, "reason": f"no pixel data (SOP class {sop_class})"})
        else:
            uid = str(ds.get("SeriesInstanceUID", ""))
            result.images.setdefault(uid, []).append((rel, ds))
    return result


def transfer_syntax(ds: pydicom.Dataset) -> str:
    return str(ds.file_meta.TransferSyntaxUID)


# ---------------------------------------------------------------------------
# Series volumes


@dataclass
class Frame:
    path: str
    sop_uid: str
    frame_number: int | None  # 1-based for multi-frame files, None for single-frame
    ipp: np.ndarray
    iop: np.ndarray
    pixel_spacing: np.ndarray  # (row spacing, column spacing) as in the file
    slice_thickness: float | None
    slope: float  # value step of one stored unit (1 for a Modality LUT)
    values: np.ndarray  # (rows, cols) float32

    def label(self) -> str:
        return self.path if self.frame_number is None else f"{self.path} frame {self.frame_number}"


@dataclass
class SeriesVolume:
    uid: str
    volume: np.ndarray  # float32 [z, y, x]
    frames: list[Frame]  # sorted
    dimensions: list[int]
    spacing: list[float]
    origin: list[float]
    axes: np.ndarray  # 3x3, rows = x axis, y axis, z axis (LPS unit vectors)
    normal: np.ndarray
    positions: np.ndarray  # dot(IPP, normal) per sorted frame
    transfer_syntaxes: list[str]
    lossy: bool
    modality: str
    warnings: list[str]
    tilted: bool

    def slice_index(self) -> dict[tuple[str, int | None], int]:
        """(SOPInstanceUID, frame number) -> z. Single-frame files answer to
        frame number None and 1."""
        index: dict[tuple[str, int | None], int] = {}
        for z, f in enumerate(self.frames):
            index[(f.sop_uid, f.frame_number)] = z
            if f.frame_number is None:
                index[(f.sop_uid, 1)] = z
        return index

    def affine_lps(self) -> np.ndarray:
        """4x4 voxel (x, y, z) -> LPS mm."""
        a = np.eye(4)
        for k in range(3):
            a[:3, k] = self.axes[k] * self.spacing[k]
        a[:3, 3] = self.origin
        return a


def _floats(value, count: int, what: str) -> np.ndarray:
    if value is None:
        raise ReferenceError_(f"missing {what}")
    arr = np.array([float(v) for v in value], dtype=np.float64)
    if arr.shape != (count,):
        raise ReferenceError_(f"{what} has {arr.size} values, expected {count}")
    return arr


def _functional_item(ds: pydicom.Dataset, index: int, sequence: str):
    """First item of `sequence` in per-frame group `index`, else in the shared group."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and index < len(per_frame):
        seq = per_frame[index].get(sequence)
        if seq:
            return seq[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(sequence)
        if seq:
            return seq[0]
    return None


def _stored_pixels(ds: pydicom.Dataset, n_frames: int) -> np.ndarray:
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise ReferenceError_(f"SamplesPerPixel={ds.SamplesPerPixel} (only grayscale is supported)")
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise ReferenceError_(f"cannot decode pixel data: {type(exc).__name__}: {exc}") from exc
    arr = normalise_stored_bits(arr, ds)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.shape[0] != n_frames:
        raise ReferenceError_(f"pixel data has {arr.shape[0]} frames, expected {n_frames}")
    return arr


def normalise_stored_bits(arr: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Keep only the BitsStored low bits: mask them (unsigned) or sign-extend
    bit BitsStored-1 (signed). A no-op for data pydicom has already corrected,
    but pydicom 3.0.2 skips this for a JPEG-LS codestream whose precision P is
    larger than BitsStored (DCMTK's dcmcjpls writes P=16 for signed 12-bit)."""
    bits_stored = int(ds.get("BitsStored", 0) or 0)
    width = 8 * arr.dtype.itemsize
    if arr.dtype.kind not in "iu" or not 0 < bits_stored < width:
        return arr
    if int(ds.get("PixelRepresentation", 0)) == 1:
        if arr.dtype.kind == "u":
            arr = arr.view(arr.dtype.str.replace("u", "i"))
        shift = width - bits_stored
        return np.right_shift(np.left_shift(arr, shift), shift)
    return np.bitwise_and(arr, arr.dtype.type((1 << bits_stored) - 1))


def _to_float32(stored: np.ndarray, ds: pydicom.Dataset, slope: float, intercept: float) -> np.ndarray:
    if "ModalityLUTSequence" in ds:
        return np.asarray(apply_modality_lut(stored, ds)).astype(np.float32)
    return stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _value_step(ds: pydicom.Dataset, slope: float | None) -> float:
    if "ModalityLUTSequence" in ds:
        return 1.0
    return 1.0 if slope is None else abs(slope)


def _optional_float(item, keyword: str) -> float | None:
    if item is None:
        return None
    value = item.get(keyword)
    if value is None or value == "":
        return None
    return float(value)


def frames_of(path: str, ds: pydicom.Dataset) -> list[Frame]:
    sop_uid = str(ds.SOPInstanceUID)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise ReferenceError_("multi-frame file without functional groups is not supported")
        stored = _stored_pixels(ds, 1)[0]
        slope = _optional_float(ds, "RescaleSlope")
        intercept = _optional_float(ds, "RescaleIntercept")
        return [Frame(
            path=path, sop_uid=sop_uid, frame_number=None,
            ipp=_floats(ds.get("ImagePositionPatient"), 3, "ImagePositionPatient"),
            iop=_floats(ds.get("ImageOrientationPatient"), 6, "ImageOrientationPatient"),
            pixel_spacing=_floats(ds.get("PixelSpacing"), 2, "PixelSpacing"),
            slice_thickness=_optional_float(ds, "SliceThickness"),
            slope=_value_step(ds, slope),
            values=_to_float32(stored, ds, 1.0 if slope is None else slope, 0.0 if intercept is None else intercept),
        )]

    n_frames = len(per_frame)
    if int(ds.get("NumberOfFrames", n_frames) or n_frames) != n_frames:
        raise ReferenceError_(f"NumberOfFrames={ds.NumberOfFrames} but {n_frames} per-frame items")
    stored_all = _stored_pixels(ds, n_frames)
    frames = []
    for i in range(n_frames):
        position = _functional_item(ds, i, "PlanePositionSequence")
        orientation = _functional_item(ds, i, "PlaneOrientationSequence")
        measures = _functional_item(ds, i, "PixelMeasuresSequence")
        transform = _functional_item(ds, i, "PixelValueTransformationSequence")
        where = f"frame {i + 1}"
        ipp = position.get("ImagePositionPatient") if position is not None else None
        iop = orientation.get("ImageOrientationPatient") if orientation is not None else None
        spacing = measures.get("PixelSpacing") if measures is not None else None
        thickness = _optional_float(measures, "SliceThickness")
        slope = _optional_float(transform, "RescaleSlope")
        intercept = _optional_float(transform, "RescaleIntercept")
        if slope is None:
            slope = _optional_float(ds, "RescaleSlope")
        if intercept is None:
            intercept = _optional_float(ds, "RescaleIntercept")
        frames.append(Frame(
            path=path, sop_uid=sop_uid, frame_number=i + 1,
            ipp=_floats(ipp, 3, f"{where}: ImagePositionPatient"),
            iop=_floats(iop if iop is not None else ds.get("ImageOrientationPatient"), 6,
                        f"{where}: ImageOrientationPatient"),
            pixel_spacing=_floats(spacing if spacing is not None else ds.get("PixelSpacing"), 2,
                                  f"{where}: PixelSpacing"),
            slice_thickness=thickness if thickness is not None else _optional_float(ds, "SliceThickness"),
            slope=_value_step(ds, slope),
            values=_to_float32(stored_all[i], ds, 1.0 if slope is None else slope,
                               0.0 if intercept is None else intercept),
        ))
    return frames


def unit_normal(iop: np.ndarray) -> np.ndarray:
    normal = np.cross(iop[0:3], iop[3:6])
    length = np.linalg.norm(normal)
    if length < 1e-6:
        raise ReferenceError_(f"degenerate ImageOrientationPatient {iop.tolist()}")
    return normal / length


def build_series(uid: str, files: list[tuple[str, pydicom.Dataset]]) -> SeriesVolume:
    frames: list[Frame] = []
    for path, ds in files:
        try:
            frames.extend(frames_of(path, ds))
        except ReferenceError_ as exc:
            raise ReferenceError_(f"{path}: {exc}") from exc
    if not frames:
        raise ReferenceError_("no frames")
    first = frames[0]
    shape = first.values.shape
    for f in frames:
        if f.values.shape != shape:
            raise ReferenceError_(f"{f.path}: frame size {f.values.shape} differs from {shape}")
        if np.max(np.abs(f.iop - first.iop)) > IOP_TOLERANCE:
            raise ReferenceError_(f"{f.path}: ImageOrientationPatient {f.iop.tolist()} differs from "
                                  f"{first.iop.tolist()}")
        if np.max(np.abs(f.pixel_spacing - first.pixel_spacing)) > PIXEL_SPACING_TOLERANCE:
            raise ReferenceError_(f"{f.path}: PixelSpacing {f.pixel_spacing.tolist()} differs from "
                                  f"{first.pixel_spacing.tolist()}")

    normal = unit_normal(first.iop)
    frames.sort(key=lambda f: float(np.dot(f.ipp, normal)))  # stable: ties keep read order
    positions = np.array([float(np.dot(f.ipp, normal)) for f in frames])
    gaps = np.diff(positions)
    if gaps.size and gaps.min() < DUPLICATE_POSITION_TOLERANCE:
        z = int(np.argmin(gaps))
        raise ReferenceError_(f"frames {frames[z].label()} and {frames[z + 1].label()} share position "
                              f"{positions[z]:.4f} along the normal (4-D or duplicate data?)")

    n = len(frames)
    warnings: list[str] = []
    tilted = False
    slice_axis = normal
    if n == 1:
        slice_spacing = first.slice_thickness if first.slice_thickness else 1.0
    else:
        d = frames[-1].ipp - frames[0].ipp
        length = float(np.linalg.norm(d))
        cos_angle = float(np.clip(np.dot(d / length, normal), -1.0, 1.0))
        angle = math.degrees(math.acos(cos_angle))
        if angle > TILT_THRESHOLD_DEG:
            tilted = True
            slice_axis = d / length
            slice_spacing = length / (n - 1)
            warnings.append(f"tilted stack: {angle:.3f} deg between slice displacement and normal")
        else:
            slice_spacing = float(np.dot(d, normal)) / (n - 1)
        projected = float(np.dot(d, normal)) / (n - 1)
        deviation = float(np.max(np.abs(gaps - projected))) / abs(projected)
        if deviation > UNEVEN_GAP_WARNING:
            warnings.append(f"uneven slice gaps: up to {100 * deviation:.2f}% from the mean "
                            f"{projected:.6g} mm")

    volume = np.ascontiguousarray(np.stack([f.values for f in frames]), dtype=np.float32)
    ts = sorted({transfer_syntax(ds) for _, ds in files})
    rows, cols = shape
    return SeriesVolume(
        uid=uid, volume=volume, frames=frames,
        dimensions=[int(cols), int(rows), n],
        spacing=[float(first.pixel_spacing[1]), float(first.pixel_spacing[0]), float(slice_spacing)],
        origin=[float(v) for v in frames[0].ipp],
        axes=np.array([first.iop[0:3], first.iop[3:6], slice_axis], dtype=np.float64),
        normal=normal, positions=positions, transfer_syntaxes=ts,
        lossy=any(t in LOSSY_TRANSFER_SYNTAXES for t in ts),
        modality=str(files[0][1].get("Modality", "")), warnings=warnings, tilted=tilted,
    )


def sha256(array: np.ndarray, dtype: str) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=dtype).tobytes()).hexdigest()


def series_record(sv: SeriesVolume) -> dict:
    vol = sv.volume
    return {
        "dimensions": sv.dimensions,
        "spacing": sv.spacing,
        "origin": sv.origin,
        "direction": [float(v) for v in sv.axes.reshape(-1)],
        "min": float(vol.min()),
        "max": float(vol.max()),
        "mean": float(vol.mean(dtype=np.float64)),
        "std": float(vol.std(dtype=np.float64)),
        "sha256": sha256(vol, "<f4"),
        "slices": sv.dimensions[2],
        "transfer_syntaxes": sv.transfer_syntaxes,
        "lossy": sv.lossy,
        "modality": sv.modality,
        "warnings": sv.warnings,
    }


# ---------------------------------------------------------------------------
# Segmentations


@dataclass
class SegLabels:
    sop_uid: str
    referenced_series: str
    segments: dict[int, str]
    labels: np.ndarray  # uint8 [z, y, x]
    mapping: list[str]
    transfer_syntaxes: list[str]


def _source_refs(per_frame_item) -> list[tuple[str, list[int] | None]]:
    refs = []
    for derivation in per_frame_item.get("DerivationImageSequence", []) if per_frame_item else []:
        for source in derivation.get("SourceImageSequence", []):
            uid = source.get("ReferencedSOPInstanceUID")
            if not uid:
                continue
            numbers = source.get("ReferencedFrameNumber")
            if numbers is None or numbers == "":
                frames = None
            elif isinstance(numbers, (list, MultiValue)):
                frames = [int(v) for v in numbers]
            else:
                frames = [int(numbers)]
            refs.append((str(uid), frames))
    return refs


def _referenced_series(ds: pydicom.Dataset, series: dict[str, SeriesVolume]) -> str:
    candidates = [str(item.SeriesInstanceUID) for item in ds.get("ReferencedSeriesSequence", [])
                  if str(item.get("SeriesInstanceUID", "")) in series]
    if len(set(candidates)) == 1:
        return candidates[0]
    # Fall back on the series holding the source images.
    owners = set()
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", [])
    for item in per_frame:
        for uid, _ in _source_refs(item):
            for series_uid, sv in series.items():
                if any(f.sop_uid == uid for f in sv.frames):
                    owners.add(series_uid)
    if len(owners) == 1:
        return owners.pop()
    raise ReferenceError_(f"cannot tell the referenced series (ReferencedSeriesSequence in this case: "
                          f"{sorted(set(candidates))}, source image owners: {sorted(owners)})")


def build_seg(ds: pydicom.Dataset, series: dict[str, SeriesVolume]) -> SegLabels:
    seg_type = str(ds.get("SegmentationType", "")).upper()
    if seg_type == "BINARY":
        threshold = 1
    elif seg_type == "FRACTIONAL":
        threshold = (int(ds.MaximumFractionalValue) + 1) // 2
    else:
        raise ReferenceError_(f"SegmentationType {seg_type!r} is not supported")
    segments = {int(item.SegmentNumber): str(item.get("SegmentLabel", "")) for item in ds.SegmentSequence}
    if any(not 0 < number < 256 for number in segments):
        raise ReferenceError_(f"segment numbers {sorted(segments)} do not fit uint8")

    ref_uid = _referenced_series(ds, series)
    sv = series[ref_uid]
    cols, rows, depth = sv.dimensions
    if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
        raise ReferenceError_(f"SEG frames are {ds.Rows}x{ds.Columns}, series {ref_uid} is {rows}x{cols}")

    per_frame = ds.PerFrameFunctionalGroupsSequence
    pixels = ds.pixel_array
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    if pixels.shape[0] != len(per_frame):
        raise ReferenceError_(f"{pixels.shape[0]} frames but {len(per_frame)} per-frame items")

    index = sv.slice_index()
    tolerance = 0.1 * min(sv.spacing[0], sv.spacing[1], abs(sv.spacing[2]))
    labels = np.zeros((depth, rows, cols), dtype=np.uint8)
    mapping: set[str] = set()
    for i, frame in enumerate(pixels):
        ident = _functional_item(ds, i, "SegmentIdentificationSequence")
        if ident is None:
            raise ReferenceError_(f"frame {i + 1}: no SegmentIdentificationSequence")
        number = int(ident.ReferencedSegmentNumber)
        if number not in segments:
            raise ReferenceError_(f"frame {i + 1}: segment {number} not in SegmentSequence")

        slices = set()
        for uid, frame_numbers in _source_refs(per_frame[i]):
            for fn in frame_numbers or [None]:
                if (uid, fn) in index:
                    slices.add(index[(uid, fn)])
        if len(slices) > 1:
            raise ReferenceError_(f"frame {i + 1}: source images lie on several slices {sorted(slices)}")
        if slices:
            z = slices.pop()
            mapping.add("source_image")
        else:
            position = _functional_item(ds, i, "PlanePositionSequence")
            if position is None or "ImagePositionPatient" not in position:
                raise ReferenceError_(f"frame {i + 1}: neither a known source image nor a plane position")
            ipp = _floats(position.ImagePositionPatient, 3, f"SEG frame {i + 1} ImagePositionPatient")
            z = int(np.argmin(np.abs(sv.positions - float(np.dot(ipp, sv.normal)))))
            distance = float(np.linalg.norm(ipp - sv.frames[z].ipp))
            if distance > tolerance:
                raise ReferenceError_(f"frame {i + 1}: plane position {ipp.tolist()} is {distance:.4f} mm "
                                      f"from the nearest slice {z} (tolerance {tolerance:.4f})")
            mapping.add("plane_position")
        mask = frame >= threshold
        labels[z][mask] = np.maximum(labels[z][mask], number)

    return SegLabels(
        sop_uid=str(ds.SOPInstanceUID), referenced_series=ref_uid, segments=segments,
        labels=labels, mapping=sorted(mapping), transfer_syntaxes=[transfer_syntax(ds)],
    )


def seg_record(seg: SegLabels, sv: SeriesVolume) -> dict:
    return {
        "referenced_series": seg.referenced_series,
        "segments": {str(k): v for k, v in seg.segments.items()},
        "voxels_per_label": {str(k): int(np.count_nonzero(seg.labels == k)) for k in seg.segments},
        "sha256": sha256(seg.labels, "u1"),
        "dimensions": sv.dimensions,
        "mapping": seg.mapping,
        "transfer_syntaxes": seg.transfer_syntaxes,
    }


# ---------------------------------------------------------------------------
# Driver


def package_versions() -> dict[str, str]:
    names = ["pydicom", "numpy", "pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg",
             "pylibjpeg-rle", "pyjpegls", "nibabel"]
    versions = {}
    for name in names:
        if name == "nibabel" and "nibabel" not in sys.modules:
            continue  # only check_nifti.py uses it
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def provenance(script: str) -> dict:
    return {
        "script": script,
        "pydicom": pydicom.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "packages": package_versions(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command_line": shlex.join(["python3", *sys.argv]),
    }


def process_case(case_dir: Path) -> tuple[dict, int]:
    scan = scan_folder(case_dir)
    out: dict = {"series": {}, "segmentations": {}, "skipped": scan.skipped, "errors": {}}
    volumes: dict[str, SeriesVolume] = {}
    for uid in sorted(scan.images):
        try:
            volumes[uid] = build_series(uid, scan.images[uid])
            out["series"][uid] = series_record(volumes[uid])
        except ReferenceError_ as exc:
            out["errors"][uid] = str(exc)
        except Exception as exc:  # decoder failures and malformed data
            out["errors"][uid] = f"{type(exc).__name__}: {exc}"
    for path, ds in scan.segs:
        uid = str(ds.get("SOPInstanceUID", path))
        failed = [str(item.get("SeriesInstanceUID", "")) for item in ds.get("ReferencedSeriesSequence", [])
                  if str(item.get("SeriesInstanceUID", "")) in out["errors"]]
        if failed:
            out["errors"][uid] = f"{path}: referenced series {failed[0]} could not be built"
            continue
        if uid in out["segmentations"]:
            out["errors"][uid] = f"{path}: SOPInstanceUID already seen in another file of this case"
            continue
        try:
            seg = build_seg(ds, volumes)
            out["segmentations"][uid] = seg_record(seg, volumes[seg.referenced_series])
        except Exception as exc:
            out["errors"][uid] = f"{path}: {type(exc).__name__}: {exc}"
    return out, len(out["errors"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fixture_root", type=Path)
    parser.add_argument("output_json", type=Path)
    parser.add_argument("--allow-errors", action="store_true",
                        help="exit 0 even when a series or SEG could not be built")
    args = parser.parse_args()
    if not args.fixture_root.is_dir():
        parser.error(f"{args.fixture_root} is not a folder")

    cases = {}
    n_errors = 0
    for case_dir in sorted(p for p in args.fixture_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cases[case_dir.name], errors = process_case(case_dir)
        n_errors += errors
        c = cases[case_dir.name]
        print(f"{case_dir.name}: {len(c['series'])} series, {len(c['segmentations'])} SEG, "
              f"{len(c['skipped'])} skipped, {errors} errors", file=sys.stderr)
        for uid, reason in c["errors"].items():
            print(f"  ERROR {uid}: {reason}", file=sys.stderr)

    document = {"provenance": provenance("scripts/reference/dicom_golden.py"), "cases": cases}
    args.output_json.parent.mkdir(parents=True, exist_ok=True)
    args.output_json.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.output_json} ({len(cases)} cases, {n_errors} errors)", file=sys.stderr)
    return 1 if n_errors and not args.allow_errors else 0


if __name__ == "__main__":
    sys.exit(main())

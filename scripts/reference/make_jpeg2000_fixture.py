#!/usr/bin/env python3
"""Make the JPEG 2000 (lossless, 1.2.840.10008.1.2.4.90) copy of a fixture series with pydicom + OpenJPEG.

DCMTK 3.6.7 cannot encode (or decode) JPEG 2000, so scripts/make_fixtures.sh calls this for the one case that
DCMTK's tools cannot make. Same venv as dicom_golden.py (scripts/.venv-reference, created on first use).

usage: make_jpeg2000_fixture.py SOURCE_CASE_FOLDER OUTPUT_CASE_FOLDER
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dicom_golden  # noqa: E402

dicom_golden.ensure_venv(dicom_golden.REQUIREMENTS)

import pydicom  # noqa: E402
from pydicom.uid import JPEG2000Lossless  # noqa: E402


def main() -> int:
    source, output = Path(sys.argv[1]), Path(sys.argv[2])
    output.mkdir(parents=True, exist_ok=True)
    count = 0
    for f in sorted(source.iterdir()):
        if not f.is_file():
            continue
        ds = pydicom.dcmread(f)
        # Keep the SOP Instance UIDs: the copy is the same images in another transfer syntax.
        ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
        ds.save_as(output / f.name, enforce_file_format=True)
        count += 1
    print(f"wrote {count} JPEG 2000 lossless files to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

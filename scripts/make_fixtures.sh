#!/usr/bin/env bash
# Regenerates Tests/Fixtures/DICOM: base cases written by `tessera sample-data --fixtures` (through DCMTK), and
# transcoded copies made with DCMTK's own command-line tools (Debian package `dcmtk`), one folder per transfer
# syntax. JPEG 2000 copies are made by scripts/reference/make_jpeg2000_fixture.py (pydicom + pylibjpeg-openjpeg).
# Then run scripts/reference/dicom_golden.py to refresh the golden values.
set -euo pipefail
cd "$(dirname "$0")/.."
out=Tests/Fixtures/DICOM
bin=$(swift build --show-bin-path)/tessera
swift build --product tessera >/dev/null
rm -rf "$out"
"$bin" sample-data --fixtures "$out"

transcode() { # transcode <from case> <to case> <command...>
  local from=$1 to=$2; shift 2
  mkdir -p "$out/$to"
  for f in "$out/$from"/*; do "$@" "$f" "$out/$to/$(basename "$f")"; done
}
transcode explicit-le implicit-le dcmconv +ti
transcode explicit-le big-endian dcmconv +tb
transcode explicit-le deflated dcmconv +td
transcode explicit-le rle dcmcrle
transcode explicit-le jpeg-lossless dcmcjpeg +e1
transcode explicit-le jpegls-lossless dcmcjpls +el
transcode bits12-signed-dirty jpegls-bits12-signed-dirty dcmcjpls +el
transcode bits12-unsigned jpegls-near-lossless dcmcjpls +en +un
transcode bits12-unsigned jpeg-extended dcmcjpeg +ee +un
transcode mr-8bit jpeg-baseline dcmcjpeg +eb +un
transcode multiframe-enhanced-ct multiframe-jpegls dcmcjpls +el
[ -f scripts/reference/make_jpeg2000_fixture.py ] && python3 scripts/reference/make_jpeg2000_fixture.py "$out/explicit-le" "$out/jpeg2000-lossless"
echo "fixtures in $out: $(ls "$out" | wc -l) cases, $(du -sh "$out" | cut -f1)"

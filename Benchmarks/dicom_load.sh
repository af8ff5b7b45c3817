#!/usr/bin/env bash
# DICOM loading benchmark: a 256×512×512 CT series (shared/bench/dicom_gen_series.py) loaded into a float32 HU
# volume by Tessera, by the C++ reference loader built straight on DCMTK with -O3, and by pydicom + numpy, in one
# run, uncompressed and in three lossless compressed syntaxes (RLE, JPEG lossless SV1, JPEG-LS), transcoded with
# DCMTK's tools. Prints each tool's median wall time and slices/s per syntax, as a Markdown table.
#
# usage: Benchmarks/dicom_load.sh [--repeat N]     (needs ../shared/bench; installs pydicom etc. in a venv)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${2:-5}
SHARED=${SHARED:-../shared/bench}
WORK=${BENCH_DIR:-/tmp/tessera-bench-dicom}
VENV=Benchmarks/.venv-bench
mkdir -p "$WORK"
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$(bash scripts/openblas_coretype.sh)}

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q pydicom==3.0.2 numpy pylibjpeg==2.1.0 pylibjpeg-libjpeg==2.5.0 pylibjpeg-rle==2.2.0 pyjpegls==1.5.1
fi
PY="$VENV/bin/python"
# The generator writes the ground-truth volume beside the series folder (or inside it, in older versions).
truth() { ls "$WORK/truth_hu.npy" "$WORK/truth/truth_hu.npy" 2>/dev/null | head -1; }
[ -n "$(truth)" ] || "$PY" "$SHARED/dicom_gen_series.py" "$WORK/raw" >/dev/null
for pair in "rle:dcmcrle" "jpeg-lossless:dcmcjpeg +e1" "jpegls:dcmcjpls +el"; do
  name=${pair%%:*}; cmd=${pair#*:}
  if [ ! -d "$WORK/$name" ]; then
    mkdir -p "$WORK/$name"
    for f in "$WORK"/raw/*.dcm; do $cmd "$f" "$WORK/$name/$(basename "$f")"; done
  fi
done
# The loaders read only the series: keep the truth file out of their folder.
if [ -f "$WORK/raw/truth_hu.npy" ]; then mkdir -p "$WORK/truth"; mv "$WORK/raw/truth_hu.npy" "$WORK/truth/"; fi

g++ -O3 -std=c++17 "$SHARED/dcmtk_reference_loader.cc" -o "$WORK/dcmtk_ref" -ldcmimgle -ldcmjpeg -ldcmjpls -ldcmdata -loflog -lofstd -lpthread
swift build -c release --static-swift-stdlib --product tessera-bench >/dev/null
BENCH=$(swift build -c release --static-swift-stdlib --show-bin-path)/tessera-bench
bash scripts/bench_header.sh "$BENCH"

# Correctness first: Tessera's volume equals the generator's ground truth.
"$BENCH" dicom-load "$WORK/raw" --repeat 1 --warmup 0 --dump "$WORK/tessera.f32" >/dev/null
"$PY" - "$WORK" "$(truth)" <<'PYEOF'
import sys, numpy as np
w = sys.argv[1]
truth = np.load(sys.argv[2]).astype(np.float32).ravel()
ours = np.fromfile(w + "/tessera.f32", dtype=np.float32)
assert ours.shape == truth.shape and np.array_equal(ours, truth), "Tessera's volume differs from truth_hu.npy"
print("verified: Tessera's float32 HU volume equals truth_hu.npy (%d voxels)" % truth.size, file=sys.stderr)
PYEOF

results="$WORK/results.jsonl"; : > "$results"
for syntax in raw rle jpeg-lossless jpegls; do
  d="$WORK/$syntax"
  "$BENCH" dicom-load "$d" --repeat "$REPEAT" | sed "s/^{/{\"syntax\":\"$syntax\",/" >> "$results"
  "$WORK/dcmtk_ref" "$d" --mode raw --threads 1 --repeat "$REPEAT" | sed "s/^{/{\"syntax\":\"$syntax\",/" >> "$results"
  "$WORK/dcmtk_ref" "$d" --mode raw --threads 2 --repeat "$REPEAT" | sed "s/^{/{\"syntax\":\"$syntax\",/" >> "$results"
  "$PY" "$SHARED/dicom_load_pydicom.py" "$d" --repeat "$REPEAT" | grep '"tool"' | sed "s/^{/{\"syntax\":\"$syntax\",/" >> "$results"
done
"$PY" - "$results" <<'PYEOF'
import json, sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[(r["syntax"], r["tool"], r.get("threads", 1))].append(r)
print("| syntax | loader | threads | median wall s | slices/s | vs DCMTK C++ (1 thread) |")
print("|---|---|---|---|---|---|")
for syntax in ["raw", "rle", "jpeg-lossless", "jpegls"]:
    ref = statistics.median(r["wall_s"] for r in rows[(syntax, "dcmtk-cxx", 1)])
    for key in sorted(k for k in rows if k[0] == syntax):
        wall = statistics.median(r["wall_s"] for r in rows[key])
        n = rows[key][0]["slices"]
        print(f"| {syntax} | {key[1]} | {key[2]} | {wall:.3f} | {n / wall:.0f} | {wall / ref:.2f}× |")
PYEOF

#!/usr/bin/env bash
# Resampling benchmark: a synthetic 512×512×256 float32 CT (0.7 × 0.7 × 1.25 mm) resampled to 1.5 mm isotropic
# (linear) and z-scored, by Tessera (with and without its anti-aliasing pre-filter), SimpleITK `Resample` +
# `Normalize` and MONAI `Spacing` + `NormalizeIntensity`, all on 2 threads, in one run. Prints the median wall time
# per tool as a Markdown table.
#
# usage: Benchmarks/resample.sh [REPEAT]
#   (installs SimpleITK, MONAI and torch from PyPI in Benchmarks/.venv-resample; SWIFT_FLAGS go to swift build)
set -euo pipefail
cd "$(dirname "$0")/.."
# The OpenBLAS core this CPU has (as the Makefile detects it), never one it lacks.
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$(bash scripts/openblas_coretype.sh)}
REPEAT=${1:-5}
THREADS=2
VENV=Benchmarks/.venv-resample
WORK=${BENCH_DIR:-/tmp/tessera-bench-resample}
mkdir -p "$WORK"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import SimpleITK, monai, torch' 2>/dev/null; then
  python3 -m venv "$VENV"
  # PyPI has no CPU-only torch wheel for Linux: this is the CUDA build (with the nvidia-* wheels the venv is
  # about 5.7 GB); it runs on the CPU here.
  "$VENV/bin/pip" install -q numpy==2.4.6 SimpleITK==2.5.7 monai==1.6.1 torch==2.15.0
fi
PY="$VENV/bin/python"
swift build -c release --static-swift-stdlib ${SWIFT_FLAGS:-} --product tessera-bench >/dev/null
BENCH=$(swift build -c release --static-swift-stdlib ${SWIFT_FLAGS:-} --show-bin-path)/tessera-bench
bash scripts/bench_header.sh "$BENCH"

# Correctness first: without anti-aliasing, Tessera's resampled + z-scored volume equals SimpleITK's on the same
# input.
"$BENCH" resample --repeat 1 --warmup 0 --no-anti-alias --dump-input "$WORK/input.f32" --dump-output "$WORK/tessera.f32" \
  >/dev/null
"$PY" Benchmarks/resample_peers.py verify --input "$WORK/input.f32" --output "$WORK/tessera.f32" >&2
rm -f "$WORK/input.f32" "$WORK/tessera.f32"

results="$WORK/results.jsonl"; : > "$results"
# The machine has 2 cores: pin every tool to 2 threads (Tessera uses all cores through Dispatch).
"$BENCH" resample --repeat "$REPEAT" | sed 's/^{/{"label":"Tessera Resample + ZScore (anti-aliased)",/' >> "$results"
"$BENCH" resample --repeat "$REPEAT" --no-anti-alias \
  | sed 's/^{/{"label":"Tessera Resample + ZScore (no anti-aliasing)",/' >> "$results"
OMP_NUM_THREADS=$THREADS "$PY" Benchmarks/resample_peers.py sitk --threads $THREADS --repeat "$REPEAT" \
  | sed 's/^{/{"label":"SimpleITK Resample (linear) + Normalize",/' >> "$results"
OMP_NUM_THREADS=$THREADS "$PY" Benchmarks/resample_peers.py monai --threads $THREADS --repeat "$REPEAT" \
  | sed 's/^{/{"label":"MONAI Spacing (bilinear) + NormalizeIntensity",/' >> "$results"

"$PY" - "$results" "$THREADS" <<'PYEOF'
import collections, json, statistics, sys
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["label"], []).append(r)
ref = statistics.median(r["wall_s"] for r in rows["SimpleITK Resample (linear) + Normalize"])
print(f"512×512×256 float32 CT, 0.7×0.7×1.25 mm → 1.5 mm isotropic + z-score, {sys.argv[2]} threads, median of "
      f"{len(next(iter(rows.values())))} runs")
print()
print("| tool | version | output shape (x, y, z) | median s | vs SimpleITK |")
print("|---|---|---|---|---|")
for label, rs in rows.items():
    wall = statistics.median(r["wall_s"] for r in rs)
    version = rs[0].get("version", "this branch")
    print(f"| {label} | {version} | {tuple(rs[0]['output'])} | {wall:.3f} | {wall / ref:.2f}× |")
PYEOF

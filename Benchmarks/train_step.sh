#!/usr/bin/env bash
# Training-step benchmark: one SGD(0.01, momentum 0.9) step of the reference unet2d (batch 8, 1×128², CE + soft
# Dice) and unet3d (batch 2, 1×64³), Tessera (`tessera-bench train-step`) beside PyTorch (`torch_reference.py`,
# default and channels-last) with 1 and 2 threads, in one run. Prints every tool's SUMMARY line, then a Markdown
# table of median steps/s and Tessera's ratio to PyTorch's best, and the same from CPU time (cpu-normalised).
#
# usage: Benchmarks/train_step.sh [unet2d unet3d resnet3d]    (needs ../shared/bench and torch from PyPI: it reuses
#        the venv scripts/.venv-torch that scripts/reference/torch_golden.py creates). resnet3d is the sample
#        classification pipeline's model; its PyTorch twin is Benchmarks/torch_classifier.py (the same harness).
#   ISA=avx2 runs every tool on its AVX2 path, to measure it on an AVX-512 machine: Tessera's kernels
#        (TESSERA_KERNELS_ISA=avx2) and OpenBLAS (OPENBLAS_CORETYPE=Haswell), PyTorch's ATen kernels
#        (ATEN_CPU_CAPABILITY=avx2) and oneDNN (ONEDNN_MAX_CPU_ISA=AVX2). Unset (or ISA=avx512 on an AVX-512 CPU),
#        every tool takes the best the CPU has; asking for an ISA the CPU lacks stops the script. The header lines
#        say what each tool ran.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${*:-unet2d unet3d}
SHARED=${SHARED:-../shared/bench}
TRIALS=${TRIALS:-5}
MIN_TIME=${MIN_TIME:-3}
# The OpenBLAS core this CPU has (as the Makefile detects it): never one it lacks (SkylakeX on AVX2 dies of SIGILL).
NATIVE_CORE=$(bash scripts/openblas_coretype.sh)
case "${ISA:-}" in
  "") ;;
  avx512)
    [ "$NATIVE_CORE" = SkylakeX ] || { echo "ISA=avx512: this CPU lacks AVX-512 (F, BW, VL, DQ)" >&2; exit 2; }
    export TESSERA_KERNELS_ISA=avx512 OPENBLAS_CORETYPE=SkylakeX ;;
  avx2)
    [ -n "$NATIVE_CORE" ] || { echo "ISA=avx2: this CPU lacks AVX2 + FMA" >&2; exit 2; }
    export TESSERA_KERNELS_ISA=avx2 OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ;;
  *) echo "ISA must be avx512 or avx2" >&2; exit 2 ;;
esac
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$NATIVE_CORE}
[ -x scripts/.venv-torch/bin/python ] || python3 scripts/reference/torch_golden.py --out /tmp/tessera-golden-unused >/dev/null
PY=scripts/.venv-torch/bin/python
SCRATCH=${SCRATCH:-.build}
swift build -c release --scratch-path "$SCRATCH" --product tessera-bench >/dev/null
BENCH=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/tessera-bench
OUT=$(mktemp)
bash scripts/bench_header.sh "$BENCH"
echo "# PyTorch $("$PY" -c 'import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability())')," \
  "oneDNN ISA limit ${ONEDNN_MAX_CPU_ISA:-none}"
for model in $MODELS; do
  PEER=("$SHARED/torch_reference.py")
  if [ "$model" = resnet3d ]; then PEER=(Benchmarks/torch_classifier.py --shared "$SHARED"); fi
  for threads in 1 2; do
    "$BENCH" train-step --model "$model" --threads "$threads" --trials "$TRIALS" --min-time "$MIN_TIME" | tee -a "$OUT" | grep SUMMARY
    "$PY" "${PEER[@]}" --model "$model" --threads "$threads" --trials "$TRIALS" --min-time "$MIN_TIME" \
      | sed 's/^JSON {/JSON {"tool": "torch", /' | tee -a "$OUT" | grep SUMMARY
    "$PY" "${PEER[@]}" --model "$model" --threads "$threads" --trials "$TRIALS" --min-time "$MIN_TIME" \
      --channels-last | sed 's/^JSON {/JSON {"tool": "torch-cl", /' | tee -a "$OUT" | grep SUMMARY
  done
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l[5:]) for l in open(sys.argv[1]) if l.startswith("JSON ")]
print("\n| model | threads | Tessera steps/s | PyTorch | PyTorch channels-last | Tessera / best PyTorch |")
print("|---|---|---|---|---|---|")
for model in dict.fromkeys(r["model"] for r in rows):
    for t in (1, 2):
        get = lambda tool: next((r["steps_s_median"] for r in rows if r["model"] == model and r["threads"] == t
                                 and r.get("tool") == tool), None)
        te, to, cl = get("tessera"), get("torch"), get("torch-cl")
        best = max(v for v in (to, cl) if v is not None)
        print(f"| {model} | {t} | {te:.3f} | {to:.3f} | {cl:.3f} | {te / best:.2f}× |")
# The same from CPU time (steps per CPU-second per thread, "cpu-normalised"): on a shared machine this estimates the
# uncontended rate; meaningful for 1 thread, only approximate for 2 (PyTorch's OpenMP threads spin at barriers).
print("\n| model | threads | Tessera CPU-normalised steps/s | PyTorch | PyTorch channels-last | Tessera / best PyTorch |")
print("|---|---|---|---|---|---|")
for model in dict.fromkeys(r["model"] for r in rows):
    for t in (1, 2):
        get = lambda tool: next((r.get("cpu_norm_steps_s_median") for r in rows if r["model"] == model
                                 and r["threads"] == t and r.get("tool") == tool), None)
        te, to, cl = get("tessera"), get("torch"), get("torch-cl")
        if None in (te, to, cl):
            continue
        best = max(to, cl)
        print(f"| {model} | {t} | {te:.3f} | {to:.3f} | {cl:.3f} | {te / best:.2f}× |")
PY
rm -f "$OUT"

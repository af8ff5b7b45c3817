#!/usr/bin/env bash
# Privacy against accuracy on the sample data: the study of pipelines/segmentation-unet2d.yaml run in this process
# (`tessera simulate --in-process --no-baselines`) without DP, with client-level DP (server noise) and with
# patient-level DP-SGD (pipelines/segmentation-unet2d-dp.yaml) at a few noise levels. Each run's sites charge an
# in-memory ledger that does not bind, so ε is measured, never refused. Prints a Markdown table: the final global
# model's Dice on each site's held-out patients, their mean, and the ε each site spent (δ = 1e-5, RDP accounting).
#
# usage: Benchmarks/dp_tradeoff.sh [OUTPUT]      (default out/dp-tradeoff; about 1-2 minutes a run on 2 cores)
#   RUNS="none dpsgd:1.0" runs only those; a run is none | client:<z>:<clip_norm> | dpsgd:<σ>
set -euo pipefail
cd "$(dirname "$0")/.."
# The OpenBLAS core this CPU has (as the Makefile detects it), never one it lacks.
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$(bash scripts/openblas_coretype.sh)}
OUT=${1:-out/dp-tradeoff}
RUNS=${RUNS:-"none client:0.1:5 client:1.0:5 dpsgd:0.5 dpsgd:1.0 dpsgd:2.0"}
swift build -c release --static-swift-stdlib --product tessera >/dev/null
swift build -c release --static-swift-stdlib --product tessera-bench >/dev/null
BIN=$(swift build -c release --static-swift-stdlib --show-bin-path)/tessera
mkdir -p "$OUT"
bash scripts/bench_header.sh "$(dirname "$BIN")/tessera-bench"
rows=()
for run in $RUNS; do
  IFS=: read -r kind a b <<<"$run"
  pipeline="$OUT/$run.yaml"
  case "$kind" in
    none) cp pipelines/segmentation-unet2d.yaml "$pipeline" ;;
    client)
      python3 - "$a" "$b" "$pipeline" <<'EOF'
import sys
z, clip, path = sys.argv[1], sys.argv[2], sys.argv[3]
text = open("pipelines/segmentation-unet2d.yaml").read()
text = text.replace("  cross_site_evaluation: true", "  cross_site_evaluation: false\n"
                    f"  client_dp: {{clip_norm: {clip}, noise_multiplier: {z}, noise: server}}")
open(path, "w").write(text)
EOF
      ;;
    dpsgd) sed "s/^    noise_multiplier: 1.0$/    noise_multiplier: $a/" pipelines/segmentation-unet2d-dp.yaml >"$pipeline" ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
  start=$(date +%s)
  "$BIN" simulate "$pipeline" --data sample-data --output "$OUT/$run" --in-process --no-baselines \
    >"$OUT/$run.log" 2>&1 || { echo "run $run failed: see $OUT/$run.log" >&2; exit 1; }
  seconds=$(( $(date +%s) - start ))
  rows+=("$(python3 - "$OUT/$run/metrics.json" "$run" "$seconds" <<'EOF'
import json, sys
report, run, seconds = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
federated = report["comparison"][0]
eps = {}
for r in report["rounds"]:
    eps.update(r.get("epsilon", {}))
cells = [f'{federated["scores"].get(s, 0):.3f}' for s in report["sites"]]
spent = " / ".join(f'{eps[s]:.3g}' if s in eps else "-" for s in report["sites"])
print(f"| {run} | " + " | ".join(cells) + f' | {federated["mean"]:.3f} | {spent} | {seconds} |')
EOF
)")
  echo "${rows[-1]}"
done
sites=$(python3 -c 'import json,sys; print(" | ".join(json.load(open(sys.argv[1]))["sites"]))' "$OUT/${RUNS%% *}/metrics.json")
echo
echo "| run | $sites | mean Dice | ε per site (δ = 1e-5) | seconds |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"

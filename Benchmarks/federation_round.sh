#!/usr/bin/env bash
# Federation round benchmark: a synthetic model of N float32 parameters, K clients that do no training (they return
# the model plus 0.001 per value), FedAvg, over loopback gRPC with mutual TLS; the server and each client in its own
# process (`tessera-bench federation-round --client-processes`). For N = 1k, 1M, 25M and K = 3, 16, prints every
# JSON line, then a Markdown table: first round (seconds from the server's start, TLS handshakes included), median
# round after the first, the server's peak RSS (VmHWM) and the clients' (largest and total).
#
# usage: Benchmarks/federation_round.sh [ROUNDS]          (default 5 rounds per configuration)
#   FLOWER=1 also runs Flower's legacy gRPC round (../shared/bench/fl_flwr_legacy.py) for each configuration; it
#   needs a venv with flwr, psutil and numpy from PyPI (FLOWER_VENV, default /tmp/venv-flwr).
#   CONFIGS="1000x3 1000000x16" runs only those; CHUNK/WINDOW/FRAME/DOWNLOAD_CHUNKS override the transport tuning.
#   SECAGG=1 also runs every configuration with secure aggregation (five stages a round, masks from every other
#   site); SECAGG_NEIGHBOURS=k uses k neighbours per site instead (SecAgg+). The table then has a row per mode, with
#   the bytes the clients wrote per round (TLS records included, /proc/<pid>/io).
#   BENCH=/path/to/tessera-bench runs that binary instead of building one (to compare two builds in one run).
#   COMPRESSION="int8 fp16" also runs every configuration with each of these update encodings at the sites
#   (`federation.compression`: none | fp16 | bf16 | int8 with blocks of 256; error feedback at the sites).
#   A mode written uploads/downloads ("int8/int8", "none/int8") also sets the download compression
#   (`federation.download_compression`: each site downloads the encoded change from the model it holds; error
#   feedback at the server).
set -euo pipefail
cd "$(dirname "$0")/.."
# The OpenBLAS core this CPU has (as the Makefile detects it), never one it lacks.
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$(bash scripts/openblas_coretype.sh)}
ROUNDS=${1:-5}
CONFIGS=${CONFIGS:-"1000x3 1000x16 1000000x3 1000000x16 25000000x3 25000000x16"}
SCRATCH=${SCRATCH:-.build}
SHARED=${SHARED:-../shared/bench}
EXTRA=()
[ -n "${CHUNK:-}" ] && EXTRA+=(--chunk-scalars "$CHUNK")
[ -n "${WINDOW:-}" ] && EXTRA+=(--window-bytes "$WINDOW")
[ -n "${FRAME:-}" ] && EXTRA+=(--frame-bytes "$FRAME")
[ -n "${DOWNLOAD_CHUNKS:-}" ] && EXTRA+=(--download-chunks "$DOWNLOAD_CHUNKS")
if [ -z "${BENCH:-}" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product tessera-bench >/dev/null
  BENCH=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/tessera-bench
fi
OUT=$(mktemp)
bash scripts/bench_header.sh "$BENCH"
for config in $CONFIGS; do
  n=${config%x*}; k=${config#*x}
  echo "## N=$n K=$k, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$BENCH" federation-round --parameters "$n" --clients "$k" --rounds "$ROUNDS" --client-processes \
    ${EXTRA[@]+"${EXTRA[@]}"} | tee -a "$OUT"
  for mode in ${COMPRESSION:-}; do
    up=${mode%/*}; down=none
    [ "$mode" != "$up" ] && down=${mode#*/}
    "$BENCH" federation-round --parameters "$n" --clients "$k" --rounds "$ROUNDS" --client-processes \
      --compression "$up" --download-compression "$down" ${EXTRA[@]+"${EXTRA[@]}"} | tee -a "$OUT"
  done
  if [ "${SECAGG:-0}" = 1 ]; then
    "$BENCH" federation-round --parameters "$n" --clients "$k" --rounds "$ROUNDS" --client-processes \
      --secure-aggregation --neighbours "${SECAGG_NEIGHBOURS:-0}" ${EXTRA[@]+"${EXTRA[@]}"} | tee -a "$OUT"
  fi
  if [ "${FLOWER:-0}" = 1 ]; then
    FLOWER_VENV=${FLOWER_VENV:-/tmp/venv-flwr}
    mkdir -p /tmp/tessera-flwr && (cd /tmp/tessera-flwr && "$FLOWER_VENV/bin/python" "$OLDPWD/$SHARED/fl_flwr_legacy.py" \
      --params "$n" --clients "$k" --rounds "$ROUNDS" --out /tmp/tessera-flwr/flwr.jsonl) \
      | sed 's/^{/{"bench":"flower-legacy", /' | tee -a "$OUT"
  fi
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("\n| N | K | mode | Tessera first round (s from start) | Tessera median round (s) | server peak RSS (MiB) "
      "| client peak RSS max / total (MiB) | client bytes written per round (MB) | Flower legacy median round (s) "
      "| Flower server peak (MiB) |")
print("|---|---|---|---|---|---|---|---|---|---|")
summaries = [r for r in rows if r.get("bench") == "federation-round-summary"]
for summary in summaries:
    n, k, secure = summary["parameters"], summary["clients"], summary.get("secure_aggregation", False)
    compression = summary.get("compression", "none")
    download = summary.get("download_compression", "none")
    rounds = [r for r in rows if r.get("bench") == "federation-round" and r["parameters"] == n and r["clients"] == k
              and r.get("secure_aggregation", False) == secure and r.get("compression", "none") == compression
              and r.get("download_compression", "none") == download]
    later = [r["seconds"] for r in rounds[1:]] or [rounds[0]["seconds"]]
    flower = next((r for r in rows if r.get("bench") == "flower-legacy" and r["params"] == n and r["clients"] == k), None)
    plain = not secure and compression == "none" and download == "none"
    fl_round = f'{statistics.median(flower["period_s_all"] or flower["round_s_all"]):.3f}' if flower and "round_s_all" in flower and plain else "–"
    fl_peak = f'{flower["peak_rss_server_MB"]:.0f}' if flower and "peak_rss_server_MB" in flower and plain else "–"
    mode = ("SecAgg" + (f' k={summary["neighbours"]}' if summary.get("neighbours") else "")) if secure else "FedAvg"
    if compression != "none":
        mode += f" {compression}"
    if download != "none":
        mode += f", download {download}"
    written = summary.get("client_written_bytes_total", -1)
    per_round = f'{written / summary["rounds"] / 1e6:.1f}' if written and written > 0 else "–"
    print(f'| {n:,} | {k} | {mode} | {rounds[0]["seconds"]:.3f} | {statistics.median(later):.3f} | '
          f'{summary["server_peak_rss_mb"]:.0f} | {summary["client_peak_rss_mb_max"]:.0f} / '
          f'{summary["client_peak_rss_mb_total"]:.0f} | {per_round} | {fl_round} | {fl_peak} |')
PY
rm -f "$OUT"

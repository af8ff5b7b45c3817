#!/usr/bin/env bash
# A federated study over real network conditions (#17 part 7; README "Real network conditions"): the server and each
# site run in their own network namespace, joined through a shaped link each to a bridge in a "wan" namespace;
# `tessera provision`, `tessera server`, one `tessera client` per site and `tessera admin submit --watch`, as an
# operator runs them. One site's link is cut while it uploads: down from its "round R: training" log line, so the
# upload after its "round R: done" line starts on a dead link, and up again CUT_SECONDS after that line. Then the
# server's own records are checked: the job finished, every round closed exactly once with every site, every result
# of a round's closing attempt counted once (audit log), one round record and one checkpoint per round
# (state/server.sqlite). Round times are printed and written to OUT/summary.json.
#
# Link emulation, per site link and direction (the server's own link is not shaped):
#   rate   tbf (token bucket), RATE (default 100mbit)
#   loss   netem when the kernel has it; else a cls_bpf program dropping LOSS_PERCENT of packets at random (needs
#          clang with the bpf target); else none, said
#   delay  netem when the kernel has it; else a userspace TCP relay in the wan namespace that holds every byte
#          DELAY_MS each way (scripts/netns_delay_relay.py; TCP's acknowledgements are not delayed); else none, said
#
# Needs root and `ip netns`; exits 77 with "SKIP: <reason>" otherwise. Every namespace it made is removed on exit.
# Settings (environment): TESSERA (binary, default .build/debug/tessera), DATA (sample-data), ROUNDS (3), RATE,
# DELAY_MS (50), LOSS_PERCENT (1), CUT_ROUND (2), CUT_SECONDS (3), OUT (a new /tmp folder), DEADLINE (300 s, the
# whole job), NETEM (auto|off: off forces the fallbacks), RATE=none (no rate limit), CUT_ROUND=0 (no cut), ENCODER
# ("[4, 8]") and BOTTLENECK (8): the U-Net's channels (a larger model: more bytes on the links).
set -euo pipefail
# A parent that blocks signals (the Swift test runner does) passes its signal mask on to its children: run again with
# none blocked, so that SIGTERM reaches this script's trap and the processes it starts.
if [ -z "${TESSERA_NETNS_UNMASKED:-}" ] && command -v python3 >/dev/null; then
  export TESSERA_NETNS_UNMASKED=1
  exec python3 -c 'import os, signal, sys
signal.pthread_sigmask(signal.SIG_SETMASK, [])
os.execv("/bin/bash", ["bash"] + sys.argv[1:])' "$0" "$@"
fi
cd "$(dirname "$0")/.."

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
say() { echo "[netns $(date -u +%H:%M:%S.%3N)] $*"; }

bin=${TESSERA:-.build/debug/tessera}
data=${DATA:-sample-data}
rounds=${ROUNDS:-3}
rate=${RATE:-100mbit}
delay_ms=${DELAY_MS:-50}
loss_percent=${LOSS_PERCENT:-1}
cut_round=${CUT_ROUND:-2}
cut_seconds=${CUT_SECONDS:-3}
deadline=${DEADLINE:-300}
netem_mode=${NETEM:-auto}
encoder=${ENCODER:-[4, 8]}
bottleneck=${BOTTLENECK:-8}
sites=(community-hospital research-center treatment-center)

[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces (uid $(id -u))"
command -v ip >/dev/null || skip "no 'ip' command (iproute2)"
command -v tc >/dev/null || skip "no 'tc' command (iproute2)"
command -v python3 >/dev/null || skip "no python3 (the checks and the delay relay use it)"
[ -x "$bin" ] || fail "no tessera binary at $bin (swift build --product tessera, or set TESSERA)"
for s in "${sites[@]}"; do [ -d "$data/$s" ] || fail "no site folder $data/$s"; done
[ "$cut_round" -ge 0 ] && [ "$cut_round" -le "$rounds" ] || fail "CUT_ROUND must be in 0...$rounds (0: no cut)"

prefix="tsn$$"
wan="$prefix-wan"
srv="$prefix-srv"
probe="$prefix-probe"
ip netns add "$probe" 2>/dev/null || skip "'ip netns add' does not work here (no CAP_SYS_ADMIN or no netns support)"
if ! ip -n "$probe" link add probe-br type bridge 2>/dev/null ||
  ! ip -n "$probe" link add probe-a type veth peer name probe-b 2>/dev/null; then
  ip netns del "$probe"
  skip "this kernel or container cannot make bridges or veth pairs in a network namespace"
fi
ip netns del "$probe"

out=${OUT:-$(mktemp -d /tmp/tessera-netns.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
data=$(cd "$data" && pwd)

namespaces=()
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  local end=$((SECONDS + 15)) # SIGTERM first (the server shuts down gracefully), SIGKILL for what lingers
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until FILE has a line matching the extended regex PATTERN; fails after SECONDS or when PID (if given) ends.
wait_for_line() {
  local file=$1 pattern=$2 seconds=$3 pid=${4:-}
  local end=$((SECONDS + seconds))
  until grep -Eq -- "$pattern" "$file" 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "no line /$pattern/ in $file within $seconds s"
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then fail "process $pid ended before /$pattern/ in $file"; fi
    sleep 0.05
  done
}

# --- network: wan namespace with a bridge, one namespace per participant, a veth pair each ---------------------
ip netns add "$wan"
namespaces+=("$wan")
ip -n "$wan" link add br0 type bridge
ip -n "$wan" addr add 10.213.0.2/24 dev br0
ip -n "$wan" link set br0 up
ip -n "$wan" link set lo up

# join NS PORT ADDRESS: NS's eth0 (ADDRESS/24) to the bridge through port PORT in the wan namespace.
join() {
  local ns=$1 port=$2 address=$3
  ip netns add "$ns"
  namespaces+=("$ns")
  ip link add eth0 netns "$ns" type veth peer name "$port" netns "$wan"
  ip -n "$ns" addr add "$address/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$wan" link set "$port" master br0 up
}
join "$srv" p-server 10.213.0.1
for i in "${!sites[@]}"; do join "$prefix-s$((i + 1))" "p-s$((i + 1))" "10.213.0.$((11 + i))"; done

# What the kernel can emulate.
netem=no
if [ "$netem_mode" != off ] && ip netns exec "$srv" tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
  ip netns exec "$srv" tc qdisc del dev lo root
  netem=yes
fi
loss_object=""
if [ "$netem" = no ] && [ "$loss_percent" != 0 ]; then
  clang=$(command -v clang || true)
  [ -n "$clang" ] || clang=$(ls /opt/swift/usr/bin/clang 2>/dev/null || true)
  per_million=$(python3 -c "import sys; print(round(float(sys.argv[1]) * 10000))" "$loss_percent")
  if [ -n "$clang" ] && "$clang" -O2 -target bpf -DLOSS_PER_MILLION="$per_million" -c scripts/netns_loss.bpf.c \
    -o "$out/loss.bpf.o" 2>"$out/loss.bpf.log"; then
    loss_object=$out/loss.bpf.o
  fi
fi

# shape NS DEV: rate, loss and (netem) delay on DEV's egress in NS.
shape() {
  local ns=$1 dev=$2
  if [ "$netem" = yes ]; then
    ip netns exec "$ns" tc qdisc add dev "$dev" root netem delay "${delay_ms}ms" rate "$rate" loss "${loss_percent}%"
    return
  fi
  [ "$rate" = none ] || ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "$rate" burst 64kb latency 100ms
  if [ -n "$loss_object" ]; then
    ip netns exec "$ns" tc qdisc add dev "$dev" clsact
    ip netns exec "$ns" tc filter add dev "$dev" egress bpf direct-action obj "$loss_object" sec classifier
  fi
}
for i in "${!sites[@]}"; do
  shape "$prefix-s$((i + 1))" eth0 # the site's upload direction
  shape "$wan" "p-s$((i + 1))"     # its download direction
done

emulated="rate $rate (tbf)"
[ "$rate" != none ] || emulated="rate not limited"
server_address=10.213.0.1:8443
if [ "$netem" = yes ]; then
  emulated="netem: delay ${delay_ms} ms, rate $rate, loss ${loss_percent} %, each direction of each site link"
else
  if [ "$loss_percent" = 0 ]; then
    emulated+=", no loss"
  elif [ -n "$loss_object" ]; then
    emulated+=", loss ${loss_percent} % (cls_bpf)"
  else
    emulated+=", no loss (no netem, no clang with the bpf target: see $out/loss.bpf.log)"
  fi
  if [ "$delay_ms" != 0 ]; then
    ip netns exec "$wan" python3 scripts/netns_delay_relay.py 10.213.0.2 8443 10.213.0.1 8443 "$delay_ms" \
      >"$out/relay.log" 2>&1 &
    pids+=($!)
    wait_for_line "$out/relay.log" "relay listening" 30 "${pids[-1]}"
    server_address=10.213.0.2:8443
    emulated+=", delay ${delay_ms} ms each way (userspace TCP relay: the kernel has no netem)"
  fi
fi
say "network: server 10.213.0.1, sites 10.213.0.11-$((10 + ${#sites[@]})), bridge in $wan; $emulated"

# --- the federation: provision, server, clients, job ----------------------------------------------------------
cat >"$out/project.yaml" <<EOF
name: netns-study
server: {name: server, host: localhost, port: 8443}
sites: [$(IFS=,; echo "${sites[*]}" | sed 's/,/, /g')]
admins: [lead]
EOF
"$bin" provision "$out/project.yaml" --output "$out/kits" >"$out/provision.log" 2>&1 ||
  fail "tessera provision failed: $(cat "$out/provision.log")"

# The small pipeline of the end-to-end tests (Tests/EndToEndTests/ProcessCluster.swift): 2-D U-Net (default [4, 8],
# 21.7 kB of float32 weights) on 32×32×16 voxels of 8 mm, one short epoch a round; every site must answer.
cat >"$out/pipeline.yaml" <<EOF
preprocessing:
  orientation: RAS
  spacing: [8.0, 8.0, 8.0]
  crop_pad: {mode: foreground, threshold: -500, margin: [2, 2, 0], shape: [32, 32, 16], fill: -1024}
  window: soft_tissue
  scale: unit
model:
  {architecture: unet2d, encoder_channels: $encoder, bottleneck_channels: $bottleneck, segments: [1], seed: 7,
   segment_names: {1: [Liver, LIVER_GTV]}, nifti_labels: "labels/{PatientID}.nii.gz"}
training:
  epochs: 1
  batch_size: 4
  slices_per_epoch: 8
  validation_fraction: 0.25
  loss: dice_ce
  seed: 1
  optimizer: {name: adam, learning_rate: 0.01}
federation:
  rounds: $rounds
  local_epochs: 1
  min_clients: ${#sites[@]}
  round_timeout_seconds: 120
  grace_period_seconds: 5
  max_round_retries: 2
  strategy: fedavg
  sites: [$(IFS=,; echo "${sites[*]}" | sed 's/,/, /g')]
EOF

ip netns exec "$srv" "$bin" server --kit "$out/kits/server" --state "$out/state" --host 0.0.0.0 --port 8443 \
  >"$out/server.log" 2>&1 &
pids+=($!)
server_pid=$!
wait_for_line "$out/server.log" "listening on" 60 "$server_pid"

# The first site's client runs under scripts/netns_link_cut.py, which cuts its link while it uploads round CUT_ROUND:
# down when the site logs "round R: training" (the site paused for the milliseconds the cut takes, so the cut always
# comes first), so the upload after its "round R: done" line starts on a dead link; up CUT_SECONDS after that line.
cut_site=${sites[0]}
client_pids=()
for i in "${!sites[@]}"; do
  site=${sites[$i]}
  client=(ip netns exec "$prefix-s$((i + 1))" "$bin" client --kit "$out/kits/$site" --data "$data/$site"
    --server "$server_address" --once --retry-cap 1)
  if [ "$i" = 0 ]; then
    : >"$out/$site.log"
    python3 scripts/netns_link_cut.py "$out/$site.log" "$cut_round" "$cut_seconds" "$wan" p-s1 -- "${client[@]}" \
      >>"$out/$site.log" 2>&1 &
  else
    "${client[@]}" >"$out/$site.log" 2>&1 &
  fi
  pids+=($!)
  client_pids+=($!)
done

started=$(date +%s.%N)
ip netns exec "$srv" "$bin" admin --kit "$out/kits/lead" --server 127.0.0.1:8443 submit "$out/pipeline.yaml" \
  --name netns --watch >"$out/admin.log" 2>&1 &
pids+=($!)
admin_pid=$!
wait_for_line "$out/admin.log" "^job-" 60 "$admin_pid"
job=$(grep -Em1 "^job-[0-9]+$" "$out/admin.log")
say "submitted $job ($rounds rounds, ${#sites[@]} sites); following its events in $out/admin.log"

cut_at=0
up_at=0
if [ "$cut_round" != 0 ]; then
  wait_for_line "$out/$cut_site.log" "^netns-cut down" "$deadline" "${client_pids[0]}"
  cut_at=$(grep -m1 "^netns-cut down" "$out/$cut_site.log" | cut -d" " -f3)
  say "$cut_site is training round $cut_round: its link is down"
  wait_for_line "$out/$cut_site.log" "round $cut_round: done" "$deadline" "${client_pids[0]}"
  say "$cut_site trained round $cut_round and uploads over the dead link; up again in $cut_seconds s"
  wait_for_line "$out/$cut_site.log" "^netns-cut up" $((cut_seconds + 60)) "${client_pids[0]}"
  up_at=$(grep -m1 "^netns-cut up" "$out/$cut_site.log" | cut -d" " -f3)
  say "$cut_site's link is up again"
fi

end=$((SECONDS + deadline))
while kill -0 "$admin_pid" 2>/dev/null; do
  [ $SECONDS -lt $end ] || fail "the job did not end within $deadline s (see $out)"
  sleep 0.2
done
wait "$admin_pid" || fail "the job failed: $(tail -3 "$out/admin.log")"
finished=$(date +%s.%N)
for i in "${!client_pids[@]}"; do
  wait "${client_pids[$i]}" || fail "client ${sites[$i]} exited with status $? (see $out/${sites[$i]}.log)"
done

ip netns exec "$srv" "$bin" admin --kit "$out/kits/lead" --server 127.0.0.1:8443 logs "$job" --json \
  >"$out/audit.jsonl" 2>"$out/audit.err" || fail "admin logs failed: $(cat "$out/audit.err")"
ip netns exec "$srv" "$bin" admin --kit "$out/kits/lead" --server 127.0.0.1:8443 status "$job" --json \
  >"$out/status.json" 2>"$out/status.err" || fail "admin status failed: $(cat "$out/status.err")"
ip netns exec "$srv" "$bin" admin --kit "$out/kits/lead" --server 127.0.0.1:8443 download "$job" \
  -o "$out/job" >"$out/download.log" 2>&1 || fail "admin download failed: $(cat "$out/download.log")"

# --- the checks and the round times ---------------------------------------------------------------------------
python3 - "$out" "$job" "$rounds" "$cut_site" "$cut_round" "$cut_at" "$up_at" "$started" "$finished" "$emulated" \
  "$(IFS=,; echo "${sites[*]}")" <<'PY'
import datetime, json, os, re, sqlite3, sys
out, job, rounds, cut_site, cut_round, cut_at, up_at, started, finished, emulated, sites = sys.argv[1:]
rounds, cut_round, sites = int(rounds), int(cut_round), sites.split(",")
problems = []

def when(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()

entries = [json.loads(line) for line in open(os.path.join(out, "audit.jsonl")) if line.strip()]
events = [(when(e["time"]), e["detail"]) for e in entries if e["kind"] == "job-event"]
states = [e["detail"] for e in entries if e["kind"] == "job-state"]
if states[-1:] != ["finished"]:
    problems.append(f"job states {states}, not ending with finished")

# A retried round starts afresh (the coordinator opens new sums for each attempt): only the results of its last
# (closing) attempt count.
starts, first_starts, attempts, closes, accepted, refusals = {}, {}, {}, {}, {}, []
for t, detail in events:
    if m := re.match(r"round (\d+)(?: attempt \d+)? started at ", detail):
        r = int(m[1])
        starts[r] = t
        first_starts.setdefault(r, t)
        attempts[r] = attempts.get(r, 0) + 1
        accepted = {k: v for k, v in accepted.items() if k[0] != r}
        refusals = [x for x in refusals if x["round"] != r]
    elif m := re.match(r"round (\d+) closed \((.*?)\) with (.*)$", detail):
        closes.setdefault(int(m[1]), []).append((t, m[2], [s.strip() for s in m[3].split(",") if s.strip()]))
    elif m := re.match(r"round (\d+): result of (\S+) accepted", detail):
        accepted[(int(m[1]), m[2])] = accepted.get((int(m[1]), m[2]), 0) + 1
    elif m := re.match(r"round (\d+): (?:result of )?(\S+) (rejected|declined): (.*)$", detail):
        refusals.append({"round": int(m[1]), "site": m[2], "kind": m[3], "reason": m[4]})

resent = {}
for r in refusals:
    if "taken out with the round's sums" in r["reason"]:  # counted, then sent again (RefusalReason.resent)
        resent[(r["round"], r["site"])] = resent.get((r["round"], r["site"]), 0) + 1
if sorted(closes) != list(range(1, rounds + 1)):
    problems.append(f"rounds closed {sorted(closes)}, expected 1...{rounds}")
rows = []
for r in range(1, rounds + 1):
    closed = closes.get(r, [])
    if len(closed) != 1:
        problems.append(f"round {r} closed {len(closed)} times")
        continue
    t, reason, participants = closed[0]
    if len(set(participants)) != len(participants):
        problems.append(f"round {r}: a participant twice: {participants}")
    if sorted(participants) != sorted(sites):
        problems.append(f"round {r} closed with {participants}, not every site")
    for s in sites:
        counted = accepted.get((r, s), 0) - resent.get((r, s), 0)
        if counted != (1 if s in participants else 0):
            problems.append(f"round {r}: {s} counted {counted} times")
    rows.append({"round": r, "seconds": round(t - starts[r], 3), "attempts": attempts[r],
                 "seconds_from_first_attempt": round(t - first_starts[r], 3), "closed": reason,
                 "participants": participants})

db = sqlite3.connect(f"file:{os.path.join(out, 'state', 'server.sqlite')}?mode=ro", uri=True)
records = db.execute("SELECT round, participants FROM round WHERE job_id = ? ORDER BY round", (job,)).fetchall()
if [r for r, _ in records] != list(range(1, rounds + 1)):
    problems.append(f"round records {[r for r, _ in records]}, expected one per round 1...{rounds}")
checkpoints = sorted(f for f in os.listdir(os.path.join(out, "job")) if re.fullmatch(r"round-\d+\.safetensors", f))
if len(checkpoints) != rounds:
    problems.append(f"downloaded round checkpoints {checkpoints}")
status = json.load(open(os.path.join(out, "status.json")))[0]
if status["state"] != "finished" or status["completedRounds"] != rounds:
    problems.append(f"status {status['state']}, {status['completedRounds']} rounds")

cut_log = open(os.path.join(out, f"{cut_site}.log")).read()
cut = None
if cut_round:
    # The cut site's result of that round can only have come once its link was back: else the cut missed the upload.
    landed = [t for t, d in events if d.startswith(f"round {cut_round}: result of {cut_site} accepted")]
    if not landed or landed[-1] < float(up_at):
        problems.append(f"the cut missed the upload: {cut_site}'s round {cut_round} result accepted at {landed} "
                        f"(Unix s), its link back up at {up_at}")
    cut = {"site": cut_site, "round": cut_round,
           "after_job_start_seconds": round(float(cut_at) - float(started), 3),
           "down_seconds": round(float(up_at) - float(cut_at), 3),
           # The site logs failed attempts 1, 2, 4, 8, ...: the last one it logged.
           "site_failed_upload_attempts_logged": max(
               map(int, re.findall(r"upload failed \(attempt (\d+)\)", cut_log)), default=0)}
summary = {
    "job": job, "sites": sites, "rounds": rows, "emulation": emulated, "cut": cut,
    "refusals_in_closing_attempts": refusals,
    "model_bytes": os.path.getsize(os.path.join(out, "job", "global.safetensors")),
    "job_seconds": round(float(finished) - float(started), 3),
    "round_records": len(records), "checkpoints": len(checkpoints),
    "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
    "cores": os.cpu_count(), "problems": problems,
}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print(f"emulation: {emulated}")
for row in rows:
    retried = (f" (attempt {row['attempts']}; {row['seconds_from_first_attempt']:.2f} s from the first attempt)"
               if row["attempts"] > 1 else "")
    print(f"round {row['round']}: {row['seconds']:.2f} s{retried} ({row['closed']}) with "
          f"{', '.join(row['participants'])}")
print(f"job: {summary['job_seconds']:.1f} s from submission to its end; model {summary['model_bytes']} bytes; "
      + (f"cut: {cut_site} in round {cut_round} ({cut['down_seconds']:.1f} s down), "
         f"{cut['site_failed_upload_attempts_logged'] or 'no'} "
         "failed upload attempt(s) at the site; " if cut else "no cut; ")
      + f"refusals in the closing attempts: {[r['reason'] for r in refusals] or 'none'}")
print(f"round records {len(records)}, round checkpoints {len(checkpoints)}; "
      f"CPU {summary['cpu']} ({os.cpu_count()} cores)")
if problems:
    print("PROBLEMS:\n  " + "\n  ".join(problems))
    sys.exit(1)
print(f"OK: every round closed once with every site, every result counted once ({out}/summary.json)")
PY

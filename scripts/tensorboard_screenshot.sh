#!/usr/bin/env bash
# docs/tensorboard-federated.png (README "Operations"): a short federated study (`tessera simulate --tensorboard`:
# a server process and three site processes over loopback mutual TLS, each writing its TensorBoard event files), shown
# by TensorBoard itself (`tensorboard --logdir`, PyPI, in scripts/.venv-tensorboard as scripts/reference/
# tensorboard_golden.py pins it) and photographed by headless Chromium.
# Settings (environment): TESSERA (binary; default the release build if present, else the debug one), ROUNDS (10),
# OUT (out/tensorboard-screenshot), PNG (docs/tensorboard-federated.png), PORT (6006), CHROMIUM (chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
bin=${TESSERA:-}
if [ -z "$bin" ]; then
  bin=.build/release/tessera
  [ -x "$bin" ] || bin=.build/debug/tessera
fi
[ -x "$bin" ] || fail "no tessera binary (swift build --product tessera, or set TESSERA)"
rounds=${ROUNDS:-10}
out=${OUT:-out/tensorboard-screenshot}
png=${PNG:-docs/tensorboard-federated.png}
port=${PORT:-6006}
chromium=${CHROMIUM:-chromium}
command -v "$chromium" >/dev/null || fail "no $chromium (apt-get install chromium)"

venv=scripts/.venv-tensorboard
if [ ! -x "$venv/bin/tensorboard" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q tensorboard==2.21.0
fi

rm -rf "$out"
mkdir -p "$out"
# The shipped segmentation pipeline made small enough for a debug build: 5.6 mm voxels in-plane, 64×64×24, a [8, 16]
# U-Net, 128 slices a local epoch, one local epoch a round.
cat >"$out/pipeline.yaml" <<EOF
preprocessing:
  orientation: RAS
  spacing: [5.6, 5.6, 8.0]
  crop_pad: {mode: foreground, threshold: -500, margin: [2, 2, 0], shape: [64, 64, 24], fill: -1024}
  window: soft_tissue
  scale: unit
model:
  {architecture: unet2d, encoder_channels: [8, 16], bottleneck_channels: 32, segments: [1], seed: 7,
   segment_names: {1: [Liver, LIVER_GTV]}, nifti_labels: "labels/{PatientID}.nii.gz"}
training:
  epochs: 1
  batch_size: 8
  slices_per_epoch: 128
  foreground_fraction: 0.7
  validation_fraction: 0.25
  loss: dice_ce
  seed: 20261121
  optimizer: {name: adam, learning_rate: 0.005}
federation:
  rounds: $rounds
  local_epochs: 1
  min_clients: 3
  round_timeout_seconds: 600
  grace_period_seconds: 60
  strategy: fedavg
  sites: [community-hospital, research-center, treatment-center]
EOF
"$bin" simulate "$out/pipeline.yaml" --data sample-data --output "$out/simulate" --no-baselines \
  --tensorboard "$out/tensorboard" | tee "$out/simulate.log"

"$venv/bin/tensorboard" --logdir "$out/tensorboard" --host 127.0.0.1 --port "$port" >"$out/tensorboard.log" 2>&1 &
tb=$!
trap 'kill $tb 2>/dev/null || true' EXIT
end=$((SECONDS + 60))
until python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
  "http://127.0.0.1:$port/data/runs" 2>/dev/null; do
  [ $SECONDS -lt $end ] || fail "tensorboard did not answer within 60 s: $(tail -5 "$out/tensorboard.log")"
  kill -0 $tb 2>/dev/null || fail "tensorboard ended: $(tail -5 "$out/tensorboard.log")"
  sleep 0.2
done
# The scalars dashboard, no smoothing, filtered to: the sites' training loss of each local epoch (their own runs),
# Dice (the server's run: the sample-weighted mean; its sites/<site> runs: as each site reported it) and round times.
url="http://127.0.0.1:$port/?darkMode=false#scalars&tagFilter=metrics%2Fdice%24%7Cepoch_train_loss%7Cround%2Fduration"
url+="&_smoothingWeight=0"
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,900 \
  --virtual-time-budget=20000 --screenshot="$png" "$url" 2>"$out/chromium.log" ||
  fail "chromium failed: $(tail -5 "$out/chromium.log")"
echo "wrote $png ($(stat -c %s "$png") bytes) from $url"

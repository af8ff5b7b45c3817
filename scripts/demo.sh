#!/usr/bin/env bash
# `make demo`: read each sample site, report it, convert its first study (CT + DICOM SEG) to NIfTI, run the cohort
# statistics query over the three sites, run the federated segmentation study, and segment a study with its model.
# (Sites and server share one process for now; the gRPC + mTLS transport between processes is being built.)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TESSERA:-$(swift build -c release --show-bin-path)/tessera}
out=out/demo
mkdir -p "$out"
for site in community-hospital research-center treatment-center; do
  echo "== $site"
  "$bin" inspect "sample-data/$site" --json > "$out/$site-inspect.json"
  read -r uid seg < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
s = r["series"][0]
print(s["seriesInstanceUID"], s["segmentations"][0])
problems = sum(len(x["problems"]) for x in r["series"])
print("%d series, %d SEGs, %d files skipped, %d problems" % (len(r["series"]), len(r["segmentations"]), len(r["skipped"]), problems), file=sys.stderr)
' "$out/$site-inspect.json")
  "$bin" convert "sample-data/$site" --series "$uid" --output "$out/$site-ct.nii.gz"
  "$bin" convert "sample-data/$site" --segmentation "$seg" --output "$out/$site-labels.nii.gz"
done


echo "== cohort statistics over the three sites (differential privacy, secure sums; in-process for now)"
rm -f "$out/privacy-ledger.sqlite"
"$bin" stats pipelines/cohort-statistics.yaml --policy pipelines/site-policy.yaml --ledger "$out/privacy-ledger.sqlite" \
  --seed 7 --output "$out/stats" \
  --data sample-data/community-hospital --data sample-data/research-center --data sample-data/treatment-center

echo "== a federated segmentation study over the three sites (tessera simulate), with local-only and centralised baselines"
"$bin" simulate pipelines/segmentation-unet2d.yaml --data sample-data --output "$out/simulate"

echo "== segment a study with the federated model (DICOM SEG out, read back)"
model="$out/simulate/global.safetensors"
"$bin" predict --model "$model" --pipeline pipelines/segmentation-unet2d.yaml sample-data/research-center/sub-001/ct \
  --output "$out/research-center-sub-001-prediction.dcm"
"$bin" convert sample-data/research-center/sub-001/ct --segmentation "$out/research-center-sub-001-prediction.dcm" \
  --output "$out/research-center-sub-001-prediction.nii.gz"
echo "Everything is in $out/: NIfTI, inspection JSON, stats/statistics.html, simulate/report.html, the global model"

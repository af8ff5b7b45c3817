#!/usr/bin/env bash
# `make demo`: read each sample site, report it, convert its first study (CT + its labels: a DICOM SEG, an RTSTRUCT or
# the site's NIfTI label map) to NIfTI, run the cohort statistics query over the three sites, run the federated
# segmentation study, the learning-quality study (FedBN and fine-tuning against local-only and centralised models
# trained to convergence), and segment a study with its model;
# then a federated classification study on the sites' screening cohorts (labels from each site's CSV).
# The federated steps (`tessera simulate`) provision a throw-away project and run a `tessera server` process and one
# `tessera client` process per site over loopback mutual TLS.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TESSERA:-$(swift build -c release --show-bin-path)/tessera}
out=out/demo
mkdir -p "$out"
# The sites keep their labels as real sites do: community-hospital DICOM SEGs, research-center RT Structure Sets
# (ROI names mapped to segments by the pipeline's model.segment_names), treatment-center NIfTI label maps
# (model.nifti_labels). Each site's first study: CT to NIfTI, its labels to NIfTI (or the site's NIfTI checked).
for site in community-hospital research-center treatment-center; do
  echo "== $site"
  "$bin" inspect "sample-data/$site" --json > "$out/$site-inspect.json"
  read -r uid kind labels < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
s = r["series"][0]
if s["segmentations"]:
    kind, path = "seg", s["segmentations"][0]
elif s["structureSets"]:
    kind, path = "rtstruct", s["structureSets"][0]
else:
    kind, path = "nifti", "labels/%s.nii.gz" % s["tags"]["PatientID"]
print(s["seriesInstanceUID"], kind, path)
problems = sum(len(x["problems"]) for x in r["series"])
print("%d series, %d SEGs, %d RTSTRUCTs, %d files skipped (not DICOM), %d problems" % (len(r["series"]),
      len(r["segmentations"]), len(r["structureSets"]), len(r["skipped"]), problems), file=sys.stderr)
' "$out/$site-inspect.json")
  "$bin" convert "sample-data/$site" --series "$uid" --output "$out/$site-ct.nii.gz"
  case "$kind" in
    seg) "$bin" convert "sample-data/$site" --segmentation "$labels" --output "$out/$site-labels.nii.gz" ;;
    rtstruct) "$bin" convert "sample-data/$site" --rtstruct "$labels" --pipeline pipelines/segmentation-unet2d.yaml \
      --output "$out/$site-labels.nii.gz" ;;
    nifti) "$bin" inspect "sample-data/$site" --nifti-labels 'labels/{PatientID}.nii.gz' | grep -A 1 '^NIfTI label maps'
      cp "sample-data/$site/$labels" "$out/$site-labels.nii.gz" ;;
  esac
done

echo "== cohort statistics over the three sites: server + 3 site processes, differential privacy, secure sums"
"$bin" simulate pipelines/cohort-statistics.yaml --data sample-data --policy pipelines/site-policy.yaml --output "$out/stats"

echo "== a federated segmentation study: server + 3 site processes over mTLS (its baselines are in the next study)"
"$bin" simulate pipelines/segmentation-unet2d.yaml --data sample-data --output "$out/simulate" --no-baselines

echo "== learning quality: personalised FL (FedBN + local fine-tuning) against local-only and centralised models"
echo "   trained to convergence (epochs chosen on set-aside training patients, never the held-out ones, then a refit"
echo "   on all training patients); server + 3 site processes"
"$bin" simulate pipelines/segmentation-unet2d-fedbn.yaml --data sample-data --output "$out/simulate-fedbn"
python3 - "$out/simulate-fedbn/metrics.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
quality = report["learningQuality"]
print("Learning quality: Dice on each site's held-out patients (the target and its verdict computed by tessera simulate)")
print("%-20s%-40s%-11s%-14s%s" % ("site", "best local-only", "federated", "personalised", "centralised"))
cell = lambda v: "-" if v is None else "%.3f" % v
for s in quality["sites"]:
    print("%-20s%-40s%-11s%-14s%s" % (s["site"], "%.3f (%s)" % (s["bestLocal"], s["bestLocalModel"]),
          cell(s.get("federated")), cell(s.get("personalised")), cell(s["centralised"])))
for row in report["comparison"]:
    if row.get("convergence"):
        c = row["convergence"]
        print("  %s: %d epoch(s) chosen of %d run on set-aside training patients (stopped by %s), then refit" % (
            row["model"], c["bestEpoch"], c["epochs"], c["stoppedBy"]))
rule = "≥ every local-only model and ≥ centralised − %.2f at every site" % quality["tolerance"]
names = {"federated": "the federated global model", "personalised": "the personalised models"}
if quality["metBy"]:
    print("learning-quality target (%s): MET by %s" % (rule, " and ".join(names[k] for k in quality["metBy"])))
else:
    print("learning-quality target (%s): NOT MET: %s" % (rule, "; ".join(quality["shortfalls"])))
PY

echo "== the same study with patient-level DP-SGD: each site's ledger charges every round (server + 3 site processes)"
"$bin" simulate pipelines/segmentation-unet2d-dp.yaml --data sample-data --output "$out/simulate-dp" --no-baselines
python3 - "$out/simulate/metrics.json" "$out/simulate-dp/metrics.json" <<'PY'
import json, sys
plain, dp = (json.load(open(p)) for p in sys.argv[1:3])
def epsilon(report):
    spent = {}
    for r in report["rounds"]:
        spent.update(r.get("epsilon", {}))
    return spent
print("Federated model: Dice on each site's held-out patients, and the ε each site's ledger charged (δ = 1e-5)")
print("%-28s" % "run" + "".join("%-24s" % s for s in plain["sites"]) + "mean Dice")
for name, report in (("plain FedAvg", plain), ("DP-SGD (σ 1.0, C 1, B 2)", dp)):
    row, spent = report["comparison"][0], epsilon(report)
    cells = ["%.3f, ε %s" % (row["scores"][s], ("%.3g" % spent[s]) if s in spent else "none") for s in report["sites"]]
    print("%-28s" % name + "".join("%-24s" % c for c in cells) + "%.3f" % row["mean"])
PY

echo "== the same study with secure aggregation: the server sees only the sum of the masked updates (server + 3 sites)"
"$bin" simulate pipelines/segmentation-unet2d-secagg.yaml --data sample-data --output "$out/simulate-secagg" --no-baselines
python3 - "$out/simulate/metrics.json" "$out/simulate-secagg/metrics.json" <<'PY'
import json, sys
plain, secure = (json.load(open(p)) for p in sys.argv[1:3])
print("Federated model: Dice on each site's held-out patients, plain FedAvg and with secure aggregation")
print("%-28s" % "run" + "".join("%-20s" % s for s in plain["sites"]) + "mean Dice   seconds a round")
for name, report in (("plain FedAvg", plain), ("secure aggregation", secure)):
    row = report["comparison"][0]
    seconds = sorted(r["seconds"] for r in report["rounds"])[len(report["rounds"]) // 2]
    print("%-28s" % name + "".join("%-20.3f" % row["scores"][s] for s in report["sites"]) + "%-12.3f%.1f"
          % (row["mean"], seconds))
PY
echo "== a federated classification study (liver lesion or not): 3-D ResNet, each site's labels.csv beside its screening cohort"
"$bin" simulate pipelines/classification-resnet3d.yaml --data sample-data/classification --output "$out/classify"
"$bin" predict --model "$out/classify/global.safetensors" --pipeline pipelines/classification-resnet3d.yaml \
  sample-data/classification/research-center --output "$out/classify/research-center-predictions.csv" | tail -n 1

echo "== segment a study with the federated model (DICOM SEG out, read back)"
model="$out/simulate/global.safetensors"
"$bin" predict --model "$model" --pipeline pipelines/segmentation-unet2d.yaml sample-data/research-center/sub-001/ct \
  --output "$out/research-center-sub-001-prediction.dcm"
"$bin" convert sample-data/research-center/sub-001/ct --segmentation "$out/research-center-sub-001-prediction.dcm" \
  --output "$out/research-center-sub-001-prediction.nii.gz"
echo "Everything is in $out/: NIfTI, inspection JSON, stats/statistics.html, simulate/report.html, the global model,"
echo "classify/report.html and the per-study predictions (classify/research-center-predictions.csv and .json)"

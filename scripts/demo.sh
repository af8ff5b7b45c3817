#!/usr/bin/env bash
# `make demo`, today: read each sample site, report it, and convert its first study (CT + DICOM SEG) to NIfTI.
# (The federated study this command will run is not built yet; see README.md, "Status".)
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
echo "NIfTI files and inspection reports are in $out/"

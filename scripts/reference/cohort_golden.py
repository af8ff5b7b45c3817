#!/usr/bin/env python3
"""Exact cohort statistics over sample-data/ with pydicom + numpy: the reference for FederatedAnalytics.

What
    Runs the query Tests/FederatedAnalyticsTests/Golden/reference-query.yaml over each site of sample-data/ with
    no noise and minimum count 1, computing every statistic from scratch (pydicom volumes and SEG labels through
    dicom_golden.py's readers), and writes Tests/FederatedAnalyticsTests/Golden/cohort_golden.json: per site and
    for all sites together (plain sums of the per-site primitives, which is what the secure sum yields).

How to run
    python3 scripts/reference/cohort_golden.py [SAMPLE_DATA] [QUERY_YAML] [OUTPUT_JSON]
    (uses the venv of dicom_golden.py, plus PyYAML)

Definitions (the Swift code implements the same)
    records     unit patient: one series per patient (earliest study, first series); unit voxel: the same records.
    clipping    numeric values are clipped into bounds [L, U]; m = (L + U) / 2.
    counts      [records with a value, records without].
    sum         Σ(clip(x) − m); reported sum = that + m·n; mean = m + Σ(clip(x) − m)/n, clamped to [L, U].
    variance    Σ(clip(x) − c)² / (n − 1), c = the global mean (for a single site's own figures, re-centred on its
                own mean: Σ(x − c)² − n(m_site − c)²).
    histogram   bin = floor((clip(x) − L) / (U − L) · bins), clamped to [0, bins − 1].
    unit voxel  per record: histogram of the clipped float32 HU values inside the label, divided by their count;
                summed over records; count = records with at least one voxel.
    min / max   lower edge of the first / upper edge of the last bin with count ≥ k (k = 1 here).
    quantiles   linear interpolation inside bins of the (clamped) histogram: target = level·total.
    frequencies listed categories in order then "other"; without a list, the sorted union of the names every site
                has (sites whose policy reveals names), then "other".
    images      hu-in-body: HU > −500; hu-in-label:N: label == N (no SEG: missing); volume-ml:N: voxels × voxel
                volume (mm³) / 1000 (segment absent from the SEG: 0 mL).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
EXTRA_REQUIREMENTS = ["PyYAML==6.0.3"]
import dicom_golden as dg  # noqa: E402  (creates/uses the venv and re-executes there)

import json  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def parse_age(text):
    t = str(text).strip()
    if len(t) != 4 or not t[:3].isdigit():
        return None
    n = float(t[:3])
    return {"Y": n, "M": n / 12, "W": n * 7 / 365.25, "D": n / 365.25}.get(t[3])


def load_site(folder: Path):
    scan = dg.scan_folder(folder)
    series = {uid: dg.build_series(uid, files) for uid, files in scan.images.items()}
    labels = {}
    for path, ds in scan.segs:
        seg = dg.build_seg(ds, series)
        labels[seg.referenced_series] = seg
    records = []
    for uid, files in scan.images.items():
        ds = files[0][1]
        records.append({
            "patient": str(ds.get("PatientID", "")), "date": str(ds.get("StudyDate", "")),
            "study": str(ds.StudyInstanceUID), "series_number": int(ds.get("SeriesNumber", 0) or 0), "uid": uid,
            "ds": ds, "volume": series[uid], "seg": labels.get(uid),
        })
    records.sort(key=lambda r: (r["patient"], r["date"], r["study"], r["series_number"], r["uid"]))
    chosen, seen = [], set()
    for r in records:
        if r["patient"] in seen:
            continue
        seen.add(r["patient"])
        chosen.append(r)
    return chosen


def tag_number(r, feature):
    ds = r["ds"]
    if feature == "PatientAge":
        return parse_age(ds.get("PatientAge", "")) if "PatientAge" in ds else None
    if feature == "SliceThickness":
        return float(ds.SliceThickness) if "SliceThickness" in ds else None
    if feature == "KVP":
        return float(ds.KVP) if "KVP" in ds else None
    if feature == "PixelSpacing":
        ps = [float(v) for v in ds.PixelSpacing]
        return (ps[0] + ps[1]) / 2
    if feature == "StudyYear":
        return float(str(ds.StudyDate)[:4])
    raise KeyError(feature)


def tag_category(r, feature):
    v = str(r["ds"].get(feature, "")).strip()
    return v or None


def image_mask(r, feature):
    vol = r["volume"].volume
    if feature == "hu-in-body":
        return vol > -500
    seg = r["seg"]
    if seg is None:
        return None
    n = int(feature.split(":")[1])
    return seg.labels == n


def voxel_volume_mm3(r):
    sv = r["volume"]
    a = sv.affine_lps()[:3, :3]
    return abs(np.linalg.det(a))


def primitives(records, fq, centre=None, category_list=None):
    feature, stats = fq["feature"], set(fq["statistics"])
    unit = fq.get("unit", "patient")
    p = {"counts": [0.0, 0.0]}
    categorical = feature in ("PatientSex", "Manufacturer", "ManufacturerModelName", "Modality", "ConvolutionKernel")
    if categorical:
        counts = {}
        for r in records:
            c = tag_category(r, feature)
            if c is None:
                p["counts"][1] += 1
            else:
                p["counts"][0] += 1
                counts[c] = counts.get(c, 0) + 1
        listed = fq.get("categories") or category_list or []
        p["names"] = listed + ["other"]
        p["frequencies"] = [float(counts.get(c, 0)) for c in listed] + [float(sum(v for k, v in counts.items() if k not in listed))]
        return p
    lo, hi = fq["bounds"]
    bins = fq.get("bins", 0)
    mid = (lo + hi) / 2
    if unit == "voxel":
        hist = np.zeros(bins)
        for r in records:
            mask = image_mask(r, feature)
            values = None if mask is None else r["volume"].volume[mask].astype(np.float64)
            if values is None or values.size == 0:
                p["counts"][1] += 1
                continue
            p["counts"][0] += 1
            idx = np.clip(np.floor((np.clip(values, lo, hi) - lo) / (hi - lo) * bins), 0, bins - 1).astype(int)
            hist += np.bincount(idx, minlength=bins) / values.size
        p["histogram"] = hist.tolist()
        return p
    values = []
    for r in records:
        if feature.startswith("hu-in"):
            mask = image_mask(r, feature)
            v = None
            if mask is not None and mask.any():
                v = float(r["volume"].volume[mask].astype(np.float64).mean())
        elif feature.startswith("volume-ml"):
            mask = image_mask(r, feature)
            v = None if mask is None else float(mask.sum()) * voxel_volume_mm3(r) / 1000
        else:
            v = tag_number(r, feature)
        if v is None or not math.isfinite(v):
            p["counts"][1] += 1
        else:
            values.append(min(max(v, lo), hi))
    p["counts"][0] = float(len(values))
    if stats & {"sum", "mean", "variance", "stddev"}:
        p["sum"] = float(sum(v - mid for v in values))
    if centre is not None and stats & {"variance", "stddev"}:
        p["squared_deviations"] = float(sum((v - centre) ** 2 for v in values))
    if stats & {"histogram", "quantiles", "min", "max"}:
        hist = [0.0] * bins
        for v in values:
            hist[min(bins - 1, max(0, int(math.floor((v - lo) / (hi - lo) * bins))))] += 1
        p["histogram"] = hist
    return p


def derive(fq, p, k=1):
    stats, unit = set(fq["statistics"]), fq.get("unit", "patient")
    out = {}
    count, missing = max(0.0, p["counts"][0]), max(0.0, p["counts"][1])
    out["missing"] = round(missing) if missing >= k else None
    if count < k:
        out["count"] = None
        return out
    out["count"] = count if unit == "voxel" else round(count)
    if "frequencies" in p:
        out["frequencies"] = {n: (round(max(0, v)) if max(0, v) >= k else None) for n, v in zip(p["names"], p["frequencies"])}
        return out
    lo, hi = fq["bounds"]
    mid = (lo + hi) / 2
    if "sum" in p:
        if "sum" in stats:
            out["sum"] = p["sum"] + mid * count
        if stats & {"mean", "variance", "stddev"}:
            out["mean"] = min(max(mid + p["sum"] / count, lo), hi)
    if "squared_deviations" in p:
        var = max(0.0, p["squared_deviations"] / max(count - 1, 1))
        if "variance" in stats:
            out["variance"] = var
        if "stddev" in stats:
            out["stddev"] = math.sqrt(var)
    if "histogram" in p:
        h = [max(0.0, c) for c in p["histogram"]]
        bins = len(h)
        width = (hi - lo) / bins
        edges = [lo + i * width for i in range(bins + 1)]
        cells = h if unit == "voxel" else [round(c) if c >= k else None for c in h]
        if "histogram" in stats:
            out["histogram"] = {"edges": edges, "counts": cells}
        usable = [c or 0 for c in cells]
        threshold = 1e-9 if unit == "voxel" else k
        nonempty = [i for i, c in enumerate(usable) if c >= threshold]
        if "min" in stats and nonempty:
            out["min"] = edges[nonempty[0]]
        if "max" in stats and nonempty:
            out["max"] = edges[nonempty[-1] + 1]
        if "quantiles" in stats:
            total = sum(h)
            q = {}
            for level in fq["quantiles"]:
                target, cum = level * total, 0.0
                for i, c in enumerate(h):
                    if cum + c >= target and c > 0:
                        q["%g" % level] = edges[i] + (target - cum) / c * width
                        break
                    cum += c
            out["quantiles"] = q
    return out


def add(a, b):
    out = dict(a)
    out["counts"] = [x + y for x, y in zip(a["counts"], b["counts"])]
    for key in ("sum", "squared_deviations"):
        if key in a:
            out[key] = a[key] + b[key]
    for key in ("histogram", "frequencies"):
        if key in a:
            out[key] = [x + y for x, y in zip(a[key], b[key])]
    return out


def main():
    sample = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "sample-data"
    query_path = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "Tests/FederatedAnalyticsTests/Golden/reference-query.yaml"
    output = Path(sys.argv[3]) if len(sys.argv) > 3 else ROOT / "Tests/FederatedAnalyticsTests/Golden/cohort_golden.json"
    query = yaml.safe_load(query_path.read_text())["query"]
    sites = {name: load_site(sample / name) for name in ("community-hospital", "research-center", "treatment-center")}
    features = query["features"]
    # Unlisted categories: the union of every site's names (all sites reveal names in the reference policy).
    lists = {}
    for i, fq in enumerate(features):
        if fq["feature"] in ("PatientSex", "Manufacturer", "ManufacturerModelName", "Modality", "ConvolutionKernel") and "categories" not in fq:
            lists[i] = sorted({c for recs in sites.values() for r in recs if (c := tag_category(r, fq["feature"]))})
    first = {s: [primitives(recs, fq, category_list=lists.get(i)) for i, fq in enumerate(features)] for s, recs in sites.items()}
    total = []
    for i, fq in enumerate(features):
        acc = None
        for s in sites:
            acc = first[s][i] if acc is None else add(acc, first[s][i])
        total.append(acc)
    centres = {}
    for i, fq in enumerate(features):
        if set(fq["statistics"]) & {"variance", "stddev"} and "sum" in total[i] and total[i]["counts"][0] > 0:
            lo, hi = fq["bounds"]
            centres[i] = min(max((lo + hi) / 2 + total[i]["sum"] / total[i]["counts"][0], lo), hi)
    second = {s: [primitives(recs, fq, centres.get(i), lists.get(i)) for i, fq in enumerate(features)] for s, recs in sites.items()}
    for i in centres:
        total[i]["squared_deviations"] = sum(second[s][i]["squared_deviations"] for s in sites)
    result = {"global": [derive(fq, total[i]) for i, fq in enumerate(features)], "sites": {}}
    for s in sites:
        mine = []
        for i, fq in enumerate(features):
            p = dict(first[s][i])
            if i in centres and p["counts"][0] > 0:  # a site without values (no SEG there) has no deviations
                n = p["counts"][0]
                lo, hi = fq["bounds"]
                m = (lo + hi) / 2 + p["sum"] / n
                p["squared_deviations"] = second[s][i]["squared_deviations"] - n * (m - centres[i]) ** 2
            mine.append(derive(fq, p))
        result["sites"][s] = mine
    result["provenance"] = dg.provenance("scripts/reference/cohort_golden.py")
    output.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"wrote {output}", file=sys.stderr)


if __name__ == "__main__":
    main()

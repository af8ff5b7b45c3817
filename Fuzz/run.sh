#!/usr/bin/env bash
# Runs the libFuzzer targets built by Fuzz/build.sh, one after the other (never two at once: `nice -n 10`), and
# appends one line per target to Fuzz/results.md (executions, crashes, machine, date).
#   Fuzz/run.sh [-s SECONDS] [-r] [target…]      default: 60 s per target, every target
#     -r   smoke mode (make test): do not append to Fuzz/results.md
# Exit status 1 when a target crashed (the input is in .build-fuzz/artifacts/<target>/), unless the target has a
# Fuzz/<target>/KNOWN_CRASH file (a finding in code owned elsewhere, not fixed yet): then it is reported only.
# Every committed reproducer in Fuzz/<target>/crashes/ is replayed first: a fixed crash must stay fixed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.build-fuzz
BIN=$OUT/bin
SECONDS_PER_TARGET=60
RECORD=1
while getopts "s:r" opt; do
    case $opt in
    s) SECONDS_PER_TARGET=$OPTARG ;;
    r) RECORD=0 ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
ALL_TARGETS=(dicom-shim rtstruct-shim safetensors chunk-codec dicom-series pipeline-yaml query-yaml secagg-messages)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")

# Inputs libFuzzer generates are capped per target: a small DICOM file (or series), a documented pipeline, a
# safetensors header, one message.
max_len() {
    case $1 in
    dicom-shim | rtstruct-shim) echo 32768 ;;
    dicom-series) echo 65536 ;;
    pipeline-yaml) echo 16384 ;;
    *) echo 4096 ;;
    esac
}

# Seed corpus, rebuilt from the fixtures at every run (nothing large is committed).
seed() {
    local t=$1 dir=$OUT/seeds/$1
    rm -rf "$dir" && mkdir -p "$dir"
    [ -d "Fuzz/$t/seeds" ] && cp Fuzz/"$t"/seeds/* "$dir"/ 2>/dev/null
    case $t in
    dicom-shim)
        local d f i
        for d in Tests/Fixtures/DICOM/*/; do
            i=0
            for f in $(find "$d" -type f | sort | head -2); do cp "$f" "$dir/$(basename "$d")-$i"; i=$((i + 1)); done
        done
        [ -d sample-data ] && find sample-data -type f -size -32k | sort | awk 'NR % 50 == 1' |
            while read -r f; do cp "$f" "$dir/sample-$(echo "$f" | md5sum | cut -c1-8)"; done
        ;;
    dicom-series)
        # Two or three files of one fixture folder, joined by the harness's "TSFZ" file separator.
        local d files
        for d in Tests/Fixtures/DICOM/*/; do
            mapfile -t files < <(find "$d" -type f | sort | head -3)
            { cat "${files[0]}"; for f in "${files[@]:1}"; do printf 'TSFZ'; cat "$f"; done; } \
                > "$dir/$(basename "$d")"
        done
        # An image and RT Structure Sets drawn on it: FolderInspection reads them through StructureSet.
        local r=Tests/Fixtures/RTSTRUCT
        { cat $r/ct/ct-06.dcm; printf 'TSFZ'; cat $r/organs.dcm; printf 'TSFZ'; cat $r/count-mismatch.dcm; } \
            > "$dir/rtstruct-organs"
        ;;
    rtstruct-shim) cp Tests/Fixtures/RTSTRUCT/*.dcm "$dir"/ ;;
    pipeline-yaml) cp pipelines/*.yaml "$dir"/ ;;
    query-yaml) cp pipelines/cohort-statistics.yaml Tests/FederatedAnalyticsTests/Golden/reference-query.yaml "$dir"/ ;;
    esac
}

cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
cores=$(nproc)
failed=0
for t in "${targets[@]}"; do
    exe=$BIN/$t
    if [ ! -x "$exe" ]; then echo "Fuzz/run.sh: $exe is missing: run Fuzz/build.sh $t" >&2; failed=1; continue; fi
    known=0; [ -f "Fuzz/$t/KNOWN_CRASH" ] && known=1
    log=$OUT/logs/$t.log
    mkdir -p "$OUT/logs" "$OUT/corpus/$t" "$OUT/artifacts/$t"
    # Regression: every committed reproducer once.
    if compgen -G "Fuzz/$t/crashes/*" >/dev/null && [ $known = 0 ]; then
        if ! nice -n 10 "$exe" -rss_limit_mb=4096 Fuzz/"$t"/crashes/* > "$log.replay" 2>&1; then
            echo "fuzz $t: a committed reproducer in Fuzz/$t/crashes crashes again (log: $log.replay)" >&2
            failed=1
        fi
    fi
    seed "$t"
    dict=(); [ -f "Fuzz/$t/$t.dict" ] && dict=(-dict="Fuzz/$t/$t.dict")
    start=$(date -u +%Y-%m-%dT%H:%MZ)
    nice -n 10 "$exe" -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" -timeout=60 \
        -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t/" "${dict[@]}" \
        "$OUT/corpus/$t" "$OUT/seeds/$t" > "$log" 2>&1
    status=$?
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    crash=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //')
    crashes=0
    if [ $status -ne 0 ]; then
        crashes=1
        what=$(grep -m1 -E "ERROR: (AddressSanitizer|libFuzzer|UndefinedBehaviorSanitizer)|runtime error|Fatal error" \
            "$log" | cut -c1-160)
        if [ $known = 1 ]; then
            echo "fuzz $t: KNOWN crash (Fuzz/$t/KNOWN_CRASH): $what; input: ${crash:-see $log}"
        else
            echo "fuzz $t: CRASH: $what; input: ${crash:-see $log}" >&2
            failed=1
        fi
    fi
    corpus=$(find "$OUT/corpus/$t" -type f | wc -l)
    echo "fuzz $t: ${execs:-0} executions in ${SECONDS_PER_TARGET} s, $crashes crash(es), corpus $corpus"
    if [ $RECORD = 1 ]; then
        [ -f Fuzz/results.md ] || printf '%s\n' "# Fuzzing runs (appended by Fuzz/run.sh)" "" \
            "| target | start (UTC) | seconds | executions | crashes | input | machine |" \
            "|---|---|---|---|---|---|---|" > Fuzz/results.md
        input=${crash:+$(basename "$crash")}
        echo "| $t | $start | ${SECONDS_PER_TARGET} | ${execs:-0} | $crashes | $input | $cpu, $cores cores |" \
            >> Fuzz/results.md
    fi
done
exit $failed

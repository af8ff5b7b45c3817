#!/usr/bin/env bash
# Builds the libFuzzer targets into .build-fuzz/bin (see docs/fuzzing.md).
#   Fuzz/build.sh [target…]      default: every target; a target already newer than its inputs is not rebuilt
#
# dicom-shim    the C++ shim compiled with clang++ -fsanitize=fuzzer,address,undefined (DCMTK itself is not
# rtstruct-shim instrumented: Debian's libraries), entered through Fuzz/<target>/fuzz.cpp.
# safetensors   SafeTensorsFormat (no dependencies) and the entry compiled as one module.
# others        the module(s) under test are recompiled with -sanitize=fuzzer,address (coverage + ASan) and linked
#               with the objects of the debug build for everything else, so `make test`'s build is reused: run
#               `swift build --build-tests` first. The module list and compiler flags come from SwiftPM's build
#               description (Fuzz/tools/BuildPlan.swift).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.build-fuzz
BIN=$OUT/bin
SWIFTC=${SWIFTC:-swiftc}
CXX=${CXX:-clang++}
DEBUG_DIR=${DEBUG_DIR:-$(swift build --show-bin-path 2>/dev/null || echo "$ROOT/.build/debug")}
DESCRIPTION=$DEBUG_DIR/description.json
# The linker settings of CDCMTKShim in Package.swift.
DCMTK_LIBS=(-ldcmrt -ldcmseg -ldcmfg -ldcmiod -ldcmjpls -ldcmjpeg -ldcmimgle -ldcmdata -loflog -lofstd -lopenjp2 -lstdc++)
ALL_TARGETS=(dicom-shim rtstruct-shim safetensors chunk-codec dicom-series pipeline-yaml query-yaml secagg-messages)
mkdir -p "$BIN" "$OUT/obj"

# True when $1 exists and is newer than every file given after it.
up_to_date() {
    local out=$1; shift
    [ -e "$out" ] || return 1
    local f
    for f in "$@"; do [ "$f" -nt "$out" ] && return 1; done
    return 0
}

# Hides ld.gold's harmless "Cannot export local symbol '__asan_…'" warnings.
quiet_link() { "$@" 2> >(grep -v "Cannot export local symbol" >&2); }

# build_shim_target <name>: the shim, entered through Fuzz/<name>/fuzz.cpp (dicom-shim: attributes and pixel data;
# rtstruct-shim: the RT Structure Set calls).
build_shim_target() {
    local name=$1
    local inputs=(Sources/CDCMTKShim/*.cpp Sources/CDCMTKShim/*.h Sources/CDCMTKShim/include/*.h
                  Fuzz/include/*.h "Fuzz/$name/fuzz.cpp")
    up_to_date "$BIN/$name" "${inputs[@]}" && return
    quiet_link "$CXX" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I Sources/CDCMTKShim/include -I Sources/CDCMTKShim -I Fuzz/include Sources/CDCMTKShim/*.cpp \
        "Fuzz/$name/fuzz.cpp" -o "$BIN/$name" "${DCMTK_LIBS[@]}"
}

build_safetensors() {
    local inputs=(Sources/SafeTensorsFormat/*.swift Fuzz/safetensors/Fuzz.swift)
    up_to_date "$BIN/safetensors" "${inputs[@]}" && return
    quiet_link "$SWIFTC" -parse-as-library -O -sanitize=fuzzer,address -module-name SafeTensorsFormat \
        "${inputs[@]}" -o "$BIN/safetensors"
}

PLAN=$BIN/BuildPlan
plan() {
    if ! up_to_date "$PLAN" Fuzz/tools/BuildPlan.swift; then
        "$SWIFTC" -O Fuzz/tools/BuildPlan.swift -o "$PLAN"
    fi
    "$PLAN" "$DESCRIPTION" "$@"
}

# build_swift_target <name> <module under test…>: the last module's flags compile the entry Fuzz/<name>/Fuzz.swift.
build_swift_target() {
    local name=$1; shift
    local modules=("$@")
    if [ ! -f "$DESCRIPTION" ]; then
        echo "Fuzz/build.sh: $DESCRIPTION is missing: run 'swift build --build-tests' first" >&2
        return 1
    fi
    local objdir=$OUT/obj/$name
    local sources=() m
    for m in "${modules[@]}"; do mapfile -t -O "${#sources[@]}" sources < <(plan sources "$m"); done
    up_to_date "$BIN/$name" "${sources[@]}" "Fuzz/$name/Fuzz.swift" "$DESCRIPTION" && return
    rm -rf "$objdir" && mkdir -p "$objdir"
    local flags=()
    for m in "${modules[@]}"; do
        mapfile -t flags < <(plan flags "$m")
        mapfile -t sources < <(plan sources "$m")
        # One object per module (whole-module optimisation), instrumented; other modules import the debug build's
        # .swiftmodule, whose interface is the same source.
        "$SWIFTC" -c -wmo -O -parse-as-library -sanitize=fuzzer,address -module-name "$m" "${flags[@]}" \
            -I "$DEBUG_DIR/Modules" "${sources[@]}" -o "$objdir/$m.o"
    done
    "$SWIFTC" -c -O -parse-as-library -sanitize=fuzzer,address -module-name "FuzzEntry_${name//-/_}" "${flags[@]}" \
        -I "$DEBUG_DIR/Modules" "Fuzz/$name/Fuzz.swift" -o "$objdir/entry.o"
    # Everything else the modules depend on, from the debug build.
    local closure objects=()
    mapfile -t closure < <(plan closure "${modules[@]}")
    for m in "${closure[@]}"; do
        [[ " ${modules[*]} " == *" $m "* ]] && continue
        [ -d "$DEBUG_DIR/$m.build" ] || continue
        # Only the objects of a Swift module's current sources: a file removed from the package leaves its object
        # behind in an incremental build, and linking it would define its symbols twice. (The plan lists Swift
        # sources only; C modules keep every object.)
        local listed current="" o base
        if listed=$(plan sources "$m" 2>/dev/null); then
            current=" $(printf '%s\n' "$listed" | xargs -r -n1 basename | tr '\n' ' ') "
        fi
        while IFS= read -r o; do
            base=$(basename "$o" .o)
            if [ -n "$current" ] && [[ "$base" == *.swift ]] && [[ "$current" != *" $base "* ]]; then continue; fi
            objects+=("$o")
        done < <(find "$DEBUG_DIR/$m.build" -name '*.o' | sort)
    done
    printf '"%s"\n' "${objects[@]}" > "$objdir/link-objects.txt"  # quoted: some names hold spaces
    quiet_link "$SWIFTC" -sanitize=fuzzer,address -o "$BIN/$name" "$objdir"/*.o @"$objdir/link-objects.txt" \
        -lz "${DCMTK_LIBS[@]}"
}

build() {
    local start=$SECONDS
    case $1 in
    dicom-shim | rtstruct-shim) build_shim_target "$1" ;;
    safetensors) build_safetensors ;;
    chunk-codec) build_swift_target chunk-codec FederationCore FederationGRPC ;;
    dicom-series) build_swift_target dicom-series DICOMIO ;;
    pipeline-yaml) build_swift_target pipeline-yaml Volumes Training FederationJobs ;;
    query-yaml) build_swift_target query-yaml FederatedAnalytics ;;
    secagg-messages) build_swift_target secagg-messages SecureAggregation ;;
    *) echo "Fuzz/build.sh: unknown target '$1' (targets: ${ALL_TARGETS[*]})" >&2; return 1 ;;
    esac
    echo "fuzz target $1: $BIN/$1 ($((SECONDS - start)) s)"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do build "$t"; done

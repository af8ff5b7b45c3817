#!/usr/bin/env bash
# The style check of `make test` (and so of CI): every Swift file but the generated gRPC code is as swift-format
# (the toolchain's, configured by .swift-format: 4 spaces, 120 columns) leaves it, and no more lines exceed 120
# columns than the recorded baseline. The lines left over 120 are string literals and comments, which the formatter
# does not break; the baseline may only go down (lower it when you shorten some).
set -euo pipefail
cd "$(dirname "$0")/.."
BASELINE=58
mapfile -t files < <(git ls-files '*.swift' | grep -v '/Generated/')
if ! swift format lint --strict --parallel "${files[@]}"; then
    echo "check_format: run 'swift format format --in-place --parallel <files>' (see .swift-format)" >&2
    exit 1
fi
long=$(python3 - "${files[@]}" <<'PY'
import sys
print(sum(len(line) > 120 for f in sys.argv[1:] for line in open(f, encoding="utf-8").read().split("\n")))
PY
)
if [ "$long" -gt "$BASELINE" ]; then
    echo "check_format: $long lines over 120 columns, more than the baseline $BASELINE; wrap the new ones" >&2
    exit 1
fi
echo "check_format: swift-format clean; $long lines over 120 columns (baseline $BASELINE)"

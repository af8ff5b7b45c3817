#!/usr/bin/env bash
# Prints the header line of a benchmark's output: UTC time, CPU model, cores, load average, the instruction set the
# kernels use (TESSERA_KERNELS_ISA can lower it) and the OpenBLAS core (OPENBLAS_CORETYPE), as the given
# tessera-bench binary reports them with the current environment. One place for every Benchmarks/*.sh.
#
# usage: scripts/bench_header.sh TESSERA_BENCH_BINARY
set -euo pipefail
bench=$1
model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs || true)
paths=$("$bench" machine | tr '\n' ' ' | xargs)
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) ${model:-unknown CPU}, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "$paths"

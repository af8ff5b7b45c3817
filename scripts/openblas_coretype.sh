#!/usr/bin/env bash
# Prints the OpenBLAS core this CPU has, from /proc/cpuinfo's flags: SkylakeX only with AVX-512 F/BW/VL/DQ, Haswell
# with AVX2 + FMA, nothing otherwise (OpenBLAS then picks its own). Never a core the CPU lacks: SkylakeX on an
# AVX2-only machine dies of SIGILL. Used by the Makefile and the benchmarks (one detection, one place).
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
if [[ "$flags" == *avx512f* && "$flags" == *avx512bw* && "$flags" == *avx512vl* && "$flags" == *avx512dq* ]]; then
    echo SkylakeX
elif [[ "$flags" == *avx2* && "$flags" == *fma* ]]; then
    echo Haswell
fi

// Vectorised reductions for Tensors (see include/CTensorKernels.h).
#include "CTensorKernels.h"
#include "Dispatch.h"

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));

static inline __attribute__((always_inline)) double sum_impl(const float *x, size_t n) {
    // Four independent vector accumulators hide the add latency; partial sums of at most n/64 terms per lane.
    v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 += *(const v16u *)(x + i);
        a1 += *(const v16u *)(x + i + 16);
        a2 += *(const v16u *)(x + i + 32);
        a3 += *(const v16u *)(x + i + 48);
    }
    v16 a = (a0 + a1) + (a2 + a3);
    double s = 0;
    for (int l = 0; l < 16; l++) s += a[l];
    for (; i < n; i++) s += x[i];
    return s;
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
TK_AVX512 static double sum_avx512(const float *x, size_t n) { return sum_impl(x, n); }
TK_AVX2 static double sum_avx2(const float *x, size_t n) { return sum_impl(x, n); }
#endif

double tk_sum(const float *x, size_t count) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    switch (tk_isa()) {
    case 2: return sum_avx512(x, count);
    case 1: return sum_avx2(x, count);
    default: break;
    }
#endif
    return sum_impl(x, count);
}

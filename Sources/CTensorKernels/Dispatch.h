// Run-time choice of instruction set for the kernels, shared by the kernel files: each file compiles its hot loops
// twice more with TK_AVX512 / TK_AVX2 (name_avx512, name_avx2) and its entry points start with
// DISPATCH(name, args...), which calls the best variant the CPU supports and returns, or falls through to the
// portable C that follows.
#ifndef TK_DISPATCH_H
#define TK_DISPATCH_H
#include "CTensorKernels.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define TK_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define TK_AVX2 __attribute__((target("avx2,fma")))

// The AVX2 convolution kernels (Conv3AVX2.c): 8-float vectors blocked for 16 ymm registers; arguments as
// tk_conv3_forward / tk_conv3_weight_gradient. Call only when tk_isa() >= 1.
void tk_conv3_forward_avx2(const float *padded, int cin, int depth, int height, int width, int three_d,
                           const float *weight, int cout, const float *bias, int relu, const float *mask, float *y);
void tk_conv3_weight_gradient_avx2(const float *padded, int cin, int depth, int height, int width, int three_d,
                                   const float *gy, int cout, float *gw, float *scratch);

#define DISPATCH(name, ...)                                                                                          \
    switch (tk_isa()) {                                                                                             \
    case 2: name##_avx512(__VA_ARGS__); return;                                                                     \
    case 1: name##_avx2(__VA_ARGS__); return;                                                                       \
    default: break;                                                                                                 \
    }
#else
#define DISPATCH(name, ...)
#endif

#endif

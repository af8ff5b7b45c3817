// Run-time choice of instruction set for the kernels, shared by the kernel files: each file compiles its hot loops
// twice more with TK_AVX512 / TK_AVX2 (name_avx512, name_avx2) and its entry points start with
// DISPATCH(name, args...), which calls the best variant the CPU supports and returns, or falls through to the
// portable C that follows.
#ifndef TK_DISPATCH_H
#define TK_DISPATCH_H

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define TK_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define TK_AVX2 __attribute__((target("avx2,fma")))

/// 2: AVX-512 (F + VL), 1: AVX2 + FMA, 0: neither. Computed once (Dispatch.c).
int tk_isa(void);

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

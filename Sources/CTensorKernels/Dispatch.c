#include "Dispatch.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
int tk_isa(void) {
    static int cached = -1;  // every thread computes the same value: a relaxed atomic suffices
    int level = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (level < 0) {
        __builtin_cpu_init();
        level = (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) ? 2
              : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
        __atomic_store_n(&cached, level, __ATOMIC_RELAXED);
    }
    return level;
}
#endif

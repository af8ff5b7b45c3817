#include "CTensorKernels.h"
#include "Dispatch.h"
#include <stdlib.h>
#include <string.h>

// -1 until first use; then the level in use (detected, lowered by TESSERA_KERNELS_ISA or tk_set_isa_limit). Every
// thread computes the same value from the same inputs, so relaxed atomics suffice.
static int active_level = -1;
static int environment_status = -1;  // TK_ISA_ENV_*, computed with the first level

int tk_isa_detected(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    __builtin_cpu_init();
    // The AVX-512 variants are compiled for F, VL, BW and DQ (TK_AVX512): all four must be there.
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

int tk_isa_parse(const char *name) {
    if (name == NULL) return -1;
    if (strcmp(name, "avx512") == 0) return 2;
    if (strcmp(name, "avx2") == 0) return 1;
    if (strcmp(name, "baseline") == 0) return 0;
    return -1;
}

static int level_from_environment(int detected, int *status) {
    const char *name = getenv("TESSERA_KERNELS_ISA");
    if (name == NULL || name[0] == 0) {
        *status = TK_ISA_ENV_UNSET;
        return detected;
    }
    int requested = tk_isa_parse(name);
    if (requested < 0) {
        *status = TK_ISA_ENV_INVALID;
        return detected;
    }
    if (requested > detected) {
        *status = TK_ISA_ENV_UNSUPPORTED;
        return detected;
    }
    *status = TK_ISA_ENV_APPLIED;
    return requested;
}

int tk_isa(void) {
    int level = __atomic_load_n(&active_level, __ATOMIC_RELAXED);
    if (level < 0) {
        int status;
        level = level_from_environment(tk_isa_detected(), &status);
        __atomic_store_n(&environment_status, status, __ATOMIC_RELAXED);
        // A concurrent tk_set_isa_limit wins over the environment's level.
        int expected = -1;
        if (!__atomic_compare_exchange_n(&active_level, &expected, level, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            level = expected;
    }
    return level;
}

int tk_isa_environment_status(void) {
    (void)tk_isa();
    return __atomic_load_n(&environment_status, __ATOMIC_RELAXED);
}

int tk_set_isa_limit(int limit) {
    (void)tk_isa();
    int detected = tk_isa_detected();
    int level = limit < 0 ? 0 : limit > detected ? detected : limit;
    __atomic_store_n(&active_level, level, __ATOMIC_RELAXED);
    return level;
}

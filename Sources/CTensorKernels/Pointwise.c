// Memory-bound pointwise kernels of the training step (ReLU backward, 2×(2×)2 max pooling); see
// include/CTensorKernels.h. Vector extensions, compiled per instruction set and dispatched at run time as Conv3.c.
#include "CTensorKernels.h"
#include "Dispatch.h"

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
typedef int i16v __attribute__((vector_size(64)));
typedef int i16vu __attribute__((vector_size(64), aligned(4)));

#define INLINE static inline __attribute__((always_inline))

INLINE v16 load16(const float *p) { return *(const v16u *)p; }
INLINE void store16(float *p, v16 v) { *(v16u *)p = v; }
INLINE void store16i(int *p, i16v v) { *(i16vu *)p = v; }

// MARK: - ReLU backward

INLINE void relu_backward_impl(const float *g, const float *y, float *out, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        v16 gv = load16(g + i), yv = load16(y + i);
        store16(out + i, (v16)((i16v)gv & (yv > 0)));
    }
    for (; i < count; i++) out[i] = y[i] > 0 ? g[i] : 0;
}

// MARK: - Max pooling, window 2 and stride 2

// The first of the tied maxima in scan order wins, and the first NaN over any number (PyTorch's CPU rule):
// take v when v > best, or when v is NaN and best is not.
INLINE void take_max(v16 v, i16v index, v16 *best, i16v *bestIndex) {
    i16v take = (v > *best) | ((v != v) & (*best == *best));
    *best = (v16)(((i16v)v & take) | ((i16v)*best & ~take));
    *bestIndex = (index & take) | (*bestIndex & ~take);
}

INLINE int scalar_take(float v, float best) { return v > best || (v != v && best == best); }

// One output row of one plane: `rows` input rows (1 for 2-D windows of one plane, 2 for 3-D) × 2 input rows × 2
// columns per output. `offsets[k]` is the flat offset of window row k (scan order) from the window origin.
INLINE void maxpool_row(const float *src, int origin0, int ow, const int *offsets, int nrows, float *y, int *am) {
    int j = 0;
    const i16v lane = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    for (; j + 16 <= ow; j += 16) {
        const int o = origin0 + 2 * j;
        v16 best = {0};
        i16v bestIndex = {0};
        for (int k = 0; k < nrows; k++) {
            const float *r = src + o + offsets[k];
            v16 a = load16(r), b = load16(r + 16);
            v16 even = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            v16 odd = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            i16v base = lane + (o + offsets[k]);
            if (k == 0) {
                best = even;
                bestIndex = base;
            } else {
                take_max(even, base, &best, &bestIndex);
            }
            take_max(odd, base + 1, &best, &bestIndex);
        }
        store16(y + j, best);
        store16i(am + j, bestIndex);
    }
    for (; j < ow; j++) {
        const int o = origin0 + 2 * j;
        float best = src[o + offsets[0]];
        int bestIndex = o + offsets[0];
        for (int k = 0; k < nrows; k++) {
            for (int c = 0; c < 2; c++) {
                if (k == 0 && c == 0) continue;
                int i = o + offsets[k] + c;
                if (scalar_take(src[i], best)) { best = src[i]; bestIndex = i; }
            }
        }
        y[j] = best;
        am[j] = bestIndex;
    }
}

INLINE void maxpool2_impl(const float *x, int planes, int depth, int height, int width, int three_d, float *y,
                          int *argmax) {
    const int od = three_d ? depth / 2 : 1, oh = height / 2, ow = width / 2;
    const size_t inPlane = (size_t)depth * height * width, outPlane = (size_t)od * oh * ow;
    const int plane = height * width;
    int offsets[4];
    int nrows;
    if (three_d) {
        offsets[0] = 0; offsets[1] = width; offsets[2] = plane; offsets[3] = plane + width; nrows = 4;
    } else {
        offsets[0] = 0; offsets[1] = width; nrows = 2;
    }
    for (size_t p = 0; p < (size_t)planes; p++) {
        const float *src = x + p * inPlane;
        float *dst = y + p * outPlane;
        int *am = argmax + p * outPlane;
        for (int d = 0; d < od; d++) {
            for (int h = 0; h < oh; h++) {
                const int origin0 = (three_d ? 2 * d * plane : 0) + 2 * h * width;
                const size_t o = ((size_t)d * oh + h) * ow;
                maxpool_row(src, origin0, ow, offsets, nrows, dst + o, am + o);
            }
        }
    }
}

// MARK: - Instruction-set dispatch

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
TK_AVX512 static void relu_backward_avx512(const float *g, const float *y, float *out, size_t n) {
    relu_backward_impl(g, y, out, n);
}
TK_AVX2 static void relu_backward_avx2(const float *g, const float *y, float *out, size_t n) {
    relu_backward_impl(g, y, out, n);
}
TK_AVX512 static void maxpool2_avx512(const float *x, int p, int d, int h, int w, int t, float *y, int *am) {
    maxpool2_impl(x, p, d, h, w, t, y, am);
}
TK_AVX2 static void maxpool2_avx2(const float *x, int p, int d, int h, int w, int t, float *y, int *am) {
    maxpool2_impl(x, p, d, h, w, t, y, am);
}
#endif

void tk_relu_backward(const float *g, const float *y, float *out, size_t count) {
    DISPATCH(relu_backward, g, y, out, count)
    relu_backward_impl(g, y, out, count);
}

void tk_maxpool2(const float *x, int planes, int depth, int height, int width, int three_d, float *y, int *argmax) {
    DISPATCH(maxpool2, x, planes, depth, height, width, three_d, y, argmax)
    maxpool2_impl(x, planes, depth, height, width, three_d, y, argmax);
}

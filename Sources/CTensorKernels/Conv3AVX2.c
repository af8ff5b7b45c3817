// Direct 3×3(×3) stride-1, padding-1 convolution kernels for AVX2 + FMA (16 ymm registers of 8 floats); layouts as
// include/CTensorKernels.h. Conv3.c's kernels are written for 16-float vectors: compiled for AVX2 each of them is two
// ymm registers, so their 16-accumulator blocks need 32 registers and spill. Here a forward block holds 8
// accumulators (4 output channels × 16 columns: with the 2 input vectors and the broadcast weight 11 registers; blocks
// of 12 accumulators, 4 × 24 columns, spilled and ran at half the speed), the taps at column offsets 1 and 2 are
// unaligned loads (cheap on AVX2 cores) instead of cross-lane shuffles, and the weight gradient keeps 4 output
// channels × 3 column taps = 12 accumulators. Forward sums are Conv3.c's in the same order; ∂W's in another order.
#include "CTensorKernels.h"
#include "Dispatch.h"
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef int i8v __attribute__((vector_size(32)));

#define INLINE static inline __attribute__((always_inline))

INLINE v8 load8(const float *p) { return *(const v8u *)p; }
INLINE void store8(float *p, v8 v) { *(v8u *)p = v; }
INLINE v8 splat8(float s) { return s - (v8){0}; }
// max(v, 0) keeping NaN (as `t < 0 ? 0 : t`).
INLINE v8 relu8(v8 v) { return (v8)((i8v)v & ~(v < 0)); }
INLINE float hsum8(v8 v) {
    typedef float v4 __attribute__((vector_size(16)));
    v4 a = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    return (a[0] + a[2]) + (a[1] + a[3]);
}
static inline size_t round8(int n) { return ((size_t)n + 7) / 8 * 8; }
static inline size_t round16(int n) { return ((size_t)n + 15) / 16 * 16; }

// MARK: - Forward

// One block: COB output channels × V vectors of 8 columns of one output row (arguments as Conv3.c's blocks).
#define DEFINE_FORWARD8(COB, V)                                                                                      \
    INLINE void forward8_##COB##x##V(const float *x, int cin, size_t chan, size_t plane, size_t ld, int kd,         \
                                     const float *w, size_t wco, const float *bias, int relu, const float *mask,   \
                                     float *y, size_t ychan, int valid) {                                           \
        v8 acc[COB][V];                                                                                             \
        for (int j = 0; j < COB; j++) {                                                                             \
            v8 b = splat8(bias ? bias[j] : 0.f);                                                                    \
            for (int v = 0; v < V; v++) acc[j][v] = b;                                                              \
        }                                                                                                           \
        const int taps = kd * 9;                                                                                    \
        for (int ci = 0; ci < cin; ci++) {                                                                          \
            const float *xc = x + ci * chan;                                                                        \
            const float *wc = w + ci * taps;                                                                        \
            for (int a = 0; a < kd; a++) {                                                                          \
                for (int kh = 0; kh < 3; kh++) {                                                                    \
                    const float *r = xc + a * plane + kh * ld;                                                      \
                    const float *wt = wc + (a * 3 + kh) * 3;                                                        \
                    for (int kw = 0; kw < 3; kw++) {                                                                \
                        v8 xv[V];                                                                                   \
                        for (int v = 0; v < V; v++) xv[v] = load8(r + 8 * v + kw);                                  \
                        for (int j = 0; j < COB; j++) {                                                             \
                            v8 s = splat8(wt[j * wco + kw]);                                                        \
                            for (int v = 0; v < V; v++) acc[j][v] += s * xv[v];                                     \
                        }                                                                                           \
                    }                                                                                               \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        for (int j = 0; j < COB; j++) {                                                                             \
            for (int v = 0; v < V; v++) {                                                                           \
                v8 t = acc[j][v];                                                                                   \
                if (relu) t = relu8(t);                                                                             \
                float *dst = y + j * ychan + 8 * v;                                                                 \
                int n = valid - 8 * v;                                                                              \
                if (n <= 0) continue;                                                                               \
                if (mask) { /* ∂x · [h > 0]: the ReLU backward of the layer before, fused */                        \
                    v8 m;                                                                                           \
                    if (n >= 8) {                                                                                   \
                        m = load8(mask + j * ychan + 8 * v);                                                        \
                    } else {                                                                                        \
                        float tail[8] = {0};                                                                        \
                        memcpy(tail, mask + j * ychan + 8 * v, (size_t)n * sizeof(float));                          \
                        m = load8(tail);                                                                            \
                    }                                                                                               \
                    t = (v8)((i8v)t & (m > 0));                                                                     \
                }                                                                                                   \
                if (n >= 8) {                                                                                       \
                    store8(dst, t);                                                                                 \
                } else {                                                                                            \
                    float tmp[8];                                                                                   \
                    store8(tmp, t);                                                                                 \
                    memcpy(dst, tmp, (size_t)n * sizeof(float));                                                    \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
    }

DEFINE_FORWARD8(4, 2)
DEFINE_FORWARD8(4, 1)
DEFINE_FORWARD8(1, 2)
DEFINE_FORWARD8(1, 1)

#define FORWARD8_CALL(COB, V, w0)                                                                                    \
    forward8_##COB##x##V(xr + (w0), cin, chan, plane, ld, kd, weight + co * wco, wco, bias ? bias + co : 0, relu,  \
                         mr ? mr + co * ychan + (w0) : 0, yr + co * ychan + (w0), ychan, width - (w0))

// One row of COB output channels: blocks of 16 columns, then 8.
#define FORWARD8_ROW(COB)                                                                                            \
    do {                                                                                                            \
        int w0 = 0;                                                                                                 \
        for (; w0 + 16 <= wp; w0 += 16) FORWARD8_CALL(COB, 2, w0);                                                  \
        if (w0 < wp) FORWARD8_CALL(COB, 1, w0);                                                                     \
    } while (0)

TK_AVX2 void tk_conv3_forward_avx2(const float *padded, int cin, int depth, int height, int width, int three_d,
                                   const float *weight, int cout, const float *bias, int relu, const float *mask,
                                   float *y) {
    const int kd = three_d ? 3 : 1;
    const size_t ld = tk_conv3_row_stride(width), plane = ((size_t)height + 2) * ld;
    const size_t chan = ((size_t)depth + (three_d ? 2 : 0)) * plane;
    const size_t wco = (size_t)cin * kd * 9, ychan = (size_t)depth * height * width;
    const int wp = (int)round8(width);
    for (int od = 0; od < depth; od++) {
        for (int oh = 0; oh < height; oh++) {
            const float *xr = padded + od * plane + oh * ld;
            float *yr = y + ((size_t)od * height + oh) * width;
            const float *mr = mask ? mask + ((size_t)od * height + oh) * width : 0;
            int co = 0;
            for (; co + 4 <= cout; co += 4) FORWARD8_ROW(4);
            for (; co < cout; co++) FORWARD8_ROW(1);
        }
    }
}

// MARK: - Weight gradient

// gw[co + j][ci][a][kh][0…2] for j < COB over output rows [r0, r1) (as Conv3.c's gradient blocks; ∂y rows hold
// `gw16` floats, of which the first `wp` are read).
#define DEFINE_GRADIENT8(COB)                                                                                        \
    INLINE void gradient8_##COB(const float *x, size_t plane, size_t ld, const float *g, size_t gchan, int height,  \
                                int gw16, int wp, int r0, int r1, float *gw, size_t wco) {                          \
        v8 acc[COB][3];                                                                                             \
        for (int j = 0; j < COB; j++)                                                                               \
            for (int t = 0; t < 3; t++) acc[j][t] = splat8(0);                                                      \
        int od = r0 / height, oh = r0 % height; /* the row's plane and row, stepped (no division per row) */ \
        for (int r = r0; r < r1; r++, oh = oh + 1 == height ? 0 : oh + 1, od += oh == 0) {                       \
            const float *xr = x + od * plane + oh * ld;                                                             \
            const float *gr = g + (size_t)r * gw16;                                                                 \
            for (int w = 0; w < wp; w += 8) {                                                                       \
                v8 x0 = load8(xr + w), x1 = load8(xr + w + 1), x2 = load8(xr + w + 2);                              \
                for (int j = 0; j < COB; j++) {                                                                     \
                    v8 gv = load8(gr + j * gchan + w);                                                              \
                    acc[j][0] += gv * x0;                                                                           \
                    acc[j][1] += gv * x1;                                                                           \
                    acc[j][2] += gv * x2;                                                                           \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        for (int j = 0; j < COB; j++)                                                                               \
            for (int t = 0; t < 3; t++) gw[j * wco + t] += hsum8(acc[j][t]);                                        \
    }

DEFINE_GRADIENT8(4)
DEFINE_GRADIENT8(2)
DEFINE_GRADIENT8(1)

TK_AVX2 void tk_conv3_weight_gradient_avx2(const float *padded, int cin, int depth, int height, int width,
                                           int three_d, const float *gy, int cout, float *gw, float *scratch) {
    const int kd = three_d ? 3 : 1;
    const size_t ld = tk_conv3_row_stride(width), plane = ((size_t)height + 2) * ld;
    const size_t chan = ((size_t)depth + (three_d ? 2 : 0)) * plane;
    const size_t wco = (size_t)cin * kd * 9;
    // ∂y rows padded with zeros to 16 columns in `scratch` (the layout tk_conv3_gradient_scratch_count sizes), or
    // read in place when already a multiple of 16 wide; only the first round8(width) columns are read.
    const int gw16 = (int)round16(width), wp = (int)round8(width), rows = depth * height;
    const size_t gchan = (size_t)rows * gw16;
    const float *gsrc = scratch;
    if (gw16 == width) gsrc = gy;
    else for (size_t o = 0; o < (size_t)cout; o++) {
        for (size_t r = 0; r < (size_t)rows; r++) {
            float *dst = scratch + o * gchan + r * gw16;
            memcpy(dst, gy + (o * rows + r) * width, (size_t)width * sizeof(float));
            memset(dst + width, 0, (size_t)(gw16 - width) * sizeof(float));
        }
    }
    // Blocks of output rows whose ∂y for 4 output channels (16 KB) stays in L1 while every input channel and tap
    // passes over it.
    int block = (int)(8192 / (8 * (size_t)wp));
    if (block < 1) block = 1;
    for (int r0 = 0; r0 < rows; r0 += block) {
        const int r1 = r0 + block < rows ? r0 + block : rows;
        int co = 0;
#define GRADIENT8_CHANNELS(COB)                                                                                      \
    for (int ci = 0; ci < cin; ci++)                                                                                \
        for (int a = 0; a < kd; a++)                                                                                \
            for (int kh = 0; kh < 3; kh++)                                                                          \
                gradient8_##COB(padded + ci * chan + a * plane + kh * ld, plane, ld, gsrc + co * gchan, gchan,     \
                                height, gw16, wp, r0, r1, gw + co * wco + (size_t)ci * kd * 9 + a * 9 + kh * 3, wco)
        for (; co + 4 <= cout; co += 4) GRADIENT8_CHANNELS(4);
        for (; co + 2 <= cout; co += 2) GRADIENT8_CHANNELS(2);
        for (; co < cout; co++) GRADIENT8_CHANNELS(1);
#undef GRADIENT8_CHANNELS
    }
}

#endif

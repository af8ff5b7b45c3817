// Direct 3×3(×3) stride-1, padding-1 convolution kernels; see include/CTensorKernels.h for layouts.
//
// Forward: for each output row and a block of COB output channels × V·16 output columns, the accumulators stay in
// vector registers over every input channel and tap; each input vector load feeds COB fused multiply-adds and each
// weight is one broadcast. The input is read from a zero-padded copy, so the inner loops have no bounds checks and
// widths round up to 16 (the tail columns are computed and dropped).
// Weight gradient: for a block of 4 output channels, one input channel and one kernel row, 3·4 vector accumulators
// (one per column tap and output channel) run over a block of output rows, then are summed across lanes.
#include "CTensorKernels.h"
#include "Dispatch.h"
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
typedef int i16v __attribute__((vector_size(64)));

#define INLINE static inline __attribute__((always_inline))

INLINE v16 load16(const float *p) { return *(const v16u *)p; }
INLINE void store16(float *p, v16 v) { *(v16u *)p = v; }
// s − (+0) is s for every s (−0 and NaN included), so this folds to a plain broadcast.
INLINE v16 splat(float s) { return s - (v16){0}; }
// Columns k…k+15 of the 32 columns a ‖ b (valignd on AVX-512): the taps of one row at column offsets 1 and 2 come from
// two aligned loads instead of unaligned loads that split cache lines.
INLINE v16 shift1(v16 a, v16 b) {
    return __builtin_shufflevector(a, b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
}
INLINE v16 shift2(v16 a, v16 b) {
    return __builtin_shufflevector(a, b, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17);
}

// max(v, 0) keeping NaN (as `t < 0 ? 0 : t`).
INLINE v16 relu16(v16 v) { return (v16)((i16v)v & ~(v < 0)); }
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
// Sum of the 16 lanes as a tree (4 dependent adds instead of 16).
INLINE float hsum(v16 v) {
    v8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    v4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}

static inline size_t round16(int n) { return ((size_t)n + 15) / 16 * 16; }

size_t tk_conv3_row_stride(int width) { return round16(width) + 16; }

size_t tk_conv3_padded_count(int channels, int depth, int height, int width, int three_d) {
    size_t dp = (size_t)depth + (three_d ? 2 : 0);
    return (size_t)channels * dp * ((size_t)height + 2) * tk_conv3_row_stride(width);
}

void tk_conv3_pad(const float *x, int channels, int depth, int height, int width, int three_d, float *padded) {
    // Every element is written exactly once (halo planes, halo rows and each row's zero columns explicitly), so the
    // buffer may hold anything before: callers reuse buffers across calls without clearing them first.
    size_t ld = tk_conv3_row_stride(width), hp = (size_t)height + 2, pd = three_d ? 1 : 0;
    size_t dp = (size_t)depth + 2 * pd, plane = hp * ld, w = (size_t)width;
    for (size_t c = 0; c < (size_t)channels; c++) {
        float *pc = padded + c * dp * plane;
        if (pd) {
            memset(pc, 0, plane * sizeof(float));
            memset(pc + (dp - 1) * plane, 0, plane * sizeof(float));
        }
        for (size_t d = 0; d < (size_t)depth; d++) {
            float *pp = pc + (d + pd) * plane;
            memset(pp, 0, ld * sizeof(float));
            memset(pp + (hp - 1) * ld, 0, ld * sizeof(float));
            for (size_t h = 0; h < (size_t)height; h++) {
                const float *src = x + ((c * depth + d) * height + h) * w;
                float *dst = pp + (h + 1) * ld;
                // The zero tail (15 to 30 columns, ld ≥ 32) as two vector stores from the row's end, before the
                // data that they may overlap (a memset call per row costs more than the copy on narrow rows).
                store16(dst + ld - 16, (v16){0});
                store16(dst + ld - 32, (v16){0});
                dst[0] = 0;
                memcpy(dst + 1, src, w * sizeof(float));
            }
        }
    }
}

// MARK: - Forward

// One block: COB output channels × V vectors of 16 columns of one output row.
//   x: padded input at channel 0, first plane and row of this output row's window, column w0
//   w: weights of the block's first output channel; wco floats between output channels
//   y: output at the block's first channel, this row, column w0; ychan floats between channels
#define DEFINE_FORWARD_BLOCK(COB, V)                                                                                 \
    INLINE void forward_##COB##x##V(const float *x, int cin, size_t chan, size_t plane, size_t ld, int kd,          \
                                    const float *w, size_t wco, const float *bias, int relu, const float *mask,    \
                                    float *y, size_t ychan, int valid) {                                            \
        v16 acc[COB][V];                                                                                            \
        for (int j = 0; j < COB; j++) {                                                                             \
            v16 b = splat(bias ? bias[j] : 0.f);                                                                    \
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
                    v16 l[V + 1];                                                                                   \
                    for (int v = 0; v <= V; v++) l[v] = load16(r + 16 * v);                                         \
                    for (int kw = 0; kw < 3; kw++) {                                                                \
                        v16 xv[V];                                                                                  \
                        for (int v = 0; v < V; v++)                                                                 \
                            xv[v] = kw == 0 ? l[v] : kw == 1 ? shift1(l[v], l[v + 1]) : shift2(l[v], l[v + 1]);     \
                        for (int j = 0; j < COB; j++) {                                                             \
                            v16 s = splat(wt[j * wco + kw]);                                                        \
                            for (int v = 0; v < V; v++) acc[j][v] += s * xv[v];                                     \
                        }                                                                                           \
                    }                                                                                               \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        for (int j = 0; j < COB; j++) {                                                                             \
            for (int v = 0; v < V; v++) {                                                                           \
                v16 t = acc[j][v];                                                                                  \
                if (relu) t = relu16(t);                                                                           \
                float *dst = y + j * ychan + 16 * v;                                                                \
                int n = valid - 16 * v;                                                                             \
                if (mask && n > 0) { /* ∂x · [h > 0]: the ReLU backward of the layer before, fused */              \
                    v16 m;                                                                                          \
                    if (n >= 16) {                                                                                  \
                        m = load16(mask + j * ychan + 16 * v);                                                      \
                    } else {                                                                                        \
                        float tail[16] = {0};                                                                       \
                        memcpy(tail, mask + j * ychan + 16 * v, (size_t)n * sizeof(float));                         \
                        m = load16(tail);                                                                           \
                    }                                                                                               \
                    t = (v16)((i16v)t & (m > 0));                                                                   \
                }                                                                                                   \
                if (n >= 16) {                                                                                      \
                    store16(dst, t);                                                                                \
                } else if (n > 0) {                                                                                 \
                    float tmp[16];                                                                                  \
                    store16(tmp, t);                                                                                \
                    memcpy(dst, tmp, (size_t)n * sizeof(float));                                                    \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
    }

DEFINE_FORWARD_BLOCK(4, 4)
DEFINE_FORWARD_BLOCK(8, 2)
DEFINE_FORWARD_BLOCK(8, 1)
DEFINE_FORWARD_BLOCK(4, 2)
DEFINE_FORWARD_BLOCK(4, 1)
DEFINE_FORWARD_BLOCK(1, 4)
DEFINE_FORWARD_BLOCK(1, 2)
DEFINE_FORWARD_BLOCK(1, 1)

// Narrow rows (≤ 32 columns) take 8 output channels per block, so that at least 8 independent accumulators hide
// the FMA latency.
#define FORWARD_NARROW(COB)                                                                                          \
    do {                                                                                                            \
        if (wp == 32)                                                                                               \
            forward_##COB##x2(xr, cin, chan, plane, ld, kd, weight + co * wco, wco, bias ? bias + co : 0, relu,     \
                              mr ? mr + co * ychan : 0, yr + co * ychan, ychan, width);                                                       \
        else                                                                                                        \
            forward_##COB##x1(xr, cin, chan, plane, ld, kd, weight + co * wco, wco, bias ? bias + co : 0, relu,     \
                              mr ? mr + co * ychan : 0, yr + co * ychan, ychan, width);                                                       \
    } while (0)

#define FORWARD_ROW(COB)                                                                                             \
    do {                                                                                                            \
        int w0 = 0;                                                                                                 \
        for (; w0 + 64 <= wp; w0 += 64)                                                                             \
            forward_##COB##x4(xr + w0, cin, chan, plane, ld, kd, weight + co * wco, wco, bias ? bias + co : 0, relu, \
                              mr ? mr + co * ychan + w0 : 0, yr + co * ychan + w0, ychan, width - w0);                                             \
        if (w0 + 32 <= wp) {                                                                                        \
            forward_##COB##x2(xr + w0, cin, chan, plane, ld, kd, weight + co * wco, wco, bias ? bias + co : 0, relu, \
                              mr ? mr + co * ychan + w0 : 0, yr + co * ychan + w0, ychan, width - w0);                                             \
            w0 += 32;                                                                                               \
        }                                                                                                           \
        if (w0 < wp)                                                                                                \
            forward_##COB##x1(xr + w0, cin, chan, plane, ld, kd, weight + co * wco, wco, bias ? bias + co : 0, relu, \
                              mr ? mr + co * ychan + w0 : 0, yr + co * ychan + w0, ychan, width - w0);                                             \
    } while (0)

INLINE void forward_impl(const float *padded, int cin, int depth, int height, int width, int three_d,
                         const float *weight, int cout, const float *bias, int relu, const float *mask, float *y) {
    const int kd = three_d ? 3 : 1;
    const size_t ld = tk_conv3_row_stride(width), plane = ((size_t)height + 2) * ld;
    const size_t chan = ((size_t)depth + (three_d ? 2 : 0)) * plane;
    const size_t wco = (size_t)cin * kd * 9, ychan = (size_t)depth * height * width;
    const int wp = (int)round16(width);
    for (int od = 0; od < depth; od++) {
        for (int oh = 0; oh < height; oh++) {
            const float *xr = padded + od * plane + oh * ld;
            float *yr = y + ((size_t)od * height + oh) * width;
            const float *mr = mask ? mask + ((size_t)od * height + oh) * width : 0;
            int co = 0;
            if (wp <= 32)
                for (; co + 8 <= cout; co += 8) FORWARD_NARROW(8);
            for (; co + 4 <= cout; co += 4) FORWARD_ROW(4);
            for (; co < cout; co++) FORWARD_ROW(1);
        }
    }
}

// MARK: - Weight gradient

// gw[co + j][ci][a][kh][0…2] for j < COB, one input channel ci, one depth tap a and kernel row kh, over the output
// rows [r0, r1): 3·COB vector accumulators (COB = 4: 12 accumulators, 2 input loads and 2 shifts per 12 FMAs; with
// 8 the compiler runs out of the 32 registers and spills).
//   x: padded input of channel ci at plane a, row kh;  g: padded ∂y of channel co (gchan floats per channel)
#define DEFINE_GRADIENT_BLOCK(COB)                                                                                   \
    INLINE void gradient_##COB(const float *x, size_t plane, size_t ld, const float *g, size_t gchan, int height,   \
                               int wp, int r0, int r1, float *gw, size_t wco) {                                     \
        v16 acc[COB][3];                                                                                            \
        for (int j = 0; j < COB; j++)                                                                               \
            for (int t = 0; t < 3; t++) acc[j][t] = splat(0);                                                       \
        int od = r0 / height, oh = r0 % height; /* the row's plane and row, stepped (no division per row) */ \
        for (int r = r0; r < r1; r++, oh = oh + 1 == height ? 0 : oh + 1, od += oh == 0) {                       \
            const float *xr = x + od * plane + oh * ld;                                                             \
            const float *gr = g + (size_t)r * wp;                                                                   \
            for (int w = 0; w < wp; w += 16) {                                                                      \
                v16 lo = load16(xr + w), hi = load16(xr + w + 16);                                                  \
                v16 x1 = shift1(lo, hi), x2 = shift2(lo, hi);                                                       \
                for (int j = 0; j < COB; j++) {                                                                     \
                    v16 gv = load16(gr + j * gchan + w);                                                            \
                    acc[j][0] += gv * lo;                                                                           \
                    acc[j][1] += gv * x1;                                                                           \
                    acc[j][2] += gv * x2;                                                                           \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        for (int j = 0; j < COB; j++)                                                                               \
            for (int t = 0; t < 3; t++) gw[j * wco + t] += hsum(acc[j][t]);                                         \
    }

DEFINE_GRADIENT_BLOCK(4)
DEFINE_GRADIENT_BLOCK(2)
DEFINE_GRADIENT_BLOCK(1)

size_t tk_conv3_gradient_scratch_count(int cout, int depth, int height, int width) {
    return (size_t)cout * depth * height * round16(width);
}

// Blocks of output rows whose ∂y for a block of output channels stays in L1 (32 KB) while every input channel and tap
// passes over it; the input rows of the block stay in L2.
int tk_conv3_gradient_block_rows(int width) {
    const int block = (int)(8192 / (8 * round16(width)));
    return block < 1 ? 1 : block;
}

INLINE void weight_gradient_impl(const float *padded, int cin, int depth, int height, int width, int three_d,
                                 const float *gy, int cout, float *gw, float *scratch) {
    const int kd = three_d ? 3 : 1;
    const size_t ld = tk_conv3_row_stride(width), plane = ((size_t)height + 2) * ld;
    const size_t chan = ((size_t)depth + (three_d ? 2 : 0)) * plane;
    const size_t wco = (size_t)cin * kd * 9;
    const int wp = (int)round16(width), rows = depth * height;
    const size_t gchan = (size_t)rows * wp;
    // ∂y with rows padded to a multiple of 16 columns (zeros past `width`, so those columns add nothing); read in
    // place when the rows are already a multiple of 16 wide.
    const float *gsrc = scratch;
    if (wp == width) gsrc = gy;
    else for (size_t o = 0; o < (size_t)cout; o++) {
        for (size_t r = 0; r < (size_t)rows; r++) {
            float *dst = scratch + o * gchan + r * wp;
            memcpy(dst, gy + (o * rows + r) * width, (size_t)width * sizeof(float));
            if (wp > width) memset(dst + width, 0, (size_t)(wp - width) * sizeof(float));
        }
    }
    const int block = tk_conv3_gradient_block_rows(width);
    for (int r0 = 0; r0 < rows; r0 += block) {
        const int r1 = r0 + block < rows ? r0 + block : rows;
        int co = 0;
#define GRADIENT_CHANNELS(COB)                                                                                       \
    for (int ci = 0; ci < cin; ci++)                                                                                \
        for (int a = 0; a < kd; a++)                                                                                \
            for (int kh = 0; kh < 3; kh++)                                                                          \
                gradient_##COB(padded + ci * chan + a * plane + kh * ld, plane, ld, gsrc + co * gchan, gchan,    \
                               height, wp, r0, r1, gw + co * wco + (size_t)ci * kd * 9 + a * 9 + kh * 3, wco)
        for (; co + 4 <= cout; co += 4) GRADIENT_CHANNELS(4);
        for (; co + 2 <= cout; co += 2) GRADIENT_CHANNELS(2);
        for (; co < cout; co++) GRADIENT_CHANNELS(1);
#undef GRADIENT_CHANNELS
    }
}

// MARK: - Instruction-set dispatch

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))

TK_AVX512 static void forward_avx512(const float *p, int cin, int d, int h, int w, int t, const float *wt, int cout,
                                     const float *b, int relu, const float *m, float *y) {
    forward_impl(p, cin, d, h, w, t, wt, cout, b, relu, m, y);
}
// AVX2: the 8-float kernels of Conv3AVX2.c.
#define forward_avx2 tk_conv3_forward_avx2
TK_AVX512 static void gradient_avx512(const float *p, int cin, int d, int h, int w, int t, const float *gy, int cout,
                                      float *gw, float *s) {
    weight_gradient_impl(p, cin, d, h, w, t, gy, cout, gw, s);
}
#define gradient_avx2 tk_conv3_weight_gradient_avx2

#endif

void tk_conv3_forward(const float *padded, int cin, int depth, int height, int width, int three_d,
                      const float *weight, int cout, const float *bias, int relu, const float *mask, float *y) {
    DISPATCH(forward, padded, cin, depth, height, width, three_d, weight, cout, bias, relu, mask, y)
    forward_impl(padded, cin, depth, height, width, three_d, weight, cout, bias, relu, mask, y);
}

void tk_conv3_weight_gradient(const float *padded, int cin, int depth, int height, int width, int three_d,
                              const float *gy, int cout, float *gw, float *scratch) {
    DISPATCH(gradient, padded, cin, depth, height, width, three_d, gy, cout, gw, scratch)
    weight_gradient_impl(padded, cin, depth, height, width, three_d, gy, cout, gw, scratch);
}

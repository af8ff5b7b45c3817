// Winograd F(2×2, 3×3) transforms for 2-D 3×3 stride-1 padding-1 convolutions (Lavin & Gray 2016); the 16
// element-wise products summed over input channels are 16 GEMMs the caller runs with sgemm. See
// include/CTensorKernels.h for layouts.
//
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]   G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]   Aᵀ = [1 1 1 0; 0 1 −1 −1]
//   V = Bᵀ d B (d: 4×4 input tile at rows 2i−1…2i+2, columns 2j−1…2j+2),  U = G g Gᵀ,  Y = Aᵀ (Σ_ci U ⊙ V) A.
//
// The loops run over the tiles of one tile row with unit stride (even and odd columns split first), so the compiler
// vectorises them; they are compiled per instruction set and dispatched at run time as Conv3.c.
#include "CTensorKernels.h"
#include "Dispatch.h"
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
#define MAX_TILES 512  // tiles per tile row: widths up to 1024

void tk_wino2_weights(const float *w, int cout, int cin, float *u) {
    const size_t plane = (size_t)cout * cin;
    for (size_t o = 0; o < (size_t)cout; o++) {
        for (size_t i = 0; i < (size_t)cin; i++) {
            const float *g = w + (o * cin + i) * 9;
            float t[4][3];  // G g
            for (int c = 0; c < 3; c++) {
                float g0 = g[c], g1 = g[3 + c], g2 = g[6 + c];
                t[0][c] = g0;
                t[1][c] = 0.5f * (g0 + g1 + g2);
                t[2][c] = 0.5f * (g0 - g1 + g2);
                t[3][c] = g2;
            }
            for (int r = 0; r < 4; r++) {  // (G g) Gᵀ
                float a = t[r][0], b = t[r][1], c = t[r][2];
                float *dst = u + (size_t)(r * 4) * plane + o * cin + i;
                dst[0] = a;
                dst[plane] = 0.5f * (a + b + c);
                dst[2 * plane] = 0.5f * (a - b + c);
                dst[3 * plane] = c;
            }
        }
    }
}

// One input row of the padded image (row index −1 … height): even/odd split of columns −1 … width.
//   om[j] = x[2j − 1], e[j] = x[2j], o[j] = x[2j + 1], ep[j] = x[2j + 2]   (zero outside the image)
INLINE void split_row(const float *row, int width, int tw, float *om, float *e, float *o, float *ep) {
    if (!row) {
        memset(om, 0, tw * sizeof(float)); memset(e, 0, tw * sizeof(float));
        memset(o, 0, tw * sizeof(float)); memset(ep, 0, tw * sizeof(float));
        return;
    }
    for (int j = 0; j < tw; j++) {
        e[j] = row[2 * j];
        o[j] = row[2 * j + 1];
    }
    om[0] = 0;
    for (int j = 1; j < tw; j++) om[j] = o[j - 1];
    for (int j = 0; j + 1 < tw; j++) ep[j] = e[j + 1];
    ep[tw - 1] = 0;
    (void)width;
}

INLINE void input_impl(const float *x, int height, int width, float *v, size_t xi_stride) {
    const int th = height / 2, tw = width / 2;
    float s[4][4][MAX_TILES];  // s[row][column tap] after the column transform d·B
    float om[MAX_TILES], e[MAX_TILES], o[MAX_TILES], ep[MAX_TILES];
    for (int i = 0; i < th; i++) {
        for (int r = 0; r < 4; r++) {
            const int y = 2 * i - 1 + r;
            split_row(y >= 0 && y < height ? x + (size_t)y * width : 0, width, tw, om, e, o, ep);
            float *s0 = s[r][0], *s1 = s[r][1], *s2 = s[r][2], *s3 = s[r][3];
            for (int j = 0; j < tw; j++) {
                s0[j] = om[j] - o[j];
                s1[j] = e[j] + o[j];
                s2[j] = o[j] - e[j];
                s3[j] = e[j] - ep[j];
            }
        }
        float *base = v + (size_t)i * tw;
        for (int c = 0; c < 4; c++) {
            const float *a = s[0][c], *b = s[1][c], *cc = s[2][c], *d = s[3][c];
            float *v0 = base + (size_t)(0 * 4 + c) * xi_stride, *v1 = base + (size_t)(1 * 4 + c) * xi_stride;
            float *v2 = base + (size_t)(2 * 4 + c) * xi_stride, *v3 = base + (size_t)(3 * 4 + c) * xi_stride;
            for (int j = 0; j < tw; j++) {
                v0[j] = a[j] - cc[j];
                v1[j] = b[j] + cc[j];
                v2[j] = cc[j] - b[j];
                v3[j] = b[j] - d[j];
            }
        }
    }
}

INLINE void output_impl(const float *m, size_t xi_stride, int height, int width, float bias, int relu,
                        const float *mask, float *y) {
    const int th = height / 2, tw = width / 2;
    float t[2][4][MAX_TILES];  // Aᵀ M over rows: t[output row][column tap]
    for (int i = 0; i < th; i++) {
        const float *base = m + (size_t)i * tw;
        for (int c = 0; c < 4; c++) {
            const float *m0 = base + (size_t)(0 * 4 + c) * xi_stride, *m1 = base + (size_t)(1 * 4 + c) * xi_stride;
            const float *m2 = base + (size_t)(2 * 4 + c) * xi_stride, *m3 = base + (size_t)(3 * 4 + c) * xi_stride;
            float *t0 = t[0][c], *t1 = t[1][c];
            for (int j = 0; j < tw; j++) {
                t0[j] = m0[j] + m1[j] + m2[j];
                t1[j] = m1[j] - m2[j] - m3[j];
            }
        }
        for (int a = 0; a < 2; a++) {
            const float *c0 = t[a][0], *c1 = t[a][1], *c2 = t[a][2], *c3 = t[a][3];
            float *dst = y + (size_t)(2 * i + a) * width;
            const float *mk = mask ? mask + (size_t)(2 * i + a) * width : 0;
            for (int j = 0; j < tw; j++) {
                float y0 = c0[j] + c1[j] + c2[j] + bias, y1 = c1[j] - c2[j] - c3[j] + bias;
                if (relu) { y0 = y0 < 0 ? 0 : y0; y1 = y1 < 0 ? 0 : y1; }
                if (mk) { y0 = mk[2 * j] > 0 ? y0 : 0; y1 = mk[2 * j + 1] > 0 ? y1 : 0; }
                dst[2 * j] = y0;
                dst[2 * j + 1] = y1;
            }
        }
    }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
TK_AVX512 static void input_avx512(const float *x, int h, int w, float *v, size_t s) { input_impl(x, h, w, v, s); }
TK_AVX2 static void input_avx2(const float *x, int h, int w, float *v, size_t s) { input_impl(x, h, w, v, s); }
TK_AVX512 static void output_avx512(const float *m, size_t s, int h, int w, float b, int r, const float *k, float *y) {
    output_impl(m, s, h, w, b, r, k, y);
}
TK_AVX2 static void output_avx2(const float *m, size_t s, int h, int w, float b, int r, const float *k, float *y) {
    output_impl(m, s, h, w, b, r, k, y);
}
#endif

int tk_wino2_supports(int height, int width) {
    return height >= 2 && width >= 2 && height % 2 == 0 && width % 2 == 0 && width / 2 <= MAX_TILES;
}

void tk_wino2_input(const float *x, int height, int width, float *v, size_t xi_stride) {
    DISPATCH(input, x, height, width, v, xi_stride)
    input_impl(x, height, width, v, xi_stride);
}

void tk_wino2_output(const float *m, size_t xi_stride, int height, int width, float bias, int relu,
                     const float *mask, float *y) {
    DISPATCH(output, m, xi_stride, height, width, bias, relu, mask, y)
    output_impl(m, xi_stride, height, width, bias, relu, mask, y);
}

#ifndef CTENSORKERNELS_H
#define CTENSORKERNELS_H
// Direct SIMD kernels for 3×3 (2-D) and 3×3×3 (3-D) convolutions with stride 1 and padding 1, imported only by the
// Swift module `Tensors`. Plain C (GCC/Clang vector extensions): compiled once per instruction set (AVX-512, AVX2 +
// FMA, baseline) and chosen at run time from the CPU's features.
//
// Layouts (row-major, float32):
//   image      x[channels][depth][height][width]                       (depth = 1 for 2-D)
//   weight     w[cout][cin][kd][3][3]                                   (PyTorch's layout; kd = 3 for 3-D, 1 for 2-D)
//   padded     p[channels][depth + 2·pd][height + 2][ld]                (pd = 1 for 3-D, 0 for 2-D; ld from
//              tk_conv3_row_stride; input column c is at padded column c + 1; every other element is 0)
// One call handles one image; callers run images on their own threads (the functions keep no state). `padded` and
// `scratch` should be 64-byte aligned: every row then starts on a cache line and the kernels' loads never split one
// (any alignment gives the same results).
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Floats in one padded row (a multiple of 16, at least round_up(width, 16) + 16).
size_t tk_conv3_row_stride(int width);

/// Floats of the padded copy of an image of `channels` × depth × height × width.
size_t tk_conv3_padded_count(int channels, int depth, int height, int width, int three_d);

/// Writes the zero-padded copy of `x` (layout above) into `padded` (tk_conv3_padded_count floats). Every element of
/// `padded` is written, so it need not be cleared first.
void tk_conv3_pad(const float *x, int channels, int depth, int height, int width, int three_d, float *padded);

/// y[o][d][h][w] = bias[o] + Σ_{i, taps} w[o][i][taps] · x[i][d + a − pd][h + b − 1][w + c − 1], then max(·, 0) when
/// `relu` is non-zero, then times [mask[o][d][h][w] > 0] when `mask` is not NULL (a ReLU backward fused into a
/// convolution that computes ∂x). `bias` and `mask` may be NULL. `padded` comes from tk_conv3_pad; y and mask are
/// [cout][depth][height][width].
void tk_conv3_forward(const float *padded, int cin, int depth, int height, int width, int three_d,
                      const float *weight, int cout, const float *bias, int relu, const float *mask, float *y);

/// Floats of the scratch buffer tk_conv3_weight_gradient needs for `cout` output channels.
size_t tk_conv3_gradient_scratch_count(int cout, int depth, int height, int width);

/// Output rows tk_conv3_weight_gradient (AVX-512 and baseline) sums in vector lanes before its lane sums: a call over
/// fewer rows (one small image) spends a larger share on those sums, so callers stack images to reach it.
int tk_conv3_gradient_block_rows(int width);

/// gw[o][i][taps] += Σ_{d,h,w} gy[o][d][h][w] · x[i][d + a − pd][h + b − 1][w + c − 1] (accumulates into gw).
/// `padded` comes from tk_conv3_pad of x; gy is [cout][depth][height][width]; `scratch` holds
/// tk_conv3_gradient_scratch_count floats (unused when width is a multiple of 16: gy is then read in place).
void tk_conv3_weight_gradient(const float *padded, int cin, int depth, int height, int width, int three_d,
                              const float *gy, int cout, float *gw, float *scratch);

/// out[i] = y[i] > 0 ? g[i] : 0 (the ReLU backward from the forward output y; out may be g).
void tk_relu_backward(const float *g, const float *y, float *out, size_t count);

/// Max pooling with window 2 and stride 2 over `planes` planes of depth × height × width (depth = 1 and three_d = 0
/// for 2-D; extents rounded down). y[p][od][oh][ow] is the maximum of the window and argmax the flat index within
/// the plane of the first maximum in scan order (a NaN wins over every number, the first NaN over later ones).
void tk_maxpool2(const float *x, int planes, int depth, int height, int width, int three_d, float *y, int *argmax);

// Winograd F(2×2, 3×3) for 2-D 3×3 stride-1 padding-1 convolutions (Winograd.c). With T = (height/2)·(width/2)
// tiles per image and NT = batch·T, the caller lays out
//   u[16][cout][cin]       transformed weights (tk_wino2_weights)
//   v[16][cin][NT]         transformed input tiles: image b, channel i at v + i·NT + b·T, xi_stride = cin·NT
//   m[16][cout][NT]        m[ξ] = u[ξ] · v[ξ] (16 GEMMs), image b, channel o at m + o·NT + b·T, xi_stride = cout·NT
// and tile t = ti·(width/2) + tj covers output rows 2ti, 2ti+1 and columns 2tj, 2tj+1.

/// Whether the transforms handle an image of height × width (both even, width ≤ 1024).
int tk_wino2_supports(int height, int width);

/// u[ξ][o][i] = (G w[o][i] Gᵀ)[ξ] for w [cout][cin][3][3].
void tk_wino2_weights(const float *w, int cout, int cin, float *u);

/// The 16 transformed values of every tile of one channel x [height][width]: v[ξ·xi_stride + t] = (Bᵀ d_t B)[ξ].
void tk_wino2_input(const float *x, int height, int width, float *v, size_t xi_stride);

/// One output channel y [height][width] from m[ξ·xi_stride + t]: y = Aᵀ m A + bias, then max(·, 0) when `relu`,
/// then times [mask > 0] when `mask` ([height][width]) is not NULL.
void tk_wino2_output(const float *m, size_t xi_stride, int height, int width, float bias, int relu,
                     const float *mask, float *y);

// Instruction set of the kernels, chosen at run time: 2 = AVX-512 (F, VL, BW, DQ) + AVX2 + FMA, 1 = AVX2 + FMA,
// 0 = baseline (portable C, SSE2 on x86-64). Never one the CPU lacks.

/// What this CPU supports (0, 1 or 2 as above).
int tk_isa_detected(void);

/// The level the kernels use: tk_isa_detected(), lowered on first use by the environment variable
/// TESSERA_KERNELS_ISA (avx512, avx2 or baseline; a value the CPU lacks or does not name a level is ignored, see
/// tk_isa_environment_status) or later by tk_set_isa_limit.
int tk_isa(void);

/// 0, 1 or 2 for "baseline", "avx2" or "avx512"; -1 for anything else (NULL included).
int tk_isa_parse(const char *name);

enum { TK_ISA_ENV_UNSET = 0, TK_ISA_ENV_APPLIED = 1, TK_ISA_ENV_INVALID = 2, TK_ISA_ENV_UNSUPPORTED = 3 };

/// What became of TESSERA_KERNELS_ISA at first use (TK_ISA_ENV_*).
int tk_isa_environment_status(void);

/// Sets the level to min(limit, tk_isa_detected()) (at least 0) for every later kernel call and returns it. For
/// tests that run the lower paths on a better CPU; results differ only by summation order.
int tk_set_isa_limit(int limit);

/// glibc: serve large blocks from the heap instead of fresh mappings and never trim it, so freed training buffers
/// are reused without page faults. Returns 1 when applied, 0 otherwise (another C library).
int tk_retain_freed_memory(void);

/// Σ x[i] for i < count: 64 float lanes, combined in double at the end.
double tk_sum(const float *x, size_t count);

#ifdef __cplusplus
}
#endif
#endif

// Micro-benchmark of the direct convolution kernels (CTensorKernels) on one image of one layer, on every
// instruction-set path this CPU has (tk_set_isa_limit): forward and ∂W, fastest of 5 in process CPU time, GFLOP/s,
// and each lower path's largest difference from the best path's result (forward absolute, ∂W relative).
//
// build: S=Sources/CTensorKernels; clang -O3 -Wno-psabi -I$S/include -I$S Benchmarks/conv3_kernels.c \
//          $S/Conv3.c $S/Conv3AVX2.c $S/Dispatch.c -o /tmp/conv3_kernels -lm
// usage: /tmp/conv3_kernels CIN COUT SIDE [3D]      e.g. 16 16 128 (a unet2d layer), 8 8 64 1 (a unet3d layer)
#include "CTensorKernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float *floats(size_t count) {
    float *p = aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memset(p, 0, count * sizeof(float));
    return p;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s CIN COUT SIDE [3D]\n", argv[0]);
        return 2;
    }
    const int cin = atoi(argv[1]), cout = atoi(argv[2]), side = atoi(argv[3]);
    const int three_d = argc > 4 && atoi(argv[4]) != 0;
    if (cin < 1 || cout < 1 || side < 1 || cin > 1024 || cout > 1024 || side > 512) {
        fprintf(stderr, "CIN and COUT must be 1…1024, SIDE 1…512\n");
        return 2;
    }
    const int d = three_d ? side : 1, h = side, w = side;
    const size_t pixels = (size_t)d * h * w, taps = three_d ? 27 : 9, wcount = (size_t)cout * cin * taps;
    float *x = floats((size_t)cin * pixels), *padded = floats(tk_conv3_padded_count(cin, d, h, w, three_d));
    float *weight = floats(wcount), *y = floats((size_t)cout * pixels), *y0 = floats((size_t)cout * pixels);
    float *gw = floats(wcount), *gw0 = floats(wcount);
    float *scratch = floats(tk_conv3_gradient_scratch_count(cout, d, h, w) + 16);
    srand(1);
    for (size_t i = 0; i < (size_t)cin * pixels; i++) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (size_t i = 0; i < wcount; i++) weight[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    tk_conv3_pad(x, cin, d, h, w, three_d, padded);
    const double flops = 2.0 * (double)cout * cin * (double)taps * (double)pixels;
    const int best = tk_isa_detected();
    for (int level = best; level >= 0; level--) {
        tk_set_isa_limit(level);
        double forward = 1e30, gradient = 1e30;
        for (int r = 0; r < 5; r++) {
            double t0 = cpu_seconds();
            tk_conv3_forward(padded, cin, d, h, w, three_d, weight, cout, NULL, 0, NULL, y);
            double t = cpu_seconds() - t0;
            if (t < forward) forward = t;
        }
        for (int r = 0; r < 5; r++) {
            memset(gw, 0, wcount * sizeof(float));
            double t0 = cpu_seconds();
            tk_conv3_weight_gradient(padded, cin, d, h, w, three_d, y, cout, gw, scratch);
            double t = cpu_seconds() - t0;
            if (t < gradient) gradient = t;
        }
        double dy = 0, dw = 0;
        if (level == best) {
            memcpy(y0, y, (size_t)cout * pixels * sizeof(float));
            memcpy(gw0, gw, wcount * sizeof(float));
        } else {
            for (size_t i = 0; i < (size_t)cout * pixels; i++) dy = fmax(dy, fabs(y[i] - y0[i]));
            for (size_t i = 0; i < wcount; i++) dw = fmax(dw, fabs(gw[i] - gw0[i]) / (1 + fabs(gw0[i])));
        }
        printf("%d->%d @%d%s isa %d: fwd %.3f ms %.0f GF/s  dW %.3f ms %.0f GF/s  diff %.2g %.2g\n", cin, cout, side,
               three_d ? "^3" : "^2", level, forward * 1e3, flops / forward * 1e-9, gradient * 1e3,
               flops / gradient * 1e-9, dy, dw);
    }
    return 0;
}

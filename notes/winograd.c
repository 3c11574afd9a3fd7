// notes/winograd.c — where does Winograd F(2x2, 3x3) pay off on this U-Net's convolutions?
//
// diffusion.c (PART II, "Winograd") computes a 3x3 stride-1 convolution on 2x2 output tiles with 16
// multiplies instead of 36 (Lavin & Gray 2016): input and filter transforms, 16 matrix products
// through gemm, an output transform. It does so only where winograd_group says (C, OC >= 32, an
// even size). This probe times, for every 3x3 stride-1 shape of the network with C, OC >= 32
// (bench's table), the forward and the input gradient both ways at batch 64 on one thread (CPU
// time, best of 5): direct (the padded-grid product) and Winograd (conv2d_winograd, on groups of
// images ~256 tile columns wide), whatever the rule says; and it checks that both give the same
// numbers. Its ratios are what the rule in winograd_group was chosen from (notes/speed.md).
//
//   cc -O3 -march=native -fno-trapping-math notes/winograd.c -lm -o /tmp/winograd && /tmp/winograd
//
// test.sh builds it and checks its error.
#define main bench_main  // this probe has its own
#include "bench.c"       // diffusion.c, and bench's table of the network's convolutions
#undef main

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

// out (B,OC,H,W) = the forward (dinp NULL) or dinp += the input gradient, by Winograd whatever
// winograd_group's rule says (flipped: the input gradient's kernel, as conv2d_input_grad makes it)
static void winograd_anyway(real *out, const real *inp, const real *w, int B, int C, int H, int W,
                            int OC, int accumulate, const Workspace *ws) {
    int T = H / 2 * (W / 2 + 1), G = T >= 256 ? 1 : 256 / T;
    winograd_filter(ws->wino_u, w, OC, C);
    conv2d_winograd(out, inp, ws->wino_u, B, C, H, W, OC, G, accumulate, ws);
}

int main(int argc, char **argv) {
    int B = 64, reps = argc > 1 && !strcmp(argv[1], "--quick") ? 1 : 5;
    Model *m = model_create(&DEFAULT_CONFIG, B);
    double total[2][2] = {{0, 0}, {0, 0}}, worst = 0;  // [forward, input grad][direct, Winograd]
    printf("batch %d, 1 thread, ms (best of %d); ratio = direct / Winograd; rule: diffusion.c's "
           "winograd_group\n", B, reps);
    printf("shape          x   forward: direct  winograd  ratio   input grad: direct  winograd  "
           "ratio  rule  max err\n");
    for (int r = 0; r < BENCH_N_CONVS; r++) {
        int C = BENCH_CONVS[r].C, OC = BENCH_CONVS[r].OC, H = BENCH_CONVS[r].side, W = H;
        if (BENCH_CONVS[r].K != 3 || BENCH_CONVS[r].stride != 1 || C < 32 || OC < 32 || H % 2)
            continue;
        size_t nx = (size_t)B * C * H * W, ny = (size_t)B * OC * H * W;
        Rng rng = {7};
        real *x = random_array(nx, &rng), *w = random_array((size_t)OC * C * 9, &rng);
        real *dy = random_array(ny, &rng), *flipped = xmalloc((size_t)OC * C * 9 * sizeof(real));
        real *bias = xcalloc(OC, sizeof(real)), *y[2], *dx[2];
        for (int o = 0; o < OC; o++)  // conv2d_input_grad_flipped's kernel: (C, OC, 3, 3), turned
            for (int c = 0; c < C; c++)
                for (int k = 0; k < 9; k++)
                    flipped[((size_t)c * OC + o) * 9 + k] = w[((size_t)o * C + c) * 9 + 8 - k];
        double t[2][2] = {{1e9, 1e9}, {1e9, 1e9}};
        for (int k = 0; k < 2; k++) {
            y[k] = xcalloc(ny, sizeof(real));
            dx[k] = xcalloc(nx, sizeof(real));
            m->ws->winograd = 0;
            for (int rep = 0; rep < reps; rep++) {
                double t0 = cpu_seconds();
                if (k) winograd_anyway(y[k], x, w, B, C, H, W, OC, 0, m->ws);
                else conv2d_forward(y[k], x, w, bias, B, C, H, W, OC, 3, 1, m->ws);
                double t1 = cpu_seconds();
                memset(dx[k], 0, nx * sizeof(real));
                double t2 = cpu_seconds();
                if (k) winograd_anyway(dx[k], dy, flipped, B, OC, H, W, C, 1, m->ws);
                else conv2d_input_grad(dx[k], dy, w, B, C, H, W, OC, 3, 1, m->ws);
                t[0][k] = fmin(t[0][k], t1 - t0);
                t[1][k] = fmin(t[1][k], cpu_seconds() - t2);
            }
        }
        double gap = 0, top = 0;
        for (size_t i = 0; i < ny; i++) {
            gap = fmax(gap, fabs(y[0][i] - y[1][i]));
            top = fmax(top, fabs(y[0][i]));
        }
        double gap_dx = 0, top_dx = 0;
        for (size_t i = 0; i < nx; i++) {
            gap_dx = fmax(gap_dx, fabs(dx[0][i] - dx[1][i]));
            top_dx = fmax(top_dx, fabs(dx[0][i]));
        }
        double err = fmax(gap / top, gap_dx / top_dx);
        worst = fmax(worst, err);
        m->ws->winograd = 1;
        int n = BENCH_CONVS[r].count, fwd = winograd_group(m->ws, C, H, W, OC, 3, 1) > 0;
        int back = winograd_group(m->ws, OC, H, W, C, 3, 1) > 0;
        printf("%3d->%-3d @%-2d  %d  %15.2f  %8.2f  %5.2f  %18.2f  %8.2f  %5.2f  %c %c  %.1e\n", C,
               OC, H, n, 1e3 * t[0][0], 1e3 * t[0][1], t[0][0] / t[0][1], 1e3 * t[1][0],
               1e3 * t[1][1], t[1][0] / t[1][1], fwd ? 'W' : 'd', back ? 'W' : 'd', err);
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < 2; k++) total[i][k] += n * t[i][k];
        free_all(9, x, w, dy, flipped, bias, y[0], y[1], dx[0], dx[1]);
    }
    printf("all of them, times their count: forward direct %.1f ms, Winograd %.1f ms (%.2f); input "
           "gradient %.1f, %.1f ms (%.2f)\n", 1e3 * total[0][0], 1e3 * total[0][1],
           total[0][0] / total[0][1], 1e3 * total[1][0], 1e3 * total[1][1],
           total[1][0] / total[1][1]);
    printf("largest |winograd - direct| / largest |direct|: %.1e\n", worst);
    model_free(m);
    return 0;
}

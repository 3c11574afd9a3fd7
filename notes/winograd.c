// notes/winograd.c — where does Winograd F(2x2, 3x3) pay off on this U-Net's convolutions?
//
// diffusion.c (PART II, "Winograd") computes a 3x3 stride-1 convolution on 2x2 output tiles with 16
// multiplies instead of 36 (Lavin & Gray 2016): input and filter transforms, 16 matrix products
// through gemm, an output transform. It does so only where winograd_group says (C, OC >= 32), and
// for the weight gradient where winograd_weight_group says (C >= 64). This probe times, for every
// 3x3 stride-1 shape of the network with C, OC >= 32 (bench's table), the forward and both
// gradients both ways at batch 64 on one thread (CPU time, best of 5): direct (the padded-grid
// product) and Winograd (conv2d_winograd and conv2d_weight_grad_winograd, on groups of images of
// ~256 tiles), whatever the rules say; and it checks that both give the same numbers. Its ratios
// are what the rules were chosen from (notes/speed.md).
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

// The images per group winograd_group gives with Winograd switched on (the shapes here all have
// C, OC >= 32), whatever ws->winograd says.
static int group_anyway(Workspace *ws, int C, int H, int W, int OC) {
    int on = ws->winograd;
    ws->winograd = 1;
    int G = winograd_group(ws, C, H, W, OC, 3, 1);
    ws->winograd = on;
    return G;
}
// out (B,OC,H,W) = the forward (+ bias), or with bias NULL out += the input gradient, by Winograd
// whatever the rules say (flipped: the input gradient's kernel, as conv2d_input_grad makes it)
static void winograd_anyway(real *out, const real *inp, const real *w, const real *bias, int B,
                            int C, int H, int W, int OC, Workspace *ws) {
    int G = group_anyway(ws, C, H, W, OC);
    winograd_filter(ws->wino_u, w, OC, C);
    conv2d_winograd(out, inp, ws->wino_u, bias, B, C, H, W, OC, G, ws);
}

int main(int argc, char **argv) {
    int B = 64, reps = argc > 1 && !strcmp(argv[1], "--quick") ? 1 : 5;
    Model *m = model_create(&DEFAULT_CONFIG, B);
    const char *what[3] = {"forward", "input gradient", "weight gradient"};
    double total[3][2] = {{0}}, worst = 0;  // [forward, input grad, weight grad][direct, Winograd]
    printf("batch %d, 1 thread, ms (best of %d); ratio = direct / Winograd; rule: diffusion.c's "
           "winograd_group (forward, input gradient), winograd_weight_group\n", B, reps);
    printf("shape          x   forward: direct  winograd  ratio   input grad: direct  winograd  "
           "ratio   weight grad: direct  winograd  ratio  rule   max err\n");
    for (int r = 0; r < BENCH_N_CONVS; r++) {
        int C = BENCH_CONVS[r].C, OC = BENCH_CONVS[r].OC, H = BENCH_CONVS[r].side, W = H;
        if (BENCH_CONVS[r].K != 3 || BENCH_CONVS[r].stride != 1 || C < 32 || OC < 32)
            continue;
        size_t nx = (size_t)B * C * H * W, ny = (size_t)B * OC * H * W, nw = (size_t)OC * C * 9;
        Rng rng = {7};
        real *x = random_array(nx, &rng), *w = random_array(nw, &rng);
        real *dy = random_array(ny, &rng), *flipped = xmalloc(nw * sizeof(real));
        real *bias = xcalloc(OC, sizeof(real)), *y[2], *dx[2], *dw[2];
        for (int o = 0; o < OC; o++)  // conv2d_input_grad_flipped's kernel: (C, OC, 3, 3), turned
            for (int c = 0; c < C; c++)
                for (int k = 0; k < 9; k++)
                    flipped[((size_t)c * OC + o) * 9 + k] = w[((size_t)o * C + c) * 9 + 8 - k];
        double t[3][2] = {{1e9, 1e9}, {1e9, 1e9}, {1e9, 1e9}};
        int G = group_anyway(m->ws, C, H, W, OC);
        int room = (size_t)16 * C * OC <= m->ws->weight_size;  // else dU would overflow a slot
        for (int k = 0; k < 2; k++) {
            y[k] = xcalloc(ny, sizeof(real));
            dx[k] = xcalloc(nx, sizeof(real));
            dw[k] = xcalloc(nw, sizeof(real));
            m->ws->winograd = 0;
            for (int rep = 0; rep < reps; rep++) {
                double t0 = cpu_seconds();
                if (k) winograd_anyway(y[k], x, w, bias, B, C, H, W, OC, m->ws);
                else conv2d_forward(y[k], x, w, bias, B, C, H, W, OC, 3, 1, m->ws);
                double t1 = cpu_seconds();
                memset(dx[k], 0, nx * sizeof(real));
                memset(dw[k], 0, nw * sizeof(real));
                double t2 = cpu_seconds();
                if (k) winograd_anyway(dx[k], dy, flipped, NULL, B, OC, H, W, C, m->ws);
                else conv2d_input_grad(dx[k], dy, w, B, C, H, W, OC, 3, 1, m->ws);
                double t3 = cpu_seconds();
                if (k && room) conv2d_weight_grad_winograd(dw[k], dy, x, B, C, H, W, OC, G, m->ws);
                else conv2d_weight_grad(dw[k], NULL, dy, x, B, C, H, W, OC, 3, 1, m->ws);
                t[0][k] = fmin(t[0][k], t1 - t0);
                t[1][k] = fmin(t[1][k], t3 - t2);
                t[2][k] = fmin(t[2][k], cpu_seconds() - t3);
            }
        }
        const real *out[3][2] = {{y[0], y[1]}, {dx[0], dx[1]}, {dw[0], dw[1]}};
        size_t len[3] = {ny, nx, nw};
        double err = 0;
        for (int i = 0; i < 2 + room; i++) {
            double gap = 0, top = 0;
            for (size_t j = 0; j < len[i]; j++) {
                gap = fmax(gap, fabs(out[i][0][j] - out[i][1][j]));
                top = fmax(top, fabs(out[i][0][j]));
            }
            err = fmax(err, gap / top);
        }
        worst = fmax(worst, err);
        m->ws->winograd = 1;
        int n = BENCH_CONVS[r].count, fwd = winograd_group(m->ws, C, H, W, OC, 3, 1) > 0;
        int back = winograd_group(m->ws, OC, H, W, C, 3, 1) > 0;
        int wgrad = winograd_weight_group(m->ws, C, H, W, OC, 3, 1) > 0;
        printf("%3d->%-3d @%-2d  %d", C, OC, H, n);
        for (int i = 0; i < 3; i++)
            if (i < 2 || room)
                printf("  %*.2f  %8.2f  %5.2f", i ? 18 : 15, 1e3 * t[i][0], 1e3 * t[i][1],
                       t[i][0] / t[i][1]);
            else
                printf("  %18.2f  %8s  %5s", 1e3 * t[i][0], "no room", "-");
        printf("  %c %c %c  %.1e\n", fwd ? 'W' : 'd', back ? 'W' : 'd', wgrad ? 'W' : 'd', err);
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 2; k++) total[i][k] += n * t[i][i == 2 && !room ? 0 : k];
        free_all(11, x, w, dy, flipped, bias, y[0], y[1], dx[0], dx[1], dw[0], dw[1]);
    }
    printf("all of them, times their count:");
    for (int i = 0; i < 3; i++)
        printf("%s %s direct %.1f ms, Winograd %.1f ms (%.2f)", i ? ";" : "", what[i],
               1e3 * total[i][0], 1e3 * total[i][1], total[i][0] / total[i][1]);
    printf("\nlargest |winograd - direct| / largest |direct|: %.1e\n", worst);
    model_free(m);
    return 0;
}

// notes/bench.c — the speed of the default network (batch 64): training and sampling images/s,
// GFLOP/s per convolution shape against this machine's FMA peak, memory. A companion of
// diffusion.c: it includes the file whole, without its main. `make bench` runs it beside the same
// network in PyTorch (notes/bench.sh); by hand: cc -O3 -march=native -fopenmp notes/bench.c -lm.
#define DIFFUSION_NO_MAIN
#include "../diffusion.c"

// The checks' aarch64 caveat (notes/check.c) applies to the reductions here too.
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC optimize("no-tree-loop-vectorize")
#endif

// ---- `./diffusion bench`: the speed of the default network (batch 64), beside the FMA peak --
// The default U-Net's convolutions, grouped by shape: C -> OC channels, K x K, stride, on
// side x side inputs, `count` of them (params_layout's names). bench times each shape alone, and
// checks the table against the network's own tensors.
static const struct {
    int C, OC, K, stride, side, count;
    const char *layers;
} BENCH_CONVS[] = {
    {1, 32, 3, 1, 28, 1, "conv_in (no input gradient)"},
    {32, 32, 3, 1, 28, 3, "d0.conv1, d0.conv2, u2.conv2"},
    {32, 32, 3, 2, 28, 1, "ds0"},
    {32, 64, 3, 1, 14, 1, "d1.conv1"},
    {32, 64, 1, 1, 14, 1, "d1.skip"},
    {64, 64, 3, 1, 14, 3, "d1.conv2, us0, u1.conv2"},
    {64, 64, 3, 2, 14, 1, "ds1"},
    {64, 64, 3, 1, 7, 7, "conv1, conv2 of d2, m0, m1; u0.conv2"},
    {64, 64, 1, 1, 7, 4, "attn.q, .k, .v, .proj"},
    {128, 64, 3, 1, 7, 1, "u0.conv1"},
    {128, 64, 1, 1, 7, 1, "u0.skip"},
    {128, 64, 3, 1, 14, 1, "u1.conv1"},
    {128, 64, 1, 1, 14, 1, "u1.skip"},
    {64, 64, 3, 1, 28, 1, "us1"},
    {96, 32, 3, 1, 28, 1, "u2.conv1"},
    {96, 32, 1, 1, 28, 1, "u2.skip"},
    {32, 1, 3, 1, 28, 1, "out_conv"},
};
enum { BENCH_N_CONVS = sizeof BENCH_CONVS / sizeof BENCH_CONVS[0] };

// FLOPs per image (multiply-adds x 2, every one through gemm; elementwise layers, ~1%, left out):
// a convolution 2 OC C K^2 N' (N' output positions), a linear layer 2 O I, attention's two
// products 2 N^2 C each. Checks that BENCH_CONVS holds exactly the network's convolution weights.
static double conv_flops(int r) {
    int side = BENCH_CONVS[r].side / BENCH_CONVS[r].stride;
    return 2.0 * BENCH_CONVS[r].OC * BENCH_CONVS[r].C * BENCH_CONVS[r].K * BENCH_CONVS[r].K *
           side * side;
}
static double unet_flops(const Model *m) {
    const Config *c = &m->cfg;
    double flops = 0, table_weights = 0, conv_weights = 0, n4 = c->img_h / 4 * (c->img_w / 4);
    for (int r = 0; r < BENCH_N_CONVS; r++) {
        flops += BENCH_CONVS[r].count * conv_flops(r);
        int K = BENCH_CONVS[r].K;
        table_weights += (double)BENCH_CONVS[r].count * BENCH_CONVS[r].OC * BENCH_CONVS[r].C * K *
                         K;
    }
    for (int i = 0; i < m->layout->n; i++) {
        const TensorInfo *ti = &m->layout->info[i];
        int linear = !strncmp(ti->name, "time", 4) || strstr(ti->name, ".temb.");
        if (ti->kind != KIND_WEIGHT) continue;
        if (linear) flops += 2.0 * ti->size;
        else conv_weights += ti->size;
    }
    if (table_weights != conv_weights)
        die("bench", "BENCH_CONVS (%.0f weights) does not match the network's convolutions (%.0f)",
            table_weights, conv_weights);
    return flops + 4.0 * n4 * n4 * c->ch2;
}

// The peak: 12 independent chains of vector multiply-adds (enough to hide their latency), per
// thread, with this build's vectors (fused FMAs when the CPU has them, as gemm uses them).
FMA_CLONES static double fma_chains(long iters) {  // one thread's chains; the sum of a lane
    vec acc[12], x = (vec){0} + (real)0.999999, y = (vec){0} + (real)1e-7;
    double sink = 0;
    for (int i = 0; i < 12; i++) acc[i] = (vec){0} + (real)i;
    for (long k = 0; k < iters; k++)
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) acc[i] = acc[i] * x + y;
    for (int i = 0; i < 12; i++) {
        real lane0;  // (acc[i][0], but one-lane vectors are scalars)
        memcpy(&lane0, &acc[i], sizeof lane0);
        sink += lane0;
    }
    return sink;
}
static double fma_peak_gflops(int threads) {
    const long iters = 20000000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_seconds(), sink = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : sink)
        for (int th = 0; th < threads; th++) sink += fma_chains(iters);
        best = fmax(best, 2.0 * 12 * VL * iters * threads / (now_seconds() - t0) / 1e9);
        if (sink == 12345) printf(" ");  // keeps the loop from being optimised away
    }
    return best;
}

#ifndef BUILD_FLAGS  // the Makefile passes its flags; a hand-typed `cc` command cannot be seen
#define BUILD_FLAGS "not recorded (built without the Makefile)"
#endif
#ifdef __VERSION__  // GCC's and clang's
#define COMPILER_VERSION __VERSION__
#else
#define COMPILER_VERSION "(version not recorded)"
#endif
static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
static const char *vector_isa(void) {
#if HAVE_FMA_CLONES
    if (__builtin_cpu_supports("fma")) return "SSE2 + an AVX/FMA gemm_tile (picked at run time)";
#endif
#if defined(__AVX512F__)
    return "AVX-512";
#elif defined(__AVX2__)
    return "AVX2";
#elif defined(__SSE2__)
    return "SSE2";
#elif defined(__ARM_NEON)
    return "NEON";
#elif !defined(__GNUC__)
    return "scalar (no vector extensions)";
#else
    return "generic";
#endif
}
static long peak_rss_kb(void) {  // the kernel's high-water mark of resident memory (Linux)
    long kb = 0;
    char line[256];
    FILE *st = fopen("/proc/self/status", "r");
    while (st && fgets(line, sizeof line, st))
        if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
    if (st) fclose(st);
    return kb;
}

// Convolution shape r alone, at batch B: the median seconds t[0] of the forward, t[1] of the
// weight gradient, t[2] of the input gradient (a backward with it, less one without).
static void bench_conv(Model *m, int r, int B, int reps, double t[3]) {
    int C = BENCH_CONVS[r].C, OC = BENCH_CONVS[r].OC, K = BENCH_CONVS[r].K;
    int s = BENCH_CONVS[r].stride, H = BENCH_CONVS[r].side;
    size_t n_in = (size_t)B * C * H * H, n_out = (size_t)B * OC * (H / s) * (H / s);
    size_t n_w = (size_t)OC * C * K * K;
    Rng rng = {7};
    real *x = random_array(n_in, &rng), *dx = xcalloc(n_in, sizeof(real));
    real *w = random_array(n_w + OC, &rng), *dw = xcalloc(n_w + OC, sizeof(real));
    real *y = xmalloc(n_out * sizeof(real)), *dy = random_array(n_out, &rng);
    double times[3][32];
    for (int i = -1; i < reps; i++) {
        double t0 = now_seconds();
        conv2d_forward(y, x, w, w + n_w, B, C, H, H, OC, K, s, m->ws);
        double t1 = now_seconds();
        conv2d_backward(NULL, dw, dw + n_w, dy, x, w, B, C, H, H, OC, K, s, m->ws);
        double t2 = now_seconds();
        conv2d_backward(dx, dw, dw + n_w, dy, x, w, B, C, H, H, OC, K, s, m->ws);
        double t3 = now_seconds();
        if (i < 0) continue;
        times[0][i] = t1 - t0;
        times[1][i] = t2 - t1;
        times[2][i] = t3 - t2;
    }
    for (int k = 0; k < 3; k++) t[k] = median(times[k], reps);
    t[2] = t[2] > t[1] ? t[2] - t[1] : 0;
    free_all(6, x, dx, w, dw, y, dy);
}

// Where a training step's time goes: each convolution shape's GFLOP/s (forward, weight gradient,
// input gradient) and share of the step (times its count); the rest is everything else.
static void bench_profile(Model *m, int B, int reps, double peak, double train_s) {
    double shared = 0;
    printf("per product shape, batch %d: GFLOP/s (%% of peak) and share of the training step\n", B);
    printf("  %-22s %5s %13s %13s %13s %6s  %s\n", "convolution", "count", "forward",
           "weight grad", "input grad", "share", "layers");
    for (int r = 0; r < BENCH_N_CONVS; r++) {
        double t[3], gf[3], f = B * conv_flops(r);
        bench_conv(m, r, B, reps, t);
        if (BENCH_CONVS[r].C == m->cfg.img_c) t[2] = 0;  // the network's input needs no gradient
        for (int k = 0; k < 3; k++) gf[k] = t[k] > 0 ? f / t[k] / 1e9 : 0;
        double share = BENCH_CONVS[r].count * (t[0] + t[1] + t[2]) / train_s;
        shared += share;
        char shape[32];
        snprintf(shape, sizeof shape, "%d->%d %dx%d%s @%d", BENCH_CONVS[r].C, BENCH_CONVS[r].OC,
                 BENCH_CONVS[r].K, BENCH_CONVS[r].K, BENCH_CONVS[r].stride > 1 ? " s2" : "",
                 BENCH_CONVS[r].side);
        printf("  %-22s %5d", shape, BENCH_CONVS[r].count);
        for (int k = 0; k < 3; k++) printf(" %6.1f (%3.0f%%)", gf[k], 100 * gf[k] / peak);
        printf(" %5.1f%%  %s\n", 100 * share, BENCH_CONVS[r].layers);
    }
    printf("  %-22s %5s %41s %5.1f%%  GroupNorm, SiLU, attention, linear, AdamW, copies\n",
           "everything else", "", "", 100 * (1 - shared));
}

static int run_bench(int reps, int threads, int winograd) {
    const Config *c = &DEFAULT_CONFIG;
    int B = 64;
    Rng rng = {1};
    Model *m = model_create(c, B);
    m->ws->winograd = winograd;
    params_init(m, &rng, 1);
    size_t n = (size_t)B * c->img_c * c->img_h * c->img_w;
    real *x = random_array(n, &rng), *eps = random_array(n, &rng), t[64];
    int label[64];
    for (int b = 0; b < B; b++) {
        t[b] = (real)(1 + rng_int(&rng, 1000));
        label[b] = rng_int(&rng, 11);
    }
    double fwd_flops = unet_flops(m), train_flops = 3 * fwd_flops;  // backward: dW and dx
    double tt[32], tf[32];
    reps = reps > 32 ? 32 : reps;
    for (int r = -2; r < reps; r++) {  // two warm-up rounds (page faults, caches), then timed
        double t0 = now_seconds();
        model_loss_and_grad(m, x, t, label, eps, NULL, B);
        adamw_step(m, &DEFAULT_HYPER, 1);
        double t1 = now_seconds();
        unet_forward(m, x, t, label, B);
        double t2 = now_seconds();
        if (r < 0) continue;
        tt[r] = t1 - t0;
        tf[r] = t2 - t1;
    }
    double train_s = median(tt, reps), fwd_s = median(tf, reps);
    double peak = fma_peak_gflops(threads), train_gf = B * train_flops / train_s / 1e9;
    double fwd_gf = B * fwd_flops / fwd_s / 1e9, mb = m->n_params * sizeof(real) / 1e6;
    printf("# diffusion.c bench: default U-Net (%zu parameters), batch %d, %d thread(s), %s build, "
           "vector ISA %s, OpenMP %s\n", m->n_params, B, threads, sizeof(real) == 4 ? "float" :
           "double", vector_isa(), threads > 1 || m->ws->threads > 1 ? "on" : "off/1");
    printf("# compiler %s, flags: %s\n", COMPILER_VERSION, BUILD_FLAGS);
    printf("# gemm micro-kernel: %d rows x %d columns (%d x %d vectors of %d bytes), K slices of "
           "<= %d, column blocks of %d; 3x3 convolutions: %s\n", MR, NR, MR, NR / VL, VEC_BYTES, KC,
           NC, winograd ? "Winograd where it pays (C, OC >= 32; weight gradients from C >= 64)"
                         : "direct");
    printf("# FLOPs per image: forward %.1f M, training step ~3x = %.1f M (backward = weight + "
           "input gradients)\n", fwd_flops / 1e6, train_flops / 1e6);
    printf("# peak of this build's vectors (12 independent multiply-add chains): %.1f GFLOP/s on "
           "%d thread(s)\n", peak, threads);
    printf("training step (fwd+bwd+AdamW+EMA): %7.1f images/s  %6.1f GFLOP/s  (%4.1f%% of peak)  "
           "median of %d\n", B / train_s, train_gf, 100 * train_gf / peak, reps);
    printf("denoiser forward (sampling)      : %7.1f images/s  %6.1f GFLOP/s  (%4.1f%% of peak)\n",
           B / fwd_s, fwd_gf, 100 * fwd_gf / peak);
    double scratch = (2 * m->ws->threads * m->ws->col_size + (DW_SLOTS + 1) * m->ws->weight_size) *
                     sizeof(real) / 1e6;
    printf("memory: peak resident %.1f MB = parameters %.1f + gradients %.1f + AdamW %.1f + EMA "
           "%.1f + activations %.1f (+ their gradients %.1f) + conv scratch %.1f MB + program\n",
           peak_rss_kb() / 1e3, mb, mb, 2 * mb, mb, m->n_acts * sizeof(real) / 1e6,
           m->n_acts * sizeof(real) / 1e6, scratch);
    bench_profile(m, B, reps, peak, train_s);
    printf("c threads=%d batch=%d train_img_s=%.1f fwd_img_s=%.1f peak_gflops=%.1f\n", threads, B,
           B / train_s, B / fwd_s, peak);
    free_all(2, x, eps);
    model_free(m);
    return 0;
}

static int cmd_bench(const Options *o) {
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    return run_bench(o->steps_given ? (int)o->steps : 7, threads, !o->conv_direct);
}
static const Command bench_commands[] = {
    {"bench", cmd_bench, " --threads --steps --conv ",
     "bench [--threads N] [--steps REPS] [--conv winograd|direct]\n"
     "  Speed of the default network at batch 64: training and sampling images/s, GFLOP/s against "
     "the FMA peak, memory."},
};

int main(int argc, char **argv) {
    return run_command(argc, argv, bench_commands, 1, "notes/bench");
}

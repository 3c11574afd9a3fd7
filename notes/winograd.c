// notes/winograd.c — does Winograd F(2x2, 3x3) pay off on this U-Net's convolutions? (issue 14)
//
// Lavin & Gray 2016 ("Fast Algorithms for Convolutional Neural Networks") compute a 3x3 convolution
// on 2x2 output tiles with 16 multiplies instead of 36: each 4x4 input tile d and each 3x3 filter g
// are transformed, multiplied elementwise, and transformed back,
//     Y = A^T [ (G g G^T) .* (B^T d B) ] A,
// and summed over input channels the elementwise products become 16 matrix products, one per
// position xi of the 4x4 tile: M_xi (OC, tiles) = U_xi (OC, C) . V_xi (C, tiles). This probe times
// that forward pass, with diffusion.c's own gemm for the 16 products, against conv2d_forward (the
// padded-grid product of diffusion.c's PART II) on every 3x3 stride-1 shape of the network with C, OC >= 32,
// batch 64, one thread, CPU time, best of 5; and it checks that both give the same numbers.
//
//   cc -O3 -march=native notes/winograd.c -lm -o /tmp/winograd && /tmp/winograd
//
// It is not part of diffusion.c: README.md, *Speed*, says what it measured and why the plain path
// stays. test.sh builds it and checks its error.
#define main bench_main  // this probe has its own
#include "bench.c"       // diffusion.c, and bench's table of the network's convolutions
#undef main

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

// weight (OC,C,3,3) -> U (16,OC,C): G g G^T with G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
static void filter_transform(real *U, const real *weight, int OC, int C) {
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            const real *g = weight + ((size_t)o * C + c) * 9;
            real t[4][3], u[4][4];
            for (int j = 0; j < 3; j++) {  // G g: rows
                t[0][j] = g[j];
                t[1][j] = (real)0.5 * (g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = (real)0.5 * (g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {  // (G g) G^T: columns
                u[i][0] = t[i][0];
                u[i][1] = (real)0.5 * (t[i][0] + t[i][1] + t[i][2]);
                u[i][2] = (real)0.5 * (t[i][0] - t[i][1] + t[i][2]);
                u[i][3] = t[i][2];
            }
            for (int xi = 0; xi < 16; xi++) U[((size_t)xi * OC + o) * C + c] = u[xi / 4][xi % 4];
        }
}

// G images inp (G,C,H,W) -> V (16, C, G*T), T = th*tw tiles per image: B^T d B for every 4x4 tile d
// (stride 2) of the image zero-padded by 1 (and to an even size), B^T = [1 0 -1 0; 0 1 1 0;
// 0 -1 1 0; 0 1 0 -1]. xp holds one padded channel, rows four rows of B^T d.
static void input_transform(real *V, const real *inp, int G, int C, int H, int W, real *xp,
                            real *rows) {
    int th = (H + 1) / 2, tw = (W + 1) / 2, T = th * tw, NT = G * T, Hp = 2 * th + 2, Wp = 2 * tw + 2;
    for (int g = 0; g < G; g++)
        for (int c = 0; c < C; c++) {
            memset(xp, 0, (size_t)Hp * Wp * sizeof(real));
            for (int y = 0; y < H; y++)
                memcpy(xp + (y + 1) * Wp + 1, inp + (((size_t)g * C + c) * H + y) * W,
                       W * sizeof(real));
            for (int ty = 0; ty < th; ty++) {
                const real *r0 = xp + 2 * ty * Wp, *r1 = r0 + Wp, *r2 = r1 + Wp, *r3 = r2 + Wp;
                for (int x = 0; x < Wp; x++) {  // B^T d: the tile row's four rows combined
                    rows[x] = r0[x] - r2[x];
                    rows[Wp + x] = r1[x] + r2[x];
                    rows[2 * Wp + x] = r2[x] - r1[x];
                    rows[3 * Wp + x] = r1[x] - r3[x];
                }
                for (int i = 0; i < 4; i++) {  // (B^T d) B: columns, every second one a tile's
                    real *v = V + ((size_t)(4 * i) * C + c) * NT + g * T + ty * tw;
                    size_t plane = (size_t)C * NT;
                    for (int tx = 0; tx < tw; tx++) {
                        const real *q = rows + i * Wp + 2 * tx;
                        v[tx] = q[0] - q[2];
                        v[plane + tx] = q[1] + q[2];
                        v[2 * plane + tx] = q[2] - q[1];
                        v[3 * plane + tx] = q[1] - q[3];
                    }
                }
            }
        }
}

// M (16, OC, G*T) -> out (G,OC,H,W): A^T m A for every tile, A^T = [1 1 1 0; 0 1 -1 -1]
static void output_transform(real *out, const real *M, int G, int OC, int H, int W) {
    int th = (H + 1) / 2, tw = (W + 1) / 2, T = th * tw, NT = G * T;
    size_t plane = (size_t)OC * NT;
    for (int g = 0; g < G; g++)
        for (int o = 0; o < OC; o++)
            for (int t = 0; t < T; t++) {
                const real *m = M + (size_t)o * NT + g * T + t;
                real a[2][4];  // A^T m
                for (int j = 0; j < 4; j++) {
                    real m0 = m[j * plane], m1 = m[(4 + j) * plane], m2 = m[(8 + j) * plane];
                    real m3 = m[(12 + j) * plane];
                    a[0][j] = m0 + m1 + m2;
                    a[1][j] = m1 - m2 - m3;
                }
                int y = t / tw * 2, x = t % tw * 2;
                real *dst = out + (((size_t)g * OC + o) * H + y) * W + x;
                for (int i = 0; i < 2 && y + i < H; i++) {  // (A^T m) A, cut at the image's edge
                    dst[i * W] = a[i][0] + a[i][1] + a[i][2];
                    if (x + 1 < W) dst[i * W + 1] = a[i][1] - a[i][2] - a[i][3];
                }
            }
}

int main(int argc, char **argv) {
    int B = 64, reps = argc > 1 && !strcmp(argv[1], "--quick") ? 1 : 5;
    Model *m = model_create(&DEFAULT_CONFIG, B);
    double total_direct = 0, total_wino = 0, worst = 0;
    printf("forward, batch %d, 1 thread, ms (best of %d)\n", B, reps);
    printf("shape           x  direct  winograd = in + 16 products + out   ratio  max err\n");
    for (int r = 0; r < BENCH_N_CONVS; r++) {
        int C = BENCH_CONVS[r].C, OC = BENCH_CONVS[r].OC, H = BENCH_CONVS[r].side, W = H;
        if (BENCH_CONVS[r].K != 3 || BENCH_CONVS[r].stride != 1 || C < 32 || OC < 32) continue;
        int th = (H + 1) / 2, T = th * ((W + 1) / 2), G = T >= 256 ? 1 : 256 / T;
        while (B % G) G--;  // images per group: products at least ~256 columns wide
        size_t n_in = (size_t)B * C * H * W, n_out = (size_t)B * OC * H * W;
        Rng rng = {7};
        real *x = random_array(n_in, &rng), *w = random_array((size_t)OC * C * 9, &rng);
        real *bias = xcalloc(OC, sizeof(real)), *y = xmalloc(n_out * sizeof(real));
        real *y2 = xmalloc(n_out * sizeof(real)), *U = xmalloc((size_t)16 * OC * C * sizeof(real));
        real *V = xmalloc((size_t)16 * C * G * T * sizeof(real));
        real *M = xmalloc((size_t)16 * OC * G * T * sizeof(real));
        real *xp = xmalloc((size_t)(H + 3) * (W + 3) * sizeof(real));
        real *rows = xmalloc((size_t)4 * (W + 3) * sizeof(real));
        double direct = 1e9, best[4] = {1e9, 0, 0, 0};
        for (int rep = 0; rep < reps; rep++) {
            double t0 = cpu_seconds(), part[3] = {0, 0, 0};
            conv2d_forward(y, x, w, bias, B, C, H, W, OC, 3, 1, m->ws);
            double t1 = cpu_seconds();
            filter_transform(U, w, OC, C);  // once per weight update: counted with the input's
            for (int b = 0; b < B; b += G) {
                double s0 = cpu_seconds();
                input_transform(V, x + (size_t)b * C * H * W, G, C, H, W, xp, rows);
                double s1 = cpu_seconds();
                for (int xi = 0; xi < 16; xi++)
                    gemm(OC, G * T, C, U + (size_t)xi * OC * C, C, 1, V + (size_t)xi * C * G * T,
                         G * T, 1, M + (size_t)xi * OC * G * T, G * T, 0);
                double s2 = cpu_seconds();
                output_transform(y2 + (size_t)b * OC * H * W, M, G, OC, H, W);
                part[0] += s1 - s0;
                part[1] += s2 - s1;
                part[2] += cpu_seconds() - s2;
            }
            double t2 = cpu_seconds();
            direct = fmin(direct, t1 - t0);
            if (t2 - t1 < best[0]) {
                best[0] = t2 - t1;
                memcpy(best + 1, part, sizeof part);
                best[1] += t2 - t1 - part[0] - part[1] - part[2];  // the filter transform
            }
        }
        double err = 0, largest = 0;
        for (size_t i = 0; i < n_out; i++) {
            err = fmax(err, fabs(y[i] - y2[i]));
            largest = fmax(largest, fabs(y[i]));
        }
        worst = fmax(worst, err / largest);
        int n = BENCH_CONVS[r].count;
        printf("%3d->%-3d @%-2d  %d  %6.2f  %8.2f = %5.2f + %5.2f + %5.2f      %5.2f  %.1e\n", C, OC,
               H, n, 1e3 * direct, 1e3 * best[0], 1e3 * best[1], 1e3 * best[2], 1e3 * best[3],
               direct / best[0], err / largest);
        total_direct += n * direct;
        total_wino += n * best[0];
        free_all(11, x, w, bias, y, y2, U, V, M, xp, rows, NULL);
    }
    printf("all of them, times their count: direct %.1f ms, winograd %.1f ms, ratio %.2f\n",
           1e3 * total_direct, 1e3 * total_wino, total_direct / total_wino);
    printf("largest |winograd - direct| / largest |direct|: %.1e\n", worst);
    return 0;
}

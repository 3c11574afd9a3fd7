// Grading harness for exercise 5 (SiLU and GroupNorm backward), built three ways by grade.sh
// (-DDOUBLE, float, -fopenmp); see harness.h.
//   harness accumulate   silu_backward and groupnorm_backward must ADD (+=) into their outputs:
//                        each is called on zeroed outputs (giving g) and on outputs holding random
//                        r, which must then hold r + g. gradcheck cannot see this: its buffers
//                        start at 0, and in the network every one of these gradients has a single
//                        producer, so `=` gives the same numbers there.
//   harness grads        dx of SiLU, and dx, dgamma, dbeta of GroupNorm, each against the grader's
//                        own formula computed in double: 1e-12 in the -DDOUBLE build, 1e-5 in float
//                        (the float code's own rounding is ~1e-7; a derivative by finite
//                        differences in float is off by ~1e-1)
//   harness twice        (the OpenMP build, 4 threads) both backward passes twice on the same
//                        inputs, in a shape where threads that share a group would write the same
//                        dgamma, dbeta
//   harness gradcheck    notes/check.c's gradcheck on the student's code
#include "../harness.h"

// max |after - (before + once)| over n values, relative to 1 + |once| (NaN if any value is NaN)
static double accumulated(const real *after, const real *before, const real *once, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        upd(&worst, fabs((double)after[i] - ((double)before[i] + once[i])) / (1 + fabs(once[i])));
    return worst;
}
// max |got - want| / max |want|, with NaN kept
static double rel_err(const real *got, const double *want, size_t n) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        upd(&worst, fabs(got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    return worst / (scale > 0 ? scale : 1);
}

static int check_grads(void) {
    enum { B = 3, C = 8, N = 20, G = 4 };
    size_t n = (size_t)B * C * N;
    Rng r = {9};
    int fails = 0, cg = C / G;
    double tol = IS_DOUBLE ? 1e-12 : 1e-5;
    real *x = randoms(n, &r), *dy = randoms(n, &r), *dx = calloc(n, sizeof(real));
    for (size_t i = 0; i < n; i++) x[i] *= 6;  // SiLU on [-6, 6]
    double *want = calloc(n, sizeof(double)), *wg = calloc(C, sizeof(double)),
           *wb = calloc(C, sizeof(double));
    silu_backward(dx, dy, x, n);
    for (size_t i = 0; i < n; i++) {  // y = x s(x): dy/dx = s + x s (1 - s)
        double s = 1 / (1 + exp(-(double)x[i]));
        want[i] = dy[i] * (s + x[i] * s * (1 - s));
    }
    fails += line("silu_backward: dx (dinp) vs s + x s (1 - s): max error / max |dx|",
                  rel_err(dx, want, n), tol);
    for (size_t i = 0; i < n; i++) x[i] = x[i] / 3 + (real)0.5;
    real *gamma = randoms(C, &r), *beta = randoms(C, &r), *y = malloc(n * sizeof(real));
    real *dg = calloc(C, sizeof(real)), *db = calloc(C, sizeof(real)), mean[B * G], rstd[B * G];
    for (int c = 0; c < C; c++) gamma[c] += 1;
    groupnorm_forward(y, mean, rstd, x, gamma, beta, B, C, N, G);
    memset(dx, 0, n * sizeof(real));
    groupnorm_backward(dx, dg, db, dy, x, mean, rstd, gamma, B, C, N, G);
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {  // the group's mean and variance again, in double
            double m = 0, v = 0, mdx = 0, mdxx = 0;
            const real *xg = x + ((size_t)b * C + g * cg) * N,
                       *dyg = dy + ((size_t)b * C + g * cg) * N;
            for (int i = 0; i < cg * N; i++) m += xg[i];
            m /= cg * N;
            for (int i = 0; i < cg * N; i++) v += (xg[i] - m) * (xg[i] - m);
            double rs = 1 / sqrt(v / (cg * N) + 1e-5);
            for (int i = 0; i < cg * N; i++) {
                double xhat = (xg[i] - m) * rs, dxhat = gamma[g * cg + i / N] * dyg[i];
                wg[g * cg + i / N] += dyg[i] * xhat;
                wb[g * cg + i / N] += dyg[i];
                mdx += dxhat / (cg * N);
                mdxx += dxhat * xhat / (cg * N);
            }
            for (int i = 0; i < cg * N; i++) {
                double xhat = (xg[i] - m) * rs, dxhat = gamma[g * cg + i / N] * dyg[i];
                want[((size_t)b * C + g * cg) * N + i] = rs * (dxhat - mdx - xhat * mdxx);
            }
        }
    double tg = IS_DOUBLE ? 1e-9 : 1e-5;  // mean and rstd come from the forward pass, in real
    fails += line("groupnorm_backward: dx (dinp): max error / max |dx|", rel_err(dx, want, n), tg);
    fails += line("groupnorm_backward: dgamma: max error / max |dgamma|", rel_err(dg, wg, C), tg);
    fails += line("groupnorm_backward: dbeta: max error / max |dbeta|", rel_err(db, wb, C), tg);
    real *all[] = {x, dy, dx, gamma, beta, y, dg, db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    free(want), free(wg), free(wb);
    return fails;
}

// Both backward passes twice on the same inputs (20 pairs): one group, 8 images, so that 4 threads
// that split the images of a group would all add into the same dgamma and dbeta.
static int check_twice(void) {
    enum { B = 8, C = 64, N = 196, G = 1, REPS = 20 };
    size_t n = (size_t)B * C * N;
    Rng r = {12};
    int fails = 0;
    real *x = randoms(n, &r), *dy = randoms(n, &r), *gamma = randoms(C, &r), *beta = randoms(C, &r);
    real *y = malloc(n * sizeof(real)), mean[B * G], rstd[B * G];
    groupnorm_forward(y, mean, rstd, x, gamma, beta, B, C, N, G);
    real *dx[2], *dg[2], *db[2], *ds[2];
    size_t bad_x = 0, bad_g = 0, bad_s = 0;
    for (int rep = 0; rep < REPS; rep++) {
        for (int k = 0; k < 2; k++) {
            dx[k] = calloc(n, sizeof(real));
            dg[k] = calloc(C, sizeof(real));
            db[k] = calloc(C, sizeof(real));
            ds[k] = calloc(n, sizeof(real));
            groupnorm_backward(dx[k], dg[k], db[k], dy, x, mean, rstd, gamma, B, C, N, G);
            silu_backward(ds[k], dy, x, n);
        }
        bad_x += memcmp(dx[0], dx[1], n * sizeof(real)) != 0;
        bad_g += memcmp(dg[0], dg[1], C * sizeof(real)) != 0 ||
                 memcmp(db[0], db[1], C * sizeof(real)) != 0;
        bad_s += memcmp(ds[0], ds[1], n * sizeof(real)) != 0;
        for (int k = 0; k < 2; k++) free(dx[k]), free(dg[k]), free(db[k]), free(ds[k]);
    }
    fails +=
        line("silu_backward: dx, pairs of identical calls (of 20) that differ", (double)bad_s, 0);
    fails += line("groupnorm_backward: dx, pairs of identical calls (of 20) that differ",
                  (double)bad_x, 0);
    fails += line("groupnorm_backward: dgamma, dbeta, pairs of identical calls (of 20) that differ",
                  (double)bad_g, 0);
    free(x), free(dy), free(gamma), free(beta), free(y);
    return fails;
}

static int check_accumulate(void) {
    double tol1 = IS_DOUBLE ? 1e-12 : 1e-6;
    enum { B = 2, C = 8, N = 12, G = 4 };
    size_t n = (size_t)B * C * N;
    Rng r = {5};
    int fails = 0;
    real *x = randoms(n, &r), *dy = randoms(n, &r), *once = calloc(n, sizeof(real));
    real *before = randoms(n, &r), *after = malloc(n * sizeof(real));
    memcpy(after, before, n * sizeof(real));
    silu_backward(once, dy, x, n);
    silu_backward(after, dy, x, n);
    fails +=
        line("silu_backward adds into dx (dinp, +=)", accumulated(after, before, once, n), tol1);

    real *gamma = randoms(C, &r), *beta = randoms(C, &r), *y = malloc(n * sizeof(real));
    real mean[B * G], rstd[B * G];
    for (int c = 0; c < C; c++) gamma[c] += 1;
    groupnorm_forward(y, mean, rstd, x, gamma, beta, B, C, N, G);
    real *dg1 = calloc(C, sizeof(real)), *db1 = calloc(C, sizeof(real)),
         *dx1 = calloc(n, sizeof(real));
    real *dg0 = randoms(C, &r), *db0 = randoms(C, &r), *dx0 = randoms(n, &r);
    real *dg2 = malloc(C * sizeof(real)), *db2 = malloc(C * sizeof(real)),
         *dx2 = malloc(n * sizeof(real));
    memcpy(dg2, dg0, C * sizeof(real));
    memcpy(db2, db0, C * sizeof(real));
    memcpy(dx2, dx0, n * sizeof(real));
    groupnorm_backward(dx1, dg1, db1, dy, x, mean, rstd, gamma, B, C, N, G);
    groupnorm_backward(dx2, dg2, db2, dy, x, mean, rstd, gamma, B, C, N, G);
    double ta = IS_DOUBLE ? 1e-12 : 1e-6;  // float: the sum r + g rounds
    fails += line("groupnorm_backward adds into dx (dinp, +=)", accumulated(dx2, dx0, dx1, n), ta);
    fails += line("groupnorm_backward adds into dgamma (+=)", accumulated(dg2, dg0, dg1, C), ta);
    fails += line("groupnorm_backward adds into dbeta (+=)", accumulated(db2, db0, db1, C), ta);
    real *all[] = {x, dy, once, before, after, gamma, beta, y, dg1, db1, dx1, dg0, db0, dx0, dg2,
                   db2, dx2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    return fails;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "accumulate")) return check_accumulate() ? 1 : 0;
    if (argc >= 2 && !strcmp(argv[1], "grads")) return check_grads() ? 1 : 0;
    if (argc >= 2 && !strcmp(argv[1], "twice")) return check_twice() ? 1 : 0;
    return student_main(argc, argv);
}

// Grading harness for exercise 4 (SiLU and GroupNorm backward). grade.sh compiles it with -DDOUBLE and
// -DSTUDENT_C='"path/to/student/diffusion.c"': the student's file is included whole, its main renamed.
//   harness accumulate   silu_backward and groupnorm_backward must ADD (+=) into their outputs: each is called on
//                        zeroed outputs (giving g) and on outputs holding random r, which must then hold r + g.
//                        gradcheck cannot see this: its buffers start at 0, and in the network every one of these
//                        gradients has a single producer, so `=` gives the same numbers there. The convention is
//                        what lets a new layer feed an existing gradient without breaking it.
//   harness gradcheck    the student's `gradcheck` (run_gradcheck(1))
#define main student_main
#include STUDENT_C
#undef main

// max |after - (before + once)| over n values, relative to 1 + |once| (NaN if any value is NaN)
static double accumulated(const real *after, const real *before, const real *once, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)after[i] - ((double)before[i] + once[i])) / (1 + fabs(once[i]));
        if (isnan(d) || isnan(worst)) worst = NAN;
        else if (d > worst) worst = d;
    }
    return worst;
}
static int line(const char *what, double err) {
    int ok = err <= 1e-12;
    printf("  %-62s %10.3e  (tol 1e-12)  %s\n", what, err, ok ? "PASS" : "FAIL");
    return !ok;
}
static real *randoms(size_t n, Rng *r) {
    real *p = malloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) p[i] = (real)(2 * rng_uniform(r) - 1);
    return p;
}

static int check_accumulate(void) {
    enum { B = 2, C = 8, N = 12, G = 4 };
    size_t n = (size_t)B * C * N;
    Rng r = {5};
    int fails = 0;
    real *x = randoms(n, &r), *dy = randoms(n, &r), *once = calloc(n, sizeof(real));
    real *before = randoms(n, &r), *after = malloc(n * sizeof(real));
    memcpy(after, before, n * sizeof(real));
    silu_backward(once, dy, x, n);
    silu_backward(after, dy, x, n);
    fails += line("silu_backward adds into dinp (+=)", accumulated(after, before, once, n));

    real *gamma = randoms(C, &r), *beta = randoms(C, &r), *y = malloc(n * sizeof(real));
    real mean[B * G], rstd[B * G];
    for (int c = 0; c < C; c++) gamma[c] += 1;
    groupnorm_forward(y, mean, rstd, x, gamma, beta, B, C, N, G);
    real *dg1 = calloc(C, sizeof(real)), *db1 = calloc(C, sizeof(real)), *dx1 = calloc(n, sizeof(real));
    real *dg0 = randoms(C, &r), *db0 = randoms(C, &r), *dx0 = randoms(n, &r);
    real *dg2 = malloc(C * sizeof(real)), *db2 = malloc(C * sizeof(real)), *dx2 = malloc(n * sizeof(real));
    memcpy(dg2, dg0, C * sizeof(real));
    memcpy(db2, db0, C * sizeof(real));
    memcpy(dx2, dx0, n * sizeof(real));
    groupnorm_backward(dx1, dg1, db1, dy, x, mean, rstd, gamma, B, C, N, G);
    groupnorm_backward(dx2, dg2, db2, dy, x, mean, rstd, gamma, B, C, N, G);
    fails += line("groupnorm_backward adds into dinp (+=)", accumulated(dx2, dx0, dx1, n));
    fails += line("groupnorm_backward adds into dgamma (+=)", accumulated(dg2, dg0, dg1, C));
    fails += line("groupnorm_backward adds into dbeta (+=)", accumulated(db2, db0, db1, C));
    real *all[] = {x, dy, once, before, after, gamma, beta, y, dg1, db1, dx1, dg0, db0, dx0, dg2, db2, dx2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    return fails;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "accumulate")) return check_accumulate() ? 1 : 0;
    if (argc >= 2 && !strcmp(argv[1], "gradcheck")) return run_gradcheck(1);
    fprintf(stderr, "usage: harness accumulate | gradcheck\n");
    return 2;
}

// Grading harness for exercise 10 (DDIM), built three ways by grade.sh (-DDOUBLE, float, -fopenmp);
// see harness.h.
//   harness ddim          the student's DDIM (sample_loop) vs this file's own DDIM (1e-9 in
//                         -DDOUBLE, 1e-4 in float: up to 100 steps of float rounding), then claims
//                         (f) and (g)
//   harness twice         (the OpenMP build) DDIM twice from the same seed: the same bytes
//   harness ckpt-T FILE   prints the T of a checkpoint (part 2: the last row of the CSV must be
//                         S = T)
//   harness ARGS...       anything else runs the student's own commands (grade.sh: `sample`)
#include "../harness.h"

// DDIM as in the README, written out separately: times t_i = T - floor(i T / S), i = 0..S; one
// network call per step; x0_hat by eq. (2), clipped to [-1, 1] with clip; z drawn (one
// rng_normal_fill of n values) only when sigma > 0.
static void reference_ddim(real *x, Model *m, const Schedule *s, const int *label, int B, int S,
                           double eta, int clip, Rng *rng) {
    size_t n = (size_t)B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w;
    int T = s->T;
    real *z = malloc(n * sizeof(real)), tt[64];
    rng_normal_fill(rng, x, n);
    for (int i = 0; i < S; i++) {
        int t = T - (int)((long)i * T / S), tp = T - (int)((long)(i + 1) * T / S);
        for (int b = 0; b < B; b++) tt[b] = (real)t;
        unet_forward(m, x, tt, label, B);
        const real *eps = m->a.pred;
        double ab = s->alpha_bar[t], abp = s->alpha_bar[tp];
        double var = eta * eta * (1 - abp) / (1 - ab) * (1 - ab / abp);
        if (var > 0) rng_normal_fill(rng, z, n);
        for (size_t k = 0; k < n; k++) {
            double x0 = (x[k] - sqrt(1 - ab) * eps[k]) / sqrt(ab);
            if (clip) x0 = x0 < -1 ? -1 : x0 > 1 ? 1 : x0;
            double dir = 1 - abp - var;
            x[k] = (real)(sqrt(abp) * x0 + sqrt(dir > 0 ? dir : 0) * eps[k] +
                          (var > 0 ? sqrt(var) * z[k] : 0));
        }
    }
    free(z);
}

static int check_ddim(void) {
    Config small = {1, 8, 8, 8, 16, 8, 16, 4, 10, 1};
    enum { B = 4, T = 100 };
    Rng rng = {11};
    Model *m = model_create(&small, 2 * B);
    params_init(m, &rng, 1);
    Schedule s = schedule_make(SCHEDULE_LINEAR, T);
    size_t n = (size_t)B * 64;
    real *a = malloc(n * sizeof(real)), *b = malloc(n * sizeof(real));
    int label[B] = {0, 2, 4, 6}, fails = 0;
    struct {
        int S;
        double eta;
        int clip;
    } cases[] = {{1, 0, 0},   {3, 0, 0},   {10, 0, 0}, {30, 0, 0}, {100, 0, 0},
                 {7, 0.5, 0}, {100, 1, 0}, {10, 0, 1}, {7, 0.5, 1}};
    printf("DDIM on a random small network (8x8, linear T = %d, %d samples):\n", T, B);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        SampleOptions o = {
            .kind = SAMPLER_DDIM, .steps = cases[k].S, .eta = cases[k].eta, .clip = cases[k].clip};
        Rng r1 = {99}, r2 = {99};
        sample_loop(a, m, &s, label, B, &o, &r1, 0);
        reference_ddim(b, m, &s, label, B, cases[k].S, cases[k].eta, cases[k].clip, &r2);
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)a[i] - b[i]);
            worst = isnan(d) || isnan(worst) ? NAN : fmax(worst, d);
        }
        char what[96];  // the same draws: only rounding separates them
        snprintf(what, sizeof what, "DDIM S = %3d, eta = %.1f%s: max |x_0 yours - grader's|",
                 cases[k].S, cases[k].eta, cases[k].clip ? ", --clip-x0" : "");
        fails += line(what, worst, IS_DOUBLE ? 1e-9 : 1e-4);
    }
    free(a), free(b);
    schedule_free(&s);
    model_free(m);
    Rng r = {1};
    int f = check_samplers(&r);  // claims (f) and (g) of notes/check.c
    return fails || f ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "ddim")) return check_ddim();
    if (argc >= 2 && !strcmp(argv[1], "twice")) {
        SampleOptions o = {.kind = SAMPLER_DDIM, .steps = 20, .eta = 0.5, .clip = 1};
        const char *what = "sample --sampler ddim --steps 20 --eta 0.5 --clip-x0";
        return sampler_twice(what, &o, 1000) ? 1 : 0;
    }
    if (argc == 3 && !strcmp(argv[1], "ckpt-T")) {
        CkptInfo ck;
        Model *m = checkpoint_load(argv[2], 1, &ck);
        printf("%d\n", ck.T);
        model_free(m);
        return 0;
    }
    return student_main(argc, argv);
}

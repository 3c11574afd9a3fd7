// Grading harness for exercise 12 (the reverse-SDE step), built three ways by grade.sh (-DDOUBLE,
// float, -fopenmp, all with -DCHECK_SAMPLES=10000); see harness.h.
//   harness step    sde_step against x + beta (x/2 - eps / sqrt(1 - alpha_bar)) du + sqrt(beta du) z
//                   with the same z (one rng_normal_fill of n, drawn first): 1e-12 in -DDOUBLE, 1e-6
//                   in float
//   harness law     claim (h) of notes/check.c: every sampler (the SDE's with the student's step) run
//                   with the exact denoiser of Gaussian data, against its exact law and the data
//   harness twice   (the OpenMP build) the SDE sampler twice: the same bytes
#include "../harness.h"

static int check_step(void) {
    enum { NV = 5000 };
    Rng r = {31};
    real *x = malloc(NV * sizeof(real)), *want = malloc(NV * sizeof(real)), *e = malloc(NV * sizeof(real));
    real *z = malloc(NV * sizeof(real)), *z2 = malloc(NV * sizeof(real));
    double us[] = {0.999, 0.5, 0.02}, worst = 0;
    int same_draws = 1, fails = 0;
    Schedule s = schedule_make(SCHEDULE_LINEAR, 1000);
    for (int k = 0; k < 3; k++) {
        double beta, omab, du = 0.01;
        schedule_at(&s, us[k], &beta, &omab);
        for (int i = 0; i < NV; i++) want[i] = x[i] = (real)(2 * rng_normal(&r)), e[i] = (real)rng_normal(&r);
        Rng r1 = {40 + k}, r2 = {40 + k};
        sde_step(x, e, beta, omab, du, NV, z, &r1);
        rng_normal_fill(&r2, z2, NV);
        for (int i = 0; i < NV; i++) {
            double w = want[i] + beta * (0.5 * want[i] - e[i] / sqrt(omab)) * du + sqrt(beta * du) * z2[i];
            upd(&worst, fabs(x[i] - w) / (1 + fabs(w)));
        }
        same_draws &= r1.state == r2.state;
    }
    fails += line("sde_step at u = 0.999, 0.5, 0.02: x after the step, max rel. difference", worst,
                  IS_DOUBLE ? 1e-12 : 1e-6);
    fails += line("sde_step: random numbers drawn as the README says (one rng_normal_fill of n)",
                  same_draws ? 0 : 1, 0);
    free(x), free(want), free(e), free(z), free(z2);
    schedule_free(&s);
    return fails;
}

static int check_twice(void) {
    Config c = DEFAULT_CONFIG;
    enum { B = 4 };
    Rng init = {13};
    Model *m = model_create(&c, 2 * B);
    params_init(m, &init, 1);
    Schedule s = schedule_make(SCHEDULE_LINEAR, 1000);
    size_t n = (size_t)B * c.img_c * c.img_h * c.img_w;
    real *x[2];
    int label[B] = {1, 2, 3, 4};
    SampleOptions o = {.kind = SAMPLER_SDE, .steps = 20};
    for (int k = 0; k < 2; k++) {
        Rng r = {5};
        x[k] = malloc(n * sizeof(real));
        sample_loop(x[k], m, &s, label, B, &o, &r, 0);
    }
    int fails = same_bytes("sample --sampler sde --steps 20: x_0", x[0], x[1], n * sizeof(real));
    free(x[0]), free(x[1]);
    schedule_free(&s);
    model_free(m);
    return fails;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "step")) return check_step() ? 1 : 0;
    if (argc >= 2 && !strcmp(argv[1], "law")) {
        Rng rng = {1};
        Schedule lin = schedule_make(SCHEDULE_LINEAR, 1000);
        int fails = check_gaussian_samplers(&lin, &rng);
        schedule_free(&lin);
        return fails ? 1 : 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "twice")) return check_twice() ? 1 : 0;
    return student_main(argc, argv);
}

// Grading harness for exercise 12 (the reverse-SDE step), built three ways by grade.sh (-DDOUBLE,
// float, -fopenmp, all with -DCHECK_SAMPLES=10000); see harness.h.
//   harness step    sde_step against x + beta (x/2 - eps / sqrt(1 - alpha_bar)) du + sqrt(beta du)
//                   z with the same z (one rng_normal_fill of n, drawn first): 1e-12 in -DDOUBLE,
//                   1e-6 in float
//   harness law     claim (h) of notes/check.c: every sampler (the SDE's with the student's step)
//                   run with the exact denoiser of Gaussian data, against its exact law and the
//                   data
//   harness twice   (the OpenMP build) the SDE sampler twice: the same bytes
#include "../harness.h"

static int check_step(void) {
    enum { NV = 5000 };
    Rng r = {31};
    real *x = malloc(NV * sizeof(real)), *want = malloc(NV * sizeof(real)),
         *e = malloc(NV * sizeof(real));
    real *z = malloc(NV * sizeof(real)), *z2 = malloc(NV * sizeof(real));
    double us[] = {0.999, 0.5, 0.02}, worst = 0;
    int same_draws = 1, fails = 0;
    Schedule s = schedule_make(SCHEDULE_LINEAR, 1000);
    for (int k = 0; k < 3; k++) {
        double beta, omab, du = 0.01;
        schedule_at(&s, us[k], &beta, &omab);
        for (int i = 0; i < NV; i++)
            want[i] = x[i] = (real)(2 * rng_normal(&r)), e[i] = (real)rng_normal(&r);
        Rng r1 = {40 + k}, r2 = {40 + k};
        sde_step(x, e, beta, omab, du, NV, z, &r1);
        rng_normal_fill(&r2, z2, NV);
        for (int i = 0; i < NV; i++) {
            double w =
                want[i] + beta * (0.5 * want[i] - e[i] / sqrt(omab)) * du + sqrt(beta * du) * z2[i];
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

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "step")) return check_step() ? 1 : 0;
    if (argc >= 2 && !strcmp(argv[1], "law")) {
        Rng rng = {1};
        Schedule lin = schedule_make(SCHEDULE_LINEAR, 1000);
        int fails = check_gaussian_samplers(&lin, &rng);
        schedule_free(&lin);
        return fails ? 1 : 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "twice")) {
        SampleOptions o = {.kind = SAMPLER_SDE, .steps = 20};
        return sampler_twice("sample --sampler sde --steps 20", &o, 1000) ? 1 : 0;
    }
    return student_main(argc, argv);
}

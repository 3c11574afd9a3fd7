// Grading harness for exercise 9 (eq. (2) and the DDPM step), built three ways by grade.sh
// (-DDOUBLE, float, -fopenmp); see harness.h.
//   harness ddpm    x0_hat_from_eps and ddpm_step against the references, clip off AND on, t = 1 ..
//                   T, and the whole DDPM sampler (sample_loop) on a small random network against
//                   the reference loop. Tolerances: 1e-10 (steps) and 1e-9 (sampler) in -DDOUBLE;
//                   in float 1e-5 (a step rounds to ~1e-7, times 1/sqrt(alpha_bar_T) ~ 150) and
//                   1e-4 (T steps).
//   harness twice   (the OpenMP build) the sampler twice from the same seed: the same bytes
#include "../harness.h"


// eq. (2), then clipped to [-1, 1] when clip is set.
static double ref_x0_hat(double xt, double eps, double alpha_bar, double one_minus_alpha_bar,
                         int clip) {
    double v = (xt - sqrt(one_minus_alpha_bar) * eps) / sqrt(alpha_bar);
    if (clip) v = v < -1 ? -1 : v > 1 ? 1 : v;
    return v;
}
// One step of the slide's generation algorithm, from the schedule's beta, alpha_bar and 1 -
// alpha_bar (Step 1) alone: eq. (2), Step 2's posterior mean and variance with x0_hat for x_0, and
// z from one rng_normal_fill of n values when t > 1.
static void ref_step(real *x, real *x0_hat, const real *eps, const Schedule *s, int t, size_t n,
                     int clip, real *z, Rng *rng) {
    double ab = s->alpha_bar[t], abp = s->alpha_bar[t - 1], beta = s->beta[t];
    double omab = s->one_minus_alpha_bar[t], omabp = s->one_minus_alpha_bar[t - 1];
    double cx0 = sqrt(abp) * beta / omab, cxt = sqrt(1 - beta) * omabp / omab,
           var = omabp / omab * beta;
    if (t > 1) rng_normal_fill(rng, z, n);
    for (size_t i = 0; i < n; i++) {
        double x0 = ref_x0_hat(x[i], eps[i], ab, omab, clip);
        x0_hat[i] = (real)x0;
        x[i] = (real)(cx0 * x0 + cxt * x[i] + (t > 1 ? sqrt(var) * z[i] : 0));
    }
}

static double step_tol(void) { return IS_DOUBLE ? 1e-10 : 1e-5; }
static double loop_tol(void) { return IS_DOUBLE ? 1e-9 : 1e-4; }

enum { NV = 2000 };
static int check_units(void) {
    Schedule s = schedule_make(SCHEDULE_LINEAR, 1000);
    Rng r = {3};
    real *xt = malloc(NV * sizeof(real)), *e = malloc(NV * sizeof(real)),
         *got = malloc(NV * sizeof(real));
    real *x1 = malloc(NV * sizeof(real)), *x2 = malloc(NV * sizeof(real)),
         *h1 = malloc(NV * sizeof(real));
    real *h2 = malloc(NV * sizeof(real)), *z = malloc(NV * sizeof(real));
    int ts[] = {1, 2, 10, 100, 500, 999, 1000}, fails = 0;
    for (int clip = 0; clip <= 1; clip++) {
        double worst = 0, outside = 0;
        for (int k = 0; k < 7; k++) {
            int t = ts[k];
            for (int i = 0; i < NV; i++)
                xt[i] = (real)(3 * rng_normal(&r)), e[i] = (real)rng_normal(&r);
            x0_hat_from_eps(got, xt, e, s.alpha_bar[t], s.one_minus_alpha_bar[t], NV, clip);
            for (int i = 0; i < NV; i++) {
                double want =
                    ref_x0_hat(xt[i], e[i], s.alpha_bar[t], s.one_minus_alpha_bar[t], clip);
                upd(&worst, fabs(got[i] - want) / (1 + fabs(want)));
                if (!clip && fabs(want) > 1) outside++;
            }
        }
        char what[96];
        snprintf(what, sizeof what, "x0_hat_from_eps, clip %d, t = 1 .. 1000: max rel. difference",
                 clip);
        fails += line(what, worst, step_tol());
        if (!clip)
            printf("    (%.0f of the %d values of eq. (2) lie outside [-1, 1]: clipping matters)\n",
                   outside, 7 * NV);
    }
    for (int clip = 0; clip <= 1; clip++) {
        double worst = 0, worst0 = 0;
        int rng_same = 1, bad_t = 0;
        for (int k = 0; k < 7; k++) {
            int t = ts[k];
            for (int i = 0; i < NV; i++) {
                x1[i] = x2[i] = (real)(3 * rng_normal(&r));
                e[i] = (real)rng_normal(&r);
            }
            Rng r1 = {77 + t}, r2 = {77 + t};
            ddpm_step(x1, h1, e, &s, t, NV, clip, z, &r1);
            ref_step(x2, h2, e, &s, t, NV, clip, z, &r2);
            for (int i = 0; i < NV; i++) {
                upd(&worst, fabs(x1[i] - x2[i]) / (1 + fabs(x2[i])));
                upd(&worst0, fabs(h1[i] - h2[i]) / (1 + fabs(h2[i])));
            }
            if (r1.state != r2.state && !rng_same) continue;
            if (r1.state != r2.state) rng_same = 0, bad_t = t;
        }
        char what[96];
        snprintf(what, sizeof what,
                 "ddpm_step, clip %d, t = 1 .. 1000: x_{t-1}, max rel. difference", clip);
        fails += line(what, worst, step_tol());
        snprintf(what, sizeof what,
                 "ddpm_step, clip %d, t = 1 .. 1000: its x0_hat, max rel. difference", clip);
        fails += line(what, worst0, step_tol());
        snprintf(what, sizeof what, "ddpm_step, clip %d: random numbers drawn as the README says",
                 clip);
        fails += line(what, rng_same ? 0 : 1, 0);
        if (!rng_same)
            printf("    (t = %d: the step drew a different amount of random numbers than one "
                   "rng_normal_fill of n%s)\n", bad_t, bad_t == 1 ? "; none at t = 1" : "");
    }
    free(xt), free(e), free(got), free(x1), free(x2), free(h1), free(h2), free(z);
    schedule_free(&s);
    return fails;
}

// The whole sampler: x_T ~ N(0, I) from the same seed, then T steps with the network's eps.
static int check_sampler(void) {
    Config small = {1, 8, 8, 8, 16, 8, 16, 4, 10, 1};
    enum { B = 4, T = 100 };
    Rng init = {11};
    Model *m = model_create(&small, 2 * B);
    params_init(m, &init, 1);
    Schedule s = schedule_make(SCHEDULE_LINEAR, T);
    size_t n = (size_t)B * 64;
    real *a = malloc(n * sizeof(real)), *b = malloc(n * sizeof(real)),
         *h = malloc(n * sizeof(real));
    real *z = malloc(n * sizeof(real)), *eps = malloc(n * sizeof(real)), tt[B];
    int label[B] = {0, 3, 5, 10}, fails = 0;
    for (int clip = 0; clip <= 1; clip++) {
        SampleOptions o = {.kind = SAMPLER_DDPM, .clip = clip};
        Rng r1 = {99}, r2 = {99};
        sample_loop(a, m, &s, label, B, &o, &r1, 0);
        rng_normal_fill(&r2, b, n);
        for (int t = T; t >= 1; t--) {
            for (int k = 0; k < B; k++) tt[k] = (real)t;
            unet_forward(m, b, tt, label, B);
            memcpy(eps, m->a.pred, n * sizeof(real));
            ref_step(b, h, eps, &s, t, n, clip, z, &r2);
        }
        double worst = 0;
        for (size_t i = 0; i < n; i++) upd(&worst, fabs((double)a[i] - b[i]));
        char what[96];
        snprintf(what, sizeof what,
                 "sample --sampler ddpm%s (random 8x8 network, T = %d): max |x_0 diff|",
                 clip ? " --clip-x0" : "", T);
        fails += line(what, worst, loop_tol());
    }
    free(a), free(b), free(h), free(z), free(eps);
    schedule_free(&s);
    model_free(m);
    return fails;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "ddpm")) {
        int fails = check_units();
        fails += check_sampler();
        return fails ? 1 : 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "twice")) {
        SampleOptions o = {.kind = SAMPLER_DDPM, .clip = 1};
        return sampler_twice("sample --sampler ddpm --clip-x0 (T = 50)", &o, 50) ? 1 : 0;
    }
    return student_main(argc, argv);
}

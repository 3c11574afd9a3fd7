// Grading harness for exercise 11 (classifier-free guidance), built three ways by grade.sh
// (-DDOUBLE, float, -fopenmp); see harness.h.
//   harness guided  guided_eps against eps(none) + w (eps(c) - eps(none)) from two separate forward
//                   passes, w = 0, 1, 2.5, -0.5 (1e-12 in -DDOUBLE, 1e-5 in float); then claims (f),
//                   (g) of notes/check.c: w = 1 IS the conditional model, w = 0 the unconditional one
//   harness twice   (the OpenMP build) the guided sampler twice: the same bytes
#include "../harness.h"

static int check_guided(void) {
    Config small = {1, 8, 8, 8, 16, 8, 16, 4, 10, 1};
    enum { B = 3 };
    Model *m = model_create(&small, 2 * B);
    Rng rng = {23};
    params_init(m, &rng, 1);
    size_t n = (size_t)B * 64;
    real *x = randoms(n, &rng), *x2 = malloc(2 * n * sizeof(real)), *eps = malloc(n * sizeof(real));
    real *ec = malloc(n * sizeof(real)), *eu = malloc(n * sizeof(real)), tt[2 * B];
    int lab[2 * B], cond[B] = {0, 4, 9}, none[B] = {10, 10, 10}, fails = 0;
    for (int b = 0; b < 2 * B; b++) tt[b] = 37, lab[b] = b < B ? cond[b] : 10;
    unet_forward(m, x, tt, cond, B);
    memcpy(ec, m->a.pred, n * sizeof(real));
    unet_forward(m, x, tt, none, B);
    memcpy(eu, m->a.pred, n * sizeof(real));
    double ws[] = {0, 1, 2.5, -0.5}, scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ec[i]) + fabs(eu[i]));
    for (int k = 0; k < 4; k++) {
        guided_eps(eps, m, x, x2, tt, lab, B, ws[k]);
        double worst = 0;
        for (size_t i = 0; i < n; i++) upd(&worst, fabs(eps[i] - (eu[i] + ws[k] * ((double)ec[i] - eu[i]))) / scale);
        char what[96];
        snprintf(what, sizeof what, "guided_eps, w = %4.1f: max |yours - (eps(none) + w (eps(c) - eps(none)))|", ws[k]);
        fails += line(what, worst, IS_DOUBLE ? 1e-12 : 1e-5);
    }
    free(x), free(x2), free(eps), free(ec), free(eu);
    model_free(m);
    Rng r = {1};
    fails += check_samplers(&r);
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
    SampleOptions o = {.kind = SAMPLER_DDIM, .steps = 10, .guided = 1, .w = 2.5};
    for (int k = 0; k < 2; k++) {
        Rng r = {5};
        x[k] = malloc(n * sizeof(real));
        sample_loop(x[k], m, &s, label, B, &o, &r, 0);
    }
    int fails = same_bytes("sample --sampler ddim --steps 10 --guidance 2.5: x_0", x[0], x[1], n * sizeof(real));
    free(x[0]), free(x[1]);
    schedule_free(&s);
    model_free(m);
    return fails;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "guided")) return check_guided() ? 1 : 0;
    if (argc >= 2 && !strcmp(argv[1], "twice")) return check_twice() ? 1 : 0;
    return student_main(argc, argv);
}

// Grading harness for exercise 4 (Steps 3-4: the training tuples and the loss), built three ways by
// grade.sh (-DDOUBLE, float, -fopenmp); see harness.h. It calls the student's static functions and
// compares them with the plain references below.
//   harness twice       (the OpenMP build) the batch, the loss and its gradient twice: the same
//                       bytes
//   harness draw        draw_training_batch against the slide's algorithm drawn in the README's
//                       order, on a small in-memory data set: with labels, without labels, and with
//                       label == NULL
//   harness mse         mse_forward and mse_backward against the mean squared error and its
//                       gradient; the backward must add (+=) into dpred
//   harness ARGS...     anything else: the student's commands and notes/check.c's (`gradcheck`,
//                       `train`)
// Every line ends in PASS or FAIL; the exit status is 1 when one fails.
#include "../harness.h"

// The slide's steps 1-4 for B tuples, drawing per tuple: the image (rng_int), t ~ Unif{1..T}
// (rng_int), eps (one rng_normal_fill); x_t by the one-shot form, computed as Step 1's
// forward_one_shot does.
static void ref_draw(real *x0, int *t, real *eps, real *xt, int *label, const Dataset *d,
                     const Schedule *s, int B, Rng *rng) {
    size_t n = (size_t)d->c * d->h * d->w;
    for (int b = 0; b < B; b++) {
        int i = rng_int(rng, d->n);
        for (size_t k = 0; k < n; k++) x0[b * n + k] = d->pixels[(size_t)i * n + k];
        if (label) label[b] = d->labels ? d->labels[i] : -1;
        t[b] = 1 + rng_int(rng, s->T);
        rng_normal_fill(rng, eps + b * n, n);
        double a = sqrt(s->alpha_bar[t[b]]), c = sqrt(s->one_minus_alpha_bar[t[b]]);
        for (size_t k = 0; k < n; k++)
            xt[b * n + k] = (real)(a * x0[b * n + k] + c * eps[b * n + k]);
    }
}

static int check_draw(void) {
    enum { NIMG = 37, B = 16 };
    Dataset d = {.n = NIMG, .c = 1, .h = 4, .w = 5};
    size_t n = (size_t)d.c * d.h * d.w, nb = (size_t)B * n;
    Rng r = {21};
    d.pixels = malloc(NIMG * n * sizeof(float));
    d.labels = malloc(NIMG * sizeof(int));
    for (size_t k = 0; k < NIMG * n; k++) d.pixels[k] = (float)(2 * rng_uniform(&r) - 1);
    for (int i = 0; i < NIMG; i++) d.labels[i] = rng_int(&r, 10);
    int *labels = d.labels, fails = 0;
    real *x0[2], *eps[2], *xt[2];
    int t[2][B], lab[2][B];
    for (int k = 0; k < 2; k++) {
        x0[k] = malloc(nb * sizeof(real));
        eps[k] = malloc(nb * sizeof(real));
        xt[k] = malloc(nb * sizeof(real));
    }
    struct { const char *name; ScheduleKind kind; int T, has_labels, label_ptr; } cases[] = {
        {"linear T=1000, labelled data", SCHEDULE_LINEAR, 1000, 1, 1},
        {"cosine T=10, data without labels", SCHEDULE_COSINE, 10, 0, 1},
        {"sde T=50, label == NULL", SCHEDULE_SDE, 50, 1, 0},
    };
    for (int c = 0; c < 3; c++) {
        Schedule s = schedule_make(cases[c].kind, cases[c].T);
        d.labels = cases[c].has_labels ? labels : NULL;
        double e_x0 = 0, e_eps = 0, e_xt = 0, e_t = 0, e_lab = 0;
        for (int rep = 0; rep < 20; rep++) {
            Rng r1 = {1000 + rep}, r2 = {1000 + rep};
            for (int k = 0; k < 2; k++)
                for (int b = 0; b < B; b++) t[k][b] = lab[k][b] = -7;
            draw_training_batch(x0[0], t[0], eps[0], xt[0], cases[c].label_ptr ? lab[0] : NULL, &d,
                                &s, B, &r1);
            ref_draw(x0[1], t[1], eps[1], xt[1], cases[c].label_ptr ? lab[1] : NULL, &d, &s, B,
                     &r2);
            for (size_t k = 0; k < nb; k++) {
                upd(&e_x0, fabs((double)x0[0][k] - x0[1][k]));
                upd(&e_eps, fabs((double)eps[0][k] - eps[1][k]));
                upd(&e_xt, fabs((double)xt[0][k] - xt[1][k]) / (1 + fabs(xt[1][k])));
            }
            for (int b = 0; b < B; b++) {
                e_t += t[0][b] != t[1][b];
                e_lab += lab[0][b] != lab[1][b];
            }
            // a different number of draws shows here (and in every later batch)
            e_t += r1.state != r2.state;
        }
        char what[128];
        printf("  draw_training_batch, %s (20 batches of %d):\n", cases[c].name, B);
        snprintf(what, sizeof what, "    t and the number of random draws: mismatches");
        fails += line(what, e_t, 0);
        snprintf(what, sizeof what, "    x0 (the images drawn): max |difference|");
        fails += line(what, e_x0, 0);
        snprintf(what, sizeof what, "    labels: mismatches");
        fails += line(what, e_lab, 0);
        snprintf(what, sizeof what, "    eps: max |difference|");
        fails += line(what, e_eps, 0);
        snprintf(what, sizeof what, "    x_t (one-shot form): max rel. difference");
        fails += line(what, e_xt, 1e-6);
        schedule_free(&s);
    }
    for (int k = 0; k < 2; k++) free(x0[k]), free(eps[k]), free(xt[k]);
    free(d.pixels), free(labels);
    return fails;
}

static int check_mse(void) {
    Rng r = {8};
    int fails = 0;
    size_t sizes[] = {1, 7, 1000, 6272};
    double e_f = 0, e_b = 0;
    for (int k = 0; k < 4; k++) {
        size_t n = sizes[k];
        real *pred = malloc(n * sizeof(real)), *eps = malloc(n * sizeof(real)),
             *d = malloc(n * sizeof(real));
        real *before = malloc(n * sizeof(real));
        double sum = 0, scale = 0;
        for (size_t i = 0; i < n; i++) {
            pred[i] = (real)(2 * rng_uniform(&r) - 1);
            eps[i] = (real)rng_normal(&r);
            sum += ((double)pred[i] - eps[i]) * ((double)pred[i] - eps[i]);
            scale = fmax(scale, fabs(2.0 * ((double)pred[i] - eps[i]) / (double)n));
        }
        double L = sum / (double)n, got = mse_forward(pred, eps, n);
        upd(&e_f, fabs(got - L) / L);
        for (size_t i = 0; i < n; i++) d[i] = before[i] = (real)(scale * (2 * rng_uniform(&r) - 1));
        mse_backward(d, pred, eps, n);
        for (size_t i = 0; i < n; i++) {
            double want = before[i] + 2.0 * ((double)pred[i] - eps[i]) / (double)n;
            upd(&e_b, fabs(d[i] - want) / scale);
        }
        free(pred), free(eps), free(d), free(before);
    }
    fails +=
        line("mse_forward = mean of (pred - eps)^2 (n = 1, 7, 1000, 6272): max rel. difference",
             e_f, 1e-6);
    fails +=
        line("mse_backward adds dL/dpred into dpred: max difference / max |dL/dpred|", e_b, 1e-5);
    return fails;
}

// The OpenMP build: the same batch drawn twice, and the loss and its gradient computed twice.
static int check_twice(void) {
    enum { NIMG = 50, B = 32 };
    Dataset d = {.n = NIMG, .c = 1, .h = 28, .w = 28};
    size_t n = (size_t)d.c * d.h * d.w, nb = (size_t)B * n;
    Rng r = {4};
    d.pixels = malloc(NIMG * n * sizeof(float));
    for (size_t k = 0; k < NIMG * n; k++) d.pixels[k] = (float)(2 * rng_uniform(&r) - 1);
    Schedule s = schedule_make(SCHEDULE_LINEAR, 1000);
    real *buf[2][4];
    int t[2][B], lab[2][B], fails = 0;
    double loss[2];
    for (int k = 0; k < 2; k++) {
        Rng rk = {77};
        for (int j = 0; j < 4; j++) buf[k][j] = calloc(nb, sizeof(real));
        draw_training_batch(buf[k][0], t[k], buf[k][1], buf[k][2], lab[k], &d, &s, B, &rk);
        loss[k] = mse_forward(buf[k][2], buf[k][1], nb);
        mse_backward(buf[k][3], buf[k][2], buf[k][1], nb);
    }
    fails += same_bytes("draw_training_batch: x0", buf[0][0], buf[1][0], nb * sizeof(real));
    fails += same_bytes("draw_training_batch: x_t", buf[0][2], buf[1][2], nb * sizeof(real));
    fails += same_bytes("draw_training_batch: t", t[0], t[1], sizeof t[0]);
    fails += same_bytes("mse_forward: the loss", &loss[0], &loss[1], sizeof loss[0]);
    fails += same_bytes("mse_backward: dpred", buf[0][3], buf[1][3], nb * sizeof(real));
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 4; j++) free(buf[k][j]);
    free(d.pixels);
    schedule_free(&s);
    return fails;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "twice")) return check_twice() ? 1 : 0;
    if (argc >= 2 && !strcmp(argv[1], "draw")) return check_draw() ? 1 : 0;
    if (argc >= 2 && !strcmp(argv[1], "mse")) return check_mse() ? 1 : 0;
    return student_main(argc, argv);
}

// Grading harness for exercise 7 (the AdamW step and the EMA of the weights), built three ways by
// grade.sh (-DDOUBLE, float, -fopenmp); see harness.h.
//   harness adamw   five steps of the student's adamw_step against this file's own, from the same
//                   weights and gradients: with the gradient clipped (norm 4 > clip 1) and not,
//                   with weight decay 0 and 0.1; the weights, both moments, the EMA and the
//                   returned norm.
//                   1e-12 in -DDOUBLE, 1e-6 in float (each stored value rounds to ~6e-8)
//   harness twice   (the OpenMP build) one step twice from the same state: the same bytes
//   harness ARGS... the student's own commands (grade.sh: `train`, for the 20-step checkpoint)
#include "../harness.h"

// AdamW (Loshchilov & Hutter 2019) with the gradient clipped to norm h->clip and Adam's bias
// corrections, then the EMA with its warm-up min(decay, (1 + step)/(10 + step)).
static double ref_adamw(real *p, real *g, real *m, real *v, real *ema, size_t n,
                        const TrainHyper *h, int64_t step) {
    double norm2 = 0;
    for (size_t i = 0; i < n; i++) norm2 += (double)g[i] * g[i];
    double norm = sqrt(norm2), scale = norm > h->clip ? h->clip / norm : 1.0;
    double bc1 = 1 - pow(h->beta1, (double)step), bc2 = 1 - pow(h->beta2, (double)step);
    double decay = fmin(h->ema_decay, (1.0 + step) / (10.0 + step));
    for (size_t i = 0; i < n; i++) {
        double gi = g[i] * scale;
        double mi = h->beta1 * m[i] + (1 - h->beta1) * gi,
               vi = h->beta2 * v[i] + (1 - h->beta2) * gi * gi;
        m[i] = (real)mi;
        v[i] = (real)vi;
        double pi = p[i];
        pi -= h->lr * ((mi / bc1) / (sqrt(vi / bc2) + h->eps) + h->weight_decay * pi);
        p[i] = (real)pi;
        ema[i] = (real)(decay * ema[i] + (1 - decay) * pi);
    }
    return norm;
}

static double rel(const real *a, const real *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) upd(&worst, fabs((double)a[i] - b[i]) / (1e-3 + fabs(b[i])));
    return worst;
}

static int check_adamw(void) {
    Config small = {1, 8, 8, 8, 16, 8, 16, 4, 10, 1};
    Model *m = model_create(&small, 2);
    Rng rng = {17};
    params_init(m, &rng, 1);
    size_t n = m->n_params;
    double tol = IS_DOUBLE ? 1e-12 : 1e-6;
    int fails = 0;
    struct { const char *name; double gscale, wd; } cases[] = {
        {"gradient norm ~4, clipped to 1, no weight decay", 4, 0},
        {"gradient norm ~0.5, not clipped, weight decay 0.1", 0.5, 0.1},
    };
    for (int c = 0; c < 2; c++) {
        TrainHyper h = DEFAULT_HYPER;
        h.lr = 1e-2, h.weight_decay = cases[c].wd;
        real *p = malloc(n * sizeof(real)), *mm = calloc(n, sizeof(real)),
             *vv = calloc(n, sizeof(real));
        real *ema = malloc(n * sizeof(real));
        memcpy(p, m->params, n * sizeof(real));
        memcpy(ema, m->params, n * sizeof(real));
        memset(m->adam_m, 0, n * sizeof(real));
        memset(m->adam_v, 0, n * sizeof(real));
        memcpy(m->ema, m->params, n * sizeof(real));
        real *saved = malloc(n * sizeof(real));
        memcpy(saved, m->params, n * sizeof(real));
        double e_norm = 0;
        for (int64_t step = 1; step <= 5; step++) {
            double norm2 = 0;
            for (size_t i = 0; i < n; i++) {
                m->grads[i] = (real)rng_normal(&rng);
                norm2 += (double)m->grads[i] * m->grads[i];
            }
            for (size_t i = 0; i < n; i++)
                m->grads[i] = (real)(m->grads[i] * cases[c].gscale / sqrt(norm2));
            double want = ref_adamw(p, m->grads, mm, vv, ema, n, &h, step);
            double got = adamw_step(m, &h, step);
            upd(&e_norm, fabs(got - want) / want);
        }
        printf("  after 5 steps, %s:\n", cases[c].name);
        fails += line("    the returned gradient norm (before clipping): max rel. difference",
                      e_norm, tol);
        fails += line("    the weights (params): max rel. difference", rel(m->params, p, n), tol);
        fails += line("    Adam's first moment (adam_m): max rel. difference",
                      rel(m->adam_m, mm, n), tol);
        fails += line("    Adam's second moment (adam_v): max rel. difference",
                      rel(m->adam_v, vv, n), tol);
        fails +=
            line("    the EMA of the weights (ema): max rel. difference", rel(m->ema, ema, n), tol);
        memcpy(m->params, saved, n * sizeof(real));
        free(p), free(mm), free(vv), free(ema), free(saved);
    }
    model_free(m);
    return fails;
}

// One step (step 3) twice from the same state, on the default network: the same bytes.
static int check_twice(void) {
    Config c = DEFAULT_CONFIG;
    Model *m = model_create(&c, 1);
    Rng rng = {19};
    params_init(m, &rng, 1);
    size_t n = m->n_params, bytes = 4 * n * sizeof(real);
    for (size_t i = 0; i < n; i++) {
        m->grads[i] = (real)(0.01 * rng_normal(&rng));
        m->adam_m[i] = (real)(0.001 * rng_normal(&rng));
        m->adam_v[i] = (real)(1e-6 * rng_uniform(&rng));
        m->ema[i] = m->params[i];
    }
    real *start = malloc(bytes), *after[2];  // params, adam_m, adam_v, ema
    real *views[4] = {m->params, m->adam_m, m->adam_v, m->ema};
    for (int j = 0; j < 4; j++) memcpy(start + j * n, views[j], n * sizeof(real));
    TrainHyper h = DEFAULT_HYPER;
    h.weight_decay = 0.01;
    for (int k = 0; k < 2; k++) {
        for (int j = 0; j < 4; j++) memcpy(views[j], start + j * n, n * sizeof(real));
        adamw_step(m, &h, 3);
        after[k] = malloc(bytes);
        for (int j = 0; j < 4; j++) memcpy(after[k] + j * n, views[j], n * sizeof(real));
    }
    int fails = same_bytes("adamw_step: params, adam_m, adam_v, ema", after[0], after[1], bytes);
    free(start), free(after[0]), free(after[1]);
    model_free(m);
    return fails;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "adamw")) return check_adamw() ? 1 : 0;
    if (argc >= 2 && !strcmp(argv[1], "twice")) return check_twice() ? 1 : 0;
    return student_main(argc, argv);
}

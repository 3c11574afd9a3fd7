// Grading harness for exercise 8 (two attention heads), built three ways by grade.sh (-DDOUBLE,
// float, -fopenmp); see harness.h.
//   harness heads        the student's attention_forward vs this file's own 2-head attention: 1e-9
//                        in the -DDOUBLE build, 1e-5 in float
//   harness twice        (the OpenMP build) forward and backward twice: the same bytes
//   harness ARGS...      notes/check.c's gradcheck and refcheck on the student's code (refcheck is
//                        the 1-head PyTorch reference: expected to fail now)
#include "../harness.h"

// The attention of the README with `heads` heads, written as plainly as possible, in double:
// GroupNorm, 1x1 convolutions q, k, v; head h owns channels h*C/heads .. (h+1)*C/heads - 1 and has
// its own softmax_j(q_i . k_j / sqrt(C/heads)); o = the heads' outputs side by side; out = in +
// proj(o).
static void reference_attention(double *out, const Model *m, const real *in, int B, int heads) {
    const AttnParams *p = &m->p.attn;
    int C = m->a.at.C, N = m->a.at.N, G = m->cfg.groups, cg = C / G, Ch = C / heads;
    double *gn = calloc((size_t)C * N, sizeof(double)), *q = calloc((size_t)C * N, sizeof(double));
    double *k = calloc((size_t)C * N, sizeof(double)), *v = calloc((size_t)C * N, sizeof(double));
    double *o = calloc((size_t)C * N, sizeof(double)), *s = calloc((size_t)N, sizeof(double));
    for (int b = 0; b < B; b++) {
        const real *x = in + (size_t)b * C * N;
        for (int g = 0; g < G; g++) {
            double mean = 0, var = 0;
            for (int i = 0; i < cg * N; i++) mean += x[g * cg * N + i];
            mean /= cg * N;
            for (int i = 0; i < cg * N; i++)
                var += (x[g * cg * N + i] - mean) * (x[g * cg * N + i] - mean);
            var /= cg * N;
            for (int c = g * cg; c < (g + 1) * cg; c++)
                for (int i = 0; i < N; i++)
                    gn[c * N + i] =
                        (x[c * N + i] - mean) / sqrt(var + 1e-5) * p->gn_g[c] + p->gn_b[c];
        }
        for (int c = 0; c < C; c++)
            for (int i = 0; i < N; i++) {
                double sq = p->q.b[c], sk = p->k.b[c], sv = p->v.b[c];
                for (int d = 0; d < C; d++) {
                    sq += p->q.w[c * C + d] * gn[d * N + i];
                    sk += p->k.w[c * C + d] * gn[d * N + i];
                    sv += p->v.w[c * C + d] * gn[d * N + i];
                }
                q[c * N + i] = sq, k[c * N + i] = sk, v[c * N + i] = sv;
            }
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < N; i++) {
                double mx = -1e300, sum = 0;
                for (int j = 0; j < N; j++) {
                    s[j] = 0;
                    for (int c = h * Ch; c < (h + 1) * Ch; c++) s[j] += q[c * N + i] * k[c * N + j];
                    s[j] /= sqrt((double)Ch);
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < N; j++) sum += (s[j] = exp(s[j] - mx));
                for (int c = h * Ch; c < (h + 1) * Ch; c++) {
                    double acc = 0;
                    for (int j = 0; j < N; j++) acc += s[j] / sum * v[c * N + j];
                    o[c * N + i] = acc;
                }
            }
        for (int c = 0; c < C; c++)
            for (int i = 0; i < N; i++) {
                double acc = p->proj.b[c];
                for (int d = 0; d < C; d++) acc += p->proj.w[c * C + d] * o[d * N + i];
                out[((size_t)b * C + c) * N + i] = x[c * N + i] + acc;
            }
    }
    free(gn), free(q), free(k), free(v), free(o), free(s);
}

static int check_heads(void) {
    // attention at 4x4 = 16 positions, C = 16 channels
    Config c = {1, 16, 16, 8, 16, 8, 16, 4, 10, 1};
    int B = 2;
    Rng rng = {7};
    Model *m = model_create(&c, B);
    params_init(m, &rng, 1);
    size_t n = (size_t)B * m->a.at.C * m->a.at.N;
    for (size_t i = 0; i < n; i++) m->a.at.in[i] = (real)(2 * rng_uniform(&rng) - 1);
    attention_forward(&m->p.attn, &m->a.at, m, B);
    double *r1 = malloc(n * sizeof(double)), *r2 = malloc(n * sizeof(double)), e1 = 0, e2 = 0;
    reference_attention(r1, m, m->a.at.in, B, 1);
    reference_attention(r2, m, m->a.at.in, B, 2);
    for (size_t i = 0; i < n; i++) {
        e1 = fmax(e1, fabs(m->a.at.out[i] - r1[i]));
        e2 = fmax(e2, fabs(m->a.at.out[i] - r2[i]));
    }
    char what[128];
    snprintf(what, sizeof what, "attention output (C = %d, N = %d, B = %d): max |yours - 2 heads|",
             m->a.at.C, m->a.at.N, B);
    int fails = line(what, e2, IS_DOUBLE ? 1e-9 : 1e-5);
    printf("    (max |yours - 1 head| = %.3e: the one-head attention of diffusion.c)\n", e1);
    free(r1), free(r2);
    model_free(m);
    return fails;
}

// Forward and backward of the attention twice on the same input (the default 7x7 attention).
static int check_twice(void) {
    Config c = DEFAULT_CONFIG;
    int B = 4, fails = 0;
    Rng rng = {5};
    Model *m = model_create(&c, B);
    params_init(m, &rng, 1);
    AttnActs *a = &m->a.at;
    size_t n = (size_t)B * a->C * a->N;
    real *in = randoms(n, &rng), *dout = randoms(n, &rng), *out[2], *din[2], *gp[2];
    for (int k = 0; k < 2; k++) {
        memcpy(a->in, in, n * sizeof(real));
        attention_forward(&m->p.attn, a, m, B);
        out[k] = malloc(n * sizeof(real));
        memcpy(out[k], a->out, n * sizeof(real));
        memset(m->grads, 0, m->n_params * sizeof(real));
        memset(m->dacts, 0, m->n_acts * sizeof(real));
        memcpy(m->da.at.out, dout, n * sizeof(real));
        attention_backward(&m->p.attn, &m->g.attn, a, &m->da.at, m, B);
        din[k] = malloc(n * sizeof(real));
        memcpy(din[k], m->da.at.in, n * sizeof(real));
        gp[k] = malloc(m->n_params * sizeof(real));
        memcpy(gp[k], m->grads, m->n_params * sizeof(real));
    }
    fails += same_bytes("attention_forward: out", out[0], out[1], n * sizeof(real));
    fails += same_bytes("attention_backward: dinp", din[0], din[1], n * sizeof(real));
    fails += same_bytes("attention_backward: the parameters' gradients", gp[0], gp[1],
                        m->n_params * sizeof(real));
    for (int k = 0; k < 2; k++) free(out[k]), free(din[k]), free(gp[k]);
    free(in), free(dout);
    model_free(m);
    return fails;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "heads")) return check_heads();
    if (argc >= 2 && !strcmp(argv[1], "twice")) return check_twice() ? 1 : 0;
    return student_main(argc, argv);
}

// Grading harness for exercise 5 (two attention heads). grade.sh compiles it with -DDOUBLE and
// -DSTUDENT_C='"path/to/student/diffusion.c"': the student's file is included whole, its main renamed, so the
// harness can call its static functions.
//   harness heads        the student's attention_forward vs this file's own 2-head attention (exit 1 if different)
//   harness gradcheck    the student's `gradcheck` (run_gradcheck)
//   harness refcheck F   the student's `refcheck` against F (the 1-head PyTorch reference: expected to fail now)
#define main student_main
#include STUDENT_C
#undef main

// The attention of the README with `heads` heads, written as plainly as possible, in double:
// GroupNorm, 1x1 convolutions q, k, v; head h owns channels h*C/heads .. (h+1)*C/heads - 1 and has its own
// softmax_j(q_i . k_j / sqrt(C/heads)); o = the heads' outputs side by side; out = in + proj(o).
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
            for (int i = 0; i < cg * N; i++) var += (x[g * cg * N + i] - mean) * (x[g * cg * N + i] - mean);
            var /= cg * N;
            for (int c = g * cg; c < (g + 1) * cg; c++)
                for (int i = 0; i < N; i++) gn[c * N + i] = (x[c * N + i] - mean) / sqrt(var + 1e-5) * p->gn_g[c] + p->gn_b[c];
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
    Config c = {1, 16, 16, 8, 16, 8, 16, 4, 10, 1};  // attention at 4x4 = 16 positions, C = 16 channels
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
    printf("attention output (C = %d, N = %d, B = %d): max |yours - 1 head| = %.3e, max |yours - 2 heads| = %.3e (tolerance 1e-9)\n",
           m->a.at.C, m->a.at.N, B, e1, e2);
    free(r1), free(r2);
    model_free(m);
    return e2 <= 1e-9 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "heads")) return check_heads();
    if (argc >= 2 && !strcmp(argv[1], "gradcheck")) return run_gradcheck(1);
    if (argc >= 3 && !strcmp(argv[1], "refcheck")) return run_refcheck(argv[2], count_params(&DEFAULT_CONFIG));
    fprintf(stderr, "usage: harness heads | gradcheck | refcheck FILE\n");
    return 2;
}

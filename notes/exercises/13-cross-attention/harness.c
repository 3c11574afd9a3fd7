// Grading harness for exercise 13 (cross-attention), built three ways by grade.sh (-DDOUBLE,
// float, -fopenmp); see harness.h.
//   harness forward      cross_attention_forward vs this file's plain-loop reference in double
//                        (out, and the attention weights p it keeps for the backward), on three
//                        prompts of 4, 2 and 1 tokens in 4 slots: 1e-9 in -DDOUBLE, 1e-5 in float
//   harness accumulate   cross_attention_backward must ADD (+=) into d->in, de and the parameters'
//                        gradients: called on zeroed ones (giving g) and on ones holding random r,
//                        which must then hold r + g. gradcheck's buffers start at 0: it cannot
//                        see an `=`
//   harness twice        (the OpenMP build, 4 threads) forward and backward twice: the same bytes
//   harness ARGS...      notes/check.c's gradcheck on the student's code
#include "../harness.h"

// One cross-attention layer with its own buffers: parameters (10 tensors in one array, as in
// gc_cross_attention of notes/check.c), activations, their gradients, token vectors e (B,L,D).
typedef struct {
    int B, C, N, L, D, G;
    const int *len;
    size_t np;
    real *params, *grads, *e, *de, *scratch;
    AttnParams p, g;
    CrossAttnActs a, d;
    Workspace *ws;
} Layer;

static void view(AttnParams *P, real *v, int C, int D) {
    size_t sizes[10] = {C, C, (size_t)C * C, C, (size_t)C * D, C, (size_t)C * D, C,
                        (size_t)C * C, C};
    real **dst[10] = {&P->gn_g, &P->gn_b, &P->q.w, &P->q.b, &P->k.w, &P->k.b, &P->v.w, &P->v.b,
                      &P->proj.w, &P->proj.b};
    for (int i = 0; i < 10; i++) {
        *dst[i] = v;
        v += sizes[i];
    }
}
static void acts(CrossAttnActs *a, int B, int C, int N, int L, int D, int G) {
    size_t n = (size_t)B * C * N, nl = (size_t)B * L * C;
    *a = (CrossAttnActs){C, N, L, D, xcalloc(n, sizeof(real)),
                         {xcalloc(n, sizeof(real)), xcalloc((size_t)B * G, sizeof(real)),
                          xcalloc((size_t)B * G, sizeof(real))},
                         xcalloc(n, sizeof(real)), xcalloc(nl, sizeof(real)),
                         xcalloc(nl, sizeof(real)), xcalloc((size_t)B * N * L, sizeof(real)),
                         xcalloc(n, sizeof(real)), xcalloc(n, sizeof(real))};
}
static void acts_free(CrossAttnActs *a) {
    real *all[] = {a->in, a->gn.out, a->gn.mean, a->gn.rstd, a->q, a->k, a->v, a->p, a->o, a->out};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}
// Random weights (GroupNorm gains near 1), input and token vectors; the padding slots too hold
// random vectors, so that a layer that reads them gives another output.
static Layer layer_make(int B, int C, int N, int L, int D, int G, const int *len, Workspace *ws,
                        Rng *r) {
    Layer y = {.B = B, .C = C, .N = N, .L = L, .D = D, .G = G, .len = len,
               .np = 2 * (size_t)C * C + 2 * (size_t)C * D + 6 * (size_t)C};
    y.params = randoms(y.np, r);
    y.grads = xcalloc(y.np, sizeof(real));
    view(&y.p, y.params, C, D);
    view(&y.g, y.grads, C, D);
    for (int c = 0; c < C; c++) y.p.gn_g[c] = 1 + y.p.gn_g[c] / 2;
    acts(&y.a, B, C, N, L, D, G);
    acts(&y.d, B, C, N, L, D, G);
    size_t n = (size_t)B * C * N, ne = (size_t)B * L * D;
    for (size_t i = 0; i < n; i++) y.a.in[i] = (real)(2 * rng_uniform(r) - 1);
    y.e = randoms(ne, r);
    y.de = xcalloc(ne, sizeof(real));
    y.scratch = xcalloc(2 * (size_t)N * L, sizeof(real));
    y.ws = ws;
    return y;
}
static void layer_free(Layer *y) {
    acts_free(&y->a), acts_free(&y->d);
    free(y->params), free(y->grads), free(y->e), free(y->de), free(y->scratch);
}
static void forward(Layer *y) {
    cross_attention_forward(&y->p, &y->a, y->e, y->len, y->scratch, y->G, y->ws, y->B);
}
// The backward from dout, with the intermediate gradients (gn.out, q, k, v, o) zeroed first, as
// the network's step does; d->in, de and the parameters' gradients keep what they hold.
static void backward(Layer *y, const real *dout) {
    size_t n = (size_t)y->B * y->C * y->N, nl = (size_t)y->B * y->L * y->C;
    memcpy(y->d.out, dout, n * sizeof(real));
    real *zero[] = {y->d.gn.out, y->d.q, y->d.o};
    for (int i = 0; i < 3; i++) memset(zero[i], 0, n * sizeof(real));
    memset(y->d.k, 0, nl * sizeof(real));
    memset(y->d.v, 0, nl * sizeof(real));
    cross_attention_backward(&y->p, &y->g, &y->a, &y->d, y->e, y->de, y->len, y->scratch, y->G,
                             y->ws, y->B);
}

// The layer as the comment above cross_attention_forward says, in double, plain loops:
// GroupNorm (eps 1e-5), q = Wq gn + bq (C,N), k_j = Wk e_j + bk, v_j = Wv e_j + bv (L,C),
// p_i = softmax over j < len of q_i . k_j / sqrt(C) (p_ij = 0 for the padding), o_i = sum_j p_ij
// v_j, out = in + Wproj o + bproj. `wrong` gives the two mistakes the README warns about, for
// the notes: 1 the softmax over all L slots (padding included), 2 over the N positions.
static void reference(double *out, double *pr, const Layer *y, int wrong) {
    const AttnParams *P = &y->p;
    int C = y->C, N = y->N, L = y->L, D = y->D, G = y->G, cg = C / G;
    size_t n = (size_t)C * N;
    double *gn = xcalloc(n, sizeof(double)), *q = xcalloc(n, sizeof(double));
    double *k = xcalloc((size_t)L * C, sizeof(double)), *v = xcalloc((size_t)L * C, sizeof(double));
    double *s = xcalloc((size_t)N * L, sizeof(double)), *o = xcalloc(n, sizeof(double));
    for (int b = 0; b < y->B; b++) {
        const real *x = y->a.in + (size_t)b * C * N, *e = y->e + (size_t)b * L * D;
        int len = y->len[b];
        for (int g = 0; g < G; g++) {
            double mean = 0, var = 0;
            for (int i = 0; i < cg * N; i++) mean += x[g * cg * N + i];
            mean /= cg * N;
            for (int i = 0; i < cg * N; i++)
                var += (x[g * cg * N + i] - mean) * (x[g * cg * N + i] - mean);
            var /= cg * N;
            for (int c = g * cg; c < (g + 1) * cg; c++)
                for (int i = 0; i < N; i++)
                    gn[c * N + i] = (x[c * N + i] - mean) / sqrt(var + 1e-5) * P->gn_g[c] +
                                    P->gn_b[c];
        }
        for (int c = 0; c < C; c++)
            for (int i = 0; i < N; i++) {
                double acc = P->q.b[c];
                for (int d = 0; d < C; d++) acc += P->q.w[c * C + d] * gn[d * N + i];
                q[c * N + i] = acc;
            }
        for (int j = 0; j < L; j++)
            for (int c = 0; c < C; c++) {
                double ak = P->k.b[c], av = P->v.b[c];
                for (int t = 0; t < D; t++) {
                    ak += P->k.w[c * D + t] * e[j * D + t];
                    av += P->v.w[c * D + t] * e[j * D + t];
                }
                k[j * C + c] = ak, v[j * C + c] = av;
            }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < L; j++) {
                double acc = 0;
                for (int c = 0; c < C; c++) acc += q[c * N + i] * k[j * C + c];
                s[i * L + j] = acc / sqrt((double)C);
            }
        // softmax: along each row i over j < len (right), j < L (wrong 1), or down each column
        // j < len over i < N (wrong 2); the max subtracted first
        int rows = wrong == 2 ? L : N, cols = wrong == 2 ? N : wrong == 1 ? L : len;
        for (int r = 0; r < rows; r++) {
            double mx = -1e300, sum = 0;
            long at = wrong == 2 ? r : (long)r * L, step = wrong == 2 ? L : 1;
            for (int c = 0; c < cols; c++) mx = fmax(mx, s[at + c * step]);
            for (int c = 0; c < cols; c++) sum += (s[at + c * step] = exp(s[at + c * step] - mx));
            for (int c = 0; c < cols; c++) s[at + c * step] /= sum;
            if (wrong == 2 && r >= len)
                for (int c = 0; c < N; c++) s[c * L + r] = 0;
        }
        if (wrong == 0)
            for (int i = 0; i < N; i++)
                for (int j = len; j < L; j++) s[i * L + j] = 0;
        if (pr) memcpy(pr + (size_t)b * N * L, s, (size_t)N * L * sizeof(double));
        for (int c = 0; c < C; c++)
            for (int i = 0; i < N; i++) {
                double acc = 0;
                for (int j = 0; j < L; j++) acc += s[i * L + j] * v[j * C + c];
                o[c * N + i] = acc;
            }
        for (int c = 0; c < C; c++)
            for (int i = 0; i < N; i++) {
                double acc = P->proj.b[c];
                for (int d = 0; d < C; d++) acc += P->proj.w[c * C + d] * o[d * N + i];
                out[((size_t)b * C + c) * N + i] = x[c * N + i] + acc;
            }
    }
    free(gn), free(q), free(k), free(v), free(s), free(o);
}
// max |got - want| / max |want| (NaN kept)
static double rel_err(const real *got, const double *want, size_t n) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        upd(&worst, fabs(got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    return worst / (scale > 0 ? scale : 1);
}

// B = 3 images of N = 12 positions, C = 16 channels; L = 4 token slots of D = 10 (D != C, so that
// k and v of the wrong shape do not fit); prompts of 4, 2 and 1 tokens.
enum { TB = 3, TC = 16, TN = 12, TL = 4, TD = 10, TG = 4 };
static const int TLEN[TB] = {4, 2, 1};

static Model *ws_model(void) {  // a model for its convolution workspace (the 1x1 convs use it)
    Config c = DEFAULT_CONFIG;
    Model *m = model_create(&c, 4);
    return m;
}

static int check_forward(void) {
    Model *m = ws_model();
    Rng r = {11};
    Layer y = layer_make(TB, TC, TN, TL, TD, TG, TLEN, m->ws, &r);
    size_t n = (size_t)TB * TC * TN, np = (size_t)TB * TN * TL;
    forward(&y);
    double *want = xmalloc(n * sizeof(double)), *pw = xmalloc(np * sizeof(double));
    double *other = xmalloc(n * sizeof(double)), tol = IS_DOUBLE ? 1e-9 : 1e-5;
    reference(want, pw, &y, 0);
    char what[128];
    snprintf(what, sizeof what, "out, prompts of 4, 2, 1 tokens in %d slots: max error / max |out|",
             TL);
    int fails = line(what, rel_err(y.a.out, want, n), tol);
    fails += line("p (B,N,L), kept for the backward (padding: 0): max error",
                  rel_err(y.a.p, pw, np), tol);
    static const char *wrongs[] = {"", "the softmax over all 4 slots, padding included",
                                   "the softmax over the 12 image positions"};
    for (int w = 1; w <= 2; w++) {
        reference(other, NULL, &y, w);
        printf("    (out vs %s: max error / max |out| %.3e)\n", wrongs[w],
               rel_err(y.a.out, other, n));
    }
    free(want), free(pw), free(other);
    layer_free(&y);
    model_free(m);
    return fails;
}

// max |after - (before + once)| over n values, relative to 1 + |once| (NaN if any is NaN)
static double accumulated(const real *after, const real *before, const real *once, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        upd(&worst, fabs((double)after[i] - ((double)before[i] + once[i])) / (1 + fabs(once[i])));
    return worst;
}

static int check_accumulate(void) {
    Model *m = ws_model();
    Rng r = {5};
    Layer y = layer_make(TB, TC, TN, TL, TD, TG, TLEN, m->ws, &r);
    size_t n = (size_t)TB * TC * TN, ne = (size_t)TB * TL * TD;
    real *dout = randoms(n, &r);
    forward(&y);
    backward(&y, dout);  // from zero: g
    real *once[3] = {xmalloc(n * sizeof(real)), xmalloc(ne * sizeof(real)),
                     xmalloc(y.np * sizeof(real))};
    real *before[3] = {randoms(n, &r), randoms(ne, &r), randoms(y.np, &r)};
    real *buf[3] = {y.d.in, y.de, y.grads};
    size_t size[3] = {n, ne, y.np};
    for (int i = 0; i < 3; i++) {
        memcpy(once[i], buf[i], size[i] * sizeof(real));
        memcpy(buf[i], before[i], size[i] * sizeof(real));
    }
    backward(&y, dout);  // from r: r + g
    static const char *what[3] = {"cross_attention_backward adds into d->in (+=)",
                                  "cross_attention_backward adds into de (+=)",
                                  "cross_attention_backward adds into g, the parameters' (+=)"};
    double tol = IS_DOUBLE ? 1e-12 : 1e-6;  // float: the sum r + g rounds
    int fails = 0;
    for (int i = 0; i < 3; i++) {
        fails += line(what[i], accumulated(buf[i], before[i], once[i], size[i]), tol);
        free(once[i]), free(before[i]);
    }
    free(dout);
    layer_free(&y);
    model_free(m);
    return fails;
}

// Forward and backward twice on the same input, at the real network's size: 7x7 positions, 64
// channels, 8 slots of prompts of 8, 5, 3 and 1 tokens.
static int check_twice(void) {
    enum { B = 4, C = 64, N = 49, L = 8, G = 8 };
    static const int len[B] = {8, 5, 3, 1};
    Model *m = ws_model();
    Rng r = {3};
    Layer y = layer_make(B, C, N, L, C, G, len, m->ws, &r);
    size_t n = (size_t)B * C * N, ne = (size_t)B * L * C;
    real *dout = randoms(n, &r), *out[2], *din[2], *de[2], *gp[2];
    for (int k = 0; k < 2; k++) {
        forward(&y);
        out[k] = xmalloc(n * sizeof(real));
        memcpy(out[k], y.a.out, n * sizeof(real));
        memset(y.d.in, 0, n * sizeof(real));
        memset(y.de, 0, ne * sizeof(real));
        memset(y.grads, 0, y.np * sizeof(real));
        backward(&y, dout);
        din[k] = xmalloc(n * sizeof(real));
        de[k] = xmalloc(ne * sizeof(real));
        gp[k] = xmalloc(y.np * sizeof(real));
        memcpy(din[k], y.d.in, n * sizeof(real));
        memcpy(de[k], y.de, ne * sizeof(real));
        memcpy(gp[k], y.grads, y.np * sizeof(real));
    }
    int fails = same_bytes("cross_attention_forward: out", out[0], out[1], n * sizeof(real));
    fails += same_bytes("cross_attention_backward: d->in", din[0], din[1], n * sizeof(real));
    fails += same_bytes("cross_attention_backward: de", de[0], de[1], ne * sizeof(real));
    fails += same_bytes("cross_attention_backward: the parameters' gradients", gp[0], gp[1],
                        y.np * sizeof(real));
    for (int k = 0; k < 2; k++) free(out[k]), free(din[k]), free(de[k]), free(gp[k]);
    free(dout);
    layer_free(&y);
    model_free(m);
    return fails;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "forward")) return check_forward() ? 1 : 0;
    if (argc >= 2 && !strcmp(argv[1], "accumulate")) return check_accumulate() ? 1 : 0;
    if (argc >= 2 && !strcmp(argv[1], "twice")) return check_twice() ? 1 : 0;
    return student_main(argc, argv);
}

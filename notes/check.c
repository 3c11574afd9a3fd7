// notes/check.c — the lecture's claims, measured; every backward pass against finite differences;
// the whole network against PyTorch. A companion of diffusion.c (as llm.c's test_gpt2.c is of
// train_gpt2.c): it includes the file whole, without its main, and adds three commands.
//
//   make check       notes/check claims      (a)-(h): the lecture's claims, measured
//   make gradcheck   notes/check gradcheck   float, then -DDOUBLE (the 1e-6 proof)
//   make refcheck    notes/check refcheck    against notes/pytorch_mirror.py's data/unet_ref.bin
//                                            and data/unet_text_ref.bin (the text model)
//
// or by hand: cc -O2 notes/check.c -lm -o check && ./check claims. -DDIFFUSION_C='"path/x.c"'
// checks another copy of diffusion.c (the exercise graders do).
#ifndef DIFFUSION_C
#define DIFFUSION_C "../diffusion.c"
#endif
#define DIFFUSION_NO_MAIN
#include DIFFUSION_C
// GCC before 13 for aarch64 crashes (an internal compiler error) vectorizing the checks' nested
// fmax() reductions: here, where speed does not matter, it is told not to vectorize loops.
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC optimize("no-tree-loop-vectorize")
#endif

// The larger of a running worst error and a new one, where NaN (a broken computation) is the
// worst of all and stays so: fmax would drop it, and a check fed NaNs would pass.
static double worse(double worst, double e) { return isnan(worst) || e <= worst ? worst : e; }

// ---- `./diffusion check`: the lecture's exactness claims, measured --------------------------
// Monte Carlo tolerances are 5 standard errors of the estimate (a correct claim fails with
// probability < 1e-6, and with a fixed seed the outcome is fixed): SE(mean) = sqrt(var/n),
// SE(variance) = var sqrt(2/(n-1)) for Gaussian data, with n = NS samples per claim (a slow
// machine, an emulator, may build with -DCHECK_SAMPLES=10000: the tolerances follow).
#ifndef CHECK_SAMPLES
enum { NS = 100000 };
#else
enum { NS = CHECK_SAMPLES };
#endif
static void mean_var(const double *x, size_t n, double *mean, double *var) {
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (size_t i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *var = ss / (n - 1);
}
// One claim, named like printf: measured against expected within tol. Returns 1 if it holds.
static int check_line(double measured, double expected, double tol, const char *fmt, ...) {
    char claim[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(claim, sizeof claim, fmt, ap);
    va_end(ap);
    int ok = fabs(measured - expected) <= tol;
    printf("  %-48s measured %12.6g  expected %12.6g  tol %.2e  %s\n", claim, measured, expected,
           tol, ok ? "PASS" : "FAIL");
    return ok;
}
// mean and variance of x ~ N(mean, var) (NS samples) at the 5-SE tolerances widened by extra_m and
// extra_v, named like printf; returns the failures
static int check_gaussian(const double *x, double mean, double var, double extra_m, double extra_v,
                          const char *fmt, ...) {
    char what[64];
    double m, v;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    mean_var(x, NS, &m, &v);
    int ok = check_line(m, mean, 5 * sqrt(var / NS) + extra_m, "%s mean", what);
    ok &= check_line(v, var, 5 * var * sqrt(2.0 / (NS - 1)) + extra_v, "%s variance", what);
    return !ok;
}

// (a) Step 1: the one-step chain and the one-shot form give X_k the same law, X_0 = 1, through
// the program's own forward_one_step and forward_one_shot.
static int check_one_step_equals_one_shot(const Schedule *lin, Rng *rng) {
    printf("(a) one-step chain = one-shot form: X_k | X_0 ~ N(sqrt(alpha_bar_k) X_0, "
           "1 - alpha_bar_k)  [linear, T=%d, n=%d]\n", lin->T, NS);
    real *chain = xmalloc(NS * sizeof(real)), *shot = xmalloc(NS * sizeof(real));
    real *e = xmalloc(NS * sizeof(real)), *ones = xmalloc(NS * sizeof(real));
    double *x = xmalloc(NS * sizeof(double));
    for (int i = 0; i < NS; i++) chain[i] = ones[i] = 1;
    int marks[] = {1, 10, 100, 500, 1000, -1}, mi = 0, fails = 0;
    for (int k = 1; k <= lin->T && marks[mi] > 0; k++) {
        rng_normal_fill(rng, e, NS);
        forward_one_step(chain, e, lin, k, NS);
        if (k != marks[mi]) continue;
        mi++;
        rng_normal_fill(rng, e, NS);
        forward_one_shot(shot, ones, e, lin, k, NS);
        double mean = sqrt(lin->alpha_bar[k]), var = lin->one_minus_alpha_bar[k];
        for (int j = 0; j < 2; j++) {  // the chain, then the one-shot form
            for (int i = 0; i < NS; i++) x[i] = j ? shot[i] : chain[i];
            fails += check_gaussian(x, mean, var, 0, 0, "k=%4d %s", k, j ? "one-shot" : "one-step");
        }
    }
    free_all(5, chain, shot, e, ones, x);
    return fails;
}

// (b) Step 1's erratum: Euler-Maruyama with M steps of the VP-SDE (drift -1/2 beta X) matches the
// sde schedule; the slide's literal SDE (drift -beta X) ends at variance 1/2. The EM scheme's own
// mean and variance (m <- (1 - a du) m, v <- (1 - a du)^2 v + beta du) are computed alongside;
// their gap to the continuous answer, the O(du) error of EM, widens the tolerance.
static int check_forward_sdes(const Schedule *sde, Rng *rng) {
    const int M = 2000;
    double *x = xmalloc(NS * sizeof(double)), du = 1.0 / M;
    int fails = 0, T = sde->T;
    for (int variant = 0; variant < 2; variant++) {
        double drift = variant == 0 ? 0.5 : 1.0;
        printf("(b%d) Euler-Maruyama (%d steps) of dX = -%sbeta(u) X du + sqrt(beta(u)) dW, "
               "X_0 = 1, n=%d\n", variant + 1, M, variant == 0 ? "1/2 " : "", NS);
        for (int i = 0; i < NS; i++) x[i] = 1;
        double em_mean = 1, em_var = 0;
        for (int j = 1; j <= M; j++) {
            double beta = vp_beta((j - 1) * du), a = 1 - drift * beta * du, sd = sqrt(beta * du);
            for (int i = 0; i < NS; i++) x[i] = a * x[i] + sd * rng_normal(rng);
            em_mean *= a;
            em_var = a * a * em_var + beta * du;
            if (j % (M / 4)) continue;
            double u = (double)j / M, Ib = vp_beta_integral(u);
            int k = (int)lround(u * T);
            double exact_mean = exp(-drift * Ib);  // V' = -2 drift beta V + beta:
            double exact_var = variant == 0 ? -expm1(-Ib) : 0.5 * -expm1(-2 * Ib);
            double want_mean = variant == 0 ? sqrt(sde->alpha_bar[k]) : exact_mean;
            double want_var = variant == 0 ? sde->one_minus_alpha_bar[k] : exact_var;
            fails += check_gaussian(x, want_mean, want_var, fabs(em_mean - exact_mean),
                                    fabs(em_var - exact_var), "u=%.2f %s", u,
                                    variant == 0 ? "vs alpha_bar [sde]" : "vs exact");
            if (variant == 0 || j < M) continue;
            double m, v, tv = 5 * 0.5 * sqrt(2.0 / (NS - 1));
            mean_var(x, NS, &m, &v);
            int erratum = fabs(v - sde->one_minus_alpha_bar[k]) > 10 * tv;
            printf("  %-46s measured %12.6f  vs 1-alpha_bar_T %10.6f: %s\n",
                   "slide's SDE at u=1 is N(0, 1/2), not N(0, 1)", v, sde->one_minus_alpha_bar[k],
                   erratum ? "PASS (the erratum is real)" : "FAIL");
            fails += !erratum;
        }
    }
    free(x);
    return fails;
}

// (c) Step 2: regressing x_{t-1} on x_t (given X_0 = 0.5) recovers the posterior: slope coef_xt,
// intercept coef_x0 X_0, residual variance beta_tilde.
static int check_posterior(const Schedule *lin, Rng *rng) {
    printf("(c) posterior q(x_{t-1} | x_t, x_0): least squares of x_{t-1} on x_t, X_0 = 0.5  "
           "[linear, n=%d]\n", NS);
    double *x = xmalloc(NS * sizeof(double)), *y = xmalloc(NS * sizeof(double));
    double *z = xmalloc(NS * sizeof(double)), xz = 0.5;
    int ts[] = {2, 10, 100, 500, 1000}, fails = 0;
    for (int j = 0; j < 5; j++) {
        int t = ts[j];
        for (int i = 0; i < NS; i++) {
            double noise1 = rng_normal(rng), sd = sqrt(lin->one_minus_alpha_bar[t - 1]);
            x[i] = sqrt(lin->alpha_bar[t - 1]) * xz + sd * noise1;  // x_{t-1} given X_0
            y[i] = sqrt(lin->alpha[t]) * x[i] + sqrt(lin->beta[t]) * rng_normal(rng);  // x_t
        }
        double mx, vx, my, vy, cov = 0, mr, resid;
        mean_var(x, NS, &mx, &vx);
        mean_var(y, NS, &my, &vy);
        for (int i = 0; i < NS; i++) cov += (x[i] - mx) * (y[i] - my);
        cov /= NS - 1;
        double slope = cov / vy, icept = mx - slope * my;
        for (int i = 0; i < NS; i++) z[i] = x[i] - icept - slope * y[i];
        mean_var(z, NS, &mr, &resid);
        double se_slope = sqrt(resid / (NS * vy)), se_icept = sqrt(resid / NS * (1 + my * my / vy));
        double tol_resid = 5 * lin->beta_tilde[t] * sqrt(2.0 / (NS - 1)) + 1e-15;
        fails += !check_line(slope, lin->coef_xt[t], 5 * se_slope, "t=%4d slope = coef_xt", t);
        fails += !check_line(icept, lin->coef_x0[t] * xz, 5 * se_icept,
                             "t=%4d intercept = coef_x0 X_0", t);
        fails += !check_line(resid, lin->beta_tilde[t], tol_resid,
                             "t=%4d residual variance = beta_tilde", t);
    }
    free_all(3, x, y, z);
    return fails;
}

// (d) Lecture 001's one-line update (x_t - beta_t/sqrt(1-alpha_bar_t) eps)/sqrt(alpha_t) is
// eq. (3) after eq. (2), as the program computes them (x0_hat_from_eps, then posterior_mean), at
// every t of every schedule. Both sides are exact; only rounding separates them: ~1e-16 relative in
// double, ~1e-7 in float, amplified by the 1/sqrt(alpha_bar_t) of eq. (2) (at t = T ~160 for the
// linear and sde schedules, ~20,000 for the cosine one).
static int check_lecture001_update(int T, Rng *rng) {
    printf("(d) lecture 001's update (x_t - beta_t/sqrt(1-alpha_bar_t) eps)/sqrt(alpha_t) = "
           "eq. (3) after eq. (2)\n");
    enum { M = 100 };
    real xt[M], e[M], x0_hat[M], mu[M];
    double tol = sizeof(real) == sizeof(double) ? 1e-9 : 1e-5;
    int fails = 0;
    for (int k = 0; k < 3; k++) {
        Schedule s = schedule_make((ScheduleKind)k, T);
        double worst = 0;
        for (int t = 1; t <= T; t++) {
            for (int i = 0; i < M; i++) {
                xt[i] = (real)(2 * rng_normal(rng));
                e[i] = (real)rng_normal(rng);
            }
            x0_hat_from_eps(x0_hat, xt, e, s.alpha_bar[t], s.one_minus_alpha_bar[t], M, 0);  // (2)
            posterior_mean(mu, xt, x0_hat, &s, t, M);                                         // (3)
            for (int i = 0; i < M; i++) {
                double d = s.beta[t] / sqrt(s.one_minus_alpha_bar[t]) * e[i];
                double a = (xt[i] - d) / sqrt(s.alpha[t]);
                worst = worse(worst, fabs(a - mu[i]) / (1 + fabs(a)));
            }
        }
        fails += !check_line(worst, 0, tol, "%s: max relative difference", schedule_names[k]);
        schedule_free(&s);
    }
    return fails;
}

// (e) X_T is close to N(0, 1) from X_0 = 1 (the worst case for data in [-1, 1]), every schedule.
static int check_xT_is_noise(int T, Rng *rng) {
    printf("(e) X_T is close to N(0, 1), from X_0 = 1 (the worst case for data in [-1, 1])  "
           "[T=%d, n=%d]\n", T, NS);
    double *x = xmalloc(NS * sizeof(double));
    int fails = 0;
    for (int k = 0; k < 3; k++) {
        Schedule s = schedule_make((ScheduleKind)k, T);
        double ab = s.alpha_bar[T];
        for (int i = 0; i < NS; i++)
            x[i] = sqrt(ab) + sqrt(s.one_minus_alpha_bar[T]) * rng_normal(rng);
        fails += check_gaussian(x, 0, 1, 0, 0, "%s: X_T vs N(0,1)", schedule_names[k]);
        // KL(N(mu, s^2) || N(0,1)) = (s^2 + mu^2 - 1 - ln s^2)/2 with mu^2 = ab, s^2 = 1 - ab
        double kl = -0.5 * log1p(-ab);
        printf("  %-46s %.3e nats per pixel\n", "exact KL(q(X_T|X_0) || N(0,1))", kl);
        schedule_free(&s);
    }
    free(x);
    return fails;
}

// (f, g) The samplers of Step 5 and lecture 001, on a small network with random weights: the
// identities hold for any eps_theta, trained or not. Both sides run in `real` from the same seed:
// they differ only by rounding.
static int check_samplers(Rng *rng) {
    Config small = {1, 8, 8, 8, 16, 8, 16, 4, 10, 1, 0, 0, 0};
    enum { B = 4, T = 100 };
    Model *m = model_create(&small, 2 * B);
    params_init(m, rng, 1);
    Schedule s = schedule_make(SCHEDULE_LINEAR, T);
    size_t n = (size_t)B * 64;
    real *a = xmalloc(n * sizeof(real)), *b = xmalloc(n * sizeof(real));
    int label[B] = {1, 5, 7, 9}, none[B] = {10, 10, 10, 10}, fails = 0;
    double tol = sizeof(real) == sizeof(double) ? 1e-9 : 1e-4;  // float rounding over T steps
    SampleOptions ddpm = {.kind = SAMPLER_DDPM};
    SampleOptions ddim = {.kind = SAMPLER_DDIM, .steps = T, .eta = 1};
    SampleOptions w1 = {.guided = 1, .w = 1}, w0 = {.guided = 1, .w = 0};  // guidance weights
    struct {
        const char *claim;
        SampleOptions o;  // with the labels `label`, against DDPM with the labels lb
        const int *lb;
    } cases[] = {
        {"(f) DDIM, eta = 1, all T steps = DDPM", ddim, label},
        {"(g) guidance w = 1 = conditional eps(x,t,c)", w1, label},
        {"(g) guidance w = 0 = unconditional eps(x,t,none)", w0, none},
    };
    printf("(f, g) samplers on a random small network (8x8, T = %d, %d samples): max |difference| "
           "of the final x_0\n", T, B);
    for (int k = 0; k < 3; k++) {
        Rng r1 = {42}, r2 = {42};
        sample_loop(a, m, &s, label, B, &cases[k].o, &r1, 0);
        sample_loop(b, m, &s, cases[k].lb, B, &ddpm, &r2, 0);
        double worst = 0;
        for (size_t i = 0; i < n; i++) worst = worse(worst, fabs(a[i] - b[i]));
        fails += !check_line(worst, 0, tol, "%s", cases[k].claim);
    }
    free_all(2, a, b);
    schedule_free(&s);
    model_free(m);
    return fails;
}

// (h) Every sampler end to end, without a network. With data x_0 ~ N(m, s^2) per pixel the best
// denoiser is known: x_t ~ N(sqrt(ab) m, V) with V = ab s^2 + 1 - ab (ab = alpha_bar_t), and
//     eps*(x_t) = E[eps | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) m) / V      (derivations.md, sec. 6)
// eps* is affine in x_t, so every value a sampler computes from it is affine in x_T and in the
// noises z_1, z_2, ... it draws: v = v_0 + v_x x_T + sum_j v_j z_j, a "form". Below, each sampler
// is written again from the slides' formulas, on forms instead of numbers. From x_T ~ N(0, 1) its
// output is then exactly N(v_0, v_x^2 + sum_j v_j^2), and a sampler that draws no noise (DDIM,
// eta = 0) maps each x_T to exactly v_0 + v_x x_T. The reference shares nothing with the
// program's samplers but Step 1's arrays (checked against float64 tables by test.sh): its own time
// grids, its own noise levels between steps, its own step formulas. The program's sampler
// (sample_update), fed eps* at the reference's times, must match it: sample by sample to rounding
// when it draws no noise, else in mean and variance (Monte Carlo, 5 SE).
// How far the law is from N(m, s^2) is the sampler's own error. DDPM: Step 2 is exact given x_t
// AND x_0, but x_0 is only guessed (eq. 2), and Var(x_{t-1} | x_t) = beta_tilde_t + coef_x0^2
// Var(x_0 | x_t) > beta_tilde_t: DDPM's samples are a little too narrow (-1.5% here). DDIM's few
// large steps shrink the variance more; Euler-Maruyama errs by O(du). On the sde schedule with
// T = 20 the steps are large and beta_tilde_t is far below beta_t: a DDPM step that added noise of
// variance beta_t would end at variance 0.267 instead of 0.153.
static const double GAUSS_M = 0.3, GAUSS_S2 = 0.25;
enum { FORM_MAX = 1002 };  // the constant, x_T and up to 1000 noises
typedef struct {
    int n;  // terms in use: v[0] the constant, v[1] the coefficient of x_T, v[1 + j] that of z_j
    double v[FORM_MAX];
} Form;
static void form_number(Form *f, double x) {  // a known number (one sample's x_T, say)
    f->n = 1;
    f->v[0] = x;
}
static void form_lin(Form *out, double a, const Form *x, double b, const Form *y, double c) {
    int n = x->n > y->n ? x->n : y->n;  // out = a x + b y + c (out may be x or y)
    for (int k = 0; k < n; k++)
        out->v[k] = a * (k < x->n ? x->v[k] : 0) + b * (k < y->n ? y->v[k] : 0) + (k ? 0 : c);
    out->n = n;
}
static void form_noise(Form *f, double sd) {  // f += sd z with a fresh z ~ N(0, 1)
    if (sd == 0) return;
    if (f->n == FORM_MAX) die("claims", "a form holds at most %d noises", FORM_MAX - 2);
    f->v[f->n++] = sd;
}
static void form_clip(Form *f) {  // --clip-x0: clipping to [-1, 1] is not affine: numbers only
    if (f->n != 1) die("claims", "--clip-x0 needs a number, not a law");
    f->v[0] = fmax(-1, fmin(1, f->v[0]));
}
static void form_law(const Form *f, double *mean, double *var) {  // x_T and the z_j: N(0, 1)
    *mean = f->v[0];
    *var = 0;
    for (int k = 1; k < f->n; k++) *var += f->v[k] * f->v[k];
}

typedef struct {
    const char *name;
    SamplerKind kind;
    int S;              // network evaluations (DDPM: T)
    double eta;         // DDIM
    int clip;           // --clip-x0
    const Schedule *s;
    int judged;         // enough steps: the samples must also be N(m, s^2) within 5 SE
} RefCase;
typedef struct {
    Form x, x0, eps;  // x_t, eq. (2)'s x0_hat, eps*
    Form prev;        // the previous evaluation's x0_hat (for multistep samplers)
} RefState;

// The reference's time of evaluation i of S, in steps (i = S: the end). DDPM: t = T - i. DDIM:
// S + 1 integer times evenly spaced from T down to 0, rounded up: ceil(T (S - i) / S). SDE: S times
// evenly spaced from T (u = 1) down to 1 (u = 1/T).
static double ref_lambda(const Schedule *s, int t) {  // log(alpha_t / sigma_t), the log-SNR
    return log(sqrt(s->alpha_bar[t]) / sqrt(s->one_minus_alpha_bar[t]));
}
static double ref_time(const RefCase *c, int i) {
    int T = c->s->T, S = c->S;
    if (c->kind == SAMPLER_DDPM) return T - i;
    if (c->kind == SAMPLER_DPM2M) {  // S times evenly spaced in lambda from T to 1: for each, the
        if (i == S) return 0;        // step of nearest lambda (searched over all steps), at least
        int t = T + 1;               // one below the previous and leaving S - j - 1 steps below it
        for (int j = 0; j <= i; j++) {
            double lo = ref_lambda(c->s, T), hi = ref_lambda(c->s, 1);
            double want = S > 1 ? lo + (hi - lo) * j / (S - 1) : lo;
            int best = 1;
            for (int k = 2; k <= T; k++) {
                double gap = fabs(ref_lambda(c->s, k) - want);
                if (gap < fabs(ref_lambda(c->s, best) - want)) best = k;
            }
            t = best < t - 1 ? best : t - 1;
            t = t > S - j ? t : S - j;
        }
        return t;
    }
    if (c->kind == SAMPLER_DDIM) return (double)(((int64_t)T * (S - i) + S - 1) / S);
    return i == S ? 0 : T - (double)i * (T - 1) / (S - 1);
}
// alpha_bar and 1 - alpha_bar at time x (in steps): Step 1's at the steps; between steps k - 1
// and k, log alpha_bar runs linearly (the model's continuous time), and beta(u), the noise rate
// per unit of u = x/T, is T (log alpha_bar_{k-1} - log alpha_bar_k).
static void ref_noise(const Schedule *s, double x, double *ab, double *omab, double *beta) {
    int k = (int)ceil(x);
    k = k < 1 ? 1 : k > s->T ? s->T : k;
    double lo = log(s->alpha_bar[k - 1]), hi = log(s->alpha_bar[k]), f = x - (k - 1);
    *beta = s->T * (lo - hi);
    if (x == floor(x)) {
        *ab = s->alpha_bar[(int)x];
        *omab = s->one_minus_alpha_bar[(int)x];
        return;
    }
    *ab = exp((1 - f) * lo + f * hi);
    *omab = -expm1((1 - f) * lo + f * hi);
}
// Evaluation i of case c on the forms of r: eps*, eq. (2), then the sampler's step.
static void reference_step(RefState *r, const RefCase *c, int i) {
    const Schedule *s = c->s;
    int T = s->T;
    double t = ref_time(c, i), tn = ref_time(c, i + 1), ab, omab, beta, abn, omabn, unused;
    ref_noise(s, t, &ab, &omab, &beta);
    double k = sqrt(omab) / (ab * GAUSS_S2 + omab);
    form_lin(&r->eps, k, &r->x, 0, &r->x, -k * sqrt(ab) * GAUSS_M);              // eps*
    form_lin(&r->x0, 1 / sqrt(ab), &r->x, -sqrt(omab / ab), &r->eps, 0);         // eq. (2)
    if (c->clip) form_clip(&r->x0);
    if (c->kind == SAMPLER_DDPM) {  // Step 2's posterior with x0_hat for x_0: eq. (3), its noise
        int tt = (int)t;
        double b = s->beta[tt], abp = s->alpha_bar[tt - 1], omabp = s->one_minus_alpha_bar[tt - 1];
        form_lin(&r->x, sqrt(1 - b) * omabp / omab, &r->x, sqrt(abp) * b / omab, &r->x0, 0);
        form_noise(&r->x, tt > 1 ? sqrt(b * omabp / omab) : 0);
    } else if (c->kind == SAMPLER_DDIM) {  // x0_hat re-noised to the next time tn
        ref_noise(s, tn, &abn, &omabn, &unused);
        double var = c->eta * c->eta * omabn / omab * (1 - ab / abn);
        form_lin(&r->x, sqrt(abn), &r->x0, sqrt(fmax(0, omabn - var)), &r->eps, 0);
        form_noise(&r->x, sqrt(fmax(0, var)));
    } else if (c->kind == SAMPLER_DPM2M) {  // x' = (sigma'/sigma)(x - alpha D) + alpha' D, with
        ref_noise(s, tn, &abn, &omabn, &unused);  // D = x0_hat, or at the middle steps corrected by
        Form D = r->x0;  // the previous one: D = x0 + (x0 - prev) h / (2 h_prev)
        if (i > 0 && tn > 0) {
            double tq = ref_time(c, i - 1), h = ref_lambda(s, (int)tn) - ref_lambda(s, (int)t);
            double h_prev = ref_lambda(s, (int)t) - ref_lambda(s, (int)tq);
            form_lin(&D, 1 + h / (2 * h_prev), &r->x0, -h / (2 * h_prev), &r->prev, 0);
        }
        double ratio = sqrt(omabn) / sqrt(omab);
        form_lin(&r->x, ratio, &r->x, -ratio * sqrt(ab) + sqrt(abn), &D, 0);
    } else if (i == c->S - 1) {  // the SDE's last evaluation, at u = 1/T: x0_hat is the sample
        form_lin(&r->x, 1, &r->x0, 0, &r->x0, 0);
    } else {  // Euler-Maruyama, from u to u - du: dX = beta (X/2 + score) du + sqrt(beta) dW
        double du = (t - tn) / T;  // score = -eps* / sqrt(1 - alpha_bar(u))
        form_lin(&r->x, 1 + beta * du / 2, &r->x, -beta * du / sqrt(omab), &r->eps, 0);
        form_noise(&r->x, sqrt(beta * du));
    }
    form_lin(&r->prev, 1, &r->x0, 0, &r->x0, 0);
}
static void reference_sample(RefState *r, const RefCase *c) {  // r->x: x_T in, the sample out
    for (int i = 0; i < c->S; i++) reference_step(r, c, i);
}

static void eps_star(real *eps, const real *x, double one_minus_alpha_bar, size_t n) {
    double ab = 1 - one_minus_alpha_bar, v = ab * GAUSS_S2 + one_minus_alpha_bar;
    double k = sqrt(one_minus_alpha_bar) / v, mean = sqrt(ab) * GAUSS_M;
    for (size_t i = 0; i < n; i++) eps[i] = (real)(k * (x[i] - mean));
}
static int check_gaussian_samplers(const Schedule *lin, Rng *rng) {
    Schedule sde20 = schedule_make(SCHEDULE_SDE, 20);
    int T = lin->T;
    const RefCase cases[] = {
        {"DDPM, T steps", SAMPLER_DDPM, T, 0, 0, lin, 0},
        {"DDPM, sde T=20: beta_tilde, not beta", SAMPLER_DDPM, 20, 0, 0, &sde20, 0},
        {"DDIM eta=0, 3 steps", SAMPLER_DDIM, 3, 0, 0, lin, 0},
        {"DDIM eta=0, 7 steps", SAMPLER_DDIM, 7, 0, 0, lin, 0},
        {"DDIM eta=0, 30 steps", SAMPLER_DDIM, 30, 0, 0, lin, 0},
        {"DDIM eta=0, 50 steps", SAMPLER_DDIM, 50, 0, 0, lin, 0},
        {"DDIM eta=0, T steps", SAMPLER_DDIM, T, 0, 0, lin, 1},
        {"DDIM eta=0, 7 steps, --clip-x0", SAMPLER_DDIM, 7, 0, 1, lin, 0},
        {"DDIM eta=1, 7 steps", SAMPLER_DDIM, 7, 1, 0, lin, 0},
        {"DDIM eta=1, 50 steps", SAMPLER_DDIM, 50, 1, 0, lin, 0},
        {"DDIM eta=0, 10 steps", SAMPLER_DDIM, 10, 0, 0, lin, 0},
        {"DPM-Solver++(2M), 10 steps", SAMPLER_DPM2M, 10, 0, 0, lin, 0},
        {"DDIM eta=0, 20 steps", SAMPLER_DDIM, 20, 0, 0, lin, 0},
        {"DPM-Solver++(2M), 20 steps", SAMPLER_DPM2M, 20, 0, 0, lin, 0},
        {"DPM-Solver++(2M), 7 steps, --clip-x0", SAMPLER_DPM2M, 7, 0, 1, lin, 0},
        {"SDE, 50 steps", SAMPLER_SDE, 50, 0, 0, lin, 0},
        {"SDE, 250 steps", SAMPLER_SDE, 250, 0, 0, lin, 1},
        {"SDE, T steps", SAMPLER_SDE, T, 0, 0, lin, 1},
    };
    printf("(h) every sampler with the exact denoiser of data N(%.2f, %.2f) against a reference "
           "written from the slides: sample by sample (noise-free samplers) or in law (Monte "
           "Carlo, 5 SE), then the law vs the data  [linear, T=%d, n=%d]\n", GAUSS_M, GAUSS_S2, T,
           NS);
    real *x = xmalloc(NS * sizeof(real)), *x0_hat = xmalloc(NS * sizeof(real));
    real *eps = xmalloc(NS * sizeof(real)), *z = xmalloc(NS * sizeof(real));
    double *d = xmalloc(NS * sizeof(double)), *xT = xmalloc(NS * sizeof(double));
    RefState *r = xmalloc(sizeof(RefState));
    // float rounding over up to T steps (measured: 5e-6 in float, 3e-14 in double)
    double tol = sizeof(real) == sizeof(double) ? 1e-9 : 1e-4, ab, omab, beta;
    int fails = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const RefCase *c = &cases[ci];
        SampleOptions o = {.kind = c->kind, .steps = c->S, .eta = c->eta, .clip = c->clip};
        int noise_free = (c->kind == SAMPLER_DDIM && c->eta == 0) || c->kind == SAMPLER_DPM2M;
        rng_normal_fill(rng, x, NS);
        for (int j = 0; j < NS; j++) xT[j] = x[j];
        for (int i = 0; i < c->S; i++) {  // the program's sampler
            ref_noise(c->s, ref_time(c, i), &ab, &omab, &beta);
            eps_star(eps, x, omab, NS);
            sample_update(x, x0_hat, eps, c->s, &o, i, c->S, NS, z, rng);
        }
        for (int j = 0; j < NS; j++) d[j] = x[j];
        double mean = 0, var = 0;
        if (!c->clip) {  // the reference's law, from x_T ~ N(0, 1)
            r->x = (Form){2, {0, 1}};
            reference_sample(r, c);
            form_law(&r->x, &mean, &var);
        }
        if (noise_free) {  // each sample: the reference from the same x_T, v_0 + v_x x_T
            double worst = 0;
            for (int j = 0; j < NS; j++) {
                double want = mean + r->x.v[1] * xT[j];
                if (c->clip) {  // not affine: the reference runs on this sample's number
                    form_number(&r->x, xT[j]);
                    reference_sample(r, c);
                    want = r->x.v[0];
                }
                worst = worse(worst, fabs(d[j] - want));
            }
            fails += !check_line(worst, 0, tol, "%s: max |x - ref|", c->name);
        } else {
            fails += check_gaussian(d, mean, var, 0, 0, "%s", c->name);
        }
        if (c->clip) continue;  // clipped: not a Gaussian law
        printf("    its law: mean %+.5f (data %+.2f), variance %.5f (data %.2f: %+.2f%%)%s\n", mean,
               GAUSS_M, var, GAUSS_S2, 100 * (var / GAUSS_S2 - 1),
               c->judged ? "" : c->kind == SAMPLER_DDPM ? "  [beta_tilde: not judged]"
                                                        : "  [few steps: not judged]");
        if (c->judged) fails += check_gaussian(d, GAUSS_M, GAUSS_S2, 0, 0, "  vs data:");
    }
    free_all(7, x, x0_hat, eps, z, d, xT, r);
    schedule_free(&sde20);
    return fails;
}

// (i) Step 3's tuple as training draws it: t ~ Unif{1..T} and, for classifier-free guidance, the
// label hidden (the row n_classes) 10% of the time. The calls of train's loop draw the batches here
// (draw_training_batch, drop_labels; a data set of random 4x4 images with labels 0..9): the
// times must reach both ends, 1 and T, and nothing outside, and fill the T bins evenly (Pearson's
// chi-square below its 1e-6 quantile); the share of hidden labels must be 0.1 within 5 SE.
static int check_training_tuple(Rng *rng) {
    enum { B = 1024, T = 100, N_CLASSES = 10 };
    int steps = NS / 5000 > 1 ? NS / 5000 : 1, n = steps * B;  // 20 480 draws at NS = 10^5
    Schedule s = schedule_make(SCHEDULE_LINEAR, T);
    Dataset d = {.n = 64, .c = 1, .h = 4, .w = 4, .n_classes = 10};
    d.pixels = xmalloc(64 * 16 * sizeof(float));
    d.labels = xmalloc(64 * sizeof(int));
    for (int i = 0; i < 64 * 16; i++) d.pixels[i] = (float)(2 * rng_uniform(rng) - 1);
    for (int i = 0; i < 64; i++) d.labels[i] = i % 10;
    size_t sz = (size_t)B * 16;
    real *x0 = xmalloc(sz * sizeof(real)), *eps = xmalloc(sz * sizeof(real));
    real *xt = xmalloc(sz * sizeof(real));
    int t[B], label[B], count[T + 2] = {0}, lo = T + 1, hi = -1, hidden = 0;
    for (int k = 0; k < steps; k++) {
        draw_training_batch(x0, t, eps, xt, label, &d, &s, B, rng);
        drop_labels(label, B, N_CLASSES, rng);
        for (int b = 0; b < B; b++) {
            int tb = t[b] < 0 ? 0 : t[b] > T ? T + 1 : t[b];
            count[tb]++;
            lo = t[b] < lo ? t[b] : lo;
            hi = t[b] > hi ? t[b] : hi;
            hidden += label[b] == N_CLASSES;
        }
    }
    double e = (double)n / T, chi2 = 0, p = 0.1;
    for (int k = 1; k <= T; k++) chi2 += (count[k] - e) * (count[k] - e) / e;
    // Wilson-Hilferty: the chi-square quantile for T - 1 degrees of freedom at 1e-6 (z = 4.75)
    double dof = T - 1, q = dof * pow(1 - 2 / (9 * dof) + 4.75 * sqrt(2 / (9 * dof)), 3);
    printf("(i) Step 3's tuple as train draws it: t ~ Unif{1..T}, labels hidden 10%%  "
           "[linear, T=%d, %d draws]\n", T, n);
    int fails = !check_line(lo, 1, 0, "smallest t = 1");
    fails += !check_line(hi, T, 0, "largest t = T");
    fails += !check_line(count[0] + count[T + 1], 0, 0, "t outside 1..T");
    fails += !check_line(chi2, dof, q - dof, "chi-square of t over the T bins (dof %d)", T - 1);
    double se = sqrt(p * (1 - p) / n);
    fails += !check_line((double)hidden / n, p, 5 * se, "share of hidden labels");
    free_all(5, x0, eps, xt, d.pixels, d.labels);
    schedule_free(&s);
    return fails;
}

// (j) DPM-Solver++(2M)'s first-order step (no previous x0_hat: tq = 0) is DDIM's with eta = 0, for
// every pair of times t > t' of the linear and cosine schedules on a grid, through the program's
// own dpm2m_step and ddim_step on random x_t and eps: the same sum in two forms, so only rounding
// (~1e-7 of the values in float, ~1e-15 in double) separates them.
static int check_dpm2m_first_order(Rng *rng) {
    enum { N = 64, T = 1000 };
    real x[N], y[N], eps[N], x0a[N], x0b[N], d[N], z[N];
    double worst = 0, tol = sizeof(real) == sizeof(double) ? 1e-12 : 1e-5;
    printf("(j) DPM-Solver++(2M)'s first-order step = DDIM's with eta = 0  [linear and cosine, "
           "T=%d, t > t' on a grid of 50 steps]\n", T);
    for (int kind = SCHEDULE_LINEAR; kind <= SCHEDULE_COSINE; kind++) {
        Schedule s = schedule_make((ScheduleKind)kind, T);
        for (int t = T; t >= 1; t -= 20)
            for (int tp = t - 1; tp >= 0; tp -= 20) {
                rng_normal_fill(rng, x, N);
                rng_normal_fill(rng, eps, N);
                memcpy(y, x, sizeof x);
                dpm2m_step(x, x0a, eps, &s, 0, t, tp, N, 0, d);
                ddim_step(y, x0b, eps, &s, t, tp, 0, N, 0, z, rng);
                for (int k = 0; k < N; k++)
                    worst = worse(worst, fabs(x[k] - y[k]) / (1 + fabs(y[k])));
            }
        schedule_free(&s);
    }
    return !check_line(worst, 0, tol, "max |dpm2m - ddim| / (1 + |ddim|)");
}

static int cmd_check_claims(uint64_t seed) {
    const int T = 1000;
    Rng rng = {seed};
    Schedule lin = schedule_make(SCHEDULE_LINEAR, T), sde = schedule_make(SCHEDULE_SDE, T);
    int fails = check_one_step_equals_one_shot(&lin, &rng);
    fails += check_forward_sdes(&sde, &rng);
    fails += check_posterior(&lin, &rng);
    fails += check_lecture001_update(T, &rng);
    fails += check_xT_is_noise(T, &rng);
    fails += check_samplers(&rng);
    fails += check_gaussian_samplers(&lin, &rng);
    fails += check_training_tuple(&rng);
    fails += check_dpm2m_first_order(&rng);
    printf("%s: %d claim(s) failed\n", fails ? "FAIL" : "PASS", fails);
    schedule_free(&lin);
    schedule_free(&sde);
    return fails ? 1 : 0;
}

// ---- `./diffusion gradcheck`: every backward pass against finite differences ----------------
// Central differences: dL/dv ~ (L(v + h) - L(v - h)) / 2h, with error O(h^2) from the Taylor
// series and O(machine eps / h) from rounding. In double (-DDOUBLE) h = 1e-5 makes both ~1e-10, so
// a correct backward agrees to ~1e-9 and anything above the 1e-6 tolerance is a bug. In float
// h = 1e-2 and agreement is ~1e-3. Error measure, per layer: max |analytic - numeric| /
// max |numeric| over the layer's inputs and parameters (relative to the largest gradient, so that
// entries whose gradient is ~0 do not divide by ~0).
// Each layer is one row of a table: a function that, on the variables g->vars (the layer's inputs
// and parameters, one flat array), runs the forward pass into g->out and, with mode 1, the
// backward pass into g->grads; with mode -1 it only says how many vars and outputs it has.
// The loss is L = sum(out * R) for a fixed random R, so dL/dout = R.
typedef struct GradCase {
    int B, C, H, W, OC, K, stride, D;
    size_t nvars, nout;
    real *vars, *grads, *out, *R;
    real *aux;   // a fixed random input: the MSE's eps, the network's x_t, the ResBlock's emb
    int *label;  // (B) labels for the embedding and the network
    Model *model;
    Model *text_model;  // the same small network conditioned on prompts (cross-attention)
} GradCase;
typedef void (*GradRun)(GradCase *g, int mode);

static size_t nin(const GradCase *g) { return (size_t)g->B * g->C * g->H * g->W; }

static void gc_conv(GradCase *g, int mode) {  // vars: inp (B,C,H,W), weight (OC,C,K,K), bias (OC)
    int B = g->B, C = g->C, H = g->H, W = g->W, OC = g->OC, K = g->K, s = g->stride;
    size_t n = nin(g), nw = (size_t)OC * C * K * K;
    real *v = g->vars, *gv = g->grads;
    g->nvars = n + nw + OC;
    g->nout = (size_t)B * OC * conv_out_size(H, K, s) * conv_out_size(W, K, s);
    if (mode < 0) return;
    conv2d_forward(g->out, v, v + n, v + n + nw, B, C, H, W, OC, K, s, g->model->ws);
    if (mode)
        conv2d_backward(gv, gv + n, gv + n + nw, g->R, v, v + n, B, C, H, W, OC, K, s,
                        g->model->ws);
}
static void gc_linear(GradCase *g, int mode) {  // vars: inp (B,C), weight (OC,C), bias (OC)
    int B = g->B, C = g->C, OC = g->OC;
    real *v = g->vars, *gv = g->grads;
    g->nvars = (size_t)B * C + OC * C + OC;
    g->nout = (size_t)B * OC;
    if (mode < 0) return;
    linear_forward(g->out, v, v + B * C, v + B * C + OC * C, B, C, OC);
    if (mode) linear_backward(gv, gv + B * C, gv + B * C + OC * C, g->R, v, v + B * C, B, C, OC);
}
static void gc_silu(GradCase *g, int mode) {
    g->nvars = g->nout = nin(g);
    if (mode >= 0) silu_forward(g->out, g->vars, nin(g));
    if (mode > 0) silu_backward(g->grads, g->R, g->vars, nin(g));
}
static void gc_groupnorm(GradCase *g, int mode) {  // vars: inp (B,C,N), gamma, beta (C); K groups
    int B = g->B, C = g->C, N = g->H * g->W;
    size_t n = nin(g);
    real mean[64], rstd[64], *v = g->vars, *gv = g->grads;
    g->nvars = n + 2 * C;
    g->nout = n;
    if (mode < 0) return;
    groupnorm_forward(g->out, mean, rstd, v, v + n, v + n + C, B, C, N, g->K);
    if (mode) groupnorm_backward(gv, gv + n, gv + n + C, g->R, v, mean, rstd, v + n, B, C, N, g->K);
}
static void gc_sinusoid(GradCase *g, int mode) {  // vars: t (B), drawn in 1..501 by the driver
    g->nvars = g->B;
    g->nout = (size_t)g->B * g->D;
    if (mode >= 0) sinusoid_forward(g->out, g->vars, g->B, g->D);
    if (mode > 0) sinusoid_backward(g->grads, g->R, g->vars, g->B, g->D);
}
static void gc_embedding(GradCase *g, int mode) {  // vars: table (11 rows, D)
    g->nvars = (size_t)11 * g->D;
    g->nout = (size_t)g->B * g->D;
    if (mode < 0) return;
    memset(g->out, 0, g->nout * sizeof(real));
    embedding_forward(g->out, g->vars, g->label, g->B, g->D);
    if (mode) embedding_backward(g->grads, g->R, g->label, g->B, g->D);
}
static void gc_upsample(GradCase *g, int mode) {
    g->nvars = nin(g);
    g->nout = 4 * nin(g);
    if (mode >= 0) upsample_forward(g->out, g->vars, g->B * g->C, g->H, g->W);
    if (mode > 0) upsample_backward(g->grads, g->R, g->B * g->C, g->H, g->W);
}
static void gc_concat(GradCase *g, int mode) {  // vars: a (B,C,N), b (B,OC,N)
    int N = g->H * g->W;
    g->nvars = g->nout = nin(g) + (size_t)g->B * g->OC * N;
    if (mode >= 0) concat_forward(g->out, g->vars, g->vars + nin(g), g->B, g->C, g->OC, N);
    if (mode > 0) concat_backward(g->grads, g->grads + nin(g), g->R, g->B, g->C, g->OC, N);
}
static void gc_residual(GradCase *g, int mode) {  // vars: a, b (B,C,H,W)
    g->nvars = 2 * nin(g);
    g->nout = nin(g);
    if (mode >= 0) residual_forward(g->out, g->vars, g->vars + nin(g), nin(g));
    if (mode > 0) residual_backward(g->grads, g->grads + nin(g), g->R, nin(g));
}
static void gc_softmax(GradCase *g, int mode) {  // rows of length H*W
    int R = g->B * g->C, N = g->H * g->W;
    g->nvars = g->nout = nin(g);
    if (mode >= 0) softmax_forward(g->out, g->vars, R, N);
    if (mode > 0) softmax_backward(g->grads, g->R, g->out, R, N);
}
static void gc_mse(GradCase *g, int mode) {  // vars: pred; eps = aux; out: the loss, with R = 1
    g->nvars = nin(g);
    g->nout = 1;
    if (mode < 0) return;
    g->R[0] = 1;
    g->out[0] = (real)mse_forward(g->vars, g->aux, nin(g));
    if (mode) mse_backward(g->grads, g->vars, g->aux, nin(g));
}
// The blocks of the small network: vars are the block's input; its parameters are checked too.
// After a block's forward pass: its output `out` into g->out; with mode 1 also zeroed gradients
// and dL/dout = R into `dout`, for its backward pass. Returns mode.
static int gc_block_out(GradCase *g, int mode, const real *out, real *dout) {
    Model *m = g->model;
    memcpy(g->out, out, g->nout * sizeof(real));
    if (!mode) return 0;
    memset(m->dacts, 0, m->n_acts * sizeof(real));
    memset(m->grads, 0, m->n_params * sizeof(real));
    memcpy(dout, g->R, g->nout * sizeof(real));
    return 1;
}
static void gc_attention(GradCase *g, int mode) {
    Model *m = g->model;
    AttnActs *a = &m->a.at, *d = &m->da.at;
    g->nvars = g->nout = (size_t)g->B * a->C * a->N;
    if (mode < 0) return;
    memcpy(a->in, g->vars, g->nvars * sizeof(real));
    attention_forward(&m->p.attn, a, m, g->B);
    if (!gc_block_out(g, mode, a->out, d->out)) return;
    attention_backward(&m->p.attn, &m->g.attn, a, d, m, g->B);
    memcpy(g->grads, d->in, g->nvars * sizeof(real));
}
static void gc_resblock(GradCase *g, int mode) {
    Model *m = g->model;
    ResBlockActs *a = &m->a.d1, *d = &m->da.d1;
    g->nvars = (size_t)g->B * a->cin * a->H * a->W;
    g->nout = (size_t)g->B * a->cout * a->H * a->W;
    if (mode < 0) return;
    memcpy(m->a.emb_act, g->aux, (size_t)g->B * m->cfg.temb * sizeof(real));
    memcpy(a->in, g->vars, g->nvars * sizeof(real));
    resblock_forward(&m->p.d1, a, m->a.emb_act, m, g->B);
    if (!gc_block_out(g, mode, a->out, d->out)) return;
    resblock_backward(&m->p.d1, &m->g.d1, a, d, m->a.emb_act, m->da.emb_act, m, g->B);
    memcpy(g->grads, d->in, g->nvars * sizeof(real));
}
static void gc_unet(GradCase *g, int mode) {  // parameters only; x_t = aux, t = 1, 38
    Model *m = g->model;
    g->nvars = 1;
    g->nout = (size_t)g->B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w;
    if (mode < 0) return;
    real t[2] = {1, 38};
    unet_forward(m, g->aux, t, g->label, g->B);
    if (gc_block_out(g, mode, m->a.pred, m->da.pred)) unet_backward(m, g->label, g->B);
}

// Cross-attention alone: vars = in (B,C,N), e (B,L,D), then its parameters gn_g, gn_b (C), q.w
// (C,C), q.b (C), k.w (C,D), k.b (C), v.w (C,D), v.b (C), proj.w (C,C), proj.b (C). L = 3 token
// slots; image 0 uses all 3, image 1 only its start token (the other two are padding).
static void gc_cross_attention(GradCase *g, int mode) {
    enum { L = 3 };
    int B = g->B, C = g->C, N = g->H * g->W, D = g->D, len[2] = {3, 1};
    size_t n = nin(g), ne = (size_t)B * L * D, sizes[10] = {C, C, C * C, C, C * D, C, C * D, C,
                                                             C * C, C};
    g->nvars = n + ne;
    for (int i = 0; i < 10; i++) g->nvars += sizes[i];
    g->nout = n;
    if (mode < 0) return;
    real *v = g->vars + n + ne, *gv = g->grads + n + ne, *pv[10], *pg[10];
    for (int i = 0; i < 10; i++) {
        pv[i] = v;
        pg[i] = gv;
        v += sizes[i];
        gv += sizes[i];
    }
    AttnParams P = {pv[0], pv[1], {pv[2], pv[3]}, {pv[4], pv[5]}, {pv[6], pv[7]},
                         {pv[8], pv[9]}};
    AttnParams Pg = {pg[0], pg[1], {pg[2], pg[3]}, {pg[4], pg[5]}, {pg[6], pg[7]},
                          {pg[8], pg[9]}};
    size_t per[9] = {n, 2 * B, 2 * B, n, (size_t)B * L * C, (size_t)B * L * C,
                     (size_t)B * N * L, n, n};  // gn.out, mean, rstd, q, k, v, p, o, out
    CrossAttnActs acts[2];
    for (int k = 0; k < 2; k++) {
        real *x[9];
        for (int i = 0; i < 9; i++) x[i] = xcalloc(per[i], sizeof(real));
        acts[k] = (CrossAttnActs){C, N, L, D, NULL, {x[0], x[1], x[2]}, x[3], x[4], x[5], x[6],
                                  x[7], x[8]};
    }
    CrossAttnActs *a = &acts[0], *d = &acts[1];
    a->in = g->vars;
    d->in = g->grads;
    real *scratch = xcalloc(2 * (size_t)N * L, sizeof(real));
    const Workspace *ws = g->model->ws;
    cross_attention_forward(&P, a, g->vars + n, len, scratch, 2, ws, B);
    memcpy(g->out, a->out, n * sizeof(real));
    if (mode) {
        memcpy(d->out, g->R, n * sizeof(real));
        cross_attention_backward(&P, &Pg, a, d, g->vars + n, g->grads + n, len, scratch, 2, ws, B);
    }
    for (int k = 0; k < 2; k++)
        free_all(8, acts[k].gn.out, acts[k].gn.mean, acts[k].gn.rstd, acts[k].q, acts[k].k,
                 acts[k].v, acts[k].p, acts[k].o);
    free_all(3, a->out, d->out, scratch);
}
// The text encoder: vars = tok_table (5 tokens, D), pos_table (3 slots, D); fixed tokens.
static void gc_text_embed(GradCase *g, int mode) {
    static const int token[6] = {0, 2, 4, 0, 1, 3};  // (B = 2, L = 3)
    g->nvars = (size_t)(5 + 3) * g->D;
    g->nout = (size_t)2 * 3 * g->D;
    if (mode >= 0) text_embed_forward(g->out, g->vars, g->vars + 5 * g->D, token, 2, 3, g->D);
    if (mode > 0) text_embed_backward(g->grads, g->grads + 5 * g->D, g->R, token, 2, 3, g->D);
}
static void gc_unet_text(GradCase *g, int mode) {  // the same, on a text model's prompts
    GradCase h = *g;
    h.model = g->text_model;
    gc_unet(&h, mode);
    g->nvars = h.nvars;
    g->nout = h.nout;
}

static const struct {
    const char *name;
    GradRun run;
    int K, stride;            // conv kernel and stride; groups for GroupNorm
    const char *params;       // prefix of the model's parameters to check as well, or NULL
    int param_checks;         // entries checked per parameter tensor
} GRAD_ROWS[] = {
    {"conv2d 3x3 stride 1", gc_conv, 3, 1, NULL, 0},
    {"conv2d 3x3 stride 2", gc_conv, 3, 2, NULL, 0},
    {"conv2d 1x1", gc_conv, 1, 1, NULL, 0},
    {"linear", gc_linear, 0, 0, NULL, 0},
    {"silu", gc_silu, 0, 0, NULL, 0},
    {"groupnorm", gc_groupnorm, 2, 0, NULL, 0},
    {"sinusoidal embedding (d/dt)", gc_sinusoid, 0, 0, NULL, 0},
    {"embedding lookup", gc_embedding, 0, 0, NULL, 0},
    {"nearest upsample x2", gc_upsample, 0, 0, NULL, 0},
    {"channel concat", gc_concat, 0, 0, NULL, 0},
    {"residual add", gc_residual, 0, 0, NULL, 0},
    {"softmax", gc_softmax, 0, 0, NULL, 0},
    {"mse loss", gc_mse, 0, 0, NULL, 0},
    {"attention (input + params)", gc_attention, 0, 0, "attn.", 64},
    {"cross-attention (input, tokens, params)", gc_cross_attention, 0, 0, NULL, 0},
    {"text encoder (token, position tables)", gc_text_embed, 0, 0, NULL, 0},
    {"resblock (input + params)", gc_resblock, 0, 0, "d1.", 64},
    {"whole U-Net (params)", gc_unet, 0, 0, "", 8},
    {"whole text U-Net (params)", gc_unet_text, 0, 0, "", 8},
};
enum { GRAD_N_ROWS = sizeof GRAD_ROWS / sizeof GRAD_ROWS[0] };

static double gradcase_loss(GradCase *g, GradRun run) {
    run(g, 0);
    double loss = 0;
    for (size_t i = 0; i < g->nout; i++) loss += (double)g->out[i] * g->R[i];
    return loss;
}
// Central differences on n entries of vars (all, or a spread-out subset of max_checks) against
// the analytic gradients in `analytic`. Returns the max abs error; raises *max_num to the largest
// |numeric| seen, the scale the error is measured against (so a tensor whose true gradient is 0,
// like the attention's key bias, is judged by the case's gradient scale, not by 0/0).
static double gradcase_compare(GradCase *g, GradRun run, real *vars, const real *analytic, size_t n,
                               size_t max_checks, double *max_num) {
    double h = sizeof(real) == sizeof(double) ? 1e-5 : 1e-2, max_err = 0;
    size_t stride = n > max_checks ? n / max_checks : 1;
    for (size_t i = 0; i < n; i += stride) {
        real saved = vars[i];
        vars[i] = (real)(saved + h);
        double lp = gradcase_loss(g, run);
        vars[i] = (real)(saved - h);
        double lm = gradcase_loss(g, run);
        vars[i] = saved;
        double num = (lp - lm) / (2 * h);
        max_err = worse(max_err, fabs(num - analytic[i]));
        *max_num = fmax(*max_num, fabs(num));
    }
    return max_err;
}

static int gradcheck_report(const char *name, double abs_err, double rel, double tol) {
    int ok = rel <= tol;
    printf("%-34s %12.3e %12.3e  %s\n", name, abs_err, rel, ok ? "PASS" : "FAIL");
    return ok;
}

// One row: analytic gradients of the vars (and of the model's parameters under prefix) against
// central differences. Returns 1 on failure.
static int gradcheck_row(int r, Model *m, Model *text, int *label, double tol, Rng *rng) {
    GradRun run = GRAD_ROWS[r].run;
    Model *model = run == gc_unet_text ? text : m;  // whose parameters the row checks
    GradCase g = {.B = 2, .C = 4, .H = 6, .W = 5, .OC = 3, .K = GRAD_ROWS[r].K,
                  .stride = GRAD_ROWS[r].stride, .D = 8, .label = label, .model = m,
                  .text_model = text};
    run(&g, -1);
    g.vars = random_array(g.nvars, rng);
    if (run == gc_sinusoid)
        for (int b = 0; b < g.B; b++) g.vars[b] = (real)(1 + 500 * rng_uniform(rng));
    g.R = random_array(g.nout, rng);
    g.aux = random_array(g.nvars > g.nout ? g.nvars : g.nout, rng);
    g.grads = xcalloc(g.nvars, sizeof(real));
    g.out = xcalloc(g.nout, sizeof(real));
    run(&g, 1);  // the analytic gradients, into g.grads and m->grads, which forward passes keep
    double abs_err = 0, max_num = 0;
    if (run != gc_unet && run != gc_unet_text)  // parameters only
        abs_err = gradcase_compare(&g, run, g.vars, g.grads, g.nvars, 4000, &max_num);
    for (int i = 0; GRAD_ROWS[r].params && i < model->layout->n; i++) {
        const TensorInfo *ti = &model->layout->info[i];
        if (strncmp(ti->name, GRAD_ROWS[r].params, strlen(GRAD_ROWS[r].params))) continue;
        double e = gradcase_compare(&g, run, model->params + ti->offset,
                                    model->grads + ti->offset, ti->size,
                                    GRAD_ROWS[r].param_checks, &max_num);
        abs_err = worse(abs_err, e);
    }
    free_all(5, g.vars, g.R, g.aux, g.grads, g.out);
    return !gradcheck_report(GRAD_ROWS[r].name, abs_err, abs_err / (max_num > 0 ? max_num : 1e-30),
                             tol);
}

// conv2d_image_padded (the forward) and the padded weight gradient (on an image 26 wide, where
// conv2d_weight_grad uses it) against im2col_reference and matmul_reference. Returns 1 on failure.
static int check_padded_conv(Model *m, Rng *rng, double tol) {
    enum { B = 2, C = 3, H = 5, W = 26, OC = 4, CKK = C * 9, N = H * W };
    real *x = random_array(B * C * N, rng), *w = random_array(OC * CKK + OC, rng);
    real *dy = random_array(B * OC * N, rng), *col = xmalloc(CKK * N * sizeof(real));
    real *y1 = xmalloc(B * OC * N * sizeof(real)), *y2 = xmalloc(B * OC * N * sizeof(real));
    real *dw1 = xcalloc(OC * CKK, sizeof(real)), *dw2 = xcalloc(OC * CKK, sizeof(real));
    conv2d_forward(y1, x, w, w + OC * CKK, B, C, H, W, OC, 3, 1, m->ws);
    conv2d_weight_grad(dw1, NULL, dy, x, B, C, H, W, OC, 3, 1, m->ws);
    for (int b = 0; b < B; b++) {
        im2col_reference(col, x + b * C * N, C, H, W, 3, 1);
        real *y = y2 + b * OC * N;
        matmul_reference(OC, N, CKK, w, CKK, 1, col, N, 1, y, N, 0);  // y = W . col + bias
        for (int k = 0; k < OC * N; k++) y[k] += w[OC * CKK + k / N];
        matmul_reference(OC, CKK, N, dy + b * OC * N, N, 1, col, 1, N, dw2, CKK, 1);  // dout col^T
    }
    double worst = 0;
    for (int k = 0; k < B * OC * N; k++)
        worst = worse(worst, fabs(y1[k] - y2[k]) / (1 + fabs(y2[k])));
    for (int k = 0; k < OC * CKK; k++)
        worst = worse(worst, fabs(dw1[k] - dw2[k]) / (1 + fabs(dw2[k])));
    printf("%-34s %12.3e %12s  %s\n", "conv padded vs im2col (out, dW)", worst, "",
           worst <= tol ? "PASS" : "FAIL");
    free_all(8, x, w, dy, col, y1, y2, dw1, dw2);
    return !(worst <= tol);
}

// The largest |a - b| over the largest |a| (a: the direct convolution's).
static double relative_gap(const real *a, const real *b, size_t n) {
    double gap = 0, top = 0;
    for (size_t k = 0; k < n; k++) {
        gap = worse(gap, fabs(a[k] - b[k]));
        top = fmax(top, fabs(a[k]));
    }
    return gap / top;
}
// Winograd F(2x2, 3x3) against the direct convolution, forward and both gradients, on the default
// network's workspace: 6 images, C = 64 -> OC = 64 at 14x14 (groups of 5 and 1) and at 7x7 (an odd
// size: one group, short of its 16) and 96 -> 32 at 28x28 (one image a group). They differ by
// rounding only: the largest gap over the largest |direct value| (as notes/winograd.c measures
// it); the direct path must not be Winograd in disguise (the gap is not 0 in float). Returns the
// failures.
static int check_winograd(Rng *rng, double tol) {
    Model *m = model_create(&DEFAULT_CONFIG, 1);
    static const int shapes[][3] = {{64, 64, 14}, {64, 64, 7}, {96, 32, 28}};  // C, OC, side
    double worst = 0;
    int used = 1;
    for (int i = 0; i < 3; i++) {
        int B = 6, C = shapes[i][0], OC = shapes[i][1], H = shapes[i][2], W = H;
        size_t nx = (size_t)B * C * H * W, ny = (size_t)B * OC * H * W;
        real *x = random_array(nx, rng), *w = random_array((size_t)OC * C * 9, rng);
        real *bias = random_array(OC, rng), *dy = random_array(ny, rng);
        real *y[2] = {xcalloc(ny, sizeof(real)), xcalloc(ny, sizeof(real))};
        real *dx[2] = {random_array(nx, rng), xmalloc(nx * sizeof(real))};
        size_t nw = (size_t)OC * C * 9;
        real *dw[2] = {random_array(nw, rng), xmalloc(nw * sizeof(real))};
        memcpy(dx[1], dx[0], nx * sizeof(real));  // the gradients add to what is there
        memcpy(dw[1], dw[0], nw * sizeof(real));
        used &= winograd_group(m->ws, C, H, W, OC, 3, 1) > 0;
        for (int k = 0; k < 2; k++) {  // k = 0: direct, 1: Winograd
            m->ws->winograd = k;
            conv2d_forward(y[k], x, w, bias, B, C, H, W, OC, 3, 1, m->ws);
            conv2d_input_grad(dx[k], dy, w, B, C, H, W, OC, 3, 1, m->ws);
            conv2d_weight_grad(dw[k], NULL, dy, x, B, C, H, W, OC, 3, 1, m->ws);
        }
        worst = worse(worst, relative_gap(y[0], y[1], ny));
        worst = worse(worst, relative_gap(dx[0], dx[1], nx));
        worst = worse(worst, relative_gap(dw[0], dw[1], nw));
        free_all(10, x, w, bias, dy, y[0], y[1], dx[0], dx[1], dw[0], dw[1]);
    }
    model_free(m);
    int ok = used && worst <= tol && (sizeof(real) == sizeof(double) || worst > 0);
    printf("%-34s %12.3e %12s  %s\n", "winograd vs direct (out, dinp, dW)", worst, "",
           ok ? "PASS" : "FAIL");
    return !ok;
}

// The fast formulations of PART II against the plain ones of Step 4, which they equal: gemm vs
// matmul_reference, im2col vs im2col_reference (on shapes down to 1 pixel, all padding), the
// flipped-kernel input gradient vs col2im(W^T . dout), Winograd vs the direct convolution, exp_real
// vs exp. Returns the failures.
static int check_fast_vs_plain(Model *m, Rng *rng) {
    int fails = 0, bad = 0;
    double worst = 0, tol = sizeof(real) == sizeof(double) ? 1e-12 : 1e-5;  // rounding
    static const int shapes[][3] = {{37, 29, 300}, {5, 70, 3}, {1, 1, 1}, {13, 33, 600}};
    for (int i = 0; i < 4; i++) {  // gemm: plain, transposed A, transposed B, accumulating
        int M = shapes[i][0], N = shapes[i][1], K = shapes[i][2], ta = i % 2, tb = i / 2 % 2;
        real *A = random_array((size_t)M * K, rng), *Bm = random_array((size_t)K * N, rng);
        real *C1 = random_array((size_t)M * N, rng), *C2 = xmalloc((size_t)M * N * sizeof(real));
        memcpy(C2, C1, (size_t)M * N * sizeof(real));
        long ars = ta ? 1 : K, acs = ta ? M : 1, brs = tb ? 1 : N, bcs = tb ? K : 1;
        gemm(M, N, K, A, ars, acs, Bm, brs, bcs, C1, N, i == 3);
        matmul_reference(M, N, K, A, ars, acs, Bm, brs, bcs, C2, N, i == 3);
        for (size_t k = 0; k < (size_t)M * N; k++)
            worst = worse(worst, fabs(C1[k] - C2[k]) / (1 + fabs(C2[k])));
        free_all(4, A, Bm, C1, C2);
    }
    printf("%-34s %12.3e %12s  %s\n", "gemm vs matmul_reference", worst, "",
           worst <= tol ? "PASS" : "FAIL");
    fails += !(worst <= tol);
    static const int sizes[][2] = {{1, 1}, {1, 4}, {4, 1}, {2, 2}, {3, 5}, {6, 5}};
    for (int i = 0; i < 6; i++)
        for (int stride = 1; stride <= 2; stride++) {
            int H = sizes[i][0], W = sizes[i][1];
            size_t ncol = (size_t)2 * 9 * conv_out_size(H, 3, stride) * conv_out_size(W, 3, stride);
            real *img = random_array((size_t)2 * H * W, rng), *c1 = xcalloc(ncol, sizeof(real));
            real *c2 = xcalloc(ncol, sizeof(real));
            im2col(c1, img, 2, H, W, 3, stride);
            im2col_reference(c2, img, 2, H, W, 3, stride);
            for (size_t k = 0; k < ncol; k++) bad += c1[k] != c2[k];
            free_all(3, img, c1, c2);
        }
    printf("%-34s %12d %12s  %s\n", "im2col vs im2col_reference (wrong)", bad, "",
           bad ? "FAIL" : "PASS");
    fails += bad > 0;
    int B = 2, C = 4, H = 6, W = 5, OC = 3, n = B * C * H * W;  // the flipped-kernel input gradient
    real *w = random_array((size_t)OC * C * 9, rng),
         *dy = random_array((size_t)B * OC * H * W, rng);
    real *d1 = xcalloc(n, sizeof(real)), *d2 = xcalloc(n, sizeof(real));
    conv2d_input_grad_flipped(d1, dy, w, B, C, H, W, OC, 3, m->ws);
    conv2d_input_grad_plain(d2, dy, w, B, C, H, W, OC, 3, 1, m->ws);
    worst = 0;
    for (int k = 0; k < n; k++) worst = worse(worst, fabs(d1[k] - d2[k]));
    printf("%-34s %12.3e %12s  %s\n", "input grad: flipped vs col2im", worst, "",
           worst <= tol ? "PASS" : "FAIL");
    fails += !(worst <= tol);
    free_all(4, w, dy, d1, d2);
    fails += check_padded_conv(m, rng, tol);
    fails += check_winograd(rng, tol);
    if (sizeof(real) == sizeof(double)) return fails;  // the double build's exp_real is exp
    worst = 0;
    for (double x = -87; x <= 88; x += 1.0 / 4096) {
        double e = exp((double)(real)x);
        worst = worse(worst, fabs(exp_real((real)x) - e) / e);
    }
    printf("exp_real vs exp: max relative error %.2e on [-87, 88] (tolerance 1.5e-7, ~1 float "
           "ulp)  %s\n", worst, worst <= 1.5e-7 ? "PASS" : "FAIL");
    return fails + !(worst <= 1.5e-7);
}

// The prompt's padding must change nothing: image 1's two padding slots get no gradient (a softmax
// over all L slots, the mask ignored, would give them one, and gradcheck alone cannot see it: the
// forward and the backward would agree). Returns 1 on failure.
static int check_cross_attention_mask(Model *m, Rng *rng) {
    GradCase g = {.B = 2, .C = 4, .H = 6, .W = 5, .D = 8, .model = m};
    gc_cross_attention(&g, -1);
    g.vars = random_array(g.nvars, rng);
    g.R = random_array(g.nout, rng);
    g.grads = xcalloc(g.nvars, sizeof(real));
    g.out = xcalloc(g.nout, sizeof(real));
    gc_cross_attention(&g, 1);
    const real *de_pad = g.grads + nin(&g) + (size_t)(3 + 1) * g.D;  // image 1, slots 1 and 2
    double worst = 0;
    for (int i = 0; i < 2 * g.D; i++) worst = worse(worst, fabs(de_pad[i]));
    free_all(4, g.vars, g.R, g.grads, g.out);
    return !gradcheck_report("cross-attention: padding ignored", worst, worst, 0);
}

// The min-SNR weighting (train --min-snr): the loss of a batch of 2 with weights w is
// (w_0 L_0 + w_1 L_1) / 2, and so its gradient, where L_b is image b's loss alone (the network
// treats images independently). Then min_snr_weight: 1 where SNR_t <= G, G / SNR_t above.
// Returns 1 on failure.
static int check_min_snr(Model *m, int *label, Rng *rng) {
    size_t n = (size_t)m->cfg.img_c * m->cfg.img_h * m->cfg.img_w, P = m->n_params;
    real *x = random_array(2 * n, rng), *eps = random_array(2 * n, rng), t[2] = {1, 38};
    real w[2] = {0.3f, 1.7f}, *g = xmalloc(2 * P * sizeof(real));
    double L[2], tol = sizeof(real) == sizeof(double) ? 1e-12 : 1e-5;
    for (int b = 0; b < 2; b++) {
        L[b] = model_loss_and_grad(m, x + b * n, t + b, label + b, eps + b * n, NULL, 1);
        memcpy(g + b * P, m->grads, P * sizeof(real));
    }
    double loss = model_loss_and_grad(m, x, t, label, eps, w, 2), scale = 0, worst = 0;
    double want = (w[0] * L[0] + w[1] * L[1]) / 2;
    for (size_t i = 0; i < P; i++) {
        double gi = (w[0] * g[i] + w[1] * g[P + i]) / 2;
        worst = worse(worst, fabs(m->grads[i] - gi));
        scale = fmax(scale, fabs(gi));
    }
    worst = worse(worst / scale, fabs(loss - want) / want);
    Schedule s = schedule_make(SCHEDULE_LINEAR, 1000);
    for (int k = 1; k <= 1000; k++) {
        double snr = s.alpha_bar[k] / s.one_minus_alpha_bar[k], G = 5;
        worst = worse(worst, fabs(min_snr_weight(&s, k, G) - (snr > G ? G / snr : 1)));
    }
    schedule_free(&s);
    free_all(3, x, eps, g);
    return !gradcheck_report("min-SNR weights (loss, grads)", worst, worst, tol);
}

// Every layer alone, then a ResBlock, attention and the whole (small) network; then PART II's
// fast formulations against the plain ones.
static int run_gradcheck(uint64_t seed) {
    int is_double = sizeof(real) == sizeof(double);
    double tol = is_double ? 1e-6 : 5e-2;
    Rng rng = {seed};
    printf("# gradcheck: hand-written backward vs central finite differences, %s build (h = %g)\n",
           is_double ? "double (-DDOUBLE)" : "float", is_double ? 1e-5 : 1e-2);
    printf("# error = max|analytic - numeric| per tensor; relative = that / max|numeric|; "
           "tolerance %.0e%s\n", tol, is_double ? "" : " (float: indicative; -DDOUBLE proves)");
    printf("%-34s %12s %12s  %s\n", "layer", "max abs err", "max rel err", "result");
    Config small = {1, 8, 8, 8, 16, 8, 16, 4, 10, 1, 0, 0, 0};  // the blocks', the whole network's
    Model *m = model_create(&small, 2);
    params_init(m, &rng, 1);
    int label[2] = {3, 10}, failures = 0;
    // the text model: 6 tokens (the start token and 5 words), prompts of up to 3; label k's prompt
    // is k % 3 words after the start token, label 10 the empty prompt
    Config small_text = small;
    small_text.text = 1;
    small_text.vocab = 6;
    small_text.max_tokens = 3;
    Model *text = model_create(&small_text, 2);
    params_init(text, &rng, 1);
    for (int k = 0; k < small.n_classes; k++) {
        text->prompt_len[k] = 1 + k % 3;
        for (int j = 1; j < text->prompt_len[k]; j++)
            text->prompt_tokens[k * 3 + j] = 1 + (k + 2 * j) % 5;
    }
    for (int r = 0; r < GRAD_N_ROWS; r++) failures += gradcheck_row(r, m, text, label, tol, &rng);
    printf("# %d of %d layer checks failed\n", failures, GRAD_N_ROWS);
    failures += check_cross_attention_mask(m, &rng);
    failures += check_min_snr(m, label, &rng);
    failures += check_fast_vs_plain(m, &rng);
    model_free(text);
    model_free(m);
    return failures ? 1 : 0;
}

// ---- `./diffusion refcheck`: against PyTorch (data/unet_ref.bin, notes/pytorch_mirror.py ref)
// The same network in PyTorch, computed in float64, with random weights, a batch of 4 (x_t, t,
// labels, eps), its output, loss and every parameter's gradient. We load the weights and inputs,
// run our forward and backward, and compare each tensor by max|ours - torch| / max|torch|
// ("max-norm relative error"): <= 1e-4 for the output and the loss, <= 1e-3 for the gradients.
// Float32 arithmetic gives ~1e-6 here; the tolerances leave room for other compilers and
// summation orders while still catching any wrong formula (those give errors of order 1).
// Then one step of training after the gradient (format DCREF002): from the stored parameters,
// gradients and optimizer state (moments, EMA) at step 5, adamw_step clips the gradient, takes
// the AdamW step and updates the EMA with its warm-up, as torch.optim.AdamW and the mirror's EMA
// did in float64. Compared per tensor like the gradients: the update of the parameters
// (after - before), the two moments, the EMA's change and the gradient's norm, <= 1e-4 of the
// tensor's largest (float rounding of a parameter, ~3e-8, is ~1e-5 of the ~4e-3 update; a wrong
// term of the optimizer changes the step by a factor, not by 1e-4).
// max |a - b| over n values into *err, max |b| into *scale
static void max_errors(const real *a, const float *b, size_t n, double *err, double *scale) {
    *err = 0;
    *scale = 0;
    for (size_t i = 0; i < n; i++) {
        *err = worse(*err, fabs(a[i] - (double)b[i]));
        *scale = fmax(*scale, fabs((double)b[i]));
    }
}
// The optimizer step of a DCREF002 file (q: its part after the gradients), on model m whose params
// hold the reference's parameters and grads its gradients. Returns the failures.
static int refcheck_adamw(Model *m, const unsigned char *q, size_t P) {
    int32_t step;
    double hy[7];
    memcpy(&step, q, 4);
    memcpy(hy, q + 4, sizeof hy);
    TrainHyper h = {hy[0], hy[1], hy[2], hy[3], hy[4], hy[5], hy[6], 0, 0};
    float *f = xmalloc((7 * P + 1) * sizeof(float));
    memcpy(f, q + 4 + sizeof hy, (7 * P + 1) * sizeof(float));
    const float *m0 = f, *v0 = f + P, *ema0 = f + 2 * P, *p1 = f + 3 * P, *m1 = f + 4 * P;
    const float *v1 = f + 5 * P, *ema1 = f + 6 * P;
    real *p0 = xmalloc(P * sizeof(real));
    memcpy(p0, m->params, P * sizeof(real));
    for (size_t i = 0; i < P; i++) {
        m->adam_m[i] = m0[i];
        m->adam_v[i] = v0[i];
        m->ema[i] = ema0[i];
    }
    double norm = adamw_step(m, &h, step), ref_norm = f[7 * P];
    printf("# one AdamW step %d (lr %g, weight decay %g, clip %g of a norm %g) and the EMA update, "
           "against torch.optim.AdamW\n", step, h.lr, h.weight_decay, h.clip, ref_norm);
    // the updates: ours and the reference's, as (after - before), per tensor
    real *ours = xmalloc(P * sizeof(real));
    float *theirs = xmalloc(P * sizeof(float));
    int failures = !gradcheck_report("gradient norm", fabs(norm - ref_norm),
                                     fabs(norm - ref_norm) / ref_norm, 1e-4);
    const char *names[] = {"parameter update", "first moment m", "second moment v", "EMA change"};
    for (int q4 = 0; q4 < 4; q4++) {
        for (size_t i = 0; i < P; i++) {
            if (q4 == 0) ours[i] = m->params[i] - p0[i], theirs[i] = p1[i] - (float)p0[i];
            if (q4 == 1) ours[i] = m->adam_m[i], theirs[i] = m1[i];
            if (q4 == 2) ours[i] = m->adam_v[i], theirs[i] = v1[i];
            if (q4 == 3) ours[i] = m->ema[i] - ema0[i], theirs[i] = ema1[i] - ema0[i];
        }
        double err, scale, global, worst = 0, worst_abs = 0;
        max_errors(ours, theirs, P, &err, &global);
        for (int k = 0; k < m->layout->n; k++) {  // per tensor, as the gradients above
            const TensorInfo *ti = &m->layout->info[k];
            max_errors(ours + ti->offset, theirs + ti->offset, ti->size, &err, &scale);
            worst = worse(worst, err / fmax(scale, 1e-3 * global));
            worst_abs = worse(worst_abs, err);
        }
        failures += !gradcheck_report(names[q4], worst_abs, worst, 1e-4);
    }
    free_all(4, f, p0, ours, theirs);
    return failures;
}

// DCREF003 (a text model, `pytorch_mirror.py ref --text`): DCREF002 with the text settings
// (text, vocab, max_tokens) after the header's 14 ints, and after the labels each label's prompt:
// int32 tokens[(n_classes + 1) * max_tokens], int32 len[n_classes + 1] (label n_classes: empty).
static int run_refcheck(const char *path, size_t default_params) {
    size_t len;
    unsigned char *buf = read_file(path, 64 << 20, &len);
    int version = len < 128                  ? 0
                  : !memcmp(buf, "DCREF001", 8) ? 1
                  : !memcmp(buf, "DCREF002", 8) ? 2
                  : !memcmp(buf, "DCREF003", 8) ? 3
                                                : 0;
    if (!version) die(path, "not a reference file (bad magic)");
    int32_t h[17] = {0};
    size_t nh = version == 3 ? 17 : 14;  // header ints
    memcpy(h, buf + 8, nh * 4);
    Config c = {h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[14], h[15], h[16]};
    int B = h[10], K = c.n_classes + 1, L = c.max_tokens;
    if (config_check(&c) || B < 1 || B > 64 || c.text != (version == 3))
        die(path, "bad config in header");
    size_t P = count_params(&c), n = (size_t)B * c.img_c * c.img_h * c.img_w;
    if ((size_t)h[13] != P) die(path, "header says %d parameters, the C layout has %zu", h[13], P);
    size_t nf = 2 * P + 3 * n + 1;  // floats: params, x, eps, output, loss, grads
    size_t prompts = c.text ? (size_t)K * (L + 1) * 4 : 0;  // tokens, lengths
    size_t want = 8 + nh * 4 + 2 * (size_t)B * 4 + prompts + nf * 4;
    size_t adamw = 4 + 7 * 8 + (7 * P + 1) * 4;  // DCREF002: step, hyper, states, grad norm
    if (version >= 2) want += adamw;
    if (len != want) die(path, "file is %zu bytes, expected %zu", len, want);
    const unsigned char *q = buf + 8 + nh * 4;
    int32_t tt[64], label[64];
    memcpy(tt, q, 4 * (size_t)B);
    memcpy(label, q + 4 * (size_t)B, 4 * (size_t)B);
    q += 8 * (size_t)B;
    Model *m = model_create(&c, B);
    if (c.text) {  // the prompts, as set_class_prompts leaves them in the model
        memcpy(m->prompt_tokens, q, (size_t)K * L * 4);
        memcpy(m->prompt_len, q + (size_t)K * L * 4, (size_t)K * 4);
        for (int k = 0; k < K * L; k++)
            if (m->prompt_tokens[k] < 0 || m->prompt_tokens[k] >= c.vocab) die(path, "bad token");
        for (int k = 0; k < K; k++)
            if (m->prompt_len[k] < 1 || m->prompt_len[k] > L) die(path, "bad prompt length");
        q += prompts;
    }
    float *f = xmalloc(nf * sizeof(float));
    memcpy(f, q, nf * sizeof(float));
    const unsigned char *q_adamw = q + nf * 4;
    const float *ref_x = f + P, *ref_eps = ref_x + n, *ref_out = ref_eps + n;
    const float *ref_grads = ref_out + n + 1;
    double ref_loss = ref_out[n];
    real *x = xmalloc(n * sizeof(real)), *eps = xmalloc(n * sizeof(real)), t[64];
    for (size_t i = 0; i < P; i++) m->params[i] = f[i];
    for (size_t i = 0; i < n; i++) x[i] = ref_x[i];
    for (size_t i = 0; i < n; i++) eps[i] = ref_eps[i];
    for (int b = 0; b < B; b++) {
        t[b] = (real)tt[b];
        if (label[b] < 0 || label[b] > c.n_classes) die(path, "label %d out of range", label[b]);
    }
    double loss = model_loss_and_grad(m, x, t, label, eps, NULL, B);
    printf("# PyTorch comparison (%s): %zu parameters in the test config%s; the default config "
           "has %zu, PyTorch says %d\n", path, P, c.text ? " (a text model: cross-attention)" : "",
           default_params, h[12]);
    printf("%-34s %12s %12s  %s\n", "tensor", "max abs err", "max rel err", "result");
    double err, scale, loss_err = fabs(loss - ref_loss);
    max_errors(m->a.pred, ref_out, n, &err, &scale);
    int failures = !gradcheck_report("output eps_theta", err, err / scale, 1e-4);
    failures += !gradcheck_report("loss", loss_err, loss_err / fabs(ref_loss), 1e-4);
    // A tensor whose exact gradient is 0 (the attention's key bias: softmax ignores a shift shared
    // by all keys) holds only rounding noise, so each tensor's error is measured against its own
    // largest gradient or 1e-3 of the network's largest, whichever is bigger.
    double worst_rel = 0, global_max;
    max_errors(m->grads, ref_grads, P, &err, &global_max);
    for (int k = 0; k < m->layout->n; k++) {
        const TensorInfo *ti = &m->layout->info[k];
        max_errors(m->grads + ti->offset, ref_grads + ti->offset, ti->size, &err, &scale);
        double rel = err / fmax(scale, 1e-3 * global_max);
        worst_rel = worse(worst_rel, rel);
        char name[64];
        snprintf(name, sizeof name, "grad %s", ti->name);
        failures += !gradcheck_report(name, err, rel, 1e-3);
    }
    int count_ok = (size_t)h[12] == default_params;
    printf("%-34s %12zu %12d  %s\n", "parameter count (C vs PyTorch)", default_params, h[12],
           count_ok ? "PASS" : "FAIL");
    failures += !count_ok;
    printf("# worst gradient error %.3e\n", worst_rel);
    for (size_t i = 0; i < P; i++) m->params[i] = f[i];  // the step starts from the reference's
    for (size_t i = 0; i < P; i++) m->grads[i] = ref_grads[i];
    if (version >= 2) failures += refcheck_adamw(m, q_adamw, P);
    else printf("# %s has no optimizer step (format DCREF001): not checked\n", path);
    printf("# %d checks failed\n", failures);
    free_all(4, f, x, eps, buf);
    model_free(m);
    return failures ? 1 : 0;
}

// ---- the command line -----------------------------------------------------------------------

static int cmd_claims(const Options *o) { return cmd_check_claims(o->seed); }
static int cmd_gradcheck(const Options *o) { return run_gradcheck(o->seed); }
// Without --ref (or with its default) both references: the class model's and the text model's.
static int cmd_refcheck(const Options *o) {
    int failed = run_refcheck(o->ref, count_params(&DEFAULT_CONFIG));
    if (!strcmp(o->ref, "data/unet_ref.bin"))
        failed |= run_refcheck("data/unet_text_ref.bin", count_params(&DEFAULT_CONFIG));
    return failed;
}
static const Command check_commands[] = {
    {"claims", cmd_claims, " --seed ",
     "claims [--seed S]\n"
     "  Measures the lecture's claims: (a)-(c), (e), (h) by Monte Carlo (10^5 samples), (d), (f),\n"
     "  (g) exactly (only rounding separates the two sides); exit 1 on any FAIL."},
    {"gradcheck", cmd_gradcheck, " --seed ",
     "gradcheck [--seed S]\n"
     "  Compares every layer's hand-written backward with finite differences (build with -DDOUBLE "
     "for the 1e-6 proof)."},
    {"refcheck", cmd_refcheck, " --ref ",
     "refcheck [--ref data/unet_ref.bin]\n"
     "  Compares the network's output, loss and gradients with PyTorch's (notes/pytorch_mirror.py "
     "ref);\n  without --ref also the text model's (data/unet_text_ref.bin, ref --text)."},
};

#ifndef CHECK_NO_MAIN
int main(int argc, char **argv) {
    return run_command(argc, argv, check_commands, 3, "notes/check");
}
#endif

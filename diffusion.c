/*
 * diffusion.c — denoising diffusion (DDPM) in one C file, to be read beside the lecture slides.
 *
 *   build:  cc diffusion.c -lm -O2 -o diffusion          (or: make, make fast)
 *   run:    ./diffusion schedule | forward | info | train | sample | export   (each has --help)
 *   check:  make check, make gradcheck, make refcheck, make bench: the companion programs
 *           notes/check.c and notes/bench.c include this file (notes/README.md lists them all)
 *   notes/README.md maps every slide of the lectures to the function that implements it.
 *
 * Contents (search for the banner or the function named on the right):
 *
 *   PART I    The lecture: MIT 15.S60 "A Practical Introduction to Diffusion Models" (000), with
 *             lecture 001's additions
 *     Step 0.  preliminaries: errors, random numbers ........................ die_with, Rng
 *     Step 1.  the forward SDE (F), discretized: beta(u) ............................ vp_beta
 *              alpha_k = exp(-int beta), alpha_bar_k ............. schedule_betas, schedule_make
 *              one step and one shot .......................... forward_one_step, forward_one_shot
 *     Step 2.  the posterior q(x_{t-1} | x_t, x_0): mu_t, beta_tilde ..... posterior_coefficients
 *     Step 3.  the training tuple (x_0, t, eps, x_t) ........................ draw_training_batch
 *     Step 4.  learn eps_theta: the layers (forward, backward) ....... matmul_reference, conv2d_*
 *              time embedding ...................................................... sinusoid_*
 *              ResBlock, self-attention, skips ............. resblock_*, attention_*, concat_*
 *              cross-attention on a prompt's words ......... cross_attention_*, text_embed_*
 *              the U-Net, the loss ................................. unet_forward, mse_forward
 *              AdamW, EMA, the training loop ......................... adamw_step, train
 *     Step 5.  the reverse process: eq. (2), eq. (3) .................. x0_hat_from_eps, ddpm_step
 *              the sampling loop ................................................ sample_loop
 *              the reverse SDE (R) ................................................ sde_step
 *              lecture 001: guidance, DDIM ................................ guided_eps, ddim_step
 *              after the lectures: DPM-Solver++(2M) .................................. dpm2m_step
 *   PART II   Making it fast and safe (skip on a first reading) ................ gemm, loaders
 *   PART III  The command line ............................................... cmd_*, main
 *
 * Dimension letters in shape comments: B batch, C channels (OC output channels), H, W height and
 * width, N = H*W positions, T number of timesteps, P number of parameters, D embedding width.
 * Images are stored channels-first, batch outermost: x[b][c][h][w] in one flat array.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#else
// Without -fopenmp the `#pragma omp` lines are ignored (one thread); say so to the compiler once.
#pragma GCC diagnostic ignored "-Wunknown-pragmas"
#endif
// `cc diffusion.c -lm -O2` is how most people build this, and GCC's -O2 vectorizes only the
// simplest loops: ask for -O3's vectorizer (the numbers do not change, only the speed).
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__)
#pragma GCC optimize("O3")
#endif

// Images are read and written with Sean Barrett's stb_image (Debian: libstb-dev,
// /usr/include/stb/). Elsewhere, put stb_image.h and stb_image_write.h beside this file. stb_image
// also inflates .gz files.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_ONLY_PNG  // the two formats we promise: other decoders are code a hostile file reaches
#define STBI_ONLY_JPEG
#define STBI_MAX_DIMENSIONS 16384  // refuse absurd image headers before stb allocates anything
#ifndef __GNUC__
#define STBI_NO_SIMD  // a compiler that is neither GCC nor clang (tcc) may lack SSE2's intrinsics
#endif
#if defined(__has_include)
#if __has_include(<stb/stb_image.h>)
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#else
#include "stb_image.h"
#include "stb_image_write.h"
#endif
#else
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#endif

// The largest batch (--batch, --n's chunks, a checkpoint's batch): sampling keeps 2 x MAX_BATCH
// times and labels on the stack.
enum { MAX_BATCH = 4096 };

// The network computes in `real`: float by default (fast, and plenty for training), double with
// -DDOUBLE so that gradcheck can compare gradients with finite differences to 1e-6.
#ifdef DOUBLE
typedef double real;
#else
typedef float real;
#endif

// ---- Declarations: the structures PART I defines, and the functions of PART II it calls by name
// (C wants a declaration before the first call; skip this block on a first reading).
typedef struct Rng Rng;
typedef struct Schedule Schedule;
typedef struct Dataset Dataset;
typedef struct Config Config;
typedef struct ConvParams ConvParams;
typedef struct ResBlockParams ResBlockParams;
typedef struct AttnParams AttnParams;
typedef struct GroupNormActs GroupNormActs;
typedef struct Model Model;
typedef struct TrainOptions TrainOptions;
typedef struct TrainRun TrainRun;
typedef struct SampleOptions SampleOptions;
typedef struct Workspace Workspace;  // convolution scratch
typedef struct Layout Layout;        // names, offsets and kinds of the parameter tensors
// a tensor's kind decides its first values (params_init)
typedef enum { KIND_WEIGHT, KIND_BIAS, KIND_GN_GAIN, KIND_GN_SHIFT, KIND_TABLE } TensorKind;
static double now_seconds(void);                  // a monotonic clock, in seconds
static void posterior_coefficients(Schedule *s);  // Step 2, called by Step 1's schedule_make
static void gemm(int M, int N, int K, const real *A, long ars, long acs, const real *B, long brs,
                 long bcs, real *C, long crs, int accumulate);
static void lane_sums(const real *a, const real *b, real shift, real scale, long n, double *sum_a,
                      double *sum_ab);
static double lane_sum(const real *a, long n);
static real exp_real(real x);
static void conv2d_images(real *out, const real *inp, const real *weight, const real *bias, int B,
                          int C, int H, int W, int OC, int K, int stride, const Workspace *ws);
static void conv2d_weight_grad(real *dweight, real *dbias, const real *dout, const real *inp, int B,
                               int C, int H, int W, int OC, int K, int stride, const Workspace *ws);
static void conv2d_input_grad(real *dinp, const real *dout, const real *weight, int B, int C,
                              int H, int W, int OC, int K, int stride, const Workspace *ws);
static void groupnorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *gamma,
                              const real *beta, int B, int C, int N, int G);
static void groupnorm_backward(real *dinp, real *dgamma, real *dbeta, const real *dout,
                               const real *inp, const real *mean, const real *rstd,
                               const real *gamma, int B, int C, int N, int G);
static void groupnorm_silu_forward(real *act, GroupNormActs *gn, const real *inp, const real *gamma,
                                   const real *beta, int B, int C, int N, int G);
static void groupnorm_silu_backward(real *dinp, real *dgamma, real *dbeta, GroupNormActs *dgn,
                                    const real *dact, const GroupNormActs *gn, const real *inp,
                                    const real *gamma, int B, int C, int N, int G);
static ConvParams take_conv(Layout *L, const char *prefix, int cout, int cin, int K);
static ResBlockParams take_resblock(Layout *L, const char *name, int cin, int cout, int temb);
static AttnParams take_attention(Layout *L, const char *name, int C, int D);
static real *take(Layout *L, const char *name, size_t n, int fan_in, TensorKind kind);
static void layout_begin(Layout *L, real *base);  // an empty layout handing out base (or counting)
static void last_shape(Layout *L, int rows, int cols);  // the last tensor is a (rows, cols) table
static Model *model_create(const Config *c, int max_batch);
static void model_free(Model *m);
static size_t count_params(const Config *c);
static void params_init(Model *m, Rng *rng, int test);
static TrainRun *train_begin(const TrainOptions *o, Model *m, const Dataset *d, const Schedule *s,
                             int64_t step, int B);
static int train_goes_on(const TrainRun *r, int64_t step);
static double train_fraction(const TrainRun *r, int64_t step);  // of the run: 0 .. 1
static void train_record(TrainRun *r, const Model *m, int64_t step, double loss, double gnorm,
                         double lr, const Rng *rng);
static void train_end(TrainRun *r, const Model *m, int64_t step, const Rng *rng);
static void sample_watch(const SampleOptions *o, int i, int S, const real *x, const real *x0_hat,
                         size_t n, int progress);

// ============================================================================================
// PART I — THE LECTURE
// ============================================================================================

// ============================================================================================
// Step 0. Preliminaries: errors, memory, random numbers
// ============================================================================================

// Every error is one line "diffusion: <what>: <why>" and a non-zero exit: 2 bad usage, 1 the rest.
// It may quote bytes from a file or a folder name: printed escaped (PART II), it stays one line.
static char *escape_bytes(char *out, size_t size, const char *s);
static void die_with(int code, const char *what, const char *fmt, va_list ap) {
    char line[8192], shown[4 * sizeof line];  // each byte may become \xNN
    int n = snprintf(line, sizeof line, "diffusion: %s: ", what);
    if (n < 0 || n >= (int)sizeof line) n = 0;
    vsnprintf(line + n, sizeof line - n, fmt, ap);
    fprintf(stderr, "%s\n", escape_bytes(shown, sizeof shown, line));
    exit(code);
}
static void die(const char *what, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    die_with(1, what, fmt, ap);
}
static void die_usage(const char *what, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    die_with(2, what, fmt, ap);
}

// A few functions of the lecture are called only by the checks of notes/check.c (the one-step
// form of Step 1, the plain matrix product of Step 4, ...): they stay here, where they teach, and
// this marks them as unused on purpose in the program itself.
#ifdef __GNUC__
#define USED_BY_CHECKS __attribute__((unused))
#else
#define USED_BY_CHECKS
#endif
static void *xmalloc(size_t bytes) {  // checked malloc; never returns NULL
    void *p = malloc(bytes ? bytes : 1);
    if (!p) die("memory", "cannot allocate %zu bytes", bytes);
    return p;
}
static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) die("memory", "cannot allocate %zu x %zu bytes", n, size);
    return p;
}
static void free_all(int n, ...) {  // free() of n pointers
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) free(va_arg(ap, void *));
    va_end(ap);
}

// The random number generator is SplitMix64 (Steele, Lea & Flood 2014): the state is one 64-bit
// counter that advances by a fixed odd constant, and each output is a bit-mixed copy of it. It
// passes BigCrush, and its whole state is one number, so a checkpoint can save it and `--seed`
// reproduces every draw. Nothing here uses rand() or hidden global state: whoever draws passes the
// Rng.
struct Rng {
    uint64_t state;
};
static const double PI = 3.14159265358979323846;

static uint64_t rng_u64(Rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
// Uniform on (0, 1]: the top 53 bits plus one half, times 2^-53. Never 0, so log(u) is safe (the
// largest value, 1 - 2^-54, rounds to 1.0: once in 2^53 draws, and log(1) = 0 is harmless).
static double rng_uniform(Rng *r) {
    return ((double)(rng_u64(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
// Uniform integer in {0, ..., n-1} (the modulo bias is below 2^-32 for the n used here).
static int rng_int(Rng *r, int n) { return (int)(rng_u64(r) % (uint64_t)n); }

// Standard normal by Box–Muller: for U1, U2 uniform on (0,1), R = sqrt(-2 ln U1) is the radius of a
// 2-D standard Gaussian (R^2/2 is exponential) and 2 pi U2 its angle, so R cos(2 pi U2) and
// R sin(2 pi U2) are two independent N(0,1) draws. Arrays are filled two at a time.
static void rng_normal_fill(Rng *r, real *out, size_t n) {
    for (size_t i = 0; i < n; i += 2) {
        double radius = sqrt(-2.0 * log(rng_uniform(r))), angle = 2.0 * PI * rng_uniform(r);
        out[i] = (real)(radius * cos(angle));
        if (i + 1 < n) out[i + 1] = (real)(radius * sin(angle));
    }
}
static double rng_normal(Rng *r) {
    double radius = sqrt(-2.0 * log(rng_uniform(r)));
    return radius * cos(2.0 * PI * rng_uniform(r));
}
// n values uniform on (-1, 1), in a new array: the checks' and the benchmark's inputs.
static USED_BY_CHECKS real *random_array(size_t n, Rng *rng) {
    real *p = xmalloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) p[i] = (real)(2 * rng_uniform(rng) - 1);
    return p;
}

// ============================================================================================
// Step 1. Discretize the forward SDE
//     (F)  dX = -1/2 beta(u) X du + sqrt(beta(u)) dW,   u in [0, 1]     (lecture 000, forward SDE)
//     one step:  X_k = sqrt(alpha_k) X_{k-1} + sqrt(1 - alpha_k) eps_k,
//                alpha_k = exp(-int_{u_{k-1}}^{u_k} beta(u) du)
//     one shot:  X_k = sqrt(alpha_bar_k) X_0 + sqrt(1 - alpha_bar_k) eps,
//                alpha_bar_k = prod_{s<=k} alpha_s
//
// ERRATUM, kept visible on purpose. The slide prints (F) as dX = -beta X dt + sqrt(beta) dW. That
// SDE shrinks the mean by exp(-int beta), but its variance obeys dV/du = -2 beta V + beta and
// settles at V = 1/2, not 1: the one-step form above (whose variance stays 1) is NOT its
// discretization. The SDE that the one-step form discretizes exactly is the variance-preserving SDE
// of Song et al. (2021), with the 1/2: its mean factor is exp(-1/2 int beta) = sqrt(alpha_k), and
// the variance it adds is exactly 1 - alpha_k. The reverse SDE (R) needs the 1/2 too: dX = beta
// (1/2 X + grad log p) du + sqrt(beta) dW_bar, with beta and p taken at the forward time.
// `./diffusion check` simulates both SDEs (claim b), so that you can see this for yourself.
// ============================================================================================

typedef enum { SCHEDULE_LINEAR, SCHEDULE_COSINE, SCHEDULE_SDE } ScheduleKind;
static const char *schedule_names[] = {"linear", "cosine", "sde"};

// Every array has T+1 entries, t = 0..T, with alpha_bar[0] = 1 ("no noise yet"). They are double,
// not float: alpha_bar_T is a product of 1000 factors, and 1 - alpha_bar_t near t = 1 is a
// difference of nearly equal numbers; float's 7 digits would leave 3 or 4 correct digits in
// beta_tilde_1..10.
struct Schedule {
    ScheduleKind kind;
    int T;
    double *beta;                 // beta_t = 1 - alpha_t, the variance added by step t
    double *alpha;                // alpha_t, the signal kept by step t
    double *alpha_bar;            // alpha_bar_t = prod_{s<=t} alpha_s, signal kept after t steps
    double *one_minus_alpha_bar;  // 1 - alpha_bar_t, kept separately to avoid cancellation
    double *beta_tilde;           // posterior variance (Step 2)
    double *coef_x0, *coef_xt;    // posterior mean mu_t = coef_x0 x_0 + coef_xt x_t (Step 2)
};

// The VP-SDE noise rate of Song et al. (2021), beta(u) = beta_min + (beta_max - beta_min) u on
// [0, 1], and its integral from 0 to u. The `sde` schedule and the reverse-SDE sampler use them.
static const double VP_BETA_MIN = 0.1;
static const double VP_BETA_MAX = 20.0;
static USED_BY_CHECKS double vp_beta(double u) {
    return VP_BETA_MIN + (VP_BETA_MAX - VP_BETA_MIN) * u;
}
static double vp_beta_integral(double u) {
    return VP_BETA_MIN * u + 0.5 * (VP_BETA_MAX - VP_BETA_MIN) * u * u;
}

// beta_1..beta_T of each schedule: where the noise levels come from.
static void schedule_betas(double *beta, ScheduleKind kind, int T) {
    for (int t = 1; t <= T; t++) {
        if (kind == SCHEDULE_LINEAR) {
            // Ho et al. (2020): beta_t evenly spaced from 1e-4 to 0.02. At T = 1000 it is the
            // first- order version of `sde`: alpha_t = exp(-int beta du) ~ 1 - beta(u_t)/T. The
            // endpoints do not scale with T, so at small T the chain never reaches noise (see
            // schedule_warn).
            double step = (0.02 - 1e-4) * (double)(t - 1);
            beta[t] = T == 1 ? 1e-4 : 1e-4 + step / (double)(T - 1);
        } else if (kind == SCHEDULE_COSINE) {
            // Nichol & Dhariwal (2021): choose alpha_bar itself, f(t) = cos^2(((t/T)+s)/(1+s)
            // pi/2), s = 0.008, so that the signal decays gently at both ends; beta_t = 1 -
            // f(t)/f(t-1), clipped at 0.999: unclipped, beta_T = 1 gives alpha_bar_T = 0, and eq.
            // (2) of Step 5 would divide by sqrt(alpha_bar_T) = 0.
            const double s = 0.008;
            double root_f = cos(((double)t / T + s) / (1 + s) * PI / 2);  // sqrt(f(t))
            double root_f_prev = cos(((double)(t - 1) / T + s) / (1 + s) * PI / 2);
            double b = 1.0 - (root_f * root_f) / (root_f_prev * root_f_prev);
            beta[t] = b < 0.999 ? b : 0.999;
        } else {
            // The lecture's own discretization: alpha_k = exp(-int_{u_{k-1}}^{u_k} beta(u) du),
            // u_k = k/T, in closed form. beta = -expm1(-integral) is exact even for tiny integrals.
            double integral =
                vp_beta_integral((double)t / T) - vp_beta_integral((double)(t - 1) / T);
            beta[t] = -expm1(-integral);
        }
    }
}

static Schedule schedule_make(ScheduleKind kind, int T) {
    Schedule s = {.kind = kind, .T = T};
    double *block = xcalloc((size_t)7 * (T + 1), sizeof(double));
    s.beta = block;
    s.alpha = block + (T + 1);
    s.alpha_bar = block + 2 * (T + 1);
    s.one_minus_alpha_bar = block + 3 * (T + 1);
    s.beta_tilde = block + 4 * (T + 1);
    s.coef_x0 = block + 5 * (T + 1);
    s.coef_xt = block + 6 * (T + 1);
    schedule_betas(s.beta, kind, T);
    s.alpha_bar[0] = 1.0;  // t = 0 is the clean image: all signal, no noise
    s.one_minus_alpha_bar[0] = 0.0;
    for (int t = 1; t <= T; t++) {
        s.alpha[t] = 1.0 - s.beta[t];
        s.alpha_bar[t] = s.alpha_bar[t - 1] * s.alpha[t];
        // 1 - alpha_bar_{t-1} alpha_t = (1 - alpha_bar_{t-1}) + alpha_bar_{t-1} beta_t: a sum of
        // positive terms, exact to the last digit, where 1.0 - alpha_bar_t would lose ~4 digits.
        s.one_minus_alpha_bar[t] = s.one_minus_alpha_bar[t - 1] + s.alpha_bar[t - 1] * s.beta[t];
    }
    posterior_coefficients(&s);
    return s;
}
static void schedule_free(Schedule *s) { free(s->beta); }

// x_T should be pure noise: generation starts from N(0, I). The linear schedule at small T is not.
static void schedule_warn(const Schedule *s) {
    double kept = sqrt(s->alpha_bar[s->T]);
    if (kept > 0.05)
        fprintf(stderr,
                "warning: schedule %s with T = %d keeps sqrt(alpha_bar_T) = %.3f of the image: "
                "x_T is not N(0, I) (use a larger T, or --schedule cosine or sde)\n",
                schedule_names[s->kind], s->T, kept);
}

// One step of the chain, x_{t-1} -> x_t in place (n values): x = sqrt(alpha_t) x + sqrt(beta_t)
// eps.
static USED_BY_CHECKS void forward_one_step(real *x, const real *eps, const Schedule *s, int t,
                                            size_t n) {
    double a = sqrt(s->alpha[t]), b = sqrt(s->beta[t]);
    for (size_t i = 0; i < n; i++) x[i] = (real)(a * x[i] + b * eps[i]);
}
// The one-shot form, from the clean image: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.
static void forward_one_shot(real *xt, const real *x0, const real *eps, const Schedule *s, int t,
                             size_t n) {
    double a = sqrt(s->alpha_bar[t]), b = sqrt(s->one_minus_alpha_bar[t]);
    for (size_t i = 0; i < n; i++) xt[i] = (real)(a * x0[i] + b * eps[i]);
}

// ============================================================================================
// Step 2. The closed-form posterior  q(x_{t-1} | x_t, x_0) = N(mu_t(x_t, x_0), beta_tilde_t I)
//     mu_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
//            + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
//     beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
// Why Gaussian: x_{t-1} | x_0 and x_t | x_{t-1} are both Gaussian and linear, so Bayes' rule
// multiplies two Gaussians in x_{t-1}: precisions add (1/beta_tilde = alpha_t/beta_t
// + 1/(1 - alpha_bar_{t-1})) and the mean is the precision-weighted average. At t = 1,
// alpha_bar_0 = 1: beta_tilde_1 = 0, coef_x0 = 1, coef_xt = 0: given x_0, the last step is x_0.
// ============================================================================================

// beta_tilde, coef_x0 and coef_xt for t = 1..T: functions of the schedule alone.
static void posterior_coefficients(Schedule *s) {
    for (int t = 1; t <= s->T; t++) {
        double omab = s->one_minus_alpha_bar[t], omab_prev = s->one_minus_alpha_bar[t - 1];
        s->beta_tilde[t] = s->beta[t] * omab_prev / omab;
        s->coef_x0[t] = sqrt(s->alpha_bar[t - 1]) * s->beta[t] / omab;
        s->coef_xt[t] = sqrt(s->alpha[t]) * omab_prev / omab;
    }
}

// mu_t(x_t, x_0) for n values. Step 5 calls it with x0_hat in place of the unknown x_0 (eq. 3).
static void posterior_mean(real *mu, const real *xt, const real *x0, const Schedule *s, int t,
                           size_t n) {
    double cx0 = s->coef_x0[t], cxt = s->coef_xt[t];
    for (size_t i = 0; i < n; i++) mu[i] = (real)(cx0 * x0[i] + cxt * xt[i]);
}

// ============================================================================================
// Step 3. Generate the training data  (x_0, t, eps, x_t)
//     1. x_0 ~ p_data (a random training image)   2. t ~ Unif{1..T}   3. eps ~ N(0, I)
//     4. x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps      5. keep (x_0, x_t, eps, t)
// ============================================================================================

// The data x_0 is drawn from: Fashion-MNIST, or a folder of the user's PNG/JPEG images (the
// loaders, with their checks against hostile files, are in PART II: load_dataset).
typedef char ClassName[64];  // a class's name: Fashion-MNIST's, or the user's folder name
struct Dataset {
    int n, c, h, w;  // n images of c channels, h x w pixels
    float *pixels;   // (n, c, h, w) scaled to [-1, 1]: the forward process adds unit-variance
                     // noise, so the data should be on a comparable, zero-centred scale
    int *labels;     // (n) class 0..n_classes-1, or NULL when the data has no classes
    int n_classes;
    ClassName *class_names;  // (n_classes)
};

// The slide's algorithm for a batch: B tuples (x_0, t, eps, x_t), with labels when the data has
// them. x0, eps, xt: (B, C, H, W); t, label: (B).
static void draw_training_batch(real *x0, int *t, real *eps, real *xt, int *label, const Dataset *d,
                                const Schedule *s, int B, Rng *rng) {
    size_t n = (size_t)d->c * d->h * d->w;
    for (int b = 0; b < B; b++) {
        int i = rng_int(rng, d->n);  // 1. a random training image
        for (size_t k = 0; k < n; k++) x0[b * n + k] = d->pixels[(size_t)i * n + k];
        if (label) label[b] = d->labels ? d->labels[i] : -1;
        t[b] = 1 + rng_int(rng, s->T);                                      // 2. t ~ Unif{1..T}
        rng_normal_fill(rng, eps + b * n, n);                               // 3. eps ~ N(0, I)
        forward_one_shot(xt + b * n, x0 + b * n, eps + b * n, s, t[b], n);  // 4. x_t in one shot
    }
}

// ============================================================================================
// Step 4. Learn a denoiser eps_theta(x_t, t)
//     min_theta  E_{(x_0, x_t, eps, t)} || eps - eps_theta(x_t, t) ||^2     (lecture 000; L_simple)
// The network is the slide's "default recommendation: U-Net denoiser + time embedding", with one
// self-attention layer and class conditioning (for classifier-free guidance, lecture 001). Each
// layer is a forward function and, right after it, its backward function. Backward functions ADD
// their gradients into the gradient buffers (+=); one place (unet_backward) zeroes them per step.
// `./diffusion gradcheck` checks every pair by finite differences; `./diffusion refcheck`
// compares the whole network with PyTorch (notes/pytorch_mirror.py).
// ============================================================================================

// ---- The matrix product ---------------------------------------------------------------------
// Every layer with weights is a matrix product C (M x N) = [C +] A (M x K) . B (K x N). Element
// (i,k) of A is A[i*ars + k*acs], and likewise for B, so a transposed operand is the same memory
// read with its two strides swapped. This is the whole definition:
static USED_BY_CHECKS void matmul_reference(int M, int N, int K, const real *A, long ars,
                                            long acs, const real *B, long brs, long bcs, real *C,
                                            long crs, int accumulate) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double sum = accumulate ? C[i * crs + j] : 0;
            for (int k = 0; k < K; k++) sum += (double)A[i * ars + k * acs] * B[k * brs + j * bcs];
            C[i * crs + j] = (real)sum;
        }
}
// The layers call gemm: the same product, computed many times faster by the blocking of PART II.
// gradcheck compares the two.
// Also in PART II: the sums and the exponential that the layers below call, written so that
// the compiler vectorizes them: lane_sums (sum a, sum a (b - shift) scale), lane_sum, exp_real.

// ---- Convolution (3x3 stride 1 or 2, 1x1) ---------------------------------------------------
// A KxK convolution is a matrix product once every input patch is unrolled into a column: col
// has one row per (c, ky, kx) and one column per output position (oy, ox),
//     col[(c,ky,kx)][(oy,ox)] = inp[c][oy*s + ky - p][ox*s + kx - p]   (0 outside; p = K/2)
// and then out (OC, N') = weight (OC, C*K*K) . col (C*K*K, N').
static int conv_out_size(int size, int K, int stride) {
    return (size + 2 * (K / 2) - K) / stride + 1;
}

// inp (C,H,W) -> col (C*K*K, OH*OW): the definition read literally. The layers call im2col,
// which builds the same col from long shifted copies (PART II); gradcheck compares the two.
static void im2col_reference(real *col, const real *inp, int C, int H, int W, int K, int stride) {
    int OH = conv_out_size(H, K, stride);
    int OW = conv_out_size(W, K, stride);
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K * K; k++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    int y = oy * stride + k / K - K / 2, x = ox * stride + k % K - K / 2;
                    int inside = y >= 0 && y < H && x >= 0 && x < W;
                    real v = inside ? inp[((size_t)c * H + y) * W + x] : 0;
                    col[((size_t)c * K * K + k) * OH * OW + oy * OW + ox] = v;
                }
}

// The adjoint of im2col: each column entry adds its gradient back to the pixel it came from.
// dcol (C*K*K, OH*OW) -> dinp (C,H,W) (+=)
static void col2im(real *dinp, const real *dcol, int C, int H, int W, int K, int stride) {
    int OH = conv_out_size(H, K, stride);
    int OW = conv_out_size(W, K, stride);
    int pad = K / 2;
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                const real *row = dcol + (size_t)((c * K + ky) * K + kx) * OH * OW;
                for (int oy = 0; oy < OH; oy++) {
                    int y = oy * stride + ky - pad;
                    if (y < 0 || y >= H) continue;
                    real *out = dinp + ((size_t)c * H + y) * W;
                    const real *in = row + oy * OW;
                    for (int ox = 0; ox < OW; ox++) {
                        int x = ox * stride + kx - pad;
                        if (x >= 0 && x < W) out[x] += in[ox];
                    }
                }
            }
}

// inp (B,C,H,W), weight (OC,C,K,K), bias (OC) -> out (B,OC,OH,OW):  out_b = W . col(inp_b) + bias
// for each image b. conv2d_images (PART II) computes it on all threads, image by image, without
// building col where it can (stride 1, 1x1).
static void conv2d_forward(real *out, const real *inp, const real *weight, const real *bias, int B,
                           int C, int H, int W, int OC, int K, int stride, const Workspace *ws) {
    conv2d_images(out, inp, weight, bias, B, C, H, W, OC, K, stride, ws);
}
// forward: out = W . col(inp) + b, so  dW += dout . col^T,  db += sum_p dout,
// dinp += col2im(W^T . dout). dinp may be NULL (the network's input needs no gradient). PART II
// sums dW and db over the images in a fixed order on any number of threads, and computes dinp of a
// stride-1 convolution as a convolution of dout with the flipped kernel (the same sum, as one
// large product).
static void conv2d_backward(real *dinp, real *dweight, real *dbias, const real *dout,
                            const real *inp, const real *weight, int B, int C, int H, int W,
                            int OC, int K, int stride, const Workspace *ws) {
    conv2d_weight_grad(dweight, dbias, dout, inp, B, C, H, W, OC, K, stride, ws);
    if (dinp) conv2d_input_grad(dinp, dout, weight, B, C, H, W, OC, K, stride, ws);
}

// ---- Linear ---------------------------------------------------------------------------------
// inp (B,I), weight (O,I), bias (O) -> out (B,O) = inp . W^T + b
static void linear_forward(real *out, const real *inp, const real *weight, const real *bias, int B,
                           int I, int O) {
    gemm(B, O, I, inp, I, 1, weight, 1, I, out, O, 0);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O; o++) out[b * O + o] += bias[o];
}
// forward: out = inp W^T + b, so  dW += dout^T . inp,  db += sum_b dout,  dinp += dout . W
static void linear_backward(real *dinp, real *dweight, real *dbias, const real *dout,
                            const real *inp, const real *weight, int B, int I, int O) {
    gemm(O, I, B, dout, 1, O, inp, I, 1, dweight, I, 1);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O; o++) dbias[o] += dout[b * O + o];
    if (dinp) gemm(B, I, O, dout, O, 1, weight, I, 1, dinp, I, 1);
}

// ---- SiLU -----------------------------------------------------------------------------------
// out = x sigmoid(x) elementwise (n values): smooth, and unlike ReLU it lets small negative values
// through. e^x is exp_real (PART II), which vectorizes where the library's exp does not.
static real sigmoid(real x) { return 1 / (1 + exp_real(-x)); }
static void silu_forward(real *out, const real *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] * sigmoid(inp[i]);
}
// forward: y = x s(x), s = sigmoid, so dy/dx = s + x s (1 - s)
static void silu_backward(real *dinp, const real *dout, const real *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        real s = sigmoid(inp[i]);
        dinp[i] += dout[i] * s * (1 + inp[i] * (1 - s));
    }
}

// ---- GroupNorm (Wu & He 2018) ---------------------------------------------------------------
// The C channels are split in G groups; each (image, group) is normalised over its C/G channels
// and N positions, then each channel gets its own scale gamma and shift beta. Unlike BatchNorm it
// does not mix the images of a batch, so a sample does not depend on what else is in the batch.
// groupnorm_forward and groupnorm_backward (PART II) run the two functions below on every (image,
// group) of a batch, on all threads: inp (B,C,N), gamma, beta (C) -> out (B,C,N), mean, rstd (B,G).
static const double GN_EPS = 1e-5;
// One group of one image: x (cg,N) -> y (cg,N); gamma, beta (cg) are the group's channels';
// *mean, *rstd (= 1/sqrt(var + 1e-5)) are kept for backward.
static void groupnorm_group_forward(real *y, real *mean, real *rstd, const real *x,
                                    const real *gamma, const real *beta, int cg, int N) {
    double sum, sumsq;  // double: up to 9408 terms, and E[x^2] - E[x]^2 cancels
    lane_sums(x, x, 0, 1, (long)cg * N, &sum, &sumsq);
    double m = sum / (cg * N);
    double var = sumsq / (cg * N) - m * m;
    if (var < 0) var = 0;
    double r = 1 / sqrt(var + GN_EPS);
    *mean = (real)m;
    *rstd = (real)r;
    for (int c = 0; c < cg; c++)
        for (int p = 0; p < N; p++)
            y[(size_t)c * N + p] = (real)((x[(size_t)c * N + p] - m) * r) * gamma[c] + beta[c];
}
// forward: xhat = (x - m) r, y = gamma xhat + beta. So dgamma += sum dy xhat, dbeta += sum dy,
// and since m and r depend on every x of the group:
//     dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),   dxhat = gamma dy.
// One group of one image: dy, x (cg,N) -> dx (cg,N) (+=), dgamma, dbeta (cg) (+=).
static void groupnorm_group_backward(real *dx, real *dgamma, real *dbeta, const real *dy,
                                     const real *x, real m, real r, const real *gamma, int cg,
                                     int N) {
    double mean_dxhat = 0, mean_dxhat_xhat = 0;
    for (int c = 0; c < cg; c++) {
        double sdy, sdyx;  // sum dy, sum dy xhat
        lane_sums(dy + (size_t)c * N, x + (size_t)c * N, m, r, N, &sdy, &sdyx);
        dgamma[c] += (real)sdyx;
        dbeta[c] += (real)sdy;
        mean_dxhat += gamma[c] * sdy;
        mean_dxhat_xhat += gamma[c] * sdyx;
    }
    mean_dxhat /= cg * N;
    mean_dxhat_xhat /= cg * N;
    for (int c = 0; c < cg; c++)
        for (int p = 0; p < N; p++) {
            size_t i = (size_t)c * N + p;
            real xhat = (x[i] - m) * r;
            dx[i] += r * (real)(gamma[c] * dy[i] - mean_dxhat - xhat * mean_dxhat_xhat);
        }
}

// ---- Sinusoidal time embedding (Vaswani et al. 2017; Ho et al. 2020) ------------------------
// The network must know how noisy its input is. t (a number, 1..T) becomes D features at
// geometric frequencies f_i = 10000^(-i/(D/2)), i = 0..D/2-1:
//     emb = [sin(t f_0) .. sin(t f_{D/2-1}), cos(t f_0) .. cos(t f_{D/2-1})].
// Nearby t get similar vectors, distant t different ones, at every scale from 1 to thousands.
// t (B) -> out (B,D)
static void sinusoid_forward(real *out, const real *t, int B, int D) {
    int half = D / 2;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < half; i++) {
            double f = exp(-log(10000.0) * i / half);
            out[b * D + i] = (real)sin(t[b] * f);
            out[b * D + half + i] = (real)cos(t[b] * f);
        }
}
// t is an input, not a parameter, so training never needs this; it is here so that gradcheck
// can prove the pair. d sin(t f)/dt = f cos(t f), d cos(t f)/dt = -f sin(t f).
// dout (B,D) -> dt (B) (+=)
static USED_BY_CHECKS void sinusoid_backward(real *dt, const real *dout, const real *t, int B,
                                             int D) {
    int half = D / 2;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < half; i++) {
            double f = exp(-log(10000.0) * i / half);
            double d_sin = f * cos(t[b] * f) * dout[b * D + i];
            dt[b] += (real)(d_sin - f * sin(t[b] * f) * dout[b * D + half + i]);
        }
}

// ---- Embedding lookup (the class label) -----------------------------------------------------
// table (R,D), label (B) -> out (B,D) += table[label]   (R = classes + 1; the last row: no label)
static void embedding_forward(real *out, const real *table, const int *label, int B, int D) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++) out[b * D + i] += table[(size_t)label[b] * D + i];
}
// forward copies a row, so its gradient goes back to that row:  dtable[label] += dout
static void embedding_backward(real *dtable, const real *dout, const int *label, int B, int D) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++) dtable[(size_t)label[b] * D + i] += dout[b * D + i];
}

// ---- A per-channel vector (the time embedding's projection) added at every position ---------
// h (B,C,N) += v (B,C) broadcast over N
static void add_channel_vector_forward(real *h, const real *v, int B, int C, int N) {
    for (int bc = 0; bc < B * C; bc++)
        for (int p = 0; p < N; p++) h[(size_t)bc * N + p] += v[bc];
}
// forward adds v[b][c] at N positions, so dv[b][c] += sum_p dh[b][c][p]
static void add_channel_vector_backward(real *dv, const real *dh, int B, int C, int N) {
    for (int bc = 0; bc < B * C; bc++) dv[bc] += (real)lane_sum(dh + (size_t)bc * N, N);
}

// ---- Residual add ---------------------------------------------------------------------------
// out = a + b (n values). ResBlocks and attention add their input back to their output, so the
// gradient has a short path around every block.
static void residual_forward(real *out, const real *a, const real *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
// dst += src (n values)
static void add_into(real *dst, const real *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}
// d(a + b)/da = d(a + b)/db = 1: both inputs receive dout.
static USED_BY_CHECKS void residual_backward(real *da, real *db, const real *dout, size_t n) {
    add_into(da, dout, n);
    add_into(db, dout, n);
}

// ---- Nearest-neighbour upsampling x2 --------------------------------------------------------
// inp (B*C, H, W) -> out (B*C, 2H, 2W): each pixel becomes a 2x2 block.
static void upsample_forward(real *out, const real *inp, int BC, int H, int W) {
    for (int i = 0; i < BC; i++)
        for (int y = 0; y < 2 * H; y++)
            for (int x = 0; x < 2 * W; x++)
                out[((size_t)i * 2 * H + y) * 2 * W + x] = inp[((size_t)i * H + y / 2) * W + x / 2];
}
// each input pixel was copied to 4 outputs, so it receives the sum of their 4 gradients
static void upsample_backward(real *dinp, const real *dout, int BC, int H, int W) {
    for (int i = 0; i < BC; i++)
        for (int y = 0; y < 2 * H; y++)
            for (int x = 0; x < 2 * W; x++)
                dinp[((size_t)i * H + y / 2) * W + x / 2] +=
                    dout[((size_t)i * 2 * H + y) * 2 * W + x];
}

// ---- Channel concatenation (the U-Net's skip connections) -----------------------------------
// a (B,CA,N), b (B,CB,N) -> out (B,CA+CB,N): per image, a's channels then b's.
static void concat_forward(real *out, const real *a, const real *b, int B, int CA, int CB, int N) {
    size_t na = (size_t)CA * N, nb = (size_t)CB * N;
    for (int i = 0; i < B; i++) {
        memcpy(out + (size_t)i * (na + nb), a + (size_t)i * na, sizeof(real) * na);
        memcpy(out + (size_t)i * (na + nb) + na, b + (size_t)i * nb, sizeof(real) * nb);
    }
}
// concatenation only moves values, so its backward splits dout back into the two parts
static void concat_backward(real *da, real *db, const real *dout, int B, int CA, int CB, int N) {
    size_t na = (size_t)CA * N, nb = (size_t)CB * N;
    for (int i = 0; i < B; i++) {
        const real *d = dout + (size_t)i * (na + nb);
        for (size_t k = 0; k < na; k++) da[(size_t)i * na + k] += d[k];
        for (size_t k = 0; k < nb; k++) db[(size_t)i * nb + k] += d[na + k];
    }
}

// ---- Softmax over rows ----------------------------------------------------------------------
// s (R, N) -> p (R, N), p_ij = exp(s_ij - max_j s) / sum_j exp(...): subtracting the row max
// changes nothing mathematically and keeps exp() from overflowing.
static void softmax_forward(real *p, const real *s, int R, int N) {
    for (int i = 0; i < R; i++) {
        const real *x = s + (size_t)i * N;
        real *y = p + (size_t)i * N;
        real mx = x[0];
        for (int j = 1; j < N; j++) mx = x[j] > mx ? x[j] : mx;
        double sum = 0;
        for (int j = 0; j < N; j++) {
            y[j] = exp_real(x[j] - mx);
            sum += y[j];
        }
        for (int j = 0; j < N; j++) y[j] = (real)(y[j] / sum);
    }
}
// forward: p = softmax(s), so ds_ij = p_ij (dp_ij - sum_k p_ik dp_ik)   (ds written, not added)
static void softmax_backward(real *ds, const real *dp, const real *p, int R, int N) {
    for (int i = 0; i < R; i++) {
        const real *pi = p + (size_t)i * N;
        const real *dpi = dp + (size_t)i * N;
        double dot = 0;
        for (int j = 0; j < N; j++) dot += pi[j] * dpi[j];
        for (int j = 0; j < N; j++) ds[(size_t)i * N + j] = pi[j] * (real)(dpi[j] - dot);
    }
}

// ---- The loss of Step 4 ---------------------------------------------------------------------
// L = (1/B) sum_b ||eps_b - pred_b||^2 / pixels = the mean of (pred - eps)^2 over n = B*C*H*W.
static double mse_forward(const real *pred, const real *eps, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ((double)pred[i] - eps[i]) * ((double)pred[i] - eps[i]);
    return s / (double)n;
}
// dL/dpred = 2 (pred - eps) / n
static void mse_backward(real *dpred, const real *pred, const real *eps, size_t n) {
    for (size_t i = 0; i < n; i++) dpred[i] += (real)(2.0 * (pred[i] - eps[i]) / (double)n);
}
// Optional (train --min-snr G; Hang et al. 2023): by eq. 2, ||eps - eps_theta||^2 = SNR_t
// ||x_0 - x0_hat||^2 with SNR_t = alpha_bar_t / (1 - alpha_bar_t), so the plain loss weights the
// nearly clean t's most (SNR_1 ~ 10^4). Weighting image b's term by min(SNR_t, G) / SNR_t caps
// that weight at G and leaves the noisy t's, where the samples take shape, their full weight.
static real min_snr_weight(const Schedule *s, int t, double G) {
    double snr = s->alpha_bar[t] / s->one_minus_alpha_bar[t];
    return (real)(fmin(snr, G) / snr);
}

// ---- The U-Net: configuration, parameters, activations --------------------------------------
// Default sizes: 28x28x1 input, widths 32 at 28x28 and 64 at 14x14 and 7x7, a 32-dim sinusoid
// lifted to a 128-dim time embedding, GroupNorm with 8 groups, 10 classes plus the "no label" row.
struct Config {
    int img_c, img_h, img_w;  // image channels and size (h, w divisible by 4: two 2x downsamplings)
    int ch1, ch2;             // channels at full resolution, and at 1/2 and 1/4 resolution
    int tdim, temb;           // sinusoid width, time-embedding width
    int groups;               // GroupNorm groups (divides ch1 and ch2)
    int n_classes;            // class labels 0..n_classes-1; row n_classes of the table: no label
    int cond;                 // 1: class-conditional (has the label table), 0: unconditional
    // A text model (text = 1, with cond = 1) conditions on each class's words instead of a table
    // row: a vocabulary of `vocab` tokens (the start token and the words), prompts of at most
    // max_tokens, cross-attention after the self-attention (Step 4, lecture 001).
    int text, vocab, max_tokens;
};
static const Config DEFAULT_CONFIG = {1, 28, 28, 32, 64, 32, 128, 8, 10, 1, 0, 0, 0};

// Every parameter tensor is a named view into one flat buffer. The gradients, the AdamW moments and
// the EMA weights use the same layout, so the optimiser is one loop over one array, and the
// checkpoint and the PyTorch mirror agree on the order: the order of the take() calls below.
struct ConvParams {
    real *w, *b;  // weight (OC,C,K,K) or (O,I), bias (OC)
};
struct ResBlockParams {
    int cin, cout;
    real *gn1_g, *gn1_b;  // (cin)
    ConvParams conv1;     // (cout,cin,3,3)
    ConvParams temb;      // (cout,temb): the time embedding's projection for this block
    real *gn2_g, *gn2_b;  // (cout)
    ConvParams conv2;     // (cout,cout,3,3)
    ConvParams skip;      // (cout,cin,1,1) when cin != cout, else NULL (identity)
};
// Self-attention's, and cross-attention's (whose k and v are Linear (C,D) on the token vectors)
struct AttnParams {
    real *gn_g, *gn_b;         // (C)
    ConvParams q, k, v, proj;  // (C,C,1,1) each
};
typedef struct {
    ConvParams time1, time2;  // (temb,tdim), (temb,temb)
    real *class_table;        // (n_classes+1, temb), NULL when unconditional
    ConvParams conv_in;       // (ch1,img_c,3,3)
    ResBlockParams d0, d1, d2;  // down: ch1->ch1 @HxW, ch1->ch2 @H/2, ch2->ch2 @H/4
    ConvParams ds0, ds1;      // stride-2 downsampling convs (ch1->ch1), (ch2->ch2)
    ResBlockParams m0, m1;    // middle, ch2->ch2 @H/4
    AttnParams attn;          // middle self-attention, ch2
    real *tok_table, *pos_table;  // text models: (vocab, ch2), (max_tokens, ch2); else NULL
    AttnParams xattn;         // text models: cross-attention after attn, ch2 (tokens of ch2)
    ResBlockParams u0, u1, u2;  // up: 2ch2->ch2 @H/4, 2ch2->ch2 @H/2, ch2+ch1->ch1 @H
    ConvParams us0, us1;      // convs after the nearest-neighbour upsamplings (ch2->ch2)
    real *out_gn_g, *out_gn_b;  // (ch1)
    ConvParams out_conv;      // (img_c,ch1,3,3)
} Params;

// A layout (PART II) hands out consecutive pieces of a buffer, or only counts them, and records
// each tensor's name, size and kind (for initialisation, gradcheck, refcheck and `info`).

// take_conv and take_resblock (PART II) hand out a layer's tensors in order, named prefix.w, ...
static void params_layout(Params *P, Layout *L, real *base, const Config *c) {
    layout_begin(L, base);
    int ch1 = c->ch1, ch2 = c->ch2, e = c->temb;
    P->time1 = take_conv(L, "time1", e, c->tdim, 1);
    P->time2 = take_conv(L, "time2", e, e, 1);
    P->class_table = NULL;
    if (c->cond && !c->text)
        P->class_table = take(L, "class_table", (size_t)(c->n_classes + 1) * e, 0, KIND_TABLE);
    if (c->cond && !c->text) last_shape(L, c->n_classes + 1, e);
    P->conv_in = take_conv(L, "conv_in", ch1, c->img_c, 3);
    P->d0 = take_resblock(L, "d0", ch1, ch1, e);
    P->ds0 = take_conv(L, "ds0", ch1, ch1, 3);
    P->d1 = take_resblock(L, "d1", ch1, ch2, e);
    P->ds1 = take_conv(L, "ds1", ch2, ch2, 3);
    P->d2 = take_resblock(L, "d2", ch2, ch2, e);
    P->m0 = take_resblock(L, "m0", ch2, ch2, e);
    P->attn = take_attention(L, "attn", ch2, ch2);
    P->tok_table = P->pos_table = NULL;
    if (c->text) {
        P->xattn = take_attention(L, "xattn", ch2, ch2);  // tokens of ch2
        P->tok_table = take(L, "tok_table", (size_t)c->vocab * ch2, 0, KIND_TABLE);
        last_shape(L, c->vocab, ch2);
        P->pos_table = take(L, "pos_table", (size_t)c->max_tokens * ch2, 0, KIND_TABLE);
        last_shape(L, c->max_tokens, ch2);
    }
    P->m1 = take_resblock(L, "m1", ch2, ch2, e);
    P->u0 = take_resblock(L, "u0", 2 * ch2, ch2, e);
    P->us0 = take_conv(L, "us0", ch2, ch2, 3);
    P->u1 = take_resblock(L, "u1", 2 * ch2, ch2, e);
    P->us1 = take_conv(L, "us1", ch2, ch2, 3);
    P->u2 = take_resblock(L, "u2", ch2 + ch1, ch1, e);
    P->out_gn_g = take(L, "out_gn.g", ch1, 0, KIND_GN_GAIN);
    P->out_gn_b = take(L, "out_gn.b", ch1, 0, KIND_GN_SHIFT);
    P->out_conv = take_conv(L, "out_conv", c->img_c, ch1, 3);
}

// The activations that backward needs, all views into one buffer sized for B images; a twin
// buffer of the same layout holds their gradients. `in` points at the block's input (the previous
// block's output, or a concatenation), so a block's backward adds its input gradient straight
// into its producer's slot.
struct GroupNormActs {
    real *out, *mean, *rstd;  // GroupNorm: output (B,C,N), statistics (B,G)
};
typedef struct {
    int cin, cout, H, W;
    real *in;           // (B,cin,H,W), not owned
    GroupNormActs gn1;  // GroupNorm(in)
    real *act1;         // SiLU(gn1) (B,cin,H,W)
    real *tproj;        // Linear(SiLU(emb)) (B,cout)
    real *h1;           // conv1(act1) + tproj (B,cout,H,W)
    GroupNormActs gn2;  // GroupNorm(h1)
    real *act2;         // SiLU(gn2)
    real *skip;         // skip conv of in (B,cout,H,W), when cin != cout
    real *out;          // conv2(act2) + (skip or in) (B,cout,H,W)
} ResBlockActs;
typedef struct {
    int C, N;
    real *in;         // (B,C,N), not owned
    GroupNormActs gn;
    real *q, *k, *v;  // 1x1 projections (B,C,N)
    real *p;          // attention weights softmax(q^T k / sqrt(C)) (B,N,N)
    real *o;          // v p^T (B,C,N)
    real *out;        // in + proj(o) (B,C,N)
} AttnActs;
typedef struct {
    int C, N, L, D;
    real *in;          // (B,C,N), not owned
    GroupNormActs gn;  // GroupNorm(in)
    real *q;           // (B,C,N)
    real *k, *v;       // (B,L,C)
    real *p;           // attention weights (B,N,L)
    real *o;           // (B,C,N)
    real *out;         // in + proj(o) (B,C,N)
} CrossAttnActs;
typedef struct {
    real *x;                            // the noisy input x_t (B,img_c,H,W)
    real *t;                            // timesteps as numbers (B)
    real *sin_emb;                      // (B,tdim)
    real *t1, *t1_act, *emb, *emb_act;  // (B,temb): Linear, SiLU, Linear (+ class row), SiLU
    real *h0;                           // conv_in (B,ch1,H,W)
    ResBlockActs d0, d1, d2, m0, m1, u0, u1, u2;
    real *p0, *p1;  // after ds0 (B,ch1,H/2,W/2) and ds1 (B,ch2,H/4,W/4)
    AttnActs at;
    real *e;           // text models: the prompt's token vectors (B,max_tokens,ch2)
    CrossAttnActs xat;  // text models: cross-attention after at
    real *cat0, *up0, *q0, *cat1, *up1, *q1, *cat2;  // up path: concat, upsample, conv, ...
    GroupNormActs ogn;                               // output GroupNorm
    real *oact;                                      // its SiLU
    real *pred;                                      // eps_theta (B,img_c,H,W)
} Acts;

// The model: config, parameters (+ gradients, AdamW moments, EMA: one layout), activations (+
// their gradients), and scratch for the convolutions. Everything is allocated once.
struct Model {
    Config cfg;
    int max_batch;
    size_t n_params, n_acts;
    Layout *layout;                                // names and offsets of the parameter tensors
    real *params, *grads, *adam_m, *adam_v, *ema;  // (P) each
    Params p, g;                                   // named views into params and grads
    real *acts, *dacts;                            // (n_acts) each
    Acts a, da;                                    // named views
    Workspace *ws;                                 // convolution scratch (PART II)
    real *scratch;  // attention scratch (2 N^2 at the lowest resolution)
    ClassName *class_names;  // (n_classes) when cond: what each label means (in the checkpoint)
    // text models: each label's prompt, (n_classes + 1 + extra, max_tokens) token indices and its
    // length (label n_classes: the empty prompt, the start token alone); and the batch's tokens
    int *prompt_tokens, *prompt_len, *tokens, *token_len;
    ClassName *vocab_words;  // text models: (vocab) the words of the tokens, 0 the start token
};
// In PART II: model_create carves every buffer once (checking the config), model_free frees them.

// The first weights (params_init, PART II): PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// and, as in Ho et al.'s DDPM code, zero for the last convolution of every residual branch and
// the output: each block starts as the identity and the first prediction is eps_theta = 0.

// ---- ResBlock -------------------------------------------------------------------------------
//   h = conv1(SiLU(GN(x))) + Linear(SiLU(emb));   out = conv2(SiLU(GN(h))) + (skip(x) or x)
// emb_act (B,temb) = SiLU(emb) is shared by all blocks. a->in (B,cin,H,W) -> a->out (B,cout,H,W)
static void resblock_forward(const ResBlockParams *p, ResBlockActs *a, const real *emb_act,
                             Model *m, int B) {
    int N = a->H * a->W, G = m->cfg.groups, cin = a->cin, cout = a->cout;
    size_t nout = (size_t)B * cout * N;
    const Workspace *ws = m->ws;
    // act1 = SiLU(GN(in)), both in one pass on all threads (groupnorm_silu_forward, PART II)
    groupnorm_silu_forward(a->act1, &a->gn1, a->in, p->gn1_g, p->gn1_b, B, cin, N, G);
    conv2d_forward(a->h1, a->act1, p->conv1.w, p->conv1.b, B, cin, a->H, a->W, cout, 3, 1, ws);
    linear_forward(a->tproj, emb_act, p->temb.w, p->temb.b, B, m->cfg.temb, cout);
    add_channel_vector_forward(a->h1, a->tproj, B, cout, N);
    groupnorm_silu_forward(a->act2, &a->gn2, a->h1, p->gn2_g, p->gn2_b, B, cout, N, G);
    conv2d_forward(a->out, a->act2, p->conv2.w, p->conv2.b, B, cout, a->H, a->W, cout, 3, 1, ws);
    if (p->skip.w) {
        conv2d_forward(a->skip, a->in, p->skip.w, p->skip.b, B, cin, a->H, a->W, cout, 1, 1, ws);
        residual_forward(a->out, a->out, a->skip, nout);
    } else {
        residual_forward(a->out, a->out, a->in, nout);
    }
}
// The forward pass read backwards, each line the backward of the matching forward line.
static void resblock_backward(const ResBlockParams *p, const ResBlockParams *g,
                              const ResBlockActs *a, ResBlockActs *d, const real *emb_act,
                              real *demb_act, Model *m, int B) {
    int N = a->H * a->W, G = m->cfg.groups, cin = a->cin, cout = a->cout, H = a->H, W = a->W;
    size_t nin = (size_t)B * cin * N;
    const Workspace *ws = m->ws;
    if (p->skip.w)
        conv2d_backward(d->in, g->skip.w, g->skip.b, d->out, a->in, p->skip.w, B, cin, H, W, cout,
                        1, 1, ws);
    else
        add_into(d->in, d->out, nin);  // identity skip: out = h + x
    conv2d_backward(d->act2, g->conv2.w, g->conv2.b, d->out, a->act2, p->conv2.w, B, cout, H, W,
                    cout, 3, 1, ws);
    groupnorm_silu_backward(d->h1, g->gn2_g, g->gn2_b, &d->gn2, d->act2, &a->gn2, a->h1, p->gn2_g,
                            B, cout, N, G);
    add_channel_vector_backward(d->tproj, d->h1, B, cout, N);
    linear_backward(demb_act, g->temb.w, g->temb.b, d->tproj, emb_act, p->temb.w, B, m->cfg.temb,
                    cout);
    conv2d_backward(d->act1, g->conv1.w, g->conv1.b, d->h1, a->act1, p->conv1.w, B, cin, H, W,
                    cout, 3, 1, ws);
    groupnorm_silu_backward(d->in, g->gn1_g, g->gn1_b, &d->gn1, d->act1, &a->gn1, a->in, p->gn1_g,
                            B, cin, N, G);
}

// ---- Self-attention over the positions (one head) -------------------------------------------
// Every position looks at every other: q, k, v = 1x1 convs of GN(x);
// p_i = softmax_j(q_i . k_j / sqrt(C)); o_i = sum_j p_ij v_j; out = x + proj(o). At 7x7 this
// lets the network relate distant parts of the image (a sleeve to the other sleeve) that 3x3
// convolutions would need many layers to connect. a->in (B,C,N) -> a->out (B,C,N); scratch (N,N).
static void attention_forward(const AttnParams *p, AttnActs *a, Model *m, int B) {
    int C = a->C, N = a->N;
    real scale = (real)(1 / sqrt((double)C));
    const Workspace *ws = m->ws;
    GroupNormActs *gn = &a->gn;
    groupnorm_forward(gn->out, gn->mean, gn->rstd, a->in, p->gn_g, p->gn_b, B, C, N, m->cfg.groups);
    conv2d_forward(a->q, gn->out, p->q.w, p->q.b, B, C, N, 1, C, 1, 1, ws);
    conv2d_forward(a->k, gn->out, p->k.w, p->k.b, B, C, N, 1, C, 1, 1, ws);
    conv2d_forward(a->v, gn->out, p->v.w, p->v.b, B, C, N, 1, C, 1, 1, ws);
    real *s = m->scratch;
    for (int b = 0; b < B; b++) {
        size_t off = (size_t)b * C * N;
        real *pb = a->p + (size_t)b * N * N;
        gemm(N, N, C, a->q + off, 1, N, a->k + off, N, 1, s, N, 0);  // s_ij = sum_c q[c][i] k[c][j]
        for (int i = 0; i < N * N; i++) s[i] *= scale;
        softmax_forward(pb, s, N, N);
        // o[c][i] = sum_j v[c][j] p_ij
        gemm(C, N, N, a->v + off, N, 1, pb, 1, N, a->o + off, N, 0);
    }
    conv2d_forward(a->out, a->o, p->proj.w, p->proj.b, B, C, N, 1, C, 1, 1, ws);
    residual_forward(a->out, a->out, a->in, (size_t)B * C * N);
}
static void attention_backward(const AttnParams *p, const AttnParams *g, const AttnActs *a,
                               AttnActs *d, Model *m, int B) {
    int C = a->C, N = a->N;
    real scale = (real)(1 / sqrt((double)C));
    const Workspace *ws = m->ws;
    add_into(d->in, d->out, (size_t)B * C * N);  // residual: out = x + proj(o)
    conv2d_backward(d->o, g->proj.w, g->proj.b, d->out, a->o, p->proj.w, B, C, N, 1, C, 1, 1, ws);
    real *dp = m->scratch, *ds = m->scratch + (size_t)N * N;
    for (int b = 0; b < B; b++) {
        size_t off = (size_t)b * C * N;
        const real *q = a->q + off, *k = a->k + off, *v = a->v + off;
        const real *pb = a->p + (size_t)b * N * N, *dO = d->o + off;
        // o = v p^T:  dv[c][j] += sum_i dO[c][i] p_ij,  dp_ij = sum_c dO[c][i] v[c][j]
        gemm(C, N, N, dO, N, 1, pb, N, 1, d->v + off, N, 1);
        gemm(N, N, C, dO, 1, N, v, N, 1, dp, N, 0);
        softmax_backward(ds, dp, pb, N, N);
        for (int i = 0; i < N * N; i++) ds[i] *= scale;      // s = scale q^T k:
        gemm(C, N, N, k, N, 1, ds, 1, N, d->q + off, N, 1);  //   dq[c][i] += sum_j ds_ij k[c][j]
        gemm(C, N, N, q, N, 1, ds, N, 1, d->k + off, N, 1);  //   dk[c][j] += sum_i ds_ij q[c][i]
    }
    real *dgn = d->gn.out;
    conv2d_backward(dgn, g->q.w, g->q.b, d->q, a->gn.out, p->q.w, B, C, N, 1, C, 1, 1, ws);
    conv2d_backward(dgn, g->k.w, g->k.b, d->k, a->gn.out, p->k.w, B, C, N, 1, C, 1, 1, ws);
    conv2d_backward(dgn, g->v.w, g->v.b, d->v, a->gn.out, p->v.w, B, C, N, 1, C, 1, 1, ws);
    groupnorm_backward(d->in, g->gn_g, g->gn_b, dgn, a->in, a->gn.mean, a->gn.rstd, p->gn_g, B, C,
                       N, m->cfg.groups);
}

// ---- Cross-attention: the image positions attend to the prompt's words (lecture 001) ----------
// Lecture 001's U-Net slide: "self-attention and cross-attention (for conditioning)". As in
// Stable Diffusion's transformer blocks, the queries come from the image, the keys and values
// from the prompt's token vectors e (L,D):
//   q = Wq GN(x) (C,N);   k = Wk e + bk,  v = Wv e + bv (L,C);
//   p_i = softmax over the prompt's len tokens of q_i . k_j / sqrt(C)   (the other L - len are
//         padding: p_ij = 0);   o_i = sum_j p_ij v_j;   out = x + proj(o).
// A position can so ask "which word describes me?" and take that word's value: words the model
// never saw together in one prompt can still each steer their part of the image.
// a->in (B,C,N), e (B,L,D), len (B) -> a->out (B,C,N); scratch (N,L)
static void cross_attention_forward(const AttnParams *p, CrossAttnActs *a, const real *e,
                                    const int *len, real *scratch, int G, const Workspace *ws,
                                    int B) {
    int C = a->C, N = a->N, L = a->L;
    real scale = (real)(1 / sqrt((double)C));
    groupnorm_forward(a->gn.out, a->gn.mean, a->gn.rstd, a->in, p->gn_g, p->gn_b, B, C, N, G);
    conv2d_forward(a->q, a->gn.out, p->q.w, p->q.b, B, C, N, 1, C, 1, 1, ws);
    linear_forward(a->k, e, p->k.w, p->k.b, B * L, a->D, C);
    linear_forward(a->v, e, p->v.w, p->v.b, B * L, a->D, C);
    real *s = scratch;
    for (int b = 0; b < B; b++) {
        const real *q = a->q + (size_t)b * C * N, *k = a->k + (size_t)b * L * C;
        const real *v = a->v + (size_t)b * L * C;
        real *pb = a->p + (size_t)b * N * L;
        gemm(N, L, C, q, 1, N, k, 1, C, s, L, 0);  // s_ij = sum_c q[c][i] k[j][c]
        for (int i = 0; i < N; i++) {
            for (int j = 0; j < L; j++) s[i * L + j] *= scale;
            softmax_forward(pb + i * L, s + i * L, 1, len[b]);  // over the prompt's tokens only
            for (int j = len[b]; j < L; j++) pb[i * L + j] = 0;
        }
        // o[c][i] = sum_j v[j][c] p_ij
        gemm(C, N, L, v, 1, C, pb, 1, L, a->o + (size_t)b * C * N, N, 0);
    }
    conv2d_forward(a->out, a->o, p->proj.w, p->proj.b, B, C, N, 1, C, 1, 1, ws);
    residual_forward(a->out, a->out, a->in, (size_t)B * C * N);
}
// The forward read backwards; de (B,L,D) receives the gradient of the token vectors (+=).
// scratch (2 N L)
static void cross_attention_backward(const AttnParams *p, const AttnParams *g,
                                     const CrossAttnActs *a, CrossAttnActs *d, const real *e,
                                     real *de, const int *len, real *scratch, int G,
                                     const Workspace *ws, int B) {
    int C = a->C, N = a->N, L = a->L;
    real scale = (real)(1 / sqrt((double)C));
    add_into(d->in, d->out, (size_t)B * C * N);  // residual: out = x + proj(o)
    conv2d_backward(d->o, g->proj.w, g->proj.b, d->out, a->o, p->proj.w, B, C, N, 1, C, 1, 1, ws);
    real *dp = scratch, *ds = scratch + (size_t)N * L;
    for (int b = 0; b < B; b++) {
        const real *q = a->q + (size_t)b * C * N, *k = a->k + (size_t)b * L * C;
        const real *v = a->v + (size_t)b * L * C, *pb = a->p + (size_t)b * N * L;
        const real *dO = d->o + (size_t)b * C * N;
        // o = sum_j p_ij v_j:  dv[j][c] += sum_i p_ij dO[c][i],  dp_ij = sum_c dO[c][i] v[j][c]
        gemm(L, C, N, pb, 1, L, dO, 1, N, d->v + (size_t)b * L * C, C, 1);
        gemm(N, L, C, dO, 1, N, v, 1, C, dp, L, 0);
        for (int i = 0; i < N; i++) {
            softmax_backward(ds + i * L, dp + i * L, pb + i * L, 1, len[b]);
            for (int j = 0; j < L; j++) ds[i * L + j] = j < len[b] ? ds[i * L + j] * scale : 0;
        }
        // s = scale q^T k:  dq[c][i] += sum_j ds_ij k[j][c],  dk[j][c] += sum_i ds_ij q[c][i]
        gemm(C, N, L, k, 1, C, ds, 1, L, d->q + (size_t)b * C * N, N, 1);
        gemm(L, C, N, ds, 1, L, q, 1, N, d->k + (size_t)b * L * C, C, 1);
    }
    linear_backward(de, g->k.w, g->k.b, d->k, e, p->k.w, B * L, a->D, C);
    linear_backward(de, g->v.w, g->v.b, d->v, e, p->v.w, B * L, a->D, C);
    conv2d_backward(d->gn.out, g->q.w, g->q.b, d->q, a->gn.out, p->q.w, B, C, N, 1, C, 1, 1, ws);
    groupnorm_backward(d->in, g->gn_g, g->gn_b, d->gn.out, a->in, a->gn.mean, a->gn.rstd, p->gn_g,
                       B, C, N, G);
}

// ---- The prompt's token vectors (the text encoder) ---------------------------------------------
// A prompt is at most L tokens: a start token (always there, so that the empty prompt, the
// unconditional case, still has one token to attend to), then its words' vocabulary indices.
// e[b][j] = tok_table[token[b][j]] + pos_table[j]. token (B,L), tables (V,D), (L,D) -> e (B,L,D)
static void text_embed_forward(real *e, const real *tok_table, const real *pos_table,
                               const int *token, int B, int L, int D) {
    memset(e, 0, (size_t)B * L * D * sizeof(real));
    embedding_forward(e, tok_table, token, B * L, D);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < L; j++)
            for (int i = 0; i < D; i++) e[((size_t)b * L + j) * D + i] += pos_table[j * D + i];
}
// both lookups copy rows, so their gradients go back to those rows (+=)
static void text_embed_backward(real *dtok, real *dpos, const real *de, const int *token, int B,
                                int L, int D) {
    embedding_backward(dtok, de, token, B * L, D);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < L; j++)
            for (int i = 0; i < D; i++) dpos[j * D + i] += de[((size_t)b * L + j) * D + i];
}

// ---- The whole network ----------------------------------------------------------------------
// A text model's batch of prompts: m->tokens (B,max_tokens), m->token_len (B) from each label's
// prompt in m->prompt_tokens (its padding slots hold the start token: masked, never read).
static void prompt_tokens_of(Model *m, const int *label, int B) {
    int L = m->cfg.max_tokens;
    for (int b = 0; b < B; b++) {
        memcpy(m->tokens + (size_t)b * L, m->prompt_tokens + (size_t)label[b] * L, L * sizeof(int));
        m->token_len[b] = m->prompt_len[label[b]];
    }
}
// x (B,img_c,H,W), t (B) timesteps (real numbers: the SDE sampler uses fractional ones), label (B)
// in 0..n_classes (n_classes: no label; ignored when unconditional)
// -> m->a.pred (B,img_c,H,W) = eps_theta(x_t, t, label).
static void unet_forward(Model *m, const real *x, const real *t, const int *label, int B) {
    if (B > m->max_batch) die("unet_forward", "%d images; its buffers hold %d", B, m->max_batch);
    const Config *c = &m->cfg;
    const Params *p = &m->p;
    const Workspace *ws = m->ws;
    Acts *a = &m->a;
    int H = c->img_h, W = c->img_w, ch1 = c->ch1, ch2 = c->ch2, e = c->temb;
    int N4 = (H / 4) * (W / 4), N2 = (H / 2) * (W / 2), N = H * W;
    memcpy(a->x, x, sizeof(real) * B * c->img_c * H * W);
    memcpy(a->t, t, sizeof(real) * B);
    // time embedding (+ class): emb = Linear(SiLU(Linear(sinusoid(t)))) + table[label]
    sinusoid_forward(a->sin_emb, a->t, B, c->tdim);
    linear_forward(a->t1, a->sin_emb, p->time1.w, p->time1.b, B, c->tdim, e);
    silu_forward(a->t1_act, a->t1, (size_t)B * e);
    linear_forward(a->emb, a->t1_act, p->time2.w, p->time2.b, B, e, e);
    if (c->cond && !c->text) embedding_forward(a->emb, p->class_table, label, B, e);
    silu_forward(a->emb_act, a->emb, (size_t)B * e);
    // down: HxW -> H/2 -> H/4
    conv2d_forward(a->h0, a->x, p->conv_in.w, p->conv_in.b, B, c->img_c, H, W, ch1, 3, 1, ws);
    resblock_forward(&p->d0, &a->d0, a->emb_act, m, B);
    conv2d_forward(a->p0, a->d0.out, p->ds0.w, p->ds0.b, B, ch1, H, W, ch1, 3, 2, ws);
    resblock_forward(&p->d1, &a->d1, a->emb_act, m, B);
    conv2d_forward(a->p1, a->d1.out, p->ds1.w, p->ds1.b, B, ch2, H / 2, W / 2, ch2, 3, 2, ws);
    resblock_forward(&p->d2, &a->d2, a->emb_act, m, B);
    // middle at H/4: ResBlock, attention, ResBlock
    resblock_forward(&p->m0, &a->m0, a->emb_act, m, B);
    attention_forward(&p->attn, &a->at, m, B);
    if (c->text) {  // each image's prompt (its label's), as token vectors, and cross-attention
        prompt_tokens_of(m, label, B);
        text_embed_forward(a->e, p->tok_table, p->pos_table, m->tokens, B, c->max_tokens, ch2);
        cross_attention_forward(&p->xattn, &a->xat, a->e, m->token_len, m->scratch, c->groups,
                                ws, B);
    }
    resblock_forward(&p->m1, &a->m1, a->emb_act, m, B);
    // up: each level concatenates the down path's output of the same size (the U's skips)
    concat_forward(a->cat0, a->m1.out, a->d2.out, B, ch2, ch2, N4);
    resblock_forward(&p->u0, &a->u0, a->emb_act, m, B);
    upsample_forward(a->up0, a->u0.out, B * ch2, H / 4, W / 4);
    conv2d_forward(a->q0, a->up0, p->us0.w, p->us0.b, B, ch2, H / 2, W / 2, ch2, 3, 1, ws);
    concat_forward(a->cat1, a->q0, a->d1.out, B, ch2, ch2, N2);
    resblock_forward(&p->u1, &a->u1, a->emb_act, m, B);
    upsample_forward(a->up1, a->u1.out, B * ch2, H / 2, W / 2);
    conv2d_forward(a->q1, a->up1, p->us1.w, p->us1.b, B, ch2, H, W, ch2, 3, 1, ws);
    concat_forward(a->cat2, a->q1, a->d0.out, B, ch2, ch1, N);
    resblock_forward(&p->u2, &a->u2, a->emb_act, m, B);
    // out: conv(SiLU(GN(h)))
    groupnorm_silu_forward(a->oact, &a->ogn, a->u2.out, p->out_gn_g, p->out_gn_b, B, ch1, N,
                           c->groups);
    conv2d_forward(a->pred, a->oact, p->out_conv.w, p->out_conv.b, B, ch1, H, W, c->img_c, 3, 1,
                   ws);
}

// Given dL/dpred in m->da.pred, fills m->grads (zeroed first): the forward pass run backwards.
static void unet_backward(Model *m, const int *label, int B) {
    const Config *c = &m->cfg;
    const Params *p = &m->p, *g = &m->g;
    const Acts *a = &m->a;
    const Workspace *ws = m->ws;
    Acts *d = &m->da;
    const real *ea = a->emb_act;
    real *dea = d->emb_act;
    int H = c->img_h, W = c->img_w, ch1 = c->ch1, ch2 = c->ch2, e = c->temb;
    int N4 = (H / 4) * (W / 4), N2 = (H / 2) * (W / 2), N = H * W;
    memset(m->grads, 0, m->n_params * sizeof(real));
    conv2d_backward(d->oact, g->out_conv.w, g->out_conv.b, d->pred, a->oact, p->out_conv.w, B, ch1,
                    H, W, c->img_c, 3, 1, ws);
    groupnorm_silu_backward(d->u2.out, g->out_gn_g, g->out_gn_b, &d->ogn, d->oact, &a->ogn,
                            a->u2.out, p->out_gn_g, B, ch1, N, c->groups);
    resblock_backward(&p->u2, &g->u2, &a->u2, &d->u2, ea, dea, m, B);
    concat_backward(d->q1, d->d0.out, d->cat2, B, ch2, ch1, N);
    conv2d_backward(d->up1, g->us1.w, g->us1.b, d->q1, a->up1, p->us1.w, B, ch2, H, W, ch2, 3, 1,
                    ws);
    upsample_backward(d->u1.out, d->up1, B * ch2, H / 2, W / 2);
    resblock_backward(&p->u1, &g->u1, &a->u1, &d->u1, ea, dea, m, B);
    concat_backward(d->q0, d->d1.out, d->cat1, B, ch2, ch2, N2);
    conv2d_backward(d->up0, g->us0.w, g->us0.b, d->q0, a->up0, p->us0.w, B, ch2, H / 2, W / 2, ch2,
                    3, 1, ws);
    upsample_backward(d->u0.out, d->up0, B * ch2, H / 4, W / 4);
    resblock_backward(&p->u0, &g->u0, &a->u0, &d->u0, ea, dea, m, B);
    concat_backward(d->m1.out, d->d2.out, d->cat0, B, ch2, ch2, N4);
    resblock_backward(&p->m1, &g->m1, &a->m1, &d->m1, ea, dea, m, B);
    if (c->text) {
        cross_attention_backward(&p->xattn, &g->xattn, &a->xat, &d->xat, a->e, d->e,
                                 m->token_len, m->scratch, c->groups, ws, B);
        text_embed_backward(g->tok_table, g->pos_table, d->e, m->tokens, B, c->max_tokens, ch2);
    }
    attention_backward(&p->attn, &g->attn, &a->at, &d->at, m, B);
    resblock_backward(&p->m0, &g->m0, &a->m0, &d->m0, ea, dea, m, B);
    resblock_backward(&p->d2, &g->d2, &a->d2, &d->d2, ea, dea, m, B);
    conv2d_backward(d->d1.out, g->ds1.w, g->ds1.b, d->p1, a->d1.out, p->ds1.w, B, ch2, H / 2, W / 2,
                    ch2, 3, 2, ws);
    resblock_backward(&p->d1, &g->d1, &a->d1, &d->d1, ea, dea, m, B);
    conv2d_backward(d->d0.out, g->ds0.w, g->ds0.b, d->p0, a->d0.out, p->ds0.w, B, ch1, H, W, ch1, 3,
                    2, ws);
    resblock_backward(&p->d0, &g->d0, &a->d0, &d->d0, ea, dea, m, B);
    conv2d_backward(NULL, g->conv_in.w, g->conv_in.b, d->h0, a->x, p->conv_in.w, B, c->img_c, H, W,
                    ch1, 3, 1, ws);
    silu_backward(d->emb, d->emb_act, a->emb, (size_t)B * e);
    if (c->cond && !c->text) embedding_backward(g->class_table, d->emb, label, B, e);
    linear_backward(d->t1_act, g->time2.w, g->time2.b, d->emb, a->t1_act, p->time2.w, B, e, e);
    silu_backward(d->t1, d->t1_act, a->t1, (size_t)B * e);
    linear_backward(NULL, g->time1.w, g->time1.b, d->t1, a->sin_emb, p->time1.w, B, c->tdim, e);
}

// One loss evaluation with gradients: forward, L = mse(pred, eps), backward. Returns L. weight (B)
// or NULL: image b's share of L and of its gradient times weight[b] (min-SNR).
static double model_loss_and_grad(Model *m, const real *xt, const real *t, const int *label,
                                  const real *eps, const real *weight, int B) {
    unet_forward(m, xt, t, label, B);
    size_t n = (size_t)B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w, per = n / B;
    double loss = weight ? 0 : mse_forward(m->a.pred, eps, n);
    memset(m->dacts, 0, m->n_acts * sizeof(real));
    mse_backward(m->da.pred, m->a.pred, eps, n);
    for (int b = 0; weight && b < B; b++) {  // L = (1/B) sum_b weight[b] mse(pred_b, eps_b)
        loss += weight[b] * mse_forward(m->a.pred + b * per, eps + b * per, per) / B;
        for (size_t i = 0; i < per; i++) m->da.pred[b * per + i] *= weight[b];
    }
    unet_backward(m, label, B);
    return loss;
}

// ---- AdamW, gradient clipping, EMA ----------------------------------------------------------
// AdamW (Loshchilov & Hutter 2019): per parameter, running means of the gradient (m) and of its
// square (v), each corrected for starting at 0, give a step lr * m_hat / (sqrt(v_hat) + eps):
// about lr in size whatever the gradient's scale. Weight decay (0 by default) shrinks the weights
// directly, outside the adaptive step.
typedef struct {
    double lr, beta1, beta2, eps, weight_decay, clip, ema_decay;
    double min_snr;  // G of the min-SNR weighting (0: none, every t weighs 1)
    int cosine;      // 1: lr decays as (1 + cos(pi f)) / 2 over the fraction f of the run done
} TrainHyper;
static const TrainHyper DEFAULT_HYPER = {2e-4, 0.9, 0.999, 1e-8, 0.0, 1.0, 0.999, 0, 0};

// Scales the gradient so that its global L2 norm is at most h->clip (one bad batch cannot throw
// the weights far), takes AdamW step number `step` (1, 2, ...) and updates the EMA. Returns the
// norm before clipping.
static double adamw_step(Model *m, const TrainHyper *h, int64_t step) {
    double norm2 = 0;
    for (size_t i = 0; i < m->n_params; i++) norm2 += (double)m->grads[i] * m->grads[i];
    double norm = sqrt(norm2);
    double scale = norm > h->clip ? h->clip / norm : 1.0, bc1 = 1 - pow(h->beta1, (double)step);
    double bc2 = 1 - pow(h->beta2, (double)step);
    // EMA warm-up: decay (1 + step)/(10 + step) while that is below 0.999, so that a short run's
    // average is not mostly the random initial weights (0.999^500 = 61% of them after 500 steps).
    double ema_decay = fmin(h->ema_decay, (1.0 + step) / (10.0 + step));
    for (size_t i = 0; i < m->n_params; i++) {
        double g = m->grads[i] * scale;
        double mi = h->beta1 * m->adam_m[i] + (1 - h->beta1) * g;
        double vi = h->beta2 * m->adam_v[i] + (1 - h->beta2) * g * g;
        m->adam_m[i] = (real)mi;
        m->adam_v[i] = (real)vi;
        double p = m->params[i];
        p -= h->lr * ((mi / bc1) / (sqrt(vi / bc2) + h->eps) + h->weight_decay * p);
        m->params[i] = (real)p;
        // The exponential moving average of the weights, decay 0.999 ~ an average over the last
        // ~1000 steps: it smooths the noise of single steps; sampling uses it (as Ho et al. 2020).
        m->ema[i] = (real)(ema_decay * m->ema[i] + (1 - ema_decay) * p);
    }
    return norm;
}

// ---- The training loop ----------------------------------------------------------------------
struct TrainOptions {
    const char *data, *ckpt, *log;
    int64_t steps;   // steps to run in this invocation (0: until `minutes` is up)
    double minutes;  // wall-clock budget (0: none)
    int resume;      // appending to the log of a resumed run
    TrainHyper hyper;
    int save_every;  // steps between checkpoints
};

// Classifier-free guidance (lecture 001) needs one network for both eps(x,t,c) and eps(x,t,none):
// each label is hidden 10% of the time (row n_classes: "no label"), so it also learns without
// one. Images without a class (label < 0) always go without.
static void drop_labels(int *label, int B, int n_classes, Rng *rng) {
    for (int b = 0; b < B; b++)
        if (label[b] < 0 || rng_uniform(rng) < 0.1) label[b] = n_classes;
}

// Steps 3 and 4 on data d, from `step` (0, or a resumed checkpoint's: cmd_train):
//     repeat: (x_0, t, eps, x_t) as in Step 3;  loss = mean (eps - eps_theta(x_t, t))^2;
//             its gradient (backward);  one AdamW step, and the EMA
// until o->steps or o->minutes are done, or Ctrl-C. A TrainRun (PART II) keeps the run's books:
// Ctrl-C, the CSV log, the progress line, a checkpoint every o->save_every steps and at the end.
static void train(const TrainOptions *o, Model *m, const Dataset *d, ScheduleKind sched, int T,
                  int64_t step, Rng rng, int B) {
    Schedule s = schedule_make(sched, T);
    size_t n = (size_t)B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w;
    real *x0 = xmalloc(n * sizeof(real)), *eps = xmalloc(n * sizeof(real));  // (B,C,H,W)
    real *xt = xmalloc(n * sizeof(real)), *tr = xmalloc(B * sizeof(real));   // (B,C,H,W), (B)
    int *t = xmalloc(B * sizeof(int)), *label = xmalloc(B * sizeof(int));    // (B), (B)
    real *w = o->hyper.min_snr > 0 ? xmalloc(B * sizeof(real)) : NULL;       // (B) or none
    TrainRun *r = train_begin(o, m, d, &s, step, B);
    while (train_goes_on(r, step)) {
        draw_training_batch(x0, t, eps, xt, label, d, &s, B, &rng);  // Step 3
        drop_labels(label, B, m->cfg.n_classes, &rng);
        for (int b = 0; b < B; b++) tr[b] = (real)t[b];  // the network reads t as a number
        for (int b = 0; w && b < B; b++) w[b] = min_snr_weight(&s, t[b], o->hyper.min_snr);
        double loss = model_loss_and_grad(m, xt, tr, label, eps, w, B);  // Step 4
        TrainHyper h = o->hyper;
        if (h.cosine) h.lr *= 0.5 * (1 + cos(PI * train_fraction(r, step)));
        double gnorm = adamw_step(m, &h, ++step);
        train_record(r, m, step, loss, gnorm, h.lr, &rng);  // the log, progress, checkpoints
    }
    train_end(r, m, step, &rng);
    free_all(7, x0, eps, xt, tr, t, label, w);
    schedule_free(&s);
}

// ============================================================================================
// Step 5. Simulate the reverse process in terms of eps_theta
//     (2)  x0_hat(x_t, t) = (x_t - sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_bar_t)
//     (3)  mu_theta(x_t, t) = coef_x0 x0_hat + coef_xt x_t     (Step 2's mean with x_0 -> x0_hat)
//     generation: x_T ~ N(0, I); for t = T..1: x_{t-1} = mu_theta(x_t, t) + sqrt(beta_tilde_t) z
// We do not know x_0, but the network's noise estimate gives a guess of it (eq. 2), and the
// exact posterior of Step 2 says how to step towards that guess (eq. 3) while keeping the right
// amount of randomness.
// ============================================================================================

// eq. (2) for n values: x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).
// With clip, x0_hat is clipped to [-1, 1], the range of the data: a heuristic (Ho et al.'s code
// does it). Early on, alpha_bar_t ~ 0 and dividing by sqrt(alpha_bar_t) makes x0_hat huge;
// clipping keeps the steps sane and the samples cleaner, but it is not the lecture's algorithm
// and biases samples towards saturated pixels. Off by default; on with --clip-x0.
static void x0_hat_from_eps(real *x0_hat, const real *xt, const real *eps, double alpha_bar,
                            double one_minus_alpha_bar, size_t n, int clip) {
    double a = 1 / sqrt(alpha_bar), b = sqrt(one_minus_alpha_bar);
    for (size_t i = 0; i < n; i++) {
        double v = a * (xt[i] - b * eps[i]);
        if (clip) v = v < -1 ? -1 : v > 1 ? 1 : v;
        x0_hat[i] = (real)v;
    }
}

// One step of the slide's generation at time t, in place on x (n values): eq. (2), eq. (3), then
// x_{t-1} = mu_theta + sqrt(beta_tilde_t) z. At t = 1, beta_tilde_1 = 0: no noise is added.
// z (n) is scratch; x0_hat (n) receives eq. (2).
static void ddpm_step(real *x, real *x0_hat, const real *eps, const Schedule *s, int t, size_t n,
                      int clip, real *z, Rng *rng) {
    x0_hat_from_eps(x0_hat, x, eps, s->alpha_bar[t], s->one_minus_alpha_bar[t], n, clip);  // (2)
    posterior_mean(x, x, x0_hat, s, t, n);                                                 // (3)
    if (t == 1) return;
    rng_normal_fill(rng, z, n);
    double sd = sqrt(s->beta_tilde[t]);
    for (size_t k = 0; k < n; k++) x[k] += (real)(sd * z[k]);
}

// ---- The reverse SDE (R) of lecture 000 -------------------------------------------------------

// The model's noise levels as a continuous-time process, for any schedule and T: log alpha_bar(u)
// runs linearly between its values at the steps u = t/T. Then beta(u) = -d log alpha_bar / du is
// -T log alpha_t on step t's interval, alpha_t = exp(-int beta) over each step exactly (Step 1),
// and 1 - alpha_bar(u) = 1 - alpha_bar_{t-1} alpha_t^f with f the fraction of step t done.
static void schedule_at(const Schedule *s, double u, double *beta, double *one_minus_alpha_bar) {
    double x = u * s->T;
    int t = (int)ceil(x);
    t = t < 1 ? 1 : t > s->T ? s->T : t;
    double log_alpha = log1p(-s->beta[t]);
    *beta = -s->T * log_alpha;
    *one_minus_alpha_bar = -expm1(log(s->alpha_bar[t - 1]) + (x - (t - 1)) * log_alpha);
}

// (R) Euler-Maruyama on the reverse VP-SDE (with the 1/2 the slide drops, see Step 1), from u down
// to u - du:   dX = beta(u) (1/2 X + grad log p_u(X)) du + sqrt(beta(u)) dW_bar,
// with the score from the denoiser: x_u = sqrt(alpha_bar(u)) x_0 + sqrt(1 - alpha_bar(u)) eps gives
// grad log p_u(x) = -E[eps | x] / sqrt(1 - alpha_bar(u)) ~ -eps_theta / sqrt(1 - alpha_bar(u)).
// beta and 1 - alpha_bar(u) are the model's own (schedule_at): for the linear schedule at
// T = 1000, 1 - alpha_bar(u) is within 1e-3 of Song et al.'s VP-SDE with beta(u) = 0.1 + 19.9 u;
// beta(u) itself is a step function around that line (17% off on the first step).
static void sde_step(real *x, const real *eps, double beta, double one_minus_alpha_bar, double du,
                     size_t n, real *z, Rng *rng) {
    rng_normal_fill(rng, z, n);
    double sd = sqrt(beta * du), score_scale = 1 / sqrt(one_minus_alpha_bar);
    for (size_t k = 0; k < n; k++)
        x[k] = (real)(x[k] + beta * (0.5 * x[k] - eps[k] * score_scale) * du + sd * z[k]);
}

// ---- Lecture 001's additions: classifier-free guidance, DDIM ----------------------------------

// Classifier-free guidance (Ho & Salimans 2022), in the slide's convention
//     eps = eps(x,t,none) + w (eps(x,t,c) - eps(x,t,none)):
// w = 1 is the conditional model, w = 0 the unconditional one; w > 1 extrapolates beyond the
// conditional model (the slide says "interpolates": only 0 <= w <= 1 does). The paper writes
// (1 + w') eps(c) - w' eps(none): its w' is our w - 1. One forward pass of 2B images (x twice, in
// x2) computes both; tt and lab (2B) hold the times and, in their second half, the "no label" row.
static void guided_eps(real *eps, Model *m, const real *x, real *x2, real *tt, int *lab, int B,
                       double w) {
    size_t n = (size_t)B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w;
    memcpy(x2, x, n * sizeof(real));
    memcpy(x2 + n, x, n * sizeof(real));
    unet_forward(m, x2, tt, lab, 2 * B);
    const real *ec = m->a.pred, *eu = m->a.pred + n;
    for (size_t i = 0; i < n; i++) eps[i] = (real)(eu[i] + w * (ec[i] - eu[i]));
}

// DDIM (Song, Meng & Ermon 2021), lecture 001's "deterministic sampling, fewer steps". From t to
// an earlier t': keep x0_hat, and re-noise it to level t' using the network's eps as the direction
// of the noise, plus fresh noise of variance sigma^2:
//     x_t' = sqrt(alpha_bar_t') x0_hat + sqrt(1 - alpha_bar_t' - sigma^2) eps + sigma z,
//     sigma^2 = eta^2 (1 - alpha_bar_t')/(1 - alpha_bar_t) (1 - alpha_bar_t/alpha_bar_t').
// eta = 0 is a deterministic map from noise to image; eta = 1 with t' = t - 1 is exactly DDPM
// (sigma^2 = beta_tilde_t; without --clip-x0), as the claims check (f) measures.
static void ddim_step(real *x, real *x0_hat, const real *eps, const Schedule *s, int t, int tp,
                      double eta, size_t n, int clip, real *z, Rng *rng) {
    x0_hat_from_eps(x0_hat, x, eps, s->alpha_bar[t], s->one_minus_alpha_bar[t], n, clip);
    double ab = s->alpha_bar[t], abp = s->alpha_bar[tp];
    double omab = s->one_minus_alpha_bar[t], omabp = s->one_minus_alpha_bar[tp];
    double var = eta * eta * omabp / omab * (1 - ab / abp);
    double dir = omabp - var, sd = sqrt(var > 0 ? var : 0);
    double cd = sqrt(dir > 0 ? dir : 0), c0 = sqrt(abp);
    if (sd > 0) rng_normal_fill(rng, z, n);
    for (size_t k = 0; k < n; k++)
        x[k] = (real)(c0 * x0_hat[k] + cd * eps[k] + (sd > 0 ? sd * z[k] : 0));
}

// ---- After the lectures: a second-order solver, DPM-Solver++(2M) ------------------------------

// lambda_t = log(alpha_t / sigma_t), the log signal-to-noise ratio, with alpha_t =
// sqrt(alpha_bar_t) and sigma_t = sqrt(1 - alpha_bar_t): it rises from -5 (t = T) to +inf (t = 0).
static double log_snr(const Schedule *s, int t) {
    return 0.5 * (log(s->alpha_bar[t]) - log(s->one_minus_alpha_bar[t]));
}
// DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095), one step from t to t' < t. Drop the noise
// of (R) and halve its score term: the probability-flow ODE, whose paths carry the same marginals.
// In lambda and with the data prediction x0_hat (eq. 2) it is exactly solvable but for one
// integral (notes/derivations.md):
//     x_t' = (sigma_t'/sigma_t) x_t - alpha_t' (e^{-h} - 1) D,   h = lambda_t' - lambda_t,
// with D = x0_hat taken constant over the step: first order, exactly DDIM with eta = 0. 2M
// corrects D linearly in lambda with the previous step's x0_hat (at tq, h_q = lambda_t -
// lambda_tq, r = h_q / h):   D = (1 + 1/(2r)) x0_hat_t - 1/(2r) x0_hat_tq.
// First order at the first step (tq = 0: no previous x0_hat) and the last (t' = 0: sigma_t' = 0,
// x_0 = D), as the paper recommends for few steps. x0_hat (n) holds x0_hat_tq on entry and
// x0_hat_t on return; d (n) is scratch.
static void dpm2m_step(real *x, real *x0_hat, const real *eps, const Schedule *s, int tq, int t,
                       int tp, size_t n, int clip, real *d) {
    x0_hat_from_eps(d, x, eps, s->alpha_bar[t], s->one_minus_alpha_bar[t], n, clip);  // (2)
    double h = tp > 0 ? log_snr(s, tp) - log_snr(s, t) : INFINITY;
    double ratio = sqrt(s->one_minus_alpha_bar[tp] / s->one_minus_alpha_bar[t]);  // sigma'/sigma
    double c = -sqrt(s->alpha_bar[tp]) * expm1(-h);
    double half_over_r = tq > t && tp > 0 ? 0.5 * h / (log_snr(s, t) - log_snr(s, tq)) : 0;
    for (size_t k = 0; k < n; k++) {
        double D = (1 + half_over_r) * d[k] - half_over_r * x0_hat[k];
        x[k] = (real)(ratio * x[k] + c * D);
        x0_hat[k] = d[k];
    }
}

// ---- The sampling loop, for every sampler -----------------------------------------------------

typedef enum { SAMPLER_DDPM, SAMPLER_DDIM, SAMPLER_SDE, SAMPLER_DPM2M } SamplerKind;
struct SampleOptions {
    SamplerKind kind;
    int steps;         // DDIM / SDE / DPM2M: number of network evaluations (DDPM always uses T)
    double eta;        // DDIM: 0 deterministic, 1 = DDPM's variance
    int clip;          // clip x0_hat to [-1, 1]
    int guided;        // classifier-free guidance on (lecture 001), with weight w
    double w;          // guidance weight
    real *trajectory;  // if not NULL: (2, frames, B, C, H, W): x_t at evenly spaced moments, then
                       // x0_hat (eq. 2) at the same moments: the network's guess, coarse to fine
    int frames;
};

// The SDE sampler's S evaluations are at u = 1 ... 1/T, evenly spaced: S - 1 Euler-Maruyama steps
// of du each, and at u = 1/T (t = 1) the noise-free x0_hat is the sample.
static double sde_du(int T, int S) { return (1.0 - 1.0 / T) / (S - 1); }
// DPM2M's times: evenly spaced in lambda (log_snr) from t = T to t = 1, each the step whose lambda
// is nearest (at least one below the previous, and leaving room for the rest). On the shipped
// model this spacing scores far better than even spacing in t at 10 steps (notes/model.md): the
// solver integrates in lambda, and lambda moves fastest near t = 0.
static int lambda_time(const Schedule *s, int i, int S) {
    double first = log_snr(s, s->T), last = log_snr(s, 1);
    int t = s->T, prev = s->T + 1;
    for (int j = 0; j <= i; j++) {
        double target = S > 1 ? first + (last - first) * j / (S - 1) : first;
        while (t > 1 && log_snr(s, t - 1) <= target) t--;
        int nearest = t > 1 && log_snr(s, t - 1) - target < target - log_snr(s, t) ? t - 1 : t;
        nearest = nearest > prev - 1 ? prev - 1 : nearest;
        prev = nearest < S - j ? S - j : nearest;
    }
    return prev;
}
// When evaluation i of S asks the denoiser: at t = T - i (DDPM), at the i-th of S evenly spaced
// times (DDIM) or lambdas (DPM2M) (i = S gives 0, where they end), or at the fractional time u T
// (SDE).
static double sample_time(const SampleOptions *o, const Schedule *s, int i, int S) {
    int T = s->T;
    if (o->kind == SAMPLER_DDPM) return T - i;
    if (o->kind == SAMPLER_DPM2M) return i < S ? lambda_time(s, i, S) : 0;
    if (o->kind == SAMPLER_DDIM) return T - (int)((int64_t)i * T / S);
    return (1.0 - i * sde_du(T, S)) * T;
}

// eps_theta(x_t, t) as the samplers see it: eps (B,C,H,W) at x (B,C,H,W), time t (one for all B),
// labels (B), guided when asked. x2 (2B,C,H,W) is scratch for guidance.
static void predict_eps(real *eps, Model *m, const real *x, real *x2, double t, const int *label,
                        int B, const SampleOptions *o) {
    size_t n = (size_t)B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w;
    real tt[2 * MAX_BATCH];
    int lab[2 * MAX_BATCH];
    for (int b = 0; b < 2 * B; b++) {
        tt[b] = (real)t;
        lab[b] = b < B ? label[b] : m->cfg.n_classes;
    }
    if (o->guided) {
        guided_eps(eps, m, x, x2, tt, lab, B, o->w);
        return;
    }
    unet_forward(m, x, tt, lab, B);
    memcpy(eps, m->a.pred, n * sizeof(real));
}

// The step function: evaluation i's update of x (n values) with eps = eps_theta(x, sample_time):
// the slide's DDPM step, a DDIM or DPM2M step to the next of the S times, or an Euler-Maruyama
// step of (R). x0_hat receives eq. (2) at this time; z (n) is scratch.
static void sample_update(real *x, real *x0_hat, const real *eps, const Schedule *s,
                          const SampleOptions *o, int i, int S, size_t n, real *z, Rng *rng) {
    int T = s->T;
    double time = sample_time(o, s, i, S), beta, omab;
    int t = (int)time, next = (int)sample_time(o, s, i + 1, S);
    if (o->kind == SAMPLER_DDPM) ddpm_step(x, x0_hat, eps, s, t, n, o->clip, z, rng);
    if (o->kind == SAMPLER_DDIM) ddim_step(x, x0_hat, eps, s, t, next, o->eta, n, o->clip, z, rng);
    if (o->kind == SAMPLER_DPM2M) {
        int previous = i > 0 ? (int)sample_time(o, s, i - 1, S) : 0;
        dpm2m_step(x, x0_hat, eps, s, previous, t, next, n, o->clip, z);
    }
    if (o->kind != SAMPLER_SDE) return;
    schedule_at(s, time / T, &beta, &omab);
    x0_hat_from_eps(x0_hat, x, eps, 1 - omab, omab, n, o->clip);
    if (i == S - 1) memcpy(x, x0_hat, n * sizeof(real));
    else sde_step(x, eps, beta, omab, sde_du(T, S), n, z, rng);
}

// The slide's generation, for B images at once: x (B,C,H,W) receives the samples.
//     x_T ~ N(0, I);  for t = T..1: eps = eps_theta(x_t, t); x_{t-1} = mu_theta + sigma_t z
// DDPM takes the S = T steps t = T - i; the other samplers fewer, through the same step function.
// The model must hold 2B images when guided. progress: a progress line on the terminal.
static void sample_loop(real *x, Model *m, const Schedule *s, const int *label, int B,
                        const SampleOptions *o, Rng *rng, int progress) {
    size_t n = (size_t)B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w;
    real *eps = xmalloc(4 * n * sizeof(real)), *z = eps + n, *x2 = eps + 2 * n;
    real *x0_hat = xcalloc(n, sizeof(real));
    int S = o->kind == SAMPLER_DDPM ? s->T : o->steps;
    rng_normal_fill(rng, x, n);                                                    // x_T ~ N(0, I)
    sample_watch(o, -1, S, x, x0_hat, n, progress);
    for (int i = 0; i < S; i++) {
        predict_eps(eps, m, x, x2, sample_time(o, s, i, S), label, B, o);         // eps_theta
        sample_update(x, x0_hat, eps, s, o, i, S, n, z, rng);                      // x_{t-1}
        sample_watch(o, i, S, x, x0_hat, n, progress);  // trajectory frames, progress line
    }
    free_all(2, eps, x0_hat);
}

// ============================================================================================
// PART II — MAKING IT FAST AND SAFE (skip on a first reading)
// The matrix product and the convolution gradients computed fast, sums and exp that vectorize,
// the loaders and their defences against hostile files, checkpoints, pictures.
// ============================================================================================

// ---- gemm: the matrix product of Step 4, blocked for the caches and the vector registers ----
// C is computed in MR x NR tiles held in vector registers while k runs over a slice of K (Goto &
// van de Geijn 2008): each B vector loaded is used MR times, each A value 2*VL times. B is read by
// panels NR wide (packed when transposed), slices of at most KC rows, blocks of NC columns. Every
// C element is summed in the same order on any thread count. A plain x86 build compiles gemm_tile
// twice (FMA_CLONES) and picks at run time. The picture and the sizes: notes/backprop.md, gemm.
#if (defined(__x86_64__) || defined(__i386__)) && defined(__ELF__) && !defined(__AVX__) && \
    ((defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 6) || __clang_major__ >= 14)
#define FMA_CLONES __attribute__((target_clones("fma", "default")))
#define HAVE_FMA_CLONES 1
#else
#define FMA_CLONES
#define HAVE_FMA_CLONES 0
#endif
#if defined(__GNUC__)
#define ALWAYS_INLINE __attribute__((always_inline))
#if defined(__AVX512F__)
enum { VEC_BYTES = 64 };
#elif defined(__AVX__) || HAVE_FMA_CLONES
enum { VEC_BYTES = 32 };
#else
enum { VEC_BYTES = 16 };
#endif
typedef real vec __attribute__((vector_size(VEC_BYTES)));
typedef real sse_vec __attribute__((vector_size(16)));  // gemm_tile_sse2
#else
#define ALWAYS_INLINE
enum { VEC_BYTES = sizeof(real) };
typedef real vec;
#endif
enum { VL = VEC_BYTES / sizeof(real), MR = VEC_BYTES == 64 ? 8 : 6, NR = 2 * VL };
enum { KC = 256, NC = 256 };  // MR: 2*MR accumulators fit 16 vector registers (32 with AVX-512)

// acc (MR x NR) = A (MR x kc, element (r,k) at a[arow[r] + k*acs]) . B (kc x NR, row k at
// b + brow[k])
ALWAYS_INLINE static inline void gemm_kernel(int kc, const real *a, const long *arow, long acs,
                                             const real *b, const long *brow, vec acc[MR][2]) {
    for (int r = 0; r < MR; r++) {
        acc[r][0] = (vec){0};
        acc[r][1] = (vec){0};
    }
    for (int k = 0; k < kc; k++) {
        vec b0, b1;
        memcpy(&b0, b + brow[k], sizeof b0);
        memcpy(&b1, b + brow[k] + VL, sizeof b1);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {  // unrolled, so that acc stays in registers
            real ar = a[arow[r] + k * acs];
            acc[r][0] += ar * b0;
            acc[r][1] += ar * b1;
        }
    }
}

// B[k0.., j0..] (kc x nc) -> ceil(nc / NR) panels (kc, NR) one after the other, the last one
// zero-padded. The loop order follows B's memory: along its rows, or for a transposed B its
// columns.
static void pack_b(real *bpack, const real *B, long brs, long bcs, int k0, int kc, int j0, int nc) {
    int npanels = (nc + NR - 1) / NR;
    if (nc < npanels * NR)
        memset(bpack + (size_t)(npanels - 1) * kc * NR, 0, (size_t)kc * NR * sizeof(real));
    if (bcs == 1)
        for (int k = 0; k < kc; k++)
            for (int j = 0; j < nc; j++)
                bpack[((size_t)(j / NR) * kc + k) * NR + j % NR] = B[(k0 + k) * brs + j0 + j];
    else
        for (int j = 0; j < nc; j++)
            for (int k = 0; k < kc; k++)
                bpack[((size_t)(j / NR) * kc + k) * NR + j % NR] =
                    B[(k0 + k) * brs + (j0 + j) * bcs];
}
// Where row i of A starts: A + arows[i], or evenly spaced, A + i * ars.
static long a_row(const long *arows, long ars, int i) { return arows ? arows[i] : i * ars; }
// A[i0.., k0..] (rows < MR valid rows, kc columns) -> panel (kc, MR), zero-padded to MR rows
static void pack_a_panel(real *panel, const real *A, const long *arows, long ars, long acs, int i0,
                         int k0, int kc, int rows) {
    memset(panel, 0, (size_t)kc * MR * sizeof(real));
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < kc; k++)
            panel[k * MR + r] = A[a_row(arows, ars, i0 + r) + (k0 + k) * acs];
}
// C tile (rows x cols at c, row stride crs) = or += acc. Whole rows go as two vector stores.
ALWAYS_INLINE static inline void store_tile(real *C, long crs, vec acc[MR][2], int rows,
                                            int cols, int add) {
    for (int r = 0; r < rows; r++) {
        real *c = C + r * crs;
        if (cols == NR) {
            vec c0 = acc[r][0], c1 = acc[r][1], old0, old1;
            if (add) {
                memcpy(&old0, c, sizeof old0);
                memcpy(&old1, c + VL, sizeof old1);
                c0 += old0;
                c1 += old1;
            }
            memcpy(c, &c0, sizeof c0);
            memcpy(c + VL, &c1, sizeof c1);
            continue;
        }
        real tmp[NR];
        memcpy(tmp, &acc[r][0], sizeof(vec));
        memcpy(tmp + VL, &acc[r][1], sizeof(vec));
        for (int j = 0; j < cols; j++) c[j] = add ? c[j] + tmp[j] : tmp[j];
    }
}

#if HAVE_FMA_CLONES
// gemm_kernel and store_tile for a CPU without FMA (nor AVX): NR = 16 columns as two halves of 2
// SSE vectors (32-byte vectors would live in memory there), the same sums in the same order.
static void gemm_tile_sse2(int kc, const real *a, const long *arow, long acs, const real *b,
                           const long *brow, real *C, long crs, int rows, int cols, int add) {
    enum { SL = 16 / sizeof(real) };  // lanes of an SSE vector
    for (int h = 0; h < cols; h += 2 * SL) {
        sse_vec acc[MR][2] = {{{0}}};
        for (int k = 0; k < kc; k++) {
            sse_vec b0, b1;
            memcpy(&b0, b + brow[k] + h, sizeof b0);
            memcpy(&b1, b + brow[k] + h + SL, sizeof b1);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                real ar = a[arow[r] + k * acs];
                acc[r][0] += ar * b0;
                acc[r][1] += ar * b1;
            }
        }
        for (int r = 0; r < rows; r++)
            for (int j = h; j < cols && j < h + 2 * SL; j++) {
                real v = acc[r][(j - h) / SL][(j - h) % SL];
                C[r * crs + j] = add ? C[r * crs + j] + v : v;
            }
    }
}
#endif

// One tile: C (rows x cols at C) = or += A strip . B panel (kc). FMA_CLONES compiles it twice (not
// gemm: with OpenMP its loop body becomes a function of its own, which clang does not clone).
FMA_CLONES
static void gemm_tile(int kc, const real *a, const long *arow, long acs, const real *b,
                      const long *brow, real *C, long crs, int rows, int cols, int add) {
#if HAVE_FMA_CLONES
    if (!__builtin_cpu_supports("fma")) {
        gemm_tile_sse2(kc, a, arow, acs, b, brow, C, crs, rows, cols, add);
        return;
    }
#endif
    vec acc[MR][2];
    gemm_kernel(kc, a, arow, acs, b, brow, acc);
    store_tile(C, crs, acc, rows, cols, add);
}

// gemm, with rows that need not be evenly spaced: row i of A starts at A + arows[i], row k of B
// (N contiguous values) at B + brows[k]; NULL: evenly spaced, by ars, brs. B rows given by brows
// are read in place, up to NR - 1 values past their end (conv2d_image_padded's rows are so).
static void gemm_rows(int M, int N, int K, const real *A, long ars, long acs, const long *arows,
                      const real *B, long brs, long bcs, const long *brows, real *C, long crs,
                      int accumulate) {
    // Packed blocks live on the stack (0.26 MB in float, 0.5 MB in double): nothing allocated.
    _Alignas(64) real bpack[KC * NC];
    _Alignas(64) real apack[MR * KC];
    long packed_rows[KC], strided_rows[KC], packed_arow[MR];  // where the kernel finds rows
    for (int k = 0; k < KC; k++) {
        packed_rows[k] = (long)k * NR;
        strided_rows[k] = k * brs;
    }
    for (int r = 0; r < MR; r++) packed_arow[r] = r;
    if (K == 0) {
        if (!accumulate)
            for (int i = 0; i < M; i++) memset(C + i * crs, 0, N * sizeof(real));
        return;
    }
    int mpanels = (M + MR - 1) / MR, full = M / MR;  // A strips in place; a last short one copied
    int slices = (K + KC - 1) / KC, slice = (K + slices - 1) / slices;  // K in equal slices <= KC
    for (int jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC, npanels = (nc + NR - 1) / NR;
        for (int pc = 0; pc < K; pc += slice) {
            int kc = K - pc < slice ? K - pc : slice;
            int add = accumulate || pc > 0;        // the first K slice overwrites C, unless asked
            int inplace = brows ? npanels : bcs == 1 ? nc / NR : 0;  // B's panels read in place
            if (inplace < npanels)
                pack_b(bpack, B, brs, bcs, pc, kc, jc + inplace * NR, nc - inplace * NR);
            if (full < mpanels)
                pack_a_panel(apack, A, arows, ars, acs, full * MR, pc, kc, M - full * MR);
#pragma omp parallel for schedule(static)
            for (int tile = 0; tile < npanels * mpanels; tile++) {
                int p = tile / mpanels, q = tile % mpanels, i0 = q * MR, j0 = jc + p * NR;
                // panel p read in place, or packed panel p - inplace: each pointer is formed only
                // where it is used (bpack + a negative offset is undefined even if never read)
                const real *b;
                const long *brow;
                if (p >= inplace) {
                    b = bpack + (size_t)(p - inplace) * kc * NR;
                    brow = packed_rows;
                } else if (brows) {
                    b = B + j0;
                    brow = brows + pc;
                } else {
                    b = B + pc * brs + j0;
                    brow = strided_rows;
                }
                int m = M - i0 < MR ? M - i0 : MR, n = N - j0 < NR ? N - j0 : NR;
                real *c = C + i0 * crs + j0;
                long arow[MR];
                for (int r = 0; r < MR; r++) arow[r] = a_row(arows, ars, i0 + r);
                if (q < full) gemm_tile(kc, A + pc * acs, arow, acs, b, brow, c, crs, m, n, add);
                else gemm_tile(kc, apack, packed_arow, MR, b, brow, c, crs, m, n, add);
            }
        }
    }
}
static void gemm(int M, int N, int K, const real *A, long ars, long acs, const real *B, long brs,
                 long bcs, real *C, long crs, int accumulate) {
    gemm_rows(M, N, K, A, ars, acs, NULL, B, brs, bcs, NULL, C, crs, accumulate);
}

// ---- Sums and exp that vectorize ------------------------------------------------------------
// sum_a = sum_i a_i and sum_ab = sum_i a_i (b_i - shift) scale over n values, in double, as 8
// interleaved partial sums added at the end: a fixed order (the same on any thread count) that
// the compiler turns into vector code.
static void lane_sums(const real *a, const real *b, real shift, real scale, long n, double *sum_a,
                      double *sum_ab) {
    double sa[8] = {0}, sab[8] = {0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            sa[l] += a[i + l];
            sab[l] += (double)a[i + l] * ((b[i + l] - shift) * scale);
        }
    for (; i < n; i++) {
        sa[0] += a[i];
        sab[0] += (double)a[i] * ((b[i] - shift) * scale);
    }
    *sum_a = 0;
    *sum_ab = 0;
    for (int l = 0; l < 8; l++) {
        *sum_a += sa[l];
        *sum_ab += sab[l];
    }
}
static double lane_sum(const real *a, long n) {  // sum_i a_i alone
    double sum, unused;
    lane_sums(a, a, 0, 0, n, &sum, &unused);
    return sum;
}

// e^x without a library call, so that SiLU's and softmax's loops vectorize: e^x = 2^n e^r, n =
// round(x / ln 2) (adding and subtracting 1.5 * 2^23 rounds), e^r by Taylor to r^7, 2^n written
// into the exponent bits; x clamped to [-87, 88] (NaN to -87). notes/backprop.md, exp_real. GCC
// vectorizes SiLU's loops only with -fno-trapping-math (make fast): else it turns the clamp into a
// branch around the arithmetic. The values are the same either way.
static real exp_real(real x) {
    if (sizeof(real) == sizeof(double)) return (real)exp(x);
    float xf = x > -87.0f ? (float)x : -87.0f;
    xf = xf < 88.0f ? xf : 88.0f;
    float n = (xf * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = (xf - n * 0.693145752f) - n * 1.42860677e-6f;  // ln 2 in two parts, the first exact
    float p = 1 + r * (1 + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
              r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
}

// ---- The convolution, fast ------------------------------------------------------------------
// The convolutions' scratch: every thread's im2col buffers, a kernel turned by 180 degrees for the
// input gradient, and the weight-gradient slots of conv2d_weight_grad.
enum { DW_SLOTS = 16 };
struct Workspace {
    int threads;
    size_t col_size, rows_size, weight_size;
    real *col, *dcol;  // (threads, col_size) each
    long *rows;        // (threads, rows_size): conv2d_image_padded's row offsets
    real *flipped;     // (weight_size)
    real *partial;     // (DW_SLOTS, weight_size)
    real *wino_u;      // (2 weight_size): the filter transform of conv2d_winograd
    int winograd;      // 1: 3x3 stride-1 convolutions by Winograd where it pays (--conv direct: 0)
};
static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
static real *thread_col(const Workspace *ws) {
    return ws->col + (size_t)thread_id() * ws->col_size;
}
static real *thread_dcol(const Workspace *ws) {
    return ws->dcol + (size_t)thread_id() * ws->col_size;
}
static long *thread_rows(const Workspace *ws) {
    return ws->rows + (size_t)thread_id() * ws->rows_size;
}

// im2col (Step 4's im2col_reference). Stride 1: row (c, ky, kx) is col[p] = inp[p + sy W + sx],
// one long copy, then zeros outside the image and in the wrapped column (notes/backprop.md).
static void im2col(real *col, const real *inp, int C, int H, int W, int K, int stride) {
    int OH = conv_out_size(H, K, stride), OW = conv_out_size(W, K, stride), pad = K / 2;
    if (stride != 1) {
        im2col_reference(col, inp, C, H, W, K, stride);
        return;
    }
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                real *row = col + (size_t)((c * K + ky) * K + kx) * OH * OW;
                const real *img = inp + (size_t)c * H * W;
                int sy = ky - pad, sx = kx - pad;
                int y0 = sy < 0 ? -sy : 0, y1 = sy > 0 ? H - sy : H;  // rows that read the image
                int p0 = y0 * W + (sx < 0 ? -sx : 0), p1 = y1 * W - (sx > 0 ? sx : 0);
                if (p0 > H * W) p0 = H * W;  // images smaller than the kernel: nothing to copy
                if (p1 < p0) p1 = p0;
                memset(row, 0, p0 * sizeof(real));
                memcpy(row + p0, img + p0 + sy * W + sx, (p1 - p0) * sizeof(real));
                memset(row + p1, 0, (H * W - p1) * sizeof(real));
                if (sx == 0) continue;
                for (int oy = y0; oy < y1; oy++) row[oy * W + (sx < 0 ? 0 : W - 1)] = 0;  // wrapped
            }
}

// A stride-1 convolution without col: on the zero-padded image xp (C, H+2p, W+2p), p = K/2, row
// (c, ky, kx) of col at grid position q = y Wp + x is the run xp_c[q + ky Wp + kx], which gemm_rows
// reads in place (notes/backprop.md, "Stride-1 convolutions without col").
// inp (C,H,W) -> xp (C,Hp,Wp) and rows (C*K*K): where col's rows start in xp. Zeros follow xp for
// what gemm_rows reads past a row's end.
static void pad_image(real *xp, long *rows, const real *inp, int C, int H, int W, int K) {
    int p = K / 2, Wp = W + 2 * p, Hp = H + 2 * p, KK = K * K;
    memset(xp, 0, ((size_t)C * Hp * Wp + NR + K) * sizeof(real));
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            memcpy(xp + ((size_t)c * Hp + y + p) * Wp + p, inp + ((size_t)c * H + y) * W,
                   W * sizeof(real));
    for (int r = 0; r < C * KK; r++) rows[r] = (long)r / KK * Hp * Wp + r % KK / K * Wp + r % K;
}
// out (C,H,W) -> grid (C,H,Wp): each row followed by Wp - W zeros
static void to_grid(real *grid, const real *out, int C, int H, int W, int Wp) {
    for (int i = 0; i < C * H; i++) {
        memcpy(grid + (size_t)i * Wp, out + (size_t)i * W, W * sizeof(real));
        memset(grid + (size_t)i * Wp + W, 0, (Wp - W) * sizeof(real));
    }
}
// One image: out (OC,H,W) = [out +] W . col(inp). With accumulate, the grid starts as out, so that
// gemm adds to it as it would to out (the same rounding).
static void conv2d_image_padded(real *out, const real *inp, const real *weight, int C, int H,
                                int W, int OC, int K, int accumulate, const Workspace *ws) {
    int Wp = W + K / 2 * 2, N = H * Wp;
    real *xp = thread_col(ws), *grid = thread_dcol(ws);  // xp (C,Hp,Wp), grid (OC,H,Wp)
    long *rows = thread_rows(ws);
    pad_image(xp, rows, inp, C, H, W, K);
    if (accumulate) to_grid(grid, out, OC, H, W, Wp);
    gemm_rows(OC, N, C * K * K, weight, C * K * K, 1, NULL, xp, 0, 1, rows, grid, N, accumulate);
    for (int i = 0; i < OC * H; i++)
        memcpy(out + (size_t)i * W, grid + (size_t)i * Wp, W * sizeof(real));
}

// Winograd F(2x2, 3x3), a 3x3 convolution with 16 multiplies per 2x2 outputs instead of 36 (Lavin &
// Gray 2016): Y = A^T [(G g G^T) .* (B^T d B)] A for each 4x4 input tile d (stride 2) and 3x3
// filter g; summed over the input channels, the elementwise products become 16 matrix products, one
// per position xi of the 4x4 tile: M_xi (T, OC) = V_xi (T, C) . U_xi (C, OC). Its sums differ from
// the direct ones by rounding only (notes/backprop.md, Winograd: 7e-7 of the largest value).
// The transforms run with the channels last (an image (H, W, C)), so that every one is a loop
// over the C (or OC) channels of a tile, whatever the image size. Used for 3x3 stride-1
// convolutions with C, OC >= 32 (where notes/winograd.c measured a gain), on groups of images
// whose tiles make products ~256 rows long. Returns the images per group, or 0: the direct
// convolution.
static int winograd_group(const Workspace *ws, int C, int H, int W, int OC, int K, int stride) {
    if (!ws->winograd || K != 3 || stride != 1 || C < 32 || OC < 32) return 0;
    size_t th = (H + 1) / 2, tw = (W + 1) / 2, T = th * tw;  // tiles of an image
    size_t in = (2 * th + 2) * (2 * tw + 2) * C, out = 4 * T * OC;  // an image, channels last
    int G = T >= 256 ? 1 : 256 / T;
    while (G > 0 && (16 * C * T * G + G * in + 16 * C > ws->col_size ||
                     16 * OC * T * G + G * out + 8 * OC > ws->col_size))
        G--;  // V and M, and the images channels last, must fit the thread's col and dcol
    return G;
}
// weight (OC,C,3,3) -> U (16,C,OC): G g G^T with G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
static void winograd_filter(real *U, const real *weight, int OC, int C) {
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            const real *g = weight + ((size_t)o * C + c) * 9;
            real t[4][3], u[4][4];
            for (int j = 0; j < 3; j++) {  // G g
                t[0][j] = g[j];
                t[1][j] = (real)0.5 * (g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = (real)0.5 * (g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {  // (G g) G^T
                u[i][0] = t[i][0];
                u[i][1] = (real)0.5 * (t[i][0] + t[i][1] + t[i][2]);
                u[i][2] = (real)0.5 * (t[i][0] - t[i][1] + t[i][2]);
                u[i][3] = t[i][2];
            }
            for (int xi = 0; xi < 16; xi++) U[((size_t)xi * C + c) * OC + o] = u[xi / 4][xi % 4];
        }
}
// B^T applied to four rows d0..d3 of n values (a tile's channels): r0 = d0 - d2, r1 = d1 + d2,
// r2 = d2 - d1, r3 = d1 - d3, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. restrict: GCC
// vectorizes only when it knows that the arrays do not overlap.
static void winograd_combine(real *restrict r0, real *restrict r1, real *restrict r2,
                             real *restrict r3, const real *d0, const real *d1, const real *d2,
                             const real *d3, int n) {
    for (int f = 0; f < n; f++) {
        r0[f] = d0[f] - d2[f];
        r1[f] = d1[f] + d2[f];
        r2[f] = d2[f] - d1[f];
        r3[f] = d1[f] - d3[f];
    }
}
// x (G,C,H,W) -> xt (G,Hp,Wp,C), channels last, at rows and columns from `at` on (the rest of xt
// as it was): the transposition the transforms need.
static void channels_last(real *xt, const real *x, int G, int C, int H, int W, int Hp, int Wp,
                          int at) {
    for (int g = 0; g < G; g++)
        for (int y = 0; y < H; y++)
            for (int px = 0; px < W; px++) {
                real *dst = xt + (((size_t)g * Hp + y + at) * Wp + px + at) * C;
                const real *src = x + ((size_t)g * C * H + y) * W + px;
                for (int c = 0; c < C; c++) dst[c] = src[(size_t)c * H * W];
            }
}
// G images inp (G,C,H,W) -> V (16,G T,C), T = th tw tiles an image (th = ceil(H/2), tw =
// ceil(W/2)): B^T d B for every tile d of the image zero-padded (1 before, 1 or 2 after) and put
// channels last in xp ((G, 2 th + 2, 2 tw + 2, C) and 16 C of scratch).
static void winograd_input(real *V, const real *inp, int G, int C, int H, int W, real *xp) {
    int th = (H + 1) / 2, tw = (W + 1) / 2, Hp = 2 * th + 2, Wp = 2 * tw + 2;
    size_t NT = (size_t)G * th * tw, plane = NT * C, rs = (size_t)Wp * C;
    real *t = xp + (size_t)G * Hp * Wp * C;  // B^T d: row k, column j at t + (4 k + j) C
    memset(xp, 0, (size_t)G * Hp * Wp * C * sizeof(real));
    channels_last(xp, inp, G, C, H, W, Hp, Wp, 1);
    for (size_t f = 0; f < NT; f++) {  // tile f: image f / (th tw), row ty, column tx
        int ty = f / tw % th, tx = f % tw;
        const real *d = xp + ((f / tw / th * Hp + 2 * ty) * Wp + 2 * tx) * C;  // d_ij at i rs + j C
        for (int j = 0; j < 4; j++)  // B^T d: along the rows
            winograd_combine(t + j * C, t + (4 + j) * C, t + (8 + j) * C, t + (12 + j) * C,
                             d + j * C, d + rs + j * C, d + 2 * rs + j * C, d + 3 * rs + j * C, C);
        for (int k = 0; k < 4; k++) {  // (B^T d) B: along the columns, into V_{4k..4k+3}
            real *v = V + 4 * k * plane + f * C;
            winograd_combine(v, v + plane, v + 2 * plane, v + 3 * plane, t + 4 * k * C,
                             t + (4 * k + 1) * C, t + (4 * k + 2) * C, t + (4 * k + 3) * C, C);
        }
    }
}
// A^T m A, A^T = [1 1 1 0; 0 1 -1 -1], for n channels of a tile: m_xi (plane apart) -> the
// tile's outputs (i, k) in y_ik (restrict: as winograd_combine).
static void winograd_untile(real *restrict y00, real *restrict y01, real *restrict y10,
                            real *restrict y11, const real *m, size_t plane, int n) {
    for (int f = 0; f < n; f++) {
        const real *mf = m + f;  // (as m[j plane + f], GCC 12 would not vectorize the loop)
        real a[2][4];            // A^T m
        for (int j = 0; j < 4; j++) {
            real m0 = mf[j * plane], m1 = mf[(4 + j) * plane];
            real m2 = mf[(8 + j) * plane], m3 = mf[(12 + j) * plane];
            a[0][j] = m0 + m1 + m2;
            a[1][j] = m1 - m2 - m3;
        }
        y00[f] = a[0][0] + a[0][1] + a[0][2];  // (A^T m) A
        y01[f] = a[0][1] - a[0][2] - a[0][3];
        y10[f] = a[1][0] + a[1][1] + a[1][2];
        y11[f] = a[1][1] - a[1][2] - a[1][3];
    }
}
// M (16,G T,OC) -> out (G,OC,H,W) = A^T m A + bias, or with bias NULL out += A^T m A: every tile's
// outputs into ys ((G, 2 th, 2 tw, OC), channels last), then turned back to (G,OC,H,W).
static void winograd_output(real *out, const real *M, const real *bias, int G, int OC, int H,
                            int W, real *ys) {
    int th = (H + 1) / 2, tw = (W + 1) / 2, Ho = 2 * th, Wo = 2 * tw;
    size_t NT = (size_t)G * th * tw, plane = NT * OC, rs = (size_t)Wo * OC;
    for (size_t f = 0; f < NT; f++) {
        int ty = f / tw % th, tx = f % tw;
        real *y = ys + ((f / tw / th * Ho + 2 * ty) * Wo + 2 * tx) * OC;
        winograd_untile(y, y + OC, y + rs, y + rs + OC, M + f * OC, plane, OC);
    }
    for (int g = 0; g < G; g++)
        for (int o = 0; o < OC; o++) {
            real *dst = out + ((size_t)g * OC + o) * H * W;
            for (int py = 0; py < H; py++)
                for (int px = 0; px < W; px++) {
                    real v = ys[(((size_t)g * Ho + py) * Wo + px) * OC + o];
                    dst[py * W + px] = bias ? v + bias[o] : dst[py * W + px] + v;
                }
        }
}
// B images: out (B,OC,H,W) = the convolution of inp (B,C,H,W) whose filters U = winograd_filter
// gave, + bias (OC); with bias NULL, out += the convolution. G images at a time (winograd_group),
// the groups in parallel.
static void conv2d_winograd(real *out, const real *inp, const real *U, const real *bias, int B,
                            int C, int H, int W, int OC, int G, const Workspace *ws) {
    int T = (H + 1) / 2 * ((W + 1) / 2);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b += G) {
        int g = B - b < G ? B - b : G, nt = g * T;
        real *V = thread_col(ws), *M = thread_dcol(ws);  // V (16,nt,C), M (16,nt,OC)
        winograd_input(V, inp + (size_t)b * C * H * W, g, C, H, W, V + (size_t)16 * C * nt);
        for (int xi = 0; xi < 16; xi++)
            gemm(nt, OC, C, V + (size_t)xi * nt * C, C, 1, U + (size_t)xi * C * OC, OC, 1,
                 M + (size_t)xi * nt * OC, OC, 0);
        winograd_output(out + (size_t)b * OC * H * W, M, bias, g, OC, H, W,
                        M + (size_t)16 * OC * nt);
    }
}

// The weight gradient by Winograd. M_xi = V_xi . U_xi gives dU_xi = V_xi^T . dM_xi, and dM is
// winograd_output's backward: dm = A dy A^T for each tile's 2x2 output gradient dy; then the
// filter transform's backward, dW = G^T dU G (notes/backprop.md, Winograd).
// d0, d1 (n values each) -> r = A (d0, d1): r0 = d0, r1 = d0 + d1, r2 = d0 - d1, r3 = -d1
// (restrict: as winograd_combine).
static void winograd_spread(real *restrict r0, real *restrict r1, real *restrict r2,
                            real *restrict r3, const real *d0, const real *d1, int n) {
    for (int f = 0; f < n; f++) {
        r0[f] = d0[f];
        r1[f] = d0[f] + d1[f];
        r2[f] = d0[f] - d1[f];
        r3[f] = -d1[f];
    }
}
// dout (G,OC,H,W) -> dM (16,G T,OC): A dy A^T for every tile, dout put channels last in e ((G,
// 2 th, 2 tw, OC), zero past the image, and 8 OC of scratch).
static void winograd_output_grad(real *dM, const real *dout, int G, int OC, int H, int W,
                                 real *e) {
    int th = (H + 1) / 2, tw = (W + 1) / 2, Ho = 2 * th, Wo = 2 * tw;
    size_t NT = (size_t)G * th * tw, plane = NT * OC, rs = (size_t)Wo * OC;
    real *t = e + (size_t)G * Ho * Wo * OC;  // A dy: row i, column s at t + (2 i + s) OC
    if (Ho > H || Wo > W) memset(e, 0, (size_t)G * Ho * Wo * OC * sizeof(real));
    channels_last(e, dout, G, OC, H, W, Ho, Wo, 0);
    for (size_t f = 0; f < NT; f++) {
        int ty = f / tw % th, tx = f % tw;
        // the tile's output gradient dy_rs at dy + r rs + s OC
        const real *dy = e + ((f / tw / th * Ho + 2 * ty) * Wo + 2 * tx) * OC;
        for (int s = 0; s < 2; s++)  // A dy: along the rows
            winograd_spread(t + s * OC, t + (2 + s) * OC, t + (4 + s) * OC, t + (6 + s) * OC,
                            dy + s * OC, dy + rs + s * OC, OC);
        for (int i = 0; i < 4; i++) {  // (A dy) A^T: along the columns, into dM_{4i..4i+3}
            real *m = dM + 4 * i * plane + f * OC;
            winograd_spread(m, m + plane, m + 2 * plane, m + 3 * plane, t + 2 * i * OC,
                            t + (2 * i + 1) * OC, OC);
        }
    }
}
// dU (16,C,OC) -> dweight (OC,C,3,3) += G^T dU G, G as in winograd_filter
static void winograd_filter_grad(real *dweight, const real *dU, int OC, int C) {
    static const real G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            real t[3][4], *dw = dweight + ((size_t)o * C + c) * 9;
            for (int a = 0; a < 3; a++)  // G^T dU
                for (int j = 0; j < 4; j++) {
                    t[a][j] = 0;
                    for (int i = 0; i < 4; i++)
                        t[a][j] += G[i][a] * dU[((size_t)(4 * i + j) * C + c) * OC + o];
                }
            for (int a = 0; a < 3; a++)  // (G^T dU) G
                for (int b = 0; b < 3; b++)
                    dw[3 * a + b] += t[a][0] * G[0][b] + t[a][1] * G[1][b] + t[a][2] * G[2][b] +
                                     t[a][3] * G[3][b];
        }
}
// The weight gradient goes by Winograd only from C = 64 (where notes/winograd.c measured a gain:
// 1.3x at 28x28, none with 32 channels) and when dU fits a slot. Returns the group, or 0.
static int winograd_weight_group(const Workspace *ws, int C, int H, int W, int OC, int K,
                                 int stride) {
    if (C < 64 || (size_t)16 * C * OC > ws->weight_size) return 0;
    return winograd_group(ws, C, H, W, OC, K, stride);
}
// dweight += the weight gradient of conv2d_winograd's convolution, G images at a time: group i adds
// its dU into slot i % DW_SLOTS, as conv2d_weight_grad's images do (the same order on any number
// of threads). dU_xi (C, OC) = V_xi^T . dM_xi: gemm reads both in place.
static void conv2d_weight_grad_winograd(real *dweight, const real *dout, const real *inp, int B,
                                        int C, int H, int W, int OC, int G, const Workspace *ws) {
    int T = (H + 1) / 2 * ((W + 1) / 2), groups = (B + G - 1) / G;
    int slots = groups < DW_SLOTS ? groups : DW_SLOTS;
    size_t CO = (size_t)C * OC;
#pragma omp parallel for schedule(static)
    for (int slot = 0; slot < slots; slot++)
        for (int i = slot; i < groups; i += slots) {
            int b = i * G, g = B - b < G ? B - b : G, nt = g * T;
            real *V = thread_col(ws), *dM = thread_dcol(ws);  // V (16,nt,C), dM (16,nt,OC)
            real *dU = ws->partial + (size_t)slot * ws->weight_size;
            winograd_input(V, inp + (size_t)b * C * H * W, g, C, H, W, V + (size_t)16 * C * nt);
            winograd_output_grad(dM, dout + (size_t)b * OC * H * W, g, OC, H, W,
                                 dM + (size_t)16 * OC * nt);
            for (int xi = 0; xi < 16; xi++)
                gemm(C, OC, nt, V + (size_t)xi * nt * C, 1, C, dM + (size_t)xi * nt * OC, OC, 1,
                     dU + xi * CO, OC, i >= slots);
        }
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < 16 * CO; k++)  // the slots' sum in the order 0, 1, ... (into slot 0)
        for (int s = 1; s < slots; s++) ws->partial[k] += ws->partial[s * ws->weight_size + k];
    winograd_filter_grad(dweight, ws->partial, OC, C);
}

// dW += sum_b dout_b . col_b^T. Image b adds its term into slot b % DW_SLOTS; the slots run in
// parallel and are summed in the order 0, 1, 2, ...: every sum has the same order whatever the
// number of threads, so the result does not depend on it. db += sum_b sum_p dout_b (NULL: none).
static void conv2d_weight_grad(real *dweight, real *dbias, const real *dout, const real *inp, int B,
                               int C, int H, int W, int OC, int K, int stride,
                               const Workspace *ws) {
    int N = conv_out_size(H, K, stride) * conv_out_size(W, K, stride), CKK = C * K * K;
    int slots = B < DW_SLOTS ? B : DW_SLOTS, G = winograd_weight_group(ws, C, H, W, OC, K, stride);
#pragma omp parallel for schedule(static)
    for (int o = 0; o < (dbias ? OC : 0); o++)
        for (int b = 0; b < B; b++) dbias[o] += (real)lane_sum(dout + ((size_t)b * OC + o) * N, N);
    if (G) {
        conv2d_weight_grad_winograd(dweight, dout, inp, B, C, H, W, OC, G, ws);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int slot = 0; slot < slots; slot++)
        for (int b = slot; b < B; b += slots) {
            const real *x = inp + (size_t)b * C * H * W, *cols = x, *dy = dout + (size_t)b * OC * N;
            // dW_b = dout . col^T, computed transposed, dW_b^T (CKK, OC) = col . dout^T: then gemm
            // reads the big operand (col) in place, and copies only the small one (dout^T).
            real *slot_sum = ws->partial + (size_t)slot * ws->weight_size;
            // col's rows in the padded image, dout on the grid, when its extra columns cost little
            if (stride == 1 && K > 1 && W >= 8 * K) {
                int Wp = W + K / 2 * 2, Np = H * Wp;
                real *xp = thread_col(ws), *grid = thread_dcol(ws);
                long *rows = thread_rows(ws);
                pad_image(xp, rows, x, C, H, W, K);
                to_grid(grid, dy, OC, H, W, Wp);  // zeros where the grid's outputs are thrown away
                gemm_rows(CKK, OC, Np, xp, 0, 1, rows, grid, 1, Np, NULL, slot_sum, OC, b >= slots);
                continue;
            }
            if (K > 1) {
                real *col = thread_col(ws);
                im2col(col, x, C, H, W, K, stride);
                cols = col;
            }
            gemm(CKK, OC, N, cols, N, 1, dy, 1, N, slot_sum, OC, b >= slots);
        }
    // dW += the slots' sum in the order 0, 1, ... (into slot 0), transposed back to (OC, CKK).
#pragma omp parallel for schedule(static)
    for (int k = 0; k < CKK; k++) {
        real *sum = ws->partial + (size_t)k * OC;
        for (int s = 1; s < slots; s++) {
            const real *p = ws->partial + (size_t)s * ws->weight_size + (size_t)k * OC;
            for (int o = 0; o < OC; o++) sum[o] += p[o];
        }
        for (int o = 0; o < OC; o++) dweight[(size_t)o * CKK + k] += sum[o];
    }
}

// The input gradient of a stride-1 convolution is a convolution of dout with the kernel turned by
// 180 degrees, channel axes swapped: flipped[c][o][ky][kx] = W[o][c][K-1-ky][K-1-kx], dinp +=
// flipped . col(dout), inner size OC K^2 rather than W^T . dout's thin OC (notes/backprop.md).
static void conv2d_input_grad_flipped(real *dinp, const real *dout, const real *weight, int B,
                                      int C, int H, int W, int OC, int K, const Workspace *ws) {
    int N = H * W, KK = K * K;
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < KK; k++)
                ws->flipped[((size_t)c * OC + o) * KK + k] =
                    weight[((size_t)o * C + c) * KK + KK - 1 - k];
    int G = winograd_group(ws, OC, H, W, C, K, 1);
    if (G) {
        winograd_filter(ws->wino_u, ws->flipped, C, OC);
        conv2d_winograd(dinp, dout, ws->wino_u, NULL, B, OC, H, W, C, G, ws);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const real *dy = dout + (size_t)b * OC * N;
        conv2d_image_padded(dinp + (size_t)b * C * N, dy, ws->flipped, OC, H, W, C, K, 1, ws);
    }
}

// y (OC, N) = W . col(x) for one image (conv2d_forward): on the padded grid for stride 1 (no col),
// the image itself for a 1x1 (it is its own col), else through im2col. The same sums each way.
static void conv2d_image(real *y, const real *x, const real *weight, int C, int H, int W, int OC,
                         int K, int stride, const Workspace *ws) {
    int N = conv_out_size(H, K, stride) * conv_out_size(W, K, stride);
    int CKK = C * K * K;
    if (stride == 1 && K > 1) {
        conv2d_image_padded(y, x, weight, C, H, W, OC, K, 0, ws);
    } else if (K == 1) {
        gemm(OC, N, C, weight, C, 1, x, N, 1, y, N, 0);
    } else {
        real *col = thread_col(ws);
        im2col(col, x, C, H, W, K, stride);
        gemm(OC, N, CKK, weight, CKK, 1, col, N, 1, y, N, 0);  // y = W . col
    }
}
// conv2d_forward: out_b = W . col(inp_b) + bias, the images in parallel.
static void conv2d_images(real *out, const real *inp, const real *weight, const real *bias, int B,
                          int C, int H, int W, int OC, int K, int stride, const Workspace *ws) {
    int N = conv_out_size(H, K, stride) * conv_out_size(W, K, stride);
    int G = winograd_group(ws, C, H, W, OC, K, stride);
    if (G) {  // the bias added as the outputs are put in place
        winograd_filter(ws->wino_u, weight, OC, C);
        conv2d_winograd(out, inp, ws->wino_u, bias, B, C, H, W, OC, G, ws);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        real *y = out + (size_t)b * OC * N;
        conv2d_image(y, inp + (size_t)b * C * H * W, weight, C, H, W, OC, K, stride, ws);
        for (int o = 0; o < OC; o++)
            for (int p = 0; p < N; p++) y[o * N + p] += bias[o];
    }
}
// dinp += col2im(W^T . dout), image by image (a 1x1 convolution needs no col2im).
static void conv2d_input_grad_plain(real *dinp, const real *dout, const real *weight, int B, int C,
                                    int H, int W, int OC, int K, int stride, const Workspace *ws) {
    int N = conv_out_size(H, K, stride) * conv_out_size(W, K, stride);
    int CKK = C * K * K;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const real *dy = dout + (size_t)b * OC * N;
        real *dx = dinp + (size_t)b * C * H * W;
        if (K == 1 && stride == 1) {
            gemm(C, N, OC, weight, 1, CKK, dy, N, 1, dx, N, 1);  // dx += W^T . dout
            continue;
        }
        real *dcol = thread_dcol(ws);
        gemm(CKK, N, OC, weight, 1, CKK, dy, N, 1, dcol, N, 0);  // dcol = W^T . dout
        col2im(dx, dcol, C, H, W, K, stride);
    }
}
// dinp += the input gradient (conv2d_backward): by the flipped kernel for stride 1, else
// conv2d_input_grad_plain.
static void conv2d_input_grad(real *dinp, const real *dout, const real *weight, int B, int C,
                              int H, int W, int OC, int K, int stride, const Workspace *ws) {
    if (stride == 1 && K > 1)
        conv2d_input_grad_flipped(dinp, dout, weight, B, C, H, W, OC, K, ws);
    else
        conv2d_input_grad_plain(dinp, dout, weight, B, C, H, W, OC, K, stride, ws);
}


// ---- GroupNorm and SiLU over the batch, on all threads ----------------------------------------
// Step 4's groupnorm_group_forward on every (image, group) in parallel, and (act not NULL) SiLU on
// the group's output in the same pass: act = SiLU(GN(inp)), as ResBlocks and the output layer use
// them. inp (B,C,N) -> gn->out, act (B,C,N), gn->mean, gn->rstd (B,G).
static void groupnorm_silu_forward(real *act, GroupNormActs *gn, const real *inp, const real *gamma,
                                   const real *beta, int B, int C, int N, int G) {
    int cg = C / G;
    size_t n = (size_t)cg * N;  // one group of one image; group (b, g) starts at (b G + g) n
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            size_t at = ((size_t)b * G + g) * n;
            groupnorm_group_forward(gn->out + at, gn->mean + b * G + g, gn->rstd + b * G + g,
                                    inp + at, gamma + g * cg, beta + g * cg, cg, N);
            if (act) silu_forward(act + at, gn->out + at, n);
        }
}
// The backward: dact (not NULL) through SiLU into dgn->out (+=), then GroupNorm's backward from
// dgn->out into dinp, dgamma, dbeta (+=). Groups in parallel, each summing over the images in
// order.
static void groupnorm_silu_backward(real *dinp, real *dgamma, real *dbeta, GroupNormActs *dgn,
                                    const real *dact, const GroupNormActs *gn, const real *inp,
                                    const real *gamma, int B, int C, int N, int G) {
    int cg = C / G;
    size_t n = (size_t)cg * N;
#pragma omp parallel for schedule(static)
    for (int g = 0; g < G; g++)
        for (int b = 0; b < B; b++) {
            size_t at = ((size_t)b * G + g) * n;
            if (dact) silu_backward(dgn->out + at, dact + at, gn->out + at, n);
            groupnorm_group_backward(dinp + at, dgamma + g * cg, dbeta + g * cg, dgn->out + at,
                                     inp + at, gn->mean[b * G + g], gn->rstd[b * G + g],
                                     gamma + g * cg, cg, N);
        }
}
// GroupNorm alone (attention, the checks): inp (B,C,N) -> out (B,C,N), mean, rstd (B,G).
static void groupnorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *gamma,
                              const real *beta, int B, int C, int N, int G) {
    GroupNormActs gn = {out, mean, rstd};
    groupnorm_silu_forward(NULL, &gn, inp, gamma, beta, B, C, N, G);
}
static void groupnorm_backward(real *dinp, real *dgamma, real *dbeta, const real *dout,
                               const real *inp, const real *mean, const real *rstd,
                               const real *gamma, int B, int C, int N, int G) {
    // dout, mean and rstd are only read (no SiLU: nothing is written into dgn)
    GroupNormActs dgn = {(real *)dout, NULL, NULL}, gn = {NULL, (real *)mean, (real *)rstd};
    groupnorm_silu_backward(dinp, dgamma, dbeta, &dgn, NULL, &gn, inp, gamma, B, C, N, G);
}

// ---- Training's log file and progress line ----------------------------------------------------
// Flushes f (sync: to the disk too) and closes it. Returns 0, or the errno of the first failure
// (EIO if it set none): a buffered file's write errors show only here.
static int close_file(FILE *f, int sync) {
    int bad = fflush(f) != 0 || ferror(f) || (sync && fsync(fileno(f)) != 0);
    int err = errno;
    if (fclose(f) != 0 && !bad) err = errno;  // the first failure's errno
    else if (!bad) return 0;
    return err ? err : EIO;
}

// The CSV log of training: one line per step, appended to on --resume.
static FILE *log_open(const char *path, int resume) {
    FILE *log = path ? fopen(path, resume ? "a" : "w") : NULL;
    if (path && !log) die(path, "cannot write: %s", strerror(errno));
    if (log && !resume) fprintf(log, "step,loss,lr,grad_norm,seconds\n");
    return log;
}
static void log_close(FILE *log, const char *path, const char *ckpt) {
    int err = log ? close_file(log, 0) : 0;
    if (err) die(path, "write failed: %s (checkpoint %s saved)", strerror(err), ckpt);
}
static void format_duration(char *out, size_t n, double s) {
    if (s < 0 || s > 1e7) s = 0;
    snprintf(out, n, "%dh%02dm%02ds", (int)(s / 3600), (int)(s / 60) % 60, (int)s % 60);
}

// The progress line: in place on a terminal (every 0.5 s), a line every 10 s in a log.
static void train_progress(const TrainOptions *o, const Config *c, int64_t done, double loss, int B,
                           double elapsed, int tty) {
    double rate = done / elapsed;
    double total = o->steps ? (double)o->steps : 60 * o->minutes * rate;
    char el[32], eta[32];
    format_duration(el, sizeof el, elapsed);
    format_duration(eta, sizeof eta, (total - done) / rate);
    fprintf(stderr, "%sstep %" PRId64 "/%.0f  loss %.4f  %.1f img/s of %dx%dx%d  elapsed %s  "
            "eta %s%s", tty ? "\r" : "", done, floor(total), loss, rate * B, c->img_c, c->img_h,
            c->img_w, el, eta, tty ? "   " : "\n");
}

// ---- Memory: the model's buffers, carved once -----------------------------------------------

enum { MAX_TENSORS = 192 };
typedef struct {
    char name[40];
    size_t offset, size;
    int fan_in;
    TensorKind kind;
    char shape[24];  // e.g. "(32,64,3,3)", for `info`
} TensorInfo;
struct Layout {
    real *base;
    size_t used;
    int n;
    TensorInfo info[MAX_TENSORS];
};

static void layout_begin(Layout *L, real *base) {
    *L = (Layout){.base = base};
}
static void last_shape(Layout *L, int rows, int cols) {
    snprintf(L->info[L->n - 1].shape, sizeof L->info[0].shape, "(%d,%d)", rows, cols);
}
static real *take(Layout *L, const char *name, size_t n, int fan_in, TensorKind kind) {
    if (L->n == MAX_TENSORS) die("layout", "more than %d tensors", MAX_TENSORS);
    if (n > SIZE_MAX / sizeof(real) - L->used)
        die("memory", "the network's arrays are more than this system can address");
    TensorInfo *ti = &L->info[L->n++];
    *ti = (TensorInfo){.offset = L->used, .size = n, .fan_in = fan_in, .kind = kind};
    snprintf(ti->name, sizeof ti->name, "%s", name);
    snprintf(ti->shape, sizeof ti->shape, "(%zu)", n);
    real *p = L->base ? L->base + L->used : NULL;
    L->used += n;
    return p;
}

// take() with a name made of two parts, e.g. "d1." + "gn1.g"
static real *take2(Layout *L, const char *a, const char *b, size_t n, int fan_in, TensorKind k) {
    char name[40];
    snprintf(name, sizeof name, "%s%s", a, b);
    return take(L, name, n, fan_in, k);
}

static ConvParams take_conv2(Layout *L, const char *a, const char *b, int cout, int cin, int K) {
    char prefix[24];  // a two-part name, e.g. "d1" + ".conv1"
    snprintf(prefix, sizeof prefix, "%s%s", a, b);
    return take_conv(L, prefix, cout, cin, K);
}
static ConvParams take_conv(Layout *L, const char *prefix, int cout, int cin, int K) {
    ConvParams c;
    int fan_in = cin * K * K;
    c.w = take2(L, prefix, ".w", (size_t)cout * fan_in, fan_in, KIND_WEIGHT);
    if (K == 1) last_shape(L, cout, cin);
    else snprintf(L->info[L->n - 1].shape, 24, "(%d,%d,%d,%d)", cout, cin, K, K);
    c.b = take2(L, prefix, ".b", (size_t)cout, fan_in, KIND_BIAS);
    return c;
}

// GroupNorm (C), q (C,C,1,1), k, v (C,D), proj (C,C,1,1), named name.gn.g, ...
static AttnParams take_attention(Layout *L, const char *name, int C, int D) {
    AttnParams a;
    a.gn_g = take2(L, name, ".gn.g", C, 0, KIND_GN_GAIN);
    a.gn_b = take2(L, name, ".gn.b", C, 0, KIND_GN_SHIFT);
    a.q = take_conv2(L, name, ".q", C, C, 1);
    a.k = take_conv2(L, name, ".k", C, D, 1);
    a.v = take_conv2(L, name, ".v", C, D, 1);
    a.proj = take_conv2(L, name, ".proj", C, C, 1);
    return a;
}
static ResBlockParams take_resblock(Layout *L, const char *name, int cin, int cout, int temb) {
    ResBlockParams r = {.cin = cin, .cout = cout};
    r.gn1_g = take2(L, name, ".gn1.g", cin, 0, KIND_GN_GAIN);
    r.gn1_b = take2(L, name, ".gn1.b", cin, 0, KIND_GN_SHIFT);
    r.conv1 = take_conv2(L, name, ".conv1", cout, cin, 3);
    r.temb = take_conv2(L, name, ".temb", cout, temb, 1);
    r.gn2_g = take2(L, name, ".gn2.g", cout, 0, KIND_GN_GAIN);
    r.gn2_b = take2(L, name, ".gn2.b", cout, 0, KIND_GN_SHIFT);
    r.conv2 = take_conv2(L, name, ".conv2", cout, cout, 3);
    if (cin != cout) r.skip = take_conv2(L, name, ".skip", cout, cin, 1);
    return r;
}

static real *take_act(Layout *L, size_t n) { return take(L, "act", n, 0, KIND_WEIGHT); }

static GroupNormActs take_gn_acts(Layout *L, size_t n, int B, int G) {
    GroupNormActs g;
    g.out = take_act(L, n);
    g.mean = take_act(L, (size_t)B * G);
    g.rstd = take_act(L, (size_t)B * G);
    return g;
}

static ResBlockActs take_resblock_acts(Layout *L, real *in, int cin, int cout, int H, int W, int B,
                                       int G) {
    size_t N = (size_t)H * W;
    ResBlockActs a = {.cin = cin, .cout = cout, .H = H, .W = W, .in = in};
    a.gn1 = take_gn_acts(L, B * cin * N, B, G);
    a.act1 = take_act(L, B * cin * N);
    a.tproj = take_act(L, (size_t)B * cout);
    a.h1 = take_act(L, B * cout * N);
    a.gn2 = take_gn_acts(L, B * cout * N, B, G);
    a.act2 = take_act(L, B * cout * N);
    a.skip = cin != cout ? take_act(L, B * cout * N) : NULL;
    a.out = take_act(L, B * cout * N);
    return a;
}

static void acts_layout(Acts *a, Layout *L, real *base, const Config *c, int B) {
    layout_begin(L, base);
    int H = c->img_h, W = c->img_w, G = c->groups, ch1 = c->ch1, ch2 = c->ch2;
    size_t N = (size_t)H * W, N2 = N / 4, N4 = N / 16, e = (size_t)B * c->temb;
    a->x = take_act(L, B * c->img_c * N);
    a->t = take_act(L, B);
    a->sin_emb = take_act(L, (size_t)B * c->tdim);
    a->t1 = take_act(L, e);
    a->t1_act = take_act(L, e);
    a->emb = take_act(L, e);
    a->emb_act = take_act(L, e);
    a->h0 = take_act(L, B * ch1 * N);
    a->d0 = take_resblock_acts(L, a->h0, ch1, ch1, H, W, B, G);
    a->p0 = take_act(L, B * ch1 * N2);
    a->d1 = take_resblock_acts(L, a->p0, ch1, ch2, H / 2, W / 2, B, G);
    a->p1 = take_act(L, B * ch2 * N4);
    a->d2 = take_resblock_acts(L, a->p1, ch2, ch2, H / 4, W / 4, B, G);
    a->m0 = take_resblock_acts(L, a->d2.out, ch2, ch2, H / 4, W / 4, B, G);
    AttnActs *at = &a->at;
    at->C = ch2;
    at->N = (int)N4;
    at->in = a->m0.out;
    at->gn = take_gn_acts(L, B * ch2 * N4, B, G);
    at->q = take_act(L, B * ch2 * N4);
    at->k = take_act(L, B * ch2 * N4);
    at->v = take_act(L, B * ch2 * N4);
    at->p = take_act(L, B * N4 * N4);
    at->o = take_act(L, B * ch2 * N4);
    at->out = take_act(L, B * ch2 * N4);
    real *m1_in = at->out;
    if (c->text) {
        int T = c->max_tokens;
        CrossAttnActs *x = &a->xat;
        a->e = take_act(L, (size_t)B * T * ch2);
        *x = (CrossAttnActs){.C = ch2, .N = (int)N4, .L = T, .D = ch2, .in = at->out};
        x->gn = take_gn_acts(L, B * ch2 * N4, B, G);
        x->q = take_act(L, B * ch2 * N4);
        x->k = take_act(L, (size_t)B * T * ch2);
        x->v = take_act(L, (size_t)B * T * ch2);
        x->p = take_act(L, (size_t)B * N4 * T);
        x->o = take_act(L, B * ch2 * N4);
        x->out = take_act(L, B * ch2 * N4);
        m1_in = x->out;
    }
    a->m1 = take_resblock_acts(L, m1_in, ch2, ch2, H / 4, W / 4, B, G);
    a->cat0 = take_act(L, B * 2 * ch2 * N4);
    a->u0 = take_resblock_acts(L, a->cat0, 2 * ch2, ch2, H / 4, W / 4, B, G);
    a->up0 = take_act(L, B * ch2 * N2);
    a->q0 = take_act(L, B * ch2 * N2);
    a->cat1 = take_act(L, B * 2 * ch2 * N2);
    a->u1 = take_resblock_acts(L, a->cat1, 2 * ch2, ch2, H / 2, W / 2, B, G);
    a->up1 = take_act(L, B * ch2 * N);
    a->q1 = take_act(L, B * ch2 * N);
    a->cat2 = take_act(L, B * (ch2 + ch1) * N);
    a->u2 = take_resblock_acts(L, a->cat2, ch2 + ch1, ch1, H, W, B, G);
    a->ogn = take_gn_acts(L, B * ch1 * N, B, G);
    a->oact = take_act(L, B * ch1 * N);
    a->pred = take_act(L, B * c->img_c * N);
}

static const char *config_check(const Config *c) {
    if (c->img_c != 1 && c->img_c != 3 && c->img_c != 4)  // 4: latents (notes/latent.c)
        return "image channels must be 1 (gray), 3 (RGB) or 4 (an autoencoder's latents)";
    if (c->img_h < 4 || c->img_w < 4 || c->img_h % 4 || c->img_w % 4 || c->img_h > 256 ||
        c->img_w > 256)
        return "image height and width must be multiples of 4 in 4..256";
    if (c->groups < 1 || c->ch1 < 1 || c->ch2 < 1 || c->ch1 % c->groups || c->ch2 % c->groups ||
        c->ch1 > 1024 || c->ch2 > 1024)
        return "channel widths must be positive multiples of the GroupNorm groups (at most 1024)";
    if (c->tdim < 2 || c->tdim % 2 || c->tdim > 4096 || c->temb < 1 || c->temb > 4096)
        return "bad time-embedding sizes";
    if (c->n_classes < 1 || c->n_classes > 1000 || (c->cond != 0 && c->cond != 1))
        return "bad class settings";
    if ((c->text != 0 && c->text != 1) || (c->text && (!c->cond || c->vocab < 2 ||
        c->vocab > 4096 || c->max_tokens < 2 || c->max_tokens > 16)))
        return "bad text settings (vocabulary 2..4096 tokens, prompts of 2..16)";
    return NULL;
}

static size_t count_params(const Config *c) {
    Params P;
    Layout *L = xmalloc(sizeof(Layout));
    params_layout(&P, L, NULL, c);
    size_t n = L->used;
    free(L);
    return n;
}

// The convolution scratch: inputs have at most ch2 + wide channels, outputs at most wide, so the
// largest col is (ch2 + wide) x 9 x H W, the largest weight wide x (ch2 + wide) x 9. A col buffer
// also holds a padded image, C (H+2)(W+2) + NR + 3, or a grid, OC H (W+2): images are >= 4x4.
static void workspace_create(Workspace *ws, const Config *c) {
    int wide = c->ch1 > c->ch2 ? c->ch1 : c->ch2;
    if (wide < c->img_c) wide = c->img_c;  // a 3-channel image on widths of 1 or 2
    ws->threads = 1;
#ifdef _OPENMP
    ws->threads = omp_get_max_threads();
#endif
    ws->col_size = (size_t)(c->ch2 + wide) * 9 * c->img_h * c->img_w;
    ws->weight_size = (size_t)(c->ch2 + wide) * wide * 9;
    if (ws->weight_size < (size_t)c->temb * c->temb) ws->weight_size = (size_t)c->temb * c->temb;
    ws->col = xcalloc(ws->threads * ws->col_size, sizeof(real));
    ws->dcol = xcalloc(ws->threads * ws->col_size, sizeof(real));
    ws->rows_size = (size_t)(c->ch2 + wide) * 9;
    ws->rows = xcalloc(ws->threads * ws->rows_size, sizeof(long));
    ws->flipped = xcalloc(ws->weight_size, sizeof(real));
    ws->partial = xcalloc((size_t)DW_SLOTS * ws->weight_size, sizeof(real));
    ws->wino_u = xcalloc(2 * ws->weight_size, sizeof(real));  // 16 OC C <= 2 (9 OC C)
    ws->winograd = 1;
}

static Model *model_create(const Config *c, int max_batch) {
    const char *why = config_check(c);
    if (why) die("model", "%s", why);
    Model *m = xcalloc(1, sizeof(Model));
    m->cfg = *c;
    m->max_batch = max_batch;
    m->layout = xmalloc(sizeof(Layout));
    params_layout(&m->p, m->layout, NULL, c);
    m->n_params = m->layout->used;
    real **arrays[] = {&m->params, &m->grads, &m->adam_m, &m->adam_v, &m->ema};
    for (int k = 0; k < 5; k++) *arrays[k] = xcalloc(m->n_params, sizeof(real));
    params_layout(&m->p, m->layout, m->params, c);
    Layout *tmp = xmalloc(sizeof(Layout));
    params_layout(&m->g, tmp, m->grads, c);
    // Every activation is max_batch x a size per image: one image's count tells whether this
    // system can address them all (a 32-bit system cannot count bytes past 4 GB).
    acts_layout(&m->a, tmp, NULL, c, 1);
    if ((double)tmp->used * max_batch * 2 * sizeof(real) > (double)SIZE_MAX)
        die("memory", "a batch of %d needs %.0f MB of activations and their gradients: more than "
            "this system can address", max_batch, 2e-6 * tmp->used * max_batch * sizeof(real));
    m->n_acts = tmp->used * max_batch;
    m->acts = xcalloc(m->n_acts, sizeof(real));
    m->dacts = xcalloc(m->n_acts, sizeof(real));
    acts_layout(&m->a, tmp, m->acts, c, max_batch);
    acts_layout(&m->da, tmp, m->dacts, c, max_batch);
    free(tmp);
    m->ws = xcalloc(1, sizeof(Workspace));
    workspace_create(m->ws, c);
    size_t n4 = (size_t)(c->img_h / 4) * (c->img_w / 4), T = (size_t)c->max_tokens;
    // attention's scratch (2 N^2 at the lowest resolution), cross-attention's (2 N T)
    m->scratch = xcalloc(2 * n4 * (n4 > T ? n4 : T), sizeof(real));
    if (c->text) {  // room for the training prompts, the empty one and 1000 more (sample --prompt)
        m->prompt_tokens = xcalloc((c->n_classes + 1001) * T, sizeof(int));
        m->prompt_len = xcalloc(c->n_classes + 1001, sizeof(int));
        m->tokens = xcalloc((size_t)max_batch * T, sizeof(int));
        m->token_len = xcalloc(max_batch, sizeof(int));
        for (int k = 0; k <= c->n_classes + 1000; k++) m->prompt_len[k] = 1;  // the start token
        m->vocab_words = xcalloc(c->vocab, sizeof(ClassName));
    }
    m->class_names = c->cond ? xcalloc(c->n_classes, sizeof(ClassName)) : NULL;
    return m;
}

static void model_free(Model *m) {
    if (!m) return;
    free_all(5, m->prompt_tokens, m->prompt_len, m->tokens, m->token_len, m->vocab_words);
    free_all(18, m->params, m->grads, m->adam_m, m->adam_v, m->ema, m->acts, m->dacts, m->ws->col,
             m->ws->dcol, m->ws->rows, m->ws->flipped, m->ws->partial, m->ws->wino_u, m->scratch,
             m->class_names, m->ws, m->layout, m);
}

// Initialisation (Step 4 says why): weights, biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), GroupNorm
// 1 and 0, class rows N(0,1); zero for conv2, attn.proj and out_conv. test = 1: all random.
static int zero_init_tensor(const char *name) {
    return strstr(name, ".conv2.") || strstr(name, "attn.proj.") || strstr(name, "out_conv.");
}
static void params_init(Model *m, Rng *rng, int test) {
    for (int i = 0; i < m->layout->n; i++) {
        const TensorInfo *ti = &m->layout->info[i];
        real *p = m->params + ti->offset;
        double bound = ti->fan_in ? 1.0 / sqrt((double)ti->fan_in) : 0;
        for (size_t k = 0; k < ti->size; k++) {
            double v;
            if (ti->kind == KIND_TABLE) v = rng_normal(rng);
            else if (ti->kind == KIND_GN_GAIN) v = test ? 1 + 0.1 * rng_normal(rng) : 1;
            else if (ti->kind == KIND_GN_SHIFT) v = test ? 0.1 * rng_normal(rng) : 0;
            else v = !test && zero_init_tensor(ti->name) ? 0 : bound * (2 * rng_uniform(rng) - 1);
            p[k] = (real)v;
        }
    }
    memcpy(m->ema, m->params, m->n_params * sizeof(real));
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---- Files: written whole or not at all -----------------------------------------------------
// Written to "<path>.tmp", fsync'ed, renamed over <path> (atomic: the old file or the new one,
// never half; notes/errors.md). An existing path that is not a regular file is written directly
// (tmp "").
static void atomic_write_begin(const char *path, char *tmp, size_t tmp_size, FILE **f) {
    struct stat st;
    tmp[0] = 0;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) snprintf(tmp, tmp_size, "%s.tmp", path);
    *f = fopen(tmp[0] ? tmp : path, "wb");
    if (!*f) die(path, "cannot write: %s", strerror(errno));
}
// failed: why the contents could not be made (NULL: they were); the old file stays then too.
static void atomic_write_end(const char *path, const char *tmp, FILE *f, const char *failed) {
    int err = close_file(f, tmp[0] && !failed);
    if ((err || failed) && tmp[0]) remove(tmp);
    if (failed) die(path, "%s", failed);
    if (err) die(path, "write failed: %s", strerror(err));
    if (tmp[0] && rename(tmp, path) != 0) {
        err = errno;
        remove(tmp);
        die(path, "cannot rename %s into place: %s", tmp, strerror(err));
    }
}

// A run killed while writing (kill -9, a power cut) leaves "<path>.tmp", half a file that was
// never renamed into place: the next run that writes path removes it, and says so.
static void remove_stale_tmp(const char *path) {
    char tmp[4200];
    struct stat st;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (stat(tmp, &st) != 0 || !S_ISREG(st.st_mode)) return;
    if (remove(tmp) != 0) die(tmp, "cannot remove stale half-written file: %s", strerror(errno));
    fprintf(stderr, "note: removed %s, half a file left by a run that was killed while writing\n",
            tmp);
}

// ---- Loaders: every size read from a file is checked before it is used ----------------------
static const char *FASHION_DIR = "/usr/share/datasets/fashion-mnist";  // dataset-fashion-mnist
static const char *fashion_class_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
enum { MAX_FILE_BYTES = 512 << 20, MAX_IDX_ITEMS = 10000000, MAX_CLASSES = 1000 };
// A picture may declare at most MAX_IMAGE_MB decoded (width x height x channels: 4096 x 4096
// RGBA), checked on its header before stb_image allocates anything: a 1 MB PNG of zeros can
// declare 16000 x 16000 RGBA, 1 GB.
enum { MAX_IMAGES = 1000000, MAX_IMAGE_MB = 64, DEFAULT_DATA_MB = 1024 };

// Bytes from a file or a folder name may hold a newline or ESC [ 2 J (notes/errors.md): printable
// ASCII and well-formed UTF-8 but U+0080..U+009F are kept, every other byte becomes \xNN.
// s (NUL-terminated) -> out, at most size - 1 bytes and a NUL.
static int utf8_length(const unsigned char *p) {  // 2..4: a UTF-8 character starts at p; else 0
    int n = 0;
    if (*p >= 0xc2 && *p <= 0xdf) n = 2;
    else if (*p >= 0xe0 && *p <= 0xef) n = 3;
    else if (*p >= 0xf0 && *p <= 0xf4) n = 4;
    if (*p == 0xc2 && p[1] < 0xa0) return 0;  // U+0080..U+009F
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;  // cut short (a NUL included)
    return n;
}
static char *escape_bytes(char *out, size_t size, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (*p && o + 5 <= size) {  // room for 4 bytes (\xNN, or a UTF-8 character) and the NUL
        int n = *p >= 0x20 && *p < 0x7f ? 1 : utf8_length(p);
        if (n) {
            memcpy(out + o, p, n);
            o += n;
            p += n;
        } else {
            snprintf(out + o, 5, "\\x%02x", *p++);
            o += 4;
        }
    }
    out[o] = 0;
    return out;
}
static void fputs_escaped(const char *s, FILE *f) {
    size_t size = 4 * strlen(s) + 1;
    char *shown = xmalloc(size);
    fputs(escape_bytes(shown, size, s), f);
    free(shown);
}

// Reads a whole file (at most max_bytes) into memory; *len receives its size. Read to its end,
// not to the size stat reports: /proc's files say 0 bytes and hold more.
static unsigned char *read_file(const char *path, size_t max_bytes, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) die(path, "not a regular file");
    if ((size_t)st.st_size > max_bytes) die(path, "file too large for this program");
    size_t cap = (size_t)st.st_size + 4096, got;
    unsigned char *buf = xmalloc(cap + 1);
    *len = 0;
    while ((got = fread(buf + *len, 1, cap - *len, f)) > 0) {
        *len += got;
        if (*len > max_bytes) die(path, "file too large for this program");
        if (*len < cap) continue;
        cap *= 2;
        buf = realloc(buf, cap + 1);
        if (!buf) die("memory", "cannot allocate %zu bytes for %s", cap + 1, path);
    }
    if (ferror(f)) die(path, "read error: %s", strerror(errno));
    fclose(f);
    return buf;
}

// CRC-32 (the gzip checksum, polynomial 0xEDB88320), bit by bit: slow but tiny (40 MB in ~0.2 s).
// Chained: crc32_update(crc32_update(0, a), b) is the CRC of a followed by b.
static uint32_t crc32_update(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = data;
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}
static uint32_t read_le32(const unsigned char *p) {
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint32_t read_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

// Skips the gzip header (RFC 1952: 10 bytes, then optional fields) of raw (n bytes); returns where
// the deflate data starts, or 0 if the header is cut short or not deflate.
static size_t gzip_data_start(const unsigned char *raw, size_t n) {
    if (n < 18 || raw[2] != 8) return 0;  // 8: deflate, the only method gzip defines
    int flags = raw[3];
    size_t pos = 10;
    if (flags & 4) pos += 2 + (raw[10] | raw[11] << 8);  // FEXTRA
    for (int field = 8; field <= 16; field *= 2) {        // FNAME, FCOMMENT: NUL-terminated
        if (!(flags & field)) continue;
        while (pos < n && raw[pos]) pos++;
        pos++;
    }
    if (flags & 2) pos += 2;  // FHCRC
    return pos + 8 > n ? 0 : pos;
}
// A .gz file is a header, raw deflate data, then the CRC-32 and the size, both checked: a truncated
// download is refused, not read as images. Files without the magic 1f 8b are returned as they are.
static unsigned char *read_maybe_gzip(const char *path, size_t *len) {
    size_t n;
    unsigned char *raw = read_file(path, MAX_FILE_BYTES, &n);
    if (n < 2 || raw[0] != 0x1f || raw[1] != 0x8b) {
        *len = n;
        return raw;
    }
    size_t pos = gzip_data_start(raw, n);
    if (!pos) die(path, "truncated gzip header, or not deflate data");
    uint32_t want_crc = read_le32(raw + n - 8), want_size = read_le32(raw + n - 4);
    size_t packed = n - 8 - pos;
    // deflate expands at most 1032:1, so a trailer claiming more is a lie: refuse before allocating
    if (want_size > (uint32_t)MAX_FILE_BYTES || (double)want_size > 1032.0 * packed + 1024)
        die(path, "gzip data is truncated or corrupt (its trailer claims %u bytes from %zu)",
            want_size, packed);
    int out_len = 0;
    // stb_image 2.27's inflater reads ahead past the last code: it gets the 8 trailer bytes too, or
    // a stream ending near its last byte fails ("bad huffman code": Fashion-MNIST's t10k labels)
    char *out = stbi_zlib_decode_malloc_guesssize_headerflag(
        (const char *)raw + pos, (int)(packed + 8), want_size ? (int)want_size : 1, &out_len, 0);
    free(raw);
    if (!out || (uint32_t)out_len != want_size || crc32_update(0, out, out_len) != want_crc)
        die(path, "gzip data is truncated or corrupt (size or CRC-32 mismatch)");
    *len = (size_t)out_len;
    return (unsigned char *)out;
}

// The idx format of (Fashion-)MNIST: big-endian magic 2051 (images: count, rows, cols, then bytes)
// or 2049 (labels: count, then bytes). Every size is checked against the file before it is used.
static unsigned char *idx_images(const char *path, unsigned char *buf, size_t len, int *n, int *h,
                                 int *w) {
    if (len < 16) die(path, "too short for an idx image file (%zu bytes)", len);
    if (read_be32(buf) != 2051) die(path, "bad idx magic %u (images must be 2051)", read_be32(buf));
    uint32_t cnt = read_be32(buf + 4), rows = read_be32(buf + 8), cols = read_be32(buf + 12);
    if (cnt == 0 || cnt > MAX_IDX_ITEMS)
        die(path, "idx image count %u out of range 1..%d", cnt, MAX_IDX_ITEMS);
    if (rows == 0 || cols == 0 || rows > 1024 || cols > 1024)
        die(path, "idx image size %ux%u out of range", rows, cols);
    if ((uint64_t)cnt * rows * cols > len - 16)
        die(path, "header claims %u images of %ux%u but the file holds only %zu bytes of pixels",
            cnt, rows, cols, len - 16);
    *n = (int)cnt;
    *h = (int)rows;
    *w = (int)cols;
    return buf + 16;
}
static unsigned char *idx_labels(const char *path, unsigned char *buf, size_t len, int *n) {
    if (len < 8) die(path, "too short for an idx label file (%zu bytes)", len);
    if (read_be32(buf) != 2049) die(path, "bad idx magic %u (labels must be 2049)", read_be32(buf));
    uint32_t cnt = read_be32(buf + 4);
    if (cnt == 0 || cnt > MAX_IDX_ITEMS) die(path, "idx label count %u out of range", cnt);
    if ((uint64_t)cnt > len - 8)
        die(path, "header claims %u labels but the file holds only %zu", cnt, len - 8);
    for (uint32_t i = 0; i < cnt; i++)
        if (buf[8 + i] > 9) die(path, "label %d of item %u is not a class 0..9", buf[8 + i], i);
    *n = (int)cnt;
    return buf + 8;
}

// What the caller asks of the loaders: channels (0: 3 if any image has colour, else 1), size (0:
// the images' common size), the most memory the pixels may take (--max-data-mb), where to say
// what the data is before loading it (NULL: nowhere), and whether to decode pixels (0: headers).
typedef struct {
    int channels, size;
    long max_mb;
    FILE *say;
    int pixels;
} DataRequest;

// The default size for images whose shorter sides are all `common` (0: they differ): that, as a
// multiple of 4 (two 2x downsamplings), at most 64 (the time grows with the pixels); else 32.
static int default_size(int common) {
    if (common < 4) return 32;
    return common > 64 ? 64 : common / 4 * 4;
}

// Says what the data set will be (d: its count, shape and classes, no pixels yet; why: how the
// shape was chosen) and refuses it when its pixels would take more than r->max_mb.
static void data_summary(const char *path, const Dataset *d, const DataRequest *r,
                         const char *why) {
    double mb = (double)d->n * d->c * d->h * d->w * sizeof(float) / (1 << 20);
    if (mb > r->max_mb)
        die(path, "%d images of %dx%dx%d take %.0f MB in memory, over the limit of %ld MB (raise "
            "it with --max-data-mb, or choose a smaller --size)", d->n, d->c, d->h, d->w, mb,
            r->max_mb);
    if (!r->say) return;
    fputs("data: ", r->say);
    fputs_escaped(path, r->say);  // names from folders: escaped (escape_bytes)
    fprintf(r->say, ": %d images, %d classes", d->n, d->n_classes);
    for (int k = 0; k < d->n_classes && k < 8; k++) {
        fputs(k ? ", " : " (", r->say);
        fputs_escaped(d->class_names[k], r->say);
    }
    fprintf(r->say, "%s, as %dx%dx%d (%s): %.1f MB in memory\n", d->n_classes > 8 ? ", ...)"
            : d->n_classes ? ")" : " (no class folders: unconditional)", d->c, d->h, d->w, why, mb);
}

// Resizes a square of side s (c channels, rows `stride` pixels apart) to size x size floats in
// [-1, 1] with a box filter: each output pixel is the mean of the input pixels whose centres fall
// inside its footprint (area averaging, which does not alias when shrinking a photo to 28x28);
// when enlarging, the footprint may hold no centre and we take the nearest pixel.
static void resize_box(float *out, const unsigned char *in, int c, int s, int stride, int size) {
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            int y0 = (int)((double)y * s / size), y1 = (int)((double)(y + 1) * s / size);
            int x0 = (int)((double)x * s / size), x1 = (int)((double)(x + 1) * s / size);
            if (y1 <= y0) y1 = y0 + 1;
            if (x1 <= x0) x1 = x0 + 1;
            for (int ch = 0; ch < c; ch++) {
                double sum = 0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) sum += in[((size_t)yy * stride + xx) * c + ch];
                float mean = (float)(sum / ((y1 - y0) * (x1 - x0)));
                out[((size_t)ch * size + y) * size + x] = mean / 127.5f - 1.0f;
            }
        }
}
// One image (c channels, h x w bytes, interleaved) -> (c, size, size) floats: its centre square
// (the model's images are square), resized.
static void image_to_floats(float *out, const unsigned char *img, int c, int h, int w, int size) {
    int s = w < h ? w : h;
    resize_box(out, img + ((size_t)(h - s) / 2 * w + (w - s) / 2) * c, c, s, w, size);
}

// Loads an idx image file (gzipped or not), gray, and, if labels_path is given, its labels
// 0..9, named as Fashion-MNIST's classes if the path says "fashion", else "0".."9".
static Dataset load_idx(const char *images_path, const char *labels_path, const DataRequest *r) {
    Dataset d = {.c = 1};
    size_t len;
    int h, w;
    unsigned char *buf = read_maybe_gzip(images_path, &len);
    unsigned char *px = idx_images(images_path, buf, len, &d.n, &h, &w);
    if (r->channels == 3) die(images_path, "idx images are gray: --channels 3 does not apply");
    d.h = d.w = r->size ? r->size : default_size(h < w ? h : w);
    if (labels_path) {
        int nl;
        unsigned char *lbuf = read_maybe_gzip(labels_path, &len);
        unsigned char *lab = idx_labels(labels_path, lbuf, len, &nl);
        if (nl != d.n) die(labels_path, "%d labels for %d images in %s", nl, d.n, images_path);
        d.labels = xmalloc((size_t)d.n * sizeof(int));
        for (int i = 0; i < d.n; i++) d.labels[i] = lab[i];
        free(lbuf);
        d.n_classes = 10;
        d.class_names = xcalloc(10, sizeof(ClassName));
        for (int k = 0; k < 10; k++)
            if (strstr(images_path, "fashion"))
                snprintf(d.class_names[k], sizeof(ClassName), "%s", fashion_class_names[k]);
            else snprintf(d.class_names[k], sizeof(ClassName), "%d", k);
    }
    data_summary(images_path, &d, r, d.h == h && d.w == w ? "gray, as stored" : "gray, resized");
    d.pixels = r->pixels ? xmalloc((size_t)d.n * d.h * d.w * sizeof(float)) : NULL;
    for (int i = 0; r->pixels && i < d.n; i++)
        image_to_floats(d.pixels + (size_t)i * d.h * d.w, px + (size_t)i * h * w, 1, h, w, d.h);
    free(buf);
    return d;
}

// stb_image 2.27 overruns a buffer on a JPEG Huffman table (DHT) of more than 256 codes (stb
// #1289): walk the segments as stb will (notes/errors.md, "Hostile pictures") and refuse those,
// and frame headers (SOF0..2) over STBI_MAX_DIMENSIONS, with the real reason.
// p: the file's n bytes. Returns NULL if the file is fine (or not a JPEG), else what is wrong.
static const char *jpeg_tables_problem(const unsigned char *p, size_t n) {
    static char size_why[120];
    size_t i = 0;
    while (i < n && p[i] == 0xFF) i++;
    const char *why = NULL;
    if (i < n && p[i] == 0xD8)
        for (i++; i + 4 <= n && !why;) {
            int m = p[i + 1];
            if (p[i] != 0xFF || m == 0x00 || m == 0xFF || (m >= 0xD0 && m <= 0xD8) || m == 0x01) {
                i++;
                continue;
            }
            if (m == 0xD9) break;  // end of image
            size_t end = i + 2 + ((size_t)p[i + 2] << 8 | p[i + 3]);
            int sof = m >= 0xC0 && m <= 0xC2 && i + 9 <= n;  // SOF: precision, height, width
            int h = sof ? p[i + 5] << 8 | p[i + 6] : 0, w = sof ? p[i + 7] << 8 | p[i + 8] : 0;
            if (h > STBI_MAX_DIMENSIONS || w > STBI_MAX_DIMENSIONS) {
                snprintf(size_why, sizeof size_why, "JPEG of %dx%d pixels: over stb_image's limit "
                         "of %d per side", w, h, STBI_MAX_DIMENSIONS);
                why = size_why;
            }
            // DHT: tables of (class/id, 16 counts, symbols); stb reads past `end` if told to
            for (size_t q = i + 4; m == 0xC4 && q < end && q < n && !why;) {
                size_t codes = 0;
                for (size_t k = 1; k <= 16 && q + k < n; k++) codes += p[q + k];
                if (codes > 256) why = "JPEG Huffman table with more than 256 codes";
                q += 17 + codes;
            }
            i = end;
        }
    return why;
}

// PNG (ISO 15948): 8 signature bytes, then chunks (length, 4-letter name, data, CRC), IHDR first,
// IEND last. Walked before stb sees it (notes/errors.md, "Hostile pictures"): a file cut short, a
// name not of 4 letters, an unknown critical chunk, a side over stb's limit, each with its reason.
// p: the file's n bytes (not a PNG: NULL, stb decides). *raw receives what the image data must
// inflate to (0: unknown, stb refuses the header), *idat its compressed size.
static const char *png_problem(const unsigned char *p, size_t n, uint64_t *raw, size_t *idat) {
    static char why[160];
    static const char *known_critical[] = {"IHDR", "PLTE", "IDAT", "IEND", "CgBI"};
    *raw = 0;
    *idat = 0;
    if (n < 8 || memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return NULL;
    for (size_t pos = 8;;) {
        if (n - pos < 12) {
            snprintf(why, sizeof why, "PNG cut short: it ends at byte %zu without its IEND chunk",
                     n);
            return why;
        }
        uint32_t len = read_be32(p + pos);
        const unsigned char *name = p + pos + 4;
        char shown[20] = "";
        for (int k = 0; k < 4; k++) {
            int letter = (name[k] | 0x20) >= 'a' && (name[k] | 0x20) <= 'z';
            size_t at = strlen(shown);
            snprintf(shown + at, sizeof shown - at, letter ? "%c" : "\\x%02x", name[k]);
        }
        if (strlen(shown) != 4) {
            snprintf(why, sizeof why, "corrupt PNG: chunk name '%s' at byte %zu is not 4 letters",
                     shown, pos + 4);
            return why;
        }
        if (len > n - pos - 12) {
            snprintf(why, sizeof why, "PNG cut short: its %s chunk at byte %zu needs %zu bytes, "
                     "the file ends at %zu", shown, pos, (size_t)len + 12, n);
            return why;
        }
        int critical = !(name[0] & 0x20), known = 0;
        for (int k = 0; k < 5; k++) known |= !memcmp(name, known_critical[k], 4);
        if (critical && !known) {
            snprintf(why, sizeof why, "PNG with an unknown critical chunk '%s'", shown);
            return why;
        }
        if (!memcmp(name, "IDAT", 4)) *idat += len;
        if (!memcmp(name, "IEND", 4)) break;
        pos += 12 + (size_t)len;
    }
    if (n < 33 || memcmp(p + 12, "IHDR", 4) || read_be32(p + 8) != 13) return NULL;
    uint32_t w = read_be32(p + 16), h = read_be32(p + 20);
    if (w > STBI_MAX_DIMENSIONS || h > STBI_MAX_DIMENSIONS) {
        snprintf(why, sizeof why, "PNG of %ux%u pixels: over stb_image's limit of %d per side", w,
                 h, STBI_MAX_DIMENSIONS);
        return why;
    }
    // The bits of a pixel: colour type 0 gray, 2 RGB, 3 palette index, 4 gray+alpha, 6 RGBA;
    // depth 1..16. Each row, and with Adam7 interlacing each row of each of the 7 passes (pass k
    // takes every dx-th pixel from x0, every dy-th row from y0), starts with a filter byte.
    int depth = p[24], type = p[25], interlaced = p[28];
    int channels = type == 0 || type == 3 ? 1 : type == 2 ? 3 : type == 4 ? 2 : type == 6 ? 4 : 0;
    if (!channels || depth < 1 || depth > 16 || interlaced > 1) return NULL;
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    for (int k = interlaced ? 0 : 6; k < 7; k++) {
        uint64_t pw = interlaced ? (w + dx[k] - 1 - x0[k]) / dx[k] : w;
        uint64_t ph = interlaced ? (h + dy[k] - 1 - y0[k]) / dy[k] : h;
        if (interlaced && (w <= (uint32_t)x0[k] || h <= (uint32_t)y0[k])) continue;  // empty
        *raw += ph * (1 + (pw * channels * depth + 7) / 8);
    }
    return NULL;
}

// Inflates a PNG's image data into a buffer of exactly the raw bytes its header implies, with
// stb's zlib, which then stops ("output buffer limit") instead of growing: so a decompression
// bomb costs the declared size, not what its data would inflate to. NULL: it fits.
static const char *png_inflate_problem(const unsigned char *p, size_t n, uint64_t raw,
                                       size_t idat) {
    if (raw == 0 || raw > INT32_MAX || idat == 0 || idat > INT32_MAX) return NULL;  // stb refuses
    unsigned char *data = xmalloc(idat), *out = xmalloc((size_t)raw);
    size_t got = 0;
    int iphone = 0;  // Apple's CgBI PNGs hold raw deflate data, without zlib's header
    for (size_t pos = 8; pos + 12 <= n; pos += 12 + (size_t)read_be32(p + pos)) {
        iphone |= !memcmp(p + pos + 4, "CgBI", 4);
        if (!memcmp(p + pos + 4, "IDAT", 4)) memcpy(data + got, p + pos + 8, read_be32(p + pos));
        if (!memcmp(p + pos + 4, "IDAT", 4)) got += read_be32(p + pos);
        if (!memcmp(p + pos + 4, "IEND", 4)) break;
    }
    int len = iphone ? stbi_zlib_decode_noheader_buffer((char *)out, (int)raw, (char *)data,
                                                        (int)idat)
                     : stbi_zlib_decode_buffer((char *)out, (int)raw, (char *)data, (int)idat);
    free_all(2, data, out);
    if (len >= 0 || strcmp(stbi_failure_reason(), "output buffer limit")) return NULL;  // stb's
    return "PNG whose image data inflates past the pixels its header declares (a decompression "
           "bomb): refused before decoding";
}

static int has_image_extension(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    char ext[8] = {0};
    for (int i = 0; i < 7 && dot[1 + i]; i++) ext[i] = (char)(dot[1 + i] | 0x20);  // lower case
    return !strcmp(ext, "png") || !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}
static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Appends to *list (*n paths) the sorted paths in folder `path` of its PNG/JPEG files (dirs = 0)
// or of its subfolders (dirs = 1); hidden ones are skipped.
static void list_folder(const char *path, int dirs, char ***list, int *n) {
    DIR *dir = opendir(path);
    if (!dir) die(path, "cannot read folder: %s", strerror(errno));
    int first = *n;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        char *p = xmalloc(len);
        snprintf(p, len, "%s/%s", path, e->d_name);
        struct stat st;
        int is_dir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
        if (e->d_name[0] == '.' || is_dir != dirs || (!dirs && !has_image_extension(e->d_name))) {
            free(p);
            continue;
        }
        if (*n == MAX_IMAGES) die(path, "more than %d images", MAX_IMAGES);
        if ((*n & (*n - 1)) == 0) *list = realloc(*list, (2 * (size_t)*n + 1) * sizeof(char *));
        if (!*list) die("memory", "cannot list %s", path);
        (*list)[(*n)++] = p;  // the capacity doubles as *n passes each power of 2
    }
    closedir(dir);
    if (*n > first) qsort(*list + first, (size_t)(*n - first), sizeof(char *), compare_strings);
}

// The image files at path (*n of them): the file itself, a flat folder of PNG/JPEGs (no classes),
// or torchvision's ImageFolder layout path/<class>/*.png, whose sorted folder names become classes
// 0, 1, ... (d's labels and class names). Sorted throughout, so that runs are reproducible.
static char **list_images(const char *path, int *n, Dataset *d) {
    struct stat st;
    if (stat(path, &st) != 0) die(path, "cannot open: %s", strerror(errno));
    char **files = NULL, **dirs = NULL;
    int flat = 0, nd = 0;
    if (!S_ISDIR(st.st_mode)) {
        *n = 1;
        files = xmalloc(sizeof(char *));
        files[0] = strcpy(xmalloc(strlen(path) + 1), path);
        return files;
    }
    list_folder(path, 0, &files, &flat);
    list_folder(path, 1, &dirs, &nd);
    *n = flat;
    d->class_names = xcalloc(nd, sizeof(ClassName));
    int *first = xmalloc((nd + 1) * sizeof(int));  // class k: files first[k] .. first[k+1]-1
    for (int k = 0; k < nd; k++) {
        int before = *n;
        list_folder(dirs[k], 0, &files, n);
        const char *name = dirs[k] + strlen(path) + 1;
        if (*n > before) {  // a folder without images is no class
            if (flat) die(files[0], "an image beside class folders (%s): put it into one", dirs[k]);
            if (strlen(name) >= sizeof(ClassName))
                die(dirs[k], "class folder name longer than %zu bytes", sizeof(ClassName) - 1);
            strcpy(d->class_names[d->n_classes], name);
            first[d->n_classes++] = before;
        }
        free(dirs[k]);
    }
    free(dirs);
    if (*n == 0) die(path, "no .png, .jpg or .jpeg files in this folder or its subfolders");
    if (d->n_classes > MAX_CLASSES) die(path, "more than %d class folders", MAX_CLASSES);
    first[d->n_classes] = *n;
    d->labels = d->n_classes ? xmalloc((size_t)*n * sizeof(int)) : NULL;
    for (int k = 0; k < d->n_classes; k++)
        for (int i = first[k]; i < first[k + 1]; i++) d->labels[i] = k;
    free(first);
    return files;
}

// Reads a picture and checks it (no pixel decoded): its size and channels, refusing what
// stb_image cannot read, what would decode to more than MAX_IMAGE_MB, and a PNG whose data would
// inflate past what it declares. Returns the decoded size in MB; *bytes (when not NULL) receives
// the file (*len bytes), so that stb decodes exactly what was checked.
static double image_header(const char *file, int *w, int *h, int *comp, unsigned char **bytes,
                           size_t *len) {
    size_t n;
    unsigned char *p = read_file(file, MAX_FILE_BYTES, &n);
    uint64_t raw = 0;
    size_t idat = 0;
    const char *problem = jpeg_tables_problem(p, n);
    if (!problem) problem = png_problem(p, n, &raw, &idat);
    if (problem) die(file, "not a readable PNG/JPEG image (%s)", problem);
    if (!stbi_info_from_memory(p, (int)n, w, h, comp))
        die(file, "not a readable PNG/JPEG image (%s)", stbi_failure_reason());
    double mb = (double)*w * *h * *comp / (1 << 20);
    if (mb > MAX_IMAGE_MB)
        die(file, "declares %dx%d pixels x %d channels = %.0f MB decoded, over the limit of %d MB "
            "per image (4096x4096 RGBA): refused before decoding; shrink it first", *w, *h, *comp,
            mb, MAX_IMAGE_MB);
    problem = png_inflate_problem(p, n, raw, idat);
    if (problem) die(file, "%s", problem);
    if (bytes) *bytes = p;
    else free(p);
    if (len) *len = n;
    return mb;
}

// Loads one PNG/JPEG, or a folder of them (list_images), at r->channels and r->size (0: chosen
// from the headers, which are all read before any pixel is decoded).
static Dataset load_images(const char *path, const DataRequest *r) {
    Dataset d = {0};
    char **files = list_images(path, &d.n, &d);
    int w, h, comp, colour = 0, common = 0, crops = 0, largest = 0;
    double pixels_by_comp[5] = {0}, most = 0, decoded = 0;  // held in max(comp, d.c) channels
    for (int i = 0; i < d.n; i++) {
        image_header(files[i], &w, &h, &comp, NULL, NULL);
        pixels_by_comp[comp] += (double)w * h;
        colour |= comp >= 3;
        int side = w < h ? w : h;
        common = i == 0 || side == common ? side : 0;  // 0 once two differ
        crops += w != h;
        if ((double)w * h <= most) continue;
        most = (double)w * h;
        largest = i;
    }
    d.c = r->channels ? r->channels : colour ? 3 : 1;
    d.h = d.w = r->size ? r->size : default_size(common);
    for (int k = 1; k <= 4; k++) decoded += pixels_by_comp[k] * (k > d.c ? k : d.c) / (1 << 20);
    if (most * d.c / (1 << 20) > MAX_IMAGE_MB)  // a gray picture in a colour set
        die(files[largest], "%.0f megapixels held as %d channels = %.0f MB decoded, over the limit "
            "of %d MB per image: refused before decoding; shrink it first", most / 1e6, d.c,
            most * d.c / (1 << 20), MAX_IMAGE_MB);
    char why[200];
    int len = snprintf(why, sizeof why, "%s; %s; %.1f MB to decode", r->channels ? "--channels"
                       : colour ? "RGB: some images have colour" : "gray: no image has colour",
                       r->size ? "--size" : common == d.h ? "their size" : common >= 4 ?
                       "from their size: a multiple of 4, at most 64" : common ?
                       "their size is under 4: 32" : "sizes differ: 32", decoded);
    if (crops) snprintf(why + len, sizeof why - len, "; %d not square: centre-cropped", crops);
    data_summary(path, &d, r, why);
    size_t img = (size_t)d.c * d.h * d.w;
    d.pixels = r->pixels ? xmalloc(d.n * img * sizeof(float)) : NULL;
    for (int i = 0; r->pixels && i < d.n; i++) {
        unsigned char *bytes;
        size_t n;
        image_header(files[i], &w, &h, &comp, &bytes, &n);  // again: the file may have changed
        unsigned char *px = stbi_load_from_memory(bytes, (int)n, &w, &h, &comp, d.c);
        free(bytes);
        if (!px) die(files[i], "cannot decode image (%s)", stbi_failure_reason());
        image_to_floats(d.pixels + i * img, px, d.c, h, w, d.h);
        stbi_image_free(px);
    }
    for (int i = 0; i < d.n; i++) free(files[i]);
    free(files);
    return d;
}

// --data: "fashion-mnist" (Debian's copy), a folder holding train-images-idx3-ubyte.gz, an idx
// image file (its labels are read from the matching ...labels-idx1... file when it exists), or
// PNG/JPEG file(s).
static Dataset load_dataset(const char *spec, const DataRequest *r) {
    char images[4096], labels[4096];
    int fashion = !strcmp(spec, "fashion-mnist");
    const char *dir = fashion ? FASHION_DIR : spec;
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", dir);
    struct stat st;
    int have_images = stat(images, &st) == 0;
    if (fashion && !have_images)
        die(images, "Fashion-MNIST not found: install Debian's dataset-fashion-mnist (make deps)");
    if (have_images) return load_idx(images, labels, r);
    const char *base = strrchr(spec, '/');
    base = base ? base + 1 : spec;
    if (!strstr(base, "idx3") && !strstr(base, "-ubyte")) return load_images(spec, r);
    snprintf(labels, sizeof labels, "%s", spec);
    char *p = strstr(labels, "images-idx3");
    if (p) memcpy(p, "labels-idx1", 11);
    int have_labels = p && stat(labels, &st) == 0;
    return load_idx(spec, have_labels ? labels : NULL, r);
}
static void dataset_free(Dataset *d) {
    free_all(3, d->pixels, d->labels, d->class_names);
}

// ---- Prompts: words, the vocabulary, tokens (text models, Step 4's cross-attention) ------------
// A name's words: split on spaces, '_', '-' and '/', lower-cased ("Ankle boot" and "ankle_boot"
// are the two words ankle, boot; "T-shirt/top" is t, shirt, top). Returns how many (at most max;
// -1: more).
static int name_words(const char *name, ClassName *words, int max) {
    int n = 0;
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, " _-/");
        if (len && n == max) return -1;
        if (len) {
            memset(words[n], 0, sizeof(ClassName));  // every byte: the words go into checkpoints
            for (size_t i = 0; i < len && i + 1 < sizeof(ClassName); i++)
                words[n][i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
            n++;
        }
        p += len + (p[len] != 0);
    }
    return n;
}
enum { MAX_PROMPT = 16, START_TOKEN = 0 };  // tokens per prompt, the start token included
static int compare_names(const void *a, const void *b) { return strcmp(a, b); }
// The vocabulary of the class names (n of them): the start token, then every word once, sorted.
// Returns the vocabulary's size, *max_tokens the longest prompt (its start token included).
static int build_vocabulary(ClassName *vocab, ClassName *names, int n, int *max_tokens) {
    int V = 1;
    *max_tokens = 2;
    snprintf(vocab[0], sizeof(ClassName), "<start>");
    for (int k = 0; k < n; k++) {
        ClassName words[MAX_PROMPT - 1];
        int nw = name_words(names[k], words, MAX_PROMPT - 1);
        if (nw < 0) die("--text", "class '%s' has more than %d words", names[k], MAX_PROMPT - 1);
        if (nw + 1 > *max_tokens) *max_tokens = nw + 1;
        for (int i = 0; i < nw; i++) {
            int seen = 0;
            for (int j = 1; j < V && !seen; j++) seen = !strcmp(vocab[j], words[i]);
            if (!seen) memcpy(vocab[V++], words[i], sizeof(ClassName));
        }
    }
    qsort(vocab + 1, V - 1, sizeof(ClassName), compare_names);
    return V;
}
// The prompt `text` as tokens into m's prompt row `row`; a word outside the vocabulary ends the
// program with a one-line error naming it and listing the vocabulary.
static void set_prompt(Model *m, int row, const char *text, const char *flag) {
    const Config *c = &m->cfg;
    ClassName words[MAX_PROMPT];
    int nw = name_words(text, words, c->max_tokens - 1);
    if (nw < 0) die_usage(flag, "'%s' has more than %d words", text, c->max_tokens - 1);
    int *tok = m->prompt_tokens + (size_t)row * c->max_tokens;
    memset(tok, 0, c->max_tokens * sizeof(int));
    for (int i = 0; i < nw; i++) {
        int id = 0;
        for (int j = 1; j < c->vocab && !id; j++) id = strcmp(m->vocab_words[j], words[i]) ? 0 : j;
        if (id) {
            tok[1 + i] = id;
            continue;
        }
        char list[2048] = "";
        for (int j = 1; j < c->vocab && strlen(list) + sizeof(ClassName) + 3 < sizeof list; j++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j > 1 ? ", " : "",
                     m->vocab_words[j]);
        die_usage(flag, "the word '%s' is not in this model's vocabulary (%s)", words[i], list);
    }
    m->prompt_len[row] = 1 + nw;
}
// Each class's prompt, its name's words; label n_classes is the empty prompt.
static void set_class_prompts(Model *m, const char *where) {
    for (int k = 0; k < m->cfg.n_classes; k++) set_prompt(m, k, m->class_names[k], where);
    m->prompt_len[m->cfg.n_classes] = 1;
}

// ---- Checkpoints ----------------------------------------------------------------------------
// One file: a header (magic, format version, size of real, the config, schedule, T, step, RNG
// state, which arrays follow), the arrays (params, EMA, and unless slim the AdamW moments m and
// v), since version 2 the class names of a class-conditional model (n_classes x 64 bytes; version
// 1, still read, was always Fashion-MNIST's), and a CRC-32 of all of it, written atomically.
// Version 3 (text models only; the others still write 2): after the header, the text settings
// (text, vocab, max_tokens, 0), and after the class names the vocabulary's words (vocab x 64).
enum { CKPT_VERSION = 2, CKPT_VERSION_TEXT = 3 };
typedef struct {    // 96 bytes, no padding: written as it is
    char magic[8];  // "DIFFUSNC"
    int32_t version, real_size;
    int32_t config[10];  // Config, field by field
    int32_t schedule, T;
    int64_t step;
    uint64_t rng_state, n_params;
    int32_t has_optimizer, batch;  // batch: the training batch size, so that --resume continues
} CkptHeader;

static void checkpoint_save(const char *path, const Model *m, ScheduleKind sched, int T,
                            int64_t step, const Rng *rng, int batch, int slim) {
    const Config *c = &m->cfg;
    CkptHeader h = {.version = c->text ? CKPT_VERSION_TEXT : CKPT_VERSION,
                    .real_size = (int32_t)sizeof(real),
                    .config = {c->img_c, c->img_h, c->img_w, c->ch1, c->ch2, c->tdim, c->temb,
                               c->groups, c->n_classes, c->cond},
                    .schedule = sched, .T = T, .step = step, .rng_state = rng->state,
                    .n_params = m->n_params, .has_optimizer = !slim, .batch = batch};
    memcpy(h.magic, "DIFFUSNC", 8);
    size_t P = m->n_params * sizeof(real), names = c->cond ? c->n_classes * sizeof(ClassName) : 0;
    int32_t text[4] = {c->text, c->vocab, c->max_tokens, 0};
    const void *part[8] = {&h, text, m->params, m->ema, m->adam_m, m->adam_v, m->class_names,
                           m->vocab_words};
    size_t bytes[8] = {sizeof h, c->text ? sizeof text : 0, P, P, slim ? 0 : P, slim ? 0 : P, names,
                       c->text ? c->vocab * sizeof(ClassName) : 0};
    char tmp[4200];
    FILE *f;
    atomic_write_begin(path, tmp, sizeof tmp, &f);
    uint32_t crc = 0;
    for (int k = 0; k < 8; k++) {
        if (bytes[k] == 0) continue;  // a slim or unconditional model's absent part: maybe NULL
        fwrite(part[k], 1, bytes[k], f);
        crc = crc32_update(crc, part[k], bytes[k]);
    }
    fwrite(&crc, sizeof crc, 1, f);
    atomic_write_end(path, tmp, f, NULL);
}

static Config config_from_ints(const int32_t *v) {  // the checkpoint's Config, field by field
    return (Config){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], 0, 0, 0};
}
static size_t checkpoint_bytes(const CkptHeader *h, const Config *c, size_t P) {  // P parameters
    size_t names = h->version > 1 && h->config[9] ? h->config[8] * sizeof(ClassName) : 0;
    size_t text = c->text ? 16 + c->vocab * sizeof(ClassName) : 0;
    return sizeof *h + (h->has_optimizer ? 4 : 2) * P * sizeof(real) + names + text + 4;
}

// What a checkpoint's header says besides the network: checkpoint_load's answer.
typedef struct {
    ScheduleKind schedule;
    int T, batch, has_optimizer;  // batch: the training batch size
    int64_t step;
    Rng rng;
} CkptInfo;

// Reads and validates a checkpoint. Creates the model (for max_batch images; 0: the batch size
// saved in the checkpoint) and fills params, EMA and, when present, the AdamW moments; *info
// receives the header's fields. Anything wrong ends with a one-line message naming the file.
static Model *checkpoint_load(const char *path, int max_batch, CkptInfo *info) {
    size_t len;
    unsigned char *buf = read_file(path, MAX_FILE_BYTES, &len);
    CkptHeader h;
    if (len < sizeof h + 4) die(path, "not a diffusion.c checkpoint (too short: %zu bytes)", len);
    memcpy(&h, buf, sizeof h);
    Config c = config_from_ints(h.config);
    size_t at = sizeof h;  // where the arrays start
    if (h.version == CKPT_VERSION_TEXT && len >= sizeof h + 20) {
        int32_t text[4];
        memcpy(text, buf + sizeof h, sizeof text);
        c.text = text[0];
        c.vocab = text[1];
        c.max_tokens = text[2];
        at += sizeof text;
    }
    if (memcmp(h.magic, "DIFFUSNC", 8)) die(path, "not a diffusion.c checkpoint (bad magic)");
    // The CRC before the fields: a field that fails it was damaged, not written so (one flipped
    // bit in real_size is no double build). Only when every field is sane and the length is not
    // what they imply is the file said to be cut short.
    uint32_t crc_file;
    memcpy(&crc_file, buf + len - 4, 4);
    int crc_ok = crc32_update(0, buf, len - 4) == crc_file;
    const char *bad = NULL, *bad_config = config_check(&c);
    if (h.version < 1 || h.version > CKPT_VERSION_TEXT) bad = "checkpoint format is not 1, 2 or 3";
    else if ((h.version == CKPT_VERSION_TEXT) != (c.text == 1)) bad = "bad text settings";
    else if (h.real_size != (int32_t)sizeof(real))
        bad = sizeof(real) == 8 ? "written by a float build, this is a double build"
                                : "written by a double build, this is a float build";
    else if (bad_config) bad = bad_config;
    else if (h.schedule < 0 || h.schedule > 2 || h.T < 1 || h.T > 100000 || h.step < 0 ||
             (h.has_optimizer != 0 && h.has_optimizer != 1) || h.batch < 1 || h.batch > MAX_BATCH)
        bad = "bad schedule, T, step or flags in checkpoint header";
    size_t P = bad ? 0 : count_params(&c), want = bad ? 0 : checkpoint_bytes(&h, &c, P);
    if (!bad && h.n_params != P) bad = "header's parameter count differs from its configuration's";
    if (!bad && len != want)
        die(path, "checkpoint is %zu bytes, expected %zu (truncated or corrupt)", len, want);
    if (!crc_ok) die(path, "checkpoint is corrupt (CRC-32 mismatch)");
    if (bad && bad == bad_config) die(path, "bad network configuration in checkpoint: %s", bad);
    if (bad) die(path, "%s", bad);
    size_t narrays = h.has_optimizer ? 4 : 2;
    size_t names = at + narrays * P * sizeof(real);  // where version 2's class names are
    size_t words = names + (c.cond ? c.n_classes * sizeof(ClassName) : 0);  // version 3's words
    for (int k = 0; c.text && k < c.vocab; k++)
        if (!memchr(buf + words + k * sizeof(ClassName), 0, sizeof(ClassName)))
            die(path, "a word of the vocabulary without its terminating NUL");
    for (int k = 0; h.version > 1 && c.cond && k < c.n_classes; k++)
        if (!memchr(buf + names + k * sizeof(ClassName), 0, sizeof(ClassName)))
            die(path, "a class name without its terminating NUL");
    Model *m = model_create(&c, max_batch ? max_batch : h.batch);
    real *arrays[4] = {m->params, m->ema, m->adam_m, m->adam_v};
    for (size_t k = 0; k < narrays; k++)
        memcpy(arrays[k], buf + at + k * P * sizeof(real), P * sizeof(real));
    if (c.cond && h.version > 1)
        memcpy(m->class_names, buf + names, c.n_classes * sizeof(ClassName));
    for (int k = 0; c.cond && h.version == 1 && k < c.n_classes; k++)  // Fashion-MNIST's
        snprintf(m->class_names[k], sizeof(ClassName), "%s", k < 10 ? fashion_class_names[k] : "");
    if (c.text) memcpy(m->vocab_words, buf + words, c.vocab * sizeof(ClassName));
    if (c.text) set_class_prompts(m, path);
    free(buf);
    *info = (CkptInfo){(ScheduleKind)h.schedule, h.T, h.batch, h.has_optimizer, h.step,
                       {h.rng_state}};
    return m;
}

// ---- The training run's books: Ctrl-C, the CSV log, the progress line, checkpoints ------------

// Ctrl-C sets this flag (the one piece of global state: a signal handler can reach nothing else);
// the training loop finishes its step, saves and exits.
static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

// The run's state (train, Step 4).
struct TrainRun {
    const TrainOptions *o;
    const Schedule *s;
    int B, tty;
    FILE *log;
    double t_start, t_print, smooth;
    int64_t first, last_saved;
};

static TrainRun *train_begin(const TrainOptions *o, Model *m, const Dataset *d, const Schedule *s,
                             int64_t step, int B) {
    signal(SIGINT, on_sigint);
    const Config *c = &m->cfg;
    TrainRun *r = xcalloc(1, sizeof *r);
    r->o = o;
    r->s = s;
    r->B = B;
    r->tty = isatty(2);
    r->log = log_open(o->log, o->resume);
    r->t_start = now_seconds();
    r->smooth = -1;
    r->first = r->last_saved = step;
    char kind[48] = "unconditional";
    if (c->cond) snprintf(kind, sizeof kind, "class-conditional on %d classes", c->n_classes);
    if (c->text) snprintf(kind, sizeof kind, "on the words of %d classes: %d tokens", c->n_classes,
                          c->vocab);
    fprintf(stderr, "training %zu parameters on %d images %dx%dx%d (%s), batch %d, schedule %s "
            "T=%d, %s\n", m->n_params, d->n, c->img_c, c->img_h, c->img_w, o->data, B,
            schedule_names[s->kind], s->T, kind);
    return r;
}

// Whether to take another step: not after Ctrl-C, o->steps, or o->minutes.
static int train_goes_on(const TrainRun *r, int64_t step) {
    if (interrupted) return 0;
    if (r->o->steps) return step - r->first < r->o->steps;
    return !r->o->minutes || now_seconds() - r->t_start < 60 * r->o->minutes;
}

// The fraction of this invocation's run done after `step`: of o->steps, or of o->minutes.
static double train_fraction(const TrainRun *r, int64_t step) {
    if (r->o->steps) return (double)(step - r->first) / r->o->steps;
    if (!r->o->minutes) return 0;
    return fmin(1, (now_seconds() - r->t_start) / (60 * r->o->minutes));
}

// After step `step`: stop on a non-finite loss (the last checkpoint stays as it was), else the
// log's line, the progress line (0.5 s on a terminal, 10 s in a log) and a checkpoint when due.
static void train_record(TrainRun *r, const Model *m, int64_t step, double loss, double gnorm,
                         double lr, const Rng *rng) {
    const TrainOptions *o = r->o;
    if (!isfinite(loss))
        die("train", "loss is %g at step %" PRId64 ": stopping; the last checkpoint (%s, step "
                     "%" PRId64 ") is untouched", loss, step, o->ckpt, r->last_saved);
    r->smooth = r->smooth < 0 ? loss : 0.98 * r->smooth + 0.02 * loss;
    double elapsed = now_seconds() - r->t_start;
    if (r->log)
        fprintf(r->log, "%" PRId64 ",%.6f,%g,%.4f,%.3f\n", step, loss, lr, gnorm, elapsed);
    if (elapsed - r->t_print >= (r->tty ? 0.5 : 10) || (o->steps && step - r->first == o->steps)) {
        r->t_print = elapsed;
        train_progress(o, &m->cfg, step - r->first, r->smooth, r->B, elapsed, r->tty);
    }
    if (step - r->last_saved >= o->save_every) {
        checkpoint_save(o->ckpt, m, r->s->kind, r->s->T, step, rng, r->B, 0);
        r->last_saved = step;
    }
}

// The last checkpoint, the log closed, and what happened.
static void train_end(TrainRun *r, const Model *m, int64_t step, const Rng *rng) {
    const TrainOptions *o = r->o;
    if (r->tty) fputc('\n', stderr);
    checkpoint_save(o->ckpt, m, r->s->kind, r->s->T, step, rng, r->B, 0);
    log_close(r->log, o->log, o->ckpt);
    if (interrupted)
        fprintf(stderr, "interrupted: saved %s at step %" PRId64 "; continue with: ./diffusion "
                        "train --resume --ckpt %s\n", o->ckpt, step, o->ckpt);
    else
        fprintf(stderr, "saved %s at step %" PRId64 " (smoothed loss %.4f)\n", o->ckpt, step,
                r->smooth);
    free(r);
}

// ---- Sampling's trajectory and progress line ---------------------------------------------------

// Called by sample_loop before its first step (i = -1, x = x_T) and after each step i (x = the
// next x_t, x0_hat = step i's eq. (2)). Frame k < frames - 1 of the trajectory shows x before step
// k S / (frames - 1) and that step's x0_hat; the last frame, the sample in both rows.
static void sample_watch(const SampleOptions *o, int i, int S, const real *x, const real *x0_hat,
                         size_t n, int progress) {
    int F = o->frames;
    for (int k = 0; o->trajectory && k < F - 1; k++) {
        long at = (long)k * S / (F - 1);
        if (at == i + 1) memcpy(o->trajectory + (size_t)k * n, x, n * sizeof(real));
        if (at == i) memcpy(o->trajectory + (size_t)(F + k) * n, x0_hat, n * sizeof(real));
    }
    for (int row = 1; o->trajectory && i == S - 1 && row <= 2; row++)
        memcpy(o->trajectory + (size_t)(row * F - 1) * n, x, n * sizeof(real));
    if (!progress || !isatty(2)) return;
    if (i == S - 1) fprintf(stderr, "\rsampling: done            \n");
    else if ((i + 1) % 10 == 0) fprintf(stderr, "\rsampling: step %d/%d   ", i + 1, S);
}

// ---- Pictures -------------------------------------------------------------------------------
static void png_write_callback(void *f, void *data, int size) {
    fwrite(data, 1, (size_t)size, f);  // a failure sets ferror(f), which atomic_write_end checks
}

// imgs (n, c, h, w) in [-1, 1] -> bytes 0..255 in a PNG grid of `cols` columns with 2-pixel gaps,
// each image scaled up by `scale` (nearest neighbour: 28x28 is too small to see), written
// atomically.
static void write_image_grid(const char *path, const real *imgs, int n, int cols, int c, int h,
                             int w, int scale) {
    int rows = (n + cols - 1) / cols, gap = 2, comp = c == 1 ? 1 : 3;
    int W = cols * (w * scale + gap) + gap, H = rows * (h * scale + gap) + gap;
    unsigned char *px = xmalloc((size_t)W * H * comp);
    memset(px, 255, (size_t)W * H * comp);
    for (int i = 0; i < n; i++) {
        int ox = gap + (i % cols) * (w * scale + gap), oy = gap + (i / cols) * (h * scale + gap);
        for (int y = 0; y < h * scale; y++)
            for (int x = 0; x < w * scale; x++)
                for (int ch = 0; ch < comp; ch++) {
                    size_t at =
                        (((size_t)i * c + (c == 1 ? 0 : ch)) * h + y / scale) * w + x / scale;
                    double v = (imgs[at] + 1) * 127.5;  // NaN (a diverged model) becomes black
                    unsigned char byte = !(v > 0) ? 0 : v > 255 ? 255 : (unsigned char)(v + 0.5);
                    px[((size_t)(oy + y) * W + ox + x) * comp + ch] = byte;
                }
    }
    char tmp[4200];
    FILE *f;
    atomic_write_begin(path, tmp, sizeof tmp, &f);
    int ok = stbi_write_png_to_func(png_write_callback, f, W, H, comp, px, W * comp);
    free(px);
    atomic_write_end(path, tmp, f, ok ? NULL : "PNG encoding failed");
}

// ============================================================================================
// PART III — THE COMMAND LINE
// ============================================================================================

typedef struct {
    ScheduleKind schedule;
    int T, index, batch, n, uncond, resume, clip_x0, threads, steps_given, width, guided, text;
    int channels, size;  // 0: chosen from the data
    int cosine_lr;       // train --cosine-lr
    int conv_direct;     // --conv direct: no Winograd (the 3x3 convolutions' sums as before)
    double min_snr;      // train --min-snr G (0: none)
    int64_t steps;
    long max_data_mb;
    uint64_t seed;
    double minutes, lr, eta, guidance;
    const char *out, *data, *image, *ckpt, *log, *sampler, *trajectory, *ref, *label, *prompt;
} Options;

// The data of --data (default Fashion-MNIST) or forward's IMAGE, at these channels and size (0:
// chosen from the data); what it is said on `say`; pixels = 0: the headers only.
static Dataset options_data(const Options *o, int channels, int size, FILE *say, int pixels) {
    DataRequest r = {channels, size, o->max_data_mb, say, pixels};
    return load_dataset(o->image ? o->image : o->data ? o->data : "fashion-mnist", &r);
}

// The network for data d (NULL: Fashion-MNIST's shape): the default U-Net (or --width's) at the
// data's channels and size, class-conditional if the data has classes and not --uncond.
static Config config_for(const Options *o, const Dataset *d) {
    Config c = DEFAULT_CONFIG;
    if (d) {
        c.img_c = d->c;
        c.img_h = d->h;
        c.img_w = d->w;
        c.n_classes = d->n_classes ? d->n_classes : 1;
        c.cond = d->labels != NULL;
    }
    if (o->uncond) c.cond = 0;
    if (o->width && o->width % c.groups)
        die("--width", "must be a multiple of %d (the GroupNorm groups)", c.groups);
    if (o->width) {
        c.ch1 = o->width;
        c.ch2 = 2 * o->width;
        c.tdim = o->width;
        c.temb = 4 * o->width;
    }
    return c;
}

// `./diffusion schedule`: Steps 1 and 2 as a table.
static int cmd_schedule(const Options *o) {
    Schedule s = schedule_make(o->schedule, o->T);
    printf("# t beta alpha alpha_bar beta_tilde coef_x0 coef_xt  (schedule=%s T=%d)\n",
           schedule_names[o->schedule], o->T);
    for (int t = 1; t <= o->T; t++)
        printf("%d %.17g %.17g %.17g %.17g %.17g %.17g\n", t, s.beta[t], s.alpha[t], s.alpha_bar[t],
               s.beta_tilde[t], s.coef_x0[t], s.coef_xt[t]);
    schedule_free(&s);
    return 0;
}

// `./diffusion forward`: the lecture's first picture. One image at t = 0, T/10, ..., T, noised in
// one shot with ONE eps, so the strip shows the signal fading (sqrt(alpha_bar_t) x_0) while the
// same noise pattern grows (sqrt(1 - alpha_bar_t) eps).
static int cmd_forward(const Options *o) {
    if (!o->out) die_usage("--out", "required (e.g. --out strip.png)");
    Dataset d = options_data(o, o->channels, o->size, NULL, 1);
    if (o->index < 0 || o->index >= d.n)
        die("--index", "%d is out of range 0..%d", o->index, d.n - 1);
    Schedule s = schedule_make(o->schedule, o->T);
    Rng rng = {o->seed};
    size_t n = (size_t)d.c * d.h * d.w;
    real *x0 = xmalloc(n * sizeof(real)), *eps = xmalloc(n * sizeof(real));
    real *strip = xmalloc(11 * n * sizeof(real));
    for (size_t i = 0; i < n; i++) x0[i] = d.pixels[(size_t)o->index * n + i];
    rng_normal_fill(&rng, eps, n);
    printf("# frame t sqrt(alpha_bar_t) sqrt(1-alpha_bar_t)\n");
    for (int k = 0; k <= 10; k++) {
        int t = (int)((int64_t)k * o->T / 10);
        forward_one_shot(strip + k * n, x0, eps, &s, t, n);
        printf("%d %d %.6f %.6f\n", k, t, sqrt(s.alpha_bar[t]), sqrt(s.one_minus_alpha_bar[t]));
    }
    int scale = d.h >= 96 ? 1 : (96 + d.h - 1) / d.h;
    write_image_grid(o->out, strip, 11, 11, d.c, d.h, d.w, scale);
    printf("wrote %s: x_t at t = 0, T/10, ..., T (schedule %s, T = %d)\n", o->out,
           schedule_names[o->schedule], o->T);
    free_all(3, x0, eps, strip);
    schedule_free(&s);
    dataset_free(&d);
    return 0;
}

// `./diffusion info`: the data (with --data: its headers), and the network train would make for it:
// its tensors, block by block, with each block's output shape.
static int cmd_info(const Options *o) {
    Dataset d = {0};
    if (o->data) d = options_data(o, o->channels, o->size, stdout, 0);
    Config cfg = config_for(o, o->data ? &d : NULL), *c = &cfg;
    dataset_free(&d);
    Params P;
    Acts a;
    Layout *L = xmalloc(sizeof(Layout));
    params_layout(&P, L, NULL, c);
    size_t n_params = L->used;
    printf("U-Net eps_theta(x_t, t%s): input %dx%dx%d, widths %d/%d, time embedding %d->%d, "
           "GroupNorm %d groups\n", c->cond ? ", class" : "", c->img_c, c->img_h, c->img_w, c->ch1,
           c->ch2, c->tdim, c->temb, c->groups);
    printf("%-12s %-14s %-18s %-16s %10s\n", "block", "output", "tensor", "shape", "parameters");
    char block[40] = "", out[32];
    int down = 0;  // H / the height of the block's output; 0: the embeddings before conv_in
    for (int i = 0; i < L->n; i++) {
        const TensorInfo *ti = &L->info[i];
        size_t len = strcspn(ti->name, ".");
        int first = strncmp(block, ti->name, len) || block[len];
        snprintf(block, sizeof block, "%.*s", (int)len, ti->name);
        if (!strcmp(block, "conv_in")) down = 1;           // full size from conv_in on;
        if (first && !strncmp(block, "ds", 2)) down *= 2;  // ds0, ds1 halve H and W,
        if (first && !strncmp(block, "us", 2)) down /= 2;  // us0, us1 double them
        int j = i;  // the block's last tensor, a bias or GroupNorm shift: one per output channel
        while (j + 1 < L->n && !strncmp(L->info[j + 1].name, ti->name, len + 1)) j++;
        if (!down) snprintf(out, sizeof out, "(%d)", c->temb);
        else snprintf(out, sizeof out, "(%zu,%d,%d)", L->info[j].size, c->img_h / down,
                      c->img_w / down);
        printf("%-12s %-14s %-18s %-16s %10zu\n", first ? block : "", first ? out : "", ti->name,
               ti->shape, ti->size);
    }
    acts_layout(&a, L, NULL, c, 1);
    double per_image = L->used * sizeof(real) / 1e6, mb = n_params * sizeof(real) / 1e6;
    free(L);
    printf("parameters: %zu\n", n_params);
    printf("memory: parameters %.2f MB, gradients %.2f MB, AdamW moments %.2f MB, EMA %.2f MB, "
           "activations %.2f MB per image (x2 with their gradients)\n", mb, mb, 2 * mb, mb,
           per_image);
    return 0;
}

// `./diffusion train`: a new model for the data (or, with --resume, the checkpoint's, and the data
// at its shape and with its classes), trained from where it stands: step, schedule, T, RNG, batch.
static int cmd_train(const Options *o) {
    TrainOptions t = {.data = o->data ? o->data : "fashion-mnist", .log = o->log,
                      .ckpt = o->ckpt ? o->ckpt : "model.ckpt", .steps = o->steps,
                      .minutes = o->minutes, .resume = o->resume, .hyper = DEFAULT_HYPER,
                      .save_every = 500};
    if (!o->steps && !o->minutes) t.minutes = 10;
    if (o->text && o->uncond) die_usage("--text", "prompts are conditions: not with --uncond");
    remove_stale_tmp(t.ckpt);
    t.hyper.lr = o->lr;
    t.hyper.min_snr = o->min_snr;
    t.hyper.cosine = o->cosine_lr;
    int B = o->batch ? o->batch : 64;
    CkptInfo ck = {.schedule = o->schedule, .T = o->T, .rng = {o->seed}};  // or the checkpoint's
    Dataset d;
    Model *m;
    if (!o->resume) {
        d = options_data(o, o->channels, o->size, stderr, 1);
        Config c = config_for(o, &d);
        ClassName *vocab = NULL;
        if (o->text) {  // prompts: the words of the class names (Step 4's cross-attention)
            if (!c.cond) die_usage("--text", "needs class folders: the words of their names are "
                                   "the prompts");
            vocab = xcalloc((size_t)c.n_classes * (MAX_PROMPT - 1) + 1, sizeof(ClassName));
            c.text = 1;
            c.vocab = build_vocabulary(vocab, d.class_names, c.n_classes, &c.max_tokens);
        }
        m = model_create(&c, B);
        if (vocab) memcpy(m->vocab_words, vocab, c.vocab * sizeof(ClassName));
        free(vocab);
        params_init(m, &ck.rng, 0);
        if (c.cond) memcpy(m->class_names, d.class_names, c.n_classes * sizeof(ClassName));
        if (c.text) set_class_prompts(m, "--text");
    } else {
        m = checkpoint_load(t.ckpt, o->batch, &ck);
        if (m->cfg.img_c == 4)  // a latent model: its data are an autoencoder's latents
            die_usage(t.ckpt, "4 channels: a latent model; resume it with notes/latent train");
        if (!ck.has_optimizer)
            die(t.ckpt, "has no optimizer state (an exported model): cannot resume training "
                "from it");
        if (!o->batch) B = ck.batch;
        else if (o->batch != ck.batch)
            fprintf(stderr, "note: batch %d differs from the checkpoint's %d: training continues, "
                            "but not as one run would\n", o->batch, ck.batch);
        fprintf(stderr, "resuming %s at step %" PRId64 " (schedule %s, T = %d)\n", t.ckpt,
                ck.step, schedule_names[ck.schedule], ck.T);
        const Config *c = &m->cfg;
        if ((o->channels && o->channels != c->img_c) || (o->size && o->size != c->img_h))
            die_usage("--resume", "%s's images are %dx%dx%d: --channels and --size cannot change",
                      t.ckpt, c->img_c, c->img_h, c->img_w);
        d = options_data(o, c->img_c, c->img_h, stderr, 1);
        int same = !c->cond || (d.labels && d.n_classes == c->n_classes);
        for (int k = 0; same && c->cond && k < c->n_classes; k++)
            same = !strcmp(d.class_names[k], m->class_names[k]);
        if (!same)
            die(t.data, "its classes differ from the %d of %s (%s, ...)", c->n_classes, t.ckpt,
                c->cond ? m->class_names[0] : "");
    }
    m->ws->winograd = !o->conv_direct;
    train(&t, m, &d, ck.schedule, ck.T, ck.step, ck.rng, B);
    model_free(m);
    dataset_free(&d);
    return 0;
}

// The sampler settings of the command line, checked against the model.
static SampleOptions sample_options(const Options *o, const Config *c, ScheduleKind sk, int T) {
    SampleOptions so = {.kind = SAMPLER_DDPM, .eta = o->eta, .clip = o->clip_x0,
                        .guided = o->guided, .w = o->guidance};
    if (!strcmp(o->sampler, "ddim")) so.kind = SAMPLER_DDIM;
    else if (!strcmp(o->sampler, "sde")) so.kind = SAMPLER_SDE;
    else if (!strcmp(o->sampler, "dpm2m")) so.kind = SAMPLER_DPM2M;
    else if (strcmp(o->sampler, "ddpm"))
        die_usage("--sampler", "unknown sampler '%s' (ddpm, ddim, sde or dpm2m)", o->sampler);
    // Default steps: DDIM 50; the SDE 250, as Euler-Maruyama's error is O(du): on Gaussian data
    // (check (h)) 50 steps widen the samples' variance by 3%, 250 by 0.4%; on images 50 steps
    // leave a visible grain. DPM-Solver++(2M): 20 (README, the sampler table).
    int default_steps = so.kind == SAMPLER_SDE ? 250 : so.kind == SAMPLER_DPM2M ? 20 : 50;
    if (default_steps > T) default_steps = T;
    if (so.kind != SAMPLER_DDPM)
        so.steps = o->steps_given ? (int)(o->steps < T ? o->steps : T) : default_steps;
    if (so.kind == SAMPLER_SDE && so.steps < 2)
        die_usage("--steps", "the sde sampler needs at least 2 steps");
    if (so.kind == SAMPLER_SDE && sk == SCHEDULE_COSINE)
        die_usage("--sampler", "sde on a cosine model: its beta(u) reaches ~7000 at u = 1 "
                               "(beta_T = 0.999), too stiff for Euler-Maruyama; use ddpm or ddim");
    if ((o->label || so.guided) && !c->cond)
        die_usage(o->label ? "--label" : "--guidance", "this model is unconditional (trained on a "
                  "folder without class folders, or with --uncond): it has no classes");
    return so;
}

// --label: one of the model's class names, or else a class number.
static int label_of(const char *s, const Model *m) {
    for (int k = 0; k < m->cfg.n_classes; k++)
        if (!strcmp(s, m->class_names[k])) return k;
    char *end;
    long k = strtol(s, &end, 10);
    if (end == s || *end || k < 0 || k >= m->cfg.n_classes)
        die_usage("--label", "'%s' is neither a class name of this model nor a number 0..%d (the "
                  "rows of ./diffusion sample name the classes)", s, m->cfg.n_classes - 1);
    return (int)k;
}

// traj (2, frames, B, img): for each of the first samples, a row of x_t at `frames` moments (noise
// to image) and under it a row of x0_hat at the same moments (the network's guess of the end).
static void write_trajectory(const char *path, const real *traj, int frames, int B,
                             const Config *c) {
    size_t img = (size_t)c->img_c * c->img_h * c->img_w;
    int rows = 2 * (B < 8 ? B : 8);
    real *grid = xmalloc((size_t)rows * frames * img * sizeof(real));
    for (int r = 0; r < rows; r++)
        for (int f = 0; f < frames; f++) {
            const real *from = traj + (((size_t)(r % 2) * frames + f) * B + r / 2) * img;
            memcpy(grid + ((size_t)r * frames + f) * img, from, img * sizeof(real));
        }
    write_image_grid(path, grid, rows * frames, frames, c->img_c, c->img_h, c->img_w, 3);
    free(grid);
}

// `./diffusion sample`: Step 5 on a trained checkpoint, in batches, with the pictures.
static int cmd_sample(const Options *o) {
    const char *path = o->ckpt ? o->ckpt : "data/model.ckpt";
    int chunk = o->batch ? o->batch : 64;
    CkptInfo ck;
    Rng rng = {o->seed};
    Model *m = checkpoint_load(path, o->guided ? 2 * chunk : chunk, &ck);
    m->ws->winograd = !o->conv_direct;
    if (m->cfg.img_c == 4)  // latents need their decoder
        die_usage(path, "4 channels: a latent model; sample it with notes/latent sample --ae");
    ScheduleKind sk = ck.schedule;
    int T = ck.T;
    const Config *c = &m->cfg;
    SampleOptions so = sample_options(o, c, sk, T);
    int K = c->n_classes, chosen = o->label ? label_of(o->label, m) : 0;
    if (o->prompt && !c->text)
        die_usage("--prompt", "this model was trained without --text: it knows classes (--label), "
                  "not words");
    if (o->prompt) set_prompt(m, K + 1, o->prompt, "--prompt");  // the row after the empty prompt
    if (o->prompt) chosen = K + 1;
    int per_class = c->cond && !o->label && !o->prompt;  // one row per class
    int n = o->n ? o->n : per_class ? 8 * K : 64;
    int cols = per_class ? (n + K - 1) / K : (int)ceil(sqrt((double)n));
    if (per_class) n = K * cols;
    memcpy(m->params, m->ema, m->n_params * sizeof(real));  // sample with the EMA weights
    Schedule s = schedule_make(sk, T);
    schedule_warn(&s);
    size_t img = (size_t)c->img_c * c->img_h * c->img_w;
    real *x = xmalloc((size_t)n * img * sizeof(real));
    int *label = xmalloc((size_t)n * sizeof(int)), frames = 11;
    for (int i = 0; i < n; i++) label[i] = per_class ? i / cols : chosen;
    real *traj = o->trajectory ? xmalloc((size_t)2 * frames * chunk * img * sizeof(real)) : NULL;
    double t0 = now_seconds();
    fprintf(stderr, "sampling %d images with %s (%d network evaluations each%s) from %s (step "
            "%" PRId64 ", %s T=%d)\n", n, o->sampler, so.kind == SAMPLER_DDPM ? T : so.steps,
            so.guided ? ", guided: x2" : "", path, ck.step, schedule_names[sk], T);
    for (int first = 0; first < n; first += chunk) {
        int B = n - first < chunk ? n - first : chunk;
        so.trajectory = first == 0 ? traj : NULL;
        so.frames = frames;
        sample_loop(x + (size_t)first * img, m, &s, label + first, B, &so, &rng, 1);
        if (first == 0 && traj) write_trajectory(o->trajectory, traj, frames, B, c);
    }
    double secs = now_seconds() - t0;
    const char *out = o->out ? o->out : "samples.png";
    write_image_grid(out, x, n, cols, c->img_c, c->img_h, c->img_w, 3);
    printf("wrote %s: %d samples in %.1f s\n", out, n, secs);
    for (int k = 0; per_class && k < K; k++) {  // names from the checkpoint: escaped
        printf("  row %d: ", k + 1);
        fputs_escaped(m->class_names[k], stdout);
        putchar('\n');
    }
    if (o->label) printf("  class %d: ", chosen);
    if (o->label) fputs_escaped(m->class_names[chosen], stdout);
    if (o->label) putchar('\n');
    if (o->prompt) printf("  prompt: ");
    if (o->prompt) fputs_escaped(o->prompt, stdout);
    if (o->prompt) putchar('\n');
    if (traj)
        printf("wrote %s: noise (left) to image (right) at 11 moments; under each x_t row, the "
               "network's x0_hat (eq. 2) at that moment\n", o->trajectory);
    free_all(3, x, label, traj);
    schedule_free(&s);
    model_free(m);
    return 0;
}

static int cmd_export(const Options *o) {
    if (!o->ckpt || !o->out) die_usage("export", "needs --ckpt and --out");
    CkptInfo ck;
    Model *m = checkpoint_load(o->ckpt, 1, &ck);
    checkpoint_save(o->out, m, ck.schedule, ck.T, ck.step, &ck.rng, ck.batch, 1);
    printf("wrote %s (step %" PRId64 ", weights and EMA weights, no optimizer state)\n", o->out,
           ck.step);
    model_free(m);
    return 0;
}

// Every command: its name, the function that runs it, the flags it takes, and its usage text.
typedef struct {
    const char *name;
    int (*run)(const Options *o);
    const char *flags, *usage;
} Command;
static const Command commands[] = {
    {"schedule", cmd_schedule, " --schedule --T ",
     "schedule [--schedule linear|cosine|sde] [--T N]\n"
     "  Prints t beta alpha alpha_bar beta_tilde coef_x0 coef_xt for t = 1..T (Steps 1 and 2)."},
    {"forward", cmd_forward,
     " --schedule --T --data --index --seed --out --channels --size --max-data-mb IMAGE ",
     "forward [IMAGE | --data fashion-mnist|DIR --index I] [--channels 1|3] [--size S] "
     "[--schedule S] [--T N] [--seed S]\n        --out strip.png\n"
     "  Writes x_t at t = 0, T/10, ..., T: the image dissolving into noise (Step 1)."},
    {"info", cmd_info, " --uncond --data --channels --size --width --max-data-mb ",
     "info [--data DIR [--channels 1|3] [--size S]] [--uncond] [--width 32]\n"
     "  Prints the data (count, shape, classes; headers only) and the network train makes for it:\n"
     "  layers (tensor shapes, parameters, output shapes) and memory."},
    {"train", cmd_train, " --data --steps --minutes --batch --lr --seed --schedule --T --ckpt "
     "--resume --uncond --log --width --threads --channels --size --max-data-mb --text --min-snr "
     "--cosine-lr --conv ",
     "train [--data fashion-mnist|DIR|FILE] [--channels 1|3] [--size S] [--max-data-mb 1024]\n"
     "      [--steps N | --minutes M] [--batch 64] [--lr 2e-4] [--seed S] "
     "[--schedule linear|cosine|sde] [--T 1000]\n"
     "      [--ckpt model.ckpt] [--resume] [--uncond] [--text] [--log loss.csv] [--width 32] "
     "[--threads N]\n"
     "      [--min-snr G] [--cosine-lr] [--conv winograd|direct]\n"
     "  Trains eps_theta (Steps 3 and 4) with AdamW; Ctrl-C saves and stops. Default: 10 minutes.\n"
     "  DIR: PNG/JPEGs, or DIR/<class>/*.png for a class-conditional model. Channels: 3 if any\n"
     "  image has colour; size: the images' common size (at most 64), else 32; Fashion-MNIST 28.\n"
     "  --text: conditioned on the words of the class names by cross-attention (sample --prompt)."},
    {"sample", cmd_sample, " --ckpt --sampler --steps --eta --guidance --label --n --seed --out "
     "--trajectory --clip-x0 --batch --threads --prompt --conv ",
     "sample [--ckpt data/model.ckpt] [--sampler ddpm|ddim|sde|dpm2m] [--steps S] [--eta E] "
     "[--guidance W] [--label C|NAME | --prompt WORDS]\n"
     "       [--n N] [--seed S] [--out samples.png] [--trajectory traj.png] [--clip-x0] "
     "[--batch 64] [--threads N]\n"
     "       [--conv winograd|direct]\n"
     "  Generates images from noise (Step 5). Without --label, a class-conditional model gives one "
     "row per class.\n"
     "  DDPM (the default) scores best; --sampler dpm2m (20 steps) is 50x faster and nearly as\n"
     "  good (notes/model.md)."},
    {"export", cmd_export, " --ckpt --out ",
     "export --ckpt model.ckpt --out small.ckpt\n"
     "  Writes the weights and EMA weights without the optimizer state (enough for sampling)."},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static const char *flag_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) die_usage(argv[*i], "missing value");
    return argv[++*i];
}
// In 64 bits whatever the size of long (32 bits on Windows and 32-bit systems).
static int64_t parse_int(const char *flag, const char *s, int64_t lo, int64_t hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die_usage(flag, "'%s' is not an integer in %" PRId64 "..%" PRId64, s, lo, hi);
    return v;
}
static double parse_double(const char *flag, const char *s, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        die_usage(flag, "'%s' is not a number in %g..%g", s, lo, hi);
    return v;
}
static ScheduleKind parse_schedule(const char *s) {
    for (int k = 0; k < 3; k++)
        if (!strcmp(s, schedule_names[k])) return (ScheduleKind)k;
    die_usage("--schedule", "unknown schedule '%s' (linear, cosine or sde)", s);
    return SCHEDULE_LINEAR;
}

static int parse_conv(const char *s) {  // --conv: 1 for direct
    if (strcmp(s, "winograd") && strcmp(s, "direct"))
        die_usage("--conv", "unknown method '%s' (winograd or direct)", s);
    return !strcmp(s, "direct");
}

// One flag (argv[*i]) into o; flags with a value advance *i.
static void parse_flag(Options *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "--uncond")) o->uncond = 1;
    else if (!strcmp(a, "--resume")) o->resume = 1;
    else if (!strcmp(a, "--clip-x0")) o->clip_x0 = 1;
    else if (!strcmp(a, "--text")) o->text = 1;
    else if (!strcmp(a, "--cosine-lr")) o->cosine_lr = 1;
    else {
        const char *v = flag_value(argc, argv, i);
        if (!strcmp(a, "--schedule")) o->schedule = parse_schedule(v);
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--ckpt")) o->ckpt = v;
        else if (!strcmp(a, "--log")) o->log = v;
        else if (!strcmp(a, "--sampler")) o->sampler = v;
        else if (!strcmp(a, "--trajectory")) o->trajectory = v;
        else if (!strcmp(a, "--ref")) o->ref = v;
        else if (!strcmp(a, "--T")) o->T = (int)parse_int(a, v, 1, 100000);
        else if (!strcmp(a, "--seed")) o->seed = (uint64_t)parse_int(a, v, 0, INT64_MAX);
        else if (!strcmp(a, "--index")) o->index = (int)parse_int(a, v, 0, MAX_IDX_ITEMS);
        else if (!strcmp(a, "--batch")) o->batch = (int)parse_int(a, v, 1, MAX_BATCH);
        else if (!strcmp(a, "--n")) o->n = (int)parse_int(a, v, 1, 4096);
        else if (!strcmp(a, "--label")) o->label = v;
        else if (!strcmp(a, "--prompt")) o->prompt = v;
        else if (!strcmp(a, "--channels")) o->channels = (int)parse_int(a, v, 1, 3);
        else if (!strcmp(a, "--size")) o->size = (int)parse_int(a, v, 4, 256);
        else if (!strcmp(a, "--max-data-mb")) o->max_data_mb = (long)parse_int(a, v, 1, 1000000000);
        else if (!strcmp(a, "--steps")) o->steps = parse_int(a, v, 1, 1000000000);
        else if (!strcmp(a, "--threads")) o->threads = (int)parse_int(a, v, 1, 1024);
        else if (!strcmp(a, "--conv")) o->conv_direct = parse_conv(v);
        else if (!strcmp(a, "--width")) o->width = (int)parse_int(a, v, 8, 256);
        else if (!strcmp(a, "--minutes")) o->minutes = parse_double(a, v, 1e-3, 1e6);
        else if (!strcmp(a, "--lr")) o->lr = parse_double(a, v, 1e-12, 1);
        else if (!strcmp(a, "--min-snr")) o->min_snr = parse_double(a, v, 1e-3, 1e6);
        else if (!strcmp(a, "--eta")) o->eta = parse_double(a, v, 0, 1);
        else if (!strcmp(a, "--guidance")) o->guidance = parse_double(a, v, -100, 100);
        o->steps_given |= !strcmp(a, "--steps");
        o->guided |= !strcmp(a, "--guidance");
        if (o->channels == 2 || o->size % 4)
            die_usage(a, "'%s': channels are 1 (gray) or 3 (RGB), sizes multiples of 4", v);
    }
}

static void parse_options(Options *o, const Command *cmd, int argc, char **argv,
                          const char *prog) {
    *o = (Options){.schedule = SCHEDULE_LINEAR, .T = 1000, .seed = 1, .lr = 2e-4, .guidance = 1,
                   .sampler = "ddpm", .ref = "data/unet_ref.bin", .max_data_mb = DEFAULT_DATA_MB};
    // batch 0: the command's default; data NULL: Fashion-MNIST (info: none)
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: %s %s\n", prog, cmd->usage);
            exit(0);
        }
        char key[64];
        snprintf(key, sizeof key, " %s ", a[0] == '-' ? a : "IMAGE");
        if (!strstr(cmd->flags, key) || (a[0] == '-' && strpbrk(a, " \t\n")))  // "--T --seed"
            die_usage(a, "%s for '%s' (see %s %s --help)",
                      a[0] == '-' ? "unknown flag" : "unexpected argument", cmd->name, prog,
                      cmd->name);
        if (a[0] == '-') parse_flag(o, argc, argv, &i);
        else if (o->image) die_usage(a, "only one image may be given");
        else o->image = a;
    }
}

// The program: `prog COMMAND [flags]` runs the command of `table` so named. notes/check.c and
// notes/bench.c call it with their own tables.
static int run_command(int argc, char **argv, const Command *table, int n, const char *prog) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        printf("%s\n\nusage:\n", table == commands ? "diffusion.c: denoising diffusion (DDPM) in "
               "one C file, following the lecture's five steps." : prog);
        for (int i = 0; i < n; i++) printf("  %s %s\n\n", prog, table[i].usage);
        return argc < 2 ? 2 : 0;
    }
    const Command *cmd = NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(argv[1], table[i].name)) cmd = &table[i];
    if (!cmd) die_usage(argv[1], "unknown command (try %s --help)", prog);
    Options o;
    parse_options(&o, cmd, argc, argv, prog);
    // A write beyond the file-size limit (ulimit -f) must fail with EFBIG and a message, not kill.
    signal(SIGXFSZ, SIG_IGN);
#ifdef _OPENMP
    if (o.threads) omp_set_num_threads(o.threads);
#endif
    return cmd->run(&o);
}

#ifndef DIFFUSION_NO_MAIN  // the companions under notes/ include this file and bring their own
int main(int argc, char **argv) {
    return run_command(argc, argv, commands, N_COMMANDS, "./diffusion");
}
#endif

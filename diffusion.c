/*
 * diffusion.c — denoising diffusion (DDPM) in one C file, to be read beside the lecture slides.
 *
 *   build:  cc diffusion.c -lm -O2 -o diffusion          (or: make, make fast)
 *   run:    ./diffusion schedule | forward | check | info | gradcheck | refcheck | train | sample | export | bench
 *           (each has --help; notes/README.md maps every slide's equation to its function)
 *
 * The file follows the five steps of the DDPM algorithm in MIT 15.S60 "A Practical Introduction to Diffusion
 * Models" (lecture 000 in notes/README.md), in order:
 *
 *   Step 0  preliminaries: errors, a random number generator with explicit state, Gaussian draws
 *   Step 1  discretize the forward SDE: alpha_k = exp(-int beta), alpha_bar_k, one-step and one-shot forms
 *   Step 2  the closed-form posterior q(x_{t-1} | x_t, x_0) = N(mu_t, beta_tilde_t I)
 *   Step 3  the training data (x_0, t, eps, x_t), and the data sets it is drawn from
 *   Step 4  learn eps_theta: a small U-Net with a time embedding, every layer's backward pass by hand
 *   Step 5  simulate the reverse process: x0_hat (eq. 2), mu_theta (eq. 3), the sampling loop
 *   then    the commands: schedule, forward, check, ... and main()
 *
 * Sections marked "BEYOND THE SLIDES" (DDIM, the reverse-SDE sampler, guidance, the fast GEMM, the benchmark)
 * are not on lecture 000's slides; they are short and can be skipped on a first reading.
 *
 * Dimension letters used in shape comments: B batch, C channels (OC output channels), H, W height and width,
 * N = H*W positions, T number of timesteps, P number of parameters, D embedding width.
 * Images are stored channels-first, batch outermost: x[b][c][h][w] in one flat array.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#else
// Without -fopenmp the `#pragma omp` lines are simply ignored (one thread); say so to the compiler once.
#pragma GCC diagnostic ignored "-Wunknown-pragmas"
#endif
// `cc diffusion.c -lm -O2` is how most people will build this, and GCC's -O2 vectorizes only the simplest loops:
// ask for -O3's loop vectorizer here (the numbers do not change, only the speed: 11% in training).
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__)
#pragma GCC optimize("O3")
#endif

// Images are read and written with Sean Barrett's stb_image (Debian: libstb-dev, /usr/include/stb/). Elsewhere,
// put stb_image.h and stb_image_write.h beside this file. stb_image also gives us a zlib inflater (for .gz).
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_ONLY_PNG   // the two formats we promise; the other decoders are code a hostile file could reach
#define STBI_ONLY_JPEG
#define STBI_MAX_DIMENSIONS 16384  // refuse absurd image headers before stb allocates anything
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

// The network computes in `real`: float by default (fast, and plenty for training), double with -DDOUBLE so
// that gradcheck can compare hand-written gradients with finite differences to 1e-6 (float has ~7 digits).
#ifdef DOUBLE
typedef double real;
#else
typedef float real;
#endif

// ============================================================================================================
// Step 0. Preliminaries: errors, memory, a random number generator
// ============================================================================================================

// Every error is one line "diffusion: <what>: <why>" and a non-zero exit: 2 for bad usage, 1 for the rest.
static void die_with(int code, const char *what, const char *fmt, va_list ap) {
    fprintf(stderr, "diffusion: %s: ", what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
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

// The random number generator is SplitMix64 (Steele, Lea & Flood 2014): the state is one 64-bit counter that
// advances by a fixed odd constant, and each output is a bit-mixed copy of it. It passes BigCrush, is two lines
// long, and its whole state is one number, so a checkpoint can save it and `--seed` reproduces every draw.
// Nothing in this file uses rand() or hidden global state: whoever draws passes the Rng.
typedef struct { uint64_t state; } Rng;
static const double PI = 3.14159265358979323846;

static uint64_t rng_u64(Rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
// Uniform on the open interval (0, 1): the top 53 bits plus one half, times 2^-53. Never 0, so log(u) is safe.
static double rng_uniform(Rng *r) { return ((double)(rng_u64(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
// Uniform integer in {0, ..., n-1} (the modulo bias is below 2^-32 for the n used here).
static int rng_int(Rng *r, int n) { return (int)(rng_u64(r) % (uint64_t)n); }

// Standard normal by Box–Muller: if U1, U2 are uniform on (0,1), then R = sqrt(-2 ln U1) is the radius of a 2-D
// standard Gaussian (its R^2/2 is exponential) and 2 pi U2 its angle, so R cos(2 pi U2) and R sin(2 pi U2) are two
// independent N(0,1) draws. We fill arrays two at a time so no draw is wasted and no state is cached.
static void rng_normal_fill(Rng *r, real *out, size_t n) {
    for (size_t i = 0; i < n; i += 2) {
        double radius = sqrt(-2.0 * log(rng_uniform(r)));
        double angle = 2.0 * PI * rng_uniform(r);
        out[i] = (real)(radius * cos(angle));
        if (i + 1 < n) out[i + 1] = (real)(radius * sin(angle));
    }
}
static double rng_normal(Rng *r) {
    double radius = sqrt(-2.0 * log(rng_uniform(r)));
    return radius * cos(2.0 * PI * rng_uniform(r));
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Files (pictures, checkpoints) are written to "<path>.tmp", flushed to disk with fsync, then renamed over
// <path>: rename is atomic, so an interrupted program leaves the old file or the new one, never half a file.
// Any failure (full disk, unwritable folder) ends with a message naming the path; the old file stays.
// A path that exists and is not a regular file (/dev/stdout, /dev/full) is written directly (tmp is "").
static void atomic_write_begin(const char *path, char *tmp, size_t tmp_size, FILE **f) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) tmp[0] = 0;
    else snprintf(tmp, tmp_size, "%s.tmp", path);
    *f = fopen(tmp[0] ? tmp : path, "wb");
    if (!*f) die(path, "cannot write: %s", strerror(errno));
}
static void atomic_write_end(const char *path, const char *tmp, FILE *f) {
    int bad = fflush(f) != 0 || ferror(f), err = errno;
    if (!bad && tmp[0] && fsync(fileno(f)) != 0) bad = 1, err = errno;
    if (fclose(f) != 0 && !bad) bad = 1, err = errno;
    if (bad) {
        if (tmp[0]) remove(tmp);
        die(path, "write failed: %s", strerror(err ? err : EIO));
    }
    if (tmp[0] && rename(tmp, path) != 0) {
        err = errno;
        remove(tmp);
        die(path, "cannot rename %s into place: %s", tmp, strerror(err));
    }
}

// ============================================================================================================
// Step 1. Discretize the forward process
//     (F)  dX = -1/2 beta(u) X du + sqrt(beta(u)) dW,   u in [0, 1]      (lecture 000, slide "The forward SDE")
//     one step:  X_k = sqrt(alpha_k) X_{k-1} + sqrt(1 - alpha_k) eps_k,   alpha_k = exp(-int_{u_{k-1}}^{u_k} beta)
//     one shot:  X_k = sqrt(alpha_bar_k) X_0 + sqrt(1 - alpha_bar_k) eps,  alpha_bar_k = prod_{s<=k} alpha_s
//
// ERRATUM, kept visible on purpose. The slide prints (F) as dX = -beta X dt + sqrt(beta) dW. That SDE shrinks the
// mean by exp(-int beta) but its variance obeys dV/du = -2 beta V + beta, so it settles at V = 1/2, not 1: the
// one-step form above (whose variance stays 1 for unit-variance data) is NOT its exact discretization. The SDE
// that the one-step form discretizes exactly is the variance-preserving SDE of Song et al. (2021) with the 1/2:
// its mean factor is exp(-1/2 int beta) = sqrt(alpha_k) and its variance 1 - alpha_k is exactly what is added.
// Likewise the reverse SDE (R) needs the 1/2: dX = beta (1/2 X + grad log p) du + sqrt(beta) dW_bar, where the
// reverse time runs backwards, so beta and p are taken at the forward time T - t (beta(T-t), not beta(t)).
// `./diffusion check` measures both SDEs by simulation (claim b) so that you can see this for yourself.
// ============================================================================================================

typedef enum { SCHEDULE_LINEAR, SCHEDULE_COSINE, SCHEDULE_SDE } ScheduleKind;
static const char *schedule_names[] = {"linear", "cosine", "sde"};

// All schedule arrays have T+1 entries indexed by t = 0..T, with alpha_bar[0] = 1 ("no noise yet"). They are
// double, not float: alpha_bar_T is a product of 1000 factors, and 1 - alpha_bar_t near t = 1 is a difference of
// nearly equal numbers; float's 7 digits would leave only 3 or 4 correct digits in beta_tilde_1..10.
typedef struct {
    ScheduleKind kind;
    int T;
    double *beta;                // beta_t = 1 - alpha_t, the variance added by step t             [T+1]
    double *alpha;               // alpha_t, the signal kept by step t                              [T+1]
    double *alpha_bar;           // alpha_bar_t = prod_{s<=t} alpha_s, the signal kept after t steps [T+1]
    double *one_minus_alpha_bar; // 1 - alpha_bar_t, kept separately to avoid cancellation        [T+1]
    double *beta_tilde;          // posterior variance (step 2)                                    [T+1]
    double *coef_x0, *coef_xt;   // posterior mean mu_t = coef_x0 x_0 + coef_xt x_t (step 2)       [T+1]
} Schedule;

// The VP-SDE noise rate of Song et al. (2021), beta(u) = beta_min + (beta_max - beta_min) u on u in [0, 1],
// and its integral from 0 to u. Used by the `sde` schedule and by the reverse-SDE sampler of step 5.
static const double VP_BETA_MIN = 0.1, VP_BETA_MAX = 20.0;
static double vp_beta(double u) { return VP_BETA_MIN + (VP_BETA_MAX - VP_BETA_MIN) * u; }
static double vp_beta_integral(double u) { return VP_BETA_MIN * u + 0.5 * (VP_BETA_MAX - VP_BETA_MIN) * u * u; }

// beta_1..beta_T of each schedule (step 1 proper: where the noise levels come from).
static void schedule_betas(double *beta, ScheduleKind kind, int T) {
    for (int t = 1; t <= T; t++) {
        if (kind == SCHEDULE_LINEAR) {
            // Ho et al. (2020): beta_t evenly spaced from 1e-4 to 0.02. At T = 1000 it is the first-order version of
            // `sde`: alpha_t = exp(-int beta du) ~ 1 - beta(u_t)/T, i.e. beta_t ~ beta(u_t)/T = 1e-4 ... 0.02. The
            // endpoints do not scale with T, so at small T the chain never reaches noise (see schedule_warn).
            beta[t] = T == 1 ? 1e-4 : 1e-4 + (0.02 - 1e-4) * (double)(t - 1) / (double)(T - 1);
        } else if (kind == SCHEDULE_COSINE) {
            // Nichol & Dhariwal (2021): choose alpha_bar itself, f(t) = cos^2(((t/T)+s)/(1+s) pi/2), s = 0.008, so
            // that the signal decays gently at both ends; beta_t = 1 - alpha_bar_t/alpha_bar_{t-1}, clipped at
            // 0.999 because alpha_bar_T = 0 would make the last step all noise (beta = 1).
            const double s = 0.008;
            double root_f = cos(((double)t / T + s) / (1 + s) * PI / 2);  // sqrt(f(t)), and sqrt(f(t-1)):
            double root_f_prev = cos(((double)(t - 1) / T + s) / (1 + s) * PI / 2);
            double b = 1.0 - (root_f * root_f) / (root_f_prev * root_f_prev);
            beta[t] = b < 0.999 ? b : 0.999;
        } else {
            // The lecture's own discretization: alpha_k = exp(-int_{u_{k-1}}^{u_k} beta(u) du), u_k = k/T, in closed
            // form. beta = 1 - alpha is computed as -expm1(-integral), exact even when the integral is tiny.
            double integral = vp_beta_integral((double)t / T) - vp_beta_integral((double)(t - 1) / T);
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
        // 1 - alpha_bar_{t-1} alpha_t = (1 - alpha_bar_{t-1}) + alpha_bar_{t-1} beta_t: a sum of positive terms,
        // accurate to the last digit, where 1.0 - alpha_bar_t would lose ~4 digits when alpha_bar_t ~ 0.9999.
        s.one_minus_alpha_bar[t] = s.one_minus_alpha_bar[t - 1] + s.alpha_bar[t - 1] * s.beta[t];
    }
    // Step 2's coefficients live here too, since they are a function of the schedule alone (see posterior_*).
    for (int t = 1; t <= T; t++) {
        double omab = s.one_minus_alpha_bar[t], omab_prev = s.one_minus_alpha_bar[t - 1];
        s.beta_tilde[t] = s.beta[t] * omab_prev / omab;
        s.coef_x0[t] = sqrt(s.alpha_bar[t - 1]) * s.beta[t] / omab;
        s.coef_xt[t] = sqrt(s.alpha[t]) * omab_prev / omab;
    }
    return s;
}
static void schedule_free(Schedule *s) { free(s->beta); }

// x_T should be pure noise: the generation starts from N(0, I). With the linear schedule at small T it is not.
static void schedule_warn(const Schedule *s) {
    if (sqrt(s->alpha_bar[s->T]) > 0.05)
        fprintf(stderr, "warning: schedule %s with T = %d keeps sqrt(alpha_bar_T) = %.3f of the image: x_T is not N(0, I) "
                "(use a larger T, or --schedule cosine or sde)\n", schedule_names[s->kind], s->T, sqrt(s->alpha_bar[s->T]));
}

// One step of the forward chain, x (n values) from x_{t-1} to x_t in place: x = sqrt(alpha_t) x + sqrt(beta_t) eps.
static void forward_one_step(real *x, const real *eps, const Schedule *s, int t, size_t n) {
    double a = sqrt(s->alpha[t]), b = sqrt(s->beta[t]);
    for (size_t i = 0; i < n; i++) x[i] = (real)(a * x[i] + b * eps[i]);
}
// The one-shot form: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, straight from the clean image.
static void forward_one_shot(real *xt, const real *x0, const real *eps, const Schedule *s, int t, size_t n) {
    double a = sqrt(s->alpha_bar[t]), b = sqrt(s->one_minus_alpha_bar[t]);
    for (size_t i = 0; i < n; i++) xt[i] = (real)(a * x0[i] + b * eps[i]);
}

// ============================================================================================================
// Step 2. The closed-form posterior  q(x_{t-1} | x_t, x_0) = N(mu_t(x_t, x_0), beta_tilde_t I)
//     mu_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0  +  sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
//     beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
// Why Gaussian: x_{t-1} | x_0 and x_t | x_{t-1} are both Gaussian and linear, so Bayes' rule multiplies two
// Gaussians in x_{t-1}: precisions add (1/beta_tilde = alpha_t/beta_t + 1/(1 - alpha_bar_{t-1})) and the mean is
// the precision-weighted average. At t = 1, alpha_bar_0 = 1: beta_tilde_1 = 0, coef_x0 = 1 and coef_xt = 0, i.e.
// given x_0 the last step is certain, x_0 itself. (The coefficients are filled in by schedule_make above.)
// ============================================================================================================

// mu_t(x_t, x_0) for n values. Step 5 calls it with x0_hat in place of the unknown x_0 (eq. 3).
static void posterior_mean(real *mu, const real *xt, const real *x0, const Schedule *s, int t, size_t n) {
    double cx0 = s->coef_x0[t], cxt = s->coef_xt[t];
    for (size_t i = 0; i < n; i++) mu[i] = (real)(cx0 * x0[i] + cxt * xt[i]);
}

// ============================================================================================================
// Step 3. Generate the training data  (x_0, t, eps, x_t)
//     1. x_0 ~ p_data (a random training image)   2. t ~ Unif{1..T}   3. eps ~ N(0, I)
//     4. x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps      5. keep (x_0, x_t, eps, t)
// First the data sets x_0 is drawn from: Fashion-MNIST, or a folder of the user's own PNG/JPEG images.
// ============================================================================================================

typedef struct {
    int n, c, h, w;   // n images of c channels, h x w pixels
    float *pixels;    // (n, c, h, w), scaled to [-1, 1]: the forward process adds unit-variance noise, so data
                      // should be on a comparable, zero-centred scale
    int *labels;      // (n) class 0..9, or NULL when the data has no labels
} Dataset;

static const char *FASHION_DIR = "/usr/share/datasets/fashion-mnist";  // Debian's dataset-fashion-mnist
static const char *fashion_class_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

// Sanity limits, checked before anything is allocated from a size read in a file.
enum { MAX_FILE_BYTES = 512 << 20, MAX_IDX_ITEMS = 10000000, MAX_IMAGE_SIDE = 16384, MAX_IMAGES = 1000000 };

// Reads a whole file (at most max_bytes) into memory; *len receives its size.
static unsigned char *read_file(const char *path, size_t max_bytes, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) { fclose(f); die(path, "not a regular file"); }
    if ((size_t)st.st_size > max_bytes) { fclose(f); die(path, "file too large (%lld bytes, limit %zu)", (long long)st.st_size, max_bytes); }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = xmalloc(n + 1);
    if (fread(buf, 1, n, f) != n) { fclose(f); free(buf); die(path, "read error"); }
    fclose(f);
    *len = n;
    return buf;
}

// CRC-32 (the gzip checksum, polynomial 0xEDB88320), bit by bit: slow but tiny (40 MB take ~0.2 s). Chained:
// crc32_update(crc32_update(0, a), b) is the CRC of a followed by b.
static uint32_t crc32_update(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = data;
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}
static uint32_t read_le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint32_t read_be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

// A .gz file is a 10-byte header (RFC 1952), optional fields, raw deflate data, then CRC-32 and the size. We skip
// the header, let stb_image's zlib inflate the deflate stream, and check both the size and the CRC, so that a
// truncated or corrupted download is refused instead of being read as images. Files not starting with the gzip
// magic 1f 8b are returned as they are (an already unpacked idx file).
static unsigned char *read_maybe_gzip(const char *path, size_t *len) {
    size_t n;
    unsigned char *raw = read_file(path, MAX_FILE_BYTES, &n);
    if (n < 2 || raw[0] != 0x1f || raw[1] != 0x8b) { *len = n; return raw; }
    if (n < 18) { free(raw); die(path, "truncated gzip file (%zu bytes)", n); }
    if (raw[2] != 8) { int method = raw[2]; free(raw); die(path, "gzip compression method %d is not deflate", method); }
    int flags = raw[3];
    size_t pos = 10;
    if (flags & 4) { pos += 2 + (raw[10] | raw[11] << 8); }                      // FEXTRA
    if (flags & 8) { while (pos < n && raw[pos]) pos++; pos++; }                 // FNAME, NUL-terminated
    if (flags & 16) { while (pos < n && raw[pos]) pos++; pos++; }                // FCOMMENT
    if (flags & 2) pos += 2;                                                     // FHCRC
    if (pos + 8 > n) { free(raw); die(path, "truncated gzip header"); }
    uint32_t want_crc = read_le32(raw + n - 8), want_size = read_le32(raw + n - 4);
    if (want_size > (uint32_t)MAX_FILE_BYTES) { free(raw); die(path, "gzip data is truncated or corrupt (its trailer claims %u bytes unpacked, limit %d)", want_size, MAX_FILE_BYTES); }
    // deflate expands at most 1032:1, so a trailer claiming more is a lie: refuse before allocating for it
    if ((double)want_size > 1032.0 * (double)(n - 8 - pos) + 1024) {
        free(raw);
        die(path, "gzip data is truncated or corrupt (its trailer claims %u bytes from %zu compressed)", want_size, n - 8 - pos);
    }
    int out_len = 0;
    char *out = stbi_zlib_decode_malloc_guesssize_headerflag((const char *)raw + pos, (int)(n - 8 - pos),
                                                             want_size ? (int)want_size : 1, &out_len, 0);
    free(raw);
    if (!out) die(path, "corrupt or truncated gzip data");
    if ((uint32_t)out_len != want_size || crc32_update(0, out, (size_t)out_len) != want_crc) {
        free(out);
        die(path, "gzip data is truncated or corrupt (size or CRC-32 mismatch)");
    }
    *len = (size_t)out_len;
    return (unsigned char *)out;
}

// The idx format of (Fashion-)MNIST: big-endian magic 2051 (images: count, rows, cols, then bytes) or 2049
// (labels: count, then bytes). Every size is checked against the file before it is used.
static unsigned char *idx_images(const char *path, unsigned char *buf, size_t len, int *n, int *h, int *w) {
    if (len < 16) die(path, "too short for an idx image file (%zu bytes)", len);
    if (read_be32(buf) != 2051) die(path, "bad idx magic %u (images must be 2051)", read_be32(buf));
    uint32_t cnt = read_be32(buf + 4), rows = read_be32(buf + 8), cols = read_be32(buf + 12);
    if (cnt == 0 || cnt > MAX_IDX_ITEMS) die(path, "idx image count %u out of range 1..%d", cnt, MAX_IDX_ITEMS);
    if (rows == 0 || cols == 0 || rows > 1024 || cols > 1024) die(path, "idx image size %ux%u out of range", rows, cols);
    if ((uint64_t)cnt * rows * cols > len - 16) die(path, "header claims %u images of %ux%u but the file holds only %zu bytes of pixels", cnt, rows, cols, len - 16);
    *n = (int)cnt, *h = (int)rows, *w = (int)cols;
    return buf + 16;
}
static unsigned char *idx_labels(const char *path, unsigned char *buf, size_t len, int *n) {
    if (len < 8) die(path, "too short for an idx label file (%zu bytes)", len);
    if (read_be32(buf) != 2049) die(path, "bad idx magic %u (labels must be 2049)", read_be32(buf));
    uint32_t cnt = read_be32(buf + 4);
    if (cnt == 0 || cnt > MAX_IDX_ITEMS) die(path, "idx label count %u out of range", cnt);
    if ((uint64_t)cnt > len - 8) die(path, "header claims %u labels but the file holds only %zu", cnt, len - 8);
    for (uint32_t i = 0; i < cnt; i++)
        if (buf[8 + i] > 9) die(path, "label %d of item %u is not a class 0..9", buf[8 + i], i);
    *n = (int)cnt;
    return buf + 8;
}

// Loads an idx image file (gzipped or not) and, if labels_path is given, its labels. Pixels 0..255 -> [-1, 1].
static Dataset load_idx(const char *images_path, const char *labels_path) {
    Dataset d = {0};
    size_t len;
    unsigned char *buf = read_maybe_gzip(images_path, &len);
    unsigned char *px = idx_images(images_path, buf, len, &d.n, &d.h, &d.w);
    d.c = 1;
    size_t count = (size_t)d.n * d.h * d.w;
    d.pixels = xmalloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) d.pixels[i] = px[i] / 127.5f - 1.0f;
    free(buf);
    if (labels_path) {
        int nl;
        unsigned char *lbuf = read_maybe_gzip(labels_path, &len);
        unsigned char *lab = idx_labels(labels_path, lbuf, len, &nl);
        if (nl != d.n) die(labels_path, "%d labels for %d images in %s", nl, d.n, images_path);
        d.labels = xmalloc((size_t)d.n * sizeof(int));
        for (int i = 0; i < d.n; i++) d.labels[i] = lab[i];
        free(lbuf);
    }
    return d;
}

// Resize one image (c channels, sh x sw bytes) to dh x dw floats in [-1, 1] with a box filter: each output pixel
// is the mean of the input pixels whose centres fall inside its footprint (area averaging, which does not alias
// when shrinking a photo to 28x28); when enlarging, the footprint may hold no centre and we take the nearest pixel.
static void resize_box(float *out, const unsigned char *in, int c, int sh, int sw, int dh, int dw) {
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++) {
            int y0 = (int)((double)y * sh / dh), y1 = (int)((double)(y + 1) * sh / dh);
            int x0 = (int)((double)x * sw / dw), x1 = (int)((double)(x + 1) * sw / dw);
            if (y1 <= y0) y1 = y0 + 1;
            if (x1 <= x0) x1 = x0 + 1;
            for (int ch = 0; ch < c; ch++) {
                double sum = 0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) sum += in[((size_t)yy * sw + xx) * c + ch];
                out[((size_t)ch * dh + y) * dw + x] = (float)(sum / ((y1 - y0) * (x1 - x0)) / 127.5 - 1.0);
            }
        }
}

// Debian's stb_image 2.27 overruns a buffer on a JPEG Huffman table (DHT) that declares more than 256 codes (found
// by our fuzzer; nothings/stb #1289, fixed in stb 2.28). So before stb sees a JPEG, walk its segments as stb will
// and refuse such tables. stb also takes FF fill bytes before the FF D8 that starts the file, and reads DHT
// segments between scans (progressive JPEGs have them there), so the walk goes on through the compressed data byte
// by byte, where a marker is FF followed by anything but 00, FF or a restart D0..D7, up to the end of image.
// Returns NULL if the file is fine (or not a JPEG), else what is wrong.
static const char *jpeg_tables_problem(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;  // stbi_info reports the error
    int first = fgetc(f);
    fclose(f);
    if (first != 0xFF) return NULL;  // not a JPEG: no need to read it twice
    size_t n, i = 0;
    unsigned char *p = read_file(path, MAX_FILE_BYTES, &n);
    while (i < n && p[i] == 0xFF) i++;
    const char *why = NULL;
    if (i < n && p[i] == 0xD8)
        for (i++; i + 4 <= n && !why;) {
            int m = p[i + 1];
            if (p[i] != 0xFF || m == 0x00 || m == 0xFF || (m >= 0xD0 && m <= 0xD8) || m == 0x01) { i++; continue; }
            if (m == 0xD9) break;  // end of image
            size_t end = i + 2 + ((size_t)p[i + 2] << 8 | p[i + 3]);
            if (m == 0xC4)  // DHT: one or more tables of (class/id, 16 counts, symbols); stb reads past `end` if told
                for (size_t q = i + 4; q < end && q < n && !why;) {
                    size_t codes = 0;
                    for (size_t k = 1; k <= 16 && q + k < n; k++) codes += p[q + k];
                    if (codes > 256) why = "JPEG Huffman table with more than 256 codes";
                    q += 17 + codes;
                }
            i = end;
        }
    free(p);
    return why;
}

static int has_image_extension(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    char ext[8] = {0};
    for (int i = 0; i < 7 && dot[1 + i]; i++) ext[i] = (char)(dot[1 + i] | 0x20);  // lower case
    return !strcmp(ext, "png") || !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}
static int compare_strings(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Loads one PNG/JPEG (or every one in a folder, in sorted order, so runs are reproducible) at c channels
// (1 gray, 3 RGB) resized to size x size. The header is checked with stbi_info before any pixel is decoded.
static Dataset load_images(const char *path, int c, int size) {
    struct stat st;
    if (stat(path, &st) != 0) die(path, "cannot open: %s", strerror(errno));
    char **files = NULL;
    int nfiles = 0;
    if (S_ISDIR(st.st_mode)) {
        DIR *dir = opendir(path);
        if (!dir) die(path, "cannot read folder: %s", strerror(errno));
        int cap = 0;
        for (struct dirent *e; (e = readdir(dir));) {
            if (e->d_name[0] == '.' || !has_image_extension(e->d_name)) continue;
            if (nfiles == MAX_IMAGES) { closedir(dir); die(path, "more than %d images", MAX_IMAGES); }
            if (nfiles == cap) {
                cap = cap ? 2 * cap : 64;
                files = realloc(files, (size_t)cap * sizeof(char *));
                if (!files) die("memory", "cannot list %s", path);
            }
            size_t len = strlen(path) + strlen(e->d_name) + 2;
            files[nfiles] = xmalloc(len);
            snprintf(files[nfiles++], len, "%s/%s", path, e->d_name);
        }
        closedir(dir);
        if (nfiles == 0) die(path, "no .png, .jpg or .jpeg files in this folder");
        qsort(files, (size_t)nfiles, sizeof(char *), compare_strings);
    } else {
        files = xmalloc(sizeof(char *));
        files[0] = xmalloc(strlen(path) + 1);
        strcpy(files[0], path);
        nfiles = 1;
    }
    Dataset d = {.n = nfiles, .c = c, .h = size, .w = size};
    d.pixels = xmalloc((size_t)nfiles * c * size * size * sizeof(float));
    for (int i = 0; i < nfiles; i++) {
        int w, h, comp;
        const char *jpeg_problem = jpeg_tables_problem(files[i]);
        if (jpeg_problem) die(files[i], "not a readable PNG/JPEG image (%s)", jpeg_problem);
        if (!stbi_info(files[i], &w, &h, &comp)) die(files[i], "not a readable PNG/JPEG image (%s)", stbi_failure_reason());
        if (w < 1 || h < 1 || w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE) die(files[i], "image size %dx%d out of range 1..%d", w, h, MAX_IMAGE_SIDE);
        unsigned char *img = stbi_load(files[i], &w, &h, &comp, c);
        if (!img) die(files[i], "cannot decode image (%s)", stbi_failure_reason());
        resize_box(d.pixels + (size_t)i * c * size * size, img, c, h, w, size, size);
        stbi_image_free(img);
        free(files[i]);
    }
    free(files);
    return d;
}

// --data: "fashion-mnist" (Debian's copy), a folder holding train-images-idx3-ubyte.gz, an idx image file
// (its labels are read from the matching ...labels-idx1... file when it exists), or PNG/JPEG file(s).
static Dataset load_dataset(const char *spec, int channels, int size) {
    char images[4096], labels[4096];
    const char *dir = !strcmp(spec, "fashion-mnist") ? FASHION_DIR : spec;
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", dir);
    struct stat st;
    if (!strcmp(spec, "fashion-mnist") || stat(images, &st) == 0) {
        if (!strcmp(spec, "fashion-mnist") && stat(images, &st) != 0)
            die(images, "Fashion-MNIST not found: install Debian's dataset-fashion-mnist (make deps)");
        return load_idx(images, labels);
    }
    const char *base = strrchr(spec, '/');
    base = base ? base + 1 : spec;
    if (strstr(base, "idx3") || strstr(base, "-ubyte")) {
        snprintf(labels, sizeof labels, "%s", spec);
        char *p = strstr(labels, "images-idx3");
        int have_labels = p && (memcpy(p, "labels-idx1", 11), stat(labels, &st) == 0);
        return load_idx(spec, have_labels ? labels : NULL);
    }
    return load_images(spec, channels, size);
}
static void dataset_free(Dataset *d) { free(d->pixels); free(d->labels); }

// The slide's algorithm for a batch: B tuples (x_0, t, eps, x_t); labels too when the data has them.
// x0, eps, xt: (B, C, H, W); t, label: (B).
static void draw_training_batch(real *x0, int *t, real *eps, real *xt, int *label, const Dataset *d,
                                const Schedule *s, int B, Rng *rng) {
    size_t n = (size_t)d->c * d->h * d->w;
    for (int b = 0; b < B; b++) {
        int i = rng_int(rng, d->n);                                     // 1. a random training image
        for (size_t k = 0; k < n; k++) x0[b * n + k] = d->pixels[(size_t)i * n + k];
        if (label) label[b] = d->labels ? d->labels[i] : -1;
        t[b] = 1 + rng_int(rng, s->T);                                  // 2. t ~ Unif{1..T}
        rng_normal_fill(rng, eps + b * n, n);                           // 3. eps ~ N(0, I)
        forward_one_shot(xt + b * n, x0 + b * n, eps + b * n, s, t[b], n);  // 4. x_t in one shot
    }
}

// ============================================================================================================
// Step 4. Learn a denoiser eps_theta(x_t, t)
//     min_theta  E_{(x_0, x_t, eps, t)} || eps - eps_theta(x_t, t) ||^2          (lecture 000, step 4; L_simple)
// The network is the slide's "default recommendation: U-Net denoiser + time embedding", with one self-attention
// layer and class conditioning (for classifier-free guidance, lecture 001). Every layer is a forward function and,
// right after it, its backward function: backward functions ADD their gradients into the d-buffers (+=), and one
// place (model_backward) zeroes them once per step. `./diffusion gradcheck` checks every pair by finite differences,
// and test.sh compares the whole network with PyTorch (notes/pytorch_mirror.py, data/unet_ref.bin).
// ============================================================================================================

// ---- The one matrix product everything uses -------------------------------------------------------------------
// C (M x N) = [C +] A (M x K) . B (K x N). Element (i,k) of A is A[i*ars + k*acs], and likewise for B, so a
// transposed operand is the same memory read with its two strides swapped: convolution forward (W . col), both
// convolution backward passes (col . dout^T and W^T . dout), the linear layers and attention all call this.
//
// BEYOND THE SLIDES: how it is made fast. A naive triple loop reads every A and B element from memory N and M
// times; instead (after Goto & van de Geijn 2008 and BLIS) C is computed in tiles of MR x NR that live in vector
// registers for a whole slice of K (the micro-kernel):
//
//            kc               NR = 2 vectors
//        +--------+          +------+
//     MR |   A    |   x   kc | B    |   =   MR x NR tile of C, held in MR*2 vector registers,
//        +--------+          | pan. |       updated by one broadcast-multiply-add per element of A
//                            +------+
// Each loaded B vector is used MR times and each A value 2*VL times, so the FMA units, not memory, set the pace.
// The kernel reads B by panels NR columns wide (each row of a panel: NR consecutive values), in slices of at most
// KC rows (a panel slice then stays in the L1 cache while every MR-row strip of A passes by) and blocks of NC
// columns. When B's rows are contiguous, a panel is read where it lies; a transposed B, and a last panel narrower
// than NR, are first copied ("packed") into that layout, zero-padded. Likewise a strip of A is read where it lies
// (MR rows, each read along k, or MR values side by side for a transposed A); only a last strip of fewer than MR
// rows is copied. So most products copy nothing at all.
// Threads share the tiles of C: every C element is summed over k in the same order whatever the thread count,
// so results do not depend on it. The vectors are GCC vector extensions: plain C that the compiler maps onto
// whatever the target has (SSE, AVX2, AVX-512).
// The vector width is the widest the build targets: 64 bytes with AVX-512 (make fast: -march=native on this
// machine), 32 with AVX2, 16 otherwise (SSE2, which every x86-64 has, or NEON). MR x 2 = 12 accumulators fit the
// register file (16 registers for SSE/AVX2: MR = 6 rows x 2 = 12 accumulators; 32 for AVX-512: MR = 8, 16
// accumulators), so the tile never spills to memory. On this machine the kernel alone runs at 98% of the FMA peak.
// A plain x86-64 build (no -m flags) targets SSE2, which has no fused multiply-add. There GCC compiles gemm twice
// (function multiversioning) and picks at run time: with FMA (most x86-64 CPUs made since 2013) or without; with FMA the
// plain build trains 1.5x faster. The fast build (-march=native) needs none of this.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX__)
#define FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define FMA_CLONES
#endif
#if defined(__AVX512F__)
enum { VEC_BYTES = 64 };
#elif defined(__AVX__)
enum { VEC_BYTES = 32 };
#else
enum { VEC_BYTES = 16 };
#endif
typedef real vec __attribute__((vector_size(VEC_BYTES)));
enum { VL = VEC_BYTES / sizeof(real), MR = VEC_BYTES == 64 ? 8 : 6, NR = 2 * VL, KC = 256, NC = 256 };

// acc (MR x NR) = A (MR x kc, element (r,k) at a[r*ars + k*acs]) . B (kc x NR, row k: NR values at b + k*brs)
__attribute__((always_inline)) static inline void gemm_kernel(int kc, const real *a, long ars, long acs, const real *b,
                                                            long brs, vec acc[MR][2]) {
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = (vec){0};
    for (int k = 0; k < kc; k++) {
        vec b0, b1;
        memcpy(&b0, b + k * brs, sizeof b0);
        memcpy(&b1, b + k * brs + VL, sizeof b1);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {  // unrolled, so that acc stays in registers (GCC -O2 would not)
            real ar = a[r * ars + k * acs];
            acc[r][0] += ar * b0;
            acc[r][1] += ar * b1;
        }
    }
}

// B[k0.., j0..] (kc x nc) -> ceil(nc / NR) panels (kc, NR) one after the other, the last one zero-padded.
// The loop order follows B's memory: along its rows (bcs = 1) or, for a transposed B, along its columns.
static void pack_b(real *bpack, const real *B, long brs, long bcs, int k0, int kc, int j0, int nc) {
    int npanels = (nc + NR - 1) / NR;
    if (nc < npanels * NR) memset(bpack + (size_t)(npanels - 1) * kc * NR, 0, (size_t)kc * NR * sizeof(real));
    if (bcs == 1)
        for (int k = 0; k < kc; k++)
            for (int j = 0; j < nc; j++) bpack[((size_t)(j / NR) * kc + k) * NR + j % NR] = B[(k0 + k) * brs + j0 + j];
    else
        for (int j = 0; j < nc; j++)
            for (int k = 0; k < kc; k++) bpack[((size_t)(j / NR) * kc + k) * NR + j % NR] = B[(k0 + k) * brs + (j0 + j) * bcs];
}
// A[i0.., k0..] (rows < MR valid rows, kc columns) -> panel (kc, MR), zero-padded to MR rows
static void pack_a_panel(real *panel, const real *A, long ars, long acs, int i0, int k0, int kc, int rows) {
    memset(panel, 0, (size_t)kc * MR * sizeof(real));
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < kc; k++) panel[k * MR + r] = A[(i0 + r) * ars + (k0 + k) * acs];
}
// C tile (rows x cols at c, row stride crs) = or += acc. Whole rows go as two vector stores.
__attribute__((always_inline)) static inline void store_tile(real *c, long crs, const vec acc[MR][2], int rows, int cols, int add) {
    for (int r = 0; r < rows; r++, c += crs) {
        if (cols == NR) {
            vec c0 = acc[r][0], c1 = acc[r][1], old;
            if (add) memcpy(&old, c, sizeof old), c0 += old, memcpy(&old, c + VL, sizeof old), c1 += old;
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

FMA_CLONES static void gemm(int M, int N, int K, const real *A, long ars, long acs, const real *B, long brs, long bcs,
                 real *C, long crs, int accumulate) {
    // Packed blocks live on the stack (0.26 MB in float, 0.5 MB in double): nothing is allocated per call.
    _Alignas(64) real bpack[KC * NC];
    _Alignas(64) real apack[MR * KC];
    if (K == 0) {
        if (!accumulate)
            for (int i = 0; i < M; i++) memset(C + i * crs, 0, N * sizeof(real));
        return;
    }
    int mpanels = (M + MR - 1) / MR, full = M / MR;  // A strips read in place; a last one of < MR rows is copied
    int slices = (K + KC - 1) / KC, slice = (K + slices - 1) / slices;  // K in equal slices of at most KC
    for (int jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC, npanels = (nc + NR - 1) / NR;
        for (int pc = 0; pc < K; pc += slice) {
            int kc = K - pc < slice ? K - pc : slice;
            int add = accumulate || pc > 0;  // the first K slice overwrites C unless accumulating
            int inplace = bcs == 1 ? nc / NR : 0;  // whole panels of a B with contiguous rows are read in place
            if (inplace < npanels) pack_b(bpack, B, brs, bcs, pc, kc, jc + inplace * NR, nc - inplace * NR);
            if (full < mpanels) pack_a_panel(apack, A, ars, acs, full * MR, pc, kc, M - full * MR);
#pragma omp parallel for schedule(static)
            for (int tile = 0; tile < npanels * mpanels; tile++) {
                int p = tile / mpanels, q = tile % mpanels, i0 = q * MR, j0 = jc + p * NR;
                vec acc[MR][2];
                const real *b = p < inplace ? B + pc * brs + j0 : bpack + (size_t)(p - inplace) * kc * NR;
                long bs = p < inplace ? brs : NR;
                if (q < full)
                    gemm_kernel(kc, A + i0 * ars + pc * acs, ars, acs, b, bs, acc);
                else
                    gemm_kernel(kc, apack, 1, MR, b, bs, acc);
                store_tile(C + i0 * crs + j0, crs, acc, M - i0 < MR ? M - i0 : MR, N - j0 < NR ? N - j0 : NR, add);
            }
        }
    }
}

// ---- Sums that vectorize: the reductions of the backward passes and GroupNorm -----------------------------
// sum_a = sum_i a_i and sum_ab = sum_i a_i (b_i - shift) scale over n values, in double, as 8 interleaved partial
// sums added at the end: a fixed order (the same on any thread count) that the compiler turns into vector code.
static void lane_sums(const real *a, const real *b, real shift, real scale, long n, double *sum_a, double *sum_ab) {
    double sa[8] = {0}, sab[8] = {0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) sa[l] += a[i + l], sab[l] += (double)a[i + l] * ((b[i + l] - shift) * scale);
    for (; i < n; i++) sa[0] += a[i], sab[0] += (double)a[i] * ((b[i] - shift) * scale);
    *sum_a = *sum_ab = 0;
    for (int l = 0; l < 8; l++) *sum_a += sa[l], *sum_ab += sab[l];
}
static double lane_sum(const real *a, long n) {  // sum_i a_i alone
    double sum, unused;
    lane_sums(a, a, 0, 0, n, &sum, &unused);
    return sum;
}
// dst += src (n values)
static void add_into(real *dst, const real *src, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

// ---- Convolution (3x3 stride 1 or 2, 1x1), by im2col + gemm ----------------------------------------------
// A KxK convolution is a matrix product once every input patch is unrolled into a column: col has one row per
// (c, ky, kx) and one column per output position (oy, ox), col[(c,ky,kx)][(oy,ox)] = inp[c][oy*s+ky-p][ox*s+kx-p]
// (0 outside the image, padding p = K/2). Then out (OC, N') = weight (OC, C*K*K) . col (C*K*K, N').
static int conv_out_size(int size, int K, int stride) { return (size + 2 * (K / 2) - K) / stride + 1; }

// inp (C,H,W) -> col (C*K*K, OH*OW). Each row is one (c, ky, kx).
// Stride 1 (OH = H, OW = W): row (c, ky, kx) is image c moved by (sy, sx) = (ky - pad, kx - pad), i.e. in the
// flattened image col[p] = inp[p + sy W + sx]: one long copy. Then the rows that fall outside the image, and the
// one column that wrapped around to the other side of the image (sx = -1: ox = 0; sx = +1: ox = W - 1), are zeros.
static void im2col(real *col, const real *inp, int C, int H, int W, int K, int stride) {
    int OH = conv_out_size(H, K, stride), OW = conv_out_size(W, K, stride), pad = K / 2;
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                real *row = col + (size_t)((c * K + ky) * K + kx) * OH * OW;
                const real *img = inp + (size_t)c * H * W;
                if (stride == 1) {
                    int sy = ky - pad, sx = kx - pad;
                    int y0 = sy < 0 ? -sy : 0, y1 = sy > 0 ? H - sy : H;  // output rows that read inside the image
                    int p0 = y0 * W + (sx < 0 ? -sx : 0), p1 = y1 * W - (sx > 0 ? sx : 0);
                    if (p0 > H * W) p0 = H * W;  // images smaller than the kernel: nothing to copy
                    if (p1 < p0) p1 = p0;
                    memset(row, 0, p0 * sizeof(real));
                    memcpy(row + p0, img + p0 + sy * W + sx, (p1 - p0) * sizeof(real));
                    memset(row + p1, 0, (H * W - p1) * sizeof(real));
                    if (sx != 0)  // the column that wrapped around
                        for (int oy = y0; oy < y1; oy++) row[oy * W + (sx < 0 ? 0 : W - 1)] = 0;
                    continue;
                }
                for (int oy = 0; oy < OH; oy++)
                    for (int ox = 0; ox < OW; ox++) {
                        int y = oy * stride + ky - pad, x = ox * stride + kx - pad;
                        row[oy * OW + ox] = y >= 0 && y < H && x >= 0 && x < W ? img[y * W + x] : 0;
                    }
            }
}
// The adjoint of im2col: every column entry adds its gradient back to the pixel it was copied from.
// dcol (C*K*K, OH*OW) -> dinp (C,H,W) (+=)
static void col2im(real *dinp, const real *dcol, int C, int H, int W, int K, int stride) {
    int OH = conv_out_size(H, K, stride), OW = conv_out_size(W, K, stride), pad = K / 2;
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

// Scratch for the convolutions, allocated once: each thread gets its own im2col buffers (col, dcol: col_size
// values each); `flipped` holds one weight tensor rearranged for the input gradient; `partial` holds DW_SLOTS weight
// gradients (DW_SLOTS x weight_size): image b adds its weight gradient into slot b % DW_SLOTS, the slots run in
// parallel, and at the end they are summed in the order 0, 1, 2, ...: every sum has the same order whatever the
// number of threads, so the result does not depend on it.
enum { DW_SLOTS = 16 };
typedef struct {
    int threads;
    size_t col_size, weight_size;
    real *col, *dcol, *flipped, *partial;
} Workspace;
static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// inp (B,C,H,W), weight (OC,C,K,K), bias (OC) -> out (B,OC,OH,OW). Images in parallel.
static void conv2d_forward(real *out, const real *inp, const real *weight, const real *bias, int B, int C, int H,
                           int W, int OC, int K, int stride, const Workspace *ws) {
    int OH = conv_out_size(H, K, stride), OW = conv_out_size(W, K, stride), N = OH * OW, CKK = C * K * K;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const real *x = inp + (size_t)b * C * H * W, *col = x;  // a 1x1 convolution's col is the image itself
        real *y = out + (size_t)b * OC * N;
        if (!(K == 1 && stride == 1)) {
            real *mine = ws->col + (size_t)thread_id() * ws->col_size;
            im2col(mine, x, C, H, W, K, stride);
            col = mine;
        }
        gemm(OC, N, CKK, weight, CKK, 1, col, N, 1, y, N, 0);  // y = W . col
        for (int o = 0; o < OC; o++)
            for (int p = 0; p < N; p++) y[o * N + p] += bias[o];
    }
}
// forward: out = W . col(inp) + b, so  dW += dout . col^T,  db += sum_p dout,  dinp += col2im(W^T . dout).
// The input gradient of a stride-1 convolution is itself a convolution: of dout, with the kernel turned by 180
// degrees and its two channel axes swapped, flipped[c][o][ky][kx] = W[o][c][K-1-ky][K-1-kx] (input pixel x gets
// W[ky][kx] dout[x - ky + pad], i.e. the kernel read backwards). So dinp = flipped . im2col(dout): the same im2col
// and gemm as the forward, with K = OC K^2 (instead of col2im's K = OC, a product too thin to run fast).
// Stride 2 keeps the plain route: dcol = W^T . dout, then col2im adds each entry back to its pixel.
// dinp may be NULL (the network input needs no gradient).
static void conv2d_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp,
                            const real *weight, int B, int C, int H, int W, int OC, int K, int stride, const Workspace *ws) {
    int OH = conv_out_size(H, K, stride), OW = conv_out_size(W, K, stride), N = OH * OW, CKK = C * K * K, OKK = OC * K * K;
    int pointwise = K == 1 && stride == 1, flip = stride == 1 && !pointwise && dinp;
    if (flip)
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++)
                for (int k = 0; k < K * K; k++) ws->flipped[((size_t)c * OC + o) * K * K + k] = weight[((size_t)o * C + c) * K * K + K * K - 1 - k];
    int slots = B < DW_SLOTS ? B : DW_SLOTS;
#pragma omp parallel for schedule(static)
    for (int slot = 0; slot < slots; slot++)
        for (int b = slot; b < B; b += slots) {
            const real *x = inp + (size_t)b * C * H * W, *cols = x;
            const real *dy = dout + (size_t)b * OC * N;
            real *col = ws->col + (size_t)thread_id() * ws->col_size, *dcol = ws->dcol + (size_t)thread_id() * ws->col_size;
            if (!pointwise) { im2col(col, x, C, H, W, K, stride); cols = col; }
            // dW_b = dout . col^T, computed transposed, dW_b^T (CKK, OC) = col . dout^T: then gemm reads the big
            // operand (col) in place, MR rows at a time, and copies only the small one (dout^T, OC columns).
            gemm(CKK, OC, N, cols, N, 1, dy, 1, N, ws->partial + (size_t)slot * ws->weight_size, OC, b >= slots);
            if (!dinp) continue;
            real *dx = dinp + (size_t)b * C * H * W;
            if (pointwise) {
                gemm(C, N, OC, weight, 1, CKK, dy, N, 1, dx, N, 1);  // dx += W^T . dout
            } else if (flip) {
                im2col(dcol, dy, OC, H, W, K, 1);
                gemm(C, N, OKK, ws->flipped, OKK, 1, dcol, N, 1, dx, N, 1);  // dx += flipped . im2col(dout)
            } else {
                gemm(CKK, N, OC, weight, 1, CKK, dy, N, 1, dcol, N, 0);  // dcol = W^T . dout
                col2im(dx, dcol, C, H, W, K, stride);
            }
        }
    // dW += the slots' sum in the order 0, 1, ... (into slot 0, contiguously), transposed back from (CKK, OC) to
    // the weight's (OC, CKK).
#pragma omp parallel for schedule(static)
    for (int k = 0; k < CKK; k++) {
        real *sum = ws->partial + (size_t)k * OC;
        for (int s = 1; s < slots; s++) {
            const real *p = ws->partial + (size_t)s * ws->weight_size + (size_t)k * OC;
            for (int o = 0; o < OC; o++) sum[o] += p[o];
        }
        for (int o = 0; o < OC; o++) dweight[(size_t)o * CKK + k] += sum[o];
    }
#pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++)
        for (int b = 0; b < B; b++) dbias[o] += (real)lane_sum(dout + ((size_t)b * OC + o) * N, N);
}

// ---- Linear --------------------------------------------------------------------------------------------------
// inp (B,I), weight (O,I), bias (O) -> out (B,O) = inp . W^T + b
static void linear_forward(real *out, const real *inp, const real *weight, const real *bias, int B, int I, int O) {
    gemm(B, O, I, inp, I, 1, weight, 1, I, out, O, 0);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O; o++) out[b * O + o] += bias[o];
}
// forward: out = inp W^T + b, so  dW += dout^T . inp,  db += sum_b dout,  dinp += dout . W
static void linear_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp,
                            const real *weight, int B, int I, int O) {
    gemm(O, I, B, dout, 1, O, inp, I, 1, dweight, I, 1);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O; o++) dbias[o] += dout[b * O + o];
    if (dinp) gemm(B, I, O, dout, O, 1, weight, I, 1, dinp, I, 1);
}

// ---- SiLU ------------------------------------------------------------------------------------------------------
// out = x sigmoid(x) elementwise (n values). Smooth, and unlike ReLU it lets small negative values through.
// e^x without a library call, so that the loops calling it (SiLU, softmax) vectorize: 8x faster than expf in
// `make fast`. e^x = 2^n e^r with n = round(x / ln 2) (the 1.5 * 2^23 trick rounds to an integer), |r| <= ln2 / 2,
// e^r by its Taylor series to r^7 (remainder < 1e-8), 2^n written straight into a float's exponent bits.
// Relative error <= 7.5e-8 (under 1 float ulp) on [-87, 88], checked by gradcheck; outside, x is clamped so that
// 2^n stays a normal float (NaN goes to -87). The double build calls exp().
static real exp_real(real x) {
    if (sizeof(real) == sizeof(double)) return (real)exp(x);
    float xf = x > -87.0f ? (float)x : -87.0f;
    xf = xf < 88.0f ? xf : 88.0f;
    float n = (xf * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = (xf - n * 0.693145752f) - n * 1.42860677e-6f;  // ln 2 in two parts: n * 0.693145752 is exact
    float p = 1 + r * (1 + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
}
static real sigmoid(real x) { return 1 / (1 + exp_real(-x)); }
static void silu_forward(real *out, const real *inp, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] * sigmoid(inp[i]);
}
// forward: y = x s(x), s = sigmoid, so dy/dx = s + x s (1 - s)
static void silu_backward(real *dinp, const real *dout, const real *inp, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real s = sigmoid(inp[i]);
        dinp[i] += dout[i] * s * (1 + inp[i] * (1 - s));
    }
}

// ---- GroupNorm (Wu & He 2018) ----------------------------------------------------------------------------------
// The C channels are split in G groups; each (image, group) is normalised over its C/G channels and N positions,
// then each channel gets its own scale gamma and shift beta. Unlike BatchNorm it does not mix images of a batch,
// so a sample does not depend on what else is in the batch.
// inp (B,C,N), gamma, beta (C) -> out (B,C,N), mean, rstd (B,G) saved for backward (rstd = 1/sqrt(var + 1e-5)).
static const double GN_EPS = 1e-5;
static void groupnorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *gamma,
                              const real *beta, int B, int C, int N, int G) {
    int cg = C / G;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            const real *x = inp + ((size_t)b * C + g * cg) * N;
            double sum, sumsq;  // double: a sum of up to 9408 terms, and var = E[x^2] - E[x]^2 cancels
            lane_sums(x, x, 0, 1, (long)cg * N, &sum, &sumsq);
            double m = sum / (cg * N), var = sumsq / (cg * N) - m * m;
            if (var < 0) var = 0;
            double r = 1 / sqrt(var + GN_EPS);
            mean[b * G + g] = (real)m, rstd[b * G + g] = (real)r;
            for (int c = 0; c < cg; c++) {
                int ch = g * cg + c;
                real *y = out + ((size_t)b * C + ch) * N;
                for (int p = 0; p < N; p++) y[p] = (real)((x[c * N + p] - m) * r) * gamma[ch] + beta[ch];
            }
        }
}
// forward: xhat = (x - m) r, y = gamma xhat + beta. Then dgamma += sum dy xhat, dbeta += sum dy, and since m and r
// depend on every x of the group:  dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),  dxhat = gamma dy.
static void groupnorm_backward(real *dinp, real *dgamma, real *dbeta, const real *dout, const real *inp,
                               const real *mean, const real *rstd, const real *gamma, int B, int C, int N, int G) {
    int cg = C / G;
#pragma omp parallel for schedule(static)
    for (int g = 0; g < G; g++)  // groups in parallel: each channel's dgamma, dbeta summed over b in order
        for (int b = 0; b < B; b++) {
            real m = mean[b * G + g], r = rstd[b * G + g];
            double mean_dxhat = 0, mean_dxhat_xhat = 0;
            for (int c = 0; c < cg; c++) {
                int ch = g * cg + c;
                const real *x = inp + ((size_t)b * C + ch) * N, *dy = dout + ((size_t)b * C + ch) * N;
                double sdy, sdyx;  // sum dy, sum dy xhat
                lane_sums(dy, x, m, r, N, &sdy, &sdyx);
                dgamma[ch] += (real)sdyx, dbeta[ch] += (real)sdy;
                mean_dxhat += gamma[ch] * sdy, mean_dxhat_xhat += gamma[ch] * sdyx;
            }
            mean_dxhat /= cg * N, mean_dxhat_xhat /= cg * N;
            for (int c = 0; c < cg; c++) {
                int ch = g * cg + c;
                const real *x = inp + ((size_t)b * C + ch) * N, *dy = dout + ((size_t)b * C + ch) * N;
                real *dx = dinp + ((size_t)b * C + ch) * N;
                for (int p = 0; p < N; p++) {
                    real xhat = (x[p] - m) * r;
                    dx[p] += r * (real)(gamma[ch] * dy[p] - mean_dxhat - xhat * mean_dxhat_xhat);
                }
            }
        }
}

// ---- Sinusoidal time embedding (Vaswani et al. 2017; Ho et al. 2020) ------------------------------------------
// The network must know how noisy its input is. t (a number, 1..T) becomes D features at geometric frequencies
// f_i = 10000^(-i/(D/2)), i = 0..D/2-1:  emb = [sin(t f_0) .. sin(t f_{D/2-1}), cos(t f_0) .. cos(t f_{D/2-1})].
// Nearby t get similar vectors, distant t different ones, at every scale from 1 step to thousands.
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
// The timestep is an input, not a parameter, so training never needs this; it is here so that gradcheck can
// prove the pair. d sin(t f)/dt = f cos(t f), d cos(t f)/dt = -f sin(t f).  dout (B,D) -> dt (B) (+=)
static void sinusoid_backward(real *dt, const real *dout, const real *t, int B, int D) {
    int half = D / 2;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < half; i++) {
            double f = exp(-log(10000.0) * i / half);
            dt[b] += (real)(f * cos(t[b] * f) * dout[b * D + i] - f * sin(t[b] * f) * dout[b * D + half + i]);
        }
}

// ---- Embedding lookup (the class label) -----------------------------------------------------------------------
// table (R,D), label (B) -> out (B,D) += table[label]   (R = classes + 1; the last row means "no label")
static void embedding_forward(real *out, const real *table, const int *label, int B, int D) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++) out[b * D + i] += table[(size_t)label[b] * D + i];
}
// forward copies a row, so its gradient goes back to that row:  dtable[label] += dout
static void embedding_backward(real *dtable, const real *dout, const int *label, int B, int D) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++) dtable[(size_t)label[b] * D + i] += dout[b * D + i];
}

// ---- Adding a per-channel vector (the time embedding's projection) over all positions ------------------------
// h (B,C,N) += v (B,C) broadcast over N
static void add_channel_vector_forward(real *h, const real *v, int B, int C, int N) {
#pragma omp parallel for schedule(static)
    for (int bc = 0; bc < B * C; bc++)
        for (int p = 0; p < N; p++) h[(size_t)bc * N + p] += v[bc];
}
// forward adds v[b][c] to N positions, so dv[b][c] += sum_p dh[b][c][p]
static void add_channel_vector_backward(real *dv, const real *dh, int B, int C, int N) {
#pragma omp parallel for schedule(static)
    for (int bc = 0; bc < B * C; bc++) dv[bc] += (real)lane_sum(dh + (size_t)bc * N, N);
}

// ---- Residual add -------------------------------------------------------------------------------------------
// out = a + b (n values). The U-Net's ResBlocks and attention add their input back to their output, so the
// gradient has a short path around every block.
static void residual_forward(real *out, const real *a, const real *b, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
// d(a + b)/da = d(a + b)/db = 1: both inputs receive dout.
static void residual_backward(real *da, real *db, const real *dout, size_t n) {
    add_into(da, dout, n);
    add_into(db, dout, n);
}

// ---- Nearest-neighbour upsampling x2 ------------------------------------------------------------------------
// inp (B*C, H, W) -> out (B*C, 2H, 2W): each pixel becomes a 2x2 block.
static void upsample_forward(real *out, const real *inp, int BC, int H, int W) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < BC; i++)
        for (int y = 0; y < 2 * H; y++)
            for (int x = 0; x < 2 * W; x++)
                out[((size_t)i * 2 * H + y) * 2 * W + x] = inp[((size_t)i * H + y / 2) * W + x / 2];
}
// each input pixel was copied to 4 outputs, so it receives the sum of their 4 gradients
static void upsample_backward(real *dinp, const real *dout, int BC, int H, int W) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < BC; i++)
        for (int y = 0; y < 2 * H; y++)
            for (int x = 0; x < 2 * W; x++)
                dinp[((size_t)i * H + y / 2) * W + x / 2] += dout[((size_t)i * 2 * H + y) * 2 * W + x];
}

// ---- Channel concatenation (the U-Net's skip connections) ---------------------------------------------------
// a (B,CA,N), b (B,CB,N) -> out (B,CA+CB,N): per image, a's channels then b's.
static void concat_forward(real *out, const real *a, const real *b, int B, int CA, int CB, int N) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B; i++) {
        memcpy(out + (size_t)i * (CA + CB) * N, a + (size_t)i * CA * N, sizeof(real) * CA * N);
        memcpy(out + ((size_t)i * (CA + CB) + CA) * N, b + (size_t)i * CB * N, sizeof(real) * CB * N);
    }
}
// concatenation only moves values, so its backward splits dout back into the two parts
static void concat_backward(real *da, real *db, const real *dout, int B, int CA, int CB, int N) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B; i++) {
        const real *d = dout + (size_t)i * (CA + CB) * N;
        for (size_t k = 0; k < (size_t)CA * N; k++) da[(size_t)i * CA * N + k] += d[k];
        for (size_t k = 0; k < (size_t)CB * N; k++) db[(size_t)i * CB * N + k] += d[(size_t)CA * N + k];
    }
}

// ---- Softmax over rows ----------------------------------------------------------------------------------------
// s (R, N) -> p (R, N), p_ij = exp(s_ij - max_j s) / sum_j exp(...): subtracting the row max changes nothing
// mathematically and keeps exp() from overflowing.
static void softmax_forward(real *p, const real *s, int R, int N) {
    for (int i = 0; i < R; i++) {
        const real *x = s + (size_t)i * N;
        real *y = p + (size_t)i * N, mx = x[0];
        for (int j = 1; j < N; j++) mx = x[j] > mx ? x[j] : mx;
        double sum = 0;
        for (int j = 0; j < N; j++) sum += (y[j] = exp_real(x[j] - mx));
        for (int j = 0; j < N; j++) y[j] = (real)(y[j] / sum);
    }
}
// forward: p = softmax(s), so ds_ij = p_ij (dp_ij - sum_k p_ik dp_ik)   (ds written, not added)
static void softmax_backward(real *ds, const real *dp, const real *p, int R, int N) {
    for (int i = 0; i < R; i++) {
        const real *pi = p + (size_t)i * N, *dpi = dp + (size_t)i * N;
        double dot = 0;
        for (int j = 0; j < N; j++) dot += pi[j] * dpi[j];
        for (int j = 0; j < N; j++) ds[(size_t)i * N + j] = pi[j] * (real)(dpi[j] - dot);
    }
}

// ---- The loss of step 4 ------------------------------------------------------------------------------------------
// L = (1/B) sum_b ||eps_b - pred_b||^2 / (pixels) = the mean of (pred - eps)^2 over all n = B*C*H*W values.
static double mse_forward(const real *pred, const real *eps, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ((double)pred[i] - eps[i]) * ((double)pred[i] - eps[i]);
    return s / (double)n;
}
// dL/dpred = 2 (pred - eps) / n
static void mse_backward(real *dpred, const real *pred, const real *eps, size_t n) {
    for (size_t i = 0; i < n; i++) dpred[i] += (real)(2.0 * (pred[i] - eps[i]) / (double)n);
}

// ---- The U-Net: configuration, parameters and activations ---------------------------------------------------
// Default sizes (the U-Net issue): 28x28x1 input, widths 32 at 28x28 and 64 at 14x14 and 7x7, a 32-dim sinusoid
// lifted to a 128-dim time embedding, GroupNorm with 8 groups, 10 classes plus the "no label" row.
typedef struct {
    int img_c, img_h, img_w;  // image channels and size (h, w divisible by 4: two 2x downsamplings)
    int ch1, ch2;             // channels at full resolution, and at 1/2 and 1/4 resolution
    int tdim, temb;           // sinusoid width, time-embedding width
    int groups;               // GroupNorm groups (divides ch1 and ch2)
    int n_classes;            // class labels 0..n_classes-1; row n_classes of the table is "no label"
    int cond;                 // 1: class-conditional (has the label table), 0: unconditional
} Config;
static const Config DEFAULT_CONFIG = {1, 28, 28, 32, 64, 32, 128, 8, 10, 1};

// Every parameter tensor is a named view into one flat buffer. The same layout is used for the gradients, the
// AdamW moments and the EMA weights, so the optimiser is one loop over one array, and the checkpoint and the
// PyTorch mirror (notes/pytorch_mirror.py) agree on the order: the order of the take() calls below.
typedef struct { real *w, *b; } ConvParams;  // weight (OC,C,K,K) or (O,I), bias (OC)
typedef struct {
    int cin, cout;
    real *gn1_g, *gn1_b;  // (cin)
    ConvParams conv1;     // (cout,cin,3,3)
    ConvParams temb;      // (cout,temb): the time embedding's projection for this block
    real *gn2_g, *gn2_b;  // (cout)
    ConvParams conv2;     // (cout,cout,3,3)
    ConvParams skip;      // (cout,cin,1,1) when cin != cout, else NULL (identity)
} ResBlockParams;
typedef struct {
    real *gn_g, *gn_b;                 // (C)
    ConvParams q, k, v, proj;          // (C,C,1,1) each
} AttnParams;
typedef struct {
    ConvParams time1, time2;           // (temb,tdim), (temb,temb)
    real *class_table;                 // (n_classes+1, temb), NULL when unconditional
    ConvParams conv_in;                // (ch1,img_c,3,3)
    ResBlockParams d0, d1, d2;         // down: ch1->ch1 @HxW, ch1->ch2 @H/2, ch2->ch2 @H/4
    ConvParams ds0, ds1;               // stride-2 downsampling convs (ch1->ch1), (ch2->ch2)
    ResBlockParams m0, m1;             // middle, ch2->ch2 @H/4
    AttnParams attn;                   // middle self-attention, ch2
    ResBlockParams u0, u1, u2;         // up: 2ch2->ch2 @H/4, 2ch2->ch2 @H/2, ch2+ch1->ch1 @H
    ConvParams us0, us1;               // convs after the nearest-neighbour upsamplings (ch2->ch2)
    real *out_gn_g, *out_gn_b;         // (ch1)
    ConvParams out_conv;               // (img_c,ch1,3,3)
} Params;

// Layout: hands out consecutive pieces of a buffer (or only counts, when base is NULL) and records each tensor's
// name, size and kind so that initialisation, gradcheck and the PyTorch comparison can walk them.
enum { MAX_TENSORS = 192 };
typedef enum { KIND_WEIGHT, KIND_BIAS, KIND_GN_GAIN, KIND_GN_SHIFT, KIND_TABLE } TensorKind;
typedef struct { char name[40]; size_t offset, size; int fan_in; TensorKind kind; } TensorInfo;
typedef struct { real *base; size_t used; int n; TensorInfo info[MAX_TENSORS]; } Layout;

static real *take(Layout *L, const char *prefix, const char *name, size_t n, int fan_in, TensorKind kind) {
    if (L->n == MAX_TENSORS) die("layout", "more than %d tensors", MAX_TENSORS);
    TensorInfo *ti = &L->info[L->n++];
    snprintf(ti->name, sizeof ti->name, "%s%s", prefix, name);
    ti->offset = L->used, ti->size = n, ti->fan_in = fan_in, ti->kind = kind;
    real *p = L->base ? L->base + L->used : NULL;
    L->used += n;
    return p;
}
static ConvParams take_conv(Layout *L, const char *prefix, int cout, int cin, int K) {
    char w[32], b[32];
    snprintf(w, sizeof w, "%s.w", prefix), snprintf(b, sizeof b, "%s.b", prefix);
    ConvParams c;
    c.w = take(L, w, "", (size_t)cout * cin * K * K, cin * K * K, KIND_WEIGHT);
    c.b = take(L, b, "", (size_t)cout, cin * K * K, KIND_BIAS);
    return c;
}
static ResBlockParams take_resblock(Layout *L, const char *name, int cin, int cout, int temb) {
    char p[24];
    ResBlockParams r = {.cin = cin, .cout = cout};
    snprintf(p, sizeof p, "%s.", name);
    r.gn1_g = take(L, p, "gn1.g", cin, 0, KIND_GN_GAIN);
    r.gn1_b = take(L, p, "gn1.b", cin, 0, KIND_GN_SHIFT);
    snprintf(p, sizeof p, "%s.conv1", name), r.conv1 = take_conv(L, p, cout, cin, 3);
    snprintf(p, sizeof p, "%s.temb", name), r.temb = take_conv(L, p, cout, temb, 1);
    snprintf(p, sizeof p, "%s.", name);
    r.gn2_g = take(L, p, "gn2.g", cout, 0, KIND_GN_GAIN);
    r.gn2_b = take(L, p, "gn2.b", cout, 0, KIND_GN_SHIFT);
    snprintf(p, sizeof p, "%s.conv2", name), r.conv2 = take_conv(L, p, cout, cout, 3);
    if (cin != cout) snprintf(p, sizeof p, "%s.skip", name), r.skip = take_conv(L, p, cout, cin, 1);
    else r.skip = (ConvParams){NULL, NULL};
    return r;
}
static void params_layout(Params *P, Layout *L, real *base, const Config *c) {
    memset(L, 0, sizeof *L);
    L->base = base;
    P->time1 = take_conv(L, "time1", c->temb, c->tdim, 1);
    P->time2 = take_conv(L, "time2", c->temb, c->temb, 1);
    P->class_table = c->cond ? take(L, "class_table", "", (size_t)(c->n_classes + 1) * c->temb, 0, KIND_TABLE) : NULL;
    P->conv_in = take_conv(L, "conv_in", c->ch1, c->img_c, 3);
    P->d0 = take_resblock(L, "d0", c->ch1, c->ch1, c->temb);
    P->ds0 = take_conv(L, "ds0", c->ch1, c->ch1, 3);
    P->d1 = take_resblock(L, "d1", c->ch1, c->ch2, c->temb);
    P->ds1 = take_conv(L, "ds1", c->ch2, c->ch2, 3);
    P->d2 = take_resblock(L, "d2", c->ch2, c->ch2, c->temb);
    P->m0 = take_resblock(L, "m0", c->ch2, c->ch2, c->temb);
    P->attn.gn_g = take(L, "attn.gn.g", "", c->ch2, 0, KIND_GN_GAIN);
    P->attn.gn_b = take(L, "attn.gn.b", "", c->ch2, 0, KIND_GN_SHIFT);
    P->attn.q = take_conv(L, "attn.q", c->ch2, c->ch2, 1);
    P->attn.k = take_conv(L, "attn.k", c->ch2, c->ch2, 1);
    P->attn.v = take_conv(L, "attn.v", c->ch2, c->ch2, 1);
    P->attn.proj = take_conv(L, "attn.proj", c->ch2, c->ch2, 1);
    P->m1 = take_resblock(L, "m1", c->ch2, c->ch2, c->temb);
    P->u0 = take_resblock(L, "u0", 2 * c->ch2, c->ch2, c->temb);
    P->us0 = take_conv(L, "us0", c->ch2, c->ch2, 3);
    P->u1 = take_resblock(L, "u1", 2 * c->ch2, c->ch2, c->temb);
    P->us1 = take_conv(L, "us1", c->ch2, c->ch2, 3);
    P->u2 = take_resblock(L, "u2", c->ch2 + c->ch1, c->ch1, c->temb);
    P->out_gn_g = take(L, "out_gn.g", "", c->ch1, 0, KIND_GN_GAIN);
    P->out_gn_b = take(L, "out_gn.b", "", c->ch1, 0, KIND_GN_SHIFT);
    P->out_conv = take_conv(L, "out_conv", c->img_c, c->ch1, 3);
}

// Activations that backward needs, one set per block, all views into one buffer sized for B images. The twin
// buffer of the same layout holds their gradients. `in` points at the block's input (the previous block's
// output, or a concatenation), so a block's backward adds its input gradient straight into its producer's slot.
typedef struct {
    int cin, cout, H, W;
    real *in;                   // (B,cin,H,W), not owned
    real *gn1, *mean1, *rstd1;  // GroupNorm(in) (B,cin,H,W); stats (B,G)
    real *act1;                 // SiLU(gn1) (B,cin,H,W)
    real *tproj;                // Linear(SiLU(emb)) (B,cout)
    real *h1;                   // conv1(act1) + tproj (B,cout,H,W)
    real *gn2, *mean2, *rstd2;  // GroupNorm(h1), stats
    real *act2;                 // SiLU(gn2)
    real *skip;                 // skip conv of in (B,cout,H,W), when cin != cout
    real *out;                  // conv2(act2) + (skip or in) (B,cout,H,W)
} ResBlockActs;
typedef struct {
    int C, N;
    real *in;                   // (B,C,N), not owned
    real *gn, *mean, *rstd;     // GroupNorm(in) (B,C,N), (B,G)
    real *q, *k, *v;            // 1x1 projections (B,C,N)
    real *p;                    // attention weights softmax(q^T k / sqrt(C)) (B,N,N)
    real *o;                    // v p^T (B,C,N)
    real *out;                  // in + proj(o) (B,C,N)
} AttnActs;
typedef struct {
    real *x;                          // the noisy input x_t (B,img_c,H,W)
    real *t;                          // timesteps as numbers (B)
    real *sin_emb;                    // (B,tdim)
    real *t1, *t1_act, *emb, *emb_act;  // (B,temb): Linear, SiLU, Linear (+ class row), SiLU
    real *h0;                         // conv_in (B,ch1,H,W)
    ResBlockActs d0, d1, d2, m0, m1, u0, u1, u2;
    real *p0, *p1;                    // after ds0 (B,ch1,H/2,W/2) and ds1 (B,ch2,H/4,W/4)
    AttnActs at;
    real *cat0, *up0, *q0, *cat1, *up1, *q1, *cat2;  // up path: concat, upsample, conv, ...
    real *ogn, *omean, *orstd, *oact; // output GroupNorm, stats, SiLU
    real *pred;                       // eps_theta (B,img_c,H,W)
} Acts;

static real *take_act(Layout *L, size_t n) { return take(L, "act", "", n, 0, KIND_WEIGHT); }
static ResBlockActs take_resblock_acts(Layout *L, real *in, int cin, int cout, int H, int W, int B, int G) {
    size_t N = (size_t)H * W;
    ResBlockActs a = {.cin = cin, .cout = cout, .H = H, .W = W, .in = in};
    a.gn1 = take_act(L, B * cin * N), a.mean1 = take_act(L, B * G), a.rstd1 = take_act(L, B * G);
    a.act1 = take_act(L, B * cin * N);
    a.tproj = take_act(L, (size_t)B * cout);
    a.h1 = take_act(L, B * cout * N);
    a.gn2 = take_act(L, B * cout * N), a.mean2 = take_act(L, B * G), a.rstd2 = take_act(L, B * G);
    a.act2 = take_act(L, B * cout * N);
    a.skip = cin != cout ? take_act(L, B * cout * N) : NULL;
    a.out = take_act(L, B * cout * N);
    return a;
}
static void acts_layout(Acts *a, Layout *L, real *base, const Config *c, int B) {
    memset(L, 0, sizeof *L);
    L->base = base;
    int H = c->img_h, W = c->img_w, G = c->groups;
    size_t N = (size_t)H * W, N2 = N / 4, N4 = N / 16;
    a->x = take_act(L, B * c->img_c * N);
    a->t = take_act(L, B);
    a->sin_emb = take_act(L, (size_t)B * c->tdim);
    a->t1 = take_act(L, (size_t)B * c->temb), a->t1_act = take_act(L, (size_t)B * c->temb);
    a->emb = take_act(L, (size_t)B * c->temb), a->emb_act = take_act(L, (size_t)B * c->temb);
    a->h0 = take_act(L, B * c->ch1 * N);
    a->d0 = take_resblock_acts(L, a->h0, c->ch1, c->ch1, H, W, B, G);
    a->p0 = take_act(L, B * c->ch1 * N2);
    a->d1 = take_resblock_acts(L, a->p0, c->ch1, c->ch2, H / 2, W / 2, B, G);
    a->p1 = take_act(L, B * c->ch2 * N4);
    a->d2 = take_resblock_acts(L, a->p1, c->ch2, c->ch2, H / 4, W / 4, B, G);
    a->m0 = take_resblock_acts(L, a->d2.out, c->ch2, c->ch2, H / 4, W / 4, B, G);
    AttnActs *at = &a->at;
    at->C = c->ch2, at->N = (int)N4, at->in = a->m0.out;
    at->gn = take_act(L, B * c->ch2 * N4), at->mean = take_act(L, B * G), at->rstd = take_act(L, B * G);
    at->q = take_act(L, B * c->ch2 * N4), at->k = take_act(L, B * c->ch2 * N4), at->v = take_act(L, B * c->ch2 * N4);
    at->p = take_act(L, B * N4 * N4);
    at->o = take_act(L, B * c->ch2 * N4), at->out = take_act(L, B * c->ch2 * N4);
    a->m1 = take_resblock_acts(L, at->out, c->ch2, c->ch2, H / 4, W / 4, B, G);
    a->cat0 = take_act(L, B * 2 * c->ch2 * N4);
    a->u0 = take_resblock_acts(L, a->cat0, 2 * c->ch2, c->ch2, H / 4, W / 4, B, G);
    a->up0 = take_act(L, B * c->ch2 * N2), a->q0 = take_act(L, B * c->ch2 * N2);
    a->cat1 = take_act(L, B * 2 * c->ch2 * N2);
    a->u1 = take_resblock_acts(L, a->cat1, 2 * c->ch2, c->ch2, H / 2, W / 2, B, G);
    a->up1 = take_act(L, B * c->ch2 * N), a->q1 = take_act(L, B * c->ch2 * N);
    a->cat2 = take_act(L, B * (c->ch2 + c->ch1) * N);
    a->u2 = take_resblock_acts(L, a->cat2, c->ch2 + c->ch1, c->ch1, H, W, B, G);
    a->ogn = take_act(L, B * c->ch1 * N), a->omean = take_act(L, B * G), a->orstd = take_act(L, B * G);
    a->oact = take_act(L, B * c->ch1 * N);
    a->pred = take_act(L, B * c->img_c * N);
}

// The model: config, parameters (+ gradients, AdamW moments, EMA: all the same layout), activations (+ their
// gradients), and scratch for the convolutions. Everything is allocated once, in model_create.
typedef struct {
    Config cfg;
    int max_batch;
    size_t n_params, n_acts;
    Layout layout;                 // names and offsets of the parameter tensors
    real *params, *grads, *adam_m, *adam_v, *ema;  // (P) each
    Params p, g;                   // named views into params and grads
    real *acts, *dacts;            // (n_acts) each
    Acts a, da;                    // named views
    Workspace ws;                  // convolution scratch
    real *scratch;                 // attention scratch (2 N^2 at the lowest resolution)
} Model;

static const char *config_check(const Config *c) {
    if (c->img_c != 1 && c->img_c != 3) return "image channels must be 1 (gray) or 3 (RGB)";
    if (c->img_h < 4 || c->img_w < 4 || c->img_h % 4 || c->img_w % 4 || c->img_h > 256 || c->img_w > 256)
        return "image height and width must be multiples of 4 in 4..256";
    if (c->groups < 1 || c->ch1 < 1 || c->ch2 < 1 || c->ch1 % c->groups || c->ch2 % c->groups || c->ch1 > 1024 || c->ch2 > 1024)
        return "channel widths must be positive multiples of the GroupNorm groups (at most 1024)";
    if (c->tdim < 2 || c->tdim % 2 || c->tdim > 4096 || c->temb < 1 || c->temb > 4096) return "bad time-embedding sizes";
    if (c->n_classes < 1 || c->n_classes > 1000 || (c->cond != 0 && c->cond != 1)) return "bad class settings";
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

static Model *model_create(const Config *c, int max_batch) {
    const char *why = config_check(c);
    if (why) die("model", "%s", why);
    Model *m = xcalloc(1, sizeof(Model));
    m->cfg = *c, m->max_batch = max_batch;
    params_layout(&m->p, &m->layout, NULL, c);
    m->n_params = m->layout.used;
    m->params = xcalloc(m->n_params, sizeof(real));
    m->grads = xcalloc(m->n_params, sizeof(real));
    m->adam_m = xcalloc(m->n_params, sizeof(real));
    m->adam_v = xcalloc(m->n_params, sizeof(real));
    m->ema = xcalloc(m->n_params, sizeof(real));
    params_layout(&m->p, &m->layout, m->params, c);
    Layout *tmp = xmalloc(sizeof(Layout));
    params_layout(&m->g, tmp, m->grads, c);
    acts_layout(&m->a, tmp, NULL, c, max_batch);
    m->n_acts = tmp->used;
    m->acts = xcalloc(m->n_acts, sizeof(real));
    m->dacts = xcalloc(m->n_acts, sizeof(real));
    acts_layout(&m->a, tmp, m->acts, c, max_batch);
    acts_layout(&m->da, tmp, m->dacts, c, max_batch);
    free(tmp);
    // the largest im2col: a 3x3 conv over the widest concatenation (ch2 + max(ch1, ch2) channels) at full size;
    // the largest weight: (widest output) x (widest input) x 3 x 3
    int widest = c->ch2 + (c->ch1 > c->ch2 ? c->ch1 : c->ch2), widest_out = c->ch1 > c->ch2 ? c->ch1 : c->ch2;
    m->ws.threads = 1;
#ifdef _OPENMP
    m->ws.threads = omp_get_max_threads();
#endif
    m->ws.col_size = (size_t)widest * 9 * c->img_h * c->img_w;
    m->ws.weight_size = (size_t)widest * widest_out * 9;
    if (m->ws.weight_size < (size_t)c->temb * c->temb) m->ws.weight_size = (size_t)c->temb * c->temb;
    m->ws.col = xcalloc(m->ws.threads * m->ws.col_size, sizeof(real));
    m->ws.dcol = xcalloc(m->ws.threads * m->ws.col_size, sizeof(real));
    m->ws.flipped = xcalloc(m->ws.weight_size, sizeof(real));
    m->ws.partial = xcalloc((size_t)DW_SLOTS * m->ws.weight_size, sizeof(real));
    size_t n4 = (size_t)(c->img_h / 4) * (c->img_w / 4);
    m->scratch = xcalloc(2 * n4 * n4, sizeof(real));
    return m;
}
static void model_free(Model *m) {
    if (!m) return;
    free(m->params), free(m->grads), free(m->adam_m), free(m->adam_v), free(m->ema);
    free(m->acts), free(m->dacts), free(m->ws.col), free(m->ws.dcol), free(m->ws.flipped), free(m->ws.partial), free(m->scratch);
    free(m);
}

// Initialisation. Weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default for Linear and
// Conv2d: activations keep roughly their scale from layer to layer), GroupNorm scale 1 and shift 0, class rows
// ~ N(0,1). Following Ho et al.'s DDPM code, the last convolution of every residual branch (conv2 in a ResBlock,
// the attention's proj) and the output convolution start at ZERO: each block then starts as the identity and
// the network's first prediction is eps_theta = 0, a calm starting point (loss = E[eps^2] = 1) from which
// training moves smoothly. With test = 1 everything is random instead (gradcheck needs non-zero gradients).
static int zero_init_tensor(const char *name) {
    return strstr(name, ".conv2.") || strstr(name, "attn.proj.") || strstr(name, "out_conv.");
}
static void params_init(Model *m, Rng *rng, int test) {
    for (int i = 0; i < m->layout.n; i++) {
        const TensorInfo *ti = &m->layout.info[i];
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

// ---- ResBlock --------------------------------------------------------------------------------------------------
//   h = conv1(SiLU(GN(x))) + Linear(SiLU(emb));  out = conv2(SiLU(GN(h))) + (skip(x) or x)
// emb_act (B,temb) = SiLU(emb) is shared by all blocks. a->in (B,cin,H,W) -> a->out (B,cout,H,W)
static void resblock_forward(const ResBlockParams *p, ResBlockActs *a, const real *emb_act, Model *m, int B) {
    int N = a->H * a->W, G = m->cfg.groups;
    size_t nin = (size_t)B * a->cin * N, nout = (size_t)B * a->cout * N;
    groupnorm_forward(a->gn1, a->mean1, a->rstd1, a->in, p->gn1_g, p->gn1_b, B, a->cin, N, G);
    silu_forward(a->act1, a->gn1, nin);
    conv2d_forward(a->h1, a->act1, p->conv1.w, p->conv1.b, B, a->cin, a->H, a->W, a->cout, 3, 1, &m->ws);
    linear_forward(a->tproj, emb_act, p->temb.w, p->temb.b, B, m->cfg.temb, a->cout);
    add_channel_vector_forward(a->h1, a->tproj, B, a->cout, N);
    groupnorm_forward(a->gn2, a->mean2, a->rstd2, a->h1, p->gn2_g, p->gn2_b, B, a->cout, N, G);
    silu_forward(a->act2, a->gn2, nout);
    conv2d_forward(a->out, a->act2, p->conv2.w, p->conv2.b, B, a->cout, a->H, a->W, a->cout, 3, 1, &m->ws);
    if (p->skip.w) {
        conv2d_forward(a->skip, a->in, p->skip.w, p->skip.b, B, a->cin, a->H, a->W, a->cout, 1, 1, &m->ws);
        residual_forward(a->out, a->out, a->skip, nout);
    } else {
        residual_forward(a->out, a->out, a->in, nout);
    }
}
// The forward pass read backwards, each line the backward of the matching forward line.
static void resblock_backward(const ResBlockParams *p, const ResBlockParams *g, const ResBlockActs *a,
                              ResBlockActs *d, const real *emb_act, real *demb_act, Model *m, int B) {
    int N = a->H * a->W, G = m->cfg.groups;
    size_t nin = (size_t)B * a->cin * N, nout = (size_t)B * a->cout * N;
    if (p->skip.w)
        conv2d_backward(d->in, g->skip.w, g->skip.b, d->out, a->in, p->skip.w, B, a->cin, a->H, a->W, a->cout, 1, 1, &m->ws);
    else
        add_into(d->in, d->out, nin);  // identity skip: out = h + x
    conv2d_backward(d->act2, g->conv2.w, g->conv2.b, d->out, a->act2, p->conv2.w, B, a->cout, a->H, a->W, a->cout, 3, 1, &m->ws);
    silu_backward(d->gn2, d->act2, a->gn2, nout);
    groupnorm_backward(d->h1, g->gn2_g, g->gn2_b, d->gn2, a->h1, a->mean2, a->rstd2, p->gn2_g, B, a->cout, N, G);
    add_channel_vector_backward(d->tproj, d->h1, B, a->cout, N);
    linear_backward(demb_act, g->temb.w, g->temb.b, d->tproj, emb_act, p->temb.w, B, m->cfg.temb, a->cout);
    conv2d_backward(d->act1, g->conv1.w, g->conv1.b, d->h1, a->act1, p->conv1.w, B, a->cin, a->H, a->W, a->cout, 3, 1, &m->ws);
    silu_backward(d->gn1, d->act1, a->gn1, nin);
    groupnorm_backward(d->in, g->gn1_g, g->gn1_b, d->gn1, a->in, a->mean1, a->rstd1, p->gn1_g, B, a->cin, N, G);
}

// ---- Self-attention over the positions (one head) -------------------------------------------------------------
// Every position looks at every other: q, k, v = 1x1 convs of GN(x); p_i = softmax_j(q_i . k_j / sqrt(C));
// o_i = sum_j p_ij v_j; out = x + proj(o). At 7x7 this lets the network relate distant parts of the image
// (a sleeve to the other sleeve) that 3x3 convolutions would need many layers to connect.
// a->in (B,C,N) -> a->out (B,C,N); scratch (N,N).
static void attention_forward(const AttnParams *p, AttnActs *a, Model *m, int B) {
    int C = a->C, N = a->N;
    real scale = (real)(1 / sqrt((double)C));
    groupnorm_forward(a->gn, a->mean, a->rstd, a->in, p->gn_g, p->gn_b, B, C, N, m->cfg.groups);
    conv2d_forward(a->q, a->gn, p->q.w, p->q.b, B, C, N, 1, C, 1, 1, &m->ws);
    conv2d_forward(a->k, a->gn, p->k.w, p->k.b, B, C, N, 1, C, 1, 1, &m->ws);
    conv2d_forward(a->v, a->gn, p->v.w, p->v.b, B, C, N, 1, C, 1, 1, &m->ws);
    real *s = m->scratch;
    for (int b = 0; b < B; b++) {
        const real *q = a->q + (size_t)b * C * N, *k = a->k + (size_t)b * C * N, *v = a->v + (size_t)b * C * N;
        real *pb = a->p + (size_t)b * N * N;
        gemm(N, N, C, q, 1, N, k, N, 1, s, N, 0);  // s_ij = sum_c q[c][i] k[c][j]
        for (int i = 0; i < N * N; i++) s[i] *= scale;
        softmax_forward(pb, s, N, N);
        gemm(C, N, N, v, N, 1, pb, 1, N, a->o + (size_t)b * C * N, N, 0);  // o[c][i] = sum_j v[c][j] p_ij
    }
    conv2d_forward(a->out, a->o, p->proj.w, p->proj.b, B, C, N, 1, C, 1, 1, &m->ws);
    residual_forward(a->out, a->out, a->in, (size_t)B * C * N);
}
static void attention_backward(const AttnParams *p, const AttnParams *g, const AttnActs *a, AttnActs *d,
                               Model *m, int B) {
    int C = a->C, N = a->N;
    real scale = (real)(1 / sqrt((double)C));
    for (size_t i = 0; i < (size_t)B * C * N; i++) d->in[i] += d->out[i];  // residual: out = x + proj(o)
    conv2d_backward(d->o, g->proj.w, g->proj.b, d->out, a->o, p->proj.w, B, C, N, 1, C, 1, 1, &m->ws);
    real *dp = m->scratch, *ds = m->scratch + (size_t)N * N;
    for (int b = 0; b < B; b++) {
        size_t off = (size_t)b * C * N;
        const real *q = a->q + off, *k = a->k + off, *v = a->v + off, *pb = a->p + (size_t)b * N * N;
        const real *dO = d->o + off;
        gemm(C, N, N, dO, N, 1, pb, N, 1, d->v + off, N, 1);  // o = v p^T:  dv[c][j] += sum_i dO[c][i] p_ij
        gemm(N, N, C, dO, 1, N, v, N, 1, dp, N, 0);           //             dp_ij = sum_c dO[c][i] v[c][j]
        softmax_backward(ds, dp, pb, N, N);
        for (int i = 0; i < N * N; i++) ds[i] *= scale;       // s = scale q^T k:
        gemm(C, N, N, k, N, 1, ds, 1, N, d->q + off, N, 1);   //   dq[c][i] += sum_j ds_ij k[c][j]
        gemm(C, N, N, q, N, 1, ds, N, 1, d->k + off, N, 1);   //   dk[c][j] += sum_i ds_ij q[c][i]
    }
    conv2d_backward(d->gn, g->q.w, g->q.b, d->q, a->gn, p->q.w, B, C, N, 1, C, 1, 1, &m->ws);
    conv2d_backward(d->gn, g->k.w, g->k.b, d->k, a->gn, p->k.w, B, C, N, 1, C, 1, 1, &m->ws);
    conv2d_backward(d->gn, g->v.w, g->v.b, d->v, a->gn, p->v.w, B, C, N, 1, C, 1, 1, &m->ws);
    groupnorm_backward(d->in, g->gn_g, g->gn_b, d->gn, a->in, a->mean, a->rstd, p->gn_g, B, C, N, m->cfg.groups);
}

// ---- The whole network ------------------------------------------------------------------------------------------
// x (B,img_c,H,W), t (B) timesteps (real numbers: the SDE sampler uses fractional ones), label (B) in
// 0..n_classes (n_classes = "no label"; ignored when unconditional) -> m->a.pred (B,img_c,H,W) = eps_theta.
static void unet_forward(Model *m, const real *x, const real *t, const int *label, int B) {
    const Config *c = &m->cfg;
    const Params *p = &m->p;
    Acts *a = &m->a;
    int H = c->img_h, W = c->img_w;
    memcpy(a->x, x, sizeof(real) * B * c->img_c * H * W);
    memcpy(a->t, t, sizeof(real) * B);
    // time embedding (+ class): emb = Linear(SiLU(Linear(sinusoid(t)))) + table[label]
    sinusoid_forward(a->sin_emb, a->t, B, c->tdim);
    linear_forward(a->t1, a->sin_emb, p->time1.w, p->time1.b, B, c->tdim, c->temb);
    silu_forward(a->t1_act, a->t1, (size_t)B * c->temb);
    linear_forward(a->emb, a->t1_act, p->time2.w, p->time2.b, B, c->temb, c->temb);
    if (c->cond) embedding_forward(a->emb, p->class_table, label, B, c->temb);
    silu_forward(a->emb_act, a->emb, (size_t)B * c->temb);
    // down: HxW -> H/2 -> H/4
    conv2d_forward(a->h0, a->x, p->conv_in.w, p->conv_in.b, B, c->img_c, H, W, c->ch1, 3, 1, &m->ws);
    resblock_forward(&p->d0, &a->d0, a->emb_act, m, B);
    conv2d_forward(a->p0, a->d0.out, p->ds0.w, p->ds0.b, B, c->ch1, H, W, c->ch1, 3, 2, &m->ws);
    resblock_forward(&p->d1, &a->d1, a->emb_act, m, B);
    conv2d_forward(a->p1, a->d1.out, p->ds1.w, p->ds1.b, B, c->ch2, H / 2, W / 2, c->ch2, 3, 2, &m->ws);
    resblock_forward(&p->d2, &a->d2, a->emb_act, m, B);
    // middle at H/4: ResBlock, attention, ResBlock
    resblock_forward(&p->m0, &a->m0, a->emb_act, m, B);
    attention_forward(&p->attn, &a->at, m, B);
    resblock_forward(&p->m1, &a->m1, a->emb_act, m, B);
    // up: each level concatenates the down path's output of the same size (the U's skip connections)
    int N4 = (H / 4) * (W / 4), N2 = (H / 2) * (W / 2), N = H * W;
    concat_forward(a->cat0, a->m1.out, a->d2.out, B, c->ch2, c->ch2, N4);
    resblock_forward(&p->u0, &a->u0, a->emb_act, m, B);
    upsample_forward(a->up0, a->u0.out, B * c->ch2, H / 4, W / 4);
    conv2d_forward(a->q0, a->up0, p->us0.w, p->us0.b, B, c->ch2, H / 2, W / 2, c->ch2, 3, 1, &m->ws);
    concat_forward(a->cat1, a->q0, a->d1.out, B, c->ch2, c->ch2, N2);
    resblock_forward(&p->u1, &a->u1, a->emb_act, m, B);
    upsample_forward(a->up1, a->u1.out, B * c->ch2, H / 2, W / 2);
    conv2d_forward(a->q1, a->up1, p->us1.w, p->us1.b, B, c->ch2, H, W, c->ch2, 3, 1, &m->ws);
    concat_forward(a->cat2, a->q1, a->d0.out, B, c->ch2, c->ch1, N);
    resblock_forward(&p->u2, &a->u2, a->emb_act, m, B);
    // out: conv(SiLU(GN(h)))
    groupnorm_forward(a->ogn, a->omean, a->orstd, a->u2.out, p->out_gn_g, p->out_gn_b, B, c->ch1, N, c->groups);
    silu_forward(a->oact, a->ogn, (size_t)B * c->ch1 * N);
    conv2d_forward(a->pred, a->oact, p->out_conv.w, p->out_conv.b, B, c->ch1, H, W, c->img_c, 3, 1, &m->ws);
}

// Given d loss / d pred in m->da.pred, fills m->grads (zeroed first) by running the forward pass backwards.
static void unet_backward(Model *m, const int *label, int B) {
    const Config *c = &m->cfg;
    const Params *p = &m->p, *g = &m->g;
    const Acts *a = &m->a;
    Acts *d = &m->da;
    int H = c->img_h, W = c->img_w, N4 = (H / 4) * (W / 4), N2 = (H / 2) * (W / 2), N = H * W;
    memset(m->grads, 0, m->n_params * sizeof(real));
    conv2d_backward(d->oact, g->out_conv.w, g->out_conv.b, d->pred, a->oact, p->out_conv.w, B, c->ch1, H, W, c->img_c, 3, 1, &m->ws);
    silu_backward(d->ogn, d->oact, a->ogn, (size_t)B * c->ch1 * N);
    groupnorm_backward(d->u2.out, g->out_gn_g, g->out_gn_b, d->ogn, a->u2.out, a->omean, a->orstd, p->out_gn_g, B, c->ch1, N, c->groups);
    resblock_backward(&p->u2, &g->u2, &a->u2, &d->u2, a->emb_act, d->emb_act, m, B);
    concat_backward(d->q1, d->d0.out, d->cat2, B, c->ch2, c->ch1, N);
    conv2d_backward(d->up1, g->us1.w, g->us1.b, d->q1, a->up1, p->us1.w, B, c->ch2, H, W, c->ch2, 3, 1, &m->ws);
    upsample_backward(d->u1.out, d->up1, B * c->ch2, H / 2, W / 2);
    resblock_backward(&p->u1, &g->u1, &a->u1, &d->u1, a->emb_act, d->emb_act, m, B);
    concat_backward(d->q0, d->d1.out, d->cat1, B, c->ch2, c->ch2, N2);
    conv2d_backward(d->up0, g->us0.w, g->us0.b, d->q0, a->up0, p->us0.w, B, c->ch2, H / 2, W / 2, c->ch2, 3, 1, &m->ws);
    upsample_backward(d->u0.out, d->up0, B * c->ch2, H / 4, W / 4);
    resblock_backward(&p->u0, &g->u0, &a->u0, &d->u0, a->emb_act, d->emb_act, m, B);
    concat_backward(d->m1.out, d->d2.out, d->cat0, B, c->ch2, c->ch2, N4);
    resblock_backward(&p->m1, &g->m1, &a->m1, &d->m1, a->emb_act, d->emb_act, m, B);
    attention_backward(&p->attn, &g->attn, &a->at, &d->at, m, B);
    resblock_backward(&p->m0, &g->m0, &a->m0, &d->m0, a->emb_act, d->emb_act, m, B);
    resblock_backward(&p->d2, &g->d2, &a->d2, &d->d2, a->emb_act, d->emb_act, m, B);
    conv2d_backward(d->d1.out, g->ds1.w, g->ds1.b, d->p1, a->d1.out, p->ds1.w, B, c->ch2, H / 2, W / 2, c->ch2, 3, 2, &m->ws);
    resblock_backward(&p->d1, &g->d1, &a->d1, &d->d1, a->emb_act, d->emb_act, m, B);
    conv2d_backward(d->d0.out, g->ds0.w, g->ds0.b, d->p0, a->d0.out, p->ds0.w, B, c->ch1, H, W, c->ch1, 3, 2, &m->ws);
    resblock_backward(&p->d0, &g->d0, &a->d0, &d->d0, a->emb_act, d->emb_act, m, B);
    conv2d_backward(NULL, g->conv_in.w, g->conv_in.b, d->h0, a->x, p->conv_in.w, B, c->img_c, H, W, c->ch1, 3, 1, &m->ws);
    silu_backward(d->emb, d->emb_act, a->emb, (size_t)B * c->temb);
    if (c->cond) embedding_backward(g->class_table, d->emb, label, B, c->temb);
    linear_backward(d->t1_act, g->time2.w, g->time2.b, d->emb, a->t1_act, p->time2.w, B, c->temb, c->temb);
    silu_backward(d->t1, d->t1_act, a->t1, (size_t)B * c->temb);
    linear_backward(NULL, g->time1.w, g->time1.b, d->t1, a->sin_emb, p->time1.w, B, c->tdim, c->temb);
}

// One loss evaluation with gradients: forward, L = mse(pred, eps), backward. Returns L.
static double model_loss_and_grad(Model *m, const real *xt, const real *t, const int *label, const real *eps, int B) {
    unet_forward(m, xt, t, label, B);
    size_t n = (size_t)B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w;
    double loss = mse_forward(m->a.pred, eps, n);
    memset(m->dacts, 0, m->n_acts * sizeof(real));
    mse_backward(m->da.pred, m->a.pred, eps, n);
    unet_backward(m, label, B);
    return loss;
}

// ---- Checking the backward passes: gradcheck ------------------------------------------------------------------
// Central differences: dL/dv ~ (L(v + h) - L(v - h)) / 2h, with error O(h^2) from the Taylor series and
// O(machine eps / h) from rounding. In double (-DDOUBLE) h = 1e-5 makes both ~1e-10, so a correct backward
// agrees to ~1e-9 and anything above the 1e-6 tolerance is a bug. In float h = 1e-2 and agreement is ~1e-3.
// Error measure, per layer: max |analytic - numeric| / max |numeric| over all the layer's inputs and parameters
// (relative to the largest gradient, so that entries whose gradient is ~0 do not divide by ~0).

// One gradient check "case": a flat array of variables (inputs and parameters of one layer), a function that
// computes the loss L = sum(out * R) for a fixed random R, and one that fills the analytic dL/dvars.
typedef struct GradCase GradCase;
struct GradCase {
    const char *name;
    int kind;                 // which layer (see gradcase_run)
    int B, C, H, W, OC, K, stride, D;
    size_t nvars, nout;
    real *vars, *grads, *out, *R;  // variables, their analytic gradients, the layer output, the loss weights
    real *x;                       // the whole-network case: its input x_t
    int *label;
    Model *model;             // for the ResBlock, attention and whole-network cases
};
enum { GC_CONV3, GC_CONV3S2, GC_CONV1, GC_LINEAR, GC_SILU, GC_GROUPNORM, GC_SINUSOID, GC_EMBEDDING, GC_UPSAMPLE,
       GC_CONCAT, GC_RESIDUAL, GC_SOFTMAX, GC_MSE, GC_ATTENTION, GC_RESBLOCK, GC_UNET, GC_COUNT };

// Runs the forward pass of case g on g->vars; with backward, also fills g->grads. Returns L.
static double gradcase_run(GradCase *g, int backward) {
    int B = g->B, C = g->C, H = g->H, W = g->W, OC = g->OC, K = g->K, D = g->D, N = H * W;
    real *v = g->vars, *gv = g->grads;
    const Workspace *ws = &g->model->ws;
    size_t nin = (size_t)B * C * N;
    if (backward) memset(gv, 0, g->nvars * sizeof(real));
    switch (g->kind) {
    case GC_CONV3: case GC_CONV3S2: case GC_CONV1: {  // vars: inp (B,C,H,W), weight (OC,C,K,K), bias (OC)
        real *w = v + nin, *b = w + (size_t)OC * C * K * K;
        conv2d_forward(g->out, v, w, b, B, C, H, W, OC, K, g->stride, ws);
        if (backward) conv2d_backward(gv, gv + nin, gv + nin + (size_t)OC * C * K * K, g->R, v, w, B, C, H, W, OC, K, g->stride, ws);
        break;
    }
    case GC_LINEAR: {  // vars: inp (B,C), weight (OC,C), bias (OC)
        linear_forward(g->out, v, v + B * C, v + B * C + OC * C, B, C, OC);
        if (backward) linear_backward(gv, gv + B * C, gv + B * C + OC * C, g->R, v, v + B * C, B, C, OC);
        break;
    }
    case GC_SILU:
        silu_forward(g->out, v, nin);
        if (backward) silu_backward(gv, g->R, v, nin);
        break;
    case GC_GROUPNORM: {  // vars: inp (B,C,N), gamma, beta (C); groups = K
        real mean[64], rstd[64];
        groupnorm_forward(g->out, mean, rstd, v, v + nin, v + nin + C, B, C, N, K);
        if (backward) groupnorm_backward(gv, gv + nin, gv + nin + C, g->R, v, mean, rstd, v + nin, B, C, N, K);
        break;
    }
    case GC_SINUSOID:  // vars: t (B)
        sinusoid_forward(g->out, v, B, D);
        if (backward) sinusoid_backward(gv, g->R, v, B, D);
        break;
    case GC_EMBEDDING:  // vars: table (C rows, D)
        memset(g->out, 0, g->nout * sizeof(real));
        embedding_forward(g->out, v, g->label, B, D);
        if (backward) embedding_backward(gv, g->R, g->label, B, D);
        break;
    case GC_UPSAMPLE:
        upsample_forward(g->out, v, B * C, H, W);
        if (backward) upsample_backward(gv, g->R, B * C, H, W);
        break;
    case GC_CONCAT:  // vars: a (B,C,N), b (B,OC,N)
        concat_forward(g->out, v, v + nin, B, C, OC, N);
        if (backward) concat_backward(gv, gv + nin, g->R, B, C, OC, N);
        break;
    case GC_RESIDUAL:
        residual_forward(g->out, v, v + nin, nin);
        if (backward) residual_backward(gv, gv + nin, g->R, nin);
        break;
    case GC_SOFTMAX:  // rows of length N
        softmax_forward(g->out, v, B * C, N);
        if (backward) softmax_backward(gv, g->R, g->out, B * C, N);
        break;
    case GC_MSE: {  // vars: pred (n), eps (n) is R; out is the scalar loss
        g->out[0] = (real)mse_forward(v, g->R, nin);
        if (backward) mse_backward(gv, v, g->R, nin);
        return g->out[0];
    }
    case GC_ATTENTION: case GC_RESBLOCK: case GC_UNET: {
        // vars are the model's own parameters (plus the block input for attention/ResBlock)
        Model *m = g->model;
        if (g->kind == GC_UNET) {
            real t[8];
            for (int b = 0; b < B; b++) t[b] = (real)(1 + 37 * b);
            unet_forward(m, g->x, t, g->label, B);
            double loss = 0;
            for (size_t i = 0; i < g->nout; i++) loss += (double)m->a.pred[i] * g->R[i];
            if (backward) {
                memset(m->dacts, 0, m->n_acts * sizeof(real));
                memcpy(m->da.pred, g->R, g->nout * sizeof(real));
                unet_backward(m, g->label, B);
            }
            return loss;
        }
        real *emb_act = m->a.emb_act;  // a fixed random (B,temb) input for the ResBlock's time projection
        memset(m->dacts, 0, m->n_acts * sizeof(real));
        real *out;
        if (g->kind == GC_ATTENTION) {
            memcpy(m->a.at.in, g->vars, g->nout * sizeof(real));
            attention_forward(&m->p.attn, &m->a.at, m, B);
            out = m->a.at.out;
        } else {
            memcpy(m->a.d1.in, g->vars, (size_t)B * m->a.d1.cin * m->a.d1.H * m->a.d1.W * sizeof(real));
            resblock_forward(&m->p.d1, &m->a.d1, emb_act, m, B);
            out = m->a.d1.out;
        }
        double loss = 0;
        for (size_t i = 0; i < g->nout; i++) loss += (double)out[i] * g->R[i];
        if (backward) {
            memset(m->grads, 0, m->n_params * sizeof(real));
            if (g->kind == GC_ATTENTION) {
                memcpy(m->da.at.out, g->R, g->nout * sizeof(real));
                attention_backward(&m->p.attn, &m->g.attn, &m->a.at, &m->da.at, m, B);
                memcpy(g->grads, m->da.at.in, g->nout * sizeof(real));
            } else {
                memcpy(m->da.d1.out, g->R, g->nout * sizeof(real));
                resblock_backward(&m->p.d1, &m->g.d1, &m->a.d1, &m->da.d1, emb_act, m->da.emb_act, m, B);
                memcpy(g->grads, m->da.d1.in, (size_t)B * m->a.d1.cin * m->a.d1.H * m->a.d1.W * sizeof(real));
            }
        }
        return loss;
    }
    }
    double loss = 0;
    for (size_t i = 0; i < g->nout; i++) loss += (double)g->out[i] * g->R[i];
    return loss;
}

// Compares analytic and numeric gradients of n entries of vars (every entry, or a spread-out subset when n is
// large); the analytic ones are in `analytic` (a copy). Returns the max abs error; raises *max_num to the largest
// |numeric| seen, the scale the error is measured against (so a tensor whose true gradient is 0, like the
// attention's key bias, which softmax ignores, is judged by the case's gradient scale, not by 0/0).
static double gradcase_compare(GradCase *g, real *vars, const real *analytic, size_t n, size_t max_checks, double *max_num) {
    double h = sizeof(real) == sizeof(double) ? 1e-5 : 1e-2;
    double max_err = 0;
    size_t stride = n > max_checks ? n / max_checks : 1;
    for (size_t i = 0; i < n; i += stride) {
        real saved = vars[i];
        vars[i] = (real)(saved + h);
        double lp = gradcase_run(g, 0);
        vars[i] = (real)(saved - h);
        double lm = gradcase_run(g, 0);
        vars[i] = saved;
        double num = (lp - lm) / (2 * h), err = fabs(num - analytic[i]);
        if (err > max_err) max_err = err;
        if (fabs(num) > *max_num) *max_num = fabs(num);
    }
    return max_err;
}

static int gradcheck_report(const char *name, double abs_err, double rel, double tol) {
    int ok = rel <= tol;
    printf("%-34s %12.3e %12.3e  %s\n", name, abs_err, rel, ok ? "PASS" : "FAIL");
    return ok;
}

static real *random_array(size_t n, Rng *rng) {
    real *p = xmalloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) p[i] = (real)(2 * rng_uniform(rng) - 1);
    return p;
}

// Checks the parameter tensors of m whose name starts with prefix (all when prefix is ""): the analytic gradients
// are in m->grads after gradcase_run(g, 1). Accumulates the worst error into *abs_err and the scale into *max_num.
static void gradcheck_params(GradCase *g, const char *prefix, size_t max_checks, double *abs_err, double *max_num) {
    Model *m = g->model;
    real *analytic = xmalloc(m->n_params * sizeof(real));
    memcpy(analytic, m->grads, m->n_params * sizeof(real));
    for (int i = 0; i < m->layout.n; i++) {
        const TensorInfo *ti = &m->layout.info[i];
        if (strncmp(ti->name, prefix, strlen(prefix))) continue;
        double e = gradcase_compare(g, m->params + ti->offset, analytic + ti->offset, ti->size, max_checks, max_num);
        if (e > *abs_err) *abs_err = e;
    }
    free(analytic);
}

// `./diffusion gradcheck`: every layer alone, then a ResBlock, attention and the whole (small) network.
static int run_gradcheck(uint64_t seed) {
    int is_double = sizeof(real) == sizeof(double);
    double tol = is_double ? 1e-6 : 5e-2;
    Rng rng = {seed};
    printf("# gradcheck: hand-written backward vs central finite differences, %s build (h = %g)\n",
           is_double ? "double (-DDOUBLE)" : "float", is_double ? 1e-5 : 1e-2);
    printf("# error = max|analytic - numeric| per tensor; relative = that / max|numeric|; tolerance %.0e%s\n", tol,
           is_double ? "" : " (float: indicative; the proof is the -DDOUBLE build)");
    printf("%-34s %12s %12s  %s\n", "layer", "max abs err", "max rel err", "result");
    // the small network used by the ResBlock, attention and whole-network cases
    Config small = {1, 8, 8, 8, 16, 8, 16, 4, 10, 1};
    int B = 2;
    Model *m = model_create(&small, B);
    params_init(m, &rng, 1);
    int label[8] = {3, 10, 0, 7};
    static const char *names[GC_COUNT] = {"conv2d 3x3 stride 1", "conv2d 3x3 stride 2", "conv2d 1x1", "linear", "silu",
                                          "groupnorm", "sinusoidal embedding (d/dt)", "embedding lookup",
                                          "nearest upsample x2", "channel concat", "residual add", "softmax",
                                          "mse loss", "attention (input + params)", "resblock (input + params)",
                                          "whole U-Net (params)"};
    int failures = 0;
    for (int kind = 0; kind < GC_COUNT; kind++) {
        GradCase g = {.name = names[kind], .kind = kind, .B = B, .C = 4, .H = 6, .W = 5, .OC = 3, .K = 3, .stride = 1,
                      .D = 8, .label = label, .model = m};
        size_t nin = (size_t)g.B * g.C * g.H * g.W;
        if (kind == GC_CONV3S2) g.stride = 2;
        if (kind == GC_CONV1) g.K = 1;
        if (kind == GC_GROUPNORM) g.K = 2;  // groups
        int OH = conv_out_size(g.H, g.K, g.stride), OW = conv_out_size(g.W, g.K, g.stride);
        switch (kind) {
        case GC_CONV3: case GC_CONV3S2: case GC_CONV1:
            g.nvars = nin + (size_t)g.OC * g.C * g.K * g.K + g.OC, g.nout = (size_t)g.B * g.OC * OH * OW; break;
        case GC_LINEAR: g.nvars = (size_t)g.B * g.C + g.OC * g.C + g.OC, g.nout = (size_t)g.B * g.OC; break;
        case GC_SILU: case GC_SOFTMAX: g.nvars = nin, g.nout = nin; break;
        case GC_GROUPNORM: g.nvars = nin + 2 * g.C, g.nout = nin; break;
        case GC_SINUSOID: g.nvars = g.B, g.nout = (size_t)g.B * g.D; break;
        case GC_EMBEDDING: g.nvars = (size_t)11 * g.D, g.nout = (size_t)g.B * g.D; break;
        case GC_UPSAMPLE: g.nvars = nin, g.nout = 4 * nin; break;
        case GC_CONCAT: g.nvars = nin + (size_t)g.B * g.OC * g.H * g.W, g.nout = g.nvars; break;
        case GC_RESIDUAL: g.nvars = 2 * nin, g.nout = nin; break;
        case GC_MSE: g.nvars = nin, g.nout = nin; break;
        case GC_ATTENTION: g.nvars = g.nout = (size_t)B * m->a.at.C * m->a.at.N; break;
        case GC_RESBLOCK:
            g.nvars = (size_t)B * m->a.d1.cin * m->a.d1.H * m->a.d1.W;
            g.nout = (size_t)B * m->a.d1.cout * m->a.d1.H * m->a.d1.W;
            break;
        case GC_UNET: g.nvars = 1, g.nout = (size_t)B * small.img_c * small.img_h * small.img_w; break;
        }
        g.vars = random_array(g.nvars, &rng);
        if (kind == GC_SINUSOID) for (int b = 0; b < g.B; b++) g.vars[b] = (real)(1 + 500 * rng_uniform(&rng));
        g.R = random_array(g.nout, &rng);
        g.x = random_array(g.nout, &rng);
        g.grads = xcalloc(g.nvars, sizeof(real));
        g.out = xcalloc(g.nout, sizeof(real));
        if (kind == GC_RESBLOCK)
            for (size_t i = 0; i < (size_t)B * small.temb; i++) m->a.emb_act[i] = (real)(2 * rng_uniform(&rng) - 1);
        gradcase_run(&g, 1);
        double abs_err = 0, max_num = 0;
        if (kind != GC_UNET) {
            real *analytic = xmalloc(g.nvars * sizeof(real));
            memcpy(analytic, g.grads, g.nvars * sizeof(real));
            abs_err = gradcase_compare(&g, g.vars, analytic, g.nvars, 4000, &max_num);
            free(analytic);
        }
        if (kind == GC_ATTENTION) gradcheck_params(&g, "attn.", 64, &abs_err, &max_num);
        if (kind == GC_RESBLOCK) gradcheck_params(&g, "d1.", 64, &abs_err, &max_num);
        if (kind == GC_UNET) gradcheck_params(&g, "", 8, &abs_err, &max_num);
        failures += !gradcheck_report(names[kind], abs_err, abs_err / (max_num > 0 ? max_num : 1e-30), tol);
        free(g.vars), free(g.R), free(g.x), free(g.grads), free(g.out);
    }
    model_free(m);
    printf("# %d of %d layer checks failed\n", failures, GC_COUNT);
    {  // im2col's shifted copies against its definition, on shapes down to 1 pixel (all padding)
        static const int shapes[][2] = {{1, 1}, {1, 4}, {4, 1}, {2, 2}, {3, 5}, {6, 5}};
        int bad = 0;
        for (int i = 0; i < 6; i++)
            for (int stride = 1; stride <= 2; stride++) {
                int H = shapes[i][0], W = shapes[i][1], C = 2, K = 3, OH = conv_out_size(H, K, stride), OW = conv_out_size(W, K, stride);
                real *img = random_array((size_t)C * H * W, &rng), *col = xcalloc((size_t)C * K * K * OH * OW, sizeof(real));
                im2col(col, img, C, H, W, K, stride);
                for (int c = 0; c < C; c++)
                    for (int k = 0; k < K * K; k++)
                        for (int p = 0; p < OH * OW; p++) {
                            int y = p / OW * stride + k / K - 1, x = p % OW * stride + k % K - 1;
                            real want = y >= 0 && y < H && x >= 0 && x < W ? img[(c * H + y) * W + x] : 0;
                            bad += col[((size_t)c * K * K + k) * OH * OW + p] != want;
                        }
                free(img), free(col);
            }
        printf("im2col vs its definition, 6 shapes x 2 strides: %d wrong entries  %s\n", bad, bad ? "FAIL" : "PASS");
        failures += bad > 0;
    }
    if (!is_double) {  // SiLU's and softmax's exp: exp_real against exp in double on a fine grid of [-87, 88]
        double worst = 0;
        for (double x = -87; x <= 88; x += 1.0 / 4096) {
            double e = exp((double)(real)x), rel = fabs(exp_real((real)x) - e) / e;
            if (!(rel <= worst)) worst = rel;
        }
        printf("exp_real vs exp: max relative error %.2e on [-87, 88] (tolerance 1.5e-7, ~1 float ulp)  %s\n", worst,
               worst <= 1.5e-7 ? "PASS" : "FAIL");
        failures += !(worst <= 1.5e-7);
    }
    return failures ? 1 : 0;
}

// ---- Checking against PyTorch: data/unet_ref.bin, written by notes/pytorch_mirror.py ref ----------------------
// The same network in PyTorch, computed in float64, with random weights, a batch of 4 (x_t, t, labels, eps), its
// output, loss and every parameter's gradient. We load the weights and inputs, run our forward and backward, and
// compare each tensor by max|ours - torch| / max|torch| ("max-norm relative error"): <= 1e-4 for the output and
// the loss, <= 1e-3 for the gradients. Float32 arithmetic gives ~1e-6 here; the tolerances leave room for other
// compilers and summation orders while still catching any wrong formula (those give errors of order 1).
static int run_refcheck(const char *path, size_t default_params) {
    size_t len;
    unsigned char *buf = read_file(path, 64 << 20, &len);
    if (len < 64 || memcmp(buf, "DCREF001", 8)) die(path, "not a reference file (bad magic)");
    int32_t h[14];
    memcpy(h, buf + 8, sizeof h);
    Config c = {h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]};
    int B = h[10];
    if (config_check(&c) || B < 1 || B > 64) die(path, "bad config in header");
    size_t P = count_params(&c), n = (size_t)B * c.img_c * c.img_h * c.img_w;
    if ((size_t)h[13] != P) die(path, "header says %d parameters, the C layout has %zu", h[13], P);
    size_t want = 8 + sizeof h + 2 * (size_t)B * 4 + (2 * P + 3 * n + 1) * 4;
    if (len != want) die(path, "file is %zu bytes, expected %zu", len, want);
    const unsigned char *q = buf + 8 + sizeof h;
    int32_t tt[64], label[64];
    memcpy(tt, q, 4 * (size_t)B), q += 4 * (size_t)B;
    memcpy(label, q, 4 * (size_t)B), q += 4 * (size_t)B;
    float *f = xmalloc((2 * P + 3 * n + 1) * sizeof(float));
    memcpy(f, q, (2 * P + 3 * n + 1) * sizeof(float));
    free(buf);
    const float *ref_params = f, *ref_x = f + P, *ref_eps = ref_x + n, *ref_out = ref_eps + n;
    double ref_loss = ref_out[n];
    const float *ref_grads = ref_out + n + 1;
    Model *m = model_create(&c, B);
    real *x = xmalloc(n * sizeof(real)), *eps = xmalloc(n * sizeof(real)), t[64];
    for (size_t i = 0; i < P; i++) m->params[i] = ref_params[i];
    for (size_t i = 0; i < n; i++) x[i] = ref_x[i], eps[i] = ref_eps[i];
    for (int b = 0; b < B; b++) {
        t[b] = (real)tt[b];
        if (label[b] < 0 || label[b] > c.n_classes) die(path, "label %d out of range", label[b]);
    }
    double loss = model_loss_and_grad(m, x, t, label, eps, B);
    printf("# PyTorch comparison (%s): %zu parameters in the test config; the default config has %zu, PyTorch says %d\n",
           path, P, default_params, h[12]);
    printf("%-34s %12s %12s  %s\n", "tensor", "max abs err", "max rel err", "result");
    int failures = 0;
    double max_abs = 0, max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(m->a.pred[i] - (double)ref_out[i]);
        if (e > max_abs) max_abs = e;
        if (fabs(ref_out[i]) > max_ref) max_ref = fabs(ref_out[i]);
    }
    failures += !gradcheck_report("output eps_theta", max_abs, max_abs / max_ref, 1e-4);
    failures += !gradcheck_report("loss", fabs(loss - ref_loss), fabs(loss - ref_loss) / fabs(ref_loss), 1e-4);
    // A tensor whose exact gradient is 0 (the attention's key bias: softmax ignores a shift shared by all keys)
    // holds only rounding noise, so each tensor's error is measured against its own largest gradient or 1e-3 of
    // the network's largest, whichever is bigger.
    double worst_rel = 0, global_max = 0;
    for (size_t i = 0; i < P; i++) global_max = fabs(ref_grads[i]) > global_max ? fabs(ref_grads[i]) : global_max;
    for (int k = 0; k < m->layout.n; k++) {
        const TensorInfo *ti = &m->layout.info[k];
        double ea = 0, mr = 0;
        for (size_t i = 0; i < ti->size; i++) {
            double e = fabs(m->grads[ti->offset + i] - (double)ref_grads[ti->offset + i]);
            if (e > ea) ea = e;
            if (fabs(ref_grads[ti->offset + i]) > mr) mr = fabs(ref_grads[ti->offset + i]);
        }
        double rel = ea / (mr > 1e-3 * global_max ? mr : 1e-3 * global_max);
        if (rel > worst_rel) worst_rel = rel;
        char name[64];
        snprintf(name, sizeof name, "grad %s", ti->name);
        failures += !gradcheck_report(name, ea, rel, 1e-3);
    }
    int count_ok = (size_t)h[12] == default_params;
    printf("%-34s %12zu %12d  %s\n", "parameter count (C vs PyTorch)", default_params, h[12], count_ok ? "PASS" : "FAIL");
    failures += !count_ok;
    printf("# worst gradient error %.3e; %d checks failed\n", worst_rel, failures);
    free(f), free(x), free(eps);
    model_free(m);
    return failures ? 1 : 0;
}

// ---- Training: AdamW, gradient clipping, EMA ------------------------------------------------------------------
// AdamW (Loshchilov & Hutter 2019): per parameter, running means of the gradient (m) and of its square (v), each
// corrected for starting at 0, give a step lr * m_hat / (sqrt(v_hat) + eps): about lr in size whatever the
// gradient's scale. Weight decay (0 by default) shrinks the weights directly, outside the adaptive step.
typedef struct { double lr, beta1, beta2, eps, weight_decay, clip, ema_decay; } TrainHyper;
static const TrainHyper DEFAULT_HYPER = {2e-4, 0.9, 0.999, 1e-8, 0.0, 1.0, 0.999};

// Scales the gradient so that its global L2 norm is at most h->clip (one bad batch cannot throw the weights far),
// then takes AdamW step number `step` (1, 2, ...) and updates the EMA. Returns the norm before clipping.
static double adamw_step(Model *m, const TrainHyper *h, long step) {
    double norm2 = 0;
    for (size_t i = 0; i < m->n_params; i++) norm2 += (double)m->grads[i] * m->grads[i];
    double norm = sqrt(norm2), scale = norm > h->clip ? h->clip / norm : 1.0;
    double bc1 = 1 - pow(h->beta1, (double)step), bc2 = 1 - pow(h->beta2, (double)step);
    // EMA warm-up: decay (1 + step)/(10 + step) while that is below 0.999, so that a short run's average is not
    // mostly the random initial weights (0.999^500 = 61% of them after 500 steps would be).
    double ema_decay = fmin(h->ema_decay, (1.0 + step) / (10.0 + step));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m->n_params; i++) {
        double g = m->grads[i] * scale;
        double mi = h->beta1 * m->adam_m[i] + (1 - h->beta1) * g;
        double vi = h->beta2 * m->adam_v[i] + (1 - h->beta2) * g * g;
        m->adam_m[i] = (real)mi, m->adam_v[i] = (real)vi;
        double p = m->params[i];
        p -= h->lr * ((mi / bc1) / (sqrt(vi / bc2) + h->eps) + h->weight_decay * p);
        m->params[i] = (real)p;
        // The EMA (exponential moving average) of the weights, decay 0.999 ~ an average over the last ~1000 steps:
        // it smooths out the noise of single steps, and sampling uses it (Ho et al. 2020 do the same).
        m->ema[i] = (real)(ema_decay * m->ema[i] + (1 - ema_decay) * p);
    }
    return norm;
}

// ---- Checkpoints ---------------------------------------------------------------------------------------------
// One file: a header (magic, format version, sizes of real, the config, schedule, T, step, RNG state, which
// arrays follow), the arrays (params, EMA, and unless slim the AdamW moments m and v), and a CRC-32 of all of
// it. Saved to path.tmp, flushed with fsync, then renamed over path: rename is atomic, so a crash or kill at any
// moment leaves either the old or the new checkpoint, never a mixture.
enum { CKPT_VERSION = 1 };
typedef struct {
    char magic[8];         // "DIFFUSNC"
    int32_t version, real_size;
    int32_t config[10];    // Config, field by field
    int32_t schedule, T;
    int64_t step;
    uint64_t rng_state, n_params;
    int32_t has_optimizer, batch;  // batch: the training batch size, so that --resume continues identically
} CkptHeader;

static void config_to_ints(const Config *c, int32_t *v) {
    int32_t t[10] = {c->img_c, c->img_h, c->img_w, c->ch1, c->ch2, c->tdim, c->temb, c->groups, c->n_classes, c->cond};
    memcpy(v, t, sizeof t);
}
static Config config_from_ints(const int32_t *v) {
    return (Config){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]};
}

static void checkpoint_save(const char *path, const Model *m, ScheduleKind sched, int T, long step, const Rng *rng, int batch, int slim) {
    CkptHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, "DIFFUSNC", 8);
    h.version = CKPT_VERSION, h.real_size = (int32_t)sizeof(real);
    config_to_ints(&m->cfg, h.config);
    h.schedule = sched, h.T = T, h.step = step, h.rng_state = rng->state, h.n_params = m->n_params;
    h.has_optimizer = !slim, h.batch = batch;
    char tmp[4200];
    FILE *f;
    atomic_write_begin(path, tmp, sizeof tmp, &f);
    const real *arrays[4] = {m->params, m->ema, m->adam_m, m->adam_v};
    uint32_t crc = crc32_update(0, &h, sizeof h);
    fwrite(&h, sizeof h, 1, f);
    for (int k = 0; k < (slim ? 2 : 4); k++) {
        fwrite(arrays[k], sizeof(real), m->n_params, f);
        crc = crc32_update(crc, arrays[k], m->n_params * sizeof(real));
    }
    fwrite(&crc, sizeof crc, 1, f);
    atomic_write_end(path, tmp, f);
}

// Reads and validates a checkpoint. Creates the model (for max_batch images) and fills params, EMA and, when
// present, the AdamW moments. Anything wrong ends with a one-line message naming the file.
// max_batch 0: the batch size saved in the checkpoint (*batch receives it).
static Model *checkpoint_load(const char *path, int max_batch, ScheduleKind *sched, int *T, long *step, Rng *rng, int *has_optimizer, int *batch) {
    size_t len;
    unsigned char *buf = read_file(path, MAX_FILE_BYTES, &len);
    CkptHeader h;
    if (len < sizeof h + 4) { free(buf); die(path, "not a diffusion.c checkpoint (too short: %zu bytes)", len); }
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, "DIFFUSNC", 8)) { free(buf); die(path, "not a diffusion.c checkpoint (bad magic)"); }
    if (h.version != CKPT_VERSION) { free(buf); die(path, "checkpoint format version %d, this program reads %d", h.version, CKPT_VERSION); }
    if (h.real_size != (int32_t)sizeof(real)) { free(buf); die(path, "written by a %s build, this is a %s build", h.real_size == 8 ? "double" : "float", sizeof(real) == 8 ? "double" : "float"); }
    Config c = config_from_ints(h.config);
    const char *why = config_check(&c);
    if (why) { free(buf); die(path, "bad network configuration in checkpoint: %s", why); }
    if (h.schedule < 0 || h.schedule > 2 || h.T < 1 || h.T > 100000 || h.step < 0 || (h.has_optimizer != 0 && h.has_optimizer != 1) ||
        h.batch < 1 || h.batch > 4096) {
        free(buf);
        die(path, "bad schedule, T, step or flags in checkpoint header");
    }
    size_t P = count_params(&c), narrays = h.has_optimizer ? 4 : 2;
    if (h.n_params != P) { free(buf); die(path, "header says %llu parameters, its configuration has %zu", (unsigned long long)h.n_params, P); }
    size_t want = sizeof h + narrays * P * sizeof(real) + 4;
    if (len != want) { free(buf); die(path, "checkpoint is %zu bytes, expected %zu (truncated or corrupt)", len, want); }
    uint32_t crc_file;
    memcpy(&crc_file, buf + len - 4, 4);
    uint32_t crc = crc32_update(0, buf, sizeof h);
    crc = crc32_update(crc, buf + sizeof h, narrays * P * sizeof(real));
    if (crc != crc_file) { free(buf); die(path, "checkpoint is corrupt (CRC-32 mismatch)"); }
    Model *m = model_create(&c, max_batch ? max_batch : h.batch);
    real *arrays[4] = {m->params, m->ema, m->adam_m, m->adam_v};
    for (size_t k = 0; k < narrays; k++) memcpy(arrays[k], buf + sizeof h + k * P * sizeof(real), P * sizeof(real));
    free(buf);
    *sched = (ScheduleKind)h.schedule, *T = h.T, *step = (long)h.step, rng->state = h.rng_state;
    *has_optimizer = h.has_optimizer, *batch = h.batch;
    return m;
}

// Ctrl-C sets this flag (the one piece of global state: a signal handler can reach nothing else); the training
// loop finishes its step, saves and exits.
static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

typedef struct {
    const char *data, *ckpt, *log;
    long steps;          // steps to run in this invocation (0: until `minutes` is up)
    double minutes;      // wall-clock budget (0: none)
    int batch;           // 0: 64, or on --resume the checkpoint's batch size
    int resume, uncond, width;
    ScheduleKind schedule;
    int T;
    uint64_t seed;
    TrainHyper hyper;
    int save_every;      // steps between checkpoints
} TrainOptions;

static void format_duration(char *out, size_t n, double s) {
    if (s < 0 || s > 1e7) s = 0;
    snprintf(out, n, "%dh%02dm%02ds", (int)(s / 3600), (int)(s / 60) % 60, (int)s % 60);
}

// The training loop of step 4, on tuples drawn as in step 3.
static int train(const TrainOptions *o) {
    signal(SIGINT, on_sigint);
    Rng rng = {o->seed};
    ScheduleKind sched = o->schedule;
    int T = o->T, has_opt = 1;
    long step = 0;
    Model *m;
    int B = o->batch ? o->batch : 64;
    if (o->resume) {
        int saved_batch;
        m = checkpoint_load(o->ckpt, o->batch, &sched, &T, &step, &rng, &has_opt, &saved_batch);
        if (!has_opt) die(o->ckpt, "has no optimizer state (an exported model): cannot resume training from it");
        if (!o->batch) B = saved_batch;
        else if (o->batch != saved_batch)
            fprintf(stderr, "note: batch %d differs from the checkpoint's %d: training continues, but not as one run would\n", o->batch, saved_batch);
        fprintf(stderr, "resuming %s at step %ld (schedule %s, T = %d)\n", o->ckpt, step, schedule_names[sched], T);
    } else {
        Config c = DEFAULT_CONFIG;
        if (o->uncond) c.cond = 0;
        if (o->width) c.ch1 = o->width, c.ch2 = 2 * o->width, c.tdim = o->width, c.temb = 4 * o->width;
        if (o->width && o->width % c.groups) die("--width", "must be a multiple of %d (the GroupNorm groups)", c.groups);
        m = model_create(&c, B);
        params_init(m, &rng, 0);
    }
    const Config *c = &m->cfg;
    Dataset d = load_dataset(o->data, c->img_c, c->img_h);
    if (d.c != c->img_c || d.h != c->img_h || d.w != c->img_w)
        die(o->data, "images are %dx%dx%d, the model expects %dx%dx%d", d.c, d.h, d.w, c->img_c, c->img_h, c->img_w);
    Schedule s = schedule_make(sched, T);
    schedule_warn(&s);
    size_t n = (size_t)c->img_c * c->img_h * c->img_w;
    real *x0 = xmalloc(B * n * sizeof(real)), *eps = xmalloc(B * n * sizeof(real)), *xt = xmalloc(B * n * sizeof(real));
    real *tr = xmalloc(B * sizeof(real));
    int *t = xmalloc(B * sizeof(int)), *label = xmalloc(B * sizeof(int));
    FILE *log = NULL;
    if (o->log) {
        log = fopen(o->log, o->resume ? "a" : "w");
        if (!log) die(o->log, "cannot write: %s", strerror(errno));
        if (!o->resume) fprintf(log, "step,loss,lr,grad_norm,seconds\n");
    }
    int tty = isatty(2);
    double t_start = now_seconds(), t_print = 0, smooth = -1;
    long first = step, last_saved = step;
    fprintf(stderr, "training %zu parameters on %d images (%s), batch %d, schedule %s T=%d, %s\n", m->n_params, d.n,
            o->data, B, schedule_names[sched], T, c->cond ? "class-conditional" : "unconditional");
    while (!interrupted) {
        double elapsed = now_seconds() - t_start;
        if (o->steps && step - first >= o->steps) break;
        if (!o->steps && o->minutes && elapsed >= 60 * o->minutes) break;
        draw_training_batch(x0, t, eps, xt, label, &d, &s, B, &rng);
        for (int b = 0; b < B; b++) {
            tr[b] = (real)t[b];
            // Classifier-free guidance needs one network for both eps(x,t,c) and eps(x,t,none): 10% of the time
            // the label is hidden (row n_classes), so the network also learns to denoise without it.
            if (label[b] < 0 || rng_uniform(&rng) < 0.1) label[b] = c->n_classes;
        }
        double loss = model_loss_and_grad(m, xt, tr, label, eps, B);
        if (!isfinite(loss)) {
            die("train", "loss is %g at step %ld: stopping; the last checkpoint (%s, step %ld) is untouched", loss,
                step + 1, o->ckpt, last_saved);
        }
        double gnorm = adamw_step(m, &o->hyper, step + 1);
        step++;
        smooth = smooth < 0 ? loss : 0.98 * smooth + 0.02 * loss;
        elapsed = now_seconds() - t_start;
        if (log) fprintf(log, "%ld,%.6f,%g,%.4f,%.3f\n", step, loss, o->hyper.lr, gnorm, elapsed);
        if (elapsed - t_print >= (tty ? 0.5 : 10) || (o->steps && step - first == o->steps)) {
            t_print = elapsed;
            double rate = (step - first) / elapsed, total = o->steps ? (double)o->steps : 60 * o->minutes * rate;
            char el[32], eta[32];
            format_duration(el, sizeof el, elapsed), format_duration(eta, sizeof eta, (total - (step - first)) / rate);
            fprintf(stderr, "%sstep %ld/%ld  loss %.4f  %.1f img/s  elapsed %s  eta %s%s", tty ? "\r" : "", step - first,
                    (long)total, smooth, rate * B, el, eta, tty ? "   " : "\n");
        }
        if (step - last_saved >= o->save_every) {
            checkpoint_save(o->ckpt, m, sched, T, step, &rng, B, 0);
            last_saved = step;
        }
    }
    if (tty) fputc('\n', stderr);
    checkpoint_save(o->ckpt, m, sched, T, step, &rng, B, 0);
    if (log) {  // the CSV is buffered: its write errors show up here
        int bad = fflush(log) != 0 || ferror(log), err = errno;
        if (fclose(log) != 0 && !bad) bad = 1, err = errno;
        if (bad) die(o->log, "write failed: %s (the checkpoint %s was saved)", strerror(err ? err : EIO), o->ckpt);
    }
    if (interrupted)
        fprintf(stderr, "interrupted: saved %s at step %ld; continue with: ./diffusion train --resume --ckpt %s\n", o->ckpt, step, o->ckpt);
    else
        fprintf(stderr, "saved %s at step %ld (smoothed loss %.4f)\n", o->ckpt, step, smooth);
    free(x0), free(eps), free(xt), free(tr), free(t), free(label);
    dataset_free(&d);
    schedule_free(&s);
    model_free(m);
    return 0;
}

// ============================================================================================================
// Step 5. Simulate the reverse process in terms of eps_theta
//     (2)  x0_hat(x_t, t) = (x_t - sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_bar_t)
//     (3)  mu_theta(x_t, t) = coef_x0 x0_hat + coef_xt x_t          (step 2's posterior mean, x_0 -> x0_hat)
//     generation: x_T ~ N(0, I); for t = T..1: x_{t-1} = mu_theta(x_t, t) + sqrt(beta_tilde_t) z,  z ~ N(0, I)
// We do not know x_0, but the network's noise estimate gives a guess of it (eq. 2), and the exact posterior of
// step 2 tells how to step towards that guess (eq. 3) while keeping the right amount of randomness.
// ============================================================================================================

// eq. (2) for n values: x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).
// With clip, x0_hat is clipped to [-1, 1], the range of the data. This is a heuristic (Ho et al.'s code does it):
// early on, when alpha_bar_t ~ 0, dividing by sqrt(alpha_bar_t) makes x0_hat huge, and clipping keeps the steps
// sane and the samples cleaner; but it is no longer the lecture's algorithm, and it biases the samples towards
// saturated pixels. Off by default, so that `sample` runs exactly the slides' algorithm; on with --clip-x0.
static void x0_hat_from_eps(real *x0_hat, const real *xt, const real *eps, double alpha_bar, double one_minus_alpha_bar,
                            size_t n, int clip) {
    double a = 1 / sqrt(alpha_bar), b = sqrt(one_minus_alpha_bar);
    for (size_t i = 0; i < n; i++) {
        double v = a * (xt[i] - b * eps[i]);
        if (clip) v = v < -1 ? -1 : v > 1 ? 1 : v;
        x0_hat[i] = (real)v;
    }
}

typedef enum { SAMPLER_DDPM, SAMPLER_DDIM, SAMPLER_SDE } SamplerKind;
typedef struct {
    SamplerKind kind;
    int steps;            // DDIM / SDE: number of network evaluations (DDPM always uses T)
    double eta;           // DDIM: 0 deterministic, 1 = DDPM's variance
    int clip;             // clip x0_hat to [-1, 1]
    int guided;           // classifier-free guidance on: eps = eps(none) + w (eps(c) - eps(none))
    double w;             // guidance weight
    real *trajectory;     // if not NULL: (frames, B, C, H, W), x at `frames` evenly spaced moments, noise -> image
    int frames;
} SampleOptions;

// The denoiser as the samplers see it: eps (B,C,H,W) at x (B,C,H,W), time t (the same for all B), labels.
// With guidance, one forward pass of 2B images (x twice, in the scratch x2) computes eps(x, t, c) and
// eps(x, t, none) together; the model must have room for 2B images.
static void predict_eps(real *eps, Model *m, const real *x, real *x2, double t, const int *label, int B, const SampleOptions *o) {
    size_t n = (size_t)B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w;
    real tt[2 * 4096];
    int lab[2 * 4096];
    int copies = o->guided ? 2 : 1;
    for (int b = 0; b < copies * B; b++) tt[b] = (real)t, lab[b] = b < B ? label[b] : m->cfg.n_classes;
    if (!o->guided) {
        unet_forward(m, x, tt, lab, B);
        memcpy(eps, m->a.pred, n * sizeof(real));
        return;
    }
    // BEYOND THE SLIDES (lecture 001): classifier-free guidance, eps = eps(x,t,none) + w (eps(x,t,c) - eps(x,t,none)).
    // w = 1 is the conditional model, w = 0 the unconditional one, w > 1 pushes samples further towards class c.
    memcpy(x2, x, n * sizeof(real));
    memcpy(x2 + n, x, n * sizeof(real));
    unet_forward(m, x2, tt, lab, 2 * B);
    const real *ec = m->a.pred, *eu = m->a.pred + n;
    for (size_t i = 0; i < n; i++) eps[i] = (real)(eu[i] + o->w * (ec[i] - eu[i]));
}

// Runs a sampler on B images: x (B,C,H,W) receives the samples. The model must hold 2B images when guided.
static void sample_loop(real *x, Model *m, const Schedule *s, const int *label, int B, const SampleOptions *o, Rng *rng, int progress) {
    size_t n = (size_t)B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w;
    int T = s->T;
    real *eps = xmalloc(n * sizeof(real)), *x0_hat = xmalloc(n * sizeof(real)), *z = xmalloc(n * sizeof(real));
    real *x2 = o->guided ? xmalloc(2 * n * sizeof(real)) : NULL;
    rng_normal_fill(rng, x, n);  // x_T ~ N(0, I)
    int S = o->kind == SAMPLER_DDPM ? T : o->steps;
    int next_frame = 0;  // trajectory: frames 0..frames-2 before evenly spaced steps, the last one at the end
    for (int i = 0; i < S; i++) {
        if (o->trajectory && next_frame < o->frames - 1 && i == (long)next_frame * S / (o->frames - 1))
            memcpy(o->trajectory + (size_t)next_frame++ * n, x, n * sizeof(real));
        if (progress && isatty(2) && i % 10 == 0) fprintf(stderr, "\rsampling: step %d/%d   ", i, S);
        if (o->kind == SAMPLER_DDPM) {
            int t = T - i;
            predict_eps(eps, m, x, x2, t, label, B, o);
            x0_hat_from_eps(x0_hat, x, eps, s->alpha_bar[t], s->one_minus_alpha_bar[t], n, o->clip);  // eq. (2)
            posterior_mean(x, x, x0_hat, s, t, n);                                                     // eq. (3)
            if (t > 1) {  // at t = 1, beta_tilde_1 = 0: the last step adds no noise
                rng_normal_fill(rng, z, n);
                double sd = sqrt(s->beta_tilde[t]);
                for (size_t k = 0; k < n; k++) x[k] += (real)(sd * z[k]);
            }
        } else if (o->kind == SAMPLER_DDIM) {
            // BEYOND THE SLIDES: DDIM (Song, Meng & Ermon 2021), lecture 001's "deterministic sampling, fewer
            // steps". From t to an earlier t' (S evenly spaced times): keep x0_hat, and re-noise it to level t'
            // using the network's eps as the direction of the noise, plus fresh noise of variance sigma^2:
            //   x_t' = sqrt(alpha_bar_t') x0_hat + sqrt(1 - alpha_bar_t' - sigma^2) eps + sigma z,
            //   sigma^2 = eta^2 (1 - alpha_bar_t')/(1 - alpha_bar_t) (1 - alpha_bar_t/alpha_bar_t').
            // eta = 0 is a deterministic map from noise to image; eta = 1 with t' = t - 1 is exactly DDPM
            // (sigma^2 = beta_tilde_t; without --clip-x0), as `./diffusion check` claim (f) measures.
            int t = T - (int)((long)i * T / S), tp = T - (int)((long)(i + 1) * T / S);
            predict_eps(eps, m, x, x2, t, label, B, o);
            x0_hat_from_eps(x0_hat, x, eps, s->alpha_bar[t], s->one_minus_alpha_bar[t], n, o->clip);
            double ab = s->alpha_bar[t], abp = s->alpha_bar[tp], omab = s->one_minus_alpha_bar[t], omabp = s->one_minus_alpha_bar[tp];
            double var = o->eta * o->eta * omabp / omab * (1 - ab / abp), dir = omabp - var;
            double sd = sqrt(var > 0 ? var : 0), cd = sqrt(dir > 0 ? dir : 0), c0 = sqrt(abp);
            if (sd > 0) rng_normal_fill(rng, z, n);
            for (size_t k = 0; k < n; k++) x[k] = (real)(c0 * x0_hat[k] + cd * eps[k] + (sd > 0 ? sd * z[k] : 0));
        } else {
            // BEYOND THE SLIDES: Euler-Maruyama on the reverse VP-SDE (with the 1/2 the slide drops, see step 1),
            //   dX = beta(u) (1/2 X + grad log p_u(X)) du + sqrt(beta(u)) dW_bar, run from u = 1 down to u = 1/T,
            // with the score from the denoiser: x_u = sqrt(alpha_bar(u)) x_0 + sqrt(1 - alpha_bar(u)) eps gives
            // grad log p_u(x) = -E[eps | x] / sqrt(1 - alpha_bar(u)) ~ -eps_theta / sqrt(1 - alpha_bar(u)).
            // The noise levels are the VP-SDE's, alpha_bar(u) = exp(-int_0^u beta): exactly the `sde` schedule's at
            // u = t/T, and within 1e-3 of the linear schedule's (cosine models are refused in cmd_sample).
            // The network is asked at the fractional timestep u T. S evaluations at u = 1 ... 1/T, evenly spaced:
            // S - 1 Euler-Maruyama steps, and at u = 1/T the noise-free x0_hat is returned.
            double du = (1.0 - 1.0 / T) / (S - 1), u = 1.0 - i * du;
            double beta = vp_beta(u), omab = -expm1(-vp_beta_integral(u));
            predict_eps(eps, m, x, x2, u * T, label, B, o);
            if (i == S - 1) {
                x0_hat_from_eps(x, x, eps, 1 - omab, omab, n, o->clip);
                break;
            }
            rng_normal_fill(rng, z, n);
            double sd = sqrt(beta * du);
            for (size_t k = 0; k < n; k++)
                x[k] = (real)(x[k] + beta * (0.5 * x[k] - eps[k] / sqrt(omab)) * du + sd * z[k]);
        }
    }
    if (o->trajectory) memcpy(o->trajectory + (size_t)(o->frames - 1) * n, x, n * sizeof(real));
    if (progress && isatty(2)) fprintf(stderr, "\rsampling: done            \n");
    free(eps), free(x0_hat), free(z), free(x2);
}

// ============================================================================================================
// Pictures. Pixels in [-1, 1] become bytes 0..255; images are laid out in a grid, each scaled up by an integer
// factor (nearest neighbour: 28x28 is too small to see), written atomically (atomic_write_begin/end).
// ============================================================================================================

static void png_write_callback(void *context, void *data, int size) {
    FILE *f = context;
    if (fwrite(data, 1, (size_t)size, f) != (size_t)size) { /* ferror(f) is checked by the caller */ }
}

// imgs (n, c, h, w) in [-1, 1] -> a PNG grid with `cols` columns, each image scaled by `scale`, 2-pixel gaps.
static void write_image_grid(const char *path, const real *imgs, int n, int cols, int c, int h, int w, int scale) {
    int rows = (n + cols - 1) / cols, gap = 2, comp = c == 1 ? 1 : 3;
    int W = cols * (w * scale + gap) + gap, H = rows * (h * scale + gap) + gap;
    unsigned char *px = xmalloc((size_t)W * H * comp);
    memset(px, 255, (size_t)W * H * comp);
    for (int i = 0; i < n; i++) {
        int ox = gap + (i % cols) * (w * scale + gap), oy = gap + (i / cols) * (h * scale + gap);
        for (int y = 0; y < h * scale; y++)
            for (int x = 0; x < w * scale; x++)
                for (int ch = 0; ch < comp; ch++) {
                    double v = imgs[(((size_t)i * c + (c == 1 ? 0 : ch)) * h + y / scale) * w + x / scale];
                    v = (v + 1) * 127.5;  // NaN (a diverged model) becomes black, not undefined behaviour
                    px[((size_t)(oy + y) * W + ox + x) * comp + ch] = (unsigned char)(!(v > 0) ? 0 : v > 255 ? 255 : v + 0.5);
                }
    }
    char tmp[4200];
    FILE *f;
    atomic_write_begin(path, tmp, sizeof tmp, &f);
    int ok = stbi_write_png_to_func(png_write_callback, f, W, H, comp, px, W * comp);
    free(px);
    if (!ok) { fclose(f); if (tmp[0]) remove(tmp); die(path, "PNG encoding failed"); }
    atomic_write_end(path, tmp, f);
}

// ============================================================================================================
// Step 1-3 made visible: `schedule`, `forward` and `check`
// ============================================================================================================

static void cmd_schedule(ScheduleKind kind, int T) {
    Schedule s = schedule_make(kind, T);
    printf("# t beta alpha alpha_bar beta_tilde coef_x0 coef_xt  (schedule=%s T=%d)\n", schedule_names[kind], T);
    for (int t = 1; t <= T; t++)
        printf("%d %.17g %.17g %.17g %.17g %.17g %.17g\n", t, s.beta[t], s.alpha[t], s.alpha_bar[t], s.beta_tilde[t],
               s.coef_x0[t], s.coef_xt[t]);
    schedule_free(&s);
}

// The first picture of the lecture: one image at t = 0, T/10, ..., T, noised in one shot with ONE eps, so the
// strip shows the signal fading (sqrt(alpha_bar_t) x_0) while the same noise pattern grows (sqrt(1-alpha_bar_t) eps).
static void cmd_forward(const Dataset *d, int index, ScheduleKind kind, int T, uint64_t seed, const char *out) {
    if (index < 0 || index >= d->n) die("--index", "%d is out of range 0..%d", index, d->n - 1);
    Schedule s = schedule_make(kind, T);
    Rng rng = {seed};
    size_t n = (size_t)d->c * d->h * d->w;
    real *x0 = xmalloc(n * sizeof(real)), *eps = xmalloc(n * sizeof(real)), *strip = xmalloc(11 * n * sizeof(real));
    for (size_t i = 0; i < n; i++) x0[i] = d->pixels[(size_t)index * n + i];
    rng_normal_fill(&rng, eps, n);
    printf("# frame t sqrt(alpha_bar_t) sqrt(1-alpha_bar_t)\n");
    for (int k = 0; k <= 10; k++) {
        int t = (int)((long)k * T / 10);
        forward_one_shot(strip + k * n, x0, eps, &s, t, n);
        printf("%d %d %.6f %.6f\n", k, t, sqrt(s.alpha_bar[t]), sqrt(s.one_minus_alpha_bar[t]));
    }
    int scale = d->h >= 96 ? 1 : (96 + d->h - 1) / d->h;
    write_image_grid(out, strip, 11, 11, d->c, d->h, d->w, scale);
    printf("wrote %s: x_t at t = 0, T/10, ..., T (schedule %s, T = %d)\n", out, schedule_names[kind], T);
    free(x0), free(eps), free(strip);
    schedule_free(&s);
}

// Sample mean and variance of n values.
static void mean_var(const double *x, size_t n, double *mean, double *var) {
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (size_t i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *var = ss / (n - 1);
}
static int check_line(const char *claim, double measured, double expected, double tol) {
    int ok = fabs(measured - expected) <= tol;
    printf("  %-48s measured %12.6g  expected %12.6g  tol %.2e  %s\n", claim, measured, expected, tol, ok ? "PASS" : "FAIL");
    return ok;
}

// Claims about the samplers of step 5 (and beyond), on a small network with random weights: the identities hold
// for any eps_theta, trained or not. Both sides run in `real` from the same seed: they differ only by rounding.
static int check_samplers(Rng *rng) {
    Config small = {1, 8, 8, 8, 16, 8, 16, 4, 10, 1};
    enum { B = 4, T = 100 };
    Model *m = model_create(&small, 2 * B);
    params_init(m, rng, 1);
    Schedule s = schedule_make(SCHEDULE_LINEAR, T);
    size_t n = (size_t)B * 64;
    real *a = xmalloc(n * sizeof(real)), *b = xmalloc(n * sizeof(real));
    int label[B] = {1, 5, 7, 9}, none[B] = {10, 10, 10, 10}, fails = 0;
    double tol = sizeof(real) == sizeof(double) ? 1e-9 : 1e-4;  // float rounding, accumulated over T steps
    struct { const char *claim; SampleOptions oa, ob; const int *la, *lb; } cases[] = {
        {"(f) DDIM, eta = 1, all T steps = DDPM", {.kind = SAMPLER_DDIM, .steps = T, .eta = 1}, {.kind = SAMPLER_DDPM}, label, label},
        {"(g) guidance w = 1 = conditional eps(x,t,c)", {.guided = 1, .w = 1}, {.kind = SAMPLER_DDPM}, label, label},
        {"(g) guidance w = 0 = unconditional eps(x,t,none)", {.guided = 1, .w = 0}, {.kind = SAMPLER_DDPM}, label, none},
    };
    printf("(f, g) samplers on a random small network (8x8, T = %d, %d samples): max |difference| of the final x_0\n", T, B);
    for (int k = 0; k < 3; k++) {
        Rng r1 = {42}, r2 = {42};
        sample_loop(a, m, &s, cases[k].la, B, &cases[k].oa, &r1, 0);
        sample_loop(b, m, &s, cases[k].lb, B, &cases[k].ob, &r2, 0);
        double worst = 0;
        for (size_t i = 0; i < n; i++) worst = fabs(a[i] - b[i]) > worst ? fabs(a[i] - b[i]) : worst;
        fails += !check_line(cases[k].claim, worst, 0, tol);
    }
    free(a), free(b);
    schedule_free(&s);
    model_free(m);
    return fails;
}

// `./diffusion check`: the lecture's exactness claims, measured by Monte Carlo. Tolerances are 5 standard errors
// of the estimate (a correct claim fails with probability < 1e-6; and with a fixed seed the outcome is fixed):
// SE(mean) = sqrt(var/n), SE(variance) = var sqrt(2/(n-1)) for Gaussian data.
static int cmd_check(uint64_t seed) {
    enum { NS = 100000 };
    const int T = 1000;
    Rng rng = {seed};
    Schedule lin = schedule_make(SCHEDULE_LINEAR, T);
    double *x = xmalloc(NS * sizeof(double)), *y = xmalloc(NS * sizeof(double)), *z = xmalloc(NS * sizeof(double));
    int fails = 0;
    const double x0 = 1.0;  // everything below is conditional on a fixed clean value X_0 = 1

    printf("(a) one-step chain = one-shot form: X_k | X_0 ~ N(sqrt(alpha_bar_k) X_0, 1 - alpha_bar_k)  [linear, T=%d, n=%d]\n", T, NS);
    // the program's own forward_one_step / forward_one_shot, on NS copies of the pixel X_0 = 1
    real *chain = xmalloc(NS * sizeof(real)), *shot = xmalloc(NS * sizeof(real)), *e = xmalloc(NS * sizeof(real));
    real *ones = xmalloc(NS * sizeof(real));
    for (int i = 0; i < NS; i++) chain[i] = ones[i] = (real)x0;
    int marks[] = {1, 10, 100, 500, 1000};
    for (int k = 1, mi = 0; k <= T; k++) {
        rng_normal_fill(&rng, e, NS);
        forward_one_step(chain, e, &lin, k, NS);
        if (k != marks[mi]) continue;
        mi++;
        rng_normal_fill(&rng, e, NS);
        forward_one_shot(shot, ones, e, &lin, k, NS);
        for (int i = 0; i < NS; i++) x[i] = chain[i], y[i] = shot[i];
        double mc, vc, ms, vs, v = lin.one_minus_alpha_bar[k];
        mean_var(x, NS, &mc, &vc), mean_var(y, NS, &ms, &vs);
        char claim[64];
        double tm = 5 * sqrt(v / NS), tv = 5 * v * sqrt(2.0 / (NS - 1));
        snprintf(claim, sizeof claim, "k=%4d one-step mean", k), fails += !check_line(claim, mc, sqrt(lin.alpha_bar[k]) * x0, tm);
        snprintf(claim, sizeof claim, "k=%4d one-shot mean", k), fails += !check_line(claim, ms, sqrt(lin.alpha_bar[k]) * x0, tm);
        snprintf(claim, sizeof claim, "k=%4d one-step variance", k), fails += !check_line(claim, vc, v, tv);
        snprintf(claim, sizeof claim, "k=%4d one-shot variance", k), fails += !check_line(claim, vs, v, tv);
    }
    free(chain), free(shot), free(e), free(ones);

    // (b) Euler-Maruyama on u in [0, 1] with M steps. The EM scheme's own exact mean and variance are computed
    // alongside (m <- (1 - a du) m, v <- (1 - a du)^2 v + beta du) and their gap to the continuous answer is
    // added to the tolerance: it is the O(du) discretization error of EM, not a failure of the claim.
    const int M = 2000;
    Schedule sde = schedule_make(SCHEDULE_SDE, T);
    for (int variant = 0; variant < 2; variant++) {
        double drift = variant == 0 ? 0.5 : 1.0;  // VP-SDE: -1/2 beta X;  slide as printed: -beta X
        printf("(b%d) Euler-Maruyama (%d steps) of dX = -%sbeta(u) X du + sqrt(beta(u)) dW, X_0 = 1, n=%d\n", variant + 1, M,
               variant == 0 ? "1/2 " : "", NS);
        for (int i = 0; i < NS; i++) x[i] = x0;
        double em_mean = x0, em_var = 0, du = 1.0 / M;
        for (int j = 1; j <= M; j++) {
            double beta = vp_beta((j - 1) * du), a = 1 - drift * beta * du, sd = sqrt(beta * du);
            for (int i = 0; i < NS; i++) x[i] = a * x[i] + sd * rng_normal(&rng);
            em_mean *= a, em_var = a * a * em_var + beta * du;
            if (j % (M / 4)) continue;
            double u = (double)j / M, mean, var;
            int k = (int)lround(u * T);
            mean_var(x, NS, &mean, &var);
            double Ib = vp_beta_integral(u), exact_mean = exp(-drift * Ib) * x0;
            double exact_var = variant == 0 ? -expm1(-Ib) : 0.5 * -expm1(-2 * Ib);  // V' = -2 drift beta V + beta
            char claim[80];
            double tm = 5 * sqrt(var / NS) + fabs(em_mean - exact_mean), tv = 5 * var * sqrt(2.0 / (NS - 1)) + fabs(em_var - exact_var);
            if (variant == 0) {  // the VP-SDE matches the discretization X_k = sqrt(alpha_bar_k) X_0 + ...
                snprintf(claim, sizeof claim, "u=%.2f mean vs sqrt(alpha_bar_%d) [sde]", u, k);
                fails += !check_line(claim, mean, sqrt(sde.alpha_bar[k]) * x0, tm);
                snprintf(claim, sizeof claim, "u=%.2f variance vs 1-alpha_bar_%d [sde]", u, k);
                fails += !check_line(claim, var, sde.one_minus_alpha_bar[k], tv);
            } else {  // the slide's literal SDE: mean exp(-int beta), variance 1/2 (1 - exp(-2 int beta)) -> 1/2
                snprintf(claim, sizeof claim, "u=%.2f mean vs exp(-int beta)", u);
                fails += !check_line(claim, mean, exact_mean, tm);
                snprintf(claim, sizeof claim, "u=%.2f variance vs (1-exp(-2 int beta))/2", u);
                fails += !check_line(claim, var, exact_var, tv);
                if (j == M) {
                    int mismatch = fabs(var - sde.one_minus_alpha_bar[k]) > 10 * tv;
                    printf("  %-46s measured %12.6f  vs 1-alpha_bar_T %10.6f: %s\n", "slide's SDE at u=1 is N(0, 1/2), not N(0, 1)",
                           var, sde.one_minus_alpha_bar[k], mismatch ? "PASS (the erratum is real)" : "FAIL");
                    fails += !mismatch;
                }
            }
        }
    }

    printf("(c) posterior q(x_{t-1} | x_t, x_0): least squares of x_{t-1} on x_t, X_0 = 0.5  [linear, n=%d]\n", NS);
    int ts[] = {2, 10, 100, 500, 1000};
    for (int j = 0; j < 5; j++) {
        int t = ts[j];
        double xz = 0.5;
        for (int i = 0; i < NS; i++) {
            x[i] = sqrt(lin.alpha_bar[t - 1]) * xz + sqrt(lin.one_minus_alpha_bar[t - 1]) * rng_normal(&rng);  // x_{t-1}
            y[i] = sqrt(lin.alpha[t]) * x[i] + sqrt(lin.beta[t]) * rng_normal(&rng);                             // x_t
        }
        double mx, vx, my, vy, cov = 0;
        mean_var(x, NS, &mx, &vx), mean_var(y, NS, &my, &vy);
        for (int i = 0; i < NS; i++) cov += (x[i] - mx) * (y[i] - my);
        cov /= NS - 1;
        double slope = cov / vy, icept = mx - slope * my;
        for (int i = 0; i < NS; i++) z[i] = x[i] - icept - slope * y[i];
        double mr, resid;
        mean_var(z, NS, &mr, &resid);
        double se_slope = sqrt(resid / (NS * vy)), se_icept = sqrt(resid / NS * (1 + my * my / vy));
        char claim[64];
        snprintf(claim, sizeof claim, "t=%4d slope = coef_xt", t), fails += !check_line(claim, slope, lin.coef_xt[t], 5 * se_slope);
        snprintf(claim, sizeof claim, "t=%4d intercept = coef_x0 X_0", t), fails += !check_line(claim, icept, lin.coef_x0[t] * xz, 5 * se_icept);
        snprintf(claim, sizeof claim, "t=%4d residual variance = beta_tilde", t);
        fails += !check_line(claim, resid, lin.beta_tilde[t], 5 * lin.beta_tilde[t] * sqrt(2.0 / (NS - 1)) + 1e-15);
    }

    printf("(d) lecture 001's update (x_t - beta_t/sqrt(1-alpha_bar_t) eps)/sqrt(alpha_t) = eq. (3) after eq. (2)\n");
    for (int k = 0; k < 3; k++) {
        Schedule s = schedule_make((ScheduleKind)k, T);
        double worst = 0;
        for (int t = 1; t <= T; t++)
            for (int i = 0; i < 100; i++) {
                double xt = 2 * rng_normal(&rng), e = rng_normal(&rng);
                double a = (xt - s.beta[t] / sqrt(s.one_minus_alpha_bar[t]) * e) / sqrt(s.alpha[t]);
                double x0_hat = (xt - sqrt(s.one_minus_alpha_bar[t]) * e) / sqrt(s.alpha_bar[t]);   // eq. (2)
                double mu = s.coef_x0[t] * x0_hat + s.coef_xt[t] * xt;                               // eq. (3)
                double err = fabs(a - mu) / (1 + fabs(a));
                if (err > worst) worst = err;
            }
        char claim[64];
        snprintf(claim, sizeof claim, "%s: max relative difference, all t", schedule_names[k]);
        fails += !check_line(claim, worst, 0, 1e-9);  // both are exact in double; only rounding separates them
        schedule_free(&s);
    }

    printf("(e) X_T is close to N(0, 1), from X_0 = 1 (the worst case for data in [-1, 1])  [T=%d, n=%d]\n", T, NS);
    for (int k = 0; k < 3; k++) {
        Schedule s = schedule_make((ScheduleKind)k, T);
        for (int i = 0; i < NS; i++) x[i] = sqrt(s.alpha_bar[T]) * x0 + sqrt(s.one_minus_alpha_bar[T]) * rng_normal(&rng);
        double mean, var, ab = s.alpha_bar[T];
        mean_var(x, NS, &mean, &var);
        double kl = 0.5 * (ab * x0 * x0 - ab - log1p(-ab));  // KL(N(sqrt(ab), 1-ab) || N(0,1)) per pixel
        char claim[80];
        snprintf(claim, sizeof claim, "%s: mean of X_T (N(0,1): 0)", schedule_names[k]), fails += !check_line(claim, mean, 0, 5 * sqrt(1.0 / NS));
        snprintf(claim, sizeof claim, "%s: variance of X_T (N(0,1): 1)", schedule_names[k]), fails += !check_line(claim, var, 1, 5 * sqrt(2.0 / (NS - 1)));
        printf("  %-46s %.3e nats per pixel\n", "exact KL(q(X_T|X_0) || N(0,1))", kl);
        schedule_free(&s);
    }
    fails += check_samplers(&rng);
    printf("%s: %d claim(s) failed\n", fails ? "FAIL" : "PASS", fails);
    free(x), free(y), free(z);
    schedule_free(&lin), schedule_free(&sde);
    return fails ? 1 : 0;
}

// ============================================================================================================
// The command line
// ============================================================================================================

typedef struct {
    ScheduleKind schedule;
    int T, index, batch, n, label, uncond, resume, clip_x0, threads, steps_given, width, guided;
    long steps;
    uint64_t seed;
    double minutes, lr, eta, guidance;
    const char *out, *data, *image, *ckpt, *log, *sampler, *trajectory, *ref;
} Options;

typedef struct { const char *name, *flags, *usage; } Command;
static const Command commands[] = {
    {"schedule", " --schedule --T ",
     "schedule [--schedule linear|cosine|sde] [--T N]\n"
     "  Prints t beta alpha alpha_bar beta_tilde coef_x0 coef_xt for t = 1..T (step 1 and step 2)."},
    {"forward", " --schedule --T --data --index --seed --out IMAGE ",
     "forward [IMAGE | --data fashion-mnist --index I] [--schedule S] [--T N] [--seed S] --out strip.png\n"
     "  Writes x_t at t = 0, T/10, ..., T: the image dissolving into noise (step 1)."},
    {"check", " --seed ",
     "check [--seed S]\n"
     "  Verifies the lecture's exactness claims by Monte Carlo (10^5 samples each); exit 1 on any FAIL."},
    {"info", " --uncond ",
     "info [--uncond]\n  Prints the network's layers, parameter count and memory per image."},
    {"gradcheck", " --seed ",
     "gradcheck [--seed S]\n"
     "  Compares every layer's hand-written backward with finite differences (build with -DDOUBLE for the 1e-6 proof)."},
    {"train", " --data --steps --minutes --batch --lr --seed --schedule --T --ckpt --resume --uncond --log --width --threads ",
     "train [--data fashion-mnist|DIR|FILE] [--steps N | --minutes M] [--batch 64] [--lr 2e-4] [--seed S]\n"
     "      [--schedule linear|cosine|sde] [--T 1000] [--ckpt model.ckpt] [--resume] [--uncond] [--log loss.csv]\n"
     "      [--width 32] [--threads N]\n"
     "  Trains eps_theta (steps 3 and 4) with AdamW; Ctrl-C saves and stops. Default: 10 minutes."},
    {"sample", " --ckpt --sampler --steps --eta --guidance --label --n --seed --out --trajectory --clip-x0 --batch --threads ",
     "sample [--ckpt data/model.ckpt] [--sampler ddpm|ddim|sde] [--steps S] [--eta E] [--guidance W] [--label C]\n"
     "       [--n N] [--seed S] [--out samples.png] [--trajectory traj.png] [--clip-x0] [--batch 64]\n"
     "  Generates images from noise (step 5). Without --label, a class-conditional model gives one row per class."},
    {"export", " --ckpt --out ",
     "export --ckpt model.ckpt --out small.ckpt\n"
     "  Writes the weights and EMA weights without the optimizer state (half the size; enough for sampling)."},
    {"bench", " --threads --steps ",
     "bench [--threads N] [--steps REPS]\n"
     "  Speed of the default network at batch 64: training and sampling images/s, GFLOP/s against the FMA peak, memory."},
    {"refcheck", " --ref ",
     "refcheck [--ref data/unet_ref.bin]\n"
     "  Compares the network's output, loss and gradients with PyTorch's (notes/pytorch_mirror.py ref)."},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static const char *flag_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) die_usage(argv[*i], "missing value");
    return argv[++*i];
}
static long parse_long(const char *flag, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) die_usage(flag, "'%s' is not an integer in %ld..%ld", s, lo, hi);
    return v;
}
static double parse_double(const char *flag, const char *s, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) die_usage(flag, "'%s' is not a number in %g..%g", s, lo, hi);
    return v;
}
static ScheduleKind parse_schedule(const char *s) {
    for (int k = 0; k < 3; k++)
        if (!strcmp(s, schedule_names[k])) return (ScheduleKind)k;
    die_usage("--schedule", "unknown schedule '%s' (linear, cosine or sde)", s);
    return SCHEDULE_LINEAR;
}

static void parse_options(Options *o, const Command *cmd, int argc, char **argv) {
    *o = (Options){.schedule = SCHEDULE_LINEAR, .T = 1000, .index = 0, .batch = 64, .n = 0, .label = -1, .steps = 0,
                   .seed = 1, .lr = 2e-4, .eta = 0, .guidance = 1, .data = "fashion-mnist", .sampler = "ddpm",
                   .ref = "data/unet_ref.bin", .threads = 0, .width = 0};
    o->batch = 0;  // 0: the command's default (64; on train --resume, the checkpoint's)
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { printf("usage: ./diffusion %s\n", cmd->usage); exit(0); }
        char key[64];
        snprintf(key, sizeof key, " %s ", a[0] == '-' ? a : "IMAGE");
        if (!strstr(cmd->flags, key) || (a[0] == '-' && strpbrk(a, " \t\n"))) {  // "--T --seed" is no flag
            if (a[0] == '-') die_usage(a, "unknown flag for '%s' (see ./diffusion %s --help)", cmd->name, cmd->name);
            die_usage(a, "unexpected argument for '%s' (see ./diffusion %s --help)", cmd->name, cmd->name);
        }
        if (a[0] != '-') { if (o->image) die_usage(a, "only one image may be given"); o->image = a; }
        else if (!strcmp(a, "--schedule")) o->schedule = parse_schedule(flag_value(argc, argv, &i));
        else if (!strcmp(a, "--T")) o->T = (int)parse_long(a, flag_value(argc, argv, &i), 1, 100000);
        else if (!strcmp(a, "--seed")) o->seed = (uint64_t)parse_long(a, flag_value(argc, argv, &i), 0, 0x7fffffffffffffffL);
        else if (!strcmp(a, "--index")) o->index = (int)parse_long(a, flag_value(argc, argv, &i), 0, MAX_IDX_ITEMS);
        else if (!strcmp(a, "--batch")) o->batch = (int)parse_long(a, flag_value(argc, argv, &i), 1, 4096);
        else if (!strcmp(a, "--n")) o->n = (int)parse_long(a, flag_value(argc, argv, &i), 1, 4096);
        else if (!strcmp(a, "--label")) o->label = (int)parse_long(a, flag_value(argc, argv, &i), 0, 9);
        else if (!strcmp(a, "--steps")) o->steps = parse_long(a, flag_value(argc, argv, &i), 1, 1000000000L), o->steps_given = 1;
        else if (!strcmp(a, "--threads")) o->threads = (int)parse_long(a, flag_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(a, "--minutes")) o->minutes = parse_double(a, flag_value(argc, argv, &i), 1e-3, 1e6);
        else if (!strcmp(a, "--lr")) o->lr = parse_double(a, flag_value(argc, argv, &i), 1e-12, 1);
        else if (!strcmp(a, "--eta")) o->eta = parse_double(a, flag_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--guidance")) o->guidance = parse_double(a, flag_value(argc, argv, &i), -100, 100), o->guided = 1;
        else if (!strcmp(a, "--width")) o->width = (int)parse_long(a, flag_value(argc, argv, &i), 8, 256);
        else if (!strcmp(a, "--out")) o->out = flag_value(argc, argv, &i);
        else if (!strcmp(a, "--data")) o->data = flag_value(argc, argv, &i);
        else if (!strcmp(a, "--ckpt")) o->ckpt = flag_value(argc, argv, &i);
        else if (!strcmp(a, "--log")) o->log = flag_value(argc, argv, &i);
        else if (!strcmp(a, "--sampler")) o->sampler = flag_value(argc, argv, &i);
        else if (!strcmp(a, "--trajectory")) o->trajectory = flag_value(argc, argv, &i);
        else if (!strcmp(a, "--ref")) o->ref = flag_value(argc, argv, &i);
        else if (!strcmp(a, "--uncond")) o->uncond = 1;
        else if (!strcmp(a, "--resume")) o->resume = 1;
        else if (!strcmp(a, "--clip-x0")) o->clip_x0 = 1;
    }
}

// `./diffusion sample`: step 5 on a trained checkpoint, in batches, with the pictures.
static int cmd_sample(const Options *o) {
    const char *path = o->ckpt ? o->ckpt : "data/model.ckpt";
    SampleOptions so = {.kind = SAMPLER_DDPM, .steps = 0, .eta = o->eta, .clip = o->clip_x0, .guided = o->guided, .w = o->guidance};
    if (!strcmp(o->sampler, "ddim")) so.kind = SAMPLER_DDIM;
    else if (!strcmp(o->sampler, "sde")) so.kind = SAMPLER_SDE;
    else if (strcmp(o->sampler, "ddpm")) die_usage("--sampler", "unknown sampler '%s' (ddpm, ddim or sde)", o->sampler);
    int chunk = o->batch ? o->batch : 64;
    ScheduleKind sk;
    int T, has_opt, batch;
    long step;
    Rng unused;
    Model *m = checkpoint_load(path, so.guided ? 2 * chunk : chunk, &sk, &T, &step, &unused, &has_opt, &batch);
    const Config *c = &m->cfg;
    if (so.kind != SAMPLER_DDPM) so.steps = o->steps_given ? (int)(o->steps < T ? o->steps : T) : 50;
    if (so.kind == SAMPLER_SDE && so.steps < 2) die_usage("--steps", "the sde sampler needs at least 2 steps");
    if (so.kind == SAMPLER_SDE && sk == SCHEDULE_COSINE)
        die_usage("--sampler", "sde follows the VP-SDE's noise levels (schedules sde and linear); this model was trained with cosine: use ddpm or ddim");
    if (o->label >= 0 && !c->cond) die_usage("--label", "this model is unconditional (trained with --uncond)");
    if (so.guided && !c->cond) die_usage("--guidance", "this model is unconditional (trained with --uncond)");
    int per_class = c->cond && o->label < 0;  // one row per class
    int n = o->n ? o->n : per_class ? 80 : 64, cols = per_class ? (n + 9) / 10 : (int)ceil(sqrt((double)n));
    if (per_class) n = 10 * cols;
    memcpy(m->params, m->ema, m->n_params * sizeof(real));  // sample with the EMA weights
    Schedule s = schedule_make(sk, T);
    schedule_warn(&s);
    size_t img = (size_t)c->img_c * c->img_h * c->img_w;
    real *x = xmalloc((size_t)n * img * sizeof(real));
    int *label = xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) label[i] = !c->cond ? 0 : per_class ? i / cols : o->label;
    const int frames = 11, traj_rows = chunk < 8 ? chunk : 8;
    real *traj = o->trajectory ? xmalloc((size_t)frames * chunk * img * sizeof(real)) : NULL;
    Rng rng = {o->seed};
    double t0 = now_seconds();
    fprintf(stderr, "sampling %d images with %s (%d network evaluations each%s) from %s (step %ld, %s T=%d)\n", n, o->sampler,
            so.kind == SAMPLER_DDPM ? T : so.steps, so.guided ? ", guided: x2" : "", path, step, schedule_names[sk], T);
    for (int first = 0; first < n; first += chunk) {
        int B = n - first < chunk ? n - first : chunk;
        so.trajectory = first == 0 ? traj : NULL, so.frames = frames;
        sample_loop(x + (size_t)first * img, m, &s, label + first, B, &so, &rng, 1);
        if (first == 0 && traj) {  // rows: samples; columns: x at 11 moments from noise (left) to image (right)
            int rows = B < traj_rows ? B : traj_rows;
            real *grid = xmalloc((size_t)rows * frames * img * sizeof(real));
            for (int r = 0; r < rows; r++)
                for (int f = 0; f < frames; f++)
                    memcpy(grid + ((size_t)r * frames + f) * img, traj + ((size_t)f * B + r) * img, img * sizeof(real));
            write_image_grid(o->trajectory, grid, rows * frames, frames, c->img_c, c->img_h, c->img_w, 3);
            free(grid);
        }
    }
    double secs = now_seconds() - t0;
    const char *out = o->out ? o->out : "samples.png";
    write_image_grid(out, x, n, cols, c->img_c, c->img_h, c->img_w, 3);
    printf("wrote %s: %d samples in %.1f s\n", out, n, secs);
    if (per_class)
        for (int k = 0; k < 10; k++) printf("  row %d: %s\n", k + 1, c->n_classes == 10 ? fashion_class_names[k] : "class");
    if (traj) printf("wrote %s: noise (left) to image (right) at 11 moments\n", o->trajectory);
    free(x), free(label), free(traj);
    schedule_free(&s);
    model_free(m);
    return 0;
}

// ============================================================================================================
// BEYOND THE SLIDES: `./diffusion bench`, the speed of the default network (batch 64), beside the machine's peak
// ============================================================================================================

// Multiply-adds the model does per image (every FLOP that goes through gemm; elementwise layers, ~1%, are left
// out): a convolution is 2 OC C K^2 N' FLOPs, attention's two products 2 N^2 C each, a linear layer 2 O I.
static double conv_flops(int C, int OC, int K, int N) { return 2.0 * OC * C * K * K * N; }
static double resblock_flops(int cin, int cout, int N, int temb) {
    return conv_flops(cin, cout, 3, N) + conv_flops(cout, cout, 3, N) + (cin != cout ? conv_flops(cin, cout, 1, N) : 0) + 2.0 * temb * cout;
}
static double unet_flops(const Config *c) {
    int N = c->img_h * c->img_w, N2 = N / 4, N4 = N / 16, e = c->temb;
    return 2.0 * (c->tdim * e + e * e) + conv_flops(c->img_c, c->ch1, 3, N) + resblock_flops(c->ch1, c->ch1, N, e) +
           conv_flops(c->ch1, c->ch1, 3, N2) + resblock_flops(c->ch1, c->ch2, N2, e) + conv_flops(c->ch2, c->ch2, 3, N4) +
           3 * resblock_flops(c->ch2, c->ch2, N4, e) + 4 * conv_flops(c->ch2, c->ch2, 1, N4) + 4.0 * N4 * N4 * c->ch2 +
           resblock_flops(2 * c->ch2, c->ch2, N4, e) + conv_flops(c->ch2, c->ch2, 3, N2) + resblock_flops(2 * c->ch2, c->ch2, N2, e) +
           conv_flops(c->ch2, c->ch2, 3, N) + resblock_flops(c->ch2 + c->ch1, c->ch1, N, e) + conv_flops(c->ch1, c->img_c, 3, N);
}

// The peak: 12 independent chains of vector multiply-adds (enough to hide their latency), per thread, with this
// build's vectors (fused FMAs when the CPU has them, as gemm uses them; separate mul + add on a CPU without FMA).
FMA_CLONES static double fma_peak_gflops(int threads) {
    const long iters = 20000000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_seconds(), sink = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : sink)
        for (int th = 0; th < threads; th++) {
            vec acc[12], x, y;
            for (int i = 0; i < 12; i++) acc[i] = (vec){0} + (real)i;
            x = (vec){0} + (real)0.999999, y = (vec){0} + (real)1e-7;
            for (long k = 0; k < iters; k++)
#pragma GCC unroll 12
                for (int i = 0; i < 12; i++) acc[i] = acc[i] * x + y;
            for (int i = 0; i < 12; i++) sink += acc[i][0];
        }
        double gf = 2.0 * 12 * VL * iters * threads / (now_seconds() - t0) / 1e9;
        if (gf > best) best = gf;
        if (sink == 12345) printf(" ");  // keeps the loop from being optimised away
    }
    return best;
}

#ifndef BUILD_FLAGS  // the Makefile passes its flags; a hand-typed `cc` command cannot be seen from inside
#define BUILD_FLAGS "not recorded (built without the Makefile)"
#endif
static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int cmd_bench(int reps) {
    const Config *c = &DEFAULT_CONFIG;
    int B = 64, threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    Rng rng = {1};
    Model *m = model_create(c, B);
    params_init(m, &rng, 1);
    size_t n = (size_t)B * c->img_c * c->img_h * c->img_w;
    real *x = random_array(n, &rng), *eps = random_array(n, &rng), t[64];
    int label[64];
    for (int b = 0; b < B; b++) t[b] = (real)(1 + rng_int(&rng, 1000)), label[b] = rng_int(&rng, 11);
    double fwd_flops = unet_flops(c), train_flops = 3 * fwd_flops;  // backward: dW and dx, each ~ the forward
    double tt[32], tf[32];
    if (reps > 32) reps = 32;
    for (int r = -2; r < reps; r++) {  // two warm-up rounds (first-touch page faults, caches), then timed
        double t0 = now_seconds();
        model_loss_and_grad(m, x, t, label, eps, B);
        adamw_step(m, &DEFAULT_HYPER, 1);
        double t1 = now_seconds();
        unet_forward(m, x, t, label, B);
        double t2 = now_seconds();
        if (r >= 0) tt[r] = t1 - t0, tf[r] = t2 - t1;
    }
    double train_s = median(tt, reps), fwd_s = median(tf, reps);
    // the convolutions alone, forward and backward, on the largest one (u2.conv1: 96 -> 32 channels at 28x28)
    const ResBlockActs *u2 = &m->a.u2;
    double tcf[32], tcw[32], tcb[32], cf = B * conv_flops(u2->cin, u2->cout, 3, c->img_h * c->img_w);
    for (int r = -1; r < reps; r++) {
        double t0 = now_seconds();
        conv2d_forward(u2->h1, u2->act1, m->p.u2.conv1.w, m->p.u2.conv1.b, B, u2->cin, u2->H, u2->W, u2->cout, 3, 1, &m->ws);
        double t1 = now_seconds();  // the weight gradient alone (no dinp), then both gradients
        conv2d_backward(NULL, m->g.u2.conv1.w, m->g.u2.conv1.b, u2->h1, u2->act1, m->p.u2.conv1.w, B, u2->cin, u2->H,
                        u2->W, u2->cout, 3, 1, &m->ws);
        double t2 = now_seconds();
        conv2d_backward(m->da.u2.act1, m->g.u2.conv1.w, m->g.u2.conv1.b, u2->h1, u2->act1, m->p.u2.conv1.w, B, u2->cin, u2->H,
                        u2->W, u2->cout, 3, 1, &m->ws);
        double t3 = now_seconds();
        if (r >= 0) tcf[r] = t1 - t0, tcw[r] = t2 - t1, tcb[r] = t3 - t2;
    }
    double tw = median(tcw, reps), tb = median(tcb, reps);
    double conv_f = cf / median(tcf, reps) / 1e9, conv_w = cf / tw / 1e9, conv_x = tb > tw ? cf / (tb - tw) / 1e9 : 0;
    double peak = fma_peak_gflops(threads);
    long peak_rss_kb = 0;  // the kernel's high-water mark of resident memory (Linux)
    FILE *st = fopen("/proc/self/status", "r");
    char line[256];
    while (st && fgets(line, sizeof line, st))
        if (!strncmp(line, "VmHWM:", 6)) peak_rss_kb = atol(line + 6);
    if (st) fclose(st);
    const char *isa = "generic";
#if defined(__AVX512F__)
    isa = "AVX-512";
#elif defined(__AVX2__)
    isa = "AVX2";
#elif defined(__SSE2__)
    isa = "SSE2";
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX__)
    if (__builtin_cpu_supports("fma")) isa = "SSE2 + the FMA clone of gemm (chosen at run time)";
#endif
    printf("# diffusion.c bench: default U-Net (%zu parameters), batch %d, %d thread(s), %s build, vector ISA %s, OpenMP %s\n",
           m->n_params, B, threads, sizeof(real) == 4 ? "float" : "double", isa, threads > 1 || m->ws.threads > 1 ? "on" : "off/1");
    printf("# compiler %s, flags: %s\n", __VERSION__, BUILD_FLAGS);
    printf("# FLOPs per image: forward %.1f M, training step ~3x = %.1f M (backward = weight + input gradients)\n", fwd_flops / 1e6, train_flops / 1e6);
    printf("# peak of this build's vectors (12 independent multiply-add chains): %.1f GFLOP/s on %d thread(s)\n", peak, threads);
    printf("training step (fwd+bwd+AdamW+EMA): %7.1f images/s  %6.1f GFLOP/s  (%4.1f%% of peak)  median of %d\n", B / train_s,
           B * train_flops / train_s / 1e9, 100 * B * train_flops / train_s / 1e9 / peak, reps);
    printf("denoiser forward (sampling)      : %7.1f images/s  %6.1f GFLOP/s  (%4.1f%% of peak)\n", B / fwd_s,
           B * fwd_flops / fwd_s / 1e9, 100 * B * fwd_flops / fwd_s / 1e9 / peak);
    printf("conv 3x3 96->32 @28x28: forward %6.1f GFLOP/s (%4.1f%% of peak), weight gradient %6.1f (%4.1f%%), input gradient %6.1f (%4.1f%%)\n",
           conv_f, 100 * conv_f / peak, conv_w, 100 * conv_w / peak, conv_x, 100 * conv_x / peak);
    double mb = 1e6;
    printf("memory: peak resident %.1f MB = parameters %.1f + gradients %.1f + AdamW %.1f + EMA %.1f + activations %.1f (+ their gradients %.1f) + conv scratch %.1f MB + program\n",
           peak_rss_kb / 1e3, m->n_params * sizeof(real) / mb, m->n_params * sizeof(real) / mb, 2 * m->n_params * sizeof(real) / mb,
           m->n_params * sizeof(real) / mb, m->n_acts * sizeof(real) / mb, m->n_acts * sizeof(real) / mb,
           ((2 * m->ws.threads * m->ws.col_size) + (size_t)(DW_SLOTS + 1) * m->ws.weight_size) * sizeof(real) / mb);
    printf("c threads=%d batch=%d train_img_s=%.1f fwd_img_s=%.1f peak_gflops=%.1f\n", threads, B, B / train_s, B / fwd_s, peak);
    free(x), free(eps);
    model_free(m);
    return 0;
}

static void print_usage(void) {
    printf("diffusion.c: denoising diffusion (DDPM) in one C file, following the lecture's five steps.\n\nusage:\n");
    for (int i = 0; i < N_COMMANDS; i++) printf("  ./diffusion %s\n\n", commands[i].usage);
}

static void cmd_info(const Config *c) {
    size_t P = count_params(c);
    Acts a;
    Layout *L = xmalloc(sizeof(Layout));
    acts_layout(&a, L, NULL, c, 1);
    size_t per_image = L->used;
    free(L);
    printf("U-Net eps_theta(x_t, t%s): input %dx%dx%d, widths %d/%d, time embedding %d->%d, GroupNorm %d groups\n",
           c->cond ? ", class" : "", c->img_c, c->img_h, c->img_w, c->ch1, c->ch2, c->tdim, c->temb, c->groups);
    printf("parameters: %zu\n", P);
    printf("memory: parameters %.2f MB, gradients %.2f MB, AdamW moments %.2f MB, EMA %.2f MB, activations %.2f MB per image (x2 with their gradients)\n",
           P * sizeof(real) / 1e6, P * sizeof(real) / 1e6, 2 * P * sizeof(real) / 1e6, P * sizeof(real) / 1e6,
           per_image * sizeof(real) / 1e6);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage();
        return argc < 2 ? 2 : 0;
    }
    const Command *cmd = NULL;
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) cmd = &commands[i];
    if (!cmd) die_usage(argv[1], "unknown command (try ./diffusion --help)");
    Options o;
    parse_options(&o, cmd, argc, argv);
    // A write beyond the file-size limit (ulimit -f) must fail with EFBIG and a message, not kill the program.
    signal(SIGXFSZ, SIG_IGN);
#ifdef _OPENMP
    if (o.threads) omp_set_num_threads(o.threads);
#endif
    Config cfg = DEFAULT_CONFIG;
    if (o.uncond) cfg.cond = 0;
    if (!strcmp(cmd->name, "schedule")) cmd_schedule(o.schedule, o.T);
    else if (!strcmp(cmd->name, "forward")) {
        if (!o.out) die_usage("--out", "required (e.g. --out strip.png)");
        Dataset d = o.image ? load_images(o.image, 1, 28) : load_dataset(o.data, 1, 28);
        if (o.image) {  // show a user's image in colour if it has colour
            int w, h, comp;
            if (stbi_info(o.image, &w, &h, &comp) && comp >= 3) dataset_free(&d), d = load_images(o.image, 3, 28);
        }
        cmd_forward(&d, o.index, o.schedule, o.T, o.seed, o.out);
        dataset_free(&d);
    } else if (!strcmp(cmd->name, "check")) return cmd_check(o.seed);
    else if (!strcmp(cmd->name, "info")) cmd_info(&cfg);
    else if (!strcmp(cmd->name, "gradcheck")) return run_gradcheck(o.seed);
    else if (!strcmp(cmd->name, "refcheck")) return run_refcheck(o.ref, count_params(&DEFAULT_CONFIG));
    else if (!strcmp(cmd->name, "train")) {
        TrainOptions t = {.data = o.data, .ckpt = o.ckpt ? o.ckpt : "model.ckpt", .log = o.log, .steps = o.steps,
                          .minutes = o.minutes, .batch = o.batch, .resume = o.resume, .uncond = o.uncond,
                          .width = o.width, .schedule = o.schedule, .T = o.T, .seed = o.seed, .hyper = DEFAULT_HYPER,
                          .save_every = 500};
        if (!o.steps && !o.minutes) t.minutes = 10;
        t.hyper.lr = o.lr;
        return train(&t);
    } else if (!strcmp(cmd->name, "sample")) return cmd_sample(&o);
    else if (!strcmp(cmd->name, "bench")) return cmd_bench(o.steps_given ? (int)o.steps : 7);
    else if (!strcmp(cmd->name, "export")) {
        if (!o.ckpt || !o.out) die_usage("export", "needs --ckpt and --out");
        ScheduleKind sk;
        int T, has_opt, batch;
        long step;
        Rng r;
        Model *m = checkpoint_load(o.ckpt, 1, &sk, &T, &step, &r, &has_opt, &batch);
        checkpoint_save(o.out, m, sk, T, step, &r, batch, 1);
        printf("wrote %s (step %ld, weights and EMA weights, no optimizer state)\n", o.out, step);
        model_free(m);
    }
    return 0;
}

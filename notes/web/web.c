// web.c — the C side of the lecture in the browser (notes/web/README.md). It adds no math: it
// includes diffusion.c whole (its functions are static, as notes/fuzz/fuzz.h does) and exports a
// few entry points that JavaScript calls one at a time:
//
//   web_load(path)                   a checkpoint (JavaScript writes its bytes to a file first)
//   web_start(n, label, ...)         x_T ~ N(0, I) for n images, and a sampler (DDPM, DDIM, SDE)
//   web_step()                       one network evaluation and one sampler step: predict_eps,
//                                    sample_update (the body of sample_loop)
//   web_x(), web_x0_hat(), web_time(i)   what the page draws: x_t, eq. (2)'s x0_hat, and t
//   web_forward_*()                  the forward process x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps
//   web_bench(B, reps)               images/s of the denoiser's forward pass
//
// Emscripten builds it into diffusion.js + diffusion.wasm (`make web`); cc builds the same file
// with main() below into web-native, the native reference that the browser test compares with.
//
// Errors: diffusion.c reports each one with die(): one line "diffusion: <what>: <why>" on stderr,
// then exit(). Here exit() is a longjmp back into the entry point that JavaScript called, which
// returns -1; Emscripten hands the stderr line to the page (printErr), which shows it. A refused
// checkpoint leaves the model that was loaded before in place.
#define _POSIX_C_SOURCE 200809L  // as diffusion.c does; must come before the first system header
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>  // declares the real exit() before we rename it below

static jmp_buf web_env;
__attribute__((noreturn)) static void web_exit(int code) {
    (void)code;
    longjmp(web_env, 1);
}
#define exit web_exit
#define main diffusion_main
#include "../../diffusion.c"
#undef main
#undef exit

#ifdef __EMSCRIPTEN__
#include <emscripten.h>
#define WEB_API EMSCRIPTEN_KEEPALIVE
#else
#define WEB_API
#endif
// Every entry point starts with WEB_GUARD: a die() inside it comes back here and returns -1.
#define WEB_GUARD()                \
    do {                           \
        if (setjmp(web_env)) {     \
            return -1;             \
        }                          \
    } while (0)

enum { WEB_MAX_IMAGES = 64 };

// The loaded model and the sampler in progress.
static char web_path[4096];  // the checkpoint's file (JavaScript's in-memory file system)
static Model *web_m;
static Schedule web_s;
static long web_step_trained;
static SampleOptions web_o;
static int web_B, web_S, web_i, *web_label;
static real *web_xt, *web_x0, *web_work;
static Rng web_rng;

// The checkpoint at path, for sampling up to max_batch images at once (twice n when guided). Only
// once it has loaded does it replace the model before it.
static int web_load_batch(const char *path, int max_batch) {
    WEB_GUARD();
    CkptInfo ck;
    Model *m = checkpoint_load(path, max_batch, &ck);
    memcpy(m->params, m->ema, m->n_params * sizeof(real));  // sample with the EMA weights
    if (web_m) {
        model_free(web_m);
        schedule_free(&web_s);
    }
    web_m = m;
    web_s = schedule_make(ck.schedule, ck.T);
    web_step_trained = ck.step;
    web_S = web_i = 0;  // a sampler in progress belonged to the model before
    if (path != web_path) snprintf(web_path, sizeof web_path, "%s", path);
    return 0;
}
WEB_API int web_load(const char *path) { return web_load_batch(path, 2); }

// What the page needs to know about the model: k = 0 T, 1 schedule (0 linear, 1 cosine, 2 sde),
// 2 channels, 3 height, 4 width, 5 class-conditional, 6 classes, 7 training steps, 8 parameters.
WEB_API double web_info(int k) {
    if (!web_m) return -1;
    const Config *c = &web_m->cfg;
    double v[] = {web_s.T, web_s.kind, c->img_c, c->img_h, c->img_w, c->cond, c->n_classes,
                  (double)web_step_trained, (double)web_m->n_params};
    return k >= 0 && k < (int)(sizeof v / sizeof v[0]) ? v[k] : -1;
}
// Class k's name: Fashion-MNIST's, for a model of 10 classes (and for the forward tab's images).
WEB_API const char *web_class_name(int k) {
    if (!web_m) return k >= 0 && k < 10 ? fashion_class_names[k] : "";
    return web_m->cfg.cond && k >= 0 && k < web_m->cfg.n_classes ? web_m->class_names[k] : "";
}

// Starts a sampler on n images, exactly as `./diffusion sample` starts sample_loop: the same
// option rules (sample_options), the same seed, x_T drawn first. label: a class, -1 every class
// in turn (image b has class b mod classes), -2 none (the "no label" row: the model's
// unconditional half). steps 0: the sampler's default. Returns S, the number of steps.
WEB_API int web_start(int n, int label, int guided, double w, const char *sampler, int steps,
                      double eta, int clip, double seed) {
    WEB_GUARD();
    if (!web_m) die("sample", "no model loaded");
    if (n < 1 || n > WEB_MAX_IMAGES) die("--n", "%d is not in 1..%d", n, WEB_MAX_IMAGES);
    const Config *c = &web_m->cfg;
    if (label >= c->n_classes || label < -2)
        die("--label", "%d is not a class of this model (0..%d)", label, c->n_classes - 1);
    char number[16];  // sample_options takes --label as text (it only asks whether there is one)
    snprintf(number, sizeof number, "%d", label);
    Options o = {.sampler = sampler, .eta = eta, .clip_x0 = clip, .guided = guided && label != -2,
                 .guidance = w, .steps = steps, .steps_given = steps > 0,
                 .label = label >= 0 ? number : NULL};
    SampleOptions so = sample_options(&o, c, web_s.kind, web_s.T);  // the command's checks
    int need = so.guided ? 2 * n : n;
    if (web_m->max_batch < need && web_load_batch(web_path, need) != 0) return -1;
    WEB_GUARD();  // web_load_batch set its own return point
    c = &web_m->cfg;  // the model may be a new one
    free_all(4, web_xt, web_x0, web_work, web_label);
    web_xt = web_x0 = web_work = NULL;  // nothing to step until the new sampler is complete
    web_label = NULL;
    web_S = web_i = 0;
    size_t img = (size_t)c->img_c * c->img_h * c->img_w, count = (size_t)n * img;
    web_xt = xmalloc(count * sizeof(real));
    web_x0 = xcalloc(count, sizeof(real));
    web_work = xmalloc(4 * count * sizeof(real));
    web_label = xmalloc((size_t)n * sizeof(int));
    for (int b = 0; b < n; b++) {
        int every = b % c->n_classes;
        web_label[b] = !c->cond ? 0 : label == -2 ? c->n_classes : label == -1 ? every : label;
    }
    web_o = so;
    web_B = n;
    web_S = so.kind == SAMPLER_DDPM ? web_s.T : so.steps;
    web_i = 0;
    web_rng = (Rng){(uint64_t)seed};
    rng_normal_fill(&web_rng, web_xt, count);  // x_T ~ N(0, I)
    return web_S;
}

// One step of the sampler: evaluation i of S, as sample_loop's body does it. Afterwards web_x()
// holds the next x_t and web_x0_hat() eq. (2) computed from the x_t before the step. Returns the
// steps done.
WEB_API int web_step(void) {
    WEB_GUARD();
    if (!web_m || web_i >= web_S) return web_i;
    size_t n = (size_t)web_B * web_m->cfg.img_c * web_m->cfg.img_h * web_m->cfg.img_w;
    real *eps = web_work, *z = web_work + n, *x2 = web_work + 2 * n;
    double t = sample_time(&web_o, &web_s, web_i, web_S);
    predict_eps(eps, web_m, web_xt, x2, t, web_label, web_B, &web_o);
    sample_update(web_xt, web_x0, eps, &web_s, &web_o, web_i, web_S, n, z, &web_rng);
    return ++web_i;
}
// sqrt(alpha_bar) at a sampler's time t (fractional for the SDE sampler: schedule_at).
WEB_API double web_sqrt_alpha_bar(double t) {
    double beta, one_minus_alpha_bar;
    if (!web_m || t <= 0) return 1;
    schedule_at(&web_s, t / web_s.T, &beta, &one_minus_alpha_bar);
    return sqrt(1 - one_minus_alpha_bar);
}
WEB_API real *web_x(void) { return web_xt; }
WEB_API real *web_x0_hat(void) { return web_x0; }
WEB_API int web_label_of(int b) { return web_label && b >= 0 && b < web_B ? web_label[b] : -1; }
// The time at which evaluation i of S asks the denoiser (i = S: 0, the finished sample).
WEB_API double web_time(int i) {
    return i >= web_S ? 0 : sample_time(&web_o, &web_s, i, web_S);
}

// ---- The forward process (no model needed) --------------------------------------------------
static Schedule web_fs;
static Dataset web_data;                  // the test images shipped with the page
static real *web_f0, *web_feps, *web_fxt;  // x_0, eps, x_t of the image shown
static int web_fc;                        // its channels

// The schedule of the forward tab: kind 0 linear, 1 cosine, 2 sde, with T steps.
WEB_API int web_forward_schedule(int kind, int T) {
    WEB_GUARD();
    if (kind < 0 || kind > 2 || T < 1 || T > 100000) die("--schedule", "bad schedule or T");
    if (web_fs.beta) schedule_free(&web_fs);
    web_fs = schedule_make((ScheduleKind)kind, T);
    return 0;
}
// An idx file of images (and its labels beside it), as `--data FILE` reads it. Returns how many.
WEB_API int web_forward_data(const char *path) {
    WEB_GUARD();
    DataRequest r = {.channels = 1, .size = 28, .max_mb = 1024, .pixels = 1};
    Dataset d = load_dataset(path, &r);
    dataset_free(&web_data);
    web_data = d;
    return d.n;
}
WEB_API int web_forward_data_label(int i) {
    return web_data.labels && i >= 0 && i < web_data.n ? web_data.labels[i] : -1;
}
// x_0 := test image i (from = -1), or the PNG/JPEG at path, as `./diffusion forward IMAGE` reads
// it (28x28, in colour if it has colour). Then one eps ~ N(0, I) from seed: the same noise for
// every t, as in `./diffusion forward`. Returns x_0's channels.
static void web_forward_set(const float *px, int c, double seed) {
    size_t n = (size_t)c * 28 * 28;
    free_all(3, web_f0, web_feps, web_fxt);
    web_f0 = xmalloc(n * sizeof(real));
    web_feps = xmalloc(n * sizeof(real));
    web_fxt = xmalloc(n * sizeof(real));
    for (size_t k = 0; k < n; k++) web_f0[k] = px[k];
    Rng rng = {(uint64_t)seed};
    rng_normal_fill(&rng, web_feps, n);
    web_fc = c;
}
WEB_API int web_forward_image(int index, const char *path, double seed) {
    WEB_GUARD();
    if (index >= 0) {
        if (index >= web_data.n) die("--index", "%d is out of range 0..%d", index, web_data.n - 1);
        web_forward_set(web_data.pixels + (size_t)index * 28 * 28, 1, seed);
        return 1;
    }
    DataRequest r = {.channels = 0, .size = 28, .max_mb = 1024, .pixels = 1};  // 0: colour if any
    Dataset d = load_images(path, &r);
    web_forward_set(d.pixels, d.c, seed);
    dataset_free(&d);
    return web_fc;
}
// x_t at t (forward_one_shot). Returns sqrt(alpha_bar_t); web_forward_noise_scale gives
// sqrt(1 - alpha_bar_t).
WEB_API double web_forward(int t) {
    WEB_GUARD();
    if (!web_f0 || !web_fs.beta) die("forward", "no image or no schedule");
    t = t < 0 ? 0 : t > web_fs.T ? web_fs.T : t;
    forward_one_shot(web_fxt, web_f0, web_feps, &web_fs, t, (size_t)web_fc * 28 * 28);
    return sqrt(web_fs.alpha_bar[t]);
}
WEB_API double web_forward_noise_scale(int t) {
    t = t < 0 ? 0 : t > web_fs.T ? web_fs.T : t;
    return web_fs.beta ? sqrt(web_fs.one_minus_alpha_bar[t]) : -1;
}
WEB_API real *web_forward_x0(void) { return web_f0; }
WEB_API real *web_forward_eps(void) { return web_feps; }
WEB_API real *web_forward_xt(void) { return web_fxt; }

// ---- Speed ----------------------------------------------------------------------------------
// images/s of the loaded model's forward pass (unet_forward) on B images at random t and labels:
// the median of reps timings after one warm-up, as notes/bench.c measures it.
WEB_API double web_bench(int B, int reps) {
    WEB_GUARD();
    if (!web_m) die("bench", "no model loaded");
    if (B < 1 || B > WEB_MAX_IMAGES || reps < 1 || reps > 32) die("bench", "bad batch or reps");
    if (web_m->max_batch < B && web_load_batch(web_path, B) != 0) return -1;
    WEB_GUARD();  // web_load_batch set its own return point
    const Config *c = &web_m->cfg;
    Rng rng = {1};
    size_t n = (size_t)B * c->img_c * c->img_h * c->img_w;
    real *x = random_array(n, &rng), t[WEB_MAX_IMAGES];
    int label[WEB_MAX_IMAGES];
    for (int b = 0; b < B; b++) {
        t[b] = (real)(1 + rng_int(&rng, web_s.T));
        label[b] = rng_int(&rng, c->n_classes + 1);
    }
    double times[32];
    for (int r = -1; r < reps; r++) {
        double t0 = now_seconds();
        unet_forward(web_m, x, t, label, B);
        if (r >= 0) times[r] = now_seconds() - t0;
    }
    free(x);
    for (int i = 1; i < reps; i++)  // insertion sort of the few timings, for their median
        for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
            double swap = times[j];
            times[j] = times[j - 1];
            times[j - 1] = swap;
        }
    return B / (reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]));
}

#ifndef __EMSCRIPTEN__
// web-native: the same entry points, natively, for the browser test and the speed comparison.
//   web-native sample CKPT N LABEL W SAMPLER STEPS SEED CLIP   the n samples, one number a line,
//       after checking that stepping gives bit for bit what sample_loop (./diffusion sample) gives
//   web-native bench CKPT B REPS                          images/s of the forward pass
int main(int argc, char **argv) {
    if (argc == 10 && !strcmp(argv[1], "sample")) {
        int n = atoi(argv[3]), label = atoi(argv[4]), steps = atoi(argv[7]), clip = atoi(argv[9]);
        double w = atof(argv[5]), seed = atof(argv[8]);
        if (web_load(argv[2]) != 0) return 1;
        int S = web_start(n, label, label != -2, w, argv[6], steps, 0, clip, seed);
        if (S < 0) return 1;
        while (web_step() < S) continue;
        // the same through sample_loop, as cmd_sample runs it
        size_t count = (size_t)n * web_m->cfg.img_c * web_m->cfg.img_h * web_m->cfg.img_w;
        real *x = xmalloc(count * sizeof(real));
        Rng rng = {(uint64_t)seed};
        sample_loop(x, web_m, &web_s, web_label, n, &web_o, &rng, 0);
        if (memcmp(x, web_xt, count * sizeof(real))) {
            fprintf(stderr, "web-native: stepping differs from sample_loop\n");
            return 1;
        }
        for (size_t k = 0; k < count; k++) printf("%.9g\n", web_xt[k]);
        free(x);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "bench")) {
        if (web_load(argv[2]) != 0) return 1;
        double ips = web_bench(atoi(argv[3]), atoi(argv[4]));
        if (ips < 0) return 1;
        printf("%.1f\n", ips);
        return 0;
    }
    fprintf(stderr, "usage: web-native sample CKPT N LABEL W SAMPLER STEPS SEED CLIP | "
                    "bench CKPT B REPS\n");
    return 2;
}
#endif

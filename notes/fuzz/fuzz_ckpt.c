// fuzz_ckpt.c — the checkpoint loader: checkpoint_load(path, max_batch, ...) (header checks, config_check, the
// size and CRC-32 checks, model_create), then one use of the model it returns.
//
// Each input is tried twice:
//   1. as it is: a random file must be refused with a one-line message, never crash;
//   2. "repaired": the input's first 96 bytes become the header (with the right magic, version, real size,
//      parameter count, and a batch size in range), the rest is zero-padded or cut to the size that header's
//      config implies, and the CRC-32 is recomputed. A fuzzer cannot guess a CRC, so only this way does it reach
//      what lies behind the CRC check: every network config that config_check lets through, with arbitrary (NaN,
//      Inf, huge) weights.
// A checkpoint that loads (at max_batch 1, as export does) is then used once, as train and sample would use it:
// one forward and backward pass at batch 1, one AdamW step, and the prediction written as a PNG (to /dev/null);
// skipped when the config is too big to run in a fraction of a second under the sanitizers.
#include "fuzz.h"

enum { REPAIR_MAX_BYTES = 4 << 20 };

static void use_model(Model *m, const uint8_t *file, size_t size, int has_opt) {
    const Config *c = &m->cfg;
    size_t P = m->n_params;
    CkptHeader h;
    memcpy(&h, file, sizeof h);
    FUZZ_ASSERT(P == count_params(c) && size == checkpoint_bytes(&h, c, P) && h.has_optimizer == has_opt, "sizes");
    for (int k = 0; c->cond && k < c->n_classes; k++) FUZZ_ASSERT(memchr(m->class_names[k], 0, sizeof(ClassName)), "name %d", k);
    FUZZ_ASSERT(!memcmp(m->params, file + sizeof(CkptHeader) + (c->text ? 16 : 0), P * sizeof(real)), "params differ from the file");
    double H = c->img_h, W = c->img_w, wide = c->ch1 + 2.0 * c->ch2;
    if (H * W * wide * wide * 9 + (H * W / 16) * (H * W / 16) * c->ch2 + (double)P > 3e7) return;  // too slow to fuzz
    size_t n = (size_t)c->img_c * c->img_h * c->img_w;
    real *x = xmalloc(n * sizeof(real)), *eps = xmalloc(n * sizeof(real));
    Rng rng = {42};
    rng_normal_fill(&rng, x, n), rng_normal_fill(&rng, eps, n);
    real t = 500;
    int label = c->n_classes;  // "no label": valid for conditional and unconditional models
    model_loss_and_grad(m, x, &t, &label, eps, NULL, 1);
    adamw_step(m, &DEFAULT_HYPER, 1);
    write_image_grid("/dev/null", m->a.pred, 1, 1, c->img_c, c->img_h, c->img_w, 1);
    free(x), free(eps);
}

static void try_load(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(0, data, size);
    if (setjmp(fuzz_env) == 0) {
        CkptInfo ck;
        Model *m = checkpoint_load(path, 1, &ck);
        ScheduleKind sched = ck.schedule;
        int T = ck.T, has_opt = ck.has_optimizer, batch = ck.batch;
        long step = (long)ck.step;
        FUZZ_ASSERT(sched >= 0 && sched <= 2 && T >= 1 && T <= 100000 && step >= 0 && (has_opt == 0 || has_opt == 1) &&
                    batch >= 1 && batch <= 4096, "sched %d T %d step %ld has_opt %d batch %d", (int)sched, T, step, has_opt, batch);
        Schedule s = schedule_make(sched, T);
        for (int k = 0; k <= T; k++) FUZZ_ASSERT(s.alpha_bar[k] >= 0 && s.alpha_bar[k] <= 1, "alpha_bar[%d] = %g", k, s.alpha_bar[k]);
        schedule_free(&s);
        use_model(m, data, size, has_opt);
        model_free(m);
    } else {
        FUZZ_ASSERT(fuzz_exit_code == 1, "refused with exit code %d (runtime errors must exit 1)", fuzz_exit_code);
    }
}

static void fuzz_ckpt(const uint8_t *data, size_t size) {
    try_load(data, size);
    CkptHeader h;
    if (size < sizeof h) return;
    memcpy(&h, data, sizeof h);
    memcpy(h.magic, "DIFFUSNC", 8);
    h.version = h.version == 1 ? 1 : CKPT_VERSION, h.real_size = (int32_t)sizeof(real);  // 1: no class names
    if (h.batch < 1 || h.batch > 4096) h.batch = 1;
    Config c = config_from_ints(h.config);
    if (config_check(&c) || (h.has_optimizer != 0 && h.has_optimizer != 1)) return;
    size_t P = count_params(&c), want = checkpoint_bytes(&h, &c, P);
    if (want > REPAIR_MAX_BYTES) return;
    h.n_params = P;
    uint8_t *buf = calloc(1, want);
    if (!buf) abort();
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, data + sizeof h, size - sizeof h < want - 4 - sizeof h ? size - sizeof h : want - 4 - sizeof h);
    uint32_t crc = crc32_update(0, buf, want - 4);
    memcpy(buf + want - 4, &crc, 4);
    try_load(buf, want);
    free(buf);
}
FUZZ_TARGET(fuzz_ckpt)

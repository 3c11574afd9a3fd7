// fuzz_ae.c — notes/latent.c's autoencoder checkpoint loader: ae_load(path, 1, 1, ...) (magic,
// CRC-32, version, size of real, ae_config_check, the header's step, batch, scale and KL weight,
// parameter count, length, ae_create), then one use of the autoencoder it returns.
//
// Each input is tried twice, as fuzz_ckpt.c does for checkpoint_load:
//   1. as it is: a random file must be refused with a one-line message, never crash;
//   2. "repaired": when the header's `pad` is even, the first 96 bytes become the header (magic,
//      version, size of real, 4 latent channels, the parameter count, a batch, step, scale, shift
//      and KL weight in range), the rest is zero-padded or cut to the length that config implies,
//      and the CRC-32 is recomputed: every config ae_config_check lets through is reached, with
//      arbitrary (NaN, Inf, huge) weights. When `pad` is odd, only the magic and the CRC-32 are
//      made right, so that every check behind the CRC sees the input's own fields and length.
// An accepted checkpoint is then used as `latent recon` uses it (EMA weights: one image encoded to
// mu and decoded; with every weight finite and |w| <= 1, mu and x_hat must be finite) and as
// `latent ae --resume` does (its weights: one loss and gradient, one AdamW step); skipped when
// the config is too big to run in a fraction of a second under the sanitizers.
#include "fuzz.h"
#define LATENT_HAVE_DIFFUSION  // fuzz.h has included diffusion.c, its main renamed
#define main latent_main
#include "../latent.c"
#undef main

enum { AE_REPAIR_MAX_BYTES = 4 << 20 };

static int ae_all_within(const real *w, size_t n, double bound) {
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)w[i]) <= bound)) return 0;
    return 1;
}

static void ae_use(AE *ae, const uint8_t *file, size_t size, double kl) {
    const AEConfig *c = &ae->cfg;
    Model *m = &ae->opt;
    size_t P = m->n_params, bytes = P * sizeof(real);
    FUZZ_ASSERT(P == ae_count_params(c) && size == sizeof(AECkptHeader) + 4 * bytes + 4, "sizes");
    uint32_t crc;
    memcpy(&crc, file + size - 4, 4);
    FUZZ_ASSERT(crc == crc32_update(0, file, size - 4), "accepted with a wrong CRC-32");
    const real *from_file[4] = {m->params, m->ema, m->adam_m, m->adam_v};
    for (int k = 0; k < 4; k++)
        FUZZ_ASSERT(!memcmp(from_file[k], file + sizeof(AECkptHeader) + k * bytes, bytes),
                    "array %d (params, ema, m, v) differs from the file", k);
    double S = c->size, wide = c->ch1 > c->ch2 ? c->ch1 : c->ch2;
    if (S * S * wide * wide * 9 * 8 > 2e7) return;  // ~8 full-size convolutions: too slow to fuzz
    size_t img = (size_t)c->img_c * c->size * c->size;
    size_t nz = (size_t)ZC * (c->size / 4) * (c->size / 4);
    float *x = xmalloc(img * sizeof(float)), *zf = xmalloc(nz * sizeof(float));
    real *xr = xmalloc(img * sizeof(real)), *z = xmalloc(nz * sizeof(real));
    real *keep = xmalloc(bytes);
    for (size_t i = 0; i < img; i++) x[i] = (float)((int)(i * 37 % 201) - 100) / 100;  // in [-1, 1]
    // as recon: the EMA weights, x -> mu -> x_hat
    memcpy(keep, m->params, bytes);
    memcpy(m->params, m->ema, bytes);
    ae_encode_all(ae, zf, x, 1);
    for (size_t i = 0; i < nz; i++) z[i] = zf[i];
    ae_decode_all(ae, xr, z, 1);
    // With |w| <= 1 nothing overflows: GroupNorm (double sums) resets the scale, and the longest
    // chain of convolutions between two of them grows at most 4608x each (9 x 512 inputs): ~1e19.
    if (ae_all_within(m->params, P, 1)) {
        for (size_t i = 0; i < nz; i++) FUZZ_ASSERT(isfinite(z[i]), "mu[%zu] = %g", i, z[i]);
        for (size_t i = 0; i < img; i++) FUZZ_ASSERT(isfinite(xr[i]), "x_hat[%zu] = %g", i, xr[i]);
    }
    write_image_grid("/dev/null", xr, 1, 1, c->img_c, c->size, c->size, 1);
    // as ae --resume: the weights themselves, one step
    memcpy(m->params, keep, bytes);
    real *xt = xmalloc(img * sizeof(real));
    for (size_t i = 0; i < img; i++) xt[i] = x[i];
    Rng rng = {42};
    double rec, klp;
    ae_loss_and_grad(ae, xt, xt, 1, kl, &rng, &rec, &klp);
    adamw_step(m, &DEFAULT_HYPER, ae->step + 1);
    free_all(6, x, zf, xr, z, keep, xt);
}

static void ae_try_load(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(0, data, size);
    if (setjmp(fuzz_env) == 0) {
        Rng rng = {0};
        int batch = 0;
        double kl = -1;
        AE *ae = ae_load(path, 1, 1, &rng, &batch, &kl);
        AECkptHeader h;
        memcpy(&h, data, sizeof h);
        FUZZ_ASSERT(ae->step >= 0 && batch >= 1 && batch <= MAX_BATCH && ae->scale >= 0 &&
                        ae->scale < 1e6 && isfinite(ae->shift) && kl >= 0 && kl <= 1e6,
                    "step %lld batch %d scale %g shift %g kl %g", (long long)ae->step, batch,
                    ae->scale, ae->shift, kl);
        FUZZ_ASSERT(ae->step == h.step && batch == h.batch && rng.state == h.rng_state &&
                        ae->scale == h.scale && ae->shift == h.shift && kl == h.kl,
                    "fields differ from the header's");
        FUZZ_ASSERT(ae->max_batch == 1 && ae->dacts, "max_batch %d", ae->max_batch);
        ae_use(ae, data, size, kl);
        ae_free(ae);
    } else {
        FUZZ_ASSERT(fuzz_exit_code == 1, "refused with exit code %d (runtime errors must exit 1)",
                    fuzz_exit_code);
    }
}

static void fuzz_ae(const uint8_t *data, size_t size) {
    ae_try_load(data, size);
    AECkptHeader h;
    if (size < sizeof h) return;
    memcpy(&h, data, sizeof h);
    if (h.pad % 2) {  // the magic and the CRC only
        uint8_t *buf = malloc(size);
        if (!buf) abort();
        memcpy(buf, data, size);
        memcpy(buf, "LATNTAE1", 8);
        uint32_t crc = crc32_update(0, buf, size - 4);
        memcpy(buf + size - 4, &crc, 4);
        ae_try_load(buf, size);
        free(buf);
        return;
    }
    memcpy(h.magic, "LATNTAE1", 8);
    h.version = AE_CKPT_VERSION, h.real_size = (int32_t)sizeof(real), h.config[5] = ZC;
    if (h.batch < 1 || h.batch > MAX_BATCH) h.batch = 1;
    if (h.step < 0) h.step = -(h.step + 1);
    if (!(h.scale >= 0 && h.scale < 1e6)) h.scale = 1;
    if (!isfinite(h.shift)) h.shift = 0;
    if (!(h.kl >= 0 && h.kl <= 1e6)) h.kl = 1e-4;
    AEConfig c = {h.config[0], h.config[1], h.config[2], h.config[3], h.config[4]};
    if (ae_config_check(&c)) return;
    size_t P = ae_count_params(&c), want = sizeof h + 4 * P * sizeof(real) + 4;
    if (want > AE_REPAIR_MAX_BYTES) return;
    h.n_params = P;
    uint8_t *buf = calloc(1, want);
    if (!buf) abort();
    memcpy(buf, &h, sizeof h);
    size_t body = size - sizeof h < want - 4 - sizeof h ? size - sizeof h : want - 4 - sizeof h;
    memcpy(buf + sizeof h, data + sizeof h, body);
    uint32_t crc = crc32_update(0, buf, want - 4);
    memcpy(buf + want - 4, &crc, 4);
    ae_try_load(buf, want);
    free(buf);
}
FUZZ_TARGET(fuzz_ae)

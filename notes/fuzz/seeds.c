// seeds.c — writes the seed corpus of the five fuzzers (corpus/<target>/seed-*), with diffusion.c's
// own writers (checkpoint_save, stb_image_write) and latent.c's ae_save, so that every seed is a
// file the programs themselves could have made:
//
//     make seeds          (cc seeds.c -lm, run in notes/fuzz)
//
// The seeds are small on purpose (a fuzzer mutates small files faster): 4x4 and 28x28 idx images, 2x2 and 3x3
// pictures, and checkpoints of a toy network (4x4 images, 1 and 2 channels: a few hundred parameters) instead
// of the real 28x28 one (200 KB and up).
#define FUZZ_REPLAY
#include "fuzz.h"
#define LATENT_HAVE_DIFFUSION  // notes/latent.c's ae_save writes the autoencoder seeds
#define main latent_main
#include "../latent.c"
#undef main

static void put(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) { fprintf(stderr, "seeds: cannot write %s\n", path); abort(); }
}
static void put_be32(unsigned char *p, uint32_t v) { p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = (unsigned char)v; }
static void put_le32(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v, p[1] = v >> 8, p[2] = v >> 16, p[3] = v >> 24; }

// A gzip member (RFC 1952) around stb_image_write's zlib stream (whose 2-byte header and Adler-32 we drop).
// extra_flags: 8 adds a file name, 4|8|16|2 every optional header field that read_maybe_gzip must skip.
static size_t gzip(unsigned char *out, const unsigned char *in, size_t n, int extra_flags) {
    int zlen;
    unsigned char *z = stbi_zlib_compress((unsigned char *)in, (int)n, &zlen, 8);
    size_t pos = 0;
    unsigned char head[10] = {0x1f, 0x8b, 8, (unsigned char)extra_flags, 0, 0, 0, 0, 0, 3};
    memcpy(out, head, 10), pos = 10;
    if (extra_flags & 4) { out[pos++] = 3, out[pos++] = 0; memcpy(out + pos, "xyz", 3), pos += 3; }
    if (extra_flags & 8) { memcpy(out + pos, "seed.idx", 9), pos += 9; }
    if (extra_flags & 16) { memcpy(out + pos, "a comment", 10), pos += 10; }
    if (extra_flags & 2) { out[pos++] = 0x12, out[pos++] = 0x34; }
    memcpy(out + pos, z + 2, (size_t)zlen - 6), pos += (size_t)zlen - 6;
    put_le32(out + pos, crc32_update(0, in, n)), put_le32(out + pos + 4, (uint32_t)n), pos += 8;
    STBIW_FREE(z);
    return pos;
}

// An idx image file of n images h x w (a diagonal-stripe pattern), and its labels file.
static size_t idx_images_file(unsigned char *out, int n, int h, int w) {
    put_be32(out, 2051), put_be32(out + 4, (uint32_t)n), put_be32(out + 8, (uint32_t)h), put_be32(out + 12, (uint32_t)w);
    for (int i = 0; i < n * h * w; i++) out[16 + i] = (unsigned char)(((i % w) + (i / w) * 3 + i / (h * w) * 40) * 7);
    return 16 + (size_t)n * h * w;
}
static size_t idx_labels_file(unsigned char *out, int n) {
    put_be32(out, 2049), put_be32(out + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) out[8 + i] = (unsigned char)(i % 10);
    return 8 + (size_t)n;
}
// images, then "#labels#", then labels (see fuzz_idx.c); either part gzipped or not, with gzip header flags
static void idx_seed(const char *name, int n, int h, int w, int labels, int gz, int flags) {
    static unsigned char a[1 << 16], b[1 << 16], out[1 << 17];
    size_t na = idx_images_file(a, n, h, w), pos = gz ? gzip(out, a, na, flags) : (memcpy(out, a, na), na);
    if (labels) {
        memcpy(out + pos, "#labels#", 8), pos += 8;
        size_t nb = idx_labels_file(b, n);
        pos += gz ? gzip(out + pos, b, nb, flags) : (memcpy(out + pos, b, nb), nb);
    }
    char path[256];
    snprintf(path, sizeof path, "corpus/idx/%s", name);
    put(path, out, pos);
}

static void image_seeds(void) {
    unsigned char px[3 * 3 * 3];
    for (int i = 0; i < 27; i++) px[i] = (unsigned char)(i * 9);
    stbi_write_png("corpus/image/seed-2x2-gray.png", 2, 2, 1, px, 2);
    stbi_write_png("corpus/image/seed-2x2-gray-alpha.png", 2, 2, 2, px, 4);
    stbi_write_png("corpus/image/seed-3x3-rgb.png", 3, 3, 3, px, 9);
    stbi_write_png("corpus/image/seed-2x2-rgba.png", 2, 2, 4, px, 8);
    stbi_write_jpg("corpus/image/seed-3x3-rgb.jpg", 3, 3, 3, px, 90);
    stbi_write_jpg("corpus/image/seed-2x2-gray.jpg", 2, 2, 1, px, 50);
    // stb_image reads more formats than the PNG/JPEG we promise; a file's name does not choose its decoder, so
    // these decoders are reachable too (`./diffusion forward some.png` that is really a BMP), and are seeded.
    stbi_write_bmp("corpus/image/seed-2x2-rgb.bmp", 2, 2, 3, px);
    stbi_write_tga("corpus/image/seed-2x2-rgb.tga", 2, 2, 3, px);
    static const unsigned char pgm[] = "P5\n2 2\n255\n\x10\x80\xc0\xff";
    put("corpus/image/seed-2x2.pgm", pgm, sizeof pgm - 1);
    static const unsigned char gif[] = {  // the classic 1x1 GIF89a
        'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21, 0xf9, 4, 1, 0, 0, 0, 0,
        0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1, 0, 0x3b};
    put("corpus/image/seed-1x1.gif", gif, sizeof gif);
    // A decompression bomb's header: 16000 x 16000 RGBA, 977 MB decoded (test.sh builds the whole 1 MB file);
    // refused on its header alone, before any pixel is decoded (here no pixel data follows it).
    unsigned char bomb[45] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    put_be32(bomb + 16, 16000), put_be32(bomb + 20, 16000), bomb[24] = 8, bomb[25] = 6;  // 8 bits, RGBA
    put_be32(bomb + 29, crc32_update(0, bomb + 12, 17));
    memcpy(bomb + 33, "\0\0\0\0IEND\xae\x42\x60\x82", 12), put("corpus/image/seed-bomb-16000x16000-rgba.png", bomb, 45);
}

// A checkpoint of a toy network, written by checkpoint_save exactly as train and export write theirs. (The
// committed seed-tiny-*.ckpt files before seed-tiny-cond-v2-names.ckpt are of format version 1: keep them.)
static void ckpt_seed(const char *name, Config c, ScheduleKind sched, int T, int slim) {
    Model *m = model_create(&c, 1);
    for (int k = 0; c.cond && k < c.n_classes; k++) snprintf(m->class_names[k], sizeof(ClassName), "class %c", 'a' + k);
    Rng rng = {7};
    params_init(m, &rng, 1);
    memcpy(m->ema, m->params, m->n_params * sizeof(real));
    char path[256];
    snprintf(path, sizeof path, "corpus/ckpt/%s", name);
    checkpoint_save(path, m, sched, T, 3, &rng, 2, slim);  // step 3, trained at batch 2
    model_free(m);
}

// An autoencoder checkpoint of a toy config (8x8 or 12x12 images, widths 1 or 2: 5 to 15 KB),
// written by latent.c's ae_save as `latent ae` writes its own; scale 0: saved before measuring.
static void ae_seed(const char *name, AEConfig c, double scale) {
    AE *ae = ae_create(&c, 1, 0);
    Rng rng = {11};
    params_init(&ae->opt, &rng, 1);  // all random: no block starts as the identity
    Model *m = &ae->opt;
    for (size_t i = 0; i < m->n_params; i++) {
        m->ema[i] = m->params[i] * (real)0.9;
        m->adam_m[i] = m->params[i] * (real)1e-3;
        m->adam_v[i] = m->params[i] * m->params[i] * (real)1e-6;
    }
    ae->step = 3, ae->scale = scale, ae->shift = scale ? -0.1 : 0;
    char path[256];
    snprintf(path, sizeof path, "corpus/ae/%s", name);
    ae_save(path, ae, &rng, 2, 1e-4);  // trained at batch 2, KL weight 1e-4
    ae_free(ae);
}

static void args_seed(const char *name, const char *lines) {
    char path[256];
    snprintf(path, sizeof path, "corpus/args/%s", name);
    put(path, lines, strlen(lines));
}

int main(void) {
    idx_seed("seed-4x4-raw", 2, 4, 4, 1, 0, 0);
    idx_seed("seed-4x4-raw-nolabels", 3, 4, 4, 0, 0, 0);
    idx_seed("seed-4x4-gz", 2, 4, 4, 1, 1, 0);
    idx_seed("seed-4x4-gz-allflags", 2, 4, 4, 1, 1, 2 | 4 | 8 | 16);
    idx_seed("seed-28x28-gz-name", 1, 28, 28, 1, 1, 8);
    image_seeds();
    Config tiny = {1, 4, 4, 1, 1, 2, 2, 1, 2, 1, 0, 0, 0};    // 4x4 gray, widths 1/1, 2 classes: conditional
    Config tiny2 = {3, 8, 4, 2, 2, 2, 1, 2, 1, 0, 0, 0, 0};   // RGB, 8x4 (not square), widths 2/2 in 2 groups, unconditional
    ckpt_seed("seed-tiny-cond.ckpt", tiny, SCHEDULE_LINEAR, 10, 0);
    ckpt_seed("seed-tiny-cond-slim.ckpt", tiny, SCHEDULE_COSINE, 1000, 1);
    ckpt_seed("seed-tiny-rgb-8x4-uncond-sde-slim.ckpt", tiny2, SCHEDULE_SDE, 50, 1);
    ckpt_seed("seed-tiny-cond-v2-names.ckpt", tiny, SCHEDULE_LINEAR, 10, 0);
    // issue 24: the configs every buffer must be sized for (img_c > ch1, ch1 > ch2, widths of 1,
    // 28x28 where the weight gradient takes the padded path); the first overflowed workspace_create's
    Config rgb_w1 = {3, 4, 4, 1, 1, 2, 1, 1, 1, 0, 0, 0, 0}, rgb8_w1 = {3, 8, 8, 1, 1, 2, 1, 1, 1, 0, 0, 0, 0};
    Config rgb8_w12 = {3, 8, 8, 1, 2, 2, 1, 1, 1, 0, 0, 0, 0}, gray8_w42 = {1, 8, 8, 4, 2, 2, 2, 2, 2, 1, 0, 0, 0};
    Config rgb4_w21 = {3, 4, 4, 2, 1, 2, 1, 1, 1, 0, 0, 0, 0}, rgb28_w1 = {3, 28, 28, 1, 1, 2, 1, 1, 1, 0, 0, 0, 0};
    ckpt_seed("crash-rgb-widths-1-workspace-overflow.ckpt", rgb_w1, SCHEDULE_LINEAR, 10, 0);
    ckpt_seed("corner-rgb-8x8-widths-1.ckpt", rgb8_w1, SCHEDULE_LINEAR, 10, 0);
    ckpt_seed("corner-rgb-8x8-ch1-1-ch2-2.ckpt", rgb8_w12, SCHEDULE_LINEAR, 10, 0);
    ckpt_seed("corner-gray-8x8-ch1-4-ch2-2-cond.ckpt", gray8_w42, SCHEDULE_LINEAR, 10, 0);
    ckpt_seed("corner-rgb-4x4-ch1-2-ch2-1.ckpt", rgb4_w21, SCHEDULE_LINEAR, 10, 0);
    ckpt_seed("corner-rgb-28x28-widths-1.ckpt", rgb28_w1, SCHEDULE_LINEAR, 10, 0);
    AEConfig gray8 = {1, 8, 1, 1, 1}, rgb8 = {3, 8, 1, 2, 1}, gray12 = {1, 12, 2, 2, 2};
    // each overflowed ae_create's scratch, sized for widths that hold fewer than 2 ZC channels
    ae_seed("crash-ae-widths-1-workspace-rows-overflow.ckpt", gray8, 1.03);
    ae_seed("crash-ae-widths-2-workspace-weights-overflow.ckpt", gray12, 2);  // 3x3 latents
    ae_seed("seed-ae-gray-8x8-widths-1-no-scale.ckpt", gray8, 0);
    ae_seed("seed-ae-rgb-8x8-widths-1-2.ckpt", rgb8, 0.5);  // ch1 != ch2: the 1x1 skips
    // pad 1, CRC not updated: refused as it is; fuzz_ae.c's repair then fixes only the CRC
    ae_seed("seed-ae-pad-odd-bad-crc.ckpt", gray8, 1.03);
    FILE *f = fopen("corpus/ae/seed-ae-pad-odd-bad-crc.ckpt", "r+b");
    int32_t pad = 1;
    if (!f || fseek(f, offsetof(AECkptHeader, pad), SEEK_SET) || fwrite(&pad, 4, 1, f) != 1)
        abort();
    fclose(f);
    args_seed("seed-train", "train\n--data\nfashion-mnist\n--steps\n100\n--batch\n4\n--lr\n1e-3\n--seed\n7\n--schedule\ncosine\n"
                            "--T\n500\n--ckpt\nm.ckpt\n--resume\n--uncond\n--log\nl.csv\n--width\n8\n--threads\n2\n--minutes\n0.5");
    args_seed("seed-sample", "sample\n--ckpt\nm.ckpt\n--sampler\nddim\n--steps\n50\n--eta\n0.5\n--guidance\n3\n--label\n2\n"
                             "--n\n16\n--seed\n1\n--out\ns.png\n--trajectory\nt.png\n--clip-x0\n--batch\n8");
    args_seed("seed-forward", "forward\nphoto.png\n--schedule\nsde\n--T\n10\n--index\n3\n--seed\n0\n--out\nstrip.png");
    args_seed("seed-forward-data", "forward\n--data\nfashion-mnist\n--index\n59999\n--out\n/dev/full");
    args_seed("seed-schedule", "schedule\n--schedule\nlinear\n--T\n1000");
    args_seed("seed-export", "export\n--ckpt\nm.ckpt\n--out\nsmall.ckpt");
    args_seed("seed-misc", "check\n--seed\n18446744073709551615");
    args_seed("seed-help", "gradcheck\n--help");
    args_seed("seed-refcheck", "refcheck\n--ref\nx.bin");
    args_seed("seed-info", "info\n--uncond");
    args_seed("seed-own-images", "train\n--data\nmy folder\n--channels\n3\n--size\n32\n--max-data-mb\n100");
    args_seed("seed-label-name", "sample\n--label\nAnkle boot\n--guidance\n2");
    return 0;
}

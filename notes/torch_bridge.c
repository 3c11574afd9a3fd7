// notes/torch_bridge.c — diffusion.c's half of the PyTorch bridge's checks (issue 28)
//
// notes/pytorch_mirror.py reads and writes diffusion.c checkpoints and trains the same network in
// PyTorch. To show that its network and its training step are this file's, it hands a batch to
// this program and compares the answers with its own (`pytorch_mirror.py agree`):
//
//   torch_bridge eps  CKPT BATCH OUT   eps_theta(x_t, t, label) with the EMA weights -> OUT
//   torch_bridge step CKPT BATCH OUT   one training step (loss, gradient, clipping, AdamW, EMA)
//                                      on the batch's x_t, t, label and eps -> checkpoint OUT;
//                                      prints "loss L grad_norm G" (before clipping)
//
// BATCH (little-endian, written by pytorch_mirror.py): the 8 bytes "DCBATCH1", int32 real_size,
// B, img_c, img_h, img_w, then int32 t[B], int32 label[B] (n_classes: no label), real x_t[B*n],
// real eps[B*n] with n = img_c*img_h*img_w. OUT of eps: real eps_theta[B*n], nothing else.
//
//   cc -O2 notes/torch_bridge.c -lm -o /tmp/torch_bridge
//
// It includes diffusion.c, as the companion programs do, so that the numbers come from the very
// functions `train` and `sample` call.
#define main diffusion_main
#include "../diffusion.c"
#undef main

typedef struct {  // 28 bytes, no padding
    char magic[8];
    int32_t real_size, B, c, h, w;
} BatchHeader;

// Reads BATCH, checked against the model's shape, T and classes before anything is used.
static void read_batch(const char *path, int max_b, const Config *c, int T, int *B, int **t,
                       int **label, real **xt, real **eps) {
    size_t len;
    unsigned char *buf = read_file(path, MAX_FILE_BYTES, &len);
    BatchHeader h;
    if (len < sizeof h || memcmp(buf, "DCBATCH1", 8)) die(path, "not a batch file (bad magic)");
    memcpy(&h, buf, sizeof h);
    if (h.real_size != (int32_t)sizeof(real)) die(path, "its numbers are not this build's size");
    if (h.B < 1 || h.B > max_b || h.c != c->img_c || h.h != c->img_h || h.w != c->img_w)
        die(path, "batch of %d %dx%dx%d images does not fit the checkpoint's %dx%dx%d", h.B, h.c,
            h.h, h.w, c->img_c, c->img_h, c->img_w);
    size_t n = (size_t)h.B * h.c * h.h * h.w;
    if (len != sizeof h + 2 * (size_t)h.B * 4 + 2 * n * sizeof(real))
        die(path, "size does not match its header");
    *B = h.B;
    *t = xmalloc((size_t)h.B * sizeof(int));
    *label = xmalloc((size_t)h.B * sizeof(int));
    *xt = xmalloc(n * sizeof(real));
    *eps = xmalloc(n * sizeof(real));
    unsigned char *p = buf + sizeof h;
    memcpy(*t, p, (size_t)h.B * 4);
    memcpy(*label, p + (size_t)h.B * 4, (size_t)h.B * 4);
    memcpy(*xt, p + (size_t)h.B * 8, n * sizeof(real));
    memcpy(*eps, p + (size_t)h.B * 8 + n * sizeof(real), n * sizeof(real));
    for (int b = 0; b < h.B; b++)
        if ((*t)[b] < 1 || (*t)[b] > T || (*label)[b] < 0 || (*label)[b] > c->n_classes)
            die(path, "t or label out of range at row %d", b);
    free(buf);
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[1], "eps") && strcmp(argv[1], "step")))
        die_usage("usage", "torch_bridge eps|step CKPT BATCH OUT");
    const char *mode = argv[1], *ckpt = argv[2], *batch = argv[3], *out = argv[4];
    CkptInfo ck;
    int B, *t, *label;
    real *xt, *eps;
    // max_batch 4096 would allocate activations for 4096 images: load for 256, the most we send
    Model *m = checkpoint_load(ckpt, 256, &ck);
    read_batch(batch, 256, &m->cfg, ck.T, &B, &t, &label, &xt, &eps);
    size_t n = (size_t)B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w;
    real *tr = xmalloc((size_t)B * sizeof(real));
    for (int b = 0; b < B; b++) tr[b] = (real)t[b];  // the network reads t as a number
    if (!strcmp(mode, "eps")) {
        memcpy(m->params, m->ema, m->n_params * sizeof(real));  // as `sample` does
        unet_forward(m, xt, tr, label, B);
        FILE *f = fopen(out, "wb");
        if (!f) die(out, "cannot write: %s", strerror(errno));
        fwrite(m->a.pred, sizeof(real), n, f);
        int err = close_file(f, 0);
        if (err) die(out, "write failed: %s", strerror(err));
    } else {
        if (!ck.has_optimizer) die(ckpt, "has no optimizer state: no training step from it");
        // train_step's last two lines, on the given batch instead of a drawn one
        double loss = model_loss_and_grad(m, xt, tr, label, eps, NULL, B);
        double gnorm = adamw_step(m, &DEFAULT_HYPER, ck.step + 1);
        checkpoint_save(out, m, ck.schedule, ck.T, ck.step + 1, &ck.rng, ck.batch, 0);
        printf("loss %.9g grad_norm %.9g\n", loss, gnorm);
    }
    free_all(5, t, label, xt, eps, tr);
    model_free(m);
    return 0;
}

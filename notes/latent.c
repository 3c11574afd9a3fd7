// notes/latent.c — latent diffusion: the lecture's five steps in an autoencoder's latent space
// (lecture 001's Stable Diffusion row; Rombach et al. 2022, "High-Resolution Image Synthesis with
// Latent Diffusion Models"). A companion of diffusion.c: it includes the file whole, without its
// main, and reuses its layers, GEMM, U-Net, training loop, samplers, loaders and checkpoints.
//
//   make latent        (or: cc -O2 notes/latent.c -lm -o notes/latent)
//   notes/latent ae --data fashion-mnist --size 32 --ckpt ae.ckpt --minutes 10    the autoencoder
//   notes/latent train --ae ae.ckpt --data fashion-mnist --ckpt ldm.ckpt          diffusion on z
//   notes/latent sample --ae ae.ckpt --ckpt ldm.ckpt --out samples.png            z -> images
//   notes/latent recon --ae ae.ckpt --data fashion-mnist --out recon.png          x beside x_hat
//   notes/latent gradcheck                  every new backward vs finite differences (and -DDOUBLE)
//
// The idea (Rombach et al. 2022): a diffusion model spends most of its work on pixels' fine
// detail that a small autoencoder can store and restore on its own. So first train an
// autoencoder x -> z -> x_hat whose latent z is 4x smaller in each side (S x S x C images ->
// S/4 x S/4 x 4 latents: 32x32x1 -> 8x8x4), then run diffusion.c's Steps 1-5 unchanged on z, and
// decode the sampled z. The U-Net sees 16x fewer positions.
//
// The autoencoder is Rombach et al.'s "KL-regularised" one (AutoencoderKL), small and without its
// perceptual and adversarial losses. The encoder outputs, per latent value, a mean mu and a
// log-variance log sigma^2 of a diagonal Gaussian q(z | x) = N(mu(x), diag sigma^2(x)):
//     encoder: conv3x3 -> ResBlock -> conv3x3 stride 2 -> ResBlock -> conv3x3 stride 2 -> ResBlock
//              -> GroupNorm, SiLU -> conv3x3 to 2 x 4 channels (mu, log sigma^2)
//     z = mu + sigma * eps,  eps ~ N(0, I)          (the reparameterisation: z is a differentiable
//                                                    function of mu and sigma, the noise an input)
//     decoder: conv3x3 -> ResBlock -> nearest x2, conv3x3 -> ResBlock -> nearest x2, conv3x3
//              -> ResBlock -> GroupNorm, SiLU -> conv3x3 to the image's channels
// Its loss is the negative ELBO of a VAE with a reconstruction term and a weighted KL term:
//     L = mean_pixels |x - x_hat|  +  w_kl * (1/pixels) sum_latents KL(q(z|x) || N(0, I)),
//     KL(N(mu, sigma^2) || N(0, 1)) = 1/2 (mu^2 + sigma^2 - 1 - log sigma^2)   per latent value.
// L1, as Rombach et al.'s reconstruction term (the median, sharper than L2's mean); both sums per
// image, so w_kl means what their kl_weight means (1e-6 in their configs). The KL term keeps the
// latents near N(0, I) in scale; the small weight lets them carry detail. What remains of their
// scale is measured after training: the latents' standard deviation s over training images, and
// the diffusion model is trained on z / s (Stable Diffusion's 0.18215 is this 1/s).
//
// Every backward pass is written by hand from diffusion.c's layer pairs; `gradcheck` checks each
// new piece and the whole loss against finite differences (float; -DDOUBLE to 1e-6).
#ifndef LATENT_HAVE_DIFFUSION  // notes/fuzz/fuzz_ae.c includes diffusion.c itself, first
#define DIFFUSION_NO_MAIN
#include "../diffusion.c"
#endif

// ---- latent's own flags ---------------------------------------------------------------------
// diffusion.c's parser knows diffusion.c's flags; main takes these out of argv before it runs
// (the one place a companion needs state beside Options).
static struct {
    const char *ae;    // --ae ae.ckpt: the autoencoder
    double kl;         // --kl W: the KL weight (default 1e-4; not tuned)
    int lr_given;      // --lr given: else the autoencoder's default 5e-4 (train keeps 2e-4)
    int recon_only;    // recon --recon-only: the reconstructions alone, in sample's grid layout
} LF = {NULL, 1e-4, 0, 0};

// ---- The autoencoder: configuration, parameters, activations ----------------------------------
enum { ZC = 4 };  // latent channels (Rombach et al.'s f = 4 and 8 models: 3 or 4; 4 here)
typedef struct {
    int img_c, size;  // images (img_c, size, size); size a multiple of 4
    int ch1, ch2;     // widths at full size, and at 1/2 and 1/4 size
    int groups;       // GroupNorm groups (divides ch1 and ch2)
} AEConfig;

typedef struct {
    ConvParams enc_in;          // (ch1,img_c,3,3)
    ResBlockParams e0;          // ch1 -> ch1 @S (no time embedding: temb is NULL)
    ConvParams down0;           // (ch1,ch1,3,3) stride 2: S -> S/2
    ResBlockParams e1;          // ch1 -> ch2 @S/2
    ConvParams down1;           // (ch2,ch2,3,3) stride 2: S/2 -> S/4
    ResBlockParams e2;          // ch2 -> ch2 @S/4
    real *enc_gn_g, *enc_gn_b;  // (ch2)
    ConvParams enc_out;         // (2 ZC,ch2,3,3): ZC channels of mu, then ZC of log sigma^2
    ConvParams dec_in;          // (ch2,ZC,3,3)
    ResBlockParams r0;          // ch2 -> ch2 @S/4
    ConvParams up0;             // (ch2,ch2,3,3) after nearest x2 @S/2
    ResBlockParams r1;          // ch2 -> ch1 @S/2
    ConvParams up1;             // (ch1,ch1,3,3) after nearest x2 @S
    ResBlockParams r2;          // ch1 -> ch1 @S
    real *dec_gn_g, *dec_gn_b;  // (ch1)
    ConvParams dec_out;         // (img_c,ch1,3,3)
} AEParams;

typedef struct {
    real *x;                  // the images (B,img_c,S,S)
    real *h0;                 // enc_in(x) (B,ch1,S,S)
    ResBlockActs e0;          // -> (B,ch1,S,S)
    real *p0;                 // (B,ch1,S/2,S/2)
    ResBlockActs e1;          // -> (B,ch2,S/2,S/2)
    real *p1;                 // (B,ch2,S/4,S/4)
    ResBlockActs e2;          // -> (B,ch2,S/4,S/4)
    GroupNormActs egn;        // GroupNorm(e2.out)
    real *eact;               // its SiLU
    real *moments;            // (B,2 ZC,s,s), s = S/4: per image mu (ZC,s,s) then log sigma^2
    real *eps;                // (B,ZC,s,s) the reparameterisation's noise
    real *z;                  // (B,ZC,s,s) = mu + sigma eps
    real *d0;                 // dec_in(z) (B,ch2,s,s)
    ResBlockActs r0;          // -> (B,ch2,s,s)
    real *u0, *q0;            // nearest x2 (B,ch2,S/2,S/2), up0 conv of it
    ResBlockActs r1;          // -> (B,ch1,S/2,S/2)
    real *u1, *q1;            // nearest x2 (B,ch1,S,S), up1 conv of it
    ResBlockActs r2;          // -> (B,ch1,S,S)
    GroupNormActs dgn;        // GroupNorm(r2.out)
    real *dact;               // its SiLU
    real *xhat;               // the reconstruction (B,img_c,S,S)
} AEActs;

typedef struct {
    AEConfig cfg;
    int max_batch;
    // The parameters live in a Model shell: params_init and adamw_step read only its layout,
    // n_params and five arrays (params, grads, adam_m, adam_v, ema), laid out as AEParams says.
    Model opt;
    AEParams p, g;  // named views into opt.params and opt.grads
    size_t n_acts;
    real *acts, *dacts;  // dacts NULL when the autoencoder only encodes and decodes
    AEActs a, da;
    Workspace ws;
    double scale, shift;  // 1/std of the latents on training images (0: not measured yet), mean
    int64_t step;         // AdamW steps taken
} AE;

// A ResBlock without the time embedding: take_resblock's tensors but temb, in the same order.
static ResBlockParams take_ae_resblock(Layout *L, const char *name, int cin, int cout) {
    ResBlockParams r = {.cin = cin, .cout = cout};
    r.gn1_g = take2(L, name, ".gn1.g", cin, 0, KIND_GN_GAIN);
    r.gn1_b = take2(L, name, ".gn1.b", cin, 0, KIND_GN_SHIFT);
    r.conv1 = take_conv2(L, name, ".conv1", cout, cin, 3);
    r.gn2_g = take2(L, name, ".gn2.g", cout, 0, KIND_GN_GAIN);
    r.gn2_b = take2(L, name, ".gn2.b", cout, 0, KIND_GN_SHIFT);
    r.conv2 = take_conv2(L, name, ".conv2", cout, cout, 3);  // zero at first: the block is x
    if (cin != cout) r.skip = take_conv2(L, name, ".skip", cout, cin, 1);
    return r;
}

static void ae_params_layout(AEParams *P, Layout *L, real *base, const AEConfig *c) {
    layout_begin(L, base);
    int ch1 = c->ch1, ch2 = c->ch2;
    P->enc_in = take_conv(L, "enc_in", ch1, c->img_c, 3);
    P->e0 = take_ae_resblock(L, "e0", ch1, ch1);
    P->down0 = take_conv(L, "down0", ch1, ch1, 3);
    P->e1 = take_ae_resblock(L, "e1", ch1, ch2);
    P->down1 = take_conv(L, "down1", ch2, ch2, 3);
    P->e2 = take_ae_resblock(L, "e2", ch2, ch2);
    P->enc_gn_g = take(L, "enc_gn.g", ch2, 0, KIND_GN_GAIN);
    P->enc_gn_b = take(L, "enc_gn.b", ch2, 0, KIND_GN_SHIFT);
    P->enc_out = take_conv(L, "enc_out", 2 * ZC, ch2, 3);
    P->dec_in = take_conv(L, "dec_in", ch2, ZC, 3);
    P->r0 = take_ae_resblock(L, "r0", ch2, ch2);
    P->up0 = take_conv(L, "up0", ch2, ch2, 3);
    P->r1 = take_ae_resblock(L, "r1", ch2, ch1);
    P->up1 = take_conv(L, "up1", ch1, ch1, 3);
    P->r2 = take_ae_resblock(L, "r2", ch1, ch1);
    P->dec_gn_g = take(L, "dec_gn.g", ch1, 0, KIND_GN_GAIN);
    P->dec_gn_b = take(L, "dec_gn.b", ch1, 0, KIND_GN_SHIFT);
    P->dec_out = take_conv(L, "dec_out", c->img_c, ch1, 3);
}

// The activations for B images; the same layout on a second buffer holds their gradients. A
// ResBlock's `in` is its producer's slot, so its backward adds straight into it (as in the U-Net).
static void ae_acts_layout(AEActs *a, Layout *L, real *base, const AEConfig *c, int B) {
    layout_begin(L, base);
    int S = c->size, h = S / 2, s = S / 4, G = c->groups, ch1 = c->ch1, ch2 = c->ch2;
    size_t N = (size_t)S * S, N2 = (size_t)h * h, N4 = (size_t)s * s;
    a->x = take_act(L, B * c->img_c * N);
    a->h0 = take_act(L, B * ch1 * N);
    a->e0 = take_resblock_acts(L, a->h0, ch1, ch1, S, S, B, G);  // (its tproj stays unused)
    a->p0 = take_act(L, B * ch1 * N2);
    a->e1 = take_resblock_acts(L, a->p0, ch1, ch2, h, h, B, G);
    a->p1 = take_act(L, B * ch2 * N4);
    a->e2 = take_resblock_acts(L, a->p1, ch2, ch2, s, s, B, G);
    a->egn = take_gn_acts(L, B * ch2 * N4, B, G);
    a->eact = take_act(L, B * ch2 * N4);
    a->moments = take_act(L, B * 2 * ZC * N4);
    a->eps = take_act(L, B * ZC * N4);
    a->z = take_act(L, B * ZC * N4);
    a->d0 = take_act(L, B * ch2 * N4);
    a->r0 = take_resblock_acts(L, a->d0, ch2, ch2, s, s, B, G);
    a->u0 = take_act(L, B * ch2 * N2);
    a->q0 = take_act(L, B * ch2 * N2);
    a->r1 = take_resblock_acts(L, a->q0, ch2, ch1, h, h, B, G);
    a->u1 = take_act(L, B * ch1 * N);
    a->q1 = take_act(L, B * ch1 * N);
    a->r2 = take_resblock_acts(L, a->q1, ch1, ch1, S, S, B, G);
    a->dgn = take_gn_acts(L, B * ch1 * N, B, G);
    a->dact = take_act(L, B * ch1 * N);
    a->xhat = take_act(L, B * c->img_c * N);
}

static const char *ae_config_check(const AEConfig *c) {
    if (c->img_c != 1 && c->img_c != 3) return "image channels must be 1 or 3";
    if (c->size < 8 || c->size > 256 || c->size % 4)
        return "image size must be a multiple of 4 in 8..256";
    if (c->groups < 1 || c->ch1 < 1 || c->ch2 < 1 || c->ch1 % c->groups || c->ch2 % c->groups ||
        c->ch1 > 512 || c->ch2 > 512)
        return "widths must be positive multiples of the GroupNorm groups (at most 512)";
    return NULL;
}
static size_t ae_count_params(const AEConfig *c) {
    AEParams P;
    Layout *L = xmalloc(sizeof(Layout));
    ae_params_layout(&P, L, NULL, c);
    size_t n = L->used;
    free(L);
    return n;
}

// The autoencoder for max_batch images; grads = 0: no gradients of the activations (encoding and
// decoding only). Its first weights: params_init's rules (conv2 of every block zero).
static AE *ae_create(const AEConfig *c, int max_batch, int grads) {
    const char *why = ae_config_check(c);
    if (why) die("autoencoder", "%s", why);
    AE *ae = xcalloc(1, sizeof(AE));
    ae->cfg = *c;
    ae->max_batch = max_batch;
    Model *m = &ae->opt;
    m->layout = xmalloc(sizeof(Layout));
    ae_params_layout(&ae->p, m->layout, NULL, c);
    m->n_params = m->layout->used;
    real **arrays[] = {&m->params, &m->grads, &m->adam_m, &m->adam_v, &m->ema};
    for (int k = 0; k < 5; k++) *arrays[k] = xcalloc(m->n_params, sizeof(real));
    ae_params_layout(&ae->p, m->layout, m->params, c);
    Layout *tmp = xmalloc(sizeof(Layout));
    ae_params_layout(&ae->g, tmp, m->grads, c);
    ae_acts_layout(&ae->a, tmp, NULL, c, max_batch);
    ae->n_acts = tmp->used;
    ae->acts = xcalloc(ae->n_acts, sizeof(real));
    ae_acts_layout(&ae->a, tmp, ae->acts, c, max_batch);
    if (grads) {
        ae->dacts = xcalloc(ae->n_acts, sizeof(real));
        ae_acts_layout(&ae->da, tmp, ae->dacts, c, max_batch);
    }
    free(tmp);
    // The convolution scratch of diffusion.c, sized as for a U-Net of these widths at this size
    // but with ch2 at least 2 ZC: dec_in reads ZC channels and enc_out writes 2 ZC, which widths
    // under 4 did not cover (heap overflows: notes/fuzz/corpus/ae/crash-ae-*-workspace-*).
    int wch2 = c->ch2 > 2 * ZC ? c->ch2 : 2 * ZC;
    Config wc = {c->img_c, c->size, c->size, c->ch1, wch2, 2, 2 * ZC, c->groups, 1, 0, 0, 0, 0};
    workspace_create(&ae->ws, &wc);
    return ae;
}
static void ae_free(AE *ae) {
    Model *m = &ae->opt;
    free_all(13, m->params, m->grads, m->adam_m, m->adam_v, m->ema, m->layout, ae->acts,
             ae->dacts, ae->ws.col, ae->ws.dcol, ae->ws.rows, ae->ws.flipped, ae->ws.partial);
    free(ae);
}

// ---- A ResBlock without time embedding --------------------------------------------------------
//   h = conv1(SiLU(GN(x)));   out = conv2(SiLU(GN(h))) + (skip(x) or x)
// diffusion.c's resblock_forward without its "+ Linear(SiLU(emb))". a->in (B,cin,H,W) ->
// a->out (B,cout,H,W).
static void ae_resblock_forward(const ResBlockParams *p, ResBlockActs *a, const Workspace *ws,
                                int G, int B) {
    int N = a->H * a->W, cin = a->cin, cout = a->cout;
    size_t nout = (size_t)B * cout * N;
    groupnorm_silu_forward(a->act1, &a->gn1, a->in, p->gn1_g, p->gn1_b, B, cin, N, G);
    conv2d_forward(a->h1, a->act1, p->conv1.w, p->conv1.b, B, cin, a->H, a->W, cout, 3, 1, ws);
    groupnorm_silu_forward(a->act2, &a->gn2, a->h1, p->gn2_g, p->gn2_b, B, cout, N, G);
    conv2d_forward(a->out, a->act2, p->conv2.w, p->conv2.b, B, cout, a->H, a->W, cout, 3, 1, ws);
    if (p->skip.w) {
        conv2d_forward(a->skip, a->in, p->skip.w, p->skip.b, B, cin, a->H, a->W, cout, 1, 1, ws);
        residual_forward(a->out, a->out, a->skip, nout);
    } else {
        residual_forward(a->out, a->out, a->in, nout);
    }
}
// The forward read backwards, line by line: d->out -> d->in (+=) and the block's gradients (+=).
static void ae_resblock_backward(const ResBlockParams *p, const ResBlockParams *g,
                                 const ResBlockActs *a, ResBlockActs *d, const Workspace *ws,
                                 int G, int B) {
    int N = a->H * a->W, cin = a->cin, cout = a->cout, H = a->H, W = a->W;
    if (p->skip.w)
        conv2d_backward(d->in, g->skip.w, g->skip.b, d->out, a->in, p->skip.w, B, cin, H, W, cout,
                        1, 1, ws);
    else
        add_into(d->in, d->out, (size_t)B * cin * N);  // identity skip: out = h + x
    conv2d_backward(d->act2, g->conv2.w, g->conv2.b, d->out, a->act2, p->conv2.w, B, cout, H, W,
                    cout, 3, 1, ws);
    groupnorm_silu_backward(d->h1, g->gn2_g, g->gn2_b, &d->gn2, d->act2, &a->gn2, a->h1, p->gn2_g,
                            B, cout, N, G);
    conv2d_backward(d->act1, g->conv1.w, g->conv1.b, d->h1, a->act1, p->conv1.w, B, cin, H, W,
                    cout, 3, 1, ws);
    groupnorm_silu_backward(d->in, g->gn1_g, g->gn1_b, &d->gn1, d->act1, &a->gn1, a->in, p->gn1_g,
                            B, cin, N, G);
}

// ---- The reparameterisation and the KL term ---------------------------------------------------
// moments (B,2 ZC,n): per image n = ZC s s means mu, then n log-variances lv (clamped to [-30,
// 20] as Rombach et al. do, so that sigma = e^{lv/2} neither underflows nor overflows).
//     z = mu + sigma eps,  sigma = exp(lv / 2),  eps (B,ZC,s,s) given
//     KL = sum over all B n values of 1/2 (mu^2 + sigma^2 - 1 - lv)   (returned, not divided)
static real clamp_logvar(real lv) { return lv < -30 ? -30 : lv > 20 ? 20 : lv; }
static double reparam_forward(real *z, const real *moments, const real *eps, int B, size_t n) {
    double kl = 0;
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < n; i++) {
            real mu = moments[(size_t)b * 2 * n + i];
            real lv = clamp_logvar(moments[(size_t)b * 2 * n + n + i]);
            real sigma = (real)exp(0.5 * lv);
            z[(size_t)b * n + i] = mu + sigma * eps[(size_t)b * n + i];
            kl += 0.5 * ((double)mu * mu + (double)sigma * sigma - 1 - lv);
        }
    return kl;
}
// forward: z = mu + e^{lv/2} eps, KL_i = 1/2 (mu^2 + e^{lv} - 1 - lv). So
//     dmu += dz + dkl mu,   dlv += dz eps e^{lv/2} / 2 + dkl (e^{lv} - 1) / 2
// (dlv = 0 where the clamp holds lv). dz (B,ZC,s,s), dkl = dL/dKL -> dmoments (+=).
static void reparam_backward(real *dmoments, const real *dz, double dkl, const real *moments,
                             const real *eps, int B, size_t n) {
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < n; i++) {
            size_t m = (size_t)b * 2 * n + i, l = m + n, k = (size_t)b * n + i;
            real raw = moments[l], sigma = (real)exp(0.5 * clamp_logvar(raw));
            dmoments[m] += dz[k] + (real)(dkl * moments[m]);
            if (raw < -30 || raw > 20) continue;
            dmoments[l] += dz[k] * eps[k] * sigma / 2 + (real)(dkl * 0.5 * (sigma * sigma - 1));
        }
}

// ---- The L1 reconstruction loss -------------------------------------------------------------
// L = mean |xhat - x| over n values; dL/dxhat = sign(xhat - x) / n (0 where they are equal: the
// kink, where any value in [-1/n, 1/n] is a subgradient).
static double l1_forward(const real *xhat, const real *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs((double)xhat[i] - x[i]);
    return s / (double)n;
}
static void l1_backward(real *dxhat, const real *xhat, const real *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        dxhat[i] += (real)((xhat[i] > x[i]) - (xhat[i] < x[i])) / (real)n;
}

// ---- The whole autoencoder ----------------------------------------------------------------------
// x (B,img_c,S,S) -> ae->a.moments (B,2 ZC,S/4,S/4): mu and log sigma^2 of q(z | x).
static void ae_encode(AE *ae, const real *x, int B) {
    if (B > ae->max_batch) die("ae_encode", "%d images; its buffers hold %d", B, ae->max_batch);
    const AEConfig *c = &ae->cfg;
    const AEParams *p = &ae->p;
    const Workspace *ws = &ae->ws;
    AEActs *a = &ae->a;
    int S = c->size, G = c->groups, ch1 = c->ch1, ch2 = c->ch2;
    memcpy(a->x, x, sizeof(real) * B * c->img_c * S * S);
    conv2d_forward(a->h0, a->x, p->enc_in.w, p->enc_in.b, B, c->img_c, S, S, ch1, 3, 1, ws);
    ae_resblock_forward(&p->e0, &a->e0, ws, G, B);
    conv2d_forward(a->p0, a->e0.out, p->down0.w, p->down0.b, B, ch1, S, S, ch1, 3, 2, ws);
    ae_resblock_forward(&p->e1, &a->e1, ws, G, B);
    conv2d_forward(a->p1, a->e1.out, p->down1.w, p->down1.b, B, ch2, S / 2, S / 2, ch2, 3, 2, ws);
    ae_resblock_forward(&p->e2, &a->e2, ws, G, B);
    int N4 = (S / 4) * (S / 4);
    groupnorm_silu_forward(a->eact, &a->egn, a->e2.out, p->enc_gn_g, p->enc_gn_b, B, ch2, N4, G);
    conv2d_forward(a->moments, a->eact, p->enc_out.w, p->enc_out.b, B, ch2, S / 4, S / 4, 2 * ZC,
                   3, 1, ws);
}
// ae->a.z (B,ZC,S/4,S/4) -> ae->a.xhat (B,img_c,S,S).
static void ae_decode(AE *ae, int B) {
    const AEConfig *c = &ae->cfg;
    const AEParams *p = &ae->p;
    const Workspace *ws = &ae->ws;
    AEActs *a = &ae->a;
    int S = c->size, s = S / 4, h = S / 2, G = c->groups, ch1 = c->ch1, ch2 = c->ch2;
    conv2d_forward(a->d0, a->z, p->dec_in.w, p->dec_in.b, B, ZC, s, s, ch2, 3, 1, ws);
    ae_resblock_forward(&p->r0, &a->r0, ws, G, B);
    upsample_forward(a->u0, a->r0.out, B * ch2, s, s);
    conv2d_forward(a->q0, a->u0, p->up0.w, p->up0.b, B, ch2, h, h, ch2, 3, 1, ws);
    ae_resblock_forward(&p->r1, &a->r1, ws, G, B);
    upsample_forward(a->u1, a->r1.out, B * ch1, h, h);
    conv2d_forward(a->q1, a->u1, p->up1.w, p->up1.b, B, ch1, S, S, ch1, 3, 1, ws);
    ae_resblock_forward(&p->r2, &a->r2, ws, G, B);
    groupnorm_silu_forward(a->dact, &a->dgn, a->r2.out, p->dec_gn_g, p->dec_gn_b, B, ch1, S * S, G);
    conv2d_forward(a->xhat, a->dact, p->dec_out.w, p->dec_out.b, B, ch1, S, S, c->img_c, 3, 1, ws);
}

// The loss:  encode x; z = mu + sigma eps (eps drawn from rng; rng NULL: ae->a.eps as it is);
//     decode; L = mean |xhat - target| + w_kl KL / pixels.
// target is x in training (gradcheck moves it away from xhat, off the L1 kink). Returns L; *rec,
// *kl_per_pixel receive its two terms before weighting.
static double ae_loss(AE *ae, const real *x, const real *target, int B, double w_kl, Rng *rng,
                      double *rec, double *kl_per_pixel) {
    const AEConfig *c = &ae->cfg;
    AEActs *a = &ae->a;
    size_t npix = (size_t)B * c->img_c * c->size * c->size;
    size_t nz = (size_t)ZC * (c->size / 4) * (c->size / 4);
    ae_encode(ae, x, B);
    if (rng) rng_normal_fill(rng, a->eps, B * nz);
    double kl = reparam_forward(a->z, a->moments, a->eps, B, nz);
    ae_decode(ae, B);
    *rec = l1_forward(a->xhat, target, npix);
    *kl_per_pixel = kl / (double)npix;
    return *rec + w_kl * *kl_per_pixel;
}
// ae_loss, then its gradient (into ae->opt.grads, zeroed first): the forward read backwards.
static double ae_loss_and_grad(AE *ae, const real *x, const real *target, int B, double w_kl,
                               Rng *rng, double *rec, double *kl_per_pixel) {
    const AEConfig *c = &ae->cfg;
    const AEParams *p = &ae->p, *g = &ae->g;
    const AEActs *a = &ae->a;
    AEActs *d = &ae->da;
    const Workspace *ws = &ae->ws;
    int S = c->size, s = S / 4, h = S / 2, G = c->groups, ch1 = c->ch1, ch2 = c->ch2;
    size_t npix = (size_t)B * c->img_c * S * S, nz = (size_t)ZC * s * s;
    double loss = ae_loss(ae, x, target, B, w_kl, rng, rec, kl_per_pixel);
    // backward
    memset(ae->opt.grads, 0, ae->opt.n_params * sizeof(real));
    memset(ae->dacts, 0, ae->n_acts * sizeof(real));
    l1_backward(d->xhat, a->xhat, target, npix);
    conv2d_backward(d->dact, g->dec_out.w, g->dec_out.b, d->xhat, a->dact, p->dec_out.w, B, ch1, S,
                    S, c->img_c, 3, 1, ws);
    groupnorm_silu_backward(d->r2.out, g->dec_gn_g, g->dec_gn_b, &d->dgn, d->dact, &a->dgn,
                            a->r2.out, p->dec_gn_g, B, ch1, S * S, G);
    ae_resblock_backward(&p->r2, &g->r2, &a->r2, &d->r2, ws, G, B);
    conv2d_backward(d->u1, g->up1.w, g->up1.b, d->q1, a->u1, p->up1.w, B, ch1, S, S, ch1, 3, 1, ws);
    upsample_backward(d->r1.out, d->u1, B * ch1, h, h);
    ae_resblock_backward(&p->r1, &g->r1, &a->r1, &d->r1, ws, G, B);
    conv2d_backward(d->u0, g->up0.w, g->up0.b, d->q0, a->u0, p->up0.w, B, ch2, h, h, ch2, 3, 1, ws);
    upsample_backward(d->r0.out, d->u0, B * ch2, s, s);
    ae_resblock_backward(&p->r0, &g->r0, &a->r0, &d->r0, ws, G, B);
    conv2d_backward(d->z, g->dec_in.w, g->dec_in.b, d->d0, a->z, p->dec_in.w, B, ZC, s, s, ch2, 3,
                    1, ws);
    // L = ... + w_kl KL / npix, so dL/dKL = w_kl / npix
    reparam_backward(d->moments, d->z, w_kl / (double)npix, a->moments, a->eps, B, nz);
    conv2d_backward(d->eact, g->enc_out.w, g->enc_out.b, d->moments, a->eact, p->enc_out.w, B, ch2,
                    s, s, 2 * ZC, 3, 1, ws);
    groupnorm_silu_backward(d->e2.out, g->enc_gn_g, g->enc_gn_b, &d->egn, d->eact, &a->egn,
                            a->e2.out, p->enc_gn_g, B, ch2, s * s, G);
    ae_resblock_backward(&p->e2, &g->e2, &a->e2, &d->e2, ws, G, B);
    conv2d_backward(d->e1.out, g->down1.w, g->down1.b, d->p1, a->e1.out, p->down1.w, B, ch2, h, h,
                    ch2, 3, 2, ws);
    ae_resblock_backward(&p->e1, &g->e1, &a->e1, &d->e1, ws, G, B);
    conv2d_backward(d->e0.out, g->down0.w, g->down0.b, d->p0, a->e0.out, p->down0.w, B, ch1, S, S,
                    ch1, 3, 2, ws);
    ae_resblock_backward(&p->e0, &g->e0, &a->e0, &d->e0, ws, G, B);
    conv2d_backward(NULL, g->enc_in.w, g->enc_in.b, d->h0, a->x, p->enc_in.w, B, c->img_c, S, S,
                    ch1, 3, 1, ws);
    return loss;
}

// ---- Encoding and decoding many images ----------------------------------------------------------
// n images (n, img_c, S, S) floats -> z (n, ZC, S/4, S/4) = the posterior means mu (no noise: the
// data set is encoded once, and sigma is small), in batches of the autoencoder's max_batch.
static void ae_encode_all(AE *ae, float *z, const float *pixels, int n) {
    const AEConfig *c = &ae->cfg;
    size_t img = (size_t)c->img_c * c->size * c->size;
    size_t nz = (size_t)ZC * (c->size / 4) * (c->size / 4);
    real *x = xmalloc((size_t)ae->max_batch * img * sizeof(real));
    for (int first = 0; first < n; first += ae->max_batch) {
        int B = n - first < ae->max_batch ? n - first : ae->max_batch;
        for (size_t k = 0; k < B * img; k++) x[k] = pixels[(size_t)first * img + k];
        ae_encode(ae, x, B);
        for (int b = 0; b < B; b++)
            for (size_t i = 0; i < nz; i++)
                z[(first + (size_t)b) * nz + i] = (float)ae->a.moments[(size_t)b * 2 * nz + i];
    }
    free(x);
}
// z (n, ZC, S/4, S/4) in the autoencoder's own scale -> images (n, img_c, S, S).
static void ae_decode_all(AE *ae, real *images, const real *z, int n) {
    const AEConfig *c = &ae->cfg;
    size_t img = (size_t)c->img_c * c->size * c->size;
    size_t nz = (size_t)ZC * (c->size / 4) * (c->size / 4);
    for (int first = 0; first < n; first += ae->max_batch) {
        int B = n - first < ae->max_batch ? n - first : ae->max_batch;
        memcpy(ae->a.z, z + (size_t)first * nz, B * nz * sizeof(real));
        ae_decode(ae, B);
        memcpy(images + (size_t)first * img, ae->a.xhat, B * img * sizeof(real));
    }
}
// The latents' mean and standard deviation over m values (double sums).
static void mean_std(const float *v, size_t m, double *mean, double *std) {
    double s = 0, ss = 0;
    for (size_t i = 0; i < m; i++) s += v[i];
    *mean = s / (double)m;
    for (size_t i = 0; i < m; i++) ss += (v[i] - *mean) * (v[i] - *mean);
    *std = sqrt(ss / (double)m);
}
// Stable Diffusion's scale factor, measured: the std s of the latents of up to 2048 training
// images, evenly spaced through d, so that the diffusion model sees z / s with unit variance
// (its Step 1 adds unit-variance noise; the data should be on that scale, as pixels in [-1, 1]).
static void ae_measure_scale(AE *ae, const Dataset *d) {
    int n = d->n < 2048 ? d->n : 2048;
    size_t img = (size_t)d->c * d->h * d->w, nz = (size_t)ZC * (d->h / 4) * (d->w / 4);
    float *pix = xmalloc(n * img * sizeof(float)), *z = xmalloc(n * nz * sizeof(float));
    for (int i = 0; i < n; i++)
        memcpy(pix + i * img, d->pixels + (size_t)((int64_t)i * d->n / n) * img,
               img * sizeof(float));
    ae_encode_all(ae, z, pix, n);
    double mean, std;
    mean_std(z, n * nz, &mean, &std);
    ae->scale = std > 0 ? 1 / std : 1;
    ae->shift = mean;
    free_all(2, pix, z);
}

// ---- The autoencoder's checkpoint ---------------------------------------------------------------
// A header (magic, version, size of real, the config, step, RNG, batch, the scale factor and the
// latents' mean, the KL weight), then params, EMA, AdamW m and v, then a CRC-32 of all of it;
// written atomically (the old file or the new one, never half). Encoding and decoding use the EMA.
enum { AE_CKPT_VERSION = 1 };
typedef struct {         // 96 bytes, no padding: written as it is
    char magic[8];       // "LATNTAE1"
    int32_t version, real_size;
    int32_t config[6];   // img_c, size, ch1, ch2, groups, ZC
    int64_t step;
    uint64_t rng_state, n_params;
    int32_t batch, pad;  // batch: the training batch, so that --resume continues
    double scale, shift, kl;
} AECkptHeader;
typedef char ae_header_is_96_bytes[sizeof(AECkptHeader) == 96 ? 1 : -1];

static void ae_save(const char *path, const AE *ae, const Rng *rng, int batch, double kl) {
    const AEConfig *c = &ae->cfg;
    const Model *m = &ae->opt;
    AECkptHeader h = {.version = AE_CKPT_VERSION, .real_size = (int32_t)sizeof(real),
                      .config = {c->img_c, c->size, c->ch1, c->ch2, c->groups, ZC},
                      .step = ae->step, .rng_state = rng->state, .n_params = m->n_params,
                      .batch = batch, .scale = ae->scale, .shift = ae->shift, .kl = kl};
    memcpy(h.magic, "LATNTAE1", 8);
    size_t P = m->n_params * sizeof(real);
    const void *part[5] = {&h, m->params, m->ema, m->adam_m, m->adam_v};
    size_t bytes[5] = {sizeof h, P, P, P, P};
    char tmp[4200];
    FILE *f;
    atomic_write_begin(path, tmp, sizeof tmp, &f);
    uint32_t crc = 0;
    for (int k = 0; k < 5; k++) {
        fwrite(part[k], 1, bytes[k], f);
        crc = crc32_update(crc, part[k], bytes[k]);
    }
    fwrite(&crc, sizeof crc, 1, f);
    atomic_write_end(path, tmp, f, NULL);
}

// Reads and validates an autoencoder checkpoint (every field before it is used; anything wrong:
// one line naming the file). Returns the autoencoder for max_batch images (0: the saved batch),
// with gradients when grads; *rng, *batch, *kl receive the header's (any may be NULL).
static AE *ae_load(const char *path, int max_batch, int grads, Rng *rng, int *batch, double *kl) {
    size_t len;
    unsigned char *buf = read_file(path, MAX_FILE_BYTES, &len);
    AECkptHeader h;
    if (len < sizeof h + 4)
        die(path, "not a latent autoencoder checkpoint (too short: %zu bytes)", len);
    memcpy(&h, buf, sizeof h);
    if (!memcmp(h.magic, "DIFFUSNC", 8))
        die(path, "is a diffusion.c U-Net checkpoint, not an autoencoder (give it as --ckpt)");
    if (memcmp(h.magic, "LATNTAE1", 8))
        die(path, "not a latent autoencoder checkpoint (bad magic)");
    // As checkpoint_load: the CRC before the fields (a damaged field is damage, not a double
    // build); "truncated" only when every field is sane and the length is not what they imply.
    uint32_t crc_file;
    memcpy(&crc_file, buf + len - 4, 4);
    int crc_ok = crc32_update(0, buf, len - 4) == crc_file;
    AEConfig c = {h.config[0], h.config[1], h.config[2], h.config[3], h.config[4]};
    const char *bad = NULL, *bad_config = ae_config_check(&c);
    if (h.version != AE_CKPT_VERSION) bad = "autoencoder checkpoint format is not 1";
    else if (h.real_size != (int32_t)sizeof(real))
        bad = sizeof(real) == 8 ? "written by a float build, this is a double build"
                                : "written by a double build, this is a float build";
    else if (bad_config) bad = bad_config;
    else if (h.config[5] != ZC) bad = "latent channels are not 4";
    else if (h.step < 0 || h.batch < 1 || h.batch > MAX_BATCH || !(h.scale >= 0 && h.scale < 1e6) ||
             !isfinite(h.shift) || !(h.kl >= 0 && h.kl <= 1e6))
        bad = "bad step, batch, scale or KL weight in autoencoder checkpoint header";
    size_t P = bad ? 0 : ae_count_params(&c), want = sizeof h + 4 * P * sizeof(real) + 4;
    if (!bad && h.n_params != P) bad = "header's parameter count differs from its configuration's";
    if (!bad && len != want)
        die(path, "checkpoint is %zu bytes, expected %zu (truncated or corrupt)", len, want);
    if (!crc_ok) die(path, "autoencoder checkpoint is corrupt (CRC-32 mismatch)");
    if (bad && bad == bad_config) die(path, "bad autoencoder configuration: %s", bad);
    if (bad) die(path, "%s", bad);
    AE *ae = ae_create(&c, max_batch ? max_batch : h.batch, grads);
    Model *m = &ae->opt;
    real *arrays[4] = {m->params, m->ema, m->adam_m, m->adam_v};
    for (int k = 0; k < 4; k++)
        memcpy(arrays[k], buf + sizeof h + k * P * sizeof(real), P * sizeof(real));
    ae->step = h.step;
    ae->scale = h.scale;
    ae->shift = h.shift;
    if (rng) rng->state = h.rng_state;
    if (batch) *batch = h.batch;
    if (kl) *kl = h.kl;
    free(buf);
    return ae;
}
// For encoding and decoding: the checkpoint's EMA weights, with its scale factor measured.
static AE *ae_load_for_use(const char *path, int max_batch) {
    AE *ae = ae_load(path, max_batch, 0, NULL, NULL, NULL);
    if (ae->scale == 0)
        die(path, "has no latent scale factor yet (saved during training): let `latent ae` finish "
            "or resume it");
    memcpy(ae->opt.params, ae->opt.ema, ae->opt.n_params * sizeof(real));
    return ae;
}

// ---- latent ae: train the autoencoder -----------------------------------------------------------
// Each step: B random training images; L (above) and its gradient; diffusion.c's adamw_step (clip,
// AdamW, EMA). Until --steps or --minutes, or Ctrl-C (diffusion.c's on_sigint); then the scale
// factor is measured with the EMA weights and everything is saved.
static int cmd_ae(const Options *o) {
    const char *path = o->ckpt ? o->ckpt : "ae.ckpt";
    TrainOptions t = {.data = o->data ? o->data : "fashion-mnist", .ckpt = path, .log = o->log,
                      .steps = o->steps, .minutes = o->minutes, .resume = o->resume,
                      .hyper = DEFAULT_HYPER, .save_every = 500};
    if (!o->steps && !o->minutes) t.minutes = 10;
    t.hyper.lr = LF.lr_given ? o->lr : 5e-4;
    remove_stale_tmp(path);
    Rng rng = {o->seed};
    int B = o->batch ? o->batch : 32;
    double kl = LF.kl;
    AE *ae;
    Dataset d;
    if (!o->resume) {
        d = options_data(o, o->channels, o->size, stderr, 1);
        int wd = o->width ? o->width : 32;
        if (wd % 8) die_usage("--width", "must be a multiple of 8 (the GroupNorm groups)");
        AEConfig c = {d.c, d.h, wd, 2 * wd, 8};
        if (d.h != d.w) die(t.data, "images must be square");
        ae = ae_create(&c, B, 1);
        params_init(&ae->opt, &rng, 0);
    } else {
        int saved_batch;
        ae = ae_load(path, o->batch, 1, &rng, &saved_batch, &kl);
        if (!o->batch) B = saved_batch;
        if ((o->channels && o->channels != ae->cfg.img_c) || (o->size && o->size != ae->cfg.size))
            die_usage("--resume", "%s's images are %dx%dx%d: --channels and --size cannot change",
                      path, ae->cfg.img_c, ae->cfg.size, ae->cfg.size);
        fprintf(stderr, "resuming %s at step %" PRId64 "\n", path, ae->step);
        d = options_data(o, ae->cfg.img_c, ae->cfg.size, stderr, 1);
    }
    const AEConfig *c = &ae->cfg;
    // for the progress line
    Config shown = {c->img_c, c->size, c->size, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    size_t img = (size_t)c->img_c * c->size * c->size;
    real *x = xmalloc(B * img * sizeof(real));
    fprintf(stderr, "training the autoencoder (%zu parameters, widths %d/%d, %dx%dx%d -> %dx%dx%d"
            "), batch %d, lr %g, L1 + %g KL\n", ae->opt.n_params, c->ch1, c->ch2, c->img_c,
            c->size, c->size, ZC, c->size / 4, c->size / 4, B, t.hyper.lr, kl);
    signal(SIGINT, on_sigint);
    FILE *log = log_open(t.log, t.resume);
    double t0 = now_seconds(), t_print = 0, smooth = -1;
    int64_t first = ae->step, last_saved = ae->step;
    int tty = isatty(2);
    while (!interrupted && (t.steps ? ae->step - first < t.steps
                                    : now_seconds() - t0 < 60 * t.minutes)) {
        for (int b = 0; b < B; b++) {  // B random training images
            int i = rng_int(&rng, d.n);
            for (size_t k = 0; k < img; k++) x[b * img + k] = d.pixels[(size_t)i * img + k];
        }
        double rec, klp, loss = ae_loss_and_grad(ae, x, x, B, kl, &rng, &rec, &klp);
        if (!isfinite(loss))
            die("latent ae", "loss is %g at step %" PRId64 ": stopping; the last checkpoint (%s) "
                "is untouched", loss, ae->step + 1, path);
        double gnorm = adamw_step(&ae->opt, &t.hyper, ++ae->step);
        smooth = smooth < 0 ? rec : 0.98 * smooth + 0.02 * rec;
        double el = now_seconds() - t0;
        if (log)
            fprintf(log, "%" PRId64 ",%.6f,%g,%.4f,%.3f\n", ae->step, loss, t.hyper.lr, gnorm, el);
        if (el - t_print >= (tty ? 0.5 : 10) || (t.steps && ae->step - first == t.steps)) {
            t_print = el;
            train_progress(&t, &shown, ae->step - first, smooth, B, el, tty);
        }
        if (ae->step - last_saved >= t.save_every) {
            ae_save(path, ae, &rng, B, kl);  // the scale factor of the last measure (0: none yet)
            last_saved = ae->step;
        }
    }
    if (tty) fputc('\n', stderr);
    // the scale factor, with the EMA weights (those that encode and decode)
    real *keep = xmalloc(ae->opt.n_params * sizeof(real));
    memcpy(keep, ae->opt.params, ae->opt.n_params * sizeof(real));
    memcpy(ae->opt.params, ae->opt.ema, ae->opt.n_params * sizeof(real));
    ae_measure_scale(ae, &d);
    memcpy(ae->opt.params, keep, ae->opt.n_params * sizeof(real));
    ae_save(path, ae, &rng, B, kl);
    log_close(log, t.log, path);
    fprintf(stderr, "%s %s at step %" PRId64 " (smoothed L1 %.4f); latents: mean %.4f, std %.4f, "
            "scale factor 1/std = %.5f\n", interrupted ? "interrupted: saved" : "saved", path,
            ae->step, smooth, ae->shift, 1 / ae->scale, ae->scale);
    free_all(2, keep, x);
    ae_free(ae);
    dataset_free(&d);
    return 0;
}

// ---- latent train: diffusion.c's training on the latents ----------------------------------------
// The data set is encoded once (posterior means, times the scale factor) into a Dataset of
// n "images" (ZC, S/4, S/4) with the data's labels; then diffusion.c's own train() runs on it:
// Steps 3 and 4 do not know that their x_0 are latents.
static Dataset encode_dataset(AE *ae, const Dataset *d) {
    const AEConfig *c = &ae->cfg;
    int s = c->size / 4;
    size_t nz = (size_t)ZC * s * s;
    Dataset z = {.n = d->n, .c = ZC, .h = s, .w = s, .labels = NULL, .n_classes = d->n_classes};
    z.pixels = xmalloc((size_t)d->n * nz * sizeof(float));
    double t0 = now_seconds(), mean, std;
    ae_encode_all(ae, z.pixels, d->pixels, d->n);
    for (size_t i = 0; i < (size_t)d->n * nz; i++) z.pixels[i] = (float)(z.pixels[i] * ae->scale);
    mean_std(z.pixels, (size_t)d->n * nz, &mean, &std);
    fprintf(stderr, "encoded %d images to %dx%dx%d latents in %.1f s; times the scale factor "
            "%.5f: mean %.4f, std %.4f over all of them\n", d->n, ZC, s, s, now_seconds() - t0,
            ae->scale, mean, std);
    if (d->labels) {  // the classes travel with the latents (copied: each Dataset frees its own)
        z.labels = xmalloc((size_t)d->n * sizeof(int));
        memcpy(z.labels, d->labels, (size_t)d->n * sizeof(int));
    }
    z.class_names = xcalloc(d->n_classes ? d->n_classes : 1, sizeof(ClassName));
    if (d->n_classes) memcpy(z.class_names, d->class_names, d->n_classes * sizeof(ClassName));
    return z;
}

static int cmd_latent_train(const Options *o) {
    if (!LF.ae) die_usage("--ae", "required: the autoencoder (latent ae --ckpt ae.ckpt)");
    TrainOptions t = {.data = o->data ? o->data : "fashion-mnist", .log = o->log,
                      .ckpt = o->ckpt ? o->ckpt : "ldm.ckpt", .steps = o->steps,
                      .minutes = o->minutes, .resume = o->resume, .hyper = DEFAULT_HYPER,
                      .save_every = 500};
    if (!o->steps && !o->minutes) t.minutes = 10;
    t.hyper.lr = o->lr;
    t.hyper.min_snr = o->min_snr;
    t.hyper.cosine = o->cosine_lr;
    remove_stale_tmp(t.ckpt);
    int B = o->batch ? o->batch : 64;
    AE *ae = ae_load_for_use(LF.ae, 64);
    if (o->size && o->size != ae->cfg.size)
        die_usage("--size", "%s encodes %dx%d images", LF.ae, ae->cfg.size, ae->cfg.size);
    Dataset d = options_data(o, ae->cfg.img_c, ae->cfg.size, stderr, 1);
    Dataset z = encode_dataset(ae, &d);
    ae_free(ae);
    CkptInfo ck = {.schedule = o->schedule, .T = o->T, .rng = {o->seed}};
    Model *m;
    if (!o->resume) {
        Config c = config_for(o, &z);
        m = model_create(&c, B);
        params_init(m, &ck.rng, 0);
        if (c.cond) memcpy(m->class_names, z.class_names, c.n_classes * sizeof(ClassName));
    } else {
        m = checkpoint_load(t.ckpt, o->batch, &ck);
        if (!ck.has_optimizer)
            die(t.ckpt, "has no optimizer state: cannot resume training from it");
        if (!o->batch) B = ck.batch;
        const Config *c = &m->cfg;
        if (c->img_c != ZC || c->img_h != z.h || c->img_w != z.w)
            die(t.ckpt, "its inputs are %dx%dx%d, %s's latents %dx%dx%d", c->img_c, c->img_h,
                c->img_w, LF.ae, ZC, z.h, z.w);
        if (c->cond && (!z.labels || z.n_classes != c->n_classes))
            die(t.data, "its classes differ from the %d of %s", c->n_classes, t.ckpt);
        fprintf(stderr, "resuming %s at step %" PRId64 "\n", t.ckpt, ck.step);
    }
    train(&t, m, &z, ck.schedule, ck.T, ck.step, ck.rng, B);
    model_free(m);
    dataset_free(&z);
    dataset_free(&d);
    return 0;
}

// ---- latent sample: Step 5 on latents, decoded -----------------------------------------------
// diffusion.c's sample_loop with every sampler and guidance (sample_options), on ZC x S/4 x S/4;
// then z / scale through the decoder. --trajectory: both rows decoded, x_t (noise decodes to
// texture) and x0_hat (eq. 2, the network's guess of the end: here a guess of the image).
static int cmd_latent_sample(const Options *o) {
    if (!LF.ae) die_usage("--ae", "required: the autoencoder the latents belong to");
    const char *path = o->ckpt ? o->ckpt : "ldm.ckpt";
    int chunk = o->batch ? o->batch : 64;
    CkptInfo ck;
    Rng rng = {o->seed};
    Model *m = checkpoint_load(path, o->guided ? 2 * chunk : chunk, &ck);
    AE *ae = ae_load_for_use(LF.ae, chunk < 16 ? chunk : 16);
    const Config *c = &m->cfg;
    const AEConfig *ac = &ae->cfg;
    if (c->img_c != ZC || c->img_h != ac->size / 4 || c->img_w != ac->size / 4)
        die(path, "its inputs are %dx%dx%d, %s's latents %dx%dx%d", c->img_c, c->img_h, c->img_w,
            LF.ae, ZC, ac->size / 4, ac->size / 4);
    SampleOptions so = sample_options(o, c, ck.schedule, ck.T);
    int K = c->n_classes, chosen = o->label ? label_of(o->label, m) : 0;
    int per_class = c->cond && !o->label;
    int n = o->n ? o->n : per_class ? 8 * K : 64;
    int cols = per_class ? (n + K - 1) / K : (int)ceil(sqrt((double)n));
    if (per_class) n = K * cols;
    memcpy(m->params, m->ema, m->n_params * sizeof(real));  // sample with the EMA weights
    Schedule s = schedule_make(ck.schedule, ck.T);
    size_t nz = (size_t)ZC * c->img_h * c->img_w, img = (size_t)ac->img_c * ac->size * ac->size;
    real *z = xmalloc((size_t)n * nz * sizeof(real)), *x = xmalloc((size_t)n * img * sizeof(real));
    int *label = xmalloc((size_t)n * sizeof(int)), frames = 11;
    for (int i = 0; i < n; i++) label[i] = per_class ? i / cols : chosen;
    real *traj = o->trajectory ? xmalloc((size_t)2 * frames * chunk * nz * sizeof(real)) : NULL;
    double t0 = now_seconds();
    fprintf(stderr, "sampling %d latents %dx%dx%d with %s (%d network evaluations each%s) from %s "
            "(step %" PRId64 "), decoding with %s\n", n, ZC, c->img_h, c->img_w, o->sampler,
            so.kind == SAMPLER_DDPM ? ck.T : so.steps, so.guided ? ", guided: x2" : "", path,
            ck.step, LF.ae);
    for (int first = 0; first < n; first += chunk) {
        int B = n - first < chunk ? n - first : chunk;
        so.trajectory = first == 0 ? traj : NULL;
        so.frames = frames;
        sample_loop(z + (size_t)first * nz, m, &s, label + first, B, &so, &rng, 1);
        if (first == 0 && traj) {  // every frame's latents decoded: (2, frames, B, images)
            int F = 2 * frames * B;
            real *pics = xmalloc((size_t)F * img * sizeof(real));
            for (size_t i = 0; i < (size_t)F * nz; i++) traj[i] = (real)(traj[i] / ae->scale);
            ae_decode_all(ae, pics, traj, F);
            Config ic = {ac->img_c, ac->size, ac->size, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
            write_trajectory(o->trajectory, pics, frames, B, &ic);
            free(pics);
        }
    }
    double t_diffusion = now_seconds() - t0;
    for (size_t i = 0; i < (size_t)n * nz; i++) z[i] = (real)(z[i] / ae->scale);  // z / s -> z
    ae_decode_all(ae, x, z, n);
    double secs = now_seconds() - t0;
    const char *out = o->out ? o->out : "samples.png";
    write_image_grid(out, x, n, cols, ac->img_c, ac->size, ac->size, 3);
    printf("wrote %s: %d samples in %.1f s (%.1f s diffusion, %.1f s decoding)\n", out, n, secs,
           t_diffusion, secs - t_diffusion);
    for (int k = 0; per_class && k < K; k++) {
        printf("  row %d: ", k + 1);
        fputs_escaped(m->class_names[k], stdout);
        putchar('\n');
    }
    if (traj)
        printf("wrote %s: noise (left) to image (right) at 11 moments, decoded; under each x_t "
               "row, the decoded x0_hat (eq. 2)\n", o->trajectory);
    free_all(4, z, x, label, traj);
    schedule_free(&s);
    model_free(m);
    ae_free(ae);
    return 0;
}

// ---- latent recon: images beside their reconstructions ------------------------------------------
// The first --n images of --data (from --index), encoded (mu) and decoded: a grid of pairs, image
// then reconstruction; --recon-only: the reconstructions alone, as sample lays out a grid (for
// notes/score.py). Prints the mean |x - x_hat|, the mean (x - x_hat)^2 and the PSNR over them.
static int cmd_recon(const Options *o) {
    if (!LF.ae) die_usage("--ae", "required: the autoencoder to test");
    AE *ae = ae_load_for_use(LF.ae, 16);
    const AEConfig *c = &ae->cfg;
    Dataset d = options_data(o, c->img_c, c->size, stderr, 1);
    int n = o->n ? o->n : 32;
    if (o->index + n > d.n) die("--n", "%d images from %d: the data has %d", n, o->index, d.n);
    size_t img = (size_t)c->img_c * c->size * c->size;
    size_t nz = (size_t)ZC * (c->size / 4) * (c->size / 4);
    float *zf = xmalloc((size_t)n * nz * sizeof(float));
    real *z = xmalloc((size_t)n * nz * sizeof(real)), *xr = xmalloc((size_t)n * img * sizeof(real));
    real *grid = xmalloc((size_t)2 * n * img * sizeof(real));
    const float *x = d.pixels + (size_t)o->index * img;
    ae_encode_all(ae, zf, x, n);
    for (size_t i = 0; i < (size_t)n * nz; i++) z[i] = zf[i];
    ae_decode_all(ae, xr, z, n);
    double l1 = 0, l2 = 0;
    for (size_t i = 0; i < (size_t)n * img; i++) {
        double e = (double)xr[i] - x[i];
        l1 += fabs(e);
        l2 += e * e;
    }
    l1 /= (double)n * img;
    l2 /= (double)n * img;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < img; k++) {
            grid[(2 * (size_t)i) * img + k] = x[(size_t)i * img + k];
            grid[(2 * (size_t)i + 1) * img + k] = xr[(size_t)i * img + k];
        }
    const char *out = o->out ? o->out : "recon.png";
    if (LF.recon_only) {
        int cols = (int)ceil(sqrt((double)n));
        write_image_grid(out, xr, n, cols, c->img_c, c->size, c->size, 3);
    } else {
        write_image_grid(out, grid, 2 * n, 16, c->img_c, c->size, c->size, 3);
    }
    // PSNR on [-1, 1] pixels: peak-to-peak 2, so 10 log10(2^2 / MSE)
    printf("wrote %s: %d %s; mean |x - x_hat| %.4f, mean (x - x_hat)^2 %.5f, PSNR %.2f dB "
           "(pixels in [-1, 1])\n", out, n, LF.recon_only ? "reconstructions"
           : "images (left of each pair) and reconstructions (right)", l1, l2,
           10 * log10(4 / l2));
    free_all(4, zf, z, xr, grid);
    dataset_free(&d);
    ae_free(ae);
    return 0;
}

// ---- latent gradcheck: every new backward against central finite differences -------------------
// As notes/check.c: dL/dv ~ (L(v + h) - L(v - h)) / 2h, h = 1e-5 in double (agreement ~1e-9; the
// 1e-6 tolerance proves the backward), 1e-2 in float (indicative, 5e-2). Error: max |analytic -
// numeric| / max |numeric| over the checked entries. Each case is a function that computes its
// loss L(vars) and, with grad != NULL, the analytic dL/dvars into grad; parameter tensors of the
// autoencoder are checked through the same function (their gradients in ae->opt.grads).
typedef struct {
    AE *ae;
    int B;
    real *vars, *R, *aux;  // the case's inputs; R: dL/dout for a layer (L = sum out R); aux: more
    size_t nvars;
    int kind;              // 0 ResBlock (e1, ch1 -> ch2), 1 reparameterisation + KL, 2 L1, 3 whole
} LCase;

static double lcase_loss(LCase *g, real *grad) {
    AE *ae = g->ae;
    const AEConfig *c = &ae->cfg;
    int B = g->B, G = c->groups;
    if (g->kind == 0) {  // L = sum e1.out R: vars = e1's input (B,ch1,S/2,S/2)
        ResBlockActs *a = &ae->a.e1, *d = &ae->da.e1;
        size_t nout = (size_t)B * a->cout * a->H * a->W;
        memcpy(a->in, g->vars, g->nvars * sizeof(real));
        ae_resblock_forward(&ae->p.e1, a, &ae->ws, G, B);
        double L = 0;
        for (size_t i = 0; i < nout; i++) L += (double)a->out[i] * g->R[i];
        if (!grad) return L;
        memset(ae->opt.grads, 0, ae->opt.n_params * sizeof(real));
        memset(ae->dacts, 0, ae->n_acts * sizeof(real));
        memcpy(d->out, g->R, nout * sizeof(real));
        ae_resblock_backward(&ae->p.e1, &ae->g.e1, a, d, &ae->ws, G, B);
        memcpy(grad, d->in, g->nvars * sizeof(real));
        return L;
    }
    if (g->kind == 1) {  // L = sum z R + R[nz] KL: vars = moments (B,2n), aux = eps (B,n)
        size_t n = g->nvars / (2 * B), nz = (size_t)B * n;
        real *z = xmalloc(nz * sizeof(real));
        double kl = reparam_forward(z, g->vars, g->aux, B, n), L = g->R[nz] * kl;
        for (size_t i = 0; i < nz; i++) L += (double)z[i] * g->R[i];
        free(z);
        if (grad) memset(grad, 0, g->nvars * sizeof(real));
        if (grad) reparam_backward(grad, g->R, g->R[nz], g->vars, g->aux, B, n);
        return L;
    }
    if (g->kind == 2) {  // L = mean |xhat - x|: vars = xhat, aux = x (kept >= 0.1 away)
        if (grad) memset(grad, 0, g->nvars * sizeof(real));
        if (grad) l1_backward(grad, g->vars, g->aux, g->nvars);
        return l1_forward(g->vars, g->aux, g->nvars);
    }
    // the whole loss with a fixed eps (ae->a.eps), a KL weight large enough to matter (0.1), and a
    // target away from xhat; vars = x (its gradient is not computed: the parameters are checked)
    double rec, kl;
    if (!grad) return ae_loss(ae, g->vars, g->aux, B, 0.1, NULL, &rec, &kl);
    return ae_loss_and_grad(ae, g->vars, g->aux, B, 0.1, NULL, &rec, &kl);
}

// Central differences on up to max_checks entries of v (n values) against analytic[]; raises
// *max_num to the largest |numeric|. Returns the max |analytic - numeric|.
static double lcase_compare(LCase *g, real *v, const real *analytic, size_t n, size_t max_checks,
                            double *max_num) {
    double h = sizeof(real) == sizeof(double) ? 1e-5 : 1e-2, max_err = 0;
    size_t stride = n > max_checks ? n / max_checks : 1;
    for (size_t i = 0; i < n; i += stride) {
        real saved = v[i];
        v[i] = (real)(saved + h);
        double lp = lcase_loss(g, NULL);
        v[i] = (real)(saved - h);
        double lm = lcase_loss(g, NULL);
        v[i] = saved;
        double num = (lp - lm) / (2 * h), e = fabs(num - analytic[i]);
        max_err = isnan(e) || e > max_err ? e : max_err;
        *max_num = fmax(*max_num, fabs(num));
    }
    return max_err;
}

static int cmd_gradcheck(const Options *o) {
    int is_double = sizeof(real) == sizeof(double);
    double tol = is_double ? 1e-6 : 5e-2;
    Rng rng = {o->seed};
    printf("# latent gradcheck: hand-written backward vs central finite differences, %s build "
           "(h = %g)\n", is_double ? "double (-DDOUBLE)" : "float", is_double ? 1e-5 : 1e-2);
    printf("# relative error = max|analytic - numeric| / max|numeric|; tolerance %.0e%s\n", tol,
           is_double ? "" : " (float: indicative; -DDOUBLE proves)");
    AEConfig c = {3, 8, 8, 16, 4};  // colour 8x8 -> 2x2x4, widths 8/16, 4 groups
    int B = 2, failures = 0;
    AE *ae = ae_create(&c, B, 1);
    params_init(&ae->opt, &rng, 1);  // test = 1: every tensor random, GroupNorm gains near 1
    size_t img = (size_t)c.img_c * c.size * c.size, n4 = (size_t)ZC * (c.size / 4) * (c.size / 4);
    struct {
        const char *name, *params;  // the parameters checked too: names with this prefix
        size_t nvars, nr;
    } rows[] = {
        {"resblock, no time embedding (e1)", "e1.", (size_t)B * c.ch1 * 16,
         (size_t)B * c.ch2 * 16},
        {"reparameterisation + KL", NULL, (size_t)B * 2 * n4, (size_t)B * n4 + 1},
        {"L1 reconstruction loss", NULL, (size_t)B * img, 0},
        {"whole autoencoder loss (params)", "", (size_t)B * img, 0},
    };
    printf("%-36s %12s %12s  %s\n", "layer", "max abs err", "max rel err", "result");
    for (int r = 0; r < 4; r++) {
        LCase g = {.ae = ae, .B = B, .kind = r, .nvars = rows[r].nvars};
        g.vars = random_array(g.nvars, &rng);
        g.R = rows[r].nr ? random_array(rows[r].nr, &rng) : NULL;
        g.aux = xcalloc(g.nvars, sizeof(real));
        rng_normal_fill(&rng, g.aux, g.nvars);  // eps for the reparameterisation
        if (r == 3) rng_normal_fill(&rng, ae->a.eps, B * n4);
        if (r == 2 || r == 3) {  // targets at least 0.1 from xhat: off the L1 kink, h = 1e-2
            real *xh = g.vars;
            if (r == 3) {
                lcase_loss(&g, NULL);
                xh = ae->a.xhat;
            }
            for (size_t i = 0; i < g.nvars; i++)
                g.aux[i] = xh[i] + (g.aux[i] >= 0 ? 1 : -1) * (real)(0.1 + 0.5 * rng_uniform(&rng));
        }
        real *grad = xcalloc(g.nvars, sizeof(real));
        lcase_loss(&g, grad);
        real *pgrad = xmalloc(ae->opt.n_params * sizeof(real));  // the parameters' gradients
        memcpy(pgrad, ae->opt.grads, ae->opt.n_params * sizeof(real));
        double err = 0, max_num = 0;
        if (r != 3) err = lcase_compare(&g, g.vars, grad, g.nvars, 4000, &max_num);
        for (int i = 0; rows[r].params && i < ae->opt.layout->n; i++) {
            const TensorInfo *ti = &ae->opt.layout->info[i];
            if (strncmp(ti->name, rows[r].params, strlen(rows[r].params))) continue;
            double e = lcase_compare(&g, ae->opt.params + ti->offset, pgrad + ti->offset, ti->size,
                                     r == 3 ? 8 : 64, &max_num);
            err = isnan(e) || e > err ? e : err;
        }
        double rel = err / (max_num > 0 ? max_num : 1e-30);
        int ok = rel <= tol;
        printf("%-36s %12.3e %12.3e  %s\n", rows[r].name, err, rel, ok ? "PASS" : "FAIL");
        failures += !ok;
        free_all(5, g.vars, g.R, g.aux, grad, pgrad);
    }
    printf("# %d of 4 checks failed\n", failures);
    ae_free(ae);
    return failures ? 1 : 0;
}

// ---- The command line ------------------------------------------------------------------------
static const Command latent_commands[] = {
    {"ae", cmd_ae, " --data --channels --size --max-data-mb --steps --minutes --batch --lr --seed "
     "--ckpt --resume --log --width --threads ",
     "ae [--data fashion-mnist|DIR|FILE] [--channels 1|3] [--size S] [--steps N | --minutes M]\n"
     "      [--batch 32] [--lr 5e-4] [--kl 1e-4] [--width 32] [--seed S] [--ckpt ae.ckpt] "
     "[--resume] [--log ae.csv]\n"
     "  Trains the autoencoder (L1 + KL-weighted; S x S x C -> S/4 x S/4 x 4), then measures the\n"
     "  latents' scale factor. Ctrl-C saves and stops. Default: 10 minutes."},
    {"train", cmd_latent_train, " --data --steps --minutes --batch --lr --seed --schedule --T "
     "--ckpt --resume --uncond --log --width --threads --size --max-data-mb --min-snr --cosine-lr ",
     "train --ae ae.ckpt [--data fashion-mnist|DIR|FILE] [--steps N | --minutes M] [--batch 64]\n"
     "      [--lr 2e-4] [--schedule S] [--T 1000] [--ckpt ldm.ckpt] [--resume] [--uncond] "
     "[--width 32] [--log ldm.csv]\n"
     "      [--min-snr G] [--cosine-lr]\n"
     "  Encodes the data once, then diffusion.c's train on the latents (class-conditional when\n"
     "  the data has classes)."},
    {"sample", cmd_latent_sample, " --ckpt --sampler --steps --eta --guidance --label --n --seed "
     "--out --trajectory --batch --threads ",
     "sample --ae ae.ckpt [--ckpt ldm.ckpt] [--sampler ddpm|ddim|sde|dpm2m] [--steps S] "
     "[--eta E] [--guidance W]\n"
     "       [--label C|NAME] [--n N] [--seed S] [--out samples.png] [--trajectory traj.png]\n"
     "  diffusion.c's samplers on the latents, decoded to images."},
    {"recon", cmd_recon, " --data --channels --size --max-data-mb --n --index --out --threads ",
     "recon --ae ae.ckpt [--data D] [--n 32] [--index I] [--out recon.png] [--recon-only]\n"
     "  Images beside their reconstructions, with the mean error and PSNR."},
    {"gradcheck", cmd_gradcheck, " --seed ",
     "gradcheck [--seed S]\n"
     "  The autoencoder's new backward passes and its whole loss vs finite differences."},
};
enum { N_LATENT_COMMANDS = sizeof latent_commands / sizeof latent_commands[0] };

int main(int argc, char **argv) {
    int k = 1;  // latent's own flags out of argv (LF); the rest to diffusion.c's parser
    for (int i = 1; i < argc; i++) {
        LF.lr_given |= !strcmp(argv[i], "--lr");
        if (!strcmp(argv[i], "--ae")) LF.ae = flag_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--kl"))
            LF.kl = parse_double("--kl", flag_value(argc, argv, &i), 0, 1e3);
        else if (!strcmp(argv[i], "--recon-only")) LF.recon_only = 1;
        else argv[k++] = argv[i];
    }
    return run_command(k, argv, latent_commands, N_LATENT_COMMANDS, "notes/latent");
}

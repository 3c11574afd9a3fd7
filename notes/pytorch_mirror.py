#!/usr/bin/env python3
"""PyTorch mirror of the diffusion.c U-Net: an optional cross-check tool.

diffusion.c does not need Python; this file plays the role llm.c's
train_gpt2.py plays: an independent implementation of the same network in
PyTorch (Debian's python3-torch, CPU), used to check the C forward/backward
pass and to give a speed yardstick. Run with /usr/bin/python3 from anywhere:

  pytorch_mirror.py ref [--out data/unet_ref.bin]  reference forward/backward
  pytorch_mirror.py bench [--threads N] [--batch 64] [--reps 10]
  pytorch_mirror.py count                          default parameter count

`ref` builds a REDUCED network (ch1=8, ch2=16, tdim=16, temb=32, groups=4),
fills every parameter with random values, and computes the loss
mean((eps - model(x_t, t, label))^2) and its gradient in float64. The C test
reads data/unet_ref.bin, builds the same reduced config from the header,
loads the float32 parameters into its flat buffer (which must use the order of
UNet.flat_order below), runs its own forward/backward on the stored x_t, t,
labels and eps, and compares its output, loss and gradients with the stored
ones; then it applies one AdamW step and the EMA update to the stored
parameters and gradients and compares the result (see adamw_reference).
Layout (little-endian):
  char magic[8] = "DCREF002"         ("DCREF001": the same without the AdamW part)
  int32 img_c, img_h, img_w, ch1, ch2, tdim, temb, groups, n_classes, cond,
        B, T, default_param_count, P
  int32 t[B], int32 labels[B]          (label n_classes = "no label")
  float32 params[P], x_t[B*C*H*W], eps[B*C*H*W], out[B*C*H*W], loss[1],
          grads[P]                     (grads: d loss / d params, flat order)
  int32 step; float64 lr, beta1, beta2, eps, weight_decay, clip, ema_decay
  float32 m[P], v[P], ema[P]           (the optimizer's state before the step)
  float32 params[P], m[P], v[P], ema[P], grad_norm[1]   (after the step)
The float32 params/x_t/eps are exactly the values the float64 run used.
"""
import argparse, ctypes, math, os, statistics, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = dict(img_c=1, img_h=28, img_w=28, ch1=32, ch2=64, tdim=32, temb=128,
               groups=8, n_classes=10, cond=1)
REDUCED = dict(DEFAULT, ch1=8, ch2=16, tdim=16, temb=32, groups=4)
DEFAULT_PARAMS = 795105


def wb(m):
    """Weight then bias of a Conv2d / Linear / GroupNorm."""
    return [m.weight, m.bias]


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, groups):
        super().__init__()
        self.gn1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_lin = nn.Linear(temb, cout)
        self.gn2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def flat_order(self):
        mods = [self.gn1, self.conv1, self.temb_lin, self.gn2, self.conv2]
        return [p for m in mods + ([self.skip] if self.skip else []) for p in wb(m)]

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.gn1(x)))
        h = h + self.temb_lin(F.silu(temb))[:, :, None, None]  # per-channel time shift
        h = self.conv2(F.silu(self.gn2(h)))
        return h + (self.skip(x) if self.skip else x)


class Attention(nn.Module):
    """Single-head self-attention over the H*W positions, residual."""
    def __init__(self, c, groups):
        super().__init__()
        self.gn = nn.GroupNorm(groups, c, eps=1e-5)
        self.q, self.k, self.v, self.proj = (nn.Conv2d(c, c, 1) for _ in range(4))

    def flat_order(self):
        return [p for m in (self.gn, self.q, self.k, self.v, self.proj) for p in wb(m)]

    def forward(self, h):
        B, C, H, W = h.shape
        n = self.gn(h)
        q, k, v = (f(n).reshape(B, C, H * W) for f in (self.q, self.k, self.v))
        S = torch.einsum("bci,bcj->bij", q, k) / math.sqrt(C)  # S[i,j] = q_i . k_j / sqrt(C)
        P = torch.softmax(S, dim=-1)                             # normalise over keys j
        o = torch.einsum("bij,bcj->bci", P, v).reshape(B, C, H, W)
        return h + self.proj(o)


class UNet(nn.Module):
    def __init__(self, img_c, img_h, img_w, ch1, ch2, tdim, temb, groups, n_classes, cond):
        super().__init__()
        self.tdim, self.cond = tdim, cond
        self.time_lin1, self.time_lin2 = nn.Linear(tdim, temb), nn.Linear(temb, temb)
        if cond:  # row n_classes is the "no label" (classifier-free guidance) row
            self.class_table = nn.Embedding(n_classes + 1, temb)
        self.conv_in = nn.Conv2d(img_c, ch1, 3, padding=1)
        R = lambda cin, cout: ResBlock(cin, cout, temb, groups)
        conv3 = lambda c, stride=1: nn.Conv2d(c, c, 3, stride=stride, padding=1)
        self.d0, self.ds0 = R(ch1, ch1), conv3(ch1, 2)   # 28 -> 14
        self.d1, self.ds1 = R(ch1, ch2), conv3(ch2, 2)   # 14 -> 7
        self.d2 = R(ch2, ch2)
        self.m0, self.attn, self.m1 = R(ch2, ch2), Attention(ch2, groups), R(ch2, ch2)
        self.u0, self.us0 = R(2 * ch2, ch2), conv3(ch2)  # 7 -> 14
        self.u1, self.us1 = R(2 * ch2, ch2), conv3(ch2)  # 14 -> 28
        self.u2 = R(ch2 + ch1, ch1)
        self.out_gn, self.out_conv = nn.GroupNorm(groups, ch1, eps=1e-5), nn.Conv2d(ch1, img_c, 3, padding=1)

    def flat_order(self):
        """The C program's flat parameter buffer, tensor by tensor (explicit)."""
        order = wb(self.time_lin1) + wb(self.time_lin2)
        order += [self.class_table.weight] if self.cond else []
        order += wb(self.conv_in)
        for name in ["d0", "ds0", "d1", "ds1", "d2", "m0", "attn", "m1",
                     "u0", "us0", "u1", "us1", "u2"]:
            m = getattr(self, name)
            order += m.flat_order() if hasattr(m, "flat_order") else wb(m)
        return order + wb(self.out_gn) + wb(self.out_conv)

    def time_embedding(self, t, labels):
        half = self.tdim // 2
        i = torch.arange(half, dtype=self.time_lin1.weight.dtype)
        f = torch.exp(-math.log(10000.0) * i / half)
        arg = t.to(f.dtype)[:, None] * f[None, :]
        emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)  # sin half first
        temb = self.time_lin2(F.silu(self.time_lin1(emb)))
        if self.cond:
            temb = temb + self.class_table(labels.long())
        return temb

    def forward(self, x, t, labels):
        te = self.time_embedding(t, labels)
        h = self.conv_in(x)
        d0 = self.d0(h, te)
        d1 = self.d1(self.ds0(d0), te)
        d2 = self.d2(self.ds1(d1), te)
        h = self.m1(self.attn(self.m0(d2, te)), te)
        h = self.u0(torch.cat([h, d2], dim=1), te)
        h = self.us0(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.u1(torch.cat([h, d1], dim=1), te)
        h = self.us1(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.u2(torch.cat([h, d0], dim=1), te)
        return self.out_conv(F.silu(self.out_gn(h)))


def param_count(model):
    order = model.flat_order()
    # the explicit order must cover every parameter exactly once
    assert len({id(p) for p in order}) == len(order) == len(list(model.parameters()))
    return sum(p.numel() for p in order)


def flatten(model, grads=False):
    """Parameters (or their gradients) as one float32 array in flat order."""
    ts = [p.grad if grads else p for p in model.flat_order()]
    a = np.concatenate([x.detach().reshape(-1).to(torch.float32).numpy() for x in ts])
    assert a.size == param_count(model)
    return a


def unflatten(model, a):
    """Load a flat float array (C layout) into the model's parameters."""
    assert a.size == param_count(model)
    off = 0
    with torch.no_grad():
        for p in model.flat_order():
            p.copy_(torch.from_numpy(np.asarray(a[off:off + p.numel()])).reshape(p.shape))
            off += p.numel()


def init_random(model):
    """Random values everywhere (no zeros, no identities) so all gradients flow."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                bound = 1.0 / math.sqrt(m.weight[0].numel())  # fan_in = in * kh * kw
                m.weight.uniform_(-bound, bound)
                m.bias.uniform_(-bound, bound)
            elif isinstance(m, nn.GroupNorm):
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
            elif isinstance(m, nn.Embedding):
                m.weight.normal_()


def adamw_reference(model, params, grads):
    """One training step after the gradient: torch's clip_grad_norm_ and AdamW, then the EMA of
    the weights with diffusion.c's warm-up, decay min(ema_decay, (1 + step)/(10 + step)). It
    starts from a random optimizer state at step 5 (moments of the gradient's scale, an EMA near
    the weights) so that every term counts: the moments' decay, the bias corrections
    1 - beta^step, the decoupled weight decay (0.1 here), the clipping (the clip is set to half the
    gradient's norm) and the warm-up (decay 0.4 at step 5). The step is taken from the float32
    gradients stored in the file, as the C side takes it. Returns the bytes of the file's part."""
    step, lr, beta1, beta2, eps, wd, ema_decay = 5, 1e-2, 0.9, 0.999, 1e-8, 0.1, 0.999
    g = torch.from_numpy(grads.astype(np.float64))
    norm = g.norm().item()
    clip = 0.5 * norm
    gen = torch.Generator().manual_seed(99)
    rand = lambda: torch.rand(g.shape, generator=gen, dtype=torch.float64)
    m0 = (g * (2 * rand() - 1)).float().double()  # float32 values: the file holds them so
    v0 = (g * g * (0.5 + 1.5 * rand())).float().double()
    p0 = torch.from_numpy(params.astype(np.float64))
    ema0 = (p0 + 0.01 * (2 * rand() - 1)).float().double()
    p = torch.nn.Parameter(p0.clone())
    p.grad = g.clone()
    got = torch.nn.utils.clip_grad_norm_([p], clip).item()
    opt = torch.optim.AdamW([p], lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=wd)
    opt.state[p] = {"step": torch.tensor(float(step - 1)), "exp_avg": m0.clone(),
                    "exp_avg_sq": v0.clone()}
    opt.step()
    st = opt.state[p]
    assert st["step"].item() == step and abs(got - norm) <= 1e-9 * norm
    decay = min(ema_decay, (1 + step) / (10 + step))
    ema1 = decay * ema0 + (1 - decay) * p.detach()
    f32 = lambda x: np.asarray(x, dtype="<f4").tobytes()
    print(f"AdamW step {step}: grad norm {norm:.6f} clipped to {clip:.6f}, "
          f"max|update| {(p.detach() - p0).abs().max().item():.3e}, EMA decay {decay:.3f}")
    return (np.array([step], dtype="<i4").tobytes()
            + np.array([lr, beta1, beta2, eps, wd, clip, ema_decay], dtype="<f8").tobytes()
            + f32(m0) + f32(v0) + f32(ema0)
            + f32(p.detach()) + f32(st["exp_avg"]) + f32(st["exp_avg_sq"]) + f32(ema1)
            + f32([norm]))


def cmd_ref(args):
    cfg, B, T = REDUCED, 4, 1000
    torch.manual_seed(1234)
    model = UNet(**cfg)  # float32: generate everything in float32 ...
    init_random(model)
    P = param_count(model)
    params = flatten(model)
    x_t = torch.randn(B, cfg["img_c"], cfg["img_h"], cfg["img_w"])
    eps = torch.randn_like(x_t)
    t = torch.tensor([1, 250, 600, 1000], dtype=torch.int32)
    labels = torch.tensor([3, 10, 0, 7], dtype=torch.int32)  # 10 = "no label" row

    model.double()  # ... then compute in float64 on exactly those values
    out = model(x_t.double(), t, labels)
    loss = F.mse_loss(out, eps.double())
    loss.backward()
    grads = flatten(model, grads=True)
    assert np.array_equal(flatten(model), params)  # float32 -> float64 -> float32 is exact

    # self-check: a fresh model loaded through unflatten gives the same output
    m2 = UNet(**cfg).double()
    unflatten(m2, params.astype(np.float64))
    with torch.no_grad():
        assert torch.equal(m2(x_t.double(), t, labels), out.detach())
    for i, p in enumerate(model.flat_order()):  # every tensor receives gradient
        assert p.grad.abs().max() > 0, f"zero gradient for flat tensor {i}"

    hdr = [cfg[k] for k in ("img_c", "img_h", "img_w", "ch1", "ch2", "tdim", "temb",
                            "groups", "n_classes", "cond")] + [B, T, DEFAULT_PARAMS, P]
    f32 = lambda x: np.asarray(x, dtype="<f4").tobytes()
    path = args.out or os.path.join(ROOT, "data", "unet_ref.bin")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"DCREF002")
        fh.write(np.array(hdr + t.tolist() + labels.tolist(), dtype="<i4").tobytes())
        fh.write(f32(params) + f32(x_t.numpy().ravel()) + f32(eps.numpy().ravel()))
        fh.write(f32(out.detach().numpy().ravel()) + f32([loss.item()]) + f32(grads))
        fh.write(adamw_reference(model, params, grads))
    print(f"wrote {path}: {os.path.getsize(path)} bytes, P={P} params")
    print(f"loss={loss.item():.10f} max|out|={out.abs().max().item():.6f} "
          f"max|grad|={np.abs(grads).max():.6e}")
    print(f"exactly-zero grads: {(grads == 0).sum()}/{P} "
          f"(class-table rows not in labels: {cfg['n_classes'] + 1 - len(set(labels.tolist()))} x temb)")


def cmd_bench(args):
    # glibc: keep big buffers on the heap instead of mmap/munmap-ing them every step
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
    libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg, B = DEFAULT, args.batch
    model = UNet(**cfg)
    init_random(model)
    assert param_count(model) == DEFAULT_PARAMS
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.999), weight_decay=0.0)
    ema = [p.detach().clone() for p in params]
    decay = 0.999

    def batch():
        x = torch.randn(B, cfg["img_c"], cfg["img_h"], cfg["img_w"])
        t = torch.randint(1, 1001, (B,), dtype=torch.int32)
        y = torch.randint(0, cfg["n_classes"] + 1, (B,), dtype=torch.int32)  # incl. "no label"
        return x, t, y, torch.randn_like(x)

    def train_step(x, t, y, eps):
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(x, t, y), eps).backward()
        opt.step()
        with torch.no_grad():  # ema = decay * ema + (1 - decay) * param
            torch._foreach_mul_(ema, decay)
            torch._foreach_add_(ema, params, alpha=1 - decay)

    def fwd(x, t, y, eps):
        with torch.no_grad():
            model(x, t, y)

    def timeit(fn):
        times = []
        for i in range(3 + args.reps):  # 3 warm-up iterations
            data = batch()
            t0 = time.perf_counter()
            fn(*data)
            if i >= 3:
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    tr, fw = timeit(train_step), timeit(fwd)
    print(f"# default config, float32, CPU, {torch.get_num_threads()} thread(s), batch {B}, "
          f"median of {args.reps} reps after 3 warm-up")
    print(f"# train step (fwd+loss+bwd+AdamW+EMA): {tr * 1e3:.1f} ms   no_grad forward: {fw * 1e3:.1f} ms")
    print(f"pytorch threads={args.threads} batch={B} train_img_s={B / tr:.1f} "
          f"fwd_img_s={B / fw:.1f} params={DEFAULT_PARAMS} torch={torch.__version__}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("ref")
    r.add_argument("--out", default=None)
    b = sub.add_parser("bench")
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--batch", type=int, default=64)
    b.add_argument("--reps", type=int, default=10)
    sub.add_parser("count")
    args = ap.parse_args()
    if args.cmd == "count":
        n = param_count(UNet(**DEFAULT))
        assert n == DEFAULT_PARAMS, n
        print(n)
    else:
        {"ref": cmd_ref, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

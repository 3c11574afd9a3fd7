#!/usr/bin/env python3
"""PyTorch mirror of the diffusion.c U-Net: cross-checks, and the bridge to PyTorch.

diffusion.c does not need Python; this file plays the role llm.c's
train_gpt2.py plays: an independent implementation of the same network in
PyTorch (Debian's python3-torch), used to check the C forward/backward pass,
to give a speed yardstick, and to take a model to where one machine's cores
are not enough (notes/pytorch.md). Run with /usr/bin/python3 from anywhere:

  pytorch_mirror.py ref [--out data/unet_ref.bin]  reference forward/backward
  pytorch_mirror.py ref --text                     the same for a text model (cross-attention):
                                                   data/unet_text_ref.bin
  pytorch_mirror.py bench [--threads N] [--batch 64] [--reps 10]
  pytorch_mirror.py count                          default parameter count
  pytorch_mirror.py show --ckpt F                  a checkpoint's header, finite?
  pytorch_mirror.py copy --ckpt F --out G [--slim] F -> PyTorch -> G (same bytes)
  pytorch_mirror.py agree --ckpt F --bridge B      eps_theta and one training
                    step against diffusion.c's (B: notes/torch_bridge.c, built)
  torchrun --nproc_per_node N pytorch_mirror.py train --data fashion-mnist
      --ckpt model.ckpt [--resume] [--steps S | --minutes M] [--batch 64]
      [--device cpu|cuda] [--log loss.csv] [--width 32] [--threads T] [--text]
                    `./diffusion train` on N processes (DistributedDataParallel:
                    gloo on CPU, NCCL on CUDA); also runs without torchrun

Checkpoints are diffusion.c's own files, read and written by the layout of
checkpoint_save (every format version; version 1 is written back as 2, as
diffusion.c does; text models, `train --text`, are version 3 with their
vocabulary): ./diffusion sample, info, export, train --resume and the
browser page read what `train` and `copy` write.

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
"DCREF003" (ref --text, REDUCED_TEXT): the same with int32 text, vocab, max_tokens after P, and
after the labels each label's prompt (TEXT_PROMPTS): int32 tokens[(n_classes + 1) * max_tokens],
int32 len[n_classes + 1] (label n_classes: the empty prompt, the start token alone).
"""
import argparse, ctypes, gzip, math, os, re, signal, statistics, struct, subprocess, sys, time
import warnings, zlib
import numpy as np
import torch
import torch.nn as nn
import torch.distributed as dist
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = dict(img_c=1, img_h=28, img_w=28, ch1=32, ch2=64, tdim=32, temb=128,
               groups=8, n_classes=10, cond=1)
REDUCED = dict(DEFAULT, ch1=8, ch2=16, tdim=16, temb=32, groups=4)
# The text reference (ref --text): 3 classes, 6 tokens, prompts of up to 4 (the start token + 3)
REDUCED_TEXT = dict(REDUCED, n_classes=3, text=1, vocab=6, max_tokens=4)
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


class CrossAttention(nn.Module):
    """The image's positions attend to the prompt's tokens e (B,L,D), residual (diffusion.c's
    cross_attention_forward): q = Wq GN(x) (B,C,N), k = Wk e + bk, v = Wv e + bv (B,L,C),
    p_i = softmax over j < len of q_i . k_j / sqrt(C) (padding: p = 0), out = x + proj(p v)."""
    def __init__(self, c, d, groups):
        super().__init__()
        self.gn = nn.GroupNorm(groups, c, eps=1e-5)
        self.q, self.proj = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.k, self.v = nn.Linear(d, c), nn.Linear(d, c)

    def flat_order(self):
        return [p for m in (self.gn, self.q, self.k, self.v, self.proj) for p in wb(m)]

    def forward(self, h, e, length):
        B, C, H, W = h.shape
        q = self.q(self.gn(h)).reshape(B, C, H * W)
        k, v = self.k(e), self.v(e)
        S = torch.einsum("bci,bjc->bij", q, k) / math.sqrt(C)      # (B,N,L)
        pad = torch.arange(e.shape[1], device=e.device)[None, :] >= length[:, None]  # (B,L)
        P = torch.softmax(S.masked_fill(pad[:, None, :], -math.inf), dim=-1)  # padding: p = 0
        o = torch.einsum("bij,bjc->bci", P, v).reshape(B, C, H, W)
        return h + self.proj(o)


class UNet(nn.Module):
    def __init__(self, img_c, img_h, img_w, ch1, ch2, tdim, temb, groups, n_classes, cond,
                 text=0, vocab=0, max_tokens=0):
        super().__init__()
        self.tdim, self.cond, self.text = tdim, cond, text
        self.time_lin1, self.time_lin2 = nn.Linear(tdim, temb), nn.Linear(temb, temb)
        if cond and not text:  # row n_classes is the "no label" (classifier-free guidance) row
            self.class_table = nn.Embedding(n_classes + 1, temb)
        self.conv_in = nn.Conv2d(img_c, ch1, 3, padding=1)
        R = lambda cin, cout: ResBlock(cin, cout, temb, groups)
        conv3 = lambda c, stride=1: nn.Conv2d(c, c, 3, stride=stride, padding=1)
        self.d0, self.ds0 = R(ch1, ch1), conv3(ch1, 2)   # 28 -> 14
        self.d1, self.ds1 = R(ch1, ch2), conv3(ch2, 2)   # 14 -> 7
        self.d2 = R(ch2, ch2)
        self.m0, self.attn, self.m1 = R(ch2, ch2), Attention(ch2, groups), R(ch2, ch2)
        if text:  # cross-attention on the prompt's token vectors e_j = tok[token_j] + pos[j]
            self.xattn = CrossAttention(ch2, ch2, groups)
            self.tok_table, self.pos_table = nn.Embedding(vocab, ch2), nn.Embedding(max_tokens, ch2)
            # each label's prompt (row n_classes: the empty one, the start token alone);
            # set_prompts fills them from the checkpoint's class names and vocabulary
            self.register_buffer("prompt_tokens", torch.zeros(n_classes + 1, max_tokens,
                                                              dtype=torch.long))
            self.register_buffer("prompt_len", torch.ones(n_classes + 1, dtype=torch.long))
        self.u0, self.us0 = R(2 * ch2, ch2), conv3(ch2)  # 7 -> 14
        self.u1, self.us1 = R(2 * ch2, ch2), conv3(ch2)  # 14 -> 28
        self.u2 = R(ch2 + ch1, ch1)
        self.out_gn = nn.GroupNorm(groups, ch1, eps=1e-5)
        self.out_conv = nn.Conv2d(ch1, img_c, 3, padding=1)

    def flat_order(self):
        """The C program's flat parameter buffer, tensor by tensor (explicit)."""
        order = wb(self.time_lin1) + wb(self.time_lin2)
        order += [self.class_table.weight] if self.cond and not self.text else []
        order += wb(self.conv_in)
        for name in ["d0", "ds0", "d1", "ds1", "d2", "m0", "attn", "m1",
                     "u0", "us0", "u1", "us1", "u2"]:
            if name == "m1" and self.text:
                order += self.xattn.flat_order() + [self.tok_table.weight, self.pos_table.weight]
            m = getattr(self, name)
            order += m.flat_order() if hasattr(m, "flat_order") else wb(m)
        return order + wb(self.out_gn) + wb(self.out_conv)

    def set_prompts(self, tokens, lengths):
        """tokens (n_classes + 1, max_tokens), lengths (n_classes + 1): each label's prompt."""
        self.prompt_tokens.copy_(torch.as_tensor(tokens))
        self.prompt_len.copy_(torch.as_tensor(lengths))

    def token_vectors(self, labels):
        """Each image's prompt (its label's): e (B,L,D) = tok_table[token] + pos_table, len (B)."""
        tokens, length = self.prompt_tokens[labels.long()], self.prompt_len[labels.long()]
        return self.tok_table(tokens) + self.pos_table.weight[None], length

    def time_embedding(self, t, labels):
        # In float64, then rounded, as diffusion.c's sinusoid_forward does: in float32, t f at
        # t = 1000 would carry an error of ~6e-5, a hundred times the rest of the network's.
        half, dtype = self.tdim // 2, self.time_lin1.weight.dtype
        i = torch.arange(half, dtype=torch.float64, device=t.device)
        f = torch.exp(-math.log(10000.0) * i / half)
        arg = t.to(torch.float64)[:, None] * f[None, :]
        emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1).to(dtype)  # sin half first
        temb = self.time_lin2(F.silu(self.time_lin1(emb)))
        if self.cond and not self.text:
            temb = temb + self.class_table(labels.long())
        return temb

    def forward(self, x, t, labels):
        te = self.time_embedding(t, labels)
        h = self.conv_in(x)
        d0 = self.d0(h, te)
        d1 = self.d1(self.ds0(d0), te)
        d2 = self.d2(self.ds1(d1), te)
        h = self.attn(self.m0(d2, te))
        if self.text:
            h = self.xattn(h, *self.token_vectors(labels))
        h = self.m1(h, te)
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


# ==== The bridge: diffusion.c checkpoints read and written, training with torchrun ===========

def die(what, why):
    """diffusion.c's error style: one line 'pytorch_mirror.py: <what>: <why>', exit 1."""
    sys.stderr.write(f"pytorch_mirror.py: {what}: {why}\n")
    sys.exit(1)


# ---- The checkpoint file (diffusion.c PART II: CkptHeader, checkpoint_save, checkpoint_load) --
# Little-endian, no padding: the 96-byte header
#   char magic[8] "DIFFUSNC"; int32 version, real_size; int32 config[10] (CONFIG_KEYS order);
#   int32 schedule, T; int64 step; uint64 rng_state, n_params; int32 has_optimizer, batch
# then (version 3, text models only) int32 text, vocab, max_tokens, 0; real params[P], ema[P],
# and when has_optimizer adam_m[P], adam_v[P]; in version 2 and 3 and class-conditional,
# n_classes names of 64 bytes each ending in NUL (version 1 had none: its classes were
# Fashion-MNIST's); in version 3 the vocabulary, vocab words of 64 bytes (word 0 "<start>");
# last a CRC-32 (zlib's, the gzip one) of all bytes before it.
HEADER = struct.Struct("<8s2i10i2iqQQ2i")
TEXT = struct.Struct("<4i")
CONFIG_KEYS = ("img_c", "img_h", "img_w", "ch1", "ch2", "tdim", "temb", "groups", "n_classes",
               "cond")
TEXT_KEYS = ("text", "vocab", "max_tokens")  # zero in a model without text
SCHEDULES = ("linear", "cosine", "sde")
NAME_BYTES, MAX_FILE_BYTES, MAX_PROMPT = 64, 512 << 20, 16
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot")
assert HEADER.size == 96


def config_problem(c):
    """diffusion.c's config_check, word for word: None when the network can be built."""
    if c["img_c"] not in (1, 3, 4):  # 4: latents (notes/latent.c)
        return "image channels must be 1 (gray), 3 (RGB) or 4 (an autoencoder's latents)"
    if not all(4 <= c[k] <= 256 and c[k] % 4 == 0 for k in ("img_h", "img_w")):
        return "image height and width must be multiples of 4 in 4..256"
    g = c["groups"]
    if g < 1 or not all(1 <= c[k] <= 1024 and c[k] % g == 0 for k in ("ch1", "ch2")):
        return "channel widths must be positive multiples of the GroupNorm groups (at most 1024)"
    if not (2 <= c["tdim"] <= 4096 and c["tdim"] % 2 == 0 and 1 <= c["temb"] <= 4096):
        return "bad time-embedding sizes"
    if not (1 <= c["n_classes"] <= 1000 and c["cond"] in (0, 1)):
        return "bad class settings"
    t, V, L = (c.get(k, 0) for k in TEXT_KEYS)
    if t not in (0, 1) or (t and not (c["cond"] and 2 <= V <= 4096 and 2 <= L <= 16)):
        return "bad text settings (vocabulary 2..4096 tokens, prompts of 2..16)"
    return None


def layout(c):
    """(name, size) of every tensor in diffusion.c's flat order: params_layout, read off its
    take() calls. Sizes only, so a hostile header costs nothing before it is refused."""
    L, e = [], c["temb"]

    def conv(name, cout, cin, k):
        L.extend([(name + ".w", cout * cin * k * k), (name + ".b", cout)])

    def gn(name, ch):
        L.extend([(name + ".g", ch), (name + ".b", ch)])

    def res(name, cin, cout):
        gn(name + ".gn1", cin), conv(name + ".conv1", cout, cin, 3)
        conv(name + ".temb", cout, e, 1)
        gn(name + ".gn2", cout), conv(name + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(name + ".skip", cout, cin, 1)

    ch1, ch2, text = c["ch1"], c["ch2"], c.get("text", 0)
    conv("time1", e, c["tdim"], 1), conv("time2", e, e, 1)
    if c["cond"] and not text:
        L.append(("class_table", (c["n_classes"] + 1) * e))
    conv("conv_in", ch1, c["img_c"], 3)
    res("d0", ch1, ch1), conv("ds0", ch1, ch1, 3), res("d1", ch1, ch2), conv("ds1", ch2, ch2, 3)
    res("d2", ch2, ch2), res("m0", ch2, ch2), gn("attn.gn", ch2)
    for k in ("q", "k", "v", "proj"):
        conv("attn." + k, ch2, ch2, 1)
    if text:  # take_attention(L, "xattn", ch2, ch2): k and v read tokens of ch2
        gn("xattn.gn", ch2)
        for k in ("q", "k", "v", "proj"):
            conv("xattn." + k, ch2, ch2, 1)
        L.extend([("tok_table", c["vocab"] * ch2), ("pos_table", c["max_tokens"] * ch2)])
    res("m1", ch2, ch2), res("u0", 2 * ch2, ch2), conv("us0", ch2, ch2, 3)
    res("u1", 2 * ch2, ch2), conv("us1", ch2, ch2, 3), res("u2", ch2 + ch1, ch1)
    gn("out_gn", ch1), conv("out_conv", c["img_c"], ch1, 3)
    return L


def read_checkpoint(path):
    """A diffusion.c checkpoint of any version as a dict, refused with checkpoint_load's
    messages when anything is wrong. Arrays are numpy, float32 (or float64 from a -DDOUBLE
    build); names are the raw 64-byte fields, so that writing them back gives the same bytes."""
    try:
        with open(path, "rb") as f:
            if not os.path.isfile(path):
                die(path, "not a regular file")
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        die(path, f"cannot open: {e.strerror}")
    if len(data) > MAX_FILE_BYTES:
        die(path, "file too large for this program")
    if len(data) < HEADER.size + 4:
        die(path, f"not a diffusion.c checkpoint (too short: {len(data)} bytes)")
    f = HEADER.unpack_from(data)
    magic, version, real_size = f[:3]
    cfg = dict(zip(CONFIG_KEYS, f[3:13]), text=0, vocab=0, max_tokens=0)
    sched, T, step, rng_state, n_params, has_opt, batch = f[13:]
    at0 = HEADER.size  # where the arrays start: after version 3's text settings
    if version == 3 and len(data) >= HEADER.size + TEXT.size + 4:
        cfg.update(zip(TEXT_KEYS, TEXT.unpack_from(data, HEADER.size)[:3]))
        at0 += TEXT.size
    if magic != b"DIFFUSNC":
        die(path, "not a diffusion.c checkpoint (bad magic)")
    if version not in (1, 2, 3):
        die(path, "checkpoint format is not 1, 2 or 3")
    if (version == 3) != (cfg["text"] == 1):
        die(path, "bad text settings")
    if real_size not in (4, 8):
        die(path, "numbers are neither float nor double")
    bad = config_problem(cfg)
    if bad:
        die(path, f"bad network configuration in checkpoint: {bad}")
    if not (0 <= sched <= 2 and 1 <= T <= 100000 and step >= 0 and has_opt in (0, 1)
            and 1 <= batch <= 4096):
        die(path, "bad schedule, T, step or flags in checkpoint header")
    P = sum(n for _, n in layout(cfg))
    if n_params != P:
        die(path, "header's parameter count differs from its configuration's")
    n_names = cfg["n_classes"] if version > 1 and cfg["cond"] else 0
    n_words = cfg["vocab"] if cfg["text"] else 0
    arrays = 4 if has_opt else 2
    want = at0 + arrays * P * real_size + (n_names + n_words) * NAME_BYTES + 4
    if len(data) != want:
        die(path, f"checkpoint is {len(data)} bytes, expected {want} (truncated or corrupt)")
    if zlib.crc32(data[:-4]) != struct.unpack_from("<I", data, len(data) - 4)[0]:
        die(path, "checkpoint is corrupt (CRC-32 mismatch)")
    dtype = np.dtype("<f4" if real_size == 4 else "<f8")
    at = lambda k: np.frombuffer(data, dtype, P, at0 + k * P * real_size).copy()
    start = at0 + arrays * P * real_size
    cut = lambda i, n: [data[i + k * NAME_BYTES:i + (k + 1) * NAME_BYTES] for k in range(n)]
    names, vocab = cut(start, n_names), cut(start + n_names * NAME_BYTES, n_words)
    if any(0 not in w for w in vocab):
        die(path, "a word of the vocabulary without its terminating NUL")
    if any(0 not in nm for nm in names):
        die(path, "a class name without its terminating NUL")
    if version == 1 and cfg["cond"]:  # checkpoint_load fills in Fashion-MNIST's names
        names = [(FASHION_NAMES[k] if k < 10 else "").encode().ljust(NAME_BYTES, b"\0")
                 for k in range(cfg["n_classes"])]
    prompts = class_prompts(path, cfg, names, vocab) if cfg["text"] else None
    return dict(version=version, real_size=real_size, config=cfg, schedule=sched, T=T,
                step=step, rng_state=rng_state, batch=batch, names=names, vocab=vocab,
                prompts=prompts, params=at(0), ema=at(1),
                adam_m=at(2) if has_opt else None, adam_v=at(3) if has_opt else None)


# ---- Prompts (diffusion.c PART II, ---- Prompts: name_words, build_vocabulary, set_prompt) ---
def name_words(name):
    """A name's words (bytes, up to its NUL): split on spaces, '_', '-' and '/', ASCII
    lower-cased, at most 63 bytes each."""
    name = name.split(b"\0", 1)[0]
    return [w.lower()[:NAME_BYTES - 1] for w in re.split(rb"[ _\-/]", name) if w]


def build_vocabulary(names):
    """The start token, then every word of the names once, sorted (strcmp's byte order); and
    the longest prompt, its start token included (at least 2)."""
    words = [name_words(nm) for nm in names]
    if any(len(w) > MAX_PROMPT - 1 for w in words):
        die("--text", f"a class has more than {MAX_PROMPT - 1} words")
    vocab = [b"<start>"] + sorted({w for ws in words for w in ws})
    return vocab, max([2] + [1 + len(w) for w in words])


def class_prompts(path, cfg, names, vocab):
    """set_class_prompts: label k's prompt is its name's words as vocabulary indices after the
    start token 0, its padding 0 (masked); label n_classes is the empty prompt, length 1."""
    L, K = cfg["max_tokens"], cfg["n_classes"]
    index = {w.split(b"\0", 1)[0]: j for j, w in reversed(list(enumerate(vocab))) if j}
    tokens, lengths = np.zeros((K + 1, L), np.int64), np.ones(K + 1, np.int64)
    for k, raw in enumerate(names):
        words = name_words(raw)
        if len(words) > L - 1:
            die(path, f"'{name_of(raw)}' has more than {L - 1} words")
        for i, w in enumerate(words):
            if w not in index:
                known = ", ".join(name_of(x) for x in vocab[1:])
                die(path, f"the word '{w.decode(errors='replace')}' is not in this model's "
                          f"vocabulary ({known})")
            tokens[k, 1 + i] = index[w]
        lengths[k] = 1 + len(words)
    return tokens, lengths


def atomic_write(path, data):
    """As diffusion.c writes files: to PATH.tmp, flushed to the disk (fsync), renamed over PATH.
    rename is atomic, so a crash or Ctrl-C leaves the old file or the new one, never half of
    one. A path that exists and is not a regular file (/dev/null) is written directly."""
    direct = os.path.exists(path) and not os.path.isfile(path)
    tmp = path if direct else path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if not direct:
                os.fsync(f.fileno())
        if not direct:
            os.replace(tmp, path)
    except OSError as e:
        if not direct and os.path.exists(tmp):
            os.remove(tmp)
        die(path, f"write failed: {e.strerror}")


def write_checkpoint(path, ck):
    """checkpoint_save: format version 2, or 3 for a text model, as diffusion.c writes them
    (slim without the AdamW moments); the header's n_params comes from the configuration."""
    cfg, P = ck["config"], sum(n for _, n in layout(ck["config"]))
    slim, text = ck["adam_m"] is None, cfg.get("text", 0)
    head = HEADER.pack(b"DIFFUSNC", 3 if text else 2, ck["real_size"],
                       *[cfg[k] for k in CONFIG_KEYS], ck["schedule"], ck["T"], ck["step"],
                       ck["rng_state"], P, int(not slim), ck["batch"])
    dtype = np.dtype("<f4" if ck["real_size"] == 4 else "<f8")
    arrays = [np.ascontiguousarray(ck[k], dtype).tobytes()
              for k in ("params", "ema", "adam_m", "adam_v") if ck[k] is not None]
    for k, a in zip(("params", "ema"), arrays):
        assert len(a) == P * ck["real_size"], k
    parts = [head] + ([TEXT.pack(1, cfg["vocab"], cfg["max_tokens"], 0)] if text else []) + arrays
    parts += ck["names"] if cfg["cond"] else []
    parts += ck["vocab"] if text else []
    body = b"".join(parts)
    atomic_write(path, body + struct.pack("<I", zlib.crc32(body)))


# ---- A checkpoint in PyTorch's objects, and back --------------------------------------------
def check_layout(model, cfg):
    """The module's tensors, in flat order, must have diffusion.c's sizes one by one."""
    mine = [p.numel() for p in model.flat_order()]
    theirs = [n for _, n in layout(cfg)]
    assert mine == theirs, "the mirror's tensors differ from diffusion.c's params_layout"


def pieces(model, flat, device):
    """A flat array (C layout) cut into tensors shaped like the model's parameters."""
    out, off = [], 0
    for p in model.flat_order():
        t = torch.from_numpy(np.array(flat[off:off + p.numel()]))  # a copy: flat stays as read
        out.append(t.reshape(p.shape).to(device=device, dtype=p.dtype))
        off += p.numel()
    return out


def flat_of(tensors):
    return np.concatenate([t.detach().reshape(-1).cpu().numpy() for t in tensors])


def adamw(model, lr):
    # diffusion.c's DEFAULT_HYPER (weight decay 0: PyTorch's AdamW defaults to 0.01).
    return torch.optim.AdamW(model.flat_order(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=0.0)


def from_checkpoint(ck, device, lr=2e-4):
    """(model with ck's weights, its EMA weights as tensors, AdamW holding ck's moments)."""
    dtype = torch.float32 if ck["real_size"] == 4 else torch.float64
    model = UNet(**ck["config"]).to(dtype)
    check_layout(model, ck["config"])
    if ck["config"]["text"]:
        model.set_prompts(*ck["prompts"])
    with torch.no_grad():
        for p, v in zip(model.flat_order(), pieces(model, ck["params"], "cpu")):
            p.copy_(v)
    model.to(device)
    ema = pieces(model, ck["ema"], device)
    opt = adamw(model, lr)
    if ck["adam_m"] is not None:
        # PyTorch's AdamW counts steps per tensor; diffusion.c's bias correction uses the
        # checkpoint's step, so every tensor starts from it (float64: exact to 2^53 steps).
        for p, m, v in zip(model.flat_order(), pieces(model, ck["adam_m"], device),
                           pieces(model, ck["adam_v"], device)):
            opt.state[p] = {"step": torch.tensor(float(ck["step"]), dtype=torch.float64),
                            "exp_avg": m, "exp_avg_sq": v}
    return model, ema, opt


def to_checkpoint(ck, model, ema, opt, step, rng_state, batch):
    """ck's header and names with the state now in PyTorch; moments of 0 before any step."""
    ps = model.flat_order()
    moment = lambda k: flat_of([opt.state[p][k] if p in opt.state else torch.zeros_like(p)
                                for p in ps])
    has_opt = ck["adam_m"] is not None or bool(opt.state)
    return dict(ck, step=step, rng_state=rng_state, batch=batch, params=flat_of(ps),
                ema=flat_of(ema), adam_m=moment("exp_avg") if has_opt else None,
                adam_v=moment("exp_avg_sq") if has_opt else None)


# ---- The schedule (Step 1) and the data (Step 3), as diffusion.c computes them --------------
def schedule(kind, T):
    """sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t), t = 0..T, float64: schedule_betas and
    schedule_make's recurrences, in the same order."""
    vp = lambda u: 0.1 * u + 0.5 * (20.0 - 0.1) * u * u
    ab, omab = [1.0], [0.0]
    for t in range(1, T + 1):
        if kind == 0:
            beta = 1e-4 if T == 1 else 1e-4 + (0.02 - 1e-4) * (t - 1) / (T - 1)
        elif kind == 1:
            rf = math.cos((t / T + 0.008) / 1.008 * math.pi / 2)
            rp = math.cos(((t - 1) / T + 0.008) / 1.008 * math.pi / 2)
            beta = min(1.0 - (rf * rf) / (rp * rp), 0.999)
        else:
            beta = -math.expm1(-(vp(t / T) - vp((t - 1) / T)))
        omab.append(omab[-1] + ab[-1] * beta)
        ab.append(ab[-1] * (1.0 - beta))
    return torch.tensor(ab, dtype=torch.float64).sqrt(), torch.tensor(omab).double().sqrt()


def read_maybe_gzip(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, zlib.error) as e:
        die(path, f"cannot read: {getattr(e, 'strerror', None) or e}")


def load_data(spec):
    """Fashion-MNIST, or an idx image file (with its labels file beside it) as diffusion.c's
    load_dataset reads them: pixels byte / 127.5 - 1 in float32, (n, 1, h, w); labels or None;
    class names. Image folders are left to ./diffusion (notes/pytorch.md)."""
    d = FASHION_DIR if spec == "fashion-mnist" else spec
    images = os.path.join(d, "train-images-idx3-ubyte.gz") if os.path.isdir(d) else d
    if not os.path.isfile(images) or "idx3" not in os.path.basename(images):
        die(spec, "the mirror reads Fashion-MNIST and idx files; train on an image folder with "
                  "./diffusion (notes/pytorch.md)")
    raw = read_maybe_gzip(images)
    if len(raw) < 16 or struct.unpack_from(">I", raw)[0] != 2051:
        die(images, "not an idx image file (bad magic)")
    n, h, w = struct.unpack_from(">3I", raw, 4)
    if len(raw) != 16 + n * h * w or h != w or h % 4 or not 4 <= h <= 256:
        die(images, "truncated, or images that are not square with a side a multiple of 4")
    u8 = np.frombuffer(raw, np.uint8, n * h * w, 16).reshape(n, 1, h, w)
    pixels = u8.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    lpath = images.replace("images-idx3", "labels-idx1")
    labels, names = None, []
    if lpath != images and os.path.isfile(lpath):
        lraw = read_maybe_gzip(lpath)
        if len(lraw) != 8 + n or struct.unpack_from(">2I", lraw) != (2049, n):
            die(lpath, f"not {n} idx labels")
        labels = np.frombuffer(lraw, np.uint8, n, 8).astype(np.int64)
        if labels.max() > 9:
            die(lpath, "labels beyond 0..9")
        names = list(FASHION_NAMES) if "fashion" in images else [str(k) for k in range(10)]
    return pixels, labels, names


# ---- Random numbers: seeds drawn from the checkpoint's SplitMix64 stream ---------------------
# diffusion.c's generator is SplitMix64, whose state after k draws is state + k * GOLDEN: any
# draw can be computed directly. Step j of process r (of N) seeds its torch generator with draw
# j * N + r + 1 of the checkpoint's stream, and the checkpoint saved after J steps holds the state
# after J * N draws. So the processes draw different batches, a run resumed with the same N
# continues bit for bit as if never stopped, and ./diffusion resuming the file continues the
# same SplitMix64 stream past every draw the mirror used.
MASK, GOLDEN = (1 << 64) - 1, 0x9E3779B97F4A7C15


def splitmix_draw(state, k):
    """The k-th output (k = 1, 2, ...) of diffusion.c's rng_u64 started at `state`."""
    z = (state + k * GOLDEN) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def draw_batch(gen, pixels, labels, n_classes, sab, somab, T, b, dtype, hide=0.1):
    """Step 3 for b images, as draw_training_batch and train_step do: an image, t ~ U{1..T},
    eps ~ N(0, I), x_t in one shot (float64, then rounded), each label hidden with probability
    `hide` (row n_classes: "no label", so that guidance can use the same network)."""
    dev = pixels.device
    i = torch.randint(pixels.shape[0], (b,), generator=gen, device=dev)
    t = torch.randint(1, T + 1, (b,), generator=gen, device=dev)
    eps = torch.randn((b,) + tuple(pixels.shape[1:]), generator=gen, device=dev, dtype=dtype)
    shape = (b,) + (1,) * (pixels.dim() - 1)
    xt = (sab[t].view(shape) * pixels[i].double() + somab[t].view(shape) * eps.double()).to(dtype)
    label = labels[i] if labels is not None else torch.full((b,), n_classes, device=dev)
    drop = torch.rand(b, generator=gen, device=dev, dtype=torch.float64) < hide
    return xt, t, torch.where(drop, torch.full_like(label, n_classes), label), eps


def train_update(model, ddp, ema, opt, xt, t, label, eps, step, clip=1.0, ema_max=0.999,
                 weight=None):
    """Step 4 once, as train_step and adamw_step do: L = mean (eps - eps_theta)^2, the gradient
    (averaged over the processes by DDP), clipped to global norm 1, an AdamW step, and the EMA
    with diffusion.c's warm-up. `step` is the step being taken (1, 2, ...). weight (b,) or None:
    each image's term times its min-SNR weight, as model_loss_and_grad. Returns (L, norm)."""
    opt.zero_grad(set_to_none=True)
    if weight is None:
        loss = F.mse_loss(ddp(xt, t, label), eps)
    else:
        loss = (weight * ((ddp(xt, t, label) - eps) ** 2).flatten(1).mean(1)).mean()
    loss.backward()
    params = model.flat_order()
    # By hand rather than clip_grad_norm_, whose factor clip / (norm + 1e-6) is not C's.
    norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params)).item()
    if norm > clip:
        for p in params:
            p.grad.mul_(clip / norm)
    opt.step()
    if ema is not None:
        with torch.no_grad():
            decay = min(ema_max, (1.0 + step) / (10.0 + step))  # a short run is not mostly init
            torch._foreach_mul_(ema, decay)
            torch._foreach_add_(ema, params, alpha=1.0 - decay)
    return loss.detach(), norm


def new_checkpoint(cfg, names, seed, sched, T, batch):
    """A new model as train makes one: PyTorch's default init is diffusion.c's distribution
    (U(-1/sqrt(fan_in), 1/sqrt(fan_in)), GroupNorm 1 and 0, class and token rows N(0, 1)), and as
    there the last convolution of every residual branch, the attentions' proj and the output
    start at zero. A text model (cfg text = 1) takes its vocabulary from the class names."""
    torch.manual_seed(seed)
    model = UNet(**cfg)
    flat = flatten(model)
    off = 0
    for name, n in layout(cfg):
        if ".conv2." in name or "attn.proj." in name or "out_conv." in name:
            flat[off:off + n] = 0
        off += n
    raw = [nm.encode()[:NAME_BYTES - 1].ljust(NAME_BYTES, b"\0") for nm in names]
    vocab, prompts = [], None
    if cfg.get("text"):
        vocab = [w.ljust(NAME_BYTES, b"\0") for w in build_vocabulary(raw)[0]]
        prompts = class_prompts("--text", cfg, raw, vocab)
    return dict(version=3 if vocab else 2, real_size=4, config=cfg, schedule=sched, T=T, step=0,
                rng_state=seed, batch=batch, names=raw, vocab=vocab, prompts=prompts,
                params=flat, ema=flat.copy(), adam_m=None, adam_v=None)


def name_of(raw):
    return raw.split(b"\0", 1)[0].decode(errors="replace")


stop_requested = False


def on_signal(sig, frame):
    # Ctrl-C reaches every process (and torchrun forwards it): finish the step, save, stop.
    global stop_requested
    stop_requested = True


def cmd_train(a):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if a.threads:
        torch.set_num_threads(a.threads)
    if world > 1:  # torchrun set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
        # The 1x1 convolutions' gradients (C,C,1,1) come with other strides on the size-1
        # dimensions: the same memory layout, but DDP warns once per process. Nothing to fix.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if rank == 0 else (lambda s: None)
    pixels, labels, names = load_data(a.data)
    n, c, h, w = pixels.shape
    if a.resume:
        ck = read_checkpoint(a.ckpt)
        cfg = ck["config"]
        if ck["adam_m"] is None:
            die(a.ckpt, "has no optimizer state (an exported model): cannot resume training "
                        "from it")
        if (cfg["img_c"], cfg["img_h"], cfg["img_w"]) != (c, h, w):
            die(a.data, f"its images are {c}x{h}x{w}, the checkpoint's {cfg['img_c']}x"
                        f"{cfg['img_h']}x{cfg['img_w']}")
        theirs = [name_of(x) for x in ck["names"]]
        if cfg["cond"] and (labels is None or theirs != names):
            die(a.data, f"its classes differ from the {cfg['n_classes']} of {a.ckpt}")
    else:
        width = a.width or 32
        if width % 8:
            die("--width", "must be a multiple of 8 (the GroupNorm groups)")
        cfg = dict(img_c=c, img_h=h, img_w=w, ch1=width, ch2=2 * width, tdim=width,
                   temb=4 * width, groups=8, n_classes=10 if labels is not None else 1,
                   cond=int(labels is not None and not a.uncond), text=0, vocab=0, max_tokens=0)
        if a.text:  # train --text: prompts are the words of the class names
            if not cfg["cond"]:
                die("--text", "needs class labels (and not --uncond): their names are the prompts")
            vocab, longest = build_vocabulary([nm.encode() for nm in names])
            cfg.update(text=1, vocab=len(vocab), max_tokens=longest)
        ck = new_checkpoint(cfg, names if cfg["cond"] else [], a.seed,
                            SCHEDULES.index(a.schedule), a.T, a.batch or 64)
    B = a.batch or ck["batch"]
    if B % world:
        die("--batch", f"a batch of {B} does not split evenly over {world} processes")
    b, T, step0 = B // world, ck["T"], ck["step"]
    model, ema, opt = from_checkpoint(ck, dev, a.lr)
    ddp = model
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[local] if device == "cuda"
                                                  else None)
    dtype = next(model.parameters()).dtype
    sab, somab = (s.to(dev) for s in schedule(ck["schedule"], T))
    pixels = torch.from_numpy(pixels).to(dev)
    labels = torch.from_numpy(labels).to(dev) if labels is not None and cfg["cond"] else None
    gen = torch.Generator(device=dev)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    log = open(a.log, "a" if a.resume else "w") if a.log and rank == 0 else None
    if log and not a.resume:
        log.write("step,loss,lr,grad_norm,seconds\n")
    minutes = a.minutes if a.steps or a.minutes else 10.0
    say(f"training {sum(p.numel() for p in model.parameters())} parameters on {n} images "
        f"{c}x{h}x{w} ({a.data}), batch {B} = {world} process(es) x {b} on {device}, schedule "
        f"{SCHEDULES[ck['schedule']]} T={T}, from step {step0}")
    save = lambda s: write_checkpoint(a.ckpt, to_checkpoint(
        ck, model, ema, opt, s, (ck["rng_state"] + (s - step0) * world * GOLDEN) & MASK, B))
    start = last_print = time.perf_counter()
    step, done, smooth, last_saved = step0, 0, None, step0
    while True:
        gen.manual_seed(splitmix_draw(ck["rng_state"], done * world + rank + 1))
        xt, t, label, eps = draw_batch(gen, pixels, labels, cfg["n_classes"], sab, somab, T, b,
                                       dtype)
        weight = None
        if a.min_snr:  # min_snr_weight: min(SNR_t, G) / SNR_t, SNR_t = alpha_bar / (1 - alpha_bar)
            snr = sab[t] ** 2 / somab[t] ** 2
            weight = (torch.clamp(snr, max=a.min_snr) / snr).to(dtype)
        if a.cosine_lr:  # lr (1 + cos(pi f)) / 2 at the fraction f of the run done, as train
            f = (done / a.steps if a.steps
                 else min(1.0, (time.perf_counter() - start) / (60 * minutes)))
            for g in opt.param_groups:
                g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * f))
        loss, norm = train_update(model, ddp, ema if rank == 0 else None, opt, xt, t, label, eps,
                                  step + 1, weight=weight)
        step, done = step + 1, done + 1
        now = time.perf_counter()
        want = stop_requested or (a.steps and done >= a.steps) or (
            not a.steps and now - start >= 60 * minutes)
        # Every process must stop after the same step (a lone one would wait in the next
        # all-reduce forever): they vote, and the same all-reduce sums the losses for the log.
        vote = torch.stack([loss.double(), torch.tensor(float(want), dtype=torch.float64,
                                                        device=dev)])
        if world > 1:
            dist.all_reduce(vote)
        loss, stop = vote[0].item() / world, vote[1].item() > 0
        if not math.isfinite(loss):
            die("train", f"loss is {loss} at step {step}: stopping; the last checkpoint "
                         f"({a.ckpt}, step {last_saved}) is untouched")
        smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
        if log:
            lr = opt.param_groups[0]["lr"]
            log.write(f"{step},{loss:.6f},{lr:g},{norm:.4f},{now - start:.3f}\n")
        if now - last_print >= 10 or stop:
            last_print = now
            say(f"step {done}  loss {smooth:.4f}  {done * B / (now - start):.1f} img/s")
        if stop:
            break
        if step - last_saved >= a.save_every:
            if rank == 0:
                save(step)
            last_saved = step
    secs = time.perf_counter() - start
    if rank == 0:
        save(step)
        if log:
            log.close()
        rate = done * B / secs if secs > 0 else 0.0
        say(f"{done} steps of batch {B} in {secs:.1f} s: {rate:.1f} img/s ({world} process(es), "
            f"{torch.get_num_threads()} thread(s) each, {device})")
        if stop_requested:
            say(f"interrupted: saved {a.ckpt} at step {step}; continue with: torchrun "
                f"--nproc_per_node {world} notes/pytorch_mirror.py train --resume --ckpt {a.ckpt}")
        else:
            say(f"saved {a.ckpt} at step {step} (smoothed loss {smooth if smooth else 0:.4f})")
    if world > 1:
        dist.barrier()  # the others leave only once the checkpoint is on the disk
        dist.destroy_process_group()


def cmd_copy(a):
    """C -> PyTorch -> C: the checkpoint into the network, its EMA and AdamW, and back out."""
    ck = read_checkpoint(a.ckpt)
    model, ema, opt = from_checkpoint(ck, "cpu")
    out = to_checkpoint(ck, model, ema, opt, ck["step"], ck["rng_state"], ck["batch"])
    if a.slim:
        out.update(adam_m=None, adam_v=None)
    write_checkpoint(a.out, out)
    print(f"wrote {a.out} (format version {3 if ck['config']['text'] else 2}, step {ck['step']}, "
          f"{'with' if out['adam_m'] is not None else 'without'} optimizer state)")


def cmd_show(a):
    ck = read_checkpoint(a.ckpt)
    c = ck["config"]
    arrays = [k for k in ("params", "ema", "adam_m", "adam_v") if ck[k] is not None]
    finite = all(np.isfinite(ck[k]).all() for k in arrays)
    kind = "float" if ck["real_size"] == 4 else "double"
    print(f"{a.ckpt}: format version {ck['version']}, {kind}"
          f", {ck['params'].size} parameters, step {ck['step']}, batch {ck['batch']}, "
          f"schedule {SCHEDULES[ck['schedule']]} T={ck['T']}, "
          f"{'with' if ck['adam_m'] is not None else 'without'} optimizer state")
    print("config: " + " ".join(f"{k}={c[k]}" for k in CONFIG_KEYS + TEXT_KEYS[:c["text"] * 3]))
    if c["cond"]:
        print("classes: " + ", ".join(name_of(x) for x in ck["names"]))
    if c["text"]:  # each class's prompt as tokens: "T-shirt/top" [0 10 7 11]
        tokens, lengths = ck["prompts"]
        print(f"vocabulary ({c['vocab']} tokens): " + ", ".join(name_of(x) for x in ck["vocab"]))
        print("prompts: " + ", ".join(f"{name_of(nm)} {tokens[k, :lengths[k]].tolist()}"
                                      for k, nm in enumerate(ck["names"])))
    print(f"finite: {'yes' if finite else 'NO'} ({', '.join(arrays)}); max |param| "
          f"{np.abs(ck['params']).max():.4g}, max |ema| {np.abs(ck['ema']).max():.4g}")
    return 0 if finite else 1


def write_batch(path, xt, t, label, eps, real_size):
    """The batch file notes/torch_bridge.c reads (its header comment gives the layout)."""
    dt = "<f4" if real_size == 4 else "<f8"
    B, C, H, W = xt.shape
    ints = lambda v: np.asarray(v, "<i4").tobytes()
    with open(path, "wb") as f:
        f.write(b"DCBATCH1" + struct.pack("<5i", real_size, B, C, H, W) + ints(t) + ints(label))
        f.write(xt.numpy().astype(dt).tobytes() + eps.numpy().astype(dt).tobytes())


def run_bridge(bridge, *args):
    r = subprocess.run([bridge, *args], capture_output=True, text=True)
    if r.returncode:
        die(bridge, (r.stderr.strip() or f"exit status {r.returncode}").splitlines()[-1])
    return r.stdout


def worst(a, b):
    """max |a - b| relative to max |b|: one number for 'equal to float precision'."""
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-300))


def cmd_agree(a):
    """The mirror against diffusion.c itself (notes/torch_bridge.c) on one batch: eps_theta with
    the EMA weights, and, when the checkpoint has optimizer state, one training step."""
    ck = read_checkpoint(a.ckpt)
    cfg, T, rs = ck["config"], ck["T"], ck["real_size"]
    dtype, npdt = (torch.float32, np.float32) if rs == 4 else (torch.float64, np.float64)
    gen = torch.Generator().manual_seed(a.seed)
    shape = (cfg["img_c"], cfg["img_h"], cfg["img_w"])
    if shape == (1, 28, 28) and os.path.isdir(FASHION_DIR):
        pixels = torch.from_numpy(load_data("fashion-mnist")[0])
    else:  # no data of this shape at hand: x_0 = 0, x_t is pure scaled noise
        pixels = torch.zeros((1,) + shape)
    B = a.n
    # every noise level from t = 1 to T, and every label including "none" (row n_classes)
    t = torch.linspace(1, T, B, dtype=torch.float64).round().long()
    label = torch.arange(B) % (cfg["n_classes"] + 1) if cfg["cond"] else torch.full((B,), 0)
    x0 = pixels[torch.randint(pixels.shape[0], (B,), generator=gen)].double()
    eps = torch.randn((B,) + shape, generator=gen, dtype=torch.float64).to(dtype)
    sab, somab = schedule(ck["schedule"], T)
    xt = (sab[t].view(B, 1, 1, 1) * x0 + somab[t].view(B, 1, 1, 1) * eps.double()).to(dtype)
    tmp = a.tmp or os.path.dirname(os.path.abspath(a.ckpt))
    batch, out = os.path.join(tmp, "agree_batch.bin"), os.path.join(tmp, "agree_out.bin")
    write_batch(batch, xt, t, label, eps, rs)
    failed = 0

    model, ema, opt = from_checkpoint(ck, "cpu")
    with torch.no_grad():
        for p, e in zip(model.flat_order(), ema):  # sample with the EMA weights, as C does
            p.copy_(e)
        mine = model(xt, t, label).numpy()
        exact = model.double()(xt.double(), t, label).numpy()
    run_bridge(a.bridge, "eps", a.ckpt, batch, out)
    theirs = np.fromfile(out, npdt).reshape(mine.shape)
    e, e_c, e_py = worst(theirs, mine), worst(theirs, exact), worst(mine, exact)
    # Tolerance 1e-5 of the largest output: both sides round every sum of up to 9 (ch1 + ch2)
    # terms to float (~6e-8 each) through some 30 layers; measured: 1.5e-6 on the shipped model,
    # and the same size as either side's distance to float64. A wrong layer is off by > 1e-2.
    tol = 1e-5 if rs == 4 else 1e-12
    ok = e <= tol and np.isfinite(theirs).all()
    failed += not ok
    print(f"eps_theta on {B} images (t = 1..{T}, every label): worst |C - PyTorch| = {e:.1e} of "
          f"max |eps| {np.abs(mine).max():.3f} (to float64: C {e_c:.1e}, PyTorch {e_py:.1e}); "
          f"tolerance {tol:g}: {'PASS' if ok else 'FAIL'}")
    os.remove(out)

    if ck["adam_m"] is not None:
        model, ema, opt = from_checkpoint(ck, "cpu")
        loss, norm = train_update(model, model, ema, opt, xt, t, label, eps, ck["step"] + 1)
        mine = to_checkpoint(ck, model, ema, opt, ck["step"] + 1, ck["rng_state"], ck["batch"])
        words = run_bridge(a.bridge, "step", a.ckpt, batch, out).split()
        c_loss, c_norm = float(words[1]), float(words[3])
        theirs = read_checkpoint(out)
        os.remove(out)
        same = all(theirs[k] == mine[k] for k in ("step", "rng_state", "batch", "config",
                                                  "schedule", "T", "names"))
        # Tolerances. Loss and gradient norm: 1e-5, sums of float terms in another order
        # (measured ~1e-8; the text model's norm 6e-7). Moments m, v after the step, against their largest value: 1e-5
        # (measured ~2e-7); without clipping m would be off by (norm - 1) / norm. Weights and EMA
        # after the step, in units of lr: 0.1 lr. A gradient at float-noise level (~1e-9, where
        # sums cancel) differs between the two programs by a factor of ~2, and Adam's m / sqrt(v)
        # turns that into ~0.03 lr (measured, 0.03% of the tiny model's weights); a step without
        # bias correction moves weights by ~0.8 lr more, one without the EMA warm-up the EMA by
        # ~0.7 lr.
        lr = 2e-4
        dw = np.abs(theirs["params"] - mine["params"]) / lr
        errs = [("loss", abs(c_loss - loss.item()) / abs(c_loss), 1e-5),
                ("gradient norm", abs(c_norm - norm) / abs(c_norm), 1e-5),
                ("AdamW m", worst(theirs["adam_m"], mine["adam_m"]), 1e-5),
                ("AdamW v", worst(theirs["adam_v"], mine["adam_v"]), 1e-5),
                ("weights (lr)", dw.max(), 0.1),
                ("EMA (lr)", np.abs(theirs["ema"] - mine["ema"]).max() / lr, 0.1)]
        if rs == 8:  # a double build: everything to ~1e-12, nothing magnified beyond 1e-9
            errs = [(k, v, 1e-9) for k, v, _ in errs]
        ok = same and all(v <= tol for _, v, tol in errs)
        failed += not ok
        print(f"one training step from step {ck['step']} (gradient norm {c_norm:.3g}"
              f"{', clipped to 1' if c_norm > 1 else ''}), C vs PyTorch, worst: "
              + ", ".join(f"{k} {v:.1e} (tol {tol:g})" for k, v, tol in errs)
              + f"; {np.mean(dw <= 1e-3) * 100:.2f}% of weights within 1e-3 lr; header "
              + f"{'same' if same else 'DIFFERS'}: {'PASS' if ok else 'FAIL'}")
    os.remove(batch)
    return 1 if failed else 0


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


# The text reference's prompts, one per label: 3 words (no padding), 1 word, a word twice; label 3
# is the empty prompt (the start token alone), as for the 10% of training steps without a
# condition. Padding slots hold the start token, as in diffusion.c, and are masked.
TEXT_PROMPTS = ([[0, 1, 4, 2], [0, 3, 0, 0], [0, 5, 5, 0], [0, 0, 0, 0]], [4, 2, 3, 1])


def cmd_ref(args):
    cfg, B, T = (REDUCED_TEXT if args.text else REDUCED), 4, 1000
    torch.manual_seed(1234)
    model = UNet(**cfg)  # float32: generate everything in float32 ...
    init_random(model)
    P = param_count(model)
    params = flatten(model)
    x_t = torch.randn(B, cfg["img_c"], cfg["img_h"], cfg["img_w"])
    eps = torch.randn_like(x_t)
    t = torch.tensor([1, 250, 600, 1000], dtype=torch.int32)
    labels = torch.tensor([3, 10, 0, 7], dtype=torch.int32)  # 10 = "no label" row
    if args.text:  # every token and position in use, the empty prompt (label 3) too
        labels = torch.tensor([0, 3, 1, 2], dtype=torch.int32)
        model.set_prompts(*TEXT_PROMPTS)

    model.double()  # ... then compute in float64 on exactly those values
    out = model(x_t.double(), t, labels)
    loss = F.mse_loss(out, eps.double())
    loss.backward()
    grads = flatten(model, grads=True)
    assert np.array_equal(flatten(model), params)  # float32 -> float64 -> float32 is exact

    # self-check: a fresh model loaded through unflatten gives the same output
    m2 = UNet(**cfg).double()
    unflatten(m2, params.astype(np.float64))
    if args.text:
        m2.set_prompts(*TEXT_PROMPTS)
    with torch.no_grad():
        assert torch.equal(m2(x_t.double(), t, labels), out.detach())
    for i, p in enumerate(model.flat_order()):  # every tensor receives gradient
        assert p.grad.abs().max() > 0, f"zero gradient for flat tensor {i}"

    hdr = [cfg[k] for k in ("img_c", "img_h", "img_w", "ch1", "ch2", "tdim", "temb",
                            "groups", "n_classes", "cond")] + [B, T, DEFAULT_PARAMS, P]
    ints = hdr + t.tolist() + labels.tolist()
    if args.text:  # DCREF003: the text settings, then each label's prompt
        ints = hdr + [cfg[k] for k in TEXT_KEYS] + t.tolist() + labels.tolist()
        ints += sum(TEXT_PROMPTS[0], []) + TEXT_PROMPTS[1]
    f32 = lambda x: np.asarray(x, dtype="<f4").tobytes()
    name = "unet_text_ref.bin" if args.text else "unet_ref.bin"
    path = args.out or os.path.join(ROOT, "data", name)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"DCREF003" if args.text else b"DCREF002")
        fh.write(np.array(ints, dtype="<i4").tobytes())
        fh.write(f32(params) + f32(x_t.numpy().ravel()) + f32(eps.numpy().ravel()))
        fh.write(f32(out.detach().numpy().ravel()) + f32([loss.item()]) + f32(grads))
        fh.write(adamw_reference(model, params, grads))
    print(f"wrote {path}: {os.path.getsize(path)} bytes, P={P} params")
    print(f"loss={loss.item():.10f} max|out|={out.abs().max().item():.6f} "
          f"max|grad|={np.abs(grads).max():.6e}")
    unused = 0 if args.text else cfg['n_classes'] + 1 - len(set(labels.tolist()))
    print(f"exactly-zero grads: {(grads == 0).sum()}/{P} "
          f"(class-table rows not in labels: {unused} x temb)")


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
    print(f"# train step (fwd+loss+bwd+AdamW+EMA): {tr * 1e3:.1f} ms   "
          f"no_grad forward: {fw * 1e3:.1f} ms")
    print(f"pytorch threads={args.threads} batch={B} train_img_s={B / tr:.1f} "
          f"fwd_img_s={B / fw:.1f} params={DEFAULT_PARAMS} torch={torch.__version__}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("ref")
    r.add_argument("--out", default=None)
    r.add_argument("--text", action="store_true", help="a text model: data/unet_text_ref.bin")
    b = sub.add_parser("bench")
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--batch", type=int, default=64)
    b.add_argument("--reps", type=int, default=10)
    sub.add_parser("count")
    c = sub.add_parser("copy", help="checkpoint -> PyTorch -> checkpoint")
    c.add_argument("--ckpt", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--slim", action="store_true", help="without the AdamW moments (as export)")
    s = sub.add_parser("show", help="a checkpoint's header, classes, and whether it is finite")
    s.add_argument("--ckpt", required=True)
    g = sub.add_parser("agree", help="eps_theta and a training step against diffusion.c's")
    g.add_argument("--ckpt", default=os.path.join(ROOT, "data", "model.ckpt"))
    g.add_argument("--bridge", required=True, help="notes/torch_bridge.c, built")
    g.add_argument("--n", type=int, default=22)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--tmp", default=None, help="folder for the batch file (default: the ckpt's)")
    t = sub.add_parser("train", help="train (resume) with torchrun + DistributedDataParallel")
    t.add_argument("--data", default="fashion-mnist")
    t.add_argument("--ckpt", default="model.ckpt")
    t.add_argument("--resume", action="store_true")
    t.add_argument("--steps", type=int, default=0, help="steps in this run (0: --minutes)")
    t.add_argument("--minutes", type=float, default=0, help="wall-clock budget (default 10)")
    t.add_argument("--batch", type=int, default=0, help="global batch (default: the ckpt's, 64)")
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--min-snr", type=float, default=0, help="min-SNR weighting, G (0: none)")
    t.add_argument("--cosine-lr", action="store_true", help="lr decays as (1 + cos(pi f)) / 2")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--schedule", choices=SCHEDULES, default="linear")
    t.add_argument("--T", type=int, default=1000)
    t.add_argument("--width", type=int, default=0)
    t.add_argument("--uncond", action="store_true")
    t.add_argument("--text", action="store_true", help="on the words of the class names")
    t.add_argument("--log", default=None)
    t.add_argument("--save-every", type=int, default=500)
    t.add_argument("--device", choices=("cpu", "cuda"), default=None)
    t.add_argument("--threads", type=int, default=0, help="torch threads per process")
    args = ap.parse_args()
    if args.cmd == "count":
        n = param_count(UNet(**DEFAULT))
        assert n == DEFAULT_PARAMS, n
        print(n)
        return 0
    run = {"ref": cmd_ref, "bench": cmd_bench, "copy": cmd_copy, "show": cmd_show,
           "agree": cmd_agree, "train": cmd_train}
    return run[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Score samples of diffusion.c against the 10,000 Fashion-MNIST test images (what each number means: notes/score.md).
usage:
  /usr/bin/python3 notes/score.py GRID.png [GRID2.png ...]   grids written by ./diffusion sample (pooled into one set)
  /usr/bin/python3 notes/score.py DIR                        every *.png in DIR: grids, or single 28x28 (or scaled) images
  /usr/bin/python3 notes/score.py --real-train [--n N]       calibration: N training images as the samples (the floor)
  /usr/bin/python3 notes/score.py --real-test-noise S [--n N]  N test images + Gaussian noise of std S ([-1, 1] units)
  /usr/bin/python3 notes/score.py --real-test-blur [--n N]   N test images blurred (Gaussian, sigma 1 pixel)
  /usr/bin/python3 notes/score.py --random [--n N]           N images of uniform random bytes (the ceiling)
  /usr/bin/python3 notes/score.py calibrate                  the calibration table of notes/score.md (a few minutes)
options: --scale S, --cols C (grid layout; inferred when absent), --k 3 (precision/recall), --seed 0, --threads 1,
         --dry-run (read the inputs, print what was found, score nothing).
Uses data/fmnist_classifier.bin (written by notes/score_classifier.py; never trains), numpy and python3-torch; Pillow
reads the PNGs when installed, else a small zlib PNG reader below. A malformed input: one line
"score.py: FILE: what is wrong" on stderr, exit status 2.
"""
import os
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
import argparse, math, struct, sys, time, zlib
try:
    import numpy as np
except ImportError:
    sys.exit(f"score.py: {sys.executable} cannot import numpy: install Debian's python3-numpy, run /usr/bin/python3")

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS = os.path.join(HERE, "..", "data", "fmnist_classifier.bin")
SIDE, GAP, MAX_SCALE = 28, 2, 16  # write_image_grid in diffusion.c: 28x28 tiles, each pixel scale x scale, 2-pixel gaps
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


class BadInput(Exception):
    def __init__(self, path, what):
        super().__init__(what)
        self.path, self.what = path, what


# ---- reading PNGs ---------------------------------------------------------------------------------------------
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def unfilter(raw, h, stride, bpp):
    """Undo the PNG row filters (PNG spec, section 9: None, Sub, Up, Average, Paeth) -> uint8 (h, stride)."""
    out = np.zeros((h + 1, stride), np.uint8)  # row 0: the zero row above the image
    for y in range(h):
        ft, row, up = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1), out[y]
        if ft == 0:
            out[y + 1] = row
        elif ft == 1:  # Sub: a running sum mod 256 along each of the bpp interleaved byte lanes
            pad = (-stride) % bpp
            r = np.concatenate([row, np.zeros(pad, np.uint8)]).reshape(-1, bpp).astype(np.int64)
            out[y + 1] = (np.cumsum(r, 0) % 256).astype(np.uint8).reshape(-1)[:stride]
        elif ft == 2:  # Up
            out[y + 1] = row + up
        elif ft in (3, 4):  # Average, Paeth: each byte needs the one just decoded, so a plain loop
            cur, r, b = bytearray(stride), row.tolist(), up.tolist()
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                if ft == 3:
                    cur[x] = (r[x] + ((a + b[x]) >> 1)) & 255
                else:
                    c = b[x - bpp] if x >= bpp else 0
                    p = a + b[x] - c
                    pa, pb, pc = abs(p - a), abs(p - b[x]), abs(p - c)
                    cur[x] = (r[x] + (a if pa <= pb and pa <= pc else b[x] if pb <= pc else c)) & 255
            out[y + 1] = np.frombuffer(bytes(cur), np.uint8)
        else:
            raise ValueError(f"row {y} has filter type {ft} (0..4 exist)")
    return out[1:]


def decode_png(data):
    """A non-interlaced PNG of 8 or 16 bits per sample (grey, grey+alpha, RGB, RGBA, or 8-bit palette) -> uint8
    grey (h, w). Alpha is ignored; RGB becomes grey by ITU-R 601 luma (R 299 + G 587 + B 114) / 1000, as Pillow."""
    pos, ihdr, idat, plte = 8, None, [], None
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) < length or pos + 12 + length > len(data):
            raise ValueError("truncated")
        if zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]:
            raise ValueError(f"bad CRC in chunk {kind.decode('latin-1')}")
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            plte = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if ihdr is None or not idat:
        raise ValueError("no IHDR or no IDAT chunk")
    w, h, depth, ctype, _, _, interlace = ihdr
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype)
    if channels is None or interlace or depth not in (8, 16) or (ctype == 3 and depth != 8) or w == 0 or h == 0:
        raise ValueError(f"colour type {ctype}, {depth} bits, interlace {interlace}: not supported without Pillow")
    bpp = channels * depth // 8
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != h * (w * bpp + 1):
        raise ValueError(f"image data holds {len(raw)} bytes, {w}x{h} needs {h * (w * bpp + 1)}")
    px = unfilter(raw, h, w * bpp, bpp).reshape(h, w, channels, depth // 8)[..., 0]  # 16 bits: the high byte
    if ctype == 3:
        if plte is None or px.max() >= len(plte):
            raise ValueError("palette index out of range")
        px = plte[px[..., 0]]
    if px.shape[2] >= 3:
        return to_grey(px[..., :3])
    return px[..., 0].copy()


def to_grey(rgb):
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return rgb[..., 0].copy()
    # every channel widened first: uint8 * 587 would wrap (numpy 1.x: in uint16) or raise (numpy 2: out of bounds)
    r, g, b = (rgb[..., k].astype(np.int64) for k in range(3))
    return ((r * 299 + g * 587 + b * 114 + 500) // 1000).astype(np.uint8)


def read_png(path):
    """path -> uint8 grey (h, w); BadInput when the file is not a readable PNG."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BadInput(path, f"cannot read ({e.strerror})")
    if not data.startswith(PNG_SIGNATURE):
        raise BadInput(path, "not a PNG file (no PNG signature)" if data else "empty file, not a PNG")
    try:
        from PIL import Image
    except ImportError:
        Image = None
    try:
        if Image is None:
            return decode_png(data)
        import io
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I"):  # 16-bit grey: the high byte, as decode_png
                return (np.asarray(im, np.int64) >> 8).clip(0, 255).astype(np.uint8)
            if im.mode == "L":
                return np.array(im, np.uint8)
            return to_grey(np.array(im.convert("RGB"), np.uint8))
    except Exception as e:  # zlib.error, ValueError, PIL's own errors: the file is damaged
        raise BadInput(path, f"not a readable PNG ({e})")


# ---- grids ----------------------------------------------------------------------------------------------------
def split_grid(path, img, scale=None, cols=None):
    """A grid written by write_image_grid (diffusion.c): cols x rows tiles of 28s x 28s pixels, 2-pixel white gaps
    around and between them; unused tiles at the end of the last row stay white. Or a single 28s x 28s image.
    Returns (uint8 (n, 28, 28), description). The scale is the largest s (1..16) for which the gap lines are all
    white, preferring an s whose tiles are made of constant s x s blocks; each 28x28 pixel is the (rounded) mean
    of its block, which for a grid of diffusion.c is its value."""
    H, W = img.shape
    fits = []
    for s in ([scale] if scale else range(MAX_SCALE, 0, -1)):
        t = SIDE * s + GAP
        if (W - GAP) % t or (H - GAP) % t or (cols and (W - GAP) // t != cols):
            continue
        c, r = (W - GAP) // t, (H - GAP) // t
        if c == 0 or r == 0:
            continue
        gaps_x = np.arange(W) % t < GAP
        gaps_y = np.arange(H) % t < GAP
        if not ((img[:, gaps_x] == 255).all() and (img[gaps_y, :] == 255).all()):
            continue
        tiles = img[GAP:, GAP:].reshape(r, t, c, t)[:, :SIDE * s, :, :SIDE * s].reshape(r, SIDE, s, c, SIDE, s)
        constant = bool((tiles == tiles[:, :, :1, :, :, :1]).all())
        fits.append((constant, s, c, r, tiles))
    if fits:
        constant, s, c, r, tiles = max(fits, key=lambda f: (f[0], f[1]))
        tiles = tiles.transpose(0, 3, 1, 4, 2, 5).reshape(r * c, SIDE, SIDE, s * s)
        n = r * c
        while n > 1 and n > (r - 1) * c and (tiles[n - 1] == 255).all():  # empty slots of the last row
            n -= 1
        imgs = np.rint(tiles[:n].mean(3)).astype(np.uint8) if s > 1 else tiles[:n, :, :, 0].copy()
        return imgs, f"{n} images ({c} columns x {r} rows, scale {s})"
    if W == H and W % SIDE == 0 and not cols and (scale is None or W == SIDE * scale):
        s = W // SIDE
        return np.rint(img.reshape(SIDE, s, SIDE, s).mean((1, 3)))[None].astype(np.uint8), f"1 image (scale {s})"
    want = f"scale {scale}" if scale else f"any scale 1..{MAX_SCALE}"
    raise BadInput(path, f"{W}x{H} pixels is not a grid of 28x28 tiles ({want}{f', {cols} columns' if cols else ''}, "
                         f"2-pixel white gaps) nor a single 28s x 28s image")


def read_inputs(paths, scale, cols):
    """The sample set from the command line's files and folders -> (uint8 (N, 28, 28), lines describing them)."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            names = sorted(n for n in os.listdir(p) if n.lower().endswith(".png"))
            if not names:
                raise BadInput(p, "folder holds no .png file")
            files += [os.path.join(p, n) for n in names]
        elif not os.path.exists(p):
            raise BadInput(p, "no such file or folder")
        else:
            files.append(p)
    out, desc = [], []
    for f in files:
        imgs, d = split_grid(f, read_png(f), scale, cols)
        out.append(imgs)
        desc.append(f"{f}: {d}")
    if len(files) > 3:
        desc = [f"{len(files)} files: {sum(len(o) for o in out)} images"]
    return np.concatenate(out), desc


# ---- the reference: classifier, test set, training set --------------------------------------------------------
def load_weights(path):
    """data/fmnist_classifier.bin (format: notes/score_classifier.py) -> dict name -> float32 array."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"FMNCLS01":
        raise ValueError("not a classifier file of notes/score_classifier.py (bad magic)")
    (count,), pos, out = struct.unpack_from("<I", data, 8), 12, {}
    for _ in range(count):
        (ln,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4:pos + 4 + ln].decode()
        (nd,) = struct.unpack_from("<I", data, pos + 4 + ln)
        dims = struct.unpack_from("<" + "I" * nd, data, pos + 8 + ln)
        pos += 8 + ln + 4 * nd
        size = int(np.prod(dims)) if nd else 1
        out[name] = np.frombuffer(data, "<f4", size, pos).reshape(dims).copy()
        pos += 4 * size
    return out


class Reference:
    def __init__(self, k):
        import torch
        import torch.nn.functional as F
        sys.path.insert(0, HERE)
        import score_classifier as sc
        self.torch, self.F, self.sc, self.k = torch, F, sc, k
        try:
            self.w = {n: torch.from_numpy(a) for n, a in load_weights(WEIGHTS).items()}
        except (OSError, ValueError, struct.error) as e:
            sys.exit(f"score.py: {WEIGHTS}: {getattr(e, 'strerror', None) or e} (run notes/score_classifier.py)")
        self.nearcopy_l2 = float(self.w["nearcopy_l2"])
        self.accuracy = float(self.w["test_accuracy"])
        try:
            self.test, self.test_labels = sc.load_fashion("t10k")
        except (OSError, ValueError) as e:
            sys.exit(f"score.py: Fashion-MNIST: {e} (install Debian's dataset-fashion-mnist)")
        self.test_feat, self.test_logits = self.features(self.test)
        tv = total_variation(self.test)
        self.tv95 = float(np.percentile(tv, 95))
        self.tv_limit = 1.5 * self.tv95
        self._train = None

    def train(self):
        if self._train is None:
            self._train = self.sc.load_fashion("train")[0]
        return self._train

    def features(self, u8):
        """uint8 (n, 28, 28) -> (float64 (n, 128) penultimate features, float64 (n, 10) logits)."""
        torch, F, w = self.torch, self.F, self.w
        feats, logits = [], []
        with torch.no_grad():
            for i in range(0, len(u8), 1000):
                h = self.sc.to_unit(u8[i:i + 1000])
                for j in (1, 2, 3):
                    h = F.max_pool2d(F.relu(F.conv2d(h, w[f"conv{j}.weight"], w[f"conv{j}.bias"], padding=1)), 2)
                f = F.relu(F.linear(h.flatten(1), w["fc1.weight"], w["fc1.bias"]))
                feats.append(f.double().numpy())
                logits.append(F.linear(f, w["fc2.weight"], w["fc2.bias"]).double().numpy())
        return np.concatenate(feats), np.concatenate(logits)


def total_variation(u8):
    """sum over each image of |x[i, j+1] - x[i, j]| + |x[i+1, j] - x[i, j]|, pixels in [-1, 1] (anisotropic TV)."""
    x = u8.astype(np.float64) / 127.5 - 1
    return np.abs(np.diff(x, axis=2)).sum((1, 2)) + np.abs(np.diff(x, axis=1)).sum((1, 2))


# ---- the scores -----------------------------------------------------------------------------------------------
def frechet_distance(f1, f2):
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al. 2017, eq. 6; Dowson & Landau 1982). The trace of
    (S1 S2)^(1/2) equals that of (R S2 R)^(1/2), R = S1^(1/2): R S2 R is symmetric positive semi-definite, so its
    square-root trace is the sum of the square roots of its eigenvalues (numpy eigh, float64; tiny negative
    eigenvalues from rounding clipped to 0). No scipy, no complex parts."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    ev, vec = np.linalg.eigh(s1)
    r = (vec * np.sqrt(ev.clip(0))) @ vec.T
    tr_sqrt = np.sqrt(np.linalg.eigvalsh(r @ s2 @ r).clip(0)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def pairwise(a, b):
    """Euclidean distances (float64) between the rows of a and b."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(d2.clip(0))


def knn_radius(f, k):
    """Distance from each row of f to its k-th nearest other row."""
    r = np.empty(len(f))
    for i in range(0, len(f), 1000):
        d = pairwise(f[i:i + 1000], f)
        d[np.arange(len(d)), i + np.arange(len(d))] = np.inf  # not itself
        r[i:i + 1000] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return r


def covered(points, centres, radii):
    """For each point: does it lie in at least one ball (centre, radius)?"""
    out = np.zeros(len(points), bool)
    for i in range(0, len(points), 1000):
        out[i:i + 1000] = (pairwise(points[i:i + 1000], centres) <= radii[None, :]).any(1)
    return out


def precision_recall(real, fake, k):
    """Kynkaanniemi et al. 2019: the real manifold is the union of balls around each real feature with radius its
    distance to its k-th nearest real neighbour, the fake manifold likewise; precision = share of fake features
    inside the real manifold, recall = share of real features inside the fake manifold."""
    return float(covered(fake, real, knn_radius(real, k)).mean()), float(covered(real, fake, knn_radius(fake, k)).mean())


def score(ref, u8, rng, exclude_test=None, train_index=None):
    """The scores of the samples u8 (uint8 (N, 28, 28)). exclude_test: indices of test images that are the samples
    (perturbed), left out of the reference; train_index: for training images as samples, each one's own index,
    which the near-copy search skips."""
    t0 = time.time()
    n = len(u8)
    keep = np.ones(len(ref.test), bool)
    if exclude_test is not None:
        keep[exclude_test] = False
    pool = np.nonzero(keep)[0]
    feat, logits = ref.features(u8)
    fd = frechet_distance(feat, ref.test_feat[pool])
    sub = pool if n >= len(pool) else np.sort(rng.choice(pool, n, replace=False))
    prec, rec = precision_recall(ref.test_feat[sub], feat, ref.k)
    tv = total_variation(u8)
    pred = logits.argmax(1)
    hist = np.bincount(pred, minlength=10)
    p = hist[hist > 0] / n
    entropy = float(-(p * np.log2(p)).sum())
    near = ref.sc.nearest_below(u8.reshape(n, -1).astype(np.float32) / 127.5 - 1,
                                ref.train().reshape(-1, 784).astype(np.float32) / 127.5 - 1, ref.nearcopy_l2,
                                exclude=train_index)
    return dict(n=n, n_ref=len(pool), n_pr=len(sub), fd=fd, precision=prec, recall=rec,
                broken=int((tv > ref.tv_limit).sum()), hist=hist, entropy=entropy,
                near=int(np.isfinite(near).sum()), seconds=time.time() - t0)


def report(ref, s):
    n, k = s["n"], ref.k
    lines = [
        f"FD           {s['fd']:10.3f}   N={n} samples vs {s['n_ref']} test images, {ref.test_feat.shape[1]} classifier "
        f"features (biased upward at small N{'; N < 129: rank-deficient covariance' if n <= ref.test_feat.shape[1] else ''})",
        f"precision    {s['precision']:10.3f}   N={n} samples in the k={k} manifold of {s['n_pr']} test images",
        f"recall       {s['recall']:10.3f}   {s['n_pr']} test images in the k={k} manifold of N={n} samples",
        f"broken       {s['broken'] / n:10.3f}   {s['broken']} of N={n} with total variation > {ref.tv_limit:.1f} "
        f"(1.5 x the test images' 95th percentile {ref.tv95:.1f})",
        f"entropy      {s['entropy']:10.3f}   bits, predicted classes of N={n} (max log2(10) = {math.log2(10):.3f})",
        "classes      " + ", ".join(f"{c} {h}" for c, h in zip(CLASSES, s["hist"])) + f"   (N={n}, classifier "
        f"test accuracy {ref.accuracy * 100:.1f}%)",
        f"near-copies  {s['near'] / n:10.3f}   {s['near']} of N={n} within L2 {ref.nearcopy_l2:.3f} of a training image "
        f"(1st percentile of test-to-train distances)",
        f"time         {s['seconds']:10.1f}   seconds to score N={n}",
    ]
    print("\n".join(lines), flush=True)


# ---- calibration sets -----------------------------------------------------------------------------------------
def quantize(x):
    """[-1, 1] floats -> bytes, as write_image_grid: round((x + 1) 127.5), clamped."""
    return np.clip(np.floor((x + 1) * 127.5 + 0.5), 0, 255).astype(np.uint8)


def blur(u8, sigma=1.0):
    """Separable Gaussian blur in [-1, 1] units: taps exp(-d^2 / (2 sigma^2)) for |d| <= ceil(2 sigma), normalized to
    sum 1; the border repeats the edge pixel; the result rounded to bytes as a PNG would hold it."""
    rad = int(math.ceil(2 * sigma))
    tap = np.exp(-np.arange(-rad, rad + 1) ** 2 / (2 * sigma ** 2))
    tap /= tap.sum()
    x = u8.astype(np.float64) / 127.5 - 1
    for axis in (1, 2):
        pad = [(0, 0)] * 3
        pad[axis] = (rad, rad)
        xp = np.pad(x, pad, mode="edge")
        x = sum(tap[i] * np.take(xp, np.arange(i, i + SIDE), axis=axis) for i in range(len(tap)))
    return quantize(x)


def calibration_set(ref, kind, n, rng, arg=None):
    """-> (uint8 samples, description, score() keyword arguments)."""
    if kind == "real-train":
        idx = np.sort(rng.choice(60000, n, replace=False))
        return ref.train()[idx], f"{n} training images", dict(train_index=idx)
    if kind in ("real-test-noise", "real-test-blur"):
        idx = np.sort(rng.choice(len(ref.test), n, replace=False))
        x = ref.test[idx]
        if kind == "real-test-blur":
            return blur(x), f"{n} test images blurred (sigma 1 px), left out of the reference", dict(exclude_test=idx)
        noisy = quantize(x.astype(np.float64) / 127.5 - 1 + arg * rng.standard_normal(x.shape))
        return noisy, f"{n} test images + noise std {arg:g}, left out of the reference", dict(exclude_test=idx)
    if kind == "random":
        return rng.integers(0, 256, (n, SIDE, SIDE), dtype=np.uint8), f"{n} images of uniform random bytes", {}
    raise ValueError(kind)


CALIBRATION = [("real-train", 1000, None), ("real-train", 10000, None), ("real-test-noise", 1000, 0.0),
               ("real-test-noise", 1000, 0.05), ("real-test-noise", 1000, 0.1), ("real-test-noise", 1000, 0.2),
               ("real-test-noise", 1000, 0.5), ("real-test-blur", 1000, None), ("random", 1000, None)]


def calibrate(ref, seed):
    print("| samples | N | FD | precision | recall | broken | entropy (bits) | near-copies | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, n, arg in CALIBRATION:
        rng = np.random.default_rng(seed)
        u8, desc, kw = calibration_set(ref, kind, n, rng, arg)
        s = score(ref, u8, rng, **kw)
        print(f"| {desc} | {n} | {s['fd']:.2f} | {s['precision']:.3f} | {s['recall']:.3f} | {s['broken'] / n:.3f} "
              f"| {s['entropy']:.3f} | {s['near'] / n:.3f} | {s['seconds']:.1f} |", flush=True)


def main():
    ap = argparse.ArgumentParser(prog="score.py", usage=__doc__.split("usage:\n")[1].split("options:")[0].rstrip(),
                                 add_help=True)
    ap.add_argument("inputs", nargs="*")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--real-train", action="store_true")
    g.add_argument("--real-test-noise", type=float, metavar="S")
    g.add_argument("--real-test-blur", action="store_true")
    g.add_argument("--random", action="store_true")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--scale", type=int)
    ap.add_argument("--cols", type=int)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    kind = ("real-train" if a.real_train else "real-test-noise" if a.real_test_noise is not None else
            "real-test-blur" if a.real_test_blur else "random" if a.random else None)
    is_cal = a.inputs == ["calibrate"]
    if (kind is not None) + bool(a.inputs) != 1:
        ap.error("give PNG grids or a folder, or one of --real-train --real-test-noise --real-test-blur --random, or calibrate")
    if not 1 <= a.n <= (60000 if kind == "real-train" else 10000) or a.k < 1 or (a.scale is not None and not 1 <= a.scale <= 64) \
            or (a.cols is not None and a.cols < 1) or a.threads < 1:
        ap.error("--n, --k, --scale, --cols or --threads out of range")
    samples = None
    if a.inputs and not is_cal:
        try:
            samples, desc = read_inputs(a.inputs, a.scale, a.cols)
        except BadInput as e:
            print(f"score.py: {e.path}: {e.what}", file=sys.stderr)
            sys.exit(2)
        print("\n".join(f"input        {d}" for d in desc), flush=True)
        if a.dry_run:
            return
        if len(samples) < a.k + 1:
            print(f"score.py: {a.inputs[0]}: {len(samples)} images; precision/recall with k={a.k} need at least {a.k + 1}", file=sys.stderr)
            sys.exit(2)
    try:
        import torch
    except ImportError:
        sys.exit(f"score.py: {sys.executable} cannot import torch: install Debian's python3-torch, run /usr/bin/python3")
    torch.set_num_threads(a.threads)
    t0 = time.time()
    ref = Reference(a.k)
    print(f"reference    10000 test images, classifier features and statistics in {time.time() - t0:.1f} s", flush=True)
    if is_cal:
        calibrate(ref, a.seed)
        return
    rng = np.random.default_rng(a.seed)
    kw = {}
    if kind:
        samples, desc, kw = calibration_set(ref, kind, a.n, rng, a.real_test_noise)
        print(f"input        {desc}", flush=True)
    report(ref, score(ref, samples, rng, **kw))


if __name__ == "__main__":
    main()

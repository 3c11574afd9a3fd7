#!/usr/bin/env python3
"""A colour image set in class folders, for latent.c's 64x64 measurements (notes/latent.md, *Speed*).
usage: /usr/bin/python3 notes/colour_set.py OUT_DIR [--n 2000] [--side 64] [--seed 1] [--grey]
Each image is a Fashion-MNIST training image (Debian's dataset-fashion-mnist), enlarged bilinearly to side x side,
its garment painted in one random colour on a background of another: RGB, 3 channels that vary together but not
alike, in 10 class folders named as the classes. --grey: the enlarged grey image itself (Fashion-MNIST at side x
side). Deterministic for a given seed. Writes PNGs with zlib alone (latent_to28.write_png)."""
import argparse, gzip, os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latent_to28 import write_png  # noqa: E402  (gray or RGB, zlib alone)

DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path, header):
    with gzip.open(path) as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=header)


def bilinear(n_in, n_out):
    """(n_out, n_in): output pixel i samples the input at its centre's position (edges clamped)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        p = min(max((i + 0.5) * n_in / n_out - 0.5, 0), n_in - 1)
        j = min(int(p), n_in - 2)
        m[i, j], m[i, j + 1] = 1 - (p - j), p - j
    return m


def main():
    ap = argparse.ArgumentParser(prog="colour_set.py")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--grey", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.n <= 60000 or not 8 <= a.side <= 512:
        sys.exit("colour_set.py: --n must be 1..60000 and --side 8..512")
    try:
        images = read_idx(f"{DATA}/train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
        labels = read_idx(f"{DATA}/train-labels-idx1-ubyte.gz", 8)
    except OSError as e:
        sys.exit(f"colour_set.py: {e.filename}: {e.strerror} (install Debian's dataset-fashion-mnist)")
    rng = np.random.default_rng(a.seed)
    up = bilinear(28, a.side)
    for name in CLASSES:
        os.makedirs(os.path.join(a.out, name), exist_ok=True)
    for i in range(a.n):
        grey = up @ (images[i] / 255.0) @ up.T                       # (side, side) in [0, 1]
        if a.grey:
            img = 255 * grey                                         # (side, side)
        else:
            fg, bg = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)  # garment and background colours
            img = grey[:, :, None] * fg + (1 - grey[:, :, None]) * bg  # (side, side, 3)
        write_png(os.path.join(a.out, CLASSES[labels[i]], f"{i:05d}.png"), np.round(img))
    print(f"colour_set.py: {a.n} images {a.side}x{a.side}x{1 if a.grey else 3} in 10 class folders under {a.out}")


if __name__ == "__main__":
    main()

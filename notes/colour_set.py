#!/usr/bin/env python3
"""A colour image set in class folders, for latent.c's 64x64 measurements (notes/latent.md, *Speed*).
usage: /usr/bin/python3 notes/colour_set.py OUT_DIR [--n 2000] [--side 64] [--seed 1] [--grey]
Each image is a Fashion-MNIST training image (Debian's dataset-fashion-mnist), enlarged bilinearly to side x side,
its garment painted in one random colour on a background of another: RGB, 3 channels that vary together but not
alike, in 10 class folders named as the classes. --grey: the enlarged grey image itself (Fashion-MNIST at side x
side). Deterministic for a given seed. Writes PNGs with zlib alone."""
import argparse, gzip, os, struct, sys, zlib
import numpy as np

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


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path, rgb):
    h, w, c = rgb.shape
    raw = b"".join(b"\0" + row.tobytes() for row in rgb)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if c == 3 else 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


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
        fg, bg = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)      # garment and background colours
        if a.grey:
            fg, bg = np.full(3, 255.0), np.zeros(3)
        rgb = grey[:, :, None] * fg + (1 - grey[:, :, None]) * bg    # (side, side, 3)
        rgb = rgb[:, :, :1] if a.grey else rgb
        write_png(os.path.join(a.out, CLASSES[labels[i]], f"{i:05d}.png"), np.round(rgb).astype(np.uint8))
    print(f"colour_set.py: {a.n} images {a.side}x{a.side}x{1 if a.grey else 3} in 10 class folders under {a.out}")


if __name__ == "__main__":
    main()

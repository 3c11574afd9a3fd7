#!/usr/bin/env python3
"""Tiles of a write_image_grid PNG (any tile side, e.g. latent.c's 32x32) resized to 28x28 for notes/score.py.
usage: /usr/bin/python3 notes/latent_to28.py GRID.png OUT.png [--side 32] [--scale 3] [--every 1] [--first 0]
  --every 2 --first 0: the left image of each pair of `latent recon` (the loader's 32x32 original);
  --every 2 --first 1: the right one (its reconstruction); --every 1: every tile (`--recon-only`, `latent sample`).
Each 28x28 pixel is the area-weighted mean of the side x side pixels under it (the inverse, up to rounding, of
nothing: the loader's 28 -> 32 enlargement is not invertible, so score the round trip of the originals too).
Writes one 28x28-tile grid at scale 1 with diffusion.c's 2-pixel white gaps, which score.py reads."""
import argparse, os, struct, sys, zlib
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from score import read_png  # noqa: E402  (numpy, and Pillow or score.py's own PNG reader)

GAP, SIDE = 2, 28


def area_matrix(n_in, n_out):
    """(n_out, n_in): row i averages the input interval [i n_in / n_out, (i + 1) n_in / n_out)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        a, b = i * n_in / n_out, (i + 1) * n_in / n_out
        for j in range(int(a), min(n_in, int(np.ceil(b)))):
            m[i, j] = min(b, j + 1) - max(a, j)
    return m / m.sum(1, keepdims=True)


def write_png(path, img):
    """img: (h, w) gray or (h, w, 3) RGB, values 0..255 (notes/colour_set.py writes with it too)."""
    h, w = img.shape[:2]
    raw = b"".join(b"\0" + row.tobytes() for row in img.astype(np.uint8))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if img.ndim == 3 else 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("grid")
    ap.add_argument("out")
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--first", type=int, default=0)
    a = ap.parse_args()
    img = read_png(a.grid).astype(np.float64)
    t = a.side * a.scale + GAP
    H, W = img.shape
    if (W - GAP) % t or (H - GAP) % t:
        sys.exit(f"latent_to28.py: {a.grid}: {W}x{H} is not a grid of {a.side}x{a.side} tiles at scale {a.scale}")
    cols, rows = (W - GAP) // t, (H - GAP) // t
    tiles = []
    for r in range(rows):
        for c in range(cols):
            y, x = GAP + r * t, GAP + c * t
            tile = img[y:y + a.side * a.scale, x:x + a.side * a.scale]
            if (tile == 255).all():
                continue  # an empty slot of the last row
            tiles.append(tile.reshape(a.side, a.scale, a.side, a.scale).mean((1, 3)))
    tiles = tiles[a.first::a.every]
    m = area_matrix(a.side, SIDE)
    small = [np.clip(np.rint(m @ tile @ m.T), 0, 255) for tile in tiles]
    n = len(small)
    c = int(np.ceil(np.sqrt(n)))
    r = (n + c - 1) // c
    out = np.full((GAP + r * (SIDE + GAP), GAP + c * (SIDE + GAP)), 255.0)
    for i, s in enumerate(small):
        y, x = GAP + (i // c) * (SIDE + GAP), GAP + (i % c) * (SIDE + GAP)
        out[y:y + SIDE, x:x + SIDE] = s
    write_png(a.out, out)
    print(f"wrote {a.out}: {n} images of 28x28 from {a.grid} ({cols}x{rows} tiles of {a.side}x{a.side})")


if __name__ == "__main__":
    main()

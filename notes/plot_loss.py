#!/usr/bin/env python3
"""Plot a `diffusion train --log loss.csv` log as a PNG: the loss at every step (light gray) and its moving
average over ~1% of the steps (dark), log-scale y. Standard library only. An unfinished last line is ignored.
usage: python3 notes/plot_loss.py loss.csv --out loss.png [--title TEXT]
"""
import argparse, itertools, math, struct, sys, zlib

W, H = 800, 400
LEFT, RIGHT, TOP, BOTTOM = 80, 30, 50, 60  # margins around the plot area
HEADER = "step,loss,lr,grad_norm,seconds"
GRAY, DARK, GRID, BLACK = (190, 190, 190), (20, 50, 130), (232, 232, 232), (0, 0, 0)
PX = bytearray(b"\xff" * (W * H * 3))  # the image: RGB, rows top to bottom, white to start with

# 5x7 bitmap font, lowercase only; each block: a line naming the glyphs, then their 7 rows.
FONT_TEXT = """
0     1     2     3     4     5     6     7     8     9     .     -     +     :     /     _
.###. ..#.. .###. .###. ...#. ##### ..##. ##### .###. .###. ..... ..... ..... ..... ..... .....
#...# .##.. #...# #...# ..##. #.... .#... ....# #...# #...# ..... ..... ..#.. .##.. ....# .....
#..## ..#.. ....# ....# .#.#. ####. #.... ...#. #...# #...# ..... ..... ..#.. .##.. ...#. .....
#.#.# ..#.. ...#. ..##. #..#. ....# ####. ..#.. .###. .#### ..... ##### ##### ..... ..#.. .....
##..# ..#.. ..#.. ....# ##### ....# #...# .#... #...# ....# ..... ..... ..#.. .##.. .#... .....
#...# ..#.. .#... #...# ...#. #...# #...# .#... #...# ...#. .##.. ..... ..#.. .##.. #.... .....
.###. .###. ##### .###. ...#. .###. .###. .#... .###. .##.. .##.. ..... ..... ..... ..... #####
a     b     c     d     e     f     g     h     i     j     k     l     m     (     )     ,     =
..... #.... ..... ....# ..... ..##. .#### #.... ..#.. ...#. #.... .##.. ..... ...#. .#... ..... .....
..... #.... ..... ....# ..... .#..# #...# #.... ..... ..... #.... ..#.. ..... ..#.. ..#.. ..... .....
.###. ####. .###. .#### .###. .#... #...# #.##. .##.. ..##. #..#. ..#.. ##.#. .#... ...#. ..... #####
....# #...# #.... #...# #...# ###.. #...# ##..# ..#.. ...#. #.#.. ..#.. #.#.# .#... ...#. ..... .....
.#### #...# #.... #...# ##### .#... .#### #...# ..#.. ...#. ##... ..#.. #.#.# .#... ...#. .##.. #####
#...# #...# #...# #...# #.... .#... ....# #...# ..#.. #..#. #.#.. ..#.. #...# ..#.. ..#.. ..#.. .....
.#### ####. .###. .#### .###. .#... .###. #...# .###. .##.. #..#. .###. #...# ...#. .#... .#... .....
n     o     p     q     r     s     t     u     v     w     x     y     z
..... ..... ####. .#### ..... ..... .#... ..... ..... ..... ..... #...# .....
..... ..... #...# #...# ..... ..... .#... ..... ..... ..... ..... #...# .....
#.##. .###. #...# #...# #.##. .#### ###.. #...# #...# #...# #...# #...# #####
##..# #...# #...# #...# ##..# #.... .#... #...# #...# #...# .#.#. #...# ...#.
#...# #...# ####. .#### #.... .###. .#... #...# #...# #.#.# ..#.. .#### ..#..
#...# #...# #.... ....# #.... ....# .#..# #..## .#.#. #.#.# .#.#. ....# .#...
#...# .###. #.... ....# #.... ####. ..##. .##.# ..#.. .#.#. #...# .###. #####
"""
DESCENDERS = "gpqy"  # drawn 2 pixels lower
FONT = {}
font_lines = FONT_TEXT.strip().split("\n")
for top in range(0, len(font_lines), 8):
    names, rows = font_lines[top].split(), [r.split() for r in font_lines[top + 1:top + 8]]
    FONT.update({ch: [row[i] for row in rows] for i, ch in enumerate(names)})


def fail(msg):
    sys.exit(f"plot_loss.py: {msg}")  # one line to stderr, exit status 1


def read_log(path):
    """(steps, losses) sorted by step; if a --resume went back to an earlier step, the later rows win."""
    try:
        with open(path, newline="") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        fail(f"{path}: {getattr(e, 'strerror', None) or e}")
    if lines[0].strip() != HEADER:
        fail(f"{path}: empty file" if lines == [""] else f"{path}: line 1 is not the header {HEADER}")
    losses = {}
    for n, row in enumerate(lines[1:-1], 2):  # lines[-1] follows the last newline: empty or unfinished
        try:
            step, loss, _lr, _grad_norm, _seconds = row.strip().split(",")
            step, loss = int(step), float(loss)
        except ValueError:
            fail(f"{path}: line {n}: malformed row '{row.strip()[:60]}'")
        if not (math.isfinite(loss) and loss > 0):
            fail(f"{path}: line {n}: loss {loss:g} cannot go on a log scale")
        losses[step] = loss
    if not losses:
        fail(f"{path}: no data rows")
    return sorted(losses), [losses[s] for s in sorted(losses)]


def moving_average(v, half):
    """Mean over the centered window [i - half, i + half], shrunk at the ends."""
    pre = [0.0, *itertools.accumulate(v)]
    spans = [(max(0, i - half), min(len(v), i + half + 1)) for i in range(len(v))]
    return [(pre[b] - pre[a]) / (b - a) for a, b in spans]


def linear_ticks(lo, hi, n=6):
    """About n integers 1, 2 or 5 times a power of ten apart, within [lo, hi]."""
    raw = max((hi - lo) / n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    d = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return range(math.ceil(lo / d) * d, hi + 1, d)


def log_ticks(lo, hi):
    """Powers of ten within [lo, hi]; or 1, 2, 5 (then 1..9) times them if that gives fewer than 3."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for mults in ((1,), (1, 2, 5), range(1, 10)):
        ticks = [m * 10.0 ** e for e in decades for m in mults if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 3:
            break
    return ticks


def dot(x, y, color, size=1):
    """A size x size square centered on (x, y), clipped to the image."""
    x0, y0 = max(0, round(x) - size // 2), round(y) - size // 2
    x1 = min(W, round(x) - size // 2 + size)
    for yy in range(max(0, y0), min(H, y0 + size)):
        PX[3 * (yy * W + x0):3 * (yy * W + x1)] = bytes(color) * max(0, x1 - x0)


def line(x0, y0, x1, y1, color, size=1):
    n = max(1, math.ceil(max(abs(x1 - x0), abs(y1 - y0))))
    for i in range(n + 1):
        dot(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, color, size)


def text(x, y, s, anchor=0.0, scale=2):
    """s (lowercased; unknown characters blank), its top edge at y and the point anchor (0: left edge,
    0.5: middle, 1: right edge) of its width at x, shifted if need be to stay inside the image."""
    width = (6 * len(s) - 1) * scale
    x = min(max(x - anchor * width, 0), W - width)
    for k, ch in enumerate(s.lower()):
        for r, row in enumerate(FONT.get(ch, [])):
            for c in (c for c, bit in enumerate(row) if bit == "#"):
                dot(x + (6 * k + c) * scale, y + (r + 2 * (ch in DESCENDERS)) * scale, BLACK, scale)


def save_png(path):
    raw = b"".join(b"\0" + PX[3 * W * y:3 * W * (y + 1)] for y in range(H))  # each row: filter 0, then pixels
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))  # 8-bit RGB
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description="Plot a diffusion.c training log (train --log) as a PNG.")
    ap.add_argument("csv")
    ap.add_argument("--out", required=True, help="the PNG to write")
    ap.add_argument("--title", default="training loss")
    args = ap.parse_args()
    steps, loss = read_log(args.csv)
    avg = moving_average(loss, len(loss) // 200)  # window 2 * half + 1: ~1% of the steps
    x0, x1 = steps[0], max(steps[-1], steps[0] + 1)
    y0, y1 = min(loss) / 1.1, max(loss) * 1.1  # a little room above and below the curves
    px = lambda s: LEFT + (s - x0) / (x1 - x0) * (W - LEFT - RIGHT)
    py = lambda v: TOP + math.log(y1 / v) / math.log(y1 / y0) * (H - TOP - BOTTOM)
    for v in log_ticks(y0, y1):  # grid lines, ticks and labels of the y axis
        line(LEFT, py(v), W - RIGHT, py(v), GRID)
        line(LEFT - 5, py(v), LEFT, py(v), BLACK)
        text(LEFT - 9, py(v) - 7, f"{v:g}", anchor=1)
    for s in linear_ticks(x0, x1):  # ticks and labels of the x axis
        line(px(s), H - BOTTOM, px(s), H - BOTTOM + 5, BLACK)
        text(px(s), H - BOTTOM + 9, str(s), anchor=0.5)
    for series, color, size in ((loss, GRAY, 1), (avg, DARK, 3)):
        pts = [(px(s), py(v)) for s, v in zip(steps, series)]
        for (xa, ya), (xb, yb) in zip(pts, pts[1:] or pts):
            line(xa, ya, xb, yb, color, size)
    line(LEFT, TOP, LEFT, H - BOTTOM, BLACK)  # the axes, over the curves
    line(LEFT, H - BOTTOM, W - RIGHT, H - BOTTOM, BLACK)
    text(W / 2, 12, args.title, anchor=0.5)
    text(LEFT, TOP - 24, "loss", anchor=0.5)
    text((LEFT + W - RIGHT) / 2, H - 24, "step", anchor=0.5)
    try:
        save_png(args.out)
    except OSError as e:
        fail(f"{args.out}: {e.strerror}")
    print(f"wrote {args.out}: {len(steps)} steps, loss {loss[0]:.4g} -> {avg[-1]:.4g} (moving average at the end)")


if __name__ == "__main__":
    main()

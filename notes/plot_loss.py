#!/usr/bin/env python3
"""Plot a training log written by `diffusion train --log loss.csv` as a PNG (standard library only).

usage: python3 notes/plot_loss.py loss.csv --out loss.png [--title TEXT]

Draws the loss at every step (light gray) and its moving average over ~1% of the steps (dark) on a
log-scale y axis. The log may still be growing: an unfinished last line (no newline yet) is ignored.
"""
import argparse, math, struct, sys, zlib

W, H = 800, 400
LEFT, RIGHT, TOP, BOTTOM = 80, 30, 50, 60  # margins around the plot area
HEADER = "step,loss,lr,grad_norm,seconds"
GRAY, DARK, GRID, BLACK = (190, 190, 190), (20, 50, 130), (235, 235, 235), (0, 0, 0)

# 5x7 bitmap font: each block is one row of glyphs, 5 pixels wide, separated by a space.
FONT_BLOCKS = [
    ("0123456789.-+", """
    .###. ..#.. .###. .###. ...#. ##### ..##. ##### .###. .###. ..... ..... .....
    #...# .##.. #...# #...# ..##. #.... .#... ....# #...# #...# ..... ..... ..#..
    #..## ..#.. ....# ....# .#.#. ####. #.... ...#. #...# #...# ..... ..... ..#..
    #.#.# ..#.. ...#. ..##. #..#. ....# ####. ..#.. .###. .#### ..... ##### #####
    ##..# ..#.. ..#.. ....# ##### ....# #...# .#... #...# ....# ..... ..... ..#..
    #...# ..#.. .#... #...# ...#. #...# #...# .#... #...# ...#. .##.. ..... ..#..
    .###. .###. ##### .###. ...#. .###. .###. .#... .###. .##.. .##.. ..... .....
    """),
    ("abcdefghijklm", """
    ..... #.... ..... ....# ..... ..##. ..... #.... ..#.. ...#. #.... .##.. .....
    ..... #.... ..... ....# ..... .#..# .#### #.... ..... ..... #.... ..#.. .....
    .###. ####. .###. .#### .###. .#... #...# #.##. .##.. ..##. #..#. ..#.. ##.#.
    ....# #...# #.... #...# #...# ###.. #...# ##..# ..#.. ...#. #.#.. ..#.. #.#.#
    .#### #...# #.... #...# ##### .#... .#### #...# ..#.. ...#. ##... ..#.. #.#.#
    #...# #...# #...# #...# #.... .#... ....# #...# ..#.. #..#. #.#.. ..#.. #...#
    .#### ####. .###. .#### .###. .#... .###. #...# .###. .##.. #..#. .###. #...#
    """),
    ("nopqrstuvwxyz", """
    ..... ..... ..... ..... ..... ..... .#... ..... ..... ..... ..... ..... .....
    ..... ..... ..... ..... ..... ..... .#... ..... ..... ..... ..... ..... .....
    #.##. .###. ####. .#### #.##. .#### ###.. #...# #...# #...# #...# #...# #####
    ##..# #...# #...# #...# ##..# #.... .#... #...# #...# #...# .#.#. #...# ...#.
    #...# #...# ####. .#### #.... .###. .#... #...# #...# #.#.# ..#.. .#### ..#..
    #...# #...# #.... ....# #.... ....# .#..# #..## .#.#. #.#.# .#.#. ....# .#...
    #...# .###. #.... ....# #.... ####. ..##. .##.# ..#.. .#.#. #...# .###. #####
    """),
    (":/_(),=", """
    ..... ..... ..... ...#. .#... ..... .....
    .##.. ....# ..... ..#.. ..#.. ..... .....
    .##.. ...#. ..... .#... ...#. ..... #####
    ..... ..#.. ..... .#... ...#. ..... .....
    .##.. .#... ..... .#... ...#. .##.. #####
    .##.. #.... ..... ..#.. ..#.. ..#.. .....
    ..... ..... ##### ...#. .#... .#... .....
    """),
]
FONT = {}
for chars, block in FONT_BLOCKS:
    rows = block.split()  # 7 rows per glyph, one word per glyph in each row
    for i, ch in enumerate(chars):
        FONT[ch] = [rows[r * len(chars) + i] for r in range(7)]


def fail(msg):
    sys.exit(f"plot_loss.py: {msg}")  # one line to stderr, exit status 1


def read_log(path):
    """The (steps, losses) of a log, sorted by step; after a --resume from an earlier checkpoint, later rows win."""
    try:
        with open(path, newline="") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        fail(f"{path}: {getattr(e, 'strerror', None) or e}")
    if lines == [""]:
        fail(f"{path}: empty file")
    if lines[0].strip() != HEADER:
        fail(f"{path}: line 1 is not the header '{HEADER}'")
    losses = {}
    for n, line in enumerate(lines[1:-1], 2):  # lines[-1] follows the last newline: empty or unfinished
        if not line.strip():
            continue
        fields = line.strip().split(",")
        try:
            if len(fields) != 5:
                raise ValueError
            step, loss = int(fields[0]), float(fields[1])
        except ValueError:
            fail(f"{path}: line {n}: malformed row '{line.strip()[:60]}'")
        if not (math.isfinite(loss) and loss > 0):
            fail(f"{path}: line {n}: loss {fields[1]} cannot go on a log scale")
        losses[step] = loss
    if not losses:
        fail(f"{path}: no data rows")
    steps = sorted(losses)
    return steps, [losses[s] for s in steps]


def moving_average(v, half):
    """Mean over the centered window [i - half, i + half], shrunk at the ends."""
    pre = [0.0]
    for x in v:
        pre.append(pre[-1] + x)
    out = []
    for i in range(len(v)):
        a, b = max(0, i - half), min(len(v), i + half + 1)
        out.append((pre[b] - pre[a]) / (b - a))
    return out


def linear_ticks(lo, hi, n=6):
    """Round values 1, 2 or 5 times a power of ten apart, about n of them, within [lo, hi]."""
    raw = max((hi - lo) / n, 1)  # steps are integers
    mag = 10 ** math.floor(math.log10(raw))
    d = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [i * d for i in range(math.ceil(lo / d), math.floor(hi / d) + 1)]


def log_ticks(lo, hi):
    """Powers of ten within [lo, hi]; or 1, 2, 5 (then 1..9) times them if that gives fewer than 3."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for mults in ((1,), (1, 2, 5), range(1, 10)):
        ticks = [m * 10.0 ** e for e in decades for m in mults if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 3:
            break
    return ticks


class Canvas:
    def __init__(self, w, h):
        self.w, self.h, self.px = w, h, bytearray(b"\xff" * (w * h * 3))

    def dot(self, x, y, color, size=1):
        for yy in range(round(y) - size // 2, round(y) - size // 2 + size):
            for xx in range(round(x) - size // 2, round(x) - size // 2 + size):
                if 0 <= xx < self.w and 0 <= yy < self.h:
                    self.px[3 * (yy * self.w + xx):3 * (yy * self.w + xx) + 3] = bytes(color)

    def line(self, x0, y0, x1, y1, color, size=1):
        n = max(1, math.ceil(max(abs(x1 - x0), abs(y1 - y0))))
        for i in range(n + 1):
            self.dot(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, color, size)

    def text(self, x, y, s, color, scale=2):
        """Draws s with its top left corner at (x, y); unknown characters are left blank."""
        for k, ch in enumerate(s.lower()):
            for r, row in enumerate(FONT.get(ch, ["....."] * 7)):
                for c, bit in enumerate(row):
                    if bit == "#":
                        for dy in range(scale):
                            for dx in range(scale):
                                self.dot(x + (6 * k + c) * scale + dx, y + r * scale + dy, color)

    def save_png(self, path):
        stride = 3 * self.w
        raw = b"".join(b"\0" + self.px[y * stride:(y + 1) * stride] for y in range(self.h))  # filter 0 per row
        chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                                    + struct.pack(">I", zlib.crc32(kind + data)))
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def text_width(s, scale=2):
    return (6 * len(s) - 1) * scale


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
    py = lambda v: TOP + (math.log(y1) - math.log(v)) / (math.log(y1) - math.log(y0)) * (H - TOP - BOTTOM)

    img = Canvas(W, H)
    for v in log_ticks(y0, y1):  # horizontal grid lines, ticks and labels on the y axis
        img.line(LEFT, py(v), W - RIGHT, py(v), GRID)
        img.line(LEFT - 5, py(v), LEFT, py(v), BLACK)
        label = f"{v:g}"
        img.text(LEFT - 9 - text_width(label), py(v) - 7, label, BLACK)
    for s in linear_ticks(x0, x1):  # ticks and labels on the x axis
        img.line(px(s), H - BOTTOM, px(s), H - BOTTOM + 5, BLACK)
        label = str(int(s))
        lx = min(max(px(s) - text_width(label) / 2, 0), W - text_width(label))
        img.text(lx, H - BOTTOM + 9, label, BLACK)
    for series, color, size in ((loss, GRAY, 1), (avg, DARK, 3)):
        pts = [(px(s), py(v)) for s, v in zip(steps, series)]
        for (xa, ya), (xb, yb) in zip(pts, pts[1:] or pts):
            img.line(xa, ya, xb, yb, color, size)
    img.line(LEFT, TOP, LEFT, H - BOTTOM, BLACK)  # the axes, over the curves
    img.line(LEFT, H - BOTTOM, W - RIGHT, H - BOTTOM, BLACK)
    img.text((W - text_width(args.title)) / 2, 12, args.title, BLACK)
    img.text(LEFT - text_width("loss") / 2, TOP - 22, "loss", BLACK)
    img.text((LEFT + W - RIGHT - text_width("step")) / 2, H - 22, "step", BLACK)
    try:
        img.save_png(args.out)
    except OSError as e:
        fail(f"{args.out}: {e.strerror}")
    print(f"wrote {args.out}: {len(steps)} steps, loss {loss[0]:.4g} -> {avg[-1]:.4g} (moving average)")


if __name__ == "__main__":
    main()

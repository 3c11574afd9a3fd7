// notes/composition.c — why a model should read words (issue 26): the composition test.
// A synthetic set of coloured shapes, 32x32, in class folders named <colour>_<shape> (red, green,
// blue x disc, square, triangle), two combinations left out of training. A text model (train
// --text) has seen "blue" and "triangle", never together; asked for "blue triangle", does it draw
// one? A class model cannot even be asked. A companion of diffusion.c (it includes the file whole,
// without its main); notes/composition.sh runs the whole experiment.
//   notes/composition make-data DIR [--n 200] [--seed 1]   DIR/<colour>_<shape>/*.png
//   notes/composition measure GRID.png [--want colour_shape]
//       reads a grid of 32x32 samples as `./diffusion sample` writes it (scale 3, 2-pixel gaps) and
//       says, for each sample, its colour and shape; with --want, the share that show both.
#define DIFFUSION_NO_MAIN
#include "../diffusion.c"

static const char *COLOURS[3] = {"red", "green", "blue"};
static const char *SHAPES[3] = {"disc", "square", "triangle"};
// Left out of training: the model sees blue and triangle, red and square, never together.
static int left_out(int colour, int shape) {
    return (colour == 2 && shape == 2) || (colour == 0 && shape == 1);
}

// Whether pixel (x, y) of a 32x32 image lies in the shape centred at (cx, cy) with half-size r:
// a disc of radius r, an axis-aligned square of side 2r, a triangle with its apex up and its
// base 2r wide... every shape about as large as the others.
static int inside(int shape, double x, double y, double cx, double cy, double r) {
    double dx = x - cx, dy = y - cy;
    if (shape == 0) return dx * dx + dy * dy <= r * r;
    if (shape == 1) return fabs(dx) <= 0.85 * r && fabs(dy) <= 0.85 * r;
    double top = cy - 1.1 * r, bottom = cy + 0.9 * r;  // apex (cx, top), base at y = bottom
    if (y < top || y > bottom) return 0;
    return fabs(dx) <= 1.1 * r * (y - top) / (bottom - top);
}

// One image: a dark background with a little noise, the shape in its colour (a random shade).
static void draw_shape(unsigned char *px, int colour, int shape, Rng *rng) {
    double r = 7 + 3 * rng_uniform(rng), cx = 11 + 10 * rng_uniform(rng);
    double cy = 11 + 10 * rng_uniform(rng), shade = 180 + 75 * rng_uniform(rng);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            int in = inside(shape, x + 0.5, y + 0.5, cx, cy, r);
            for (int ch = 0; ch < 3; ch++) {
                double v = 20 + 10 * rng_uniform(rng);
                if (in) v = ch == colour ? shade : 30 + 20 * rng_uniform(rng);
                px[(y * 32 + x) * 3 + ch] = (unsigned char)v;
            }
        }
}

// What a 32x32 image shows: the pixels brighter than halfway between the darkest and the
// brightest are the shape; its colour is the channel strongest over them. Its shape: a triangle
// (apex up) fills the lower corners of its bounding box and not the upper ones (each corner: the
// outer quarter of each side); else a square reaches further from its centre than a disc of the
// same area: the 4th-farthest pixel (a square's corners; robust to 3 stray pixels) at ~0.66
// sqrt(area) for the squares drawn here, ~0.54 for the discs, either way round, tilted or with
// rounded corners. -1: no shape shows (too faint, too small, or not one piece: noise).
// The size of the 4-connected piece of mask holding pixel i (its pixels set to 2 on the way).
static int piece_size(unsigned char *mask, int i) {
    int stack[32 * 32], n = 0, size = 0;
    mask[i] = 2;
    stack[n++] = i;
    while (n) {
        int j = stack[--n], x = j % 32, y = j / 32;
        int next[4] = {x > 0 ? j - 1 : -1, x < 31 ? j + 1 : -1, y > 0 ? j - 32 : -1,
                       y < 31 ? j + 32 : -1};
        size++;
        for (int k = 0; k < 4; k++)
            if (next[k] >= 0 && mask[next[k]] == 1) {
                mask[next[k]] = 2;
                stack[n++] = next[k];
            }
    }
    return size;
}
static double corner_fill(const unsigned char *mask, int x0, int x1, int y0, int y1, int right,
                          int low) {
    int w = (x1 - x0 + 4) / 4, h = (y1 - y0 + 4) / 4, n = 0;
    int xs = right ? x1 - w + 1 : x0, ys = low ? y1 - h + 1 : y0;
    for (int y = ys; y < ys + h; y++)
        for (int x = xs; x < xs + w; x++) n += mask[y * 32 + x] != 0;
    return n / (double)(w * h);
}
static void classify(const unsigned char *img, int *colour, int *shape) {
    double lo = 255, hi = 0, sum[3] = {0}, mx = 0, my = 0, far[4] = {0};
    int x0 = 32, x1 = -1, y0 = 32, y1 = -1, count = 0;
    unsigned char mask[32 * 32];
    for (int i = 0; i < 32 * 32; i++) {
        int m = img[3 * i] > img[3 * i + 1] ? img[3 * i] : img[3 * i + 1];
        m = m > img[3 * i + 2] ? m : img[3 * i + 2];
        lo = m < lo ? m : lo;
        hi = m > hi ? m : hi;
    }
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            const unsigned char *p = img + (y * 32 + x) * 3;
            int m = p[0] > p[1] ? p[0] : p[1];
            m = m > p[2] ? m : p[2];
            mask[y * 32 + x] = m >= (lo + hi) / 2;
            if (!mask[y * 32 + x]) continue;
            for (int ch = 0; ch < 3; ch++) sum[ch] += p[ch];
            count++;
            mx += x;
            my += y;
            x0 = x < x0 ? x : x0;
            x1 = x > x1 ? x : x1;
            y0 = y < y0 ? y : y0;
            y1 = y > y1 ? y : y1;
        }
    *colour = *shape = -1;
    if (hi - lo < 60 || count < 12) return;  // too faint or too small
    *colour = sum[0] >= sum[1] && sum[0] >= sum[2] ? 0 : sum[1] >= sum[2] ? 1 : 2;
    double top = corner_fill(mask, x0, x1, y0, y1, 0, 0) + corner_fill(mask, x0, x1, y0, y1, 1, 0);
    double low = corner_fill(mask, x0, x1, y0, y1, 0, 1) + corner_fill(mask, x0, x1, y0, y1, 1, 1);
    mx /= count;
    my /= count;
    for (int i = 0; i < 32 * 32; i++) {  // far[0] >= far[1] >= far[2] >= far[3]: the farthest
        double d = mask[i] ? hypot(i % 32 - mx, i / 32 - my) : 0;
        for (int k = 0; k < 4; k++)
            if (d > far[k]) {
                double t = far[k];
                far[k] = d;
                d = t;
            }
    }
    int largest = 0;
    for (int i = 0; i < 32 * 32; i++) {
        int size = mask[i] == 1 ? piece_size(mask, i) : 0;
        largest = size > largest ? size : largest;
    }
    if (largest < 0.9 * count) return;  // scattered: noise
    if ((low - top) / 2 > 0.4) *shape = 2;
    else *shape = far[3] / sqrt(count) > 0.6 ? 1 : 0;
}

static int cmd_make_data(const Options *o) {
    if (!o->image) die_usage("make-data", "needs the folder to write (make-data DIR)");
    int n = o->n ? o->n : 200;
    Rng rng = {o->seed};
    unsigned char px[32 * 32 * 3];
    char path[4200];
    int right = 0;
    mkdir(o->image, 0755);
    for (int c = 0; c < 3; c++)
        for (int s = 0; s < 3; s++) {
            if (left_out(c, s)) continue;
            snprintf(path, sizeof path, "%s/%s_%s", o->image, COLOURS[c], SHAPES[s]);
            if (mkdir(path, 0755) != 0 && errno != EEXIST) die(path, "%s", strerror(errno));
            for (int i = 0; i < n; i++) {
                draw_shape(px, c, s, &rng);
                int colour, shape;
                classify(px, &colour, &shape);  // the measure, on the truth
                right += colour == c && shape == s;
                snprintf(path, sizeof path, "%s/%s_%s/%04d.png", o->image, COLOURS[c], SHAPES[s],
                         i);
                if (!stbi_write_png(path, 32, 32, 3, px, 32 * 3)) die(path, "cannot write");
            }
        }
    printf("wrote %s: 7 classes x %d images, 32x32 RGB (left out: blue_triangle, red_square)\n"
           "measure reads %d of the %d right (colour and shape)\n", o->image, n, right, 7 * n);
    return right < 7 * n * 0.98;
}

static int cmd_measure(const Options *o) {
    if (!o->image) die_usage("measure", "needs a sample grid (measure GRID.png)");
    int w, h, comp, scale = 3, cell = 32 * scale + 2;
    unsigned char *grid = stbi_load(o->image, &w, &h, &comp, 3);
    if (!grid) die(o->image, "cannot read (%s)", stbi_failure_reason());
    int cols = (w - 2) / cell, rows = (h - 2) / cell;
    if (cols < 1 || rows < 1 || cols * cell + 2 != w || rows * cell + 2 != h)
        die(o->image, "not a grid of 32x32 samples at scale 3 (%dx%d pixels)", w, h);
    int want_c = -1, want_s = -1, hits = 0, n = 0, counts[4][4] = {{0}};
    for (int c = 0; o->label && c < 3; c++)
        for (int s = 0; s < 3; s++) {
            char name[32];
            snprintf(name, sizeof name, "%s_%s", COLOURS[c], SHAPES[s]);
            if (!strcmp(name, o->label)) want_c = c, want_s = s;
        }
    if (o->label && want_c < 0) die_usage("--label", "'%s' is not colour_shape", o->label);
    unsigned char img[32 * 32 * 3];
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < cols; q++, n++) {
            int ox = 2 + q * cell + scale / 2, oy = 2 + r * cell + scale / 2;  // block centres
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    memcpy(img + (y * 32 + x) * 3, grid + ((size_t)(oy + y * scale) * w + ox +
                                                           x * scale) * 3, 3);
            int colour, shape;
            classify(img, &colour, &shape);
            counts[colour + 1][shape + 1]++;
            hits += colour == want_c && shape == want_s;
        }
    printf("%s: %d samples\n%-8s", o->image, n, "");
    for (int s = -1; s < 3; s++) printf(" %9s", s < 0 ? "no shape" : SHAPES[s]);
    for (int c = -1; c < 3; c++) {
        printf("\n%-8s", c < 0 ? "no colour" : COLOURS[c]);
        for (int s = -1; s < 3; s++) printf(" %9d", counts[c + 1][s + 1]);
    }
    printf("\n");
    if (o->label)
        printf("%s: %d of %d (%.0f%%) show both words\n", o->label, hits, n, 100.0 * hits / n);
    stbi_image_free(grid);
    return 0;
}

static const Command composition_commands[] = {
    {"make-data", cmd_make_data, " IMAGE --n --seed ",
     "make-data DIR [--n 200] [--seed 1]\n  Writes DIR/<colour>_<shape>/*.png, 7 of the 9 pairs."},
    {"measure", cmd_measure, " IMAGE --label ",
     "measure GRID.png [--label colour_shape]\n  Colour and shape of each 32x32 sample of a grid."},
};

int main(int argc, char **argv) {
    return run_command(argc, argv, composition_commands, 2, "notes/composition");
}

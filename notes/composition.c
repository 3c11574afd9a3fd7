// notes/composition.c — why a model should read words (issue 26): the composition test.
// A synthetic set of coloured shapes, 32x32, in class folders named <colour>_<shape> (red, green,
// blue x disc, square, triangle), two combinations left out of training. A text model (train
// --text) has seen "blue" and "triangle", never together; asked for "blue triangle", does it draw
// one? A class model cannot even be asked. A companion of diffusion.c (it includes the file whole,
// without its main); notes/composition.sh runs the whole experiment.
//   notes/composition make-data DIR [--n 200] [--seed 1]   DIR/<colour>_<shape>/*.png
//   notes/composition measure GRID.png [--label colour_shape]
//       reads a grid of 32x32 samples as `./diffusion sample` writes it (scale 3, 2-pixel gaps) and
//       says, for each sample, its colour and shape; with --label, the share that show both.
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
// Whether the point (dx, dy) from a shape's centroid lies in the template of `shape` with area A,
// turned by angle a: the disc, the square, and the triangle as make-data draws it (apex up, base
// 1.1 x its height; the centroid 2/3 of the way down from the apex).
static int in_template(int shape, double dx, double dy, double A, double a) {
    double u = dx * cos(a) + dy * sin(a), v = -dx * sin(a) + dy * cos(a);
    if (shape == 0) return u * u + v * v <= A / PI;
    if (shape == 1) return fabs(u) <= sqrt(A) / 2 && fabs(v) <= sqrt(A) / 2;
    double h = sqrt(A / 0.55), top = -2 * h / 3;  // area = 0.55 h^2
    return v >= top && v <= h / 3 && fabs(u) <= 0.55 * (v - top);
}

// What a 32x32 image shows: the pixels brighter than halfway between the darkest and the
// brightest are the shape (if they are one piece); its colour is the channel strongest over them;
// its shape the template (disc, square or triangle of the same area, on its centroid, the square
// and triangle turned every 5 degrees) that overlaps it best (intersection over union): a drawn
// square with rounded corners or a tilt is still nearer a square than a disc. -1: no shape shows.
static void classify(const unsigned char *img, int *colour, int *shape) {
    double lo = 255, hi = 0, sum[3] = {0}, mx = 0, my = 0;
    int count = 0;
    unsigned char mask[32 * 32];
    for (int i = 0; i < 32 * 32; i++) {
        int m = img[3 * i] > img[3 * i + 1] ? img[3 * i] : img[3 * i + 1];
        m = m > img[3 * i + 2] ? m : img[3 * i + 2];
        lo = m < lo ? m : lo;
        hi = m > hi ? m : hi;
    }
    for (int i = 0; i < 32 * 32; i++) {
        const unsigned char *p = img + i * 3;
        int m = p[0] > p[1] ? p[0] : p[1];
        m = m > p[2] ? m : p[2];
        mask[i] = m >= (lo + hi) / 2;
        if (!mask[i]) continue;
        for (int ch = 0; ch < 3; ch++) sum[ch] += p[ch];
        count++;
        mx += i % 32;
        my += i / 32;
    }
    *colour = *shape = -1;
    if (hi - lo < 60 || count < 12) return;  // too faint or too small
    int largest = 0;
    for (int i = 0; i < 32 * 32; i++) {
        int size = mask[i] == 1 ? piece_size(mask, i) : 0;
        largest = size > largest ? size : largest;
    }
    if (largest < 0.9 * count) return;  // in pieces: noise
    *colour = sum[0] >= sum[1] && sum[0] >= sum[2] ? 0 : sum[1] >= sum[2] ? 1 : 2;
    mx /= count;
    my /= count;
    double best = -1;
    for (int s = 0; s < 3; s++)
        for (int deg = 0; deg < (s == 0 ? 1 : s == 1 ? 90 : 360); deg += 5) {
            int both = 0, either = 0;
            for (int i = 0; i < 32 * 32; i++) {
                int t = in_template(s, i % 32 - mx, i / 32 - my, count, deg * PI / 180);
                both += t && mask[i];
                either += t || mask[i];
            }
            if ((double)both / either > best) {
                best = (double)both / either;
                *shape = s;
            }
        }
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

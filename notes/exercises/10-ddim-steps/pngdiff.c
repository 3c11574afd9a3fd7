// pngdiff A.png B.png: how far apart two pictures of the same size are, in the units of
// diffusion.c's images (pixel values 0..255 are the range [-1, 1], so one grey level is 2/255).
// Prints two numbers:
//   rms  = sqrt(mean over all pixels of (a - b)^2)     max = max over all pixels of |a - b|
// Pictures are read as grey (stb_image converts colour). Build: cc -O2 pngdiff.c -lm -o pngdiff
// Note that a grid written by `sample` has white 2-pixel gaps between the images; they are equal in
// both pictures, so they lower the rms by the same factor for every pair of grids of the same
// layout: compare such numbers with each other, not with numbers measured on single images.
#include <math.h>
#include <stdio.h>
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#if defined(__has_include)
#if __has_include(<stb/stb_image.h>)
#include <stb/stb_image.h>
#else
#include "stb_image.h"
#endif
#else
#include <stb/stb_image.h>
#endif

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: pngdiff A.png B.png\n"); return 2; }
    int wa, ha, wb, hb, ca, cb;
    unsigned char *a = stbi_load(argv[1], &wa, &ha, &ca, 1);
    if (!a) { fprintf(stderr, "pngdiff: %s: %s\n", argv[1], stbi_failure_reason()); return 1; }
    unsigned char *b = stbi_load(argv[2], &wb, &hb, &cb, 1);
    if (!b) { fprintf(stderr, "pngdiff: %s: %s\n", argv[2], stbi_failure_reason()); return 1; }
    if (wa != wb || ha != hb) {
        fprintf(stderr, "pngdiff: %s is %dx%d, %s is %dx%d\n", argv[1], wa, ha, argv[2], wb, hb);
        return 1;
    }
    double sum = 0, mx = 0;
    for (long i = 0; i < (long)wa * ha; i++) {
        double d = (a[i] - b[i]) / 127.5;
        sum += d * d;
        if (fabs(d) > mx) mx = fabs(d);
    }
    printf("%.6f %.6f\n", sqrt(sum / ((double)wa * ha)), mx);
    stbi_image_free(a), stbi_image_free(b);
    return 0;
}

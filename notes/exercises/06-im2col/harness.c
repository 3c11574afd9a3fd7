// Grading harness for exercise 6 (im2col_reference and col2im), built three ways by grade.sh
// (-DDOUBLE, float, -fopenmp); see harness.h.
//   harness twice      (the OpenMP build) both functions twice on the same image: the same bytes
//   harness ARGS...    notes/check.c's gradcheck and refcheck on the student's code
#include "../harness.h"

static int check_twice(void) {
    enum { C = 16, H = 14, W = 14, K = 3 };
    Rng r = {3};
    int fails = 0;
    real *img = randoms((size_t)C * H * W, &r);
    for (int stride = 1; stride <= 2; stride++) {
        size_t ncol = (size_t)C * K * K * conv_out_size(H, K, stride) * conv_out_size(W, K, stride);
        real *c1 = calloc(ncol, sizeof(real)), *c2 = calloc(ncol, sizeof(real));
        real *d1 = calloc((size_t)C * H * W, sizeof(real)),
             *d2 = calloc((size_t)C * H * W, sizeof(real));
        im2col_reference(c1, img, C, H, W, K, stride);
        im2col_reference(c2, img, C, H, W, K, stride);
        col2im(d1, c1, C, H, W, K, stride);
        col2im(d2, c2, C, H, W, K, stride);
        char what[64];
        snprintf(what, sizeof what, "im2col_reference, stride %d: col", stride);
        fails += same_bytes(what, c1, c2, ncol * sizeof(real));
        snprintf(what, sizeof what, "col2im, stride %d: dinp", stride);
        fails += same_bytes(what, d1, d2, (size_t)C * H * W * sizeof(real));
        free(c1), free(c2), free(d1), free(d2);
    }
    free(img);
    return fails;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "twice")) return check_twice() ? 1 : 0;
    return student_main(argc, argv);
}

// fuzz_idx.c — the Fashion-MNIST reader: read_maybe_gzip (gzip header, stb's inflate, size and CRC-32 checks)
// and the idx parsers, through load_idx(images_path, labels_path, request) at the default size (that of the images,
// as a multiple of 4 of at most 64, else 32: resize_box is reached too).
//
// Input: the images file. If it contains the 8 bytes "#labels#", what comes after them is the labels file and
// load_idx reads both (so the fuzzer also reaches the label parser and the count comparison); otherwise it reads
// the images alone, as for an idx file without labels. Either part may be gzipped or raw.
#include "fuzz.h"

static void fuzz_idx(const uint8_t *data, size_t size) {
    static const char marker[8] = "#labels#";
    const uint8_t *labels = NULL;
    size_t n_images = size, n_labels = 0;
    for (size_t i = 0; i + 8 <= size; i++)
        if (!memcmp(data + i, marker, 8)) { labels = data + i + 8, n_images = i, n_labels = size - i - 8; break; }
    const char *images_path = fuzz_write_file(0, data, n_images);
    const char *labels_path = labels ? fuzz_write_file(1, labels, n_labels) : NULL;
    if (setjmp(fuzz_env) == 0) {
        DataRequest r = {0, 0, DEFAULT_DATA_MB, NULL, 1};
        Dataset d = load_idx(images_path, labels_path, &r);
        // Accepted: the data set must be what the rest of the program assumes (draw_training_batch, cmd_forward).
        FUZZ_ASSERT(d.n >= 1 && d.c == 1 && d.h == d.w && d.h >= 4 && d.h <= 64 && d.h % 4 == 0, "n %d c %d h %d w %d", d.n, d.c, d.h, d.w);
        FUZZ_ASSERT(d.n_classes == (d.labels ? 10 : 0), "%d classes", d.n_classes);
        size_t count = (size_t)d.n * d.h * d.w;
        for (size_t i = 0; i < count; i++) FUZZ_ASSERT(d.pixels[i] >= -1 && d.pixels[i] <= 1, "pixel %zu is %g", i, d.pixels[i]);
        FUZZ_ASSERT(!!d.labels == !!labels, "labels %s", d.labels ? "invented" : "lost");
        if (d.labels)
            for (int i = 0; i < d.n; i++) FUZZ_ASSERT(d.labels[i] >= 0 && d.labels[i] <= 9, "label %d is %d", i, d.labels[i]);
        dataset_free(&d);
    } else {
        FUZZ_ASSERT(fuzz_exit_code == 1, "refused with exit code %d (runtime errors must exit 1)", fuzz_exit_code);
    }
}
FUZZ_TARGET(fuzz_idx)

// fuzz_image.c — the PNG/JPEG loader: load_images(path, {channels, 28}), i.e. our size checks (stbi_info and the
// decoded-size budget before any pixel is decoded), stb_image's decoders, and resize_box.
//
// Input: the image file itself. Its length picks the channels (odd: 3, RGB; even: 1, gray), so that both of
// the program's uses (`forward IMAGE` in gray and in colour, `train --data photos/`) are exercised.
#include "fuzz.h"

static void fuzz_image(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(0, data, size);
    int channels = size & 1 ? 3 : 1, side = 28;
    if (setjmp(fuzz_env) == 0) {
        DataRequest r = {channels, side, DEFAULT_DATA_MB, NULL, 1};
        Dataset d = load_images(path, &r);
        FUZZ_ASSERT(d.n == 1 && d.c == channels && d.h == side && d.w == side, "n %d c %d h %d w %d", d.n, d.c, d.h, d.w);
        for (int i = 0; i < channels * side * side; i++)
            FUZZ_ASSERT(d.pixels[i] >= -1 && d.pixels[i] <= 1, "pixel %d is %g", i, d.pixels[i]);
        dataset_free(&d);
    } else {
        FUZZ_ASSERT(fuzz_exit_code == 1, "refused with exit code %d (runtime errors must exit 1)", fuzz_exit_code);
    }
}
FUZZ_TARGET(fuzz_image)

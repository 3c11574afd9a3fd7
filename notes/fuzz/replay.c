// replay.c — runs the five fuzz harnesses on files, without libFuzzer, so that any C compiler with
// AddressSanitizer and UndefinedBehaviorSanitizer (gcc or clang) can check the corpus and every crash reproducer:
//
//     cc -g -O0 -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all replay.c -lm -o replay
//     ./replay TARGET FILE|DIR...     TARGET: idx, image, ckpt, args or ae;
//                                     a DIR stands for every file in it
//
// Prints "TARGET: N inputs OK" and exits 0, or stops at the first input that crashes (the sanitizer's report and
// the harness's "running FILE" line name it) with a non-zero status.
#define FUZZ_REPLAY
#include "fuzz.h"
#include "fuzz_ae.c"
#include "fuzz_args.c"
#include "fuzz_ckpt.c"
#include "fuzz_idx.c"
#include "fuzz_image.c"
#include <fcntl.h>

typedef void (*Harness)(const uint8_t *, size_t);

static int run_file(Harness fn, const char *path) {
    size_t len;
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "replay: %s: cannot open\n", path); return 0; }
    fseek(f, 0, SEEK_END);
    len = (size_t)ftell(f);
    rewind(f);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf || fread(buf, 1, len, f) != len) { fprintf(stderr, "replay: %s: cannot read\n", path); fclose(f); return 0; }
    fclose(f);
    fprintf(stderr, "replay: running %s\n", path);
    fn(buf, len);
    free(buf);
    return 1;
}

int main(int argc, char **argv) {
    static const struct { const char *name; Harness fn; } targets[] = {
        {"idx", fuzz_idx}, {"image", fuzz_image}, {"ckpt", fuzz_ckpt}, {"args", fuzz_args},
        {"ae", fuzz_ae}};
    Harness fn = NULL;
    for (size_t i = 0; argc >= 2 && i < sizeof targets / sizeof *targets; i++)
        if (!strcmp(argv[1], targets[i].name)) fn = targets[i].fn;
    if (!fn) { fprintf(stderr, "usage: replay idx|image|ckpt|args|ae FILE|DIR...\n"); return 2; }
    // The harnesses' own output (--help prints usage) goes nowhere; our one summary line goes to stdout.
    fflush(stdout);
    int out = dup(1), null = open("/dev/null", O_WRONLY);
    if (out < 0 || null < 0 || dup2(null, 1) < 0) { perror("replay"); return 2; }
    int n = 0, unreadable = 0;
    for (int a = 2; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) != 0) { fprintf(stderr, "replay: %s: not found\n", argv[a]); unreadable++; continue; }
        if (!S_ISDIR(st.st_mode)) { if (run_file(fn, argv[a])) n++; else unreadable++; continue; }
        DIR *dir = opendir(argv[a]);
        if (!dir) { unreadable++; continue; }
        char **names = NULL;
        int count = 0;
        for (struct dirent *e; (e = readdir(dir));) {
            if (e->d_name[0] == '.') continue;
            names = realloc(names, (size_t)(count + 1) * sizeof *names);
            size_t len = strlen(argv[a]) + strlen(e->d_name) + 2;
            names[count] = malloc(len);
            snprintf(names[count++], len, "%s/%s", argv[a], e->d_name);
        }
        closedir(dir);
        qsort(names, (size_t)count, sizeof *names, compare_strings);
        for (int i = 0; i < count; i++) {
            if (run_file(fn, names[i])) n++; else unreadable++;
            free(names[i]);
        }
        free(names);
    }
    fflush(stdout);
    dprintf(out, "%s: %d inputs %s\n", argv[1], n, unreadable ? "(some unreadable) FAIL" : "OK");
    return unreadable ? 1 : 0;
}

// fuzz_args.c — the command line: the command lookup of main(), parse_options(&opts, cmd, argc, argv), and
// through it parse_long, parse_double, parse_schedule and flag_value.
//
// Input: text, one argument per line (no trailing newline needed); the first line is the command, e.g.
//     train
//     --steps
//     100
// becomes `./diffusion train --steps 100`. At most 64 arguments.
//
// Besides "no crash", the harness checks what a parse that SUCCEEDED must mean: every option is in its range,
// and every argument was understood — a known flag of that command, the value of the flag before it, or the one
// IMAGE of `forward`. An argument that is neither refused nor understood is silently ignored: a bug. And the
// other way round, every line must be accepted as a file name: as the value of --ckpt, and (unless it starts
// with '-') as forward's IMAGE.
#include "fuzz.h"

enum { MAX_ARGS = 64 };

// Flags that take a value (all others are switches), as listed in `commands` and handled in parse_options.
static int takes_value(const char *a) {
    static const char *with_value[] = {"--schedule", "--T", "--seed", "--index", "--batch", "--n", "--label",
                                       "--steps", "--threads", "--minutes", "--lr", "--eta", "--guidance", "--width",
                                       "--out", "--data", "--ckpt", "--log", "--sampler", "--trajectory", "--ref",
                                       "--channels", "--size", "--max-data-mb"};
    for (size_t i = 0; i < sizeof with_value / sizeof *with_value; i++)
        if (!strcmp(a, with_value[i])) return 1;
    return 0;
}
static int is_switch(const char *a) { return !strcmp(a, "--uncond") || !strcmp(a, "--resume") || !strcmp(a, "--clip-x0"); }

static void check_understood(const Command *cmd, int argc, char **argv) {
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (takes_value(a)) i++;
        else if (is_switch(a)) continue;
        else FUZZ_ASSERT(a[0] != '-' && !strcmp(cmd->name, "forward"),
                         "argument %d '%s' of '%s' was neither refused nor understood", i, a, cmd->name);
    }
}

static void check_ranges(const Options *o) {
    FUZZ_ASSERT(o->schedule >= 0 && o->schedule <= 2, "schedule %d", (int)o->schedule);
    FUZZ_ASSERT(o->T >= 1 && o->T <= 100000, "T %d", o->T);
    FUZZ_ASSERT(o->index >= 0 && o->index <= MAX_IDX_ITEMS, "index %d", o->index);
    FUZZ_ASSERT(o->batch >= 0 && o->batch <= 4096, "batch %d", o->batch);  // 0: the command's default
    FUZZ_ASSERT(o->n >= 0 && o->n <= 4096, "n %d", o->n);
    FUZZ_ASSERT(o->channels == 0 || o->channels == 1 || o->channels == 3, "channels %d", o->channels);
    FUZZ_ASSERT(o->size >= 0 && o->size <= 256 && o->size % 4 == 0, "size %d", o->size);
    FUZZ_ASSERT(o->max_data_mb >= 1 && o->max_data_mb <= 1000000000L, "max_data_mb %ld", o->max_data_mb);
    FUZZ_ASSERT(o->steps >= 0 && o->steps <= 1000000000L, "steps %ld", o->steps);
    FUZZ_ASSERT(o->threads >= 0 && o->threads <= 1024, "threads %d", o->threads);
    FUZZ_ASSERT(o->minutes == 0 || (o->minutes >= 1e-3 && o->minutes <= 1e6), "minutes %g", o->minutes);
    FUZZ_ASSERT(o->lr >= 1e-12 && o->lr <= 1, "lr %g", o->lr);
    FUZZ_ASSERT(o->eta >= 0 && o->eta <= 1, "eta %g", o->eta);
    FUZZ_ASSERT(o->guidance >= -100 && o->guidance <= 100, "guidance %g", o->guidance);
    FUZZ_ASSERT(o->width == 0 || (o->width >= 8 && o->width <= 256), "width %d", o->width);
    FUZZ_ASSERT((int64_t)o->seed >= 0, "seed %llu", (unsigned long long)o->seed);
}

// The other direction: what must be ACCEPTED. Any string is a valid value of --ckpt (a file name), and any string
// not starting with '-' is a valid IMAGE for forward (a file name: "my photo.png" included).
static void check_accepted(const char *s) {
    char *ckpt_argv[] = {"diffusion", "export", "--ckpt", (char *)s, NULL};
    char *image_argv[] = {"diffusion", "forward", (char *)s, NULL};
    Options o;
    const Command *export_cmd = NULL, *forward_cmd = NULL;
    for (int i = 0; i < N_COMMANDS; i++) {
        if (!strcmp(commands[i].name, "export")) export_cmd = &commands[i];
        if (!strcmp(commands[i].name, "forward")) forward_cmd = &commands[i];
    }
    if (setjmp(fuzz_env) == 0) {
        parse_options(&o, export_cmd, 4, ckpt_argv, "./diffusion");
        FUZZ_ASSERT(o.ckpt && !strcmp(o.ckpt, s), "--ckpt '%s' was not taken as given", s);
    } else {
        FUZZ_ASSERT(0, "--ckpt '%s' was refused: any file name must do", s);
    }
    if (s[0] == '-') return;
    if (setjmp(fuzz_env) == 0) {
        parse_options(&o, forward_cmd, 3, image_argv, "./diffusion");
        FUZZ_ASSERT(o.image && !strcmp(o.image, s), "IMAGE '%s' was not taken as given", s);
    } else {
        FUZZ_ASSERT(0, "forward '%s' was refused: any file name not starting with '-' must do", s);
    }
}

static void fuzz_args(const uint8_t *data, size_t size) {
    // Split into lines, each a NUL-terminated argument (an embedded NUL simply ends that argument early).
    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = 0;
    char *argv[MAX_ARGS + 2] = {"diffusion"};
    int argc = 1;
    for (char *p = text; argc < MAX_ARGS + 1;) {
        argv[argc++] = p;
        char *nl = memchr(p, '\n', (size_t)(text + size - p));
        if (!nl) break;
        *nl = 0, p = nl + 1;
    }
    argv[argc] = NULL;
    if (setjmp(fuzz_env) == 0) {
        // as main() does
        const Command *cmd = NULL;
        for (int i = 0; i < N_COMMANDS; i++)
            if (!strcmp(argv[1], commands[i].name)) cmd = &commands[i];
        if (!cmd) die_usage(argv[1], "unknown command (try ./diffusion --help)");
        Options o;
        parse_options(&o, cmd, argc, argv, "./diffusion");
        check_ranges(&o);
        check_understood(cmd, argc, argv);
    } else {
        // --help exits 0; anything refused must exit 2 (usage)
        FUZZ_ASSERT(fuzz_exit_code == 0 || fuzz_exit_code == 2, "refused with exit code %d (usage errors must exit 2)", fuzz_exit_code);
    }
    for (int i = 1; i < argc; i++) check_accepted(argv[i]);
    free(text);
}
FUZZ_TARGET(fuzz_args)

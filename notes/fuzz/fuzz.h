// fuzz.h — what the four fuzz harnesses share. Each harness is one file that includes this header and defines
// one function `void fuzz_<name>(const uint8_t *data, size_t size)`; FUZZ_TARGET(fuzz_<name>) turns it into
// libFuzzer's entry point, or into nothing when the file is built into the plain replay program (replay.c).
//
// The loaders of diffusion.c are `static`, so we include the whole file here and call them directly. Every
// error path of diffusion.c ends in die() -> exit(); we turn exit into a longjmp back to the harness, so that a
// refused input is an ordinary (good) outcome and the fuzzer goes on. Memory owned by the loader at the moment
// it refused the input is then never freed: run the harnesses with leak detection off (-detect_leaks=0).
#ifndef FUZZ_H
#define FUZZ_H
#define _POSIX_C_SOURCE 200809L  // as diffusion.c does; must come before the first system header
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>  // declares the real exit() before we rename it below
#include <unistd.h>

static jmp_buf fuzz_env;
static int fuzz_exit_code;
__attribute__((noreturn)) static void fuzz_exit(int code) { fuzz_exit_code = code; longjmp(fuzz_env, 1); }

#define exit fuzz_exit
#define main diffusion_main
#include "../../diffusion.c"
#undef main
#undef exit

// An invariant the harness checks after a loader ACCEPTED an input. A violation is a bug: abort, so that
// libFuzzer (or the replay program, or ASan) reports it with the input that caused it.
#define FUZZ_ASSERT(cond, ...)                                                          \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz: %s:%d: invariant `%s` violated: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
            abort();                                                                    \
        }                                                                               \
    } while (0)

// The loaders take paths, so each input is written to a scratch file first. One file per slot (a harness may
// need two) per process, created once. On Linux the file is unlinked at once and reached through
// /proc/self/fd/N, so that nothing is left behind even when the fuzzer stops on a crash.
typedef struct { int fd; char path[64]; } FuzzFile;
static FuzzFile fuzz_files[2] = {{-1, ""}, {-1, ""}};

static void fuzz_unlink_all(void) {
    for (int i = 0; i < 2; i++)
        if (fuzz_files[i].fd >= 0 && strncmp(fuzz_files[i].path, "/proc/", 6)) unlink(fuzz_files[i].path);
}

static const char *fuzz_write_file(int slot, const uint8_t *data, size_t size) {
    FuzzFile *f = &fuzz_files[slot];
    if (f->fd < 0) {
        char tmpl[64];
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(tmpl, sizeof tmpl, "%s/diffusion-fuzz-XXXXXX", dir);
        f->fd = mkstemp(tmpl);
        if (f->fd < 0) { perror("fuzz: mkstemp"); abort(); }
        snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
        if (access(f->path, R_OK) == 0) unlink(tmpl);           // Linux: reach the unlinked file by its fd
        else { snprintf(f->path, sizeof f->path, "%s", tmpl); atexit(fuzz_unlink_all); }
    }
    if (ftruncate(f->fd, 0) != 0) { perror("fuzz: ftruncate"); abort(); }
    for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(f->fd, data + done, size - done, (off_t)done);
        if (w <= 0) { perror("fuzz: pwrite"); abort(); }
        done += (size_t)w;
    }
    return f->path;
}

#ifdef FUZZ_REPLAY
#define FUZZ_TARGET(fn)
#else
#define FUZZ_TARGET(fn)                                                       \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);             \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {            \
        fn(data, size);                                                       \
        return 0;                                                             \
    }
#endif
#endif

#!/bin/sh
# replay.sh — every file of notes/fuzz/corpus (the seeds and the reproducers of crashes the fuzzers found) through
# the fuzz harnesses, built with the system C compiler (gcc is enough, no libFuzzer) under AddressSanitizer and
# UndefinedBehaviorSanitizer. One line per harness, "idx: 5 inputs OK"; exit 1 if any input crashes or trips a
# sanitizer. One compile at -O0 (3x quicker to build than -O1; ~3 s of CPU) and a fraction of a second of running.
#   usage: notes/fuzz/replay.sh          (from anywhere; CC=clang to use clang)
cd "$(dirname "$0")" || exit 2
CC=${CC:-cc}
work=$(mktemp -d "${TMPDIR:-/tmp}/diffusion-replay.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
if ! $CC -g -O0 -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all replay.c -lm -o "$work/replay" 2> "$work/build.log"; then
    cat "$work/build.log" >&2
    echo "replay: cannot build replay.c with $CC -fsanitize=address,undefined" >&2
    exit 1
fi
# A refused input leaves what the loader had allocated when die() jumped out (fuzz.h): leak checks are off.
export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1
failed=0
for t in idx image ckpt args ae; do
    n=$(ls "corpus/$t" | wc -l)
    if "$work/replay" "$t" "corpus/$t" > /dev/null 2> "$work/$t.log"; then
        echo "$t: $n inputs OK"
    else
        # the sanitizers stop at the first bad input: try each file alone to name all of them
        bad=""
        for f in "corpus/$t"/*; do
            "$work/replay" "$t" "$f" > /dev/null 2> "$work/one.log" || bad="$bad $(basename "$f")"
        done
        echo "$t: $n inputs FAIL:$bad"
        grep -v '^replay: running' "$work/$t.log" | grep -v '^diffusion: ' | head -20 >&2
        failed=1
    fi
done
exit $failed

#!/usr/bin/env bash
# grade.sh N [STUDENT.c]
#
# Grades exercise N on the student's copy of diffusion.c (default: notes/exercises/NN-name/diffusion.c, the copy
# made by `make_stub.sh N`). Every grader builds the student's file itself and runs the program's own checks
# (schedule tables, `check` claims, `gradcheck`, `refcheck`, `train`) or a small harness (NN-name/harness.c) that
# #includes the student's file and compares its functions with plain references, so the result says what a
# student can also see by running the same commands. Exit 0 when every check passes, 1 when one fails, 2 on a
# usage error. The last line is "exercise N: PASS" or "exercise N: FAIL (k check(s) failed)".
#
# Builds use `cc -Os` (GRADE_CFLAGS overrides): it compiles 2-3 times faster than -O2 and runs these small checks
# as fast; exercises 1, 2 and 3, whose checks take less time than an optimised compilation, use -O0. Builds and
# runs are `nice -n 19` (GRADE_NICE overrides) so that grading does not slow down a training run on the same
# machine. GRADE_CACHE=DIR reuses identical builds (same flags, same source) across gradings; the selftest sets it.
#
# GRADE_FAST=1 (the selftest, on stubs and wrong solutions) stops after the first group of checks that fails: the
# verdict cannot change (a FAIL stays a FAIL), only the expensive checks after it are skipped.
#
# DIFFUSION_C=path: the real code (default: the repository's diffusion.c; the selftest passes its own) that the
# fresh stub is made from, and that the 20-step checkpoint of exercises 4 and 7 takes the real draw_training_batch or
# adamw_step from.
#
# Exercise 10, part 2 (the measurement): CSV=path (default: ddim_steps.csv beside the student's file), CKPT=path
# (default: model.ckpt beside it), REQUIRE_CSV=1 to fail a hand-in without them, PART=1 or PART=2 to grade one
# part only.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
EXERCISES_DIR=$here
. "$here/lib.sh"
usage() {
    echo "usage: grade.sh N|NAME [STUDENT.c]   (N = 1..13 in lecture order, or a name such as ddpm-step;" >&2
    echo "       the exercises were renumbered: see notes/exercises/README.md)" >&2
    exit 2
}
[ $# -ge 1 ] || usage
dir=$(exercise_dir "$1") || true
[ -n "$dir" ] || usage
n=$(exercise_number "$dir") name=$(exercise_name "$dir")
student=${2:-$dir/diffusion.c}
if [ ! -f "$student" ]; then
    echo "grade.sh: $student: no such file (make your copy with: notes/exercises/make_stub.sh $n $student)" >&2
    exit 2
fi
student=$(cd "$(dirname "$student")" && pwd)/$(basename "$student")
source_c=${DIFFUSION_C:-$root/diffusion.c}
check_c=$root/notes/check.c

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
NICE="nice -n ${GRADE_NICE:-19}"
case $name in forward-sde | cosine-schedule | posterior-coefficients) OPT=-O0 ;; *) OPT=-Os ;; esac
OPT=${GRADE_CFLAGS:-$OPT}
failed=0
pass() { printf '  PASS  %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; failed=$((failed + 1)); }
note() { printf '  ....  %s\n' "$*"; }
finish() {
    if [ $failed -eq 0 ]; then echo "exercise $n: PASS"; exit 0; fi
    echo "exercise $n: FAIL ($failed check(s) failed)"
    exit 1
}
fast_stop() {  # GRADE_FAST=1: the verdict is FAIL already, skip the rest
    if [ "${GRADE_FAST:-0}" = 1 ] && [ $failed -gt 0 ]; then note "GRADE_FAST=1: the remaining checks are skipped"; finish; fi
}
indent() { sed 's/^/        /'; }

# integrity: the student's file must be a fresh stub (make_stub.sh, from the same diffusion.c) with
# only the bodies of the TODO regions changed (make_stub.sh --regions), and lines added right
# after a TODO comment at file scope (exercise attention-heads: an enum); inside them, no
# preprocessor line but `#pragma omp`. So nothing the student writes can reach the graders' code
# (notes/check.c and the harness are compiled after the student's file, in the same unit).
integrity() {
    if ! "$here/make_stub.sh" "$n" "$work/stub.c" "$source_c" > "$work/stub.txt" 2>&1; then
        fail "cannot make a fresh stub to compare with: $(head -1 "$work/stub.txt")"; return
    fi
    local regions
    regions=$(exercise_regions "$name")
    diff "$work/stub.c" "$student" > "$work/diff.txt"
    awk -v names=" $regions " -v stubfile="$work/stub.c" -v list="$(echo "$regions" | sed 's/ /, /g')" '
        BEGIN {  # the regions: [first, last] body lines of each function, in the stub
            while ((getline l < stubfile) > 0) {
                k++
                if (l ~ /^\/\/.*TODO \(exercise/) todo = 1
                else if (todo && l !~ /^\/\//) { todo = 0; after[k - 1] = 1 }  # insertions after line k-1
                if (!sig && !body && match(l, /^static [^=;(]*[ *][A-Za-z_0-9]+\(/)) {
                    nm = substr(l, 1, RLENGTH - 1); sub(/.*[ *]/, "", nm)
                    if (index(names, " " nm " ")) sig = 1
                }
                if (sig) { if (l ~ /;[ \t]*(\/\/.*)?$/) sig = 0
                           else if (l ~ /\{[ \t]*(\/\/.*)?$/) { sig = 0; body = 1; first[++nr] = k + 1; continue } }
                if (body && l ~ /^}/) { body = 0; last[nr] = k - 1 }
            }
        }
        function inside(a, b,   i) { for (i = 1; i <= nr; i++) if (a >= first[i] && b <= last[i]) return 1; return 0 }
        function stop(what) { if (!bad) { bad = 1; print what } }
        /^[0-9]/ {
            hunk = $0; split(hunk, p, /[acd]/); op = hunk; gsub(/[0-9,]/, "", op)
            n1 = split(p[1], s, ","); s1 = s[1]; s2 = n1 > 1 ? s[2] : s[1]
            n2 = split(p[2], t, ","); t1 = t[1]
            ok = op == "a" ? (inside(s1 + 1, s1) || inside(s1, s1 - 1) || (s1 in after)) : inside(s1, s2)
            if (!ok) {
                if (op == "d") stop(sprintf("line %d of the stub (after your line %d) is deleted: it is outside the TODO regions (the bodies of %s)", s1, t1, list))
                else if (op == "a") stop(sprintf("your line %d is added outside the TODO regions (the bodies of %s)", t1, list))
                else stop(sprintf("your line %d differs from the stub outside the TODO regions (the bodies of %s)", t1, list))
                if (bad == 1) { bad = 2; show = 1 }
            }
            tl = t1; next
        }
        /^> / {
            text = substr($0, 3)
            if (show) { print "    " text; show = 0 }
            if (text ~ /^[ \t]*(#|%:|\?\?=)/ && text !~ /^[ \t]*#[ \t]*pragma[ \t]+omp[ \t]/ || text ~ /_Pragma/)
                stop(sprintf("your line %d is a preprocessor line (only #pragma omp is allowed in your code): %s", tl, text))
            tl++; next
        }
        /^< / { if (show && op == "d") { print "    " substr($0, 3); show = 0 } }
        END { exit bad ? 1 : 0 }' "$work/diff.txt" > "$work/integrity.txt"
    if [ $? -eq 0 ]; then
        pass "your file is the stub with only the TODO regions written (the bodies of $(echo "$regions" | sed 's/ /, /g'))"
    else
        fail "$(head -1 "$work/integrity.txt")"; tail -n +2 "$work/integrity.txt" | indent
        note "write only inside the TODO regions; a fresh copy: notes/exercises/make_stub.sh $n new.c"
    fi
}

# build NAME SOURCE HARNESS|- [CFLAGS...]: compiles SOURCE (with HARNESS: the harness, which includes
# notes/check.c, which includes SOURCE, each without its main) to $work/NAME. A file that does not
# compile fails the grade.
# With GRADE_CACHE (the selftest), identical builds are reused, and stb_image's implementation, a third of the
# compile time, is compiled once: the file is compiled without its two `#define STB_..._IMPLEMENTATION` lines and
# linked with an object of its own preamble (the lines up to its stb includes) compiled with them.
build() {
    local name=$1 src=$2 harness=$3 key="" what extra=(); shift 3
    what="cc $OPT${*:+ $*}"
    if [ "$harness" = - ]; then what="$what $(basename "$src") -lm"
    else what="$what $(basename "$(dirname "$harness")")/$(basename "$harness") -lm, with notes/check.c and $(basename "$src")"; fi
    if [ -n "${GRADE_CACHE:-}" ]; then
        mkdir -p "$GRADE_CACHE"
        key=$({ echo "$OPT $* $harness"; cat "$src"; [ "$harness" = - ] || cat "$harness" "$here/harness.h" "$check_c"; } | sha1sum | cut -c1-20)
        if [ -x "$GRADE_CACHE/$key" ]; then
            cp "$GRADE_CACHE/$key" "$work/$name" && { pass "compiles ($what; the same build as before)"; return 0; }
        fi
        local split=$work/$name.src
        mkdir -p "$split"
        if [ "$(grep -c -e '^#define STB_IMAGE_IMPLEMENTATION$' -e '^#define STB_IMAGE_WRITE_IMPLEMENTATION$' "$src")" = 2 ] &&
            awk '{ l[NR] = $0 } /stb_image_write\.h/ { last = NR } END { if (!last) exit 1; k = last
                 while (l[k + 1] ~ /^#endif/) k++; for (i = 1; i <= k; i++) print l[i] }' "$src" > "$split/stb.c"; then
            local skey
            skey=$({ echo "$OPT"; grep '^[[:space:]]*#' "$split/stb.c"; } | sha1sum | cut -c1-20)
            if [ ! -f "$GRADE_CACHE/stb-$skey.o" ] &&
                $NICE cc $OPT -w -I"$(dirname "$src")" -c "$split/stb.c" -o "$split/stb.o" 2> /dev/null; then
                mv "$split/stb.o" "$GRADE_CACHE/stb-$skey.o.$$" && mv "$GRADE_CACHE/stb-$skey.o.$$" "$GRADE_CACHE/stb-$skey.o"
            fi
            if [ -f "$GRADE_CACHE/stb-$skey.o" ]; then
                grep -v -e '^#define STB_IMAGE_IMPLEMENTATION$' -e '^#define STB_IMAGE_WRITE_IMPLEMENTATION$' "$src" > "$split/$(basename "$src")"
                extra=("$GRADE_CACHE/stb-$skey.o" -I"$(dirname "$src")")  # for a local stb_image.h
                src=$split/$(basename "$src")
            fi
        fi
    fi
    local cmd=(cc $OPT "$@" -iquote "$work")  # $work: files the grader makes (guided_eps.c)
    if [ "$harness" = - ]; then cmd+=("$src"); else cmd+=(-DSTUDENT_C="\"$src\"" -DCHECK_C="\"$check_c\"" "$harness"); fi
    cmd+=("${extra[@]}" -lm -o "$work/$name")
    if $NICE "${cmd[@]}" 2> "$work/$name.cc.txt"; then
        if [ -n "$key" ]; then cp "$work/$name" "$GRADE_CACHE/$key.$$" && mv "$GRADE_CACHE/$key.$$" "$GRADE_CACHE/$key"; fi
        pass "compiles ($what)"
        return 0
    fi
    fail "does not compile ($what):"
    head -20 "$work/$name.cc.txt" | indent
    return 1
}

# compare_table OURS REF TOL: two `schedule` tables (t then 6 columns), matched by t. Every number must satisfy
# |ours - ref| <= TOL |ref| + 1e-18 (the floor only matters for entries that are exactly 0, like beta_tilde_1).
# Prints the worst relative error; returns 1 on any mismatch, missing row, or non-number (nan, inf).
compare_table() {
    awk -v tol="$3" '
        function num(s) { return s ~ /^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/ }
        function problem(s) { if (++nprob <= 3) bad = bad s "; " }
        BEGIN { split("t beta alpha alpha_bar beta_tilde coef_x0 coef_xt", col, " ") }
        FNR == NR { if ($0 !~ /^#/ && NF) { ref[$1] = $0; nref++ }; next }
        $0 ~ /^#/ || !NF { next }
        {
            nours++
            if (!($1 in ref)) { problem("unexpected row t=" $1); next }
            seen[$1] = 1
            split(ref[$1], r)
            if (NF != 7) { problem("row t=" $1 " has " NF " columns, not 7"); next }
            for (i = 2; i <= 7; i++) {
                if (!num($i)) { problem("t=" $1 " " col[i] " is \"" $i "\""); continue }
                d = $i - r[i]; if (d < 0) d = -d
                a = r[i] < 0 ? -r[i] : r[i]
                rel = a > 0 ? d / a : d
                if (rel > worst) { worst = rel; where = col[i] " at t=" $1 }
                if (d > tol * a + 1e-18 || d != d) { nbad++; if (!(col[i] in off)) { off[col[i]] = 1; offl = offl (offl ? ", " : "") col[i] } }
            }
        }
        END {
            for (t in ref) if (!(t in seen)) missing++
            if (missing) problem(missing " rows missing")
            printf "worst relative error %.3g (%s)%s", worst, where ? where : "-", nbad ? ", " nbad " numbers off, in " offl : ""
            if (nprob) printf "; %s%s", bad, (nprob > 3 ? "... (" nprob " problems)" : "")
            exit (nbad || nprob) ? 1 : 0
        }' "$2" "$1"
}

# schedule_vs_reference BINARY SCHEDULE T [BUILD]: one schedule table against data/schedule_SCHEDULE_TT.txt (numpy, float64).
schedule_vs_reference() {
    local ref=$root/data/schedule_$2_T$3.txt msg
    $NICE "$1" schedule --schedule "$2" --T "$3" > "$work/table.txt" 2> "$work/table.err" || { fail "schedule --schedule $2 --T $3 exits with an error"; return; }
    if msg=$(compare_table "$work/table.txt" "$ref" 1e-9); then
        pass "${4:+($4) }schedule $2 T=$3 = $(basename "$ref") within 1e-9: $msg"
    else
        fail "${4:+($4) }schedule $2 T=$3 vs $(basename "$ref"): $msg"
    fi
}

# harness_lines FILE RC: every line of a harness's output that ends in PASS or FAIL is one check, and
# the grader judges it again: the number before "(tol X)" must be <= X (a NaN is not), whatever the
# line says. Other lines (notes) are shown under the check they follow. A non-zero exit without a
# FAIL line (a crash) fails too.
harness_lines() {
    local line any=0 verdict
    while IFS= read -r line; do
        case $line in
            *PASS | *FAIL)
                verdict=$(echo "$line" | awk '
                    function num(x) { return x ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/ }
                    {
                        v = $NF
                        for (i = 1; i < NF; i++) {
                            if ($i == "(tol") { e = $(i - 1); t = $(i + 1) }
                            if ($i == "measured") m = $(i + 1)
                            if ($i == "expected") x = $(i + 1)
                            if ($i == "tol") t2 = $(i + 1)
                        }
                        sub(/\)$/, "", t)
                        if (e == "" && m != "")  # notes/check.c: measured M expected X tol T
                            ok = num(m) && num(x) && num(t2) && m - x <= t2 + 0 && x - m <= t2 + 0
                        else if (e == "") { print v; exit }  # a line without a number: its word
                        else ok = num(e) && e + 0 <= t + 0
                        if (ok && v == "PASS") print "PASS"
                        else if (!ok && v == "FAIL") print "FAIL"
                        else print "MISMATCH"
                    }')
                l=$(echo "$line" | sed 's/^ *//; s/  */ /g; s/ PASS$//; s/ FAIL$//')
                case $verdict in
                    PASS) pass "$l" ;;
                    FAIL) fail "$l"; any=1 ;;
                    *) fail "$l: the line's verdict does not follow from its numbers"; any=1 ;;
                esac ;;
            *) echo "$line" | indent ;;
        esac
    done < "$1"
    [ "$2" -eq 0 ] || [ $any = 1 ] || fail "the harness stopped with exit status $2 (see above)"
}

# gradcheck_lines FILE RC LAYER...: the rows of notes/check.c's gradcheck for the layers concerned,
# its summary line "# N of M layer checks failed" (N must be 0), and every check after it (PART II's
# fast code against the plain code). The grader judges each number again with its own tolerance:
# the relative error of a layer row <= 1e-6 in the -DDOUBLE build (the proof), <= 5e-2 in float
# (finite differences in float are ~1e-3 at best); the fast-vs-plain errors <= 1e-12 (double),
# 1e-5 (float); im2col vs im2col_reference: 0 entries wrong; exp_real: 1.5e-7.
gradcheck_lines() {
    local file=$1 rc=$2 row line before=$failed build tol tolfp; shift 2
    if grep -q '^# gradcheck: .*double' "$file"; then build=double tol=1e-6 tolfp=1e-12; else build=float tol=5e-2 tolfp=1e-5; fi
    for row in "$@"; do
        line=$(grep -E -- "^$row " "$file" | head -1)
        if [ -z "$line" ]; then fail "gradcheck ($build): no row '$row'"; continue; fi
        if echo "$line" | awk -v tol=$tol '{ r = $(NF - 1); exit !($NF == "PASS" && r ~ /^[0-9.]+([eE][-+]?[0-9]+)?$/ && r + 0 <= tol) }'; then
            pass "gradcheck ($build), relative error <= $tol: $(echo "$line" | sed 's/  */ /g')"
        else fail "gradcheck ($build), relative error must be <= $tol: $(echo "$line" | sed 's/  */ /g')"; fi
    done
    line=$(grep -E '^# [0-9]+ of [0-9]+ layer checks failed' "$file" | head -1)
    if [ -z "$line" ]; then fail "gradcheck ($build): no summary line '# N of M layer checks failed' (exit status $rc)"; sed -n '1,40p' "$file" | indent; return; fi
    if [[ $line == "# 0 of "* ]]; then pass "gradcheck ($build): $line"
    else
        fail "gradcheck ($build): $line"
        sed -n '/^layer /,/^# [0-9]* of/p' "$file" | grep 'FAIL$' | while IFS= read -r l; do
            for row in "$@"; do [[ $l =~ ^$row\  ]] && continue 2; done
            note "also failing: $(echo "$l" | sed 's/  */ /g')"
        done
    fi
    sed -n '/^# [0-9]* of [0-9]* layer checks failed/,$p' "$file" | tail -n +2 | grep -E 'PASS|FAIL' |
        awk -v tol=$tolfp '{ v = $0 ~ /PASS/ ? "PASS" : "FAIL"; e = ""
                for (i = 1; i <= NF; i++) if ($i ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/ || $i == "nan" || $i == "-nan") { e = $i; break }
                t = tol; if ($0 ~ /im2col vs im2col_reference/) t = 0; if ($0 ~ /^exp_real/) t = 1.5e-7
                ok = e ~ /^-?[0-9.]/ && e + 0 <= t
                print (ok && v == "PASS" ? "pass" : "fail"), t, $0 }' > "$work/after.txt"
    while read -r verdict t l; do
        if [ "$verdict" = pass ]; then pass "gradcheck ($build), <= $t: $(echo "$l" | sed 's/  */ /g')"
        else fail "gradcheck ($build), must be <= $t: $(echo "$l" | sed 's/  */ /g')"; fi
    done < "$work/after.txt"
    if [ "$rc" -ne 0 ] && [ $failed -eq "$before" ]; then fail "gradcheck exited with status $rc"; tail -5 "$file" | indent; fi
}

# three_builds HARNESS [CFLAGS...]: builds the harness with the student's file as dd (-DDOUBLE),
# f (float, the build that trains) and omp (float, -fopenmp, run with 4 threads). Stops the grade
# (FAIL) if one does not compile.
three_builds() {
    local h=$1; shift
    build dd "$student" "$h" -DDOUBLE "$@" && build f "$student" "$h" "$@" && build omp "$student" "$h" -fopenmp "$@" || finish
}
# run BUILD ARGS...: runs a build of the harness into $work/out.txt (omp: 4 threads) and judges its lines
run() {
    local b=$1; shift
    echo "  -- $b build: $*"
    if [ "$b" = omp ]; then OMP_NUM_THREADS=4 $NICE "$work/$b" "$@" > "$work/out.txt" 2>&1
    else $NICE "$work/$b" "$@" > "$work/out.txt" 2>&1; fi
    harness_lines "$work/out.txt" $?
}
# tables BUILD KIND:T...: schedule tables against data/schedule_KIND_TT.txt (numpy, float64), 1e-9
tables() {
    local b=$1 k; shift
    for k in "$@"; do schedule_vs_reference "$work/$b" "${k%:*}" "${k#*:}" "$b"; done
}
# gradcheck BUILD ROW...: notes/check.c's gradcheck in the build, its rows judged again
gradcheck() {
    local b=$1; shift
    $NICE "$work/$b" gradcheck > "$work/gc.txt" 2>&1
    gradcheck_lines "$work/gc.txt" $? "$@"
}

echo "grading exercise $n ($(basename "$dir")) on $student"
integrity
fast_stop
harness=$dir/harness.c
[ -f "$harness" ] || harness=$here/schedules.c

# fashion_data: the first 2000 Fashion-MNIST images, uncompressed, in $work/data (loading all 60000
# would take longer than the training); sets $data.
fashion_data() {
    fm=/usr/share/datasets/fashion-mnist data=fashion-mnist
    if mkdir -p "$work/data" &&
        { zcat "$fm/train-images-idx3-ubyte.gz" 2> /dev/null | head -c $((16 + 2000 * 784)) > "$work/data/train-images-idx3-ubyte"; } &&
        { zcat "$fm/train-labels-idx1-ubyte.gz" 2> /dev/null | head -c $((8 + 2000)) > "$work/data/train-labels-idx1-ubyte"; } &&
        [ "$(wc -c < "$work/data/train-images-idx3-ubyte")" -eq $((16 + 2000 * 784)) ]; then
        for f in "$work"/data/train-*; do printf '\x00\x00\x07\xd0' | dd of="$f" bs=1 seek=4 conv=notrunc 2> /dev/null; done  # count 2000
        data=$work/data/train-images-idx3-ubyte
    fi
}
# checkpoint_20 FUNCTION: 20 training steps (float build) with the student's file and with the
# student's file where FUNCTION is diffusion.c's: the checkpoints (weights, AdamW moments, EMA) must
# be the same bytes.
checkpoint_20() {
    fashion_data
    tiny=(train --data "$data" --width 8 --batch 8 --seed 7)
    $NICE "$work/f" "${tiny[@]}" --steps 20 --ckpt "$work/s.ckpt" --log "$work/loss.csv" > "$work/train.txt" 2>&1
    if "$here/make_stub.sh" --transplant "$1" "$student" "$work/ref.c" "$source_c" > "$work/ref.txt" 2>&1; then
        ok=1
        if cmp -s "$student" "$work/ref.c"; then cp "$work/s.ckpt" "$work/r.ckpt" 2> /dev/null  # the same file
        elif build r "$work/ref.c" "$harness"; then $NICE "$work/r" "${tiny[@]}" --steps 20 --ckpt "$work/r.ckpt" > /dev/null 2>&1
        else ok=0; fi
        if [ $ok = 1 ]; then
            if [ -s "$work/s.ckpt" ] && cmp -s "$work/s.ckpt" "$work/r.ckpt"; then
                pass "(f) train --width 8 --batch 8 --seed 7 --steps 20: the checkpoint is bit for bit the one with diffusion.c's $1"
            else
                fail "(f) train --width 8 --batch 8 --seed 7 --steps 20: the checkpoint differs from the one with diffusion.c's $1 ($(cmp "$work/s.ckpt" "$work/r.ckpt" 2>&1 | head -1))"
                tail -2 "$work/train.txt" | indent
            fi
        fi
    else
        fail "cannot put diffusion.c's $1 into your file"; indent < "$work/ref.txt"
    fi
}

case $name in
forward-sde)  # Step 1: the sde schedule and its integral; claim (b) of notes/check.c on them
    three_builds "$harness" -DCHECK_SAMPLES=10000
    for b in dd f omp; do tables $b sde:10 sde:1000 linear:1000; done
    run omp twice
    fast_stop
    # claim (b) (10^4 samples, not 10^5: the tolerances scale with it), every line judged again with
    # the grader's own expected value and tolerance. vp_beta(u) = 0.1 + 19.9 u, I(u) = int_0^u vp_beta.
    $NICE "$work/f" sdes > "$work/b.txt" 2>&1; rc=$?
    awk '
        function I(u) { return 0.1 * u + 0.5 * 19.9 * u * u }
        function ab(x) { return x < 0 ? -x : x }
        /^\(b[12]\)/ {
            v = substr($0, 3, 1); match($0, /\(([0-9]+) steps\)/); M = substr($0, RSTART + 1, RLENGTH - 8) + 0
            match($0, /n=[0-9]+/); N = substr($0, RSTART + 2, RLENGTH - 2) + 0
            drift = v == 1 ? 0.5 : 1; seen[v] = 1; next
        }
        /^  u=[0-9.]+ .*(mean|variance) +measured/ {
            u = substr($1, 3) + 0; what = $0 ~ / mean +measured/ ? "mean" : "variance"
            for (i = 1; i <= NF; i++) { if ($i == "measured") meas = $(i + 1); if ($i == "expected") exp_s = $(i + 1); if ($i == "tol") tol_s = $(i + 1) }
            verdict = $NF
            du = 1 / M; em_m = 1; em_v = 0
            for (j = 1; j * du <= u + 1e-12; j++) { b = 0.1 + 19.9 * (j - 1) * du; a = 1 - drift * b * du; em_m *= a; em_v = a * a * em_v + b * du }
            ex_m = exp(-drift * I(u)); ex_v = v == 1 ? 1 - exp(-I(u)) : 0.5 * (1 - exp(-2 * I(u)))
            if (what == "mean") { want = ex_m; tol = 5 * sqrt(ex_v / N) + ab(em_m - ex_m) }
            else { want = ex_v; tol = 5 * ex_v * sqrt(2 / (N - 1)) + ab(em_v - ex_v) }
            problem = ""
            if (verdict != "PASS") problem = problem "; the line says " verdict
            if (!(ab(meas - want) <= tol)) problem = problem sprintf("; measured %g is %.3g from the SDE law %.6g (grader tol %.3g)", meas, ab(meas - want), want, tol)
            if (!(ab(exp_s - want) <= 2e-5 * ab(want) + 1e-9)) problem = problem sprintf("; the line expects %s (1 - alpha_bar or sqrt(alpha_bar) of your sde schedule), the law is %.6g", exp_s, want)
            if (!(ab(tol_s - tol) <= 0.02 * tol)) problem = problem sprintf("; its tolerance %s is not the grader%ss %.3g", tol_s, "\047", tol)
            name = sprintf("(b%s) u=%.2f %s", v, u, what)
            if (problem == "") printf "pass %s: measured %s, law %.6g, tol %.3g\n", name, meas, want, tol
            else printf "fail %s%s\n", name, problem
            lines[v]++
            next
        }
        /slide.s SDE at u=1 is N\(0, 1\/2\)/ { erratum = $0 ~ /PASS/ ? "pass" : "fail"; eline = $0 }
        END {
            for (v = 1; v <= 2; v++) if (lines[v] != 8) printf "fail (b%d): %d lines of u=0.25 .. 1.00 mean/variance, not 8\n", v, lines[v] + 0
            if (erratum == "") print "fail the erratum line (slide\047s SDE at u=1 is N(0, 1/2), not N(0, 1)) is missing"
            else { gsub(/  +/, " ", eline); print erratum " the erratum:" eline }
        }' "$work/b.txt" > "$work/b.judged"
    while read -r verdict l; do if [ "$verdict" = pass ]; then pass "(f) claim $l"; else fail "(f) claim $l"; fi; done < "$work/b.judged"
    if [ $rc -ne 0 ] && ! grep -q '^fail' "$work/b.judged"; then fail "claim (b) exited with status $rc"; tail -5 "$work/b.txt" | indent; fi ;;
cosine-schedule)
    three_builds "$harness"
    for b in dd f omp; do tables $b cosine:10 cosine:1000 linear:1000 sde:1000; done  # and the others still right
    run omp twice ;;
posterior-coefficients)
    three_builds "$harness"
    for b in dd f omp; do tables $b linear:10 linear:1000 cosine:10 cosine:1000 sde:10 sde:1000; done
    run omp twice ;;
training-batch-loss)  # Steps 3-4: the training tuples and the loss
    three_builds "$harness"
    for b in dd f; do run $b draw; run $b mse; done
    run omp twice
    gradcheck dd 'mse loss'
    gradcheck f 'mse loss'
    fast_stop
    checkpoint_20 draw_training_batch
    # ... and 80 more: from ~1 (eps_theta = 0 at the start) the loss must fall.
    [ -s "$work/s.ckpt" ] && $NICE "$work/f" train --data "$data" --resume --steps 80 --ckpt "$work/s.ckpt" --log "$work/loss.csv" >> "$work/train.txt" 2>&1
    if msg=$(awk -F, 'NR > 1 && NR <= 11 { a += $2 } NR > 81 { b += $2; n++ }
        END { if (!n) { print "no loss log"; exit 1 }
              printf "first 10 steps %.3f, last 20 steps %.3f", a / 10, b / n; exit !(a / 10 > 0.9 && b / n < 0.8) }' "$work/loss.csv" 2>/dev/null); then
        pass "... --steps 100 (20 + 80 resumed): the loss falls from ~1 to below 0.8 ($msg)"
    else
        fail "... --steps 100 (20 + 80 resumed): the loss must fall from ~1 to below 0.8 (${msg:-no log}; the real code: 0.985 and 0.63)"
        tail -2 "$work/train.txt" | indent
    fi
    ;;
backward-silu-groupnorm)  # silu_backward and groupnorm_backward: += and the gradients, by name
    three_builds "$harness"
    for b in dd f; do run $b accumulate; run $b grads; done
    run omp twice
    fast_stop
    for b in dd f; do gradcheck $b silu groupnorm 'resblock \(input \+ params\)' 'attention \(input \+ params\)' 'whole U-Net \(params\)'; done ;;
im2col)
    three_builds "$harness"
    run omp twice
    for b in dd f; do gradcheck $b 'conv2d 3x3 stride 1' 'conv2d 3x3 stride 2'; done
    fast_stop
    $NICE "$work/f" refcheck --ref "$root/data/unet_ref.bin" > "$work/ref.txt" 2>&1; rc=$?
    grep -E 'output eps_theta|^loss|worst' "$work/ref.txt" | indent
    if [ $rc -eq 0 ]; then pass "(f) refcheck: output, loss and every gradient agree with PyTorch"
    else fail "(f) refcheck against PyTorch (data/unet_ref.bin): $(grep -E 'checks failed|FAIL' "$work/ref.txt" | head -3 | sed 's/  */ /g' | tr '\n' ';')"; fi ;;
adamw-ema)  # the optimiser step and the EMA
    three_builds "$harness"
    for b in dd f; do run $b adamw; done
    run omp twice
    fast_stop
    checkpoint_20 adamw_step ;;
attention-heads)
    three_builds "$harness"
    for b in dd f; do run $b heads; done
    run omp twice
    fast_stop
    for b in dd f; do gradcheck $b 'attention \(input \+ params\)' 'whole U-Net \(params\)'; done
    if $NICE "$work/f" refcheck --ref "$root/data/unet_ref.bin" > "$work/ref.txt" 2>&1; then
        note "refcheck against the 1-head PyTorch reference still passes (unexpected with 2 heads)"
    else
        note "refcheck against the 1-head PyTorch reference now fails, as it should: $(grep 'output eps_theta' "$work/ref.txt" | sed 's/  */ /g')"
    fi ;;
ddpm-step)  # eq. (2) and the DDPM step, clip off and on, against the harness's references
    three_builds "$harness"
    for b in dd f; do run $b ddpm; done
    run omp twice ;;
ddim-steps)  # part 1: the DDIM step; part 2: the measurement of quality against steps
    if [ "${PART:-}" != 2 ]; then
        three_builds "$harness"
        for b in dd f; do run $b ddim; done
        run omp twice
    else build f "$student" "$harness" || finish; fi
    fast_stop
    csv=${CSV:-$(dirname "$student")/ddim_steps.csv}
    ckpt=${CKPT:-$(dirname "$student")/model.ckpt}
    if [ "${PART:-}" = 1 ]; then :
    elif [ ! -f "$csv" ]; then
        if [ "${REQUIRE_CSV:-0}" = 1 ]; then fail "$csv is missing (the measurement of the README, part 2)"
        else note "no $(basename "$csv") beside your file yet: part 2 (the measurement) is not graded (REQUIRE_CSV=1 makes it required)"; fi
    elif ! $NICE cc -O2 "$dir/pngdiff.c" -lm -o "$work/pngdiff" 2> "$work/pngdiff.cc.txt"; then
        fail "cannot build $dir/pngdiff.c"; head -5 "$work/pngdiff.cc.txt"
    else
        T=""
        if [ -f "$ckpt" ] && [ -x "$work/f" ]; then
            T=$($NICE "$work/f" ckpt-T "$ckpt" 2> "$work/ckpt.err") || { fail "$ckpt: $(head -1 "$work/ckpt.err")"; T=""; }
        elif [ "${REQUIRE_CSV:-0}" = 1 ]; then fail "$ckpt is missing: the grader needs the model to check T and regenerate a grid (CKPT=path)"
        else note "no $(basename "$ckpt") beside your file (or CKPT=path): T and the grids themselves are not checked"; fi
        if "$dir/check_csv.sh" "$csv" "$work/pngdiff" "$T" > "$work/csv.txt" 2>&1; then pass "$(tail -1 "$work/csv.txt")"
        else while IFS= read -r l; do fail "$l"; done < "$work/csv.txt"; fi
        # The grids must be what the README's command makes: the first row's grid is made again from the model.
        if [ -n "$T" ]; then
            S=$(awk -F, 'NR == 2 { print $1 }' "$csv" | tr -d '\r')
            png=$(dirname "$csv")/ddim_$S.png
            if [[ $S =~ ^[0-9]+$ ]] && [ -f "$png" ] &&
                $NICE "$work/f" sample --ckpt "$ckpt" --sampler ddim --eta 0 --steps "$S" --seed 1 --n 20 --label 7 \
                    --out "$work/again.png" > "$work/again.txt" 2>&1; then
                d=$("$work/pngdiff" "$work/again.png" "$png" | cut -d' ' -f1)
                # the same command on another build: a few pixels may round the other way (1 level = 0.0078)
                if [[ $d =~ ^[0-9.eE+-]+$ ]] && awk -v d="$d" 'BEGIN { exit !(d + 0 <= 0.01) }'; then
                    pass "ddim_$S.png is what \`sample --sampler ddim --eta 0 --steps $S --seed 1 --n 20 --label 7\` makes from $(basename "$ckpt") (rms $d)"
                else
                    fail "ddim_$S.png is not what \`sample --sampler ddim --eta 0 --steps $S --seed 1 --n 20 --label 7\` makes from $(basename "$ckpt"): rms $d"
                fi
            else
                fail "could not make ddim_$S.png again from $(basename "$ckpt")"; tail -3 "$work/again.txt" | indent
            fi
        fi
    fi
 ;;
guidance)  # classifier-free guidance: the guided sampler's exact Gaussian law, the formula, claims (f, g)
    # the student's guided_eps alone, which the harness compiles again with the exact denoiser of
    # Gaussian data as its unet_forward (the integrity check has made sure it is only a body)
    awk '/^static void guided_eps\(/ { p = 1 } p { print } p && /^}/ { exit }' "$student" > "$work/guided_eps.c"
    three_builds "$harness" -DCHECK_SAMPLES=10000 -DGUIDED_EPS_C='"guided_eps.c"'
    for b in dd f; do run $b law; run $b guided; done
    run omp twice ;;
reverse-sde)  # one Euler-Maruyama step of the reverse SDE; claim (h)
    three_builds "$harness" -DCHECK_SAMPLES=10000
    for b in dd f; do run $b step; done
    run omp twice
    fast_stop
    run f law ;;
cross-attention)  # forward against the plain reference, +=, then gradcheck's text rows and its mask check
    three_builds "$harness"
    for b in dd f; do run $b forward; run $b accumulate; done
    run omp twice
    fast_stop
    for b in dd f; do
        gradcheck $b 'cross-attention \(input, tokens, params\)' 'text encoder \(token, position tables\)' \
            'whole text U-Net \(params\)'
    done ;;
esac

finish

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
# as fast; exercises 1, 2 and 8, whose checks take less time than an optimised compilation, use -O0. Builds and
# runs are `nice -n 19` (GRADE_NICE overrides) so that grading does not slow down a training run on the same
# machine. GRADE_CACHE=DIR reuses identical builds (same flags, same source) across gradings; the selftest sets it.
#
# GRADE_FAST=1 (the selftest, on stubs and wrong solutions) stops after the first group of checks that fails: the
# verdict cannot change (a FAIL stays a FAIL), only the expensive checks after it are skipped.
#
# DIFFUSION_C=path: the real code that exercise 9's reference run takes draw_training_batch from (default: the
# repository's diffusion.c; the selftest passes its own).
#
# Exercise 6, part 2 (the measurement): CSV=path (default: ddim_steps.csv beside the student's file), CKPT=path
# (default: model.ckpt beside it), REQUIRE_CSV=1 to fail a hand-in without them, PART=1 or PART=2 to grade one
# part only.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
usage() { echo "usage: grade.sh N [STUDENT.c]   (N = 1..9; see notes/exercises/README.md)" >&2; exit 2; }
[ $# -ge 1 ] && [[ $1 =~ ^0?[1-9]$ ]] || usage
n=$((10#$1))
dir=$(ls -d "$here"/0"$n"-* 2>/dev/null | head -1)
[ -n "$dir" ] || usage
student=${2:-$dir/diffusion.c}
if [ ! -f "$student" ]; then
    echo "grade.sh: $student: no such file (make your copy with: notes/exercises/make_stub.sh $n $student)" >&2
    exit 2
fi
student=$(cd "$(dirname "$student")" && pwd)/$(basename "$student")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
NICE="nice -n ${GRADE_NICE:-19}"
case $n in 1 | 2 | 8) OPT=-O0 ;; *) OPT=-Os ;; esac  # -O0 where the checks run for less than the compilation
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

# build NAME SOURCE HARNESS|- [CFLAGS...]: compiles SOURCE (with HARNESS: the harness, which #includes SOURCE with
# its main renamed) to $work/NAME. A file that does not compile fails the grade.
# With GRADE_CACHE (the selftest), identical builds are reused, and stb_image's implementation, a third of the
# compile time, is compiled once: the file is compiled without its two `#define STB_..._IMPLEMENTATION` lines and
# linked with an object of its own preamble (the lines up to its stb includes) compiled with them.
build() {
    local name=$1 src=$2 harness=$3 key="" what extra=(); shift 3
    what="cc $OPT${*:+ $*}"
    if [ "$harness" = - ]; then what="$what $(basename "$src") -lm"
    else what="$what $(basename "$dir")/$(basename "$harness") -lm, #including $(basename "$src")"; fi
    if [ -n "${GRADE_CACHE:-}" ]; then
        mkdir -p "$GRADE_CACHE"
        key=$({ echo "$OPT $* $harness"; cat "$src"; [ "$harness" = - ] || cat "$harness"; } | sha1sum | cut -c1-20)
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
    local cmd=(cc $OPT "$@")
    if [ "$harness" = - ]; then cmd+=("$src"); else cmd+=(-DSTUDENT_C="\"$src\"" "$harness"); fi
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
        FNR == NR { if ($0 !~ /^#/ && NF) { ref[$1] = $0; nref++ }; next }
        $0 ~ /^#/ || !NF { next }
        {
            nours++
            if (!($1 in ref)) { problem("unexpected row t=" $1); next }
            seen[$1] = 1
            split(ref[$1], r)
            if (NF != 7) { problem("row t=" $1 " has " NF " columns, not 7"); next }
            for (i = 2; i <= 7; i++) {
                if (!num($i)) { problem("t=" $1 " column " i " is \"" $i "\""); continue }
                d = $i - r[i]; if (d < 0) d = -d
                a = r[i] < 0 ? -r[i] : r[i]
                rel = a > 0 ? d / a : d
                if (rel > worst) { worst = rel; where = "t=" $1 " column " i }
                if (d > tol * a + 1e-18) nbad++
            }
        }
        END {
            for (t in ref) if (!(t in seen)) missing++
            if (missing) problem(missing " rows missing")
            printf "worst relative error %.3g (%s)%s", worst, where ? where : "-", nbad ? ", " nbad " numbers off" : ""
            if (nprob) printf "; %s%s", bad, (nprob > 3 ? "... (" nprob " problems)" : "")
            exit (nbad || nprob) ? 1 : 0
        }' "$2" "$1"
}

# schedule_vs_reference BINARY SCHEDULE T: one schedule table against data/schedule_SCHEDULE_TT.txt (numpy, float64).
schedule_vs_reference() {
    local ref=$root/data/schedule_$2_T$3.txt msg
    $NICE "$1" schedule --schedule "$2" --T "$3" > "$work/table.txt" 2> "$work/table.err" || { fail "schedule --schedule $2 --T $3 exits with an error"; return; }
    if msg=$(compare_table "$work/table.txt" "$ref" 1e-9); then
        pass "schedule $2 T=$3 = $(basename "$ref") within 1e-9: $msg"
    else
        fail "schedule $2 T=$3 vs $(basename "$ref"): $msg"
    fi
}

# claim_line FILE PATTERN DESCRIPTION: the line of the output matching PATTERN must say PASS.
claim_line() {
    local line
    line=$(grep -E -- "$2" "$1" | head -1)
    if [ -z "$line" ]; then fail "$3: no line matching '$2' in the output"
    elif [[ $line == *PASS* ]]; then pass "$3: $(echo "$line" | sed 's/  */ /g')"
    else fail "$3: $(echo "$line" | sed 's/  */ /g')"; fi
}

# harness_lines FILE RC: every line of a harness's output that ends in PASS or FAIL is one check; other lines are
# shown as they are. A non-zero exit without a FAIL line (a crash) fails too.
harness_lines() {
    local line any=0
    while IFS= read -r line; do
        case $line in
            *PASS) pass "$(echo "$line" | sed 's/^ *//; s/  */ /g; s/ PASS$//')" ;;
            *FAIL) fail "$(echo "$line" | sed 's/^ *//; s/  */ /g; s/ FAIL$//')"; any=1 ;;
            *) echo "$line" | indent ;;
        esac
    done < "$1"
    [ "$2" -eq 0 ] || [ $any = 1 ] || fail "the harness stopped with exit status $2 (see above)"
}

# gradcheck_lines FILE RC LAYER...: the rows of `gradcheck` for the layers concerned, its summary line
# "# N of M layer checks failed" (N must be 0), and every check after it (PART II's fast code against the plain
# code: each must say PASS). Other layer rows that fail are named (the summary counts them).
gradcheck_lines() {
    local file=$1 rc=$2 row line before=$failed; shift 2
    for row in "$@"; do claim_line "$file" "^$row " "gradcheck"; done
    line=$(grep -E '^# [0-9]+ of [0-9]+ layer checks failed' "$file" | head -1)
    if [ -z "$line" ]; then fail "gradcheck: no summary line '# N of M layer checks failed' (exit status $rc)"; sed -n '1,40p' "$file" | indent; return; fi
    if [[ $line == "# 0 of "* ]]; then pass "gradcheck: $line"
    else
        fail "gradcheck: $line"
        sed -n '/^layer /,/^# [0-9]* of/p' "$file" | grep 'FAIL$' | while IFS= read -r l; do
            for row in "$@"; do [[ $l =~ ^$row\  ]] && continue 2; done
            note "also failing: $(echo "$l" | sed 's/  */ /g')"
        done
    fi
    sed -n '/^# [0-9]* of [0-9]* layer checks failed/,$p' "$file" | tail -n +2 | while IFS= read -r l; do
        case $l in *PASS*) echo "pass $l" ;; *FAIL*) echo "fail $l" ;; esac
    done > "$work/after.txt"
    while read -r verdict l; do
        if [ "$verdict" = pass ]; then pass "gradcheck: $(echo "$l" | sed 's/  */ /g')"; else fail "gradcheck: $(echo "$l" | sed 's/  */ /g')"; fi
    done < "$work/after.txt"
    if [ "$rc" -ne 0 ] && [ $failed -eq "$before" ]; then fail "gradcheck exited with status $rc"; tail -5 "$file" | indent; fi
}

echo "grading exercise $n ($(basename "$dir")) on $student"
case $n in
1)  # the cosine schedule
    if build d "$student" -; then
        for T in 10 1000; do schedule_vs_reference "$work/d" cosine $T; done
        for s in linear sde; do schedule_vs_reference "$work/d" $s 1000; done  # and the others still right
    fi ;;
2)  # the posterior coefficients
    if build d "$student" -; then
        for s in linear cosine sde; do for T in 10 1000; do schedule_vs_reference "$work/d" $s $T; done; done
    fi ;;
3)  # eq. (2) and the DDPM step, clip off and on, against the harness's references
    if build h "$student" "$dir/harness.c" -DDOUBLE; then
        $NICE "$work/h" ddpm > "$work/out.txt" 2>&1; harness_lines "$work/out.txt" $?
    fi ;;
4)  # silu_backward and groupnorm_backward: += and the gradients
    if build h "$student" "$dir/harness.c" -DDOUBLE; then
        $NICE "$work/h" accumulate > "$work/out.txt" 2>&1; harness_lines "$work/out.txt" $?
        fast_stop
        $NICE "$work/h" gradcheck > "$work/gc.txt" 2>&1
        gradcheck_lines "$work/gc.txt" $? silu groupnorm 'resblock \(input \+ params\)' 'attention \(input \+ params\)' 'whole U-Net \(params\)'
    fi ;;
5)  # two attention heads
    if build h "$student" "$dir/harness.c" -DDOUBLE; then
        $NICE "$work/h" heads > "$work/heads.txt" 2>&1; rc=$?
        indent < "$work/heads.txt"
        if [ $rc -eq 0 ]; then pass "attention_forward computes two heads (matches the grader's own 2-head attention)"
        else fail "attention_forward does not compute the 2-head attention of the README"; fi
        fast_stop
        $NICE "$work/h" gradcheck > "$work/gc.txt" 2>&1
        gradcheck_lines "$work/gc.txt" $? 'attention \(input \+ params\)' 'whole U-Net \(params\)'
        if $NICE "$work/h" refcheck "$root/data/unet_ref.bin" > "$work/ref.txt" 2>&1; then
            note "refcheck against the 1-head PyTorch reference still passes (unexpected with 2 heads)"
        else
            note "refcheck against the 1-head PyTorch reference now fails, as it should: $(grep 'output eps_theta' "$work/ref.txt" | sed 's/  */ /g')"
        fi
    fi ;;
6)  # part 1: the DDIM step; part 2: the measurement of quality against steps
    if [ "${PART:-}" != 2 ] && build h "$student" "$dir/harness.c" -DDOUBLE; then
        $NICE "$work/h" ddim > "$work/ddim.txt" 2>&1; harness_lines "$work/ddim.txt" $?
    fi
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
        if [ -f "$ckpt" ] && build f "$student" "$dir/harness.c"; then
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
    fi ;;
7)  # im2col_reference and col2im
    if build dd "$student" - -DDOUBLE; then
        $NICE "$work/dd" gradcheck > "$work/gc.txt" 2>&1
        gradcheck_lines "$work/gc.txt" $? 'conv2d 3x3 stride 1' 'conv2d 3x3 stride 2'
        fast_stop
        $NICE "$work/dd" refcheck --ref "$root/data/unet_ref.bin" > "$work/ref.txt" 2>&1; rc=$?
        grep -E 'output eps_theta|^loss|worst' "$work/ref.txt" | indent
        if [ $rc -eq 0 ]; then pass "refcheck: output, loss and every gradient agree with PyTorch"
        else fail "refcheck against PyTorch (data/unet_ref.bin): $(grep -E 'checks failed|FAIL' "$work/ref.txt" | head -3 | sed 's/  */ /g' | tr '\n' ';')"; fi
    fi ;;
8)  # Step 1: the sde schedule (part 1) and Euler-Maruyama of the forward SDE (part 2, claim (b) of `check`)
    # claim (b) with 10^4 samples instead of 10^5 (a second instead of ten); the tolerances scale with it
    sed 's/^enum { NS = 100000 };/enum { NS = 10000 };/' "$student" > "$work/student8.c"
    cmp -s "$student" "$work/student8.c" && note "NS = 100000 not found in your file: claim (b) runs with your NS"
    if build h "$work/student8.c" "$dir/harness.c"; then
        for T in 10 1000; do schedule_vs_reference "$work/h" sde $T; done
        schedule_vs_reference "$work/h" linear 1000
        fast_stop
        $NICE "$work/h" sdes > "$work/b.txt" 2>&1; rc=$?
        # Every line of (b) is judged again with the grader's own expected value and tolerance: the check's
        # tolerance includes |em - exact| computed from the student's em_mean and em_var, so a wrong step could
        # widen its own tolerance. The student's printed tolerance must match the grader's (it tests em_mean and
        # em_var). vp_beta(u) = 0.1 + 19.9 u, I(u) = int_0^u vp_beta.
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
                # the grader: the SDE law at u, and the Euler-Maruyama chain of M steps (left-point beta)
                du = 1 / M; em_m = 1; em_v = 0
                for (j = 1; j * du <= u + 1e-12; j++) { b = 0.1 + 19.9 * (j - 1) * du; a = 1 - drift * b * du; em_m *= a; em_v = a * a * em_v + b * du }
                ex_m = exp(-drift * I(u)); ex_v = v == 1 ? 1 - exp(-I(u)) : 0.5 * (1 - exp(-2 * I(u)))
                if (what == "mean") { want = ex_m; tol = 5 * sqrt(ex_v / N) + ab(em_m - ex_m) }
                else { want = ex_v; tol = 5 * ex_v * sqrt(2 / (N - 1)) + ab(em_v - ex_v) }
                problem = ""
                if (verdict != "PASS") problem = problem "; the line says " verdict
                if (!(ab(meas - want) <= tol)) problem = problem sprintf("; measured %g is %.3g from the SDE law %.6g (grader tol %.3g)", meas, ab(meas - want), want, tol)
                if (!(ab(exp_s - want) <= 2e-5 * ab(want) + 1e-9)) problem = problem sprintf("; the line expects %s, the law is %.6g", exp_s, want)
                if (!(ab(tol_s - tol) <= 0.02 * tol)) problem = problem sprintf("; its tolerance %s is not the grader%ss %.3g (em_mean, em_var?)", tol_s, "\047", tol)
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
        while read -r verdict l; do if [ "$verdict" = pass ]; then pass "$l"; else fail "$l"; fi; done < "$work/b.judged"
        if [ $rc -ne 0 ] && ! grep -q '^fail' "$work/b.judged"; then fail "claim (b) exited with status $rc"; tail -5 "$work/b.txt" | indent; fi
    fi ;;
9)  # Steps 3-4: the training tuples and the loss
    if build h "$student" "$dir/harness.c"; then
        $NICE "$work/h" draw > "$work/out.txt" 2>&1; harness_lines "$work/out.txt" $?
        $NICE "$work/h" mse > "$work/out.txt" 2>&1; harness_lines "$work/out.txt" $?
        $NICE "$work/h" gradcheck > "$work/gc.txt" 2>&1
        gradcheck_lines "$work/gc.txt" $? 'mse loss'
        fast_stop
        # Training data: the first 2000 Fashion-MNIST images, uncompressed (loading all 60000 would take longer than
        # the training).
        fm=/usr/share/datasets/fashion-mnist data=fashion-mnist
        if mkdir -p "$work/data" &&
            { zcat "$fm/train-images-idx3-ubyte.gz" 2> /dev/null | head -c $((16 + 2000 * 784)) > "$work/data/train-images-idx3-ubyte"; } &&
            { zcat "$fm/train-labels-idx1-ubyte.gz" 2> /dev/null | head -c $((8 + 2000)) > "$work/data/train-labels-idx1-ubyte"; } &&
            [ "$(wc -c < "$work/data/train-images-idx3-ubyte")" -eq $((16 + 2000 * 784)) ]; then
            for f in "$work"/data/train-*; do printf '\x00\x00\x07\xd0' | dd of="$f" bs=1 seek=4 conv=notrunc 2> /dev/null; done  # count 2000
            data=$work/data/train-images-idx3-ubyte
        fi
        tiny=(train --data "$data" --width 8 --batch 8 --seed 7)
        # 20 steps, bit for bit the same as with the real Step 3: the reference is the student's file with
        # draw_training_batch taken from diffusion.c (so only the batches can differ, not the loss's rounding).
        $NICE "$work/h" "${tiny[@]}" --steps 20 --ckpt "$work/s.ckpt" --log "$work/loss.csv" > "$work/train.txt" 2>&1
        if "$here/make_stub.sh" --transplant draw_training_batch "$student" "$work/ref.c" "${DIFFUSION_C:-$root/diffusion.c}" > "$work/ref.txt" 2>&1; then
            ok=1
            if cmp -s "$student" "$work/ref.c"; then cp "$work/s.ckpt" "$work/r.ckpt" 2> /dev/null  # the same file
            elif build r "$work/ref.c" "$dir/harness.c"; then $NICE "$work/r" "${tiny[@]}" --steps 20 --ckpt "$work/r.ckpt" > /dev/null 2>&1
            else ok=0; fi
            if [ $ok = 1 ]; then
                if [ -s "$work/s.ckpt" ] && cmp -s "$work/s.ckpt" "$work/r.ckpt"; then
                    pass "train --width 8 --batch 8 --seed 7 --steps 20: the checkpoint is bit for bit the one with diffusion.c's draw_training_batch"
                else
                    fail "train --width 8 --batch 8 --seed 7 --steps 20: the checkpoint differs from the one with diffusion.c's draw_training_batch (other batches)"
                fi
            fi
        else
            fail "cannot put diffusion.c's draw_training_batch into your file"; indent < "$work/ref.txt"
        fi
        # ... and 80 more: from ~1 (eps_theta = 0 at the start) the loss must fall.
        [ -s "$work/s.ckpt" ] && $NICE "$work/h" train --data "$data" --resume --steps 80 --ckpt "$work/s.ckpt" --log "$work/loss.csv" >> "$work/train.txt" 2>&1
        if msg=$(awk -F, 'NR > 1 && NR <= 11 { a += $2 } NR > 81 { b += $2; n++ }
                END { if (!n) { print "no loss log"; exit 1 }
                      printf "first 10 steps %.3f, last 20 steps %.3f", a / 10, b / n; exit !(a / 10 > 0.9 && b / n < 0.8) }' "$work/loss.csv" 2>/dev/null); then
            pass "... --steps 100 (20 + 80 resumed): the loss falls from ~1 to below 0.8 ($msg)"
        else
            fail "... --steps 100 (20 + 80 resumed): the loss must fall from ~1 to below 0.8 (${msg:-no log}; the real code: 0.985 and 0.63)"
            tail -2 "$work/train.txt" | indent
        fi
    fi ;;
esac

finish

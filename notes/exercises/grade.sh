#!/usr/bin/env bash
# grade.sh N [STUDENT.c]
#
# Grades exercise N on the student's copy of diffusion.c (default: notes/exercises/NN-name/diffusion.c, the copy
# made by `make_stub.sh N`). Every grader builds the student's file itself and runs the program's own checks
# (schedule tables, `check`, `gradcheck`, `refcheck`) or a small harness that #includes the student's file, so the
# result says what a student can also see by running the same commands. Exit 0 when every check passes, 1 when one
# fails, 2 on a usage error. The last line is "exercise N: PASS" or "exercise N: FAIL (k checks failed)".
#
# Each grader runs in well under a minute on one core. Builds and runs are `nice`d so that grading does not slow
# down a training run on the same machine.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
usage() { echo "usage: grade.sh N [STUDENT.c]   (N = 1..7; see notes/exercises/README.md)" >&2; exit 2; }
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
NICE="nice -n 19"
failed=0
pass() { printf '  PASS  %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; failed=$((failed + 1)); }
note() { printf '  ....  %s\n' "$*"; }

# build NAME [CFLAGS...]: compiles the student's file to $work/NAME. A file that does not compile fails the grade.
build() {
    local name=$1; shift
    if $NICE cc -O2 "$@" "$student" -lm -o "$work/$name" 2> "$work/$name.cc.txt"; then
        pass "compiles (cc -O2 ${*:+$* }diffusion.c -lm)"
        return 0
    fi
    fail "does not compile (cc -O2 ${*:+$* }diffusion.c -lm):"
    head -20 "$work/$name.cc.txt" | sed 's/^/        /'
    return 1
}

# build_harness NAME: compiles $dir/harness.c, which #includes the student's file (its main renamed), in double.
build_harness() {
    if $NICE cc -O2 -DDOUBLE -DSTUDENT_C="\"$student\"" -I"$dir" "$dir/harness.c" -lm -o "$work/$1" 2> "$work/$1.cc.txt"; then
        pass "compiles with the grading harness ($(basename "$dir")/harness.c, -DDOUBLE)"
        return 0
    fi
    fail "does not compile with the grading harness ($(basename "$dir")/harness.c):"
    head -20 "$work/$1.cc.txt" | sed 's/^/        /'
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
    "$1" schedule --schedule "$2" --T "$3" > "$work/table.txt" 2> "$work/table.err" || { fail "schedule --schedule $2 --T $3 exits with an error"; return; }
    if msg=$(compare_table "$work/table.txt" "$ref" 1e-9); then
        pass "schedule $2 T=$3 = $(basename "$ref") within 1e-9: $msg"
    else
        fail "schedule $2 T=$3 vs $(basename "$ref"): $msg"
    fi
}

# claim_line FILE PATTERN DESCRIPTION: the line of `check`/`gradcheck` output matching PATTERN must say PASS.
claim_line() {
    local line
    line=$(grep -E -- "$2" "$1" | head -1)
    if [ -z "$line" ]; then fail "$3: no line matching '$2' in the output"
    elif [[ $line == *PASS* ]]; then pass "$3: $(echo "$line" | sed 's/  */ /g')"
    else fail "$3: $(echo "$line" | sed 's/  */ /g')"; fi
}

# gradcheck_all BINARY: runs `gradcheck` (double build) and requires every layer to pass.
gradcheck_all() {
    $NICE "$1" gradcheck > "$work/gc.txt" 2>&1
    local rc=$?
    sed 's/^/        /' "$work/gc.txt"
    if [ $rc -eq 0 ]; then pass "gradcheck (-DDOUBLE): every layer within 1e-6"; else fail "gradcheck (-DDOUBLE): $(tail -1 "$work/gc.txt")"; fi
}

echo "grading exercise $n ($(basename "$dir")) on $student"
case $n in
1)  # the cosine schedule
    if build d; then
        for T in 10 1000; do schedule_vs_reference "$work/d" cosine $T; done
        for s in linear sde; do schedule_vs_reference "$work/d" $s 1000; done  # and the others still right
    fi ;;
2)  # the posterior coefficients
    if build d; then
        for s in linear cosine sde; do for T in 10 1000; do schedule_vs_reference "$work/d" $s $T; done; done
    fi ;;
3)  # eq. (2) and the DDPM step: claims (f) and (g) of ./diffusion check, run by the harness in double
    if build_harness h; then
        $NICE "$work/h" samplers > "$work/check.txt" 2>&1
        rc=$?
        claim_line "$work/check.txt" '\(f\) DDIM, eta = 1' "claim (f): DDIM with eta = 1 and all T steps = your DDPM"
        claim_line "$work/check.txt" '\(g\) guidance w = 1' "claim (g): guidance w = 1 = conditional"
        claim_line "$work/check.txt" '\(g\) guidance w = 0' "claim (g): guidance w = 0 = unconditional"
        [ $rc -eq 0 ] || [ $failed -gt 0 ] || fail "check_samplers reports a failure (exit $rc)"
    fi ;;
4)  # silu_backward and groupnorm_backward
    if build dd -DDOUBLE; then
        gradcheck_all "$work/dd"
        claim_line "$work/gc.txt" '^silu ' "silu"
        claim_line "$work/gc.txt" '^groupnorm ' "groupnorm"
    fi ;;
5)  # two attention heads
    if build_harness h; then
        $NICE "$work/h" heads > "$work/heads.txt" 2>&1; rc=$?
        sed 's/^/        /' "$work/heads.txt"
        if [ $rc -eq 0 ]; then pass "attention_forward computes two heads (matches the grader's own 2-head attention)"
        else fail "attention_forward does not compute the 2-head attention of the README"; fi
        gradcheck_all "$work/h"
        claim_line "$work/gc.txt" '^attention ' "attention backward"
        if $NICE "$work/h" refcheck "$root/data/unet_ref.bin" > "$work/ref.txt" 2>&1; then
            note "refcheck against the 1-head PyTorch reference still passes (unexpected with 2 heads)"
        else
            note "refcheck against the 1-head PyTorch reference now fails, as it should: $(grep 'output eps_theta' "$work/ref.txt" | sed 's/  */ /g')"
        fi
    fi ;;
6)  # DDIM and the steps measurement
    if build_harness h; then
        $NICE "$work/h" ddim > "$work/ddim.txt" 2>&1; rc=$?
        sed 's/^/        /' "$work/ddim.txt"
        if [ $rc -eq 0 ]; then pass "DDIM steps match the grader's own DDIM (S = 1, 3, 10, 30, 100; eta = 0, 0.5, 1) and claims (f), (g) pass"
        else fail "DDIM differs from the grader's DDIM, or claim (f)/(g) fails (see above)"; fi
    fi
    # The measurement on the student's trained model: ddim_steps.csv and its ddim_S.png beside the student's file.
    csv=${CSV:-$(dirname "$student")/ddim_steps.csv}
    if [ -f "$csv" ]; then
        if $NICE cc -O2 "$dir/pngdiff.c" -lm -o "$work/pngdiff" 2> "$work/pngdiff.cc.txt"; then
            if "$dir/check_csv.sh" "$csv" "$work/pngdiff" > "$work/csv.txt" 2>&1; then pass "$(basename "$csv"): $(tail -1 "$work/csv.txt")"
            else sed 's/^/        /' "$work/csv.txt"; fail "$(basename "$csv") (see above)"; fi
        else
            fail "cannot build $dir/pngdiff.c"; head -5 "$work/pngdiff.cc.txt"
        fi
    elif [ "${REQUIRE_CSV:-0}" = 1 ]; then
        fail "$csv is missing (the measurement of the README, part 2)"
    else
        note "no $(basename "$csv") beside your file yet: part 2 (the measurement) is not graded (REQUIRE_CSV=1 makes it required)"
    fi ;;
7)  # im2col and col2im
    if build dd -DDOUBLE; then
        gradcheck_all "$work/dd"
        for l in 'conv2d 3x3 stride 1' 'conv2d 3x3 stride 2'; do claim_line "$work/gc.txt" "^$l " "$l"; done
        $NICE "$work/dd" refcheck --ref "$root/data/unet_ref.bin" > "$work/ref.txt" 2>&1; rc=$?
        grep -E 'output eps_theta|^loss|worst' "$work/ref.txt" | sed 's/^/        /'
        if [ $rc -eq 0 ]; then pass "refcheck: output, loss and every gradient agree with PyTorch"
        else fail "refcheck against PyTorch (data/unet_ref.bin): $(tail -1 "$work/ref.txt")"; fi
    fi ;;
esac

if [ $failed -eq 0 ]; then echo "exercise $n: PASS"; exit 0; fi
echo "exercise $n: FAIL ($failed check(s) failed)"
exit 1

#!/usr/bin/env bash
# selftest.sh [N...]: checks the graders themselves, and the stubs. For each exercise (default: all thirteen):
#   - the solution must PASS: the stub with its TODO regions filled from diffusion.c (make_stub.sh --solution N;
#     for exercise 8 the real code plus the two-head attention of 08-attention-heads/solution/);
#   - the stub made by make_stub.sh must FAIL, and must not contain the answer: none of the expressions of
#     NN-name/telltales.txt may occur in it (each must occur in the solution, so that the test means something);
#     for exercise 8 the stub is the real (one-head) code, the starting point;
#   - every wrong solution NN-name/wrong/*.sed (a plausible mistake, applied to a copy of the solution with sed;
#     its first line says what it gets wrong) must change the solution and must FAIL;
#   - exercise 10 also runs the measurement of part 2 on a small random-weight checkpoint (10-ddim-steps/random_ckpt.c)
#     and grades the hand-in (must PASS) and wrong hand-ins: a wrong number, copies of one PNG, a measurement that
#     does not end with S = T, no CSV, no checkpoint (each must FAIL).
# The exercises run JOBS (default 2) at a time; builds are shared through a cache (GRADE_CACHE), and the graders
# run at GRADE_NICE (default 10 here, the priority of a background training run, not below it). Output: per
# exercise its lines, then "exercise N: ok (k as expected, s s)" or "exercise N: WRONG (...)"; the last line is
# "selftest: N ok, N wrong". DIFFUSION_C=path tests the stubs and graders against another version of diffusion.c.
# SELFTEST_WRONG=0 (make test's quick run): only the solutions and the stubs, not the wrong solutions nor the
# hand-ins of exercise 10 (those prove the graders, not diffusion.c: CI runs them in full, .ci/run).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
EXERCISES_DIR=$here
. "$here/lib.sh"
src=${DIFFUSION_C:-$root/diffusion.c}
src=$(cd "$(dirname "$src")" && pwd)/$(basename "$src")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GRADE_CACHE=$work/cache GRADE_NICE=${GRADE_NICE:-10} DIFFUSION_C=$src
JOBS=${JOBS:-2}

# In one exercise's job: ok/wrong lines go to stdout (a file per exercise), and are counted.
NOK=0 NWRONG=0 NWRONGSOL=0 NHANDIN=0
ok() { printf '  ok     %s\n' "$*"; NOK=$((NOK + 1)); }
wrong() { printf '  WRONG  %s\n' "$*"; NWRONG=$((NWRONG + 1)); }

# expect PASS|FAIL LABEL [VAR=value...] grade-arguments...: runs grade.sh and compares its verdict with the expected one.
expect() {
    local want=$1 label=$2; shift 2
    local start=$SECONDS got out=$work/out.$BASHPID.txt
    if env "$@" > "$out" 2>&1; then got=PASS; else got=FAIL; fi
    if [ "$got" = "$want" ]; then
        ok "$(printf '%-52s %s as expected (%ds)' "$label" "$got" $((SECONDS - start)))"
        [ "$got" = FAIL ] && grep -m 2 '^  FAIL' "$out" | cut -c1-150 | sed 's/^  FAIL  /           because: /'
    else
        wrong "$(printf '%-52s %s, expected %s (%ds):' "$label" "$got" "$want" $((SECONDS - start)))"
        sed 's/^/           /' "$out"
    fi
    return 0
}

# telltales N STUB SOLUTION: the answer's expressions must be in the solution and not in the stub.
telltales() {
    local file=$(exercise_dir "$1")/telltales.txt t opt absent=0 leaks=0 stale=0 count=0
    [ -f "$file" ] || { wrong "no telltales.txt"; return; }
    while IFS= read -r t; do
        [ -z "$t" ] || [ "${t:0:1}" = "#" ] && continue
        opt=0
        [ "${t:0:1}" = "?" ] && { opt=1; t=${t:1}; }
        count=$((count + 1))
        if grep -qF -- "$t" "$2"; then wrong "the stub contains the answer: $t"; leaks=$((leaks + 1))
        elif ! grep -qF -- "$t" "$3" && ! grep -qF -- "$t" "$src"; then
            if [ $opt = 1 ]; then absent=$((absent + 1)); else wrong "telltale not in the solution (stale telltales.txt?): $t"; stale=$((stale + 1)); fi
        fi
    done < "$file"
    [ $leaks = 0 ] && [ $stale = 0 ] &&
        ok "the stub contains none of the answer's $count telltale expressions$([ $absent -gt 0 ] && echo " ($absent not in this diffusion.c either)")"
}

# The measurement of exercise 10, part 2, as a student would run it (README, part 2), on a small random-weight
# checkpoint so that it takes seconds: DDIM (eta = 0, --seed 1 --n 20 --label 7) at increasing step counts up to
# S = T = 100, each grid against the last. Writes OUT/{model.ckpt, ddim_S.png, ddim_steps.csv}.
measure6() {
    local out=$1 S
    mkdir -p "$out"
    cc -O0 "$src" -lm -o "$work/d6" 2> /dev/null &&  # the student's build (not the grader's -Os: another build)
        cc -O0 -DSTUDENT_C="\"$src\"" "$(exercise_dir ddim-steps)/random_ckpt.c" -lm -o "$work/random_ckpt" 2> /dev/null &&
        "$work/random_ckpt" "$out/model.ckpt" 100 > /dev/null &&
        cc -O2 "$(exercise_dir ddim-steps)/pngdiff.c" -lm -o "$work/pngdiff" || return 1
    echo "steps,seconds,rms_vs_ref" > "$out/ddim_steps.csv"
    for S in 2 5 10 25 50 100; do
        local t0 t1
        t0=$(date +%s.%N)
        "$work/d6" sample --ckpt "$out/model.ckpt" --sampler ddim --eta 0 --steps $S --seed 1 --n 20 --label 7 \
            --out "$out/ddim_$S.png" > /dev/null 2>&1 || return 1
        t1=$(date +%s.%N)
        echo "$S,$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'),PENDING" >> "$out/ddim_steps.csv"
    done
    rms6 "$out"
}
# rms6 DIR: fills the rms_vs_ref column of DIR/ddim_steps.csv: pngdiff of each row's grid against the last row's.
rms6() {
    awk -F, -v dir="$1" -v pd="$work/pngdiff" 'NR == 1 { print; next } { rows[NR] = $0; last = $1; n = NR }
        END { for (i = 2; i <= n; i++) { split(rows[i], f, ",")
                  cmd = pd " " dir "/ddim_" f[1] ".png " dir "/ddim_" last ".png"; cmd | getline r; close(cmd)
                  split(r, g, " "); print f[1] "," f[2] "," g[1] } }' "$1/ddim_steps.csv" > "$1/tmp.csv" &&
        mv "$1/tmp.csv" "$1/ddim_steps.csv"
}

# one_exercise N: everything for exercise N, in $work/exN.
one_exercise() {
    local n=$1 d=$work/ex$1 start=$SECONDS w name
    local dir
    dir=$(exercise_dir "$n")
    mkdir -p "$d"
    echo "exercise $n ($(basename "$dir"))"
    if ! "$here/make_stub.sh" "$n" "$d/stub.c" "$src" > "$d/make.txt" 2>&1; then wrong "make_stub.sh $n: $(cat "$d/make.txt")"; return; fi
    if ! "$here/make_stub.sh" --solution "$n" "$d/solution.c" "$src" > "$d/make.txt" 2>&1; then wrong "make_stub.sh --solution $n: $(cat "$d/make.txt")"; return; fi
    expect PASS "solution (the stub, TODO regions from diffusion.c$([ "$(exercise_name "$dir")" = attention-heads ] && echo "; two heads"))" "$here/grade.sh" "$n" "$d/solution.c"
    expect FAIL "stub (make_stub.sh $n)" GRADE_FAST=1 "$here/grade.sh" "$n" "$d/stub.c"
    telltales "$n" "$d/stub.c" "$d/solution.c"
    for w in "$dir"/wrong/*.sed; do
        [ "${SELFTEST_WRONG:-1}" = 0 ] && break
        [ -f "$w" ] || continue
        name=$(basename "$w" .sed)
        sed -f "$w" "$d/solution.c" > "$d/wrong-$name.c"
        if cmp -s "$d/solution.c" "$d/wrong-$name.c"; then wrong "wrong/$name.sed does not change the solution: update it"; continue; fi
        NWRONGSOL=$((NWRONGSOL + 1))
        expect FAIL "wrong: $name ($(diff "$d/solution.c" "$d/wrong-$name.c" | grep -c '^<') line(s))" GRADE_FAST=1 "$here/grade.sh" "$n" "$d/wrong-$name.c"
        sed -n '1s/^# */           (/p' "$w" | sed 's/$/)/'
    done
    if [ "$(exercise_name "$dir")" = ddim-steps ] && [ "${SELFTEST_WRONG:-1}" != 0 ]; then
        local m=$d/measured
        if measure6 "$m"; then
            cp "$d/solution.c" "$m/diffusion.c"
            sed 's/^/           /' "$m/ddim_steps.csv"
            expect PASS "the measurement (part 2) as the README asks" PART=2 REQUIRE_CSV=1 "$here/grade.sh" "$n" "$m/diffusion.c"
            NHANDIN=5
            cp -r "$m" "$d/m-row"; sed -i '3s/,[^,]*$/,0.5/' "$d/m-row/ddim_steps.csv"
            expect FAIL "hand-in: one wrong rms number" GRADE_FAST=1 PART=2 REQUIRE_CSV=1 "$here/grade.sh" "$n" "$d/m-row/diffusion.c"
            cp -r "$m" "$d/m-copies"
            for f in "$d"/m-copies/ddim_*.png; do cp "$m/ddim_100.png" "$f"; done
            rms6 "$d/m-copies"
            expect FAIL "hand-in: copies of one PNG (every rms 0)" GRADE_FAST=1 PART=2 REQUIRE_CSV=1 "$here/grade.sh" "$n" "$d/m-copies/diffusion.c"
            cp -r "$m" "$d/m-short"; sed -i '$d' "$d/m-short/ddim_steps.csv"; rm "$d/m-short/ddim_100.png"
            rms6 "$d/m-short"
            expect FAIL "hand-in: not ending with S = T (last S = 50)" GRADE_FAST=1 PART=2 REQUIRE_CSV=1 "$here/grade.sh" "$n" "$d/m-short/diffusion.c"
            cp -r "$m" "$d/m-nockpt"; rm "$d/m-nockpt/model.ckpt"
            expect FAIL "hand-in: without the model, required" GRADE_FAST=1 PART=2 REQUIRE_CSV=1 "$here/grade.sh" "$n" "$d/m-nockpt/diffusion.c"
            mkdir -p "$d/m-none"; cp "$m/diffusion.c" "$m/model.ckpt" "$d/m-none/"
            expect FAIL "hand-in: without the CSV, required" GRADE_FAST=1 PART=2 REQUIRE_CSV=1 "$here/grade.sh" "$n" "$d/m-none/diffusion.c"
        else
            wrong "the measurement of ddim-steps (part 2) could not be run"
        fi
    fi
    local what="the solution passes; the stub and $NWRONGSOL wrong solutions fail"
    [ "${SELFTEST_WRONG:-1}" = 0 ] && what="the solution passes; the stub fails (wrong solutions not run)"
    [ "$NHANDIN" -gt 0 ] && what="$what; a measured hand-in passes, $NHANDIN wrong ones fail"
    if [ "$NWRONG" -eq 0 ]; then echo "exercise $n: ok ($what; the stub states no answer; $((SECONDS - start)) s)"
    else echo "exercise $n: WRONG ($NWRONG unexpected result(s), $NOK as expected; $((SECONDS - start)) s)"; fi
}

want=""
for a in ${*:-1 2 3 4 5 6 7 8 9 10 11 12 13}; do
    d=$(exercise_dir "$a") || true
    [ -n "$d" ] || { echo "selftest.sh: no exercise $a" >&2; exit 2; }
    want="$want $(exercise_number "$d")"
done
# the longest first, so that JOBS workers finish together
order=$(for n in 4 10 7 5 13 8 9 6 12 11 1 3 2; do [[ " $want " == *" $n "* ]] && echo "$n"; done)
start=$SECONDS
running=0
for n in $order; do
    if [ $running -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
    one_exercise "$n" > "$work/res$n.txt.tmp" 2>&1 < /dev/null && mv "$work/res$n.txt.tmp" "$work/res$n.txt" &
    running=$((running + 1))
done
wait
ok_total=0 wrong_total=0
for n in $want; do
    if [ -f "$work/res$n.txt" ]; then cat "$work/res$n.txt"
    else cat "$work/res$n.txt.tmp" 2> /dev/null; echo "exercise $n: WRONG (the selftest of this exercise stopped)"; wrong_total=$((wrong_total + 1)); fi
    ok_total=$((ok_total + $(cat "$work/res$n.txt"* 2>/dev/null | grep -c '^  ok ')))
    wrong_total=$((wrong_total + $(cat "$work/res$n.txt"* 2>/dev/null | grep -c '^  WRONG ')))
done
echo "selftest: $ok_total ok, $wrong_total wrong ($((SECONDS - start)) s, $JOBS at a time)"
[ "$wrong_total" -eq 0 ]

#!/usr/bin/env bash
# selftest.sh [N...]: checks the graders themselves. For each exercise (default: all):
#   - the solution must PASS: the real diffusion.c (for exercise 5, the real code plus the two-head attention of
#     05-attention-heads/solution/, made by make_stub.sh --solution 5);
#   - the stub made by make_stub.sh must FAIL;
#   - exercise 5 also grades the real (one-head) diffusion.c, which must FAIL: it is the starting point;
#   - exercise 6 also runs the measurement of part 2 on a small random-weight checkpoint (06-ddim-steps/random_ckpt.c)
#     and grades the CSV.
# Takes a few minutes (each grade builds the program and runs its checks). Last line: "selftest: N ok, N wrong".
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ok=0 wrong=0

# expect PASS|FAIL LABEL grade-arguments...: runs grade.sh and compares its verdict with the expected one.
expect() {
    local want=$1 label=$2; shift 2
    local start=$SECONDS got
    if env "$@" > "$work/out.txt" 2>&1; then got=PASS; else got=FAIL; fi
    if [ "$got" = "$want" ]; then
        ok=$((ok + 1)); printf '  ok     %-46s %s as expected (%ds)\n' "$label" "$got" $((SECONDS - start))
    else
        wrong=$((wrong + 1)); printf '  WRONG  %-46s %s, expected %s (%ds):\n' "$label" "$got" "$want" $((SECONDS - start))
        sed 's/^/           /' "$work/out.txt"
    fi
}

# The measurement of exercise 6, part 2, as a student would run it (here on a small random-weight checkpoint
# so that it takes seconds): DDIM (eta = 0, one seed) at increasing step counts, each grid against the last.
measure6() {
    local bin=$1 out=$2
    mkdir -p "$out"
    cc -O2 -DSTUDENT_C="\"$root/diffusion.c\"" "$here/06-ddim-steps/random_ckpt.c" -lm -o "$work/random_ckpt" &&
        "$work/random_ckpt" "$out/random.ckpt" 100 > /dev/null &&
        cc -O2 "$here/06-ddim-steps/pngdiff.c" -lm -o "$work/pngdiff" || return 1
    echo "steps,seconds,rms_vs_ref" > "$out/ddim_steps.csv"
    local S
    for S in 2 5 10 25 50 100; do
        local t0 t1
        t0=$(date +%s.%N)
        "$bin" sample --ckpt "$out/random.ckpt" --sampler ddim --eta 0 --steps $S --seed 1 --n 8 --label 0 \
            --out "$out/ddim_$S.png" > /dev/null 2>&1 || return 1
        t1=$(date +%s.%N)
        echo "$S,$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'),PENDING" >> "$out/ddim_steps.csv"
    done
    # rms against the last (reference) grid
    awk -F, -v dir="$out" -v pd="$work/pngdiff" 'NR == 1 { print; next } { rows[NR] = $0; last = $1; n = NR }
        END { for (i = 2; i <= n; i++) { split(rows[i], f, ",")
                  cmd = pd " " dir "/ddim_" f[1] ".png " dir "/ddim_" last ".png"; cmd | getline r; close(cmd)
                  split(r, g, " "); print f[1] "," f[2] "," g[1] } }' "$out/ddim_steps.csv" > "$out/tmp.csv" &&
        mv "$out/tmp.csv" "$out/ddim_steps.csv"
}

want=${*:-1 2 3 4 5 6 7}
for n in $want; do
    echo "exercise $n"
    stub=$work/stub$n.c
    "$here/make_stub.sh" "$n" "$stub" > /dev/null || { wrong=$((wrong + 1)); echo "  WRONG  make_stub.sh $n failed"; continue; }
    if [ "$n" = 5 ]; then
        "$here/make_stub.sh" --solution 5 "$work/solution5.c" > /dev/null || { wrong=$((wrong + 1)); echo "  WRONG  make_stub.sh --solution 5 failed"; continue; }
        expect PASS "solution (real code + two heads)" "$here/grade.sh" 5 "$work/solution5.c"
        expect FAIL "real diffusion.c (one head: the start)" "$here/grade.sh" 5 "$root/diffusion.c"
    else
        expect PASS "real diffusion.c" "$here/grade.sh" "$n" "$root/diffusion.c"
    fi
    expect FAIL "stub (make_stub.sh $n)" "$here/grade.sh" "$n" "$stub"
    if [ "$n" = 6 ]; then
        cc -O2 "$root/diffusion.c" -lm -o "$work/d" 2> /dev/null
        if measure6 "$work/d" "$work/m6"; then
            sed 's/^/           /' "$work/m6/ddim_steps.csv"
            expect PASS "real diffusion.c + measured CSV" CSV="$work/m6/ddim_steps.csv" REQUIRE_CSV=1 "$here/grade.sh" 6 "$root/diffusion.c"
            sed -i '3s/,[^,]*$/,0.5/' "$work/m6/ddim_steps.csv"  # a wrong rms in row 2
            expect FAIL "real diffusion.c + a wrong CSV row" CSV="$work/m6/ddim_steps.csv" REQUIRE_CSV=1 "$here/grade.sh" 6 "$root/diffusion.c"
            expect FAIL "real diffusion.c, CSV required, missing" CSV="$work/none.csv" REQUIRE_CSV=1 "$here/grade.sh" 6 "$root/diffusion.c"
        else
            wrong=$((wrong + 1)); echo "  WRONG  the measurement of exercise 6 could not be run"
        fi
    fi
done
echo "selftest: $ok ok, $wrong wrong"
[ $wrong -eq 0 ]

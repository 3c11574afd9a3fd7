#!/usr/bin/env bash
# notes/mutants.sh — do the tests catch real bugs? Plants realistic one-line bugs in diffusion.c, one at a time,
# each in a copy of the repository, and runs there the test groups that should catch it (TESTS=... ./test.sh: when
# those groups fail, `make test` fails). Prints one line per bug and a table at the end; exit 1 if a bug survives.
#   notes/mutants.sh              every bug (each run builds the copy: ~1-3 minutes per bug on 2 cores)
#   notes/mutants.sh 3 7          bugs 3 and 7 only
# The claims run at 10^4 samples per claim (CHECK_SAMPLES=10000, as under qemu; CHECK_SAMPLES=100000 for make test's
# 10^5): a bug whose bias shows beyond 5 standard errors at 10^4 shows beyond 15 at 10^5.
# Each bug is a sed substitution that must match exactly one line of diffusion.c: when diffusion.c changes so that
# a pattern matches no line (or two), the bug is reported as "pattern?" instead of planted somewhere else.
# The last full table (16 of 16 caught): notes/tests.md, "Do the tests catch bugs?".
set -u
cd "$(dirname "$0")/.."
# name | groups that should catch it | sed pattern (the line to change) | replacement (sed s/// syntax, | as separator)
MUTANTS=(
"AdamW without bias correction|refcheck|(mi / bc1) / (sqrt(vi / bc2) + h->eps)|mi / (sqrt(vi) + h->eps)"
"EMA decay swapped (d <-> 1 - d)|refcheck|ema_decay \* m->ema\[i\] + (1 - ema_decay) \* p|(1 - ema_decay) * m->ema[i] + ema_decay * p"
"label dropout inverted (90% hidden)|claims|rng_uniform(rng) < 0.1)|rng_uniform(rng) > 0.1)"
"t drawn from {0..T-1}|claims|t\[b\] = 1 + rng_int(rng, s->T);|t[b] = rng_int(rng, s->T);"
"DDIM grid with an integer stride T - i (T / S)|claims|return T - (int)((int64_t)i \* T / S);|return T - i * (T / S);"
"--clip-x0 ignored|claims pictures|if (clip) v = v < -1|if (0) v = v < -1"
"idx label range check removed|bad_input|if (buf\[8 + i\] > 9) die|if (0) die"
"own images cropped from the top-left|pictures|img + ((size_t)(h - s) / 2 \* w + (w - s) / 2) \* c,|img,"
"PNG grid written transposed|pictures|\* h + y / scale) \* w + x / scale;|* h + x / scale) * w + y / scale;"
"SDE drift without its 1/2|claims|beta \* (0.5 \* x\[k\] - eps\[k\] \* score_scale)|beta * (x[k] - eps[k] * score_scale)"
"GroupNorm gradient without the xhat term|gradcheck|- mean_dxhat - xhat \* mean_dxhat_xhat)|- mean_dxhat)"
"checkpoint CRC not checked|training|int crc_ok = crc32_update(0, buf, len - 4) == crc_file;|int crc_ok = 1;"
"idx image count check removed|bad_input|if ((uint64_t)cnt \* rows \* cols > len - 16)|if (0)"
"DDPM noise beta_t instead of beta_tilde_t|claims|double sd = sqrt(s->beta_tilde\[t\]);|double sd = sqrt(s->beta[t]);"
"guidance towards the unconditional model|claims|eps\[i\] = (real)(eu\[i\] + w \* (ec\[i\] - eu\[i\]));|eps[i] = (real)(ec[i] + w * (eu[i] - ec[i]));"
"one-shot form without the square root of alpha_bar|claims|double a = sqrt(s->alpha_bar\[t\]), b = sqrt(s->one_minus_alpha_bar\[t\]);|double a = s->alpha_bar[t], b = sqrt(s->one_minus_alpha_bar[t]);"
)
work=$(mktemp -d "${TMPDIR:-/tmp}/diffusion-mutants.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
pick=" ${*:-$(seq -s ' ' 1 ${#MUTANTS[@]})} "
results=() survived=0
for i in "${!MUTANTS[@]}"; do
    n=$((i + 1))
    [[ $pick == *" $n "* ]] || continue
    IFS='|' read -r name groups pattern replacement <<<"${MUTANTS[$i]}"
    copy=$work/m$n
    rm -rf "$copy"; mkdir -p "$copy"
    tar -c --exclude=.git --exclude='*.ckpt.tmp' . | tar -x -C "$copy"
    cp data/model.ckpt "$copy/data/" 2>/dev/null
    matches=$(grep -c -- "$pattern" diffusion.c)
    if [ "$matches" != 1 ]; then
        result="pattern? ($matches lines match)"; survived=$((survived + 1))
    else
        sed -i "s|$pattern|$replacement|" "$copy/diffusion.c"
        start=$SECONDS
        (cd "$copy" && TESTS="$groups" CHECK_SAMPLES=${CHECK_SAMPLES:-10000} ./test.sh) >"$work/log$n" 2>&1
        # the groups' failures, from test.sh's time table (a build's warning is not the groups catching the bug)
        fails=$(awk '/^  [a-z0-9_]+ +[0-9]+ s +[0-9]+ passed, [0-9]+ failed$/ { f += $(NF - 1) } END { print f + 0 }' "$work/log$n")
        # what caught it: the first failing row of a check's table (claims, refcheck), else the first FAIL
        caught=$(grep -E '^      .*(FAIL|FAIL \(.*\))$' "$work/log$n" | head -1 | sed 's/^ *//; s/  */ /g' | cut -c1-90)
        [ -n "$caught" ] || caught=$(grep '^FAIL  ' "$work/log$n" | grep -v 'builds' | head -1 | cut -c7- | cut -c1-90)
        if [ "$fails" -gt 0 ]; then result="caught ($((SECONDS - start)) s, $fails FAIL): $caught"
        else result="SURVIVED ($((SECONDS - start)) s)"; survived=$((survived + 1)); fi
    fi
    line=$(printf '%2d  %-52s %-18s %s' "$n" "$name" "$groups" "$result")
    echo "$line"
    results+=("$line")
    rm -rf "$copy"
done
echo
printf '%2s  %-52s %-18s %s\n' "#" "bug planted in diffusion.c" "groups run" "result (the first FAIL)"
printf '%s\n' "${results[@]}"
echo "${#results[@]} bugs planted, $((${#results[@]} - survived)) caught, $survived survived"
[ $survived -eq 0 ]

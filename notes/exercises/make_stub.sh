#!/usr/bin/env bash
# make_stub.sh N OUT.c [SOURCE.c]
# make_stub.sh --solution N OUT.c [SOURCE.c]
#
# Writes the student's copy for exercise N: SOURCE.c (default: the repository's diffusion.c) with the code of the
# exercise cut out and replaced by a "TODO (exercise N)" comment that still compiles. Nothing is marked in
# diffusion.c itself: each cut is found by a pattern (a function's name, or the first and last line of a branch),
# and every pattern must match exactly once, so a change to diffusion.c that moves the code is reported here
# instead of silently producing a wrong stub.
#
#   notes/exercises/make_stub.sh 1 student.c        hand out student.c
#   notes/exercises/grade.sh 1 student.c            grade it (fails until the TODO is done right)
#
# With --solution it writes the solution instead: SOURCE.c itself for every exercise but 5 (the solutions are the
# real code), and for exercise 5 (two attention heads, which the real code does not have) SOURCE.c with the
# attention of 05-attention-heads/solution/ put in. selftest.sh grades both.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
usage() { echo "usage: make_stub.sh [--solution] N OUT.c [SOURCE.c]   (N = 1..7, see notes/exercises/README.md)" >&2; exit 2; }
solution=0
if [ "${1:-}" = --solution ]; then solution=1; shift; fi
[ $# -ge 2 ] && [[ $1 =~ ^0?[1-9]$ ]] || usage
n=$((10#${1#0}))
out=$2
src=${3:-$root/diffusion.c}
[ -f "$src" ] || { echo "make_stub.sh: $src: no such file" >&2; exit 1; }
dir=$(ls -d "$here"/0"$n"-* 2>/dev/null | head -1) || true
[ -n "$dir" ] || usage

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$src" "$work/cur.c"

# blank_body NAME REPLACEMENT_FILE [COMMENT_FILE]: keeps the signature of `static ... NAME(...) {` (one or more
# lines) and its closing `}` in column 0, and replaces everything between with the replacement. With COMMENT_FILE,
# the comment lines right above the signature (which may state the answer) are replaced by that file too.
blank_body() {
    awk -v name="$1" -v repl="$2" -v crepl="${3:-}" '
        function flush() { for (i = 1; i <= nc; i++) print pending[i]; nc = 0 }
        BEGIN { state = 0; found = 0; nc = 0 }
        state == 0 && $0 ~ ("^static [^=;(]*[ *]" name "\\(") {
            found++; state = 1
            if (crepl != "") { nc = 0; while ((getline line < crepl) > 0) print line; close(crepl) } else flush()
        }
        state == 0 && /^\/\// { pending[++nc] = $0; next }
        state == 0 { flush() }
        state == 1 { print; if ($0 ~ /\{[ \t]*$/) { while ((getline line < repl) > 0) print line; close(repl); state = 2 }; next }
        state == 2 { if ($0 ~ /^}/) { print; state = 0 }; next }
        { print }
        END { flush(); if (found != 1 || state != 0) exit 3 }' "$work/cur.c" > "$work/next.c" ||
        { echo "make_stub.sh: function $1 not found exactly once in $src: update make_stub.sh" >&2; exit 1; }
    mv "$work/next.c" "$work/cur.c"
}

# blank_range START_RE END_RE REPLACEMENT_FILE: replaces the lines from the one matching START_RE (inclusive,
# it must match exactly once) up to the first later line matching END_RE (exclusive, kept).
blank_range() {
    awk -v start="$1" -v end="$2" -v repl="$3" '
        BEGIN { state = 0; found = 0 }
        $0 ~ start { found++ }
        state == 0 && found == 1 && $0 ~ start { state = 1; next }
        state == 1 { if ($0 ~ end) { while ((getline line < repl) > 0) print line; close(repl); print; state = 2 }; next }
        { print }
        END { if (found != 1 || state != 2) exit 3 }' "$work/cur.c" > "$work/next.c" ||
        { echo "make_stub.sh: the lines from /$1/ to /$2/ were not found exactly once in $src: update make_stub.sh" >&2; exit 1; }
    mv "$work/next.c" "$work/cur.c"
}

# insert_before RE TEXT_FILE: inserts the text before the one line matching RE.
insert_before() {
    awk -v re="$1" -v repl="$2" '
        $0 ~ re { found++; while ((getline line < repl) > 0) print line; close(repl) }
        { print }
        END { if (found != 1) exit 3 }' "$work/cur.c" > "$work/next.c" ||
        { echo "make_stub.sh: /$1/ not found exactly once in $src: update make_stub.sh" >&2; exit 1; }
    mv "$work/next.c" "$work/cur.c"
}

r=$work/repl.txt
if [ $solution = 1 ]; then
    if [ $n = 5 ]; then
        sol=$dir/solution
        echo 'enum { ATTN_HEADS = 2 };  // exercise 5: the number of attention heads (divides ch2)' > "$r"
        insert_before '^static void acts_layout\(' "$r"
        echo '    at->p = take_act(L, (size_t)B * ATTN_HEADS * N4 * N4);  // exercise 5: one N x N map per head' > "$r"
        blank_range 'at->p = take_act\(L, B \* N4 \* N4\);' 'at->o = take_act' "$r"
        blank_body attention_forward "$sol/attention_forward.body"
        blank_body attention_backward "$sol/attention_backward.body"
    fi
    if ! cc -fsyntax-only -w "$work/cur.c" 2> "$work/cc.txt"; then
        echo "make_stub.sh: the solution for exercise $n does not compile:" >&2; head -20 "$work/cc.txt" >&2; exit 1
    fi
    mkdir -p "$(dirname "$out")"
    cp "$work/cur.c" "$out"
    echo "wrote $out: the solution of exercise $n ($(basename "$dir"))"
    exit 0
fi
case $n in
1)
    cat > "$r" <<'EOF'
            // TODO (exercise 1): the cosine schedule of Nichol & Dhariwal (2021). Choose alpha_bar, not beta:
            //   f(t) = cos^2( ((t/T) + s) / (1 + s) * pi/2 ),  s = 0.008,   alpha_bar_t = f(t) / f(0),
            //   beta_t = 1 - alpha_bar_t / alpha_bar_{t-1},  clipped at 0.999.
            // See notes/exercises/01-cosine-schedule/README.md.
            beta[t] = 0.0;  // placeholder
EOF
    blank_range 'const double s = 0\.008;' '^        \} else \{$' "$r" ;;
2)
    cat > "$r" <<'EOF'
        // TODO (exercise 2): the posterior q(x_{t-1} | x_t, x_0) = N(coef_x0 x_0 + coef_xt x_t, beta_tilde I).
        // Fill s.beta_tilde[t], s.coef_x0[t] and s.coef_xt[t] from s.beta, s.alpha, s.alpha_bar and
        // s.one_minus_alpha_bar. See notes/exercises/02-posterior-coefficients/README.md.
EOF
    blank_range 'double omab = s\.one_minus_alpha_bar\[t\], omab_prev' '^    \}$' "$r" ;;
3)
    cat > "$r" <<'EOF'
    // TODO (exercise 3): eq. (2) for n values, x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t);
    // when clip is set, clip each value to [-1, 1]. See notes/exercises/03-ddpm-step/README.md.
    for (size_t i = 0; i < n; i++) x0_hat[i] = 0;  // placeholder
EOF
    blank_body x0_hat_from_eps "$r"
    cat > "$r" <<'EOF'
            // TODO (exercise 3): one step of the generation algorithm at t = T - i:
            //   (a) eps = eps_theta(x_t, t) (predict_eps)   (b) x0_hat by eq. (2) (x0_hat_from_eps)
            //   (c) mu by eq. (3) (posterior_mean)          (d) x_{t-1} = mu + sqrt(beta_tilde_t) z, for t > 1 only.
            // Draw z with one call rng_normal_fill(rng, z, n) per step, and only when t > 1.
EOF
    blank_range 'int t = T - i;' '\} else if \(o->kind == SAMPLER_DDIM\) \{' "$r" ;;
4)
    cat > "$r" <<'EOF'
    // TODO (exercise 4): forward was out = x sigmoid(x). Add dL/dx = dout * d(out)/dx into dinp (+=).
EOF
    c=$work/comment.txt
    echo '// SiLU backward: dout (n) -> dinp (n) (+=). Exercise 4.' > "$c"
    blank_body silu_backward "$r" "$c"
    cat > "$r" <<'EOF'
    // TODO (exercise 4): GroupNorm backward, accumulating (+=) into dinp, dgamma and dbeta.
    // forward, per image b and group g (C/G channels x N positions): xhat = (x - mean) rstd, y = gamma[c] xhat + beta[c]
    // (mean and rstd were saved by the forward pass). See notes/exercises/04-backward-silu-groupnorm/README.md.
EOF
    echo '// GroupNorm backward: dout (B,C,N) -> dinp (B,C,N), dgamma, dbeta (C), all (+=). Exercise 4.' > "$c"
    blank_body groupnorm_backward "$r" "$c" ;;
5)
    cat > "$r" <<'EOF'
// TODO (exercise 5): give this attention two heads (channels 0..C/2-1 and C/2..C-1), each with its own softmax and
// scale 1/sqrt(C/2), in attention_forward AND attention_backward; make room for both heads' weights in
// acts_layout (at->p). See notes/exercises/05-attention-heads/README.md.
EOF
    insert_before '^static void attention_forward\(' "$r" ;;
6)
    cat > "$r" <<'EOF'
            // TODO (exercise 6): one DDIM step from t = T - floor(i T / S) to t' = T - floor((i + 1) T / S), by the
            // formula in the comment above (x0_hat from eq. (2), then re-noised to level t'). When sigma > 0, draw z
            // with one call rng_normal_fill(rng, z, n). See notes/exercises/06-ddim-steps/README.md.
EOF
    blank_range 'int t = T - \(int\)\(\(long\)i \* T / S\)' '^        \} else \{$' "$r" ;;
7)
    cat > "$r" <<'EOF'
    // TODO (exercise 7): unroll every K x K patch of inp into one column of col (zero outside the image, padding
    // K/2): col[(c, ky, kx)][(oy, ox)] = inp[c][oy*stride + ky - K/2][ox*stride + kx - K/2].
EOF
    blank_body im2col "$r"
    cat > "$r" <<'EOF'
    // TODO (exercise 7): the adjoint of im2col: add each entry of dcol into dinp (+=) at the pixel im2col read it from.
EOF
    blank_body col2im "$r" ;;
*) usage ;;
esac

{
    echo "// STUDENT COPY for exercise $n ($(basename "$dir")), made by notes/exercises/make_stub.sh from diffusion.c."
    echo "// Look for \"TODO (exercise $n)\". Grade with: notes/exercises/grade.sh $n <this file>"
    cat "$work/cur.c"
} > "$work/stub.c"

# The stub must compile as it is (the TODOs are placeholders, not syntax errors).
if ! cc -fsyntax-only -w -I"$(dirname "$src")" "$work/stub.c" 2> "$work/cc.txt"; then
    echo "make_stub.sh: the stub for exercise $n does not compile:" >&2
    head -20 "$work/cc.txt" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
cp "$work/stub.c" "$out"
echo "wrote $out: exercise $n ($(basename "$dir")); the task is in $dir/README.md"

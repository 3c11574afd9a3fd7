#!/usr/bin/env bash
# make_stub.sh N OUT.c [SOURCE.c]
# make_stub.sh --solution N OUT.c [SOURCE.c]
#
# Writes the student's copy for exercise N: SOURCE.c (default: the repository's diffusion.c) with the code of the
# exercise cut out and replaced by a "TODO (exercise N)" comment that still compiles. Nothing is marked in
# diffusion.c itself: each cut is found by a pattern (a function's name, or the first and last line of a range,
# possibly within one function), and every pattern must match exactly once, so a change to diffusion.c that moves
# the code is reported here instead of silently producing a wrong stub.
#
# A stub must not contain its answer: besides the exercise's own code, every other place of diffusion.c that states
# the answer (a banner's formula, a comment, a check that recomputes it, a step from which it follows by
# substitution) is cut too. selftest.sh greps each stub for the answer's telltale expressions (NN-name/telltales.txt).
#
#   notes/exercises/make_stub.sh 1 student.c        hand out student.c
#   notes/exercises/grade.sh 1 student.c            grade it (fails until the TODO is done right)
#
# With --solution it writes the solution instead: the stub with the bodies of its TODO regions taken from SOURCE.c
# (the solutions are the real code), and for exercise 8 (two attention heads, which the real code does not have)
# from 08-attention-heads/solution/. selftest.sh grades both, and the wrong solutions of NN-name/wrong/ (sed
# scripts applied to the solution).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
EXERCISES_DIR=$here
. "$here/lib.sh"
usage() {
    echo "usage: make_stub.sh [--solution] N|NAME OUT.c [SOURCE.c]   (N = 1..13, see notes/exercises/README.md)" >&2
    echo "       make_stub.sh --regions N|NAME   (the functions the student writes)" >&2
    echo "       make_stub.sh --transplant FUNCTION INTO.c OUT.c [SOURCE.c]   (the graders)" >&2
    exit 2
}
solution=0 transplant="" dir=""
case ${1:-} in
--solution) solution=1; shift ;;
--regions) [ $# = 2 ] && dir=$(exercise_dir "$2") || usage; exercise_regions "$(exercise_name "$dir")"; exit 0 ;;
--transplant) [ $# -ge 4 ] || usage; transplant=$2; into=$3; shift 3; set -- 0 "$@" ;;
esac
[ $# -ge 2 ] || usage
out=$2
src=${3:-$root/diffusion.c}
[ -f "$src" ] || { echo "make_stub.sh: $src: no such file" >&2; exit 1; }
if [ -z "$transplant" ]; then
    dir=$(exercise_dir "$1") || true
    [ -n "$dir" ] || usage
    n=$(exercise_number "$dir") name=$(exercise_name "$dir")
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$src" "$work/cur.c"

# cut MODE NAME START END REPL [COMMENT] [KEEP] [OPTIONAL]: the one awk behind every cut, on $work/cur.c.
#   MODE body:    in the DEFINITION of function NAME (`static ... NAME(...) {`, on one or more lines; prototypes,
#                 which end with `;`, are skipped), everything between the signature and the closing `}` in
#                 column 0 is replaced by the file REPL. With COMMENT (a file), the comment lines right above the
#                 signature (which may state the answer) are replaced by it.
#   MODE comment: only the comment lines right above NAME's definition are replaced by COMMENT.
#   MODE range:   the lines from the one matching START (exactly one match; within NAME's definition when NAME is
#                 not empty) up to the first later line matching END (exclusive, kept) are replaced by REPL; with
#                 KEEP = 1 the START line itself is kept.
#   OPTIONAL = 1: no match is fine (the cut is skipped); more than one is still an error.
cut() {
    local mode=$1 name=$2 start=$3 end=$4 repl=$5 crepl=${6:-} keep=${7:-0} optional=${8:-0}
    # the regular expressions go through the environment: awk -v would process their backslashes (gawk does)
    CUT_START=$start CUT_END=$end awk -v mode="$mode" -v name="$name" -v repl="$repl" -v crepl="$crepl" \
        -v keep="$keep" -v optional="$optional" '
        function flush() { for (i = 1; i <= nc; i++) print pending[i]; nc = 0 }
        function emit(file) { while ((getline line < file) > 0) print line; close(file) }
        BEGIN { start = ENVIRON["CUT_START"]; end = ENVIRON["CUT_END"]
                inside = (mode == "range" && name == ""); found = 0; state = 0; sig = 0; nc = 0 }
        # the signature of NAME, collected until it ends with "{" (a definition) or ";" (a prototype)
        !sig && !indef && state != 2 && name != "" && $0 ~ ("^static [^=;(]*[ *]" name "\\(") { sig = 1; ns = 0 }
        sig {
            sigl[++ns] = $0
            if ($0 ~ /;[ \t]*(\/\/.*)?$/) { sig = 0; flush(); for (i = 1; i <= ns; i++) print sigl[i]; next }
            if ($0 !~ /\{[ \t]*(\/\/.*)?$/) next
            sig = 0
            if (mode != "range") { found++; if (crepl != "") { nc = 0; emit(crepl) } }
            flush()
            for (i = 1; i <= ns; i++) print sigl[i]
            if (mode == "body") { emit(repl); state = 2 }
            if (mode == "range") { indef = 1; inside = 1 }
            next
        }
        state == 2 { if ($0 ~ /^}/) { print; state = 0 }; next }   # body: the old body is dropped
        mode != "range" && $0 ~ /^\/\// { pending[++nc] = $0; next }
        mode != "range" { flush(); print; next }
        # range
        indef && $0 ~ /^}/ { indef = 0; inside = 0; if (state == 1) state = 9 }
        state == 1 { if ($0 ~ end) { emit(repl); print; state = 3 }; next }
        inside && $0 ~ start { found++; if (found == 1) { state = 1; if (keep) print; next } }
        { print }
        END {
            flush()
            if (found == 0 && optional) exit 0
            if (found != 1 || state == 1 || state == 9) exit 3
        }' "$work/cur.c" > "$work/next.c" || {
        if [ "$mode" = range ]; then echo "make_stub.sh: the lines from /$start/ to /$end/${name:+ in $name} were not found exactly once in $src: update make_stub.sh" >&2
        else echo "make_stub.sh: the definition of $name was not found exactly once in $src: update make_stub.sh" >&2; fi
        exit 1; }
    mv "$work/next.c" "$work/cur.c"
}
blank_body() { cut body "$1" "" "" "$2" "${3:-}"; }                  # NAME REPL [COMMENT]
blank_body_if_present() { cut body "$1" "" "" "$2" "${3:-}" 0 1; }   # the same, where NAME may not exist
blank_range() { cut range "" "$1" "$2" "$3" "" "${4:-0}"; }          # START END REPL [KEEP]
blank_in() { cut range "$1" "$2" "$3" "$4" "" "${5:-0}"; }           # NAME START END REPL [KEEP]
replace_comment() { cut comment "$1" "" "" "" "$2"; }               # NAME COMMENT

# insert_before RE TEXT_FILE: inserts the text before the one line matching RE.
insert_before() {
    INSERT_RE=$1 awk -v repl="$2" '
        BEGIN { re = ENVIRON["INSERT_RE"] }
        $0 ~ re { found++; while ((getline line < repl) > 0) print line; close(repl) }
        { print }
        END { if (found != 1) exit 3 }' "$work/cur.c" > "$work/next.c" ||
        { echo "make_stub.sh: /$1/ not found exactly once in $src: update make_stub.sh" >&2; exit 1; }
    mv "$work/next.c" "$work/cur.c"
}

r=$work/repl.txt c=$work/comment.txt
# --transplant: OUT.c is INTO.c with the body of FUNCTION taken from SOURCE.c (grade.sh 9 builds its reference
# run from the student's file with diffusion.c's draw_training_batch).
if [ -n "$transplant" ]; then
    [ -f "$into" ] || { echo "make_stub.sh: $into: no such file" >&2; exit 1; }
    cut body "$transplant" "" "" /dev/null  # checks that SOURCE.c has exactly one definition
    awk -v name="$transplant" '
        !sig && !body && $0 ~ ("^static [^=;(]*[ *]" name "\\(") { sig = 1 }
        sig { if ($0 ~ /;[ \t]*(\/\/.*)?$/) { sig = 0; next } if ($0 ~ /\{[ \t]*(\/\/.*)?$/) { sig = 0; body = 1 }; next }
        body && /^}/ { exit }
        body { print }' "$src" > "$r"
    cp "$into" "$work/cur.c"
    blank_body "$transplant" "$r"
    mkdir -p "$(dirname "$out")"
    cp "$work/cur.c" "$out"
    echo "wrote $out: $into with the $transplant of $src"
    exit 0
fi
# Cuts shared by several exercises: code from which another exercise's answer follows.
cut_ddim() {  # DDIM with eta = 1 and t' = t - 1 IS the DDPM step (and its sigma^2 is beta_tilde_t)
    cat > "$r" <<'EOF'
    // Cut from this exercise copy: DDIM with eta = 1 and t' = t - 1 is the DDPM step, so its formula
    // would give the exercise's answer away. Exercise @DDIM@ is to write it. Placeholder: x stays as it is.
    (void)x, (void)x0_hat, (void)eps, (void)s, (void)t, (void)tp, (void)eta, (void)n, (void)clip;
    (void)z, (void)rng;
EOF
    echo "// DDIM (lecture 001): cut from this exercise copy (see its body)." > "$c"
    blank_body ddim_step "$r" "$c"
}
case $name in
cosine-schedule)
    cat > "$r" <<'EOF'
            // TODO (exercise @N@): the cosine schedule of Nichol & Dhariwal (2021). Choose alpha_bar, not beta:
            //   f(t) = cos^2( ((t/T) + s) / (1 + s) * pi/2 ),  s = 0.008,   alpha_bar_t = f(t) / f(0),
            //   beta_t = 1 - alpha_bar_t / alpha_bar_{t-1},  clipped at 0.999.
            // See notes/exercises/@DIR@/README.md.
            beta[t] = 0.0;  // placeholder
EOF
    blank_range 'const double s = 0\.008;' '^        \} else \{$' "$r" ;;
posterior-coefficients)
    cat > "$r" <<'EOF'
//     TODO (exercise @N@): derive mu_t(x_t, x_0) = coef_x0 x_0 + coef_xt x_t and beta_tilde_t from
//     Bayes' rule, q(x_{t-1} | x_t, x_0) proportional to q(x_t | x_{t-1}) q(x_{t-1} | x_0), with
//     both factors from Step 1. See notes/exercises/@DIR@/README.md.
EOF
    blank_range '^// Step 2\. ' '^// =====' "$r" 1
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): for t = 1..s->T fill s->beta_tilde[t], s->coef_x0[t] and s->coef_xt[t] from
    // s->beta, s->alpha, s->alpha_bar and s->one_minus_alpha_bar (T+1 entries each, index t).
    (void)s;  // placeholder: the three arrays stay 0
EOF
    echo "// The posterior's coefficients for t = 1..T, functions of the schedule alone (exercise @N@)." > "$c"
    blank_body posterior_coefficients "$r" "$c"
    cut_ddim ;;
ddpm-step)
    cat > "$r" <<'EOF'
//     TODO (exercise @N@): x_T ~ N(0, I), then for t = T..1 one step of the generation algorithm:
//     (2) a guess x0_hat of x_0 from x_t and the predicted noise eps_theta(x_t, t): derive it from
//     Step 1's one-shot form; (3) Step 2's posterior mean with x0_hat in place of the unknown x_0;
//     then x_{t-1} = that mean plus Step 2's posterior noise. See
//     notes/exercises/@DIR@/README.md.
EOF
    blank_range '^// Step 5\. ' '^// =====' "$r" 1
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): eq. (2), derived from x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps;
    // when clip is set, clip each value to [-1, 1].
    (void)xt, (void)eps, (void)alpha_bar, (void)one_minus_alpha_bar, (void)clip;
    for (size_t i = 0; i < n; i++) x0_hat[i] = 0;  // placeholder
EOF
    cat > "$c" <<'EOF'
// eq. (2) for n values: x0_hat from x_t and eps at noise level alpha_bar (exercise @N@). With clip,
// x0_hat is clipped to [-1, 1], the range of the data: a heuristic (Ho et al.'s code does it), not
// the lecture's algorithm. Off by default; on with --clip-x0.
EOF
    blank_body x0_hat_from_eps "$r" "$c"
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): eq. (2) into x0_hat (x0_hat_from_eps, passing clip on), eq. (3)
    // (posterior_mean may write into x), then Step 2's posterior noise: draw z with one call
    // rng_normal_fill(rng, z, n), only for t > 1 (why not at t = 1?).
    (void)x, (void)x0_hat, (void)eps, (void)s, (void)t, (void)n, (void)clip, (void)z, (void)rng;
EOF
    cat > "$c" <<'EOF'
// One step of the slide's generation at time t, in place on x (n values) (exercise @N@). x0_hat (n)
// receives eq. (2); z (n) is scratch for the noise.
EOF
    blank_body ddpm_step "$r" "$c"
    cut_ddim ;;
backward-silu-groupnorm)
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): forward was out = x sigmoid(x). Add dL/dx = dout * d(out)/dx into dinp (+=).
EOF
    echo '// SiLU backward: dout (n) -> dinp (n) (+=). Exercise @N@.' > "$c"
    blank_body silu_backward "$r" "$c"
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): GroupNorm backward for one group of one image, accumulating (+=) into dx, dgamma, dbeta.
    // forward, on the group's cg channels x N positions: xhat = (x - m) r, y = gamma[c] xhat + beta[c]
    // (m and r were saved by the forward pass). See notes/exercises/@DIR@/README.md.
EOF
    echo '// GroupNorm backward, one group of one image: dy, x (cg,N) -> dx (cg,N), dgamma, dbeta (cg), all (+=). Exercise @N@.' > "$c"
    blank_body groupnorm_group_backward "$r" "$c" ;;
attention-heads)
    cat > "$r" <<'EOF'
// TODO (exercise @N@): give this attention two heads (channels 0..C/2-1 and C/2..C-1), each with its own softmax and
// scale 1/sqrt(C/2), in attention_forward AND attention_backward; make room for both heads' weights in
// acts_layout (at->p). See notes/exercises/@DIR@/README.md.
EOF
    insert_before '^static void attention_forward\(' "$r" ;;
ddim-steps)
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): one DDIM step from t to tp < t by the formula above: x0_hat by eq. (2)
    // (x0_hat_from_eps, passing clip on), then re-noised to level tp. When sigma > 0, draw z with
    // one call rng_normal_fill(rng, z, n). See notes/exercises/@DIR@/README.md.
    (void)x, (void)x0_hat, (void)eps, (void)s, (void)t, (void)tp, (void)eta, (void)n, (void)clip;
    (void)z, (void)rng;
EOF
    blank_body ddim_step "$r" ;;
im2col)
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): the definition above, read literally: for every (c, ky, kx) and output position
    // (oy, ox), col[(c K + ky) K + kx][oy OW + ox] = inp[c][oy stride + ky - K/2][ox stride + kx - K/2],
    // and 0 where that pixel is outside the image. OH, OW: conv_out_size. Exercise @N@.
    size_t n = (size_t)C * K * K * conv_out_size(H, K, stride) * conv_out_size(W, K, stride);
    (void)inp;
    memset(col, 0, n * sizeof(real));  // placeholder
EOF
    blank_body im2col_reference "$r"
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): the adjoint of im2col_reference: add (+=) each entry of dcol into dinp at the
    // pixel im2col_reference read it from; entries that came from the zero padding go nowhere.
    (void)dinp, (void)dcol, (void)C, (void)H, (void)W, (void)K, (void)stride;
EOF
    blank_body col2im "$r" ;;
forward-sde)
    cat > "$r" <<'EOF'
            // TODO (exercise @N@): the lecture's discretization of the VP-SDE's noise rate
            // beta(u) (vp_beta) on the grid u_t = t/T: alpha_t = exp(-int_{u_{t-1}}^{u_t} beta(u) du),
            // beta[t] = 1 - alpha_t. See notes/exercises/@DIR@/README.md.
            beta[t] = 0.0;  // placeholder
EOF
    blank_in schedule_betas '^        \} else \{$' '^        \}$' "$r" 1
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): int_0^u vp_beta(v) dv, in closed form.
    (void)u;
    return 0;  // placeholder
EOF
    blank_body vp_beta_integral "$r"
    echo "// The integral from 0 to u of vp_beta (exercise @N@)." > "$c"
    replace_comment vp_beta_integral "$c" ;;
training-batch-loss)
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): for each b = 0..B-1 the slide's steps 1-4, drawing in this order:
    //   1. an image index with one rng_int(rng, d->n) call: copy that image (C*H*W values of d->pixels)
    //      into x0 + b*C*H*W, and when label != NULL its label into label[b] (-1 when d->labels == NULL);
    //   2. t[b] ~ Unif{1..T} with one rng_int call;   3. eps with one rng_normal_fill of C*H*W values;
    //   4. x_t with Step 1's one-shot form (forward_one_shot).
    // The grader checks the draws bit for bit. Placeholder: no image, no noise, t = 1, no label.
    size_t n = (size_t)d->c * d->h * d->w;
    (void)s, (void)rng;
    for (int b = 0; b < B; b++) {
        t[b] = 1;
        if (label) label[b] = -1;
        for (size_t k = 0; k < n; k++) x0[b * n + k] = eps[b * n + k] = xt[b * n + k] = 0;
    }
EOF
    cat > "$c" <<'EOF'
// The slide's algorithm for a batch: B tuples (x_0, t, eps, x_t), with labels when the data has
// them. x0, eps, xt: (B, C, H, W); t, label: (B). Exercise @N@.
EOF
    blank_body draw_training_batch "$r" "$c"
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): L = the mean over all n values of (pred - eps)^2: the lecture's
    // ||eps - eps_theta||^2, averaged over the batch and the pixels. Sum in double.
    (void)pred, (void)eps, (void)n;
    return 0;  // placeholder
EOF
    cat > "$c" <<'EOF'
// ---- The loss of Step 4 ---------------------------------------------------------------------
// Exercise @N@: the mean squared error over the n = B*C*H*W values, a number per pixel.
EOF
    blank_body mse_forward "$r" "$c"
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): add dL/dpred_i of mse_forward's L into dpred[i], i < n (+=, never =).
    (void)dpred, (void)pred, (void)eps, (void)n;
EOF
    echo "// Exercise @N@: the gradient of mse_forward's L, added (+=) into dpred, as every backward here." > "$c"
    blank_body mse_backward "$r" "$c" ;;
adamw-ema)
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): the optimiser step, in double, writing back in real. In this order:
    //   norm = sqrt(sum of grads[i]^2) (before clipping, returned); scale = clip / norm when
    //   norm > clip, else 1; bc1 = 1 - beta1^step, bc2 = 1 - beta2^step (pow);
    //   ema_decay = fmin(h->ema_decay, (1 + step) / (10 + step)) (the EMA's warm-up);
    //   then for every i: g = grads[i] scale; m = beta1 adam_m[i] + (1 - beta1) g;
    //   v = beta2 adam_v[i] + (1 - beta2) g g; adam_m[i] = m, adam_v[i] = v;
    //   p = params[i] - lr ((m / bc1) / (sqrt(v / bc2) + eps) + weight_decay params[i]);
    //   params[i] = p; ema[i] = ema_decay ema[i] + (1 - ema_decay) p (p the double value).
    // The grader compares a 20-step checkpoint bit for bit. See notes/exercises/@DIR@/README.md.
    (void)m, (void)h, (void)step;
    return 0;  // placeholder: the weights never change
EOF
    echo "// One AdamW step and the EMA of the weights (exercise @N@); returns the gradient's norm." > "$c"
    blank_body adamw_step "$r" "$c" ;;
guidance)
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): classifier-free guidance, lecture 001's formula
    //     eps = eps(x,t,none) + w (eps(x,t,c) - eps(x,t,none)),
    // with ONE forward pass of 2B images: x twice, in x2 (2B,C,H,W); tt and lab (2B) already hold the
    // times, the labels c in their first half and the "no label" row in the second. After
    // unet_forward(m, x2, tt, lab, 2 * B) the two eps are m->a.pred and m->a.pred + n.
    // See notes/exercises/@DIR@/README.md.
    size_t n = (size_t)B * m->cfg.img_c * m->cfg.img_h * m->cfg.img_w;
    (void)x, (void)x2, (void)tt, (void)lab, (void)w;
    memset(eps, 0, n * sizeof(real));  // placeholder
EOF
    cat > "$c" <<'EOF'
// Classifier-free guidance (Ho & Salimans 2022), lecture 001 (exercise @N@): eps (B,C,H,W) from x
// (B,C,H,W) at weight w; x2 (2B,C,H,W) scratch; tt, lab (2B) times and labels (second half: none).
EOF
    blank_body guided_eps "$r" "$c" ;;
reverse-sde)
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): one Euler-Maruyama step of the reverse VP-SDE, from u down to u - du,
    //     dX = beta(u) (1/2 X + grad log p_u(X)) du + sqrt(beta(u)) dW_bar,
    // for the n values of x, with the score written in terms of the denoiser's eps (derive it from
    // x_u = sqrt(alpha_bar(u)) x_0 + sqrt(1 - alpha_bar(u)) eps). Draw the noise first, with one
    // call rng_normal_fill(rng, z, n). See notes/exercises/@DIR@/README.md.
    (void)x, (void)eps, (void)beta, (void)one_minus_alpha_bar, (void)du, (void)n, (void)z, (void)rng;
EOF
    cat > "$c" <<'EOF'
// One Euler-Maruyama step of the reverse SDE (R) of Step 1, from u to u - du (exercise @N@):
// beta = beta(u), one_minus_alpha_bar = 1 - alpha_bar(u) (schedule_at); z (n) is scratch.
EOF
    blank_body sde_step "$r" "$c" ;;
cross-attention)
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): the cross-attention of the comment above, for B images: the GroupNorm of
    // a->in (into a->gn), q by a 1x1 convolution of it, k and v by linear maps of the token vectors
    // e, each position's scores q_i . k_j / sqrt(C) and their softmax over its prompt's len[b]
    // tokens (the padding slots j >= len[b] get p = 0), o, the projection, the residual. Layouts:
    // q, o, out (B,C,N); k, v (B,L,C); p (B,N,L), kept for the backward; scratch (N,L).
    // See notes/exercises/@DIR@/README.md.
    (void)p, (void)e, (void)len, (void)scratch, (void)G, (void)ws;
    memcpy(a->out, a->in, (size_t)B * a->C * a->N * sizeof(real));  // placeholder: the identity
EOF
    blank_body cross_attention_forward "$r"
    cat > "$r" <<'EOF'
    // TODO (exercise @N@): the forward read backwards, from d->out (dL/dout): add (+=) into d->in,
    // de (B,L,D) and the parameters' gradients g. d->gn.out, d->q, d->k, d->v and d->o are yours
    // (they start at 0); scratch holds 2 N L values.
    // See notes/exercises/@DIR@/README.md.
    (void)p, (void)g, (void)a, (void)d, (void)e, (void)de, (void)len, (void)scratch, (void)G;
    (void)ws, (void)B;
EOF
    blank_body cross_attention_backward "$r" ;;
*) usage ;;
esac

# --solution: the stub with the bodies of the TODO regions taken from SOURCE.c (for attention-heads:
# from attention-heads/solution/, with two heads): what a student who solved it hands in.
if [ $solution = 1 ]; then
    for f in $(exercise_regions "$name"); do
        if [ -f "$dir/solution/$f.body" ]; then cp "$dir/solution/$f.body" "$r"
        else
            awk -v name="$f" '
                !sig && !body && $0 ~ ("^static [^=;(]*[ *]" name "\\(") { sig = 1 }
                sig { if ($0 ~ /;[ \t]*(\/\/.*)?$/) { sig = 0; next } if ($0 ~ /\{[ \t]*(\/\/.*)?$/) { sig = 0; body = 1 }; next }
                body && /^}/ { exit }
                body { print }' "$src" > "$r"
        fi
        if [ "$name" = attention-heads ] && [ "$f" = acts_layout ]; then
            sed -i 's|^    at->p = take_act(L, B \* N4 \* N4);$|    at->p = take_act(L, B * ATTN_HEADS * N4 * N4);  // one N x N map per head|' "$r"
            grep -q ATTN_HEADS "$r" || { echo "make_stub.sh: acts_layout's at->p line not found: update make_stub.sh" >&2; exit 1; }
        fi
        cut body "$f" "" "" "$r"
    done
    if [ "$name" = attention-heads ]; then
        echo 'enum { ATTN_HEADS = 2 };  // the number of attention heads (divides ch2)' > "$r"
        insert_before '^static void attention_forward\(' "$r"
    fi
fi

{
    echo "// STUDENT COPY for exercise $n ($(basename "$dir")), made by notes/exercises/make_stub.sh from diffusion.c."
    echo "// Look for \"TODO (exercise $n)\": write only there. Grade with: notes/exercises/grade.sh $n <this file>"
    sed -e "s/@N@/$n/g" -e "s|@DIR@|$(basename "$dir")|g" -e "s/@DDIM@/$(basename "$(exercise_dir ddim-steps)" | sed 's/^0*//; s/-.*//')/g" "$work/cur.c"
} > "$work/stub.c"

# The stub must compile as it is (the TODOs are placeholders, not syntax errors).
if ! cc -fsyntax-only -w -I"$(dirname "$src")" "$work/stub.c" 2> "$work/cc.txt"; then
    echo "make_stub.sh: the stub for exercise $n does not compile:" >&2
    head -20 "$work/cc.txt" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
cp "$work/stub.c" "$out"
if [ $solution = 1 ]; then echo "wrote $out: the solution of exercise $n ($(basename "$dir")): the stub with its TODO regions filled in"
else echo "wrote $out: exercise $n ($(basename "$dir")); the task is in $dir/README.md"; fi

# lib.sh: sourced by make_stub.sh, grade.sh and selftest.sh. The exercises are numbered in the order
# of the lectures (README.md); each is also known by its name, and by its name before the renumbering.

# exercise_dir ARG: the directory of exercise ARG, given as a number (1..13), a name (ddpm-step),
# or a directory name, old or new (03-ddpm-step, 09-ddpm-step). Prints nothing if there is none.
exercise_dir() {
    local arg=${1%/} here_=${EXERCISES_DIR:?} d
    arg=${arg##*/}
    if [[ $arg =~ ^[0-9]{1,2}$ ]]; then
        d=$(ls -d "$here_"/"$(printf '%02d' "$((10#$arg))")"-* 2> /dev/null | head -1)
    else
        d=$(ls -d "$here_"/[0-9][0-9]-"${arg#[0-9][0-9]-}" 2> /dev/null | head -1)
    fi
    [ -n "$d" ] && [ -d "$d" ] && echo "$d"
}
# exercise_number DIR / exercise_name DIR
exercise_number() { local b; b=$(basename "$1"); echo $((10#${b%%-*})); }
exercise_name() { local b; b=$(basename "$1"); echo "${b#*-}"; }
# The numbers before the renumbering (issue 30), for the messages: old number -> name.
OLD_EXERCISES="1:cosine-schedule 2:posterior-coefficients 3:ddpm-step 4:backward-silu-groupnorm
5:attention-heads 6:ddim-steps 7:im2col 8:forward-sde 9:training-batch-loss"
# exercise_regions NAME: the functions whose bodies the student writes (the TODO regions). grade.sh
# refuses a submission that differs from a fresh stub anywhere else; make_stub.sh --solution fills
# exactly these bodies in from diffusion.c.
exercise_regions() {
    case $1 in
    forward-sde) echo schedule_betas vp_beta_integral ;;
    cosine-schedule) echo schedule_betas ;;
    posterior-coefficients) echo posterior_coefficients ;;
    training-batch-loss) echo draw_training_batch mse_forward mse_backward ;;
    backward-silu-groupnorm) echo silu_backward groupnorm_group_backward ;;
    im2col) echo im2col_reference col2im ;;
    adamw-ema) echo adamw_step ;;
    attention-heads) echo acts_layout attention_forward attention_backward ;;
    ddpm-step) echo x0_hat_from_eps ddpm_step ;;
    ddim-steps) echo ddim_step ;;
    guidance) echo guided_eps ;;
    reverse-sde) echo sde_step ;;
    cross-attention) echo cross_attention_forward cross_attention_backward ;;
    esac
}

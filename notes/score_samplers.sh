#!/usr/bin/env bash
# notes/score_samplers.sh [CKPT] [N] [SAMPLERS...] — the sample-quality table of README.md: for a checkpoint, each
# sampler draws N images (one row per class) with the same seed, timed, and notes/score.py scores them against the
# Fashion-MNIST test images (notes/score.md says what each number means). Prints one markdown row per sampler.
#   notes/score_samplers.sh data/model.ckpt 1000                  every sampler of the README table (long: DDPM-1000)
#   notes/score_samplers.sh demo.ckpt 1000 "ddim --steps 50"      just one
# Needs ./diffusion (make fast) and Debian's python3-torch for /usr/bin/python3.
set -u
cd "$(dirname "$0")/.."
ckpt=${1:-data/model.ckpt}
n=${2:-1000}
shift 2 2>/dev/null || shift $#
if [ $# -eq 0 ]; then
    set -- "ddpm" "ddim --steps 50" "ddim --steps 50 --clip-x0" "ddim --steps 100" "ddim --steps 100 --clip-x0" \
           "sde" "ddim --steps 50 --guidance 1" "ddim --steps 50 --guidance 2" "ddim --steps 50 --guidance 3"
fi
[ -x ./diffusion ] || { echo "score_samplers.sh: build ./diffusion first (make fast)" >&2; exit 2; }
PY=/usr/bin/python3
$PY -c 'import torch' 2>/dev/null || { echo "score_samplers.sh: $PY cannot import torch (apt-get install python3-torch)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
field() { awk -v k="$1" '$1 == k { print $2; exit }' "$tmp/score"; }
echo "| sampler | seconds (N=$n) | FD | precision | recall | broken | entropy |"
echo "|---|---|---|---|---|---|---|"
for s in "$@"; do
    if ! ./diffusion sample --ckpt "$ckpt" --sampler $s --n "$n" --seed 1 --out "$tmp/grid.png" >"$tmp/log" 2>&1; then
        echo "| $s | failed: $(tail -1 "$tmp/log") |"; continue
    fi
    secs=$(awk '/^wrote/ { for (i = 1; i <= NF; i++) if ($i == "in") print $(i + 1) }' "$tmp/log")
    if ! $PY notes/score.py "$tmp/grid.png" >"$tmp/score" 2>&1; then
        echo "| $s | $secs | scoring failed: $(tail -1 "$tmp/score") |"; continue
    fi
    echo "| $s | $secs | $(field FD) | $(field precision) | $(field recall) | $(field broken) | $(field entropy) |"
done

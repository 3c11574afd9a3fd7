#!/usr/bin/env bash
# notes/composition.sh [STEPS] — issue 26's composition test, the reason for words: a text model trained
# STEPS (default 3000) at batch 32 on 7 of the 9 colour x shape pairs (notes/composition.c make-data), then asked for every
# pair, the two it never saw included; notes/composition measure counts the samples that show both words.
# Writes into $WORK (default /tmp/composition): the data, text.ckpt, one grid per prompt, results.txt.
set -eu
cd "$(dirname "$0")/.."
steps=${1:-3000} work=${WORK:-/tmp/composition}
mkdir -p "$work"
make -s fast
cc -O3 -Wall $(echo 'int main(void){return 0;}' | cc -march=native -fopenmp -x c - -o /dev/null 2>/dev/null \
    && echo -march=native -fopenmp) notes/composition.c -lm -o "$work/composition"
[ -d "$work/shapes" ] || "$work/composition" make-data "$work/shapes"
[ -f "$work/text.ckpt" ] || ./diffusion train --text --data "$work/shapes" --steps "$steps" --batch 32 \
    --lr 1e-3 --ckpt "$work/text.ckpt" --log "$work/text.csv"
: >"$work/results.txt"
for pair in blue_triangle red_square red_disc red_triangle green_disc green_square green_triangle blue_disc blue_square; do
    ./diffusion sample --ckpt "$work/text.ckpt" --prompt "${pair/_/ }" --sampler ddim --steps 100 --eta 1 --guidance 2 \
        --n 49 --seed 1 --out "$work/$pair.png" >/dev/null
    "$work/composition" measure "$work/$pair.png" --label "$pair" | tail -1 | tee -a "$work/results.txt"
done

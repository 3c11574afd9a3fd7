#!/usr/bin/env bash
# notes/bench.sh [BINARY] — `make bench`: notes/bench.c (diffusion.c timed) and its PyTorch mirror (notes/pytorch_mirror.py bench), the same
# network at batch 64, one after the other in this one invocation, at 1 thread and at all cores; then a table of
# images/s with the ratios C / PyTorch. Without python3-torch, the C numbers alone.
set -u
cd "$(dirname "$0")/.."
BIN=${1:-notes/bench}
ALL=$(nproc)
have_torch=0 PY=python3
for p in python3 /usr/bin/python3; do "$p" -c 'import torch' 2>/dev/null && { have_torch=1; PY=$p; break; }; done
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ALL vCPUs"
declare -A C_TRAIN C_FWD P_TRAIN P_FWD
for th in 1 "$ALL"; do
    out=$("$BIN" bench --threads "$th"); echo "$out"
    line=$(grep '^c threads=' <<<"$out")
    C_TRAIN[$th]=$(sed 's/.*train_img_s=\([0-9.]*\).*/\1/' <<<"$line")
    C_FWD[$th]=$(sed 's/.*fwd_img_s=\([0-9.]*\).*/\1/' <<<"$line")
    if [ $have_torch = 1 ]; then
        out=$("$PY" notes/pytorch_mirror.py bench --threads "$th"); echo "$out"
        line=$(grep '^pytorch threads=' <<<"$out")
        P_TRAIN[$th]=$(sed 's/.*train_img_s=\([0-9.]*\).*/\1/' <<<"$line")
        P_FWD[$th]=$(sed 's/.*fwd_img_s=\([0-9.]*\).*/\1/' <<<"$line")
    fi
done
echo
echo "| threads | C train img/s | PyTorch train img/s | ratio | C forward img/s | PyTorch forward img/s | ratio |"
echo "|---|---|---|---|---|---|---|"
for th in 1 "$ALL"; do
    if [ $have_torch = 1 ]; then
        awk -v t="$th" -v ct="${C_TRAIN[$th]}" -v pt="${P_TRAIN[$th]}" -v cf="${C_FWD[$th]}" -v pf="${P_FWD[$th]}" \
            'BEGIN { printf "| %s | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f |\n", t, ct, pt, ct / pt, cf, pf, cf / pf }'
    else
        echo "| $th | ${C_TRAIN[$th]} | - | - | ${C_FWD[$th]} | - | - |"
    fi
done

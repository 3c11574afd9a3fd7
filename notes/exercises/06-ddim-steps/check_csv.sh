#!/usr/bin/env bash
# check_csv.sh ddim_steps.csv PNGDIFF: checks the measurement of exercise 6, part 2 (called by grade.sh 6).
#   - the header starts with steps,seconds,rms_vs_ref (more columns may follow)
#   - at least 5 rows; steps are integers >= 1, strictly increasing; seconds and rms_vs_ref are numbers >= 0
#   - the last row is the reference: its rms_vs_ref is 0
#   - for every row the grid ddim_<steps>.png lies beside the CSV, and PNGDIFF of it against the last row's grid
#     gives the rms_vs_ref of that row (to 1e-4 + 1e-3 relative: the CSV may round to 4 or more digits)
set -u
csv=$1 pngdiff=$2
dir=$(dirname "$csv")
bad=0
err() { echo "$(basename "$csv"): $*"; bad=1; }
header=$(head -1 "$csv" | tr -d '\r')
[[ $header == steps,seconds,rms_vs_ref* ]] || err "header is '$header', it must start with steps,seconds,rms_vs_ref"
rows=$(tail -n +2 "$csv" | tr -d '\r' | grep -c .)
[ "$rows" -ge 5 ] || err "$rows rows; measure at least 5 step counts"
num='^[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$'
prev=0 last=
while IFS=, read -r steps secs rms rest; do
    [ -n "$steps" ] || continue
    [[ $steps =~ ^[0-9]+$ ]] && [ "$steps" -ge 1 ] || { err "steps '$steps' is not an integer >= 1"; continue; }
    [ "$steps" -gt "$prev" ] || err "steps $steps after $prev: step counts must increase strictly"
    [[ $secs =~ $num ]] || err "seconds '$secs' (steps $steps) is not a number >= 0"
    [[ $rms =~ $num ]] || err "rms_vs_ref '$rms' (steps $steps) is not a number >= 0"
    prev=$steps last=$steps
done < <(tail -n +2 "$csv" | tr -d '\r')
[ -n "$last" ] || { err "no data rows"; exit 1; }
ref=$dir/ddim_$last.png
[ -f "$ref" ] || err "the reference grid $ref (the last row, $last steps) is missing"
if [ -f "$ref" ]; then
    while IFS=, read -r steps secs rms rest; do
        [[ $steps =~ ^[0-9]+$ ]] || continue
        png=$dir/ddim_$steps.png
        [ -f "$png" ] || { err "grid $png of the row steps=$steps is missing"; continue; }
        got=$("$pngdiff" "$png" "$ref" | cut -d' ' -f1) || { err "pngdiff $png failed"; continue; }
        awk -v a="$got" -v b="$rms" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 + 1e-3 * a) }' ||
            err "steps=$steps: rms_vs_ref is $rms in the CSV, pngdiff of ddim_$steps.png vs ddim_$last.png says $got"
    done < <(tail -n +2 "$csv" | tr -d '\r')
fi
[ $bad = 0 ] || exit 1
first=$(sed -n 2p "$csv" | cut -d, -f1,3)
echo "$rows rows, steps ${first%%,*}..$last, rms_vs_ref ${first#*,} at ${first%%,*} steps, every grid present and consistent"

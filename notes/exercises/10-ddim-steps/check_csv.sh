#!/usr/bin/env bash
# check_csv.sh ddim_steps.csv PNGDIFF [T]: checks the measurement of exercise 6, part 2 (called by grade.sh 6).
#   - the header starts with steps,seconds,rms_vs_ref (more columns may follow)
#   - at least 5 rows; steps are integers >= 1, strictly increasing; seconds and rms_vs_ref are numbers >= 0
#   - the last row is the reference: its rms_vs_ref is 0, and (given T, the model's) its steps are T
#   - every other row's rms_vs_ref is > 0 (a grid equal to the reference's is not a measurement: DDIM with fewer
#     steps is a different discretization), and the first row's is larger than the second-to-last's
#   - for every row the grid ddim_<steps>.png lies beside the CSV, and PNGDIFF of it against the last row's grid
#     gives the rms_vs_ref of that row (to 1e-4 + 1e-3 relative: the CSV may round to 4 or more digits)
# grade.sh also makes the first row's grid again from the model: that the grids are what the README's command
# makes is checked there.
set -u
csv=$1 pngdiff=$2 T=${3:-}
dir=$(dirname "$csv")
bad=0
err() { echo "$(basename "$csv"): $*"; bad=1; }
header=$(head -1 "$csv" | tr -d '\r')
[[ $header == steps,seconds,rms_vs_ref* ]] || err "header is '$header', it must start with steps,seconds,rms_vs_ref"
rows=$(tail -n +2 "$csv" | tr -d '\r' | grep -c .)
[ "$rows" -ge 5 ] || err "$rows rows; measure at least 5 step counts"
num='^[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$'
prev=0 last= last_rms= rms_list=()
while IFS=, read -r steps secs rms rest; do
    [ -n "$steps" ] || continue
    [[ $steps =~ ^[0-9]+$ ]] && [ "$steps" -ge 1 ] || { err "steps '$steps' is not an integer >= 1"; continue; }
    [ "$steps" -gt "$prev" ] || err "steps $steps after $prev: step counts must increase strictly"
    [[ $secs =~ $num ]] || err "seconds '$secs' (steps $steps) is not a number >= 0"
    [[ $rms =~ $num ]] || { err "rms_vs_ref '$rms' (steps $steps) is not a number >= 0"; rms=0; }
    prev=$steps last=$steps last_rms=$rms
    rms_list+=("$steps:$rms")
done < <(tail -n +2 "$csv" | tr -d '\r')
[ -n "$last" ] || { err "no data rows"; exit 1; }
awk -v r="$last_rms" 'BEGIN { exit !(r == 0) }' || err "the last row (steps $last) is the reference: its rms_vs_ref must be 0, not $last_rms"
[ -z "$T" ] || [ "$last" = "$T" ] || err "the last row has steps $last; it must be S = T = $T of your model (the reference)"
nrows=${#rms_list[@]}
for ((i = 0; i + 1 < nrows; i++)); do
    s=${rms_list[i]%%:*} r=${rms_list[i]#*:}
    awk -v r="$r" 'BEGIN { exit !(r > 0) }' || err "steps=$s: rms_vs_ref $r: a grid equal to the reference is not a measurement (DDIM with $s steps and with $last steps are different discretizations)"
done
if [ "$nrows" -ge 3 ]; then
    awk -v a="${rms_list[0]#*:}" -v b="${rms_list[nrows - 2]#*:}" 'BEGIN { exit !(a > b) }' ||
        err "rms_vs_ref does not fall with the steps: ${rms_list[0]#*:} at ${rms_list[0]%%:*} steps, ${rms_list[nrows - 2]#*:} at ${rms_list[nrows - 2]%%:*}"
fi
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
echo "$(basename "$csv"): $rows rows, steps ${first%%,*}..$last${T:+ (= T)}, rms_vs_ref ${first#*,} at ${first%%,*} steps, falling, every grid present and consistent"

#!/usr/bin/env bash
# check_map.sh [MAP.md] [SOURCE.c...]   (default: diffusion.c and its companions notes/check.c, notes/bench.c)
#
# Keeps the map in notes/README.md honest: every `identifier` in a "function" column of its tables (a column whose
# header contains the word "function") must be defined in diffusion.c, as a function (`static ... name(` in
# column 0, or main), a type (typedef/struct name), an enum constant, or a `static const` variable. Prints the
# missing names with their line in the map and exits 1 if there are any (or if no names were found at all);
# otherwise prints how many names were checked. test.sh runs it, so renaming a function without updating the map
# fails the tests.
set -u
here=$(cd "$(dirname "$0")" && pwd)
map=${1:-$here/README.md}
shift $(($# > 0 ? 1 : 0))
srcs=("$@")
[ $# -gt 0 ] || srcs=("$here/../diffusion.c" "$here/check.c" "$here/bench.c")
src=${srcs[0]}
for f in "$map" "${srcs[@]}"; do [ -f "$f" ] || { echo "check_map.sh: $f: no such file" >&2; exit 2; }; done

# 1. The names in the map: "line<TAB>name" for every backticked token in a function column. A cell may hold a
#    `\|` (a literal bar inside an equation); it is not a column separator.
names=$(awk '
    function cells(line, out,    n) {
        gsub(/\\\|/, "\001", line)
        sub(/^[ \t]*\|/, "", line); sub(/\|[ \t]*$/, "", line)
        return split(line, out, "|")
    }
    /^[ \t]*\|/ {
        if (prev_is_row && $0 ~ /^[ \t]*\|[ \t:|-]+$/) {   # delimiter row: prev was the header
            ncol = 0; delete fcol
            nh = cells(prev, h)
            for (i = 1; i <= nh; i++) if (tolower(h[i]) ~ /function/) fcol[i] = 1
            in_table = 1; prev_is_row = 0; next
        }
        if (in_table) {
            nc = cells($0, c)
            for (i in fcol) {
                cell = c[i]
                while (match(cell, /`[^`]+`/)) {
                    print NR "\t" substr(cell, RSTART + 1, RLENGTH - 2)
                    cell = substr(cell, RSTART + RLENGTH)
                }
            }
        }
        prev = $0; prev_is_row = 1; next
    }
    { in_table = 0; prev_is_row = 0 }
' "$map")
if [ -z "$names" ]; then
    echo "check_map.sh: no \`names\` found in a \"function\" column of $map" >&2
    exit 1
fi

# 2. The names diffusion.c defines, one per line.
defined=$(awk '
    /^static [^=;(]*[ *][A-Za-z_][A-Za-z0-9_]*\(/ || /^int main\(/ {
        s = $0; sub(/\(.*/, "", s); n = split(s, w, /[ *]+/); print w[n]
    }
    /^} *[A-Za-z_][A-Za-z0-9_]*;/ { s = $0; gsub(/[};]/, "", s); gsub(/ /, "", s); print s }
    /^typedef / && /;[ \t]*(\/\/.*)?$/ && !/\{/ { s = $0; sub(/;.*/, "", s); sub(/ *__attribute__.*/, "", s); n = split(s, w, /[ *]+/); print w[n] }
    /^typedef [^{]*\{.*\}[ \t]*[A-Za-z_][A-Za-z0-9_]*;/ { s = $0; sub(/;[ \t]*(\/\/.*)?$/, "", s); sub(/.*\}/, "", s); gsub(/ /, "", s); print s }
    /^(typedef )?(struct|enum) [A-Za-z_][A-Za-z0-9_]* *\{/ { split($0, w, /[ {]+/); print (w[1] == "typedef" ? w[3] : w[2]) }
    /(^|[^A-Za-z_])enum[ \t]*\{/ { in_enum = 1; body = "" }
    in_enum { body = body " " $0; if ($0 ~ /\}/) {
        in_enum = 0; sub(/^[^{]*\{/, "", body); sub(/\}.*/, "", body); gsub(/\/\/[^\n]*/, "", body)
        n = split(body, parts, ",")
        for (i = 1; i <= n; i++) { p = parts[i]; sub(/=.*/, "", p); gsub(/[ \t]/, "", p); if (p ~ /^[A-Za-z_][A-Za-z0-9_]*$/) print p }
    } }
    /^static const / {
        s = $0; sub(/\/\/.*/, "", s); n = split(s, parts, ",")
        for (i = 1; i <= n; i++) { p = parts[i]; if (p !~ /=/) continue; sub(/[ \t]*(\[[^]]*\])?[ \t]*=.*/, "", p); m = split(p, w, /[ *]+/); print w[m] }
    }
' "${srcs[@]}" | sort -u)

# 3. Compare.
checked=0 missing=0
while IFS=$'\t' read -r line name; do
    checked=$((checked + 1))
    bare=${name%()}
    if ! [[ $bare =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        echo "check_map.sh: $(basename "$map") line $line: \`$name\` in a function column is not a C identifier"
        missing=$((missing + 1))
    elif ! grep -qx -- "$bare" <<< "$defined"; then
        echo "check_map.sh: $(basename "$map") line $line: \`$bare\` is not defined in ${srcs[*]##*/}"
        missing=$((missing + 1))
    fi
done <<< "$names"
unique=$(cut -f2 <<< "$names" | sort -u | wc -l)
if [ $missing -gt 0 ]; then
    echo "check_map.sh: $missing of $checked names in the map are missing from ${srcs[*]##*/}: FAIL"
    exit 1
fi
echo "check_map.sh: $checked references ($unique distinct names) in the map of $(basename "$map"), all defined in ${srcs[*]##*/}: PASS"

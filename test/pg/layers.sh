#!/bin/sh
# The layering of the PostgreSQL glue (src/pg/), checked on the object
# files: every call or variable reference from one file of src/pg to
# another goes to a lower layer of the table at the top of
# src/pg/finbert_pg.h, so there is no call cycle; every .c file is in the
# table; the glue includes no engine header but finbert.h.
#
# usage: layers.sh SRC_PG_DIR      (after the objects are built)
set -eu

dir=${1:-src/pg}
table=$(mktemp)
edges=$(mktemp)
trap 'rm -f "$table" "$edges"' EXIT
fail=0

# "file layer" for every file named on an " *   L<n>  ..." line
sed -n 's/^ \*   L\([0-9]\)  \(.*\)$/\1 \2/p' "$dir/finbert_pg.h" |
	while read -r layer rest; do
		for w in $rest; do
			case $w in *.c) echo "$w $layer" ;; esac
		done
	done >"$table"
[ -s "$table" ] || { echo "layers.sh: no layer table in $dir/finbert_pg.h"; exit 1; }

layer_of() { awk -v f="$1" '$1 == f { print $2 }' "$table"; }

for c in "$dir"/*.c; do
	f=$(basename "$c")
	if [ -z "$(layer_of "$f")" ]; then
		echo "layers.sh: $f is not in the layer table of finbert_pg.h"
		fail=1
	fi
	[ -f "${c%.c}.o" ] || { echo "layers.sh: ${c%.c}.o is not built"; exit 1; }
done

# caller -> callee for every symbol one object uses and another defines
for o in "$dir"/*.o; do
	f=$(basename "${o%.o}").c
	nm -u "$o" | awk '{ print $NF }' | while read -r sym; do
		for d in "$dir"/*.o; do
			[ "$d" = "$o" ] && continue
			if nm -g --defined-only "$d" | awk '{ print $NF }' | grep -qx "$sym"; then
				echo "$f $(basename "${d%.o}").c $sym"
			fi
		done
	done
done >"$edges"

while read -r from to sym; do
	lf=$(layer_of "$from")
	lt=$(layer_of "$to")
	if [ -n "$lf" ] && [ -n "$lt" ] && [ "$lt" -ge "$lf" ]; then
		echo "layers.sh: $from (L$lf) uses $sym of $to (L$lt): not a lower layer"
		fail=1
	fi
done <"$edges"

# independent of the table: the file graph has no cycle
if ! awk '{ print $1, $2 }' "$edges" | sort -u | tsort >/dev/null 2>&1; then
	echo "layers.sh: the calls between files of $dir form a cycle:"
	awk '{ print $1, $2 }' "$edges" | sort -u | tsort 2>&1 >/dev/null | sed 's/^/  /'
	fail=1
fi

# the glue sees the engine through finbert.h only
if grep -n '#include "\(fb_\|cpu/\|text/\|formats/\)' "$dir"/*.c "$dir"/*.h; then
	echo "layers.sh: src/pg includes engine headers other than finbert.h"
	fail=1
fi

if [ "${LAYERS_VERBOSE:-0}" = 1 ]; then
	awk '{ print $1, $2 }' "$edges" | sort -u | while read -r from to; do
		echo "  $from (L$(layer_of "$from")) -> $to (L$(layer_of "$to"))"
	done
fi
[ "$fail" = 0 ] || exit 1
echo "layers: $(awk '{ print $1, $2 }' "$edges" | sort -u | wc -l) file-to-file arrows in $dir, all to lower layers, no cycle"

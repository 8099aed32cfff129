#!/bin/sh
# README as a test: every ```sql block of README.md runs, in document order,
# on a fresh cluster configured by the README's ```ini block, with the
# shipped starter models (models/) as finbert.model_dir; then
# scripts/demo.sql (make demo's script) in a database of its own.  A block
# fails the test when psql reports an error.
#
# An HTML comment on the line before a block's fence adjusts it:
#   <!-- readme-test: last -->            runs after every other block
#   <!-- readme-test: needs pgvector -->  skipped, loudly, when pgvector is
#                                         not installed in the test install
#   <!-- readme-test: expect "TEXT" -->   its output must contain TEXT
# (several, separated by ";").
#
# usage: run.sh REPO_DIR SCRATCH_DIR PG_BINDIR   (called by test/pg/check.sh)
set -eu

repo=$1
scratch=$2
pgbin=$3
dir=$scratch/readme
port=5432						# the socket lives in $dir: no clash with other clusters

if [ "$(id -u)" = 0 ]; then
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi

# SQL cannot read config.json, so the README's statement that lists every
# news type above the threshold carries the type model's threshold as a
# literal: it must be the shipped model's finbert_threshold (0.5 without one),
# or a retrained type model leaves the README quietly wrong.
check_type_threshold() {
	cfg=$repo/models/finbert-type/config.json
	[ -f "$cfg" ] || return 0
	want=$(sed -n 's/^[[:space:]]*"finbert_threshold":[[:space:]]*\([0-9.]*\).*/\1/p' "$cfg")
	[ -n "$want" ] || want=0.5
	got=$(grep -A1 "finbert_scores(body, 'finbert-type')" "$repo/README.md" |
		sed -n 's/.*value::float8 >= \([0-9.]*\).*/\1/p')
	if [ -z "$got" ]; then
		echo "readme: no statement reads the type scores at a threshold; nothing to compare"
		return 0
	fi
	for g in $got; do			# every such statement
		awk -v a="$g" -v b="$want" 'BEGIN { exit !(a + 0 == b + 0) }' || {
			echo "readme: FAILED: README.md reads the type scores at >= $g, models/finbert-type/config.json has finbert_threshold $want" >&2
			exit 1
		}
	done
	echo "readme: the type threshold in README.md ($(echo $got)) is models/finbert-type's finbert_threshold"
}
check_type_threshold

rm -rf "$dir"
mkdir -p "$dir/blocks" "$dir/models"
cp "$repo/scripts/demo.sql" "$dir/demo.sql"	# psql runs as postgres: read from here
for m in "$repo"/models/finbert-*; do
	[ -f "$m/config.json" ] && cp -R "$m" "$dir/models/"
done

# blocks/NNN.sql plus blocks/NNN.meta (line, flags) for each ```sql block;
# conf.ini for the ```ini blocks
awk -v out="$dir/blocks" -v conf="$dir/conf.ini" '
	BEGIN { n = 0; inblock = ""; flags = "" }
	inblock == "" && /^<!-- readme-test: .* -->$/ {
		flags = $0; sub(/^<!-- readme-test: /, "", flags); sub(/ -->$/, "", flags); next
	}
	inblock == "" && /^```sql[ \t]*$/ {
		n++; inblock = "sql"; file = sprintf("%s/%03d.sql", out, n)
		printf "line=%d\nflags=%s\n", NR, flags > sprintf("%s/%03d.meta", out, n)
		printf "" > file; flags = ""; next
	}
	inblock == "" && /^```ini[ \t]*$/ { inblock = "ini"; flags = ""; next }
	inblock != "" && /^```[ \t]*$/ { inblock = ""; next }
	inblock == "sql" { print >> file; next }
	inblock == "ini" { print >> conf; next }
	/^```/ { inblock = "other"; flags = ""; next }
	{ if ($0 != "") flags = "" }
' "$repo/README.md"
[ -f "$dir/conf.ini" ] || { echo "readme: README.md has no \`\`\`ini block (postgresql.conf)" >&2; exit 1; }

chown_pg() { [ "$(id -u)" = 0 ] && chown -R postgres "$dir" || true; }
chown_pg
as_pg "$pgbin/initdb" -D "$dir/data" -E UTF8 --no-locale -A trust -U postgres >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log"; exit 1; }
# the README's settings, its model directory replaced by the test's
sed "s#^\(finbert\.model_dir *= *\)'[^']*'#\1'$dir/models'#" "$dir/conf.ini" >>"$dir/data/postgresql.conf"
grep -q "^finbert.model_dir = '$dir/models'" "$dir/data/postgresql.conf" ||
	{ echo "readme: the README's ini block sets no finbert.model_dir" >&2; exit 1; }
cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
CONF
as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null ||
	{ cat "$dir/server.log"; exit 1; }
stop() { as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true; }
trap stop EXIT

psql_run() {					# psql_run DB FILE OUT
	as_pg "$pgbin/psql" -X -h "$dir" -p "$port" -U postgres -d "$1" \
		-v ON_ERROR_STOP=1 -f "$2" >"$3" 2>&1
}

have_vector=$(as_pg "$pgbin/psql" -X -At -h "$dir" -p "$port" -U postgres -d postgres \
	-c "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")

ran=0; skipped=0; statements=0; failed=0
run_block() {					# run_block N
	meta="$dir/blocks/$1.meta"
	line=$(sed -n 's/^line=//p' "$meta")
	flags=$(sed -n 's/^flags=//p' "$meta")
	case ";$flags;" in
	*"needs pgvector"*)
		if [ "$have_vector" = 0 ]; then
			echo "readme: block $1 (README.md line $line): SKIPPED: pgvector is not installed (no system copy, no source in ../shared/vendor)"
			skipped=$((skipped + 1))
			return 0
		fi ;;
	esac
	out="$dir/blocks/$1.out"
	n=$(grep -c ';[[:space:]]*\(--.*\)\{0,1\}$' "$dir/blocks/$1.sql" || true)
	if ! psql_run postgres "$dir/blocks/$1.sql" "$out"; then
		echo "readme: block $1 (README.md line $line) FAILED:"
		sed 's/^/    | /' "$dir/blocks/$1.sql"
		sed 's/^/    > /' "$out" | tail -n 20
		failed=$((failed + 1))
		return 0
	fi
	# expect "TEXT" items
	rest=$flags
	while :; do
		case $rest in
		*'expect "'*)
			rest=${rest#*expect \"}
			want=${rest%%\"*}
			rest=${rest#*\"}
			if ! grep -qF -- "$want" "$out"; then
				echo "readme: block $1 (README.md line $line) FAILED: output lacks \"$want\":"
				sed 's/^/    > /' "$out" | tail -n 20
				failed=$((failed + 1))
				return 0
			fi ;;
		*) break ;;
		esac
	done
	echo "readme: block $1 (README.md line $line): ok, $n statements"
	ran=$((ran + 1))
	statements=$((statements + n))
}

total=0
for meta in "$dir"/blocks/*.meta; do
	b=$(basename "$meta" .meta)
	total=$((total + 1))
	grep -q '^flags=.*last' "$meta" || run_block "$b"
done
for meta in "$dir"/blocks/*.meta; do
	b=$(basename "$meta" .meta)
	grep -q '^flags=.*last' "$meta" && run_block "$b"
done

# make demo's script, in a database of its own (it creates the extension)
as_pg "$pgbin/createdb" -h "$dir" -p "$port" -U postgres demo
if psql_run demo "$dir/demo.sql" "$dir/demo.out"; then
	echo "readme: scripts/demo.sql: ok"
else
	echo "readme: scripts/demo.sql FAILED:"
	tail -n 20 "$dir/demo.out" | sed 's/^/    > /'
	failed=$((failed + 1))
fi

echo "readme: $total SQL blocks in README.md: $ran ran ($statements statements), $skipped skipped, $failed failed; demo.sql $( [ "$failed" = 0 ] && echo ok || echo checked)"
[ "$failed" -eq 0 ]

# bench/cluster.sh — the scratch cluster of bench/batching.sh, bench/host.sh
# and bench/worker.sh: sourced, not run.  A fresh initdb in WORK/data with
# finbert preloaded, the model copied to WORK/models/bench, listening only
# on a Unix socket in WORK, stopped when the script exits.
#
#   . "$here/cluster.sh"
#   bench_cluster_start "$work" "$port" "$model" "${bench_model_files[@]}" <<EOF
#   finbert.cache = off
#   EOF
#   bench_headlines "$data" "$work/news.txt" 1000
#   psql_ -c "SELECT 1"
#
#   bench_cluster_start [-n NICE] WORK PORT MODEL_DIR [FILE...]
#                    stops a cluster left in WORK/data, empties WORK, copies
#                    MODEL_DIR to WORK/models/bench (the FILEs of it that
#                    exist, or all of it), runs initdb, appends
#                    port, unix_socket_directories, listen_addresses = '',
#                    shared_preload_libraries = 'finbert', finbert.model_dir
#                    and the lines on stdin to postgresql.conf, starts the
#                    cluster (at niceness NICE) and stops it on EXIT
#   bench_cluster_stop WORK    pg_ctl stop -m fast; quiet, never fails
#   bench_copy_model SRC DEST [FILE...]   as above, into DEST
#   bench_model_files          (an array) the files of a model worth copying
#   bench_headlines DATA FILE [N]   the headlines of DATA (the CSV's second
#                    field; none contains a comma), the first N or all, one
#                    per line, into FILE (after bench_cluster_start, which
#                    empties WORK)
#   as_pg CMD...     CMD as the postgres user when root, else as is
#   psql_ ARGS...    psql -X -q -At on database postgres of the cluster that
#                    bench_cluster_start started
#
# The sourcing script sets bin, the PostgreSQL bindir, and set -eu.  As
# root, the cluster and its files belong to the postgres user.

# shellcheck shell=bash disable=SC2034,SC2154	# bench_model_files: used by the sourcing script; bin: set by it

bench_model_files=(config.json vocab.txt tokenizer_config.json tokenizer.json special_tokens_map.json model.safetensors)

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
psql_() { as_pg "$bin/psql" -X -q -At -h "$bench_work" -p "$bench_port" -d postgres "$@"; }

bench_cluster_stop() {
	as_pg "$bin/pg_ctl" -D "$1/data" stop -m fast >/dev/null 2>&1 || true
}

bench_copy_model() {
	local src=$1 dest=$2 f
	shift 2
	mkdir -p "$dest"
	if [ $# = 0 ]; then
		cp -R "$src"/. "$dest/"
		return
	fi
	for f in "$@"; do
		if [ -f "$src/$f" ]; then cp "$src/$f" "$dest/"; fi
	done
}

bench_headlines() {
	if [ -n "${3:-}" ]; then
		awk -F, 'NR > 1 && $2 != "" { print $2 }' "$1" | head -n "$3" >"$2"
	else
		awk -F, 'NR > 1 && $2 != "" { print $2 }' "$1" >"$2"
	fi
	if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$2"; fi
}

bench_cluster_start() {
	local nice='' pg=()
	if [ "${1:-}" = -n ]; then
		nice=$2
		shift 2
	fi
	bench_work=$1
	bench_port=$2
	local model=$3
	shift 3

	bench_cluster_stop "$bench_work"
	rm -rf "$bench_work"
	bench_copy_model "$model" "$bench_work/models/bench" "$@"
	if [ "$(id -u)" = 0 ]; then
		chown -R postgres:postgres "$bench_work"
		pg=(runuser -u postgres --)
	fi
	as_pg "$bin/initdb" -D "$bench_work/data" --encoding=UTF8 --locale=C -A trust >/dev/null
	{
		cat <<EOF
port = $bench_port
unix_socket_directories = '$bench_work'
listen_addresses = ''
shared_preload_libraries = 'finbert'
finbert.model_dir = '$bench_work/models'
EOF
		cat
	} >>"$bench_work/data/postgresql.conf"
	${nice:+nice -n "$nice"} "${pg[@]}" "$bin/pg_ctl" -D "$bench_work/data" -l "$bench_work/log" -w start >/dev/null
	trap 'bench_cluster_stop "$bench_work"' EXIT
}

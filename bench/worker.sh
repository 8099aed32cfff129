#!/bin/bash
# bench/worker.sh — inline execution vs the finbert background worker, and
# the embedding cache, with pgbench on real financial headlines.  A
# benchmark, not a test: it prints a table and writes nothing outside
# bench/work/.
#
#   bench/worker.sh [throughput|cache|memory|all]   (default all)
#
# Environment:
#   MODEL=DIR        model directory (default models/finbert-sentiment;
#                    bench/work/bert-base after python3 bench/make_models.py)
#   CLIENTS="1 2 4 8 16"  SECONDS_PER_RUN=10  PORT=54331
#   DATA=../shared/data/choice-news-headlines/CH.csv   (20,582 headlines)
#   MEMORY_REQUESTS=100000
#   CONF="finbert.batch_wait_ms = 0"   extra postgresql.conf lines
#   NICE=-10         run the cluster at this niceness (root only), so other
#                    jobs on a shared machine take less of its CPU
#
# Needs finbert installed (make install) and pgbench.  As root, the scratch
# cluster runs as the postgres user.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
what=${1:-all}
model=${MODEL:-$root/models/finbert-sentiment}
model=$(cd "$model" && pwd)
clients=${CLIENTS:-1 2 4 8 16}
secs=${SECONDS_PER_RUN:-10}
port=${PORT:-54331}
data=${DATA:-$root/../shared/data/choice-news-headlines/CH.csv}
memreq=${MEMORY_REQUESTS:-100000}
work=$here/work/worker-bench
bin=$(pg_config --bindir)

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
psql_() { as_pg "$bin/psql" -X -q -At -h "$work" -p "$port" -d postgres "$@"; }

[ -f "$data" ] || { echo "bench/worker.sh: no data file $data" >&2; exit 1; }

# ---------------------------------------------------------------- cluster
as_pg "$bin/pg_ctl" -D "$work/data" stop -m fast >/dev/null 2>&1 || true
rm -rf "$work"
mkdir -p "$work/models/bench"
for f in config.json vocab.txt tokenizer_config.json tokenizer.json special_tokens_map.json model.safetensors; do
	[ -f "$model/$f" ] && cp "$model/$f" "$work/models/bench/"
done
# headlines, one per line (the CSV's second field; none contains a comma)
awk -F, 'NR > 1 && $2 != "" { print $2 }' "$data" >"$work/news.txt"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work"
as_pg "$bin/initdb" -D "$work/data" --encoding=UTF8 --locale=C -A trust >/dev/null
cat >>"$work/data/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$work'
listen_addresses = ''
shared_preload_libraries = 'finbert'
finbert.model_dir = '$work/models'
max_connections = 40
${CONF:-}
EOF
if [ -n "${NICE:-}" ]; then
	nice -n "$NICE" runuser -u postgres -- "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w start >/dev/null
else
	as_pg "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w start >/dev/null
fi
trap 'as_pg "$bin/pg_ctl" -D "$work/data" stop -m fast >/dev/null 2>&1 || true' EXIT

psql_ <<EOF
CREATE EXTENSION finbert;
SELECT finbert_load_model('bench', 'bench');
CREATE TABLE news (id serial PRIMARY KEY, body text NOT NULL);
\copy news (body) FROM '$work/news.txt'
EOF
n=$(psql_ -c "SELECT count(*) FROM news")
echo "model $model: $(psql_ -c "SELECT format('%s, %s layers, hidden %s', architecture, layers, hidden_size) FROM finbert_models")"
echo "$n headlines, mean $(psql_ -c "SELECT round(avg(length(body)), 1) FROM news") characters; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)${NICE:+; cluster at nice $NICE}"

cat >"$work/sentiment.sql" <<'EOF'
\set id random(1, :n)
SELECT finbert_sentiment(body, 'bench') FROM news WHERE id = :id;
EOF
cat >"$work/embed.sql" <<'EOF'
\set id random(1, :n)
SELECT finbert_embed(body, 'bench') FROM news WHERE id = :id;
EOF
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work"

# p50 and p99 of the per-transaction latencies pgbench logged (µs → ms)
percentiles() {
	cat "$work"/pgbench_log.* | awk '{ print $3 }' | sort -n |
		awk '{ v[NR] = $1 } END { if (NR == 0) { print "- -"; exit }
			p50 = v[int(NR * 0.50) > 0 ? int(NR * 0.50) : 1];
			p99 = v[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1];
			printf "%.2f %.2f\n", p50 / 1000, p99 / 1000 }'
}

# CPU time (clock ticks) used by the cluster: the postmaster, the children
# it has reaped (backends of finished pgbench runs) and the live children
# (the worker).  Other load on the machine does not count.
cluster_cpu() {
	local pm
	pm=$(head -n 1 "$work/data/postmaster.pid")
	local t
	t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
	for c in $(pgrep -P "$pm"); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# run SCRIPT MODE CLIENTS [extra pgbench args]: prints one table row
run() {
	local script=$1 mode=$2 c=$3
	shift 3
	rm -f "$work"/pgbench_log.*
	psql_ -c "SELECT finbert_stats_reset()" >/dev/null
	local cpu0
	cpu0=$(cluster_cpu)
	local out
	out=$(cd "$work" && as_pg env PGOPTIONS="-c finbert.execution=$mode -c finbert.cache=off" \
		"$bin/pgbench" -n -h "$work" -p "$port" -c "$c" -j "$c" -T "$secs" -D n="$n" \
		-f "$work/$script.sql" -l "$@" postgres 2>&1)
	sleep 0.5				# the backends exit and are reaped
	local cpu1
	cpu1=$(cluster_cpu)
	local tps
	tps=$(echo "$out" | awk '/^tps/ { print $3; exit }')
	local done_
	done_=$(echo "$out" | awk '/^number of transactions actually processed/ { split($NF, a, "/"); print a[1]; exit }')
	local eff
	eff=$(awk -v n="${done_:-0}" -v t=$((cpu1 - cpu0)) 'BEGIN { if (t > 0) printf "%.1f", n / (t / 100.0); else print "-" }')
	local pct
	pct=$(percentiles)
	local batch
	batch=$(psql_ -c "SELECT coalesce(round(worker_mean_batch_size::numeric, 2)::text, '-') FROM finbert_stats")
	printf "%-10s %-7s %3d %10.1f %9s %9s %8s %10s\n" "$script" "$mode" "$c" "${tps:-0}" $pct "$batch" "$eff"
	echo "$script $mode $c ${tps:-0} $pct $batch $eff" >>"$work/results.txt"
}

throughput() {
	echo
	echo "throughput (requests/s), latency p50/p99 (ms), worker mean batch size, requests per"
	echo "CPU-second of the cluster's processes (other load on the machine excluded); ${secs} s per run"
	printf "%-10s %-7s %3s %10s %9s %9s %8s %10s\n" task mode N "req/s" p50 p99 batch "req/CPU-s"
	: >"$work/results.txt"
	for script in sentiment embed; do
		# warm up: the worker and the backends open the model
		run "$script" worker 2 >/dev/null
		for c in $clients; do
			run "$script" inline "$c"
			run "$script" worker "$c"
		done
	done
	echo
	awk '$2 == "inline" { t[$1 " " $3] = $4; e[$1 " " $3] = $8 }
		$2 == "worker" && t[$1 " " $3] > 0 {
		printf "%s N=%s: worker/inline throughput %.2f, per CPU-second %.2f\n", $1, $3,
			$4 / t[$1 " " $3], (e[$1 " " $3] > 0 ? $8 / e[$1 " " $3] : 0) }' "$work/results.txt"
}

# cache: the same 128-character text, hit path vs compute path, one session
cache() {
	echo
	echo "embedding cache: one session, 2,000 calls on a 128-character text, inline"
	psql_ >"$work/cache.txt" <<'EOF'
SET finbert.execution = inline;
SELECT left(string_agg(body, '' ORDER BY id), 128) AS text FROM news WHERE id <= 40 \gset
SELECT finbert_cache_clear() >= 0;
SELECT finbert_embed(:'text', 'bench') IS NOT NULL;	-- model opened, row queued
SELECT pg_sleep(1);
CREATE TEMP TABLE t AS SELECT clock_timestamp() AS at;
SET finbert.cache = off;
SELECT count(finbert_embed(:'text', 'bench')) FROM generate_series(1, 2000);
INSERT INTO t SELECT clock_timestamp();
SET finbert.cache = on;
SELECT count(finbert_embed(:'text', 'bench')) FROM generate_series(1, 2000);
INSERT INTO t SELECT clock_timestamp();
SELECT string_agg(round((extract(epoch FROM d) * 1e6 / 2000)::numeric, 1)::text, ' ')
  FROM (SELECT at - lag(at) OVER (ORDER BY at) AS d FROM t) s WHERE d IS NOT NULL;
SELECT cache_hits FROM finbert_stats;
EOF
	local compute hit
	read -r compute hit <<<"$(sed -n '6p' "$work/cache.txt")"
	echo "  compute path: $compute µs per call; cache hit: $hit µs per call; ratio $(awk "BEGIN { printf \"%.1f\", $compute / $hit }")x ($(sed -n '7p' "$work/cache.txt") hits)"
}

# memory: resident memory of the worker and of 8 backends over many requests
rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
memory() {
	echo
	echo "memory: 8 clients, $memreq worker requests (sentiment and embed alternating)"
	cat >"$work/mixed.sql" <<'EOF'
\set id random(1, :n)
SELECT finbert_sentiment(body, 'bench'), finbert_embed(body, 'bench') FROM news WHERE id = :id;
EOF
	[ "$(id -u)" = 0 ] && chown postgres "$work/mixed.sql"
	local per=$((memreq / 8 / 2))
	local warm=$((per / 10))
	(cd "$work" && as_pg env PGOPTIONS="-c finbert.execution=worker -c finbert.cache=off" \
		"$bin/pgbench" -n -h "$work" -p "$port" -c 8 -j 8 -t "$warm" -D n="$n" -f "$work/mixed.sql" postgres >/dev/null 2>&1)
	local wpid
	wpid=$(psql_ -c "SELECT worker_pid FROM finbert_stats")
	local before
	before=$(rss "$wpid")
	local bfile="$work/backend_rss.txt"
	: >"$bfile"
	(cd "$work" && as_pg env PGOPTIONS="-c finbert.execution=worker -c finbert.cache=off" \
		"$bin/pgbench" -n -h "$work" -p "$port" -c 8 -j 8 -t "$per" -D n="$n" -f "$work/mixed.sql" postgres >/dev/null 2>&1) &
	local bench=$!
	sleep 2
	local b1
	b1=$(psql_ -c "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name = 'pgbench'")
	local first=""
	for p in $b1; do first="$first $(rss "$p")"; done
	local last="$first"
	while kill -0 "$bench" 2>/dev/null; do
		local now=""
		for p in $b1; do now="$now $(rss "$p" 2>/dev/null || true)"; done
		# keep the last sample taken while every backend was alive
		[ "$(echo $now | wc -w)" = "$(echo $b1 | wc -w)" ] && last="$now"
		sleep 1
	done
	wait "$bench" || true
	local after
	after=$(rss "$wpid")
	echo "  worker VmRSS: $before kB after warm-up, $after kB after $memreq more requests"
	echo "  backend VmRSS (kB) early:$first"
	echo "  backend VmRSS (kB) late: $last"
	psql_ -c "SELECT format('  worker: %s requests, %s batches, mean batch size %s', worker_requests, worker_batches, round(worker_mean_batch_size::numeric, 2)) FROM finbert_stats"
}

case $what in
	throughput) throughput ;;
	cache) cache ;;
	memory) memory ;;
	all) throughput; cache; memory ;;
	*) echo "usage: bench/worker.sh [throughput|cache|memory|all]" >&2; exit 2 ;;
esac

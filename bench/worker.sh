#!/bin/bash
# bench/worker.sh — inline execution vs the finbert background worker, the
# embedding cache, and the SQL path vs the bare engine, on real financial
# headlines.  A benchmark, not a test: it prints tables and writes nothing
# outside bench/work/.
#
#   bench/worker.sh [throughput|cache|memory|sql|all]   (default all)
#
#   throughput  pgbench, inline vs worker, CLIENTS sessions
#   cache       embedding cache hit vs compute, one session
#   memory      resident memory of the worker and backends over many requests
#   sql         SELECT count(finbert_sentiment(body)) FROM news10k (one call
#               per row: finbert.batching = off) and finbert_sentiment(text[]) over the same 10,000
#               headlines (the first 10,000 of the news file), inline, against
#               build/finbert-cli classify --batch 1 and --batch N on the
#               same lines (N = finbert.batch_size, same finbert.threads,
#               same max length, output to /dev/null); best of RUNS wall
#               times, the CLI's start-up and model load subtracted, SQL
#               after one warm-up run per session that opens the model.
#               Prints texts/s, tokens/s, SQL/engine ratios, the OpenBLAS
#               core and the load average.  Needs make (finbert-cli).
#
# Environment:
#   MODEL=DIR        model directory (default models/finbert-sentiment;
#                    bench/work/bert-base after python3 bench/make_models.py)
#   CLIENTS="1 2 4 8 16"  SECONDS_PER_RUN=10  PORT=54331
#   DATA=../shared/data/choice-news-headlines/CH.csv   (20,582 headlines)
#   MEMORY_REQUESTS=100000
#   SQL_TEXTS=10000  RUNS=3          sql: headlines, timed runs per path
#   CONF="finbert.batch_wait_ms = 0"   extra postgresql.conf lines
#   NICE=-10         run the cluster (and, in sql, finbert-cli) at this
#                    niceness (root only), so other jobs on a shared machine
#                    take less of its CPU
#
# Needs finbert installed (make install), and pgbench for throughput and
# memory.  As root, the scratch
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

# shellcheck source=SCRIPTDIR/cluster.sh
. "$here/cluster.sh"

[ -f "$data" ] || { echo "bench/worker.sh: no data file $data" >&2; exit 1; }

# ---------------------------------------------------------------- cluster
bench_cluster_start ${NICE:+-n "$NICE"} "$work" "$port" "$model" "${bench_model_files[@]}" <<EOF
max_connections = 40
${CONF:-}
EOF
bench_headlines "$data" "$work/news.txt"

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

# wall-clock seconds of a command, the best of $runs
best_of() {
	local best="" t0 t1
	for _ in $(seq "$runs"); do
		t0=$(date +%s.%N)
		"$@"
		t1=$(date +%s.%N)
		best=$(awk -v a="$t0" -v b="$t1" -v best="$best" \
			'BEGIN { d = b - a; if (best == "" || d < best) best = d; printf "%.3f", best }')
	done
	echo "$best"
}

# finbert-cli classify over LINES (a file) with BATCH lines per engine call,
# the cluster's thread count and max length; niced like the cluster
cli_classify() {
	${NICE:+nice -n "$NICE"} "$cli" classify "$work/models/bench" --threads "$threads" \
		--max-length "$maxlen" --batch "$2" <"$1" >/dev/null
}

# Times QUERY (a SELECT of one count) $runs times after one warm-up run, in
# a new inline session; prints "warm-up|count", "TAG|seconds" per run and
# "stats|texts|tokens" counted over all the runs
sql_timed() {
	local tag=$1 query=$2
	{
		echo "SET finbert.execution = inline;"
		echo "SET finbert.sentiment_model = bench;"
		# one call per row, as documented (bench/batching.sh measures batching)
		echo "SET finbert.batching = off;"
		echo "SELECT finbert_stats_reset() \\gset"
		echo "SELECT 'warm-up', ($query);"
		for _ in $(seq "$runs"); do
			echo "SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset"
			echo "SELECT ($query) AS n \\gset"
			echo "SELECT '$tag', extract(epoch FROM clock_timestamp()) - :t0;"
		done
		echo "SELECT 'stats', texts, tokens FROM finbert_stats;"
	} >"$work/sql_$tag.sql"
	[ "$(id -u)" = 0 ] && chown postgres "$work/sql_$tag.sql"
	psql_ -v ON_ERROR_STOP=1 -f "$work/sql_$tag.sql"
}

# sql: the SQL path vs the bare engine on the same headlines
sql_path() {
	local runs=${RUNS:-3}
	local sql_texts=${SQL_TEXTS:-10000}
	local cli=$root/build/finbert-cli
	[ -x "$cli" ] || { echo "bench/worker.sh: no $cli (run make)" >&2; exit 1; }
	[ "$n" -ge "$sql_texts" ] || { echo "bench/worker.sh: only $n headlines" >&2; exit 1; }
	local threads batch maxlen
	threads=$(psql_ -c "SHOW finbert.threads")
	batch=$(psql_ -c "SHOW finbert.batch_size")
	maxlen=$(psql_ -c "SELECT least(current_setting('finbert.max_length')::int, max_length) FROM finbert_models WHERE name = 'bench'")
	# ids follow the lines of news.txt (serial, one \copy)
	head -n "$sql_texts" "$work/news.txt" >"$work/news10k.txt"
	psql_ -c "CREATE TABLE news10k AS SELECT id, body FROM news WHERE id <= $sql_texts"
	local chars
	chars=$(psql_ -c "SELECT round(avg(length(body)), 1) FROM news10k")
	local core
	core=$(OPENBLAS_VERBOSE=2 "$cli" tokenize "$work/models/bench" </dev/null 2>&1 | awk '/Core:/ { print $2 }')
	echo
	echo "SQL path vs engine: $sql_texts headlines (first $sql_texts of the news file), inline, finbert.threads $threads, finbert.batch_size $batch, max length $maxlen, OpenBLAS core ${core:-?}, best of $runs; load average $(cut -d' ' -f1-3 /proc/loadavg)"

	local t_load t_b1 t_bn t_scalar t_array out_s out_a
	t_load=$(best_of cli_classify /dev/null 1)
	t_b1=$(best_of cli_classify "$work/news10k.txt" 1)
	out_s=$(sql_timed scalar "SELECT count(finbert_sentiment(body)) FROM news10k")
	out_a=$(sql_timed array "SELECT cardinality(finbert_sentiment(ARRAY(SELECT body FROM news10k ORDER BY id)))")
	t_bn=$(best_of cli_classify "$work/news10k.txt" "$batch")
	t_scalar=$(echo "$out_s" | awk -F'|' '$1 == "scalar" { if (b == "" || $2 < b) b = $2 } END { print b }')
	t_array=$(echo "$out_a" | awk -F'|' '$1 == "array" { if (b == "" || $2 < b) b = $2 } END { print b }')
	for c in "$(echo "$out_s" | awk -F'|' '$1 == "warm-up" { print $2 }')" \
		"$(echo "$out_a" | awk -F'|' '$1 == "warm-up" { print $2 }')"; do
		[ "$c" = "$sql_texts" ] || { echo "bench/worker.sh: SQL counted '$c' texts" >&2; exit 1; }
	done
	# tokens the engine sees per text ([CLS] and [SEP] included, clipped)
	local tokens
	tokens=$(echo "$out_s" | awk -F'|' -v n="$sql_texts" '$1 == "stats" { printf "%.0f", $3 / $2 * n }')
	echo "mean $chars characters, $(awk -v t="$tokens" -v n="$sql_texts" 'BEGIN { printf "%.1f", t / n }') tokens per headline ([CLS]/[SEP] included); finbert-cli start-up and model load $t_load s, subtracted from its times"
	printf "%-44s %9s %9s %10s %s\n" path seconds "texts/s" "tokens/s" "SQL/engine"
	awk -v n="$sql_texts" -v tok="$tokens" -v load="$t_load" -v b="$batch" \
		-v b1="$t_b1" -v bn="$t_bn" -v s="$t_scalar" -v a="$t_array" 'BEGIN {
		e1 = b1 - load; en = bn - load
		row("engine: finbert-cli classify --batch 1", e1, "")
		row("SQL: count(finbert_sentiment(body))", s, sprintf("%.3f", e1 / s))
		row("engine: finbert-cli classify --batch " b, en, "")
		row("SQL: finbert_sentiment(text[])", a, sprintf("%.3f", en / a))
		printf "SQL overhead: scalar %+.1f%%, array %+.1f%% of the engine time (acceptance: SQL throughput within 10%%: %s)\n",
			(s / e1 - 1) * 100, (a / en - 1) * 100,
			(e1 / s >= 0.9 && en / a >= 0.9) ? "yes" : "no"
	}
	function row(name, t, ratio) {
		printf "%-44s %9.3f %9.1f %10.0f %s\n", name, t, n / t, tok / t, ratio
	}'
	echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

case $what in
	throughput) throughput ;;
	cache) cache ;;
	memory) memory ;;
	sql) sql_path ;;
	all) throughput; cache; memory; sql_path ;;
	*) echo "usage: bench/worker.sh [throughput|cache|memory|sql|all]" >&2; exit 2 ;;
esac

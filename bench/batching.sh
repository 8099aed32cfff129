#!/bin/bash
# bench/batching.sh — per-row finbert calls batched by the Finbert Batch
# plan node (src/pg/batch.c) against the per-row plan and the array form,
# on the same real headlines.  A benchmark, not a test: it prints a table
# and writes nothing outside bench/work/.
#
#   bench/batching.sh
#
# For execution inline and worker, best of RUNS wall times of
#   plain     SELECT count(finbert_sentiment(body, 'bench')) FROM news
#             with finbert.batching = off (one request per row)
#   array     SELECT cardinality(finbert_sentiment(ARRAY(SELECT body ...), 'bench'))
#   batched   the plain query with finbert.batching = on (default)
#   parallel  the batched query with 1 and 2 parallel workers (inline)
# then texts/s, the ratio to the array form, the requests the worker
# received (finbert_stats.worker_requests) for the batched query, and the
# mean latency of SELECT finbert_sentiment(body, 'bench') FROM news LIMIT 1
# (planning included) with batching off and on.
#
# Environment:
#   MODEL=DIR        model directory (default models/finbert-sentiment;
#                    bench/work/bert-base after python3 bench/make_models.py)
#   DATA=../shared/data/choice-news-headlines/CH.csv  TEXTS=10000  RUNS=3
#   LIMIT_RUNS=200   PORT=54332   CONF="..." extra postgresql.conf lines
#   ONLY=limit       the LIMIT 1 latency only
#   PGBIN=DIR        PostgreSQL binaries (default: pg_config --bindir)
#
# Needs finbert installed (make install).  As root, the scratch cluster runs
# as the postgres user.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
model=${MODEL:-$root/models/finbert-sentiment}
model=$(cd "$model" && pwd)
data=${DATA:-$root/../shared/data/choice-news-headlines/CH.csv}
texts=${TEXTS:-10000}
runs=${RUNS:-3}
limit_runs=${LIMIT_RUNS:-200}
port=${PORT:-54332}
work=$here/work/batching-bench
bin=${PGBIN:-$(pg_config --bindir)}

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
psql_() { as_pg "$bin/psql" -X -q -At -h "$work" -p "$port" -d postgres "$@"; }

[ -f "$data" ] || { echo "bench/batching.sh: no data file $data" >&2; exit 1; }

as_pg "$bin/pg_ctl" -D "$work/data" stop -m fast >/dev/null 2>&1 || true
rm -rf "$work"
mkdir -p "$work/models/bench"
for f in config.json vocab.txt tokenizer_config.json tokenizer.json special_tokens_map.json model.safetensors; do
	[ -f "$model/$f" ] && cp "$model/$f" "$work/models/bench/"
done
# headlines, one per line (the CSV's second field; none contains a comma)
awk -F, 'NR > 1 && $2 != "" { print $2 }' "$data" | head -n "$texts" >"$work/news.txt"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work"
as_pg "$bin/initdb" -D "$work/data" --encoding=UTF8 --locale=C -A trust >/dev/null
cat >>"$work/data/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$work'
listen_addresses = ''
shared_preload_libraries = 'finbert'
finbert.model_dir = '$work/models'
finbert.cache = off
max_worker_processes = 16
${CONF:-}
EOF
as_pg "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w start >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$work/data" stop -m fast >/dev/null 2>&1 || true' EXIT

psql_ >/dev/null <<EOF
CREATE EXTENSION finbert;
SELECT finbert_load_model('bench', 'bench');
CREATE TABLE news (id serial PRIMARY KEY, body text NOT NULL);
\copy news (body) FROM '$work/news.txt'
ANALYZE news;
-- seconds per execution of q, best of n (planning included)
CREATE FUNCTION bench_best(q text, n int) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz; best float8 := 'Infinity'; r record;
BEGIN
	FOR i IN 1 .. n LOOP
		t0 := clock_timestamp();
		EXECUTE q INTO r;
		best := least(best, extract(epoch FROM clock_timestamp() - t0));
	END LOOP;
	RETURN best;
END \$\$;
-- mean seconds per execution of q over n
CREATE FUNCTION bench_mean(q text, n int) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp(); r record;
BEGIN
	FOR i IN 1 .. n LOOP
		EXECUTE q INTO r;
	END LOOP;
	RETURN extract(epoch FROM clock_timestamp() - t0) / n;
END \$\$;
EOF
n=$(psql_ -c "SELECT count(*) FROM news")
echo "model $model: $(psql_ -c "SELECT format('%s, %s layers, hidden %s', architecture, layers, hidden_size) FROM finbert_models")"
echo "$n headlines, mean $(psql_ -c "SELECT round(avg(length(body)), 1) FROM news") characters; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); best of $runs"

plain="SELECT count(finbert_sentiment(body, 'bench')) FROM news"
array="SELECT cardinality(finbert_sentiment(ARRAY(SELECT body FROM news ORDER BY id), 'bench'))"
par="SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;"

# best SETTINGS QUERY: seconds
best() {
	psql_ -c "SET finbert.execution = $1; $2" -c "SELECT bench_best(\$q\$$3\$q\$, $runs)" | tail -n 1
}

printf "%-8s %-22s %9s %10s %9s %10s\n" mode query seconds "texts/s" "/array" "worker req"
modes="inline worker"
[ "${ONLY:-}" = limit ] && modes=
for mode in $modes; do
	# warm up: the backend or the worker opens the model
	psql_ -c "SET finbert.execution = $mode" -c "SELECT finbert_sentiment('warm up', 'bench')" >/dev/null
	t_array=$(best "$mode" "" "$array")
	t_plain=$(best "$mode" "SET finbert.batching = off;" "$plain")
	psql_ -c "SELECT finbert_stats_reset()" >/dev/null
	t_batch=$(best "$mode" "SET max_parallel_workers_per_gather = 0;" "$plain")
	wreq=$(psql_ -c "SELECT worker_requests FROM finbert_stats")
	line() { awk -v m="$1" -v q="$2" -v t="$3" -v a="$t_array" -v n="$n" -v w="$4" \
		'BEGIN { printf "%-8s %-22s %9.3f %10.0f %9.2f %10s\n", m, q, t, n / t, a / t, w }'; }
	line "$mode" "array form" "$t_array" -
	line "$mode" "plain, per row" "$t_plain" -
	if [ "$mode" = worker ]; then
		line "$mode" "plain, batched" "$t_batch" "$((wreq / runs))"
	else
		line "$mode" "plain, batched" "$t_batch" -
	fi
	for w in 1 2; do
		t_par=$(best "$mode" "$par SET max_parallel_workers_per_gather = $w;" "$plain")
		line "$mode" "batched, $w par. workers" "$t_par" -
	done
done

echo
echo "LIMIT 1 latency (ms per statement, inline, planning included): mean of $limit_runs"
echo "statements, off and on alternating 5 times, the lowest mean of each"
limit1="SELECT finbert_sentiment(body, 'bench') FROM news LIMIT 1"
psql_ -c "SELECT finbert_sentiment('warm up', 'bench')" >/dev/null
best_off=; best_on=
for _ in 1 2 3 4 5; do
	for b in off on; do
		ms=$(psql_ -c "SET finbert.batching = $b" -c "SELECT round((bench_mean(\$q\$$limit1\$q\$, $limit_runs) * 1000)::numeric, 3)" | tail -n 1)
		if [ $b = off ]; then
			best_off=$(awk -v a="${best_off:-1e9}" -v b="$ms" 'BEGIN { print (b < a) ? b : a }')
		else
			best_on=$(awk -v a="${best_on:-1e9}" -v b="$ms" 'BEGIN { print (b < a) ? b : a }')
		fi
	done
done
awk -v f="$best_off" -v n="$best_on" 'BEGIN { printf "batching off: %.3f ms, on: %.3f ms, on/off %.2f\n", f, n, n / f }'
echo
echo "EXPLAIN of the batched query:"
psql_ -c "EXPLAIN (COSTS OFF) $plain"

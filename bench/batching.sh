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
# (array and batched measured in alternation, run by run, so a change of
# the machine's load hits both alike), then texts/s, the ratio to the
# array form, the requests the worker
# received (finbert_stats.worker_requests) for the batched query, and the
# mean latency of SELECT finbert_sentiment(body, 'bench') FROM news LIMIT 1
# (planning included) with batching off and on.  Then, unless ENTITIES=0,
# REFRESH MATERIALIZED VIEW of the lateral entities view
#   SELECT n.id, e.* FROM bodies n, finbert_entities(n.body, 'ner') e
# against a materialized view of the array form, over BODIES news bodies
# (flash news items of ../shared/data/cls-flash-news-2026, read at run
# time), alternating, best of ENTITY_RUNS.
#
# Environment:
#   MODEL=DIR        model directory (default models/finbert-sentiment;
#                    bench/work/bert-base after python3 bench/make_models.py)
#   DATA=../shared/data/choice-news-headlines/CH.csv  TEXTS=10000  RUNS=3
#   LIMIT_RUNS=200   PORT=54332   CONF="..." extra postgresql.conf lines
#   ONLY=limit       the LIMIT 1 latency only
#   ENTITIES=0       no entities section; NER_MODEL=DIR (models/finbert-ner)
#   BODIES=10000  ENTITY_RUNS=2  FLASH=../shared/data/cls-flash-news-2026/cls.jsonl.gz
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

# shellcheck source=SCRIPTDIR/cluster.sh
. "$here/cluster.sh"

[ -f "$data" ] || { echo "bench/batching.sh: no data file $data" >&2; exit 1; }

bench_cluster_start "$work" "$port" "$model" "${bench_model_files[@]}" <<EOF
finbert.cache = off
max_worker_processes = 16
${CONF:-}
EOF
bench_headlines "$data" "$work/news.txt" "$texts"

psql_ >/dev/null <<EOF
CREATE EXTENSION finbert;
SELECT finbert_load_model('bench', 'bench');
CREATE TABLE news (id serial PRIMARY KEY, body text NOT NULL);
\copy news (body) FROM '$work/news.txt'
ANALYZE news;
-- seconds per execution of q, best of n (planning included)
-- (a query's rows are discarded, so q may be a command: REFRESH ...)
CREATE FUNCTION bench_best(q text, n int) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz; best float8 := 'Infinity';
BEGIN
	FOR i IN 1 .. n LOOP
		t0 := clock_timestamp();
		EXECUTE q;
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

# best SETTINGS QUERY [N]: seconds, best of N (default RUNS)
best() {
	psql_ -c "SET finbert.execution = $1; $2" -c "SELECT bench_best(\$q\$$3\$q\$, ${4:-$runs})" | tail -n 1
}
# min A B
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b < a) ? b : a }'; }

printf "%-8s %-22s %9s %10s %9s %10s\n" mode query seconds "texts/s" "/array" "worker req"
modes="inline worker"
[ "${ONLY:-}" = limit ] && modes=
for mode in $modes; do
	# warm up: the backend or the worker opens the model
	psql_ -c "SET finbert.execution = $mode" -c "SELECT finbert_sentiment('warm up', 'bench')" >/dev/null
	t_array=1e9
	t_batch=1e9
	for _ in $(seq "$runs"); do
		t_array=$(min "$t_array" "$(best "$mode" "" "$array" 1)")
		t_batch=$(min "$t_batch" "$(best "$mode" "SET max_parallel_workers_per_gather = 0;" "$plain" 1)")
	done
	t_plain=$(best "$mode" "SET finbert.batching = off;" "$plain")
	psql_ -c "SELECT finbert_stats_reset()" >/dev/null
	best "$mode" "SET max_parallel_workers_per_gather = 0;" "$plain" 1 >/dev/null
	wreq=$(psql_ -c "SELECT worker_requests FROM finbert_stats")
	line() { awk -v m="$1" -v q="$2" -v t="$3" -v a="$t_array" -v n="$n" -v w="$4" \
		'BEGIN { printf "%-8s %-22s %9.3f %10.0f %9.2f %10s\n", m, q, t, n / t, a / t, w }'; }
	line "$mode" "array form" "$t_array" -
	line "$mode" "plain, per row" "$t_plain" -
	if [ "$mode" = worker ]; then
		line "$mode" "plain, batched" "$t_batch" "$wreq"
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

[ "${ENTITIES:-1}" = 0 ] && exit 0
[ "${ONLY:-}" = limit ] && exit 0
flash=${FLASH:-$root/../shared/data/cls-flash-news-2026/cls.jsonl.gz}
if [ ! -f "$flash" ]; then
	echo "bench/batching.sh: SKIPPED the entities section: no $flash" >&2
	exit 0
fi
ner=$(cd "${NER_MODEL:-$root/models/finbert-ner}" && pwd)
bench_copy_model "$ner" "$work/models/ner" "${bench_model_files[@]}"
# news bodies: the content of the first BODIES flash items, one per line
# (white space collapsed, backslashes dropped for \copy)
python3 - "$flash" "${BODIES:-10000}" >"$work/bodies.txt" <<'PY'
import gzip, json, sys
n = int(sys.argv[2])
with gzip.open(sys.argv[1], "rt", encoding="utf-8") as f:
    for line in f:
        body = " ".join((json.loads(line).get("content") or "").replace("\\", " ").split())
        if body:
            print(body)
            n -= 1
            if n == 0:
                break
PY
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work"
psql_ >/dev/null <<EOF
SELECT finbert_load_model('ner', 'ner');
CREATE TABLE bodies (id serial PRIMARY KEY, body text NOT NULL);
\copy bodies (body) FROM '$work/bodies.txt'
ANALYZE bodies;
CREATE MATERIALIZED VIEW ents_batched AS
  SELECT n.id, e.* FROM bodies n, finbert_entities(n.body, 'ner') e WITH NO DATA;
CREATE MATERIALIZED VIEW ents_array AS
  SELECT e.* FROM finbert_entities(ARRAY(SELECT body FROM bodies ORDER BY id), 'ner') e WITH NO DATA;
EOF
nb=$(psql_ -c "SELECT count(*) FROM bodies")
echo
echo "entities: REFRESH MATERIALIZED VIEW over $nb bodies (mean $(psql_ -c "SELECT round(avg(length(body))) FROM bodies") characters), inline, alternating, best of ${ENTITY_RUNS:-2}"
t_ea=1e9
t_eb=1e9
for _ in $(seq "${ENTITY_RUNS:-2}"); do
	t_ea=$(min "$t_ea" "$(best inline "" "REFRESH MATERIALIZED VIEW ents_array" 1)")
	t_eb=$(min "$t_eb" "$(best inline "" "REFRESH MATERIALIZED VIEW ents_batched" 1)")
done
cols="entity, label, start_pos, end_pos"
same=$(psql_ -c "SELECT count(*) = 0 FROM ((SELECT $cols FROM ents_array EXCEPT ALL SELECT $cols FROM ents_batched)
	UNION ALL (SELECT $cols FROM ents_batched EXCEPT ALL SELECT $cols FROM ents_array)) d")
awk -v a="$t_ea" -v b="$t_eb" -v n="$nb" -v ra="$(psql_ -c "SELECT count(*) FROM ents_array")" \
	-v rb="$(psql_ -c "SELECT count(*) FROM ents_batched")" -v s="$same" 'BEGIN {
	printf "array form view:   %8.3f s %8.0f bodies/s %7d entities\n", a, n / a, ra
	printf "lateral, batched:  %8.3f s %8.0f bodies/s %7d entities, %.2f x the array form; same entities: %s\n", b, n / b, rb, a / b, s }'
echo "EXPLAIN of the lateral entities view's query:"
psql_ -c "EXPLAIN (COSTS OFF) SELECT n.id, e.* FROM bodies n, finbert_entities(n.body, 'ner') e"

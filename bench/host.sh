#!/bin/bash
# bench/host.sh — what the engine host process costs: the finbert worker
# running the CPU engine itself (finbert.engine_host = off) against the
# same engine in its engine host process (on), on N real financial
# headlines (default 1,000), one session, finbert.execution = worker.
# A benchmark, not a test: it prints a table and writes nothing outside
# bench/work/.
#
#   array   SELECT finbert_sentiment(ARRAY[N headlines]): one request, one
#           round trip to the host per engine call (finbert.batch_size texts)
#   rows    SELECT count(finbert_sentiment(body)) FROM news: N requests,
#           N round trips
# Best of RUNS wall times each, the two settings alternating, after a
# warm-up that opens the model (in the worker, and in the host).
#
# Environment: MODEL=DIR (default models/finbert-sentiment), N=1000, RUNS=3,
#   PORT=54332, BIN=PostgreSQL bindir holding finbert (default pg_config
#   --bindir; make install first), DATA=../shared/data/choice-news-headlines/CH.csv
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
model=$(cd "${MODEL:-$root/models/finbert-sentiment}" && pwd)
n=${N:-1000}
runs=${RUNS:-3}
port=${PORT:-54332}
bin=${BIN:-$(pg_config --bindir)}
data=${DATA:-$root/../shared/data/choice-news-headlines/CH.csv}
work=$here/work/host-bench

# shellcheck source=SCRIPTDIR/cluster.sh
. "$here/cluster.sh"

bench_cluster_start "$work" "$port" "$model" <<EOF
finbert.device = cpu
finbert.worker_threads = 1
finbert.batch_wait_ms = 0
EOF
bench_headlines "$data" "$work/news.txt" "$n"

psql_ <<EOF
CREATE EXTENSION finbert;
SELECT finbert_load_model('bench', 'bench');
CREATE TABLE news (id serial PRIMARY KEY, body text NOT NULL);
\copy news (body) FROM '$work/news.txt'
EOF
echo "$(psql_ -c "SELECT count(*) FROM news") headlines, model $model, one worker lane, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# wall time (ms) of one run of a statement with finbert.engine_host = $2
run_once() {
	psql_ -c "ALTER SYSTEM SET finbert.engine_host = $2" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
	# a host stopped by "off" starts again with "on": open the model first
	psql_ -c "SET finbert.execution = worker" -c "SELECT finbert_sentiment('warm-up', 'bench')" >/dev/null
	psql_ -c "SET finbert.execution = worker" -c '\timing on' -c "$1" |
		sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a < b) ? a : b }'; }

array="SELECT count(*) FROM unnest(finbert_sentiment(ARRAY(SELECT body FROM news ORDER BY id), 'bench'))"
rows="SELECT count(finbert_sentiment(body, 'bench')) FROM news"
printf '%-12s %14s %14s %10s\n' "mode" "worker (ms)" "host (ms)" "overhead"
for mode in array rows; do
	sql=${!mode}
	run_once "$sql" off >/dev/null	# warm-up: the model opens in the worker
	run_once "$sql" on >/dev/null	# and in the host
	off= on=
	# alternating, so that other load on the machine hits both alike
	for _ in $(seq "$runs"); do
		off=$(min "$(run_once "$sql" off)" "$off")
		on=$(min "$(run_once "$sql" on)" "$on")
	done
	printf '%-12s %14.1f %14.1f %9.1f%%\n' "$mode" "$off" "$on" \
		"$(awk -v a="$off" -v b="$on" 'BEGIN { print (b - a) * 100 / a }')"
done
echo "per call (rows): $(awk -v a="$off" -v b="$on" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1000 / n }') µs more through the host"
grep -c "finbert engine host started" "$work/log" | sed 's/^/engine hosts started: /'

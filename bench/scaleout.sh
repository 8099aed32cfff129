#!/bin/sh
# bench/scaleout.sh — sentiment of N headlines over 1 and 2 postgres_fdw
# shards (scripts/scaleout.sh layout), asynchronous append on and off,
# against the same query on one server.  A benchmark, not a test: it
# prints a table (and where the time goes) for bench/results/.
#
#   sh bench/scaleout.sh            (after make; as root the clusters run
#                                    as postgres)
#   env: FINBERT_BENCH_ROWS (10000), FINBERT_BENCH_ROUNDS (3),
#        FINBERT_BENCH_MODEL (finbert-sentiment, a directory of models/),
#        FINBERT_BENCH_DATA (the Choice headlines CSV of shared/data)
#
# Three clusters on Unix sockets in a scratch directory: a coordinator and
# shards S1, S2, each preloading finbert with the model registered.  The
# coordinator holds two layouts made by scripts/scaleout.sh: database one
# (news over S1 only) and database two (news over S1 and S2); rows are
# inserted through the coordinator.  Every server computes inline in its
# backend (finbert.threads = 1), so 2 shards use 2 cores.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
rows=${FINBERT_BENCH_ROWS:-10000}
rounds=${FINBERT_BENCH_ROUNDS:-3}
model=${FINBERT_BENCH_MODEL:-finbert-sentiment}
data=${FINBERT_BENCH_DATA:-$repo/../shared/data/choice-news-headlines/CH.csv}
pg_config=${PG_CONFIG:-pg_config}

if [ ! -f "$data" ]; then
	echo "bench/scaleout.sh: SKIPPED: the headlines $data are not here (shared/data/choice-news-headlines/CH.csv; set FINBERT_BENCH_DATA)" >&2
	exit 0
fi
[ -f "$repo/finbert.so" ] || { echo "bench/scaleout.sh: run make first" >&2; exit 1; }
[ -f "$repo/models/$model/config.json" ] || { echo "bench/scaleout.sh: no model models/$model" >&2; exit 1; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/finbert-scaleout.XXXXXX")
chmod 755 "$scratch"
if [ "$(id -u)" = 0 ]; then
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi
sh "$repo/test/pg/tempinstall.sh" "$scratch/install" "$repo" >/dev/null
bin=$scratch/install$("$pg_config" --bindir)
cp "$data" "$scratch/headlines.csv"
cp "$repo/scripts/scaleout.sh" "$scratch/"

nodes="coord s1 s2"
port() { case $1 in coord) echo 55431 ;; s1) echo 55432 ;; s2) echo 55433 ;; esac; }
for n in $nodes; do
	mkdir -p "$scratch/$n/models"
	cp -R "$repo/models/$model" "$scratch/$n/models/"
done
[ "$(id -u)" = 0 ] && chown -R postgres "$scratch"
for n in $nodes; do
	as_pg "$bin/initdb" -D "$scratch/$n/data" -E UTF8 --no-locale -A trust -U postgres >/dev/null
	cat >>"$scratch/$n/data/postgresql.conf" <<CONF
port = $(port $n)
listen_addresses = ''
unix_socket_directories = '$scratch'
shared_preload_libraries = 'finbert'
finbert.model_dir = '$scratch/$n/models'
finbert.execution = inline
finbert.threads = 1
max_worker_processes = 16
CONF
	as_pg "$bin/pg_ctl" -D "$scratch/$n/data" -l "$scratch/$n/log" -w start >/dev/null
done
stop() {
	for n in $nodes; do
		as_pg "$bin/pg_ctl" -D "$scratch/$n/data" -m fast -w stop >/dev/null 2>&1 || true
	done
	rm -rf "$scratch"
}
trap stop EXIT

conn() { echo "host=$scratch port=$(port $1) dbname=$2 user=postgres"; }
sql() { as_pg "$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$(conn "$1" "$2")" -c "$3"; }
# seconds NODE DB SQL: wall time of one statement (psql start included, ~10 ms)
seconds() {
	t0=$(date +%s.%N)
	sql "$1" "$2" "$3" >/dev/null
	t1=$(date +%s.%N)
	echo "$t0 $t1" | awk '{ printf "%.2f", $2 - $1 }'
}
# best of the rounds
best() {
	for r in $(seq "$rounds"); do
		seconds "$@"
		echo
	done | sort -n | head -n 1
}

for db in one two; do
	for n in $nodes; do sql $n postgres "CREATE DATABASE $db"; done
done
m="$model=$model:sentiment"
as_pg env PATH="$bin:$PATH" sh "$scratch/scaleout.sh" setup -t title -m "$m" \
	"$(conn coord one)" "$(conn s1 one)" >/dev/null
as_pg env PATH="$bin:$PATH" sh "$scratch/scaleout.sh" setup -t title -m "$m" \
	"$(conn coord two)" "$(conn s1 two)" "$(conn s2 two)" >/dev/null

load() {						# load DB: the headlines, through the coordinator
	sql coord "$1" "CREATE TABLE headlines (idx int, text text, close float8, ret float8, label int);
		COPY headlines FROM '$scratch/headlines.csv' WITH (FORMAT csv, HEADER true);
		DELETE FROM headlines WHERE idx > $rows"
	seconds coord "$1" "INSERT INTO news SELECT idx, text, text FROM headlines"
}
insert_one=$(load one)
insert_two=$(load two)
n1=$(sql s1 two "SELECT count(*) FROM news")
n2=$(sql s2 two "SELECT count(*) FROM news")
[ "$(sql coord two 'SELECT count(*) FROM news')" = "$rows" ] || { echo "bench: rows missing" >&2; exit 1; }

q_local="SELECT count(finbert_sentiment(text, '$model')) FROM headlines"
q_sharded="SELECT count(sentiment) FROM news_scored"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

t_local=$(best coord one "$q_local")
t_local2=$(best coord one "SET finbert.threads = 2; $q_local")
t_one=$(best coord one "$q_sharded")
t_two=$(best coord two "$q_sharded")
t_s1=$(best s1 two "$q_sharded")
t_s2=$(best s2 two "$q_sharded")
t_fetch=$(best coord two "SELECT count(title) FROM news")
plan_async=$(sql coord two "EXPLAIN (COSTS OFF) $q_sharded" | grep -c 'Async Foreign Scan' || true)
sql coord two "ALTER SERVER shard_0 OPTIONS (SET async_capable 'false');
	ALTER SERVER shard_1 OPTIONS (SET async_capable 'false')"
t_two_sync=$(best coord two "$q_sharded")
plan_sync=$(sql coord two "EXPLAIN (COSTS OFF) $q_sharded" | grep -c 'Async Foreign Scan' || true)
# same answers everywhere
same=$(sql coord two "SELECT (SELECT array_agg(sentiment ORDER BY id) FROM news_scored) =
	(SELECT array_agg(finbert_sentiment(text, '$model') ORDER BY idx) FROM headlines)")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

rate() { echo "$rows $1" | awk '{ printf "%.0f", $1 / $2 }'; }
ratio() { echo "$1 $2" | awk '{ printf "%.2f", $1 / $2 }'; }
cat <<REPORT
# bench/scaleout.sh — $(date -u '+%Y-%m-%d %H:%M UTC')
# $rows headlines (shared/data/choice-news-headlines), model $model ($(sed -n 's/.*"num_hidden_layers": *\([0-9]*\).*/\1/p' "$repo/models/$model/config.json") layers), best of $rounds
# machine: $(nproc) cores ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)); load average before $load_before, after $load_after
# rows per shard (2 shards): $n1 + $n2; every server inline, finbert.threads = 1 unless said
configuration                              seconds  headlines/s  speed-up vs 1 shard
one server, local table                    $t_local  $(rate "$t_local")
one server, local table, threads = 2       $t_local2  $(rate "$t_local2")
1 shard via postgres_fdw                   $t_one  $(rate "$t_one")  1.00
2 shards, async append on  ($plan_async async scans)   $t_two  $(rate "$t_two")  $(ratio "$t_one" "$t_two")
2 shards, async append off ($plan_sync async scans)   $t_two_sync  $(rate "$t_two_sync")  $(ratio "$t_one" "$t_two_sync")

where the time goes (2 shards):
shard S1 alone on its $n1 rows (its own news_scored)   $t_s1
shard S2 alone on its $n2 rows                        $t_s2
fetching the $rows titles without the model            $t_fetch
inserting $rows rows through the coordinator: 1 shard $insert_one s, 2 shards $insert_two s
sharded results = one-server results: $same
REPORT

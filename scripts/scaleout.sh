#!/bin/sh
# scaleout.sh — a news table sharded over several PostgreSQL servers with
# PostgreSQL's own machinery (hash partitioning, postgres_fdw foreign
# partitions, asynchronous append), each shard running finbert on its own
# rows.  README.md, section "Scale-out", explains the layout.
#
#   scaleout.sh setup [options] COORDINATOR SHARD...
#   scaleout.sh check [options] COORDINATOR SHARD...
#
# Nodes are libpq connection strings of key=value words without spaces in
# the values ("host=10.0.0.2 port=5432 dbname=news user=app"; a value may
# be in single quotes).  host,
# hostaddr, port, dbname and the other connection keys become options of
# the foreign server; user and password those of the user mapping (for the
# role running this script on the coordinator).
#
# Options:
#   -m NAME=PATH[:TASK]  a model to register on every node (repeatable),
#                        PATH relative to each node's finbert.model_dir;
#                        TASK sentiment, industry, type or ner gives the
#                        view news_scored a column (see below)
#   -t COLUMN            the text column the view classifies (default body)
#
# check: registers nothing; compares finbert_model_pin() of every model of
# the coordinator's finbert_models with each shard's and exits with 1 and
# one line per difference when they disagree.
#
# setup, on every node: CREATE EXTENSION finbert, the -m models registered,
# then the check above (a mismatch stops here: shards with other weights
# would give other answers).  On each shard: the table news (id bigint
# PRIMARY KEY, title text, body text) and the view news_scored: news plus
# one column per -m model with a task, computed by the pinned form with
# the coordinator's pin (sentiment, industry, type: text; ner: companies
# and persons, text[]).  On the coordinator: postgres_fdw, one foreign
# server per shard (extensions 'finbert', async_capable 'true'), a user
# mapping, and the partitioned tables news and news_scored (PARTITION BY
# HASH (id), one foreign partition per shard).  Rows inserted into news on
# the coordinator go to the shard of their hash; news_scored reads every
# shard at once, each shard classifying its own rows.
set -eu

usage() {
	sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

die() { echo "scaleout.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in setup|check) ;; *) usage ;; esac

models=""
text_column=body
while getopts "m:t:" opt; do
	case $opt in
	m) models="$models $OPTARG" ;;
	t) text_column=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || usage
coordinator=$1
shift
nshards=$#

PSQL=${PSQL:-psql}
# run CONNINFO SQL: one statement list, stop at the first error
run() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
# SQL literal of a shell string
lit() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }

case $text_column in
*[!a-z0-9_]*|'') die "-t: a lowercase column name, not \"$text_column\"" ;;
esac

# every node: the extension and the models
register() {
	run "$1" "CREATE EXTENSION IF NOT EXISTS finbert" >/dev/null
	for m in $models; do
		name=${m%%=*}
		rest=${m#*=}
		path=${rest%%:*}
		task=
		[ "$rest" != "$path" ] && task=${rest#*:}
		case $task in
		''|sentiment|industry|type|ner) ;;
		*) die "-m $m: task is sentiment, industry, type or ner" ;;
		esac
		t=NULL
		[ -n "$task" ] && t=$(lit "$task")
		run "$1" "SELECT finbert_load_model($(lit "$name"), $(lit "$path"), $t)" >/dev/null ||
			die "registering model $name on \"$1\" failed"
	done
}

# pins of the coordinator's models, compared with every shard's
check() {
	ref=$(run "$coordinator" "SELECT name || ' ' || finbert_model_pin(name) FROM finbert_models ORDER BY name")
	[ -n "$ref" ] || die "the coordinator has no registered models"
	bad=0
	for shard in "$@"; do
		have=$(run "$shard" "SELECT name || ' ' || finbert_model_pin(name) FROM finbert_models ORDER BY name") ||
			die "cannot read finbert_models on \"$shard\""
		echo "$ref" | while read -r name pin; do
			other=$(echo "$have" | awk -v n="$name" '$1 == n { print $2 }')
			if [ -z "$other" ]; then
				echo "scaleout.sh: MISMATCH: model $name is not registered on \"$shard\"" >&2
				echo x
			elif [ "$other" != "$pin" ]; then
				echo "scaleout.sh: MISMATCH: model $name on \"$shard\" has pin $other; the coordinator has $pin" >&2
				echo x
			fi
		done | grep -q x && bad=1
	done
	[ "$bad" = 0 ] || die "model checksums differ between nodes: register the same model files (and precision) everywhere"
	echo "scaleout.sh: $(echo "$ref" | wc -l | tr -d ' ') model(s), same pins on the coordinator and $# shard(s)"
}

if [ "$cmd" = check ]; then
	check "$@"
	exit 0
fi

for node in "$coordinator" "$@"; do
	register "$node"
done
check "$@"

# the view's columns: pinned calls with the coordinator's pins
cols=""
coldefs=""
for m in $models; do
	name=${m%%=*}
	rest=${m#*=}
	path=${rest%%:*}
	[ "$rest" = "$path" ] && continue
	task=${rest#*:}
	pin=$(run "$coordinator" "SELECT finbert_model_pin($(lit "$name"))")
	args="$text_column, $(lit "$name"), $(lit "$pin")"
	case $task in
	ner)
		cols="$cols, finbert_companies_pinned($args) AS companies, finbert_persons_pinned($args) AS persons"
		coldefs="$coldefs, companies text[], persons text[]" ;;
	*)
		cols="$cols, finbert_${task}_pinned($args) AS $task"
		coldefs="$coldefs, $task text" ;;
	esac
done

i=0
for shard in "$@"; do
	run "$shard" "CREATE TABLE news (id bigint PRIMARY KEY, title text, body text);
		CREATE VIEW news_scored AS SELECT id, title, body$cols FROM news" ||
		die "creating news and news_scored on \"$shard\" failed (do they exist already?)"
	i=$((i + 1))
done

run "$coordinator" "CREATE EXTENSION IF NOT EXISTS postgres_fdw;
	CREATE TABLE news (id bigint NOT NULL, title text, body text) PARTITION BY HASH (id);
	CREATE TABLE news_scored (id bigint NOT NULL, title text, body text$coldefs) PARTITION BY HASH (id)" ||
	die "creating news and news_scored on the coordinator failed (do they exist already?)"
i=0
for shard in "$@"; do
	server_opts=""
	mapping_opts=""
	for word in $shard; do
		key=${word%%=*}
		value=${word#*=}
		[ "$key" != "$word" ] || die "\"$shard\": key=value words only"
		case $value in \'*\') value=${value#\'}; value=${value%\'} ;; esac
		case $key in
		user|password) mapping_opts="$mapping_opts, $key $(lit "$value")" ;;
		*) server_opts="$server_opts, $key $(lit "$value")" ;;
		esac
	done
	mapping=""
	[ -n "$mapping_opts" ] && mapping="OPTIONS (${mapping_opts#, })"
	run "$coordinator" "CREATE SERVER shard_$i FOREIGN DATA WRAPPER postgres_fdw
			OPTIONS (${server_opts#, }, extensions 'finbert', async_capable 'true');
		CREATE USER MAPPING FOR CURRENT_USER SERVER shard_$i $mapping;
		CREATE FOREIGN TABLE news_$i PARTITION OF news
			FOR VALUES WITH (MODULUS $nshards, REMAINDER $i)
			SERVER shard_$i OPTIONS (table_name 'news');
		CREATE FOREIGN TABLE news_scored_$i PARTITION OF news_scored
			FOR VALUES WITH (MODULUS $nshards, REMAINDER $i)
			SERVER shard_$i OPTIONS (table_name 'news_scored')"
	i=$((i + 1))
done
echo "scaleout.sh: news and news_scored on the coordinator over $nshards shard(s)"

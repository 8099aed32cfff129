#!/bin/sh
# make demo: a throw-away PostgreSQL cluster under build-demo/ (own port and
# socket directory) that preloads finbert, registers the starter models
# (models/finbert-*; the random-weight test fixtures stand in for any that
# are missing), loads sample Chinese financial news and runs the headline
# queries.  The cluster keeps running for exploration; `make demo-stop`
# stops it.
#
# usage: demo.sh start|stop REPO_DIR DEMO_DIR PORT
set -eu

action=$1
repo=$2
dir=$3
port=$4
bindir=$(pg_config --bindir)

as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

stop() {
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
}

if [ "$action" = stop ]; then
	stop
	echo "finbert demo cluster stopped"
	exit 0
fi

stop
rm -rf "$dir"
mkdir -p "$dir/models"

# name:fixture — the fixture replaces a starter model that is not there
fixtures_used=""
for pair in finbert-sentiment:cls finbert-industry:cls_f16 finbert-type:multilabel \
			finbert-ner:ner finbert-base:encoder; do
	name=${pair%%:*}
	fixture=${pair#*:}
	if [ -f "$repo/models/$name/model.safetensors" ]; then
		cp -R "$repo/models/$name" "$dir/models/$name"
	elif [ "$name" = finbert-base ] && [ -f "$repo/models/finbert-sentiment/model.safetensors" ]; then
		# no separate encoder shipped: embed with the sentiment model's encoder
		cp -R "$repo/models/finbert-sentiment" "$dir/models/$name"
	else
		cp -R "$repo/test/fixtures/models/$fixture" "$dir/models/$name"
		fixtures_used="$fixtures_used $name"
	fi
done
if [ "$(id -u)" = 0 ]; then
	chown -R postgres:postgres "$dir"
fi

as_pg "$bindir/initdb" -D "$dir/data" -E UTF8 --no-locale -A trust -U postgres >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log"; exit 1; }
cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
shared_preload_libraries = 'finbert'
finbert.model_dir = '$dir/models'
CONF
as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null ||
	{ cat "$dir/server.log"; exit 1; }

if [ -n "$fixtures_used" ]; then
	cat <<NOTE

NOTE: starter models not found in models/ for:$fixtures_used
      The tiny random-weight test fixtures stand in for them, so the labels
      and entities below are arbitrary (the plumbing is real).

NOTE
fi

as_pg "$bindir/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres \
	-v ON_ERROR_STOP=1 -f "$repo/scripts/demo.sql"

cat <<DONE

The demo cluster is still running:
    psql -h $dir -p $port -U postgres postgres
Stop it with: make demo-stop
DONE

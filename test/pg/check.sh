#!/bin/sh
# The PostgreSQL side of `make test`, from any clone location and as root or
# any user that can run initdb:
#
#   1. a scratch directory every user can enter (mktemp under $TMPDIR or
#      /tmp), with a private PostgreSQL installation holding this build of
#      finbert (test/pg/tempinstall.sh);
#   2. copies there of what the server and psql must read: the pg_regress
#      inputs (sql/, expected/), fixture and starter models, TAP scripts;
#   3. the phases named on the command line, as the postgres user when run
#      as root (initdb refuses root):
#        regress   pg_regress suite, execution as configured (inline)
#        worker    the same suite with finbert.execution = worker
#        tap       TAP tests test/t/*.pl (PROVE_TESTS, PROVE_FLAGS)
#        readme    every SQL block of README.md and scripts/demo.sql
#                  (test/readme/run.sh)
#   4. the scratch directory is removed when every phase passed, kept (and
#      its path printed) when one failed.
#
# usage: check.sh REPO_DIR FINBERT_CLI PHASE...
#   env: PG_CONFIG, MAKE, REGRESS (test names), PROVE_TESTS, PROVE_FLAGS,
#        FINBERT_KEEP_SCRATCH=1 keeps the directory in any case,
#        FINBERT_VALGRIND=LOGDIR runs the server under valgrind
#        (test/pg/valgrind.sh)
set -eu

repo=$(cd "$1" && pwd)
cli=$2
shift 2
pg_config=${PG_CONFIG:-pg_config}
export PG_CONFIG="$pg_config"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/finbert-check.XXXXXX")
chmod 755 "$scratch"
ok=0
finish() {
	if [ "$ok" = 1 ] && [ "${FINBERT_KEEP_SCRATCH:-0}" != 1 ]; then
		rm -rf "$scratch"
	else
		echo "check.sh: scratch directory kept for inspection: $scratch"
	fi
}
trap finish EXIT

if [ "$(id -u)" = 0 ]; then
	as_pg() { runuser -u postgres -- "$@"; }
	owner=postgres
else
	as_pg() { "$@"; }
	owner=
fi

sh "$repo/test/pg/tempinstall.sh" "$scratch/install" "$repo" "$repo/build/pgvector"
pgbin=$scratch/install$("$pg_config" --bindir)
if [ -n "${FINBERT_VALGRIND:-}" ]; then
	# every server process under memcheck, logs in $FINBERT_VALGRIND
	# (make valgrind-check); starting takes longer than pg_regress's 60 s
	sh "$repo/test/pg/valgrind.sh" "$pgbin" "$FINBERT_VALGRIND"
	[ -n "$owner" ] && chown -R "$owner" "$FINBERT_VALGRIND"
	export PGCTLTIMEOUT=600
fi
pg_regress="$(dirname "$("$pg_config" --pgxs)")/../../src/test/regress/pg_regress"

# run_regress DIR CONF: the suite in DIR with --temp-config CONF
run_regress() {
	(cd "$1" && as_pg "$pg_regress" --inputdir="$scratch/input" --bindir="$pgbin" \
		--dbname=contrib_regression --temp-instance="$1/tmp_check" \
		--temp-config="$2" --outputdir="$1" --encoding=UTF8 --no-locale $REGRESS) ||
		{ head -n 200 "$1/regression.diffs" 2>/dev/null; return 1; }
}

mkdir -p "$scratch/input"
cp -R "$repo/sql" "$repo/expected" "$scratch/input/"
for phase in "$@"; do
	case $phase in
	regress)
		sh "$repo/test/regress/prepare.sh" "$scratch/regress" "$repo/test/fixtures/models" "$cli"
		[ -n "$owner" ] && chown -R "$owner" "$scratch"
		run_regress "$scratch/regress" "$scratch/regress/regress.conf"
		;;
	worker)
		echo "finbert: the same suite with finbert.execution = worker"
		sh "$repo/test/regress/prepare.sh" "$scratch/worker" "$repo/test/fixtures/models" "$cli"
		[ -n "$owner" ] && chown -R "$owner" "$scratch"
		run_regress "$scratch/worker" "$scratch/worker/regress-worker.conf"
		;;
	tap)
		mkdir -p "$scratch/tap"
		cp -R "$repo/test/t" "$scratch/t"
		cp "$repo/scripts/scaleout.sh" "$scratch/t/"	# 008_scaleout.pl runs it
		cp -R "$repo/test/fixtures/models" "$scratch/tap/fixtures"
		# the CUDA backend under the CPU execution harness (007_engine_host.pl)
		cp "$repo/build/finbert_cuda_harness.so" "$scratch/tap/" 2>/dev/null || true
		[ -n "$owner" ] && chown -R "$owner" "$scratch"
		tests=""
		for t in ${PROVE_TESTS:-$scratch/t/*.pl}; do
			tests="$tests $scratch/t/$(basename "$t")"
		done
		(cd "$scratch/tap" && as_pg env TESTDIR="$scratch/tap" PATH="$pgbin:$PATH" \
			PG_REGRESS="$pg_regress" FINBERT_FIXTURES="$scratch/tap/fixtures" \
			FINBERT_CUDA_HARNESS="$scratch/tap/finbert_cuda_harness.so" \
			prove -I "$(dirname "$pg_regress")/../perl" -I "$scratch/t" ${PROVE_FLAGS:-} $tests)
		;;
	readme)
		sh "$repo/test/readme/run.sh" "$repo" "$scratch" "$pgbin"
		;;
	*)
		echo "check.sh: unknown phase $phase" >&2
		exit 2
		;;
	esac
done
ok=1

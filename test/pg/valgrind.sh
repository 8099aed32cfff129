#!/bin/sh
# Puts the postgres binary of a private installation (test/pg/tempinstall.sh)
# under valgrind: DEST/.../bin/postgres becomes a script that runs the real
# binary (postgres.real, same directory, so PostgreSQL still finds its share
# and library trees) under memcheck, one log file per process in LOGDIR.
# Every backend and the background worker are forked from the postmaster,
# so they run under valgrind too; --trace-children follows the worker's
# exec of finbert-host.  initdb's bootstrap and single-user runs and the
# version probes skip valgrind: they run no finbert code.
#
# No leak check: PostgreSQL frees by memory context, not by pointer.  The
# log files are read by test/pg/valgrind-report.sh.
#
# usage: valgrind.sh PRIVATE_BINDIR LOGDIR
set -eu

bindir=$1
logdir=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$logdir"
# the server runs as postgres, which may not be able to read the clone
cp "$here/valgrind.supp" "$bindir/finbert-valgrind.supp"
mv "$bindir/postgres" "$bindir/postgres.real"
cat >"$bindir/postgres" <<SCRIPT
#!/bin/sh
real="$bindir/postgres.real"
for a in "\$@"; do
	case \$a in
	--boot|--single|-V|--version|-C|--describe-config) exec "\$real" "\$@" ;;
	esac
done
exec valgrind --quiet --tool=memcheck --trace-children=yes \\
	--leak-check=no --track-origins=yes --num-callers=40 \\
	--fullpath-after= --error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END \\
	--suppressions="$bindir/finbert-valgrind.supp" \\
	--log-file="$logdir/%p.log" "\$real" "\$@"
SCRIPT
chmod 755 "$bindir/postgres"

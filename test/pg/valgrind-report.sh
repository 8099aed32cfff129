#!/bin/sh
# Reads the memcheck logs of test/pg/valgrind.sh and fails on an error that
# is finbert's, or on a process killed by a fatal signal (SIGSEGV, SIGBUS,
# SIGILL, SIGFPE, SIGABRT).
#
# An error is finbert's when its innermost frame outside the C library, the
# dynamic loader, valgrind's preload, OpenBLAS and PostgreSQL's memory
# allocator is finbert's code (finbert.so, finbert-host, the engine, any
# source file under REPO/src or REPO/kernels), in the error's own stack or
# in the stack that allocated the memory or created the uninitialised value
# (--track-origins).  So an out-of-bounds read in OpenBLAS of a buffer the
# engine allocated counts, and so does a PostgreSQL error under a finbert
# SPI call only if the memory came from finbert.
#
# The other errors are PostgreSQL's own or the C library's: Debian's server
# is built without USE_VALGRIND and PostgreSQL's src/tools/valgrind.supp is
# not installed, so its known reports (padding bytes of WAL pages and of the
# relcache init file written to disk, the regexp cache's overlapping copy)
# show up.  They are counted and listed by their first named frame, and do
# not fail.  Without USE_VALGRIND memcheck sees memory contexts as whole
# blocks: a palloc'd chunk read before it is written may go unnoticed (the
# engine allocates with malloc, so it is checked byte by byte).
#
# usage: valgrind-report.sh REPO_DIR LOGDIR
set -eu

repo=$(cd "$1" && pwd)
logdir=$2

nlogs=$(ls "$logdir" | grep -c '\.log$' || true)
if [ "$nlogs" = 0 ]; then
	echo "valgrind-report.sh: no valgrind logs in $logdir" >&2
	exit 1
fi

awk -v repo="$repo" -v nlogs="$nlogs" '
function ours(f) {
	return index(f, repo "/src/") || index(f, repo "/kernels/") ||
	       f ~ /\(in [^)]*finbert[^)\/]*\)/
}
function system_frame(f) {
	return f ~ /\((string|elf|libio|posix|io|sysdeps|dlfcn|malloc|stdlib|misc|nptl|stdio-common|socket|csu|time|wcsmbs)\// ||
	       f ~ /\(in \/usr\/libexec\/valgrind\// ||
	       f ~ /\(in [^)]*\/(libc|ld-linux[^\/]*|libm|libpthread|libgomp|libstdc\+\+|libgcc_s|libopenblas[^\/]*|libblas|liblapack)\.so/ ||
	       f ~ /: (palloc|palloc0|palloc_extended|repalloc|pstrdup|pnstrdup|psprintf|MemoryContext[A-Za-z]*|AllocSet[A-Za-z]*|Generation[A-Za-z]*|Slab[A-Za-z]*) /
}
/VALGRINDERROR-BEGIN/ { inerr = 1; block = ""; mine = 0; kind = ""; owner_set = 0; first = ""; section = 0; next }
/VALGRINDERROR-END/ {
	inerr = 0
	if (mine) {
		nours++
		printf("finbert error in %s:\n%s\n", FILENAME, block)
	} else {
		nother++
		other[kind " at " first]++
	}
	next
}
inerr {
	block = block $0 "\n"
	line = $0
	sub(/^==[0-9]+== /, "", line)
	if (kind == "") { kind = line; next }
	if (line !~ /^ +(at|by) 0x/) {	# a new section: address or origin
		owner_set = 0
		section++
		next
	}
	if (system_frame(line))
		next
	if (section == 0 && first == "" && line !~ /\?\?\?/) {	# the label
		first = line
		sub(/^ +(at|by) 0x[0-9A-F]+: /, "", first)
		sub(/ \(.*/, "", first)
	}
	if (!owner_set && ours(line))	# innermost frame that owns this section
		mine = 1
	owner_set = 1
	next
}
/Process terminating with default action of signal (4|6|7|8|11) / {
	nsig++
	printf("fatal signal in %s: %s\n", FILENAME, $0)
}
END {
	printf("valgrind: %d process logs, %d errors in finbert code, %d fatal signals, %d errors outside finbert (not failing)%s\n",
	       nlogs, nours, nsig, nother, nother ? ":" : "")
	for (k in other)
		printf("  %4d  %s\n", other[k], k)
	exit (nours + nsig > 0)
}' "$logdir"/*.log

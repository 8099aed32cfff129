#!/bin/sh
# A private PostgreSQL installation for the tests, under DEST, that holds
# finbert (and pgvector, when its source or a system copy is found), so
# `make test` never writes into the system's PostgreSQL tree and two test
# runs on one machine cannot replace each other's finbert.so.
#
# PostgreSQL finds its share and library directories relative to the
# postgres binary (as in its own `make check` temp install), so the binaries
# are copied (a symbolic link would be resolved back to the system tree)
# and every other file of the library and share trees is linked, except
# finbert's and pgvector's own, which are installed with DESTDIR.
#
# usage: tempinstall.sh DEST REPO_DIR [PGVECTOR_BUILD_DIR]
#   PG_CONFIG (default pg_config), MAKE (default make)
set -eu

dest=$1
repo=$2
vbuild=${3:-}
pg_config=${PG_CONFIG:-pg_config}
make=${MAKE:-make}

bindir=$("$pg_config" --bindir)
pkglibdir=$("$pg_config" --pkglibdir)
sharedir=$("$pg_config" --sharedir)

# link_tree SRC DST: DST mirrors SRC with a symbolic link per file, real
# directories, and nothing of finbert's or pgvector's
link_tree() {
	mkdir -p "$2"
	for f in "$1"/* "$1"/.[!.]*; do
		[ -e "$f" ] || continue
		n=$(basename "$f")
		case "$n" in finbert*|vector*) continue ;; esac
		if [ -d "$f" ] && [ ! -L "$f" ]; then
			link_tree "$f" "$2/$n"
		else
			ln -s "$f" "$2/$n"
		fi
	done
}

rm -rf "$dest"
mkdir -p "$dest$bindir"
cp -p "$bindir"/* "$dest$bindir/"
link_tree "$pkglibdir" "$dest$pkglibdir"
link_tree "$sharedir" "$dest$sharedir"

"$make" -C "$repo" --no-print-directory install DESTDIR="$dest" >/dev/null

# pgvector: the system's copy if installed, else built from
# ../shared/vendor (or FINBERT_PGVECTOR_SRC) into PGVECTOR_BUILD_DIR once
vsrc=${FINBERT_PGVECTOR_SRC:-$repo/../shared/vendor/pgvector-0.8.6}
if [ -f "$sharedir/extension/vector.control" ]; then
	for f in "$pkglibdir"/vector.so "$sharedir"/extension/vector*; do
		ln -s "$f" "$dest$f"
	done
	echo "tempinstall: pgvector: the system's copy"
elif [ -n "$vbuild" ] && [ -f "$vsrc/vector.control" ]; then
	if [ ! -f "$vbuild/vector.so" ]; then
		rm -rf "$vbuild"
		mkdir -p "$(dirname "$vbuild")"
		cp -R "$vsrc" "$vbuild"
		"$make" -C "$vbuild" --no-print-directory OPTFLAGS="" PG_CONFIG="$pg_config" >"$vbuild.log" 2>&1 ||
			{ tail -n 20 "$vbuild.log" >&2; echo "tempinstall: building pgvector failed" >&2; exit 1; }
	fi
	"$make" -C "$vbuild" --no-print-directory OPTFLAGS="" PG_CONFIG="$pg_config" install DESTDIR="$dest" >/dev/null
	echo "tempinstall: pgvector: built from $vsrc"
else
	echo "tempinstall: pgvector: NOT AVAILABLE (no system copy, no source at $vsrc): its tests are skipped"
fi

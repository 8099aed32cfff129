#!/bin/sh
# Installs the Debian 12 packages finbert needs that are missing (as root;
# otherwise only reports them).  Called by `make test` and `make demo`
# before anything is built.
set -eu
pkgs="build-essential pkg-config libopenblas-dev libjson-c-dev libicu-dev
      postgresql-15 postgresql-server-dev-15 libipc-run-perl"
missing=""
for p in $pkgs; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "finbert: missing packages:$missing (install them as root)" >&2
	exit 0
fi
echo "finbert: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq $missing >&2

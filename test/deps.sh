#!/usr/bin/env bash
# Installs what `make test`, `make demo` and `make bench` need on Debian 12 with the
# PostgreSQL 15 server present: server headers (PGXS), pgTAP and pg_prove.
# Does nothing when everything is there already.
set -euo pipefail

pgver=${PGVERSION:-15}
packages=(
	"postgresql-server-dev-$pgver"
	"postgresql-$pgver-pgtap"
	libtap-parser-sourcehandler-pgtap-perl
	make gcc
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "referral: missing packages: ${missing[*]}; run as root or install them with apt-get" >&2
	exit 1
fi
echo "referral: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

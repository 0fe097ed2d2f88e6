#!/usr/bin/env bash
# make citus-check needs Citus built and installed for this server; without it,
# how to build one from a Citus source tree.
set -euo pipefail
pg_config=${PG_CONFIG:-pg_config}
lib=$("$pg_config" --pkglibdir)
share=$("$pg_config" --sharedir)
if [ -f "$lib/citus.so" ] && [ -f "$share/extension/citus.control" ]; then
	exit 0
fi
cat >&2 <<MSG
citus-check: Citus is not installed for $("$pg_config" --version)
  (no $lib/citus.so or $share/extension/citus.control).
Citus is not a Debian package here; build 13.x from its source tree:
  git clone https://github.com/citusdata/citus && mkdir -p /tmp/citus-src
  git -C citus archive v13.2.2 | tar -x -C /tmp/citus-src
  apt-get install -y libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libssl-dev \\
      libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev autoconf flex bison make gcc
  cd /tmp/citus-src
  # PostgreSQL 15.20 exports have_createdb_privilege(): rename Citus's static copy
  sed -i -e 's/^#define have_createdb_privilege() /#define citus_have_createdb_privilege() /' \\
      -e 's/^have_createdb_privilege(void)/citus_have_createdb_privilege(void)/' src/include/pg_version_compat.h
  sed -i 's/!have_createdb_privilege()/!citus_have_createdb_privilege()/' \\
      src/backend/distributed/commands/serialize_distributed_ddls.c
  PG_CONFIG=$pg_config ./configure && make -j2 && make install
MSG
exit 1

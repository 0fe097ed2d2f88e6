#!/usr/bin/env bash
# make citus-check: the same story (test/citus/story.sql) on one plain node and on a
# local Citus cluster (a coordinator and two workers on 127.0.0.1, each with its
# own data directory), the shop's orders table distributed by tenant; every result
# must be the same.  Needs Citus installed for this server (see the Makefile).
set -euo pipefail
cd "$(dirname "$0")/../.."

bindir=$("${PG_CONFIG:-pg_config}" --bindir)
ports=(${CITUS_PORTS:-55441 55442 55443})
single_port=${CITUS_SINGLE_PORT:-55444}
run_as=()
[ "$(id -u)" = 0 ] && run_as=(runuser -u postgres --)

for p in "${ports[@]}" "$single_port"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "citus-check: port $p is in use (set CITUS_PORTS and CITUS_SINGLE_PORT)" >&2
		exit 1
	fi
done

dir=$(mktemp -d /tmp/referral-citus.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
started=()
cleanup() {
	for d in "${started[@]}"; do
		"${run_as[@]}" "$bindir/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
	done
	rm -rf "$dir"
}
trap cleanup EXIT
[ -n "${CITUS_KEEP:-}" ] && trap - EXIT

# start NAME PORT PRELOAD: a node with its own data directory, trust on 127.0.0.1.
start() {
	local d="$dir/$1"
	"${run_as[@]}" "$bindir/initdb" -D "$d" -A trust -U postgres >/dev/null
	{
		echo "port = $2"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$dir'"
		echo "max_connections = 100"
		echo "fsync = off"
		echo "shared_buffers = 64MB"
		if [ -n "$3" ]; then
			echo "shared_preload_libraries = '$3'"
			echo "max_prepared_transactions = 20"
		fi
	} | "${run_as[@]}" tee -a "$d/postgresql.conf" >/dev/null
	"${run_as[@]}" "$bindir/pg_ctl" -D "$d" -l "$dir/$1.log" -w start >/dev/null
	started+=("$d")
}
sql() {	# sql PORT [psql arguments...]
	local port=$1; shift
	psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1 "$@"
}

echo "== starting a coordinator and two workers (ports ${ports[*]}) and a single node ($single_port)"
start coordinator "${ports[0]}" citus
start worker1 "${ports[1]}" citus
start worker2 "${ports[2]}" citus
start single "$single_port" ""
for p in "${ports[@]}"; do
	sql "$p" -c 'CREATE EXTENSION citus' -c 'CREATE EXTENSION referral'
done
sql "${ports[0]}" -c "SELECT citus_set_coordinator_host('127.0.0.1', ${ports[0]})" >/dev/null
sql "${ports[0]}" -c "SELECT citus_add_node('127.0.0.1', ${ports[1]})" \
	-c "SELECT citus_add_node('127.0.0.1', ${ports[2]})" >/dev/null
sql "$single_port" -c 'CREATE EXTENSION referral'

echo "== the story on one node"
sql "$single_port" -v citus=0 -f test/citus/story.sql > "$dir/single.out" 2>&1 || { cat "$dir/single.out"; exit 1; }
echo "== the story on three nodes"
sql "${ports[0]}" -v citus=1 -f test/citus/story.sql > "$dir/citus.out" 2>&1 || { cat "$dir/citus.out"; exit 1; }

[ -n "${CITUS_OUT:-}" ] && cp "$dir/single.out" "$dir/citus.out" "$CITUS_OUT/"
grep '^timing ' "$dir/single.out" | sed 's/^/one node:    /'
grep '^timing ' "$dir/citus.out" | sed 's/^/three nodes: /'
if ! diff -u --label "one node" --label "three nodes" \
		<(grep -v '^timing ' "$dir/single.out") <(grep -v '^timing ' "$dir/citus.out"); then
	echo "citus-check: the results on three nodes differ from one node" >&2
	exit 1
fi
echo "citus-check: $(grep -vc '^timing ' "$dir/single.out") result lines, the same on one node and on three"

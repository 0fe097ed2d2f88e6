#!/usr/bin/env bash
# Runs every test against a throwaway cluster: pg_regress (sql/, expected/), the
# isolation specs (test/specs/) and the pgTAP suites (test/pgtap/) via pg_prove.
# Called by `make test` after the extension is built and installed.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PGHOST:-}" ] || [ -z "${REFERRAL_IN_CLUSTER:-}" ]; then
	# Re-run ourselves inside a fresh cluster that pg_virtualenv drops afterwards.
	exec pg_virtualenv -t env REFERRAL_IN_CLUSTER=1 bash "$0" "$@"
fi

status=0

echo "== pg_regress and isolation specs (make installcheck)"
if ! make --no-print-directory installcheck; then
	status=1
	for f in regression.diffs output_iso/regression.diffs; do
		[ -f "$f" ] && { echo "== $f"; cat "$f"; }
	done
fi

echo "== pgTAP suites (pg_prove)"
psql -qX -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS referral_tap' -c 'CREATE DATABASE referral_tap' postgres
psql -qX -v ON_ERROR_STOP=1 -d referral_tap \
	-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION referral'
if ls test/pgtap/*.sql >/dev/null 2>&1; then
	pg_prove -d referral_tap --failures test/pgtap/*.sql || status=1
fi

echo "== two overlapping converting loads, 20 rounds (test/overlap/overlap.sh)"
bash test/overlap/overlap.sh || status=1

echo "== the demo runs to its end (test/demo/demo.sh, what make demo prints)"
bash test/demo/demo.sh > /tmp/referral_demo.out 2>&1 || { status=1; tail -20 /tmp/referral_demo.out; }

echo "== upgrade path (test/upgrade.sh)"
bash test/upgrade.sh || status=1

# ---- pg_dump / pg_restore round trip (test/dump_restore.sh) ----
echo "== pg_dump / pg_restore round trip (test/dump_restore.sh)"
bash test/dump_restore.sh || status=1

# ---- short fuzz run of the C core (test/fuzz/run.sh; `make fuzz` runs longer) ----
echo "== fuzzing the C core, 10 s per harness (test/fuzz/run.sh)"
bash test/fuzz/run.sh 10 || status=1

if [ $status -ne 0 ]; then
	echo "referral: TESTS FAILED" >&2
else
	echo "referral: all tests passed"
fi
exit $status

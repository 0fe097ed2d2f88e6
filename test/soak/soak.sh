#!/usr/bin/env bash
# make soak: a mixed workload (redeems, orders one at a time and, in tenant 'fast',
# first orders of twenty referees in a statement, which convert set-based next to single
# first orders of the same referees, refunds, approvals, payouts, and ANALYZE of the
# referral table, whose invalidations make the trigger look it up again) with 8 clients for 60 s
# on a throwaway cluster, then audit() must be empty and the sums must balance (check.sql).
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD
if [ -z "${REFERRAL_IN_CLUSTER:-}" ]; then
	exec pg_virtualenv -t -o synchronous_commit=off -o max_connections=50 \
		env REFERRAL_IN_CLUSTER=1 bash "$here/soak.sh" "$@"
fi
psql -qX -c 'CREATE DATABASE referral_soak' postgres
psql -qX -v ON_ERROR_STOP=1 -d referral_soak -f setup.sql >/dev/null
echo "== soak: 8 clients, ${SOAK_SECONDS:-60} s"
pgbench -n -c 8 -j 2 -T "${SOAK_SECONDS:-60}" --max-tries=20 --failures-detailed \
	-f redeem.pgbench@12 -f order.pgbench@30 -f refund.pgbench@6 \
	-f fast_redeem.pgbench@12 -f fast_order.pgbench@20 -f bulk_order.pgbench@5 -f fast_refund.pgbench@5 -f approve.pgbench@2 -f payout.pgbench@8 -f analyze.pgbench@2 \
	referral_soak | grep -E 'transactions|failed|tps|latency average'
psql -qX -v ON_ERROR_STOP=1 -d referral_soak -f check.sql

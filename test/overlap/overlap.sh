#!/usr/bin/env bash
# Two sessions loading orders of overlapping referees at once, ROUNDS times (20 by
# default): every load must commit the first time (no deadlock, no retry), each
# reward must exist once, and audit() must be empty.  Each round's loads convert
# referrals of the same referrers, whose rows both take, in orders that differ
# between the two sessions.  Runs inside test/run.sh's cluster.
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=${ROUNDS:-20}
db=referral_overlap
psql -qX -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
psql -qX -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION referral;
CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL);
SELECT referral.track_orders('orders', 'customer', 'amount');
SELECT referral.create_program('overlap', starts_at => '2020-01-01', max_depth => 2) AS p \gset
SELECT referral.add_reward(:p, 'referee', fixed => 5);
SELECT referral.add_reward(:p, 'referrer', percent => 10);
SELECT referral.add_reward(:p, 'referrer', percent => 20, min_conversions => 3);
SELECT referral.add_reward(:p, 'referrer', percent => 2, level => 2);
-- 50 referrers (each referred by the one before, for level 2), 40 referees each.
SELECT count(*) FROM generate_series(1, 50) i,
       LATERAL referral.redeem(referral.issue_code(:p, 'r' || (i - 1)), 'r' || i) x;
SELECT count(*) FROM generate_series(1, 2000) i,
       LATERAL referral.redeem(referral.issue_code(:p, 'r' || (i % 50)), 'c' || i) x;
SQL

load() {	# round, session: orders of referees in an order of its own, half shared
	local round=$1 session=$2
	psql -qX -v ON_ERROR_STOP=1 -d "$db" -c "
		INSERT INTO orders (id, customer, amount)
		SELECT $round * 100000 + $session * 10000 + n, 'c' || c, 40 + c % 7
		  FROM (SELECT c, row_number() OVER (ORDER BY md5(c::text || '$session')) AS n
		          FROM generate_series(1, 2000) c
		         WHERE c % 2 = 0 OR c % 3 = $session) s"
}

failures=0
for round in $(seq "$ROUNDS"); do
	load "$round" 1 > "/tmp/referral_overlap_1.log" 2>&1 &
	a=$!
	load "$round" 2 > "/tmp/referral_overlap_2.log" 2>&1 &
	b=$!
	wait $a || { failures=$((failures + 1)); cat /tmp/referral_overlap_1.log; }
	wait $b || { failures=$((failures + 1)); cat /tmp/referral_overlap_2.log; }
	check=$(psql -qAtX -v ON_ERROR_STOP=1 -d "$db" -c "
		SELECT (SELECT count(*) FROM referral.audit()) || ' ' ||
		       (SELECT count(*) FROM (SELECT 1 FROM referral.reward WHERE status <> 'reversed' AND kind <> 'clawback'
		                               GROUP BY order_ref, beneficiary, level, kind HAVING count(*) > 1) d) || ' ' ||
		       (SELECT count(*) FROM referral.referral WHERE status = 'converted')")
	read -r problems doubles converted <<< "$check"
	if [ "$problems" != 0 ] || [ "$doubles" != 0 ]; then
		echo "overlap: round $round: audit() rows $problems, rewards twice $doubles" >&2
		failures=$((failures + 1))
	fi
	# Back to pending for the next round: deleting the orders reverses them.
	psql -qX -v ON_ERROR_STOP=1 -d "$db" -c "DELETE FROM orders"
done
echo "overlap: $ROUNDS rounds of two overlapping converting loads, $failures failed (last round converted $converted referrals)"
[ "$failures" = 0 ]

#!/usr/bin/env bash
# The upgrade path: every released version, updated step by step to the current one,
# must have exactly the catalog of a fresh install (test/signature.sql), and the
# pgTAP suites must pass on the updated database.  Runs inside test/run.sh's cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" referral.control)
oldest=0.1
psql -qX -v ON_ERROR_STOP=1 -d postgres \
	-c 'DROP DATABASE IF EXISTS referral_fresh' -c 'DROP DATABASE IF EXISTS referral_updated' \
	-c 'CREATE DATABASE referral_fresh' -c 'CREATE DATABASE referral_updated'
psql -qX -v ON_ERROR_STOP=1 -d referral_fresh -c 'CREATE EXTENSION referral'
psql -qX -v ON_ERROR_STOP=1 -d referral_updated -c "CREATE EXTENSION referral VERSION '$oldest'" \
	-c "ALTER EXTENSION referral UPDATE TO '$current'"

echo "== update paths"
psql -qAtX -d referral_updated -c "SELECT source || ' -> ' || target || ': ' || path FROM pg_extension_update_paths('referral') WHERE path IS NOT NULL ORDER BY 1"
reachable=$(psql -qAtX -d referral_updated -c "SELECT count(*) FROM pg_extension_update_paths('referral') WHERE source = '$oldest' AND target = '$current' AND path IS NOT NULL")
[ "$reachable" = 1 ] || { echo "upgrade: no update path from $oldest to $current" >&2; exit 1; }

fresh=$(mktemp) updated=$(mktemp)
trap 'rm -f "$fresh" "$updated"' EXIT
psql -qX -v ON_ERROR_STOP=1 -d referral_fresh -f test/signature.sql > "$fresh"
psql -qX -v ON_ERROR_STOP=1 -d referral_updated -f test/signature.sql > "$updated"
echo "== catalog of $oldest updated to $current against a fresh $current ($(wc -l < "$fresh") objects)"
if ! diff -u --label "fresh $current" --label "$oldest updated to $current" "$fresh" "$updated"; then
	echo "upgrade: sql/referral--$oldest--$current.sql does not reproduce sql/install/*.sql" >&2
	exit 1
fi

# Data written by the oldest version must read the same after the update: a chain whose
# subtree got a parent after it had grown (the update fills member.ancestors).
echo "== chains written by $oldest, read after the update"
psql -qX -v ON_ERROR_STOP=1 -d postgres -c 'SET client_min_messages = warning' -c 'DROP DATABASE IF EXISTS referral_chains' -c 'CREATE DATABASE referral_chains'
psql -qX -v ON_ERROR_STOP=1 -d referral_chains -c "CREATE EXTENSION referral VERSION '$oldest'" -f - >/dev/null <<'SQL'
SELECT referral.create_program('P') AS p \gset
SELECT count(*) FROM (VALUES ('root', 'a'), ('a', 'b'), ('e', 'f'), ('f', 'h'), ('b', 'e')) AS x(referrer, referee)
 CROSS JOIN LATERAL referral.redeem(referral.issue_code(:p, x.referrer), x.referee);
SQL
psql -qX -v ON_ERROR_STOP=1 -d referral_chains -c "ALTER EXTENSION referral UPDATE TO '$current'"
chains=$(psql -qAtX -v ON_ERROR_STOP=1 -d referral_chains \
	-c "SELECT string_agg(level || ':' || customer, ' ') FROM referral.upline('h')" \
	-c "SELECT string_agg(level || ':' || customer, ' ') FROM referral.downline('a')")
expected=$'1:f 2:e 3:b 4:a 5:root\n1:b 2:e 3:f 4:h'
if [ "$chains" != "$expected" ]; then
	printf 'upgrade: chains after the update\n%s\nexpected\n%s\n' "$chains" "$expected" >&2
	exit 1
fi
echo "ok"

# One module serves every version: in a database not yet updated, orders must still be
# attributed (the trigger falls back to the oldest version's functions), one by one
# and in a statement of many.
echo "== orders under $oldest with this version's module, before the update"
psql -qX -v ON_ERROR_STOP=1 -d postgres -c 'SET client_min_messages = warning' -c 'DROP DATABASE IF EXISTS referral_old_orders' -c 'CREATE DATABASE referral_old_orders'
psql -qX -v ON_ERROR_STOP=1 -d referral_old_orders -c "CREATE EXTENSION referral VERSION '$oldest'" -f - >/dev/null <<'SQL'
CREATE TABLE shop_orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL);
SELECT referral.track_orders('shop_orders', 'customer', 'amount');
SELECT referral.create_program('P') AS p \gset
SELECT referral.add_reward(:p, 'referrer', fixed => 10);
SELECT count(*) FROM generate_series(1, 10) AS i
 CROSS JOIN LATERAL referral.redeem(referral.issue_code(:p, 'referrer'), 'c' || i);
INSERT INTO shop_orders VALUES (1, 'c1', 50);
INSERT INTO shop_orders SELECT i, 'c' || i, 50 FROM generate_series(2, 10) AS i;
SQL
old_orders=$(psql -qAtX -v ON_ERROR_STOP=1 -d referral_old_orders \
	-c "SELECT count(*) || ' converted, ' || (SELECT sum(amount) FROM referral.reward) || ' earned' FROM referral.referral WHERE status = 'converted'")
if [ "$old_orders" != "10 converted, 100.00 earned" ]; then
	printf 'upgrade: orders under %s: %s, expected 10 converted, 100.00 earned\n' "$oldest" "$old_orders" >&2
	exit 1
fi
echo "ok"

# A conversion made under the oldest version, reversed after the update: the referral
# is found through its converting order in attributed_order.
echo "== a conversion made under $oldest, reversed after the update"
reversed=$(psql -qAtX -v ON_ERROR_STOP=1 -d referral_old_orders \
	-c "ALTER EXTENSION referral UPDATE TO '$current'" \
	-c "DELETE FROM shop_orders WHERE id = 1" \
	-c "SELECT (SELECT status FROM referral.referral WHERE referee = 'c1') || ', '
	           || (SELECT count(*) FROM referral.referral WHERE status = 'converted') || ' converted, '
	           || (SELECT sum(amount) FROM referral.reward WHERE status <> 'reversed') || ' earned, '
	           || (SELECT count(*) FROM referral.audit()) || ' audit problems'")
if [ "$reversed" != "pending, 9 converted, 90.00 earned, 0 audit problems" ]; then
	printf 'upgrade: reversal after the update: %s, expected pending, 9 converted, 90.00 earned, 0 audit problems\n' "$reversed" >&2
	exit 1
fi
echo "ok"

# Labels in use before the update are registered by it, so that no table tracked
# after it gets one of them; tables tracked before it get the TRUNCATE trigger, and
# their partitions the order triggers.
echo "== source labels and partitions of tables tracked under $oldest, after the update"
psql -qX -v ON_ERROR_STOP=1 -d postgres -c 'SET client_min_messages = warning' -c 'DROP DATABASE IF EXISTS referral_labels' -c 'CREATE DATABASE referral_labels'
psql -qX -v ON_ERROR_STOP=1 -d referral_labels -c "CREATE EXTENSION referral VERSION '$oldest'" -f - >/dev/null <<'SQL'
CREATE TABLE shop_orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL);
SELECT referral.track_orders('shop_orders', 'customer', 'amount');
CREATE TABLE parted (id int, customer text, amount numeric) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
SELECT referral.track_orders('parted', 'customer', 'amount');
CREATE TABLE gone (id int PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL);
SELECT referral.track_orders('gone', 'customer', 'amount');
SELECT referral.create_program('P') AS p \gset
SELECT referral.add_reward(:p, 'referrer', fixed => 10);
SELECT count(*) FROM generate_series(1, 2) AS i
 CROSS JOIN LATERAL referral.redeem(referral.issue_code(:p, 'referrer'), 'c' || i);
INSERT INTO shop_orders VALUES (1, 'c1', 50);
INSERT INTO gone VALUES (1, 'c2', 50);
SELECT referral.untrack_orders('gone');
DROP TABLE gone;
SQL
labels=$(psql -qAtX -v ON_ERROR_STOP=1 -d referral_labels \
	-c "ALTER EXTENSION referral UPDATE TO '$current'" \
	-c "SELECT string_agg(label || '=' || COALESCE(relid::text, '-'), ' ' ORDER BY label) FROM referral.source_label" \
	-c "CREATE TABLE gone (id int, customer text, amount numeric)" \
	-c "DO \$\$ BEGIN PERFORM referral.track_orders('gone', 'customer', 'amount'); END \$\$" \
	-c "SELECT source FROM referral.tracked_table WHERE relid = 'gone'::regclass" \
	-c "SELECT string_agg(tgrelid::regclass || '.' || tgname, ' ' ORDER BY tgrelid::regclass::text, tgname) FROM pg_trigger
	     WHERE tgname IN ('referral_orders_trunc', 'referral_orders_ins') AND tgrelid::regclass::text <> 'gone'" |
	sed '/^$/d')
expected_labels=$'public.gone=- public.parted=parted public.shop_orders=shop_orders\npublic.gone#2\nparted.referral_orders_ins parted.referral_orders_trunc parted_1.referral_orders_ins parted_1.referral_orders_trunc shop_orders.referral_orders_ins shop_orders.referral_orders_trunc'
if [ "$labels" != "$expected_labels" ]; then
	printf 'upgrade: labels and triggers after the update\n%s\nexpected\n%s\n' "$labels" "$expected_labels" >&2
	exit 1
fi
echo "ok"

# An order whose customer changed under 0.2 kept its attribution.  Its refund after
# the update must reverse it, though its customer now is nobody's referee: the
# trigger's C pass finds it by its id among the attributed orders.
echo "== an order moved to another customer under 0.2, refunded after the update"
psql -qX -v ON_ERROR_STOP=1 -d postgres -c 'SET client_min_messages = warning' -c 'DROP DATABASE IF EXISTS referral_moved' -c 'CREATE DATABASE referral_moved'
psql -qX -v ON_ERROR_STOP=1 -d referral_moved -c "CREATE EXTENSION referral VERSION '0.2'" -f - >/dev/null <<'SQL'
CREATE TABLE shop_orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL, status text NOT NULL);
SELECT referral.track_orders('shop_orders', 'customer', 'amount', status_column => 'status');
SELECT referral.create_program('P') AS p \gset
SELECT referral.add_reward(:p, 'referrer', fixed => 10);
SELECT count(*) FROM referral.redeem(referral.issue_code(:p, 'referrer'), 'guest-7');
INSERT INTO shop_orders VALUES (1, 'guest-7', 50, 'paid'), (2, 'guest-7', 50, 'paid');
UPDATE shop_orders SET customer = 'account-7' WHERE id = 1;
SQL
moved=$(psql -qAtX -v ON_ERROR_STOP=1 -d referral_moved \
	-c "ALTER EXTENSION referral UPDATE TO '$current'" \
	-c "UPDATE shop_orders SET status = 'refunded' WHERE id = 1" \
	-c "SELECT (SELECT status FROM referral.referral WHERE referee = 'guest-7') || ', '
	           || (SELECT count(*) FROM referral.reward WHERE status = 'reversed') || ' reversed, '
	           || (SELECT count(*) FROM referral.audit()) || ' audit problems'" | sed '/^$/d')
expected_moved='pending, 1 reversed, 0 audit problems'
if [ "$moved" != "$expected_moved" ]; then
	printf 'upgrade: moved order after the update\n%s\nexpected\n%s\n' "$moved" "$expected_moved" >&2
	exit 1
fi
echo "ok"

echo "== pgTAP suites on the updated database"
psql -qX -v ON_ERROR_STOP=1 -d referral_updated -c 'CREATE EXTENSION pgtap'
pg_prove -d referral_updated --failures test/pgtap/*.sql

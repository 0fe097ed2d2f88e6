#!/usr/bin/env bash
# pg_dump / pg_restore round trip of a database using referral (SPEC.md "Tables holding
# user data are dumped by pg_dump").  Runs inside the cluster that test/run.sh starts
# (PGHOST etc. from pg_virtualenv), as a superuser.
#
# Builds referral_dump_src: two programs (rules, tiers by variant, a chain level, a
# milestone, variants), vanity and generated codes, clicks, accepted and rejected
# redeems, and an orders table (in its own schema, with a name that needs quoting)
# tracked with referral.track_orders, whose orders converted, were paid out, refunded
# and deleted.  Dumps it with pg_dump -Fc, restores it into referral_dump_dst with
# pg_restore, and checks that:
#   - pg_dump and pg_restore succeed without a warning;
#   - every table of schema referral has the same rows (count and content) and every
#     sequence the same state;
#   - the per-database secret came along: the same row, and the next generated codes
#     for the same new customers are equal in both databases (same secret and counter)
#     and collide with no code of the source;
#   - a redeem with the referrer's e-mail (another spelling) or device is still a
#     self_referral in the restored database;
#   - the restored orders table has its triggers: a new order converts a pending
#     referral, a refund reverses rewards, exactly as the same statements do in the
#     source database;
#   - audit() reports nothing, before and after those orders;
#   - after a forget(), a plain dump (the shop's orders left out) holds the pseudonym
#     and not the old key, and forget() again after the restore changes nothing;
#   - privileges given with grant_app survive, and PUBLIC still reads nothing.
# Exits non-zero with a message naming the first mismatch.
set -uo pipefail
cd "$(dirname "$0")/.."

src=referral_dump_src
dst=referral_dump_dst
role=referral_dump_app
work=$(mktemp -d /tmp/referral-dump.XXXXXX)
checks=0

cleanup() {
	rm -rf "$work"
	if [ -z "${KEEP_DUMP_DATABASES:-}" ]; then
		dropdb --if-exists "$src" 2>/dev/null
		dropdb --if-exists "$dst" 2>/dev/null
		psql -X -q -d postgres -c "DROP ROLE IF EXISTS $role" 2>/dev/null
	fi
}
trap cleanup EXIT

fail() {
	echo "dump_restore: FAIL: $*" >&2
	exit 1
}

# q DB SQL: one value (or rows, |-separated), unaligned, no headers; stops on errors.
q() {
	local db=$1
	shift
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$db" -c "SET TimeZone = 'UTC'" -c "$*" ||
		fail "query failed in $db: $*"
}

# same WHAT SQL: SQL gives the same (non-empty) answer in both databases.
same() {
	local what=$1 sql=$2 a b
	a=$(q "$src" "$sql")
	b=$(q "$dst" "$sql")
	[ -n "$a" ] || fail "$what: no answer in $src"
	[ "$a" = "$b" ] || fail "$what differs: source [$a], restored [$b]"
	checks=$((checks + 1))
	echo "ok   $what: [$a]"
}

# expect WHAT DB SQL WANT: SQL gives WANT in DB.
expect() {
	local what=$1 db=$2 sql=$3 want=$4 got
	got=$(q "$db" "$sql")
	[ "$got" = "$want" ] || fail "$what in $db: got [$got], want [$want]"
	checks=$((checks + 1))
	echo "ok   $what ($db): [$got]"
}

echo "== dump_restore: databases $src -> $dst"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $src" -c "DROP DATABASE IF EXISTS $dst" \
	-c "DROP ROLE IF EXISTS $role" -c "CREATE ROLE $role NOLOGIN" || fail "cannot reset databases and role $role"
createdb "$src" || fail "createdb $src"

psql -X -q -v ON_ERROR_STOP=1 -d "$src" >"$work/setup.log" 2>&1 <<'SQL' || { cat "$work/setup.log"; fail "building $src failed"; }
SET TimeZone = 'UTC';
CREATE EXTENSION referral;
SELECT referral.grant_app('referral_dump_app');

-- The shop's orders table: its own schema, names that need quoting.
CREATE SCHEMA shop;
CREATE TABLE shop."Order Book" (
	"Order No"	bigserial PRIMARY KEY,
	customer	text NOT NULL,
	total		numeric(12, 2) NOT NULL,
	status		text NOT NULL DEFAULT 'new',
	placed_at	timestamptz NOT NULL DEFAULT now()
);
SELECT referral.track_orders('shop."Order Book"', 'customer', 'total', id_column => 'Order No',
	status_column => 'status', paid_statuses => '{paid,shipped}', ordered_at_column => 'placed_at');

-- Programs, rules, tiers, a chain level, a milestone, variants.  Times are relative to
-- now(): the windows (30 days) hold whenever this runs.
SELECT referral.create_program('Dump', starts_at => now() - '30 days'::interval, max_depth => 2,
	hold_period => '7 days') AS p \gset
SELECT referral.add_variant(:p, 'A');
SELECT referral.add_variant(:p, 'B', weight => 2);
SELECT referral.add_reward(:p, 'referee', fixed => 5);
SELECT referral.add_reward(:p, 'referrer', percent => 10, cap => 50);
SELECT referral.add_reward(:p, 'referrer', percent => 15, cap => 50, min_conversions => 2);
SELECT referral.add_reward(:p, 'referrer', percent => 20, variant => 'B');
SELECT referral.add_reward(:p, 'referrer', percent => 2, level => 2);
SELECT referral.add_milestone(:p, 2, 25);
SELECT referral.add_referee_offer(:p, percent => 10, cap => 20);
SELECT referral.create_program('Elsewhere', tenant => 'other shop', currency => 'EUR') AS q \gset
SELECT referral.add_reward(:q, 'referrer', fixed => 3);

-- Codes: vanity and generated, with fingerprints.
SELECT referral.issue_code(:p, 'alice', vanity => 'ALICE', email => 'alice@example.com', device => 'd-alice');
SELECT referral.issue_code(:p, 'bob') AS bob_code \gset
SELECT referral.issue_code(:p, 'carol') AS carol_code \gset
SELECT referral.issue_code(:q, 'olga', vanity => 'OLGA-2026');
SELECT referral.issue_code(:q, 'pete');

-- Clicks.
SELECT referral.record_click('ALICE', 'newsletter', '203.0.113.9', 'Mozilla/5.0');
SELECT referral.record_click('ALICE', 'newsletter', '203.0.113.10');
SELECT referral.record_click(:'bob_code', 'sms');
SELECT referral.record_click('OLGA2026', NULL, '198.51.100.1');

-- Redeems: accepted (a chain alice > bob > erin, alice > carol > gina, hank), rejected ones.
SELECT * FROM referral.redeem('ALICE', 'bob', email => 'bob@example.com', ip => '203.0.113.9');
SELECT * FROM referral.redeem('ALICE', 'carol');
SELECT * FROM referral.redeem(:'bob_code', 'erin', device => 'd-erin');
SELECT * FROM referral.redeem(:'carol_code', 'gina');
SELECT * FROM referral.redeem(:'carol_code', 'hank');
SELECT * FROM referral.redeem('ALICE', 'ivan');
SELECT * FROM referral.redeem('ALICE', 'alice');
SELECT * FROM referral.redeem('ALICE', 'al', email => 'ALICE+x@Example.com');
SELECT * FROM referral.redeem(:'bob_code', 'alice');
SELECT * FROM referral.redeem('OLGA2026', 'quinn');

-- Orders: converted, approved, paid out, refunded (with a clawback), deleted, not
-- paid, unrelated, and pending rewards.
INSERT INTO shop."Order Book" (customer, total, status) VALUES
	('bob', 100.00, 'paid'), ('carol', 200.00, 'paid'), ('erin', 50.00, 'shipped'),
	('zed', 75.00, 'paid'), ('gina', 10.00, 'new');
SELECT referral.approve_due(now() + '8 days'::interval);
SELECT referral.mark_paid(ARRAY(SELECT id FROM referral.reward WHERE beneficiary = 'alice' ORDER BY id LIMIT 1), 'PAYOUT-1');
UPDATE shop."Order Book" SET status = 'refunded' WHERE customer = 'bob';
INSERT INTO shop."Order Book" (customer, total, status) VALUES ('hank', 20.00, 'paid');
DELETE FROM shop."Order Book" WHERE customer = 'hank';
INSERT INTO shop."Order Book" (customer, total, status) VALUES ('ivan', 80.00, 'paid');

-- A partitioned orders table, one partition untracked after an order there converted
-- pia's referral (the partition's attributed orders are recorded).
CREATE TABLE shop.parted (id bigint, customer text, amount numeric) PARTITION BY RANGE (id);
CREATE TABLE shop.parted_1 PARTITION OF shop.parted FOR VALUES FROM (0) TO (100);
CREATE TABLE shop.parted_2 PARTITION OF shop.parted FOR VALUES FROM (100) TO (200);
SELECT referral.track_orders('shop.parted', 'customer', 'amount');
SELECT * FROM referral.redeem('ALICE', 'pia');
INSERT INTO shop.parted VALUES (150, 'pia', 50);
SELECT referral.untrack_orders('shop.parted_2');
INSERT INTO shop.parted VALUES (1, 'nobody', 5), (101, 'nobody', 5);
-- Checkout: gina's offer used, carol's store credit spent.
SELECT referral.use_offer('gina', 'checkout-gina', 60.00);
SELECT referral.spend_credit('carol', 3, 'checkout-carol');
-- Operations: a blocked customer, a voided referral (hank's), and a customer who
-- referred, was referred, clicked, earned and was then forgotten.
SELECT referral.block('mallory-blocked', 'test block');
SELECT referral.void_referral((SELECT id FROM referral.referral WHERE referee = 'hank'), 'test void');
SELECT referral.issue_code(:p, 'Yvonne.Forgetme', vanity => 'YVONNE', email => 'yvonne@example.com', device => 'd-yvonne');
SELECT referral.record_click('YVONNE', 'mail', '192.0.2.7', 'Agent of Yvonne.Forgetme');
SELECT * FROM referral.redeem(:'bob_code', 'Yvonne.Forgetme', email => 'yv@example.com', ip => '192.0.2.7');
SELECT * FROM referral.redeem('YVONNE', 'zoe');
INSERT INTO shop."Order Book" (customer, total, status) VALUES ('Yvonne.Forgetme', 40.00, 'paid'), ('zoe', 30.00, 'paid');
SELECT referral.forget('Yvonne.Forgetme');
SQL
checks=$((checks + 1))
echo "ok   $src built"

expect "source is consistent: audit() rows" "$src" "SELECT count(*) FROM referral.audit()" 0
expect "source has referrals converted, pending and rejected" "$src" \
	"SELECT string_agg(DISTINCT status, ',' ORDER BY status) FROM referral.referral" "converted,pending,rejected"
expect "source has rewards pending, approved, paid and reversed, and a clawback" "$src" \
	"SELECT string_agg(DISTINCT status, ',' ORDER BY status) || '/' || count(*) FILTER (WHERE kind = 'clawback')
	   FROM referral.reward" "approved,paid,pending,reversed/1"
expect "source has a pending referral for gina (converted after the restore)" "$src" \
	"SELECT status FROM referral.referral WHERE referee = 'gina'" "pending"

expect "forget left the old key in no table of referral (pg_dump, the shop's orders left out)" "$src" \
	"SELECT 'forgotten ' || count(*) FROM referral.forgotten" "forgotten 1"
pg_dump -Fp --exclude-table-data='shop."Order Book"' -f "$work/src.sql" "$src" || fail "pg_dump -Fp failed"
grep -c 'Yvonne.Forgetme' "$work/src.sql" >/dev/null && fail "the forgotten key is still in the dump: $(grep -m3 'Yvonne.Forgetme' "$work/src.sql")"
grep -q 'forgotten-' "$work/src.sql" || fail "the dump holds no pseudonym"
checks=$((checks + 1))
echo "ok   the dump of $src holds the pseudonym and not the forgotten key"

echo "== pg_dump -Fc $src, pg_restore into $dst"
pg_dump -Fc -f "$work/src.dump" "$src" 2>"$work/dump.err" || { cat "$work/dump.err"; fail "pg_dump failed"; }
[ -s "$work/dump.err" ] && { cat "$work/dump.err"; fail "pg_dump wrote warnings"; }
createdb "$dst" || fail "createdb $dst"
pg_restore --exit-on-error -d "$dst" "$work/src.dump" 2>"$work/restore.err" ||
	{ cat "$work/restore.err"; fail "pg_restore failed"; }
[ -s "$work/restore.err" ] && { cat "$work/restore.err"; fail "pg_restore wrote warnings"; }
checks=$((checks + 1))
echo "ok   pg_dump and pg_restore ran without a warning"

echo "== the data"
tables=$(q "$src" "SELECT c.relname FROM pg_class c
                    WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('r', 'p')
                    ORDER BY c.relname")
[ -n "$tables" ] || fail "no table in schema referral"
expect "tables of schema referral (same list)" "$dst" \
	"SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_class c
	  WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('r', 'p')" "$(echo $tables)"
empty=""
for t in $tables; do
	n=$(q "$src" "SELECT count(*) FROM referral.\"$t\"")
	[ "$n" -gt 0 ] || empty="$empty $t"
	same "rows of referral.$t" "SELECT count(*) FROM referral.\"$t\""
	same "content of referral.$t (md5)" \
		"SELECT md5(COALESCE(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM referral.\"$t\" x"
done
# Every table must hold data here, or the round trip proves nothing for it.
[ -z "$empty" ] || fail "the source left tables empty:$empty (extend the set-up)"
for s in $(q "$src" "SELECT c.relname FROM pg_class c
                     WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind = 'S' ORDER BY c.relname"); do
	same "state of sequence referral.$s" "SELECT last_value || ' ' || is_called FROM referral.\"$s\""
done
same "rows of the shop's orders" "SELECT count(*) || ' ' || md5(string_agg(o::text, ',' ORDER BY o.\"Order No\"))
                                   FROM shop.\"Order Book\" o"

echo "== the secret"
same "the secret" "SELECT md5(code_key::text || fingerprint_key::text) FROM referral.secret"
p=$(q "$src" "SELECT id FROM referral.program WHERE name = 'Dump'")
q_=$(q "$src" "SELECT id FROM referral.program WHERE name = 'Elsewhere'")
same "the next generated code (new customer in Dump)" "SELECT referral.issue_code($p, 'newcomer-1')::text"
same "the code after it (new customer in Elsewhere)" "SELECT referral.issue_code($q_, 'newcomer-2')::text"
same "the same customer gets the same code again" "SELECT referral.issue_code($p, 'newcomer-1')::text"
expect "the new codes collide with no code of the source" "$src" \
	"SELECT count(*) FROM referral.code c JOIN referral.code d ON d.code OPERATOR(referral.=) c.code AND d.customer <> c.customer
	  WHERE c.customer LIKE 'newcomer-%'" 0
expect "every generated code in the restored database has a valid check character" "$dst" \
	"SELECT bool_and(referral.is_generated(code)) FROM referral.code WHERE NOT vanity" t

echo "== fingerprints still match"
expect "redeem with the referrer's e-mail (other spelling)" "$dst" \
	"SELECT status || '/' || COALESCE(reason, '-') FROM referral.redeem('alice', 'mallory', email => ' Alice+promo@EXAMPLE.com ')" \
	"rejected/self_referral"
expect "redeem with the referrer's device" "$dst" \
	"SELECT status || '/' || COALESCE(reason, '-') FROM referral.redeem('ALICE', 'mallory2', device => 'd-alice')" "rejected/self_referral"
expect "redeem with another e-mail" "$dst" \
	"SELECT status || '/' || COALESCE(reason, '-') FROM referral.redeem('ALICE', 'henry', email => 'henry@example.com')" "pending/-"
expect "a customer already referred gets the existing referral" "$dst" \
	"SELECT status || '/' || reason FROM referral.redeem('ALICE', 'erin')" "converted/already_referred"
# A typo in bob's generated code (its check character replaced) is suggested back.
typo=$(q "$src" "SELECT overlay(code::text placing CASE WHEN right(code::text, 1) = '2' THEN '3' ELSE '2' END from 8)
                   FROM referral.code WHERE customer = 'bob'")
hint_sql="CREATE FUNCTION pg_temp.hint_of(c text) RETURNS text LANGUAGE plpgsql AS \$\$
	DECLARE h text;
	BEGIN
		PERFORM referral.redeem(c::referral.referral_code, 'typo');
		RETURN 'no error';
	EXCEPTION WHEN SQLSTATE 'RF002' THEN
		GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
		RETURN h;
	END \$\$;
	SELECT pg_temp.hint_of('$typo')"
expect "the hint for a mistyped generated code" "$dst" "$hint_sql" \
	"Did you mean \"$(q "$src" "SELECT code::text FROM referral.code WHERE customer = 'bob'")\"?"

echo "== the triggers of the restored orders table"
expect "triggers on shop.\"Order Book\"" "$dst" \
	"SELECT count(*) FROM pg_trigger WHERE tgrelid = 'shop.\"Order Book\"'::regclass
	    AND tgfoid = 'referral._order_trigger()'::regprocedure" 3
expect "order and truncate triggers on the tracked and the untracked partition" "$dst" \
	"SELECT count(*) FILTER (WHERE tgrelid = 'shop.parted_1'::regclass) || ' ' ||
	        count(*) FILTER (WHERE tgrelid = 'shop.parted_2'::regclass) FROM pg_trigger
	  WHERE tgfoid IN ('referral._order_trigger()'::regprocedure, 'referral._orders_truncated()'::regprocedure)" "4 0"
psql -X -q -d "$dst" -c "DROP TABLE shop.parted_1" 2>"$work/drop.err" && fail "DROP TABLE shop.parted_1 succeeded in $dst"
grep -q "cannot drop partition shop.parted_1 of table shop.parted tracked by referral" "$work/drop.err" ||
	{ cat "$work/drop.err"; fail "DROP TABLE shop.parted_1 failed otherwise"; }
checks=$((checks + 1))
echo "ok   DROP TABLE shop.parted_1 refused ($dst)"
expect "the registry names the restored table" "$dst" \
	"SELECT count(*) FROM referral.tracked_table WHERE relid = 'shop.\"Order Book\"'::regclass" 1
expect "audit() rows after restore" "$dst" "SELECT count(*) FROM referral.audit()" 0
# The same statements in both databases: a new paid order of a pending referee, the
# referee's earlier unpaid order paid, and a refund.
for db in "$src" "$dst"; do
	q "$db" "INSERT INTO shop.\"Order Book\" (customer, total, status) VALUES ('gina', 60.00, 'paid')" >/dev/null
	q "$db" "UPDATE shop.\"Order Book\" SET status = 'refunded' WHERE customer = 'erin'" >/dev/null
done
expect "gina's referral converts on the new order" "$dst" \
	"SELECT r.status || '/' || (r.converting_order = o.\"Order No\"::text)
	   FROM referral.referral r JOIN shop.\"Order Book\" o ON o.customer = r.referee AND o.total = 60.00
	  WHERE r.referee = 'gina' AND r.status <> 'rejected'" "converted/true"
same "rewards of the new order and the refund" \
	"SELECT string_agg(concat_ws(':', w.id, w.beneficiary, w.kind, w.level, w.amount, w.status, w.order_ref), ' ' ORDER BY w.id)
	   FROM referral.reward w
	  WHERE w.referral_id IN (SELECT r.id FROM referral.referral r WHERE r.referee IN ('gina', 'erin'))"
same "referrals after the new orders" \
	"SELECT string_agg(concat_ws(':', id, referee, status, reason, converting_order), ' ' ORDER BY id) FROM referral.referral
	  WHERE referee NOT IN ('mallory', 'mallory2', 'henry')"
expect "audit() rows after the new orders" "$dst" "SELECT count(*) FROM referral.audit()" 0
expect "forget again in the restored database is a no-op" "$dst" "SELECT referral.forget('Yvonne.Forgetme')" 0
expect "the blocked customer is still refused" "$dst" \
	"SELECT referral.issue_code($p, 'mallory-blocked') IS NOT NULL AND (SELECT reason FROM referral.redeem(referral.issue_code($p, 'mallory-blocked'), 'victim')) = 'blocked'" t

echo "== privileges"
expect "grant_app's grants survive" "$dst" \
	"SELECT has_function_privilege('$role', 'referral.redeem(referral.referral_code, text, text, inet, text, timestamptz)', 'EXECUTE')
	    AND NOT has_table_privilege('$role', 'referral.referral', 'SELECT')" t
expect "PUBLIC still reads nothing" "$dst" \
	"SELECT count(*) FROM pg_class c, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p
	  WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('r', 'v') AND has_table_privilege('public', c.oid, p)" 0

echo "dump_restore: all $checks checks passed"

-- Attribution chains: upline and downline over accepted referrals across the tenant's
-- programs, including a subtree that gets a parent after it has grown.
BEGIN;
SELECT plan(14);

CREATE TEMP TABLE t AS SELECT referral.create_program('P1') AS p1, referral.create_program('P2') AS p2;
-- Redeems a code of `referrer` (issued on demand in program p) by `referee`.
CREATE FUNCTION pg_temp.refer(p bigint, referrer text, referee text) RETURNS text
LANGUAGE sql AS $$
	SELECT status FROM referral.redeem(referral.issue_code(p, referrer), referee)
$$;

-- root -> a -> b -> c, and a -> d; e refers f and g before e itself is referred by c.
SELECT is(pg_temp.refer((SELECT p1 FROM t), 'root', 'a'), 'pending', 'root refers a');
SELECT is(pg_temp.refer((SELECT p1 FROM t), 'a', 'b') || pg_temp.refer((SELECT p2 FROM t), 'b', 'c')
          || pg_temp.refer((SELECT p1 FROM t), 'a', 'd'), 'pendingpendingpending', 'a tree across two programs');
SELECT is(pg_temp.refer((SELECT p1 FROM t), 'e', 'f') || pg_temp.refer((SELECT p1 FROM t), 'e', 'g')
          || pg_temp.refer((SELECT p1 FROM t), 'f', 'h'), 'pendingpendingpending', 'a separate tree below e');

SELECT results_eq($$SELECT level, customer FROM referral.upline('c')$$,
	$$VALUES (1, 'b'::text), (2, 'a'), (3, 'root')$$, 'upline of c');
SELECT is_empty($$SELECT * FROM referral.upline('root')$$, 'a root has no upline');
SELECT is_empty($$SELECT * FROM referral.upline('nobody')$$, 'an unknown customer has no upline');
SELECT bag_eq($$SELECT level, customer FROM referral.downline('a')$$,
	$$VALUES (1, 'b'::text), (2, 'c'), (1, 'd')$$, 'downline of a');

-- e's tree hangs below c: e's whole subtree moves with it.
SELECT is(pg_temp.refer((SELECT p1 FROM t), 'c', 'e'), 'pending', 'c refers e, who already has a downline');
SELECT results_eq($$SELECT level, customer FROM referral.upline('h')$$,
	$$VALUES (1, 'f'::text), (2, 'e'), (3, 'c'), (4, 'b'), (5, 'a'), (6, 'root')$$, 'h''s upline now reaches root');
SELECT bag_eq($$SELECT level, customer FROM referral.downline('root', max_depth => 4)$$,
	$$VALUES (1, 'a'::text), (2, 'b'), (2, 'd'), (3, 'c'), (4, 'e')$$, 'downline with max_depth');
SELECT is((SELECT count(*) FROM referral.downline('root')), 8::bigint, 'the whole tree below root');
SELECT results_eq($$SELECT level, customer FROM referral.downline('a')$$,
	$$VALUES (1, 'b'::text), (2, 'c'), (3, 'e'), (4, 'f'), (5, 'h'), (4, 'g'), (1, 'd')$$,
	'downline in tree order: each member followed by its own downline');
SELECT is_empty($$SELECT * FROM referral.upline('h', 'other tenant')$$, 'chains are per tenant');
SELECT is(pg_temp.refer((SELECT p1 FROM t), 'h', 'root'), 'rejected', 'root is in h''s upline: a cycle');

SELECT * FROM finish();
ROLLBACK;

-- audit(): empty on a consistent ledger, and one row naming each kind of damage done
-- behind the triggers' back (orders changed with the triggers off, ledger rows edited
-- by hand).  Every tampering is undone before the next, so each test sees one problem.
BEGIN;
SELECT plan(16);
SET LOCAL TimeZone = 'UTC';

CREATE TABLE public.audit_orders (
	id			bigint PRIMARY KEY,
	customer_id	text NOT NULL,
	total		numeric(12, 2) NOT NULL,
	status		text NOT NULL DEFAULT 'paid',
	placed_at	timestamptz NOT NULL
);
SELECT referral.track_orders('public.audit_orders', 'customer_id', 'total',
	status_column => 'status', ordered_at_column => 'placed_at');

-- Referee $5, referrer 10% up to $20; a budget of $100.
CREATE TEMP TABLE t AS SELECT referral.create_program('Audited', starts_at => '2026-01-01',
	budget => 100) AS p;
SELECT referral.add_reward((SELECT p FROM t), 'referee', fixed => 5);
SELECT referral.add_reward((SELECT p FROM t), 'referrer', percent => 10, cap => 20);
SELECT referral.redeem(referral.issue_code((SELECT p FROM t), 'ann'), c, at => '2026-02-01')
  FROM unnest(ARRAY['bo', 'cy', 'di']) c;

-- bo and cy buy: two conversions, 4 rewards (5 + 8, 5 + 4).
INSERT INTO public.audit_orders VALUES (1, 'bo', 80, 'paid', '2026-02-02'), (2, 'cy', 40, 'paid', '2026-02-03');
SELECT is((SELECT count(*) FROM referral.reward), 4::bigint, 'two orders created four rewards');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty on a consistent ledger');

-- Triggers off: the order is deleted behind the extension's back.
SET LOCAL session_replication_role = replica;
DELETE FROM public.audit_orders WHERE id = 1;
SET LOCAL session_replication_role = origin;
SELECT results_eq($$SELECT problem, detail FROM referral.audit()$$,
	$$VALUES ('order_not_paid'::text, format('order 1 of public.audit_orders (referral %s) earned rewards but is deleted',
	                                         (SELECT id FROM referral.referral WHERE referee = 'bo')))$$,
	'a deleted order that still holds rewards');
SET LOCAL session_replication_role = replica;
INSERT INTO public.audit_orders VALUES (1, 'bo', 80, 'paid', '2026-02-02');
SET LOCAL session_replication_role = origin;

-- Triggers off: di's qualifying order never reached the extension.
SET LOCAL session_replication_role = replica;
INSERT INTO public.audit_orders VALUES (3, 'di', 50, 'paid', '2026-02-04');
SET LOCAL session_replication_role = origin;
SELECT results_eq($$SELECT problem, detail FROM referral.audit()$$,
	$$VALUES ('missed_conversion'::text, format('referral %s is pending although order 3 qualifies',
	                                            (SELECT id FROM referral.referral WHERE referee = 'di')))$$,
	'a missed conversion');
SET LOCAL session_replication_role = replica;
DELETE FROM public.audit_orders WHERE id = 3;
SET LOCAL session_replication_role = origin;

-- A reward edited by hand above what its rule gives (10% of 80 = 8.00).
UPDATE referral.reward SET amount = 9 WHERE kind = 'referrer' AND order_ref = '1';
SELECT results_eq($$SELECT problem FROM referral.audit()$$,
	$$VALUES ('reward_above_rule'::text)$$, 'a reward above its rule');
UPDATE referral.reward SET amount = 8 WHERE kind = 'referrer' AND order_ref = '1';

-- The budget of 100 passed (22 created, plus 90 by hand).
UPDATE referral.program SET budget = 20 WHERE id = (SELECT p FROM t);
SELECT results_eq($$SELECT problem, detail FROM referral.audit()$$,
	$$VALUES ('budget_exceeded'::text, format('program %s has created 22.00 of rewards, over its budget of 20', (SELECT p FROM t)))$$,
	'rewards over the budget');
UPDATE referral.program SET budget = 100 WHERE id = (SELECT p FROM t);

-- A refund with the triggers off: the order is refunded, its rewards stand.
SET LOCAL session_replication_role = replica;
UPDATE public.audit_orders SET status = 'refunded' WHERE id = 2;
SET LOCAL session_replication_role = origin;
SELECT results_eq($$SELECT problem FROM referral.audit()$$,
	$$VALUES ('order_not_paid'::text)$$, 'a refunded order whose rewards stand');
SET LOCAL session_replication_role = replica;
UPDATE public.audit_orders SET status = 'paid' WHERE id = 2;
SET LOCAL session_replication_role = origin;

-- A paid order moved on to a status that is neither paid nor reversed keeps its
-- rewards, in the trigger and in audit() alike.
UPDATE public.audit_orders SET status = 'shipped' WHERE id = 2;
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'an order shipped after it was paid is no problem');
UPDATE public.audit_orders SET status = 'paid' WHERE id = 2;

-- A clawback whose paid reward does not exist.
INSERT INTO referral.reward (tenant, program_id, beneficiary, referral_id, level, kind, reward_type,
                             amount, currency, status, approved_at, clawback_of)
SELECT 'default', (SELECT p FROM t), 'ann', (SELECT id FROM referral.referral WHERE referee = 'bo'), 1,
       'clawback', 'credit', -8, 'USD', 'approved', now(), 999999;
SELECT results_eq($$SELECT problem FROM referral.audit()$$,
	$$VALUES ('clawback_without_reward'::text)$$, 'a clawback of no paid reward');
DELETE FROM referral.reward WHERE clawback_of = 999999;

-- A reward moved to a program that is not its referral's (reward.program_id has no
-- foreign key of its own: the referral's holds it).
UPDATE referral.reward SET program_id = program_id + 1000
 WHERE id = (SELECT min(id) FROM referral.reward);
SELECT results_eq($$SELECT problem, detail FROM referral.audit()$$,
	$$SELECT 'reward_program_mismatch'::text,
	         format('reward %s is in program %s, but its referral %s is in program %s',
	                w.id, w.program_id, w.referral_id, w.program_id - 1000)
	    FROM referral.reward w WHERE w.id = (SELECT min(id) FROM referral.reward)$$,
	'a reward whose program is not its referral''s');
UPDATE referral.reward SET program_id = program_id - 1000
 WHERE id = (SELECT min(id) FROM referral.reward);

-- A reward whose referral does not exist (reward.referral_id has no foreign key: a
-- trigger keeps referrals with rewards, and audit() checks).
SELECT id AS first_reward, referral_id AS first_referral FROM referral.reward ORDER BY id LIMIT 1 \gset
UPDATE referral.reward SET referral_id = -1 WHERE id = :first_reward;
SELECT results_eq($$SELECT problem, detail FROM referral.audit()$$,
	$$SELECT 'reward_without_referral'::text,
	         format('reward %s of %s names referral -1, which does not exist', w.id, w.beneficiary)
	    FROM referral.reward w WHERE w.id = $$ || :first_reward,
	'a reward whose referral does not exist');
UPDATE referral.reward SET referral_id = :first_referral WHERE id = :first_reward;

-- What the foreign key refused, the trigger refuses: a referral with rewards stays.
SELECT throws_ok($$DELETE FROM referral.referral WHERE referee = 'bo'$$, '23503',
	format('referral %s has rewards and cannot be deleted', (SELECT id FROM referral.referral WHERE referee = 'bo')),
	'a referral with rewards cannot be deleted');
SELECT throws_ok($$TRUNCATE referral.referral$$, '23503',
	'referral.referral cannot be truncated while referral.reward has rows', 'nor truncated away');
-- (The block truncates, then fails on purpose so that the truncation is undone.)
SELECT throws_ok($t$DO $do$ BEGIN TRUNCATE referral.reward, referral.referral;
	RAISE EXCEPTION 'truncated' USING ERRCODE = 'P0001'; END $do$$t$, 'P0001', 'truncated',
	'both truncated in one statement, as the foreign key allowed');
DELETE FROM referral.referral WHERE referee = 'di';
SELECT is((SELECT count(*) FROM referral.referral WHERE referee IN ('bo', 'di')), 1::bigint,
	'a referral without rewards can be deleted');

SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty again once every damage is undone');

SELECT * FROM finish();
ROLLBACK;

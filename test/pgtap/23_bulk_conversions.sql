-- Conversions of a whole statement at once (referral._orders_paid): one bulk INSERT in
-- tenant 'set', whose program converts set-based, gives the same referrals, rewards,
-- revenue and events as the same INSERT in tenant 'seq', whose program has a budget
-- too large to cut anything, which sends every conversion through _order_paid one
-- at a time.  The shop has tiers for the referrer (by level) and the referee, a
-- three-level chain, conversions committed before the load, referees that are
-- referrers of others converting in the same load, later orders (revenue), an order
-- below the minimum and a referral past its attribution window.
BEGIN;
SELECT plan(15);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;
SET LOCAL track_functions = 'pl';

CREATE TABLE public.orders_set (id bigint PRIMARY KEY, customer text NOT NULL,
	amount numeric NOT NULL, placed_at timestamptz NOT NULL);
CREATE TABLE public.orders_seq (LIKE public.orders_set INCLUDING ALL);
SELECT referral.track_orders('public.orders_set', 'customer', 'amount',
	ordered_at_column => 'placed_at', tenant => 'set');
SELECT referral.track_orders('public.orders_seq', 'customer', 'amount',
	ordered_at_column => 'placed_at', tenant => 'seq');

-- The same program in both tenants; only 'seq' has a budget.
CREATE FUNCTION pg_temp.program(tenant text, budget numeric) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	p bigint := referral.create_program('Bulk', tenant => tenant, starts_at => '2026-01-01',
		attribution_window => '30 days', min_order_amount => 10, max_depth => 3, budget => budget);
BEGIN
	PERFORM referral.add_reward(p, 'referee', fixed => 5);
	PERFORM referral.add_reward(p, 'referee', fixed => 8, min_conversions => 1);
	PERFORM referral.add_reward(p, 'referrer', percent => 10, cap => 20);
	PERFORM referral.add_reward(p, 'referrer', percent => 20, cap => 50, min_conversions => 2);
	PERFORM referral.add_reward(p, 'referrer', fixed => 30, percent => 1, min_conversions => 3);
	PERFORM referral.add_reward(p, 'referrer', percent => 2, level => 2);
	PERFORM referral.add_reward(p, 'referrer', percent => 3, level => 2, min_conversions => 2);
	PERFORM referral.add_reward(p, 'referrer', fixed => 1, level => 3);
	RETURN p;
END
$$;
CREATE TEMP TABLE prog AS
	SELECT pg_temp.program('set', NULL) AS set_p, pg_temp.program('seq', 1e12) AS seq_p;

-- The same referrals, in the same order, in both tenants.  Customer 2 refers 6 and 7
-- before being referred by 1, so that 2's own referee reward is tiered by
-- conversions of this load; 12 redeems on 2026-01-02 and orders only after the window.
CREATE FUNCTION pg_temp.refer(tenant text, referrer text, referee text, at timestamptz) RETURNS text
LANGUAGE sql AS $$
	SELECT status FROM referral.redeem(
		referral.issue_code((SELECT p.id FROM referral.program p WHERE p.tenant = refer.tenant), referrer),
		referee, at => at)
$$;
SELECT is(string_agg(pg_temp.refer(t, r.referrer, r.referee, '2026-02-01'::timestamptz + r.n * interval '1 hour'),
                     ',' ORDER BY t, r.n),
	'pending,pending,pending,pending,pending,pending,pending,pending,pending,pending,pending,'
	|| 'pending,pending,pending,pending,pending,pending,pending,pending,pending,pending,pending',
	'eleven referrals accepted in each tenant')
  FROM (VALUES ('set'), ('seq')) AS tenants(t),
       (VALUES (1, '2', '6'), (2, '2', '7'), (3, '1', '2'), (4, '1', '3'), (5, '1', '4'), (6, '1', '5'),
               (7, '2', '8'), (8, '6', '9'), (9, '6', '10'), (10, '3', '11'), (11, '1', '13')) AS r(n, referrer, referee);
SELECT is(pg_temp.refer('set', '1', '12', '2026-01-02') || pg_temp.refer('seq', '1', '12', '2026-01-02'),
	'pendingpending', 'a twelfth referral, redeemed long before its orders');

-- Before the load: 3 converts, 1's first conversion.
INSERT INTO public.orders_set VALUES (1, '3', 50, '2026-02-02');
INSERT INTO public.orders_seq VALUES (1, '3', 50, '2026-02-02');

-- The load: first orders of 2, 4..11 and 13 in one statement, shuffled, with later
-- orders of 2 and 6, an order of 5 below the minimum before its qualifying one, an
-- order of 12 past its window and one of a customer nobody referred.
CREATE TEMP TABLE load (id bigint, customer text, amount numeric, placed_at timestamptz);
INSERT INTO load VALUES
	(10, '9', 120, '2026-02-05 10:00'), (11, '2', 80, '2026-02-05 09:00'),
	(12, '6', 200, '2026-02-05 08:00'), (13, '7', 64.35, '2026-02-05 07:00'),
	(14, '4', 333.33, '2026-02-05 11:00'), (15, '5', 9.99, '2026-02-05 06:00'),
	(16, '5', 45.55, '2026-02-05 12:00'), (17, '8', 99.99, '2026-02-05 13:00'),
	(18, '10', 1000, '2026-02-05 05:00'), (19, '11', 15, '2026-02-05 14:00'),
	(20, '2', 70, '2026-02-06'), (21, '6', 10, '2026-02-07'), (22, '12', 500, '2026-02-05'),
	(23, 'nobody', 100, '2026-02-05'), (24, '13', 19.99, '2026-02-05 15:00');
CREATE FUNCTION pg_temp.order_paid_calls() RETURNS bigint LANGUAGE sql AS $$
	SELECT COALESCE(sum(calls), 0)::bigint FROM pg_stat_xact_user_functions
	 WHERE schemaname = 'referral' AND funcname = '_order_paid'
$$;
CREATE TEMP TABLE calls AS SELECT pg_temp.order_paid_calls() AS before_set;
INSERT INTO public.orders_set SELECT * FROM load ORDER BY id;
SELECT is(pg_temp.order_paid_calls() - (SELECT before_set FROM calls), 0::bigint,
	'the load in tenant set converts without a call of _order_paid');
UPDATE calls SET before_set = pg_temp.order_paid_calls();
INSERT INTO public.orders_seq SELECT * FROM load ORDER BY id;
SELECT is(pg_temp.order_paid_calls() - (SELECT before_set FROM calls), 10::bigint,
	'the load in tenant seq calls _order_paid once per conversion (the budget)');

CREATE FUNCTION pg_temp.rewards(tenant text) RETURNS TABLE (beneficiary text, referee text, level int,
	kind text, amount numeric, status text, order_ref text, min_conversions int)
LANGUAGE sql AS $$
	SELECT w.beneficiary, r.referee, w.level, w.kind, w.amount, w.status, w.order_ref, x.min_conversions
	  FROM referral.reward w JOIN referral.referral r ON r.id = w.referral_id
	  JOIN referral.reward_rule x ON x.id = w.rule_id
	 WHERE w.tenant = rewards.tenant
$$;
SELECT set_eq($$SELECT * FROM pg_temp.rewards('set')$$, $$SELECT * FROM pg_temp.rewards('seq')$$,
	'the same rewards, tiers included');
SELECT is((SELECT count(*) FROM pg_temp.rewards('set')), 30::bigint,
	'11 conversions: 11 referee rewards and 19 referrer rewards by level');
SELECT results_eq($$SELECT status, converted_at, converting_order FROM referral.referral
                     WHERE tenant = 'set' ORDER BY referee$$,
	$$SELECT status, converted_at, converting_order FROM referral.referral
	   WHERE tenant = 'seq' ORDER BY referee$$,
	'the same referrals converted, at the same orders and times');
SELECT is((SELECT string_agg(referee, ',' ORDER BY referee) FROM referral.referral
            WHERE tenant = 'set' AND status = 'pending'), '12',
	'all but the referral past its window converted');
SELECT set_eq($$SELECT order_ref, referral_id - (SELECT min(id) FROM referral.referral WHERE tenant = 'set'),
                       amount, ordered_at, converting FROM referral.attributed_order WHERE tenant = 'set'$$,
	$$SELECT order_ref, referral_id - (SELECT min(id) FROM referral.referral WHERE tenant = 'seq'),
	         amount, ordered_at, converting FROM referral.attributed_order WHERE tenant = 'seq'$$,
	'the same orders attributed (converting and revenue)');
SELECT results_eq($$SELECT kind, payload - ARRAY['reward_id', 'referral_id', 'program_id'] FROM referral.event
                     WHERE tenant = 'set' AND kind IN ('reward_created', 'referral_converted') ORDER BY id$$,
	$$SELECT kind, payload - ARRAY['reward_id', 'referral_id', 'program_id'] FROM referral.event
	   WHERE tenant = 'seq' AND kind IN ('reward_created', 'referral_converted') ORDER BY id$$,
	'the same events, in the same order');

-- Figures by hand.  Referrer 2 converts 6 and 7 (referral ids below 2's own) and 8 in
-- the load: 6 at 10% of 200, cut to 20; 7 at 10% of 64.35 = 6.44 (one conversion
-- before); 8 at 20% of 99.99 = 20.00 (two before).
SELECT results_eq($$SELECT referee, amount, min_conversions FROM pg_temp.rewards('set')
                     WHERE beneficiary = '2' AND kind = 'referrer' AND level = 1 ORDER BY referee$$,
	$$VALUES ('6'::text, 20.00::numeric, 0), ('7', 6.44, 0), ('8', 20.00, 2)$$,
	'referrer 2: tiers counted within the load, by referral id');
-- 2's own referee reward: 6 and 7 converted in the load with smaller referral ids, so
-- 2 has conversions as a referrer: the tier from 1 (8.00).
SELECT results_eq($$SELECT amount, min_conversions FROM pg_temp.rewards('set')
                     WHERE beneficiary = '2' AND kind = 'referee'$$,
	$$VALUES (8.00::numeric, 1)$$,
	'referee 2: tiered by the conversions of 2''s own referees before it in the load');
-- Referrer 1: 3 before the load (10% of 50); then 2 (1 before: 10% of 80 = 8.00),
-- 4 (2 before: 20% of 333.33, cut to 50.00), 5 (3 before: 30 + 0.4555 = 30.46),
-- 13 (4 before: 30 + 0.1999 = 30.20).
SELECT results_eq($$SELECT referee, amount, min_conversions FROM pg_temp.rewards('set')
                     WHERE beneficiary = '1' AND kind = 'referrer' AND level = 1 ORDER BY amount$$,
	$$VALUES ('3'::text, 5.00::numeric, 0), ('2', 8.00, 0), ('13', 30.20, 3), ('5', 30.46, 3), ('4', 50.00, 2)$$,
	'referrer 1: a conversion before the load counts');
-- Level 2 for 1, tiered by 1's conversions as a referrer: 6 (referral 1: 3 before,
-- 2% of 200 = 4.00), 7 (2% of 64.35 = 1.29), 8 (referral 7: 3, 2, 4 and 5 before,
-- 3% of 99.99 = 3.00).
SELECT results_eq($$SELECT referee, amount, min_conversions FROM pg_temp.rewards('set')
                     WHERE beneficiary = '1' AND level = 2 AND referee IN ('6', '7', '8') ORDER BY referee$$,
	$$VALUES ('6'::text, 4.00::numeric, 0), ('7', 1.29, 0), ('8', 3.00, 2)$$,
	'level 2: tiered by the conversions of this load before it');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit finds the ledger consistent');

SELECT * FROM finish();
ROLLBACK;

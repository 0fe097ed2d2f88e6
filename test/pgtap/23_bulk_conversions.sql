-- Conversions of a whole statement at once (referral._convert_orders): one bulk INSERT
-- in tenant 'set', whose program converts set-based, gives the same referrals,
-- rewards, revenue and events as the same INSERT in tenant 'seq', whose program has a
-- budget too large to cut anything, which sends every conversion through _order_paid
-- one at a time.  The shop has tiers for the referrer (by level) and the referee, a
-- three-level chain, an A/B variant with a rule of its own, conversions committed
-- before the load, referees that are referrers of others converting in the same load,
-- later orders (revenue), an order below the minimum, a referral past its attribution
-- window, and in the same statement the orders of a second program with a budget,
-- which go one by one in both tenants.  Then nine pending orders are paid by one
-- UPDATE.
BEGIN;
SELECT plan(19);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;
SET LOCAL track_functions = 'pl';

CREATE TABLE public.orders_set (id bigint PRIMARY KEY, customer text NOT NULL,
	amount numeric NOT NULL, placed_at timestamptz NOT NULL, status text NOT NULL DEFAULT 'paid');
CREATE TABLE public.orders_seq (LIKE public.orders_set INCLUDING ALL);
SELECT referral.track_orders('public.orders_set', 'customer', 'amount', status_column => 'status',
	ordered_at_column => 'placed_at', tenant => 'set');
SELECT referral.track_orders('public.orders_seq', 'customer', 'amount', status_column => 'status',
	ordered_at_column => 'placed_at', tenant => 'seq');

-- The same programs in both tenants; in 'seq' Bulk has a budget too.  Every referrer
-- gets the one variant, whose level-3 rule replaces the variant-less one.
CREATE FUNCTION pg_temp.programs(tenant text, budget numeric) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	p bigint := referral.create_program('Bulk', tenant => tenant, starts_at => '2026-01-01',
		attribution_window => '30 days', min_order_amount => 10, max_depth => 3, budget => budget);
	capped bigint := referral.create_program('Capped', tenant => tenant, starts_at => '2026-01-01',
		budget => 1000);
BEGIN
	PERFORM referral.add_variant(p, 'only');
	PERFORM referral.add_reward(p, 'referee', fixed => 5);
	PERFORM referral.add_reward(p, 'referee', fixed => 8, min_conversions => 1);
	PERFORM referral.add_reward(p, 'referrer', percent => 10, cap => 20);
	PERFORM referral.add_reward(p, 'referrer', percent => 20, cap => 50, min_conversions => 2);
	PERFORM referral.add_reward(p, 'referrer', fixed => 30, percent => 1, min_conversions => 3);
	PERFORM referral.add_reward(p, 'referrer', percent => 2, level => 2);
	PERFORM referral.add_reward(p, 'referrer', percent => 3, level => 2, min_conversions => 2);
	PERFORM referral.add_reward(p, 'referrer', fixed => 1, level => 3);
	PERFORM referral.add_reward(p, 'referrer', fixed => 2, level => 3, variant => 'only');
	PERFORM referral.add_reward(capped, 'referrer', fixed => 4);
END
$$;
SELECT pg_temp.programs('set', NULL), pg_temp.programs('seq', 1e12);

-- The same referrals, in the same order, in both tenants.  Customer 2 refers 6 and 7
-- before being referred by 1, so that 2's own referee reward is tiered by
-- conversions of this load; 12 redeems on 2026-01-02 and orders only after the window.
CREATE FUNCTION pg_temp.refer(tenant text, referrer text, referee text, at timestamptz,
	program text DEFAULT 'Bulk') RETURNS text
LANGUAGE sql AS $$
	SELECT status FROM referral.redeem(
		referral.issue_code((SELECT p.id FROM referral.program p
		                      WHERE p.tenant = refer.tenant AND p.name = refer.program), referrer),
		referee, at => at)
$$;
SELECT is(string_agg(pg_temp.refer(t, r.referrer, r.referee, '2026-02-01'::timestamptz + r.n * interval '1 hour',
                                   r.program), ',' ORDER BY t, r.n),
	'pending,pending,pending,pending,pending,pending,pending,pending,pending,pending,pending,pending,pending,'
	|| 'pending,pending,pending,pending,pending,pending,pending,pending,pending,pending,pending,pending,pending',
	'thirteen referrals accepted in each tenant')
  FROM (VALUES ('set'), ('seq')) AS tenants(t),
       (VALUES (1, '2', '6', 'Bulk'), (2, '2', '7', 'Bulk'), (3, '1', '2', 'Bulk'), (4, '1', '3', 'Bulk'),
               (5, '1', '4', 'Bulk'), (6, '1', '5', 'Bulk'), (7, '2', '8', 'Bulk'), (8, '6', '9', 'Bulk'),
               (9, '6', '10', 'Bulk'), (10, '3', '11', 'Bulk'), (11, '1', '13', 'Bulk'),
               (12, '1', '20', 'Capped'), (13, '1', '21', 'Capped')) AS r(n, referrer, referee, program);
SELECT is(pg_temp.refer('set', '1', '12', '2026-01-02') || pg_temp.refer('seq', '1', '12', '2026-01-02'),
	'pendingpending', 'a referral redeemed long before its orders');

-- Before the load: 3 converts, 1's first conversion.
INSERT INTO public.orders_set VALUES (1, '3', 50, '2026-02-02');
INSERT INTO public.orders_seq VALUES (1, '3', 50, '2026-02-02');

-- The load: first orders of 2, 4..11 and 13 in one statement, shuffled, with later
-- orders of 2 and 6, an order of 5 below the minimum before its qualifying one, an
-- order of 12 past its window, one of a customer nobody referred, and the first
-- orders of 20 and 21 in the capped program.
CREATE TEMP TABLE load (id bigint, customer text, amount numeric, placed_at timestamptz);
INSERT INTO load VALUES
	(10, '9', 120, '2026-02-05 10:00'), (11, '2', 80, '2026-02-05 09:00'),
	(12, '6', 200, '2026-02-05 08:00'), (13, '7', 64.35, '2026-02-05 07:00'),
	(14, '4', 333.33, '2026-02-05 11:00'), (15, '5', 9.99, '2026-02-05 06:00'),
	(16, '5', 45.55, '2026-02-05 12:00'), (17, '8', 99.99, '2026-02-05 13:00'),
	(18, '10', 1000, '2026-02-05 05:00'), (19, '11', 15, '2026-02-05 14:00'),
	(20, '2', 70, '2026-02-06'), (21, '6', 10, '2026-02-07'), (22, '12', 500, '2026-02-05'),
	(23, 'nobody', 100, '2026-02-05'), (24, '13', 19.99, '2026-02-05 15:00'),
	(25, '20', 30, '2026-02-05 16:00'), (26, '21', 30, '2026-02-05 17:00');
CREATE FUNCTION pg_temp.order_paid_calls() RETURNS bigint LANGUAGE sql AS $$
	SELECT COALESCE(sum(calls), 0)::bigint FROM pg_stat_xact_user_functions
	 WHERE schemaname = 'referral' AND funcname = '_order_paid'
$$;
CREATE TEMP TABLE calls AS SELECT pg_temp.order_paid_calls() AS before;
INSERT INTO public.orders_set (id, customer, amount, placed_at) SELECT * FROM load ORDER BY id;
SELECT is(pg_temp.order_paid_calls() - (SELECT before FROM calls), 2::bigint,
	'the load in tenant set converts Bulk set-based; only the two capped conversions go one by one');
UPDATE calls SET before = pg_temp.order_paid_calls();
INSERT INTO public.orders_seq (id, customer, amount, placed_at) SELECT * FROM load ORDER BY id;
SELECT is(pg_temp.order_paid_calls() - (SELECT before FROM calls), 12::bigint,
	'the load in tenant seq calls _order_paid once per conversion (the budget)');

-- Nine referees of 13, whose orders are placed pending and then paid by one UPDATE.
SELECT is(count(*) FILTER (WHERE pg_temp.refer(t, '13', r::text, '2026-02-10') = 'pending'), 18::bigint,
	'nine more referrals of 13 in each tenant')
  FROM (VALUES ('set'), ('seq')) AS tenants(t), generate_series(30, 38) AS r;
INSERT INTO public.orders_set SELECT 100 + r, r::text, 10 * r, '2026-02-11', 'pending' FROM generate_series(30, 38) AS r;
INSERT INTO public.orders_seq SELECT 100 + r, r::text, 10 * r, '2026-02-11', 'pending' FROM generate_series(30, 38) AS r;
UPDATE calls SET before = pg_temp.order_paid_calls();
UPDATE public.orders_set SET status = 'paid' WHERE id BETWEEN 130 AND 138;
SELECT is(pg_temp.order_paid_calls() - (SELECT before FROM calls), 0::bigint,
	'an UPDATE that pays nine orders in tenant set converts them set-based');
UPDATE public.orders_seq SET status = 'paid' WHERE id BETWEEN 130 AND 138;

CREATE FUNCTION pg_temp.rewards(tenant text) RETURNS TABLE (program text, beneficiary text, referee text,
	level int, kind text, amount numeric, status text, order_ref text, min_conversions int, variant text)
LANGUAGE sql AS $$
	SELECT p.name, w.beneficiary, r.referee, w.level, w.kind, w.amount, w.status, w.order_ref,
	       x.min_conversions, x.variant
	  FROM referral.reward w JOIN referral.referral r ON r.id = w.referral_id
	  JOIN referral.reward_rule x ON x.id = w.rule_id
	  JOIN referral.program p ON p.id = w.program_id
	 WHERE w.tenant = rewards.tenant
$$;
SELECT set_eq($$SELECT * FROM pg_temp.rewards('set')$$, $$SELECT * FROM pg_temp.rewards('seq')$$,
	'the same rewards, tiers and variant rules included');
-- 11 Bulk conversions (11 referee rewards, 19 referrer rewards by level), 2 capped
-- ones (2 referrer rewards), 9 paid by the UPDATE (9 referee, 9 for 13, 9 for 1).
SELECT is((SELECT count(*) FROM pg_temp.rewards('set')), 59::bigint, 'every reward is there');
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
                     WHERE program = 'Bulk' AND beneficiary = '1' AND kind = 'referrer' AND level = 1
                     ORDER BY amount$$,
	$$VALUES ('3'::text, 5.00::numeric, 0), ('2', 8.00, 0), ('13', 30.20, 3), ('5', 30.46, 3), ('4', 50.00, 2)$$,
	'referrer 1: a conversion before the load counts');
-- Level 2 for 1, tiered by 1's conversions as a referrer: 6 (referral 1: 3 before,
-- 2% of 200 = 4.00), 7 (2% of 64.35 = 1.29), 8 (referral 7: 3, 2, 4 and 5 before,
-- 3% of 99.99 = 3.00).
SELECT results_eq($$SELECT referee, amount, min_conversions FROM pg_temp.rewards('set')
                     WHERE beneficiary = '1' AND level = 2 AND referee IN ('6', '7', '8') ORDER BY referee$$,
	$$VALUES ('6'::text, 4.00::numeric, 0), ('7', 1.29, 0), ('8', 3.00, 2)$$,
	'level 2: tiered by the conversions of this load before it');
-- Level 3 (9 and 10, through 6 and 2 to 1): the variant's rule, 2.00, not the
-- variant-less 1.00.
SELECT results_eq($$SELECT referee, amount, variant FROM pg_temp.rewards('set') WHERE level = 3 ORDER BY referee$$,
	$$VALUES ('10'::text, 2.00::numeric, 'only'::text), ('9', 2.00, 'only')$$,
	'level 3: the variant''s own rule');
-- Tiers only ask whether a count reaches a threshold: 1's five conversions in Bulk
-- are counted up to the limit a caller gives (the top tier), or all without one.
SELECT is(ARRAY[referral._conversions('set', p.id, '1', 3), referral._conversions('set', p.id, '1', NULL)],
	ARRAY[3, 5]::bigint[], 'a referrer''s conversions are counted up to the limit given')
  FROM referral.program p WHERE p.tenant = 'set' AND p.name = 'Bulk';
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit finds the ledger consistent');

SELECT * FROM finish();
ROLLBACK;

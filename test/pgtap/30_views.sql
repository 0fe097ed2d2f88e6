-- The analyst views and participant_summary: every column of every view on a dataset
-- built through the public API (codes, clicks, redeems, orders in tracked tables,
-- approve_due, mark_paid, refunds), with every figure worked out by hand below.
BEGIN;
SELECT plan(41);
SET LOCAL TimeZone = 'UTC';

-- Shapes: the columns and types of SPEC.md.
CREATE FUNCTION pg_temp.columns_of(rel regclass) RETURNS TABLE (name name, type text)
LANGUAGE sql AS $$
	SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
	 WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
$$;
SELECT results_eq($$SELECT * FROM pg_temp.columns_of('referral.program_stats')$$,
	$$VALUES ('program_id'::name, 'bigint'), ('program', 'text'), ('clicks', 'bigint'), ('referrals', 'bigint'),
	         ('rejected', 'bigint'), ('conversions', 'bigint'), ('conversion_rate', 'double precision'),
	         ('revenue', 'numeric'), ('reward_cost', 'numeric'), ('cost_per_acquisition', 'numeric'),
	         ('roi', 'double precision'), ('k_factor', 'double precision')$$,
	'program_stats columns');
SELECT results_eq($$SELECT * FROM pg_temp.columns_of('referral.referrer_stats')$$,
	$$VALUES ('program_id'::name, 'bigint'), ('customer', 'text'), ('code', 'referral.referral_code'),
	         ('variant', 'text'), ('tier', 'integer'), ('clicks', 'bigint'), ('referrals', 'bigint'),
	         ('conversions', 'bigint'), ('conversion_rate', 'double precision'), ('revenue', 'numeric'),
	         ('rewards_pending', 'numeric'), ('rewards_approved', 'numeric'), ('rewards_paid', 'numeric')$$,
	'referrer_stats columns');
SELECT results_eq($$SELECT * FROM pg_temp.columns_of('referral.leaderboard')$$,
	$$VALUES ('program_id'::name, 'bigint'), ('rank', 'bigint'), ('customer', 'text'),
	         ('conversions', 'bigint'), ('revenue', 'numeric'), ('rewards', 'numeric')$$,
	'leaderboard columns');
SELECT results_eq($$SELECT * FROM pg_temp.columns_of('referral.reward_balance')$$,
	$$VALUES ('tenant'::name, 'text'), ('customer', 'text'), ('currency', 'text'), ('pending', 'numeric'),
	         ('approved', 'numeric'), ('paid', 'numeric'), ('reversed', 'numeric'), ('spent', 'numeric')$$,
	'reward_balance columns');
SELECT results_eq($$SELECT * FROM pg_temp.columns_of('referral.variant_stats')$$,
	$$VALUES ('program_id'::name, 'bigint'), ('variant', 'text'), ('referrers', 'bigint'), ('referrals', 'bigint'),
	         ('conversions', 'bigint'), ('conversion_rate', 'double precision'), ('revenue', 'numeric'),
	         ('reward_cost', 'numeric'), ('p_value', 'double precision')$$,
	'variant_stats columns');
SELECT results_eq($$SELECT * FROM pg_temp.columns_of('referral.daily_stats')$$,
	$$VALUES ('program_id'::name, 'bigint'), ('day', 'date'), ('clicks', 'bigint'), ('referrals', 'bigint'),
	         ('conversions', 'bigint'), ('revenue', 'numeric'), ('reward_cost', 'numeric')$$,
	'daily_stats columns');
SELECT results_eq($$SELECT * FROM pg_temp.columns_of('referral.suspicious_referrals')$$,
	$$VALUES ('referral_id'::name, 'bigint'), ('program_id', 'bigint'), ('referrer', 'text'),
	         ('referee', 'text'), ('signal', 'text'), ('detail', 'text')$$,
	'suspicious_referrals columns');
SELECT is(pg_get_function_result('referral.participant_summary(bigint, text)'::regprocedure),
	'TABLE(code referral.referral_code, variant text, clicks bigint, referrals bigint, conversions bigint, tier integer, next_tier_at integer, rewards_pending numeric, rewards_approved numeric, rewards_paid numeric)',
	'participant_summary returns the columns of SPEC.md');
SELECT is_empty($$SELECT c.relname FROM pg_class c
	WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind = 'v' AND obj_description(c.oid, 'pg_class') IS NULL$$,
	'every view has a comment');
SELECT results_eq($$SELECT p.prosecdef, p.proconfig = '{"search_path=pg_catalog, pg_temp"}', p.provolatile FROM pg_proc p
	WHERE p.oid = 'referral.participant_summary(bigint, text)'::regprocedure$$,
	$$VALUES (true, true, 's'::"char")$$,
	'participant_summary is a STABLE SECURITY DEFINER with a safe search_path');

-- The p-value on its own: 1/4 against 2/2 has z = sqrt(3) (pooled 1/2,
-- se = sqrt(1/4 * (1/4 + 1/2)) = sqrt(3)/4, difference 3/4), p = 2 (1 - Phi(sqrt 3));
-- 50/1000 against 70/1000 is just above 5%.  Reference values from mpmath.
SELECT ok(abs(referral.two_proportion_p_value(1, 4, 2, 2) - 0.083264516663550401855) < 1e-12
      AND abs(referral.two_proportion_p_value(50, 1000, 70, 1000) - 0.059685605532426280337) < 1e-12
      AND abs(referral.two_proportion_p_value(70, 1000, 50, 1000) - 0.059685605532426280337) < 1e-12
      AND referral.two_proportion_p_value(5, 100, 5, 100) = 1,
	'two_proportion_p_value matches known values');
SELECT is(ARRAY[referral.two_proportion_p_value(0, 0, 1, 1), referral.two_proportion_p_value(0, 5, 0, 7),
                referral.two_proportion_p_value(3, 3, 2, 2), referral.two_proportion_p_value(NULL, 3, 2, 2)],
	ARRAY[NULL, NULL, NULL, NULL]::double precision[],
	'no p-value for an empty sample or a pooled rate of 0 or 1');
SELECT throws_ok($$SELECT referral.two_proportion_p_value(5, 4, 1, 2)$$, '22023',
	'successes_a must be between 0 and trials_a (got 5 of 4)', 'more successes than trials is an error');

------------------------------------------------------------------------------
-- Program A (tenant default, USD): referee $5; referrer 10%, from 2 conversions 20%,
-- from 10 conversions $50 (tiers at 0, 2, 10); a $25 milestone at 2 conversions;
-- orders from $10; recurring orders for 90 days; 5 referrals a day at most.
CREATE TEMP TABLE t AS SELECT
	referral.create_program('Views A', starts_at => '2030-01-01', hold_period => '7 days',
		min_order_amount => 10, recurring_window => '90 days', daily_referral_limit => 5) AS a,
	referral.create_program('Views B', tenant => 'shop-b', starts_at => '2030-01-01',
		hold_period => '7 days', currency => 'EUR') AS b,
	referral.create_program('Views C') AS c,
	referral.create_program('Views D', tenant => 'split') AS d;
SELECT referral.add_reward((SELECT a FROM t), 'referee', fixed => 5);
SELECT referral.add_reward((SELECT a FROM t), 'referrer', percent => 10);
SELECT referral.add_reward((SELECT a FROM t), 'referrer', percent => 20, min_conversions => 2);
SELECT referral.add_reward((SELECT a FROM t), 'referrer', fixed => 50, min_conversions => 10);
SELECT referral.add_milestone((SELECT a FROM t), 2, 25);

CREATE TABLE public.views_orders (
	id			bigint PRIMARY KEY,
	customer	text NOT NULL,
	total		numeric(12, 2) NOT NULL,
	status		text NOT NULL DEFAULT 'paid',
	placed_at	timestamptz NOT NULL
);
SELECT referral.track_orders('public.views_orders', 'customer', 'total',
	status_column => 'status', ordered_at_column => 'placed_at');

-- Codes: ann, ben and cid (cid never refers anyone).
SELECT referral.issue_code((SELECT a FROM t), 'ann', vanity => 'ANNA', device => 'dev-ann');
SELECT referral.issue_code((SELECT a FROM t), 'ben', vanity => 'BENJ');
SELECT referral.issue_code((SELECT a FROM t), 'cid', vanity => 'CIDX');

-- Clicks: ann 3 (March 1st 10:00 and 11:00, March 2nd 09:00), ben 1 (March 1st 23:30
-- UTC, which is March 2nd 08:30 in Tokyo).
SELECT referral.record_click('ANNA', at => '2030-03-01 10:00');
SELECT referral.record_click('ANNA', at => '2030-03-01 11:00');
SELECT referral.record_click('ANNA', at => '2030-03-02 09:00');
SELECT referral.record_click('BENJ', at => '2030-03-01 23:30');

-- Redeems.  ann: u1 10:05, u2 10:20, u3 11:05 (exactly an hour after u1), u4 12:30, all
-- from 10.0.0.1 on March 1st (4 of the 5 allowed: 80%).  ben: u5 and u6 on March 2nd
-- from one device; u7 on March 3rd, after a rejected try of ann's code with ann's
-- device.  ann's try of her own code is rejected too.
CREATE FUNCTION pg_temp.redeem(code text, customer text, at timestamptz, ip inet DEFAULT NULL, device text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
	SELECT status || COALESCE(':' || reason, '') FROM referral.redeem(code::referral.referral_code, customer, ip => ip, device => device, at => at)
$$;
SELECT is(ARRAY[pg_temp.redeem('ANNA', 'u1', '2030-03-01 10:05', '10.0.0.1'),
                pg_temp.redeem('ANNA', 'u2', '2030-03-01 10:20', '10.0.0.1'),
                pg_temp.redeem('ANNA', 'u3', '2030-03-01 11:05', '10.0.0.1'),
                pg_temp.redeem('ANNA', 'u4', '2030-03-01 12:30', '10.0.0.1'),
                pg_temp.redeem('BENJ', 'u5', '2030-03-02 09:30', device => 'dev-x'),
                pg_temp.redeem('BENJ', 'u6', '2030-03-02 10:00', device => 'dev-x'),
                pg_temp.redeem('ANNA', 'u7', '2030-03-03 08:00', device => 'dev-ann'),
                pg_temp.redeem('BENJ', 'u7', '2030-03-03 09:00'),
                pg_temp.redeem('ANNA', 'ann', '2030-03-03 10:00')],
	ARRAY['pending', 'pending', 'pending', 'pending', 'pending', 'pending', 'rejected:self_referral',
	      'pending', 'rejected:self_referral'],
	'program A: seven accepted referrals, two rejected attempts');
CREATE FUNCTION pg_temp.rid(referee text) RETURNS bigint LANGUAGE sql AS $$
	SELECT id FROM referral.referral WHERE tenant = 'default' AND referee = $1 AND status <> 'rejected'
$$;

-- Orders, first batch:
--   1: u1 100.00 on 03-05 converts u1: u1 5.00, ann (0 conversions) 10% = 10.00
--   2: u2  50.00 on 03-06 converts u2: u2 5.00, ann (1) 10% = 5.00; ann reaches 2: milestone 25.00
--   3: u3 200.00 on 03-07 converts u3: u3 5.00, ann (2) 20% = 40.00
--   5: u5  80.00 on 03-08 converts u5: u5 5.00, ben (0) 10% = 8.00
INSERT INTO public.views_orders (id, customer, total, placed_at) VALUES
	(1, 'u1', 100.00, '2030-03-05'), (2, 'u2', 50.00, '2030-03-06'),
	(3, 'u3', 200.00, '2030-03-07'), (5, 'u5', 80.00, '2030-03-08');
-- All 9 rewards approved after the 7-day hold; those of orders 1 and 5 paid.
SELECT is(referral.approve_due(now() + '8 days'), 9::bigint, 'nine rewards approved');
SELECT is(referral.mark_paid(ARRAY(SELECT id FROM referral.reward WHERE order_ref IN ('1', '5')), 'PAY-1'),
	4::bigint, 'the four rewards of orders 1 and 5 paid');
-- Second batch:
--   4: u1 30.00 on 03-10, recurring: ann (3 conversions) 20% = 6.00, pending
--   6: u6  5.00 on 03-10, below the $10 minimum: nothing, not revenue
--   7: u7 60.00 on 03-09 converts u7: u7 5.00, ben (1) 10% = 6.00, pending; ben reaches
--      2 conversions (u5, u7): milestone 25.00, pending
INSERT INTO public.views_orders (id, customer, total, placed_at) VALUES
	(4, 'u1', 30.00, '2030-03-10'), (6, 'u6', 5.00, '2030-03-10'), (7, 'u7', 60.00, '2030-03-09');
-- Refunds: order 5 (paid rewards: clawbacks -5.00 for u5 and -8.00 for ben, approved; u5
-- pending again) and order 7 (pending rewards reversed; u7 pending again, and ben's
-- milestone that u7's conversion reached reversed).
UPDATE public.views_orders SET status = 'refunded' WHERE id IN (5, 7);

-- So program A holds (not reversed): u1 5 paid, ann 10 paid, u2 5, ann 5, ann 25, u3 5,
-- ann 40 approved, u5 5 paid, ben 8 paid, ann 6 pending, clawbacks -8 (ben) and -5
-- (u5) approved: reward_cost = 5+10+5+5+25+5+40+5+8+6-8-5 = 101.00; reversed: u7 5,
-- ben 6 + 25.
-- Revenue: orders 1, 2, 3, 4 = 100 + 50 + 200 + 30 = 380.00.
-- Referrals 7 (u1..u7), rejected 2, conversions 3 (u1, u2, u3).

------------------------------------------------------------------------------
-- Program B (tenant shop-b, EUR), two variants of weight 1: referrer 10%, from 1
-- conversion 20%; variant treat has its own single rule, 15%, which replaces both.
SELECT referral.add_variant((SELECT b FROM t), 'control');
SELECT referral.add_variant((SELECT b FROM t), 'treat');
SELECT referral.add_reward((SELECT b FROM t), 'referrer', percent => 10);
SELECT referral.add_reward((SELECT b FROM t), 'referrer', percent => 20, min_conversions => 1);
SELECT referral.add_reward((SELECT b FROM t), 'referrer', percent => 15, variant => 'treat');
-- The variant is a hash of (program id, customer): take the first two customers b1,
-- b2, ... that land in control and the first in treat.
CREATE TEMP TABLE bn AS SELECT
	(SELECT array_agg(n ORDER BY g) FROM (SELECT g, 'b' || g AS n FROM generate_series(1, 100) g
	  WHERE referral.variant_of((SELECT b FROM t), 'b' || g) = 'control' ORDER BY g LIMIT 2) x) AS ctl,
	(SELECT 'b' || g FROM generate_series(1, 100) g
	  WHERE referral.variant_of((SELECT b FROM t), 'b' || g) = 'treat' ORDER BY g LIMIT 1) AS trt;
SELECT referral.issue_code((SELECT b FROM t), (SELECT ctl[1] FROM bn), vanity => 'CTLONE');
SELECT referral.issue_code((SELECT b FROM t), (SELECT ctl[2] FROM bn), vanity => 'CTLTWO');
SELECT referral.issue_code((SELECT b FROM t), (SELECT trt FROM bn), vanity => 'TRTONE');
-- Control: CTLONE refers c1, c2; CTLTWO refers c3, c4.  Treat: TRTONE refers t1, t2.
SELECT is(ARRAY[pg_temp.redeem('CTLONE', 'c1', '2030-04-01 10:00'), pg_temp.redeem('CTLONE', 'c2', '2030-04-01 10:00'),
                pg_temp.redeem('CTLTWO', 'c3', '2030-04-01 10:00'), pg_temp.redeem('CTLTWO', 'c4', '2030-04-01 10:00'),
                pg_temp.redeem('TRTONE', 't1', '2030-04-01 10:00'), pg_temp.redeem('TRTONE', 't2', '2030-04-01 10:00')],
	ARRAY['pending', 'pending', 'pending', 'pending', 'pending', 'pending'], 'program B: six accepted referrals');
CREATE TABLE public.views_orders_b (LIKE public.views_orders INCLUDING ALL);
SELECT referral.track_orders('public.views_orders_b', 'customer', 'total',
	status_column => 'status', ordered_at_column => 'placed_at', tenant => 'shop-b');
-- c1 100.00 on 04-02: CTLONE (0 conversions, control: the variant-less rules) 10% = 10.00;
-- t1 100.00 on 04-02: TRTONE 15% = 15.00; t2 200.00 on 04-03: TRTONE (1 conversion, but
-- treat's only tier is 0) 15% = 30.00.  All pending.
-- control: 4 referrals, 1 conversion, revenue 100, cost 10; treat: 2, 2, 300, 45.
INSERT INTO public.views_orders_b (id, customer, total, placed_at) VALUES
	(1, 'c1', 100.00, '2030-04-02'), (2, 't1', 100.00, '2030-04-02'), (3, 't2', 200.00, '2030-04-03');

-- Program D (tenant split): variants a and b weighted 1:3, 1000 code holders.
SELECT referral.add_variant((SELECT d FROM t), 'a', 1);
SELECT referral.add_variant((SELECT d FROM t), 'b', 3);
SELECT count(referral.issue_code((SELECT d FROM t), 's' || g)) FROM generate_series(1, 1000) g;

------------------------------------------------------------------------------
-- program_stats.  A: conversion_rate 3/7, cost_per_acquisition 101/3, roi (380-101)/101,
-- k_factor 7 referrals / 3 code holders.  B: 3/6, 55/3, (400-55)/55, 6/3.  C: nothing
-- at all, every rate NULL.  D: 1000 code holders, no referrals: k_factor 0.
SELECT results_eq($$SELECT * FROM referral.program_stats WHERE program_id IN (SELECT unnest(ARRAY[a, b, c, d]) FROM t) ORDER BY program_id$$,
	$$VALUES ((SELECT a FROM t), 'Views A'::text, 4::bigint, 7::bigint, 2::bigint, 3::bigint, 3::float8 / 7,
	          380.00::numeric, 101.00::numeric, 101.00::numeric / 3, ((380.00 - 101.00) / 101.00)::float8, 7::float8 / 3),
	         ((SELECT b FROM t), 'Views B', 0, 6, 0, 3, 0.5, 400.00, 55.00, 55.00 / 3, ((400.00 - 55.00) / 55.00)::float8, 2),
	         ((SELECT c FROM t), 'Views C', 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL),
	         ((SELECT d FROM t), 'Views D', 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, 0)$$,
	'program_stats: every column, division by zero gives NULL');

-- referrer_stats.  ann: tiers 0, 2, 10 and 3 conversions: tier 2; 3 clicks, 4 referrals,
-- revenue 380; pending 6, approved 5 + 25 + 40 = 70, paid 10.  ben: tier 1, 1 click,
-- 3 referrals, none converted now; approved -8 (the clawback), paid 8 (gross).  cid:
-- nothing, conversion_rate NULL.
SELECT results_eq($$SELECT * FROM referral.referrer_stats WHERE program_id = (SELECT a FROM t) ORDER BY customer$$,
	$$VALUES ((SELECT a FROM t), 'ann'::text, 'ANNA'::referral.referral_code, NULL::text, 2, 3::bigint, 4::bigint, 3::bigint,
	          0.75::float8, 380.00::numeric, 6.00::numeric, 70.00::numeric, 10.00::numeric),
	         ((SELECT a FROM t), 'ben', 'BENJ', NULL, 1, 1, 3, 0, 0, 0, 0, -8.00, 8.00),
	         ((SELECT a FROM t), 'cid', 'CIDX', NULL, 1, 0, 0, 0, NULL, 0, 0, 0, 0)$$,
	'referrer_stats of program A');
-- B: CTLONE has 1 conversion (control tiers 0, 1: tier 2, the top); CTLTWO none (tier 1);
-- TRTONE 2 conversions but treat has one tier (tier 1).
SELECT results_eq($$SELECT s.* FROM referral.referrer_stats s WHERE program_id = (SELECT b FROM t) ORDER BY code::text$$,
	$$VALUES ((SELECT b FROM t), (SELECT ctl[1] FROM bn), 'CTLONE'::referral.referral_code, 'control'::text, 2, 0::bigint, 2::bigint,
	          1::bigint, 0.5::float8, 100.00::numeric, 10.00::numeric, 0::numeric, 0::numeric),
	         ((SELECT b FROM t), (SELECT ctl[2] FROM bn), 'CTLTWO', 'control', 1, 0, 2, 0, 0, 0, 0, 0, 0),
	         ((SELECT b FROM t), (SELECT trt FROM bn), 'TRTONE', 'treat', 1, 0, 2, 2, 1, 300.00, 45.00, 0, 0)$$,
	'referrer_stats of program B: variants and their own tiers');

-- leaderboard: by conversions, then revenue; ben and cid tie (0, 0) and share rank 2.
-- rewards: ann 10 + 5 + 25 + 40 + 6 = 86; ben 8 - 8 = 0 (the reversed 6 and 25 not counted).
SELECT results_eq($$SELECT * FROM referral.leaderboard WHERE program_id = (SELECT a FROM t) ORDER BY rank, customer$$,
	$$VALUES ((SELECT a FROM t), 1::bigint, 'ann'::text, 3::bigint, 380.00::numeric, 86.00::numeric),
	         ((SELECT a FROM t), 2, 'ben', 0, 0, 0), ((SELECT a FROM t), 2, 'cid', 0, 0, 0)$$,
	'leaderboard of program A: rank() shares ties');
SELECT results_eq($$SELECT * FROM referral.leaderboard WHERE program_id = (SELECT b FROM t) ORDER BY rank$$,
	$$VALUES ((SELECT b FROM t), 1::bigint, (SELECT trt FROM bn), 2::bigint, 300.00::numeric, 45.00::numeric),
	         ((SELECT b FROM t), 2, (SELECT ctl[1] FROM bn), 1, 100.00, 10.00),
	         ((SELECT b FROM t), 3, (SELECT ctl[2] FROM bn), 0, 0, 0)$$,
	'leaderboard of program B');

-- reward_balance by status; a clawback under its own status (approved), paid gross.
SELECT results_eq($$SELECT * FROM referral.reward_balance WHERE tenant IN ('default', 'shop-b') ORDER BY tenant, customer$$,
	$$SELECT * FROM (VALUES ('default'::text, 'ann'::text, 'USD'::text, 6.00::numeric, 70.00::numeric, 10.00::numeric, 0::numeric, 0::numeric),
	         ('default', 'ben', 'USD', 0, -8.00, 8.00, 31.00, 0),
	         ('default', 'u1', 'USD', 0, 0, 5.00, 0, 0),
	         ('default', 'u2', 'USD', 0, 5.00, 0, 0, 0),
	         ('default', 'u3', 'USD', 0, 5.00, 0, 0, 0),
	         ('default', 'u5', 'USD', 0, -5.00, 5.00, 0, 0),
	         ('default', 'u7', 'USD', 0, 0, 0, 5.00, 0),
	         ('shop-b', (SELECT ctl[1] FROM bn), 'EUR', 10.00, 0, 0, 0, 0),
	         ('shop-b', (SELECT trt FROM bn), 'EUR', 45.00, 0, 0, 0, 0)) v ORDER BY 1, 2$$,
	'reward_balance: sums by status, clawbacks as approved, paid gross');

-- variant_stats of B: treat against control, 2/2 against 1/4: the p-value of z = sqrt(3).
SELECT results_eq($$SELECT * FROM referral.variant_stats WHERE program_id = (SELECT b FROM t) ORDER BY variant$$,
	$$VALUES ((SELECT b FROM t), 'control'::text, 2::bigint, 4::bigint, 1::bigint, 0.25::float8, 100.00::numeric, 10.00::numeric, NULL::float8),
	         ((SELECT b FROM t), 'treat', 1, 2, 2, 1, 300.00, 45.00, referral.two_proportion_p_value(1, 4, 2, 2))$$,
	'variant_stats of program B');
SELECT ok((SELECT abs(p_value - 0.083264516663550401855) < 1e-12 FROM referral.variant_stats
            WHERE program_id = (SELECT b FROM t) AND variant = 'treat'),
	'the p-value of treat against control is 0.0833');
-- The 1:3 split of 1000 code holders: about 250 / 750 (binomial sd 13.7), the two adding
-- up to 1000; no referrals: no rate and no p-value.
SELECT ok((SELECT referrers BETWEEN 200 AND 300 FROM referral.variant_stats WHERE program_id = (SELECT d FROM t) AND variant = 'a'),
	'weight 1 of 4 gets about a quarter of the code holders');
SELECT results_eq($$SELECT variant, referrers, referrals, conversions, conversion_rate, revenue, reward_cost, p_value
	FROM referral.variant_stats WHERE program_id = (SELECT d FROM t) ORDER BY variant$$,
	$$SELECT v, count(*), 0::bigint, 0::bigint, NULL::float8, 0::numeric, 0::numeric, NULL::float8
	    FROM (SELECT referral.variant_of((SELECT d FROM t), 's' || g) AS v FROM generate_series(1, 1000) g) x
	   GROUP BY v ORDER BY v$$,
	'variant_stats of program D: referrers as variant_of assigns them, rates NULL');
SELECT is((SELECT sum(referrers) FROM referral.variant_stats WHERE program_id = (SELECT d FROM t)), 1000::numeric,
	'every code holder in one variant');
SELECT is_empty($$SELECT * FROM referral._code_variant c
	WHERE c.program_id IN (SELECT unnest(ARRAY[a, b, d]) FROM t)
	  AND c.variant IS DISTINCT FROM referral.variant_of(c.program_id, c.customer)$$,
	'the views assign every code holder the variant variant_of gives');

-- daily_stats, UTC.  Rewards were all created today (the transaction's time).
SELECT results_eq($$SELECT day, clicks, referrals, conversions, revenue, reward_cost FROM referral.daily_stats
	WHERE program_id = (SELECT a FROM t) ORDER BY day$$,
	$$SELECT * FROM (VALUES ('2030-03-01'::date, 3::bigint, 4::bigint, 0::bigint, 0::numeric, 0::numeric),
	         ('2030-03-02', 1, 2, 0, 0, 0),
	         ('2030-03-03', 0, 1, 0, 0, 0),
	         ('2030-03-05', 0, 0, 1, 100.00, 0),
	         ('2030-03-06', 0, 0, 1, 50.00, 0),
	         ('2030-03-07', 0, 0, 1, 200.00, 0),
	         ('2030-03-10', 0, 0, 0, 30.00, 0),
	         (current_date, 0, 0, 0, 0, 101.00)) v ORDER BY 1$$,
	'daily_stats of program A');
SELECT results_eq($$SELECT program_id, day, clicks, referrals, conversions, revenue, reward_cost FROM referral.daily_stats
	WHERE program_id = (SELECT b FROM t) ORDER BY day$$,
	$$SELECT * FROM (VALUES ((SELECT b FROM t), '2030-04-01'::date, 0::bigint, 6::bigint, 0::bigint, 0::numeric, 0::numeric),
	         ((SELECT b FROM t), '2030-04-02', 0, 0, 2, 200.00, 0),
	         ((SELECT b FROM t), '2030-04-03', 0, 0, 1, 200.00, 0),
	         ((SELECT b FROM t), current_date, 0, 0, 0, 0, 55.00)) v ORDER BY 2$$,
	'daily_stats of program B');
SET LOCAL TimeZone = 'Asia/Tokyo';
-- In Tokyo (UTC+9) ben's click of March 1st 23:30 UTC falls on March 2nd.
SELECT results_eq($$SELECT day, clicks FROM referral.daily_stats WHERE program_id = (SELECT a FROM t) AND clicks > 0 ORDER BY day$$,
	$$VALUES ('2030-03-01'::date, 2::bigint), ('2030-03-02', 2)$$,
	'daily_stats days follow the session TimeZone');
SET LOCAL TimeZone = 'UTC';

-- suspicious_referrals of A: u1, u2, u3 from one IP within an hour (u4 is 85 minutes
-- after u3); ann's 4 referrals of March 1st reach 80% of 5; u5 and u6 share a device;
-- u7 was rejected before.
SELECT results_eq($$SELECT referral_id, program_id, referrer, referee, signal, detail FROM referral.suspicious_referrals
	WHERE program_id = (SELECT a FROM t) ORDER BY signal, referee$$,
	$$SELECT pg_temp.rid(e), (SELECT a FROM t), r, e, s, dt FROM (VALUES
	    ('ann', 'u1', 'near_daily_limit', '4 accepted referrals of this referrer on 2030-03-01: 80% of the daily limit of 5'),
	    ('ann', 'u2', 'near_daily_limit', '4 accepted referrals of this referrer on 2030-03-01: 80% of the daily limit of 5'),
	    ('ann', 'u3', 'near_daily_limit', '4 accepted referrals of this referrer on 2030-03-01: 80% of the daily limit of 5'),
	    ('ann', 'u4', 'near_daily_limit', '4 accepted referrals of this referrer on 2030-03-01: 80% of the daily limit of 5'),
	    ('ben', 'u7', 'rejected_attempts', 'the referee made 1 rejected redeem attempt(s): self_referral'),
	    ('ben', 'u5', 'shared_device', 'the referee''s device is shared by 1 other referee(s) of this referrer'),
	    ('ben', 'u6', 'shared_device', 'the referee''s device is shared by 1 other referee(s) of this referrer'),
	    ('ann', 'u1', 'shared_ip', '3 referees of this referrer signed up from the same IP address within one hour'),
	    ('ann', 'u2', 'shared_ip', '3 referees of this referrer signed up from the same IP address within one hour'),
	    ('ann', 'u3', 'shared_ip', '3 referees of this referrer signed up from the same IP address within one hour')
	  ) v(r, e, s, dt)$$,
	'suspicious_referrals of program A: each signal, with its detail');
SELECT is_empty($$SELECT * FROM referral.suspicious_referrals WHERE program_id = (SELECT b FROM t)$$,
	'nothing suspicious in program B');

-- participant_summary: the figures of referrer_stats plus next_tier_at.
SELECT results_eq($$SELECT * FROM referral.participant_summary((SELECT a FROM t), 'ann')$$,
	$$VALUES ('ANNA'::referral.referral_code, NULL::text, 3::bigint, 4::bigint, 3::bigint, 2, 10, 6.00::numeric, 70.00::numeric, 10.00::numeric)$$,
	'participant_summary of ann: tier 2, next at 10 conversions');
SELECT results_eq($$SELECT * FROM referral.participant_summary((SELECT a FROM t), 'ben')$$,
	$$VALUES ('BENJ'::referral.referral_code, NULL::text, 1::bigint, 3::bigint, 0::bigint, 1, 2, 0::numeric, -8.00::numeric, 8.00::numeric)$$,
	'participant_summary of ben: base tier, next at 2');
SELECT results_eq($$SELECT s.code, s.variant, s.tier, s.next_tier_at FROM bn,
	LATERAL (SELECT * FROM referral.participant_summary((SELECT b FROM t), bn.ctl[1])
	         UNION ALL SELECT * FROM referral.participant_summary((SELECT b FROM t), bn.ctl[2])
	         UNION ALL SELECT * FROM referral.participant_summary((SELECT b FROM t), bn.trt)) s$$,
	$$VALUES ('CTLONE'::referral.referral_code, 'control'::text, 2, NULL::int), ('CTLTWO', 'control', 1, 1),
	         ('TRTONE', 'treat', 1, NULL)$$,
	'participant_summary in program B: the top tier has no next tier');
SELECT is_empty($$SELECT * FROM referral.participant_summary((SELECT a FROM t), 'u1')$$,
	'no row for a customer without a code');
SELECT throws_ok($$SELECT * FROM referral.participant_summary(-1, 'ann')$$, 'RF003', NULL,
	'an unknown program is an error');

-- Roles: the application reads participant_summary and no view; an analyst reads
-- every view.
CREATE ROLE referral_views_app NOLOGIN;
CREATE ROLE referral_views_analyst NOLOGIN;
SELECT referral.grant_app('referral_views_app');
SELECT referral.grant_analyst('referral_views_analyst');
GRANT SELECT ON t TO referral_views_app;	-- the test's own table of program ids
CREATE FUNCTION pg_temp.unreadable_views() RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
	v text;
	bad text[] := '{}';
BEGIN
	FOREACH v IN ARRAY ARRAY['program_stats', 'referrer_stats', 'leaderboard', 'reward_balance',
	                         'variant_stats', 'daily_stats', 'suspicious_referrals'] LOOP
		BEGIN
			EXECUTE format('SELECT * FROM referral.%I', v);	-- every column, p_value too
		EXCEPTION WHEN insufficient_privilege THEN
			bad := bad || (v || ': ' || SQLERRM);
		END;
	END LOOP;
	RETURN bad;
END
$$;
SET LOCAL ROLE referral_views_app;
CREATE TEMP TABLE app_sees AS
	SELECT (SELECT count(*) FROM referral.participant_summary((SELECT a FROM t), 'ann')) AS summary_rows,
	       cardinality(pg_temp.unreadable_views()) AS unreadable;
RESET ROLE;
SET LOCAL ROLE referral_views_analyst;
CREATE TEMP TABLE analyst_sees AS SELECT pg_temp.unreadable_views() AS unreadable;
RESET ROLE;
SELECT results_eq($$SELECT summary_rows, unreadable FROM app_sees$$, $$VALUES (1::bigint, 7)$$,
	'the application role gets participant_summary and no view');
SELECT is((SELECT unreadable FROM analyst_sees), '{}'::text[], 'an analyst role reads every view');

SELECT * FROM finish();
ROLLBACK;

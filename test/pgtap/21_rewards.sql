-- Rewards from orders, through the triggers of a tracked table: tiers, caps, chain
-- levels, milestones, windows, minimum amount, reversal, clawback, budget and cap,
-- approval and payout.  Every figure is worked out by hand in the comments.
BEGIN;
SELECT plan(33);
SET LOCAL TimeZone = 'UTC';

CREATE TABLE public.shop_orders (
	id			bigserial PRIMARY KEY,
	customer_id	bigint NOT NULL,
	total		numeric(12, 2) NOT NULL,
	status		text NOT NULL DEFAULT 'paid',
	placed_at	timestamptz NOT NULL
);
SELECT referral.track_orders('public.shop_orders', 'customer_id', 'total',
	status_column => 'status', ordered_at_column => 'placed_at');

-- Program: referee $5; referrer 10% up to $20, from 2 conversions 20% up to $50;
-- the referrer's referrer 2%; a $25 bonus at 2 conversions; orders from $10.
CREATE TEMP TABLE t AS SELECT referral.create_program('Rewards', starts_at => '2026-01-01',
	min_order_amount => 10, max_depth => 2, hold_period => '7 days') AS p;
SELECT referral.add_reward((SELECT p FROM t), 'referee', fixed => 5);
SELECT referral.add_reward((SELECT p FROM t), 'referrer', percent => 10, cap => 20);
SELECT referral.add_reward((SELECT p FROM t), 'referrer', percent => 20, cap => 50, min_conversions => 2);
SELECT referral.add_reward((SELECT p FROM t), 'referrer', percent => 2, level => 2);
SELECT referral.add_milestone((SELECT p FROM t), 2, 25);

-- 1 refers 2; 2 refers 3, 4, 5 and 6; 1 refers 7.
CREATE FUNCTION pg_temp.refer(referrer text, referee text, at timestamptz) RETURNS text
LANGUAGE sql AS $$
	SELECT status FROM referral.redeem(referral.issue_code((SELECT p FROM t), referrer), referee, at => at)
$$;
SELECT is(pg_temp.refer('1', '2', '2026-02-01') || pg_temp.refer('2', '3', '2026-02-02')
	|| pg_temp.refer('2', '4', '2026-02-02') || pg_temp.refer('2', '5', '2026-02-02')
	|| pg_temp.refer('2', '6', '2026-02-08') || pg_temp.refer('1', '7', '2026-02-01'),
	'pendingpendingpendingpendingpendingpending', 'six referrals accepted');

CREATE FUNCTION pg_temp.rewards_of(order_id bigint) RETURNS TABLE (beneficiary text, level int, kind text, amount numeric, status text)
LANGUAGE sql AS $$
	SELECT w.beneficiary, w.level, w.kind, w.amount, w.status FROM referral.reward w
	 WHERE w.order_ref = order_id::text ORDER BY w.kind, w.level, w.beneficiary
$$;

-- Order 1: customer 2 spends 120.00: referee 5.00, referrer 1 (no conversions yet) 10% = 12.00.
INSERT INTO public.shop_orders (id, customer_id, total, placed_at) VALUES (1, 2, 120.00, '2026-02-03');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(1)$$,
	$$VALUES ('2'::text, 1, 'referee'::text, 5.00::numeric, 'pending'::text), ('1', 1, 'referrer', 12.00, 'pending')$$,
	'first order: referee and referrer rewards');
SELECT results_eq($$SELECT status, converting_order, converted_at FROM referral.referral WHERE referee = '2'$$,
	$$VALUES ('converted'::text, '1'::text, '2026-02-03'::timestamptz)$$, 'the referral converted at the order''s time');

-- Order 2: customer 3 spends 333.33: referrer 2 gets 10% = 33.333, cut to the cap 20.00;
-- level 2 (customer 1) gets 2% = 6.6666 -> 6.67.
INSERT INTO public.shop_orders (id, customer_id, total, placed_at) VALUES (2, 3, 333.33, '2026-02-05');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(2)$$,
	$$VALUES ('3'::text, 1, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('2', 1, 'referrer', 20.00, 'pending'), ('1', 2, 'referrer', 6.67, 'pending')$$,
	'cap and chain level 2, rounded half up');

-- Order 3: customer 4 spends 45.55: referrer 2 (1 conversion) 10% = 4.555 -> 4.56; level 2
-- 0.911 -> 0.91; referrer 2 reaches 2 conversions: the $25 milestone.
INSERT INTO public.shop_orders (id, customer_id, total, placed_at) VALUES (3, 4, 45.55, '2026-02-06');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(3)$$,
	$$VALUES ('4'::text, 1, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('2', 1, 'referrer', 4.56, 'pending'), ('1', 2, 'referrer', 0.91, 'pending')$$,
	'half a cent rounds up');
SELECT results_eq($$SELECT beneficiary, kind, amount, level FROM referral.reward WHERE kind = 'milestone'$$,
	$$VALUES ('2'::text, 'milestone'::text, 25.00::numeric, 1)$$, 'the milestone at 2 conversions');

-- Order 4: customer 5 spends 100: referrer 2 now has 2 conversions: tier 20% = 20.00; level 2 2.00.
INSERT INTO public.shop_orders (id, customer_id, total, placed_at) VALUES (4, 5, 100, '2026-02-07');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(4)$$,
	$$VALUES ('5'::text, 1, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('2', 1, 'referrer', 20.00, 'pending'), ('1', 2, 'referrer', 2.00, 'pending')$$,
	'the second tier from the third conversion on');

-- A second order of a converted referee: no recurring_window, no reward.
INSERT INTO public.shop_orders (id, customer_id, total, placed_at) VALUES (5, 5, 80, '2026-02-08');
SELECT is_empty($$SELECT * FROM pg_temp.rewards_of(5)$$, 'no reward for a later order without recurring_window');
SELECT results_eq($$SELECT converting, amount FROM referral.attributed_order WHERE order_ref = '5'$$,
	$$VALUES (false, 80.00::numeric)$$, 'but it is revenue of the referral');
-- An order placed before the conversion (02-07) and paid after it: revenue too.
INSERT INTO public.shop_orders (id, customer_id, total, status, placed_at) VALUES (10, 5, 70, 'new', '2026-02-05');
UPDATE public.shop_orders SET status = 'paid' WHERE id = 10;
SELECT results_eq($$SELECT converting, amount FROM referral.attributed_order WHERE order_ref = '10'$$,
	$$VALUES (false, 70.00::numeric)$$, 'an order placed before the conversion and paid after it is revenue');
-- Below the minimum amount: nothing, still pending.
INSERT INTO public.shop_orders (id, customer_id, total, placed_at) VALUES (6, 6, 9.99, '2026-02-09');
SELECT is_empty($$SELECT * FROM pg_temp.rewards_of(6)$$, 'an order under min_order_amount earns nothing');
-- Outside the attribution window (30 days after 2026-02-01): nothing.
INSERT INTO public.shop_orders (id, customer_id, total, placed_at) VALUES (7, 7, 50, '2026-03-10');
SELECT is_empty($$SELECT * FROM pg_temp.rewards_of(7)$$, 'an order after the attribution window earns nothing');
SELECT is((SELECT string_agg(status, ',' ORDER BY referee) FROM referral.referral WHERE referee IN ('6', '7')),
	'pending,pending', 'both referrals stay pending');
-- Not paid yet: nothing until it is.
INSERT INTO public.shop_orders (id, customer_id, total, status, placed_at) VALUES (8, 6, 30, 'new', '2026-02-10');
SELECT is_empty($$SELECT * FROM pg_temp.rewards_of(8)$$, 'an unpaid order earns nothing');
UPDATE public.shop_orders SET status = 'paid' WHERE id = 8;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(8)$$,
	$$VALUES ('6'::text, 1, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('2', 1, 'referrer', 6.00, 'pending'), ('1', 2, 'referrer', 0.60, 'pending')$$,
	'updated to paid: converts (tier 2 for referrer 2: 20% of 30)');
UPDATE public.shop_orders SET status = 'paid', total = total WHERE id = 8;
SELECT is((SELECT count(*) FROM referral.reward WHERE order_ref = '8'), 3::bigint, 'updating a paid order again creates nothing');

-- Approval after the hold period, then a payout.
SELECT is(referral.approve_due(now() + '6 days'), 0::bigint, 'nothing is due within the hold period');
SELECT is(referral.approve_due(now() + '7 days 1 second'), 15::bigint, 'every reward is due after it');
SELECT is(referral.mark_paid(ARRAY(SELECT id FROM referral.reward WHERE order_ref = '3' AND beneficiary = '2'), 'payout-1'),
	1::bigint, 'pay referrer 2''s reward for order 3');
SELECT throws_ok(format('SELECT referral.mark_paid(ARRAY[%s, -1], %L)',
	(SELECT id FROM referral.reward WHERE order_ref = '1' AND kind = 'referee'), 'payout-2'),
	'55000', 'rewards not approved: -1 (does not exist)', 'one bad id: an error');
SELECT is((SELECT status FROM referral.reward WHERE order_ref = '1' AND kind = 'referee'), 'approved',
	'and nothing was paid');

-- Refund of order 3: its rewards reverse, the paid one gets a clawback, the referral of
-- customer 4 returns to pending and the milestone its conversion reached is reversed.
UPDATE public.shop_orders SET status = 'refunded' WHERE id = 3;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(3)$$,
	$$VALUES ('2'::text, 1, 'clawback'::text, -4.56::numeric, 'approved'::text),
	         ('4', 1, 'referee', 5.00, 'reversed'),
	         ('2', 1, 'referrer', 4.56, 'paid'), ('1', 2, 'referrer', 0.91, 'reversed')$$,
	'refund: reversed, and a clawback for the paid reward');
SELECT is((SELECT status FROM referral.reward WHERE kind = 'milestone'), 'reversed', 'the milestone is reversed');
SELECT results_eq($$SELECT status, converted_at FROM referral.referral WHERE referee = '4'$$,
	$$VALUES ('pending'::text, NULL::timestamptz)$$, 'the referral is pending again');
UPDATE public.shop_orders SET status = 'refunded' WHERE id = 3;
SELECT is((SELECT count(*) FROM referral.reward WHERE order_ref = '3'), 4::bigint, 'refunding again changes nothing');

-- A later order of customer 4 converts again; referrer 2 has 3 conversions (of 3, 5 and 6): tier 2.
INSERT INTO public.shop_orders (id, customer_id, total, placed_at) VALUES (9, 4, 50, '2026-02-20');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(9)$$,
	$$VALUES ('4'::text, 1, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('2', 1, 'referrer', 10.00, 'pending'), ('1', 2, 'referrer', 1.00, 'pending')$$,
	'a later order converts the referral again');
SELECT is((SELECT count(*) FROM referral.reward WHERE kind = 'milestone' AND status <> 'reversed'), 1::bigint,
	'the milestone is paid again on reaching the count again');

-- Deleting a converting order reverses too.
DELETE FROM public.shop_orders WHERE id = 4;
SELECT is((SELECT string_agg(status, ',' ORDER BY id) FROM referral.reward WHERE order_ref = '4'),
	'reversed,reversed,reversed', 'delete reverses the order''s rewards');

-- Budget: a program that may create $30 in all, referee $20 each.
CREATE TEMP TABLE b AS SELECT referral.create_program('Budget', starts_at => '2026-01-01', budget => 30) AS p;
SELECT referral.add_reward((SELECT p FROM b), 'referee', fixed => 20);
SELECT (SELECT status FROM referral.redeem(referral.issue_code((SELECT p FROM b), '100'), x::text, at => '2026-02-01'))
  FROM generate_series(101, 104) x;
INSERT INTO public.shop_orders (id, customer_id, total, placed_at)
	VALUES (101, 101, 50, '2026-02-02'), (102, 102, 50, '2026-02-02'), (103, 103, 50, '2026-02-02');
SELECT results_eq($$SELECT order_ref, amount FROM referral.reward WHERE program_id = (SELECT p FROM b) ORDER BY order_ref$$,
	$$VALUES ('101'::text, 20::numeric), ('102', 10)$$, 'the budget cuts the second reward and stops the third');
UPDATE public.shop_orders SET status = 'cancelled' WHERE id = 101;
INSERT INTO public.shop_orders (id, customer_id, total, placed_at) VALUES (104, 104, 50, '2026-02-03');
SELECT results_eq($$SELECT order_ref, amount FROM referral.reward WHERE program_id = (SELECT p FROM b) AND status <> 'reversed' ORDER BY order_ref$$,
	$$VALUES ('102'::text, 10::numeric), ('104', 20)$$, 'a reversal frees budget');

-- Milestone: $10 at 1 conversion, paid out, then clawed back by a refund; reaching 1
-- conversion again pays it again.  One bulk INSERT of three orders of one referee:
-- the first converts, the other two are revenue.
CREATE TEMP TABLE m AS SELECT referral.create_program('Milestones', starts_at => '2026-01-01', hold_period => '0') AS p;
SELECT referral.add_milestone((SELECT p FROM m), 1, 10);
SELECT (SELECT status FROM referral.redeem(referral.issue_code((SELECT p FROM m), '200'), x::text, at => '2026-02-01'))
  FROM generate_series(201, 202) x;
INSERT INTO public.shop_orders (id, customer_id, total, placed_at)
	VALUES (201, 201, 40, '2026-02-02'), (202, 201, 25, '2026-02-03'), (203, 201, 15, '2026-02-04');
SELECT results_eq($$SELECT order_ref, converting, amount FROM referral.attributed_order
                     WHERE program_id = (SELECT p FROM m) ORDER BY order_ref$$,
	$$VALUES ('201'::text, true, 40.00::numeric), ('202', false, 25.00), ('203', false, 15.00)$$,
	'one statement: the first order converts, the later ones are revenue');
SELECT referral.approve_due(now() + '1 second');
SELECT referral.mark_paid(ARRAY(SELECT id FROM referral.reward WHERE program_id = (SELECT p FROM m)), 'payout-m');
UPDATE public.shop_orders SET status = 'refunded' WHERE id = 201;
INSERT INTO public.shop_orders (id, customer_id, total, placed_at) VALUES (204, 202, 30, '2026-02-05');
SELECT results_eq($$SELECT kind, amount, status, reversed_at IS NOT NULL FROM referral.reward
                     WHERE program_id = (SELECT p FROM m) ORDER BY id$$,
	$$VALUES ('milestone'::text, 10.00::numeric, 'paid'::text, true), ('clawback', -10.00, 'approved', false),
	         ('milestone', 10.00, 'pending', false)$$,
	'a paid milestone clawed back is paid again on reaching the count again');

-- Events.
SELECT is((SELECT count(*) FROM referral.event WHERE kind = 'reward_created'), (SELECT count(*) FROM referral.reward),
	'one reward_created event per reward');

SELECT * FROM finish();
ROLLBACK;

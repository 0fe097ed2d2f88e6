-- A bulk INSERT large enough to be read through the hash of accepted referrals holds
-- back, in C, every order of a pending referral but the first that qualifies
-- (src/order_firsts.c).  The same loads into a twin table without a unique order id,
-- where the trigger cannot tell which order qualifies and passes every candidate on,
-- must give the same referrals, attributed orders, rewards and events.  The loads
-- have ties on the order time (broken by the id's bytes: '10' before '9'), an order
-- below the minimum, one before the redeem, one after the program's end, one past the
-- attribution window, a recurring program, a referee converted before the load, and
-- in a second load an order id attributed before (the trigger then passes every
-- candidate on, since that order cannot convert and the next one must).
BEGIN;
SELECT plan(9);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE TABLE public.orders_pick (id bigint PRIMARY KEY, customer text NOT NULL,
	amount numeric NOT NULL, placed_at timestamptz NOT NULL);
CREATE TABLE public.orders_all (id bigint NOT NULL, customer text NOT NULL,
	amount numeric NOT NULL, placed_at timestamptz NOT NULL);
SELECT referral.track_orders('public.orders_pick', 'customer', 'amount',
	ordered_at_column => 'placed_at', tenant => 'pick');
SELECT referral.track_orders('public.orders_all', 'customer', 'amount',
	ordered_at_column => 'placed_at', tenant => 'all');

CREATE FUNCTION pg_temp.setup(tenant text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	once bigint := referral.create_program('Once', tenant => tenant, starts_at => '2026-01-01',
		ends_at => '2026-06-01', min_order_amount => 10);
	again bigint := referral.create_program('Again', tenant => tenant, starts_at => '2026-01-01',
		recurring_window => '90 days');
BEGIN
	PERFORM referral.add_reward(once, 'referee', fixed => 5);
	PERFORM referral.add_reward(once, 'referrer', percent => 10);
	PERFORM referral.add_reward(again, 'referrer', percent => 5);
	PERFORM referral.redeem(referral.issue_code(CASE WHEN r.referee = 'e' THEN again ELSE once END,
	                                            'r-' || r.referee),
	                        r.referee, at => r.at)
	   FROM (VALUES ('a', '2026-02-01'::timestamptz), ('b', '2026-02-01'), ('c', '2026-02-10'),
	                ('d', '2026-02-01'), ('e', '2026-02-01'), ('f', '2026-02-01'),
	                ('g', '2026-02-01'), ('h', '2026-02-01')) AS r(referee, at);
END
$$;
SELECT pg_temp.setup('pick'), pg_temp.setup('all');

-- Before the loads: f converts; g converts with order 70, which is then deleted (g is
-- pending again, and order 70 stays attributed).
INSERT INTO public.orders_pick VALUES (60, 'f', 25, '2026-02-02'), (70, 'g', 30, '2026-02-02');
INSERT INTO public.orders_all VALUES (60, 'f', 25, '2026-02-02'), (70, 'g', 30, '2026-02-02');
DELETE FROM public.orders_pick WHERE id = 70;
DELETE FROM public.orders_all WHERE id = 70;

-- The first load, padded with orders of customers nobody referred.
CREATE TEMP TABLE load1 AS
SELECT * FROM (VALUES
	(9, 'a', 50, '2026-02-10'::timestamptz), (10, 'a', 60, '2026-02-10'), (8, 'a', 70, '2026-02-11'),
	(20, 'b', 5, '2026-02-03'), (22, 'b', 45, '2026-02-05'), (21, 'b', 40, '2026-02-04'),
	(30, 'c', 80, '2026-02-05'), (31, 'c', 90, '2026-02-12'),
	(40, 'd', 100, '2026-07-01'),
	(52, 'e', 30, '2026-02-05'), (50, 'e', 10, '2026-02-03'), (51, 'e', 20, '2026-02-04'),
	(61, 'f', 35, '2026-02-06'),
	(80, 'h', 20, '2026-03-15'), (81, 'h', 20, '2026-03-16')) AS o(id, customer, amount, placed_at)
UNION ALL
SELECT 1000 + i, 'nobody-' || i, 10, '2026-02-05' FROM generate_series(1, 3000) i;
INSERT INTO public.orders_pick SELECT * FROM load1 ORDER BY customer, id;
INSERT INTO public.orders_all SELECT * FROM load1 ORDER BY customer, id;

-- The second load: g's earliest order reuses id 70.
CREATE TEMP TABLE load2 AS
SELECT * FROM (VALUES (70, 'g', 30, '2026-02-03'::timestamptz), (71, 'g', 40, '2026-02-06')) AS o(id, customer, amount, placed_at)
UNION ALL
SELECT 5000 + i, 'nobody-' || i, 10, '2026-02-05' FROM generate_series(1, 3000) i;
INSERT INTO public.orders_pick SELECT * FROM load2 ORDER BY id;
INSERT INTO public.orders_all SELECT * FROM load2 ORDER BY id;

SELECT is((SELECT string_agg(referee || ':' || status || ':' || COALESCE(converting_order, '-'), ' ' ORDER BY referee)
             FROM referral.referral WHERE tenant = 'pick'),
	'a:converted:10 b:converted:21 c:converted:31 d:pending:- e:converted:50 f:converted:60 g:converted:71 h:pending:-',
	'each referral converts with its first qualifying order, or stays pending');
SELECT results_eq($$SELECT referee, status, converted_at, converting_order FROM referral.referral
                     WHERE tenant = 'pick' ORDER BY referee$$,
	$$SELECT referee, status, converted_at, converting_order FROM referral.referral
	   WHERE tenant = 'all' ORDER BY referee$$,
	'the same conversions as with every candidate passed on');
SELECT set_eq($$SELECT order_ref, amount, ordered_at, converting, reversed_at IS NULL
                  FROM referral.attributed_order WHERE tenant = 'pick'$$,
	$$SELECT order_ref, amount, ordered_at, converting, reversed_at IS NULL
	   FROM referral.attributed_order WHERE tenant = 'all'$$,
	'the same orders attributed');
SELECT is((SELECT string_agg(order_ref, ',' ORDER BY order_ref::int) FROM referral.attributed_order
            WHERE tenant = 'pick' AND NOT converting),
	'8,9,22,51,52,61', 'the other qualifying orders are revenue');
SELECT set_eq($$SELECT w.beneficiary, w.kind, w.level, w.amount, w.order_ref, w.status
                  FROM referral.reward w WHERE w.tenant = 'pick'$$,
	$$SELECT w.beneficiary, w.kind, w.level, w.amount, w.order_ref, w.status
	   FROM referral.reward w WHERE w.tenant = 'all'$$,
	'the same rewards');
SELECT is((SELECT string_agg(w.order_ref || ':' || w.amount, ',' ORDER BY w.order_ref::int)
             FROM referral.reward w JOIN referral.referral r ON r.id = w.referral_id
            WHERE w.tenant = 'pick' AND r.referee = 'e'),
	'50:0.50,51:1.00,52:1.50', 'the recurring program pays every order of its referee');
SELECT results_eq($$SELECT kind, payload - ARRAY['reward_id', 'referral_id', 'program_id'] FROM referral.event
                     WHERE tenant = 'pick' AND kind IN ('reward_created', 'referral_converted', 'referral_reverted')
                     ORDER BY id$$,
	$$SELECT kind, payload - ARRAY['reward_id', 'referral_id', 'program_id'] FROM referral.event
	   WHERE tenant = 'all' AND kind IN ('reward_created', 'referral_converted', 'referral_reverted')
	   ORDER BY id$$,
	'the same events, in the same order');
SELECT is((SELECT count(*) FROM referral.attributed_order WHERE tenant = 'pick' AND order_ref::int >= 1000),
	0::bigint, 'orders of customers nobody referred are not attributed');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit finds the ledger consistent');

SELECT * FROM finish();
ROLLBACK;

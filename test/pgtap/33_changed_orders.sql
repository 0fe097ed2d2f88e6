-- An UPDATE or DELETE passes to the trigger's SQL only the orders referral may hold
-- something about (src/order_changes.c): those of customers who are the referee of a
-- referral, whatever its status, and those whose id a live referee offer use names.
-- The same story runs on two tables: one order per statement (the pass probes an
-- index per order) and in statements padded with 2,000 orders of customers nobody
-- referred (the pass reads the referrals into a hash).  Both must end in the same,
-- expected ledger: a refund of a converting order, of an order whose referral was
-- voided, of an order that used another customer's offer, an order moved to a
-- customer nobody referred, a deleted order, an order whose customer changed while
-- the table was not tracked, and the refund of a forgotten referee's order, whose
-- customer key the referral no longer holds.  The last two are found by their id
-- among the attributed orders.
BEGIN;
SELECT plan(13);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE TABLE public.orders_one (id bigint PRIMARY KEY, customer text NOT NULL,
	amount numeric NOT NULL, status text NOT NULL);
CREATE TABLE public.orders_bulk (LIKE public.orders_one INCLUDING ALL);
SELECT referral.track_orders('public.orders_one', 'customer', 'amount',
	status_column => 'status', tenant => 'one');
SELECT referral.track_orders('public.orders_bulk', 'customer', 'amount',
	status_column => 'status', tenant => 'bulk');

CREATE FUNCTION pg_temp.setup(tenant text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	program bigint := referral.create_program('Changes', tenant => tenant, starts_at => '2026-01-01');
BEGIN
	PERFORM referral.add_reward(program, 'referee', fixed => 5);
	PERFORM referral.add_reward(program, 'referrer', percent => 10);
	PERFORM referral.add_referee_offer(program, percent => 10);
	PERFORM referral.redeem(referral.issue_code(program, 'r-' || r), r)
	   FROM unnest(ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'g']) r;
END
$$;
SELECT pg_temp.setup('one'), pg_temp.setup('bulk');

-- Runs a statement on one table, with %s the table and %s the padding: nothing in
-- orders_one, 2,000 orders of customers nobody referred (ids from 10,000) in orders_bulk.
CREATE FUNCTION pg_temp.run(sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format(sql, 'public.orders_one', 'false');
	EXECUTE format(sql, 'public.orders_bulk', 'id >= 10000');
END
$$;

-- a, b, c, d convert; a has a later order; f's offer is used for order 77, which the
-- shop's table files under customer zz, whom nobody referred.
INSERT INTO public.orders_one VALUES (1, 'a', 100, 'paid'), (2, 'b', 100, 'paid'),
	(3, 'c', 100, 'paid'), (4, 'd', 100, 'paid'), (5, 'a', 50, 'paid'), (6, 'e', 40, 'paid'),
	(8, 'g', 60, 'paid'), (77, 'zz', 90, 'paid');
INSERT INTO public.orders_bulk SELECT * FROM public.orders_one;
CREATE FUNCTION pg_temp.pad() RETURNS void LANGUAGE sql AS $$
	INSERT INTO public.orders_bulk SELECT 10000 + i, 'u' || i, 20, 'paid' FROM generate_series(0, 1999) i;
$$;
SELECT pg_temp.pad();
SELECT is(referral.use_offer('f', '77', 100, t), 10.00, 'f''s offer is used for order 77 in ' || t)
  FROM unnest(ARRAY['one', 'bulk']) t;
SELECT referral.void_referral(r.id, 'fraud')
  FROM referral.referral r WHERE r.referee = 'c' AND r.tenant IN ('one', 'bulk');

-- The changes, each statement padded in orders_bulk.
SELECT pg_temp.run($$UPDATE %s SET status = 'refunded' WHERE id IN (2, 3, 77) OR %s$$);
SELECT pg_temp.run($$UPDATE %s SET customer = CASE WHEN id = 4 THEN 'zz2' ELSE customer END WHERE id = 4 OR %s$$);
SELECT pg_temp.run($$UPDATE %s SET status = 'shipped' WHERE id = 6 OR %s$$);
SELECT pg_temp.run($$DELETE FROM %s WHERE id = 5 OR %s$$);
SELECT pg_temp.pad();

-- g's converting order 8 changes customer while the tables are not tracked (no
-- trigger sees it); tracked again, the order keeps its attribution, and its refund
-- must reverse it though its customer now is nobody's referee.
SELECT referral.untrack_orders('public.orders_one'), referral.untrack_orders('public.orders_bulk');
UPDATE public.orders_one SET customer = 'g-merged' WHERE id = 8;
UPDATE public.orders_bulk SET customer = 'g-merged' WHERE id = 8;
SELECT referral.track_orders('public.orders_one', 'customer', 'amount',
	status_column => 'status', tenant => 'one');
SELECT referral.track_orders('public.orders_bulk', 'customer', 'amount',
	status_column => 'status', tenant => 'bulk');
SELECT pg_temp.run($$UPDATE %s SET status = 'refunded' WHERE id = 8 OR %s$$);

SELECT results_eq(
	format($$SELECT r.referee, r.status FROM referral.referral r WHERE r.tenant = %L ORDER BY 1$$, t),
	$$VALUES ('a', 'converted'), ('b', 'pending'), ('c', 'rejected'), ('d', 'pending'),
	         ('e', 'converted'), ('f', 'pending'), ('g', 'pending')$$,
	'refunded and moved converting orders made their referrals pending in ' || t)
  FROM unnest(ARRAY['one', 'bulk']) t;

SELECT results_eq(
	format($$SELECT a.order_ref, a.reversed_at IS NOT NULL FROM referral.attributed_order a
	          WHERE a.tenant = %L ORDER BY a.order_ref$$, t),
	$$VALUES ('1', false), ('2', true), ('3', true), ('5', true), ('6', false), ('8', true)$$,
	'refunded, voided and deleted orders are reversed, the moved one released in ' || t)
  FROM unnest(ARRAY['one', 'bulk']) t;

SELECT results_eq(
	format($$SELECT w.order_ref, w.kind, w.status FROM referral.reward w
	          WHERE w.tenant = %L ORDER BY 1, 2$$, t),
	$$VALUES ('1', 'referee', 'pending'), ('1', 'referrer', 'pending'),
	         ('2', 'referee', 'reversed'), ('2', 'referrer', 'reversed'),
	         ('3', 'referee', 'reversed'), ('3', 'referrer', 'reversed'),
	         ('4', 'referee', 'reversed'), ('4', 'referrer', 'reversed'),
	         ('6', 'referee', 'pending'), ('6', 'referrer', 'pending'),
	         ('8', 'referee', 'reversed'), ('8', 'referrer', 'reversed')$$,
	'the rewards of the orders changed are reversed, no others, in ' || t)
  FROM unnest(ARRAY['one', 'bulk']) t;

SELECT is((SELECT u.restored_at IS NOT NULL FROM referral.offer_use u
            WHERE u.tenant = t AND u.order_ref = '77'), true,
          'refunding order 77 restored the offer it used, though its customer is another, in ' || t)
  FROM unnest(ARRAY['one', 'bulk']) t;

-- After forget(), a's referral names a pseudonym; the orders table still says 'a'.
SELECT referral.forget('a', t) FROM unnest(ARRAY['one', 'bulk']) t;
SELECT pg_temp.run($$UPDATE %s SET status = 'refunded' WHERE id = 1 OR %s$$);
SELECT results_eq(
	format($$SELECT a.order_ref, r.status FROM referral.attributed_order a
	          JOIN referral.referral r ON r.id = a.referral_id
	          WHERE a.tenant = %L AND a.order_ref = '1' AND a.reversed_at IS NOT NULL$$, t),
	$$VALUES ('1', 'pending')$$,
	'a forgotten referee''s refunded order is reversed in ' || t)
  FROM unnest(ARRAY['one', 'bulk']) t;

SELECT is((SELECT count(*) FROM referral.audit()), 0::bigint, 'audit() finds nothing');

SELECT * FROM finish();
ROLLBACK;

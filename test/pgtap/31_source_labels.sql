-- Source labels: a tracked table renamed, and a new table tracked under its old name,
-- do not share a label (each one's orders are attributed and reversed on their own,
-- and audit() sees both); the very same table tracked again keeps its label; every
-- label ever given stays registered (and is dumped).  audit() also reports the
-- attributed orders of a tracked table that was dropped.
BEGIN;
SELECT plan(17);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE TEMP TABLE prog AS SELECT referral.create_program('Labels', starts_at => '2020-01-01') AS p;
SELECT referral.add_reward((SELECT p FROM prog), 'referee', fixed => 5);
SELECT referral.add_reward((SELECT p FROM prog), 'referrer', fixed => 10);
SELECT count(*) FROM unnest(ARRAY['a1', 'b1', 'c1', 'd1']) AS c
 CROSS JOIN LATERAL referral.redeem(referral.issue_code((SELECT p FROM prog), 'ref'), c);

CREATE FUNCTION pg_temp.status_of(customer text) RETURNS text LANGUAGE sql AS $$
	SELECT r.status || COALESCE(':' || r.converting_source || ':' || r.converting_order, '')
	  FROM referral.referral r WHERE r.referee = customer AND r.status <> 'rejected'
$$;
CREATE FUNCTION pg_temp.rewards_of(customer text) RETURNS text LANGUAGE sql AS $$
	SELECT COALESCE(string_agg(w.kind || ':' || w.status, ' ' ORDER BY w.kind), '-')
	  FROM referral.reward w JOIN referral.referral r ON r.id = w.referral_id WHERE r.referee = customer
$$;

CREATE TABLE public.lab_orders (id bigint, customer text, amount numeric);
SELECT referral.track_orders('public.lab_orders', 'customer', 'amount');
INSERT INTO public.lab_orders VALUES (1, 'a1', 50);
SELECT is(pg_temp.status_of('a1'), 'converted:public.lab_orders:1', 'a1 converts with order 1 of public.lab_orders');

-- Renamed, and a new table under the old name.
ALTER TABLE public.lab_orders RENAME TO lab_orders_old;
CREATE TABLE public.lab_orders (id bigint, customer text, amount numeric);
SELECT referral.track_orders('public.lab_orders', 'customer', 'amount');
SELECT is((SELECT source FROM referral.tracked_table WHERE relid = 'public.lab_orders'::regclass),
	'public.lab_orders#2', 'a new table under a name another table had gets a label of its own');
INSERT INTO public.lab_orders VALUES (1, 'b1', 50);
SELECT is(pg_temp.status_of('b1'), 'converted:public.lab_orders#2:1', 'the new table''s order 1 is attributed');
DELETE FROM public.lab_orders WHERE id = 1;
SELECT is(pg_temp.status_of('b1'), 'pending', 'deleting it reverses its own conversion');
SELECT is(pg_temp.rewards_of('b1'), 'referee:reversed referrer:reversed', 'and its own rewards');
SELECT is(pg_temp.status_of('a1'), 'converted:public.lab_orders:1', 'not the old table''s conversion');
SELECT is(pg_temp.rewards_of('a1'), 'referee:pending referrer:pending', 'nor its rewards');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty');

-- The old table, untracked and tracked again, keeps its label: its orders still reverse.
SELECT referral.untrack_orders('public.lab_orders_old');
SELECT referral.track_orders('public.lab_orders_old', 'customer', 'amount');
SELECT is((SELECT source FROM referral.tracked_table WHERE relid = 'public.lab_orders_old'::regclass),
	'public.lab_orders', 'the same table tracked again keeps its label');
DELETE FROM public.lab_orders_old WHERE id = 1;
SELECT is(pg_temp.rewards_of('a1'), 'referee:reversed referrer:reversed', 'and its old orders reverse');

-- A table dropped, and another created and tracked under its name: a third label.
SELECT referral.untrack_orders('public.lab_orders');
DROP TABLE public.lab_orders;
CREATE TABLE public.lab_orders (id bigint, customer text, amount numeric);
SELECT referral.track_orders('public.lab_orders', 'customer', 'amount');
SELECT is((SELECT source FROM referral.tracked_table WHERE relid = 'public.lab_orders'::regclass),
	'public.lab_orders#3', 'a label is never given again, also after its table was dropped');
SELECT is((SELECT string_agg(label, ' ' ORDER BY label) FROM referral.source_label),
	'public.lab_orders public.lab_orders#2 public.lab_orders#3', 'every label given is registered');
SELECT ok((SELECT 'referral.source_label'::regclass::oid = ANY (extconfig) FROM pg_extension WHERE extname = 'referral'),
	'the registry is dumped by pg_dump');

-- A tracked table dropped without untrack_orders: its attributed orders are gone, and
-- audit() says so.
CREATE TABLE public.gone_orders (id bigint, customer text, amount numeric);
SELECT referral.track_orders('public.gone_orders', 'customer', 'amount');
INSERT INTO public.gone_orders VALUES (7, 'c1', 50);
SELECT is(pg_temp.status_of('c1'), 'converted:public.gone_orders:7', 'c1 converts');
DROP TABLE public.gone_orders;
SELECT results_eq($$SELECT problem, detail FROM referral.audit()$$,
	$$SELECT 'order_not_paid'::text, format('order 7 of public.gone_orders (referral %s) earned rewards but its table was dropped',
	         (SELECT id FROM referral.referral WHERE referee = 'c1'))$$,
	'audit() reports the orders of a dropped tracked table');
SELECT lives_ok($$SELECT referral.untrack_orders((SELECT relid FROM referral.tracked_table WHERE source = 'public.gone_orders'))$$,
	'untracking it by OID');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'then audit() no longer checks them');

SELECT * FROM finish();
ROLLBACK;

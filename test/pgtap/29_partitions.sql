-- Partitions of a tracked table and TRUNCATE: DML aimed straight at a partition
-- (existing, created later, attached later, a partition of a partition) is attributed
-- exactly once, a statement on the parent too (also an UPDATE that moves a row between
-- partitions); TRUNCATE of the table or of a partition reverses the rewards of the
-- orders it removes (paid ones clawed back); DETACH or DROP of a partition holding
-- orders is refused, and untrack_orders on the partition is the way out.  The shop's
-- tables belong to a role that is not a superuser and may not execute referral's
-- functions.
BEGIN;
SELECT plan(55);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE ROLE tap_shop NOLOGIN;
GRANT CREATE, USAGE ON SCHEMA public TO tap_shop;

CREATE TEMP TABLE prog AS SELECT referral.create_program('Parts', starts_at => '2020-01-01') AS p;
SELECT referral.add_reward((SELECT p FROM prog), 'referee', percent => 10);
SELECT referral.add_reward((SELECT p FROM prog), 'referrer', fixed => 10);
SELECT count(*) FROM generate_series(1, 40) AS i
 CROSS JOIN LATERAL referral.redeem(referral.issue_code((SELECT p FROM prog), 'ref'), 'c' || i);

CREATE FUNCTION pg_temp.status_of(customer text) RETURNS text LANGUAGE sql AS $$
	SELECT r.status || COALESCE(':' || r.converting_order, '') FROM referral.referral r
	 WHERE r.referee = customer AND r.status <> 'rejected'
$$;
-- The rewards of an order: kind:status, clawbacks included.
CREATE FUNCTION pg_temp.rewards_of(ref text) RETURNS text LANGUAGE sql AS $$
	SELECT COALESCE(string_agg(w.kind || ':' || w.status, ' ' ORDER BY w.kind, w.id), '-')
	  FROM referral.reward w WHERE w.order_source = 'public.shop_orders' AND w.order_ref = ref
$$;
CREATE FUNCTION pg_temp.attributed(ref text) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM referral.attributed_order a
	 WHERE a.order_source = 'public.shop_orders' AND a.order_ref = ref
$$;
CREATE FUNCTION pg_temp.triggers_on(rel regclass) RETURNS text LANGUAGE sql AS $$
	SELECT COALESCE(string_agg(tgname, ' ' ORDER BY tgname), '-') FROM pg_trigger
	 WHERE tgrelid = rel AND tgname LIKE 'referral\_orders\_%'
$$;

-- By status, and the paid ones by amount: a refund and a re-pricing move rows.
SET LOCAL ROLE tap_shop;
CREATE TABLE public.shop_orders (id bigint, customer text, amount numeric, status text)
	PARTITION BY LIST (status);
CREATE TABLE public.shop_paid PARTITION OF public.shop_orders FOR VALUES IN ('paid')
	PARTITION BY RANGE (amount);
CREATE TABLE public.shop_paid_small PARTITION OF public.shop_paid FOR VALUES FROM (MINVALUE) TO (100);
CREATE TABLE public.shop_paid_big PARTITION OF public.shop_paid FOR VALUES FROM (100) TO (MAXVALUE);
CREATE TABLE public.shop_other PARTITION OF public.shop_orders DEFAULT;
RESET ROLE;
SELECT referral.track_orders('public.shop_orders', 'customer', 'amount', status_column => 'status',
	paid_statuses => '{paid,later,att}');

SELECT is(pg_temp.triggers_on('public.shop_paid_small'),
	'referral_orders_del referral_orders_ins referral_orders_trunc referral_orders_upd',
	'a partition existing at track time has the order triggers');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'referral\_orders\_%'
	AND tgrelid IN (SELECT relid FROM pg_partition_tree('public.shop_orders'))), 20::bigint,
	'the table and each of its four partitions have four triggers');

-- Statement triggers of the shop's own on a partition and on a sub-partitioned
-- partition count their firings: a statement fires those of the table it names only.
CREATE TABLE public.firings (n serial, rel text);
GRANT INSERT ON public.firings TO tap_shop;
GRANT USAGE ON SEQUENCE public.firings_n_seq TO tap_shop;
CREATE FUNCTION public.count_firing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.firings (rel) VALUES (TG_TABLE_NAME);
	RETURN NULL;
END
$$;
CREATE TRIGGER count_firing AFTER INSERT OR UPDATE OR DELETE ON public.shop_paid_small
	FOR EACH STATEMENT EXECUTE FUNCTION public.count_firing();
CREATE TRIGGER count_firing AFTER INSERT OR UPDATE OR DELETE ON public.shop_paid
	FOR EACH STATEMENT EXECUTE FUNCTION public.count_firing();

------------------------------------------------------------------------------------
-- DML on a partition, and on the parent, attributed once.
SET LOCAL ROLE tap_shop;
INSERT INTO public.shop_paid_small VALUES (1, 'c1', 50, 'paid');
INSERT INTO public.shop_orders VALUES (2, 'c2', 150, 'paid');
INSERT INTO public.shop_paid VALUES (3, 'c3', 80, 'paid');
RESET ROLE;
SELECT is((SELECT string_agg(rel, ' ' ORDER BY n) FROM public.firings), 'shop_paid_small shop_paid',
	'an INSERT fires the statement triggers of the table it names, not those of the partitions its rows go to');
SELECT is(pg_temp.status_of('c1'), 'converted:1', 'an INSERT into a leaf partition converts');
SELECT is(pg_temp.status_of('c3'), 'converted:3', 'an INSERT into a sub-partitioned partition converts');
SELECT is(pg_temp.attributed('1') || ' ' || pg_temp.attributed('2') || ' ' || pg_temp.attributed('3'), '1 1 1',
	'each order is attributed once, whichever table the INSERT names');
SELECT is(pg_temp.rewards_of('2'), 'referee:pending referrer:pending', 'the parent''s INSERT: two rewards');

-- A lower amount straight on the partition: the referee reward follows.
SET LOCAL ROLE tap_shop;
UPDATE public.shop_paid_small SET amount = 40 WHERE id = 1;
RESET ROLE;
SELECT is((SELECT amount FROM referral.reward WHERE order_ref = '1' AND kind = 'referee'), 4.00,
	'an UPDATE on a partition changes the reward');

-- Moved between partitions: a lower amount within shop_paid (from big to small),
-- and a refund from shop_paid to shop_other, through the parent.
SET LOCAL ROLE tap_shop;
UPDATE public.shop_paid SET amount = 60 WHERE id = 2;
RESET ROLE;
SELECT is((SELECT tableoid::regclass::text FROM public.shop_orders WHERE id = 2), 'shop_paid_small', 'order 2 moved');
SELECT is((SELECT amount FROM referral.reward WHERE order_ref = '2' AND kind = 'referee'), 6.00,
	'a re-pricing that moves the row between sub-partitions changes the reward');
SET LOCAL ROLE tap_shop;
UPDATE public.shop_orders SET status = 'refunded' WHERE id = 2;
RESET ROLE;
SELECT is((SELECT tableoid::regclass::text FROM public.shop_orders WHERE id = 2), 'shop_other', 'order 2 moved again');
SELECT is(pg_temp.rewards_of('2'), 'referee:reversed referrer:reversed', 'a refund that moves the row reverses its rewards');
SELECT is(pg_temp.status_of('c2'), 'pending', 'and the referral it converted is pending again');
SELECT is((SELECT count(*) FROM referral.event WHERE kind = 'referral_reverted'), 1::bigint, 'one reversion');

-- DELETE straight from a partition.
SET LOCAL ROLE tap_shop;
DELETE FROM public.shop_paid_small WHERE id = 3;
RESET ROLE;
SELECT is(pg_temp.rewards_of('3'), 'referee:reversed referrer:reversed', 'a DELETE on a partition reverses');

------------------------------------------------------------------------------------
-- Partitions added later: created, attached, and one under a partition.
SET LOCAL ROLE tap_shop;
CREATE TABLE public.shop_later PARTITION OF public.shop_orders FOR VALUES IN ('later');
CREATE TABLE public.shop_att (id bigint, customer text, amount numeric, status text);
ALTER TABLE public.shop_orders ATTACH PARTITION public.shop_att FOR VALUES IN ('att');
ALTER TABLE public.shop_paid DETACH PARTITION public.shop_paid_big;
CREATE TABLE public.shop_paid_huge PARTITION OF public.shop_paid FOR VALUES FROM (100) TO (10000);
RESET ROLE;
SELECT is(pg_temp.triggers_on('public.shop_later'),
	'referral_orders_del referral_orders_ins referral_orders_trunc referral_orders_upd',
	'a partition created later gets the triggers');
SELECT is(pg_temp.triggers_on('public.shop_att'),
	'referral_orders_del referral_orders_ins referral_orders_trunc referral_orders_upd',
	'a table attached later gets the triggers');
SELECT is(pg_temp.triggers_on('public.shop_paid_big'), '-',
	'a partition detached (empty) loses the triggers: its orders are no longer the tracked table''s');
SELECT is(pg_temp.triggers_on('public.shop_paid_huge'),
	'referral_orders_del referral_orders_ins referral_orders_trunc referral_orders_upd',
	'a partition of a partition created later gets the triggers');
SELECT is((SELECT string_agg(DISTINCT pg_get_triggerdef(oid), ' ') FROM pg_trigger
	WHERE tgrelid = 'public.shop_later'::regclass AND tgname = 'referral_orders_ins'),
	'CREATE TRIGGER referral_orders_ins AFTER INSERT ON public.shop_later REFERENCING NEW TABLE AS referral_new FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger(''default'', ''public.shop_orders'', ''customer'', ''amount'', ''id'', ''status'', ''{paid,later,att}'', ''{refunded,cancelled}'', '''', '''')',
	'with the tracked table''s arguments and label');
SET LOCAL ROLE tap_shop;
INSERT INTO public.shop_later VALUES (4, 'c4', 50, 'later');
UPDATE public.shop_orders SET status = 'paid' WHERE id = 4;
INSERT INTO public.shop_att VALUES (5, 'c5', 50, 'att');
DELETE FROM public.shop_att WHERE id = 5;
INSERT INTO public.shop_paid_huge VALUES (6, 'c6', 500, 'paid');
INSERT INTO public.shop_orders VALUES (7, 'c7', 700, 'paid');
RESET ROLE;
SELECT is(pg_temp.status_of('c4'), 'converted:4', 'an INSERT into a partition created later converts');
SELECT is(pg_temp.attributed('4'), 1::bigint, 'and moving it to another partition does not attribute it again');
SELECT is(pg_temp.rewards_of('5'), 'referee:reversed referrer:reversed',
	'an order of a partition attached later converts, and a DELETE on it reverses');
SELECT is(pg_temp.status_of('c6'), 'converted:6', 'an INSERT into a later partition of a partition converts');
SELECT is(pg_temp.attributed('7'), 1::bigint, 'an INSERT through the parent into it: once');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty');

------------------------------------------------------------------------------------
-- TRUNCATE: of a partition, then of the whole table.  Order 1's rewards are paid out.
SELECT referral.approve_due(now() + '1000 days');
SELECT is(referral.mark_paid(ARRAY(SELECT id FROM referral.reward WHERE order_ref = '1'), 'payout'), 2::bigint,
	'order 1''s rewards are paid');
SET LOCAL ROLE tap_shop;
TRUNCATE public.shop_paid_small;
RESET ROLE;
SELECT is(pg_temp.rewards_of('1'), 'clawback:approved clawback:approved referee:paid referrer:paid',
	'TRUNCATE of a partition claws back the paid rewards of its orders');
SELECT is(pg_temp.status_of('c1'), 'pending', 'and reverts the referral its order converted');
SELECT is(pg_temp.rewards_of('6'), 'referee:approved referrer:approved', 'orders of other partitions keep theirs');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after TRUNCATE of a partition');

SET LOCAL ROLE tap_shop;
INSERT INTO public.shop_orders VALUES (8, 'c8', 50, 'paid'), (9, 'c9', 50, 'paid');
TRUNCATE public.shop_orders;
RESET ROLE;
SELECT is(pg_temp.rewards_of('6') || ' / ' || pg_temp.rewards_of('8'),
	'referee:reversed referrer:reversed / referee:reversed referrer:reversed',
	'TRUNCATE of the table reverses the rewards of the orders of every partition');
SELECT is((SELECT count(*) FROM referral.reward WHERE status <> 'reversed' AND reversed_at IS NULL AND kind <> 'clawback'),
	0::bigint, 'no reward is left standing');
SELECT is((SELECT count(*) FROM referral.referral WHERE status = 'converted'), 0::bigint, 'no referral is left converted');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after TRUNCATE of the table');

------------------------------------------------------------------------------------
-- DETACH and DROP of a partition that holds orders are refused; of an empty one not.
SET LOCAL ROLE tap_shop;
INSERT INTO public.shop_orders VALUES (10, 'c10', 50, 'paid'), (11, 'c11', 500, 'paid');
RESET ROLE;
SET LOCAL ROLE tap_shop;
SELECT throws_ok($$ALTER TABLE public.shop_paid DETACH PARTITION public.shop_paid_small$$, '55006',
	'cannot detach partition public.shop_paid_small of table public.shop_orders tracked by referral: it holds orders',
	'DETACH of a partition with orders is refused, naming the partition and the tracked table');
SELECT throws_ok($$DROP TABLE public.shop_paid_small$$, '55006',
	'cannot drop partition public.shop_paid_small of table public.shop_orders tracked by referral: it holds orders',
	'DROP of a partition with orders is refused');
SELECT throws_ok($$DROP TABLE public.shop_paid$$, '55006',
	'cannot drop partition public.shop_paid of table public.shop_orders tracked by referral: it holds orders',
	'DROP of a partitioned partition whose partitions hold orders is refused');
SELECT lives_ok($$ALTER TABLE public.shop_orders DETACH PARTITION public.shop_later$$, 'an empty partition detaches');
SELECT lives_ok($$DROP TABLE public.shop_att$$, 'an empty partition drops');
RESET ROLE;

-- The hint's way out: untrack the partition; its rewards stay.
SELECT lives_ok($$SELECT referral.untrack_orders('public.shop_paid_small')$$, 'untrack_orders on a partition');
SELECT is(pg_temp.triggers_on('public.shop_paid_small'), '-', 'drops the partition''s triggers');
SELECT is((SELECT relid::text FROM referral.untracked_partition), 'shop_paid_small', 'and records it');
SELECT is_empty($$SELECT * FROM referral.audit()$$,
	'audit() reads the tracked table without the untracked partition, still attached');
SET LOCAL ROLE tap_shop;
CREATE TABLE public.shop_more PARTITION OF public.shop_orders FOR VALUES IN ('more');
SELECT lives_ok($$ALTER TABLE public.shop_paid DETACH PARTITION public.shop_paid_small$$,
	'an untracked partition detaches');
RESET ROLE;
SELECT is(pg_temp.triggers_on('public.shop_paid_small'), '-', 'its triggers are not put back');
SELECT is(pg_temp.rewards_of('10'), 'referee:pending referrer:pending', 'and the rewards of its orders stay');
SELECT is_empty($$SELECT * FROM referral.audit()$$,
	'audit() no longer checks the orders of the untracked partition, once detached either');

SELECT throws_ok($$SELECT referral.track_orders('public.shop_paid', 'customer', 'amount')$$, '42710',
	'table "public.shop_paid" is a partition of tracked table "public.shop_orders"',
	'a partition of a tracked table cannot be tracked on its own');

-- untrack_orders of the table removes the triggers of every partition.
SELECT lives_ok($$SELECT referral.untrack_orders('public.shop_orders')$$, 'untrack the table');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'referral\_orders\_%'), 0::bigint,
	'no order trigger is left on any partition');

------------------------------------------------------------------------------------
-- TRUNCATE of a plain table whose orders carry their tenant; orders of referees of
-- another tenant, and rows without an id, are left alone.
CREATE TEMP TABLE acme AS SELECT referral.create_program('Acme', tenant => 'acme', starts_at => '2020-01-01') AS p;
SELECT referral.add_reward((SELECT p FROM acme), 'referrer', fixed => 3);
SELECT count(*) FROM referral.redeem(referral.issue_code((SELECT p FROM acme), 'boss'), 'c30');
CREATE TABLE public.mt_orders (id text, shop text, customer text, amount numeric);
SELECT referral.track_orders('public.mt_orders', 'customer', 'amount', tenant_column => 'shop');
INSERT INTO public.mt_orders VALUES ('x1', 'acme', 'c30', 50), ('x2', 'default', 'c31', 50), (NULL, 'acme', 'c32', 50);
SELECT is((SELECT string_agg(DISTINCT w.tenant || ':' || w.order_ref || ':' || w.status, ' ')
             FROM referral.reward w WHERE w.order_source = 'public.mt_orders'),
	'acme:x1:pending default:x2:pending', 'two orders of two tenants earned');
TRUNCATE public.mt_orders;
SELECT is((SELECT string_agg(DISTINCT w.tenant || ':' || w.order_ref || ':' || w.status, ' ')
             FROM referral.reward w WHERE w.order_source = 'public.mt_orders'),
	'acme:x1:reversed default:x2:reversed', 'TRUNCATE of a table with a tenant column reverses each tenant''s orders');

-- TRUNCATE sees every row it removes, also those the owner's own policies hide
-- from the owner: the ids are read by a scan in C, not by a query.
SET LOCAL ROLE tap_shop;
CREATE TABLE public.hidden_orders (id bigint, customer text, amount numeric);
ALTER TABLE public.hidden_orders ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY hide ON public.hidden_orders FOR SELECT USING (false);
CREATE POLICY add ON public.hidden_orders FOR INSERT WITH CHECK (true);
RESET ROLE;
SELECT referral.track_orders('public.hidden_orders', 'customer', 'amount');
SET LOCAL ROLE tap_shop;
INSERT INTO public.hidden_orders VALUES (1, 'c33', 50);
SELECT is((SELECT count(*) FROM public.hidden_orders), 0::bigint, 'the owner sees none of its orders');
TRUNCATE public.hidden_orders;
RESET ROLE;
SELECT is((SELECT string_agg(DISTINCT w.status, ' ') FROM referral.reward w WHERE w.order_source = 'public.hidden_orders'),
	'reversed', 'TRUNCATE reverses the orders a policy hides');

SELECT * FROM finish();
ROLLBACK;

-- track_orders / untrack_orders and the order trigger: the triggers and registry row
-- they install, every validation error, key and amount types, quoted names, tenant
-- and status columns, a role that may only write its orders table, bulk inserts,
-- refunds, deletes, amount changes, and a trigger that takes its configuration
-- from its own arguments only.
BEGIN;
SELECT plan(127);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

------------------------------------------------------------------------------------
-- The interface.
SELECT has_function('referral', 'track_orders',
	ARRAY['regclass','name','name','name','name','text[]','text[]','name','name','text']);
SELECT has_function('referral', 'untrack_orders', ARRAY['regclass']);
SELECT function_returns('referral', 'track_orders',
	ARRAY['regclass','name','name','name','name','text[]','text[]','name','name','text'], 'void');
SELECT function_returns('referral', 'untrack_orders', ARRAY['regclass'], 'void');
SELECT volatility_is('referral', 'track_orders',
	ARRAY['regclass','name','name','name','name','text[]','text[]','name','name','text'], 'volatile');
SELECT is_definer('referral', 'track_orders',
	ARRAY['regclass','name','name','name','name','text[]','text[]','name','name','text'],
	'track_orders is SECURITY DEFINER');
SELECT isnt_definer('referral', '_order_trigger', ARRAY[]::name[],
	'the trigger function is not SECURITY DEFINER: its C code becomes the owner around its SQL only');
SELECT function_lang_is('referral', '_order_trigger', ARRAY[]::name[], 'c', 'the trigger function is in C');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'referral._order_trigger()'::regprocedure),
	NULL::text[], 'the trigger function pins search_path in C, not with a SET clause');
SELECT function_privs_are('referral', 'track_orders',
	ARRAY['regclass','name','name','name','name','text[]','text[]','name','name','text'],
	'public', '{}'::text[], 'PUBLIC cannot track tables');
SELECT function_privs_are('referral', 'untrack_orders', ARRAY['regclass'], 'public', '{}'::text[],
	'PUBLIC cannot untrack tables');
SELECT function_privs_are('referral', '_order_trigger', ARRAY[]::text[], 'public', '{}'::text[],
	'PUBLIC cannot execute the trigger function');

------------------------------------------------------------------------------------
-- Programs, codes and referrals.  refer() redeems the referrer's code of a program.
CREATE TEMP TABLE prog AS SELECT
	referral.create_program('Main', starts_at => '2020-01-01') AS main,
	referral.create_program('Recurring', starts_at => '2020-01-01', recurring_window => '30 days') AS recurring,
	referral.create_program('Acme', tenant => 'acme', starts_at => '2020-01-01') AS acme;
CREATE TEMP TABLE rules AS
SELECT referral.add_reward(main, 'referee', percent => 10) AS main_referee,
       referral.add_reward(main, 'referrer', fixed => 10) AS main_referrer,
       referral.add_reward(recurring, 'referrer', fixed => 3) AS recurring_referrer,
       referral.add_reward(acme, 'referrer', fixed => 7) AS acme_referrer
  FROM prog;

CREATE FUNCTION pg_temp.refer(program bigint, referrer text, referee text, at timestamptz) RETURNS text
LANGUAGE sql AS $$
	SELECT r.status FROM referral.redeem(referral.issue_code(program, referrer), referee, at => at) r
$$;
CREATE FUNCTION pg_temp.status_of(customer text, in_tenant text DEFAULT 'default') RETURNS text
LANGUAGE sql AS $$
	SELECT r.status || COALESCE(':' || r.converting_order, '') FROM referral.referral r
	 WHERE r.tenant = in_tenant AND r.referee = customer AND r.status <> 'rejected'
$$;
CREATE FUNCTION pg_temp.rewards_of(source text, ref text)
RETURNS TABLE (beneficiary text, kind text, amount numeric, status text)
LANGUAGE sql AS $$
	SELECT w.beneficiary, w.kind, w.amount, w.status FROM referral.reward w
	 WHERE w.order_source = source AND w.order_ref = ref ORDER BY w.kind, w.beneficiary, w.id
$$;

------------------------------------------------------------------------------------
-- bigint customers, numeric amounts, a text status and an ordered_at column.
CREATE TABLE public.orders_bigint (
	id			bigint PRIMARY KEY,
	customer_id	bigint,
	total		numeric(12, 2),
	status		text,
	placed_at	timestamptz
);
SELECT lives_ok($$SELECT referral.track_orders('public.orders_bigint', 'customer_id', 'total',
	status_column => 'status', ordered_at_column => 'placed_at')$$, 'track a bigint-keyed table');
SELECT triggers_are('public', 'orders_bigint',
	ARRAY['referral_orders_ins', 'referral_orders_upd', 'referral_orders_del', 'referral_orders_trunc'],
	'three triggers installed, and one for TRUNCATE');
SELECT results_eq($$SELECT pg_get_triggerdef(oid) FROM pg_trigger
	WHERE tgrelid = 'public.orders_bigint'::regclass ORDER BY tgname$$,
	ARRAY[
	'CREATE TRIGGER referral_orders_del AFTER DELETE ON public.orders_bigint REFERENCING OLD TABLE AS referral_old FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger(''default'', ''public.orders_bigint'', ''customer_id'', ''total'', ''id'', ''status'', ''{paid}'', ''{refunded,cancelled}'', ''placed_at'', '''')',
	'CREATE TRIGGER referral_orders_ins AFTER INSERT ON public.orders_bigint REFERENCING NEW TABLE AS referral_new FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger(''default'', ''public.orders_bigint'', ''customer_id'', ''total'', ''id'', ''status'', ''{paid}'', ''{refunded,cancelled}'', ''placed_at'', '''')',
	'CREATE TRIGGER referral_orders_trunc BEFORE TRUNCATE ON public.orders_bigint FOR EACH STATEMENT EXECUTE FUNCTION referral._orders_truncated(''default'', ''public.orders_bigint'', ''customer_id'', ''total'', ''id'', ''status'', ''{paid}'', ''{refunded,cancelled}'', ''placed_at'', '''')',
	'CREATE TRIGGER referral_orders_upd AFTER UPDATE ON public.orders_bigint REFERENCING OLD TABLE AS referral_old NEW TABLE AS referral_new FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger(''default'', ''public.orders_bigint'', ''customer_id'', ''total'', ''id'', ''status'', ''{paid}'', ''{refunded,cancelled}'', ''placed_at'', '''')'
	], 'statement-level AFTER triggers with transition tables, configured by their arguments');
SELECT results_eq($$SELECT tenant, relid, customer_column, amount_column, id_column, status_column,
	paid_statuses, reversed_statuses, ordered_at_column, tenant_column, source FROM referral.tracked_table
	WHERE relid = 'public.orders_bigint'::regclass$$,
	$$VALUES ('default'::text, 'public.orders_bigint'::regclass, 'customer_id'::name, 'total'::name, 'id'::name,
	          'status'::name, '{paid}'::text[], '{refunded,cancelled}'::text[], 'placed_at'::name, NULL::name,
	          'public.orders_bigint'::text)$$,
	'the registry row');

SELECT is(pg_temp.refer(main, '100', '101', '2026-02-01') || pg_temp.refer(main, '100', '102', '2026-02-01')
	|| pg_temp.refer(main, '100', '103', '2026-02-01'), 'pendingpendingpending', 'three referrals of 100')
  FROM prog;

-- One statement: a paid order of 101, a pending one of 102, an order of a customer
-- nobody referred, and rows that cannot be attributed (NULL customer, NULL amount).
SELECT lives_ok($$INSERT INTO public.orders_bigint VALUES
	(1, 101, 100.00, 'paid', '2026-02-03'), (2, 102, 50.00, 'pending', '2026-02-03'),
	(3, 999, 70.00, 'paid', '2026-02-03'), (4, NULL, 80.00, 'paid', '2026-02-03'),
	(5, 103, NULL, 'paid', '2026-02-03'), (6, 103, 20.00, NULL, '2026-02-03')$$,
	'rows that are not attributable do not stop an insert');
SELECT is(pg_temp.status_of('101') || ' ' || pg_temp.status_of('102') || ' ' || pg_temp.status_of('103'),
	'converted:1 pending pending', 'the paid order converts 101; pending, NULL-amount and NULL-status orders do not');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('public.orders_bigint', '1')$$,
	$$VALUES ('101'::text, 'referee'::text, 10.00::numeric, 'pending'::text), ('100', 'referrer', 10.00, 'pending')$$,
	'order 1: referee 10% of 100.00, referrer 10.00');
SELECT is((SELECT converted_at FROM referral.referral WHERE referee = '101'), '2026-02-03'::timestamptz,
	'converted at the order''s ordered_at');

-- pending -> paid converts; paid -> refunded reverses; a later amount change follows.
UPDATE public.orders_bigint SET status = 'paid' WHERE id = 2;
SELECT is(pg_temp.status_of('102'), 'converted:2', 'an update to a paid status converts');
UPDATE public.orders_bigint SET total = 30.00 WHERE id = 2;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('public.orders_bigint', '2')$$,
	$$VALUES ('102'::text, 'referee'::text, 3.00::numeric, 'pending'::text), ('100', 'referrer', 10.00, 'pending')$$,
	'a lower amount of a paid order lowers its percent reward');
UPDATE public.orders_bigint SET status = 'refunded' WHERE id = 1;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('public.orders_bigint', '1')$$,
	$$VALUES ('101'::text, 'referee'::text, 10.00::numeric, 'reversed'::text), ('100', 'referrer', 10.00, 'reversed')$$,
	'paid -> refunded reverses the order''s rewards');
SELECT is(pg_temp.status_of('101'), 'pending', 'and the referral returns to pending');
UPDATE public.orders_bigint SET status = 'refunded' WHERE id = 1;
SELECT is((SELECT count(*) FROM referral.reward WHERE order_ref = '1' AND order_source = 'public.orders_bigint'),
	2::bigint, 'refunded -> refunded changes nothing');
DELETE FROM public.orders_bigint WHERE id = 2;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('public.orders_bigint', '2')$$,
	$$VALUES ('102'::text, 'referee'::text, 3.00::numeric, 'reversed'::text), ('100', 'referrer', 10.00, 'reversed')$$,
	'a deleted order''s rewards are reversed');
SELECT is(pg_temp.status_of('102'), 'pending', 'and its referral returns to pending');

-- One UPDATE refunds 103's converting order and pays another of 103's orders: the
-- reversal runs first, so the newly paid order converts the referral again.
INSERT INTO public.orders_bigint VALUES (7, 103, 40.00, 'paid', '2026-02-04'), (8, 103, 60.00, 'pending', '2026-02-05');
SELECT is(pg_temp.status_of('103'), 'converted:7', '103 converted by order 7');
UPDATE public.orders_bigint SET status = CASE id WHEN 7 THEN 'cancelled' ELSE 'paid' END WHERE id IN (7, 8);
SELECT is(pg_temp.status_of('103'), 'converted:8', 'cancelled 7 and paid 8 in one statement: 8 converts');

-- Recurring: two orders of one referee in one statement, the second outside the
-- attribution window but within recurring_window of the first.
SELECT is(pg_temp.refer(recurring, '110', '111', '2026-02-01'), 'pending', '111 referred in the recurring program') FROM prog;
INSERT INTO public.orders_bigint VALUES (20, 111, 10.00, 'paid', '2026-03-01'), (21, 111, 10.00, 'paid', '2026-03-15');
SELECT results_eq($$SELECT order_ref, beneficiary, kind, amount FROM referral.reward
	WHERE order_source = 'public.orders_bigint' AND order_ref IN ('20', '21') ORDER BY order_ref$$,
	$$VALUES ('20'::text, '110'::text, 'referrer'::text, 3.00::numeric), ('21', '110', 'referrer', 3.00)$$,
	'the converting order and a recurring one from the same statement both pay');
-- A later order alone, of a referee converted before: the revenue statement that
-- such an order runs first records nothing for a recurring program, and the
-- paid-orders statement after it pays the recurring reward.
INSERT INTO public.orders_bigint VALUES (22, 111, 10.00, 'paid', '2026-03-20');
SELECT results_eq($$SELECT w.kind, w.amount, o.converting FROM referral.reward w
	JOIN referral.attributed_order o ON o.order_source = w.order_source AND o.order_ref = w.order_ref
	WHERE w.order_source = 'public.orders_bigint' AND w.order_ref = '22'$$,
	$$VALUES ('referrer'::text, 3.00::numeric, false)$$,
	'a single later order of a converted referee in a recurring program pays, and is attributed once');

------------------------------------------------------------------------------------
-- uuid customers, integer amounts, a text id, no status nor ordered_at column, in a
-- schema and table whose names need quotes.
CREATE SCHEMA "Shop Data";
CREATE TABLE "Shop Data"."Order List" (
	"Order No"		text PRIMARY KEY,
	"Customer ID"	uuid,
	"Amount"		integer
);
SELECT lives_ok($$SELECT referral.track_orders('"Shop Data"."Order List"', 'Customer ID', 'Amount', 'Order No')$$,
	'track a quoted table with uuid customers and integer amounts');
SELECT triggers_are('Shop Data', 'Order List',
	ARRAY['referral_orders_ins', 'referral_orders_upd', 'referral_orders_del', 'referral_orders_trunc'],
	'three triggers on the quoted table, and one for TRUNCATE');
SELECT is((SELECT source FROM referral.tracked_table WHERE relid = '"Shop Data"."Order List"'::regclass),
	'"Shop Data"."Order List"', 'the source label is the quoted qualified name');
SELECT is(pg_temp.refer(main, '200', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', now() - interval '1 day'),
	'pending', 'a uuid customer referred yesterday') FROM prog;
SET LOCAL search_path = "Shop Data";
SET LOCAL jit = on;
INSERT INTO "Order List" VALUES ('A-1', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 250), ('A-2', NULL, 5);
CREATE TEMP TABLE settings_after AS SELECT current_setting('search_path') || ' / jit ' || current_setting('jit') AS s;
RESET search_path;
RESET jit;
SELECT is((SELECT s FROM settings_after), '"Shop Data" / jit on',
	'the settings the trigger pins for its SQL (search_path, jit) are the session''s again after it');
SELECT results_eq($$SELECT status, converting_order, converted_at FROM referral.referral
	WHERE referee = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'$$,
	$$VALUES ('converted'::text, 'A-1'::text, now())$$,
	'without ordered_at the order time is the transaction time; search_path does not matter');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('"Shop Data"."Order List"', 'A-1')$$,
	$$VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::text, 'referee'::text, 25.00::numeric, 'pending'::text),
	         ('200', 'referrer', 10.00, 'pending')$$,
	'an integer amount: referee 10% of 250');
UPDATE "Shop Data"."Order List" SET "Amount" = 120 WHERE "Order No" = 'A-1';
SELECT is((SELECT amount FROM referral.reward WHERE order_ref = 'A-1' AND kind = 'referee'), 12.00::numeric,
	'without a status column every order is paid: an amount change applies');
DELETE FROM "Shop Data"."Order List";
SELECT is((SELECT pg_catalog.string_agg(status, ',' ORDER BY id) FROM referral.reward WHERE order_ref = 'A-1'),
	'reversed,reversed', 'deleting the order reverses its rewards');

------------------------------------------------------------------------------------
-- text customers (collation "C"), a tenant column, an enum status, a date ordered_at.
CREATE TYPE public.order_state AS ENUM ('new', 'paid', 'refunded');
CREATE TABLE public.tenant_orders (
	id			integer PRIMARY KEY,
	shop		varchar(20),
	customer	text COLLATE "C",
	amount		bigint,
	state		public.order_state,
	day			date
);
SELECT lives_ok($$SELECT referral.track_orders('public.tenant_orders', 'customer', 'amount',
	status_column => 'state', ordered_at_column => 'day', tenant_column => 'shop')$$,
	'track a table with a tenant column and an enum status');
SELECT is((SELECT tenant || '|' || tenant_column FROM referral.tracked_table WHERE relid = 'public.tenant_orders'::regclass),
	'|shop', 'with a tenant column the registry''s tenant is empty');
SELECT is(pg_temp.refer(acme, 'boss', 'carol', '2026-03-01 10:00'), 'pending', 'carol referred in tenant acme') FROM prog;
SELECT is(pg_temp.refer(main, '300', 'carol', '2026-03-01 10:00'), 'pending', 'another carol referred in tenant default') FROM prog;
INSERT INTO public.tenant_orders VALUES (1, 'acme', 'carol', 30, 'new', '2026-03-02'), (2, 'elsewhere', 'carol', 30, 'paid', '2026-03-02');
SELECT is(pg_temp.status_of('carol', 'acme') || ' ' || pg_temp.status_of('carol'), 'pending pending',
	'an unpaid order and an order of another tenant convert nothing');
UPDATE public.tenant_orders SET state = 'paid' WHERE id = 1;
SELECT is(pg_temp.status_of('carol', 'acme') || ' ' || pg_temp.status_of('carol'), 'converted:1 pending',
	'the order of tenant acme converts carol''s acme referral only');
SELECT results_eq($$SELECT tenant, beneficiary, kind, amount FROM referral.reward WHERE order_source = 'public.tenant_orders'$$,
	$$VALUES ('acme'::text, 'boss'::text, 'referrer'::text, 7.00::numeric)$$, 'the acme program''s reward');
UPDATE public.tenant_orders SET state = 'refunded';
SELECT is((SELECT status FROM referral.reward WHERE order_source = 'public.tenant_orders'), 'reversed',
	'an enum status updated to refunded reverses');
-- The first pass probes accepted referrals by customer alone (a hash index): of
-- carol's two, the order's tenant picks the one it converts.
INSERT INTO public.tenant_orders VALUES (3, 'default', 'carol', 30, 'paid', '2026-03-03');
SELECT is(pg_temp.status_of('carol', 'acme') || ' ' || pg_temp.status_of('carol'), 'pending converted:3',
	'an order inserted paid in tenant default converts carol''s referral there, not the one in acme');

------------------------------------------------------------------------------------
-- Two tables with the same column names and different types, in one session, and
-- a column type changed after tracking: each runs with its own plan.
CREATE TABLE public.same_a (id bigint, customer bigint, amount numeric);
CREATE TABLE public.same_b (id text, customer text, amount integer);
SELECT lives_ok($$SELECT referral.track_orders('public.same_a', 'customer', 'amount')$$, 'track same_a');
SELECT lives_ok($$SELECT referral.track_orders('public.same_b', 'customer', 'amount')$$, 'track same_b');
SELECT is(pg_temp.refer(main, '400', '401', now()) || pg_temp.refer(main, '400', 'bee', now())
	|| pg_temp.refer(main, '400', '402', now()), 'pendingpendingpending', 'three referrals of 400') FROM prog;
INSERT INTO public.same_a VALUES (1, 401, 10.5);
INSERT INTO public.same_b VALUES ('x', 'bee', 10);
ALTER TABLE public.same_a ALTER COLUMN customer TYPE text, ALTER COLUMN amount TYPE integer USING amount::integer;
INSERT INTO public.same_a VALUES (2, '402', 10);
SELECT is(pg_temp.status_of('401') || ' ' || pg_temp.status_of('bee') || ' ' || pg_temp.status_of('402'),
	'converted:1 converted:x converted:2', 'same column names, other types, and after ALTER COLUMN TYPE');

-- A partitioned table.
CREATE TABLE public.part_orders (id bigint, customer bigint, amount numeric) PARTITION BY RANGE (id);
CREATE TABLE public.part_orders_1 PARTITION OF public.part_orders FOR VALUES FROM (0) TO (1000);
SELECT lives_ok($$SELECT referral.track_orders('public.part_orders', 'customer', 'amount')$$, 'track a partitioned table');
SELECT is(pg_temp.refer(main, '500', '501', now()), 'pending', '501 referred') FROM prog;
INSERT INTO public.part_orders VALUES (5, 501, 20);
SELECT is(pg_temp.status_of('501'), 'converted:5', 'an order routed to a partition converts');

------------------------------------------------------------------------------------
-- The trigger's configuration is its arguments: renaming the table keeps the
-- source label, and the registry is not read.  A renamed column is an error that
-- names it.
ALTER TABLE public.same_b RENAME TO same_b_renamed;
DELETE FROM referral.tracked_table WHERE relid = 'public.same_b_renamed'::regclass;
SELECT is(pg_temp.refer(main, '400', 'bee2', now()), 'pending', 'bee2 referred') FROM prog;
INSERT INTO public.same_b_renamed VALUES ('y', 'bee2', 10);
SELECT is((SELECT order_source FROM referral.reward WHERE order_ref = 'y' AND kind = 'referee'), 'public.same_b',
	'a renamed table without registry row still attributes, under the label it was tracked with');
ALTER TABLE public.same_b_renamed RENAME COLUMN customer TO client;
SELECT throws_ok($$INSERT INTO public.same_b_renamed VALUES ('z', 'bee2', 10)$$, '42703',
	'column "customer" of table "same_b_renamed" tracked by referral does not exist',
	'a column renamed after tracking is an error naming it');

------------------------------------------------------------------------------------
-- Validation: every error, and nothing created by a call that fails.
CREATE TABLE public.orders_bad (
	id			bigint,
	customer_id	bigint,
	total		numeric,
	flag		boolean,
	note		text,
	at_ts		timestamptz,
	state		integer,
	tenant_id	text
);
CREATE VIEW public.orders_view AS SELECT * FROM public.orders_bad;
CREATE TABLE public.no_id (customer_id bigint, total numeric);
CREATE DOMAIN public.customer_key AS text;
CREATE TABLE public.domain_orders (id bigint, customer public.customer_key, total numeric);

SELECT throws_ok($$SELECT referral.track_orders('public.orders_view', 'customer_id', 'total')$$,
	'42809', '"public.orders_view" is not a table', 'a view cannot be tracked');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'nope', 'total')$$,
	'42703', 'column "nope" of table "public.orders_bad" does not exist', 'a missing customer column');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'nope')$$,
	'42703', 'column "nope" of table "public.orders_bad" does not exist', 'a missing amount column');
SELECT throws_ok($$SELECT referral.track_orders('public.no_id', 'customer_id', 'total')$$,
	'42703', 'column "id" of table "public.no_id" does not exist', 'the default id column is missing');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total', status_column => 'nope')$$,
	'42703', 'column "nope" of table "public.orders_bad" does not exist', 'a missing status column');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total', ordered_at_column => 'nope')$$,
	'42703', 'column "nope" of table "public.orders_bad" does not exist', 'a missing ordered_at column');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total', tenant_column => 'nope')$$,
	'42703', 'column "nope" of table "public.orders_bad" does not exist', 'a missing tenant column');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'flag', 'total')$$,
	'42804', 'customer column "flag" of table "public.orders_bad" has type boolean', 'a boolean customer column');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'note')$$,
	'42804', 'amount column "note" of table "public.orders_bad" has type text', 'a text amount column');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total', 'at_ts')$$,
	'42804', 'id column "at_ts" of table "public.orders_bad" has type timestamp with time zone', 'a timestamptz id column');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total', status_column => 'state')$$,
	'42804', 'status column "state" of table "public.orders_bad" has type integer', 'an integer status column');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total', ordered_at_column => 'note')$$,
	'42804', 'ordered_at column "note" of table "public.orders_bad" has type text', 'a text ordered_at column');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total', tenant_column => 'flag')$$,
	'42804', 'tenant column "flag" of table "public.orders_bad" has type boolean', 'a boolean tenant column');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', NULL, 'total')$$,
	'22004', 'customer_column must not be NULL', 'a NULL customer column');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total', paid_statuses => '{}')$$,
	'22023', 'paid_statuses must not be empty', 'no paid status');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total', reversed_statuses => '{refunded,NULL}')$$,
	'22023', 'reversed_statuses must not contain NULL', 'a NULL status');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total',
	paid_statuses => '{paid,settled}', reversed_statuses => '{settled,refunded,paid}')$$,
	'22023', 'paid_statuses and reversed_statuses overlap: paid, settled', 'a status both paid and reversed');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total', tenant => ' ')$$,
	'22023', 'tenant must not be empty', 'an empty tenant');
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bigint', 'customer_id', 'total')$$,
	'42710', 'table "public.orders_bigint" is already tracked', 'a table tracked twice');
SELECT throws_ok($$SELECT referral.track_orders('public.same_b_renamed', 'client', 'amount')$$,
	'42710', 'table "public.same_b_renamed" is already tracked', 'triggers of ours without a registry row: tracked');
CREATE FUNCTION public.own_trigger() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER referral_orders_upd AFTER UPDATE ON public.orders_bad FOR EACH STATEMENT EXECUTE FUNCTION public.own_trigger();
SELECT throws_ok($$SELECT referral.track_orders('public.orders_bad', 'customer_id', 'total')$$,
	'42710', 'trigger "referral_orders_upd" for table "public.orders_bad" already exists', 'a trigger name taken');
SELECT is_empty($$SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.orders_bad'::regclass AND tgname <> 'referral_orders_upd'
	UNION ALL SELECT 1 FROM referral.tracked_table WHERE relid = 'public.orders_bad'::regclass$$,
	'failed calls created nothing');
SELECT throws_ok($$SELECT referral.untrack_orders('public.orders_bad')$$,
	'42704', 'table "public.orders_bad" is not tracked', 'untracking a table that is not tracked');
SELECT lives_ok($$SELECT referral.track_orders('public.domain_orders', 'customer', 'total')$$,
	'a domain over text is a text column');

-- A role may only track the tables it may put triggers on.
CREATE ROLE referral_test_tracker NOLOGIN;
GRANT EXECUTE ON FUNCTION referral.track_orders(regclass, name, name, name, name, text[], text[], name, name, text)
	TO referral_test_tracker;
SET LOCAL ROLE referral_test_tracker;
SELECT throws_ok($$SELECT referral.track_orders('public.no_id', 'customer_id', 'total', 'customer_id')$$,
	'42501', 'permission denied for table public.no_id', 'tracking needs the TRIGGER privilege on the table');
RESET ROLE;

-- The trigger function checks how it is fired.
CREATE TABLE public.misfired (id bigint, customer bigint, amount numeric);
CREATE TRIGGER by_row AFTER INSERT ON public.misfired FOR EACH ROW
	EXECUTE FUNCTION referral._order_trigger('default', 'x', 'customer', 'amount', 'id', '', '{paid}', '{}', '', '');
SELECT throws_ok($$INSERT INTO public.misfired VALUES (1, 1, 1)$$, '39P01',
	'referral order trigger "by_row" must be fired AFTER ... FOR EACH STATEMENT', 'a row trigger is refused');
DROP TRIGGER by_row ON public.misfired;
CREATE TRIGGER few_args AFTER INSERT ON public.misfired REFERENCING NEW TABLE AS referral_new
	FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger('default');
SELECT throws_ok($$INSERT INTO public.misfired VALUES (1, 1, 1)$$, '39P01',
	'referral order trigger "few_args" takes 10 arguments, got 1', 'a wrong number of arguments is refused');
DROP TRIGGER few_args ON public.misfired;
CREATE TRIGGER other_name AFTER INSERT ON public.misfired REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger('default', 'x', 'customer', 'amount', 'id', '', '{paid}', '{}', '', '');
SELECT throws_ok($$INSERT INTO public.misfired VALUES (1, 1, 1)$$, '39P01',
	'referral order trigger "other_name" needs the transition table referral_new', 'another transition table name is refused');
DROP TRIGGER other_name ON public.misfired;

------------------------------------------------------------------------------------
-- A role that may only write its orders table (nothing on referral) gets its
-- orders attributed and refunded.
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer_id bigint, total numeric, status text);
SELECT lives_ok($$SELECT referral.track_orders('shop.orders', 'customer_id', 'total', status_column => 'status')$$,
	'track the shop''s table');
CREATE ROLE referral_test_writer NOLOGIN;
GRANT USAGE ON SCHEMA shop TO referral_test_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON shop.orders TO referral_test_writer;
SELECT is(pg_temp.refer(main, '600', '601', now()), 'pending', '601 referred') FROM prog;
SET LOCAL ROLE referral_test_writer;
SELECT throws_ok($$SELECT count(*) FROM referral.referral$$, '42501', 'permission denied for table referral',
	'the writer cannot read the referral tables');
INSERT INTO shop.orders VALUES (1, 601, 90, 'paid');
RESET ROLE;
SELECT is(pg_temp.status_of('601'), 'converted:1', 'the writer''s order converts the referral');
SET LOCAL ROLE referral_test_writer;
UPDATE shop.orders SET status = 'refunded' WHERE id = 1;
RESET ROLE;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('shop.orders', '1')$$,
	$$VALUES ('601'::text, 'referee'::text, 9.00::numeric, 'reversed'::text), ('600', 'referrer', 10.00, 'reversed')$$,
	'the writer''s refund reverses the rewards');

------------------------------------------------------------------------------------
-- Bulk: one INSERT ... SELECT of 10000 orders converts exactly the referred customers
-- among them (every 200th), whatever else the statement holds (NULL customers,
-- customers nobody referred); referrals of customers without orders stay pending.
CREATE TABLE public.bulk_orders (id bigint PRIMARY KEY, customer_id bigint, total numeric);
SELECT lives_ok($$SELECT referral.track_orders('public.bulk_orders', 'customer_id', 'total')$$, 'track the bulk table');
SELECT is((SELECT count(*) FROM generate_series(1, 50) g, prog,
	pg_temp.refer(main, 'bulk-referrer', (1000000 + g * 200)::text, now() - interval '1 hour') s WHERE s = 'pending'),
	50::bigint, '50 referrals among the bulk customers');
SELECT is(pg_temp.refer(main, 'bulk-referrer', '2000000', now() - interval '1 hour')
	|| pg_temp.refer(main, 'bulk-referrer', '2000001', now() - interval '1 hour'), 'pendingpending',
	'two referrals of customers without orders') FROM prog;
INSERT INTO public.bulk_orders
SELECT g, CASE WHEN g % 997 = 0 THEN NULL ELSE 1000000 + g END, 10 + g % 7
  FROM generate_series(1, 10000) g;
SELECT results_eq($$SELECT referee, converting_order FROM referral.referral
	WHERE referrer = 'bulk-referrer' AND status = 'converted' ORDER BY referee$$,
	$$SELECT (1000000 + g * 200)::text, (g * 200)::text FROM generate_series(1, 50) g ORDER BY 1$$,
	'exactly the 50 referred customers converted, each by its own order');
SELECT is((SELECT count(*) FROM referral.referral WHERE referrer = 'bulk-referrer' AND status = 'pending'), 2::bigint,
	'the others stay pending');
SELECT is((SELECT count(*) FROM referral.reward WHERE order_source = 'public.bulk_orders'), 100::bigint,
	'one referee and one referrer reward per conversion');
SELECT is((SELECT sum(amount) FROM referral.reward WHERE order_source = 'public.bulk_orders' AND kind = 'referee'),
	(SELECT sum((10 + (g * 200) % 7) / 10.0) FROM generate_series(1, 50) g), 'referee rewards are 10% of each order');
DELETE FROM public.bulk_orders WHERE id <= 5000;
SELECT is((SELECT count(*) FROM referral.referral WHERE referrer = 'bulk-referrer' AND status = 'converted'), 25::bigint,
	'a bulk delete reverts the referrals its orders converted');
-- 40 more orders of each of the 50 referees in one statement: the 25 reverted referrals
-- convert again (by their first order), and every other order is revenue.
SET client_min_messages = debug1;
INSERT INTO public.bulk_orders SELECT 20000 + g, 1000000 + (g % 50 + 1) * 200, 20 FROM generate_series(1, 2000) g;
RESET client_min_messages;
SELECT is((SELECT count(*) FROM referral.referral WHERE referrer = 'bulk-referrer' AND status = 'converted'), 50::bigint,
	'the reverted referrals convert again');
SELECT is((SELECT count(*) FROM referral.attributed_order WHERE order_source = 'public.bulk_orders'
	AND length(order_ref) = 5 AND order_ref COLLATE "C" > '20000' AND reversed_at IS NULL), 2000::bigint, 'every order of the statement is revenue');
SELECT is((SELECT count(*) FROM referral.attributed_order WHERE order_source = 'public.bulk_orders'
	AND length(order_ref) = 5 AND order_ref COLLATE "C" > '20000' AND converting), 25::bigint, 'and 25 of them converting ones');

------------------------------------------------------------------------------------
-- A bulk INSERT (10,000 orders or more) whose orders are all of referees converted
-- before records their revenue with a plain INSERT, in a subtransaction; an order id
-- attributed before makes it fail, and the statement runs again with ON CONFLICT,
-- which skips that order.  (The table's ids are not unique.)
CREATE TABLE public.bulk_again (id bigint, customer text NOT NULL, amount numeric NOT NULL);
SELECT referral.track_orders('public.bulk_again', 'customer', 'amount');
SELECT is(pg_temp.refer(main, 'bulk-boss', 'bulk-loyal', now()), 'pending', 'bulk-loyal referred') FROM prog;
INSERT INTO public.bulk_again VALUES (1, 'bulk-loyal', 50);
INSERT INTO public.bulk_again SELECT i, 'bulk-loyal', 20 FROM generate_series(2, 10001) i;
SELECT is((SELECT count(*) FROM referral.attributed_order WHERE order_source = 'public.bulk_again'),
	10001::bigint, 'the converting order and 10,000 later ones are revenue');
SELECT isnt((SELECT a.xmin::text FROM referral.attributed_order a
              WHERE a.order_source = 'public.bulk_again' AND a.order_ref = '5000'),
            (SELECT o.xmin::text FROM public.bulk_again o WHERE o.id = 5000),
	'recorded by a plain INSERT in a subtransaction of its own');
INSERT INTO public.bulk_again SELECT i, 'bulk-loyal', 30 FROM generate_series(10001, 20001) i;
SELECT is((SELECT count(*) || ' ' || sum(amount) FROM referral.attributed_order WHERE order_source = 'public.bulk_again'),
	'20001 ' || (50 + 10000 * 20 + 10000 * 30), 'an order id attributed before is skipped, the 10,000 others are revenue');
SELECT is((SELECT a.xmin::text FROM referral.attributed_order a
            WHERE a.order_source = 'public.bulk_again' AND a.order_ref = '15000'),
          (SELECT o.xmin::text FROM public.bulk_again o WHERE o.id = 15000),
	'after the unique violation the statement ran again in the order''s own transaction');
-- A bulk load that converts: the revenue of the referrals it converts and of those
-- converted before is written after the conversions, by one plain INSERT that
-- leaves out the converting orders (attributed already) without a conflict.
SELECT is(pg_temp.refer(main, 'bulk-boss', 'bulk-new', now()), 'pending', 'bulk-new referred') FROM prog;
INSERT INTO public.bulk_again
SELECT i, CASE WHEN i % 2 = 0 THEN 'bulk-new' ELSE 'bulk-loyal' END, 10 FROM generate_series(30001, 50000) i;
SELECT is((SELECT status || ' ' || converting_order FROM referral.referral WHERE referee = 'bulk-new'),
	'converted 30002', 'bulk-new converted by its first order of the load');
SELECT is((SELECT count(*) || ' ' || count(*) FILTER (WHERE converting) FROM referral.attributed_order
            WHERE order_source = 'public.bulk_again' AND order_ref::bigint BETWEEN 30001 AND 50000),
	'20000 1', 'every order of the load is attributed: one converting, the rest revenue of both referees');
SELECT is((SELECT count(*) FROM referral.attributed_order a JOIN public.bulk_again o ON o.id::text = a.order_ref
            WHERE a.order_source = 'public.bulk_again' AND o.id BETWEEN 30001 AND 50000
              AND a.xmin::text = o.xmin::text),
	1::bigint, 'only the converting order was written in the order''s transaction; the revenue in a subtransaction');
-- The same with an order id attributed before in the load: the plain INSERT fails,
-- and the statement runs again with ON CONFLICT DO NOTHING.
SELECT is(pg_temp.refer(main, 'bulk-boss', 'bulk-third', now()), 'pending', 'bulk-third referred') FROM prog;
INSERT INTO public.bulk_again
SELECT i, CASE WHEN i = 50001 THEN 'bulk-loyal' ELSE 'bulk-third' END, CASE WHEN i = 50001 THEN 99 ELSE 10 END
  FROM generate_series(50001, 60001) i
UNION ALL SELECT 5000, 'bulk-loyal', 99;
SELECT is((SELECT count(*) || ' ' || sum(amount) FROM referral.attributed_order
            WHERE order_source = 'public.bulk_again' AND order_ref::bigint BETWEEN 50001 AND 60001),
	'10001 ' || (99 + 10000 * 10), 'bulk-third converted and its 10,000 later orders are revenue');
SELECT is((SELECT amount FROM referral.attributed_order WHERE order_source = 'public.bulk_again' AND order_ref = '5000'),
	20::numeric, 'the order id attributed before keeps its first attribution');

------------------------------------------------------------------------------------
-- untrack_orders: triggers and registry row gone, rewards stay, orders no longer count.
SELECT lives_ok($$SELECT referral.untrack_orders('public.orders_bigint')$$, 'untrack');
SELECT is_empty($$SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.orders_bigint'::regclass$$,
	'the triggers are gone');
SELECT is_empty($$SELECT 1 FROM referral.tracked_table WHERE relid = 'public.orders_bigint'::regclass$$,
	'the registry row is gone');
SELECT is((SELECT count(*) FROM referral.reward WHERE order_source = 'public.orders_bigint'), 11::bigint,
	'the rewards stay');
UPDATE public.orders_bigint SET status = 'refunded' WHERE id = 8;
SELECT is(pg_temp.status_of('103'), 'converted:8', 'a refund after untrack changes nothing');
SELECT lives_ok($$SELECT referral.track_orders('public.orders_bigint', 'customer_id', 'total')$$,
	'the table can be tracked again');
SELECT lives_ok($$SELECT referral.untrack_orders('public.same_b_renamed')$$,
	'untracking a table whose registry row is gone drops its triggers');
SELECT is_empty($$SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.same_b_renamed'::regclass$$,
	'and they are gone');
CREATE TEMP TABLE dropped AS SELECT 'public.domain_orders'::regclass::oid AS relid;
DROP TABLE public.domain_orders;
SELECT lives_ok($$SELECT referral.untrack_orders((SELECT relid FROM dropped)::regclass)$$,
	'a dropped table''s registry row is removed by OID');
SELECT is_empty($$SELECT 1 FROM referral.tracked_table WHERE relid = (SELECT relid FROM dropped)$$, 'and it is gone');

SELECT * FROM finish();
ROLLBACK;

-- The order path against every kind of statement that writes orders: only rows
-- really written count.  ON CONFLICT DO NOTHING and DO UPDATE, a BEFORE ROW trigger
-- that changes the customer or amount or drops the row, a partitioned table (rows
-- routed, moved between partitions, deleted via the parent), COPY FROM STDIN, a
-- statement rolled back to a savepoint or failing after the order trigger ran, and a
-- customer referred after the backend saw orders of theirs.  Each case checks the
-- rewards, the referral, the attributed revenue and that audit() is empty; every
-- figure is worked out by hand in the comments.
BEGIN;
SELECT plan(80);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

-- Referee $5; referrer 10% up to $20 (rewards stay pending: a 30-day hold).  Every
-- referral is accepted on 2026-02-01 and every order placed on 2026-02-02 unless
-- said otherwise, inside the 30-day attribution window.
CREATE TEMP TABLE prog AS SELECT referral.create_program('Statements', starts_at => '2026-01-01') AS id;
SELECT referral.add_reward((SELECT id FROM prog), 'referee', fixed => 5);
SELECT referral.add_reward((SELECT id FROM prog), 'referrer', percent => 10, cap => 20);
CREATE TEMP TABLE ann AS SELECT referral.issue_code((SELECT id FROM prog), 'ann') AS code;

CREATE FUNCTION pg_temp.refer(customer text) RETURNS text
LANGUAGE sql AS $$
	SELECT r.status || COALESCE(':' || r.reason, '')
	  FROM referral.redeem((SELECT code FROM ann), customer, at => '2026-02-01') r
$$;
-- A referee's referral: 'pending:-', 'converted:<converting order>', or NULL.
CREATE FUNCTION pg_temp.referral_of(customer text) RETURNS text
LANGUAGE sql AS $$
	SELECT r.status || ':' || COALESCE(r.converting_order, '-') FROM referral.referral r
	 WHERE r.referee = customer AND r.status <> 'rejected'
$$;
-- The rewards earned through a referee's referral, oldest first.
CREATE FUNCTION pg_temp.rewards_of(customer text)
RETURNS TABLE (order_ref text, beneficiary text, kind text, amount numeric, status text)
LANGUAGE sql AS $$
	SELECT w.order_ref, w.beneficiary, w.kind, w.amount, w.status
	  FROM referral.reward w JOIN referral.referral r ON r.id = w.referral_id
	 WHERE r.referee = customer ORDER BY w.id
$$;
-- The referee's attributed orders not reversed: how many, and their amount.
CREATE FUNCTION pg_temp.revenue_of(customer text) RETURNS text
LANGUAGE sql AS $$
	SELECT count(a.*) || ' orders, ' || COALESCE(sum(a.amount), 0)
	  FROM referral.referral r
	  LEFT JOIN referral.attributed_order a ON a.referral_id = r.id AND a.reversed_at IS NULL
	 WHERE r.referee = customer AND r.status <> 'rejected'
$$;
-- An orders table of the usual shape, tracked.
CREATE FUNCTION pg_temp.orders_table(name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE public.%I (
		id			bigint PRIMARY KEY,
		customer	text NOT NULL,
		total		numeric(12, 2) NOT NULL,
		status		text NOT NULL DEFAULT ''paid'',
		placed_at	timestamptz NOT NULL DEFAULT ''2026-02-02 12:00+00'',
		note		text)', name);
	PERFORM referral.track_orders(('public.' || name)::regclass, 'customer', 'total',
		status_column => 'status', ordered_at_column => 'placed_at');
END
$$;

------------------------------------------------------------------------------------
-- 1. INSERT ... ON CONFLICT DO NOTHING: a skipped row earns nothing.
SELECT pg_temp.orders_table('nothing_orders');
SELECT is(pg_temp.refer('a1') || pg_temp.refer('a2') || pg_temp.refer('a3') || pg_temp.refer('a4'),
	'pendingpendingpendingpending', 'a1 to a4 referred by ann');

-- Order 101 is zed's (nobody referred him): a1's order 101 is skipped, a2's 102 is
-- written (a2 5, ann 10% of 50).
INSERT INTO public.nothing_orders (id, customer, total) VALUES (101, 'zed', 10);
INSERT INTO public.nothing_orders (id, customer, total) VALUES (101, 'a1', 80), (102, 'a2', 50)
	ON CONFLICT (id) DO NOTHING;
SELECT is(pg_temp.referral_of('a1'), 'pending:-', 'a skipped row does not convert its customer');
SELECT is_empty($$SELECT * FROM pg_temp.rewards_of('a1')$$, 'and earns nothing');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('a2')$$,
	$$VALUES ('102'::text, 'a2'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('102', 'ann', 'referrer', 5.00, 'pending')$$,
	'the inserted row of the same statement converts');

-- Again with 102 (skipped now) and a3's 103 (ann 7.00).
INSERT INTO public.nothing_orders (id, customer, total) VALUES (102, 'a2', 50), (103, 'a3', 70)
	ON CONFLICT DO NOTHING;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('a2') UNION ALL SELECT * FROM pg_temp.rewards_of('a3')$$,
	$$VALUES ('102'::text, 'a2'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('102', 'ann', 'referrer', 5.00, 'pending'),
	         ('103', 'a3', 'referee', 5.00, 'pending'),
	         ('103', 'ann', 'referrer', 7.00, 'pending')$$,
	'a row inserted again and skipped earns nothing more; the new one converts');
SELECT is(pg_temp.revenue_of('a2'), '1 orders, 50.00', 'a2''s revenue is its one order');

-- a4's unpaid order stays unpaid: the paid row that conflicts with it is skipped.
INSERT INTO public.nothing_orders (id, customer, total, status) VALUES (104, 'a4', 60, 'pending');
INSERT INTO public.nothing_orders (id, customer, total, status) VALUES (104, 'a4', 60, 'paid')
	ON CONFLICT (id) DO NOTHING;
SELECT is(pg_temp.referral_of('a4') || ' ' || pg_temp.revenue_of('a4'), 'pending:- 0 orders, 0',
	'a skipped paid row does not pay the unpaid order it conflicts with');

-- A bulk load of 3,000 rows, 100 of them skipped: a1's skipped 1050 would come first
-- (orders of one statement go by time, then id), so a1 converts with 3500 (10.00:
-- ann 1.00).
INSERT INTO public.nothing_orders (id, customer, total) SELECT i, 'zed', 1 FROM generate_series(1000, 1099) i;
INSERT INTO public.nothing_orders (id, customer, total)
SELECT i, CASE WHEN i IN (1050, 3500) THEN 'a1' ELSE 'bulk-' || i END, 10 FROM generate_series(1000, 3999) i
	ON CONFLICT (id) DO NOTHING;
SELECT is(pg_temp.referral_of('a1'), 'converted:3500', 'a bulk load: the skipped row does not convert, the written one does');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('a1')$$,
	$$VALUES ('3500'::text, 'a1'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('3500', 'ann', 'referrer', 1.00, 'pending')$$,
	'a1 earns once, for the written order');
SELECT is(pg_temp.revenue_of('a1'), '1 orders, 10.00', 'and only that order is revenue');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after ON CONFLICT DO NOTHING');

------------------------------------------------------------------------------------
-- 2. INSERT ... ON CONFLICT DO UPDATE: an updated row counts once.
SELECT pg_temp.orders_table('upsert_orders');
SELECT is(pg_temp.refer('b1') || pg_temp.refer('b2') || pg_temp.refer('b3') || pg_temp.refer('b4'),
	'pendingpendingpendingpending', 'b1 to b4 referred by ann');

-- b1's order 201 comes unpaid, then an upsert pays it: b1 5, ann 6.00.
INSERT INTO public.upsert_orders (id, customer, total, status) VALUES (201, 'b1', 60, 'pending');
SELECT is(pg_temp.referral_of('b1'), 'pending:-', 'an unpaid order does not convert');
INSERT INTO public.upsert_orders (id, customer, total, status) VALUES (201, 'b1', 60, 'paid')
	ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status;
SELECT is(pg_temp.referral_of('b1'), 'converted:201', 'an upsert that updates pending -> paid converts');
-- The same upsert again, in a second statement: nothing more.
INSERT INTO public.upsert_orders (id, customer, total, status) VALUES (201, 'b1', 60, 'paid')
	ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('b1')$$,
	$$VALUES ('201'::text, 'b1'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('201', 'ann', 'referrer', 6.00, 'pending')$$,
	'an upsert that sets the same paid row again earns once');
SELECT is(pg_temp.revenue_of('b1'), '1 orders, 60.00', 'and is revenue once');

-- Its amount raised to 80 by an upsert: no reward is raised, revenue follows.
INSERT INTO public.upsert_orders (id, customer, total, status) VALUES (201, 'b1', 80, 'paid')
	ON CONFLICT (id) DO UPDATE SET total = EXCLUDED.total, status = EXCLUDED.status;
SELECT is(pg_temp.revenue_of('b1') || ' ' || (SELECT string_agg(amount::text, ',') FROM pg_temp.rewards_of('b1')),
	'1 orders, 80.00 5.00,6.00', 'an upsert that raises the amount: revenue 80, rewards as they were');
-- Lowered to 40: ann's pending reward is lowered to 4.00; in the same statement
-- b2's 202 (90) is inserted and converts (b2 5, ann 9.00).
INSERT INTO public.upsert_orders (id, customer, total, status) VALUES (202, 'b2', 90, 'paid'), (201, 'b1', 40, 'paid')
	ON CONFLICT (id) DO UPDATE SET total = EXCLUDED.total, status = EXCLUDED.status;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('b1') UNION ALL SELECT * FROM pg_temp.rewards_of('b2')$$,
	$$VALUES ('201'::text, 'b1'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('201', 'ann', 'referrer', 4.00, 'pending'),
	         ('202', 'b2', 'referee', 5.00, 'pending'),
	         ('202', 'ann', 'referrer', 9.00, 'pending')$$,
	'one upsert: the updated row lowers its reward, the inserted row converts');
SELECT is(pg_temp.revenue_of('b1') || '; ' || pg_temp.revenue_of('b2'), '1 orders, 40.00; 1 orders, 90.00',
	'revenue of both');

-- zed's paid order 203 becomes b3's by an upsert: b3 converts (b3 5, ann 3.00).
INSERT INTO public.upsert_orders (id, customer, total) VALUES (203, 'zed', 30);
INSERT INTO public.upsert_orders (id, customer, total) VALUES (203, 'b3', 30)
	ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('b3')$$,
	$$VALUES ('203'::text, 'b3'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('203', 'ann', 'referrer', 3.00, 'pending')$$,
	'an upsert that changes the customer converts the new customer');

-- DO UPDATE ... WHERE that skips the row: b4's order stays unpaid.
INSERT INTO public.upsert_orders (id, customer, total, status) VALUES (204, 'b4', 50, 'pending');
INSERT INTO public.upsert_orders AS o (id, customer, total, status) VALUES (204, 'b4', 50, 'paid')
	ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status WHERE o.total > 1000;
SELECT is(pg_temp.referral_of('b4') || ' ' || (SELECT status FROM public.upsert_orders WHERE id = 204),
	'pending:- pending', 'an upsert whose DO UPDATE ... WHERE skips the row pays nothing');

-- b2's order refunded by an upsert, twice: its pending rewards are reversed once.
INSERT INTO public.upsert_orders (id, customer, total, status) VALUES (202, 'b2', 90, 'refunded')
	ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status;
INSERT INTO public.upsert_orders (id, customer, total, status) VALUES (202, 'b2', 90, 'refunded')
	ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('b2')$$,
	$$VALUES ('202'::text, 'b2'::text, 'referee'::text, 5.00::numeric, 'reversed'::text),
	         ('202', 'ann', 'referrer', 9.00, 'reversed')$$,
	'an upsert that refunds reverses the rewards, once');
SELECT is(pg_temp.referral_of('b2') || ' ' || pg_temp.revenue_of('b2'), 'pending:- 0 orders, 0',
	'and returns the referral to pending');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after ON CONFLICT DO UPDATE');

------------------------------------------------------------------------------------
-- 3. A BEFORE ROW trigger of the shop's that changes the customer or the amount, or
-- drops the row: attribution follows the row as written.
SELECT pg_temp.orders_table('rewrite_orders');
CREATE FUNCTION public.rewrite_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.note = 'drop' THEN
		RETURN NULL;
	ELSIF NEW.note LIKE 'to:%' THEN
		NEW.customer := substr(NEW.note, 4);
	ELSIF NEW.note = 'double' THEN
		NEW.total := NEW.total * 2;
	END IF;
	NEW.note := NULL;
	RETURN NEW;
END
$$;
CREATE FUNCTION public.keep_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RETURN CASE WHEN OLD.customer = 'c1' THEN NULL ELSE OLD END;
END
$$;
-- Named to fire after every trigger of ours (BEFORE triggers fire before any AFTER one anyway).
CREATE TRIGGER zz_rewrite BEFORE INSERT OR UPDATE ON public.rewrite_orders
	FOR EACH ROW EXECUTE FUNCTION public.rewrite_order();
CREATE TRIGGER zz_keep BEFORE DELETE ON public.rewrite_orders
	FOR EACH ROW EXECUTE FUNCTION public.keep_order();
SELECT is(pg_temp.refer('c0') || pg_temp.refer('c1') || pg_temp.refer('c2') || pg_temp.refer('c3')
          || pg_temp.refer('c4') || pg_temp.refer('c5') || pg_temp.refer('c6') || pg_temp.refer('c7')
          || pg_temp.refer('c8'),
	'pendingpendingpendingpendingpendingpendingpendingpendingpending', 'c0 to c8 referred by ann');

-- c0's order is written as c1's: c1 converts (c1 5, ann 4.00), c0 does not.
INSERT INTO public.rewrite_orders (id, customer, total, note) VALUES (301, 'c0', 40, 'to:c1');
SELECT is(pg_temp.referral_of('c0') || ' ' || pg_temp.referral_of('c1'), 'pending:- converted:301',
	'an order rewritten to another customer converts the customer written');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('c0') UNION ALL SELECT * FROM pg_temp.rewards_of('c1')$$,
	$$VALUES ('301'::text, 'c1'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('301', 'ann', 'referrer', 4.00, 'pending')$$,
	'the customer written earns, the customer given does not');
-- c2's 50 is written as 100: ann 10.00.
INSERT INTO public.rewrite_orders (id, customer, total, note) VALUES (302, 'c2', 50, 'double');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('c2')$$,
	$$VALUES ('302'::text, 'c2'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('302', 'ann', 'referrer', 10.00, 'pending')$$,
	'an amount changed by a BEFORE trigger: the reward follows the amount written');
SELECT is(pg_temp.revenue_of('c2'), '1 orders, 100.00', 'and so does revenue');
-- c3's order is dropped.
INSERT INTO public.rewrite_orders (id, customer, total, note) VALUES (303, 'c3', 50, 'drop');
SELECT is(pg_temp.referral_of('c3') || ' ' || pg_temp.revenue_of('c3')
          || ' ' || (SELECT count(*) FROM public.rewrite_orders WHERE id = 303),
	'pending:- 0 orders, 0 0', 'a row dropped by a BEFORE trigger earns nothing');
-- One statement with all three: c4's row dropped, c5's 20 written as 40 (ann 4.00),
-- zed's 30 written as c6's (ann 3.00).
INSERT INTO public.rewrite_orders (id, customer, total, note)
VALUES (304, 'c4', 20, 'drop'), (305, 'c5', 20, 'double'), (306, 'zed', 30, 'to:c6');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('c4') UNION ALL SELECT * FROM pg_temp.rewards_of('c5')
                    UNION ALL SELECT * FROM pg_temp.rewards_of('c6')$$,
	$$VALUES ('305'::text, 'c5'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('305', 'ann', 'referrer', 4.00, 'pending'),
	         ('306', 'c6', 'referee', 5.00, 'pending'),
	         ('306', 'ann', 'referrer', 3.00, 'pending')$$,
	'a multi-row INSERT: each row as written');

-- Updates: c7's unpaid 307 paid by an UPDATE the trigger drops (nothing), then by one
-- it rewrites to c8 (c8 5, ann 5.00; c7 nothing).
INSERT INTO public.rewrite_orders (id, customer, total, status) VALUES (307, 'c7', 50, 'pending');
UPDATE public.rewrite_orders SET status = 'paid', note = 'drop' WHERE id = 307;
SELECT is(pg_temp.referral_of('c7') || ' ' || (SELECT status FROM public.rewrite_orders WHERE id = 307),
	'pending:- pending', 'an UPDATE to paid dropped by a BEFORE trigger pays nothing');
UPDATE public.rewrite_orders SET status = 'paid', note = 'to:c8' WHERE id = 307;
SELECT is(pg_temp.referral_of('c7') || ' ' || pg_temp.referral_of('c8'), 'pending:- converted:307',
	'an UPDATE to paid rewritten to another customer converts the customer written');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('c7') UNION ALL SELECT * FROM pg_temp.rewards_of('c8')$$,
	$$VALUES ('307'::text, 'c8'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('307', 'ann', 'referrer', 5.00, 'pending')$$,
	'c8 earns, c7 does not');
-- c2's 302 doubled again by an UPDATE (200): revenue 200, no reward raised.
UPDATE public.rewrite_orders SET note = 'double' WHERE id = 302;
SELECT is(pg_temp.revenue_of('c2') || ' ' || (SELECT string_agg(amount::text, ',') FROM pg_temp.rewards_of('c2')),
	'1 orders, 200.00 5.00,10.00', 'an amount raised by a BEFORE UPDATE trigger: revenue follows');
-- A DELETE the trigger drops for c1's 301 and lets through for c5's 305.
DELETE FROM public.rewrite_orders WHERE id IN (301, 305);
SELECT is(pg_temp.referral_of('c1') || ' ' || pg_temp.referral_of('c5'), 'converted:301 pending:-',
	'a DELETE dropped by a BEFORE trigger reverses nothing; the one written reverses');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('c1') UNION ALL SELECT * FROM pg_temp.rewards_of('c5')$$,
	$$VALUES ('301'::text, 'c1'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('301', 'ann', 'referrer', 4.00, 'pending'),
	         ('305', 'c5', 'referee', 5.00, 'reversed'),
	         ('305', 'ann', 'referrer', 4.00, 'reversed')$$,
	'c1''s rewards stand, c5''s are reversed');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after BEFORE triggers');

------------------------------------------------------------------------------------
-- 4. A partitioned orders table: rows routed to partitions, moved between them, and
-- deleted via the parent.
CREATE TABLE public.region_orders (
	id			bigint NOT NULL,
	customer	text NOT NULL,
	total		numeric(12, 2) NOT NULL,
	status		text NOT NULL DEFAULT 'paid',
	region		text NOT NULL,
	placed_at	timestamptz NOT NULL DEFAULT '2026-02-02 12:00+00'
) PARTITION BY LIST (region);
CREATE TABLE public.region_orders_eu PARTITION OF public.region_orders FOR VALUES IN ('eu');
CREATE TABLE public.region_orders_us PARTITION OF public.region_orders FOR VALUES IN ('us');
SELECT referral.track_orders('public.region_orders', 'customer', 'total',
	status_column => 'status', ordered_at_column => 'placed_at');
SELECT is(pg_temp.refer('d1') || pg_temp.refer('d2') || pg_temp.refer('d3') || pg_temp.refer('d4'),
	'pendingpendingpendingpending', 'd1 to d4 referred by ann');

-- d1's 30 (ann 3.00) goes to eu, d2's 40 (ann 4.00) and zed's to us.
INSERT INTO public.region_orders (id, customer, total, region)
VALUES (401, 'd1', 30, 'eu'), (402, 'd2', 40, 'us'), (403, 'zed', 10, 'us');
SELECT is((SELECT string_agg(id || ':' || tableoid::regclass::text, ' ' ORDER BY id) FROM public.region_orders),
	'401:region_orders_eu 402:region_orders_us 403:region_orders_us', 'the rows are routed to their partitions');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('d1') UNION ALL SELECT * FROM pg_temp.rewards_of('d2')$$,
	$$VALUES ('401'::text, 'd1'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('401', 'ann', 'referrer', 3.00, 'pending'),
	         ('402', 'd2', 'referee', 5.00, 'pending'),
	         ('402', 'ann', 'referrer', 4.00, 'pending')$$,
	'orders routed to partitions convert');

-- 401 moves to us: the same order, counted once.
UPDATE public.region_orders SET region = 'us' WHERE id = 401;
SELECT is((SELECT tableoid::regclass::text FROM public.region_orders WHERE id = 401), 'region_orders_us',
	'the row moved to the other partition');
SELECT is(pg_temp.referral_of('d1') || ' ' || pg_temp.revenue_of('d1') || ' '
          || (SELECT string_agg(status, ',') FROM pg_temp.rewards_of('d1')),
	'converted:401 1 orders, 30.00 pending,pending', 'a row moved between partitions counts once and stays attributed');
-- d3's unpaid 404 in eu is paid while it moves to us: d3 5, ann 5.00, once.
INSERT INTO public.region_orders (id, customer, total, status, region) VALUES (404, 'd3', 50, 'pending', 'eu');
UPDATE public.region_orders SET region = 'us', status = 'paid' WHERE id = 404;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('d3')$$,
	$$VALUES ('404'::text, 'd3'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('404', 'ann', 'referrer', 5.00, 'pending')$$,
	'an order paid while it moves between partitions converts once');
SELECT is((SELECT count(*) FROM referral.attributed_order WHERE order_source = 'public.region_orders'), 3::bigint,
	'three orders attributed: 401, 402, 404');
-- 402 deleted via the parent: d2's rewards reversed, the referral pending again.
DELETE FROM public.region_orders WHERE id = 402;
SELECT is(pg_temp.referral_of('d2') || ' ' || pg_temp.revenue_of('d2') || ' '
          || (SELECT string_agg(status, ',') FROM pg_temp.rewards_of('d2')),
	'pending:- 0 orders, 0 reversed,reversed', 'a DELETE via the parent reverses the order');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after the partitioned table');

------------------------------------------------------------------------------------
-- 5. COPY FROM STDIN converts as INSERT does.
SELECT pg_temp.orders_table('copy_orders');
SELECT is(pg_temp.refer('e1') || pg_temp.refer('e2') || pg_temp.refer('e3'),
	'pendingpendingpending', 'e1 to e3 referred by ann');
-- e1's 40 converts (ann 4.00); e2's 30 converts (ann 3.00) and its later 20 is
-- revenue only; e3's order is unpaid.
COPY public.copy_orders (id, customer, total, status, placed_at) FROM STDIN;
501	e1	40.00	paid	2026-02-02 10:00+00
502	zed	10.00	paid	2026-02-02 10:00+00
503	e2	30.00	paid	2026-02-02 10:00+00
504	e2	20.00	paid	2026-02-03 10:00+00
505	e3	90.00	pending	2026-02-02 10:00+00
\.
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('e1') UNION ALL SELECT * FROM pg_temp.rewards_of('e2')
                    UNION ALL SELECT * FROM pg_temp.rewards_of('e3')$$,
	$$VALUES ('501'::text, 'e1'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('501', 'ann', 'referrer', 4.00, 'pending'),
	         ('503', 'e2', 'referee', 5.00, 'pending'),
	         ('503', 'ann', 'referrer', 3.00, 'pending')$$,
	'COPY: the first paid order of each referee converts');
SELECT is(pg_temp.referral_of('e1') || ' ' || pg_temp.referral_of('e2') || ' ' || pg_temp.referral_of('e3'),
	'converted:501 converted:503 pending:-', 'COPY converts e1 and e2, not e3''s unpaid order');
SELECT is(pg_temp.revenue_of('e2'), '2 orders, 50.00', 'e2''s later order in the same COPY is revenue');
-- e3's second COPY, paid: e3 5, ann 9.00.
COPY public.copy_orders (id, customer, total, status, placed_at) FROM STDIN;
506	e3	90.00	paid	2026-02-04 10:00+00
\.
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('e3')$$,
	$$VALUES ('506'::text, 'e3'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('506', 'ann', 'referrer', 9.00, 'pending')$$,
	'a one-row COPY converts');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after COPY');

------------------------------------------------------------------------------------
-- 6. Statements rolled back to a savepoint leave nothing, in the ledger or in the
-- trigger's per-backend state.
SELECT pg_temp.orders_table('save_orders');
SELECT is(pg_temp.refer('f1') || pg_temp.refer('f2'), 'pendingpending', 'f1 and f2 referred by ann');

SAVEPOINT before_order;
INSERT INTO public.save_orders (id, customer, total) VALUES (601, 'f1', 50);
SELECT is(pg_temp.referral_of('f1'), 'converted:601', 'inside the savepoint, f1 converted');
ROLLBACK TO SAVEPOINT before_order;
SELECT is(pg_temp.referral_of('f1') || ' ' || pg_temp.revenue_of('f1')
          || ' ' || (SELECT count(*) FROM pg_temp.rewards_of('f1')),
	'pending:- 0 orders, 0 0', 'rolled back to the savepoint: pending, nothing earned, nothing attributed');
-- The next order converts, once: f1 5, ann 7.00, one referral_converted event.
INSERT INTO public.save_orders (id, customer, total) VALUES (602, 'f1', 70);
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('f1')$$,
	$$VALUES ('602'::text, 'f1'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('602', 'ann', 'referrer', 7.00, 'pending')$$,
	'after the rollback the next order converts once');
SELECT is((SELECT string_agg(e.payload->>'order_ref', ',') FROM referral.event e
            WHERE e.kind = 'referral_converted' AND e.payload->>'referee' = 'f1'), '602',
	'one referral_converted event, for the order that stayed');

-- A statement that fails after the order trigger ran (a shop's AFTER trigger that
-- fires after ours): everything the order trigger did goes with it.
CREATE FUNCTION public.refuse_666() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM public.save_orders WHERE total = 666) THEN
		RAISE EXCEPTION 'refused after % rewards of f2',
			(SELECT count(*) FROM referral.reward w JOIN referral.referral r ON r.id = w.referral_id
			  WHERE r.referee = 'f2') USING ERRCODE = 'check_violation';
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER zz_refuse AFTER INSERT ON public.save_orders
	FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_666();
SELECT throws_ok($$INSERT INTO public.save_orders (id, customer, total) VALUES (603, 'f2', 666), (604, 'zed', 1)$$,
	'23514', 'refused after 2 rewards of f2', 'a statement failing after the order trigger converted f2');
SELECT is(pg_temp.referral_of('f2') || ' ' || pg_temp.revenue_of('f2')
          || ' ' || (SELECT count(*) FROM pg_temp.rewards_of('f2')),
	'pending:- 0 orders, 0 0', 'the failed statement left nothing');
INSERT INTO public.save_orders (id, customer, total) VALUES (605, 'f2', 20);
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('f2')$$,
	$$VALUES ('605'::text, 'f2'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('605', 'ann', 'referrer', 2.00, 'pending')$$,
	'the next order converts once');

-- A referral made and used inside a savepoint that is rolled back: f3 is nobody's
-- referee afterwards, so f3's next order earns nothing; once that order is gone and
-- f3 is referred for real, f3's order converts (f3 5, ann 3.00).
SAVEPOINT before_redeem;
SELECT is(pg_temp.refer('f3'), 'pending', 'f3 referred inside a savepoint');
INSERT INTO public.save_orders (id, customer, total) VALUES (606, 'f3', 30);
SELECT is(pg_temp.referral_of('f3'), 'converted:606', 'and converted there');
ROLLBACK TO SAVEPOINT before_redeem;
INSERT INTO public.save_orders (id, customer, total) VALUES (607, 'f3', 30);
SELECT is((SELECT count(*) FROM referral.reward WHERE order_source = 'public.save_orders' AND order_ref IN ('606', '607'))
          + (SELECT count(*) FROM referral.attributed_order WHERE order_source = 'public.save_orders' AND order_ref IN ('606', '607')),
	0::bigint, 'after the rollback, f3''s order earns nothing: the referral is gone');
DELETE FROM public.save_orders WHERE id = 607;
SELECT is(pg_temp.refer('f3'), 'pending', 'f3 referred again');
INSERT INTO public.save_orders (id, customer, total) VALUES (608, 'f3', 30);
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('f3')$$,
	$$VALUES ('608'::text, 'f3'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('608', 'ann', 'referrer', 3.00, 'pending')$$,
	'and converts with the next order');

-- A table tracked inside a savepoint that is rolled back, then made again with the
-- same name and settings: the kept plans of the first serve the second (f4 5, ann 1.00).
SAVEPOINT before_table;
SELECT pg_temp.orders_table('gone_orders');
SELECT is(pg_temp.refer('f4'), 'pending', 'f4 referred inside a savepoint');
INSERT INTO public.gone_orders (id, customer, total) VALUES (609, 'f4', 10), (610, 'f4', 10);
UPDATE public.gone_orders SET status = 'refunded' WHERE id = 609;
ROLLBACK TO SAVEPOINT before_table;
SELECT pg_temp.orders_table('gone_orders');
SELECT is(pg_temp.refer('f4'), 'pending', 'f4 referred again after the rollback');
INSERT INTO public.gone_orders (id, customer, total) VALUES (611, 'f4', 10), (612, 'f4', 10);
UPDATE public.gone_orders SET status = 'refunded' WHERE id = 612;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('f4')$$,
	$$VALUES ('611'::text, 'f4'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('611', 'ann', 'referrer', 1.00, 'pending')$$,
	'the table made again converts once; its later order refunded changes no reward');
SELECT is(pg_temp.revenue_of('f4'), '1 orders, 10.00', 'revenue: 611 only (612 refunded)');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after the savepoints');

------------------------------------------------------------------------------------
-- 9. A customer referred after this backend saw orders of theirs: g1 and g2 order
-- while nobody referred them (single rows, a statement that runs the trigger's SQL
-- for a referee, an UPDATE, bulk loads), their orders are deleted (so that they are
-- not existing customers), they are referred, and their next order converts.
SELECT pg_temp.orders_table('later_orders');
SELECT is(pg_temp.refer('g0'), 'pending', 'g0 referred by ann');
INSERT INTO public.later_orders (id, customer, total) VALUES (901, 'g1', 10);
INSERT INTO public.later_orders (id, customer, total) VALUES (902, 'g1', 20), (903, 'zed', 5);
INSERT INTO public.later_orders (id, customer, total) VALUES (904, 'g0', 10), (905, 'g1', 10);
UPDATE public.later_orders SET total = total + 1 WHERE customer = 'g1';
INSERT INTO public.later_orders (id, customer, total)
SELECT 10000 + i, CASE i WHEN 7 THEN 'g1' WHEN 8 THEN 'g2' ELSE 'bulk-' || i END, 1 FROM generate_series(1, 3000) i;
SELECT is(pg_temp.referral_of('g0') || ' ' || (SELECT count(*) FROM referral.reward
                                               WHERE order_source = 'public.later_orders'),
	'converted:904 2', 'only g0 earned: g1''s and g2''s orders earn nothing');
DELETE FROM public.later_orders WHERE customer IN ('g1', 'g2');
SELECT is(pg_temp.refer('g1') || pg_temp.refer('g2'), 'pendingpending',
	'g1 and g2 referred once their orders are gone');
-- g1's single order (40: ann 4.00), g2's in a bulk load (1: ann 0.10).
INSERT INTO public.later_orders (id, customer, total) VALUES (906, 'g1', 40);
INSERT INTO public.later_orders (id, customer, total)
SELECT 20000 + i, CASE i WHEN 9 THEN 'g2' ELSE 'bulk-' || i END, 1 FROM generate_series(1, 3000) i;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of('g1') UNION ALL SELECT * FROM pg_temp.rewards_of('g2')$$,
	$$VALUES ('906'::text, 'g1'::text, 'referee'::text, 5.00::numeric, 'pending'::text),
	         ('906', 'ann', 'referrer', 4.00, 'pending'),
	         ('20009', 'g2', 'referee', 5.00, 'pending'),
	         ('20009', 'ann', 'referrer', 0.10, 'pending')$$,
	'the next order of each converts, a single row and a bulk load alike');
SELECT is(pg_temp.referral_of('g1') || ' ' || pg_temp.referral_of('g2'), 'converted:906 converted:20009',
	'both referrals converted');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after the later referrals');

------------------------------------------------------------------------------------
-- The program's figures over all of the above (program_stats), by hand.
-- Accepted referrals: a1-a4, b1-b4, c0-c8, d1-d4, e1-e3, f1-f4, g0-g2 = 4+4+9+4+3+4+3 = 31.
-- Converted: a1 a2 a3, b1 b3, c1 c2 c6 c8, d1 d3, e1 e2 e3, f1 f2 f3 f4, g0 g1 g2 = 3+2+4+2+3+4+3 = 21.
-- Revenue (orders not reversed): a 10+50+70; b 40+30; c 40+200+30+50; d 30+50;
-- e 40+30+20+90; f 70+20+30+10; g 10+40+1
-- = 130 + 70 + 320 + 80 + 180 + 130 + 51 = 961.
-- Reward cost (not reversed): 5 per conversion = 105, plus ann's: a 1+5+7; b 4+3;
-- c 4+10+3+5; d 3+5; e 4+3+9; f 7+2+3+1; g 1+4+0.10 = 13+7+22+8+16+13+5.10 = 84.10;
-- 189.10 in all.
SELECT results_eq($$SELECT referrals, conversions, revenue, reward_cost FROM referral.program_stats
                    WHERE program_id = (SELECT id FROM prog)$$,
	$$VALUES (31::bigint, 21::bigint, 961.00::numeric, 189.10::numeric)$$,
	'program_stats gives the figures worked out by hand');

-- An order written into a partition of region_orders directly is an order of the
-- tracked table too (last: it would change the figures above).
INSERT INTO public.region_orders_eu (id, customer, total, region) VALUES (405, 'd4', 60, 'eu');
SELECT is(pg_temp.referral_of('d4'), 'converted:405', 'an order inserted into a partition directly converts');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after a direct write to a partition');

SELECT * FROM finish();
ROLLBACK;

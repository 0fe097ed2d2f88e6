-- The later orders of converted referees, recorded as revenue in C by a small
-- INSERT (src/order_revenue.c), against the same story told to a twin table that
-- has no unique index on its id, whose orders the SQL records: the attributed
-- orders of both must be the same, row for row.  The DEBUG lines show which path
-- recorded what.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
CREATE SCHEMA rw;

-- min_order_amount 10, active in [2026-01-01, 2100-01-01); referee $5, referrer 10%.
SELECT referral.create_program('Writer', tenant => 'rw', starts_at => '2026-01-01',
	ends_at => '2100-01-01', min_order_amount => 10) AS program \gset
SELECT referral.add_reward(:program, 'referee', fixed => 5) > 0 AS rule;
SELECT referral.add_reward(:program, 'referrer', percent => 10) > 0 AS rule;
SELECT referral.issue_code(:program, 'host', vanity => 'RWHOST') AS code;

-- Twin tables: c_orders has a primary key on id (the C path), sql_orders none.
CREATE TABLE rw.c_orders (
	id			bigint PRIMARY KEY,
	customer	text NOT NULL,
	total		numeric NOT NULL,
	status		text NOT NULL DEFAULT 'paid',
	placed_at	timestamptz
);
CREATE TABLE rw.sql_orders (LIKE rw.c_orders INCLUDING DEFAULTS);
SELECT referral.track_orders('rw.c_orders', 'customer', 'total', status_column => 'status',
	ordered_at_column => 'placed_at', tenant => 'rw');
SELECT referral.track_orders('rw.sql_orders', 'customer', 'total', status_column => 'status',
	ordered_at_column => 'placed_at', tenant => 'rw');
-- One referee per table, both referred on 2026-02-01 and converted by order 1.
SELECT status FROM referral.redeem('RWHOST', 'ann', at => '2026-02-01');
SELECT status FROM referral.redeem('RWHOST', 'bob', at => '2026-02-01');
INSERT INTO rw.c_orders VALUES (1, 'ann', 50, 'paid', '2026-02-02');
INSERT INTO rw.sql_orders VALUES (1, 'bob', 50, 'paid', '2026-02-02');

-- The same later orders into each table, one statement each: the customer is the
-- table's referee.
CREATE FUNCTION rw.both(id bigint, total numeric, status text, placed_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO rw.c_orders VALUES (id, 'ann', total, status, placed_at);
	INSERT INTO rw.sql_orders VALUES (id, 'bob', total, status, placed_at);
END
$$;

SET client_min_messages = debug1;
SELECT rw.both(2, 20, 'paid', '2026-03-01');		-- revenue
SELECT rw.both(3, 9.99, 'paid', '2026-03-01');		-- below min_order_amount
SELECT rw.both(4, 10, 'paid', '2026-03-01');		-- exactly the minimum: revenue
SELECT rw.both(5, 30, 'pending', '2026-03-01');		-- not paid
SELECT rw.both(6, 30, 'paid', '2026-01-15');		-- before the redeem
SELECT rw.both(7, 30, 'paid', '2100-01-01');		-- at ends_at: outside the period
SELECT rw.both(8, 'NaN', 'paid', '2026-03-01');		-- not a number
SELECT rw.both(9, 40, 'paid', NULL);				-- no time: the transaction's
-- Three orders in one statement, one of them below the minimum.
INSERT INTO rw.c_orders VALUES (10, 'ann', 11, 'paid', '2026-03-03'), (11, 'ann', 5, 'paid', '2026-03-03'),
	(12, 'ann', 12, 'paid', '2026-03-03');
INSERT INTO rw.sql_orders VALUES (10, 'bob', 11, 'paid', '2026-03-03'), (11, 'bob', 5, 'paid', '2026-03-03'),
	(12, 'bob', 12, 'paid', '2026-03-03');
RESET client_min_messages;
SET client_min_messages = warning;

-- Order 2 deleted (its revenue reversed), then an order 2 again: attributed
-- before, so not again, and no error.
DELETE FROM rw.c_orders WHERE id = 2;
DELETE FROM rw.sql_orders WHERE id = 2;
SET client_min_messages = debug1;
SELECT rw.both(2, 25, 'paid', '2026-03-02');
RESET client_min_messages;
SET client_min_messages = warning;

-- The pending order 5 paid later: the UPDATE's SQL records it for both.
UPDATE rw.c_orders SET status = 'paid' WHERE id = 5;
UPDATE rw.sql_orders SET status = 'paid' WHERE id = 5;

-- Both tables' attributed orders, the time of order 9 (the transaction's) as
-- "now", side by side: every row the same.
SELECT a.order_ref, a.amount,
       CASE WHEN a.ordered_at = a.created_at THEN 'now' ELSE a.ordered_at::text END AS ordered_at,
       a.converting, a.reversed_at IS NOT NULL AS reversed,
       a.program_id = :program AS program,
       a.referral_id = (SELECT r.id FROM referral.referral r WHERE r.tenant = 'rw' AND r.referee = 'ann') AS referral
  FROM referral.attributed_order a
 WHERE a.tenant = 'rw' AND a.order_source = 'rw.c_orders'
 ORDER BY a.order_ref;
SELECT count(*) AS differences
  FROM ((SELECT order_ref, amount, ordered_at = created_at, ordered_at, converting, reversed_at IS NULL
           FROM referral.attributed_order WHERE tenant = 'rw' AND order_source = 'rw.c_orders'
         EXCEPT
         SELECT order_ref, amount, ordered_at = created_at, ordered_at, converting, reversed_at IS NULL
           FROM referral.attributed_order WHERE tenant = 'rw' AND order_source = 'rw.sql_orders')
        UNION ALL
        (SELECT order_ref, amount, ordered_at = created_at, ordered_at, converting, reversed_at IS NULL
           FROM referral.attributed_order WHERE tenant = 'rw' AND order_source = 'rw.sql_orders'
         EXCEPT
         SELECT order_ref, amount, ordered_at = created_at, ordered_at, converting, reversed_at IS NULL
           FROM referral.attributed_order WHERE tenant = 'rw' AND order_source = 'rw.c_orders')) d;
SELECT customer, revenue FROM referral.referrer_stats WHERE program_id = :program;
SELECT * FROM referral.audit(:program);

-- A recurring program's later orders earn referrer rewards: the SQL's, not the
-- writer's (no DEBUG line for them).
SELECT referral.create_program('Writer recurring', tenant => 'rw-recurring', starts_at => '2026-01-01',
	recurring_window => '90 days') AS recurring \gset
SELECT referral.add_reward(:recurring, 'referrer', percent => 10) > 0 AS rule;
SELECT referral.issue_code(:recurring, 'host', vanity => 'RWREC') AS code;
CREATE TABLE rw.recurring_orders (LIKE rw.c_orders INCLUDING ALL);
SELECT referral.track_orders('rw.recurring_orders', 'customer', 'total', status_column => 'status',
	ordered_at_column => 'placed_at', tenant => 'rw-recurring');
SELECT status FROM referral.redeem('RWREC', 'cat', at => '2026-02-01');
INSERT INTO rw.recurring_orders VALUES (1, 'cat', 100, 'paid', '2026-02-02');
SET client_min_messages = debug1;
INSERT INTO rw.recurring_orders VALUES (2, 'cat', 200, 'paid', '2026-02-03');
RESET client_min_messages;
SET client_min_messages = warning;
SELECT order_ref, kind, amount FROM referral.reward WHERE program_id = :recurring ORDER BY id;
SELECT * FROM referral.audit(:recurring);

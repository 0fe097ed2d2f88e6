-- make bench: seeded, reproducible data.  100k customers (bigint keys 1..100000),
-- 1000 code holders (1..1000), of which 900 (101..1000) were referred by 1..100, and
-- 10000 referred customers (1001..11000): 10.9% referred, chains two deep.
-- Program: referee $5, referrer 10% (cap $50), from 5 conversions 15%, level 2 2%.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS referral;
CREATE SCHEMA bench;

SELECT referral.create_program('Bench', starts_at => '2020-01-01', max_depth => 2) AS program \gset
SELECT referral.add_reward(:program, 'referee', fixed => 5);
SELECT referral.add_reward(:program, 'referrer', percent => 10, cap => 50);
SELECT referral.add_reward(:program, 'referrer', percent => 15, cap => 50, min_conversions => 5);
SELECT referral.add_reward(:program, 'referrer', percent => 2, level => 2);

SELECT count(referral.issue_code(:program, i::text)) AS codes FROM generate_series(1, 1000) i;
SELECT count(*) FILTER (WHERE r.status = 'pending') AS referred
  FROM generate_series(101, 11000) i
 CROSS JOIN LATERAL referral.redeem(
	(SELECT c.code FROM referral.code c WHERE c.customer = (CASE WHEN i <= 1000 THEN 1 + i % 100 ELSE 1 + i % 1000 END)::text),
	i::text) r;

-- The tracked orders table and its untracked twins: the same shape, each with its
-- own sequence.  The floor of the design is orders_noop, whose statement trigger,
-- with transition tables like referral's, does nothing: what it costs over
-- orders_plain is the capture of the transition tables and the trigger call, which
-- any statement-level attribution pays before it does anything.
SELECT format('CREATE TABLE bench.%I (
	id			bigserial PRIMARY KEY,
	customer_id	bigint NOT NULL,
	total		numeric(12, 2) NOT NULL,
	status		text NOT NULL DEFAULT ''paid'',
	placed_at	timestamptz NOT NULL DEFAULT now()
)', t) FROM unnest(ARRAY['orders_tracked', 'orders_plain', 'orders_noop']) t \gexec
SELECT referral.track_orders('bench.orders_tracked', 'customer_id', 'total', status_column => 'status');
CREATE FUNCTION bench.noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER noop AFTER INSERT ON bench.orders_noop REFERENCING NEW TABLE AS new_orders
	FOR EACH STATEMENT EXECUTE FUNCTION bench.noop();
CREATE TRIGGER noop_update AFTER UPDATE ON bench.orders_noop
	REFERENCING OLD TABLE AS old_orders NEW TABLE AS new_orders
	FOR EACH STATEMENT EXECUTE FUNCTION bench.noop();

-- The backend's CPU time so far (user + system, /proc/self/stat, in clock ticks of
-- 10 ms), to tell a statement that computed from one that waited.
CREATE FUNCTION bench.cpu_ms() RETURNS numeric LANGUAGE sql AS $$
	SELECT (f[12]::numeric + f[13]::numeric) * 10
	  FROM (SELECT pg_catalog.string_to_array(pg_catalog.split_part(pg_catalog.pg_read_file('/proc/self/stat'), ') ', 2), ' ') AS f) s
$$;
CREATE TABLE bench.round (id serial, statement text, wall_ms numeric, cpu_ms numeric);

-- Milliseconds taken by one statement; the wall and CPU time go to bench.round.
CREATE FUNCTION bench.ms(statement text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	c0 numeric := bench.cpu_ms();
	wall numeric;
BEGIN
	EXECUTE statement;
	wall := round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1);
	INSERT INTO bench.round (statement, wall_ms, cpu_ms) VALUES (statement, wall, bench.cpu_ms() - c0);
	RETURN wall;
END
$$;

-- The floor of a converting load: the ledger rows it wrote (its referrals converted,
-- their rewards, events and attributed orders), written again by plain SQL into copies
-- of referral's tables with the same indexes, constraints and fill factor, rewards with
-- ON CONFLICT (exactly once) and a NOTIFY per event, as any design that keeps these
-- rows must.  bench.load_floor_reset() empties the copies first (not timed).
CREATE TABLE bench.load_floor_attributed (LIKE referral.attributed_order INCLUDING ALL) WITH (fillfactor = 90);
CREATE TABLE bench.load_floor_reward (LIKE referral.reward INCLUDING ALL);
CREATE TABLE bench.load_floor_event (LIKE referral.event INCLUDING ALL);
CREATE TABLE bench.load_floor_referral (LIKE referral.referral INCLUDING ALL);
CREATE FUNCTION bench.load_floor_reset() RETURNS void LANGUAGE sql AS $$
	TRUNCATE bench.load_floor_attributed, bench.load_floor_reward, bench.load_floor_event, bench.load_floor_referral;
	INSERT INTO bench.load_floor_referral SELECT * FROM referral.referral;
	UPDATE bench.load_floor_referral
	   SET status = 'pending', converted_at = NULL, converting_source = NULL, converting_order = NULL
	 WHERE status = 'converted';
	ANALYZE bench.load_floor_referral;
$$;
CREATE FUNCTION bench.ledger_floor() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	notified bigint;
BEGIN
	INSERT INTO bench.load_floor_attributed SELECT * FROM referral.attributed_order ORDER BY order_ref COLLATE "C";
	INSERT INTO bench.load_floor_reward SELECT * FROM referral.reward ORDER BY referral_id, id ON CONFLICT DO NOTHING;
	UPDATE bench.load_floor_referral x
	   SET status = 'converted', converted_at = r.converted_at, converting_source = r.converting_source,
	       converting_order = r.converting_order
	  FROM referral.referral r
	 WHERE r.tenant = x.tenant AND r.id = x.id AND r.status = 'converted';
	WITH e AS (
		INSERT INTO bench.load_floor_event
		SELECT * FROM referral.event WHERE kind IN ('reward_created', 'referral_converted') ORDER BY id
		RETURNING id, kind, tenant)
	SELECT count(pg_notify('bench_floor', json_build_object('id', e.id, 'kind', e.kind, 'tenant', e.tenant)::text))
	  INTO notified FROM e;
END
$$;

-- The floor of a load with nothing to convert: its attributed orders (the second
-- load's, ids above 1,000,000) written again by plain SQL into the copy, which
-- bench.revenue_floor_reset() fills first with the first load's (not timed), as the
-- table held them when the load ran: the new keys go in among the old ones.
CREATE FUNCTION bench.revenue_floor_reset() RETURNS void LANGUAGE sql AS $$
	TRUNCATE bench.load_floor_attributed;
	INSERT INTO bench.load_floor_attributed SELECT * FROM referral.attributed_order
	 WHERE order_ref::bigint <= 1000000 ORDER BY order_ref COLLATE "C";
	ANALYZE bench.load_floor_attributed;
$$;
CREATE FUNCTION bench.revenue_floor() RETURNS void LANGUAGE sql AS $$
	INSERT INTO bench.load_floor_attributed SELECT * FROM referral.attributed_order
	 WHERE order_ref::bigint > 1000000 ORDER BY order_ref COLLATE "C";
$$;

-- The floor of a refund: the ledger changes the refund of the tracked orders made
-- (attributed orders and rewards reversed, referrals back to pending, an event with
-- its NOTIFY for each), made again by plain SQL in copies of the tables as they were
-- before it, with the same indexes.  bench.refund_floor_reset() takes the copies
-- before the refund, bench.refund_floor_changes() notes after it what it changed;
-- neither is timed.
CREATE TABLE bench.refund_floor_attributed (LIKE referral.attributed_order INCLUDING ALL) WITH (fillfactor = 90);
CREATE TABLE bench.refund_floor_reward (LIKE referral.reward INCLUDING ALL);
CREATE TABLE bench.refund_floor_referral (LIKE referral.referral INCLUDING ALL);
CREATE TABLE bench.refund_floor_event (LIKE referral.event INCLUDING ALL);
CREATE TABLE bench.refund_floor_change (kind text NOT NULL, tenant text NOT NULL, id bigint,
	order_source text, order_ref text);
CREATE TABLE bench.refund_floor_mark (last_event bigint NOT NULL);
CREATE FUNCTION bench.refund_floor_reset() RETURNS void LANGUAGE sql AS $$
	TRUNCATE bench.refund_floor_attributed, bench.refund_floor_reward, bench.refund_floor_referral,
	         bench.refund_floor_event, bench.refund_floor_change, bench.refund_floor_mark;
	INSERT INTO bench.refund_floor_attributed SELECT * FROM referral.attributed_order ORDER BY order_ref COLLATE "C";
	INSERT INTO bench.refund_floor_reward SELECT * FROM referral.reward ORDER BY id;
	INSERT INTO bench.refund_floor_referral SELECT * FROM referral.referral ORDER BY id;
	INSERT INTO bench.refund_floor_mark SELECT COALESCE(max(id), 0) FROM referral.event;
	ANALYZE bench.refund_floor_attributed, bench.refund_floor_reward, bench.refund_floor_referral;
$$;
CREATE FUNCTION bench.refund_floor_changes() RETURNS void LANGUAGE sql AS $$
	INSERT INTO bench.refund_floor_change
	SELECT 'attributed', a.tenant, NULL, a.order_source, a.order_ref
	  FROM referral.attributed_order a JOIN bench.refund_floor_attributed f USING (tenant, order_source, order_ref)
	 WHERE a.reversed_at IS NOT NULL AND f.reversed_at IS NULL
	UNION ALL
	SELECT 'reward', w.tenant, w.id, NULL, NULL
	  FROM referral.reward w JOIN bench.refund_floor_reward f USING (tenant, id)
	 WHERE w.status = 'reversed' AND f.status <> 'reversed'
	UNION ALL
	SELECT 'referral', r.tenant, r.id, NULL, NULL
	  FROM referral.referral r JOIN bench.refund_floor_referral f USING (tenant, id)
	 WHERE r.status = 'pending' AND f.status = 'converted';
	ANALYZE bench.refund_floor_change;
$$;
CREATE FUNCTION bench.refund_floor() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	notified bigint;
BEGIN
	UPDATE bench.refund_floor_attributed a SET reversed_at = now()
	  FROM bench.refund_floor_change c
	 WHERE c.kind = 'attributed' AND a.tenant = c.tenant AND a.order_source = c.order_source
	   AND a.order_ref = c.order_ref;
	UPDATE bench.refund_floor_reward w SET status = 'reversed', reversed_at = now()
	  FROM bench.refund_floor_change c
	 WHERE c.kind = 'reward' AND w.tenant = c.tenant AND w.id = c.id;
	UPDATE bench.refund_floor_referral r
	   SET status = 'pending', converted_at = NULL, converting_source = NULL,
	       converting_order = NULL, reverted_at = now()
	  FROM bench.refund_floor_change c
	 WHERE c.kind = 'referral' AND r.tenant = c.tenant AND r.id = c.id;
	WITH e AS (
		INSERT INTO bench.refund_floor_event
		SELECT * FROM referral.event WHERE id > (SELECT last_event FROM bench.refund_floor_mark) ORDER BY id
		RETURNING id, kind, tenant)
	SELECT count(pg_notify('bench_floor', json_build_object('id', e.id, 'kind', e.kind, 'tenant', e.tenant)::text))
	  INTO notified FROM e;
END
$$;

-- Back to the seeded state: no orders, every referral pending, no rewards.
CREATE FUNCTION bench.reset() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	TRUNCATE bench.orders_tracked, bench.orders_plain, bench.orders_noop RESTART IDENTITY;
	TRUNCATE referral.reward, referral.attributed_order;
	DELETE FROM referral.event WHERE kind NOT IN ('referral_created', 'referral_rejected');
	UPDATE referral.referral
	   SET status = 'pending', converted_at = NULL, converting_source = NULL,
	       converting_order = NULL, reverted_at = NULL
	 WHERE status = 'converted';
END
$$;

-- The chain benchmark: a 1M-node binary tree (node i's parent is i / 2) as parent
-- pointers (the recursive-CTE baseline) and as referral's materialised paths, plus a
-- 51-node chain for the depth-50 upline.
CREATE TABLE bench.tree (id bigint PRIMARY KEY, parent bigint);
INSERT INTO bench.tree SELECT i, NULLIF(i / 2, 0) FROM generate_series(1, 1000000) i;
INSERT INTO bench.tree SELECT 2000000 + i, CASE WHEN i > 0 THEN 2000000 + i - 1 END FROM generate_series(0, 50) i;
CREATE INDEX ON bench.tree (parent);
INSERT INTO referral.member (tenant, customer, id, path, ancestors)
SELECT 'bench-tree', 't' || i, 1000000000000 + i,
       ARRAY(SELECT 1000000000000 + (i >> k) FROM generate_series(floor(log(2, i))::int, 0, -1) k),
       ARRAY(SELECT 't' || (i >> k) FROM generate_series(1, floor(log(2, i))::int) k)
  FROM generate_series(1, 1000000) i;
INSERT INTO referral.member (tenant, customer, id, path, ancestors)
SELECT 'bench-tree', 't' || (2000000 + i), 1000000000000 + 2000000 + i,
       ARRAY(SELECT 1000000000000 + 2000000 + k FROM generate_series(0, i) k),
       ARRAY(SELECT 't' || (2000000 + k) FROM generate_series(i - 1, 0, -1) k)
  FROM generate_series(0, 50) i;

-- The orders of one round, also as a file for COPY.
COPY (SELECT 1 + (i::bigint * 7919) % 100000 AS customer_id, 10 + (i % 200) AS total
        FROM generate_series(1, 1000000) i) TO '/tmp/referral_bench_orders.csv' (FORMAT csv);
VACUUM ANALYZE;

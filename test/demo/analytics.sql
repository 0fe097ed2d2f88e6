-- The demo's second half, run by `make demo` after shop.sql: a seeded shop with
-- 90 days of a program (two A/B variants, a tracked orders table, refunds, payouts and
-- a small fraud ring), then the analysts' views.  The seed makes every run print the
-- same figures.
\set QUIET on
SET client_min_messages = warning;
SET TimeZone = 'UTC';
\pset border 2
SELECT setseed(0.42) AS seeded \gset

\echo
\echo '================================================================================'
\echo ' The analysts'' view: "Autumn friends", 90 days of a seeded shop'
\echo '================================================================================'
\echo '== The program: two variants, "control" (referrer 10%, up to $30) and "double"'
\echo '   (referrer 20%, up to $60); 15% from the 5th conversion in control; the referrer''s'
\echo '   referrer 2%; the friend $10; a $50 bonus at 10 conversions; 14 days'' hold.'
SELECT referral.create_program('Autumn friends', starts_at => '2026-09-01', ends_at => '2026-12-01',
                               hold_period => '14 days', max_depth => 2, min_order_amount => 15,
                               daily_referral_limit => 5) AS autumn \gset
SELECT referral.add_variant(:autumn, 'control') AS v1, referral.add_variant(:autumn, 'double') AS v2 \gset
SELECT referral.add_reward(:autumn, 'referee', fixed => 10) AS r1,
       referral.add_reward(:autumn, 'referrer', percent => 10, cap => 30) AS r2,
       referral.add_reward(:autumn, 'referrer', percent => 15, cap => 30, min_conversions => 5) AS r3,
       referral.add_reward(:autumn, 'referrer', percent => 20, cap => 60, variant => 'double') AS r4,
       referral.add_reward(:autumn, 'referrer', percent => 2, level => 2) AS r5,
       referral.add_milestone(:autumn, 10, 50) AS m1 \gset

-- The shop: 3000 customers (bigint keys), its orders table tracked by the extension.
CREATE SCHEMA shop;
CREATE TABLE shop.orders (
	id			bigserial PRIMARY KEY,
	customer_id	bigint NOT NULL,
	total		numeric(12, 2) NOT NULL,
	status		text NOT NULL DEFAULT 'paid',
	placed_at	timestamptz NOT NULL
);
SELECT referral.track_orders('shop.orders', customer_column => 'customer_id', amount_column => 'total',
                             status_column => 'status', ordered_at_column => 'placed_at') AS tracked \gset

-- Customers 1..400 hold codes (with their e-mail and device as fingerprints); 301..400
-- were themselves referred, so chains are two deep.  Clicks on the links.
SELECT count(referral.issue_code(:autumn, i::text, email => 'c' || i || '@example.com', device => 'dev-' || i))
  FROM generate_series(1, 400) i \gset
SELECT count(referral.record_click(c.code, (ARRAY['email', 'whatsapp', 'instagram'])[1 + (random() * 2)::int],
                                   ('198.51.100.' || (random() * 250)::int)::inet, 'demo',
                                   '2026-09-01'::timestamptz + random() * interval '89 days'))
  FROM referral.code c, generate_series(1, 12) g
 WHERE c.program_id = :autumn \gset

-- Sign-ups: customers 301..2400 each redeem the code of a referrer among 1..400 (a few
-- referrers bring most friends), at a time in the 90 days, in time order.
CREATE TEMP TABLE signup AS
SELECT i AS customer, 1 + floor(400 * random() ^ 2)::int AS referrer,
       '2026-09-01'::timestamptz + random() * interval '88 days' AS at
  FROM generate_series(301, 2400) i;
UPDATE signup SET referrer = 1 + (referrer % 300) WHERE referrer >= customer;
SELECT count(r.*) FROM (SELECT * FROM signup ORDER BY at OFFSET 0) s, LATERAL referral.redeem(
	(SELECT c.code FROM referral.code c WHERE c.program_id = :autumn AND c.customer = s.referrer::text),
	s.customer::text, email => 'c' || s.customer || '@example.com', at => s.at) r \gset

-- The fraud ring: seven friends of customer 77 try within an hour from one IP, four
-- on one emulator (the daily limit stops two); one more first tried customer 77's
-- own phone (rejected as self_referral).
SELECT count(*) FROM generate_series(2401, 2407) i, LATERAL referral.redeem(
	(SELECT c.code FROM referral.code c WHERE c.program_id = :autumn AND c.customer = '77'),
	i::text, ip => '203.0.113.66', device => CASE WHEN i <= 2404 THEN 'emulator-x' ELSE 'dev-' || i END,
	at => '2026-11-20 03:00'::timestamptz + (i - 2400) * interval '7 minutes') r \gset
SELECT count(*) FROM referral.redeem(
	(SELECT c.code FROM referral.code c WHERE c.program_id = :autumn AND c.customer = '77'),
	'2408', device => 'dev-77', at => '2026-11-21 10:00') \gset
SELECT count(*) FROM referral.redeem(
	(SELECT c.code FROM referral.code c WHERE c.program_id = :autumn AND c.customer = '77'),
	'2408', device => 'dev-2408', at => '2026-11-21 10:05') \gset

-- The orders: friends of "double" referrers buy more often (up to two orders, each
-- 45% likely against 30%), and 1500 orders of customers nobody referred.  They
-- arrive in two bulk INSERTs (the triggers attribute them a statement at a time):
-- up to 2026-11-15, then the last two weeks, whose rewards are still on hold.
CREATE TEMP TABLE new_orders AS
SELECT o.customer, o.total, o.placed_at FROM (
	SELECT r.referee::bigint AS customer, round((20 + random() * 180)::numeric, 2) AS total,
	       r.created_at + random() * interval '20 days' AS placed_at,
	       random() < CASE r.variant WHEN 'double' THEN 0.45 ELSE 0.30 END AS buys
	  FROM referral.referral r, generate_series(1, 2) n
	 WHERE r.program_id = :autumn AND r.status = 'pending'
	UNION ALL
	SELECT 2500 + (random() * 500)::int, round((15 + random() * 150)::numeric, 2),
	       '2026-09-01'::timestamptz + random() * interval '90 days', true
	  FROM generate_series(1, 1500)
) o WHERE o.buys AND o.placed_at < '2026-12-01';
INSERT INTO shop.orders (customer_id, total, placed_at)
SELECT customer, total, placed_at FROM new_orders WHERE placed_at < '2026-11-16' ORDER BY placed_at;

-- Operations: approve what is past its hold (as if 15 days from now), pay out the
-- approved rewards of the ten biggest earners; then the last two weeks' orders, and
-- 4% of all orders are refunded, which reverses unpaid rewards and claws back paid ones.
SELECT referral.approve_due(now() + interval '15 days') AS approved \gset
SELECT referral.mark_paid(ARRAY(
	SELECT w.id FROM referral.reward w
	 WHERE w.status = 'approved' AND w.beneficiary IN (
	       SELECT beneficiary FROM referral.reward WHERE program_id = :autumn
	        GROUP BY 1 ORDER BY sum(amount) DESC, 1 LIMIT 10)), 'payout-2026-12') AS paid \gset
INSERT INTO shop.orders (customer_id, total, placed_at)
SELECT customer, total, placed_at FROM new_orders WHERE placed_at >= '2026-11-16' ORDER BY placed_at;
UPDATE shop.orders SET status = 'refunded' WHERE random() < 0.04;

\echo
\echo '== program_stats: the funnel and its economics, one row per program.'
SELECT program, clicks, referrals, rejected, conversions, round(conversion_rate::numeric, 3) AS conversion_rate,
       revenue, reward_cost, round(cost_per_acquisition, 2) AS cost_per_acquisition,
       round(roi::numeric, 2) AS roi, round(k_factor::numeric, 2) AS k_factor
  FROM referral.program_stats ORDER BY program_id;

\echo
\echo '== leaderboard: the top 10 referrers, by conversions, then revenue.'
SELECT rank, customer, conversions, revenue, rewards
  FROM referral.leaderboard WHERE program_id = :autumn AND rank <= 10 ORDER BY rank, customer;

\echo
\echo '== variant_stats: does "double" convert better than "control"?  p_value is the'
\echo '   two-sided two-proportion z-test against the first variant (small: a real difference).'
SELECT variant, referrers, referrals, conversions, round(conversion_rate::numeric, 3) AS conversion_rate,
       revenue, reward_cost, p_value
  FROM referral.variant_stats WHERE program_id = :autumn ORDER BY variant;

\echo
\echo '== daily_stats: the last two weeks of the program, one # per conversion.'
SELECT day, clicks, referrals, conversions, revenue, repeat('#', conversions::int) AS chart
  FROM referral.daily_stats
 WHERE program_id = :autumn AND day BETWEEN '2026-11-17' AND '2026-11-30' ORDER BY day;

\echo
\echo '== suspicious_referrals: accepted referrals worth a look, by signal; then the ring''s rows.'
SELECT signal, count(*) AS referrals, count(DISTINCT referrer) AS referrers
  FROM referral.suspicious_referrals WHERE program_id = :autumn GROUP BY signal ORDER BY signal;
SELECT referral_id, referrer, referee, signal, detail
  FROM referral.suspicious_referrals WHERE program_id = :autumn AND referrer = '77' ORDER BY signal, referral_id;

\echo
\echo '== reward_balance: the five biggest earners; paid is gross, a clawback of a refunded'
\echo '   paid reward shows as approved (negative) until the next payout nets it.'
SELECT customer, currency, pending, approved, paid, reversed
  FROM referral.reward_balance
 WHERE tenant = 'default' AND customer ~ '^[0-9]+$'
 ORDER BY pending + approved + paid DESC, customer LIMIT 5;

\echo
\echo '== audit(): recomputed from the orders table, the ledger holds no difference.'
SELECT count(*) AS problems FROM referral.audit();

-- A program's whole story, run by test/citus/citus_check.sh on one node (citus=0)
-- and on a Citus cluster (citus=1), whose outputs must be the same: four tenants,
-- codes, clicks, redeems, orders one by one and in bulk, refunds, approvals, payouts,
-- the views and audit().  Ids are never printed (each Citus node draws them from
-- its own range); lines starting with "timing" are compared by nobody.
\set ON_ERROR_STOP 1
SET TimeZone = 'UTC';
SET client_min_messages = warning;
\pset footer off

CREATE TABLE shop_orders (
	tenant		text NOT NULL,
	id			bigint NOT NULL,
	customer	text NOT NULL,
	amount		numeric NOT NULL,
	status		text NOT NULL DEFAULT 'paid',
	ordered_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant, id)
);
\if :citus
SET citus.enable_unsafe_triggers = on;
SELECT count(*) AS distributed FROM (SELECT create_distributed_table('shop_orders', 'tenant', shard_count => 8)) d;
\else
SELECT 1::bigint AS distributed;
\endif
SELECT referral.track_orders('shop_orders', 'customer', 'amount', status_column => 'status',
                             ordered_at_column => 'ordered_at', tenant_column => 'tenant') IS NULL AS tracked;
\if :citus
SELECT count(*) AS referral_distributed FROM (SELECT referral.distribute('shop_orders')) d;
\else
SELECT 1::bigint AS referral_distributed;
\endif

-- Four tenants, one program each: a referee and a two-level referrer reward, a tier,
-- a milestone.
CREATE TEMP TABLE prog AS
SELECT 't' || i AS tenant,
       referral.create_program('spring', tenant => 't' || i, hold_period => '1 day', max_depth => 2,
                               starts_at => '2026-01-01') AS id
  FROM generate_series(1, 4) i;
SELECT count(*) AS rules FROM prog p,
       LATERAL (VALUES (referral.add_reward(p.id, 'referee', fixed => 5)),
                       (referral.add_reward(p.id, 'referrer', percent => 10, cap => 20, reward_type => 'cash')),
                       (referral.add_reward(p.id, 'referrer', percent => 15, min_conversions => 3, reward_type => 'cash')),
                       (referral.add_reward(p.id, 'referrer', fixed => 1, level => 2, reward_type => 'cash')),
                       (referral.add_milestone(p.id, 5, 50))) r(id);

-- Codes: a vanity code per tenant, generated ones, a vanity taken in another tenant.
SELECT p.tenant, referral.issue_code(p.id, 'boss', vanity => ('BOSS' || right(p.tenant, 1))::referral.referral_code)::text AS code
  FROM prog p ORDER BY 1;
SELECT p.tenant, count(*) AS codes FROM prog p,
       LATERAL referral.issue_codes(p.id, ARRAY(SELECT 'ref' || j FROM generate_series(1, 20) j)) c
 GROUP BY 1 ORDER BY 1;
DO $$
BEGIN
	PERFORM referral.issue_code((SELECT id FROM prog WHERE tenant = 't2'), 'thief', vanity => 'BOSS1');
	RAISE EXCEPTION 'a vanity code of another tenant was issued twice';
EXCEPTION WHEN SQLSTATE 'RF001' THEN
	RAISE WARNING 'RF001 as expected';
END $$;
SELECT count(*) AS clicks FROM prog p, generate_series(1, 20) j,
       LATERAL referral.record_click(referral.issue_code(p.id, 'ref' || j), 'mail', '10.0.0.1',
                                     at => '2026-02-01'::timestamptz + j * interval '1 minute');

-- Redeems: ref1..ref20 refer 50 customers each per tenant; ref1 was referred by boss
-- (a chain of two levels); a self-referral and a second redeem.
SELECT p.tenant, r.status, r.reason FROM prog p,
       LATERAL referral.redeem(referral.issue_code(p.id, 'boss'), 'ref1', at => '2026-02-01') r ORDER BY 1;
SELECT p.tenant, r.status, count(*) FROM prog p, generate_series(1, 1000) k,
       LATERAL referral.redeem(referral.issue_code(p.id, 'ref' || (k % 20 + 1)), 'cust' || k,
                               at => '2026-02-02') r
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT p.tenant, r.status, r.reason FROM prog p,
       LATERAL referral.redeem(referral.issue_code(p.id, 'ref2'), 'ref2', at => '2026-02-02') r ORDER BY 1;
SELECT p.tenant, r.status, r.reason FROM prog p,
       LATERAL referral.redeem(referral.issue_code(p.id, 'ref3'), 'cust1', at => '2026-02-02') r ORDER BY 1;
SELECT level, customer FROM referral.upline('cust20', 't1') ORDER BY level;
SELECT level, count(*) FROM referral.downline('boss', 't3') GROUP BY 1 ORDER BY 1;

-- Orders one by one: the first orders of cust1..cust10 of each tenant.
DO $$
DECLARE
	t text;
	k int;
BEGIN
	FOR t IN SELECT tenant FROM prog ORDER BY 1 LOOP
		FOR k IN 1..10 LOOP
			INSERT INTO shop_orders (tenant, id, customer, amount, ordered_at)
			VALUES (t, k, 'cust' || k, 100 + k, '2026-02-10');
		END LOOP;
	END LOOP;
END $$;

-- A bulk load: 100k orders across the four tenants, most of customers nobody referred.
SELECT clock_timestamp() AS bulk_start \gset
INSERT INTO shop_orders (tenant, id, customer, amount, ordered_at)
SELECT 't' || (i % 4 + 1), 1000 + i,
       CASE WHEN i % 10 = 0 THEN 'cust' || (i / 10 % 1000 + 1) ELSE 'walkin' || i END,
       10 + i % 90, '2026-02-11'::timestamptz + (i % 1000) * interval '1 second'
  FROM generate_series(1, 100000) i;
SELECT 'timing bulk_load_100k_ms ' || round(extract(epoch FROM clock_timestamp() - :'bulk_start'::timestamptz) * 1000) AS timing;

-- Refunds, a cancel, a deletion, an amount change.
UPDATE shop_orders SET status = 'refunded' WHERE id IN (1, 2) ;
UPDATE shop_orders SET status = 'cancelled' WHERE tenant = 't2' AND id = 3;
DELETE FROM shop_orders WHERE tenant = 't3' AND id = 4;
UPDATE shop_orders SET amount = amount / 2 WHERE tenant = 't4' AND id = 5;

-- Approvals and payouts.
SELECT referral.approve_due(now() + interval '2 days') AS approved;
SELECT p.tenant, b.beneficiary, b.amount, cardinality(b.reward_ids) AS rewards
  FROM prog p, LATERAL referral.payout_batch('USD', 0, 'cash', p.tenant) b
 WHERE b.beneficiary IN ('boss', 'ref1', 'ref2') ORDER BY 1, 2;
SELECT referral.mark_paid(ARRAY(SELECT w.id FROM referral.reward w
                                 WHERE w.beneficiary = 'boss' AND w.status = 'approved' AND w.kind <> 'clawback'),
                          'batch-1') AS paid;
UPDATE shop_orders SET status = 'refunded' WHERE tenant = 't1' AND id = 6;

-- The checkout: a referee's offer before the first order (and a retry, another
-- order), then that order converts the referral; store credit (cust7's approved
-- referee credit) spent, retried, refunded.
SELECT count(*) AS offers FROM prog p,
       LATERAL referral.add_referee_offer(p.id, percent => 10, cap => 20, min_order_amount => 30) o;
SELECT p.tenant, r.status FROM prog p,
       LATERAL referral.redeem(referral.issue_code(p.id, 'ref4'), 'newbie') r ORDER BY 1;
SELECT p.tenant, o.discount, o.currency, o.expires_at > now() AS valid
  FROM prog p, LATERAL referral.offer('newbie', 120, p.tenant) o ORDER BY 1;
SELECT p.tenant, count(o.*) AS below_minimum FROM prog p
  LEFT JOIN LATERAL referral.offer('newbie', 20, p.tenant) o ON true GROUP BY 1 ORDER BY 1;
SELECT p.tenant, referral.use_offer('newbie', '900001', 120, p.tenant) AS discount FROM prog p ORDER BY 1;
SELECT p.tenant, referral.use_offer('newbie', '900001', 50, p.tenant) AS retry FROM prog p ORDER BY 1;
SELECT p.tenant, referral.use_offer('newbie', '900002', 120, p.tenant) AS other_order FROM prog p ORDER BY 1;
SELECT p.tenant, count(o.*) AS offers_left FROM prog p
  LEFT JOIN LATERAL referral.offer('newbie', 120, p.tenant) o ON true GROUP BY 1 ORDER BY 1;
SELECT referral.use_offer('nobody', '900003', 120, 't1') AS no_referral;
INSERT INTO shop_orders (tenant, id, customer, amount)
SELECT p.tenant, 900001, 'newbie', 108 FROM prog p;
SELECT r.tenant, r.status, r.converting_order FROM referral.referral r WHERE r.referee = 'newbie' ORDER BY 1;
SELECT p.tenant, referral.credit_balance('cust7', 'USD', p.tenant) AS balance FROM prog p ORDER BY 1;
SELECT p.tenant, referral.spend_credit('cust7', 3.999, 'C-1', tenant => p.tenant) AS spent FROM prog p ORDER BY 1;
SELECT p.tenant, referral.spend_credit('cust7', 1, 'C-1', tenant => p.tenant) AS retry FROM prog p ORDER BY 1;
SELECT p.tenant, referral.spend_credit('cust7', 100, 'C-2', 'USD', p.tenant) AS rest FROM prog p ORDER BY 1;
SELECT p.tenant, referral.credit_balance('cust7', 'USD', p.tenant) AS balance FROM prog p ORDER BY 1;
SELECT w.tenant, w.status, w.payout_ref FROM referral.reward w
 WHERE w.beneficiary = 'cust7' AND w.reward_type = 'credit' ORDER BY 1, 2, 3;
SELECT p.tenant, referral.refund_credit('C-2', p.tenant) AS refunded FROM prog p ORDER BY 1;
SELECT p.tenant, referral.refund_credit('C-2', p.tenant) AS again FROM prog p ORDER BY 1;
SELECT p.tenant, referral.credit_balance('cust7', 'USD', p.tenant) AS balance FROM prog p ORDER BY 1;
SELECT p.tenant, referral.spend_credit('cust7', 1, 'C-3', 'USD', p.tenant) AS after_refund FROM prog p ORDER BY 1;
SELECT s.tenant, s.order_ref, s.amount, s.refunded_at IS NOT NULL AS refunded
  FROM referral.credit_spend s ORDER BY 1, 2, 3, 4;
-- What export() gives a customer (ids differ across nodes: only how many of each).
SELECT c.customer, e.k, jsonb_array_length(e.v) AS n
  FROM (VALUES ('cust7'), ('newbie')) c(customer),
       LATERAL jsonb_each(referral.export(c.customer, 't1')) e(k, v)
 WHERE jsonb_typeof(e.v) = 'array' ORDER BY 1, 2;

-- Operations: a blocked referrer's code is refused.
SELECT referral.block('ref5', 'chargebacks', p.tenant) IS NULL AS blocked FROM prog p WHERE p.tenant = 't1';
SELECT r.status, r.reason FROM referral.redeem(referral.issue_code((SELECT id FROM prog WHERE tenant = 't1'), 'ref5'), 'late1') r;
SELECT tenant, customer, reason FROM referral.blocked ORDER BY 1, 2;

-- Every figure.
SELECT p.tenant, s.program, s.clicks, s.referrals, s.rejected, s.conversions, round(s.conversion_rate::numeric, 6) AS rate,
       s.revenue, s.reward_cost, round(s.cost_per_acquisition, 6) AS cpa, round(s.roi::numeric, 6) AS roi,
       round(s.k_factor::numeric, 6) AS k
  FROM referral.program_stats s JOIN prog p ON p.id = s.program_id ORDER BY 1;
-- Generated codes come from the database's secret: only whether there is one.
SELECT p.tenant, s.customer, s.code IS NOT NULL AS has_code, s.tier, s.clicks, s.referrals, s.conversions, s.revenue,
       s.rewards_pending, s.rewards_approved, s.rewards_paid
  FROM referral.referrer_stats s JOIN prog p ON p.id = s.program_id
 WHERE s.customer IN ('boss', 'ref1', 'ref2', 'ref3', 'ref20') ORDER BY 1, 2;
SELECT p.tenant, l.rank, l.customer, l.conversions, l.revenue, l.rewards
  FROM referral.leaderboard l JOIN prog p ON p.id = l.program_id WHERE l.rank <= 5 ORDER BY 1, 2, 3;
SELECT b.tenant, count(*) AS customers, sum(b.pending) AS pending, sum(b.approved) AS approved,
       sum(b.paid) AS paid, sum(b.reversed) AS reversed, sum(b.spent) AS spent
  FROM referral.reward_balance b GROUP BY 1 ORDER BY 1;
SELECT p.tenant, d.day, d.clicks, d.referrals, d.conversions, d.revenue, d.reward_cost
  FROM referral.daily_stats d JOIN prog p ON p.id = d.program_id ORDER BY 1, 2;
SELECT p.tenant, s.signal, count(*) FROM referral.suspicious_referrals s JOIN prog p ON p.id = s.program_id
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT p.tenant, s.code IS NOT NULL AS has_code, s.clicks, s.referrals, s.conversions, s.tier, s.next_tier_at,
       s.rewards_pending, s.rewards_approved, s.rewards_paid
  FROM prog p, LATERAL referral.participant_summary(p.id, 'ref1') s ORDER BY 1;
SELECT w.tenant, w.kind, w.level, w.status, count(*), sum(w.amount)
  FROM referral.reward w GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
SELECT r.tenant, r.status, count(*) FROM referral.referral r GROUP BY 1, 2 ORDER BY 1, 2;
SELECT o.tenant, count(*), sum(o.amount), count(o.reversed_at) FROM referral.attributed_order o GROUP BY 1 ORDER BY 1;
SELECT e.tenant, e.kind, count(*) FROM referral.event e GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS ids, count(DISTINCT id) AS distinct_ids FROM referral.reward;
SELECT count(*) AS ids, count(DISTINCT id) AS distinct_ids FROM referral.event;
SELECT p.tenant, a.problem, a.detail FROM prog p, LATERAL referral.audit(p.id) a ORDER BY 1, 2, 3;
SELECT count(*) AS problems FROM referral.audit();

-- Operations by hand, after the story.  void_referral: t3's cust20 (converted; its
-- referrer's reward approved, boss's level-2 reward paid in batch-1) is rejected
-- after the fact; its chain link goes, and its later orders attribute nothing.
SELECT r.status, count(w.*) AS rewards, count(*) FILTER (WHERE w.status = 'paid') AS paid
  FROM referral.referral r LEFT JOIN referral.reward w ON w.tenant = r.tenant AND w.referral_id = r.id
 WHERE r.tenant = 't3' AND r.referee = 'cust20' GROUP BY 1;
-- (Ids in psql variables, not printed; the calls name no distributed table, which
-- Citus would push the call down to a shard with.)
SELECT r.id AS cust20 FROM referral.referral r WHERE r.tenant = 't3' AND r.referee = 'cust20' \gset
SELECT referral.void_referral(:cust20, 'fraud ring') AS voided;
SELECT r.status, r.reason, r.voided_at IS NOT NULL AS voided, r.converted_at IS NULL AS unconverted
  FROM referral.referral r WHERE r.tenant = 't3' AND r.referee = 'cust20';
SELECT w.beneficiary, w.kind, w.level, w.status, w.reversed_at IS NOT NULL AS reversed, w.amount
  FROM referral.referral r JOIN referral.reward w ON w.tenant = r.tenant AND w.referral_id = r.id
 WHERE r.tenant = 't3' AND r.referee = 'cust20' ORDER BY 1, 2, 3, 4, 6;
SELECT count(*) AS orders, count(o.reversed_at) AS reversed
  FROM referral.referral r JOIN referral.attributed_order o ON o.tenant = r.tenant AND o.referral_id = r.id
 WHERE r.tenant = 't3' AND r.referee = 'cust20';
SELECT count(*) AS upline FROM referral.upline('cust20', 't3');
SELECT level, count(*) FROM referral.downline('ref1', 't3') GROUP BY 1 ORDER BY 1;
INSERT INTO shop_orders (tenant, id, customer, amount, ordered_at) VALUES ('t3', 900010, 'cust20', 70, '2026-02-20');
SELECT count(*) AS orders_after_void FROM referral.attributed_order o WHERE o.tenant = 't3' AND o.order_ref = '900010';
DO $$
DECLARE
	rid bigint;
BEGIN
	SELECT r.id INTO rid FROM referral.referral r WHERE r.tenant = 't3' AND r.referee = 'cust20';
	PERFORM referral.void_referral(rid, 'again');
	RAISE EXCEPTION 'a rejected referral was voided twice';
EXCEPTION WHEN object_not_in_prerequisite_state THEN
	RAISE WARNING '55000 as expected';
END $$;
DO $$
BEGIN
	PERFORM referral.void_referral(-1, 'none');
	RAISE EXCEPTION 'an unknown referral was voided';
EXCEPTION WHEN SQLSTATE 'RF004' THEN
	RAISE WARNING 'RF004 as expected';
END $$;

-- unblock: ref5's code works again in t1.
SELECT referral.unblock('ref5', 't1')::text AS unblocked;
SELECT r.status, r.reason FROM referral.redeem(referral.issue_code((SELECT id FROM prog WHERE tenant = 't1'), 'ref5'), 'late2') r;
SELECT count(*) AS blocked FROM referral.blocked WHERE tenant = 't1';

-- release: a fifth tenant's program holds suspicious referrals; sus's three referees
-- signed up from one IP within the hour, calm's one elsewhere.  approve_due holds
-- sus's rewards until release.
SELECT referral.create_program('careful', tenant => 't5', hold_period => '1 day', starts_at => '2026-01-01',
                               hold_suspicious => true) AS careful \gset
SELECT count(*) AS rules FROM (VALUES (referral.add_variant(:careful, 'a')), (referral.add_variant(:careful, 'b')),
                                      (referral.add_reward(:careful, 'referee', fixed => 5)),
                                      (referral.add_reward(:careful, 'referrer', fixed => 3, reward_type => 'cash'))) r(id);
SELECT c.customer, r.status FROM (VALUES ('sus', 'sx1', 0), ('sus', 'sx2', 10), ('sus', 'sx3', 20), ('calm', 'cx1', 0)) c(referrer, customer, m),
       LATERAL referral.redeem(referral.issue_code(:careful, c.referrer), c.customer,
                               ip => CASE c.referrer WHEN 'sus' THEN '10.9.9.9' ELSE '10.9.9.8' END::inet,
                               at => '2026-03-01 10:00'::timestamptz + c.m * interval '1 minute') r ORDER BY 1;
SELECT s.referee, s.signal FROM referral.suspicious_referrals s WHERE s.program_id = :careful ORDER BY 1, 2;
INSERT INTO shop_orders (tenant, id, customer, amount, ordered_at)
SELECT 't5', i, 'sx' || i, 50, '2026-03-02'::timestamptz FROM generate_series(1, 3) i
UNION ALL SELECT 't5', 4, 'cx1', 50, '2026-03-02'::timestamptz;
SELECT referral.approve_due(now() + interval '2 days') AS approved;
SELECT w.beneficiary, w.kind, w.status, w.amount FROM referral.reward w WHERE w.tenant = 't5' ORDER BY 1, 2, 3;
SELECT (SELECT r.id FROM referral.referral r WHERE r.tenant = 't5' AND r.referee = 'sx1') AS sx1,
       (SELECT r.id FROM referral.referral r WHERE r.tenant = 't5' AND r.referee = 'cx1') AS cx1 \gset
SELECT referral.release(:sx1) AS freed;
SELECT referral.release(:sx1) AS again;
SELECT referral.release(:cx1) AS not_held;
SELECT r.referee, r.released_at IS NOT NULL AS released FROM referral.referral r WHERE r.tenant = 't5' ORDER BY 1;
SELECT referral.approve_due(now() + interval '2 days') AS approved_after_release;
SELECT w.beneficiary, w.kind, w.status, count(*), sum(w.amount) FROM referral.reward w
  JOIN referral.referral r ON r.tenant = w.tenant AND r.id = w.referral_id
 WHERE w.tenant = 't5' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
DO $$
BEGIN
	PERFORM referral.release(-1);
	RAISE EXCEPTION 'an unknown referral was released';
EXCEPTION WHEN SQLSTATE 'RF004' THEN
	RAISE WARNING 'RF004 as expected';
END $$;

-- forget: t3's ref1 (a code with clicks, referred by boss, referrer of 50, rewards
-- both as referrer and referee, in the middle of a chain) and t5's sus (a variant).
-- The pseudonym comes from the database's secret: only whether it is one.
SELECT s.variant AS sus_variant FROM referral.referrer_stats s WHERE s.program_id = :careful AND s.customer = 'sus' \gset
SELECT c.tenant, c.customer, referral.forget(c.customer, c.tenant) AS changed
  FROM (VALUES ('t3', 'ref1'), ('t5', 'sus')) c(tenant, customer) ORDER BY 1;
SELECT c.tenant, c.customer, referral.forget(c.customer, c.tenant) AS again
  FROM (VALUES ('t3', 'ref1'), ('t5', 'sus')) c(tenant, customer) ORDER BY 1;
SELECT x.t, count(*) AS naming_them
  FROM (SELECT 'code' FROM referral.code WHERE tenant IN ('t3', 't5') AND customer IN ('ref1', 'sus')
        UNION ALL SELECT 'referral' FROM referral.referral WHERE tenant IN ('t3', 't5') AND (referrer IN ('ref1', 'sus') OR referee IN ('ref1', 'sus'))
        UNION ALL SELECT 'reward' FROM referral.reward WHERE tenant IN ('t3', 't5') AND beneficiary IN ('ref1', 'sus')
        UNION ALL SELECT 'member' FROM referral.member WHERE tenant IN ('t3', 't5') AND (customer IN ('ref1', 'sus') OR ancestors && '{ref1,sus}')
        UNION ALL SELECT 'event' FROM referral.event WHERE tenant IN ('t3', 't5') AND (referral._names_customer(payload, 'ref1') OR referral._names_customer(payload, 'sus'))) x(t)
 GROUP BY 1 ORDER BY 1;
SELECT c.tenant, count(*) AS codes, count(c.email_hash) + count(c.device_hash) AS fingerprints,
       count(*) FILTER (WHERE c.forgotten_variant IS NOT NULL) AS variants_kept
  FROM referral.code c WHERE c.customer LIKE 'forgotten-%' GROUP BY 1 ORDER BY 1;
SELECT r.tenant, r.referrer LIKE 'forgotten-%' AS referrer_forgotten, r.referee LIKE 'forgotten-%' AS referee_forgotten,
       r.status, count(*), count(r.ip_hash) AS ip_fingerprints
  FROM referral.referral r WHERE r.referrer LIKE 'forgotten-%' OR r.referee LIKE 'forgotten-%'
 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
SELECT w.tenant, w.kind, w.level, w.status, count(*), sum(w.amount)
  FROM referral.reward w WHERE w.beneficiary LIKE 'forgotten-%' GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
SELECT p.tenant, s.customer LIKE 'forgotten-%' AS forgotten, s.variant = :'sus_variant' AS same_variant, s.clicks,
       s.referrals, s.conversions, s.revenue, s.rewards_pending, s.rewards_approved, s.rewards_paid
  FROM referral.referrer_stats s JOIN (SELECT * FROM prog UNION ALL SELECT 't5', :careful) p ON p.id = s.program_id
 WHERE s.customer LIKE 'forgotten-%' ORDER BY 1;
SELECT count(*) AS clicks_with_agent FROM referral.click k
  JOIN referral.code c ON c.tenant = k.tenant AND c.code OPERATOR(referral.=) k.code
 WHERE c.customer LIKE 'forgotten-%' AND k.user_agent IS NOT NULL;
SELECT level, customer LIKE 'forgotten-%' AS forgotten FROM referral.upline('cust40', 't3') ORDER BY level;
SELECT level, count(*) FROM referral.downline('boss', 't3') GROUP BY 1 ORDER BY 1;
SELECT tenant, customer LIKE 'forgotten-%' AS forgotten, reason FROM referral.blocked ORDER BY 1, 2, 3;
SELECT f.tenant, count(*) FROM referral.forgotten f GROUP BY 1 ORDER BY 1;
SELECT e.k, jsonb_array_length(e.v) AS n FROM jsonb_each(referral.export('ref1', 't3')) e(k, v)
 WHERE jsonb_typeof(e.v) = 'array' ORDER BY 1;
SELECT r.status, r.reason FROM referral.redeem(referral.issue_code((SELECT id FROM prog WHERE tenant = 't3'), 'ref1'), 'late3') r;

-- The figures after the operations.
SELECT p.tenant, s.referrals, s.rejected, s.conversions, s.revenue, s.reward_cost, round(s.k_factor::numeric, 6) AS k
  FROM referral.program_stats s JOIN (SELECT * FROM prog UNION ALL SELECT 't5', :careful) p ON p.id = s.program_id ORDER BY 1;
SELECT b.tenant, b.customer LIKE 'forgotten-%' AS forgotten, count(*) AS customers, sum(b.pending) AS pending,
       sum(b.approved) AS approved, sum(b.paid) AS paid, sum(b.reversed) AS reversed, sum(b.spent) AS spent
  FROM referral.reward_balance b GROUP BY 1, 2 ORDER BY 1, 2;
SELECT p.tenant, l.rank, l.customer LIKE 'forgotten-%' AS forgotten, l.conversions, l.revenue, l.rewards
  FROM referral.leaderboard l JOIN prog p ON p.id = l.program_id WHERE l.rank <= 3 ORDER BY 1, 2, 3;
SELECT w.tenant, w.kind, w.level, w.status, count(*), sum(w.amount)
  FROM referral.reward w GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
SELECT r.tenant, r.status, count(*) FROM referral.referral r GROUP BY 1, 2 ORDER BY 1, 2;
SELECT e.tenant, e.kind, count(*) FROM referral.event e GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS ids, count(DISTINCT id) AS distinct_ids FROM referral.reward;
SELECT p.tenant, a.problem, a.detail FROM (SELECT * FROM prog UNION ALL SELECT 't5', :careful) p,
       LATERAL referral.audit(p.id) a ORDER BY 1, 2, 3;
SELECT count(*) AS problems FROM referral.audit();

-- distribute() refuses a tracked table whose shards do not hold its tenants'
-- referrals (distributed by another column): its orders would be attributed to
-- nothing.
\if :citus
CREATE TABLE other_orders (tenant text NOT NULL, id bigint NOT NULL, customer text NOT NULL,
                           amount numeric NOT NULL, PRIMARY KEY (customer, id));
SELECT count(*) FROM (SELECT create_distributed_table('other_orders', 'customer', colocate_with => 'none')) d;
SELECT count(*) FROM (SELECT referral.track_orders('other_orders', 'customer', 'amount', tenant_column => 'tenant')) d;
DO $$
BEGIN
	PERFORM referral.distribute('shop_orders');
	RAISE EXCEPTION 'distribute() accepted a table distributed by customer';
EXCEPTION WHEN object_not_in_prerequisite_state THEN
	RAISE NOTICE 'refused: %', SQLERRM;	-- not shown (client_min_messages)
END $$;
\else
SELECT 1::bigint AS count;
SELECT 1::bigint AS count;
\endif
SELECT 'distribute refused the table distributed by customer' AS checked;

-- make bench, checkout: CHECKOUTS x ROUNDS referees (tenant bench-checkout), each with
-- an unused offer (10%) and 10.00 of approved store credit, the baseline's table (the
-- same columns and indexes as referral.offer_use) and the floor's tables.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SELECT referral.create_program('Bench checkout', tenant => 'bench-checkout') AS program \gset
SELECT referral.add_referee_offer(:program, percent => 10);
SELECT referral.add_reward(:program, 'referee', fixed => 10) AS rule \gset
SELECT referral.issue_code(:program, 'co-referrer', vanity => 'BENCHCO') AS code \gset
SELECT count(*) FROM generate_series(1, :n) i, referral.redeem('BENCHCO', 'co-' || i);
INSERT INTO referral.reward (tenant, program_id, beneficiary, referral_id, order_source, order_ref, level,
                             kind, reward_type, amount, currency, status, rule_id, approved_at)
SELECT r.tenant, r.program_id, r.referee, r.id, 'seed', 'seed-' || r.referee, 1, 'referee', 'credit', 10,
       'USD', 'approved', :rule, now()
  FROM referral.referral r WHERE r.tenant = 'bench-checkout' AND r.status = 'pending';
ANALYZE referral.referral, referral.reward;

CREATE TABLE bench.checkout_plain (LIKE referral.offer_use INCLUDING DEFAULTS INCLUDING INDEXES);
-- n checkouts from customer co-<first>: use_offer + spend_credit, and the baseline.
CREATE FUNCTION bench.checkouts(first int, n int) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
	total numeric := 0;
BEGIN
	FOR i IN first .. first + n - 1 LOOP
		total := total + referral.use_offer('co-' || i, 'ord-' || i, 100, 'bench-checkout')
		               + referral.spend_credit('co-' || i, 5, 'ord-' || i, 'USD', 'bench-checkout');
	END LOOP;
	RETURN total;
END
$$;
CREATE FUNCTION bench.plain_checkouts(first int, n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN first .. first + n - 1 LOOP
		INSERT INTO bench.checkout_plain (tenant, referral_id, offer_id, customer, order_ref, order_amount, discount, currency)
		VALUES ('bench-checkout', i, 1, 'co-' || i, 'ord-' || i, 100, 10, 'USD')
		ON CONFLICT DO NOTHING;
	END LOOP;
END
$$;

-- The floor: what a checkout writes, as plain SQL into copies of the tables (same
-- columns, defaults, constraints and indexes), with no look-up and no check: the use
-- and its event in one statement, the lock of the customer's credit reward (no two
-- spends of one customer at once), the spend and its event in one statement, and
-- the two notifications.
CREATE TABLE bench.floor_offer_use (LIKE referral.offer_use INCLUDING ALL);
CREATE TABLE bench.floor_credit_spend (LIKE referral.credit_spend INCLUDING ALL);
CREATE TABLE bench.floor_event (LIKE referral.event INCLUDING ALL);
CREATE TABLE bench.floor_reward (LIKE referral.reward INCLUDING ALL);
INSERT INTO bench.floor_reward SELECT * FROM referral.reward WHERE tenant = 'bench-checkout';
ANALYZE bench.floor_reward;
CREATE FUNCTION bench.floor_checkouts(first int, n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	event_id bigint;
BEGIN
	FOR i IN first .. first + n - 1 LOOP
		WITH u AS (
			INSERT INTO bench.floor_offer_use (tenant, referral_id, offer_id, customer, order_ref, order_amount, discount, currency)
			VALUES ('bench-checkout', i, 1, 'co-' || i, 'ord-' || i, 100, 10, 'USD')
			ON CONFLICT DO NOTHING
			RETURNING referral_id, offer_id, customer, order_ref, order_amount, discount, currency
		)
		INSERT INTO bench.floor_event (tenant, kind, payload)
		SELECT 'bench-checkout', 'offer_used',
		       jsonb_build_object('referral_id', u.referral_id, 'program_id', 1, 'offer_id', u.offer_id,
		                          'customer', u.customer, 'order_ref', u.order_ref,
		                          'order_amount', u.order_amount, 'discount', u.discount, 'currency', u.currency)
		  FROM u
		RETURNING id INTO event_id;
		PERFORM pg_notify('referral_event', json_build_object('id', event_id, 'kind', 'offer_used', 'tenant', 'bench-checkout')::text);
		PERFORM FROM bench.floor_reward w WHERE w.tenant = 'bench-checkout' AND w.beneficiary = 'co-' || i FOR UPDATE;
		WITH s AS (
			INSERT INTO bench.floor_credit_spend (tenant, customer, order_ref, reward_id, amount, currency)
			VALUES ('bench-checkout', 'co-' || i, 'ord-' || i, i, 5, 'USD')
			RETURNING customer, order_ref, amount, currency
		)
		INSERT INTO bench.floor_event (tenant, kind, payload)
		SELECT 'bench-checkout', 'credit_spent',
		       jsonb_build_object('customer', s.customer, 'order_ref', s.order_ref, 'amount', s.amount,
		                          'currency', s.currency, 'paid_reward_ids', '[]'::jsonb)
		  FROM s
		RETURNING id INTO event_id;
		PERFORM pg_notify('referral_event', json_build_object('id', event_id, 'kind', 'credit_spent', 'tenant', 'bench-checkout')::text);
	END LOOP;
END
$$;

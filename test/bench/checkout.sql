-- make bench, checkout: CHECKOUTS x ROUNDS referees (tenant bench-checkout), each with
-- an unused offer (10%) and 10.00 of approved store credit, and the baseline's table:
-- the same columns and indexes as referral.offer_use.
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

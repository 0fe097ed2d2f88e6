-- make soak: a shop with 200 code holders in a two-level program with a budget, a
-- referrer cap, recurring rewards and a milestone (conversions one by one), and in
-- tenant 'fast' a tiered two-level program without those (conversions set-based for
-- statements of many orders) with its own orders table.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS referral;
CREATE SCHEMA soak;
SELECT referral.create_program('Soak', starts_at => '2020-01-01', max_depth => 2, hold_period => '0',
                               budget => 250000, referrer_cap => 2000, recurring_window => '1 year') AS program \gset
SELECT referral.add_reward(:program, 'referee', fixed => 5);
SELECT referral.add_reward(:program, 'referrer', percent => 10, cap => 30);
SELECT referral.add_reward(:program, 'referrer', percent => 12, cap => 40, min_conversions => 3);
SELECT referral.add_reward(:program, 'referrer', percent => 2, level => 2);
SELECT referral.add_milestone(:program, 5, 20);
SELECT count(referral.issue_code(:program, i::text)) FROM generate_series(1, 200) i;
CREATE TABLE soak.orders (
	id			bigserial PRIMARY KEY,
	customer_id	bigint NOT NULL,
	total		numeric(12, 2) NOT NULL,
	status		text NOT NULL DEFAULT 'paid'
);
CREATE INDEX ON soak.orders (customer_id);
SELECT referral.track_orders('soak.orders', 'customer_id', 'total', status_column => 'status');

SELECT referral.create_program('Fast', tenant => 'fast', starts_at => '2020-01-01', max_depth => 2,
                               hold_period => '0') AS fast \gset
SELECT referral.add_reward(:fast, 'referee', fixed => 5);
SELECT referral.add_reward(:fast, 'referrer', percent => 10, cap => 30);
SELECT referral.add_reward(:fast, 'referrer', percent => 12, cap => 40, min_conversions => 3);
SELECT referral.add_reward(:fast, 'referrer', percent => 2, level => 2, min_conversions => 2);
SELECT count(referral.issue_code(:fast, i::text)) FROM generate_series(1, 200) i;
CREATE TABLE soak.fast_orders (LIKE soak.orders INCLUDING ALL);
SELECT referral.track_orders('soak.fast_orders', 'customer_id', 'total', status_column => 'status',
                             tenant => 'fast');

-- Pays up to five approved rewards (those no other session holds).
CREATE FUNCTION soak.pay_some() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	ids bigint[];
BEGIN
	ids := ARRAY(SELECT id FROM referral.reward WHERE status = 'approved' ORDER BY id LIMIT 5 FOR UPDATE SKIP LOCKED);
	IF cardinality(ids) = 0 THEN
		RETURN 0;
	END IF;
	RETURN referral.mark_paid(ids, 'soak-' || txid_current());
END
$$;

-- The forget workload of bench.sh: a customer with 1,000 referrals (as referrer) and
-- 10,000 rewards (each referee's 10 orders pay referrer rewards within a recurring
-- window), who was referred too.  Seeded as forget-:round, in a program of its own.
SELECT referral.create_program('Forget ' || :'round', tenant => 'forget', starts_at => '2020-01-01',
	recurring_window => '3650 days') AS fp \gset
SELECT referral.add_reward(:fp, 'referrer', fixed => 1);
SELECT referral.add_reward(:fp, 'referee', fixed => 2);
SELECT referral.issue_code(:fp, 'forget-up-' || :'round') AS up_code \gset
SELECT referral.issue_code(:fp, 'forget-' || :'round') AS code \gset
SELECT count(*) FROM referral.redeem(:'up_code', 'forget-' || :'round');
SELECT count(*) FROM generate_series(1, 1000) i, LATERAL referral.redeem(:'code', 'forget-' || :'round' || '-friend-' || i) r;
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS bench.forget_orders (id bigserial PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL);
SELECT referral.track_orders('bench.forget_orders', 'customer', 'total', tenant => 'forget')
 WHERE NOT EXISTS (SELECT 1 FROM referral.tracked_table WHERE relid = 'bench.forget_orders'::regclass);
INSERT INTO bench.forget_orders (customer, total) VALUES ('forget-' || :'round', 50);
INSERT INTO bench.forget_orders (customer, total)
SELECT 'forget-' || :'round' || '-friend-' || i, 10 + n FROM generate_series(1, 1000) i, generate_series(1, 10) n;
ANALYZE referral.reward;
ANALYZE referral.referral;
ANALYZE referral.event;

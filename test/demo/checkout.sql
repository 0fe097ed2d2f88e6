-- The demo's checkout: a referee's first-order discount and a referrer spending the
-- store credit it earned, each in the order's own transaction (run by `make demo`).
\set QUIET on
SET client_min_messages = warning;
SET TimeZone = 'UTC';
\pset border 2

\echo
\echo '== Checkout: "give 10%, get $10 credit".  A friend gets 10% off the first order'
\echo '   (up to $20, from $30); the referrer gets $10 of store credit per friend.'
SELECT referral.create_program('Give 10, get 10', tenant => 'checkout-demo', hold_period => '14 days') AS program \gset
SELECT referral.add_referee_offer(:program, percent => 10, cap => 20, min_order_amount => 30) AS offer_id,
       referral.add_reward(:program, 'referrer', fixed => 10, reward_type => 'credit') AS rule \gset
SELECT referral.issue_code(:program, 'maya', vanity => 'MAYA10') AS maya_code \gset
SELECT status FROM referral.redeem('MAYA10', 'noah') AS r \gset
CREATE TABLE checkout_orders (id text PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL,
                              status text NOT NULL DEFAULT 'paid');
SELECT referral.track_orders('checkout_orders', 'customer', 'total', status_column => 'status',
                             tenant => 'checkout-demo') \gset

\echo 'What Noah''s cart of $120 may take off (offer):'
SELECT discount, currency, expires_at::date AS expires_on FROM referral.offer('noah', 120, 'checkout-demo');

\echo 'The checkout transaction: the discount, then the order with it taken off.'
BEGIN;
SELECT referral.use_offer('noah', 'N-1001', 120, 'checkout-demo') AS discount \gset
INSERT INTO checkout_orders (id, customer, total) VALUES ('N-1001', 'noah', 120 - :discount);
COMMIT;
SELECT id, customer, total AS paid, :discount AS discount FROM checkout_orders;
\echo 'A retry of the same checkout gets the same discount; a second order gets none:'
SELECT referral.use_offer('noah', 'N-1001', 120, 'checkout-demo') AS retry,
       referral.use_offer('noah', 'N-1002', 80, 'checkout-demo') AS second_order;

\echo
\echo '== Two weeks later Maya''s $10 credit is approved; she spends it on a $6.50 order'
\echo '   and the rest on the next one.'
SELECT referral.approve_due(now() + interval '15 days') AS approved \gset
SELECT referral.credit_balance('maya', tenant => 'checkout-demo') AS maya_balance;
BEGIN;
SELECT referral.spend_credit('maya', 6.50, 'M-2001', tenant => 'checkout-demo') AS spent_on_m2001;
INSERT INTO checkout_orders (id, customer, total) VALUES ('M-2001', 'maya', 0);
COMMIT;
SELECT referral.spend_credit('maya', 25, 'M-2002', tenant => 'checkout-demo') AS spent_on_m2002;
SELECT referral.credit_balance('maya', tenant => 'checkout-demo') AS maya_balance;
\echo 'M-2002 is refunded: its credit comes back.'
SELECT referral.refund_credit('M-2002', 'checkout-demo') AS refunded;
SELECT customer, currency, approved, paid, spent FROM referral.reward_balance WHERE tenant = 'checkout-demo';
SELECT kind, payload->>'order_ref' AS order_ref, COALESCE(payload->>'discount', payload->>'amount') AS amount
  FROM referral.event
 WHERE tenant = 'checkout-demo' AND kind IN ('offer_used', 'offer_restored', 'credit_spent', 'credit_refunded')
 ORDER BY id;

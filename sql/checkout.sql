-- Checkout: the referee's offer (offer, use_offer, restored by a refund) and store
-- credit (credit_balance, spend_credit, refund_credit), with their events, the
-- reward_balance.spent column, audit() and the errors.  Everything in tenant
-- 'checkout', so that other tests' programs do not count.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
-- Program ids (in messages) and so the variants customers get, whatever ran before.
SELECT setval('referral.program_id_seq', 900) > 0 AS fixed_ids;
SELECT referral.create_program('Checkout', tenant => 'checkout', starts_at => '2020-01-01',
                               hold_period => '1 day') AS p \gset
-- Referee: 10 credit; referrer: 10% credit.  Offer: 10% off, at most 15, from 20.
SELECT referral.add_reward(:p, 'referee', fixed => 10) > 0 AS rule;
SELECT referral.add_reward(:p, 'referrer', percent => 10) > 0 AS rule;
SELECT referral.add_referee_offer(:p, percent => 10, cap => 15, min_order_amount => 20) > 0 AS offer;
-- one offer per program and variant
SELECT referral.add_referee_offer(:p, fixed => 5);
-- bad offers
SELECT referral.add_referee_offer(:p, percent => 120);
SELECT referral.add_referee_offer(:p, fixed => -1);
SELECT referral.add_referee_offer(:p);
SELECT referral.add_referee_offer(:p, fixed => 5, cap => -2);
SELECT referral.add_referee_offer(:p, fixed => 5, min_order_amount => -1);
SELECT referral.add_referee_offer(:p, fixed => 5, valid_for => '0 days');
SELECT referral.add_referee_offer(:p, fixed => 5, variant => 'nope');
SELECT referral.add_referee_offer(:p, fixed => 'NaN');
SELECT referral.add_referee_offer(-1, fixed => 5);

SELECT referral.issue_code(:p, 'ann', vanity => 'ANN10') AS ann,
       referral.issue_code(:p, 'dan', vanity => 'DAN10') AS dan;
SELECT status FROM referral.redeem('ANN10', 'bob');
SELECT status FROM referral.redeem('DAN10', 'dora');
SELECT status, reason FROM referral.redeem('ANN10', 'ann');
-- redeemed 31 days ago: the offer (valid 30 days) has expired
SELECT status FROM referral.redeem('DAN10', 'eve', at => now() - interval '31 days');

CREATE TABLE shop_orders (id text PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL,
                          status text NOT NULL DEFAULT 'paid');
SELECT referral.track_orders('shop_orders', 'customer', 'total', status_column => 'status',
                             tenant => 'checkout');

-- offer(): 10% of 100; the cap at 500; below the minimum, no row; expiry 30 days after
-- the redeem.
SELECT o.discount, o.currency, o.expires_at = r.created_at + interval '30 days' AS expires_in_30_days,
       o.referral_id = r.id AS its_referral
  FROM referral.offer('bob', 100, 'checkout') o
  JOIN referral.referral r ON r.referee = 'bob';
SELECT discount FROM referral.offer('bob', 500, 'checkout');
SELECT count(*) AS below_minimum FROM referral.offer('bob', 19.99, 'checkout');
SELECT discount FROM referral.offer('bob', 20, 'checkout');
SELECT count(*) AS expired FROM referral.offer('eve', 100, 'checkout');
SELECT count(*) AS not_referred FROM referral.offer('zed', 100, 'checkout');
SELECT count(*) AS rejected_referral FROM referral.offer('ann', 100, 'checkout');
-- offer() reads only
SELECT count(*) AS uses FROM referral.offer_use;

-- Checkout of bob's first order: the discount, then the order, in one transaction.
BEGIN;
SELECT referral.use_offer('bob', 'o1', 100, 'checkout') AS discount;
INSERT INTO shop_orders VALUES ('o1', 'bob', 90);
COMMIT;
-- the same order again (a retry): the same discount; another order: 0
SELECT referral.use_offer('bob', 'o1', 100, 'checkout') AS retry,
       referral.use_offer('bob', 'o1', 300, 'checkout') AS retry_other_amount,
       referral.use_offer('bob', 'o2', 100, 'checkout') AS second_order;
SELECT count(*) AS offer_after_use FROM referral.offer('bob', 100, 'checkout');
SELECT status FROM referral.referral WHERE referee = 'bob';
-- Refunding o1 returns the referral to pending and frees the offer.
UPDATE shop_orders SET status = 'refunded' WHERE id = 'o1';
SELECT status FROM referral.referral WHERE referee = 'bob';
SELECT discount FROM referral.offer('bob', 50, 'checkout');
SELECT order_ref, discount, restored_at IS NOT NULL AS restored FROM referral.offer_use ORDER BY id;
-- used again by another order, which converts; its retry keeps 5.00
SELECT referral.use_offer('bob', 'o3', 50, 'checkout') AS discount;
INSERT INTO shop_orders VALUES ('o3', 'bob', 45);
SELECT referral.use_offer('bob', 'o3', 50, 'checkout') AS retry;
SELECT referral.use_offer('bob', 'o1', 100, 'checkout') AS refunded_order;

-- The order inserted first (it converts the referral), then use_offer for it: the
-- discount still applies to that order, and to no other.
BEGIN;
INSERT INTO shop_orders VALUES ('d1', 'dora', 200);
SELECT referral.use_offer('dora', 'd1', 200, 'checkout') AS discount;
COMMIT;
SELECT referral.use_offer('dora', 'd2', 200, 'checkout') AS second_order;
-- nothing for a customer without an offer, an expired one, or a small order
SELECT referral.use_offer('zed', 'z1', 100, 'checkout') AS not_referred,
       referral.use_offer('eve', 'e1', 100, 'checkout') AS expired;
SELECT status FROM referral.redeem('ANN10', 'fay');
SELECT referral.use_offer('fay', 'f1', 10, 'checkout') AS below_minimum,
       referral.use_offer('fay', 'f1', 30, 'checkout') AS then_enough;
-- a fixed offer is never more than the order
SELECT referral.create_program('Fixed', tenant => 'checkout-fixed', starts_at => '2020-01-01') AS pf \gset
SELECT referral.add_referee_offer(:pf, fixed => 25) > 0 AS offer;
SELECT referral.issue_code(:pf, 'gus', vanity => 'GUS25') AS gus;
SELECT status FROM referral.redeem('GUS25', 'hal');
SELECT discount FROM referral.offer('hal', 12.5, 'checkout-fixed');
SELECT referral.use_offer('hal', 'h1', 12.5, 'checkout-fixed') AS discount;

-- The program's own minimum (50) above the offer's (20): an order of 30 never
-- converts, and its refund could not give the offer back, so it gets no offer.  An
-- order of 60 gets it, and its refund frees it; the same order id inserted again
-- (not attributed again) may use it again, and its refund frees it again.
SELECT referral.create_program('Minimum', tenant => 'checkout-min', starts_at => '2020-01-01',
                               min_order_amount => 50) AS pm \gset
SELECT referral.add_referee_offer(:pm, percent => 10, min_order_amount => 20) > 0 AS offer;
SELECT referral.issue_code(:pm, 'ida', vanity => 'IDA10') AS ida;
SELECT status FROM referral.redeem('IDA10', 'ivy');
CREATE TABLE min_orders (id text PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL,
                         status text NOT NULL DEFAULT 'paid');
SELECT referral.track_orders('min_orders', 'customer', 'total', status_column => 'status',
                             tenant => 'checkout-min');
SELECT count(*) AS below_program_minimum FROM referral.offer('ivy', 30, 'checkout-min');
BEGIN;
SELECT referral.use_offer('ivy', 'i1', 30, 'checkout-min') AS below_program_minimum;
INSERT INTO min_orders VALUES ('i1', 'ivy', 30);
COMMIT;
UPDATE min_orders SET status = 'refunded' WHERE id = 'i1';
SELECT discount AS after_small_order FROM referral.offer('ivy', 60, 'checkout-min');
BEGIN;
SELECT referral.use_offer('ivy', 'i2', 60, 'checkout-min') AS discount;
INSERT INTO min_orders VALUES ('i2', 'ivy', 54);
COMMIT;
SELECT status, converting_order FROM referral.referral WHERE referee = 'ivy';
UPDATE min_orders SET status = 'refunded' WHERE id = 'i2';
SELECT status FROM referral.referral WHERE referee = 'ivy';
SELECT discount AS after_refund FROM referral.offer('ivy', 60, 'checkout-min');
DELETE FROM min_orders WHERE id = 'i2';
BEGIN;
SELECT referral.use_offer('ivy', 'i2', 60, 'checkout-min') AS same_id_again;
INSERT INTO min_orders VALUES ('i2', 'ivy', 54);
COMMIT;
SELECT status FROM referral.referral WHERE referee = 'ivy';
SELECT referral.use_offer('ivy', 'i3', 60, 'checkout-min') AS another_order;
UPDATE min_orders SET status = 'cancelled' WHERE id = 'i2';
SELECT discount AS after_second_refund FROM referral.offer('ivy', 60, 'checkout-min');
SELECT order_ref, discount, restored_at IS NOT NULL AS restored FROM referral.offer_use
 WHERE tenant = 'checkout-min' ORDER BY id;
-- An order that used the offer and was never paid: cancelled, or deleted, it frees
-- the offer too (it was never attributed).
SELECT status FROM referral.redeem('IDA10', 'jay');
BEGIN;
SELECT referral.use_offer('jay', 'j1', 60, 'checkout-min') AS discount;
INSERT INTO min_orders VALUES ('j1', 'jay', 54, 'pending');
COMMIT;
SELECT count(*) AS while_pending FROM referral.offer('jay', 60, 'checkout-min');
UPDATE min_orders SET status = 'cancelled' WHERE id = 'j1';
SELECT discount AS after_cancel FROM referral.offer('jay', 60, 'checkout-min');
BEGIN;
SELECT referral.use_offer('jay', 'j2', 60, 'checkout-min') AS discount;
INSERT INTO min_orders VALUES ('j2', 'jay', 54, 'pending');
COMMIT;
DELETE FROM min_orders WHERE id = 'j2';
SELECT discount AS after_delete FROM referral.offer('jay', 60, 'checkout-min');
SELECT order_ref, restored_at IS NOT NULL AS restored FROM referral.offer_use
 WHERE tenant = 'checkout-min' AND customer = 'jay' ORDER BY id;
SELECT kind, payload->>'order_ref' AS order_ref FROM referral.event
 WHERE tenant = 'checkout-min' AND kind LIKE 'offer%' AND payload->>'customer' = 'jay' ORDER BY id;

-- Variants: each variant's own offer, else the variant-less one.
SELECT referral.create_program('Variants', tenant => 'checkout-ab', starts_at => '2020-01-01') AS pv \gset
SELECT referral.add_variant(:pv, 'A') > 0 AS a, referral.add_variant(:pv, 'B') > 0 AS b;
SELECT referral.add_referee_offer(:pv, fixed => 7) > 0 AS base_offer;
SELECT referral.add_referee_offer(:pv, fixed => 3, variant => 'A') > 0 AS a_offer;
SELECT count(referral.issue_code(:pv, 'ref' || i)) AS codes FROM generate_series(1, 20) i;
SELECT count(*) AS redeemed
  FROM generate_series(1, 20) i, referral.redeem((SELECT code FROM referral.code WHERE customer = 'ref' || i), 'new' || i);
-- every referral of variant A gets 3, the others 7
SELECT r.variant, o.discount, count(*) > 0 AS some
  FROM referral.referral r, referral.offer(r.referee, 100, 'checkout-ab') o
 WHERE r.tenant = 'checkout-ab'
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) FILTER (WHERE o.discount = CASE WHEN r.variant = 'A' THEN 3 ELSE 7 END) = count(*) AS all_right,
       count(DISTINCT r.variant) AS variants
  FROM referral.referral r, referral.offer(r.referee, 100, 'checkout-ab') o
 WHERE r.tenant = 'checkout-ab';

-- Store credit.  bob's referee credit (10) and ann's referrer credit (4.50) from o3,
-- dora's (10) and dan's (20) from d1; approved after the hold period.
SELECT beneficiary, kind, amount, status FROM referral.reward
 WHERE tenant = 'checkout' ORDER BY id;
SELECT referral.credit_balance('ann', tenant => 'checkout') AS ann_before_approval;
SELECT referral.approve_due(now() + interval '2 days') > 0 AS approved;
SELECT referral.credit_balance('ann', tenant => 'checkout') AS ann,
       referral.credit_balance('dan', 'USD', 'checkout') AS dan,
       referral.credit_balance('zed', tenant => 'checkout') AS zed;
-- dan spends 15 of 20 (15.009 asked: whole cents, rounded down), then 15 again on
-- another order: the 5 left
SELECT referral.spend_credit('dan', 15.009, 'c1', tenant => 'checkout') AS spent;
-- (a balance read in the statement that spends would see the statement's snapshot)
SELECT referral.spend_credit('dan', 15, 'c1', tenant => 'checkout') AS retry;
SELECT referral.credit_balance('dan', tenant => 'checkout') AS balance;
SELECT referral.spend_credit('dan', 15, 'c2', tenant => 'checkout') AS spent_all_that_is_left;
SELECT referral.credit_balance('dan', tenant => 'checkout') AS balance;
SELECT referral.spend_credit('dan', 15, 'c3', tenant => 'checkout') AS nothing_left;
SELECT status, payout_ref FROM referral.reward WHERE beneficiary = 'dan';
SELECT order_ref, amount, refunded_at IS NULL AS live FROM referral.credit_spend ORDER BY id;
-- another currency: nothing to spend; 0 spends 0
SELECT referral.spend_credit('dora', 5, 'c4', 'EUR', 'checkout') AS eur,
       referral.spend_credit('dora', 0, 'c4', tenant => 'checkout') AS zero;
-- refund: c2's 5 back, the reward spendable again
SELECT referral.refund_credit('c2', 'checkout') AS refunded;
SELECT referral.refund_credit('c2', 'checkout') AS again,
       referral.refund_credit('never-spent', 'checkout') AS none;
SELECT status, payout_ref, referral.credit_balance('dan', tenant => 'checkout') AS balance
  FROM referral.reward WHERE beneficiary = 'dan';
SELECT customer, currency, pending, approved, paid, spent FROM referral.reward_balance
 WHERE tenant = 'checkout' ORDER BY customer;
-- oldest approved first: ann's two credits (4.50 from o3, then 3 from f1's order)
INSERT INTO shop_orders VALUES ('f1', 'fay', 30);
SELECT referral.approve_due(now() + interval '2 days') > 0 AS approved;
SELECT referral.spend_credit('ann', 6, 'c5', tenant => 'checkout') AS spent;
SELECT w.amount, s.amount AS spent, w.status
  FROM referral.credit_spend s JOIN referral.reward w ON w.id = s.reward_id
 WHERE s.order_ref = 'c5' ORDER BY w.id;

-- bob spends his 10 whole, then o3 is refunded: the paid credit is clawed back and
-- his balance is -10; refunding his spend brings it back to 0.
SELECT referral.spend_credit('bob', 50, 'c6', tenant => 'checkout') AS spent;
UPDATE shop_orders SET status = 'refunded' WHERE id = 'o3';
SELECT kind, amount, status FROM referral.reward WHERE beneficiary = 'bob' ORDER BY id;
SELECT referral.credit_balance('bob', tenant => 'checkout') AS owes;
SELECT referral.spend_credit('bob', 5, 'c7', tenant => 'checkout') AS nothing_to_spend;
SELECT referral.refund_credit('c6', 'checkout') AS refunded;
SELECT referral.credit_balance('bob', tenant => 'checkout') AS balance;
-- o3 also used bob's offer: free again
SELECT discount FROM referral.offer('bob', 100, 'checkout');

-- The events, in order.
SELECT kind, payload - 'referral_id' - 'offer_id' - 'program_id' - 'paid_reward_ids' - 'reopened_reward_ids' AS payload
  FROM referral.event
 WHERE tenant = 'checkout' AND kind IN ('offer_used', 'offer_restored', 'credit_spent', 'credit_refunded')
 ORDER BY id;
SELECT * FROM referral.audit();

-- Several currencies in one tenant: the currency must be given.
SELECT referral.create_program('Euro', tenant => 'checkout', currency => 'EUR') > 0 AS euro;
SELECT referral.credit_balance('dan', tenant => 'checkout');
SELECT referral.spend_credit('dan', 1, 'c8', tenant => 'checkout');
SELECT referral.credit_balance('dan', 'USD', 'checkout') AS usd, referral.credit_balance('dan', 'EUR', 'checkout') AS eur;

-- audit(): a spend above its reward's amount, one from another customer's reward, one
-- of a reward that does not exist.
BEGIN;
UPDATE referral.credit_spend SET amount = amount + 100 WHERE order_ref = 'c1';
INSERT INTO referral.credit_spend (tenant, customer, order_ref, reward_id, amount, currency)
SELECT tenant, 'dan', 'forged', id, 1, currency FROM referral.reward
 WHERE beneficiary = 'dora' LIMIT 1;
INSERT INTO referral.credit_spend (tenant, customer, order_ref, reward_id, amount, currency)
VALUES ('checkout', 'dan', 'ghost', -1, 1, 'USD');
SELECT problem FROM referral.audit();
ROLLBACK;

-- Bad input: one error each.
SELECT * FROM referral.offer('bob', -1, 'checkout');
SELECT * FROM referral.offer('bob', NULL, 'checkout');
SELECT * FROM referral.offer('', 10, 'checkout');
SELECT * FROM referral.offer('bob', 10, 'no-such-tenant');
SELECT referral.use_offer('bob', 'o9', -5, 'checkout');
SELECT referral.use_offer('bob', 'o9', 'Infinity', 'checkout');
SELECT referral.use_offer('bob', '', 5, 'checkout');
SELECT referral.use_offer('bob', NULL, 5, 'checkout');
SELECT referral.use_offer('bob', 'o9', 5, 'no-such-tenant');
SELECT referral.credit_balance('bob', tenant => 'no-such-tenant');
SELECT referral.credit_balance('bob', 'USD', 'no-such-tenant');
SELECT referral.spend_credit('dan', -1, 'c9', 'USD', 'checkout');
SELECT referral.spend_credit('dan', 'NaN', 'c9', 'USD', 'checkout');
SELECT referral.spend_credit('dan', 1, '', 'USD', 'checkout');
SELECT referral.spend_credit('dan', 1, 'c9', 'USD', 'no-such-tenant');
SELECT referral.refund_credit('c9', 'no-such-tenant');
SELECT referral.refund_credit(repeat('x', 1001), 'checkout');
SELECT referral.offer(repeat('y', 2000), 10, 'checkout');

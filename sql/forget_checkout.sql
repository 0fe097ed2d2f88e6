-- export() and forget() of a customer who used a referee offer and spent store
-- credit at checkout: export lists both, and forget leaves the old key in neither.
SET TimeZone = 'UTC';
CREATE TABLE fc_orders (id text PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL);
SELECT referral.track_orders('fc_orders', 'customer', 'total', tenant => 'fc');
SELECT referral.create_program('fc', tenant => 'fc', hold_period => '0') AS p \gset
SELECT referral.add_reward(:p, 'referrer', fixed => 10, reward_type => 'credit') > 0 AS rule;
SELECT referral.add_referee_offer(:p, percent => 10) > 0 AS offer;
-- fiona refers gus: gus's first order uses his offer and earns fiona 10 of credit,
-- which she spends on her own order.
SELECT referral.issue_code(:p, 'fiona', vanity => 'FIONAFC') IS NOT NULL AS issued;
SELECT status FROM referral.redeem('FIONAFC', 'gus');
SELECT referral.use_offer('gus', 'G-1', 50, tenant => 'fc') AS gus_discount;
INSERT INTO fc_orders VALUES ('G-1', 'gus', 45);
SELECT referral.approve_due(now() + interval '1 second') AS approved;
SELECT referral.spend_credit('fiona', 4, 'F-1', tenant => 'fc') AS fiona_spent;
INSERT INTO fc_orders VALUES ('F-1', 'fiona', 26);

SELECT jsonb_array_length(e -> 'offers_used') AS gus_offers_used
  FROM referral.export('gus', 'fc') e;
SELECT jsonb_array_length(e -> 'credit_spends') AS fiona_credit_spends,
       e -> 'credit_spends' -> 0 ->> 'amount' AS fiona_spend
  FROM referral.export('fiona', 'fc') e;

SELECT referral.forget('gus', 'fc') > 0 AS forgot_gus;
SELECT referral.forget('fiona', 'fc') > 0 AS forgot_fiona;
SELECT count(*) AS rows_with_old_keys
  FROM (SELECT customer FROM referral.offer_use WHERE tenant = 'fc'
        UNION ALL SELECT customer FROM referral.credit_spend WHERE tenant = 'fc') x
 WHERE customer IN ('gus', 'fiona');
SELECT count(*) AS pseudonymous_rows
  FROM (SELECT customer FROM referral.offer_use WHERE tenant = 'fc'
        UNION ALL SELECT customer FROM referral.credit_spend WHERE tenant = 'fc') x
 WHERE customer LIKE 'forgotten-%';
-- the figures stay: fiona's balance under her pseudonym, the spend still counted
SELECT spent FROM referral.reward_balance WHERE tenant = 'fc' AND spent > 0;
SELECT count(*) AS audit_problems FROM referral.audit();

-- The demo shop: run by `make demo` in a throwaway database.
\set QUIET on
SET client_min_messages = warning;
SET TimeZone = 'UTC';
CREATE EXTENSION referral;
\pset border 2

\echo
\echo '== A program: 10% of the first order (up to $25) for the referrer, $5 for the friend,'
\echo '   15% from the 3rd conversion on, at most 5 referrals a day per referrer.'
SELECT referral.create_program('Spring friends', starts_at => '2026-03-01', ends_at => '2026-06-01',
                               daily_referral_limit => 5) AS program \gset
SELECT referral.add_reward(:program, 'referrer', percent => 10, cap => 25) AS rule_base,
       referral.add_reward(:program, 'referrer', percent => 15, cap => 40, min_conversions => 3) AS rule_tier2,
       referral.add_reward(:program, 'referee', fixed => 5) AS rule_friend \gset
SELECT id, name, starts_at, ends_at, attribution_window, hold_period, currency, daily_referral_limit
  FROM referral.program;
SELECT beneficiary, percent, fixed, cap, level, min_conversions, reward_type FROM referral.reward_rule ORDER BY id;

\echo
\echo '== Codes: generated ones (8 symbols, the last a check character) and a vanity code.'
\echo '   Olivia''s vanity code also answers to 0L1V1A (O = 0, I = L = 1).'
CREATE TEMP TABLE customers (customer text, email text, device text);
INSERT INTO customers VALUES
	('alice', 'alice@example.com', 'iphone-a1'), ('bruno', 'bruno@example.com', 'pixel-b7'),
	('chen', 'chen.li@gmail.com', 'mac-c3'), ('olivia', 'olivia@example.com', 'ipad-o5');
SELECT customer,
       referral.issue_code(:program, customer,
                           vanity => CASE customer WHEN 'olivia' THEN 'olivia'::referral.referral_code END,
                           email => email, device => device) AS code
  FROM customers ORDER BY customer;
SELECT code, referral.is_generated(code) AS generated, code OPERATOR(referral.=) '0L1V1A'::referral.referral_code AS "= 0L1V1A"
  FROM referral.code ORDER BY customer;

\echo
\echo '== Share links, and clicks on them (the IP is stored only as a keyed hash).'
SELECT customer, referral.share_link(code, 'https://shop.example/welcome?lang=en#top', 'spring newsletter') AS link
  FROM referral.code WHERE customer IN ('alice', 'olivia') ORDER BY customer;
SELECT count(*) AS clicks FROM (
	SELECT referral.record_click(c.code, 'newsletter', ('10.0.0.' || g)::inet, 'demo-agent', '2026-03-02 12:00'::timestamptz + g * interval '1 minute')
	  FROM referral.code c, generate_series(1, 3) g) s;

\echo
\echo '== Sign-ups with a code: accepted referrals are pending until a first order;'
\echo '   every rejection is stored with its reason.'
SELECT referral.issue_code(:program, 'dave', vanity => 'DAVE') AS dave_code \gset
SELECT x.why AS "what happens", x.code AS "code typed", x.who AS customer, r.status, r.reason
  FROM (VALUES
	(1, (SELECT code::text FROM referral.code WHERE customer = 'alice'), 'dave', 'dave@example.com', NULL, '2026-03-03 10:00', 'Dave signs up with Alice''s code'),
	(2, '0L1V1A', 'erin', 'erin@example.com', NULL, '2026-03-03 11:00', 'Olivia''s code typed with 0 and 1'),
	(3, 'dave', 'alice', NULL, NULL, '2026-03-04 09:00', 'Alice uses Dave''s code: she referred him'),
	(4, (SELECT code::text FROM referral.code WHERE customer = 'chen'), 'chen-2', 'ChenLi+promo@GMail.com', NULL, '2026-03-04 10:00', 'Chen''s own Gmail, +tag, no dot'),
	(5, (SELECT code::text FROM referral.code WHERE customer = 'bruno'), 'fay', 'fay@example.com', 'pixel-b7', '2026-03-04 11:00', 'Fay on Bruno''s own phone'),
	(6, 'olivia', 'gus', 'gus@example.com', NULL, '2026-02-20 08:00', 'before the program starts'),
	(7, 'olivia', 'dave', NULL, NULL, '2026-03-05 08:00', 'Dave again, with another code'),
	(8, 'dave', 'hana', 'hana@example.com', NULL, '2026-03-05 09:00', 'Hana with Dave''s code')
  ) AS x(n, code, who, email, device, at, why)
 CROSS JOIN LATERAL referral.redeem(x.code::referral.referral_code, x.who, x.email, NULL, x.device, x.at::timestamptz) AS r
 ORDER BY x.n;

\echo
\echo '== A typo in a generated code: the error names the code one typo away.'
SELECT code AS alice_code, overlay(code::text PLACING CASE WHEN substr(code::text, 2, 1) = 'X' THEN 'Y' ELSE 'X' END FROM 2 FOR 1) AS typo
  FROM referral.code WHERE customer = 'alice' \gset
\set SHOW_CONTEXT never
\set ON_ERROR_STOP off
SELECT * FROM referral.redeem(:'typo', 'ivan');
\set ON_ERROR_STOP on

\echo
\echo '== Chains: Hana was referred by Dave, who was referred by Alice.'
SELECT * FROM referral.upline('hana');
\echo 'Alice''s downline:'
SELECT * FROM referral.downline('alice');

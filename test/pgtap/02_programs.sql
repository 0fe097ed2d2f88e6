-- Programs and rules: stored as given, nonsense refused with 22023 and a message that
-- names the problem, nothing half-written.
BEGIN;
SELECT plan(27);

SELECT lives_ok($$SELECT referral.create_program('Spring', starts_at => '2026-01-01', ends_at => '2026-07-01',
	min_order_amount => 20, max_depth => 2, currency => 'EUR', budget => 1000, referrer_cap => 100,
	daily_referral_limit => 3)$$, 'create_program with every argument');
SELECT results_eq(
	$$SELECT tenant, name, starts_at, ends_at, attribution_window, hold_period, min_order_amount,
	         recurring_window, max_depth, currency, budget, referrer_cap, daily_referral_limit
	    FROM referral.program WHERE name = 'Spring'$$,
	$$VALUES ('default'::text, 'Spring'::text, '2026-01-01'::timestamptz, '2026-07-01'::timestamptz,
	          '30 days'::interval, '30 days'::interval, 20::numeric, NULL::interval, 2, 'EUR'::text,
	          1000::numeric, 100::numeric, 3)$$,
	'every argument is a column of the same name, defaults applied');
SELECT isnt(referral.create_program('Spring', tenant => 'other-shop'), NULL, 'the same name in another tenant is fine');

SELECT throws_ok($$SELECT referral.create_program('Spring')$$, '42710',
	'program "Spring" already exists in tenant "default"', 'names are unique per tenant');
SELECT throws_ok($$SELECT referral.create_program('')$$, '22023', 'program name must not be empty', 'empty name');
SELECT throws_ok($$SELECT referral.create_program('x', starts_at => '2026-02-01', ends_at => '2026-01-01')$$, '22023',
	NULL, 'ends before it starts');
SELECT throws_like($$SELECT referral.create_program('x', starts_at => '2026-02-01', ends_at => '2026-01-01')$$,
	'program ends (%) before it starts (%)', 'the message names both times');
SELECT throws_ok($$SELECT referral.create_program('x', attribution_window => '-1 day')$$, '22023',
	'attribution_window must not be negative (got -1 days)', 'negative window');
SELECT throws_ok($$SELECT referral.create_program('x', min_order_amount => -5)$$, '22023',
	'min_order_amount must not be negative (got -5)', 'negative minimum');
SELECT throws_ok($$SELECT referral.create_program('x', max_depth => 0)$$, '22023',
	'max_depth must be between 1 and 10 (got 0)', 'max_depth 0');
SELECT throws_ok($$SELECT referral.create_program('x', currency => 'usd')$$, '22023',
	'currency must be an ISO 4217 code of three upper-case letters (got ''usd'')', 'lower-case currency');
SELECT throws_ok($$SELECT referral.create_program('x', budget => -1)$$, '22023',
	'budget must not be negative (got -1)', 'negative budget');
SELECT throws_ok($$SELECT referral.create_program('x', daily_referral_limit => 0)$$, '22023',
	'daily_referral_limit must be positive (got 0)', 'zero daily limit');
SELECT is((SELECT count(*) FROM referral.program WHERE name = 'x'), 0::bigint, 'no failed call left a program behind');

-- Rules.
CREATE TEMP TABLE ids AS SELECT id AS program FROM referral.program WHERE name = 'Spring' AND tenant = 'default';
SELECT lives_ok($$SELECT referral.add_variant((SELECT program FROM ids), 'B', 2)$$, 'add_variant');
SELECT lives_ok($$SELECT referral.add_reward((SELECT program FROM ids), 'referrer', percent => 10, cap => 25, variant => 'B')$$,
	'add_reward with a variant');
SELECT results_eq(
	$$SELECT beneficiary, percent, fixed, cap, level, min_conversions, reward_type, variant
	    FROM referral.reward_rule WHERE program_id = (SELECT program FROM ids)$$,
	$$VALUES ('referrer'::text, 10::numeric, 0::numeric, 25::numeric, 1, 0, 'credit'::text, 'B'::text)$$,
	'the rule is stored with its defaults');
SELECT throws_ok($$SELECT referral.add_reward((SELECT program FROM ids), 'friend', fixed => 5)$$, '22023',
	'beneficiary must be ''referrer'' or ''referee'' (got ''friend'')', 'unknown beneficiary');
SELECT throws_ok($$SELECT referral.add_reward((SELECT program FROM ids), 'referrer', percent => 101)$$, '22023',
	'percent must be between 0 and 100 (got 101)', 'percent over 100');
SELECT throws_ok($$SELECT referral.add_reward((SELECT program FROM ids), 'referrer', fixed => -1)$$, '22023',
	'fixed must not be negative (got -1)', 'negative fixed');
SELECT throws_ok($$SELECT referral.add_reward((SELECT program FROM ids), 'referrer', fixed => 5, level => 3)$$, '22023',
	'level 3 exceeds the program''s max_depth 2', 'level above max_depth');
SELECT throws_ok($$SELECT referral.add_reward((SELECT program FROM ids), 'referrer', fixed => 5, reward_type => 'gold')$$, '22023',
	'unknown reward_type ''gold''', 'unknown reward type');
SELECT throws_ok($$SELECT referral.add_reward((SELECT program FROM ids), 'referrer', fixed => 5, variant => 'C')$$, '22023',
	format('variant ''C'' does not exist in program %s', (SELECT program FROM ids)), 'unknown variant');
SELECT throws_ok($$SELECT referral.add_reward(-42, 'referrer', fixed => 5)$$, 'RF003',
	'referral program -42 does not exist', 'unknown program');
SELECT throws_ok($$SELECT referral.add_milestone((SELECT program FROM ids), 0, 10)$$, '22023',
	'conversions must be positive (got 0)', 'milestone at 0 conversions');
SELECT throws_ok($$SELECT referral.add_variant((SELECT program FROM ids), 'B')$$, '42710',
	NULL, 'duplicate variant');
SELECT is((SELECT count(*) FROM referral.reward_rule WHERE program_id = (SELECT program FROM ids)), 1::bigint,
	'no failed call left a rule behind');

SELECT * FROM finish();
ROLLBACK;

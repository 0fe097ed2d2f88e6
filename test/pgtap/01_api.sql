-- The public SQL interface: every function of SPEC.md exists with its signature,
-- honest volatility, and privileges (nothing executable by PUBLIC but the type's).
BEGIN;
SELECT plan(43);

SELECT has_type('referral', 'referral_code', 'type referral_code exists');
SELECT has_function('referral', 'create_program',
	ARRAY['text','text','timestamp with time zone','timestamp with time zone','interval','interval','numeric','interval','integer','text','numeric','numeric','integer','boolean']);
SELECT has_function('referral', 'add_reward', ARRAY['bigint','text','numeric','numeric','numeric','integer','integer','text','text']);
SELECT has_function('referral', 'add_milestone', ARRAY['bigint','integer','numeric','text']);
SELECT has_function('referral', 'add_variant', ARRAY['bigint','text','integer']);
SELECT has_function('referral', 'issue_code', ARRAY['bigint','text','referral.referral_code','text','text']);
SELECT has_function('referral', 'share_link', ARRAY['referral.referral_code','text','text']);
SELECT has_function('referral', 'record_click', ARRAY['referral.referral_code','text','inet','text','timestamp with time zone']);
SELECT has_function('referral', 'redeem', ARRAY['referral.referral_code','text','text','inet','text','timestamp with time zone']);
SELECT has_function('referral', 'upline', ARRAY['text','text']);
SELECT has_function('referral', 'downline', ARRAY['text','text','integer']);
SELECT has_function('referral', 'grant_app', ARRAY['regrole']);
SELECT has_function('referral', 'grant_analyst', ARRAY['regrole']);
SELECT has_function('referral', 'grant_operator', ARRAY['regrole']);
SELECT has_function('referral', 'void_referral', ARRAY['bigint','text']);
SELECT has_function('referral', 'block', ARRAY['text','text','text']);
SELECT has_function('referral', 'unblock', ARRAY['text','text']);
SELECT has_function('referral', 'release', ARRAY['bigint']);
SELECT has_function('referral', 'payout_batch', ARRAY['text','numeric','text','text']);
SELECT has_function('referral', 'export', ARRAY['text','text']);
SELECT has_function('referral', 'forget', ARRAY['text','text']);
SELECT has_view('referral', 'blocked', 'view referral.blocked exists');
SELECT columns_are('referral', 'blocked', ARRAY['tenant', 'customer', 'reason', 'blocked_at'], 'referral.blocked has the columns of SPEC.md');

SELECT function_returns('referral', 'create_program',
	ARRAY['text','text','timestamp with time zone','timestamp with time zone','interval','interval','numeric','interval','integer','text','numeric','numeric','integer','boolean'], 'bigint');
SELECT function_returns('referral', 'issue_code', ARRAY['bigint','text','referral.referral_code','text','text'], 'referral.referral_code');
SELECT function_returns('referral', 'record_click', ARRAY['referral.referral_code','text','inet','text','timestamp with time zone'], 'bigint');
SELECT function_returns('referral', 'redeem', ARRAY['referral.referral_code','text','text','inet','text','timestamp with time zone'], 'setof record');

SELECT volatility_is('referral', 'issue_code', ARRAY['bigint','text','referral.referral_code','text','text'], 'volatile');
SELECT volatility_is('referral', 'redeem', ARRAY['referral.referral_code','text','text','inet','text','timestamp with time zone'], 'volatile');
SELECT volatility_is('referral', 'record_click', ARRAY['referral.referral_code','text','inet','text','timestamp with time zone'], 'volatile');
SELECT volatility_is('referral', 'share_link', ARRAY['referral.referral_code','text','text'], 'immutable');
SELECT volatility_is('referral', 'upline', ARRAY['text','text'], 'stable');
SELECT volatility_is('referral', 'downline', ARRAY['text','text','integer'], 'stable');

SELECT function_privs_are('referral', 'redeem', ARRAY['referral.referral_code','text','text','inet','text','timestamp with time zone'], 'public', '{}'::text[],
	'PUBLIC cannot redeem');
SELECT function_privs_are('referral', 'issue_code', ARRAY['bigint','text','referral.referral_code','text','text'], 'public', '{}'::text[],
	'PUBLIC cannot issue codes');
SELECT function_privs_are('referral', 'create_program',
	ARRAY['text','text','timestamp with time zone','timestamp with time zone','interval','interval','numeric','interval','integer','text','numeric','numeric','integer','boolean'],
	'public', '{}'::text[], 'PUBLIC cannot create programs');
SELECT function_privs_are('referral', 'upline', ARRAY['text','text'], 'public', '{}'::text[], 'PUBLIC cannot read chains');

SELECT is(
	(SELECT count(*) FROM information_schema.table_privileges
	  WHERE table_schema = 'referral' AND grantee = 'PUBLIC'),
	0::bigint, 'PUBLIC has no privilege on any table of the extension');

-- What PUBLIC may execute: only the type's functions and pure helpers.
SELECT is_empty($$
	SELECT p.proname FROM pg_proc p
	 WHERE p.pronamespace = 'referral'::regnamespace
	   AND has_function_privilege('public', p.oid, 'EXECUTE')
	   AND p.proname NOT LIKE 'referral\_code\_%'
$$, 'PUBLIC executes nothing beyond the type''s I/O, operators and support functions');

-- grant_app: a role with the app grants can redeem but not read tables.
CREATE ROLE referral_test_app NOLOGIN;
SELECT lives_ok($$SELECT referral.grant_app('referral_test_app')$$, 'grant_app runs');
SELECT ok(has_function_privilege('referral_test_app',
	'referral.redeem(referral.referral_code, text, text, inet, text, timestamp with time zone)', 'EXECUTE'),
	'the app role can redeem');
SELECT ok(NOT has_table_privilege('referral_test_app', 'referral.referral', 'SELECT'),
	'the app role cannot read referrals directly');
SELECT ok(NOT has_table_privilege('referral_test_app', 'referral.code', 'INSERT'),
	'the app role cannot write codes directly');

SELECT * FROM finish();
ROLLBACK;

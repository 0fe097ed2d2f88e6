-- Codes, share links and clicks.
BEGIN;
SELECT plan(27);

CREATE TEMP TABLE t AS SELECT referral.create_program('Codes') AS program,
                              referral.create_program('Other') AS other;

-- Captures the SQLSTATE and hint of a statement that must fail.
CREATE FUNCTION pg_temp.error_of(statement text, OUT state text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE statement;
	state := 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, hint = PG_EXCEPTION_HINT;
END
$$;

CREATE TEMP TABLE issued AS
	SELECT referral.issue_code((SELECT program FROM t), 'alice', email => 'Alice@example.com') AS code;
SELECT ok((SELECT referral.is_generated(code) FROM issued), 'a generated code has the check character');
SELECT matches((SELECT code::text FROM issued), '^[0-9A-HJKMNP-TV-Z]{8}$', 'eight symbols of the unambiguous alphabet');
SELECT is(referral.issue_code((SELECT program FROM t), 'alice')::text, (SELECT code::text FROM issued), 'the same code on a later call');
SELECT is(referral.issue_code((SELECT program FROM t), 'alice', vanity => 'ALICE1')::text, (SELECT code::text FROM issued),
	'a later vanity code is ignored');
SELECT is((SELECT count(*) FROM referral.code WHERE customer = 'alice'), 1::bigint, 'one code row for alice');
SELECT ctid::text AS alice_row, email_hash AS alice_email FROM referral.code
 WHERE customer = 'alice' AND program_id = (SELECT program FROM t) \gset
SELECT referral.issue_code((SELECT program FROM t), 'alice', email => 'alice@example.com');
SELECT is((SELECT ctid::text FROM referral.code WHERE customer = 'alice' AND program_id = (SELECT program FROM t)),
	:'alice_row', 'a repeat call, with no fingerprint or the same one, writes nothing');
SELECT referral.issue_code((SELECT program FROM t), 'alice', email => 'alice@other.example');
SELECT isnt((SELECT email_hash FROM referral.code WHERE customer = 'alice' AND program_id = (SELECT program FROM t)),
	:'alice_email'::bytea, 'a new email given later is kept');
SELECT isnt(referral.issue_code((SELECT other FROM t), 'alice')::text, (SELECT code::text FROM issued),
	'another program gives alice another code');

SELECT is(referral.issue_code((SELECT program FROM t), 'olivia', vanity => 'olivia-10')::text, 'OLIVIA10',
	'a vanity code prints as issued, upper case, no separators');
SELECT throws_ok($$SELECT referral.issue_code((SELECT program FROM t), 'bob', vanity => '0L1V1A10')$$, 'RF001',
	'referral code "0L1V1A10" is already taken', 'a vanity code equal under folding is taken');
SELECT throws_ok($$SELECT referral.issue_code((SELECT other FROM t), 'bob', vanity => 'OLIVIA10')$$, 'RF001',
	'referral code "OLIVIA10" is already taken', 'taken in any program');
SELECT is((SELECT count(*) FROM referral.code WHERE customer = 'bob'), 0::bigint, 'the failed vanity left nothing');
-- The primary key is (code, tenant): uniqueness across tenants is issue_code's check.
SELECT throws_ok($$SELECT referral.issue_code(referral.create_program('Elsewhere', tenant => 'shop2'), 'bob', vanity => '0LIVIA1O')$$, 'RF001',
	'referral code "0LIVIA1O" is already taken', 'taken in another tenant''s program');
SELECT lives_ok($$SELECT referral.issue_code(referral.create_program('Elsewhere too', tenant => 'shop3'), 'carol', vanity => 'SHOP3ONLY')$$,
	'a free vanity code in another tenant');
SELECT is((SELECT count(*) FROM referral.issue_codes(referral.create_program('Bulk', tenant => 'shop4'),
                                                      ARRAY(SELECT 'c' || i FROM generate_series(1, 1200) i)) x
            WHERE NOT EXISTS (SELECT 1 FROM referral.code k WHERE k.code OPERATOR(referral.=) x.code AND k.tenant <> 'shop4')),
	1200::bigint, 'bulk codes of another tenant: none held elsewhere');
SELECT throws_ok($$SELECT referral.issue_code((SELECT program FROM t), '')$$, '22023',
	'customer must not be empty', 'empty customer');
SELECT throws_ok($$SELECT referral.issue_code(999999, 'x')$$, 'RF003', 'referral program 999999 does not exist', 'unknown program');

-- Fingerprints are stored as keyed hashes only.
SELECT ok((SELECT email_hash IS NOT NULL AND position(convert_to('alice', 'UTF8') IN email_hash) = 0
             FROM referral.code WHERE customer = 'alice' AND program_id = (SELECT program FROM t)),
	'the email is stored as a hash, not in clear');
SELECT is((SELECT octet_length(email_hash) FROM referral.code WHERE customer = 'alice' AND program_id = (SELECT program FROM t)),
	32, 'HMAC-SHA256 sized');

-- Generated codes for many customers are distinct and valid.
SELECT is((SELECT count(DISTINCT referral.issue_code((SELECT program FROM t), 'c' || i)) FROM generate_series(1, 2000) i),
	2000::bigint, '2000 customers, 2000 distinct codes');
SELECT is((SELECT count(*) FROM referral.code WHERE NOT vanity AND NOT referral.is_generated(code)), 0::bigint,
	'every generated code is valid');

-- Clicks.
SELECT ok(referral.record_click((SELECT code FROM issued), 'email', '10.0.0.1', 'Mozilla/5.0', '2026-03-01 10:00') > 0,
	'record_click returns an id');
SELECT results_eq($$SELECT channel, user_agent, at, ip_hash IS NOT NULL FROM referral.click$$,
	$$VALUES ('email'::text, 'Mozilla/5.0'::text, '2026-03-01 10:00'::timestamptz, true)$$, 'the click is stored');
SELECT throws_ok($$SELECT referral.record_click('ZZZZZZ')$$, 'RF002', 'referral code "ZZZZZZ" does not exist',
	'a click on an unknown code');

-- Unknown codes: a hint names the generated code one typo away.
SELECT is((pg_temp.error_of(format('SELECT referral.redeem(%L, %L)',
	overlay((SELECT code::text FROM issued) PLACING CASE WHEN substr((SELECT code::text FROM issued), 3, 1) = 'X' THEN 'Y' ELSE 'X' END FROM 3 FOR 1),
	'zed'))).hint,
	format('Did you mean "%s"?', (SELECT code::text FROM issued)), 'one substitution: the hint names the code');
SELECT is((pg_temp.error_of(format('SELECT referral.redeem(%L, %L)',
	substr((SELECT code::text FROM issued), 1, 3) || substr((SELECT code::text FROM issued), 5, 1)
	|| substr((SELECT code::text FROM issued), 4, 1) || substr((SELECT code::text FROM issued), 6), 'zed'))).state,
	CASE WHEN substr((SELECT code::text FROM issued), 4, 1) = substr((SELECT code::text FROM issued), 5, 1)
	     THEN 'no error' ELSE 'RF002' END, 'an adjacent swap is an unknown code');
SELECT is((pg_temp.error_of($$SELECT referral.redeem('QQQQ', 'zed')$$)).hint, '',
	'no hint when nothing is one typo away');

SELECT * FROM finish();
ROLLBACK;

-- issue_codes: the codes of many customers in one call (a program's launch for an
-- existing customer base), the same codes issue_code gives or would give.
BEGIN;
SELECT plan(20);

SELECT referral.create_program('Launch') AS program \gset
SELECT referral.create_program('Launch', tenant => 'other') AS other \gset
SELECT referral.issue_code(:program, 'has-code') AS old_code \gset
SELECT referral.issue_code(:program, 'vip', vanity => 'VIP-2026') AS vip_code \gset

CREATE TEMP TABLE launch AS
	SELECT * FROM referral.issue_codes(:program, ARRAY['c3', 'has-code', 'c1', 'vip', 'c3', 'c2']);

SELECT results_eq($$SELECT customer FROM launch$$,
	ARRAY['c3', 'has-code', 'c1', 'vip', 'c2'],
	'each customer once, in the order of its first place in the array');
SELECT is((SELECT code::text FROM launch WHERE customer = 'has-code'), :'old_code',
	'a customer who had a code keeps it');
SELECT is((SELECT code::text FROM launch WHERE customer = 'vip'), 'VIP2026',
	'a vanity code is kept');
SELECT ok((SELECT bool_and(referral.is_generated(code)) FROM launch WHERE customer LIKE 'c_'),
	'new codes are generated codes, check character included');
SELECT is((SELECT count(DISTINCT code) FROM launch), 5::bigint, 'every customer has a code of its own');
SELECT results_eq(
	$$SELECT customer, code::text FROM launch ORDER BY customer$$,
	$$SELECT c.customer, c.code::text FROM referral.code c WHERE c.program_id = $$ || :program || $$ ORDER BY c.customer$$,
	'the codes returned are the stored ones, and nothing else was stored');
SELECT results_eq(
	$$SELECT customer, referral.issue_code($$ || :program || $$, customer)::text FROM launch ORDER BY customer$$,
	$$SELECT customer, code::text FROM launch ORDER BY customer$$,
	'issue_code gives the same codes afterwards');
SELECT results_eq(
	$$SELECT customer, code::text FROM referral.issue_codes($$ || :program || $$, ARRAY['c2', 'c1'])$$,
	$$VALUES ('c2', (SELECT code::text FROM launch WHERE customer = 'c2')), ('c1', (SELECT code::text FROM launch WHERE customer = 'c1'))$$,
	'a second call returns the same codes');
SELECT is((SELECT count(*) FROM referral.issue_codes(:other, ARRAY['c1'])
            WHERE code::text IN (SELECT code::text FROM launch)), 0::bigint,
	'another program (and tenant) gives its own codes');
SELECT is((SELECT count(*) FROM referral.issue_codes(:program, '{}')), 0::bigint, 'an empty array issues nothing');

-- The next counter value's code, taken beforehand as a vanity code, is skipped.
SELECT referral._generate_code(CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END,
                               (referral._secret()).code_key)::text AS next_code
  FROM referral.code_counter_seq s \gset
SELECT referral.issue_code(:program, 'squatter', vanity => :'next_code') AS squatted \gset
CREATE TEMP TABLE after_squat AS SELECT * FROM referral.issue_codes(:program, ARRAY['d1', 'd2']);
SELECT ok((SELECT count(*) = 2 AND count(DISTINCT code) = 2 AND bool_and(code::text <> :'next_code')
             FROM after_squat),
	'a generated code already taken as a vanity code is skipped, and the customer gets the next one');

-- A list of 1,000 customers or more is first inserted without ON CONFLICT.
CREATE TEMP TABLE long_launch AS
	SELECT * FROM referral.issue_codes(:program,
		ARRAY['c1'] || ARRAY(SELECT 'm' || i FROM generate_series(1, 1200) i) || ARRAY['m7']);
SELECT results_eq(
	$$SELECT customer, code::text FROM long_launch WHERE customer IN ('c1', 'm1') ORDER BY customer$$,
	$$VALUES ('c1', (SELECT code::text FROM launch WHERE customer = 'c1')),
	         ('m1', (SELECT c.code::text FROM referral.code c WHERE c.program_id = $$ || :program || $$ AND c.customer = 'm1'))$$,
	'a long list: a customer who had a code keeps it, a new one gets the stored code');
SELECT ok((SELECT count(*) = 1201 AND count(DISTINCT code) = 1201 FROM long_launch)
          AND (SELECT count(*) = 1200 FROM referral.code WHERE program_id = :program AND customer LIKE 'm%'),
	'a long list: each customer once, with a code of its own, stored once');

-- A squatted code makes that first attempt fail as a whole; the passes with ON
-- CONFLICT then issue every code.
SELECT referral._generate_code(CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END,
                               (referral._secret()).code_key)::text AS next_long_code
  FROM referral.code_counter_seq s \gset
SELECT referral.issue_code(:program, 'squatter-2', vanity => :'next_long_code') IS NOT NULL AS squatted \gset
CREATE TEMP TABLE long_squat AS
	SELECT * FROM referral.issue_codes(:program, ARRAY(SELECT 'n' || i FROM generate_series(1, 1000) i));
SELECT ok((SELECT count(*) = 1000 AND count(DISTINCT code) = 1000 AND bool_and(code::text <> :'next_long_code')
             FROM long_squat),
	'a long list whose next code is squatted: every customer gets a code, the squatted one skipped');
SELECT results_eq(
	$$SELECT customer, code::text FROM long_squat ORDER BY customer$$,
	$$SELECT c.customer, c.code::text FROM referral.code c
	   WHERE c.program_id = $$ || :program || $$ AND c.customer LIKE 'n%' ORDER BY c.customer$$,
	'a long list whose next code is squatted: the codes returned are the stored ones, stored once');

-- Bad input: an error naming the element, and nothing issued.
SELECT throws_ok(format($$SELECT * FROM referral.issue_codes(%s, ARRAY['e1', '  ', 'e3'])$$, :program),
	'22023', 'customer 2 of the array is empty', 'a blank customer');
SELECT throws_ok(format($$SELECT * FROM referral.issue_codes(%s, ARRAY['e1', NULL])$$, :program),
	'22023', 'customer 2 of the array is NULL', 'a NULL customer');
SELECT throws_ok(format($$SELECT * FROM referral.issue_codes(%s, ARRAY['e1', repeat('x', 1001)])$$, :program),
	'22023', 'customer 2 of the array is too long (1001 bytes, at most 1000)', 'an oversized customer key');
SELECT throws_ok($$SELECT * FROM referral.issue_codes(9223372036854775807, ARRAY['e1'])$$,
	'RF003', 'referral program 9223372036854775807 does not exist', 'an unknown program');
SELECT is((SELECT count(*) FROM referral.code WHERE customer LIKE 'e_'), 0::bigint,
	'the failed calls issued nothing');

SELECT * FROM finish();
ROLLBACK;

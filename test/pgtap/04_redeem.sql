-- redeem: every rule and reason of SPEC.md, in their order, with exact rows.
BEGIN;
SELECT plan(32);

SET LOCAL TimeZone = 'UTC';
CREATE TEMP TABLE t AS SELECT
	referral.create_program('Main', starts_at => '2026-01-01', ends_at => '2026-12-01', daily_referral_limit => 2) AS main,
	referral.create_program('Later', starts_at => '2027-01-01') AS later;
CREATE TEMP TABLE c AS SELECT
	referral.issue_code((SELECT main FROM t), 'ann', vanity => 'ANN', email => 'Ann.Smith+shop@gmail.com', device => 'dev-ann') AS ann,
	referral.issue_code((SELECT main FROM t), 'ben', vanity => 'BEN') AS ben,
	referral.issue_code((SELECT later FROM t), 'cat', vanity => 'CAT') AS cat;

-- Accepted.
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ANN', 'bob', email => 'bob@example.com', ip => '10.1.1.1', at => '2026-03-01 09:00')$$,
	$$VALUES ('pending'::text, NULL::text)$$, 'a valid redeem is pending');
SELECT results_eq($$SELECT referrer, referee, code::text, status, reason, created_at FROM referral.referral WHERE referee = 'bob'$$,
	$$VALUES ('ann'::text, 'bob'::text, 'ANN'::text, 'pending'::text, NULL::text, '2026-03-01 09:00'::timestamptz)$$,
	'the referral is stored with the redeem time');
SELECT ok((SELECT ip_hash IS NOT NULL AND email_hash IS NOT NULL FROM referral.referral WHERE referee = 'bob'),
	'fingerprints are stored as hashes');

-- Redeeming again: the existing referral, no new row.
SELECT results_eq($$SELECT referral_id, status, reason FROM referral.redeem('ANN', 'bob', at => '2026-03-01 10:00')$$,
	$$SELECT id, 'pending'::text, NULL::text FROM referral.referral WHERE referee = 'bob'$$,
	'the same code again returns the existing referral');
SELECT results_eq($$SELECT referral_id, status, reason FROM referral.redeem('BEN', 'bob', at => '2026-03-01 10:00')$$,
	$$SELECT id, 'pending'::text, 'already_referred'::text FROM referral.referral WHERE referee = 'bob'$$,
	'another code returns the existing referral with already_referred');
SELECT is((SELECT count(*) FROM referral.referral WHERE referee = 'bob'), 1::bigint, 'no new row for bob');
SELECT results_eq($$SELECT referral_id, status, reason FROM referral.redeem('CAT', 'bob', at => '2027-02-01')$$,
	$$SELECT id, 'pending'::text, 'already_referred'::text FROM referral.referral WHERE referee = 'bob'$$,
	'one accepted referral per customer across the tenant''s programs');

-- program_inactive: before the start, at the end (the period is [starts_at, ends_at)).
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ANN', 'dan', at => '2025-12-31 23:59')$$,
	$$VALUES ('rejected'::text, 'program_inactive'::text)$$, 'before starts_at');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ANN', 'dan', at => '2026-12-01 00:00')$$,
	$$VALUES ('rejected'::text, 'program_inactive'::text)$$, 'at ends_at');
SELECT is((SELECT count(*) FROM referral.referral WHERE referee = 'dan' AND status = 'rejected'), 2::bigint,
	'rejections are stored, one row per attempt');

-- self_referral: same customer, same normalised email, same device.
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ANN', 'ann', at => '2026-03-02')$$,
	$$VALUES ('rejected'::text, 'self_referral'::text)$$, 'the referrer themself');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ANN', 'ann2', email => 'annsmith@GMAIL.com', at => '2026-03-02')$$,
	$$VALUES ('rejected'::text, 'self_referral'::text)$$, 'the same gmail address without dots and +tag');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ANN', 'ann3', device => 'dev-ann', at => '2026-03-02')$$,
	$$VALUES ('rejected'::text, 'self_referral'::text)$$, 'the same device');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ANN', 'eve', ip => '10.1.1.1', at => '2026-03-02')$$,
	$$VALUES ('pending'::text, NULL::text)$$, 'a shared IP alone is not a self-referral');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ANN', 'ann4', email => 'ann.smith@example.com', at => '2026-03-02')$$,
	$$VALUES ('pending'::text, NULL::text)$$, 'dots matter outside gmail');

-- Order of checks: program_inactive before self_referral.
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ANN', 'ann', at => '2027-01-01')$$,
	$$VALUES ('rejected'::text, 'program_inactive'::text)$$, 'program_inactive is checked before self_referral');

-- cycle: bob (referred by ann) refers ann -> ann is in bob's upline.
SELECT lives_ok($$SELECT referral.issue_code((SELECT main FROM t), 'bob', vanity => 'BOB')$$, 'bob gets a code');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('BOB', 'ann', at => '2026-03-03')$$,
	$$VALUES ('rejected'::text, 'cycle'::text)$$, 'ann redeeming bob''s code is a cycle');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('BOB', 'fay', at => '2026-03-03')$$,
	$$VALUES ('pending'::text, NULL::text)$$, 'bob refers fay');
SELECT lives_ok($$SELECT referral.issue_code((SELECT main FROM t), 'fay', vanity => 'FAY')$$, 'fay gets a code');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('FAY', 'ann', at => '2026-03-03')$$,
	$$VALUES ('rejected'::text, 'cycle'::text)$$, 'a cycle two levels up');

-- daily_limit: 2 accepted per referrer per calendar day (session TimeZone).
SELECT results_eq($$SELECT status, reason FROM referral.redeem('BEN', 'g1', at => '2026-04-01 00:30')$$,
	$$VALUES ('pending'::text, NULL::text)$$, 'first of the day');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('BEN', 'g2', at => '2026-04-01 23:30')$$,
	$$VALUES ('pending'::text, NULL::text)$$, 'second of the day');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('BEN', 'g3', at => '2026-04-01 23:59:59')$$,
	$$VALUES ('rejected'::text, 'daily_limit'::text)$$, 'third of the day is over the limit');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('BEN', 'g3', at => '2026-04-02 00:00')$$,
	$$VALUES ('pending'::text, NULL::text)$$, 'the next day is a new day');
SET LOCAL TimeZone = 'America/New_York';
-- 2026-04-01 03:00 UTC is March 31st, 23:00 in New York, where ben has only g1
-- (00:30 UTC = 20:30 on March 31st); in UTC that day already holds g1 and g2.
SELECT results_eq($$SELECT status, reason FROM referral.redeem('BEN', 'g4', at => '2026-04-01 03:00+00')$$,
	$$VALUES ('pending'::text, NULL::text)$$, 'the day is taken in the session''s TimeZone');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('BEN', 'g5', at => '2026-04-01 03:30+00')$$,
	$$VALUES ('rejected'::text, 'daily_limit'::text)$$, 'g1 and g4 fill March 31st in New York');

-- Events.
SELECT is((SELECT count(*) FROM referral.event WHERE kind = 'referral_created'),
	(SELECT count(*) FROM referral.referral WHERE status <> 'rejected'), 'one referral_created event per accepted referral');
SELECT is((SELECT count(*) FROM referral.event WHERE kind = 'referral_rejected'),
	(SELECT count(*) FROM referral.referral WHERE status = 'rejected'), 'one referral_rejected event per rejection');

-- Unknown code.
SELECT throws_ok($$SELECT referral.redeem('NOPE', 'zed')$$, 'RF002', 'referral code "NOPE" does not exist', 'unknown code');

-- A redeem time years ahead: an error, and no referral that could never convert.
SELECT throws_like($$SELECT referral.redeem('BEN', 'far', at => now() + interval '11 years')$$,
	'redeem time % is more than 10 years ahead', 'a redeem time more than 10 years ahead is refused');
SELECT is((SELECT count(*) FROM referral.referral WHERE referee = 'far'), 0::bigint, 'and stores nothing');

SELECT * FROM finish();
ROLLBACK;

-- Security: privileges checked by running as non-superuser roles (app, analyst,
-- orders_writer, nobody = PUBLIC only), SECURITY DEFINER hygiene, names that need
-- quoting and injection attempts, bad input with its SQLSTATE, and a hostile
-- search_path: a schema ahead of pg_catalog with look-alike functions and `=`
-- operators, which must neither be called nor change any result.
--
-- Runs in one transaction as the superuser that created the extension; every
-- privilege test switches to a role without superuser (SET LOCAL ROLE) first.
-- psql variables (\gset) carry ids between statements, since app, analyst and
-- nobody may not read the extension's tables.
BEGIN;
SELECT plan(115);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE ROLE app NOLOGIN;
CREATE ROLE analyst NOLOGIN;
CREATE ROLE orders_writer NOLOGIN;
CREATE ROLE nobody NOLOGIN;
CREATE ROLE operator NOLOGIN;
CREATE ROLE "App Role" NOLOGIN;
CREATE ROLE "Analyst Role" NOLOGIN;

-- What PUBLIC may execute (SPEC.md "Roles and safety", README "Roles"): the type's
-- I/O, operator and operator-class support functions.  Derived from the catalogs,
-- not from names.
CREATE TEMP TABLE public_funcs AS
SELECT DISTINCT f::regprocedure AS f FROM (
	SELECT t.typinput::oid AS f FROM pg_type t WHERE t.oid = 'referral.referral_code'::regtype
	UNION ALL SELECT t.typoutput::oid FROM pg_type t WHERE t.oid = 'referral.referral_code'::regtype
	UNION ALL SELECT t.typreceive::oid FROM pg_type t WHERE t.oid = 'referral.referral_code'::regtype
	UNION ALL SELECT t.typsend::oid FROM pg_type t WHERE t.oid = 'referral.referral_code'::regtype
	UNION ALL SELECT o.oprcode::oid FROM pg_operator o
	           WHERE o.oprleft = 'referral.referral_code'::regtype OR o.oprright = 'referral.referral_code'::regtype
	UNION ALL SELECT ap.amproc::oid FROM pg_amproc ap JOIN pg_opfamily fam ON fam.oid = ap.amprocfamily
	           WHERE fam.opfnamespace = 'referral'::regnamespace) s;
-- What grant_app adds.
CREATE TEMP TABLE app_funcs AS
SELECT f FROM public_funcs
UNION ALL SELECT 'referral.issue_code(bigint, text, referral.referral_code, text, text)'::regprocedure
UNION ALL SELECT 'referral.share_link(referral.referral_code, text, text)'::regprocedure
UNION ALL SELECT 'referral.record_click(referral.referral_code, text, inet, text, timestamptz)'::regprocedure
UNION ALL SELECT 'referral.redeem(referral.referral_code, text, text, inet, text, timestamptz)'::regprocedure
UNION ALL SELECT to_regprocedure('referral.participant_summary(bigint, text)') WHERE to_regprocedure('referral.participant_summary(bigint, text)') IS NOT NULL
UNION ALL SELECT 'referral.offer(text, numeric, text)'::regprocedure
UNION ALL SELECT 'referral.use_offer(text, text, numeric, text)'::regprocedure
UNION ALL SELECT 'referral.credit_balance(text, text, text)'::regprocedure
UNION ALL SELECT 'referral.spend_credit(text, numeric, text, text, text)'::regprocedure
UNION ALL SELECT 'referral.refund_credit(text, text)'::regprocedure;
-- What grant_analyst adds: the pure function variant_stats calls (a view's reader
-- must be able to execute the functions the view calls).
CREATE TEMP TABLE analyst_funcs AS
SELECT f FROM public_funcs
UNION ALL SELECT to_regprocedure('referral.two_proportion_p_value(bigint, bigint, bigint, bigint)')
 WHERE to_regprocedure('referral.two_proportion_p_value(bigint, bigint, bigint, bigint)') IS NOT NULL;
-- What grant_operator adds: the operations functions, approve_due, mark_paid, audit.
CREATE TEMP TABLE operator_funcs AS
SELECT f FROM public_funcs
UNION ALL SELECT p::regprocedure FROM unnest(ARRAY[
	'referral.approve_due(timestamptz)', 'referral.mark_paid(bigint[], text)',
	'referral.void_referral(bigint, text)', 'referral.block(text, text, text)', 'referral.unblock(text, text)',
	'referral.release(bigint)', 'referral.payout_batch(text, numeric, text, text)',
	'referral.export(text, text)', 'referral.forget(text, text)', 'referral.audit(bigint)']) p;
-- The analyst views of SPEC.md.
CREATE TEMP TABLE spec_views (v) AS
VALUES ('program_stats'), ('referrer_stats'), ('leaderboard'), ('reward_balance'),
       ('variant_stats'), ('daily_stats'), ('suspicious_referrals');
GRANT SELECT ON public_funcs, app_funcs, analyst_funcs, operator_funcs, spec_views TO PUBLIC;

-- Runs each statement and returns those that did NOT fail with
-- insufficient_privilege (42501), with what happened instead.
CREATE FUNCTION pg_temp.not_denied(stmts text[]) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
	s text;
	bad text[] := '{}';
BEGIN
	FOREACH s IN ARRAY stmts LOOP
		BEGIN
			EXECUTE s;
			bad := bad || (s || ': allowed');
		EXCEPTION
			WHEN insufficient_privilege THEN NULL;
			WHEN OTHERS THEN bad := bad || (s || ': ' || SQLSTATE || ' ' || SQLERRM);
		END;
	END LOOP;
	RETURN bad;
END
$$;

-- Runs each statement and returns those that failed, with their error.
CREATE FUNCTION pg_temp.failing(stmts text[]) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
	s text;
	bad text[] := '{}';
BEGIN
	FOREACH s IN ARRAY stmts LOOP
		BEGIN
			EXECUTE s;
		EXCEPTION WHEN OTHERS THEN
			bad := bad || (s || ': ' || SQLSTATE || ' ' || SQLERRM);
		END;
	END LOOP;
	RETURN bad;
END
$$;

-- SQLSTATE of a statement ('00000' when it succeeds).  No operator or function in
-- its body, so that a hostile search_path cannot change it.
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN '00000';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;

-- Every way to touch every relation of the schema: read, write, sequences.
CREATE TEMP TABLE touch_read AS
SELECT format('SELECT * FROM %s LIMIT 1', c.oid::regclass) AS sql, c.relkind
  FROM pg_class c
 WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f');
CREATE TEMP TABLE touch_write AS
SELECT s.sql FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
 CROSS JOIN LATERAL (VALUES
	(format('INSERT INTO %s DEFAULT VALUES', c.oid::regclass)),
	(format('UPDATE %s SET %I = %I', c.oid::regclass, a.attname, a.attname)),
	(format('DELETE FROM %s', c.oid::regclass)),
	(format('TRUNCATE %s CASCADE', c.oid::regclass))) s(sql)
 WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('r', 'p')
UNION ALL
SELECT s.sql FROM pg_class c
 CROSS JOIN LATERAL (VALUES
	(format('SELECT pg_catalog.nextval(%L)', c.oid::regclass)),
	(format('SELECT pg_catalog.setval(%L, 1)', c.oid::regclass))) s(sql)
 WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind = 'S';
GRANT SELECT ON touch_read, touch_write TO PUBLIC;

-- ---------------------------------------------------------------------------
-- grant_app, grant_analyst (also for role names that need quoting)
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT referral.grant_app('app')$$, 'grant_app(app) runs');
SELECT lives_ok($$SELECT referral.grant_analyst('analyst')$$, 'grant_analyst(analyst) runs');
SELECT lives_ok($$SELECT referral.grant_app('"App Role"')$$, 'grant_app runs for a role name that needs quoting');
SELECT lives_ok($$SELECT referral.grant_analyst('"Analyst Role"')$$, 'grant_analyst runs for a role name that needs quoting');
SELECT ok(has_function_privilege('App Role', 'referral.redeem(referral.referral_code, text, text, inet, text, timestamptz)', 'EXECUTE')
          AND has_table_privilege('Analyst Role', 'referral.program_stats', 'SELECT')
          AND NOT has_table_privilege('Analyst Role', 'referral.reward', 'SELECT'),
	'the quoted roles got exactly their grants');

-- ---------------------------------------------------------------------------
-- The catalogs: who may do what
-- ---------------------------------------------------------------------------
SELECT is_empty($$
	SELECT p.oid::regprocedure::text FROM pg_proc p
	 WHERE p.pronamespace = 'referral'::regnamespace
	   AND has_function_privilege('public', p.oid, 'EXECUTE')
	   AND p.oid NOT IN (SELECT f FROM public_funcs)
$$, 'PUBLIC executes nothing beyond the type''s I/O, operators and support functions');
SELECT is_empty($$
	SELECT c.oid::regclass::text || ' ' || x.priv FROM pg_class c
	 CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) x(priv)
	 WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
	   AND has_table_privilege('public', c.oid, x.priv)
	UNION ALL
	SELECT c.oid::regclass::text || ' ' || x.priv FROM pg_class c
	 CROSS JOIN unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) x(priv)
	 WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind = 'S'
	   AND has_sequence_privilege('public', c.oid, x.priv)
$$, 'PUBLIC has no privilege on any table, view or sequence of the extension');
SELECT is_empty($$
	SELECT p.oid::regprocedure::text FROM pg_proc p
	 WHERE p.pronamespace = 'referral'::regnamespace
	   AND has_function_privilege('app', p.oid, 'EXECUTE')
	   AND p.oid NOT IN (SELECT f FROM app_funcs)
$$, 'app executes only issue_code, share_link, record_click, redeem, participant_summary, the checkout functions and what PUBLIC may');
SELECT is_empty($$
	SELECT p.oid::regprocedure::text FROM pg_proc p
	 WHERE p.pronamespace = 'referral'::regnamespace
	   AND has_function_privilege('analyst', p.oid, 'EXECUTE')
	   AND p.oid NOT IN (SELECT f FROM analyst_funcs)
$$, 'analyst executes nothing beyond what PUBLIC may and the p-value the views compute');
SELECT is_empty($$
	SELECT r.rolname || ': ' || c.oid::regclass::text || ' ' || x.priv
	  FROM pg_class c
	 CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) x(priv)
	 CROSS JOIN (VALUES ('app'), ('analyst'), ('orders_writer'), ('nobody')) r(rolname)
	 WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
	   AND has_table_privilege(r.rolname, c.oid, x.priv)
	   AND NOT (r.rolname = 'analyst' AND c.relkind = 'v' AND x.priv = 'SELECT')
	UNION ALL
	SELECT r.rolname || ': ' || c.oid::regclass::text || ' ' || x.priv
	  FROM pg_class c
	 CROSS JOIN unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) x(priv)
	 CROSS JOIN (VALUES ('app'), ('analyst'), ('orders_writer'), ('nobody')) r(rolname)
	 WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind = 'S'
	   AND has_sequence_privilege(r.rolname, c.oid, x.priv)
$$, 'no role has any privilege on the extension''s tables and sequences; analyst only SELECT on views');
SELECT is(ARRAY(SELECT v FROM spec_views
                 WHERE NOT COALESCE(has_table_privilege('analyst', to_regclass('referral.' || v), 'SELECT'), false)
                 ORDER BY v),
	'{}'::text[], 'analyst may SELECT every view of SPEC.md');
SELECT is_empty($$
	SELECT p.oid::regprocedure::text FROM pg_proc p
	 WHERE p.pronamespace = 'referral'::regnamespace AND p.prosecdef
	   AND NOT COALESCE(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)
$$, 'every SECURITY DEFINER function sets search_path = pg_catalog, pg_temp');
-- Internal helpers (referral._x, executable by the owner only) may leave their
-- search_path to their callers, which pin it (so that SQL helpers can be inlined);
-- the hostile search_path test below shows that no look-alike reaches them.
SELECT is_empty($$
	SELECT p.oid::regprocedure::text FROM pg_proc p
	  JOIN pg_language l ON l.oid = p.prolang
	 WHERE p.pronamespace = 'referral'::regnamespace AND l.lanname NOT IN ('c', 'internal')
	   AND p.proname NOT LIKE '\_%'
	   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE s LIKE 'search\_path=%')
$$, 'every SQL and PL/pgSQL function of the API pins its search_path');
SELECT is_empty($$
	SELECT c.oid::regclass::text FROM pg_class c
	 WHERE c.relnamespace = 'referral'::regnamespace
	   AND c.relowner <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'referral')
	UNION ALL
	SELECT p.oid::regprocedure::text FROM pg_proc p
	 WHERE p.pronamespace = 'referral'::regnamespace
	   AND p.proowner <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'referral')
$$, 'the extension owner owns every relation and function of the schema');

-- ---------------------------------------------------------------------------
-- app: issue, share, click, redeem, its summary; nothing else
-- ---------------------------------------------------------------------------
SELECT referral.create_program('Security') AS prog \gset
SELECT referral.add_reward(:prog, 'referee', fixed => 5) AS rule1 \gset
SELECT referral.add_reward(:prog, 'referrer', percent => 10) AS rule2 \gset
SELECT referral.add_referee_offer(:prog, percent => 10) AS offer1 \gset

SET LOCAL ROLE app;
SELECT is(referral.issue_code(:prog, 'alice', vanity => 'alice-1', email => 'Alice.Smith+ref@GoogleMail.com',
                              device => 'dev-alice')::text,
	'ALICE1', 'app issues a vanity code');
SELECT ok(referral.issue_code(:prog, 'bob')::text ~ '^[0-9A-HJKMNP-TV-Z]{8}$', 'app issues a generated code');
SELECT is(referral.share_link('ALICE1', 'https://shop.example/p?x=1#top', 'news letter'),
	'https://shop.example/p?x=1&ref=ALICE1&utm_source=news%20letter&utm_medium=referral#top',
	'app builds a share link');
SELECT isnt(referral.record_click('alice1', 'news', '203.0.113.9', 'Mozilla/5.0'), NULL, 'app records a click');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ALICE1', 'carol', email => 'carol@example.com')$$,
	$$VALUES ('pending'::text, NULL::text)$$, 'app redeems a code');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ALICE1', 'dan', email => 'alicesmith@gmail.com')$$,
	$$VALUES ('rejected'::text, 'self_referral'::text)$$, 'app gets the self-referral rule');
SELECT results_eq(
	CASE WHEN to_regprocedure('referral.participant_summary(bigint, text)') IS NULL
	     THEN $$SELECT 'referral.participant_summary(bigint, text) does not exist'$$
	     ELSE format($$SELECT code::text || ' ' || clicks || ' ' || referrals || ' ' || conversions
	                    FROM referral.participant_summary(%s, 'alice')$$, :prog) END,
	$$VALUES ('ALICE1 1 1 0')$$, 'app reads a participant''s summary');
SELECT results_eq($$SELECT discount, currency FROM referral.offer('carol', 100)$$,
	$$VALUES (10.00::numeric, 'USD'::text)$$, 'app reads a referee''s offer');
SELECT is(referral.use_offer('carol', 'sec-order-1', 100), 10.00, 'app uses the offer at checkout');
SELECT is(ARRAY[referral.credit_balance('alice'), referral.spend_credit('alice', 5, 'sec-order-1'),
                referral.refund_credit('sec-order-1')],
	ARRAY[0, 0, 0]::numeric[], 'app reads, spends and refunds store credit');
SELECT throws_ok(format($$SELECT referral.add_referee_offer(%s, fixed => 1)$$, :prog), '42501', NULL,
	'app cannot add offers');
SELECT throws_ok($$SELECT * FROM referral.referral$$, '42501', NULL, 'app cannot read referral.referral');
SELECT throws_ok($$INSERT INTO referral.code (tenant, code, program_id, customer, vanity)
                   SELECT 'default', 'HACKED', id, 'mallory', true FROM referral.program$$,
	'42501', NULL, 'app cannot write referral.code');
SELECT throws_ok($$SELECT * FROM referral.secret$$, '42501', NULL, 'app cannot read the secret');
SELECT is(pg_temp.not_denied(ARRAY(SELECT sql FROM touch_read ORDER BY sql)), '{}'::text[],
	'app cannot read any table, view or sequence of the extension');
SELECT is(pg_temp.not_denied(ARRAY(SELECT sql FROM touch_write ORDER BY sql)), '{}'::text[],
	'app cannot write any table or sequence of the extension');
SELECT throws_ok(format($$SELECT referral.create_program('App program')$$), '42501', NULL, 'app cannot create programs');
SELECT throws_ok($$SELECT referral.track_orders('pg_catalog.pg_class', 'relname', 'relpages', 'oid')$$, '42501', NULL,
	'app cannot track tables');
SELECT throws_ok($$SELECT referral.approve_due()$$, '42501', NULL, 'app cannot approve rewards');
SELECT throws_ok($$SELECT referral.mark_paid('{1}', 'PAY')$$, '42501', NULL, 'app cannot pay rewards');
SELECT throws_ok($$SELECT * FROM referral.audit()$$, '42501', NULL, 'app cannot run the audit');
SELECT throws_ok($$SELECT * FROM referral.upline('carol')$$, '42501', NULL, 'app cannot read chains');
SELECT throws_ok($$SELECT * FROM referral._secret()$$, '42501', NULL, 'app cannot call internal functions');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- analyst: the views, nothing else
-- ---------------------------------------------------------------------------
SELECT referral.add_variant(:prog, 'A') AS va \gset
SELECT referral.add_variant(:prog, 'B') AS vb \gset
SET LOCAL ROLE analyst;
SELECT is(pg_temp.failing(ARRAY(SELECT format('SELECT * FROM referral.%I', v) FROM spec_views ORDER BY v)),
	'{}'::text[], 'analyst reads every view (all columns, with data and variants)');
SELECT is(pg_temp.not_denied(ARRAY(SELECT sql FROM touch_read WHERE relkind <> 'v' ORDER BY sql)), '{}'::text[],
	'analyst cannot read any table or sequence');
SELECT is(pg_temp.not_denied(ARRAY(SELECT sql FROM touch_write ORDER BY sql)), '{}'::text[],
	'analyst cannot write any table or sequence');
SELECT throws_ok(format($$SELECT referral.issue_code(%s, 'x')$$, :prog), '42501', NULL, 'analyst cannot issue codes');
SELECT throws_ok($$SELECT * FROM referral.redeem('ALICE1', 'x')$$, '42501', NULL, 'analyst cannot redeem');
SELECT throws_ok($$SELECT referral.create_program('Analyst program')$$, '42501', NULL, 'analyst cannot create programs');
SELECT throws_ok($$SELECT referral.approve_due()$$, '42501', NULL, 'analyst cannot approve rewards');
SELECT throws_ok($$SELECT referral.mark_paid('{1}', 'PAY')$$, '42501', NULL, 'analyst cannot pay rewards');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- operator: the operations functions, two views, no table
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT referral.grant_operator('operator')$$, 'grant_operator(operator) runs');
SELECT is_empty($$
	SELECT p.oid::regprocedure::text FROM pg_proc p
	 WHERE p.pronamespace = 'referral'::regnamespace
	   AND has_function_privilege('operator', p.oid, 'EXECUTE')
	   AND p.oid NOT IN (SELECT f FROM operator_funcs)
	UNION ALL
	SELECT f::text || ' not granted' FROM operator_funcs WHERE NOT has_function_privilege('operator', f, 'EXECUTE')
$$, 'operator executes exactly the operations functions, approve_due, mark_paid, audit and what PUBLIC may');
SELECT is_empty($$
	SELECT r.rolname || ': ' || f::text FROM operator_funcs, (VALUES ('app'), ('analyst'), ('nobody')) r(rolname)
	 WHERE f NOT IN (SELECT f FROM public_funcs) AND has_function_privilege(r.rolname, f, 'EXECUTE')
$$, 'app, analyst and PUBLIC get none of the operations functions');
SELECT referral_id AS opref FROM referral.redeem('ALICE1', 'op-victim') \gset
SET LOCAL ROLE operator;
SELECT is(pg_temp.failing(ARRAY[
	$$SELECT referral.block('mallory', 'fraud')$$,
	$$SELECT referral.unblock('mallory')$$,
	$$SELECT * FROM referral.payout_batch('USD')$$,
	$$SELECT referral.export('alice')$$,
	$$SELECT * FROM referral.blocked$$,
	$$SELECT * FROM referral.suspicious_referrals$$,
	$$SELECT referral.approve_due()$$,
	format('SELECT referral.void_referral(%s, %L)', :opref, 'test'),
	$$SELECT referral.forget('op-victim')$$]), '{}'::text[],
	'operator voids, blocks, unblocks, batches, exports, forgets and reads blocked and suspicious_referrals');
SELECT throws_ok($$SELECT * FROM referral.redeem('ALICE1', 'op-x')$$, '42501', NULL, 'operator cannot redeem');
SELECT is(pg_temp.not_denied(ARRAY(SELECT sql FROM touch_read
                                    WHERE sql !~ 'referral\.(blocked|suspicious_referrals) ' ORDER BY sql)), '{}'::text[],
	'operator cannot read any other table, view or sequence');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- nobody (PUBLIC only): the type and its operators, nothing else
-- ---------------------------------------------------------------------------
SET LOCAL ROLE nobody;
SELECT ok('ABC'::referral.referral_code OPERATOR(referral.=) 'abc', 'PUBLIC compares codes');
SELECT is(ARRAY['OLIVIA10'::referral.referral_code OPERATOR(referral.=) '0L1V1A10',
                'ABC'::referral.referral_code OPERATOR(referral.<) 'ABD',
                'ABC'::referral.referral_code OPERATOR(referral.<>) 'ABD',
                'k7qx-m3pa'::referral.referral_code::text = 'K7QXM3PA'],
	ARRAY[true, true, true, true], 'PUBLIC uses operators and casts');
SELECT throws_ok($$SELECT referral.is_generated('ABC')$$, '42501', NULL, 'PUBLIC cannot call is_generated');
SET LOCAL enable_sort = off;
SELECT is((SELECT count(*) FROM (SELECT c FROM (VALUES ('OLIVIA10'::referral.referral_code), ('0L1V1A10'), ('ABC')) v(c)
                                 GROUP BY c) g),
	2::bigint, 'PUBLIC hashes codes (hash aggregate)');
RESET enable_sort;
SELECT is(pg_temp.not_denied(ARRAY(SELECT sql FROM touch_read ORDER BY sql)), '{}'::text[],
	'PUBLIC cannot read any table, view or sequence');
SELECT is(pg_temp.not_denied(ARRAY[
	format('SELECT referral.issue_code(%s, %L)', :prog, 'x'),
	$$SELECT referral.share_link('ALICE1', 'https://x.example/')$$,
	$$SELECT referral.record_click('ALICE1')$$,
	$$SELECT * FROM referral.redeem('ALICE1', 'x')$$,
	format('SELECT * FROM referral.participant_summary(%s, %L)', :prog, 'alice'),
	$$SELECT * FROM referral.upline('carol')$$,
	$$SELECT * FROM referral.downline('alice')$$,
	$$SELECT referral.create_program('x')$$,
	$$SELECT referral.approve_due()$$,
	$$SELECT * FROM referral.audit()$$,
	$$SELECT referral.grant_app('nobody')$$,
	$$SELECT referral._secret()$$]), '{}'::text[],
	'PUBLIC cannot call any function of the API');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- orders_writer: may only write its orders table; the triggers still attribute
-- ---------------------------------------------------------------------------
CREATE TABLE public.sec_orders (
	id			bigserial PRIMARY KEY,
	customer_id	text NOT NULL,
	total		numeric(12, 2) NOT NULL,
	status		text NOT NULL DEFAULT 'paid'
);
SELECT referral.track_orders('public.sec_orders', 'customer_id', 'total', status_column => 'status') AS tracked \gset
GRANT SELECT, INSERT, UPDATE, DELETE ON public.sec_orders TO orders_writer;
GRANT USAGE ON SEQUENCE public.sec_orders_id_seq TO orders_writer;
CREATE SCHEMA writer_space AUTHORIZATION orders_writer;

SELECT is_empty($$
	SELECT c.oid::regclass::text FROM pg_class c
	 WHERE c.relowner = 'orders_writer'::regrole AND c.relnamespace <> 'writer_space'::regnamespace
	UNION ALL
	SELECT c.oid::regclass::text || ' ' || x.priv FROM pg_class c
	 CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) x(priv)
	 WHERE c.relnamespace IN ('referral'::regnamespace, 'public'::regnamespace) AND c.relkind IN ('r', 'p', 'v')
	   AND has_table_privilege('orders_writer', c.oid, x.priv)
	   AND NOT (c.oid = 'public.sec_orders'::regclass AND x.priv IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE'))
	   AND NOT (c.relnamespace = 'public'::regnamespace AND has_table_privilege('public', c.oid, x.priv))
	UNION ALL
	SELECT p.oid::regprocedure::text FROM pg_proc p
	 WHERE p.pronamespace = 'referral'::regnamespace AND has_function_privilege('orders_writer', p.oid, 'EXECUTE')
	   AND p.oid NOT IN (SELECT f FROM public_funcs)
$$, 'orders_writer owns nothing, may execute nothing of the extension, and may only read and write its orders table');

SET LOCAL ROLE orders_writer;
SELECT lives_ok($$INSERT INTO public.sec_orders (customer_id, total) VALUES ('carol', 80.00)$$,
	'orders_writer inserts a paid order');
RESET ROLE;
SELECT results_eq($$SELECT status, converting_order FROM referral.referral WHERE referee = 'carol' AND status <> 'rejected'$$,
	$$SELECT 'converted'::text, id::text FROM public.sec_orders WHERE customer_id = 'carol'$$,
	'the order of a role that can only write its orders table converts the referral');
SELECT results_eq($$SELECT beneficiary, kind, amount, status FROM referral.reward WHERE program_id = $$ || :prog || $$ ORDER BY id$$,
	$$VALUES ('carol'::text, 'referee'::text, 5.00::numeric, 'pending'::text), ('alice', 'referrer', 8.00, 'pending')$$,
	'its rewards are created');
SET LOCAL ROLE orders_writer;
SELECT lives_ok($$UPDATE public.sec_orders SET status = 'refunded' WHERE customer_id = 'carol'$$,
	'orders_writer refunds the order');
SELECT lives_ok($$INSERT INTO public.sec_orders (customer_id, total) VALUES ('carol', 30.00);
                  DELETE FROM public.sec_orders WHERE customer_id = 'carol' AND total = 30.00$$,
	'orders_writer inserts another order and deletes it');
RESET ROLE;
SELECT results_eq($$SELECT beneficiary, kind, amount, status FROM referral.reward WHERE program_id = $$ || :prog || $$ ORDER BY id$$,
	$$VALUES ('carol'::text, 'referee'::text, 5.00::numeric, 'reversed'::text), ('alice', 'referrer', 8.00, 'reversed'),
	         ('carol', 'referee', 5.00, 'reversed'), ('alice', 'referrer', 3.00, 'reversed')$$,
	'the refund and the deletion of a restricted role reverse the rewards');
SET LOCAL ROLE orders_writer;
CREATE TABLE writer_space.fake_orders (id bigint, customer text, amount numeric);
SELECT throws_ok($$CREATE TRIGGER forge AFTER INSERT ON writer_space.fake_orders
                   REFERENCING NEW TABLE AS referral_new FOR EACH STATEMENT
                   EXECUTE FUNCTION referral._order_trigger('default', 'public.sec_orders', 'customer', 'amount', 'id',
                                                            '', '{paid}', '{}', '', '')$$,
	'42501', NULL, 'orders_writer cannot attach the order trigger (which writes as its owner) to a table of its own');
SELECT throws_ok($$SELECT referral.track_orders('writer_space.fake_orders', 'customer', 'amount')$$,
	'42501', NULL, 'orders_writer cannot track a table of its own');
SELECT throws_ok($$SELECT referral._order_paid(1, 'public.sec_orders', '999', 1000000, now())$$,
	'42501', NULL, 'orders_writer cannot call the attribution functions');
RESET ROLE;
SELECT is((SELECT count(*) FROM referral.audit()), 0::bigint, 'audit() finds nothing after the restricted role''s orders');

-- ---------------------------------------------------------------------------
-- Bad input: a clear error with its SQLSTATE, nothing written
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE counts_before AS
SELECT (SELECT count(*) FROM referral.program) AS programs, (SELECT count(*) FROM referral.reward_rule) AS rules,
       (SELECT count(*) FROM referral.milestone) AS milestones, (SELECT count(*) FROM referral.code) AS codes,
       (SELECT count(*) FROM referral.click) AS clicks, (SELECT count(*) FROM referral.referral) AS referrals,
       (SELECT count(*) FROM referral.tracked_table) AS tracked, (SELECT count(*) FROM referral.event) AS events;
SET LOCAL ROLE app;
SELECT throws_ok($$SELECT * FROM referral.redeem(NULL, 'x')$$, '22004', NULL, 'redeem: NULL code');
SELECT throws_ok($$SELECT referral.record_click(NULL)$$, '22004', NULL, 'record_click: NULL code');
SELECT throws_ok($$SELECT * FROM referral.redeem('ALICE1', NULL)$$, '22023', NULL, 'redeem: NULL customer');
SELECT throws_ok($$SELECT * FROM referral.redeem('ALICE1', repeat('x', 1000000))$$, '22023', NULL, 'redeem: a customer key of 1 MB');
SELECT throws_ok($$SELECT * FROM referral.redeem('ALICE1', 'eve', at => 'infinity')$$, '22023', NULL, 'redeem: an infinite time');
SELECT throws_ok($$SELECT * FROM referral.redeem('ALICE1', 'eve', email => 'no address')$$, '22023', NULL, 'redeem: not an e-mail address');
SELECT throws_ok($$SELECT * FROM referral.redeem('NOSUCH1', 'eve')$$, 'RF002', NULL, 'redeem: an unknown code');
SELECT throws_ok($$SELECT * FROM referral.redeem('AB#C', 'eve')$$, '22P02', NULL, 'redeem: a malformed code');
SELECT throws_ok($$SELECT referral.issue_code(9223372036854775807, 'eve')$$, 'RF003', NULL, 'issue_code: an unknown program');
SELECT throws_ok(format($$SELECT referral.issue_code(%s, 'eve', vanity => 'AL1CE-I')$$, :prog), 'RF001', NULL,
	'issue_code: a vanity code taken under folding');
SELECT throws_ok($$SELECT referral.share_link('ALICE1', 'javascript:alert(1)//https://shop.example/')$$, '22023', NULL,
	'share_link: a base URL that is not http(s)');
SELECT throws_ok($$SELECT referral.record_click('ALICE1', repeat('c', 10000000))$$, '22023', NULL,
	'record_click: a channel of 10 MB is refused, not stored');
RESET ROLE;
SELECT throws_ok($$SELECT * FROM referral.downline('alice', max_depth => -1)$$, '22023', NULL, 'downline: a negative max_depth');
SELECT throws_ok($$SELECT referral.create_program('Bad budget', budget => 'NaN')$$, '22023', NULL, 'create_program: a NaN budget');
SELECT throws_ok($$SELECT referral.create_program('Bad minimum', min_order_amount => 'NaN')$$, '22023', NULL, 'create_program: a NaN minimum order');
SELECT throws_ok($$SELECT referral.create_program('Bad cap', referrer_cap => -0.01)$$, '22023', NULL, 'create_program: a negative cap');
SELECT throws_ok($$SELECT referral.create_program('Bad depth', max_depth => 2147483647)$$, '22023', NULL, 'create_program: an absurd max_depth');
SELECT throws_ok(format($$SELECT referral.add_reward(%s, 'referee', fixed => 'NaN', min_conversions => 4)$$, :prog), '22023', NULL,
	'add_reward: a NaN amount');
SELECT throws_ok(format($$SELECT referral.add_reward(%s, 'referee', fixed => 'Infinity', min_conversions => 5)$$, :prog), '22023', NULL,
	'add_reward: an infinite amount');
SELECT throws_ok(format($$SELECT referral.add_reward(%s, 'referrer', percent => 10, cap => 'NaN', min_conversions => 6)$$, :prog), '22023', NULL,
	'add_reward: a NaN cap');
SELECT throws_ok(format($$SELECT referral.add_milestone(%s, 3, 'Infinity')$$, :prog), '22023', NULL,
	'add_milestone: an infinite amount');
SELECT throws_ok(format($$SELECT referral.add_reward(%s, 'referrer', percent => 100.0001, min_conversions => 7)$$, :prog), '22023', NULL,
	'add_reward: percent over 100');
-- track_orders: injection attempts, unsupported types, NULLs, a table already tracked.
CREATE TABLE public.bad_orders (id bigint, customer text, amount text, status int, at text);
SELECT throws_ok($$SELECT referral.track_orders('public.bad_orders', 'customer"; DROP TABLE public.bad_orders; --', 'id')$$,
	'42703', NULL, 'track_orders: a column name with an injection attempt is just a missing column');
SELECT throws_ok($$SELECT referral.track_orders('public.bad_orders', 'customer', 'amount')$$,
	'42804', NULL, 'track_orders: a text amount column');
SELECT throws_ok($$SELECT referral.track_orders('public.bad_orders', 'customer', 'id', status_column => 'status')$$,
	'42804', NULL, 'track_orders: an integer status column');
SELECT throws_ok($$SELECT referral.track_orders('public.bad_orders', 'customer', 'id', ordered_at_column => 'at')$$,
	'42804', NULL, 'track_orders: a text ordered_at column');
SELECT throws_ok($$SELECT referral.track_orders(NULL, 'customer', 'id')$$, '22004', NULL, 'track_orders: a NULL table');
SELECT throws_ok($$SELECT referral.track_orders('public.sec_orders', 'customer_id', 'total')$$, '42710', NULL,
	'track_orders: a table already tracked');
SELECT results_eq($$SELECT * FROM counts_before$$,
	$$SELECT (SELECT count(*) FROM referral.program), (SELECT count(*) FROM referral.reward_rule),
	         (SELECT count(*) FROM referral.milestone), (SELECT count(*) FROM referral.code),
	         (SELECT count(*) FROM referral.click), (SELECT count(*) FROM referral.referral),
	         (SELECT count(*) FROM referral.tracked_table), (SELECT count(*) FROM referral.event)$$,
	'the failed calls wrote nothing');
SELECT ok(to_regclass('public.bad_orders') IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.bad_orders'::regclass),
	'the rejected table is intact and has no trigger');

-- ---------------------------------------------------------------------------
-- Hostile search_path: look-alike functions and operators ahead of pg_catalog
-- ---------------------------------------------------------------------------
-- Every look-alike logs its call (with the role) and returns a wrong answer.
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE TABLE evil.calls (fn text, by_role name DEFAULT current_user);
GRANT INSERT, SELECT ON evil.calls TO PUBLIC;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('now'); RETURN '1999-01-01 00:00+00'; END$$;
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('lower'); RETURN 'evil'; END$$;
CREATE FUNCTION evil.upper(text) RETURNS text LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('upper'); RETURN 'EVIL'; END$$;
CREATE FUNCTION evil.btrim(text) RETURNS text LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('btrim'); RETURN ''; END$$;
CREATE FUNCTION evil.btrim(text, text) RETURNS text LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('btrim2'); RETURN ''; END$$;
CREATE FUNCTION evil.format(text) RETURNS text LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('format'); RETURN 'SELECT 1'; END$$;
CREATE FUNCTION evil.format(text, VARIADIC text[]) RETURNS text LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('format variadic'); RETURN 'SELECT 1'; END$$;
CREATE FUNCTION evil.quote_ident(text) RETURNS text LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('quote_ident'); RETURN $1; END$$;
CREATE FUNCTION evil.nextval(regclass) RETURNS bigint LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('nextval'); RETURN 42; END$$;
CREATE FUNCTION evil.isfinite(timestamptz) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('isfinite'); RETURN false; END$$;
CREATE FUNCTION evil.octet_length(text) RETURNS integer LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('octet_length'); RETURN 0; END$$;
CREATE FUNCTION evil.host(inet) RETURNS text LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('host'); RETURN 'evil'; END$$;
CREATE FUNCTION evil.cardinality(anyarray) RETURNS integer LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('cardinality'); RETURN 0; END$$;
CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('current_setting'); RETURN 'none'; END$$;
CREATE FUNCTION evil.has_table_privilege(name, regclass, text) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('has_table_privilege'); RETURN true; END$$;
CREATE FUNCTION evil.pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('pg_notify'); END$$;
CREATE FUNCTION evil.count_step(bigint) RETURNS bigint LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('count'); RETURN 999; END$$;
CREATE AGGREGATE evil.count(*) (SFUNC = evil.count_step, STYPE = bigint, INITCOND = '999');
CREATE FUNCTION evil.sum_step(numeric, numeric) RETURNS numeric LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('sum'); RETURN 0; END$$;
CREATE AGGREGATE evil.sum(numeric) (SFUNC = evil.sum_step, STYPE = numeric, INITCOND = '0');
CREATE FUNCTION evil.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('= text'); RETURN true; END$$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
CREATE FUNCTION evil.text_ne(text, text) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('<> text'); RETURN false; END$$;
CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_ne);
CREATE FUNCTION evil.int8_eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('= bigint'); RETURN true; END$$;
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8_eq);
CREATE FUNCTION evil.code_eq(referral.referral_code, referral.referral_code) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO evil.calls (fn) VALUES ('= referral_code'); RETURN true; END$$;
CREATE OPERATOR evil.= (LEFTARG = referral.referral_code, RIGHTARG = referral.referral_code, FUNCTION = evil.code_eq);

-- What each step under the hostile search_path returned, compared afterwards.
CREATE TEMP TABLE hr (step text PRIMARY KEY, val text);
CREATE TEMP TABLE hr_redeem (step text PRIMARY KEY, referral_id bigint, status text, reason text);
CREATE TEMP TABLE view_snap (view text, phase text, rows text[], PRIMARY KEY (view, phase));
GRANT ALL ON hr, hr_redeem, view_snap TO PUBLIC;
CREATE TABLE public.victim (x int);
-- An orders table whose names need quoting and carry injection attempts.
CREATE TABLE public."Hostile ""Orders""; DROP TABLE public.victim; --" (
	"Order ID"		bigserial PRIMARY KEY,
	"Customer'); DROP TABLE public.victim; --" text NOT NULL,
	"Total $"		numeric(12, 2) NOT NULL,
	"Order Status"	text NOT NULL DEFAULT 'paid',
	"Placed At"		timestamptz NOT NULL DEFAULT pg_catalog.now()
);
GRANT SELECT, INSERT, UPDATE, DELETE ON public."Hostile ""Orders""; DROP TABLE public.victim; --" TO orders_writer;
SELECT pg_get_serial_sequence('public."Hostile ""Orders""; DROP TABLE public.victim; --"', 'Order ID') AS hseq \gset
GRANT USAGE ON SEQUENCE :hseq TO orders_writer;

-- The trap is armed: unqualified names do reach the look-alikes.
SET LOCAL search_path = evil, pg_catalog, public;
SELECT now() = '1999-01-01 00:00+00'::timestamptz AND 'a'::text = 'b'::text AND 1::bigint = 2::bigint
       AND (SELECT count(*) FROM (VALUES (1)) v) = 999 AND NOT isfinite(pg_catalog.now()) AS armed \gset
RESET search_path;
SELECT ok(:'armed'::boolean AND (SELECT count(*) FROM evil.calls) > 0,
	'the look-alikes take over unqualified names under the hostile search_path');
TRUNCATE evil.calls;

-- Operations (superuser) under the hostile search_path.
SET LOCAL search_path = evil, pg_catalog, public;
SELECT referral.create_program('Hostile', max_depth => 2) AS hprog \gset
SELECT referral.add_reward(:hprog, 'referee', fixed => 5) AS hr1 \gset
SELECT referral.add_reward(:hprog, 'referrer', percent => 10, cap => 20) AS hr2 \gset
SELECT referral.add_reward(:hprog, 'referrer', percent => 1, level => 2) AS hr3 \gset
SELECT referral.track_orders('public."Hostile ""Orders""; DROP TABLE public.victim; --"',
	customer_column => 'Customer''); DROP TABLE public.victim; --', amount_column => 'Total $',
	id_column => 'Order ID', status_column => 'Order Status', ordered_at_column => 'Placed At') AS htracked \gset

-- The application (app) under the hostile search_path.
SET LOCAL ROLE app;
INSERT INTO pg_temp.hr VALUES ('vanity', referral.issue_code(:hprog, 'hal', vanity => 'HAL9000',
	email => 'Hal.Smith+x@GoogleMail.com', device => 'hal-phone')::text);
SELECT referral.issue_code(:hprog, 'ivy') AS ivy \gset
INSERT INTO pg_temp.hr VALUES ('ivy again', referral.issue_code(:hprog, 'ivy')::text);
INSERT INTO pg_temp.hr VALUES ('share_link', referral.share_link('HAL9000', 'https://shop.example/?a=b#c', 'e mail'));
INSERT INTO pg_temp.hr VALUES ('click', (referral.record_click('hal-9000', 'mail', '198.51.100.7') IS NOT NULL)::text);
INSERT INTO pg_temp.hr_redeem SELECT 'hal', r.* FROM referral.redeem('HAL9000', 'hal') r;
INSERT INTO pg_temp.hr_redeem SELECT 'jo email', r.* FROM referral.redeem('HAL9000', 'jo', email => 'halsmith@gmail.com') r;
INSERT INTO pg_temp.hr_redeem SELECT 'jo2 device', r.* FROM referral.redeem('HAL9000', 'jo2', device => 'hal-phone') r;
INSERT INTO pg_temp.hr_redeem SELECT 'kim', r.* FROM referral.redeem('HAL9000', 'kim', ip => '198.51.100.7') r;
INSERT INTO pg_temp.hr_redeem SELECT 'kim again', r.* FROM referral.redeem('HAL9000', 'kim') r;
INSERT INTO pg_temp.hr_redeem SELECT 'kim other code', r.* FROM referral.redeem(:'ivy', 'kim') r;
SELECT referral.issue_code(:hprog, 'kim') AS kimcode \gset
INSERT INTO pg_temp.hr_redeem SELECT 'lee', r.* FROM referral.redeem(:'kimcode', 'lee') r;
INSERT INTO pg_temp.hr_redeem SELECT 'hal cycle', r.* FROM referral.redeem(:'kimcode', 'hal') r;
INSERT INTO pg_temp.hr_redeem SELECT 'jo via ivy', r.* FROM referral.redeem(:'ivy', 'jo') r;
INSERT INTO pg_temp.hr VALUES ('unknown code', pg_temp.sqlstate_of($$SELECT * FROM referral.redeem('ZZZZ99', 'x')$$));
INSERT INTO pg_temp.hr VALUES ('vanity taken', pg_temp.sqlstate_of(pg_catalog.format($$SELECT referral.issue_code(%s, 'mo', vanity => 'HAL-9OOO')$$, :hprog)));
INSERT INTO pg_temp.hr VALUES ('null code', pg_temp.sqlstate_of($$SELECT * FROM referral.redeem(NULL, 'x')$$));
INSERT INTO pg_temp.hr VALUES ('blank customer', pg_temp.sqlstate_of($$SELECT * FROM referral.redeem('HAL9000', '   ')$$));
RESET ROLE;

-- The shop's restricted role writes orders under the hostile search_path.
SET LOCAL ROLE orders_writer;
INSERT INTO public."Hostile ""Orders""; DROP TABLE public.victim; --" ("Customer'); DROP TABLE public.victim; --", "Total $")
VALUES ('kim', 150.00);
INSERT INTO public."Hostile ""Orders""; DROP TABLE public.victim; --" ("Customer'); DROP TABLE public.victim; --", "Total $")
VALUES ('stranger', 99.00);
INSERT INTO public."Hostile ""Orders""; DROP TABLE public.victim; --" ("Customer'); DROP TABLE public.victim; --", "Total $")
VALUES ('lee', 40.00);
RESET ROLE;

-- Operations again: approve, pay, then the shop refunds kim's order.
INSERT INTO pg_temp.hr VALUES ('approve_due', referral.approve_due(pg_catalog.now() + '31 days'::interval)::text);
INSERT INTO pg_temp.hr VALUES ('mark_paid', referral.mark_paid(
	ARRAY(SELECT w.id FROM referral.reward w
	       WHERE w.program_id OPERATOR(pg_catalog.=) :hprog AND w.beneficiary OPERATOR(pg_catalog.=) 'hal'
	       ORDER BY w.id), 'PAY-1')::text);
SET LOCAL ROLE orders_writer;
UPDATE public."Hostile ""Orders""; DROP TABLE public.victim; --" SET "Order Status" = 'refunded'
 WHERE "Customer'); DROP TABLE public.victim; --" OPERATOR(pg_catalog.=) 'kim';
RESET ROLE;
INSERT INTO pg_temp.hr VALUES ('upline lee', (SELECT pg_catalog.array_agg(u.level || ':' || u.customer ORDER BY u.level)
                                               FROM referral.upline('lee') u)::text);
INSERT INTO pg_temp.hr VALUES ('downline hal', (SELECT pg_catalog.array_agg(d.level || ':' || d.customer ORDER BY d.level)
                                                 FROM referral.downline('hal') d)::text);
INSERT INTO pg_temp.hr VALUES ('audit', (SELECT pg_catalog.count(*) FROM referral.audit())::text);
INSERT INTO pg_temp.view_snap SELECT 'program_stats', 'evil', pg_catalog.array_agg(v::text ORDER BY v::text) FROM referral.program_stats v;
INSERT INTO pg_temp.view_snap SELECT 'referrer_stats', 'evil', pg_catalog.array_agg(v::text ORDER BY v::text) FROM referral.referrer_stats v;
INSERT INTO pg_temp.view_snap SELECT 'leaderboard', 'evil', pg_catalog.array_agg(v::text ORDER BY v::text) FROM referral.leaderboard v;
INSERT INTO pg_temp.view_snap SELECT 'reward_balance', 'evil', pg_catalog.array_agg(v::text ORDER BY v::text) FROM referral.reward_balance v;
INSERT INTO pg_temp.view_snap SELECT 'variant_stats', 'evil', pg_catalog.array_agg(v::text ORDER BY v::text) FROM referral.variant_stats v;
INSERT INTO pg_temp.view_snap SELECT 'daily_stats', 'evil', pg_catalog.array_agg(v::text ORDER BY v::text) FROM referral.daily_stats v;
INSERT INTO pg_temp.view_snap SELECT 'suspicious_referrals', 'evil', pg_catalog.array_agg(v::text ORDER BY v::text) FROM referral.suspicious_referrals v;
SET LOCAL ROLE app;
INSERT INTO pg_temp.hr VALUES ('summary hal', (SELECT s::text FROM referral.participant_summary(:hprog, 'hal') s));
RESET ROLE;
RESET search_path;

-- Nothing of the hostile schema ran, and every result is the expected one.
SELECT is((SELECT pg_catalog.string_agg(DISTINCT fn || ' by ' || by_role, ', ') FROM evil.calls), NULL,
	'no look-alike function or operator was called by any function, trigger or view');
SELECT results_eq($$SELECT step, val FROM pg_temp.hr WHERE step IN ('vanity', 'share_link', 'click', 'unknown code',
	                    'vanity taken', 'null code', 'blank customer', 'approve_due', 'mark_paid', 'audit')
	                    ORDER BY step COLLATE "C"$$,
	$$VALUES ('approve_due', '5'), ('audit', '0'), ('blank customer', '22023'), ('click', 'true'),
	         ('mark_paid', '2'), ('null code', '22004'),
	         ('share_link', 'https://shop.example/?a=b&ref=HAL9000&utm_source=e%20mail&utm_medium=referral#c'),
	         ('unknown code', 'RF002'), ('vanity', 'HAL9000'), ('vanity taken', 'RF001')$$,
	'codes, link, click, errors, approval, payout and audit are unchanged by the hostile search_path');
SELECT ok((SELECT referral.is_generated(val::referral.referral_code) FROM pg_temp.hr WHERE step = 'ivy again')
          AND (SELECT val FROM pg_temp.hr WHERE step = 'ivy again') = :'ivy'
          AND (SELECT code::text FROM referral.code WHERE customer = 'ivy') = :'ivy'
          AND (SELECT count(*) FROM referral.code WHERE program_id = :hprog) = 3,
	'generated codes are issued once, from the real counter, under the hostile search_path');
SELECT results_eq($$SELECT step, status, reason FROM pg_temp.hr_redeem ORDER BY step COLLATE "C"$$,
	$$VALUES ('hal'::text, 'rejected'::text, 'self_referral'::text), ('hal cycle', 'rejected', 'cycle'),
	         ('jo email', 'rejected', 'self_referral'), ('jo via ivy', 'pending', NULL),
	         ('jo2 device', 'rejected', 'self_referral'),
	         ('kim', 'pending', NULL), ('kim again', 'pending', NULL), ('kim other code', 'pending', 'already_referred'),
	         ('lee', 'pending', NULL)$$,
	'every redeem rule decides as without the hostile search_path');
SELECT ok((SELECT count(DISTINCT referral_id) FROM pg_temp.hr_redeem WHERE step LIKE 'kim%') = 1
          AND (SELECT count(*) FROM referral.referral WHERE program_id = :hprog) = 7,
	'redeeming again returns the same referral and stores no new row');
SELECT results_eq($$SELECT referee, status, reason FROM referral.referral WHERE program_id = $$ || :hprog || $$ ORDER BY id$$,
	$$VALUES ('hal'::text, 'rejected'::text, 'self_referral'::text), ('jo', 'rejected', 'self_referral'),
	         ('jo2', 'rejected', 'self_referral'), ('kim', 'pending', NULL), ('lee', 'converted', NULL),
	         ('hal', 'rejected', 'cycle'), ('jo', 'pending', NULL)$$,
	'the referrals: kim''s refund returned it to pending, lee converted');
SELECT results_eq($$SELECT beneficiary, kind, level, amount, status, payout_ref FROM referral.reward
                    WHERE program_id = $$ || :hprog || $$ ORDER BY id$$,
	$$VALUES ('kim'::text, 'referee'::text, 1, 5.00::numeric, 'reversed'::text, NULL::text),
	         ('hal', 'referrer', 1, 15.00, 'paid', 'PAY-1'),
	         ('lee', 'referee', 1, 5.00, 'approved', NULL),
	         ('kim', 'referrer', 1, 4.00, 'approved', NULL),
	         ('hal', 'referrer', 2, 0.40, 'paid', 'PAY-1'),
	         ('hal', 'clawback', 1, -15.00, 'approved', NULL)$$,
	'the order triggers, approval, payout and clawback under the hostile search_path');
SELECT ok((SELECT count(*) FROM referral.reward WHERE program_id = :hprog
            AND order_source = 'public."Hostile ""Orders""; DROP TABLE public.victim; --"') = 6
          AND to_regclass('public.victim') IS NOT NULL
          AND (SELECT count(*) FROM pg_trigger
                WHERE tgrelid = 'public."Hostile ""Orders""; DROP TABLE public.victim; --"'::regclass
                  AND tgfoid = 'referral._order_trigger()'::regprocedure) = 3,
	'names that need quoting are quoted: triggers on the right table, nothing injected');
SELECT results_eq($$SELECT step, val FROM pg_temp.hr WHERE step IN ('upline lee', 'downline hal') ORDER BY step$$,
	$$VALUES ('downline hal', '{1:kim,2:lee}'), ('upline lee', '{1:kim,2:hal}')$$,
	'upline and downline under the hostile search_path');
SELECT results_eq($$SELECT clicks, referrals, rejected, conversions, revenue, reward_cost, cost_per_acquisition
                      FROM referral.program_stats WHERE program_id = $$ || :hprog,
	$$VALUES (1::bigint, 3::bigint, 4::bigint, 1::bigint, 40.00::numeric, 9.40::numeric, 9.40::numeric)$$,
	'program_stats of the hostile run');
SELECT results_eq($$SELECT pending, approved, paid, reversed FROM referral.reward_balance WHERE customer = 'hal'$$,
	$$VALUES (0::numeric, -15.00::numeric, 15.40::numeric, 0::numeric)$$,
	'reward_balance of the hostile run');
SELECT is((SELECT val FROM pg_temp.hr WHERE step = 'summary hal'),
	(SELECT s::text FROM referral.participant_summary(:hprog, 'hal') s),
	'participant_summary is the same with and without the hostile search_path');
INSERT INTO pg_temp.view_snap SELECT 'program_stats', 'plain', array_agg(v::text ORDER BY v::text) FROM referral.program_stats v;
INSERT INTO pg_temp.view_snap SELECT 'referrer_stats', 'plain', array_agg(v::text ORDER BY v::text) FROM referral.referrer_stats v;
INSERT INTO pg_temp.view_snap SELECT 'leaderboard', 'plain', array_agg(v::text ORDER BY v::text) FROM referral.leaderboard v;
INSERT INTO pg_temp.view_snap SELECT 'reward_balance', 'plain', array_agg(v::text ORDER BY v::text) FROM referral.reward_balance v;
INSERT INTO pg_temp.view_snap SELECT 'variant_stats', 'plain', array_agg(v::text ORDER BY v::text) FROM referral.variant_stats v;
INSERT INTO pg_temp.view_snap SELECT 'daily_stats', 'plain', array_agg(v::text ORDER BY v::text) FROM referral.daily_stats v;
INSERT INTO pg_temp.view_snap SELECT 'suspicious_referrals', 'plain', array_agg(v::text ORDER BY v::text) FROM referral.suspicious_referrals v;
SELECT is(ARRAY(SELECT e.view FROM pg_temp.view_snap e JOIN pg_temp.view_snap p ON p.view = e.view AND p.phase = 'plain'
                 WHERE e.phase = 'evil' AND e.rows IS DISTINCT FROM p.rows ORDER BY 1)
          || ARRAY(SELECT v || ' (no rows)' FROM pg_temp.spec_views
                    WHERE NOT EXISTS (SELECT 1 FROM pg_temp.view_snap s WHERE s.view = v AND s.rows IS NOT NULL) ORDER BY 1),
	'{}'::text[], 'every view returns the same rows with and without the hostile search_path');

-- A tracked column changed afterwards to a type of the table owner's own: its cast
-- to text would run the owner's function with the extension owner's rights, so
-- the trigger refuses the column (and never calls the cast).
CREATE TABLE public.retyped_orders (id bigint PRIMARY KEY, customer text, total numeric, status text);
SELECT referral.track_orders('public.retyped_orders', 'customer', 'total', status_column => 'status');
CREATE TYPE public.sneaky AS (v text);
CREATE FUNCTION public.sneaky_text(public.sneaky) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the cast ran' USING ERRCODE = 'P0099';
END
$$;
CREATE CAST (public.sneaky AS text) WITH FUNCTION public.sneaky_text(public.sneaky);
ALTER TABLE public.retyped_orders ALTER COLUMN customer TYPE public.sneaky USING ROW(customer)::public.sneaky;
SELECT throws_ok($$INSERT INTO public.retyped_orders VALUES (1, ROW('carol')::public.sneaky, 10, 'paid')$$,
	'42804', NULL, 'a customer column retyped to the owner''s own type is refused, its cast never runs');
ALTER TABLE public.retyped_orders ALTER COLUMN customer TYPE text USING (customer).v;
CREATE TYPE public.order_state AS ENUM ('paid', 'refunded');
ALTER TABLE public.retyped_orders ALTER COLUMN status TYPE public.order_state USING status::public.order_state;
SELECT lives_ok($$INSERT INTO public.retyped_orders VALUES (2, 'carol', 10, 'paid')$$,
	'an enum status without a cast of its own is read');
CREATE FUNCTION public.state_text(public.order_state) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the cast ran' USING ERRCODE = 'P0099';
END
$$;
CREATE CAST (public.order_state AS text) WITH FUNCTION public.state_text(public.order_state);
SELECT throws_ok($$INSERT INTO public.retyped_orders VALUES (3, 'carol', 10, 'paid')$$,
	'42804', NULL, 'an enum status with a cast of the owner''s own is refused');

SELECT * FROM finish();
ROLLBACK;

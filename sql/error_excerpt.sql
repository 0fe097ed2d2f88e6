-- What error messages quote of a user's input: referral._excerpt, and the
-- messages of the SQL functions that quote a text argument.

-- _excerpt: the first 32 characters, cut between characters, "..." when cut
SELECT v IS NULL AS is_null, length(v) AS length, referral._excerpt(v) AS excerpt,
       length(referral._excerpt(v)) AS excerpt_length
  FROM (VALUES (NULL), (''), ('Spring'), (repeat('x', 32)), (repeat('x', 33)),
               (repeat('é', 33)), ('a' || repeat('日本', 20)),
               (repeat('y', 1048576))) AS t(v);

-- labels and privileges
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_proc p
 WHERE p.oid = 'referral._excerpt(text)'::regprocedure;

BEGIN;
-- the error a statement raises: whether its message is short, whether
-- message, detail or hint quote more than 32 characters of the argument (when
-- it is longer), and the message with program ids masked
CREATE FUNCTION pg_temp.error_of(stmt text, arg text)
RETURNS TABLE (sqlstate text, short_message boolean, quotes_beyond_32 boolean, message text)
LANGUAGE plpgsql AS $$
DECLARE
	m text;
	d text;
	h text;
BEGIN
	EXECUTE stmt;
	RETURN QUERY SELECT NULL::text, NULL::boolean, NULL::boolean, NULL::text;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
	RETURN QUERY SELECT SQLSTATE, length(m) <= 150,
		CASE WHEN length(arg) > 32 THEN strpos(concat(m, d, h), left(arg, 33)) > 0 END,
		left(regexp_replace(m, 'program [0-9]+', 'program P', 'g'), 150);
END
$$;

SELECT referral.create_program('Spring') AS p \gset
CREATE TEMP TABLE orders_overlap (id int, customer text, amount numeric, status text);
SELECT referral.add_variant(:p, repeat('v', 40)) > 0 AS variant_added;

-- each argument 1 MB long, or as long as an index allows where it must exist
-- first
SELECT t.what, e.*
  FROM (VALUES
	('program name',
	 format('SELECT referral.create_program(%L)', 'Spring'), 'Spring'),
	('program name, 2000 characters',
	 format('SELECT referral.create_program(%L); SELECT referral.create_program(%L)',
	        repeat('n', 2000), repeat('n', 2000)), repeat('n', 2000)),
	('tenant, 2000 characters',
	 format('SELECT referral.create_program(%L, %L); SELECT referral.create_program(%L, %L)',
	        'Spring', repeat('t', 2000), 'Spring', repeat('t', 2000)), repeat('t', 2000)),
	('currency, 1 MB',
	 format('SELECT referral.create_program(%L, currency => %L)', 'Summer', repeat('c', 1048576)),
	 repeat('c', 1048576)),
	('beneficiary, 1 MB',
	 format('SELECT referral.add_reward(%s, %L, 10)', :p, repeat('b', 1048576)), repeat('b', 1048576)),
	('reward_type, 1 MB',
	 format('SELECT referral.add_reward(%s, %L, 10, reward_type => %L)', :p, 'referrer', repeat('r', 1048576)),
	 repeat('r', 1048576)),
	('milestone reward_type, 1 MB',
	 format('SELECT referral.add_milestone(%s, 5, 10, %L)', :p, repeat('r', 1048576)), repeat('r', 1048576)),
	('unknown variant, 1 MB',
	 format('SELECT referral.add_reward(%s, %L, 10, variant => %L)', :p, 'referrer', repeat('u', 1048576)),
	 repeat('u', 1048576)),
	('duplicate rule of a long variant',
	 format('SELECT referral.add_reward(%s, %L, 10, variant => %L); SELECT referral.add_reward(%s, %L, 10, variant => %L)',
	        :p, 'referrer', repeat('v', 40), :p, 'referrer', repeat('v', 40)), repeat('v', 40)),
	('duplicate variant',
	 format('SELECT referral.add_variant(%s, %L)', :p, repeat('v', 40)), repeat('v', 40))
	) AS t(what, stmt, arg)
 CROSS JOIN LATERAL pg_temp.error_of(t.stmt, t.arg) AS e;

-- a customer key of 1 MB: its length is named, not the key
SELECT e.* FROM pg_temp.error_of(format('SELECT referral.issue_code(%s, %L)', :p, repeat('k', 1048576)),
                                 repeat('k', 1048576)) AS e;
SELECT e.* FROM pg_temp.error_of(format('SELECT * FROM referral.issue_codes(%s, ARRAY[%L, %L])', :p, 'ok',
                                        repeat('k', 1048576)), repeat('k', 1048576)) AS e;

-- an invalid e-mail given to issue_code: not quoted at all
SELECT e.sqlstate, e.message, strpos(e.message, 'secret') > 0 AS quotes_it
  FROM pg_temp.error_of(format('SELECT referral.issue_code(%s, %L, email => %L)', :p, 'alice',
                               'alice.secret.example.com'), 'alice.secret') AS e;
-- mark_paid of 10,000 rewards that do not exist: the first ten are named
SELECT e.sqlstate, e.short_message, e.message
  FROM pg_temp.error_of('SELECT referral.mark_paid(ARRAY(SELECT generate_series(900001, 910000)::bigint), ''batch'')',
                        '') AS e;

-- overlapping status lists of long statuses: an excerpt
SELECT e.sqlstate, e.quotes_beyond_32, e.message
  FROM pg_temp.error_of(format('SELECT referral.track_orders(%L, %L, %L, status_column => %L, paid_statuses => ARRAY[%L], reversed_statuses => ARRAY[%L])',
                               'pg_temp.orders_overlap', 'customer', 'amount', 'status', repeat('s', 100), repeat('s', 100)),
                        repeat('s', 100)) AS e;
ROLLBACK;

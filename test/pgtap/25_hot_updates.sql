-- A conversion and its reversal update the referral in place (HOT): no index of
-- referral.referral reads a column they change, and its pages keep room for the new
-- row version.  A non-HOT update writes an entry in each of the table's indexes.
BEGIN;
SELECT plan(5);

SELECT is_empty($$
	SELECT i.indexrelid::regclass, a.attname
	  FROM pg_index i
	  JOIN pg_attribute a ON a.attrelid = i.indrelid
	   AND a.attname IN ('status', 'converted_at', 'converting_source', 'converting_order', 'reverted_at')
	 WHERE i.indrelid = 'referral.referral'::regclass
	   AND (a.attnum = ANY (i.indkey)
	        OR pg_get_expr(i.indpred, i.indrelid) ~ ('\m' || a.attname || '\M')
	        OR pg_get_expr(i.indexprs, i.indrelid) ~ ('\m' || a.attname || '\M'))$$,
	'no index of referral.referral reads a column that a conversion or its reversal changes');

CREATE TABLE public.hot_orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL,
	status text NOT NULL DEFAULT 'paid');
SELECT referral.track_orders('public.hot_orders', 'customer', 'amount', status_column => 'status');
SELECT referral.create_program('Hot') AS program \gset
SELECT referral.add_reward(:program, 'referee', fixed => 5);
SELECT referral.redeem(referral.issue_code(:program, 'hot-referrer'), 'hot-referee');
SELECT pg_stat_get_xact_tuples_hot_updated('referral.referral'::regclass) AS hot_before \gset

INSERT INTO public.hot_orders VALUES (1, 'hot-referee', 50);
SELECT is((SELECT status FROM referral.referral WHERE referee = 'hot-referee'), 'converted',
	'the first order converts the referral');
SELECT is(pg_stat_get_xact_tuples_hot_updated('referral.referral'::regclass) - :hot_before, 1::bigint,
	'the conversion is a HOT update of the referral');

UPDATE public.hot_orders SET status = 'refunded' WHERE id = 1;
SELECT is((SELECT status FROM referral.referral WHERE referee = 'hot-referee'), 'pending',
	'refunding the converting order returns the referral to pending');
SELECT is(pg_stat_get_xact_tuples_hot_updated('referral.referral'::regclass) - :hot_before, 2::bigint,
	'so is its reversal');

SELECT * FROM finish();
ROLLBACK;

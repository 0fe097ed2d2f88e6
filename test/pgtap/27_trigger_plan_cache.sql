-- The order trigger's plans are kept per backend, by the SQL of the trigger's
-- configuration: a backend that fires the triggers of many tables keeps a bounded
-- number of them (the cache drops them all past its cap).
BEGIN;
SELECT plan(2);

-- 300 tables, each with an id column of its own name: the DELETE of a row runs the
-- reversal statement, a plan of its own per table.
DO $$
BEGIN
	FOR i IN 1 .. 300 LOOP
		EXECUTE format('CREATE TABLE public.plan_orders_%s (order_%s bigint, buyer text, total numeric)', i, i);
		PERFORM referral.track_orders(format('public.plan_orders_%s', i)::regclass, 'buyer', 'total',
			id_column => format('order_%s', i)::name);
		EXECUTE format('INSERT INTO public.plan_orders_%s VALUES (1, %L, 10)', i, 'nobody');
		EXECUTE format('DELETE FROM public.plan_orders_%s', i);
	END LOOP;
END
$$;

CREATE FUNCTION pg_temp.reversal_plans() RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(*) FROM pg_backend_memory_contexts
	 WHERE name = 'CachedPlanSource' AND ident LIKE 'SELECT referral._orders_reversed(%'
$$;
SELECT cmp_ok(pg_temp.reversal_plans(), '<=', 256::bigint, 'at most 256 plans are kept');
SELECT cmp_ok(pg_temp.reversal_plans(), '>', 0::bigint, 'and the ones made since are');

SELECT * FROM finish();
ROLLBACK;

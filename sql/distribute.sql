-- referral.distribute() on a server without Citus: a clear error, and nothing
-- changes.  (make citus-check runs it on a Citus cluster.)
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT count(*) > 0 AS has_citus FROM pg_extension WHERE extname = 'citus';
SELECT referral.distribute();
SELECT referral.distribute('pg_class');
\set VERBOSITY terse
DO $$
BEGIN
	PERFORM referral.distribute();
EXCEPTION WHEN feature_not_supported THEN
	RAISE NOTICE 'SQLSTATE %', SQLSTATE;
END $$;
-- No table became a Citus table, and the helper says so without Citus.
SELECT referral._distributed('referral.referral') AS distributed;

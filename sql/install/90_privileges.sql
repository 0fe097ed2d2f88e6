-- Privileges.  PUBLIC keeps only what the referral_code type needs to be used as a
-- type (I/O, operators, support functions); everything else is granted
-- by referral.grant_app() and referral.grant_analyst().

REVOKE ALL ON ALL TABLES IN SCHEMA referral FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA referral FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA referral FROM PUBLIC;
GRANT USAGE ON SCHEMA referral TO PUBLIC;

-- The type's own functions: I/O, comparison and hash support (those the operators,
-- casts and operator classes of referral_code use).
DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT p.oid::regprocedure
		  FROM pg_proc p
		 WHERE p.pronamespace = 'referral'::regnamespace
		   AND (p.oid IN (SELECT t.typinput FROM pg_type t WHERE t.typname = 'referral_code'
		                  UNION ALL SELECT t.typoutput FROM pg_type t WHERE t.typname = 'referral_code'
		                  UNION ALL SELECT t.typreceive FROM pg_type t WHERE t.typname = 'referral_code'
		                  UNION ALL SELECT t.typsend FROM pg_type t WHERE t.typname = 'referral_code'
		                  UNION ALL SELECT o.oprcode FROM pg_operator o WHERE o.oprnamespace = 'referral'::regnamespace
		                  UNION ALL SELECT ap.amproc FROM pg_amproc ap
		                              JOIN pg_opfamily f ON f.oid = ap.amprocfamily
		                             WHERE f.opfnamespace = 'referral'::regnamespace
		                  UNION ALL SELECT c.castfunc FROM pg_cast c
		                             WHERE c.castsource = 'referral.referral_code'::regtype
		                                OR c.casttarget = 'referral.referral_code'::regtype))
	LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
	END LOOP;
END
$$;

CREATE FUNCTION referral.grant_app(role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM referral._grant_functions(role, ARRAY[
		'referral.issue_code(bigint, text, referral.referral_code, text, text)',
		'referral.share_link(referral.referral_code, text, text)',
		'referral.record_click(referral.referral_code, text, inet, text, timestamptz)',
		'referral.redeem(referral.referral_code, text, text, inet, text, timestamptz)',
		'referral.offer(text, numeric, text)',
		'referral.use_offer(text, text, numeric, text)',
		'referral.credit_balance(text, text, text)',
		'referral.spend_credit(text, numeric, text, text, text)',
		'referral.refund_credit(text, text)']::regprocedure[]);
	IF to_regprocedure('referral.participant_summary(bigint, text)') IS NOT NULL THEN
		EXECUTE format('GRANT EXECUTE ON FUNCTION referral.participant_summary(bigint, text) TO %s', role);
	END IF;
END
$$;
COMMENT ON FUNCTION referral.grant_app(regrole)
	IS 'grant a role what an application needs: issue_code, share_link, record_click, redeem, participant_summary, and the checkout''s offer, use_offer, credit_balance, spend_credit, refund_credit; no table access';

CREATE FUNCTION referral.grant_analyst(role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v regclass;
BEGIN
	-- The analysts' views; the internal ones (named _...) stay private.
	FOR v IN SELECT c.oid::regclass FROM pg_class c
	          WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('v', 'm')
	            AND c.relname !~ '^_'
	          ORDER BY c.relname
	LOOP
		EXECUTE format('GRANT SELECT ON %s TO %s', v, role);
	END LOOP;
	-- A view's reader needs EXECUTE on the extension's functions that the view calls
	-- (variant_stats: two_proportion_p_value).
	PERFORM referral._grant_functions(role, ARRAY(
		SELECT DISTINCT d.refobjid::regprocedure
		  FROM pg_depend d
		  JOIN pg_rewrite w ON w.oid = d.objid
		  JOIN pg_class c ON c.oid = w.ev_class
		  JOIN pg_proc p ON p.oid = d.refobjid
		 WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_proc'::regclass
		   AND c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('v', 'm')
		   AND p.pronamespace = 'referral'::regnamespace));
END
$$;
COMMENT ON FUNCTION referral.grant_analyst(regrole)
	IS 'grant a role SELECT on the analyst views of schema referral';

-- Grants a role USAGE on schema referral and EXECUTE on the functions given: what
-- grant_app, grant_analyst (above) and grant_operator (87_operations.sql) all grant.
CREATE FUNCTION referral._grant_functions(role regrole, functions regprocedure[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE format('GRANT USAGE ON SCHEMA referral TO %s', role);
	IF cardinality(functions) > 0 THEN
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', array_to_string(functions, ', '), role);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._grant_functions(regrole, regprocedure[])
	IS 'internal: grant a role USAGE on schema referral and EXECUTE on the functions given';

REVOKE EXECUTE ON FUNCTION referral.grant_app(regrole), referral.grant_analyst(regrole),
	referral._grant_functions(regrole, regprocedure[]) FROM PUBLIC;

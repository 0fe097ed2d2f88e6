\echo Use "ALTER EXTENSION referral UPDATE TO '0.2'" to load this file. \quit
-- referral 0.1 -> 0.2.  Every change to sql/install/*.sql after 0.1 is repeated
-- here; test/upgrade.sh proves that 0.1 updated to 0.2 equals a fresh 0.2.

-- Currency decimals and reward amounts are computed in C (src/reward_calc.c).
CREATE OR REPLACE FUNCTION referral.currency_decimals(currency text)
RETURNS int
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_currency_decimals';
COMMENT ON FUNCTION referral.currency_decimals(text) IS 'decimals of the currency''s minor unit (ISO 4217): 0 for JPY, 3 for KWD, 2 for most';

CREATE OR REPLACE FUNCTION referral.reward_amount(order_amount numeric, percent numeric, fixed numeric, cap numeric, currency text)
RETURNS numeric
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_reward_amount';
COMMENT ON FUNCTION referral.reward_amount(numeric, numeric, numeric, numeric, text)
	IS 'fixed + percent/100 x order amount, cut to cap, rounded half up to the currency''s minor unit';

-- Chains: member rows carry their ancestors' customers (nearest first), and upline and
-- downline read them in C by direct index scans (src/chain_read.c).  downline refuses a
-- negative max_depth (22023) instead of returning nothing.
ALTER TABLE referral.member ADD COLUMN ancestors text[] NOT NULL DEFAULT '{}';
UPDATE referral.member s
   SET ancestors = ARRAY(SELECT m.customer
                           FROM unnest(s.path[1:cardinality(s.path) - 1]) WITH ORDINALITY AS a(node, pos)
                           JOIN referral.member m ON m.id = a.node
                          ORDER BY a.pos DESC)
 WHERE cardinality(s.path) > 1;
ALTER TABLE referral.member ALTER COLUMN ancestors DROP DEFAULT,
	ADD CONSTRAINT member_ancestors_match_path
		CHECK (pg_catalog.cardinality(ancestors) = pg_catalog.cardinality(path) - 1);
COMMENT ON COLUMN referral.member.ancestors IS 'the customers above this one, nearest first: the upline without a lookup per level';
-- downline() reads members from the path index alone where the heap page is all-visible.
DROP INDEX referral.member_path;
CREATE INDEX member_path ON referral.member (path) INCLUDE (customer);
CREATE OR REPLACE FUNCTION referral._member(tenant text, customer text)
RETURNS referral.member
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m referral.member;
BEGIN
	SELECT * INTO m FROM referral.member x WHERE x.tenant = _member.tenant AND x.customer = _member.customer;
	IF NOT FOUND THEN
		INSERT INTO referral.member (tenant, customer, id, path, ancestors)
		SELECT _member.tenant, _member.customer, n.id, ARRAY[n.id], '{}'::text[]
		  FROM (SELECT nextval('referral.member_id_seq') AS id) n
		ON CONFLICT DO NOTHING;
		SELECT * INTO STRICT m FROM referral.member x WHERE x.tenant = _member.tenant AND x.customer = _member.customer;
	END IF;
	RETURN m;
END
$$;
CREATE OR REPLACE FUNCTION referral._attach(parent referral.member, child referral.member)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF cardinality(child.path) <> 1 OR child.id = ANY (parent.path) THEN
		RAISE EXCEPTION 'referral: cannot attach member % below member %', child.id, parent.id
			USING ERRCODE = 'internal_error';
	END IF;
	UPDATE referral.member x
	   SET path = parent.path || x.path,
	       ancestors = x.ancestors || parent.customer || parent.ancestors
	 WHERE x.path >= child.path
	   AND x.path < child.path || 9223372036854775807::bigint;
END
$$;
CREATE OR REPLACE FUNCTION referral.upline(customer text, tenant text DEFAULT 'default')
RETURNS TABLE (level int, customer text)
LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'referral_upline';
CREATE OR REPLACE FUNCTION referral.downline(customer text, tenant text DEFAULT 'default', max_depth int DEFAULT NULL)
RETURNS TABLE (level int, customer text)
LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'referral_downline';

-- reward.clawback_of loses its self-referencing foreign key (pg_dump warned of circular
-- foreign keys at every dump); audit() reports a clawback without its paid reward instead.
ALTER TABLE referral.reward DROP CONSTRAINT reward_clawback_of_fkey;
-- reward.program_id loses its foreign key: it is the program of the reward's referral,
-- whose key holds it (one after-row check less per reward); audit() reports a mismatch.
ALTER TABLE referral.reward DROP CONSTRAINT reward_program_id_fkey;
-- reward.referral_id loses its foreign key too (its check cost 10 to 30 µs a reward):
-- triggers refuse to delete or truncate referrals that have rewards, as the key did,
-- and audit() reports a reward without its referral.
ALTER TABLE referral.reward DROP CONSTRAINT reward_referral_id_fkey;
CREATE OR REPLACE FUNCTION referral.audit(program bigint DEFAULT NULL)
RETURNS TABLE (problem text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t record;
	paid_test text;
	tenant_test text;
BEGIN
	IF program IS NOT NULL THEN
		PERFORM referral._program(program);
	END IF;

	-- Within the ledger.
	RETURN QUERY
	SELECT 'conversion_without_order',
	       format('referral %s is converted but its converting order %s (%s) is not an attributed, unreversed order',
	              r.id, r.converting_order, r.converting_source)
	  FROM referral.referral r
	 WHERE r.status = 'converted' AND (audit.program IS NULL OR r.program_id = audit.program)
	   AND NOT EXISTS (SELECT 1 FROM referral.attributed_order o
	                    WHERE o.tenant = r.tenant AND o.order_source = r.converting_source
	                      AND o.order_ref = r.converting_order AND o.referral_id = r.id
	                      AND o.converting AND o.reversed_at IS NULL)
	 ORDER BY r.id;

	RETURN QUERY
	SELECT 'reward_not_reversed',
	       format('reward %s (%s %s for order %s) is %s although the order was reversed',
	              w.id, w.kind, w.amount, w.order_ref, w.status)
	  FROM referral.reward w
	  JOIN referral.attributed_order o
	    ON o.tenant = w.tenant AND o.order_source = w.order_source AND o.order_ref = w.order_ref
	 WHERE w.kind IN ('referee', 'referrer') AND o.reversed_at IS NOT NULL
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	   AND (w.status IN ('pending', 'approved')
	        OR (w.status = 'paid' AND NOT EXISTS (SELECT 1 FROM referral.reward c WHERE c.clawback_of = w.id)))
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'clawback_without_reward',
	       format('clawback %s of %s offsets reward %s, which is not a paid reward of %s for %s',
	              c.id, c.amount, c.clawback_of, c.beneficiary, -c.amount)
	  FROM referral.reward c
	  LEFT JOIN referral.reward w ON w.id = c.clawback_of
	 WHERE c.kind = 'clawback' AND (audit.program IS NULL OR c.program_id = audit.program)
	   AND (w.id IS NULL OR w.status <> 'paid' OR w.beneficiary <> c.beneficiary OR w.amount <> -c.amount)
	 ORDER BY c.id;

	RETURN QUERY
	SELECT 'reward_without_referral',
	       format('reward %s of %s names referral %s, which does not exist', w.id, w.beneficiary, w.referral_id)
	  FROM referral.reward w
	 WHERE NOT EXISTS (SELECT 1 FROM referral.referral r WHERE r.id = w.referral_id)
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'reward_program_mismatch',
	       format('reward %s is in program %s, but its referral %s is in program %s',
	              w.id, w.program_id, r.id, r.program_id)
	  FROM referral.reward w
	  JOIN referral.referral r ON r.id = w.referral_id
	 WHERE w.program_id <> r.program_id
	   AND (audit.program IS NULL OR w.program_id = audit.program OR r.program_id = audit.program)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'reward_above_rule',
	       format('reward %s pays %s, more than rule %s gives for order %s of %s (%s)',
	              w.id, w.amount, w.rule_id, w.order_ref, o.amount,
	              referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency))
	  FROM referral.reward w
	  JOIN referral.reward_rule rr ON rr.id = w.rule_id
	  JOIN referral.attributed_order o
	    ON o.tenant = w.tenant AND o.order_source = w.order_source AND o.order_ref = w.order_ref
	 WHERE w.kind IN ('referee', 'referrer') AND w.status <> 'reversed'
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	   AND w.amount > referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'budget_exceeded',
	       format('program %s has created %s of rewards, over its budget of %s', p.id, s.total, p.budget)
	  FROM referral.program p
	  JOIN (SELECT w.program_id, sum(w.amount) AS total FROM referral.reward w
	         WHERE w.status <> 'reversed' GROUP BY w.program_id) s ON s.program_id = p.id
	 WHERE p.budget IS NOT NULL AND s.total > p.budget
	   AND (audit.program IS NULL OR p.id = audit.program)
	 ORDER BY p.id;

	RETURN QUERY
	SELECT 'referrer_cap_exceeded',
	       format('%s has earned %s in program %s, over its referrer_cap of %s', s.beneficiary, s.total, p.id, p.referrer_cap)
	  FROM referral.program p
	  JOIN (SELECT w.program_id, w.beneficiary, sum(w.amount) AS total FROM referral.reward w
	         WHERE w.status <> 'reversed' GROUP BY w.program_id, w.beneficiary) s ON s.program_id = p.id
	 WHERE p.referrer_cap IS NOT NULL AND s.total > p.referrer_cap
	   AND (audit.program IS NULL OR p.id = audit.program)
	 ORDER BY p.id, s.beneficiary;

	-- Against the orders of every table still tracked.
	FOR t IN
		SELECT tt.*, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified
		  FROM referral.tracked_table tt
		  JOIN pg_class c ON c.oid = tt.relid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 ORDER BY tt.relid
	LOOP
		paid_test := CASE WHEN t.status_column IS NULL THEN 'true'
		                  ELSE format('(x.%I::text = ANY (%L::text[]))', t.status_column, t.paid_statuses) END;
		tenant_test := CASE WHEN t.tenant_column IS NULL THEN format('%L', t.tenant)
		                    ELSE format('x.%I::text', t.tenant_column) END;

		-- An attributed, unreversed order that is no longer there or no longer paid.
		RETURN QUERY EXECUTE format(
			'SELECT %L, format(%L, o.order_ref, o.order_source, o.referral_id, CASE WHEN x.%I IS NULL THEN %L ELSE %L END)
			   FROM referral.attributed_order o
			   LEFT JOIN %s x ON x.%I::text = o.order_ref AND %s = o.tenant
			  WHERE o.order_source = $1 AND o.reversed_at IS NULL
			    AND ($2::bigint IS NULL OR o.program_id = $2)
			    AND (x.%I IS NULL OR NOT %s)
			  ORDER BY o.order_ref',
			'order_not_paid', 'order %s of %s (referral %s) earned rewards but is %s',
			t.id_column, 'deleted', 'not paid',
			t.qualified, t.id_column, tenant_test, t.id_column, paid_test)
		USING t.source, program;

		-- A pending referral whose referee has a qualifying paid order in the window,
		-- placed after the referral last went back to pending: a missed conversion.
		IF t.ordered_at_column IS NOT NULL THEN
			RETURN QUERY EXECUTE format(
				'SELECT %L, format(%L, r.id, x.%I::text)
				   FROM referral.referral r
				   JOIN referral.program p ON p.id = r.program_id
				   JOIN %s x ON x.%I::text = r.referee AND %s = r.tenant
				  WHERE r.status = ''pending'' AND ($1::bigint IS NULL OR r.program_id = $1)
				    AND %s AND x.%I::numeric >= p.min_order_amount
				    AND x.%I::timestamptz >= GREATEST(r.created_at, p.starts_at, r.reverted_at)
				    AND x.%I::timestamptz <= r.created_at + p.attribution_window
				    AND (p.ends_at IS NULL OR x.%I::timestamptz < p.ends_at)
				    AND NOT EXISTS (SELECT 1 FROM referral.attributed_order o
				                     WHERE o.tenant = r.tenant AND o.order_source = $2 AND o.order_ref = x.%I::text)
				  ORDER BY r.id',
				'missed_conversion', 'referral %s is pending although order %s qualifies',
				t.id_column, t.qualified, t.customer_column, tenant_test, paid_test, t.amount_column,
				t.ordered_at_column, t.ordered_at_column, t.ordered_at_column, t.id_column)
			USING program, t.source;
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral.audit(bigint)
	IS 'recompute from tracked orders and referrals what the ledger should hold; one row per difference, none when consistent';

-- Every later qualifying order of a converted referee is revenue (attributed_order),
-- also without recurring_window.
COMMENT ON TABLE referral.attributed_order IS 'qualifying orders of referees (the converting one and later ones), with their amount; reversed_at set when refunded, cancelled or deleted';

-- A paid milestone that is clawed back can be paid again: reversed_at marks a paid
-- reward whose clawback exists, and the milestone index leaves such rewards out.
UPDATE referral.reward w SET reversed_at = c.created_at
  FROM referral.reward c
 WHERE c.kind = 'clawback' AND c.clawback_of = w.id AND w.reversed_at IS NULL;
DROP INDEX referral.reward_once_per_milestone;
CREATE UNIQUE INDEX reward_once_per_milestone ON referral.reward
	(program_id, beneficiary, milestone_id) WHERE kind = 'milestone' AND status <> 'reversed' AND reversed_at IS NULL;

-- PUBLIC keeps only the type's own functions; grant_analyst grants the analysts'
-- views, not the internal ones.
REVOKE EXECUTE ON FUNCTION referral.is_generated(referral.referral_code), referral.normalize_email(text) FROM PUBLIC;
DO $$
DECLARE
	g record;
BEGIN
	-- Roles that 0.1's grant_analyst gave the internal views lose them.
	FOR g IN
		SELECT c.oid::regclass AS view, a.grantee::regrole AS role
		  FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
		 WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind = 'v'
		   AND c.relname LIKE '\_%' AND a.grantee <> c.relowner AND a.grantee <> 0
	LOOP
		EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', g.view, g.role);
	END LOOP;
END
$$;
CREATE OR REPLACE FUNCTION referral.grant_analyst(role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v regclass;
	f regprocedure;
BEGIN
	EXECUTE format('GRANT USAGE ON SCHEMA referral TO %s', role);
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
	FOR f IN SELECT DISTINCT d.refobjid::regprocedure
	           FROM pg_depend d
	           JOIN pg_rewrite w ON w.oid = d.objid
	           JOIN pg_class c ON c.oid = w.ev_class
	           JOIN pg_proc p ON p.oid = d.refobjid
	          WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_proc'::regclass
	            AND c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('v', 'm')
	            AND p.pronamespace = 'referral'::regnamespace
	LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f, role);
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral.grant_analyst(regrole)
	IS 'grant a role SELECT on the analyst views of schema referral';

-- The conversion and refund paths: PL/pgSQL helpers (plans kept for the session)
-- without a SET clause of their own (their callers pin search_path).
CREATE OR REPLACE FUNCTION referral._emit(tenant text, kind text, payload jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	new_id bigint;
BEGIN
	INSERT INTO referral.event AS e (tenant, kind, payload)
	VALUES (_emit.tenant, _emit.kind, _emit.payload)
	RETURNING e.id INTO new_id;
	PERFORM pg_notify('referral_event',
		json_build_object('id', new_id, 'kind', kind, 'tenant', tenant)::text);
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral._emit(text, text, jsonb) IS 'internal: append to referral.event and NOTIFY referral_event';
CREATE OR REPLACE FUNCTION referral._emit_rewards(kind text, reward_ids bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	notified bigint;
BEGIN
	WITH e AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT w.tenant, _emit_rewards.kind,
		       jsonb_build_object('reward_id', w.id, 'program_id', w.program_id,
		                          'referral_id', w.referral_id, 'beneficiary', w.beneficiary,
		                          'kind', w.kind, 'level', w.level, 'amount', w.amount,
		                          'currency', w.currency, 'status', w.status,
		                          'order_ref', w.order_ref, 'payout_ref', w.payout_ref)
		  FROM referral.reward w
		 WHERE w.id = ANY (reward_ids)
		 ORDER BY w.id
		RETURNING e.id, e.kind, e.tenant
	)
	SELECT count(pg_notify('referral_event', json_build_object('id', e.id, 'kind', e.kind, 'tenant', e.tenant)::text))
	  INTO notified FROM e;
END
$$;
COMMENT ON FUNCTION referral._emit_rewards(text, bigint[]) IS 'internal: one event (and NOTIFY) per reward';
-- _pick_rule returns a set (no row when no rule applies), so that it is inlined.
DROP FUNCTION referral._pick_rule(bigint, text, int, text, bigint);
CREATE FUNCTION referral._pick_rule(program bigint, beneficiary text, level int, variant text, conversions bigint)
RETURNS SETOF referral.reward_rule
LANGUAGE sql STABLE
AS $$
	SELECT r.*
	  FROM referral.reward_rule r
	 WHERE r.program_id = _pick_rule.program
	   AND r.beneficiary = _pick_rule.beneficiary
	   AND r.level = _pick_rule.level
	   AND r.min_conversions <= _pick_rule.conversions
	   AND r.variant IS NOT DISTINCT FROM (
	       CASE WHEN _pick_rule.variant IS NOT NULL AND EXISTS (
	                 SELECT 1 FROM referral.reward_rule v
	                  WHERE v.program_id = _pick_rule.program AND v.beneficiary = _pick_rule.beneficiary
	                    AND v.level = _pick_rule.level AND v.variant = _pick_rule.variant)
	            THEN _pick_rule.variant END)
	 ORDER BY r.min_conversions DESC
	 LIMIT 1
$$;
COMMENT ON FUNCTION referral._pick_rule(bigint, text, int, text, bigint) IS 'internal: the reward rule (tier) for a beneficiary, level and variant; no row when none applies';
REVOKE EXECUTE ON FUNCTION referral._pick_rule(bigint, text, int, text, bigint) FROM PUBLIC;
-- _conversions takes the limit to count up to (its callers pass the top tier).
DROP FUNCTION referral._conversions(text, bigint, text);
CREATE FUNCTION referral._conversions(tenant text, program bigint, customer text, up_to bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE
AS $$
BEGIN
	RETURN (SELECT pg_catalog.count(*)
	          FROM (SELECT 1 FROM referral.referral r
	                 WHERE r.tenant = _conversions.tenant AND r.referrer = _conversions.customer
	                   AND r.program_id = _conversions.program AND r.status = 'converted'
	                 LIMIT _conversions.up_to) s);
END
$$;
COMMENT ON FUNCTION referral._conversions(text, bigint, text, bigint) IS 'internal: conversions of a customer as a referrer in a program, counted up to a limit';
REVOKE EXECUTE ON FUNCTION referral._conversions(text, bigint, text, bigint) FROM PUBLIC;
CREATE OR REPLACE FUNCTION referral._create_reward(
	p referral.program, referral_id bigint, beneficiary text, level int, kind text,
	reward_type text, amount numeric, rule_id bigint, milestone_id bigint,
	order_source text, order_ref text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	left_over numeric;
	new_id bigint;
	event_id bigint;
BEGIN
	IF p.budget IS NOT NULL THEN
		SELECT p.budget - COALESCE(sum(w.amount), 0) INTO left_over
		  FROM referral.reward w WHERE w.program_id = p.id AND w.status <> 'reversed';
		amount := LEAST(amount, left_over);
	END IF;
	IF p.referrer_cap IS NOT NULL THEN
		SELECT p.referrer_cap - COALESCE(sum(w.amount), 0) INTO left_over
		  FROM referral.reward w
		 WHERE w.tenant = p.tenant AND w.beneficiary = _create_reward.beneficiary
		   AND w.program_id = p.id AND w.status <> 'reversed';
		amount := LEAST(amount, left_over);
	END IF;
	IF amount IS NULL OR amount <= 0 THEN
		RETURN NULL;
	END IF;

	-- The reward and its event in one statement, the event from the values at hand
	-- (the payload of _emit_rewards): looking the new row up again would run a plan
	-- made while the table was small, a sequential scan, once per reward of a bulk
	-- load.  Then the NOTIFY, as _emit sends it.
	WITH w AS (
		INSERT INTO referral.reward AS w
			(tenant, program_id, beneficiary, referral_id, order_source, order_ref, level, kind,
			 reward_type, amount, currency, status, rule_id, milestone_id)
		VALUES
			(p.tenant, p.id, _create_reward.beneficiary, _create_reward.referral_id,
			 _create_reward.order_source, _create_reward.order_ref, _create_reward.level,
			 _create_reward.kind, _create_reward.reward_type, amount, p.currency, 'pending',
			 _create_reward.rule_id, _create_reward.milestone_id)
		ON CONFLICT DO NOTHING
		RETURNING w.id
	), e AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT p.tenant, 'reward_created',
		       jsonb_build_object('reward_id', w.id, 'program_id', p.id,
		                          'referral_id', _create_reward.referral_id,
		                          'beneficiary', _create_reward.beneficiary, 'kind', _create_reward.kind,
		                          'level', _create_reward.level, 'amount', amount,
		                          'currency', p.currency, 'status', 'pending',
		                          'order_ref', _create_reward.order_ref, 'payout_ref', NULL)
		  FROM w
		RETURNING e.id
	)
	SELECT w.id, e.id INTO new_id, event_id FROM w CROSS JOIN e;
	IF new_id IS NOT NULL THEN
		PERFORM pg_notify('referral_event',
			json_build_object('id', event_id, 'kind', 'reward_created', 'tenant', p.tenant)::text);
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral._create_reward(referral.program, bigint, text, int, text, text, numeric, bigint, bigint, text, text)
	IS 'internal: insert one reward, cut to the budget and referrer_cap left, exactly once';
CREATE OR REPLACE FUNCTION referral._order_paid(referral_id bigint, source text, order_ref text, amount numeric, at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	r referral.referral;
	p referral.program;
	converting boolean;
	rule referral.reward_rule;
	upline text[];
	tiered text[];
	top_tier bigint;
	-- The rewards of this order, in order: referee, then referrer levels.
	beneficiaries text[] := '{}';
	levels int[] := '{}';
	kinds text[] := '{}';
	reward_types text[] := '{}';
	amounts numeric[] := '{}';
	rule_ids bigint[] := '{}';
	beneficiary text;
	lvl int;
	reached bigint;
	ms referral.milestone;
	milestone_reward bigint;
BEGIN
	SELECT * INTO r FROM referral.referral x WHERE x.id = _order_paid.referral_id FOR UPDATE;
	IF NOT FOUND OR r.status = 'rejected' OR amount IS NULL THEN
		RETURN;
	END IF;
	SELECT * INTO STRICT p FROM referral.program x WHERE x.id = r.program_id;
	IF amount < p.min_order_amount OR at < p.starts_at OR at >= p.ends_at THEN
		RETURN;
	END IF;
	IF EXISTS (SELECT 1 FROM referral.attributed_order o
	            WHERE o.tenant = r.tenant AND o.order_source = source AND o.order_ref = _order_paid.order_ref) THEN
		RETURN;		-- this order was attributed before
	END IF;

	IF r.status = 'pending' THEN
		IF at < r.created_at OR at > r.created_at + p.attribution_window THEN
			RETURN;
		END IF;
		converting := true;
	ELSIF at >= r.created_at THEN
		converting := false;
		IF p.recurring_window IS NULL OR at < r.converted_at
		   OR at > r.converted_at + p.recurring_window THEN
			-- Another qualifying order that earns nothing: revenue of the referral
			-- (also one timed before the conversion that arrived after it).
			INSERT INTO referral.attributed_order
				(tenant, order_source, order_ref, program_id, referral_id, amount, ordered_at, converting)
			VALUES (r.tenant, source, _order_paid.order_ref, p.id, r.id, amount, at, false);
			RETURN;
		END IF;
	ELSE
		RETURN;
	END IF;

	-- Serialise the referrer's conversions (tiers, milestones), then the program's
	-- budget and caps.
	PERFORM 1 FROM referral.code c
	 WHERE c.tenant = r.tenant AND c.program_id = p.id AND c.customer = r.referrer FOR UPDATE;
	IF p.budget IS NOT NULL OR p.referrer_cap IS NOT NULL THEN
		PERFORM 1 FROM referral.program x WHERE x.id = p.id FOR UPDATE;
	END IF;

	INSERT INTO referral.attributed_order
		(tenant, order_source, order_ref, program_id, referral_id, amount, ordered_at, converting)
	VALUES (r.tenant, source, _order_paid.order_ref, p.id, r.id, amount, at, converting);

	-- The referrer's chain, level 1 = the referrer, read before anything changes.
	SELECT ARRAY[r.referrer] || COALESCE(s.ancestors[1:p.max_depth - 1], '{}')
	  INTO upline
	  FROM referral.member s
	 WHERE s.tenant = r.tenant AND s.customer = r.referrer;
	upline := COALESCE(upline, ARRAY[r.referrer]);

	-- The (beneficiary, level) pairs with tiers: only those need a count of
	-- conversions (most programs tier the direct referrer at most), and only up to
	-- the top tier.
	SELECT COALESCE(array_agg(DISTINCT x.beneficiary || ':' || x.level), '{}'), max(x.min_conversions)
	  INTO tiered, top_tier
	  FROM referral.reward_rule x
	 WHERE x.program_id = p.id AND x.min_conversions > 0;

	IF converting THEN
		-- Referee reward: tier by the referee's own conversions as a referrer.
		SELECT * INTO rule FROM referral._pick_rule(p.id, 'referee', 1, r.variant,
		                            CASE WHEN 'referee:1' = ANY (tiered)
		                                 THEN referral._conversions(r.tenant, p.id, r.referee, top_tier) ELSE 0 END);
		IF rule.id IS NOT NULL THEN
			beneficiaries := beneficiaries || r.referee;
			levels := levels || 1;
			kinds := kinds || 'referee'::text;
			reward_types := reward_types || rule.reward_type;
			amounts := amounts || referral.reward_amount(amount, rule.percent, rule.fixed, rule.cap, p.currency);
			rule_ids := rule_ids || rule.id;
		END IF;
	END IF;

	-- Referrer rewards, level 1 up to max_depth, each tier by that beneficiary's
	-- conversions in the program so far (not counting this conversion).
	FOR lvl IN 1 .. LEAST(p.max_depth, cardinality(upline)) LOOP
		beneficiary := upline[lvl];
		SELECT * INTO rule FROM referral._pick_rule(p.id, 'referrer', lvl, r.variant,
		                            CASE WHEN 'referrer:' || lvl = ANY (tiered)
		                                 THEN referral._conversions(r.tenant, p.id, beneficiary, top_tier) ELSE 0 END);
		IF rule.id IS NOT NULL THEN
			beneficiaries := beneficiaries || beneficiary;
			levels := levels || lvl;
			kinds := kinds || 'referrer'::text;
			reward_types := reward_types || rule.reward_type;
			amounts := amounts || referral.reward_amount(amount, rule.percent, rule.fixed, rule.cap, p.currency);
			rule_ids := rule_ids || rule.id;
		END IF;
	END LOOP;
	PERFORM referral._create_rewards(p, r.id, source, _order_paid.order_ref, beneficiaries, levels,
		kinds, reward_types, amounts, rule_ids);

	IF NOT converting THEN
		RETURN;
	END IF;

	UPDATE referral.referral x
	   SET status = 'converted', converted_at = at,
	       converting_source = source, converting_order = _order_paid.order_ref
	 WHERE x.id = r.id;
	PERFORM referral._emit(r.tenant, 'referral_converted',
		jsonb_build_object('referral_id', r.id, 'program_id', p.id, 'referrer', r.referrer,
		                   'referee', r.referee, 'order_ref', _order_paid.order_ref,
		                   'converted_at', at));

	-- Milestones now reached and not held (a reversed one is paid again); most
	-- programs have none, and then the referrer's conversions are not counted again.
	IF NOT EXISTS (SELECT 1 FROM referral.milestone m WHERE m.program_id = p.id) THEN
		RETURN;
	END IF;
	reached := referral._conversions(r.tenant, p.id, r.referrer,
		(SELECT max(m.conversions) FROM referral.milestone m WHERE m.program_id = p.id));
	FOR ms IN
		SELECT * FROM referral.milestone m
		 WHERE m.program_id = p.id AND m.conversions <= reached
		   AND NOT EXISTS (SELECT 1 FROM referral.reward w
		                    WHERE w.tenant = r.tenant AND w.program_id = p.id AND w.beneficiary = r.referrer
		                      AND w.milestone_id = m.id AND w.status <> 'reversed'
		                      AND w.reversed_at IS NULL)
		 ORDER BY m.conversions
	LOOP
		milestone_reward := referral._create_reward(p, r.id, r.referrer, 1, 'milestone', ms.reward_type,
			round(ms.amount, referral.currency_decimals(p.currency)), NULL, ms.id, NULL, NULL);
		IF milestone_reward IS NOT NULL THEN
			PERFORM referral._emit(r.tenant, 'milestone_reached',
				jsonb_build_object('referral_id', r.id, 'program_id', p.id, 'referrer', r.referrer,
				                   'milestone_id', ms.id, 'conversions', ms.conversions,
				                   'reward_id', milestone_reward));
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._order_paid(bigint, text, text, numeric, timestamptz)
	IS 'internal: a paid order of a referee: convert the referral and create its rewards, or recurring rewards';
CREATE OR REPLACE FUNCTION referral._orders_reversed(tenant text, source text, order_refs text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	reverted bigint[];
	to_reverse bigint[];
BEGIN
	-- Referrals first (the lock order), then their rewards; one event each, in
	-- referral id order.  A referral's converting order is an attributed order
	-- (converting), which is how it is found: no index of referral reads the
	-- converting order (see referral.referral).
	WITH locked AS (
		SELECT x.id, x.converting_order
		  FROM referral.attributed_order a
		  JOIN referral.referral x ON x.id = a.referral_id
		 WHERE a.tenant = _orders_reversed.tenant AND a.order_source = source
		   AND a.order_ref = ANY (order_refs) AND a.converting
		   AND x.converting_source = source AND x.converting_order = a.order_ref
		 ORDER BY x.id FOR UPDATE OF x
	), back_to_pending AS (
		UPDATE referral.referral x
		   SET status = 'pending', converted_at = NULL, converting_source = NULL,
		       converting_order = NULL, reverted_at = now()
		  FROM locked l
		 WHERE x.id = l.id
		RETURNING x.id, x.tenant, x.program_id, x.referrer, x.referee, l.converting_order
	), events AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT b.tenant, 'referral_reverted',
		       jsonb_build_object('referral_id', b.id, 'program_id', b.program_id, 'referrer', b.referrer,
		                          'referee', b.referee, 'order_ref', b.converting_order)
		  FROM back_to_pending b ORDER BY b.id
		RETURNING e.id, e.kind, e.tenant
	), notified AS (
		SELECT count(pg_notify('referral_event', json_build_object('id', e.id, 'kind', e.kind, 'tenant', e.tenant)::text))
		  FROM events e
	)
	SELECT (SELECT COALESCE(array_agg(b.id), '{}') FROM back_to_pending b) INTO reverted
	  FROM notified;

	UPDATE referral.attributed_order o SET reversed_at = now()
	 WHERE o.tenant = _orders_reversed.tenant AND o.order_source = source
	   AND o.order_ref = ANY (order_refs) AND o.reversed_at IS NULL;

	SELECT array_agg(w.id ORDER BY w.id) INTO to_reverse
	  FROM referral.reward w
	 WHERE (w.tenant = _orders_reversed.tenant AND w.order_source = source
	        AND w.order_ref = ANY (order_refs) AND w.kind IN ('referee', 'referrer'))
	    OR (w.referral_id = ANY (reverted) AND w.kind = 'milestone');
	IF to_reverse IS NOT NULL THEN
		PERFORM referral._reverse_rewards(to_reverse);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._orders_reversed(text, text, text[])
	IS 'internal: orders refunded, cancelled or deleted: reverse their rewards and conversions';
CREATE OR REPLACE FUNCTION referral._reverse_rewards(reward_ids bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	reversed bigint[];
	clawbacks bigint[];
BEGIN
	WITH locked AS (
		SELECT w.id, w.status FROM referral.reward w
		 WHERE w.id = ANY (reward_ids) AND w.kind <> 'clawback'
		 ORDER BY w.id FOR UPDATE
	), upd AS (
		UPDATE referral.reward w SET status = 'reversed', reversed_at = now()
		  FROM locked l
		 WHERE w.id = l.id AND l.status IN ('pending', 'approved')
		RETURNING w.id
	)
	SELECT array_agg(upd.id) INTO reversed FROM upd;

	WITH claw AS (
		INSERT INTO referral.reward AS c
			(tenant, program_id, beneficiary, referral_id, order_source, order_ref, level, kind,
			 reward_type, amount, currency, status, approved_at, rule_id, milestone_id, clawback_of)
		SELECT w.tenant, w.program_id, w.beneficiary, w.referral_id, w.order_source, w.order_ref,
		       w.level, 'clawback', w.reward_type, -w.amount, w.currency, 'approved', now(),
		       w.rule_id, NULL, w.id
		  FROM referral.reward w
		 WHERE w.id = ANY (reward_ids) AND w.status = 'paid' AND w.kind <> 'clawback'
		 ORDER BY w.id
		ON CONFLICT (clawback_of) WHERE kind = 'clawback' DO NOTHING
		RETURNING c.id
	)
	SELECT array_agg(claw.id) INTO clawbacks FROM claw;
	-- A paid reward stays paid (paid is gross); reversed_at says it was clawed back.
	UPDATE referral.reward w SET reversed_at = now()
	 WHERE w.id IN (SELECT c.clawback_of FROM referral.reward c WHERE c.id = ANY (clawbacks));

	IF reversed IS NOT NULL THEN
		PERFORM referral._emit_rewards('reward_reversed', reversed);
	END IF;
	IF clawbacks IS NOT NULL THEN
		PERFORM referral._emit_rewards('reward_created', clawbacks);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._reverse_rewards(bigint[]) IS 'internal: reverse rewards (clawback for paid ones)';
CREATE OR REPLACE FUNCTION referral._order_amount_changed(tenant text, source text, order_ref text, amount numeric)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	changed bigint[];
	vanished bigint[];
BEGIN
	UPDATE referral.attributed_order o SET amount = _order_amount_changed.amount
	 WHERE o.tenant = _order_amount_changed.tenant AND o.order_source = source
	   AND o.order_ref = _order_amount_changed.order_ref AND o.reversed_at IS NULL;
	WITH recomputed AS (
		SELECT w.id, w.amount AS old_amount,
		       referral.reward_amount(_order_amount_changed.amount, r.percent, r.fixed, r.cap, w.currency) AS new_amount
		  FROM referral.reward w
		  JOIN referral.reward_rule r ON r.id = w.rule_id
		 WHERE w.tenant = _order_amount_changed.tenant AND w.order_source = source
		   AND w.order_ref = _order_amount_changed.order_ref AND w.kind IN ('referee', 'referrer')
		   AND w.status IN ('pending', 'approved')
		 ORDER BY w.id
		   FOR UPDATE OF w
	), upd AS (
		UPDATE referral.reward w SET amount = c.new_amount
		  FROM recomputed c
		 WHERE w.id = c.id AND c.new_amount > 0 AND c.new_amount < c.old_amount
		RETURNING w.id
	)
	SELECT (SELECT array_agg(upd.id) FROM upd),
	       (SELECT array_agg(c.id) FROM recomputed c WHERE c.new_amount <= 0)
	  INTO changed, vanished;
	IF changed IS NOT NULL THEN
		PERFORM referral._emit_rewards('reward_changed', changed);
	END IF;
	IF vanished IS NOT NULL THEN
		PERFORM referral._reverse_rewards(vanished);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._order_amount_changed(text, text, text, numeric)
	IS 'internal: a paid order''s amount went down: lower its unpaid rewards';

-- attributed_order loses its foreign keys: a bulk load records a row for every order
-- of a referee, and each key queued an after-row check, memory growing with the load.
ALTER TABLE referral.attributed_order DROP CONSTRAINT attributed_order_program_id_fkey,
	DROP CONSTRAINT attributed_order_referral_id_fkey;
-- A refund's reversed_at stays a HOT update in the free tenth of each page (pages
-- written from now on).
ALTER TABLE referral.attributed_order SET (fillfactor = 90);

-- A conversion and its reversal update a referral in place (HOT): no index reads the
-- columns they change, not even in a predicate, and pages written from now on keep
-- room for the new row versions (VACUUM FULL referral.referral applies it to all).
-- _orders_reversed finds a converting order's referral through attributed_order.
ALTER TABLE referral.referral SET (fillfactor = 70);
DROP INDEX referral.referral_converting_order;
CREATE UNIQUE INDEX referral_one_accepted_per_referee_by_reason
	ON referral.referral (referee, tenant) WHERE reason IS NULL;
DROP INDEX referral.referral_one_accepted_per_referee;
ALTER INDEX referral.referral_one_accepted_per_referee_by_reason
	RENAME TO referral_one_accepted_per_referee;

-- The order trigger switches to its owner in C, only around the SQL it runs (a
-- statement of orders that need no SQL no longer pays for the switch).
CREATE OR REPLACE FUNCTION referral._order_trigger()
RETURNS trigger
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'referral_order_trigger';

-- issue_code and redeem: their helpers leave search_path to their callers (which pin
-- it); _hash is inlined, so a missing fingerprint costs no call.
CREATE OR REPLACE FUNCTION referral._hash(kind text, value text)
RETURNS bytea
LANGUAGE sql VOLATILE
AS $$
	SELECT CASE WHEN NULLIF(btrim(value), '') IS NULL THEN NULL
	            ELSE referral._fingerprint((referral._secret()).fingerprint_key, kind, value) END
$$;
CREATE OR REPLACE FUNCTION referral._check_customer(customer text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF NULLIF(btrim(customer), '') IS NULL THEN
		RAISE EXCEPTION 'customer must not be empty' USING ERRCODE = 'invalid_parameter_value';
	ELSIF octet_length(customer) > 1000 THEN
		RAISE EXCEPTION 'customer key is too long (% bytes, at most 1000)', octet_length(customer)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
CREATE OR REPLACE FUNCTION referral._program(program bigint)
RETURNS referral.program
LANGUAGE plpgsql STABLE
AS $$
DECLARE
	p referral.program;
BEGIN
	SELECT * INTO p FROM referral.program x WHERE x.id = _program.program;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'referral program % does not exist', COALESCE(program::text, 'NULL')
			USING ERRCODE = 'RF003',
				  HINT = 'Create one with referral.create_program(); ids are in referral.program.';
	END IF;
	RETURN p;
END
$$;

-- A conversion's referee and referrer rewards in one statement (without budget or
-- referrer_cap); conversions count a beneficiary's conversions only for tiered rules.
CREATE FUNCTION referral._create_rewards(
	p referral.program, referral_id bigint, order_source text, order_ref text,
	beneficiaries text[], levels int[], kinds text[], reward_types text[], amounts numeric[],
	rule_ids bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	event_ids bigint[];
	event_id bigint;
BEGIN
	IF p.budget IS NOT NULL OR p.referrer_cap IS NOT NULL THEN
		FOR i IN 1 .. cardinality(beneficiaries) LOOP
			PERFORM referral._create_reward(p, referral_id, beneficiaries[i], levels[i], kinds[i],
				reward_types[i], amounts[i], rule_ids[i], NULL, order_source, order_ref);
		END LOOP;
		RETURN;
	END IF;

	WITH w AS (
		INSERT INTO referral.reward AS w
			(tenant, program_id, beneficiary, referral_id, order_source, order_ref, level, kind,
			 reward_type, amount, currency, status, rule_id)
		SELECT p.tenant, p.id, x.beneficiary, _create_rewards.referral_id,
		       _create_rewards.order_source, _create_rewards.order_ref, x.level, x.kind,
		       x.reward_type, x.amount, p.currency, 'pending', x.rule_id
		  FROM unnest(beneficiaries, levels, kinds, reward_types, amounts, rule_ids)
		       WITH ORDINALITY AS x(beneficiary, level, kind, reward_type, amount, rule_id, ord)
		 WHERE x.amount > 0
		 ORDER BY x.ord
		ON CONFLICT DO NOTHING
		RETURNING w.id, w.beneficiary, w.kind, w.level, w.amount
	), e AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT p.tenant, 'reward_created',
		       jsonb_build_object('reward_id', w.id, 'program_id', p.id,
		                          'referral_id', _create_rewards.referral_id,
		                          'beneficiary', w.beneficiary, 'kind', w.kind,
		                          'level', w.level, 'amount', w.amount,
		                          'currency', p.currency, 'status', 'pending',
		                          'order_ref', _create_rewards.order_ref, 'payout_ref', NULL)
		  FROM w ORDER BY w.id
		RETURNING e.id
	)
	SELECT array_agg(e.id ORDER BY e.id) INTO event_ids FROM e;
	FOREACH event_id IN ARRAY COALESCE(event_ids, '{}') LOOP
		PERFORM pg_notify('referral_event',
			json_build_object('id', event_id, 'kind', 'reward_created', 'tenant', p.tenant)::text);
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._create_rewards(referral.program, bigint, text, text, text[], int[], text[], text[], numeric[], bigint[])
	IS 'internal: insert the referee and referrer rewards of one order (one statement without budget or referrer_cap), exactly once each';
REVOKE EXECUTE ON FUNCTION referral._create_rewards(referral.program, bigint, text, text, text[], int[], text[], text[], numeric[], bigint[]) FROM PUBLIC;

-- The paid orders of a statement: set-based conversions (0.2).
CREATE FUNCTION referral._orders_paid(source text, referral_ids bigint[], order_refs text[],
	amounts numeric[], ats timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	converted int[] := '{}';	-- input positions whose order converted, ascending
	next_converted int := 1;
BEGIN
	IF cardinality(referral_ids) >= 8 THEN
		converted := referral._convert_orders(source, referral_ids, order_refs, amounts, ats);
	END IF;
	FOR i IN 1 .. cardinality(referral_ids) LOOP
		IF converted[next_converted] = i THEN
			next_converted := next_converted + 1;
		ELSE
			PERFORM referral._order_paid(referral_ids[i], source, order_refs[i], amounts[i], ats[i]);
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._orders_paid(text, bigint[], text[], numeric[], timestamptz[])
	IS 'internal: the paid orders of one statement: set-based conversions where no budget, cap, recurring window or milestone applies; _order_paid for the rest';
REVOKE EXECUTE ON FUNCTION referral._orders_paid(text, bigint[], text[], numeric[], timestamptz[]) FROM PUBLIC;
CREATE FUNCTION referral._convert_orders(source text, referral_ids bigint[], order_refs text[],
	amounts numeric[], ats timestamptz[])
RETURNS int[]
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	converted int[];
	notified bigint;
BEGIN
	-- The lock order of _order_paid, which a session converting one by one follows:
	-- by referral id, each referral and then its referrer's code (which serialises
	-- the referrer's conversions, so that tiers count each once).  Locking all the
	-- referrals first would deadlock with it: it may hold a later referral's code
	-- while waiting for one of ours.
	PERFORM 1 FROM referral.referral r
	  JOIN referral.code c
	    ON c.tenant = r.tenant AND c.program_id = r.program_id AND c.customer = r.referrer
	 WHERE r.id = ANY (referral_ids)
	 ORDER BY r.id
	   FOR UPDATE OF r, c;

	WITH input AS (
		SELECT * FROM unnest(referral_ids, order_refs, amounts, ats)
		       WITH ORDINALITY AS i(referral_id, order_ref, amount, at, pos)
	), first_orders AS (
		SELECT DISTINCT ON (i.referral_id) i.* FROM input i ORDER BY i.referral_id, i.pos
	), conv AS MATERIALIZED (
		-- The conversions: what _order_paid checks, for the programs named above.
		SELECT r.id, r.tenant, r.program_id, r.referrer, r.referee, r.variant, p.currency,
		       i.order_ref, i.amount, i.at, i.pos,
		       ARRAY[r.referrer] || COALESCE(s.ancestors[1:p.max_depth - 1], '{}') AS upline
		  FROM first_orders i
		  JOIN referral.referral r ON r.id = i.referral_id
		  JOIN referral.program p ON p.id = r.program_id
		  LEFT JOIN referral.member s ON s.tenant = r.tenant AND s.customer = r.referrer
		 WHERE r.status = 'pending'
		   AND p.budget IS NULL AND p.referrer_cap IS NULL AND p.recurring_window IS NULL
		   AND NOT EXISTS (SELECT 1 FROM referral.milestone m WHERE m.program_id = p.id)
		   AND i.amount >= p.min_order_amount
		   AND i.at >= p.starts_at AND (p.ends_at IS NULL OR i.at < p.ends_at)
		   AND i.at >= r.created_at AND i.at <= r.created_at + p.attribution_window
		   AND NOT EXISTS (SELECT 1 FROM referral.attributed_order a
		                    WHERE a.tenant = r.tenant AND a.order_source = source
		                      AND a.order_ref = i.order_ref)
	), beneficiary AS (
		-- Who earns what: the referee (tiered by their own conversions as a referrer),
		-- then the referrer chain by level, up to max_depth.
		SELECT c.*, 'referee'::text AS kind, 1 AS level, c.referee AS who, 0 AS nth
		  FROM conv c
		UNION ALL
		SELECT c.*, 'referrer', l.level, c.upline[l.level], l.level
		  FROM conv c CROSS JOIN LATERAL pg_catalog.generate_series(1, pg_catalog.cardinality(c.upline)) AS l(level)
	), counted AS (
		-- Each beneficiary with its conversions as a referrer in the program before
		-- this one, where its (kind, level) has tiers (0 elsewhere, as _order_paid):
		-- those committed before (counted up to the top tier, as _conversions does;
		-- a call of it here would plan its query at every call, under this function's
		-- SET), plus this load's with a smaller referral id, which are its rows as the
		-- level-1 referrer (a beneficiary appears once per conversion, so the frame
		-- before the current row holds exactly those).
		SELECT b.*,
		       CASE WHEN EXISTS (SELECT 1 FROM referral.reward_rule x
		                          WHERE x.program_id = b.program_id AND x.beneficiary = b.kind
		                            AND x.level = b.level AND x.min_conversions > 0)
		            THEN COALESCE(pg_catalog.sum((b.kind = 'referrer' AND b.level = 1)::int) OVER earlier, 0)
		                 + (SELECT pg_catalog.count(*)
		                      FROM (SELECT 1 FROM referral.referral x
		                             WHERE x.tenant = b.tenant AND x.referrer = b.who
		                               AND x.program_id = b.program_id AND x.status = 'converted'
		                             LIMIT (SELECT pg_catalog.max(t.min_conversions) FROM referral.reward_rule t
		                                     WHERE t.program_id = b.program_id)) s)
		            ELSE 0 END AS conversions
		  FROM beneficiary b
		WINDOW earlier AS (PARTITION BY b.tenant, b.program_id, b.who ORDER BY b.id
		                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
	), earned AS (
		SELECT b.*, x.id AS rule_id, x.reward_type,
		       referral.reward_amount(b.amount, x.percent, x.fixed, x.cap, b.currency) AS value
		  FROM counted b
		 CROSS JOIN LATERAL referral._pick_rule(b.program_id, b.kind, b.level, b.variant, b.conversions) x
	), attributed AS (
		INSERT INTO referral.attributed_order
			(tenant, order_source, order_ref, program_id, referral_id, amount, ordered_at, converting)
		SELECT c.tenant, source, c.order_ref, c.program_id, c.id, c.amount, c.at, true
		  FROM conv c ORDER BY c.id
	), rewarded AS (
		INSERT INTO referral.reward AS w
			(tenant, program_id, beneficiary, referral_id, order_source, order_ref, level, kind,
			 reward_type, amount, currency, status, rule_id)
		SELECT e.tenant, e.program_id, e.who, e.id, source, e.order_ref, e.level, e.kind,
		       e.reward_type, e.value, e.currency, 'pending', e.rule_id
		  FROM earned e
		 WHERE e.value > 0
		 ORDER BY e.id, e.nth
		ON CONFLICT DO NOTHING
		RETURNING w.*
	), updated AS (
		UPDATE referral.referral x
		   SET status = 'converted', converted_at = c.at, converting_source = source,
		       converting_order = c.order_ref
		  FROM conv c
		 WHERE x.id = c.id
	), events AS (
		-- The events in the order _order_paid appends them: a conversion's rewards,
		-- then its referral_converted.
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT v.tenant, v.kind, v.payload
		  FROM (SELECT w.tenant, 'reward_created' AS kind, w.referral_id, 0 AS after, w.id,
		               pg_catalog.jsonb_build_object('reward_id', w.id, 'program_id', w.program_id,
		                   'referral_id', w.referral_id, 'beneficiary', w.beneficiary, 'kind', w.kind,
		                   'level', w.level, 'amount', w.amount, 'currency', w.currency,
		                   'status', w.status, 'order_ref', w.order_ref, 'payout_ref', NULL) AS payload
		          FROM rewarded w
		        UNION ALL
		        SELECT c.tenant, 'referral_converted', c.id, 1, 0,
		               pg_catalog.jsonb_build_object('referral_id', c.id, 'program_id', c.program_id,
		                   'referrer', c.referrer, 'referee', c.referee, 'order_ref', c.order_ref,
		                   'converted_at', c.at)
		          FROM conv c) v
		 ORDER BY v.referral_id, v.after, v.id
		RETURNING e.id, e.kind, e.tenant
	), notified AS (
		SELECT pg_catalog.count(pg_catalog.pg_notify('referral_event',
		           pg_catalog.json_build_object('id', e.id, 'kind', e.kind, 'tenant', e.tenant)::text)) AS n
		  FROM events e
	)
	SELECT (SELECT pg_catalog.array_agg(c.pos::int ORDER BY c.pos) FROM conv c), n.n INTO converted, notified
	  FROM notified n;
	RETURN COALESCE(converted, '{}');
END
$$;
COMMENT ON FUNCTION referral._convert_orders(text, bigint[], text[], numeric[], timestamptz[])
	IS 'internal: set-based conversions of a statement''s first orders where no budget, cap, recurring window or milestone applies; returns the positions converted';
REVOKE EXECUTE ON FUNCTION referral._convert_orders(text, bigint[], text[], numeric[], timestamptz[]) FROM PUBLIC;

-- issue_codes: the codes of many customers in one call.
CREATE FUNCTION referral.issue_codes(program bigint, customers text[])
RETURNS TABLE(customer text, code referral.referral_code)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	p referral.program := referral._program(issue_codes.program);
	key bytea;
	bad_position bigint;
	bad_customer text;
	still_missing bigint;	-- customers left without a code; NULL: not known yet
BEGIN
	PERFORM referral._require(customers IS NOT NULL, 'customers must not be NULL');
	SELECT u.n, u.c INTO bad_position, bad_customer
	  FROM unnest(customers) WITH ORDINALITY u(c, n)
	 WHERE NULLIF(btrim(u.c), '') IS NULL OR octet_length(u.c) > 1000
	 ORDER BY u.n LIMIT 1;
	IF bad_position IS NOT NULL THEN
		RAISE EXCEPTION 'customer % of the array is %', bad_position,
			CASE WHEN bad_customer IS NULL THEN 'NULL'
			     WHEN octet_length(bad_customer) > 1000
			     THEN format('too long (%s bytes, at most 1000)', octet_length(bad_customer))
			     ELSE 'empty' END
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Nothing was issued; remove or fix that element and call again.';
	END IF;

	key := (referral._secret()).code_key;
	-- For a long list the first attempt is a plain INSERT of every customer without
	-- a code, which spares ON CONFLICT's probe of both unique indexes before each
	-- row (a third of the INSERT's time).  A code taken as a vanity code, or a
	-- customer given a code by a concurrent call, makes it fail as a whole; the
	-- passes below then issue the codes with ON CONFLICT.  Short lists skip it: its
	-- subtransaction would gain them nothing, and more than 64 subtransactions in
	-- one transaction (a loop of small calls) slow every session's snapshots.
	IF cardinality(customers) >= 1000 THEN
		BEGIN
			INSERT INTO referral.code AS k (tenant, code, program_id, customer, vanity)
			SELECT p.tenant, referral._generate_code(nextval('referral.code_counter_seq'), key),
			       p.id, m.customer, false
			  FROM (SELECT DISTINCT u.c AS customer
			          FROM unnest(customers) u(c)
			         WHERE NOT EXISTS (SELECT 1 FROM referral.code k
			                            WHERE k.tenant = p.tenant AND k.program_id = p.id
			                              AND k.customer = u.c)) m;
			still_missing := 0;
		EXCEPTION WHEN unique_violation THEN
			NULL;	-- still_missing stays NULL: the passes below
		END;
	END IF;
	-- Each pass issues a generated code to every customer still without one.  A
	-- row is skipped (ON CONFLICT) when its code was taken as a vanity code or
	-- the customer got a code from a concurrent call; the next pass sees the
	-- latter's code and gives the former the next counter value.
	WHILE still_missing IS NULL OR still_missing > 0 LOOP
		WITH missing AS MATERIALIZED (
			SELECT DISTINCT u.c AS customer
			  FROM unnest(customers) u(c)
			 WHERE NOT EXISTS (SELECT 1 FROM referral.code k
			                    WHERE k.tenant = p.tenant AND k.program_id = p.id
			                      AND k.customer = u.c)),
		issued AS (
			INSERT INTO referral.code AS k (tenant, code, program_id, customer, vanity)
			SELECT p.tenant, referral._generate_code(nextval('referral.code_counter_seq'), key),
			       p.id, m.customer, false
			  FROM missing m
			ON CONFLICT DO NOTHING
			RETURNING 1)
		SELECT (SELECT count(*) FROM missing) - (SELECT count(*) FROM issued) INTO still_missing;
	END LOOP;

	RETURN QUERY
		SELECT u.c, k.code
		  FROM (SELECT u.c, min(u.n) AS n FROM unnest(customers) WITH ORDINALITY u(c, n)
		         GROUP BY u.c) u
		  JOIN referral.code k ON k.tenant = p.tenant AND k.program_id = p.id AND k.customer = u.c
		 ORDER BY u.n;
END
$$;
COMMENT ON FUNCTION referral.issue_codes(bigint, text[])
	IS 'the codes of many customers in a program, generated in one statement for those without one; each customer once, in the order given';
REVOKE EXECUTE ON FUNCTION referral.issue_codes(bigint, text[]) FROM PUBLIC;

-- Referrals by referee: a hash index, which the order trigger probes for every
-- inserted order (src/order_candidates.c), in place of the btree.
DROP INDEX referral.referral_referee;
CREATE INDEX referral_referee_hash ON referral.referral USING hash (referee);

-- issue_code: a repeat call writes nothing unless a fingerprint changed.
CREATE OR REPLACE FUNCTION referral.issue_code(
	program bigint,
	customer text,
	vanity referral.referral_code DEFAULT NULL,
	email text DEFAULT NULL,
	device text DEFAULT NULL)
RETURNS referral.referral_code
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	email_h bytea := referral._hash('email', issue_code.email);
	device_h bytea := referral._hash('device', issue_code.device);
	program_tenant text;
	key bytea;
	candidate referral.referral_code;
	issued referral.referral_code;
	old_email_h bytea;
	old_device_h bytea;
BEGIN
	LOOP
		-- The program, the customer's existing code and the code key in one
		-- statement: this runs once per customer, and each statement of a
		-- PL/pgSQL function pays the executor's start-up.  The customer's
		-- existing code wins (a later vanity is ignored); new fingerprints given
		-- now are kept.  A repeat call (an app showing the customer's code) writes
		-- nothing unless a fingerprint changed.
		SELECT p.tenant, c.code, c.email_hash, c.device_hash, s.code_key
		  INTO program_tenant, issued, old_email_h, old_device_h, key
		  FROM referral.program p
		  LEFT JOIN referral.code c
		    ON c.tenant = p.tenant AND c.program_id = p.id AND c.customer = issue_code.customer
		  LEFT JOIN referral.secret s ON true
		 WHERE p.id = issue_code.program;
		IF NOT FOUND THEN
			-- Raises RF003; a program committed since the look-up's snapshot is
			-- read again by the next pass.
			PERFORM referral._program(issue_code.program);
			CONTINUE;
		END IF;
		IF NULLIF(btrim(issue_code.customer), '') IS NULL OR octet_length(issue_code.customer) > 1000 THEN
			PERFORM referral._check_customer(issue_code.customer);	-- raises 22023
		END IF;
		IF issued IS NOT NULL THEN
			IF (email_h IS NOT NULL AND email_h IS DISTINCT FROM old_email_h)
			   OR (device_h IS NOT NULL AND device_h IS DISTINCT FROM old_device_h) THEN
				UPDATE referral.code c
				   SET email_hash = COALESCE(email_h, c.email_hash),
				       device_hash = COALESCE(device_h, c.device_hash)
				 WHERE c.tenant = program_tenant AND c.program_id = issue_code.program
				   AND c.customer = issue_code.customer;
			END IF;
			RETURN issued;
		END IF;

		IF issue_code.vanity IS NOT NULL THEN
			candidate := issue_code.vanity;
		ELSE
			IF key IS NULL THEN
				key := (referral._secret()).code_key;	-- the database's first code
			END IF;
			candidate := referral._generate_code(nextval('referral.code_counter_seq'), key);
		END IF;

		INSERT INTO referral.code AS c (tenant, code, program_id, customer, vanity, email_hash, device_hash)
		VALUES (program_tenant, candidate, issue_code.program, issue_code.customer,
		        issue_code.vanity IS NOT NULL, email_h, device_h)
		ON CONFLICT DO NOTHING
		RETURNING c.code INTO issued;
		IF issued IS NOT NULL THEN
			RETURN issued;
		END IF;

		-- Nothing inserted: either the code is taken, or this customer got a code
		-- from a concurrent call (the loop's next look-up returns it).
		IF NOT EXISTS (SELECT 1 FROM referral.code c
		                WHERE c.tenant = program_tenant AND c.program_id = issue_code.program
		                  AND c.customer = issue_code.customer)
		   AND issue_code.vanity IS NOT NULL THEN
			RAISE EXCEPTION 'referral code "%" is already taken', issue_code.vanity::text
				USING ERRCODE = 'RF001',
					  DETAIL = 'Codes are unique across all programs, and O = 0, I = L = 1 when codes are compared.',
					  HINT = 'Choose another vanity code, or leave it NULL for a generated one.';
		END IF;
		-- A generated code already taken as a vanity code: take the next counter value.
	END LOOP;
END
$$;

-- What the foreign key on reward.referral_id would refuse: removing a referral that
-- has rewards.  A DELETE is checked per referral; a TRUNCATE after the fact, so that
-- one that empties referral.reward too (TRUNCATE referral.reward, referral.referral)
-- passes, as it does with the key.
CREATE FUNCTION referral._referral_keep_rewarded()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM referral.reward w WHERE w.referral_id = OLD.id) THEN
		RAISE EXCEPTION 'referral % has rewards and cannot be deleted', OLD.id
			USING ERRCODE = 'foreign_key_violation',
			      DETAIL = 'Rewards are the ledger: they keep their referral.';
	ELSIF TG_OP = 'TRUNCATE' AND EXISTS (SELECT 1 FROM referral.reward) THEN
		RAISE EXCEPTION 'referral.referral cannot be truncated while referral.reward has rows'
			USING ERRCODE = 'foreign_key_violation',
			      HINT = 'Truncate both in one statement, or referral.reward first.';
	END IF;
	RETURN OLD;	-- NULL for TRUNCATE
END
$$;
COMMENT ON FUNCTION referral._referral_keep_rewarded() IS 'internal: refuses to delete or truncate referrals that have rewards';
CREATE TRIGGER referral_keep_rewarded BEFORE DELETE ON referral.referral
	FOR EACH ROW EXECUTE FUNCTION referral._referral_keep_rewarded();
CREATE TRIGGER referral_keep_rewarded_truncate AFTER TRUNCATE ON referral.referral
	FOR EACH STATEMENT EXECUTE FUNCTION referral._referral_keep_rewarded();
REVOKE EXECUTE ON FUNCTION referral._referral_keep_rewarded() FROM PUBLIC;

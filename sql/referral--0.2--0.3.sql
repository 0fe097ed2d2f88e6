-- referral 0.2 -> 0.3.  Each section names the change it carries; together they
-- must give exactly the catalog of a fresh 0.3 install (test/upgrade.sh checks).
\echo Use "ALTER EXTENSION referral UPDATE TO '0.3'" to load this file. \quit

-- Reads of a shop's tables without its owner's code running as the extension's owner, and redeem against orders still in progress:
CREATE FUNCTION referral._query_as_owner(relid regclass, query text)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'referral_query_as_owner';
COMMENT ON FUNCTION referral._query_as_owner(regclass, text)
	IS 'internal: run a read-only query over a shop''s table with the rights of the table''s owner';
REVOKE ALL ON FUNCTION referral._query_as_owner(regclass, text) FROM PUBLIC;

CREATE FUNCTION referral._customer_has_orders(orders regclass, customer_column name,
	tenant_column name, tenant text, customer text)
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'referral_customer_has_orders';
COMMENT ON FUNCTION referral._customer_has_orders(regclass, name, name, text, text)
	IS 'internal: whether a customer has an order, committed or in progress, in one tracked table';
REVOKE ALL ON FUNCTION referral._customer_has_orders(regclass, name, name, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION referral._has_orders(tenant text, customer text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t record;
BEGIN
	FOR t IN
		SELECT tt.relid, tt.customer_column, tt.tenant_column
		  FROM referral.tracked_table tt
		 WHERE (tt.tenant_column IS NOT NULL OR tt.tenant = _has_orders.tenant)
		   AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = tt.relid)
		 ORDER BY tt.relid
	LOOP
		IF referral._customer_has_orders(t.relid, t.customer_column, t.tenant_column,
		                                 _has_orders.tenant, _has_orders.customer) THEN
			RETURN true;
		END IF;
	END LOOP;
	RETURN false;
END
$$;
COMMENT ON FUNCTION referral._has_orders(text, text) IS 'internal: whether a customer has an order (any status, committed or in progress) in a tracked table of the tenant';

CREATE FUNCTION referral._orders_query(orders regclass, qualified text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT format('SELECT (x.%I)::text, (x.%I)::text, %s, (x.%I)::numeric, %s, %s FROM %s x',
	              t.id_column, t.customer_column,
	              CASE WHEN t.tenant_column IS NULL THEN format('%L::text', t.tenant)
	                   ELSE format('(x.%I)::text', t.tenant_column) END,
	              t.amount_column,
	              CASE WHEN t.status_column IS NULL THEN 'true'
	                   ELSE format('((x.%I)::text = ANY (%L::text[]))', t.status_column, t.paid_statuses) END,
	              CASE WHEN t.ordered_at_column IS NULL THEN 'NULL::timestamptz'
	                   ELSE format('(x.%I)::timestamptz', t.ordered_at_column) END,
	              qualified)
	  FROM referral.tracked_table t
	 WHERE t.relid = orders
$$;
COMMENT ON FUNCTION referral._orders_query(regclass, text)
	IS 'internal: the query audit() reads a tracked table''s orders with, as the table''s owner';
REVOKE ALL ON FUNCTION referral._orders_query(regclass, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION referral.audit(program bigint DEFAULT NULL)
RETURNS TABLE (problem text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t record;
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

	-- Against the orders of every table still tracked, read as the table's owner
	-- (_query_as_owner): its columns' casts and checks are the owner's code.  The
	-- rows come back as built-in types, compared here.
	FOR t IN
		SELECT tt.*, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified
		  FROM referral.tracked_table tt
		  JOIN pg_class c ON c.oid = tt.relid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 ORDER BY tt.relid
	LOOP
		RETURN QUERY
		WITH x AS MATERIALIZED (
			SELECT * FROM referral._query_as_owner(t.relid, referral._orders_query(t.relid, t.qualified))
			    AS q(order_ref text, customer text, tenant text, amount numeric, paid boolean, ordered_at timestamptz)),
		problems AS (
			-- An attributed, unreversed order that is no longer there or no longer paid.
			SELECT 1 AS part, o.order_ref AS sort_ref, NULL::bigint AS sort_id, 'order_not_paid' AS problem,
			       format('order %s of %s (referral %s) earned rewards but is %s',
			              o.order_ref, o.order_source, o.referral_id,
			              CASE WHEN x.order_ref IS NULL THEN 'deleted' ELSE 'not paid' END) AS detail
			  FROM referral.attributed_order o
			  LEFT JOIN x ON x.order_ref = o.order_ref AND x.tenant = o.tenant
			 WHERE o.order_source = t.source AND o.reversed_at IS NULL
			   AND (audit.program IS NULL OR o.program_id = audit.program)
			   AND (x.order_ref IS NULL OR x.paid IS NOT TRUE)
			UNION ALL
			-- A pending referral whose referee has a qualifying paid order in the window,
			-- placed after the referral last went back to pending: a missed conversion.
			SELECT 2, NULL, r.id, 'missed_conversion',
			       format('referral %s is pending although order %s qualifies', r.id, x.order_ref)
			  FROM referral.referral r
			  JOIN referral.program p ON p.id = r.program_id
			  JOIN x ON x.customer = r.referee AND x.tenant = r.tenant
			 WHERE t.ordered_at_column IS NOT NULL
			   AND r.status = 'pending' AND (audit.program IS NULL OR r.program_id = audit.program)
			   AND x.paid AND x.amount >= p.min_order_amount
			   AND x.ordered_at >= GREATEST(r.created_at, p.starts_at, r.reverted_at)
			   AND x.ordered_at <= r.created_at + p.attribution_window
			   AND (p.ends_at IS NULL OR x.ordered_at < p.ends_at)
			   AND NOT EXISTS (SELECT 1 FROM referral.attributed_order o
			                    WHERE o.tenant = r.tenant AND o.order_source = t.source
			                      AND o.order_ref = x.order_ref))
		SELECT problems.problem, problems.detail FROM problems
		 ORDER BY problems.part, problems.sort_ref, problems.sort_id;
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral.audit(bigint)
	IS 'recompute from tracked orders and referrals what the ledger should hold; one row per difference, none when consistent';

CREATE OR REPLACE FUNCTION referral.redeem(
	code referral.referral_code,
	customer text,
	email text DEFAULT NULL,
	ip inet DEFAULT NULL,
	device text DEFAULT NULL,
	at timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (referral_id bigint, status text, reason text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	c referral.code := referral._code(redeem.code);
	p referral.program := referral._program(c.program_id);
	email_h bytea := referral._hash('email', redeem.email);
	device_h bytea := referral._hash('device', redeem.device);
	ip_h bytea := referral._hash('ip', host(redeem.ip));
	existing referral.referral;
	referrer_m referral.member;
	referee_m referral.member;
	trees record;
	rule text;
	new_id bigint;
	new_status text;
	day_start timestamptz;
BEGIN
	PERFORM referral._check_customer(redeem.customer);
	PERFORM referral._require(redeem.at IS NOT NULL AND isfinite(redeem.at), 'redeem time must be a finite time');

	-- Both customers' trees stay locked to the end of the transaction: the cycle and
	-- daily-limit rules read them, and at most one accepted referral is inserted.
	SELECT t.a_member, t.b_member INTO trees
	  FROM referral._lock_trees(c.tenant, c.customer, redeem.customer) t;
	referrer_m := trees.a_member;
	referee_m := trees.b_member;

	SELECT * INTO existing FROM referral.referral r
	 WHERE r.tenant = c.tenant AND r.referee = redeem.customer AND r.status <> 'rejected';
	IF FOUND THEN
		RETURN QUERY SELECT existing.id, existing.status,
			CASE WHEN existing.code OPERATOR(referral.<>) c.code THEN 'already_referred' END;
		RETURN;
	END IF;

	IF redeem.at < p.starts_at OR redeem.at >= p.ends_at THEN
		rule := 'program_inactive';
	ELSIF redeem.customer = c.customer
	   OR email_h = c.email_hash
	   OR device_h = c.device_hash THEN
		rule := 'self_referral';
	ELSIF referee_m.id = ANY (referrer_m.path) THEN
		rule := 'cycle';
	ELSIF referral._has_orders(c.tenant, redeem.customer) THEN
		rule := 'existing_customer';
	ELSIF p.daily_referral_limit IS NOT NULL THEN
		day_start := date_trunc('day', redeem.at);
		IF (SELECT count(*) FROM referral.referral r
		     WHERE r.tenant = c.tenant AND r.referrer = c.customer AND r.program_id = p.id
		       AND r.status <> 'rejected'
		       AND r.created_at >= day_start AND r.created_at < day_start + '1 day'::interval)
		   >= p.daily_referral_limit THEN
			rule := 'daily_limit';
		END IF;
	END IF;

	new_status := CASE WHEN rule IS NULL THEN 'pending' ELSE 'rejected' END;
	INSERT INTO referral.referral AS r
		(tenant, program_id, referrer, referee, code, status, reason, variant,
		 email_hash, ip_hash, device_hash, created_at)
	VALUES
		(c.tenant, p.id, c.customer, redeem.customer, c.code, new_status, rule,
		 referral.variant_of(p.id, c.customer), email_h, ip_h, device_h, redeem.at)
	RETURNING r.id INTO new_id;

	-- A first order that began after the check above and before this insert saw no
	-- referral; with the pending referral in place, look again (an order still in
	-- progress is waited for, and one that commits makes the referee existing).
	IF rule IS NULL AND referral._has_orders(c.tenant, redeem.customer) THEN
		rule := 'existing_customer';
		new_status := 'rejected';
		UPDATE referral.referral r SET status = new_status, reason = rule WHERE r.id = new_id;
	END IF;

	IF rule IS NULL THEN
		PERFORM referral._attach(referrer_m, referee_m);
	END IF;
	PERFORM referral._emit(c.tenant,
		CASE WHEN rule IS NULL THEN 'referral_created' ELSE 'referral_rejected' END,
		jsonb_build_object('referral_id', new_id, 'program_id', p.id, 'referrer', c.customer,
		                   'referee', redeem.customer, 'code', c.code::text,
		                   'status', new_status, 'reason', rule));
	RETURN QUERY SELECT new_id, new_status, rule;
END
$$;
COMMENT ON FUNCTION referral.redeem(referral.referral_code, text, text, inet, text, timestamptz)
	IS 'redeem a code at sign-up: returns the referral (pending), a rejection with its reason, or the customer''s existing referral';

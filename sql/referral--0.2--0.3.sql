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

-- orders changed after they earned: partial clawbacks of paid rewards, orders that
-- change customer, tenant or id (issue #18, items 5 and 6):
DROP INDEX referral.reward_once_per_order;
-- The referral is in the key because an order that changes customer is attributed to
-- the new customer's referral, whose referrer may be the old one's.
CREATE UNIQUE INDEX reward_once_per_order ON referral.reward
	(tenant, order_source, order_ref, referral_id, beneficiary, level, kind) WHERE kind IN ('referee', 'referrer');
DROP INDEX referral.reward_one_clawback;
-- The clawbacks of a paid reward (no unique key: _claw_back nets them under the paid
-- reward's row lock).
CREATE INDEX reward_clawbacks ON referral.reward (clawback_of) WHERE kind = 'clawback';

-- Claws paid rewards back down to a net (amount plus clawbacks) of `nets` (0: all of
-- it): a clawback (negative, approved, so that the next payout nets it) for each one
-- whose net is above, with its event.  The net is read here, not passed in, so that a
-- second call for the same change claws back nothing: callers hold the rewards' row
-- locks, taken in an earlier statement, so this one's snapshot has every clawback
-- committed before.  The paid reward row is updated too: reversed_at when nothing is
-- left, else the same values, so that a concurrent transaction that locks it after
-- this one commits sees it changed (a serialization failure under REPEATABLE READ)
-- instead of clawing back the same difference again.
CREATE FUNCTION referral._claw_back(reward_ids bigint[], nets numeric[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	clawbacks bigint[];
BEGIN
	WITH due AS (
		SELECT DISTINCT ON (w.id) w.*, GREATEST(x.net, 0) AS target,
		       w.amount + COALESCE((SELECT sum(c.amount) FROM referral.reward c
		                             WHERE c.clawback_of = w.id AND c.kind = 'clawback'), 0) AS net
		  FROM unnest(reward_ids, nets) AS x(id, net)
		  JOIN referral.reward w ON w.id = x.id
		 WHERE w.status = 'paid' AND w.kind <> 'clawback' AND x.net IS NOT NULL
		 ORDER BY w.id, x.net
	), claw AS (
		INSERT INTO referral.reward AS c
			(tenant, program_id, beneficiary, referral_id, order_source, order_ref, level, kind,
			 reward_type, amount, currency, status, approved_at, rule_id, milestone_id, clawback_of)
		SELECT d.tenant, d.program_id, d.beneficiary, d.referral_id, d.order_source, d.order_ref,
		       d.level, 'clawback', d.reward_type, d.target - d.net, d.currency, 'approved', now(),
		       d.rule_id, NULL, d.id
		  FROM due d
		 WHERE d.target < d.net
		 ORDER BY d.id
		RETURNING c.id, c.clawback_of
	), touched AS (
		-- A paid reward stays paid (paid is gross); reversed_at says it was clawed back.
		UPDATE referral.reward w
		   SET reversed_at = CASE WHEN d.target = 0 THEN now() ELSE w.reversed_at END
		  FROM due d
		 WHERE w.id = d.id AND d.target < d.net
	)
	SELECT array_agg(claw.id ORDER BY claw.id) INTO clawbacks FROM claw;
	IF clawbacks IS NOT NULL THEN
		PERFORM referral._emit_rewards('reward_created', clawbacks);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._claw_back(bigint[], numeric[])
	IS 'internal: claw paid rewards back down to a net amount (0: all of it), once';
REVOKE EXECUTE ON FUNCTION referral._claw_back(bigint[], numeric[]) FROM PUBLIC;

-- Reverses rewards: pending and approved ones become reversed; paid ones are clawed
-- back (_claw_back) in full.
CREATE OR REPLACE FUNCTION referral._reverse_rewards(reward_ids bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	reversed bigint[];
	paid bigint[];
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
	SELECT (SELECT array_agg(upd.id) FROM upd),
	       (SELECT array_agg(l.id ORDER BY l.id) FROM locked l WHERE l.status = 'paid')
	  INTO reversed, paid;

	IF reversed IS NOT NULL THEN
		PERFORM referral._emit_rewards('reward_reversed', reversed);
	END IF;
	IF paid IS NOT NULL THEN
		PERFORM referral._claw_back(paid, array_fill(0::numeric, ARRAY[cardinality(paid)]));
	END IF;
END
$$;
COMMENT ON FUNCTION referral._reverse_rewards(bigint[]) IS 'internal: reverse rewards (clawback for paid ones)';

-- Orders that changed customer, keeping their tenant and id (`released`, among
-- `order_refs`), or changed tenant or id (the rest): each is reversed as a refund
-- reverses it.  The released ones are then no longer attributed, so that the paid
-- orders of the same statement (which run after) can attribute them to the new
-- customer's referral; their old rewards keep the order_ref (the new referral's are
-- distinct by referral_id).
CREATE FUNCTION referral._orders_moved(tenant text, source text, order_refs text[], released text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
	PERFORM referral._orders_reversed(tenant, source, order_refs);
	IF released IS NOT NULL THEN
		DELETE FROM referral.attributed_order o
		 WHERE o.tenant = _orders_moved.tenant AND o.order_source = source
		   AND o.order_ref = ANY (released);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._orders_moved(text, text, text[], text[])
	IS 'internal: orders that changed customer, tenant or id: reverse them as refunds, and release those that keep their id for their new customer';
REVOKE EXECUTE ON FUNCTION referral._orders_moved(text, text, text[], text[]) FROM PUBLIC;

-- A paid order's amount changed.  Its rewards follow a lower amount, recomputed with
-- the rule that created them: one not yet paid is lowered (or reversed when it comes
-- to nothing); a paid one is clawed back by the difference (_claw_back), so that its
-- net is what the rule gives now.  A higher amount changes nothing, and a reward
-- lowered or clawed back is never raised again: it may have been cut to the budget or
-- cap, and raising it would need the same checks as a new reward.
CREATE OR REPLACE FUNCTION referral._order_amount_changed(tenant text, source text, order_ref text, amount numeric)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	changed bigint[];
	vanished bigint[];
	paid bigint[];
	paid_nets numeric[];
BEGIN
	UPDATE referral.attributed_order o SET amount = _order_amount_changed.amount
	 WHERE o.tenant = _order_amount_changed.tenant AND o.order_source = source
	   AND o.order_ref = _order_amount_changed.order_ref AND o.reversed_at IS NULL;
	WITH recomputed AS (
		SELECT w.id, w.status, w.amount AS old_amount,
		       referral.reward_amount(_order_amount_changed.amount, r.percent, r.fixed, r.cap, w.currency) AS new_amount
		  FROM referral.reward w
		  JOIN referral.reward_rule r ON r.id = w.rule_id
		 WHERE w.tenant = _order_amount_changed.tenant AND w.order_source = source
		   AND w.order_ref = _order_amount_changed.order_ref AND w.kind IN ('referee', 'referrer')
		   AND w.status IN ('pending', 'approved', 'paid')
		 ORDER BY w.id
		   FOR UPDATE OF w
	), upd AS (
		UPDATE referral.reward w SET amount = c.new_amount
		  FROM recomputed c
		 WHERE w.id = c.id AND c.status <> 'paid' AND c.new_amount > 0 AND c.new_amount < c.old_amount
		RETURNING w.id
	)
	SELECT (SELECT array_agg(upd.id) FROM upd),
	       (SELECT array_agg(c.id) FROM recomputed c WHERE c.status <> 'paid' AND c.new_amount <= 0),
	       (SELECT array_agg(c.id ORDER BY c.id) FROM recomputed c WHERE c.status = 'paid' AND c.new_amount < c.old_amount),
	       (SELECT array_agg(c.new_amount ORDER BY c.id) FROM recomputed c WHERE c.status = 'paid' AND c.new_amount < c.old_amount)
	  INTO changed, vanished, paid, paid_nets;
	IF changed IS NOT NULL THEN
		PERFORM referral._emit_rewards('reward_changed', changed);
	END IF;
	IF vanished IS NOT NULL THEN
		PERFORM referral._reverse_rewards(vanished);
	END IF;
	IF paid IS NOT NULL THEN
		PERFORM referral._claw_back(paid, paid_nets);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._order_amount_changed(text, text, text, numeric)
	IS 'internal: a paid order''s amount went down: lower its unpaid rewards, claw back the difference of its paid ones';


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

-- audit(), with every check above:
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
	        OR (w.status = 'paid' AND w.amount + COALESCE((SELECT sum(c.amount) FROM referral.reward c
	                                                        WHERE c.clawback_of = w.id AND c.kind = 'clawback'), 0) > 0))
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'clawback_without_reward',
	       format('clawback %s of %s offsets reward %s, which is not a paid reward of %s',
	              c.id, c.amount, c.clawback_of, c.beneficiary)
	  FROM referral.reward c
	  LEFT JOIN referral.reward w ON w.id = c.clawback_of
	 WHERE c.kind = 'clawback' AND (audit.program IS NULL OR c.program_id = audit.program)
	   AND (w.id IS NULL OR w.kind = 'clawback' OR w.status <> 'paid' OR w.beneficiary <> c.beneficiary)
	 ORDER BY c.id;

	-- The clawbacks of a paid reward may offset part of it (its order's amount went
	-- down), or all of it (refunded), never more.
	RETURN QUERY
	SELECT 'clawbacks_exceed_reward',
	       format('the clawbacks of reward %s of %s (%s) offset %s', w.id, w.beneficiary, w.amount, -s.total)
	  FROM referral.reward w
	  JOIN (SELECT c.clawback_of, sum(c.amount) AS total FROM referral.reward c
	         WHERE c.kind = 'clawback' GROUP BY c.clawback_of) s ON s.clawback_of = w.id
	 WHERE w.kind <> 'clawback' AND w.amount + s.total < 0
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	 ORDER BY w.id;

	-- A reward of an order that is not attributed to the reward's referral (it moved
	-- to another customer) must have been reversed or clawed back.  (One whose referral
	-- does not exist is reward_without_referral.)
	RETURN QUERY
	SELECT 'reward_without_order',
	       format('reward %s (%s %s for order %s of %s) is %s although the order is not attributed to its referral %s',
	              w.id, w.kind, w.amount, w.order_ref, w.order_source, w.status, w.referral_id)
	  FROM referral.reward w
	 WHERE w.kind IN ('referee', 'referrer') AND (audit.program IS NULL OR w.program_id = audit.program)
	   AND (w.status IN ('pending', 'approved')
	        OR (w.status = 'paid' AND w.amount + COALESCE((SELECT sum(c.amount) FROM referral.reward c
	                                                        WHERE c.clawback_of = w.id AND c.kind = 'clawback'), 0) > 0))
	   AND EXISTS (SELECT 1 FROM referral.referral r WHERE r.id = w.referral_id)
	   AND NOT EXISTS (SELECT 1 FROM referral.attributed_order o
	                    WHERE o.tenant = w.tenant AND o.order_source = w.order_source
	                      AND o.order_ref = w.order_ref AND o.referral_id = w.referral_id)
	 ORDER BY w.id;

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

	-- A paid reward counts net of its clawbacks: a lower amount of its order claws back
	-- the difference.
	RETURN QUERY
	SELECT 'reward_above_rule',
	       format('reward %s pays %s%s, more than rule %s gives for order %s of %s (%s)',
	              w.id, w.net, CASE WHEN w.status = 'paid' THEN ' net of clawbacks' ELSE '' END,
	              w.rule_id, w.order_ref, o.amount,
	              referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency))
	  FROM (SELECT x.*, x.amount + CASE WHEN x.status = 'paid'
	                                    THEN COALESCE((SELECT sum(c.amount) FROM referral.reward c
	                                                    WHERE c.clawback_of = x.id AND c.kind = 'clawback'), 0)
	                                    ELSE 0 END AS net
	          FROM referral.reward x
	         WHERE x.kind IN ('referee', 'referrer') AND x.status <> 'reversed'
	           AND (audit.program IS NULL OR x.program_id = audit.program)) w
	  JOIN referral.reward_rule rr ON rr.id = w.rule_id
	  JOIN referral.attributed_order o
	    ON o.tenant = w.tenant AND o.order_source = w.order_source AND o.order_ref = w.order_ref
	 WHERE w.net > referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency)
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

-- operations and privacy (void, block, hold suspicious rewards, payout batches, export and erasure):
ALTER TABLE referral.program ADD COLUMN hold_suspicious boolean NOT NULL DEFAULT false;
ALTER TABLE referral.code ADD COLUMN forgotten_variant text;
COMMENT ON COLUMN referral.code.forgotten_variant IS 'the A/B variant the holder had when forgotten (referral.forget): the pseudonym would hash to another one';
ALTER TABLE referral.referral ADD COLUMN voided_at timestamptz, ADD COLUMN released_at timestamptz;
ALTER TABLE referral.referral DROP CONSTRAINT referral_reason_check;
-- The redeem rules' reasons, or an operator's own once voided (void_referral).
ALTER TABLE referral.referral ADD CONSTRAINT referral_reason_check
	CHECK (reason IN ('self_referral', 'cycle', 'existing_customer', 'program_inactive', 'daily_limit', 'blocked')
	       OR (voided_at IS NOT NULL AND reason <> ''));
COMMENT ON COLUMN referral.referral.voided_at IS 'when an operator rejected the accepted referral after the fact (void_referral); reason is then the operator''s';
COMMENT ON COLUMN referral.referral.released_at IS 'when an operator released the rewards that a hold_suspicious program held (release)';

-- create_program gains hold_suspicious: a new signature.
DROP FUNCTION referral.create_program(text, text, timestamptz, timestamptz, interval, interval, numeric, interval, int, text, numeric, numeric, int);
CREATE FUNCTION referral.create_program(
	name text,
	tenant text DEFAULT 'default',
	starts_at timestamptz DEFAULT pg_catalog.now(),
	ends_at timestamptz DEFAULT NULL,
	attribution_window interval DEFAULT '30 days',
	hold_period interval DEFAULT '30 days',
	min_order_amount numeric DEFAULT 0,
	recurring_window interval DEFAULT NULL,
	max_depth int DEFAULT 1,
	currency text DEFAULT 'USD',
	budget numeric DEFAULT NULL,
	referrer_cap numeric DEFAULT NULL,
	daily_referral_limit int DEFAULT NULL,
	hold_suspicious boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	new_id bigint;
BEGIN
	PERFORM referral._require(NULLIF(btrim(name), '') IS NOT NULL, 'program name must not be empty');
	PERFORM referral._require(NULLIF(btrim(tenant), '') IS NOT NULL, 'tenant must not be empty');
	PERFORM referral._require_finite(ARRAY['min_order_amount', 'budget', 'referrer_cap'],
		ARRAY[min_order_amount, budget, referrer_cap]);
	PERFORM referral._require(starts_at IS NOT NULL AND isfinite(starts_at), 'starts_at must be a finite time');
	PERFORM referral._require(ends_at IS NULL OR ends_at > starts_at,
		format('program ends (%s) before it starts (%s)', ends_at, starts_at),
		'ends_at must be later than starts_at, or NULL for no end.');
	PERFORM referral._require(attribution_window >= '0'::interval,
		format('attribution_window must not be negative (got %s)', COALESCE(attribution_window::text, 'NULL')));
	PERFORM referral._require(hold_period >= '0'::interval,
		format('hold_period must not be negative (got %s)', COALESCE(hold_period::text, 'NULL')));
	PERFORM referral._require(recurring_window IS NULL OR recurring_window >= '0'::interval,
		format('recurring_window must not be negative (got %s)', recurring_window));
	PERFORM referral._require(min_order_amount >= 0,
		format('min_order_amount must not be negative (got %s)', COALESCE(min_order_amount::text, 'NULL')));
	PERFORM referral._require(max_depth BETWEEN 1 AND 10,
		format('max_depth must be between 1 and 10 (got %s)', COALESCE(max_depth::text, 'NULL')));
	PERFORM referral._require(currency ~ '^[A-Z]{3}$',
		format('currency must be an ISO 4217 code of three upper-case letters (got %L)', currency));
	PERFORM referral._require(budget IS NULL OR budget >= 0,
		format('budget must not be negative (got %s)', budget));
	PERFORM referral._require(referrer_cap IS NULL OR referrer_cap >= 0,
		format('referrer_cap must not be negative (got %s)', referrer_cap));
	PERFORM referral._require(daily_referral_limit IS NULL OR daily_referral_limit > 0,
		format('daily_referral_limit must be positive (got %s)', daily_referral_limit));
	PERFORM referral._require(hold_suspicious IS NOT NULL, 'hold_suspicious must not be NULL');

	INSERT INTO referral.program AS p
		(tenant, name, starts_at, ends_at, attribution_window, hold_period, min_order_amount,
		 recurring_window, max_depth, currency, budget, referrer_cap, daily_referral_limit,
		 hold_suspicious)
	VALUES
		(create_program.tenant, create_program.name, create_program.starts_at,
		 create_program.ends_at, create_program.attribution_window, create_program.hold_period,
		 create_program.min_order_amount, create_program.recurring_window,
		 create_program.max_depth, create_program.currency, create_program.budget,
		 create_program.referrer_cap, create_program.daily_referral_limit,
		 create_program.hold_suspicious)
	ON CONFLICT ON CONSTRAINT program_tenant_name_key DO NOTHING
	RETURNING p.id INTO new_id;
	IF new_id IS NULL THEN
		RAISE EXCEPTION 'program "%" already exists in tenant "%"', name, tenant
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Program names are unique per tenant.';
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral.create_program(text, text, timestamptz, timestamptz, interval, interval, numeric, interval, int, text, numeric, numeric, int, boolean)
	IS 'create a referral program and return its id (hold_suspicious: approve_due holds the rewards of suspicious referrals until released)';
REVOKE ALL ON FUNCTION referral.create_program(text, text, timestamptz, timestamptz, interval, interval, numeric, interval, int, text, numeric, numeric, int, boolean) FROM PUBLIC;


-- Blocked customers: their codes are refused at redeem, their rewards stay pending.
CREATE TABLE referral.block (
	tenant		text NOT NULL,
	customer	text NOT NULL,
	reason		text NOT NULL CHECK (reason <> ''),
	blocked_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, customer)
);
COMMENT ON TABLE referral.block IS 'blocked customers (referral.block): refused at redeem, rewards held pending';
SELECT pg_catalog.pg_extension_config_dump('referral.block', '');

CREATE VIEW referral.blocked AS
SELECT b.tenant, b.customer, b.reason, b.blocked_at FROM referral.block b;
COMMENT ON VIEW referral.blocked IS 'customers blocked by an operator, with the reason and when';

-- Customers erased by forget(): the pseudonym that replaced the key, and the key's
-- keyed hash, by which audit() recognises the orders of a forgotten customer.
CREATE TABLE referral.forgotten (
	tenant			text NOT NULL,
	pseudonym		text NOT NULL,
	key_hash		bytea NOT NULL,
	forgotten_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, pseudonym)
);
CREATE INDEX forgotten_key_hash ON referral.forgotten (tenant, key_hash);
COMMENT ON TABLE referral.forgotten IS 'customers erased by referral.forget: pseudonym and keyed hash of the old key (never the key)';
SELECT pg_catalog.pg_extension_config_dump('referral.forgotten', '');

-- The text a customer key is hashed from: the tenant, length-prefixed so that no
-- (tenant, key) pair reads as another.
CREATE FUNCTION referral._customer_ref(tenant text, customer text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
	SELECT pg_catalog.octet_length(tenant)::text || ':' || tenant || ':' || customer
$$;
COMMENT ON FUNCTION referral._customer_ref(text, text) IS 'internal: tenant and customer key as one text, for the keyed hash of a forgotten key';

CREATE FUNCTION referral.grant_operator(role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE format('GRANT USAGE ON SCHEMA referral TO %s', role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION
		referral.approve_due(timestamptz),
		referral.mark_paid(bigint[], text),
		referral.void_referral(bigint, text),
		referral.block(text, text, text),
		referral.unblock(text, text),
		referral.release(bigint),
		referral.payout_batch(text, numeric, text, text),
		referral.export(text, text),
		referral.forget(text, text),
		referral.audit(bigint)
		TO %s', role);
	EXECUTE format('GRANT SELECT ON referral.blocked, referral.suspicious_referrals TO %s', role);
END
$$;
COMMENT ON FUNCTION referral.grant_operator(regrole)
	IS 'grant a role what operations need: approve_due, mark_paid, void_referral, block, unblock, release, payout_batch, export, forget, audit, and the blocked and suspicious_referrals views';

-- SQLSTATE RF004 naming an unknown referral id.
CREATE FUNCTION referral._no_referral(referral_id bigint)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	RAISE EXCEPTION 'referral % does not exist', COALESCE(referral_id::text, 'NULL')
		USING ERRCODE = 'RF004', HINT = 'Referral ids are in referral.referral.';
END
$$;
COMMENT ON FUNCTION referral._no_referral(bigint) IS 'internal: raise RF004 naming an unknown referral id';

-- Raises 22023 unless an operator's reason is given and short.
CREATE FUNCTION referral._check_reason(reason text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	PERFORM referral._require(NULLIF(btrim(reason), '') IS NOT NULL, 'reason must not be empty');
	PERFORM referral._require(char_length(reason) <= 200,
		format('reason is too long (%s characters, at most 200)', char_length(reason)));
END
$$;
COMMENT ON FUNCTION referral._check_reason(text) IS 'internal: reject an empty or oversized operator reason';

-- Takes the member `child` (and its subtree) from below its parent: it becomes a
-- root.  Callers hold its tree's lock.
CREATE FUNCTION referral._detach(child referral.member)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	IF cardinality(child.path) = 1 THEN
		RETURN;
	END IF;
	UPDATE referral.member x
	   SET path = x.path[cardinality(child.path):],
	       ancestors = x.ancestors[1:cardinality(x.ancestors) - cardinality(child.ancestors)]
	 WHERE x.path >= child.path
	   AND x.path < child.path || 9223372036854775807::bigint;
END
$$;
COMMENT ON FUNCTION referral._detach(referral.member) IS 'internal: take a member and its subtree from below its parent (the inverse of _attach)';

CREATE FUNCTION referral.void_referral(referral_id bigint, reason text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r referral.referral;
	trees record;
	to_reverse bigint[];
	changed bigint;
BEGIN
	PERFORM referral._check_reason(reason);
	-- The referral first, as the order triggers lock it: an order of the referee
	-- waits, and then sees it rejected.
	SELECT * INTO r FROM referral.referral x WHERE x.id = void_referral.referral_id FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM referral._no_referral(void_referral.referral_id);
	END IF;
	IF r.status = 'rejected' THEN
		RAISE EXCEPTION 'referral % is already rejected (%)', r.id, r.reason
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Only accepted (pending or converted) referrals can be voided.';
	END IF;

	-- Its chain link goes: the referee (and whoever they referred) becomes a root.
	SELECT t.a_member, t.b_member INTO trees FROM referral._lock_trees(r.tenant, r.referrer, r.referee) t;
	IF (trees.b_member).path[cardinality((trees.b_member).path) - 1] = (trees.a_member).id THEN
		PERFORM referral._detach(trees.b_member);
	END IF;

	-- Its rewards, as a refund reverses them: pending and approved ones reversed,
	-- paid ones clawed back (those not clawed back in full yet count).
	SELECT array_agg(w.id ORDER BY w.id),
	       count(*) FILTER (WHERE w.status IN ('pending', 'approved')
	                           OR (w.status = 'paid' AND w.amount + COALESCE(
	                                   (SELECT sum(c.amount) FROM referral.reward c
	                                     WHERE c.clawback_of = w.id AND c.kind = 'clawback'), 0) > 0))
	  INTO to_reverse, changed
	  FROM referral.reward w
	 WHERE w.referral_id = r.id AND w.kind <> 'clawback' AND w.status <> 'reversed';
	IF to_reverse IS NOT NULL THEN
		PERFORM referral._reverse_rewards(to_reverse);
	END IF;
	UPDATE referral.attributed_order o SET reversed_at = now()
	 WHERE o.referral_id = r.id AND o.reversed_at IS NULL;

	UPDATE referral.referral x
	   SET status = 'rejected', reason = void_referral.reason, voided_at = now(),
	       converted_at = NULL, converting_source = NULL, converting_order = NULL
	 WHERE x.id = r.id;
	PERFORM referral._emit(r.tenant, 'referral_voided',
		jsonb_build_object('referral_id', r.id, 'program_id', r.program_id, 'referrer', r.referrer,
		                   'referee', r.referee, 'reason', void_referral.reason,
		                   'rewards_changed', COALESCE(changed, 0)));
	RETURN COALESCE(changed, 0);
END
$$;
COMMENT ON FUNCTION referral.void_referral(bigint, text)
	IS 'reject an accepted referral after the fact: its rewards reversed (paid ones clawed back), its chain link removed; returns how many rewards changed';

CREATE FUNCTION referral.block(customer text, reason text, tenant text DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM referral._check_customer(customer);
	PERFORM referral._require(NULLIF(btrim(tenant), '') IS NOT NULL, 'tenant must not be empty');
	PERFORM referral._check_reason(reason);
	INSERT INTO referral.block AS b (tenant, customer, reason)
	VALUES (block.tenant, block.customer, block.reason)
	ON CONFLICT ON CONSTRAINT block_pkey DO UPDATE SET reason = excluded.reason;
	PERFORM referral._emit(block.tenant, 'customer_blocked',
		jsonb_build_object('customer', block.customer, 'reason', block.reason));
END
$$;
COMMENT ON FUNCTION referral.block(text, text, text)
	IS 'block a customer: their codes are refused at redeem (reason blocked) and approve_due leaves their rewards pending';

CREATE FUNCTION referral.unblock(customer text, tenant text DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM referral.block b WHERE b.tenant = unblock.tenant AND b.customer = unblock.customer;
	IF FOUND THEN
		PERFORM referral._emit(unblock.tenant, 'customer_unblocked',
			jsonb_build_object('customer', unblock.customer));
	END IF;
END
$$;
COMMENT ON FUNCTION referral.unblock(text, text)
	IS 'unblock a customer (nothing happens for one not blocked)';

-- The suspicious referrals that approve_due holds: those of programs with
-- hold_suspicious, not released.
CREATE FUNCTION referral._held_referrals()
RETURNS bigint[]
LANGUAGE sql STABLE
AS $$
	SELECT COALESCE(array_agg(DISTINCT s.referral_id), '{}')
	  FROM referral.suspicious_referrals s
	  JOIN referral.program p ON p.id = s.program_id
	  JOIN referral.referral r ON r.id = s.referral_id
	 WHERE p.hold_suspicious AND r.released_at IS NULL
$$;
COMMENT ON FUNCTION referral._held_referrals() IS 'internal: ids of the suspicious referrals whose rewards approve_due holds';

CREATE FUNCTION referral.release(referral_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r referral.referral;
	freed bigint := 0;
BEGIN
	SELECT * INTO r FROM referral.referral x WHERE x.id = release.referral_id FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM referral._no_referral(release.referral_id);
	END IF;
	IF r.released_at IS NOT NULL THEN
		RETURN 0;
	END IF;
	IF r.id = ANY (referral._held_referrals()) THEN
		SELECT count(*) INTO freed FROM referral.reward w
		 WHERE w.referral_id = r.id AND w.status = 'pending';
	END IF;
	UPDATE referral.referral x SET released_at = now() WHERE x.id = r.id;
	PERFORM referral._emit(r.tenant, 'referral_released',
		jsonb_build_object('referral_id', r.id, 'program_id', r.program_id, 'referrer', r.referrer,
		                   'referee', r.referee, 'rewards_freed', freed));
	RETURN freed;
END
$$;
COMMENT ON FUNCTION referral.release(bigint)
	IS 'release a suspicious referral that its program holds: approve_due treats its rewards as usual from now on; returns how many pending rewards it freed';

CREATE FUNCTION referral.payout_batch(currency text, min_amount numeric DEFAULT 0,
	reward_type text DEFAULT 'cash', tenant text DEFAULT 'default')
RETURNS TABLE (beneficiary text, amount numeric, reward_ids bigint[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM referral._require(currency ~ '^[A-Z]{3}$',
		format('currency must be an ISO 4217 code of three upper-case letters (got %L)', left(currency, 20)));
	PERFORM referral._require_finite(ARRAY['min_amount'], ARRAY[min_amount]);
	PERFORM referral._require(min_amount >= 0,
		format('min_amount must not be negative (got %s)', COALESCE(min_amount::text, 'NULL')));
	PERFORM referral._require(reward_type IN ('credit', 'discount', 'cash', 'points', 'product'),
		format('unknown reward_type %L', left(reward_type, 20)),
		'reward_type is one of credit, discount, cash, points, product.');
	RETURN QUERY
	SELECT w.beneficiary, sum(w.amount), array_agg(w.id ORDER BY w.id)
	  FROM referral.reward w
	 WHERE w.tenant = payout_batch.tenant AND w.currency = payout_batch.currency
	   AND w.reward_type = payout_batch.reward_type AND w.status = 'approved'
	   AND NOT EXISTS (SELECT 1 FROM referral.block b
	                    WHERE b.tenant = w.tenant AND b.customer = w.beneficiary)
	 GROUP BY w.beneficiary
	HAVING sum(w.amount) > 0 AND sum(w.amount) >= payout_batch.min_amount
	 ORDER BY w.beneficiary;
END
$$;
COMMENT ON FUNCTION referral.payout_batch(text, numeric, text, text)
	IS 'per beneficiary, the approved rewards of a type and currency (clawbacks netted) whose positive total reaches min_amount, blocked customers left out; reads only';

-- Events that name a customer, in any of the payload fields that hold customer keys.
CREATE FUNCTION referral._names_customer(payload jsonb, customer text)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
	SELECT payload->>'referrer' = customer OR payload->>'referee' = customer
	    OR payload->>'beneficiary' = customer OR payload->>'customer' = customer
$$;
COMMENT ON FUNCTION referral._names_customer(jsonb, text) IS 'internal: whether an event payload names the customer (referrer, referee, beneficiary or customer)';

CREATE FUNCTION referral.export(customer text, tenant text DEFAULT 'default')
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	PERFORM referral._check_customer(export.customer);
	RETURN jsonb_build_object(
		'tenant', export.tenant,
		'customer', export.customer,
		'codes', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('code', c.code::text, 'program_id', c.program_id,
			                                    'program', p.name, 'vanity', c.vanity,
			                                    'email_fingerprint', c.email_hash IS NOT NULL,
			                                    'device_fingerprint', c.device_hash IS NOT NULL,
			                                    'created_at', c.created_at) ORDER BY c.created_at, c.code::text)
			  FROM referral.code c JOIN referral.program p ON p.id = c.program_id
			 WHERE c.tenant = export.tenant AND c.customer = export.customer), '[]'),
		'clicks', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('id', k.id, 'code', k.code::text, 'channel', k.channel,
			                                    'user_agent', k.user_agent, 'at', k.at) ORDER BY k.id)
			  FROM referral.click k
			  JOIN referral.code c ON c.code OPERATOR(referral.=) k.code
			 WHERE c.tenant = export.tenant AND c.customer = export.customer), '[]'),
		'referrals_as_referrer', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('id', r.id, 'program_id', r.program_id, 'referee', r.referee,
			                                    'code', r.code::text, 'status', r.status, 'reason', r.reason,
			                                    'variant', r.variant, 'created_at', r.created_at,
			                                    'converted_at', r.converted_at) ORDER BY r.id)
			  FROM referral.referral r
			 WHERE r.tenant = export.tenant AND r.referrer = export.customer), '[]'),
		'referrals_as_referee', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('id', r.id, 'program_id', r.program_id, 'referrer', r.referrer,
			                                    'code', r.code::text, 'status', r.status, 'reason', r.reason,
			                                    'variant', r.variant, 'created_at', r.created_at,
			                                    'converted_at', r.converted_at,
			                                    'email_fingerprint', r.email_hash IS NOT NULL,
			                                    'ip_fingerprint', r.ip_hash IS NOT NULL,
			                                    'device_fingerprint', r.device_hash IS NOT NULL) ORDER BY r.id)
			  FROM referral.referral r
			 WHERE r.tenant = export.tenant AND r.referee = export.customer), '[]'),
		'rewards', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('id', w.id, 'program_id', w.program_id,
			                                    'referral_id', w.referral_id, 'order_ref', w.order_ref,
			                                    'level', w.level, 'kind', w.kind, 'reward_type', w.reward_type,
			                                    'amount', w.amount, 'currency', w.currency, 'status', w.status,
			                                    'created_at', w.created_at, 'approved_at', w.approved_at,
			                                    'paid_at', w.paid_at, 'payout_ref', w.payout_ref) ORDER BY w.id)
			  FROM referral.reward w
			 WHERE w.tenant = export.tenant AND w.beneficiary = export.customer), '[]'),
		'blocked', (SELECT jsonb_build_object('reason', b.reason, 'blocked_at', b.blocked_at)
		              FROM referral.block b
		             WHERE b.tenant = export.tenant AND b.customer = export.customer),
		'events', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('id', e.id, 'at', e.at, 'kind', e.kind, 'payload', e.payload)
			                 ORDER BY e.id)
			  FROM referral.event e
			 WHERE e.tenant = export.tenant AND referral._names_customer(e.payload, export.customer)), '[]'));
END
$$;
COMMENT ON FUNCTION referral.export(text, text)
	IS 'everything referral holds about one customer (codes, clicks on them, referrals both ways, rewards, block, events naming them), for an access request; fingerprints only as whether one is held';

CREATE FUNCTION referral.forget(customer text, tenant text DEFAULT 'default')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
	hashed bytea;
	pseudo text;
	m referral.member;
	changed bigint := 0;
	n bigint;
BEGIN
	PERFORM referral._check_customer(forget.customer);
	PERFORM referral._require(NULLIF(btrim(forget.tenant), '') IS NOT NULL, 'tenant must not be empty');
	hashed := referral._fingerprint((referral._secret()).fingerprint_key, 'customer',
	                                  referral._customer_ref(forget.tenant, forget.customer));
	-- A customer forgotten before who came back gets a pseudonym of its own, so
	-- that the rows of both lives never collide in a unique key.
	pseudo := 'forgotten-' || encode(substr(hashed, 1, 16), 'hex')
	             || COALESCE('-' || NULLIF((SELECT count(*) + 1 FROM referral.forgotten f
	                                         WHERE f.tenant = forget.tenant AND f.key_hash = hashed), 1)::text, '');

	-- Locks, in the order redeem and the order triggers take them: the customer's
	-- chain tree (redeem), their referrals both ways, then the codes of the customer
	-- and of their downline (a conversion below them locks its referrer's code
	-- before it reads the upline that pays them).  Every statement after sees what
	-- a transaction we waited for wrote.
	SELECT * INTO m FROM referral.member x WHERE x.tenant = forget.tenant AND x.customer = forget.customer;
	IF FOUND THEN
		PERFORM referral._lock_trees(forget.tenant, forget.customer, forget.customer);
		SELECT * INTO STRICT m FROM referral.member x WHERE x.id = m.id;
	END IF;
	PERFORM 1 FROM referral.referral r
	 WHERE r.tenant = forget.tenant AND (r.referee = forget.customer OR r.referrer = forget.customer)
	 ORDER BY r.id FOR UPDATE;
	PERFORM 1 FROM referral.code c
	 WHERE c.tenant = forget.tenant
	   AND (c.customer = forget.customer
	        OR (m.id IS NOT NULL AND c.customer IN (
	            SELECT x.customer FROM referral.member x
	             WHERE x.path > m.path AND x.path < m.path || 9223372036854775807::bigint
	               AND x.tenant = forget.tenant)))
	 ORDER BY c.code FOR UPDATE;
	PERFORM 1 FROM referral.reward w
	 WHERE w.tenant = forget.tenant AND w.beneficiary = forget.customer
	 ORDER BY w.id FOR UPDATE;

	-- Clicks on their codes lose their user agents; then the codes lose the key
	-- and the fingerprints, keeping the variant the key hashed to.
	UPDATE referral.click k SET user_agent = NULL
	  FROM referral.code c
	 WHERE c.tenant = forget.tenant AND c.customer = forget.customer
	   AND k.code OPERATOR(referral.=) c.code AND k.user_agent IS NOT NULL;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
	UPDATE referral.code c
	   SET customer = pseudo, email_hash = NULL, device_hash = NULL,
	       forgotten_variant = COALESCE(c.forgotten_variant, referral.variant_of(c.program_id, c.customer))
	 WHERE c.tenant = forget.tenant AND c.customer = forget.customer;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	UPDATE referral.referral r
	   SET referrer = CASE WHEN r.referrer = forget.customer THEN pseudo ELSE r.referrer END,
	       referee = CASE WHEN r.referee = forget.customer THEN pseudo ELSE r.referee END,
	       email_hash = CASE WHEN r.referee = forget.customer THEN NULL ELSE r.email_hash END,
	       ip_hash = CASE WHEN r.referee = forget.customer THEN NULL ELSE r.ip_hash END,
	       device_hash = CASE WHEN r.referee = forget.customer THEN NULL ELSE r.device_hash END
	 WHERE r.tenant = forget.tenant AND (r.referee = forget.customer OR r.referrer = forget.customer);
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	UPDATE referral.reward w SET beneficiary = pseudo
	 WHERE w.tenant = forget.tenant AND w.beneficiary = forget.customer;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	IF m.id IS NOT NULL THEN
		UPDATE referral.member x
		   SET customer = CASE WHEN x.id = m.id THEN pseudo ELSE x.customer END,
		       ancestors = array_replace(x.ancestors, forget.customer, pseudo)
		 WHERE x.path >= m.path AND x.path < m.path || 9223372036854775807::bigint;
		GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
	END IF;

	UPDATE referral.block b SET customer = pseudo
	 WHERE b.tenant = forget.tenant AND b.customer = forget.customer;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	UPDATE referral.event e
	   SET payload = (SELECT jsonb_object_agg(f.key, CASE WHEN f.value = to_jsonb(forget.customer)
	                                                      THEN to_jsonb(pseudo) ELSE f.value END)
	                    FROM jsonb_each(e.payload) f)
	 WHERE e.tenant = forget.tenant AND referral._names_customer(e.payload, forget.customer);
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	IF changed = 0 THEN
		RETURN 0;	-- nothing held about this key (or forgotten already)
	END IF;
	INSERT INTO referral.forgotten (tenant, pseudonym, key_hash)
	VALUES (forget.tenant, pseudo, hashed);
	-- The pseudonym's codes earn nothing more: refused at redeem, rewards held.
	INSERT INTO referral.block AS b (tenant, customer, reason)
	VALUES (forget.tenant, pseudo, 'forgotten')
	ON CONFLICT ON CONSTRAINT block_pkey DO NOTHING;
	PERFORM referral._emit(forget.tenant, 'customer_forgotten',
		jsonb_build_object('pseudonym', pseudo, 'rows_changed', changed));
	RETURN changed;
END
$$;
COMMENT ON FUNCTION referral.forget(text, text)
	IS 'erase a customer: the key replaced everywhere by a pseudonym derived from the database secret, fingerprints deleted, sums and chains kept; returns the rows changed (0 when nothing is held)';

CREATE OR REPLACE VIEW referral._code_variant AS
SELECT c.tenant, c.program_id, c.customer, c.code, COALESCE(c.forgotten_variant, s.name) AS variant
  FROM (SELECT k.tenant, k.program_id, k.customer, k.code, k.forgotten_variant,
               -- no hashing in programs without variants, nor for a forgotten holder
               CASE WHEN t.total IS NOT NULL AND k.forgotten_variant IS NULL
                    THEN ('x' || pg_catalog.substr(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                              k.program_id::text || ':' || k.customer, 'UTF8')), 'hex'), 1, 15))::bit(60)::bigint
                         % t.total
               END AS slot
          FROM referral.code k
          LEFT JOIN (SELECT v.program_id, pg_catalog.sum(v.weight) AS total
                       FROM referral.variant v
                      GROUP BY v.program_id) t ON t.program_id = k.program_id) c
  LEFT JOIN (SELECT v.program_id, v.name, v.weight,
                    pg_catalog.sum(v.weight) OVER (PARTITION BY v.program_id ORDER BY v.id) AS upto
               FROM referral.variant v) s
    ON s.program_id = c.program_id AND c.slot >= s.upto - s.weight AND c.slot < s.upto;

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

	-- A customer forgotten (referral.forget) while we waited for the trees: the code
	-- or a member now names the pseudonym.  Going on would write the old key again.
	IF referrer_m.customer <> c.customer OR referee_m.customer <> redeem.customer
	   OR NOT EXISTS (SELECT 1 FROM referral.code k
	                   WHERE k.code OPERATOR(referral.=) c.code AND k.customer = c.customer) THEN
		RAISE EXCEPTION 'a customer of this redeem was forgotten concurrently'
			USING ERRCODE = 'serialization_failure', HINT = 'Retry the transaction.';
	END IF;

	SELECT * INTO existing FROM referral.referral r
	 WHERE r.tenant = c.tenant AND r.referee = redeem.customer AND r.status <> 'rejected';
	IF FOUND THEN
		RETURN QUERY SELECT existing.id, existing.status,
			CASE WHEN existing.code OPERATOR(referral.<>) c.code THEN 'already_referred' END;
		RETURN;
	END IF;

	IF EXISTS (SELECT 1 FROM referral.block b
	            WHERE b.tenant = c.tenant AND b.customer IN (c.customer, redeem.customer)) THEN
		rule := 'blocked';
	ELSIF redeem.at < p.starts_at OR redeem.at >= p.ends_at THEN
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

CREATE OR REPLACE FUNCTION referral.approve_due(at timestamptz DEFAULT pg_catalog.now())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	approved bigint[];
	held bigint[] := '{}';
BEGIN
	PERFORM referral._require(at IS NOT NULL, 'at must not be NULL');
	-- Held: the rewards of blocked beneficiaries, and of suspicious referrals not
	-- released in programs that hold them (the view is read only when one does).
	IF EXISTS (SELECT 1 FROM referral.program p WHERE p.hold_suspicious) THEN
		held := referral._held_referrals();
	END IF;
	WITH due AS (
		SELECT w.id FROM referral.reward w
		  JOIN referral.program p ON p.id = w.program_id
		 WHERE w.status = 'pending' AND w.created_at + p.hold_period < approve_due.at
		   AND w.referral_id <> ALL (held)
		   AND NOT EXISTS (SELECT 1 FROM referral.block b
		                    WHERE b.tenant = w.tenant AND b.customer = w.beneficiary)
		 ORDER BY w.id
		   FOR UPDATE OF w SKIP LOCKED
	), upd AS (
		UPDATE referral.reward w SET status = 'approved', approved_at = approve_due.at
		  FROM due WHERE w.id = due.id AND w.status = 'pending'
		RETURNING w.id
	)
	SELECT array_agg(upd.id) INTO approved FROM upd;
	IF approved IS NULL THEN
		RETURN 0;
	END IF;
	PERFORM referral._emit_rewards('reward_approved', approved);
	RETURN cardinality(approved);
END
$$;
COMMENT ON FUNCTION referral.approve_due(timestamptz)
	IS 'approve pending rewards whose hold period has passed at the given time, except those of blocked customers and of held suspicious referrals; returns how many';

CREATE OR REPLACE FUNCTION referral.audit(program bigint DEFAULT NULL)
RETURNS TABLE (problem text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t record;
	forgotten boolean := EXISTS (SELECT 1 FROM referral.forgotten);
	key bytea;
BEGIN
	IF program IS NOT NULL THEN
		PERFORM referral._program(program);
	END IF;
	IF forgotten THEN
		SELECT s.fingerprint_key INTO key FROM referral.secret s;
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
	        OR (w.status = 'paid' AND w.amount + COALESCE((SELECT sum(c.amount) FROM referral.reward c
	                                                        WHERE c.clawback_of = w.id AND c.kind = 'clawback'), 0) > 0))
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'clawback_without_reward',
	       format('clawback %s of %s offsets reward %s, which is not a paid reward of %s',
	              c.id, c.amount, c.clawback_of, c.beneficiary)
	  FROM referral.reward c
	  LEFT JOIN referral.reward w ON w.id = c.clawback_of
	 WHERE c.kind = 'clawback' AND (audit.program IS NULL OR c.program_id = audit.program)
	   AND (w.id IS NULL OR w.kind = 'clawback' OR w.status <> 'paid' OR w.beneficiary <> c.beneficiary)
	 ORDER BY c.id;

	-- The clawbacks of a paid reward may offset part of it (its order's amount went
	-- down), or all of it (refunded), never more.
	RETURN QUERY
	SELECT 'clawbacks_exceed_reward',
	       format('the clawbacks of reward %s of %s (%s) offset %s', w.id, w.beneficiary, w.amount, -s.total)
	  FROM referral.reward w
	  JOIN (SELECT c.clawback_of, sum(c.amount) AS total FROM referral.reward c
	         WHERE c.kind = 'clawback' GROUP BY c.clawback_of) s ON s.clawback_of = w.id
	 WHERE w.kind <> 'clawback' AND w.amount + s.total < 0
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	 ORDER BY w.id;

	-- A reward of an order that is not attributed to the reward's referral (it moved
	-- to another customer) must have been reversed or clawed back.  (One whose referral
	-- does not exist is reward_without_referral.)
	RETURN QUERY
	SELECT 'reward_without_order',
	       format('reward %s (%s %s for order %s of %s) is %s although the order is not attributed to its referral %s',
	              w.id, w.kind, w.amount, w.order_ref, w.order_source, w.status, w.referral_id)
	  FROM referral.reward w
	 WHERE w.kind IN ('referee', 'referrer') AND (audit.program IS NULL OR w.program_id = audit.program)
	   AND (w.status IN ('pending', 'approved')
	        OR (w.status = 'paid' AND w.amount + COALESCE((SELECT sum(c.amount) FROM referral.reward c
	                                                        WHERE c.clawback_of = w.id AND c.kind = 'clawback'), 0) > 0))
	   AND EXISTS (SELECT 1 FROM referral.referral r WHERE r.id = w.referral_id)
	   AND NOT EXISTS (SELECT 1 FROM referral.attributed_order o
	                    WHERE o.tenant = w.tenant AND o.order_source = w.order_source
	                      AND o.order_ref = w.order_ref AND o.referral_id = w.referral_id)
	 ORDER BY w.id;

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

	-- A paid reward counts net of its clawbacks: a lower amount of its order claws back
	-- the difference.
	RETURN QUERY
	SELECT 'reward_above_rule',
	       format('reward %s pays %s%s, more than rule %s gives for order %s of %s (%s)',
	              w.id, w.net, CASE WHEN w.status = 'paid' THEN ' net of clawbacks' ELSE '' END,
	              w.rule_id, w.order_ref, o.amount,
	              referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency))
	  FROM (SELECT x.*, x.amount + CASE WHEN x.status = 'paid'
	                                    THEN COALESCE((SELECT sum(c.amount) FROM referral.reward c
	                                                    WHERE c.clawback_of = x.id AND c.kind = 'clawback'), 0)
	                                    ELSE 0 END AS net
	          FROM referral.reward x
	         WHERE x.kind IN ('referee', 'referrer') AND x.status <> 'reversed'
	           AND (audit.program IS NULL OR x.program_id = audit.program)) w
	  JOIN referral.reward_rule rr ON rr.id = w.rule_id
	  JOIN referral.attributed_order o
	    ON o.tenant = w.tenant AND o.order_source = w.order_source AND o.order_ref = w.order_ref
	 WHERE w.net > referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency)
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
			   -- The orders of a forgotten customer: the order triggers no longer
			   -- know whose they are (their referral names the pseudonym).
			   AND NOT (forgotten AND (
			            EXISTS (SELECT 1 FROM referral.referral r
			                      JOIN referral.forgotten f ON f.tenant = r.tenant AND f.pseudonym = r.referee
			                     WHERE r.id = o.referral_id)
			            OR (x.customer IS NOT NULL AND EXISTS (
			                SELECT 1 FROM referral.forgotten f
			                 WHERE f.tenant = x.tenant
			                   AND f.key_hash = referral._fingerprint(key, 'customer', referral._customer_ref(x.tenant, x.customer))))))
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

REVOKE ALL ON referral.block, referral.blocked, referral.forgotten FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION referral._customer_ref(text, text), referral.grant_operator(regrole),
	referral._no_referral(bigint), referral._check_reason(text), referral._detach(referral.member),
	referral.void_referral(bigint, text), referral.block(text, text, text), referral.unblock(text, text),
	referral._held_referrals(), referral.release(bigint), referral.payout_batch(text, numeric, text, text),
	referral._names_customer(jsonb, text), referral.export(text, text), referral.forget(text, text)
	FROM PUBLIC;

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

-- checkout: the referee's offer and store credit (offer, use_offer, credit_balance,
-- spend_credit, refund_credit; reward_balance.spent; the reversal frees the offer;
-- audit() checks the spends; grant_app grants the checkout functions):
-- The discount a referee gets on a first order (one offer per program and variant).
CREATE SEQUENCE referral.referee_offer_id_seq;
CREATE TABLE referral.referee_offer (
	tenant				text NOT NULL,
	id					bigint NOT NULL DEFAULT pg_catalog.nextval('referral.referee_offer_id_seq'),
	program_id			bigint NOT NULL,	-- no foreign key: TRUNCATE referral.program stays as it was
	percent				numeric NOT NULL CHECK (percent BETWEEN 0 AND 100),
	fixed				numeric NOT NULL CHECK (fixed >= 0),
	cap					numeric CHECK (cap IS NULL OR cap >= 0),
	min_order_amount	numeric NOT NULL CHECK (min_order_amount >= 0),
	valid_for			interval NOT NULL CHECK (valid_for > '0'::interval),
	variant				text,
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, id),
	CHECK (percent > 0 OR fixed > 0)
);
ALTER SEQUENCE referral.referee_offer_id_seq OWNED BY referral.referee_offer.id;
CREATE UNIQUE INDEX referee_offer_one_per_variant ON referral.referee_offer
	(tenant, program_id, COALESCE(variant, ''));
COMMENT ON TABLE referral.referee_offer IS 'the referee''s first-order discount of a program (fixed + percent of the order, cut to cap), valid for valid_for after the redeem; optional A/B variant';
SELECT pg_catalog.pg_extension_config_dump('referral.referee_offer', '');
SELECT pg_catalog.pg_extension_config_dump('referral.referee_offer_id_seq', '');

-- Offers used, one row per use; restored_at is set when the order that used it was
-- refunded, cancelled or deleted, and the offer is then free again.
CREATE SEQUENCE referral.offer_use_id_seq;
CREATE TABLE referral.offer_use (
	tenant			text NOT NULL,
	id				bigint NOT NULL DEFAULT pg_catalog.nextval('referral.offer_use_id_seq'),
	referral_id		bigint NOT NULL,	-- no foreign key, as for reward (referrals are kept)
	offer_id		bigint NOT NULL,
	customer		text NOT NULL,
	order_ref		text NOT NULL,
	order_amount	numeric NOT NULL,
	discount		numeric NOT NULL CHECK (discount > 0),
	currency		text NOT NULL,
	used_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	restored_at		timestamptz,
	PRIMARY KEY (tenant, id)
);
ALTER SEQUENCE referral.offer_use_id_seq OWNED BY referral.offer_use.id;
-- The offer is used once: two checkouts racing insert one row, the other conflicts.
CREATE UNIQUE INDEX offer_use_once ON referral.offer_use (tenant, referral_id) WHERE restored_at IS NULL;
-- The refund of an order finds its use.
CREATE INDEX offer_use_order ON referral.offer_use (tenant, order_ref);
COMMENT ON TABLE referral.offer_use IS 'referee offers used at checkout, one row per use (order_ref); restored_at set when that order was reversed';
SELECT pg_catalog.pg_extension_config_dump('referral.offer_use', '');
SELECT pg_catalog.pg_extension_config_dump('referral.offer_use_id_seq', '');

-- Store credit spent at checkout: one row per order and credit reward it drew from;
-- refunded_at is set by refund_credit.
CREATE SEQUENCE referral.credit_spend_id_seq;
CREATE TABLE referral.credit_spend (
	tenant			text NOT NULL,
	id				bigint NOT NULL DEFAULT pg_catalog.nextval('referral.credit_spend_id_seq'),
	customer		text NOT NULL,
	order_ref		text NOT NULL,
	reward_id		bigint NOT NULL,	-- no foreign key, as clawback_of (audit() checks it)
	amount			numeric NOT NULL CHECK (amount > 0),
	currency		text NOT NULL,
	spent_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	refunded_at		timestamptz,
	PRIMARY KEY (tenant, id)
);
ALTER SEQUENCE referral.credit_spend_id_seq OWNED BY referral.credit_spend.id;
CREATE UNIQUE INDEX credit_spend_once ON referral.credit_spend (tenant, order_ref, reward_id) WHERE refunded_at IS NULL;
CREATE INDEX credit_spend_customer ON referral.credit_spend (tenant, customer, currency) WHERE refunded_at IS NULL;
CREATE INDEX credit_spend_reward ON referral.credit_spend (reward_id);
COMMENT ON TABLE referral.credit_spend IS 'store credit spent at checkout: one row per order and credit reward drawn from; refunded_at set by refund_credit';
SELECT pg_catalog.pg_extension_config_dump('referral.credit_spend', '');
SELECT pg_catalog.pg_extension_config_dump('referral.credit_spend_id_seq', '');

-- Raises 22023 unless the tenant has a program: a typo in a tenant would otherwise
-- read as "nothing to give".  Called only where nothing was found.
CREATE FUNCTION referral._require_tenant(tenant text)
RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM referral.program p WHERE p.tenant = _require_tenant.tenant) THEN
		RAISE EXCEPTION 'tenant % has no referral program', COALESCE(quote_literal(left(tenant, 40)), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Pass the tenant the program was created in (default ''default'').';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._require_tenant(text) IS 'internal: raise 22023 unless the tenant has a program';

-- Raises 22023 unless an order reference is usable as a key.
CREATE FUNCTION referral._check_order_ref(order_ref text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF NULLIF(btrim(order_ref), '') IS NULL THEN
		RAISE EXCEPTION 'order_ref must not be empty' USING ERRCODE = 'invalid_parameter_value';
	ELSIF octet_length(order_ref) > 1000 THEN
		RAISE EXCEPTION 'order_ref is too long (% bytes, at most 1000)', octet_length(order_ref)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._check_order_ref(text) IS 'internal: reject empty or oversized order references';

-- Raises 22023 unless an amount given at checkout is a finite number, not negative.
CREATE FUNCTION referral._check_amount(name text, amount numeric)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF amount IS NULL OR NOT referral._finite(amount) OR amount < 0 THEN
		RAISE EXCEPTION '% must be a finite number, not negative (got %)', name, COALESCE(amount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._check_amount(text, numeric) IS 'internal: raise 22023 unless an amount is a finite number, not negative';

CREATE FUNCTION referral.add_referee_offer(
	program bigint,
	percent numeric DEFAULT 0,
	fixed numeric DEFAULT 0,
	cap numeric DEFAULT NULL,
	min_order_amount numeric DEFAULT 0,
	valid_for interval DEFAULT '30 days',
	variant text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p referral.program := referral._program(program);
	new_id bigint;
BEGIN
	PERFORM referral._require_finite(ARRAY['percent', 'fixed', 'cap', 'min_order_amount'],
		ARRAY[percent, fixed, cap, min_order_amount]);
	PERFORM referral._require(percent BETWEEN 0 AND 100,
		format('percent must be between 0 and 100 (got %s)', COALESCE(percent::text, 'NULL')));
	PERFORM referral._require(fixed >= 0,
		format('fixed must not be negative (got %s)', COALESCE(fixed::text, 'NULL')));
	PERFORM referral._require(percent > 0 OR fixed > 0,
		'a referee offer needs a positive percent or fixed amount');
	PERFORM referral._require(cap IS NULL OR cap >= 0,
		format('cap must not be negative (got %s)', cap));
	PERFORM referral._require(min_order_amount >= 0,
		format('min_order_amount must not be negative (got %s)', COALESCE(min_order_amount::text, 'NULL')));
	PERFORM referral._require(valid_for > '0'::interval AND isfinite(now() + valid_for),
		format('valid_for must be a positive, finite interval (got %s)', COALESCE(valid_for::text, 'NULL')));
	PERFORM referral._require(variant IS NULL OR EXISTS (
			SELECT 1 FROM referral.variant v WHERE v.program_id = p.id AND v.name = add_referee_offer.variant),
		format('variant %s does not exist in program %s', quote_literal(left(variant, 40)), p.id),
		'Add it first with referral.add_variant().');

	INSERT INTO referral.referee_offer AS o
		(tenant, program_id, percent, fixed, cap, min_order_amount, valid_for, variant)
	VALUES
		(p.tenant, p.id, add_referee_offer.percent, add_referee_offer.fixed, add_referee_offer.cap,
		 add_referee_offer.min_order_amount, add_referee_offer.valid_for, add_referee_offer.variant)
	ON CONFLICT DO NOTHING
	RETURNING o.id INTO new_id;
	IF new_id IS NULL THEN
		RAISE EXCEPTION 'program % already has a referee offer for variant %', p.id, COALESCE(quote_literal(left(variant, 40)), '(none)')
			USING ERRCODE = 'duplicate_object',
			      HINT = 'A program has one referee offer per variant.';
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral.add_referee_offer(bigint, numeric, numeric, numeric, numeric, interval, text)
	IS 'add the referee''s first-order discount to a program (fixed + percent of the order, cut to cap; from min_order_amount; valid for valid_for after the redeem) and return its id';

-- The offer of a referral for an order of this amount, as offer() shows it: no row
-- when the referral's program has no offer for its variant (a variant's own offer
-- first, else the variant-less one); the caller checks expiry and minimum.  The
-- discount never exceeds the order.  Plain SQL returning a set, so that it is inlined
-- into its callers' statements.
CREATE FUNCTION referral._offer_of(r referral.referral, order_amount numeric)
RETURNS TABLE (offer_id bigint, discount numeric, currency text, expires_at timestamptz, min_order_amount numeric)
LANGUAGE sql STABLE
AS $$
	SELECT o.id,
	       LEAST(referral.reward_amount(_offer_of.order_amount, o.percent, o.fixed, o.cap, p.currency),
	             trunc(_offer_of.order_amount, referral.currency_decimals(p.currency))),
	       p.currency, (_offer_of.r).created_at + o.valid_for, o.min_order_amount
	  FROM referral.referee_offer o
	  JOIN referral.program p ON p.id = o.program_id
	 WHERE o.tenant = (_offer_of.r).tenant AND o.program_id = (_offer_of.r).program_id
	   AND (o.variant IS NULL OR o.variant = (_offer_of.r).variant)
	 ORDER BY o.variant IS NULL
	 LIMIT 1
$$;
COMMENT ON FUNCTION referral._offer_of(referral.referral, numeric) IS 'internal: the offer (by variant) of a referral and its discount for an order amount';

CREATE FUNCTION referral.offer(customer text, order_amount numeric, tenant text DEFAULT 'default')
RETURNS TABLE (referral_id bigint, discount numeric, currency text, expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r referral.referral;
BEGIN
	PERFORM referral._check_customer(offer.customer);
	PERFORM referral._check_amount('order_amount', offer.order_amount);
	SELECT * INTO r FROM referral.referral x
	 WHERE x.referee = offer.customer AND x.tenant = offer.tenant AND x.reason IS NULL;
	IF NOT FOUND THEN
		PERFORM referral._require_tenant(offer.tenant);
		RETURN;
	END IF;
	IF r.status <> 'pending' OR EXISTS (
		SELECT 1 FROM referral.offer_use u
		 WHERE u.tenant = r.tenant AND u.referral_id = r.id AND u.restored_at IS NULL) THEN
		RETURN;
	END IF;
	RETURN QUERY
	SELECT r.id, o.discount, o.currency, o.expires_at
	  FROM referral._offer_of(r, offer.order_amount) o
	 WHERE o.expires_at > now() AND offer.order_amount >= o.min_order_amount AND o.discount > 0;
END
$$;
COMMENT ON FUNCTION referral.offer(text, numeric, text)
	IS 'the referee''s discount that the checkout may take off an order of this amount: one row while the pending referral''s offer is unused, unexpired and reached; reads only';

CREATE FUNCTION referral.use_offer(customer text, order_ref text, order_amount numeric, tenant text DEFAULT 'default')
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r referral.referral;
	used_ref text;
	used_discount numeric;
	o record;
	new_discount numeric;
	event_id bigint;
BEGIN
	PERFORM referral._check_customer(customer);
	PERFORM referral._check_order_ref(order_ref);
	PERFORM referral._check_amount('order_amount', order_amount);
	SELECT * INTO r FROM referral.referral x
	 WHERE x.referee = use_offer.customer AND x.tenant = use_offer.tenant AND x.reason IS NULL;
	IF NOT FOUND THEN
		PERFORM referral._require_tenant(use_offer.tenant);
		RETURN 0;
	END IF;

	-- A live use: this order's (a retry) keeps its discount, another order gets 0.
	SELECT u.order_ref, u.discount INTO used_ref, used_discount
	  FROM referral.offer_use u
	 WHERE u.tenant = r.tenant AND u.referral_id = r.id AND u.restored_at IS NULL;
	IF FOUND THEN
		RETURN CASE WHEN used_ref = order_ref THEN used_discount ELSE 0 END;
	END IF;

	-- Pending, or converted by this very order (inserted before this call, in the
	-- same transaction).
	IF NOT (r.status = 'pending'
	        OR (r.status = 'converted' AND r.converting_order = use_offer.order_ref)) THEN
		RETURN 0;
	END IF;
	SELECT x.offer_id, x.discount, x.currency, x.expires_at, x.min_order_amount INTO o
	  FROM referral._offer_of(r, order_amount) x;
	IF NOT FOUND OR o.expires_at <= now() OR order_amount < o.min_order_amount OR o.discount <= 0 THEN
		RETURN 0;
	END IF;

	-- The use and its event in one statement; a concurrent checkout that used the
	-- offer first makes this one conflict on offer_use_once, and then insert nothing.
	WITH u AS (
		INSERT INTO referral.offer_use AS u
			(tenant, referral_id, offer_id, customer, order_ref, order_amount, discount, currency)
		VALUES (r.tenant, r.id, o.offer_id, use_offer.customer, use_offer.order_ref,
		        use_offer.order_amount, o.discount, o.currency)
		ON CONFLICT DO NOTHING
		RETURNING u.discount
	), e AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT r.tenant, 'offer_used',
		       jsonb_build_object('referral_id', r.id, 'program_id', r.program_id, 'offer_id', o.offer_id,
		                          'customer', use_offer.customer, 'order_ref', use_offer.order_ref,
		                          'order_amount', use_offer.order_amount, 'discount', u.discount,
		                          'currency', o.currency)
		  FROM u
		RETURNING e.id
	)
	SELECT u.discount, e.id INTO new_discount, event_id FROM u CROSS JOIN e;
	IF event_id IS NOT NULL THEN
		PERFORM pg_notify('referral_event',
			json_build_object('id', event_id, 'kind', 'offer_used', 'tenant', r.tenant)::text);
		RETURN new_discount;
	END IF;

	-- Lost the race: the winner's use is committed now.
	SELECT u.order_ref, u.discount INTO used_ref, used_discount
	  FROM referral.offer_use u
	 WHERE u.tenant = r.tenant AND u.referral_id = r.id AND u.restored_at IS NULL;
	RETURN CASE WHEN used_ref = order_ref THEN used_discount ELSE 0 END;
END
$$;
COMMENT ON FUNCTION referral.use_offer(text, text, numeric, text)
	IS 'burn the referee''s offer for an order and return the discount (0 when none); the same order_ref again returns the same discount, another order 0';

-- Orders reversed (refunded, cancelled, deleted; called by _orders_reversed with the
-- orders attributed to a referral): the offers they used are free again.
CREATE FUNCTION referral._offers_restored(tenant text, source text, order_refs text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	notified bigint;
BEGIN
	WITH restored AS (
		UPDATE referral.offer_use u SET restored_at = now()
		  FROM referral.attributed_order a
		 WHERE a.tenant = _offers_restored.tenant AND a.order_source = source
		   AND a.order_ref = ANY (order_refs)
		   AND u.tenant = a.tenant AND u.order_ref = a.order_ref AND u.referral_id = a.referral_id
		   AND u.restored_at IS NULL
		RETURNING u.*
	), e AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT u.tenant, 'offer_restored',
		       jsonb_build_object('referral_id', u.referral_id, 'offer_id', u.offer_id,
		                          'customer', u.customer, 'order_ref', u.order_ref,
		                          'discount', u.discount, 'currency', u.currency)
		  FROM restored u ORDER BY u.id
		RETURNING e.id, e.kind, e.tenant
	)
	SELECT count(pg_notify('referral_event', json_build_object('id', e.id, 'kind', e.kind, 'tenant', e.tenant)::text))
	  INTO notified FROM e;
END
$$;
COMMENT ON FUNCTION referral._offers_restored(text, text, text[])
	IS 'internal: orders reversed: the referee offers they used are usable again';

-- The currency a credit call means: the one given, else the tenant's only one.
CREATE FUNCTION referral._credit_currency(tenant text, currency text)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
DECLARE
	currencies text[];
BEGIN
	IF currency IS NOT NULL THEN
		RETURN currency;
	END IF;
	currencies := ARRAY(SELECT DISTINCT p.currency FROM referral.program p
	                     WHERE p.tenant = _credit_currency.tenant ORDER BY 1);
	IF cardinality(currencies) = 1 THEN
		RETURN currencies[1];
	END IF;
	PERFORM referral._require_tenant(tenant);
	RAISE EXCEPTION 'tenant % has programs in several currencies (%)', quote_literal(left(tenant, 40)),
		array_to_string(currencies, ', ')
		USING ERRCODE = 'invalid_parameter_value',
		      HINT = 'Pass the currency.';
END
$$;
COMMENT ON FUNCTION referral._credit_currency(text, text) IS 'internal: the given currency, or the tenant''s only one (22023 when it has several or none)';

-- Approved, unspent credit: approved credit rewards and clawbacks of credit, credit
-- rewards paid by being spent (payout_ref 'credit:...'), less every spend not refunded
-- (also those of a reward reversed or clawed back after it was spent, which the
-- customer owes).
CREATE FUNCTION referral._credit_balance(tenant text, customer text, currency text)
RETURNS numeric
LANGUAGE plpgsql STABLE
AS $$
BEGIN
	RETURN COALESCE((SELECT sum(w.amount) FROM referral.reward w
	                  WHERE w.tenant = _credit_balance.tenant AND w.beneficiary = _credit_balance.customer
	                    AND w.currency = _credit_balance.currency AND w.reward_type = 'credit'
	                    AND (w.status = 'approved'
	                         OR (w.status = 'paid' AND w.payout_ref LIKE 'credit:%'))), 0)
	     - COALESCE((SELECT sum(s.amount) FROM referral.credit_spend s
	                  WHERE s.tenant = _credit_balance.tenant AND s.customer = _credit_balance.customer
	                    AND s.currency = _credit_balance.currency AND s.refunded_at IS NULL), 0);
END
$$;
COMMENT ON FUNCTION referral._credit_balance(text, text, text) IS 'internal: a customer''s approved, unspent credit in a currency';

CREATE FUNCTION referral.credit_balance(customer text, currency text DEFAULT NULL, tenant text DEFAULT 'default')
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM referral._check_customer(customer);
	RETURN referral._credit_balance(tenant, customer, referral._credit_currency(tenant, currency));
END
$$;
COMMENT ON FUNCTION referral.credit_balance(text, text, text)
	IS 'a customer''s spendable store credit: approved, unspent credit rewards, clawbacks of credit included (may be negative), in the currency (NULL: the tenant''s only one)';

CREATE FUNCTION referral.spend_credit(customer text, amount numeric, order_ref text,
	currency text DEFAULT NULL, tenant text DEFAULT 'default')
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cur text;
	spendable bigint[];
	already numeric;
	want numeric;
	spent numeric;
	take_ids bigint[];
	takes numeric[];
	paid bigint[];
	event_id bigint;
BEGIN
	PERFORM referral._check_customer(customer);
	PERFORM referral._check_order_ref(order_ref);
	PERFORM referral._check_amount('amount', amount);
	cur := referral._credit_currency(tenant, currency);

	-- The customer's spendable rewards, locked in id order (as the ledger locks
	-- rewards): concurrent spends of one customer wait here, and each then reads the
	-- spends committed before it.
	spendable := ARRAY(SELECT w.id FROM referral.reward w
	                    WHERE w.tenant = spend_credit.tenant AND w.beneficiary = spend_credit.customer
	                      AND w.currency = cur AND w.reward_type = 'credit'
	                      AND w.status = 'approved' AND w.kind <> 'clawback'
	                    ORDER BY w.id FOR UPDATE);

	-- This order spent before (a retry): the same figure, nothing more.
	SELECT sum(s.amount) INTO already FROM referral.credit_spend s
	 WHERE s.tenant = spend_credit.tenant AND s.order_ref = spend_credit.order_ref
	   AND s.customer = spend_credit.customer AND s.currency = cur AND s.refunded_at IS NULL;
	IF already IS NOT NULL THEN
		RETURN already;
	END IF;
	IF cardinality(spendable) = 0 OR amount = 0 THEN
		IF cardinality(spendable) = 0 AND currency IS NOT NULL THEN
			PERFORM referral._require_tenant(tenant);
		END IF;
		RETURN 0;
	END IF;
	-- In the currency's minor unit, rounded down: never more than asked.
	want := LEAST(trunc(amount, referral.currency_decimals(cur)),
	              GREATEST(referral._credit_balance(tenant, customer, cur), 0));
	IF want = 0 THEN
		RETURN 0;
	END IF;

	-- Oldest approved first, each reward up to what is left of it; a reward spent
	-- whole becomes paid.  The allocation first, then writes by id (index lookups).
	SELECT array_agg(a.id ORDER BY a.id) FILTER (WHERE a.take > 0),
	       array_agg(a.take ORDER BY a.id) FILTER (WHERE a.take > 0),
	       array_agg(a.id ORDER BY a.id) FILTER (WHERE a.take > 0 AND a.take = a.remaining)
	  INTO take_ids, takes, paid
	  FROM (SELECT l.id, l.remaining,
	               LEAST(l.remaining, GREATEST(want - COALESCE(sum(l.remaining) OVER (
	                   ORDER BY l.approved_at, l.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0), 0)) AS take
	          FROM (SELECT w.id, w.approved_at,
	                       w.amount - COALESCE((SELECT sum(s.amount) FROM referral.credit_spend s
	                                             WHERE s.reward_id = w.id AND s.refunded_at IS NULL), 0) AS remaining
	                  FROM referral.reward w
	                 WHERE w.id = ANY (spendable)) l
	         WHERE l.remaining > 0) a;
	IF take_ids IS NULL THEN
		RETURN 0;
	END IF;
	INSERT INTO referral.credit_spend AS s (tenant, customer, order_ref, reward_id, amount, currency)
	SELECT spend_credit.tenant, spend_credit.customer, spend_credit.order_ref, x.id, x.take, cur
	  FROM unnest(take_ids, takes) AS x(id, take);
	IF paid IS NOT NULL THEN
		UPDATE referral.reward w
		   SET status = 'paid', paid_at = now(), payout_ref = 'credit:' || spend_credit.order_ref
		 WHERE w.id = ANY (paid);
	END IF;
	spent := (SELECT sum(x) FROM unnest(takes) x);
	IF spent = 0 THEN
		RETURN 0;
	END IF;
	event_id := referral._emit(tenant, 'credit_spent',
		jsonb_build_object('customer', customer, 'order_ref', order_ref, 'amount', spent,
		                   'currency', cur, 'paid_reward_ids', COALESCE(to_jsonb(paid), '[]'::jsonb)));
	RETURN spent;
END
$$;
COMMENT ON FUNCTION referral.spend_credit(text, numeric, text, text, text)
	IS 'spend at most amount of a customer''s store credit on an order, oldest approved first, never more than the balance; returns what was spent; the same order_ref again returns the same figure';

CREATE FUNCTION referral.refund_credit(order_ref text, tenant text DEFAULT 'default')
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	given_back numeric;
	reopened bigint[];
	spender text;
	cur text;
	event_id bigint;
BEGIN
	PERFORM referral._check_order_ref(order_ref);
	-- The rewards first (id order, as spend_credit locks them), then the spends.
	PERFORM 1 FROM referral.reward w
	 WHERE w.id IN (SELECT s.reward_id FROM referral.credit_spend s
	                 WHERE s.tenant = refund_credit.tenant AND s.order_ref = refund_credit.order_ref
	                   AND s.refunded_at IS NULL)
	 ORDER BY w.id FOR UPDATE;
	WITH refunded AS (
		UPDATE referral.credit_spend s SET refunded_at = now()
		 WHERE s.tenant = refund_credit.tenant AND s.order_ref = refund_credit.order_ref
		   AND s.refunded_at IS NULL
		RETURNING s.reward_id, s.amount, s.customer, s.currency
	), reopen AS (
		-- A reward paid by being spent is spendable again (unless clawed back since:
		-- then the spend given back offsets the clawback in the balance).
		UPDATE referral.reward w SET status = 'approved', paid_at = NULL, payout_ref = NULL
		 WHERE w.id IN (SELECT r.reward_id FROM refunded r)
		   AND w.status = 'paid' AND w.payout_ref LIKE 'credit:%' AND w.reversed_at IS NULL
		RETURNING w.id
	)
	SELECT (SELECT sum(r.amount) FROM refunded r), (SELECT min(r.customer) FROM refunded r),
	       (SELECT min(r.currency) FROM refunded r), (SELECT array_agg(o.id ORDER BY o.id) FROM reopen o)
	  INTO given_back, spender, cur, reopened;
	IF given_back IS NULL THEN
		PERFORM referral._require_tenant(tenant);
		RETURN 0;
	END IF;
	event_id := referral._emit(tenant, 'credit_refunded',
		jsonb_build_object('customer', spender, 'order_ref', order_ref, 'amount', given_back,
		                   'currency', cur, 'reopened_reward_ids', COALESCE(to_jsonb(reopened), '[]'::jsonb)));
	RETURN given_back;
END
$$;
COMMENT ON FUNCTION referral.refund_credit(text, text)
	IS 'give back the store credit an order spent; returns how much (0 when it spent none)';
REVOKE ALL ON TABLE referral.referee_offer, referral.offer_use, referral.credit_spend FROM PUBLIC;
REVOKE ALL ON SEQUENCE referral.referee_offer_id_seq, referral.offer_use_id_seq, referral.credit_spend_id_seq FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
	referral._require_tenant(text),
	referral._check_order_ref(text),
	referral._check_amount(text, numeric),
	referral.add_referee_offer(bigint, numeric, numeric, numeric, numeric, interval, text),
	referral._offer_of(referral.referral, numeric),
	referral.offer(text, numeric, text),
	referral.use_offer(text, text, numeric, text),
	referral._offers_restored(text, text, text[]),
	referral._credit_currency(text, text),
	referral._credit_balance(text, text, text),
	referral.credit_balance(text, text, text),
	referral.spend_credit(text, numeric, text, text, text),
	referral.refund_credit(text, text)
	FROM PUBLIC;

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
	PERFORM referral._offers_restored(_orders_reversed.tenant, source, order_refs);

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

	-- Store credit spent at checkout: never more than a credit reward's amount, and
	-- only from credit rewards of the spender, in their currency, once approved.
	RETURN QUERY
	SELECT CASE WHEN s.total > w.amount THEN 'credit_overspent' ELSE 'credit_spent_wrongly' END,
	       format('reward %s (%s %s %s %s of %s, %s) has %s spent on it by orders %s',
	              s.reward_id, w.kind, w.reward_type, w.amount, w.currency, w.beneficiary,
	              CASE WHEN w.approved_at IS NULL THEN 'never approved' ELSE 'approved ' || w.approved_at END,
	              s.total, s.orders)
	  FROM (SELECT x.reward_id, sum(x.amount) AS total,
	               string_agg(DISTINCT x.order_ref, ', ' ORDER BY x.order_ref) AS orders,
	               bool_or(x.customer <> w0.beneficiary OR x.currency <> w0.currency
	                       OR x.tenant <> w0.tenant OR w0.reward_type <> 'credit' OR w0.kind = 'clawback'
	                       OR w0.approved_at IS NULL) AS misplaced
	          FROM referral.credit_spend x
	          JOIN referral.reward w0 ON w0.id = x.reward_id
	         WHERE x.refunded_at IS NULL
	         GROUP BY x.reward_id) s
	  JOIN referral.reward w ON w.id = s.reward_id
	 WHERE (s.total > w.amount OR s.misplaced)
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	UNION ALL
	SELECT 'credit_spend_without_reward',
	       format('credit spend %s of %s by order %s names reward %s, which does not exist',
	              x.id, x.amount, x.order_ref, x.reward_id)
	  FROM referral.credit_spend x
	 WHERE audit.program IS NULL
	   AND NOT EXISTS (SELECT 1 FROM referral.reward w WHERE w.id = x.reward_id)
	 ORDER BY 1, 2;

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

CREATE OR REPLACE VIEW referral.reward_balance AS
SELECT w.tenant, w.beneficiary AS customer, w.currency,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'pending'), 0) AS pending,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'approved'), 0) AS approved,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'paid'), 0) AS paid,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'reversed'), 0) AS reversed,
       COALESCE((SELECT pg_catalog.sum(s.amount) FROM referral.credit_spend s
                  WHERE s.tenant = w.tenant AND s.customer = w.beneficiary AND s.currency = w.currency
                    AND s.refunded_at IS NULL), 0) AS spent
  FROM referral.reward w
 GROUP BY w.tenant, w.beneficiary, w.currency;
COMMENT ON VIEW referral.reward_balance
	IS 'per tenant, beneficiary and currency, over all programs: reward amounts by status; paid is gross (what was paid out, store credit spent whole included), a clawback counts under its own status (approved, negative, until a payout nets it); spent = store credit spent at checkout, not refunded';

CREATE OR REPLACE FUNCTION referral.grant_app(role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE format('GRANT USAGE ON SCHEMA referral TO %s', role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION
		referral.issue_code(bigint, text, referral.referral_code, text, text),
		referral.share_link(referral.referral_code, text, text),
		referral.record_click(referral.referral_code, text, inet, text, timestamptz),
		referral.redeem(referral.referral_code, text, text, inet, text, timestamptz),
		referral.offer(text, numeric, text),
		referral.use_offer(text, text, numeric, text),
		referral.credit_balance(text, text, text),
		referral.spend_credit(text, numeric, text, text, text),
		referral.refund_credit(text, text)
		TO %s', role);
	IF to_regprocedure('referral.participant_summary(bigint, text)') IS NOT NULL THEN
		EXECUTE format('GRANT EXECUTE ON FUNCTION referral.participant_summary(bigint, text) TO %s', role);
	END IF;
END
$$;
COMMENT ON FUNCTION referral.grant_app(regrole)
	IS 'grant a role what an application needs: issue_code, share_link, record_click, redeem, participant_summary, and the checkout''s offer, use_offer, credit_balance, spend_credit, refund_credit; no table access';

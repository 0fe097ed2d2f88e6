-- Operations on the ledger: approving rewards after their hold period, and payouts.

CREATE FUNCTION referral.approve_due(at timestamptz DEFAULT pg_catalog.now())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	approved bigint[] := '{}';
	held bigint[] := '{}';
	t record;
BEGIN
	PERFORM referral._require(at IS NOT NULL, 'at must not be NULL');
	-- Held: the rewards of blocked beneficiaries, and of suspicious referrals not
	-- released in programs that hold them (the view is read only when one does).
	IF EXISTS (SELECT 1 FROM referral.program p WHERE p.hold_suspicious) THEN
		held := referral._held_referrals();
	END IF;
	-- Tenant by tenant: on Citus each statement then runs on one tenant's shard,
	-- where its row locks can be taken.
	FOR t IN SELECT DISTINCT w.tenant FROM referral.reward w WHERE w.status = 'pending' ORDER BY 1 LOOP
		WITH due AS (
			SELECT w.id FROM referral.reward w
			  JOIN referral.program p ON p.id = w.program_id
			 WHERE w.tenant = t.tenant
			   AND w.status = 'pending' AND w.created_at + p.hold_period < approve_due.at
			   AND w.referral_id <> ALL (held)
			   AND NOT EXISTS (SELECT 1 FROM referral.block b
			                    WHERE b.tenant = t.tenant AND b.customer = w.beneficiary)
			 ORDER BY w.id
			   FOR UPDATE OF w SKIP LOCKED
		), upd AS (
			UPDATE referral.reward w SET status = 'approved', approved_at = approve_due.at
			  FROM due WHERE w.tenant = t.tenant AND w.id = due.id AND w.status = 'pending'
			RETURNING w.id
		)
		SELECT approved || array_agg(upd.id) INTO approved FROM upd;
	END LOOP;
	IF cardinality(approved) = 0 THEN
		RETURN 0;
	END IF;
	PERFORM referral._emit_rewards('reward_approved', approved);
	RETURN cardinality(approved);
END
$$;
COMMENT ON FUNCTION referral.approve_due(timestamptz)
	IS 'approve pending rewards whose hold period has passed at the given time, except those of blocked customers and of held suspicious referrals; returns how many';

CREATE FUNCTION referral.mark_paid(reward_ids bigint[], reference text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	wanted bigint[];
	not_payable text;
	paid bigint[];
	t record;
BEGIN
	PERFORM referral._require(NULLIF(btrim(reference), '') IS NOT NULL, 'payout reference must not be empty');
	PERFORM referral._require(reward_ids IS NOT NULL AND cardinality(reward_ids) > 0
	                          AND array_position(reward_ids, NULL) IS NULL,
		'reward_ids must be a non-empty array without NULLs');
	wanted := ARRAY(SELECT DISTINCT unnest(reward_ids) ORDER BY 1);

	-- Lock them all first (tenant, then id order; on Citus, row locks are taken
	-- tenant by tenant), then check: all or nothing.
	FOR t IN SELECT DISTINCT w.tenant FROM referral.reward w WHERE w.id = ANY (wanted) ORDER BY 1 LOOP
		PERFORM 1 FROM referral.reward w WHERE w.tenant = t.tenant AND w.id = ANY (wanted) ORDER BY w.id FOR UPDATE;
	END LOOP;
	-- The first ten in the message: a payout file of thousands must not make it huge.
	SELECT string_agg(format('%s (%s)', x.i, x.status), ', ' ORDER BY x.i) FILTER (WHERE x.n <= 10)
	       || CASE WHEN count(*) > 10 THEN format(' and %s more', count(*) - 10) ELSE '' END
	  INTO not_payable
	  FROM (SELECT i, COALESCE(w.status, 'does not exist') AS status, row_number() OVER (ORDER BY i) AS n
	          FROM unnest(wanted) i
	          LEFT JOIN (SELECT w.id, w.status FROM referral.reward w WHERE w.id = ANY (wanted)) w ON w.id = i
	         WHERE w.status IS DISTINCT FROM 'approved') x;
	IF not_payable IS NOT NULL THEN
		RAISE EXCEPTION 'rewards not approved: %', not_payable
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'Only approved rewards can be paid; nothing was marked paid.',
				  HINT = 'Approve rewards with referral.approve_due() first.';
	END IF;

	WITH upd AS (
		UPDATE referral.reward w SET status = 'paid', paid_at = now(), payout_ref = reference
		 WHERE w.id = ANY (wanted)
		RETURNING w.id
	)
	SELECT array_agg(upd.id) INTO paid FROM upd;
	PERFORM referral._emit_rewards('reward_paid', paid);
	RETURN cardinality(paid);
END
$$;
COMMENT ON FUNCTION referral.mark_paid(bigint[], text)
	IS 'mark approved rewards paid under a payout reference; all or nothing';

-- audit(): recomputes from the tracked orders and the referrals what the ledger
-- should hold, and reports every difference.  No rows when consistent.
-- The query that reads a tracked table's orders for audit(), as
-- (order_ref, customer, tenant, amount, paid, reversed, ordered_at): every identifier
-- quoted, every value a built-in type.  Run by _query_as_owner as the table's owner.
CREATE FUNCTION referral._orders_query(orders regclass, qualified text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT format('SELECT (x.%I)::text, (x.%I)::text, %s, (x.%I)::numeric, %s, %s, %s FROM %s x',
	              t.id_column, t.customer_column,
	              CASE WHEN t.tenant_column IS NULL THEN format('%L::text', t.tenant)
	                   ELSE format('(x.%I)::text', t.tenant_column) END,
	              t.amount_column,
	              CASE WHEN t.status_column IS NULL THEN 'true'
	                   ELSE format('((x.%I)::text = ANY (%L::text[]))', t.status_column, t.paid_statuses) END,
	              CASE WHEN t.status_column IS NULL THEN 'false'
	                   ELSE format('((x.%I)::text = ANY (%L::text[]))', t.status_column, t.reversed_statuses) END,
	              CASE WHEN t.ordered_at_column IS NULL THEN 'NULL::timestamptz'
	                   ELSE format('(x.%I)::timestamptz', t.ordered_at_column) END,
	              qualified)
	       -- Not the rows of partitions that untrack_orders took out.
	       || COALESCE((SELECT format(' WHERE x.tableoid OPERATOR(pg_catalog.<>) ALL (%L::pg_catalog.oid[])',
	                                  array_agg(p.relid::oid))
	                      FROM referral.untracked_partition u
	                     CROSS JOIN LATERAL pg_catalog.pg_partition_tree(u.relid) p
	                     WHERE u.relid IN (SELECT tree.relid FROM pg_catalog.pg_partition_tree(orders) tree)
	                    HAVING count(*) > 0), '')
	  FROM referral.tracked_table t
	 WHERE t.relid = orders
$$;
COMMENT ON FUNCTION referral._orders_query(regclass, text)
	IS 'internal: the query audit() reads a tracked table''s orders with, as the table''s owner';
REVOKE ALL ON FUNCTION referral._orders_query(regclass, text) FROM PUBLIC;

CREATE FUNCTION referral.audit(program bigint DEFAULT NULL)
RETURNS TABLE (problem text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t record;
	forgotten boolean := EXISTS (SELECT 1 FROM referral.forgotten);
	key bytea;
	relids oid[];
	sources text[];
	dropped text[];
	qualified text;
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
	                                                        WHERE c.tenant = w.tenant AND c.clawback_of = w.id AND c.kind = 'clawback'), 0) > 0))
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'clawback_without_reward',
	       format('clawback %s of %s offsets reward %s, which is not a paid reward of %s',
	              c.id, c.amount, c.clawback_of, c.beneficiary)
	  FROM referral.reward c
	  LEFT JOIN referral.reward w ON w.tenant = c.tenant AND w.id = c.clawback_of
	 WHERE c.kind = 'clawback' AND (audit.program IS NULL OR c.program_id = audit.program)
	   AND (w.id IS NULL OR w.kind = 'clawback' OR w.status <> 'paid' OR w.beneficiary <> c.beneficiary)
	 ORDER BY c.id;

	-- The clawbacks of a paid reward may offset part of it (its order's amount went
	-- down), or all of it (refunded), never more.
	RETURN QUERY
	SELECT 'clawbacks_exceed_reward',
	       format('the clawbacks of reward %s of %s (%s) offset %s', w.id, w.beneficiary, w.amount, -s.total)
	  FROM referral.reward w
	  JOIN (SELECT c.tenant, c.clawback_of, sum(c.amount) AS total FROM referral.reward c
	         WHERE c.kind = 'clawback' GROUP BY c.tenant, c.clawback_of) s
	    ON s.tenant = w.tenant AND s.clawback_of = w.id
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
	                                                        WHERE c.tenant = w.tenant AND c.clawback_of = w.id AND c.kind = 'clawback'), 0) > 0))
	   AND EXISTS (SELECT 1 FROM referral.referral r WHERE r.tenant = w.tenant AND r.id = w.referral_id)
	   AND NOT EXISTS (SELECT 1 FROM referral.attributed_order o
	                    WHERE o.tenant = w.tenant AND o.order_source = w.order_source
	                      AND o.order_ref = w.order_ref AND o.referral_id = w.referral_id)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'reward_without_referral',
	       format('reward %s of %s names referral %s, which does not exist', w.id, w.beneficiary, w.referral_id)
	  FROM referral.reward w
	 WHERE NOT EXISTS (SELECT 1 FROM referral.referral r WHERE r.tenant = w.tenant AND r.id = w.referral_id)
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'reward_program_mismatch',
	       format('reward %s is in program %s, but its referral %s is in program %s',
	              w.id, w.program_id, r.id, r.program_id)
	  FROM referral.reward w
	  JOIN referral.referral r ON r.tenant = w.tenant AND r.id = w.referral_id
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
	                                                    WHERE c.tenant = x.tenant AND c.clawback_of = x.id AND c.kind = 'clawback'), 0)
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
	  JOIN (SELECT w.tenant, w.program_id, sum(w.amount) AS total FROM referral.reward w
	         WHERE w.status <> 'reversed' GROUP BY w.tenant, w.program_id) s
	    ON s.tenant = p.tenant AND s.program_id = p.id
	 WHERE p.budget IS NOT NULL AND s.total > p.budget
	   AND (audit.program IS NULL OR p.id = audit.program)
	 ORDER BY p.id;

	RETURN QUERY
	SELECT 'referrer_cap_exceeded',
	       format('%s has earned %s in program %s, over its referrer_cap of %s', s.beneficiary, s.total, p.id, p.referrer_cap)
	  FROM referral.program p
	  JOIN (SELECT w.tenant, w.program_id, w.beneficiary, sum(w.amount) AS total FROM referral.reward w
	         WHERE w.status <> 'reversed' GROUP BY w.tenant, w.program_id, w.beneficiary) s
	    ON s.tenant = p.tenant AND s.program_id = p.id
	 WHERE p.referrer_cap IS NOT NULL AND s.total > p.referrer_cap
	   AND (audit.program IS NULL OR p.id = audit.program)
	 ORDER BY p.id, s.beneficiary;

	-- Attributed orders of a tracked table that was dropped (not untracked): they
	-- are gone, and nothing reversed their rewards.  (The registry and the catalog
	-- are read apart: on Citus one is a reference table, the other local.)
	SELECT array_agg(tt.relid::oid), array_agg(tt.source) INTO relids, sources FROM referral.tracked_table tt;
	dropped := ARRAY(SELECT u.source FROM unnest(relids, sources) u(relid, source)
	                  WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = u.relid));
	RETURN QUERY
	SELECT 'order_not_paid',
	       format('order %s of %s (referral %s) earned rewards but its table was dropped',
	              o.order_ref, o.order_source, o.referral_id)
	  FROM referral.attributed_order o
	 WHERE o.order_source = ANY (dropped)
	   AND o.reversed_at IS NULL AND (audit.program IS NULL OR o.program_id = audit.program)
	 ORDER BY o.order_source, o.order_ref;

	-- Store credit spent at checkout: never more than a credit reward's amount, and
	-- only from credit rewards of the spender, in their currency, once approved.
	RETURN QUERY
	SELECT CASE WHEN s.total > w.amount THEN 'credit_overspent' ELSE 'credit_spent_wrongly' END,
	       format('reward %s (%s %s %s %s of %s, %s) has %s spent on it by orders %s',
	              s.reward_id, w.kind, w.reward_type, w.amount, w.currency, w.beneficiary,
	              CASE WHEN w.approved_at IS NULL THEN 'never approved' ELSE 'approved ' || w.approved_at END,
	              s.total, s.orders)
	  FROM (SELECT x.tenant, x.reward_id, sum(x.amount) AS total,
	               string_agg(DISTINCT x.order_ref, ', ' ORDER BY x.order_ref) AS orders,
	               bool_or(x.customer <> w0.beneficiary OR x.currency <> w0.currency
	                       OR x.tenant <> w0.tenant OR w0.reward_type <> 'credit' OR w0.kind = 'clawback'
	                       OR w0.approved_at IS NULL) AS misplaced
	          FROM referral.credit_spend x
	          JOIN referral.reward w0 ON w0.tenant = x.tenant AND w0.id = x.reward_id
	         WHERE x.refunded_at IS NULL
	         GROUP BY x.tenant, x.reward_id) s
	  JOIN referral.reward w ON w.tenant = s.tenant AND w.id = s.reward_id
	 WHERE (s.total > w.amount OR s.misplaced)
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	UNION ALL
	SELECT 'credit_spend_without_reward',
	       format('credit spend %s of %s by order %s names reward %s, which does not exist',
	              x.id, x.amount, x.order_ref, x.reward_id)
	  FROM referral.credit_spend x
	 WHERE audit.program IS NULL
	   AND NOT EXISTS (SELECT 1 FROM referral.reward w WHERE w.tenant = x.tenant AND w.id = x.reward_id)
	 ORDER BY 1, 2;

	-- Against the orders of every table still tracked, read as the table's owner
	-- (_query_as_owner): its columns' casts and checks are the owner's code.  The
	-- rows come back as built-in types, compared here.
	FOR t IN SELECT tt.* FROM referral.tracked_table tt ORDER BY tt.relid LOOP
		SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) INTO qualified
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.oid = t.relid;
		CONTINUE WHEN NOT FOUND;
		RETURN QUERY
		WITH x AS MATERIALIZED (
			SELECT * FROM referral._query_as_owner(t.relid, referral._orders_query(t.relid, qualified))
			    AS q(order_ref text, customer text, tenant text, amount numeric, paid boolean, reversed boolean,
			         ordered_at timestamptz)),
		-- The keyed hashes of forgotten keys, read apart from the orders (on Citus
		-- the orders are a result on the coordinator, forgotten a distributed table).
		fk AS MATERIALIZED (
			SELECT f.tenant, f.key_hash FROM referral.forgotten f WHERE forgotten),
		problems AS (
			-- An attributed, unreversed order that is no longer there or in a reversed
			-- status (another status after paid keeps its rewards, as in the trigger).
			SELECT 1 AS part, o.order_ref AS sort_ref, NULL::bigint AS sort_id, 'order_not_paid' AS problem,
			       format('order %s of %s (referral %s) earned rewards but is %s',
			              o.order_ref, o.order_source, o.referral_id,
			              CASE WHEN x.order_ref IS NULL THEN 'deleted' ELSE 'reversed' END) AS detail
			  FROM referral.attributed_order o
			  LEFT JOIN x ON x.order_ref = o.order_ref AND x.tenant = o.tenant
			 WHERE o.order_source = t.source AND o.reversed_at IS NULL
			   AND (audit.program IS NULL OR o.program_id = audit.program)
			   AND (x.order_ref IS NULL OR x.reversed)
			   AND NOT EXISTS (SELECT 1 FROM referral.untracked_order u
			                    WHERE u.tenant = o.tenant AND u.order_source = o.order_source
			                      AND u.order_ref = o.order_ref)
			   -- The orders of a forgotten customer: the order triggers no longer
			   -- know whose they are (their referral names the pseudonym).
			   AND NOT (forgotten AND (
			            EXISTS (SELECT 1 FROM referral.referral r
			                      JOIN referral.forgotten f ON f.tenant = r.tenant AND f.pseudonym = r.referee
			                     WHERE r.tenant = o.tenant AND r.id = o.referral_id)
			            OR (x.customer IS NOT NULL AND EXISTS (
			                SELECT 1 FROM fk f
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

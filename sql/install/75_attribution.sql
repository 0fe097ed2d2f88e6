-- Attribution: what a paid, refunded, cancelled or deleted order does to referrals and
-- rewards.  The order triggers (track_orders) call these with the orders of a whole
-- statement; each function re-checks under row locks, taken in one order everywhere:
-- the referrers' codes, then the referrals, then the programs (when a budget or cap
-- applies), each set sorted, then rewards.  Conversions take the first three for the
-- whole statement up front (_orders_paid); reversals need no code.
--
-- These internal functions (and the helpers they call: _create_reward, _emit,
-- _emit_rewards, _pick_rule, _conversions) run for every conversion and refund, so
-- they are PL/pgSQL (whose statement plans are kept for the session, where a SQL
-- function called from PL/pgSQL is planned again at every call) and do not set
-- search_path (whose save and restore would be paid at every call): their callers,
-- the order trigger and the API functions, pin it, and they name everything
-- qualified.  The ones that run set-based statements over a whole statement's orders
-- or rewards (_convert_orders, _orders_reversed, _orders_moved, _reverse_rewards,
-- _claw_back, _emit_rewards) run once per statement and force custom plans: a plan
-- kept from when the tables were small would scan them sequentially for every
-- statement after.  A SET applies to the functions called too, so none of them calls
-- _order_paid, whose plans must stay cached: _orders_paid, which does, sets nothing.

-- A paid order of a referee that may qualify: converts a pending referral (referee
-- reward, referrer rewards by level, milestones) or, within recurring_window after
-- the conversion, pays referrer rewards again; any other qualifying order of a
-- converted referee is recorded as revenue only.  An order is attributed at most once.
CREATE FUNCTION referral._order_paid(referral_id bigint, source text, order_ref text, amount numeric, at timestamptz)
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
	step int;
	kind text;
	beneficiary text;
	lvl int;
	reached bigint;
	ms referral.milestone;
	milestone_reward bigint;
BEGIN
	-- The lock order of every conversion and reversal: the referrer's code (which
	-- serialises the referrer's conversions, for tiers and milestones), then the
	-- referral, then a program whose budget or cap is shared.
	PERFORM 1 FROM referral.referral x JOIN referral.code c
	    ON c.tenant = x.tenant AND c.program_id = x.program_id AND c.customer = x.referrer
	 WHERE x.id = _order_paid.referral_id FOR UPDATE OF c;
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

	-- The program's budget and caps, after the code and the referral.
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

	-- The rewards, in order: step 0 is the referee's (only when converting, level 1),
	-- steps 1 up to max_depth the referrer rewards of those levels.  Each is tiered by
	-- its beneficiary's conversions as a referrer in the program so far (not counting
	-- this conversion).
	FOR step IN CASE WHEN converting THEN 0 ELSE 1 END .. LEAST(p.max_depth, cardinality(upline)) LOOP
		kind := CASE WHEN step = 0 THEN 'referee' ELSE 'referrer' END;
		lvl := GREATEST(step, 1);
		beneficiary := CASE WHEN step = 0 THEN r.referee ELSE upline[step] END;
		SELECT * INTO rule FROM referral._pick_rule(p.id, kind, lvl, r.variant,
		                            CASE WHEN kind || ':' || lvl = ANY (tiered)
		                                 THEN referral._conversions(r.tenant, p.id, beneficiary, top_tier) ELSE 0 END);
		IF rule.id IS NOT NULL THEN
			beneficiaries := beneficiaries || beneficiary;
			levels := levels || lvl;
			kinds := kinds || kind;
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

-- The paid orders of one statement that may convert or earn, as the order trigger
-- passes them (by referral, then order time).  Conversions are set-based
-- (_convert_orders) where nothing in a conversion depends on the rewards created
-- before it; every other order goes to _order_paid, in the order given (budgets, caps
-- and milestones cut sequentially; revenue and recurring rewards of converted
-- referrals; orders that do not qualify).  A few orders (the single-row INSERT of an
-- application) all go one by one: the set-based statement is planned at every call
-- (custom plans, for the sizes of the arrays), which costs more than a few
-- conversions do.
CREATE FUNCTION referral._orders_paid(source text, referral_ids bigint[], order_refs text[],
	amounts numeric[], ats timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	converted int[] := '{}';	-- input positions whose order converted, ascending
	next_converted int := 1;
BEGIN
	-- One order (a single-row INSERT): _order_paid, which locks the referrer's code,
	-- the referral and the program in the order below.  Its statements take the id
	-- as a scalar and keep one plan for the session; the array ones below are
	-- planned again at every call, for the array's size.
	IF cardinality(referral_ids) = 1 THEN
		PERFORM referral._order_paid(referral_ids[1], source, order_refs[1], amounts[1], ats[1]);
		RETURN;
	END IF;
	-- The lock order of every statement's conversions: the referrers' codes (which
	-- serialise a referrer's conversions, so that tiers count each once), then the
	-- referrals, then the programs whose budget or cap is shared, each set sorted,
	-- and all taken here, before any is converted.  Two loads of overlapping
	-- referees then wait for each other instead of deadlocking.
	PERFORM 1 FROM referral.code c
	 WHERE (c.tenant, c.program_id, c.customer) IN
	       (SELECT r.tenant, r.program_id, r.referrer FROM referral.referral r WHERE r.id = ANY (referral_ids))
	 ORDER BY c.code FOR UPDATE;
	PERFORM 1 FROM referral.referral r WHERE r.id = ANY (referral_ids) ORDER BY r.id FOR UPDATE;
	PERFORM 1 FROM referral.program p
	 WHERE p.id IN (SELECT r.program_id FROM referral.referral r WHERE r.id = ANY (referral_ids))
	   AND (p.budget IS NOT NULL OR p.referrer_cap IS NOT NULL)
	 ORDER BY p.id FOR UPDATE;

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

-- The set-based conversions of _orders_paid: a pending referral of a program without
-- budget, referrer_cap, recurring_window or milestones converts with its first order
-- here, in a few statements for the whole load instead of some twenty per conversion.
-- Tiers come out as _order_paid, called in referral id order, would give them: a
-- beneficiary's conversions before a conversion are those committed before plus those
-- of this load with a smaller referral id.  Returns the input positions of the orders
-- that converted, ascending.  (Its SET applies to what it calls too: _order_paid is not called
-- from here, so that its plans stay cached.)
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
	-- The caller (_orders_paid) holds the row locks of the codes and referrals.
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
	), tiered AS (
		-- The beneficiaries whose (kind, level) has tiers (the others count 0, as in
		-- _order_paid).
		SELECT b.*, EXISTS (SELECT 1 FROM referral.reward_rule x
		                     WHERE x.program_id = b.program_id AND x.beneficiary = b.kind
		                       AND x.level = b.level AND x.min_conversions > 0) AS tiered
		  FROM beneficiary b
	), committed AS MATERIALIZED (
		-- Their conversions as a referrer committed before, once per beneficiary (a
		-- referrer converts many referees of a load), counted up to the top tier as
		-- _conversions does (a call of it here would plan its query at every call,
		-- under this function's SET).
		SELECT d.tenant, d.program_id, d.who,
		       (SELECT pg_catalog.count(*)
		          FROM (SELECT 1 FROM referral.referral x
		                 WHERE x.tenant = d.tenant AND x.referrer = d.who
		                   AND x.program_id = d.program_id AND x.status = 'converted'
		                 LIMIT (SELECT pg_catalog.max(t.min_conversions) FROM referral.reward_rule t
		                         WHERE t.program_id = d.program_id)) s) AS n
		  FROM (SELECT DISTINCT b.tenant, b.program_id, b.who FROM tiered b WHERE b.tiered) d
	), counted AS (
		-- Each beneficiary with its conversions as a referrer in the program before
		-- this one: those committed before, plus this load's with a smaller referral
		-- id, which are its rows as the level-1 referrer (a beneficiary appears once
		-- per conversion, so the frame before the current row holds exactly those).
		SELECT b.*,
		       CASE WHEN b.tiered
		            THEN COALESCE(pg_catalog.sum((b.kind = 'referrer' AND b.level = 1)::int) OVER earlier, 0) + c.n
		            ELSE 0 END AS conversions
		  FROM tiered b
		  LEFT JOIN committed c ON c.tenant = b.tenant AND c.program_id = b.program_id AND c.who = b.who
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
		               referral._reward_payload(w.id, w.program_id, w.referral_id, w.beneficiary, w.kind,
		                   w.level, w.amount, w.currency, w.status, w.order_ref, NULL) AS payload
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

-- Claws paid rewards back down to a net (amount plus clawbacks) of `nets` (0: all of
-- it): a clawback (negative, approved, so that the next payout nets it) for each one
-- whose net is above, with its event.  The net is read here, not passed in, so that a
-- second call for the same change claws back nothing: callers hold the rewards' row
-- locks, taken in an earlier statement, so this one's snapshot has every clawback
-- committed before.  The paid reward row is updated too: reversed_at when nothing is
-- left, else the same values, so that a concurrent transaction that locks it after
-- this one commits sees it changed (a serialization failure under REPEATABLE READ)
-- instead of clawing back the same difference again.  The rewards are the tenant's:
-- every statement names it, so that on Citus it runs on the tenant's shard.
CREATE FUNCTION referral._claw_back(tenant text, reward_ids bigint[], nets numeric[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	clawbacks bigint[];
	zeroed bigint[];
	lowered bigint[];
BEGIN
	-- Every read and write names the rewards by an id array given as a value, one
	-- scan each, never by a join that probes them one by one: such a probe may take
	-- an index that leads with tenant (statistics that do not know the tenant yet
	-- make it look cheap) and read all the tenant's rewards for each.
	WITH paid AS MATERIALIZED (
		SELECT w.* FROM referral.reward w
		 WHERE w.tenant = _claw_back.tenant AND w.id = ANY (reward_ids)
		   AND w.status = 'paid' AND w.kind <> 'clawback'
	), clawed AS MATERIALIZED (
		SELECT c.clawback_of, sum(c.amount) AS amount FROM referral.reward c
		 WHERE c.tenant = _claw_back.tenant AND c.kind = 'clawback' AND c.clawback_of = ANY (reward_ids)
		 GROUP BY c.clawback_of
	), due AS MATERIALIZED (
		SELECT DISTINCT ON (w.id) w.*, GREATEST(x.net, 0) AS target, w.amount + COALESCE(s.amount, 0) AS net
		  FROM unnest(reward_ids, nets) AS x(id, net)
		  JOIN paid w ON w.id = x.id
		  LEFT JOIN clawed s ON s.clawback_of = w.id
		 WHERE x.net IS NOT NULL
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
	)
	SELECT (SELECT array_agg(claw.id ORDER BY claw.id) FROM claw),
	       (SELECT array_agg(d.id ORDER BY d.id) FROM due d WHERE d.target = 0 AND d.target < d.net),
	       (SELECT array_agg(d.id ORDER BY d.id) FROM due d WHERE d.target > 0 AND d.target < d.net)
	  INTO clawbacks, zeroed, lowered;
	-- A paid reward stays paid (paid is gross); reversed_at says it was clawed back in
	-- full.  One clawed back in part is written with the same values.
	IF zeroed IS NOT NULL THEN
		UPDATE referral.reward w SET reversed_at = now()
		 WHERE w.tenant = _claw_back.tenant AND w.id = ANY (zeroed);
	END IF;
	IF lowered IS NOT NULL THEN
		UPDATE referral.reward w SET reversed_at = w.reversed_at
		 WHERE w.tenant = _claw_back.tenant AND w.id = ANY (lowered);
	END IF;
	IF clawbacks IS NOT NULL THEN
		PERFORM referral._emit_rewards('reward_created', clawbacks);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._claw_back(text, bigint[], numeric[])
	IS 'internal: claw a tenant''s paid rewards back down to a net amount (0: all of it), once';

-- Reverses rewards: pending and approved ones become reversed; paid ones are clawed
-- back (_claw_back) in full.  The rewards are the tenant's (as in _claw_back).
CREATE FUNCTION referral._reverse_rewards(tenant text, reward_ids bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	reversed bigint[];
	paid bigint[];
BEGIN
	-- Locked in id order, then written by an id array (see _claw_back).
	SELECT array_agg(l.id ORDER BY l.id) FILTER (WHERE l.status IN ('pending', 'approved')),
	       array_agg(l.id ORDER BY l.id) FILTER (WHERE l.status = 'paid')
	  INTO reversed, paid
	  FROM (SELECT w.id, w.status FROM referral.reward w
	         WHERE w.tenant = _reverse_rewards.tenant AND w.id = ANY (reward_ids) AND w.kind <> 'clawback'
	         ORDER BY w.id FOR UPDATE) l;

	IF reversed IS NOT NULL THEN
		UPDATE referral.reward w SET status = 'reversed', reversed_at = now()
		 WHERE w.tenant = _reverse_rewards.tenant AND w.id = ANY (reversed);
		PERFORM referral._emit_rewards('reward_reversed', reversed);
	END IF;
	IF paid IS NOT NULL THEN
		PERFORM referral._claw_back(tenant, paid, array_fill(0::numeric, ARRAY[cardinality(paid)]));
	END IF;
END
$$;
COMMENT ON FUNCTION referral._reverse_rewards(text, bigint[]) IS 'internal: reverse a tenant''s rewards (clawback for paid ones)';

-- Orders refunded, cancelled or deleted: their rewards are reversed; a referral they
-- converted returns to pending, and the milestones its conversion reached are
-- reversed the same way; a referee offer they used is free again.
CREATE FUNCTION referral._orders_reversed(tenant text, source text, order_refs text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	converted_by bigint[];
	reverted bigint[];
	to_reverse bigint[];
BEGIN
	-- The referrals these orders converted, found first without a lock: a
	-- referral's converting order is an attributed order (converting), which is
	-- how it is found (no index of referral reads the converting order).  Then the
	-- lock order of conversions (_orders_paid): their referrers' codes, the
	-- referrals (checked again under the lock), then their rewards; one event
	-- each, in referral id order.  A statement that refunds one order and pays
	-- another then waits for a concurrent load instead of deadlocking with it.
	SELECT array_agg(x.id ORDER BY x.id) INTO converted_by
	  FROM referral.attributed_order a
	  JOIN referral.referral x ON x.id = a.referral_id
	 WHERE a.tenant = _orders_reversed.tenant AND a.order_source = source
	   AND a.order_ref = ANY (order_refs) AND a.converting
	   AND x.converting_source = source AND x.converting_order = a.order_ref;
	IF converted_by IS NOT NULL THEN
		PERFORM 1 FROM referral.code c
		 WHERE (c.tenant, c.program_id, c.customer) IN
		       (SELECT x.tenant, x.program_id, x.referrer FROM referral.referral x
		         WHERE x.id = ANY (converted_by))
		 ORDER BY c.code FOR UPDATE;
	END IF;
	WITH locked AS (
		SELECT x.id, x.converting_order
		  FROM referral.referral x
		 WHERE x.id = ANY (converted_by)
		   AND x.converting_source = source AND x.converting_order = ANY (order_refs)
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
		PERFORM referral._reverse_rewards(tenant, to_reverse);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._orders_reversed(text, text, text[])
	IS 'internal: orders refunded, cancelled or deleted: reverse their rewards and conversions';

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

-- A paid order's amount changed.  Its rewards follow a lower amount, recomputed with
-- the rule that created them: one not yet paid is lowered (or reversed when it comes
-- to nothing); a paid one is clawed back by the difference (_claw_back), so that its
-- net is what the rule gives now.  A higher amount changes nothing, and a reward
-- lowered or clawed back is never raised again: it may have been cut to the budget or
-- cap, and raising it would need the same checks as a new reward.
CREATE FUNCTION referral._order_amount_changed(tenant text, source text, order_ref text, amount numeric)
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
		PERFORM referral._reverse_rewards(tenant, vanished);
	END IF;
	IF paid IS NOT NULL THEN
		PERFORM referral._claw_back(tenant, paid, paid_nets);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._order_amount_changed(text, text, text, numeric)
	IS 'internal: a paid order''s amount went down: lower its unpaid rewards, claw back the difference of its paid ones';

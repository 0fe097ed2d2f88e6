-- Attribution: what a paid, refunded, cancelled or deleted order does to referrals and
-- rewards.  The order triggers (track_orders) call these with the orders of a whole
-- statement; each function re-checks under row locks, taken in one order everywhere:
-- the referral, then the referrer's code, then the program (when a budget or cap
-- applies), then rewards.
--
-- These internal functions (and the helpers they call: _create_reward, _emit,
-- _emit_rewards, _pick_rule, _conversions) run for every conversion and refund, so
-- they are PL/pgSQL (whose statement plans are kept for the session, where a SQL
-- function called from PL/pgSQL is planned again at every call) and do not set
-- search_path (whose save and restore would be paid at every call): their callers,
-- the order trigger and the API functions, pin it, and they name everything
-- qualified.  The ones that take a whole statement's orders or rewards as arrays
-- (_orders_reversed, _reverse_rewards, _emit_rewards) run once per statement and
-- force custom plans: a plan kept from when the tables were small would scan them
-- sequentially for every statement after.

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
	-- conversions (most programs tier the direct referrer at most).
	SELECT COALESCE(array_agg(DISTINCT x.beneficiary || ':' || x.level), '{}') INTO tiered
	  FROM referral.reward_rule x
	 WHERE x.program_id = p.id AND x.min_conversions > 0;

	IF converting THEN
		-- Referee reward: tier by the referee's own conversions as a referrer.
		rule := referral._pick_rule(p.id, 'referee', 1, r.variant,
		                            CASE WHEN 'referee:1' = ANY (tiered)
		                                 THEN referral._conversions(r.tenant, p.id, r.referee) ELSE 0 END);
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
		rule := referral._pick_rule(p.id, 'referrer', lvl, r.variant,
		                            CASE WHEN 'referrer:' || lvl = ANY (tiered)
		                                 THEN referral._conversions(r.tenant, p.id, beneficiary) ELSE 0 END);
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
	reached := referral._conversions(r.tenant, p.id, r.referrer);
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

-- Reverses rewards: pending and approved ones become reversed; paid ones get a
-- clawback (negative, approved) so that the next payout nets it, and their
-- reversed_at.
CREATE FUNCTION referral._reverse_rewards(reward_ids bigint[])
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

-- Orders refunded, cancelled or deleted: their rewards are reversed; a referral they
-- converted returns to pending, and the milestones its conversion reached are
-- reversed the same way.
CREATE FUNCTION referral._orders_reversed(tenant text, source text, order_refs text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	r referral.referral;
	reverted bigint[] := '{}';
	to_reverse bigint[];
BEGIN
	-- Referrals first (the lock order), then their rewards.
	FOR r IN
		SELECT * FROM referral.referral x
		 WHERE x.tenant = _orders_reversed.tenant AND x.converting_source = source
		   AND x.converting_order = ANY (order_refs)
		 ORDER BY x.id FOR UPDATE
	LOOP
		UPDATE referral.referral x
		   SET status = 'pending', converted_at = NULL, converting_source = NULL,
		       converting_order = NULL, reverted_at = now()
		 WHERE x.id = r.id;
		PERFORM referral._emit(r.tenant, 'referral_reverted',
			jsonb_build_object('referral_id', r.id, 'program_id', r.program_id, 'referrer', r.referrer,
			                   'referee', r.referee, 'order_ref', r.converting_order));
		reverted := reverted || r.id;
	END LOOP;

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

-- A paid order's amount changed.  Rewards of it not yet paid follow a lower amount
-- (recomputed with the rule that created them; one that comes to nothing is
-- reversed).  A higher amount changes nothing: the reward may have been cut to the
-- budget or cap, and raising it would need the same checks as a new reward.
CREATE FUNCTION referral._order_amount_changed(tenant text, source text, order_ref text, amount numeric)
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

-- The reward ledger: rewards with their lifecycle pending -> approved -> paid, or
-- reversed; a refund of a paid reward, or a lower amount of its order, adds a negative
-- `clawback` entry, created approved so that the next payout nets it (a paid reward
-- may have several: each lowering claws back the difference, a refund what is left).
-- Unique keys make every reward exist once per (order, referral, beneficiary, level,
-- kind) and once per milestone.

CREATE SEQUENCE referral.reward_id_seq;
CREATE TABLE referral.reward (
	tenant			text NOT NULL,
	id				bigint NOT NULL DEFAULT pg_catalog.nextval('referral.reward_id_seq'),
	program_id		bigint NOT NULL,	-- its referral's (see below)
	beneficiary		text NOT NULL,
	referral_id		bigint NOT NULL,	-- see below
	order_source	text,
	order_ref		text,
	level			int NOT NULL CHECK (level >= 1),
	kind			text NOT NULL CHECK (kind IN ('referee', 'referrer', 'milestone', 'clawback')),
	reward_type		text NOT NULL,
	amount			numeric NOT NULL,
	currency		text NOT NULL,
	status			text NOT NULL CHECK (status IN ('pending', 'approved', 'paid', 'reversed')),
	rule_id			bigint,
	milestone_id	bigint,
	clawback_of		bigint,			-- the paid reward it offsets (checked by audit())
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	approved_at		timestamptz,
	paid_at			timestamptz,
	reversed_at		timestamptz,
	payout_ref		text,
	PRIMARY KEY (id, tenant),
	CHECK ((kind = 'clawback') = (clawback_of IS NOT NULL)),
	CHECK ((kind = 'clawback') = (amount < 0)),
	CHECK (kind = 'clawback' OR amount > 0),
	CHECK ((kind = 'milestone') = (milestone_id IS NOT NULL)),
	CHECK (kind IN ('milestone', 'clawback') OR (order_ref IS NOT NULL AND rule_id IS NOT NULL)),
	CHECK ((status = 'paid') = (paid_at IS NOT NULL)),
	CHECK (status <> 'paid' OR payout_ref IS NOT NULL)
);
ALTER SEQUENCE referral.reward_id_seq OWNED BY referral.reward.id;
-- The referral is in the key because an order that changes customer is attributed to
-- the new customer's referral, whose referrer may be the old one's.
CREATE UNIQUE INDEX reward_once_per_order ON referral.reward
	(tenant, order_source, order_ref, referral_id, beneficiary, level, kind) WHERE kind IN ('referee', 'referrer');
-- A milestone held: not reversed and, if paid, not clawed back (reversed_at is set on
-- a paid reward when its clawback is created), so a reversed one can be paid again.
CREATE UNIQUE INDEX reward_once_per_milestone ON referral.reward
	(tenant, program_id, beneficiary, milestone_id) WHERE kind = 'milestone' AND status <> 'reversed' AND reversed_at IS NULL;
-- The clawbacks of a paid reward (no unique key: _claw_back nets them under the paid
-- reward's row lock).
CREATE INDEX reward_clawbacks ON referral.reward (clawback_of) WHERE kind = 'clawback';
CREATE INDEX reward_beneficiary ON referral.reward (tenant, beneficiary, program_id);
CREATE INDEX reward_program ON referral.reward (program_id, status);
CREATE INDEX reward_referral ON referral.reward (referral_id);
CREATE INDEX reward_pending_created ON referral.reward (created_at) WHERE status = 'pending';
-- referral_id and program_id have no foreign keys.  A key checks every new reward
-- with a query of its own after the statement, a cost a bulk load that converts
-- pays once per reward.  Only the extension writes rewards, each for a referral
-- it has just read and locked; a referral with rewards cannot be deleted or
-- truncated away (the triggers below, as the key would); and audit() reports a
-- reward without its referral, or whose program is not its referral's.
-- clawback_of has no foreign key: a table referencing itself makes every pg_dump of
-- the database warn of circular foreign keys (config tables are dumped data-only).
-- Only the extension writes this table; audit() reports a clawback without its reward.
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
	IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM referral.reward w WHERE w.tenant = OLD.tenant AND w.referral_id = OLD.id) THEN
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

COMMENT ON TABLE referral.reward IS 'the reward ledger: one row per reward (referee, referrer by level, milestone) and per clawback of a paid reward';
SELECT pg_catalog.pg_extension_config_dump('referral.reward', '');
SELECT pg_catalog.pg_extension_config_dump('referral.reward_id_seq', '');

-- Orders attributed to a referral: the converting order and every later qualifying
-- order of the referee (with recurring_window, those in it earned referrer rewards).
-- revenue in the views is the sum of those not reversed; an order is attributed at
-- most once.
CREATE TABLE referral.attributed_order (
	tenant			text NOT NULL,
	order_source	text NOT NULL,
	order_ref		text NOT NULL,
	program_id		bigint NOT NULL,	-- of the referral (no foreign keys: see below)
	referral_id		bigint NOT NULL,
	amount			numeric NOT NULL,
	ordered_at		timestamptz NOT NULL,
	converting		boolean NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	reversed_at		timestamptz,
	PRIMARY KEY (tenant, order_source, order_ref)
) WITH (fillfactor = 90);
-- A refund sets reversed_at: the free tenth of each page (room for some 7 new row
-- versions among about 60 rows) keeps that a HOT update, with no new entry in the
-- indexes, when a page's refunds are few.  Refunds of most orders of a page still
-- move rows.
-- A bulk load records a row here for every order of a referee; a foreign key would
-- queue two after-row checks per row, memory that grows with the statement.  Only the
-- extension writes this table, from the referral row it has just read, and referrals
-- are never deleted.
-- Two indexes, each written for every order of a referee: the key, and the referral
-- (void_referral).  The views aggregate the table whole, so none is by program.
CREATE INDEX attributed_order_referral ON referral.attributed_order (referral_id);
COMMENT ON TABLE referral.attributed_order IS 'qualifying orders of referees (the converting one and later ones), with their amount; reversed_at set when refunded, cancelled or deleted';
SELECT pg_catalog.pg_extension_config_dump('referral.attributed_order', '');

-- The payload of a reward's event: the reward's figures, as jsonb_build_object would
-- give them, built in C (src/reward_payload.c): a bulk load builds one per reward.
CREATE FUNCTION referral._reward_payload(reward_id bigint, program_id bigint, referral_id bigint,
	beneficiary text, kind text, level int, amount numeric, currency text, status text,
	order_ref text, payout_ref text)
RETURNS jsonb
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_reward_payload';
COMMENT ON FUNCTION referral._reward_payload(bigint, bigint, bigint, text, text, int, numeric, text, text, text, text)
	IS 'internal: the jsonb payload of a reward''s event';

-- Appends one event per reward id (payload: the reward's figures) and notifies.
CREATE FUNCTION referral._emit_rewards(kind text, reward_ids bigint[])
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
		       referral._reward_payload(w.id, w.program_id, w.referral_id, w.beneficiary, w.kind,
		                                w.level, w.amount, w.currency, w.status, w.order_ref,
		                                w.payout_ref)
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

-- A reward's amount: fixed + percent/100 x order amount, cut to cap, rounded half up
-- to the currency's minor unit, in numeric throughout: exact to the cent
-- (src/reward_calc.c).
CREATE FUNCTION referral.reward_amount(order_amount numeric, percent numeric, fixed numeric, cap numeric, currency text)
RETURNS numeric
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_reward_amount';
COMMENT ON FUNCTION referral.reward_amount(numeric, numeric, numeric, numeric, text)
	IS 'fixed + percent/100 x order amount, cut to cap, rounded half up to the currency''s minor unit';

-- The rule that pays `beneficiary` at `level`: among the rules of the referral's variant
-- (or, when that variant has none for this beneficiary and level, the variant-less
-- ones), the tier with the greatest min_conversions not above `conversions`; no row
-- when none applies.  Plain SQL returning a set, so that it is inlined into its
-- callers' statements (a conversion's, and the set-based conversion's join over all
-- of a load's beneficiaries): no call, and no plan of its own, per rule.
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

-- How many referrals `customer` has converted as a referrer in the program, counted
-- up to `up_to` (NULL: all): callers pass the top tier or milestone, all they compare
-- the count with, so that a referrer with 50,000 conversions costs a conversion no
-- more than one with just enough for the top tier.
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

-- Creates one reward, cut to what is left of the program's budget and of the
-- beneficiary's referrer_cap (both count rewards not reversed, clawbacks included).
-- Callers hold the program row lock when either applies.  Returns the new id, or
-- NULL when nothing is left or the reward already exists.
CREATE FUNCTION referral._create_reward(
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

	-- The reward and its event in one statement, the event from the values at hand:
	-- looking the new row up again would run a plan
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
		       referral._reward_payload(w.id, p.id, _create_reward.referral_id,
		                                _create_reward.beneficiary, _create_reward.kind,
		                                _create_reward.level, amount, p.currency, 'pending',
		                                _create_reward.order_ref, NULL)
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

-- The referee and referrer rewards of one order, in the order given.  Without a budget
-- or referrer_cap nothing depends on the rewards before, and they are inserted with
-- their events in one statement (an INSERT parses the table's CHECK constraints anew
-- each time); otherwise one by one, each cut to what the previous ones left.
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
		       referral._reward_payload(w.id, p.id, _create_rewards.referral_id, w.beneficiary,
		                                w.kind, w.level, w.amount, p.currency, 'pending',
		                                _create_rewards.order_ref, NULL)
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

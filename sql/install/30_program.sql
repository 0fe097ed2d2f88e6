-- Programs and their rules: reward rules (tiers, levels, variants), milestones and
-- A/B variants.  The *_id sequences are explicit so that pg_dump keeps them.

CREATE SEQUENCE referral.program_id_seq;
CREATE TABLE referral.program (
	tenant					text NOT NULL DEFAULT 'default',
	id						bigint NOT NULL DEFAULT pg_catalog.nextval('referral.program_id_seq'),
	name					text NOT NULL,
	starts_at				timestamptz NOT NULL,
	ends_at					timestamptz,
	attribution_window		interval NOT NULL,
	hold_period				interval NOT NULL,
	min_order_amount		numeric NOT NULL,
	recurring_window		interval,
	max_depth				int NOT NULL,
	currency				text NOT NULL,
	budget					numeric,
	referrer_cap			numeric,
	daily_referral_limit	int,
	created_at				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	hold_suspicious			boolean NOT NULL DEFAULT false,
	PRIMARY KEY (id, tenant),
	UNIQUE (tenant, name),
	CHECK (tenant <> '' AND name <> ''),
	CHECK (ends_at IS NULL OR ends_at > starts_at),
	CHECK (attribution_window >= '0'::interval AND hold_period >= '0'::interval),
	CHECK (recurring_window IS NULL OR recurring_window >= '0'::interval),
	CHECK (min_order_amount >= 0),
	CHECK (max_depth BETWEEN 1 AND 10),
	CHECK (currency ~ '^[A-Z]{3}$'),
	CHECK (budget IS NULL OR budget >= 0),
	CHECK (referrer_cap IS NULL OR referrer_cap >= 0),
	CHECK (daily_referral_limit IS NULL OR daily_referral_limit > 0)
);
ALTER SEQUENCE referral.program_id_seq OWNED BY referral.program.id;
COMMENT ON TABLE referral.program IS 'referral programs: active period, windows, limits, currency, budget';
SELECT pg_catalog.pg_extension_config_dump('referral.program', '');
SELECT pg_catalog.pg_extension_config_dump('referral.program_id_seq', '');

-- Decimals of a currency's minor unit (ISO 4217): rewards are rounded to these
-- (src/reward_core.c holds the table).
CREATE FUNCTION referral.currency_decimals(currency text)
RETURNS int
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_currency_decimals';
COMMENT ON FUNCTION referral.currency_decimals(text) IS 'decimals of the currency''s minor unit (ISO 4217): 0 for JPY, 3 for KWD, 2 for most';

CREATE SEQUENCE referral.reward_rule_id_seq;
CREATE TABLE referral.reward_rule (
	tenant			text NOT NULL,
	id				bigint NOT NULL DEFAULT pg_catalog.nextval('referral.reward_rule_id_seq'),
	program_id		bigint NOT NULL,
	beneficiary		text NOT NULL CHECK (beneficiary IN ('referrer', 'referee')),
	percent			numeric NOT NULL CHECK (percent BETWEEN 0 AND 100),
	fixed			numeric NOT NULL CHECK (fixed >= 0),
	cap				numeric CHECK (cap IS NULL OR cap >= 0),
	level			int NOT NULL CHECK (level >= 1),
	min_conversions	int NOT NULL CHECK (min_conversions >= 0),
	reward_type		text NOT NULL CHECK (reward_type IN ('credit', 'discount', 'cash', 'points', 'product')),
	variant			text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, id),
	FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant),
	CHECK (beneficiary = 'referrer' OR level = 1),
	CHECK (percent > 0 OR fixed > 0)
);
ALTER SEQUENCE referral.reward_rule_id_seq OWNED BY referral.reward_rule.id;
-- One rule per tier: two rules for the same tier would make the amount ambiguous.
CREATE UNIQUE INDEX reward_rule_one_per_tier ON referral.reward_rule
	(tenant, program_id, beneficiary, level, COALESCE(variant, ''), min_conversions);
COMMENT ON TABLE referral.reward_rule IS 'reward rules: amount = fixed + percent of the order, cut to cap; tiers by min_conversions, chain levels, optional A/B variant';
SELECT pg_catalog.pg_extension_config_dump('referral.reward_rule', '');
SELECT pg_catalog.pg_extension_config_dump('referral.reward_rule_id_seq', '');

CREATE SEQUENCE referral.milestone_id_seq;
CREATE TABLE referral.milestone (
	tenant		text NOT NULL,
	id			bigint NOT NULL DEFAULT pg_catalog.nextval('referral.milestone_id_seq'),
	program_id	bigint NOT NULL,
	conversions	int NOT NULL CHECK (conversions > 0),
	amount		numeric NOT NULL CHECK (amount > 0),
	reward_type	text NOT NULL CHECK (reward_type IN ('credit', 'discount', 'cash', 'points', 'product')),
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, id),
	FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant),
	UNIQUE (tenant, program_id, conversions)
);
ALTER SEQUENCE referral.milestone_id_seq OWNED BY referral.milestone.id;
COMMENT ON TABLE referral.milestone IS 'one-time bonuses for a referrer reaching a number of conversions';
SELECT pg_catalog.pg_extension_config_dump('referral.milestone', '');
SELECT pg_catalog.pg_extension_config_dump('referral.milestone_id_seq', '');

CREATE SEQUENCE referral.variant_id_seq;
CREATE TABLE referral.variant (
	tenant		text NOT NULL,
	id			bigint NOT NULL DEFAULT pg_catalog.nextval('referral.variant_id_seq'),
	program_id	bigint NOT NULL,
	name		text NOT NULL CHECK (name <> ''),
	weight		int NOT NULL CHECK (weight > 0),
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, id),
	FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant),
	UNIQUE (tenant, program_id, name)
);
ALTER SEQUENCE referral.variant_id_seq OWNED BY referral.variant.id;
COMMENT ON TABLE referral.variant IS 'A/B variants of a program; referrers are split between them by weight';
SELECT pg_catalog.pg_extension_config_dump('referral.variant', '');
SELECT pg_catalog.pg_extension_config_dump('referral.variant_id_seq', '');

-- The program row, or SQLSTATE RF003 naming the unknown id.
CREATE FUNCTION referral._program(program bigint)
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
COMMENT ON FUNCTION referral._program(bigint) IS 'internal: a program by id, or an error naming the unknown id';

-- Raises 22023 (invalid_parameter_value) with the given message unless ok.
CREATE FUNCTION referral._require(ok boolean, message text, hint text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF ok IS NOT TRUE AND hint IS NULL THEN
		RAISE EXCEPTION '%', message USING ERRCODE = 'invalid_parameter_value';
	ELSIF ok IS NOT TRUE THEN
		RAISE EXCEPTION '%', message USING ERRCODE = 'invalid_parameter_value', HINT = hint;
	END IF;
END
$$;
COMMENT ON FUNCTION referral._require(boolean, text, text) IS 'internal: raise invalid_parameter_value (22023) with a message unless the condition holds';

-- Whether an amount is a finite number (numeric also holds NaN and +-Infinity,
-- which compare as greater than every number and would pass a ">= 0" check).
CREATE FUNCTION referral._finite(amount numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT amount IS NULL OR (amount <> 'NaN'::numeric AND amount < 'Infinity'::numeric AND amount > '-Infinity'::numeric)
$$;
COMMENT ON FUNCTION referral._finite(numeric) IS 'internal: NULL or a finite number (not NaN, not infinite)';

-- Raises 22023 naming the argument unless each given amount is a finite number.
CREATE FUNCTION referral._require_finite(names text[], amounts numeric[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	FOR i IN 1 .. cardinality(names) LOOP
		PERFORM referral._require(referral._finite(amounts[i]),
			format('%s must be a finite number (got %s)', names[i], amounts[i]));
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._require_finite(text[], numeric[]) IS 'internal: raise 22023 naming the first amount that is NaN or infinite';

-- The amount terms of a reward rule or a referee offer (`what` names it): fixed plus
-- percent of the order amount, cut to cap.
CREATE FUNCTION referral._require_amount_terms(percent numeric, fixed numeric, cap numeric, what text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM referral._require(percent BETWEEN 0 AND 100,
		format('percent must be between 0 and 100 (got %s)', COALESCE(percent::text, 'NULL')));
	PERFORM referral._require(fixed >= 0,
		format('fixed must not be negative (got %s)', COALESCE(fixed::text, 'NULL')));
	PERFORM referral._require(percent > 0 OR fixed > 0,
		format('%s needs a positive percent or fixed amount', what));
	PERFORM referral._require(cap IS NULL OR cap >= 0,
		format('cap must not be negative (got %s)', cap));
END
$$;
COMMENT ON FUNCTION referral._require_amount_terms(numeric, numeric, numeric, text)
	IS 'internal: raise 22023 unless percent, fixed and cap make an amount rule';

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
		format('currency must be an ISO 4217 code of three upper-case letters (got %L)', referral._excerpt(currency)));
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
		RAISE EXCEPTION 'program "%" already exists in tenant "%"', referral._excerpt(name), referral._excerpt(tenant)
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Program names are unique per tenant.';
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral.create_program(text, text, timestamptz, timestamptz, interval, interval, numeric, interval, int, text, numeric, numeric, int, boolean)
	IS 'create a referral program and return its id (hold_suspicious: approve_due holds the rewards of suspicious referrals until released)';

CREATE FUNCTION referral.add_reward(
	program bigint,
	beneficiary text,
	percent numeric DEFAULT 0,
	fixed numeric DEFAULT 0,
	cap numeric DEFAULT NULL,
	level int DEFAULT 1,
	min_conversions int DEFAULT 0,
	reward_type text DEFAULT 'credit',
	variant text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p referral.program := referral._program(program);
	new_id bigint;
BEGIN
	PERFORM referral._require_finite(ARRAY['percent', 'fixed', 'cap'], ARRAY[percent, fixed, cap]);
	PERFORM referral._require(beneficiary IN ('referrer', 'referee'),
		format('beneficiary must be ''referrer'' or ''referee'' (got %L)', referral._excerpt(beneficiary)));
	PERFORM referral._require_amount_terms(percent, fixed, cap, 'a reward rule');
	PERFORM referral._require(level >= 1,
		format('level must be 1 or more (got %s)', COALESCE(level::text, 'NULL')));
	PERFORM referral._require(beneficiary = 'referrer' OR level = 1,
		format('a referee rule has level 1 (got %s)', level));
	PERFORM referral._require(level <= p.max_depth,
		format('level %s exceeds the program''s max_depth %s', level, p.max_depth),
		'Chain levels above max_depth are never paid; raise max_depth or use a lower level.');
	PERFORM referral._require(min_conversions >= 0,
		format('min_conversions must not be negative (got %s)', COALESCE(min_conversions::text, 'NULL')));
	PERFORM referral._require(reward_type IN ('credit', 'discount', 'cash', 'points', 'product'),
		format('unknown reward_type %L', referral._excerpt(reward_type)),
		'reward_type is one of credit, discount, cash, points, product.');
	PERFORM referral._require(variant IS NULL OR EXISTS (
			SELECT 1 FROM referral.variant v WHERE v.program_id = p.id AND v.name = add_reward.variant),
		format('variant %L does not exist in program %s', referral._excerpt(variant), p.id),
		'Add it first with referral.add_variant().');

	INSERT INTO referral.reward_rule AS r
		(tenant, program_id, beneficiary, percent, fixed, cap, level, min_conversions, reward_type, variant)
	VALUES
		(p.tenant, p.id, add_reward.beneficiary, add_reward.percent, add_reward.fixed,
		 add_reward.cap, add_reward.level, add_reward.min_conversions, add_reward.reward_type,
		 add_reward.variant)
	ON CONFLICT DO NOTHING
	RETURNING r.id INTO new_id;
	IF new_id IS NULL THEN
		RAISE EXCEPTION 'program % already has a % rule for level %, variant %, min_conversions %',
			p.id, beneficiary, level, COALESCE(referral._excerpt(variant), '(none)'), min_conversions
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Each tier is one rule; give the new one another min_conversions.';
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral.add_reward(bigint, text, numeric, numeric, numeric, int, int, text, text)
	IS 'add a reward rule (tier, chain level, optional variant) to a program and return its id';

CREATE FUNCTION referral.add_milestone(
	program bigint,
	conversions int,
	amount numeric,
	reward_type text DEFAULT 'credit')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p referral.program := referral._program(program);
	new_id bigint;
BEGIN
	PERFORM referral._require_finite(ARRAY['amount'], ARRAY[amount]);
	PERFORM referral._require(conversions > 0,
		format('conversions must be positive (got %s)', COALESCE(conversions::text, 'NULL')));
	PERFORM referral._require(amount > 0,
		format('amount must be positive (got %s)', COALESCE(amount::text, 'NULL')));
	PERFORM referral._require(reward_type IN ('credit', 'discount', 'cash', 'points', 'product'),
		format('unknown reward_type %L', referral._excerpt(reward_type)),
		'reward_type is one of credit, discount, cash, points, product.');
	INSERT INTO referral.milestone AS m (tenant, program_id, conversions, amount, reward_type)
	VALUES (p.tenant, p.id, add_milestone.conversions, add_milestone.amount, add_milestone.reward_type)
	ON CONFLICT DO NOTHING
	RETURNING m.id INTO new_id;
	IF new_id IS NULL THEN
		RAISE EXCEPTION 'program % already has a milestone at % conversions', p.id, conversions
			USING ERRCODE = 'duplicate_object';
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral.add_milestone(bigint, int, numeric, text)
	IS 'add a one-time bonus for referrers reaching a number of conversions; returns its id';

CREATE FUNCTION referral.add_variant(program bigint, name text, weight int DEFAULT 1)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p referral.program := referral._program(program);
	new_id bigint;
BEGIN
	PERFORM referral._require(NULLIF(btrim(name), '') IS NOT NULL, 'variant name must not be empty');
	PERFORM referral._require(weight > 0,
		format('weight must be positive (got %s)', COALESCE(weight::text, 'NULL')));
	INSERT INTO referral.variant AS v (tenant, program_id, name, weight)
	VALUES (p.tenant, p.id, add_variant.name, add_variant.weight)
	ON CONFLICT DO NOTHING
	RETURNING v.id INTO new_id;
	IF new_id IS NULL THEN
		RAISE EXCEPTION 'program % already has a variant %', p.id, quote_literal(referral._excerpt(name))
			USING ERRCODE = 'duplicate_object';
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral.add_variant(bigint, text, int)
	IS 'add an A/B variant to a program (weight = its share of referrers); returns its id';

-- The variant a referrer is in: a stable hash of (program, customer) picks a slot of
-- the cumulative weights, variants in creation order.  NULL when the program has none.
CREATE FUNCTION referral.variant_of(program bigint, customer text)
RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	WITH slots AS (
		SELECT v.name,
		       sum(v.weight) OVER (ORDER BY v.id) AS upto,
		       sum(v.weight) OVER () AS total
		  FROM referral.variant v
		 WHERE v.program_id = variant_of.program
	)
	SELECT s.name
	  FROM slots s
	 WHERE (('x' || substr(encode(sha256(convert_to(variant_of.program::text || ':' || variant_of.customer, 'UTF8')), 'hex'), 1, 15))::bit(60)::bigint
	        % s.total) < s.upto
	 ORDER BY s.upto
	 LIMIT 1
$$;
COMMENT ON FUNCTION referral.variant_of(bigint, text)
	IS 'the A/B variant a referrer is assigned to in a program (stable hash of program and customer, by weight)';

-- referral 0.2 -> 0.3.  Each section names the change it carries; together they
-- must give exactly the catalog of a fresh 0.3 install (test/upgrade.sh checks).
\echo Use "ALTER EXTENSION referral UPDATE TO '0.3'" to load this file. \quit

-- error messages quote at most an excerpt of their input:

CREATE FUNCTION referral._excerpt(value text)
RETURNS text
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_excerpt_sql';
COMMENT ON FUNCTION referral._excerpt(text) IS
'internal: a value as error messages quote it: its first 32 characters, and "..." when cut';
REVOKE EXECUTE ON FUNCTION referral._excerpt(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION referral.create_program(
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
	daily_referral_limit int DEFAULT NULL)
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

	INSERT INTO referral.program AS p
		(tenant, name, starts_at, ends_at, attribution_window, hold_period, min_order_amount,
		 recurring_window, max_depth, currency, budget, referrer_cap, daily_referral_limit)
	VALUES
		(create_program.tenant, create_program.name, create_program.starts_at,
		 create_program.ends_at, create_program.attribution_window, create_program.hold_period,
		 create_program.min_order_amount, create_program.recurring_window,
		 create_program.max_depth, create_program.currency, create_program.budget,
		 create_program.referrer_cap, create_program.daily_referral_limit)
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

CREATE OR REPLACE FUNCTION referral.add_reward(
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
	PERFORM referral._require(percent BETWEEN 0 AND 100,
		format('percent must be between 0 and 100 (got %s)', COALESCE(percent::text, 'NULL')));
	PERFORM referral._require(fixed >= 0,
		format('fixed must not be negative (got %s)', COALESCE(fixed::text, 'NULL')));
	PERFORM referral._require(percent > 0 OR fixed > 0,
		'a reward rule needs a positive percent or fixed amount');
	PERFORM referral._require(cap IS NULL OR cap >= 0,
		format('cap must not be negative (got %s)', cap));
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

CREATE OR REPLACE FUNCTION referral.add_milestone(
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

CREATE OR REPLACE FUNCTION referral.add_variant(program bigint, name text, weight int DEFAULT 1)
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

-- Checkout: the referee's first-order offer and the customer's store credit, called
-- by the shop's checkout in the order's own transaction.  Each use and each spend is
-- keyed by the order (order_ref), so that a retried checkout gets the same figure and
-- changes nothing more; a partial unique index (one live use per referral) and row
-- locks on the customer's credit rewards make two concurrent checkouts safe.

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
-- The refund of an order finds its use by the same key (the attributed order names
-- its referral).
CREATE UNIQUE INDEX offer_use_once ON referral.offer_use (tenant, referral_id) WHERE restored_at IS NULL;
-- An order never attributed (cancelled before it was paid, or below the program's
-- minimum) has only its id to find its live use by, when it is reversed.
CREATE INDEX offer_use_live_order ON referral.offer_use (tenant, order_ref) WHERE restored_at IS NULL;
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
-- The balance, and what is left of each reward: a reward's spends are its
-- beneficiary's, in its currency (spend_credit writes them so).
CREATE INDEX credit_spend_customer ON referral.credit_spend (tenant, customer, currency) WHERE refunded_at IS NULL;
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
LANGUAGE sql IMMUTABLE
AS $$ SELECT referral._check_key(order_ref, 'order_ref', 'order_ref') $$;
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

-- Whether a checkout's customer, order_ref and amount pass _check_customer,
-- _check_order_ref and _check_amount.  An SQL function without SET or STRICT, so
-- that the planner inlines it (and _key_ok in it): a valid call runs no function of
-- its own.
CREATE FUNCTION referral._checkout_args_ok(customer text, order_ref text, amount numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT referral._key_ok(customer) AND referral._key_ok(order_ref)
	   AND amount >= 0 AND amount < 'Infinity'::numeric
$$;
COMMENT ON FUNCTION referral._checkout_args_ok(text, text, numeric) IS 'internal: whether checkout arguments are a usable customer, order_ref and amount (inlined)';

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
	PERFORM referral._require_amount_terms(percent, fixed, cap, 'a referee offer');
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
	-- The referral's offer: its variant's own first, else the variant-less one.  The
	-- minimum is also the program's: an order below it never converts, so that its
	-- refund could not give the offer back.  The discount never exceeds the order.
	-- Written out here and in use_offer (not an SQL function), as Citus plans no
	-- SQL function with parameters.
	RETURN QUERY
	SELECT r.id, o.discount, o.currency, o.expires_at
	  FROM (SELECT LEAST(referral.reward_amount(offer.order_amount, o.percent, o.fixed, o.cap, p.currency),
	                     trunc(offer.order_amount, referral.currency_decimals(p.currency))) AS discount,
	               p.currency, r.created_at + o.valid_for AS expires_at,
	               GREATEST(o.min_order_amount, p.min_order_amount) AS min_order_amount
	          FROM referral.referee_offer o
	          JOIN referral.program p ON p.id = o.program_id AND p.tenant = o.tenant
	         WHERE o.tenant = r.tenant AND o.program_id = r.program_id
	           AND (o.variant IS NULL OR o.variant = r.variant)
	         ORDER BY o.variant IS NULL
	         LIMIT 1) o
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
	r_id bigint;
	r_tenant text;
	used_ref text;
	used_discount numeric;
	event_id bigint;
BEGIN
	-- The argument checks as one inlined expression; the check functions raise the
	-- error when it fails.
	IF referral._checkout_args_ok(customer, order_ref, order_amount) IS NOT TRUE THEN
		PERFORM referral._check_customer(customer);
		PERFORM referral._check_order_ref(order_ref);
		PERFORM referral._check_amount('order_amount', order_amount);
	END IF;

	-- The referral and its offer, the use and its event in one statement.  A live
	-- use (this order's, or another's, or a concurrent checkout's) makes the insert
	-- conflict on offer_use_once, and then nothing is written.  The referral must
	-- be pending, or converted by this very order (inserted before this call, in
	-- the same transaction).  The offer as in offer().  Every table is the tenant's
	-- (the tenant given), so that Citus routes the statement to its shard.
	WITH x AS (
		SELECT x.id, x.tenant, x.program_id, o.offer_id, o.discount, o.currency,
		       (x.status = 'pending' OR (x.status = 'converted' AND x.converting_order = use_offer.order_ref))
		       AND o.expires_at > now() AND use_offer.order_amount >= o.min_order_amount AND o.discount > 0 AS usable
		  FROM referral.referral x
		  LEFT JOIN LATERAL (
			SELECT o.id AS offer_id,
			       LEAST(referral.reward_amount(use_offer.order_amount, o.percent, o.fixed, o.cap, p.currency),
			             trunc(use_offer.order_amount, referral.currency_decimals(p.currency))) AS discount,
			       p.currency, x.created_at + o.valid_for AS expires_at,
			       GREATEST(o.min_order_amount, p.min_order_amount) AS min_order_amount
			  FROM referral.referee_offer o
			  JOIN referral.program p ON p.id = o.program_id AND p.tenant = o.tenant
			 WHERE o.tenant = use_offer.tenant AND o.program_id = x.program_id
			   AND (o.variant IS NULL OR o.variant = x.variant)
			 ORDER BY o.variant IS NULL
			 LIMIT 1) o ON true
		 WHERE x.referee = use_offer.customer AND x.tenant = use_offer.tenant AND x.reason IS NULL
	), u AS (
		INSERT INTO referral.offer_use AS u
			(tenant, referral_id, offer_id, customer, order_ref, order_amount, discount, currency)
		SELECT use_offer.tenant, x.id, x.offer_id, use_offer.customer, use_offer.order_ref,
		       use_offer.order_amount, x.discount, x.currency
		  FROM x WHERE x.usable
		ON CONFLICT DO NOTHING
		RETURNING u.discount
	), e AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT use_offer.tenant, 'offer_used',
		       jsonb_build_object('referral_id', x.id, 'program_id', x.program_id, 'offer_id', x.offer_id,
		                          'customer', use_offer.customer, 'order_ref', use_offer.order_ref,
		                          'order_amount', use_offer.order_amount, 'discount', u.discount,
		                          'currency', x.currency)
		  FROM u, x
		RETURNING e.id
	)
	SELECT x.id, x.tenant, u.discount, e.id INTO r_id, r_tenant, used_discount, event_id
	  FROM x LEFT JOIN u ON true LEFT JOIN e ON true;
	IF event_id IS NOT NULL THEN
		PERFORM pg_notify('referral_event',
			json_build_object('id', event_id, 'kind', 'offer_used', 'tenant', r_tenant)::text);
		RETURN used_discount;
	END IF;
	IF r_id IS NULL THEN
		PERFORM referral._require_tenant(use_offer.tenant);
		RETURN 0;
	END IF;
	-- Nothing written: this order's live use (a retry, whatever amount it passes)
	-- keeps its discount, another order's gives 0.
	SELECT u.order_ref, u.discount INTO used_ref, used_discount
	  FROM referral.offer_use u
	 WHERE u.tenant = r_tenant AND u.referral_id = r_id AND u.restored_at IS NULL;
	RETURN CASE WHEN used_ref = order_ref THEN used_discount ELSE 0 END;
END
$$;
COMMENT ON FUNCTION referral.use_offer(text, text, numeric, text)
	IS 'burn the referee''s offer for an order and return the discount (0 when none); the same order_ref again returns the same discount, another order 0';

-- Orders reversed (refunded, cancelled, deleted; called by _orders_reversed with the
-- orders attributed to a referral or holding a live offer use): the offers they used
-- are free again.
CREATE FUNCTION referral._offers_restored(tenant text, source text, order_refs text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	notified bigint;
BEGIN
	WITH restored AS (
		-- The use of an order attributed to the referral that used the offer, or of
		-- an order of this source never attributed.
		UPDATE referral.offer_use u SET restored_at = now()
		 WHERE u.tenant = _offers_restored.tenant AND u.order_ref = ANY (order_refs)
		   AND u.restored_at IS NULL
		   AND COALESCE((SELECT a.referral_id = u.referral_id FROM referral.attributed_order a
		                  WHERE a.tenant = u.tenant AND a.order_source = source
		                    AND a.order_ref = u.order_ref), true)
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
DECLARE
	earned numeric;
	spent numeric;
BEGIN
	-- One table per statement: Citus routes each to the tenant's shard.
	SELECT COALESCE(sum(w.amount), 0) INTO earned FROM referral.reward w
	 WHERE w.tenant = _credit_balance.tenant AND w.beneficiary = _credit_balance.customer
	   AND w.currency = _credit_balance.currency AND w.reward_type = 'credit'
	   AND (w.status = 'approved' OR (w.status = 'paid' AND w.payout_ref LIKE 'credit:%'));
	SELECT COALESCE(sum(s.amount), 0) INTO spent FROM referral.credit_spend s
	 WHERE s.tenant = _credit_balance.tenant AND s.customer = _credit_balance.customer
	   AND s.currency = _credit_balance.currency AND s.refunded_at IS NULL;
	RETURN earned - spent;
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
-- The generic plans are as good, and planned once.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	cur text := spend_credit.currency;
	spendable bigint[];
	already numeric;
	balance numeric;
	spent_on bigint[];
	spent_amounts numeric[];
	ids bigint[];
	remaining numeric[];
	want numeric;
	take numeric;
	spent numeric := 0;
	take_ids bigint[];
	takes numeric[];
	paid bigint[];
	event_id bigint;
BEGIN
	-- The argument checks as one inlined expression; the check functions raise the
	-- error when it fails.
	IF referral._checkout_args_ok(customer, order_ref, amount) IS NOT TRUE THEN
		PERFORM referral._check_customer(customer);
		PERFORM referral._check_order_ref(order_ref);
		PERFORM referral._check_amount('amount', amount);
	END IF;
	-- Citus plans a statement with parameters over several tables (or a subquery)
	-- only as a custom plan; the SET above ends with the call.
	IF current_setting('citus.version', true) IS NOT NULL THEN
		PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
	END IF;
	IF cur IS NULL THEN
		cur := referral._credit_currency(tenant, NULL);
	END IF;

	-- The customer's spendable rewards, locked in id order (as the ledger locks
	-- rewards): concurrent spends of one customer wait here, and each then reads, in
	-- the statement below, the spends committed before it.
	spendable := ARRAY(SELECT w.id FROM referral.reward w
	                    WHERE w.tenant = spend_credit.tenant AND w.beneficiary = spend_credit.customer
	                      AND w.currency = cur AND w.reward_type = 'credit'
	                      AND w.status = 'approved' AND w.kind <> 'clawback'
	                    ORDER BY w.id FOR UPDATE);

	-- In one statement: the customer's live spends in the currency (what this order
	-- spent before, a retry; their total; which rewards they drew from) and their
	-- credit rewards (the balance, as _credit_balance, and the spendable ones,
	-- oldest approved first).
	SELECT s.already, w.credit - COALESCE(s.total, 0), s.reward_ids, s.amounts, w.ids, w.amounts
	  INTO already, balance, spent_on, spent_amounts, ids, remaining
	  FROM (SELECT sum(s.amount) AS total,
	               sum(s.amount) FILTER (WHERE s.order_ref = spend_credit.order_ref) AS already,
	               array_agg(s.reward_id) AS reward_ids, array_agg(s.amount) AS amounts
	          FROM referral.credit_spend s
	         WHERE s.tenant = spend_credit.tenant AND s.customer = spend_credit.customer
	           AND s.currency = cur AND s.refunded_at IS NULL) s,
	       (SELECT COALESCE(sum(w.amount) FILTER (WHERE w.status = 'approved'
	                                              OR (w.status = 'paid' AND w.payout_ref LIKE 'credit:%')), 0) AS credit,
	               array_agg(w.id) FILTER (WHERE w.id = ANY (spendable)) AS ids,
	               array_agg(w.amount) FILTER (WHERE w.id = ANY (spendable)) AS amounts
	          FROM (SELECT w.id, w.amount, w.status, w.payout_ref FROM referral.reward w
	                 WHERE w.tenant = spend_credit.tenant AND w.beneficiary = spend_credit.customer
	                   AND w.currency = cur AND w.reward_type = 'credit'
	                 ORDER BY w.approved_at, w.id) w) w;
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
	want := LEAST(trunc(amount, referral.currency_decimals(cur)), GREATEST(balance, 0));
	-- Oldest approved first, each reward up to what is left of it; a reward spent
	-- whole becomes paid.
	FOR i IN 1 .. COALESCE(cardinality(ids), 0) LOOP
		EXIT WHEN spent >= want;
		FOR j IN 1 .. COALESCE(cardinality(spent_on), 0) LOOP
			IF spent_on[j] = ids[i] THEN
				remaining[i] := remaining[i] - spent_amounts[j];
			END IF;
		END LOOP;
		IF remaining[i] > 0 THEN
			take := LEAST(remaining[i], want - spent);
			take_ids := take_ids || ids[i];
			takes := takes || take;
			IF take = remaining[i] THEN
				paid := paid || ids[i];
			END IF;
			spent := spent + take;
		END IF;
	END LOOP;
	IF spent = 0 THEN
		RETURN 0;
	END IF;

	-- One spend from a reward not spent whole (the usual checkout) is one plain
	-- insert; otherwise the spends and the rewards spent whole, by id.
	IF paid IS NULL AND cardinality(take_ids) = 1 THEN
		INSERT INTO referral.credit_spend AS s (tenant, customer, order_ref, reward_id, amount, currency)
		VALUES (spend_credit.tenant, spend_credit.customer, spend_credit.order_ref, take_ids[1], spent, cur);
	ELSE
		IF cardinality(paid) > 1 THEN
			paid := ARRAY(SELECT x FROM unnest(paid) x ORDER BY 1);
		END IF;
		WITH s AS (
			INSERT INTO referral.credit_spend AS s (tenant, customer, order_ref, reward_id, amount, currency)
			SELECT spend_credit.tenant, spend_credit.customer, spend_credit.order_ref, x.id, x.take, cur
			  FROM unnest(take_ids, takes) AS x(id, take)
			 ORDER BY x.id
		)
		UPDATE referral.reward w
		   SET status = 'paid', paid_at = now(), payout_ref = 'credit:' || spend_credit.order_ref
		 WHERE w.tenant = spend_credit.tenant AND w.id = ANY (paid);
	END IF;
	event_id := referral._emit(tenant, 'credit_spent',
		jsonb_build_object('customer', spend_credit.customer, 'order_ref', spend_credit.order_ref,
		                   'amount', spent, 'currency', cur,
		                   'paid_reward_ids', COALESCE(to_jsonb(paid), '[]'::jsonb)));
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
	 WHERE w.tenant = refund_credit.tenant
	   AND w.id IN (SELECT s.reward_id FROM referral.credit_spend s
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
		 WHERE w.tenant = refund_credit.tenant AND w.id IN (SELECT r.reward_id FROM refunded r)
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

-- Referrals: redeeming a code at sign-up.  The first rule that applies rejects it, in
-- this order: blocked, program_inactive, self_referral, cycle, existing_customer,
-- daily_limit.
-- Every attempt is stored; a customer has at most one accepted (pending or
-- converted) referral per tenant, enforced by a unique index.

CREATE SEQUENCE referral.referral_id_seq;
CREATE TABLE referral.referral (
	tenant			text NOT NULL,
	id				bigint NOT NULL DEFAULT pg_catalog.nextval('referral.referral_id_seq'),
	program_id		bigint NOT NULL,
	referrer		text NOT NULL,
	referee			text NOT NULL,
	code			referral.referral_code NOT NULL,
	status			text NOT NULL CHECK (status IN ('pending', 'converted', 'rejected')),
	reason			text,
	variant			text,
	email_hash		bytea,
	ip_hash			bytea,
	device_hash		bytea,
	created_at		timestamptz NOT NULL,
	converted_at	timestamptz,
	converting_source text,
	converting_order text,
	reverted_at		timestamptz,
	voided_at		timestamptz,
	released_at		timestamptz,
	-- The redeem rules' reasons, or an operator's own once voided (void_referral).
	CONSTRAINT referral_reason_check
		CHECK (reason IN ('self_referral', 'cycle', 'existing_customer', 'program_inactive', 'daily_limit', 'blocked')
		       OR (voided_at IS NOT NULL AND reason <> '')),
	PRIMARY KEY (id, tenant),
	FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant),
	CHECK ((status = 'rejected') = (reason IS NOT NULL)),
	CHECK ((status = 'converted') = (converted_at IS NOT NULL))
) WITH (fillfactor = 70);
ALTER SEQUENCE referral.referral_id_seq OWNED BY referral.referral.id;
-- A conversion, and its reversal, update status, converted_at, converting_source,
-- converting_order and reverted_at: no index reads them, not even in a predicate, so
-- that the update can be HOT (no new entry in every index, most of the cost of an
-- update that is not), and the fillfactor leaves room on the page for new row
-- versions (README: how many fit, when one statement converts a whole page).
-- Indexes lead with the customer, the selective column, so that the planner picks
-- them even before the table is first analysed (the order triggers probe by referee).
-- An accepted referral is one without a reason (the CHECK above: status is not
-- rejected).
CREATE UNIQUE INDEX referral_one_accepted_per_referee
	ON referral.referral (referee, tenant) WHERE reason IS NULL;
-- Every referral of a customer, rejected attempts included.  The order trigger
-- probes it for every inserted order (src/order_candidates.c): a hash index finds
-- that a customer nobody referred has no referral without comparing text in the
-- database's collation, as a btree descent does.
CREATE INDEX referral_referee_hash ON referral.referral USING hash (referee);
CREATE INDEX referral_referrer ON referral.referral (referrer, tenant, program_id, created_at);
CREATE INDEX referral_program_created ON referral.referral (program_id, created_at);
COMMENT ON TABLE referral.referral IS 'referrals: every redeem attempt, accepted (pending, converted) or rejected with its reason';
COMMENT ON COLUMN referral.referral.created_at IS 'time of the redeem (its at argument); the attribution window starts here';
COMMENT ON COLUMN referral.referral.converting_order IS 'id of the order that converted the referral (in the tracked table named by converting_source)';
COMMENT ON COLUMN referral.referral.reverted_at IS 'when the converting order was last reversed (the referral went back to pending)';
COMMENT ON COLUMN referral.referral.voided_at IS 'when an operator rejected the accepted referral after the fact (void_referral); reason is then the operator''s';
COMMENT ON COLUMN referral.referral.released_at IS 'when an operator released the rewards that a hold_suspicious program held (release)';
SELECT pg_catalog.pg_extension_config_dump('referral.referral', '');
SELECT pg_catalog.pg_extension_config_dump('referral.referral_id_seq', '');

CREATE FUNCTION referral.redeem(
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
	-- A referral timed after its orders never converts, and it holds the customer's
	-- one accepted referral: a time years ahead is a unit mistake, not a plan.
	PERFORM referral._require(redeem.at <= now() + interval '10 years',
		format('redeem time %s is more than 10 years ahead', redeem.at),
		'Pass the time of the sign-up (at defaults to now()).');

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

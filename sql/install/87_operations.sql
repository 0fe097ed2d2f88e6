-- Operations and privacy: what an operator does by hand (void a referral, block a
-- customer, release rewards held as suspicious, build a payout batch) and a data
-- subject's requests (export, erasure).  grant_operator() grants them, with
-- approve_due and mark_paid; grant_app() grants none.

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
	PERFORM referral._grant_functions(role, ARRAY[
		'referral.approve_due(timestamptz)',
		'referral.mark_paid(bigint[], text)',
		'referral.void_referral(bigint, text)',
		'referral.block(text, text, text)',
		'referral.unblock(text, text)',
		'referral.release(bigint)',
		'referral.payout_batch(text, numeric, text, text)',
		'referral.export(text, text)',
		'referral.forget(text, text)',
		'referral.audit(bigint)']::regprocedure[]);
	EXECUTE format('GRANT SELECT ON referral.blocked, referral.suspicious_referrals TO %s', role);
END
$$;
COMMENT ON FUNCTION referral.grant_operator(regrole)
	IS 'grant a role what operations need: approve_due, mark_paid, void_referral, block, unblock, release, payout_batch, export, forget, audit, and the blocked and suspicious_referrals views';

-- The referral of an id, locked (FOR UPDATE), or SQLSTATE RF004 naming the unknown
-- id.  Its tenant, which never changes, is read first: the locking statement names
-- it, as every statement of the callers does, so that on Citus it runs on the
-- tenant's shard.
CREATE FUNCTION referral._lock_referral(referral_id bigint)
RETURNS referral.referral
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	t text;
	r referral.referral;
BEGIN
	SELECT x.tenant INTO t FROM referral.referral x WHERE x.id = _lock_referral.referral_id;
	SELECT * INTO r FROM referral.referral x WHERE x.id = _lock_referral.referral_id AND x.tenant = t FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'referral % does not exist', COALESCE(referral_id::text, 'NULL')
			USING ERRCODE = 'RF004', HINT = 'Referral ids are in referral.referral.';
	END IF;
	RETURN r;
END
$$;
COMMENT ON FUNCTION referral._lock_referral(bigint) IS 'internal: the referral of an id, locked, or RF004 naming an unknown id';

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
	-- No subscript as a whole new value: Citus 13 crashes deparsing an UPDATE whose
	-- SET value is one.
	UPDATE referral.member x
	   SET path = '{}'::bigint[] || x.path[cardinality(child.path):],
	       ancestors = trim_array(x.ancestors, cardinality(child.ancestors))
	 WHERE x.tenant = child.tenant AND x.path >= child.path
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
	r := referral._lock_referral(void_referral.referral_id);
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
	                                     WHERE c.tenant = r.tenant AND c.clawback_of = w.id
	                                       AND c.kind = 'clawback'), 0) > 0))
	  INTO to_reverse, changed
	  FROM referral.reward w
	 WHERE w.tenant = r.tenant AND w.referral_id = r.id AND w.kind <> 'clawback' AND w.status <> 'reversed';
	IF to_reverse IS NOT NULL THEN
		PERFORM referral._reverse_rewards(r.tenant, to_reverse);
	END IF;
	UPDATE referral.attributed_order o SET reversed_at = now()
	 WHERE o.tenant = r.tenant AND o.referral_id = r.id AND o.reversed_at IS NULL;

	UPDATE referral.referral x
	   SET status = 'rejected', reason = void_referral.reason, voided_at = now(),
	       converted_at = NULL, converting_source = NULL, converting_order = NULL
	 WHERE x.tenant = r.tenant AND x.id = r.id;
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
	r := referral._lock_referral(release.referral_id);
	IF r.released_at IS NOT NULL THEN
		RETURN 0;
	END IF;
	IF r.id = ANY (referral._held_referrals()) THEN
		SELECT count(*) INTO freed FROM referral.reward w
		 WHERE w.tenant = r.tenant AND w.referral_id = r.id AND w.status = 'pending';
	END IF;
	UPDATE referral.referral x SET released_at = now() WHERE x.tenant = r.tenant AND x.id = r.id;
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
			  JOIN referral.code c ON c.tenant = k.tenant AND c.code OPERATOR(referral.=) k.code
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
		'offers_used', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('referral_id', u.referral_id, 'order_ref', u.order_ref,
			                                    'order_amount', u.order_amount, 'discount', u.discount,
			                                    'currency', u.currency, 'used_at', u.used_at,
			                                    'restored_at', u.restored_at) ORDER BY u.id)
			  FROM referral.offer_use u
			 WHERE u.tenant = export.tenant AND u.customer = export.customer), '[]'),
		'credit_spends', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('order_ref', x.order_ref, 'reward_id', x.reward_id,
			                                    'amount', x.amount, 'currency', x.currency,
			                                    'spent_at', x.spent_at, 'refunded_at', x.refunded_at) ORDER BY x.id)
			  FROM referral.credit_spend x
			 WHERE x.tenant = export.tenant AND x.customer = export.customer), '[]'),
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
	programs bigint[];
	variants text[];
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
	-- chain tree (redeem), the codes of the customer and of their downline (a
	-- conversion below them locks its referrer's code before the referral, and
	-- before it reads the upline that pays them), then their referrals both ways.
	-- Every statement after sees what a transaction we waited for wrote.
	SELECT * INTO m FROM referral.member x WHERE x.tenant = forget.tenant AND x.customer = forget.customer;
	IF FOUND THEN
		PERFORM referral._lock_trees(forget.tenant, forget.customer, forget.customer);
		SELECT * INTO STRICT m FROM referral.member x WHERE x.tenant = forget.tenant AND x.id = m.id;
	END IF;
	PERFORM 1 FROM referral.code c
	 WHERE c.tenant = forget.tenant
	   AND (c.customer = forget.customer
	        OR (m.id IS NOT NULL AND c.customer IN (
	            SELECT x.customer FROM referral.member x
	             WHERE x.path > m.path AND x.path < m.path || 9223372036854775807::bigint
	               AND x.tenant = forget.tenant)))
	 ORDER BY c.code FOR UPDATE;
	PERFORM 1 FROM referral.referral r
	 WHERE r.tenant = forget.tenant AND (r.referee = forget.customer OR r.referrer = forget.customer)
	 ORDER BY r.id FOR UPDATE;
	PERFORM 1 FROM referral.reward w
	 WHERE w.tenant = forget.tenant AND w.beneficiary = forget.customer
	 ORDER BY w.id FOR UPDATE;

	-- Clicks on their codes lose their user agents; then the codes lose the key
	-- and the fingerprints, keeping the variant the key hashed to (one code per
	-- program; the variants computed here, as Citus takes no function of a column
	-- that is not immutable in a distributed UPDATE).
	programs := ARRAY(SELECT c.program_id FROM referral.code c
	                   WHERE c.tenant = forget.tenant AND c.customer = forget.customer);
	variants := ARRAY(SELECT referral.variant_of(p.id, forget.customer)
	                    FROM unnest(programs) WITH ORDINALITY p(id, n) ORDER BY p.n);
	UPDATE referral.click k SET user_agent = NULL
	  FROM referral.code c
	 WHERE c.tenant = forget.tenant AND c.customer = forget.customer
	   AND k.tenant = forget.tenant AND k.code OPERATOR(referral.=) c.code AND k.user_agent IS NOT NULL;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
	UPDATE referral.code c
	   SET customer = pseudo, email_hash = NULL, device_hash = NULL,
	       forgotten_variant = COALESCE(c.forgotten_variant, variants[array_position(programs, c.program_id)])
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
		 WHERE x.tenant = forget.tenant AND x.path >= m.path AND x.path < m.path || 9223372036854775807::bigint;
		GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
	END IF;

	UPDATE referral.block b SET customer = pseudo
	 WHERE b.tenant = forget.tenant AND b.customer = forget.customer;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	UPDATE referral.offer_use u SET customer = pseudo
	 WHERE u.tenant = forget.tenant AND u.customer = forget.customer;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
	UPDATE referral.credit_spend x SET customer = pseudo
	 WHERE x.tenant = forget.tenant AND x.customer = forget.customer;
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

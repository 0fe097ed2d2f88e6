-- Codes, share links and clicks.  A code is unique across all programs and tenants
-- under folding (O=0, I=L=1): the primary key's btree compares folded codes.

CREATE SEQUENCE referral.code_counter_seq MINVALUE 0 START 0 MAXVALUE 34359738367;
COMMENT ON SEQUENCE referral.code_counter_seq IS 'counter behind generated codes (fed through the keyed permutation)';
SELECT pg_catalog.pg_extension_config_dump('referral.code_counter_seq', '');

CREATE TABLE referral.code (
	tenant		text NOT NULL,
	code		referral.referral_code NOT NULL,
	program_id	bigint NOT NULL,
	customer	text NOT NULL,
	vanity		boolean NOT NULL,
	email_hash	bytea,
	device_hash	bytea,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	forgotten_variant text,
	PRIMARY KEY (code, tenant),
	FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant),
	UNIQUE (tenant, program_id, customer)
);
COMMENT ON COLUMN referral.code.forgotten_variant IS 'the A/B variant the holder had when forgotten (referral.forget): the pseudonym would hash to another one';
COMMENT ON TABLE referral.code IS 'referral codes: one per customer and program; email and device only as keyed hashes';
SELECT pg_catalog.pg_extension_config_dump('referral.code', '');

CREATE SEQUENCE referral.click_id_seq;
CREATE TABLE referral.click (
	tenant		text NOT NULL,
	id			bigint NOT NULL DEFAULT pg_catalog.nextval('referral.click_id_seq'),
	program_id	bigint NOT NULL,
	code		referral.referral_code NOT NULL,
	channel		text,
	ip_hash		bytea,
	user_agent	text,
	at			timestamptz NOT NULL,
	PRIMARY KEY (tenant, id),
	FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant)
);
ALTER SEQUENCE referral.click_id_seq OWNED BY referral.click.id;
CREATE INDEX click_code_at ON referral.click (code, at);
CREATE INDEX click_tenant_program_at ON referral.click (tenant, program_id, at);
COMMENT ON TABLE referral.click IS 'clicks on share links; the IP only as a keyed hash';
SELECT pg_catalog.pg_extension_config_dump('referral.click', '');
SELECT pg_catalog.pg_extension_config_dump('referral.click_id_seq', '');

-- Whether a key given by the application (a customer key, an order_ref) is usable:
-- not blank, at most 1000 bytes.  An SQL function without SET or STRICT, so that
-- the planner inlines it.
CREATE FUNCTION referral._key_ok(key text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT NULLIF(pg_catalog.btrim(key), '') IS NOT NULL AND pg_catalog.octet_length(key) <= 1000
$$;
COMMENT ON FUNCTION referral._key_ok(text) IS 'internal: whether a key given by the application is not blank and at most 1000 bytes (inlined)';

-- Raises 22023 unless a key given by the application is usable (_key_ok): `name`
-- names it when it is empty, `long_name` when it is too long.
CREATE FUNCTION referral._check_key(key text, name text, long_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF referral._key_ok(key) IS NOT TRUE THEN
		IF NULLIF(btrim(key), '') IS NULL THEN
			RAISE EXCEPTION '% must not be empty', name USING ERRCODE = 'invalid_parameter_value';
		END IF;
		RAISE EXCEPTION '% is too long (% bytes, at most 1000)', long_name, octet_length(key)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._check_key(text, text, text) IS 'internal: reject an empty or oversized key given by the application';

-- Checks a customer key given by the application.
CREATE FUNCTION referral._check_customer(customer text)
RETURNS void
LANGUAGE sql IMMUTABLE
AS $$ SELECT referral._check_key(customer, 'customer', 'customer key') $$;
COMMENT ON FUNCTION referral._check_customer(text) IS 'internal: reject empty or oversized customer keys';

-- Codes are unique across tenants, but the primary key is (code, tenant), so that
-- the table can be distributed by tenant: the check across tenants is here.  A
-- vanity code is checked under an advisory lock of its own; generated codes share
-- it (the counter makes them unique among themselves), so that a vanity code and
-- a generated one cannot both pass the check at once.  The lock is the calling
-- node's: on Citus, codes are issued on the coordinator.
CREATE FUNCTION referral._code_free_elsewhere(code referral.referral_code, tenant text, vanity boolean)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF vanity THEN
		PERFORM pg_advisory_xact_lock(1919250796, 1);	-- 'refl', 1: codes
	ELSE
		PERFORM pg_advisory_xact_lock_shared(1919250796, 1);
	END IF;
	RETURN code IS NULL OR NOT EXISTS (
		SELECT 1 FROM referral.code c
		 WHERE c.code OPERATOR(referral.=) _code_free_elsewhere.code
		   AND c.tenant <> _code_free_elsewhere.tenant);
END
$$;
COMMENT ON FUNCTION referral._code_free_elsewhere(referral.referral_code, text, boolean)
	IS 'internal: whether no other tenant holds the code (under the codes'' advisory lock)';

CREATE FUNCTION referral.issue_code(
	program bigint,
	customer text,
	vanity referral.referral_code DEFAULT NULL,
	email text DEFAULT NULL,
	device text DEFAULT NULL)
RETURNS referral.referral_code
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	email_h bytea := referral._hash('email', issue_code.email);
	device_h bytea := referral._hash('device', issue_code.device);
	program_tenant text;
	key bytea;
	candidate referral.referral_code;
	issued referral.referral_code;
	old_email_h bytea;
	old_device_h bytea;
BEGIN
	LOOP
		-- The program, the customer's existing code and the code key in one
		-- statement: this runs once per customer, and each statement of a
		-- PL/pgSQL function pays the executor's start-up.  The customer's
		-- existing code wins (a later vanity is ignored); new fingerprints given
		-- now are kept.  A repeat call (an app showing the customer's code) writes
		-- nothing unless a fingerprint changed.
		SELECT p.tenant, c.code, c.email_hash, c.device_hash, s.code_key
		  INTO program_tenant, issued, old_email_h, old_device_h, key
		  FROM referral.program p
		  LEFT JOIN referral.code c
		    ON c.tenant = p.tenant AND c.program_id = p.id AND c.customer = issue_code.customer
		  LEFT JOIN referral.secret s ON true
		 WHERE p.id = issue_code.program;
		IF NOT FOUND THEN
			-- Raises RF003; a program committed since the look-up's snapshot is
			-- read again by the next pass.
			PERFORM referral._program(issue_code.program);
			CONTINUE;
		END IF;
		IF NULLIF(btrim(issue_code.customer), '') IS NULL OR octet_length(issue_code.customer) > 1000 THEN
			PERFORM referral._check_customer(issue_code.customer);	-- raises 22023
		END IF;
		IF issued IS NOT NULL THEN
			IF (email_h IS NOT NULL AND email_h IS DISTINCT FROM old_email_h)
			   OR (device_h IS NOT NULL AND device_h IS DISTINCT FROM old_device_h) THEN
				UPDATE referral.code c
				   SET email_hash = COALESCE(email_h, c.email_hash),
				       device_hash = COALESCE(device_h, c.device_hash)
				 WHERE c.tenant = program_tenant AND c.program_id = issue_code.program
				   AND c.customer = issue_code.customer;
			END IF;
			RETURN issued;
		END IF;

		IF issue_code.vanity IS NOT NULL THEN
			candidate := issue_code.vanity;
		ELSE
			IF key IS NULL THEN
				key := (referral._secret()).code_key;	-- the database's first code
			END IF;
			candidate := referral._generate_code(nextval('referral.code_counter_seq'), key);
		END IF;
		IF NOT referral._code_free_elsewhere(candidate, program_tenant, issue_code.vanity IS NOT NULL) THEN
			IF issue_code.vanity IS NOT NULL THEN
				PERFORM referral._code_taken(issue_code.vanity);	-- raises RF001
			END IF;
			CONTINUE;	-- a generated code taken as a vanity code: the next counter value
		END IF;

		INSERT INTO referral.code AS c (tenant, code, program_id, customer, vanity, email_hash, device_hash)
		VALUES (program_tenant, candidate, issue_code.program, issue_code.customer,
		        issue_code.vanity IS NOT NULL, email_h, device_h)
		ON CONFLICT DO NOTHING
		RETURNING c.code INTO issued;
		IF issued IS NOT NULL THEN
			RETURN issued;
		END IF;

		-- Nothing inserted: either the code is taken, or this customer got a code
		-- from a concurrent call (the loop's next look-up returns it).
		IF NOT EXISTS (SELECT 1 FROM referral.code c
		                WHERE c.tenant = program_tenant AND c.program_id = issue_code.program
		                  AND c.customer = issue_code.customer)
		   AND issue_code.vanity IS NOT NULL THEN
			PERFORM referral._code_taken(issue_code.vanity);	-- raises RF001
		END IF;
		-- A generated code already taken as a vanity code: take the next counter value.
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral.issue_code(bigint, text, referral.referral_code, text, text)
	IS 'the customer''s referral code in a program (generated, or the given vanity code the first time); the same code on every later call';

-- Codes for many customers at once (a program's launch for an existing customer
-- base): one set-based INSERT instead of a call per customer.
CREATE FUNCTION referral.issue_codes(program bigint, customers text[])
RETURNS TABLE(customer text, code referral.referral_code)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	p referral.program := referral._program(issue_codes.program);
	key bytea;
	bad_position bigint;
	bad_customer text;
	plain boolean;
	missing text[];		-- customers without a code in this pass
	codes referral.referral_code[];	-- their new codes, in the same order
	taken referral.referral_code[];	-- those of the codes held in another tenant
	issued bigint;
BEGIN
	PERFORM referral._require(customers IS NOT NULL, 'customers must not be NULL');
	SELECT u.n, u.c INTO bad_position, bad_customer
	  FROM unnest(customers) WITH ORDINALITY u(c, n)
	 WHERE NULLIF(btrim(u.c), '') IS NULL OR octet_length(u.c) > 1000
	 ORDER BY u.n LIMIT 1;
	IF bad_position IS NOT NULL THEN
		RAISE EXCEPTION 'customer % of the array is %', bad_position,
			CASE WHEN bad_customer IS NULL THEN 'NULL'
			     WHEN octet_length(bad_customer) > 1000
			     THEN format('too long (%s bytes, at most 1000)', octet_length(bad_customer))
			     ELSE 'empty' END
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Nothing was issued; remove or fix that element and call again.';
	END IF;

	key := (referral._secret()).code_key;
	PERFORM referral._code_free_elsewhere(NULL, p.tenant, false);	-- the codes' shared lock
	-- Each pass issues a generated code to every customer still without one.  A
	-- code held in another tenant (a vanity code) is left out, and a row skipped
	-- (ON CONFLICT) when its code was taken in this tenant or the customer got a
	-- code from a concurrent call; the next pass sees the latter's code and gives
	-- the others the next counter values.  For a long list the first pass is a
	-- plain INSERT, which spares ON CONFLICT's probe of both unique indexes before
	-- each row (a third of the INSERT's time), and fails as a whole on a conflict.
	-- Short lists skip it: its subtransaction would gain them nothing, and more
	-- than 64 subtransactions in one transaction (a loop of small calls) slow
	-- every session's snapshots.  The statements are uncorrelated, as Citus plans
	-- them when the table is distributed.
	plain := cardinality(customers) >= 1000;
	LOOP
		missing := ARRAY(SELECT u.c FROM unnest(customers) u(c)
		                 EXCEPT
		                 SELECT k.customer FROM referral.code k
		                  WHERE k.tenant = p.tenant AND k.program_id = p.id AND k.customer = ANY (customers));
		EXIT WHEN cardinality(missing) = 0;
		codes := ARRAY(SELECT referral._generate_code(nextval('referral.code_counter_seq'), key)
		                 FROM unnest(missing));
		taken := ARRAY(SELECT o.code FROM referral.code o
		                WHERE o.code OPERATOR(referral.=) ANY (codes) AND o.tenant <> p.tenant);
		IF plain THEN
			plain := false;
			BEGIN
				INSERT INTO referral.code AS k (tenant, code, program_id, customer, vanity)
				SELECT p.tenant, g.code, p.id, g.customer, false
				  FROM unnest(codes, missing) g(code, customer)
				 WHERE NOT g.code OPERATOR(referral.=) ANY (taken);
				GET DIAGNOSTICS issued = ROW_COUNT;
			EXCEPTION WHEN unique_violation THEN
				issued := 0;
			END;
		ELSE
			INSERT INTO referral.code AS k (tenant, code, program_id, customer, vanity)
			SELECT p.tenant, g.code, p.id, g.customer, false
			  FROM unnest(codes, missing) g(code, customer)
			 WHERE NOT g.code OPERATOR(referral.=) ANY (taken)
			ON CONFLICT DO NOTHING;
			GET DIAGNOSTICS issued = ROW_COUNT;
		END IF;
		EXIT WHEN issued = cardinality(missing);
	END LOOP;

	RETURN QUERY
		SELECT u.c, k.code
		  FROM (SELECT u.c, min(u.n) AS n FROM unnest(customers) WITH ORDINALITY u(c, n)
		         GROUP BY u.c) u
		  JOIN referral.code k ON k.tenant = p.tenant AND k.program_id = p.id AND k.customer = u.c
		 ORDER BY u.n;
END
$$;
COMMENT ON FUNCTION referral.issue_codes(bigint, text[])
	IS 'the codes of many customers in a program, generated in one statement for those without one; each customer once, in the order given';

CREATE FUNCTION referral.share_link(code referral.referral_code, base_url text, channel text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT referral._share_link(code::text, base_url, channel)
$$;
COMMENT ON FUNCTION referral.share_link(referral.referral_code, text, text)
	IS 'base_url with ref=CODE (and utm_source/utm_medium for a channel) added, percent-encoded per RFC 3986';

-- SQLSTATE RF001 for a vanity code someone holds.
CREATE FUNCTION referral._code_taken(vanity referral.referral_code)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'referral code "%" is already taken', vanity::text
		USING ERRCODE = 'RF001',
			  DETAIL = 'Codes are unique across all programs and tenants, and O = 0, I = L = 1 when codes are compared.',
			  HINT = 'Choose another vanity code, or leave it NULL for a generated one.';
END
$$;
COMMENT ON FUNCTION referral._code_taken(referral.referral_code) IS 'internal: raises RF001 for a vanity code that is taken';

-- The code row, or SQLSTATE RF002 with a hint naming a generated code one typo away.
CREATE FUNCTION referral._code(code referral.referral_code)
RETURNS referral.code
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c referral.code;
	suggestion text;
BEGIN
	IF code IS NULL THEN
		RAISE EXCEPTION 'referral code must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO c FROM referral.code k WHERE k.code OPERATOR(referral.=) _code.code;
	IF FOUND THEN
		RETURN c;
	END IF;
	SELECT k.code::text INTO suggestion
	  FROM referral.code k
	 WHERE k.code OPERATOR(referral.=) ANY (referral._typo_neighbours(_code.code))
	   AND NOT k.vanity
	 ORDER BY k.code::text
	 LIMIT 1;
	IF suggestion IS NULL THEN
		RAISE EXCEPTION 'referral code "%" does not exist', code::text USING ERRCODE = 'RF002';
	END IF;
	RAISE EXCEPTION 'referral code "%" does not exist', code::text
		USING ERRCODE = 'RF002', HINT = format('Did you mean "%s"?', suggestion);
END
$$;
COMMENT ON FUNCTION referral._code(referral.referral_code) IS 'internal: a code row, or an error (RF002) whose hint names a code one typo away';

CREATE FUNCTION referral.record_click(
	code referral.referral_code,
	channel text DEFAULT NULL,
	ip inet DEFAULT NULL,
	user_agent text DEFAULT NULL,
	at timestamptz DEFAULT pg_catalog.now())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c referral.code := referral._code(record_click.code);
	new_id bigint;
BEGIN
	PERFORM referral._require(at IS NOT NULL AND isfinite(at), 'click time must be a finite time');
	PERFORM referral._require(channel IS NULL OR char_length(channel) <= 100,
		format('channel is too long (%s characters, at most 100)', char_length(channel)));
	INSERT INTO referral.click AS k (tenant, program_id, code, channel, ip_hash, user_agent, at)
	VALUES (c.tenant, c.program_id, c.code, NULLIF(record_click.channel, ''),
	        referral._hash('ip', host(record_click.ip)),
	        left(record_click.user_agent, 512), record_click.at)
	RETURNING k.id INTO new_id;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral.record_click(referral.referral_code, text, inet, text, timestamptz)
	IS 'record a click on a share link; returns the click id';

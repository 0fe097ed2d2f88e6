\echo Use "CREATE EXTENSION referral" to load this file. \quit
-- referral: install script, assembled by the Makefile from sql/install/*.sql in
-- file-name order.  Read it top to bottom in the order of SPEC.md.

COMMENT ON SCHEMA referral IS 'referral programs: codes, redeem rules, attribution chains, tiered rewards and a reward ledger';
-- The referral_code type (src/referral_code.c, src/code_core.c): a code as
-- issued, 3 to 12 characters of 0-9A-Z, held in 8 bytes passed by value.
-- Codes that read alike (O = 0, I = L = 1) are equal, sort together and hash
-- alike; each prints as written.  Then generated codes: 8 characters of the
-- unambiguous alphabet with a Damm check character, from a keyed
-- permutation of a counter.

CREATE TYPE referral.referral_code;

CREATE FUNCTION referral.referral_code_in(pg_catalog.cstring)
RETURNS referral.referral_code
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_code_in';
COMMENT ON FUNCTION referral.referral_code_in(pg_catalog.cstring) IS
'referral_code input: case-insensitive, spaces and hyphens ignored, 3 to 12 characters of 0-9A-Z; 22P02 naming the problem otherwise';

CREATE FUNCTION referral.referral_code_out(referral.referral_code)
RETURNS pg_catalog.cstring
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_code_out';
COMMENT ON FUNCTION referral.referral_code_out(referral.referral_code) IS
'referral_code output: the code as issued, upper case, no separators';

CREATE FUNCTION referral.referral_code_recv(pg_catalog.internal)
RETURNS referral.referral_code
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_code_recv';
COMMENT ON FUNCTION referral.referral_code_recv(pg_catalog.internal) IS
'referral_code binary input: a version byte (1) and the 8-byte value, validated; 22P03 otherwise';

CREATE FUNCTION referral.referral_code_send(referral.referral_code)
RETURNS pg_catalog.bytea
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_code_send';
COMMENT ON FUNCTION referral.referral_code_send(referral.referral_code) IS
'referral_code binary output: a version byte (1) and the 8-byte value';

CREATE TYPE referral.referral_code (
	INPUT = referral.referral_code_in,
	OUTPUT = referral.referral_code_out,
	RECEIVE = referral.referral_code_recv,
	SEND = referral.referral_code_send,
	INTERNALLENGTH = 8,
	PASSEDBYVALUE,
	ALIGNMENT = double,
	STORAGE = plain
);
COMMENT ON TYPE referral.referral_code IS
'a referral code: 3 to 12 characters of 0-9A-Z, case-insensitive input ignoring spaces and hyphens; O = 0 and I = L = 1 for equality, order and hashing; prints as issued';

-- Comparison functions: codes compare by their folded spelling (O as 0, I
-- and L as 1) in C collation, a prefix before its extensions.  They cannot
-- fail, so they are LEAKPROOF.

CREATE FUNCTION referral.referral_code_eq(referral.referral_code, referral.referral_code)
RETURNS boolean
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
AS 'MODULE_PATHNAME', 'referral_code_eq';
COMMENT ON FUNCTION referral.referral_code_eq(referral.referral_code, referral.referral_code) IS
'implementation of = for referral_code: the codes read alike (O = 0, I = L = 1)';

CREATE FUNCTION referral.referral_code_ne(referral.referral_code, referral.referral_code)
RETURNS boolean
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
AS 'MODULE_PATHNAME', 'referral_code_ne';
COMMENT ON FUNCTION referral.referral_code_ne(referral.referral_code, referral.referral_code) IS
'implementation of <> for referral_code';

CREATE FUNCTION referral.referral_code_lt(referral.referral_code, referral.referral_code)
RETURNS boolean
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
AS 'MODULE_PATHNAME', 'referral_code_lt';
COMMENT ON FUNCTION referral.referral_code_lt(referral.referral_code, referral.referral_code) IS
'implementation of < for referral_code (folded codes in C collation)';

CREATE FUNCTION referral.referral_code_le(referral.referral_code, referral.referral_code)
RETURNS boolean
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
AS 'MODULE_PATHNAME', 'referral_code_le';
COMMENT ON FUNCTION referral.referral_code_le(referral.referral_code, referral.referral_code) IS
'implementation of <= for referral_code (folded codes in C collation)';

CREATE FUNCTION referral.referral_code_gt(referral.referral_code, referral.referral_code)
RETURNS boolean
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
AS 'MODULE_PATHNAME', 'referral_code_gt';
COMMENT ON FUNCTION referral.referral_code_gt(referral.referral_code, referral.referral_code) IS
'implementation of > for referral_code (folded codes in C collation)';

CREATE FUNCTION referral.referral_code_ge(referral.referral_code, referral.referral_code)
RETURNS boolean
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
AS 'MODULE_PATHNAME', 'referral_code_ge';
COMMENT ON FUNCTION referral.referral_code_ge(referral.referral_code, referral.referral_code) IS
'implementation of >= for referral_code (folded codes in C collation)';

CREATE FUNCTION referral.referral_code_cmp(referral.referral_code, referral.referral_code)
RETURNS integer
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
AS 'MODULE_PATHNAME', 'referral_code_cmp';
COMMENT ON FUNCTION referral.referral_code_cmp(referral.referral_code, referral.referral_code) IS
'btree comparison of referral codes: -1, 0 or 1 on the folded codes';

CREATE FUNCTION referral.referral_code_sortsupport(pg_catalog.internal)
RETURNS void
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_code_sortsupport';
COMMENT ON FUNCTION referral.referral_code_sortsupport(pg_catalog.internal) IS
'btree sort support for referral_code: folded codes as abbreviated keys';

CREATE FUNCTION referral.referral_code_hash(referral.referral_code)
RETURNS integer
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
AS 'MODULE_PATHNAME', 'referral_code_hash';
COMMENT ON FUNCTION referral.referral_code_hash(referral.referral_code) IS
'hash of a referral code: codes that read alike hash alike';

CREATE FUNCTION referral.referral_code_hash_extended(referral.referral_code, bigint)
RETURNS bigint
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
AS 'MODULE_PATHNAME', 'referral_code_hash_extended';
COMMENT ON FUNCTION referral.referral_code_hash_extended(referral.referral_code, bigint) IS
'64-bit seeded hash of a referral code: codes that read alike hash alike';

CREATE OPERATOR referral.= (
	LEFTARG = referral.referral_code,
	RIGHTARG = referral.referral_code,
	FUNCTION = referral.referral_code_eq,
	COMMUTATOR = OPERATOR(referral.=),
	NEGATOR = OPERATOR(referral.<>),
	RESTRICT = pg_catalog.eqsel,
	JOIN = pg_catalog.eqjoinsel,
	HASHES,
	MERGES
);
COMMENT ON OPERATOR referral.= (referral.referral_code, referral.referral_code) IS
'equal: the codes read alike (O = 0, I = L = 1), case and separators aside';

CREATE OPERATOR referral.<> (
	LEFTARG = referral.referral_code,
	RIGHTARG = referral.referral_code,
	FUNCTION = referral.referral_code_ne,
	COMMUTATOR = OPERATOR(referral.<>),
	NEGATOR = OPERATOR(referral.=),
	RESTRICT = pg_catalog.neqsel,
	JOIN = pg_catalog.neqjoinsel
);
COMMENT ON OPERATOR referral.<> (referral.referral_code, referral.referral_code) IS
'not equal: the codes do not read alike';

CREATE OPERATOR referral.< (
	LEFTARG = referral.referral_code,
	RIGHTARG = referral.referral_code,
	FUNCTION = referral.referral_code_lt,
	COMMUTATOR = OPERATOR(referral.>),
	NEGATOR = OPERATOR(referral.>=),
	RESTRICT = pg_catalog.scalarltsel,
	JOIN = pg_catalog.scalarltjoinsel
);
COMMENT ON OPERATOR referral.< (referral.referral_code, referral.referral_code) IS
'less than, comparing the folded codes in C collation';

CREATE OPERATOR referral.<= (
	LEFTARG = referral.referral_code,
	RIGHTARG = referral.referral_code,
	FUNCTION = referral.referral_code_le,
	COMMUTATOR = OPERATOR(referral.>=),
	NEGATOR = OPERATOR(referral.>),
	RESTRICT = pg_catalog.scalarlesel,
	JOIN = pg_catalog.scalarlejoinsel
);
COMMENT ON OPERATOR referral.<= (referral.referral_code, referral.referral_code) IS
'less than or equal, comparing the folded codes in C collation';

CREATE OPERATOR referral.> (
	LEFTARG = referral.referral_code,
	RIGHTARG = referral.referral_code,
	FUNCTION = referral.referral_code_gt,
	COMMUTATOR = OPERATOR(referral.<),
	NEGATOR = OPERATOR(referral.<=),
	RESTRICT = pg_catalog.scalargtsel,
	JOIN = pg_catalog.scalargtjoinsel
);
COMMENT ON OPERATOR referral.> (referral.referral_code, referral.referral_code) IS
'greater than, comparing the folded codes in C collation';

CREATE OPERATOR referral.>= (
	LEFTARG = referral.referral_code,
	RIGHTARG = referral.referral_code,
	FUNCTION = referral.referral_code_ge,
	COMMUTATOR = OPERATOR(referral.<=),
	NEGATOR = OPERATOR(referral.<),
	RESTRICT = pg_catalog.scalargesel,
	JOIN = pg_catalog.scalargejoinsel
);
COMMENT ON OPERATOR referral.>= (referral.referral_code, referral.referral_code) IS
'greater than or equal, comparing the folded codes in C collation';

-- No btree support 4 (equalimage): equal codes can differ in spelling
-- ('OLIVIA10' = '0L1V1A10'), so btree deduplication must stay off.
CREATE OPERATOR CLASS referral.referral_code_ops
DEFAULT FOR TYPE referral.referral_code USING btree AS
	OPERATOR 1 referral.< ,
	OPERATOR 2 referral.<= ,
	OPERATOR 3 referral.= ,
	OPERATOR 4 referral.>= ,
	OPERATOR 5 referral.> ,
	FUNCTION 1 referral.referral_code_cmp(referral.referral_code, referral.referral_code),
	FUNCTION 2 referral.referral_code_sortsupport(pg_catalog.internal);
COMMENT ON OPERATOR CLASS referral.referral_code_ops USING btree IS
'default btree operator class for referral_code: folded codes in C collation';

CREATE OPERATOR CLASS referral.referral_code_ops
DEFAULT FOR TYPE referral.referral_code USING hash AS
	OPERATOR 1 referral.= ,
	FUNCTION 1 referral.referral_code_hash(referral.referral_code),
	FUNCTION 2 referral.referral_code_hash_extended(referral.referral_code, bigint);
COMMENT ON OPERATOR CLASS referral.referral_code_ops USING hash IS
'default hash operator class for referral_code: codes that read alike hash alike';

-- text -> referral_code is an assignment cast (INSERT of a text value into a
-- referral_code column works).  referral_code -> text is an assignment cast
-- too, not implicit: an implicit one would let `code = some_text_column`
-- resolve to text = text and silently compare spellings without folding.
-- Concatenation (`'ref=' || code`) and format() need no cast.
CREATE CAST (pg_catalog.text AS referral.referral_code) WITH INOUT AS ASSIGNMENT;
CREATE CAST (referral.referral_code AS pg_catalog.text) WITH INOUT AS ASSIGNMENT;

-- Generated codes.

CREATE FUNCTION referral.is_generated(code referral.referral_code)
RETURNS boolean
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_code_is_generated';
COMMENT ON FUNCTION referral.is_generated(referral.referral_code) IS
'whether a code has the form of a generated code: 8 characters of 0-9A-Z without I L O U (O, I and L read as 0, 1, 1) whose last is a valid check character';

CREATE FUNCTION referral._generate_code(counter bigint, key bytea)
RETURNS referral.referral_code
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_code_generate_sql';
COMMENT ON FUNCTION referral._generate_code(bigint, bytea) IS
'internal: the generated code of a counter in [0, 2^35) under a 32-byte key (keyed Feistel permutation, Damm check character); 22023 otherwise';
REVOKE ALL ON FUNCTION referral._generate_code(bigint, bytea) FROM PUBLIC;

CREATE FUNCTION referral._typo_neighbours(code referral.referral_code)
RETURNS referral.referral_code[]
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_code_typo_neighbours';
COMMENT ON FUNCTION referral._typo_neighbours(referral.referral_code) IS
'internal: the generated codes one substitution or one adjacent swap away from an 8-character code, sorted; empty when none';
REVOKE ALL ON FUNCTION referral._typo_neighbours(referral.referral_code) FROM PUBLIC;
-- Fingerprints and share links (src/fingerprint.c, src/share_link.c): e-mail
-- normalisation, keyed hashes of e-mail/device/IP fingerprints, random bytes
-- for the per-database secret, and the share link builder behind
-- referral.share_link.

CREATE FUNCTION referral.normalize_email(email text)
RETURNS text
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_normalize_email_sql';
COMMENT ON FUNCTION referral.normalize_email(text) IS
'the e-mail address as the self-referral rule compares it: trimmed, ASCII lower case, +tag dropped, dots dropped in Gmail local parts, googlemail.com as gmail.com; 22023 if it is not an e-mail address';

CREATE FUNCTION referral._random_bytes(n integer)
RETURNS bytea
LANGUAGE C VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_random_bytes';
COMMENT ON FUNCTION referral._random_bytes(integer) IS
'internal: n (1 to 1024) cryptographically strong random bytes (pg_strong_random), for the per-database secret';
REVOKE ALL ON FUNCTION referral._random_bytes(integer) FROM PUBLIC;

CREATE FUNCTION referral._fingerprint(key bytea, kind text, value text)
RETURNS bytea
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_fingerprint_sql';
COMMENT ON FUNCTION referral._fingerprint(bytea, text, text) IS
'internal: HMAC-SHA256(key, kind || '':'' || normalised value) of an email, device or ip fingerprint; key of 32 bytes';
REVOKE ALL ON FUNCTION referral._fingerprint(bytea, text, text) FROM PUBLIC;

CREATE FUNCTION referral._share_link(code text, base_url text, channel text)
RETURNS text
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_share_link';
COMMENT ON FUNCTION referral._share_link(text, text, text) IS
'internal: base_url with ref=code and, for a non-NULL channel, utm_source=channel&utm_medium=referral added to its query (RFC 3986 percent-encoding); NULL code or base_url gives NULL';
REVOKE ALL ON FUNCTION referral._share_link(text, text, text) FROM PUBLIC;
-- The per-database secret: the key of the code permutation and of the fingerprint
-- HMACs.  Created on first use rather than by this script, so that a restored dump
-- (which carries the old row, config-dump marked below) keeps the old secret:
-- otherwise restored databases would issue duplicate codes and miss self-referrals.
CREATE TABLE referral.secret (
	singleton		boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	code_key		bytea NOT NULL CHECK (pg_catalog.length(code_key) = 32),
	fingerprint_key	bytea NOT NULL CHECK (pg_catalog.length(fingerprint_key) = 32),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE referral.secret IS 'per-database secret keys (code permutation, fingerprint HMAC); never readable outside the extension';
SELECT pg_catalog.pg_extension_config_dump('referral.secret', '');

-- The secret, created at the first call in this database.
CREATE FUNCTION referral._secret(OUT code_key bytea, OUT fingerprint_key bytea)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	SELECT s.code_key, s.fingerprint_key INTO code_key, fingerprint_key
	  FROM referral.secret s;
	IF NOT FOUND THEN
		INSERT INTO referral.secret (code_key, fingerprint_key)
		VALUES (referral._random_bytes(32), referral._random_bytes(32))
		ON CONFLICT (singleton) DO NOTHING;
		SELECT s.code_key, s.fingerprint_key INTO STRICT code_key, fingerprint_key
		  FROM referral.secret s;
	END IF;
END
$$;
COMMENT ON FUNCTION referral._secret() IS 'internal: the per-database secret keys, created on first use';

-- A fingerprint (email, device, ip) as the keyed hash stored in place of the value.
-- Plain SQL without a SET clause, so that it is inlined into its callers (which pin
-- search_path and run as the owner): a missing value then costs no call at all.
CREATE FUNCTION referral._hash(kind text, value text)
RETURNS bytea
LANGUAGE sql VOLATILE
AS $$
	SELECT CASE WHEN NULLIF(btrim(value), '') IS NULL THEN NULL
	            ELSE referral._fingerprint((referral._secret()).fingerprint_key, kind, value) END
$$;
COMMENT ON FUNCTION referral._hash(text, text) IS 'internal: keyed hash of a fingerprint (email, device, ip); NULL for NULL or blank';
-- Programs and their rules: reward rules (tiers, levels, variants), milestones and
-- A/B variants.  The *_id sequences are explicit so that pg_dump keeps them.

CREATE SEQUENCE referral.program_id_seq;
CREATE TABLE referral.program (
	tenant					text NOT NULL DEFAULT 'default',
	id						bigint NOT NULL DEFAULT pg_catalog.nextval('referral.program_id_seq') PRIMARY KEY,
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
	id				bigint NOT NULL DEFAULT pg_catalog.nextval('referral.reward_rule_id_seq') PRIMARY KEY,
	program_id		bigint NOT NULL REFERENCES referral.program (id),
	beneficiary		text NOT NULL CHECK (beneficiary IN ('referrer', 'referee')),
	percent			numeric NOT NULL CHECK (percent BETWEEN 0 AND 100),
	fixed			numeric NOT NULL CHECK (fixed >= 0),
	cap				numeric CHECK (cap IS NULL OR cap >= 0),
	level			int NOT NULL CHECK (level >= 1),
	min_conversions	int NOT NULL CHECK (min_conversions >= 0),
	reward_type		text NOT NULL CHECK (reward_type IN ('credit', 'discount', 'cash', 'points', 'product')),
	variant			text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CHECK (beneficiary = 'referrer' OR level = 1),
	CHECK (percent > 0 OR fixed > 0)
);
ALTER SEQUENCE referral.reward_rule_id_seq OWNED BY referral.reward_rule.id;
-- One rule per tier: two rules for the same tier would make the amount ambiguous.
CREATE UNIQUE INDEX reward_rule_one_per_tier ON referral.reward_rule
	(program_id, beneficiary, level, COALESCE(variant, ''), min_conversions);
COMMENT ON TABLE referral.reward_rule IS 'reward rules: amount = fixed + percent of the order, cut to cap; tiers by min_conversions, chain levels, optional A/B variant';
SELECT pg_catalog.pg_extension_config_dump('referral.reward_rule', '');
SELECT pg_catalog.pg_extension_config_dump('referral.reward_rule_id_seq', '');

CREATE SEQUENCE referral.milestone_id_seq;
CREATE TABLE referral.milestone (
	tenant		text NOT NULL,
	id			bigint NOT NULL DEFAULT pg_catalog.nextval('referral.milestone_id_seq') PRIMARY KEY,
	program_id	bigint NOT NULL REFERENCES referral.program (id),
	conversions	int NOT NULL CHECK (conversions > 0),
	amount		numeric NOT NULL CHECK (amount > 0),
	reward_type	text NOT NULL CHECK (reward_type IN ('credit', 'discount', 'cash', 'points', 'product')),
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	UNIQUE (program_id, conversions)
);
ALTER SEQUENCE referral.milestone_id_seq OWNED BY referral.milestone.id;
COMMENT ON TABLE referral.milestone IS 'one-time bonuses for a referrer reaching a number of conversions';
SELECT pg_catalog.pg_extension_config_dump('referral.milestone', '');
SELECT pg_catalog.pg_extension_config_dump('referral.milestone_id_seq', '');

CREATE SEQUENCE referral.variant_id_seq;
CREATE TABLE referral.variant (
	tenant		text NOT NULL,
	id			bigint NOT NULL DEFAULT pg_catalog.nextval('referral.variant_id_seq') PRIMARY KEY,
	program_id	bigint NOT NULL REFERENCES referral.program (id),
	name		text NOT NULL CHECK (name <> ''),
	weight		int NOT NULL CHECK (weight > 0),
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	UNIQUE (program_id, name)
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
		format('currency must be an ISO 4217 code of three upper-case letters (got %L)', currency));
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
		RAISE EXCEPTION 'program "%" already exists in tenant "%"', name, tenant
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Program names are unique per tenant.';
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral.create_program(text, text, timestamptz, timestamptz, interval, interval, numeric, interval, int, text, numeric, numeric, int)
	IS 'create a referral program and return its id';

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
		format('beneficiary must be ''referrer'' or ''referee'' (got %L)', beneficiary));
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
		format('unknown reward_type %L', reward_type),
		'reward_type is one of credit, discount, cash, points, product.');
	PERFORM referral._require(variant IS NULL OR EXISTS (
			SELECT 1 FROM referral.variant v WHERE v.program_id = p.id AND v.name = add_reward.variant),
		format('variant %L does not exist in program %s', variant, p.id),
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
			p.id, beneficiary, level, COALESCE(variant, '(none)'), min_conversions
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
		format('unknown reward_type %L', reward_type),
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
		RAISE EXCEPTION 'program % already has a variant %', p.id, quote_literal(name)
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
-- The event log: every referral and reward change appends a row here and sends
-- NOTIFY referral_event with {"id", "kind", "tenant"}, for listeners and outboxes.

CREATE SEQUENCE referral.event_id_seq;
CREATE TABLE referral.event (
	tenant	text NOT NULL,
	id		bigint NOT NULL DEFAULT pg_catalog.nextval('referral.event_id_seq') PRIMARY KEY,
	at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	kind	text NOT NULL,
	payload	jsonb NOT NULL
);
ALTER SEQUENCE referral.event_id_seq OWNED BY referral.event.id;
CREATE INDEX event_tenant_kind_at ON referral.event (tenant, kind, at);
COMMENT ON TABLE referral.event IS 'append-only log of referral and reward changes (also sent as NOTIFY referral_event)';
SELECT pg_catalog.pg_extension_config_dump('referral.event', '');
SELECT pg_catalog.pg_extension_config_dump('referral.event_id_seq', '');

-- Appends an event and notifies listeners; returns the event id.
CREATE FUNCTION referral._emit(tenant text, kind text, payload jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	new_id bigint;
BEGIN
	INSERT INTO referral.event AS e (tenant, kind, payload)
	VALUES (_emit.tenant, _emit.kind, _emit.payload)
	RETURNING e.id INTO new_id;
	PERFORM pg_notify('referral_event',
		json_build_object('id', new_id, 'kind', kind, 'tenant', tenant)::text);
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral._emit(text, text, jsonb) IS 'internal: append to referral.event and NOTIFY referral_event';
-- Codes, share links and clicks.  A code is unique across all programs and tenants
-- under folding (O=0, I=L=1): the primary key's btree compares folded codes.

CREATE SEQUENCE referral.code_counter_seq MINVALUE 0 START 0 MAXVALUE 34359738367;
COMMENT ON SEQUENCE referral.code_counter_seq IS 'counter behind generated codes (fed through the keyed permutation)';
SELECT pg_catalog.pg_extension_config_dump('referral.code_counter_seq', '');

CREATE TABLE referral.code (
	tenant		text NOT NULL,
	code		referral.referral_code NOT NULL PRIMARY KEY,
	program_id	bigint NOT NULL REFERENCES referral.program (id),
	customer	text NOT NULL,
	vanity		boolean NOT NULL,
	email_hash	bytea,
	device_hash	bytea,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	UNIQUE (tenant, program_id, customer)
);
COMMENT ON TABLE referral.code IS 'referral codes: one per customer and program; email and device only as keyed hashes';
SELECT pg_catalog.pg_extension_config_dump('referral.code', '');

CREATE SEQUENCE referral.click_id_seq;
CREATE TABLE referral.click (
	tenant		text NOT NULL,
	id			bigint NOT NULL DEFAULT pg_catalog.nextval('referral.click_id_seq') PRIMARY KEY,
	program_id	bigint NOT NULL REFERENCES referral.program (id),
	code		referral.referral_code NOT NULL,
	channel		text,
	ip_hash		bytea,
	user_agent	text,
	at			timestamptz NOT NULL
);
ALTER SEQUENCE referral.click_id_seq OWNED BY referral.click.id;
CREATE INDEX click_code_at ON referral.click (code, at);
CREATE INDEX click_tenant_program_at ON referral.click (tenant, program_id, at);
COMMENT ON TABLE referral.click IS 'clicks on share links; the IP only as a keyed hash';
SELECT pg_catalog.pg_extension_config_dump('referral.click', '');
SELECT pg_catalog.pg_extension_config_dump('referral.click_id_seq', '');

-- Checks a customer key given by the application.
CREATE FUNCTION referral._check_customer(customer text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF NULLIF(btrim(customer), '') IS NULL THEN
		RAISE EXCEPTION 'customer must not be empty' USING ERRCODE = 'invalid_parameter_value';
	ELSIF octet_length(customer) > 1000 THEN
		RAISE EXCEPTION 'customer key is too long (% bytes, at most 1000)', octet_length(customer)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._check_customer(text) IS 'internal: reject empty or oversized customer keys';

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
			RAISE EXCEPTION 'referral code "%" is already taken', issue_code.vanity::text
				USING ERRCODE = 'RF001',
					  DETAIL = 'Codes are unique across all programs, and O = 0, I = L = 1 when codes are compared.',
					  HINT = 'Choose another vanity code, or leave it NULL for a generated one.';
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
	still_missing bigint;	-- customers left without a code; NULL: not known yet
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
	-- For a long list the first attempt is a plain INSERT of every customer without
	-- a code, which spares ON CONFLICT's probe of both unique indexes before each
	-- row (a third of the INSERT's time).  A code taken as a vanity code, or a
	-- customer given a code by a concurrent call, makes it fail as a whole; the
	-- passes below then issue the codes with ON CONFLICT.  Short lists skip it: its
	-- subtransaction would gain them nothing, and more than 64 subtransactions in
	-- one transaction (a loop of small calls) slow every session's snapshots.
	IF cardinality(customers) >= 1000 THEN
		BEGIN
			INSERT INTO referral.code AS k (tenant, code, program_id, customer, vanity)
			SELECT p.tenant, referral._generate_code(nextval('referral.code_counter_seq'), key),
			       p.id, m.customer, false
			  FROM (SELECT DISTINCT u.c AS customer
			          FROM unnest(customers) u(c)
			         WHERE NOT EXISTS (SELECT 1 FROM referral.code k
			                            WHERE k.tenant = p.tenant AND k.program_id = p.id
			                              AND k.customer = u.c)) m;
			still_missing := 0;
		EXCEPTION WHEN unique_violation THEN
			NULL;	-- still_missing stays NULL: the passes below
		END;
	END IF;
	-- Each pass issues a generated code to every customer still without one.  A
	-- row is skipped (ON CONFLICT) when its code was taken as a vanity code or
	-- the customer got a code from a concurrent call; the next pass sees the
	-- latter's code and gives the former the next counter value.
	WHILE still_missing IS NULL OR still_missing > 0 LOOP
		WITH missing AS MATERIALIZED (
			SELECT DISTINCT u.c AS customer
			  FROM unnest(customers) u(c)
			 WHERE NOT EXISTS (SELECT 1 FROM referral.code k
			                    WHERE k.tenant = p.tenant AND k.program_id = p.id
			                      AND k.customer = u.c)),
		issued AS (
			INSERT INTO referral.code AS k (tenant, code, program_id, customer, vanity)
			SELECT p.tenant, referral._generate_code(nextval('referral.code_counter_seq'), key),
			       p.id, m.customer, false
			  FROM missing m
			ON CONFLICT DO NOTHING
			RETURNING 1)
		SELECT (SELECT count(*) FROM missing) - (SELECT count(*) FROM issued) INTO still_missing;
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
-- The registry of the shop's orders tables that referral.track_orders() attached to.
-- The order triggers do not read it (their configuration is in their own arguments,
-- so they also work per shard on Citus); redeem's existing_customer rule and audit()
-- do.

CREATE TABLE referral.tracked_table (
	tenant				text NOT NULL,
	relid				regclass NOT NULL PRIMARY KEY,
	customer_column		name NOT NULL,
	amount_column		name NOT NULL,
	id_column			name NOT NULL,
	status_column		name,
	paid_statuses		text[] NOT NULL,
	reversed_statuses	text[] NOT NULL,
	ordered_at_column	name,
	tenant_column		name,
	source				text,
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE referral.tracked_table IS 'orders tables with referral triggers (see track_orders); tenant is the fixed tenant when there is no tenant_column';
COMMENT ON COLUMN referral.tracked_table.source IS 'the label the triggers give this table''s orders (reward.order_source): its quoted qualified name when tracked';
SELECT pg_catalog.pg_extension_config_dump('referral.tracked_table', '');

-- Whether the customer has any order, whatever its status, in a tracked table of the
-- tenant.  A key that is not a valid value of a table's customer column has no
-- orders there; nor has one that is not the column value's own text form ('0042'
-- for 42), since the order triggers match customers by that text form.  The key is
-- cast to the column's type so that an index on the column serves the lookup.
CREATE FUNCTION referral._has_orders(tenant text, customer text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t record;
	found_one boolean;
BEGIN
	FOR t IN
		SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
		       tt.customer_column, tt.tenant_column, tt.tenant AS fixed_tenant,
		       format_type(a.atttypid, a.atttypmod) AS customer_type
		  FROM referral.tracked_table tt
		  JOIN pg_class c ON c.oid = tt.relid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		  JOIN pg_attribute a ON a.attrelid = tt.relid AND a.attname = tt.customer_column
		 WHERE tt.tenant_column IS NOT NULL OR tt.tenant = _has_orders.tenant
		 ORDER BY tt.relid
	LOOP
		BEGIN
			IF t.tenant_column IS NULL THEN
				EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I = $1::%s) AND $1::%s::text = $1',
				               t.qualified, t.customer_column, t.customer_type, t.customer_type)
				   INTO found_one USING customer;
			ELSE
				EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I = $1::%s AND %I::text = $2) AND $1::%s::text = $1',
				               t.qualified, t.customer_column, t.customer_type, t.tenant_column, t.customer_type)
				   INTO found_one USING customer, tenant;
			END IF;
		EXCEPTION WHEN data_exception THEN
			found_one := false;		-- not a valid key of this table: no orders here
		END;
		IF found_one THEN
			RETURN true;
		END IF;
	END LOOP;
	RETURN false;
END
$$;
COMMENT ON FUNCTION referral._has_orders(text, text) IS 'internal: whether a customer has an order (any status) in a tracked table of the tenant';
-- Attribution chains as a materialised path.  Every customer in an accepted
-- referral (pending or converted) of a tenant is a member whose path holds the
-- member ids from the root of its tree down to itself, and whose ancestors hold the
-- customers above it, nearest first.  The upline is one row's ancestors; the
-- downline is one btree range scan, since the paths below P sort between P and
-- P || max(bigint).  Both are read in C (src/chain_read.c).  A member gets a parent only while it is a root (one accepted
-- referral per customer), and never one from its own subtree (the cycle rule), so a
-- cycle cannot be stored.

CREATE SEQUENCE referral.member_id_seq;
CREATE TABLE referral.member (
	tenant		text NOT NULL,
	customer	text NOT NULL,
	id			bigint NOT NULL,
	path		bigint[] NOT NULL,
	PRIMARY KEY (tenant, customer),
	UNIQUE (id),
	CHECK (path[pg_catalog.array_upper(path, 1)] = id AND pg_catalog.array_lower(path, 1) = 1),
	ancestors	text[] NOT NULL,
	CONSTRAINT member_ancestors_match_path
		CHECK (pg_catalog.cardinality(ancestors) = pg_catalog.cardinality(path) - 1)
);
ALTER SEQUENCE referral.member_id_seq OWNED BY referral.member.id;
-- Tree order for downline(); customer included, so that a member on an all-visible
-- page is read from the index alone.
CREATE INDEX member_path ON referral.member (path) INCLUDE (customer);
COMMENT ON TABLE referral.member IS 'attribution chains: each referred or referring customer with the path of member ids from its root';
COMMENT ON COLUMN referral.member.ancestors IS 'the customers above this one, nearest first: the upline without a lookup per level';
SELECT pg_catalog.pg_extension_config_dump('referral.member', '');
SELECT pg_catalog.pg_extension_config_dump('referral.member_id_seq', '');

-- The member row of a customer, created as a root when missing.
CREATE FUNCTION referral._member(tenant text, customer text)
RETURNS referral.member
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m referral.member;
BEGIN
	SELECT * INTO m FROM referral.member x WHERE x.tenant = _member.tenant AND x.customer = _member.customer;
	IF NOT FOUND THEN
		INSERT INTO referral.member (tenant, customer, id, path, ancestors)
		SELECT _member.tenant, _member.customer, n.id, ARRAY[n.id], '{}'::text[]
		  FROM (SELECT nextval('referral.member_id_seq') AS id) n
		ON CONFLICT DO NOTHING;
		SELECT * INTO STRICT m FROM referral.member x WHERE x.tenant = _member.tenant AND x.customer = _member.customer;
	END IF;
	RETURN m;
END
$$;
COMMENT ON FUNCTION referral._member(text, text) IS 'internal: a customer''s chain member row, created as a root when missing';

-- Locks the trees of two customers (their root rows, in id order) so that concurrent
-- redeems touching either tree run one after the other, and returns the members'
-- fresh rows.  A root can become a child while we wait: then lock the new root too.
CREATE FUNCTION referral._lock_trees(tenant text, a text, b text, OUT a_member referral.member, OUT b_member referral.member)
RETURNS record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	locked bigint[] := '{}';
	roots bigint[];
BEGIN
	a_member := referral._member(tenant, a);
	b_member := referral._member(tenant, b);
	LOOP
		roots := ARRAY(SELECT DISTINCT r FROM unnest(ARRAY[a_member.path[1], b_member.path[1]]) r
		                WHERE r <> ALL (locked) ORDER BY r);
		EXIT WHEN cardinality(roots) = 0;
		PERFORM 1 FROM referral.member x WHERE x.id = ANY (roots) ORDER BY x.id FOR UPDATE;
		locked := locked || roots;
		SELECT * INTO STRICT a_member FROM referral.member x WHERE x.id = a_member.id;
		SELECT * INTO STRICT b_member FROM referral.member x WHERE x.id = b_member.id;
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._lock_trees(text, text, text) IS 'internal: lock the chain trees of two customers (root rows, id order) and return their members';

-- Hangs the root `child` (and its subtree) below `parent`.  Callers hold both trees' locks
-- and have checked that child is not in parent's path.
CREATE FUNCTION referral._attach(parent referral.member, child referral.member)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF cardinality(child.path) <> 1 OR child.id = ANY (parent.path) THEN
		RAISE EXCEPTION 'referral: cannot attach member % below member %', child.id, parent.id
			USING ERRCODE = 'internal_error';
	END IF;
	UPDATE referral.member x
	   SET path = parent.path || x.path,
	       ancestors = x.ancestors || parent.customer || parent.ancestors
	 WHERE x.path >= child.path
	   AND x.path < child.path || 9223372036854775807::bigint;
END
$$;
COMMENT ON FUNCTION referral._attach(referral.member, referral.member) IS 'internal: hang a root member and its subtree below a parent';

CREATE FUNCTION referral.upline(customer text, tenant text DEFAULT 'default')
RETURNS TABLE (level int, customer text)
LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'referral_upline';
COMMENT ON FUNCTION referral.upline(text, text)
	IS 'who referred this customer (level 1), who referred them (level 2), and so on to the root';

CREATE FUNCTION referral.downline(customer text, tenant text DEFAULT 'default', max_depth int DEFAULT NULL)
RETURNS TABLE (level int, customer text)
LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'referral_downline';
COMMENT ON FUNCTION referral.downline(text, text, int)
	IS 'everyone referred by this customer, directly (level 1) or through others, optionally down to max_depth levels; in tree order (each member followed by its own downline)';
-- Referrals: redeeming a code at sign-up, with the rules of SPEC.md applied in order.
-- Every attempt is stored; a customer has at most one accepted (pending or
-- converted) referral per tenant, enforced by a unique index.

CREATE SEQUENCE referral.referral_id_seq;
CREATE TABLE referral.referral (
	tenant			text NOT NULL,
	id				bigint NOT NULL DEFAULT pg_catalog.nextval('referral.referral_id_seq') PRIMARY KEY,
	program_id		bigint NOT NULL REFERENCES referral.program (id),
	referrer		text NOT NULL,
	referee			text NOT NULL,
	code			referral.referral_code NOT NULL,
	status			text NOT NULL CHECK (status IN ('pending', 'converted', 'rejected')),
	reason			text CHECK (reason IN ('self_referral', 'cycle', 'existing_customer', 'program_inactive', 'daily_limit')),
	variant			text,
	email_hash		bytea,
	ip_hash			bytea,
	device_hash		bytea,
	created_at		timestamptz NOT NULL,
	converted_at	timestamptz,
	converting_source text,
	converting_order text,
	reverted_at		timestamptz,
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

	-- Both customers' trees stay locked to the end of the transaction: the cycle and
	-- daily-limit rules read them, and at most one accepted referral is inserted.
	SELECT t.a_member, t.b_member INTO trees
	  FROM referral._lock_trees(c.tenant, c.customer, redeem.customer) t;
	referrer_m := trees.a_member;
	referee_m := trees.b_member;

	SELECT * INTO existing FROM referral.referral r
	 WHERE r.tenant = c.tenant AND r.referee = redeem.customer AND r.status <> 'rejected';
	IF FOUND THEN
		RETURN QUERY SELECT existing.id, existing.status,
			CASE WHEN existing.code OPERATOR(referral.<>) c.code THEN 'already_referred' END;
		RETURN;
	END IF;

	IF redeem.at < p.starts_at OR redeem.at >= p.ends_at THEN
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
-- The reward ledger: rewards with their lifecycle pending -> approved -> paid, or
-- reversed; a refund of a paid reward adds a negative `clawback` entry, created
-- approved so that the next payout nets it.  Unique keys make every reward exist once
-- per (order, beneficiary, level, kind), once per milestone, once per clawback.

CREATE SEQUENCE referral.reward_id_seq;
CREATE TABLE referral.reward (
	tenant			text NOT NULL,
	id				bigint NOT NULL DEFAULT pg_catalog.nextval('referral.reward_id_seq') PRIMARY KEY,
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
	CHECK ((kind = 'clawback') = (clawback_of IS NOT NULL)),
	CHECK ((kind = 'clawback') = (amount < 0)),
	CHECK (kind = 'clawback' OR amount > 0),
	CHECK ((kind = 'milestone') = (milestone_id IS NOT NULL)),
	CHECK (kind IN ('milestone', 'clawback') OR (order_ref IS NOT NULL AND rule_id IS NOT NULL)),
	CHECK ((status = 'paid') = (paid_at IS NOT NULL)),
	CHECK (status <> 'paid' OR payout_ref IS NOT NULL)
);
ALTER SEQUENCE referral.reward_id_seq OWNED BY referral.reward.id;
CREATE UNIQUE INDEX reward_once_per_order ON referral.reward
	(tenant, order_source, order_ref, beneficiary, level, kind) WHERE kind IN ('referee', 'referrer');
-- A milestone held: not reversed and, if paid, not clawed back (reversed_at is set on
-- a paid reward when its clawback is created), so a reversed one can be paid again.
CREATE UNIQUE INDEX reward_once_per_milestone ON referral.reward
	(program_id, beneficiary, milestone_id) WHERE kind = 'milestone' AND status <> 'reversed' AND reversed_at IS NULL;
CREATE UNIQUE INDEX reward_one_clawback ON referral.reward (clawback_of) WHERE kind = 'clawback';
CREATE INDEX reward_beneficiary ON referral.reward (tenant, beneficiary, program_id);
CREATE INDEX reward_program ON referral.reward (program_id, status);
CREATE INDEX reward_referral ON referral.reward (referral_id);
CREATE INDEX reward_pending_created ON referral.reward (created_at) WHERE status = 'pending';
-- referral_id and program_id have no foreign keys.  A key checks every new reward
-- with a query of its own after the statement: 10 to 30 µs a reward, 5 to 7% of a
-- bulk load that converts.  Only the extension writes rewards, each for a referral
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
	IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM referral.reward w WHERE w.referral_id = OLD.id) THEN
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
-- three indexes, when a page's refunds are few: 1 order in 10 refunded cost 3 times
-- as much without it.  Refunds of most orders of a page still move rows.
-- A bulk load records a row here for every order of a referee; a foreign key would
-- queue two after-row checks per row, memory that grows with the statement.  Only the
-- extension writes this table, from the referral row it has just read, and referrals
-- are never deleted.
CREATE INDEX attributed_order_program ON referral.attributed_order (program_id, ordered_at);
CREATE INDEX attributed_order_referral ON referral.attributed_order (referral_id);
COMMENT ON TABLE referral.attributed_order IS 'qualifying orders of referees (the converting one and later ones), with their amount; reversed_at set when refunded, cancelled or deleted';
SELECT pg_catalog.pg_extension_config_dump('referral.attributed_order', '');

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
		       jsonb_build_object('reward_id', w.id, 'program_id', w.program_id,
		                          'referral_id', w.referral_id, 'beneficiary', w.beneficiary,
		                          'kind', w.kind, 'level', w.level, 'amount', w.amount,
		                          'currency', w.currency, 'status', w.status,
		                          'order_ref', w.order_ref, 'payout_ref', w.payout_ref)
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

	-- The reward and its event in one statement, the event from the values at hand
	-- (the payload of _emit_rewards): looking the new row up again would run a plan
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
		       jsonb_build_object('reward_id', w.id, 'program_id', p.id,
		                          'referral_id', _create_reward.referral_id,
		                          'beneficiary', _create_reward.beneficiary, 'kind', _create_reward.kind,
		                          'level', _create_reward.level, 'amount', amount,
		                          'currency', p.currency, 'status', 'pending',
		                          'order_ref', _create_reward.order_ref, 'payout_ref', NULL)
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
		       jsonb_build_object('reward_id', w.id, 'program_id', p.id,
		                          'referral_id', _create_rewards.referral_id,
		                          'beneficiary', w.beneficiary, 'kind', w.kind,
		                          'level', w.level, 'amount', w.amount,
		                          'currency', p.currency, 'status', 'pending',
		                          'order_ref', _create_rewards.order_ref, 'payout_ref', NULL)
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
-- qualified.  The ones that run set-based statements over a whole statement's orders
-- or rewards (_convert_orders, _orders_reversed, _reverse_rewards, _emit_rewards) run
-- once per statement and force custom plans: a plan kept from when the tables were
-- small would scan them sequentially for every statement after.  A SET applies to the
-- functions called too, so none of them calls _order_paid, whose plans must stay
-- cached: _orders_paid, which does, sets nothing.

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
	-- conversions (most programs tier the direct referrer at most), and only up to
	-- the top tier.
	SELECT COALESCE(array_agg(DISTINCT x.beneficiary || ':' || x.level), '{}'), max(x.min_conversions)
	  INTO tiered, top_tier
	  FROM referral.reward_rule x
	 WHERE x.program_id = p.id AND x.min_conversions > 0;

	IF converting THEN
		-- Referee reward: tier by the referee's own conversions as a referrer.
		SELECT * INTO rule FROM referral._pick_rule(p.id, 'referee', 1, r.variant,
		                            CASE WHEN 'referee:1' = ANY (tiered)
		                                 THEN referral._conversions(r.tenant, p.id, r.referee, top_tier) ELSE 0 END);
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
		SELECT * INTO rule FROM referral._pick_rule(p.id, 'referrer', lvl, r.variant,
		                            CASE WHEN 'referrer:' || lvl = ANY (tiered)
		                                 THEN referral._conversions(r.tenant, p.id, beneficiary, top_tier) ELSE 0 END);
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
	-- The lock order of _order_paid, which a session converting one by one follows:
	-- by referral id, each referral and then its referrer's code (which serialises
	-- the referrer's conversions, so that tiers count each once).  Locking all the
	-- referrals first would deadlock with it: it may hold a later referral's code
	-- while waiting for one of ours.
	PERFORM 1 FROM referral.referral r
	  JOIN referral.code c
	    ON c.tenant = r.tenant AND c.program_id = r.program_id AND c.customer = r.referrer
	 WHERE r.id = ANY (referral_ids)
	 ORDER BY r.id
	   FOR UPDATE OF r, c;

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
	), counted AS (
		-- Each beneficiary with its conversions as a referrer in the program before
		-- this one, where its (kind, level) has tiers (0 elsewhere, as _order_paid):
		-- those committed before (counted up to the top tier, as _conversions does;
		-- a call of it here would plan its query at every call, under this function's
		-- SET), plus this load's with a smaller referral id, which are its rows as the
		-- level-1 referrer (a beneficiary appears once per conversion, so the frame
		-- before the current row holds exactly those).
		SELECT b.*,
		       CASE WHEN EXISTS (SELECT 1 FROM referral.reward_rule x
		                          WHERE x.program_id = b.program_id AND x.beneficiary = b.kind
		                            AND x.level = b.level AND x.min_conversions > 0)
		            THEN COALESCE(pg_catalog.sum((b.kind = 'referrer' AND b.level = 1)::int) OVER earlier, 0)
		                 + (SELECT pg_catalog.count(*)
		                      FROM (SELECT 1 FROM referral.referral x
		                             WHERE x.tenant = b.tenant AND x.referrer = b.who
		                               AND x.program_id = b.program_id AND x.status = 'converted'
		                             LIMIT (SELECT pg_catalog.max(t.min_conversions) FROM referral.reward_rule t
		                                     WHERE t.program_id = b.program_id)) s)
		            ELSE 0 END AS conversions
		  FROM beneficiary b
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
		               pg_catalog.jsonb_build_object('reward_id', w.id, 'program_id', w.program_id,
		                   'referral_id', w.referral_id, 'beneficiary', w.beneficiary, 'kind', w.kind,
		                   'level', w.level, 'amount', w.amount, 'currency', w.currency,
		                   'status', w.status, 'order_ref', w.order_ref, 'payout_ref', NULL) AS payload
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
	reverted bigint[];
	to_reverse bigint[];
BEGIN
	-- Referrals first (the lock order), then their rewards; one event each, in
	-- referral id order.  A referral's converting order is an attributed order
	-- (converting), which is how it is found: no index of referral reads the
	-- converting order (see referral.referral).
	WITH locked AS (
		SELECT x.id, x.converting_order
		  FROM referral.attributed_order a
		  JOIN referral.referral x ON x.id = a.referral_id
		 WHERE a.tenant = _orders_reversed.tenant AND a.order_source = source
		   AND a.order_ref = ANY (order_refs) AND a.converting
		   AND x.converting_source = source AND x.converting_order = a.order_ref
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
-- Orders: attribution in the database.  referral.track_orders() puts three
-- statement-level triggers with transition tables on the shop's own orders
-- table; their function (src/order_trigger.c) hands the orders of each
-- statement, set-based, to referral._orders_paid, referral._orders_reversed and
-- referral._order_amount_changed.  The triggers carry their whole
-- configuration in their arguments (Citus fires them per shard); the registry
-- referral.tracked_table is for redeem's existing_customer rule and audit().

-- The trigger function.  Not SECURITY DEFINER: the C code runs its SQL as the
-- function's owner with search_path pinned (so that a role that may only write its
-- orders table still gets its orders attributed), and only when a statement's
-- orders need SQL at all.
CREATE FUNCTION referral._order_trigger()
RETURNS trigger
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'referral_order_trigger';
COMMENT ON FUNCTION referral._order_trigger()
	IS 'internal: AFTER ... FOR EACH STATEMENT trigger of a tracked orders table (see track_orders); arguments: tenant, source, customer, amount, id, status, paid statuses, reversed statuses, ordered_at and tenant columns';
REVOKE ALL ON FUNCTION referral._order_trigger() FROM PUBLIC;

-- The role that called us: SECURITY DEFINER changes current_user, not the role
-- setting (SET ROLE) nor the session user.
CREATE FUNCTION referral._invoker()
RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN pg_catalog.current_setting('role') = 'none' THEN pg_catalog.session_user()
	            ELSE pg_catalog.current_setting('role')::pg_catalog.name END
$$;
COMMENT ON FUNCTION referral._invoker() IS 'internal: the role that called a SECURITY DEFINER function (the SET ROLE role, else the session user)';
REVOKE ALL ON FUNCTION referral._invoker() FROM PUBLIC;

-- The tracked table's name for messages (schema.table) and for SQL (quoted), or
-- an error unless the caller may create triggers on it.
CREATE FUNCTION referral._orders_table(orders regclass, OUT display text, OUT quoted text)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rel record;
BEGIN
	IF orders IS NULL THEN
		RAISE EXCEPTION 'orders table must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT n.nspname, c.relname, c.relkind INTO rel
	  FROM pg_catalog.pg_class c
	  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE c.oid = orders;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'relation with OID % does not exist', orders::oid
			USING ERRCODE = 'undefined_table';
	END IF;
	display := rel.nspname || '.' || rel.relname;
	quoted := format('%I.%I', rel.nspname, rel.relname);
	IF rel.relkind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', display
			USING ERRCODE = 'wrong_object_type',
				  DETAIL = 'Only ordinary and partitioned tables can be tracked.';
	END IF;
	IF NOT pg_catalog.has_table_privilege(referral._invoker(), orders, 'TRIGGER') THEN
		RAISE EXCEPTION 'permission denied for table %', display
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Tracking a table creates triggers on it: it needs the TRIGGER privilege on the table.';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._orders_table(regclass)
	IS 'internal: an orders table''s name for messages and quoted for SQL; errors unless it is a table the caller may put triggers on';
REVOKE ALL ON FUNCTION referral._orders_table(regclass) FROM PUBLIC;

-- Checks that a column given to track_orders exists and has one of the allowed
-- types (a domain counts as its base type): 42703 or 42804 naming the column.
CREATE FUNCTION referral._check_order_column(
	orders regclass,
	display text,
	purpose text,
	col name,
	allowed regtype[],
	allowed_text text,
	allow_enum boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	col_type oid;
	col_type_text text;
	base oid;
	base_kind "char";
	next_base oid;
BEGIN
	IF col IS NULL THEN
		RAISE EXCEPTION '%_column must not be NULL', purpose USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod)
	  INTO col_type, col_type_text
	  FROM pg_catalog.pg_attribute a
	 WHERE a.attrelid = orders AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of table "%" does not exist', col, display
			USING ERRCODE = 'undefined_column',
				  HINT = format('Name an existing column of the table as %s_column.', purpose);
	END IF;
	base := col_type;
	LOOP
		SELECT t.typtype, t.typbasetype INTO base_kind, next_base
		  FROM pg_catalog.pg_type t WHERE t.oid = base;
		EXIT WHEN base_kind IS DISTINCT FROM 'd';
		base := next_base;
	END LOOP;
	IF NOT (base = ANY (allowed::oid[]) OR (allow_enum AND base_kind = 'e')) THEN
		RAISE EXCEPTION '% column "%" of table "%" has type %', purpose, col, display, col_type_text
			USING ERRCODE = 'datatype_mismatch',
				  HINT = format('The %s column must be %s.', purpose, allowed_text);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._check_order_column(regclass, text, text, name, regtype[], text, boolean)
	IS 'internal: error unless the named column of an orders table exists and has an allowed type';
REVOKE ALL ON FUNCTION referral._check_order_column(regclass, text, text, name, regtype[], text, boolean) FROM PUBLIC;

-- Checks a list of statuses: no NULL element, non-empty unless may_be_empty.
CREATE FUNCTION referral._check_statuses(what text, statuses text[], may_be_empty boolean)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF statuses IS NULL THEN
		RAISE EXCEPTION '% must not be NULL', what USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT may_be_empty AND pg_catalog.cardinality(statuses) = 0 THEN
		RAISE EXCEPTION '% must not be empty', what
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Name at least one status that means the order is paid.';
	END IF;
	IF pg_catalog.array_position(statuses, NULL) IS NOT NULL THEN
		RAISE EXCEPTION '% must not contain NULL', what USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._check_statuses(text, text[], boolean)
	IS 'internal: error unless a status list of track_orders has no NULL and, unless allowed, is not empty';
REVOKE ALL ON FUNCTION referral._check_statuses(text, text[], boolean) FROM PUBLIC;

CREATE FUNCTION referral.track_orders(
	orders regclass,
	customer_column name,
	amount_column name,
	id_column name DEFAULT 'id',
	status_column name DEFAULT NULL,
	paid_statuses text[] DEFAULT '{paid}',
	reversed_statuses text[] DEFAULT '{refunded,cancelled}',
	ordered_at_column name DEFAULT NULL,
	tenant_column name DEFAULT NULL,
	tenant text DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tbl record := referral._orders_table(orders);
	ints text := 'smallint, integer, bigint';
	both_ways text;
	taken name;
	args text;
BEGIN
	-- Every check before anything is created.
	PERFORM referral._check_order_column(orders, tbl.display, 'customer', customer_column,
		'{int2,int4,int8,uuid,text,varchar}', ints || ', uuid, text or varchar');
	PERFORM referral._check_order_column(orders, tbl.display, 'amount', amount_column,
		'{numeric,int2,int4,int8}', 'numeric, ' || ints);
	PERFORM referral._check_order_column(orders, tbl.display, 'id', id_column,
		'{int2,int4,int8,uuid,text,varchar}', ints || ', uuid, text or varchar');
	IF status_column IS NOT NULL THEN
		PERFORM referral._check_order_column(orders, tbl.display, 'status', status_column,
			'{text,varchar}', 'text, varchar or an enum', allow_enum => true);
	END IF;
	IF ordered_at_column IS NOT NULL THEN
		PERFORM referral._check_order_column(orders, tbl.display, 'ordered_at', ordered_at_column,
			'{timestamptz,timestamp,date}', 'timestamptz, timestamp or date');
	END IF;
	IF tenant_column IS NOT NULL THEN
		PERFORM referral._check_order_column(orders, tbl.display, 'tenant', tenant_column,
			'{text,varchar,int2,int4,int8}', 'text, varchar, ' || ints);
	END IF;

	PERFORM referral._check_statuses('paid_statuses', paid_statuses, false);
	PERFORM referral._check_statuses('reversed_statuses', reversed_statuses, true);
	SELECT pg_catalog.string_agg(DISTINCT s, ', ' ORDER BY s) INTO both_ways
	  FROM pg_catalog.unnest(paid_statuses) s
	 WHERE s = ANY (reversed_statuses);
	IF both_ways IS NOT NULL THEN
		RAISE EXCEPTION 'paid_statuses and reversed_statuses overlap: %', both_ways
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A status means paid or reversed, not both.';
	END IF;
	IF tenant_column IS NULL AND NULLIF(pg_catalog.btrim(tenant), '') IS NULL THEN
		RAISE EXCEPTION 'tenant must not be empty' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Give a tenant, or a tenant_column that holds each order''s tenant.';
	END IF;

	IF EXISTS (SELECT FROM referral.tracked_table t WHERE t.relid = orders)
	   OR EXISTS (SELECT FROM pg_catalog.pg_trigger g
	               WHERE g.tgrelid = orders
	                 AND g.tgfoid = 'referral._order_trigger()'::pg_catalog.regprocedure) THEN
		RAISE EXCEPTION 'table "%" is already tracked', tbl.display
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Call referral.untrack_orders() first to track it with other settings.';
	END IF;
	SELECT g.tgname INTO taken FROM pg_catalog.pg_trigger g
	 WHERE g.tgrelid = orders
	   AND g.tgname IN ('referral_orders_ins', 'referral_orders_upd', 'referral_orders_del')
	 ORDER BY g.tgname LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'trigger "%" for table "%" already exists', taken, tbl.display
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Rename or drop that trigger: track_orders needs its name.';
	END IF;

	-- The trigger's whole configuration, in the order src/order_trigger.c reads it.
	args := format('%L, %L, %L, %L, %L, %L, %L, %L, %L, %L',
		CASE WHEN tenant_column IS NULL THEN tenant ELSE '' END,
		tbl.quoted,
		customer_column,
		amount_column,
		id_column,
		COALESCE(status_column, ''),
		paid_statuses::text,
		reversed_statuses::text,
		COALESCE(ordered_at_column, ''),
		COALESCE(tenant_column, ''));
	EXECUTE format('CREATE TRIGGER referral_orders_ins AFTER INSERT ON %s'
	               ' REFERENCING NEW TABLE AS referral_new'
	               ' FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger(%s)',
	               tbl.quoted, args);
	EXECUTE format('CREATE TRIGGER referral_orders_upd AFTER UPDATE ON %s'
	               ' REFERENCING OLD TABLE AS referral_old NEW TABLE AS referral_new'
	               ' FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger(%s)',
	               tbl.quoted, args);
	EXECUTE format('CREATE TRIGGER referral_orders_del AFTER DELETE ON %s'
	               ' REFERENCING OLD TABLE AS referral_old'
	               ' FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger(%s)',
	               tbl.quoted, args);

	INSERT INTO referral.tracked_table AS t
		(tenant, relid, customer_column, amount_column, id_column, status_column,
		 paid_statuses, reversed_statuses, ordered_at_column, tenant_column, source)
	VALUES
		(CASE WHEN track_orders.tenant_column IS NULL THEN track_orders.tenant ELSE '' END,
		 track_orders.orders, track_orders.customer_column, track_orders.amount_column,
		 track_orders.id_column, track_orders.status_column, track_orders.paid_statuses,
		 track_orders.reversed_statuses, track_orders.ordered_at_column,
		 track_orders.tenant_column, tbl.quoted);
END
$$;
COMMENT ON FUNCTION referral.track_orders(regclass, name, name, name, name, text[], text[], name, name, text)
	IS 'attach a shop''s orders table: statement-level triggers attribute its paid orders to referrals and reverse rewards of refunded, cancelled or deleted orders, in the same transaction';

CREATE FUNCTION referral.untrack_orders(orders regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tbl record;
	trigger_name name;
	found_one boolean := false;
BEGIN
	IF orders IS NOT NULL
	   AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = orders) THEN
		-- A table dropped since: only its registry row is left (untrack by OID).
		DELETE FROM referral.tracked_table t WHERE t.relid = orders;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'table with OID % is not tracked', orders::oid
				USING ERRCODE = 'undefined_object',
					  HINT = 'Tracked tables are listed in referral.tracked_table.';
		END IF;
		RETURN;
	END IF;
	tbl := referral._orders_table(orders);
	FOR trigger_name IN
		SELECT g.tgname FROM pg_catalog.pg_trigger g
		 WHERE g.tgrelid = orders
		   AND g.tgfoid = 'referral._order_trigger()'::pg_catalog.regprocedure
		 ORDER BY g.tgname
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, tbl.quoted);
		found_one := true;
	END LOOP;
	DELETE FROM referral.tracked_table t WHERE t.relid = orders;
	IF NOT (found_one OR FOUND) THEN
		RAISE EXCEPTION 'table "%" is not tracked', tbl.display
			USING ERRCODE = 'undefined_object',
				  HINT = 'Tracked tables are listed in referral.tracked_table.';
	END IF;
END
$$;
COMMENT ON FUNCTION referral.untrack_orders(regclass)
	IS 'detach an orders table: drop its referral triggers and its registry row (a dropped table''s row by OID); rewards already created stay';

REVOKE ALL ON FUNCTION referral.track_orders(regclass, name, name, name, name, text[], text[], name, name, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION referral.untrack_orders(regclass) FROM PUBLIC;
-- Operations on the ledger: approving rewards after their hold period, and payouts.

CREATE FUNCTION referral.approve_due(at timestamptz DEFAULT pg_catalog.now())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	approved bigint[];
BEGIN
	PERFORM referral._require(at IS NOT NULL, 'at must not be NULL');
	WITH due AS (
		SELECT w.id FROM referral.reward w
		  JOIN referral.program p ON p.id = w.program_id
		 WHERE w.status = 'pending' AND w.created_at + p.hold_period < approve_due.at
		 ORDER BY w.id
		   FOR UPDATE OF w SKIP LOCKED
	), upd AS (
		UPDATE referral.reward w SET status = 'approved', approved_at = approve_due.at
		  FROM due WHERE w.id = due.id AND w.status = 'pending'
		RETURNING w.id
	)
	SELECT array_agg(upd.id) INTO approved FROM upd;
	IF approved IS NULL THEN
		RETURN 0;
	END IF;
	PERFORM referral._emit_rewards('reward_approved', approved);
	RETURN cardinality(approved);
END
$$;
COMMENT ON FUNCTION referral.approve_due(timestamptz)
	IS 'approve pending rewards whose hold period has passed at the given time; returns how many';

CREATE FUNCTION referral.mark_paid(reward_ids bigint[], reference text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	wanted bigint[];
	not_payable text;
	paid bigint[];
BEGIN
	PERFORM referral._require(NULLIF(btrim(reference), '') IS NOT NULL, 'payout reference must not be empty');
	PERFORM referral._require(reward_ids IS NOT NULL AND cardinality(reward_ids) > 0
	                          AND array_position(reward_ids, NULL) IS NULL,
		'reward_ids must be a non-empty array without NULLs');
	wanted := ARRAY(SELECT DISTINCT unnest(reward_ids) ORDER BY 1);

	-- Lock them all first (id order), then check: all or nothing.
	PERFORM 1 FROM referral.reward w WHERE w.id = ANY (wanted) ORDER BY w.id FOR UPDATE;
	SELECT string_agg(format('%s (%s)', i, COALESCE(w.status, 'does not exist')), ', ' ORDER BY i)
	  INTO not_payable
	  FROM unnest(wanted) i LEFT JOIN referral.reward w ON w.id = i
	 WHERE w.status IS DISTINCT FROM 'approved';
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
CREATE FUNCTION referral.audit(program bigint DEFAULT NULL)
RETURNS TABLE (problem text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t record;
	paid_test text;
	tenant_test text;
BEGIN
	IF program IS NOT NULL THEN
		PERFORM referral._program(program);
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
	        OR (w.status = 'paid' AND NOT EXISTS (SELECT 1 FROM referral.reward c WHERE c.clawback_of = w.id)))
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'clawback_without_reward',
	       format('clawback %s of %s offsets reward %s, which is not a paid reward of %s for %s',
	              c.id, c.amount, c.clawback_of, c.beneficiary, -c.amount)
	  FROM referral.reward c
	  LEFT JOIN referral.reward w ON w.id = c.clawback_of
	 WHERE c.kind = 'clawback' AND (audit.program IS NULL OR c.program_id = audit.program)
	   AND (w.id IS NULL OR w.status <> 'paid' OR w.beneficiary <> c.beneficiary OR w.amount <> -c.amount)
	 ORDER BY c.id;

	RETURN QUERY
	SELECT 'reward_without_referral',
	       format('reward %s of %s names referral %s, which does not exist', w.id, w.beneficiary, w.referral_id)
	  FROM referral.reward w
	 WHERE NOT EXISTS (SELECT 1 FROM referral.referral r WHERE r.id = w.referral_id)
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'reward_program_mismatch',
	       format('reward %s is in program %s, but its referral %s is in program %s',
	              w.id, w.program_id, r.id, r.program_id)
	  FROM referral.reward w
	  JOIN referral.referral r ON r.id = w.referral_id
	 WHERE w.program_id <> r.program_id
	   AND (audit.program IS NULL OR w.program_id = audit.program OR r.program_id = audit.program)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'reward_above_rule',
	       format('reward %s pays %s, more than rule %s gives for order %s of %s (%s)',
	              w.id, w.amount, w.rule_id, w.order_ref, o.amount,
	              referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency))
	  FROM referral.reward w
	  JOIN referral.reward_rule rr ON rr.id = w.rule_id
	  JOIN referral.attributed_order o
	    ON o.tenant = w.tenant AND o.order_source = w.order_source AND o.order_ref = w.order_ref
	 WHERE w.kind IN ('referee', 'referrer') AND w.status <> 'reversed'
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	   AND w.amount > referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'budget_exceeded',
	       format('program %s has created %s of rewards, over its budget of %s', p.id, s.total, p.budget)
	  FROM referral.program p
	  JOIN (SELECT w.program_id, sum(w.amount) AS total FROM referral.reward w
	         WHERE w.status <> 'reversed' GROUP BY w.program_id) s ON s.program_id = p.id
	 WHERE p.budget IS NOT NULL AND s.total > p.budget
	   AND (audit.program IS NULL OR p.id = audit.program)
	 ORDER BY p.id;

	RETURN QUERY
	SELECT 'referrer_cap_exceeded',
	       format('%s has earned %s in program %s, over its referrer_cap of %s', s.beneficiary, s.total, p.id, p.referrer_cap)
	  FROM referral.program p
	  JOIN (SELECT w.program_id, w.beneficiary, sum(w.amount) AS total FROM referral.reward w
	         WHERE w.status <> 'reversed' GROUP BY w.program_id, w.beneficiary) s ON s.program_id = p.id
	 WHERE p.referrer_cap IS NOT NULL AND s.total > p.referrer_cap
	   AND (audit.program IS NULL OR p.id = audit.program)
	 ORDER BY p.id, s.beneficiary;

	-- Against the orders of every table still tracked.
	FOR t IN
		SELECT tt.*, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified
		  FROM referral.tracked_table tt
		  JOIN pg_class c ON c.oid = tt.relid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 ORDER BY tt.relid
	LOOP
		paid_test := CASE WHEN t.status_column IS NULL THEN 'true'
		                  ELSE format('(x.%I::text = ANY (%L::text[]))', t.status_column, t.paid_statuses) END;
		tenant_test := CASE WHEN t.tenant_column IS NULL THEN format('%L', t.tenant)
		                    ELSE format('x.%I::text', t.tenant_column) END;

		-- An attributed, unreversed order that is no longer there or no longer paid.
		RETURN QUERY EXECUTE format(
			'SELECT %L, format(%L, o.order_ref, o.order_source, o.referral_id, CASE WHEN x.%I IS NULL THEN %L ELSE %L END)
			   FROM referral.attributed_order o
			   LEFT JOIN %s x ON x.%I::text = o.order_ref AND %s = o.tenant
			  WHERE o.order_source = $1 AND o.reversed_at IS NULL
			    AND ($2::bigint IS NULL OR o.program_id = $2)
			    AND (x.%I IS NULL OR NOT %s)
			  ORDER BY o.order_ref',
			'order_not_paid', 'order %s of %s (referral %s) earned rewards but is %s',
			t.id_column, 'deleted', 'not paid',
			t.qualified, t.id_column, tenant_test, t.id_column, paid_test)
		USING t.source, program;

		-- A pending referral whose referee has a qualifying paid order in the window,
		-- placed after the referral last went back to pending: a missed conversion.
		IF t.ordered_at_column IS NOT NULL THEN
			RETURN QUERY EXECUTE format(
				'SELECT %L, format(%L, r.id, x.%I::text)
				   FROM referral.referral r
				   JOIN referral.program p ON p.id = r.program_id
				   JOIN %s x ON x.%I::text = r.referee AND %s = r.tenant
				  WHERE r.status = ''pending'' AND ($1::bigint IS NULL OR r.program_id = $1)
				    AND %s AND x.%I::numeric >= p.min_order_amount
				    AND x.%I::timestamptz >= GREATEST(r.created_at, p.starts_at, r.reverted_at)
				    AND x.%I::timestamptz <= r.created_at + p.attribution_window
				    AND (p.ends_at IS NULL OR x.%I::timestamptz < p.ends_at)
				    AND NOT EXISTS (SELECT 1 FROM referral.attributed_order o
				                     WHERE o.tenant = r.tenant AND o.order_source = $2 AND o.order_ref = x.%I::text)
				  ORDER BY r.id',
				'missed_conversion', 'referral %s is pending although order %s qualifies',
				t.id_column, t.qualified, t.customer_column, tenant_test, paid_test, t.amount_column,
				t.ordered_at_column, t.ordered_at_column, t.ordered_at_column, t.id_column)
			USING program, t.source;
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral.audit(bigint)
	IS 'recompute from tracked orders and referrals what the ledger should hold; one row per difference, none when consistent';
-- Views for analysts (SPEC.md "Views for analysts"), and participant_summary(), the
-- one participant's figures that the application reads.  grant_analyst() grants
-- SELECT on every view of the schema; grant_app() grants participant_summary().
--
-- Definitions shared by every view:
-- - referrals: accepted referrals (pending or converted); program_stats.rejected
--   counts rejected redeem attempts (rows), separately.
-- - conversions: referrals converted now (a reversed converting order returns its
--   referral to pending, and it no longer counts).
-- - revenue: the amounts of the qualifying orders of referred customers, not
--   reversed, read from the ledger (referral.attributed_order: each converting order
--   and every later qualifying order of its referee, with its amount as last seen by
--   the order trigger), not by scanning the shop's orders tables: fast, independent
--   of the tables' privileges, and unchanged when a table is untracked.  Paid orders
--   that did not qualify (below min_order_amount, outside the active period, before
--   the conversion) are not revenue.  A referrer's revenue is that of their own
--   (level 1) referrals.
-- - reward_cost: rewards not reversed, of every kind and level, clawbacks (negative)
--   included; a program's or a variant's by the reward's referral.
-- - Count columns are bigint, money columns numeric (0, never NULL, when there is
--   nothing), rates and p-values double precision; a rate whose divisor is 0 is NULL.
-- - Days are calendar days in the session's TimeZone (at query time).
--
-- Every view aggregates each table once, grouped by program (and customer), in
-- subqueries joined together: no correlated subquery per row, and a filter on
-- program_id (and customer) is pushed down into each of them.

CREATE FUNCTION referral.two_proportion_p_value(successes_a bigint, trials_a bigint, successes_b bigint, trials_b bigint)
RETURNS double precision
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_two_proportion_p_value';
COMMENT ON FUNCTION referral.two_proportion_p_value(bigint, bigint, bigint, bigint)
	IS 'two-sided p-value of the pooled two-proportion z-test of successes_a/trials_a against successes_b/trials_b; NULL when a sample is empty or the pooled rate is 0 or 1';

-- The variant each code holder is assigned to: referral.variant_of() for every code
-- at once (the same hash, the same slots of the cumulative weights in variant id
-- order), written out here because a view must not call functions that its readers
-- may not execute.  test/pgtap/30_views.sql checks that both agree.
CREATE VIEW referral._code_variant AS
SELECT c.tenant, c.program_id, c.customer, c.code, s.name AS variant
  FROM (SELECT k.tenant, k.program_id, k.customer, k.code,
               CASE WHEN t.total IS NOT NULL	-- no hashing in programs without variants
                    THEN ('x' || pg_catalog.substr(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                              k.program_id::text || ':' || k.customer, 'UTF8')), 'hex'), 1, 15))::bit(60)::bigint
                         % t.total
               END AS slot
          FROM referral.code k
          LEFT JOIN (SELECT v.program_id, pg_catalog.sum(v.weight) AS total
                       FROM referral.variant v
                      GROUP BY v.program_id) t ON t.program_id = k.program_id) c
  LEFT JOIN (SELECT v.program_id, v.name, v.weight,
                    pg_catalog.sum(v.weight) OVER (PARTITION BY v.program_id ORDER BY v.id) AS upto
               FROM referral.variant v) s
    ON s.program_id = c.program_id AND c.slot >= s.upto - s.weight AND c.slot < s.upto;
COMMENT ON VIEW referral._code_variant
	IS 'internal: the A/B variant of every code holder (as referral.variant_of), NULL in programs without variants';

-- Every code holder's figures: referrer_stats, leaderboard and participant_summary
-- read them from here, so that they agree.  tier: how many of the level-1 referrer
-- tiers (distinct min_conversions of the rules for the holder's variant, or of the
-- variant-less rules when that variant has none, as referral._pick_rule) the
-- holder's conversions reach: 1 = the base tier, 0 when no rule applies yet;
-- next_tier_at: the next tier's min_conversions, NULL at the top.  (A program has one
-- tenant: the big aggregates group by program, not by tenant as well, which makes
-- them cheaper; the referrals' one keeps tenant for participant_summary's index.)
CREATE VIEW referral._participant AS
SELECT c.tenant, c.program_id, c.customer, c.code, c.variant,
       COALESCE(pg_catalog.width_bucket(COALESCE(r.conversions, 0)::int, COALESCE(ts.tiers, tg.tiers)), 0) AS tier,
       (COALESCE(ts.tiers, tg.tiers))[COALESCE(pg_catalog.width_bucket(COALESCE(r.conversions, 0)::int,
                                                                   COALESCE(ts.tiers, tg.tiers)), 0) + 1] AS next_tier_at,
       COALESCE(k.clicks, 0) AS clicks,
       COALESCE(r.referrals, 0) AS referrals,
       COALESCE(r.conversions, 0) AS conversions,
       r.conversions::double precision / NULLIF(r.referrals, 0) AS conversion_rate,
       COALESCE(o.revenue, 0) AS revenue,
       COALESCE(w.pending, 0) AS rewards_pending,
       COALESCE(w.approved, 0) AS rewards_approved,
       COALESCE(w.paid, 0) AS rewards_paid,
       COALESCE(w.pending, 0) + COALESCE(w.approved, 0) + COALESCE(w.paid, 0) AS rewards
  FROM referral._code_variant c
  LEFT JOIN (SELECT x.program_id, x.code, pg_catalog.count(*) AS clicks
               FROM referral.click x
              GROUP BY x.program_id, x.code) k
    ON k.program_id = c.program_id AND k.code OPERATOR(referral.=) c.code
  LEFT JOIN (SELECT x.tenant, x.program_id, x.referrer,
                    pg_catalog.count(*) AS referrals,
                    pg_catalog.count(*) FILTER (WHERE x.status = 'converted') AS conversions
               FROM referral.referral x
              WHERE x.status <> 'rejected'
              GROUP BY x.tenant, x.program_id, x.referrer) r
    ON r.tenant = c.tenant AND r.program_id = c.program_id AND r.referrer = c.customer
  LEFT JOIN (SELECT x.program_id, x.referrer, pg_catalog.sum(a.amount) AS revenue
               FROM referral.attributed_order a
               JOIN referral.referral x ON x.id = a.referral_id
              WHERE a.reversed_at IS NULL
              GROUP BY x.program_id, x.referrer) o
    ON o.program_id = c.program_id AND o.referrer = c.customer
  LEFT JOIN (SELECT x.program_id, x.beneficiary,
                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'pending') AS pending,
                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'approved') AS approved,
                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'paid') AS paid
               FROM referral.reward x
              GROUP BY x.program_id, x.beneficiary) w
    ON w.program_id = c.program_id AND w.beneficiary = c.customer
  LEFT JOIN (SELECT x.program_id, x.variant,
                    pg_catalog.array_agg(DISTINCT x.min_conversions ORDER BY x.min_conversions) AS tiers
               FROM referral.reward_rule x
              WHERE x.beneficiary = 'referrer' AND x.level = 1 AND x.variant IS NOT NULL
              GROUP BY x.program_id, x.variant) ts
    ON ts.program_id = c.program_id AND ts.variant = c.variant
  LEFT JOIN (SELECT x.program_id,
                    pg_catalog.array_agg(DISTINCT x.min_conversions ORDER BY x.min_conversions) AS tiers
               FROM referral.reward_rule x
              WHERE x.beneficiary = 'referrer' AND x.level = 1 AND x.variant IS NULL
              GROUP BY x.program_id) tg
    ON tg.program_id = c.program_id;
COMMENT ON VIEW referral._participant
	IS 'internal: every code holder''s figures (tier, next_tier_at, clicks, referrals, conversions, revenue, rewards by status), read by referrer_stats, leaderboard and participant_summary';

CREATE VIEW referral.program_stats AS
SELECT p.id AS program_id,
       p.name AS program,
       COALESCE(k.clicks, 0) AS clicks,
       COALESCE(r.referrals, 0) AS referrals,
       COALESCE(r.rejected, 0) AS rejected,
       COALESCE(r.conversions, 0) AS conversions,
       r.conversions::double precision / NULLIF(r.referrals, 0) AS conversion_rate,
       COALESCE(o.revenue, 0) AS revenue,
       COALESCE(w.reward_cost, 0) AS reward_cost,
       COALESCE(w.reward_cost, 0) / NULLIF(r.conversions, 0) AS cost_per_acquisition,
       ((COALESCE(o.revenue, 0) - w.reward_cost) / NULLIF(w.reward_cost, 0))::double precision AS roi,
       COALESCE(r.referrals, 0)::double precision / NULLIF(h.holders, 0) AS k_factor
  FROM referral.program p
  LEFT JOIN (SELECT x.program_id, pg_catalog.count(*) AS clicks
               FROM referral.click x GROUP BY x.program_id) k
    ON k.program_id = p.id
  LEFT JOIN (SELECT x.program_id, pg_catalog.count(*) AS holders
               FROM referral.code x GROUP BY x.program_id) h
    ON h.program_id = p.id
  LEFT JOIN (SELECT x.program_id,
                    pg_catalog.count(*) FILTER (WHERE x.status <> 'rejected') AS referrals,
                    pg_catalog.count(*) FILTER (WHERE x.status = 'rejected') AS rejected,
                    pg_catalog.count(*) FILTER (WHERE x.status = 'converted') AS conversions
               FROM referral.referral x GROUP BY x.program_id) r
    ON r.program_id = p.id
  LEFT JOIN (SELECT a.program_id, pg_catalog.sum(a.amount) AS revenue
               FROM referral.attributed_order a
              WHERE a.reversed_at IS NULL
              GROUP BY a.program_id) o
    ON o.program_id = p.id
  LEFT JOIN (SELECT x.program_id, pg_catalog.sum(x.amount) AS reward_cost
               FROM referral.reward x
              WHERE x.status <> 'reversed'
              GROUP BY x.program_id) w
    ON w.program_id = p.id;
COMMENT ON VIEW referral.program_stats
	IS 'one row per program: clicks, accepted referrals, rejected attempts, conversions, conversion_rate (conversions / referrals), revenue (attributed orders not reversed), reward_cost (rewards not reversed, clawbacks included), cost_per_acquisition (reward_cost / conversions), roi ((revenue - reward_cost) / reward_cost), k_factor (referrals per code holder)';

CREATE VIEW referral.referrer_stats AS
SELECT s.program_id, s.customer, s.code, s.variant, s.tier, s.clicks, s.referrals,
       s.conversions, s.conversion_rate, s.revenue,
       s.rewards_pending, s.rewards_approved, s.rewards_paid
  FROM referral._participant s;
COMMENT ON VIEW referral.referrer_stats
	IS 'one row per code holder and program: code, A/B variant, tier (level-1 referrer tiers reached, 1 = base), clicks on the code, accepted referrals, conversions, conversion_rate, revenue of their referees'' attributed orders, and their rewards by status (clawbacks under their own status)';

-- rank(): referrers with the same conversions and revenue share a rank, and the next
-- rank skips (1, 2, 2, 4), so that equal results never look ordered.  rewards: the
-- participant's rewards not reversed, clawbacks included.  Every code holder has a row.
CREATE VIEW referral.leaderboard AS
SELECT s.program_id,
       pg_catalog.rank() OVER (PARTITION BY s.program_id ORDER BY s.conversions DESC, s.revenue DESC) AS rank,
       s.customer, s.conversions, s.revenue, s.rewards
  FROM referral._participant s;
COMMENT ON VIEW referral.leaderboard
	IS 'code holders ranked per program by conversions, then revenue (rank(): ties share a rank); rewards = their rewards not reversed, clawbacks included';

CREATE VIEW referral.reward_balance AS
SELECT w.tenant, w.beneficiary AS customer, w.currency,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'pending'), 0) AS pending,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'approved'), 0) AS approved,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'paid'), 0) AS paid,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'reversed'), 0) AS reversed
  FROM referral.reward w
 GROUP BY w.tenant, w.beneficiary, w.currency;
COMMENT ON VIEW referral.reward_balance
	IS 'per tenant, beneficiary and currency, over all programs: reward amounts by status; paid is gross (what was paid out), a clawback counts under its own status (approved, negative, until a payout nets it)';

CREATE VIEW referral.variant_stats AS
SELECT s.program_id, s.variant, s.referrers, s.referrals, s.conversions, s.conversion_rate,
       s.revenue, s.reward_cost,
       CASE WHEN s.id <> s.first_id
            THEN referral.two_proportion_p_value(s.first_conversions, s.first_referrals, s.conversions, s.referrals)
       END AS p_value
  FROM (SELECT v.program_id, v.id, v.name AS variant,
               COALESCE(h.referrers, 0) AS referrers,
               COALESCE(r.referrals, 0) AS referrals,
               COALESCE(r.conversions, 0) AS conversions,
               r.conversions::double precision / NULLIF(r.referrals, 0) AS conversion_rate,
               COALESCE(o.revenue, 0) AS revenue,
               COALESCE(w.reward_cost, 0) AS reward_cost,
               pg_catalog.first_value(v.id) OVER first AS first_id,
               pg_catalog.first_value(COALESCE(r.conversions, 0)) OVER first AS first_conversions,
               pg_catalog.first_value(COALESCE(r.referrals, 0)) OVER first AS first_referrals
          FROM referral.variant v
          LEFT JOIN (SELECT x.program_id, x.variant, pg_catalog.count(*) AS referrers
                       FROM referral._code_variant x
                      WHERE x.variant IS NOT NULL
                      GROUP BY x.program_id, x.variant) h
            ON h.program_id = v.program_id AND h.variant = v.name
          LEFT JOIN (SELECT x.program_id, x.variant,
                            pg_catalog.count(*) AS referrals,
                            pg_catalog.count(*) FILTER (WHERE x.status = 'converted') AS conversions
                       FROM referral.referral x
                      WHERE x.status <> 'rejected' AND x.variant IS NOT NULL
                      GROUP BY x.program_id, x.variant) r
            ON r.program_id = v.program_id AND r.variant = v.name
          LEFT JOIN (SELECT x.program_id, x.variant, pg_catalog.sum(a.amount) AS revenue
                       FROM referral.attributed_order a
                       JOIN referral.referral x ON x.id = a.referral_id
                      WHERE a.reversed_at IS NULL AND x.variant IS NOT NULL
                      GROUP BY x.program_id, x.variant) o
            ON o.program_id = v.program_id AND o.variant = v.name
          LEFT JOIN (SELECT x.program_id, x.variant, pg_catalog.sum(w.amount) AS reward_cost
                       FROM referral.reward w
                       JOIN referral.referral x ON x.id = w.referral_id
                      WHERE w.status <> 'reversed' AND x.variant IS NOT NULL
                      GROUP BY x.program_id, x.variant) w
            ON w.program_id = v.program_id AND w.variant = v.name
        WINDOW first AS (PARTITION BY v.program_id ORDER BY v.id)) s;
COMMENT ON VIEW referral.variant_stats
	IS 'one row per A/B variant: code holders assigned to it, accepted referrals made in it, conversions, conversion_rate, revenue, reward_cost, and p_value of a two-proportion z-test of its conversion rate against the first variant''s (lowest id; NULL for that one and when undefined)';

-- Each day's figures by the date of their own event: clicks (click.at), accepted
-- referrals (created_at), conversions (converted_at), revenue (the attributed order's
-- time), reward_cost (the reward's created_at; a clawback on its own day).  A day
-- has a row when any of them does.
CREATE VIEW referral.daily_stats AS
SELECT d.program_id, d.day,
       pg_catalog.sum(d.clicks)::bigint AS clicks,
       pg_catalog.sum(d.referrals)::bigint AS referrals,
       pg_catalog.sum(d.conversions)::bigint AS conversions,
       pg_catalog.sum(d.revenue) AS revenue,
       pg_catalog.sum(d.reward_cost) AS reward_cost
  FROM (SELECT x.program_id, x.at::date AS day, pg_catalog.count(*) AS clicks, 0::bigint AS referrals,
               0::bigint AS conversions, 0::numeric AS revenue, 0::numeric AS reward_cost
          FROM referral.click x
         GROUP BY 1, 2
        UNION ALL
        SELECT x.program_id, x.created_at::date, 0, pg_catalog.count(*), 0, 0, 0
          FROM referral.referral x
         WHERE x.status <> 'rejected'
         GROUP BY 1, 2
        UNION ALL
        SELECT x.program_id, x.converted_at::date, 0, 0, pg_catalog.count(*), 0, 0
          FROM referral.referral x
         WHERE x.status = 'converted'
         GROUP BY 1, 2
        UNION ALL
        SELECT a.program_id, a.ordered_at::date, 0, 0, 0, pg_catalog.sum(a.amount), 0
          FROM referral.attributed_order a
         WHERE a.reversed_at IS NULL
         GROUP BY 1, 2
        UNION ALL
        SELECT w.program_id, w.created_at::date, 0, 0, 0, 0, pg_catalog.sum(w.amount)
          FROM referral.reward w
         WHERE w.status <> 'reversed'
         GROUP BY 1, 2) d
 GROUP BY d.program_id, d.day;
COMMENT ON VIEW referral.daily_stats
	IS 'per program and calendar day (session TimeZone): clicks, accepted referrals, conversions (by converted_at), revenue (by order time), reward_cost (by reward created_at)';

-- Signals on accepted referrals (a rejected attempt was stopped already):
-- - shared_ip: 3 or more referrals of one referrer from one IP (hash) within one hour
--   (created_at at most an hour apart); each referral of such a group has a row;
-- - shared_device: referees of one referrer with the same device (hash);
-- - near_daily_limit: the referrer's accepted referrals on that calendar day reach 80%
--   of the program's daily_referral_limit; each referral of that day has a row;
-- - rejected_attempts: the referee also made rejected redeem attempts (in the tenant).
-- A referral has one row per signal.  The detail says why in words.
CREATE VIEW referral.suspicious_referrals AS
SELECT a.id AS referral_id, a.program_id, a.referrer, a.referee, 'shared_ip'::text AS signal,
       pg_catalog.format('%s referees of this referrer signed up from the same IP address within one hour',
                         pg_catalog.max(g.n)) AS detail
  FROM referral.referral a
  JOIN (SELECT x.program_id, x.referrer, x.ip_hash, x.created_at AS since,
               pg_catalog.count(*) OVER (PARTITION BY x.program_id, x.referrer, x.ip_hash ORDER BY x.created_at
                                         RANGE BETWEEN CURRENT ROW AND '1 hour' FOLLOWING) AS n
          FROM referral.referral x
         WHERE x.status <> 'rejected' AND x.ip_hash IS NOT NULL) g
    ON g.program_id = a.program_id AND g.referrer = a.referrer AND g.ip_hash = a.ip_hash
   AND a.created_at >= g.since AND a.created_at <= g.since + '1 hour'::interval AND g.n >= 3
 WHERE a.status <> 'rejected'
 GROUP BY a.id, a.program_id, a.referrer, a.referee
UNION ALL
SELECT d.id, d.program_id, d.referrer, d.referee, 'shared_device',
       pg_catalog.format('the referee''s device is shared by %s other referee(s) of this referrer', d.n - 1)
  FROM (SELECT x.id, x.program_id, x.referrer, x.referee,
               pg_catalog.count(*) OVER (PARTITION BY x.program_id, x.referrer, x.device_hash) AS n
          FROM referral.referral x
         WHERE x.status <> 'rejected' AND x.device_hash IS NOT NULL) d
 WHERE d.n >= 2
UNION ALL
SELECT d.id, d.program_id, d.referrer, d.referee, 'near_daily_limit',
       pg_catalog.format('%s accepted referrals of this referrer on %s: %s%% of the daily limit of %s',
                         d.n, pg_catalog.to_char(d.day::timestamp, 'YYYY-MM-DD'), 100 * d.n / d.daily_limit,
                         d.daily_limit)
  FROM (SELECT x.id, x.program_id, x.referrer, x.referee, x.created_at::date AS day,
               p.daily_referral_limit AS daily_limit,
               pg_catalog.count(*) OVER (PARTITION BY x.program_id, x.referrer, x.created_at::date) AS n
          FROM referral.referral x
          JOIN referral.program p ON p.id = x.program_id
         WHERE x.status <> 'rejected' AND p.daily_referral_limit IS NOT NULL) d
 WHERE d.n * 5 >= d.daily_limit * 4
UNION ALL
SELECT a.id, a.program_id, a.referrer, a.referee, 'rejected_attempts',
       pg_catalog.format('the referee made %s rejected redeem attempt(s): %s', j.n, j.reasons)
  FROM referral.referral a
  JOIN (SELECT x.tenant, x.referee, pg_catalog.count(*) AS n,
               pg_catalog.string_agg(DISTINCT x.reason, ', ' ORDER BY x.reason) AS reasons
          FROM referral.referral x
         WHERE x.status = 'rejected'
         GROUP BY x.tenant, x.referee) j
    ON j.tenant = a.tenant AND j.referee = a.referee
 WHERE a.status <> 'rejected';
COMMENT ON VIEW referral.suspicious_referrals
	IS 'accepted referrals with a fraud signal, one row per signal: shared_ip (3+ referees of a referrer from one IP within an hour), shared_device (referees of a referrer sharing a device), near_daily_limit (the referrer''s accepted referrals that day reach 80% of daily_referral_limit), rejected_attempts (the referee also had rejected attempts); detail says why';

CREATE FUNCTION referral.participant_summary(program bigint, customer text)
RETURNS TABLE (code referral.referral_code, variant text, clicks bigint, referrals bigint,
               conversions bigint, tier int, next_tier_at int, rewards_pending numeric,
               rewards_approved numeric, rewards_paid numeric)
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p referral.program := referral._program(participant_summary.program);
BEGIN
	-- Code, variant, referrals, conversions and tier from the view; clicks and rewards
	-- (the same rows as the view's columns) by index lookups of this one participant,
	-- so that the view's aggregates of the whole program are left out of the plan.
	RETURN QUERY
	SELECT s.code, s.variant,
	       (SELECT pg_catalog.count(*) FROM referral.click k
	         WHERE k.code OPERATOR(referral.=) s.code AND k.program_id = s.program_id),
	       s.referrals, s.conversions, s.tier, s.next_tier_at,
	       COALESCE(w.pending, 0), COALESCE(w.approved, 0), COALESCE(w.paid, 0)
	  FROM referral._participant s
	 CROSS JOIN (SELECT pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'pending') AS pending,
	                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'approved') AS approved,
	                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'paid') AS paid
	               FROM referral.reward x
	              WHERE x.tenant = p.tenant AND x.beneficiary = participant_summary.customer
	                AND x.program_id = p.id) w
	 WHERE s.tenant = p.tenant AND s.program_id = p.id AND s.customer = participant_summary.customer;
END
$$;
COMMENT ON FUNCTION referral.participant_summary(bigint, text)
	IS 'one participant''s own dashboard in a program: code, variant, clicks, referrals, conversions, tier and next_tier_at, rewards by status; no row without a code';
-- Privileges.  PUBLIC keeps only what the referral_code type needs to be used as a
-- type (I/O, operators, support functions); everything else is granted
-- by referral.grant_app() and referral.grant_analyst().

REVOKE ALL ON ALL TABLES IN SCHEMA referral FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA referral FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA referral FROM PUBLIC;
GRANT USAGE ON SCHEMA referral TO PUBLIC;

-- The type's own functions: I/O, comparison and hash support (those the operators,
-- casts and operator classes of referral_code use).
DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT p.oid::regprocedure
		  FROM pg_proc p
		 WHERE p.pronamespace = 'referral'::regnamespace
		   AND (p.oid IN (SELECT t.typinput FROM pg_type t WHERE t.typname = 'referral_code'
		                  UNION ALL SELECT t.typoutput FROM pg_type t WHERE t.typname = 'referral_code'
		                  UNION ALL SELECT t.typreceive FROM pg_type t WHERE t.typname = 'referral_code'
		                  UNION ALL SELECT t.typsend FROM pg_type t WHERE t.typname = 'referral_code'
		                  UNION ALL SELECT o.oprcode FROM pg_operator o WHERE o.oprnamespace = 'referral'::regnamespace
		                  UNION ALL SELECT ap.amproc FROM pg_amproc ap
		                              JOIN pg_opfamily f ON f.oid = ap.amprocfamily
		                             WHERE f.opfnamespace = 'referral'::regnamespace
		                  UNION ALL SELECT c.castfunc FROM pg_cast c
		                             WHERE c.castsource = 'referral.referral_code'::regtype
		                                OR c.casttarget = 'referral.referral_code'::regtype))
	LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
	END LOOP;
END
$$;

CREATE FUNCTION referral.grant_app(role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE format('GRANT USAGE ON SCHEMA referral TO %s', role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION
		referral.issue_code(bigint, text, referral.referral_code, text, text),
		referral.share_link(referral.referral_code, text, text),
		referral.record_click(referral.referral_code, text, inet, text, timestamptz),
		referral.redeem(referral.referral_code, text, text, inet, text, timestamptz)
		TO %s', role);
	IF to_regprocedure('referral.participant_summary(bigint, text)') IS NOT NULL THEN
		EXECUTE format('GRANT EXECUTE ON FUNCTION referral.participant_summary(bigint, text) TO %s', role);
	END IF;
END
$$;
COMMENT ON FUNCTION referral.grant_app(regrole)
	IS 'grant a role what an application needs: issue_code, share_link, record_click, redeem, participant_summary; no table access';

CREATE FUNCTION referral.grant_analyst(role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v regclass;
	f regprocedure;
BEGIN
	EXECUTE format('GRANT USAGE ON SCHEMA referral TO %s', role);
	-- The analysts' views; the internal ones (named _...) stay private.
	FOR v IN SELECT c.oid::regclass FROM pg_class c
	          WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('v', 'm')
	            AND c.relname !~ '^_'
	          ORDER BY c.relname
	LOOP
		EXECUTE format('GRANT SELECT ON %s TO %s', v, role);
	END LOOP;
	-- A view's reader needs EXECUTE on the extension's functions that the view calls
	-- (variant_stats: two_proportion_p_value).
	FOR f IN SELECT DISTINCT d.refobjid::regprocedure
	           FROM pg_depend d
	           JOIN pg_rewrite w ON w.oid = d.objid
	           JOIN pg_class c ON c.oid = w.ev_class
	           JOIN pg_proc p ON p.oid = d.refobjid
	          WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_proc'::regclass
	            AND c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('v', 'm')
	            AND p.pronamespace = 'referral'::regnamespace
	LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f, role);
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral.grant_analyst(regrole)
	IS 'grant a role SELECT on the analyst views of schema referral';
REVOKE EXECUTE ON FUNCTION referral.grant_app(regrole), referral.grant_analyst(regrole) FROM PUBLIC;

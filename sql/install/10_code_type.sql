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

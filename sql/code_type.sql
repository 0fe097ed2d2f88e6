-- referral_code: text input and output, errors, folding, comparisons, casts,
-- hashing, operator classes, privileges and generated codes.
SET search_path = public, referral;

-- Valid forms: case, spaces and hyphens anywhere; output upper case, no
-- separators, as written (no folding in the output).
SELECT input, input::referral_code AS code
FROM (VALUES ('abc'), ('ABC'), ('k7qx-m3pa'), ('K7QXM3PA'), (' K7QX M3PA '),
			 ('--k-7-q-x--m-3-p-a--'), ('a b c'), ('OLIVIA10'), ('olivia10'),
			 ('0L1V1A10'), ('000'), ('OOO'), ('ZZZZZZZZZZZZ'), ('zzzz-zzzz-zzzz'),
			 ('0123456789AB'), ('lil')) AS t(input);

-- Invalid input, one per line: SQLSTATE 22P02 with the problem named.
\set VERBOSITY default
SELECT ''::referral_code;
SELECT ' '::referral_code;
SELECT '--'::referral_code;
SELECT 'A'::referral_code;
SELECT 'AB'::referral_code;
SELECT 'A-B'::referral_code;
SELECT ' a b '::referral_code;
SELECT '0123456789ABC'::referral_code;
SELECT 'ABCD-EFGH-JKMN-P'::referral_code;
SELECT '1234 5678 9012 3'::referral_code;
SELECT 'AB-#X'::referral_code;
SELECT '#'::referral_code;
SELECT 'ABC_D'::referral_code;
SELECT 'ABC.D'::referral_code;
SELECT 'ABC+D'::referral_code;
SELECT 'ABC/D'::referral_code;
SELECT 'A#B!C'::referral_code;
SELECT 'AB!'::referral_code;
SELECT 'ABCDEFGHJKMNPQ!'::referral_code;
SELECT 'ABé'::referral_code;
SELECT 'AB–CD'::referral_code;
SELECT 'AB'::text::referral_code;
\set VERBOSITY sqlstate
SELECT 'AB-#X'::referral_code;
SELECT 'AB'::referral_code;
SELECT '0123456789ABC'::referral_code;
\set VERBOSITY default

-- Folding in every position: O = 0, I = 1, L = 1, I = L; a real difference
-- in the same position is not folded away; each prints as written.
SELECT pos,
	   overlay(b placing 'O' from pos)::referral_code = overlay(b placing '0' from pos)::referral_code AS o_0,
	   overlay(b placing 'I' from pos)::referral_code = overlay(b placing '1' from pos)::referral_code AS i_1,
	   overlay(b placing 'l' from pos)::referral_code = overlay(b placing '1' from pos)::referral_code AS l_1,
	   overlay(b placing 'I' from pos)::referral_code = overlay(b placing 'L' from pos)::referral_code AS i_l,
	   overlay(b placing 'O' from pos)::referral_code <> overlay(b placing '2' from pos)::referral_code AS o_ne_2,
	   overlay(b placing 'L' from pos)::referral_code AS l_as_written,
	   overlay(b placing 'o' from pos)::referral_code AS o_as_written
FROM generate_series(1, 12) AS pos, (VALUES ('ABCDEFGHJKMN')) AS t(b)
ORDER BY pos;

-- The same at length 3, every position.
SELECT pos,
	   overlay(b placing 'O' from pos)::referral_code = overlay(b placing '0' from pos)::referral_code AS o_0,
	   overlay(b placing 'I' from pos)::referral_code = overlay(b placing 'L' from pos)::referral_code AS i_l,
	   overlay(b placing 'L' from pos)::referral_code = overlay(b placing '1' from pos)::referral_code AS l_1
FROM generate_series(1, 3) AS pos, (VALUES ('XYZ')) AS t(b)
ORDER BY pos;

-- The spec's example: equal, hash alike, print as issued.
SELECT 'OLIVIA10'::referral_code = '0L1V1A10'::referral_code AS equal,
	   'OLIVIA10'::referral_code <> '0L1V1A10'::referral_code AS not_equal,
	   'olivia10'::referral_code AS as_issued,
	   '0L1V1A10'::referral_code AS other_spelling,
	   referral_code_hash('OLIVIA10') = referral_code_hash('0L1V1A10') AS same_hash,
	   referral_code_hash_extended('OLIVIA10', 42) = referral_code_hash_extended('0L1V1A10', 42) AS same_hash_ext,
	   referral_code_hash_extended('OLIVIA10', 0) = referral_code_hash_extended('0L1V1A10', 0) AS same_hash_ext_0,
	   referral_code_hash('OLIVIA10') = referral_code_hash('OLIVIA11') AS hash_of_other,
	   referral_code_hash_extended('OLIVIA10', 1) = referral_code_hash_extended('OLIVIA10', 2) AS seed_matters,
	   referral_code_cmp('OLIVIA10', '0L1V1A10') AS cmp;

-- Hash equality of folded codes in every position.
SELECT count(*) AS pairs,
	   count(*) FILTER (WHERE referral_code_hash(a) = referral_code_hash(b)
						  AND referral_code_hash_extended(a, 7) = referral_code_hash_extended(b, 7)) AS same_hash
FROM (SELECT overlay('ABCDEFGHJKMN' placing x from pos)::referral_code AS a,
			 overlay('ABCDEFGHJKMN' placing y from pos)::referral_code AS b
	  FROM generate_series(1, 12) AS pos,
		   (VALUES ('O', '0'), ('I', '1'), ('L', '1'), ('i', 'l')) AS f(x, y)) AS s;

-- Comparisons: every operator on examples.
SELECT a, b, a < b AS lt, a <= b AS le, a = b AS eq, a <> b AS ne, a >= b AS ge, a > b AS gt,
	   referral_code_cmp(a, b) AS cmp
FROM (VALUES ('ABC'::referral_code, 'ABC0'::referral_code),
			 ('ABCO', 'ABC0'),
			 ('ABC1', 'abcl'),
			 ('ABC1', 'ABC2'),
			 ('9ZZ', 'A00'),
			 ('ZZZ', '000000000000'),
			 ('OOO', '000'),
			 ('AB0Z', 'ABOA'),
			 ('K7QXM3PA', 'k7qx-m3pa')) AS t(a, b);

-- Ordering agrees with the folded spelling in C collation, for every pair
-- of a set of codes chosen to share prefixes and foldable letters.
CREATE TEMP TABLE cmp_codes (s text);
INSERT INTO cmp_codes VALUES ('ABC'), ('ABC0'), ('ABCO'), ('ABC1'), ('ABCI'), ('ABCL'),
	('ABC2'), ('ABCZ'), ('ABB'), ('AB0'), ('ABO'), ('A0C'), ('AOC'), ('000'), ('OOO'),
	('ZZZ'), ('ZZZZZZZZZZZZ'), ('000000000000'), ('OLIVIA10'), ('0L1V1A10'),
	('OLIVIA1'), ('OLIVIA100'), ('OLIVIA2'), ('9ZZZ'), ('A000'), ('AN0'), ('AP0'),
	('AM0'), ('ANN'), ('H1X'), ('HIX'), ('HJX'), ('HKX'), ('LLL'), ('111'), ('112');
SELECT count(*) AS pairs,
	   count(*) FILTER (WHERE (a.s::referral_code < b.s::referral_code) =
							  (translate(a.s, 'OIL', '011') COLLATE "C" < translate(b.s, 'OIL', '011') COLLATE "C")
						  AND (a.s::referral_code = b.s::referral_code) =
							  (translate(a.s, 'OIL', '011') = translate(b.s, 'OIL', '011'))
						  AND (a.s::referral_code > b.s::referral_code) =
							  (translate(a.s, 'OIL', '011') COLLATE "C" > translate(b.s, 'OIL', '011') COLLATE "C")
						  AND sign(referral_code_cmp(a.s::referral_code, b.s::referral_code)) =
							  sign(CASE WHEN translate(a.s, 'OIL', '011') COLLATE "C" < translate(b.s, 'OIL', '011') COLLATE "C" THEN -1
										WHEN translate(a.s, 'OIL', '011') = translate(b.s, 'OIL', '011') THEN 0
										ELSE 1 END)) AS agree
FROM cmp_codes a, cmp_codes b;
SELECT string_agg(s::referral_code::text, ' ' ORDER BY s::referral_code, s COLLATE "C") AS sorted
FROM cmp_codes;

-- Casts: text <-> referral_code (assignment), varchar by I/O conversion;
-- referral_code -> text is not implicit, so comparing with text needs a cast.
SELECT 'k7qx-m3pa'::text::referral_code AS from_text,
	   'k7qx-m3pa'::referral_code::text AS to_text,
	   'k7qx-m3pa'::varchar::referral_code AS from_varchar,
	   'k7qx-m3pa'::referral_code::varchar AS to_varchar,
	   CAST('olivia10' AS referral_code)::text = 'OLIVIA10' AS text_eq,
	   'ref=' || 'k7qx-m3pa'::referral_code AS concatenated,
	   format('%s', 'k7qx-m3pa'::referral_code) AS formatted;
SELECT castsource::regtype, casttarget::regtype, castcontext, castmethod
FROM pg_cast
WHERE castsource = 'referral.referral_code'::regtype OR casttarget = 'referral.referral_code'::regtype
ORDER BY castsource::regtype::text COLLATE "C", casttarget::regtype::text COLLATE "C";
CREATE TEMP TABLE cast_t (code referral_code, txt text);
INSERT INTO cast_t (code, txt) VALUES ('olivia-10'::text, 'olivia-10'::referral_code);
SELECT code, txt, code = txt::referral_code AS eq FROM cast_t;
SELECT 'ABC'::referral_code = 'ABC'::text;
SELECT 'ABC'::referral_code = 'ABC';
SELECT pg_typeof('ABC'::referral_code || 'x');

-- Type properties: 8 bytes, by value, double alignment, plain storage.
SELECT typname, typlen, typbyval, typalign, typstorage, typnamespace::regnamespace
FROM pg_type WHERE oid = 'referral.referral_code'::regtype;

-- Operator classes are valid.
SELECT opcname, amname, opcdefault, amvalidate(c.oid)
FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
WHERE opcname LIKE 'referral_code%'
ORDER BY amname;

-- Operators carry their commutators, negators, estimators, hashes and merges.
SELECT oprname, oprcom::regoper, oprnegate::regoper, oprrest, oprjoin, oprcanhash, oprcanmerge
FROM pg_operator
WHERE oprleft = 'referral.referral_code'::regtype
ORDER BY oprname;

-- Comparison functions: immutable, strict, parallel safe, leakproof;
-- everything in this file has a comment.
SELECT proname, provolatile, proisstrict, proparallel, proleakproof
FROM pg_proc
WHERE pronamespace = 'referral'::regnamespace
  AND (proname LIKE 'referral_code%' OR proname IN ('is_generated', '_generate_code', '_typo_neighbours'))
ORDER BY proname;
SELECT p.oid::regprocedure::text AS without_comment
FROM pg_proc p
WHERE pronamespace = 'referral'::regnamespace
  AND (proname LIKE 'referral_code%' OR proname IN ('is_generated', '_generate_code', '_typo_neighbours'))
  AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT o.oid::regoperator::text
FROM pg_operator o
WHERE oprleft = 'referral.referral_code'::regtype AND obj_description(o.oid, 'pg_operator') IS NULL;
SELECT obj_description('referral.referral_code'::regtype, 'pg_type') IS NOT NULL AS type_has_comment;

-- Privileges: type I/O, operators and support functions for PUBLIC; is_generated
-- and the internal generated-code functions not.
SELECT p.oid::regprocedure AS function, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
FROM pg_proc p
WHERE pronamespace = 'referral'::regnamespace
  AND (proname LIKE 'referral_code%' OR proname IN ('is_generated', '_generate_code', '_typo_neighbours'))
ORDER BY p.oid::regprocedure::text COLLATE "C";

-- Generated codes: 8 characters of the unambiguous alphabet, valid check,
-- unique, deterministic for a key, different under another key.
CREATE TEMP TABLE gen AS
SELECT n, _generate_code(n, sha256('test key')) AS code,
	   _generate_code(n, sha256('other key')) AS other
FROM generate_series(0, 1999) AS n;
SELECT count(*) AS codes,
	   count(DISTINCT code) AS distinct_codes,
	   count(*) FILTER (WHERE is_generated(code)) AS generated,
	   count(*) FILTER (WHERE code::text ~ '^[0-9A-HJKMNP-TV-Z]{8}$') AS alphabet,
	   count(*) FILTER (WHERE code = other) AS same_under_other_key,
	   count(*) FILTER (WHERE _typo_neighbours(code) = '{}') AS no_neighbours
FROM gen;
SELECT _generate_code(0, sha256('test key')) = (SELECT code FROM gen WHERE n = 0) AS deterministic;
SELECT is_generated(_generate_code(34359738367, sha256('test key'))) AS last_counter;

-- Every single substitution and adjacent swap of the first 200 codes is
-- caught by the check, and the hint's candidates contain the original.
CREATE TEMP TABLE typos AS
SELECT g.n, g.code, t.kind, t.typo::referral_code AS typo
FROM (SELECT n, code FROM gen WHERE n < 200) AS g,
	 LATERAL (SELECT 'substitution' AS kind, overlay(g.code::text placing sym from pos) AS typo
			  FROM generate_series(1, 8) AS pos,
				   regexp_split_to_table('0123456789ABCDEFGHJKMNPQRSTVWXYZU', '') AS sym
			  WHERE substr(g.code::text, pos, 1) <> sym
			  UNION ALL
			  SELECT 'swap', overlay(g.code::text placing substr(g.code::text, pos + 1, 1) || substr(g.code::text, pos, 1) from pos)
			  FROM generate_series(1, 7) AS pos
			  WHERE substr(g.code::text, pos, 1) <> substr(g.code::text, pos + 1, 1)) AS t;
SELECT kind, count(*) AS typos,
	   count(*) FILTER (WHERE NOT is_generated(typo)) AS detected,
	   count(*) FILTER (WHERE code = ANY (_typo_neighbours(typo))) AS suggested,
	   max(cardinality(_typo_neighbours(typo))) <= 15 AS at_most_15
FROM typos GROUP BY kind ORDER BY kind;
-- Every suggestion is a generated code.
SELECT count(*) AS suggestions, count(*) FILTER (WHERE is_generated(s)) AS generated
FROM (SELECT unnest(_typo_neighbours(typo)) AS s FROM typos WHERE n < 20) AS t;

-- Folding applies: a generated code typed with O for 0 or I/L for 1 is
-- equal and still generated; U is never in a generated code.
SELECT code, o_typed, o_typed = code AS equal, is_generated(o_typed) AS generated
FROM (SELECT code, replace(replace(code::text, '0', 'O'), '1', 'l')::referral_code AS o_typed
	  FROM gen WHERE code::text ~ '[01]' ORDER BY n LIMIT 3) AS t;
SELECT is_generated('K7QXM3PA') AS k7, is_generated('ABC') AS short_code,
	   is_generated('UUUUUUUU') AS u, _typo_neighbours('ABC') AS short_neighbours,
	   _typo_neighbours('UU000000') AS two_u,
	   _typo_neighbours('K7QXM3PA') AS k7_neighbours;

-- Errors of the generator: SQLSTATE 22023.
\set VERBOSITY sqlstate
SELECT _generate_code(0, '\x00'::bytea);
SELECT _generate_code(0, sha512('x'));
SELECT _generate_code(-1, sha256('x'));
SELECT _generate_code(34359738368, sha256('x'));
\set VERBOSITY default
SELECT _generate_code(-1, sha256('x'));
SELECT _generate_code(0, '\x00'::bytea);
SELECT _generate_code(NULL, sha256('x')) IS NULL AS strict;

-- Error messages quote at most 32 characters of the input, cut between
-- characters, "..." when cut.
\set VERBOSITY default
SELECT repeat('A', 40)::referral_code;
SELECT (repeat('AB', 20) || '#')::referral_code;
SELECT repeat('é', 40)::referral_code;
SELECT ('A' || repeat('é', 40))::referral_code;
-- A 1 MB input: the message stays short, whatever is wrong with it.
DO $$
DECLARE
	input text;
BEGIN
	FOREACH input IN ARRAY ARRAY[repeat('A', 1048576), repeat('A', 1048575) || '#',
	                             '#' || repeat('A', 1048575), repeat('é', 524288),
	                             repeat(' ', 1048576) || 'A']
	LOOP
		BEGIN
			PERFORM input::referral.referral_code;
			RAISE NOTICE 'accepted';
		EXCEPTION WHEN invalid_text_representation THEN
			RAISE NOTICE '% bytes: % (% characters)', octet_length(input), left(SQLERRM, 30),
				length(SQLERRM);
		END;
	END LOOP;
END
$$;

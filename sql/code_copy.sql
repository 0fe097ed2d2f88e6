-- referral_code binary send/recv: a binary COPY round trip keeps every
-- spelling; binary input with an unknown version byte or a garbled value
-- is rejected with 22P03.
SET search_path = public, referral;

-- The wire format: a version byte (1), then the 8-byte value.
SELECT referral_code_send('ABC') AS abc, referral_code_send('abc') = referral_code_send('ABC') AS same,
	   referral_code_send('OLIVIA10') = referral_code_send('0L1V1A10') AS spelling_kept,
	   length(referral_code_send('ZZZZZZZZZZZZ')) AS bytes;

CREATE TABLE copy_src (id integer, c referral_code);
INSERT INTO copy_src
SELECT n, _generate_code(n, sha256('copy test')) FROM generate_series(1, 1000) AS n;
INSERT INTO copy_src VALUES
	(1001, 'OLIVIA10'), (1002, '0L1V1A10'), (1003, 'abc'), (1004, '000'), (1005, 'OOO'),
	(1006, 'ZZZZZZZZZZZZ'), (1007, '000000000000'), (1008, 'lil-111'), (1009, NULL);

SELECT '/tmp/referral_code_copy_' || pg_backend_pid() AS f \gset
COPY copy_src TO :'f' WITH (FORMAT binary);
CREATE TABLE copy_dst (LIKE copy_src);
COPY copy_dst FROM :'f' WITH (FORMAT binary);

-- Same rows, same spellings (compared as text, so folding cannot hide a
-- changed spelling).
SELECT (SELECT count(*) FROM copy_src) AS source_rows,
	   (SELECT count(*) FROM copy_dst) AS copied_rows,
	   (SELECT count(*)
		FROM copy_src s FULL JOIN copy_dst d ON s.id = d.id
		WHERE s.id IS NULL OR d.id IS NULL
		   OR s.c::text IS DISTINCT FROM d.c::text) AS differences;
SELECT id, c FROM copy_dst WHERE id > 1000 ORDER BY id;

-- Copying the copy out again gives the same bytes.
SELECT :'f' || '_again' AS f2 \gset
COPY copy_dst TO :'f2' WITH (FORMAT binary);
SELECT pg_read_binary_file(:'f') = pg_read_binary_file(:'f2') AS same_bytes;

-- Hand-made binary COPY files for a one-column table: the signature, flags
-- and header extension, one tuple of one field (length, bytes), the trailer.
CREATE TABLE copy_one (c referral_code);
CREATE FUNCTION copy_file(field bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
	SELECT '\x5047434f50590aff0d0a00'::bytea || '\x0000000000000000'::bytea
		   || '\x0001'::bytea || int4send(length(field)) || field || '\xffff'::bytea
$$;
CREATE FUNCTION write_file(content bytea, path text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	lo oid := lo_from_bytea(0, content);
BEGIN
	PERFORM lo_export(lo, path);
	PERFORM lo_unlink(lo);
END
$$;
SELECT :'f' || '_crafted' AS f3 \gset

-- version 1, a valid value: accepted (the crafting is right)
SELECT write_file(copy_file(referral_code_send('K7QXM3PA')), :'f3');
COPY copy_one FROM :'f3' WITH (FORMAT binary);
SELECT c FROM copy_one;

-- unknown version bytes
SELECT write_file(copy_file('\x02'::bytea || substr(referral_code_send('K7QXM3PA'), 2)), :'f3');
COPY copy_one FROM :'f3' WITH (FORMAT binary);
\set VERBOSITY sqlstate
COPY copy_one FROM :'f3' WITH (FORMAT binary);
\set VERBOSITY default
SELECT write_file(copy_file('\x00'::bytea || substr(referral_code_send('K7QXM3PA'), 2)), :'f3');
COPY copy_one FROM :'f3' WITH (FORMAT binary);
-- the text form instead of the version byte and value
SELECT write_file(copy_file('K7QXM3PA'::bytea), :'f3');
COPY copy_one FROM :'f3' WITH (FORMAT binary);
-- garbled values: negative, beyond 37^12, empty, a character after the end
SELECT write_file(copy_file('\x01'::bytea || int8send(-1)), :'f3');
COPY copy_one FROM :'f3' WITH (FORMAT binary);
\set VERBOSITY sqlstate
COPY copy_one FROM :'f3' WITH (FORMAT binary);
\set VERBOSITY default
SELECT write_file(copy_file('\x01'::bytea || int8send(6582952005840035281)), :'f3');
COPY copy_one FROM :'f3' WITH (FORMAT binary);
SELECT write_file(copy_file('\x01'::bytea || int8send(0)), :'f3');
COPY copy_one FROM :'f3' WITH (FORMAT binary);
SELECT write_file(copy_file('\x01'::bytea || int8send(('x' || encode(substr(referral_code_send('ABC'), 2), 'hex'))::bit(64)::int8 + 1)), :'f3');
COPY copy_one FROM :'f3' WITH (FORMAT binary);
-- a missing value byte
SELECT write_file(copy_file(substr(referral_code_send('ABC'), 1, 8)), :'f3');
COPY copy_one FROM :'f3' WITH (FORMAT binary);
\set VERBOSITY sqlstate
COPY copy_one FROM :'f3' WITH (FORMAT binary);
\set VERBOSITY default
SELECT c FROM copy_one;

DROP TABLE copy_src, copy_dst, copy_one;
DROP FUNCTION copy_file(bytea), write_file(bytea, text);

-- Fingerprints: e-mail normalisation, keyed hashes (HMAC-SHA256), random bytes.

-- normalize_email: case, +tag, Gmail dots, googlemail.com, whitespace
SELECT e AS email, referral.normalize_email(e) AS normalised
  FROM (VALUES ('john@example.com'),
               ('  John.Doe@Example.COM  '),
               ('john+news@example.com'),
               ('john+a+b@example.com'),
               ('john.doe@example.com'),
               ('John.Doe+x@GMail.com'),
               ('j.o.h.n.doe@gmail.com'),
               ('john.doe+promo@googlemail.com'),
               ('john.doe@gmail.com.au'),
               ('a@b@Example.com'),
               ('x.y@z@gmail.com'),
               (U&' J\00c9r\00f4me@Example.org  ')) AS t(e);
SELECT referral.normalize_email(NULL) IS NULL AS strict;

-- not e-mail addresses, one per line
SELECT referral.normalize_email('');
SELECT referral.normalize_email('john');
SELECT referral.normalize_email('@');
SELECT referral.normalize_email('@example.com');
SELECT referral.normalize_email('john@');
SELECT referral.normalize_email('a@b@');
SELECT referral.normalize_email('+tag@example.com');
SELECT referral.normalize_email('...@gmail.com');
SELECT referral.normalize_email('john doe@example.com');

-- the error never quotes the address: e-mails are kept only as keyed hashes,
-- and the server log must not hold them either (message, detail and hint)
DO $$
DECLARE
	email text;
	message text;
	detail text;
	hint text;
BEGIN
	FOREACH email IN ARRAY ARRAY['john.secret', '+secret@example.com', 'john.secret@',
	                             'john secret@example.com', repeat('secret', 200000)]
	LOOP
		BEGIN
			PERFORM referral.normalize_email(email);
			RAISE NOTICE 'accepted';
		EXCEPTION WHEN invalid_parameter_value THEN
			GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
			                        hint = PG_EXCEPTION_HINT;
			RAISE NOTICE '%: quotes the address: %, quotes "secret": %',
				message, strpos(concat(message, detail, hint), email) > 0,
				strpos(concat(message, detail, hint), 'secret') > 0;
		END;
	END LOOP;
END
$$;

-- the SQLSTATE of an error raised by a statement (NULL if none)
CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;
SELECT pg_temp.sqlstate_of($$SELECT referral.normalize_email('not-an-email')$$) AS bad,
       pg_temp.sqlstate_of($$SELECT referral.normalize_email('a@b.c')$$) AS good;

-- the message of an error raised by a statement (NULL if none)
CREATE FUNCTION pg_temp.message_of(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLERRM;
END
$$;

-- _fingerprint: a fixed 32-byte key, so that the results can be compared
CREATE TEMP TABLE k AS
SELECT pg_catalog.sha256('referral regression key'::bytea) AS key;
SELECT length(key) FROM k;

-- equivalent e-mails hash alike, different ones differently, always 32 bytes
SELECT referral._fingerprint(key, 'email', 'John.Doe+x@GMail.com')
     = referral._fingerprint(key, 'email', 'johndoe@gmail.com') AS gmail_same,
       referral._fingerprint(key, 'email', 'john.doe@googlemail.com')
     = referral._fingerprint(key, 'email', 'johndoe@gmail.com') AS googlemail_same,
       referral._fingerprint(key, 'email', ' JOHN+shop@Example.com ')
     = referral._fingerprint(key, 'email', 'john@example.com') AS tag_case_same,
       referral._fingerprint(key, 'email', 'john.doe@example.com')
     = referral._fingerprint(key, 'email', 'johndoe@example.com') AS other_dots_same,
       referral._fingerprint(key, 'email', 'jane@gmail.com')
     = referral._fingerprint(key, 'email', 'johndoe@gmail.com') AS different_same,
       length(referral._fingerprint(key, 'email', 'johndoe@gmail.com')) AS len
  FROM k;

-- devices: trimmed and lower-cased; IPs as given
SELECT referral._fingerprint(key, 'device', '  Device-ABC ')
     = referral._fingerprint(key, 'device', 'device-abc') AS device_same,
       referral._fingerprint(key, 'device', 'device-abd')
     = referral._fingerprint(key, 'device', 'device-abc') AS device_other_same,
       referral._fingerprint(key, 'ip', host('192.0.2.1'::inet))
     = referral._fingerprint(key, 'ip', '192.0.2.1') AS ip_same,
       referral._fingerprint(key, 'ip', '192.0.2.2')
     = referral._fingerprint(key, 'ip', '192.0.2.1') AS ip_other_same,
       length(referral._fingerprint(key, 'ip', '2001:db8::1')) AS len
  FROM k;

-- the kind is part of the message: one value, two kinds, two hashes
SELECT referral._fingerprint(key, 'device', 'a@b.c')
     = referral._fingerprint(key, 'email', 'a@b.c') AS kinds_same
  FROM k;

-- another key, another hash
SELECT referral._fingerprint(key, 'email', 'a@b.c')
     = referral._fingerprint(pg_catalog.sha256(key), 'email', 'a@b.c') AS keys_same
  FROM k;

-- HMAC in plain SQL, per RFC 2104:
--   HMAC(K, m) = sha256((K' xor opad) || sha256((K' xor ipad) || m))
-- with K' the key padded with zeros to the 64-byte block.
CREATE FUNCTION pg_temp.xor_pad(key bytea, pad int) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT decode(string_agg(lpad(to_hex(get_byte(k, i) # pad), 2, '0'), '' ORDER BY i), 'hex')
	  FROM (SELECT key || decode(repeat('00', 64 - length(key)), 'hex') AS k) AS padded,
	       generate_series(0, 63) AS i
$$;
CREATE FUNCTION pg_temp.hmac_sha256(key bytea, msg bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT pg_catalog.sha256(pg_temp.xor_pad(key, 92)
	                         || pg_catalog.sha256(pg_temp.xor_pad(key, 54) || msg))
$$;

-- the SQL reference itself against RFC 4231 test case 2 (key "Jefe")
SELECT pg_temp.hmac_sha256('Jefe'::bytea, 'what do ya want for nothing?'::bytea)
     = '\x5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'::bytea
       AS rfc4231_case2;

-- _fingerprint = HMAC-SHA256(key, kind || ':' || normalised value)
SELECT kind, value,
       referral._fingerprint(key, kind, value)
     = pg_temp.hmac_sha256(key, convert_to(kind || ':' || expected, 'UTF8')) AS matches
  FROM k,
       (VALUES ('email', 'John.Doe+x@GMail.com', 'johndoe@gmail.com'),
               ('email', 'Someone@Example.org', 'someone@example.org'),
               ('device', ' Phone-42 ', 'phone-42'),
               ('ip', '192.0.2.1', '192.0.2.1'),
               ('ip', '2001:db8::1', '2001:db8::1'),
               ('email', U&'J\00e9r\00f4me@example.org', U&'j\00e9r\00f4me@example.org')) AS t(kind, value, expected)
 ORDER BY 1, 2;

-- a wrong expectation must not match (the check can fail)
SELECT referral._fingerprint(key, 'email', 'John.Doe@gmail.com')
     = pg_temp.hmac_sha256(key, convert_to('email:john.doe@gmail.com', 'UTF8')) AS matches_unnormalised
  FROM k;

-- NULL in, NULL out
SELECT referral._fingerprint(NULL, 'email', 'a@b.c') IS NULL AS null_key,
       referral._fingerprint(key, NULL, 'a@b.c') IS NULL AS null_kind,
       referral._fingerprint(key, 'email', NULL) IS NULL AS null_value
  FROM k;

-- errors, one per line
SELECT referral._fingerprint('\x00'::bytea, 'email', 'a@b.c');
SELECT referral._fingerprint(decode(repeat('ab', 33), 'hex'), 'email', 'a@b.c');
SELECT referral._fingerprint(''::bytea, 'email', 'a@b.c');
SELECT referral._fingerprint(key, 'phone', '555-1234') FROM k;
SELECT referral._fingerprint(key, 'EMAIL', 'a@b.c') FROM k;
SELECT referral._fingerprint(key, 'email', 'John.Doe') FROM k;
SELECT referral._fingerprint(key, 'email', '') FROM k;
SELECT referral._fingerprint(key, 'device', '   ') FROM k;
SELECT referral._fingerprint(key, 'ip', '') FROM k;
-- an unknown kind is quoted up to 32 characters
SELECT referral._fingerprint(key, repeat('k', 40), 'x') FROM k;
SELECT length(pg_temp.message_of($$SELECT referral._fingerprint(key, repeat('k', 1048576), 'x') FROM k$$))
       AS unknown_kind_message_length;
-- an e-mail is not quoted, also when it is hashed
SELECT pg_temp.message_of($$SELECT referral._fingerprint(key, 'email', 'secret.doe') FROM k$$);

SELECT stmt, pg_temp.sqlstate_of(stmt) AS sqlstate
  FROM (VALUES ($$SELECT referral._fingerprint('\x00'::bytea, 'email', 'a@b.c')$$),
               ($$SELECT referral._fingerprint(key, 'phone', '555-1234') FROM k$$),
               ($$SELECT referral._fingerprint(key, 'email', 'John.Doe') FROM k$$),
               ($$SELECT referral._fingerprint(key, 'device', '   ') FROM k$$),
               ($$SELECT referral._fingerprint(key, 'ip', '') FROM k$$),
               ($$SELECT referral._random_bytes(0)$$),
               ($$SELECT referral._random_bytes(1025)$$)) AS t(stmt);

-- _random_bytes: the requested length, different every time
SELECT length(referral._random_bytes(1)) AS one,
       length(referral._random_bytes(32)) AS thirty_two,
       length(referral._random_bytes(1024)) AS max;
SELECT count(DISTINCT referral._random_bytes(32)) AS distinct_of_100
  FROM generate_series(1, 100);
SELECT referral._random_bytes(NULL) IS NULL AS strict;
SELECT referral._random_bytes(0);
SELECT referral._random_bytes(-1);
SELECT referral._random_bytes(1025);

-- labels and privileges
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_proc p
 WHERE p.pronamespace = 'referral'::regnamespace
   AND p.proname IN ('normalize_email', '_fingerprint', '_random_bytes')
 ORDER BY p.proname;

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

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

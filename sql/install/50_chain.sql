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
	UNIQUE (tenant, id),
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
		PERFORM 1 FROM referral.member x WHERE x.tenant = _lock_trees.tenant AND x.id = ANY (roots) ORDER BY x.id FOR UPDATE;
		locked := locked || roots;
		SELECT * INTO STRICT a_member FROM referral.member x WHERE x.tenant = _lock_trees.tenant AND x.id = a_member.id;
		SELECT * INTO STRICT b_member FROM referral.member x WHERE x.tenant = _lock_trees.tenant AND x.id = b_member.id;
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
	 WHERE x.tenant = child.tenant AND x.path >= child.path
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

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

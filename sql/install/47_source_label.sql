-- The source labels given to orders tables.  Orders are attributed, reversed and
-- audited by (tenant, label, order id), so a label names one table for ever: a
-- table tracked under a name another table had before (renamed, or dropped) gets a
-- label of its own.  Rows are never deleted.

CREATE TABLE referral.source_label (
	tenant		text NOT NULL,
	label		text NOT NULL,
	relid		regclass,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, label)
);
CREATE INDEX source_label_label ON referral.source_label (label);
CREATE INDEX source_label_relid ON referral.source_label (relid);
COMMENT ON TABLE referral.source_label IS 'every source label ever given to an orders table (see track_orders); never deleted, so that no two tables share one';
COMMENT ON COLUMN referral.source_label.tenant IS 'the tracked table''s fixed tenant, '''' for a table with a tenant column';
COMMENT ON COLUMN referral.source_label.relid IS 'the table it was given to; NULL for a label found in the ledger whose table is unknown';
SELECT pg_catalog.pg_extension_config_dump('referral.source_label', '');

-- The label for a table about to be tracked: the one it had when it was tracked
-- before (its old orders keep reversing), else its quoted name if no table ever had
-- it, else that name with the first free suffix #2, #3, ...  Labels are handed out
-- one transaction at a time.
CREATE FUNCTION referral._source_label(orders regclass, quoted text, tenant text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	given text;
	n int := 1;
BEGIN
	LOCK TABLE referral.source_label IN SHARE ROW EXCLUSIVE MODE;
	SELECT s.label INTO given FROM referral.source_label s
	 WHERE s.relid = orders::oid
	 ORDER BY s.created_at DESC, s.label LIMIT 1;
	IF NOT FOUND THEN
		given := quoted;
		WHILE EXISTS (SELECT FROM referral.source_label s WHERE s.label = given) LOOP
			n := n + 1;
			given := quoted || '#' || n;
		END LOOP;
	END IF;
	INSERT INTO referral.source_label AS s (tenant, label, relid)
	VALUES (_source_label.tenant, given, _source_label.orders)
	ON CONFLICT DO NOTHING;
	RETURN given;
END
$$;
COMMENT ON FUNCTION referral._source_label(regclass, text, text)
	IS 'internal: the source label of a table being tracked, registered; one no other table ever had';
REVOKE ALL ON FUNCTION referral._source_label(regclass, text, text) FROM PUBLIC;

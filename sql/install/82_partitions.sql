-- Partitions of a tracked table.  A statement on a partitioned table fires only its
-- own statement triggers, and one aimed straight at a partition only the
-- partition's: so every partition gets the order triggers too, with the tracked
-- table's arguments (and its source label), and each order is attributed once
-- whichever table the statement names.  Partitions existing at track_orders time get
-- them there; those created or attached later, from an event trigger.  A partition
-- of a tracked table may be detached or dropped only while it is empty, or after
-- untrack_orders on it, which removes its triggers and records it here so that they
-- are not put back.

CREATE TABLE referral.untracked_partition (
	tenant		text NOT NULL,
	relid		regclass NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, relid)
);
CREATE INDEX untracked_partition_relid ON referral.untracked_partition (relid);
COMMENT ON TABLE referral.untracked_partition IS 'partitions of tracked tables that untrack_orders took out: no order triggers, and no check before DETACH or DROP; tenant is the tracked table''s';
SELECT pg_catalog.pg_extension_config_dump('referral.untracked_partition', '');

-- The attributed orders of those partitions when untrack_orders took them out:
-- audit() no longer checks them, also once the partition is detached or dropped and
-- its orders are gone from the tracked table.
CREATE TABLE referral.untracked_order (
	tenant			text NOT NULL,
	order_source	text NOT NULL,
	order_ref		text NOT NULL,
	PRIMARY KEY (tenant, order_source, order_ref)
);
COMMENT ON TABLE referral.untracked_order IS 'attributed orders of partitions that untrack_orders took out, which audit() no longer checks';
SELECT pg_catalog.pg_extension_config_dump('referral.untracked_order', '');

-- Puts the order triggers on every partition under orders (all levels) whose parent
-- has them, unless it has them already or was untracked.  Foreign partitions are
-- left out: their triggers cannot have transition tables.
CREATE FUNCTION referral._track_partitions(orders regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	part record;
	args text;
BEGIN
	FOR part IN
		SELECT t.relid, t.parentrelid, format('%I.%I', n.nspname, c.relname) AS quoted
		  FROM pg_catalog.pg_partition_tree(orders) t
		  JOIN pg_catalog.pg_class c ON c.oid = t.relid
		  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		 WHERE t.parentrelid IS NOT NULL AND c.relispartition AND c.relkind IN ('r', 'p')
		 ORDER BY t.level, t.relid
	LOOP
		CONTINUE WHEN EXISTS (SELECT FROM referral.untracked_partition u WHERE u.relid = part.relid)
		           OR EXISTS (SELECT FROM pg_catalog.pg_trigger g
		                       WHERE g.tgrelid = part.relid
		                         AND g.tgfoid IN ('referral._order_trigger()'::pg_catalog.regprocedure,
		                                          'referral._orders_truncated()'::pg_catalog.regprocedure));
		SELECT pg_catalog.string_agg(pg_catalog.quote_literal(a.arg), ', ' ORDER BY a.i) INTO args
		  FROM pg_catalog.pg_trigger g
		 CROSS JOIN LATERAL pg_catalog.unnest(referral._trigger_args(g.tgargs)) WITH ORDINALITY AS a(arg, i)
		 WHERE g.tgrelid = part.parentrelid AND g.tgname = 'referral_orders_ins'
		   AND g.tgfoid = 'referral._order_trigger()'::pg_catalog.regprocedure;
		CONTINUE WHEN args IS NULL;
		PERFORM referral._add_order_triggers(part.quoted, args);
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._track_partitions(regclass)
	IS 'internal: put the order triggers on the partitions of a tracked table that lack them';
REVOKE ALL ON FUNCTION referral._track_partitions(regclass) FROM PUBLIC;

-- Drops the order triggers of tables detached from the tracked table whose tree
-- holds orders (a partition detached while empty): they carry its label, and the
-- orders of a table that is no longer tracked must not be attributed under it.
CREATE FUNCTION referral._untrack_detached(orders regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tracked record;
	trg record;
BEGIN
	SELECT t.relid, t.source INTO tracked
	  FROM referral.tracked_table t
	 WHERE t.relid = pg_catalog.pg_partition_root(orders);
	IF NOT FOUND OR tracked.source IS NULL THEN
		RETURN;
	END IF;
	FOR trg IN
		SELECT g.tgname, format('%I.%I', n.nspname, c.relname) AS quoted
		  FROM pg_catalog.pg_trigger g
		  JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid
		  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		 WHERE g.tgfoid IN ('referral._order_trigger()'::pg_catalog.regprocedure,
		                    'referral._orders_truncated()'::pg_catalog.regprocedure)
		   AND g.tgrelid NOT IN (SELECT p.relid FROM pg_catalog.pg_partition_tree(tracked.relid) p)
		   AND (referral._trigger_args(g.tgargs))[2] = tracked.source
		 ORDER BY g.tgrelid, g.tgname
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', trg.tgname, trg.quoted);
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._untrack_detached(regclass)
	IS 'internal: drop the order triggers of tables detached from a tracked table';
REVOKE ALL ON FUNCTION referral._untrack_detached(regclass) FROM PUBLIC;

-- Whether this is a Citus worker (a node of a cluster other than the coordinator).
CREATE FUNCTION referral._citus_worker()
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	node_group int;
BEGIN
	IF pg_catalog.to_regclass('pg_catalog.pg_dist_local_group') IS NULL THEN
		RETURN false;
	END IF;
	EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO node_group;
	RETURN COALESCE(node_group, 0) > 0;
END
$$;
COMMENT ON FUNCTION referral._citus_worker() IS 'internal: whether this node is a Citus worker';

-- The ddl_command_end event trigger (CREATE TABLE, ALTER TABLE): a partition created
-- or attached under a tracked table gets the order triggers, and one detached loses
-- them.  SECURITY DEFINER: the
-- triggers call the extension's functions, which the user may not execute.  A single
-- look-up when no tracked table is partitioned.
CREATE FUNCTION referral._partition_added()
RETURNS event_trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cmd record;
BEGIN
	-- On a Citus worker, tables are created by the coordinator, which puts the
	-- triggers on the partitions of tracked tables there.
	IF referral._citus_worker() THEN
		RETURN;
	END IF;
	IF NOT EXISTS (SELECT FROM referral.tracked_table t
	                 JOIN pg_catalog.pg_class c ON c.oid = t.relid
	                WHERE c.relkind = 'p') THEN
		RETURN;
	END IF;
	FOR cmd IN
		SELECT DISTINCT d.objid, d.command_tag FROM pg_catalog.pg_event_trigger_ddl_commands() d
		 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = 0
		   AND d.object_type IN ('table', 'partitioned table')
		 ORDER BY d.objid
	LOOP
		PERFORM referral._track_partitions(cmd.objid);
		IF cmd.command_tag = 'ALTER TABLE' THEN
			PERFORM referral._untrack_detached(cmd.objid);
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._partition_added()
	IS 'internal: ddl_command_end event trigger: order triggers on partitions created or attached under a tracked table';
REVOKE ALL ON FUNCTION referral._partition_added() FROM PUBLIC;

CREATE EVENT TRIGGER referral_partition_added ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
	EXECUTE FUNCTION referral._partition_added();

-- The ddl_command_start event trigger (DROP TABLE, ALTER TABLE): refuses to detach
-- or drop a partition of a tracked table that holds orders (src/partition_guard.c).
CREATE FUNCTION referral._partition_guard()
RETURNS event_trigger
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'referral_partition_guard';
COMMENT ON FUNCTION referral._partition_guard()
	IS 'internal: ddl_command_start event trigger: refuse DETACH PARTITION or DROP TABLE of a partition of a tracked table that holds orders';
REVOKE ALL ON FUNCTION referral._partition_guard() FROM PUBLIC;

CREATE EVENT TRIGGER referral_partition_guard ON ddl_command_start
	WHEN TAG IN ('DROP TABLE', 'ALTER TABLE')
	EXECUTE FUNCTION referral._partition_guard();

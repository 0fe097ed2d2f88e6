-- referral 0.2 -> 0.3.  Each section names the change it carries; together they
-- must give exactly the catalog of a fresh 0.3 install (test/upgrade.sh checks).
\echo Use "ALTER EXTENSION referral UPDATE TO '0.3'" to load this file. \quit

-- Source labels, TRUNCATE and partitions of tracked tables:
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
	VALUES (_source_label.tenant, given, orders::oid)
	ON CONFLICT DO NOTHING;
	RETURN given;
END
$$;
COMMENT ON FUNCTION referral._source_label(regclass, text, text)
	IS 'internal: the source label of a table being tracked, registered; one no other table ever had';
REVOKE ALL ON FUNCTION referral._source_label(regclass, text, text) FROM PUBLIC;
COMMENT ON COLUMN referral.tracked_table.source IS 'the label the triggers give this table''s orders (reward.order_source): its quoted qualified name when tracked, with a suffix #2, #3... when another table had that label (see referral.source_label)';
REVOKE ALL ON referral.source_label FROM PUBLIC;

-- The labels already in use: those of tracked tables, then every label of the ledger.
INSERT INTO referral.source_label (tenant, label, relid)
SELECT t.tenant, t.source, t.relid FROM referral.tracked_table t
 WHERE t.source IS NOT NULL
ON CONFLICT DO NOTHING;
INSERT INTO referral.source_label (tenant, label)
SELECT o.tenant, o.order_source FROM referral.attributed_order o
 UNION SELECT w.tenant, w.order_source FROM referral.reward w WHERE w.order_source IS NOT NULL
ON CONFLICT DO NOTHING;

-- TRUNCATE of a tracked table, or of one of its partitions, removes orders as a
-- DELETE does, but without a DELETE's transition table: a BEFORE TRUNCATE trigger
-- (src/order_truncate.c) reads the ids of the orders about to go and reverses their
-- rewards.  It takes the order triggers' arguments.
CREATE FUNCTION referral._orders_truncated()
RETURNS trigger
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'referral_orders_truncated';
COMMENT ON FUNCTION referral._orders_truncated()
	IS 'internal: BEFORE TRUNCATE ... FOR EACH STATEMENT trigger of a tracked orders table: reverses the rewards of the orders it removes; arguments as referral._order_trigger';
REVOKE ALL ON FUNCTION referral._orders_truncated() FROM PUBLIC;

-- The arguments of a trigger (pg_trigger.tgargs: each one NUL-terminated).
CREATE FUNCTION referral._trigger_args(args bytea)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	result text[] := '{}';
	nul int;
BEGIN
	LOOP
		nul := pg_catalog."position"(args, '\x00'::bytea);
		EXIT WHEN nul = 0;
		result := result || pg_catalog.convert_from(pg_catalog."substring"(args, 1, nul - 1),
		                                            pg_catalog.getdatabaseencoding());
		args := pg_catalog."substring"(args, nul + 1);
	END LOOP;
	RETURN result;
END
$$;
COMMENT ON FUNCTION referral._trigger_args(bytea) IS 'internal: the arguments of a trigger, from pg_trigger.tgargs';
REVOKE ALL ON FUNCTION referral._trigger_args(bytea) FROM PUBLIC;

-- Puts the order triggers on one table (quoted: its name for SQL), with the
-- arguments given (a list of literals, as track_orders builds it).
CREATE FUNCTION referral._add_order_triggers(quoted text, args text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE format('CREATE TRIGGER referral_orders_ins AFTER INSERT ON %s'
	               ' REFERENCING NEW TABLE AS referral_new'
	               ' FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger(%s)',
	               quoted, args);
	EXECUTE format('CREATE TRIGGER referral_orders_upd AFTER UPDATE ON %s'
	               ' REFERENCING OLD TABLE AS referral_old NEW TABLE AS referral_new'
	               ' FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger(%s)',
	               quoted, args);
	EXECUTE format('CREATE TRIGGER referral_orders_del AFTER DELETE ON %s'
	               ' REFERENCING OLD TABLE AS referral_old'
	               ' FOR EACH STATEMENT EXECUTE FUNCTION referral._order_trigger(%s)',
	               quoted, args);
	EXECUTE format('CREATE TRIGGER referral_orders_trunc BEFORE TRUNCATE ON %s'
	               ' FOR EACH STATEMENT EXECUTE FUNCTION referral._orders_truncated(%s)',
	               quoted, args);
END
$$;
COMMENT ON FUNCTION referral._add_order_triggers(text, text)
	IS 'internal: create the order triggers (insert, update, delete, truncate) on one table';
REVOKE ALL ON FUNCTION referral._add_order_triggers(text, text) FROM PUBLIC;

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
REVOKE ALL ON referral.untracked_partition FROM PUBLIC;

CREATE OR REPLACE FUNCTION referral.track_orders(
	orders regclass,
	customer_column name,
	amount_column name,
	id_column name DEFAULT 'id',
	status_column name DEFAULT NULL,
	paid_statuses text[] DEFAULT '{paid}',
	reversed_statuses text[] DEFAULT '{refunded,cancelled}',
	ordered_at_column name DEFAULT NULL,
	tenant_column name DEFAULT NULL,
	tenant text DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tbl record := referral._orders_table(orders);
	ints text := 'smallint, integer, bigint';
	both_ways text;
	taken name;
	args text;
	label text;
	tracked_parent regclass;
BEGIN
	-- Every check before anything is created.
	PERFORM referral._check_order_column(orders, tbl.display, 'customer', customer_column,
		'{int2,int4,int8,uuid,text,varchar}', ints || ', uuid, text or varchar');
	PERFORM referral._check_order_column(orders, tbl.display, 'amount', amount_column,
		'{numeric,int2,int4,int8}', 'numeric, ' || ints);
	PERFORM referral._check_order_column(orders, tbl.display, 'id', id_column,
		'{int2,int4,int8,uuid,text,varchar}', ints || ', uuid, text or varchar');
	IF status_column IS NOT NULL THEN
		PERFORM referral._check_order_column(orders, tbl.display, 'status', status_column,
			'{text,varchar}', 'text, varchar or an enum', allow_enum => true);
	END IF;
	IF ordered_at_column IS NOT NULL THEN
		PERFORM referral._check_order_column(orders, tbl.display, 'ordered_at', ordered_at_column,
			'{timestamptz,timestamp,date}', 'timestamptz, timestamp or date');
	END IF;
	IF tenant_column IS NOT NULL THEN
		PERFORM referral._check_order_column(orders, tbl.display, 'tenant', tenant_column,
			'{text,varchar,int2,int4,int8}', 'text, varchar, ' || ints);
	END IF;

	PERFORM referral._check_statuses('paid_statuses', paid_statuses, false);
	PERFORM referral._check_statuses('reversed_statuses', reversed_statuses, true);
	SELECT pg_catalog.string_agg(DISTINCT s, ', ' ORDER BY s) INTO both_ways
	  FROM pg_catalog.unnest(paid_statuses) s
	 WHERE s = ANY (reversed_statuses);
	IF both_ways IS NOT NULL THEN
		RAISE EXCEPTION 'paid_statuses and reversed_statuses overlap: %', both_ways
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A status means paid or reversed, not both.';
	END IF;
	IF tenant_column IS NULL AND NULLIF(pg_catalog.btrim(tenant), '') IS NULL THEN
		RAISE EXCEPTION 'tenant must not be empty' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Give a tenant, or a tenant_column that holds each order''s tenant.';
	END IF;

	-- A partition's orders are the tracked table's (untracked ones included).
	SELECT a.relid INTO tracked_parent
	  FROM pg_catalog.pg_partition_ancestors(orders) a(relid)
	 WHERE a.relid <> orders
	   AND (EXISTS (SELECT FROM referral.tracked_table t WHERE t.relid = a.relid)
	        OR EXISTS (SELECT FROM pg_catalog.pg_trigger g
	                    WHERE g.tgrelid = a.relid
	                      AND g.tgfoid = 'referral._order_trigger()'::pg_catalog.regprocedure))
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'table "%" is a partition of tracked table "%"', tbl.display,
			(SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
			   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tracked_parent)
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Its orders are attributed with that table''s; untrack that table first to track this one on its own.';
	END IF;
	IF EXISTS (SELECT FROM referral.tracked_table t WHERE t.relid = orders)
	   OR EXISTS (SELECT FROM pg_catalog.pg_trigger g
	               WHERE g.tgrelid = orders
	                 AND g.tgfoid IN ('referral._order_trigger()'::pg_catalog.regprocedure,
	                                  'referral._orders_truncated()'::pg_catalog.regprocedure)) THEN
		RAISE EXCEPTION 'table "%" is already tracked', tbl.display
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Call referral.untrack_orders() first to track it with other settings.';
	END IF;
	SELECT g.tgname INTO taken FROM pg_catalog.pg_trigger g
	 WHERE g.tgrelid = orders
	   AND g.tgname IN ('referral_orders_ins', 'referral_orders_upd', 'referral_orders_del',
	                    'referral_orders_trunc')
	 ORDER BY g.tgname LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'trigger "%" for table "%" already exists', taken, tbl.display
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Rename or drop that trigger: track_orders needs its name.';
	END IF;

	-- A label no other table ever had: orders are known by (tenant, label, id).
	label := referral._source_label(orders, tbl.quoted,
		CASE WHEN tenant_column IS NULL THEN tenant ELSE '' END);

	-- The trigger's whole configuration, in the order src/order_trigger.c reads it.
	args := format('%L, %L, %L, %L, %L, %L, %L, %L, %L, %L',
		CASE WHEN tenant_column IS NULL THEN tenant ELSE '' END,
		label,
		customer_column,
		amount_column,
		id_column,
		COALESCE(status_column, ''),
		paid_statuses::text,
		reversed_statuses::text,
		COALESCE(ordered_at_column, ''),
		COALESCE(tenant_column, ''));
	PERFORM referral._add_order_triggers(tbl.quoted, args);
	DELETE FROM referral.untracked_partition u
	 WHERE u.relid IN (SELECT t.relid FROM pg_catalog.pg_partition_tree(orders) t);
	PERFORM referral._track_partitions(orders);

	INSERT INTO referral.tracked_table AS t
		(tenant, relid, customer_column, amount_column, id_column, status_column,
		 paid_statuses, reversed_statuses, ordered_at_column, tenant_column, source)
	VALUES
		(CASE WHEN track_orders.tenant_column IS NULL THEN track_orders.tenant ELSE '' END,
		 track_orders.orders, track_orders.customer_column, track_orders.amount_column,
		 track_orders.id_column, track_orders.status_column, track_orders.paid_statuses,
		 track_orders.reversed_statuses, track_orders.ordered_at_column,
		 track_orders.tenant_column, label);
END
$$;
COMMENT ON FUNCTION referral.track_orders(regclass, name, name, name, name, text[], text[], name, name, text)
	IS 'attach a shop''s orders table: statement-level triggers attribute its paid orders to referrals and reverse rewards of refunded, cancelled or deleted orders, in the same transaction';

CREATE OR REPLACE FUNCTION referral.untrack_orders(orders regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tbl record;
	trg record;
	found_one boolean := false;
	tracked_parent regclass;
BEGIN
	IF orders IS NOT NULL
	   AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = orders) THEN
		-- A table dropped since: only its registry row is left (untrack by OID).
		DELETE FROM referral.tracked_table t WHERE t.relid = orders;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'table with OID % is not tracked', orders::oid
				USING ERRCODE = 'undefined_object',
					  HINT = 'Tracked tables are listed in referral.tracked_table.';
		END IF;
		RETURN;
	END IF;
	tbl := referral._orders_table(orders);
	-- The table's triggers, and those of its partitions at every level.
	FOR trg IN
		SELECT g.tgname, g.tgrelid, format('%I.%I', n.nspname, c.relname) AS quoted
		  FROM (SELECT orders AS relid, 0 AS level
		        UNION SELECT p.relid, p.level FROM pg_catalog.pg_partition_tree(orders) p) t
		  JOIN pg_catalog.pg_class c ON c.oid = t.relid
		  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		  JOIN pg_catalog.pg_trigger g ON g.tgrelid = t.relid
		 WHERE (t.relid = orders OR c.relispartition)
		   AND g.tgfoid IN ('referral._order_trigger()'::pg_catalog.regprocedure,
		                    'referral._orders_truncated()'::pg_catalog.regprocedure)
		 ORDER BY t.level, t.relid, g.tgname
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', trg.tgname, trg.quoted);
		found_one := found_one OR trg.tgrelid = orders;
	END LOOP;

	-- A partition of a tracked table: recorded, so that its triggers stay off.
	SELECT a.relid INTO tracked_parent
	  FROM pg_catalog.pg_partition_ancestors(orders) a(relid)
	  JOIN referral.tracked_table t ON t.relid = a.relid
	 WHERE a.relid <> orders
	 LIMIT 1;
	IF FOUND THEN
		INSERT INTO referral.untracked_partition AS u (tenant, relid)
		SELECT t.tenant, orders FROM referral.tracked_table t WHERE t.relid = tracked_parent
		ON CONFLICT DO NOTHING;
		IF found_one OR FOUND THEN
			RETURN;
		END IF;
	ELSE
		DELETE FROM referral.untracked_partition u
		 WHERE u.relid IN (SELECT t.relid FROM pg_catalog.pg_partition_tree(orders) t);
		DELETE FROM referral.tracked_table t WHERE t.relid = orders;
		IF found_one OR FOUND THEN
			RETURN;
		END IF;
	END IF;
	RAISE EXCEPTION 'table "%" is not tracked', tbl.display
		USING ERRCODE = 'undefined_object',
			  HINT = 'Tracked tables are listed in referral.tracked_table.';
END
$$;
COMMENT ON FUNCTION referral.untrack_orders(regclass)
	IS 'detach an orders table, or a partition of one: drop its referral triggers (and its partitions'') and its registry row (a dropped table''s row by OID); rewards already created stay';

CREATE OR REPLACE FUNCTION referral.audit(program bigint DEFAULT NULL)
RETURNS TABLE (problem text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t record;
	paid_test text;
	tenant_test text;
BEGIN
	IF program IS NOT NULL THEN
		PERFORM referral._program(program);
	END IF;

	-- Within the ledger.
	RETURN QUERY
	SELECT 'conversion_without_order',
	       format('referral %s is converted but its converting order %s (%s) is not an attributed, unreversed order',
	              r.id, r.converting_order, r.converting_source)
	  FROM referral.referral r
	 WHERE r.status = 'converted' AND (audit.program IS NULL OR r.program_id = audit.program)
	   AND NOT EXISTS (SELECT 1 FROM referral.attributed_order o
	                    WHERE o.tenant = r.tenant AND o.order_source = r.converting_source
	                      AND o.order_ref = r.converting_order AND o.referral_id = r.id
	                      AND o.converting AND o.reversed_at IS NULL)
	 ORDER BY r.id;

	RETURN QUERY
	SELECT 'reward_not_reversed',
	       format('reward %s (%s %s for order %s) is %s although the order was reversed',
	              w.id, w.kind, w.amount, w.order_ref, w.status)
	  FROM referral.reward w
	  JOIN referral.attributed_order o
	    ON o.tenant = w.tenant AND o.order_source = w.order_source AND o.order_ref = w.order_ref
	 WHERE w.kind IN ('referee', 'referrer') AND o.reversed_at IS NOT NULL
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	   AND (w.status IN ('pending', 'approved')
	        OR (w.status = 'paid' AND NOT EXISTS (SELECT 1 FROM referral.reward c WHERE c.clawback_of = w.id)))
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'clawback_without_reward',
	       format('clawback %s of %s offsets reward %s, which is not a paid reward of %s for %s',
	              c.id, c.amount, c.clawback_of, c.beneficiary, -c.amount)
	  FROM referral.reward c
	  LEFT JOIN referral.reward w ON w.id = c.clawback_of
	 WHERE c.kind = 'clawback' AND (audit.program IS NULL OR c.program_id = audit.program)
	   AND (w.id IS NULL OR w.status <> 'paid' OR w.beneficiary <> c.beneficiary OR w.amount <> -c.amount)
	 ORDER BY c.id;

	RETURN QUERY
	SELECT 'reward_without_referral',
	       format('reward %s of %s names referral %s, which does not exist', w.id, w.beneficiary, w.referral_id)
	  FROM referral.reward w
	 WHERE NOT EXISTS (SELECT 1 FROM referral.referral r WHERE r.id = w.referral_id)
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'reward_program_mismatch',
	       format('reward %s is in program %s, but its referral %s is in program %s',
	              w.id, w.program_id, r.id, r.program_id)
	  FROM referral.reward w
	  JOIN referral.referral r ON r.id = w.referral_id
	 WHERE w.program_id <> r.program_id
	   AND (audit.program IS NULL OR w.program_id = audit.program OR r.program_id = audit.program)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'reward_above_rule',
	       format('reward %s pays %s, more than rule %s gives for order %s of %s (%s)',
	              w.id, w.amount, w.rule_id, w.order_ref, o.amount,
	              referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency))
	  FROM referral.reward w
	  JOIN referral.reward_rule rr ON rr.id = w.rule_id
	  JOIN referral.attributed_order o
	    ON o.tenant = w.tenant AND o.order_source = w.order_source AND o.order_ref = w.order_ref
	 WHERE w.kind IN ('referee', 'referrer') AND w.status <> 'reversed'
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	   AND w.amount > referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'budget_exceeded',
	       format('program %s has created %s of rewards, over its budget of %s', p.id, s.total, p.budget)
	  FROM referral.program p
	  JOIN (SELECT w.program_id, sum(w.amount) AS total FROM referral.reward w
	         WHERE w.status <> 'reversed' GROUP BY w.program_id) s ON s.program_id = p.id
	 WHERE p.budget IS NOT NULL AND s.total > p.budget
	   AND (audit.program IS NULL OR p.id = audit.program)
	 ORDER BY p.id;

	RETURN QUERY
	SELECT 'referrer_cap_exceeded',
	       format('%s has earned %s in program %s, over its referrer_cap of %s', s.beneficiary, s.total, p.id, p.referrer_cap)
	  FROM referral.program p
	  JOIN (SELECT w.program_id, w.beneficiary, sum(w.amount) AS total FROM referral.reward w
	         WHERE w.status <> 'reversed' GROUP BY w.program_id, w.beneficiary) s ON s.program_id = p.id
	 WHERE p.referrer_cap IS NOT NULL AND s.total > p.referrer_cap
	   AND (audit.program IS NULL OR p.id = audit.program)
	 ORDER BY p.id, s.beneficiary;

	-- Attributed orders of a tracked table that was dropped (not untracked): they
	-- are gone, and nothing reversed their rewards.
	RETURN QUERY
	SELECT 'order_not_paid',
	       format('order %s of %s (referral %s) earned rewards but its table was dropped',
	              o.order_ref, o.order_source, o.referral_id)
	  FROM referral.tracked_table tt
	  JOIN referral.attributed_order o ON o.order_source = tt.source
	 WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = tt.relid)
	   AND o.reversed_at IS NULL AND (audit.program IS NULL OR o.program_id = audit.program)
	 ORDER BY o.order_source, o.order_ref;

	-- Against the orders of every table still tracked.
	FOR t IN
		SELECT tt.*, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified
		  FROM referral.tracked_table tt
		  JOIN pg_class c ON c.oid = tt.relid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 ORDER BY tt.relid
	LOOP
		paid_test := CASE WHEN t.status_column IS NULL THEN 'true'
		                  ELSE format('(x.%I::text = ANY (%L::text[]))', t.status_column, t.paid_statuses) END;
		tenant_test := CASE WHEN t.tenant_column IS NULL THEN format('%L', t.tenant)
		                    ELSE format('x.%I::text', t.tenant_column) END;

		-- An attributed, unreversed order that is no longer there or no longer paid.
		RETURN QUERY EXECUTE format(
			'SELECT %L, format(%L, o.order_ref, o.order_source, o.referral_id, CASE WHEN x.%I IS NULL THEN %L ELSE %L END)
			   FROM referral.attributed_order o
			   LEFT JOIN %s x ON x.%I::text = o.order_ref AND %s = o.tenant
			  WHERE o.order_source = $1 AND o.reversed_at IS NULL
			    AND ($2::bigint IS NULL OR o.program_id = $2)
			    AND (x.%I IS NULL OR NOT %s)
			  ORDER BY o.order_ref',
			'order_not_paid', 'order %s of %s (referral %s) earned rewards but is %s',
			t.id_column, 'deleted', 'not paid',
			t.qualified, t.id_column, tenant_test, t.id_column, paid_test)
		USING t.source, program;

		-- A pending referral whose referee has a qualifying paid order in the window,
		-- placed after the referral last went back to pending: a missed conversion.
		IF t.ordered_at_column IS NOT NULL THEN
			RETURN QUERY EXECUTE format(
				'SELECT %L, format(%L, r.id, x.%I::text)
				   FROM referral.referral r
				   JOIN referral.program p ON p.id = r.program_id
				   JOIN %s x ON x.%I::text = r.referee AND %s = r.tenant
				  WHERE r.status = ''pending'' AND ($1::bigint IS NULL OR r.program_id = $1)
				    AND %s AND x.%I::numeric >= p.min_order_amount
				    AND x.%I::timestamptz >= GREATEST(r.created_at, p.starts_at, r.reverted_at)
				    AND x.%I::timestamptz <= r.created_at + p.attribution_window
				    AND (p.ends_at IS NULL OR x.%I::timestamptz < p.ends_at)
				    AND NOT EXISTS (SELECT 1 FROM referral.attributed_order o
				                     WHERE o.tenant = r.tenant AND o.order_source = $2 AND o.order_ref = x.%I::text)
				  ORDER BY r.id',
				'missed_conversion', 'referral %s is pending although order %s qualifies',
				t.id_column, t.qualified, t.customer_column, tenant_test, paid_test, t.amount_column,
				t.ordered_at_column, t.ordered_at_column, t.ordered_at_column, t.id_column)
			USING program, t.source;
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral.audit(bigint)
	IS 'recompute from tracked orders and referrals what the ledger should hold; one row per difference, none when consistent';

-- Tables tracked before: the TRUNCATE trigger, with the order triggers' arguments,
-- and the order triggers on their partitions.
DO $$
DECLARE
	t record;
BEGIN
	FOR t IN
		SELECT format('%I.%I', n.nspname, c.relname) AS quoted,
		       (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(a.arg), ', ' ORDER BY a.i)
		          FROM pg_catalog.unnest(referral._trigger_args(g.tgargs)) WITH ORDINALITY AS a(arg, i)) AS args
		  FROM pg_catalog.pg_trigger g
		  JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid
		  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		 WHERE g.tgname = 'referral_orders_ins'
		   AND g.tgfoid = 'referral._order_trigger()'::pg_catalog.regprocedure
		   AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger x
		                    WHERE x.tgrelid = g.tgrelid AND x.tgname = 'referral_orders_trunc')
		 ORDER BY g.tgrelid
	LOOP
		EXECUTE format('CREATE TRIGGER referral_orders_trunc BEFORE TRUNCATE ON %s'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION referral._orders_truncated(%s)',
		               t.quoted, t.args);
	END LOOP;
	FOR t IN
		SELECT tt.relid FROM referral.tracked_table tt
		  JOIN pg_catalog.pg_class c ON c.oid = tt.relid
		 WHERE c.relkind = 'p'
		 ORDER BY tt.relid
	LOOP
		PERFORM referral._track_partitions(t.relid);
	END LOOP;
END
$$;

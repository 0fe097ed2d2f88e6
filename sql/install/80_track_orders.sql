-- Orders: attribution in the database.  referral.track_orders() puts three
-- statement-level triggers with transition tables on the shop's own orders
-- table (with a TRUNCATE trigger, 81_order_truncate.sql, and the same on each of
-- its partitions, 82_partitions.sql); their function (src/order_trigger.c) hands the orders of each
-- statement, set-based, to referral._orders_paid, referral._orders_reversed and
-- referral._order_amount_changed.  The triggers carry their whole
-- configuration in their arguments (Citus fires them per shard); the registry
-- referral.tracked_table is for redeem's existing_customer rule and audit().

-- The trigger function.  Not SECURITY DEFINER: the C code runs its SQL as the
-- function's owner with search_path pinned (so that a role that may only write its
-- orders table still gets its orders attributed), and only when a statement's
-- orders need SQL at all.
CREATE FUNCTION referral._order_trigger()
RETURNS trigger
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'referral_order_trigger';
COMMENT ON FUNCTION referral._order_trigger()
	IS 'internal: AFTER ... FOR EACH STATEMENT trigger of a tracked orders table (see track_orders); arguments: tenant, source, customer, amount, id, status, paid statuses, reversed statuses, ordered_at and tenant columns';
REVOKE ALL ON FUNCTION referral._order_trigger() FROM PUBLIC;

-- The role that called us: SECURITY DEFINER changes current_user, not the role
-- setting (SET ROLE) nor the session user.
CREATE FUNCTION referral._invoker()
RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN pg_catalog.current_setting('role') = 'none' THEN pg_catalog.session_user()
	            ELSE pg_catalog.current_setting('role')::pg_catalog.name END
$$;
COMMENT ON FUNCTION referral._invoker() IS 'internal: the role that called a SECURITY DEFINER function (the SET ROLE role, else the session user)';
REVOKE ALL ON FUNCTION referral._invoker() FROM PUBLIC;

-- The tracked table's name for messages (schema.table) and for SQL (quoted), or
-- an error unless the caller may create triggers on it.
CREATE FUNCTION referral._orders_table(orders regclass, OUT display text, OUT quoted text)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rel record;
BEGIN
	IF orders IS NULL THEN
		RAISE EXCEPTION 'orders table must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT n.nspname, c.relname, c.relkind INTO rel
	  FROM pg_catalog.pg_class c
	  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE c.oid = orders;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'relation with OID % does not exist', orders::oid
			USING ERRCODE = 'undefined_table';
	END IF;
	display := rel.nspname || '.' || rel.relname;
	quoted := format('%I.%I', rel.nspname, rel.relname);
	IF rel.relkind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', display
			USING ERRCODE = 'wrong_object_type',
				  DETAIL = 'Only ordinary and partitioned tables can be tracked.';
	END IF;
	IF NOT pg_catalog.has_table_privilege(referral._invoker(), orders, 'TRIGGER') THEN
		RAISE EXCEPTION 'permission denied for table %', display
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Tracking a table creates triggers on it: it needs the TRIGGER privilege on the table.';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._orders_table(regclass)
	IS 'internal: an orders table''s name for messages and quoted for SQL; errors unless it is a table the caller may put triggers on';
REVOKE ALL ON FUNCTION referral._orders_table(regclass) FROM PUBLIC;

-- Checks that a column given to track_orders exists and has one of the allowed
-- types (a domain counts as its base type): 42703 or 42804 naming the column.
CREATE FUNCTION referral._check_order_column(
	orders regclass,
	display text,
	purpose text,
	col name,
	allowed regtype[],
	allowed_text text,
	allow_enum boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	col_type oid;
	col_type_text text;
	base oid;
	base_kind "char";
	next_base oid;
BEGIN
	IF col IS NULL THEN
		RAISE EXCEPTION '%_column must not be NULL', purpose USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod)
	  INTO col_type, col_type_text
	  FROM pg_catalog.pg_attribute a
	 WHERE a.attrelid = orders AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of table "%" does not exist', col, display
			USING ERRCODE = 'undefined_column',
				  HINT = format('Name an existing column of the table as %s_column.', purpose);
	END IF;
	base := col_type;
	LOOP
		SELECT t.typtype, t.typbasetype INTO base_kind, next_base
		  FROM pg_catalog.pg_type t WHERE t.oid = base;
		EXIT WHEN base_kind IS DISTINCT FROM 'd';
		base := next_base;
	END LOOP;
	IF NOT (base = ANY (allowed::oid[]) OR (allow_enum AND base_kind = 'e')) THEN
		RAISE EXCEPTION '% column "%" of table "%" has type %', purpose, col, display, col_type_text
			USING ERRCODE = 'datatype_mismatch',
				  HINT = format('The %s column must be %s.', purpose, allowed_text);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._check_order_column(regclass, text, text, name, regtype[], text, boolean)
	IS 'internal: error unless the named column of an orders table exists and has an allowed type';
REVOKE ALL ON FUNCTION referral._check_order_column(regclass, text, text, name, regtype[], text, boolean) FROM PUBLIC;

-- Checks a list of statuses: no NULL element, non-empty unless may_be_empty.
CREATE FUNCTION referral._check_statuses(what text, statuses text[], may_be_empty boolean)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF statuses IS NULL THEN
		RAISE EXCEPTION '% must not be NULL', what USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT may_be_empty AND pg_catalog.cardinality(statuses) = 0 THEN
		RAISE EXCEPTION '% must not be empty', what
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Name at least one status that means the order is paid.';
	END IF;
	IF pg_catalog.array_position(statuses, NULL) IS NOT NULL THEN
		RAISE EXCEPTION '% must not contain NULL', what USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._check_statuses(text, text[], boolean)
	IS 'internal: error unless a status list of track_orders has no NULL and, unless allowed, is not empty';
REVOKE ALL ON FUNCTION referral._check_statuses(text, text[], boolean) FROM PUBLIC;

CREATE FUNCTION referral.track_orders(
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
		RAISE EXCEPTION 'paid_statuses and reversed_statuses overlap: %', referral._excerpt(both_ways)
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

CREATE FUNCTION referral.untrack_orders(orders regclass)
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

	-- A partition of a tracked table: recorded, so that its triggers stay off, with
	-- its attributed orders, which audit() no longer checks, also once the partition
	-- is detached or dropped (read before it is recorded: audit's query of the
	-- tracked table leaves untracked partitions out).
	SELECT a.relid INTO tracked_parent
	  FROM pg_catalog.pg_partition_ancestors(orders) a(relid)
	  JOIN referral.tracked_table t ON t.relid = a.relid
	 WHERE a.relid <> orders
	 LIMIT 1;
	IF FOUND THEN
		INSERT INTO referral.untracked_order AS u (tenant, order_source, order_ref)
		SELECT a.tenant, a.order_source, a.order_ref
		  FROM referral._query_as_owner(orders,
		           referral._orders_query(tracked_parent,
		               (SELECT format('%I.%I', n.nspname, c.relname)
		                  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		                 WHERE c.oid = orders)))
		       AS q(order_ref text, customer text, tenant text, amount numeric, paid boolean,
		            reversed boolean, ordered_at timestamptz)
		  JOIN referral.tracked_table t ON t.relid = tracked_parent
		  JOIN referral.attributed_order a
		    ON a.tenant = q.tenant AND a.order_source = t.source AND a.order_ref = q.order_ref
		ON CONFLICT DO NOTHING;
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

REVOKE ALL ON FUNCTION referral.track_orders(regclass, name, name, name, name, text[], text[], name, name, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION referral.untrack_orders(regclass) FROM PUBLIC;

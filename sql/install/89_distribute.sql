-- Citus: referral's tables distributed by tenant, co-located with the shop's orders
-- table, so that the order triggers, which Citus fires on each shard where the
-- shard is, find the tenant's referrals, rewards and chains on the same node.  The
-- configuration tables are reference tables (a copy on every node).  The secret
-- stays on the coordinator, where the API functions run.  Citus functions are
-- called through EXECUTE: the extension does not depend on Citus.

-- Every node draws ids from its own range of each sequence (group id << 48), as
-- Citus does for the sequences it distributes: the order triggers on the workers
-- create rewards, events and attributed orders with ids unique in the cluster.
-- Only ever moves a sequence forward.
CREATE FUNCTION referral._node_sequences()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	node_group bigint;
	s record;
BEGIN
	EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO node_group;
	IF node_group IS NULL OR node_group = 0 THEN
		RETURN;		-- the coordinator keeps the range it has
	END IF;
	FOR s IN
		SELECT q.seqrelid::regclass AS seq
		  FROM pg_catalog.pg_sequence q
		  JOIN pg_catalog.pg_class c ON c.oid = q.seqrelid
		 WHERE c.relnamespace = 'referral'::regnamespace
		   AND c.relname <> 'code_counter_seq'	-- codes are issued on the coordinator
	LOOP
		CONTINUE WHEN COALESCE(pg_catalog.pg_sequence_last_value(s.seq), 0) >= node_group << 48;
		PERFORM pg_catalog.setval(s.seq, (node_group << 48) + 1, false);
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._node_sequences() IS 'internal: moves this Citus node''s referral sequences to its own range (group id << 48)';

CREATE FUNCTION referral.distribute(orders regclass DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	is_coordinator boolean;
	orders_column text;
	orders_type regtype;
	colocate text := 'default';
	t record;
	name text;
	keys text[];
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
		RAISE EXCEPTION 'referral.distribute needs Citus, and the citus extension is not installed in this database'
			USING ERRCODE = 'feature_not_supported',
			      HINT = 'On a Citus coordinator (shared_preload_libraries = citus), run CREATE EXTENSION citus first; on one node referral needs nothing more.';
	END IF;
	EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO is_coordinator;
	IF NOT is_coordinator THEN
		RAISE EXCEPTION 'referral.distribute runs on the Citus coordinator, not on a worker'
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;

	IF orders IS NOT NULL THEN
		EXECUTE 'SELECT pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
		           FROM pg_catalog.pg_dist_partition p
		          WHERE p.logicalrelid = $1 AND p.partmethod = ''h'''
		   INTO orders_column USING orders;
		IF orders_column IS NULL THEN
			RAISE EXCEPTION 'table "%" is not a distributed table', referral._excerpt(orders::text)
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      HINT = 'Distribute it by its tenant column first: SELECT create_distributed_table(''orders'', ''tenant'').';
		END IF;
		SELECT a.atttypid INTO orders_type FROM pg_catalog.pg_attribute a
		 WHERE a.attrelid = orders AND a.attname = orders_column;
		IF orders_type <> 'text'::regtype THEN
			RAISE EXCEPTION 'table "%" is distributed by column "%" of type %, not text', referral._excerpt(orders::text),
				referral._excerpt(orders_column), orders_type
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = 'Referral''s tables are distributed by their text column tenant, co-located with the orders table.';
		END IF;
		colocate := orders::text;
	END IF;

	-- A tracked table distributed by anything but its tenant column, or not
	-- co-located with referral's tables, fires its triggers on shards that do not
	-- hold the tenant's referrals: they would attribute nothing.
	FOR t IN
		SELECT tt.relid, tt.tenant_column FROM referral.tracked_table tt
		 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = tt.relid)
		 ORDER BY tt.relid
	LOOP
		EXECUTE 'SELECT pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
		           FROM pg_catalog.pg_dist_partition p
		          WHERE p.logicalrelid = $1 AND p.partmethod = ''h'''
		   INTO name USING t.relid;
		CONTINUE WHEN name IS NULL;		-- a table of the coordinator: its triggers run there
		IF t.tenant_column IS NULL OR name <> t.tenant_column THEN
			RAISE EXCEPTION 'tracked table "%" is distributed by column "%", not by its tenant column', referral._excerpt(t.relid::text),
				referral._excerpt(name)
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = 'Its order triggers run on its shards and must find the tenant''s referrals there.',
				      HINT = 'Track it with tenant_column => the distribution column, or distribute it by that column.';
		ELSIF t.relid IS DISTINCT FROM orders THEN
			RAISE EXCEPTION 'tracked table "%" is distributed, and only the orders table given to distribute can be', referral._excerpt(t.relid::text)
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      HINT = 'Call referral.distribute with that table as orders, after co-locating the others with it.';
		END IF;
	END LOOP;

	-- referral's own triggers (referral_keep_rewarded) fire on the shards too.
	PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
	-- Foreign keys to reference tables need one connection per node.
	PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
	-- A foreign key from a local table to a table becoming a reference table would
	-- make Citus convert the local one (and the views on it, which belong to the
	-- extension, cannot be dropped): the keys are put back once every table is a
	-- Citus table.
	SELECT array_agg(format('ALTER TABLE %s ADD CONSTRAINT %I %s', con.conrelid::regclass, con.conname,
	                        pg_catalog.pg_get_constraintdef(con.oid)) ORDER BY con.conname)
	  INTO keys
	  FROM pg_catalog.pg_constraint con
	 WHERE con.contype = 'f' AND con.connamespace = 'referral'::regnamespace
	   AND NOT (referral._distributed(con.conrelid) AND referral._distributed(con.confrelid));
	FOR t IN
		SELECT con.conrelid::regclass AS rel, con.conname
		  FROM pg_catalog.pg_constraint con
		 WHERE con.contype = 'f' AND con.connamespace = 'referral'::regnamespace
		   AND NOT (referral._distributed(con.conrelid) AND referral._distributed(con.confrelid))
	LOOP
		EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', t.rel, t.conname);
		-- The workers' own copies of referral's tables become the shells of the
		-- Citus tables: they lose the key too, and get it back with the shards.
		EXECUTE 'SELECT pg_catalog.run_command_on_workers($1)'
		  USING format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', t.rel, t.conname);
	END LOOP;
	FOREACH name IN ARRAY ARRAY['program', 'reward_rule', 'milestone', 'variant', 'referee_offer',
	                            'tracked_table', 'source_label', 'untracked_partition'] LOOP
		IF NOT referral._distributed(format('referral.%I', name)::regclass) THEN
			EXECUTE 'SELECT pg_catalog.create_reference_table($1)' USING format('referral.%I', name)::regclass;
		END IF;
	END LOOP;
	FOREACH name IN ARRAY ARRAY['referral', 'reward', 'attributed_order', 'member', 'code', 'click',
	                            'event', 'offer_use', 'credit_spend', 'block', 'forgotten',
	                            'untracked_order'] LOOP
		IF NOT referral._distributed(format('referral.%I', name)::regclass) THEN
			EXECUTE 'SELECT pg_catalog.create_distributed_table($1, ''tenant'', colocate_with => $2)'
			  USING format('referral.%I', name)::regclass, colocate;
		END IF;
		colocate := 'referral.referral';
	END LOOP;
	FOREACH name IN ARRAY COALESCE(keys, '{}') LOOP
		EXECUTE name;
	END LOOP;
	EXECUTE 'SELECT pg_catalog.run_command_on_workers(''SELECT referral._node_sequences()'')';
END
$$;
COMMENT ON FUNCTION referral.distribute(regclass)
	IS 'on a Citus coordinator: referral''s tables distributed by tenant (co-located with the orders table when given), the configuration tables as reference tables';

-- Whether a table is a Citus table (distributed or reference); false without Citus.
CREATE FUNCTION referral._distributed(relid regclass)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	found boolean;
BEGIN
	IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN false;
	END IF;
	EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = $1)'
	   INTO found USING relid;
	RETURN found;
END
$$;
COMMENT ON FUNCTION referral._distributed(regclass) IS 'internal: whether a table is a Citus table (distributed or reference)';


-- referral 0.2 -> 0.3.  Each section names the change it carries; together they
-- must give exactly the catalog of a fresh 0.3 install (test/upgrade.sh checks).
\echo Use "ALTER EXTENSION referral UPDATE TO '0.3'" to load this file. \quit

-- Reads of a shop's tables without its owner's code running as the extension's owner, and redeem against orders still in progress:
CREATE FUNCTION referral._query_as_owner(relid regclass, query text)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'referral_query_as_owner';
COMMENT ON FUNCTION referral._query_as_owner(regclass, text)
	IS 'internal: run a read-only query over a shop''s table with the rights of the table''s owner';
REVOKE ALL ON FUNCTION referral._query_as_owner(regclass, text) FROM PUBLIC;

CREATE FUNCTION referral._customer_has_orders(orders regclass, customer_column name,
	tenant_column name, tenant text, customer text)
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'referral_customer_has_orders';
COMMENT ON FUNCTION referral._customer_has_orders(regclass, name, name, text, text)
	IS 'internal: whether a customer has an order, committed or in progress, in one tracked table';
REVOKE ALL ON FUNCTION referral._customer_has_orders(regclass, name, name, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION referral._has_orders(tenant text, customer text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t record;
BEGIN
	FOR t IN
		SELECT tt.relid, tt.customer_column, tt.tenant_column
		  FROM referral.tracked_table tt
		 WHERE (tt.tenant_column IS NOT NULL OR tt.tenant = _has_orders.tenant)
		   AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = tt.relid)
		 ORDER BY tt.relid
	LOOP
		IF referral._distributed(t.relid) THEN
			-- A Citus table: the coordinator's heap is empty, the shards answer a
			-- query (run as the table's owner), which sees committed orders only.
			IF EXISTS (SELECT 1 FROM referral._query_as_owner(t.relid,
			               format('SELECT true FROM %s o WHERE %s AND o.%I::pg_catalog.text = %L LIMIT 1',
			                      t.relid,
			                      CASE WHEN t.tenant_column IS NULL THEN 'true'
			                           ELSE format('o.%I = %L', t.tenant_column, _has_orders.tenant) END,
			                      t.customer_column, _has_orders.customer)) AS q(found boolean)) THEN
				RETURN true;
			END IF;
		ELSIF referral._customer_has_orders(t.relid, t.customer_column, t.tenant_column,
		                                    _has_orders.tenant, _has_orders.customer) THEN
			RETURN true;
		END IF;
	END LOOP;
	RETURN false;
END
$$;
COMMENT ON FUNCTION referral._has_orders(text, text) IS 'internal: whether a customer has an order (any status, committed or in progress) in a tracked table of the tenant';

CREATE FUNCTION referral._orders_query(orders regclass, qualified text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT format('SELECT (x.%I)::text, (x.%I)::text, %s, (x.%I)::numeric, %s, %s, %s FROM %s x',
	              t.id_column, t.customer_column,
	              CASE WHEN t.tenant_column IS NULL THEN format('%L::text', t.tenant)
	                   ELSE format('(x.%I)::text', t.tenant_column) END,
	              t.amount_column,
	              CASE WHEN t.status_column IS NULL THEN 'true'
	                   ELSE format('((x.%I)::text = ANY (%L::text[]))', t.status_column, t.paid_statuses) END,
	              CASE WHEN t.status_column IS NULL THEN 'false'
	                   ELSE format('((x.%I)::text = ANY (%L::text[]))', t.status_column, t.reversed_statuses) END,
	              CASE WHEN t.ordered_at_column IS NULL THEN 'NULL::timestamptz'
	                   ELSE format('(x.%I)::timestamptz', t.ordered_at_column) END,
	              qualified)
	       -- Not the rows of partitions that untrack_orders took out.
	       || COALESCE((SELECT format(' WHERE x.tableoid OPERATOR(pg_catalog.<>) ALL (%L::pg_catalog.oid[])',
	                                  array_agg(p.relid::oid))
	                      FROM referral.untracked_partition u
	                     CROSS JOIN LATERAL pg_catalog.pg_partition_tree(u.relid) p
	                     WHERE u.relid IN (SELECT tree.relid FROM pg_catalog.pg_partition_tree(orders) tree)
	                    HAVING count(*) > 0), '')
	  FROM referral.tracked_table t
	 WHERE t.relid = orders
$$;
COMMENT ON FUNCTION referral._orders_query(regclass, text)
	IS 'internal: the query audit() reads a tracked table''s orders with, as the table''s owner';
REVOKE ALL ON FUNCTION referral._orders_query(regclass, text) FROM PUBLIC;

-- orders changed after they earned: partial clawbacks of paid rewards, orders that
-- change customer, tenant or id (issue #18, items 5 and 6):
DROP INDEX referral.reward_once_per_order;
-- The referral is in the key because an order that changes customer is attributed to
-- the new customer's referral, whose referrer may be the old one's.
CREATE UNIQUE INDEX reward_once_per_order ON referral.reward
	(tenant, order_source, order_ref, referral_id, beneficiary, level, kind) WHERE kind IN ('referee', 'referrer');
DROP INDEX referral.reward_one_clawback;
-- The clawbacks of a paid reward (no unique key: _claw_back nets them under the paid
-- reward's row lock).
CREATE INDEX reward_clawbacks ON referral.reward (clawback_of) WHERE kind = 'clawback';

-- Claws paid rewards back down to a net (amount plus clawbacks) of `nets` (0: all of
-- it): a clawback (negative, approved, so that the next payout nets it) for each one
-- whose net is above, with its event.  The net is read here, not passed in, so that a
-- second call for the same change claws back nothing: callers hold the rewards' row
-- locks, taken in an earlier statement, so this one's snapshot has every clawback
-- committed before.  The paid reward row is updated too: reversed_at when nothing is
-- left, else the same values, so that a concurrent transaction that locks it after
-- this one commits sees it changed (a serialization failure under REPEATABLE READ)
-- instead of clawing back the same difference again.  The rewards are the tenant's:
-- every statement names it, so that on Citus it runs on the tenant's shard.
CREATE FUNCTION referral._claw_back(tenant text, reward_ids bigint[], nets numeric[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	clawbacks bigint[];
	zeroed bigint[];
	lowered bigint[];
BEGIN
	-- Every read and write names the rewards by an id array given as a value, one
	-- scan each, never by a join that probes them one by one: such a probe may take
	-- an index that leads with tenant (statistics that do not know the tenant yet
	-- make it look cheap) and read all the tenant's rewards for each.
	WITH paid AS MATERIALIZED (
		SELECT w.* FROM referral.reward w
		 WHERE w.tenant = _claw_back.tenant AND w.id = ANY (reward_ids)
		   AND w.status = 'paid' AND w.kind <> 'clawback'
	), clawed AS MATERIALIZED (
		SELECT c.clawback_of, sum(c.amount) AS amount FROM referral.reward c
		 WHERE c.tenant = _claw_back.tenant AND c.kind = 'clawback' AND c.clawback_of = ANY (reward_ids)
		 GROUP BY c.clawback_of
	), due AS MATERIALIZED (
		SELECT DISTINCT ON (w.id) w.*, GREATEST(x.net, 0) AS target, w.amount + COALESCE(s.amount, 0) AS net
		  FROM unnest(reward_ids, nets) AS x(id, net)
		  JOIN paid w ON w.id = x.id
		  LEFT JOIN clawed s ON s.clawback_of = w.id
		 WHERE x.net IS NOT NULL
		 ORDER BY w.id, x.net
	), claw AS (
		INSERT INTO referral.reward AS c
			(tenant, program_id, beneficiary, referral_id, order_source, order_ref, level, kind,
			 reward_type, amount, currency, status, approved_at, rule_id, milestone_id, clawback_of)
		SELECT d.tenant, d.program_id, d.beneficiary, d.referral_id, d.order_source, d.order_ref,
		       d.level, 'clawback', d.reward_type, d.target - d.net, d.currency, 'approved', now(),
		       d.rule_id, NULL, d.id
		  FROM due d
		 WHERE d.target < d.net
		 ORDER BY d.id
		RETURNING c.id, c.clawback_of
	)
	SELECT (SELECT array_agg(claw.id ORDER BY claw.id) FROM claw),
	       (SELECT array_agg(d.id ORDER BY d.id) FROM due d WHERE d.target = 0 AND d.target < d.net),
	       (SELECT array_agg(d.id ORDER BY d.id) FROM due d WHERE d.target > 0 AND d.target < d.net)
	  INTO clawbacks, zeroed, lowered;
	-- A paid reward stays paid (paid is gross); reversed_at says it was clawed back in
	-- full.  One clawed back in part is written with the same values.
	IF zeroed IS NOT NULL THEN
		UPDATE referral.reward w SET reversed_at = now()
		 WHERE w.tenant = _claw_back.tenant AND w.id = ANY (zeroed);
	END IF;
	IF lowered IS NOT NULL THEN
		UPDATE referral.reward w SET reversed_at = w.reversed_at
		 WHERE w.tenant = _claw_back.tenant AND w.id = ANY (lowered);
	END IF;
	IF clawbacks IS NOT NULL THEN
		PERFORM referral._emit_rewards('reward_created', clawbacks);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._claw_back(text, bigint[], numeric[])
	IS 'internal: claw a tenant''s paid rewards back down to a net amount (0: all of it), once';
REVOKE EXECUTE ON FUNCTION referral._claw_back(text, bigint[], numeric[]) FROM PUBLIC;

-- Reverses rewards: pending and approved ones become reversed; paid ones are clawed
-- back (_claw_back) in full.  The rewards are the tenant's (as in _claw_back).
DROP FUNCTION referral._reverse_rewards(bigint[]);
CREATE FUNCTION referral._reverse_rewards(tenant text, reward_ids bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	reversed bigint[];
	paid bigint[];
BEGIN
	-- Locked in id order, then written by an id array (see _claw_back).
	SELECT array_agg(l.id ORDER BY l.id) FILTER (WHERE l.status IN ('pending', 'approved')),
	       array_agg(l.id ORDER BY l.id) FILTER (WHERE l.status = 'paid')
	  INTO reversed, paid
	  FROM (SELECT w.id, w.status FROM referral.reward w
	         WHERE w.tenant = _reverse_rewards.tenant AND w.id = ANY (reward_ids) AND w.kind <> 'clawback'
	         ORDER BY w.id FOR UPDATE) l;

	IF reversed IS NOT NULL THEN
		UPDATE referral.reward w SET status = 'reversed', reversed_at = now()
		 WHERE w.tenant = _reverse_rewards.tenant AND w.id = ANY (reversed);
		PERFORM referral._emit_rewards('reward_reversed', reversed);
	END IF;
	IF paid IS NOT NULL THEN
		PERFORM referral._claw_back(tenant, paid, array_fill(0::numeric, ARRAY[cardinality(paid)]));
	END IF;
END
$$;
COMMENT ON FUNCTION referral._reverse_rewards(text, bigint[]) IS 'internal: reverse a tenant''s rewards (clawback for paid ones)';
REVOKE EXECUTE ON FUNCTION referral._reverse_rewards(text, bigint[]) FROM PUBLIC;

-- Orders that changed customer, keeping their tenant and id (`released`, among
-- `order_refs`), or changed tenant or id (the rest): each is reversed as a refund
-- reverses it.  The released ones are then no longer attributed, so that the paid
-- orders of the same statement (which run after) can attribute them to the new
-- customer's referral; their old rewards keep the order_ref (the new referral's are
-- distinct by referral_id).
CREATE FUNCTION referral._orders_moved(tenant text, source text, order_refs text[], released text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
	PERFORM referral._orders_reversed(tenant, source, order_refs);
	IF released IS NOT NULL THEN
		DELETE FROM referral.attributed_order o
		 WHERE o.tenant = _orders_moved.tenant AND o.order_source = source
		   AND o.order_ref = ANY (released);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._orders_moved(text, text, text[], text[])
	IS 'internal: orders that changed customer, tenant or id: reverse them as refunds, and release those that keep their id for their new customer';
REVOKE EXECUTE ON FUNCTION referral._orders_moved(text, text, text[], text[]) FROM PUBLIC;

-- A paid order's amount changed.  Its rewards follow a lower amount, recomputed with
-- the rule that created them: one not yet paid is lowered (or reversed when it comes
-- to nothing); a paid one is clawed back by the difference (_claw_back), so that its
-- net is what the rule gives now.  A higher amount changes nothing, and a reward
-- lowered or clawed back is never raised again: it may have been cut to the budget or
-- cap, and raising it would need the same checks as a new reward.
CREATE OR REPLACE FUNCTION referral._order_amount_changed(tenant text, source text, order_ref text, amount numeric)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	changed bigint[];
	vanished bigint[];
	paid bigint[];
	paid_nets numeric[];
BEGIN
	UPDATE referral.attributed_order o SET amount = _order_amount_changed.amount
	 WHERE o.tenant = _order_amount_changed.tenant AND o.order_source = source
	   AND o.order_ref = _order_amount_changed.order_ref AND o.reversed_at IS NULL;
	WITH recomputed AS (
		SELECT w.id, w.status, w.amount AS old_amount,
		       referral.reward_amount(_order_amount_changed.amount, r.percent, r.fixed, r.cap, w.currency) AS new_amount
		  FROM referral.reward w
		  JOIN referral.reward_rule r ON r.id = w.rule_id
		 WHERE w.tenant = _order_amount_changed.tenant AND w.order_source = source
		   AND w.order_ref = _order_amount_changed.order_ref AND w.kind IN ('referee', 'referrer')
		   AND w.status IN ('pending', 'approved', 'paid')
		 ORDER BY w.id
		   FOR UPDATE OF w
	), upd AS (
		UPDATE referral.reward w SET amount = c.new_amount
		  FROM recomputed c
		 WHERE w.id = c.id AND c.status <> 'paid' AND c.new_amount > 0 AND c.new_amount < c.old_amount
		RETURNING w.id
	)
	SELECT (SELECT array_agg(upd.id) FROM upd),
	       (SELECT array_agg(c.id) FROM recomputed c WHERE c.status <> 'paid' AND c.new_amount <= 0),
	       (SELECT array_agg(c.id ORDER BY c.id) FROM recomputed c WHERE c.status = 'paid' AND c.new_amount < c.old_amount),
	       (SELECT array_agg(c.new_amount ORDER BY c.id) FROM recomputed c WHERE c.status = 'paid' AND c.new_amount < c.old_amount)
	  INTO changed, vanished, paid, paid_nets;
	IF changed IS NOT NULL THEN
		PERFORM referral._emit_rewards('reward_changed', changed);
	END IF;
	IF vanished IS NOT NULL THEN
		PERFORM referral._reverse_rewards(tenant, vanished);
	END IF;
	IF paid IS NOT NULL THEN
		PERFORM referral._claw_back(tenant, paid, paid_nets);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._order_amount_changed(text, text, text, numeric)
	IS 'internal: a paid order''s amount went down: lower its unpaid rewards, claw back the difference of its paid ones';




-- error messages quote at most an excerpt of their input:

CREATE FUNCTION referral._excerpt(value text)
RETURNS text
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_excerpt_sql';
COMMENT ON FUNCTION referral._excerpt(text) IS
'internal: a value as error messages quote it: its first 32 characters, and "..." when cut';
REVOKE EXECUTE ON FUNCTION referral._excerpt(text) FROM PUBLIC;


CREATE OR REPLACE FUNCTION referral.add_reward(
	program bigint,
	beneficiary text,
	percent numeric DEFAULT 0,
	fixed numeric DEFAULT 0,
	cap numeric DEFAULT NULL,
	level int DEFAULT 1,
	min_conversions int DEFAULT 0,
	reward_type text DEFAULT 'credit',
	variant text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p referral.program := referral._program(program);
	new_id bigint;
BEGIN
	PERFORM referral._require_finite(ARRAY['percent', 'fixed', 'cap'], ARRAY[percent, fixed, cap]);
	PERFORM referral._require(beneficiary IN ('referrer', 'referee'),
		format('beneficiary must be ''referrer'' or ''referee'' (got %L)', referral._excerpt(beneficiary)));
	PERFORM referral._require_amount_terms(percent, fixed, cap, 'a reward rule');
	PERFORM referral._require(level >= 1,
		format('level must be 1 or more (got %s)', COALESCE(level::text, 'NULL')));
	PERFORM referral._require(beneficiary = 'referrer' OR level = 1,
		format('a referee rule has level 1 (got %s)', level));
	PERFORM referral._require(level <= p.max_depth,
		format('level %s exceeds the program''s max_depth %s', level, p.max_depth),
		'Chain levels above max_depth are never paid; raise max_depth or use a lower level.');
	PERFORM referral._require(min_conversions >= 0,
		format('min_conversions must not be negative (got %s)', COALESCE(min_conversions::text, 'NULL')));
	PERFORM referral._require(reward_type IN ('credit', 'discount', 'cash', 'points', 'product'),
		format('unknown reward_type %L', referral._excerpt(reward_type)),
		'reward_type is one of credit, discount, cash, points, product.');
	PERFORM referral._require(variant IS NULL OR EXISTS (
			SELECT 1 FROM referral.variant v WHERE v.program_id = p.id AND v.name = add_reward.variant),
		format('variant %L does not exist in program %s', referral._excerpt(variant), p.id),
		'Add it first with referral.add_variant().');

	INSERT INTO referral.reward_rule AS r
		(tenant, program_id, beneficiary, percent, fixed, cap, level, min_conversions, reward_type, variant)
	VALUES
		(p.tenant, p.id, add_reward.beneficiary, add_reward.percent, add_reward.fixed,
		 add_reward.cap, add_reward.level, add_reward.min_conversions, add_reward.reward_type,
		 add_reward.variant)
	ON CONFLICT DO NOTHING
	RETURNING r.id INTO new_id;
	IF new_id IS NULL THEN
		RAISE EXCEPTION 'program % already has a % rule for level %, variant %, min_conversions %',
			p.id, beneficiary, level, COALESCE(referral._excerpt(variant), '(none)'), min_conversions
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Each tier is one rule; give the new one another min_conversions.';
	END IF;
	RETURN new_id;
END
$$;

CREATE OR REPLACE FUNCTION referral.add_milestone(
	program bigint,
	conversions int,
	amount numeric,
	reward_type text DEFAULT 'credit')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p referral.program := referral._program(program);
	new_id bigint;
BEGIN
	PERFORM referral._require_finite(ARRAY['amount'], ARRAY[amount]);
	PERFORM referral._require(conversions > 0,
		format('conversions must be positive (got %s)', COALESCE(conversions::text, 'NULL')));
	PERFORM referral._require(amount > 0,
		format('amount must be positive (got %s)', COALESCE(amount::text, 'NULL')));
	PERFORM referral._require(reward_type IN ('credit', 'discount', 'cash', 'points', 'product'),
		format('unknown reward_type %L', referral._excerpt(reward_type)),
		'reward_type is one of credit, discount, cash, points, product.');
	INSERT INTO referral.milestone AS m (tenant, program_id, conversions, amount, reward_type)
	VALUES (p.tenant, p.id, add_milestone.conversions, add_milestone.amount, add_milestone.reward_type)
	ON CONFLICT DO NOTHING
	RETURNING m.id INTO new_id;
	IF new_id IS NULL THEN
		RAISE EXCEPTION 'program % already has a milestone at % conversions', p.id, conversions
			USING ERRCODE = 'duplicate_object';
	END IF;
	RETURN new_id;
END
$$;

CREATE OR REPLACE FUNCTION referral.add_variant(program bigint, name text, weight int DEFAULT 1)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p referral.program := referral._program(program);
	new_id bigint;
BEGIN
	PERFORM referral._require(NULLIF(btrim(name), '') IS NOT NULL, 'variant name must not be empty');
	PERFORM referral._require(weight > 0,
		format('weight must be positive (got %s)', COALESCE(weight::text, 'NULL')));
	INSERT INTO referral.variant AS v (tenant, program_id, name, weight)
	VALUES (p.tenant, p.id, add_variant.name, add_variant.weight)
	ON CONFLICT DO NOTHING
	RETURNING v.id INTO new_id;
	IF new_id IS NULL THEN
		RAISE EXCEPTION 'program % already has a variant %', p.id, quote_literal(referral._excerpt(name))
			USING ERRCODE = 'duplicate_object';
	END IF;
	RETURN new_id;
END
$$;

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
	VALUES (_source_label.tenant, given, _source_label.orders)
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
REVOKE ALL ON FUNCTION referral._citus_worker() FROM PUBLIC;

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
REVOKE ALL ON referral.untracked_partition FROM PUBLIC;
REVOKE ALL ON referral.untracked_order FROM PUBLIC;

-- (track_orders: as replaced below, with its messages.)

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

-- One lock order for every statement's conversions (codes, referrals, programs), taken up front:
CREATE OR REPLACE FUNCTION referral._orders_paid(source text, referral_ids bigint[], order_refs text[],
	amounts numeric[], ats timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	converted int[] := '{}';	-- input positions whose order converted, ascending
	next_converted int := 1;
BEGIN
	-- One order (a single-row INSERT): _order_paid, which locks the referrer's code,
	-- the referral and the program in the order below.  Its statements take the id
	-- as a scalar and keep one plan for the session; the array ones below are
	-- planned again at every call, for the array's size.
	IF cardinality(referral_ids) = 1 THEN
		PERFORM referral._order_paid(referral_ids[1], source, order_refs[1], amounts[1], ats[1]);
		RETURN;
	END IF;
	-- The lock order of every statement's conversions: the referrers' codes (which
	-- serialise a referrer's conversions, so that tiers count each once), then the
	-- referrals, then the programs whose budget or cap is shared, each set sorted,
	-- and all taken here, before any is converted.  Two loads of overlapping
	-- referees then wait for each other instead of deadlocking.
	PERFORM 1 FROM referral.code c
	 WHERE (c.tenant, c.program_id, c.customer) IN
	       (SELECT r.tenant, r.program_id, r.referrer FROM referral.referral r WHERE r.id = ANY (referral_ids))
	 ORDER BY c.code FOR UPDATE;
	PERFORM 1 FROM referral.referral r WHERE r.id = ANY (referral_ids) ORDER BY r.id FOR UPDATE;
	PERFORM 1 FROM referral.program p
	 WHERE p.id IN (SELECT r.program_id FROM referral.referral r WHERE r.id = ANY (referral_ids))
	   AND (p.budget IS NOT NULL OR p.referrer_cap IS NOT NULL)
	 ORDER BY p.id FOR UPDATE;

	IF cardinality(referral_ids) >= 8 THEN
		converted := referral._convert_orders(source, referral_ids, order_refs, amounts, ats);
	END IF;
	FOR i IN 1 .. cardinality(referral_ids) LOOP
		IF converted[next_converted] = i THEN
			next_converted := next_converted + 1;
		ELSE
			PERFORM referral._order_paid(referral_ids[i], source, order_refs[i], amounts[i], ats[i]);
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._orders_paid(text, bigint[], text[], numeric[], timestamptz[])
	IS 'internal: the paid orders of one statement: set-based conversions where no budget, cap, recurring window or milestone applies; _order_paid for the rest';

CREATE OR REPLACE FUNCTION referral._convert_orders(source text, referral_ids bigint[], order_refs text[],
	amounts numeric[], ats timestamptz[])
RETURNS int[]
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	converted int[];
	notified bigint;
BEGIN
	-- The caller (_orders_paid) holds the row locks of the codes and referrals.
	WITH input AS (
		SELECT * FROM unnest(referral_ids, order_refs, amounts, ats)
		       WITH ORDINALITY AS i(referral_id, order_ref, amount, at, pos)
	), first_orders AS (
		SELECT DISTINCT ON (i.referral_id) i.* FROM input i ORDER BY i.referral_id, i.pos
	), conv AS MATERIALIZED (
		-- The conversions: what _order_paid checks, for the programs named above.
		SELECT r.id, r.tenant, r.program_id, r.referrer, r.referee, r.variant, p.currency,
		       i.order_ref, i.amount, i.at, i.pos,
		       ARRAY[r.referrer] || COALESCE(s.ancestors[1:p.max_depth - 1], '{}') AS upline
		  FROM first_orders i
		  JOIN referral.referral r ON r.id = i.referral_id
		  JOIN referral.program p ON p.id = r.program_id
		  LEFT JOIN referral.member s ON s.tenant = r.tenant AND s.customer = r.referrer
		 WHERE r.status = 'pending'
		   AND p.budget IS NULL AND p.referrer_cap IS NULL AND p.recurring_window IS NULL
		   AND NOT EXISTS (SELECT 1 FROM referral.milestone m WHERE m.program_id = p.id)
		   AND i.amount >= p.min_order_amount
		   AND i.at >= p.starts_at AND (p.ends_at IS NULL OR i.at < p.ends_at)
		   AND i.at >= r.created_at AND i.at <= r.created_at + p.attribution_window
		   AND NOT EXISTS (SELECT 1 FROM referral.attributed_order a
		                    WHERE a.tenant = r.tenant AND a.order_source = source
		                      AND a.order_ref = i.order_ref)
	), beneficiary AS (
		-- Who earns what: the referee (tiered by their own conversions as a referrer),
		-- then the referrer chain by level, up to max_depth.
		SELECT c.*, 'referee'::text AS kind, 1 AS level, c.referee AS who, 0 AS nth
		  FROM conv c
		UNION ALL
		SELECT c.*, 'referrer', l.level, c.upline[l.level], l.level
		  FROM conv c CROSS JOIN LATERAL pg_catalog.generate_series(1, pg_catalog.cardinality(c.upline)) AS l(level)
	), tiered AS (
		-- The beneficiaries whose (kind, level) has tiers (the others count 0, as in
		-- _order_paid).
		SELECT b.*, EXISTS (SELECT 1 FROM referral.reward_rule x
		                     WHERE x.program_id = b.program_id AND x.beneficiary = b.kind
		                       AND x.level = b.level AND x.min_conversions > 0) AS tiered
		  FROM beneficiary b
	), committed AS MATERIALIZED (
		-- Their conversions as a referrer committed before, once per beneficiary (a
		-- referrer converts many referees of a load), counted up to the top tier as
		-- _conversions does (a call of it here would plan its query at every call,
		-- under this function's SET).
		SELECT d.tenant, d.program_id, d.who,
		       (SELECT pg_catalog.count(*)
		          FROM (SELECT 1 FROM referral.referral x
		                 WHERE x.tenant = d.tenant AND x.referrer = d.who
		                   AND x.program_id = d.program_id AND x.status = 'converted'
		                 LIMIT (SELECT pg_catalog.max(t.min_conversions) FROM referral.reward_rule t
		                         WHERE t.program_id = d.program_id)) s) AS n
		  FROM (SELECT DISTINCT b.tenant, b.program_id, b.who FROM tiered b WHERE b.tiered) d
	), counted AS (
		-- Each beneficiary with its conversions as a referrer in the program before
		-- this one: those committed before, plus this load's with a smaller referral
		-- id, which are its rows as the level-1 referrer (a beneficiary appears once
		-- per conversion, so the frame before the current row holds exactly those).
		SELECT b.*,
		       CASE WHEN b.tiered
		            THEN COALESCE(pg_catalog.sum((b.kind = 'referrer' AND b.level = 1)::int) OVER earlier, 0) + c.n
		            ELSE 0 END AS conversions
		  FROM tiered b
		  LEFT JOIN committed c ON c.tenant = b.tenant AND c.program_id = b.program_id AND c.who = b.who
		WINDOW earlier AS (PARTITION BY b.tenant, b.program_id, b.who ORDER BY b.id
		                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
	), earned AS (
		SELECT b.*, x.id AS rule_id, x.reward_type,
		       referral.reward_amount(b.amount, x.percent, x.fixed, x.cap, b.currency) AS value
		  FROM counted b
		 CROSS JOIN LATERAL referral._pick_rule(b.program_id, b.kind, b.level, b.variant, b.conversions) x
	), attributed AS (
		INSERT INTO referral.attributed_order
			(tenant, order_source, order_ref, program_id, referral_id, amount, ordered_at, converting)
		SELECT c.tenant, source, c.order_ref, c.program_id, c.id, c.amount, c.at, true
		  FROM conv c ORDER BY c.id
	), rewarded AS (
		INSERT INTO referral.reward AS w
			(tenant, program_id, beneficiary, referral_id, order_source, order_ref, level, kind,
			 reward_type, amount, currency, status, rule_id)
		SELECT e.tenant, e.program_id, e.who, e.id, source, e.order_ref, e.level, e.kind,
		       e.reward_type, e.value, e.currency, 'pending', e.rule_id
		  FROM earned e
		 WHERE e.value > 0
		 ORDER BY e.id, e.nth
		ON CONFLICT DO NOTHING
		RETURNING w.*
	), updated AS (
		UPDATE referral.referral x
		   SET status = 'converted', converted_at = c.at, converting_source = source,
		       converting_order = c.order_ref
		  FROM conv c
		 WHERE x.id = c.id
	), events AS (
		-- The events in the order _order_paid appends them: a conversion's rewards,
		-- then its referral_converted.
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT v.tenant, v.kind, v.payload
		  FROM (SELECT w.tenant, 'reward_created' AS kind, w.referral_id, 0 AS after, w.id,
		               referral._reward_payload(w.id, w.program_id, w.referral_id, w.beneficiary, w.kind,
		                   w.level, w.amount, w.currency, w.status, w.order_ref, NULL) AS payload
		          FROM rewarded w
		        UNION ALL
		        SELECT c.tenant, 'referral_converted', c.id, 1, 0,
		               pg_catalog.jsonb_build_object('referral_id', c.id, 'program_id', c.program_id,
		                   'referrer', c.referrer, 'referee', c.referee, 'order_ref', c.order_ref,
		                   'converted_at', c.at)
		          FROM conv c) v
		 ORDER BY v.referral_id, v.after, v.id
		RETURNING e.id, e.kind, e.tenant
	), notified AS (
		SELECT pg_catalog.count(pg_catalog.pg_notify('referral_event',
		           pg_catalog.json_build_object('id', e.id, 'kind', e.kind, 'tenant', e.tenant)::text)) AS n
		  FROM events e
	)
	SELECT (SELECT pg_catalog.array_agg(c.pos::int ORDER BY c.pos) FROM conv c), n.n INTO converted, notified
	  FROM notified n;
	RETURN COALESCE(converted, '{}');
END
$$;
COMMENT ON FUNCTION referral._convert_orders(text, bigint[], text[], numeric[], timestamptz[])
	IS 'internal: set-based conversions of a statement''s first orders where no budget, cap, recurring window or milestone applies; returns the positions converted';


-- Messages that would list a whole input name at most an excerpt of it:
CREATE OR REPLACE FUNCTION referral.mark_paid(reward_ids bigint[], reference text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	wanted bigint[];
	not_payable text;
	paid bigint[];
	t record;
BEGIN
	PERFORM referral._require(NULLIF(btrim(reference), '') IS NOT NULL, 'payout reference must not be empty');
	PERFORM referral._require(reward_ids IS NOT NULL AND cardinality(reward_ids) > 0
	                          AND array_position(reward_ids, NULL) IS NULL,
		'reward_ids must be a non-empty array without NULLs');
	wanted := ARRAY(SELECT DISTINCT unnest(reward_ids) ORDER BY 1);

	-- Lock them all first (tenant, then id order; on Citus, row locks are taken
	-- tenant by tenant), then check: all or nothing.
	FOR t IN SELECT DISTINCT w.tenant FROM referral.reward w WHERE w.id = ANY (wanted) ORDER BY 1 LOOP
		PERFORM 1 FROM referral.reward w WHERE w.tenant = t.tenant AND w.id = ANY (wanted) ORDER BY w.id FOR UPDATE;
	END LOOP;
	-- The first ten in the message: a payout file of thousands must not make it huge.
	SELECT string_agg(format('%s (%s)', x.i, x.status), ', ' ORDER BY x.i) FILTER (WHERE x.n <= 10)
	       || CASE WHEN count(*) > 10 THEN format(' and %s more', count(*) - 10) ELSE '' END
	  INTO not_payable
	  FROM (SELECT i, COALESCE(w.status, 'does not exist') AS status, row_number() OVER (ORDER BY i) AS n
	          FROM unnest(wanted) i
	          LEFT JOIN (SELECT w.id, w.status FROM referral.reward w WHERE w.id = ANY (wanted)) w ON w.id = i
	         WHERE w.status IS DISTINCT FROM 'approved') x;
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



-- checkout: the referee's offer and store credit (offer, use_offer, credit_balance,
-- spend_credit, refund_credit; reward_balance.spent; the reversal frees the offer;
-- audit() checks the spends; grant_app grants the checkout functions):
-- The discount a referee gets on a first order (one offer per program and variant).
CREATE SEQUENCE referral.referee_offer_id_seq;
CREATE TABLE referral.referee_offer (
	tenant				text NOT NULL,
	id					bigint NOT NULL DEFAULT pg_catalog.nextval('referral.referee_offer_id_seq'),
	program_id			bigint NOT NULL,	-- no foreign key: TRUNCATE referral.program stays as it was
	percent				numeric NOT NULL CHECK (percent BETWEEN 0 AND 100),
	fixed				numeric NOT NULL CHECK (fixed >= 0),
	cap					numeric CHECK (cap IS NULL OR cap >= 0),
	min_order_amount	numeric NOT NULL CHECK (min_order_amount >= 0),
	valid_for			interval NOT NULL CHECK (valid_for > '0'::interval),
	variant				text,
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, id),
	CHECK (percent > 0 OR fixed > 0)
);
ALTER SEQUENCE referral.referee_offer_id_seq OWNED BY referral.referee_offer.id;
CREATE UNIQUE INDEX referee_offer_one_per_variant ON referral.referee_offer
	(tenant, program_id, COALESCE(variant, ''));
COMMENT ON TABLE referral.referee_offer IS 'the referee''s first-order discount of a program (fixed + percent of the order, cut to cap), valid for valid_for after the redeem; optional A/B variant';
SELECT pg_catalog.pg_extension_config_dump('referral.referee_offer', '');
SELECT pg_catalog.pg_extension_config_dump('referral.referee_offer_id_seq', '');

-- Offers used, one row per use; restored_at is set when the order that used it was
-- refunded, cancelled or deleted, and the offer is then free again.
CREATE SEQUENCE referral.offer_use_id_seq;
CREATE TABLE referral.offer_use (
	tenant			text NOT NULL,
	id				bigint NOT NULL DEFAULT pg_catalog.nextval('referral.offer_use_id_seq'),
	referral_id		bigint NOT NULL,	-- no foreign key, as for reward (referrals are kept)
	offer_id		bigint NOT NULL,
	customer		text NOT NULL,
	order_ref		text NOT NULL,
	order_amount	numeric NOT NULL,
	discount		numeric NOT NULL CHECK (discount > 0),
	currency		text NOT NULL,
	used_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	restored_at		timestamptz,
	PRIMARY KEY (tenant, id)
);
ALTER SEQUENCE referral.offer_use_id_seq OWNED BY referral.offer_use.id;
-- The offer is used once: two checkouts racing insert one row, the other conflicts.
-- The refund of an order finds its use by the same key (the attributed order names
-- its referral).
CREATE UNIQUE INDEX offer_use_once ON referral.offer_use (tenant, referral_id) WHERE restored_at IS NULL;
-- An order never attributed (cancelled before it was paid, or below the program's
-- minimum) has only its id to find its live use by, when it is reversed.
CREATE INDEX offer_use_live_order ON referral.offer_use (tenant, order_ref) WHERE restored_at IS NULL;
COMMENT ON TABLE referral.offer_use IS 'referee offers used at checkout, one row per use (order_ref); restored_at set when that order was reversed';
SELECT pg_catalog.pg_extension_config_dump('referral.offer_use', '');
SELECT pg_catalog.pg_extension_config_dump('referral.offer_use_id_seq', '');

-- Store credit spent at checkout: one row per order and credit reward it drew from;
-- refunded_at is set by refund_credit.
CREATE SEQUENCE referral.credit_spend_id_seq;
CREATE TABLE referral.credit_spend (
	tenant			text NOT NULL,
	id				bigint NOT NULL DEFAULT pg_catalog.nextval('referral.credit_spend_id_seq'),
	customer		text NOT NULL,
	order_ref		text NOT NULL,
	reward_id		bigint NOT NULL,	-- no foreign key, as clawback_of (audit() checks it)
	amount			numeric NOT NULL CHECK (amount > 0),
	currency		text NOT NULL,
	spent_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	refunded_at		timestamptz,
	PRIMARY KEY (tenant, id)
);
ALTER SEQUENCE referral.credit_spend_id_seq OWNED BY referral.credit_spend.id;
CREATE UNIQUE INDEX credit_spend_once ON referral.credit_spend (tenant, order_ref, reward_id) WHERE refunded_at IS NULL;
-- The balance, and what is left of each reward: a reward's spends are its
-- beneficiary's, in its currency (spend_credit writes them so).
CREATE INDEX credit_spend_customer ON referral.credit_spend (tenant, customer, currency) WHERE refunded_at IS NULL;
COMMENT ON TABLE referral.credit_spend IS 'store credit spent at checkout: one row per order and credit reward drawn from; refunded_at set by refund_credit';
SELECT pg_catalog.pg_extension_config_dump('referral.credit_spend', '');
SELECT pg_catalog.pg_extension_config_dump('referral.credit_spend_id_seq', '');

-- Raises 22023 unless the tenant has a program: a typo in a tenant would otherwise
-- read as "nothing to give".  Called only where nothing was found.
CREATE FUNCTION referral._require_tenant(tenant text)
RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM referral.program p WHERE p.tenant = _require_tenant.tenant) THEN
		RAISE EXCEPTION 'tenant % has no referral program', COALESCE(quote_literal(left(tenant, 40)), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Pass the tenant the program was created in (default ''default'').';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._require_tenant(text) IS 'internal: raise 22023 unless the tenant has a program';

-- Whether a key given by the application (a customer key, an order_ref) is usable:
-- not blank, at most 1000 bytes.  An SQL function without SET or STRICT, so that
-- the planner inlines it.
CREATE FUNCTION referral._key_ok(key text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT NULLIF(pg_catalog.btrim(key), '') IS NOT NULL AND pg_catalog.octet_length(key) <= 1000
$$;
COMMENT ON FUNCTION referral._key_ok(text) IS 'internal: whether a key given by the application is not blank and at most 1000 bytes (inlined)';

-- Raises 22023 unless a key given by the application is usable (_key_ok): `name`
-- names it when it is empty, `long_name` when it is too long.
CREATE FUNCTION referral._check_key(key text, name text, long_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF referral._key_ok(key) IS NOT TRUE THEN
		IF NULLIF(btrim(key), '') IS NULL THEN
			RAISE EXCEPTION '% must not be empty', name USING ERRCODE = 'invalid_parameter_value';
		END IF;
		RAISE EXCEPTION '% is too long (% bytes, at most 1000)', long_name, octet_length(key)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._check_key(text, text, text) IS 'internal: reject an empty or oversized key given by the application';

-- Raises 22023 unless an order reference is usable as a key.
CREATE FUNCTION referral._check_order_ref(order_ref text)
RETURNS void
LANGUAGE sql IMMUTABLE
AS $$ SELECT referral._check_key(order_ref, 'order_ref', 'order_ref') $$;
COMMENT ON FUNCTION referral._check_order_ref(text) IS 'internal: reject empty or oversized order references';

-- Raises 22023 unless an amount given at checkout is a finite number, not negative.
CREATE FUNCTION referral._check_amount(name text, amount numeric)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF amount IS NULL OR NOT referral._finite(amount) OR amount < 0 THEN
		RAISE EXCEPTION '% must be a finite number, not negative (got %)', name, COALESCE(amount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION referral._check_amount(text, numeric) IS 'internal: raise 22023 unless an amount is a finite number, not negative';

CREATE FUNCTION referral.add_referee_offer(
	program bigint,
	percent numeric DEFAULT 0,
	fixed numeric DEFAULT 0,
	cap numeric DEFAULT NULL,
	min_order_amount numeric DEFAULT 0,
	valid_for interval DEFAULT '30 days',
	variant text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p referral.program := referral._program(program);
	new_id bigint;
BEGIN
	PERFORM referral._require_finite(ARRAY['percent', 'fixed', 'cap', 'min_order_amount'],
		ARRAY[percent, fixed, cap, min_order_amount]);
	PERFORM referral._require_amount_terms(percent, fixed, cap, 'a referee offer');
	PERFORM referral._require(min_order_amount >= 0,
		format('min_order_amount must not be negative (got %s)', COALESCE(min_order_amount::text, 'NULL')));
	PERFORM referral._require(valid_for > '0'::interval AND isfinite(now() + valid_for),
		format('valid_for must be a positive, finite interval (got %s)', COALESCE(valid_for::text, 'NULL')));
	PERFORM referral._require(variant IS NULL OR EXISTS (
			SELECT 1 FROM referral.variant v WHERE v.program_id = p.id AND v.name = add_referee_offer.variant),
		format('variant %s does not exist in program %s', quote_literal(left(variant, 40)), p.id),
		'Add it first with referral.add_variant().');

	INSERT INTO referral.referee_offer AS o
		(tenant, program_id, percent, fixed, cap, min_order_amount, valid_for, variant)
	VALUES
		(p.tenant, p.id, add_referee_offer.percent, add_referee_offer.fixed, add_referee_offer.cap,
		 add_referee_offer.min_order_amount, add_referee_offer.valid_for, add_referee_offer.variant)
	ON CONFLICT DO NOTHING
	RETURNING o.id INTO new_id;
	IF new_id IS NULL THEN
		RAISE EXCEPTION 'program % already has a referee offer for variant %', p.id, COALESCE(quote_literal(left(variant, 40)), '(none)')
			USING ERRCODE = 'duplicate_object',
			      HINT = 'A program has one referee offer per variant.';
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral.add_referee_offer(bigint, numeric, numeric, numeric, numeric, interval, text)
	IS 'add the referee''s first-order discount to a program (fixed + percent of the order, cut to cap; from min_order_amount; valid for valid_for after the redeem) and return its id';

CREATE FUNCTION referral.offer(customer text, order_amount numeric, tenant text DEFAULT 'default')
RETURNS TABLE (referral_id bigint, discount numeric, currency text, expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r referral.referral;
BEGIN
	PERFORM referral._check_customer(offer.customer);
	PERFORM referral._check_amount('order_amount', offer.order_amount);
	SELECT * INTO r FROM referral.referral x
	 WHERE x.referee = offer.customer AND x.tenant = offer.tenant AND x.reason IS NULL;
	IF NOT FOUND THEN
		PERFORM referral._require_tenant(offer.tenant);
		RETURN;
	END IF;
	IF r.status <> 'pending' OR EXISTS (
		SELECT 1 FROM referral.offer_use u
		 WHERE u.tenant = r.tenant AND u.referral_id = r.id AND u.restored_at IS NULL) THEN
		RETURN;
	END IF;
	-- The referral's offer: its variant's own first, else the variant-less one.  The
	-- minimum is also the program's: an order below it never converts, so that its
	-- refund could not give the offer back.  The discount never exceeds the order.
	-- Written out here and in use_offer (not an SQL function), as Citus plans no
	-- SQL function with parameters.
	RETURN QUERY
	SELECT r.id, o.discount, o.currency, o.expires_at
	  FROM (SELECT LEAST(referral.reward_amount(offer.order_amount, o.percent, o.fixed, o.cap, p.currency),
	                     trunc(offer.order_amount, referral.currency_decimals(p.currency))) AS discount,
	               p.currency, r.created_at + o.valid_for AS expires_at,
	               GREATEST(o.min_order_amount, p.min_order_amount) AS min_order_amount
	          FROM referral.referee_offer o
	          JOIN referral.program p ON p.id = o.program_id AND p.tenant = o.tenant
	         WHERE o.tenant = r.tenant AND o.program_id = r.program_id
	           AND (o.variant IS NULL OR o.variant = r.variant)
	         ORDER BY o.variant IS NULL
	         LIMIT 1) o
	 WHERE o.expires_at > now() AND offer.order_amount >= o.min_order_amount AND o.discount > 0;
END
$$;
COMMENT ON FUNCTION referral.offer(text, numeric, text)
	IS 'the referee''s discount that the checkout may take off an order of this amount: one row while the pending referral''s offer is unused, unexpired and reached; reads only';

CREATE FUNCTION referral.use_offer(customer text, order_ref text, order_amount numeric, tenant text DEFAULT 'default')
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r_id bigint;
	r_tenant text;
	used_ref text;
	used_discount numeric;
	event_id bigint;
BEGIN
	-- The argument checks as one inlined expression; the check functions raise the
	-- error when it fails.
	IF referral._checkout_args_ok(customer, order_ref, order_amount) IS NOT TRUE THEN
		PERFORM referral._check_customer(customer);
		PERFORM referral._check_order_ref(order_ref);
		PERFORM referral._check_amount('order_amount', order_amount);
	END IF;

	-- The referral and its offer, the use and its event in one statement.  A live
	-- use (this order's, or another's, or a concurrent checkout's) makes the insert
	-- conflict on offer_use_once, and then nothing is written.  The referral must
	-- be pending, or converted by this very order (inserted before this call, in
	-- the same transaction).  The offer as in offer().  Every table is the tenant's
	-- (the tenant given), so that Citus routes the statement to its shard.
	WITH x AS (
		SELECT x.id, x.tenant, x.program_id, o.offer_id, o.discount, o.currency,
		       (x.status = 'pending' OR (x.status = 'converted' AND x.converting_order = use_offer.order_ref))
		       AND o.expires_at > now() AND use_offer.order_amount >= o.min_order_amount AND o.discount > 0 AS usable
		  FROM referral.referral x
		  LEFT JOIN LATERAL (
			SELECT o.id AS offer_id,
			       LEAST(referral.reward_amount(use_offer.order_amount, o.percent, o.fixed, o.cap, p.currency),
			             trunc(use_offer.order_amount, referral.currency_decimals(p.currency))) AS discount,
			       p.currency, x.created_at + o.valid_for AS expires_at,
			       GREATEST(o.min_order_amount, p.min_order_amount) AS min_order_amount
			  FROM referral.referee_offer o
			  JOIN referral.program p ON p.id = o.program_id AND p.tenant = o.tenant
			 WHERE o.tenant = use_offer.tenant AND o.program_id = x.program_id
			   AND (o.variant IS NULL OR o.variant = x.variant)
			 ORDER BY o.variant IS NULL
			 LIMIT 1) o ON true
		 WHERE x.referee = use_offer.customer AND x.tenant = use_offer.tenant AND x.reason IS NULL
	), u AS (
		INSERT INTO referral.offer_use AS u
			(tenant, referral_id, offer_id, customer, order_ref, order_amount, discount, currency)
		SELECT use_offer.tenant, x.id, x.offer_id, use_offer.customer, use_offer.order_ref,
		       use_offer.order_amount, x.discount, x.currency
		  FROM x WHERE x.usable
		ON CONFLICT DO NOTHING
		RETURNING u.discount
	), e AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT use_offer.tenant, 'offer_used',
		       jsonb_build_object('referral_id', x.id, 'program_id', x.program_id, 'offer_id', x.offer_id,
		                          'customer', use_offer.customer, 'order_ref', use_offer.order_ref,
		                          'order_amount', use_offer.order_amount, 'discount', u.discount,
		                          'currency', x.currency)
		  FROM u, x
		RETURNING e.id
	)
	SELECT x.id, x.tenant, u.discount, e.id INTO r_id, r_tenant, used_discount, event_id
	  FROM x LEFT JOIN u ON true LEFT JOIN e ON true;
	IF event_id IS NOT NULL THEN
		PERFORM pg_notify('referral_event',
			json_build_object('id', event_id, 'kind', 'offer_used', 'tenant', r_tenant)::text);
		RETURN used_discount;
	END IF;
	IF r_id IS NULL THEN
		PERFORM referral._require_tenant(use_offer.tenant);
		RETURN 0;
	END IF;
	-- Nothing written: this order's live use (a retry, whatever amount it passes)
	-- keeps its discount, another order's gives 0.
	SELECT u.order_ref, u.discount INTO used_ref, used_discount
	  FROM referral.offer_use u
	 WHERE u.tenant = r_tenant AND u.referral_id = r_id AND u.restored_at IS NULL;
	RETURN CASE WHEN used_ref = order_ref THEN used_discount ELSE 0 END;
END
$$;
COMMENT ON FUNCTION referral.use_offer(text, text, numeric, text)
	IS 'burn the referee''s offer for an order and return the discount (0 when none); the same order_ref again returns the same discount, another order 0';

-- Orders reversed (refunded, cancelled, deleted; called by _orders_reversed with the
-- orders attributed to a referral or holding a live offer use): the offers they used
-- are free again.
CREATE FUNCTION referral._offers_restored(tenant text, source text, order_refs text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	notified bigint;
BEGIN
	WITH restored AS (
		-- The use of an order attributed to the referral that used the offer, or of
		-- an order of this source never attributed.
		UPDATE referral.offer_use u SET restored_at = now()
		 WHERE u.tenant = _offers_restored.tenant AND u.order_ref = ANY (order_refs)
		   AND u.restored_at IS NULL
		   AND COALESCE((SELECT a.referral_id = u.referral_id FROM referral.attributed_order a
		                  WHERE a.tenant = u.tenant AND a.order_source = source
		                    AND a.order_ref = u.order_ref), true)
		RETURNING u.*
	), e AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT u.tenant, 'offer_restored',
		       jsonb_build_object('referral_id', u.referral_id, 'offer_id', u.offer_id,
		                          'customer', u.customer, 'order_ref', u.order_ref,
		                          'discount', u.discount, 'currency', u.currency)
		  FROM restored u ORDER BY u.id
		RETURNING e.id, e.kind, e.tenant
	)
	SELECT count(pg_notify('referral_event', json_build_object('id', e.id, 'kind', e.kind, 'tenant', e.tenant)::text))
	  INTO notified FROM e;
END
$$;
COMMENT ON FUNCTION referral._offers_restored(text, text, text[])
	IS 'internal: orders reversed: the referee offers they used are usable again';

-- The currency a credit call means: the one given, else the tenant's only one.
CREATE FUNCTION referral._credit_currency(tenant text, currency text)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
DECLARE
	currencies text[];
BEGIN
	IF currency IS NOT NULL THEN
		RETURN currency;
	END IF;
	currencies := ARRAY(SELECT DISTINCT p.currency FROM referral.program p
	                     WHERE p.tenant = _credit_currency.tenant ORDER BY 1);
	IF cardinality(currencies) = 1 THEN
		RETURN currencies[1];
	END IF;
	PERFORM referral._require_tenant(tenant);
	RAISE EXCEPTION 'tenant % has programs in several currencies (%)', quote_literal(left(tenant, 40)),
		array_to_string(currencies, ', ')
		USING ERRCODE = 'invalid_parameter_value',
		      HINT = 'Pass the currency.';
END
$$;
COMMENT ON FUNCTION referral._credit_currency(text, text) IS 'internal: the given currency, or the tenant''s only one (22023 when it has several or none)';

-- Approved, unspent credit: approved credit rewards and clawbacks of credit, credit
-- rewards paid by being spent (payout_ref 'credit:...'), less every spend not refunded
-- (also those of a reward reversed or clawed back after it was spent, which the
-- customer owes).
CREATE FUNCTION referral._credit_balance(tenant text, customer text, currency text)
RETURNS numeric
LANGUAGE plpgsql STABLE
AS $$
DECLARE
	earned numeric;
	spent numeric;
BEGIN
	-- One table per statement: Citus routes each to the tenant's shard.
	SELECT COALESCE(sum(w.amount), 0) INTO earned FROM referral.reward w
	 WHERE w.tenant = _credit_balance.tenant AND w.beneficiary = _credit_balance.customer
	   AND w.currency = _credit_balance.currency AND w.reward_type = 'credit'
	   AND (w.status = 'approved' OR (w.status = 'paid' AND w.payout_ref LIKE 'credit:%'));
	SELECT COALESCE(sum(s.amount), 0) INTO spent FROM referral.credit_spend s
	 WHERE s.tenant = _credit_balance.tenant AND s.customer = _credit_balance.customer
	   AND s.currency = _credit_balance.currency AND s.refunded_at IS NULL;
	RETURN earned - spent;
END
$$;
COMMENT ON FUNCTION referral._credit_balance(text, text, text) IS 'internal: a customer''s approved, unspent credit in a currency';

CREATE FUNCTION referral.credit_balance(customer text, currency text DEFAULT NULL, tenant text DEFAULT 'default')
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM referral._check_customer(customer);
	RETURN referral._credit_balance(tenant, customer, referral._credit_currency(tenant, currency));
END
$$;
COMMENT ON FUNCTION referral.credit_balance(text, text, text)
	IS 'a customer''s spendable store credit: approved, unspent credit rewards, clawbacks of credit included (may be negative), in the currency (NULL: the tenant''s only one)';

CREATE FUNCTION referral.spend_credit(customer text, amount numeric, order_ref text,
	currency text DEFAULT NULL, tenant text DEFAULT 'default')
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- The generic plans are as good, and planned once.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	cur text := spend_credit.currency;
	spendable bigint[];
	already numeric;
	balance numeric;
	spent_on bigint[];
	spent_amounts numeric[];
	ids bigint[];
	remaining numeric[];
	want numeric;
	take numeric;
	spent numeric := 0;
	take_ids bigint[];
	takes numeric[];
	paid bigint[];
	event_id bigint;
BEGIN
	-- The argument checks as one inlined expression; the check functions raise the
	-- error when it fails.
	IF referral._checkout_args_ok(customer, order_ref, amount) IS NOT TRUE THEN
		PERFORM referral._check_customer(customer);
		PERFORM referral._check_order_ref(order_ref);
		PERFORM referral._check_amount('amount', amount);
	END IF;
	-- Citus plans a statement with parameters over several tables (or a subquery)
	-- only as a custom plan; the SET above ends with the call.
	IF current_setting('citus.version', true) IS NOT NULL THEN
		PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
	END IF;
	IF cur IS NULL THEN
		cur := referral._credit_currency(tenant, NULL);
	END IF;

	-- The customer's spendable rewards, locked in id order (as the ledger locks
	-- rewards): concurrent spends of one customer wait here, and each then reads, in
	-- the statement below, the spends committed before it.
	spendable := ARRAY(SELECT w.id FROM referral.reward w
	                    WHERE w.tenant = spend_credit.tenant AND w.beneficiary = spend_credit.customer
	                      AND w.currency = cur AND w.reward_type = 'credit'
	                      AND w.status = 'approved' AND w.kind <> 'clawback'
	                    ORDER BY w.id FOR UPDATE);

	-- In one statement: the customer's live spends in the currency (what this order
	-- spent before, a retry; their total; which rewards they drew from) and their
	-- credit rewards (the balance, as _credit_balance, and the spendable ones,
	-- oldest approved first).
	SELECT s.already, w.credit - COALESCE(s.total, 0), s.reward_ids, s.amounts, w.ids, w.amounts
	  INTO already, balance, spent_on, spent_amounts, ids, remaining
	  FROM (SELECT sum(s.amount) AS total,
	               sum(s.amount) FILTER (WHERE s.order_ref = spend_credit.order_ref) AS already,
	               array_agg(s.reward_id) AS reward_ids, array_agg(s.amount) AS amounts
	          FROM referral.credit_spend s
	         WHERE s.tenant = spend_credit.tenant AND s.customer = spend_credit.customer
	           AND s.currency = cur AND s.refunded_at IS NULL) s,
	       (SELECT COALESCE(sum(w.amount) FILTER (WHERE w.status = 'approved'
	                                              OR (w.status = 'paid' AND w.payout_ref LIKE 'credit:%')), 0) AS credit,
	               array_agg(w.id) FILTER (WHERE w.id = ANY (spendable)) AS ids,
	               array_agg(w.amount) FILTER (WHERE w.id = ANY (spendable)) AS amounts
	          FROM (SELECT w.id, w.amount, w.status, w.payout_ref FROM referral.reward w
	                 WHERE w.tenant = spend_credit.tenant AND w.beneficiary = spend_credit.customer
	                   AND w.currency = cur AND w.reward_type = 'credit'
	                 ORDER BY w.approved_at, w.id) w) w;
	IF already IS NOT NULL THEN
		RETURN already;
	END IF;
	IF cardinality(spendable) = 0 OR amount = 0 THEN
		IF cardinality(spendable) = 0 AND currency IS NOT NULL THEN
			PERFORM referral._require_tenant(tenant);
		END IF;
		RETURN 0;
	END IF;
	-- In the currency's minor unit, rounded down: never more than asked.
	want := LEAST(trunc(amount, referral.currency_decimals(cur)), GREATEST(balance, 0));
	-- Oldest approved first, each reward up to what is left of it; a reward spent
	-- whole becomes paid.
	FOR i IN 1 .. COALESCE(cardinality(ids), 0) LOOP
		EXIT WHEN spent >= want;
		FOR j IN 1 .. COALESCE(cardinality(spent_on), 0) LOOP
			IF spent_on[j] = ids[i] THEN
				remaining[i] := remaining[i] - spent_amounts[j];
			END IF;
		END LOOP;
		IF remaining[i] > 0 THEN
			take := LEAST(remaining[i], want - spent);
			take_ids := take_ids || ids[i];
			takes := takes || take;
			IF take = remaining[i] THEN
				paid := paid || ids[i];
			END IF;
			spent := spent + take;
		END IF;
	END LOOP;
	IF spent = 0 THEN
		RETURN 0;
	END IF;

	-- One spend from a reward not spent whole (the usual checkout) is one plain
	-- insert; otherwise the spends and the rewards spent whole, by id.
	IF paid IS NULL AND cardinality(take_ids) = 1 THEN
		INSERT INTO referral.credit_spend AS s (tenant, customer, order_ref, reward_id, amount, currency)
		VALUES (spend_credit.tenant, spend_credit.customer, spend_credit.order_ref, take_ids[1], spent, cur);
	ELSE
		IF cardinality(paid) > 1 THEN
			paid := ARRAY(SELECT x FROM unnest(paid) x ORDER BY 1);
		END IF;
		WITH s AS (
			INSERT INTO referral.credit_spend AS s (tenant, customer, order_ref, reward_id, amount, currency)
			SELECT spend_credit.tenant, spend_credit.customer, spend_credit.order_ref, x.id, x.take, cur
			  FROM unnest(take_ids, takes) AS x(id, take)
			 ORDER BY x.id
		)
		UPDATE referral.reward w
		   SET status = 'paid', paid_at = now(), payout_ref = 'credit:' || spend_credit.order_ref
		 WHERE w.tenant = spend_credit.tenant AND w.id = ANY (paid);
	END IF;
	event_id := referral._emit(tenant, 'credit_spent',
		jsonb_build_object('customer', spend_credit.customer, 'order_ref', spend_credit.order_ref,
		                   'amount', spent, 'currency', cur,
		                   'paid_reward_ids', COALESCE(to_jsonb(paid), '[]'::jsonb)));
	RETURN spent;
END
$$;
COMMENT ON FUNCTION referral.spend_credit(text, numeric, text, text, text)
	IS 'spend at most amount of a customer''s store credit on an order, oldest approved first, never more than the balance; returns what was spent; the same order_ref again returns the same figure';

CREATE FUNCTION referral.refund_credit(order_ref text, tenant text DEFAULT 'default')
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	given_back numeric;
	reopened bigint[];
	spender text;
	cur text;
	event_id bigint;
BEGIN
	PERFORM referral._check_order_ref(order_ref);
	-- The rewards first (id order, as spend_credit locks them), then the spends.
	PERFORM 1 FROM referral.reward w
	 WHERE w.tenant = refund_credit.tenant
	   AND w.id IN (SELECT s.reward_id FROM referral.credit_spend s
	                 WHERE s.tenant = refund_credit.tenant AND s.order_ref = refund_credit.order_ref
	                   AND s.refunded_at IS NULL)
	 ORDER BY w.id FOR UPDATE;
	WITH refunded AS (
		UPDATE referral.credit_spend s SET refunded_at = now()
		 WHERE s.tenant = refund_credit.tenant AND s.order_ref = refund_credit.order_ref
		   AND s.refunded_at IS NULL
		RETURNING s.reward_id, s.amount, s.customer, s.currency
	), reopen AS (
		-- A reward paid by being spent is spendable again (unless clawed back since:
		-- then the spend given back offsets the clawback in the balance).
		UPDATE referral.reward w SET status = 'approved', paid_at = NULL, payout_ref = NULL
		 WHERE w.tenant = refund_credit.tenant AND w.id IN (SELECT r.reward_id FROM refunded r)
		   AND w.status = 'paid' AND w.payout_ref LIKE 'credit:%' AND w.reversed_at IS NULL
		RETURNING w.id
	)
	SELECT (SELECT sum(r.amount) FROM refunded r), (SELECT min(r.customer) FROM refunded r),
	       (SELECT min(r.currency) FROM refunded r), (SELECT array_agg(o.id ORDER BY o.id) FROM reopen o)
	  INTO given_back, spender, cur, reopened;
	IF given_back IS NULL THEN
		PERFORM referral._require_tenant(tenant);
		RETURN 0;
	END IF;
	event_id := referral._emit(tenant, 'credit_refunded',
		jsonb_build_object('customer', spender, 'order_ref', order_ref, 'amount', given_back,
		                   'currency', cur, 'reopened_reward_ids', COALESCE(to_jsonb(reopened), '[]'::jsonb)));
	RETURN given_back;
END
$$;
COMMENT ON FUNCTION referral.refund_credit(text, text)
	IS 'give back the store credit an order spent; returns how much (0 when it spent none)';
REVOKE ALL ON TABLE referral.referee_offer, referral.offer_use, referral.credit_spend FROM PUBLIC;
REVOKE ALL ON SEQUENCE referral.referee_offer_id_seq, referral.offer_use_id_seq, referral.credit_spend_id_seq FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
	referral._require_tenant(text),
	referral._key_ok(text),
	referral._check_key(text, text, text),
	referral._check_order_ref(text),
	referral._check_amount(text, numeric),
	referral.add_referee_offer(bigint, numeric, numeric, numeric, numeric, interval, text),
	referral.offer(text, numeric, text),
	referral.use_offer(text, text, numeric, text),
	referral._offers_restored(text, text, text[]),
	referral._credit_currency(text, text),
	referral._credit_balance(text, text, text),
	referral.credit_balance(text, text, text),
	referral.spend_credit(text, numeric, text, text, text),
	referral.refund_credit(text, text)
	FROM PUBLIC;

CREATE OR REPLACE FUNCTION referral._orders_reversed(tenant text, source text, order_refs text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	converted_by bigint[];
	reverted bigint[];
	to_reverse bigint[];
BEGIN
	-- The referrals these orders converted, found first without a lock: a
	-- referral's converting order is an attributed order (converting), which is
	-- how it is found (no index of referral reads the converting order).  Then the
	-- lock order of conversions (_orders_paid): their referrers' codes, the
	-- referrals (checked again under the lock), then their rewards; one event
	-- each, in referral id order.  A statement that refunds one order and pays
	-- another then waits for a concurrent load instead of deadlocking with it.
	SELECT array_agg(x.id ORDER BY x.id) INTO converted_by
	  FROM referral.attributed_order a
	  JOIN referral.referral x ON x.id = a.referral_id
	 WHERE a.tenant = _orders_reversed.tenant AND a.order_source = source
	   AND a.order_ref = ANY (order_refs) AND a.converting
	   AND x.converting_source = source AND x.converting_order = a.order_ref;
	IF converted_by IS NOT NULL THEN
		PERFORM 1 FROM referral.code c
		 WHERE (c.tenant, c.program_id, c.customer) IN
		       (SELECT x.tenant, x.program_id, x.referrer FROM referral.referral x
		         WHERE x.id = ANY (converted_by))
		 ORDER BY c.code FOR UPDATE;
	END IF;
	WITH locked AS (
		SELECT x.id, x.converting_order
		  FROM referral.referral x
		 WHERE x.id = ANY (converted_by)
		   AND x.converting_source = source AND x.converting_order = ANY (order_refs)
		 ORDER BY x.id FOR UPDATE OF x
	), back_to_pending AS (
		UPDATE referral.referral x
		   SET status = 'pending', converted_at = NULL, converting_source = NULL,
		       converting_order = NULL, reverted_at = now()
		  FROM locked l
		 WHERE x.id = l.id
		RETURNING x.id, x.tenant, x.program_id, x.referrer, x.referee, l.converting_order
	), events AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT b.tenant, 'referral_reverted',
		       jsonb_build_object('referral_id', b.id, 'program_id', b.program_id, 'referrer', b.referrer,
		                          'referee', b.referee, 'order_ref', b.converting_order)
		  FROM back_to_pending b ORDER BY b.id
		RETURNING e.id, e.kind, e.tenant
	), notified AS (
		SELECT count(pg_notify('referral_event', json_build_object('id', e.id, 'kind', e.kind, 'tenant', e.tenant)::text))
		  FROM events e
	)
	SELECT (SELECT COALESCE(array_agg(b.id), '{}') FROM back_to_pending b) INTO reverted
	  FROM notified;

	UPDATE referral.attributed_order o SET reversed_at = now()
	 WHERE o.tenant = _orders_reversed.tenant AND o.order_source = source
	   AND o.order_ref = ANY (order_refs) AND o.reversed_at IS NULL;
	PERFORM referral._offers_restored(_orders_reversed.tenant, source, order_refs);

	SELECT array_agg(w.id ORDER BY w.id) INTO to_reverse
	  FROM referral.reward w
	 WHERE (w.tenant = _orders_reversed.tenant AND w.order_source = source
	        AND w.order_ref = ANY (order_refs) AND w.kind IN ('referee', 'referrer'))
	    OR (w.referral_id = ANY (reverted) AND w.kind = 'milestone');
	IF to_reverse IS NOT NULL THEN
		PERFORM referral._reverse_rewards(tenant, to_reverse);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._orders_reversed(text, text, text[])
	IS 'internal: orders refunded, cancelled or deleted: reverse their rewards and conversions';


CREATE OR REPLACE VIEW referral.reward_balance AS
SELECT w.tenant, w.beneficiary AS customer, w.currency,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'pending'), 0) AS pending,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'approved'), 0) AS approved,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'paid'), 0) AS paid,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'reversed'), 0) AS reversed,
       COALESCE((SELECT pg_catalog.sum(s.amount) FROM referral.credit_spend s
                  WHERE s.tenant = w.tenant AND s.customer = w.beneficiary AND s.currency = w.currency
                    AND s.refunded_at IS NULL), 0) AS spent
  FROM referral.reward w
 GROUP BY w.tenant, w.beneficiary, w.currency;
COMMENT ON VIEW referral.reward_balance
	IS 'per tenant, beneficiary and currency, over all programs: reward amounts by status; paid is gross (what was paid out, store credit spent whole included), a clawback counts under its own status (approved, negative, until a payout nets it); spent = store credit spent at checkout, not refunded';

CREATE OR REPLACE FUNCTION referral.grant_app(role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM referral._grant_functions(role, ARRAY[
		'referral.issue_code(bigint, text, referral.referral_code, text, text)',
		'referral.share_link(referral.referral_code, text, text)',
		'referral.record_click(referral.referral_code, text, inet, text, timestamptz)',
		'referral.redeem(referral.referral_code, text, text, inet, text, timestamptz)',
		'referral.offer(text, numeric, text)',
		'referral.use_offer(text, text, numeric, text)',
		'referral.credit_balance(text, text, text)',
		'referral.spend_credit(text, numeric, text, text, text)',
		'referral.refund_credit(text, text)']::regprocedure[]);
	IF to_regprocedure('referral.participant_summary(bigint, text)') IS NOT NULL THEN
		EXECUTE format('GRANT EXECUTE ON FUNCTION referral.participant_summary(bigint, text) TO %s', role);
	END IF;
END
$$;
COMMENT ON FUNCTION referral.grant_app(regrole)
	IS 'grant a role what an application needs: issue_code, share_link, record_click, redeem, participant_summary, and the checkout''s offer, use_offer, credit_balance, spend_credit, refund_credit; no table access';


-- operations and privacy (void, block, hold suspicious rewards, payout batches, export and erasure):
ALTER TABLE referral.program ADD COLUMN hold_suspicious boolean NOT NULL DEFAULT false;
ALTER TABLE referral.code ADD COLUMN forgotten_variant text;
COMMENT ON COLUMN referral.code.forgotten_variant IS 'the A/B variant the holder had when forgotten (referral.forget): the pseudonym would hash to another one';
ALTER TABLE referral.referral ADD COLUMN voided_at timestamptz, ADD COLUMN released_at timestamptz;
ALTER TABLE referral.referral DROP CONSTRAINT referral_reason_check;
-- The redeem rules' reasons, or an operator's own once voided (void_referral).
ALTER TABLE referral.referral ADD CONSTRAINT referral_reason_check
	CHECK (reason IN ('self_referral', 'cycle', 'existing_customer', 'program_inactive', 'daily_limit', 'blocked')
	       OR (voided_at IS NOT NULL AND reason <> ''));
COMMENT ON COLUMN referral.referral.voided_at IS 'when an operator rejected the accepted referral after the fact (void_referral); reason is then the operator''s';
COMMENT ON COLUMN referral.referral.released_at IS 'when an operator released the rewards that a hold_suspicious program held (release)';

-- create_program gains hold_suspicious: a new signature.
DROP FUNCTION referral.create_program(text, text, timestamptz, timestamptz, interval, interval, numeric, interval, int, text, numeric, numeric, int);
CREATE FUNCTION referral.create_program(
	name text,
	tenant text DEFAULT 'default',
	starts_at timestamptz DEFAULT pg_catalog.now(),
	ends_at timestamptz DEFAULT NULL,
	attribution_window interval DEFAULT '30 days',
	hold_period interval DEFAULT '30 days',
	min_order_amount numeric DEFAULT 0,
	recurring_window interval DEFAULT NULL,
	max_depth int DEFAULT 1,
	currency text DEFAULT 'USD',
	budget numeric DEFAULT NULL,
	referrer_cap numeric DEFAULT NULL,
	daily_referral_limit int DEFAULT NULL,
	hold_suspicious boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	new_id bigint;
BEGIN
	PERFORM referral._require(NULLIF(btrim(name), '') IS NOT NULL, 'program name must not be empty');
	PERFORM referral._require(NULLIF(btrim(tenant), '') IS NOT NULL, 'tenant must not be empty');
	PERFORM referral._require_finite(ARRAY['min_order_amount', 'budget', 'referrer_cap'],
		ARRAY[min_order_amount, budget, referrer_cap]);
	PERFORM referral._require(starts_at IS NOT NULL AND isfinite(starts_at), 'starts_at must be a finite time');
	PERFORM referral._require(ends_at IS NULL OR ends_at > starts_at,
		format('program ends (%s) before it starts (%s)', ends_at, starts_at),
		'ends_at must be later than starts_at, or NULL for no end.');
	PERFORM referral._require(attribution_window >= '0'::interval,
		format('attribution_window must not be negative (got %s)', COALESCE(attribution_window::text, 'NULL')));
	PERFORM referral._require(hold_period >= '0'::interval,
		format('hold_period must not be negative (got %s)', COALESCE(hold_period::text, 'NULL')));
	PERFORM referral._require(recurring_window IS NULL OR recurring_window >= '0'::interval,
		format('recurring_window must not be negative (got %s)', recurring_window));
	PERFORM referral._require(min_order_amount >= 0,
		format('min_order_amount must not be negative (got %s)', COALESCE(min_order_amount::text, 'NULL')));
	PERFORM referral._require(max_depth BETWEEN 1 AND 10,
		format('max_depth must be between 1 and 10 (got %s)', COALESCE(max_depth::text, 'NULL')));
	PERFORM referral._require(currency ~ '^[A-Z]{3}$',
		format('currency must be an ISO 4217 code of three upper-case letters (got %L)', referral._excerpt(currency)));
	PERFORM referral._require(budget IS NULL OR budget >= 0,
		format('budget must not be negative (got %s)', budget));
	PERFORM referral._require(referrer_cap IS NULL OR referrer_cap >= 0,
		format('referrer_cap must not be negative (got %s)', referrer_cap));
	PERFORM referral._require(daily_referral_limit IS NULL OR daily_referral_limit > 0,
		format('daily_referral_limit must be positive (got %s)', daily_referral_limit));
	PERFORM referral._require(hold_suspicious IS NOT NULL, 'hold_suspicious must not be NULL');

	INSERT INTO referral.program AS p
		(tenant, name, starts_at, ends_at, attribution_window, hold_period, min_order_amount,
		 recurring_window, max_depth, currency, budget, referrer_cap, daily_referral_limit,
		 hold_suspicious)
	VALUES
		(create_program.tenant, create_program.name, create_program.starts_at,
		 create_program.ends_at, create_program.attribution_window, create_program.hold_period,
		 create_program.min_order_amount, create_program.recurring_window,
		 create_program.max_depth, create_program.currency, create_program.budget,
		 create_program.referrer_cap, create_program.daily_referral_limit,
		 create_program.hold_suspicious)
	ON CONFLICT ON CONSTRAINT program_tenant_name_key DO NOTHING
	RETURNING p.id INTO new_id;
	IF new_id IS NULL THEN
		RAISE EXCEPTION 'program "%" already exists in tenant "%"', referral._excerpt(name), referral._excerpt(tenant)
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Program names are unique per tenant.';
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral.create_program(text, text, timestamptz, timestamptz, interval, interval, numeric, interval, int, text, numeric, numeric, int, boolean)
	IS 'create a referral program and return its id (hold_suspicious: approve_due holds the rewards of suspicious referrals until released)';
REVOKE ALL ON FUNCTION referral.create_program(text, text, timestamptz, timestamptz, interval, interval, numeric, interval, int, text, numeric, numeric, int, boolean) FROM PUBLIC;


-- Blocked customers: their codes are refused at redeem, their rewards stay pending.
CREATE TABLE referral.block (
	tenant		text NOT NULL,
	customer	text NOT NULL,
	reason		text NOT NULL CHECK (reason <> ''),
	blocked_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, customer)
);
COMMENT ON TABLE referral.block IS 'blocked customers (referral.block): refused at redeem, rewards held pending';
SELECT pg_catalog.pg_extension_config_dump('referral.block', '');

CREATE VIEW referral.blocked AS
SELECT b.tenant, b.customer, b.reason, b.blocked_at FROM referral.block b;
COMMENT ON VIEW referral.blocked IS 'customers blocked by an operator, with the reason and when';

-- Customers erased by forget(): the pseudonym that replaced the key, and the key's
-- keyed hash, by which audit() recognises the orders of a forgotten customer.
CREATE TABLE referral.forgotten (
	tenant			text NOT NULL,
	pseudonym		text NOT NULL,
	key_hash		bytea NOT NULL,
	forgotten_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, pseudonym)
);
CREATE INDEX forgotten_key_hash ON referral.forgotten (tenant, key_hash);
COMMENT ON TABLE referral.forgotten IS 'customers erased by referral.forget: pseudonym and keyed hash of the old key (never the key)';
SELECT pg_catalog.pg_extension_config_dump('referral.forgotten', '');

-- The text a customer key is hashed from: the tenant, length-prefixed so that no
-- (tenant, key) pair reads as another.
CREATE FUNCTION referral._customer_ref(tenant text, customer text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
	SELECT pg_catalog.octet_length(tenant)::text || ':' || tenant || ':' || customer
$$;
COMMENT ON FUNCTION referral._customer_ref(text, text) IS 'internal: tenant and customer key as one text, for the keyed hash of a forgotten key';

CREATE FUNCTION referral.grant_operator(role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM referral._grant_functions(role, ARRAY[
		'referral.approve_due(timestamptz)',
		'referral.mark_paid(bigint[], text)',
		'referral.void_referral(bigint, text)',
		'referral.block(text, text, text)',
		'referral.unblock(text, text)',
		'referral.release(bigint)',
		'referral.payout_batch(text, numeric, text, text)',
		'referral.export(text, text)',
		'referral.forget(text, text)',
		'referral.audit(bigint)']::regprocedure[]);
	EXECUTE format('GRANT SELECT ON referral.blocked, referral.suspicious_referrals TO %s', role);
END
$$;
COMMENT ON FUNCTION referral.grant_operator(regrole)
	IS 'grant a role what operations need: approve_due, mark_paid, void_referral, block, unblock, release, payout_batch, export, forget, audit, and the blocked and suspicious_referrals views';

-- The referral of an id, locked (FOR UPDATE), or SQLSTATE RF004 naming the unknown
-- id.  Its tenant, which never changes, is read first: the locking statement names
-- it, as every statement of the callers does, so that on Citus it runs on the
-- tenant's shard.
CREATE FUNCTION referral._lock_referral(referral_id bigint)
RETURNS referral.referral
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	t text;
	r referral.referral;
BEGIN
	SELECT x.tenant INTO t FROM referral.referral x WHERE x.id = _lock_referral.referral_id;
	SELECT * INTO r FROM referral.referral x WHERE x.id = _lock_referral.referral_id AND x.tenant = t FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'referral % does not exist', COALESCE(referral_id::text, 'NULL')
			USING ERRCODE = 'RF004', HINT = 'Referral ids are in referral.referral.';
	END IF;
	RETURN r;
END
$$;
COMMENT ON FUNCTION referral._lock_referral(bigint) IS 'internal: the referral of an id, locked, or RF004 naming an unknown id';

-- Raises 22023 unless an operator's reason is given and short.
CREATE FUNCTION referral._check_reason(reason text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	PERFORM referral._require(NULLIF(btrim(reason), '') IS NOT NULL, 'reason must not be empty');
	PERFORM referral._require(char_length(reason) <= 200,
		format('reason is too long (%s characters, at most 200)', char_length(reason)));
END
$$;
COMMENT ON FUNCTION referral._check_reason(text) IS 'internal: reject an empty or oversized operator reason';

-- Takes the member `child` (and its subtree) from below its parent: it becomes a
-- root.  Callers hold its tree's lock.
CREATE FUNCTION referral._detach(child referral.member)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	IF cardinality(child.path) = 1 THEN
		RETURN;
	END IF;
	-- No subscript as a whole new value: Citus 13 crashes deparsing an UPDATE whose
	-- SET value is one.
	UPDATE referral.member x
	   SET path = '{}'::bigint[] || x.path[cardinality(child.path):],
	       ancestors = trim_array(x.ancestors, cardinality(child.ancestors))
	 WHERE x.tenant = child.tenant AND x.path >= child.path
	   AND x.path < child.path || 9223372036854775807::bigint;
END
$$;
COMMENT ON FUNCTION referral._detach(referral.member) IS 'internal: take a member and its subtree from below its parent (the inverse of _attach)';

CREATE FUNCTION referral.void_referral(referral_id bigint, reason text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r referral.referral;
	trees record;
	to_reverse bigint[];
	changed bigint;
BEGIN
	PERFORM referral._check_reason(reason);
	-- The referral first, as the order triggers lock it: an order of the referee
	-- waits, and then sees it rejected.
	r := referral._lock_referral(void_referral.referral_id);
	IF r.status = 'rejected' THEN
		RAISE EXCEPTION 'referral % is already rejected (%)', r.id, r.reason
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Only accepted (pending or converted) referrals can be voided.';
	END IF;

	-- Its chain link goes: the referee (and whoever they referred) becomes a root.
	SELECT t.a_member, t.b_member INTO trees FROM referral._lock_trees(r.tenant, r.referrer, r.referee) t;
	IF (trees.b_member).path[cardinality((trees.b_member).path) - 1] = (trees.a_member).id THEN
		PERFORM referral._detach(trees.b_member);
	END IF;

	-- Its rewards, as a refund reverses them: pending and approved ones reversed,
	-- paid ones clawed back (those not clawed back in full yet count).
	SELECT array_agg(w.id ORDER BY w.id),
	       count(*) FILTER (WHERE w.status IN ('pending', 'approved')
	                           OR (w.status = 'paid' AND w.amount + COALESCE(
	                                   (SELECT sum(c.amount) FROM referral.reward c
	                                     WHERE c.tenant = r.tenant AND c.clawback_of = w.id
	                                       AND c.kind = 'clawback'), 0) > 0))
	  INTO to_reverse, changed
	  FROM referral.reward w
	 WHERE w.tenant = r.tenant AND w.referral_id = r.id AND w.kind <> 'clawback' AND w.status <> 'reversed';
	IF to_reverse IS NOT NULL THEN
		PERFORM referral._reverse_rewards(r.tenant, to_reverse);
	END IF;
	UPDATE referral.attributed_order o SET reversed_at = now()
	 WHERE o.tenant = r.tenant AND o.referral_id = r.id AND o.reversed_at IS NULL;

	UPDATE referral.referral x
	   SET status = 'rejected', reason = void_referral.reason, voided_at = now(),
	       converted_at = NULL, converting_source = NULL, converting_order = NULL
	 WHERE x.tenant = r.tenant AND x.id = r.id;
	PERFORM referral._emit(r.tenant, 'referral_voided',
		jsonb_build_object('referral_id', r.id, 'program_id', r.program_id, 'referrer', r.referrer,
		                   'referee', r.referee, 'reason', void_referral.reason,
		                   'rewards_changed', COALESCE(changed, 0)));
	RETURN COALESCE(changed, 0);
END
$$;
COMMENT ON FUNCTION referral.void_referral(bigint, text)
	IS 'reject an accepted referral after the fact: its rewards reversed (paid ones clawed back), its chain link removed; returns how many rewards changed';

CREATE FUNCTION referral.block(customer text, reason text, tenant text DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM referral._check_customer(customer);
	PERFORM referral._require(NULLIF(btrim(tenant), '') IS NOT NULL, 'tenant must not be empty');
	PERFORM referral._check_reason(reason);
	INSERT INTO referral.block AS b (tenant, customer, reason)
	VALUES (block.tenant, block.customer, block.reason)
	ON CONFLICT ON CONSTRAINT block_pkey DO UPDATE SET reason = excluded.reason;
	PERFORM referral._emit(block.tenant, 'customer_blocked',
		jsonb_build_object('customer', block.customer, 'reason', block.reason));
END
$$;
COMMENT ON FUNCTION referral.block(text, text, text)
	IS 'block a customer: their codes are refused at redeem (reason blocked) and approve_due leaves their rewards pending';

CREATE FUNCTION referral.unblock(customer text, tenant text DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM referral.block b WHERE b.tenant = unblock.tenant AND b.customer = unblock.customer;
	IF FOUND THEN
		PERFORM referral._emit(unblock.tenant, 'customer_unblocked',
			jsonb_build_object('customer', unblock.customer));
	END IF;
END
$$;
COMMENT ON FUNCTION referral.unblock(text, text)
	IS 'unblock a customer (nothing happens for one not blocked)';

-- The suspicious referrals that approve_due holds: those of programs with
-- hold_suspicious, not released.
CREATE FUNCTION referral._held_referrals()
RETURNS bigint[]
LANGUAGE sql STABLE
AS $$
	SELECT COALESCE(array_agg(DISTINCT s.referral_id), '{}')
	  FROM referral.suspicious_referrals s
	  JOIN referral.program p ON p.id = s.program_id
	  JOIN referral.referral r ON r.id = s.referral_id
	 WHERE p.hold_suspicious AND r.released_at IS NULL
$$;
COMMENT ON FUNCTION referral._held_referrals() IS 'internal: ids of the suspicious referrals whose rewards approve_due holds';

CREATE FUNCTION referral.release(referral_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r referral.referral;
	freed bigint := 0;
BEGIN
	r := referral._lock_referral(release.referral_id);
	IF r.released_at IS NOT NULL THEN
		RETURN 0;
	END IF;
	IF r.id = ANY (referral._held_referrals()) THEN
		SELECT count(*) INTO freed FROM referral.reward w
		 WHERE w.tenant = r.tenant AND w.referral_id = r.id AND w.status = 'pending';
	END IF;
	UPDATE referral.referral x SET released_at = now() WHERE x.tenant = r.tenant AND x.id = r.id;
	PERFORM referral._emit(r.tenant, 'referral_released',
		jsonb_build_object('referral_id', r.id, 'program_id', r.program_id, 'referrer', r.referrer,
		                   'referee', r.referee, 'rewards_freed', freed));
	RETURN freed;
END
$$;
COMMENT ON FUNCTION referral.release(bigint)
	IS 'release a suspicious referral that its program holds: approve_due treats its rewards as usual from now on; returns how many pending rewards it freed';

CREATE FUNCTION referral.payout_batch(currency text, min_amount numeric DEFAULT 0,
	reward_type text DEFAULT 'cash', tenant text DEFAULT 'default')
RETURNS TABLE (beneficiary text, amount numeric, reward_ids bigint[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM referral._require(currency ~ '^[A-Z]{3}$',
		format('currency must be an ISO 4217 code of three upper-case letters (got %L)', left(currency, 20)));
	PERFORM referral._require_finite(ARRAY['min_amount'], ARRAY[min_amount]);
	PERFORM referral._require(min_amount >= 0,
		format('min_amount must not be negative (got %s)', COALESCE(min_amount::text, 'NULL')));
	PERFORM referral._require(reward_type IN ('credit', 'discount', 'cash', 'points', 'product'),
		format('unknown reward_type %L', left(reward_type, 20)),
		'reward_type is one of credit, discount, cash, points, product.');
	RETURN QUERY
	SELECT w.beneficiary, sum(w.amount), array_agg(w.id ORDER BY w.id)
	  FROM referral.reward w
	 WHERE w.tenant = payout_batch.tenant AND w.currency = payout_batch.currency
	   AND w.reward_type = payout_batch.reward_type AND w.status = 'approved'
	   AND NOT EXISTS (SELECT 1 FROM referral.block b
	                    WHERE b.tenant = w.tenant AND b.customer = w.beneficiary)
	 GROUP BY w.beneficiary
	HAVING sum(w.amount) > 0 AND sum(w.amount) >= payout_batch.min_amount
	 ORDER BY w.beneficiary;
END
$$;
COMMENT ON FUNCTION referral.payout_batch(text, numeric, text, text)
	IS 'per beneficiary, the approved rewards of a type and currency (clawbacks netted) whose positive total reaches min_amount, blocked customers left out; reads only';

-- Events that name a customer, in any of the payload fields that hold customer keys.
CREATE FUNCTION referral._names_customer(payload jsonb, customer text)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
	SELECT payload->>'referrer' = customer OR payload->>'referee' = customer
	    OR payload->>'beneficiary' = customer OR payload->>'customer' = customer
$$;
COMMENT ON FUNCTION referral._names_customer(jsonb, text) IS 'internal: whether an event payload names the customer (referrer, referee, beneficiary or customer)';

CREATE FUNCTION referral.export(customer text, tenant text DEFAULT 'default')
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	PERFORM referral._check_customer(export.customer);
	RETURN jsonb_build_object(
		'tenant', export.tenant,
		'customer', export.customer,
		'codes', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('code', c.code::text, 'program_id', c.program_id,
			                                    'program', p.name, 'vanity', c.vanity,
			                                    'email_fingerprint', c.email_hash IS NOT NULL,
			                                    'device_fingerprint', c.device_hash IS NOT NULL,
			                                    'created_at', c.created_at) ORDER BY c.created_at, c.code::text)
			  FROM referral.code c JOIN referral.program p ON p.id = c.program_id
			 WHERE c.tenant = export.tenant AND c.customer = export.customer), '[]'),
		'clicks', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('id', k.id, 'code', k.code::text, 'channel', k.channel,
			                                    'user_agent', k.user_agent, 'at', k.at) ORDER BY k.id)
			  FROM referral.click k
			  JOIN referral.code c ON c.tenant = k.tenant AND c.code OPERATOR(referral.=) k.code
			 WHERE c.tenant = export.tenant AND c.customer = export.customer), '[]'),
		'referrals_as_referrer', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('id', r.id, 'program_id', r.program_id, 'referee', r.referee,
			                                    'code', r.code::text, 'status', r.status, 'reason', r.reason,
			                                    'variant', r.variant, 'created_at', r.created_at,
			                                    'converted_at', r.converted_at) ORDER BY r.id)
			  FROM referral.referral r
			 WHERE r.tenant = export.tenant AND r.referrer = export.customer), '[]'),
		'referrals_as_referee', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('id', r.id, 'program_id', r.program_id, 'referrer', r.referrer,
			                                    'code', r.code::text, 'status', r.status, 'reason', r.reason,
			                                    'variant', r.variant, 'created_at', r.created_at,
			                                    'converted_at', r.converted_at,
			                                    'email_fingerprint', r.email_hash IS NOT NULL,
			                                    'ip_fingerprint', r.ip_hash IS NOT NULL,
			                                    'device_fingerprint', r.device_hash IS NOT NULL) ORDER BY r.id)
			  FROM referral.referral r
			 WHERE r.tenant = export.tenant AND r.referee = export.customer), '[]'),
		'rewards', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('id', w.id, 'program_id', w.program_id,
			                                    'referral_id', w.referral_id, 'order_ref', w.order_ref,
			                                    'level', w.level, 'kind', w.kind, 'reward_type', w.reward_type,
			                                    'amount', w.amount, 'currency', w.currency, 'status', w.status,
			                                    'created_at', w.created_at, 'approved_at', w.approved_at,
			                                    'paid_at', w.paid_at, 'payout_ref', w.payout_ref) ORDER BY w.id)
			  FROM referral.reward w
			 WHERE w.tenant = export.tenant AND w.beneficiary = export.customer), '[]'),
		'offers_used', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('referral_id', u.referral_id, 'order_ref', u.order_ref,
			                                    'order_amount', u.order_amount, 'discount', u.discount,
			                                    'currency', u.currency, 'used_at', u.used_at,
			                                    'restored_at', u.restored_at) ORDER BY u.id)
			  FROM referral.offer_use u
			 WHERE u.tenant = export.tenant AND u.customer = export.customer), '[]'),
		'credit_spends', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('order_ref', x.order_ref, 'reward_id', x.reward_id,
			                                    'amount', x.amount, 'currency', x.currency,
			                                    'spent_at', x.spent_at, 'refunded_at', x.refunded_at) ORDER BY x.id)
			  FROM referral.credit_spend x
			 WHERE x.tenant = export.tenant AND x.customer = export.customer), '[]'),
		'blocked', (SELECT jsonb_build_object('reason', b.reason, 'blocked_at', b.blocked_at)
		              FROM referral.block b
		             WHERE b.tenant = export.tenant AND b.customer = export.customer),
		'events', COALESCE((
			SELECT jsonb_agg(jsonb_build_object('id', e.id, 'at', e.at, 'kind', e.kind, 'payload', e.payload)
			                 ORDER BY e.id)
			  FROM referral.event e
			 WHERE e.tenant = export.tenant AND referral._names_customer(e.payload, export.customer)), '[]'));
END
$$;
COMMENT ON FUNCTION referral.export(text, text)
	IS 'everything referral holds about one customer (codes, clicks on them, referrals both ways, rewards, block, events naming them), for an access request; fingerprints only as whether one is held';

CREATE FUNCTION referral.forget(customer text, tenant text DEFAULT 'default')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
	hashed bytea;
	pseudo text;
	m referral.member;
	programs bigint[];
	variants text[];
	changed bigint := 0;
	n bigint;
BEGIN
	PERFORM referral._check_customer(forget.customer);
	PERFORM referral._require(NULLIF(btrim(forget.tenant), '') IS NOT NULL, 'tenant must not be empty');
	hashed := referral._fingerprint((referral._secret()).fingerprint_key, 'customer',
	                                  referral._customer_ref(forget.tenant, forget.customer));
	-- A customer forgotten before who came back gets a pseudonym of its own, so
	-- that the rows of both lives never collide in a unique key.
	pseudo := 'forgotten-' || encode(substr(hashed, 1, 16), 'hex')
	             || COALESCE('-' || NULLIF((SELECT count(*) + 1 FROM referral.forgotten f
	                                         WHERE f.tenant = forget.tenant AND f.key_hash = hashed), 1)::text, '');

	-- Locks, in the order redeem and the order triggers take them: the customer's
	-- chain tree (redeem), the codes of the customer and of their downline (a
	-- conversion below them locks its referrer's code before the referral, and
	-- before it reads the upline that pays them), then their referrals both ways.
	-- Every statement after sees what a transaction we waited for wrote.
	SELECT * INTO m FROM referral.member x WHERE x.tenant = forget.tenant AND x.customer = forget.customer;
	IF FOUND THEN
		PERFORM referral._lock_trees(forget.tenant, forget.customer, forget.customer);
		SELECT * INTO STRICT m FROM referral.member x WHERE x.tenant = forget.tenant AND x.id = m.id;
	END IF;
	PERFORM 1 FROM referral.code c
	 WHERE c.tenant = forget.tenant
	   AND (c.customer = forget.customer
	        OR (m.id IS NOT NULL AND c.customer IN (
	            SELECT x.customer FROM referral.member x
	             WHERE x.path > m.path AND x.path < m.path || 9223372036854775807::bigint
	               AND x.tenant = forget.tenant)))
	 ORDER BY c.code FOR UPDATE;
	PERFORM 1 FROM referral.referral r
	 WHERE r.tenant = forget.tenant AND (r.referee = forget.customer OR r.referrer = forget.customer)
	 ORDER BY r.id FOR UPDATE;
	PERFORM 1 FROM referral.reward w
	 WHERE w.tenant = forget.tenant AND w.beneficiary = forget.customer
	 ORDER BY w.id FOR UPDATE;

	-- Clicks on their codes lose their user agents; then the codes lose the key
	-- and the fingerprints, keeping the variant the key hashed to (one code per
	-- program; the variants computed here, as Citus takes no function of a column
	-- that is not immutable in a distributed UPDATE).
	programs := ARRAY(SELECT c.program_id FROM referral.code c
	                   WHERE c.tenant = forget.tenant AND c.customer = forget.customer);
	variants := ARRAY(SELECT referral.variant_of(p.id, forget.customer)
	                    FROM unnest(programs) WITH ORDINALITY p(id, n) ORDER BY p.n);
	UPDATE referral.click k SET user_agent = NULL
	  FROM referral.code c
	 WHERE c.tenant = forget.tenant AND c.customer = forget.customer
	   AND k.tenant = forget.tenant AND k.code OPERATOR(referral.=) c.code AND k.user_agent IS NOT NULL;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
	UPDATE referral.code c
	   SET customer = pseudo, email_hash = NULL, device_hash = NULL,
	       forgotten_variant = COALESCE(c.forgotten_variant, variants[array_position(programs, c.program_id)])
	 WHERE c.tenant = forget.tenant AND c.customer = forget.customer;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	UPDATE referral.referral r
	   SET referrer = CASE WHEN r.referrer = forget.customer THEN pseudo ELSE r.referrer END,
	       referee = CASE WHEN r.referee = forget.customer THEN pseudo ELSE r.referee END,
	       email_hash = CASE WHEN r.referee = forget.customer THEN NULL ELSE r.email_hash END,
	       ip_hash = CASE WHEN r.referee = forget.customer THEN NULL ELSE r.ip_hash END,
	       device_hash = CASE WHEN r.referee = forget.customer THEN NULL ELSE r.device_hash END
	 WHERE r.tenant = forget.tenant AND (r.referee = forget.customer OR r.referrer = forget.customer);
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	UPDATE referral.reward w SET beneficiary = pseudo
	 WHERE w.tenant = forget.tenant AND w.beneficiary = forget.customer;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	IF m.id IS NOT NULL THEN
		UPDATE referral.member x
		   SET customer = CASE WHEN x.id = m.id THEN pseudo ELSE x.customer END,
		       ancestors = array_replace(x.ancestors, forget.customer, pseudo)
		 WHERE x.tenant = forget.tenant AND x.path >= m.path AND x.path < m.path || 9223372036854775807::bigint;
		GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
	END IF;

	UPDATE referral.block b SET customer = pseudo
	 WHERE b.tenant = forget.tenant AND b.customer = forget.customer;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	UPDATE referral.offer_use u SET customer = pseudo
	 WHERE u.tenant = forget.tenant AND u.customer = forget.customer;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
	UPDATE referral.credit_spend x SET customer = pseudo
	 WHERE x.tenant = forget.tenant AND x.customer = forget.customer;
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	UPDATE referral.event e
	   SET payload = (SELECT jsonb_object_agg(f.key, CASE WHEN f.value = to_jsonb(forget.customer)
	                                                      THEN to_jsonb(pseudo) ELSE f.value END)
	                    FROM jsonb_each(e.payload) f)
	 WHERE e.tenant = forget.tenant AND referral._names_customer(e.payload, forget.customer);
	GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;

	IF changed = 0 THEN
		RETURN 0;	-- nothing held about this key (or forgotten already)
	END IF;
	INSERT INTO referral.forgotten (tenant, pseudonym, key_hash)
	VALUES (forget.tenant, pseudo, hashed);
	-- The pseudonym's codes earn nothing more: refused at redeem, rewards held.
	INSERT INTO referral.block AS b (tenant, customer, reason)
	VALUES (forget.tenant, pseudo, 'forgotten')
	ON CONFLICT ON CONSTRAINT block_pkey DO NOTHING;
	PERFORM referral._emit(forget.tenant, 'customer_forgotten',
		jsonb_build_object('pseudonym', pseudo, 'rows_changed', changed));
	RETURN changed;
END
$$;
COMMENT ON FUNCTION referral.forget(text, text)
	IS 'erase a customer: the key replaced everywhere by a pseudonym derived from the database secret, fingerprints deleted, sums and chains kept; returns the rows changed (0 when nothing is held)';

CREATE OR REPLACE VIEW referral._code_variant AS
SELECT c.tenant, c.program_id, c.customer, c.code, COALESCE(c.forgotten_variant, s.name) AS variant
  FROM (SELECT k.tenant, k.program_id, k.customer, k.code, k.forgotten_variant,
               -- no hashing in programs without variants, nor for a forgotten holder
               CASE WHEN t.total IS NOT NULL AND k.forgotten_variant IS NULL
                    THEN ('x' || pg_catalog.substr(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                              k.program_id::text || ':' || k.customer, 'UTF8')), 'hex'), 1, 15))::bit(60)::bigint
                         % t.total
               END AS slot
          FROM referral.code k
          LEFT JOIN (SELECT v.program_id, pg_catalog.sum(v.weight) AS total
                       FROM referral.variant v
                      GROUP BY v.program_id) t ON t.program_id = k.program_id) c
  LEFT JOIN (SELECT v.program_id, v.name, v.weight,
                    pg_catalog.sum(v.weight) OVER (PARTITION BY v.program_id ORDER BY v.id) AS upto
               FROM referral.variant v) s
    ON s.program_id = c.program_id AND c.slot >= s.upto - s.weight AND c.slot < s.upto;


CREATE OR REPLACE FUNCTION referral.approve_due(at timestamptz DEFAULT pg_catalog.now())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	approved bigint[] := '{}';
	held bigint[] := '{}';
	t record;
BEGIN
	PERFORM referral._require(at IS NOT NULL, 'at must not be NULL');
	-- Held: the rewards of blocked beneficiaries, and of suspicious referrals not
	-- released in programs that hold them (the view is read only when one does).
	IF EXISTS (SELECT 1 FROM referral.program p WHERE p.hold_suspicious) THEN
		held := referral._held_referrals();
	END IF;
	-- Tenant by tenant: on Citus each statement then runs on one tenant's shard,
	-- where its row locks can be taken.
	FOR t IN SELECT DISTINCT w.tenant FROM referral.reward w WHERE w.status = 'pending' ORDER BY 1 LOOP
		WITH due AS (
			SELECT w.id FROM referral.reward w
			  JOIN referral.program p ON p.id = w.program_id
			 WHERE w.tenant = t.tenant
			   AND w.status = 'pending' AND w.created_at + p.hold_period < approve_due.at
			   AND w.referral_id <> ALL (held)
			   AND NOT EXISTS (SELECT 1 FROM referral.block b
			                    WHERE b.tenant = t.tenant AND b.customer = w.beneficiary)
			 ORDER BY w.id
			   FOR UPDATE OF w SKIP LOCKED
		), upd AS (
			UPDATE referral.reward w SET status = 'approved', approved_at = approve_due.at
			  FROM due WHERE w.tenant = t.tenant AND w.id = due.id AND w.status = 'pending'
			RETURNING w.id
		)
		SELECT approved || array_agg(upd.id) INTO approved FROM upd;
	END LOOP;
	IF cardinality(approved) = 0 THEN
		RETURN 0;
	END IF;
	PERFORM referral._emit_rewards('reward_approved', approved);
	RETURN cardinality(approved);
END
$$;
COMMENT ON FUNCTION referral.approve_due(timestamptz)
	IS 'approve pending rewards whose hold period has passed at the given time, except those of blocked customers and of held suspicious referrals; returns how many';


REVOKE ALL ON referral.block, referral.blocked, referral.forgotten FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION referral._customer_ref(text, text), referral.grant_operator(regrole),
	referral._lock_referral(bigint), referral._check_reason(text), referral._detach(referral.member),
	referral.void_referral(bigint, text), referral.block(text, text, text), referral.unblock(text, text),
	referral._held_referrals(), referral.release(bigint), referral.payout_batch(text, numeric, text, text),
	referral._names_customer(jsonb, text), referral.export(text, text), referral.forget(text, text)
	FROM PUBLIC;

-- redeem refuses a time more than 10 years ahead:
CREATE OR REPLACE FUNCTION referral.redeem(
	code referral.referral_code,
	customer text,
	email text DEFAULT NULL,
	ip inet DEFAULT NULL,
	device text DEFAULT NULL,
	at timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (referral_id bigint, status text, reason text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	c referral.code := referral._code(redeem.code);
	p referral.program := referral._program(c.program_id);
	email_h bytea := referral._hash('email', redeem.email);
	device_h bytea := referral._hash('device', redeem.device);
	ip_h bytea := referral._hash('ip', host(redeem.ip));
	existing referral.referral;
	referrer_m referral.member;
	referee_m referral.member;
	trees record;
	rule text;
	new_id bigint;
	new_status text;
	day_start timestamptz;
BEGIN
	PERFORM referral._check_customer(redeem.customer);
	PERFORM referral._require(redeem.at IS NOT NULL AND isfinite(redeem.at), 'redeem time must be a finite time');
	-- A referral timed after its orders never converts, and it holds the customer's
	-- one accepted referral: a time years ahead is a unit mistake, not a plan.
	PERFORM referral._require(redeem.at <= now() + interval '10 years',
		format('redeem time %s is more than 10 years ahead', redeem.at),
		'Pass the time of the sign-up (at defaults to now()).');

	-- Both customers' trees stay locked to the end of the transaction: the cycle and
	-- daily-limit rules read them, and at most one accepted referral is inserted.
	SELECT t.a_member, t.b_member INTO trees
	  FROM referral._lock_trees(c.tenant, c.customer, redeem.customer) t;
	referrer_m := trees.a_member;
	referee_m := trees.b_member;

	-- A customer forgotten (referral.forget) while we waited for the trees: the code
	-- or a member now names the pseudonym.  Going on would write the old key again.
	IF referrer_m.customer <> c.customer OR referee_m.customer <> redeem.customer
	   OR NOT EXISTS (SELECT 1 FROM referral.code k
	                   WHERE k.code OPERATOR(referral.=) c.code AND k.customer = c.customer) THEN
		RAISE EXCEPTION 'a customer of this redeem was forgotten concurrently'
			USING ERRCODE = 'serialization_failure', HINT = 'Retry the transaction.';
	END IF;

	SELECT * INTO existing FROM referral.referral r
	 WHERE r.tenant = c.tenant AND r.referee = redeem.customer AND r.status <> 'rejected';
	IF FOUND THEN
		RETURN QUERY SELECT existing.id, existing.status,
			CASE WHEN existing.code OPERATOR(referral.<>) c.code THEN 'already_referred' END;
		RETURN;
	END IF;

	IF EXISTS (SELECT 1 FROM referral.block b
	            WHERE b.tenant = c.tenant AND b.customer IN (c.customer, redeem.customer)) THEN
		rule := 'blocked';
	ELSIF redeem.at < p.starts_at OR redeem.at >= p.ends_at THEN
		rule := 'program_inactive';
	ELSIF redeem.customer = c.customer
	   OR email_h = c.email_hash
	   OR device_h = c.device_hash THEN
		rule := 'self_referral';
	ELSIF referee_m.id = ANY (referrer_m.path) THEN
		rule := 'cycle';
	ELSIF referral._has_orders(c.tenant, redeem.customer) THEN
		rule := 'existing_customer';
	ELSIF p.daily_referral_limit IS NOT NULL THEN
		day_start := date_trunc('day', redeem.at);
		IF (SELECT count(*) FROM referral.referral r
		     WHERE r.tenant = c.tenant AND r.referrer = c.customer AND r.program_id = p.id
		       AND r.status <> 'rejected'
		       AND r.created_at >= day_start AND r.created_at < day_start + '1 day'::interval)
		   >= p.daily_referral_limit THEN
			rule := 'daily_limit';
		END IF;
	END IF;

	new_status := CASE WHEN rule IS NULL THEN 'pending' ELSE 'rejected' END;
	INSERT INTO referral.referral AS r
		(tenant, program_id, referrer, referee, code, status, reason, variant,
		 email_hash, ip_hash, device_hash, created_at)
	VALUES
		(c.tenant, p.id, c.customer, redeem.customer, c.code, new_status, rule,
		 referral.variant_of(p.id, c.customer), email_h, ip_h, device_h, redeem.at)
	RETURNING r.id INTO new_id;

	-- A first order that began after the check above and before this insert saw no
	-- referral; with the pending referral in place, look again (an order still in
	-- progress is waited for, and one that commits makes the referee existing).
	IF rule IS NULL AND referral._has_orders(c.tenant, redeem.customer) THEN
		rule := 'existing_customer';
		new_status := 'rejected';
		UPDATE referral.referral r SET status = new_status, reason = rule WHERE r.id = new_id;
	END IF;

	IF rule IS NULL THEN
		PERFORM referral._attach(referrer_m, referee_m);
	END IF;
	PERFORM referral._emit(c.tenant,
		CASE WHEN rule IS NULL THEN 'referral_created' ELSE 'referral_rejected' END,
		jsonb_build_object('referral_id', new_id, 'program_id', p.id, 'referrer', c.customer,
		                   'referee', redeem.customer, 'code', c.code::text,
		                   'status', new_status, 'reason', rule));
	RETURN QUERY SELECT new_id, new_status, rule;
END
$$;
COMMENT ON FUNCTION referral.redeem(referral.referral_code, text, text, inet, text, timestamptz)
	IS 'redeem a code at sign-up: returns the referral (pending), a rejection with its reason, or the customer''s existing referral';



-- tenant in every key, so that the tables can be distributed by tenant on Citus:
ALTER TABLE referral.reward_rule DROP CONSTRAINT reward_rule_program_id_fkey;
ALTER TABLE referral.milestone DROP CONSTRAINT milestone_program_id_fkey;
ALTER TABLE referral.variant DROP CONSTRAINT variant_program_id_fkey;
ALTER TABLE referral.code DROP CONSTRAINT code_program_id_fkey;
ALTER TABLE referral.click DROP CONSTRAINT click_program_id_fkey;
ALTER TABLE referral.referral DROP CONSTRAINT referral_program_id_fkey;
ALTER TABLE referral.program DROP CONSTRAINT program_pkey, ADD PRIMARY KEY (id, tenant);
ALTER TABLE referral.reward_rule DROP CONSTRAINT reward_rule_pkey, ADD PRIMARY KEY (tenant, id),
	ADD FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant);
DROP INDEX referral.reward_rule_one_per_tier;
CREATE UNIQUE INDEX reward_rule_one_per_tier ON referral.reward_rule
	(tenant, program_id, beneficiary, level, COALESCE(variant, ''), min_conversions);
ALTER TABLE referral.milestone DROP CONSTRAINT milestone_pkey, ADD PRIMARY KEY (tenant, id),
	ADD FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant),
	DROP CONSTRAINT milestone_program_id_conversions_key, ADD UNIQUE (tenant, program_id, conversions);
ALTER TABLE referral.variant DROP CONSTRAINT variant_pkey, ADD PRIMARY KEY (tenant, id),
	ADD FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant),
	DROP CONSTRAINT variant_program_id_name_key, ADD UNIQUE (tenant, program_id, name);
ALTER TABLE referral.event DROP CONSTRAINT event_pkey, ADD PRIMARY KEY (tenant, id);
ALTER TABLE referral.code DROP CONSTRAINT code_pkey, ADD PRIMARY KEY (code, tenant),
	ADD FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant);
ALTER TABLE referral.click DROP CONSTRAINT click_pkey, ADD PRIMARY KEY (tenant, id),
	ADD FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant);
ALTER TABLE referral.tracked_table DROP CONSTRAINT tracked_table_pkey, ADD PRIMARY KEY (tenant, relid);
ALTER TABLE referral.member DROP CONSTRAINT member_id_key, ADD UNIQUE (tenant, id);
ALTER TABLE referral.referral DROP CONSTRAINT referral_pkey, ADD PRIMARY KEY (id, tenant),
	ADD FOREIGN KEY (program_id, tenant) REFERENCES referral.program (id, tenant);
ALTER TABLE referral.reward DROP CONSTRAINT reward_pkey, ADD PRIMARY KEY (id, tenant);
DROP INDEX referral.reward_once_per_milestone;
-- A milestone held: not reversed and, if paid, not clawed back (reversed_at is set on
-- a paid reward when its clawback is created), so a reversed one can be paid again.
CREATE UNIQUE INDEX reward_once_per_milestone ON referral.reward
	(tenant, program_id, beneficiary, milestone_id) WHERE kind = 'milestone' AND status <> 'reversed' AND reversed_at IS NULL;

-- Codes are unique across tenants, but the primary key is (code, tenant), so that
-- the table can be distributed by tenant: the check across tenants is here.  A
-- vanity code is checked under an advisory lock of its own; generated codes share
-- it (the counter makes them unique among themselves), so that a vanity code and
-- a generated one cannot both pass the check at once.  The lock is the calling
-- node's: on Citus, codes are issued on the coordinator.
CREATE FUNCTION referral._code_free_elsewhere(code referral.referral_code, tenant text, vanity boolean)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF vanity THEN
		PERFORM pg_advisory_xact_lock(1919250796, 1);	-- 'refl', 1: codes
	ELSE
		PERFORM pg_advisory_xact_lock_shared(1919250796, 1);
	END IF;
	RETURN code IS NULL OR NOT EXISTS (
		SELECT 1 FROM referral.code c
		 WHERE c.code OPERATOR(referral.=) _code_free_elsewhere.code
		   AND c.tenant <> _code_free_elsewhere.tenant);
END
$$;
COMMENT ON FUNCTION referral._code_free_elsewhere(referral.referral_code, text, boolean)
	IS 'internal: whether no other tenant holds the code (under the codes'' advisory lock)';
REVOKE ALL ON FUNCTION referral._code_free_elsewhere(referral.referral_code, text, boolean) FROM PUBLIC;

-- SQLSTATE RF001 for a vanity code someone holds.
CREATE FUNCTION referral._code_taken(vanity referral.referral_code)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'referral code "%" is already taken', vanity::text
		USING ERRCODE = 'RF001',
			  DETAIL = 'Codes are unique across all programs and tenants, and O = 0, I = L = 1 when codes are compared.',
			  HINT = 'Choose another vanity code, or leave it NULL for a generated one.';
END
$$;
COMMENT ON FUNCTION referral._code_taken(referral.referral_code) IS 'internal: raises RF001 for a vanity code that is taken';
REVOKE ALL ON FUNCTION referral._code_taken(referral.referral_code) FROM PUBLIC;

CREATE OR REPLACE FUNCTION referral.issue_code(
	program bigint,
	customer text,
	vanity referral.referral_code DEFAULT NULL,
	email text DEFAULT NULL,
	device text DEFAULT NULL)
RETURNS referral.referral_code
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	email_h bytea := referral._hash('email', issue_code.email);
	device_h bytea := referral._hash('device', issue_code.device);
	program_tenant text;
	key bytea;
	candidate referral.referral_code;
	issued referral.referral_code;
	old_email_h bytea;
	old_device_h bytea;
BEGIN
	LOOP
		-- The program, the customer's existing code and the code key in one
		-- statement: this runs once per customer, and each statement of a
		-- PL/pgSQL function pays the executor's start-up.  The customer's
		-- existing code wins (a later vanity is ignored); new fingerprints given
		-- now are kept.  A repeat call (an app showing the customer's code) writes
		-- nothing unless a fingerprint changed.
		SELECT p.tenant, c.code, c.email_hash, c.device_hash, s.code_key
		  INTO program_tenant, issued, old_email_h, old_device_h, key
		  FROM referral.program p
		  LEFT JOIN referral.code c
		    ON c.tenant = p.tenant AND c.program_id = p.id AND c.customer = issue_code.customer
		  LEFT JOIN referral.secret s ON true
		 WHERE p.id = issue_code.program;
		IF NOT FOUND THEN
			-- Raises RF003; a program committed since the look-up's snapshot is
			-- read again by the next pass.
			PERFORM referral._program(issue_code.program);
			CONTINUE;
		END IF;
		IF NULLIF(btrim(issue_code.customer), '') IS NULL OR octet_length(issue_code.customer) > 1000 THEN
			PERFORM referral._check_customer(issue_code.customer);	-- raises 22023
		END IF;
		IF issued IS NOT NULL THEN
			IF (email_h IS NOT NULL AND email_h IS DISTINCT FROM old_email_h)
			   OR (device_h IS NOT NULL AND device_h IS DISTINCT FROM old_device_h) THEN
				UPDATE referral.code c
				   SET email_hash = COALESCE(email_h, c.email_hash),
				       device_hash = COALESCE(device_h, c.device_hash)
				 WHERE c.tenant = program_tenant AND c.program_id = issue_code.program
				   AND c.customer = issue_code.customer;
			END IF;
			RETURN issued;
		END IF;

		IF issue_code.vanity IS NOT NULL THEN
			candidate := issue_code.vanity;
		ELSE
			IF key IS NULL THEN
				key := (referral._secret()).code_key;	-- the database's first code
			END IF;
			candidate := referral._generate_code(nextval('referral.code_counter_seq'), key);
		END IF;
		IF NOT referral._code_free_elsewhere(candidate, program_tenant, issue_code.vanity IS NOT NULL) THEN
			IF issue_code.vanity IS NOT NULL THEN
				PERFORM referral._code_taken(issue_code.vanity);	-- raises RF001
			END IF;
			CONTINUE;	-- a generated code taken as a vanity code: the next counter value
		END IF;

		INSERT INTO referral.code AS c (tenant, code, program_id, customer, vanity, email_hash, device_hash)
		VALUES (program_tenant, candidate, issue_code.program, issue_code.customer,
		        issue_code.vanity IS NOT NULL, email_h, device_h)
		ON CONFLICT DO NOTHING
		RETURNING c.code INTO issued;
		IF issued IS NOT NULL THEN
			RETURN issued;
		END IF;

		-- Nothing inserted: either the code is taken, or this customer got a code
		-- from a concurrent call (the loop's next look-up returns it).
		IF NOT EXISTS (SELECT 1 FROM referral.code c
		                WHERE c.tenant = program_tenant AND c.program_id = issue_code.program
		                  AND c.customer = issue_code.customer)
		   AND issue_code.vanity IS NOT NULL THEN
			PERFORM referral._code_taken(issue_code.vanity);	-- raises RF001
		END IF;
		-- A generated code already taken as a vanity code: take the next counter value.
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral.issue_code(bigint, text, referral.referral_code, text, text)
	IS 'the customer''s referral code in a program (generated, or the given vanity code the first time); the same code on every later call';

CREATE OR REPLACE FUNCTION referral.issue_codes(program bigint, customers text[])
RETURNS TABLE(customer text, code referral.referral_code)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	p referral.program := referral._program(issue_codes.program);
	key bytea;
	bad_position bigint;
	bad_customer text;
	plain boolean;
	missing text[];		-- customers without a code in this pass
	codes referral.referral_code[];	-- their new codes, in the same order
	taken referral.referral_code[];	-- those of the codes held in another tenant
	issued bigint;
BEGIN
	PERFORM referral._require(customers IS NOT NULL, 'customers must not be NULL');
	SELECT u.n, u.c INTO bad_position, bad_customer
	  FROM unnest(customers) WITH ORDINALITY u(c, n)
	 WHERE NULLIF(btrim(u.c), '') IS NULL OR octet_length(u.c) > 1000
	 ORDER BY u.n LIMIT 1;
	IF bad_position IS NOT NULL THEN
		RAISE EXCEPTION 'customer % of the array is %', bad_position,
			CASE WHEN bad_customer IS NULL THEN 'NULL'
			     WHEN octet_length(bad_customer) > 1000
			     THEN format('too long (%s bytes, at most 1000)', octet_length(bad_customer))
			     ELSE 'empty' END
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Nothing was issued; remove or fix that element and call again.';
	END IF;

	key := (referral._secret()).code_key;
	PERFORM referral._code_free_elsewhere(NULL, p.tenant, false);	-- the codes' shared lock
	-- Each pass issues a generated code to every customer still without one.  A
	-- code held in another tenant (a vanity code) is left out, and a row skipped
	-- (ON CONFLICT) when its code was taken in this tenant or the customer got a
	-- code from a concurrent call; the next pass sees the latter's code and gives
	-- the others the next counter values.  For a long list the first pass is a
	-- plain INSERT, which spares ON CONFLICT's probe of both unique indexes before
	-- each row (a third of the INSERT's time), and fails as a whole on a conflict.
	-- Short lists skip it: its subtransaction would gain them nothing, and more
	-- than 64 subtransactions in one transaction (a loop of small calls) slow
	-- every session's snapshots.  The statements are uncorrelated, as Citus plans
	-- them when the table is distributed.
	plain := cardinality(customers) >= 1000;
	LOOP
		missing := ARRAY(SELECT u.c FROM unnest(customers) u(c)
		                 EXCEPT
		                 SELECT k.customer FROM referral.code k
		                  WHERE k.tenant = p.tenant AND k.program_id = p.id AND k.customer = ANY (customers));
		EXIT WHEN cardinality(missing) = 0;
		codes := ARRAY(SELECT referral._generate_code(nextval('referral.code_counter_seq'), key)
		                 FROM unnest(missing));
		taken := ARRAY(SELECT o.code FROM referral.code o
		                WHERE o.code OPERATOR(referral.=) ANY (codes) AND o.tenant <> p.tenant);
		IF plain THEN
			plain := false;
			BEGIN
				INSERT INTO referral.code AS k (tenant, code, program_id, customer, vanity)
				SELECT p.tenant, g.code, p.id, g.customer, false
				  FROM unnest(codes, missing) g(code, customer)
				 WHERE NOT g.code OPERATOR(referral.=) ANY (taken);
				GET DIAGNOSTICS issued = ROW_COUNT;
			EXCEPTION WHEN unique_violation THEN
				issued := 0;
			END;
		ELSE
			INSERT INTO referral.code AS k (tenant, code, program_id, customer, vanity)
			SELECT p.tenant, g.code, p.id, g.customer, false
			  FROM unnest(codes, missing) g(code, customer)
			 WHERE NOT g.code OPERATOR(referral.=) ANY (taken)
			ON CONFLICT DO NOTHING;
			GET DIAGNOSTICS issued = ROW_COUNT;
		END IF;
		EXIT WHEN issued = cardinality(missing);
	END LOOP;

	RETURN QUERY
		SELECT u.c, k.code
		  FROM (SELECT u.c, min(u.n) AS n FROM unnest(customers) WITH ORDINALITY u(c, n)
		         GROUP BY u.c) u
		  JOIN referral.code k ON k.tenant = p.tenant AND k.program_id = p.id AND k.customer = u.c
		 ORDER BY u.n;
END
$$;
COMMENT ON FUNCTION referral.issue_codes(bigint, text[])
	IS 'the codes of many customers in a program, generated in one statement for those without one; each customer once, in the order given';


CREATE OR REPLACE FUNCTION referral._lock_trees(tenant text, a text, b text, OUT a_member referral.member, OUT b_member referral.member)
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

CREATE OR REPLACE FUNCTION referral._attach(parent referral.member, child referral.member)
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

CREATE OR REPLACE FUNCTION referral._referral_keep_rewarded()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM referral.reward w WHERE w.tenant = OLD.tenant AND w.referral_id = OLD.id) THEN
		RAISE EXCEPTION 'referral % has rewards and cannot be deleted', OLD.id
			USING ERRCODE = 'foreign_key_violation',
			      DETAIL = 'Rewards are the ledger: they keep their referral.';
	ELSIF TG_OP = 'TRUNCATE' AND EXISTS (SELECT 1 FROM referral.reward) THEN
		RAISE EXCEPTION 'referral.referral cannot be truncated while referral.reward has rows'
			USING ERRCODE = 'foreign_key_violation',
			      HINT = 'Truncate both in one statement, or referral.reward first.';
	END IF;
	RETURN OLD;	-- NULL for TRUNCATE
END
$$;
COMMENT ON FUNCTION referral._referral_keep_rewarded() IS 'internal: refuses to delete or truncate referrals that have rewards';

-- The views join referral's tables on tenant, as Citus plans them:
CREATE OR REPLACE VIEW referral._participant AS
SELECT c.tenant, c.program_id, c.customer, c.code, c.variant,
       COALESCE(pg_catalog.width_bucket(COALESCE(r.conversions, 0)::int, COALESCE(ts.tiers, tg.tiers)), 0) AS tier,
       (COALESCE(ts.tiers, tg.tiers))[COALESCE(pg_catalog.width_bucket(COALESCE(r.conversions, 0)::int,
                                                                   COALESCE(ts.tiers, tg.tiers)), 0) + 1] AS next_tier_at,
       COALESCE(k.clicks, 0) AS clicks,
       COALESCE(r.referrals, 0) AS referrals,
       COALESCE(r.conversions, 0) AS conversions,
       r.conversions::double precision / NULLIF(r.referrals, 0) AS conversion_rate,
       COALESCE(o.revenue, 0) AS revenue,
       COALESCE(w.pending, 0) AS rewards_pending,
       COALESCE(w.approved, 0) AS rewards_approved,
       COALESCE(w.paid, 0) AS rewards_paid,
       COALESCE(w.pending, 0) + COALESCE(w.approved, 0) + COALESCE(w.paid, 0) AS rewards
  FROM referral._code_variant c
  LEFT JOIN (SELECT x.tenant, x.program_id, x.code, pg_catalog.count(*) AS clicks
               FROM referral.click x
              GROUP BY x.tenant, x.program_id, x.code) k
    ON k.tenant = c.tenant AND k.program_id = c.program_id AND k.code OPERATOR(referral.=) c.code
  LEFT JOIN (SELECT x.tenant, x.program_id, x.referrer,
                    pg_catalog.count(*) AS referrals,
                    pg_catalog.count(*) FILTER (WHERE x.status = 'converted') AS conversions
               FROM referral.referral x
              WHERE x.status <> 'rejected'
              GROUP BY x.tenant, x.program_id, x.referrer) r
    ON r.tenant = c.tenant AND r.program_id = c.program_id AND r.referrer = c.customer
  LEFT JOIN (SELECT x.tenant, x.program_id, x.referrer, pg_catalog.sum(a.amount) AS revenue
               FROM referral.attributed_order a
               JOIN referral.referral x ON x.tenant = a.tenant AND x.id = a.referral_id
              WHERE a.reversed_at IS NULL
              GROUP BY x.tenant, x.program_id, x.referrer) o
    ON o.tenant = c.tenant AND o.program_id = c.program_id AND o.referrer = c.customer
  LEFT JOIN (SELECT x.tenant, x.program_id, x.beneficiary,
                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'pending') AS pending,
                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'approved') AS approved,
                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'paid') AS paid
               FROM referral.reward x
              GROUP BY x.tenant, x.program_id, x.beneficiary) w
    ON w.tenant = c.tenant AND w.program_id = c.program_id AND w.beneficiary = c.customer
  LEFT JOIN (SELECT x.program_id, x.variant,
                    pg_catalog.array_agg(DISTINCT x.min_conversions ORDER BY x.min_conversions) AS tiers
               FROM referral.reward_rule x
              WHERE x.beneficiary = 'referrer' AND x.level = 1 AND x.variant IS NOT NULL
              GROUP BY x.program_id, x.variant) ts
    ON ts.program_id = c.program_id AND ts.variant = c.variant
  LEFT JOIN (SELECT x.program_id,
                    pg_catalog.array_agg(DISTINCT x.min_conversions ORDER BY x.min_conversions) AS tiers
               FROM referral.reward_rule x
              WHERE x.beneficiary = 'referrer' AND x.level = 1 AND x.variant IS NULL
              GROUP BY x.program_id) tg
    ON tg.program_id = c.program_id;
COMMENT ON VIEW referral._participant
	IS 'internal: every code holder''s figures (tier, next_tier_at, clicks, referrals, conversions, revenue, rewards by status), read by referrer_stats, leaderboard and participant_summary';

CREATE OR REPLACE VIEW referral.program_stats AS
SELECT p.id AS program_id,
       p.name AS program,
       COALESCE(k.clicks, 0) AS clicks,
       COALESCE(r.referrals, 0) AS referrals,
       COALESCE(r.rejected, 0) AS rejected,
       COALESCE(r.conversions, 0) AS conversions,
       r.conversions::double precision / NULLIF(r.referrals, 0) AS conversion_rate,
       COALESCE(o.revenue, 0) AS revenue,
       COALESCE(w.reward_cost, 0) AS reward_cost,
       COALESCE(w.reward_cost, 0) / NULLIF(r.conversions, 0) AS cost_per_acquisition,
       ((COALESCE(o.revenue, 0) - w.reward_cost) / NULLIF(w.reward_cost, 0))::double precision AS roi,
       COALESCE(r.referrals, 0)::double precision / NULLIF(h.holders, 0) AS k_factor
  FROM referral.program p
  LEFT JOIN (SELECT x.tenant, x.program_id, pg_catalog.count(*) AS clicks
               FROM referral.click x GROUP BY x.tenant, x.program_id) k
    ON k.tenant = p.tenant AND k.program_id = p.id
  LEFT JOIN (SELECT x.tenant, x.program_id, pg_catalog.count(*) AS holders
               FROM referral.code x GROUP BY x.tenant, x.program_id) h
    ON h.tenant = p.tenant AND h.program_id = p.id
  LEFT JOIN (SELECT x.tenant, x.program_id,
                    pg_catalog.count(*) FILTER (WHERE x.status <> 'rejected') AS referrals,
                    pg_catalog.count(*) FILTER (WHERE x.status = 'rejected') AS rejected,
                    pg_catalog.count(*) FILTER (WHERE x.status = 'converted') AS conversions
               FROM referral.referral x GROUP BY x.tenant, x.program_id) r
    ON r.tenant = p.tenant AND r.program_id = p.id
  LEFT JOIN (SELECT a.tenant, a.program_id, pg_catalog.sum(a.amount) AS revenue
               FROM referral.attributed_order a
              WHERE a.reversed_at IS NULL
              GROUP BY a.tenant, a.program_id) o
    ON o.tenant = p.tenant AND o.program_id = p.id
  LEFT JOIN (SELECT x.tenant, x.program_id, pg_catalog.sum(x.amount) AS reward_cost
               FROM referral.reward x
              WHERE x.status <> 'reversed'
              GROUP BY x.tenant, x.program_id) w
    ON w.tenant = p.tenant AND w.program_id = p.id;
COMMENT ON VIEW referral.program_stats
	IS 'one row per program: clicks, accepted referrals, rejected attempts, conversions, conversion_rate (conversions / referrals), revenue (attributed orders not reversed), reward_cost (rewards not reversed, clawbacks included), cost_per_acquisition (reward_cost / conversions), roi ((revenue - reward_cost) / reward_cost), k_factor (referrals per code holder)';

CREATE OR REPLACE VIEW referral.variant_stats AS
SELECT s.program_id, s.variant, s.referrers, s.referrals, s.conversions, s.conversion_rate,
       s.revenue, s.reward_cost,
       CASE WHEN s.id <> s.first_id
            THEN referral.two_proportion_p_value(s.first_conversions, s.first_referrals, s.conversions, s.referrals)
       END AS p_value
  FROM (SELECT v.program_id, v.id, v.name AS variant,
               COALESCE(h.referrers, 0) AS referrers,
               COALESCE(r.referrals, 0) AS referrals,
               COALESCE(r.conversions, 0) AS conversions,
               r.conversions::double precision / NULLIF(r.referrals, 0) AS conversion_rate,
               COALESCE(o.revenue, 0) AS revenue,
               COALESCE(w.reward_cost, 0) AS reward_cost,
               pg_catalog.first_value(v.id) OVER first AS first_id,
               pg_catalog.first_value(COALESCE(r.conversions, 0)) OVER first AS first_conversions,
               pg_catalog.first_value(COALESCE(r.referrals, 0)) OVER first AS first_referrals
          FROM referral.variant v
          LEFT JOIN (SELECT x.tenant, x.program_id, x.variant, pg_catalog.count(*) AS referrers
                       FROM referral._code_variant x
                      WHERE x.variant IS NOT NULL
                      GROUP BY x.tenant, x.program_id, x.variant) h
            ON h.tenant = v.tenant AND h.program_id = v.program_id AND h.variant = v.name
          LEFT JOIN (SELECT x.tenant, x.program_id, x.variant,
                            pg_catalog.count(*) AS referrals,
                            pg_catalog.count(*) FILTER (WHERE x.status = 'converted') AS conversions
                       FROM referral.referral x
                      WHERE x.status <> 'rejected' AND x.variant IS NOT NULL
                      GROUP BY x.tenant, x.program_id, x.variant) r
            ON r.tenant = v.tenant AND r.program_id = v.program_id AND r.variant = v.name
          LEFT JOIN (SELECT x.tenant, x.program_id, x.variant, pg_catalog.sum(a.amount) AS revenue
                       FROM referral.attributed_order a
                       JOIN referral.referral x ON x.tenant = a.tenant AND x.id = a.referral_id
                      WHERE a.reversed_at IS NULL AND x.variant IS NOT NULL
                      GROUP BY x.tenant, x.program_id, x.variant) o
            ON o.tenant = v.tenant AND o.program_id = v.program_id AND o.variant = v.name
          LEFT JOIN (SELECT x.tenant, x.program_id, x.variant, pg_catalog.sum(w.amount) AS reward_cost
                       FROM referral.reward w
                       JOIN referral.referral x ON x.tenant = w.tenant AND x.id = w.referral_id
                      WHERE w.status <> 'reversed' AND x.variant IS NOT NULL
                      GROUP BY x.tenant, x.program_id, x.variant) w
            ON w.tenant = v.tenant AND w.program_id = v.program_id AND w.variant = v.name
        WINDOW first AS (PARTITION BY v.program_id ORDER BY v.id)) s;
COMMENT ON VIEW referral.variant_stats
	IS 'one row per A/B variant: code holders assigned to it, accepted referrals made in it, conversions, conversion_rate, revenue, reward_cost, and p_value of a two-proportion z-test of its conversion rate against the first variant''s (lowest id; NULL for that one and when undefined)';

-- Citus: referral.distribute() and what it needs:
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

REVOKE ALL ON FUNCTION referral._node_sequences() FROM PUBLIC;
REVOKE ALL ON FUNCTION referral.distribute(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION referral._distributed(regclass) FROM PUBLIC;

CREATE OR REPLACE FUNCTION referral.participant_summary(program bigint, customer text)
RETURNS TABLE (code referral.referral_code, variant text, clicks bigint, referrals bigint,
               conversions bigint, tier int, next_tier_at int, rewards_pending numeric,
               rewards_approved numeric, rewards_paid numeric)
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p referral.program := referral._program(participant_summary.program);
BEGIN
	-- Code, variant, referrals, conversions and tier from the view; clicks and rewards
	-- (the same rows as the view's columns) by index lookups of this one participant,
	-- so that the view's aggregates of the whole program are left out of the plan.
	RETURN QUERY
	SELECT s.code, s.variant,
	       (SELECT pg_catalog.count(*) FROM referral.click k
	         WHERE k.tenant = s.tenant AND k.code OPERATOR(referral.=) s.code AND k.program_id = s.program_id),
	       s.referrals, s.conversions, s.tier, s.next_tier_at,
	       COALESCE(w.pending, 0), COALESCE(w.approved, 0), COALESCE(w.paid, 0)
	  FROM referral._participant s
	 CROSS JOIN (SELECT pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'pending') AS pending,
	                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'approved') AS approved,
	                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'paid') AS paid
	               FROM referral.reward x
	              WHERE x.tenant = p.tenant AND x.beneficiary = participant_summary.customer
	                AND x.program_id = p.id) w
	 WHERE s.tenant = p.tenant AND s.program_id = p.id AND s.customer = participant_summary.customer;
END
$$;

-- Whether a checkout's customer, order_ref and amount pass _check_customer,
-- _check_order_ref and _check_amount.  An SQL function without SET or STRICT, so
-- that the planner inlines it (and _key_ok in it): a valid call runs no function of
-- its own.
CREATE FUNCTION referral._checkout_args_ok(customer text, order_ref text, amount numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT referral._key_ok(customer) AND referral._key_ok(order_ref)
	   AND amount >= 0 AND amount < 'Infinity'::numeric
$$;
COMMENT ON FUNCTION referral._checkout_args_ok(text, text, numeric) IS 'internal: whether checkout arguments are a usable customer, order_ref and amount (inlined)';
REVOKE ALL ON FUNCTION referral._checkout_args_ok(text, text, numeric) FROM PUBLIC;

-- The payload of a reward's event: the reward's figures, as jsonb_build_object would
-- give them, built in C (src/reward_payload.c): a bulk load builds one per reward.
CREATE FUNCTION referral._reward_payload(reward_id bigint, program_id bigint, referral_id bigint,
	beneficiary text, kind text, level int, amount numeric, currency text, status text,
	order_ref text, payout_ref text)
RETURNS jsonb
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_reward_payload';
COMMENT ON FUNCTION referral._reward_payload(bigint, bigint, bigint, text, text, int, numeric, text, text, text, text)
	IS 'internal: the jsonb payload of a reward''s event';
REVOKE ALL ON FUNCTION referral._reward_payload(bigint, bigint, bigint, text, text, int, numeric, text, text, text, text) FROM PUBLIC;

-- Appends one event per reward id (payload: the reward's figures) and notifies.
CREATE OR REPLACE FUNCTION referral._emit_rewards(kind text, reward_ids bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	notified bigint;
BEGIN
	WITH e AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT w.tenant, _emit_rewards.kind,
		       referral._reward_payload(w.id, w.program_id, w.referral_id, w.beneficiary, w.kind,
		                                w.level, w.amount, w.currency, w.status, w.order_ref,
		                                w.payout_ref)
		  FROM referral.reward w
		 WHERE w.id = ANY (reward_ids)
		 ORDER BY w.id
		RETURNING e.id, e.kind, e.tenant
	)
	SELECT count(pg_notify('referral_event', json_build_object('id', e.id, 'kind', e.kind, 'tenant', e.tenant)::text))
	  INTO notified FROM e;
END
$$;
COMMENT ON FUNCTION referral._emit_rewards(text, bigint[]) IS 'internal: one event (and NOTIFY) per reward';

-- Creates one reward, cut to what is left of the program's budget and of the
-- beneficiary's referrer_cap (both count rewards not reversed, clawbacks included).
-- Callers hold the program row lock when either applies.  Returns the new id, or
-- NULL when nothing is left or the reward already exists.
CREATE OR REPLACE FUNCTION referral._create_reward(
	p referral.program, referral_id bigint, beneficiary text, level int, kind text,
	reward_type text, amount numeric, rule_id bigint, milestone_id bigint,
	order_source text, order_ref text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	left_over numeric;
	new_id bigint;
	event_id bigint;
BEGIN
	IF p.budget IS NOT NULL THEN
		SELECT p.budget - COALESCE(sum(w.amount), 0) INTO left_over
		  FROM referral.reward w WHERE w.program_id = p.id AND w.status <> 'reversed';
		amount := LEAST(amount, left_over);
	END IF;
	IF p.referrer_cap IS NOT NULL THEN
		SELECT p.referrer_cap - COALESCE(sum(w.amount), 0) INTO left_over
		  FROM referral.reward w
		 WHERE w.tenant = p.tenant AND w.beneficiary = _create_reward.beneficiary
		   AND w.program_id = p.id AND w.status <> 'reversed';
		amount := LEAST(amount, left_over);
	END IF;
	IF amount IS NULL OR amount <= 0 THEN
		RETURN NULL;
	END IF;

	-- The reward and its event in one statement, the event from the values at hand:
	-- looking the new row up again would run a plan
	-- made while the table was small, a sequential scan, once per reward of a bulk
	-- load.  Then the NOTIFY, as _emit sends it.
	WITH w AS (
		INSERT INTO referral.reward AS w
			(tenant, program_id, beneficiary, referral_id, order_source, order_ref, level, kind,
			 reward_type, amount, currency, status, rule_id, milestone_id)
		VALUES
			(p.tenant, p.id, _create_reward.beneficiary, _create_reward.referral_id,
			 _create_reward.order_source, _create_reward.order_ref, _create_reward.level,
			 _create_reward.kind, _create_reward.reward_type, amount, p.currency, 'pending',
			 _create_reward.rule_id, _create_reward.milestone_id)
		ON CONFLICT DO NOTHING
		RETURNING w.id
	), e AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT p.tenant, 'reward_created',
		       referral._reward_payload(w.id, p.id, _create_reward.referral_id,
		                                _create_reward.beneficiary, _create_reward.kind,
		                                _create_reward.level, amount, p.currency, 'pending',
		                                _create_reward.order_ref, NULL)
		  FROM w
		RETURNING e.id
	)
	SELECT w.id, e.id INTO new_id, event_id FROM w CROSS JOIN e;
	IF new_id IS NOT NULL THEN
		PERFORM pg_notify('referral_event',
			json_build_object('id', event_id, 'kind', 'reward_created', 'tenant', p.tenant)::text);
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral._create_reward(referral.program, bigint, text, int, text, text, numeric, bigint, bigint, text, text)
	IS 'internal: insert one reward, cut to the budget and referrer_cap left, exactly once';

-- The referee and referrer rewards of one order, in the order given.  Without a budget
-- or referrer_cap nothing depends on the rewards before, and they are inserted with
-- their events in one statement (an INSERT parses the table's CHECK constraints anew
-- each time); otherwise one by one, each cut to what the previous ones left.
CREATE OR REPLACE FUNCTION referral._create_rewards(
	p referral.program, referral_id bigint, order_source text, order_ref text,
	beneficiaries text[], levels int[], kinds text[], reward_types text[], amounts numeric[],
	rule_ids bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	event_ids bigint[];
	event_id bigint;
BEGIN
	IF p.budget IS NOT NULL OR p.referrer_cap IS NOT NULL THEN
		FOR i IN 1 .. cardinality(beneficiaries) LOOP
			PERFORM referral._create_reward(p, referral_id, beneficiaries[i], levels[i], kinds[i],
				reward_types[i], amounts[i], rule_ids[i], NULL, order_source, order_ref);
		END LOOP;
		RETURN;
	END IF;

	WITH w AS (
		INSERT INTO referral.reward AS w
			(tenant, program_id, beneficiary, referral_id, order_source, order_ref, level, kind,
			 reward_type, amount, currency, status, rule_id)
		SELECT p.tenant, p.id, x.beneficiary, _create_rewards.referral_id,
		       _create_rewards.order_source, _create_rewards.order_ref, x.level, x.kind,
		       x.reward_type, x.amount, p.currency, 'pending', x.rule_id
		  FROM unnest(beneficiaries, levels, kinds, reward_types, amounts, rule_ids)
		       WITH ORDINALITY AS x(beneficiary, level, kind, reward_type, amount, rule_id, ord)
		 WHERE x.amount > 0
		 ORDER BY x.ord
		ON CONFLICT DO NOTHING
		RETURNING w.id, w.beneficiary, w.kind, w.level, w.amount
	), e AS (
		INSERT INTO referral.event AS e (tenant, kind, payload)
		SELECT p.tenant, 'reward_created',
		       referral._reward_payload(w.id, p.id, _create_rewards.referral_id, w.beneficiary,
		                                w.kind, w.level, w.amount, p.currency, 'pending',
		                                _create_rewards.order_ref, NULL)
		  FROM w ORDER BY w.id
		RETURNING e.id
	)
	SELECT array_agg(e.id ORDER BY e.id) INTO event_ids FROM e;
	FOREACH event_id IN ARRAY COALESCE(event_ids, '{}') LOOP
		PERFORM pg_notify('referral_event',
			json_build_object('id', event_id, 'kind', 'reward_created', 'tenant', p.tenant)::text);
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._create_rewards(referral.program, bigint, text, text, text[], int[], text[], text[], numeric[], bigint[])
	IS 'internal: insert the referee and referrer rewards of one order (one statement without budget or referrer_cap), exactly once each';

-- One index fewer for every attributed order to write: the views read
-- attributed_order whole, and by referral; nothing looks it up by program.
DROP INDEX referral.attributed_order_program;

-- One lock order for conversions and reversals: the referrer's code before the
-- referral, in _order_paid too:
CREATE OR REPLACE FUNCTION referral._order_paid(referral_id bigint, source text, order_ref text, amount numeric, at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	r referral.referral;
	p referral.program;
	converting boolean;
	rule referral.reward_rule;
	upline text[];
	tiered text[];
	top_tier bigint;
	-- The rewards of this order, in order: referee, then referrer levels.
	beneficiaries text[] := '{}';
	levels int[] := '{}';
	kinds text[] := '{}';
	reward_types text[] := '{}';
	amounts numeric[] := '{}';
	rule_ids bigint[] := '{}';
	step int;
	kind text;
	beneficiary text;
	lvl int;
	reached bigint;
	ms referral.milestone;
	milestone_reward bigint;
BEGIN
	-- The lock order of every conversion and reversal: the referrer's code (which
	-- serialises the referrer's conversions, for tiers and milestones), then the
	-- referral, then a program whose budget or cap is shared.
	PERFORM 1 FROM referral.referral x JOIN referral.code c
	    ON c.tenant = x.tenant AND c.program_id = x.program_id AND c.customer = x.referrer
	 WHERE x.id = _order_paid.referral_id FOR UPDATE OF c;
	SELECT * INTO r FROM referral.referral x WHERE x.id = _order_paid.referral_id FOR UPDATE;
	IF NOT FOUND OR r.status = 'rejected' OR amount IS NULL THEN
		RETURN;
	END IF;
	SELECT * INTO STRICT p FROM referral.program x WHERE x.id = r.program_id;
	IF amount < p.min_order_amount OR at < p.starts_at OR at >= p.ends_at THEN
		RETURN;
	END IF;
	IF EXISTS (SELECT 1 FROM referral.attributed_order o
	            WHERE o.tenant = r.tenant AND o.order_source = source AND o.order_ref = _order_paid.order_ref) THEN
		RETURN;		-- this order was attributed before
	END IF;

	IF r.status = 'pending' THEN
		IF at < r.created_at OR at > r.created_at + p.attribution_window THEN
			RETURN;
		END IF;
		converting := true;
	ELSIF at >= r.created_at THEN
		converting := false;
		IF p.recurring_window IS NULL OR at < r.converted_at
		   OR at > r.converted_at + p.recurring_window THEN
			-- Another qualifying order that earns nothing: revenue of the referral
			-- (also one timed before the conversion that arrived after it).
			INSERT INTO referral.attributed_order
				(tenant, order_source, order_ref, program_id, referral_id, amount, ordered_at, converting)
			VALUES (r.tenant, source, _order_paid.order_ref, p.id, r.id, amount, at, false);
			RETURN;
		END IF;
	ELSE
		RETURN;
	END IF;

	-- The program's budget and caps, after the code and the referral.
	IF p.budget IS NOT NULL OR p.referrer_cap IS NOT NULL THEN
		PERFORM 1 FROM referral.program x WHERE x.id = p.id FOR UPDATE;
	END IF;

	INSERT INTO referral.attributed_order
		(tenant, order_source, order_ref, program_id, referral_id, amount, ordered_at, converting)
	VALUES (r.tenant, source, _order_paid.order_ref, p.id, r.id, amount, at, converting);

	-- The referrer's chain, level 1 = the referrer, read before anything changes.
	SELECT ARRAY[r.referrer] || COALESCE(s.ancestors[1:p.max_depth - 1], '{}')
	  INTO upline
	  FROM referral.member s
	 WHERE s.tenant = r.tenant AND s.customer = r.referrer;
	upline := COALESCE(upline, ARRAY[r.referrer]);

	-- The (beneficiary, level) pairs with tiers: only those need a count of
	-- conversions (most programs tier the direct referrer at most), and only up to
	-- the top tier.
	SELECT COALESCE(array_agg(DISTINCT x.beneficiary || ':' || x.level), '{}'), max(x.min_conversions)
	  INTO tiered, top_tier
	  FROM referral.reward_rule x
	 WHERE x.program_id = p.id AND x.min_conversions > 0;

	-- The rewards, in order: step 0 is the referee's (only when converting, level 1),
	-- steps 1 up to max_depth the referrer rewards of those levels.  Each is tiered by
	-- its beneficiary's conversions as a referrer in the program so far (not counting
	-- this conversion).
	FOR step IN CASE WHEN converting THEN 0 ELSE 1 END .. LEAST(p.max_depth, cardinality(upline)) LOOP
		kind := CASE WHEN step = 0 THEN 'referee' ELSE 'referrer' END;
		lvl := GREATEST(step, 1);
		beneficiary := CASE WHEN step = 0 THEN r.referee ELSE upline[step] END;
		SELECT * INTO rule FROM referral._pick_rule(p.id, kind, lvl, r.variant,
		                            CASE WHEN kind || ':' || lvl = ANY (tiered)
		                                 THEN referral._conversions(r.tenant, p.id, beneficiary, top_tier) ELSE 0 END);
		IF rule.id IS NOT NULL THEN
			beneficiaries := beneficiaries || beneficiary;
			levels := levels || lvl;
			kinds := kinds || kind;
			reward_types := reward_types || rule.reward_type;
			amounts := amounts || referral.reward_amount(amount, rule.percent, rule.fixed, rule.cap, p.currency);
			rule_ids := rule_ids || rule.id;
		END IF;
	END LOOP;
	PERFORM referral._create_rewards(p, r.id, source, _order_paid.order_ref, beneficiaries, levels,
		kinds, reward_types, amounts, rule_ids);

	IF NOT converting THEN
		RETURN;
	END IF;

	UPDATE referral.referral x
	   SET status = 'converted', converted_at = at,
	       converting_source = source, converting_order = _order_paid.order_ref
	 WHERE x.id = r.id;
	PERFORM referral._emit(r.tenant, 'referral_converted',
		jsonb_build_object('referral_id', r.id, 'program_id', p.id, 'referrer', r.referrer,
		                   'referee', r.referee, 'order_ref', _order_paid.order_ref,
		                   'converted_at', at));

	-- Milestones now reached and not held (a reversed one is paid again); most
	-- programs have none, and then the referrer's conversions are not counted again.
	IF NOT EXISTS (SELECT 1 FROM referral.milestone m WHERE m.program_id = p.id) THEN
		RETURN;
	END IF;
	reached := referral._conversions(r.tenant, p.id, r.referrer,
		(SELECT max(m.conversions) FROM referral.milestone m WHERE m.program_id = p.id));
	FOR ms IN
		SELECT * FROM referral.milestone m
		 WHERE m.program_id = p.id AND m.conversions <= reached
		   AND NOT EXISTS (SELECT 1 FROM referral.reward w
		                    WHERE w.tenant = r.tenant AND w.program_id = p.id AND w.beneficiary = r.referrer
		                      AND w.milestone_id = m.id AND w.status <> 'reversed'
		                      AND w.reversed_at IS NULL)
		 ORDER BY m.conversions
	LOOP
		milestone_reward := referral._create_reward(p, r.id, r.referrer, 1, 'milestone', ms.reward_type,
			round(ms.amount, referral.currency_decimals(p.currency)), NULL, ms.id, NULL, NULL);
		IF milestone_reward IS NOT NULL THEN
			PERFORM referral._emit(r.tenant, 'milestone_reached',
				jsonb_build_object('referral_id', r.id, 'program_id', p.id, 'referrer', r.referrer,
				                   'milestone_id', ms.id, 'conversions', ms.conversions,
				                   'reward_id', milestone_reward));
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral._order_paid(bigint, text, text, numeric, timestamptz)
	IS 'internal: a paid order of a referee: convert the referral and create its rewards, or recurring rewards';

-- The amount terms of a reward rule or a referee offer (`what` names it): fixed plus
-- percent of the order amount, cut to cap.
CREATE FUNCTION referral._require_amount_terms(percent numeric, fixed numeric, cap numeric, what text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM referral._require(percent BETWEEN 0 AND 100,
		format('percent must be between 0 and 100 (got %s)', COALESCE(percent::text, 'NULL')));
	PERFORM referral._require(fixed >= 0,
		format('fixed must not be negative (got %s)', COALESCE(fixed::text, 'NULL')));
	PERFORM referral._require(percent > 0 OR fixed > 0,
		format('%s needs a positive percent or fixed amount', what));
	PERFORM referral._require(cap IS NULL OR cap >= 0,
		format('cap must not be negative (got %s)', cap));
END
$$;
COMMENT ON FUNCTION referral._require_amount_terms(numeric, numeric, numeric, text)
	IS 'internal: raise 22023 unless percent, fixed and cap make an amount rule';
REVOKE EXECUTE ON FUNCTION referral._require_amount_terms(numeric, numeric, numeric, text) FROM PUBLIC;

-- customer keys checked by the rule of order_refs (_check_key):
CREATE OR REPLACE FUNCTION referral._check_customer(customer text)
RETURNS void
LANGUAGE sql IMMUTABLE
AS $$ SELECT referral._check_key(customer, 'customer', 'customer key') $$;

-- grant_operator, grant_app and grant_analyst grant schema usage and functions with
-- one helper, _grant_functions:
CREATE FUNCTION referral._grant_functions(role regrole, functions regprocedure[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE format('GRANT USAGE ON SCHEMA referral TO %s', role);
	IF cardinality(functions) > 0 THEN
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', array_to_string(functions, ', '), role);
	END IF;
END
$$;
COMMENT ON FUNCTION referral._grant_functions(regrole, regprocedure[])
	IS 'internal: grant a role USAGE on schema referral and EXECUTE on the functions given';
REVOKE ALL ON FUNCTION referral._grant_functions(regrole, regprocedure[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION referral.grant_analyst(role regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v regclass;
BEGIN
	-- The analysts' views; the internal ones (named _...) stay private.
	FOR v IN SELECT c.oid::regclass FROM pg_class c
	          WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('v', 'm')
	            AND c.relname !~ '^_'
	          ORDER BY c.relname
	LOOP
		EXECUTE format('GRANT SELECT ON %s TO %s', v, role);
	END LOOP;
	-- A view's reader needs EXECUTE on the extension's functions that the view calls
	-- (variant_stats: two_proportion_p_value).
	PERFORM referral._grant_functions(role, ARRAY(
		SELECT DISTINCT d.refobjid::regprocedure
		  FROM pg_depend d
		  JOIN pg_rewrite w ON w.oid = d.objid
		  JOIN pg_class c ON c.oid = w.ev_class
		  JOIN pg_proc p ON p.oid = d.refobjid
		 WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_proc'::regclass
		   AND c.relnamespace = 'referral'::regnamespace AND c.relkind IN ('v', 'm')
		   AND p.pronamespace = 'referral'::regnamespace));
END
$$;

-- audit(), with every check above:
CREATE OR REPLACE FUNCTION referral.audit(program bigint DEFAULT NULL)
RETURNS TABLE (problem text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t record;
	forgotten boolean := EXISTS (SELECT 1 FROM referral.forgotten);
	key bytea;
	relids oid[];
	sources text[];
	dropped text[];
	qualified text;
BEGIN
	IF program IS NOT NULL THEN
		PERFORM referral._program(program);
	END IF;
	IF forgotten THEN
		SELECT s.fingerprint_key INTO key FROM referral.secret s;
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
	        OR (w.status = 'paid' AND w.amount + COALESCE((SELECT sum(c.amount) FROM referral.reward c
	                                                        WHERE c.tenant = w.tenant AND c.clawback_of = w.id AND c.kind = 'clawback'), 0) > 0))
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'clawback_without_reward',
	       format('clawback %s of %s offsets reward %s, which is not a paid reward of %s',
	              c.id, c.amount, c.clawback_of, c.beneficiary)
	  FROM referral.reward c
	  LEFT JOIN referral.reward w ON w.tenant = c.tenant AND w.id = c.clawback_of
	 WHERE c.kind = 'clawback' AND (audit.program IS NULL OR c.program_id = audit.program)
	   AND (w.id IS NULL OR w.kind = 'clawback' OR w.status <> 'paid' OR w.beneficiary <> c.beneficiary)
	 ORDER BY c.id;

	-- The clawbacks of a paid reward may offset part of it (its order's amount went
	-- down), or all of it (refunded), never more.
	RETURN QUERY
	SELECT 'clawbacks_exceed_reward',
	       format('the clawbacks of reward %s of %s (%s) offset %s', w.id, w.beneficiary, w.amount, -s.total)
	  FROM referral.reward w
	  JOIN (SELECT c.tenant, c.clawback_of, sum(c.amount) AS total FROM referral.reward c
	         WHERE c.kind = 'clawback' GROUP BY c.tenant, c.clawback_of) s
	    ON s.tenant = w.tenant AND s.clawback_of = w.id
	 WHERE w.kind <> 'clawback' AND w.amount + s.total < 0
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	 ORDER BY w.id;

	-- A reward of an order that is not attributed to the reward's referral (it moved
	-- to another customer) must have been reversed or clawed back.  (One whose referral
	-- does not exist is reward_without_referral.)
	RETURN QUERY
	SELECT 'reward_without_order',
	       format('reward %s (%s %s for order %s of %s) is %s although the order is not attributed to its referral %s',
	              w.id, w.kind, w.amount, w.order_ref, w.order_source, w.status, w.referral_id)
	  FROM referral.reward w
	 WHERE w.kind IN ('referee', 'referrer') AND (audit.program IS NULL OR w.program_id = audit.program)
	   AND (w.status IN ('pending', 'approved')
	        OR (w.status = 'paid' AND w.amount + COALESCE((SELECT sum(c.amount) FROM referral.reward c
	                                                        WHERE c.tenant = w.tenant AND c.clawback_of = w.id AND c.kind = 'clawback'), 0) > 0))
	   AND EXISTS (SELECT 1 FROM referral.referral r WHERE r.tenant = w.tenant AND r.id = w.referral_id)
	   AND NOT EXISTS (SELECT 1 FROM referral.attributed_order o
	                    WHERE o.tenant = w.tenant AND o.order_source = w.order_source
	                      AND o.order_ref = w.order_ref AND o.referral_id = w.referral_id)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'reward_without_referral',
	       format('reward %s of %s names referral %s, which does not exist', w.id, w.beneficiary, w.referral_id)
	  FROM referral.reward w
	 WHERE NOT EXISTS (SELECT 1 FROM referral.referral r WHERE r.tenant = w.tenant AND r.id = w.referral_id)
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'reward_program_mismatch',
	       format('reward %s is in program %s, but its referral %s is in program %s',
	              w.id, w.program_id, r.id, r.program_id)
	  FROM referral.reward w
	  JOIN referral.referral r ON r.tenant = w.tenant AND r.id = w.referral_id
	 WHERE w.program_id <> r.program_id
	   AND (audit.program IS NULL OR w.program_id = audit.program OR r.program_id = audit.program)
	 ORDER BY w.id;

	-- A paid reward counts net of its clawbacks: a lower amount of its order claws back
	-- the difference.
	RETURN QUERY
	SELECT 'reward_above_rule',
	       format('reward %s pays %s%s, more than rule %s gives for order %s of %s (%s)',
	              w.id, w.net, CASE WHEN w.status = 'paid' THEN ' net of clawbacks' ELSE '' END,
	              w.rule_id, w.order_ref, o.amount,
	              referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency))
	  FROM (SELECT x.*, x.amount + CASE WHEN x.status = 'paid'
	                                    THEN COALESCE((SELECT sum(c.amount) FROM referral.reward c
	                                                    WHERE c.tenant = x.tenant AND c.clawback_of = x.id AND c.kind = 'clawback'), 0)
	                                    ELSE 0 END AS net
	          FROM referral.reward x
	         WHERE x.kind IN ('referee', 'referrer') AND x.status <> 'reversed'
	           AND (audit.program IS NULL OR x.program_id = audit.program)) w
	  JOIN referral.reward_rule rr ON rr.id = w.rule_id
	  JOIN referral.attributed_order o
	    ON o.tenant = w.tenant AND o.order_source = w.order_source AND o.order_ref = w.order_ref
	 WHERE w.net > referral.reward_amount(o.amount, rr.percent, rr.fixed, rr.cap, w.currency)
	 ORDER BY w.id;

	RETURN QUERY
	SELECT 'budget_exceeded',
	       format('program %s has created %s of rewards, over its budget of %s', p.id, s.total, p.budget)
	  FROM referral.program p
	  JOIN (SELECT w.tenant, w.program_id, sum(w.amount) AS total FROM referral.reward w
	         WHERE w.status <> 'reversed' GROUP BY w.tenant, w.program_id) s
	    ON s.tenant = p.tenant AND s.program_id = p.id
	 WHERE p.budget IS NOT NULL AND s.total > p.budget
	   AND (audit.program IS NULL OR p.id = audit.program)
	 ORDER BY p.id;

	RETURN QUERY
	SELECT 'referrer_cap_exceeded',
	       format('%s has earned %s in program %s, over its referrer_cap of %s', s.beneficiary, s.total, p.id, p.referrer_cap)
	  FROM referral.program p
	  JOIN (SELECT w.tenant, w.program_id, w.beneficiary, sum(w.amount) AS total FROM referral.reward w
	         WHERE w.status <> 'reversed' GROUP BY w.tenant, w.program_id, w.beneficiary) s
	    ON s.tenant = p.tenant AND s.program_id = p.id
	 WHERE p.referrer_cap IS NOT NULL AND s.total > p.referrer_cap
	   AND (audit.program IS NULL OR p.id = audit.program)
	 ORDER BY p.id, s.beneficiary;

	-- Attributed orders of a tracked table that was dropped (not untracked): they
	-- are gone, and nothing reversed their rewards.  (The registry and the catalog
	-- are read apart: on Citus one is a reference table, the other local.)
	SELECT array_agg(tt.relid::oid), array_agg(tt.source) INTO relids, sources FROM referral.tracked_table tt;
	dropped := ARRAY(SELECT u.source FROM unnest(relids, sources) u(relid, source)
	                  WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = u.relid));
	RETURN QUERY
	SELECT 'order_not_paid',
	       format('order %s of %s (referral %s) earned rewards but its table was dropped',
	              o.order_ref, o.order_source, o.referral_id)
	  FROM referral.attributed_order o
	 WHERE o.order_source = ANY (dropped)
	   AND o.reversed_at IS NULL AND (audit.program IS NULL OR o.program_id = audit.program)
	 ORDER BY o.order_source, o.order_ref;

	-- Store credit spent at checkout: never more than a credit reward's amount, and
	-- only from credit rewards of the spender, in their currency, once approved.
	RETURN QUERY
	SELECT CASE WHEN s.total > w.amount THEN 'credit_overspent' ELSE 'credit_spent_wrongly' END,
	       format('reward %s (%s %s %s %s of %s, %s) has %s spent on it by orders %s',
	              s.reward_id, w.kind, w.reward_type, w.amount, w.currency, w.beneficiary,
	              CASE WHEN w.approved_at IS NULL THEN 'never approved' ELSE 'approved ' || w.approved_at END,
	              s.total, s.orders)
	  FROM (SELECT x.tenant, x.reward_id, sum(x.amount) AS total,
	               string_agg(DISTINCT x.order_ref, ', ' ORDER BY x.order_ref) AS orders,
	               bool_or(x.customer <> w0.beneficiary OR x.currency <> w0.currency
	                       OR x.tenant <> w0.tenant OR w0.reward_type <> 'credit' OR w0.kind = 'clawback'
	                       OR w0.approved_at IS NULL) AS misplaced
	          FROM referral.credit_spend x
	          JOIN referral.reward w0 ON w0.tenant = x.tenant AND w0.id = x.reward_id
	         WHERE x.refunded_at IS NULL
	         GROUP BY x.tenant, x.reward_id) s
	  JOIN referral.reward w ON w.tenant = s.tenant AND w.id = s.reward_id
	 WHERE (s.total > w.amount OR s.misplaced)
	   AND (audit.program IS NULL OR w.program_id = audit.program)
	UNION ALL
	SELECT 'credit_spend_without_reward',
	       format('credit spend %s of %s by order %s names reward %s, which does not exist',
	              x.id, x.amount, x.order_ref, x.reward_id)
	  FROM referral.credit_spend x
	 WHERE audit.program IS NULL
	   AND NOT EXISTS (SELECT 1 FROM referral.reward w WHERE w.tenant = x.tenant AND w.id = x.reward_id)
	 ORDER BY 1, 2;

	-- Against the orders of every table still tracked, read as the table's owner
	-- (_query_as_owner): its columns' casts and checks are the owner's code.  The
	-- rows come back as built-in types, compared here.
	FOR t IN SELECT tt.* FROM referral.tracked_table tt ORDER BY tt.relid LOOP
		SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) INTO qualified
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.oid = t.relid;
		CONTINUE WHEN NOT FOUND;
		RETURN QUERY
		WITH x AS MATERIALIZED (
			SELECT * FROM referral._query_as_owner(t.relid, referral._orders_query(t.relid, qualified))
			    AS q(order_ref text, customer text, tenant text, amount numeric, paid boolean, reversed boolean,
			         ordered_at timestamptz)),
		-- The keyed hashes of forgotten keys, read apart from the orders (on Citus
		-- the orders are a result on the coordinator, forgotten a distributed table).
		fk AS MATERIALIZED (
			SELECT f.tenant, f.key_hash FROM referral.forgotten f WHERE forgotten),
		problems AS (
			-- An attributed, unreversed order that is no longer there or in a reversed
			-- status (another status after paid keeps its rewards, as in the trigger).
			SELECT 1 AS part, o.order_ref AS sort_ref, NULL::bigint AS sort_id, 'order_not_paid' AS problem,
			       format('order %s of %s (referral %s) earned rewards but is %s',
			              o.order_ref, o.order_source, o.referral_id,
			              CASE WHEN x.order_ref IS NULL THEN 'deleted' ELSE 'reversed' END) AS detail
			  FROM referral.attributed_order o
			  LEFT JOIN x ON x.order_ref = o.order_ref AND x.tenant = o.tenant
			 WHERE o.order_source = t.source AND o.reversed_at IS NULL
			   AND (audit.program IS NULL OR o.program_id = audit.program)
			   AND (x.order_ref IS NULL OR x.reversed)
			   AND NOT EXISTS (SELECT 1 FROM referral.untracked_order u
			                    WHERE u.tenant = o.tenant AND u.order_source = o.order_source
			                      AND u.order_ref = o.order_ref)
			   -- The orders of a forgotten customer: the order triggers no longer
			   -- know whose they are (their referral names the pseudonym).
			   AND NOT (forgotten AND (
			            EXISTS (SELECT 1 FROM referral.referral r
			                      JOIN referral.forgotten f ON f.tenant = r.tenant AND f.pseudonym = r.referee
			                     WHERE r.tenant = o.tenant AND r.id = o.referral_id)
			            OR (x.customer IS NOT NULL AND EXISTS (
			                SELECT 1 FROM fk f
			                 WHERE f.tenant = x.tenant
			                   AND f.key_hash = referral._fingerprint(key, 'customer', referral._customer_ref(x.tenant, x.customer))))))
			UNION ALL
			-- A pending referral whose referee has a qualifying paid order in the window,
			-- placed after the referral last went back to pending: a missed conversion.
			SELECT 2, NULL, r.id, 'missed_conversion',
			       format('referral %s is pending although order %s qualifies', r.id, x.order_ref)
			  FROM referral.referral r
			  JOIN referral.program p ON p.id = r.program_id
			  JOIN x ON x.customer = r.referee AND x.tenant = r.tenant
			 WHERE t.ordered_at_column IS NOT NULL
			   AND r.status = 'pending' AND (audit.program IS NULL OR r.program_id = audit.program)
			   AND x.paid AND x.amount >= p.min_order_amount
			   AND x.ordered_at >= GREATEST(r.created_at, p.starts_at, r.reverted_at)
			   AND x.ordered_at <= r.created_at + p.attribution_window
			   AND (p.ends_at IS NULL OR x.ordered_at < p.ends_at)
			   AND NOT EXISTS (SELECT 1 FROM referral.attributed_order o
			                    WHERE o.tenant = r.tenant AND o.order_source = t.source
			                      AND o.order_ref = x.order_ref))
		SELECT problems.problem, problems.detail FROM problems
		 ORDER BY problems.part, problems.sort_ref, problems.sort_id;
	END LOOP;
END
$$;
COMMENT ON FUNCTION referral.audit(bigint)
	IS 'recompute from tracked orders and referrals what the ledger should hold; one row per difference, none when consistent';

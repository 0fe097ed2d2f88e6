-- The registry of the shop's orders tables that referral.track_orders() attached to.
-- The order triggers do not read it (their configuration is in their own arguments,
-- so they also work per shard on Citus); redeem's existing_customer rule and audit()
-- do.

CREATE TABLE referral.tracked_table (
	tenant				text NOT NULL,
	relid				regclass NOT NULL,
	customer_column		name NOT NULL,
	amount_column		name NOT NULL,
	id_column			name NOT NULL,
	status_column		name,
	paid_statuses		text[] NOT NULL,
	reversed_statuses	text[] NOT NULL,
	ordered_at_column	name,
	tenant_column		name,
	source				text,
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant, relid)
);
COMMENT ON TABLE referral.tracked_table IS 'orders tables with referral triggers (see track_orders); tenant is the fixed tenant when there is no tenant_column';
COMMENT ON COLUMN referral.tracked_table.source IS 'the label the triggers give this table''s orders (reward.order_source): its quoted qualified name when tracked, with a suffix #2, #3... when another table had that label (see referral.source_label)';
SELECT pg_catalog.pg_extension_config_dump('referral.tracked_table', '');

-- Reads a shop's table as that table's owner (src/owner_query.c): casts, domain
-- checks and operators of its columns' types run with the owner's rights, never
-- with the extension owner's.  The caller's column list must match the query's.
CREATE FUNCTION referral._query_as_owner(relid regclass, query text)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'referral_query_as_owner';
COMMENT ON FUNCTION referral._query_as_owner(regclass, text)
	IS 'internal: run a read-only query over a shop''s table with the rights of the table''s owner';
REVOKE ALL ON FUNCTION referral._query_as_owner(regclass, text) FROM PUBLIC;

-- Whether a customer has an order in one tracked table (src/customer_orders.c):
-- heap and btree reads through built-in types only, uncommitted orders included
-- (it waits for their transactions).  tenant_column NULL: tenant is not compared.
CREATE FUNCTION referral._customer_has_orders(orders regclass, customer_column name,
	tenant_column name, tenant text, customer text)
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'referral_customer_has_orders';
COMMENT ON FUNCTION referral._customer_has_orders(regclass, name, name, text, text)
	IS 'internal: whether a customer has an order, committed or in progress, in one tracked table';
REVOKE ALL ON FUNCTION referral._customer_has_orders(regclass, name, name, text, text) FROM PUBLIC;

-- Whether the customer has any order, whatever its status, in a tracked table of the
-- tenant.  A key that is not the customer column's own text form of a value ('0042'
-- for 42) has no orders there, since the order triggers match customers by that
-- text form.
CREATE FUNCTION referral._has_orders(tenant text, customer text)
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

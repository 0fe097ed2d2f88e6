-- The registry of the shop's orders tables that referral.track_orders() attached to.
-- The order triggers do not read it (their configuration is in their own arguments,
-- so they also work per shard on Citus); redeem's existing_customer rule and audit()
-- do.

CREATE TABLE referral.tracked_table (
	tenant				text NOT NULL,
	relid				regclass NOT NULL PRIMARY KEY,
	customer_column		name NOT NULL,
	amount_column		name NOT NULL,
	id_column			name NOT NULL,
	status_column		name,
	paid_statuses		text[] NOT NULL,
	reversed_statuses	text[] NOT NULL,
	ordered_at_column	name,
	tenant_column		name,
	source				text,
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE referral.tracked_table IS 'orders tables with referral triggers (see track_orders); tenant is the fixed tenant when there is no tenant_column';
COMMENT ON COLUMN referral.tracked_table.source IS 'the label the triggers give this table''s orders (reward.order_source): its quoted qualified name when tracked, with a suffix #2, #3... when another table had that label (see referral.source_label)';
SELECT pg_catalog.pg_extension_config_dump('referral.tracked_table', '');

-- Whether the customer has any order, whatever its status, in a tracked table of the
-- tenant.  A key that is not a valid value of a table's customer column has no
-- orders there; nor has one that is not the column value's own text form ('0042'
-- for 42), since the order triggers match customers by that text form.  The key is
-- cast to the column's type so that an index on the column serves the lookup.
CREATE FUNCTION referral._has_orders(tenant text, customer text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t record;
	found_one boolean;
BEGIN
	FOR t IN
		SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
		       tt.customer_column, tt.tenant_column, tt.tenant AS fixed_tenant,
		       format_type(a.atttypid, a.atttypmod) AS customer_type
		  FROM referral.tracked_table tt
		  JOIN pg_class c ON c.oid = tt.relid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		  JOIN pg_attribute a ON a.attrelid = tt.relid AND a.attname = tt.customer_column
		 WHERE tt.tenant_column IS NOT NULL OR tt.tenant = _has_orders.tenant
		 ORDER BY tt.relid
	LOOP
		BEGIN
			IF t.tenant_column IS NULL THEN
				EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I = $1::%s) AND $1::%s::text = $1',
				               t.qualified, t.customer_column, t.customer_type, t.customer_type)
				   INTO found_one USING customer;
			ELSE
				EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I = $1::%s AND %I::text = $2) AND $1::%s::text = $1',
				               t.qualified, t.customer_column, t.customer_type, t.tenant_column, t.customer_type)
				   INTO found_one USING customer, tenant;
			END IF;
		EXCEPTION WHEN data_exception THEN
			found_one := false;		-- not a valid key of this table: no orders here
		END;
		IF found_one THEN
			RETURN true;
		END IF;
	END LOOP;
	RETURN false;
END
$$;
COMMENT ON FUNCTION referral._has_orders(text, text) IS 'internal: whether a customer has an order (any status) in a tracked table of the tenant';

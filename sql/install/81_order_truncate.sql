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

-- No code that a tracked table's owner wrote runs with the extension owner's rights.
-- The owner (shop_owner, no superuser) writes functions that try to make it a
-- superuser and log the role they ran as; they hide in a domain's CHECK on the
-- customer column, a cast of the status enum to text, an index expression that the
-- planner folds and a partial index's predicate.  redeem (as the app) and audit() (as the superuser)
-- read the table; afterwards shop_owner must still be no superuser, and no trap
-- may have run as a superuser.  Results must be what they would be without
-- the traps.
BEGIN;
SELECT plan(14);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE ROLE shop_owner NOLOGIN;
CREATE ROLE shop_app NOLOGIN;
SELECT referral.grant_app('shop_app');
GRANT USAGE ON SCHEMA public TO shop_owner;
CREATE SCHEMA shop AUTHORIZATION shop_owner;

SET LOCAL ROLE shop_owner;
-- Calls are counted in sequences, whose advances no rollback and no read-only
-- context undoes: calls as a superuser, and calls that read the status by the cast.
CREATE SEQUENCE shop.ran_as_superuser;
CREATE SEQUENCE shop.cast_calls;
-- Tries to escalate, then counts the role it ran as.  VOLATILE, so that it may
-- run ALTER ROLE even when called from the IMMUTABLE trap below.
CREATE FUNCTION shop.escalate(via text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	BEGIN
		EXECUTE 'ALTER ROLE shop_owner SUPERUSER';
	EXCEPTION WHEN insufficient_privilege THEN
		NULL;
	END;
	IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
		RAISE WARNING 'trap % ran as superuser %', via, current_user;
		PERFORM nextval('shop.ran_as_superuser');
	END IF;
	IF via = 'cast' THEN
		PERFORM nextval('shop.cast_calls');
	END IF;
END
$$;
CREATE FUNCTION shop.trap(via text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM shop.escalate(via); RETURN true; END $$;
CREATE DOMAIN shop.customer_key AS bigint CHECK (shop.trap('domain check'));
CREATE TYPE shop.order_status AS ENUM ('paid', 'refunded');
CREATE FUNCTION shop.status_text(s shop.order_status) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM shop.trap('cast'); RETURN s::name::text; END $$;
CREATE TABLE shop.orders (
	id bigint PRIMARY KEY,
	customer bigint NOT NULL,
	amount numeric NOT NULL,
	status shop.order_status NOT NULL DEFAULT 'paid');
CREATE INDEX orders_by_customer ON shop.orders (customer);
GRANT USAGE ON SCHEMA shop TO shop_app;
GRANT INSERT, UPDATE, SELECT ON shop.orders TO shop_app;
RESET ROLE;

SELECT referral.track_orders('shop.orders', 'customer', 'amount', status_column => 'status');
SELECT referral.create_program('Owner code') AS p \gset
SELECT referral.add_reward(:p, 'referrer', fixed => 5);
SELECT referral.issue_code(:p, '1', vanity => 'ONE') IS NOT NULL AS issued;
SELECT referral.issue_code(:p, '2', vanity => 'TWO') IS NOT NULL AS issued;
INSERT INTO shop.orders VALUES (1, 7, 20, 'paid');

-- Only now the traps: ALTER COLUMN ... TYPE and an index that track_orders never saw.
SET LOCAL ROLE shop_owner;
ALTER TABLE shop.orders ALTER COLUMN customer TYPE shop.customer_key;
CREATE INDEX orders_trap ON shop.orders ((shop.trap('index expression')));
-- The customer column's only index is a partial one, whose predicate redeem must
-- not fold.
DROP INDEX shop.orders_by_customer;
CREATE INDEX orders_trap_partial ON shop.orders (customer) WHERE shop.trap('index predicate');
RESET ROLE;

SET LOCAL ROLE shop_app;
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ONE', '7')$$,
	$$VALUES ('rejected'::text, 'existing_customer'::text)$$,
	'redeem sees the order of a customer whose column is a domain');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('ONE', '8')$$,
	$$VALUES ('pending'::text, NULL::text)$$,
	'a customer without orders is accepted');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('TWO', 'not-a-number')$$,
	$$VALUES ('pending'::text, NULL::text)$$,
	'a key that is no value of the column has no orders');
SELECT results_eq($$SELECT status, reason FROM referral.redeem('TWO', '0009')$$,
	$$VALUES ('pending'::text, NULL::text)$$,
	'a key that is not the text form of a value has no orders');
RESET ROLE;
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'shop_owner'), false,
	'redeem: the owner''s domain check and index predicate did not make it a superuser');
SELECT is((SELECT is_called FROM shop.ran_as_superuser), false,
	'redeem: no trap ran as a superuser');

SET LOCAL ROLE shop_app;
INSERT INTO shop.orders VALUES (2, 8, 30, 'paid');
RESET ROLE;
SELECT is((SELECT status FROM referral.referral WHERE referee = '8'), 'converted',
	'the order converts through the domain column');

-- The cast comes last: the order trigger refuses to read an enum with a cast of its own.
SET LOCAL ROLE shop_owner;
CREATE CAST (shop.order_status AS text) WITH FUNCTION shop.status_text(shop.order_status);
RESET ROLE;

SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'shop_owner'), false,
	'audit: the owner''s cast and index expression did not run as a superuser');
SELECT ok((SELECT is_called FROM shop.cast_calls),
	'audit read the status through the owner''s cast');
SELECT is((SELECT is_called FROM shop.ran_as_superuser), false,
	'audit: no trap ran as a superuser');

-- audit() still finds what is wrong: an attributed order deleted behind the triggers.
SET LOCAL ROLE shop_owner;
ALTER TABLE shop.orders DISABLE TRIGGER USER;
DELETE FROM shop.orders WHERE id = 2;
ALTER TABLE shop.orders ENABLE TRIGGER USER;
RESET ROLE;
SELECT results_eq($$SELECT problem FROM referral.audit()$$,
	$$VALUES ('order_not_paid'::text)$$, 'audit() reports the deleted order');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'shop_owner'), false,
	'still no superuser');
SELECT is((SELECT is_called FROM shop.ran_as_superuser), false,
	'still no trap ran as a superuser');

SELECT * FROM finish();
ROLLBACK;

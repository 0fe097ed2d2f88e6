\echo Use "CREATE EXTENSION referral" to load this file. \quit
-- referral: install script, assembled by the Makefile from sql/install/*.sql in
-- file-name order: the type, programs, codes, redeem, rewards, orders, ledger,
-- checkout, operations, views, Citus and privileges, each after what it uses.

COMMENT ON SCHEMA referral IS 'referral programs: codes, redeem rules, attribution chains, tiered rewards and a reward ledger';

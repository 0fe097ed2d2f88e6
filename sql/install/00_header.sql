\echo Use "CREATE EXTENSION referral" to load this file. \quit
-- referral: install script, assembled by the Makefile from sql/install/*.sql in
-- file-name order.  Read it top to bottom in the order of SPEC.md.

COMMENT ON SCHEMA referral IS 'referral programs: codes, redeem rules, attribution chains, tiered rewards and a reward ledger';

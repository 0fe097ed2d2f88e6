-- referral 0.2 -> 0.3.  Each section names the change it carries; together they
-- must give exactly the catalog of a fresh 0.3 install (test/upgrade.sh checks).
\echo Use "ALTER EXTENSION referral UPDATE TO '0.3'" to load this file. \quit

\echo Use "ALTER EXTENSION referral UPDATE TO '0.2'" to load this file. \quit
-- referral 0.1 -> 0.2.  Every change to sql/install/*.sql after 0.1 is repeated
-- here; test/upgrade.sh proves that 0.1 updated to 0.2 equals a fresh 0.2.

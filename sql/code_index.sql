-- referral_code in tables: the same queries (=, <>, <, <=, >, >=, BETWEEN,
-- ORDER BY, IN, joins, GROUP BY, DISTINCT) with no index, with a btree index
-- and with a hash index give the same results; unique indexes and exclusion
-- constraints treat codes that read alike as duplicates.
SET search_path = public, referral;

CREATE TABLE codes (id integer PRIMARY KEY, c referral_code NOT NULL);
INSERT INTO codes
SELECT n, _generate_code(n, sha256('index test')) FROM generate_series(1, 3000) AS n;
-- vanity codes, some spelled differently but reading alike
INSERT INTO codes VALUES
	(3001, 'OLIVIA10'), (3002, '0L1V1A10'), (3003, 'olivia1o'), (3004, 'OLIVIA11'),
	(3005, 'ABC'), (3006, 'ABC0'), (3007, 'ABCO'), (3008, 'AB-CD'),
	(3009, 'ZZZZZZZZZZZZ'), (3010, '000'), (3011, 'OOO'), (3012, 'LIL'), (3013, '111');
-- generated codes typed again with O for 0: equal to the originals
INSERT INTO codes
SELECT 4000 + id, replace(c::text, '0', 'O') FROM codes WHERE id <= 200 AND c::text LIKE '%0%';
SELECT count(*) AS rows, count(*) FILTER (WHERE id > 4000) AS retyped FROM codes;
ANALYZE codes;

-- The queries, each giving one text value.
CREATE TABLE queries (name text PRIMARY KEY, q text NOT NULL);
INSERT INTO queries VALUES
	('eq_vanity', $$SELECT string_agg(id || '=' || c::text, ',' ORDER BY id) FROM codes WHERE c = 'olivia-10'$$),
	('eq_missing', $$SELECT count(*)::text FROM codes WHERE c = 'NOPE1234'$$),
	('ne', $$SELECT count(*) || '/' || sum(id) FROM codes WHERE c <> 'OLIVIA10'$$),
	('lt', $$SELECT count(*) || '/' || sum(id) FROM codes WHERE c < 'G00'$$),
	('le', $$SELECT count(*) || '/' || sum(id) FROM codes WHERE c <= 'ABCO'$$),
	('gt', $$SELECT count(*) || '/' || sum(id) FROM codes WHERE c > 'olivia10'$$),
	('ge', $$SELECT count(*) || '/' || sum(id) FROM codes WHERE c >= 'OLIVIA10'$$),
	('range', $$SELECT string_agg(id || '=' || c::text, ',' ORDER BY id) FROM codes WHERE c > 'ABC' AND c <= 'ABC0'$$),
	('between', $$SELECT count(*) || '/' || sum(id) FROM codes WHERE c BETWEEN 'M00' AND 'P00'$$),
	('order_head', $$SELECT string_agg(x, ',') FROM (SELECT id || ':' || c::text AS x FROM codes ORDER BY c, id LIMIT 30) AS s$$),
	('order_tail', $$SELECT string_agg(x, ',') FROM (SELECT id || ':' || c::text AS x FROM codes ORDER BY c DESC, id LIMIT 30) AS s$$),
	('order_all', $$SELECT md5(string_agg(x, ',')) FROM (SELECT id || ':' || c::text AS x FROM codes ORDER BY c, id) AS s$$),
	('hash_join', $$SELECT count(*) || '/' || sum(a.id::bigint * b.id) FROM codes a JOIN codes b ON a.c = b.c$$),
	('group_by', $$SELECT count(*) || '/' || sum(n * n) FROM (SELECT c, count(*) AS n FROM codes GROUP BY c) AS g$$),
	('group_dups', $$SELECT string_agg(ids, ';' ORDER BY ids COLLATE "C") FROM (SELECT string_agg(id::text, ',' ORDER BY id) AS ids FROM codes GROUP BY c HAVING count(*) > 1) AS g$$),
	('distinct', $$SELECT count(DISTINCT c)::text FROM codes$$);
INSERT INTO queries
SELECT 'eq_generated', format('SELECT string_agg(id::text, %L ORDER BY id) FROM codes WHERE c = %L',
							  ',', lower(substr(c::text, 1, 4) || '-' || substr(c::text, 5)))
FROM codes WHERE id = 1234;
INSERT INTO queries
SELECT 'eq_retyped', format('SELECT string_agg(id || %L || c::text, %L ORDER BY id) FROM codes WHERE c = %L',
							'=', ',', c::text)
FROM codes WHERE id = (SELECT min(id) FROM codes WHERE id > 4000);
INSERT INTO queries
SELECT 'in_list', format('SELECT string_agg(id::text, %L ORDER BY id) FROM codes WHERE c IN (%L, %L, %L, %L, %L)',
						 ',', 'olivia10', 'abc', a.c::text, lower(b.c::text), 'NOTHERE1')
FROM codes a, codes b WHERE a.id = 7 AND b.id = 2999;

CREATE TABLE results (phase text, query text, result text);
CREATE FUNCTION run_queries(phase text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	r record;
	v text;
BEGIN
	FOR r IN SELECT name, q FROM queries ORDER BY name COLLATE "C" LOOP
		EXECUTE r.q INTO v;
		INSERT INTO results VALUES (phase, r.name, v);
	END LOOP;
END
$$;

-- 1. No index: sequential scans, hash joins and hash aggregation.
SELECT run_queries('seqscan');
EXPLAIN (COSTS OFF) SELECT id FROM codes WHERE c = 'OLIVIA10';
EXPLAIN (COSTS OFF) SELECT count(*) FROM codes a JOIN codes b ON a.c = b.c;
EXPLAIN (COSTS OFF) SELECT c, count(*) FROM codes GROUP BY c;

-- 2. No index, sorting: merge joins and sorted aggregation (sort support).
SET enable_hashjoin = off;
SET enable_hashagg = off;
SELECT run_queries('sort');
EXPLAIN (COSTS OFF) SELECT count(*) FROM codes a JOIN codes b ON a.c = b.c;
EXPLAIN (COSTS OFF) SELECT c, count(*) FROM codes GROUP BY c;
RESET enable_hashjoin;
RESET enable_hashagg;

-- 3. A btree index, sequential scans off.
CREATE INDEX codes_btree ON codes USING btree (c);
SET enable_seqscan = off;
SELECT run_queries('btree');
EXPLAIN (COSTS OFF) SELECT id FROM codes WHERE c = 'OLIVIA10';
EXPLAIN (COSTS OFF) SELECT id FROM codes WHERE c < 'G00';
EXPLAIN (COSTS OFF) SELECT id FROM codes ORDER BY c LIMIT 30;
EXPLAIN (COSTS OFF) SELECT id FROM codes WHERE c IN ('OLIVIA10', 'ABC');
-- an index-only scan returns each code as it was written
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT c FROM codes WHERE c = 'olivia10' ORDER BY c::text COLLATE "C";
SELECT c FROM codes WHERE c = 'olivia10' ORDER BY c::text COLLATE "C";
RESET enable_bitmapscan;
DROP INDEX codes_btree;

-- 4. A hash index, sequential scans off.
CREATE INDEX codes_hash ON codes USING hash (c);
SELECT run_queries('hash');
EXPLAIN (COSTS OFF) SELECT id FROM codes WHERE c = 'OLIVIA10';
EXPLAIN (COSTS OFF) SELECT id FROM codes WHERE c IN ('OLIVIA10', 'ABC');
DROP INDEX codes_hash;
RESET enable_seqscan;

-- Every query gave one result in all four phases.
SELECT query, count(*) AS phases, count(DISTINCT result) AS distinct_results,
	   count(*) FILTER (WHERE result IS NULL) AS null_results
FROM results GROUP BY query ORDER BY query COLLATE "C";
-- The results themselves (without index).
SELECT query, result FROM results WHERE phase = 'seqscan' AND query NOT LIKE 'order%' ORDER BY query COLLATE "C";
SELECT query, left(result, 80) AS result_start FROM results WHERE phase = 'seqscan' AND query LIKE 'order%' ORDER BY query COLLATE "C";

-- A unique btree index refuses codes that read alike.
\set VERBOSITY terse
CREATE UNIQUE INDEX codes_unique ON codes (c);
\set VERBOSITY default
CREATE TABLE uniq (c referral_code UNIQUE);
INSERT INTO uniq VALUES ('OLIVIA10');
INSERT INTO uniq VALUES ('0L1V1A10');
INSERT INTO uniq VALUES ('olivia-1o') ON CONFLICT (c) DO NOTHING;
INSERT INTO uniq VALUES ('OLIVIA11') ON CONFLICT (c) DO NOTHING;
SELECT c FROM uniq ORDER BY c;
-- So does an exclusion constraint on the hash operator class.
CREATE TABLE excl (c referral_code, EXCLUDE USING hash (c WITH =));
INSERT INTO excl VALUES ('LIL');
INSERT INTO excl VALUES ('111');
INSERT INTO excl VALUES ('L1I2');
SELECT c FROM excl ORDER BY c;

DROP TABLE codes, queries, results, uniq, excl;
DROP FUNCTION run_queries(text);

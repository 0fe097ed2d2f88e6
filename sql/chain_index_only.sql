-- downline() reads a member from the path index alone (path and the included
-- customer) when the visibility map marks its heap page all-visible, and from the
-- heap otherwise: the same rows either way, and a member deleted since the last
-- VACUUM is not returned.
CREATE EXTENSION pageinspect;
SELECT referral.create_program('chain-io', starts_at => '2020-01-01') AS p \gset
SELECT string_agg(r.status, ',' ORDER BY e.referrer, e.referee)
  FROM (VALUES ('a', 'b'), ('b', 'c'), ('a', 'd'), ('c', 'e'), ('d', 'f')) AS e(referrer, referee),
       LATERAL referral.redeem(referral.issue_code(:p, e.referrer), e.referee) AS r;
-- A wide tree over several heap pages: w refers 400 customers.
SELECT count(*) FROM generate_series(1, 400) AS i,
       LATERAL referral.redeem(referral.issue_code(:p, 'w'), 'w-' || i) AS r
 WHERE r.status = 'pending';
-- The blocks of referral.member (any fork) that a downline() reads: from the heap, a
-- block per heap page below; from the index, one visibility map page.  Both add the
-- top member's own row.
CREATE FUNCTION member_blocks_read(top text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	before bigint := pg_stat_get_xact_blocks_fetched('referral.member'::regclass);
BEGIN
	PERFORM count(*) FROM referral.downline(top);
	RETURN pg_stat_get_xact_blocks_fetched('referral.member'::regclass) - before;
END
$$;

-- Fresh rows: the page is not all-visible, every member comes from the heap.
SELECT (page_header(get_raw_page('referral.member', 0))).flags & 4 <> 0 AS all_visible;
SELECT * FROM referral.downline('a');
SELECT count(*) AS below_w, member_blocks_read('w') > 3 AS read_heap_pages FROM referral.downline('w');

-- After VACUUM the pages are all-visible: the members come from the index.
VACUUM referral.member;
SELECT (page_header(get_raw_page('referral.member', 0))).flags & 4 <> 0 AS all_visible;
SELECT * FROM referral.downline('a');
SELECT count(*) AS below_w, member_blocks_read('w') AS blocks_read FROM referral.downline('w');
SELECT * FROM referral.downline('a', max_depth => 2);
SELECT * FROM referral.downline('b');

-- A delete clears the page's all-visible bit: the heap says the row is gone.
DELETE FROM referral.member WHERE customer = 'e';
SELECT (page_header(get_raw_page('referral.member', 0))).flags & 4 <> 0 AS all_visible;
SELECT * FROM referral.downline('a');
DROP FUNCTION member_blocks_read(text);
DROP EXTENSION pageinspect;

-- downline() reads a member from the path index alone (path and the included
-- customer) when the visibility map marks its heap page all-visible, and from the
-- heap otherwise: the same rows either way, and a member deleted since the last
-- VACUUM is not returned.
CREATE EXTENSION pageinspect;
SELECT referral.create_program('chain-io', starts_at => '2020-01-01') AS p \gset
SELECT string_agg(r.status, ',' ORDER BY e.referrer, e.referee)
  FROM (VALUES ('a', 'b'), ('b', 'c'), ('a', 'd'), ('c', 'e'), ('d', 'f')) AS e(referrer, referee),
       LATERAL referral.redeem(referral.issue_code(:p, e.referrer), e.referee) AS r;

-- Fresh rows: the page is not all-visible, every member comes from the heap.
SELECT (page_header(get_raw_page('referral.member', 0))).flags & 4 <> 0 AS all_visible;
SELECT * FROM referral.downline('a');

-- After VACUUM the page is all-visible: the members come from the index.
VACUUM referral.member;
SELECT (page_header(get_raw_page('referral.member', 0))).flags & 4 <> 0 AS all_visible;
SELECT * FROM referral.downline('a');
SELECT * FROM referral.downline('a', max_depth => 2);
SELECT * FROM referral.downline('b');

-- A delete clears the page's all-visible bit: the heap says the row is gone.
DELETE FROM referral.member WHERE customer = 'e';
SELECT (page_header(get_raw_page('referral.member', 0))).flags & 4 <> 0 AS all_visible;
SELECT * FROM referral.downline('a');
DROP EXTENSION pageinspect;

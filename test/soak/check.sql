-- After the soak: the ledger must be consistent and every sum must balance.
\set ON_ERROR_STOP on
\pset footer off
SELECT 'default' AS tenant, count(*) AS orders, count(*) FILTER (WHERE status = 'refunded') AS refunded FROM soak.orders
UNION ALL
SELECT 'fast', count(*), count(*) FILTER (WHERE status = 'refunded') FROM soak.fast_orders;
SELECT tenant, status, count(*) FROM referral.referral GROUP BY tenant, status ORDER BY tenant, status;
SELECT tenant, kind, status, count(*), sum(amount) FROM referral.reward GROUP BY tenant, kind, status ORDER BY tenant, kind, status;
CREATE TEMP TABLE problems (problem text, detail text);
INSERT INTO problems SELECT * FROM referral.audit();
-- Balances the audit does not look at.
INSERT INTO problems
SELECT 'converted_count', format('referral %s converted but %s converting orders stand', r.id, count(o.*))
  FROM referral.referral r LEFT JOIN referral.attributed_order o
    ON o.referral_id = r.id AND o.converting AND o.reversed_at IS NULL
 WHERE r.status = 'converted' GROUP BY r.id HAVING count(o.*) <> 1;
INSERT INTO problems
SELECT 'orphan_reward', format('reward %s of refunded order %s is %s', w.id, w.order_ref, w.status)
  FROM referral.reward w
  JOIN (SELECT 'default' AS tenant, id, status FROM soak.orders
        UNION ALL SELECT 'fast', id, status FROM soak.fast_orders) o
    ON o.tenant = w.tenant AND o.id::text = w.order_ref
 WHERE o.status = 'refunded' AND w.kind IN ('referee', 'referrer') AND w.status IN ('pending', 'approved');
INSERT INTO problems
SELECT 'conversion_lost', format('order %s converted referral %s, which is %s', o.order_ref, r.id, r.status)
  FROM referral.attributed_order o JOIN referral.referral r ON r.id = o.referral_id
 WHERE o.converting AND o.reversed_at IS NULL
   AND (r.status <> 'converted' OR r.converting_order IS DISTINCT FROM o.order_ref);
INSERT INTO problems
SELECT 'milestone_twice', format('%s holds milestone %s %s times', w.beneficiary, w.milestone_id, count(*))
  FROM referral.reward w WHERE w.kind = 'milestone' AND w.status <> 'reversed' AND w.reversed_at IS NULL
 GROUP BY w.beneficiary, w.milestone_id HAVING count(*) > 1;
SELECT * FROM problems ORDER BY 1, 2;
SELECT count(*) = 0 AS consistent FROM problems \gset
\if :consistent
\echo 'soak: the ledger is consistent'
\else
\echo 'soak: PROBLEMS FOUND'
SELECT 1/0;
\endif

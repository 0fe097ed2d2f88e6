-- Views for analysts, and participant_summary(), the
-- one participant's figures that the application reads.  grant_analyst() grants
-- SELECT on every view of the schema; grant_app() grants participant_summary().
--
-- Definitions shared by every view:
-- - referrals: accepted referrals (pending or converted); program_stats.rejected
--   counts rejected redeem attempts (rows), separately.
-- - conversions: referrals converted now (a reversed converting order returns its
--   referral to pending, and it no longer counts).
-- - revenue: the amounts of the qualifying orders of referred customers, not
--   reversed, read from the ledger (referral.attributed_order: each converting order
--   and every later qualifying order of its referee, with its amount as last seen by
--   the order trigger), not by scanning the shop's orders tables: fast, independent
--   of the tables' privileges, and unchanged when a table is untracked.  Paid orders
--   that did not qualify (below min_order_amount, outside the active period, before
--   the conversion) are not revenue.  A referrer's revenue is that of their own
--   (level 1) referrals.
-- - reward_cost: rewards not reversed, of every kind and level, clawbacks (negative)
--   included; a program's or a variant's by the reward's referral.
-- - Count columns are bigint, money columns numeric (0, never NULL, when there is
--   nothing), rates and p-values double precision; a rate whose divisor is 0 is NULL.
-- - Days are calendar days in the session's TimeZone (at query time).
--
-- Every view aggregates each table once, grouped by program (and customer), in
-- subqueries joined together: no correlated subquery per row, and a filter on
-- program_id (and customer) is pushed down into each of them.

CREATE FUNCTION referral.two_proportion_p_value(successes_a bigint, trials_a bigint, successes_b bigint, trials_b bigint)
RETURNS double precision
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_two_proportion_p_value';
COMMENT ON FUNCTION referral.two_proportion_p_value(bigint, bigint, bigint, bigint)
	IS 'two-sided p-value of the pooled two-proportion z-test of successes_a/trials_a against successes_b/trials_b; NULL when a sample is empty or the pooled rate is 0 or 1';

-- The variant each code holder is assigned to: referral.variant_of() for every code
-- at once (the same hash, the same slots of the cumulative weights in variant id
-- order), written out here because a view must not call functions that its readers
-- may not execute.  test/pgtap/30_views.sql checks that both agree.
CREATE VIEW referral._code_variant AS
SELECT c.tenant, c.program_id, c.customer, c.code, COALESCE(c.forgotten_variant, s.name) AS variant
  FROM (SELECT k.tenant, k.program_id, k.customer, k.code, k.forgotten_variant,
               -- no hashing in programs without variants, nor for a forgotten holder
               CASE WHEN t.total IS NOT NULL AND k.forgotten_variant IS NULL
                    THEN ('x' || pg_catalog.substr(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                              k.program_id::text || ':' || k.customer, 'UTF8')), 'hex'), 1, 15))::bit(60)::bigint
                         % t.total
               END AS slot
          FROM referral.code k
          LEFT JOIN (SELECT v.program_id, pg_catalog.sum(v.weight) AS total
                       FROM referral.variant v
                      GROUP BY v.program_id) t ON t.program_id = k.program_id) c
  LEFT JOIN (SELECT v.program_id, v.name, v.weight,
                    pg_catalog.sum(v.weight) OVER (PARTITION BY v.program_id ORDER BY v.id) AS upto
               FROM referral.variant v) s
    ON s.program_id = c.program_id AND c.slot >= s.upto - s.weight AND c.slot < s.upto;
COMMENT ON VIEW referral._code_variant
	IS 'internal: the A/B variant of every code holder (as referral.variant_of), NULL in programs without variants';

-- Every code holder's figures: referrer_stats, leaderboard and participant_summary
-- read them from here, so that they agree.  tier: how many of the level-1 referrer
-- tiers (distinct min_conversions of the rules for the holder's variant, or of the
-- variant-less rules when that variant has none, as referral._pick_rule) the
-- holder's conversions reach: 1 = the base tier, 0 when no rule applies yet;
-- next_tier_at: the next tier's min_conversions, NULL at the top.  (A program has one
-- tenant: the big aggregates group by program, not by tenant as well, which makes
-- them cheaper; the referrals' one keeps tenant for participant_summary's index.)
CREATE VIEW referral._participant AS
SELECT c.tenant, c.program_id, c.customer, c.code, c.variant,
       COALESCE(pg_catalog.width_bucket(COALESCE(r.conversions, 0)::int, COALESCE(ts.tiers, tg.tiers)), 0) AS tier,
       (COALESCE(ts.tiers, tg.tiers))[COALESCE(pg_catalog.width_bucket(COALESCE(r.conversions, 0)::int,
                                                                   COALESCE(ts.tiers, tg.tiers)), 0) + 1] AS next_tier_at,
       COALESCE(k.clicks, 0) AS clicks,
       COALESCE(r.referrals, 0) AS referrals,
       COALESCE(r.conversions, 0) AS conversions,
       r.conversions::double precision / NULLIF(r.referrals, 0) AS conversion_rate,
       COALESCE(o.revenue, 0) AS revenue,
       COALESCE(w.pending, 0) AS rewards_pending,
       COALESCE(w.approved, 0) AS rewards_approved,
       COALESCE(w.paid, 0) AS rewards_paid,
       COALESCE(w.pending, 0) + COALESCE(w.approved, 0) + COALESCE(w.paid, 0) AS rewards
  FROM referral._code_variant c
  LEFT JOIN (SELECT x.tenant, x.program_id, x.code, pg_catalog.count(*) AS clicks
               FROM referral.click x
              GROUP BY x.tenant, x.program_id, x.code) k
    ON k.tenant = c.tenant AND k.program_id = c.program_id AND k.code OPERATOR(referral.=) c.code
  LEFT JOIN (SELECT x.tenant, x.program_id, x.referrer,
                    pg_catalog.count(*) AS referrals,
                    pg_catalog.count(*) FILTER (WHERE x.status = 'converted') AS conversions
               FROM referral.referral x
              WHERE x.status <> 'rejected'
              GROUP BY x.tenant, x.program_id, x.referrer) r
    ON r.tenant = c.tenant AND r.program_id = c.program_id AND r.referrer = c.customer
  LEFT JOIN (SELECT x.tenant, x.program_id, x.referrer, pg_catalog.sum(a.amount) AS revenue
               FROM referral.attributed_order a
               JOIN referral.referral x ON x.tenant = a.tenant AND x.id = a.referral_id
              WHERE a.reversed_at IS NULL
              GROUP BY x.tenant, x.program_id, x.referrer) o
    ON o.tenant = c.tenant AND o.program_id = c.program_id AND o.referrer = c.customer
  LEFT JOIN (SELECT x.tenant, x.program_id, x.beneficiary,
                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'pending') AS pending,
                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'approved') AS approved,
                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'paid') AS paid
               FROM referral.reward x
              GROUP BY x.tenant, x.program_id, x.beneficiary) w
    ON w.tenant = c.tenant AND w.program_id = c.program_id AND w.beneficiary = c.customer
  LEFT JOIN (SELECT x.program_id, x.variant,
                    pg_catalog.array_agg(DISTINCT x.min_conversions ORDER BY x.min_conversions) AS tiers
               FROM referral.reward_rule x
              WHERE x.beneficiary = 'referrer' AND x.level = 1 AND x.variant IS NOT NULL
              GROUP BY x.program_id, x.variant) ts
    ON ts.program_id = c.program_id AND ts.variant = c.variant
  LEFT JOIN (SELECT x.program_id,
                    pg_catalog.array_agg(DISTINCT x.min_conversions ORDER BY x.min_conversions) AS tiers
               FROM referral.reward_rule x
              WHERE x.beneficiary = 'referrer' AND x.level = 1 AND x.variant IS NULL
              GROUP BY x.program_id) tg
    ON tg.program_id = c.program_id;
COMMENT ON VIEW referral._participant
	IS 'internal: every code holder''s figures (tier, next_tier_at, clicks, referrals, conversions, revenue, rewards by status), read by referrer_stats, leaderboard and participant_summary';

CREATE VIEW referral.program_stats AS
SELECT p.id AS program_id,
       p.name AS program,
       COALESCE(k.clicks, 0) AS clicks,
       COALESCE(r.referrals, 0) AS referrals,
       COALESCE(r.rejected, 0) AS rejected,
       COALESCE(r.conversions, 0) AS conversions,
       r.conversions::double precision / NULLIF(r.referrals, 0) AS conversion_rate,
       COALESCE(o.revenue, 0) AS revenue,
       COALESCE(w.reward_cost, 0) AS reward_cost,
       COALESCE(w.reward_cost, 0) / NULLIF(r.conversions, 0) AS cost_per_acquisition,
       ((COALESCE(o.revenue, 0) - w.reward_cost) / NULLIF(w.reward_cost, 0))::double precision AS roi,
       COALESCE(r.referrals, 0)::double precision / NULLIF(h.holders, 0) AS k_factor
  FROM referral.program p
  LEFT JOIN (SELECT x.tenant, x.program_id, pg_catalog.count(*) AS clicks
               FROM referral.click x GROUP BY x.tenant, x.program_id) k
    ON k.tenant = p.tenant AND k.program_id = p.id
  LEFT JOIN (SELECT x.tenant, x.program_id, pg_catalog.count(*) AS holders
               FROM referral.code x GROUP BY x.tenant, x.program_id) h
    ON h.tenant = p.tenant AND h.program_id = p.id
  LEFT JOIN (SELECT x.tenant, x.program_id,
                    pg_catalog.count(*) FILTER (WHERE x.status <> 'rejected') AS referrals,
                    pg_catalog.count(*) FILTER (WHERE x.status = 'rejected') AS rejected,
                    pg_catalog.count(*) FILTER (WHERE x.status = 'converted') AS conversions
               FROM referral.referral x GROUP BY x.tenant, x.program_id) r
    ON r.tenant = p.tenant AND r.program_id = p.id
  LEFT JOIN (SELECT a.tenant, a.program_id, pg_catalog.sum(a.amount) AS revenue
               FROM referral.attributed_order a
              WHERE a.reversed_at IS NULL
              GROUP BY a.tenant, a.program_id) o
    ON o.tenant = p.tenant AND o.program_id = p.id
  LEFT JOIN (SELECT x.tenant, x.program_id, pg_catalog.sum(x.amount) AS reward_cost
               FROM referral.reward x
              WHERE x.status <> 'reversed'
              GROUP BY x.tenant, x.program_id) w
    ON w.tenant = p.tenant AND w.program_id = p.id;
COMMENT ON VIEW referral.program_stats
	IS 'one row per program: clicks, accepted referrals, rejected attempts, conversions, conversion_rate (conversions / referrals), revenue (attributed orders not reversed), reward_cost (rewards not reversed, clawbacks included), cost_per_acquisition (reward_cost / conversions), roi ((revenue - reward_cost) / reward_cost), k_factor (referrals per code holder)';

CREATE VIEW referral.referrer_stats AS
SELECT s.program_id, s.customer, s.code, s.variant, s.tier, s.clicks, s.referrals,
       s.conversions, s.conversion_rate, s.revenue,
       s.rewards_pending, s.rewards_approved, s.rewards_paid
  FROM referral._participant s;
COMMENT ON VIEW referral.referrer_stats
	IS 'one row per code holder and program: code, A/B variant, tier (level-1 referrer tiers reached, 1 = base), clicks on the code, accepted referrals, conversions, conversion_rate, revenue of their referees'' attributed orders, and their rewards by status (clawbacks under their own status)';

-- rank(): referrers with the same conversions and revenue share a rank, and the next
-- rank skips (1, 2, 2, 4), so that equal results never look ordered.  rewards: the
-- participant's rewards not reversed, clawbacks included.  Every code holder has a row.
CREATE VIEW referral.leaderboard AS
SELECT s.program_id,
       pg_catalog.rank() OVER (PARTITION BY s.program_id ORDER BY s.conversions DESC, s.revenue DESC) AS rank,
       s.customer, s.conversions, s.revenue, s.rewards
  FROM referral._participant s;
COMMENT ON VIEW referral.leaderboard
	IS 'code holders ranked per program by conversions, then revenue (rank(): ties share a rank); rewards = their rewards not reversed, clawbacks included';

CREATE VIEW referral.reward_balance AS
SELECT w.tenant, w.beneficiary AS customer, w.currency,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'pending'), 0) AS pending,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'approved'), 0) AS approved,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'paid'), 0) AS paid,
       COALESCE(pg_catalog.sum(w.amount) FILTER (WHERE w.status = 'reversed'), 0) AS reversed,
       COALESCE((SELECT pg_catalog.sum(s.amount) FROM referral.credit_spend s
                  WHERE s.tenant = w.tenant AND s.customer = w.beneficiary AND s.currency = w.currency
                    AND s.refunded_at IS NULL), 0) AS spent
  FROM referral.reward w
 GROUP BY w.tenant, w.beneficiary, w.currency;
COMMENT ON VIEW referral.reward_balance
	IS 'per tenant, beneficiary and currency, over all programs: reward amounts by status; paid is gross (what was paid out, store credit spent whole included), a clawback counts under its own status (approved, negative, until a payout nets it); spent = store credit spent at checkout, not refunded';

CREATE VIEW referral.variant_stats AS
SELECT s.program_id, s.variant, s.referrers, s.referrals, s.conversions, s.conversion_rate,
       s.revenue, s.reward_cost,
       CASE WHEN s.id <> s.first_id
            THEN referral.two_proportion_p_value(s.first_conversions, s.first_referrals, s.conversions, s.referrals)
       END AS p_value
  FROM (SELECT v.program_id, v.id, v.name AS variant,
               COALESCE(h.referrers, 0) AS referrers,
               COALESCE(r.referrals, 0) AS referrals,
               COALESCE(r.conversions, 0) AS conversions,
               r.conversions::double precision / NULLIF(r.referrals, 0) AS conversion_rate,
               COALESCE(o.revenue, 0) AS revenue,
               COALESCE(w.reward_cost, 0) AS reward_cost,
               pg_catalog.first_value(v.id) OVER first AS first_id,
               pg_catalog.first_value(COALESCE(r.conversions, 0)) OVER first AS first_conversions,
               pg_catalog.first_value(COALESCE(r.referrals, 0)) OVER first AS first_referrals
          FROM referral.variant v
          LEFT JOIN (SELECT x.tenant, x.program_id, x.variant, pg_catalog.count(*) AS referrers
                       FROM referral._code_variant x
                      WHERE x.variant IS NOT NULL
                      GROUP BY x.tenant, x.program_id, x.variant) h
            ON h.tenant = v.tenant AND h.program_id = v.program_id AND h.variant = v.name
          LEFT JOIN (SELECT x.tenant, x.program_id, x.variant,
                            pg_catalog.count(*) AS referrals,
                            pg_catalog.count(*) FILTER (WHERE x.status = 'converted') AS conversions
                       FROM referral.referral x
                      WHERE x.status <> 'rejected' AND x.variant IS NOT NULL
                      GROUP BY x.tenant, x.program_id, x.variant) r
            ON r.tenant = v.tenant AND r.program_id = v.program_id AND r.variant = v.name
          LEFT JOIN (SELECT x.tenant, x.program_id, x.variant, pg_catalog.sum(a.amount) AS revenue
                       FROM referral.attributed_order a
                       JOIN referral.referral x ON x.tenant = a.tenant AND x.id = a.referral_id
                      WHERE a.reversed_at IS NULL AND x.variant IS NOT NULL
                      GROUP BY x.tenant, x.program_id, x.variant) o
            ON o.tenant = v.tenant AND o.program_id = v.program_id AND o.variant = v.name
          LEFT JOIN (SELECT x.tenant, x.program_id, x.variant, pg_catalog.sum(w.amount) AS reward_cost
                       FROM referral.reward w
                       JOIN referral.referral x ON x.tenant = w.tenant AND x.id = w.referral_id
                      WHERE w.status <> 'reversed' AND x.variant IS NOT NULL
                      GROUP BY x.tenant, x.program_id, x.variant) w
            ON w.tenant = v.tenant AND w.program_id = v.program_id AND w.variant = v.name
        WINDOW first AS (PARTITION BY v.program_id ORDER BY v.id)) s;
COMMENT ON VIEW referral.variant_stats
	IS 'one row per A/B variant: code holders assigned to it, accepted referrals made in it, conversions, conversion_rate, revenue, reward_cost, and p_value of a two-proportion z-test of its conversion rate against the first variant''s (lowest id; NULL for that one and when undefined)';

-- Each day's figures by the date of their own event: clicks (click.at), accepted
-- referrals (created_at), conversions (converted_at), revenue (the attributed order's
-- time), reward_cost (the reward's created_at; a clawback on its own day).  A day
-- has a row when any of them does.
CREATE VIEW referral.daily_stats AS
SELECT d.program_id, d.day,
       pg_catalog.sum(d.clicks)::bigint AS clicks,
       pg_catalog.sum(d.referrals)::bigint AS referrals,
       pg_catalog.sum(d.conversions)::bigint AS conversions,
       pg_catalog.sum(d.revenue) AS revenue,
       pg_catalog.sum(d.reward_cost) AS reward_cost
  FROM (SELECT x.program_id, x.at::date AS day, pg_catalog.count(*) AS clicks, 0::bigint AS referrals,
               0::bigint AS conversions, 0::numeric AS revenue, 0::numeric AS reward_cost
          FROM referral.click x
         GROUP BY 1, 2
        UNION ALL
        SELECT x.program_id, x.created_at::date, 0, pg_catalog.count(*), 0, 0, 0
          FROM referral.referral x
         WHERE x.status <> 'rejected'
         GROUP BY 1, 2
        UNION ALL
        SELECT x.program_id, x.converted_at::date, 0, 0, pg_catalog.count(*), 0, 0
          FROM referral.referral x
         WHERE x.status = 'converted'
         GROUP BY 1, 2
        UNION ALL
        SELECT a.program_id, a.ordered_at::date, 0, 0, 0, pg_catalog.sum(a.amount), 0
          FROM referral.attributed_order a
         WHERE a.reversed_at IS NULL
         GROUP BY 1, 2
        UNION ALL
        SELECT w.program_id, w.created_at::date, 0, 0, 0, 0, pg_catalog.sum(w.amount)
          FROM referral.reward w
         WHERE w.status <> 'reversed'
         GROUP BY 1, 2) d
 GROUP BY d.program_id, d.day;
COMMENT ON VIEW referral.daily_stats
	IS 'per program and calendar day (session TimeZone): clicks, accepted referrals, conversions (by converted_at), revenue (by order time), reward_cost (by reward created_at)';

-- Signals on accepted referrals (a rejected attempt was stopped already):
-- - shared_ip: 3 or more referrals of one referrer from one IP (hash) within one hour
--   (created_at at most an hour apart); each referral of such a group has a row;
-- - shared_device: referees of one referrer with the same device (hash);
-- - near_daily_limit: the referrer's accepted referrals on that calendar day reach 80%
--   of the program's daily_referral_limit; each referral of that day has a row;
-- - rejected_attempts: the referee also made rejected redeem attempts (in the tenant).
-- A referral has one row per signal.  The detail says why in words.
CREATE VIEW referral.suspicious_referrals AS
SELECT a.id AS referral_id, a.program_id, a.referrer, a.referee, 'shared_ip'::text AS signal,
       pg_catalog.format('%s referees of this referrer signed up from the same IP address within one hour',
                         pg_catalog.max(g.n)) AS detail
  FROM referral.referral a
  JOIN (SELECT x.program_id, x.referrer, x.ip_hash, x.created_at AS since,
               pg_catalog.count(*) OVER (PARTITION BY x.program_id, x.referrer, x.ip_hash ORDER BY x.created_at
                                         RANGE BETWEEN CURRENT ROW AND '1 hour' FOLLOWING) AS n
          FROM referral.referral x
         WHERE x.status <> 'rejected' AND x.ip_hash IS NOT NULL) g
    ON g.program_id = a.program_id AND g.referrer = a.referrer AND g.ip_hash = a.ip_hash
   AND a.created_at >= g.since AND a.created_at <= g.since + '1 hour'::interval AND g.n >= 3
 WHERE a.status <> 'rejected'
 GROUP BY a.id, a.program_id, a.referrer, a.referee
UNION ALL
SELECT d.id, d.program_id, d.referrer, d.referee, 'shared_device',
       pg_catalog.format('the referee''s device is shared by %s other referee(s) of this referrer', d.n - 1)
  FROM (SELECT x.id, x.program_id, x.referrer, x.referee,
               pg_catalog.count(*) OVER (PARTITION BY x.program_id, x.referrer, x.device_hash) AS n
          FROM referral.referral x
         WHERE x.status <> 'rejected' AND x.device_hash IS NOT NULL) d
 WHERE d.n >= 2
UNION ALL
SELECT d.id, d.program_id, d.referrer, d.referee, 'near_daily_limit',
       pg_catalog.format('%s accepted referrals of this referrer on %s: %s%% of the daily limit of %s',
                         d.n, pg_catalog.to_char(d.day::timestamp, 'YYYY-MM-DD'), 100 * d.n / d.daily_limit,
                         d.daily_limit)
  FROM (SELECT x.id, x.program_id, x.referrer, x.referee, x.created_at::date AS day,
               p.daily_referral_limit AS daily_limit,
               pg_catalog.count(*) OVER (PARTITION BY x.program_id, x.referrer, x.created_at::date) AS n
          FROM referral.referral x
          JOIN referral.program p ON p.id = x.program_id
         WHERE x.status <> 'rejected' AND p.daily_referral_limit IS NOT NULL) d
 WHERE d.n * 5 >= d.daily_limit * 4
UNION ALL
SELECT a.id, a.program_id, a.referrer, a.referee, 'rejected_attempts',
       pg_catalog.format('the referee made %s rejected redeem attempt(s): %s', j.n, j.reasons)
  FROM referral.referral a
  JOIN (SELECT x.tenant, x.referee, pg_catalog.count(*) AS n,
               pg_catalog.string_agg(DISTINCT x.reason, ', ' ORDER BY x.reason) AS reasons
          FROM referral.referral x
         WHERE x.status = 'rejected'
         GROUP BY x.tenant, x.referee) j
    ON j.tenant = a.tenant AND j.referee = a.referee
 WHERE a.status <> 'rejected';
COMMENT ON VIEW referral.suspicious_referrals
	IS 'accepted referrals with a fraud signal, one row per signal: shared_ip (3+ referees of a referrer from one IP within an hour), shared_device (referees of a referrer sharing a device), near_daily_limit (the referrer''s accepted referrals that day reach 80% of daily_referral_limit), rejected_attempts (the referee also had rejected attempts); detail says why';

CREATE FUNCTION referral.participant_summary(program bigint, customer text)
RETURNS TABLE (code referral.referral_code, variant text, clicks bigint, referrals bigint,
               conversions bigint, tier int, next_tier_at int, rewards_pending numeric,
               rewards_approved numeric, rewards_paid numeric)
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p referral.program := referral._program(participant_summary.program);
BEGIN
	-- Code, variant, referrals, conversions and tier from the view; clicks and rewards
	-- (the same rows as the view's columns) by index lookups of this one participant,
	-- so that the view's aggregates of the whole program are left out of the plan.
	RETURN QUERY
	SELECT s.code, s.variant,
	       (SELECT pg_catalog.count(*) FROM referral.click k
	         WHERE k.tenant = s.tenant AND k.code OPERATOR(referral.=) s.code AND k.program_id = s.program_id),
	       s.referrals, s.conversions, s.tier, s.next_tier_at,
	       COALESCE(w.pending, 0), COALESCE(w.approved, 0), COALESCE(w.paid, 0)
	  FROM referral._participant s
	 CROSS JOIN (SELECT pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'pending') AS pending,
	                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'approved') AS approved,
	                    pg_catalog.sum(x.amount) FILTER (WHERE x.status = 'paid') AS paid
	               FROM referral.reward x
	              WHERE x.tenant = p.tenant AND x.beneficiary = participant_summary.customer
	                AND x.program_id = p.id) w
	 WHERE s.tenant = p.tenant AND s.program_id = p.id AND s.customer = participant_summary.customer;
END
$$;
COMMENT ON FUNCTION referral.participant_summary(bigint, text)
	IS 'one participant''s own dashboard in a program: code, variant, clicks, referrals, conversions, tier and next_tier_at, rewards by status; no row without a code';

-- Operations and privacy: void_referral, block/unblock, hold_suspicious and release,
-- payout_batch, export and forget.  Everything in tenant 'ops'; ids are printed only
-- relative to each other (other tests share the database and its sequences).
SET TimeZone = 'UTC';
SET client_min_messages = warning;
\set VERBOSITY terse

CREATE TABLE ops_orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL,
                         status text NOT NULL DEFAULT 'paid');
SELECT referral.track_orders('ops_orders', 'customer', 'amount', status_column => 'status', tenant => 'ops');
SELECT referral.create_program('ops', tenant => 'ops', hold_period => '0', max_depth => 2) AS p \gset
SELECT referral.add_reward(:p, 'referee', fixed => 5, reward_type => 'cash') IS NOT NULL AS rule;
SELECT referral.add_reward(:p, 'referrer', percent => 10, reward_type => 'cash') IS NOT NULL AS rule;
SELECT referral.add_reward(:p, 'referrer', fixed => 1, level => 2, reward_type => 'cash') IS NOT NULL AS rule;
SELECT referral.add_variant(:p, 'A') IS NOT NULL AS variant, referral.add_variant(:p, 'B') IS NOT NULL AS variant;
SELECT referral.issue_code(:p, c, vanity => v::referral.referral_code) FROM (VALUES ('ann', 'ANN'), ('ben', 'BEN'), ('cat', 'CAT')) x(c, v);

-- A rewards view of the tenant: who, what, how much, which status.
CREATE VIEW ops_rewards AS
SELECT w.beneficiary, w.kind, w.level, w.amount, w.status, w.order_ref
  FROM referral.reward w WHERE w.tenant = 'ops' ORDER BY w.id;

-- ---------------------------------------------------------------------------
-- void_referral
-- ---------------------------------------------------------------------------
-- ann > ben > dan; ben's order converts, pays ben 5, ann 10; approved, ann's paid.
SELECT status, reason FROM referral.redeem('ANN', 'ben');
SELECT status, reason FROM referral.redeem('BEN', 'dan');
INSERT INTO ops_orders VALUES (1, 'ben', 100);
SELECT referral.approve_due(now() + '1 second') > 0 AS approved;
SELECT referral.mark_paid(ARRAY(SELECT id FROM referral.reward WHERE tenant = 'ops' AND beneficiary = 'ann'), 'PAY-1');
SELECT * FROM ops_rewards;
SELECT level, customer FROM referral.upline('dan', 'ops');
-- Voiding ben's referral: ben's approved reward reversed, ann's paid one clawed back.
SELECT referral.void_referral((SELECT id FROM referral.referral WHERE tenant = 'ops' AND referee = 'ben'), 'fraud ring');
SELECT * FROM ops_rewards;
SELECT referee, status, reason, voided_at IS NOT NULL AS voided, converted_at FROM referral.referral
 WHERE tenant = 'ops' ORDER BY id;
-- Its chain link went: ben (and dan below him) no longer hang below ann.
SELECT level, customer FROM referral.upline('dan', 'ops');
SELECT level, customer FROM referral.downline('ann', 'ops');
SELECT kind, payload - 'referral_id' - 'program_id' AS payload FROM referral.event
 WHERE tenant = 'ops' AND kind = 'referral_voided';
-- A later refund of the order that converted it brings nothing back.
UPDATE ops_orders SET status = 'refunded' WHERE id = 1;
SELECT * FROM ops_rewards;
SELECT referee, status, reason FROM referral.referral WHERE tenant = 'ops' AND referee = 'ben';
SELECT count(*) AS audit_problems FROM referral.audit(:p);
-- Bad calls: nothing changes.
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || regexp_replace(SQLERRM, '\d+', 'N');	-- ids vary with the other tests
END $$;
SELECT pg_temp.error_of($$SELECT referral.void_referral((SELECT id FROM referral.referral WHERE tenant = 'ops' AND referee = 'ben'), 'again')$$);
SELECT referral.void_referral(-1, 'no such referral');
SELECT referral.void_referral((SELECT id FROM referral.referral WHERE tenant = 'ops' AND referee = 'dan'), ' ');
SELECT referral.void_referral((SELECT id FROM referral.referral WHERE tenant = 'ops' AND referee = 'dan'), repeat('x', 201));
-- A pending referral voided: no rewards change; dan may not convert any more.
SELECT referral.void_referral((SELECT id FROM referral.referral WHERE tenant = 'ops' AND referee = 'dan'), 'duplicate account');
INSERT INTO ops_orders VALUES (2, 'dan', 100);
SELECT count(*) AS dan_rewards FROM referral.reward WHERE tenant = 'ops' AND beneficiary = 'dan';

-- ---------------------------------------------------------------------------
-- block, unblock, the blocked view
-- ---------------------------------------------------------------------------
SELECT status, reason FROM referral.redeem('CAT', 'eve');
SELECT referral.block('cat', 'chargebacks', 'ops');
SELECT referral.block('cat', 'chargebacks, twice', 'ops');		-- a new reason, one row
SELECT tenant, customer, reason FROM referral.blocked WHERE tenant = 'ops';
-- Already referred comes first; then blocked (the referrer, or the referee).
SELECT status, reason FROM referral.redeem('CAT', 'eve');
SELECT status, reason FROM referral.redeem('CAT', 'fay');
SELECT referral.block('gus', 'bot', 'ops');
SELECT status, reason FROM referral.redeem('ANN', 'gus');
-- Rewards of a blocked beneficiary stay pending; eve's referee reward does not.
INSERT INTO ops_orders VALUES (3, 'eve', 50);
SELECT referral.approve_due(now() + '1 second') >= 0 AS ran;
SELECT * FROM ops_rewards WHERE order_ref = '3';
SELECT referral.unblock('cat', 'ops');
SELECT referral.unblock('nobody', 'ops');		-- not blocked: nothing happens
SELECT referral.approve_due(now() + '1 second') > 0 AS approved;
SELECT * FROM ops_rewards WHERE order_ref = '3';
SELECT kind, payload FROM referral.event WHERE tenant = 'ops' AND kind IN ('customer_blocked', 'customer_unblocked')
 ORDER BY id;
SELECT referral.block('cat', '', 'ops');
SELECT referral.block('', 'x', 'ops');

-- ---------------------------------------------------------------------------
-- hold_suspicious and release
-- ---------------------------------------------------------------------------
SELECT referral.create_program('held', tenant => 'ops', starts_at => now() - '1 day'::interval, hold_period => '0', hold_suspicious => true) AS h \gset
SELECT referral.add_reward(:h, 'referee', fixed => 2, reward_type => 'cash') IS NOT NULL AS rule;
SELECT hold_suspicious FROM referral.program WHERE id = :h;
SELECT referral.issue_code(:h, 'hal', vanity => 'HAL');
-- Three referees of hal from one IP within the hour: shared_ip for all three.
SELECT x.r, d.status
  FROM (VALUES ('h1', 3), ('h2', 2), ('h3', 1)) x(r, n),
       LATERAL referral.redeem('HAL', x.r, ip => '198.51.100.7', at => now() - (x.n || ' minutes')::interval) d;
SELECT (referral.redeem('HAL', 'h4', ip => '203.0.113.1')).status;
SELECT r.referee, s.signal FROM referral.suspicious_referrals s JOIN referral.referral r ON r.id = s.referral_id
 WHERE s.program_id = :h ORDER BY r.referee;
INSERT INTO ops_orders VALUES (11, 'h1', 10), (12, 'h2', 10), (13, 'h3', 10), (14, 'h4', 10);
SELECT referral.approve_due(now() + '1 second') > 0 AS approved;
SELECT beneficiary, status FROM referral.reward WHERE program_id = :h ORDER BY beneficiary;
SELECT referral.release((SELECT id FROM referral.referral WHERE tenant = 'ops' AND referee = 'h1'));
SELECT referral.release((SELECT id FROM referral.referral WHERE tenant = 'ops' AND referee = 'h1'));	-- again: 0
SELECT referral.release((SELECT id FROM referral.referral WHERE tenant = 'ops' AND referee = 'h4'));	-- not held: 0
SELECT referral.release(-1);
SELECT referral.approve_due(now() + '1 second') > 0 AS approved;
SELECT beneficiary, status FROM referral.reward WHERE program_id = :h ORDER BY beneficiary;
SELECT payload->>'referee' AS referee, payload->>'rewards_freed' AS freed FROM referral.event
 WHERE tenant = 'ops' AND kind = 'referral_released' ORDER BY id;

-- ---------------------------------------------------------------------------
-- payout_batch
-- ---------------------------------------------------------------------------
-- Approved cash rewards of tenant ops, clawbacks netted (ann: 10 paid, clawback -10
-- approved; so ann nets -10 and is left out), blocked customers left out.
SELECT beneficiary, amount, cardinality(reward_ids) AS rewards FROM referral.payout_batch('USD', tenant => 'ops');
SELECT beneficiary, amount FROM referral.payout_batch('USD', min_amount => 5, tenant => 'ops');
SELECT beneficiary, amount FROM referral.payout_batch('USD', reward_type => 'credit', tenant => 'ops');
SELECT beneficiary, amount FROM referral.payout_batch('EUR', tenant => 'ops');
-- The batch's ids are what mark_paid takes.
SELECT referral.mark_paid((SELECT reward_ids FROM referral.payout_batch('USD', tenant => 'ops') WHERE beneficiary = 'eve'), 'BATCH-1');
SELECT beneficiary, amount FROM referral.payout_batch('USD', tenant => 'ops');
SELECT * FROM referral.payout_batch('usd');
SELECT * FROM referral.payout_batch('USD', min_amount => -1);
SELECT * FROM referral.payout_batch('USD', reward_type => 'bitcoin');

-- ---------------------------------------------------------------------------
-- export
-- ---------------------------------------------------------------------------
SELECT referral.record_click('CAT', 'mail', '192.0.2.1', 'Mozilla/5.0 cat') IS NOT NULL AS clicked;
SELECT jsonb_array_length(e->'codes') AS codes, jsonb_array_length(e->'clicks') AS clicks,
       jsonb_array_length(e->'referrals_as_referrer') AS as_referrer,
       jsonb_array_length(e->'referrals_as_referee') AS as_referee,
       jsonb_array_length(e->'rewards') AS rewards, e->'blocked' AS blocked,
       (SELECT array_agg(DISTINCT x->>'kind' ORDER BY x->>'kind') FROM jsonb_array_elements(e->'events') x) AS event_kinds
  FROM referral.export('cat', 'ops') e;
SELECT e->'codes'->0->>'code' AS code, e->'clicks'->0->>'user_agent' AS user_agent,
       e->'referrals_as_referrer'->0->>'referee' AS referee, e->'rewards'->0->>'amount' AS amount
  FROM referral.export('cat', 'ops') e;
SELECT referral.export('nobody at all', 'ops') - 'tenant';
SELECT referral.export('', 'ops');

-- ---------------------------------------------------------------------------
-- forget
-- ---------------------------------------------------------------------------
-- cat: holds a code with a click, referred eve (converted) and fay (rejected), was
-- referred by ann, refers ivy (pending), earned rewards; blocked once.  Everything
-- the views and chains say must stay as it was.
SELECT status FROM referral.redeem('ANN', 'cat');
SELECT status FROM referral.redeem('CAT', 'ivy');
INSERT INTO ops_orders VALUES (4, 'cat', 80);
CREATE TEMP TABLE before_forget AS
SELECT 'program_stats' AS what, (SELECT string_agg(s::text, ';' ORDER BY s.program_id) FROM referral.program_stats s
                                  WHERE s.program_id IN (:p, :h)) AS figures
UNION ALL SELECT 'variant_stats', (SELECT string_agg(s::text, ';' ORDER BY s.variant) FROM referral.variant_stats s WHERE s.program_id = :p)
UNION ALL SELECT 'daily_stats', (SELECT string_agg(s::text, ';' ORDER BY s.day) FROM referral.daily_stats s WHERE s.program_id = :p)
UNION ALL SELECT 'leaderboard', (SELECT string_agg(concat_ws(',', s.rank, s.conversions, s.revenue, s.rewards), ';' ORDER BY s.rank, s.rewards)
                                   FROM referral.leaderboard s WHERE s.program_id = :p)
UNION ALL SELECT 'referrer_stats', (SELECT string_agg(concat_ws(',', s.code, s.variant, s.tier, s.clicks, s.referrals, s.conversions,
                                                               s.revenue, s.rewards_pending, s.rewards_approved, s.rewards_paid),
                                                      ';' ORDER BY s.code::text)
                                      FROM referral.referrer_stats s WHERE s.program_id = :p)
UNION ALL SELECT 'reward_balance', (SELECT string_agg(concat_ws(',', s.pending, s.approved, s.paid, s.reversed), ';' ORDER BY s.pending, s.approved, s.paid, s.reversed)
                                      FROM referral.reward_balance s WHERE s.tenant = 'ops')
UNION ALL SELECT 'reward sums', (SELECT string_agg(concat_ws(',', status, sum), ';' ORDER BY status)
                                   FROM (SELECT status, sum(amount) FROM referral.reward WHERE tenant = 'ops' GROUP BY status) s)
UNION ALL SELECT 'upline of ivy', (SELECT string_agg(level::text, ',' ORDER BY level) FROM referral.upline('ivy', 'ops'))
UNION ALL SELECT 'downline of ann', (SELECT string_agg(level || ':' || CASE WHEN customer = 'cat' THEN 'X' ELSE customer END, ',' ORDER BY level, customer)
                                       FROM referral.downline('ann', 'ops'))
UNION ALL SELECT 'participant_summary', (SELECT string_agg(s::text, ';') FROM referral.participant_summary(:p, 'ann') s);
SELECT what, figures IS NOT NULL AS has_figures FROM before_forget ORDER BY what;

SELECT referral.forget('cat', 'ops') > 0 AS forgot;
SELECT referral.forget('cat', 'ops') AS again;
SELECT referral.forget('never seen', 'ops') AS unknown;
SELECT referral.forget('', 'ops');
-- Same figures (with cat read as the pseudonym).
SELECT b.what, b.figures = a.figures AS same, CASE WHEN b.figures IS DISTINCT FROM a.figures THEN b.figures || ' / ' || a.figures END AS diff
  FROM before_forget b
  JOIN (SELECT 'program_stats' AS what, (SELECT string_agg(s::text, ';' ORDER BY s.program_id) FROM referral.program_stats s
                                          WHERE s.program_id IN (:p, :h)) AS figures
        UNION ALL SELECT 'variant_stats', (SELECT string_agg(s::text, ';' ORDER BY s.variant) FROM referral.variant_stats s WHERE s.program_id = :p)
        UNION ALL SELECT 'daily_stats', (SELECT string_agg(s::text, ';' ORDER BY s.day) FROM referral.daily_stats s WHERE s.program_id = :p)
        UNION ALL SELECT 'leaderboard', (SELECT string_agg(concat_ws(',', s.rank, s.conversions, s.revenue, s.rewards), ';' ORDER BY s.rank, s.rewards)
                                           FROM referral.leaderboard s WHERE s.program_id = :p)
        UNION ALL SELECT 'referrer_stats', (SELECT string_agg(concat_ws(',', s.code, s.variant, s.tier, s.clicks, s.referrals, s.conversions,
                                                                       s.revenue, s.rewards_pending, s.rewards_approved, s.rewards_paid),
                                                              ';' ORDER BY s.code::text)
                                              FROM referral.referrer_stats s WHERE s.program_id = :p)
        UNION ALL SELECT 'reward_balance', (SELECT string_agg(concat_ws(',', s.pending, s.approved, s.paid, s.reversed), ';' ORDER BY s.pending, s.approved, s.paid, s.reversed)
                                              FROM referral.reward_balance s WHERE s.tenant = 'ops')
        UNION ALL SELECT 'reward sums', (SELECT string_agg(concat_ws(',', status, sum), ';' ORDER BY status)
                                           FROM (SELECT status, sum(amount) FROM referral.reward WHERE tenant = 'ops' GROUP BY status) s)
        UNION ALL SELECT 'upline of ivy', (SELECT string_agg(level::text, ',' ORDER BY level) FROM referral.upline('ivy', 'ops'))
        UNION ALL SELECT 'downline of ann', (SELECT string_agg(level || ':' || CASE WHEN customer LIKE 'forgotten-%' THEN 'X' ELSE customer END, ',' ORDER BY level, customer)
                                               FROM referral.downline('ann', 'ops'))
        UNION ALL SELECT 'participant_summary', (SELECT string_agg(s::text, ';') FROM referral.participant_summary(:p, 'ann') s)) a
    ON a.what = b.what
 ORDER BY b.what;
SELECT count(*) AS audit_problems FROM referral.audit();
-- No row of any table of the extension names cat any more.
CREATE FUNCTION pg_temp.rows_naming(k text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE t regclass; n bigint; found text := '';
BEGIN
	FOR t IN SELECT c.oid::regclass FROM pg_class c
	          WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind = 'r' ORDER BY c.relname LOOP
		EXECUTE format('SELECT count(*) FROM %s x WHERE x::text ~ %L', t, '(^|[^a-z])' || k || '([^a-z]|$)') INTO n;
		IF n > 0 THEN found := found || format('%s: %s ', t, n); END IF;
	END LOOP;
	RETURN found;
END $$;
SELECT pg_temp.rows_naming('cat') AS rows_naming_cat, pg_temp.rows_naming('ann') <> '' AS ann_still_there;
-- The pseudonym: derived from the secret, in the event, blocked.
SELECT pseudonym ~ '^forgotten-[0-9a-f]{32}$' AS pseudonym_form,
       pseudonym = 'forgotten-' || encode(substr(referral._fingerprint((SELECT fingerprint_key FROM referral.secret), 'customer',
                                                                      referral._customer_ref('ops', 'cat')), 1, 16), 'hex') AS from_secret
  FROM referral.forgotten WHERE tenant = 'ops';
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(payload) k) AS keys,
       payload->>'pseudonym' = (SELECT pseudonym FROM referral.forgotten WHERE tenant = 'ops') AS names_pseudonym
  FROM referral.event WHERE tenant = 'ops' AND kind = 'customer_forgotten';
SELECT reason FROM referral.blocked WHERE customer LIKE 'forgotten-%' AND tenant = 'ops';
-- The fingerprints went; the chain through the pseudonym stayed.
SELECT count(*) FILTER (WHERE email_hash IS NOT NULL OR device_hash IS NOT NULL) AS code_fingerprints
  FROM referral.code WHERE customer LIKE 'forgotten-%';
SELECT level, customer LIKE 'forgotten-%' AS pseudonym FROM referral.upline('ivy', 'ops');
-- Its code still exists, but is refused; orders and refunds of the old key are the
-- shop's: audit() skips them.
SELECT status, reason FROM referral.redeem('CAT', 'kim');
UPDATE ops_orders SET status = 'refunded' WHERE id = 4;
SELECT count(*) AS audit_problems FROM referral.audit();
-- The customer comes back under the same key: a new life, forgotten again under a
-- pseudonym of its own.
SELECT referral.issue_code(:p, 'cat') IS NOT NULL AS new_code;
SELECT referral.forget('cat', 'ops') > 0 AS forgot_again;
SELECT count(*) AS pseudonyms, count(DISTINCT pseudonym) AS distinct_pseudonyms FROM referral.forgotten WHERE tenant = 'ops';
SELECT pg_temp.rows_naming('cat') AS rows_naming_cat;

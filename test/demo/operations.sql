-- Operating a program: a referral held as suspicious, released by an operator, and
-- the payout batch that follows (doc/operations.md).
\echo '== operations: hold suspicious referrals, release one, pay a batch'
SET TimeZone = 'UTC';
SELECT referral.create_program('Careful', tenant => 'ops demo', starts_at => now() - '1 day'::interval,
	hold_period => '0', hold_suspicious => true) AS careful \gset
SELECT referral.add_reward(:careful, 'referrer', fixed => 10, reward_type => 'cash') AS rule \gset
SELECT referral.issue_code(:careful, 'olivia', vanity => 'OPS0LIVIA') AS code \gset
CREATE TABLE demo_ops_orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL);
SELECT referral.track_orders('demo_ops_orders', 'customer', 'amount', tenant => 'ops demo');
-- Three friends sign up from one IP within minutes (shared_ip), a fourth elsewhere.
SELECT f.friend, r.status
  FROM (VALUES ('pat', '198.51.100.20', 30), ('quin', '198.51.100.20', 20), ('rae', '198.51.100.20', 10),
               ('sol', '203.0.113.44', 5)) f(friend, ip, minutes),
       LATERAL referral.redeem('OPS0LIVIA', f.friend, ip => f.ip::inet, at => now() - (f.minutes || ' minutes')::interval) r;
INSERT INTO demo_ops_orders VALUES (1, 'pat', 40), (2, 'quin', 60), (3, 'rae', 25), (4, 'sol', 80);
\echo '-- the daily review: what suspicious_referrals lists'
SELECT r.referee, s.signal, s.detail FROM referral.suspicious_referrals s
  JOIN referral.referral r ON r.id = s.referral_id WHERE s.program_id = :careful ORDER BY r.referee;
\echo '-- approve_due approves sol''s referral reward and holds the three suspicious ones'
SELECT referral.approve_due(now() + '1 second') AS approved;
SELECT r.referee, w.amount, w.status FROM referral.reward w JOIN referral.referral r ON r.id = w.referral_id
 WHERE w.program_id = :careful ORDER BY r.referee;
\echo '-- pat is a real friend (checked by hand): release, then approve'
SELECT referral.release((SELECT id FROM referral.referral WHERE tenant = 'ops demo' AND referee = 'pat')) AS freed;
SELECT referral.approve_due(now() + '1 second') AS approved;
\echo '-- the payout batch: per beneficiary, the approved cash rewards, ready to pay'
SELECT * FROM referral.payout_batch('USD', tenant => 'ops demo');
SELECT referral.mark_paid((SELECT reward_ids FROM referral.payout_batch('USD', tenant => 'ops demo') WHERE beneficiary = 'olivia'),
                          'PAYOUT-2026-001') AS paid;
SELECT r.referee, w.amount, w.status, w.payout_ref FROM referral.reward w JOIN referral.referral r ON r.id = w.referral_id
 WHERE w.program_id = :careful ORDER BY r.referee;

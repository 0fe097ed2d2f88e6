-- Orders changed after they earned: a paid reward whose order's amount goes down is
-- partly clawed back (and never raised again), and an order that changes customer,
-- tenant or id is the old order reversed and a new one paid, in the same statement.
-- audit() is empty after each.  Every figure is worked out by hand in the comments.
BEGIN;
SELECT plan(34);
SET LOCAL TimeZone = 'UTC';

CREATE TABLE public.change_orders (
	id			bigint PRIMARY KEY,
	customer_id	text NOT NULL,
	total		numeric(12, 2) NOT NULL,
	status		text NOT NULL DEFAULT 'paid',
	placed_at	timestamptz NOT NULL
);
SELECT referral.track_orders('public.change_orders', 'customer_id', 'total',
	status_column => 'status', ordered_at_column => 'placed_at');

-- Referee $5; referrer 10% up to $20.  ann refers bo, cy, di, gus; ivy refers hal.
CREATE TEMP TABLE t AS SELECT referral.create_program('Changes', starts_at => '2026-01-01',
	hold_period => '0') AS p;
SELECT referral.add_reward((SELECT p FROM t), 'referee', fixed => 5);
SELECT referral.add_reward((SELECT p FROM t), 'referrer', percent => 10, cap => 20);
SELECT referral.redeem(referral.issue_code((SELECT p FROM t), 'ann'), c, at => '2026-02-01')
  FROM unnest(ARRAY['bo', 'cy', 'di', 'gus']) c;
SELECT referral.redeem(referral.issue_code((SELECT p FROM t), 'ivy'), 'hal', at => '2026-02-01');

CREATE FUNCTION pg_temp.rewards_of(order_id bigint)
RETURNS TABLE (beneficiary text, kind text, amount numeric, status text, clawed_back boolean)
LANGUAGE sql AS $$
	SELECT w.beneficiary, w.kind, w.amount, w.status, w.reversed_at IS NOT NULL FROM referral.reward w
	 WHERE w.order_ref = order_id::text ORDER BY w.id
$$;
CREATE FUNCTION pg_temp.pay(order_id bigint) RETURNS bigint
LANGUAGE sql AS $$
	SELECT referral.approve_due(now() + '1 second');
	SELECT referral.mark_paid(ARRAY(SELECT id FROM referral.reward
	                                 WHERE order_ref = order_id::text AND status = 'approved'), 'payout-' || order_id)
$$;
CREATE FUNCTION pg_temp.referral_of(customer text) RETURNS text
LANGUAGE sql AS $$
	SELECT r.status || ':' || COALESCE(r.converting_order, '-') FROM referral.referral r WHERE r.referee = customer
$$;

-- ---- Partial refunds of paid rewards ----

-- Order 1: bo spends 80: bo 5, ann 8; both paid.
INSERT INTO public.change_orders VALUES (1, 'bo', 80, 'paid', '2026-02-02');
SELECT is(pg_temp.pay(1), 2::bigint, 'both rewards of order 1 are paid');

-- Lowered to 50: ann's rule now gives 5.00, so 3.00 is clawed back; bo's fixed 5 stands.
UPDATE public.change_orders SET total = 50 WHERE id = 1;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(1)$$,
	$$VALUES ('bo'::text, 'referee'::text, 5.00::numeric, 'paid'::text, false),
	         ('ann', 'referrer', 8.00, 'paid', false),
	         ('ann', 'clawback', -3.00, 'approved', false)$$,
	'a lower amount claws back the difference of a paid reward');
SELECT is((SELECT clawback_of FROM referral.reward WHERE order_ref = '1' AND kind = 'clawback'),
	(SELECT id FROM referral.reward WHERE order_ref = '1' AND kind = 'referrer'), 'the clawback offsets the paid reward');
SELECT is((SELECT payload->>'amount' FROM referral.event WHERE kind = 'reward_created' ORDER BY id DESC LIMIT 1),
	'-3.00', 'and is announced as every clawback is');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() accepts a partial clawback');

-- Lowered again to 30 (3.00): one more clawback of 2.00.  The same amount again: nothing.
UPDATE public.change_orders SET total = 30 WHERE id = 1;
UPDATE public.change_orders SET total = 30.00 WHERE id = 1;
SELECT results_eq($$SELECT amount FROM referral.reward WHERE order_ref = '1' AND kind = 'clawback' ORDER BY id$$,
	$$VALUES (-3.00::numeric), (-2.00)$$, 'a second lowering claws back the next difference');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() accepts two partial clawbacks');

-- Raised to 100: nothing is paid again (a reward is never raised).
UPDATE public.change_orders SET total = 100 WHERE id = 1;
SELECT is((SELECT count(*) FROM referral.reward WHERE order_ref = '1'), 4::bigint, 'a higher amount changes nothing');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after a higher amount');

-- Refunded: the rest is clawed back (ann 3.00, bo 5.00); refunded again, nothing more.
UPDATE public.change_orders SET status = 'refunded' WHERE id = 1;
UPDATE public.change_orders SET status = 'refunded' WHERE id = 1;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(1)$$,
	$$VALUES ('bo'::text, 'referee'::text, 5.00::numeric, 'paid'::text, true),
	         ('ann', 'referrer', 8.00, 'paid', true),
	         ('ann', 'clawback', -3.00, 'approved', false),
	         ('ann', 'clawback', -2.00, 'approved', false),
	         ('bo', 'clawback', -5.00, 'approved', false),
	         ('ann', 'clawback', -3.00, 'approved', false)$$,
	'a refund claws back what is left of each paid reward, once');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after the refund');

-- audit(): clawbacks beyond their reward, and a paid reward above its rule.
INSERT INTO referral.reward (tenant, program_id, beneficiary, referral_id, level, kind, reward_type,
                             amount, currency, status, approved_at, clawback_of)
SELECT w.tenant, w.program_id, w.beneficiary, w.referral_id, 1, 'clawback', w.reward_type, -1, w.currency,
       'approved', now(), w.id
  FROM referral.reward w WHERE w.order_ref = '1' AND w.kind = 'referrer';
SELECT results_eq($$SELECT problem, detail FROM referral.audit()$$,
	$$SELECT 'clawbacks_exceed_reward'::text,
	         format('the clawbacks of reward %s of ann (8.00) offset 9.00', w.id)
	    FROM referral.reward w WHERE w.order_ref = '1' AND w.kind = 'referrer'$$,
	'clawbacks beyond their paid reward');
DELETE FROM referral.reward WHERE order_ref IS NULL AND kind = 'clawback' AND amount = -1;

INSERT INTO public.change_orders VALUES (2, 'cy', 120, 'paid', '2026-02-02');
SELECT pg_temp.pay(2);
-- A paid reward moved by hand to a referral its order is not attributed to.
UPDATE referral.reward SET referral_id = (SELECT id FROM referral.referral WHERE referee = 'di')
 WHERE order_ref = '2' AND kind = 'referee';
SELECT results_eq($$SELECT problem, detail FROM referral.audit()$$,
	$$SELECT 'reward_without_order'::text,
	         format('reward %s (referee 5.00 for order 2 of public.change_orders) is paid although the order is not attributed to its referral %s',
	                w.id, w.referral_id)
	    FROM referral.reward w WHERE w.order_ref = '2' AND w.kind = 'referee'$$,
	'a reward not reversed of an order not attributed to its referral');
UPDATE referral.reward SET referral_id = (SELECT id FROM referral.referral WHERE referee = 'cy')
 WHERE order_ref = '2' AND kind = 'referee';
SET LOCAL session_replication_role = replica;
UPDATE referral.attributed_order SET amount = 60 WHERE order_ref = '2';
SET LOCAL session_replication_role = origin;
SELECT results_eq($$SELECT problem, detail FROM referral.audit()$$,
	$$SELECT 'reward_above_rule'::text,
	         format('reward %s pays 12.00 net of clawbacks, more than rule %s gives for order 2 of 60 (6.00)', w.id, w.rule_id)
	    FROM referral.reward w WHERE w.order_ref = '2' AND w.kind = 'referrer'$$,
	'a paid reward above its rule for the order''s current amount');
UPDATE referral.attributed_order SET amount = 120 WHERE order_ref = '2';
-- (Order 2 goes away again: cy's referral is needed below.)
DELETE FROM public.change_orders WHERE id = 2;
SELECT is(pg_temp.referral_of('cy'), 'pending:-', 'cy is pending again');

-- ---- Orders that change customer, id or tenant ----

-- Order 3: di spends 60 (di 5, ann 6); then it is cy's: di's rewards are reversed, di is
-- pending again, cy converts with it (cy 5, and ann 6 once more, for cy's referral).
INSERT INTO public.change_orders VALUES (3, 'di', 60, 'paid', '2026-02-03');
UPDATE public.change_orders SET customer_id = 'cy' WHERE id = 3;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(3)$$,
	$$VALUES ('di'::text, 'referee'::text, 5.00::numeric, 'reversed'::text, true),
	         ('ann', 'referrer', 6.00, 'reversed', true),
	         ('cy', 'referee', 5.00, 'pending', false),
	         ('ann', 'referrer', 6.00, 'pending', false)$$,
	'another referee''s order: the old rewards reversed, new ones for the new referee');
SELECT is(pg_temp.referral_of('di') || ' ' || pg_temp.referral_of('cy'), 'pending:- converted:3',
	'the old referee is pending again, the new one converted');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after the change of customer');

-- Then it is zed's, whom nobody referred: cy's rewards are reversed, nothing is new.
UPDATE public.change_orders SET customer_id = 'zed' WHERE id = 3;
SELECT is((SELECT string_agg(status, ',' ORDER BY id) FROM referral.reward WHERE order_ref = '3'),
	'reversed,reversed,reversed,reversed', 'a customer nobody referred: every reward reversed');
SELECT is(pg_temp.referral_of('cy'), 'pending:-', 'and the referral pending again');
SELECT is((SELECT count(*) FROM referral.attributed_order WHERE order_ref = '3'), 0::bigint,
	'the order is attributed to no referral');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after the change to a customer not referred');

-- Order 4: di spends 70 (di 5, ann 7), then its id becomes 5: order 4 is reversed, order 5
-- converts di again.
INSERT INTO public.change_orders VALUES (4, 'di', 70, 'paid', '2026-02-04');
UPDATE public.change_orders SET id = 5 WHERE id = 4;
SELECT is((SELECT string_agg(kind || ' ' || status, ',' ORDER BY id) FROM referral.reward WHERE order_ref = '4'),
	'referee reversed,referrer reversed', 'a changed id reverses the old order');
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(5)$$,
	$$VALUES ('di'::text, 'referee'::text, 5.00::numeric, 'pending'::text, false),
	         ('ann', 'referrer', 7.00, 'pending', false)$$,
	'and pays the new one');
SELECT is(pg_temp.referral_of('di'), 'converted:5', 'which converts the referral');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after the change of id');

-- Order 6: gus spends 100 (gus 5, ann 10), paid out; then the order is hal's, for 50:
-- gus's paid rewards are clawed back in full, hal converts (hal 5, ivy 5).
INSERT INTO public.change_orders VALUES (6, 'gus', 100, 'paid', '2026-02-05');
SELECT pg_temp.pay(6);
UPDATE public.change_orders SET customer_id = 'hal', total = 50 WHERE id = 6;
SELECT results_eq($$SELECT * FROM pg_temp.rewards_of(6)$$,
	$$VALUES ('gus'::text, 'referee'::text, 5.00::numeric, 'paid'::text, true),
	         ('ann', 'referrer', 10.00, 'paid', true),
	         ('gus', 'clawback', -5.00, 'approved', false),
	         ('ann', 'clawback', -10.00, 'approved', false),
	         ('hal', 'referee', 5.00, 'pending', false),
	         ('ivy', 'referrer', 5.00, 'pending', false)$$,
	'amount and customer at once: the old paid rewards clawed back, the new ones for the new amount');
SELECT is(pg_temp.referral_of('gus') || ' ' || pg_temp.referral_of('hal'), 'pending:- converted:6',
	'the referrals follow the order');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after the change of amount and customer');

-- A table without a status column (every order paid), and one with a tenant column.
CREATE TABLE public.plain_orders (id bigint PRIMARY KEY, buyer text NOT NULL, total numeric NOT NULL);
SELECT referral.track_orders('public.plain_orders', 'buyer', 'total');
SELECT referral.redeem(referral.issue_code((SELECT p FROM t), 'ann'), c) FROM unnest(ARRAY['jo', 'kim']) c;
INSERT INTO public.plain_orders VALUES (1, 'jo', 40);
UPDATE public.plain_orders SET buyer = 'kim';
SELECT is(pg_temp.referral_of('jo') || ' ' || pg_temp.referral_of('kim'), 'pending:- converted:1',
	'without a status column, the order moves to its new customer');
-- Two orders swap customers in one statement: both are reversed, then both paid.
SELECT referral.redeem(referral.issue_code((SELECT p FROM t), 'ann'), c) FROM unnest(ARRAY['lu', 'mo']) c;
INSERT INTO public.plain_orders VALUES (3, 'lu', 20), (4, 'mo', 30);
UPDATE public.plain_orders SET buyer = CASE buyer WHEN 'lu' THEN 'mo' ELSE 'lu' END WHERE id IN (3, 4);
SELECT is(pg_temp.referral_of('lu') || ' ' || pg_temp.referral_of('mo'), 'converted:4 converted:3',
	'two orders that swap customers convert each other''s referral');
SELECT results_eq($$SELECT order_ref, beneficiary, amount, status FROM referral.reward
                     WHERE order_source = 'public.plain_orders' AND order_ref IN ('3', '4')
                     ORDER BY status DESC, order_ref, beneficiary$$,
	$$VALUES ('3'::text, 'ann'::text, 2::numeric, 'reversed'::text), ('3', 'lu', 5, 'reversed'),
	         ('4', 'ann', 3, 'reversed'), ('4', 'mo', 5, 'reversed'),
	         ('3', 'ann', 2, 'pending'), ('3', 'mo', 5, 'pending'),
	         ('4', 'ann', 3, 'pending'), ('4', 'lu', 5, 'pending')$$,
	'with the rewards of the new referees');

CREATE TABLE public.shop_orders (id bigint, shop text NOT NULL, buyer text NOT NULL, total numeric NOT NULL,
	PRIMARY KEY (shop, id));
SELECT referral.track_orders('public.shop_orders', 'buyer', 'total', tenant_column => 'shop');
CREATE TEMP TABLE s AS SELECT referral.create_program('Acme', tenant => 'acme', starts_at => '2026-01-01') AS acme,
	referral.create_program('Bolt', tenant => 'bolt', starts_at => '2026-01-01') AS bolt;
SELECT referral.add_reward((SELECT acme FROM s), 'referee', fixed => 3);
SELECT referral.add_reward((SELECT bolt FROM s), 'referee', fixed => 4);
SELECT referral.redeem(referral.issue_code((SELECT acme FROM s), 'lee'), 'max');
SELECT referral.redeem(referral.issue_code((SELECT bolt FROM s), 'lee'), 'max');
INSERT INTO public.shop_orders VALUES (1, 'acme', 'max', 30);
UPDATE public.shop_orders SET shop = 'bolt';
SELECT results_eq($$SELECT tenant, amount, status FROM referral.reward WHERE order_source = 'public.shop_orders' ORDER BY id$$,
	$$VALUES ('acme'::text, 3::numeric, 'reversed'::text), ('bolt', 4, 'pending')$$,
	'an order moved to another tenant: reversed in the old one, paid in the new one');
SELECT is_empty($$SELECT * FROM referral.audit()$$, 'audit() is empty after the changes of the other tables');

SELECT * FROM finish();
ROLLBACK;

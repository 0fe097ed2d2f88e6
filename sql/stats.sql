-- referral.two_proportion_p_value, behind variant_stats.p_value: known values (from
-- mpmath, rounded to 12 places), the undefined cases (NULL) and bad counts (errors).
-- 1/4 against 2/2: z = sqrt(3), p = 2 (1 - Phi(sqrt 3)) = 0.083264516664
SELECT round(referral.two_proportion_p_value(1, 4, 2, 2)::numeric, 12) AS p;
-- 5% against 7% of 1000 each way: 0.059685605532; 12% against 15%: 0.049640386865
SELECT round(referral.two_proportion_p_value(50, 1000, 70, 1000)::numeric, 12) AS p,
       round(referral.two_proportion_p_value(70, 1000, 50, 1000)::numeric, 12) AS swapped,
       round(referral.two_proportion_p_value(120, 1000, 150, 1000)::numeric, 12) AS near_5pct;
-- a tail far out: 1 in a million against 30 in a million, 1.9027682022e-07
SELECT to_char(referral.two_proportion_p_value(1, 1000000, 30, 1000000), '9.9999999999EEEE') AS p;
-- equal rates: 1
SELECT referral.two_proportion_p_value(5, 100, 5, 100) AS p;
-- undefined: an empty sample, a pooled rate of 0 or 1, a NULL
SELECT referral.two_proportion_p_value(0, 0, 1, 1) AS empty_a,
       referral.two_proportion_p_value(1, 1, 0, 0) AS empty_b,
       referral.two_proportion_p_value(0, 5, 0, 7) AS all_failures,
       referral.two_proportion_p_value(3, 3, 2, 2) AS all_successes,
       referral.two_proportion_p_value(NULL, 3, 2, 2) AS null_arg;
-- bad counts
SELECT referral.two_proportion_p_value(-1, 4, 2, 2);
SELECT referral.two_proportion_p_value(5, 4, 2, 2);
SELECT referral.two_proportion_p_value(1, -4, 2, 2);
SELECT referral.two_proportion_p_value(1, 4, 3, 2);
SELECT referral.two_proportion_p_value(1, 4, 2, -2);

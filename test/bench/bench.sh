#!/usr/bin/env bash
# make bench: attribution against a bare insert, in one throwaway cluster
# (synchronous_commit = off: the figures measure CPU, not fsync).  Each workload runs
# ROUNDS times against its baseline in the same run; medians and ratios are printed.
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD

if [ -z "${REFERRAL_IN_CLUSTER:-}" ]; then
	exec pg_virtualenv -t -o synchronous_commit=off -o shared_buffers=1GB -o max_wal_size=8GB \
		-o checkpoint_timeout=30min -o track_functions=all env REFERRAL_IN_CLUSTER=1 bash "$here/bench.sh" "$@"
fi

ROUNDS=${ROUNDS:-3}
q() { psql -qAtX -v ON_ERROR_STOP=1 -d referral_bench -c "$1"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
# workload, rounds of referral, rounds of the baseline (space-separated), unit, target:
# the medians and their ratio, then every round, so that an outlier shows.
report() {
	local figure baseline
	figure=$(printf '%s\n' $2 | median)
	baseline=$(printf '%s\n' $3 | median)
	printf '%-44s %12s %12s %7s×   target %s\n' "$1" "$figure $4" "$baseline $4" "$(ratio "$figure" "$baseline")" "$5"
	printf '   rounds: %s against %s\n' "$2" "$3"
}

echo "== seeding (100k customers, 10.9% referred, a 1M-node tree) ..."
psql -qX -c 'CREATE DATABASE referral_bench' postgres
psql -qX -v ON_ERROR_STOP=1 -d referral_bench -f setup.sql >/dev/null
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(psql -AtXc 'SHOW server_version' postgres)"
printf '%-44s %15s %15s %8s\n' workload referral baseline ratio

# Checkout: CHECKOUTS single-row checkouts (use_offer + spend_credit of one referee
# with an offer and store credit) in a PL/pgSQL loop, against the same loop of a plain
# single-row INSERT ... ON CONFLICT into a table with offer_use's indexes.  Its floor
# writes the same rows and takes the same lock with plain SQL (checkout.sql).  Runs
# before the other workloads (bench.reset() empties the ledger).  BENCH_ONLY=checkout
# stops after it.
CHECKOUTS=${CHECKOUTS:-2000}
psql -qX -v ON_ERROR_STOP=1 -v n=$((CHECKOUTS * ROUNDS)) -d referral_bench -f checkout.sql >/dev/null
checkout=() checkout_base=() checkout_floor=()
for r in $(seq "$ROUNDS"); do
	first=$(((r - 1) * CHECKOUTS + 1))
	checkout_base+=("$(q "SELECT bench.ms('SELECT bench.plain_checkouts($first, $CHECKOUTS)')")")
	checkout_floor+=("$(q "SELECT bench.ms('SELECT bench.floor_checkouts($first, $CHECKOUTS)')")")
	checkout+=("$(q "SELECT bench.ms('SELECT bench.checkouts($first, $CHECKOUTS)')")")
done
given=$(q "SELECT count(*) FILTER (WHERE kind = 'offer_used') || ' offers used, ' || count(*) FILTER (WHERE kind = 'credit_spent') || ' credit spends'
             FROM referral.event WHERE tenant = 'bench-checkout'")
report "checkout: use_offer + spend_credit, x$CHECKOUTS" "${checkout[*]}" "${checkout_base[*]}" ms "<= 2.0"
report "  floor: the same rows and lock, plain SQL" "${checkout_floor[*]}" "${checkout_base[*]}" ms "(what the writes of a checkout cost)"
echo "   (baseline: a single-row INSERT ... ON CONFLICT per checkout; $given)"
[ "${BENCH_ONLY:-}" = checkout ] && exit 0

ledger=() revenue_ledger=() bulk=() bulk_base=() steady=() steady_base=() noop=() copy=() copy_base=() copy_noop=() refund=() refund_base=() refund_noop=() refund_ledger=()
bulk_functions=() refund_functions=()
# Where a round's time went, by function (track_functions = all), since the last
# pg_stat_reset(): it explains a slow round.
functions() {
	q "SELECT string_agg(funcname || ' ' || round(total_time) || ' ms', ', ' ORDER BY total_time DESC)
	     FROM pg_stat_user_functions WHERE schemaname = 'referral' AND total_time >= 1"
}
function_rounds() {	# label, then each round's functions()
	local label=$1 round=0
	shift
	for f in "$@"; do
		round=$((round + 1))
		printf '   %s round %d, time in functions: %s\n' "$label" "$round" "$f"
	done
}
for r in $(seq "$ROUNDS"); do
	q "SELECT bench.reset()" >/dev/null; q "CHECKPOINT"
	bulk_base+=("$(q "SELECT bench.ms('INSERT INTO bench.orders_plain (customer_id, total) SELECT 1 + (i::bigint * 7919) % 100000, 10 + (i % 200) FROM generate_series(1, 1000000) i')")")
	q "SELECT pg_stat_reset()" >/dev/null
	bulk+=("$(q "SELECT bench.ms('INSERT INTO bench.orders_tracked (customer_id, total) SELECT 1 + (i::bigint * 7919) % 100000, 10 + (i % 200) FROM generate_series(1, 1000000) i')")")
	bulk_functions+=("$(functions)")
	# The floor: the same ledger rows by plain SQL (bench.ledger_floor), added to the
	# no-op trigger's load below.
	q "SELECT bench.load_floor_reset()" >/dev/null; q "CHECKPOINT"
	ledger+=("$(q "SELECT bench.ms('SELECT bench.ledger_floor()')")")
	# The same again: every referral has converted, so this measures the trigger itself.
	steady_base+=("$(q "SELECT bench.ms('INSERT INTO bench.orders_plain (customer_id, total) SELECT 1 + (i::bigint * 7919) % 100000, 10 + (i % 200) FROM generate_series(1, 1000000) i')")")
	steady+=("$(q "SELECT bench.ms('INSERT INTO bench.orders_tracked (customer_id, total) SELECT 1 + (i::bigint * 7919) % 100000, 10 + (i % 200) FROM generate_series(1, 1000000) i')")")
	noop+=("$(q "SELECT bench.ms('INSERT INTO bench.orders_noop (customer_id, total) SELECT 1 + (i::bigint * 7919) % 100000, 10 + (i % 200) FROM generate_series(1, 1000000) i')")")
	# The floor of the load with nothing to convert: its revenue rows by plain SQL.
	q "SELECT bench.revenue_floor_reset()" >/dev/null; q "CHECKPOINT"
	revenue_ledger+=("$(q "SELECT bench.ms('SELECT bench.revenue_floor()')")")
	# The refund's floor (bench.refund_floor): copies taken before, the changes noted after.
	q "SELECT bench.refund_floor_reset()" >/dev/null
	refund_base+=("$(q "SELECT bench.ms('UPDATE bench.orders_plain SET status = ''refunded'' WHERE id <= 1000000 AND id % 10 = 0')")")
	q "SELECT pg_stat_reset()" >/dev/null
	refund+=("$(q "SELECT bench.ms('UPDATE bench.orders_tracked SET status = ''refunded'' WHERE id <= 1000000 AND id % 10 = 0')")")
	refund_functions+=("$(functions)")
	q "SELECT bench.refund_floor_changes()" >/dev/null
	refund_noop+=("$(q "SELECT bench.ms('UPDATE bench.orders_noop SET status = ''refunded'' WHERE id <= 1000000 AND id % 10 = 0')")")
	refund_ledger+=("$(q "SELECT bench.ms('SELECT bench.refund_floor()')")")
	q "SELECT bench.reset()" >/dev/null; q "CHECKPOINT"
	copy_base+=("$(q "SELECT bench.ms('COPY bench.orders_plain (customer_id, total) FROM ''/tmp/referral_bench_orders.csv'' (FORMAT csv)')")")
	copy+=("$(q "SELECT bench.ms('COPY bench.orders_tracked (customer_id, total) FROM ''/tmp/referral_bench_orders.csv'' (FORMAT csv)')")")
	copy_noop+=("$(q "SELECT bench.ms('COPY bench.orders_noop (customer_id, total) FROM ''/tmp/referral_bench_orders.csv'' (FORMAT csv)')")")
done
conversions=$(q "SELECT count(*) FROM referral.referral WHERE status = 'converted'")
rewards=$(q "SELECT count(*) FROM referral.reward")
report "bulk INSERT ... SELECT, 1M orders (converts)" "${bulk[*]}" "${bulk_base[*]}" ms "<= 1.25"
# The first round after setup (fresh tables, no plans kept) against the median round.
printf '%-44s %12s %12s %7s×   target %s\n' "  first round against the median round" "${bulk[0]} ms" "$(printf '%s\n' "${bulk[@]}" | median) ms" \
	"$(ratio "${bulk[0]}" "$(printf '%s\n' "${bulk[@]}" | median)")" "<= 1.3"
# The floor of any design that keeps the ledger's rows: the no-op trigger's load plus
# those rows written by plain SQL (each round's own figures added).
plus() { local -n a=$1 b=$2; local i; for i in "${!a[@]}"; do awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN {print x + y}'; done; }
report "  floor: no-op trigger + the ledger's rows" "$(plus noop ledger | tr '\n' ' ')" "${bulk_base[*]}" ms "(the same rows by plain SQL)"
function_rounds converting "${bulk_functions[@]}"
report "bulk INSERT, 1M orders, nothing to convert" "${steady[*]}" "${steady_base[*]}" ms "<= 1.15"
report "  floor: a no-op trigger, transition table" "${noop[*]}" "${steady_base[*]}" ms "(what any statement trigger costs)"
report "  floor: no-op trigger + the revenue rows" "$(plus noop revenue_ledger | tr '\n' ' ')" "${steady_base[*]}" ms "(one attributed_order row per referee order, among the first load's)"
report "COPY, 1M orders" "${copy[*]}" "${copy_base[*]}" ms "<= 1.25"
report "  floor: a no-op trigger, transition table" "${copy_noop[*]}" "${copy_base[*]}" ms "(what any statement trigger costs)"
report "  floor: no-op trigger + the ledger's rows" "$(plus copy_noop ledger | tr '\n' ' ')" "${copy_base[*]}" ms "(the same rows as the INSERT's, by plain SQL)"
report "refunds of 100k orders (UPDATE status)" "${refund[*]}" "${refund_base[*]}" ms "<= 1.3"
report "  floor: a no-op trigger, transition tables" "${refund_noop[*]}" "${refund_base[*]}" ms "(what any statement trigger costs)"
report "  floor: no-op trigger + the ledger's changes" "$(plus refund_noop refund_ledger | tr '\n' ' ')" "${refund_base[*]}" ms "(the same changes by plain SQL)"
function_rounds refund "${refund_functions[@]}"
echo "   (each 1M-order round converts $conversions referrals and creates $rewards rewards)"
# A round much slower than the others: did the backend compute, or wait (I/O, locks)?
q "SELECT '   wall ' || wall_ms || ' ms, backend CPU ' || cpu_ms || ' ms: ' || left(statement, 60)
     FROM bench.round WHERE statement LIKE '%orders_tracked%' ORDER BY id"

# Single-row orders: pgbench, prepared, 2 clients, 10 s each.
q "SELECT bench.reset()" >/dev/null
# tps of a pgbench script file.
pgbench_tps() {
	pgbench -n -M prepared -c 2 -j 2 -T "${PGBENCH_SECONDS:-10}" -f "$1" referral_bench 2>/dev/null \
		| awk '/^tps/ {print $3; exit}'
}
# tps of single-row orders into a table; the customers are 1..100000 (10.9% of them
# referred) unless a first and last customer are given.
tps() {
	local script="/tmp/referral_bench_$1_${2:-1}.sql"
	printf '\\set c random(%s, %s)\nINSERT INTO bench.%s (customer_id, total) VALUES (:c, 25);\n' \
		"${2:-1}" "${3:-100000}" "$1" > "$script"
	pgbench_tps "$script"
}
oltp=() oltp_base=() oltp_noop=() oltp_unreferred=() oltp_referred=()
for r in $(seq "$ROUNDS"); do
	oltp_base+=("$(tps orders_plain)")
	oltp+=("$(tps orders_tracked)")
	oltp_noop+=("$(tps orders_noop)")
	# The tracked table with customers nobody referred: the trigger with nothing to
	# attribute, which still looks each customer up.
	oltp_unreferred+=("$(tps orders_tracked 100001 200000)")
	# Only referred customers, after the first round: each order is a converted
	# referee's revenue, the trigger's most common write.
	oltp_referred+=("$(tps orders_tracked 1001 11000)")
done
report "single-row orders, pgbench -M prepared -c 2" "${oltp[*]}" "${oltp_base[*]}" tps ">= 0.90"
report "  floor: a no-op trigger, transition table" "${oltp_noop[*]}" "${oltp_base[*]}" tps "(what any statement trigger costs)"
report "  referral, customers nobody referred" "${oltp_unreferred[*]}" "${oltp_base[*]}" tps "(nothing to attribute)"
report "  referral, referred customers only" "${oltp_referred[*]}" "${oltp_base[*]}" tps "(revenue of converted referees)"
# Single-row status changes (neither paid nor reversed) of the orders just written, of
# customers nobody referred: what a shop's fulfilment updates cost the trigger.
updates() {
	local script="/tmp/referral_bench_update_$1.sql"
	printf '\\set id random(1, 100000)\nUPDATE bench.%s SET status = CASE status WHEN %s THEN %s ELSE %s END WHERE id = :id AND customer_id > 11000;\n' \
		"$1" "'shipped'" "'delivered'" "'shipped'" > "$script"
	pgbench_tps "$script"
}
upd=() upd_base=() upd_noop=()
for r in $(seq "$ROUNDS"); do
	upd_base+=("$(updates orders_plain)")
	upd+=("$(updates orders_tracked)")
	upd_noop+=("$(updates orders_noop)")
done
report "single-row status UPDATEs, nobody referred" "${upd[*]}" "${upd_base[*]}" tps "(no target)"
report "  floor: a no-op trigger, transition tables" "${upd_noop[*]}" "${upd_base[*]}" tps "(what any statement trigger costs)"
# The first round converts every referral (10,900 conversions the later rounds do not
# make); a round after bench.reset() makes the same conversions again, on tables
# and statistics that are no longer fresh: the two differ only by a cold start.
q "SELECT bench.reset()" >/dev/null
oltp_again=$(tps orders_tracked)
printf '%-44s %12s %12s %7s×   target %s\n' "  first round against the median round" "${oltp[0]} tps" "$(printf '%s\n' "${oltp[@]}" | median) tps" \
	"$(ratio "$(printf '%s\n' "${oltp[@]}" | median)" "${oltp[0]}")" "(it converts 10,900 referrals; the others none)"
printf '%-44s %12s %12s %7s×   target %s\n' "  first round against one with the same work" "${oltp[0]} tps" "$oltp_again tps" \
	"$(ratio "$oltp_again" "${oltp[0]}")" "<= 1.3 (again after bench.reset() / first)"

# referral_code parse + print against text's own I/O round trip.
codes=() texts=()
for r in $(seq "$ROUNDS"); do
	texts+=("$(q "SELECT bench.ms('SELECT count(x::cstring::text) FROM (SELECT ''K'' || lpad(i::text, 7, ''0'') AS x FROM generate_series(1, 10000000) i) s')")")
	codes+=("$(q "SELECT bench.ms('SELECT count(x::referral.referral_code::text) FROM (SELECT ''K'' || lpad(i::text, 7, ''0'') AS x FROM generate_series(1, 10000000) i) s')")")
done
report "referral_code parse + print, 10M values" "${codes[*]}" "${texts[*]}" ms "<= 1.1"

# issue_code against inserting plain rows (100k customers a round).
# The floor is a PL/pgSQL function called per customer that inserts the same plain
# row: what any function issuing one code per call costs before it checks anything.
q "CREATE TABLE bench.plain_codes (customer text PRIMARY KEY, code text)"
q "CREATE FUNCTION bench.plain_code(customer text) RETURNS text LANGUAGE plpgsql AS
     \$\$BEGIN INSERT INTO bench.plain_codes VALUES (customer, md5(customer)); RETURN customer; END\$\$"
issue=() issue_base=() issue_floor=()
for r in $(seq "$ROUNDS"); do
	q "TRUNCATE bench.plain_codes"
	issue_base+=("$(q "SELECT bench.ms('INSERT INTO bench.plain_codes SELECT ''r$r-'' || i, md5(i::text) FROM generate_series(1, 100000) i')")")
	q "TRUNCATE bench.plain_codes"	# the floor starts from the same empty table
	issue_floor+=("$(q "SELECT bench.ms('SELECT count(bench.plain_code(''f$r-'' || i)) FROM generate_series(1, 100000) i')")")
	issue+=("$(q "SELECT bench.ms('SELECT count(referral.issue_code((SELECT id FROM referral.program WHERE name = ''Bench''), ''r$r-'' || i)) FROM generate_series(1, 100000) i')")")
done
report "issue_code, 100k customers" "${issue[*]}" "${issue_base[*]}" ms "<= 1.5"
report "  floor: a PL/pgSQL call per row, one INSERT" "${issue_floor[*]}" "${issue_base[*]}" ms "(what any function call per code costs)"

# issue_codes: the same number of customers in one call (a program's launch).
bulk_issue=()
for r in $(seq "$ROUNDS"); do
	bulk_issue+=("$(q "SELECT bench.ms('SELECT count(*) FROM referral.issue_codes((SELECT id FROM referral.program WHERE name = ''Bench''), ARRAY(SELECT ''b$r-'' || i FROM generate_series(1, 100000) i))')")")
done
report "  issue_codes, 100k customers in one call" "${bulk_issue[*]}" "${issue_base[*]}" ms "(no target)"

# Chains: referral's materialised path against a recursive CTE over parent pointers.
up=() up_base=() down=() down_base=() down_floor=()
for r in $(seq "$ROUNDS"); do
	up_base+=("$(q "SELECT bench.ms('SELECT count(*) FROM generate_series(1, 1000) g, LATERAL (WITH RECURSIVE u AS (SELECT parent, 1 AS level FROM bench.tree WHERE id = 2000050 + (g - g) UNION ALL SELECT t.parent, u.level + 1 FROM u JOIN bench.tree t ON t.id = u.parent WHERE u.parent IS NOT NULL) SELECT * FROM u WHERE parent IS NOT NULL) s')")")
	up+=("$(q "SELECT bench.ms('SELECT count(*) FROM generate_series(1, 1000) g, LATERAL referral.upline(''t'' || (2000050 + (g - g)), ''bench-tree'') s')")")
	down_base+=("$(q "SELECT bench.ms('WITH RECURSIVE d AS (SELECT id, 0 AS level FROM bench.tree WHERE id = 1 UNION ALL SELECT t.id, d.level + 1 FROM d JOIN bench.tree t ON t.parent = d.id) SELECT count(*) FROM d')")")
	down+=("$(q "SELECT bench.ms('SELECT count(*) FROM referral.downline(''t1'', ''bench-tree'')')")")
	# The floor: a set-returning function in FROM is stored in a tuplestore before
	# the query reads it; generate_series's million integers only pay that.
	down_floor+=("$(q "SELECT bench.ms('SELECT count(*) FROM generate_series(1, 1000000)')")")
done
report "upline at depth 50 (x1000)" "${up[*]}" "${up_base[*]}" ms "<= 0.10"
report "downline of a 1M-node tree" "${down[*]}" "${down_base[*]}" ms "<= 0.10"
report "  floor: generate_series, 1M rows" "${down_floor[*]}" "${down_base[*]}" ms "(what any set-returning function of 1M rows costs)"

# Memory: a fresh backend's peak RSS (VmHWM, which counts the shared buffers it
# touched) and its private memory after the statement (RssAnon), after one bulk INSERT
# of MEM_ROWS orders (default 10M) into the tracked table and into its twin; the
# difference must stay a constant (transition tables, the trigger's candidates and its
# CTE spill to disk past work_mem).
q "SELECT bench.reset()" >/dev/null
memory_kb() {	# table, field of /proc/self/status
	psql -qAtX -v ON_ERROR_STOP=1 -d referral_bench \
		-c "INSERT INTO bench.$1 (customer_id, total) SELECT 1 + (i::bigint * 7919) % 100000, 10 + (i % 200) FROM generate_series(1, ${MEM_ROWS:-10000000}) i" \
		-c "SELECT (pg_catalog.regexp_match(pg_catalog.pg_read_file('/proc/self/status'), '$2:\s*(\d+)'))[1]"
}
for field in VmHWM RssAnon; do
	mem_base=$(memory_kb orders_plain $field)
	mem=$(memory_kb orders_tracked $field)
	printf '%-44s %12s %12s %7s   target: a constant more\n' "backend $field, ${MEM_ROWS:-10000000}-row INSERT" \
		"$((mem / 1024)) MiB" "$((mem_base / 1024)) MiB" "+$(((mem - mem_base) / 1024)) MiB"
done

# Analyst views on the last round's data.
q "SELECT bench.reset()" >/dev/null
q "INSERT INTO bench.orders_tracked (customer_id, total) SELECT 1 + (i::bigint * 7919) % 100000, 10 + (i % 200) FROM generate_series(1, 1000000) i"
q "ANALYZE"
for v in program_stats referrer_stats leaderboard; do
	if [ -n "$(q "SELECT to_regclass('referral.$v')")" ]; then
		ms=$(for r in $(seq "$ROUNDS"); do q "SELECT bench.ms('SELECT count(*) FROM (SELECT * FROM referral.$v) s')"; done | median)
		printf '%-44s %15s %15s %8s   target < 1000 ms\n' "SELECT * FROM referral.$v" "$ms ms" "-" "-"
	fi
done

# forget() of a customer with 1,000 referrals and 10,000 rewards (test/bench/forget.sql
# seeds a fresh one each round), in the database as the workloads above left it.
forget_ms=()
for r in $(seq "$ROUNDS"); do
	psql -qAtX -v ON_ERROR_STOP=1 -v round="$r" -d referral_bench -f forget.sql >/dev/null
	[ "$(q "SELECT count(*) FROM referral.reward WHERE tenant = 'forget' AND beneficiary = 'forget-$r'")" -ge 10000 ] ||
		{ echo "bench: the forget workload seeded fewer than 10,000 rewards" >&2; exit 1; }
	forget_ms+=("$(q "SELECT bench.ms('SELECT referral.forget(''forget-$r'', ''forget'')')")")
done
printf '%-44s %15s %15s %8s   target < 1000 ms\n' "forget(): 1,000 referrals, 10,000 rewards" \
	"$(printf '%s\n' "${forget_ms[@]}" | median) ms" "-" "-"
printf '   rounds: %s\n' "${forget_ms[*]}"

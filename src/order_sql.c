/*
 * order_sql.c
 *		The SQL text of the order trigger's statements, built from the
 *		trigger's arguments with every column name quoted; values (tenant,
 *		source label, status lists) are SPI parameters $1 to $4.  The
 *		statements read the transition tables (or the C pass's candidates,
 *		under the new table's name) and call the attribution functions of
 *		sql/install/75_attribution.sql with a whole statement's orders.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "order_config.h"
#include "order_sql.h"
#include "order_trigger.h"
#include "referral_names.h"

/* Appends alias.column, the column name quoted. */
static void
append_column(StringInfo buf, const char *alias, const char *column)
{
	appendStringInfo(buf, "%s.%s", alias, quote_identifier(column));
}

/* Appends alias.column as text in the default collation (whatever the column's own). */
static void
append_text(StringInfo buf, const char *alias, const char *column)
{
	appendStringInfoChar(buf, '(');
	append_column(buf, alias, column);
	appendStringInfoString(buf, "::pg_catalog.text COLLATE pg_catalog.\"default\")");
}

/* Appends the order's tenant: the fixed one ($1) or the tenant column as text. */
static void
append_tenant(StringInfo buf, const OrderTriggerConfig *cfg, const char *alias)
{
	if (cfg->tenant_column != NULL)
		append_text(buf, alias, cfg->tenant_column);
	else
		appendStringInfoString(buf, "$1");
}

/* Appends the order's amount as numeric. */
static void
append_amount(StringInfo buf, const OrderTriggerConfig *cfg, const char *alias)
{
	appendStringInfoChar(buf, '(');
	append_column(buf, alias, cfg->amount_column);
	appendStringInfoString(buf, "::pg_catalog.numeric)");
}

/*
 * Appends "the order's amount is a number that can earn a reward": not NULL,
 * not NaN and (PG 14 and later) not infinite.  Negative amounts fall below
 * every min_order_amount.
 */
static void
append_finite_amount(StringInfo buf, const OrderTriggerConfig *cfg, const char *alias)
{
	appendStringInfoChar(buf, '(');
	append_amount(buf, cfg, alias);
#if PG_VERSION_NUM >= 140000
	appendStringInfoString(buf, " NOT IN ('NaN'::pg_catalog.numeric, 'Infinity'::pg_catalog.numeric))");
#else
	appendStringInfoString(buf, " <> 'NaN'::pg_catalog.numeric)");
#endif
}

/* Appends the order's time: the ordered_at column (NULL: now) or the transaction time. */
static void
append_at(StringInfo buf, const OrderTriggerConfig *cfg, const char *alias)
{
	if (cfg->ordered_at_column != NULL)
	{
		appendStringInfoString(buf, "COALESCE(");
		append_column(buf, alias, cfg->ordered_at_column);
		appendStringInfoString(buf, "::pg_catalog.timestamptz, pg_catalog.now())");
	}
	else
		appendStringInfoString(buf, "pg_catalog.now()");
}

/*
 * Appends "the row's status is paid" ($3) or "is reversed" ($4); NULL for a
 * NULL status, so a negation needs IS NOT TRUE.  Without a status column
 * every order is paid and none is reversed.
 */
static void
append_status_in(StringInfo buf, const OrderTriggerConfig *cfg,
				 const char *alias, bool paid)
{
	if (cfg->status_column == NULL)
	{
		appendStringInfoString(buf, paid ? "true" : "false");
		return;
	}
	appendStringInfoChar(buf, '(');
	append_text(buf, alias, cfg->status_column);
	appendStringInfo(buf, " OPERATOR(pg_catalog.=) ANY (%s))", paid ? "$3" : "$4");
}

/*
 * Appends the select list of an order's ledger key and amount, in the order the
 * attribution functions take them: tenant, order_ref (the id as text), amount.
 */
static void
append_order_key_amount(StringInfo buf, const OrderTriggerConfig *cfg,
						const char *alias)
{
	append_tenant(buf, cfg, alias);
	appendStringInfoString(buf, " AS tenant, ");
	append_text(buf, alias, cfg->id_column);
	appendStringInfoString(buf, " AS order_ref, ");
	append_amount(buf, cfg, alias);
	appendStringInfoString(buf, " AS amount");
}

/*
 * Appends "o and n are the same order": the same id, customer and tenant, as the
 * text the ledger keys them by.  An UPDATE that changes any of them is the old
 * order reversed and a new one paid (append_moved, append_paid_orders).
 */
static void
append_same_order(StringInfo buf, const OrderTriggerConfig *cfg)
{
	/* Before 0.3, the same id (an order that changes customer stays put). */
	if (!cfg->moves)
	{
		append_column(buf, "o", cfg->id_column);
		appendStringInfoString(buf, " = ");
		append_column(buf, "n", cfg->id_column);
		return;
	}
	append_text(buf, "o", cfg->id_column);
	appendStringInfoString(buf, " = ");
	append_text(buf, "n", cfg->id_column);
	appendStringInfoString(buf, " AND ");
	append_text(buf, "o", cfg->customer_column);
	appendStringInfoString(buf, " = ");
	append_text(buf, "n", cfg->customer_column);
	if (cfg->tenant_column != NULL)
	{
		appendStringInfoString(buf, " AND ");
		append_text(buf, "o", cfg->tenant_column);
		appendStringInfoString(buf, " = ");
		append_text(buf, "n", cfg->tenant_column);
	}
}

/*
 * Appends the join of the UPDATE transition tables: n (new) with o (old), the
 * same order (append_same_order); a LEFT JOIN keeps the new rows that are no
 * old order (o.id is NULL).
 */
static void
append_update_join(StringInfo buf, const OrderTriggerConfig *cfg, bool left)
{
	appendStringInfo(buf, " FROM " ORDER_TRIGGER_NEW_TABLE " n %sJOIN "
					 ORDER_TRIGGER_OLD_TABLE " o ON ", left ? "LEFT " : "");
	append_same_order(buf, cfg);
}

/*
 * Appends the orders newly paid by this INSERT or UPDATE, as a subquery of
 * (tenant, order_ref, amount, customer, at), the keys as text; a NULL in the
 * customer, amount, id or tenant keeps a row out.  An UPDATE newly pays the
 * orders paid now and not before, and those paid now whose id, customer or
 * tenant changed (the old order is reversed first: append_moved).
 */
static void
append_paid_orders(StringInfo buf, const OrderTriggerConfig *cfg, OrderEvent event)
{
	appendStringInfoString(buf, "(SELECT ");
	append_order_key_amount(buf, cfg, "n");
	appendStringInfoString(buf, ", ");
	append_text(buf, "n", cfg->customer_column);
	appendStringInfoString(buf, " AS customer, ");
	append_at(buf, cfg, "n");
	appendStringInfoString(buf, " AS at");
	if (event == ORDER_EVENT_UPDATE)
		append_update_join(buf, cfg, true);
	else
		appendStringInfoString(buf, " FROM " ORDER_TRIGGER_NEW_TABLE " n");
	appendStringInfo(buf, " WHERE n.%s IS NOT NULL AND n.%s IS NOT NULL AND ",
					 quote_identifier(cfg->id_column),
					 quote_identifier(cfg->customer_column));
	append_finite_amount(buf, cfg, "n");
	appendStringInfoString(buf, " AND ");
	append_status_in(buf, cfg, "n", true);
	if (event == ORDER_EVENT_UPDATE)
	{
		appendStringInfoString(buf, " AND (");
		append_column(buf, "o", cfg->id_column);
		appendStringInfoString(buf, " IS NULL OR ");
		append_status_in(buf, cfg, "o", true);
		appendStringInfoString(buf, " IS NOT TRUE)");
	}
	appendStringInfoChar(buf, ')');
}


/*
 * The paid-orders statement: orders newly paid by this INSERT or UPDATE, each
 * looked up in the accepted referrals of its customer (with the program),
 * keeping the candidates that may qualify, in the order referral, order time,
 * order id.
 *
 * The lookup is a LATERAL subquery kept from being pulled up (OFFSET 0) on
 * purpose: one index probe per order whatever the planner believes about the
 * transition table (it has no statistics) or a young referral table, instead
 * of a join order chosen from estimates, which can rescan the transition table
 * once per referral.  It returns at most one row: a customer has at most one
 * accepted referral per tenant (a unique index).
 *
 * Every qualifying order of a referee from the referral's start (its redeem
 * time) on is a candidate: the first may convert it, and the others are
 * revenue (and, with recurring_window, earn referrer rewards), also when the
 * referral converts within the same statement.  A pending referral whose
 * earliest candidate is past its attribution window cannot convert: its
 * orders go nowhere (no function call, no row lock).  The rest go three ways,
 * by the referral's state when the statement started:
 * - converted, without recurring_window: the orders can only be revenue,
 *   which the revenue statement records (without a function call per order:
 *   the common case, later orders of customers referred long ago);
 * - with recurring_window: every candidate goes to referral._orders_paid,
 *   which rechecks it under locks;
 * - pending: the first candidate goes to _orders_paid (it may convert the
 *   referral); the rest are revenue if it did.  _orders_paid gets the whole
 *   statement's candidates in one call, so that it can convert them
 *   set-based.
 * The statement returns a row for each call (one in the batch form) and one
 * more when an order of a referral converted before is revenue; when it
 * returned any, the revenue statement (order_sql_revenue) runs after it and
 * records the revenue of both kinds at once, so that a bulk one can insert
 * without ON CONFLICT (order_run_revenue).  A statement that pays nothing,
 * such as a refund, runs no revenue statement.  Orders attributed before are
 * left out (they never count twice), so a referral's first candidate is one
 * that can convert; for the orders that can only be revenue, the revenue
 * statement does that instead of one more index probe per order.  NULL in the
 * customer, amount, id or tenant keeps a row out.
 *
 * batch: the candidates go to referral._orders_paid in one call (0.2 on); else
 * to _order_paid one call each, in the same order (order_batch_function_exists).
 *
 * converted_only: the C pass found every candidate's referral converted (the
 * common single-row INSERT of a returning referee).  The statement is then a
 * lean one, whose plan starts up in a fraction of the time: no window
 * functions, and no revenue statement after it (the revenue statement runs
 * before it instead, and this one only when that did not record every
 * candidate; its data-modifying CTE records the same revenue again with ON
 * CONFLICT DO NOTHING, which keeps it right on its own); a referral found
 * pending after all (a refund committed since the probe) or with
 * recurring_window goes to _order_paid order by order, which handles any
 * state.
 */
char *
order_sql_paid(const OrderTriggerConfig *cfg, OrderEvent event, bool converted_only,
			   bool batch)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf,
						   "WITH c AS MATERIALIZED (SELECT x.tenant, x.order_ref, x.amount, x.at,"
						   " k.referral_id, k.program_id, k.converted, k.recurring, k.convert_by");
	if (!converted_only)
		appendStringInfoString(&buf,
							   ", pg_catalog.row_number() OVER (PARTITION BY k.referral_id"
							   " ORDER BY x.at, x.order_ref COLLATE pg_catalog.\"C\") AS nth,"
							   " pg_catalog.min(x.at) OVER (PARTITION BY k.referral_id) AS first_at");
	appendStringInfoString(&buf, " FROM ");
	append_paid_orders(&buf, cfg, event);
	appendStringInfoString(&buf,
						   " x CROSS JOIN LATERAL (SELECT r.id AS referral_id, r.program_id,"
						   " r.status = 'converted' AS converted,"
						   " p.recurring_window IS NOT NULL AS recurring,"
						   " CASE WHEN r.status = 'pending'"
						   " THEN r.created_at + p.attribution_window END AS convert_by"
						   " FROM " REFERRAL_QUALIFIED(REFERRAL_TABLE_NAME) " r"
						   " JOIN " REFERRAL_QUALIFIED(PROGRAM_TABLE_NAME) " p ON p.id = r.program_id"
						   " WHERE r.tenant = x.tenant AND r.referee = x.customer"
						   " AND r.status <> 'rejected'"
						   " AND ((r.status = 'converted' AND p.recurring_window IS NULL)"
						   " OR NOT EXISTS (SELECT 1 FROM " REFERRAL_QUALIFIED(ATTRIBUTED_ORDER_TABLE_NAME) " a"
						   " WHERE a.tenant = x.tenant AND a.order_source = $2"
						   " AND a.order_ref = x.order_ref))"
						   " AND x.amount >= p.min_order_amount"
						   " AND x.at >= p.starts_at AND (p.ends_at IS NULL OR x.at < p.ends_at)"
						   " AND x.at >= r.created_at"
						   " OFFSET 0) k)");
	if (converted_only)
	{
		appendStringInfoString(&buf,
							   ", revenue AS (INSERT INTO " REFERRAL_QUALIFIED(ATTRIBUTED_ORDER_TABLE_NAME)
							   " (tenant, order_source, order_ref, program_id, referral_id, amount, ordered_at, converting)"
							   " SELECT c.tenant, $2, c.order_ref, c.program_id, c.referral_id, c.amount, c.at, false"
							   " FROM c WHERE c.converted AND NOT c.recurring"
							   " ORDER BY c.order_ref COLLATE pg_catalog.\"C\" ON CONFLICT DO NOTHING)"
							   " SELECT " REFERRAL_QUALIFIED(ORDER_PAID_FUNCTION_NAME) "(c.referral_id, $2, c.order_ref, c.amount, c.at)"
							   " FROM c WHERE c.recurring OR NOT c.converted"
							   " ORDER BY c.referral_id, c.at, c.order_ref COLLATE pg_catalog.\"C\"");
		return buf.data;
	}
	if (!batch)
		appendStringInfoString(&buf,
							   " (SELECT " REFERRAL_QUALIFIED(ORDER_PAID_FUNCTION_NAME) "(c.referral_id, $2, c.order_ref, c.amount, c.at)::pg_catalog.text"
							   " FROM c WHERE (c.recurring OR (c.nth = 1 AND NOT c.converted))"
							   " AND (c.converted OR c.first_at <= c.convert_by)"
							   " ORDER BY c.referral_id, c.nth)");
	else
		appendStringInfoString(&buf,
							   " (SELECT " REFERRAL_QUALIFIED(ORDERS_PAID_FUNCTION_NAME) "($2,"
							   " pg_catalog.array_agg(c.referral_id ORDER BY c.referral_id, c.nth),"
							   " pg_catalog.array_agg(c.order_ref ORDER BY c.referral_id, c.nth),"
							   " pg_catalog.array_agg(c.amount ORDER BY c.referral_id, c.nth),"
							   " pg_catalog.array_agg(c.at ORDER BY c.referral_id, c.nth))::pg_catalog.text"
							   " FROM c WHERE (c.recurring OR (c.nth = 1 AND NOT c.converted))"
							   " AND (c.converted OR c.first_at <= c.convert_by)"
							   " HAVING pg_catalog.count(*) > 0)");
	/* One more row when orders of referrals converted before are revenue. */
	appendStringInfoString(&buf,
						   " UNION ALL (SELECT NULL FROM c WHERE c.converted AND NOT c.recurring LIMIT 1)");
	return buf.data;
}

/*
 * The revenue statement, run before the paid-orders statement when the C pass
 * found every candidate's referral converted, else after it when it returned
 * a row: the orders of the statement whose referral is converted now (by one
 * of them, or before), without recurring_window, that qualify and are not yet
 * attributed, are revenue.  One statement for the whole load instead of one
 * call per referral that converted.  The order that converted a referral is
 * attributed already, and left out by the referral's own record of it, which
 * costs no look-up (see order_run_revenue for the others).
 *
 * A load of ORDER_SMALL_STATEMENT orders or more inserts its rows in key order
 * (the index pages are touched in order); a smaller one is not sorted, which
 * spares two plan nodes (sort and subquery) at every start-up of the plan.
 *
 * on_conflict: ON CONFLICT DO NOTHING skips orders attributed before; without
 * it such an order fails the statement (see order_run_revenue).
 */
char *
order_sql_revenue(const OrderTriggerConfig *cfg, OrderEvent event, int64 nrows,
				  bool on_conflict)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf,
						   "INSERT INTO " REFERRAL_QUALIFIED(ATTRIBUTED_ORDER_TABLE_NAME)
						   " (tenant, order_source, order_ref, program_id, referral_id, amount, ordered_at, converting)"
						   " SELECT x.tenant, $2, x.order_ref, r.program_id, r.id, x.amount, x.at, false"
						   " FROM ");
	append_paid_orders(&buf, cfg, event);
	appendStringInfoString(&buf,
						   " x JOIN " REFERRAL_QUALIFIED(REFERRAL_TABLE_NAME) " r"
						   " ON r.tenant = x.tenant AND r.referee = x.customer AND r.status = 'converted'"
						   " JOIN " REFERRAL_QUALIFIED(PROGRAM_TABLE_NAME) " p ON p.id = r.program_id"
						   " WHERE p.recurring_window IS NULL"
						   " AND x.amount >= p.min_order_amount"
						   " AND x.at >= p.starts_at AND (p.ends_at IS NULL OR x.at < p.ends_at)"
						   " AND x.at >= r.created_at"
						   " AND (r.converting_order IS DISTINCT FROM x.order_ref"
						   " OR r.converting_source IS DISTINCT FROM $2)");
	if (nrows >= ORDER_SMALL_STATEMENT)
		appendStringInfoString(&buf, " ORDER BY x.order_ref COLLATE pg_catalog.\"C\"");
	if (on_conflict)
		appendStringInfoString(&buf, " ON CONFLICT DO NOTHING");
	return buf.data;
}

/*
 * Appends the reversal part: one referral._orders_reversed call per tenant
 * with the distinct order ids, for orders deleted (every old row) or updated
 * from a status not reversed to a reversed one, among those attributed to a
 * referral (one primary key probe per row: a bulk refund passes on only the
 * orders that earned something).
 */
static void
append_reversed(StringInfo buf, const OrderTriggerConfig *cfg, OrderEvent event)
{
	const char *alias = (event == ORDER_EVENT_DELETE) ? "o" : "n";
	StringInfoData ref;

	initStringInfo(&ref);
	append_text(&ref, alias, cfg->id_column);

	appendStringInfoString(buf,
						   "SELECT " REFERRAL_QUALIFIED(ORDERS_REVERSED_FUNCTION_NAME) "(g.tenant, $2, g.refs)"
						   " FROM (SELECT ");
	append_tenant(buf, cfg, alias);
	appendStringInfo(buf, " AS tenant, pg_catalog.array_agg(DISTINCT %s ORDER BY %s) AS refs",
					 ref.data, ref.data);
	if (event == ORDER_EVENT_UPDATE)
		append_update_join(buf, cfg, false);
	else
		appendStringInfoString(buf, " FROM " ORDER_TRIGGER_OLD_TABLE " o");
	appendStringInfoString(buf, " WHERE ");
	append_column(buf, alias, cfg->id_column);
	appendStringInfoString(buf, " IS NOT NULL AND ");
	append_tenant(buf, cfg, alias);
	appendStringInfoString(buf, " IS NOT NULL");
	if (event == ORDER_EVENT_UPDATE)
	{
		appendStringInfoString(buf, " AND ");
		append_status_in(buf, cfg, "n", false);
		appendStringInfoString(buf, " AND ");
		append_status_in(buf, cfg, "o", false);
		appendStringInfoString(buf, " IS NOT TRUE");
	}
	/*
	 * Only attributed orders have rewards or conversions to reverse, and only
	 * they or orders that used a referee offer have an offer to restore.
	 */
	appendStringInfoString(buf,
						   " AND (EXISTS (SELECT 1 FROM " REFERRAL_QUALIFIED(ATTRIBUTED_ORDER_TABLE_NAME) " a WHERE a.tenant = ");
	append_tenant(buf, cfg, alias);
	appendStringInfo(buf, " AND a.order_source = $2 AND a.order_ref = %s)", ref.data);
	if (cfg->offers)
	{
		appendStringInfoString(buf,
							   " OR EXISTS (SELECT 1 FROM " REFERRAL_QUALIFIED(OFFER_USE_TABLE_NAME) " u WHERE u.tenant = ");
		append_tenant(buf, cfg, alias);
		appendStringInfo(buf, " AND u.order_ref = %s AND u.restored_at IS NULL)", ref.data);
	}
	appendStringInfoChar(buf, ')');
	appendStringInfoString(buf, " GROUP BY 1 ORDER BY 1) g");
	pfree(ref.data);
}

/*
 * Appends the amount-change part (UPDATE): one referral._order_amount_changed
 * call per order paid before and after whose amount changed to a number and
 * that was attributed to a referral (referral.attributed_order: only those
 * have revenue and rewards to change; the check, one primary key probe per
 * row, keeps a bulk re-pricing of orders from calling it for every row).
 */
static void
append_amount_changed(StringInfo buf, const OrderTriggerConfig *cfg)
{
	appendStringInfoString(buf,
						   "SELECT " REFERRAL_QUALIFIED(ORDER_AMOUNT_CHANGED_FUNCTION_NAME) "(a.tenant, $2, a.order_ref, a.amount)"
						   " FROM (SELECT ");
	append_order_key_amount(buf, cfg, "n");
	append_update_join(buf, cfg, false);
	appendStringInfoString(buf, " WHERE ");
	append_finite_amount(buf, cfg, "n");
	appendStringInfoString(buf, " AND ");
	append_amount(buf, cfg, "o");
	appendStringInfoString(buf, " IS DISTINCT FROM ");
	append_amount(buf, cfg, "n");
	if (cfg->status_column != NULL)
	{
		appendStringInfoString(buf, " AND ");
		append_status_in(buf, cfg, "n", true);
		appendStringInfoString(buf, " AND ");
		append_status_in(buf, cfg, "o", true);
	}
	appendStringInfoString(buf,
						   " AND (SELECT true FROM " REFERRAL_QUALIFIED(ATTRIBUTED_ORDER_TABLE_NAME) " w WHERE w.tenant = ");
	append_tenant(buf, cfg, "n");
	appendStringInfoString(buf, " AND w.order_source = $2 AND w.order_ref = ");
	append_text(buf, "n", cfg->id_column);
	appendStringInfoString(buf, ") ORDER BY 1, 2) a");
}

/*
 * Appends the moved-order part (UPDATE): one referral._orders_moved call per
 * tenant with the distinct ids of the old orders (attributed to a referral)
 * that are no new order, their id, customer or tenant changed; `released`,
 * those whose tenant and id are still there (the customer changed), whose
 * attribution _orders_moved removes so that the new customer's referral can
 * have it.  Those paid now are then newly paid (append_paid_orders).
 */
static void
append_moved(StringInfo buf, const OrderTriggerConfig *cfg)
{
	StringInfoData ref;

	initStringInfo(&ref);
	append_text(&ref, "o", cfg->id_column);

	appendStringInfoString(buf,
						   "SELECT " REFERRAL_QUALIFIED(ORDERS_MOVED_FUNCTION_NAME) "(g.tenant, $2, g.refs, g.released)"
						   " FROM (SELECT m.tenant, pg_catalog.array_agg(DISTINCT m.ref ORDER BY m.ref) AS refs,"
						   " pg_catalog.array_agg(DISTINCT m.ref ORDER BY m.ref) FILTER (WHERE m.released) AS released"
						   " FROM (SELECT ");
	append_tenant(buf, cfg, "o");
	appendStringInfo(buf, " AS tenant, %s AS ref, EXISTS (SELECT 1 FROM "
					 ORDER_TRIGGER_NEW_TABLE " n WHERE ", ref.data);
	append_text(buf, "n", cfg->id_column);
	appendStringInfo(buf, " = %s", ref.data);
	if (cfg->tenant_column != NULL)
	{
		appendStringInfoString(buf, " AND ");
		append_text(buf, "n", cfg->tenant_column);
		appendStringInfoString(buf, " = ");
		append_text(buf, "o", cfg->tenant_column);
	}
	appendStringInfoString(buf, ") AS released FROM " ORDER_TRIGGER_OLD_TABLE " o WHERE ");
	append_column(buf, "o", cfg->id_column);
	appendStringInfoString(buf, " IS NOT NULL AND ");
	append_tenant(buf, cfg, "o");
	appendStringInfoString(buf, " IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
						   ORDER_TRIGGER_NEW_TABLE " n WHERE ");
	append_same_order(buf, cfg);
	appendStringInfoString(buf,
						   ") AND EXISTS (SELECT 1 FROM " REFERRAL_QUALIFIED(ATTRIBUTED_ORDER_TABLE_NAME) " a WHERE a.tenant = ");
	append_tenant(buf, cfg, "o");
	appendStringInfo(buf, " AND a.order_source = $2 AND a.order_ref = %s)", ref.data);
	appendStringInfoString(buf, ") m GROUP BY 1 ORDER BY 1) g");
	pfree(ref.data);
}

/*
 * The reversal statement: DELETE reverses every deleted order; UPDATE
 * reverses orders newly in a reversed status, then the orders whose id,
 * customer or tenant changed, and reports amount changes of the orders paid
 * before and after (the parts run in this order, UNION ALL).
 */
char *
order_sql_reversed(const OrderTriggerConfig *cfg, OrderEvent event)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (event == ORDER_EVENT_DELETE)
		append_reversed(&buf, cfg, event);
	else if (event == ORDER_EVENT_UPDATE)
	{
		if (cfg->status_column != NULL)
		{
			append_reversed(&buf, cfg, event);
			appendStringInfoString(&buf, " UNION ALL ");
		}
		if (cfg->moves)
		{
			append_moved(&buf, cfg);
			appendStringInfoString(&buf, " UNION ALL ");
		}
		append_amount_changed(&buf, cfg);
	}
	else
		return NULL;
	return buf.data;
}

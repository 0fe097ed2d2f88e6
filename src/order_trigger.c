/*
 * order_trigger.c
 *		The order trigger: referral._order_trigger, the AFTER ... FOR EACH
 *		STATEMENT trigger (with transition tables) that referral.track_orders
 *		puts on a shop's own orders table.  At every INSERT, UPDATE or DELETE
 *		statement it runs a few set-based statements over the transition
 *		tables (none when no order concerns a referral):
 *
 *		- reversals: orders updated to a reversed status or deleted go to
 *		  referral._orders_reversed (one call per tenant), orders whose id,
 *		  customer or tenant changed to referral._orders_moved (the old order
 *		  reversed; the new one is a paid order below if it is paid), and paid
 *		  orders whose amount changed go to referral._order_amount_changed;
 *		- paid orders: orders inserted as, or updated to, a paid status are
 *		  looked up (one index probe each) in the accepted referrals of
 *		  their customers; later orders of referees converted before are
 *		  recorded as revenue, and the candidates that may convert or earn go
 *		  to referral._orders_paid in one call, in a fixed order (it converts
 *		  set-based where it can); when any did, one more statement records
 *		  the revenue of the referrals converted now.  When every candidate's
 *		  referral was converted before, that revenue statement runs first,
 *		  and often alone.
 *
 *		For an INSERT, a first pass in C (order_candidates.c) keeps only the
 *		orders of referred customers, and the SQL reads those instead of the
 *		whole transition table; with none, no SQL runs.
 *
 *		Reversals run first so that an order that is paid in the same
 *		statement that refunds a referee's converting order can convert the
 *		referral again.
 *
 *		The function is not SECURITY DEFINER: a statement whose orders need no
 *		SQL (most single-row orders) would pay for switching the user and
 *		search_path for nothing.  The SQL runs as the function's owner with
 *		search_path pinned (order_owner_enter), as SECURITY DEFINER with
 *		SET search_path would.  Who may attach the trigger is decided by
 *		EXECUTE on it, which PUBLIC does not have.
 *
 *		The trigger's whole configuration is in its arguments (Citus fires a
 *		distributed table's triggers per shard, with the shard's OID and name),
 *		so it never looks anything up by the table's OID or name.  The SQL is
 *		built from the arguments with every column name quoted; values
 *		(tenant, source label, status lists) are SPI parameters.  Prepared
 *		plans are kept per backend in a hash table in their own memory
 *		context, a few hundred at most; the plan cache revalidates them when
 *		referral's own objects change.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "citus_compat.h"
#include "order_candidates.h"
#include "order_trigger.h"
#include "referral_names.h"

/* Number of SPI parameters of every statement: tenant, source, paid, reversed. */
#define ORDER_NPARAMS	4

/* Fewer orders than this make a small statement (a plan of its own, no sort). */
#define ORDER_SMALL_STATEMENT	100

/* This many orders or more make a bulk statement (a plan of its own). */
#define ORDER_BULK_STATEMENT	10000

/* The event a firing is for. */
typedef enum OrderEvent
{
	ORDER_EVENT_INSERT = 'I',
	ORDER_EVENT_UPDATE = 'U',
	ORDER_EVENT_DELETE = 'D'
} OrderEvent;

/* The statements a firing may run. */
typedef enum OrderStatement
{
	ORDER_STMT_REVERSED = 'R',	/* reversals and amount changes */
	ORDER_STMT_PAID = 'P',		/* paid orders */
	ORDER_STMT_PAID_CONVERTED = 'C',	/* paid orders, all of converted referrals */
	ORDER_STMT_REVENUE = 'V'	/* revenue after conversions */
} OrderStatement;

/* The trigger's arguments, as referral.track_orders passes them. */
typedef struct OrderTriggerConfig
{
	const char *tenant;			/* fixed tenant; "" with a tenant column */
	const char *source;			/* label of the orders table in rewards */
	const char *customer_column;
	const char *amount_column;
	const char *id_column;
	const char *status_column;	/* NULL: every inserted order is paid */
	const char *paid_statuses;	/* text[] literal */
	const char *reversed_statuses;	/* text[] literal */
	const char *ordered_at_column;	/* NULL: the transaction time */
	const char *tenant_column;	/* NULL: the fixed tenant */
	bool		moves;			/* UPDATE: an order may have changed id, customer
								 * or tenant (referral._orders_moved, 0.3 on) */
} OrderTriggerConfig;

/* A kept plan, by the text that identifies it. */
typedef struct OrderPlanEntry
{
	char	   *key;			/* hash key: palloc'd in OrderPlanContext */
	SPIPlanPtr	plan;
} OrderPlanEntry;

/*
 * Plans kept at most, about (a firing adds its few after the check).  A plan's
 * key holds the SQL, built from the trigger's arguments, and the table's column
 * signature, so every tracked table's configuration and every ALTER TABLE of it
 * makes plans of its own, and the ones made before are never looked up again: a
 * backend that serves many such tables would keep them all.  Past the cap every
 * plan is dropped; those still used are prepared again at their next firing.
 */
#define ORDER_PLAN_CACHE_MAX	256

static MemoryContext OrderPlanContext = NULL;
static HTAB *OrderPlans = NULL;

/* Firings running in this backend: plans are dropped only when none is. */
static int	OrderFirings = 0;

/* Hash of a plan key (a C string, the key field holds a pointer to it). */
static uint32
order_plan_key_hash(const void *key, Size keysize)
{
	const char *s = *(char *const *) key;

	return hash_bytes((const unsigned char *) s, (int) strlen(s));
}

/* Equality of two plan keys, as dynahash wants it (0 when equal). */
static int
order_plan_key_match(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(char *const *) key1, *(char *const *) key2);
}

/* Copies a plan key into the cache's own memory context. */
static void *
order_plan_key_copy(void *dest, const void *src, Size keysize)
{
	*(char **) dest = MemoryContextStrdup(OrderPlanContext, *(char *const *) src);
	return dest;
}

/* Creates the plan cache on first use. */
static void
order_plan_cache_init(void)
{
	HASHCTL		ctl;

	if (OrderPlans != NULL)
		return;
	if (OrderPlanContext == NULL)
		OrderPlanContext = AllocSetContextCreate(TopMemoryContext,
												 "referral order trigger plans",
												 ALLOCSET_SMALL_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(OrderPlanEntry);
	ctl.hash = order_plan_key_hash;
	ctl.match = order_plan_key_match;
	ctl.keycopy = order_plan_key_copy;
	ctl.hcxt = OrderPlanContext;
	OrderPlans = hash_create("referral order trigger plans", 16, &ctl,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
							 HASH_KEYCOPY | HASH_CONTEXT);
}

/*
 * Drops every kept plan once there are ORDER_PLAN_CACHE_MAX of them.  Called
 * only when no firing runs: a firing nested in another (through a trigger on
 * what the SQL writes) must not free a plan the outer one is executing.
 */
static void
order_plan_cache_trim(void)
{
	HASH_SEQ_STATUS status;
	OrderPlanEntry *entry;

	if (OrderPlans == NULL || OrderFirings > 0 ||
		hash_get_num_entries(OrderPlans) < ORDER_PLAN_CACHE_MAX)
		return;
	hash_seq_init(&status, OrderPlans);
	while ((entry = (OrderPlanEntry *) hash_seq_search(&status)) != NULL)
	{
		SPI_freeplan(entry->plan);
		pfree(entry->key);
	}
	hash_destroy(OrderPlans);
	OrderPlans = NULL;
}

/* The kept plan for key, prepared from sql on first use in this backend. */
static SPIPlanPtr
order_plan_get(const char *key, const char *sql)
{
	static Oid	argtypes[ORDER_NPARAMS] = {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
	OrderPlanEntry *entry;
	SPIPlanPtr	plan;
	bool		found;

	order_plan_cache_init();
	entry = (OrderPlanEntry *) hash_search(OrderPlans, &key, HASH_FIND, NULL);
	if (entry != NULL)
		return entry->plan;

	/*
	 * A generic plan: the parameters (tenant, source, status lists) never
	 * change what the best plan is, and re-planning at every firing (the plan
	 * cache's first five custom plans, and forever after when it judges the
	 * generic plan no cheaper) would cost a single-row insert more than the
	 * insert itself.
	 */
	plan = SPI_prepare_cursor(sql, ORDER_NPARAMS, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "referral order trigger: SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "referral order trigger: SPI_keepplan failed");

	entry = (OrderPlanEntry *) hash_search(OrderPlans, &key, HASH_ENTER, &found);
	entry->plan = plan;
	return plan;
}

/* A status list parameter (text[]), parsed from the trigger's argument. */
typedef struct StatusList
{
	char	   *literal;		/* the argument it was parsed from; NULL: none yet */
	Datum		array;
} StatusList;

/* The lists of the last firing, kept: a single-row INSERT need not parse them again. */
static StatusList PaidStatuses;
static StatusList ReversedStatuses;

/* The text[] of a status list argument, parsed when it differs from the kept one. */
static Datum
order_status_list(StatusList *list, const char *literal)
{
	MemoryContext outer;

	if (list->literal != NULL && strcmp(list->literal, literal) == 0)
		return list->array;
	order_plan_cache_init();
	if (list->literal != NULL)
	{
		pfree(list->literal);
		pfree(DatumGetPointer(list->array));
		list->literal = NULL;
	}
	outer = MemoryContextSwitchTo(OrderPlanContext);
	list->array = OidInputFunctionCall(F_ARRAY_IN, (char *) literal, TEXTOID, -1);
	list->literal = pstrdup(literal);
	MemoryContextSwitchTo(outer);
	return list->array;
}

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
 * (order_ref, customer, amount, at, tenant), the keys as text; a NULL in the
 * customer, amount, id or tenant keeps a row out.  An UPDATE newly pays the
 * orders paid now and not before, and those paid now whose id, customer or
 * tenant changed (the old order is reversed first: append_moved).
 */
static void
append_paid_orders(StringInfo buf, const OrderTriggerConfig *cfg, OrderEvent event)
{
	appendStringInfoString(buf, "(SELECT ");
	append_text(buf, "n", cfg->id_column);
	appendStringInfoString(buf, " AS order_ref, ");
	append_text(buf, "n", cfg->customer_column);
	appendStringInfoString(buf, " AS customer, ");
	append_amount(buf, cfg, "n");
	appendStringInfoString(buf, " AS amount, ");
	append_at(buf, cfg, "n");
	appendStringInfoString(buf, " AS at, ");
	append_tenant(buf, cfg, "n");
	appendStringInfoString(buf, " AS tenant");
	if (event == ORDER_EVENT_UPDATE)
		append_update_join(buf, cfg, true);
	else
		appendStringInfoString(buf, " FROM " ORDER_TRIGGER_NEW_TABLE " n");
	appendStringInfoString(buf, " WHERE ");
	append_column(buf, "n", cfg->id_column);
	appendStringInfoString(buf, " IS NOT NULL AND ");
	append_column(buf, "n", cfg->customer_column);
	appendStringInfoString(buf, " IS NOT NULL AND ");
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
 * Whether the extension's schema has referral._orders_paid.  One module serves
 * every version of the extension: after the module of 0.2 is installed and
 * before ALTER EXTENSION referral UPDATE, a database still has the functions of
 * 0.1, which take paid orders one call each (_order_paid), and orders must keep
 * being attributed there.
 */
static bool
order_batch_function_exists(Oid schema)
{
	Oid			argtypes[5];
	List	   *name;

	argtypes[0] = TEXTOID;
	argtypes[1] = get_array_type(INT8OID);
	argtypes[2] = get_array_type(TEXTOID);
	argtypes[3] = get_array_type(NUMERICOID);
	argtypes[4] = get_array_type(TIMESTAMPTZOID);
	name = list_make2(makeString(get_namespace_name(schema)), makeString(ORDERS_PAID_FUNCTION_NAME));
	return OidIsValid(LookupFuncName(name, 5, argtypes, true));
}

/*
 * Whether the extension's schema has referral._orders_moved (0.3 on).  Before,
 * an UPDATE pairs old and new rows by id alone, as that version's functions
 * expect: an order moved without _orders_moved would be attributed twice.
 */
static bool
order_moved_function_exists(Oid schema)
{
	Oid			argtypes[4];
	List	   *name;

	argtypes[0] = TEXTOID;
	argtypes[1] = TEXTOID;
	argtypes[2] = TEXTARRAYOID;
	argtypes[3] = TEXTARRAYOID;
	name = list_make2(makeString(get_namespace_name(schema)), makeString(ORDERS_MOVED_FUNCTION_NAME));
	return OidIsValid(LookupFuncName(name, 4, argtypes, true));
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
static char *
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
static char *
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
	/* Only attributed orders have rewards or conversions to reverse. */
	appendStringInfoString(buf,
						   " AND EXISTS (SELECT 1 FROM " REFERRAL_QUALIFIED(ATTRIBUTED_ORDER_TABLE_NAME) " a WHERE a.tenant = ");
	append_tenant(buf, cfg, alias);
	appendStringInfo(buf, " AND a.order_source = $2 AND a.order_ref = %s)", ref.data);
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
	append_tenant(buf, cfg, "n");
	appendStringInfoString(buf, " AS tenant, ");
	append_text(buf, "n", cfg->id_column);
	appendStringInfoString(buf, " AS order_ref, ");
	append_amount(buf, cfg, "n");
	appendStringInfoString(buf, " AS amount");
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
static char *
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

/* The attribute number of a column the trigger reads; an error naming it if it is gone. */
static AttrNumber
order_column(Relation rel, const char *source, const char *column)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), column);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" tracked by referral does not exist",
						column, RelationGetRelationName(rel)),
				 errdetail("The referral order trigger of %s reads this column.", source),
				 errhint("Call referral.untrack_orders() and referral.track_orders() again with the table's current column names.")));
	return (AttrNumber) attnum;
}

/*
 * Appends to the plan key what the plan depends on besides its text: the
 * position, type, typmod and collation of every column it reads from the
 * transition tables (they have the row type of the trigger's table, which may
 * differ between tables with the same column names, and change with ALTER
 * TABLE).  A column that no longer exists is an error naming it.
 */
static void
append_column_signature(StringInfo key, Relation rel, const char *source,
						const char *column)
{
	int			attnum;
	Form_pg_attribute att;

	if (column == NULL)
	{
		appendStringInfoString(key, "-;");
		return;
	}
	attnum = order_column(rel, source, column);
	att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	appendStringInfo(key, "%d:%u:%d:%u;", attnum, att->atttypid, att->atttypmod,
					 att->attcollation);
}

/*
 * The plan key of a statement: its kind, a size class of the transition
 * tables (the planner's row estimate for them is fixed when the statement is
 * first prepared, so one plan for a single-row insert and another for a bulk
 * load), the column signature and the SQL text.
 */
static char *
order_plan_key(OrderStatement stmt, int64 nrows, Relation rel,
			   const OrderTriggerConfig *cfg, const char *sql)
{
	StringInfoData key;
	int			size_class = nrows < ORDER_SMALL_STATEMENT ? 0 :
		(nrows < ORDER_BULK_STATEMENT ? 1 : 2);

	initStringInfo(&key);
	appendStringInfo(&key, "%c%d|%d|", (char) stmt, size_class,
					 RelationGetDescr(rel)->natts);
	append_column_signature(&key, rel, cfg->source, cfg->customer_column);
	append_column_signature(&key, rel, cfg->source, cfg->amount_column);
	append_column_signature(&key, rel, cfg->source, cfg->id_column);
	append_column_signature(&key, rel, cfg->source, cfg->status_column);
	append_column_signature(&key, rel, cfg->source, cfg->ordered_at_column);
	append_column_signature(&key, rel, cfg->source, cfg->tenant_column);
	appendStringInfo(&key, "|%s", sql);
	return key.data;
}

/* Runs one statement with the firing's parameters; returns the rows it processed. */
static uint64
order_run(OrderStatement stmt, const char *sql, int64 nrows, Relation rel,
		  const OrderTriggerConfig *cfg, Datum *values, const char *nulls)
{
	char	   *key = order_plan_key(stmt, nrows, rel, cfg, sql);
	SPIPlanPtr	plan = order_plan_get(key, sql);
	int			expected = (stmt == ORDER_STMT_REVENUE) ? SPI_OK_INSERT : SPI_OK_SELECT;
	int			rc;

	rc = SPI_execute_plan(plan, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "referral order trigger: SPI_execute_plan returned %s",
			 SPI_result_code_string(rc));
	pfree(key);
	return SPI_processed;
}

/*
 * Runs the revenue statement.  A bulk one (ORDER_BULK_STATEMENT orders or
 * more) runs first as a plain INSERT, in a subtransaction: ON CONFLICT's
 * speculative insertion costs every row an index probe and a second WAL
 * record, about a tenth of the time of a 1M-order load whose 100k orders are
 * revenue.  The statement's orders conflict only when an order id is used
 * again (an order deleted and its id reused, or two orders sharing one), when
 * a concurrent statement attributes the same order, or when _order_paid
 * recorded one as revenue in this firing (its referral converted by another
 * session since the paid-orders statement's snapshot); the orders that
 * converted a referral in this firing are left out by the statement itself.
 * Then the plain INSERT fails with a unique violation, its subtransaction
 * rolls back, and the statement runs again with ON CONFLICT DO NOTHING.
 * Smaller statements run with ON CONFLICT straight away: a subtransaction
 * costs a single-row INSERT more than it saves, and a transaction with more
 * than 64 of them would make every other session's snapshots slower (the
 * subtransaction cache of its PGPROC overflows).
 */
static uint64
order_run_revenue(OrderEvent event, int64 nrows, Relation rel,
				  const OrderTriggerConfig *cfg, Datum *values, const char *nulls)
{
	MemoryContext outer = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile uint64 processed = 0;
	volatile bool conflict = false;

	if (nrows < ORDER_BULK_STATEMENT)
		return order_run(ORDER_STMT_REVENUE, order_sql_revenue(cfg, event, nrows, true),
						 nrows, rel, cfg, values, nulls);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(outer);
	PG_TRY();
	{
		processed = order_run(ORDER_STMT_REVENUE, order_sql_revenue(cfg, event, nrows, false),
							  nrows, rel, cfg, values, nulls);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(outer);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(edata);
		FreeErrorData(edata);
		conflict = true;
	}
	PG_END_TRY();

	if (conflict)
		processed = order_run(ORDER_STMT_REVENUE, order_sql_revenue(cfg, event, nrows, true),
							  nrows, rel, cfg, values, nulls);
	return processed;
}

/* An optional column argument: NULL for "". */
static const char *
order_optional(const char *arg)
{
	return (arg[0] == '\0') ? NULL : arg;
}

/* Reads and checks the trigger's arguments. */
static void
order_config(Trigger *trigger, OrderTriggerConfig *cfg)
{
	char	  **args = trigger->tgargs;

	if (trigger->tgnargs != ORDER_TRIGGER_NARGS)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("referral order trigger \"%s\" takes %d arguments, got %d",
						trigger->tgname, ORDER_TRIGGER_NARGS, trigger->tgnargs),
				 errhint("Install the trigger with referral.track_orders().")));
	cfg->tenant = args[0];
	cfg->source = args[1];
	cfg->customer_column = args[2];
	cfg->amount_column = args[3];
	cfg->id_column = args[4];
	cfg->status_column = order_optional(args[5]);
	cfg->paid_statuses = args[6];
	cfg->reversed_statuses = args[7];
	cfg->ordered_at_column = order_optional(args[8]);
	cfg->tenant_column = order_optional(args[9]);
	cfg->moves = false;

	if (cfg->customer_column[0] == '\0' || cfg->amount_column[0] == '\0' ||
		cfg->id_column[0] == '\0' ||
		(cfg->tenant[0] == '\0') == (cfg->tenant_column == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("referral order trigger \"%s\" has invalid arguments",
						trigger->tgname),
				 errdetail("The customer, amount and id columns must be named, and exactly one of a tenant and a tenant column."),
				 errhint("Install the trigger with referral.track_orders().")));
}

/* Checks that a transition table the event needs is there under the expected name. */
static void
order_check_transition(Trigger *trigger, Tuplestorestate *table,
					   const char *name, const char *expected)
{
	if (table == NULL || name == NULL || strcmp(name, expected) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("referral order trigger \"%s\" needs the transition table %s",
						trigger->tgname, expected),
				 errhint("Install the trigger with referral.track_orders().")));
}

/*
 * The inserted orders whose customer holds an accepted referral, with their
 * number in *count; NULL (all orders are passed on) when a key column's type
 * cannot be probed by its text form, or under Citus.
 */
static Tuplestorestate *
order_insert_candidates(FunctionCallInfo fcinfo, TriggerData *trigdata,
						const OrderTriggerConfig *cfg, int64 *count,
						bool *all_converted)
{
	Relation	rel = trigdata->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	customer_att = order_column(rel, cfg->source, cfg->customer_column);
	AttrNumber	tenant_att = 0;

	if (!order_candidates_usable())
		return NULL;
	if (cfg->tenant_column != NULL)
		tenant_att = order_column(rel, cfg->source, cfg->tenant_column);
	if (!order_candidates_supported_type(TupleDescAttr(desc, customer_att - 1)->atttypid) ||
		(tenant_att != 0 &&
		 !order_candidates_supported_type(TupleDescAttr(desc, tenant_att - 1)->atttypid)))
		return NULL;
	return order_candidates(get_func_namespace(fcinfo->flinfo->fn_oid), rel,
							trigdata->tg_newtable, customer_att, cfg->tenant,
							tenant_att, count, all_converted);
}

/*
 * Whether every old row of this UPDATE has the id, customer and tenant of the
 * new row at its place in the transition tables, the same bytes: then no
 * order moved, and the statements are those of an UPDATE that pairs rows by id
 * (cfg->moves false).  A sufficient test, not a necessary one: rows paired
 * otherwise, or a key whose bytes changed and its text did not, are left to
 * the SQL, which compares the text.  Most UPDATEs change neither key, and are
 * spared the moved-order part (and, without a status column, the paid-orders
 * statement).
 */
static bool
order_keys_unchanged(TriggerData *trigdata, const OrderTriggerConfig *cfg)
{
	Relation	rel = trigdata->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	Tuplestorestate *olds = trigdata->tg_oldtable;
	Tuplestorestate *news = trigdata->tg_newtable;
	AttrNumber	atts[3];
	int			natts = 0;
	TupleTableSlot *o;
	TupleTableSlot *n;
	bool		same = true;

	if (tuplestore_tuple_count(olds) != tuplestore_tuple_count(news))
		return false;
	atts[natts++] = order_column(rel, cfg->source, cfg->id_column);
	atts[natts++] = order_column(rel, cfg->source, cfg->customer_column);
	if (cfg->tenant_column != NULL)
		atts[natts++] = order_column(rel, cfg->source, cfg->tenant_column);

	o = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	n = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	/* Read pointers of our own: other readers of the transition tables keep theirs. */
	tuplestore_select_read_pointer(olds, tuplestore_alloc_read_pointer(olds, EXEC_FLAG_REWIND));
	tuplestore_rescan(olds);
	tuplestore_select_read_pointer(news, tuplestore_alloc_read_pointer(news, EXEC_FLAG_REWIND));
	tuplestore_rescan(news);
	while (same && tuplestore_gettupleslot(olds, true, false, o))
	{
		if (!tuplestore_gettupleslot(news, true, false, n))
		{
			same = false;
			break;
		}
		for (int i = 0; i < natts && same; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, atts[i] - 1);
			bool		onull;
			bool		nnull;
			Datum		ovalue = slot_getattr(o, atts[i], &onull);
			Datum		nvalue = slot_getattr(n, atts[i], &nnull);

			same = (onull == nnull &&
					(onull || datumIsEqual(ovalue, nvalue, att->attbyval, att->attlen)));
		}
	}
	tuplestore_select_read_pointer(olds, 0);
	tuplestore_select_read_pointer(news, 0);
	ExecDropSingleTupleTableSlot(o);
	ExecDropSingleTupleTableSlot(n);
	return same;
}

/* Makes `orders` (rows of rel) the new transition table the SQL reads. */
static void
order_register_new_table(Relation rel, Tuplestorestate *orders, int64 count)
{
	EphemeralNamedRelation enr = palloc0(sizeof(EphemeralNamedRelationData));
	int			rc;

	enr->md.name = ORDER_TRIGGER_NEW_TABLE;
	enr->md.reliddesc = RelationGetRelid(rel);
	enr->md.tupdesc = NULL;
	enr->md.enrtype = ENR_NAMED_TUPLESTORE;
	enr->md.enrtuples = (double) count;
	enr->reldata = orders;
	if ((rc = SPI_register_relation(enr)) != SPI_OK_REL_REGISTER)
		elog(ERROR, "referral order trigger: SPI_register_relation failed: %s",
			 SPI_result_code_string(rc));
}

/*
 * Refuses a column whose type is the user's own, unless it is an enum without a
 * cast to text: the SQL, run as the owner, casts the columns (::text, ::numeric,
 * ::timestamptz), and a cast of a type the user owns would run the user's
 * function with the owner's rights.  track_orders allows only built-in types and
 * enums, but a column's type can be changed afterwards (ALTER TABLE).
 */
static void
order_check_column_type(Relation rel, const OrderTriggerConfig *cfg, const char *column)
{
	Oid			type;

	if (column == NULL)
		return;
	type = getBaseType(TupleDescAttr(RelationGetDescr(rel),
									 order_column(rel, cfg->source, column) - 1)->atttypid);
	if (type < FirstNormalObjectId ||
		(type_is_enum(type) &&
		 !SearchSysCacheExists2(CASTSOURCETARGET, ObjectIdGetDatum(type),
								ObjectIdGetDatum(TEXTOID))))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"%s\" of table \"%s\" tracked by referral has type %s, which the order trigger does not read",
					column, RelationGetRelationName(rel), format_type_be(type)),
			 errdetail("The referral order trigger of %s reads built-in types and enums without casts of their own.",
					   cfg->source),
			 errhint("Change the column back to a type that referral.track_orders() accepts.")));
}

static void
order_check_column_types(Relation rel, const OrderTriggerConfig *cfg)
{
	order_check_column_type(rel, cfg, cfg->customer_column);
	order_check_column_type(rel, cfg, cfg->amount_column);
	order_check_column_type(rel, cfg, cfg->id_column);
	order_check_column_type(rel, cfg, cfg->status_column);
	order_check_column_type(rel, cfg, cfg->ordered_at_column);
	order_check_column_type(rel, cfg, cfg->tenant_column);
}

/* The user and GUC state to return to after the SQL. */
typedef struct OrderOwnerScope
{
	Oid			save_userid;
	int			save_sec_context;
	int			guc_level;
} OrderOwnerScope;

/*
 * Becomes the trigger function's owner, with search_path = pg_catalog,
 * pg_temp, until order_owner_leave: what fmgr does for a SECURITY DEFINER
 * function with that SET clause.  An error on the way undoes both with the
 * (sub)transaction.
 *
 * JIT is off for the same span.  The statements read transition tables,
 * whose size the planner takes as given and whose rows most filters drop, so
 * a bulk statement's cost estimate passes jit_above_cost while the work is
 * small; JIT code is compiled at every execution, not kept with the plan
 * (a refund of 100k orders compiled for 0.9 s to run for 0.1 s).
 */
static void
order_owner_enter(FunctionCallInfo fcinfo, OrderOwnerScope *scope)
{
	Oid			fn_oid = fcinfo->flinfo->fn_oid;
	HeapTuple	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	Oid			owner;

	if (!HeapTupleIsValid(proc))
		elog(ERROR, "referral order trigger: cache lookup failed for function %u", fn_oid);
	owner = ((Form_pg_proc) GETSTRUCT(proc))->proowner;
	ReleaseSysCache(proc);

	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	SetUserIdAndSecContext(owner, scope->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	scope->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("jit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

static void
order_owner_leave(OrderOwnerScope *scope)
{
	AtEOXact_GUC(true, scope->guc_level);
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
}

/*
 * Runs a firing's statements in SPI: the reversals, then the paid orders and
 * their revenue (see referral_order_trigger).
 */
static void
order_run_statements(TriggerData *trigdata, const OrderTriggerConfig *cfg, OrderEvent event,
					 int64 nrows, const char *sql_reversed, bool pays, bool batch,
					 Tuplestorestate *candidates, OrderStatement paid_stmt,
					 Datum *values, const char *nulls)
{
	int			rc;

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "referral order trigger: SPI_connect failed: %s",
			 SPI_result_code_string(rc));
	if (candidates != NULL)
		order_register_new_table(trigdata->tg_relation, candidates, nrows);
	else if ((rc = SPI_register_trigger_data(trigdata)) != SPI_OK_TD_REGISTER)
		elog(ERROR, "referral order trigger: SPI_register_trigger_data failed: %s",
			 SPI_result_code_string(rc));

	if (sql_reversed != NULL)
		order_run(ORDER_STMT_REVERSED, sql_reversed, nrows, trigdata->tg_relation,
				  cfg, values, nulls);

	/*
	 * Orders of referees converted before (the common later order): the
	 * revenue statement alone, a plain INSERT ... SELECT whose plan starts up
	 * in a fraction of the paid-orders statement's time, records them.  When it
	 * recorded them all, that is everything the paid-orders statement would
	 * have done; otherwise (recurring_window, a referral reverted since the
	 * probe, an order that does not qualify) that statement runs after it, and
	 * skips the orders recorded now.
	 */
	if (pays && paid_stmt == ORDER_STMT_PAID_CONVERTED &&
		order_run_revenue(event, nrows, trigdata->tg_relation, cfg,
						  values, nulls) == (uint64) nrows)
		pays = false;

	/*
	 * Conversions first; then the revenue, of the referrals they converted and
	 * of those converted before.  The paid-orders SQL is built only here: most
	 * single-row orders of converted referees are done without it.
	 */
	if (pays &&
		order_run(paid_stmt,
				  order_sql_paid(cfg, event, paid_stmt == ORDER_STMT_PAID_CONVERTED, batch),
				  nrows, trigdata->tg_relation, cfg, values, nulls) > 0 &&
		paid_stmt == ORDER_STMT_PAID)
		order_run_revenue(event, nrows, trigdata->tg_relation, cfg, values, nulls);

	if ((rc = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "referral order trigger: SPI_finish failed: %s",
			 SPI_result_code_string(rc));
}

/* Attributes the orders of one INSERT, UPDATE or DELETE statement to referrals. */
PG_FUNCTION_INFO_V1(referral_order_trigger);
Datum
referral_order_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata;
	Trigger    *trigger;
	OrderTriggerConfig cfg;
	OrderEvent	event;
	int64		nrows;
	char	   *sql_reversed;
	bool		pays;
	bool		batch;
	Tuplestorestate *volatile candidates = NULL;	/* volatile: read after PG_TRY */
	bool		all_converted = false;
	OrderStatement paid_stmt;
	Datum		values[ORDER_NPARAMS];
	char		nulls[ORDER_NPARAMS];
	OrderOwnerScope owner;
	CitusShardScope shard;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("referral order trigger was not called by the trigger manager")));
	trigdata = (TriggerData *) fcinfo->context;
	trigger = trigdata->tg_trigger;

	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("referral order trigger \"%s\" must be fired AFTER ... FOR EACH STATEMENT",
						trigger->tgname),
				 errhint("Install the trigger with referral.track_orders().")));

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		event = ORDER_EVENT_INSERT;
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		event = ORDER_EVENT_UPDATE;
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		event = ORDER_EVENT_DELETE;
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("referral order trigger \"%s\" must be fired for INSERT, UPDATE or DELETE",
						trigger->tgname),
				 errhint("Install the trigger with referral.track_orders().")));

	order_config(trigger, &cfg);

	if (event != ORDER_EVENT_DELETE)
		order_check_transition(trigger, trigdata->tg_newtable,
							   trigger->tgnewtable, ORDER_TRIGGER_NEW_TABLE);
	if (event != ORDER_EVENT_INSERT)
		order_check_transition(trigger, trigdata->tg_oldtable,
							   trigger->tgoldtable, ORDER_TRIGGER_OLD_TABLE);

	/* A statement that touched no row has nothing to attribute. */
	nrows = tuplestore_tuple_count(event == ORDER_EVENT_DELETE ?
								   trigdata->tg_oldtable : trigdata->tg_newtable);
	if (nrows == 0)
		return PointerGetDatum(NULL);

	/*
	 * An INSERT passes on only the orders of referred customers (see
	 * order_candidates.c); when there are none, there is nothing to do.
	 */
	if (event == ORDER_EVENT_INSERT)
	{
		candidates = order_insert_candidates(fcinfo, trigdata, &cfg, &nrows,
											 &all_converted);
		if (candidates != NULL && nrows == 0)
		{
			tuplestore_end(candidates);
			return PointerGetDatum(NULL);
		}
	}

	/*
	 * An UPDATE newly pays orders when they have a status, or when they can
	 * move (an order whose id, customer or tenant changed is a new one).
	 */
	cfg.moves = (event == ORDER_EVENT_UPDATE &&
				 !order_keys_unchanged(trigdata, &cfg) &&
				 order_moved_function_exists(get_func_namespace(fcinfo->flinfo->fn_oid)));
	sql_reversed = order_sql_reversed(&cfg, event);
	paid_stmt = (candidates != NULL && all_converted) ?
		ORDER_STMT_PAID_CONVERTED : ORDER_STMT_PAID;
	pays = (event == ORDER_EVENT_INSERT ||
			(event == ORDER_EVENT_UPDATE && (cfg.status_column != NULL || cfg.moves)));
	batch = pays && paid_stmt == ORDER_STMT_PAID &&
		order_batch_function_exists(get_func_namespace(fcinfo->flinfo->fn_oid));

	values[0] = CStringGetTextDatum(cfg.tenant);
	nulls[0] = ' ';
	values[1] = CStringGetTextDatum(cfg.source);
	nulls[1] = ' ';
	if (cfg.status_column != NULL)
	{
		values[2] = order_status_list(&PaidStatuses, cfg.paid_statuses);
		values[3] = order_status_list(&ReversedStatuses, cfg.reversed_statuses);
		nulls[2] = nulls[3] = ' ';
	}
	else
	{
		values[2] = values[3] = (Datum) 0;
		nulls[2] = nulls[3] = 'n';
	}

	order_check_column_types(trigdata->tg_relation, &cfg);
	order_plan_cache_trim();
	/* On a shard of a Citus table: the co-located shards (citus_compat.c). */
	citus_shard_scope_begin(trigdata->tg_relation, &shard);
	order_owner_enter(fcinfo, &owner);
	OrderFirings++;
	PG_TRY();
	{
		order_run_statements(trigdata, &cfg, event, nrows, sql_reversed, pays, batch,
							 candidates, paid_stmt, values, nulls);
	}
	PG_FINALLY();
	{
		OrderFirings--;
		citus_shard_scope_end(&shard);
	}
	PG_END_TRY();
	order_owner_leave(&owner);
	if (candidates != NULL)
		tuplestore_end(candidates);

	return PointerGetDatum(NULL);
}


/*
 * order_plans.c
 *		What the order trigger keeps per backend: its prepared plans, by the
 *		SQL text and the column signature of the table they read, in a hash
 *		table of their own memory context, a few hundred at most; and the
 *		status lists of the last firing, parsed.  The plan cache revalidates
 *		the plans when referral's own objects change.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "order_config.h"
#include "order_plans.h"

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

void
order_firing_enter(void)
{
	OrderFirings++;
}

void
order_firing_leave(void)
{
	OrderFirings--;
}

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
void
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
SPIPlanPtr
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


Datum
order_paid_statuses(const char *literal)
{
	return order_status_list(&PaidStatuses, literal);
}

Datum
order_reversed_statuses(const char *literal)
{
	return order_status_list(&ReversedStatuses, literal);
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
char *
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

/*
 * order_candidates.c
 *		The order trigger's first pass over the orders a statement inserted:
 *		one probe per order, in C, of an index of the referrals by referee,
 *		keeping the orders whose customer holds an accepted referral.
 *
 *		The probe uses the hash index referral_referee_hash (0.2 on): a
 *		customer nobody referred, most of a shop's orders, costs one bucket
 *		page and no key comparison, where a btree descent compares text in
 *		the database's collation a dozen times (most of this pass's time in a
 *		single-row INSERT).  A database still on 0.1 has only the btree
 *		referral_one_accepted_per_referee, which the pass then probes.
 *
 *		Most orders of a shop come from customers nobody referred.  Without this
 *		pass each of them would cost a lookup inside the trigger's SQL, and every
 *		single-row INSERT the start-up of that statement's plan; with it, an
 *		INSERT of orders of customers nobody referred runs no SQL at all, and
 *		the SQL reads only the candidates.  The SQL decides the rest: this
 *		pass may keep too many orders (a referral found here is checked again
 *		there), never too few (a customer key is compared by the same text
 *		form the SQL uses, so it applies only to key types whose output
 *		function gives what a ::text cast gives).  The one write it makes
 *		itself is a converted referee's later order, as revenue, in a small
 *		statement (order_revenue.c), which it then leaves out.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "accepted_referrals.h"
#include "citus_compat.h"
#include "order_candidates.h"
#include "order_firsts.h"
#include "order_keys.h"
#include "order_revenue.h"
#include "referral_names.h"

/*
 * The look-up, kept per backend until an invalidation of the referral table or
 * its index (or of every relation) clears it.
 */
static ReferralTableInfo CachedInfo;
static bool CachedInfoValid = false;
static uint64 InvalidationCount = 0;
static bool InvalidationRegistered = false;

/*
 * Forgets the look-up when the referral table or the index changes (a new
 * index, DROP/CREATE EXTENSION).  While no look-up is kept, every invalidation
 * counts: order_candidates_lookup keeps one only if none came during it.
 */
static void
order_candidates_invalidate(Datum arg, Oid relid)
{
	if (!CachedInfoValid || !OidIsValid(relid) ||
		relid == CachedInfo.table || relid == CachedInfo.accepted_index)
	{
		CachedInfoValid = false;
		InvalidationCount++;
	}
}

/*
 * Looks up the referral table, the index to probe and the columns read here.
 * The catalog look-ups may process invalidations, which call
 * order_candidates_invalidate: so the result goes to *info first, and is kept
 * for later statements only when no invalidation came in between.
 */
void
order_candidates_lookup(Oid schema, ReferralTableInfo *info)
{
	uint64		generation;

	if (!InvalidationRegistered)
	{
		CacheRegisterRelcacheCallback(order_candidates_invalidate, (Datum) 0);
		InvalidationRegistered = true;
	}
	if (CachedInfoValid)
	{
		*info = CachedInfo;
		return;
	}

	generation = InvalidationCount;
	info->table = get_relname_relid(REFERRAL_TABLE_NAME, schema);
	info->accepted_index = get_relname_relid(REFERRAL_REFEREE_HASH_INDEX_NAME, schema);
	info->hash_index = OidIsValid(info->accepted_index);
	if (!info->hash_index)
		info->accepted_index = get_relname_relid(REFERRAL_ONE_ACCEPTED_INDEX_NAME, schema);
	if (!OidIsValid(info->table) || !OidIsValid(info->accepted_index))
		elog(ERROR, "referral order trigger: table referral.referral or its index referral_one_accepted_per_referee is missing");
	info->columns.id = get_attnum(info->table, REFERRAL_ID_COLUMN_NAME);
	info->columns.program_id = get_attnum(info->table, REFERRAL_PROGRAM_COLUMN_NAME);
	info->columns.status = get_attnum(info->table, REFERRAL_STATUS_COLUMN_NAME);
	info->columns.tenant = get_attnum(info->table, REFERRAL_TENANT_COLUMN_NAME);
	info->columns.referee = get_attnum(info->table, REFERRAL_REFEREE_COLUMN_NAME);
	info->columns.created_at = get_attnum(info->table, REFERRAL_CREATED_COLUMN_NAME);
	if (info->columns.id == InvalidAttrNumber || info->columns.program_id == InvalidAttrNumber ||
		info->columns.status == InvalidAttrNumber || info->columns.tenant == InvalidAttrNumber ||
		info->columns.referee == InvalidAttrNumber || info->columns.created_at == InvalidAttrNumber)
		elog(ERROR, "referral order trigger: a column of referral.referral (id, program_id, status, tenant, referee, created_at) is missing");
	if (InvalidationCount == generation)
	{
		CachedInfo = *info;
		CachedInfoValid = true;
	}
}

/*
 * Whether the local referral table holds the referrals.  Under Citus it may be
 * a distributed table whose rows live in shards elsewhere: then only the SQL,
 * which Citus routes, can find them.
 */
bool
order_candidates_usable(void)
{
	/* Under Citus the trigger may run on a shard: the SQL reads the referrals. */
	return !citus_present();
}

/* About what one accepted referral takes in the hash table, for the estimate. */
#define ACCEPTED_REFERRAL_BYTES 128

/*
 * The memory the hash table of accepted referrals may take, or 0 to probe the
 * index once per order instead: a hash when the statement has at least four
 * times as many orders as the referral table has rows (a scan costs a fraction
 * of a probe per row), within the memory a hash join may take.  Not under
 * SERIALIZABLE, where a scan of the whole table would take a predicate lock on
 * all of it and make concurrent redeems fail to serialize.
 */
Size
order_candidates_hash_memory(Relation referrals, int64 norders)
{
	Size		budget = (Size) ((double) work_mem * 1024.0 * hash_mem_multiplier);
	double		rows = referrals->rd_rel->reltuples;

	/* Never vacuumed or analyzed (-1; 0 before PG 14): guess from its size. */
	if (rows <= 0)
		rows = (double) RelationGetNumberOfBlocks(referrals) * 40.0;
	if (IsolationUsesXactSnapshot() || norders < 64 || rows * 4.0 > (double) norders ||
		rows * ACCEPTED_REFERRAL_BYTES > (double) budget)
		return 0;
	return budget;
}

bool
slot_text_equals(TupleTableSlot *slot, AttrNumber att, text *value)
{
	bool		isnull;
	Datum		datum = slot_getattr(slot, att, &isnull);
	text	   *column;

	if (isnull)
		return false;
	column = DatumGetTextPP(datum);
	return VARSIZE_ANY_EXHDR(column) == VARSIZE_ANY_EXHDR(value) &&
		memcmp(VARDATA_ANY(column), VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value)) == 0;
}

/* A referral this transaction's snapshot cannot see: retry the transaction. */
static void
concurrent_redeem_failure(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not serialize access due to a concurrent redeem of an order's customer"),
			 errhint("Retry the transaction.")));
}

/*
 * Waits for a transaction that inserted an accepted referral of an order's
 * customer: a redeem still in progress must not miss this order, nor this order
 * its referral.  Under REPEATABLE READ or SERIALIZABLE a referral it committed
 * would stay invisible to this transaction's SQL, so that is a serialization
 * failure, to be retried.
 */
static void
wait_for_redeem(TransactionId xid)
{
	XactLockTableWait(xid, NULL, NULL, XLTW_None);
	if (IsolationUsesXactSnapshot() && TransactionIdDidCommit(xid))
		concurrent_redeem_failure();
}

/*
 * Whether customer holds an accepted referral in tenant (at most one, by the
 * unique index), with in *converted whether it is converted.  The hash index
 * holds every referral of the referee, rejected ones and those of other
 * tenants too, and a hash match may be another key: each row it returns is
 * checked.  Text keys
 * compare by their bytes, as the hash of accepted referrals does (the
 * database collation is deterministic).
 */
static bool
probe_accepted_referral(IndexScanDesc scan, Relation referrals, Relation index,
						const ReferralTableInfo *info, Snapshot dirty, Snapshot snapshot,
						TupleTableSlot *referral, text *tenant, text *customer,
						bool *converted)
{
	ScanKeyData keys[2];
	StrategyNumber equal = info->hash_index ? HTEqualStrategyNumber : BTEqualStrategyNumber;

	ScanKeyEntryInitialize(&keys[0], 0, 1, equal, InvalidOid, index->rd_indcollation[0],
						   F_TEXTEQ, PointerGetDatum(customer));
	/* The btree is (referee, tenant), text in the default collation. */
	if (!info->hash_index)
		ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[1], F_TEXTEQ,
							   PointerGetDatum(tenant));
rescan:
	index_rescan(scan, keys, info->hash_index ? 1 : 2, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, referral))
	{
		bool		isnull;
		Datum		status = slot_getattr(referral, info->columns.status, &isnull);

		if (isnull || referral_status_is(status, "rejected"))
			continue;
		if (info->hash_index &&
			(!slot_text_equals(referral, info->columns.referee, customer) ||
			 !slot_text_equals(referral, info->columns.tenant, tenant)))
			continue;
		if (TransactionIdIsValid(dirty->xmin))
		{
			wait_for_redeem(dirty->xmin);
			goto rescan;
		}
		/*
		 * Under REPEATABLE READ or SERIALIZABLE the trigger's SQL sees this
		 * transaction's snapshot: a referral accepted (or changed) since would
		 * be missed there.
		 */
		if (IsolationUsesXactSnapshot() &&
			!table_tuple_satisfies_snapshot(referrals, referral, snapshot))
			concurrent_redeem_failure();
		*converted = referral_status_is(status, "converted");
		return true;
	}
	return false;
}

void
order_candidates(Oid schema, Relation rel, Tuplestorestate *orders,
				 AttrNumber customer_att, const char *tenant,
				 AttrNumber tenant_att, const OrderRevenueConfig *revenue,
				 bool record_revenue, Tuplestorestate *candidates, int64 *count,
				 bool *all_converted, Tuplestorestate **firsts, int64 *nfirsts)
{
	MemoryContext per_order = AllocSetContextCreate(CurrentMemoryContext,
													"referral order candidates",
													ALLOCSET_SMALL_SIZES);
	MemoryContext outer;
	OrderKeyColumn customer_col;
	OrderKeyColumn tenant_col = {0};
	text	   *fixed_tenant = NULL;
	Relation	referrals;
	Relation	accepted;
	Snapshot	snapshot;
	SnapshotData dirty;
	IndexScanDesc scan;
	TupleTableSlot *order;
	TupleTableSlot *referral;
	int			reader;
	ReferralTableInfo info;
	AcceptedReferrals *hashed = NULL;
	Size		hash_memory;
	OrderRevenueWriter *writer = NULL;
	bool		writer_tried = false;
	OrderFirsts *picks = NULL;
	Tuplestorestate *first_orders = NULL;

	order_candidates_lookup(schema, &info);
	order_key_column_init(&customer_col, rel, customer_att);
	if (tenant_att != 0)
		order_key_column_init(&tenant_col, rel, tenant_att);
	else
		fixed_tenant = cstring_to_text(tenant);

	referrals = table_open(info.table, AccessShareLock);
	accepted = index_open(info.accepted_index, AccessShareLock);
	/* What the SQL after this pass would see: rows of this command too. */
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	/*
	 * Referrals of transactions still in progress count too, and are waited
	 * for: redeem's existing_customer check sees this statement's orders the
	 * same way (src/customer_orders.c).
	 */
	InitDirtySnapshot(dirty);
	hash_memory = order_candidates_hash_memory(referrals, tuplestore_tuple_count(orders));
	if (hash_memory > 0)
		hashed = accepted_referrals_load(referrals, &dirty, &info.columns, hash_memory);
	if (hashed != NULL)
	{
		int			ninserters;
		const TransactionId *inserters = accepted_referrals_inserters(hashed, &ninserters);
		int			i;

		for (i = 0; i < ninserters; i++)
			wait_for_redeem(inserters[i]);
	}
	elog(DEBUG1, "referral order trigger: %s for " INT64_FORMAT " orders",
		 hashed != NULL ? "a hash of the accepted referrals" :
		 info.hash_index ? "a hash index probe per order" : "a btree probe per order",
		 (int64) tuplestore_tuple_count(orders));

	/*
	 * A load read through the hash (many orders) keeps apart the orders that
	 * may convert a pending referral (order_firsts.c), when the writer can
	 * tell which qualify.
	 */
	*firsts = NULL;
	*nfirsts = 0;
	if (hashed != NULL)
	{
		writer = order_revenue_begin(schema, rel, revenue, referrals, snapshot);
		writer_tried = true;
		if (writer != NULL)
		{
			picks = order_firsts_begin();
			first_orders = tuplestore_begin_heap(false, false, work_mem);
		}
	}

	scan = index_beginscan(referrals, accepted, &dirty, info.hash_index ? 1 : 2, 0);
	referral = table_slot_create(referrals, NULL);
	order = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);

	/* A read pointer of our own: other readers of the transition table keep theirs. */
	reader = tuplestore_alloc_read_pointer(orders, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(orders, reader);
	tuplestore_rescan(orders);

	*count = 0;
	*all_converted = true;
	while (tuplestore_gettupleslot(orders, true, false, order))
	{
		text	   *customer;
		text	   *order_tenant;
		const AcceptedReferral *found = NULL;
		bool		referred;
		bool		converted = false;

		/*
		 * The keys' text in a context reset at every order; the scan itself in
		 * the caller's (the index AM keeps state, such as killed items, that
		 * index_endscan frees).
		 */
		outer = MemoryContextSwitchTo(per_order);
		customer = order_key_column_text(&customer_col, order);
		order_tenant = (tenant_att != 0) ? order_key_column_text(&tenant_col, order) : fixed_tenant;
		MemoryContextSwitchTo(outer);
		referred = false;
		if (customer != NULL && order_tenant != NULL && hashed != NULL)
		{
			found = accepted_referrals_find(hashed, order_tenant, customer);
			referred = (found != NULL);
			converted = referred && found->converted;
		}
		else if (customer != NULL && order_tenant != NULL)
			referred = probe_accepted_referral(scan, referrals, accepted, &info, &dirty, snapshot, referral,
											   order_tenant, customer, &converted);
		/*
		 * A converted referral's later order is revenue, which the writer
		 * records here (it needs the referral's row, which the hash lacks).  It
		 * is set up at the first such order: most statements have none.
		 */
		if (referred && converted && record_revenue && writer == NULL && !writer_tried)
		{
			writer = order_revenue_begin(schema, rel, revenue, referrals, snapshot);
			writer_tried = true;
		}
		if (referred && converted && record_revenue && writer != NULL &&
			(hashed == NULL ||
			 probe_accepted_referral(scan, referrals, accepted, &info, &dirty, snapshot, referral,
									 order_tenant, customer, &converted)) &&
			converted && order_revenue_settle(writer, order, referral, order_tenant))
			referred = false;

		if (referred)
		{
			if (!converted)
				*all_converted = false;
			tuplestore_puttupleslot(candidates, order);
			(*count)++;
		}
		/*
		 * Of a pending referral's orders, only the first that qualifies may
		 * convert it (held back until the end); every order of another
		 * referral goes on.
		 */
		if (referred && picks != NULL)
		{
			text	   *order_ref;
			TimestampTz at;

			switch (converted ? ORDER_UNDECIDED :
					order_revenue_qualifies(writer, order, order_tenant, found->program_id,
											found->created_at, &order_ref, &at))
			{
				case ORDER_QUALIFIES:
					order_firsts_offer(picks, found->id, order_tenant, order, order_ref, at);
					break;
				case ORDER_DOES_NOT_QUALIFY:
					break;
				case ORDER_UNDECIDED:
					tuplestore_puttupleslot(first_orders, order);
					(*nfirsts)++;
					break;
			}
		}
		MemoryContextReset(per_order);
	}
	tuplestore_select_read_pointer(orders, 0);

	if (picks != NULL)
	{
		if (order_firsts_end(picks, writer, order, first_orders, nfirsts))
			*firsts = first_orders;
		else
		{
			tuplestore_end(first_orders);
			*nfirsts = 0;
		}
		elog(DEBUG1, "referral order trigger: %s",
			 *firsts != NULL ? psprintf(INT64_FORMAT " of " INT64_FORMAT " candidates may convert or earn",
										*nfirsts, *count) :
			 "every candidate goes on: an order that may convert was attributed before");
	}
	if (writer != NULL)
		(void) order_revenue_end(writer);
	ExecDropSingleTupleTableSlot(order);
	ExecDropSingleTupleTableSlot(referral);
	index_endscan(scan);
	if (hashed != NULL)
		accepted_referrals_free(hashed);
	UnregisterSnapshot(snapshot);
	index_close(accepted, AccessShareLock);
	table_close(referrals, AccessShareLock);
	MemoryContextDelete(per_order);
}

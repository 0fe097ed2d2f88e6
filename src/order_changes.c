/*
 * order_changes.c
 *		The order trigger's first pass over the orders an UPDATE or DELETE
 *		changed: keeps the orders that referral may hold something about, so
 *		that the SQL reads only those, and an UPDATE or DELETE of orders of
 *		customers nobody referred (a shop's status changes, most refunds) runs
 *		no SQL at all.
 *
 *		An order matters when its customer is the referee of a referral of its
 *		tenant, whatever that referral's status (more than needed: voiding a
 *		referral reverses its orders there and then), when it is attributed to
 *		a referral (referral.attributed_order has its id), or when its id is
 *		the order_ref of a live referee offer use.  The last two are looked up
 *		by the order's id alone, since its customer may be another: a customer
 *		key may have changed while the table was not tracked, or under 0.2, or
 *		been erased by forget(), and use_offer keys a use by the order alone.
 *		The customer look-up comes first, as it settles the referees' orders
 *		(the only ones the paid-orders statement can attribute) in one hash
 *		probe; an order of a customer nobody referred then costs one probe of
 *		attributed_order's primary key, and one of the live offer uses when
 *		there are any.  A referral this pass does not see yet cannot concern
 *		these orders: redeem refuses a customer who already has an order
 *		(existing_customer), and every order changed here existed before the
 *		statement.  Referrals, attributions and offer uses of transactions
 *		still in progress count too (a dirty snapshot): the pass may keep too
 *		many orders, never too few.  Under REPEATABLE READ, a row that a
 *		transaction committed since this one's snapshot changed is judged by
 *		its new version (an offer use restored, an attribution released); the
 *		SQL would have acted on the old one and failed to serialize.
 *
 *		Both sides of an UPDATE keep the same orders.  When no order's id,
 *		customer or tenant changed, the old row goes with the new row at its
 *		place; when one did, the rows of every id that matters on either side
 *		go on, since every join of the SQL pairs rows of one id.
 *
 *		What the pass cannot tell, it leaves to the SQL (every row goes on):
 *		an orders table without a unique index on its id alone, or a partition
 *		or a table with inheritance children (orders_have_unique_id), may hold
 *		two rows of one id, one order to the ledger, whose customers differ.
 *
 *		Like the INSERT pass (order_candidates.c), it reads the referrals
 *		through a hash when the statement has many more orders than there are
 *		referrals, and probes referral_referee_hash once per order otherwise.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_index.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "key_set.h"
#include "order_candidates.h"
#include "order_changes.h"
#include "order_keys.h"
#include "order_revenue.h"
#include "referral_names.h"

/*
 * One look-up: a table of the extension's, an index of it with a scan kept
 * open for probes, and, for a large statement, its keys read into a set once
 * (then the set answers and the index is not probed).
 */
typedef struct KeyLookup
{
	Relation	table;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	KeySet	   *set;
} KeyLookup;

/* What the pass looks an order up in. */
typedef struct ChangeLookup
{
	SnapshotData dirty;
	ReferralTableInfo info;
	KeyLookup	referees;		/* referrals by referee (hash index) */
	KeyLookup	attributed;		/* attributed orders of this source, by id */
	KeyLookup	offer_uses;		/* live offer uses, by order_ref */
	bool		offers;			/* false: no offer use at all */
	text	   *source;
	/* The order's keys, as text. */
	OrderKeyColumn customer;
	OrderKeyColumn id;
	OrderKeyColumn tenant;
	bool		tenant_column;
	text	   *fixed_tenant;
	MemoryContext per_order;	/* the keys' text, reset at every order */
} ChangeLookup;

/* Whether the dirty snapshot sees a row of the table (it reads up to the first). */
static bool
relation_has_rows(Oid relid, Snapshot dirty)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleTableSlot *row;
	TableScanDesc scan;
	bool		found = false;

	/* A table that never held a row has no block: no scan to set up. */
	if (RelationGetNumberOfBlocks(rel) > 0)
	{
		row = table_slot_create(rel, NULL);
		scan = table_beginscan(rel, dirty, 0, NULL);
		found = table_scan_getnextslot(scan, ForwardScanDirection, row);
		table_endscan(scan);
		ExecDropSingleTupleTableSlot(row);
	}
	table_close(rel, AccessShareLock);
	return found;
}

/* Opens a look-up's table and index, and a scan of nkeys keys for probes. */
static void
key_lookup_open(KeyLookup *lookup, Oid table, Oid index, int nkeys, Snapshot snapshot)
{
	lookup->table = table_open(table, AccessShareLock);
	lookup->index = index_open(index, AccessShareLock);
	lookup->scan = index_beginscan(lookup->table, lookup->index, snapshot, nkeys, 0);
	lookup->slot = table_slot_create(lookup->table, NULL);
	lookup->set = NULL;
}

static void
key_lookup_close(KeyLookup *lookup)
{
	ExecDropSingleTupleTableSlot(lookup->slot);
	index_endscan(lookup->scan);
	if (lookup->set != NULL)
		key_set_free(lookup->set);
	index_close(lookup->index, AccessShareLock);
	table_close(lookup->table, AccessShareLock);
}

/*
 * Whether the btree of a look-up has a row visible to the scan's snapshot
 * whose first nkeys columns equal values (text, in the index's collations).
 */
static bool
key_lookup_probe(KeyLookup *lookup, text **values, int nkeys)
{
	ScanKeyData keys[INDEX_MAX_KEYS];
	int			i;

	for (i = 0; i < nkeys; i++)
		ScanKeyEntryInitialize(&keys[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   lookup->index->rd_indcollation[i], F_TEXTEQ,
							   PointerGetDatum(values[i]));
	index_rescan(lookup->scan, keys, nkeys, NULL, 0);
	return index_getnext_slot(lookup->scan, ForwardScanDirection, lookup->slot);
}

/*
 * Reads (tenant, key) of every row of rel that the dirty snapshot sees into a
 * set; with live_att, only rows whose live_att is NULL; with source_att, only
 * rows whose source_att is source.  NULL when the set would take more than
 * max_memory.
 */
static KeySet *
load_keys(Relation rel, Snapshot dirty, AttrNumber tenant_att, AttrNumber key_att,
		  AttrNumber live_att, AttrNumber source_att, text *source, Size max_memory)
{
	KeySet	   *set = key_set_create();
	TupleTableSlot *row = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, dirty, 0, NULL);
	bool		complete = true;
	int64		nread = 0;

	while (table_scan_getnextslot(scan, ForwardScanDirection, row))
	{
		bool		tenant_null;
		bool		key_null;
		bool		live_null = true;
		Datum		tenant = slot_getattr(row, tenant_att, &tenant_null);
		Datum		key = slot_getattr(row, key_att, &key_null);

		if (live_att != InvalidAttrNumber)
			(void) slot_getattr(row, live_att, &live_null);
		if (tenant_null || key_null || !live_null ||
			(source_att != InvalidAttrNumber && !slot_text_equals(row, source_att, source)))
			continue;
		if (++nread % 1024 == 0 && key_set_memory(set) > max_memory)
		{
			complete = false;
			break;
		}
		key_set_add(set, DatumGetTextPP(tenant), DatumGetTextPP(key));
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(row);
	if (!complete)
	{
		key_set_free(set);
		return NULL;
	}
	return set;
}

/* Whether customer is the referee of a referral of tenant, any status. */
static bool
probe_referee(ChangeLookup *lk, text *tenant, text *customer)
{
	KeyLookup  *referees = &lk->referees;
	ScanKeyData key;

	ScanKeyEntryInitialize(&key, 0, 1, HTEqualStrategyNumber, InvalidOid,
						   referees->index->rd_indcollation[0], F_TEXTEQ,
						   PointerGetDatum(customer));
	index_rescan(referees->scan, &key, 1, NULL, 0);
	/* A hash match may be another key, or the referee of another tenant. */
	while (index_getnext_slot(referees->scan, ForwardScanDirection, referees->slot))
		if (slot_text_equals(referees->slot, lk->info.columns.referee, customer) &&
			slot_text_equals(referees->slot, lk->info.columns.tenant, tenant))
			return true;
	return false;
}

/* Whether order_ref of tenant is attributed to a referral (any state). */
static bool
probe_attributed(ChangeLookup *lk, text *tenant, text *order_ref)
{
	text	   *values[3] = {tenant, lk->source, order_ref};

	return key_lookup_probe(&lk->attributed, values, 3);
}

/* Whether a live offer use of tenant names order_ref (the index is partial). */
static bool
probe_offer(ChangeLookup *lk, text *tenant, text *order_ref)
{
	text	   *values[2] = {tenant, order_ref};

	return key_lookup_probe(&lk->offer_uses, values, 2);
}

/*
 * Whether the order in slot matters (see the file's comment); its id as text
 * in *id when it does.  The keys' text is made in lk->per_order, the probes
 * run in the caller's context (an index scan keeps state there).
 */
static bool
order_matters(ChangeLookup *lk, TupleTableSlot *slot, text **id)
{
	MemoryContext outer = MemoryContextSwitchTo(lk->per_order);
	text	   *tenant = lk->tenant_column ? order_key_column_text(&lk->tenant, slot) : lk->fixed_tenant;
	text	   *customer = order_key_column_text(&lk->customer, slot);
	bool		matters;

	*id = order_key_column_text(&lk->id, slot);
	MemoryContextSwitchTo(outer);
	if (tenant == NULL || *id == NULL)
		return false;			/* the SQL leaves such a row out */
	matters = (customer != NULL &&
			   ((lk->referees.set != NULL) ? key_set_contains(lk->referees.set, tenant, customer) :
				probe_referee(lk, tenant, customer)));
	if (!matters)
		matters = (lk->attributed.set != NULL) ? key_set_contains(lk->attributed.set, tenant, *id) :
			probe_attributed(lk, tenant, *id);
	if (!matters && lk->offers)
		matters = (lk->offer_uses.set != NULL) ? key_set_contains(lk->offer_uses.set, tenant, *id) :
			probe_offer(lk, tenant, *id);
	return matters;
}

/* Selects a read pointer of our own: other readers of the table keep theirs. */
static void
rows_rewind(Tuplestorestate *rows)
{
	tuplestore_select_read_pointer(rows, tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND));
	tuplestore_rescan(rows);
}

/* Adds to ids the id of every order of rows that matters. */
static void
collect_ids(ChangeLookup *lk, Tuplestorestate *rows, TupleTableSlot *slot, KeySet *ids)
{
	rows_rewind(rows);
	while (tuplestore_gettupleslot(rows, true, false, slot))
	{
		text	   *id;

		if (order_matters(lk, slot, &id))
			key_set_add(ids, NULL, id);
		MemoryContextReset(lk->per_order);
	}
	tuplestore_select_read_pointer(rows, 0);
}

/* Whether the id of the row in slot is one of ids. */
static bool
row_kept(ChangeLookup *lk, TupleTableSlot *slot, KeySet *ids)
{
	MemoryContext outer = MemoryContextSwitchTo(lk->per_order);
	text	   *id = order_key_column_text(&lk->id, slot);
	bool		kept = (id != NULL && key_set_contains(ids, NULL, id));

	MemoryContextSwitchTo(outer);
	MemoryContextReset(lk->per_order);
	return kept;
}

/* The rows of `rows` whose id is one of ids, with their number in *count. */
static Tuplestorestate *
keep_rows(ChangeLookup *lk, Tuplestorestate *rows, TupleTableSlot *slot, KeySet *ids,
		  int64 *count)
{
	Tuplestorestate *kept = tuplestore_begin_heap(false, false, work_mem);

	*count = 0;
	rows_rewind(rows);
	while (tuplestore_gettupleslot(rows, true, false, slot))
		if (row_kept(lk, slot, ids))
		{
			tuplestore_puttupleslot(kept, slot);
			(*count)++;
		}
	tuplestore_select_read_pointer(rows, 0);
	return kept;
}

/*
 * The orders that matter, each judged once: the old rows of a DELETE, or both
 * sides of an UPDATE whose rows pair by their place (keys_unchanged), judged
 * by the new row.  The order ids are unique (orders_have_unique_id), so no
 * other row of either side has the same id.
 */
static void
keep_matching(ChangeLookup *lk, Tuplestorestate *olds, Tuplestorestate *news,
			  TupleTableSlot *o, TupleTableSlot *n,
			  Tuplestorestate **kept_olds, Tuplestorestate **kept_news, int64 *count)
{
	*kept_olds = tuplestore_begin_heap(false, false, work_mem);
	if (news != NULL)
		*kept_news = tuplestore_begin_heap(false, false, work_mem);
	*count = 0;
	rows_rewind(olds);
	if (news != NULL)
		rows_rewind(news);
	while (tuplestore_gettupleslot(olds, true, false, o) &&
		   (news == NULL || tuplestore_gettupleslot(news, true, false, n)))
	{
		text	   *id;

		if (order_matters(lk, news != NULL ? n : o, &id))
		{
			tuplestore_puttupleslot(*kept_olds, o);
			if (news != NULL)
				tuplestore_puttupleslot(*kept_news, n);
			(*count)++;
		}
		MemoryContextReset(lk->per_order);
	}
	tuplestore_select_read_pointer(olds, 0);
	if (news != NULL)
		tuplestore_select_read_pointer(news, 0);
}

/* Whether an index exists and may be read (not being built or dropped). */
static bool
index_usable(Oid indexoid)
{
	HeapTuple	tuple;
	bool		usable;

	if (!OidIsValid(indexoid))
		return false;
	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	if (!HeapTupleIsValid(tuple))
		return false;
	usable = ((Form_pg_index) GETSTRUCT(tuple))->indisvalid &&
		((Form_pg_index) GETSTRUCT(tuple))->indisready &&
		((Form_pg_index) GETSTRUCT(tuple))->indislive;
	ReleaseSysCache(tuple);
	return usable;
}

/* About what one attributed order takes in a key set (key_set.c), for the estimate. */
#define ATTRIBUTED_ORDER_KEY_BYTES 16

/*
 * Whether the attributed orders may be read into a key set within max_memory,
 * judged by the table's size (its rows of other sources count too).
 */
static bool
attributed_fit(Relation attributed, Size max_memory)
{
	double		rows = attributed->rd_rel->reltuples;

	if (rows <= 0)
		rows = (double) RelationGetNumberOfBlocks(attributed) * 60.0;
	return max_memory > 0 && rows * ATTRIBUTED_ORDER_KEY_BYTES <= (double) max_memory;
}

/* The columns a look-up reads in a table of the extension's. */
typedef struct LookupColumns
{
	AttrNumber	tenant;
	AttrNumber	key;			/* order_ref */
	AttrNumber	filter;			/* restored_at (offer uses), order_source (attributed) */
} LookupColumns;

static bool
lookup_columns(Oid relid, const char *key, const char *filter, LookupColumns *columns)
{
	columns->tenant = get_attnum(relid, LEDGER_TENANT_COLUMN_NAME);
	columns->key = get_attnum(relid, key);
	columns->filter = get_attnum(relid, filter);
	return columns->tenant != InvalidAttrNumber && columns->key != InvalidAttrNumber &&
		columns->filter != InvalidAttrNumber;
}

/* Opens what the pass reads; false when it cannot tell which orders matter. */
static bool
lookup_begin(ChangeLookup *lk, Oid schema, Relation rel, const OrderChangeColumns *columns,
			 int64 norders)
{
	Oid			attributed = get_relname_relid(ATTRIBUTED_ORDER_TABLE_NAME, schema);
	Oid			attributed_index = get_relname_relid(ATTRIBUTED_ORDER_PKEY_INDEX_NAME, schema);
	Oid			offer_uses = get_relname_relid(OFFER_USE_TABLE_NAME, schema);
	Oid			offer_index = get_relname_relid(OFFER_USE_LIVE_ORDER_INDEX_NAME, schema);
	LookupColumns attributed_columns;
	LookupColumns offer_columns = {0};
	Size		hash_memory;

	memset(lk, 0, sizeof(*lk));
	/* Rows of two customers with one id would be one order to the ledger. */
	if (!orders_have_unique_id(rel, columns->id))
		return false;
	order_candidates_lookup(schema, &lk->info);
	if (!lk->info.hash_index || !index_usable(lk->info.accepted_index))
		return false;			/* 0.1: no index by referee alone */
	if (!OidIsValid(attributed) || !index_usable(attributed_index) ||
		!lookup_columns(attributed, LEDGER_ORDER_REF_COLUMN_NAME, LEDGER_ORDER_SOURCE_COLUMN_NAME,
						&attributed_columns))
		return false;
	/* The SQL reads the offer uses whenever the table is there (0.3 on). */
	if (OidIsValid(offer_uses) &&
		(!index_usable(offer_index) ||
		 !lookup_columns(offer_uses, LEDGER_ORDER_REF_COLUMN_NAME, OFFER_USE_RESTORED_COLUMN_NAME,
						 &offer_columns)))
		return false;
	InitDirtySnapshot(lk->dirty);

	order_key_column_init(&lk->customer, rel, columns->customer);
	order_key_column_init(&lk->id, rel, columns->id);
	lk->tenant_column = (columns->tenant != InvalidAttrNumber);
	if (lk->tenant_column)
		order_key_column_init(&lk->tenant, rel, columns->tenant);
	else
		lk->fixed_tenant = cstring_to_text(columns->fixed_tenant);
	lk->source = cstring_to_text(columns->source);
	lk->per_order = AllocSetContextCreate(CurrentMemoryContext, "referral changed orders",
										  ALLOCSET_SMALL_SIZES);

	key_lookup_open(&lk->referees, lk->info.table, lk->info.accepted_index, 1, &lk->dirty);
	hash_memory = order_candidates_hash_memory(lk->referees.table, norders);
	if (hash_memory > 0)
		lk->referees.set = load_keys(lk->referees.table, &lk->dirty, lk->info.columns.tenant,
									 lk->info.columns.referee, InvalidAttrNumber,
									 InvalidAttrNumber, NULL, hash_memory);

	/* A large statement reads the attributed orders once when they fit. */
	key_lookup_open(&lk->attributed, attributed, attributed_index, 3, &lk->dirty);
	if (lk->referees.set != NULL && attributed_fit(lk->attributed.table, hash_memory))
		lk->attributed.set = load_keys(lk->attributed.table, &lk->dirty, attributed_columns.tenant,
									   attributed_columns.key, InvalidAttrNumber,
									   attributed_columns.filter, lk->source, hash_memory);

	lk->offers = (OidIsValid(offer_uses) && relation_has_rows(offer_uses, &lk->dirty));
	if (lk->offers)
	{
		key_lookup_open(&lk->offer_uses, offer_uses, offer_index, 2, &lk->dirty);
		if (lk->referees.set != NULL)
			lk->offer_uses.set = load_keys(lk->offer_uses.table, &lk->dirty, offer_columns.tenant,
										   offer_columns.key, offer_columns.filter,
										   InvalidAttrNumber, NULL, hash_memory);
	}
	return true;
}

static void
lookup_end(ChangeLookup *lk)
{
	if (lk->offers)
		key_lookup_close(&lk->offer_uses);
	key_lookup_close(&lk->attributed);
	key_lookup_close(&lk->referees);
	MemoryContextDelete(lk->per_order);
}

bool
order_changes(Oid schema, Relation rel, Tuplestorestate *olds, Tuplestorestate *news,
			  bool keys_unchanged, const OrderChangeColumns *columns,
			  Tuplestorestate **kept_olds, int64 *nolds,
			  Tuplestorestate **kept_news, int64 *nnews)
{
	Tuplestorestate *orders = (news != NULL) ? news : olds;
	ChangeLookup lk;
	TupleTableSlot *o;
	TupleTableSlot *n;

	*kept_olds = *kept_news = NULL;
	*nolds = *nnews = 0;
	if (!lookup_begin(&lk, schema, rel, columns, tuplestore_tuple_count(orders)))
		return false;

	o = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	n = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	if (news == NULL || keys_unchanged)
	{
		keep_matching(&lk, olds, news, o, n, kept_olds, kept_news, nolds);
		if (news != NULL)
			*nnews = *nolds;
	}
	else
	{
		/* An order that moved matters by its old customer too: both sides are read. */
		KeySet	   *ids = key_set_create();

		collect_ids(&lk, news, n, ids);
		collect_ids(&lk, olds, o, ids);
		*kept_olds = keep_rows(&lk, olds, o, ids, nolds);
		*kept_news = keep_rows(&lk, news, n, ids, nnews);
		key_set_free(ids);
	}
	elog(DEBUG1, "referral order trigger: " INT64_FORMAT " of " INT64_FORMAT " changed orders concern referral (%s, %s)",
		 Max(*nolds, *nnews), (int64) tuplestore_tuple_count(orders),
		 lk.referees.set != NULL ? "a hash of the referees" : "a probe of the referees per order",
		 lk.attributed.set != NULL ? "a hash of the attributed orders" : "a probe of the attributed orders per order");
	ExecDropSingleTupleTableSlot(o);
	ExecDropSingleTupleTableSlot(n);
	lookup_end(&lk);
	return true;
}

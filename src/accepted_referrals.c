/*
 * accepted_referrals.c
 *		A hash table of the accepted referrals by (tenant, referee), read with
 *		one sequential scan of referral.referral.
 *
 *		A bulk load of a million orders would otherwise cost a million probes
 *		of the btree on (referee, tenant), each comparing text in the
 *		database's collation (strcoll, unless it is "C").  When the statement
 *		has many more orders than there are referrals, reading them all once
 *		and hashing is cheaper.  Keys are compared byte for byte, which is
 *		text equality under the deterministic collation the columns have.
 */
#include "postgres.h"

#include "access/transam.h"

#include "access/tableam.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "accepted_referrals.h"
#include "key_set.h"

/* An entry, keyed by (tenant, referee) as KeyBytes. */
typedef struct AcceptedEntry
{
	KeyBytes	key;
	AcceptedReferral referral;
} AcceptedEntry;

struct AcceptedReferrals
{
	MemoryContext context;
	HTAB	   *table;
	StringInfoData probe;		/* the key of a lookup, reused */
	/* With a dirty snapshot: transactions whose inserted referrals were read. */
	TransactionId *inserters;
	int			ninserters;
	int			max_inserters;
};

bool
referral_status_is(Datum value, const char *status)
{
	text	   *t = DatumGetTextPP(value);

	return VARSIZE_ANY_EXHDR(t) == strlen(status) &&
		memcmp(VARDATA_ANY(t), status, strlen(status)) == 0;
}

AcceptedReferrals *
accepted_referrals_load(Relation referrals, Snapshot snapshot,
						const AcceptedReferralColumns *columns, Size max_memory)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext,
												  "referral accepted referrals",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext outer = MemoryContextSwitchTo(context);
	AcceptedReferrals *set = palloc0(sizeof(AcceptedReferrals));
	TableScanDesc scan;
	TupleTableSlot *row;
	bool		complete = true;

	set->context = context;
	initStringInfo(&set->probe);
	set->table = key_bytes_table("referral accepted referrals", sizeof(AcceptedEntry), 1024, context);

	row = table_slot_create(referrals, NULL);
	scan = table_beginscan(referrals, snapshot, 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, row))
	{
		bool		status_null;
		bool		tenant_null;
		bool		referee_null;
		bool		isnull;
		Datum		status = slot_getattr(row, columns->status, &status_null);
		Datum		tenant = slot_getattr(row, columns->tenant, &tenant_null);
		Datum		referee = slot_getattr(row, columns->referee, &referee_null);
		KeyBytes	key;
		AcceptedEntry *entry;
		bool		found;

		if (status_null || tenant_null || referee_null || referral_status_is(status, "rejected"))
			continue;
		if (MemoryContextMemAllocated(context, true) > max_memory)
		{
			complete = false;
			break;
		}
		key_bytes_build(&set->probe, DatumGetTextPP(tenant), DatumGetTextPP(referee));
		key.len = set->probe.len;
		key.bytes = memcpy(palloc(key.len), set->probe.data, key.len);
		entry = (AcceptedEntry *) hash_search(set->table, &key, HASH_ENTER, &found);
		entry->referral.converted = referral_status_is(status, "converted");
		entry->referral.id = DatumGetInt64(slot_getattr(row, columns->id, &isnull));
		entry->referral.program_id = DatumGetInt64(slot_getattr(row, columns->program_id, &isnull));
		entry->referral.created_at = DatumGetTimestampTz(slot_getattr(row, columns->created_at, &isnull));
		if (snapshot->snapshot_type == SNAPSHOT_DIRTY && TransactionIdIsValid(snapshot->xmin))
		{
			if (set->ninserters == set->max_inserters)
			{
				set->max_inserters = Max(8, set->max_inserters * 2);
				set->inserters = (set->inserters == NULL) ?
					palloc(set->max_inserters * sizeof(TransactionId)) :
					repalloc(set->inserters, set->max_inserters * sizeof(TransactionId));
			}
			set->inserters[set->ninserters++] = snapshot->xmin;
		}
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(row);
	MemoryContextSwitchTo(outer);

	if (!complete)
	{
		MemoryContextDelete(context);
		return NULL;
	}
	return set;
}

const AcceptedReferral *
accepted_referrals_find(AcceptedReferrals *set, text *tenant, text *referee)
{
	MemoryContext outer = MemoryContextSwitchTo(set->context);
	KeyBytes	key;
	AcceptedEntry *entry;

	key_bytes_build(&set->probe, tenant, referee);
	MemoryContextSwitchTo(outer);
	key.bytes = set->probe.data;
	key.len = set->probe.len;
	entry = (AcceptedEntry *) hash_search(set->table, &key, HASH_FIND, NULL);
	return (entry != NULL) ? &entry->referral : NULL;
}

const TransactionId *
accepted_referrals_inserters(AcceptedReferrals *set, int *count)
{
	*count = set->ninserters;
	return set->inserters;
}

void
accepted_referrals_free(AcceptedReferrals *set)
{
	MemoryContextDelete(set->context);
}

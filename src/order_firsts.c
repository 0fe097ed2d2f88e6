/*
 * order_firsts.c
 *		Per pending referral, the first qualifying order of a bulk INSERT.
 *
 *		A pending referral converts with its first qualifying order, by order
 *		time and then order id; its other orders of the statement are revenue
 *		once it converted, which the revenue statement records from the whole
 *		set of candidates.  A bulk load of referees' first orders (a shop's
 *		import) would otherwise have the paid-orders statement look up the
 *		referral of every one of those orders again and number them with
 *		window functions, to keep one per referral.  Held here, one tuple per
 *		referral, the statement reads one order per referral instead: memory
 *		grows with the referrals, not with the statement.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "order_firsts.h"

typedef struct FirstOrder
{
	int64		referral_id;	/* the hash key */
	text	   *tenant;
	text	   *order_ref;
	TimestampTz at;
	MinimalTuple order;
} FirstOrder;

struct OrderFirsts
{
	MemoryContext context;
	HTAB	   *referrals;
};

OrderFirsts *
order_firsts_begin(void)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext,
												  "referral first orders",
												  ALLOCSET_DEFAULT_SIZES);
	OrderFirsts *firsts = MemoryContextAlloc(context, sizeof(OrderFirsts));
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(FirstOrder);
	ctl.hcxt = context;
	firsts->context = context;
	firsts->referrals = hash_create("referral first orders", 1024, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	return firsts;
}

/* Byte order of two ids, as ORDER BY ... COLLATE "C" sorts them. */
static int
order_ref_cmp(text *a, text *b)
{
	int			alen = VARSIZE_ANY_EXHDR(a);
	int			blen = VARSIZE_ANY_EXHDR(b);
	int			c = memcmp(VARDATA_ANY(a), VARDATA_ANY(b), Min(alen, blen));

	return (c != 0) ? c : (alen > blen) - (alen < blen);
}

void
order_firsts_offer(OrderFirsts *firsts, int64 referral_id, text *tenant,
				   TupleTableSlot *order, text *order_ref, TimestampTz at)
{
	bool		found;
	FirstOrder *kept = hash_search(firsts->referrals, &referral_id, HASH_ENTER, &found);
	MemoryContext outer;

	if (found && (kept->at < at || (kept->at == at && order_ref_cmp(kept->order_ref, order_ref) <= 0)))
		return;
	outer = MemoryContextSwitchTo(firsts->context);
	if (found)
	{
		pfree(kept->order_ref);
		pfree(kept->order);
	}
	else
		kept->tenant = (text *) pg_detoast_datum_copy((struct varlena *) tenant);
	kept->order_ref = (text *) pg_detoast_datum_copy((struct varlena *) order_ref);
	kept->at = at;
	kept->order = ExecCopySlotMinimalTuple(order);
	MemoryContextSwitchTo(outer);
}

bool
order_firsts_end(OrderFirsts *firsts, OrderRevenueWriter *writer, TupleTableSlot *slot,
				 Tuplestorestate *out, int64 *count)
{
	HASH_SEQ_STATUS seq;
	FirstOrder *kept;
	bool		complete = true;

	hash_seq_init(&seq, firsts->referrals);
	while ((kept = hash_seq_search(&seq)) != NULL)
		if (order_revenue_attributed(writer, kept->tenant, kept->order_ref))
		{
			complete = false;
			hash_seq_term(&seq);
			break;
		}
	if (complete)
	{
		hash_seq_init(&seq, firsts->referrals);
		while ((kept = hash_seq_search(&seq)) != NULL)
		{
			ExecStoreMinimalTuple(kept->order, slot, false);
			tuplestore_puttupleslot(out, slot);
			(*count)++;
		}
	}
	MemoryContextDelete(firsts->context);
	return complete;
}

/*
 * order_candidates.h
 *		Picks, from the orders a statement inserted, those whose customer holds
 *		an accepted referral: the only ones the order trigger's SQL needs to see.
 *		See order_candidates.c.
 */
#ifndef REFERRAL_ORDER_CANDIDATES_H
#define REFERRAL_ORDER_CANDIDATES_H

#include "postgres.h"

#include "executor/tuptable.h"
#include "utils/relcache.h"
#include "utils/tuplestore.h"

#include "accepted_referrals.h"
#include "order_revenue.h"

/* The referral table's OIDs and columns the order trigger's C passes read. */
typedef struct ReferralTableInfo
{
	Oid			table;
	Oid			accepted_index;
	bool		hash_index;		/* referral_referee_hash: keyed by referee alone */
	AcceptedReferralColumns columns;
} ReferralTableInfo;

/* Looks them up (kept per backend until an invalidation). */
extern void order_candidates_lookup(Oid schema, ReferralTableInfo *info);

/*
 * The memory a hash of the referrals may take for a statement of norders
 * orders, or 0 when one index probe per order is cheaper (or a scan would
 * take a predicate lock on the whole table).
 */
extern Size order_candidates_hash_memory(Relation referrals, int64 norders);

/* Whether a text column of the slot holds exactly the bytes of value. */
extern bool slot_text_equals(TupleTableSlot *slot, AttrNumber att, text *value);

/* Whether the pass can run here (not under Citus, whose tables it cannot read). */
extern bool order_candidates_usable(void);

/*
 * Appends to `candidates` the rows of `orders` (a transition table of `rel`)
 * whose customer (customer_att, as text) holds an accepted referral in its
 * tenant (the fixed `tenant`, or tenant_att as text when tenant_att is not 0);
 * the number of rows in *count, and in *all_converted whether every one of
 * those referrals was converted when probed.  `schema` is the extension's
 * schema; `revenue` says how the orders are read.  With record_revenue, the
 * later orders of converted referrals are recorded as revenue here
 * (order_revenue.c) where they can be, and left out.
 *
 * *firsts is NULL, or the candidates the paid-orders statement needs (*nfirsts
 * of them): of each pending referral only the order that may convert it
 * (order_firsts.c), every order of the others.
 */
extern void order_candidates(Oid schema, Relation rel, Tuplestorestate *orders,
							 AttrNumber customer_att, const char *tenant,
							 AttrNumber tenant_att, const OrderRevenueConfig *revenue,
							 bool record_revenue, Tuplestorestate *candidates, int64 *count,
							 bool *all_converted, Tuplestorestate **firsts, int64 *nfirsts);

#endif							/* REFERRAL_ORDER_CANDIDATES_H */

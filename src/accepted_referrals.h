/*
 * accepted_referrals.h
 *		The accepted referrals of the database, read once into a hash table by
 *		(tenant, referee): what the order trigger's C pass looks an order's
 *		customer up in when a statement inserts many more orders than there
 *		are referrals.  See accepted_referrals.c.
 */
#ifndef REFERRAL_ACCEPTED_REFERRALS_H
#define REFERRAL_ACCEPTED_REFERRALS_H

#include "postgres.h"

#include "utils/relcache.h"
#include "utils/snapshot.h"

typedef struct AcceptedReferrals AcceptedReferrals;

/*
 * Reads the referrals of `referrals` visible to `snapshot` whose status (a text
 * column) is not 'rejected', keyed by their tenant and referee columns; NULL,
 * having read no further, when they take more than max_memory bytes.  The set
 * lives in a memory context of its own, under the current one.
 */
extern AcceptedReferrals *accepted_referrals_load(Relation referrals, Snapshot snapshot,
												  AttrNumber tenant_att,
												  AttrNumber referee_att,
												  AttrNumber status_att,
												  Size max_memory);

/* Whether referee holds an accepted referral in tenant, and in *converted whether it is converted. */
extern bool accepted_referrals_find(AcceptedReferrals *set, text *tenant, text *referee,
									bool *converted);

/*
 * Loaded with a dirty snapshot: the transactions, still in progress then, whose
 * inserted referrals the set holds (the caller waits for them).
 */
extern const TransactionId *accepted_referrals_inserters(AcceptedReferrals *set, int *count);

extern void accepted_referrals_free(AcceptedReferrals *set);

/* Whether a referral's status (a text datum) is `status`. */
extern bool referral_status_is(Datum value, const char *status);

#endif							/* REFERRAL_ACCEPTED_REFERRALS_H */

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

#include "datatype/timestamp.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

typedef struct AcceptedReferrals AcceptedReferrals;

/* The columns of referral.referral the set reads. */
typedef struct AcceptedReferralColumns
{
	AttrNumber	id;
	AttrNumber	program_id;
	AttrNumber	tenant;
	AttrNumber	referee;
	AttrNumber	status;			/* text */
	AttrNumber	created_at;
} AcceptedReferralColumns;

/* One accepted referral, as the set holds it. */
typedef struct AcceptedReferral
{
	int64		id;
	int64		program_id;
	TimestampTz created_at;		/* the redeem */
	bool		converted;
} AcceptedReferral;

/*
 * Reads the referrals of `referrals` visible to `snapshot` whose status is not
 * 'rejected', keyed by their tenant and referee; NULL, having read no further,
 * when they take more than max_memory bytes.  The set lives in a memory context
 * of its own, under the current one.
 */
extern AcceptedReferrals *accepted_referrals_load(Relation referrals, Snapshot snapshot,
												  const AcceptedReferralColumns *columns,
												  Size max_memory);

/* The accepted referral of referee in tenant, or NULL. */
extern const AcceptedReferral *accepted_referrals_find(AcceptedReferrals *set, text *tenant,
													   text *referee);

/*
 * Loaded with a dirty snapshot: the transactions, still in progress then, whose
 * inserted referrals the set holds (the caller waits for them).
 */
extern const TransactionId *accepted_referrals_inserters(AcceptedReferrals *set, int *count);

extern void accepted_referrals_free(AcceptedReferrals *set);

/* Whether a referral's status (a text datum) is `status`. */
extern bool referral_status_is(Datum value, const char *status);

#endif							/* REFERRAL_ACCEPTED_REFERRALS_H */

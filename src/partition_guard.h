/*
 * partition_guard.h
 *		The event trigger that refuses to detach or drop a partition of a
 *		tracked orders table that still holds orders.  See partition_guard.c.
 */
#ifndef REFERRAL_PARTITION_GUARD_H
#define REFERRAL_PARTITION_GUARD_H

#include "fmgr.h"

extern Datum referral_partition_guard(PG_FUNCTION_ARGS);

#endif							/* REFERRAL_PARTITION_GUARD_H */

/*
 * order_truncate.h
 *		The BEFORE TRUNCATE trigger of a tracked orders table
 *		(referral._orders_truncated).  See order_truncate.c.
 */
#ifndef REFERRAL_ORDER_TRUNCATE_H
#define REFERRAL_ORDER_TRUNCATE_H

#include "fmgr.h"

extern Datum referral_orders_truncated(PG_FUNCTION_ARGS);

#endif							/* REFERRAL_ORDER_TRUNCATE_H */

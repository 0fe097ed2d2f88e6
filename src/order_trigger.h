/*
 * order_trigger.h
 *		The statement-level trigger that attaches a shop's orders table to the
 *		referral ledger (referral._order_trigger, installed by
 *		referral.track_orders).  See order_trigger.c.
 */
#ifndef REFERRAL_ORDER_TRIGGER_H
#define REFERRAL_ORDER_TRIGGER_H

#include "fmgr.h"

/* Transition table names the trigger expects (CREATE TRIGGER ... REFERENCING). */
#define ORDER_TRIGGER_NEW_TABLE		"referral_new"
#define ORDER_TRIGGER_OLD_TABLE		"referral_old"

/* Number of trigger arguments, in the order referral.track_orders passes them. */
#define ORDER_TRIGGER_NARGS			10

/* The hint of every error about how the order triggers are installed. */
#define ORDER_TRIGGER_HINT	"Install the trigger with referral.track_orders()."

extern Datum referral_order_trigger(PG_FUNCTION_ARGS);

#endif							/* REFERRAL_ORDER_TRIGGER_H */

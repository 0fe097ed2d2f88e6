/*
 * referral_names.h
 *		The names of referral's own schema objects that the C code looks up or
 *		writes into SQL text, in one place (as sql/install/ creates them).
 *		Plain string literals, so that they concatenate into SQL text.
 */
#ifndef REFERRAL_NAMES_H
#define REFERRAL_NAMES_H

/* The extension's schema, as the SQL text of the order triggers names it. */
#define REFERRAL_SCHEMA_NAME				"referral"

/* name qualified with the extension's schema, as one string literal. */
#define REFERRAL_QUALIFIED(name)			REFERRAL_SCHEMA_NAME "." name

/* Tables. */
#define REFERRAL_TABLE_NAME					"referral"	/* one row per referee and program */
#define PROGRAM_TABLE_NAME					"program"	/* referral programs and their rules */
#define ATTRIBUTED_ORDER_TABLE_NAME			"attributed_order"	/* orders credited to a referral */
#define MEMBER_TABLE_NAME					"member"	/* the referral chain (tree of customers) */
#define OFFER_USE_TABLE_NAME				"offer_use"	/* referee offers used at checkout (0.3 on) */

/* Indexes. */
#define REFERRAL_REFEREE_HASH_INDEX_NAME	"referral_referee_hash"	/* hash on referral (referee) */
#define REFERRAL_ONE_ACCEPTED_INDEX_NAME	"referral_one_accepted_per_referee"	/* unique btree */
#define ATTRIBUTED_ORDER_PKEY_INDEX_NAME	"attributed_order_pkey"	/* (tenant, order_source, order_ref) */
#define OFFER_USE_LIVE_ORDER_INDEX_NAME		"offer_use_live_order"	/* btree on offer_use (tenant, order_ref) */
#define MEMBER_PKEY_INDEX_NAME				"member_pkey"	/* member's primary key */
#define MEMBER_PATH_INDEX_NAME				"member_path"	/* btree on member (path) */

/* Columns the C code reads by attribute number. */
#define REFERRAL_ID_COLUMN_NAME				"id"	/* referral.id */
#define REFERRAL_PROGRAM_COLUMN_NAME		"program_id"	/* referral.program_id */
#define REFERRAL_CREATED_COLUMN_NAME		"created_at"	/* referral.created_at, the redeem */
#define REFERRAL_STATUS_COLUMN_NAME			"status"	/* referral.status */
#define REFERRAL_TENANT_COLUMN_NAME			"tenant"	/* referral.tenant */
#define REFERRAL_REFEREE_COLUMN_NAME		"referee"	/* referral.referee */
#define LEDGER_TENANT_COLUMN_NAME			"tenant"	/* attributed_order.tenant, offer_use.tenant */
#define LEDGER_ORDER_REF_COLUMN_NAME		"order_ref"	/* attributed_order.order_ref, offer_use.order_ref */
#define LEDGER_ORDER_SOURCE_COLUMN_NAME		"order_source"	/* attributed_order.order_source */
#define OFFER_USE_RESTORED_COLUMN_NAME		"restored_at"	/* offer_use.restored_at */
#define MEMBER_CUSTOMER_COLUMN_NAME			"customer"	/* member.customer */
#define MEMBER_PATH_COLUMN_NAME				"path"	/* member.path */
#define MEMBER_ANCESTORS_COLUMN_NAME		"ancestors"	/* member.ancestors */

/* Functions the order and truncate triggers call or look up. */
#define ORDER_PAID_FUNCTION_NAME			"_order_paid"	/* one paid order */
#define ORDERS_PAID_FUNCTION_NAME			"_orders_paid"	/* paid orders in bulk (0.2 on) */
#define ORDERS_REVERSED_FUNCTION_NAME		"_orders_reversed"	/* deleted or unpaid orders */
#define ORDERS_MOVED_FUNCTION_NAME			"_orders_moved"	/* orders whose id or tenant changed (0.3 on) */
#define ORDER_AMOUNT_CHANGED_FUNCTION_NAME	"_order_amount_changed"	/* an order's amount changed */
#define ORDER_TRIGGER_FUNCTION_NAME			"_order_trigger"	/* the orders tables' trigger */

#endif							/* REFERRAL_NAMES_H */

/*
 * key_set.h
 *		A set of (tenant, key) text pairs compared byte for byte, in a memory
 *		context of its own.  See key_set.c.
 */
#ifndef REFERRAL_KEY_SET_H
#define REFERRAL_KEY_SET_H

#include "postgres.h"

typedef struct KeySet KeySet;

/* An empty set, in a memory context under the current one. */
extern KeySet *key_set_create(void);

/* Adds (tenant, key); tenant may be NULL, a tenant of its own. */
extern void key_set_add(KeySet *set, text *tenant, text *key);

extern bool key_set_contains(KeySet *set, text *tenant, text *key);

extern int64 key_set_count(KeySet *set);

/* The memory the set takes, for a budget. */
extern Size key_set_memory(KeySet *set);

extern void key_set_free(KeySet *set);

#endif							/* REFERRAL_KEY_SET_H */

/*
 * key_set.c
 *		A set of (tenant, key) text pairs in a dynahash table.  A pair is one
 *		byte string, the tenant's length (4 bytes, or ~0 for no tenant), the
 *		tenant's bytes and the key's bytes, so that no pair reads as another.
 *		Bytes compare as text equality does under the deterministic collation
 *		the ledger's columns have.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "key_set.h"

typedef struct KeySetKey
{
	const char *bytes;
	uint32		len;
} KeySetKey;

struct KeySet
{
	MemoryContext context;
	HTAB	   *table;
	StringInfoData probe;		/* the pair of a look-up, reused */
};

static uint32
key_set_hash(const void *key, Size keysize)
{
	const KeySetKey *k = (const KeySetKey *) key;

	return hash_bytes((const unsigned char *) k->bytes, (int) k->len);
}

static int
key_set_match(const void *key1, const void *key2, Size keysize)
{
	const KeySetKey *a = (const KeySetKey *) key1;
	const KeySetKey *b = (const KeySetKey *) key2;

	return (a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0) ? 0 : 1;
}

KeySet *
key_set_create(void)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext, "referral key set",
												  ALLOCSET_DEFAULT_SIZES);
	KeySet	   *set = MemoryContextAllocZero(context, sizeof(KeySet));
	MemoryContext outer = MemoryContextSwitchTo(context);
	HASHCTL		ctl;

	set->context = context;
	initStringInfo(&set->probe);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(KeySetKey);
	ctl.entrysize = sizeof(KeySetKey);
	ctl.hash = key_set_hash;
	ctl.match = key_set_match;
	ctl.hcxt = context;
	set->table = hash_create("referral key set", 256, &ctl,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	MemoryContextSwitchTo(outer);
	return set;
}

/* Builds the byte string of (tenant, key) in set->probe. */
static KeySetKey
key_set_pair(KeySet *set, text *tenant, text *key)
{
	uint32		tenant_len = (tenant != NULL) ? VARSIZE_ANY_EXHDR(tenant) : ~(uint32) 0;
	MemoryContext outer = MemoryContextSwitchTo(set->context);
	KeySetKey	pair;

	resetStringInfo(&set->probe);
	appendBinaryStringInfo(&set->probe, (const char *) &tenant_len, sizeof(tenant_len));
	if (tenant != NULL)
		appendBinaryStringInfo(&set->probe, VARDATA_ANY(tenant), tenant_len);
	appendBinaryStringInfo(&set->probe, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	MemoryContextSwitchTo(outer);
	pair.bytes = set->probe.data;
	pair.len = set->probe.len;
	return pair;
}

void
key_set_add(KeySet *set, text *tenant, text *key)
{
	KeySetKey	pair = key_set_pair(set, tenant, key);
	KeySetKey  *entry;
	bool		found;

	entry = (KeySetKey *) hash_search(set->table, &pair, HASH_ENTER, &found);
	if (!found)
	{
		entry->len = pair.len;
		entry->bytes = memcpy(MemoryContextAlloc(set->context, pair.len), pair.bytes, pair.len);
	}
}

bool
key_set_contains(KeySet *set, text *tenant, text *key)
{
	KeySetKey	pair = key_set_pair(set, tenant, key);

	return hash_search(set->table, &pair, HASH_FIND, NULL) != NULL;
}

int64
key_set_count(KeySet *set)
{
	return (int64) hash_get_num_entries(set->table);
}

Size
key_set_memory(KeySet *set)
{
	return MemoryContextMemAllocated(set->context, true);
}

void
key_set_free(KeySet *set)
{
	MemoryContextDelete(set->context);
}

/*
 * key_set.c
 *		A set of (tenant, key) text pairs, each pair one byte string
 *		(KeyBytes), held as the 32-bit hash of its bytes in an open-addressing
 *		table: about 8 to 16 bytes an entry, so that the attributed orders of
 *		a large table fit in work_mem.  Bytes compare as text equality does
 *		under the deterministic collation the ledger's columns have.  Pairs
 *		with one hash read as one: the set may say it holds a pair it was not
 *		given (for a set of 200,000 pairs, about one look-up in 20,000), never
 *		the reverse, which is all that its users, filters that may keep too
 *		much, need.  KeyBytes also keys tables that need the bytes themselves
 *		(key_bytes_table).
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "key_set.h"

/* An entry of the open-addressing table of hashes (lib/simplehash.h). */
typedef struct KeyHashEntry
{
	uint32		hash;
	char		status;
} KeyHashEntry;

/* The key is a hash already: it serves as the bucket's. */
#define SH_PREFIX		keyhash
#define SH_ELEMENT_TYPE	KeyHashEntry
#define SH_KEY_TYPE		uint32
#define SH_KEY			hash
#define SH_HASH_KEY(tb, key)	(key)
#define SH_EQUAL(tb, a, b)	((a) == (b))
#define SH_SCOPE		static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

struct KeySet
{
	MemoryContext context;
	keyhash_hash *table;
	StringInfoData probe;		/* the pair of a look-up, reused */
};

static uint32
key_bytes_hash(const void *key, Size keysize)
{
	const KeyBytes *k = (const KeyBytes *) key;

	return hash_bytes((const unsigned char *) k->bytes, (int) k->len);
}

static int
key_bytes_match(const void *key1, const void *key2, Size keysize)
{
	const KeyBytes *a = (const KeyBytes *) key1;
	const KeyBytes *b = (const KeyBytes *) key2;

	return (a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0) ? 0 : 1;
}

HTAB *
key_bytes_table(const char *name, Size entrysize, long nelem, MemoryContext context)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(KeyBytes);
	ctl.entrysize = entrysize;
	ctl.hash = key_bytes_hash;
	ctl.match = key_bytes_match;
	ctl.hcxt = context;
	return hash_create(name, nelem, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

void
key_bytes_build(StringInfo buf, text *tenant, text *key)
{
	uint32		tenant_len = (tenant != NULL) ? VARSIZE_ANY_EXHDR(tenant) : ~(uint32) 0;

	resetStringInfo(buf);
	appendBinaryStringInfo(buf, (const char *) &tenant_len, sizeof(tenant_len));
	if (tenant != NULL)
		appendBinaryStringInfo(buf, VARDATA_ANY(tenant), VARSIZE_ANY_EXHDR(tenant));
	appendBinaryStringInfo(buf, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
}

KeySet *
key_set_create(void)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext, "referral key set",
												  ALLOCSET_DEFAULT_SIZES);
	KeySet	   *set = MemoryContextAllocZero(context, sizeof(KeySet));
	MemoryContext outer = MemoryContextSwitchTo(context);

	set->context = context;
	initStringInfo(&set->probe);
	set->table = keyhash_create(context, 256, NULL);
	MemoryContextSwitchTo(outer);
	return set;
}

/* The hash of the bytes of (tenant, key). */
static uint32
key_set_hash_of(KeySet *set, text *tenant, text *key)
{
	MemoryContext outer = MemoryContextSwitchTo(set->context);

	key_bytes_build(&set->probe, tenant, key);
	MemoryContextSwitchTo(outer);
	return hash_bytes((const unsigned char *) set->probe.data, set->probe.len);
}

void
key_set_add(KeySet *set, text *tenant, text *key)
{
	uint32		hash = key_set_hash_of(set, tenant, key);

	bool		found;

	(void) keyhash_insert(set->table, hash, &found);
}

bool
key_set_contains(KeySet *set, text *tenant, text *key)
{
	uint32		hash = key_set_hash_of(set, tenant, key);

	return keyhash_lookup(set->table, hash) != NULL;
}

int64
key_set_count(KeySet *set)
{
	return (int64) set->table->members;
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

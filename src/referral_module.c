/*
 * referral_module.c
 *		The module's magic block, and nothing else (as ip4r does): every
 *		concern lives in its own file.
 */
#include "postgres.h"
#include "fmgr.h"

PG_MODULE_MAGIC;

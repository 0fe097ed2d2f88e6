/*
 * fingerprint.h
 *		Keyed hashes of fingerprints (e-mail, device, IP) and the random
 *		bytes behind the per-database secret, for other C modules.
 */
#ifndef REFERRAL_FINGERPRINT_H
#define REFERRAL_FINGERPRINT_H

/* Include "postgres.h" first, as in every backend file. */

/* Length of the fingerprint key and of a fingerprint (HMAC-SHA256). */
#define REFERRAL_FINGERPRINT_KEY_LEN	32
#define REFERRAL_FINGERPRINT_LEN		32

/*
 * Normalises an e-mail address (see email_core.h); returns a palloc'd,
 * NUL-terminated string, or raises 22023 saying what is wrong (never quoting
 * the address).
 */
extern char *referral_normalize_email(const char *email, size_t len,
									  size_t *outlen);

/*
 * HMAC-SHA256(key, kind || ':' || normalised value) into out, for kind
 * "email", "device", "ip" or "customer" (as given); raises 22023 for a bad key length, kind or
 * value.
 */
extern void referral_fingerprint(const uint8 *key, size_t keylen,
								 const char *kind, const char *value,
								 size_t valuelen,
								 uint8 out[REFERRAL_FINGERPRINT_LEN]);

#endif							/* REFERRAL_FINGERPRINT_H */

/*
 * test_email_core.c
 *		Unit tests of src/email_core.c: e-mail normalisation for
 *		fingerprints.
 */
#include "email_core.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Normalises s; the result must be OK and equal to want. */
static void
expect_ok(const char *s, const char *want, int line)
{
	char		out[256];
	size_t		outlen = 12345;
	email_core_status st;

	st = email_core_normalize(s, strlen(s), out, sizeof(out), &outlen);
	if (!unit_ok(st == EMAIL_CORE_OK && strcmp(out, want) == 0 && outlen == strlen(want)))
	{
		fprintf(stderr, "%s:%d: normalize(\"%s\") = %d \"%s\", want \"%s\"\n",
				__FILE__, line, s, (int) st, st == EMAIL_CORE_OK ? out : "",
				want);
	}
}

/* Normalises s; the result must be the error want. */
static void
expect_err(const char *s, email_core_status want, int line)
{
	char		out[256];
	email_core_status st;

	st = email_core_normalize(s, strlen(s), out, sizeof(out), NULL);
	if (!unit_ok(st == want))
	{
		fprintf(stderr, "%s:%d: normalize(\"%s\") = %d, want %d\n",
				__FILE__, line, s, (int) st, (int) want);
	}
}

#define OK(s, want) expect_ok((s), (want), __LINE__)
#define ERR(s, want) expect_err((s), (want), __LINE__)

static void
test_basic_rules(void)
{
	/* already normal */
	OK("a@b.c", "a@b.c");
	OK("john@example.com", "john@example.com");
	/* trim surrounding whitespace, all ASCII kinds */
	OK("  john@example.com  ", "john@example.com");
	OK("\t\r\n\v\fjohn@example.com\n\t", "john@example.com");
	/* ASCII lower case, local part and domain */
	OK("John.DOE@Example.COM", "john.doe@example.com");
	/* non-ASCII bytes are kept as they are (no Unicode case folding) */
	OK("J\xc3\x89r\xc3\xb4me@Exampl\xc3\x89.com", "j\xc3\x89r\xc3\xb4me@exampl\xc3\x89.com");
	/* +tag dropped from the first '+' */
	OK("john+news@example.com", "john@example.com");
	OK("john+a+b@example.com", "john@example.com");
	OK("john+@example.com", "john@example.com");
	/* a '+' in the domain is not a tag */
	OK("john@ex+ample.com", "john@ex+ample.com");
	/* dots kept outside gmail */
	OK("john.doe@example.com", "john.doe@example.com");
	OK("j.o.h.n@outlook.com", "j.o.h.n@outlook.com");
	OK("john.doe@gmail.com.au", "john.doe@gmail.com.au");
	OK("john.doe@mail.gmail.com", "john.doe@mail.gmail.com");
	OK("john.doe@xgmail.com", "john.doe@xgmail.com");
	/* gmail: dots removed */
	OK("john.doe@gmail.com", "johndoe@gmail.com");
	OK("j.o.h.n.d.o.e@gmail.com", "johndoe@gmail.com");
	OK("John.Doe+x@GMail.com", "johndoe@gmail.com");
	/* dots only removed before the tag goes; dots in the tag go with it */
	OK("john.doe+a.b@gmail.com", "johndoe@gmail.com");
	/* googlemail.com is gmail.com */
	OK("john.doe@googlemail.com", "johndoe@gmail.com");
	OK("John.Doe+promo@GoogleMail.COM", "johndoe@gmail.com");
	/* domain dots are never removed */
	OK("a@g.mail.com", "a@g.mail.com");
}

static void
test_split_at_last_at(void)
{
	/* multiple '@': split at the last one */
	OK("a@b@example.com", "a@b@example.com");
	OK("A.B@C+d@Example.com", "a.b@c@example.com");
	OK("\"x@y\"@gmail.com", "\"x@y\"@gmail.com");
	OK("x.y@z@gmail.com", "xy@z@gmail.com");
	/* the +tag rule applies to the local part only */
	OK("a+b@c@example.com", "a@example.com");
	ERR("a@", EMAIL_CORE_EMPTY_DOMAIN);
	ERR("a@b@", EMAIL_CORE_EMPTY_DOMAIN);
	ERR("@@", EMAIL_CORE_EMPTY_DOMAIN);
}

static void
test_not_an_email(void)
{
	ERR("", EMAIL_CORE_NO_AT);
	ERR("   ", EMAIL_CORE_NO_AT);
	ERR("john", EMAIL_CORE_NO_AT);
	ERR("john.example.com", EMAIL_CORE_NO_AT);
	ERR("@", EMAIL_CORE_EMPTY_DOMAIN);
	ERR(" @ ", EMAIL_CORE_EMPTY_DOMAIN);
	ERR("@example.com", EMAIL_CORE_EMPTY_LOCAL);
	ERR("  @example.com", EMAIL_CORE_EMPTY_LOCAL);
	ERR("john@", EMAIL_CORE_EMPTY_DOMAIN);
	/* empty once the tag is dropped */
	ERR("+tag@example.com", EMAIL_CORE_EMPTY_LOCAL);
	ERR("+@example.com", EMAIL_CORE_EMPTY_LOCAL);
	/* empty once the gmail dots are dropped */
	ERR("...@gmail.com", EMAIL_CORE_EMPTY_LOCAL);
	ERR(".+x@googlemail.com", EMAIL_CORE_EMPTY_LOCAL);
	/* ... but dots are a local part elsewhere */
	OK("...@example.com", "...@example.com");
	/* whitespace or control characters inside */
	ERR("john doe@example.com", EMAIL_CORE_BAD_CHAR);
	ERR("john@exa mple.com", EMAIL_CORE_BAD_CHAR);
	ERR("john\t@example.com", EMAIL_CORE_BAD_CHAR);
	ERR("john\x01@example.com", EMAIL_CORE_BAD_CHAR);
	ERR("john@example.com\x7f", EMAIL_CORE_BAD_CHAR);
	ERR(". x@gmail.com", EMAIL_CORE_BAD_CHAR);
}

static void
test_embedded_nul(void)
{
	/* the length, not a NUL, bounds the input */
	char		in[] = "a\0b@example.com";
	char		out[64];

	CHECK(email_core_normalize(in, sizeof(in) - 1, out, sizeof(out), NULL) ==
		  EMAIL_CORE_BAD_CHAR);
	/* a prefix of a longer string */
	CHECK(email_core_normalize("ab@example.comXYZ", 14, out, sizeof(out), NULL) ==
		  EMAIL_CORE_OK);
	CHECK(strcmp(out, "ab@example.com") == 0);
	CHECK(email_core_normalize("ab@example.com", 2, out, sizeof(out), NULL) ==
		  EMAIL_CORE_NO_AT);
}

/* Every buffer size: exact fit works, one byte less fails, nothing past. */
static void
test_buffer_bounds(void)
{
	const char *inputs[] = {
		"John.Doe+x@GMail.com",
		"  Someone.Else@Example.org ",
		"a@b",
		"x.y@googlemail.com",
	};
	size_t		k;

	for (k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++)
	{
		const char *in = inputs[k];
		char		full[128];
		size_t		fulllen;
		size_t		size;

		CHECK(email_core_normalize(in, strlen(in), full, sizeof(full), &fulllen) ==
			  EMAIL_CORE_OK);
		CHECK(fulllen <= strlen(in));
		for (size = 0; size <= fulllen + 2; size++)
		{
			char		guard[140];
			size_t		outlen = 0;
			email_core_status st;
			size_t		i;

			memset(guard, 'Z', sizeof(guard));
			st = email_core_normalize(in, strlen(in), guard, size, &outlen);
			if (size >= fulllen + 1)
			{
				CHECK(st == EMAIL_CORE_OK);
				CHECK(outlen == fulllen);
				CHECK(memcmp(guard, full, fulllen + 1) == 0);
			}
			else
			{
				CHECK(st == EMAIL_CORE_BUFFER_TOO_SMALL);
				if (size > 0)
					CHECK(memchr(guard, '\0', size) != NULL);
			}
			for (i = size; i < sizeof(guard); i++)
				CHECK(guard[i] == 'Z');
		}
	}
}

/* A huge input: bounded by the buffer, result never longer than input. */
static void
test_huge(void)
{
	size_t		n = 1000000;
	char	   *in = malloc(n + 32);
	char	   *out = malloc(n + 32);
	char		small[16];
	size_t		outlen;
	size_t		i;

	CHECK(in != NULL && out != NULL);
	if (!in || !out)
		return;
	for (i = 0; i < n; i++)
		in[i] = (i % 2) ? '.' : 'A';
	memcpy(in + n, "@GoogleMail.com", 15);

	CHECK(email_core_normalize(in, n + 15, out, n + 32, &outlen) == EMAIL_CORE_OK);
	CHECK(outlen == n / 2 + strlen("@gmail.com"));
	CHECK(out[0] == 'a' && out[n / 2 - 1] == 'a' && out[n / 2] == '@');
	CHECK(strcmp(out + n / 2, "@gmail.com") == 0);

	memset(small, 'Z', sizeof(small));
	CHECK(email_core_normalize(in, n + 15, small, 8, NULL) ==
		  EMAIL_CORE_BUFFER_TOO_SMALL);
	CHECK(strcmp(small, "aaaaaaa") == 0);
	for (i = 8; i < sizeof(small); i++)
		CHECK(small[i] == 'Z');

	/* a huge run of '@': last one splits, empty domain */
	memset(in, '@', n);
	CHECK(email_core_normalize(in, n, out, n + 32, NULL) == EMAIL_CORE_EMPTY_DOMAIN);
	in[n] = 'x';
	CHECK(email_core_normalize(in, n + 1, out, n + 32, &outlen) == EMAIL_CORE_OK);
	CHECK(outlen == n + 1);

	free(in);
	free(out);
}

/* Normalising twice gives what normalising once gave. */
static void
test_idempotent(void)
{
	const char *inputs[] = {
		"John.Doe+x@GMail.com", " A.b.C+d@GoogleMail.Com ",
		"x@y@z.com", "q.r+s@Example.com", "\xc3\x89@b",
	};
	size_t		k;

	for (k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++)
	{
		char		once[64];
		char		twice[64];
		size_t		l1;
		size_t		l2;

		CHECK(email_core_normalize(inputs[k], strlen(inputs[k]), once,
								   sizeof(once), &l1) == EMAIL_CORE_OK);
		CHECK(email_core_normalize(once, l1, twice, sizeof(twice), &l2) ==
			  EMAIL_CORE_OK);
		CHECK(l1 == l2 && strcmp(once, twice) == 0);
	}
}

int
main(void)
{
	test_basic_rules();
	test_split_at_last_at();
	test_not_an_email();
	test_embedded_nul();
	test_buffer_bounds();
	test_huge();
	test_idempotent();
	return unit_summary("test_email_core");
}

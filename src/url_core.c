/*
 * url_core.c
 *		Share links (pure C, no postgres.h): a base URL with ref=CODE and
 *		UTM parameters set in its query (replacing values it already has),
 *		values percent-encoded per RFC 3986, other parameters and the
 *		fragment kept.
 */
#include "url_core.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* An output buffer that never writes past its end, only counts. */
typedef struct url_core_buf
{
	char	   *data;
	size_t		size;
	size_t		len;			/* bytes wanted so far (may exceed size) */
	char		last;			/* the last byte put, '\0' before the first */
} url_core_buf;

/* Appends n bytes, as far as they fit. */
static void
url_core_put(url_core_buf *b, const char *s, size_t n)
{
	if (b->len < b->size)
	{
		size_t		room = b->size - b->len;

		memcpy(b->data + b->len, s, n < room ? n : room);
	}
	if (n > 0)
		b->last = s[n - 1];
	b->len += n;
}

/* Appends a NUL-terminated string. */
static void
url_core_puts(url_core_buf *b, const char *s)
{
	url_core_put(b, s, strlen(s));
}

/* RFC 3986 section 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~". */
static bool
url_core_is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
		c == '~';
}

/* ASCII case-insensitive prefix test. */
static bool
url_core_has_prefix_ci(const char *s, size_t len, const char *prefix)
{
	size_t		plen = strlen(prefix);
	size_t		i;

	if (len < plen)
		return false;
	for (i = 0; i < plen; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char) (c + ('a' - 'A'));
		if (c != (unsigned char) prefix[i])
			return false;
	}
	return true;
}

/* Checks a base URL; see url_core.h. */
url_core_status
url_core_check_base(const char *base, size_t len, size_t *badpos)
{
	size_t		i;
	size_t		host;

	if (len == 0)
		return URL_CORE_EMPTY_BASE;
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) base[i];

		if (c <= 0x20 || c == 0x7f)
		{
			if (badpos)
				*badpos = i;
			return URL_CORE_BAD_CHAR;
		}
	}
	if (url_core_has_prefix_ci(base, len, "http://"))
		host = strlen("http://");
	else if (url_core_has_prefix_ci(base, len, "https://"))
		host = strlen("https://");
	else
		return URL_CORE_BAD_SCHEME;
	if (host == len || base[host] == '/' || base[host] == '?' ||
		base[host] == '#')
		return URL_CORE_NO_HOST;
	return URL_CORE_OK;
}

/* Percent-encodes into a url_core_buf. */
static void
url_core_encode_buf(url_core_buf *b, const char *in, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		i;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) in[i];

		if (url_core_is_unreserved(c))
			url_core_put(b, (const char *) &c, 1);
		else
		{
			char		esc[3];

			esc[0] = '%';
			esc[1] = hex[c >> 4];
			esc[2] = hex[c & 0x0f];
			url_core_put(b, esc, 3);
		}
	}
}

/* Percent-encodes; see url_core.h. */
size_t
url_core_encode(const char *in, size_t len, char *out, size_t outsize)
{
	url_core_buf b;

	b.data = out;
	b.size = outsize;
	b.len = 0;
	b.last = '\0';
	url_core_encode_buf(&b, in, len);
	return b.len;
}

/* a + b, or SIZE_MAX on overflow (SIZE_MAX stays SIZE_MAX). */
static size_t
url_core_add(size_t a, size_t b)
{
	return (a > SIZE_MAX - b) ? SIZE_MAX : a + b;
}

/* 3 * a, or SIZE_MAX on overflow. */
static size_t
url_core_times3(size_t a)
{
	return (a > SIZE_MAX / 3) ? SIZE_MAX : 3 * a;
}

/* Upper bound of the share link's size; see url_core.h. */
size_t
url_core_share_link_size(size_t base_len, size_t code_len,
						 const char *channel, size_t channel_len)
{
	size_t		n;

	/* base, '?' or '&', "ref=", encoded code, NUL */
	n = url_core_add(base_len, 1 + strlen("ref=") + 1);
	n = url_core_add(n, url_core_times3(code_len));
	if (channel)
	{
		n = url_core_add(n, strlen("&utm_source=") +
						 strlen("&utm_medium=referral"));
		n = url_core_add(n, url_core_times3(channel_len));
	}
	return n == SIZE_MAX ? 0 : n;
}

/* The parameters a share link sets, in the order they are added. */
typedef enum url_core_param
{
	URL_CORE_PARAM_REF,
	URL_CORE_PARAM_UTM_SOURCE,
	URL_CORE_PARAM_UTM_MEDIUM,
	URL_CORE_NPARAMS,
	URL_CORE_PARAM_OTHER = URL_CORE_NPARAMS
} url_core_param;

static const char *const url_core_param_names[URL_CORE_NPARAMS] = {
	"ref", "utm_source", "utm_medium"
};

/* The value a share link gives one of its parameters. */
typedef struct url_core_value
{
	const char *data;
	size_t		len;
	bool		encode;			/* percent-encode it (user input) */
} url_core_value;

/*
 * Which parameter the query segment seg[0..len) sets: its name is what comes
 * before the first '=' (all of it without one), compared byte for byte, as
 * names in a query are case-sensitive.  The UTM parameters only count when
 * the link has a channel.
 */
static url_core_param
url_core_param_of(const char *seg, size_t len, bool with_channel)
{
	const char *eq = memchr(seg, '=', len);
	size_t		name_len = eq ? (size_t) (eq - seg) : len;
	int			p;

	for (p = 0; p < (with_channel ? URL_CORE_NPARAMS : URL_CORE_PARAM_REF + 1); p++)
		if (name_len == strlen(url_core_param_names[p]) &&
			memcmp(seg, url_core_param_names[p], name_len) == 0)
			return (url_core_param) p;
	return URL_CORE_PARAM_OTHER;
}

/* Puts "name=value". */
static void
url_core_put_param(url_core_buf *b, url_core_param p, const url_core_value *v)
{
	url_core_puts(b, url_core_param_names[p]);
	url_core_puts(b, "=");
	if (v->encode)
		url_core_encode_buf(b, v->data, v->len);
	else
		url_core_put(b, v->data, v->len);
}

/* Builds a share link; see url_core.h. */
url_core_status
url_core_share_link(const char *base, size_t base_len,
					const char *code, size_t code_len,
					const char *channel, size_t channel_len,
					char *out, size_t outsize, size_t *outlen,
					size_t *badpos)
{
	url_core_status status;
	url_core_buf b;
	url_core_value values[URL_CORE_NPARAMS];
	bool		set[URL_CORE_NPARAMS] = {false, false, false};
	int			nparams = channel ? URL_CORE_NPARAMS : URL_CORE_PARAM_REF + 1;
	const char *hash;
	const char *qmark;
	size_t		head_len;
	size_t		query_start;	/* where the query starts in out */
	int			p;

	status = url_core_check_base(base, base_len, badpos);
	if (status != URL_CORE_OK)
		return status;
	if (code_len == 0)
		return URL_CORE_EMPTY_CODE;
	if (channel && channel_len == 0)
		return URL_CORE_EMPTY_CHANNEL;

	values[URL_CORE_PARAM_REF] = (url_core_value) {code, code_len, true};
	values[URL_CORE_PARAM_UTM_SOURCE] = (url_core_value) {channel, channel_len, true};
	values[URL_CORE_PARAM_UTM_MEDIUM] = (url_core_value) {"referral", strlen("referral"), false};

	/* The fragment starts at the first '#'; the query at the first '?'. */
	hash = memchr(base, '#', base_len);
	head_len = hash ? (size_t) (hash - base) : base_len;
	qmark = memchr(base, '?', head_len);

	b.data = out;
	b.size = outsize;
	b.len = 0;
	b.last = '\0';
	if (qmark == NULL)
	{
		url_core_put(&b, base, head_len);
		url_core_puts(&b, "?");
		query_start = b.len;
	}
	else
	{
		const char *seg = qmark + 1;
		const char *end = base + head_len;

		url_core_put(&b, base, (size_t) (seg - base));
		query_start = b.len;

		/*
		 * Copy the query segment by segment.  A parameter the link sets gets
		 * its new value where it stands; a repetition of it is dropped, so
		 * that the link names each of them once.
		 */
		for (;;)
		{
			const char *amp = memchr(seg, '&', (size_t) (end - seg));
			const char *seg_end = amp ? amp : end;
			url_core_param which = url_core_param_of(seg, (size_t) (seg_end - seg),
													 channel != NULL);

			if (which == URL_CORE_PARAM_OTHER || !set[which])
			{
				if (seg != qmark + 1)
					url_core_puts(&b, "&");
				if (which == URL_CORE_PARAM_OTHER)
					url_core_put(&b, seg, (size_t) (seg_end - seg));
				else
				{
					url_core_put_param(&b, which, &values[which]);
					set[which] = true;
				}
			}
			if (amp == NULL)
				break;
			seg = amp + 1;
		}
	}

	/* The parameters the query did not have yet go at its end. */
	for (p = 0; p < nparams; p++)
	{
		if (set[p])
			continue;
		if (b.len > query_start && b.last != '&')
			url_core_puts(&b, "&");
		url_core_put_param(&b, (url_core_param) p, &values[p]);
	}
	if (hash)
		url_core_put(&b, hash, base_len - head_len);

	if (b.len >= outsize)
	{
		if (outsize > 0)
			out[outsize - 1] = '\0';
		return URL_CORE_BUFFER_TOO_SMALL;
	}
	out[b.len] = '\0';
	if (outlen)
		*outlen = b.len;
	return URL_CORE_OK;
}

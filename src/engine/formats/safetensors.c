/*
 * safetensors.c — hostile-input reader of the safetensors format.
 *
 * A file is an 8-byte little-endian header length N, N bytes of a UTF-8
 * JSON object describing the tensors, then the data section.  Everything a
 * file declares is checked before any tensor is exposed:
 *
 *  - the header length against the limit and the file size;
 *  - the header as strict JSON: valid UTF-8, no duplicate keys, no trailing
 *    characters except JSON whitespace (writers pad the header with spaces
 *    to an 8-byte boundary), integers only where integers are expected and
 *    never above 2^53;
 *  - each tensor entry: exactly "dtype", "shape" and "data_offsets", a dtype
 *    from the allow-list, rank <= FB_ST_MAX_DIMS, an element count and byte
 *    size computed with overflow checks, offsets inside the data section
 *    whose difference equals the byte size;
 *  - all tensors together: sorted by offset they tile the data section
 *    exactly, with no overlap, no hole and no trailing byte.
 *
 * The acceptance rule is that of the reference implementation (Rust crate
 * safetensors, Metadata::validate and SafeTensors::read_metadata, used by
 * the Python package 0.8), made stricter where the reference is lax:
 * duplicate tensor names (the reference keeps the last), unknown keys in a
 * tensor entry (ignored by the reference), empty names, names with a NUL
 * character, duplicate "__metadata__" keys, rank above FB_ST_MAX_DIMS and
 * integers above 2^53 are rejected here.  As in the reference, a null
 * "__metadata__" is accepted and leading whitespace before the object too.
 *
 * The JSON parser is not a general one: it knows the three levels of the
 * format (top-level object, tensor entry or metadata object, shape and
 * offset arrays), so nesting is bounded by construction and there is no
 * recursion.
 *
 * The header may live in a shared file mapping that another process can
 * modify while we read it, so the parser never relies on an earlier pass
 * (such as the UTF-8 check) for memory safety: every byte access is bounds
 * checked on its own, and nothing points into the header once parsing is
 * done (names are copied).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_safetensors.h"
#include "fb_source.h"

/* Largest integer accepted in the header: every JSON implementation
 * represents integers up to 2^53 exactly, and no real file comes close. */
#define ST_MAX_JSON_INT		((uint64_t) 1 << 53)

/* Bytes of a name or dtype quoted in an error message. */
#define ST_QUOTE_BYTES		64
#define ST_QUOTE_BUF		(ST_QUOTE_BYTES * 4 + 8)

/* Bytes of the length prefix. */
#define ST_PREFIX_BYTES		8

static const struct
{
	const char *name;
	fb_dtype	dt;
	size_t		size;
}			st_dtypes[] =
{
	{"F32", FB_DT_F32, 4},
	{"F16", FB_DT_F16, 2},
	{"BF16", FB_DT_BF16, 2},
	{"F64", FB_DT_F64, 8},
	{"I64", FB_DT_I64, 8},
	{"I32", FB_DT_I32, 4},
	{"I16", FB_DT_I16, 2},
	{"I8", FB_DT_I8, 1},
	{"U8", FB_DT_U8, 1},
	{"BOOL", FB_DT_BOOL, 1},
};

#define ST_N_DTYPES (sizeof(st_dtypes) / sizeof(st_dtypes[0]))

size_t
fb_dtype_size(fb_dtype dt)
{
	for (size_t i = 0; i < ST_N_DTYPES; i++)
		if (st_dtypes[i].dt == dt)
			return st_dtypes[i].size;
	return 0;
}

const char *
fb_dtype_name(fb_dtype dt)
{
	for (size_t i = 0; i < ST_N_DTYPES; i++)
		if (st_dtypes[i].dt == dt)
			return st_dtypes[i].name;
	return "unknown";
}

/* ------------------------------------------------------------------------
 * Parser state
 * ------------------------------------------------------------------------
 */

/* Which fields of a tensor entry have been seen. */
#define ST_F_DTYPE		0x1
#define ST_F_SHAPE		0x2
#define ST_F_OFFSETS	0x4

typedef struct st_entry
{
	fb_st_tensor t;				/* name owned until moved to the result */
	uint64_t	begin;			/* data_offsets, relative to the data section */
	uint64_t	end;
} st_entry;

typedef struct st_parser
{
	const char *file;			/* for messages */
	fb_error   *err;
	const uint8_t *p;			/* header bytes (may change under us) */
	size_t		len;
	size_t		pos;

	/* last decoded string */
	char	   *s;
	size_t		s_len;
	size_t		s_cap;
	bool		s_has_nul;

	/* tensor entries in file order */
	st_entry   *ents;
	size_t		n_ents;
	size_t		cap_ents;
	bool		seen_metadata;

	/* first tensor with a dtype outside the allow-list, for the message */
	bool		unsupported;
	char		unsup_tensor[ST_QUOTE_BUF];
	char		unsup_dtype[ST_QUOTE_BUF];
} st_parser;

/* A metadata key: decoded bytes, may contain NUL. */
typedef struct st_key
{
	char	   *s;
	size_t		len;
} st_key;

/*
 * Every message is "\"<file>\": <problem>", one line.
 */
static fb_status
st_fail(const char *file, fb_error *err, fb_status status, const char *fmt,...)
FB_PRINTF(4, 5);

static fb_status
st_fail(const char *file, fb_error *err, fb_status status, const char *fmt,...)
{
	char		buf[FB_ERRMSG_MAX];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return fb_fail(err, status, "\"%s\": %s", file, buf);
}

/* Syntax errors carry the byte offset inside the header. */
static fb_status
st_syntax(st_parser *ps, const char *what)
{
	return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
				   "invalid JSON in header at byte %zu: %s", ps->pos, what);
}

/*
 * Length of the well-formed UTF-8 sequence at s (1 to 4), 0 when the bytes
 * there are not one: overlong forms, surrogates and code points above
 * U+10FFFF are refused, as by Rust's str::from_utf8.
 */
static size_t
st_utf8_char(const uint8_t *s, size_t avail)
{
	uint8_t		c = s[0];
	uint8_t		lo = 0x80,
				hi = 0xBF;
	size_t		n;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 1;
	else if (c == 0xE0)
	{
		n = 2;
		lo = 0xA0;
	}
	else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
		n = 2;
	else if (c == 0xED)
	{
		n = 2;
		hi = 0x9F;
	}
	else if (c == 0xF0)
	{
		n = 3;
		lo = 0x90;
	}
	else if (c >= 0xF1 && c <= 0xF3)
		n = 3;
	else if (c == 0xF4)
	{
		n = 3;
		hi = 0x8F;
	}
	else
		return 0;
	if (avail - 1 < n)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k <= n; k++)
		if ((s[k] & 0xC0) != 0x80)
			return 0;
	return n + 1;
}

/*
 * Quotes a decoded string for a message: at most ST_QUOTE_BYTES bytes,
 * cut at a character boundary, control characters and bytes that are not
 * UTF-8 escaped so the message stays one valid line.
 */
static const char *
st_quote(const char *str, size_t len, char *out)
{
	const uint8_t *s = (const uint8_t *) str;
	size_t		i = 0,
				o = 0;

	while (i < len && i < ST_QUOTE_BYTES)
	{
		size_t		n = st_utf8_char(s + i, len - i);

		if (n == 1 && s[i] >= 0x20 && s[i] != 0x7F)
		{
			if (s[i] == '"' || s[i] == '\\')
				out[o++] = '\\';
			out[o++] = (char) s[i];
		}
		else if (n > 1)
		{
			memcpy(out + o, s + i, n);
			o += n;
		}
		else
		{
			snprintf(out + o, 5, "\\x%02X", s[i]);
			o += 4;
			n = 1;
		}
		i += n;
	}
	if (i < len)
	{
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* ------------------------------------------------------------------------
 * JSON lexing
 * ------------------------------------------------------------------------
 */

static bool
st_is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void
st_skip_ws(st_parser *ps)
{
	while (ps->pos < ps->len && st_is_ws(ps->p[ps->pos]))
		ps->pos++;
}

/* The next byte after whitespace, or -1 at the end of the header. */
static int
st_peek(st_parser *ps)
{
	st_skip_ws(ps);
	if (ps->pos >= ps->len)
		return -1;
	return ps->p[ps->pos];
}

static fb_status
st_expect(st_parser *ps, char c, const char *what)
{
	if (st_peek(ps) != (unsigned char) c)
		return st_syntax(ps, what);
	ps->pos++;
	return FB_OK;
}

static fb_status
st_append(st_parser *ps, const char *bytes, size_t n)
{
	if (ps->s_len + n + 1 > ps->s_cap)
	{
		size_t		cap = ps->s_cap ? ps->s_cap : 256;
		char	   *s;

		/* bounded by the header size, itself bounded by the file size */
		while (cap < ps->s_len + n + 1)
			if (!fb_mul_size(cap, 2, &cap))
				return st_fail(ps->file, ps->err, FB_ERR_NOMEM,
							   "string in header too long");
		s = realloc(ps->s, cap);
		if (s == NULL)
			return st_fail(ps->file, ps->err, FB_ERR_NOMEM,
						   "out of memory parsing header");
		ps->s = s;
		ps->s_cap = cap;
	}
	memcpy(ps->s + ps->s_len, bytes, n);
	ps->s_len += n;
	ps->s[ps->s_len] = '\0';
	return FB_OK;
}

/* Four hex digits of a \u escape. */
static fb_status
st_hex4(st_parser *ps, uint32_t *out)
{
	uint32_t	v = 0;

	if (ps->len - ps->pos < 4)
		return st_syntax(ps, "truncated \\u escape");
	for (int i = 0; i < 4; i++)
	{
		uint8_t		c = ps->p[ps->pos + i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t) (c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t) (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t) (c - 'A' + 10);
		else
			return st_syntax(ps, "invalid hex digit in \\u escape");
	}
	ps->pos += 4;
	*out = v;
	return FB_OK;
}

/* Decodes \uXXXX (and its low surrogate, if any) into UTF-8. */
static fb_status
st_unicode_escape(st_parser *ps)
{
	uint32_t	cp,
				lo;
	char		u[4];
	size_t		n;
	fb_status	st;

	if ((st = st_hex4(ps, &cp)) != FB_OK)
		return st;
	if (cp >= 0xDC00 && cp <= 0xDFFF)
		return st_syntax(ps, "unpaired low surrogate in \\u escape");
	if (cp >= 0xD800 && cp <= 0xDBFF)
	{
		if (ps->len - ps->pos < 2 || ps->p[ps->pos] != '\\' ||
			ps->p[ps->pos + 1] != 'u')
			return st_syntax(ps, "unpaired high surrogate in \\u escape");
		ps->pos += 2;
		if ((st = st_hex4(ps, &lo)) != FB_OK)
			return st;
		if (lo < 0xDC00 || lo > 0xDFFF)
			return st_syntax(ps, "unpaired high surrogate in \\u escape");
		cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
	}
	if (cp == 0)
		ps->s_has_nul = true;
	if (cp < 0x80)
	{
		u[0] = (char) cp;
		n = 1;
	}
	else if (cp < 0x800)
	{
		u[0] = (char) (0xC0 | (cp >> 6));
		u[1] = (char) (0x80 | (cp & 0x3F));
		n = 2;
	}
	else if (cp < 0x10000)
	{
		u[0] = (char) (0xE0 | (cp >> 12));
		u[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char) (0x80 | (cp & 0x3F));
		n = 3;
	}
	else
	{
		u[0] = (char) (0xF0 | (cp >> 18));
		u[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char) (0x80 | (cp & 0x3F));
		n = 4;
	}
	return st_append(ps, u, n);
}

/*
 * Parses a JSON string at the current position (after whitespace) into
 * ps->s / ps->s_len.  what names the expected value for the message when
 * there is no string here.
 */
static fb_status
st_string(st_parser *ps, const char *what)
{
	fb_status	st;

	if (st_peek(ps) != '"')
		return st_syntax(ps, what);
	ps->pos++;
	ps->s_len = 0;
	ps->s_has_nul = false;
	if ((st = st_append(ps, "", 0)) != FB_OK)
		return st;
	for (;;)
	{
		size_t		start = ps->pos;
		char		c;

		/* copy a run of plain bytes at once */
		while (ps->pos < ps->len && ps->p[ps->pos] != '"' &&
			   ps->p[ps->pos] != '\\' && ps->p[ps->pos] >= 0x20)
			ps->pos++;
		if (ps->pos > start &&
			(st = st_append(ps, (const char *) ps->p + start,
							ps->pos - start)) != FB_OK)
			return st;
		if (ps->pos >= ps->len)
			return st_syntax(ps, "unterminated string");
		c = (char) ps->p[ps->pos];
		if (c == '"')
		{
			ps->pos++;
			return FB_OK;
		}
		if (c != '\\')
			return st_syntax(ps, "control character in string");
		ps->pos++;
		if (ps->pos >= ps->len)
			return st_syntax(ps, "unterminated string");
		c = (char) ps->p[ps->pos++];
		switch (c)
		{
			case '"':
			case '\\':
			case '/':
				st = st_append(ps, &c, 1);
				break;
			case 'b':
				st = st_append(ps, "\b", 1);
				break;
			case 'f':
				st = st_append(ps, "\f", 1);
				break;
			case 'n':
				st = st_append(ps, "\n", 1);
				break;
			case 'r':
				st = st_append(ps, "\r", 1);
				break;
			case 't':
				st = st_append(ps, "\t", 1);
				break;
			case 'u':
				st = st_unicode_escape(ps);
				break;
			default:
				ps->pos--;
				return st_syntax(ps, "invalid escape in string");
		}
		if (st != FB_OK)
			return st;
	}
}

/* Is the last decoded string equal to the NUL-terminated word? */
static bool
st_string_is(const st_parser *ps, const char *word)
{
	return ps->s_len == strlen(word) && memcmp(ps->s, word, ps->s_len) == 0;
}

/*
 * A non-negative integer no larger than 2^53.  The JSON grammar's other
 * numbers (negative, fraction, exponent) are refused with a message saying
 * what was expected; ctx names the value ("tensor \"x\": shape").
 */
static fb_status
st_uint(st_parser *ps, const char *ctx, uint64_t *out)
{
	uint64_t	v = 0;
	size_t		start;
	int			c = st_peek(ps);

	if (c == '-')
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: negative number at header byte %zu, expected a non-negative integer",
					   ctx, ps->pos);
	if (c < '0' || c > '9')
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: expected a non-negative integer at header byte %zu",
					   ctx, ps->pos);
	start = ps->pos;
	while (ps->pos < ps->len && ps->p[ps->pos] >= '0' && ps->p[ps->pos] <= '9')
	{
		if (ps->pos > start && ps->p[start] == '0')
			return st_syntax(ps, "number with a leading zero");
		v = v * 10 + (uint64_t) (ps->p[ps->pos] - '0');
		/* checked before the next step, so v * 10 + 9 cannot wrap */
		if (v > ST_MAX_JSON_INT)
			return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
						   "%s: integer at header byte %zu is larger than 2^53",
						   ctx, start);
		ps->pos++;
	}
	if (ps->pos < ps->len &&
		(ps->p[ps->pos] == '.' || ps->p[ps->pos] == 'e' || ps->p[ps->pos] == 'E'))
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: number at header byte %zu is not an integer",
					   ctx, start);
	*out = v;
	return FB_OK;
}

/* ------------------------------------------------------------------------
 * Header structure
 * ------------------------------------------------------------------------
 */

static fb_status
st_dtype(st_parser *ps, st_entry *e, const char *ctx)
{
	fb_status	st;

	if (st_peek(ps) != '"')
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: dtype is not a string (header byte %zu)",
					   ctx, ps->pos);
	if ((st = st_string(ps, "expected a string")) != FB_OK)
		return st;
	for (size_t i = 0; i < ST_N_DTYPES; i++)
	{
		if (st_string_is(ps, st_dtypes[i].name))
		{
			e->t.dtype = st_dtypes[i].dt;
			return FB_OK;
		}
	}

	/*
	 * Reported once the whole header is known to be well-formed, so that a
	 * corrupt file is not called merely unsupported.
	 */
	if (!ps->unsupported)
	{
		ps->unsupported = true;
		st_quote(e->t.name, strlen(e->t.name), ps->unsup_tensor);
		st_quote(ps->s, ps->s_len, ps->unsup_dtype);
	}
	e->t.dtype = (fb_dtype) -1;
	return FB_OK;
}

static fb_status
st_shape(st_parser *ps, st_entry *e, const char *ctx)
{
	fb_status	st;
	int			c;

	if (st_peek(ps) != '[')
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: shape is not an array (header byte %zu)",
					   ctx, ps->pos);
	ps->pos++;
	e->t.ndim = 0;
	if (st_peek(ps) == ']')
	{
		ps->pos++;
		return FB_OK;			/* a scalar */
	}
	for (;;)
	{
		uint64_t	d;

		if (e->t.ndim >= FB_ST_MAX_DIMS)
			return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
						   "%s: shape has more than %d dimensions",
						   ctx, FB_ST_MAX_DIMS);
		if ((st = st_uint(ps, ctx, &d)) != FB_OK)
			return st;
		e->t.shape[e->t.ndim++] = (int64_t) d;
		c = st_peek(ps);
		if (c == ']')
		{
			ps->pos++;
			return FB_OK;
		}
		if (c != ',')
			return st_syntax(ps, "expected ',' or ']' in shape");
		ps->pos++;
	}
}

static fb_status
st_offsets(st_parser *ps, st_entry *e, const char *ctx)
{
	fb_status	st;

	if (st_peek(ps) != '[')
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: data_offsets is not an array (header byte %zu)",
					   ctx, ps->pos);
	ps->pos++;
	if ((st = st_uint(ps, ctx, &e->begin)) != FB_OK)
		return st;
	if (st_peek(ps) != ',')
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: data_offsets must hold exactly two integers (header byte %zu)",
					   ctx, ps->pos);
	ps->pos++;
	if ((st = st_uint(ps, ctx, &e->end)) != FB_OK)
		return st;
	if (st_peek(ps) != ']')
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: data_offsets must hold exactly two integers (header byte %zu)",
					   ctx, ps->pos);
	ps->pos++;
	return FB_OK;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]}, nothing else. */
static fb_status
st_tensor_entry(st_parser *ps, st_entry *e)
{
	char		q[ST_QUOTE_BUF];
	char		ctx[ST_QUOTE_BUF + 16];
	unsigned	seen = 0;
	fb_status	st;

	snprintf(ctx, sizeof(ctx), "tensor \"%s\"",
			 st_quote(e->t.name, strlen(e->t.name), q));
	if (st_peek(ps) != '{')
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: entry is not a JSON object (header byte %zu)",
					   ctx, ps->pos);
	ps->pos++;
	if (st_peek(ps) != '}')
	{
		for (;;)
		{
			unsigned	field;
			int			c;

			if ((st = st_string(ps, "expected a key string")) != FB_OK)
				return st;
			if (st_string_is(ps, "dtype"))
				field = ST_F_DTYPE;
			else if (st_string_is(ps, "shape"))
				field = ST_F_SHAPE;
			else if (st_string_is(ps, "data_offsets"))
				field = ST_F_OFFSETS;
			else
				return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
							   "%s: unknown key \"%s\"", ctx,
							   st_quote(ps->s, ps->s_len, q));
			if (seen & field)
				return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
							   "%s: duplicate key \"%s\"", ctx,
							   st_quote(ps->s, ps->s_len, q));
			seen |= field;
			if ((st = st_expect(ps, ':', "expected ':' after key")) != FB_OK)
				return st;
			if (field == ST_F_DTYPE)
				st = st_dtype(ps, e, ctx);
			else if (field == ST_F_SHAPE)
				st = st_shape(ps, e, ctx);
			else
				st = st_offsets(ps, e, ctx);
			if (st != FB_OK)
				return st;
			c = st_peek(ps);
			if (c == '}')
				break;
			if (c != ',')
				return st_syntax(ps, "expected ',' or '}' in tensor entry");
			ps->pos++;
		}
	}
	ps->pos++;					/* the '}' */
	if (!(seen & ST_F_DTYPE))
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: missing \"dtype\"", ctx);
	if (!(seen & ST_F_SHAPE))
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: missing \"shape\"", ctx);
	if (!(seen & ST_F_OFFSETS))
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%s: missing \"data_offsets\"", ctx);
	return FB_OK;
}

static int
st_key_cmp(const void *a, const void *b)
{
	const st_key *x = a;
	const st_key *y = b;
	size_t		n = x->len < y->len ? x->len : y->len;
	int			c = memcmp(x->s, y->s, n);

	if (c != 0)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

/* Sorts the metadata keys and refuses a duplicate. */
static fb_status
st_metadata_dups(st_parser *ps, st_key *keys, size_t n)
{
	char		q[ST_QUOTE_BUF];

	if (n < 2)
		return FB_OK;
	qsort(keys, n, sizeof(st_key), st_key_cmp);
	for (size_t i = 1; i < n; i++)
		if (st_key_cmp(&keys[i - 1], &keys[i]) == 0)
			return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
						   "duplicate key \"%s\" in \"__metadata__\"",
						   st_quote(keys[i].s, keys[i].len, q));
	return FB_OK;
}

/* A growable list of metadata keys. */
typedef struct st_keys
{
	st_key	   *k;
	size_t		n;
	size_t		cap;
} st_keys;

/* Copies the last decoded string into the key list. */
static fb_status
st_keys_add(st_parser *ps, st_keys *keys)
{
	st_key	   *k;

	if (keys->n >= FB_ST_MAX_METADATA_ENTRIES)
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "\"__metadata__\" has more than %d entries",
					   FB_ST_MAX_METADATA_ENTRIES);
	if (keys->n == keys->cap)
	{
		/* bounded by FB_ST_MAX_METADATA_ENTRIES, so this cannot wrap */
		size_t		cap = keys->cap ? keys->cap * 2 : 16;
		st_key	   *nk = realloc(keys->k, cap * sizeof(st_key));

		if (nk == NULL)
			return st_fail(ps->file, ps->err, FB_ERR_NOMEM,
						   "out of memory parsing header");
		keys->k = nk;
		keys->cap = cap;
	}
	k = &keys->k[keys->n];
	k->s = malloc(ps->s_len + 1);
	if (k->s == NULL)
		return st_fail(ps->file, ps->err, FB_ERR_NOMEM,
					   "out of memory parsing header");
	memcpy(k->s, ps->s, ps->s_len + 1);
	k->len = ps->s_len;
	keys->n++;
	return FB_OK;
}

/* The body of a "__metadata__" object: string keys to string values. */
static fb_status
st_metadata_body(st_parser *ps, st_keys *keys)
{
	fb_status	st;

	if (st_peek(ps) == '}')
	{
		ps->pos++;
		return FB_OK;
	}
	for (;;)
	{
		char		q[ST_QUOTE_BUF];
		int			c;

		if ((st = st_string(ps, "expected a key string")) != FB_OK)
			return st;
		if ((st = st_keys_add(ps, keys)) != FB_OK)
			return st;
		if ((st = st_expect(ps, ':', "expected ':' after key")) != FB_OK)
			return st;
		if (st_peek(ps) != '"')
			return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
						   "\"__metadata__\" value of \"%s\" is not a string (header byte %zu)",
						   st_quote(keys->k[keys->n - 1].s,
									keys->k[keys->n - 1].len, q),
						   ps->pos);
		if ((st = st_string(ps, "expected a string")) != FB_OK)
			return st;
		c = st_peek(ps);
		if (c == '}')
		{
			ps->pos++;
			return FB_OK;
		}
		if (c != ',')
			return st_syntax(ps, "expected ',' or '}' in \"__metadata__\"");
		ps->pos++;
	}
}

/* "__metadata__": null or an object of strings. */
static fb_status
st_metadata(st_parser *ps)
{
	st_keys		keys = {NULL, 0, 0};
	fb_status	st;
	int			c = st_peek(ps);

	if (c == 'n')
	{
		/* the reference reads it as an absent Option */
		if (ps->len - ps->pos < 4 || memcmp(ps->p + ps->pos, "null", 4) != 0)
			return st_syntax(ps, "invalid literal");
		ps->pos += 4;
		return FB_OK;
	}
	if (c != '{')
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "\"__metadata__\" is not a JSON object (header byte %zu)",
					   ps->pos);
	ps->pos++;
	st = st_metadata_body(ps, &keys);
	if (st == FB_OK)
		st = st_metadata_dups(ps, keys.k, keys.n);
	for (size_t i = 0; i < keys.n; i++)
		free(keys.k[i].s);
	free(keys.k);
	return st;
}

/* Checks the last decoded key as a tensor name and adds an entry for it. */
static fb_status
st_new_entry(st_parser *ps, st_entry **out)
{
	char		q[ST_QUOTE_BUF];
	st_entry   *e;

	if (ps->s_len == 0)
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "empty tensor name (header byte %zu)", ps->pos);
	if (ps->s_len > FB_ST_MAX_NAME_BYTES)
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "tensor name \"%s\" is %zu bytes, over the limit of %d",
					   st_quote(ps->s, ps->s_len, q), ps->s_len,
					   FB_ST_MAX_NAME_BYTES);
	if (ps->s_has_nul)
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "tensor name \"%s\" contains a NUL character",
					   st_quote(ps->s, ps->s_len, q));
	if (ps->n_ents >= FB_ST_MAX_TENSORS)
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "more than %d tensors", FB_ST_MAX_TENSORS);
	if (ps->n_ents == ps->cap_ents)
	{
		/* bounded by FB_ST_MAX_TENSORS, so the products cannot wrap */
		size_t		cap = ps->cap_ents ? ps->cap_ents * 2 : 64;
		st_entry   *ents = realloc(ps->ents, cap * sizeof(st_entry));

		if (ents == NULL)
			return st_fail(ps->file, ps->err, FB_ERR_NOMEM,
						   "out of memory parsing header");
		ps->ents = ents;
		ps->cap_ents = cap;
	}
	e = &ps->ents[ps->n_ents];
	memset(e, 0, sizeof(*e));
	e->t.name = malloc(ps->s_len + 1);
	if (e->t.name == NULL)
		return st_fail(ps->file, ps->err, FB_ERR_NOMEM,
					   "out of memory parsing header");
	memcpy(e->t.name, ps->s, ps->s_len + 1);
	ps->n_ents++;
	*out = e;
	return FB_OK;
}

/* The top-level object: tensor entries and at most one "__metadata__". */
static fb_status
st_header(st_parser *ps)
{
	fb_status	st;
	int			c;

	/* leading whitespace is accepted, as by the reference */
	if (st_peek(ps) != '{')
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "header is not a JSON object (header byte %zu)",
					   ps->pos);
	ps->pos++;
	if (st_peek(ps) != '}')
	{
		for (;;)
		{
			if ((st = st_string(ps, "expected a key string")) != FB_OK)
				return st;
			if (st_string_is(ps, "__metadata__"))
			{
				if (ps->seen_metadata)
					return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
								   "duplicate key \"__metadata__\"");
				ps->seen_metadata = true;
				if ((st = st_expect(ps, ':', "expected ':' after key")) != FB_OK)
					return st;
				st = st_metadata(ps);
			}
			else
			{
				st_entry   *e = NULL;

				if ((st = st_new_entry(ps, &e)) != FB_OK)
					return st;
				if ((st = st_expect(ps, ':', "expected ':' after key")) != FB_OK)
					return st;
				st = st_tensor_entry(ps, e);
			}
			if (st != FB_OK)
				return st;
			c = st_peek(ps);
			if (c == '}')
				break;
			if (c != ',')
				return st_syntax(ps, "expected ',' or '}' in header object");
			ps->pos++;
		}
	}
	ps->pos++;					/* the '}' */

	/* the writer pads with spaces; anything else after the object is not JSON */
	st_skip_ws(ps);
	if (ps->pos != ps->len)
		return st_syntax(ps, "trailing characters after the JSON object");
	return FB_OK;
}

/* ------------------------------------------------------------------------
 * Validation of the parsed entries
 * ------------------------------------------------------------------------
 */

static int
st_entry_name_cmp(const void *a, const void *b)
{
	return strcmp(((const st_entry *) a)->t.name, ((const st_entry *) b)->t.name);
}

static int
st_entry_offset_cmp(const void *a, const void *b)
{
	const st_entry *x = *(const st_entry *const *) a;
	const st_entry *y = *(const st_entry *const *) b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->t.name, y->t.name);
}

/*
 * Element count and byte size from the shape, left to right with overflow
 * checks (as the reference does), then the offsets against the data
 * section.  A product that wraps (even to 0) is an error, never a size.
 */
static fb_status
st_check_entry(st_parser *ps, st_entry *e, const uint8_t *data,
			   size_t data_len)
{
	char		q[ST_QUOTE_BUF];
	const char *nm = st_quote(e->t.name, strlen(e->t.name), q);
	uint64_t	n = 1;
	size_t		nbytes;

	for (int i = 0; i < e->t.ndim; i++)
		if (__builtin_mul_overflow(n, (uint64_t) e->t.shape[i], &n))
			return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
						   "tensor \"%s\": element count of the shape overflows",
						   nm);
	if (n > SIZE_MAX ||
		!fb_mul_size((size_t) n, fb_dtype_size(e->t.dtype), &nbytes))
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "tensor \"%s\": byte size of the shape overflows", nm);
	if (e->begin > e->end)
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "tensor \"%s\": data_offsets begin %llu is after end %llu",
					   nm, (unsigned long long) e->begin,
					   (unsigned long long) e->end);
	if (e->end > data_len)
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "tensor \"%s\": data_offsets end %llu is past the data section of %zu bytes",
					   nm, (unsigned long long) e->end, data_len);
	if (e->end - e->begin != nbytes)
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "tensor \"%s\": data_offsets span %llu bytes, shape and dtype %s need %zu",
					   nm, (unsigned long long) (e->end - e->begin),
					   fb_dtype_name(e->t.dtype), nbytes);
	e->t.n_elems = n;
	e->t.nbytes = nbytes;
	e->t.data = data + e->begin;
	return FB_OK;
}

/*
 * Sorted by (begin, end), each tensor must start where the previous one
 * ended and the last must end at the end of the file: the reference's
 * rule, which makes overlaps, holes and trailing bytes all errors.
 */
static fb_status
st_check_tiling(st_parser *ps, size_t data_len)
{
	char		q1[ST_QUOTE_BUF],
				q2[ST_QUOTE_BUF];
	st_entry  **order;
	uint64_t	expect = 0;
	const st_entry *prev = NULL;
	fb_status	st = FB_OK;

	if (ps->n_ents > 0)
	{
		order = malloc(ps->n_ents * sizeof(st_entry *));
		if (order == NULL)
			return st_fail(ps->file, ps->err, FB_ERR_NOMEM,
						   "out of memory checking tensor offsets");
		for (size_t i = 0; i < ps->n_ents; i++)
			order[i] = &ps->ents[i];
		qsort(order, ps->n_ents, sizeof(st_entry *), st_entry_offset_cmp);
		for (size_t i = 0; i < ps->n_ents && st == FB_OK; i++)
		{
			const st_entry *e = order[i];

			if (e->begin < expect)
				st = st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
							 "tensor \"%s\" (bytes %llu to %llu) overlaps tensor \"%s\" (ending at %llu)",
							 st_quote(e->t.name, strlen(e->t.name), q1),
							 (unsigned long long) e->begin,
							 (unsigned long long) e->end,
							 st_quote(prev->t.name, strlen(prev->t.name), q2),
							 (unsigned long long) expect);
			else if (e->begin > expect)
				st = st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
							 "hole of %llu bytes in the data section before tensor \"%s\" at offset %llu",
							 (unsigned long long) (e->begin - expect),
							 st_quote(e->t.name, strlen(e->t.name), q1),
							 (unsigned long long) e->begin);
			expect = e->end;
			prev = e;
		}
		free(order);
		if (st != FB_OK)
			return st;
	}
	if (expect != data_len)
		return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
					   "%llu trailing bytes after the last tensor in the data section",
					   (unsigned long long) (data_len - expect));
	return FB_OK;
}

static fb_status
st_validate(st_parser *ps, const uint8_t *data, size_t data_len)
{
	char		q[ST_QUOTE_BUF];
	fb_status	st;

	if (ps->n_ents > 1)
	{
		qsort(ps->ents, ps->n_ents, sizeof(st_entry), st_entry_name_cmp);
		for (size_t i = 1; i < ps->n_ents; i++)
			if (strcmp(ps->ents[i - 1].t.name, ps->ents[i].t.name) == 0)
				return st_fail(ps->file, ps->err, FB_ERR_CORRUPT,
							   "duplicate tensor name \"%s\"",
							   st_quote(ps->ents[i].t.name,
										strlen(ps->ents[i].t.name), q));
	}
	if (ps->unsupported)
		return st_fail(ps->file, ps->err, FB_ERR_UNSUPPORTED,
					   "tensor \"%s\" has unsupported dtype \"%s\"",
					   ps->unsup_tensor, ps->unsup_dtype);
	for (size_t i = 0; i < ps->n_ents; i++)
		if ((st = st_check_entry(ps, &ps->ents[i], data, data_len)) != FB_OK)
			return st;
	return st_check_tiling(ps, data_len);
}

/* ------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------
 */

static void
st_parser_free(st_parser *ps)
{
	for (size_t i = 0; i < ps->n_ents; i++)
		free(ps->ents[i].t.name);
	free(ps->ents);
	free(ps->s);
}

/* The 8-byte prefix: header length within the limit and the buffer. */
static fb_status
st_prefix(const uint8_t *buf, size_t len, const char *file, fb_error *err,
		  size_t *hdr_len)
{
	uint64_t	n = 0;

	if (len < ST_PREFIX_BYTES)
		return st_fail(file, err, FB_ERR_CORRUPT,
					   "file is %zu bytes, too short for the 8-byte header length",
					   len);
	for (int i = ST_PREFIX_BYTES - 1; i >= 0; i--)
		n = (n << 8) | buf[i];
	if (n > FB_ST_MAX_HEADER_BYTES)
		return st_fail(file, err, FB_ERR_CORRUPT,
					   "header length %llu is over the limit of %u bytes",
					   (unsigned long long) n, FB_ST_MAX_HEADER_BYTES);
	/* len >= 8 here, so the subtraction cannot wrap */
	if (n > len - ST_PREFIX_BYTES)
		return st_fail(file, err, FB_ERR_CORRUPT,
					   "header length %llu runs past the end of the %zu-byte file",
					   (unsigned long long) n, len);
	*hdr_len = (size_t) n;
	return FB_OK;
}

fb_status
fb_safetensors_parse(const uint8_t *buf, size_t len, const char *name,
					 fb_safetensors **out, fb_error *err)
{
	st_parser	ps;
	fb_safetensors *res;
	size_t		hdr_len = 0;
	size_t		bad = 0;
	fb_status	st;

	if (name == NULL)
		name = "(buffer)";
	if (out == NULL || (buf == NULL && len > 0))
		return st_fail(name, err, FB_ERR_INVALID, "invalid arguments");
	*out = NULL;
	if ((st = st_prefix(buf, len, name, err, &hdr_len)) != FB_OK)
		return st;

	/* the whole header, padding included, must be UTF-8 (as for Rust's str) */
	while (bad < hdr_len)
	{
		size_t		n = st_utf8_char(buf + ST_PREFIX_BYTES + bad, hdr_len - bad);

		if (n == 0)
			return st_fail(name, err, FB_ERR_CORRUPT,
						   "header is not valid UTF-8 at header byte %zu", bad);
		bad += n;
	}

	memset(&ps, 0, sizeof(ps));
	ps.file = name;
	ps.err = err;
	ps.p = buf + ST_PREFIX_BYTES;
	ps.len = hdr_len;
	st = st_header(&ps);
	if (st == FB_OK)
		st = st_validate(&ps, buf + ST_PREFIX_BYTES + hdr_len,
						 len - ST_PREFIX_BYTES - hdr_len);
	if (st != FB_OK)
	{
		st_parser_free(&ps);
		return st;
	}

	res = calloc(1, sizeof(*res));
	if (res != NULL)
	{
		res->path = strdup(name);
		res->tensors = malloc((ps.n_ents ? ps.n_ents : 1) * sizeof(fb_st_tensor));
	}
	if (res == NULL || res->path == NULL || res->tensors == NULL)
	{
		if (res != NULL)
		{
			free(res->path);
			free(res->tensors);
			free(res);
		}
		st_parser_free(&ps);
		return st_fail(name, err, FB_ERR_NOMEM, "out of memory parsing header");
	}
	for (size_t i = 0; i < ps.n_ents; i++)
	{
		res->tensors[i] = ps.ents[i].t;
		ps.ents[i].t.name = NULL;	/* moved */
	}
	res->n_tensors = ps.n_ents;
	res->map = (uint8_t *) buf;
	res->map_len = len;
	res->owns_map = 0;
	st_parser_free(&ps);
	*out = res;
	return FB_OK;
}

fb_status
fb_safetensors_open(const char *path, fb_safetensors **out, fb_error *err)
{
	uint8_t    *map;
	size_t		len;
	fb_status	st;

	*out = NULL;
	if ((st = fb_map_file(path, &map, &len, err)) != FB_OK)
		return st;
	st = fb_safetensors_parse(map, len, path, out, err);
	if (st != FB_OK)
	{
		fb_unmap_file(map, len);
		return st;
	}
	(*out)->owns_map = 1;
	return FB_OK;
}

void
fb_safetensors_close(fb_safetensors *st)
{
	if (st == NULL)
		return;
	if (st->owns_map)
		fb_unmap_file(st->map, st->map_len);
	for (size_t i = 0; i < st->n_tensors; i++)
		free(st->tensors[i].name);
	free(st->tensors);
	free(st->path);
	free(st);
}

const fb_st_tensor *
fb_safetensors_find(const fb_safetensors *st, const char *name)
{
	size_t		lo = 0,
				hi;

	if (st == NULL || name == NULL)
		return NULL;
	hi = st->n_tensors;
	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;
		int			c = strcmp(name, st->tensors[mid].name);

		if (c == 0)
			return &st->tensors[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Little-endian loads from unaligned bytes. */
static uint16_t
st_le16(const uint8_t *p)
{
	return (uint16_t) (p[0] | (p[1] << 8));
}

static uint32_t
st_le32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) |
		((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static uint64_t
st_le64(const uint8_t *p)
{
	return (uint64_t) st_le32(p) | ((uint64_t) st_le32(p + 4) << 32);
}

fb_status
fb_tensor_to_f32(const fb_st_tensor *t, float *dst, fb_error *err)
{
	const uint8_t *p = t->data;
	uint64_t	n = t->n_elems;
	size_t		esize = fb_dtype_size(t->dtype);
	size_t		need;
	char		q[ST_QUOTE_BUF];

	/* a tensor not made by the parser must still not make us over-read */
	if (esize != 0 &&
		(n > SIZE_MAX || !fb_mul_size((size_t) n, esize, &need) ||
		 need != t->nbytes))
		return fb_fail(err, FB_ERR_INVALID,
					   "tensor \"%s\": %llu elements do not fill %zu bytes",
					   st_quote(t->name, strlen(t->name), q),
					   (unsigned long long) n, t->nbytes);
	switch (t->dtype)
	{
		case FB_DT_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			if (n > 0)
				memcpy(dst, p, (size_t) n * sizeof(float));
#else
			for (uint64_t i = 0; i < n; i++)
			{
				uint32_t	bits = st_le32(p + 4 * i);

				memcpy(&dst[i], &bits, sizeof(float));
			}
#endif
			return FB_OK;
		case FB_DT_F16:
			for (uint64_t i = 0; i < n; i++)
				dst[i] = fb_f16_to_f32(st_le16(p + 2 * i));
			return FB_OK;
		case FB_DT_BF16:
			for (uint64_t i = 0; i < n; i++)
				dst[i] = fb_bf16_to_f32(st_le16(p + 2 * i));
			return FB_OK;
		case FB_DT_F64:
			for (uint64_t i = 0; i < n; i++)
			{
				uint64_t	bits = st_le64(p + 8 * i);
				double		d;

				/* IEEE 754 narrowing: out-of-range values become inf */
				memcpy(&d, &bits, sizeof(d));
				dst[i] = (float) d;
			}
			return FB_OK;
		default:
			break;
	}

	/* the tensor does not know its file; callers add it if they wish */
	return fb_fail(err, FB_ERR_UNSUPPORTED,
				   "tensor \"%s\" has dtype %s, not a floating-point type",
				   st_quote(t->name, strlen(t->name), q),
				   fb_dtype_name(t->dtype));
}

/*
 * unicode.c — Unicode properties for the tokenizer: ICU plus the measured
 * differences of Hugging Face `tokenizers` (see fb_unicode.h).
 *
 * Compiled with FB_UNICODE_NO_OVERRIDES (only by
 * tools/gen_unicode_overrides.py) it gives ICU's answers alone, which is
 * how the override table is measured.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "fb_unicode.h"

typedef struct fb_uc_range
{
	int32_t		lo;
	int32_t		hi;
	int32_t		val;
} fb_uc_range;

typedef struct fb_uc_map
{
	int32_t		cp;
	int32_t		n;
	int32_t		to[FB_UC_MAX_LOWER];
} fb_uc_map;

#ifndef FB_UNICODE_NO_OVERRIDES
#include "unicode_hf_overrides.h"
#endif

static const UNormalizer2 *nfd_instance = NULL;
static char nfd_error[128];
static pthread_once_t nfd_once = PTHREAD_ONCE_INIT;

/*
 * Properties of every BMP code point, computed once from the functions
 * below (so with the same answers) to keep ICU calls off the hot path:
 * bits 0-1 clean class, 2 CJK, 3 whitespace, 4 punctuation, 5 Mn,
 * 6 decomposes, 7 lowercase differs, 8-15 combining class.
 */
#define P_CLEAN		0x03u
#define P_CJK		0x04u
#define P_WS		0x08u
#define P_PUNCT		0x10u
#define P_MN		0x20u
#define P_DECOMP	0x40u
#define P_LOWER		0x80u
#define P_CCC_SHIFT 8

static uint16_t bmp_props[0x10000];
static bool bmp_ready = false;

/*
 * NFD of the BMP code points that decompose, Hangul syllables excepted
 * (computed arithmetically): sorted code points and their decompositions,
 * filled once next to bmp_props.  Unicode has about 1,000 of them.
 */
#define BMP_DECOMP_MAX 4096
static uint16_t bmp_decomp_cp[BMP_DECOMP_MAX];
static int32_t bmp_decomp_to[BMP_DECOMP_MAX][4];
static uint8_t bmp_decomp_n[BMP_DECOMP_MAX];
static size_t bmp_decomp_count = 0;

#define HANGUL_S_BASE	0xAC00
#define HANGUL_L_BASE	0x1100
#define HANGUL_V_BASE	0x1161
#define HANGUL_T_BASE	0x11A7
#define HANGUL_T_COUNT	28
#define HANGUL_N_COUNT	588		/* V count 21 x T count 28 */
#define HANGUL_S_COUNT	11172

static fb_uc_clean slow_clean_class(int32_t c);
static int	slow_decompose(int32_t c, int32_t *out);
static int	slow_ccc(int32_t c);
static bool slow_is_mn(int32_t c);
static int	slow_lower(int32_t c, int32_t *out);
static bool slow_is_whitespace(int32_t c);
static bool slow_is_punct(int32_t c);

static void
load_nfd(void)
{
	UErrorCode	status = U_ZERO_ERROR;
	const UNormalizer2 *n = unorm2_getNFDInstance(&status);

	if (U_FAILURE(status) || n == NULL)
	{
		snprintf(nfd_error, sizeof(nfd_error),
				 "could not load ICU NFD data: %s", u_errorName(status));
		return;
	}
	nfd_instance = n;
	for (int32_t c = 0; c < 0x10000; c++)
	{
		int32_t		buf[FB_UC_MAX_DECOMP];
		uint32_t	p = (uint32_t) slow_clean_class(c);
		int			n;

		if (fb_uc_is_cjk(c))
			p |= P_CJK;
		if (slow_is_whitespace(c))
			p |= P_WS;
		if (slow_is_punct(c))
			p |= P_PUNCT;
		if (slow_is_mn(c))
			p |= P_MN;
		n = slow_decompose(c, buf);
		if (n != 1 || buf[0] != c)
		{
			p |= P_DECOMP;
			if ((c < HANGUL_S_BASE || c >= HANGUL_S_BASE + HANGUL_S_COUNT) &&
				n <= 4 && bmp_decomp_count < BMP_DECOMP_MAX)
			{
				bmp_decomp_cp[bmp_decomp_count] = (uint16_t) c;
				memcpy(bmp_decomp_to[bmp_decomp_count], buf, sizeof(int32_t) * n);
				bmp_decomp_n[bmp_decomp_count] = (uint8_t) n;
				bmp_decomp_count++;
			}
		}
		if (slow_lower(c, buf) != 1 || buf[0] != c)
			p |= P_LOWER;
		p |= (uint32_t) slow_ccc(c) << P_CCC_SHIFT;
		bmp_props[c] = (uint16_t) p;
	}
	bmp_ready = true;
}

bool
fb_uc_init(char *err, size_t errlen)
{
	pthread_once(&nfd_once, load_nfd);
	if (nfd_instance == NULL && err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", nfd_error);
	return nfd_instance != NULL;
}

#ifndef FB_UNICODE_NO_OVERRIDES
/* Binary search of a sorted, non-overlapping range table. */
static const fb_uc_range *
range_find(const fb_uc_range *t, size_t n, int32_t c)
{
	size_t		lo = 0,
				hi = n;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (c < t[mid].lo)
			hi = mid;
		else if (c > t[mid].hi)
			lo = mid + 1;
		else
			return &t[mid];
	}
	return NULL;
}

static const fb_uc_map *
map_find(const fb_uc_map *t, size_t n, int32_t c)
{
	size_t		lo = 0,
				hi = n;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (c < t[mid].cp)
			hi = mid;
		else if (c > t[mid].cp)
			lo = mid + 1;
		else
			return &t[mid];
	}
	return NULL;
}

#define OVERRIDE_RANGE(table, c) \
	range_find(table, sizeof(table) / sizeof(table[0]) - 1, c)
#define OVERRIDE_MAP(table, c) \
	map_find(table, sizeof(table) / sizeof(table[0]) - 1, c)
#endif

/*
 * clean_text's "control" test is unicode_categories' is_other().  Measured
 * on every code point, it is true for Cc, Cf, Co and Cs but never for
 * unassigned code points (Cn): Hugging Face keeps those.  The override
 * table covers the Cf characters newer than the crate's tables.
 */
static bool
is_other_category(int32_t c)
{
	switch (u_charType(c))
	{
		case U_CONTROL_CHAR:
		case U_FORMAT_CHAR:
		case U_PRIVATE_USE_CHAR:
		case U_SURROGATE:
			return true;
		default:
			return false;
	}
}

static fb_uc_clean
slow_clean_class(int32_t c)
{
	if (c < 0x80)
	{
		if (c == '\t' || c == '\n' || c == '\r' || c == ' ')
			return FB_UC_SPACE;
		if (c < 0x20 || c == 0x7f)
			return FB_UC_REMOVE;
		return FB_UC_KEEP;
	}
#ifndef FB_UNICODE_NO_OVERRIDES
	{
		const fb_uc_range *r = OVERRIDE_RANGE(fb_hf_clean_overrides, c);

		if (r != NULL)
			return (fb_uc_clean) r->val;
	}
#endif
	if (c == 0xfffd || is_other_category(c))
		return FB_UC_REMOVE;
	if (u_isUWhiteSpace(c))
		return FB_UC_SPACE;
	return FB_UC_KEEP;
}

bool
fb_uc_is_cjk(int32_t c)
{
	/* The ranges of is_chinese_char in tokenizers' normalizers/bert.rs. */
	return (c >= 0x4E00 && c <= 0x9FFF) ||
		(c >= 0x3400 && c <= 0x4DBF) ||
		(c >= 0x20000 && c <= 0x2A6DF) ||
		(c >= 0x2A700 && c <= 0x2B73F) ||
		(c >= 0x2B740 && c <= 0x2B81F) ||
		(c >= 0x2B920 && c <= 0x2CEAF) ||
		(c >= 0xF900 && c <= 0xFAFF) ||
		(c >= 0x2F800 && c <= 0x2FA1F);
}

static int
slow_decompose(int32_t c, int32_t *out)
{
	UChar		buf[FB_UC_MAX_DECOMP * 2];
	UErrorCode	status = U_ZERO_ERROR;
	int32_t		len;
	int32_t		i = 0;
	int			n = 0;

	/* Nothing below U+00C0 decomposes. */
	if (c < 0xC0 || nfd_instance == NULL)
	{
		out[0] = c;
		return 1;
	}
#ifndef FB_UNICODE_NO_OVERRIDES
	{
		const fb_uc_map *m = OVERRIDE_MAP(fb_hf_decomp_overrides, c);

		if (m != NULL)
		{
			memcpy(out, m->to, sizeof(int32_t) * m->n);
			return m->n;
		}
	}
#endif
	len = unorm2_getDecomposition(nfd_instance, c, buf, (int32_t) (sizeof(buf) / sizeof(buf[0])), &status);
	if (len <= 0 || U_FAILURE(status))
	{
		out[0] = c;
		return 1;
	}
	while (i < len && n < FB_UC_MAX_DECOMP)
	{
		UChar32		u;

		U16_NEXT(buf, i, len, u);
		out[n++] = u;
	}
	return n;
}

static int
slow_ccc(int32_t c)
{
	if (c < 0x300)
		return 0;
#ifndef FB_UNICODE_NO_OVERRIDES
	{
		const fb_uc_range *r = OVERRIDE_RANGE(fb_hf_ccc_overrides, c);

		if (r != NULL)
			return r->val;
	}
#endif
	return u_getCombiningClass(c);
}

static bool
slow_is_mn(int32_t c)
{
	if (c < 0x300)
		return false;
#ifndef FB_UNICODE_NO_OVERRIDES
	{
		const fb_uc_range *r = OVERRIDE_RANGE(fb_hf_mn_overrides, c);

		if (r != NULL)
			return r->val != 0;
	}
#endif
	return u_charType(c) == U_NON_SPACING_MARK;
}

static int
slow_lower(int32_t c, int32_t *out)
{
	UChar		src[2];
	UChar		dst[FB_UC_MAX_LOWER * 2];
	UErrorCode	status = U_ZERO_ERROR;
	int32_t		srclen = 0;
	int32_t		len;
	int32_t		i = 0;
	int			n = 0;

	if (c < 0x80)
	{
		out[0] = (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
		return 1;
	}
#ifndef FB_UNICODE_NO_OVERRIDES
	{
		const fb_uc_map *m = OVERRIDE_MAP(fb_hf_lower_overrides, c);

		if (m != NULL)
		{
			memcpy(out, m->to, sizeof(int32_t) * m->n);
			return m->n;
		}
	}
#endif
	if (!u_hasBinaryProperty(c, UCHAR_CHANGES_WHEN_LOWERCASED))
	{
		out[0] = c;
		return 1;
	}
	/* Full mapping in the root locale, no context (one code point). */
	U16_APPEND_UNSAFE(src, srclen, c);
	len = u_strToLower(dst, (int32_t) (sizeof(dst) / sizeof(dst[0])), src, srclen, "", &status);
	if (U_FAILURE(status) || len <= 0 || len > (int32_t) (sizeof(dst) / sizeof(dst[0])))
	{
		out[0] = c;
		return 1;
	}
	while (i < len && n < FB_UC_MAX_LOWER)
	{
		UChar32		u;

		U16_NEXT(dst, i, len, u);
		out[n++] = u;
	}
	return n;
}

static bool
slow_is_whitespace(int32_t c)
{
	if (c < 0x80)
		return c == ' ' || (c >= '\t' && c <= '\r');
#ifndef FB_UNICODE_NO_OVERRIDES
	{
		const fb_uc_range *r = OVERRIDE_RANGE(fb_hf_ws_overrides, c);

		if (r != NULL)
			return r->val != 0;
	}
#endif
	return u_isUWhiteSpace(c);
}

static bool
slow_is_punct(int32_t c)
{
	if (c < 0x80)
		return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) ||
			(c >= 91 && c <= 96) || (c >= 123 && c <= 126);
#ifndef FB_UNICODE_NO_OVERRIDES
	{
		const fb_uc_range *r = OVERRIDE_RANGE(fb_hf_punct_overrides, c);

		if (r != NULL)
			return r->val != 0;
	}
#endif
	return u_ispunct(c);
}

/* Public functions: the BMP table when it is ready, else the slow path. */

fb_uc_clean
fb_uc_clean_class(int32_t c)
{
	if (c < 0x10000 && bmp_ready)
		return (fb_uc_clean) (bmp_props[c] & P_CLEAN);
	return slow_clean_class(c);
}

int
fb_uc_decompose(int32_t c, int32_t *out)
{
	if (c < 0x10000 && bmp_ready)
	{
		size_t		lo = 0,
					hi = bmp_decomp_count;

		if (!(bmp_props[c] & P_DECOMP))
		{
			out[0] = c;
			return 1;
		}
		if (c >= HANGUL_S_BASE && c < HANGUL_S_BASE + HANGUL_S_COUNT)
		{
			int32_t		sidx = c - HANGUL_S_BASE;
			int32_t		t = sidx % HANGUL_T_COUNT;

			out[0] = HANGUL_L_BASE + sidx / HANGUL_N_COUNT;
			out[1] = HANGUL_V_BASE + (sidx % HANGUL_N_COUNT) / HANGUL_T_COUNT;
			if (t == 0)
				return 2;
			out[2] = HANGUL_T_BASE + t;
			return 3;
		}
		while (lo < hi)
		{
			size_t		mid = lo + (hi - lo) / 2;

			if (c < bmp_decomp_cp[mid])
				hi = mid;
			else if (c > bmp_decomp_cp[mid])
				lo = mid + 1;
			else
			{
				memcpy(out, bmp_decomp_to[mid], sizeof(int32_t) * bmp_decomp_n[mid]);
				return bmp_decomp_n[mid];
			}
		}
	}
	return slow_decompose(c, out);
}

int
fb_uc_ccc(int32_t c)
{
	if (c < 0x10000 && bmp_ready)
		return bmp_props[c] >> P_CCC_SHIFT;
	return slow_ccc(c);
}

bool
fb_uc_is_mn(int32_t c)
{
	if (c < 0x10000 && bmp_ready)
		return (bmp_props[c] & P_MN) != 0;
	return slow_is_mn(c);
}

int
fb_uc_lower(int32_t c, int32_t *out)
{
	if (c < 0x10000 && bmp_ready && !(bmp_props[c] & P_LOWER))
	{
		out[0] = c;
		return 1;
	}
	return slow_lower(c, out);
}

bool
fb_uc_is_whitespace(int32_t c)
{
	if (c < 0x10000 && bmp_ready)
		return (bmp_props[c] & P_WS) != 0;
	return slow_is_whitespace(c);
}

bool
fb_uc_is_punct(int32_t c)
{
	if (c < 0x10000 && bmp_ready)
		return (bmp_props[c] & P_PUNCT) != 0;
	return slow_is_punct(c);
}

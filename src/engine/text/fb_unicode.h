/*
 * fb_unicode.h — per-code-point Unicode properties as the Hugging Face
 * BERT tokenizer sees them.
 *
 * The properties come from ICU.  The Rust crates behind Hugging Face
 * `tokenizers` use older Unicode tables for some of them (general
 * categories, normalisation), and Rust's own tables may be newer; where
 * the two disagree, a generated override table (unicode_hf_overrides.h,
 * made by tools/gen_unicode_overrides.py from a measurement of every code
 * point) gives the Hugging Face answer.  Not part of the public API.
 */
#ifndef FB_UNICODE_H
#define FB_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest canonical decomposition and lowercase mapping in Unicode are 4
 * and 3 code points; the buffers leave room for both. */
#define FB_UC_MAX_DECOMP 8
#define FB_UC_MAX_LOWER  4

/* What BertNormalizer's clean_text does with a code point. */
typedef enum fb_uc_clean
{
	FB_UC_KEEP = 0,				/* kept as is */
	FB_UC_REMOVE,				/* U+0000, U+FFFD and "other" (Cc Cf Cn Co Cs) */
	FB_UC_SPACE					/* whitespace, replaced by ' ' */
} fb_uc_clean;

/* Must be called once before the other functions; false when ICU's
 * normalisation data cannot be loaded (message in err when not NULL). */
bool		fb_uc_init(char *err, size_t errlen);

fb_uc_clean fb_uc_clean_class(int32_t c);

/* BertNormalizer's "Chinese character" ranges (CJK ideograph blocks). */
bool		fb_uc_is_cjk(int32_t c);

/* Canonical (NFD) decomposition of c into out; returns the number of code
 * points (1 and out[0] = c when c does not decompose). */
int			fb_uc_decompose(int32_t c, int32_t *out);

/* Canonical combining class. */
int			fb_uc_ccc(int32_t c);

/* General category Mn (dropped by strip_accents). */
bool		fb_uc_is_mn(int32_t c);

/* Full lowercase mapping of one code point with no context (Rust
 * char::to_lowercase); returns the number of code points written. */
int			fb_uc_lower(int32_t c, int32_t *out);

/* Rust char::is_whitespace (White_Space). */
bool		fb_uc_is_whitespace(int32_t c);

/* BertPreTokenizer punctuation: ASCII punctuation or a P* category. */
bool		fb_uc_is_punct(int32_t c);

/*
 * Decodes one UTF-8 sequence from s[0..n) (n >= 1) strictly: no overlong
 * forms, surrogates or values above U+10FFFF.  Returns its length and the
 * code point in *cp, or 0 when the bytes are not valid UTF-8.
 */
static inline size_t
fb_utf8_decode(const unsigned char *s, size_t n, int32_t *cp)
{
	unsigned char b = s[0];

	if (b < 0x80)
	{
		*cp = b;
		return 1;
	}
	if (b >= 0xC2 && b <= 0xDF)
	{
		if (n < 2 || (s[1] & 0xC0) != 0x80)
			return 0;
		*cp = ((b & 0x1F) << 6) | (s[1] & 0x3F);
		return 2;
	}
	if (b >= 0xE0 && b <= 0xEF)
	{
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if (b == 0xE0 && s[1] < 0xA0)
			return 0;			/* overlong */
		if (b == 0xED && s[1] >= 0xA0)
			return 0;			/* surrogate */
		*cp = ((b & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
		return 3;
	}
	if (b >= 0xF0 && b <= 0xF4)
	{
		if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
			(s[3] & 0xC0) != 0x80)
			return 0;
		if (b == 0xF0 && s[1] < 0x90)
			return 0;			/* overlong */
		if (b == 0xF4 && s[1] >= 0x90)
			return 0;			/* above U+10FFFF */
		*cp = ((b & 0x07) << 18) | ((s[1] & 0x3F) << 12) |
			((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
		return 4;
	}
	return 0;
}

/* Encodes a code point (<= U+10FFFF, not a surrogate) as UTF-8 into out
 * (room for 4 bytes); returns the length. */
static inline size_t
fb_utf8_encode(int32_t c, char *out)
{
	if (c < 0x80)
	{
		out[0] = (char) c;
		return 1;
	}
	if (c < 0x800)
	{
		out[0] = (char) (0xC0 | (c >> 6));
		out[1] = (char) (0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000)
	{
		out[0] = (char) (0xE0 | (c >> 12));
		out[1] = (char) (0x80 | ((c >> 6) & 0x3F));
		out[2] = (char) (0x80 | (c & 0x3F));
		return 3;
	}
	out[0] = (char) (0xF0 | (c >> 18));
	out[1] = (char) (0x80 | ((c >> 12) & 0x3F));
	out[2] = (char) (0x80 | ((c >> 6) & 0x3F));
	out[3] = (char) (0x80 | (c & 0x3F));
	return 4;
}

#endif

/*
 * fuzz_tokenizer.c — libFuzzer harness for fb_tokenizer_encode.
 *
 * The first byte chooses the options (lowercase, strip_accents,
 * tokenize_chinese_chars, clean_text); the rest is the text.  A small
 * built-in vocabulary (specials, letters, "##" pieces, CJK, accented and
 * special-casing letters) makes WordPiece succeed and fail often.  Checks:
 * status FB_ERR_INVALID exactly for invalid UTF-8; [CLS] first and [SEP]
 * last at (0,0); ids in range; 0 <= start <= end <= code points, starts
 * non-decreasing; the same tokens without the specials; determinism.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "finbert.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char vocab[] =
"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"
"a\nb\nc\nd\ne\ni\nn\no\ns\nt\nx\n##a\n##b\n##c\n##d\n##e\n##i\n##n\n##o\n##s\n##t\n##x\n"
"an\n##an\nab\n##ab\nthe\n##ing\n##ed\nun\nwant\n##want\nrun\n##runn\n"
"\xe4\xb8\xad\n\xe6\x96\x87\n##\xe6\x96\x87\n\xe5\x9b\xbd\n"	/* 中 文 ##文 国 */
"\xc3\xa9\n##\xc3\xa9\n\xcf\x83\n##\xcf\x83\n\xce\xa3\n"	/* é ##é σ ##σ Σ */
"i\xcc\x87\n##\xcc\x87\n\xc3\x9f\n\xea\xb0\x80\n\xe1\x84\x80\n##\xe1\x85\xa1\n"	/* i̇ ##̇ ß 가 ᄀ ##ᅡ */
"\xf0\x9f\x98\x80\n##\xf0\x9f\x98\x80\n\xf0\xa0\x80\x80\n!\n,\n.\n[\n]\n##\n#\n"	/* 😀 ##😀 𠀀 */
"\xef\xbc\xa1\n\xe2\x80\x8b\n \n\t\n\x01\n";	/* Ａ ZWSP and oddities */

static fb_tokenizer *toks[16];

static bool
utf8_valid(const uint8_t *s, size_t n, size_t *chars)
{
	size_t		i = 0;

	*chars = 0;
	while (i < n)
	{
		uint8_t		b = s[i];
		size_t		k;
		uint32_t	cp;

		if (b < 0x80)
			k = 1, cp = b;
		else if ((b & 0xE0) == 0xC0)
			k = 2, cp = b & 0x1F;
		else if ((b & 0xF0) == 0xE0)
			k = 3, cp = b & 0x0F;
		else if ((b & 0xF8) == 0xF0)
			k = 4, cp = b & 0x07;
		else
			return false;
		if (i + k > n)
			return false;
		for (size_t j = 1; j < k; j++)
		{
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
			cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k;
		(*chars)++;
	}
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fb_tokenizer *tok;
	fb_encoding a,
				b;
	fb_error	err;
	fb_status	st;
	size_t		chars;
	bool		valid;
	int			mode;
	size_t		vsize;

	if (size < 1 || size > 4096)
		return 0;
	mode = data[0] & 15;
	if (toks[mode] == NULL)
	{
		fb_tokenizer_options o = fb_tokenizer_default_options();

		o.do_lower_case = mode & 1;
		o.strip_accents = (mode & 2) ? -1 : !(mode & 1);
		o.tokenize_chinese_chars = !(mode & 4);
		o.clean_text = !(mode & 8);
		if (fb_tokenizer_load_mem(vocab, sizeof(vocab) - 1, "fuzz-vocab", &o,
								  &toks[mode], &err) != FB_OK)
			abort();
	}
	tok = toks[mode];
	vsize = fb_tokenizer_vocab_size(tok);
	data++;
	size--;
	valid = utf8_valid(data, size, &chars);

	fb_encoding_init(&a);
	fb_encoding_init(&b);
	st = fb_tokenizer_encode(tok, (const char *) data, size, 1, NULL, &a, &err);
	if (!valid)
	{
		if (st != FB_ERR_INVALID || a.n != 0)
			abort();
		goto done;
	}
	if (st != FB_OK || a.n < 2)
		abort();
	if (a.ids[0] != 2 || a.start[0] != 0 || a.end[0] != 0 ||
		a.ids[a.n - 1] != 3 || a.start[a.n - 1] != 0 || a.end[a.n - 1] != 0)
		abort();
	for (size_t i = 1; i + 1 < a.n; i++)
	{
		if (a.ids[i] < 0 || (size_t) a.ids[i] >= vsize)
			abort();
		if (a.start[i] < 0 || a.start[i] > a.end[i] || (size_t) a.end[i] > chars)
			abort();
		if (i > 1 && a.start[i] < a.start[i - 1])
			abort();
	}
	st = fb_tokenizer_encode(tok, (const char *) data, size, 0, NULL, &b, &err);
	if (st != FB_OK || b.n + 2 != a.n)
		abort();
	for (size_t i = 0; i < b.n; i++)
		if (b.ids[i] != a.ids[i + 1] || b.start[i] != a.start[i + 1] || b.end[i] != a.end[i + 1])
			abort();
done:
	fb_encoding_free(&a);
	fb_encoding_free(&b);
	return 0;
}

/*
 * fb_unicode_dump.c — prints the tokenizer's view of every code point, one
 * line each: code point, clean class, CJK, whitespace, punctuation, Mn,
 * combining class, NFD decomposition, lowercase mapping (hex, '.'-joined).
 *
 * Built and run by tools/gen_unicode_overrides.py, once against ICU alone
 * (-DFB_UNICODE_NO_OVERRIDES) and once with the override table, to compare
 * with Hugging Face `tokenizers`.  Not part of the engine.
 */
#include <stdio.h>

#include "fb_unicode.h"

static void
print_seq(const int32_t *s, int n)
{
	for (int i = 0; i < n; i++)
		printf(i ? ".%X" : "%X", (unsigned) s[i]);
}

int
main(void)
{
	char		err[256];

	if (!fb_uc_init(err, sizeof(err)))
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (int32_t c = 0; c <= 0x10FFFF; c++)
	{
		int32_t		buf[FB_UC_MAX_DECOMP];
		int			n;

		if (c >= 0xD800 && c <= 0xDFFF)
			continue;
		printf("%X\t%d\t%d\t%d\t%d\t%d\t%d\t", (unsigned) c,
			   (int) fb_uc_clean_class(c), (int) fb_uc_is_cjk(c),
			   (int) fb_uc_is_whitespace(c), (int) fb_uc_is_punct(c),
			   (int) fb_uc_is_mn(c), fb_uc_ccc(c));
		n = fb_uc_decompose(c, buf);
		print_seq(buf, n);
		putchar('\t');
		n = fb_uc_lower(c, buf);
		print_seq(buf, n);
		putchar('\n');
	}
	return 0;
}

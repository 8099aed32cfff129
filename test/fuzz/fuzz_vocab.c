/*
 * fuzz_vocab.c — libFuzzer harness for vocab.txt parsing
 * (fb_tokenizer_load_mem).  An accepted vocabulary must answer consistent
 * lookups and tokenize its own bytes (as text) without trouble.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "finbert.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fb_tokenizer_options o = fb_tokenizer_default_options();
	fb_tokenizer *tok;
	fb_error	err;
	fb_encoding enc;
	fb_special_ids sp;
	fb_status	st;
	size_t		n;
	int			has_nul;

	if (size > 4096)
		return 0;
	st = fb_tokenizer_load_mem((const char *) data, size, "fuzz/vocab.txt", &o, &tok, &err);
	if (st != FB_OK)
	{
		if (tok != NULL || (st != FB_ERR_CORRUPT && st != FB_ERR_NOMEM) ||
			strstr(err.msg, "fuzz/vocab.txt") == NULL)
			abort();
		return 0;
	}
	n = fb_tokenizer_vocab_size(tok);
	if (n == 0 || n > size + 1)
		abort();
	has_nul = memchr(data, 0, size) != NULL;
	for (size_t id = 0; id < n; id++)
	{
		const char *t = fb_tokenizer_id_to_token(tok, (int32_t) id);

		/* a token that is not shadowed by a later line maps back to its id */
		if (t != NULL && !has_nul && fb_tokenizer_token_to_id(tok, t) != (int32_t) id)
			abort();
	}
	if (fb_tokenizer_id_to_token(tok, (int32_t) n) != NULL ||
		fb_tokenizer_id_to_token(tok, -1) != NULL)
		abort();
	sp = fb_tokenizer_special_ids(tok);
	if (sp.unk >= (int32_t) n || sp.cls >= (int32_t) n || sp.sep >= (int32_t) n ||
		sp.pad >= (int32_t) n || sp.mask >= (int32_t) n)
		abort();

	/* the vocabulary's own bytes as text: the file is valid UTF-8 */
	fb_encoding_init(&enc);
	st = fb_tokenizer_encode(tok, (const char *) data, size, 1, NULL, &enc, &err);
	if (st == FB_OK)
	{
		for (size_t i = 0; i < enc.n; i++)
			if (enc.ids[i] < 0 || (size_t) enc.ids[i] >= n || enc.start[i] > enc.end[i])
				abort();
	}
	else if (st != FB_ERR_CORRUPT)	/* no [CLS], [SEP] or [UNK] */
		abort();
	fb_encoding_free(&enc);
	fb_tokenizer_free(tok);
	return 0;
}

/*
 * vocab.c — vocab.txt parsing and token lookup.
 *
 * The file format follows Hugging Face `tokenizers` (WordPiece::read_file):
 * the whole file must be UTF-8; lines end at '\n'; each line loses its
 * trailing whitespace (Rust str::trim_end, so "\r", spaces, U+3000 ...);
 * the line number is the id; a repeated token maps to its last line.
 * Empty lines are tokens too (the empty string).
 */
#include <stdlib.h>
#include <string.h>

#include "fb_unicode.h"
#include "fb_vocab.h"

/* Length of line[0..n) without trailing White_Space characters.  The line
 * is valid UTF-8, so continuation bytes are walked back over safely. */
static size_t
trim_end(const char *line, size_t n)
{
	while (n > 0)
	{
		size_t		start = n - 1;
		int32_t		cp;

		while (start > 0 && ((unsigned char) line[start] & 0xC0) == 0x80)
			start--;
		if (fb_utf8_decode((const unsigned char *) line + start, n - start, &cp) != n - start ||
			!fb_uc_is_whitespace(cp))
			break;
		n = start;
	}
	return n;
}

void
fb_vocab_free(fb_vocab *v)
{
	if (v == NULL)
		return;
	free(v->blob);
	free(v->off);
	free(v->len);
	free(v->shadowed);
	free(v->slots);
	memset(v, 0, sizeof(*v));
}

int32_t
fb_vocab_find_hashed(const fb_vocab *v, uint64_t h, const char *prefix,
					 size_t plen, const char *s, size_t n)
{
	size_t		i;

	if (v->slots == NULL || plen + n > v->max_len)
		return -1;
	for (i = (size_t) h & v->mask;; i = (i + 1) & v->mask)
	{
		const fb_vocab_slot *sl = &v->slots[i];
		const char *tok;

		if (sl->id < 0)
			return -1;
		if (sl->hash != h || sl->len != plen + n)
			continue;
		tok = v->blob + v->off[sl->id];
		if ((plen == 0 || memcmp(tok, prefix, plen) == 0) &&
			memcmp(tok + plen, s, n) == 0)
			return sl->id;
	}
}

fb_status
fb_vocab_parse(fb_vocab *v, const char *data, size_t len, const char *name,
			   fb_error *err)
{
	const unsigned char *u = (const unsigned char *) data;
	size_t		lines = 0;
	size_t		pos;
	size_t		nslots;
	size_t		bytes;
	size_t		id;

	memset(v, 0, sizeof(*v));
	if (len > FB_VOCAB_MAX_BYTES)
		return fb_fail(err, FB_ERR_CORRUPT,
					   "vocabulary \"%s\" is %zu bytes, over the limit of %u bytes",
					   name, len, (unsigned) FB_VOCAB_MAX_BYTES);

	/* Validate UTF-8 and count the lines. */
	for (pos = 0; pos < len;)
	{
		int32_t		cp;
		size_t		k = fb_utf8_decode(u + pos, len - pos, &cp);

		if (k == 0)
		{
			size_t		line = 1;

			for (size_t i = 0; i < pos; i++)
				line += (data[i] == '\n');
			return fb_fail(err, FB_ERR_CORRUPT,
						   "vocabulary \"%s\": invalid UTF-8 at line %zu (byte offset %zu)",
						   name, line, pos);
		}
		if (cp == '\n')
			lines++;
		pos += k;
	}
	if (len > 0 && data[len - 1] != '\n')
		lines++;				/* last line without a newline */
	if (lines == 0)
		return fb_fail(err, FB_ERR_CORRUPT, "vocabulary \"%s\" is empty", name);
	if (lines > FB_VOCAB_MAX_TOKENS)
		return fb_fail(err, FB_ERR_CORRUPT,
					   "vocabulary \"%s\" has %zu tokens, over the limit of %d",
					   name, lines, FB_VOCAB_MAX_TOKENS);

	/* Table at most half full: the smallest power of 2 >= 2 * lines. */
	for (nslots = 16; nslots < 2 * lines; nslots *= 2)
		;
	if (!fb_add_size(len, lines, &bytes))
		return fb_fail(err, FB_ERR_NOMEM, "vocabulary \"%s\" is too large", name);
	v->blob = malloc(bytes + 1);
	v->off = calloc(lines, sizeof(uint32_t));
	v->len = calloc(lines, sizeof(uint32_t));
	v->shadowed = calloc(lines, sizeof(bool));
	v->slots = malloc(nslots * sizeof(fb_vocab_slot));
	if (v->blob == NULL || v->off == NULL || v->len == NULL ||
		v->shadowed == NULL || v->slots == NULL)
	{
		fb_vocab_free(v);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory loading vocabulary \"%s\"", name);
	}
	for (size_t i = 0; i < nslots; i++)
		v->slots[i].id = -1;
	v->mask = nslots - 1;
	v->n = lines;

	bytes = 0;
	pos = 0;
	for (id = 0; id < lines; id++)
	{
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t		end = nl ? (size_t) (nl - data) : len;
		size_t		n = trim_end(data + pos, end - pos);
		uint64_t	h;
		size_t		i;

		if (n > FB_VOCAB_MAX_TOKEN_BYTES)
		{
			fb_vocab_free(v);
			return fb_fail(err, FB_ERR_CORRUPT,
						   "vocabulary \"%s\": token at line %zu is %zu bytes, over the limit of %d",
						   name, id + 1, n, FB_VOCAB_MAX_TOKEN_BYTES);
		}
		memcpy(v->blob + bytes, data + pos, n);
		v->blob[bytes + n] = '\0';
		v->off[id] = (uint32_t) bytes;
		v->len[id] = (uint32_t) n;
		if (n > v->max_len)
			v->max_len = n;

		h = fb_vocab_hash_more(FB_VOCAB_HASH_INIT, data + pos, n);
		for (i = (size_t) h & v->mask;; i = (i + 1) & v->mask)
		{
			fb_vocab_slot *sl = &v->slots[i];

			if (sl->id < 0)
			{
				sl->hash = h;
				sl->id = (int32_t) id;
				sl->len = (uint32_t) n;
				break;
			}
			if (sl->hash == h && sl->len == n &&
				memcmp(v->blob + v->off[sl->id], data + pos, n) == 0)
			{
				/* repeated token: the later line wins */
				v->shadowed[sl->id] = true;
				sl->id = (int32_t) id;
				break;
			}
		}
		bytes += n + 1;
		pos = end + 1;
	}
	return FB_OK;
}

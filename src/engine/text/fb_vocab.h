/*
 * fb_vocab.h — WordPiece vocabulary: vocab.txt parsed like Hugging Face
 * `tokenizers` (WordPiece::read_file) and a hash map for lookups.
 * Not part of the public API.
 */
#ifndef FB_VOCAB_H
#define FB_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fb_internal.h"

/* One slot of the open-addressing table: the token's 64-bit hash, id
 * (-1 = empty slot) and length. */
typedef struct fb_vocab_slot
{
	uint64_t	hash;
	int32_t		id;
	uint32_t	len;			/* token length, bytes */
} fb_vocab_slot;

typedef struct fb_vocab
{
	char	   *blob;			/* every token, NUL-terminated, by id */
	uint32_t   *off;			/* per id: offset of its token in blob */
	uint32_t   *len;			/* per id: token length in bytes */
	bool	   *shadowed;		/* per id: a later line has the same token */
	size_t		n;				/* ids (= lines of the file) */
	fb_vocab_slot *slots;
	size_t		mask;			/* number of slots - 1 (a power of 2 - 1) */
	size_t		max_len;		/* longest token, bytes */
} fb_vocab;

/*
 * Parses a vocabulary held in memory: one token per '\n'-terminated line
 * (the last line may lack it), trailing whitespace removed from each line
 * (so CRLF files work), id = 0-based line number.  When a token appears on
 * several lines the last one wins (as in Hugging Face); the earlier ids
 * stay valid ids with no token text.  name is used in error messages.
 */
fb_status	fb_vocab_parse(fb_vocab *v, const char *data, size_t len,
						   const char *name, fb_error *err);
void		fb_vocab_free(fb_vocab *v);

/* FNV-1a, 64-bit: the vocabulary's hash; fb_vocab_hash_more continues a
 * hash over more bytes (used for "##" + piece without copying). */
#define FB_VOCAB_HASH_INIT UINT64_C(0xcbf29ce484222325)

static inline uint64_t
fb_vocab_hash_more(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		h ^= (unsigned char) s[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* Id of the token prefix + s (prefix may be NULL) whose hash is h; -1 when
 * absent. */
int32_t		fb_vocab_find_hashed(const fb_vocab *v, uint64_t h,
								 const char *prefix, size_t plen,
								 const char *s, size_t n);

static inline int32_t
fb_vocab_find(const fb_vocab *v, const char *s, size_t n)
{
	return fb_vocab_find_hashed(v, fb_vocab_hash_more(FB_VOCAB_HASH_INIT, s, n),
								NULL, 0, s, n);
}

#endif

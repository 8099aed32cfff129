/*
 * tokenizer.c — BERT tokenization with the semantics of Hugging Face
 * BertTokenizerFast (tokenizers: BertNormalizer + BertPreTokenizer +
 * WordPiece + the [CLS] $A [SEP] template), offsets included.
 *
 * Pipeline, per segment of the input between special tokens ("[CLS]",
 * "[SEP]", ... found in the raw text, as Hugging Face's added-token split
 * does), one code point at a time, so memory does not grow with the text:
 *
 *   clean_text      drop U+0000, U+FFFD and Cc/Cf/Co/Cs except \t\n\r;
 *                   whitespace -> ' '
 *   chinese chars   ' ' before and after every CJK ideograph
 *   strip_accents   NFD (with canonical reordering), then drop Mn
 *   lowercase       full lowercase mapping per code point
 *   pre-tokenizer   split on whitespace, isolate punctuation
 *   WordPiece       greedy longest match, "##" continuations; a word of
 *                   more than 100 code points, or with a piece that
 *                   matches nothing, is one [UNK]
 *
 * Offsets.  Hugging Face keeps, for every normalized code point, the span
 * of the original text it comes from, and a token's offsets are the start
 * of its first code point's span and the end of its last one's.  Every
 * step above maps one original code point to one, none or several
 * normalized ones, so the span is always one original code point, kept
 * here as its index ("align").  Code points a step inserts (the spaces
 * around CJK, the 2nd and later code points of an NFD or lowercase
 * expansion) take the span of the code point consumed last by that step,
 * or the empty span at the segment start when none was.  NFD reorders
 * combining marks but Hugging Face's alignment does not follow them: the
 * k-th code point that starts a decomposition gets the span of the k-th
 * input code point.  This file reproduces exactly that (align -1 = empty
 * span at the segment start).
 */
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "fb_internal.h"
#include "fb_unicode.h"
#include "fb_vocab.h"

#define N_SPECIAL 5

struct fb_tokenizer
{
	fb_vocab	vocab;
	bool		clean;
	bool		cjk;
	bool		strip;
	bool		lower;
	fb_special_ids special;
	/* special tokens present in the vocabulary, matched in the raw text */
	int			n_match;
	struct
	{
		const char *text;
		size_t		len;
		int32_t		id;
	}			match[N_SPECIAL];
	char	   *name;			/* vocabulary file, for messages */
};

static const char *const special_text[N_SPECIAL] = {
	"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"
};

/* ------------------------------------------------------------------------
 * Options and loading
 * ------------------------------------------------------------------------ */

fb_tokenizer_options
fb_tokenizer_default_options(void)
{
	fb_tokenizer_options o;

	o.do_lower_case = 1;
	o.strip_accents = -1;
	o.tokenize_chinese_chars = 1;
	o.clean_text = 1;
	return o;
}

fb_status
fb_tokenizer_load_mem(const char *data, size_t len, const char *name_for_errors,
					  const fb_tokenizer_options *opts, fb_tokenizer **out,
					  fb_error *err)
{
	fb_tokenizer_options o = opts ? *opts : fb_tokenizer_default_options();
	const char *name = name_for_errors ? name_for_errors : "(memory)";
	fb_tokenizer *tok;
	char		icu_err[160];
	fb_status	st;
	int32_t    *ids[N_SPECIAL];

	*out = NULL;
	if (data == NULL && len > 0)
		return fb_fail(err, FB_ERR_INVALID, "vocabulary \"%s\": no data", name);
	if (o.strip_accents < -1 || o.strip_accents > 1)
		return fb_fail(err, FB_ERR_INVALID,
					   "tokenizer option strip_accents must be -1, 0 or 1, not %d",
					   o.strip_accents);
	if (!fb_uc_init(icu_err, sizeof(icu_err)))
		return fb_fail(err, FB_ERR_UNSUPPORTED, "%s", icu_err);

	tok = calloc(1, sizeof(*tok));
	if (tok == NULL || (tok->name = strdup(name)) == NULL)
	{
		free(tok);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory loading vocabulary \"%s\"", name);
	}
	st = fb_vocab_parse(&tok->vocab, data ? data : "", len, name, err);
	if (st != FB_OK)
	{
		free(tok->name);
		free(tok);
		return st;
	}
	tok->clean = o.clean_text != 0;
	tok->cjk = o.tokenize_chinese_chars != 0;
	tok->lower = o.do_lower_case != 0;
	tok->strip = o.strip_accents < 0 ? tok->lower : o.strip_accents != 0;

	ids[0] = &tok->special.cls;
	ids[1] = &tok->special.sep;
	ids[2] = &tok->special.pad;
	ids[3] = &tok->special.unk;
	ids[4] = &tok->special.mask;
	for (int i = 0; i < N_SPECIAL; i++)
	{
		*ids[i] = fb_vocab_find(&tok->vocab, special_text[i], strlen(special_text[i]));
		if (*ids[i] >= 0)
		{
			tok->match[tok->n_match].text = special_text[i];
			tok->match[tok->n_match].len = strlen(special_text[i]);
			tok->match[tok->n_match].id = *ids[i];
			tok->n_match++;
		}
	}
	*out = tok;
	return FB_OK;
}

fb_status
fb_tokenizer_load(const char *vocab_path, const fb_tokenizer_options *opts,
				  fb_tokenizer **out, fb_error *err)
{
	char	   *data;
	size_t		len;
	fb_status	st;

	*out = NULL;
	st = fb_read_file(vocab_path, FB_VOCAB_MAX_BYTES, &data, &len, err);
	if (st != FB_OK)
		return st;
	st = fb_tokenizer_load_mem(data, len, vocab_path, opts, out, err);
	free(data);
	return st;
}

/* A boolean key of tokenizer_config.json; absent keeps *val. */
static fb_status
config_bool(json_object *root, const char *key, bool allow_null, int *val,
			const char *path, fb_error *err)
{
	json_object *v;

	if (!json_object_object_get_ex(root, key, &v))
		return FB_OK;
	if (v == NULL && allow_null)
	{
		*val = -1;
		return FB_OK;
	}
	if (v == NULL || !json_object_is_type(v, json_type_boolean))
		return fb_fail(err, FB_ERR_CORRUPT, "\"%s\": \"%s\" must be %s", path,
					   key, allow_null ? "true, false or null" : "true or false");
	*val = json_object_get_boolean(v) ? 1 : 0;
	return FB_OK;
}

/* Special-token names other than BERT's are not supported: the engine
 * matches and looks up the standard ones. */
static fb_status
config_special(json_object *root, const char *key, const char *expected,
			   const char *path, fb_error *err)
{
	json_object *v;
	json_object *content;
	const char *s;

	if (!json_object_object_get_ex(root, key, &v) || v == NULL)
		return FB_OK;
	if (json_object_is_type(v, json_type_object) &&
		json_object_object_get_ex(v, "content", &content))
		v = content;
	if (v == NULL || !json_object_is_type(v, json_type_string))
		return fb_fail(err, FB_ERR_CORRUPT, "\"%s\": \"%s\" must be a string",
					   path, key);
	s = json_object_get_string(v);
	if (strcmp(s, expected) != 0)
		return fb_fail(err, FB_ERR_UNSUPPORTED,
					   "\"%s\": %s \"%.64s\" is not supported (only \"%s\")",
					   path, key, s, expected);
	return FB_OK;
}

static fb_status
read_tokenizer_config(const char *path, fb_tokenizer_options *o, fb_error *err)
{
	static const struct
	{
		const char *key;
		const char *text;
	}			specials[] = {
		{"cls_token", "[CLS]"}, {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"},
		{"unk_token", "[UNK]"}, {"mask_token", "[MASK]"}
	};
	char	   *data;
	size_t		len;
	fb_status	st;
	json_tokener *jt;
	json_object *root;
	enum json_tokener_error jerr;

	st = fb_read_file(path, FB_CONFIG_MAX_BYTES, &data, &len, err);
	if (st != FB_OK)
		return st;
	jt = json_tokener_new();
	if (jt == NULL)
	{
		free(data);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory reading \"%s\"", path);
	}
	root = json_tokener_parse_ex(jt, data, (int) len);
	jerr = json_tokener_get_error(jt);
	if (root != NULL && jerr == json_tokener_success &&
		json_tokener_get_parse_end(jt) < len)
	{
		/* only whitespace may follow the object */
		for (size_t i = json_tokener_get_parse_end(jt); i < len; i++)
			if (data[i] != ' ' && data[i] != '\t' && data[i] != '\n' && data[i] != '\r')
			{
				jerr = json_tokener_error_parse_unexpected;
				break;
			}
	}
	json_tokener_free(jt);
	free(data);
	if (root == NULL || jerr != json_tokener_success)
	{
		json_object_put(root);
		return fb_fail(err, FB_ERR_CORRUPT, "\"%s\" is not valid JSON: %s", path,
					   jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "incomplete");
	}
	if (!json_object_is_type(root, json_type_object))
	{
		json_object_put(root);
		return fb_fail(err, FB_ERR_CORRUPT, "\"%s\" is not a JSON object", path);
	}
	st = config_bool(root, "do_lower_case", false, &o->do_lower_case, path, err);
	if (st == FB_OK)
		st = config_bool(root, "strip_accents", true, &o->strip_accents, path, err);
	if (st == FB_OK)
		st = config_bool(root, "tokenize_chinese_chars", false,
						 &o->tokenize_chinese_chars, path, err);
	for (size_t i = 0; st == FB_OK && i < sizeof(specials) / sizeof(specials[0]); i++)
		st = config_special(root, specials[i].key, specials[i].text, path, err);
	json_object_put(root);
	return st;
}

fb_status
fb_tokenizer_open(const char *dir, fb_tokenizer **out, fb_error *err)
{
	fb_tokenizer_options o = fb_tokenizer_default_options();
	char	   *vocab_path;
	char	   *config_path;
	fb_status	st = FB_OK;

	*out = NULL;
	vocab_path = fb_path_join(dir, "vocab.txt");
	config_path = fb_path_join(dir, "tokenizer_config.json");
	if (vocab_path == NULL || config_path == NULL)
	{
		free(vocab_path);
		free(config_path);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory opening tokenizer in \"%s\"", dir);
	}
	if (fb_file_exists(config_path))
		st = read_tokenizer_config(config_path, &o, err);
	if (st == FB_OK)
		st = fb_tokenizer_load(vocab_path, &o, out, err);
	free(vocab_path);
	free(config_path);
	return st;
}

void
fb_tokenizer_free(fb_tokenizer *tok)
{
	if (tok == NULL)
		return;
	fb_vocab_free(&tok->vocab);
	free(tok->name);
	free(tok);
}

size_t
fb_tokenizer_vocab_size(const fb_tokenizer *tok)
{
	return tok ? tok->vocab.n : 0;
}

const char *
fb_tokenizer_id_to_token(const fb_tokenizer *tok, int32_t id)
{
	if (tok == NULL || id < 0 || (size_t) id >= tok->vocab.n ||
		tok->vocab.shadowed[id])
		return NULL;
	return tok->vocab.blob + tok->vocab.off[id];
}

int32_t
fb_tokenizer_token_to_id(const fb_tokenizer *tok, const char *token)
{
	if (tok == NULL || token == NULL)
		return -1;
	return fb_vocab_find(&tok->vocab, token, strlen(token));
}

fb_special_ids
fb_tokenizer_special_ids(const fb_tokenizer *tok)
{
	fb_special_ids none = {-1, -1, -1, -1, -1};

	return tok ? tok->special : none;
}

/* ------------------------------------------------------------------------
 * Encodings
 * ------------------------------------------------------------------------ */

void
fb_encoding_init(fb_encoding *enc)
{
	memset(enc, 0, sizeof(*enc));
}

void
fb_encoding_free(fb_encoding *enc)
{
	if (enc == NULL)
		return;
	free(enc->ids);
	free(enc->start);
	free(enc->end);
	memset(enc, 0, sizeof(*enc));
}

static bool
enc_push(fb_encoding *enc, int32_t id, int32_t start, int32_t end)
{
	if (enc->n == enc->cap)
	{
		size_t		cap = enc->cap ? enc->cap * 2 : 64;
		size_t		bytes;
		int32_t    *p;

		if (!fb_mul_size(cap, sizeof(int32_t), &bytes))
			return false;
		if ((p = realloc(enc->ids, bytes)) == NULL)
			return false;
		enc->ids = p;
		if ((p = realloc(enc->start, bytes)) == NULL)
			return false;
		enc->start = p;
		if ((p = realloc(enc->end, bytes)) == NULL)
			return false;
		enc->end = p;
		enc->cap = cap;
	}
	enc->ids[enc->n] = id;
	enc->start[enc->n] = start;
	enc->end[enc->n] = end;
	enc->n++;
	return true;
}

/* ------------------------------------------------------------------------
 * Encoding state
 * ------------------------------------------------------------------------ */

/* One code point of the NFD stage (see strip_push). */
typedef struct nfd_elem
{
	int32_t		cp;
	int32_t		src;			/* align of the input code point */
	uint8_t		ccc;
	bool		first;			/* first code point of its decomposition */
} nfd_elem;

typedef struct enc_state
{
	const fb_tokenizer *tok;
	fb_encoding *enc;
	fb_error   *err;
	fb_status	st;
	int32_t		seg;			/* char index where the segment starts */
	int32_t		prev;			/* align of the last cleaned code point */
	int32_t		last;			/* align of the last NFD-consumed one */

	/* NFD stage: an optional starter and the combining marks after it */
	nfd_elem   *run;
	size_t		run_n;
	size_t		run_cap;
	nfd_elem   *tmp;			/* scratch for sorting, run_cap entries */
	int32_t    *queue;			/* scratch: aligns in input order */

	/* the current word of the pre-tokenizer (first FB_WORDPIECE_MAX_CHARS
	 * code points only; longer words become [UNK]) */
	size_t		wn;				/* code points in the word */
	int32_t		wfirst;			/* start offset of the word */
	int32_t		wlast;			/* end offset of the word */
	char		wbytes[FB_WORDPIECE_MAX_CHARS * 4];
	uint16_t	wcb[FB_WORDPIECE_MAX_CHARS + 1];	/* byte offset per char */
	int32_t		wstart[FB_WORDPIECE_MAX_CHARS];
	int32_t		wend[FB_WORDPIECE_MAX_CHARS];
} enc_state;

static void
state_nomem(enc_state *s)
{
	if (s->st == FB_OK)
		s->st = fb_fail(s->err, FB_ERR_NOMEM, "out of memory tokenizing text");
}

static void
push_token(enc_state *s, int32_t id, int32_t start, int32_t end)
{
	if (s->st == FB_OK && !enc_push(s->enc, id, start, end))
		state_nomem(s);
}

static void
push_unk(enc_state *s, int32_t start, int32_t end)
{
	if (s->tok->special.unk < 0)
	{
		if (s->st == FB_OK)
			s->st = fb_fail(s->err, FB_ERR_CORRUPT,
							"vocabulary \"%s\" has no [UNK] token", s->tok->name);
		return;
	}
	push_token(s, s->tok->special.unk, start, end);
}

/* ------------------------------------------------------------------------
 * WordPiece
 * ------------------------------------------------------------------------ */

static void
wordpiece(enc_state *s)
{
	const fb_vocab *v = &s->tok->vocab;
	const size_t n = s->wn;
	const size_t mark = s->enc->n;
	const uint64_t hash_cont = fb_vocab_hash_more(FB_VOCAB_HASH_INIT, "##", 2);
	uint64_t	h[FB_WORDPIECE_MAX_CHARS + 1];
	size_t		start = 0;

	while (start < n)
	{
		const char *base = s->wbytes + s->wcb[start];
		size_t		plen = start == 0 ? 0 : 2;
		int32_t		id = -1;
		size_t		end;

		/* hashes of (prefix +) every piece that starts here */
		h[start] = start == 0 ? FB_VOCAB_HASH_INIT : hash_cont;
		for (end = start + 1; end <= n; end++)
			h[end] = fb_vocab_hash_more(h[end - 1], s->wbytes + s->wcb[end - 1],
										s->wcb[end] - s->wcb[end - 1]);
		/* longest first; pieces longer than any token cannot match */
		for (end = n; end > start; end--)
		{
			size_t		blen = (size_t) (s->wcb[end] - s->wcb[start]);

			if (plen + blen > v->max_len)
				continue;
			id = fb_vocab_find_hashed(v, h[end], "##", plen, base, blen);
			if (id >= 0)
				break;
		}
		if (id < 0)
		{
			/* a piece matches nothing: the whole word is [UNK] */
			s->enc->n = mark;
			push_unk(s, s->wfirst, s->wlast);
			return;
		}
		push_token(s, id, s->wstart[start], s->wend[end - 1]);
		start = end;
	}
}

static void
word_end(enc_state *s)
{
	if (s->wn == 0)
		return;
	if (s->wn > FB_WORDPIECE_MAX_CHARS)
		push_unk(s, s->wfirst, s->wlast);
	else
		wordpiece(s);
	s->wn = 0;
}

static void
word_add(enc_state *s, int32_t cp, int32_t align)
{
	int32_t		start = align >= 0 ? align : s->seg;
	int32_t		end = align >= 0 ? align + 1 : s->seg;

	if (s->wn == 0)
	{
		s->wfirst = start;
		s->wcb[0] = 0;
	}
	s->wlast = end;
	if (s->wn < FB_WORDPIECE_MAX_CHARS)
	{
		size_t		k = fb_utf8_encode(cp, s->wbytes + s->wcb[s->wn]);

		s->wstart[s->wn] = start;
		s->wend[s->wn] = end;
		s->wcb[s->wn + 1] = (uint16_t) (s->wcb[s->wn] + k);
	}
	if (s->wn <= FB_WORDPIECE_MAX_CHARS)
		s->wn++;				/* stops counting past the limit */
}

/* ------------------------------------------------------------------------
 * Normalizer stages
 * ------------------------------------------------------------------------ */

/* Pre-tokenizer: whitespace ends a word, punctuation is a word of its own. */
static void
pretokenize(enc_state *s, int32_t cp, int32_t align)
{
	if (fb_uc_is_whitespace(cp))
		word_end(s);
	else if (fb_uc_is_punct(cp))
	{
		word_end(s);
		word_add(s, cp, align);
		word_end(s);
	}
	else
		word_add(s, cp, align);
}

/* After NFD: drop Mn (strip_accents), then lowercase. */
static void
after_strip(enc_state *s, int32_t cp, int32_t align)
{
	if (s->tok->strip && fb_uc_is_mn(cp))
		return;
	if (s->tok->lower)
	{
		int32_t		lc[FB_UC_MAX_LOWER];
		int			n = fb_uc_lower(cp, lc);

		/* expansions keep the span of the code point they come from */
		for (int i = 0; i < n; i++)
			pretokenize(s, lc[i], align);
	}
	else
		pretokenize(s, cp, align);
}

/* Stable sort of run[0..n) by combining class. */
static void
sort_by_ccc(nfd_elem *run, size_t n, nfd_elem *tmp)
{
	if (n < 32)
	{
		for (size_t i = 1; i < n; i++)
		{
			nfd_elem	e = run[i];
			size_t		j = i;

			while (j > 0 && run[j - 1].ccc > e.ccc)
			{
				run[j] = run[j - 1];
				j--;
			}
			run[j] = e;
		}
	}
	else
	{
		/* counting sort: linear for the long runs a hostile text makes */
		size_t		count[257] = {0};

		for (size_t i = 0; i < n; i++)
			count[run[i].ccc + 1]++;
		for (int c = 1; c < 257; c++)
			count[c] += count[c - 1];
		for (size_t i = 0; i < n; i++)
			tmp[count[run[i].ccc]++] = run[i];
		memcpy(run, tmp, n * sizeof(nfd_elem));
	}
}

/* Reorders the pending combining marks and passes everything on. */
static void
strip_flush(enc_state *s)
{
	size_t		from = (s->run_n > 0 && s->run[0].ccc == 0) ? 1 : 0;
	size_t		nq = 0;
	size_t		qi = 0;

	if (s->run_n == 0)
		return;
	for (size_t i = 0; i < s->run_n; i++)
		if (s->run[i].first)
			s->queue[nq++] = s->run[i].src;
	if (s->run_n - from > 1)
		sort_by_ccc(s->run + from, s->run_n - from, s->tmp);
	for (size_t i = 0; i < s->run_n; i++)
	{
		int32_t		a;

		if (s->run[i].first)
			s->last = a = s->queue[qi++];
		else
			a = s->last;
		after_strip(s, s->run[i].cp, a);
	}
	s->run_n = 0;
}

static bool
strip_reserve(enc_state *s, size_t need)
{
	size_t		cap;
	void	   *p;

	if (need <= s->run_cap)
		return true;
	cap = s->run_cap ? s->run_cap : 16;
	while (cap < need)
	{
		if (!fb_mul_size(cap, 2, &cap))
			return false;
	}
	if ((p = realloc(s->run, cap * sizeof(nfd_elem))) == NULL)
		return false;
	s->run = p;
	if ((p = realloc(s->tmp, cap * sizeof(nfd_elem))) == NULL)
		return false;
	s->tmp = p;
	if ((p = realloc(s->queue, cap * sizeof(int32_t))) == NULL)
		return false;
	s->queue = p;
	s->run_cap = cap;
	return true;
}

/* NFD of one code point; a starter (class 0) releases what is pending. */
static void
strip_push(enc_state *s, int32_t cp, int32_t align)
{
	int32_t		d[FB_UC_MAX_DECOMP];
	int			n = fb_uc_decompose(cp, d);

	for (int i = 0; i < n; i++)
	{
		int			ccc = fb_uc_ccc(d[i]);

		if (ccc == 0)
		{
			strip_flush(s);
			if (i == 0)
			{
				/* fast path: a starter that begins its decomposition */
				s->last = align;
				if (n == 1)
				{
					after_strip(s, d[i], align);
					return;
				}
			}
		}
		if (s->run_n >= FB_TOKENIZER_MAX_MARK_RUN)
		{
			if (s->st == FB_OK)
				s->st = fb_fail(s->err, FB_ERR_LIMIT,
								"text has more than %u combining marks in a row",
								FB_TOKENIZER_MAX_MARK_RUN);
			return;
		}
		if (!strip_reserve(s, s->run_n + 1))
		{
			state_nomem(s);
			return;
		}
		s->run[s->run_n].cp = d[i];
		s->run[s->run_n].src = align;
		s->run[s->run_n].ccc = (uint8_t) ccc;
		s->run[s->run_n].first = (i == 0);
		s->run_n++;
	}
}

/* The code point after clean_text and the CJK spaces. */
static void
normalized(enc_state *s, int32_t cp, int32_t align)
{
	if (s->tok->strip)
		strip_push(s, cp, align);
	else
		after_strip(s, cp, align);
}

/* One code point of the original text. */
static void
feed(enc_state *s, int32_t cp, int32_t index)
{
	if (s->tok->clean)
	{
		switch (fb_uc_clean_class(cp))
		{
			case FB_UC_REMOVE:
				return;
			case FB_UC_SPACE:
				cp = ' ';
				break;
			case FB_UC_KEEP:
				break;
		}
	}
	if (s->tok->cjk && fb_uc_is_cjk(cp))
	{
		normalized(s, ' ', s->prev);
		normalized(s, cp, index);
		normalized(s, ' ', index);
	}
	else
		normalized(s, cp, index);
	s->prev = index;
}

static void
segment_begin(enc_state *s, int32_t index)
{
	s->seg = index;
	s->prev = -1;
	s->last = -1;
}

static void
segment_end(enc_state *s)
{
	strip_flush(s);
	word_end(s);
}

/* ASCII letters and digits: neither space, punctuation nor control. */
static inline bool
ascii_word_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Length of the special token that starts at text[pos], 0 if none
 * (leftmost-longest, like the added-vocabulary split). */
static size_t
match_special(const fb_tokenizer *tok, const char *text, size_t len,
			  size_t pos, int32_t *id)
{
	size_t		best = 0;

	for (int i = 0; i < tok->n_match; i++)
	{
		size_t		n = tok->match[i].len;

		if (n > best && n <= len - pos && memcmp(text + pos, tok->match[i].text, n) == 0)
		{
			best = n;
			*id = tok->match[i].id;
		}
	}
	return best;
}

fb_status
fb_tokenizer_encode(const fb_tokenizer *tok, const char *text, size_t len,
					int add_special, const fb_run_ctl *ctl, fb_encoding *enc,
					fb_error *err)
{
	const unsigned char *u = (const unsigned char *) text;
	enc_state  *s;
	size_t		pos = 0;
	int32_t		index = 0;
	uint32_t	poll = 0;
	fb_status	st;

	if (tok == NULL || enc == NULL || (text == NULL && len > 0))
		return fb_fail(err, FB_ERR_INVALID, "fb_tokenizer_encode: missing argument");
	enc->n = 0;
	if (len > FB_TOKENIZER_MAX_TEXT_BYTES)
		return fb_fail(err, FB_ERR_LIMIT,
					   "text of %zu bytes is over the tokenizer's limit of %u bytes",
					   len, FB_TOKENIZER_MAX_TEXT_BYTES);
	if (add_special && (tok->special.cls < 0 || tok->special.sep < 0))
		return fb_fail(err, FB_ERR_CORRUPT, "vocabulary \"%s\" has no %s token",
					   tok->name, tok->special.cls < 0 ? "[CLS]" : "[SEP]");

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory tokenizing text");
	s->tok = tok;
	s->enc = enc;
	s->err = err;
	s->st = FB_OK;
	segment_begin(s, 0);

	if (add_special)
		push_token(s, tok->special.cls, 0, 0);
	while (pos < len && s->st == FB_OK)
	{
		int32_t		cp;
		int32_t		id;
		size_t		k;

		if (++poll >= FB_TOKENIZER_POLL_CHARS)
		{
			poll = 0;
			if (fb_interrupted(ctl))
			{
				s->st = fb_fail(err, FB_ERR_INTERRUPTED, "tokenization interrupted");
				break;
			}
		}
		if (u[pos] == '[' && tok->n_match > 0 &&
			(k = match_special(tok, text, len, pos, &id)) > 0)
		{
			segment_end(s);
			push_token(s, id, index, index + (int32_t) k);
			pos += k;
			index += (int32_t) k;	/* special tokens are ASCII */
			segment_begin(s, index);
			continue;
		}
		if (s->run_n == 0 && ascii_word_char(u[pos]))
		{
			/*
			 * Fast path for ASCII letters and digits, which every stage
			 * passes through unchanged except lowercasing: the same as
			 * feed() with nothing pending in the NFD stage.
			 */
			if (s->wn > FB_WORDPIECE_MAX_CHARS)
			{
				/* inside a word already too long: only its end matters */
				size_t		stop = len - pos;

				if (stop > FB_TOKENIZER_POLL_CHARS - poll)
					stop = FB_TOKENIZER_POLL_CHARS - poll;
				k = 1;
				while (k < stop && ascii_word_char(u[pos + k]))
					k++;
				poll += (uint32_t) (k - 1);
			}
			else
			{
				int32_t		c = u[pos];

				if (tok->lower && c >= 'A' && c <= 'Z')
					c += 'a' - 'A';
				word_add(s, c, index);
				k = 1;
			}
			pos += k;
			index += (int32_t) k;
			s->prev = s->last = index - 1;
			s->wlast = index;
			continue;
		}
		k = fb_utf8_decode(u + pos, len - pos, &cp);
		if (k == 0)
		{
			s->st = fb_fail(err, FB_ERR_INVALID,
							"text is not valid UTF-8 (byte offset %zu)", pos);
			break;
		}
		feed(s, cp, index);
		pos += k;
		index++;
	}
	if (s->st == FB_OK)
		segment_end(s);
	if (add_special)
		push_token(s, tok->special.sep, 0, 0);

	st = s->st;
	if (st != FB_OK)
		enc->n = 0;
	free(s->run);
	free(s->tmp);
	free(s->queue);
	free(s);
	return st;
}

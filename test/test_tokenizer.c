/*
 * test_tokenizer.c — the tokenizer against Hugging Face BertTokenizerFast.
 *
 * Golden data (test/data/tokenizer/, made by tools/gen_tokenizer_golden.py
 * from transformers/tokenizers; no Python needed here):
 *  - >10k real lines from the shared Chinese datasets, uncased and cased,
 *    compared by FNV-1a hash of the canonical output "id:start:end ...",
 *    the first 200 in full;
 *  - an adversarial set (emoji, ZWJ, controls, CJK extension planes,
 *    combining marks, casing traps, 100/101-character words, special
 *    tokens in the text, seeded random Unicode) in full, plus four more
 *    option combinations by hash;
 *  - the original BERT goldens with a small English vocabulary.
 * Then: vocabulary parsing, tokenizer_config.json, invalid UTF-8,
 * interruption, and the 1 MB single word under 50 ms.
 *
 * Run from the repository root (test/run_unit.sh does).
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "finbert.h"
#include "fb_limits.h"
#include "fb_test.h"

#define DATA "test/data/tokenizer/"
#define CHINESE_VOCAB "test/data/bert-base-chinese-vocab.txt"

/* ------------------------------------------------------------------------
 * helpers
 * ------------------------------------------------------------------------ */

typedef struct strbuf
{
	char	   *s;
	size_t		n;
	size_t		cap;
} strbuf;

static void
sb_reserve(strbuf *b, size_t more)
{
	if (b->n + more + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 256;

		while (cap < b->n + more + 1)
			cap *= 2;
		b->s = realloc(b->s, cap);
		if (b->s == NULL)
		{
			fprintf(stderr, "out of memory\n");
			exit(2);
		}
		b->cap = cap;
	}
}

static void
sb_printf(strbuf *b, const char *fmt, int a, int c, int d)
{
	int			k = snprintf(NULL, 0, fmt, a, c, d);

	sb_reserve(b, (size_t) k);
	snprintf(b->s + b->n, (size_t) k + 1, fmt, a, c, d);
	b->n += (size_t) k;
}

/* "id:start:end id:start:end ..." */
static const char *
canonical(const fb_encoding *e, strbuf *b)
{
	b->n = 0;
	sb_reserve(b, 0);
	b->s[0] = '\0';
	for (size_t i = 0; i < e->n; i++)
		sb_printf(b, i ? " %d:%d:%d" : "%d:%d:%d", e->ids[i], e->start[i], e->end[i]);
	return b->s;
}

static uint64_t
fnv1a64(const char *s)
{
	uint64_t	h = UINT64_C(0xcbf29ce484222325);

	for (; *s; s++)
	{
		h ^= (unsigned char) *s;
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* Splits a file into lines (modified in place); returns the count. */
static size_t
split_lines(char *buf, char ***out)
{
	size_t		n = 0,
				cap = 1024;
	char	  **lines = malloc(cap * sizeof(char *));
	char	   *p = buf;

	while (*p)
	{
		char	   *nl = strchr(p, '\n');

		if (n == cap)
			lines = realloc(lines, (cap *= 2) * sizeof(char *));
		lines[n++] = p;
		if (nl == NULL)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	*out = lines;
	return n;
}

typedef struct text_set
{
	size_t		n;
	char	  **text;
	size_t	   *len;
	char	   *raw;
	char	  **raw_lines;
} text_set;

/* A file of JSON strings, one per line. */
static bool
load_texts(const char *path, text_set *ts)
{
	memset(ts, 0, sizeof(*ts));
	ts->raw = fbt_read_file(path, NULL);
	if (ts->raw == NULL)
		return false;
	ts->n = split_lines(ts->raw, &ts->raw_lines);
	ts->text = calloc(ts->n, sizeof(char *));
	ts->len = calloc(ts->n, sizeof(size_t));
	for (size_t i = 0; i < ts->n; i++)
	{
		json_object *j = json_tokener_parse(ts->raw_lines[i]);

		if (j == NULL || !json_object_is_type(j, json_type_string))
			return false;
		ts->len[i] = (size_t) json_object_get_string_len(j);
		ts->text[i] = malloc(ts->len[i] + 1);
		memcpy(ts->text[i], json_object_get_string(j), ts->len[i] + 1);
		json_object_put(j);
	}
	return true;
}

static void
free_texts(text_set *ts)
{
	for (size_t i = 0; i < ts->n; i++)
		free(ts->text[i]);
	free(ts->text);
	free(ts->len);
	free(ts->raw_lines);
	free(ts->raw);
}

static fb_tokenizer *
load_with(const char *vocab, int lower, int strip, int cjk, int clean)
{
	fb_tokenizer_options o = fb_tokenizer_default_options();
	fb_tokenizer *tok = NULL;
	fb_error	err;
	fb_status	st;

	o.do_lower_case = lower;
	o.strip_accents = strip;
	o.tokenize_chinese_chars = cjk;
	o.clean_text = clean;
	st = fb_tokenizer_load(vocab, &o, &tok, &err);
	CHECK_STATUS(st, err);
	if (st != FB_OK)
	{
		fprintf(stderr, "cannot continue without %s\n", vocab);
		exit(fbt_finish("tokenizer"));
	}
	return tok;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
report_mismatch(const char *what, const char *mode, size_t line,
				const char *raw_json, const char *expected, const char *got)
{
	fprintf(stderr, "first mismatch in %s (%s), line %zu:\n  text:     %s\n"
			"  expected: %s\n  got:      %s\n",
			what, mode, line + 1, raw_json, expected ? expected : "(hash only)", got);
}

/* ------------------------------------------------------------------------
 * parity with Hugging Face
 * ------------------------------------------------------------------------ */

static void
test_real_lines(fb_tokenizer *unc, fb_tokenizer *cas)
{
	text_set	ts;
	char	   *hraw = fbt_read_file(DATA "real_hashes.txt", NULL);
	char	   *eraw = fbt_read_file(DATA "real_expected.txt", NULL);
	char	  **hashes = NULL,
			  **expected = NULL;
	size_t		nh,
				ne;
	size_t		bad[2] = {0, 0};
	fb_tokenizer *toks[2] = {unc, cas};
	const char *modes[2] = {"uncased", "cased"};
	fb_encoding enc;
	strbuf		b = {0};
	fb_error	err;
	bool		shown = false;

	CHECK(load_texts(DATA "real_lines.jsonl", &ts), "cannot read real_lines.jsonl");
	CHECK(hraw != NULL && eraw != NULL, "cannot read the real-line goldens");
	if (ts.n == 0 || hraw == NULL || eraw == NULL)
		return;
	nh = split_lines(hraw, &hashes);
	ne = split_lines(eraw, &expected);
	CHECK(nh == ts.n, "%zu hashes for %zu lines", nh, ts.n);
	CHECK(ts.n >= 10000, "only %zu real lines", ts.n);

	fb_encoding_init(&enc);
	for (size_t i = 0; i < ts.n && i < nh; i++)
	{
		for (int m = 0; m < 2; m++)
		{
			fb_status	st = fb_tokenizer_encode(toks[m], ts.text[i], ts.len[i], 1,
												 NULL, &enc, &err);
			const char *got = st == FB_OK ? canonical(&enc, &b) : err.msg;
			const char *exp = (2 * i + m < ne) ? expected[2 * i + m] : NULL;
			char		hex[17];

			snprintf(hex, sizeof(hex), "%016llx", (unsigned long long) fnv1a64(got));
			if (st != FB_OK || strncmp(hashes[i] + 17 * m, hex, 16) != 0 ||
				(exp != NULL && strcmp(exp, got) != 0))
			{
				bad[m]++;
				if (!shown)
					report_mismatch("real lines", modes[m], i, ts.raw_lines[i], exp, got);
				shown = true;
			}
		}
	}
	printf("real lines: %zu lines x 2 modes, mismatches: uncased %zu, cased %zu\n",
		   ts.n, bad[0], bad[1]);
	CHECK(bad[0] == 0 && bad[1] == 0, "%zu + %zu real lines differ from Hugging Face",
		  bad[0], bad[1]);
	fb_encoding_free(&enc);
	free(b.s);
	free(hashes);
	free(expected);
	free(hraw);
	free(eraw);
	free_texts(&ts);
}

static void
test_adversarial(fb_tokenizer *unc, fb_tokenizer *cas)
{
	text_set	ts;
	char	   *eraw = fbt_read_file(DATA "adversarial_expected.txt", NULL);
	char	   *oraw = fbt_read_file(DATA "adversarial_options_hashes.txt", NULL);
	char	  **expected = NULL,
			  **ohash = NULL;
	size_t		ne,
				no;
	fb_tokenizer *toks[6];
	const char *modes[6] = {"uncased", "cased", "lower_nostrip", "cased_strip",
	"nocjk", "noclean"};
	size_t		bad[6] = {0};
	fb_encoding enc;
	strbuf		b = {0};
	fb_error	err;
	bool		shown = false;

	CHECK(load_texts(DATA "adversarial.jsonl", &ts), "cannot read adversarial.jsonl");
	CHECK(eraw != NULL && oraw != NULL, "cannot read the adversarial goldens");
	if (ts.n == 0 || eraw == NULL || oraw == NULL)
		return;
	ne = split_lines(eraw, &expected);
	no = split_lines(oraw, &ohash);
	CHECK(ne == 2 * ts.n, "%zu expected lines for %zu texts", ne, ts.n);
	CHECK(no == ts.n + 1, "%zu option-hash lines for %zu texts", no, ts.n);

	toks[0] = unc;
	toks[1] = cas;
	toks[2] = load_with(CHINESE_VOCAB, 1, 0, 1, 1);
	toks[3] = load_with(CHINESE_VOCAB, 0, 1, 1, 1);
	toks[4] = load_with(CHINESE_VOCAB, 1, -1, 0, 1);
	toks[5] = load_with(CHINESE_VOCAB, 1, -1, 1, 0);

	fb_encoding_init(&enc);
	for (size_t i = 0; i < ts.n && 2 * i + 1 < ne && i + 1 < no; i++)
	{
		for (int m = 0; m < 6; m++)
		{
			fb_status	st = fb_tokenizer_encode(toks[m], ts.text[i], ts.len[i], 1,
												 NULL, &enc, &err);
			const char *got = st == FB_OK ? canonical(&enc, &b) : err.msg;
			bool		ok;

			if (m < 2)
				ok = st == FB_OK && strcmp(expected[2 * i + m], got) == 0;
			else
			{
				char		hex[17];

				snprintf(hex, sizeof(hex), "%016llx", (unsigned long long) fnv1a64(got));
				ok = st == FB_OK && strncmp(ohash[i + 1] + 17 * (m - 2), hex, 16) == 0;
			}
			if (!ok)
			{
				bad[m]++;
				if (!shown)
					report_mismatch("adversarial set", modes[m], i, ts.raw_lines[i],
									m < 2 ? expected[2 * i + m] : NULL, got);
				shown = true;
			}
		}
	}
	printf("adversarial: %zu texts, mismatches:", ts.n);
	for (int m = 0; m < 6; m++)
		printf(" %s %zu", modes[m], bad[m]);
	printf("\n");
	for (int m = 0; m < 6; m++)
		CHECK(bad[m] == 0, "%zu adversarial texts differ in mode %s", bad[m], modes[m]);
	for (int m = 2; m < 6; m++)
		fb_tokenizer_free(toks[m]);
	fb_encoding_free(&enc);
	free(b.s);
	free(expected);
	free(ohash);
	free(eraw);
	free(oraw);
	free_texts(&ts);
}

/* Tokens of text as a space-separated string of token texts. */
static const char *
token_texts(const fb_tokenizer *tok, const char *text, size_t len, strbuf *b)
{
	fb_encoding enc;
	fb_error	err;
	fb_status	st;

	fb_encoding_init(&enc);
	b->n = 0;
	sb_reserve(b, 0);
	b->s[0] = '\0';
	st = fb_tokenizer_encode(tok, text, len, 0, NULL, &enc, &err);
	CHECK_STATUS(st, err);
	for (size_t i = 0; st == FB_OK && i < enc.n; i++)
	{
		const char *t = fb_tokenizer_id_to_token(tok, enc.ids[i]);
		size_t		k = strlen(t ? t : "?");

		sb_reserve(b, k + 1);
		if (i)
			b->s[b->n++] = ' ';
		memcpy(b->s + b->n, t ? t : "?", k + 1);
		b->n += k;
	}
	fb_encoding_free(&enc);
	return b->s;
}

static void
test_english_goldens(void)
{
	fb_tokenizer *tok = load_with(DATA "english_vocab.txt", 1, -1, 1, 1);
	char	   *eraw = fbt_read_file(DATA "english_expected.txt", NULL);
	char	  **lines = NULL;
	size_t		n;
	strbuf		b = {0},
				c = {0};
	char		long_word[102];
	fb_encoding enc;
	fb_error	err;

	/* the original BERT tests, literally */
	CHECK(strcmp(token_texts(tok, "UNwant\u00E9d,running", strlen("UNwant\u00E9d,running"), &b),
				 "un ##want ##ed , runn ##ing") == 0, "got \"%s\"", b.s);
	CHECK(strcmp(token_texts(tok, " \tHeLLo!how  \n Are yoU?  ", 26, &b),
				 "hello ! [UNK] [UNK] [UNK] ?") == 0, "got \"%s\"", b.s);
	CHECK(strcmp(token_texts(tok, "ah\u535A\u63A8zz", strlen("ah\u535A\u63A8zz"), &b),
				 "[UNK] [UNK] [UNK] [UNK]") == 0, "CJK per char: got \"%s\"", b.s);
	CHECK(strcmp(token_texts(tok, "\u4e2d\u56fd x", strlen("\u4e2d\u56fd x"), &b),
				 "\u4e2d \u56fd x") == 0, "CJK per char: got \"%s\"", b.s);
	CHECK(strcmp(token_texts(tok, "na\u00efve caf\u00e9", strlen("na\u00efve caf\u00e9"), &b),
				 "naive cafe") == 0, "accents stripped: got \"%s\"", b.s);
	CHECK(strcmp(token_texts(tok, "hel\x01lo\xc2\xad wor\xe2\x80\x8bld\xef\xbf\xbd",
							 strlen("hel\x01lo\xc2\xad wor\xe2\x80\x8bld\xef\xbf\xbd"), &b),
				 "hello world") == 0, "control chars stripped: got \"%s\"", b.s);
	memset(long_word, 'a', 100);
	long_word[100] = '\0';
	CHECK(strncmp(token_texts(tok, long_word, 100, &b), "a ##a ##a", 9) == 0,
		  "100-char word: got \"%.40s\"", b.s);
	long_word[100] = 'a';
	long_word[101] = '\0';
	CHECK(strcmp(token_texts(tok, long_word, 101, &b), "[UNK]") == 0,
		  "101-char word: got \"%s\"", b.s);
	fb_encoding_init(&enc);
	CHECK_STATUS(fb_tokenizer_encode(tok, long_word, 101, 1, NULL, &enc, &err), err);
	CHECK(strcmp(canonical(&enc, &c), "2:0:0 1:0:101 3:0:0") == 0, "got %s", c.s);

	/* the same and more against Hugging Face's output */
	CHECK(eraw != NULL, "cannot read english_expected.txt");
	n = eraw ? split_lines(eraw, &lines) : 0;
	for (size_t i = 0; i + 1 < n; i += 2)
	{
		char	   *tab = strchr(lines[i], '\t');
		json_object *j;

		*tab = '\0';
		j = json_tokener_parse(lines[i]);
		CHECK_STATUS(fb_tokenizer_encode(tok, json_object_get_string(j),
										 (size_t) json_object_get_string_len(j), 1,
										 NULL, &enc, &err), err);
		CHECK(strcmp(canonical(&enc, &c), lines[i + 1]) == 0,
			  "english %s: expected %s (%s) got %s", lines[i], lines[i + 1], tab + 1, c.s);
		json_object_put(j);
	}
	fb_encoding_free(&enc);
	free(lines);
	free(eraw);
	free(b.s);
	free(c.s);
	fb_tokenizer_free(tok);
}

/* ------------------------------------------------------------------------
 * speed, errors, interruption
 * ------------------------------------------------------------------------ */

static void
test_long_word(fb_tokenizer *unc)
{
	size_t		n = 1000000;
	char	   *text = malloc(n * 2);
	fb_encoding enc;
	fb_error	err;
	double		t0,
				best = 1e9;
	fb_status	st = FB_OK;

	fb_encoding_init(&enc);
	memset(text, 'a', n);
	for (int rep = 0; rep < 3; rep++)
	{
		t0 = now_ms();
		st = fb_tokenizer_encode(unc, text, n, 1, NULL, &enc, &err);
		if (now_ms() - t0 < best)
			best = now_ms() - t0;
	}
	CHECK_STATUS(st, err);
	CHECK(enc.n == 3 && enc.ids[1] == 100 && enc.start[1] == 0 && enc.end[1] == (int32_t) n,
		  "1 MB word: %zu tokens, id %d, %d..%d", enc.n, enc.n > 1 ? enc.ids[1] : -1,
		  enc.n > 1 ? enc.start[1] : -1, enc.n > 1 ? enc.end[1] : -1);
	printf("1 MB single word ('a' x 1e6): %.2f ms\n", best);
	CHECK(best < 50.0, "1 MB single word took %.1f ms (limit 50 ms)", best);

	/* the same with a 2-byte letter that strip_accents decomposes */
	for (size_t i = 0; i < n; i++)
	{
		text[2 * i] = (char) 0xC3;
		text[2 * i + 1] = (char) 0xA9;	/* é */
	}
	best = 1e9;
	for (int rep = 0; rep < 3; rep++)
	{
		t0 = now_ms();
		st = fb_tokenizer_encode(unc, text, 2 * n, 1, NULL, &enc, &err);
		if (now_ms() - t0 < best)
			best = now_ms() - t0;
	}
	CHECK_STATUS(st, err);
	CHECK(enc.n == 3 && enc.ids[1] == 100 && enc.end[1] == (int32_t) n, "2 MB word of e-acute");
	printf("2 MB single word (U+00E9 x 1e6, NFD + strip): %.2f ms\n", best);
	/* a linearity check, not a benchmark: quadratic would take hours */
	CHECK(best < 5000.0, "2 MB accented word took %.1f ms", best);

	/* a run of combining marks longer than the NFD stage holds */
	text = realloc(text, 2 * (size_t) FB_TOKENIZER_MAX_MARK_RUN + 8);
	text[0] = 'a';
	for (size_t i = 0; i <= FB_TOKENIZER_MAX_MARK_RUN; i++)
	{
		text[1 + 2 * i] = (char) 0xCC;
		text[2 + 2 * i] = (char) 0x81;	/* U+0301 */
	}
	n = 1 + 2 * ((size_t) FB_TOKENIZER_MAX_MARK_RUN + 1);
	st = fb_tokenizer_encode(unc, text, n, 1, NULL, &enc, &err);
	CHECK(st == FB_ERR_LIMIT && enc.n == 0 && strstr(err.msg, "combining"),
		  "mark run: status %d, %s", (int) st, err.msg);
	st = fb_tokenizer_encode(unc, text, n - 2, 1, NULL, &enc, &err);
	CHECK_STATUS(st, err);
	CHECK(enc.n == 3 && enc.ids[1] == 143 && enc.start[1] == 0 && enc.end[1] == 1,
		  "a + 1M marks: %zu tokens", enc.n);

	fb_encoding_free(&enc);
	free(text);
}

static void
test_throughput(fb_tokenizer *unc)
{
	text_set	ts;
	fb_encoding enc;
	fb_error	err;
	size_t		bytes = 0,
				tokens = 0;
	double		t0,
				ms;

	if (!load_texts(DATA "real_lines.jsonl", &ts))
		return;
	fb_encoding_init(&enc);
	t0 = now_ms();
	for (size_t i = 0; i < ts.n; i++)
	{
		if (fb_tokenizer_encode(unc, ts.text[i], ts.len[i], 1, NULL, &enc, &err) == FB_OK)
			tokens += enc.n;
		bytes += ts.len[i];
	}
	ms = now_ms() - t0;
	printf("throughput: %zu lines, %.1f MB, %zu tokens in %.1f ms (%.1f MB/s)\n",
		   ts.n, bytes / 1e6, tokens, ms, bytes / 1e3 / (ms > 0 ? ms : 1));
	fb_encoding_free(&enc);
	free_texts(&ts);
}

static void
test_invalid_utf8(fb_tokenizer *unc)
{
	static const struct
	{
		const char *s;
		size_t		len;
	}			bad[] = {
		{"\x80", 1}, {"a\xff", 2}, {"\xc0\xaf", 2}, {"\xc1\xbf", 2},
		{"\xe0\x80\xaf", 3}, {"\xed\xa0\x80", 3}, {"\xed\xbf\xbf", 3},
		{"\xf0\x80\x80\xaf", 4}, {"\xf4\x90\x80\x80", 4}, {"\xf5\x80\x80\x80", 4},
		{"\xe4\xb8", 2}, {"ok \xe4\xb8", 5}, {"\xc3", 1}, {"\xf0\x9f\x98", 3},
		{"[CLS]\xfe", 6},
	};
	fb_encoding enc;
	fb_error	err;

	fb_encoding_init(&enc);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		fb_status	st;

		err.msg[0] = '\0';
		st = fb_tokenizer_encode(unc, bad[i].s, bad[i].len, 1, NULL, &enc, &err);
		CHECK(st == FB_ERR_INVALID && strstr(err.msg, "UTF-8") != NULL && enc.n == 0,
			  "invalid UTF-8 #%zu: status %d, \"%s\", %zu tokens", i, (int) st, err.msg, enc.n);
	}
	/* valid edge cases */
	CHECK_STATUS(fb_tokenizer_encode(unc, "\xf4\x8f\xbf\xbf\xef\xbf\xbf\x00", 8, 1, NULL, &enc, &err), err);
	CHECK_STATUS(fb_tokenizer_encode(unc, "", 0, 1, NULL, &enc, &err), err);
	CHECK(enc.n == 2 && enc.ids[0] == 101 && enc.ids[1] == 102, "empty text: %zu tokens", enc.n);
	CHECK_STATUS(fb_tokenizer_encode(unc, NULL, 0, 0, NULL, &enc, &err), err);
	CHECK(enc.n == 0, "empty text without specials: %zu tokens", enc.n);
	fb_encoding_free(&enc);
}

static int
stop_after(void *arg)
{
	int		   *calls = arg;

	return ++*calls >= 3;
}

static void
test_interrupt(fb_tokenizer *unc)
{
	const size_t n = 1u << 20;
	char	   *text = malloc(n);
	int			calls = 0;
	fb_run_ctl	ctl = {stop_after, &calls};
	fb_encoding enc;
	fb_error	err;
	fb_status	st;

	for (size_t i = 0; i < n; i++)
		text[i] = (i % 6 == 5) ? ' ' : 'a' + (char) (i % 7);
	fb_encoding_init(&enc);
	st = fb_tokenizer_encode(unc, text, n, 1, &ctl, &enc, &err);
	CHECK(st == FB_ERR_INTERRUPTED && enc.n == 0 && calls == 3,
		  "interrupt: status %d, %zu tokens, %d polls", (int) st, enc.n, calls);
	/* a callback that never stops changes nothing */
	calls = -1000000;
	st = fb_tokenizer_encode(unc, text, n, 1, &ctl, &enc, &err);
	CHECK_STATUS(st, err);
	CHECK(calls > -1000000 && enc.n > 100000, "polls %d, %zu tokens", calls + 1000000, enc.n);
	fb_encoding_free(&enc);
	free(text);
}

/* ------------------------------------------------------------------------
 * vocabulary and configuration
 * ------------------------------------------------------------------------ */

static fb_status
load_mem_str(const char *s, size_t len, fb_tokenizer **tok, fb_error *err)
{
	fb_tokenizer_options o = fb_tokenizer_default_options();

	return fb_tokenizer_load_mem(s, len, "mem-vocab.txt", &o, tok, err);
}

static void
test_vocab(void)
{
	static const char v1[] = "[PAD]\r\n[UNK]  \n[CLS]\n[SEP]\n[MASK]\nab\ncd\xe3\x80\x80\n\nab\nx";
	fb_tokenizer *tok;
	fb_error	err;
	fb_status	st;
	fb_special_ids sp;
	strbuf		b = {0};
	char	   *big;
	size_t		n;

	st = load_mem_str(v1, sizeof(v1) - 1, &tok, &err);
	CHECK_STATUS(st, err);
	if (st != FB_OK)
		return;
	CHECK(fb_tokenizer_vocab_size(tok) == 10, "vocab size %zu", fb_tokenizer_vocab_size(tok));
	sp = fb_tokenizer_special_ids(tok);
	CHECK(sp.pad == 0 && sp.unk == 1 && sp.cls == 2 && sp.sep == 3 && sp.mask == 4,
		  "special ids %d %d %d %d %d", sp.pad, sp.unk, sp.cls, sp.sep, sp.mask);
	/* CRLF and trailing whitespace (incl. U+3000) trimmed, last duplicate wins */
	CHECK(fb_tokenizer_token_to_id(tok, "[PAD]") == 0, "CRLF line");
	CHECK(fb_tokenizer_token_to_id(tok, "cd") == 6, "trailing U+3000 trimmed");
	CHECK(fb_tokenizer_token_to_id(tok, "ab") == 8, "duplicate: last line wins");
	CHECK(fb_tokenizer_id_to_token(tok, 5) == NULL, "shadowed id has no text");
	CHECK(fb_tokenizer_token_to_id(tok, "") == 7, "empty line is a token");
	CHECK(fb_tokenizer_token_to_id(tok, "x") == 9, "last line without newline");
	CHECK(fb_tokenizer_id_to_token(tok, 9) && strcmp(fb_tokenizer_id_to_token(tok, 9), "x") == 0,
		  "id_to_token");
	CHECK(fb_tokenizer_id_to_token(tok, 10) == NULL && fb_tokenizer_id_to_token(tok, -1) == NULL,
		  "out of range");
	CHECK(fb_tokenizer_token_to_id(tok, "zz") == -1, "absent token");
	CHECK(strcmp(token_texts(tok, "ab cd abab x", 12, &b), "ab cd [UNK] x") == 0, "got %s", b.s);
	fb_tokenizer_free(tok);

	/* malformed vocabularies */
	st = load_mem_str("", 0, &tok, &err);
	CHECK(st == FB_ERR_CORRUPT && tok == NULL && strstr(err.msg, "mem-vocab.txt"), "empty: %s", err.msg);
	st = load_mem_str("[UNK]\nab\nc\xffx\n", 13, &tok, &err);
	CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "line 3") && strstr(err.msg, "UTF-8"),
		  "invalid UTF-8: %s", err.msg);
	st = load_mem_str("[UNK]\n\xed\xa0\x80\n", 10, &tok, &err);
	CHECK(st == FB_ERR_CORRUPT, "surrogate in vocab: %s", err.msg);
	big = malloc(3000000);
	memset(big, 'x', 2000);
	big[2000] = '\n';
	st = load_mem_str(big, 2001, &tok, &err);
	CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "line 1"), "long token: %s", err.msg);
	for (n = 0; n < 2 * 1000001; n += 2)
	{
		big[n] = 'a';
		big[n + 1] = '\n';
	}
	st = load_mem_str(big, n, &tok, &err);
	CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "limit"), "too many tokens: %s", err.msg);
	st = load_mem_str(big, n - 2, &tok, &err);
	CHECK_STATUS(st, err);
	if (st == FB_OK)
	{
		CHECK(fb_tokenizer_vocab_size(tok) == 1000000, "1M lines");
		CHECK(fb_tokenizer_token_to_id(tok, "a") == 999999, "1M duplicates");
		fb_tokenizer_free(tok);
	}
	free(big);

	/* no [UNK]: fine until a word needs it */
	st = load_mem_str("[CLS]\n[SEP]\nab\n", 15, &tok, &err);
	CHECK_STATUS(st, err);
	if (st == FB_OK)
	{
		fb_encoding enc;

		fb_encoding_init(&enc);
		CHECK_STATUS(fb_tokenizer_encode(tok, "ab", 2, 1, NULL, &enc, &err), err);
		st = fb_tokenizer_encode(tok, "ab zz", 5, 1, NULL, &enc, &err);
		CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "[UNK]") && enc.n == 0, "no [UNK]: %s", err.msg);
		fb_encoding_free(&enc);
		fb_tokenizer_free(tok);
	}
	st = load_mem_str("[UNK]\nab\n", 9, &tok, &err);
	if (st == FB_OK)
	{
		fb_encoding enc;

		fb_encoding_init(&enc);
		st = fb_tokenizer_encode(tok, "ab", 2, 1, NULL, &enc, &err);
		CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "[CLS]"), "no [CLS]: %s", err.msg);
		CHECK_STATUS(fb_tokenizer_encode(tok, "ab", 2, 0, NULL, &enc, &err), err);
		fb_encoding_free(&enc);
		fb_tokenizer_free(tok);
	}
	{
		fb_tokenizer_options o = fb_tokenizer_default_options();

		o.strip_accents = 7;
		st = fb_tokenizer_load_mem("[UNK]\n", 6, "v", &o, &tok, &err);
		CHECK(st == FB_ERR_INVALID, "bad strip_accents option: %d", (int) st);
	}
	st = fb_tokenizer_load("test/data/no-such-vocab.txt", NULL, &tok, &err);
	CHECK(st == FB_ERR_IO && strstr(err.msg, "no-such-vocab.txt"), "missing file: %s", err.msg);
	free(b.s);
}

static void
write_file(const char *path, const char *s)
{
	FILE	   *f = fopen(path, "wb");

	if (f)
	{
		fputs(s, f);
		fclose(f);
	}
}

static void
test_open_dir(void)
{
	char		dir[] = "/tmp/fb_tok_test_XXXXXX";
	char		vpath[64],
				cpath[64];
	char	   *vocab = fbt_read_file(CHINESE_VOCAB, NULL);
	fb_tokenizer *tok;
	fb_error	err;
	fb_status	st;
	strbuf		b = {0};
	const char *text = "H\u00e9LLO \u4e2d\u6587";

	if (mkdtemp(dir) == NULL || vocab == NULL)
	{
		CHECK(0, "cannot make a temporary model directory");
		return;
	}
	snprintf(vpath, sizeof(vpath), "%s/vocab.txt", dir);
	snprintf(cpath, sizeof(cpath), "%s/tokenizer_config.json", dir);
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK(st == FB_ERR_IO && strstr(err.msg, "vocab.txt"), "no vocab.txt: %s", err.msg);
	write_file(vpath, vocab);

	/* no config: bert-base-chinese defaults (lowercase, strip accents) */
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK_STATUS(st, err);
	if (st == FB_OK)
	{
		CHECK(strcmp(token_texts(tok, text, strlen(text), &b), "hello \u4e2d \u6587") == 0,
			  "defaults: %s", b.s);
		fb_tokenizer_free(tok);
	}
	write_file(cpath, "{\"do_lower_case\": false, \"tokenize_chinese_chars\": true,"
			   " \"unk_token\": \"[UNK]\", \"mask_token\": {\"content\": \"[MASK]\"},"
			   " \"model_max_length\": 512}\n");
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK_STATUS(st, err);
	if (st == FB_OK)
	{
		CHECK(strcmp(token_texts(tok, text, strlen(text), &b), "[UNK] \u4e2d \u6587") == 0,
			  "cased: %s", b.s);
		fb_tokenizer_free(tok);
	}
	write_file(cpath, "{\"do_lower_case\": true, \"strip_accents\": false}");
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK_STATUS(st, err);
	if (st == FB_OK)
	{
		CHECK(strcmp(token_texts(tok, "\u00e9", 2, &b), "[UNK]") == 0, "no strip: %s", b.s);
		fb_tokenizer_free(tok);
	}
	write_file(cpath, "{\"do_lower_case\": false, \"strip_accents\": true, \"tokenize_chinese_chars\": false}");
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK_STATUS(st, err);
	if (st == FB_OK)
	{
		CHECK(strcmp(token_texts(tok, "\u00c9 \u4e2d\u6587", strlen("\u00c9 \u4e2d\u6587"), &b),
					 "[UNK] \u4e2d ##\u6587") == 0,
			  "strip, no CJK split: %s", b.s);
		fb_tokenizer_free(tok);
	}
	write_file(cpath, "{\"strip_accents\": null}");
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK_STATUS(st, err);
	fb_tokenizer_free(tok);

	write_file(cpath, "{\"do_lower_case\": tru");
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "tokenizer_config.json") && tok == NULL,
		  "bad JSON: %s", err.msg);
	write_file(cpath, "{\"a\": 1} x");
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK(st == FB_ERR_CORRUPT, "trailing garbage: %s", err.msg);
	write_file(cpath, "[true]");
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "object"), "not an object: %s", err.msg);
	write_file(cpath, "{\"do_lower_case\": \"yes\"}");
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "do_lower_case"), "wrong type: %s", err.msg);
	write_file(cpath, "{\"strip_accents\": 1}");
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK(st == FB_ERR_CORRUPT && strstr(err.msg, "strip_accents"), "wrong type: %s", err.msg);
	write_file(cpath, "{\"unk_token\": \"<unk>\"}");
	st = fb_tokenizer_open(dir, &tok, &err);
	CHECK(st == FB_ERR_UNSUPPORTED && strstr(err.msg, "unk_token"), "custom unk: %s", err.msg);

	unlink(cpath);
	unlink(vpath);
	rmdir(dir);
	free(vocab);
	free(b.s);
}

int
main(void)
{
	fb_tokenizer *unc = load_with(CHINESE_VOCAB, 1, -1, 1, 1);
	fb_tokenizer *cas = load_with(CHINESE_VOCAB, 0, -1, 1, 1);

	CHECK(fb_tokenizer_vocab_size(unc) == 21128, "vocab size %zu", fb_tokenizer_vocab_size(unc));
	CHECK(fb_tokenizer_special_ids(unc).unk == 100 && fb_tokenizer_special_ids(unc).cls == 101 &&
		  fb_tokenizer_special_ids(unc).sep == 102 && fb_tokenizer_special_ids(unc).mask == 103 &&
		  fb_tokenizer_special_ids(unc).pad == 0, "special ids");

	test_real_lines(unc, cas);
	test_adversarial(unc, cas);
	test_english_goldens();
	test_long_word(unc);
	test_throughput(unc);
	test_invalid_utf8(unc);
	test_interrupt(unc);
	test_vocab();
	test_open_dir();

	fb_tokenizer_free(unc);
	fb_tokenizer_free(cas);
	return fbt_finish("tokenizer");
}

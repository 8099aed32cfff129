/*
 * test_forward.c — the engine against transformers' outputs.
 *
 * Golden values come from tools/make_fixtures.py (transformers, fp32) on
 * small random-weight checkpoints of every supported architecture/head.
 * Tolerance: 1e-4 max absolute difference on logits, hidden states and
 * embeddings, for texts of 1..512 tokens, alone and in mixed batches.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "fb_golden.h"
#include "fb_test.h"
#include "finbert.h"

#define FIXTURES "test/fixtures/models/"
#define TOL 1e-4

static json_object *golden;
static int	test_threads = 1;	/* threads of every session under test */
static const char **texts;
static int	n_texts;

static fb_session *
new_session(fb_model *m)
{
	fb_session *s = fb_session_new(m);

	fb_session_set_threads(s, test_threads);
	return s;
}

static fb_model *
open_fixture(const char *name)
{
	char		dir[256];
	fb_model   *m = NULL;
	fb_error	err = {0};
	fb_status	st;

	snprintf(dir, sizeof(dir), FIXTURES "%s", name);
	st = fb_model_open(dir, NULL, &m, &err);
	CHECK(st == FB_OK, "open %s: %s", name, err.msg);
	return m;
}

static fb_text
text_at(int i)
{
	fb_text		t = {texts[i], strlen(texts[i])};

	return t;
}

static void
check_ids(const char *name, fb_model *m, json_object *g)
{
	json_object *ids = json_object_object_get(g, "ids");
	fb_encoding enc;
	fb_error	err = {0};
	int			mismatches = 0;

	fb_encoding_init(&enc);
	for (int i = 0; i < n_texts; i++)
	{
		json_object *row = json_object_array_get_idx(ids, i);
		int			n = (int) json_object_array_length(row);

		if (fb_tokenizer_encode(fb_model_tokenizer(m), texts[i], strlen(texts[i]), 1,
								NULL, &enc, &err) != FB_OK)
		{
			mismatches++;
			continue;
		}
		/* goldens are truncated at 512: compare the shared prefix */
		for (int k = 0; k < n - 1 && k < (int) enc.n; k++)
			if (enc.ids[k] != json_object_get_int(json_object_array_get_idx(row, k)))
			{
				mismatches++;
				break;
			}
	}
	CHECK(mismatches == 0, "%s: %d texts tokenized differently from transformers", name, mismatches);
	fb_encoding_free(&enc);
}

static void
check_sequence(const char *name)
{
	fb_model   *m = open_fixture(name);
	json_object *g = json_object_object_get(json_object_object_get(golden, "models"), name);
	json_object *outs = json_object_object_get(g, "outputs");
	const fb_model_info *info;
	fb_session *s;
	fb_error	err = {0};
	float	   *logits,
			   *probs;
	fb_text    *all;
	double		worst = 0.0,
				worst_batch = 0.0;
	int			NL;

	if (m == NULL)
		return;
	info = fb_model_get_info(m);
	NL = info->n_labels;
	CHECK(info->head == FB_HEAD_SEQUENCE, "%s: head %d", name, info->head);
	check_ids(name, m, g);
	s = new_session(m);
	logits = calloc((size_t) n_texts * NL, sizeof(float));
	probs = calloc((size_t) n_texts * NL, sizeof(float));
	all = calloc((size_t) n_texts, sizeof(fb_text));

	/* one text at a time */
	for (int i = 0; i < n_texts; i++)
	{
		fb_text		t = text_at(i);
		fb_status	st = fb_classify(s, &t, 1, NULL, logits, probs, &err);
		double		d;

		CHECK_STATUS(st, err);
		d = fbt_max_diff_row(logits, json_object_array_get_idx(outs, i), NL);
		worst = d > worst ? d : worst;
		CHECK(d <= TOL, "%s text %d: logits differ by %g", name, i, d);
		{
			double		sum = 0.0;

			for (int j = 0; j < NL; j++)
				sum += probs[j];
			if (!info->multi_label)
				CHECK_NEAR(sum, 1.0, 1e-5, "%s: softmax sums to 1", name);
			for (int j = 0; j < NL; j++)
				CHECK(probs[j] >= 0.0f && probs[j] <= 1.0f, "%s: probability range", name);
		}
	}
	/* all texts in one call (mixed lengths 2..512, packed batches) */
	for (int i = 0; i < n_texts; i++)
		all[i] = text_at(i);
	{
		fb_status	st = fb_classify(s, all, (size_t) n_texts, NULL, logits, probs, &err);

		CHECK_STATUS(st, err);
		for (int i = 0; i < n_texts; i++)
		{
			double		d = fbt_max_diff_row(logits + (size_t) i * NL, json_object_array_get_idx(outs, i), NL);

			worst_batch = d > worst_batch ? d : worst_batch;
		}
		CHECK(worst_batch <= TOL, "%s: batched logits differ by %g", name, worst_batch);
	}
	/* transformers' own padded batch of 7 */
	{
		json_object *b7 = json_object_object_get(g, "batch7_logits");
		double		d7 = 0.0;

		for (int i = 0; i < 7; i++)
		{
			double		d = fbt_max_diff_row(logits + (size_t) i * NL, json_object_array_get_idx(b7, i), NL);

			d7 = d > d7 ? d : d7;
		}
		CHECK(d7 <= TOL, "%s: padded batch of 7 differs by %g", name, d7);
	}
	/* pre-tokenized ids (transformers' own, truncated at 512) */
	{
		json_object *ids = json_object_object_get(g, "ids");
		int32_t   **rows = calloc((size_t) n_texts, sizeof(int32_t *));
		int		   *lens = calloc((size_t) n_texts, sizeof(int));
		fb_batch	bt = {n_texts, (const int32_t *const *) rows, lens};
		double		d_ids = 0.0;

		for (int i = 0; i < n_texts; i++)
		{
			json_object *r = json_object_array_get_idx(ids, i);

			lens[i] = (int) json_object_array_length(r);
			rows[i] = malloc(sizeof(int32_t) * lens[i]);
			for (int k = 0; k < lens[i]; k++)
				rows[i][k] = json_object_get_int(json_object_array_get_idx(r, k));
		}
		CHECK_STATUS(fb_classify_batch(s, &bt, logits, probs, &err), err);
		for (int i = 0; i < n_texts; i++)
		{
			double		d = fbt_max_diff_row(logits + (size_t) i * NL, json_object_array_get_idx(outs, i), NL);

			d_ids = d > d_ids ? d : d_ids;
			free(rows[i]);
		}
		CHECK(d_ids <= TOL, "%s: fb_classify_batch logits differ by %g", name, d_ids);
		free(rows);
		free(lens);
	}
	printf("%s: max |logit diff| alone %.2e, batched %.2e\n", name, worst, worst_batch);
	free(all);
	free(logits);
	free(probs);
	fb_session_free(s);
	fb_model_free(m);
}

static void
check_token(const char *name)
{
	fb_model   *m = open_fixture(name);
	json_object *g = json_object_object_get(json_object_object_get(golden, "models"), name);
	json_object *outs = json_object_object_get(g, "outputs");
	json_object *spans = json_object_object_get(g, "spans");
	fb_session *s;
	fb_error	err = {0};
	double		worst = 0.0;
	int			NL,
				span_mismatch = 0,
				n_spans = 0;

	if (m == NULL)
		return;
	NL = fb_model_get_info(m)->n_labels;
	CHECK(fb_model_get_info(m)->head == FB_HEAD_TOKEN, "%s: token head", name);
	s = new_session(m);
	for (int i = 0; i < n_texts; i++)
	{
		fb_text		t = text_at(i);
		json_object *rows = json_object_array_get_idx(outs, i);
		int			nrows = (int) json_object_array_length(rows);
		float	   *lg = NULL;
		int			n = 0;
		fb_status	st;
		fb_task_options o = fb_task_default_options();

		/* goldens hold windows of up to 512 tokens: compare what fits */
		st = fb_token_logits(s, &t, &o, &lg, &n, &err);
		CHECK_STATUS(st, err);
		if (nrows < 512)
		{
			CHECK(n == nrows - 2, "%s text %d: %d tokens vs %d", name, i, n, nrows - 2);
			for (int k = 0; k < n && k < nrows - 2; k++)
			{
				double		d = fbt_max_diff_row(lg + (size_t) k * NL, json_object_array_get_idx(rows, k + 1), NL);

				worst = d > worst ? d : worst;
			}
		}
		free(lg);

		/* spans against the Python reference decoder */
		{
			json_object *exp = json_object_array_get_idx(spans, i);
			fb_entity_list l;

			if (exp == NULL)
				continue;
			fb_entity_list_init(&l);
			st = fb_entities(s, &t, NULL, &l, &err);
			CHECK_STATUS(st, err);
			if ((int) json_object_array_length(exp) != (int) l.n)
				span_mismatch++;
			else
				for (size_t k = 0; k < l.n; k++)
				{
					json_object *e = json_object_array_get_idx(exp, k);

					n_spans++;
					if (strcmp(l.items[k].text, json_object_get_string(json_object_array_get_idx(e, 0))) != 0 ||
						strcmp(l.items[k].label, json_object_get_string(json_object_array_get_idx(e, 1))) != 0 ||
						l.items[k].start != json_object_get_int(json_object_array_get_idx(e, 2)) ||
						l.items[k].end != json_object_get_int(json_object_array_get_idx(e, 3)))
					{
						span_mismatch++;
						fprintf(stderr, "%s text %d span %zu: got \"%s\" %s [%d,%d)\n", name, i, k,
								l.items[k].text, l.items[k].label, l.items[k].start, l.items[k].end);
						break;
					}
				}
			fb_entity_list_free(&l);
		}
	}
	CHECK(worst <= TOL, "%s: token logits differ by %g", name, worst);
	CHECK(span_mismatch == 0, "%s: %d texts with different spans", name, span_mismatch);
	CHECK(n_spans > 20, "%s: only %d spans compared", name, n_spans);
	printf("%s: max |token logit diff| %.2e, %d spans identical\n", name, worst, n_spans);
	fb_session_free(s);
	fb_model_free(m);
}

static void
check_encoder(void)
{
	fb_model   *m = open_fixture("encoder");
	json_object *g = json_object_object_get(json_object_object_get(golden, "models"), "encoder");
	json_object *outs = json_object_object_get(g, "outputs");
	static const char *const keys[3] = {"cls", "mean", "pooler"};
	const fb_pooling pools[3] = {FB_POOL_CLS, FB_POOL_MEAN, FB_POOL_POOLER};
	fb_session *s;
	fb_error	err = {0};
	double		worst[4] = {0};
	int			H;
	float	   *emb;
	fb_text    *all;

	if (m == NULL)
		return;
	H = fb_model_get_info(m)->hidden;
	s = new_session(m);
	emb = calloc((size_t) n_texts * H, sizeof(float));
	all = calloc((size_t) n_texts, sizeof(fb_text));
	for (int i = 0; i < n_texts; i++)
		all[i] = text_at(i);
	for (int p = 0; p < 3; p++)
	{
		fb_task_options o = fb_task_default_options();
		fb_status	st;

		o.pooling = pools[p];
		st = fb_embed(s, all, (size_t) n_texts, &o, emb, &err);
		CHECK_STATUS(st, err);
		for (int i = 0; i < n_texts; i++)
		{
			double		d = fbt_max_diff_row(emb + (size_t) i * H,
										 json_object_object_get(json_object_array_get_idx(outs, i), keys[p]), H);

			worst[p] = d > worst[p] ? d : worst[p];
		}
		CHECK(worst[p] <= TOL, "encoder %s pooling differs by %g", keys[p], worst[p]);
	}
	/* normalised embeddings have unit length */
	{
		fb_task_options o = fb_task_default_options();

		o.pooling = FB_POOL_MEAN;
		o.normalize = 1;
		CHECK_STATUS(fb_embed(s, all, (size_t) n_texts, &o, emb, &err), err);
		for (int i = 0; i < n_texts; i++)
		{
			double		ss = 0.0;

			for (int k = 0; k < H; k++)
				ss += (double) emb[(size_t) i * H + k] * emb[(size_t) i * H + k];
			CHECK_NEAR(ss, 1.0, 1e-5, "unit norm of text %d", i);
		}
	}
	/* whole last hidden state */
	for (int i = 0; i < n_texts; i++)
	{
		json_object *hid = json_object_object_get(json_object_array_get_idx(outs, i), "hidden");
		fb_text		t = text_at(i);
		float	   *hs = NULL;
		int			n = 0;

		if (hid == NULL || json_object_is_type(hid, json_type_null))
			continue;
		CHECK_STATUS(fb_hidden_states(s, &t, NULL, &hs, &n, &err), err);
		CHECK(n == (int) json_object_array_length(hid), "hidden rows %d", n);
		for (int r = 0; r < n && r < (int) json_object_array_length(hid); r++)
		{
			double		d = fbt_max_diff_row(hs + (size_t) r * H, json_object_array_get_idx(hid, r), H);

			worst[3] = d > worst[3] ? d : worst[3];
		}
		free(hs);
	}
	CHECK(worst[3] <= TOL, "hidden states differ by %g", worst[3]);
	printf("encoder: max diff cls %.2e mean %.2e pooler %.2e hidden %.2e\n",
		   worst[0], worst[1], worst[2], worst[3]);
	free(emb);
	free(all);
	fb_session_free(s);
	fb_model_free(m);
}

/* Two threads share one model, each with its own session. */
typedef struct thread_arg
{
	fb_model   *m;
	float	   *out;
	int			ok;
} thread_arg;

static void *
thread_main(void *p)
{
	thread_arg *a = p;
	fb_session *s = new_session(a->m);
	fb_error	err = {0};
	fb_text    *all = calloc((size_t) n_texts, sizeof(fb_text));

	for (int i = 0; i < n_texts; i++)
		all[i] = text_at(i);
	a->ok = 1;
	for (int rep = 0; rep < 5; rep++)
		if (fb_classify(s, all, (size_t) n_texts, NULL, a->out, NULL, &err) != FB_OK)
			a->ok = 0;
	free(all);
	fb_session_free(s);
	return NULL;
}

static void
check_threads(void)
{
	fb_model   *m = open_fixture("cls");
	pthread_t	th[2];
	thread_arg	args[2];

	if (m == NULL)
		return;
	for (int i = 0; i < 2; i++)
	{
		args[i].m = m;
		args[i].out = calloc((size_t) n_texts * 3, sizeof(float));
		pthread_create(&th[i], NULL, thread_main, &args[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK(args[0].ok && args[1].ok, "threads ran");
	CHECK(memcmp(args[0].out, args[1].out, sizeof(float) * n_texts * 3) == 0,
		  "two threads on one model give identical results");
	free(args[0].out);
	free(args[1].out);
	fb_model_free(m);
}

/* Long texts: windows cover the whole text; positions round-trip. */
static void
check_long_text(void)
{
	fb_model   *m = open_fixture("ner");
	fb_session *s;
	fb_error	err = {0};
	fb_entity_list l;
	char	   *big;
	size_t		len = 0,
				cap = 1 << 16;
	int			far = 0,
				bad = 0;
	int32_t		prev_end = 0;

	if (m == NULL)
		return;
	s = new_session(m);
	big = malloc(cap);
	while (len < 12000)
	{
		for (int i = 0; i < n_texts - 2 && len < 12000; i++)
		{
			size_t		n = strlen(texts[i]);

			memcpy(big + len, texts[i], n);
			len += n;
		}
	}
	big[len] = '\0';
	fb_entity_list_init(&l);
	{
		fb_text		t = {big, len};
		fb_task_options o = fb_task_default_options();

		o.max_length = 128;
		CHECK_STATUS(fb_entities(s, &t, &o, &l, &err), err);
	}
	/* code point index -> byte offset, to check every span's text */
	for (size_t k = 0; k < l.n; k++)
	{
		const fb_entity *e = &l.items[k];
		size_t		b = 0;
		int32_t		cp = 0;

		while (cp < e->start && b < len)
		{
			unsigned char c = (unsigned char) big[b];

			b += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
			cp++;
		}
		if (strncmp(big + b, e->text, strlen(e->text)) != 0 || e->start < prev_end ||
			e->end <= e->start)
			bad++;
		prev_end = e->end;
		if (e->start > 3000)
			far++;
	}
	CHECK(l.n > 100, "long text: %zu entities", l.n);
	CHECK(far > 10, "entities beyond character 3000: %d", far);
	CHECK(bad == 0, "%d spans whose text or order is wrong", bad);
	fb_entity_list_free(&l);
	free(big);
	fb_session_free(s);
	fb_model_free(m);
}

static int
stop_after(void *arg)
{
	int		   *calls = arg;

	return ++*calls > 1;	/* let the first layer run, stop the second */
}

static int
count_polls(void *arg)
{
	++*(int *) arg;
	return 0;
}

/* Stops at the poll whose number the int (first member) holds; counts in
 * the second. */
typedef struct stop_at
{
	int			at;
	int			polls;
} stop_at;

static int
stop_at_poll(void *arg)
{
	stop_at    *a = arg;

	return ++a->polls >= a->at;
}

/* Polls the tokenizer makes on these texts alone (deterministic). */
static int
tokenizer_polls(const fb_model *m, const fb_text *texts, int n)
{
	int			polls = 0;
	fb_run_ctl	count = {count_polls, &polls};
	fb_encoding enc;
	fb_error	err = {0};

	fb_encoding_init(&enc);
	for (int i = 0; i < n; i++)
		fb_tokenizer_encode(fb_model_tokenizer(m), texts[i].data, texts[i].len, 0, &count, &enc, &err);
	fb_encoding_free(&enc);
	return polls;
}

static void
check_interrupt(void)
{
	fb_model   *m = open_fixture("cls");
	fb_session *s;
	fb_error	err = {0};
	int			calls = 0;
	fb_run_ctl	ctl = {stop_after, &calls};
	fb_text    *all;
	float	   *out;
	fb_status	st;

	if (m == NULL)
		return;
	s = new_session(m);
	fb_session_set_ctl(s, &ctl);
	all = calloc((size_t) n_texts, sizeof(fb_text));
	out = calloc((size_t) n_texts * 3, sizeof(float));
	for (int i = 0; i < n_texts; i++)
		all[i] = text_at(i);
	st = fb_classify(s, all, (size_t) n_texts, NULL, out, NULL, &err);
	CHECK(st == FB_ERR_INTERRUPTED, "interrupted run: %d %s", st, err.msg);
	/* the session stays usable once the host stops interrupting */
	fb_session_set_ctl(s, NULL);
	st = fb_classify(s, all, (size_t) n_texts, NULL, out, NULL, &err);
	CHECK_STATUS(st, err);
	{
		/*
		 * How many polls a run makes depends on which thread claims which
		 * chunk (only the caller's thread polls), so counts are checked on
		 * one thread, where they are fixed: the forward pass polls per
		 * chunk and per sequence, not only between layers.  On any number
		 * of threads, a stop raised at the forward pass's first poll
		 * (inside its first phase: the caller polls before claiming work
		 * and while it waits for the others) ends the run.
		 */
		int			polls = 0,
					tok_polls = tokenizer_polls(m, all, n_texts);
		fb_run_ctl	count = {count_polls, &polls};
		stop_at		first = {tok_polls + 1, 0};
		fb_run_ctl	stop_first = {stop_at_poll, &first};
		float	   *again = calloc((size_t) n_texts * 3, sizeof(float));
		int			n_layers = fb_model_get_info(m)->n_layers;
		fb_session *s1 = fb_session_new(m);

		fb_session_set_ctl(s1, &count);
		CHECK_STATUS(fb_classify(s1, all, (size_t) n_texts, NULL, again, NULL, &err), err);
		CHECK(polls - tok_polls > 4 * n_layers, "one thread polled inside the phases: %d forward polls for %d layers",
			  polls - tok_polls, n_layers);
		fb_session_free(s1);

		fb_session_set_ctl(s, &stop_first);
		st = fb_classify(s, all, (size_t) n_texts, NULL, again, NULL, &err);
		CHECK(st == FB_ERR_INTERRUPTED && first.polls == first.at,
			  "%d thread(s): stopped at the first poll inside the first phase: %d %s (poll %d of %d)",
			  test_threads, st, err.msg, first.polls, first.at);
		fb_session_set_ctl(s, NULL);
		CHECK_STATUS(fb_classify(s, all, (size_t) n_texts, NULL, again, NULL, &err), err);
		CHECK(memcmp(out, again, sizeof(float) * n_texts * 3) == 0, "results after a stop equal a clean run");
		free(again);
	}
	free(all);
	free(out);
	fb_session_free(s);
	fb_model_free(m);
}

static void
check_errors(void)
{
	fb_model   *m = NULL;
	fb_error	err = {0};
	fb_status	st;

	st = fb_model_open("test/fixtures/models/does-not-exist", NULL, &m, &err);
	CHECK(st == FB_ERR_IO && m == NULL, "missing directory: %d %s", st, err.msg);
	m = open_fixture("encoder");
	if (m != NULL)
	{
		fb_session *s = new_session(m);
		fb_text		t = {"abc", 3};
		float		out[8];

		st = fb_classify(s, &t, 1, NULL, out, NULL, &err);
		CHECK(st == FB_ERR_INVALID, "classify on an encoder: %d", st);
		{
			fb_text		bad = {"\xff\xfe", 2};
			float	   *e = malloc(sizeof(float) * 32);

			st = fb_embed(s, &bad, 1, NULL, e, &err);
			CHECK(st == FB_ERR_INVALID, "invalid UTF-8: %d %s", st, err.msg);
			free(e);
		}
		fb_session_free(s);
		fb_model_free(m);
	}
}

/*
 * int8 linear layers: close to transformers' fp32 logits (quantisation
 * error, not bit noise), same predicted label on nearly every text, and
 * independent of batching and thread count (per-row quantisation and
 * exact integer sums do not depend on the partition; the remaining fp32
 * GEMMs may differ in the last bits).
 */
static void
check_int8(const char *name, double rel_tol)
{
	char		dir[256];
	fb_model   *m = NULL;
	fb_error	err = {0};
	fb_model_options o = fb_model_default_options();
	json_object *outs = json_object_object_get(json_object_object_get(json_object_object_get(golden, "models"), name), "outputs");
	fb_session *s1,
			   *s3;
	float	   *alone,
			   *batch,
			   *probs;
	fb_text    *all;
	int			NL,
				agree = 0;
	double		worst = 0.0,
				range = 0.0;

	o.precision = FB_PRECISION_INT8;
	snprintf(dir, sizeof(dir), FIXTURES "%s", name);
	CHECK(fb_model_open(dir, &o, &m, &err) == FB_OK, "open %s int8: %s", name, err.msg);
	if (m == NULL)
		return;
	CHECK(fb_model_get_info(m)->precision == FB_PRECISION_INT8, "%s: info says int8", name);
	{
		/* int8 keeps only the quantised layer matrices, not their fp32 copies */
		fb_model   *f = NULL;

		CHECK(fb_model_open(dir, NULL, &f, &err) == FB_OK, "open %s fp32: %s", name, err.msg);
		if (f != NULL)
		{
			size_t		b8 = fb_model_get_info(m)->resident_bytes,
						b32 = fb_model_get_info(f)->resident_bytes;

			CHECK(b8 < b32, "%s: int8 resident %zu bytes < fp32 %zu", name, b8, b32);
			fb_model_free(f);
		}
	}
	NL = fb_model_get_info(m)->n_labels;
	s1 = fb_session_new(m);
	s3 = fb_session_new(m);
	fb_session_set_threads(s3, 3);
	alone = calloc((size_t) n_texts * NL, sizeof(float));
	batch = calloc((size_t) n_texts * NL, sizeof(float));
	probs = calloc((size_t) n_texts * NL, sizeof(float));
	all = calloc((size_t) n_texts, sizeof(fb_text));
	for (int i = 0; i < n_texts; i++)
	{
		fb_text		t = text_at(i);

		all[i] = t;
		CHECK_STATUS(fb_classify(s1, &t, 1, NULL, alone + (size_t) i * NL, probs, &err), err);
	}
	CHECK_STATUS(fb_classify(s3, all, (size_t) n_texts, NULL, batch, probs, &err), err);
	{
		double		d = 0.0,
					r = 0.0;

		/* bit-level differences of the fp32 parts (ELECTRA's embedding
		 * projection) can flip a rounding of the activation quantiser, so
		 * allow a tenth of the quantisation tolerance */
		for (int i = 0; i < n_texts * NL; i++)
		{
			d = fabs(alone[i] - batch[i]) > d ? fabs(alone[i] - batch[i]) : d;
			r = fabs(alone[i]) > r ? fabs(alone[i]) : r;
		}
		CHECK(d <= 0.25 * rel_tol * r, "%s int8: one at a time on 1 thread vs packed batch on 3 threads: %g", name, d);
	}
	for (int i = 0; i < n_texts; i++)
	{
		json_object *g = json_object_array_get_idx(outs, i);
		int			best_g = 0,
					best_q = 0;

		for (int j = 0; j < NL; j++)
		{
			double		gv = json_object_get_double(json_object_array_get_idx(g, j));
			double		d = fabs(alone[(size_t) i * NL + j] - gv);

			worst = d > worst ? d : worst;
			range = fabs(gv) > range ? fabs(gv) : range;
			if (gv > json_object_get_double(json_object_array_get_idx(g, best_g)))
				best_g = j;
			if (alone[(size_t) i * NL + j] > alone[(size_t) i * NL + best_q])
				best_q = j;
		}
		agree += best_g == best_q;
	}
	printf("%s int8: max |logit diff| vs fp32 transformers %.3e (max |logit| %.3f), same label %d/%d\n",
		   name, worst, range, agree, n_texts);
	CHECK(worst > 0.0, "%s int8: really quantised", name);
	CHECK(worst <= rel_tol * range, "%s int8: logits within %.0f%% of the largest logit: %g", name, rel_tol * 100, worst);
	CHECK(agree >= n_texts - 1, "%s int8: same label on %d of %d texts", name, agree, n_texts);
	free(all);
	free(alone);
	free(batch);
	free(probs);
	fb_session_free(s1);
	fb_session_free(s3);
	fb_model_free(m);
}

/*
 * fb_session_tokens: what each task ran through the encoder, against the
 * tokenizer's own count (the host reads it instead of tokenizing twice).
 */
static void
check_token_counts(void)
{
	static const char *const names[] = {"cls", "encoder", "ner"};
	char		long_text[4 * 25 * 3 + 1] = "";
	fb_text		t[2];
	fb_task_options o = fb_task_default_options();
	fb_error	err = {0};
	int			n_short;

	for (int i = 0; i < 25; i++)
		strcat(long_text, "股市大涨");	/* 100 CJK characters, one token each */
	t[0].data = "央行降准";
	t[0].len = strlen(t[0].data);
	t[1].data = long_text;
	t[1].len = strlen(long_text);
	o.max_length = 16;
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
	{
		fb_model   *m = open_fixture(names[k]);
		fb_session *s;
		fb_encoding enc;
		uint64_t	before;

		if (m == NULL)
			continue;
		s = new_session(m);
		fb_encoding_init(&enc);
		CHECK_STATUS(fb_tokenizer_encode(fb_model_tokenizer(m), t[0].data, t[0].len, 1,
										 NULL, &enc, &err), err);
		n_short = (int) enc.n;	/* [CLS] 央 行 降 准 [SEP] */
		fb_encoding_free(&enc);
		CHECK(fb_session_tokens(s) == 0, "%s: a new session has run no tokens", names[k]);
		before = fb_session_tokens(s);
		if (k == 0)
		{
			float		probs[2 * 64];

			CHECK_STATUS(fb_classify(s, t, 2, &o, NULL, probs, &err), err);
			/* the long text is truncated to one window of max_length */
			CHECK(fb_session_tokens(s) - before == (uint64_t) (n_short + 16),
				  "classify: %llu tokens, want %d", (unsigned long long) (fb_session_tokens(s) - before),
				  n_short + 16);
		}
		else if (k == 1)
		{
			float	   *e = malloc(sizeof(float) * 2 * (size_t) fb_model_get_info(m)->hidden);

			CHECK_STATUS(fb_embed(s, t, 2, &o, e, &err), err);
			CHECK(fb_session_tokens(s) - before == (uint64_t) (n_short + 16),
				  "embed: %llu tokens, want %d", (unsigned long long) (fb_session_tokens(s) - before),
				  n_short + 16);
			free(e);
		}
		else
		{
			fb_entity_list l;

			fb_entity_list_init(&l);
			CHECK_STATUS(fb_entities(s, &t[1], &o, &l, &err), err);
			/* windows of 14 tokens advanced by 10 (three quarters): starts
			 * 0, 10, ..., 80 and the last aligned to the end at 86, each
			 * with [CLS] and [SEP] */
			CHECK(fb_session_tokens(s) - before == 10 * 16,
				  "entities: %llu tokens, want 160", (unsigned long long) (fb_session_tokens(s) - before));
			fb_entity_list_free(&l);
		}
		fb_session_free(s);
		fb_model_free(m);
	}
}

int
main(void)
{
	json_object *arr;

	golden = json_object_from_file("test/fixtures/golden/forward.json");
	if (golden == NULL)
	{
		fprintf(stderr, "cannot read test/fixtures/golden/forward.json\n");
		return 1;
	}
	arr = json_object_object_get(golden, "texts");
	n_texts = (int) json_object_array_length(arr);
	texts = calloc((size_t) n_texts, sizeof(char *));
	for (int i = 0; i < n_texts; i++)
		texts[i] = json_object_get_string(json_object_array_get_idx(arr, i));

	/* single-threaded, then three threads (uneven row and head splits) */
	for (test_threads = 1; test_threads <= 3; test_threads += 2)
	{
		printf("-- %d thread(s), %s kernels\n", test_threads, fb_cpu_kernel_name());
		check_sequence("cls");
		check_sequence("cls_f16");
		check_sequence("multilabel");
		check_sequence("electra_cls");
		check_sequence("albert_cls");
		check_token("ner");
		check_token("electra_ner");
		check_token("ner_crf");	/* Viterbi over CRF transitions */
		check_encoder();
	}
	check_int8("cls", 0.1);
	check_int8("cls_f16", 0.1);
	check_int8("multilabel", 0.1);
	check_int8("electra_cls", 0.1);
	check_int8("albert_cls", 0.1);
	test_threads = 2;
	check_threads();
	check_long_text();
	check_interrupt();
	check_errors();
	check_token_counts();

	free(texts);
	json_object_put(golden);
	return fbt_finish("forward");
}

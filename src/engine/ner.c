/*
 * ner.c — entity extraction: token classification over the whole text,
 * label decoding (BIO, BIOES/BMES, IO, optional CRF) and spans mapped back
 * to character positions of the input.
 *
 * Long texts are cut into overlapping windows.  Every token takes its
 * scores from the window in which it sits farthest from an edge (the most
 * context on both sides), and decoding runs once over the merged token
 * sequence, so an entity that straddles a window boundary is found whole.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/fb_ops.h"
#include "fb_tasks.h"

void
fb_entity_list_init(fb_entity_list *l)
{
	memset(l, 0, sizeof(*l));
}

void
fb_entity_list_free(fb_entity_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].text);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* Tag of a label: B, I (also M), E, S, O, or X for a bare type (IO). */
typedef struct tag_info
{
	char		tag;
	const char *type;			/* points into the label, "" for O */
} tag_info;

static tag_info
parse_label(const char *label)
{
	tag_info	ti;

	if (strcmp(label, "O") == 0 || strcmp(label, "o") == 0)
	{
		ti.tag = 'O';
		ti.type = "";
		return ti;
	}
	if (strchr("BIMESbimes", label[0]) != NULL && label[0] != '\0' &&
		(label[1] == '-' || label[1] == '_') && label[2] != '\0')
	{
		char		c = label[0] & ~0x20;	/* upper case */

		ti.tag = c == 'M' ? 'I' : c;
		ti.type = label + 2;
		return ti;
	}
	ti.tag = 'X';
	ti.type = label;
	return ti;
}

/* Per-window token scores gathered into the merged per-token arrays. */
typedef struct ner_acc
{
	const fb_model *m;
	const int	   *win_start;	/* first text token of each window */
	float	   *logits;			/* [ntok, L] merged */
	int		   *best_margin;	/* per token: distance to window edge */
} ner_acc;

static fb_status
ner_done(void *arg, const seq_ref *seq, const float *token_logits, fb_error *err)
{
	ner_acc    *a = arg;
	const fb_model *m = a->m;
	int			NL = m->cfg.n_labels;
	int			n = seq->len - 2;
	int			base = a->win_start[seq->owner];

	for (int p = 0; p < n; p++)
	{
		int			margin = p < n - 1 - p ? p : n - 1 - p;
		int			t = base + p;

		if (margin <= a->best_margin[t])
			continue;
		a->best_margin[t] = margin;
		/* row p + 1 skips [CLS] */
		memcpy(a->logits + (size_t) t * NL, token_logits + (size_t) (p + 1) * NL,
			   sizeof(float) * NL);
	}
	return FB_OK;
}

/* Viterbi over emissions [n, L] with CRF transitions; writes labels. */
static fb_status
crf_viterbi(const fb_model *m, const float *em, int n, int *labels, fb_error *err)
{
	int			L = m->cfg.n_labels;
	float	   *score = malloc(sizeof(float) * (size_t) L * 2);
	int		   *back = malloc(sizeof(int) * (size_t) n * L);

	if (score == NULL || back == NULL)
	{
		free(score);
		free(back);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	for (int j = 0; j < L; j++)
		score[j] = m->crf_start[j] + em[j];
	for (int t = 1; t < n; t++)
	{
		float	   *prev = score + ((t - 1) & 1) * L;
		float	   *cur = score + (t & 1) * L;

		for (int j = 0; j < L; j++)
		{
			int			arg = 0;
			float		best = prev[0] + m->crf_trans[j];

			for (int i = 1; i < L; i++)
			{
				float		v = prev[i] + m->crf_trans[(size_t) i * L + j];

				if (v > best)
				{
					best = v;
					arg = i;
				}
			}
			cur[j] = best + em[(size_t) t * L + j];
			back[(size_t) t * L + j] = arg;
		}
	}
	{
		float	   *last = score + ((n - 1) & 1) * L;
		int			arg = 0;

		for (int j = 0; j < L; j++)
			if (last[j] + m->crf_end[j] > last[arg] + m->crf_end[arg])
				arg = j;
		for (int t = n - 1; t >= 0; t--)
		{
			labels[t] = arg;
			if (t > 0)
				arg = back[(size_t) t * L + arg];
		}
	}
	free(score);
	free(back);
	return FB_OK;
}

/* Byte offset of code point `cp`, walking forward from a known position. */
static size_t
advance_cp(const char *s, size_t len, size_t byte, int32_t *cur_cp, int32_t cp)
{
	while (*cur_cp < cp && byte < len)
	{
		unsigned char c = (unsigned char) s[byte];

		byte += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
		(*cur_cp)++;
	}
	return byte > len ? len : byte;
}

typedef struct span_builder
{
	const fb_text *text;
	const fb_encoding *enc;
	const float *prob;			/* [ntok] probability of the chosen label */
	fb_entity_list *out;
	size_t		byte;			/* walk position for substring extraction */
	int32_t		cp;
} span_builder;

static fb_status
emit_span(span_builder *b, int first, int last, const char *type, fb_error *err)
{
	fb_entity  *e;
	int32_t		start = b->enc->start[first],
				end = b->enc->end[last];
	size_t		b0,
				b1;
	double		score = 0.0;

	if (b->out->n == b->out->cap)
	{
		size_t		cap = b->out->cap ? b->out->cap * 2 : 8;
		fb_entity  *p = realloc(b->out->items, cap * sizeof(fb_entity));

		if (p == NULL)
			return fb_fail(err, FB_ERR_NOMEM, "out of memory");
		b->out->items = p;
		b->out->cap = cap;
	}
	b0 = advance_cp(b->text->data, b->text->len, b->byte, &b->cp, start);
	b->byte = b0;
	b1 = advance_cp(b->text->data, b->text->len, b0, &b->cp, end);
	b->byte = b1;
	e = &b->out->items[b->out->n];
	e->text = malloc(b1 - b0 + 1);
	if (e->text == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	memcpy(e->text, b->text->data + b0, b1 - b0);
	e->text[b1 - b0] = '\0';
	e->label = type;
	e->start = start;
	e->end = end;
	for (int t = first; t <= last; t++)
		score += b->prob[t];
	e->score = (float) (score / (last - first + 1));
	b->out->n++;
	return FB_OK;
}

/* Decodes token labels into spans (sub-word pieces already folded). */
static fb_status
decode_spans(const fb_model *m, span_builder *b, const int *labels, int ntok,
			 fb_error *err)
{
	const char *const *names = (const char *const *) m->cfg.labels;
	int			open = -1;		/* first token of the open span */
	const char *open_type = NULL;
	fb_status	st;

#define CLOSE(last_tok) do { \
		if (open >= 0 && (st = emit_span(b, open, (last_tok), open_type, err)) != FB_OK) return st; \
		open = -1; open_type = NULL; } while (0)

	for (int t = 0; t < ntok; t++)
	{
		tag_info	ti = parse_label(names[labels[t]]);
		bool		same = open >= 0 && strcmp(open_type, ti.type) == 0;

		switch (ti.tag)
		{
			case 'O':
				CLOSE(t - 1);
				break;
			case 'B':
				CLOSE(t - 1);
				open = t;
				open_type = ti.type;
				break;
			case 'S':
				CLOSE(t - 1);
				open = t;
				open_type = ti.type;
				CLOSE(t);
				break;
			case 'I':
			case 'X':
				if (!same)
				{
					CLOSE(t - 1);
					open = t;
					open_type = ti.type;
				}
				break;
			case 'E':
				if (!same)
				{
					CLOSE(t - 1);
					open = t;
					open_type = ti.type;
				}
				CLOSE(t);
				break;
		}
	}
	CLOSE(ntok - 1);
#undef CLOSE
	return FB_OK;
}

/* Label id with the given tag and type, -1 when the scheme has none. */
static int
find_label(const fb_model *m, char tag, const char *type)
{
	for (int j = 0; j < m->cfg.n_labels; j++)
	{
		tag_info	ti = parse_label(m->cfg.labels[j]);

		if (ti.tag == tag && strcmp(ti.type, type) == 0)
			return j;
	}
	return -1;
}

/*
 * Sub-word folding: a "##" piece belongs to the word before it, so it
 * takes that word's entity instead of its own: after B-x or I-x it becomes
 * I-x; after E-x or S-x the entity is extended to end on the piece.
 */
static void
fold_subwords(const fb_model *m, const fb_encoding *enc, int *labels)
{
	for (size_t t = 1; t < enc->n; t++)
	{
		const char *tok = fb_tokenizer_id_to_token(m->tok, enc->ids[t]);
		tag_info	prev;
		int			inside,
					j;

		if (tok == NULL || strncmp(tok, "##", 2) != 0 || enc->start[t] != enc->end[t - 1])
			continue;
		prev = parse_label(m->cfg.labels[labels[t - 1]]);
		if (prev.tag == 'O' || prev.tag == 'X')
		{
			labels[t] = labels[t - 1];
			continue;
		}
		inside = find_label(m, 'I', prev.type);
		if (prev.tag == 'B' || prev.tag == 'I')
		{
			if (inside >= 0)
				labels[t] = inside;
			continue;
		}
		/* prev is E-x or S-x: move the end onto this piece */
		j = find_label(m, prev.tag == 'S' ? 'B' : 'I', prev.type);
		if (j >= 0 && find_label(m, 'E', prev.type) >= 0)
		{
			labels[t - 1] = j;
			labels[t] = find_label(m, 'E', prev.type);
		}
	}
}

/*
 * Merged token logits of the text in s->enc: windows of W tokens advanced
 * by the stride, each token scored by its most central window.
 */
static fb_status
merged_logits(fb_session *s, const fb_task_options *opts, float **out, fb_error *err)
{
	const fb_model *m = s->model;
	int			NL = m->cfg.n_labels,
				maxlen,
				W,
				stride,
				ntok = (int) s->enc.n,
				nwin = 0;
	seq_list	seqs = {0};
	ner_acc		acc = {0};
	int		   *win_start = NULL;
	fb_status	st;

	*out = NULL;
	if ((st = fb_resolve_max_length(m, opts, &maxlen, err)) != FB_OK)
		return st;
	W = maxlen - 2;
	/* default advance: three quarters of a window, so every token has at
	 * least an eighth of a window of context on its outer side */
	stride = opts->ner_stride > 0 ? opts->ner_stride : (W * 3) / 4;
	if (stride < 1)
		stride = 1;
	if (stride > W)
		stride = W;
	win_start = malloc(sizeof(int) * (size_t) (ntok / stride + 2));
	acc.logits = malloc(sizeof(float) * (size_t) (ntok > 0 ? ntok : 1) * NL);
	acc.best_margin = malloc(sizeof(int) * (size_t) (ntok > 0 ? ntok : 1));
	if (win_start == NULL || acc.logits == NULL || acc.best_margin == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}
	for (int t = 0; t < ntok; t++)
		acc.best_margin[t] = -1;
	for (int a = 0; ntok > 0; a += stride)
	{
		int			b = a + W < ntok ? a + W : ntok;

		if (a + W >= ntok && ntok > W)
			a = ntok - W;		/* last window aligned to the end */
		win_start[nwin] = a;
		if ((st = fb_seq_list_add(&seqs, m, s->enc.ids, a, b, (size_t) nwin, err)) != FB_OK)
			goto done;
		nwin++;
		if (b >= ntok)
			break;
	}
	acc.m = m;
	acc.win_start = win_start;
	if ((st = fb_run_sequences(s, &seqs, FB_OUT_TOKEN_LOGITS, ner_done, &acc, err)) != FB_OK)
		goto done;
	*out = acc.logits;
	acc.logits = NULL;
done:
	fb_seq_list_free(&seqs);
	free(win_start);
	free(acc.logits);
	free(acc.best_margin);
	return st;
}

static fb_status
prepare_tokens(fb_session *s, const fb_text *text, const fb_task_options *opts,
			   fb_error *err)
{
	fb_status	st;

	if (s->model->info.head != FB_HEAD_TOKEN)
		return fb_fail(err, FB_ERR_INVALID, "this model has no token-classification head");
	if ((st = fb_encode_text(s, text, err)) != FB_OK)
		return st;
	if (s->enc.n > (size_t) INT32_MAX / 2)
		return fb_fail(err, FB_ERR_LIMIT, "text has too many tokens");
	return FB_OK;
}

fb_status
fb_token_logits(fb_session *s, const fb_text *text, const fb_task_options *opts,
				float **out, int *n_tokens, fb_error *err)
{
	fb_task_options defaults = fb_task_default_options();
	fb_status	st;

	*out = NULL;
	*n_tokens = 0;
	if (opts == NULL)
		opts = &defaults;
	if ((st = prepare_tokens(s, text, opts, err)) != FB_OK)
		return st;
	if ((st = merged_logits(s, opts, out, err)) != FB_OK)
		return st;
	*n_tokens = (int) s->enc.n;
	return FB_OK;
}

fb_status
fb_entities(fb_session *s, const fb_text *text, const fb_task_options *opts,
			fb_entity_list *out, fb_error *err)
{
	const fb_model *m = s->model;
	fb_task_options defaults = fb_task_default_options();
	int			NL = m->cfg.n_labels,
				ntok;
	float	   *logits = NULL,
			   *prob = NULL;
	int		   *labels = NULL;
	span_builder sb;
	fb_status	st;

	if (opts == NULL)
		opts = &defaults;
	if ((st = prepare_tokens(s, text, opts, err)) != FB_OK)
		return st;
	ntok = (int) s->enc.n;
	if (ntok == 0)
		return FB_OK;
	if ((st = merged_logits(s, opts, &logits, err)) != FB_OK)
		return st;
	labels = malloc(sizeof(int) * (size_t) ntok);
	prob = malloc(sizeof(float) * (size_t) ntok);
	if (labels == NULL || prob == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}
	if (m->crf_trans != NULL)
	{
		if ((st = crf_viterbi(m, logits, ntok, labels, err)) != FB_OK)
			goto done;
	}
	else
	{
		for (int t = 0; t < ntok; t++)
			labels[t] = fb_argmax(logits + (size_t) t * NL, NL);
	}
	/* probability of the chosen label at each token */
	for (int t = 0; t < ntok; t++)
	{
		float	   *row = logits + (size_t) t * NL;

		fb_cpu_softmax(row, 1, NL);
		prob[t] = row[labels[t]];
	}
	fold_subwords(m, &s->enc, labels);

	sb.text = text;
	sb.enc = &s->enc;
	sb.prob = prob;
	sb.out = out;
	sb.byte = 0;
	sb.cp = 0;
	st = decode_spans(m, &sb, labels, ntok, err);
done:
	free(logits);
	free(labels);
	free(prob);
	return st;
}

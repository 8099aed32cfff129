/*
 * fb_tasks.h — sequences and batching shared by the task front ends
 * (tasks.c for classification and embeddings, ner.c for entities).
 */
#ifndef FB_TASKS_H
#define FB_TASKS_H

#include "fb_model.h"

/* One encoder input: [CLS] tokens [SEP]. */
typedef struct seq_ref
{
	int32_t    *ids;			/* len entries */
	int			len;
	size_t		owner;			/* text index or window index */
} seq_ref;

typedef struct seq_list
{
	seq_ref    *items;
	size_t		n,
				cap;
} seq_list;

/* Called with a sequence's part of the output asked for: [len, H] rows
 * (FB_OUT_HIDDEN), [len, NL] (FB_OUT_TOKEN_LOGITS), [H] (CLS, MEAN,
 * POOLED) or [NL] (FB_OUT_SEQ_LOGITS). */
typedef fb_status (*seq_done_fn) (void *arg, const seq_ref *seq, const float *out,
								  fb_error *err);

void		fb_seq_list_free(seq_list *l);
/* Appends [CLS] tokens[a, b) [SEP] owned by `owner`. */
fb_status	fb_seq_list_add(seq_list *l, const fb_model *m, const int32_t *tokens,
						 int a, int b, size_t owner, fb_error *err);
/*
 * Sequences run through the backend in batches of at most max_batch_tokens
 * tokens as they are added (fb_runner_add: [CLS] tokens[a, b) [SEP]);
 * done() sees each one's output (one FB_OUT_* bit), in order.  A batch is
 * submitted before the previous one is taken back, so the caller's work
 * between adds (tokenizing) overlaps a device's.  fb_runner_free after
 * any outcome.
 */
typedef struct seq_runner
{
	fb_session *s;
	unsigned	output;
	seq_done_fn done;
	void	   *arg;
	seq_list	seqs;			/* every sequence added (ids freed once done) */
	size_t		next_submit;	/* first sequence not yet submitted */
	size_t		pending_tokens; /* tokens of the sequences not yet submitted */
	size_t		flight_first[FB_BACKEND_MAX_IN_FLIGHT]; /* batches in flight,
														 * oldest first */
	size_t		flight_end[FB_BACKEND_MAX_IN_FLIGHT];
	int			n_flight;
	const int32_t **ids;		/* one batch's arrays, reused */
	int		   *lens;
	size_t		cap;
} seq_runner;

fb_status	fb_runner_init(seq_runner *r, fb_session *s, unsigned output,
						   seq_done_fn done, void *arg, fb_error *err);
fb_status	fb_runner_add(seq_runner *r, const int32_t *tokens, int a, int b,
						  size_t owner, fb_error *err);
fb_status	fb_runner_finish(seq_runner *r, fb_error *err);
void		fb_runner_free(seq_runner *r);

/* All of a list through a runner. */
fb_status	fb_run_sequences(fb_session *s, const seq_list *l, unsigned output,
							 seq_done_fn done, void *arg, fb_error *err);
fb_status	fb_resolve_max_length(const fb_model *m, const fb_task_options *o,
							   int *out, fb_error *err);
/* Tokenizes into s->enc without special tokens. */
fb_status	fb_encode_text(fb_session *s, const fb_text *t, fb_error *err);

#endif

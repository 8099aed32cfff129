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

typedef fb_status (*seq_done_fn) (void *arg, const seq_ref *seq,
								  const float *hidden, const float *pooled,
								  fb_error *err);

void		fb_seq_list_free(seq_list *l);
/* Appends [CLS] tokens[a, b) [SEP] owned by `owner`. */
fb_status	fb_seq_list_add(seq_list *l, const fb_model *m, const int32_t *tokens,
						 int a, int b, size_t owner, fb_error *err);
/* Runs the sequences through the encoder in batches of at most
 * max_batch_tokens tokens and calls done for each, in order.  With
 * cls_only, done sees only the [CLS] row of each sequence's last layer. */
fb_status	fb_run_sequences(fb_session *s, const seq_list *l, bool want_pooled,
							 bool cls_only, seq_done_fn done, void *arg,
							 fb_error *err);
fb_status	fb_resolve_max_length(const fb_model *m, const fb_task_options *o,
							   int *out, fb_error *err);
/* Tokenizes into s->enc without special tokens. */
fb_status	fb_encode_text(fb_session *s, const fb_text *t, fb_error *err);

#endif

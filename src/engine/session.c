/*
 * session.c — sessions and batches on a model's backend: the public
 * forward-pass entry points (fb_forward, fb_forward_submit / wait) and the
 * submit / wait the task front ends use.
 */
#include <stdlib.h>
#include <string.h>

#include "fb_model.h"

fb_status
fb_session_open(const fb_model *model, fb_session **out, fb_error *err)
{
	fb_session *s = calloc(1, sizeof(*s));
	fb_status	st;

	*out = NULL;
	if (s == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	s->model = model;
	fb_encoding_init(&s->enc);
	/* the backend polls s->ctl, which fb_session_set_ctl updates in place */
	st = model->backend->session_init(model->bmodel, &s->ctl, &s->bs, err);
	if (st != FB_OK)
	{
		free(s);
		return st;
	}
	*out = s;
	return FB_OK;
}

fb_session *
fb_session_new(const fb_model *model)
{
	fb_session *s;

	return fb_session_open(model, &s, NULL) == FB_OK ? s : NULL;
}

void
fb_session_free(fb_session *s)
{
	if (s == NULL)
		return;
	s->model->backend->session_free(s->bs);
	fb_encoding_free(&s->enc);
	free(s);
}

void
fb_session_set_ctl(fb_session *s, const fb_run_ctl *ctl)
{
	if (ctl != NULL)
	{
		s->ctl = *ctl;
		s->has_ctl = 1;
	}
	else
	{
		memset(&s->ctl, 0, sizeof(s->ctl));
		s->has_ctl = 0;
	}
}

int
fb_session_set_threads(fb_session *s, int n)
{
	return s->model->backend->session_set_threads(s->bs, n < 1 ? 1 : n);
}

fb_status
fb_session_reserve(fb_session *s, size_t n_tokens, int n_seq, int max_len, fb_error *err)
{
	if (n_tokens < 1 || n_seq < 1 || max_len < 1 || max_len > s->model->cfg.max_position ||
		(size_t) n_seq > n_tokens)
		return fb_fail(err, FB_ERR_INVALID, "cannot reserve %zu tokens in %d sequences of at most %d",
					   n_tokens, n_seq, max_len);
	return s->model->backend->reserve(s->bs, n_tokens, n_seq, max_len, err);
}

/* Can this model produce these outputs? */
static fb_status
check_outputs(const fb_model *m, unsigned outputs, fb_error *err)
{
	if (outputs == 0 || (outputs & ~FB_OUT_ALL) != 0)
		return fb_fail(err, FB_ERR_INVALID, "invalid output set 0x%x", outputs);
	if ((outputs & FB_OUT_POOLED) && m->pool_w == NULL)
		return fb_fail(err, FB_ERR_UNSUPPORTED, "this model has no pooler");
	if ((outputs & FB_OUT_SEQ_LOGITS) && m->info.head != FB_HEAD_SEQUENCE)
		return fb_fail(err, FB_ERR_INVALID, "this model has no sequence-classification head");
	if ((outputs & FB_OUT_TOKEN_LOGITS) && m->info.head != FB_HEAD_TOKEN)
		return fb_fail(err, FB_ERR_INVALID, "this model has no token-classification head");
	return FB_OK;
}

fb_status
fb_session_submit(fb_session *s, const fb_batch *b, unsigned outputs, fb_error *err)
{
	size_t		T;
	int			maxL;
	fb_status	st;

	if (s->n_pending >= FB_BACKEND_MAX_IN_FLIGHT)
		return fb_fail(err, FB_ERR_INVALID, "%d batches are in flight already",
					   FB_BACKEND_MAX_IN_FLIGHT);
	if ((st = check_outputs(s->model, outputs, err)) != FB_OK ||
		(st = fb_batch_check(s->model, b, &T, &maxL, err)) != FB_OK)
		return st;
	if (s->has_ctl && fb_interrupted(&s->ctl))
		return fb_fail(err, FB_ERR_INTERRUPTED, "interrupted");
	if ((st = s->model->backend->submit(s->bs, b, outputs, err)) != FB_OK)
		return st;
	s->n_pending++;
	return FB_OK;
}

fb_status
fb_session_wait(fb_session *s, fb_outputs *out, fb_error *err)
{
	if (s->n_pending == 0)
		return fb_fail(err, FB_ERR_INVALID, "no batch in flight");
	/* the batch leaves the session's count even when it failed */
	s->n_pending--;
	return s->model->backend->wait(s->bs, out, err);
}

/* The task functions need the session to themselves. */
static fb_status
check_idle(const fb_session *s, fb_error *err)
{
	if (s->n_pending > 0)
		return fb_fail(err, FB_ERR_INVALID,
					   "the session has batches in flight; call fb_forward_wait first");
	return FB_OK;
}

fb_status
fb_forward_submit(fb_session *s, const fb_batch *b, unsigned outputs, fb_error *err)
{
	return fb_session_submit(s, b, outputs, err);
}

fb_status
fb_forward_wait(fb_session *s, fb_outputs *out, fb_error *err)
{
	return fb_session_wait(s, out, err);
}

fb_status
fb_forward(fb_session *s, const fb_batch *b, float *hidden, float *pooled, fb_error *err)
{
	fb_outputs	o;
	fb_status	st;
	int			H = s->model->cfg.hidden;

	if ((st = check_idle(s, err)) != FB_OK)
		return st;
	if ((st = fb_session_submit(s, b, (hidden != NULL || pooled == NULL ? FB_OUT_HIDDEN : 0) |
								(pooled != NULL ? FB_OUT_POOLED : 0), err)) != FB_OK ||
		(st = fb_session_wait(s, &o, err)) != FB_OK)
		return st;
	if (hidden != NULL)
		memcpy(hidden, o.hidden, sizeof(float) * o.n_rows * H);
	if (pooled != NULL)
		memcpy(pooled, o.pooled, sizeof(float) * (size_t) o.n_seq * H);
	return FB_OK;
}

fb_status
fb_session_check_idle(const fb_session *s, fb_error *err)
{
	return check_idle(s, err);
}

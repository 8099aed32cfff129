/*
 * run.c — one request on an opened model in this process: FinbertRun, the
 * one implementation behind inline execution (exec.c) and the background
 * worker (worker.c), so results, errors and SQLSTATEs cannot differ.
 *
 * How it calls the engine is the caller's FinbertRunContext, passed in and
 * never stored: the interrupt callback of the calling thread, whether an
 * interrupted engine call is an error (worker) or a harmless interrupt to
 * service and repeat (backend), and optionally functions that split an
 * engine call over several sessions (the worker's lanes).
 *
 * Rules for calling the engine from a backend:
 *  - never longjmp through it: its interrupt callback only reports that an
 *    interrupt is pending; the engine returns FB_ERR_INTERRUPTED with its
 *    state freed, and we call CHECK_FOR_INTERRUPTS() afterwards (which
 *    raises the cancel or timeout error, or services a harmless interrupt
 *    after which the call is repeated);
 *  - whatever the engine malloc'd (entity lists, encodings) is freed before
 *    an ereport can escape;
 *  - CHECK_FOR_INTERRUPTS() between engine calls (batches, texts).
 */
#include "postgres.h"

#include "miscadmin.h"

#include "finbert_pg.h"

/* Consecutive harmless interrupts tolerated before giving up. */
#define FINBERT_MAX_INTERRUPT_RETRIES 1000

/* Engine interrupt callback: nonzero when CHECK_FOR_INTERRUPTS would act. */
static int
FinbertInterrupt(void *arg)
{
	return INTERRUPTS_PENDING_CONDITION() && INTERRUPTS_CAN_BE_PROCESSED();
}

static const fb_run_ctl BackendRunCtl = {FinbertInterrupt, NULL};

static const FinbertRunContext BackendRun = {&BackendRunCtl, false, NULL, NULL, NULL};

const FinbertRunContext *
FinbertBackendRunContext(void)
{
	return &BackendRun;
}

fb_status
FinbertClassifyCall(fb_session *s, const fb_text *texts, size_t n,
			 const fb_task_options *opts, float *out, fb_error *err)
{
	return fb_classify(s, texts, n, opts, NULL, out, err);
}

fb_status
FinbertEmbedCall(fb_session *s, const fb_text *texts, size_t n,
		  const fb_task_options *opts, float *out, fb_error *err)
{
	return fb_embed(s, texts, n, opts, out, err);
}

/*
 * An engine call, split by the context (the worker's lanes) if it can;
 * *tokens receives the tokens it ran through the encoder (counted by the
 * engine: fb_session_tokens).
 */
static fb_status
EngineCall(const FinbertRunContext *rc, FinbertEngineCall call, fb_session *s,
		   const fb_text *texts, size_t n, const fb_task_options *opts,
		   float *out, size_t row_floats, uint64 *tokens, fb_error *err)
{
	uint64		before = fb_session_tokens(s);
	fb_status	status;

	if (rc->parallel_call)
		return rc->parallel_call(rc->parallel_arg, call, s, texts, n, opts,
								 out, row_floats, tokens, err);
	status = call(s, texts, n, opts, out, err);
	*tokens = fb_session_tokens(s) - before;
	return status;
}

/*
 * After an engine call: true when it was interrupted by a harmless
 * interrupt and must be repeated; raises the error of a real one.
 */
static bool
RetryAfterInterrupt(const FinbertRunContext *rc, fb_status status, int *retries)
{
	if (status != FB_ERR_INTERRUPTED)
		return false;
	if (rc->stop_fails)
		ereport(ERROR,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("finbert worker stopped the request"),
				 errdetail("The worker is shutting down, or every requester abandoned the batch.")));
	CHECK_FOR_INTERRUPTS();
	if (++(*retries) > FINBERT_MAX_INTERRUPT_RETRIES)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("finbert request interrupted too often")));
	return true;
}

static void
WrongHead(const char *model, const fb_model_info *info, const char *needed,
		  const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("finbert model \"%s\" is not a %s", model, needed),
			 errdetail("Its head is \"%s\".", FinbertHeadName(info->head)),
			 errhint("%s", hint)));
}

static char **
CopyLabels(const fb_model_info *info)
{
	char	  **labels = palloc(sizeof(char *) * Max(info->n_labels, 1));

	for (int i = 0; i < info->n_labels; i++)
		labels[i] = pstrdup(info->labels[i] ? info->labels[i] : "");
	return labels;
}

/*
 * Classification and embeddings alike: runs the texts req->batch_size
 * (finbert.batch_size) at a time through call, which writes row_floats
 * floats per text to out.
 */
static void
RunBatches(const FinbertRunContext *rc, const FinbertRequest *req,
		   fb_session *session, const fb_task_options *opts,
		   FinbertEngineCall call, float *out, int row_floats,
		   int64 *tokens, int64 *batches)
{
	int			batch = Max(req->batch_size, 1);

	for (int i = 0; i < req->ntexts; i += batch)
	{
		int			n = Min(batch, req->ntexts - i);
		int			retries = 0;
		uint64		ran = 0;
		fb_error	err;
		fb_status	status;

		do
		{
			status = EngineCall(rc, call, session, req->texts + i, n, opts,
								out + (size_t) i * row_floats, row_floats,
								&ran, &err);
		} while (RetryAfterInterrupt(rc, status, &retries));
		if (status != FB_OK)
			FinbertEngineError(&err, psprintf("finbert model \"%s\" failed", req->model));
		*tokens += (int64) ran;
		(*batches)++;
		CHECK_FOR_INTERRUPTS();
	}
}

static void
RunClassify(const FinbertRunContext *rc, const FinbertRequest *req,
			fb_model *model, fb_session *session, const fb_task_options *opts,
			FinbertResult *res, int64 *tokens, int64 *batches)
{
	const fb_model_info *info = fb_model_get_info(model);
	int			nl = info->n_labels;

	if (info->head != FB_HEAD_SEQUENCE)
		WrongHead(req->model, info, "sequence classifier",
				  "Use a model with a sequence classification head (task sentiment, industry, type or classify).");
	res->nlabels = nl;
	res->labels = CopyLabels(info);
	res->multi_label = info->multi_label != 0;
	res->probs = palloc0(sizeof(float4) * Max((size_t) req->ntexts * nl, 1));
	RunBatches(rc, req, session, opts, FinbertClassifyCall, res->probs, nl,
			   tokens, batches);
}

static void
RunEntities(const FinbertRunContext *rc, const FinbertRequest *req,
			fb_model *model, fb_session *session, const fb_task_options *opts,
			FinbertResult *res, int64 *tokens, int64 *batches)
{
	const fb_model_info *info = fb_model_get_info(model);
	fb_entity_list *plists = NULL;
	fb_status  *pstatus = NULL;
	fb_error   *perr = NULL;
	uint64	   *ptokens = NULL;

	if (info->head != FB_HEAD_TOKEN)
		WrongHead(req->model, info, "token classifier",
				  "Use a model with a token classification head (task ner).");
	res->nlabels = info->n_labels;
	res->labels = CopyLabels(info);
	res->nentities = palloc0(sizeof(int) * Max(req->ntexts, 1));
	res->entities = palloc0(sizeof(FinbertEntity *) * Max(req->ntexts, 1));

	/*
	 * In the worker, the texts run over its lanes (or in its engine host,
	 * even a single text) first; then, in text order as inline, each is
	 * counted and its entities copied out.  A text whose lane failed (or
	 * stopped) runs again here, which raises the very error inline
	 * execution raises for it.
	 */
	if (rc->parallel_entities && req->ntexts > 0)
	{
		plists = palloc0(sizeof(fb_entity_list) * req->ntexts);
		pstatus = palloc(sizeof(fb_status) * req->ntexts);
		perr = palloc(sizeof(fb_error) * req->ntexts);
		ptokens = palloc0(sizeof(uint64) * req->ntexts);
		for (int i = 0; i < req->ntexts; i++)
			fb_entity_list_init(&plists[i]);
		rc->parallel_entities(rc->parallel_arg, session, req->texts,
							  req->ntexts, opts, plists, pstatus, ptokens,
							  perr);
	}

	PG_TRY();
	{
		for (int i = 0; i < req->ntexts; i++)
		{
			fb_entity_list list;
			fb_error	err;
			fb_status	status = FB_ERR_INTERRUPTED;
			int			retries = 0;

			fb_entity_list_init(&list);
			if (plists && pstatus[i] == FB_OK)
			{
				list = plists[i];
				fb_entity_list_init(&plists[i]);
				status = FB_OK;
				*tokens += (int64) ptokens[i];
			}
			else
			{
				uint64		before;

				do
				{
					before = fb_session_tokens(session);
					status = fb_entities(session, &req->texts[i], opts, &list, &err);
					if (status != FB_OK)
					{
						fb_entity_list_free(&list);
						fb_entity_list_init(&list);
					}
				} while (RetryAfterInterrupt(rc, status, &retries));
				if (status == FB_OK)
					*tokens += (int64) (fb_session_tokens(session) - before);
			}
			if (status != FB_OK)
				FinbertEngineError(&err, psprintf("finbert model \"%s\" failed", req->model));

			/* copy out; the engine's list is freed even if palloc fails */
			PG_TRY();
			{
				FinbertEntity *ents = palloc(sizeof(FinbertEntity) * Max(list.n, 1));

				for (size_t k = 0; k < list.n; k++)
				{
					const fb_entity *e = &list.items[k];

					ents[k].text = pstrdup(e->text ? e->text : "");
					ents[k].label = NULL;
					for (int l = 0; l < res->nlabels; l++)
						if (e->label && strcmp(res->labels[l], e->label) == 0)
							ents[k].label = res->labels[l];
					if (ents[k].label == NULL)
						ents[k].label = pstrdup(e->label ? e->label : "");
					ents[k].start = e->start;
					ents[k].end = e->end;
					ents[k].score = e->score;
				}
				res->entities[i] = ents;
				res->nentities[i] = (int) list.n;
			}
			PG_FINALLY();
			{
				fb_entity_list_free(&list);
			}
			PG_END_TRY();
			(*batches)++;
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_FINALLY();
	{
		if (plists)
			for (int i = 0; i < req->ntexts; i++)
				fb_entity_list_free(&plists[i]);
	}
	PG_END_TRY();
}

static void
RunEmbed(const FinbertRunContext *rc, const FinbertRequest *req,
		 fb_model *model, fb_session *session, fb_task_options *opts,
		 FinbertResult *res, int64 *tokens, int64 *batches)
{
	const fb_model_info *info = fb_model_get_info(model);
	int			dim = info->hidden;

	if (req->pooling == FB_POOL_POOLER && !info->has_pooler)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("finbert model \"%s\" has no pooler", req->model),
				 errhint("Use pooling 'cls' or 'mean'.")));
	opts->pooling = req->pooling;
	opts->normalize = 1;		/* <-> then orders like cosine similarity */
	res->dim = dim;
	res->embeddings = palloc0(sizeof(float4) * Max((size_t) req->ntexts * dim, 1));
	RunBatches(rc, req, session, opts, FinbertEmbedCall, res->embeddings, dim,
			   tokens, batches);
}

/* Tokenization runs no forward pass: it counts the tokens it returns. */
static void
RunTokenize(const FinbertRunContext *rc, const FinbertRequest *req,
			fb_model *model, FinbertResult *res, int64 *tokens)
{
	const fb_tokenizer *tok = fb_model_tokenizer(model);

	res->ntokens = palloc0(sizeof(int) * Max(req->ntexts, 1));
	res->tokens = palloc0(sizeof(char **) * Max(req->ntexts, 1));
	for (int i = 0; i < req->ntexts; i++)
	{
		fb_encoding enc;
		fb_error	err;
		fb_status	status;
		int			retries = 0;

		fb_encoding_init(&enc);
		do
		{
			status = fb_tokenizer_encode(tok, req->texts[i].data,
										 req->texts[i].len, 0,
										 rc->ctl, &enc, &err);
			if (status != FB_OK)
				fb_encoding_free(&enc);
		} while (RetryAfterInterrupt(rc, status, &retries));
		if (status != FB_OK)
			FinbertEngineError(&err, psprintf("could not tokenize text for model \"%s\"", req->model));

		PG_TRY();
		{
			char	  **toks = palloc(sizeof(char *) * Max(enc.n, 1));

			for (size_t k = 0; k < enc.n; k++)
			{
				const char *s = fb_tokenizer_id_to_token(tok, enc.ids[k]);

				toks[k] = pstrdup(s ? s : "[UNK]");
			}
			res->tokens[i] = toks;
			res->ntokens[i] = (int) enc.n;
		}
		PG_FINALLY();
		{
			fb_encoding_free(&enc);
		}
		PG_END_TRY();
		*tokens += res->ntokens[i];
		CHECK_FOR_INTERRUPTS();
	}
}

void
FinbertRun(const FinbertRunContext *rc, const FinbertRequest *req,
		   fb_model *model, fb_session *session, FinbertResult *res,
		   int64 *tokens, int64 *batches)
{
	fb_task_options opts = fb_task_default_options();

	memset(res, 0, sizeof(*res));
	res->ntexts = req->ntexts;
	fb_session_set_ctl(session, rc->ctl);
	/* set by FinbertExecute, within the model's positions (the engine checks) */
	opts.max_length = req->max_length;

	switch (req->task)
	{
		case FINBERT_TASK_CLASSIFY:
			RunClassify(rc, req, model, session, &opts, res, tokens, batches);
			break;
		case FINBERT_TASK_ENTITIES:
			RunEntities(rc, req, model, session, &opts, res, tokens, batches);
			break;
		case FINBERT_TASK_EMBED:
			RunEmbed(rc, req, model, session, &opts, res, tokens, batches);
			break;
		case FINBERT_TASK_TOKENIZE:
			RunTokenize(rc, req, model, res, tokens);
			break;
	}
}

/*
 * memo.c — results computed ahead by a Finbert Batch node (batch.c), for
 * the per-row calls above it.
 *
 * A batch node runs each distinct finbert call of a batch of rows as one
 * request and records every text's result row here, keyed by what decides
 * the result: the task, the model name, the pooling, the window length
 * (finbert.max_length) and the text.  FinbertExecute (exec.c) looks a
 * single-text request up before computing it: a hit returns the recorded
 * row, a miss (a batch that failed, a call that was not batched, a setting
 * changed meanwhile) computes per row as without batching.  So a memo can
 * change speed, never a result or an error.
 *
 * Memos are active while their node has a batch buffered; several nodes of
 * one plan (or of nested statements) may each have one.  A memo lives in
 * a memory context of its node, and unregisters itself when that context
 * goes (the end of the statement, or its abort).
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "finbert_pg.h"

typedef struct MemoKey
{
	uint64		hash;			/* of everything below */
} MemoKey;

/* One recorded text (entries of equal hash are chained). */
typedef struct MemoItem
{
	struct MemoItem *next;
	FinbertTask task;
	fb_pooling	pooling;
	int			max_length;
	char	   *model;
	char	   *text;
	size_t		len;
	const FinbertResult *res;	/* the batch's result ... */
	int			row;			/* ... and this text's row in it */
} MemoItem;

typedef struct MemoEntry
{
	MemoKey		key;
	MemoItem   *items;
} MemoEntry;

struct FinbertMemo
{
	MemoryContext cxt;			/* the node's; holds this memo */
	MemoryContext batch_cxt;	/* the current batch's items and results */
	HTAB	   *table;			/* NULL until the first item of a batch */
	bool		active;
	FinbertMemo *next_active;
	MemoryContextCallback unregister;
};

/* The memos of batches in flight in this process. */
static FinbertMemo *active_memos = NULL;

static uint64
ItemHash(FinbertTask task, const char *model, fb_pooling pooling,
		 int max_length, const char *text, size_t len)
{
	uint32		head[3] = {(uint32) task, (uint32) pooling, (uint32) max_length};
	uint64		h = hash_bytes_extended((const unsigned char *) head, sizeof(head), 0);

	h = hash_bytes_extended((const unsigned char *) model, strlen(model), h);
	return hash_bytes_extended((const unsigned char *) text, len, h);
}

static void
Deactivate(FinbertMemo *memo)
{
	FinbertMemo **p;

	if (!memo->active)
		return;
	for (p = &active_memos; *p; p = &(*p)->next_active)
		if (*p == memo)
		{
			*p = memo->next_active;
			break;
		}
	memo->active = false;
	memo->next_active = NULL;
}

static void
UnregisterMemo(void *arg)
{
	Deactivate((FinbertMemo *) arg);
}

FinbertMemo *
FinbertMemoCreate(MemoryContext cxt)
{
	FinbertMemo *memo = MemoryContextAllocZero(cxt, sizeof(FinbertMemo));

	memo->cxt = cxt;
	memo->batch_cxt = AllocSetContextCreate(cxt, "finbert batch memo",
											ALLOCSET_DEFAULT_SIZES);
	memo->unregister.func = UnregisterMemo;
	memo->unregister.arg = memo;
	MemoryContextRegisterResetCallback(cxt, &memo->unregister);
	return memo;
}

MemoryContext
FinbertMemoContext(FinbertMemo *memo)
{
	return memo->batch_cxt;
}

void
FinbertMemoReset(FinbertMemo *memo)
{
	Deactivate(memo);
	memo->table = NULL;
	MemoryContextReset(memo->batch_cxt);
}

void
FinbertMemoActivate(FinbertMemo *memo)
{
	if (memo->active)
		return;
	memo->next_active = active_memos;
	active_memos = memo;
	memo->active = true;
}

static MemoItem *
Find(FinbertMemo *memo, uint64 hash, FinbertTask task, const char *model,
	 fb_pooling pooling, int max_length, const char *text, size_t len)
{
	MemoKey		key = {hash};
	MemoEntry  *e;

	if (memo->table == NULL)
		return NULL;
	e = hash_search(memo->table, &key, HASH_FIND, NULL);
	for (MemoItem *it = e ? e->items : NULL; it; it = it->next)
		if (it->task == task && it->pooling == pooling &&
			it->max_length == max_length && it->len == len &&
			strcmp(it->model, model) == 0 && memcmp(it->text, text, len) == 0)
			return it;
	return NULL;
}

bool
FinbertMemoContains(FinbertMemo *memo, FinbertTask task, const char *model,
					fb_pooling pooling, int max_length, const fb_text *text)
{
	uint64		h = ItemHash(task, model, pooling, max_length, text->data, text->len);

	return Find(memo, h, task, model, pooling, max_length, text->data, text->len) != NULL;
}

void
FinbertMemoAdd(FinbertMemo *memo, FinbertTask task, const char *model,
			   fb_pooling pooling, int max_length, const fb_text *text,
			   const FinbertResult *res, int row)
{
	uint64		h = ItemHash(task, model, pooling, max_length, text->data, text->len);
	MemoKey		key = {h};
	MemoEntry  *e;
	MemoItem   *it;
	bool		found;

	if (Find(memo, h, task, model, pooling, max_length, text->data, text->len))
		return;
	if (memo->table == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(MemoKey);
		ctl.entrysize = sizeof(MemoEntry);
		ctl.hcxt = memo->batch_cxt;
		memo->table = hash_create("finbert batch memo", 256, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(memo->table, &key, HASH_ENTER, &found);
	if (!found)
		e->items = NULL;
	it = MemoryContextAlloc(memo->batch_cxt, sizeof(MemoItem));
	it->task = task;
	it->pooling = pooling;
	it->max_length = max_length;
	it->model = MemoryContextStrdup(memo->batch_cxt, model);
	it->text = MemoryContextAlloc(memo->batch_cxt, Max(text->len, 1));
	memcpy(it->text, text->data, text->len);
	it->len = text->len;
	it->res = res;
	it->row = row;
	it->next = e->items;
	e->items = it;
}

/* One row of a batch's result as the result of a one-text request. */
static void
RowResult(FinbertTask task, const FinbertResult *res, int row,
		  FinbertResult *out)
{
	memset(out, 0, sizeof(*out));
	out->ntexts = 1;
	switch (task)
	{
		case FINBERT_TASK_CLASSIFY:
			out->nlabels = res->nlabels;
			out->labels = res->labels;
			out->multi_label = res->multi_label;
			out->probs = res->probs + (size_t) row * res->nlabels;
			break;
		case FINBERT_TASK_ENTITIES:
			out->nlabels = res->nlabels;
			out->labels = res->labels;
			out->nentities = &res->nentities[row];
			out->entities = &res->entities[row];
			break;
		case FINBERT_TASK_EMBED:
			out->dim = res->dim;
			out->embeddings = res->embeddings + (size_t) row * res->dim;
			break;
		case FINBERT_TASK_TOKENIZE:
			out->ntokens = &res->ntokens[row];
			out->tokens = &res->tokens[row];
			break;
	}
}

char *
FinbertMemoModelKey(const char *model, const char *pin, MemoryContext cxt)
{
	if (pin == NULL)
		return MemoryContextStrdup(cxt, model);
	else
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		char	   *key = psprintf("%s#%s", model, pin);

		MemoryContextSwitchTo(old);
		return key;
	}
}

int
FinbertMemoWindowKey(const char *pin, int max_length)
{
	return pin == NULL ? max_length : 0;	/* pinned: the model's full window */
}

bool
FinbertMemoLookup(const FinbertRequest *req, int max_length, FinbertResult *out)
{
	uint64		h;
	char	   *owned = NULL;
	const char *key = req->model;	/* an unpinned call's key: no copy */
	bool		found = false;

	if (active_memos == NULL || req->ntexts != 1)
		return false;
	max_length = FinbertMemoWindowKey(req->pin, max_length);
	if (req->pin != NULL)
		key = owned = FinbertMemoModelKey(req->model, req->pin,
										  CurrentMemoryContext);
	h = ItemHash(req->task, key, req->pooling, max_length,
				 req->texts[0].data, req->texts[0].len);
	for (FinbertMemo *m = active_memos; m && !found; m = m->next_active)
	{
		MemoItem   *it = Find(m, h, req->task, key, req->pooling,
							  max_length, req->texts[0].data, req->texts[0].len);

		if (it)
		{
			RowResult(it->task, it->res, it->row, out);
			found = true;
		}
	}
	if (owned)
		pfree(owned);
	return found;
}

/* After an abort: no batch is in flight any more (the contexts go too). */
void
FinbertMemoAtAbort(void)
{
	while (active_memos)
		Deactivate(active_memos);
}

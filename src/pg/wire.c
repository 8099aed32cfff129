/*
 * wire.c — requests and results as bytes in dynamic shared memory.
 *
 * A backend writes its request into a DSM segment it creates (queue.c):
 *
 *   WireRequest header (ids, task, options, the resolved model and its
 *                       precision)
 *   Size offsets[ntexts + 1]    byte offsets of the texts in data
 *   char data[]                 the texts, back to back, never truncated
 *
 * The worker answers in a segment it creates: a flat little record of
 * int32 / float4 values and length-prefixed strings, written with
 * FinbertWireResultWrite from (rows of) a FinbertResult and read back into
 * a palloc'd FinbertResult with FinbertWireResultRead.  Both readers check
 * every length against the segment; a malformed record is an internal
 * error, never a read out of bounds.
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "finbert_pg.h"

#define WIRE_REQUEST_MAGIC	0x46425251	/* "FBRQ" */
#define WIRE_RESULT_MAGIC	0x46425253	/* "FBRS" */

typedef struct WireRequest
{
	uint32		magic;
	int32		task;
	uint64		request_id;
	int32		pooling;
	int32		max_length;
	int32		batch_size;
	int32		ntexts;
	Size		text_bytes;
	FinbertModelRef ref;
	/* Size offsets[ntexts + 1]; char data[text_bytes] follow */
} WireRequest;

static Size
OffsetsStart(void)
{
	return MAXALIGN(sizeof(WireRequest));
}

Size
FinbertWireRequestSize(const FinbertRequest *req)
{
	Size		size = OffsetsStart();
	Size		bytes = 0;

	for (int i = 0; i < req->ntexts; i++)
		bytes = add_size(bytes, req->texts[i].len);
	size = add_size(size, mul_size(sizeof(Size), (Size) req->ntexts + 1));
	return add_size(size, bytes);
}

void
FinbertWireRequestWrite(char *buf, Size size, uint64 request_id,
						const FinbertRequest *req, const FinbertModelRef *ref)
{
	WireRequest *h = (WireRequest *) buf;
	Size	   *offsets = (Size *) (buf + OffsetsStart());
	char	   *data = (char *) (offsets + req->ntexts + 1);
	Size		pos = 0;

	Assert(size == FinbertWireRequestSize(req));
	memset(h, 0, sizeof(*h));
	h->magic = WIRE_REQUEST_MAGIC;
	h->task = (int32) req->task;
	h->request_id = request_id;
	h->pooling = (int32) req->pooling;
	h->max_length = req->max_length;
	h->batch_size = req->batch_size;
	h->ntexts = req->ntexts;
	h->ref = *ref;
	for (int i = 0; i < req->ntexts; i++)
	{
		offsets[i] = pos;
		if (req->texts[i].len > 0)
			memcpy(data + pos, req->texts[i].data, req->texts[i].len);
		pos += req->texts[i].len;
	}
	offsets[req->ntexts] = pos;
	h->text_bytes = pos;
}

/*
 * Reads a request written by FinbertWireRequestWrite.  The texts point
 * into buf; req->model points into *ref.  Returns false when the segment
 * is not the request it should be.
 */
bool
FinbertWireRequestRead(const char *buf, Size size, uint64 request_id,
					   FinbertRequest *req, FinbertModelRef *ref,
					   fb_text **texts_out)
{
	const WireRequest *h = (const WireRequest *) buf;
	const Size *offsets;
	const char *data;
	fb_text    *texts;
	Size		room;

	if (size < OffsetsStart() || h->magic != WIRE_REQUEST_MAGIC ||
		h->request_id != request_id || h->ntexts < 0 ||
		h->task < FINBERT_TASK_CLASSIFY || h->task > FINBERT_TASK_TOKENIZE)
		return false;
	room = size - OffsetsStart();
	if ((Size) h->ntexts + 1 > room / sizeof(Size))
		return false;
	offsets = (const Size *) (buf + OffsetsStart());
	data = (const char *) (offsets + h->ntexts + 1);
	room -= ((Size) h->ntexts + 1) * sizeof(Size);
	if (h->text_bytes > room || offsets[h->ntexts] != h->text_bytes)
		return false;

	if (h->ref.precision != FB_PRECISION_FP32 &&
		h->ref.precision != FB_PRECISION_INT8)
		return false;
	*ref = h->ref;
	ref->name[sizeof(ref->name) - 1] = '\0';
	ref->path[sizeof(ref->path) - 1] = '\0';
	ref->sha256[sizeof(ref->sha256) - 1] = '\0';

	texts = palloc(sizeof(fb_text) * Max(h->ntexts, 1));
	for (int i = 0; i < h->ntexts; i++)
	{
		if (offsets[i] > offsets[i + 1] || offsets[i + 1] > h->text_bytes)
		{
			pfree(texts);
			return false;
		}
		texts[i].data = data + offsets[i];
		texts[i].len = offsets[i + 1] - offsets[i];
	}

	memset(req, 0, sizeof(*req));
	req->task = (FinbertTask) h->task;
	req->model = ref->name;
	req->guc = NULL;
	req->ntexts = h->ntexts;
	req->texts = texts;
	req->pooling = (fb_pooling) h->pooling;
	req->max_length = h->max_length;
	req->batch_size = h->batch_size;
	*texts_out = texts;
	return true;
}

/* ------------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------------ */
static inline void
PutInt32(StringInfo out, int32 v)
{
	appendBinaryStringInfo(out, (const char *) &v, sizeof(v));
}

static inline void
PutFloats(StringInfo out, const float4 *v, Size n)
{
	if (n > 0)
		appendBinaryStringInfo(out, (const char *) v, (int) (n * sizeof(float4)));
}

static inline void
PutString(StringInfo out, const char *s)
{
	Size		len = strlen(s);

	PutInt32(out, (int32) len);
	appendBinaryStringInfo(out, s, (int) len);
}

static void
PutLabels(StringInfo out, const FinbertResult *res)
{
	PutInt32(out, res->nlabels);
	for (int l = 0; l < res->nlabels; l++)
		PutString(out, res->labels[l]);
}

/*
 * Appends rows[0 .. nrows-1] of res (a result of task) to out, in that
 * order: the worker answers each request with its own rows of a merged
 * batch.
 */
void
FinbertWireResultWrite(StringInfo out, FinbertTask task,
					   const FinbertResult *res, const int *rows, int nrows)
{
	PutInt32(out, WIRE_RESULT_MAGIC);
	PutInt32(out, (int32) task);
	PutInt32(out, nrows);
	switch (task)
	{
		case FINBERT_TASK_CLASSIFY:
			PutLabels(out, res);
			PutInt32(out, res->multi_label ? 1 : 0);
			for (int k = 0; k < nrows; k++)
				PutFloats(out, res->probs + (size_t) rows[k] * res->nlabels,
						  res->nlabels);
			break;
		case FINBERT_TASK_EMBED:
			PutInt32(out, res->dim);
			for (int k = 0; k < nrows; k++)
				PutFloats(out, res->embeddings + (size_t) rows[k] * res->dim,
						  res->dim);
			break;
		case FINBERT_TASK_ENTITIES:
			PutLabels(out, res);
			for (int k = 0; k < nrows; k++)
			{
				int			r = rows[k];

				PutInt32(out, res->nentities[r]);
				for (int e = 0; e < res->nentities[r]; e++)
				{
					const FinbertEntity *ent = &res->entities[r][e];

					PutString(out, ent->text);
					PutString(out, ent->label);
					PutInt32(out, ent->start);
					PutInt32(out, ent->end);
					PutFloats(out, &ent->score, 1);
				}
			}
			break;
		case FINBERT_TASK_TOKENIZE:
			for (int k = 0; k < nrows; k++)
			{
				int			r = rows[k];

				PutInt32(out, res->ntokens[r]);
				for (int t = 0; t < res->ntokens[r]; t++)
					PutString(out, res->tokens[r][t]);
			}
			break;
	}
}

typedef struct WireReader
{
	const char *buf;
	Size		size;
	Size		pos;
} WireReader;

static void
Corrupt(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("malformed result from the finbert worker")));
}

static const char *
Take(WireReader *r, Size n)
{
	const char *p;

	if (n > r->size - r->pos)
		Corrupt();
	p = r->buf + r->pos;
	r->pos += n;
	return p;
}

static int32
GetInt32(WireReader *r)
{
	int32		v;

	memcpy(&v, Take(r, sizeof(v)), sizeof(v));
	return v;
}

/* A count that the rest of the record must be able to hold. */
static int
GetCount(WireReader *r, Size min_bytes_each)
{
	int32		n = GetInt32(r);

	if (n < 0 || (min_bytes_each > 0 && (Size) n > (r->size - r->pos) / min_bytes_each))
		Corrupt();
	return n;
}

static void
GetFloats(WireReader *r, float4 *dst, Size n)
{
	if (n > (r->size - r->pos) / sizeof(float4))
		Corrupt();
	if (n > 0)
		memcpy(dst, Take(r, n * sizeof(float4)), n * sizeof(float4));
}

static char *
GetString(WireReader *r)
{
	int32		len = GetInt32(r);
	char	   *s;

	if (len < 0)
		Corrupt();
	s = palloc((Size) len + 1);
	memcpy(s, Take(r, (Size) len), (Size) len);
	s[len] = '\0';
	return s;
}

static void
GetLabels(WireReader *r, FinbertResult *res)
{
	res->nlabels = GetCount(r, sizeof(int32));
	res->labels = palloc(sizeof(char *) * Max(res->nlabels, 1));
	for (int l = 0; l < res->nlabels; l++)
		res->labels[l] = GetString(r);
}

/* Reads a result written by FinbertWireResultWrite into res (palloc'd). */
void
FinbertWireResultRead(const char *buf, Size size, FinbertTask task,
					  FinbertResult *res)
{
	WireReader	r = {buf, size, 0};
	int			n;

	memset(res, 0, sizeof(*res));
	if (GetInt32(&r) != WIRE_RESULT_MAGIC || GetInt32(&r) != (int32) task)
		Corrupt();
	n = GetCount(&r, 0);
	res->ntexts = n;
	switch (task)
	{
		case FINBERT_TASK_CLASSIFY:
			GetLabels(&r, res);
			res->multi_label = GetInt32(&r) != 0;
			res->probs = palloc0(mul_size(sizeof(float4),
										  Max(mul_size((Size) n, (Size) res->nlabels), 1)));
			GetFloats(&r, res->probs, (Size) n * res->nlabels);
			break;
		case FINBERT_TASK_EMBED:
			res->dim = GetCount(&r, 0);
			res->embeddings = palloc0(mul_size(sizeof(float4),
											   Max(mul_size((Size) n, (Size) res->dim), 1)));
			GetFloats(&r, res->embeddings, (Size) n * res->dim);
			break;
		case FINBERT_TASK_ENTITIES:
			GetLabels(&r, res);
			res->nentities = palloc0(sizeof(int) * Max(n, 1));
			res->entities = palloc0(sizeof(FinbertEntity *) * Max(n, 1));
			for (int k = 0; k < n; k++)
			{
				int			ne = GetCount(&r, 4 * sizeof(int32));
				FinbertEntity *ents = palloc(sizeof(FinbertEntity) * Max(ne, 1));

				for (int e = 0; e < ne; e++)
				{
					char	   *label;

					ents[e].text = GetString(&r);
					label = GetString(&r);
					ents[e].label = label;
					for (int l = 0; l < res->nlabels; l++)
						if (strcmp(res->labels[l], label) == 0)
							ents[e].label = res->labels[l];
					ents[e].start = GetInt32(&r);
					ents[e].end = GetInt32(&r);
					GetFloats(&r, &ents[e].score, 1);
				}
				res->entities[k] = ents;
				res->nentities[k] = ne;
			}
			break;
		case FINBERT_TASK_TOKENIZE:
			res->ntokens = palloc0(sizeof(int) * Max(n, 1));
			res->tokens = palloc0(sizeof(char **) * Max(n, 1));
			for (int k = 0; k < n; k++)
			{
				int			nt = GetCount(&r, sizeof(int32));
				char	  **toks = palloc(sizeof(char *) * Max(nt, 1));

				for (int t = 0; t < nt; t++)
					toks[t] = GetString(&r);
				res->tokens[k] = toks;
				res->ntokens[k] = nt;
			}
			break;
	}
	if (r.pos != r.size)
		Corrupt();
}

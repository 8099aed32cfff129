/*
 * cache.c — the embedding cache: table finbert.embedding_cache, looked up
 * by backends, written by the "finbert cache writer" background worker.
 *
 * Key: (model, model_checksum, precision, pooling, max_length, text_hash),
 * the primary key of the table: the registered name, the SHA-256 of its
 * weight file, the precision it was registered with (fp32 and int8
 * embeddings of the same weights differ, and are never mixed), the
 * pooling, the token limit the text was truncated to (embeddings of long
 * texts depend on it) and the SHA-256 of the exact text.
 *
 * Reading (backends, any transaction, parallel workers included):
 * FinbertCacheLookup probes the primary key index directly (no SPI, no
 * plan, no table privilege needed: the cache is an internal structure) with
 * the statement's snapshot.  Rows whose last_used is older than
 * TOUCH_SECONDS are queued to be touched (LRU bookkeeping costs at most one
 * update per row per TOUCH_SECONDS).
 *
 * Writing: backends never write the table.  Computed embeddings (misses)
 * and touches are appended to a ring buffer in shared memory
 * (finbert.cache_queue_size; when it is full the entry is dropped and
 * counted), and the writer — a background worker connected to
 * finbert.database — inserts them in its own transactions with
 * parameterised SPI (INSERT ... ON CONFLICT DO NOTHING: concurrent
 * identical misses leave exactly one row), then evicts the least recently
 * used rows beyond finbert.cache_max_rows.  So read-only transactions,
 * parallel workers and statements that fail later all fill the cache.
 *
 * The writer is started on demand: the first backend that queues an entry
 * while no writer runs registers it as a dynamic background worker
 * connected to its own database (by OID, so it cannot fail for a missing
 * database name; a failed launch is retried after WRITER_LAUNCH_RETRY_SECONDS).
 * It is never restarted by the postmaster: the next entry starts it again;
 * what was queued stays queued meanwhile.  An error ends it (FATAL, exit
 * code 1).  SIGTERM ends it quietly: the handler only sets
 * ShutdownRequestPending (no die(), so no FATAL), and while a flush
 * transaction runs it also cancels the statement, so that a lock wait
 * cannot hold up a shutdown; the cancelled flush is rolled back (its
 * entries count as dropped) and the writer leaves its loop.  A server
 * shutdown then ends it with exit code 0 and no message, a stray SIGTERM
 * with a LOG line and exit code 1 (shutdown.c).
 *
 * Where: the table exists in every database where the extension is
 * installed, but only backends of finbert.database use it; in other
 * databases calls always compute.  When the extension is dropped while the
 * writer runs, the writer discards what it is sent and logs that once.
 *
 * Locking: the ring and writer fields are protected by the LWLock
 * FINBERT_LOCK_CACHE of the "finbert" tranche, held for memcpy's only.
 * finbert_cache_clear() bumps an epoch: entries queued before it are not
 * written.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/procsignal.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "finbert_pg.h"
#include "finbert_queue.h"

PG_FUNCTION_INFO_V1(finbert_cache_clear);

/* A hit older than this is queued to refresh last_used. */
#define TOUCH_SECONDS		60
/* The writer wakes at least this often (SIGHUP changes, eviction). */
#define WRITER_POLL_MS		10000
/* A launched writer that has not announced itself is launched again after. */
#define WRITER_LAUNCH_RETRY_SECONDS 10

#define CACHE_SCHEMA		"finbert"
#define CACHE_TABLE			"embedding_cache"
#define CACHE_KEYS			6

typedef enum CacheEntryKind
{
	ENTRY_INSERT = 1,
	ENTRY_TOUCH
} CacheEntryKind;

typedef struct CacheEntry
{
	uint32		len;			/* MAXALIGN'd size of the whole entry */
	uint32		kind;			/* CacheEntryKind */
	uint32		epoch;			/* CacheRing.epoch when queued */
	int32		max_length;
	int32		dim;			/* ENTRY_INSERT: floats that follow */
	char		pooling[8];
	char		precision[8];
	char		model[FINBERT_NAME_MAX + 1];
	char		sha256[FINBERT_SHA256_HEX + 1];
	uint8		hash[FINBERT_TEXT_HASH_LEN];
	/* float4 embedding[dim] */
} CacheEntry;

#define ENTRY_HEADER	MAXALIGN(sizeof(CacheEntry))

typedef struct CacheRing
{
	LWLock	   *lock;			/* FINBERT_LOCK_CACHE */
	/* under lock */
	int			writer_pid;
	Latch	   *writer_latch;
	TimestampTz launched_at;	/* last launch of a writer, 0: none pending */
	uint32		epoch;			/* finbert_cache_clear() calls */
	bool		recount;		/* the writer must count the rows again */
	uint64		head;			/* bytes ever written */
	uint64		tail;			/* bytes ever taken by the writer */
	uint64		capacity;
	/* no lock */
	pg_atomic_uint64 enqueued;	/* entries queued */
	pg_atomic_uint64 done;		/* entries written or discarded */
	pg_atomic_uint64 dropped;	/* entries not queued or discarded */
	char		data[FLEXIBLE_ARRAY_MEMBER];
} CacheRing;

static CacheRing *Ring = NULL;

static Size
RingCapacity(void)
{
	return mul_size((Size) finbert_cache_queue_size, 1024);
}

Size
FinbertCacheShmemSize(void)
{
	return add_size(offsetof(CacheRing, data), RingCapacity());
}

void
FinbertCacheShmemStartup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Ring = ShmemInitStruct("finbert cache queue", FinbertCacheShmemSize(), &found);
	if (!found)
	{
		Ring->lock = &(GetNamedLWLockTranche("finbert"))[FINBERT_LOCK_CACHE].lock;
		Ring->writer_pid = 0;
		Ring->writer_latch = NULL;
		Ring->launched_at = 0;
		Ring->epoch = 0;
		Ring->recount = true;
		Ring->head = Ring->tail = 0;
		Ring->capacity = RingCapacity();
		pg_atomic_init_u64(&Ring->enqueued, 0);
		pg_atomic_init_u64(&Ring->done, 0);
		pg_atomic_init_u64(&Ring->dropped, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
FinbertCacheGetStatus(FinbertCacheStatus *st)
{
	memset(st, 0, sizeof(*st));
	if (Ring == NULL)
		return;
	st->available = true;
	st->pending = (int64) (pg_atomic_read_u64(&Ring->enqueued) -
						   pg_atomic_read_u64(&Ring->done));
	st->dropped = (int64) pg_atomic_read_u64(&Ring->dropped);
	LWLockAcquire(Ring->lock, LW_SHARED);
	st->writer_pid = Ring->writer_pid;
	LWLockRelease(Ring->lock);
}

void
FinbertCacheResetStats(void)
{
	if (Ring)
		pg_atomic_write_u64(&Ring->dropped, 0);
}

static const char *
PoolingName(fb_pooling p)
{
	switch (p)
	{
		case FB_POOL_CLS:
			return "cls";
		case FB_POOL_MEAN:
			return "mean";
		case FB_POOL_POOLER:
			return "pooler";
		case FB_POOL_NONE:
			break;
	}
	return "none";
}

/* ------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------ */
typedef struct CacheTable
{
	Relation	rel;
	Relation	idx;
	AttrNumber	att_dim;
	AttrNumber	att_embedding;
	AttrNumber	att_last_used;
} CacheTable;

static AttrNumber
AttNum(Relation rel, const char *name)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
}

/*
 * Opens finbert.embedding_cache and its primary key with lockmode, if they
 * exist (in this database) and have the expected shape.  No privilege is
 * checked: only finbert's own code reads the table this way.
 */
static bool
OpenCacheTable(LOCKMODE lockmode, CacheTable *ct)
{
	static const char *const keys[CACHE_KEYS] = {
		"model", "model_checksum", "precision", "pooling", "max_length", "text_hash"
	};
	Oid			nsp = get_namespace_oid(CACHE_SCHEMA, true);
	Oid			relid;
	Oid			idxid;

	if (!OidIsValid(nsp))
		return false;
	relid = get_relname_relid(CACHE_TABLE, nsp);
	if (!OidIsValid(relid))
		return false;
	LockRelationOid(relid, lockmode);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
	{
		/* dropped while we waited for the lock */
		UnlockRelationOid(relid, lockmode);
		return false;
	}
	ct->rel = table_open(relid, NoLock);
	idxid = RelationGetPrimaryKeyIndex(ct->rel);
	ct->idx = NULL;
	if (OidIsValid(idxid))
		ct->idx = index_open(idxid, lockmode);
	if (ct->idx == NULL ||
		IndexRelationGetNumberOfKeyAttributes(ct->idx) != CACHE_KEYS)
		goto bad;
	for (int i = 0; i < CACHE_KEYS; i++)
		if (ct->idx->rd_index->indkey.values[i] != AttNum(ct->rel, keys[i]))
			goto bad;
	ct->att_dim = AttNum(ct->rel, "dim");
	ct->att_embedding = AttNum(ct->rel, "embedding");
	ct->att_last_used = AttNum(ct->rel, "last_used");
	if (ct->att_dim == InvalidAttrNumber || ct->att_embedding == InvalidAttrNumber ||
		ct->att_last_used == InvalidAttrNumber)
		goto bad;
	return true;

bad:
	if (ct->idx)
		index_close(ct->idx, NoLock);
	table_close(ct->rel, NoLock);
	return false;
}

static void
CloseCacheTable(CacheTable *ct)
{
	index_close(ct->idx, NoLock);
	table_close(ct->rel, NoLock);
}

/* Does the cache apply to this backend's database? */
static bool
InCacheDatabase(void)
{
	static Oid	checked = InvalidOid;
	static bool result = false;

	if (Ring == NULL || finbert_database == NULL || finbert_database[0] == '\0' ||
		!OidIsValid(MyDatabaseId))
		return false;
	if (checked != MyDatabaseId)
	{
		char	   *name = get_database_name(MyDatabaseId);

		result = name != NULL && strcmp(name, finbert_database) == 0;
		checked = MyDatabaseId;
	}
	return result;
}

static void
TextHash(const fb_text *t, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) t->data, t->len) < 0 ||
		pg_cryptohash_final(ctx, out, FINBERT_TEXT_HASH_LEN) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256 of a text: %s",
						ctx ? pg_cryptohash_error(ctx) : "out of memory")));
	pg_cryptohash_free(ctx);
}

static void FillEntry(CacheEntry *e, CacheEntryKind kind,
					  const FinbertRequest *req, const FinbertModelRef *ref,
					  const uint8 *hash, int dim);
static void RingPut(const CacheEntry *e, const float4 *embedding);

bool
FinbertCacheLookup(const FinbertRequest *req, const FinbertModelRef *ref,
				   FinbertResult *res, bool *hit, uint8 **hashes_out)
{
	CacheTable	ct;
	uint8	   *hashes;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	Snapshot	snapshot;
	TimestampTz stale;
	Datum		model,
				checksum,
				precision,
				pooling;
	int32		max_length = req->max_length;	/* capped by FinbertExecute */
	int			dim = ref->hidden_size;

	if (req->pooling == FB_POOL_NONE || dim <= 0 || !InCacheDatabase())
		return false;
	if (!OpenCacheTable(AccessShareLock, &ct))
		return false;

	hashes = palloc(FINBERT_TEXT_HASH_LEN * Max(req->ntexts, 1));
	res->dim = dim;
	res->embeddings = palloc0(mul_size(sizeof(float4),
									   Max(mul_size((Size) req->ntexts, dim), 1)));
	model = CStringGetTextDatum(ref->name);
	checksum = CStringGetTextDatum(ref->sha256);
	precision = CStringGetTextDatum(fb_precision_name((fb_precision) ref->precision));
	pooling = CStringGetTextDatum(PoolingName(req->pooling));
	stale = GetCurrentTimestamp() - (TimestampTz) TOUCH_SECONDS * USECS_PER_SEC;

	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	slot = table_slot_create(ct.rel, NULL);
	scan = index_beginscan(ct.rel, ct.idx, snapshot, CACHE_KEYS, 0);
	for (int i = 0; i < req->ntexts; i++)
	{
		ScanKeyData keys[CACHE_KEYS];
		bytea	   *h = palloc(VARHDRSZ + FINBERT_TEXT_HASH_LEN);
		Oid		   *coll = ct.idx->rd_indcollation;

		hit[i] = false;
		TextHash(&req->texts[i], hashes + (size_t) i * FINBERT_TEXT_HASH_LEN);
		SET_VARSIZE(h, VARHDRSZ + FINBERT_TEXT_HASH_LEN);
		memcpy(VARDATA(h), hashes + (size_t) i * FINBERT_TEXT_HASH_LEN,
			   FINBERT_TEXT_HASH_LEN);

		ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   coll[0], F_TEXTEQ, model);
		ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
							   coll[1], F_TEXTEQ, checksum);
		ScanKeyEntryInitialize(&keys[2], 0, 3, BTEqualStrategyNumber, InvalidOid,
							   coll[2], F_TEXTEQ, precision);
		ScanKeyEntryInitialize(&keys[3], 0, 4, BTEqualStrategyNumber, InvalidOid,
							   coll[3], F_TEXTEQ, pooling);
		ScanKeyEntryInitialize(&keys[4], 0, 5, BTEqualStrategyNumber, InvalidOid,
							   coll[4], F_INT4EQ, Int32GetDatum(max_length));
		ScanKeyEntryInitialize(&keys[5], 0, 6, BTEqualStrategyNumber, InvalidOid,
							   coll[5], F_BYTEAEQ, PointerGetDatum(h));
		index_rescan(scan, keys, CACHE_KEYS, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			bool		isnull_dim,
						isnull_emb,
						isnull_used;
			Datum		d_dim = slot_getattr(slot, ct.att_dim, &isnull_dim);
			Datum		d_emb = slot_getattr(slot, ct.att_embedding, &isnull_emb);
			Datum		d_used = slot_getattr(slot, ct.att_last_used, &isnull_used);

			if (!isnull_dim && !isnull_emb && DatumGetInt32(d_dim) == dim)
			{
				ArrayType  *a = DatumGetArrayTypeP(d_emb);

				/* a row that is not what we wrote is a miss (and is overwritten never) */
				if (ARR_NDIM(a) == 1 && ARR_ELEMTYPE(a) == FLOAT4OID &&
					!ARR_HASNULL(a) && ARR_DIMS(a)[0] == dim)
				{
					/* no nulls, one dimension: the data follows the header */
					memcpy(res->embeddings + (size_t) i * dim,
						   (char *) a + ARR_OVERHEAD_NONULLS(1),
						   sizeof(float4) * dim);
					hit[i] = true;
				}
				if ((Pointer) a != DatumGetPointer(d_emb))
					pfree(a);
			}
			if (hit[i] && !isnull_used && DatumGetTimestampTz(d_used) < stale &&
				!RecoveryInProgress())
			{
				CacheEntry	e;

				FillEntry(&e, ENTRY_TOUCH, req, ref,
						  hashes + (size_t) i * FINBERT_TEXT_HASH_LEN, 0);
				RingPut(&e, NULL);
			}
		}
		pfree(h);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	CloseCacheTable(&ct);
	*hashes_out = hashes;
	return true;
}

/* ------------------------------------------------------------------------
 * The write queue
 * ------------------------------------------------------------------------ */
static void
FillEntry(CacheEntry *e, CacheEntryKind kind, const FinbertRequest *req,
		  const FinbertModelRef *ref, const uint8 *hash, int dim)
{
	memset(e, 0, sizeof(*e));
	e->len = (uint32) MAXALIGN(ENTRY_HEADER + sizeof(float4) * (Size) dim);
	e->kind = kind;
	e->max_length = req->max_length;
	e->dim = dim;
	strlcpy(e->pooling, PoolingName(req->pooling), sizeof(e->pooling));
	strlcpy(e->precision, fb_precision_name((fb_precision) ref->precision),
			sizeof(e->precision));
	strlcpy(e->model, ref->name, sizeof(e->model));
	strlcpy(e->sha256, ref->sha256, sizeof(e->sha256));
	memcpy(e->hash, hash, FINBERT_TEXT_HASH_LEN);
}

/* Copies n bytes to ring position pos (wrapping). */
static void
RingWrite(uint64 pos, const void *src, Size n)
{
	Size		at = (Size) (pos % Ring->capacity);
	Size		first = Min(n, Ring->capacity - at);

	memcpy(Ring->data + at, src, first);
	if (first < n)
		memcpy(Ring->data, (const char *) src + first, n - first);
}

/* Starts the cache writer in this database (see the top of the file). */
static void
LaunchWriter(void)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "finbert", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "finbert_cache_writer_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "finbert cache writer", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "finbert cache writer", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	worker.bgw_notify_pid = 0;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(LOG,
				(errmsg("could not start the finbert cache writer: no free background worker slot"),
				 errhint("Raise max_worker_processes; embeddings stay queued meanwhile.")));
}

/* Queues one entry for the writer, or counts it as dropped when full. */
static void
RingPut(const CacheEntry *entry, const float4 *embedding)
{
	CacheEntry	e = *entry;
	Latch	   *latch = NULL;
	bool		queued = false;
	bool		launch = false;

	if (Ring == NULL)
		return;
	LWLockAcquire(Ring->lock, LW_EXCLUSIVE);
	if (Ring->head - Ring->tail + e.len <= Ring->capacity)
	{
		e.epoch = Ring->epoch;
		RingWrite(Ring->head, &e, sizeof(e));
		if (e.dim > 0)
			RingWrite(Ring->head + ENTRY_HEADER, embedding, sizeof(float4) * e.dim);
		Ring->head += e.len;
		latch = Ring->writer_latch;
		queued = true;
	}
	if (Ring->writer_pid == 0)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (Ring->launched_at == 0 ||
			TimestampDifferenceExceeds(Ring->launched_at, now,
									   WRITER_LAUNCH_RETRY_SECONDS * 1000))
		{
			Ring->launched_at = now;
			launch = true;
		}
	}
	LWLockRelease(Ring->lock);
	if (queued)
		pg_atomic_fetch_add_u64(&Ring->enqueued, 1);
	else
		pg_atomic_fetch_add_u64(&Ring->dropped, 1);
	if (latch)
		SetLatch(latch);
	if (launch)
		LaunchWriter();
}

void
FinbertCacheStore(const FinbertRequest *req, const FinbertModelRef *ref,
				  const uint8 *hash, const float4 *embedding, int dim)
{
	CacheEntry	e;

	if (Ring == NULL || RecoveryInProgress())
		return;
	if (ENTRY_HEADER + sizeof(float4) * (Size) dim > Ring->capacity)
	{
		pg_atomic_fetch_add_u64(&Ring->dropped, 1);
		return;
	}
	FillEntry(&e, ENTRY_INSERT, req, ref, hash, dim);
	RingPut(&e, embedding);
}

/* ------------------------------------------------------------------------
 * finbert_cache_clear([model]) → bigint
 * ------------------------------------------------------------------------ */
Datum
finbert_cache_clear(PG_FUNCTION_ARGS)
{
	int			ret;
	uint64		n;
	Latch	   *latch = NULL;

	FinbertCheckAdmin("clear the finbert embedding cache");
	SPI_connect();
	if (PG_ARGISNULL(0))
		ret = SPI_execute("DELETE FROM finbert.embedding_cache", false, 0);
	else
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1] = {PG_GETARG_DATUM(0)};

		ret = SPI_execute_with_args("DELETE FROM finbert.embedding_cache WHERE model = $1",
									1, argtypes, values, NULL, false, 0);
	}
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not clear finbert.embedding_cache: %s",
			 SPI_result_code_string(ret));
	n = SPI_processed;
	SPI_finish();

	/* what is queued now predates the clear: not written */
	if (Ring)
	{
		LWLockAcquire(Ring->lock, LW_EXCLUSIVE);
		Ring->epoch++;
		Ring->recount = true;
		latch = Ring->writer_latch;
		LWLockRelease(Ring->lock);
		if (latch)
			SetLatch(latch);
	}
	PG_RETURN_INT64((int64) n);
}

/* ------------------------------------------------------------------------
 * The writer
 * ------------------------------------------------------------------------ */
static char *Taken = NULL;		/* entries taken from the ring */
static uint64 InFlight = 0;		/* entries taken, not yet accounted */
static int64 ApproxRows = -1;	/* rows in the table, -1 unknown */
static bool LoggedMissing = false;

/* Set while a flush transaction runs: a SIGTERM then cancels it too. */
static volatile sig_atomic_t CancelOnShutdownRequest = false;

/* SIGTERM: SignalHandlerForShutdownRequest, plus the cancel above. */
static void
WriterShutdownHandler(SIGNAL_ARGS)
{
	int			save_errno = errno;

	ShutdownRequestPending = true;
	if (CancelOnShutdownRequest)
	{
		InterruptPending = true;
		QueryCancelPending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
WriterExit(int code, Datum arg)
{
	LWLockReleaseAll();
	if (Ring == NULL)
		return;
	/* entries lost with this process are accounted for */
	pg_atomic_fetch_add_u64(&Ring->dropped, InFlight);
	pg_atomic_fetch_add_u64(&Ring->done, InFlight);
	InFlight = 0;
	LWLockAcquire(Ring->lock, LW_EXCLUSIVE);
	if (Ring->writer_pid == MyProcPid)
	{
		Ring->writer_pid = 0;
		Ring->writer_latch = NULL;
		Ring->launched_at = 0;	/* the next entry starts a new writer */
	}
	LWLockRelease(Ring->lock);
}

/* Takes everything queued; returns the number of entries and bytes. */
static uint64
Drain(Size *nbytes, uint32 *epoch, bool *recount)
{
	uint64		n = 0;
	Size		len;

	LWLockAcquire(Ring->lock, LW_EXCLUSIVE);
	len = (Size) (Ring->head - Ring->tail);
	if (len > 0)
	{
		Size		at = (Size) (Ring->tail % Ring->capacity);
		Size		first = Min(len, Ring->capacity - at);

		memcpy(Taken, Ring->data + at, first);
		if (first < len)
			memcpy(Taken + first, Ring->data, len - first);
		Ring->tail = Ring->head;
	}
	*epoch = Ring->epoch;
	*recount = Ring->recount;
	Ring->recount = false;
	LWLockRelease(Ring->lock);

	for (Size pos = 0; pos < len; pos += ((CacheEntry *) (Taken + pos))->len)
		n++;
	*nbytes = len;
	InFlight = n;
	return n;
}

static void
WriteEntries(Size nbytes, uint32 epoch, uint64 *written, uint64 *discarded)
{
	Oid			ins_types[8] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID,
	BYTEAOID, INT4OID, FLOAT4ARRAYOID};
	Oid			touch_types[6] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, BYTEAOID};
	SPIPlanPtr	ins = NULL,
				touch = NULL;

	for (Size pos = 0; pos < nbytes;)
	{
		CacheEntry	e;
		Datum		values[8];
		bytea	   *h;
		int			ret;

		memcpy(&e, Taken + pos, sizeof(e));
		pos += e.len;
		if (e.epoch != epoch)
		{
			(*discarded)++;
			continue;
		}
		h = palloc(VARHDRSZ + FINBERT_TEXT_HASH_LEN);
		SET_VARSIZE(h, VARHDRSZ + FINBERT_TEXT_HASH_LEN);
		memcpy(VARDATA(h), e.hash, FINBERT_TEXT_HASH_LEN);
		values[0] = CStringGetTextDatum(e.model);
		values[1] = CStringGetTextDatum(e.sha256);
		values[2] = CStringGetTextDatum(e.precision);
		values[3] = CStringGetTextDatum(e.pooling);
		values[4] = Int32GetDatum(e.max_length);
		values[5] = PointerGetDatum(h);
		if (e.kind == ENTRY_INSERT)
		{
			const float4 *v = (const float4 *) (Taken + pos - e.len + ENTRY_HEADER);
			Datum	   *elems = palloc(sizeof(Datum) * Max(e.dim, 1));

			for (int d = 0; d < e.dim; d++)
				elems[d] = Float4GetDatum(v[d]);
			values[6] = Int32GetDatum(e.dim);
			values[7] = PointerGetDatum(construct_array(elems, e.dim, FLOAT4OID,
														sizeof(float4), true,
														TYPALIGN_INT));
			if (ins == NULL)
				ins = SPI_prepare("INSERT INTO finbert.embedding_cache "
								  "(model, model_checksum, precision, pooling, max_length, "
								  "text_hash, dim, embedding) "
								  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
								  8, ins_types);
			if (ins == NULL)
				elog(ERROR, "could not prepare the cache insert: %s",
					 SPI_result_code_string(SPI_result));
			ret = SPI_execute_plan(ins, values, NULL, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "could not insert into finbert.embedding_cache: %s",
					 SPI_result_code_string(ret));
			*written += SPI_processed;
			ApproxRows += ApproxRows >= 0 ? (int64) SPI_processed : 0;
		}
		else
		{
			if (touch == NULL)
				touch = SPI_prepare("UPDATE finbert.embedding_cache SET last_used = now() "
									"WHERE model = $1 AND model_checksum = $2 AND precision = $3 "
									"AND pooling = $4 AND max_length = $5 AND text_hash = $6 "
									"AND last_used < now()",
									6, touch_types);
			if (touch == NULL)
				elog(ERROR, "could not prepare the cache update: %s",
					 SPI_result_code_string(SPI_result));
			ret = SPI_execute_plan(touch, values, NULL, false, 0);
			if (ret != SPI_OK_UPDATE)
				elog(ERROR, "could not update finbert.embedding_cache: %s",
					 SPI_result_code_string(ret));
		}
	}
}

/* Deletes the least recently used rows beyond finbert.cache_max_rows. */
static uint64
Evict(bool recount)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	int			ret;
	uint64		evicted;

	if (finbert_cache_max_rows <= 0)
		return 0;
	if (recount || ApproxRows < 0 || ApproxRows > finbert_cache_max_rows)
	{
		bool		isnull;

		/* not read-only: see the rows inserted by this transaction */
		ret = SPI_execute("SELECT count(*) FROM finbert.embedding_cache", false, 0);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not count finbert.embedding_cache: %s",
				 SPI_result_code_string(ret));
		ApproxRows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (ApproxRows <= finbert_cache_max_rows)
		return 0;
	values[0] = Int64GetDatum(ApproxRows - finbert_cache_max_rows);
	ret = SPI_execute_with_args("DELETE FROM finbert.embedding_cache WHERE ctid = ANY (ARRAY("
								"SELECT ctid FROM finbert.embedding_cache "
								"ORDER BY last_used, created_at LIMIT $1))",
								1, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not evict from finbert.embedding_cache: %s",
			 SPI_result_code_string(ret));
	evicted = SPI_processed;
	ApproxRows -= (int64) evicted;
	return evicted;
}

/* One transaction: write what was taken, then evict. */
static void
Flush(uint64 n, Size nbytes, uint32 epoch, bool recount)
{
	CacheTable	ct;
	uint64		written = 0,
				discarded = 0,
				evicted = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "finbert cache writer: writing");

	if (OpenCacheTable(RowExclusiveLock, &ct))
	{
		/* the lock keeps DROP EXTENSION out until we commit */
		CloseCacheTable(&ct);
		if (LoggedMissing)
			ereport(LOG,
					(errmsg("finbert cache writer: writing embeddings to %s.%s in database \"%s\" again",
							CACHE_SCHEMA, CACHE_TABLE, finbert_database)));
		LoggedMissing = false;
		WriteEntries(nbytes, epoch, &written, &discarded);
		evicted = Evict(recount);
	}
	else
	{
		if (!LoggedMissing && n > 0)
			ereport(LOG,
					(errmsg("finbert cache writer: extension finbert is not installed in database \"%s\"; embeddings are not cached",
							finbert_database),
					 errhint("Install the extension in finbert.database, or set finbert.database to the database where it is installed.")));
		LoggedMissing = true;
		ApproxRows = -1;
		discarded = n;
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);

	FinbertStatsCacheWrites(written);
	FinbertStatsCacheEvictions(evicted);
	pg_atomic_fetch_add_u64(&Ring->dropped, discarded);
	pg_atomic_fetch_add_u64(&Ring->done, n);
	InFlight = 0;
}

/*
 * Flush, unless a shutdown request comes first or cancels it: then false,
 * with the transaction rolled back (its entries are counted as dropped at
 * exit).  Any other error is raised.
 */
static bool
FlushUnlessStopped(uint64 n, Size nbytes, uint32 epoch, bool recount)
{
	bool		stopped = false;

	CancelOnShutdownRequest = true;
	/* a request that came before the flag was set: do not start */
	if (ShutdownRequestPending)
	{
		CancelOnShutdownRequest = false;
		return false;
	}
	PG_TRY();
	{
		Flush(n, nbytes, epoch, recount);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		CancelOnShutdownRequest = false;
		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		if (!ShutdownRequestPending || edata->sqlerrcode != ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		/* our own cancel: roll back quietly */
		HOLD_INTERRUPTS();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		RESUME_INTERRUPTS();
		FreeErrorData(edata);
		stopped = true;
	}
	PG_END_TRY();
	CancelOnShutdownRequest = false;
	/* a cancel that came after the last interrupt check is void */
	QueryCancelPending = false;
	return !stopped;
}

void
finbert_cache_writer_main(Datum arg)
{
	bool		maintenance = true;
	bool		other;

	pqsignal(SIGTERM, WriterShutdownHandler);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGUSR1, procsignal_sigusr1_handler);
	BackgroundWorkerUnblockSignals();

	if (Ring == NULL)
		ereport(FATAL,
				(errmsg("finbert cache writer started without finbert shared memory")));

	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("finbert cache writer");

	/* one writer at a time */
	LWLockAcquire(Ring->lock, LW_EXCLUSIVE);
	other = Ring->writer_pid != 0;
	if (!other)
	{
		Ring->writer_pid = MyProcPid;
		Ring->writer_latch = MyLatch;
	}
	LWLockRelease(Ring->lock);
	if (other)
		proc_exit(0);
	on_shmem_exit(WriterExit, (Datum) 0);
	Taken = MemoryContextAlloc(TopMemoryContext, Ring->capacity);
	ereport(LOG,
			(errmsg("finbert cache writer started in database \"%s\"", finbert_database)));

	while (!ShutdownRequestPending)
	{
		Size		nbytes;
		uint32		epoch;
		bool		recount;
		uint64		n;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			maintenance = true;
		}
		n = Drain(&nbytes, &epoch, &recount);
		if (n > 0 || recount || maintenance)
		{
			if (!FlushUnlessStopped(n, nbytes, epoch, recount || maintenance))
				break;
			maintenance = false;
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 WRITER_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	FinbertExitAfterShutdownRequest("finbert cache writer",
									"The next embedding to cache starts a new one; what is queued stays queued.");
}

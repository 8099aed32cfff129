/*
 * registry.c — the model catalog, model paths, and the per-backend cache of
 * opened models.
 *
 * The catalog is the table finbert.models (one row per registered model,
 * kept by pg_dump).  finbert_load_model validates a model directory (by
 * opening it with the requested precision), hashes its weight files (one
 * file, or an index and its shards: one SHA-256 over all of them in the
 * engine's order) and upserts the row; finbert_unload_model deletes it.
 * When the directory holds other weight files that differ from the ones
 * loaded (model.safetensors beside a different pytorch_model.bin), it says
 * so in a NOTICE.
 *
 * Precision: each row says how the model's linear layers compute, fp32 or
 * int8 (weights quantised per output channel when the model is opened).
 * The precision travels with the model reference (FinbertModelRef) to the
 * background worker and into the embedding cache key, and is part of
 * FinbertModelRefEquals: re-registering a model with another precision
 * reopens it in every backend and in the worker at their next use, like a
 * new checksum.
 *
 * Each backend resolves a model name against the catalog once per statement
 * (FinbertResolveModel: the canonical directory, checksum, precision and
 * weight-file identity that also go to the background worker and key the
 * embedding cache) and, when it runs the model inline, opens it the first
 * time it uses it (FinbertGetModel) and keeps it in a hash table in
 * TopMemoryContext keyed by name.  The weights are mmap-ed by the engine,
 * so every backend shares one copy through the page cache.  A cached model
 * is checked against its catalog row once per statement: a deleted row
 * drops it; a row with another checksum, path or precision, or weight
 * files whose total size or latest modification time changed, reopens it
 * (and weight files whose total size no longer matches the catalog are
 * data_corrupted until the model is registered again).
 *
 * Paths: the catalog stores a path relative to finbert.model_dir.  Paths are
 * canonicalised with realpath(); a path containing "..", or resolving
 * (through symbolic links) outside finbert.model_dir, or a file the engine
 * may read (fb_model_file_may_read: configs, vocabulary, every weight
 * format and shard) that is a symbolic link leading outside it, is refused
 * with insufficient_privilege (42501).
 */
#include "postgres.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "finbert_pg.h"

PG_FUNCTION_INFO_V1(finbert_load_model);
PG_FUNCTION_INFO_V1(finbert_load_models);
PG_FUNCTION_INFO_V1(finbert_unload_model);
PG_FUNCTION_INFO_V1(finbert_loaded_models);
PG_FUNCTION_INFO_V1(finbert_model_pin);

static HTAB *ModelCache = NULL;

/* One catalog row, copied out of SPI. */
typedef struct CatalogRow
{
	char		path[MAXPGPATH];
	char		sha256[FINBERT_SHA256_HEX + 1];
	char		weight_file[MAXPGPATH];
	char	  **weight_files;	/* NULL-terminated, weight_file first */
	int64		weight_bytes;	/* of all weight_files */
	int32		max_length;
	int32		hidden_size;
	fb_precision precision;
} CatalogRow;

const char *
FinbertArchName(fb_arch arch)
{
	switch (arch)
	{
		case FB_ARCH_BERT:
			return "bert";
		case FB_ARCH_ALBERT:
			return "albert";
		case FB_ARCH_ELECTRA:
			return "electra";
	}
	return "unknown";
}

const char *
FinbertHeadName(fb_head head)
{
	switch (head)
	{
		case FB_HEAD_NONE:
			return "none";
		case FB_HEAD_SEQUENCE:
			return "sequence";
		case FB_HEAD_TOKEN:
			return "token";
	}
	return "unknown";
}

static bool
ValidModelName(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > FINBERT_NAME_MAX)
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
		  (name[0] >= '0' && name[0] <= '9')))
		return false;
	for (const char *s = name; *s; s++)
	{
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			  (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return false;
	}
	return true;
}

static inline void
CheckModelName(const char *name)
{
	if (!ValidModelName(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid model name \"%s\"", name),
				 errdetail("Model names have 1 to %d characters: ASCII letters, digits, \"_\", \"-\" and \".\", starting with a letter or digit.",
						   FINBERT_NAME_MAX)));
}

/* realpath() into palloc'd memory; NULL with errno set on failure. */
static char *
RealPath(const char *path)
{
	char	   *r = realpath(path, NULL);
	char	   *p;

	if (r == NULL)
		return NULL;
	p = pstrdup(r);
	free(r);
	return p;
}

/* Is path equal to root or below it?  Both canonical. */
static bool
PathInside(const char *path, const char *root)
{
	size_t		n = strlen(root);

	if (n == 1 && root[0] == '/')
		return true;
	return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Canonical finbert.model_dir. */
static char *
ModelRoot(void)
{
	char	   *root;

	if (finbert_model_dir == NULL || finbert_model_dir[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("finbert.model_dir is not set"),
				 errhint("Set finbert.model_dir in postgresql.conf to the directory that holds the model directories.")));
	root = RealPath(finbert_model_dir);
	if (root == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not resolve finbert.model_dir \"%s\": %m",
						finbert_model_dir)));
	return root;
}

/*
 * Resolves a model path (relative to finbert.model_dir, or absolute) to a
 * canonical directory inside finbert.model_dir.  *relative receives the
 * path relative to the canonical root.
 */
static char *
ResolveModelPath(const char *path, char **relative)
{
	char	   *root = ModelRoot();
	char	   *candidate;
	char	   *real;
	struct stat st;
	const char *c;

	if (path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model path must not be empty")));

	/* No ".." component, wherever it would lead. */
	c = path;
	while (*c)
	{
		const char *e = strchr(c, '/');
		size_t		len = e ? (size_t) (e - c) : strlen(c);

		if (len == 2 && c[0] == '.' && c[1] == '.')
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("model path \"%s\" may not contain \"..\"", path),
					 errdetail("Model paths are resolved inside finbert.model_dir.")));
		c += len;
		while (*c == '/')
			c++;
	}

	if (is_absolute_path(path))
		candidate = pstrdup(path);
	else
		candidate = psprintf("%s/%s", root, path);

	real = RealPath(candidate);
	if (real == NULL)
	{
		if (errno == ENOENT || errno == ENOTDIR)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FILE),
					 errmsg("model directory \"%s\" does not exist", candidate)));
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not resolve model directory \"%s\": %m", candidate)));
	}
	if (!PathInside(real, root))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("model path \"%s\" is outside finbert.model_dir", path),
				 errdetail("Model directories must lie inside \"%s\"; symbolic links leading outside it are refused.",
						   root)));
	if (strcmp(real, root) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model path \"%s\" names finbert.model_dir itself", path),
				 errhint("Give the path of one model directory inside it.")));
	if (stat(real, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat model directory \"%s\": %m", real)));
	if (!S_ISDIR(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model path \"%s\" is not a directory", path)));

	/* Every file the engine may open must stay inside the root too. */
	{
		DIR		   *dir = AllocateDir(real);
		struct dirent *de;

		while ((de = ReadDir(dir, real)) != NULL)
		{
			char	   *f;
			char	   *rf;

			if (!fb_model_file_may_read(de->d_name))
				continue;
			f = psprintf("%s/%s", real, de->d_name);
			if (lstat(f, &st) != 0)
			{
				pfree(f);
				continue;
			}
			rf = RealPath(f);
			if (rf == NULL || !PathInside(rf, root))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("model file \"%s\" leads outside finbert.model_dir", f)));
			pfree(rf);
			pfree(f);
		}
		FreeDir(dir);
	}

	if (relative)
		*relative = pstrdup(real + strlen(root) + (strcmp(root, "/") == 0 ? 0 : 1));
	pfree(candidate);
	pfree(root);
	return real;
}

/*
 * SHA-256 of the weight files of directory dir (NULL-terminated names), read
 * one after the other as one stream, as 64 hex digits; *bytes receives
 * their total size.  For one file it is that file's SHA-256.
 */
static void
FilesSha256(const char *dir, char *const *files, char *hex, int64 *bytes)
{
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	const size_t bufsize = 1024 * 1024;
	char	   *buf;
	int64		total = 0;
	const char *path = dir;

	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not initialise SHA-256: %s",
						ctx ? pg_cryptohash_error(ctx) : "out of memory")));
	buf = palloc(bufsize);
	for (char *const *f = files; *f != NULL; f++)
	{
		int			fd;

		path = psprintf("%s/%s", dir, *f);
		fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
		if (fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\": %m", path)));
		for (;;)
		{
			ssize_t		r = read(fd, buf, bufsize);

			if (r < 0)
			{
				if (errno == EINTR)
					continue;
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not read file \"%s\": %m", path)));
			}
			if (r == 0)
				break;
			if (pg_cryptohash_update(ctx, (uint8 *) buf, (size_t) r) < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not compute SHA-256 of \"%s\": %s", path,
								pg_cryptohash_error(ctx))));
			total += r;
			CHECK_FOR_INTERRUPTS();
		}
		if (CloseTransientFile(fd) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not close file \"%s\": %m", path)));
	}
	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256 of \"%s\": %s", path,
						pg_cryptohash_error(ctx))));
	pg_cryptohash_free(ctx);
	pfree(buf);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	*bytes = total;
}

/*
 * The weight_files array of a catalog row as a NULL-terminated list in the
 * caller's context (SPI_palloc); an empty or NULL array means the one
 * weight_file.
 */
static char **
CatalogWeightFiles(Datum d, bool isnull, const char *weight_file)
{
	Datum	   *elems = NULL;
	bool	   *nulls = NULL;
	int			n = 0;
	char	  **files;

	if (!isnull)
		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
	files = SPI_palloc(sizeof(char *) * (Max(n, 1) + 1));
	for (int i = 0; i < n; i++)
	{
		char	   *s = nulls[i] ? "" : TextDatumGetCString(elems[i]);

		files[i] = SPI_palloc(strlen(s) + 1);
		strcpy(files[i], s);
	}
	if (n == 0)
	{
		files[0] = SPI_palloc(strlen(weight_file) + 1);
		strcpy(files[0], weight_file);
		n = 1;
	}
	files[n] = NULL;
	return files;
}

/*
 * Looks a model up in finbert.models.  Returns false when absent, with
 * *registered set to the comma-separated names of the registered models
 * (palloc'd in the caller's context, NULL when there are none).
 */
static bool
LookupCatalog(const char *name, CatalogRow *row, char **registered)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		found = false;
	int			ret;

	values[0] = CStringGetTextDatum(name);
	*registered = NULL;

	SPI_connect();
	ret = SPI_execute_with_args("SELECT path, sha256, weight_file, weight_bytes, "
								"max_length, hidden_size, precision, weight_files "
								"FROM finbert.models WHERE name = $1",
								1, argtypes, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read finbert.models: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *s;
		bool		isnull;

		s = SPI_getvalue(tup, desc, 1);
		strlcpy(row->path, s ? s : "", sizeof(row->path));
		s = SPI_getvalue(tup, desc, 2);
		strlcpy(row->sha256, s ? s : "", sizeof(row->sha256));
		s = SPI_getvalue(tup, desc, 3);
		strlcpy(row->weight_file, s ? s : "", sizeof(row->weight_file));
		row->weight_bytes = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		if (isnull)
			row->weight_bytes = -1;
		row->max_length = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		if (isnull)
			row->max_length = 0;
		row->hidden_size = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		if (isnull)
			row->hidden_size = 0;
		row->weight_files = CatalogWeightFiles(SPI_getbinval(tup, desc, 8, &isnull), isnull,
											   row->weight_file);
		s = SPI_getvalue(tup, desc, 7);
		if (s == NULL || fb_precision_from_name(s, &row->precision) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("finbert model \"%s\" has an invalid precision \"%s\" in finbert.models",
							name, s ? s : "NULL"),
					 errhint("Register the model again with finbert_load_model.")));
		found = true;
	}
	else
	{
		/* at most 20 names in a hint */
		ret = SPI_execute("SELECT string_agg(name, ', ' ORDER BY name) FILTER (WHERE n <= 20) || "
						  "CASE WHEN count(*) > 20 THEN ' and more' ELSE '' END "
						  "FROM (SELECT name, row_number() OVER (ORDER BY name) AS n "
						  "FROM finbert.models ORDER BY name LIMIT 21) s",
						  true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed == 1)
		{
			char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

			if (s != NULL)
			{
				*registered = SPI_palloc(strlen(s) + 1);
				strcpy(*registered, s);
			}
		}
	}
	SPI_finish();
	return found;
}

static void
InitCache(void)
{
	HASHCTL		ctl;

	if (ModelCache != NULL)
		return;
	ctl.keysize = FINBERT_NAME_MAX + 1;
	ctl.entrysize = sizeof(FinbertModel);
	ctl.hcxt = TopMemoryContext;
	ModelCache = hash_create("finbert models", 16, &ctl,
							 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* Frees the engine objects of an entry and removes it. */
static void
FreeEntry(FinbertModel *entry)
{
	if (entry->session)
		fb_session_free(entry->session);
	if (entry->model)
		fb_model_free(entry->model);
	entry->session = NULL;
	entry->model = NULL;
	hash_search(ModelCache, entry->name, HASH_REMOVE, NULL);
}

void
FinbertForgetModel(const char *name)
{
	FinbertModel *entry;

	if (ModelCache == NULL || strlen(name) > FINBERT_NAME_MAX)
		return;
	entry = hash_search(ModelCache, name, HASH_FIND, NULL);
	if (entry)
		FreeEntry(entry);
}

static void UndefinedModel(const char *name, const char *guc,
						   const char *registered) pg_attribute_noreturn();

static void
UndefinedModel(const char *name, const char *guc, const char *registered)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("finbert model \"%s\" does not exist", name),
			 registered ?
			 errhint("Registered models: %s.%s%s%s", registered,
					 guc ? " The name comes from the setting " : "",
					 guc ? guc : "", guc ? "." : "") :
			 errhint("No models are registered; register one with finbert_load_model(name, path).%s%s%s",
					 guc ? " The name comes from the setting " : "",
					 guc ? guc : "", guc ? "." : "")));
	pg_unreachable();
}

char *
FinbertModelPin(const FinbertModelRef *ref)
{
	if (ref->precision == FB_PRECISION_FP32)
		return pstrdup(ref->sha256);
	return psprintf("%s:%s", ref->sha256,
					fb_precision_name((fb_precision) ref->precision));
}

/*
 * finbert_model_pin(name) → text: the pin of a registered model, to write
 * into the pinned forms of the task functions.
 */
Datum
finbert_model_pin(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	FinbertModel *m = FinbertResolveModel(name, NULL);

	PG_RETURN_TEXT_P(cstring_to_text(FinbertModelPin(&m->ref)));
}

bool
FinbertModelRefEquals(const FinbertModelRef *a, const FinbertModelRef *b)
{
	return strcmp(a->name, b->name) == 0 &&
		strcmp(a->path, b->path) == 0 &&
		strcmp(a->sha256, b->sha256) == 0 &&
		a->weight_size == b->weight_size &&
		a->weight_mtime_sec == b->weight_mtime_sec &&
		a->weight_mtime_nsec == b->weight_mtime_nsec &&
		a->precision == b->precision;
}

FinbertModel *
FinbertResolveModel(const char *name, const char *guc)
{
	FinbertModel *entry = NULL;
	FinbertModelRef ref;
	CatalogRow	row;
	char	   *registered;
	char	   *path;
	char	   *weights;
	struct stat st,
				total;
	bool		found;

	InitCache();
	if (!ValidModelName(name))
	{
		/* cannot be registered; the lookup only fetches the hint */
		(void) LookupCatalog("", &row, &registered);
		UndefinedModel(name, guc, registered);
	}

	entry = hash_search(ModelCache, name, HASH_FIND, NULL);
	if (entry &&
		entry->valid_lxid == MyProc->lxid &&
		entry->valid_cid == GetCurrentCommandId(false))
		return entry;

	if (!LookupCatalog(name, &row, &registered))
	{
		if (entry)
			FreeEntry(entry);
		UndefinedModel(name, guc, registered);
	}

	path = ResolveModelPath(row.path, NULL);
	weights = psprintf("%s/%s", path, row.weight_file);

	/* the weight files together: total size, latest modification */
	memset(&total, 0, sizeof(total));
	for (char **f = row.weight_files; *f != NULL; f++)
	{
		char	   *p = psprintf("%s/%s", path, *f);

		if (stat(p, &st) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not stat weight file \"%s\" of model \"%s\": %m",
							p, name)));
		total.st_size += st.st_size;
		if (st.st_mtim.tv_sec > total.st_mtim.tv_sec ||
			(st.st_mtim.tv_sec == total.st_mtim.tv_sec &&
			 st.st_mtim.tv_nsec > total.st_mtim.tv_nsec))
			total.st_mtim = st.st_mtim;
		pfree(p);
	}
	st = total;

	memset(&ref, 0, sizeof(ref));
	strlcpy(ref.name, name, sizeof(ref.name));
	strlcpy(ref.path, path, sizeof(ref.path));
	strlcpy(ref.sha256, row.sha256, sizeof(ref.sha256));
	ref.weight_size = (int64) st.st_size;
	ref.weight_mtime_sec = (int64) st.st_mtim.tv_sec;
	ref.weight_mtime_nsec = (int64) st.st_mtim.tv_nsec;
	ref.max_position = row.max_length;
	ref.hidden_size = row.hidden_size;
	ref.precision = (int32) row.precision;

	/*
	 * Keep the entry (and its open model) while its catalog row (checksum,
	 * precision), directory and weight file (size and modification time) are
	 * unchanged; otherwise start afresh.
	 */
	if (entry && !FinbertModelRefEquals(&entry->ref, &ref))
	{
		FreeEntry(entry);
		entry = NULL;
	}
	if (entry == NULL)
	{
		/* The weights must still be the registered ones (cheap size check). */
		if ((int64) st.st_size != row.weight_bytes)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("weight file \"%s\" of model \"%s\" changed since the model was registered",
							weights, name),
					 errdetail("The weight files have %lld bytes; the catalog records %lld.",
							   (long long) st.st_size, (long long) row.weight_bytes),
					 errhint("Register the model again with finbert_load_model.")));
		entry = hash_search(ModelCache, name, HASH_ENTER, &found);
		entry->model = NULL;
		entry->session = NULL;
		entry->uses = 0;
	}
	entry->ref = ref;
	entry->valid_lxid = MyProc->lxid;
	entry->valid_cid = GetCurrentCommandId(false);
	pfree(path);
	pfree(weights);
	return entry;
}

void
FinbertOpenEngineModel(const char *name, const char *path, fb_precision precision,
					   int max_batch_tokens, fb_model **model_out,
					   fb_session **session_out)
{
	fb_model_options opts = fb_model_default_options();
	fb_model   *model = NULL;
	fb_session *session;
	fb_error	err;
	fb_status	status;

	if (max_batch_tokens > 0)
		opts.max_batch_tokens = max_batch_tokens;
	opts.precision = precision;
	status = fb_model_open(path, &opts, &model, &err);
	if (status != FB_OK)
		FinbertEngineError(&err, psprintf("could not load model \"%s\"", name));
	session = fb_session_new(model);
	if (session == NULL)
	{
		fb_model_free(model);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory opening model \"%s\"", name)));
	}
	*model_out = model;
	*session_out = session;
	FinbertStatsModelLoad();
}

FinbertModel *
FinbertGetModel(const char *name, const char *guc)
{
	FinbertModel *entry = FinbertResolveModel(name, guc);

	if (entry->model == NULL)
		FinbertOpenEngineModel(name, entry->ref.path,
							   (fb_precision) entry->ref.precision, 0,
							   &entry->model, &entry->session);
	return entry;
}

static bool
ValidTask(const char *task)
{
	static const char *const tasks[] = {
		"sentiment", "industry", "type", "classify", "ner", "embed"
	};

	for (size_t i = 0; i < lengthof(tasks); i++)
		if (strcmp(task, tasks[i]) == 0)
			return true;
	return false;
}

/* Does a task name fit a head?  Returns the reason when not. */
static const char *
TaskMismatch(const char *task, const fb_model_info *info)
{
	if (strcmp(task, "sentiment") == 0 || strcmp(task, "industry") == 0 ||
		strcmp(task, "type") == 0 || strcmp(task, "classify") == 0)
		return info->head == FB_HEAD_SEQUENCE ? NULL :
			"a sequence classification head";
	if (strcmp(task, "ner") == 0)
		return info->head == FB_HEAD_TOKEN ? NULL :
			"a token classification head";
	return NULL;
}

/*
 * Validates the model directory path by opening it with the precision,
 * hashes its weight file and registers (or re-registers) it in
 * finbert.models under name.  A NULL task defaults from the model's head.
 * Returns the task registered; *summary (when not NULL) receives one line
 * describing the model.  Raises an ERROR for anything that does not load.
 */
static const char *
RegisterModel(const char *name, const char *path, const char *task,
			  const char *precision_name, char **summary)
{
	fb_precision precision = FB_PRECISION_FP32;
	char	   *real;
	char	   *relative;
	fb_model   *model = NULL;
	fb_model_options opts;
	const fb_model_info *info;
	fb_error	err;
	fb_status	status;
	char		sha[FINBERT_SHA256_HEX + 1];
	int64		bytes;
	const char *why;

	/* copies of the model info made before the model is freed */
	const char *arch,
			   *head,
			   *weight_file,
			   *weight_dtype,
			   *weight_format,
			   *notice;
	char	  **weight_files;
	Datum	   *file_datums;
	ArrayType  *files_array;
	bool		multi_label;
	int			layers,
				hidden,
				heads,
				vocab,
				maxlen,
				nlabels;
	Datum	   *labels;
	ArrayType  *label_array;

	CheckModelName(name);
	if (task && !ValidTask(task))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown finbert task \"%s\"", task),
				 errhint("Tasks are: %s.", FINBERT_TASK_NAMES)));
	if (fb_precision_from_name(precision_name, &precision) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown finbert precision \"%s\"", precision_name),
				 errhint("Precisions are: %s.", FINBERT_PRECISION_NAMES)));

	real = ResolveModelPath(path, &relative);

	opts = fb_model_default_options();
	opts.precision = precision;
	opts.check_alternates = 1;	/* other weight files present: do they differ? */
	status = fb_model_open(real, &opts, &model, &err);
	if (status != FB_OK)
		FinbertEngineError(&err, psprintf("could not load model \"%s\"", name));

	/* Copy what the catalog needs, then free the engine model at once. */
	info = fb_model_get_info(model);
	arch = FinbertArchName(info->arch);
	head = FinbertHeadName(info->head);
	multi_label = info->multi_label != 0;
	layers = info->n_layers;
	hidden = info->hidden;
	heads = info->n_heads;
	vocab = info->vocab_size;
	maxlen = info->max_position;
	nlabels = info->n_labels;
	why = task ? TaskMismatch(task, info) : NULL;
	if (task == NULL)
		task = info->head == FB_HEAD_SEQUENCE ? "classify" :
			info->head == FB_HEAD_TOKEN ? "ner" : "embed";
	labels = palloc(sizeof(Datum) * Max(nlabels, 1));
	for (int i = 0; i < nlabels; i++)
		labels[i] = CStringGetTextDatum(info->labels[i] ? info->labels[i] : "");
	weight_file = pstrdup(info->weight_file ? info->weight_file : "model.safetensors");
	weight_dtype = pstrdup(info->weight_dtype ? info->weight_dtype : "");
	weight_format = pstrdup(info->weight_format ? info->weight_format : "");
	notice = info->weight_notice ? pstrdup(info->weight_notice) : NULL;
	{
		int			n = 0;

		while (info->weight_files && info->weight_files[n])
			n++;
		weight_files = palloc(sizeof(char *) * (n + 1));
		file_datums = palloc(sizeof(Datum) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			weight_files[i] = pstrdup(info->weight_files[i]);
			file_datums[i] = CStringGetTextDatum(weight_files[i]);
		}
		weight_files[n] = NULL;
		files_array = construct_array(file_datums, n, TEXTOID, -1, false, TYPALIGN_INT);
	}
	fb_model_free(model);

	if (why)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model \"%s\" cannot serve task \"%s\"", name, task),
				 errdetail("The task needs %s; the model has head \"%s\".", why, head)));

	label_array = construct_array(labels, nlabels, TEXTOID, -1, false, TYPALIGN_INT);

	FilesSha256(real, weight_files, sha, &bytes);

	{
		Oid			argtypes[18] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
			BOOLOID, INT4OID, INT4OID, INT4OID, INT4OID, INT4OID,
		TEXTARRAYOID, TEXTOID, TEXTOID, INT8OID, TEXTOID, TEXTOID, TEXTARRAYOID};
		Datum		values[18];
		int			ret;

		values[0] = CStringGetTextDatum(name);
		values[1] = CStringGetTextDatum(relative);
		values[2] = CStringGetTextDatum(task);
		values[3] = CStringGetTextDatum(arch);
		values[4] = CStringGetTextDatum(head);
		values[5] = BoolGetDatum(multi_label);
		values[6] = Int32GetDatum(layers);
		values[7] = Int32GetDatum(hidden);
		values[8] = Int32GetDatum(heads);
		values[9] = Int32GetDatum(vocab);
		values[10] = Int32GetDatum(maxlen);
		values[11] = PointerGetDatum(label_array);
		values[12] = CStringGetTextDatum(weight_file);
		values[13] = CStringGetTextDatum(weight_dtype);
		values[14] = Int64GetDatum(bytes);
		values[15] = CStringGetTextDatum(sha);
		values[16] = CStringGetTextDatum(fb_precision_name(precision));
		values[17] = PointerGetDatum(files_array);

		SPI_connect();
		ret = SPI_execute_with_args(
									"INSERT INTO finbert.models AS m (name, path, task, architecture, head, "
									"multi_label, layers, hidden_size, heads, vocab_size, max_length, labels, "
									"weight_file, weight_dtype, weight_bytes, sha256, precision, weight_files) "
									"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) "
									"ON CONFLICT (name) DO UPDATE SET path = excluded.path, task = excluded.task, "
									"architecture = excluded.architecture, head = excluded.head, "
									"multi_label = excluded.multi_label, layers = excluded.layers, "
									"hidden_size = excluded.hidden_size, heads = excluded.heads, "
									"vocab_size = excluded.vocab_size, max_length = excluded.max_length, "
									"labels = excluded.labels, weight_file = excluded.weight_file, "
									"weight_dtype = excluded.weight_dtype, weight_bytes = excluded.weight_bytes, "
									"sha256 = excluded.sha256, precision = excluded.precision, "
									"weight_files = excluded.weight_files, "
									"created_at = excluded.created_at, created_by = excluded.created_by",
									18, argtypes, values, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not register model: %s", SPI_result_code_string(ret));
		SPI_finish();
	}

	/*
	 * This backend reopens it on next use; others notice the new checksum or
	 * precision.
	 */
	FinbertForgetModel(name);
	if (notice != NULL)
		ereport(NOTICE,
				(errmsg("model \"%s\" was loaded from %s (%s); other weight files of its directory differ",
						name, weight_file, weight_format),
				 errdetail("%s.", notice),
				 errhint("Remove the weight files that are not meant to be used.")));
	if (summary)
		*summary = psprintf("%s, %s head, %d layers, hidden %d, %d labels, %s %s", arch,
							strcmp(head, "none") == 0 ? "no" : head, layers, hidden, nlabels,
							weight_file, weight_dtype);
	return task;
}

/*
 * finbert_load_model(name text, path text, task text DEFAULT NULL,
 *                    precision text DEFAULT 'fp32') → void
 */
Datum
finbert_load_model(PG_FUNCTION_ARGS)
{
	FinbertCheckAdmin("load finbert models");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model name and path must not be null")));
	RegisterModel(text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)),
				  PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)),
				  PG_NARGS() > 3 && !PG_ARGISNULL(3) ? text_to_cstring(PG_GETARG_TEXT_PP(3)) : "fp32",
				  NULL);
	PG_RETURN_VOID();
}

/* The task whose finbert.*_model setting names this model, or NULL. */
static const char *
TaskNamingModel(const char *name)
{
	if (finbert_sentiment_model && strcmp(name, finbert_sentiment_model) == 0)
		return "sentiment";
	if (finbert_industry_model && strcmp(name, finbert_industry_model) == 0)
		return "industry";
	if (finbert_type_model && strcmp(name, finbert_type_model) == 0)
		return "type";
	if (finbert_ner_model && strcmp(name, finbert_ner_model) == 0)
		return "ner";
	if (finbert_embed_model && strcmp(name, finbert_embed_model) == 0)
		return "embed";
	return NULL;
}

static int
CompareNames(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * finbert_load_models(precision text DEFAULT 'fp32')
 *   → setof (name text, task text, registered boolean, detail text)
 *
 * Registers every directory directly under finbert.model_dir under its own
 * name, in name order, each in a subtransaction: one that does not load is
 * reported (registered false, detail = the error) and the others still
 * register.  The task is the one whose finbert.*_model setting names the
 * directory (so the task functions find the starter models), else it
 * defaults from the model's head.  Hidden entries and plain files are
 * ignored.  A cancel or timeout still ends the whole call.
 */
Datum
finbert_load_models(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *precision_name = PG_ARGISNULL(0) ? "fp32" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *root;
	DIR		   *dir;
	struct dirent *de;
	char	  **names = NULL;
	int			n = 0,
				cap = 0;

	fb_precision precision;

	FinbertCheckAdmin("load finbert models");
	if (fb_precision_from_name(precision_name, &precision) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown finbert precision \"%s\"", precision_name),
				 errhint("Precisions are: %s.", FINBERT_PRECISION_NAMES)));
	InitMaterializedSRF(fcinfo, 0);
	root = ModelRoot();
	dir = AllocateDir(root);
	while ((de = ReadDir(dir, root)) != NULL)
	{
		struct stat st;
		char	   *full;

		if (de->d_name[0] == '.')
			continue;
		full = psprintf("%s/%s", root, de->d_name);
		if (stat(full, &st) == 0 && S_ISDIR(st.st_mode))
		{
			if (n == cap)
			{
				cap = cap ? cap * 2 : 16;
				names = names ? repalloc(names, sizeof(char *) * cap) : palloc(sizeof(char *) * cap);
			}
			names[n++] = pstrdup(de->d_name);
		}
		pfree(full);
	}
	FreeDir(dir);
	if (n > 1)
		qsort(names, n, sizeof(char *), CompareNames);

	for (int i = 0; i < n; i++)
	{
		MemoryContext caller = CurrentMemoryContext;
		ResourceOwner owner = CurrentResourceOwner;
		const char *task = TaskNamingModel(names[i]);
		char	   *detail = NULL;
		bool		ok = false;
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		CHECK_FOR_INTERRUPTS();
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(caller);
		PG_TRY();
		{
			task = RegisterModel(names[i], names[i], task, precision_name, &detail);
			ok = true;
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(caller);
			CurrentResourceOwner = owner;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(caller);
			edata = CopyErrorData();
			/* a cancel, timeout or shutdown ends the call, as in PL/pgSQL */
			if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
				edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
				PG_RE_THROW();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(caller);
			CurrentResourceOwner = owner;
			detail = edata->detail ? psprintf("%s (%s): %s", edata->message,
											  unpack_sql_state(edata->sqlerrcode), edata->detail)
				: psprintf("%s (%s)", edata->message, unpack_sql_state(edata->sqlerrcode));
			FreeErrorData(edata);
		}
		PG_END_TRY();

		values[0] = CStringGetTextDatum(names[i]);
		if (task)
			values[1] = CStringGetTextDatum(task);
		else
			nulls[1] = true;
		values[2] = BoolGetDatum(ok);
		values[3] = CStringGetTextDatum(detail);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(root);
	return (Datum) 0;
}

/* finbert_unload_model(name text) → void */
Datum
finbert_unload_model(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int			ret;
	uint64		deleted;

	FinbertCheckAdmin("unload finbert models");
	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	ret = SPI_execute_with_args("DELETE FROM finbert.models WHERE name = $1",
								1, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not unregister model: %s", SPI_result_code_string(ret));
	deleted = SPI_processed;
	SPI_finish();
	FinbertForgetModel(name);
	if (deleted == 0)
	{
		CatalogRow	row;
		char	   *registered;

		if (!LookupCatalog(name, &row, &registered))
			UndefinedModel(name, NULL, registered);
	}
	PG_RETURN_VOID();
}

/*
 * finbert_loaded_models() → setof (name text, resident_bytes bigint,
 * weight_dtype text, precision text, uses bigint): the models open in this
 * backend, precision as they were opened.
 */
Datum
finbert_loaded_models(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	FinbertModel *entry;

	InitMaterializedSRF(fcinfo, 0);
	if (ModelCache == NULL)
		PG_RETURN_VOID();
	hash_seq_init(&seq, ModelCache);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		const fb_model_info *info;
		Datum		values[5];
		bool		nulls[5] = {0};

		if (entry->model == NULL)
			continue;
		info = fb_model_get_info(entry->model);
		values[0] = CStringGetTextDatum(entry->name);
		values[1] = Int64GetDatum((int64) info->resident_bytes);
		values[2] = CStringGetTextDatum(info->weight_dtype ? info->weight_dtype : "");
		values[3] = CStringGetTextDatum(fb_precision_name(info->precision));
		values[4] = Int64GetDatum((int64) entry->uses);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/*
 * source.c — the tensor table shared by every weight format (fb_source.h):
 * building and validating it, name lookup, checksum verification and the
 * conversion of any view (strided, offset, transposed, half precision) to
 * fp32.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include "fb_crc.h"
#include "fb_source.h"

/* Bytes of a name quoted in a message. */
#define SRC_QUOTE_BYTES 160

fb_status
fb_map_file(const char *path, uint8_t **map, size_t *len, fb_error *err)
{
	struct stat sb;
	void	   *p;
	int			fd;

	*map = NULL;
	*len = 0;
	/* O_NONBLOCK: opening a FIFO must not hang; fstat then refuses it */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return fb_fail(err, FB_ERR_IO, "could not open \"%s\": %s", path,
					   strerror(errno));
	if (fstat(fd, &sb) != 0)
	{
		int			e = errno;

		close(fd);
		return fb_fail(err, FB_ERR_IO, "could not stat \"%s\": %s", path,
					   strerror(e));
	}
	if (!S_ISREG(sb.st_mode))
	{
		close(fd);
		return fb_fail(err, FB_ERR_IO, "\"%s\" is not a regular file", path);
	}
	if (sb.st_size == 0)
	{
		close(fd);
		return fb_fail(err, FB_ERR_CORRUPT, "\"%s\": file is empty", path);
	}
	if ((uint64_t) sb.st_size > SIZE_MAX)
	{
		close(fd);
		return fb_fail(err, FB_ERR_IO, "\"%s\" is too large to map", path);
	}

	/*
	 * Read-only private mapping: the page cache is shared by every backend.
	 * A file truncated by someone else while mapped raises SIGBUS on access;
	 * the loader copies what it needs and unmaps before serving queries.
	 */
	p = mmap(NULL, (size_t) sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
	{
		int			e = errno;

		close(fd);
		return fb_fail(err, FB_ERR_IO, "could not map \"%s\": %s", path,
					   strerror(e));
	}
	close(fd);
	*map = p;
	*len = (size_t) sb.st_size;
	return FB_OK;
}

void
fb_unmap_file(uint8_t *map, size_t len)
{
	if (map != NULL)
		munmap(map, len);
}

/* ------------------------------------------------------------------------
 * Building
 * ------------------------------------------------------------------------
 */

fb_source *
fb_source_new(const char *dir, const char *format)
{
	fb_source  *src = calloc(1, sizeof(*src));

	if (src == NULL)
		return NULL;
	src->dir = strdup(dir);
	snprintf(src->format, sizeof(src->format), "%s", format);
	if (src->dir == NULL)
	{
		free(src);
		return NULL;
	}
	return src;
}

/* A new, zeroed file slot with its names, or NULL (err set). */
static fb_source_file *
new_file(fb_source *src, const char *name, fb_error *err)
{
	fb_source_file *files;
	fb_source_file *f;

	if (src->n_files >= FB_SOURCE_MAX_FILES)
	{
		fb_fail(err, FB_ERR_CORRUPT, "%s: a checkpoint of more than %d files",
				src->dir, FB_SOURCE_MAX_FILES);
		return NULL;
	}
	files = realloc(src->files, (size_t) (src->n_files + 1) * sizeof(*files));
	if (files == NULL)
	{
		fb_fail(err, FB_ERR_NOMEM, "out of memory");
		return NULL;
	}
	src->files = files;
	f = &files[src->n_files];
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	f->path = fb_path_join(src->dir, name);
	if (f->name == NULL || f->path == NULL)
	{
		free(f->name);
		free(f->path);
		fb_fail(err, FB_ERR_NOMEM, "out of memory");
		return NULL;
	}
	return f;
}

int
fb_source_add_memory(fb_source *src, const char *name, const uint8_t *buf,
					 size_t len, fb_error *err)
{
	fb_source_file *f = new_file(src, name, err);

	if (f == NULL)
		return -1;
	f->map = (uint8_t *) buf;
	f->len = len;
	f->owned = 0;
	return src->n_files++;
}

int
fb_source_file_index(const fb_source *src, const char *name)
{
	for (int i = 0; i < src->n_files; i++)
		if (strcmp(src->files[i].name, name) == 0)
			return i;
	return -1;
}

int
fb_source_add_file(fb_source *src, const char *name, fb_error *err)
{
	fb_source_file *f = new_file(src, name, err);
	fb_status	st;

	if (f == NULL)
		return -1;
	st = fb_map_file(f->path, &f->map, &f->len, err);
	if (st != FB_OK)
	{
		free(f->name);
		free(f->path);
		return -1;
	}
	f->owned = 1;
	return src->n_files++;
}

fb_tensor *
fb_source_add_tensor(fb_source *src, const char *name, const char *stored,
					 fb_error *err)
{
	fb_tensor  *t;

	if (src->n_tensors >= FB_ST_MAX_TENSORS)
	{
		fb_fail(err, FB_ERR_CORRUPT, "%s: more than %d tensors",
				fb_source_file_name(src, 0), FB_ST_MAX_TENSORS);
		return NULL;
	}
	if (src->n_tensors == src->cap_tensors)
	{
		/* bounded by FB_ST_MAX_TENSORS: the product cannot wrap */
		size_t		cap = src->cap_tensors ? src->cap_tensors * 2 : 256;
		fb_tensor  *ts = realloc(src->tensors, cap * sizeof(*ts));

		if (ts == NULL)
		{
			fb_fail(err, FB_ERR_NOMEM, "out of memory");
			return NULL;
		}
		src->tensors = ts;
		src->cap_tensors = cap;
	}
	t = &src->tensors[src->n_tensors];
	memset(t, 0, sizeof(*t));
	t->check = -1;
	t->name = strdup(name);
	t->stored = strdup(stored != NULL ? stored : name);
	if (t->name == NULL || t->stored == NULL)
	{
		free(t->name);
		free(t->stored);
		fb_fail(err, FB_ERR_NOMEM, "out of memory");
		return NULL;
	}
	src->n_tensors++;
	return t;
}

int
fb_source_add_check(fb_source *src, int file, const uint8_t *p, size_t n,
					uint32_t want, fb_check_kind kind, const char *what,
					fb_error *err)
{
	fb_check   *c;

	if (src->n_checks == src->cap_checks)
	{
		size_t		cap = src->cap_checks ? src->cap_checks * 2 : 64;
		fb_check   *cs;

		if (cap > (size_t) 1 << 30)
			cs = NULL;
		else
			cs = realloc(src->checks, cap * sizeof(*cs));
		if (cs == NULL)
		{
			fb_fail(err, FB_ERR_NOMEM, "out of memory");
			return -1;
		}
		src->checks = cs;
		src->cap_checks = cap;
	}
	c = &src->checks[src->n_checks];
	memset(c, 0, sizeof(*c));
	c->p = p;
	c->n = n;
	c->want = want;
	c->kind = kind;
	c->file = file;
	c->what = strdup(what);
	if (c->what == NULL)
	{
		fb_fail(err, FB_ERR_NOMEM, "out of memory");
		return -1;
	}
	return (int) src->n_checks++;
}

void
fb_tensor_set_contiguous(fb_tensor *t)
{
	int64_t		s = 1;

	for (int d = t->ndim - 1; d >= 0; d--)
	{
		t->stride[d] = s;
		s *= t->shape[d] > 0 ? t->shape[d] : 1;
	}
}

fb_status
fb_source_open_file(const char *dir, const char *file, const char *format,
					fb_source_reader read, fb_source **out, fb_error *err)
{
	fb_source  *src = fb_source_new(dir, format);
	int			fi;
	fb_status	st;

	*out = NULL;
	if (src == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	fi = fb_source_add_file(src, file, err);
	st = fi < 0 ? (err ? err->status : FB_ERR_IO) : read(src, fi, err);
	if (st == FB_OK)
		st = fb_source_finish(src, err);
	if (st != FB_OK)
	{
		fb_source_close(src);
		return st;
	}
	*out = src;
	return FB_OK;
}

const char *
fb_source_file_name(const fb_source *src, int file)
{
	if (src == NULL)
		return "(no file)";
	if (file >= 0 && file < src->n_files)
		return src->files[file].path;
	if (src->n_files > 0)
		return src->files[0].path;
	return src->dir;
}

/* A name cut for a message: at most SRC_QUOTE_BYTES, control bytes as '?'. */
static const char *
quote(const char *s, char *buf)
{
	size_t		i = 0;

	for (; s[i] != '\0' && i < SRC_QUOTE_BYTES; i++)
		buf[i] = ((unsigned char) s[i] < 0x20 || s[i] == 0x7f || s[i] == '"') ? '?' : s[i];
	buf[i] = '\0';
	if (s[i] != '\0')
		strcpy(buf + i, "...");
	return buf;
}

static fb_status
tensor_fail(const fb_source *src, const fb_tensor *t, fb_error *err,
			fb_status status, const char *fmt,...) FB_PRINTF(5, 6);

static fb_status
tensor_fail(const fb_source *src, const fb_tensor *t, fb_error *err,
			fb_status status, const char *fmt,...)
{
	char		what[FB_ERRMSG_MAX];
	char		q[SRC_QUOTE_BYTES + 4];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return fb_fail(err, status, "\"%s\": tensor \"%s\": %s",
				   fb_source_file_name(src, t->file), quote(t->stored, q), what);
}

/* Shape product, view inside its storage, storage inside its file. */
static fb_status
check_view(const fb_source *src, fb_tensor *t, fb_error *err)
{
	size_t		esize = fb_dtype_size(t->dtype);
	uint64_t	n = 1;
	uint64_t	last;
	size_t		sbytes;

	if (esize == 0)
		return tensor_fail(src, t, err, FB_ERR_CORRUPT, "unknown dtype");
	if (t->ndim < 0 || t->ndim > FB_ST_MAX_DIMS)
		return tensor_fail(src, t, err, FB_ERR_CORRUPT, "rank %d is over %d",
						   t->ndim, FB_ST_MAX_DIMS);
	for (int d = 0; d < t->ndim; d++)
	{
		if (t->shape[d] < 0)
			return tensor_fail(src, t, err, FB_ERR_CORRUPT,
							   "negative dimension %lld", (long long) t->shape[d]);
		if (__builtin_mul_overflow(n, (uint64_t) t->shape[d], &n))
			return tensor_fail(src, t, err, FB_ERR_CORRUPT,
							   "element count of the shape overflows");
	}
	if (n > SIZE_MAX / esize)
		return tensor_fail(src, t, err, FB_ERR_CORRUPT,
						   "byte size of the shape overflows");
	t->n_elems = n;
	if (t->factor[0] != NULL)
		return FB_OK;			/* derived: checked against its factors */
	if (t->file < 0 || t->file >= src->n_files)
		return tensor_fail(src, t, err, FB_ERR_INVALID, "no file");

	/* the storage lies inside its file */
	{
		const fb_source_file *f = &src->files[t->file];

		if (t->storage_elems > SIZE_MAX / esize)
			return tensor_fail(src, t, err, FB_ERR_CORRUPT,
							   "storage size overflows");
		sbytes = (size_t) t->storage_elems * esize;
		if (t->base < f->map || t->base > f->map + f->len ||
			sbytes > (size_t) (f->map + f->len - t->base))
			return tensor_fail(src, t, err, FB_ERR_CORRUPT,
							   "storage of %zu bytes runs past the end of the file",
							   sbytes);
	}
	if (n == 0)
		return FB_OK;

	/* the last element the view reaches lies inside the storage */
	last = t->offset;
	for (int d = 0; d < t->ndim; d++)
	{
		uint64_t	step;

		if (t->stride[d] < 0)
			return tensor_fail(src, t, err, FB_ERR_CORRUPT,
							   "negative stride %lld", (long long) t->stride[d]);
		if (__builtin_mul_overflow((uint64_t) (t->shape[d] - 1),
								   (uint64_t) t->stride[d], &step) ||
			__builtin_add_overflow(last, step, &last))
			return tensor_fail(src, t, err, FB_ERR_CORRUPT,
							   "offset and strides overflow");
	}
	if (last >= t->storage_elems)
		return tensor_fail(src, t, err, FB_ERR_CORRUPT,
						   "view (offset %llu, shape and strides) reaches element %llu of a storage of %llu",
						   (unsigned long long) t->offset,
						   (unsigned long long) last,
						   (unsigned long long) t->storage_elems);
	return FB_OK;
}

static int
tensor_name_cmp(const void *a, const void *b)
{
	return strcmp(((const fb_tensor *) a)->name, ((const fb_tensor *) b)->name);
}

/* transformers' renaming of legacy LayerNorm parameters (a suffix rule). */
static fb_status
rename_legacy(fb_tensor *t, fb_error *err)
{
	static const char *const from[2] = {"LayerNorm.gamma", "LayerNorm.beta"};
	static const char *const to[2] = {"LayerNorm.weight", "LayerNorm.bias"};
	size_t		n = strlen(t->name);

	for (int i = 0; i < 2; i++)
	{
		size_t		k = strlen(from[i]);
		char	   *s;

		if (n < k || strcmp(t->name + n - k, from[i]) != 0)
			continue;
		s = malloc(n - k + strlen(to[i]) + 1);
		if (s == NULL)
			return fb_fail(err, FB_ERR_NOMEM, "out of memory");
		memcpy(s, t->name, n - k);
		strcpy(s + n - k, to[i]);
		free(t->name);
		t->name = s;
		break;
	}
	return FB_OK;
}

fb_status
fb_source_finish(fb_source *src, fb_error *err)
{
	char		q1[SRC_QUOTE_BYTES + 4],
				q2[SRC_QUOTE_BYTES + 4];
	fb_status	st;

	for (size_t i = 0; i < src->n_tensors; i++)
	{
		if ((st = check_view(src, &src->tensors[i], err)) != FB_OK)
			return st;
		if ((st = rename_legacy(&src->tensors[i], err)) != FB_OK)
			return st;
	}
	if (src->n_tensors > 1)
		qsort(src->tensors, src->n_tensors, sizeof(fb_tensor), tensor_name_cmp);
	for (size_t i = 1; i < src->n_tensors; i++)
		if (strcmp(src->tensors[i - 1].name, src->tensors[i].name) == 0)
			return fb_fail(err, FB_ERR_CORRUPT,
						   "\"%s\": tensors \"%s\" and \"%s\" both stand for \"%s\"",
						   fb_source_file_name(src, src->tensors[i].file),
						   quote(src->tensors[i - 1].stored, q1),
						   quote(src->tensors[i].stored, q2),
						   quote(src->tensors[i].name, q2));

	/* derived tensors: two rank-2 floating factors with a common inner size */
	for (size_t i = 0; i < src->n_tensors; i++)
	{
		fb_tensor  *t = &src->tensors[i];
		const fb_tensor *a,
				   *b;

		if (t->factor[0] == NULL)
			continue;
		a = fb_source_find(src, t->factor[0]);
		b = fb_source_find(src, t->factor[1]);
		if (a == NULL || b == NULL || a->factor[0] != NULL || b->factor[0] != NULL)
			return tensor_fail(src, t, err, FB_ERR_CORRUPT, "a factor is missing");
		if (t->ndim != 2 || a->ndim != 2 || b->ndim != 2 ||
			a->shape[1] != b->shape[1] || t->shape[0] != a->shape[0] ||
			t->shape[1] != b->shape[0])
			return tensor_fail(src, t, err, FB_ERR_CORRUPT,
							   "factors \"%s\" [%lld, %lld] and \"%s\" [%lld, %lld] do not multiply",
							   quote(a->stored, q1), (long long) a->shape[0],
							   (long long) (a->ndim > 1 ? a->shape[1] : 0),
							   quote(b->stored, q2), (long long) b->shape[0],
							   (long long) (b->ndim > 1 ? b->shape[1] : 0));
	}
	return FB_OK;
}

void
fb_source_close(fb_source *src)
{
	if (src == NULL)
		return;
	for (int i = 0; i < src->n_files; i++)
	{
		if (src->files[i].owned)
			fb_unmap_file(src->files[i].map, src->files[i].len);
		free(src->files[i].name);
		free(src->files[i].path);
	}
	for (size_t i = 0; i < src->n_tensors; i++)
	{
		free(src->tensors[i].name);
		free(src->tensors[i].stored);
		free(src->tensors[i].factor[0]);
		free(src->tensors[i].factor[1]);
	}
	for (size_t i = 0; i < src->n_checks; i++)
		free(src->checks[i].what);
	free(src->files);
	free(src->tensors);
	free(src->checks);
	free(src->dir);
	free(src);
}

/* ------------------------------------------------------------------------
 * Lookup
 * ------------------------------------------------------------------------
 */

const fb_tensor *
fb_source_find(const fb_source *src, const char *name)
{
	size_t		lo = 0,
				hi;

	if (src == NULL || name == NULL)
		return NULL;
	hi = src->n_tensors;
	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;
		int			c = strcmp(name, src->tensors[mid].name);

		if (c == 0)
			return &src->tensors[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const fb_tensor *
fb_source_get(fb_source *src, const char *name)
{
	fb_tensor  *t = (fb_tensor *) fb_source_find(src, name);

	if (t == NULL)
		return NULL;
	t->used = 1;
	for (int i = 0; i < 2; i++)
		if (t->factor[i] != NULL)
		{
			fb_tensor  *f = (fb_tensor *) fb_source_find(src, t->factor[i]);

			if (f != NULL)
				f->used = 1;
		}
	return t;
}

/* ------------------------------------------------------------------------
 * Conversion
 * ------------------------------------------------------------------------
 */

static fb_status
verify_check(fb_source *src, int idx, fb_error *err)
{
	fb_check   *c;
	uint32_t	got;

	if (idx < 0 || (size_t) idx >= src->n_checks)
		return FB_OK;
	c = &src->checks[idx];
	if (c->verified)
		return FB_OK;
	if (c->kind == FB_CHECK_CRC32)
		got = fb_crc32_update(0, c->p, c->n);
	else
		got = fb_crc32c_mask(fb_crc32c_update(0, c->p, c->n));
	if (got != c->want)
		return fb_fail(err, FB_ERR_CORRUPT,
					   "\"%s\": %s: %s mismatch (stored %08x, computed %08x)",
					   fb_source_file_name(src, c->file), c->what,
					   c->kind == FB_CHECK_CRC32 ? "CRC-32" : "CRC-32C",
					   (unsigned) c->want, (unsigned) got);
	c->verified = 1;
	return FB_OK;
}

static inline float
load_elem(fb_dtype dt, const uint8_t *p)
{
	uint32_t	u;
	uint64_t	v;
	float		f;
	double		d;

	switch (dt)
	{
		case FB_DT_F32:
			u = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
				(uint32_t) p[3] << 24;
			memcpy(&f, &u, sizeof(f));
			return f;
		case FB_DT_F16:
			return fb_f16_to_f32((uint16_t) (p[0] | p[1] << 8));
		case FB_DT_BF16:
			return fb_bf16_to_f32((uint16_t) (p[0] | p[1] << 8));
		case FB_DT_F64:
			v = 0;
			for (int i = 7; i >= 0; i--)
				v = v << 8 | p[i];
			memcpy(&d, &v, sizeof(d));
			return (float) d;
		default:
			return 0.0f;
	}
}

/* n consecutive elements from p into dst. */
static void
convert_run(fb_dtype dt, const uint8_t *p, size_t n, float *dst)
{
	size_t		es = fb_dtype_size(dt);

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (dt == FB_DT_F32)
	{
		memcpy(dst, p, n * sizeof(float));
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		dst[i] = load_elem(dt, p + i * es);
}

static bool
is_float(fb_dtype dt)
{
	return dt == FB_DT_F32 || dt == FB_DT_F16 || dt == FB_DT_BF16 || dt == FB_DT_F64;
}

/* A validated (check_view) strided view into row-major dst. */
static void
convert_view(const fb_tensor *t, float *dst)
{
	size_t		es = fb_dtype_size(t->dtype);
	int			nd = t->ndim;
	int64_t		idx[FB_ST_MAX_DIMS] = {0};
	uint64_t	inner;
	size_t		out = 0;

	if (t->n_elems == 0)
		return;

	/* rank 2 with a non-unit inner stride (a transposed kernel): tiles, so
	 * both the reads and the writes stay in cache */
	if (nd == 2 && t->stride[1] != 1 && t->shape[1] > 1)
	{
		const int64_t B = 32;

		for (int64_t r0 = 0; r0 < t->shape[0]; r0 += B)
			for (int64_t c0 = 0; c0 < t->shape[1]; c0 += B)
				for (int64_t c = c0; c < c0 + B && c < t->shape[1]; c++)
					for (int64_t r = r0; r < r0 + B && r < t->shape[0]; r++)
						dst[r * t->shape[1] + c] =
							load_elem(t->dtype, t->base + es *
									  (t->offset + (uint64_t) (r * t->stride[0] + c * t->stride[1])));
		return;
	}

	/* otherwise runs along the last dimension when it is contiguous */
	inner = nd > 0 && t->stride[nd - 1] == 1 ? (uint64_t) t->shape[nd - 1] : 1;
	for (;;)
	{
		uint64_t	off = t->offset;
		int			d;

		for (d = 0; d < nd; d++)
			off += (uint64_t) (idx[d] * t->stride[d]);
		convert_run(t->dtype, t->base + off * es, (size_t) inner, dst + out);
		out += inner;
		if (out >= t->n_elems)
			break;
		/* next index, the last dimension advanced by the run */
		d = inner > 1 ? nd - 2 : nd - 1;
		for (; d >= 0; d--)
		{
			if (++idx[d] < t->shape[d])
				break;
			idx[d] = 0;
		}
		if (d < 0)
			break;
	}
}

/* dst [M, N] = A [M, K] x B [N, K]^T, both converted to fp32 first. */
static fb_status
read_product(fb_source *src, const fb_tensor *t, float *dst, fb_error *err)
{
	const fb_tensor *a = fb_source_find(src, t->factor[0]);
	const fb_tensor *b = fb_source_find(src, t->factor[1]);
	float	   *fa,
			   *fb;
	fb_status	st;

	if (a == NULL || b == NULL)
		return tensor_fail(src, t, err, FB_ERR_CORRUPT, "a factor is missing");
	fa = malloc((size_t) a->n_elems * sizeof(float) + 1);
	fb = malloc((size_t) b->n_elems * sizeof(float) + 1);
	if (fa == NULL || fb == NULL)
	{
		free(fa);
		free(fb);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	st = fb_source_read_f32(src, a, fa, err);
	if (st == FB_OK)
		st = fb_source_read_f32(src, b, fb, err);
	if (st == FB_OK && t->n_elems > 0)
	{
		int			M = (int) a->shape[0],
					K = (int) a->shape[1],
					N = (int) b->shape[0];

		if (K == 0)
			memset(dst, 0, (size_t) t->n_elems * sizeof(float));
		else
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K,
						1.0f, fa, K, fb, K, 0.0f, dst, N);
	}
	free(fa);
	free(fb);
	return st;
}

fb_status
fb_source_read_f32(fb_source *src, const fb_tensor *t, float *dst, fb_error *err)
{
	fb_status	st;

	if (t->factor[0] != NULL)
		return read_product(src, t, dst, err);
	if (!is_float(t->dtype))
		return tensor_fail(src, t, err, FB_ERR_UNSUPPORTED,
						   "dtype %s is not a floating-point type",
						   fb_dtype_name(t->dtype));
	if ((st = verify_check(src, t->check, err)) != FB_OK)
		return st;
	convert_view(t, dst);
	return FB_OK;
}

fb_status
fb_source_compare(fb_source *a, fb_source *b, int *same, char *why,
				  size_t why_len, fb_error *err)
{
	size_t		compared = 0,
				differ = 0;
	double		worst = 0.0;
	const char *worst_name = NULL;
	char		q[SRC_QUOTE_BYTES + 4];
	fb_error	eb;
	fb_status	st = FB_OK;

	*same = 1;
	why[0] = '\0';
	for (size_t i = 0; i < a->n_tensors && st == FB_OK; i++)
	{
		const fb_tensor *ta = &a->tensors[i];
		const fb_tensor *tb;
		float	   *va,
				   *vb;
		double		d = 0.0;

		if (!ta->used || !is_float(ta->dtype))
			continue;
		tb = fb_source_find(b, ta->name);
		if (tb == NULL)
		{
			*same = 0;
			snprintf(why, why_len, "it has no tensor \"%s\"", quote(ta->name, q));
			return FB_OK;
		}
		if (ta->ndim != tb->ndim ||
			memcmp(ta->shape, tb->shape, sizeof(int64_t) * (size_t) ta->ndim) != 0)
		{
			*same = 0;
			snprintf(why, why_len, "its tensor \"%s\" has another shape", quote(ta->name, q));
			return FB_OK;
		}
		va = malloc((size_t) ta->n_elems * sizeof(float) + 1);
		vb = malloc((size_t) ta->n_elems * sizeof(float) + 1);
		if (va == NULL || vb == NULL)
			st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		if (st == FB_OK)
			st = fb_source_read_f32(a, ta, va, err);
		if (st == FB_OK && fb_source_read_f32(b, tb, vb, &eb) != FB_OK)
		{
			/* the other file is broken: that is a difference, not our error */
			*same = 0;
			snprintf(why, why_len, "%s", eb.msg);
			free(va);
			free(vb);
			return FB_OK;
		}
		for (size_t k = 0; st == FB_OK && k < ta->n_elems; k++)
		{
			double		e = (double) va[k] - (double) vb[k];

			if (e < 0)
				e = -e;
			if (!(e <= d))		/* NaN counts as a difference */
				d = e != e ? 1e300 : e;
		}
		free(va);
		free(vb);
		compared++;
		if (d > 0.0)
		{
			differ++;
			if (d > worst)
			{
				worst = d;
				worst_name = ta->name;
			}
		}
	}
	if (st != FB_OK)
		return st;
	if (differ > 0)
	{
		*same = 0;
		snprintf(why, why_len,
				 "%zu of the %zu tensors used differ (largest difference %.3g, in \"%s\")",
				 differ, compared, worst, quote(worst_name, q));
	}
	return FB_OK;
}

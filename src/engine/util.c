/*
 * util.c — errors, files, paths and aligned memory for the engine.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fb_internal.h"

const char *
fb_status_name(fb_status st)
{
	switch (st)
	{
		case FB_OK:
			return "ok";
		case FB_ERR_IO:
			return "i/o error";
		case FB_ERR_CORRUPT:
			return "corrupt file";
		case FB_ERR_UNSUPPORTED:
			return "unsupported";
		case FB_ERR_NOMEM:
			return "out of memory";
		case FB_ERR_INVALID:
			return "invalid input";
		case FB_ERR_LIMIT:
			return "limit exceeded";
		case FB_ERR_INTERRUPTED:
			return "interrupted";
		case FB_ERR_NUMERIC:
			return "non-finite result";
		case FB_ERR_DEVICE:
			return "device error";
	}
	return "unknown status";
}

fb_status
fb_fail(fb_error *err, fb_status st, const char *fmt,...)
{
	if (err != NULL)
	{
		va_list		ap;

		err->status = st;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return st;
}

char *
fb_path_join(const char *dir, const char *name)
{
	size_t		a = strlen(dir),
				b = strlen(name);
	char	   *p = malloc(a + b + 2);

	if (p == NULL)
		return NULL;
	memcpy(p, dir, a);
	if (a > 0 && dir[a - 1] != '/')
		p[a++] = '/';
	memcpy(p + a, name, b + 1);
	return p;
}

bool
fb_file_exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

fb_status
fb_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len,
			 fb_error *err)
{
	struct stat sb;
	char	   *buf;
	size_t		got = 0;
	int			fd;

	*out = NULL;
	if (out_len)
		*out_len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fb_fail(err, FB_ERR_IO, "could not open \"%s\": %s", path,
					   strerror(errno));
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
	{
		close(fd);
		return fb_fail(err, FB_ERR_IO, "\"%s\" is not a regular file", path);
	}
	if ((uint64_t) sb.st_size > max_bytes)
	{
		close(fd);
		return fb_fail(err, FB_ERR_CORRUPT,
					   "\"%s\" is %lld bytes, over the limit of %zu bytes",
					   path, (long long) sb.st_size, max_bytes);
	}
	buf = malloc((size_t) sb.st_size + 1);
	if (buf == NULL)
	{
		close(fd);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory reading \"%s\"", path);
	}
	while (got < (size_t) sb.st_size)
	{
		ssize_t		r = read(fd, buf + got, (size_t) sb.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
		{
			int			e = errno;

			free(buf);
			close(fd);
			return fb_fail(err, FB_ERR_IO, "could not read \"%s\": %s", path,
						   strerror(e));
		}
		if (r == 0)
			break;				/* file shrank while reading */
		got += (size_t) r;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	if (out_len)
		*out_len = got;
	return FB_OK;
}

void *
fb_alloc_aligned(size_t bytes)
{
	void	   *p = NULL;

	if (bytes == 0)
		bytes = 64;
	if (posix_memalign(&p, 64, bytes) != 0)
		return NULL;
	return p;
}

void
fb_free_aligned(void *p)
{
	free(p);
}

float
fb_f16_to_f32(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	exp = (h >> 10) & 0x1f;
	uint32_t	mant = h & 0x3ff;
	uint32_t	bits;
	float		f;

	if (exp == 0)
	{
		if (mant == 0)
			bits = sign;
		else
		{
			/* subnormal: normalise */
			exp = 127 - 15 + 1;
			while ((mant & 0x400) == 0)
			{
				mant <<= 1;
				exp--;
			}
			mant &= 0x3ff;
			bits = sign | (exp << 23) | (mant << 13);
		}
	}
	else if (exp == 0x1f)
		bits = sign | 0x7f800000u | (mant << 13);
	else
		bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
	memcpy(&f, &bits, sizeof(f));
	return f;
}

float
fb_bf16_to_f32(uint16_t h)
{
	uint32_t	bits = (uint32_t) h << 16;
	float		f;

	memcpy(&f, &bits, sizeof(f));
	return f;
}

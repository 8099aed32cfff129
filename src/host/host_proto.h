/*
 * host_proto.h — the protocol between the finbert background worker
 * (src/pg/host.c) and its engine host process (src/host/finbert_host.c).
 *
 * Plain C, no PostgreSQL and no engine state: both sides include it.  One
 * socketpair (SOCK_STREAM); each message is a frame
 *
 *     u32 magic (FB_HOST_MAGIC), u32 type, u32 payload length, payload
 *
 * little-endian as the machine (both ends are the same build).  The worker
 * sends a request, the host answers it with a frame of the same type before
 * it reads the next one.  Every field is read through fb_hr_* below, which
 * bounds-checks against the payload: a short or malformed frame is a
 * protocol error (the worker kills the host), never a read out of bounds.
 *
 * Payloads (str = u32 length + bytes, no terminator):
 *   PROBE  req: u32 device, i32 ordinal, str cuda_module
 *          ans: u32 status, str message, u32 device, str name, u64 total,
 *               u64 used, str note
 *   OPEN   req: u32 model id, str path, u32 precision, u32 device,
 *               i32 ordinal, i32 max_batch_tokens, i32 threads, str cuda_module
 *          ans: u32 status, str message, u32 device, u64 device bytes
 *   CLOSE  req: u32 model id          ans: (empty)
 *   RUN    req: u32 model id, u32 kind, i32 max_length, i32 window_stride,
 *               i32 ner_stride, u32 pooling, i32 normalize, u32 row_floats,
 *               u32 n, n x str text
 *          ans: u32 status, str message, u64 tokens, u64 device memory in
 *               use (0 on the CPU), then
 *               CLASSIFY / EMBED: n * row_floats f32 (status FB_OK only);
 *               ENTITIES: per text u32 status, str message, u64 tokens,
 *                 u32 count, count x (str text, str label, i32 start,
 *                 i32 end, f32 score)
 *   INFO   req: (empty)
 *          ans: u32 status, str message, u32 device, str name, u64 total,
 *               u64 used, str note
 * A RUN is interrupted by SIGUSR1 to the host (answer FB_ERR_INTERRUPTED).
 */
#ifndef FINBERT_HOST_PROTO_H
#define FINBERT_HOST_PROTO_H

#include <stdint.h>
#include <string.h>

#define FB_HOST_MAGIC		0x31484246u	/* "FBH1" */
#define FB_HOST_HEADER		12
/* Largest payload either side accepts (texts are bounded far below). */
#define FB_HOST_MAX_FRAME	(512u * 1024u * 1024u)
/* The socket's descriptor number in the host process. */
#define FB_HOST_FD			3
/* Process title (argv[0]) of the host: how ps and tests find it. */
#define FB_HOST_TITLE		"finbert engine host"

enum
{
	FB_HOST_PROBE = 1,
	FB_HOST_OPEN,
	FB_HOST_CLOSE,
	FB_HOST_RUN,
	FB_HOST_INFO
};

enum
{
	FB_HOST_CLASSIFY = 1,
	FB_HOST_EMBED,
	FB_HOST_ENTITIES
};

/* Reading a payload: every fb_hr_* returns 0 once the frame is exhausted
 * or malformed, and the reader stays failed. */
typedef struct fb_host_reader
{
	const unsigned char *p;
	size_t		left;
	int			ok;
} fb_host_reader;

static inline void
fb_hr_init(fb_host_reader *r, const void *buf, size_t len)
{
	r->p = (const unsigned char *) buf;
	r->left = len;
	r->ok = 1;
}

static inline int
fb_hr_bytes(fb_host_reader *r, void *dst, size_t n)
{
	if (!r->ok || r->left < n)
		return r->ok = 0;
	memcpy(dst, r->p, n);
	r->p += n;
	r->left -= n;
	return 1;
}

static inline uint32_t
fb_hr_u32(fb_host_reader *r)
{
	uint32_t	v = 0;

	fb_hr_bytes(r, &v, sizeof(v));
	return v;
}

static inline int32_t
fb_hr_i32(fb_host_reader *r)
{
	int32_t		v = 0;

	fb_hr_bytes(r, &v, sizeof(v));
	return v;
}

static inline uint64_t
fb_hr_u64(fb_host_reader *r)
{
	uint64_t	v = 0;

	fb_hr_bytes(r, &v, sizeof(v));
	return v;
}

static inline float
fb_hr_f32(fb_host_reader *r)
{
	float		v = 0;

	fb_hr_bytes(r, &v, sizeof(v));
	return v;
}

/* A string in place (not terminated): *len bytes at the returned pointer,
 * NULL when malformed. */
static inline const char *
fb_hr_str(fb_host_reader *r, uint32_t *len)
{
	uint32_t	n = fb_hr_u32(r);
	const char *s;

	if (!r->ok || r->left < n)
	{
		r->ok = 0;
		*len = 0;
		return NULL;
	}
	s = (const char *) r->p;
	r->p += n;
	r->left -= n;
	*len = n;
	return s;
}

/* A string copied into dst[size] (cut to fit, terminated). */
static inline int
fb_hr_str_copy(fb_host_reader *r, char *dst, size_t size)
{
	uint32_t	n;
	const char *s = fb_hr_str(r, &n);

	if (size == 0)
		return r->ok;
	if (s == NULL)
	{
		dst[0] = '\0';
		return 0;
	}
	if (n >= size)
		n = (uint32_t) (size - 1);
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 1;
}

#endif

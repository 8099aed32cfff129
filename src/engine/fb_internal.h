/*
 * fb_internal.h — helpers shared by the engine's source files.
 * Not part of the public API.
 */
#ifndef FB_INTERNAL_H
#define FB_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "finbert.h"
#include "fb_limits.h"

#if defined(__GNUC__)
#define FB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FB_PRINTF(a, b)
#endif

/* Sets err (if not NULL) and returns st. */
fb_status	fb_fail(fb_error *err, fb_status st, const char *fmt,...) FB_PRINTF(3, 4);

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool
fb_mul_size(size_t a, size_t b, size_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}

static inline bool
fb_add_size(size_t a, size_t b, size_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

/* Reads a whole regular file of at most max_bytes into a NUL-terminated
 * malloc'd buffer. */
fb_status	fb_read_file(const char *path, size_t max_bytes, char **out,
						 size_t *out_len, fb_error *err);

/* Joins dir and name into a malloc'd path; NULL when out of memory. */
char	   *fb_path_join(const char *dir, const char *name);

/* Does the file exist (regular file)? */
bool		fb_file_exists(const char *path);

/* Polls the run control; true when the host asked to stop. */
static inline bool
fb_interrupted(const fb_run_ctl *ctl)
{
	return ctl != NULL && ctl->interrupt != NULL && ctl->interrupt(ctl->arg);
}

/* The engine's environment settings, read once per process (env.c, which
 * documents each variable). */
typedef struct fb_env
{
	char		cpu_kernel[16];	/* FINBERT_CPU_KERNEL; "": the CPU's best */
	bool		int8_attention_fp32;	/* FINBERT_INT8_ATTENTION=fp32 */
	size_t		narrow_rows;	/* FINBERT_NARROW_ROWS, > 0 */
} fb_env;

const fb_env *fb_env_get(void);

/* An element-wise activation applied in place (GELU, ReLU). */
typedef void (*fb_act_fn) (float *x, size_t n);

/* Aligned allocation for tensors (64 bytes: one cache line, AVX-512). */
void	   *fb_alloc_aligned(size_t bytes);
void		fb_free_aligned(void *p);

/* Half-precision conversions (exact, round-to-nearest-even from fp32). */
float		fb_f16_to_f32(uint16_t h);
float		fb_bf16_to_f32(uint16_t h);

#endif

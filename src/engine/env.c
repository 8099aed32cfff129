/*
 * env.c — the engine's environment settings, read once per process.
 *
 * The engine takes its settings from its caller (fb_model_options,
 * fb_task_options), except a few diagnostic and benchmarking switches that
 * tests and benchmarks set from outside.  They are read here and nowhere
 * else, all at once, the first time one is needed (fb_env_get), and never
 * change afterwards (a forward pass never sees two values):
 *
 *   FINBERT_CPU_KERNEL=generic|avx2|avx512
 *       forces the CPU kernel set (cpu/kernels.c); a name the CPU cannot
 *       run, or an unknown one, keeps the best set for the CPU.
 *   FINBERT_INT8_ATTENTION=fp32
 *       int8 mode runs attention in fp32 instead of bfloat16 (bert.c):
 *       measures what the bfloat16 rounding costs.
 *   FINBERT_NARROW_ROWS=N
 *       rows per thread under which a batch takes the narrow path
 *       (bert.c); default FB_ENV_NARROW_ROWS.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fb_internal.h"

/* Default rows per thread under which a batch takes the narrow path. */
#define FB_ENV_NARROW_ROWS 128

static fb_env env;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void
read_env(void)
{
	const char *s;
	long		v;

	s = getenv("FINBERT_CPU_KERNEL");
	if (s != NULL && strlen(s) < sizeof(env.cpu_kernel))
		strcpy(env.cpu_kernel, s);

	s = getenv("FINBERT_INT8_ATTENTION");
	env.int8_attention_fp32 = s != NULL && strcmp(s, "fp32") == 0;

	s = getenv("FINBERT_NARROW_ROWS");
	v = s != NULL ? atol(s) : 0;
	env.narrow_rows = v > 0 ? (size_t) v : FB_ENV_NARROW_ROWS;
}

const fb_env *
fb_env_get(void)
{
	pthread_once(&env_once, read_env);
	return &env;
}

/*
 * kernels.c — picks the element-wise kernel set once per process.
 */
#include <pthread.h>
#include <string.h>

#include "fb_kernels.h"
#include "fb_ops.h"

static const fb_cpu_kernels generic_kernels = {
	"generic", fb_cpu_layernorm, fb_cpu_gelu_erf, fb_cpu_gelu_tanh, fb_cpu_softmax,
	fb_q8_quantize_ref, fb_q8_panel_ref, NULL, NULL, NULL, 0, NULL
};

static const fb_cpu_kernels avx2_kernels = {
	"avx2", fb_avx2_layernorm, fb_avx2_gelu_erf, fb_avx2_gelu_tanh, fb_avx2_softmax,
	fb_avx2_q8_quantize, fb_avx2_q8_panel, NULL, NULL, fb_avx2_f32_panel, FB_AVX2_F32_MR, NULL
};

static const fb_cpu_kernels avx512_kernels = {
	"avx512", fb_avx512_layernorm, fb_avx512_gelu_erf, fb_avx512_gelu_tanh, fb_avx512_softmax,
	fb_avx512_q8_quantize, fb_avx512_q8_panel, fb_avx512_q8_panel2, fb_avx512_q8_panel2_gelu,
	fb_avx512_f32_panel, FB_F32_MR, NULL
};

/* the same with AVX512-BF16 (Cooper Lake, Sapphire Rapids, Zen 4) */
static const fb_cpu_kernels avx512_bf16_kernels = {
	"avx512", fb_avx512_layernorm, fb_avx512_gelu_erf, fb_avx512_gelu_tanh, fb_avx512_softmax,
	fb_avx512_q8_quantize, fb_avx512_q8_panel, fb_avx512_q8_panel2, fb_avx512_q8_panel2_gelu,
	fb_avx512_f32_panel, FB_F32_MR, fb_avx512_attn_bf16
};

static const fb_cpu_kernels *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static bool
cpu_has_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* AVX-512 with VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later); a CPU
 * with AVX-512 but no VNNI (Skylake-X) takes the AVX2 set. */
static bool
cpu_has_avx512_vnni(void)
{
	__builtin_cpu_init();
	return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
		__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
		__builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

static bool
cpu_has_avx512_bf16(void)
{
	__builtin_cpu_init();
	return cpu_has_avx512_vnni() && __builtin_cpu_supports("avx512bf16");
}

static const fb_cpu_kernels *
avx512_set(void)
{
	return cpu_has_avx512_bf16() ? &avx512_bf16_kernels : &avx512_kernels;
}

const fb_cpu_kernels *
fb_cpu_kernels_by_name(const char *name)
{
	if (strcmp(name, "generic") == 0)
		return &generic_kernels;
	if (strcmp(name, "avx2") == 0 && cpu_has_avx2())
		return &avx2_kernels;
	if (strcmp(name, "avx512") == 0 && cpu_has_avx512_vnni())
		return avx512_set();
	return NULL;
}

static void
choose(void)
{
	const char *force = fb_env_get()->cpu_kernel;

	if (force[0] != '\0' && fb_cpu_kernels_by_name(force) != NULL)
		chosen = fb_cpu_kernels_by_name(force);
	else
		chosen = cpu_has_avx512_vnni() ? avx512_set() :
			cpu_has_avx2() ? &avx2_kernels : &generic_kernels;
}

const fb_cpu_kernels *
fb_cpu_kernels_get(void)
{
	pthread_once(&chosen_once, choose);
	return chosen;
}

const char *
fb_cpu_kernel_name(void)
{
	return fb_cpu_kernels_get()->name;
}

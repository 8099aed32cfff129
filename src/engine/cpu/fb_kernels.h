/*
 * fb_kernels.h — element-wise CPU kernels chosen once at run time.
 *
 * The generic set is the plain-C reference (ops_cpu.c); the AVX2+FMA set
 * (ops_avx2.c) is compiled with a target attribute, so the library runs on
 * any x86-64 and uses the wide kernels only where the CPU has them.
 * The AVX-512 set (ops_avx512.c, gemm_q8_avx512.c: VNNI int8 GEMM) is
 * chosen where the CPU has AVX-512 F/BW/DQ/VL and VNNI; with AVX512-BF16
 * as well, int8 mode runs attention in bfloat16 (attn_bf16_avx512.c).
 * FINBERT_CPU_KERNEL=generic|avx2|avx512 forces a set (tests, benchmarks;
 * read in env.c).
 */
#ifndef FB_KERNELS_H
#define FB_KERNELS_H

#include "fb_internal.h"
#include "fb_attn.h"
#include "fb_f32.h"
#include "fb_q8.h"

typedef struct fb_cpu_kernels
{
	const char *name;
	/* x = LayerNorm(x + res) row by row; res NULL: LayerNorm(x) */
	void		(*layernorm) (float *x, const float *res, const float *g, const float *b, int T, int C,
							  float eps);
	void		(*gelu_erf) (float *x, size_t n);
	void		(*gelu_tanh) (float *x, size_t n);
	void		(*softmax) (float *x, int rows, int n);
	fb_q8_quantize_fn q8_quantize;	/* int8 linear layers (fb_q8.h) */
	fb_q8_panel_fn q8_panel;
	fb_q8_panel2_fn q8_panel2;	/* NULL: one panel at a time */
	fb_q8_panel2_fn q8_panel2_gelu; /* q8_panel2 + gelu_erf as it stores; NULL:
									 * separate */
	fb_f32_panel_fn f32_panel;	/* packed fp32 layers (fb_f32.h); NULL: BLAS */
	int			f32_mr;			/* rows per f32_panel call (<= FB_F32_MR) */
	fb_attn_bf16_fn attn_bf16;	/* int8 mode's attention (fb_attn.h); NULL: fp32 */
} fb_cpu_kernels;

const fb_cpu_kernels *fb_cpu_kernels_get(void);
/* A specific set by name ("generic", "avx2", "avx512"); NULL when unavailable on
 * this CPU. */
const fb_cpu_kernels *fb_cpu_kernels_by_name(const char *name);

/* AVX2 entry points (ops_avx2.c). */
void		fb_avx2_layernorm(float *x, const float *res, const float *g, const float *b, int T, int C,
							  float eps);
void		fb_avx2_gelu_erf(float *x, size_t n);
void		fb_avx2_gelu_tanh(float *x, size_t n);
void		fb_avx2_softmax(float *x, int rows, int n);

/* AVX-512 entry points (ops_avx512.c). */
void		fb_avx512_layernorm(float *x, const float *res, const float *g, const float *b, int T, int C,
								float eps);
void		fb_avx512_gelu_erf(float *x, size_t n);
void		fb_avx512_gelu_tanh(float *x, size_t n);
void		fb_avx512_softmax(float *x, int rows, int n);

#endif

/*
 * fb_attn.h — one attention head with bfloat16 operands (int8 mode).
 *
 * In int8 mode the linear layers run at four times the fp32 MAC rate, so
 * attention (two small fp32 GEMMs per head) became an eighth of the time.
 * This variant rounds Q, K, V and the softmax numerators to bfloat16 and
 * accumulates in fp32, which AVX512-BF16 (`vdpbf16ps`) runs at twice the
 * fp32 rate; the rounding (8 significant bits) is of the order of the int8
 * quantisation of the activations it follows.  The fp32 path never uses it.
 *
 * The arithmetic is defined by the plain-C reference, which the AVX-512
 * kernel equals bit for bit (test/test_kernels.c):
 *   qb = bf16(q / sqrt(dh)), kb = bf16(k), vb = bf16(v)   (round to nearest
 *        even, denormals flushed: vcvtneps2bf16)
 *   s[j] = dot(qb, kb[j]) over element pairs (2p, 2p + 1) in order of p,
 *          each pair's odd product added to the fp32 sum first, then the
 *          even one, each addition rounded and flushed to zero if denormal
 *          (vdpbf16ps as the Intel SDM defines it; a 100,000-case probe on
 *          Zen 4 matched it exactly)
 *   e[j] = exp(s[j] - max s) (the kernels' polynomial), total = sum of e
 *          in 16 lane partial sums (lane j mod 16), then lanes 0..15 in order
 *   out[d] = (sum over pairs of bf16(e[j]) * vb[j][d]) * (1 / total)
 * Odd dh and L are padded with zeros.
 */
#ifndef FB_ATTN_H
#define FB_ATTN_H

#include <stddef.h>
#include <stdint.h>

/* out[n_query, dh] (leading dimension ldo) = softmax(q k^T / sqrt(dh)) v
 * for one head: q, k, v rows with leading dimension ld, L keys.  scratch
 * holds fb_attn_bf16_scratch(L, dh) bytes, 64-byte aligned. */
typedef void (*fb_attn_bf16_fn) (const float *q, const float *k, const float *v,
								 int ld, float *out, int ldo, void *scratch,
								 int n_query, int L, int dh);

/* Scratch bytes for one head of L keys and dh channels. */
size_t		fb_attn_bf16_scratch(int L, int dh);

/* Round to bfloat16 as vcvtneps2bf16 does (nearest even, denormals to
 * zero, NaN kept quiet). */
uint16_t	fb_bf16_round(float x);

void		fb_attn_bf16_ref(const float *q, const float *k, const float *v, int ld,
							 float *out, int ldo, void *scratch, int n_query, int L, int dh);
void		fb_avx512_attn_bf16(const float *q, const float *k, const float *v, int ld,
								float *out, int ldo, void *scratch, int n_query, int L,
								int dh);

#endif

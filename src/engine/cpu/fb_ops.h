/*
 * fb_ops.h — CPU reference operators (plain C, readable; the fast paths
 * are checked against these).  Shapes: T = tokens, C = channels.
 */
#ifndef FB_OPS_H
#define FB_OPS_H

#include "fb_internal.h"

/* y[T, N] (+)= x[T, K] · W[K, N]; beta 0 overwrites, 1 accumulates. */
void		fb_cpu_linear(const float *x, const float *w, float *y, int T, int N,
						  int K, float beta);
/* Same with W in PyTorch's layout [N, K]: y = x · W^T. */
void		fb_cpu_linear_nt(const float *x, const float *w, float *y, int T,
							 int N, int K, float beta);
/* Columns [n0, n1) of y[T, N] += x[T, K] · W[K, N]. */
void		fb_cpu_linear_cols(const float *x, const float *w, float *y, int T,
							   int n0, int n1, int N, int K);
/* y[T, N] = bias broadcast over rows (before an accumulating linear). */
void		fb_cpu_fill_bias(float *y, const float *bias, int T, int N);
/* In-place LayerNorm over the last dimension of x + res (the residual
 * connection, added in the same pass; res may be NULL). */
void		fb_cpu_layernorm(float *x, const float *res, const float *g,
							 const float *b, int T, int C, float eps);
/* In-place activations. */
void		fb_cpu_gelu_erf(float *x, size_t n);
void		fb_cpu_gelu_tanh(float *x, size_t n);
void		fb_cpu_relu(float *x, size_t n);
void		fb_cpu_activation(fb_act act, float *x, size_t n);
/* In-place softmax of each of `rows` rows of length n. */
void		fb_cpu_softmax(float *x, int rows, int n);
/* In-place elementwise tanh. */
void		fb_cpu_tanh(float *x, size_t n);
/* One head: out[Q, dh] (leading dimension ldo) = softmax(Q K^T / sqrt(dh)) V
 * for the first n_query query rows against L key/value rows; q, k, v have
 * leading dimension ld. */
void		fb_cpu_attention_head(const float *q, const float *k, const float *v,
								  int ld, float *out, int ldo, float *scores,
								  int n_query, int L, int dh,
								  void (*softmax) (float *, int, int));
/* Scaled dot-product attention of one sequence: qkv rows [L, 3C] (query,
 * key, value stacked), heads of C / n_heads channels, out rows [L, C]
 * with leading dimension ldo; scores is an [L, L] scratch. */
void		fb_cpu_attention(const float *qkv, float *out, int ldo, float *scores,
							 int L, int C, int n_heads);

#endif

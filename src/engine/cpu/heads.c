/*
 * heads.c — pooling and the classification heads on the CPU, in fp32:
 * the readable reference every backend's heads are checked against.
 */
#include <math.h>
#include <string.h>

#include "cpu/fb_cpu_backend.h"
#include "cpu/fb_ops.h"

void
fb_cpu_pooler(const fb_weights *w, const float *cls, int n, float *pooled)
{
	int			H = w->hidden;

	fb_cpu_fill_bias(pooled, w->pool_b, n, H);
	/* one row per call: a BLAS kernel may treat the last rows of a call
	 * differently (OpenBLAS's Haswell kernel does), and a sentence's pooled
	 * vector must not depend on how many share its batch */
	for (int i = 0; i < n; i++)
		fb_cpu_linear(cls + (size_t) i * H, w->pool_w, pooled + (size_t) i * H, 1, H, H, 1.0f);
	fb_cpu_tanh(pooled, (size_t) n * H);
}

void
fb_cpu_sequence_head(const fb_weights *w, const float *cls_row, const float *pooled,
					 float *scratch, float *logits)
{
	int			H = w->hidden,
				NL = w->n_labels;
	const float *feat;

	if (w->cls_dense_w != NULL)
	{
		/* ELECTRA head: gelu(dense(h_cls)) then out_proj */
		fb_cpu_fill_bias(scratch, w->cls_dense_b, 1, H);
		fb_cpu_linear(cls_row, w->cls_dense_w, scratch, 1, H, H, 1.0f);
		fb_cpu_gelu_erf(scratch, (size_t) H);
		feat = scratch;
	}
	else
		feat = pooled;
	for (int j = 0; j < NL; j++)
	{
		const float *wr = w->cls_w + (size_t) j * H;
		double		acc = w->cls_b[j];

		for (int k = 0; k < H; k++)
			acc += (double) wr[k] * feat[k];
		logits[j] = (float) acc;
	}
}

void
fb_cpu_mean_rows(const float *rows, int len, int H, float *mean)
{
	for (int k = 0; k < H; k++)
	{
		double		sum = 0.0;

		for (int t = 0; t < len; t++)
			sum += rows[(size_t) t * H + k];
		mean[k] = (float) (sum / len);
	}
}

void
fb_cpu_token_head(const fb_weights *w, const float *rows, size_t T, float *logits)
{
	int			H = w->hidden,
				NL = w->n_labels;

	/* row by row: the rows of one text give the same logits whatever else
	 * shares its batch */
	for (size_t t = 0; t < T; t++)
	{
		fb_cpu_fill_bias(logits + t * NL, w->cls_b, 1, NL);
		fb_cpu_linear_nt(rows + t * H, w->cls_w, logits + t * NL, 1, NL, H, 1.0f);
	}
}

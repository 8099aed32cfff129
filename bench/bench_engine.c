/*
 * bench_engine.c — throughput and latency of the finbert engine on one
 * model: random token ids of a fixed length, fixed batch size.
 *
 *   bench_engine MODEL_DIR --batch B --length L [--iters N] [--threads T]
 *                [--device cpu|cuda] [--cuda-module PATH] [--attention auto|fused|gemm]
 *                [--pipeline 1]
 *
 * Prints one JSON object: tokens/s, sequences/s, p50/p99 batch latency.
 * --pipeline 1 keeps two batches in flight (fb_forward_submit / wait, as
 * the task functions and a host process do): tokens/s is then the
 * throughput of back-to-back batches, p50/p99 the time between two
 * batches' completions.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "finbert.h"
#include "bench_util.h"

char	   *openblas_get_corename(void);
char	   *openblas_get_config(void);

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	const char *dir;
	int			batch = 1,
				length = 128,
				iters = 10,
				threads = 0;
	double		min_seconds = 5.0;
	fb_model   *m;
	fb_session *s;
	fb_error	err = {0};
	int32_t   **ids;
	int		   *lens;
	float	   *hidden,
			   *pooled;
	double	   *lat;
	double		total = 0.0;
	int			done = 0;
	const fb_model_info *info;
	const char *task = "forward";
	fb_model_options mo = fb_model_default_options();
	bool		pipeline = false;
	fb_device_info dev;

	if (argc < 2)
	{
		fprintf(stderr, "usage: bench_engine MODEL_DIR [--batch B] [--length L] [--iters N] [--threads T] [--seconds S] [--precision fp32|int8]\n");
		return 2;
	}
	dir = argv[1];
	for (int i = 2; i + 1 < argc; i += 2)
	{
		if (strcmp(argv[i], "--batch") == 0)
			batch = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--length") == 0)
			length = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--iters") == 0)
			iters = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--threads") == 0)
			threads = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--seconds") == 0)
			min_seconds = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--precision") == 0 &&
				 fb_precision_from_name(argv[i + 1], &mo.precision) != 0)
		{
			fprintf(stderr, "bench_engine: unknown precision %s\n", argv[i + 1]);
			return 2;
		}
		else if (strcmp(argv[i], "--device") == 0 &&
				 fb_device_from_name(argv[i + 1], &mo.device) != 0)
		{
			fprintf(stderr, "bench_engine: unknown device %s\n", argv[i + 1]);
			return 2;
		}
		else if (strcmp(argv[i], "--attention") == 0 &&
				 fb_attention_from_name(argv[i + 1], &mo.attention) != 0)
		{
			fprintf(stderr, "bench_engine: unknown attention %s\n", argv[i + 1]);
			return 2;
		}
		else if (strcmp(argv[i], "--cuda-module") == 0)
			mo.cuda_module = argv[i + 1];
		else if (strcmp(argv[i], "--pipeline") == 0)
			pipeline = atoi(argv[i + 1]) != 0;
	}
	if (fb_model_open(dir, &mo, &m, &err) != FB_OK)
	{
		fprintf(stderr, "bench_engine: %s\n", err.msg);
		return 2;
	}
	info = fb_model_get_info(m);
	if (fb_session_open(m, &s, &err) != FB_OK || fb_model_device_info(m, &dev, &err) != FB_OK)
	{
		fprintf(stderr, "bench_engine: %s\n", err.msg);
		return 2;
	}
	if (threads < 1)
		threads = (int) sysconf(_SC_NPROCESSORS_ONLN);
	threads = fb_session_set_threads(s, threads);
	ids = malloc(sizeof(int32_t *) * batch);
	lens = malloc(sizeof(int) * batch);
	srand(42);
	for (int b = 0; b < batch; b++)
	{
		ids[b] = malloc(sizeof(int32_t) * length);
		ids[b][0] = 101;
		for (int t = 1; t < length - 1; t++)
			ids[b][t] = 1000 + rand() % (info->vocab_size - 1000);
		ids[b][length - 1] = 102;
		lens[b] = length;
	}
	hidden = malloc(sizeof(float) * (size_t) batch * length * info->hidden);
	pooled = malloc(sizeof(float) * (size_t) batch * info->hidden);
	lat = malloc(sizeof(double) * (iters + 100000));
	{
		fb_batch	bt = {batch, (const int32_t *const *) ids, lens};

		/* classification models run the classification task (logits of
		 * every sequence); encoders the full forward pass */
		bool		classify = info->head == FB_HEAD_SEQUENCE;

		/* warm-up: first-touch of buffers, thread start */
		if ((classify ? fb_classify_batch(s, &bt, hidden, NULL, &err)
			 : fb_forward(s, &bt, hidden, info->has_pooler ? pooled : NULL, &err)) != FB_OK)
		{
			fprintf(stderr, "bench_engine: %s\n", err.msg);
			return 1;
		}
		task = classify ? "classify" : "forward";
		if (pipeline)
		{
			/* two batches in flight; the [CLS] rows (or logits) come back */
			unsigned	out = classify ? FB_OUT_SEQ_LOGITS : FB_OUT_CLS;
			fb_outputs	o;
			double		last = bench_now(),
						start = last;

			task = classify ? "classify-pipelined" : "cls-pipelined";
			if (fb_forward_submit(s, &bt, out, &err) != FB_OK)
			{
				fprintf(stderr, "bench_engine: %s\n", err.msg);
				return 1;
			}
			while (done < iters || total < min_seconds)
			{
				double		t;

				if (fb_forward_submit(s, &bt, out, &err) != FB_OK ||
					fb_forward_wait(s, &o, &err) != FB_OK)
				{
					fprintf(stderr, "bench_engine: %s\n", err.msg);
					return 1;
				}
				t = bench_now();
				lat[done++] = t - last;
				last = t;
				total = t - start;
				if (done >= iters + 99999)
					break;
			}
			fb_forward_wait(s, &o, &err);
		}
		while (!pipeline && (done < iters || total < min_seconds))
		{
			double		t0 = bench_now();

			if (classify)
				fb_classify_batch(s, &bt, hidden, NULL, &err);
			else
				fb_forward(s, &bt, hidden, info->has_pooler ? pooled : NULL, &err);
			lat[done] = bench_now() - t0;
			total += lat[done];
			done++;
			if (done >= iters + 99999)
				break;
		}
	}
	qsort(lat, done, sizeof(double), cmp_double);
	printf("{\"engine\":\"finbert\",\"task\":\"%s\",\"precision\":\"%s\",\"batch\":%d,\"length\":%d,\"iters\":%d,"
		   "\"tokens_per_s\":%.1f,\"seqs_per_s\":%.2f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
		   "\"threads\":%d,\"kernel\":\"%s\",\"blas_core\":\"%s\",\"weights_mb\":%.1f,"
		   "\"device\":\"%s\",\"device_name\":\"%s\",\"attention\":\"%s\",\"device_mb\":%.1f}\n",
		   task, fb_precision_name(info->precision), batch, length, done, (double) batch * length * done / total,
		   (double) batch * done / total, lat[done / 2] * 1e3,
		   lat[(int) (done * 0.99) < done ? (int) (done * 0.99) : done - 1] * 1e3,
		   threads, fb_cpu_kernel_name(), openblas_get_corename(), info->resident_bytes / 1e6,
		   fb_device_name(info->device), dev.name, fb_attention_name(mo.attention),
		   info->device_bytes / 1e6);
	fb_session_free(s);
	fb_model_free(m);
	return 0;
}

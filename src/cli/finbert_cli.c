/*
 * finbert-cli — the engine from the command line.
 *
 *   finbert-cli tokenize MODEL_DIR
 *   finbert-cli classify MODEL_DIR [--max-length N] [--window STRIDE]
 *   finbert-cli entities MODEL_DIR [--max-length N] [--window STRIDE]
 *   finbert-cli embed    MODEL_DIR [--pooling cls|mean|pooler|none] [--normalize]
 *                                  [--max-length N]
 *   finbert-cli inspect  MODEL_DIR [--all]
 *       the weight format and files, architecture, every tensor the model
 *       uses, misses or leaves unused (with --all, each unused one too),
 *       dtypes and sizes, and why the directory would not load
 *   common: [--batch N] lines per engine call (classify, embed)
 *           [--precision fp32|int8|fp16|bf16] arithmetic of the linear layers
 *           [--device cpu|cuda|auto] where the model runs (default cpu)
 *           [--cuda-module PATH] the CUDA backend module (default:
 *           finbert_cuda.so next to this program)
 *           [--attention auto|fused|gemm] CUDA attention variant
 *   entities: [--logits] adds "token_logits" (one row per token, no [CLS]/[SEP])
 *           [--threads N] threads of the forward pass (default: all CPUs)
 *
 * Reads UTF-8 lines on stdin and writes one JSON object per line on stdout,
 * in order.  A bad model directory exits with code 2 and one line on
 * stderr; a line the engine rejects yields {"error": "..."} in its place
 * and exit code 1 at the end.
 */
#include <errno.h>
#include <stdbool.h>
#include <sys/types.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "finbert.h"

typedef struct cli_opts
{
	const char *cmd;
	const char *dir;
	fb_task_options task;
	int			batch;
	int			threads;
	fb_model_options model;
	int			logits;			/* entities: also print token logits */
	int			all;			/* inspect: list unused tensors too */
} cli_opts;

static void
usage(void)
{
	fprintf(stderr,
			"usage: finbert-cli {tokenize|classify|entities|embed|inspect} MODEL_DIR [options]\n"
			"  --max-length N     tokens per window including [CLS]/[SEP]\n"
			"  --window STRIDE    classify: sliding windows; entities: window advance\n"
			"  --pooling P        embed: cls | mean | pooler | none (default cls)\n"
			"  --normalize        embed: L2-normalise\n"
			"  --batch N          lines per engine call (default 32)\n"
			"  --threads N        threads of the forward pass (default: all CPUs)\n"
			"  --precision P      fp32 (default) | int8 (CPU) | fp16 | bf16 (CUDA)\n"
			"  --device D         cpu (default) | cuda | auto (cuda when present)\n"
			"  --cuda-module PATH the CUDA backend module (default: next to this program)\n"
			"  --attention A      CUDA attention: auto (default) | fused | gemm\n"
			"  --logits           entities: also print the token logits\n"
			"  --all              inspect: list every unused tensor\n");
}

static void
json_string(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '"' || c == '\\')
		{
			fputc('\\', f);
			fputc(c, f);
		}
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void
json_float(FILE *f, float v)
{
	fprintf(f, "%.9g", (double) v);
}

static void
json_error(FILE *f, const fb_error *err)
{
	fputs("{\"error\":", f);
	json_string(f, err->msg, strlen(err->msg));
	fputs("}\n", f);
}

static int
parse_int(const char *s, int lo, int hi, int *out)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int) v;
	return 0;
}

static int
parse_args(int argc, char **argv, cli_opts *o)
{
	memset(o, 0, sizeof(*o));
	if (argc < 3)
		return -1;
	o->cmd = argv[1];
	o->dir = argv[2];
	o->task = fb_task_default_options();
	o->model = fb_model_default_options();
	o->batch = 32;
	o->threads = (int) sysconf(_SC_NPROCESSORS_ONLN);
	if (o->threads < 1)
		o->threads = 1;
	for (int i = 3; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--normalize") == 0)
			o->task.normalize = 1;
		else if (strcmp(a, "--logits") == 0)
			o->logits = 1;
		else if (strcmp(a, "--all") == 0)
			o->all = 1;
		else if (v == NULL)
			return -1;
		else if (strcmp(a, "--max-length") == 0 && parse_int(v, 3, 1 << 20, &o->task.max_length) == 0)
			i++;
		else if (strcmp(a, "--window") == 0 && parse_int(v, 1, 1 << 20, &o->task.window_stride) == 0)
		{
			o->task.ner_stride = o->task.window_stride;
			i++;
		}
		else if (strcmp(a, "--batch") == 0 && parse_int(v, 1, 1 << 16, &o->batch) == 0)
			i++;
		else if (strcmp(a, "--threads") == 0 && parse_int(v, 1, 256, &o->threads) == 0)
			i++;
		else if (strcmp(a, "--precision") == 0 && fb_precision_from_name(v, &o->model.precision) == 0)
			i++;
		else if (strcmp(a, "--device") == 0 && fb_device_from_name(v, &o->model.device) == 0)
			i++;
		else if (strcmp(a, "--cuda-module") == 0)
		{
			o->model.cuda_module = v;
			i++;
		}
		else if (strcmp(a, "--attention") == 0 && fb_attention_from_name(v, &o->model.attention) == 0)
			i++;
		else if (strcmp(a, "--pooling") == 0)
		{
			if (strcmp(v, "cls") == 0)
				o->task.pooling = FB_POOL_CLS;
			else if (strcmp(v, "mean") == 0)
				o->task.pooling = FB_POOL_MEAN;
			else if (strcmp(v, "pooler") == 0)
				o->task.pooling = FB_POOL_POOLER;
			else if (strcmp(v, "none") == 0)
				o->task.pooling = FB_POOL_NONE;
			else
				return -1;
			i++;
		}
		else
			return -1;
	}
	return 0;
}

/* Lines of stdin, read in batches. */
typedef struct line_batch
{
	char	  **lines;
	size_t	   *lens;
	size_t	   *caps;
	size_t		n;
	int			max;
} line_batch;

static size_t
read_batch(line_batch *b)
{
	b->n = 0;
	while (b->n < (size_t) b->max)
	{
		ssize_t		r = getline(&b->lines[b->n], &b->caps[b->n], stdin);

		if (r < 0)
			break;
		if (r > 0 && b->lines[b->n][r - 1] == '\n')
			b->lines[b->n][--r] = '\0';
		b->lens[b->n] = (size_t) r;
		b->n++;
	}
	return b->n;
}

static int
cmd_tokenize(const cli_opts *o)
{
	fb_tokenizer *tok;
	fb_error	err = {0};
	fb_encoding enc;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		r;
	int			rc = 0;

	if (fb_tokenizer_open(o->dir, &tok, &err) != FB_OK)
	{
		fprintf(stderr, "finbert-cli: %s\n", err.msg);
		return 2;
	}
	fb_encoding_init(&enc);
	while ((r = getline(&line, &cap, stdin)) >= 0)
	{
		if (r > 0 && line[r - 1] == '\n')
			line[--r] = '\0';
		if (fb_tokenizer_encode(tok, line, (size_t) r, 1, NULL, &enc, &err) != FB_OK)
		{
			json_error(stdout, &err);
			rc = 1;
			continue;
		}
		fputs("{\"ids\":[", stdout);
		for (size_t i = 0; i < enc.n; i++)
			printf(i ? ",%d" : "%d", enc.ids[i]);
		fputs("],\"offsets\":[", stdout);
		for (size_t i = 0; i < enc.n; i++)
			printf(i ? ",[%d,%d]" : "[%d,%d]", enc.start[i], enc.end[i]);
		fputs("]}\n", stdout);
	}
	free(line);
	fb_encoding_free(&enc);
	fb_tokenizer_free(tok);
	return rc;
}

static void
print_classification(const fb_model_info *info, const float *logits, const float *probs)
{
	int			best = fb_argmax(logits, info->n_labels);

	fputs("{\"label\":", stdout);
	json_string(stdout, info->labels[best], strlen(info->labels[best]));
	fputs(",\"scores\":{", stdout);
	for (int j = 0; j < info->n_labels; j++)
	{
		if (j)
			fputc(',', stdout);
		json_string(stdout, info->labels[j], strlen(info->labels[j]));
		fputc(':', stdout);
		json_float(stdout, probs[j]);
	}
	fputs("},\"logits\":[", stdout);
	for (int j = 0; j < info->n_labels; j++)
	{
		if (j)
			fputc(',', stdout);
		json_float(stdout, logits[j]);
	}
	fputs("]}\n", stdout);
}

static void
print_vector(const float *v, int n)
{
	fputc('[', stdout);
	for (int k = 0; k < n; k++)
	{
		if (k)
			fputc(',', stdout);
		json_float(stdout, v[k]);
	}
	fputc(']', stdout);
}

static void
print_entities(const fb_entity_list *l, const float *logits, int n_tokens,
			   int n_labels)
{
	fputs("{\"entities\":[", stdout);
	for (size_t i = 0; i < l->n; i++)
	{
		const fb_entity *e = &l->items[i];

		if (i)
			fputc(',', stdout);
		fputs("{\"text\":", stdout);
		json_string(stdout, e->text, strlen(e->text));
		fputs(",\"label\":", stdout);
		json_string(stdout, e->label, strlen(e->label));
		printf(",\"start\":%d,\"end\":%d,\"score\":", e->start, e->end);
		json_float(stdout, e->score);
		fputc('}', stdout);
	}
	fputc(']', stdout);
	if (logits != NULL)
	{
		/* --logits: the merged token logits the entities were decoded from */
		fputs(",\"token_logits\":[", stdout);
		for (int r = 0; r < n_tokens; r++)
		{
			if (r)
				fputc(',', stdout);
			print_vector(logits + (size_t) r * n_labels, n_labels);
		}
		fputc(']', stdout);
	}
	fputs("}\n", stdout);
}

/* Runs one line alone (after a batch failed) so only that line errs. */
static int
run_one(fb_session *s, const fb_model_info *info, const cli_opts *o,
		const fb_text *t, float *buf, float *buf2)
{
	fb_error	err = {0};
	fb_status	st = FB_OK;

	if (strcmp(o->cmd, "classify") == 0)
	{
		st = fb_classify(s, t, 1, &o->task, buf, buf2, &err);
		if (st == FB_OK)
			print_classification(info, buf, buf2);
	}
	else if (strcmp(o->cmd, "embed") == 0 && o->task.pooling != FB_POOL_NONE)
	{
		st = fb_embed(s, t, 1, &o->task, buf, &err);
		if (st == FB_OK)
		{
			fputs("{\"embedding\":", stdout);
			print_vector(buf, info->hidden);
			fputs("}\n", stdout);
		}
	}
	else if (strcmp(o->cmd, "embed") == 0)
	{
		float	   *hs;
		int			n;

		st = fb_hidden_states(s, t, &o->task, &hs, &n, &err);
		if (st == FB_OK)
		{
			fputs("{\"embedding\":[", stdout);
			for (int r = 0; r < n; r++)
			{
				if (r)
					fputc(',', stdout);
				print_vector(hs + (size_t) r * info->hidden, info->hidden);
			}
			fputs("]}\n", stdout);
			free(hs);
		}
	}
	else
	{
		fb_entity_list l;
		float	   *lg = NULL;
		int			n = 0;

		fb_entity_list_init(&l);
		st = fb_entities(s, t, &o->task, &l, &err);
		if (st == FB_OK && o->logits)
			st = fb_token_logits(s, t, &o->task, &lg, &n, &err);
		if (st == FB_OK)
			print_entities(&l, lg, n, info->n_labels);
		fb_entity_list_free(&l);
		free(lg);
	}
	if (st != FB_OK)
	{
		json_error(stdout, &err);
		return 1;
	}
	return 0;
}

static int
cmd_model(const cli_opts *o)
{
	fb_model   *m;
	fb_session *s;
	fb_error	err = {0};
	const fb_model_info *info;
	line_batch	b = {0};
	fb_text    *texts;
	float	   *out1,
			   *out2;
	size_t		width;
	int			rc = 0;
	bool		batched;

	if (fb_model_open(o->dir, &o->model, &m, &err) != FB_OK)
	{
		fprintf(stderr, "finbert-cli: %s\n", err.msg);
		return 2;
	}
	info = fb_model_get_info(m);
	if ((strcmp(o->cmd, "classify") == 0 && info->head != FB_HEAD_SEQUENCE) ||
		(strcmp(o->cmd, "entities") == 0 && info->head != FB_HEAD_TOKEN))
	{
		fprintf(stderr, "finbert-cli: %s: the model has no %s head\n", o->dir,
				strcmp(o->cmd, "classify") == 0 ? "sequence-classification" : "token-classification");
		fb_model_free(m);
		return 2;
	}
	if (fb_session_open(m, &s, &err) != FB_OK)
	{
		fprintf(stderr, "finbert-cli: %s\n", err.msg);
		fb_model_free(m);
		return 2;
	}
	fb_session_set_threads(s, o->threads);
	batched = strcmp(o->cmd, "classify") == 0 ||
		(strcmp(o->cmd, "embed") == 0 && o->task.pooling != FB_POOL_NONE);
	b.max = batched ? o->batch : 1;
	b.lines = calloc((size_t) b.max, sizeof(char *));
	b.lens = calloc((size_t) b.max, sizeof(size_t));
	b.caps = calloc((size_t) b.max, sizeof(size_t));
	texts = calloc((size_t) b.max, sizeof(fb_text));
	width = (size_t) (info->n_labels > info->hidden ? info->n_labels : info->hidden);
	out1 = malloc(sizeof(float) * width * (size_t) b.max);
	out2 = malloc(sizeof(float) * width * (size_t) b.max);
	if (s == NULL || b.lines == NULL || b.lens == NULL || b.caps == NULL ||
		texts == NULL || out1 == NULL || out2 == NULL)
	{
		fprintf(stderr, "finbert-cli: out of memory\n");
		return 2;
	}
	while (read_batch(&b) > 0)
	{
		fb_status	st = FB_OK;

		for (size_t i = 0; i < b.n; i++)
		{
			texts[i].data = b.lines[i];
			texts[i].len = b.lens[i];
		}
		if (batched && b.n > 1)
		{
			if (strcmp(o->cmd, "classify") == 0)
				st = fb_classify(s, texts, b.n, &o->task, out1, out2, &err);
			else
				st = fb_embed(s, texts, b.n, &o->task, out1, &err);
			if (st == FB_OK)
			{
				for (size_t i = 0; i < b.n; i++)
				{
					if (strcmp(o->cmd, "classify") == 0)
						print_classification(info, out1 + i * info->n_labels,
											 out2 + i * info->n_labels);
					else
					{
						fputs("{\"embedding\":", stdout);
						print_vector(out1 + i * info->hidden, info->hidden);
						fputs("}\n", stdout);
					}
				}
				continue;
			}
		}
		/* one line at a time: single lines, or a batch that failed */
		for (size_t i = 0; i < b.n; i++)
			rc |= run_one(s, info, o, &texts[i], out1, out2);
	}
	for (int i = 0; i < b.max; i++)
		free(b.lines[i]);
	free(b.lines);
	free(b.lens);
	free(b.caps);
	free(texts);
	free(out1);
	free(out2);
	fb_session_free(s);
	fb_model_free(m);
	return rc;
}

static const char *const use_names[] = {"used", "unused", "MISSING", "BAD SHAPE"};

static void
print_shape(const int64_t *shape, int ndim)
{
	printf("[");
	for (int d = 0; d < ndim; d++)
		printf("%s%lld", d ? ", " : "", (long long) shape[d]);
	printf("]");
}

/*
 * finbert-cli inspect: a report on stdout of what the directory holds and
 * what the loader makes of it.  Exit 0 when the model loads, 2 otherwise.
 */
static int
cmd_inspect(const cli_opts *o)
{
	fb_inspect *ins = NULL;
	fb_error	err = {0};
	size_t		shown_unused = 0;

	if (fb_model_inspect(o->dir, &ins, &err) != FB_OK)
	{
		fprintf(stderr, "finbert-cli: %s\n", err.msg);
		return 2;
	}
	printf("directory:    %s\n", ins->dir);
	printf("weights:      %s, %s names, %zu bytes in", ins->format, ins->layout, ins->weight_bytes);
	for (int i = 0; ins->weight_files[i] != NULL; i++)
		printf(" %s", ins->weight_files[i]);
	printf("\n");
	printf("config:       %s\n", ins->config_file ? ins->config_file : "(none)");
	if (ins->model_type != NULL)
		printf("architecture: %s%s%s, %d layers, hidden %d, head %s, %d labels\n",
			   ins->model_type, ins->architecture[0] ? " " : "", ins->architecture,
			   ins->n_layers, ins->hidden,
			   ins->head == FB_HEAD_SEQUENCE ? "sequence" : ins->head == FB_HEAD_TOKEN ? "token" : "none",
			   ins->n_labels);
	printf("tensors:      %zu used, %zu missing, %zu with another shape, %zu unused, %zu optimizer slots and counters skipped\n",
		   ins->n_used, ins->n_missing, ins->n_bad_shape, ins->n_unused, ins->n_skipped);
	for (size_t i = 0; i < ins->n_tensors; i++)
	{
		const fb_inspect_tensor *t = &ins->tensors[i];

		if (t->use == FB_TENSOR_UNUSED && !o->all && shown_unused++ >= 10)
			continue;
		printf("  %-9s %s", use_names[t->use], t->name);
		if (t->stored != NULL && strcmp(t->stored, t->name) != 0)
			printf(" (%s)", t->stored);
		if (t->dtype != NULL)
		{
			printf(" %s ", t->dtype);
			print_shape(t->shape, t->ndim);
			printf(" %zu bytes in %s", t->bytes, t->file);
		}
		if (t->use == FB_TENSOR_MISSING || t->use == FB_TENSOR_BAD_SHAPE)
		{
			int64_t		want[2] = {t->expect[0], t->expect[1]};

			printf(", the config implies ");
			print_shape(want, want[1] > 0 ? 2 : 1);
		}
		printf("\n");
	}
	if (!o->all && shown_unused > 10)
		printf("  ... %zu more unused (--all lists them)\n", shown_unused - 10);
	if (ins->notice != NULL)
		printf("notice:       %s\n", ins->notice);
	printf("loads:        %s%s\n", ins->load_error ? "no: " : "yes", ins->load_error ? ins->load_error : "");
	{
		int			rc = ins->load_error ? 2 : 0;

		fb_inspect_free(ins);
		return rc;
	}
}

int
main(int argc, char **argv)
{
	cli_opts	o;

	if (parse_args(argc, argv, &o) != 0)
	{
		usage();
		return 2;
	}
	if (strcmp(o.cmd, "tokenize") == 0)
		return cmd_tokenize(&o);
	if (strcmp(o.cmd, "inspect") == 0)
		return cmd_inspect(&o);
	if (strcmp(o.cmd, "classify") == 0 || strcmp(o.cmd, "entities") == 0 ||
		strcmp(o.cmd, "embed") == 0)
		return cmd_model(&o);
	usage();
	return 2;
}

/*
 * make_random_model.c — a random-weight BertForSequenceClassification
 * directory (config.json, vocab.txt, tokenizer_config.json,
 * model.safetensors) of any geometry, for benchmarks and parity runs on
 * machines without Python packages (test/gpu/run.sh).  Weights follow
 * BERT's initialisation: normal(0, 0.02) matrices, LayerNorm gamma 1 and
 * beta 0, zero biases; a fixed seed gives the same model everywhere.
 *
 *   make_random_model DIR [--hidden 768] [--layers 12] [--heads 12]
 *                         [--intermediate 3072] [--labels 3] [--dtype F16|F32]
 *                         [--vocab test/data/bert-base-chinese-vocab.txt]
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_TENSORS 512

typedef struct tensor
{
	char		name[160];
	int64_t		d0,
				d1;				/* d1 = 0: rank 1 */
	int			init;			/* 0 normal, 1 ones, 2 zeros */
} tensor;

static tensor tensors[MAX_TENSORS];
static int	n_tensors;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static void
add(const char *name, int64_t d0, int64_t d1, int init)
{
	tensor	   *t = &tensors[n_tensors++];

	snprintf(t->name, sizeof(t->name), "%s", name);
	t->d0 = d0;
	t->d1 = d1;
	t->init = init;
}

static double
uniform(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return ((double) (rng >> 11) + 0.5) / 9007199254740992.0;
}

static float
normal(double sd)
{
	return (float) (sd * sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()));
}

/* fp32 -> fp16, round to nearest even (normal range; BERT weights are) */
static uint16_t
f16(float f)
{
	uint32_t	x,
				sign,
				mant,
				h,
				rem;
	int			e;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000u;
	e = (int) ((x >> 23) & 0xff) - 127 + 15;
	mant = x & 0x7fffffu;
	if (e <= 0)
		return (uint16_t) sign; /* below 6e-5: flush (rare at sd 0.02) */
	if (e >= 31)
		return (uint16_t) (sign | 0x7c00u);
	h = sign | ((uint32_t) e << 10) | (mant >> 13);
	rem = mant & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
		h++;
	return (uint16_t) h;
}

static int
copy_file(const char *from, const char *to)
{
	FILE	   *a = fopen(from, "rb"),
			   *b = a != NULL ? fopen(to, "wb") : NULL;
	char		buf[65536];
	size_t		n;

	if (b == NULL)
	{
		if (a != NULL)
			fclose(a);
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), a)) > 0)
		fwrite(buf, 1, n, b);
	fclose(a);
	return fclose(b);
}

int
main(int argc, char **argv)
{
	const char *dir,
			   *vocab = "test/data/bert-base-chinese-vocab.txt",
			   *dtype = "F16";
	int			H = 768,
				L = 12,
				heads = 12,
				I = 3072,
				NL = 3,
				V = 0,
				P = 512;
	char		path[4096],
				name[160],
				line[4096];
	FILE	   *f;
	char	   *hdr;
	size_t		hdr_len = 0,
				hdr_cap = 1 << 20,
				off = 0,
				esz;

	if (argc < 2)
	{
		fprintf(stderr, "usage: make_random_model DIR [--hidden H] [--layers L] [--heads N] [--intermediate I] [--labels NL] [--dtype F16|F32] [--vocab FILE]\n");
		return 2;
	}
	dir = argv[1];
	for (int i = 2; i + 1 < argc; i += 2)
	{
		if (strcmp(argv[i], "--hidden") == 0)
			H = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--layers") == 0)
			L = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--heads") == 0)
			heads = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--intermediate") == 0)
			I = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--labels") == 0)
			NL = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--dtype") == 0)
			dtype = argv[i + 1];
		else if (strcmp(argv[i], "--vocab") == 0)
			vocab = argv[i + 1];
		else
		{
			fprintf(stderr, "make_random_model: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (H < 1 || L < 1 || heads < 1 || H % heads != 0 || I < 1 || NL < 1 ||
		(strcmp(dtype, "F16") != 0 && strcmp(dtype, "F32") != 0))
	{
		fprintf(stderr, "make_random_model: bad geometry or dtype\n");
		return 2;
	}
	esz = strcmp(dtype, "F16") == 0 ? 2 : 4;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
	{
		perror(dir);
		return 1;
	}

	/* vocabulary: copied, counted */
	snprintf(path, sizeof(path), "%s/vocab.txt", dir);
	if (copy_file(vocab, path) != 0 || (f = fopen(path, "r")) == NULL)
	{
		fprintf(stderr, "make_random_model: cannot copy %s\n", vocab);
		return 1;
	}
	while (fgets(line, sizeof(line), f) != NULL)
		V++;
	fclose(f);
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	f = fopen(path, "w");
	fputs("{\"do_lower_case\": true}\n", f);
	fclose(f);

	snprintf(path, sizeof(path), "%s/config.json", dir);
	f = fopen(path, "w");
	fprintf(f, "{\n  \"architectures\": [\"BertForSequenceClassification\"],\n"
			"  \"model_type\": \"bert\",\n  \"hidden_act\": \"gelu\",\n"
			"  \"hidden_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
			"  \"intermediate_size\": %d,\n  \"max_position_embeddings\": %d,\n"
			"  \"type_vocab_size\": 2,\n  \"vocab_size\": %d,\n  \"layer_norm_eps\": 1e-12,\n"
			"  \"pad_token_id\": 0,\n  \"id2label\": {",
			H, L, heads, I, P, V);
	for (int j = 0; j < NL; j++)
		fprintf(f, "%s\"%d\": \"LABEL_%d\"", j ? ", " : "", j, j);
	fprintf(f, "}\n}\n");
	fclose(f);

	/* tensors, in the order the header lists them */
	add("bert.embeddings.word_embeddings.weight", V, H, 0);
	add("bert.embeddings.position_embeddings.weight", P, H, 0);
	add("bert.embeddings.token_type_embeddings.weight", 2, H, 0);
	add("bert.embeddings.LayerNorm.weight", H, 0, 1);
	add("bert.embeddings.LayerNorm.bias", H, 0, 2);
	for (int l = 0; l < L; l++)
	{
		static const char *const qkv[3] = {"query", "key", "value"};

		for (int k = 0; k < 3; k++)
		{
			snprintf(name, sizeof(name), "bert.encoder.layer.%d.attention.self.%s.weight", l, qkv[k]);
			add(name, H, H, 0);
			snprintf(name, sizeof(name), "bert.encoder.layer.%d.attention.self.%s.bias", l, qkv[k]);
			add(name, H, 0, 2);
		}
#define LAYER(suffix, d0, d1, init) \
		snprintf(name, sizeof(name), "bert.encoder.layer.%d." suffix, l); add(name, d0, d1, init)
		LAYER("attention.output.dense.weight", H, H, 0);
		LAYER("attention.output.dense.bias", H, 0, 2);
		LAYER("attention.output.LayerNorm.weight", H, 0, 1);
		LAYER("attention.output.LayerNorm.bias", H, 0, 2);
		LAYER("intermediate.dense.weight", I, H, 0);
		LAYER("intermediate.dense.bias", I, 0, 2);
		LAYER("output.dense.weight", H, I, 0);
		LAYER("output.dense.bias", H, 0, 2);
		LAYER("output.LayerNorm.weight", H, 0, 1);
		LAYER("output.LayerNorm.bias", H, 0, 2);
#undef LAYER
	}
	add("bert.pooler.dense.weight", H, H, 0);
	add("bert.pooler.dense.bias", H, 0, 2);
	add("classifier.weight", NL, H, 0);
	add("classifier.bias", NL, 0, 2);

	hdr = malloc(hdr_cap);
	hdr_len += (size_t) snprintf(hdr + hdr_len, hdr_cap - hdr_len, "{\"__metadata__\":{\"format\":\"pt\"}");
	for (int i = 0; i < n_tensors; i++)
	{
		tensor	   *t = &tensors[i];
		size_t		n = (size_t) t->d0 * (size_t) (t->d1 ? t->d1 : 1);

		if (t->d1)
			hdr_len += (size_t) snprintf(hdr + hdr_len, hdr_cap - hdr_len,
										 ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
										 t->name, dtype, (long long) t->d0, (long long) t->d1, off, off + n * esz);
		else
			hdr_len += (size_t) snprintf(hdr + hdr_len, hdr_cap - hdr_len,
										 ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
										 t->name, dtype, (long long) t->d0, off, off + n * esz);
		off += n * esz;
	}
	hdr_len += (size_t) snprintf(hdr + hdr_len, hdr_cap - hdr_len, "}");
	while (hdr_len % 8 != 0)
		hdr[hdr_len++] = ' ';

	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	f = fopen(path, "wb");
	if (f == NULL)
	{
		perror(path);
		return 1;
	}
	{
		uint64_t	n = hdr_len;
		unsigned char le[8];

		for (int k = 0; k < 8; k++)
			le[k] = (unsigned char) (n >> (8 * k));
		fwrite(le, 1, 8, f);
		fwrite(hdr, 1, hdr_len, f);
	}
	for (int i = 0; i < n_tensors; i++)
	{
		tensor	   *t = &tensors[i];
		size_t		n = (size_t) t->d0 * (size_t) (t->d1 ? t->d1 : 1);

		for (size_t k = 0; k < n; k++)
		{
			float		v = t->init == 0 ? normal(0.02) : t->init == 1 ? 1.0f : 0.0f;

			if (esz == 2)
			{
				uint16_t	h = f16(v);

				fwrite(&h, 2, 1, f);
			}
			else
				fwrite(&v, 4, 1, f);
		}
	}
	if (fclose(f) != 0)
	{
		perror(path);
		return 1;
	}
	free(hdr);
	printf("%s: BERT %d layers, hidden %d, %d heads, intermediate %d, %d labels, %s\n",
		   dir, L, H, heads, I, NL, dtype);
	return 0;
}

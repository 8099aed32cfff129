/*
 * test_formats.c — every weight format the seed models are published in,
 * loaded by the engine, against transformers loading the same files.
 *
 * Fixtures and goldens come from tools/make_format_fixtures.py: the same
 * small models saved by torch.save (zip and legacy), save_pretrained
 * (sharded safetensors and .bin) and TensorFlow's Saver (the
 * google-research/bert, albert, electra and brightmart/albert_zh layouts).
 * Tolerance 1e-4 on logits and hidden states, as test_forward.c.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json.h>

#include "fb_golden.h"
#include "fb_test.h"
#include "finbert.h"

#define FIXTURES "test/fixtures/formats/"
#define TOL 1e-4

static json_object *golden;
static const char **texts;
static int	n_texts;

static fb_model *
open_dir(const char *dir, int check_alternates)
{
	fb_model_options o = fb_model_default_options();
	fb_model   *m = NULL;
	fb_error	err = {0};
	fb_status	st;

	o.check_alternates = check_alternates;
	st = fb_model_open(dir, &o, &m, &err);
	CHECK(st == FB_OK, "open %s: %s", dir, err.msg);
	return m;
}

/* Tokenization of the small vocabulary, then the outputs of one model. */
static void
check_model(const char *name, json_object *g)
{
	char		dir[256];
	const char *kind = json_object_get_string(json_object_object_get(g, "kind"));
	const char *format = json_object_get_string(json_object_object_get(g, "format"));
	json_object *outs = json_object_object_get(g, "outputs");
	json_object *ids = json_object_object_get(golden, "ids");
	fb_model   *m;
	const fb_model_info *info;
	fb_session *s;
	fb_error	err = {0};
	fb_encoding enc;
	double		worst = 0.0;
	size_t		flen;

	snprintf(dir, sizeof(dir), FIXTURES "%s", name);
	m = open_dir(dir, 0);
	if (m == NULL)
		return;
	info = fb_model_get_info(m);

	/* the format reported: the golden's, up to its parenthesis */
	flen = strcspn(format, "(");
	while (flen > 0 && format[flen - 1] == ' ')
		flen--;
	CHECK(strncmp(info->weight_format, format, flen) == 0, "%s: format \"%s\", want \"%s\"",
		  name, info->weight_format, format);

	s = fb_session_new(m);
	fb_encoding_init(&enc);
	for (int t = 0; t < n_texts; t++)
	{
		json_object *row_ids = json_object_array_get_idx(ids, t);
		json_object *out = json_object_array_get_idx(outs, t);
		fb_text		text = {texts[t], strlen(texts[t])};
		int			n_ids = (int) json_object_array_length(row_ids);
		int32_t    *tok = calloc((size_t) n_ids, sizeof(int32_t));
		double		d = 0.0;

		if (fb_tokenizer_encode(fb_model_tokenizer(m), texts[t], strlen(texts[t]), 1, NULL,
								&enc, &err) == FB_OK)
		{
			/* goldens are truncated at 128: compare the shared prefix */
			bool		same = true;

			for (int k = 0; k < n_ids - 1 && k < (int) enc.n; k++)
				same &= enc.ids[k] == json_object_get_int(json_object_array_get_idx(row_ids, k));
			CHECK(same, "%s: text %d tokenized differently from transformers", name, t);
		}
		for (int k = 0; k < n_ids; k++)
			tok[k] = json_object_get_int(json_object_array_get_idx(row_ids, k));

		if (strcmp(kind, "sequence") == 0)
		{
			float		logits[16];

			CHECK_STATUS(fb_classify(s, &text, 1, NULL, logits, NULL, &err), err);
			d = fbt_max_diff_row(logits, out, info->n_labels);
		}
		else if (strcmp(kind, "token") == 0)
		{
			float	   *tl = NULL;
			int			n = 0;

			/* a text longer than one window is covered by overlapping
			 * windows, the golden by one truncated pass: compare the texts
			 * that fit */
			CHECK_STATUS(fb_token_logits(s, &text, NULL, &tl, &n, &err), err);
			CHECK(n == (int) json_object_array_length(out) || n_ids >= 128,
				  "%s: text %d: %d token rows, golden %zu", name, t, n, json_object_array_length(out));
			for (int r = 0; r < n && r < (int) json_object_array_length(out) && n_ids < 128; r++)
			{
				double		e = fbt_max_diff_row(tl + (size_t) r * info->n_labels,
										 json_object_array_get_idx(out, r), info->n_labels);

				d = e > d ? e : d;
			}
			free(tl);
		}
		else
		{
			/* encoder: the last hidden state and the pooler output */
			const int32_t *seq[1] = {tok};
			int			lens[1] = {n_ids};
			fb_batch	b = {1, seq, lens};
			json_object *hid = json_object_object_get(out, "hidden");
			json_object *pool = json_object_object_get(out, "pooler");
			float	   *h = calloc((size_t) n_ids * info->hidden, sizeof(float));
			float	   *p = calloc((size_t) info->hidden, sizeof(float));

			CHECK_STATUS(fb_forward(s, &b, h, info->has_pooler ? p : NULL, &err), err);
			for (int r = 0; r < n_ids; r++)
			{
				double		e = fbt_max_diff_row(h + (size_t) r * info->hidden,
										 json_object_array_get_idx(hid, r), info->hidden);

				d = e > d ? e : d;
			}
			CHECK((pool != NULL && !json_object_is_type(pool, json_type_null)) == (info->has_pooler != 0),
				  "%s: pooler present %d", name, info->has_pooler);
			if (info->has_pooler && pool != NULL)
			{
				double		e = fbt_max_diff_row(p, pool, info->hidden);

				d = e > d ? e : d;
			}
			free(h);
			free(p);
		}
		worst = d > worst ? d : worst;
		free(tok);
	}
	CHECK(worst <= TOL, "%s (%s): max |finbert - reference| = %g", name, format, worst);
	printf("  %-24s %-36s max diff %.2e\n", name, info->weight_format, worst);
	fb_encoding_free(&enc);
	fb_session_free(s);
	fb_model_free(m);
}

static int
n_files(const fb_model_info *info)
{
	int			n = 0;

	while (info->weight_files[n] != NULL)
		n++;
	return n;
}

/* What the model info says about the files read. */
static void
check_info(void)
{
	fb_model   *m;
	const fb_model_info *in;

	if ((m = open_dir(FIXTURES "st_sharded", 0)) != NULL)
	{
		in = fb_model_get_info(m);
		CHECK(strcmp(in->weight_file, "model.safetensors.index.json") == 0, "sharded: %s", in->weight_file);
		CHECK(n_files(in) == 5 && strcmp(in->weight_files[1], "model-00001-of-00004.safetensors") == 0,
			  "sharded: %d files, second %s", n_files(in), in->weight_files[1]);
		fb_model_free(m);
	}
	if ((m = open_dir(FIXTURES "tf_bert", 0)) != NULL)
	{
		in = fb_model_get_info(m);
		CHECK(strcmp(in->weight_file, "bert_model.ckpt.index") == 0, "tf: %s", in->weight_file);
		CHECK(n_files(in) == 3, "tf: %d files", n_files(in));
		CHECK(strcmp(in->config_file, "bert_config.json") == 0, "tf: config %s", in->config_file);
		CHECK(in->arch == FB_ARCH_BERT && in->head == FB_HEAD_NONE && in->has_pooler,
			  "tf bert: arch %d head %d pooler %d", in->arch, in->head, in->has_pooler);
		fb_model_free(m);
	}
	if ((m = open_dir(FIXTURES "tf_bert_classifier", 0)) != NULL)
	{
		/* bert_config.json names no labels: output_weights has 4 rows */
		in = fb_model_get_info(m);
		CHECK(in->head == FB_HEAD_SEQUENCE && in->n_labels == 4 &&
			  strcmp(in->labels[3], "LABEL_3") == 0, "run_classifier head: %d labels", in->n_labels);
		fb_model_free(m);
	}
	if ((m = open_dir(FIXTURES "tf_electra", 0)) != NULL)
	{
		in = fb_model_get_info(m);
		CHECK(in->arch == FB_ARCH_ELECTRA, "electra: model_type from the variable names (%d)", in->arch);
		fb_model_free(m);
	}
	if ((m = open_dir(FIXTURES "tf_albert_zh", 0)) != NULL)
	{
		in = fb_model_get_info(m);
		CHECK(in->arch == FB_ARCH_ALBERT && strcmp(in->config_file, "albert_config_tiny.json") == 0,
			  "albert_zh: arch %d config %s", in->arch, in->config_file);
		fb_model_free(m);
	}
}

/* model.safetensors beside a pytorch_model.bin: safetensors wins; a
 * difference is reported, agreement is not. */
static void
check_precedence(void)
{
	fb_model   *m;

	if ((m = open_dir(FIXTURES "both_same", 1)) != NULL)
	{
		const fb_model_info *in = fb_model_get_info(m);

		CHECK(strcmp(in->weight_file, "model.safetensors") == 0, "both: %s", in->weight_file);
		CHECK(in->weight_notice == NULL, "same weights, yet a notice: %s", in->weight_notice);
		fb_model_free(m);
	}
	if ((m = open_dir(FIXTURES "both_differ", 1)) != NULL)
	{
		const fb_model_info *in = fb_model_get_info(m);

		CHECK(strcmp(in->weight_file, "model.safetensors") == 0, "differ: %s", in->weight_file);
		CHECK(in->weight_notice != NULL && strstr(in->weight_notice, "pytorch_model.bin") != NULL &&
			  strstr(in->weight_notice, "classifier.bias") != NULL,
			  "notice: %s", in->weight_notice ? in->weight_notice : "(none)");
		fb_model_free(m);
	}
	if ((m = open_dir(FIXTURES "both_differ", 0)) != NULL)
	{
		CHECK(fb_model_get_info(m)->weight_notice == NULL, "no comparison unless asked");
		fb_model_free(m);
	}
}

static void
check_inspect(void)
{
	fb_inspect *ins = NULL;
	fb_error	err = {0};
	char		tmp[] = "/tmp/finbert-formats-XXXXXX";
	char		cmd[512];

	CHECK_STATUS(fb_model_inspect(FIXTURES "tf_bert", &ins, &err), err);
	if (ins != NULL)
	{
		bool		cls_unused = false;

		for (size_t i = 0; i < ins->n_tensors; i++)
			if (strncmp(ins->tensors[i].name, "cls.", 4) == 0)
				cls_unused |= ins->tensors[i].use == FB_TENSOR_UNUSED;
		CHECK(ins->load_error == NULL, "tf_bert loads: %s", ins->load_error);
		CHECK(ins->n_missing == 0 && ins->n_used > 20 && cls_unused, "used %zu missing %zu",
			  ins->n_used, ins->n_missing);
		/* adam_m + adam_v for every variable, and global_step */
		CHECK(ins->n_skipped == 2 * (ins->n_used + ins->n_unused) + 1, "skipped %zu of %zu",
			  ins->n_skipped, ins->n_used + ins->n_unused);
		CHECK(strcmp(ins->layout, "google-research/bert") == 0, "layout %s", ins->layout);
		fb_inspect_free(ins);
	}

	/* a third layer the file does not have: every tensor of it missing */
	if (mkdtemp(tmp) != NULL)
	{
		snprintf(cmd, sizeof(cmd), "cp " FIXTURES "bin_zip_cls/* %s/ && sed -i 's/\"num_hidden_layers\": 2/\"num_hidden_layers\": 3/' %s/config.json",
				 tmp, tmp);
		CHECK(system(cmd) == 0, "copy");
		ins = NULL;
		CHECK_STATUS(fb_model_inspect(tmp, &ins, &err), err);
		if (ins != NULL)
		{
			CHECK(ins->n_missing == 16 && ins->load_error != NULL, "missing %zu, error %s",
				  ins->n_missing, ins->load_error ? ins->load_error : "(none)");
			fb_inspect_free(ins);
		}
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
		CHECK(system(cmd) == 0, "cleanup");
	}
}

int
main(void)
{
	json_object *models;
	json_object *t;

	golden = json_object_from_file("test/fixtures/golden/formats.json");
	CHECK(golden != NULL, "golden/formats.json");
	if (golden == NULL)
		return fbt_finish("formats");
	t = json_object_object_get(golden, "texts");
	n_texts = (int) json_object_array_length(t);
	texts = calloc((size_t) n_texts, sizeof(char *));
	for (int i = 0; i < n_texts; i++)
		texts[i] = json_object_get_string(json_object_array_get_idx(t, i));
	models = json_object_object_get(golden, "models");
	{
		json_object_object_foreach(models, name, g)
			check_model(name, g);
	}
	check_info();
	check_precedence();
	check_inspect();
	free(texts);
	json_object_put(golden);
	return fbt_finish("formats");
}

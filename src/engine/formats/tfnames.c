/*
 * tfnames.c — TensorFlow variable names of the BERT-family projects to the
 * names transformers gives the same parameters (fb_tfbundle.h).
 *
 * The projects' modeling.py files name variables by nested variable
 * scopes; a checkpoint holds them with "/" separators:
 *
 *   google-research/bert, google-research/electra (scope "electra"):
 *     bert/embeddings/{word,position,token_type}_embeddings, .../LayerNorm/{gamma,beta}
 *     bert/encoder/layer_N/attention/self/{query,key,value}/{kernel,bias}
 *     bert/encoder/layer_N/attention/output/{dense/…,LayerNorm/…}
 *     bert/encoder/layer_N/intermediate/dense/…, bert/encoder/layer_N/output/{dense/…,LayerNorm/…}
 *     bert/pooler/dense/…, electra/embeddings_project/…
 *   google-research/albert: one shared layer under
 *     bert/encoder/transformer/group_0/inner_group_0/
 *       attention_1/self/{query,key,value}/…, attention_1/output/dense/…,
 *       LayerNorm/… (after attention), ffn_1/intermediate/dense/…,
 *       ffn_1/intermediate/output/dense/…, LayerNorm_1/… (after the FFN)
 *     bert/encoder/embedding_hidden_mapping_in/…
 *   brightmart/albert_zh: BERT names with one shared layer
 *     bert/encoder/layer_shared/..., and a factorised word embedding
 *     bert/embeddings/word_embeddings [V, E] times .../word_embeddings_2
 *     [E, H] (no bias) taken before the position embeddings are added
 *   run_classifier.py heads: output_weights [labels, H], output_bias.
 *
 * The rules are those of transformers' load_tf_weights_in_{bert,albert,
 * electra}: "kernel" → "weight" with the [in, out] matrix transposed,
 * "gamma"/"beta" → "weight"/"bias", "*_embeddings" → "*_embeddings.weight",
 * "layer_N" → "layer.N"; optimizer slots (adam_m, adam_v, lamb_m, lamb_v,
 * ...) and step counters are skipped.  Names the rules do not know keep
 * their components joined by "." so they show up as unused.
 */
#include <stdio.h>
#include <string.h>

#include "fb_tfbundle.h"

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* TF Hub exports wrap the graph in a "module/" scope. */
static const char *
strip_module(const char *name)
{
	return starts_with(name, "module/") ? name + 7 : name;
}

fb_layout
fb_tf_detect_layout(const char *const *names, size_t n)
{
	fb_layout	l = FB_LAYOUT_TF_BERT;

	for (size_t i = 0; i < n; i++)
	{
		const char *s = strip_module(names[i]);

		if (starts_with(s, "electra/"))
			return FB_LAYOUT_TF_ELECTRA;
		if (starts_with(s, "bert/encoder/transformer/"))
			l = FB_LAYOUT_TF_ALBERT;
		else if (starts_with(s, "bert/encoder/layer_shared/") ||
				 strcmp(s, "bert/embeddings/word_embeddings_2") == 0)
			l = FB_LAYOUT_TF_ALBERT_ZH;
	}
	return l;
}

const char *
fb_layout_name(fb_layout l)
{
	switch (l)
	{
		case FB_LAYOUT_HF:
			return "transformers";
		case FB_LAYOUT_TF_BERT:
			return "google-research/bert";
		case FB_LAYOUT_TF_ALBERT:
			return "google-research/albert";
		case FB_LAYOUT_TF_ALBERT_ZH:
			return "brightmart/albert_zh";
		case FB_LAYOUT_TF_ELECTRA:
			return "google-research/electra";
	}
	return "unknown";
}

const char *
fb_layout_model_type(fb_layout l)
{
	switch (l)
	{
		case FB_LAYOUT_TF_ALBERT:
		case FB_LAYOUT_TF_ALBERT_ZH:
			return "albert";
		case FB_LAYOUT_TF_ELECTRA:
			return "electra";
		default:
			return "bert";
	}
}

/* Optimizer state and counters: never model parameters. */
static bool
is_slot(const char *name)
{
	static const char *const last[] = {
		"adam_m", "adam_v", "lamb_m", "lamb_v", "Adam", "Adam_1", "Momentum",
		"RMSProp", "RMSProp_1", "Adagrad", "ExponentialMovingAverage"
	};
	static const char *const whole[] = {
		"global_step", "beta1_power", "beta2_power", "good_steps",
		"loss_scale", "current_loss_scale"
	};
	const char *slash = strrchr(name, '/');
	const char *tail = slash ? slash + 1 : name;

	for (size_t i = 0; i < sizeof(last) / sizeof(last[0]); i++)
		if (strcmp(tail, last[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++)
		if (strcmp(name, whole[i]) == 0)
			return true;
	return starts_with(name, "AdamWeightDecayOptimizer");
}

/* Appends s to out (cap bytes); false when it does not fit. */
static bool
append(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	if (*len + n + 1 > cap)
		return false;
	memcpy(out + *len, s, n);
	*len += n;
	out[*len] = '\0';
	return true;
}

/*
 * The generic rule, component by component, onto out (which may already
 * hold a prefix).  *transpose is set for a "kernel".
 */
static bool
map_components(const char *path, char *out, size_t cap, size_t *len,
			   bool *transpose)
{
	const char *p = path;

	while (*p != '\0')
	{
		const char *slash = strchr(p, '/');
		size_t		n = slash ? (size_t) (slash - p) : strlen(p);
		bool		last = slash == NULL;
		const char *sep = *len > 0 && out[*len - 1] != '.' ? "." : "";

		if (!append(out, cap, len, sep, strlen(sep)))
			return false;
		if (last && n == 6 && memcmp(p, "kernel", 6) == 0)
		{
			*transpose = true;
			if (!append(out, cap, len, "weight", 6))
				return false;
		}
		else if (last && ((n == 5 && memcmp(p, "gamma", 5) == 0) ||
						  (n == 14 && memcmp(p, "output_weights", 14) == 0)))
		{
			if (!append(out, cap, len, "weight", 6))
				return false;
		}
		else if (last && ((n == 4 && memcmp(p, "beta", 4) == 0) ||
						  (n == 11 && memcmp(p, "output_bias", 11) == 0)))
		{
			if (!append(out, cap, len, "bias", 4))
				return false;
		}
		else if (n > 6 && memcmp(p, "layer_", 6) == 0 &&
				 strspn(p + 6, "0123456789") == n - 6)
		{
			/* layer_12 → layer.12 */
			if (!append(out, cap, len, "layer.", 6) ||
				!append(out, cap, len, p + 6, n - 6))
				return false;
		}
		else
		{
			if (!append(out, cap, len, p, n))
				return false;
			if (last && n > 11 && memcmp(p + n - 11, "_embeddings", 11) == 0 &&
				!append(out, cap, len, ".weight", 7))
				return false;
		}
		p += n + (slash ? 1 : 0);
	}
	return true;
}

/* A table of scope prefixes inside one ALBERT layer. */
typedef struct scope_map
{
	const char *tf;
	const char *hf;
} scope_map;

static const scope_map albert_layer[] = {
	{"attention_1/self/query/", "attention.query."},
	{"attention_1/self/key/", "attention.key."},
	{"attention_1/self/value/", "attention.value."},
	{"attention_1/output/dense/", "attention.dense."},
	{"LayerNorm/", "attention.LayerNorm."},
	{"ffn_1/intermediate/output/dense/", "ffn_output."},
	{"ffn_1/intermediate/dense/", "ffn."},
	{"LayerNorm_1/", "full_layer_layer_norm."},
};

static const scope_map albert_zh_layer[] = {
	{"attention/self/query/", "attention.query."},
	{"attention/self/key/", "attention.key."},
	{"attention/self/value/", "attention.value."},
	{"attention/output/dense/", "attention.dense."},
	{"attention/output/LayerNorm/", "attention.LayerNorm."},
	{"intermediate/dense/", "ffn."},
	{"output/dense/", "ffn_output."},
	{"output/LayerNorm/", "full_layer_layer_norm."},
};

static bool
map_layer(const char *rest, const scope_map *m, size_t nm, char *out, size_t cap,
		  size_t *len, bool *transpose)
{
	for (size_t i = 0; i < nm; i++)
		if (starts_with(rest, m[i].tf))
			return append(out, cap, len, m[i].hf, strlen(m[i].hf)) &&
				map_components(rest + strlen(m[i].tf), out, cap, len, transpose);
	return map_components(rest, out, cap, len, transpose);
}

fb_tf_name
fb_tf_map_name(fb_layout layout, const char *stored, char *out, size_t cap,
			   bool *transpose)
{
	const char *s = strip_module(stored);
	/* the factor names without the "albert." written before them */
	const char *zh_factor = &FB_TF_ALBERT_ZH_FACTOR[7];
	const char *zh_projection = &FB_TF_ALBERT_ZH_PROJECTION[7];
	size_t		len = 0;
	bool		ok;

	*transpose = false;
	if (cap == 0)
		return FB_TF_NAME_TOO_LONG;
	out[0] = '\0';
	if (is_slot(s))
		return FB_TF_NAME_SKIP;

	/* run_classifier.py's head at the top level */
	if (strcmp(s, "output_weights") == 0 || strcmp(s, "output_bias") == 0)
		ok = append(out, cap, &len, "classifier.", 11) &&
			map_components(s, out, cap, &len, transpose);
	else if ((layout == FB_LAYOUT_TF_ALBERT || layout == FB_LAYOUT_TF_ALBERT_ZH) &&
			 starts_with(s, "bert/"))
	{
		const char *r = s + 5;
		unsigned	g,
					ig;
		int			used = 0;

		ok = append(out, cap, &len, "albert.", 7);
		if (layout == FB_LAYOUT_TF_ALBERT &&
			sscanf(r, "encoder/transformer/group_%u/inner_group_%u/%n", &g, &ig, &used) == 2 &&
			used > 0)
		{
			char		buf[96];

			snprintf(buf, sizeof(buf), "encoder.albert_layer_groups.%u.albert_layers.%u.", g, ig);
			ok = ok && append(out, cap, &len, buf, strlen(buf)) &&
				map_layer(r + used, albert_layer, sizeof(albert_layer) / sizeof(albert_layer[0]),
						  out, cap, &len, transpose);
		}
		else if (layout == FB_LAYOUT_TF_ALBERT_ZH && starts_with(r, "encoder/layer_shared/"))
			ok = ok && append(out, cap, &len, "encoder.albert_layer_groups.0.albert_layers.0.", 46) &&
				map_layer(r + 21, albert_zh_layer,
						  sizeof(albert_zh_layer) / sizeof(albert_zh_layer[0]),
						  out, cap, &len, transpose);
		else if (starts_with(r, "pooler/dense/"))
			ok = ok && append(out, cap, &len, "pooler.", 7) &&
				map_components(r + 13, out, cap, &len, transpose);
		else if (layout == FB_LAYOUT_TF_ALBERT_ZH && strcmp(r, "embeddings/word_embeddings") == 0)
			ok = ok && append(out, cap, &len, zh_factor, strlen(zh_factor));
		else if (layout == FB_LAYOUT_TF_ALBERT_ZH && strcmp(r, "embeddings/word_embeddings_2") == 0)
		{
			/* [E, H] used as x W: a kernel */
			*transpose = true;
			ok = ok && append(out, cap, &len, zh_projection, strlen(zh_projection));
		}
		else
			ok = ok && map_components(r, out, cap, &len, transpose);
	}
	else
		ok = map_components(s, out, cap, &len, transpose);
	return ok ? FB_TF_NAME_MAPPED : FB_TF_NAME_TOO_LONG;
}

/*
 * config.c — reads and validates config.json (json-c, strict mode).
 *
 * Only the fields the engine uses are read; each is range-checked against
 * fb_limits.h so a hostile file cannot make later allocations overflow.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "fb_config.h"

bool
fb_act_from_name(const char *name, fb_act *act)
{
	static const struct
	{
		const char *name;
		fb_act		act;
	}			map[] = {
		{"gelu", FB_ACT_GELU_ERF},
		{"gelu_python", FB_ACT_GELU_ERF},
		{"gelu_new", FB_ACT_GELU_TANH},
		{"gelu_pytorch_tanh", FB_ACT_GELU_TANH},
		{"gelu_fast", FB_ACT_GELU_TANH},
		{"gelu_accurate", FB_ACT_GELU_TANH},
		{"relu", FB_ACT_RELU},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
	{
		if (strcmp(name, map[i].name) == 0)
		{
			*act = map[i].act;
			return true;
		}
	}
	return false;
}

/* Integer field in [lo, hi]; absent → def (def < lo means required). */
static fb_status
get_int(json_object *root, const char *key, long lo, long hi, long def,
		const char *name, int *out, fb_error *err)
{
	json_object *v;
	int64_t		x;

	if (!json_object_object_get_ex(root, key, &v) || json_object_is_type(v, json_type_null))
	{
		if (def < lo)
			return fb_fail(err, FB_ERR_CORRUPT, "%s: required field \"%s\" is missing", name, key);
		*out = (int) def;
		return FB_OK;
	}
	if (!json_object_is_type(v, json_type_int))
		return fb_fail(err, FB_ERR_CORRUPT, "%s: field \"%s\" is not an integer", name, key);
	errno = 0;
	x = json_object_get_int64(v);
	if (errno != 0 || x < lo || x > hi)
		return fb_fail(err, FB_ERR_CORRUPT, "%s: field \"%s\" = %lld is outside [%ld, %ld]",
					   name, key, (long long) x, lo, hi);
	*out = (int) x;
	return FB_OK;
}

static const char *
get_str(json_object *root, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(root, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static fb_status
copy_str(char *dst, size_t cap, const char *src, const char *key,
		 const char *name, fb_error *err)
{
	size_t		n = strlen(src);

	if (n >= cap)
		return fb_fail(err, FB_ERR_CORRUPT, "%s: field \"%s\" is too long", name, key);
	memcpy(dst, src, n + 1);
	return FB_OK;
}

static fb_status
parse_labels(json_object *root, const char *name, fb_config *cfg, fb_error *err)
{
	json_object *id2label;
	int			n = 0;

	cfg->labels_given = json_object_object_get_ex(root, "id2label", NULL) ||
		json_object_object_get_ex(root, "num_labels", NULL);
	if (json_object_object_get_ex(root, "id2label", &id2label) &&
		!json_object_is_type(id2label, json_type_null))
	{
		if (!json_object_is_type(id2label, json_type_object))
			return fb_fail(err, FB_ERR_CORRUPT, "%s: \"id2label\" is not an object", name);
		n = json_object_object_length(id2label);
		if (n < 1 || n > FB_MAX_LABELS)
			return fb_fail(err, FB_ERR_CORRUPT, "%s: \"id2label\" has %d entries, expected 1..%d",
						   name, n, FB_MAX_LABELS);
	}
	else
	{
		fb_status	st = get_int(root, "num_labels", 1, FB_MAX_LABELS, 2, name, &n, err);

		if (st != FB_OK)
			return st;
		id2label = NULL;
	}

	cfg->labels = calloc((size_t) n, sizeof(char *));
	if (cfg->labels == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "%s: out of memory", name);
	cfg->n_labels = n;

	if (id2label != NULL)
	{
		json_object_object_foreach(id2label, key, val)
		{
			char	   *endp;
			long		id;

			errno = 0;
			id = strtol(key, &endp, 10);
			if (errno != 0 || endp == key || *endp != '\0' || id < 0 || id >= n)
				return fb_fail(err, FB_ERR_CORRUPT,
							   "%s: \"id2label\" key \"%.40s\" is not an id in [0, %d)", name, key, n);
			if (!json_object_is_type(val, json_type_string))
				return fb_fail(err, FB_ERR_CORRUPT, "%s: \"id2label\"[%ld] is not a string", name, id);
			if (cfg->labels[id] != NULL)
				return fb_fail(err, FB_ERR_CORRUPT, "%s: \"id2label\" repeats id %ld", name, id);
			if (strlen(json_object_get_string(val)) > FB_MAX_LABEL_BYTES)
				return fb_fail(err, FB_ERR_CORRUPT, "%s: label %ld is longer than %d bytes",
							   name, id, FB_MAX_LABEL_BYTES);
			cfg->labels[id] = strdup(json_object_get_string(val));
			if (cfg->labels[id] == NULL)
				return fb_fail(err, FB_ERR_NOMEM, "%s: out of memory", name);
		}
	}
	for (int i = 0; i < n; i++)
	{
		if (cfg->labels[i] == NULL)
		{
			char		buf[32];

			if (id2label != NULL)
				return fb_fail(err, FB_ERR_CORRUPT, "%s: \"id2label\" has no entry for id %d", name, i);
			snprintf(buf, sizeof(buf), "LABEL_%d", i);
			cfg->labels[i] = strdup(buf);
			if (cfg->labels[i] == NULL)
				return fb_fail(err, FB_ERR_NOMEM, "%s: out of memory", name);
		}
	}
	return FB_OK;
}

/* model_type of a config without one: the caller's, else the file name's. */
static const char *
implied_model_type(const char *name, const char *def)
{
	const char *base = strrchr(name, '/');

	base = base ? base + 1 : name;
	if (def != NULL)
		return def;
	if (strncmp(base, "albert", 6) == 0)
		return "albert";
	if (strncmp(base, "electra", 7) == 0)
		return "electra";
	if (strncmp(base, "bert", 4) == 0)
		return "bert";
	return NULL;
}

static fb_status
parse_root(json_object *root, const char *name, const char *def_type,
		   fb_config *cfg, fb_error *err)
{
	fb_status	st;
	const char *s;
	json_object *v;

	if (!json_object_is_type(root, json_type_object))
		return fb_fail(err, FB_ERR_CORRUPT, "%s: top level is not a JSON object", name);

	s = get_str(root, "model_type");
	if (s == NULL)
		s = implied_model_type(name, def_type);
	if (s == NULL)
		return fb_fail(err, FB_ERR_CORRUPT, "%s: required field \"model_type\" is missing", name);
	if ((st = copy_str(cfg->model_type, sizeof(cfg->model_type), s, "model_type", name, err)) != FB_OK)
		return st;
	if (strcmp(s, "bert") == 0)
		cfg->arch = FB_ARCH_BERT;
	else if (strcmp(s, "albert") == 0)
		cfg->arch = FB_ARCH_ALBERT;
	else if (strcmp(s, "electra") == 0)
		cfg->arch = FB_ARCH_ELECTRA;
	else
		return fb_fail(err, FB_ERR_UNSUPPORTED,
					   "%s: model_type \"%.40s\" is not supported (bert, albert, electra)", name, s);

	if (json_object_object_get_ex(root, "architectures", &v) &&
		json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0)
	{
		json_object *a0 = json_object_array_get_idx(v, 0);

		if (!json_object_is_type(a0, json_type_string))
			return fb_fail(err, FB_ERR_CORRUPT, "%s: \"architectures\"[0] is not a string", name);
		if ((st = copy_str(cfg->architecture, sizeof(cfg->architecture),
						   json_object_get_string(a0), "architectures", name, err)) != FB_OK)
			return st;
	}

	if ((st = get_int(root, "vocab_size", 1, FB_MAX_VOCAB, -1, name, &cfg->vocab_size, err)) != FB_OK ||
		(st = get_int(root, "hidden_size", 1, FB_MAX_HIDDEN, -1, name, &cfg->hidden, err)) != FB_OK ||
		(st = get_int(root, "num_hidden_layers", 1, FB_MAX_LAYERS, -1, name, &cfg->n_layers, err)) != FB_OK ||
		(st = get_int(root, "num_attention_heads", 1, FB_MAX_HEADS, -1, name, &cfg->n_heads, err)) != FB_OK ||
		(st = get_int(root, "intermediate_size", 1, FB_MAX_INTERMEDIATE, -1, name, &cfg->intermediate, err)) != FB_OK ||
		(st = get_int(root, "max_position_embeddings", 2, FB_MAX_POSITIONS, 512, name, &cfg->max_position, err)) != FB_OK ||
		(st = get_int(root, "type_vocab_size", 1, 1024, 2, name, &cfg->type_vocab_size, err)) != FB_OK ||
		(st = get_int(root, "embedding_size", 1, FB_MAX_HIDDEN, cfg->hidden, name, &cfg->embedding_size, err)) != FB_OK ||
		(st = get_int(root, "pad_token_id", 0, FB_MAX_VOCAB, 0, name, &cfg->pad_token_id, err)) != FB_OK)
		return st;
	if (cfg->hidden % cfg->n_heads != 0)
		return fb_fail(err, FB_ERR_CORRUPT, "%s: hidden_size %d is not a multiple of num_attention_heads %d",
					   name, cfg->hidden, cfg->n_heads);
	if (cfg->pad_token_id >= cfg->vocab_size)
		return fb_fail(err, FB_ERR_CORRUPT, "%s: pad_token_id %d is not below vocab_size %d",
					   name, cfg->pad_token_id, cfg->vocab_size);

	s = get_str(root, "position_embedding_type");
	if (s != NULL && strcmp(s, "absolute") != 0)
		return fb_fail(err, FB_ERR_UNSUPPORTED, "%s: position_embedding_type \"%.40s\" is not supported",
					   name, s);

	s = get_str(root, "hidden_act");
	if (s == NULL)
		s = "gelu";				/* transformers' default for BERT */
	if ((st = copy_str(cfg->act_name, sizeof(cfg->act_name), s, "hidden_act", name, err)) != FB_OK)
		return st;
	if (!fb_act_from_name(s, &cfg->act))
		return fb_fail(err, FB_ERR_UNSUPPORTED, "%s: hidden_act \"%.40s\" is not supported", name, s);

	cfg->layer_norm_eps = 1e-12f;
	if (json_object_object_get_ex(root, "layer_norm_eps", &v))
	{
		double		eps;

		if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
			return fb_fail(err, FB_ERR_CORRUPT, "%s: \"layer_norm_eps\" is not a number", name);
		eps = json_object_get_double(v);
		/* Real checkpoints use 1e-12 .. 1e-5; outside (0, 1e-2] is a bug. */
		if (!(eps > 0.0 && eps <= 1e-2))
			return fb_fail(err, FB_ERR_CORRUPT, "%s: layer_norm_eps %g is outside (0, 0.01]", name, eps);
		cfg->layer_norm_eps = (float) eps;
	}

	/* one shared layer group of one layer is what the engine computes
	 * (every released ALBERT); brightmart's pre-LN variant differs too */
	if (cfg->arch == FB_ARCH_ALBERT)
	{
		int			groups,
					inner;

		if ((st = get_int(root, "num_hidden_groups", 1, FB_MAX_LAYERS, 1, name, &groups, err)) != FB_OK ||
			(st = get_int(root, "inner_group_num", 1, FB_MAX_LAYERS, 1, name, &inner, err)) != FB_OK)
			return st;
		if (groups != 1 || inner != 1)
			return fb_fail(err, FB_ERR_UNSUPPORTED,
						   "%s: ALBERT with num_hidden_groups %d and inner_group_num %d (only 1 and 1 are supported)",
						   name, groups, inner);
	}
	s = get_str(root, "ln_type");
	if (s != NULL && strcmp(s, "postln") != 0)
		return fb_fail(err, FB_ERR_UNSUPPORTED, "%s: ln_type \"%.40s\" is not supported (postln)", name, s);

	s = get_str(root, "problem_type");
	cfg->multi_label = (s != NULL && strcmp(s, "multi_label_classification") == 0);

	return parse_labels(root, name, cfg, err);
}

fb_status
fb_config_parse(const char *json, size_t len, const char *name,
				fb_config *cfg, fb_error *err)
{
	return fb_config_parse_ex(json, len, name, NULL, cfg, err);
}

fb_status
fb_config_parse_ex(const char *json, size_t len, const char *name,
				   const char *default_model_type, fb_config *cfg, fb_error *err)
{
	struct json_tokener *tok;
	json_object *root;
	enum json_tokener_error jerr;
	fb_status	st;

	memset(cfg, 0, sizeof(*cfg));
	if (len > FB_CONFIG_MAX_BYTES)
		return fb_fail(err, FB_ERR_CORRUPT, "%s: file is larger than %u bytes", name, FB_CONFIG_MAX_BYTES);
	if (memchr(json, '\0', len) != NULL)
		return fb_fail(err, FB_ERR_CORRUPT, "%s: file contains a NUL byte", name);
	tok = json_tokener_new_ex(32);
	if (tok == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "%s: out of memory", name);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, json, (int) len);
	jerr = json_tokener_get_error(tok);
	if (root == NULL || jerr != json_tokener_success)
	{
		st = fb_fail(err, FB_ERR_CORRUPT, "%s: invalid JSON: %s", name,
					 jerr == json_tokener_continue ? "unexpected end of input"
					 : json_tokener_error_desc(jerr));
		json_object_put(root);
		json_tokener_free(tok);
		return st;
	}
	/* Only white space may follow the object. */
	for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
	{
		if (json[i] != ' ' && json[i] != '\n' && json[i] != '\r' && json[i] != '\t')
		{
			json_object_put(root);
			json_tokener_free(tok);
			return fb_fail(err, FB_ERR_CORRUPT, "%s: trailing data after the JSON object", name);
		}
	}
	json_tokener_free(tok);
	st = parse_root(root, name, default_model_type, cfg, err);
	json_object_put(root);
	if (st != FB_OK)
		fb_config_free(cfg);
	return st;
}

fb_status
fb_config_load(const char *path, fb_config *cfg, fb_error *err)
{
	char	   *buf;
	size_t		len;
	fb_status	st;

	memset(cfg, 0, sizeof(*cfg));
	st = fb_read_file(path, FB_CONFIG_MAX_BYTES, &buf, &len, err);
	if (st != FB_OK)
		return st;
	st = fb_config_parse(buf, len, path, cfg, err);
	free(buf);
	return st;
}

void
fb_config_free(fb_config *cfg)
{
	if (cfg->labels != NULL)
	{
		for (int i = 0; i < cfg->n_labels; i++)
			free(cfg->labels[i]);
		free(cfg->labels);
	}
	cfg->labels = NULL;
	cfg->n_labels = 0;
}

fb_status
fb_config_set_n_labels(fb_config *cfg, int n, fb_error *err)
{
	char	  **labels;

	if (n < 1 || n > FB_MAX_LABELS)
		return fb_fail(err, FB_ERR_CORRUPT, "%d labels, expected 1..%d", n, FB_MAX_LABELS);
	labels = calloc((size_t) n, sizeof(char *));
	if (labels == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	for (int i = 0; i < n; i++)
	{
		char		buf[32];

		snprintf(buf, sizeof(buf), "LABEL_%d", i);
		labels[i] = strdup(buf);
		if (labels[i] == NULL)
		{
			for (int k = 0; k < i; k++)
				free(labels[k]);
			free(labels);
			return fb_fail(err, FB_ERR_NOMEM, "out of memory");
		}
	}
	fb_config_free(cfg);
	cfg->labels = labels;
	cfg->n_labels = n;
	return FB_OK;
}

/* Candidate configuration files of a TensorFlow release. */
static bool
config_candidate(const char *n)
{
	size_t		len = strlen(n);

	return len > 5 && strcmp(n + len - 5, ".json") == 0 && n[0] != '.' &&
		strstr(n, "config") != NULL &&
		strcmp(n, "tokenizer_config.json") != 0 &&
		strcmp(n, "generation_config.json") != 0 &&
		strcmp(n, "special_tokens_map.json") != 0 &&
		strstr(n, ".index.json") == NULL;
}

fb_status
fb_config_open_dir(const char *dir, const char *default_model_type,
				   fb_config *cfg, char *file, size_t file_cap, fb_error *err)
{
	char		found[2][256] = {"", ""};
	int			n = 0;
	char	   *path;
	fb_status	st;
	DIR		   *d;
	struct dirent *e;

	memset(cfg, 0, sizeof(*cfg));
	path = fb_path_join(dir, "config.json");
	if (path == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	if (fb_file_exists(path))
	{
		snprintf(file, file_cap, "config.json");
		st = fb_config_load(path, cfg, err);
		free(path);
		return st;
	}
	free(path);

	d = opendir(dir);
	while (d != NULL && (e = readdir(d)) != NULL)
	{
		char	   *p;

		if (!config_candidate(e->d_name) || strlen(e->d_name) >= sizeof(found[0]))
			continue;
		p = fb_path_join(dir, e->d_name);
		if (p != NULL && fb_file_exists(p))
		{
			if (n < 2)
				snprintf(found[n], sizeof(found[n]), "%s", e->d_name);
			n++;
		}
		free(p);
	}
	if (d != NULL)
		closedir(d);
	if (n == 0)
		return fb_fail(err, FB_ERR_IO, "could not open \"%s/config.json\": no config.json (nor a TensorFlow release's bert_config.json)", dir);
	if (n > 1)
		return fb_fail(err, FB_ERR_CORRUPT,
					   "%s: no config.json and %d candidates (%s, %s%s); add a config.json",
					   dir, n, found[0], found[1], n > 2 ? ", ..." : "");
	snprintf(file, file_cap, "%s", found[0]);
	path = fb_path_join(dir, found[0]);
	if (path == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	{
		char	   *buf;
		size_t		len;

		st = fb_read_file(path, FB_CONFIG_MAX_BYTES, &buf, &len, err);
		if (st == FB_OK)
		{
			st = fb_config_parse_ex(buf, len, path, default_model_type, cfg, err);
			free(buf);
		}
	}
	free(path);
	return st;
}

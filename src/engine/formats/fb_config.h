/*
 * fb_config.h — config.json of a Hugging Face BERT-family checkpoint.
 */
#ifndef FB_CONFIG_H
#define FB_CONFIG_H

#include "fb_internal.h"

typedef struct fb_config
{
	fb_arch		arch;
	char		model_type[32];
	char		architecture[128];	/* architectures[0], "" when absent */
	int			vocab_size;
	int			hidden;
	int			n_layers;
	int			n_heads;
	int			intermediate;
	int			max_position;
	int			type_vocab_size;
	int			embedding_size; /* ALBERT/ELECTRA factorised embeddings;
								 * equals hidden when absent */
	fb_act		act;
	char		act_name[32];
	float		layer_norm_eps;
	int			pad_token_id;
	int			multi_label;
	int			n_labels;		/* from id2label (or num_labels) */
	int			labels_given;	/* id2label or num_labels present (TensorFlow
								 * configs have neither: the head's tensor
								 * then decides, fb_config_set_n_labels) */
	char	  **labels;			/* n_labels strings, "LABEL_i" when unnamed */
} fb_config;

/*
 * Parses a config.json image (NUL-terminated) and validates every field
 * the engine uses; name appears in error messages.
 */
fb_status	fb_config_parse(const char *json, size_t len, const char *name,
							fb_config *cfg, fb_error *err);
fb_status	fb_config_load(const char *path, fb_config *cfg, fb_error *err);

/*
 * The same with a model_type for configs that have none (TensorFlow
 * releases' bert_config.json): default_model_type, else the file name's
 * (albert*, electra*, bert*); NULL / no match keeps the field required.
 */
fb_status	fb_config_parse_ex(const char *json, size_t len, const char *name,
							   const char *default_model_type, fb_config *cfg,
							   fb_error *err);

/*
 * The configuration of a model directory: config.json, else the one
 * *config*.json file of a TensorFlow release (bert_config.json,
 * albert_config.json, albert_config_tiny.json, ...; tokenizer_config.json,
 * generation_config.json and special_tokens_map.json are not candidates).
 * file receives the name used.  None: FB_ERR_IO; several: FB_ERR_CORRUPT.
 */
fb_status	fb_config_open_dir(const char *dir, const char *default_model_type,
							   fb_config *cfg, char *file, size_t file_cap,
							   fb_error *err);

/* Replaces unnamed labels by n labels LABEL_0 .. LABEL_{n-1}. */
fb_status	fb_config_set_n_labels(fb_config *cfg, int n, fb_error *err);
void		fb_config_free(fb_config *cfg);

/* Maps a transformers hidden_act name; false when unknown. */
bool		fb_act_from_name(const char *name, fb_act *act);

#endif

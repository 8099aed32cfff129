/*
 * fb_tfbundle.h — TensorFlow checkpoints (the V2 "tensor bundle" format
 * written by tf.compat.v1.train.Saver and tf.train.Checkpoint) as a tensor
 * source, and the variable-name layouts of the BERT-family projects.
 *
 * fb_source_open_tf (fb_source.h) reads PREFIX.index and the data shards
 * PREFIX.data-NNNNN-of-MMMMM it lists.
 */
#ifndef FB_TFBUNDLE_H
#define FB_TFBUNDLE_H

#include "fb_source.h"

/* Names of the two factors of brightmart/albert_zh's word embeddings (the
 * product is the tensor "albert.embeddings.word_embeddings.weight"). */
#define FB_TF_ALBERT_ZH_FACTOR		"albert.embeddings.word_embeddings_factor.weight"
#define FB_TF_ALBERT_ZH_PROJECTION	"albert.embeddings.word_embeddings_projection.weight"

typedef enum fb_tf_name
{
	FB_TF_NAME_MAPPED,
	FB_TF_NAME_SKIP,			/* optimizer slot or step counter */
	FB_TF_NAME_TOO_LONG
} fb_tf_name;

/*
 * Adds the variables of the bundle whose .index is the source's file fi;
 * its data shards are the source's files of the same prefix when present
 * (tests, fuzzing), otherwise mapped from the directory.  The source's
 * layout is set from the variable names.
 */
fb_status	fb_tf_add_bundle(fb_source *src, int fi, fb_error *err);

/* Which project wrote the checkpoint, from its variable names. */
fb_layout	fb_tf_detect_layout(const char *const *names, size_t n);

/* transformers' name of a variable; *transpose for a kernel ([in, out]). */
fb_tf_name	fb_tf_map_name(fb_layout layout, const char *stored, char *out,
						   size_t cap, bool *transpose);

const char *fb_layout_name(fb_layout l);

/* The model_type the layout implies ("bert", "albert", "electra"). */
const char *fb_layout_model_type(fb_layout l);

/*
 * The table layer of the .index file (LevelDB's format, as TensorFlow's
 * lib/io/table): calls fn for every key / value in key order.  Exposed for
 * the fuzz harness.
 */
typedef fb_status (*fb_tf_entry_fn) (void *arg, const uint8_t *key, size_t key_len,
									 const uint8_t *val, size_t val_len,
									 fb_error *err);

fb_status	fb_tf_table_scan(const uint8_t *buf, size_t len, const char *file,
							 fb_tf_entry_fn fn, void *arg, fb_error *err);

#endif

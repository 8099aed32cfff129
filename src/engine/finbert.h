/*
 * finbert.h — public API of the finbert inference engine.
 *
 * The engine is plain C with no PostgreSQL headers.  It reads a Hugging Face
 * model directory, tokenizes exactly like BertTokenizerFast and runs the
 * BERT forward pass on a backend: the CPU, or a CUDA device through a
 * separately built module (fb_model_options.device).
 *
 * Conventions:
 *  - Every fallible function returns an fb_status and, when err is not NULL,
 *    fills err->msg with one line naming the file and the problem.
 *  - The engine never prints, exits or aborts.
 *  - An fb_model and an fb_tokenizer are immutable once opened and may be
 *    shared by any number of threads.  An fb_session holds per-run scratch
 *    memory and must be used by one thread at a time.
 *  - Long operations poll an optional interrupt callback (fb_run_ctl) so a
 *    host such as PostgreSQL can cancel them; they then return
 *    FB_ERR_INTERRUPTED and leave everything in a consistent state.
 *  - Character positions are Unicode code point indices into the caller's
 *    UTF-8 text, 0-based, end exclusive.
 */
#ifndef FINBERT_H
#define FINBERT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FB_VERSION "0.1.0"
#define FB_ERRMSG_MAX 512

typedef enum fb_status
{
	FB_OK = 0,
	FB_ERR_IO,					/* file missing or unreadable */
	FB_ERR_CORRUPT,				/* file present but malformed */
	FB_ERR_UNSUPPORTED,			/* well-formed but not supported */
	FB_ERR_NOMEM,				/* allocation failed */
	FB_ERR_INVALID,				/* bad argument (e.g. invalid UTF-8) */
	FB_ERR_LIMIT,				/* input over a configured limit */
	FB_ERR_INTERRUPTED,			/* the interrupt callback asked to stop */
	FB_ERR_NUMERIC,				/* a non-finite value was produced */
	FB_ERR_DEVICE				/* the compute device failed or is missing
								 * (no module, no driver, no device, a
								 * device error) */
} fb_status;

typedef struct fb_error
{
	fb_status	status;
	char		msg[FB_ERRMSG_MAX];
} fb_error;

/* Short name of a status code ("ok", "corrupt file", ...). */
const char *fb_status_name(fb_status st);

/* Polled between layers, batches and tokenizer chunks; nonzero = stop. */
typedef int (*fb_interrupt_fn) (void *arg);

typedef struct fb_run_ctl
{
	fb_interrupt_fn interrupt;	/* may be NULL */
	void	   *arg;
} fb_run_ctl;

/* ------------------------------------------------------------------------
 * Tokenizer (BertTokenizerFast semantics)
 * ------------------------------------------------------------------------ */
typedef struct fb_tokenizer fb_tokenizer;

typedef struct fb_tokenizer_options
{
	int			do_lower_case;	/* default 1 */
	int			strip_accents;	/* -1: follow do_lower_case (HF default) */
	int			tokenize_chinese_chars; /* default 1 */
	int			clean_text;		/* default 1 */
} fb_tokenizer_options;

fb_tokenizer_options fb_tokenizer_default_options(void);

/*
 * Opens vocab.txt in dir and applies tokenizer_config.json when present
 * (do_lower_case, strip_accents, tokenize_chinese_chars).  Returns NULL in
 * *out on failure.
 */
fb_status	fb_tokenizer_open(const char *dir, fb_tokenizer **out, fb_error *err);

/* Loads a vocabulary file with explicit options. */
fb_status	fb_tokenizer_load(const char *vocab_path,
							  const fb_tokenizer_options *opts,
							  fb_tokenizer **out, fb_error *err);

/* Same, from a vocabulary held in memory (one token per line). */
fb_status	fb_tokenizer_load_mem(const char *data, size_t len,
								  const char *name_for_errors,
								  const fb_tokenizer_options *opts,
								  fb_tokenizer **out, fb_error *err);

void		fb_tokenizer_free(fb_tokenizer *tok);

size_t		fb_tokenizer_vocab_size(const fb_tokenizer *tok);
/* Token text for an id, NULL when out of range. */
const char *fb_tokenizer_id_to_token(const fb_tokenizer *tok, int32_t id);
/* Id of an exact token, -1 when absent. */
int32_t		fb_tokenizer_token_to_id(const fb_tokenizer *tok, const char *token);

typedef struct fb_special_ids
{
	int32_t		cls, sep, pad, unk, mask;	/* -1 when absent */
} fb_special_ids;

fb_special_ids fb_tokenizer_special_ids(const fb_tokenizer *tok);

/* Growable result of an encode: ids with code point offsets. */
typedef struct fb_encoding
{
	int32_t    *ids;
	int32_t    *start;			/* code point offset, special tokens 0 */
	int32_t    *end;			/* exclusive, special tokens 0 */
	size_t		n;
	size_t		cap;
} fb_encoding;

void		fb_encoding_init(fb_encoding *enc);
void		fb_encoding_free(fb_encoding *enc);

/*
 * Tokenizes UTF-8 text of len bytes into enc (reset first, buffers reused).
 * With add_special, the result is [CLS] tokens [SEP] with no truncation.
 * Invalid UTF-8 is FB_ERR_INVALID.
 */
fb_status	fb_tokenizer_encode(const fb_tokenizer *tok, const char *text,
								size_t len, int add_special,
								const fb_run_ctl *ctl, fb_encoding *enc,
								fb_error *err);

/* ------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------ */
typedef struct fb_model fb_model;

typedef enum fb_arch
{
	FB_ARCH_BERT = 0,
	FB_ARCH_ALBERT,
	FB_ARCH_ELECTRA
} fb_arch;

typedef enum fb_head
{
	FB_HEAD_NONE = 0,			/* encoder only (embeddings) */
	FB_HEAD_SEQUENCE,			/* sequence classification */
	FB_HEAD_TOKEN				/* token classification (NER) */
} fb_head;

typedef enum fb_act
{
	FB_ACT_GELU_ERF = 0,		/* "gelu" */
	FB_ACT_GELU_TANH,			/* "gelu_new", "gelu_pytorch_tanh", ... */
	FB_ACT_RELU
} fb_act;

/*
 * Arithmetic of the encoder's linear layers.  INT8: weights quantised per
 * output channel at load, activations per row before each GEMM, exact
 * int32 sums (fb_q8.h); embeddings, attention, LayerNorm and the heads stay
 * fp32.  Faster; results differ from fp32 by quantisation error.
 */
typedef enum fb_precision
{
	FB_PRECISION_FP32 = 0,
	FB_PRECISION_INT8,
	FB_PRECISION_FP16,			/* CUDA: fp16 weights and activations,
								 * fp32 accumulation and statistics */
	FB_PRECISION_BF16			/* CUDA, bfloat16 checkpoints */
} fb_precision;

/*
 * Where a model runs.  AUTO: CUDA when the module loads and a device is
 * present, else the CPU (fb_model_info.device says which).  On CUDA the
 * linear layers, attention and heads run in fp16 (bf16 for a bfloat16
 * checkpoint) with fp32 accumulation: precision FP32 (the default) means
 * "the device's half precision", INT8 is CPU-only.
 */
typedef enum fb_device
{
	FB_DEVICE_CPU = 0,
	FB_DEVICE_CUDA,
	FB_DEVICE_AUTO
} fb_device;

/* CUDA attention: a fused one-pass kernel (online softmax, tensor cores)
 * or cuBLAS batched GEMMs per length bucket; AUTO picks (kernels/README.md). */
typedef enum fb_attention
{
	FB_ATTENTION_AUTO = 0,
	FB_ATTENTION_FUSED,
	FB_ATTENTION_GEMM
} fb_attention;

/* "cpu" / "cuda" / "auto" -> *out; nonzero when the name is unknown. */
int			fb_device_from_name(const char *name, fb_device *out);
const char *fb_device_name(fb_device d);
int			fb_attention_from_name(const char *name, fb_attention *out);
const char *fb_attention_name(fb_attention a);

/* A compute device and its memory. */
typedef struct fb_device_info
{
	fb_device	device;			/* CPU or CUDA */
	int			ordinal;
	char		name[128];		/* "NVIDIA H100 80GB HBM3", "cpu" */
	char		runtime[128];	/* "CUDA runtime 13000, driver 13000", ... */
	int			cc_major;		/* compute capability (CUDA) */
	int			cc_minor;
	size_t		total_bytes;	/* device memory (0 for the CPU) */
	size_t		free_bytes;
	size_t		used_bytes;		/* allocated by this process's backend */
	char		note[FB_ERRMSG_MAX];	/* AUTO that chose the CPU: why the
										 * CUDA device was not taken */
} fb_device_info;

typedef struct fb_model_info
{
	fb_arch		arch;
	fb_head		head;
	int			multi_label;	/* problem_type multi_label_classification */
	int			n_layers;
	int			hidden;
	int			n_heads;
	int			intermediate;
	int			vocab_size;
	int			max_position;
	int			type_vocab_size;
	int			n_labels;		/* 0 for FB_HEAD_NONE */
	const char *const *labels;	/* id2label, n_labels entries */
	fb_act		act;
	float		layer_norm_eps;
	int			has_pooler;
	int			has_crf;		/* CRF transitions present (token head) */
	size_t		weight_file_bytes;	/* all of weight_files together */
	size_t		resident_bytes; /* fp32 copies made by the engine */
	const char *weight_file;	/* file name inside the directory: the weight
								 * file, or the index of a checkpoint of
								 * several files */
	const char *weight_dtype;	/* "F32", "F16", "BF16" */
	fb_precision precision;		/* of the linear layers */
	const char *weight_format;	/* "safetensors", "safetensors (2 shards)",
								 * "pytorch zip", "pytorch legacy",
								 * "tensorflow checkpoint", ... */
	const char *const *weight_files;	/* every file the weights were read
										 * from, weight_file first, then
										 * shards in order; NULL-terminated */
	const char *weight_notice;	/* NULL, or one line on other weight files
								 * of the directory that differ from the one
								 * loaded (with fb_model_options.
								 * check_alternates) */
	const char *config_file;	/* "config.json", "bert_config.json", ... */
	fb_device	device;			/* where it runs (never AUTO) */
	int			device_ordinal;
	size_t		device_bytes;	/* weights held in device memory */
} fb_model_info;

typedef struct fb_model_options
{
	int			max_batch_tokens;	/* upper bound for one forward pass */
	fb_precision precision;
	int			check_alternates;	/* compare the tensors used with the
									 * directory's other weight files (reads
									 * them all): fills weight_notice */
	fb_device	device;			/* default CPU */
	int			device_ordinal; /* CUDA device number, default 0 */
	fb_attention attention;		/* CUDA attention variant */
	/* The CUDA backend module; NULL: finbert_cuda.so in the directory of
	 * the object (program or shared library) the engine is linked into. */
	const char *cuda_module;
} fb_model_options;

/* "fp32" / "int8" / "fp16" / "bf16" -> *out; nonzero when the name is
 * unknown. */
int			fb_precision_from_name(const char *name, fb_precision *out);
const char *fb_precision_name(fb_precision p);

fb_model_options fb_model_default_options(void);

/*
 * Opens a model directory as its authors publish it: config.json (or a
 * TensorFlow release's bert_config.json / albert_config*.json), vocab.txt
 * (+tokenizer_config.json), and the weights, first present of
 * model.safetensors, model.safetensors.index.json (sharded),
 * pytorch_model.bin (torch.save zip or legacy), pytorch_model.bin.index.json,
 * a TensorFlow checkpoint (PREFIX.index + data shards).  Everything is
 * validated before use; a directory without weights is FB_ERR_IO, a
 * malformed file FB_ERR_CORRUPT naming it.  Returns NULL in *out on failure.
 */
fb_status	fb_model_open(const char *dir, const fb_model_options *opts,
						  fb_model **out, fb_error *err);
void		fb_model_free(fb_model *model);

const fb_model_info *fb_model_get_info(const fb_model *model);
const fb_tokenizer *fb_model_tokenizer(const fb_model *model);

/*
 * Is name a file fb_model_open may read in a model directory?  (Hosts that
 * check model files for symbolic-link escapes before opening them.)
 */
int			fb_model_file_may_read(const char *name);

/* ------------------------------------------------------------------------
 * Inspecting a model directory (finbert-cli inspect)
 * ------------------------------------------------------------------------ */
typedef enum fb_tensor_use
{
	FB_TENSOR_USED = 0,			/* read by the loader */
	FB_TENSOR_UNUSED,			/* in the file, not needed (MLM/NSP heads, ...) */
	FB_TENSOR_MISSING,			/* needed, not in the file */
	FB_TENSOR_BAD_SHAPE			/* needed, in the file with another shape */
} fb_tensor_use;

typedef struct fb_inspect_tensor
{
	const char *name;			/* transformers name */
	const char *stored;			/* name in the file (TensorFlow: the variable) */
	const char *file;			/* NULL when missing */
	const char *dtype;			/* "F32", ...; NULL when missing */
	int			ndim;
	int64_t		shape[8];		/* as found (transformers orientation) */
	int64_t		expect[2];		/* MISSING / BAD_SHAPE: what config.json
								 * implies ([d0] or [d0, d1]; d1 = 0) */
	size_t		bytes;			/* as stored */
	fb_tensor_use use;
} fb_inspect_tensor;

typedef struct fb_inspect
{
	const char *dir;
	const char *format;			/* as fb_model_info.weight_format */
	const char *layout;			/* variable names: "transformers",
								 * "google-research/bert", ... */
	const char *config_file;	/* NULL when none could be read */
	const char *model_type;		/* "bert", "albert", "electra"; NULL */
	const char *architecture;	/* architectures[0] or "" */
	fb_head		head;
	int			n_layers,
				hidden,
				n_labels;
	const char *const *weight_files;
	size_t		weight_bytes;
	fb_inspect_tensor *tensors;	/* used, then missing / bad, then unused */
	size_t		n_tensors;
	size_t		n_used,
				n_unused,
				n_missing,
				n_bad_shape,
				n_skipped;		/* optimizer slots and counters left out */
	const char *load_error;		/* what fb_model_open reports, NULL: loads */
	const char *notice;			/* other weight files that differ, or NULL */
} fb_inspect;

/*
 * Reads a model directory the way fb_model_open does and reports what it
 * found.  FB_OK whenever the weights could be listed, even if the model
 * does not load (load_error says why); otherwise the error.
 */
fb_status	fb_model_inspect(const char *dir, fb_inspect **out, fb_error *err);
void		fb_inspect_free(fb_inspect *ins);

/*
 * Probes the device opts asks for (device, device_ordinal, cuda_module):
 * for CUDA, loads the module and asks the driver.  FB_ERR_DEVICE names
 * what is missing: the module (or a library it needs), the driver, the
 * device.  For AUTO, info describes the device a model would open on.
 */
fb_status	fb_device_probe(const fb_model_options *opts, fb_device_info *info,
							fb_error *err);

/* The model's device with its memory as of now. */
fb_status	fb_model_device_info(const fb_model *model, fb_device_info *info,
								 fb_error *err);

/* ------------------------------------------------------------------------
 * Sessions and tasks
 * ------------------------------------------------------------------------ */
typedef struct fb_session fb_session;

fb_session *fb_session_new(const fb_model *model);	/* NULL on failure */
/* The same with the reason of a failure (a device session can fail for
 * other reasons than memory). */
fb_status	fb_session_open(const fb_model *model, fb_session **out, fb_error *err);
void		fb_session_free(fb_session *s);
void		fb_session_set_ctl(fb_session *s, const fb_run_ctl *ctl);

/*
 * Threads one forward pass of this session uses (default 1).  The engine
 * runs OpenBLAS single-threaded inside its own workers, so n is the whole
 * parallelism; workers block all signals and never call the host.
 * Returns the number actually available (1 when threads cannot start).
 */
int			fb_session_set_threads(fb_session *s, int n);

/*
 * Allocates the session's buffers (on the model's device) for batches of
 * up to n_tokens tokens in n_seq sequences of at most max_len tokens, so
 * that a host learns at start-up whether they fit; they also grow on
 * demand.
 */
fb_status	fb_session_reserve(fb_session *s, size_t n_tokens, int n_seq, int max_len,
							   fb_error *err);

/*
 * Tokens the task functions of this session (fb_classify, fb_embed,
 * fb_entities, fb_token_logits, fb_hidden_states) have run through the
 * encoder since it was created: every sequence of every forward pass,
 * [CLS] and [SEP] included, so a truncated text counts max_length and each
 * window over a long text counts again.  Read it before and after a call
 * to learn what the call cost without tokenizing twice.
 */
uint64_t	fb_session_tokens(const fb_session *s);

/* Name of the element-wise CPU kernel set in use ("avx2", "generic"). */
const char *fb_cpu_kernel_name(void);

typedef enum fb_pooling
{
	FB_POOL_CLS = 0,
	FB_POOL_MEAN,
	FB_POOL_POOLER,
	FB_POOL_NONE				/* the whole last hidden state */
} fb_pooling;

typedef struct fb_text
{
	const char *data;			/* UTF-8 */
	size_t		len;			/* bytes */
} fb_text;

typedef struct fb_task_options
{
	int			max_length;		/* tokens per window incl. [CLS] and [SEP]:
								 * 3 .. the model's max_position, 0 = that
								 * maximum; others are FB_ERR_INVALID */
	int			window_stride;	/* classification: 0 = truncate, >0 =
								 * sliding windows of max_length advanced by
								 * this many tokens, logits averaged */
	int			ner_stride;		/* entities: window advance, 0 = automatic */
	fb_pooling	pooling;
	int			normalize;		/* L2-normalise embeddings */
} fb_task_options;

fb_task_options fb_task_default_options(void);

/*
 * Sequence classification of n texts.  logits and probs receive
 * n * n_labels floats each (either may be NULL).  probs are softmax, or
 * sigmoid for multi-label models.
 */
fb_status	fb_classify(fb_session *s, const fb_text *texts, size_t n,
						const fb_task_options *opts, float *logits,
						float *probs, fb_error *err);

/*
 * Sequence classification of pre-tokenized sequences (each already
 * [CLS] ... [SEP]): logits (required) and probs (optional) receive
 * n_seq * n_labels floats.
 */
typedef struct fb_batch fb_batch;
fb_status	fb_classify_batch(fb_session *s, const fb_batch *batch, float *logits,
							  float *probs, fb_error *err);

/* Index of the top label in a row of n_labels scores. */
int			fb_argmax(const float *row, int n);

typedef struct fb_entity
{
	char	   *text;			/* exact substring of the input, malloc'd */
	const char *label;			/* points into the model's label table */
	int32_t		start;			/* code points, 0-based */
	int32_t		end;			/* exclusive */
	float		score;			/* mean probability of its tokens */
} fb_entity;

typedef struct fb_entity_list
{
	fb_entity  *items;
	size_t		n;
	size_t		cap;
} fb_entity_list;

void		fb_entity_list_init(fb_entity_list *l);
void		fb_entity_list_free(fb_entity_list *l);

/*
 * Entity extraction over the whole text (overlapping windows when it is
 * longer than max_length).  Results are appended to out in text order.
 */
fb_status	fb_entities(fb_session *s, const fb_text *text,
						const fb_task_options *opts, fb_entity_list *out,
						fb_error *err);

/*
 * Token-classification logits for every token of the text (no [CLS] or
 * [SEP]), merged over windows exactly as fb_entities sees them:
 * *n_tokens rows of n_labels floats in a malloc'd array the caller frees.
 */
fb_status	fb_token_logits(fb_session *s, const fb_text *text,
							const fb_task_options *opts, float **out,
							int *n_tokens, fb_error *err);

/*
 * Embeddings of n texts, n * hidden floats into out (pooling CLS, MEAN or
 * POOLER).  For FB_POOL_NONE use fb_hidden_states.
 */
fb_status	fb_embed(fb_session *s, const fb_text *texts, size_t n,
					 const fb_task_options *opts, float *out, fb_error *err);

/*
 * Last hidden state of one text: *n_tokens rows of hidden floats, written
 * to a malloc'd array the caller frees.
 */
fb_status	fb_hidden_states(fb_session *s, const fb_text *text,
							 const fb_task_options *opts, float **out,
							 int *n_tokens, fb_error *err);

/* ------------------------------------------------------------------------
 * Low level: forward pass on token ids (used by tests and hosts that
 * tokenize themselves).
 * ------------------------------------------------------------------------ */
struct fb_batch
{
	int			n_seq;
	const int32_t *const *ids;	/* n_seq arrays */
	const int	*lens;			/* tokens per sequence, each >= 1 */
};

/*
 * Runs the encoder on a batch.  hidden receives sum(lens) * hidden floats
 * (rows packed in sequence order, no padding); pooled, when not NULL,
 * n_seq * hidden floats of pooler output (requires has_pooler).
 */
fb_status	fb_forward(fb_session *s, const fb_batch *batch, float *hidden,
					   float *pooled, fb_error *err);

/*
 * Asynchronous forward passes, for hosts that batch requests themselves:
 * fb_forward_submit starts a batch (the ids are copied: the caller may
 * reuse them at once) and returns while a device still runs it, so the
 * host can tokenize the next batch meanwhile; fb_forward_wait finishes the
 * oldest batch submitted (also when it reports an error).  At most two
 * batches are in flight per session; while any is, the task functions
 * return FB_ERR_INVALID.  outputs is a set of FB_OUT_* bits; heads and
 * pooling run on the backend and only the requested arrays come back.
 * They belong to the session and stay valid until its next submit.
 *
 * When no output needs every row (only CLS, POOLED, SEQ_LOGITS), the last
 * layer runs for the [CLS] rows only: its keys and values still come from
 * every token, so the result is exact.
 */
#define FB_OUT_HIDDEN		0x01u	/* [rows, H]: every row of the last layer */
#define FB_OUT_CLS			0x02u	/* [n_seq, H]: each sequence's first row */
#define FB_OUT_MEAN			0x04u	/* [n_seq, H]: mean of its rows */
#define FB_OUT_POOLED		0x08u	/* [n_seq, H]: tanh(cls W + b) (pooler) */
#define FB_OUT_SEQ_LOGITS	0x10u	/* [n_seq, NL]: sequence head */
#define FB_OUT_TOKEN_LOGITS 0x20u	/* [rows, NL]: token head, every row */
#define FB_OUT_ALL			0x3fu

typedef struct fb_outputs
{
	int			n_seq;
	size_t		n_rows;			/* sum of the sequence lengths */
	const float *hidden;		/* NULL unless requested */
	const float *cls;
	const float *mean;
	const float *pooled;
	const float *seq_logits;
	const float *token_logits;
} fb_outputs;

fb_status	fb_forward_submit(fb_session *s, const fb_batch *b, unsigned outputs,
							  fb_error *err);
fb_status	fb_forward_wait(fb_session *s, fb_outputs *out, fb_error *err);

#ifdef __cplusplus
}
#endif

#endif							/* FINBERT_H */

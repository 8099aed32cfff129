/*
 * fb_limits.h — every hard limit of the engine, with the reason for its value.
 * Files are hostile: each limit bounds what a malformed file can make us do.
 */
#ifndef FB_LIMITS_H
#define FB_LIMITS_H

/* safetensors header: the format's reference implementation refuses
 * headers over 100,000,000 bytes (MAX_HEADER_SIZE); a BERT-large header is
 * about 60 KB. */
#define FB_ST_MAX_HEADER_BYTES   100000000u

/* Tensor rank: BERT weights are rank 1 or 2; 8 leaves room for other
 * layouts without letting a file declare absurd ranks. */
#define FB_ST_MAX_DIMS           8

/* Tensors in one file: BERT-large has about 400; a bound on allocations. */
#define FB_ST_MAX_TENSORS        100000

/* Tensor names: transformers' longest BERT names are under 80 bytes. */
#define FB_ST_MAX_NAME_BYTES     1024

/* Entries of the "__metadata__" object: transformers writes one
 * ("format": "pt"), conversion tools a few dozen.  The keys are held in
 * memory for the duplicate-key check, so the count is bounded. */
#define FB_ST_MAX_METADATA_ENTRIES 65536

/* config.json and tokenizer_config.json: real ones are a few KB. */
#define FB_CONFIG_MAX_BYTES      (4u * 1024u * 1024u)

/* vocab.txt: bert-base-chinese has 21128 lines (107 KB); multilingual
 * vocabularies are ~120k.  Bounds memory for a hostile file. */
#define FB_VOCAB_MAX_BYTES       (64u * 1024u * 1024u)
#define FB_VOCAB_MAX_TOKENS      1000000
#define FB_VOCAB_MAX_TOKEN_BYTES 1024

/* WordPiece: words longer than this many code points become [UNK]
 * (BertTokenizerFast's max_input_chars_per_word); it also keeps the greedy
 * longest-match linear in the input instead of quadratic. */
#define FB_WORDPIECE_MAX_CHARS   100

/* Model geometry accepted from config.json: generous bounds on real
 * BERT-family checkpoints (BERT-large: 24 layers, hidden 1024, 16 heads). */
#define FB_MAX_LAYERS            96
#define FB_MAX_HIDDEN            8192
#define FB_MAX_HEADS             128
#define FB_MAX_INTERMEDIATE      65536
#define FB_MAX_POSITIONS         8192
#define FB_MAX_VOCAB             1000000
#define FB_MAX_LABELS            10000
#define FB_MAX_LABEL_BYTES       256

/* Tokens in one forward pass (batch x length): bounds the activation arena
 * (about 4 KB per token per 1024 hidden units per buffer). */
#define FB_DEFAULT_MAX_BATCH_TOKENS 16384

/* Interrupt polling in the tokenizer: every 64K code points keeps a 1 GB
 * text cancellable in well under a millisecond of extra latency. */
#define FB_TOKENIZER_POLL_CHARS  65536

/* Tokenizer input: offsets are int32_t code point indices in the public
 * API, so one text must stay under 2 GiB (hosts cap it far lower). */
#define FB_TOKENIZER_MAX_TEXT_BYTES 2147483647u

/* strip_accents reorders each run of combining marks (canonical ordering)
 * and must hold the whole run, 28 bytes per mark.  Real text has a few
 * marks per letter, "Zalgo" text a few hundred; a longer run is an error
 * (FB_ERR_LIMIT) instead of unbounded memory (28 MB at this limit). */
#define FB_TOKENIZER_MAX_MARK_RUN (1u << 20)

/* Backend modules (distinct paths) one process loads: the CUDA module and
 * the test harness's; modules stay loaded for the life of the process
 * (CUDA libraries are not made to be unloaded), so the table is small and
 * fixed. */
#define FB_MAX_MODULES           4

#endif

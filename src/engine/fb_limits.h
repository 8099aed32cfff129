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

/* Files of one checkpoint (index + shards): transformers shards at 5 GB
 * (10 GB in older versions), so even a 10B-parameter fp32 model has a
 * dozen; TensorFlow writes one data shard per device of the saving job. */
#define FB_SOURCE_MAX_FILES      1024

/* model.safetensors.index.json / pytorch_model.bin.index.json: one line
 * per tensor, about 100 bytes each; a 1,000-tensor model is 100 KB. */
#define FB_SHARD_INDEX_MAX_BYTES (16u * 1024u * 1024u)

/* Zip archive of pytorch_model.bin: one entry per storage (BERT-large has
 * about 400) plus a few bookkeeping files. */
#define FB_ZIP_MAX_ENTRIES       1000000

/* The pickled state dict (data.pkl or the legacy main pickle): about 100
 * bytes per tensor, so BERT-large's is 50 KB.  Every object the unpickler
 * builds costs at most one opcode byte, so this also bounds its memory. */
#define FB_PICKLE_MAX_BYTES      (8u * 1024u * 1024u)

/* Objects the unpickler builds (about 120 bytes each): a state dict makes
 * about 15 per tensor, so 1M allows 60,000 tensors and bounds the memory a
 * hostile program can claim to about 120 MB. */
#define FB_PICKLE_MAX_OBJECTS    (1 << 20)

/* Unpickler stack: pickle writes dict items in batches of 1,000, so a state
 * dict needs about 2,000 slots; the rest is slack for other writers. */
#define FB_PICKLE_MAX_STACK      100000

/* Nested MARKs open at once: a state dict nests 4 deep (dict, tensor call,
 * argument tuple, storage tuple). */
#define FB_PICKLE_MAX_MARKS      64

/* Memo indices: the pickler numbers memo entries from 0, about 8 per
 * tensor, so BERT-large uses 3,200; an index is an array slot. */
#define FB_PICKLE_MAX_MEMO       (1 << 20)

/* Items held by all containers together (tuple, list and dict slots): a
 * state dict holds a few dozen per tensor.  Bounds what DUP / BINGET and
 * APPENDS of shared lists could otherwise multiply. */
#define FB_PICKLE_MAX_ITEMS      (4 << 20)

/* Dimensions of one tensor in a pickle: as in safetensors. */
#define FB_PICKLE_MAX_DIMS       FB_ST_MAX_DIMS

/* TensorFlow checkpoint .index (a LevelDB-format table of BundleEntryProto):
 * about 100 bytes per variable, so BERT-large with its Adam slots is
 * 150 KB. */
#define FB_TF_MAX_INDEX_BYTES    (256u * 1024u * 1024u)

/* Data shards of a TensorFlow bundle: one per device of the saving job. */
#define FB_TF_MAX_SHARDS         FB_SOURCE_MAX_FILES

/* Backend modules (distinct paths) one process loads: the CUDA module and
 * the test harness's; modules stay loaded for the life of the process
 * (CUDA libraries are not made to be unloaded), so the table is small and
 * fixed. */
#define FB_MAX_MODULES           4

#endif

-- finbert 0.1.0: BERT-family models inside PostgreSQL.
--
-- Objects: roles finbert_admin / finbert_user (created when absent), schema
-- finbert with the model catalog finbert.models and the embedding cache
-- finbert.embedding_cache, the SQL functions and the views finbert_models
-- and finbert_stats in the extension's schema.
--
-- Security: the extension is not trusted (superuser installs it).  Loading
-- and unloading models is revoked from PUBLIC and granted to finbert_admin
-- (the C code checks superuser or finbert_admin membership again);
-- inference is granted to finbert_user.  Every function runs with
-- search_path = pg_catalog, pg_temp; every object here is schema-qualified.

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION finbert" to load this file. \quit

-- Roles are cluster-wide and outlive DROP EXTENSION: create them only when
-- absent.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'finbert_admin') THEN
		CREATE ROLE finbert_admin NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'finbert_user') THEN
		CREATE ROLE finbert_user NOLOGIN;
	END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- Model catalog
-- ---------------------------------------------------------------------------
CREATE SCHEMA finbert;
COMMENT ON SCHEMA finbert IS 'finbert internal objects: the model catalog';
REVOKE ALL ON SCHEMA finbert FROM PUBLIC;
GRANT USAGE ON SCHEMA finbert TO finbert_admin, finbert_user;

CREATE TABLE finbert.models (
	name			text PRIMARY KEY
					CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
	path			text NOT NULL,
	task			text NOT NULL
					CHECK (task IN ('sentiment', 'industry', 'type', 'classify', 'ner', 'embed')),
	architecture	text NOT NULL,
	head			text NOT NULL CHECK (head IN ('sequence', 'token', 'none')),
	multi_label		boolean NOT NULL DEFAULT false,
	layers			integer NOT NULL,
	hidden_size		integer NOT NULL,
	heads			integer NOT NULL,
	vocab_size		integer NOT NULL,
	max_length		integer NOT NULL,
	labels			text[] NOT NULL,
	weight_file		text NOT NULL,
	weight_files	text[] NOT NULL DEFAULT '{}',
	weight_dtype	text NOT NULL,
	weight_bytes	bigint NOT NULL CHECK (weight_bytes >= 0),
	sha256			text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
	precision		text NOT NULL DEFAULT 'fp32' CHECK (precision IN ('fp32', 'int8')),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by		name NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE finbert.models IS
'Registered finbert models (one row per finbert_load_model); kept by pg_dump';
COMMENT ON COLUMN finbert.models.path IS
'model directory relative to finbert.model_dir';
COMMENT ON COLUMN finbert.models.sha256 IS
'SHA-256 of the weight files when the model was registered, read in the order of weight_files as one stream (for one file, that file''s SHA-256)';
COMMENT ON COLUMN finbert.models.weight_file IS
'the weight file loaded (safetensors preferred over pytorch_model.bin over a TensorFlow checkpoint), or the index of a checkpoint of several files';
COMMENT ON COLUMN finbert.models.weight_files IS
'every file the weights were read from: weight_file, then its shards in order';
COMMENT ON COLUMN finbert.models.weight_bytes IS
'total size of weight_files';
COMMENT ON COLUMN finbert.models.precision IS
'arithmetic of the encoder''s linear layers: fp32, or int8 (weights quantised per output channel when the model is opened, activations per row; faster, results differ slightly from fp32); a change reopens the model everywhere';
REVOKE ALL ON finbert.models FROM PUBLIC;
GRANT SELECT ON finbert.models TO finbert_admin, finbert_user;
GRANT INSERT, UPDATE, DELETE ON finbert.models TO finbert_admin;
SELECT pg_catalog.pg_extension_config_dump('finbert.models', '');

-- ---------------------------------------------------------------------------
-- Embedding cache: read by finbert_embed (an index probe on the primary key,
-- no table privilege needed), written only by the finbert cache writer
-- background worker in the database named by finbert.database.  Not dumped:
-- it is rebuilt on demand.
-- ---------------------------------------------------------------------------
CREATE TABLE finbert.embedding_cache (
	model			text NOT NULL,
	model_checksum	text NOT NULL,
	precision		text NOT NULL CHECK (precision IN ('fp32', 'int8')),
	pooling			text NOT NULL CHECK (pooling IN ('mean', 'cls', 'pooler')),
	max_length		integer NOT NULL CHECK (max_length > 0),
	text_hash		bytea NOT NULL CHECK (pg_catalog.length(text_hash) = 32),
	dim				integer NOT NULL CHECK (dim > 0),
	embedding		real[] NOT NULL CHECK (pg_catalog.array_length(embedding, 1) = dim),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	last_used		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (model, model_checksum, precision, pooling, max_length, text_hash)
);
CREATE INDEX embedding_cache_last_used ON finbert.embedding_cache (last_used);
COMMENT ON TABLE finbert.embedding_cache IS
'Embeddings computed by finbert_embed, keyed by model, weight checksum, precision, pooling, token limit and SHA-256 of the text; least recently used rows beyond finbert.cache_max_rows are evicted';
COMMENT ON COLUMN finbert.embedding_cache.model_checksum IS
'SHA-256 of the weight file (finbert.models.sha256) the embedding was computed with';
COMMENT ON COLUMN finbert.embedding_cache.precision IS
'precision of the model (finbert.models.precision) the embedding was computed with: fp32 and int8 embeddings are kept apart';
COMMENT ON COLUMN finbert.embedding_cache.max_length IS
'tokens the text was truncated to (finbert.max_length, capped by the model)';
COMMENT ON COLUMN finbert.embedding_cache.text_hash IS
'SHA-256 of the exact text (UTF-8 bytes)';
COMMENT ON COLUMN finbert.embedding_cache.last_used IS
'last cache hit (refreshed at most once a minute), for LRU eviction';
COMMENT ON INDEX finbert.embedding_cache_last_used IS
'eviction order of the embedding cache';
REVOKE ALL ON finbert.embedding_cache FROM PUBLIC;
GRANT SELECT, DELETE ON finbert.embedding_cache TO finbert_admin;

-- ---------------------------------------------------------------------------
-- Model administration
-- ---------------------------------------------------------------------------
-- "precision" is quoted: PRECISION is a keyword that cannot be a bare
-- parameter name (in named notation too: "precision" => 'int8').
CREATE FUNCTION @extschema@.finbert_load_model(name text, path text, task text DEFAULT NULL,
	"precision" text DEFAULT 'fp32')
RETURNS void
AS 'MODULE_PATHNAME', 'finbert_load_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 100000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_load_model(text, text, text, text) IS
'registers (or re-registers) the model directory path, relative to finbert.model_dir, under name; task defaults from the model head; precision fp32 (default) or int8 (admin only)';

CREATE FUNCTION @extschema@.finbert_load_models("precision" text DEFAULT 'fp32')
RETURNS TABLE (name text, task text, registered boolean, detail text)
AS 'MODULE_PATHNAME', 'finbert_load_models'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 100000 ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_load_models(text) IS
'registers every model directory under finbert.model_dir by its directory name (task from the finbert.*_model setting naming it, else from the head); reports each with registered = false and the error where it does not load (admin only)';

CREATE FUNCTION @extschema@.finbert_unload_model(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'finbert_unload_model'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_unload_model(text) IS
'removes a model from the catalog (admin only)';

CREATE FUNCTION @extschema@.finbert_loaded_models(
	OUT name text, OUT resident_bytes bigint, OUT weight_dtype text, OUT "precision" text,
	OUT uses bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_loaded_models'
LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_loaded_models() IS
'models opened by the current backend, with their memory and the precision they were opened with';

CREATE FUNCTION @extschema@.finbert_cache_clear(model text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'finbert_cache_clear'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_cache_clear(text) IS
'deletes the cached embeddings of a model, or all (admin only); returns the rows deleted';

-- ---------------------------------------------------------------------------
-- Classification
-- ---------------------------------------------------------------------------
CREATE FUNCTION @extschema@.finbert_sentiment(input text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_sentiment'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_sentiment(text) IS
'sentiment label of a text, by the model named in finbert.sentiment_model';

CREATE FUNCTION @extschema@.finbert_sentiment(input text, model text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_sentiment'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_sentiment(text, text) IS
'sentiment label of a text, by the named model';

CREATE FUNCTION @extschema@.finbert_sentiment(inputs text[])
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_sentiment_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_sentiment(text[]) IS
'sentiment labels of texts in input order, batched, by the model named in finbert.sentiment_model';

CREATE FUNCTION @extschema@.finbert_sentiment(inputs text[], model text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_sentiment_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_sentiment(text[], text) IS
'sentiment labels of texts in input order, batched, by the named model';

CREATE FUNCTION @extschema@.finbert_industry(input text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_industry'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_industry(text) IS
'industry label of a text, by the model named in finbert.industry_model';

CREATE FUNCTION @extschema@.finbert_industry(input text, model text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_industry'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_industry(text, text) IS
'industry label of a text, by the named model';

CREATE FUNCTION @extschema@.finbert_industry(inputs text[])
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_industry_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_industry(text[]) IS
'industry labels of texts in input order, batched, by the model named in finbert.industry_model';

CREATE FUNCTION @extschema@.finbert_industry(inputs text[], model text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_industry_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_industry(text[], text) IS
'industry labels of texts in input order, batched, by the named model';

CREATE FUNCTION @extschema@.finbert_type(input text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_type'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_type(text) IS
'news type label (top label) of a text, by the model named in finbert.type_model';

CREATE FUNCTION @extschema@.finbert_type(input text, model text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_type'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_type(text, text) IS
'news type label (top label) of a text, by the named model';

CREATE FUNCTION @extschema@.finbert_type(inputs text[])
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_type_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_type(text[]) IS
'news type labels of texts in input order, batched, by the model named in finbert.type_model';

CREATE FUNCTION @extschema@.finbert_type(inputs text[], model text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_type_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_type(text[], text) IS
'news type labels of texts in input order, batched, by the named model';

CREATE FUNCTION @extschema@.finbert_classify(input text, model text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_classify'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_classify(text, text) IS
'top label of a text by a sequence-classification model';

CREATE FUNCTION @extschema@.finbert_classify(inputs text[], model text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_classify_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_classify(text[], text) IS
'top labels of texts in input order, batched, by a sequence-classification model';

CREATE FUNCTION @extschema@.finbert_scores(input text, model text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'finbert_scores'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_scores(text, text) IS
'{label: probability} of a text (softmax; sigmoid for multi-label models)';

CREATE FUNCTION @extschema@.finbert_scores(inputs text[], model text)
RETURNS jsonb[]
AS 'MODULE_PATHNAME', 'finbert_scores_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_scores(text[], text) IS
'{label: probability} of texts in input order, batched';

-- ---------------------------------------------------------------------------
-- Entities
-- ---------------------------------------------------------------------------
CREATE FUNCTION @extschema@.finbert_entities(input text,
	OUT entity text, OUT label text, OUT start_pos integer, OUT end_pos integer, OUT score real)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_entities'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000 ROWS 5
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_entities(text) IS
'named entities of a text (1-based character positions as in substr), by the model named in finbert.ner_model';

CREATE FUNCTION @extschema@.finbert_entities(input text, model text,
	OUT entity text, OUT label text, OUT start_pos integer, OUT end_pos integer, OUT score real)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_entities'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000 ROWS 5
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_entities(text, text) IS
'named entities of a text (1-based character positions as in substr), by the named model';

CREATE FUNCTION @extschema@.finbert_entities(inputs text[],
	OUT ord integer, OUT entity text, OUT label text, OUT start_pos integer, OUT end_pos integer, OUT score real)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_entities_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000 ROWS 50
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_entities(text[]) IS
'named entities of texts; ord is the 1-based position of the text in the array';

CREATE FUNCTION @extschema@.finbert_entities(inputs text[], model text,
	OUT ord integer, OUT entity text, OUT label text, OUT start_pos integer, OUT end_pos integer, OUT score real)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_entities_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000 ROWS 50
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_entities(text[], text) IS
'named entities of texts by the named model; ord is the 1-based position of the text in the array';

CREATE FUNCTION @extschema@.finbert_companies(input text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_companies'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_companies(text) IS
'distinct company names in a text, in order of first mention';

CREATE FUNCTION @extschema@.finbert_companies(input text, model text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_companies'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_companies(text, text) IS
'distinct company names in a text, in order of first mention, by the named model';

CREATE FUNCTION @extschema@.finbert_companies(inputs text[], OUT ord integer, OUT companies text[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_companies_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000 ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_companies(text[]) IS
'company names of each text; ord is the 1-based position of the text in the array';

CREATE FUNCTION @extschema@.finbert_companies(inputs text[], model text, OUT ord integer, OUT companies text[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_companies_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000 ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_companies(text[], text) IS
'company names of each text by the named model; ord is the 1-based position of the text in the array';

CREATE FUNCTION @extschema@.finbert_persons(input text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_persons'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_persons(text) IS
'distinct person names in a text, in order of first mention';

CREATE FUNCTION @extschema@.finbert_persons(input text, model text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_persons'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_persons(text, text) IS
'distinct person names in a text, in order of first mention, by the named model';

CREATE FUNCTION @extschema@.finbert_persons(inputs text[], OUT ord integer, OUT persons text[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_persons_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000 ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_persons(text[]) IS
'person names of each text; ord is the 1-based position of the text in the array';

CREATE FUNCTION @extschema@.finbert_persons(inputs text[], model text, OUT ord integer, OUT persons text[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_persons_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000 ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_persons(text[], text) IS
'person names of each text by the named model; ord is the 1-based position of the text in the array';

-- ---------------------------------------------------------------------------
-- Embeddings and tokens
-- ---------------------------------------------------------------------------
CREATE FUNCTION @extschema@.finbert_embed(input text)
RETURNS real[]
AS 'MODULE_PATHNAME', 'finbert_embed'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_embed(text) IS
'L2-normalised mean-pooled embedding of a text, by the model named in finbert.embed_model';

CREATE FUNCTION @extschema@.finbert_embed(input text, model text)
RETURNS real[]
AS 'MODULE_PATHNAME', 'finbert_embed'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_embed(text, text) IS
'L2-normalised mean-pooled embedding of a text, by the named model';

CREATE FUNCTION @extschema@.finbert_embed(input text, model text, pooling text)
RETURNS real[]
AS 'MODULE_PATHNAME', 'finbert_embed'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_embed(text, text, text) IS
'L2-normalised embedding of a text; pooling is mean, cls or pooler';

CREATE FUNCTION @extschema@.finbert_embed(inputs text[], OUT ord integer, OUT embedding real[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_embed_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000 ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_embed(text[]) IS
'embeddings of texts, batched; ord is the 1-based position of the text in the array';

CREATE FUNCTION @extschema@.finbert_embed(inputs text[], model text, OUT ord integer, OUT embedding real[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_embed_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000 ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_embed(text[], text) IS
'embeddings of texts by the named model, batched; ord is the 1-based position of the text in the array';

CREATE FUNCTION @extschema@.finbert_embed(inputs text[], model text, pooling text, OUT ord integer, OUT embedding real[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_embed_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000 ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_embed(text[], text, text) IS
'embeddings of texts by the named model and pooling, batched; ord is the 1-based position of the text in the array';

CREATE FUNCTION @extschema@.finbert_tokenize(input text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_tokenize'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_tokenize(text) IS
'WordPiece tokens of a text (without [CLS]/[SEP]) by the tokenizer of finbert.embed_model';

CREATE FUNCTION @extschema@.finbert_tokenize(input text, model text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_tokenize'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_tokenize(text, text) IS
'WordPiece tokens of a text (without [CLS]/[SEP]) by the tokenizer of the named model';

CREATE FUNCTION @extschema@.finbert_tokenize(inputs text[], OUT ord integer, OUT tokens text[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_tokenize_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 1000 ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_tokenize(text[]) IS
'WordPiece tokens of texts; ord is the 1-based position of the text in the array';

CREATE FUNCTION @extschema@.finbert_tokenize(inputs text[], model text, OUT ord integer, OUT tokens text[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_tokenize_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 1000 ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_tokenize(text[], text) IS
'WordPiece tokens of texts by the named model; ord is the 1-based position of the text in the array';

-- ---------------------------------------------------------------------------
-- Pinned forms: IMMUTABLE, so postgres_fdw ships them to the shards of a
-- sharded table (is_foreign_expr refuses mutable functions), and generated
-- columns and index expressions accept them.  Model and pin are explicit:
-- nothing comes from a setting of the server that runs them, and a server
-- whose model differs (weights or precision) raises an ERROR instead of
-- answering differently.  The window is the model's full length, never
-- finbert.max_length.  IMMUTABLE is a promise kept by the pin: the same
-- pin gives the same result, and no pin runs on other weights.
-- ---------------------------------------------------------------------------
CREATE FUNCTION @extschema@.finbert_model_pin(model text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_model_pin'
LANGUAGE C STRICT STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_model_pin(text) IS
'the pin of a registered model for the *_pinned functions: its weight checksum (finbert_models.sha256), followed by :int8 for a model registered with precision int8';

CREATE FUNCTION @extschema@.finbert_sentiment_pinned(input text, model text, pin text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_classify_pinned'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_sentiment_pinned(text, text, text) IS
'sentiment label of a text by the named model, which must have the pin (finbert_model_pin); IMMUTABLE: shippable to postgres_fdw shards';

CREATE FUNCTION @extschema@.finbert_industry_pinned(input text, model text, pin text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_classify_pinned'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_industry_pinned(text, text, text) IS
'industry label of a text by the named model, which must have the pin (finbert_model_pin); IMMUTABLE: shippable to postgres_fdw shards';

CREATE FUNCTION @extschema@.finbert_type_pinned(input text, model text, pin text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_classify_pinned'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_type_pinned(text, text, text) IS
'news type label of a text by the named model, which must have the pin (finbert_model_pin); IMMUTABLE: shippable to postgres_fdw shards';

CREATE FUNCTION @extschema@.finbert_classify_pinned(input text, model text, pin text)
RETURNS text
AS 'MODULE_PATHNAME', 'finbert_classify_pinned'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_classify_pinned(text, text, text) IS
'top label of a text by the named model, which must have the pin (finbert_model_pin); IMMUTABLE: shippable to postgres_fdw shards';

CREATE FUNCTION @extschema@.finbert_scores_pinned(input text, model text, pin text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'finbert_scores_pinned'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_scores_pinned(text, text, text) IS
'{label: probability} of a text by the named model, which must have the pin (finbert_model_pin); IMMUTABLE: shippable to postgres_fdw shards';

CREATE FUNCTION @extschema@.finbert_companies_pinned(input text, model text, pin text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_companies_pinned'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_companies_pinned(text, text, text) IS
'distinct company names in a text by the named model, which must have the pin (finbert_model_pin); IMMUTABLE: shippable to postgres_fdw shards';

CREATE FUNCTION @extschema@.finbert_persons_pinned(input text, model text, pin text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'finbert_persons_pinned'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_persons_pinned(text, text, text) IS
'distinct person names in a text by the named model, which must have the pin (finbert_model_pin); IMMUTABLE: shippable to postgres_fdw shards';

CREATE FUNCTION @extschema@.finbert_embed_pinned(input text, model text, pooling text, pin text)
RETURNS real[]
AS 'MODULE_PATHNAME', 'finbert_embed_pinned'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE COST 10000
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_embed_pinned(text, text, text, text) IS
'L2-normalised embedding of a text by the named model and pooling (mean, cls or pooler), which must have the pin (finbert_model_pin); IMMUTABLE: shippable to postgres_fdw shards';

-- ---------------------------------------------------------------------------
-- Statistics
-- ---------------------------------------------------------------------------
CREATE FUNCTION @extschema@.finbert_stats(
	OUT scope text, OUT execution text, OUT worker_pid integer, OUT worker_state text,
	OUT requests bigint, OUT worker_requests bigint, OUT texts bigint,
	OUT batches bigint, OUT mean_batch_size double precision,
	OUT worker_batches bigint, OUT worker_mean_batch_size double precision,
	OUT tokens bigint, OUT busy_ms double precision,
	OUT tokens_per_second double precision, OUT tokens_per_second_1m double precision,
	OUT queue_depth integer, OUT running_requests integer, OUT slots_in_use integer,
	OUT errors bigint, OUT model_loads bigint,
	OUT cache_hits bigint, OUT cache_misses bigint,
	OUT cache_writes bigint, OUT cache_evictions bigint,
	OUT cache_pending bigint, OUT cache_dropped bigint, OUT cache_writer_pid integer,
	OUT stats_reset timestamptz,
	OUT device text, OUT device_memory_bytes bigint, OUT device_total_bytes bigint,
	OUT device_batches bigint, OUT device_tokens bigint,
	OUT engine_host_pid integer, OUT engine_host_failures bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'finbert_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_stats() IS
'finbert request counters (cluster-wide when preloaded, else this backend), worker, queue and cache state, the worker''s device and engine host';

CREATE FUNCTION @extschema@.finbert_worker_models(
	OUT name text, OUT device text, OUT device_bytes bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_worker_models'
LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_worker_models() IS
'models the finbert worker has open, the device each runs on and the weights it holds in device memory';

CREATE FUNCTION @extschema@.finbert_stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'finbert_stats_reset'
LANGUAGE C VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_stats_reset() IS
'resets the finbert request counters (admin only)';

CREATE FUNCTION @extschema@.finbert_progress(
	OUT pid integer, OUT leader_pid integer, OUT query_start timestamptz, OUT model text,
	OUT rows_done bigint, OUT rows_expected bigint, OUT tokens_done bigint,
	OUT tokens_per_second double precision, OUT seconds_left double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'finbert_progress'
LANGUAGE C VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_progress() IS
'progress of the statements running finbert calls in batches, one row per backend (needs shared_preload_libraries)';

-- ---------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------
CREATE VIEW @extschema@.finbert_models AS
	SELECT m.name, m.task, m.architecture, m.head, m.layers, m.hidden_size,
		   m.heads, m.vocab_size, m.max_length, m.labels, m.multi_label,
		   m.path, m.weight_file, m.weight_dtype, m.weight_bytes AS bytes, m.weight_files,
		   m.sha256, m.precision, COALESCE(w.device, 'cpu') AS device,
		   (l.name IS NOT NULL) AS loaded_here, l.resident_bytes,
		   m.created_at, m.created_by, w.device_bytes
	  FROM finbert.models m
	  LEFT JOIN @extschema@.finbert_loaded_models() l ON l.name = m.name
	  LEFT JOIN @extschema@.finbert_worker_models() w ON w.name = m.name;
COMMENT ON VIEW @extschema@.finbert_models IS
'registered models: task, architecture, sizes, labels, precision, device (where the worker runs it), memory, loaded in this backend or not, device memory';

CREATE VIEW @extschema@.finbert_stats AS
	SELECT * FROM @extschema@.finbert_stats();
COMMENT ON VIEW @extschema@.finbert_stats IS
'finbert requests, batches, mean batch size, tokens/s (overall and last minute), queue depth, errors, embedding cache and worker state';

CREATE VIEW @extschema@.finbert_progress AS
	SELECT * FROM @extschema@.finbert_progress();
COMMENT ON VIEW @extschema@.finbert_progress IS
'statements running finbert calls in batches: pid, query start, model, rows done and expected (plan estimate), estimated tokens done, tokens/s, seconds left';

CREATE FUNCTION @extschema@.finbert_cosine(a real[], b real[])
RETURNS double precision
AS 'MODULE_PATHNAME', 'finbert_cosine'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.finbert_cosine(real[], real[]) IS
'cosine similarity of two embeddings (NULL when one is all zeros); without pgvector, ORDER BY finbert_cosine(...) DESC finds the nearest texts';

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------
REVOKE ALL ON FUNCTION
	@extschema@.finbert_load_model(text, text, text, text),
	@extschema@.finbert_load_models(text),
	@extschema@.finbert_unload_model(text),
	@extschema@.finbert_stats_reset(),
	@extschema@.finbert_cache_clear(text)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.finbert_load_model(text, text, text, text),
	@extschema@.finbert_load_models(text),
	@extschema@.finbert_unload_model(text),
	@extschema@.finbert_stats_reset(),
	@extschema@.finbert_cache_clear(text)
	TO finbert_admin;

REVOKE ALL ON FUNCTION
	@extschema@.finbert_sentiment(text), @extschema@.finbert_sentiment(text, text),
	@extschema@.finbert_sentiment(text[]), @extschema@.finbert_sentiment(text[], text),
	@extschema@.finbert_industry(text), @extschema@.finbert_industry(text, text),
	@extschema@.finbert_industry(text[]), @extschema@.finbert_industry(text[], text),
	@extschema@.finbert_type(text), @extschema@.finbert_type(text, text),
	@extschema@.finbert_type(text[]), @extschema@.finbert_type(text[], text),
	@extschema@.finbert_classify(text, text), @extschema@.finbert_classify(text[], text),
	@extschema@.finbert_scores(text, text), @extschema@.finbert_scores(text[], text),
	@extschema@.finbert_entities(text), @extschema@.finbert_entities(text, text),
	@extschema@.finbert_entities(text[]), @extschema@.finbert_entities(text[], text),
	@extschema@.finbert_companies(text), @extschema@.finbert_companies(text, text),
	@extschema@.finbert_companies(text[]), @extschema@.finbert_companies(text[], text),
	@extschema@.finbert_persons(text), @extschema@.finbert_persons(text, text),
	@extschema@.finbert_persons(text[]), @extschema@.finbert_persons(text[], text),
	@extschema@.finbert_embed(text), @extschema@.finbert_embed(text, text),
	@extschema@.finbert_embed(text, text, text), @extschema@.finbert_embed(text[]),
	@extschema@.finbert_embed(text[], text), @extschema@.finbert_embed(text[], text, text),
	@extschema@.finbert_tokenize(text), @extschema@.finbert_tokenize(text, text),
	@extschema@.finbert_tokenize(text[]), @extschema@.finbert_tokenize(text[], text),
	@extschema@.finbert_loaded_models(), @extschema@.finbert_stats(),
	@extschema@.finbert_progress()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.finbert_sentiment(text), @extschema@.finbert_sentiment(text, text),
	@extschema@.finbert_sentiment(text[]), @extschema@.finbert_sentiment(text[], text),
	@extschema@.finbert_industry(text), @extschema@.finbert_industry(text, text),
	@extschema@.finbert_industry(text[]), @extschema@.finbert_industry(text[], text),
	@extschema@.finbert_type(text), @extschema@.finbert_type(text, text),
	@extschema@.finbert_type(text[]), @extschema@.finbert_type(text[], text),
	@extschema@.finbert_classify(text, text), @extschema@.finbert_classify(text[], text),
	@extschema@.finbert_scores(text, text), @extschema@.finbert_scores(text[], text),
	@extschema@.finbert_entities(text), @extschema@.finbert_entities(text, text),
	@extschema@.finbert_entities(text[]), @extschema@.finbert_entities(text[], text),
	@extschema@.finbert_companies(text), @extschema@.finbert_companies(text, text),
	@extschema@.finbert_companies(text[]), @extschema@.finbert_companies(text[], text),
	@extschema@.finbert_persons(text), @extschema@.finbert_persons(text, text),
	@extschema@.finbert_persons(text[]), @extschema@.finbert_persons(text[], text),
	@extschema@.finbert_embed(text), @extschema@.finbert_embed(text, text),
	@extschema@.finbert_embed(text, text, text), @extschema@.finbert_embed(text[]),
	@extschema@.finbert_embed(text[], text), @extschema@.finbert_embed(text[], text, text),
	@extschema@.finbert_tokenize(text), @extschema@.finbert_tokenize(text, text),
	@extschema@.finbert_tokenize(text[]), @extschema@.finbert_tokenize(text[], text),
	@extschema@.finbert_loaded_models(), @extschema@.finbert_stats(),
	@extschema@.finbert_progress()
	TO finbert_user, finbert_admin;

REVOKE ALL ON @extschema@.finbert_models, @extschema@.finbert_stats FROM PUBLIC;
GRANT SELECT ON @extschema@.finbert_models, @extschema@.finbert_stats
	TO finbert_user, finbert_admin;

REVOKE ALL ON FUNCTION
	@extschema@.finbert_model_pin(text),
	@extschema@.finbert_sentiment_pinned(text, text, text),
	@extschema@.finbert_industry_pinned(text, text, text),
	@extschema@.finbert_type_pinned(text, text, text),
	@extschema@.finbert_classify_pinned(text, text, text),
	@extschema@.finbert_scores_pinned(text, text, text),
	@extschema@.finbert_companies_pinned(text, text, text),
	@extschema@.finbert_persons_pinned(text, text, text),
	@extschema@.finbert_embed_pinned(text, text, text, text)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.finbert_model_pin(text),
	@extschema@.finbert_sentiment_pinned(text, text, text),
	@extschema@.finbert_industry_pinned(text, text, text),
	@extschema@.finbert_type_pinned(text, text, text),
	@extschema@.finbert_classify_pinned(text, text, text),
	@extschema@.finbert_scores_pinned(text, text, text),
	@extschema@.finbert_companies_pinned(text, text, text),
	@extschema@.finbert_persons_pinned(text, text, text),
	@extschema@.finbert_embed_pinned(text, text, text, text)
	TO finbert_user, finbert_admin;

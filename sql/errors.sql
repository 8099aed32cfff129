--
-- errors: every documented error with its SQLSTATE
--
-- pg_temp.try(sql) runs a statement and returns its SQLSTATE (or 'ok'),
-- for errors whose message names a server path; try_msg also says whether
-- the message matches a pattern (e.g. names the bad file).
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
CREATE FUNCTION pg_temp.try_msg(sql text, pattern text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || CASE WHEN SQLERRM ~ pattern THEN ' (message matches)'
	                        ELSE ' (message: ' || SQLERRM || ')' END;
END $$;

-- unknown model: undefined_object, the hint lists the registered models
\set VERBOSITY default
SELECT finbert_sentiment('央行降准', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_embed('央行降准', 'not a valid name');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM finbert_entities('央行降准', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_tokenize(ARRAY['a'], 'nope');
\echo :LAST_ERROR_SQLSTATE
-- ... and names the setting when the name came from one
SET finbert.sentiment_model = 'finbert-sentiment';
SELECT finbert_sentiment('央行降准');
\echo :LAST_ERROR_SQLSTATE
RESET finbert.sentiment_model;

-- task with no model configured: the hint names the setting
SET finbert.sentiment_model = '';
SELECT finbert_sentiment('央行降准');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_sentiment(ARRAY['央行降准']);
\echo :LAST_ERROR_SQLSTATE
RESET finbert.sentiment_model;
SET finbert.ner_model = '';
SELECT finbert_companies('央行降准');
\echo :LAST_ERROR_SQLSTATE
RESET finbert.ner_model;
SET finbert.embed_model = '';
SELECT finbert_embed('央行降准');
\echo :LAST_ERROR_SQLSTATE
RESET finbert.embed_model;

-- settings are validated
SET finbert.sentiment_model = 'bad name';
\echo :LAST_ERROR_SQLSTATE
SET finbert.model_dir = 'relative/path';
\echo :LAST_ERROR_SQLSTATE
SET finbert.execution = 'gpu';
\echo :LAST_ERROR_SQLSTATE

-- input over finbert.max_input_bytes: program_limit_exceeded
SET finbert.max_input_bytes = 100;
SELECT finbert_sentiment(repeat('a', 100)) IS NOT NULL AS at_limit_ok;
SELECT finbert_sentiment(repeat('a', 101));
\echo :LAST_ERROR_SQLSTATE
-- 34 characters, 102 bytes of UTF-8
SELECT finbert_sentiment(repeat('股', 34));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM finbert_entities(repeat('a', 101));
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_embed(repeat('a', 101));
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_tokenize(repeat('a', 101));
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_sentiment(ARRAY['ok', repeat('a', 101)]);
\echo :LAST_ERROR_SQLSTATE
RESET finbert.max_input_bytes;

-- a model without the head the function needs: wrong_object_type
SELECT finbert_classify('央行降准', 'ner');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM finbert_entities('央行降准', 'cls');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_scores(ARRAY['央行降准'], 'encoder');
\echo :LAST_ERROR_SQLSTATE
-- pooling
SELECT finbert_embed('央行降准', 'encoder', 'max');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_embed('央行降准', 'ner', 'pooler');
\echo :LAST_ERROR_SQLSTATE

-- worker and inline execution give the same answer (the worker test
-- compares every function)
SET finbert.execution = 'worker';
SELECT finbert_sentiment('央行降准') AS worker;
SET finbert.execution = 'inline';
SELECT finbert_sentiment('央行降准') AS inline;
RESET finbert.execution;

-- registration errors
SELECT finbert_load_model('bad name', 'cls');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_load_model('x', 'cls', 'translate');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_load_model('x', 'ner', 'sentiment');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_load_model('x', 'encoder', 'ner');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_load_model('x', 'cls', NULL, 'int4');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_load_model('x', 'cls', "precision" => 'FP32');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_load_model('x', '');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_load_model('x', '.');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_load_model(NULL, 'cls');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_unload_model('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.try_msg($$SELECT finbert_load_model('x', 'does_not_exist')$$, 'does not exist');

-- corrupt model files: data_corrupted, the message names the file
SELECT pg_temp.try_msg($$SELECT finbert_load_model('x', 'bad_config')$$, 'config\.json');
SELECT pg_temp.try_msg($$SELECT finbert_load_model('x', 'bad_weights')$$, 'model\.safetensors');
SELECT pg_temp.try_msg($$SELECT finbert_load_model('x', 'bad_shape')$$, 'model\.safetensors|config\.json');
SELECT pg_temp.try_msg($$SELECT finbert_load_model('x', 'bad_vocab')$$, 'vocab\.txt');
-- missing weight file: undefined_file
SELECT pg_temp.try_msg($$SELECT finbert_load_model('x', 'no_weights')$$, 'model\.safetensors');
-- none of them got registered
SELECT count(*) FROM finbert_models WHERE name = 'x';

-- finbert.model_dir unset
SET finbert.model_dir = '';
SELECT finbert_load_model('x', 'cls');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_sentiment('央行降准');
\echo :LAST_ERROR_SQLSTATE
RESET finbert.model_dir;

-- weights changed on disk after registration: data_corrupted until the
-- model is registered again
SELECT finbert_load_model('mutable', 'mutable');
SELECT finbert_classify('央行降准', 'mutable') IS NOT NULL AS works;
DO $$
BEGIN
	EXECUTE format('COPY (SELECT 1) TO %L',
				   current_setting('finbert.model_dir') || '/mutable/model.safetensors');
END $$;
SELECT pg_temp.try_msg($$SELECT finbert_classify('央行降准', 'mutable')$$, 'changed since the model was registered');
SELECT pg_temp.try_msg($$SELECT finbert_load_model('mutable', 'mutable')$$, 'model\.safetensors');
SELECT finbert_unload_model('mutable');
SELECT finbert_classify('央行降准', 'mutable');
\echo :LAST_ERROR_SQLSTATE

-- a catalog row deleted behind the cache's back is noticed at the next
-- statement
BEGIN;
SELECT finbert_classify('央行降准', 'cls_f16') IS NOT NULL AS works;
DELETE FROM finbert.models WHERE name = 'cls_f16';
SELECT finbert_classify('央行降准', 'cls_f16');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT finbert_classify('央行降准', 'cls_f16') IS NOT NULL AS back;

-- statement_timeout and cancel stop long work (SQLSTATE 57014)
-- (the timeout can land in the model-catalog lookup, which adds a CONTEXT line)
\set SHOW_CONTEXT never
SET statement_timeout = '200ms';
SELECT count(finbert_sentiment('股市大涨' || g)) FROM generate_series(1, 1000000) g;
\echo :LAST_ERROR_SQLSTATE
SET statement_timeout = '20ms';
SELECT count(*) FROM finbert_entities(repeat('股市大涨，宁德时代签约。', 29000));
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
\set SHOW_CONTEXT errors
-- the backend is fine afterwards
SELECT finbert_sentiment('央行降准') IS NOT NULL AS still_works;

-- a database that is not UTF8 is refused (feature_not_supported)
CREATE DATABASE regress_finbert_latin1 ENCODING 'LATIN1' TEMPLATE template0;
\c regress_finbert_latin1
CREATE EXTENSION finbert;
SELECT finbert_tokenize('abc', 'cls');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_sentiment(ARRAY['abc']);
\echo :LAST_ERROR_SQLSTATE
\c contrib_regression
DROP DATABASE regress_finbert_latin1;

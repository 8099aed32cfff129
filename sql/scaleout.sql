--
-- scaleout: the pinned (IMMUTABLE) forms that postgres_fdw ships to the
-- shards of a sharded table, checked against the STABLE forms, their
-- errors, what IMMUTABLE allows (generated columns, expression indexes),
-- and shipping itself through a loopback foreign server.
--
CREATE TEMP TABLE news (id int PRIMARY KEY, body text);
INSERT INTO news VALUES
 (1, '浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。'),
 (2, '亚马逊在华一审败诉 　被判不得使用AWS名称并赔偿7646万元'),
 (3, '贵州茅台(600519.SH)2023年营收同比增长18.04%，净利润747.34亿元。'),
 (4, '宁德时代CATL与Tesla签署长期供货协议，股价大涨5%'),
 (5, ''),
 (6, NULL);

-- a model's pin is its catalog checksum (fp32) ...
SELECT finbert_model_pin('cls') = sha256 AS pin_is_sha256 FROM finbert_models WHERE name = 'cls';
SELECT finbert_model_pin('encoder') = sha256 AS pin_is_sha256 FROM finbert_models WHERE name = 'encoder';
-- ... followed by :int8 for an int8 registration of the same files
SELECT finbert_load_model('cls_int8', 'cls', 'sentiment', 'int8');
SELECT finbert_model_pin('cls_int8') = finbert_model_pin('cls') || ':int8' AS int8_pin;
\set VERBOSITY terse
SELECT finbert_model_pin('no_such_model');  -- the hint lists the models registered so far
\set VERBOSITY default
SELECT finbert_model_pin(NULL) IS NULL AS null_pin;

-- the pins as psql variables, written into the queries as literals (a
-- shipped query must not call the STABLE finbert_model_pin)
SELECT finbert_model_pin('cls') AS cls_pin, finbert_model_pin('ner') AS ner_pin,
       finbert_model_pin('encoder') AS encoder_pin, finbert_model_pin('cls_int8') AS int8_pin \gset

-- properties: IMMUTABLE, STRICT, PARALLEL SAFE; finbert_model_pin STABLE
SELECT p.oid::regprocedure AS function, p.provolatile AS vol, p.proisstrict AS strict,
       p.proparallel AS par
  FROM pg_proc p
 WHERE p.proname LIKE 'finbert%pin%' ORDER BY 1::text;

-- same results as the STABLE forms with the model named, NULL in NULL out
SELECT id,
       finbert_sentiment_pinned(body, 'cls', :'cls_pin') IS NOT DISTINCT FROM finbert_sentiment(body, 'cls') AS sentiment,
       finbert_industry_pinned(body, 'cls', :'cls_pin') IS NOT DISTINCT FROM finbert_industry(body, 'cls') AS industry,
       finbert_type_pinned(body, 'cls', :'cls_pin') IS NOT DISTINCT FROM finbert_type(body, 'cls') AS type,
       finbert_classify_pinned(body, 'cls', :'cls_pin') IS NOT DISTINCT FROM finbert_classify(body, 'cls') AS classify,
       finbert_scores_pinned(body, 'cls', :'cls_pin') IS NOT DISTINCT FROM finbert_scores(body, 'cls') AS scores,
       finbert_companies_pinned(body, 'ner', :'ner_pin') IS NOT DISTINCT FROM finbert_companies(body, 'ner') AS companies,
       finbert_persons_pinned(body, 'ner', :'ner_pin') IS NOT DISTINCT FROM finbert_persons(body, 'ner') AS persons,
       finbert_embed_pinned(body, 'encoder', 'cls', :'encoder_pin') IS NOT DISTINCT FROM finbert_embed(body, 'encoder', 'cls') AS embed,
       finbert_sentiment_pinned(body, 'cls_int8', :'int8_pin') IS NOT DISTINCT FROM finbert_sentiment(body, 'cls_int8') AS int8
  FROM news ORDER BY id;
SELECT finbert_sentiment_pinned(NULL, 'cls', :'cls_pin') IS NULL AS null_text,
       finbert_sentiment_pinned('x', NULL, :'cls_pin') IS NULL AS null_model,
       finbert_sentiment_pinned('x', 'cls', NULL) IS NULL AS null_pin,
       finbert_embed_pinned('x', 'encoder', NULL, :'encoder_pin') IS NULL AS null_pooling;

-- the window is the model's length, whatever finbert.max_length says:
-- the STABLE form changes with the setting, the pinned form does not
CREATE TEMP TABLE long_text AS
  SELECT repeat('贵州茅台营收同比增长，净利润创新高。', 20) AS body;
CREATE TEMP TABLE at_default AS
  SELECT finbert_scores(body, 'cls') AS stable, finbert_scores_pinned(body, 'cls', :'cls_pin') AS pinned
    FROM long_text;
SET finbert.max_length = 16;
SELECT d.stable = finbert_scores(l.body, 'cls') AS stable_unchanged,
       d.pinned = finbert_scores_pinned(l.body, 'cls', :'cls_pin') AS pinned_unchanged
  FROM at_default d, long_text l;
-- a pinned call beside a batched STABLE call of the same text and model
-- never takes that call's batch result (its window and its pin check
-- differ): rows 2-5 of six run in one batch
CREATE TEMP TABLE long_texts AS SELECT l.body FROM long_text l, generate_series(1, 6);
SELECT count(*) AS n, bool_and(s.pinned = d.pinned) AS pinned_unchanged,
       bool_and(s.stable = d.stable) AS stable_at_default
  FROM (SELECT finbert_scores(body, 'cls') AS stable,
               finbert_scores_pinned(body, 'cls', :'cls_pin') AS pinned FROM long_texts) s,
       at_default d;
RESET finbert.max_length;

-- pinned calls are batched too (so each shard batches its own rows): the
-- plan has the Finbert Batch node, and results equal per-row evaluation
CREATE FUNCTION pg_temp.plan_has_batch(query text) RETURNS bool LANGUAGE plpgsql AS $$
DECLARE
	line text;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
		IF line LIKE '%Finbert Batch%' THEN
			RETURN true;
		END IF;
	END LOOP;
	RETURN false;
END
$$;
SELECT pg_temp.plan_has_batch(format('SELECT finbert_sentiment_pinned(body, %L, %L) FROM news', 'cls', :'cls_pin')) AS batched;
CREATE TEMP TABLE pinned_rows AS
  SELECT id, finbert_sentiment_pinned(body, 'cls', :'cls_pin') AS sentiment,
         finbert_scores_pinned(body, 'cls', :'cls_pin') AS scores,
         finbert_companies_pinned(body, 'ner', :'ner_pin') AS companies,
         finbert_persons_pinned(body, 'ner', :'ner_pin') AS persons,
         finbert_embed_pinned(body, 'encoder', 'mean', :'encoder_pin') AS embedding
    FROM news;
SET finbert.batching = off;
SELECT count(*) AS rows_equal_per_row
  FROM pinned_rows p JOIN news n USING (id)
 WHERE p.sentiment IS NOT DISTINCT FROM finbert_sentiment_pinned(n.body, 'cls', :'cls_pin')
   AND p.scores IS NOT DISTINCT FROM finbert_scores_pinned(n.body, 'cls', :'cls_pin')
   AND p.companies IS NOT DISTINCT FROM finbert_companies_pinned(n.body, 'ner', :'ner_pin')
   AND p.persons IS NOT DISTINCT FROM finbert_persons_pinned(n.body, 'ner', :'ner_pin')
   AND p.embedding IS NOT DISTINCT FROM finbert_embed_pinned(n.body, 'encoder', 'mean', :'encoder_pin');
RESET finbert.batching;

-- errors: a malformed pin, a pin of other weights, of another precision
CREATE FUNCTION pg_temp.sqlstate_of(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	state text;
BEGIN
	EXECUTE query;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
	RETURN state;
END
$$;
SELECT pg_temp.sqlstate_of(format('SELECT finbert_sentiment_pinned(%L, %L, %L)', 'x', 'cls', 'abc')) AS malformed,
       pg_temp.sqlstate_of(format('SELECT finbert_sentiment_pinned(%L, %L, %L)', 'x', 'cls', :'ner_pin')) AS other_weights,
       pg_temp.sqlstate_of(format('SELECT finbert_sentiment_pinned(%L, %L, %L)', 'x', 'cls', :'int8_pin')) AS other_precision,
       pg_temp.sqlstate_of(format('SELECT finbert_sentiment_pinned(%L, %L, %L)', 'x', 'nope', :'cls_pin')) AS unknown_model;
SELECT finbert_sentiment_pinned('x', 'cls', 'abc');
SELECT finbert_sentiment_pinned('x', 'cls', upper(:'cls_pin'));
SELECT finbert_sentiment_pinned('x', 'cls', :'cls_pin' || ':fp32');
SELECT finbert_sentiment_pinned('x', 'cls', repeat('茅', 1000));  -- quoted up to 80 bytes
SELECT finbert_sentiment_pinned('x', 'cls', :'ner_pin');
SELECT finbert_sentiment_pinned('x', 'cls', :'int8_pin');
SELECT finbert_sentiment_pinned('x', 'cls_int8', :'cls_pin');
SELECT finbert_embed_pinned('x', 'encoder', 'max', :'encoder_pin');
\set VERBOSITY terse
SELECT finbert_companies_pinned('x', 'no_such_model', :'ner_pin');
\set VERBOSITY default

-- IMMUTABLE allows a stored generated column and an expression index
CREATE TEMP TABLE headlines (id int PRIMARY KEY, title text,
	sentiment text GENERATED ALWAYS AS (finbert_sentiment_pinned(title, 'cls', :'cls_pin')) STORED);
INSERT INTO headlines (id, title) SELECT id, body FROM news;
SELECT h.id, h.sentiment IS NOT DISTINCT FROM finbert_sentiment(h.title, 'cls') AS generated_ok
  FROM headlines h ORDER BY h.id;
UPDATE headlines SET title = '证监会对多家券商开出罚单' WHERE id = 6;
SELECT sentiment = finbert_sentiment('证监会对多家券商开出罚单', 'cls') AS updated_ok
  FROM headlines WHERE id = 6;
CREATE INDEX headlines_industry ON headlines (finbert_industry_pinned(title, 'cls', :'cls_pin'));
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT id FROM headlines WHERE finbert_industry_pinned(title, 'cls', :'cls_pin') = 'positive';
SELECT array_agg(id ORDER BY id) = (SELECT array_agg(id ORDER BY id) FROM headlines
                                     WHERE finbert_industry(title, 'cls') = 'positive')
       IS NOT FALSE AS index_ok
  FROM headlines WHERE finbert_industry_pinned(title, 'cls', :'cls_pin') = 'positive';
RESET enable_seqscan;
-- the STABLE forms are refused where IMMUTABLE is required
CREATE TEMP TABLE refused (title text,
	sentiment text GENERATED ALWAYS AS (finbert_sentiment(title, 'cls')) STORED);

-- shipping: a loopback postgres_fdw server (this cluster, this database)
-- with extensions 'finbert': a pinned condition runs in the Remote SQL, a
-- STABLE one runs locally on the fetched rows.  A projection is never
-- shipped (PostgreSQL 15's postgres_fdw sends only columns in the select
-- list of a base-table scan): per-row results come from a view on the
-- shard (README, Scale-out).
CREATE EXTENSION postgres_fdw;
DO $$
BEGIN
	EXECUTE format('CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host %L, port %L, dbname %L, extensions %L, async_capable %L)',
		split_part(current_setting('unix_socket_directories'), ',', 1),
		current_setting('port'), current_database(), 'finbert', 'true');
END
$$;
CREATE USER MAPPING FOR CURRENT_USER SERVER loopback;
CREATE TABLE remote_news (id int PRIMARY KEY, body text);
INSERT INTO remote_news SELECT * FROM news;
CREATE VIEW remote_news_scored AS
	SELECT id, body, finbert_sentiment_pinned(body, 'cls', :'cls_pin') AS sentiment
	  FROM remote_news;
CREATE FOREIGN TABLE news_ft (id int, body text)
	SERVER loopback OPTIONS (table_name 'remote_news');
CREATE FOREIGN TABLE news_scored_ft (id int, body text, sentiment text)
	SERVER loopback OPTIONS (table_name 'remote_news_scored');
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM news_ft WHERE finbert_sentiment_pinned(body, 'cls', :'cls_pin') = 'negative';
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM news_ft WHERE finbert_sentiment(body, 'cls') = 'negative';
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id, finbert_sentiment_pinned(body, 'cls', :'cls_pin') FROM news_ft;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id, sentiment FROM news_scored_ft;
SELECT array_agg(id ORDER BY id) IS NOT DISTINCT FROM
       (SELECT array_agg(id ORDER BY id) FROM news WHERE finbert_sentiment(body, 'cls') = 'negative') AS same_rows
  FROM news_ft WHERE finbert_sentiment_pinned(body, 'cls', :'cls_pin') = 'negative';
SELECT f.id, f.sentiment IS NOT DISTINCT FROM finbert_sentiment(n.body, 'cls') AS same
  FROM news_scored_ft f JOIN news n USING (id) ORDER BY f.id;
-- a mismatch raised on the remote side reaches the caller with its detail
SELECT id FROM news_ft WHERE finbert_sentiment_pinned(body, 'cls', :'ner_pin') = 'negative';
SELECT pg_temp.sqlstate_of(format('SELECT id FROM news_ft WHERE finbert_sentiment_pinned(body, %L, %L) = %L', 'cls', :'ner_pin', 'negative')) AS remote_state;
DROP FOREIGN TABLE news_ft, news_scored_ft;
DROP VIEW remote_news_scored;
DROP TABLE remote_news;
DROP USER MAPPING FOR CURRENT_USER SERVER loopback;
DROP SERVER loopback;
DROP EXTENSION postgres_fdw;
SELECT finbert_unload_model('cls_int8');

--
-- cache: the embedding cache (finbert.embedding_cache), written by the
-- cache writer in finbert.database (this database here: regress.conf),
-- read by finbert_embed.  Earlier tests filled it already.
--

CREATE FUNCTION pg_temp.wait_until(cond text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE ok boolean;
BEGIN
	FOR i IN 1..3000 LOOP
		EXECUTE cond INTO ok;
		IF ok THEN RETURN true; END IF;
		PERFORM pg_sleep(0.01);
	END LOOP;
	RETURN false;
END $$;
-- everything queued so far is written (or discarded)
CREATE FUNCTION pg_temp.flushed() RETURNS boolean LANGUAGE sql AS
$$ SELECT pg_temp.wait_until('SELECT cache_pending = 0 FROM finbert_stats') $$;

SELECT pg_temp.flushed();
SELECT finbert_cache_clear() >= 0 AS cleared;
SELECT finbert_stats_reset();

-- a miss: computed, then written by the writer
SELECT array_length(finbert_embed('央行宣布降准'), 1) AS dim;
SELECT cache_hits, cache_misses FROM finbert_stats;
SELECT pg_temp.flushed();
SELECT model, model_checksum = (SELECT sha256 FROM finbert.models WHERE name = 'encoder') AS checksum_ok,
       pooling, max_length, text_hash = sha256(convert_to('央行宣布降准', 'UTF8')) AS hash_ok,
       dim, array_length(embedding, 1) AS len, created_at = last_used AS fresh
  FROM finbert.embedding_cache;
-- the writer was started on demand
SELECT cache_writes, cache_pending, cache_writer_pid IS NOT NULL AS writer_running FROM finbert_stats;

-- a hit: the same embedding, no computation
SELECT finbert_embed('央行宣布降准') = (SELECT embedding FROM finbert.embedding_cache) AS same;
SELECT cache_hits, cache_misses FROM finbert_stats;
-- what is stored is what the model computes (cache off)
SET finbert.cache = off;
SELECT finbert_embed('央行宣布降准') = (SELECT embedding FROM finbert.embedding_cache) AS stored_equals_computed;
RESET finbert.cache;

-- every part of the key matters: pooling, token limit, model
SELECT array_length(finbert_embed('央行宣布降准', 'encoder', 'cls'), 1) AS cls_dim;
SET finbert.max_length = 8;
SELECT array_length(finbert_embed('央行宣布降准'), 1) AS truncated_dim;
-- a limit beyond the model's 512 positions is capped: the key of 512, a hit
SET finbert.max_length = 8192;
SELECT finbert_embed('央行宣布降准') = (SELECT embedding FROM finbert.embedding_cache
                                         WHERE pooling = 'mean' AND max_length = 512) AS capped_hit;
RESET finbert.max_length;
SELECT array_length(finbert_embed('央行宣布降准', 'cls'), 1) AS other_model_dim;
SELECT pg_temp.flushed();
SELECT model, pooling, max_length FROM finbert.embedding_cache ORDER BY 1, 2, 3;
SELECT cache_hits, cache_misses FROM finbert_stats;

-- arrays: hits and misses mixed, in input order, NULLs kept
SELECT ord, embedding = finbert_embed(t) AS equal_to_scalar
  FROM unnest(ARRAY['央行宣布降准', NULL, '股价大涨', '央行宣布降准']) WITH ORDINALITY AS u(t, o),
       LATERAL (SELECT * FROM finbert_embed(ARRAY['央行宣布降准', NULL, '股价大涨', '央行宣布降准']) WHERE ord = o) e
 ORDER BY ord;
SELECT pg_temp.flushed();
SELECT count(*) AS rows FROM finbert.embedding_cache;

-- a read-only transaction fills the cache too (the writer has its own)
BEGIN READ ONLY;
SELECT array_length(finbert_embed('只读事务也能写缓存'), 1) AS dim;
COMMIT;
SELECT pg_temp.flushed();
SELECT count(*) AS read_only_row FROM finbert.embedding_cache
 WHERE text_hash = sha256(convert_to('只读事务也能写缓存', 'UTF8'));

-- switched off: neither looked up nor written
SELECT finbert_stats_reset();
SET finbert.cache = off;
SELECT array_length(finbert_embed('缓存关闭'), 1) AS dim;
SELECT array_length(finbert_embed('央行宣布降准'), 1) AS dim;
RESET finbert.cache;
SELECT pg_temp.flushed();
SELECT cache_hits, cache_misses, count(*) FILTER (WHERE text_hash = sha256(convert_to('缓存关闭', 'UTF8'))) AS written
  FROM finbert_stats, finbert.embedding_cache GROUP BY 1, 2;

-- finbert_cache_clear: one model, then everything; admin only
SELECT finbert_cache_clear('cls') AS cleared_cls;
SELECT finbert_cache_clear() AS cleared_all;
SELECT count(*) AS rows FROM finbert.embedding_cache;
SET ROLE finbert_user;
SELECT finbert_cache_clear();
\echo :LAST_ERROR_SQLSTATE
-- the table is internal: users cannot read it, finbert_embed uses it anyway
SELECT count(*) FROM finbert.embedding_cache;
\echo :LAST_ERROR_SQLSTATE
SELECT array_length(finbert_embed('央行宣布降准'), 1) AS user_dim;
RESET ROLE;
SELECT pg_temp.flushed();

-- LRU eviction beyond finbert.cache_max_rows (3 here)
SELECT finbert_cache_clear();
ALTER SYSTEM SET finbert.cache_max_rows = 3;
SELECT pg_reload_conf();
SELECT pg_sleep(0.3);	-- a backend applies a reload between statements
SELECT current_setting('finbert.cache_max_rows') AS cache_max_rows;
SELECT finbert_stats_reset();
SELECT count(finbert_embed(t)) FROM unnest(ARRAY['甲', '乙', '丙']) t;
SELECT pg_temp.flushed();
-- age the rows: 甲 oldest, then 乙, then 丙
UPDATE finbert.embedding_cache c SET last_used = now() - interval '1 hour' * (4 - u.o)
  FROM unnest(ARRAY['甲', '乙', '丙']) WITH ORDINALITY u(t, o)
 WHERE c.text_hash = sha256(convert_to(u.t, 'UTF8'));
-- a hit on the oldest refreshes it (touch), so 乙 is now the least recently used
SELECT array_length(finbert_embed('甲'), 1) AS hit;
SELECT pg_temp.flushed();
SELECT array_length(finbert_embed('丁'), 1) AS miss;
SELECT pg_temp.flushed();
SELECT u.t FROM finbert.embedding_cache c
  JOIN unnest(ARRAY['甲', '乙', '丙', '丁']) u(t) ON c.text_hash = sha256(convert_to(u.t, 'UTF8'))
 ORDER BY 1;
SELECT cache_hits, cache_misses, cache_writes, cache_evictions FROM finbert_stats;
ALTER SYSTEM RESET finbert.cache_max_rows;
SELECT pg_reload_conf();

-- the precision is part of the key: the same name and weights registered
-- again as int8 neither hit the fp32 rows nor replace them
SELECT pg_temp.flushed();
SELECT finbert_cache_clear() >= 0 AS cleared;
SELECT finbert_stats_reset();
SELECT finbert_embed('央行宣布降准') AS emb \gset fp32_
SELECT pg_temp.flushed();
SELECT finbert_load_model('encoder', 'encoder', NULL, 'int8');
SELECT finbert_embed('央行宣布降准') AS emb \gset int8_
SELECT cache_hits, cache_misses FROM finbert_stats;
SELECT pg_temp.flushed();
SELECT model, precision, pooling, max_length,
       model_checksum = (SELECT sha256 FROM finbert.models WHERE name = 'encoder') AS checksum_ok,
       embedding = :'fp32_emb'::real[] AS is_fp32, embedding = :'int8_emb'::real[] AS is_int8
  FROM finbert.embedding_cache ORDER BY precision;
-- int8 and fp32 embeddings of the text are close but not the same
-- (measured on this fixture: cosine 0.9999, components within 0.007)
SELECT max(abs(a - b)) > 1e-4 AS differ, sum(a * b) > 0.999 AS cosine_close
  FROM unnest(:'fp32_emb'::real[], :'int8_emb'::real[]) u(a, b);
-- each precision hits its own row
SELECT finbert_embed('央行宣布降准') = :'int8_emb'::real[] AS int8_hit;
SELECT finbert_load_model('encoder', 'encoder');
SELECT finbert_embed('央行宣布降准') = :'fp32_emb'::real[] AS fp32_hit;
SELECT cache_hits, cache_misses FROM finbert_stats;
SELECT pg_temp.flushed();
SELECT finbert_cache_clear() AS cleared;

-- other databases do not use the cache (the writer serves finbert.database)
CREATE DATABASE regress_finbert_other ENCODING 'UTF8' TEMPLATE template0;
\c regress_finbert_other
CREATE EXTENSION finbert;
SELECT finbert_load_model('encoder', 'encoder');
SELECT finbert_stats_reset();
SELECT array_length(finbert_embed('央行宣布降准', 'encoder'), 1) AS dim;
SELECT cache_hits, cache_misses, cache_pending FROM finbert_stats;
SELECT count(*) AS rows FROM finbert.embedding_cache;
\c contrib_regression
DROP DATABASE regress_finbert_other;

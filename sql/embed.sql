--
-- embeddings: finbert_embed
--
CREATE TEMP TABLE news (id int PRIMARY KEY, body text);
INSERT INTO news VALUES
 (1, '央行宣布降准0.5个百分点'),
 (2, '央行宣布降准0.5个百分点，释放长期资金约1万亿元'),
 (3, 'Apple Inc. reported record quarterly revenue.'),
 (4, ''),
 (5, NULL);

CREATE FUNCTION pg_temp.norm(v real[]) RETURNS float8
  LANGUAGE sql IMMUTABLE AS $$ SELECT sqrt(sum(x::float8 * x)) FROM unnest(v) x $$;
CREATE FUNCTION pg_temp.dot(a real[], b real[]) RETURNS float8
  LANGUAGE sql IMMUTABLE AS
  $$ SELECT sum(x::float8 * y) FROM unnest(a, b) AS u(x, y) $$;

-- hidden size of the encoder fixture, unit length (L2-normalised)
SELECT id, array_length(finbert_embed(body), 1) AS dim,
       round(pg_temp.norm(finbert_embed(body))::numeric, 4) AS norm
  FROM news ORDER BY id;

-- the first values, rounded
SELECT id, (SELECT array_agg(round(x::numeric, 4)) FROM unnest((finbert_embed(body))[1:4]) x) AS head
  FROM news WHERE id IN (1, 3) ORDER BY id;

-- default model and pooling: finbert.embed_model and 'mean'
SELECT finbert_embed(body) = finbert_embed(body, 'encoder') AS default_model,
       finbert_embed(body) = finbert_embed(body, 'encoder', 'mean') AS default_mean,
       finbert_embed(body) = finbert_embed(body, 'encoder', 'MEAN') AS case_insensitive
  FROM news WHERE id = 1;

-- pooling variants differ from each other and are each unit length
SELECT p AS pooling, array_length(finbert_embed(body, 'encoder', p), 1) AS dim,
       round(pg_temp.norm(finbert_embed(body, 'encoder', p))::numeric, 4) AS norm,
       finbert_embed(body, 'encoder', p) <> finbert_embed(body, 'encoder', 'mean') OR p = 'mean' AS distinct_from_mean
  FROM news, unnest(ARRAY['mean', 'cls', 'pooler']) p WHERE id = 1 ORDER BY p;

-- deterministic; cosine similarity of a text with itself is 1
SELECT finbert_embed(body) = finbert_embed(body) AS stable,
       round(pg_temp.dot(finbert_embed(body), finbert_embed(body))::numeric, 4) AS self_cosine
  FROM news WHERE id = 2;
SELECT round(pg_temp.dot(a.e, b.e)::numeric, 4) BETWEEN -1 AND 1 AS cosine_in_range
  FROM (SELECT finbert_embed(body) e FROM news WHERE id = 1) a,
       (SELECT finbert_embed(body) e FROM news WHERE id = 3) b;

-- a classification model's encoder also embeds
SELECT array_length(finbert_embed('股价大涨', 'cls', 'cls'), 1) AS dim;

-- long text is truncated like classification
SELECT finbert_embed(repeat('新能源车补贴退坡', 200)) = finbert_embed(left(repeat('新能源车补贴退坡', 200), 510)) AS truncated;

SELECT finbert_embed(NULL) IS NULL AS a, finbert_embed('x', NULL) IS NULL AS b,
       finbert_embed('x', 'encoder', NULL) IS NULL AS c;

-- finbert_cosine: similarity without pgvector
SELECT round(finbert_cosine(ARRAY[1, 0, 0]::real[], ARRAY[1, 1, 0]::real[])::numeric, 6) AS cos45;
SELECT finbert_cosine(ARRAY[1, 2]::real[], ARRAY[-1, -2]::real[]) AS opposite;
SELECT finbert_cosine(ARRAY[0, 0]::real[], ARRAY[1, 2]::real[]) AS zero_is_null;
SELECT finbert_cosine(ARRAY[1, 2]::real[], ARRAY[1, 2, 3]::real[]);
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_cosine(ARRAY[1, NULL]::real[], ARRAY[1, 2]::real[]);
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_cosine(ARRAY[[1, 2]]::real[], ARRAY[1, 2]::real[]);
\echo :LAST_ERROR_SQLSTATE
-- an embedding with itself
SELECT round(finbert_cosine(finbert_embed('央行降准', 'encoder'), finbert_embed('央行降准', 'encoder'))::numeric, 5) AS self;

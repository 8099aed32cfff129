--
-- array forms: one request per array, results in input order, NULL
-- elements stay NULL, equal to the scalar forms
--
CREATE TEMP TABLE news (id int PRIMARY KEY, body text);
INSERT INTO news VALUES
 (1, '浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。'),
 (2, '亚马逊在华一审败诉 　被判不得使用AWS名称并赔偿7646万元'),
 (3, NULL),
 (4, '贵州茅台(600519.SH)2023年营收同比增长18.04%，净利润747.34亿元。'),
 (5, ''),
 (6, '宁德时代CATL与Tesla签署长期供货协议，股价大涨5%'),
 (7, 'Apple Inc. reported record quarterly revenue of $123.9 billion.'),
 (8, repeat('股市大涨', 300));
CREATE TEMP TABLE arr AS SELECT array_agg(body ORDER BY id) AS a FROM news;

-- batches smaller than the array exercise the chunking
SET finbert.batch_size = 3;

SELECT finbert_sentiment(a) AS sentiments FROM arr;
SELECT finbert_sentiment(a) = (SELECT array_agg(finbert_sentiment(body) ORDER BY id) FROM news) AS sentiment_eq,
       finbert_sentiment(a, 'cls_f16') = (SELECT array_agg(finbert_sentiment(body, 'cls_f16') ORDER BY id) FROM news) AS sentiment_model_eq,
       finbert_industry(a) = (SELECT array_agg(finbert_industry(body) ORDER BY id) FROM news) AS industry_eq,
       finbert_industry(a, 'cls') = (SELECT array_agg(finbert_industry(body, 'cls') ORDER BY id) FROM news) AS industry_model_eq,
       finbert_type(a) = (SELECT array_agg(finbert_type(body) ORDER BY id) FROM news) AS type_eq,
       finbert_type(a, 'multilabel') = (SELECT array_agg(finbert_type(body, 'multilabel') ORDER BY id) FROM news) AS type_model_eq,
       finbert_classify(a, 'cls') = (SELECT array_agg(finbert_classify(body, 'cls') ORDER BY id) FROM news) AS classify_eq
  FROM arr;

-- scores: equal up to float rounding across batch compositions
SELECT bool_and(s.sa IS NOT DISTINCT FROM s.ss OR
                (SELECT max(abs(x.value::float8 - y.value::float8))
                   FROM jsonb_each_text(s.sa) x JOIN jsonb_each_text(s.ss) y USING (key)) < 1e-5) AS scores_eq,
       count(*) AS n, count(s.sa) AS non_null
  FROM arr, unnest(finbert_scores(arr.a, 'cls')) WITH ORDINALITY AS u(sa, i)
  JOIN LATERAL (SELECT u.sa, finbert_scores(body, 'cls') AS ss FROM news WHERE id = u.i) s ON true;

-- entities: ord is the position in the array
SELECT count(*) AS n,
       count(*) FILTER (WHERE (ord, entity, label, start_pos, end_pos) NOT IN
           (SELECT n.id, e.entity, e.label, e.start_pos, e.end_pos
              FROM news n, finbert_entities(n.body) e)) AS not_in_scalar
  FROM arr, finbert_entities(arr.a);
SELECT (SELECT count(*) FROM arr, finbert_entities(arr.a, 'ner'))
     = (SELECT count(*) FROM news n, finbert_entities(n.body)) AS same_count;
SELECT ord, companies FROM arr, finbert_companies(arr.a) ORDER BY ord;
SELECT bool_and(c.companies IS NOT DISTINCT FROM finbert_companies(n.body)) AS companies_eq
  FROM arr, finbert_companies(arr.a) c JOIN news n ON n.id = c.ord;
SELECT bool_and(p.persons IS NOT DISTINCT FROM finbert_persons(n.body)) AS persons_eq
  FROM arr, finbert_persons(arr.a, 'ner') p JOIN news n ON n.id = p.ord;

-- embeddings
SELECT ord, array_length(embedding, 1) AS dim FROM arr, finbert_embed(arr.a) ORDER BY ord;
SELECT bool_and(e.embedding IS NOT DISTINCT FROM finbert_embed(n.body) OR
                (SELECT max(abs(x - y)) FROM unnest(e.embedding, finbert_embed(n.body)) u(x, y)) < 1e-5) AS embed_eq,
       bool_and(c.embedding IS NOT DISTINCT FROM finbert_embed(n.body, 'encoder', 'cls') OR
                (SELECT max(abs(x - y)) FROM unnest(c.embedding, finbert_embed(n.body, 'encoder', 'cls')) u(x, y)) < 1e-5) AS embed_cls_eq
  FROM arr, finbert_embed(arr.a, 'encoder') e
  JOIN finbert_embed((SELECT a FROM arr), 'encoder', 'cls') c USING (ord)
  JOIN news n ON n.id = e.ord;

-- tokens
SELECT bool_and(t.tokens IS NOT DISTINCT FROM finbert_tokenize(n.body)) AS tokenize_eq,
       count(*) AS n
  FROM arr, finbert_tokenize(arr.a) t JOIN news n ON n.id = t.ord;
SELECT ord, tokens FROM finbert_tokenize(ARRAY['央行降准', NULL, 'UNwantéd'], 'encoder') ORDER BY ord;

-- empty arrays, all-NULL arrays, NULL array
SELECT finbert_sentiment('{}'::text[]) AS empty, finbert_scores('{NULL,NULL}'::text[], 'cls') AS nulls,
       finbert_sentiment(NULL::text[]) IS NULL AS null_array;
SELECT count(*) FROM finbert_entities('{}'::text[]);
SELECT * FROM finbert_embed(ARRAY[NULL]::text[]);
-- arrays with another lower bound: results are 1-based
SELECT finbert_sentiment('[0:1]={央行降准,股价大涨}'::text[]) = ARRAY[finbert_sentiment('央行降准'), finbert_sentiment('股价大涨')] AS rebased;
-- multi-dimensional arrays are refused
SELECT finbert_sentiment('{{a,b},{c,d}}'::text[]);
\echo :LAST_ERROR_SQLSTATE
RESET finbert.batch_size;

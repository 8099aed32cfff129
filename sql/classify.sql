--
-- classification: finbert_sentiment / industry / type / classify / scores
--
CREATE TEMP TABLE news (id int PRIMARY KEY, body text);
INSERT INTO news VALUES
 (1, '浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。'),
 (2, '亚马逊在华一审败诉 　被判不得使用AWS名称并赔偿7646万元'),
 (3, '贵州茅台(600519.SH)2023年营收同比增长18.04%，净利润747.34亿元。'),
 (4, '宁德时代CATL与Tesla签署长期供货协议，股价大涨5%'),
 (5, 'Apple Inc. reported record quarterly revenue of $123.9 billion.'),
 (6, ''),
 (7, NULL);

-- labels come from the model's id2label
SELECT id, finbert_sentiment(body) AS sentiment FROM news ORDER BY id;
SELECT id, finbert_sentiment(body, 'cls') IS NOT DISTINCT FROM finbert_sentiment(body) AS same
  FROM news ORDER BY id;
SELECT id, finbert_classify(body, 'cls') IS NOT DISTINCT FROM finbert_sentiment(body) AS same
  FROM news ORDER BY id;

-- scores: softmax probabilities over every label, summing to 1
SELECT id, s.key AS label, round(s.value::numeric, 4) AS p
  FROM news, jsonb_each_text(finbert_scores(body, 'cls')) s
 WHERE id IN (1, 6) ORDER BY id, label;
SELECT id, round(sum(s.value::numeric), 4) AS total, count(*) AS labels
  FROM news, jsonb_each_text(finbert_scores(body, 'cls')) s
 GROUP BY id ORDER BY id;

-- the top label is the label of the highest score
SELECT id,
       finbert_classify(body, 'cls') =
       (SELECT key FROM jsonb_each_text(finbert_scores(body, 'cls'))
         ORDER BY value::float8 DESC LIMIT 1) AS top_is_argmax
  FROM news WHERE body IS NOT NULL ORDER BY id;

-- deterministic: the same text gives the same scores
SELECT finbert_scores(body, 'cls') = finbert_scores(body, 'cls') AS stable
  FROM news WHERE id = 3;

-- fp16 weights of the same model: close to the fp32 scores
SELECT id,
       (SELECT max(abs(a.value::float8 - b.value::float8))
          FROM jsonb_each_text(finbert_scores(body, 'cls')) a
          JOIN jsonb_each_text(finbert_scores(body, 'cls_f16')) b USING (key)) < 0.01 AS close
  FROM news WHERE body IS NOT NULL ORDER BY id;

-- multi-label model: independent sigmoid scores in [0, 1]
SELECT id, finbert_type(body) AS top_type,
       (SELECT count(*) FROM jsonb_each_text(finbert_scores(body, 'multilabel'))) AS labels,
       (SELECT bool_and(value::float8 BETWEEN 0 AND 1)
          FROM jsonb_each_text(finbert_scores(body, 'multilabel'))) AS in_range
  FROM news ORDER BY id;
SELECT id, s.key AS label, round(s.value::numeric, 4) AS p
  FROM news, jsonb_each_text(finbert_scores(body, 'multilabel')) s
 WHERE id = 1 ORDER BY label;

-- industry uses finbert.industry_model (cls_f16 in this suite)
SELECT id, finbert_industry(body) IS NOT DISTINCT FROM finbert_classify(body, 'cls_f16') AS same
  FROM news ORDER BY id;

-- the model named by the setting can change within a session
SET finbert.sentiment_model = 'cls_f16';
SELECT finbert_sentiment(body) = finbert_classify(body, 'cls_f16') AS follows_setting
  FROM news WHERE id = 1;
RESET finbert.sentiment_model;

-- long text: truncated to finbert.max_length tokens (one CJK character is
-- one token; [CLS] and [SEP] take two), so only the first 510 count
SELECT finbert_scores(repeat('股市大涨', 1000), 'cls')
     = finbert_scores(left(repeat('股市大涨', 1000), 510), 'cls') AS truncated_at_510;
SELECT finbert_scores(repeat('股市大涨', 1000), 'cls')
     <> finbert_scores(left(repeat('股市大涨', 1000), 509), 'cls') AS differs_at_509;
SET finbert.max_length = 16;
SELECT finbert_scores(repeat('股市大涨', 10), 'cls')
     = finbert_scores(left(repeat('股市大涨', 10), 14), 'cls') AS truncated_at_14;
-- beyond the model's 512 positions the setting is capped by the model
SET finbert.max_length = 8192;
SELECT finbert_scores(repeat('股市大涨', 1000), 'cls')
     = finbert_scores(left(repeat('股市大涨', 1000), 510), 'cls') AS capped_at_512;
SELECT count(*) > 0 AS entities_capped FROM finbert_entities(repeat('宁德时代签约。', 200), 'ner');
RESET finbert.max_length;

-- mixed Chinese / English / digits / full-width characters
SELECT finbert_sentiment('宁德时代CATL与Tesla签署协议，ＲＯＥ提升至２０％') IS NOT NULL AS ok;

-- the thread count changes nothing beyond float rounding (the GEMM
-- partition differs, so the last bits may; README "Determinism")
SET finbert.threads = 2;
SELECT finbert_scores(body, 'cls') FROM news WHERE id = 3 \gset t2_
RESET finbert.threads;
SELECT bool_and(abs((s.scores ->> k)::float8 - (:'t2_finbert_scores'::jsonb ->> k)::float8) < 1e-6)
       AS same_with_2_threads
  FROM (SELECT finbert_scores(body, 'cls') AS scores FROM news WHERE id = 3) s,
       jsonb_object_keys(s.scores) AS k;

-- NULL in, NULL out (STRICT)
SELECT finbert_sentiment(NULL) IS NULL AS a, finbert_sentiment('x', NULL) IS NULL AS b,
       finbert_scores(NULL, 'cls') IS NULL AS c, finbert_classify('x', NULL) IS NULL AS d;

-- int8 precision: the same weights registered a second time with int8
-- linear layers ("precision" is quoted in named notation: it is a keyword)
SELECT finbert_load_model('cls_int8', 'cls', 'sentiment', "precision" => 'int8');
SELECT name, path, precision,
       sha256 = (SELECT sha256 FROM finbert_models WHERE name = 'cls') AS same_weights
  FROM finbert_models WHERE name IN ('cls', 'cls_int8') ORDER BY name;
CREATE FUNCTION pg_temp.maxdiff(a jsonb, b jsonb) RETURNS float8 LANGUAGE sql AS
$$ SELECT max(abs(x.value::float8 - y.value::float8))
     FROM jsonb_each_text(a) x JOIN jsonb_each_text(b) y USING (key) $$;
-- the same labels as fp32, scalar and array forms
SELECT id, finbert_classify(body, 'cls_int8') IS NOT DISTINCT FROM finbert_classify(body, 'cls') AS same_label
  FROM news ORDER BY id;
SELECT finbert_classify(ARRAY(SELECT body FROM news ORDER BY id), 'cls_int8')
     = finbert_classify(ARRAY(SELECT body FROM news ORDER BY id), 'cls') AS same_labels;
-- probabilities within 0.02 of fp32 (0.001 to 0.002 measured on these
-- texts), yet different beyond rounding: the layers are really quantised
SELECT id, pg_temp.maxdiff(finbert_scores(body, 'cls_int8'), finbert_scores(body, 'cls')) < 0.02 AS close,
       pg_temp.maxdiff(finbert_scores(body, 'cls_int8'), finbert_scores(body, 'cls')) > 1e-4 AS quantised
  FROM news WHERE body IS NOT NULL ORDER BY id;

-- re-registering with another precision is picked up by the next statement
-- of this session (and by the worker): fp32 scores, then int8 again
SELECT finbert_scores(body, 'cls_int8') AS scores FROM news WHERE id = 3 \gset int8_
SELECT finbert_load_model('cls_int8', 'cls', 'sentiment', 'fp32');
SELECT precision FROM finbert_models WHERE name = 'cls_int8';
SELECT pg_temp.maxdiff(finbert_scores(body, 'cls_int8'), finbert_scores(body, 'cls')) < 1e-6 AS now_fp32
  FROM news WHERE id = 3;
SELECT finbert_load_model('cls_int8', 'cls', 'sentiment', 'int8');
SELECT pg_temp.maxdiff(finbert_scores(body, 'cls_int8'), :'int8_scores'::jsonb) < 1e-6 AS int8_again,
       pg_temp.maxdiff(finbert_scores(body, 'cls_int8'), finbert_scores(body, 'cls')) > 1e-4 AS quantised
  FROM news WHERE id = 3;
-- a model opened inline reports the precision it was opened with; a
-- precision changed in the catalog behind this backend's back (as by
-- finbert_load_model in another session) reopens it at the next statement
SET finbert.execution = inline;
SELECT finbert_classify('央行降准', 'cls_int8') IS NOT NULL AS ok;
SELECT name, precision FROM finbert_loaded_models() WHERE name = 'cls_int8';
UPDATE finbert.models SET precision = 'fp32' WHERE name = 'cls_int8';
SELECT finbert_classify('央行降准', 'cls_int8') IS NOT NULL AS ok;
SELECT name, precision FROM finbert_loaded_models() WHERE name = 'cls_int8';
RESET finbert.execution;
SELECT finbert_unload_model('cls_int8');

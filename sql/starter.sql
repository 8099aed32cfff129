--
-- starter: the models shipped in models/ (trained by tools/train from the
-- public datasets), registered under the names the finbert.*_model
-- settings point at by default: realistic outputs on real headlines.
--
-- (the suite's configuration points the settings at the fixtures: go back
-- to the compiled-in defaults)
SELECT name, set_config(name, boot_val, false) AS value
  FROM pg_settings WHERE name ~ '^finbert\.(sentiment|ner|type|industry|embed)_model$'
 ORDER BY name;
SELECT finbert_load_model(m, m)
  FROM unnest(ARRAY['finbert-sentiment', 'finbert-ner', 'finbert-type',
                    'finbert-industry', 'finbert-base']) AS m;
SELECT name, task, architecture, layers, hidden_size, precision
  FROM finbert_models WHERE name LIKE 'finbert-%' ORDER BY name;

CREATE TEMP TABLE headlines (id int PRIMARY KEY, body text);
INSERT INTO headlines VALUES
 (1, '贵州茅台发布年报，净利润同比增长19%，超出市场预期。'),
 (2, '受疫情影响，多家航空公司一季度亏损扩大，股价大跌。'),
 (3, '中国人民银行宣布下调金融机构存款准备金率0.5个百分点。'),
 (4, '平安银行董事长谢永林表示，公司将继续推进零售转型。'),
 (5, '今天大盘震荡，成交量与昨日持平。'),
 (6, '华夏银行行长李民吉在发布会上介绍了上半年经营情况。');

-- the task functions work with no model argument: the defaults are these models
SELECT id, finbert_sentiment(body) AS sentiment, finbert_type(body) AS type,
       finbert_industry(body) AS industry
  FROM headlines ORDER BY id;

-- entities with exact positions (1-based, round-trip through substr)
SELECT h.id, e.entity, e.label, e.start_pos, e.end_pos,
       substr(h.body, e.start_pos, e.end_pos - e.start_pos + 1) = e.entity AS substr_ok
  FROM headlines h, finbert_entities(h.body) e
 ORDER BY h.id, e.start_pos;
SELECT id, finbert_companies(body) AS companies, finbert_persons(body) AS persons
  FROM headlines ORDER BY id;

-- embeddings from the shipped encoder: 256 dimensions, unit length
SELECT array_length(finbert_embed(body), 1) AS dim,
       round(sqrt((SELECT sum(v * v) FROM unnest(finbert_embed(body)) v))::numeric, 4) AS norm
  FROM headlines WHERE id = 1;

-- the same models in int8: the same labels on these headlines
SELECT finbert_load_model('finbert-sentiment-int8', 'finbert-sentiment', NULL, 'int8');
SELECT count(*) AS headlines,
       count(*) FILTER (WHERE finbert_sentiment(body) = finbert_classify(body, 'finbert-sentiment-int8')) AS same_label
  FROM headlines;

SELECT finbert_unload_model(m)
  FROM unnest(ARRAY['finbert-sentiment', 'finbert-ner', 'finbert-type', 'finbert-industry',
                    'finbert-base', 'finbert-sentiment-int8']) AS m;

-- make demo: the headline queries of finbert on sample financial news.
\pset footer off
SET client_min_messages = warning;

CREATE EXTENSION finbert;

\o /dev/null
SELECT * FROM finbert_load_models();   -- every model directory under finbert.model_dir, by name
\o

\echo
\echo '== registered models (view finbert_models)'
SELECT name, task, architecture, layers, hidden_size, weight_dtype,
       array_to_string(labels[1:6], ',') || CASE WHEN cardinality(labels) > 6 THEN ',…' ELSE '' END AS labels
  FROM finbert_models ORDER BY name;

CREATE TABLE news (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO news VALUES
 (1, '贵州茅台发布2023年年报，营业收入同比增长18%，净利润创历史新高。'),
 (2, '宁德时代与特斯拉签署长期供货协议，公司股价盘中大涨7%。'),
 (3, '受原油价格暴跌拖累，中国石油一季度净利润同比下降45%。'),
 (4, '中国人民银行宣布下调存款准备金率0.5个百分点，释放长期资金约1万亿元。'),
 (5, '比亚迪董事长王传福表示，公司将加大海外市场投入。'),
 (6, '招商银行不良贷款率环比上升，资产质量承压。'),
 (7, '恒瑞医药创新药获批上市，研发投入持续加大。'),
 (8, '新能源汽车购置补贴将逐步退坡，车企面临价格压力。'),
 (9, '中国平安董事长马明哲：保险业务保持稳健增长。'),
 (10, '万科债务展期方案获债权人通过，地产板块集体反弹。');

\echo
\echo '== SELECT id, finbert_sentiment(body) FROM news'
SELECT id, finbert_sentiment(body) AS sentiment, body FROM news ORDER BY id;

\echo
\echo '== SELECT finbert_industry(body), count(*) FROM news GROUP BY 1'
SELECT finbert_industry(body) AS industry, count(*) FROM news GROUP BY 1 ORDER BY 2 DESC, 1;

\echo
\echo '== SELECT id, finbert_type(body) FROM news'
SELECT id, finbert_type(body) AS news_type, left(body, 24) AS body FROM news ORDER BY id;

\echo
\echo '== SELECT n.id, e.* FROM news n, finbert_entities(n.body) e'
SELECT n.id, e.entity, e.label, e.start_pos, e.end_pos, round(e.score::numeric, 3) AS score
  FROM news n, finbert_entities(n.body) e
 ORDER BY n.id, e.start_pos
 LIMIT 30;

\echo
\echo '== finbert_companies / finbert_persons'
SELECT id, finbert_companies(body) AS companies, finbert_persons(body) AS persons
  FROM news ORDER BY id;

\echo
\echo '== nearest news to ''新能源车补贴退坡'' by finbert_embed (cosine; embeddings are unit length)'
SELECT id, round(finbert_cosine(finbert_embed(body), finbert_embed('新能源车补贴退坡'))::numeric, 4) AS cosine, body
  FROM news
 ORDER BY cosine DESC
 LIMIT 3;

\echo
\echo '== finbert_scores(body, ''finbert-sentiment'') and finbert_tokenize'
SELECT finbert_scores(body, 'finbert-sentiment') AS scores, finbert_tokenize(body) AS tokens
  FROM news WHERE id = 2;

\echo
\echo '== finbert_stats'
SELECT requests, texts, batches, round(mean_batch_size::numeric, 2) AS mean_batch_size,
       tokens, round(tokens_per_second::numeric) AS tokens_per_second, errors
  FROM finbert_stats;

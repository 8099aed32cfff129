--
-- entities: finbert_entities / finbert_companies / finbert_persons
--
CREATE TEMP TABLE news (id int PRIMARY KEY, body text);
INSERT INTO news VALUES
 (1, '浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。'),
 (2, '亚马逊在华一审败诉 　被判不得使用AWS名称并赔偿7646万元'),
 (3, '贵州茅台(600519.SH)2023年营收同比增长18.04%，净利润747.34亿元。'),
 (4, '宁德时代CATL与Tesla签署长期供货协议，股价大涨5%'),
 (5, 'Apple Inc. reported record quarterly revenue of $123.9 billion.'),
 (6, 'résumé naïve Ｆｕｌｌｗｉｄｔｈ 中国平安：马明哲称保险业务稳健增长'),
 (7, ''),
 (8, NULL);

-- the fixture model has random weights: the spans are arbitrary but fixed
SELECT n.id, e.entity, e.label, e.start_pos, e.end_pos, round(e.score::numeric, 4) AS score
  FROM news n, finbert_entities(n.body) e
 ORDER BY n.id, e.start_pos;

-- invariants: positions round-trip through substr, labels are entity types
-- without the B-/I- prefix, scores are probabilities, spans are ordered
-- and do not overlap
SELECT count(*) AS entities,
       count(*) FILTER (WHERE substr(n.body, e.start_pos, e.end_pos - e.start_pos + 1) <> e.entity) AS bad_substr,
       count(*) FILTER (WHERE e.label NOT IN ('company', 'person')) AS bad_label,
       count(*) FILTER (WHERE e.score < 0 OR e.score > 1) AS bad_score,
       count(*) FILTER (WHERE e.start_pos < 1 OR e.end_pos < e.start_pos
                           OR e.end_pos > char_length(n.body)) AS bad_range
  FROM news n, finbert_entities(n.body) e;
SELECT count(*) AS overlapping
  FROM (SELECT n.id, e.start_pos, e.end_pos,
               lag(e.end_pos) OVER (PARTITION BY n.id ORDER BY e.start_pos) AS prev_end
          FROM news n, finbert_entities(n.body) e) s
 WHERE s.start_pos <= s.prev_end;

-- an explicit model gives the same result as finbert.ner_model
SELECT n.id,
       (SELECT array_agg(e ORDER BY e.start_pos) FROM finbert_entities(n.body, 'ner') e)
       IS NOT DISTINCT FROM
       (SELECT array_agg(e ORDER BY e.start_pos) FROM finbert_entities(n.body) e) AS same
  FROM news n ORDER BY n.id;

-- companies / persons: the distinct entity texts of that type, in order of
-- first mention
SELECT n.id, finbert_companies(n.body) AS companies, finbert_persons(n.body) AS persons
  FROM news n ORDER BY n.id;
SELECT n.id,
       finbert_companies(n.body) IS NOT DISTINCT FROM
       (SELECT coalesce(array_agg(entity ORDER BY first), '{}')
          FROM (SELECT entity, min(start_pos) AS first
                  FROM finbert_entities(n.body) WHERE label = 'company' GROUP BY entity) c)
       AS companies_ok,
       finbert_persons(n.body, 'ner') IS NOT DISTINCT FROM
       (SELECT coalesce(array_agg(entity ORDER BY first), '{}')
          FROM (SELECT entity, min(start_pos) AS first
                  FROM finbert_entities(n.body) WHERE label = 'person' GROUP BY entity) c)
       AS persons_ok
  FROM news n WHERE n.body IS NOT NULL ORDER BY n.id;

-- long text: the whole text is covered by overlapping windows (512 tokens
-- each); every span still round-trips and entities appear past the first
-- window
CREATE TEMP TABLE long_news AS
  SELECT string_agg(body, '。' ORDER BY id, g) AS body
    FROM news, generate_series(1, 20) g WHERE body <> '';
SELECT char_length(body) > 1500 AS long FROM long_news;
SELECT count(*) > 0 AS has_entities,
       count(*) FILTER (WHERE substr(l.body, e.start_pos, e.end_pos - e.start_pos + 1) <> e.entity) AS bad_substr,
       max(e.end_pos) > 600 AS beyond_first_window
  FROM long_news l, finbert_entities(l.body) e;

-- empty text: no entities; NULL: no rows
SELECT count(*) FROM finbert_entities('');
SELECT count(*) FROM finbert_entities(NULL);
SELECT finbert_companies(NULL) IS NULL AS a, finbert_persons('x', NULL) IS NULL AS b;

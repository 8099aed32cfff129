--
-- memory: 1,000 rows through one backend leave resident memory flat
-- (engine memory is malloc'd, so this reads the backend's RssAnon: its
-- private memory, where a leak of malloc or palloc shows; VmRSS also counts
-- the shared buffers and model file pages a backend touches for the first
-- time, which grew past 2 MB once in a full make test)
--
CREATE FUNCTION pg_temp.rss_kb() RETURNS bigint LANGUAGE sql AS $$
  SELECT substring(pg_read_file('/proc/' || pg_backend_pid() || '/status')
                   FROM 'RssAnon:\s+(\d+) kB')::bigint $$;
CREATE TEMP TABLE news AS
  SELECT g AS id, '第' || g || '条：宁德时代与贵州茅台股价' || (g % 7) || '日大涨，央行宣布降准。' AS body
    FROM generate_series(1, 1000) g;
-- warm up: models opened, arenas grown
-- (400 rows: batches of the Finbert Batch node reach their full 256 rows)
SELECT count(finbert_sentiment(body)), count(finbert_embed(body)) FROM news WHERE id <= 400;
SELECT count(*) FROM news n, finbert_entities(n.body) WHERE id <= 400;
SELECT count(finbert_scores(body, 'cls')), count(finbert_tokenize(body)) FROM news WHERE id <= 400;
CREATE TEMP TABLE rss AS SELECT 'before' AS at, pg_temp.rss_kb() AS kb;
SELECT count(finbert_sentiment(body)), count(finbert_embed(body)) FROM news;
SELECT count(*) >= 0 FROM news n, finbert_entities(n.body);
SELECT count(finbert_scores(body, 'cls')), count(finbert_tokenize(body)) FROM news;
INSERT INTO rss SELECT 'after', pg_temp.rss_kb();
-- growth over 4,000 more calls stays under 2 MB (a leak of 1 KB per call
-- would show 4 MB)
SELECT (SELECT kb FROM rss WHERE at = 'after') - (SELECT kb FROM rss WHERE at = 'before') < 2048 AS flat;

--
-- cli_parity: the SQL functions give the same results as finbert-cli for
-- the same inputs (test/regress/parity.txt; the CLI outputs are written by
-- test/regress/prepare.sh into the directory named by regress.cli_dir)
--
CREATE FUNCTION pg_temp.lines(f text) RETURNS TABLE (n bigint, line text)
LANGUAGE sql AS $$
  SELECT u.n, u.line
    FROM unnest(string_to_array(rtrim(pg_read_file(current_setting('regress.cli_dir') || '/' || f), E'\n'), E'\n'))
         WITH ORDINALITY AS u(line, n) $$;
CREATE TEMP TABLE input AS SELECT n, line AS body FROM pg_temp.lines('input.txt');
CREATE TEMP TABLE cli AS
  SELECT i.n, i.body, c.line::jsonb AS cls, m.line::jsonb AS multilabel,
         e.line::jsonb AS ner, em.line::jsonb AS emb_mean, ec.line::jsonb AS emb_cls,
         t.line::jsonb AS tok
    FROM input i
    LEFT JOIN pg_temp.lines('cls.jsonl') c USING (n)
    LEFT JOIN pg_temp.lines('multilabel.jsonl') m USING (n)
    LEFT JOIN pg_temp.lines('ner.jsonl') e USING (n)
    LEFT JOIN pg_temp.lines('encoder_mean.jsonl') em USING (n)
    LEFT JOIN pg_temp.lines('encoder_cls.jsonl') ec USING (n)
    LEFT JOIN pg_temp.lines('tokenize.jsonl') t USING (n);
SELECT count(*) AS inputs, count(*) FILTER (WHERE body = '') AS empty_lines FROM cli;

-- classification: same top label, scores within 1e-5
SELECT count(*) AS texts,
       count(*) FILTER (WHERE finbert_classify(body, 'cls') = cls->>'label') AS same_label,
       count(*) FILTER (WHERE (SELECT max(abs(s.value::float8 - (cls->'scores'->>s.key)::float8))
                                 FROM jsonb_each_text(finbert_scores(body, 'cls')) s) < 1e-5) AS same_scores,
       count(*) FILTER (WHERE finbert_type(body) = multilabel->>'label') AS same_label_multi,
       count(*) FILTER (WHERE (SELECT max(abs(s.value::float8 - (multilabel->'scores'->>s.key)::float8))
                                 FROM jsonb_each_text(finbert_scores(body, 'multilabel')) s) < 1e-5) AS same_scores_multi
  FROM cli;
-- the array form (one batch) too
SELECT finbert_classify(array_agg(body ORDER BY n), 'cls') = array_agg(cls->>'label' ORDER BY n) AS same_labels_batched
  FROM cli;

-- entities: same spans (the CLI's 0-based exclusive end is end_pos), labels
-- and scores
WITH c AS (
  SELECT n, x->>'text' AS entity, x->>'label' AS label, (x->>'start')::int + 1 AS start_pos,
         (x->>'end')::int AS end_pos, (x->>'score')::float8 AS score
    FROM cli, jsonb_array_elements(ner->'entities') x),
s AS (
  SELECT n, e.entity, e.label, e.start_pos, e.end_pos, e.score::float8 AS score
    FROM cli, finbert_entities(body, 'ner') e)
SELECT (SELECT count(*) FROM c) AS cli_entities, (SELECT count(*) FROM s) AS sql_entities,
       (SELECT count(*) FROM c FULL JOIN s USING (n, entity, label, start_pos, end_pos)
         WHERE c.n IS NULL OR s.n IS NULL OR abs(c.score - s.score) > 1e-5) AS mismatches;

-- embeddings (mean and cls pooling, normalised): within 1e-5
SELECT count(*) AS texts,
       count(*) FILTER (WHERE (SELECT max(abs(x - y::float8))
                                 FROM unnest(finbert_embed(body, 'encoder', 'mean'),
                                             ARRAY(SELECT jsonb_array_elements_text(emb_mean->'embedding'))::float8[]) u(x, y)) < 1e-5) AS same_mean,
       count(*) FILTER (WHERE (SELECT max(abs(x - y::float8))
                                 FROM unnest(finbert_embed(body, 'encoder', 'cls'),
                                             ARRAY(SELECT jsonb_array_elements_text(emb_cls->'embedding'))::float8[]) u(x, y)) < 1e-5) AS same_cls
  FROM cli;

-- tokens: the CLI adds [CLS] and [SEP]; finbert_tokenize does not
SELECT count(*) AS texts,
       count(*) FILTER (WHERE jsonb_array_length(tok->'ids') = cardinality(finbert_tokenize(body)) + 2) AS same_count
  FROM cli;

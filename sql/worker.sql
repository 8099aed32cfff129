--
-- worker: the finbert background worker gives every function the same
-- results and the same errors (SQLSTATE, message, detail, hint) as inline
-- execution; its statistics; a cancelled request frees its slot.  (The
-- whole suite also runs a second time with finbert.execution = worker.)
--
SET finbert.cache = off;	-- compare computation, not the cache

CREATE TEMP TABLE news (id int PRIMARY KEY, body text);
INSERT INTO news VALUES
 (1, '浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。'),
 (2, '亚马逊在华一审败诉 　被判不得使用AWS名称并赔偿7646万元'),
 (3, NULL),
 (4, '贵州茅台(600519.SH)2023年营收同比增长18.04%，净利润747.34亿元。'),
 (5, ''),
 (6, '宁德时代CATL与Tesla签署长期供货协议，股价大涨5%'),
 (7, 'Apple Inc. reported record quarterly revenue of $123.9 billion.'),
 (8, repeat('股市大涨，宁德时代与贵州茅台签约。', 60));

-- every function, run once inline and once through the worker; result
-- holds what must be identical (labels, tokens, spans), vec the numbers
-- (probabilities, embeddings, entity scores), equal within 1e-5: the
-- worker runs finbert.worker_threads engine threads, inline one
CREATE FUNCTION pg_temp.keys(j jsonb) RETURNS text LANGUAGE sql AS
$$ SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(j) k $$;
CREATE FUNCTION pg_temp.vals(j jsonb) RETURNS real[] LANGUAGE sql AS
$$ SELECT array_agg(v::real ORDER BY k) FROM jsonb_each_text(j) e(k, v) $$;
CREATE FUNCTION pg_temp.run_all(mode text)
RETURNS TABLE (id int, what text, result text, vec real[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
	PERFORM set_config('finbert.execution', mode, true);
	RETURN QUERY
	SELECT n.id, f.what, f.result, f.vec
	  FROM news n,
	       LATERAL (VALUES
	         ('sentiment', finbert_sentiment(n.body), NULL::real[]),
	         ('sentiment cls_f16', finbert_sentiment(n.body, 'cls_f16'), NULL),
	         ('industry', finbert_industry(n.body), NULL),
	         ('type', finbert_type(n.body), NULL),
	         ('classify', finbert_classify(n.body, 'cls'), NULL),
	         ('scores', pg_temp.keys(finbert_scores(n.body, 'cls')), pg_temp.vals(finbert_scores(n.body, 'cls'))),
	         ('scores multilabel', pg_temp.keys(finbert_scores(n.body, 'multilabel')),
	                               pg_temp.vals(finbert_scores(n.body, 'multilabel'))),
	         ('companies', finbert_companies(n.body)::text, NULL),
	         ('persons', finbert_persons(n.body)::text, NULL),
	         ('embed', NULL, finbert_embed(n.body)),
	         ('embed cls', NULL, finbert_embed(n.body, 'encoder', 'cls')),
	         ('embed pooler', NULL, finbert_embed(n.body, 'cls', 'pooler')),
	         ('tokenize', finbert_tokenize(n.body)::text, NULL),
	         ('entities', (SELECT string_agg(format('%s|%s|%s|%s', e.entity, e.label, e.start_pos, e.end_pos), ';' ORDER BY e.start_pos)
	                         FROM finbert_entities(n.body) e),
	                      (SELECT array_agg(e.score ORDER BY e.start_pos) FROM finbert_entities(n.body) e))
	       ) AS f(what, result, vec);
	RETURN QUERY
	SELECT 0, f.what, f.result, f.vec
	  FROM (SELECT array_agg(body ORDER BY id) AS a FROM news) arr,
	       LATERAL (VALUES
	         ('sentiment[]', finbert_sentiment(arr.a)::text, NULL::real[]),
	         ('industry[]', finbert_industry(arr.a, 'cls')::text, NULL),
	         ('type[]', finbert_type(arr.a)::text, NULL),
	         ('scores[]', (SELECT string_agg(coalesce(pg_temp.keys(s), 'null'), ';' ORDER BY o)
	                         FROM unnest(finbert_scores(arr.a, 'multilabel')) WITH ORDINALITY u(s, o)),
	                      (SELECT array_agg(v ORDER BY o, k)
	                         FROM unnest(finbert_scores(arr.a, 'multilabel')) WITH ORDINALITY u(s, o),
	                              LATERAL unnest(pg_temp.vals(s)) WITH ORDINALITY w(v, k))),
	         ('embed[]', (SELECT string_agg(ord || ':' || coalesce(cardinality(embedding), -1), ';' ORDER BY ord)
	                        FROM finbert_embed(arr.a) e),
	                     (SELECT array_agg(x ORDER BY ord, k)
	                        FROM finbert_embed(arr.a) e, unnest(embedding) WITH ORDINALITY v(x, k))),
	         ('embed[] cls', NULL, (SELECT array_agg(x ORDER BY ord, k)
	                                  FROM finbert_embed(arr.a, 'encoder', 'cls') e,
	                                       unnest(embedding) WITH ORDINALITY v(x, k))),
	         ('tokenize[]', (SELECT string_agg(format('%s:%s', ord, tokens), ';' ORDER BY ord) FROM finbert_tokenize(arr.a) e), NULL),
	         ('entities[]', (SELECT string_agg(format('%s|%s|%s|%s|%s', ord, entity, label, start_pos, end_pos), ';' ORDER BY ord, start_pos)
	                           FROM finbert_entities(arr.a) e),
	                        (SELECT array_agg(score ORDER BY ord, start_pos) FROM finbert_entities(arr.a) e)),
	         ('companies[]', (SELECT string_agg(format('%s:%s', ord, companies), ';' ORDER BY ord) FROM finbert_companies(arr.a) e), NULL),
	         ('persons[]', (SELECT string_agg(format('%s:%s', ord, persons), ';' ORDER BY ord) FROM finbert_persons(arr.a) e), NULL)
	       ) AS f(what, result, vec);
END $$;
CREATE FUNCTION pg_temp.close(a real[], b real[]) RETURNS boolean LANGUAGE sql AS
$$ SELECT (a IS NULL AND b IS NULL) OR
          (cardinality(a) = cardinality(b) AND
           (SELECT coalesce(max(abs(x::float8 - y::float8)), 0) <= 1e-5 FROM unnest(a, b) u(x, y))) $$;

SELECT finbert_stats_reset();
CREATE TEMP TABLE inline_run AS SELECT * FROM pg_temp.run_all('inline');
SELECT worker_requests AS inline_worker_requests FROM finbert_stats;
CREATE TEMP TABLE worker_run AS SELECT * FROM pg_temp.run_all('worker');
-- every request of the second run went to the worker
SELECT worker_requests = requests / 2 AS all_in_worker, worker_batches > 0 AS batches,
       errors = 0 AS no_errors
  FROM finbert_stats;

-- the same labels, tokens and spans; the same numbers within 1e-5
SELECT count(*) AS compared,
       count(*) FILTER (WHERE i.result IS NOT DISTINCT FROM w.result AND pg_temp.close(i.vec, w.vec)) AS same,
       count(*) FILTER (WHERE i.vec IS NOT NULL) AS with_numbers
  FROM inline_run i JOIN worker_run w USING (id, what);
SELECT i.id, i.what FROM inline_run i JOIN worker_run w USING (id, what)
 WHERE i.result IS DISTINCT FROM w.result OR NOT pg_temp.close(i.vec, w.vec) ORDER BY 1, 2;

-- errors: the same SQLSTATE, message, detail and hint in both modes
CREATE FUNCTION pg_temp.err(mode text, q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	PERFORM set_config('finbert.execution', mode, true);
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	RETURN replace(concat_ws(' | ', st, msg, nullif(det, ''), nullif(hnt, '')),
				   current_setting('finbert.model_dir'), '$model_dir');
END $$;

-- a registered model whose files break afterwards: the worker fails to
-- open it exactly as a backend does
SELECT finbert_load_model('fragile', 'fragile');
DO $$
BEGIN
	EXECUTE format('COPY (SELECT %L) TO %L', '{"model_type": "bert"',
				   current_setting('finbert.model_dir') || '/fragile/config.json');
END $$;

CREATE TEMP TABLE cases (q text);
INSERT INTO cases VALUES
 ($$SELECT finbert_classify('央行降准', 'ner')$$),
 ($$SELECT * FROM finbert_entities('央行降准', 'cls')$$),
 ($$SELECT finbert_scores(ARRAY['央行降准'], 'encoder')$$),
 ($$SELECT finbert_embed('央行降准', 'ner', 'pooler')$$),
 ($$SELECT finbert_sentiment('央行降准', 'nope')$$),
 ($$SELECT finbert_sentiment('央行降准', 'fragile')$$),
 ($$SELECT finbert_tokenize(ARRAY['a', 'b'], 'fragile')$$),
 ($$SELECT finbert_embed('x', 'encoder', 'max')$$);
SELECT c.q, pg_temp.err('worker', c.q) AS worker_error,
       pg_temp.err('worker', c.q) = pg_temp.err('inline', c.q) AS same_as_inline
  FROM cases c;
SELECT finbert_unload_model('fragile');

-- auto: a single session runs inline (no concurrent load to batch)
SELECT finbert_stats_reset();
SET finbert.execution = auto;
SELECT finbert_sentiment('央行降准') IS NOT NULL AS ok;
SELECT requests, worker_requests FROM finbert_stats;

-- a request cancelled (statement_timeout) while the worker runs it: 57014,
-- the worker drops it, the slot returns to the free pool
SET finbert.execution = worker;
\set SHOW_CONTEXT never
SET statement_timeout = '100ms';
SELECT count(*) FROM finbert_entities(repeat('股市大涨，宁德时代签约。', 29000));
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
\set SHOW_CONTEXT errors
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
SELECT pg_temp.wait_until('SELECT slots_in_use = 0 AND queue_depth = 0 FROM finbert_stats') AS slots_free;
SELECT finbert_sentiment('央行降准') IS NOT NULL AS still_works;

-- the worker's state in finbert_stats
SELECT worker_pid IS NOT NULL AS has_pid, worker_state IN ('idle', 'collecting', 'running') AS state_ok,
       worker_requests > 0 AS answered, tokens_per_second_1m > 0 AS recent_rate
  FROM finbert_stats;
RESET finbert.execution;
RESET finbert.cache;

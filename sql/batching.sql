--
-- batching: per-row finbert calls evaluated in batches by the Finbert Batch
-- plan node (planner hook).  Every case runs with finbert.batching off and
-- on and compares the output, in order; "batched" says whether the plan
-- had the node.
--
SET finbert.sentiment_model = 'cls';
SET finbert.industry_model = 'cls_f16';
SET finbert.type_model = 'multilabel';
SET finbert.ner_model = 'ner';
SET finbert.embed_model = 'encoder';

CREATE TEMP TABLE bnews (id int PRIMARY KEY, body text, title text);
INSERT INTO bnews
SELECT i,
       CASE WHEN i % 17 = 0 THEN NULL
            WHEN i % 23 = 0 THEN ''
            ELSE (ARRAY['浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。',
                        '亚马逊在华一审败诉 　被判不得使用AWS名称并赔偿7646万元',
                        '贵州茅台(600519.SH)2023年营收同比增长18.04%，净利润747.34亿元。',
                        '宁德时代CATL与Tesla签署长期供货协议，股价大涨5%',
                        'Apple Inc. reported record quarterly revenue of $123.9 billion.'])[i % 5 + 1]
                 || ' ' || (i % 7)
       END,
       'headline ' || (i % 11)
  FROM generate_series(1, 120) i;
ANALYZE bnews;

-- scores rounded: batched and per-row probabilities agree to the last
-- bits only (like inline and worker execution, README)
CREATE FUNCTION pg_temp.r(j jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT string_agg(key || '=' || round(value::numeric, 4), ',' ORDER BY key) FROM jsonb_each_text(j) $$;
CREATE FUNCTION pg_temp.r(a real[]) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT string_agg(round(x::numeric, 4)::text, ',' ORDER BY o) FROM unnest(a) WITH ORDINALITY u(x, o) $$;

-- the output of query q (in its order), planned with batching on or off
CREATE FUNCTION pg_temp.run(q text, batching bool) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	out text;
BEGIN
	PERFORM set_config('finbert.batching', batching::text, true);
	EXECUTE format('SELECT coalesce(string_agg(t::text, E''\n''), ''<none>'') FROM (%s) t', q) INTO out;
	PERFORM set_config('finbert.batching', 'on', true);
	RETURN out;
EXCEPTION WHEN OTHERS THEN
	PERFORM set_config('finbert.batching', 'on', true);
	RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE FUNCTION pg_temp.batched(q text) RETURNS bool LANGUAGE plpgsql AS $$
DECLARE
	line text;
	found bool := false;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		found := found OR line LIKE '%Finbert Batch%';
	END LOOP;
	RETURN found;
END $$;

CREATE FUNCTION pg_temp.same(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	off_out text := pg_temp.run(q, false);
	on_out text := pg_temp.run(q, true);
BEGIN
	IF off_out IS DISTINCT FROM on_out THEN
		RETURN 'DIFFERENT' || E'\noff: ' || left(off_out, 300) || E'\non:  ' || left(on_out, 300);
	END IF;
	RETURN CASE WHEN off_out LIKE 'ERROR%' THEN left(off_out, 200) || ', ' ELSE 'same, ' END
		|| CASE WHEN pg_temp.batched(q) THEN 'batched' ELSE 'per-row' END;
END $$;

-- the node in EXPLAIN; off restores the plain plan
EXPLAIN (COSTS OFF) SELECT id, finbert_sentiment(body) FROM bnews;
EXPLAIN (COSTS OFF, VERBOSE) SELECT id, finbert_sentiment(body), finbert_classify(title, 'multilabel') FROM bnews WHERE id < 10;
SET finbert.batching = off;
EXPLAIN (COSTS OFF) SELECT id, finbert_sentiment(body) FROM bnews;
RESET finbert.batching;

-- every scalar function, NULLs and empty texts included
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body) FROM bnews$$);
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body, 'cls_f16'), finbert_industry(body), finbert_type(body) FROM bnews$$);
SELECT pg_temp.same($$SELECT id, finbert_classify(body, 'cls'), pg_temp.r(finbert_scores(body, 'cls')) FROM bnews$$);
SELECT pg_temp.same($$SELECT id, finbert_companies(body), finbert_persons(body, 'ner') FROM bnews$$);
SELECT pg_temp.same($$SELECT id, pg_temp.r(finbert_embed(body)), pg_temp.r(finbert_embed(body, 'encoder', 'cls')) FROM bnews$$);
SELECT pg_temp.same($$SELECT id, finbert_tokenize(body), finbert_tokenize(title, 'encoder') FROM bnews$$);
-- the same text in two calls, a constant text, a text built from columns
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body), finbert_classify(body, 'cls'), finbert_sentiment('constant') FROM bnews$$);
SELECT pg_temp.same($$SELECT id, finbert_sentiment(title || ' ' || body) FROM bnews$$);

-- WHERE (also on a finbert result), ORDER BY / GROUP BY on a result
SELECT pg_temp.same($$SELECT id FROM bnews WHERE id % 3 = 0 AND finbert_sentiment(body) = finbert_sentiment(title)$$);
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body) FROM bnews WHERE id > 50$$);
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body) s FROM bnews ORDER BY s, id$$);
SELECT pg_temp.same($$SELECT finbert_industry(title) i, count(*) FROM bnews GROUP BY 1 ORDER BY 1$$);
SELECT pg_temp.same($$SELECT DISTINCT finbert_type(body) FROM bnews ORDER BY 1$$);

-- joins, subqueries, CTEs, set-returning functions around the calls
SELECT pg_temp.same($$SELECT a.id, finbert_sentiment(a.body), b.id FROM bnews a JOIN bnews b ON b.id = a.id + 1 ORDER BY a.id$$);
SELECT pg_temp.same($$SELECT a.id, finbert_sentiment(a.body) FROM bnews a LEFT JOIN (VALUES (3), (5)) v(x) ON v.x = a.id ORDER BY a.id$$);
SELECT pg_temp.same($$SELECT id, s FROM (SELECT id, finbert_sentiment(body) s FROM bnews OFFSET 0) t WHERE id % 2 = 0$$);
SELECT pg_temp.same($$WITH c AS MATERIALIZED (SELECT id, body FROM bnews) SELECT id, finbert_sentiment(body) FROM c$$);
SELECT pg_temp.same($$WITH c AS (SELECT id, finbert_sentiment(body) s FROM bnews) SELECT s, count(*) FROM c GROUP BY s ORDER BY s$$);
SELECT pg_temp.same($$SELECT id, (SELECT finbert_sentiment(b.body) FROM bnews b WHERE b.id = a.id) FROM bnews a WHERE id < 20$$);
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body), generate_series(1, 2) FROM bnews WHERE id < 20$$);
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body) FROM bnews UNION ALL SELECT id, finbert_type(title) FROM bnews$$);

-- finbert_entities: in the target list (ProjectSet), in a lateral join,
-- in a materialized view refreshed
EXPLAIN (COSTS OFF) SELECT id, finbert_entities(body) FROM bnews;
EXPLAIN (COSTS OFF) SELECT n.id, e.* FROM bnews n, finbert_entities(n.body) e;
SELECT pg_temp.same($$SELECT id, (finbert_entities(body)).entity FROM bnews$$);
SELECT pg_temp.same($$SELECT id, finbert_entities(body, 'ner') FROM bnews WHERE id < 40$$);
SELECT pg_temp.same($$SELECT n.id, e.entity, e.label, e.start_pos, e.end_pos, round(e.score::numeric, 4) FROM bnews n, finbert_entities(n.body) e$$);
SELECT pg_temp.same($$SELECT n.id, e.entity FROM bnews n LEFT JOIN LATERAL finbert_entities(n.body, 'ner') e ON true$$);
SELECT finbert_stats_reset();
SELECT count(*) FROM bnews n, finbert_entities(n.body) e;
SELECT requests FROM finbert_stats;

-- LIMIT: batches grow from one row, and LIMIT 1 computes one text
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body) FROM bnews ORDER BY id LIMIT 1$$);
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body) FROM bnews LIMIT 7$$);
SELECT finbert_stats_reset();
SELECT id, finbert_sentiment(body) IS NOT NULL FROM bnews ORDER BY id LIMIT 1;
SELECT requests, texts FROM finbert_stats;

-- one request per batch: 120 rows (7 NULL) in batches of 1, 4, 16, 64, 35
SELECT finbert_stats_reset();
SELECT count(*), count(s) FROM (SELECT id, finbert_sentiment(body) s FROM bnews) t;
SELECT requests, texts FROM finbert_stats;
-- an aggregate's argument too
SELECT finbert_stats_reset();
EXPLAIN (COSTS OFF) SELECT count(finbert_sentiment(body)) FROM bnews;
SELECT count(finbert_sentiment(body)) FROM bnews;
SELECT requests, texts FROM finbert_stats;
-- per row: one request per non-NULL text
SET finbert.batching = off;
SELECT finbert_stats_reset();
SELECT count(finbert_sentiment(body)) FROM bnews;
SELECT requests, texts FROM finbert_stats;
RESET finbert.batching;
-- smaller batches: finbert.batch_rows (1, 4, 8, 8, ...), and the token
-- budget (finbert.max_batch_tokens, a setting of the worker)
SET finbert.batch_rows = 8;
SELECT finbert_stats_reset();
SELECT count(finbert_sentiment(body)) FROM bnews;
SELECT requests FROM finbert_stats;
RESET finbert.batch_rows;
-- two calls on the same texts and model: the second finds the first's results
SELECT finbert_stats_reset();
SELECT count(*) FROM (SELECT finbert_sentiment(body) a, finbert_classify(body, 'cls') b FROM bnews) t WHERE a IS NOT DISTINCT FROM b;
SELECT requests, texts FROM finbert_stats;

-- what stays per-row: volatile arguments, a call inside a call
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body || (random() < 2)::text) FROM bnews$$);
SELECT pg_temp.same($$SELECT id, finbert_sentiment(finbert_sentiment(body)) FROM bnews$$);
SELECT pg_temp.same($$SELECT id, finbert_sentiment(upper(body)) FROM bnews$$);

-- a volatile CTE below is not read ahead: nextval runs for 3 rows only
CREATE TEMP SEQUENCE bseq;
SELECT pg_temp.batched($$WITH c AS MATERIALIZED (SELECT id, body, nextval('bseq') n FROM bnews) SELECT id, finbert_sentiment(body) FROM c LIMIT 3$$);
WITH c AS MATERIALIZED (SELECT id, body, nextval('bseq') n FROM bnews) SELECT id, finbert_sentiment(body) FROM c LIMIT 3;
SELECT currval('bseq');

-- errors: the same SQLSTATE and message as per row
SELECT pg_temp.same($$SELECT id, finbert_classify(body, 'no_such_model') FROM bnews$$);
SELECT pg_temp.same($$SELECT id, finbert_classify(body, 'ner') FROM bnews$$);
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body), finbert_classify(body, CASE WHEN id = 40 THEN 'ner' ELSE 'cls' END) FROM bnews$$);
SELECT pg_temp.same($$SELECT id, pg_temp.r(finbert_embed(body, 'encoder', 'nosuch')) FROM bnews$$);
SET finbert.max_input_bytes = 64;
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body) FROM bnews$$);
RESET finbert.max_input_bytes;
SET finbert.sentiment_model = '';
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body) FROM bnews$$);
RESET finbert.sentiment_model;
SET finbert.sentiment_model = 'cls';

-- writes: INSERT ... SELECT, UPDATE, CREATE TABLE AS, materialized views
CREATE TEMP TABLE out_on (id int, s text, e text);
CREATE TEMP TABLE out_off (id int, s text, e text);
INSERT INTO out_on SELECT id, finbert_sentiment(body), pg_temp.r(finbert_embed(body)) FROM bnews;
SET finbert.batching = off;
INSERT INTO out_off SELECT id, finbert_sentiment(body), pg_temp.r(finbert_embed(body)) FROM bnews;
RESET finbert.batching;
SELECT count(*) AS rows, count(*) FILTER (WHERE a IS DISTINCT FROM b) AS differ
  FROM (SELECT row(o.*)::text a, row(f.*)::text b FROM out_on o FULL JOIN out_off f USING (id)) x;
EXPLAIN (COSTS OFF) UPDATE out_on SET s = finbert_type(s);
UPDATE out_on SET s = finbert_type(e), e = NULL WHERE id % 2 = 0;
SET finbert.batching = off;
UPDATE out_off SET s = finbert_type(e), e = NULL WHERE id % 2 = 0;
RESET finbert.batching;
SELECT count(*) AS rows, count(*) FILTER (WHERE a IS DISTINCT FROM b) AS differ
  FROM (SELECT row(o.*)::text a, row(f.*)::text b FROM out_on o FULL JOIN out_off f USING (id)) x;
CREATE TEMP TABLE ctas_on AS SELECT id, finbert_industry(body) i FROM bnews;
SET finbert.batching = off;
CREATE TEMP TABLE ctas_off AS SELECT id, finbert_industry(body) i FROM bnews;
RESET finbert.batching;
SELECT count(*) AS rows, count(*) FILTER (WHERE a.i IS DISTINCT FROM b.i) AS differ
  FROM ctas_on a JOIN ctas_off b USING (id);
CREATE TABLE bnews_plain AS SELECT * FROM bnews;
CREATE MATERIALIZED VIEW bmv AS SELECT id, finbert_sentiment(body, 'cls') s, finbert_companies(body, 'ner') c FROM bnews_plain;
UPDATE bnews_plain SET body = title WHERE id % 4 = 0;
REFRESH MATERIALIZED VIEW bmv;
SET finbert.batching = off;
CREATE TEMP TABLE bmv_off AS SELECT id, finbert_sentiment(body, 'cls') s, finbert_companies(body, 'ner') c FROM bnews_plain;
RESET finbert.batching;
SELECT count(*) AS rows, count(*) FILTER (WHERE row(a.*)::text IS DISTINCT FROM row(b.*)::text) AS differ
  FROM bmv a JOIN bmv_off b USING (id);
CREATE MATERIALIZED VIEW bent AS SELECT n.id, e.entity, e.label, e.start_pos FROM bnews_plain n, finbert_entities(n.body) e;
UPDATE bnews_plain SET body = NULL WHERE id % 5 = 0;
REFRESH MATERIALIZED VIEW bent;
SET finbert.batching = off;
CREATE TEMP TABLE bent_off AS SELECT n.id, e.entity, e.label, e.start_pos FROM bnews_plain n, finbert_entities(n.body) e;
RESET finbert.batching;
SELECT (SELECT count(*) FROM bent) AS rows,
       (SELECT count(*) FROM (SELECT * FROM bent EXCEPT ALL SELECT * FROM bent_off) d) +
       (SELECT count(*) FROM (SELECT * FROM bent_off EXCEPT ALL SELECT * FROM bent) d) AS differ;
DROP MATERIALIZED VIEW bent;
DROP MATERIALIZED VIEW bmv;
DROP TABLE bnews_plain;

-- prepared statements (a generic plan), PL/pgSQL, cursors
SET plan_cache_mode = force_generic_plan;
PREPARE p_on(int) AS SELECT id, finbert_sentiment(body) s FROM bnews WHERE id > $1;
EXPLAIN (COSTS OFF) EXECUTE p_on(100);
CREATE TEMP TABLE prep_on AS EXECUTE p_on(60);
SET finbert.batching = off;
PREPARE p_off(int) AS SELECT id, finbert_sentiment(body) s FROM bnews WHERE id > $1;
CREATE TEMP TABLE prep_off AS EXECUTE p_off(60);
RESET finbert.batching;
SELECT count(*) AS rows, count(*) FILTER (WHERE a.s IS DISTINCT FROM b.s) AS differ
  FROM prep_on a FULL JOIN prep_off b USING (id);
DEALLOCATE p_on;
DEALLOCATE p_off;
RESET plan_cache_mode;

CREATE FUNCTION pg_temp.labels_on() RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record; out text := '';
BEGIN
	FOR r IN SELECT id, finbert_sentiment(body) s, finbert_type(title) t FROM bnews LOOP
		out := out || r.id || ':' || coalesce(r.s, '-') || ':' || r.t || ' ';
	END LOOP;
	RETURN out;
END $$;
CREATE FUNCTION pg_temp.labels_off() RETURNS text LANGUAGE plpgsql SET finbert.batching = off AS $$
DECLARE r record; out text := '';
BEGIN
	FOR r IN SELECT id, finbert_sentiment(body) s, finbert_type(title) t FROM bnews LOOP
		out := out || r.id || ':' || coalesce(r.s, '-') || ':' || r.t || ' ';
	END LOOP;
	RETURN out;
END $$;
SELECT pg_temp.labels_on() = pg_temp.labels_off() AS same, length(pg_temp.labels_on()) > 1000 AS long;

-- cursors fetch a few rows at a time; an error comes at the same row
BEGIN;
DECLARE c_on CURSOR FOR SELECT id, finbert_sentiment(body) FROM bnews ORDER BY id;
FETCH 3 FROM c_on;
FETCH 2 FROM c_on;
SET LOCAL finbert.batching = off;
DECLARE c_off CURSOR FOR SELECT id, finbert_sentiment(body) FROM bnews ORDER BY id;
FETCH 3 FROM c_off;
FETCH 2 FROM c_off;
COMMIT;
-- texts over 70 bytes fail: ids 3, 4, 8, 9, 13, 14, 18, 19 pass, 20 fails
SET finbert.max_input_bytes = 70;
BEGIN;
DECLARE c_err CURSOR FOR SELECT id, finbert_sentiment(body) FROM bnews WHERE id % 5 IN (3, 4) OR id = 20 ORDER BY id;
FETCH 3 FROM c_err;
FETCH 3 FROM c_err;
FETCH 3 FROM c_err;
ROLLBACK;
BEGIN;
SET LOCAL finbert.batching = off;
DECLARE c_err CURSOR FOR SELECT id, finbert_sentiment(body) FROM bnews WHERE id % 5 IN (3, 4) OR id = 20 ORDER BY id;
FETCH 3 FROM c_err;
FETCH 3 FROM c_err;
FETCH 3 FROM c_err;
ROLLBACK;
RESET finbert.max_input_bytes;
-- a scrollable cursor keeps the per-row plan (the node only reads forward)
BEGIN;
DECLARE c_scroll SCROLL CURSOR FOR SELECT id, finbert_sentiment(body) FROM bnews WHERE id < 4 ORDER BY id;
FETCH 2 FROM c_scroll;
FETCH BACKWARD 1 FROM c_scroll;
COMMIT;

-- parallel query: each process batches its own rows
CREATE TABLE bnews_par AS SELECT * FROM bnews;
ANALYZE bnews_par;
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF) SELECT id, finbert_sentiment(body) FROM bnews_par;
SELECT pg_temp.same($$SELECT id, finbert_sentiment(body), pg_temp.r(finbert_scores(body, 'cls')) FROM bnews_par ORDER BY id$$);
SELECT pg_temp.same($$SELECT finbert_sentiment(body), count(*) FROM bnews_par GROUP BY 1 ORDER BY 1$$);
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
DROP TABLE bnews_par;

RESET finbert.sentiment_model;
RESET finbert.industry_model;
RESET finbert.type_model;
RESET finbert.ner_model;
RESET finbert.embed_model;

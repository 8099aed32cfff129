--
-- load_models: finbert_load_models() registers every model directory under
-- finbert.model_dir by its name, each in a subtransaction; the ones that do
-- not load are reported with the reason and the others still register
--
\set VERBOSITY terse
-- the same directory layout is registered by name; broken ones say why
-- (paths shown relative to finbert.model_dir)
SELECT name, task, registered,
       replace(detail, current_setting('finbert.model_dir'), '$MODEL_DIR') AS detail
  FROM finbert_load_models()
 ORDER BY name;
-- what registered is usable at once, by the name of its directory
SELECT finbert_classify('央行降准', 'multilabel') IS NOT NULL AS usable;
SELECT name, precision FROM finbert_models WHERE name IN ('cls', 'cls_link', 'encoder') ORDER BY name;
-- again with int8: every row is re-registered with that precision
SELECT count(*) FILTER (WHERE registered) AS registered, count(*) FILTER (WHERE NOT registered) AS skipped
  FROM finbert_load_models('int8');
SELECT DISTINCT precision FROM finbert_models WHERE name IN ('cls', 'ner', 'encoder');
SELECT finbert_load_models('int9');
\echo :LAST_ERROR_SQLSTATE
-- admins only, also when EXECUTE is granted by mistake
CREATE ROLE regress_finbert_loader LOGIN;
SET ROLE regress_finbert_loader;
SELECT finbert_load_models();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT EXECUTE ON FUNCTION finbert_load_models(text) TO regress_finbert_loader;
SET ROLE regress_finbert_loader;
SELECT finbert_load_models();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP OWNED BY regress_finbert_loader;
DROP ROLE regress_finbert_loader;
-- put the fp32 registrations back for the tests that follow
SELECT count(*) > 0 AS reregistered FROM finbert_load_models() WHERE registered;

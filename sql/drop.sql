--
-- DROP EXTENSION and CREATE EXTENSION again
--
DROP EXTENSION finbert;
SELECT count(*) FROM pg_namespace WHERE nspname = 'finbert';
-- roles are cluster-wide and stay
SELECT count(*) FROM pg_roles WHERE rolname IN ('finbert_admin', 'finbert_user');
SELECT finbert_sentiment('央行降准');
\echo :LAST_ERROR_SQLSTATE

CREATE EXTENSION finbert;
-- a fresh catalog
SELECT count(*) FROM finbert_models;
-- the backend's cached model is not used once its row is gone
SELECT finbert_sentiment('央行降准');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_load_model('cls', 'cls', 'sentiment');
SELECT finbert_sentiment('央行降准') = finbert_classify('央行降准', 'cls') AS works;
-- opened by this backend unless the worker ran it
SELECT name, loaded_here = (current_setting('finbert.execution') <> 'worker') AS loaded_as_expected
  FROM finbert_models;
DROP EXTENSION finbert;
CREATE EXTENSION finbert;

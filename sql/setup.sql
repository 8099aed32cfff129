--
-- setup: install the extension on the preloaded cluster and register the
-- fixture models (tiny random-weight models: outputs are deterministic but
-- meaningless; the checks are about plumbing and invariants).
--
CREATE EXTENSION finbert;

-- preloaded through shared_preload_libraries (--temp-config)
SHOW shared_preload_libraries;
SELECT current_setting('finbert.model_dir') LIKE '%/models' AS model_dir_set;
SELECT extversion, extrelocatable FROM pg_extension WHERE extname = 'finbert';

-- settings, their defaults and who may change them
SELECT name, boot_val AS default,
       unit, context, vartype, min_val, max_val, enumvals
  FROM pg_settings WHERE name LIKE 'finbert.%' ORDER BY name;

-- roles created by the extension script
SELECT rolname, rolcanlogin FROM pg_roles
 WHERE rolname IN ('finbert_admin', 'finbert_user') ORDER BY 1;

-- every function: commented, safe search_path; listed with its properties
SELECT p.oid::regprocedure AS function,
       p.provolatile AS vol, p.proparallel AS par, p.proisstrict AS strict,
       p.procost AS cost,
       p.proconfig = '{"search_path=pg_catalog, pg_temp"}' AS safe_path,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.classid = 'pg_proc'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'finbert')
 ORDER BY p.proname, p.oid::regprocedure::text;

-- views and the catalog table are commented; the catalog is dumped by pg_dump
SELECT c.oid::regclass, c.relkind, obj_description(c.oid, 'pg_class') IS NOT NULL AS commented
  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.classid = 'pg_class'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'finbert')
   AND c.relkind IN ('r', 'v')
 ORDER BY 1::text;
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'finbert';

-- register the fixtures (paths relative to finbert.model_dir)
SELECT finbert_load_model('cls', 'cls', 'sentiment');
SELECT finbert_load_model('cls_f16', 'cls_f16');
SELECT finbert_load_model('multilabel', 'multilabel', 'type');
SELECT finbert_load_model('ner', 'ner');
SELECT finbert_load_model('encoder', 'encoder');
-- registering again replaces the row
SELECT finbert_load_model('cls', 'cls', 'sentiment');

SELECT name, task, architecture, head, multi_label, layers, hidden_size, heads,
       vocab_size, max_length, labels, path, weight_file, weight_dtype, precision,
       device, loaded_here
  FROM finbert_models ORDER BY name;

-- the catalog's checksum and size are those of the weight files
SELECT name,
       sha256 = encode(sha256(pg_read_binary_file(
           current_setting('finbert.model_dir') || '/' || path || '/' || weight_file)), 'hex') AS sha256_ok,
       bytes = (pg_stat_file(
           current_setting('finbert.model_dir') || '/' || path || '/' || weight_file)).size AS bytes_ok,
       created_by = current_user AS created_by_ok
  FROM finbert_models ORDER BY name;

-- task defaults for the rest of the suite (each test file is a new session)
DO $$
BEGIN
	EXECUTE format('ALTER DATABASE %I SET finbert.sentiment_model = %L', current_database(), 'cls');
	EXECUTE format('ALTER DATABASE %I SET finbert.industry_model = %L', current_database(), 'cls_f16');
	EXECUTE format('ALTER DATABASE %I SET finbert.type_model = %L', current_database(), 'multilabel');
	EXECUTE format('ALTER DATABASE %I SET finbert.ner_model = %L', current_database(), 'ner');
	EXECUTE format('ALTER DATABASE %I SET finbert.embed_model = %L', current_database(), 'encoder');
END
$$;

-- the first inline use opens the model in this backend (in worker mode the
-- worker opens it instead: inline here whatever finbert.execution says)
SET finbert.execution = inline;
SELECT finbert_sentiment('央行宣布降准', 'cls') IS NOT NULL AS ok;
SELECT name, loaded_here, resident_bytes IS NOT NULL AS has_memory
  FROM finbert_models ORDER BY name;
SELECT name, weight_dtype, precision, uses FROM finbert_loaded_models() ORDER BY name;

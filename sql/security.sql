--
-- security: roles, privileges, model_dir confinement, search_path safety
--
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO PUBLIC;

CREATE ROLE regress_finbert_plain LOGIN;
CREATE ROLE regress_finbert_analyst LOGIN IN ROLE finbert_user;
CREATE ROLE regress_finbert_admin LOGIN IN ROLE finbert_admin;

-- the extension is not trusted
SELECT trusted, superuser FROM pg_available_extension_versions WHERE name = 'finbert';

-- a plain role: no inference, no loading (42501)
SET ROLE regress_finbert_plain;
SELECT finbert_sentiment('央行降准');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_load_model('evil', 'cls');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_unload_model('cls');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM finbert.models;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM finbert_models;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- finbert_user: inference and the views, but no loading or catalog writes
SET ROLE regress_finbert_analyst;
SELECT finbert_sentiment('央行降准') IS NOT NULL AS can_infer;
SELECT count(*) > 0 AS can_list FROM finbert_models;
SELECT requests > 0 AS can_see_stats FROM finbert_stats;
SELECT finbert_load_model('evil', 'cls');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_unload_model('cls');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_stats_reset();
\echo :LAST_ERROR_SQLSTATE
DELETE FROM finbert.models;
\echo :LAST_ERROR_SQLSTATE
UPDATE finbert.models SET path = '/etc';
\echo :LAST_ERROR_SQLSTATE
SET finbert.model_dir = '/';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- even when EXECUTE is granted by mistake, the C code refuses non-admins
GRANT EXECUTE ON FUNCTION finbert_load_model(text, text, text, text) TO regress_finbert_plain;
SET ROLE regress_finbert_plain;
SELECT finbert_load_model('evil', 'cls');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
REVOKE EXECUTE ON FUNCTION finbert_load_model(text, text, text, text) FROM regress_finbert_plain;

-- finbert_admin: can load, but only inside finbert.model_dir
SET ROLE regress_finbert_admin;
SELECT finbert_load_model('admin_cls', 'cls');
SELECT finbert_classify('央行降准', 'admin_cls') IS NOT NULL AS works;
SELECT created_by FROM finbert_models WHERE name = 'admin_cls';
-- ".." anywhere is refused, even when it would stay inside
SELECT finbert_load_model('evil', '../outside/cls');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_load_model('evil', 'cls/../cls');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.try($$SELECT finbert_load_model('evil', '/etc')$$);
-- absolute paths outside the directory (the message names server paths)
SELECT pg_temp.try($$SELECT finbert_load_model('evil', '/tmp')$$);
SELECT pg_temp.try($$SELECT finbert_load_model('evil', '/')$$);
-- symbolic links leading outside: the directory, or one file in it
SELECT pg_temp.try($$SELECT finbert_load_model('evil', 'escape_dir')$$);
SELECT pg_temp.try($$SELECT finbert_load_model('evil', 'escape_file')$$);
-- a symbolic link that stays inside is fine, and so is an absolute path inside
SELECT finbert_load_model('admin_link', 'cls_link');
SELECT path FROM finbert_models WHERE name = 'admin_link';
SELECT pg_temp.try(format('SELECT finbert_load_model(%L, %L)', 'admin_abs',
                          current_setting('finbert.model_dir') || '/encoder'));
SELECT path FROM finbert_models WHERE name = 'admin_abs';
-- the admin cannot move finbert.model_dir (superuser only)
SET finbert.model_dir = '/';
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM finbert_models WHERE name = 'evil';
SELECT finbert_unload_model('admin_cls');
SELECT finbert_unload_model('admin_link');
SELECT finbert_unload_model('admin_abs');
RESET ROLE;

-- objects shadowing pg_catalog gain nothing: the functions run with
-- search_path = pg_catalog, pg_temp
CREATE SCHEMA regress_evil;
CREATE FUNCTION regress_evil.texteq_any(text, text) RETURNS boolean
  LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text,
                                FUNCTION = regress_evil.texteq_any);
CREATE FUNCTION regress_evil.string_agg(text, text) RETURNS text
  LANGUAGE sql AS $$ SELECT 'pwned' $$;
SET search_path = regress_evil, pg_catalog, public;
SELECT 'a'::text = 'b'::text AS shadowed_here;
SELECT finbert_sentiment('央行降准', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT finbert_sentiment('央行降准', 'cls') = finbert_classify('央行降准', 'cls') AS unaffected;
RESET search_path;
DROP SCHEMA regress_evil CASCADE;

DROP ROLE regress_finbert_plain, regress_finbert_analyst, regress_finbert_admin;

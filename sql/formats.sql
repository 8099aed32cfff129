--
-- formats: checkpoints as their authors publish them load through
-- finbert_load_model; the chosen file and every file read are in
-- finbert_models; a pickle that tries to run code is data_corrupted
--
CREATE FUNCTION pg_temp.try_msg(sql text, pattern text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || CASE WHEN SQLERRM ~ pattern THEN ' (message matches)'
	                        ELSE ' (message: ' || SQLERRM || ')' END;
END $$;

-- pytorch_model.bin (torch.save zip), a run_classifier.py TensorFlow
-- checkpoint (bert_config.json, output_weights / output_bias), sharded
-- safetensors
SELECT finbert_load_model('fmt_bin', 'formats/bin_zip_cls');
SELECT finbert_load_model('fmt_tf', 'formats/tf_bert_classifier');
SELECT finbert_load_model('fmt_sharded', 'formats/st_sharded');
SELECT name, task, architecture, head, layers, labels, weight_file, weight_files, weight_dtype
  FROM finbert_models WHERE name LIKE 'fmt\_%' ORDER BY name;

-- the checksum and size cover every weight file, in the order listed
SELECT name,
       sha256 = encode(sha256((
           SELECT string_agg(pg_read_binary_file(current_setting('finbert.model_dir') || '/' || path || '/' || f),
                             ''::bytea ORDER BY o)
             FROM unnest(weight_files) WITH ORDINALITY AS u(f, o))), 'hex') AS sha256_ok,
       bytes = (SELECT sum((pg_stat_file(current_setting('finbert.model_dir') || '/' || path || '/' || f)).size)
                  FROM unnest(weight_files) AS f) AS bytes_ok
  FROM finbert_models WHERE name LIKE 'fmt\_%' ORDER BY name;

-- they answer (labels as config.json names them; the TensorFlow
-- classifier's from its output_weights)
SELECT finbert_classify('银行间债市盘中延续强势', 'fmt_bin') AS bin,
       finbert_classify('银行间债市盘中延续强势', 'fmt_tf') AS tf,
       finbert_classify('银行间债市盘中延续强势', 'fmt_sharded') AS sharded;
SELECT jsonb_object_keys(finbert_scores('继续涨停', 'fmt_tf')) AS tf_labels ORDER BY 1;

-- model.safetensors beside a pytorch_model.bin that differs: safetensors
-- is used, and a NOTICE says so
SELECT finbert_load_model('fmt_both', 'formats/both_differ');
SELECT weight_file, weight_files FROM finbert_models WHERE name = 'fmt_both';

-- a pickle calling os.system: refused as data_corrupted, never run
SELECT pg_temp.try_msg($$SELECT finbert_load_model('fmt_evil', 'formats/bin_evil')$$,
                       'pytorch_model.bin.*os\.system.*not allowed');
SELECT count(*) FROM finbert_models WHERE name = 'fmt_evil';

SELECT finbert_unload_model(name) FROM finbert_models WHERE name LIKE 'fmt\_%' ORDER BY name;

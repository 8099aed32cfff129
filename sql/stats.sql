--
-- stats: the finbert_stats view (cluster-wide counters, preloaded)
--
SELECT scope, execution = current_setting('finbert.execution') AS execution_shown,
       worker_pid IS NOT NULL AS worker_running, worker_state IN ('idle', 'collecting', 'running') AS worker_state_ok,
       queue_depth, slots_in_use
  FROM finbert_stats;
SELECT requests > 0 AS requests, texts >= requests AS texts, batches > 0 AS batches,
       tokens > texts AS tokens, busy_ms > 0 AS busy, tokens_per_second > 0 AS rate,
       errors > 0 AS errors, model_loads > 0 AS loads,
       mean_batch_size >= 1 AS mean_batch
  FROM finbert_stats;

SELECT finbert_stats_reset();
SELECT requests, texts, batches, tokens, errors FROM finbert_stats;

-- one request of three texts: one engine batch
SELECT finbert_sentiment(ARRAY['央行降准', '股价大涨', NULL]);
SELECT requests, texts, batches, mean_batch_size, tokens FROM finbert_stats;
-- tokenization counts tokens but runs no batch
SELECT finbert_tokenize('央行降准');
SELECT requests, texts, batches, tokens FROM finbert_stats;
-- failures count as errors
SELECT finbert_sentiment('x', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT requests, errors FROM finbert_stats;

-- tokens are what the model runs, as the engine counts them: each window
-- over a long text with its [CLS] and [SEP] (100 tokens in windows of 16
-- advanced by 10: 10 windows)
SELECT finbert_stats_reset();
SET finbert.max_length = 16;
SELECT count(*) >= 0 AS ran FROM finbert_entities(repeat('股市大涨', 25));
RESET finbert.max_length;
SELECT requests, texts, tokens FROM finbert_stats;

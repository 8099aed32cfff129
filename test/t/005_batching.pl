# The Finbert Batch node (src/pg/batch.c) on a cluster that also preloads
# pg_stat_statements (another extension's planner and executor hooks):
#  - the node is placed, results equal finbert.batching = off, and
#    pg_stat_statements still records the statements;
#  - finbert.execution = worker: one worker request per batch
#    (finbert_stats.worker_requests), per row one per text;
#  - parallel query: the node runs in each parallel worker, same results;
#  - a session that has not loaded finbert plans and runs as before.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use FinbertTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = finbert_node(
	'batching', conf => q{
shared_preload_libraries = 'pg_stat_statements,finbert'
pg_stat_statements.track = all
max_parallel_workers_per_gather = 2
});
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_stat_statements;
CREATE TABLE news AS
SELECT i AS id,
       CASE WHEN i % 13 = 0 THEN NULL
            ELSE (ARRAY['宁德时代CATL与Tesla签署长期供货协议，股价大涨5%',
                        'Apple Inc. reported record quarterly revenue of $123.9 billion.',
                        '贵州茅台2023年营收同比增长18.04%'])[i % 3 + 1] || ' #' || i END AS body
  FROM generate_series(1, 300) i;
ANALYZE news;
});

my $q = 'SELECT id, finbert_sentiment(body), finbert_companies(body), '
  . 'finbert_tokenize(body) FROM news ORDER BY id';

sub output
{
	my ($setting, $query, @more) = @_;
	return $node->safe_psql('postgres',
		join(';', "SET finbert.batching = $setting", @more, $query));
}

like(output('on', "EXPLAIN (COSTS OFF) $q"), qr/Custom Scan \(Finbert Batch\)/,
	'node placed with pg_stat_statements loaded');
unlike(output('off', "EXPLAIN (COSTS OFF) $q"), qr/Finbert Batch/, 'off: per-row plan');
my $off = output('off', $q);
is(output('on', $q), $off, 'same output as per row (inline)');
is( $node->safe_psql('postgres',
		"SELECT sum(calls) >= 2 FROM pg_stat_statements WHERE query LIKE 'SELECT id, finbert_sentiment(body), finbert_companies%'"),
	't',
	'pg_stat_statements records the statements');

# worker: one request per batch (1 + 4 + 16 + 64 + 215 rows → 5 batches,
# 3 calls each; a batch's NULLs are left out)
my @worker = ('SET finbert.execution = worker');
is(output('on', $q, @worker), $off, 'same output as per row (worker)');
$node->safe_psql('postgres', 'SELECT finbert_stats_reset()');
output('on', 'SELECT count(finbert_sentiment(body)) FROM news', @worker);
my $s = stats($node);
is($s->{worker_requests}, 5, 'worker: one request per batch');
is($s->{texts}, 277, 'every non-NULL text once');
$node->safe_psql('postgres', 'SELECT finbert_stats_reset()');
output('off', 'SELECT count(finbert_sentiment(body)) FROM news', @worker);
is(stats($node)->{worker_requests}, 277, 'per row: one request per text');

# parallel query: each parallel worker batches its own rows
my @par = ('SET parallel_setup_cost = 0', 'SET parallel_tuple_cost = 0',
	'SET min_parallel_table_scan_size = 0');
my $pq = 'SELECT id, finbert_sentiment(body) FROM news';
my $plan = output('on', "EXPLAIN (COSTS OFF) $pq", @par);
like($plan, qr/Gather.*Finbert Batch.*Parallel Seq Scan/s, 'node below Gather, above the parallel scan');
my $analyze = output('on', "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) $pq", @par);
like($analyze, qr/Workers Launched: [12]/, 'parallel workers ran');
is(output('on', "SELECT * FROM ($pq) t ORDER BY id", @par),
	output('off', "SELECT * FROM ($pq) t ORDER BY id", @par),
	'parallel: same output as per row');
is(output('on', "SELECT * FROM ($pq) t ORDER BY id", @par, @worker),
	output('off', "SELECT * FROM ($pq) t ORDER BY id"),
	'parallel + worker: same output');

# UPDATE meeting a concurrent update: EvalPlanQual rechecks the row through
# the node, and the new value is computed on the committed new text
$node->safe_psql('postgres', 'ALTER TABLE news ADD COLUMN label text');
my $a = start_psql($node,
	[ 'BEGIN', "UPDATE news SET body = 'Tesla shares plunge after recall' WHERE id = 5",
	  'SELECT pg_sleep(2)', 'COMMIT' ], name => 'epq_holder');
ok(defined poll_until($node,
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'epq_holder' AND query LIKE '%pg_sleep%'", 20),
	'the concurrent update holds the row');
like(output('on', 'EXPLAIN (COSTS OFF) UPDATE news SET label = finbert_sentiment(body) WHERE id <= 10'),
	qr/Finbert Batch/, 'the UPDATE is batched');
output('on', 'UPDATE news SET label = finbert_sentiment(body) WHERE id <= 10');
finish_psql($a);
is($a->{rc}, 0, 'the concurrent update committed');
is( output('off',
		"SELECT count(*) FILTER (WHERE label IS NOT DISTINCT FROM finbert_sentiment(body)) || '/' || count(*) FROM news WHERE id <= 10"),
	'10/10', 'every label is that of the row version updated, row 5 rechecked');
is(output('off', "SELECT body FROM news WHERE id = 5"), 'Tesla shares plunge after recall',
	'row 5 has the new text');

# a database without the extension: the hook finds no finbert call
$node->safe_psql('postgres', 'CREATE DATABASE plain');
is($node->safe_psql('plain', 'SELECT count(*) FROM generate_series(1, 10)'), '10',
	'no extension: queries plan and run');

$node->stop;
done_testing();

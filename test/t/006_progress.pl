# finbert_progress (src/pg/progress.c): the progress of a statement whose
# finbert calls run in batches, read from another session while it runs,
# and the row gone when the statement ends, fails or is cancelled.
#
# The statement sleeps 10 ms per row above the batch node (pg_sleep in the
# outer query: the batched scan below has no volatile function), so it
# runs for a few seconds whatever the machine.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use FinbertTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = finbert_node('progress');
$node->safe_psql('postgres', q{
CREATE TABLE news AS
SELECT i AS id, 'Apple Inc. reported record quarterly revenue ' || i AS body
  FROM generate_series(1, 400) i;
ANALYZE news;
});

my $slow = q{SELECT count(s), count(p) FROM (SELECT id, s, pg_sleep(0.01) p
  FROM (SELECT id, finbert_sentiment(body) s FROM news OFFSET 0) t) u};
my $failing = q{SELECT count(s), count(p), count(1 / (300 - id)) FROM (SELECT id, s, pg_sleep(0.01) p
  FROM (SELECT id, finbert_sentiment(body) s FROM news OFFSET 0) t) u};
my @setup = ('SET finbert.batch_rows = 16');
my $others = q{FROM finbert_progress WHERE pid <> pg_backend_pid()};

# the plan batches the scan below the sleeping projection
like($node->safe_psql('postgres', "EXPLAIN (COSTS OFF) $slow"),
	qr/Finbert Batch/, 'the statement is batched');

# while it runs: one row, with the model, rows done growing towards the
# plan's estimate, tokens and a rate
my $h = start_psql($node, [ @setup, $slow ], name => 'progress_ok');
ok(defined poll_until($node, "SELECT count(*) = 1 AND min(rows_done) > 0 $others", 20),
	'a running statement shows in finbert_progress');
my $row1 = $node->safe_psql('postgres',
	"SELECT model, rows_expected, rows_done, tokens_done > 0, tokens_per_second > 0, seconds_left >= 0, "
	  . "query_start <= now(), leader_pid IS NULL $others");
my ($model, $expected, $done1, @flags) = split /\|/, $row1;
is($model, 'cls', 'model');
is($expected, 400, 'rows expected: the plan estimate');
is(join(',', @flags), 't,t,t,t,t', 'tokens, rate, time left, start, no leader');
ok(defined poll_until($node, "SELECT min(rows_done) > $done1 $others", 20),
	'rows done grow batch by batch');
finish_psql($h);
is($h->{rc}, 0, 'the statement completes');
is($h->{out}, '400|400', 'all rows');
is($node->safe_psql('postgres', "SELECT count(*) $others"), '0', 'the row goes when the statement ends');

# an error ends the statement: the row goes
$h = start_psql($node, [ @setup, $failing ], name => 'progress_error');
ok(defined poll_until($node, "SELECT count(*) = 1 $others", 20), 'the failing statement shows');
finish_psql($h);
like($h->{err}, qr/division by zero/, 'the statement fails');
is($node->safe_psql('postgres', "SELECT count(*) $others"), '0', 'the row goes after an error');

# a cancel ends it: the row goes
$h = start_psql($node, [ @setup, $slow ], name => 'progress_cancel');
ok(defined poll_until($node, "SELECT count(*) = 1 $others", 20), 'the statement to cancel shows');
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'progress_cancel'");
finish_psql($h);
like($h->{err}, qr/canceling statement/, 'the statement is cancelled');
is($node->safe_psql('postgres', "SELECT count(*) $others"), '0', 'the row goes after a cancel');

# the session goes on: a later statement publishes again, in the same session
$h = start_psql($node, [ @setup, $failing, $slow ], name => 'progress_again', on_error_stop => 0);
ok(defined poll_until($node, "SELECT count(*) = 1 AND min(rows_done) > 0 $others", 20),
	'the first statement shows');
finish_psql($h);
is($node->safe_psql('postgres', "SELECT count(*) $others"), '0', 'gone after both');

# negative control: per-row (batching off) publishes nothing
$h = start_psql($node, [ 'SET finbert.batching = off', $slow ], name => 'progress_off');
ok(!defined poll_until($node, "SELECT count(*) > 0 $others", 2),
	'no progress without the batch node');
finish_psql($h);
is($h->{rc}, 0, 'per-row statement completes');

$node->stop;
done_testing();

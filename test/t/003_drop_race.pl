# Model unload and DROP EXTENSION racing with calls (CHECKLIST
# "Concurrency"): no hang, no crash, every error a clean ERROR; the cache
# writer copes with the extension disappearing under it (one LOG line).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use FinbertTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = finbert_node('race');
my $log_offset = -s $node->logfile;

# Calls in worker and inline mode, one statement each, while another
# session unloads and reloads the model and a third drops and recreates
# the extension.
my $ncalls = 300;
my @calls = map {
	(   "SELECT finbert_sentiment('并发卸载$_', 'cls') IS NOT NULL, finbert_embed('并发嵌入$_') IS NOT NULL",
		'SELECT pg_sleep(0.01)')
} 1 .. $ncalls;
my $worker = start_psql($node, [ 'SET finbert.execution = worker', @calls ],
	name => 'calls_worker', on_error_stop => 0);
my $inline = start_psql($node, [ 'SET finbert.execution = inline', @calls ],
	name => 'calls_inline', on_error_stop => 0);
my $unload = start_psql(
	$node,
	[
		map {
			(   "SELECT finbert_unload_model('cls')", 'SELECT pg_sleep(0.02)',
				"SELECT finbert_load_model('cls', 'cls')", 'SELECT pg_sleep(0.05)')
		} 1 .. 40
	],
	name => 'unload', on_error_stop => 0);
my $drop = start_psql(
	$node,
	[
		map {
			(   'SELECT pg_sleep(0.3)', 'DROP EXTENSION finbert', 'SELECT pg_sleep(0.05)',
				'CREATE EXTENSION finbert',
				"SELECT finbert_load_model(m, m) FROM unnest(ARRAY['cls', 'encoder']) m")
		} 1 .. 8
	],
	name => 'drop', on_error_stop => 0);

my @r = map { finish_psql($_) } ($worker, $inline, $unload, $drop);
is(scalar(grep { $_->{timed_out} } @r), 0, 'no session hangs');
my %errors;
for my $r (@r)
{
	$errors{$1}++ while $r->{err} =~ /ERROR:  ([^\n]*)/g;
}
diag("errors seen by the racing sessions:");
diag(sprintf("  %4d  %s", $errors{$_}, $_)) for sort keys %errors;
my @unexpected = grep { /malformed|internal|unexpected|crash|terminat|worker/ } keys %errors;
is_deeply(\@unexpected, [], 'only clean errors (missing function, model or relation)');
my $ok_worker = () = $r[0]{out} =~ /^t\|t$/mg;
my $ok_inline = () = $r[1]{out} =~ /^t\|t$/mg;
cmp_ok($ok_worker, '>', 0, "calls succeed in worker mode between the drops ($ok_worker of $ncalls)");
cmp_ok($ok_inline, '>', 0, "calls succeed inline between the drops ($ok_inline of $ncalls)");
my $log = log_since($node, $log_offset);
unlike($log, qr/terminated by signal|PANIC|server process .* exited with exit code [^01]/,
	'no process crashed');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up');
$node->safe_psql('postgres', "SELECT finbert_load_model('cls', 'cls')");
is( $node->safe_psql('postgres',
		"SET finbert.execution = worker; SELECT finbert_sentiment('之后') IS NOT NULL"),
	't',
	'the worker serves calls afterwards');
ok(defined poll_until($node, 'SELECT slots_in_use = 0 FROM finbert_stats', 10),
	'no slot is left in use');

# The extension dropped while the writer has embeddings to write: it logs
# that once and discards them; recreated, it writes again.
ok(defined poll_until($node, 'SELECT cache_pending = 0 AND cache_writer_pid IS NOT NULL FROM finbert_stats', 30),
	'the cache writer is idle');
$log_offset = -s $node->logfile;
$node->safe_psql(
	'postgres', q{
BEGIN;
-- keeps the writer out until the table is gone
LOCK TABLE finbert.embedding_cache IN ACCESS EXCLUSIVE MODE;
SELECT count(finbert_embed(t)) FROM unnest(ARRAY['删除前一', '删除前二', '删除前三']) t;
SELECT pg_sleep(0.2);
SELECT count(finbert_embed(t)) FROM unnest(ARRAY['删除前四', '删除前五']) t;
DROP EXTENSION finbert;
COMMIT;
});
$node->safe_psql('postgres', 'CREATE EXTENSION finbert');
ok(defined poll_until($node, 'SELECT cache_pending = 0 FROM finbert_stats', 30),
	'the queued embeddings are discarded');
$log = log_since($node, $log_offset);
my $missing = () = $log =~ /extension finbert is not installed in database "postgres"/g;
is($missing, 1, 'the writer logs the missing extension once');
$node->safe_psql('postgres', "SELECT finbert_load_model('encoder', 'encoder')");
$node->safe_psql('postgres', "SELECT finbert_embed('重新安装后')");
ok(defined poll_until($node, 'SELECT count(*) = 1 FROM finbert.embedding_cache', 30),
	'after CREATE EXTENSION the writer writes again');
like(log_since($node, $log_offset), qr/writing embeddings to finbert.embedding_cache in database "postgres" again/,
	'and says so');

$node->stop;
done_testing();

# Quiet clean shutdowns of the finbert worker and the cache writer
# (src/pg/shutdown.c), each wait bounded:
#  - pg_ctl stop -m smart with a request running: the request completes,
#    no FATAL or ERROR line of finbert in the server log, both workers exit
#    with code 0;
#  - pg_ctl stop -m fast with batches in flight: the same, promptly;
#  - pg_ctl stop -m fast while the cache writer waits for a lock that is
#    never released (a prepared transaction holds it): the writer's flush
#    is cancelled, the stop is prompt and quiet;
#  - a stray SIGTERM (kill) of the worker while the server runs: one LOG
#    line, exit code 1, the postmaster starts a new worker; of the cache
#    writer (pg_terminate_backend): the same, and the next embedding starts
#    a new one;
#  - the postmaster killed: both exit within 5 s.
# Exit codes come from the postmaster's "exited with exit code" lines
# (code 0 is logged at DEBUG1, hence log_min_messages).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use FinbertTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = finbert_node(
	'shutdown', conf => q{
log_min_messages = debug1
max_prepared_transactions = 2
});
my $long = "repeat('股市大涨，宁德时代签约。', 20000)";    # ~3 s in the worker
my @worker = ('SET finbert.execution = worker');
my $round = 0;

# FATAL, ERROR or PANIC lines of the log that name finbert (in the
# process type of the prefix or in the message).
sub finbert_errors
{
	my ($log) = @_;
	return grep { /\b(?:FATAL|ERROR|PANIC):/ && /finbert/i } split /\n/, $log;
}

# { pid => exit code } of the finbert background workers in the log.
sub exit_codes
{
	my ($log, $type) = @_;
	my %codes;
	$codes{$1} = $2
	  while $log =~ /background worker "\Q$type\E" \(PID (\d+)\) exited with exit code (\d+)/g;
	return \%codes;
}

# Starts the worker and the cache writer (with an embedding nobody cached
# yet); returns their pids.
sub warm_up
{
	$round++;
	$node->safe_psql('postgres', join(';', @worker, "SELECT finbert_sentiment('预热')"));
	$node->safe_psql('postgres', "SELECT count(finbert_embed('关机测试$round'))");
	ok(defined poll_until($node,
			'SELECT cache_writer_pid IS NOT NULL AND cache_pending = 0 FROM finbert_stats', 30),
		'the cache writer runs and has written the embedding');
	my $s = stats($node);
	return ($s->{worker_pid}, $s->{cache_writer_pid});
}

# Stops the node in $mode (bounded); checks the log written meanwhile.
sub check_quiet_stop
{
	my ($mode, $what, $wpid, $cpid) = @_;
	my $offset = -s $node->logfile;
	my $t0 = time;
	my $stopped;
	{
		local $ENV{PGCTLTIMEOUT} = 30;
		$stopped = $node->stop($mode, fail_ok => 1);
	}
	my $seconds = time - $t0;
	ok($stopped, "$what: pg_ctl stop -m $mode succeeds");
	my $log = log_since($node, $offset);
	my @errors = finbert_errors($log);
	is(scalar(@errors), 0, "$what: no FATAL or ERROR line of finbert in the log")
	  or diag(join("\n", @errors));
	is(exit_codes($log, 'finbert worker')->{$wpid}, 0,
		"$what: the worker (PID $wpid) exits with code 0");
	is(exit_codes($log, 'finbert cache writer')->{$cpid}, 0,
		"$what: the cache writer (PID $cpid) exits with code 0");
	return $seconds;
}

# ---------------------------------------------------------------------
# smart: a running request completes, then a quiet stop
# ---------------------------------------------------------------------
my ($wpid, $cpid) = warm_up();
my $running = start_psql($node, [ @worker, "SELECT count(*) >= 0 FROM finbert_entities($long)" ],
	name => 'running');
ok(defined poll_until($node, 'SELECT running_requests = 1 FROM finbert_stats', 30),
	'smart: a request runs in the worker');
my $smart = check_quiet_stop('smart', 'smart', $wpid, $cpid);
my $r = finish_psql($running);
is($r->{rc}, 0, 'smart: the running request completes');
is($r->{out}, 't', 'smart: with its result');
diag(sprintf("stop -m smart with a request running: %.2f s", $smart));

# ---------------------------------------------------------------------
# fast: batches in flight are abandoned, promptly and quietly
# ---------------------------------------------------------------------
$node->start;
($wpid, $cpid) = warm_up();
$running = start_psql($node, [ @worker, "SELECT count(*) FROM finbert_entities($long)" ],
	name => 'running');
ok(defined poll_until($node, 'SELECT running_requests = 1 FROM finbert_stats', 30),
	'fast: a request runs in the worker');
my @waiting = map {
	start_psql($node, [ @worker, "SELECT count(*) FROM finbert_entities($long)" ],
		name => "waiting$_")
} 1 .. 3;
ok(defined poll_until($node, 'SELECT queue_depth = 3 FROM finbert_stats', 30),
	'fast: more batches wait');
my $fast = check_quiet_stop('fast', 'fast', $wpid, $cpid);
cmp_ok($fast, '<', 10, 'fast: the stop is prompt');
finish_psql($_) for ($running, @waiting);
diag(sprintf("stop -m fast with batches in flight: %.2f s", $fast));

# ---------------------------------------------------------------------
# fast while the cache writer waits for a lock nobody releases
# ---------------------------------------------------------------------
$node->start;
($wpid, $cpid) = warm_up();
$node->safe_psql('postgres',
	"BEGIN; LOCK TABLE finbert.embedding_cache IN SHARE MODE; PREPARE TRANSACTION 'finbert_block'");
$node->safe_psql('postgres', "SELECT count(finbert_embed('锁等待中的写入'))");
ok( defined poll_until(
		$node,
		"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE backend_type = 'finbert cache writer'",
		30),
	'locked: the cache writer waits for the lock');
my $locked = check_quiet_stop('fast', 'locked', $wpid, $cpid);
cmp_ok($locked, '<', 10, 'locked: the stop is prompt');
diag(sprintf("stop -m fast with the cache writer in a lock wait: %.2f s", $locked));
$node->start;
$node->safe_psql('postgres', "ROLLBACK PREPARED 'finbert_block'");

# ---------------------------------------------------------------------
# a stray SIGTERM while the server runs: exit code 1, a new one
# ---------------------------------------------------------------------
($wpid, $cpid) = warm_up();
my $offset = -s $node->logfile;
kill 'TERM', $wpid;    # no PGPROC: pg_terminate_backend cannot reach it
my $new = 0;
my $t0 = time;
while (time - $t0 < 15)
{
	$new = worker_pid($node);
	last if $new && $new != $wpid;
	usleep(20_000);
}
ok($new && $new != $wpid, "stray SIGTERM: a new worker runs (PID $new)");
like($node->safe_psql('postgres', join(';', @worker, "SELECT finbert_sentiment('重启之后')")),
	qr/\w/, 'stray SIGTERM: the new worker serves requests');

$node->safe_psql('postgres', "SELECT pg_terminate_backend($cpid)");
ok( defined poll_until(
		$node,
		"SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $cpid)", 15),
	'stray SIGTERM: the cache writer exits');
$node->safe_psql('postgres', "SELECT count(finbert_embed('写入者重启之后'))");
ok( defined poll_until(
		$node,
		"SELECT cache_writer_pid IS NOT NULL AND cache_writer_pid <> $cpid AND cache_pending = 0 FROM finbert_stats",
		30),
	'stray SIGTERM: the next embedding starts a new cache writer');

my $log = log_since($node, $offset);
is(exit_codes($log, 'finbert worker')->{$wpid}, 1, 'stray SIGTERM: the worker exits with code 1');
is(exit_codes($log, 'finbert cache writer')->{$cpid}, 1,
	'stray SIGTERM: the cache writer exits with code 1');
like($log, qr/LOG:  finbert worker stopping on SIGTERM while the server keeps running/,
	'stray SIGTERM: the worker says why in one LOG line');
like($log, qr/LOG:  finbert cache writer stopping on SIGTERM while the server keeps running/,
	'stray SIGTERM: so does the cache writer');
is(scalar(finbert_errors($log)), 0, 'stray SIGTERM: no FATAL or ERROR line of finbert');

# ---------------------------------------------------------------------
# the postmaster killed: both exit within 5 s
# ---------------------------------------------------------------------
($wpid, $cpid) = warm_up();
$t0 = time;
kill 'KILL', $node->{_pid};
my ($wgone, $cgone);
while (time - $t0 < 10 && !(defined $wgone && defined $cgone))
{
	$wgone //= time - $t0 if !process_alive($wpid);
	$cgone //= time - $t0 if !process_alive($cpid);
	usleep(20_000);
}
ok(defined $wgone && $wgone < 5, 'postmaster killed: the worker exits within 5 s');
ok(defined $cgone && $cgone < 5, 'postmaster killed: the cache writer exits within 5 s');
diag(sprintf("postmaster killed: worker gone after %.3f s, cache writer after %.3f s",
		$wgone // -1, $cgone // -1));
ok(start_after_postmaster_death($node), 'the node starts again');
$node->stop;
done_testing();

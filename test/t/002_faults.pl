# Faults of the finbert worker (CHECKLIST "Faults"), each bounded by a
# timeout that fails the test instead of hanging it:
#  - SIGTERM while the server runs: the worker exits with code 1, the
#    request it was running fails with an ERROR, the postmaster restarts
#    it, queued requests are then served (a shutdown's SIGTERM ends it
#    with code 0 and no message: 004_shutdown.pl);
#  - kill -9 mid-batch: waiting sessions get an error, the cluster
#    recovers, the worker comes back, later calls succeed;
#  - cache rows survive a restart;
#  - pg_ctl stop -m fast with batches in flight finishes promptly;
#  - the postmaster killed: the worker exits within 5 s;
#  - no worker at all: callers get an ERROR after finbert.worker_timeout.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use FinbertTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = finbert_node('faults');
my $long = "repeat('股市大涨，宁德时代签约。', 20000)";    # ~3 s in the worker
my @worker = ('SET finbert.execution = worker');

sub new_worker_pid
{
	my ($old, $seconds) = @_;
	my $start = time;
	while (time - $start < $seconds)
	{
		my $pid = worker_pid($node);
		return ($pid, time - $start) if $pid && $pid != $old;
		usleep(20_000);
	}
	return (0, undef);
}

# ---------------------------------------------------------------------
# SIGTERM
# ---------------------------------------------------------------------
$node->safe_psql('postgres', "SET finbert.execution = worker; SELECT finbert_sentiment('预热')");
my $pid = worker_pid($node);
ok($pid > 0, "the worker runs (pid $pid)");
my $log_offset = -s $node->logfile;
my $running = start_psql($node, [ @worker, "SELECT count(*) FROM finbert_entities($long)" ],
	name => 'running');
ok(defined poll_until($node, 'SELECT running_requests = 1 FROM finbert_stats', 30),
	'a request runs in the worker');
my $queued = start_psql($node, [ @worker, "SELECT finbert_sentiment('排队中的请求')" ],
	name => 'queued');
ok(defined poll_until($node, 'SELECT queue_depth = 1 FROM finbert_stats', 30),
	'another waits in the queue');
my $t0 = time;
kill 'TERM', $pid;
my $r = finish_psql($running);
my $term_latency = time - $t0;
isnt($r->{rc}, 0, 'the running request fails');
like($r->{err}, qr/ERROR:  finbert worker (stopped the request|exited while running the request)/,
	'with an ERROR from the worker');
my ($pid2, $restart) = new_worker_pid($pid, 15);
ok($pid2, "the worker is restarted (pid $pid2)");
my $q = finish_psql($queued);
is($q->{rc}, 0, 'the queued request is served by the new worker');
like(log_since($node, $log_offset),
	qr/background worker "finbert worker" \(PID $pid\) exited with exit code 1/,
	'the worker exited with code 1');
diag(sprintf("SIGTERM: the running request failed after %.3f s, new worker after %.2f s",
		$term_latency, $restart // -1));
cmp_ok($term_latency, '<', 5, 'the worker stops its batch promptly');

# ---------------------------------------------------------------------
# kill -9 mid-batch
# ---------------------------------------------------------------------
$pid = worker_pid($node);
$running = start_psql($node, [ @worker, "SELECT count(*) FROM finbert_entities($long)" ],
	name => 'running');
ok(defined poll_until($node, 'SELECT running_requests = 1 FROM finbert_stats', 30),
	'a request runs in the worker');
my @waiting = map {
	start_psql($node, [ @worker, "SELECT finbert_sentiment('等待$_')" ], name => "waiting$_")
} 1 .. 3;
ok(defined poll_until($node, 'SELECT queue_depth = 3 FROM finbert_stats', 30),
	'three more wait');
$t0 = time;
kill 'KILL', $pid;
my @k = map { finish_psql($_) } ($running, @waiting);
my $kill_latency = time - $t0;
is(scalar(grep { $_->{rc} != 0 && !$_->{timed_out} } @k), 4,
	'every waiting session gets an error, none hangs');
my $back = poll_until($node, 'SELECT worker_pid IS NOT NULL FROM finbert_stats', 60);
ok(defined $back, 'the cluster recovers and the worker comes back');
like($node->safe_psql('postgres', "SET finbert.execution = worker; SELECT finbert_sentiment('恢复')"),
	qr/\w/, 'later calls succeed');
diag(sprintf("kill -9: sessions got their errors after %.3f s, worker back after %.2f s more",
		$kill_latency, $back // -1));

# ---------------------------------------------------------------------
# cache rows survive a restart
# ---------------------------------------------------------------------
$node->safe_psql('postgres',
	"SELECT count(finbert_embed(t)) FROM unnest(ARRAY['重启前一', '重启前二', '重启前三']) t");
ok(defined poll_until($node, 'SELECT cache_pending = 0 FROM finbert_stats', 30), 'flushed');
my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM finbert.embedding_cache');
cmp_ok($rows, '>=', 3, "$rows cache rows");
$node->restart;
is($node->safe_psql('postgres', 'SELECT count(*) FROM finbert.embedding_cache'),
	$rows, 'the cache rows survive a restart');
is( $node->safe_psql(
		'postgres',
		"SELECT count(finbert_embed(t)) FROM unnest(ARRAY['重启前一', '重启前二', '重启前三']) t;"
		  . " SELECT cache_hits FROM finbert_stats"),
	"3\n3",
	'and are hits after it');

# ---------------------------------------------------------------------
# pg_ctl stop -m fast with batches in flight
# ---------------------------------------------------------------------
$running = start_psql($node, [ @worker, "SELECT count(*) FROM finbert_entities($long)" ],
	name => 'running');
ok(defined poll_until($node, 'SELECT running_requests = 1 FROM finbert_stats', 30),
	'a request runs in the worker');
@waiting = map {
	start_psql($node, [ @worker, "SELECT count(*) FROM finbert_entities($long)" ], name => "waiting$_")
} 1 .. 3;
ok(defined poll_until($node, 'SELECT queue_depth = 3 FROM finbert_stats', 30),
	'more batches wait');
$t0 = time;
$node->stop('fast');
my $stop_time = time - $t0;
finish_psql($_) for ($running, @waiting);
cmp_ok($stop_time, '<', 5, 'pg_ctl stop -m fast finishes promptly');
diag(sprintf("stop -m fast with batches in flight: %.2f s", $stop_time));
$node->start;

# ---------------------------------------------------------------------
# the postmaster killed: the worker exits within 5 s
# ---------------------------------------------------------------------
$pid = worker_pid($node);
$running = start_psql($node, [ @worker, "SELECT count(*) FROM finbert_entities($long)" ],
	name => 'running');
ok(defined poll_until($node, 'SELECT running_requests = 1 FROM finbert_stats', 30),
	'a request runs in the worker');
$t0 = time;
kill 'KILL', $node->{_pid};
my $gone;
while (time - $t0 < 10)
{
	if (!process_alive($pid)) { $gone = time - $t0; last; }
	usleep(20_000);
}
finish_psql($running);
ok(defined $gone && $gone < 5, 'the busy worker exits within 5 s of the postmaster');
diag(sprintf("postmaster killed: the busy worker exited after %.3f s", $gone // -1));
ok(start_after_postmaster_death($node), 'the node starts again');

# ---------------------------------------------------------------------
# no worker: an ERROR after finbert.worker_timeout, auto runs inline
# ---------------------------------------------------------------------
my $none = finbert_node('noworker', conf => "max_worker_processes = 0\n");
$t0 = time;
my ($rc, $out, $err) = $none->psql('postgres',
	"SET finbert.execution = worker; SET finbert.worker_timeout = '1s'; SELECT finbert_sentiment('无人服务')");
my $timeout_latency = time - $t0;
isnt($rc, 0, 'without a worker, worker mode fails');
like($err, qr/finbert worker is not running/, 'with "finbert worker is not running"');
cmp_ok($timeout_latency, '<', 4, 'after finbert.worker_timeout');
is($none->safe_psql('postgres', "SELECT finbert_sentiment('无人服务') IS NOT NULL"),
	't', 'auto runs inline');
diag(sprintf("no worker: the error came after %.2f s (worker_timeout 1 s)", $timeout_latency));
$none->stop;

$node->stop;
done_testing();

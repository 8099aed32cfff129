# The engine host process (issue 16): the finbert worker runs the engine
# (and, on a GPU, the CUDA context) in a child process of its own, so that
# a fault there never restarts the database.  No GPU here: finbert.device =
# cuda with finbert.cuda_module pointing at the CPU execution harness build
# of the CUDA backend (build/finbert_cuda_harness.so), so the CUDA
# backend's code runs in the host.
#  - device = auto without a module: the CPU, said once in the log;
#  - device = cuda: results through the host equal those inline on the CPU
#    (labels and entity spans equal, scores within 2e-2); finbert_models
#    and finbert_stats show the device;
#  - kill -9 and SIGSEGV of the host under concurrent load: the statements
#    of that batch fail with SQLSTATE 58000 "finbert engine host died and
#    was restarted", every session keeps its connection, the worker and
#    the postmaster are untouched (no crash recovery), the next call runs
#    on a new host;
#  - a hung host (SIGSTOP): killed after finbert.host_timeout, the request
#    fails with the same ERROR, nothing hangs;
#  - device = cuda without a module: a clear ERROR naming what is missing.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use FinbertTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $harness = $ENV{FINBERT_CUDA_HARNESS};
plan skip_all => 'the CUDA harness module is not built'
  unless $harness && -f $harness;

my $missing = '/nonexistent/finbert_cuda.so';
my $node = finbert_node('host', conf => qq{
finbert.device = auto
finbert.cuda_module = '$missing'
finbert.worker_threads = 2
finbert.batch_wait_ms = 5
});

my @texts = ('股市大涨，宁德时代签约。', '公司亏损严重，股价下跌', '央行宣布降息');
my $array = 'ARRAY[' . join(', ', map { "'$_'" } @texts) . ']';

# ---------------------------------------------------------------------
# device = auto, no module: the CPU, said once
# ---------------------------------------------------------------------
ok(defined poll_until($node, "SELECT device = 'cpu' FROM finbert_stats", 30),
	'auto without a module: the worker runs on the CPU');
$node->safe_psql('postgres', "SET finbert.execution = worker; SELECT finbert_sentiment($array)");
my $auto_lines = () = slurp_file($node->logfile) =~
  /finbert\.device = auto: no usable CUDA device, the models run on the CPU/g;
is($auto_lines, 1, 'said once in the log');
like(slurp_file($node->logfile), qr/DETAIL:  .*\Q$missing\E/,
	'naming the module it did not find');

# references: inline on the CPU
sub results
{
	my ($exec) = @_;
	my $set = $exec ? "SET finbert.execution = $exec;" : '';
	my %r;
	$r{scores} = $node->safe_psql('postgres',
		"$set SELECT s FROM unnest(finbert_scores($array, 'cls')) s");
	$r{entities} = $node->safe_psql('postgres',
		"$set SELECT string_agg(entity || '/' || label || '/' || start_pos || '-' || end_pos, ' ' "
		  . "ORDER BY start_pos) FROM finbert_entities('$texts[0]')");
	$r{embed} = $node->safe_psql('postgres',
		"$set SELECT array_to_string(finbert_embed('$texts[1]'), ',')");
	return \%r;
}

sub same_scores
{
	my ($want, $got, $what) = @_;
	my @x = split /\n/, $want;
	my @y = split /\n/, $got;
	is(scalar(@y), scalar(@x), "$what: as many rows");
	my ($worst, $labels_equal) = (0, 1);
	for my $i (0 .. $#x)
	{
		my %p = $x[$i] =~ /"([^"]+)": ([-0-9.e]+)/g;
		my %q = $y[$i] =~ /"([^"]+)": ([-0-9.e]+)/g;
		my ($bp) = sort { $p{$b} <=> $p{$a} } keys %p;
		my ($bq) = sort { $q{$b} <=> $q{$a} } keys %q;
		$labels_equal = 0 unless defined $bq && $bp eq $bq;
		for my $k (keys %p)
		{
			my $d = abs($p{$k} - ($q{$k} // 1e9));
			$worst = $d if $d > $worst;
		}
	}
	ok($labels_equal, "$what: same labels");
	cmp_ok($worst, '<', 2e-2, "$what: scores within 2e-2 (worst $worst)");
}

sub same_vector
{
	my ($want, $got, $what) = @_;
	my @x = split /,/, $want;
	my @y = split /,/, $got;
	my $worst = @x == @y ? 0 : 1e9;
	for my $i (0 .. $#x)
	{
		my $d = abs($x[$i] - ($y[$i] // 1e9));
		$worst = $d if $d > $worst;
	}
	cmp_ok($worst, '<', 2e-2, "$what: within 2e-2 (worst $worst)");
}

my $ref = results('inline');
ok(length $ref->{scores} && length $ref->{embed}, 'reference results inline on the CPU');

# the CPU engine in the host (finbert.engine_host = on): same results
$node->safe_psql('postgres',
	"ALTER SYSTEM SET finbert.engine_host = on; SELECT pg_reload_conf()");
ok(defined poll_until($node, 'SELECT engine_host_pid IS NOT NULL FROM finbert_stats', 30),
	'engine_host = on: the worker runs the CPU engine in a host process');
my $cpu_host = results('worker');
same_scores($ref->{scores}, $cpu_host->{scores}, 'CPU engine in the host');
is($cpu_host->{entities}, $ref->{entities}, 'CPU engine in the host: same entities');
$node->safe_psql('postgres',
	"ALTER SYSTEM RESET finbert.engine_host; SELECT pg_reload_conf()");

# ---------------------------------------------------------------------
# device = cuda on the harness
# ---------------------------------------------------------------------
$node->safe_psql('postgres',
	"ALTER SYSTEM SET finbert.device = 'cuda'; "
	  . "ALTER SYSTEM SET finbert.cuda_module = '$harness'; SELECT pg_reload_conf()");
ok(defined poll_until($node, "SELECT device NOT IN ('cpu') FROM finbert_stats", 30),
	'device = cuda: the worker runs on the (harness) CUDA device');
like(slurp_file($node->logfile), qr/finbert worker runs the models on CUDA device 0/,
	'said in the log');

my $cuda = results(undef);    # execution auto: every call goes to the worker
same_scores($ref->{scores}, $cuda->{scores}, 'CUDA backend in the host');
is($cuda->{entities}, $ref->{entities}, 'CUDA backend in the host: same entities');
same_vector($ref->{embed}, $cuda->{embed}, 'CUDA backend in the host: embedding');

my $st = stats($node);
cmp_ok($st->{device_batches}, '>', 0, "finbert_stats counts batches on the device ($st->{device_batches})");
cmp_ok($st->{device_tokens}, '>', 0, "and tokens ($st->{device_tokens})");
is($node->safe_psql('postgres',
		"SELECT device || ' ' || (device_bytes > 0) FROM finbert_models WHERE name = 'cls'"),
	'cuda true', 'finbert_models: the model is on the device, with its device memory');

my ($rc, $out, $err) = $node->psql('postgres',
	"SET finbert.execution = inline; SELECT finbert_sentiment('x')");
like($err, qr/finbert\.execution = inline cannot run on finbert\.device = cuda/,
	'inline execution on a CUDA device is refused');

# ---------------------------------------------------------------------
# host faults under load
# ---------------------------------------------------------------------
my $worker = worker_pid($node);

sub fault
{
	my ($signal) = @_;
	my $host = stats($node)->{engine_host_pid};
	ok($host, "$signal: an engine host runs (pid $host)");
	my $log_offset = -s $node->logfile;
	# stopped first, so that the signal lands while it holds a batch (a
	# host that dies between batches is replaced without failing any)
	kill 'STOP', $host;
	my @sessions;
	for my $s (1 .. 4)
	{
		my @sql = ('\\set VERBOSITY verbose', 'SELECT pg_backend_pid()');
		push @sql, "SELECT count(*) FROM unnest(finbert_sentiment($array))" for 1 .. 8;
		push @sql, 'SELECT pg_backend_pid()';
		push @sessions, start_psql($node, \@sql, on_error_stop => 0, name => "load$s");
	}
	ok(defined poll_until($node, 'SELECT running_requests > 0 FROM finbert_stats', 60),
		"$signal: requests run in the host");
	kill $signal, $host;
	kill 'CONT', $host;    # a pending SIGSEGV is delivered as it resumes
	my ($failed, $served, $kept) = (0, 0, 0);
	for my $h (@sessions)
	{
		finish_psql($h);
		my @pids = $h->{out} =~ /^(\d+)$/mg;
		$kept++ if $h->{rc} == 0 && @pids >= 2 && $pids[0] == $pids[-1];
		$failed += () = $h->{err} =~
		  /ERROR:  58000: finbert engine host died and was restarted/g;
		$served += () = $h->{out} =~ /^3$/mg;
	}
	is($kept, 4, "$signal: every session keeps its connection");
	cmp_ok($failed, '>=', 1, "$signal: the statements of that batch fail with 58000 ($failed)");
	cmp_ok($served, '>=', 1, "$signal: the others are served ($served)");
	is($failed + $served, 32, "$signal: every statement either failed or was served");
	my $log = log_since($node, $log_offset);
	unlike($log, qr/terminating any other active server processes/,
		"$signal: no crash recovery");
	like($log, qr/finbert engine host \(PID $host\) died \(child process was terminated by signal/,
		"$signal: the worker logs the host's death");
	is(worker_pid($node), $worker, "$signal: the worker itself kept running");
	my $new = stats($node)->{engine_host_pid};
	ok($new && $new != $host && !process_alive($host), "$signal: a new host ($new), the old one reaped");
	is($node->safe_psql('postgres', "SELECT finbert_sentiment('$texts[0]')"),
		$node->safe_psql('postgres', "SET finbert.execution = worker; SELECT finbert_sentiment('$texts[0]')"),
		"$signal: the next call succeeds");
	my $zombies = `ps -o stat= --ppid $worker 2>/dev/null` // '';
	unlike($zombies, qr/Z/, "$signal: no zombie left under the worker");
}

fault('KILL');
fault('SEGV');
my $failures = stats($node)->{engine_host_failures};
cmp_ok($failures, '>=', 2, "finbert_stats counts the host's failures ($failures)");

# ---------------------------------------------------------------------
# a hung host (SIGSTOP): killed after finbert.host_timeout
# ---------------------------------------------------------------------
{
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET finbert.host_timeout = '2s'; SELECT pg_reload_conf()");
	ok(defined poll_until($node, "SELECT current_setting('finbert.host_timeout') = '2s'", 30),
		'host_timeout set to 2 s');
	my $host = stats($node)->{engine_host_pid};
	kill 'STOP', $host;
	my $t0 = time;
	my ($rc, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT finbert_sentiment('$texts[1]')");
	my $took = time - $t0;
	like($err, qr/ERROR:  58000: finbert engine host died and was restarted/,
		'a hung host: the request fails with 58000');
	like($err, qr/did not answer within finbert\.host_timeout \(2000 ms\)/,
		'its detail says the host timed out');
	cmp_ok($took, '<', 15, sprintf('after the timeout, not a hang (%.1f s)', $took));
	ok(!process_alive($host), 'the hung host was killed and reaped');
	my $label = $node->safe_psql('postgres', "SELECT finbert_sentiment('$texts[1]')");
	ok($label ne '', "the next call succeeds on a new host ($label)");
	$node->safe_psql('postgres',
		"ALTER SYSTEM RESET finbert.host_timeout; SELECT pg_reload_conf()");
}

# ---------------------------------------------------------------------
# device = cuda without the module: a clear ERROR
# ---------------------------------------------------------------------
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres',
	"ALTER SYSTEM SET finbert.cuda_module = '$missing'; SELECT pg_reload_conf()");
ok(defined poll_until($node,
		"SELECT pg_read_file('" . $node->logfile . "', $log_offset, 100000) ~ 'finbert.device = cuda, but the CUDA device is not usable'", 30),
	'device = cuda without the module: logged');
($rc, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT finbert_sentiment('$texts[0]')");
like($err, qr/ERROR:  58000: could not load model "cls" in the finbert engine host: the CUDA device is not usable/,
	'a request gets ERROR 58000');
like($err, qr/DETAIL:  .*\Q$missing\E/, 'its detail names the missing module');
like($err, qr/HINT:  Check finbert\.cuda_module/, 'with a hint');
unlike(log_since($node, $log_offset), qr/terminating any other active server processes/,
	'no crash recovery');

# ---------------------------------------------------------------------
# a fast shutdown while the host holds a batch and does not answer: the
# worker stops it (SIGUSR1, then SIGKILL after 2 s); nothing hangs
# ---------------------------------------------------------------------
$node->safe_psql('postgres',
	"ALTER SYSTEM SET finbert.cuda_module = '$harness'; SELECT pg_reload_conf()");
ok(defined poll_until($node,
		"SELECT finbert_sentiment('$texts[0]') IS NOT NULL AND engine_host_pid IS NOT NULL FROM finbert_stats", 30),
	'the harness again');
my $host = stats($node)->{engine_host_pid};
kill 'STOP', $host;
my $stuck = start_psql($node, ["SELECT finbert_sentiment('$texts[2]')"], name => 'stuck');
ok(defined poll_until($node, 'SELECT running_requests > 0 FROM finbert_stats', 30),
	'a batch waits for the stopped host');
my $t0 = time;
$node->stop('fast');
my $took = time - $t0;
cmp_ok($took, '<', 15, sprintf('pg_ctl stop -m fast returns (%.1f s)', $took));
finish_psql($stuck);
isnt($stuck->{rc}, 0, 'the request of that batch failed');
ok(!process_alive($host), 'the stopped host was killed');
done_testing();

# FinbertTest.pm — helpers of the finbert TAP tests (test/t/*.pl).
#
# A node preloads finbert, has the fixture models ($ENV{FINBERT_FIXTURES},
# copied into its own finbert.model_dir) registered in the database
# "postgres" (finbert.database), UTF8.  Sessions that must overlap run as
# psql processes started with IPC::Run and collected later; every wait is
# bounded (a timeout fails the test instead of hanging it).
package FinbertTest;

use strict;
use warnings;

use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(finbert_node start_psql finish_psql poll_until
  worker_pid stats log_since process_alive start_after_postmaster_death);

# A started node with finbert preloaded and the fixtures registered.
sub finbert_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
	my $models = $node->basedir . '/models';
	die "FINBERT_FIXTURES is not set" unless $ENV{FINBERT_FIXTURES};
	system('cp', '-R', $ENV{FINBERT_FIXTURES}, $models) == 0
	  or die "could not copy the fixture models";
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'finbert'
finbert.model_dir = '$models'
finbert.worker_timeout = '5s'
max_worker_processes = 16
restart_after_crash = on
log_line_prefix = '%m %b[%p] '
} . ($opts{conf} // ''));
	$node->start;
	return $node if $opts{no_extension};
	$node->safe_psql('postgres', 'CREATE EXTENSION finbert');
	$node->safe_psql('postgres',
		"SELECT finbert_load_model(m, m) FROM unnest(ARRAY['cls', 'encoder', 'ner']) m"
	);
	$node->safe_psql('postgres',
		"ALTER DATABASE postgres SET finbert.sentiment_model = 'cls';"
		  . "ALTER DATABASE postgres SET finbert.embed_model = 'encoder';"
		  . "ALTER DATABASE postgres SET finbert.ner_model = 'ner'");
	return $node;
}

# Starts psql running each statement of @$sqls in turn (one -c each,
# stopping at the first error unless on_error_stop => 0); returns a handle
# for finish_psql.
sub start_psql
{
	my ($node, $sqls, %opts) = @_;
	my $h = { out => '', err => '', started => time };
	my $connstr = $node->connstr($opts{db} // 'postgres');
	my $stop = $opts{on_error_stop} // 1;
	$connstr .= " application_name=$opts{name}" if $opts{name};
	my @cmd = ('psql', '-XAtq', '-v', "ON_ERROR_STOP=$stop", '-d', $connstr);
	push @cmd, '-c', $_ for @$sqls;
	$h->{run} = IPC::Run::start(\@cmd, '>', \$h->{out}, '2>', \$h->{err},
		IPC::Run::timeout($opts{timeout} // 120));
	return $h;
}

# Waits for a psql started by start_psql; fills rc, out, err, seconds and
# timed_out (the process is killed then).
sub finish_psql
{
	my ($h) = @_;
	eval { $h->{run}->finish; };
	if ($@)
	{
		$h->{timed_out} = 1;
		$h->{run}->kill_kill;
		$h->{rc} = -1;
	}
	else
	{
		$h->{timed_out} = 0;
		$h->{rc} = $h->{run}->result(0);
	}
	$h->{seconds} = time - $h->{started};
	chomp $h->{out};
	return $h;
}

# Runs $query until it returns 't' (at most $seconds); returns the time
# it took, or undef.
sub poll_until
{
	my ($node, $query, $seconds) = @_;
	my $start = time;
	while (time - $start < $seconds)
	{
		my ($rc, $out) = $node->psql('postgres', $query);
		return time - $start if $rc == 0 && $out eq 't';
		usleep(20_000);
	}
	return undef;
}

sub worker_pid
{
	my ($node) = @_;
	my ($rc, $out) =
	  $node->psql('postgres', 'SELECT coalesce(worker_pid, 0) FROM finbert_stats');
	return $rc == 0 ? $out : 0;
}

# One row of finbert_stats as a hash.
sub stats
{
	my ($node) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT row_to_json(s) FROM finbert_stats s");
	my %h;
	while ($out =~ /"(\w+)":("[^"]*"|[^,}]*)/g)
	{
		my ($k, $v) = ($1, $2);
		$v =~ s/^"(.*)"$/$1/;
		$h{$k} = $v;
	}
	return \%h;
}

# The server log written since byte offset $from.
sub log_since
{
	my ($node, $from) = @_;
	return substr(slurp_file($node->logfile), $from);
}

sub process_alive
{
	my ($pid) = @_;
	return kill(0, $pid) ? 1 : 0;
}

# Starts $node again after its postmaster was killed: the pid is
# forgotten, and the start retried (for 10 s) while the remaining
# children go.  Returns true when the node runs.
sub start_after_postmaster_death
{
	my ($node) = @_;
	$node->{_pid} = undef;
	for (1 .. 50)
	{
		return 1 if $node->start(fail_ok => 1);
		usleep(200_000);
	}
	return 0;
}

1;

# Concurrency of the finbert worker (CHECKLIST "Concurrency"):
#  - 8 sessions in worker mode get the results of inline execution, and
#    the worker batches their requests;
#  - 8 sessions embed the same text at once: equal results, exactly one
#    cache row, no unique violation;
#  - a session cancelled while its request is in the worker's batch gets
#    57014 at once, the others of the batch get their results, the slots
#    return to the free pool; waiting sessions show the wait event.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use FinbertTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = finbert_node(
	'concurrency', conf => q{
finbert.batch_wait_ms = 20
finbert.max_batch_tokens = 1000000
});

my @texts = (
	'央行宣布降准0.5个百分点，释放长期资金约1万亿元',
	'贵州茅台2023年营收同比增长18.04%，净利润747.34亿元',
	'宁德时代与特斯拉签署长期供货协议，股价大涨5%',
	'证监会对多家券商开出罚单',
	'新能源车补贴退坡，整车企业利润承压',
	'美联储维持利率不变，市场预期年内降息两次，美元指数小幅走弱',
	'某上市公司公告称控股股东拟减持不超过2%股份',
	'银行间市场流动性合理充裕');

# Embeddings as text, compared within a tolerance (the worker runs more
# engine threads than a backend).
sub max_diff
{
	my ($a, $b) = @_;
	my @x = ($a =~ /-?[\d.]+(?:e-?\d+)?/gi);
	my @y = ($b =~ /-?[\d.]+(?:e-?\d+)?/gi);
	return 1e9 unless @x && @x == @y;
	my $m = 0;
	for my $i (0 .. $#x)
	{
		my $d = abs($x[$i] - $y[$i]);
		$m = $d if $d > $m;
	}
	return $m;
}

sub lit { my $t = shift; $t =~ s/'/''/g; return "'$t'" }

# ---------------------------------------------------------------------
# 8 concurrent sessions, worker mode, against inline results
# (classification, embeddings, entities: merged batches over lanes)
# ---------------------------------------------------------------------
my %ref;
for my $t (@texts)
{
	$ref{$t} = $node->safe_psql('postgres',
		"SET finbert.execution = inline; SET finbert.cache = off;"
		  . " SELECT finbert_sentiment(" . lit($t) . ") || '=' || finbert_embed(" . lit($t) . ")::text"
		  . " || '=' || finbert_companies(" . lit($t) . ")::text");
}
$node->safe_psql('postgres', 'SELECT finbert_stats_reset()');

my $rounds = 40;
my @h;
for my $i (0 .. $#texts)
{
	my $t = lit($texts[$i]);
	push @h, start_psql(
		$node,
		[
			'SET finbert.execution = worker', 'SET finbert.cache = off',
			# one request per call (the worker batches across sessions),
			# not the Finbert Batch node's one per batch of rows
			'SET finbert.batching = off',
			"SELECT string_agg(finbert_sentiment(t) || '=' || finbert_embed(t)::text || '=' || finbert_companies(t)::text, '|')"
			  . " FROM (SELECT ${t}::text AS t FROM generate_series(1, $rounds)) s"
		],
		name => "load$i");
}
my ($bad_label, $worst, $failed) = (0, 0, 0);
for my $i (0 .. $#texts)
{
	my $r = finish_psql($h[$i]);
	if ($r->{rc} != 0 || $r->{timed_out})
	{
		$failed++;
		diag("session $i failed: $r->{err}");
		next;
	}
	my @rows = split /\|/, $r->{out};
	$failed++ unless @rows == $rounds;
	my ($ref_label, $ref_vec, $ref_ents) = split /=/, $ref{ $texts[$i] }, 3;
	for my $row (@rows)
	{
		my ($label, $vec, $ents) = split /=/, $row, 3;
		$bad_label++ if $label ne $ref_label || $ents ne $ref_ents;
		my $d = max_diff($vec, $ref_vec);
		$worst = $d if $d > $worst;
	}
}
is($failed, 0, '8 concurrent sessions in worker mode all succeed');
is($bad_label, 0, 'labels and companies equal inline execution');
cmp_ok($worst, '<', 1e-5, 'embeddings equal inline execution within 1e-5');
my $st = stats($node);
diag(sprintf("8 sessions x %d rounds: %d worker requests in %d batches, mean batch size %.2f, max |embedding diff| %.2g",
		$rounds, $st->{worker_requests}, $st->{worker_batches},
		$st->{worker_mean_batch_size}, $worst));
is($st->{worker_requests}, 8 * $rounds * 3, 'every request went to the worker');
cmp_ok($st->{worker_mean_batch_size}, '>', 1.2, 'the worker batched requests of several sessions');
is($st->{slots_in_use}, 0, 'no slot in use afterwards');

# ---------------------------------------------------------------------
# 8 sessions embed the same text at once: one cache row
# ---------------------------------------------------------------------
my $log_offset = -s $node->logfile;
my $same = '八个会话同时嵌入同一段文本：央行宣布降准';
@h = ();
push @h, start_psql($node,
	[ 'SET finbert.execution = worker', 'SELECT finbert_embed(' . lit($same) . ')::text' ],
	name => "same$_")
  for 1 .. 8;
my @outs = map { finish_psql($_) } @h;
is(scalar(grep { $_->{rc} == 0 } @outs), 8, 'the 8 identical embeddings succeed');
my $identical = scalar(grep { $_->{out} eq $outs[0]{out} } @outs);
my $spread = 0;
for (@outs) { my $d = max_diff($_->{out}, $outs[0]{out}); $spread = $d if $d > $spread; }
cmp_ok($spread, '<', 1e-6, 'they are equal');
diag("identical embeddings: $identical of 8 byte for byte, max difference $spread");
ok(defined poll_until($node, 'SELECT cache_pending = 0 FROM finbert_stats', 30),
	'the cache writer flushed');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM finbert.embedding_cache WHERE text_hash = sha256(convert_to("
		  . lit($same) . ", 'UTF8'))"),
	'1',
	'exactly one cache row');
unlike(log_since($node, $log_offset), qr/duplicate key|unique constraint|ERROR/,
	'no unique violation or other error in the server log');

# ---------------------------------------------------------------------
# cancel a request inside the worker's batch
# ---------------------------------------------------------------------
my $long = "repeat('股市大涨，宁德时代签约。', 12000)";
my $blocker = start_psql($node,
	[ 'SET finbert.execution = worker', "SELECT count(*) FROM finbert_entities($long)" ],
	name => 'blocker');
ok( defined poll_until(
		$node, "SELECT running_requests = 1 FROM finbert_stats", 30),
	'the blocker runs in the worker');
my $victim = start_psql($node,
	[ 'SET finbert.execution = worker', "SELECT count(*) FROM finbert_entities($long)" ],
	name => 'victim');
# queued first, so its group runs first in the next batch
ok(defined poll_until($node, "SELECT queue_depth = 1 FROM finbert_stats", 30),
	'the victim is queued');
my @others = map {
	start_psql($node,
		[ 'SET finbert.execution = worker', "SELECT finbert_sentiment('央行宣布降准$_')" ],
		name => "other$_")
} 1 .. 2;
ok( defined poll_until(
		$node,
		"SELECT count(*) = 3 FROM pg_stat_activity WHERE application_name IN ('victim', 'other1', 'other2')"
		  . " AND wait_event_type = 'Extension' AND wait_event = 'Extension'",
		30),
	'waiting sessions show wait event Extension in pg_stat_activity');
my $b = finish_psql($blocker);
is($b->{rc}, 0, 'the blocker completes');
ok( defined poll_until(
		$node, "SELECT running_requests = 3 AND queue_depth = 0 FROM finbert_stats", 30),
	'the victim and the two others are in one batch');
my $t0 = time;
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'");
my $v = finish_psql($victim);
my $cancel_latency = time - $t0;
isnt($v->{rc}, 0, 'the cancelled session fails');
like($v->{err}, qr/canceling statement due to user request/, 'with 57014 (query_canceled)');
my @o = map { finish_psql($_) } @others;
my $others_latency = time - $t0;
is(scalar(grep { $_->{rc} == 0 && $_->{out} =~ /\w/ } @o), 2, 'the others of the batch get results');
my $freed = poll_until($node, 'SELECT slots_in_use = 0 AND running_requests = 0 FROM finbert_stats', 10);
ok(defined $freed, 'the slots return to the free pool');
cmp_ok($cancel_latency, '<', 2, 'the cancel takes effect at once');
cmp_ok($others_latency, '<', 2, 'the worker drops the abandoned work');
diag(sprintf("cancel: the victim returned after %.3f s, the rest of its batch after %.3f s, slots free after %.3f s more",
		$cancel_latency, $others_latency, $freed // -1));
like($node->safe_psql('postgres', "SET finbert.execution = worker; SELECT finbert_sentiment('好')"),
	qr/\w/, 'the worker serves the next request');

$node->stop;
done_testing();

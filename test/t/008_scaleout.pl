# Scale-out (issue 21): a coordinator and two shard clusters on this
# machine (Unix sockets), set up by scripts/scaleout.sh:
#  - rows inserted through the coordinator land on the shard of their hash;
#  - news_scored (a shard-side view of pinned calls) and pinned conditions
#    over the sharded table give what the same queries give over a local
#    copy, and the shards do the work (their finbert_stats count it, the
#    coordinator's does not; Remote SQL carries the pinned call; both
#    shards are scanned asynchronously, and with async_capable off too);
#  - the materialized view of entities over the sharded table;
#  - a shard whose model has other weights is detected: scaleout.sh check
#    fails naming it, and queries fail with the pin mismatch instead of
#    answering differently.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use FinbertTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $script = "$FindBin::RealBin/scaleout.sh";
ok(-f $script, 'scripts/scaleout.sh is next to the test');

my $coord = finbert_node('coordinator');
my @shards = (finbert_node('shard0'), finbert_node('shard1'));
my @connstr = map { $_->connstr('postgres') } ($coord, @shards);

# ---------------------------------------------------------------------
# setup through the helper
# ---------------------------------------------------------------------
my ($out, $err);
my $rc = run_log_capture([ 'sh', $script, 'setup', '-m', 'cls=cls:sentiment',
	'-m', 'ner=ner:ner', @connstr ], \$out, \$err);
ok($rc, 'scaleout.sh setup succeeds') or diag("$out\n$err");
like($out, qr/3 model\(s\), same pins on the coordinator and 2 shard\(s\)/,
	'setup compared the pins');

my @texts = (
	'央行宣布降准0.5个百分点，释放长期资金约1万亿元',
	'贵州茅台2023年营收同比增长18.04%，净利润747.34亿元',
	'宁德时代与特斯拉签署长期供货协议，股价大涨5%',
	'证监会对多家券商开出罚单',
	'新能源车补贴退坡，整车企业利润承压',
	'美联储维持利率不变，市场预期年内降息两次，美元指数小幅走弱',
	'某上市公司公告称控股股东拟减持不超过2%股份',
	'银行间市场流动性合理充裕',
	'浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。',
	'亚马逊在华一审败诉 　被判不得使用AWS名称并赔偿7646万元');
my $values = join(",\n",
	map {
		my $t = $texts[ $_ % @texts ];
		$t =~ s/'/''/g;
		"($_, 'headline $_', '$t（$_）')"
	} 1 .. 40);

# ---------------------------------------------------------------------
# inserting through the coordinator routes rows to the shards
# ---------------------------------------------------------------------
$coord->safe_psql('postgres', "INSERT INTO news VALUES $values");
my @counts = map { $_->safe_psql('postgres', 'SELECT count(*) FROM news') } @shards;
is($counts[0] + $counts[1], 40, 'every inserted row is on a shard');
ok($counts[0] > 0 && $counts[1] > 0, "both shards hold rows ($counts[0] + $counts[1])");
is( $coord->safe_psql('postgres',
		"SELECT string_agg(c::text, ' ' ORDER BY p) FROM
		   (SELECT tableoid::regclass::text AS p, count(*) AS c FROM news GROUP BY 1) s"),
	"$counts[0] $counts[1]",
	'each shard holds exactly the rows of its hash partition');

# the local copy the sharded results are compared with
$coord->safe_psql('postgres',
	'CREATE TABLE news_local AS SELECT * FROM news; ANALYZE news_local');
my $pin = $coord->safe_psql('postgres', "SELECT finbert_model_pin('cls')");

# ---------------------------------------------------------------------
# results over the sharded table equal those over the local copy, and
# the shards do the work
# ---------------------------------------------------------------------
sub texts_counted
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SELECT texts FROM finbert_stats');
}
my @before = map { texts_counted($_) } ($coord, @shards);
my $sharded = $coord->safe_psql('postgres',
	'SELECT id, sentiment, companies, persons FROM news_scored ORDER BY id');
my @after = map { texts_counted($_) } ($coord, @shards);
my $local = $coord->safe_psql('postgres',
	"SELECT id, finbert_sentiment(body, 'cls'), finbert_companies(body, 'ner'),
	        finbert_persons(body, 'ner') FROM news_local ORDER BY id");
is($sharded, $local, 'news_scored over two shards = the same query over a local copy');
is($after[0] - $before[0], 0, 'the coordinator classified nothing');
# 3 calls per row; the shards batch their rows (Finbert Batch), where
# finbert_companies and finbert_persons of a text share one NER request
for my $i (0, 1)
{
	my $n = $after[ $i + 1 ] - $before[ $i + 1 ];
	ok($n >= 2 * $counts[$i] && $n <= 3 * $counts[$i],
		"shard $i classified its rows ($n texts for $counts[$i] rows, 3 calls each)");
}

my $plan = $coord->safe_psql('postgres',
	'EXPLAIN (VERBOSE, COSTS OFF) SELECT id, sentiment FROM news_scored');
is(scalar(() = $plan =~ /Async Foreign Scan/g), 2, 'news_scored: both shards scanned asynchronously');

# a pinned condition is shipped: Remote SQL carries the call
my $where = "finbert_sentiment_pinned(body, 'cls', '$pin')";
$plan = $coord->safe_psql('postgres',
	"EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM news WHERE $where = 'positive'");
is(scalar(() = $plan =~ /Remote SQL: SELECT id FROM public\.news WHERE \(\(public\.finbert_sentiment_pinned\(body, 'cls'::text, '$pin'::text\)/g),
	2, 'Remote SQL of each shard contains the pinned finbert call')
  or diag($plan);
unlike($plan, qr/Filter:/, 'no local filter on the coordinator');
for my $label ('negative', 'neutral', 'positive')
{
	is( $coord->safe_psql('postgres',
			"SELECT string_agg(id::text, ',' ORDER BY id) FROM news WHERE $where = '$label'"),
		$coord->safe_psql('postgres',
			"SELECT string_agg(id::text, ',' ORDER BY id) FROM news_local
			  WHERE finbert_sentiment(body, 'cls') = '$label'"),
		"shipped condition sentiment = $label: the rows of the local copy");
}
# the STABLE form is not shipped: it is a local filter over fetched rows
$plan = $coord->safe_psql('postgres',
	"EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM news WHERE finbert_sentiment(body, 'cls') = 'positive'");
like($plan, qr/Filter: \(finbert_sentiment\(/, 'negative control: the STABLE form stays on the coordinator');

# grouping over the shards' computed column
is( $coord->safe_psql('postgres',
		'SELECT sentiment, count(*) FROM news_scored GROUP BY 1 ORDER BY 1'),
	$coord->safe_psql('postgres',
		"SELECT finbert_sentiment(body, 'cls'), count(*) FROM news_local GROUP BY 1 ORDER BY 1"),
	'GROUP BY sentiment over the shards = over the local copy');

# async append off: the same results, scans one after the other
$coord->safe_psql('postgres',
	"ALTER SERVER shard_0 OPTIONS (SET async_capable 'false');
	 ALTER SERVER shard_1 OPTIONS (SET async_capable 'false')");
$plan = $coord->safe_psql('postgres',
	'EXPLAIN (VERBOSE, COSTS OFF) SELECT id, sentiment FROM news_scored');
unlike($plan, qr/Async/, 'async_capable off: synchronous foreign scans');
is( $coord->safe_psql('postgres',
		'SELECT id, sentiment, companies, persons FROM news_scored ORDER BY id'),
	$local, 'async_capable off: the same results');
$coord->safe_psql('postgres',
	"ALTER SERVER shard_0 OPTIONS (SET async_capable 'true');
	 ALTER SERVER shard_1 OPTIONS (SET async_capable 'true')");

# ---------------------------------------------------------------------
# the materialized view of entities over the sharded table
# ---------------------------------------------------------------------
$coord->safe_psql('postgres', q{
	CREATE MATERIALIZED VIEW mentions AS
	  SELECT n.id, e.* FROM news n, finbert_entities(n.body, 'ner') e;
	CREATE MATERIALIZED VIEW company_mentions AS
	  SELECT id, unnest(companies) AS company FROM news_scored});
my $ents_local = $coord->safe_psql('postgres',
	"SELECT n.id, e.* FROM news_local n, finbert_entities(n.body, 'ner') e
	  ORDER BY 1, start_pos, entity");
is($coord->safe_psql('postgres', 'SELECT * FROM mentions ORDER BY 1, start_pos, entity'),
	$ents_local, 'entities materialized view over the sharded table = over the local copy');
is( $coord->safe_psql('postgres', 'SELECT id, company FROM company_mentions ORDER BY 1, 2'),
	$coord->safe_psql('postgres',
		"SELECT id, unnest(finbert_companies(body, 'ner')) c FROM news_local ORDER BY 1, 2"),
	'company mentions computed on the shards = on the local copy');
$coord->safe_psql('postgres',
	"INSERT INTO news VALUES (41, 'late', '宁德时代与特斯拉签署长期供货协议');
	 INSERT INTO news_local VALUES (41, 'late', '宁德时代与特斯拉签署长期供货协议');
	 REFRESH MATERIALIZED VIEW mentions");
is($coord->safe_psql('postgres', 'SELECT * FROM mentions ORDER BY 1, start_pos, entity'),
	$coord->safe_psql('postgres',
		"SELECT n.id, e.* FROM news_local n, finbert_entities(n.body, 'ner') e
		  ORDER BY 1, start_pos, entity"),
	'REFRESH after an insert through the coordinator');

# ---------------------------------------------------------------------
# a shard whose model differs is detected
# ---------------------------------------------------------------------
$shards[1]->safe_psql('postgres', "SELECT finbert_load_model('cls', 'cls_f16', 'sentiment')");
$rc = run_log_capture([ 'sh', $script, 'check', @connstr ], \$out, \$err);
ok(!$rc, 'scaleout.sh check fails when a shard has other weights');
my $shard1 = quotemeta($connstr[2]);
like($err, qr/MISMATCH: model cls on "$shard1" has pin [0-9a-f]{64}; the coordinator has $pin/,
	'the mismatch names the model, the shard and both pins');
unlike($err, qr/model ner/, 'models that agree are not reported');

my ($qrc, $qout, $qerr) = $coord->psql('postgres', 'SELECT count(sentiment) FROM news_scored');
isnt($qrc, 0, 'news_scored fails instead of mixing models');
like($qerr, qr/finbert model "cls" on this server is not the pinned model/, 'with the pin mismatch error');
like($qerr, qr/DETAIL:  The call pins $pin; model "cls" here has [0-9a-f]{64}\./, 'detail with both pins');
like($qerr, qr/remote SQL command/, 'raised on the shard');
($qrc, $qout, $qerr) = $coord->psql('postgres', "SELECT count(*) FROM news WHERE $where = 'positive'");
like($qerr, qr/is not the pinned model/, 'a shipped pinned condition fails the same way');
my $id0 = $coord->safe_psql('postgres', 'SELECT min(id) FROM news_0');
is( $coord->safe_psql('postgres', "SELECT count(*) FROM news WHERE id = $id0 AND $where IS NOT NULL"),
	1, 'partition pruning keeps queries of the agreeing shard working');

# restored: the check passes again
$shards[1]->safe_psql('postgres', "SELECT finbert_load_model('cls', 'cls', 'sentiment')");
$rc = run_log_capture([ 'sh', $script, 'check', @connstr ], \$out, \$err);
ok($rc, 'scaleout.sh check passes once the shard has the same model') or diag($err);
is($coord->safe_psql('postgres', 'SELECT count(sentiment) FROM news_scored'), 41,
	'news_scored answers again');

$_->stop for ($coord, @shards);
done_testing();

# run_log_capture(\@cmd, \$out, \$err): true when the command exits 0
sub run_log_capture
{
	my ($cmd, $o, $e) = @_;
	$$o = '';
	$$e = '';
	return IPC::Run::run($cmd, '>', $o, '2>', $e, IPC::Run::timeout(180));
}

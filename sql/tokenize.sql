--
-- tokens: finbert_tokenize (bert-base-chinese vocabulary of the fixtures,
-- lower-casing and accent stripping as in its tokenizer_config.json)
--
-- CJK characters one per token; punctuation split
SELECT finbert_tokenize('央行宣布降准，释放资金。');
-- English words to WordPiece pieces, lower-cased, accents stripped
SELECT finbert_tokenize('UNwantéd,running');
SELECT finbert_tokenize('Apple Inc. reported record revenue of $123.9 billion.');
-- mixed text, full-width characters, digits
SELECT finbert_tokenize('宁德时代CATL与Tesla签署协议，ROE提升至20%');
SELECT finbert_tokenize('Ｆｕｌｌｗｉｄｔｈ １２３ résumé naïve');
-- control characters are dropped, whitespace separates
SELECT finbert_tokenize(E'股价\t大涨\u0007了\n');
-- a word longer than 100 characters is one [UNK]
SELECT finbert_tokenize(repeat('a', 101));
SELECT cardinality(finbert_tokenize(repeat('a', 100))) > 1 AS split_at_100;
-- a 1 MB single word: one [UNK], quickly (WordPiece stops at 100 characters)
SET statement_timeout = '10s';
SELECT finbert_tokenize(repeat('a', 1000000)) AS one_mb_word;
RESET statement_timeout;
-- empty text, only spaces: no tokens
SELECT finbert_tokenize('') AS empty, finbert_tokenize('   ') AS spaces;
-- explicit model, same vocabulary
SELECT finbert_tokenize('央行宣布降准', 'cls') = finbert_tokenize('央行宣布降准') AS same;
-- long text is not truncated
SELECT cardinality(finbert_tokenize(repeat('股', 3000))) AS tokens;
SELECT finbert_tokenize(NULL) IS NULL AS a, finbert_tokenize('x', NULL) IS NULL AS b;

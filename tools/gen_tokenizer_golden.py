#!/usr/bin/env python3
"""Generate the tokenizer golden data in test/data/tokenizer/ from Hugging
Face BertTokenizerFast (transformers + tokenizers).

    python3 tools/gen_tokenizer_golden.py [--data /work/shared/data]

Writes (all UTF-8):
  real_lines.jsonl      real text lines sampled deterministically from the
                        shared Chinese datasets, one JSON string per line
  real_hashes.txt       per line: FNV-1a 64 (hex) of the canonical output in
                        the uncased and the cased mode
  real_expected.txt     full canonical output of the first HEAD lines, two
                        lines per text (uncased, cased)
  adversarial.jsonl     hand-written and seeded-random hard cases
  adversarial_expected.txt   full canonical output, two lines per text
  adversarial_options_hashes.txt   hashes of the adversarial set in four
                        more option combinations (see OPTION_MODES)
  english_vocab.txt     a small English WordPiece vocabulary (fixture for
                        the original BERT goldens)
  english_expected.txt  canonical output of the English goldens (uncased)
and copies the bert-base-chinese vocabulary to test/data/.

Canonical output: "id:start:end id:start:end ..." with [CLS]/[SEP], offsets
in code points of the input, as BertTokenizerFast returns them
(return_offsets_mapping).  Modes: uncased = do_lower_case=True (strip_accents
follows it), cased = do_lower_case=False.  Both use the bert-base-chinese
vocabulary.
"""
import argparse
import csv
import json
import os
import random
import shutil
import sys
import tempfile
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "data", "tokenizer")
VOCAB_COPY = os.path.join(ROOT, "test", "data", "bert-base-chinese-vocab.txt")
SEED = 20240611
HEAD = 200                  # real lines with full expected output
MAX_CHARS = 256             # longer lines are not sampled (size budget)

# (dataset, quota): about 10.8k lines in all.  ChnSentiCorp is left out on
# purpose: its license agreement is restrictive.
QUOTAS = [
    ("choice-news-headlines", 2500),
    ("bbt-fincuge/finfe", 800),
    ("bbt-fincuge/finne", 400),
    ("bbt-fincuge/finnl", 500),
    ("bbt-fincuge/finnsp", 200),
    ("bbt-fincuge/finese", 400),
    ("bbt-fincuge/finre", 300),
    ("cluener2020", 1200),
    ("tnews", 1200),
    ("weibo-ner", 500),
    ("resume-ner", 600),
    ("msra-ner", 400),
    ("thucnews-titles", 500),
    ("smp2020-ewect", 800),
    ("cfsc", 300),
    ("peoples-daily-ner", 200),
]

ENGLISH_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "want", "##want", "##ed", "wa", "un", "runn", "##ing", ",", ".", "!", "?",
    "the", "a", "##a", "b", "##b", "c", "##c", "hello", "world", "cafe", "naive",
    "i", "is", "##tan", "##bu", "##l", "strasse", "σ", "##α", "##σ", "中", "国",
    "x", "##x", "y", "##y", "[", "]", "mask", "##ma", "##sk", "'", "s", "##s",
]

# Inputs of the original BERT tests (tokenization_test.py) and more, with
# the English vocabulary above; checked here against Hugging Face and in
# test/test_tokenizer.c against the literal expectations.
ENGLISH_INPUTS = [
    "UNwant\u00E9d,running",
    "unwanted running",
    "unwantedX running",
    " \tHeLLo!how  \n Are yoU?  ",
    "H\u00E4LLo!how  \n Are yoU?  ",
    "ah\u535A\u63A8zz",
    "\u4e2d\u56fd x",
    "a" * 100,
    "a" * 101,
    "hello\u0000world\u0001\u00ad\u200b",
    "na\u00efve caf\u00e9",
    "\u0130stanbul",
    "[MASK] x[SEP]y [mask]",
]


def read_lines_dataset(data, name):
    """Every text of a dataset, in file order."""
    p = lambda *a: os.path.join(data, name, *a)
    if name == "choice-news-headlines":
        with open(p("CH.csv"), encoding="utf-8", newline="") as f:
            return [row["Text"] for row in csv.DictReader(f)]
    if name.startswith("bbt-fincuge/"):
        col = {"finfe": 0, "finne": 0, "finnl": 0, "finnsp": 2, "finese": 1, "finre": 3}
        rows = json.load(open(p("train_list.json"), encoding="utf-8"))
        return [r[col[name.split("/")[1]]] for r in rows]
    if name == "cluener2020":
        return [json.loads(l)["text"] for l in open(p("train.json"), encoding="utf-8") if l.strip()]
    if name == "tnews":
        out = []
        with open(p("train.tsv"), encoding="utf-8") as f:
            for line in f:
                out.append(line.rstrip("\n").split("\t")[0])
        return out
    if name in ("weibo-ner", "resume-ner", "peoples-daily-ner"):
        files = {"weibo-ner": ["weiboNER_2nd_conll.train"],
                 "resume-ner": ["train.char.bmes"],
                 "peoples-daily-ner": ["example.dev"]}[name]
        out = []
        for fn in files:
            cur = []
            for line in open(p(fn), encoding="utf-8"):
                line = line.rstrip("\n")
                if not line.strip():
                    if cur:
                        out.append("".join(cur))
                    cur = []
                    continue
                tok = line.split()[0] if line.split() else line
                if name == "weibo-ner" and len(tok) > 1 and tok[-1].isdigit():
                    tok = tok[:-1]     # character + word-position digit
                cur.append(tok)
            if cur:
                out.append("".join(cur))
        return out
    if name == "msra-ner":
        return ["".join(l.split()) for l in open(p("val", "sentences.txt"), encoding="utf-8") if l.strip()]
    if name == "thucnews-titles":
        return [l.rstrip("\n").split("\t")[0] for l in open(p("dev.txt"), encoding="utf-8") if l.strip()]
    if name == "smp2020-ewect":
        out = []
        for fn in ("virus_train.txt", "usual_eval_labeled.txt"):
            out += [r["content"] for r in json.load(open(p(fn), encoding="utf-8"))]
        return out
    if name == "cfsc":
        return [r["text"] for r in json.load(open(p("CFSC-NER", "json", "val.json"), encoding="utf-8"))]
    raise SystemExit("unknown dataset " + name)


def sample_real_lines(data):
    rng = random.Random(SEED)
    seen = set()
    lines = []
    for name, quota in QUOTAS:
        texts = [t for t in read_lines_dataset(data, name)
                 if isinstance(t, str) and 0 < len(t) <= MAX_CHARS]
        rng.shuffle(texts)
        got = 0
        for t in texts:
            if t in seen:
                continue
            seen.add(t)
            lines.append(t)
            got += 1
            if got == quota:
                break
        print("  %-24s %5d lines" % (name, got))
    return lines


def random_strings(rng, n):
    """Strings of random code points, weighted towards the interesting
    blocks (Latin with accents, combining marks, CJK and its extensions,
    punctuation, emoji, controls, planes 2 and 3, unassigned)."""
    pools = [
        (0x20, 0x7E, 6), (0x00, 0x1F, 1), (0x7F, 0x9F, 1), (0xA0, 0x24F, 4),
        (0x300, 0x36F, 3), (0x370, 0x3FF, 1), (0x400, 0x4FF, 1), (0x590, 0x6FF, 1),
        (0x900, 0x97F, 1), (0xE00, 0xE7F, 1), (0x1100, 0x11FF, 1), (0x1AB0, 0x1AFF, 1),
        (0x1DC0, 0x1DFF, 1), (0x1E00, 0x1FFF, 2), (0x2000, 0x206F, 3),
        (0x2070, 0x2BFF, 2), (0x3000, 0x30FF, 3), (0x3400, 0x4DBF, 1),
        (0x4E00, 0x9FFF, 6), (0xA700, 0xA7FF, 1), (0xAC00, 0xD7A3, 2),
        (0xE000, 0xF8FF, 1), (0xF900, 0xFAFF, 1), (0xFB00, 0xFFFF, 2),
        (0x10000, 0x1FFFF, 2), (0x1D100, 0x1D1FF, 1), (0x1F300, 0x1FAFF, 3),
        (0x20000, 0x2FFFF, 2), (0x30000, 0x323AF, 1), (0xE0000, 0xE01EF, 1),
        (0xF0000, 0x10FFFF, 1),
    ]
    total = sum(w for _, _, w in pools)
    out = []
    for _ in range(n):
        s = []
        for _ in range(rng.randint(1, 40)):
            r = rng.uniform(0, total)
            for lo, hi, w in pools:
                r -= w
                if r <= 0:
                    break
            c = rng.randint(lo, hi)
            if 0xD800 <= c <= 0xDFFF:
                c = 0xFFFD
            s.append(chr(c))
        out.append("".join(s))
    return out


def adversarial_lines():
    zwj = "\u200d"
    a = [
        "", " ", "   ", "\t", "\n", "\r\n", " \t\n\r\u3000\u00a0\u2028\u2029 ",
        # emoji, recent emoji, ZWJ sequences, skin tones, flags, keycaps
        "\U0001F600\U0001F602 ok\U0001F44D", "\U0001F972\U0001FAE0\U0001FAE8\U0001FABF\U0001FAE9",
        "\U0001F468" + zwj + "\U0001F469" + zwj + "\U0001F467" + zwj + "\U0001F466",
        "\U0001F3F3\uFE0F" + zwj + "\U0001F308", "\U0001F44D\U0001F3FD\U0001F44B\U0001F3FF",
        "\U0001F1E8\U0001F1F3\U0001F1FA\U0001F1F8", "1\uFE0F\u20E3#\uFE0F\u20E3",
        "\u2764\uFE0F\u2764\u263A\uFE0E", "\U0001F60E", "##\U0001F60E",
        # full-width forms and half-width katakana
        "\uFF21\uFF22\uFF23\uFF11\uFF12\uFF13\uFF01\uFF1F\uFF08\uFF09\uFF0C\uFF0E",
        "\uFF76\uFF9E\uFF77\uFF9E\uFF71\uFF72", "\uFF48\uFF45\uFF4C\uFF4C\uFF4F",
        # combining marks, reordering, long runs
        "e\u0301 a\u0300\u0316 o\u0308\u0304", "\u1E09\u0316", "a\U0001D16D\u0301\U0001D165x",
        "x\U0001D15E\U0001D16D", "\u0BCA\u0BCAb \u0B95\u0BCA", "Z\u0351\u0300\u0316\u0317\u0358\u035c\u0361a\u0300" * 3,
        "a" + "\u0301\u0316" * 40 + "b", "\u0301\u0316leading marks", "\u0344\u0F73\u0F75\u0F81",
        "\u1100\u1161\u11A8 \uAC00\uAC01 \u302E\u302F\uAC00\u302E",
        "\u0915\u093C\u094D\u0937 \u0928\u092E\u0938\u094D\u0924\u0947 \u0926\u0941\u0928\u093F\u092F\u093E",
        # control, zero-width, BOM, replacement, separators
        "\u0000a\u0001b\u007fc\u0085d\u009fe", "a\u200bb\u200cc\u200dd\u2060e\u00adf",
        "\ufeffBOM at start", "mid\ufeffdle", "\ufffd\ufffdx\ufffd", "a\u000bb\u000cc\u001cd\u001fe",
        "a\u180eb\u061cc\u2066d\u2069", "\U000E0001\U000E0020tag\U000E007F",
        "\uE000\uF8FF\U000F0000\U0010FFFD pua", "\u0378\u0380\U0001FFFE\U0010FFFF unassigned",
        "\uFFFE\uFFFF nonchar", "\u0890\u0891\u08E2\U000110CD\U00013430 new-Cf",
        # CJK extensions and compatibility planes
        "\U00020000\U00020001\U0002A6DF\U0002A6E0", "\U0002A700\U0002B73F\U0002B740\U0002B81F",
        "\U0002B820\U0002B91F\U0002B920\U0002CEAF", "\U0002CEB0\U0002EBE0\U00030000\U0003134A\U00031350",
        "\uF900\uFAFF\U0002F800\U0002FA1D", "\u3400\u4DBF\u4E00\u9FFF\u9FFC\u2E80\u2F00\u3007",
        "\u4e2d\u6587\U00020BB7\u91ce\u5bb6",
        # 100/101-character words
        "a" * 99, "a" * 100, "a" * 101, "b" * 102, "\u00e9" * 100, "\u00e9" * 101,
        "\uff41" * 101, "\u0130" * 60, "\u00df" * 101, "x" * 100 + "!" + "y" * 101,
        "e\u0301" * 60, "\U0001F600" * 101, "\u4e2d" * 101,
        # casing
        "\u0130stanbul \u0131rmak I\u0307", "Stra\u00dfe STRASSE \u1E9E", "\u039F\u0394\u039F\u03A3 \u03C3\u03C2 \u03A3",
        "\u01C5\u01C4\u01C6 \u1F88\u1FBC", "\u13A0\u13A1\uAB70 \u1C90\u10D0", "\u1C89\uA7CB\uA7DC\U00010D50\U00016EA0",
        "K\u212A\u2126\u212B", "\u0049\u0069\u0131\u0130",
        # accented Latin and other scripts
        "Caf\u00e9 r\u00e9sum\u00e9 na\u00efve \u00c5ngstr\u00f6m fa\u00e7ade \u0152uvre",
        "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u0627\u0644\u0652\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u0651\u064e\u0629",
        "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a", "\u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd",
        "\uc548\ub155\ud558\uc138\uc694", "\u304c\u304e\u3050 \u30d1\u30d4\u30d7 \u3072\u3089\u304c\u306a",
        "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440", "\u1e9b\u0323 \u1e69",
        "\U00011938\U00011935\U00011930",
        # special tokens in the text
        "[CLS] a [SEP]", "x[MASK]y", "[mask] [Mask]", "[UNK][UNK]", "[[MASK]]", "[MAS", "[PAD][PAD]",
        "\u4e2d[SEP]\u6587", "[MASK]\u0301", "e[MASK]\u0301",
        # punctuation and mixed finance text
        "\u80a1\u4ef7\u6da8\u4e8610%\uff01", "$100.00 (USD) -> \u00a5680", "3.1415 1,000,000 1e-5",
        "https://example.com/a?b=c&d=e#f", "mail: a.b@c.de", "\u300a\u8d22\u7ecf\u300b\u201c\u80a1\u5e02\u201d\u2014\u2014\u2026",
        "\u00bf\u00a1\u00a7\u00b6\u2020\u2021\u2030\u2032\u203b\u2042\u2E3A\u2E3B", "\u058a\u05be\u1400\u2010\u2E17\u301c\u3030\u30a0",
        "\u00b4\u02dc\u00a8`^~", "\u0f0b\u0f0c\u104a\u1361", "\U00016FE2\U00011A42\U0001E95E",
        "Model \u3000Y\u957f\u7eed\u822a\u7248",
    ]
    return a + random_strings(random.Random(SEED + 1), 400)


def hf_tokenizers(vocab_path):
    warnings.filterwarnings("ignore")
    from transformers import BertTokenizerFast
    d = tempfile.mkdtemp()
    shutil.copy(vocab_path, os.path.join(d, "vocab.txt"))
    unc = BertTokenizerFast.from_pretrained(d, do_lower_case=True)
    cas = BertTokenizerFast.from_pretrained(d, do_lower_case=False)
    shutil.rmtree(d)
    return unc, cas


# Option combinations beyond the two main modes, checked on the
# adversarial set by hash: (name, BertTokenizerFast kwargs, clean_text).
OPTION_MODES = [
    ("lower_nostrip", dict(do_lower_case=True, strip_accents=False), True),
    ("cased_strip", dict(do_lower_case=False, strip_accents=True), True),
    ("nocjk", dict(do_lower_case=True, tokenize_chinese_chars=False), True),
    ("noclean", dict(do_lower_case=True), False),
]


def hf_option_tokenizers(vocab_path):
    warnings.filterwarnings("ignore")
    from tokenizers import normalizers
    from transformers import BertTokenizerFast
    d = tempfile.mkdtemp()
    shutil.copy(vocab_path, os.path.join(d, "vocab.txt"))
    out = []
    for name, kw, clean in OPTION_MODES:
        t = BertTokenizerFast.from_pretrained(d, **kw)
        if not clean:
            t.backend_tokenizer.normalizer = normalizers.BertNormalizer(
                clean_text=False, handle_chinese_chars=kw.get("tokenize_chinese_chars", True),
                strip_accents=kw.get("strip_accents"), lowercase=kw["do_lower_case"])
        out.append(t)
    shutil.rmtree(d)
    return out


def canonical(tok, text):
    enc = tok(text, return_offsets_mapping=True)
    be = tok.backend_tokenizer.encode(text)
    # the Python wrapper must agree with the Rust tokenizer
    assert enc["input_ids"] == be.ids and [tuple(o) for o in enc["offset_mapping"]] == be.offsets, text
    return " ".join("%d:%d:%d" % (i, s, e) for i, (s, e) in zip(enc["input_ids"], enc["offset_mapping"]))


def fnv1a64(s):
    h = 0xcbf29ce484222325
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def jsonl(text):
    return json.dumps(text, ensure_ascii=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data")
    args = ap.parse_args()
    vocab = os.path.join(args.data, "vocab", "bert-base-chinese-vocab.txt")
    os.makedirs(OUT, exist_ok=True)
    shutil.copy(vocab, VOCAB_COPY)
    unc, cas = hf_tokenizers(vocab)

    print("sampling real lines:")
    lines = sample_real_lines(args.data)
    with open(os.path.join(OUT, "real_lines.jsonl"), "w", encoding="utf-8") as f:
        for t in lines:
            f.write(jsonl(t) + "\n")
    with open(os.path.join(OUT, "real_hashes.txt"), "w") as fh, \
            open(os.path.join(OUT, "real_expected.txt"), "w") as fe:
        for i, t in enumerate(lines):
            u, c = canonical(unc, t), canonical(cas, t)
            fh.write("%s %s\n" % (fnv1a64(u), fnv1a64(c)))
            if i < HEAD:
                fe.write(u + "\n" + c + "\n")

    adv = adversarial_lines()
    with open(os.path.join(OUT, "adversarial.jsonl"), "w", encoding="utf-8") as fa, \
            open(os.path.join(OUT, "adversarial_expected.txt"), "w") as fe:
        for t in adv:
            fa.write(jsonl(t) + "\n")
            fe.write(canonical(unc, t) + "\n" + canonical(cas, t) + "\n")

    with open(os.path.join(OUT, "adversarial_options_hashes.txt"), "w") as f:
        f.write("# %s\n" % " ".join(n for n, _, _ in OPTION_MODES))
        toks = hf_option_tokenizers(vocab)
        for t in adv:
            f.write(" ".join(fnv1a64(canonical(k, t)) for k in toks) + "\n")

    ev = os.path.join(OUT, "english_vocab.txt")
    with open(ev, "w") as f:
        f.write("\n".join(ENGLISH_VOCAB) + "\n")
    eunc, _ = hf_tokenizers(ev)
    with open(os.path.join(OUT, "english_expected.txt"), "w", encoding="utf-8") as f:
        for t in ENGLISH_INPUTS:
            enc = eunc(t)
            f.write("%s\t%s\n" % (jsonl(t), " ".join(eunc.convert_ids_to_tokens(enc["input_ids"]))))
            f.write(canonical(eunc, t) + "\n")

    print("%d real lines (%d with full output), %d adversarial lines" % (len(lines), min(HEAD, len(lines)), len(adv)))
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print("test/data/tokenizer: %d bytes" % total)


if __name__ == "__main__":
    sys.exit(main())

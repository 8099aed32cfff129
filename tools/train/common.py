"""Shared helpers for the finbert starter-model training pipeline.

Data readers for /work/shared/data (training splits only), deterministic
validation splits, tokenizer, threads, checkpoint helpers.

Validation splits are carved by hashing the *text* (salted per task), so that
identical texts always land on the same side (no train/validation text overlap,
which matters for FinFE whose training file repeats texts, sometimes with
conflicting labels) and so that the split does not depend on file order.
"""
import collections
import csv
import gzip
import hashlib
import json
import os
import random
import re
import signal
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("FINBERT_DATA", os.path.normpath(os.path.join(REPO, "..", "shared", "data")))
if not os.path.isdir(DATA):
    DATA = "/work/shared/data"
WORK = os.path.join(HERE, "work")
MODELS = os.path.join(REPO, "models")
VOCAB = os.path.join(HERE, "vocab.txt")          # trimmed vocabulary (committed)
FULL_VOCAB = os.path.join(DATA, "vocab", "bert-base-chinese-vocab.txt")
SEED = 20240601
VAL_PERMILLE = 100                                # 10 % validation


def D(*p):
    return os.path.join(DATA, *p)


def threads():
    import torch
    n = int(os.environ.get("FINBERT_TRAIN_THREADS", "1"))
    torch.set_num_threads(max(1, n))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return n


def seed_all(seed):
    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def is_val(key, salt, permille=VAL_PERMILLE):
    h = hashlib.md5((salt + "\x00" + key).encode("utf-8")).hexdigest()
    return int(h[:8], 16) % 1000 < permille


def log(fp, *a):
    msg = time.strftime("%Y-%m-%d %H:%M:%S ") + " ".join(str(x) for x in a)
    print(msg, flush=True)
    if fp:
        with open(fp, "a", encoding="utf-8") as f:
            f.write(msg + "\n")


def tokenizer(vocab=VOCAB):
    from transformers import BertTokenizerFast
    with open(vocab, encoding="utf-8") as f:
        v = {}
        for line in f:
            t = line.rstrip("\n")
            if t not in v:
                v[t] = len(v)
    try:
        return BertTokenizerFast(vocab=v, do_lower_case=True, tokenize_chinese_chars=True,
                                 strip_accents=None, model_max_length=512)
    except TypeError:  # transformers 4.x takes a vocabulary file only (the file has no duplicate token)
        assert len(v) == sum(1 for _ in open(vocab, encoding="utf-8")), "duplicate token in " + vocab
        return BertTokenizerFast(vocab_file=vocab, do_lower_case=True, tokenize_chinese_chars=True,
                                 strip_accents=None, model_max_length=512)


def atomic_torch_save(obj, path):
    import torch
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


class StopFlag:
    """Set on SIGTERM/SIGINT/SIGHUP so the training loop checkpoints and exits cleanly."""

    def __init__(self):
        self.stop = False
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            try:
                signal.signal(s, self._h)
            except (ValueError, OSError):
                pass

    def _h(self, *_):
        self.stop = True


# --------------------------------------------------------------------------------------------
# Readers: raw text
# --------------------------------------------------------------------------------------------

def load_json(p):
    with open(p, encoding="utf-8") as f:
        return json.load(f)


def finfe_rows():
    return [(t, int(l)) for t, l in load_json(D("bbt-fincuge", "finfe", "train_list.json"))]


FINNE_MAP = {"0.0": 0, "0.5": 1, "1.0": 2}


def finne_rows():
    out = []
    for t, l in load_json(D("bbt-fincuge", "finne", "train_list.json")):
        if str(l) in FINNE_MAP:
            out.append((t, FINNE_MAP[str(l)]))
    return out


def finnl_rows():
    return [(t, l.split()) for t, l in load_json(D("bbt-fincuge", "finnl", "train_list.json"))]


def finnsp_texts():
    out = []
    for r in load_json(D("bbt-fincuge", "finnsp", "train_list.json"))[1:]:
        title, text = r[1] or "", r[2] or ""
        if title and title not in text:
            out.append(title)
        out.append(text)
    return out


def finese_texts():
    return [r[1] for r in load_json(D("bbt-fincuge", "finese", "train_list.json"))]


def finre_texts():
    return [r[3] for r in load_json(D("bbt-fincuge", "finre", "train_list.json"))]


def choice_texts():
    with open(D("choice-news-headlines", "CH.csv"), encoding="utf-8") as f:
        return [r["Text"] for r in csv.DictReader(f)]


def tnews_texts():
    out = []
    with open(D("tnews", "train.tsv"), encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if p and p[0]:
                out.append(p[0])
    return out


def thucnews_texts():
    out = []
    with open(D("thucnews-titles", "dev.txt"), encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if p and p[0]:
                out.append(p[0])
    return out


def smp_texts():
    out = []
    for fn in ("virus_train.txt", "virus_eval_labeled.txt", "usual_eval_labeled.txt"):
        for r in load_json(D("smp2020-ewect", fn)):
            out.append(r["content"])
    return out


def flash_items(raw=False):
    """cls-flash-news-2026: one dict per item of the three sources (source, date, title, content, subjects,
    stocks; raw: also the upstream record), in file order. Research-use licence: for training only, recorded in
    the model cards."""
    out = []
    for src in ("cls", "ths", "eastmoney"):
        with gzip.open(D("cls-flash-news-2026", f"{src}.jsonl.gz"), "rt", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                out.append({"source": src, "date": d.get("date") or "", "title": d.get("title") or "",
                            "content": d.get("content") or "", "subjects": d.get("subjects") or [],
                            "stocks": d.get("stocks") or [], **({"raw": d.get("raw") or {}} if raw else {})})
    return out


def executives():
    """a-share-executives: (name, stock code) of the listed companies' board members (a gazetteer)."""
    with open(D("a-share-executives", "executive_prep.csv"), encoding="utf-8") as f:
        return [(r["name"], r["code"]) for r in csv.DictReader(f)]


def stock_rows():
    with open(D("a-share-stock-list", "stock_list.csv"), encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------
# NER readers -> list of (text, [(start, end_exclusive, raw_type), ...], source)
# --------------------------------------------------------------------------------------------

def _bio_spans(chars, tags, scheme="BIO"):
    spans, cur = [], None
    for i, t in enumerate(tags):
        if t == "O" or not t:
            if cur:
                spans.append(cur); cur = None
            continue
        pre, typ = t.split("-", 1)
        if pre in ("B", "S") or cur is None or cur[2] != typ:
            if cur:
                spans.append(cur)
            cur = [i, i + 1, typ]
            if pre == "S":
                spans.append(cur); cur = None
        else:  # I / M / E
            cur[1] = i + 1
            if pre == "E":
                spans.append(cur); cur = None
    if cur:
        spans.append(cur)
    return [tuple(s) for s in spans]


def _read_conll(path, strip_digit=False, sep=None):
    sents, chars, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                if chars:
                    sents.append((chars, tags)); chars, tags = [], []
                continue
            p = line.split(sep) if sep else line.split()
            if len(p) < 2:
                continue
            c, t = p[0], p[-1]
            if strip_digit and len(c) > 1 and c[-1].isdigit():
                c = c[:-1]
            chars.append(c if len(c) == 1 else c[0])
            tags.append(t)
    if chars:
        sents.append((chars, tags))
    return [("".join(c), _bio_spans(c, t)) for c, t in sents]


def ner_cluener():
    out = []
    with open(D("cluener2020", "train.json"), encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            spans = []
            for typ, ms in (r.get("label") or {}).items():
                for _, pos in ms.items():
                    for s, e in pos:
                        spans.append((s, e + 1, typ))
            out.append((r["text"], spans, "cluener2020"))
    return out


def ner_resume():
    out = []
    for fn in ("train.char.bmes", "dev.char.bmes"):
        out += [(t, s, "resume-ner") for t, s in _read_conll(D("resume-ner", fn))]
    return out


def ner_weibo():
    out = []
    for fn in ("weiboNER_2nd_conll.train", "weiboNER_2nd_conll.dev"):
        out += [(t, s, "weibo-ner") for t, s in _read_conll(D("weibo-ner", fn), strip_digit=True)]
    return out


def ner_msra():
    out = []
    with open(D("msra-ner", "val", "sentences.txt"), encoding="utf-8") as fs, \
            open(D("msra-ner", "val", "tags.txt"), encoding="utf-8") as ft:
        for s, t in zip(fs, ft):
            chars, tags = s.split(), t.split()
            if not chars or len(chars) != len(tags):
                continue
            out.append(("".join(chars), _bio_spans(chars, tags), "msra-ner"))
    return out


def ner_msra_train():
    """msra-ner-train: the full MSRA training file minus its People's Daily test overlap (40,463 sentences)."""
    return [(t, s, "msra-ner-train") for t, s in _read_conll(D("msra-ner-train", "msra_train_bio.filtered"),
                                                              sep="\t")]


def ner_peoples_daily():
    return [(t, s, "peoples-daily-ner") for t, s in _read_conll(D("peoples-daily-ner", "example.dev"))]


def ner_cfsc():
    out = []
    for r in load_json(D("cfsc", "CFSC-NER", "json", "val.json")):
        out.append((r["text"], [(l["from"], l["to"], l["Level 1 Aspect"]) for l in r["labels"]], "cfsc"))
    return out


def ner_all_raw():
    return ner_cluener() + ner_resume() + ner_cfsc() + ner_msra() + ner_peoples_daily() + ner_weibo()


# --------------------------------------------------------------------------------------------
# Deterministic validation splits (shared by pretraining corpus exclusion and fine-tuning)
# --------------------------------------------------------------------------------------------

def split_rows(rows, salt, key=lambda r: r[0]):
    tr, va = [], []
    for r in rows:
        (va if is_val(key(r), salt) else tr).append(r)
    return tr, va


def sentiment_splits():
    """FinFE (+FinNE) rows split by text hash; returns dict name -> (train, val)."""
    return {"finfe": split_rows(finfe_rows(), "finfe"), "finne": split_rows(finne_rows(), "finne")}


def finnl_split():
    return split_rows(finnl_rows(), "finnl")


def ner_split():
    return split_rows(ner_all_raw(), "ner")


def validation_texts():
    """Texts of every labeled validation split (excluded from the pre-training corpus)."""
    v = set()
    for _, (tr, va) in sentiment_splits().items():
        v.update(t for t, _ in va)
    v.update(t for t, _ in finnl_split()[1])
    v.update(t for t, _, _ in ner_split()[1])
    return v


def pretrain_texts():
    """All Chinese text of the shared training splits except ChnSentiCorp (license) and the
    texts of our labeled validation splits. Returns (texts, per-source counts)."""
    val = {re.sub(r"\s+", " ", t).strip() for t in validation_texts()}
    srcs = _round1_sources()
    seen, out, counts = set(), [], {}
    for name, texts in srcs:
        n = 0
        for t in texts:
            t = re.sub(r"\s+", " ", (t or "")).strip()
            if len(t) < 2 or t in seen or t in val:
                continue
            seen.add(t)
            out.append(t)
            n += 1
        counts[name] = n
    return out, counts


def _round1_sources():
    """(name, texts) of the round-1 pre-training sources, in corpus order."""
    return [
        ("bbt-fincuge/finfe", [t for t, _ in finfe_rows()]),
        ("bbt-fincuge/finne", [t for t, _ in finne_rows()]),
        ("bbt-fincuge/finnl", [t for t, _ in finnl_rows()]),
        ("bbt-fincuge/finnsp", finnsp_texts()),
        ("bbt-fincuge/finese", finese_texts()),
        ("bbt-fincuge/finre", finre_texts()),
        ("choice-news-headlines", choice_texts()),
        ("tnews", tnews_texts()),
        ("thucnews-titles", thucnews_texts()),
        ("smp2020-ewect", smp_texts()),
        ("ner (cluener2020, resume-ner, cfsc, msra-ner, peoples-daily-ner, weibo-ner)",
         [t for t, _, _ in ner_all_raw()]),
    ]


# --------------------------------------------------------------------------------------------
# Round 2 pre-training text: finance news (flash, readhub), CCTV news transcripts, national laws
# --------------------------------------------------------------------------------------------

PIECE_MAX, PIECE_MIN, SHINGLE = 250, 8, 10
_SENT_END = re.compile(r"(?<=[。！？；])[”’」』）)]*")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def _norm(t):
    return re.sub(r"\s+", " ", t or "").strip()


def cut_pieces(text, max_chars=PIECE_MAX, min_chars=PIECE_MIN):
    """Cuts a text at sentence ends (。！？； and a closing quote after it) into pieces of at most max_chars:
    whole sentences are packed greedily; a longer sentence is cut at its last comma before max_chars (else hard).
    Pieces shorter than min_chars are dropped (fragments, credits)."""
    sents, last = [], 0
    for m in _SENT_END.finditer(text):
        if m.end() > last:
            sents.append(text[last:m.end()])
            last = m.end()
    if last < len(text):
        sents.append(text[last:])
    out, cur = [], ""
    for s in sents:
        while len(s) > max_chars:
            k = max(s.rfind("，", 0, max_chars), s.rfind(",", 0, max_chars))
            k = k + 1 if k >= max_chars // 3 else max_chars
            if cur:
                out.append(cur); cur = ""
            out.append(s[:k]); s = s[k:]
        if len(cur) + len(s) > max_chars:
            out.append(cur); cur = ""
        cur += s
    if cur:
        out.append(cur)
    return [p.strip() for p in out if len(p.strip()) >= min_chars]


def flash_units(limit=None):
    """cls-flash-news-2026 items as (key, [title, content]): the title only where the content does not repeat it
    (CLS bodies start with 【title】)."""
    out = []
    for i, it in enumerate(flash_items()):
        if limit is not None and i >= limit:   # NB: limit counts the items of cls first (file order)
            break
        title, body = _norm(it["title"]), _norm(it["content"])
        texts = ([title] if title and title not in body else []) + ([body] if body else [])
        out.append((f"flash:{it['source']}:{it['date']}:{i}", texts))
    return out


def readhub_units(limit=None):
    """readhub-news topics as (key, [title, summary]); the summary's truncation mark " ..." is removed.
    The parts are sequences of pretty-printed JSON arrays (one per day): parsed with raw_decode in a loop."""
    out, dec = [], json.JSONDecoder()
    for fn in ("readhub_2023-2024.json.gz", "readhub_2025-2026.json.gz"):
        with gzip.open(D("readhub-news", fn), "rt", encoding="utf-8") as f:
            s = f.read()
        pos = 0
        while pos < len(s):
            while pos < len(s) and s[pos].isspace():
                pos += 1
            if pos >= len(s):
                break
            arr, pos = dec.raw_decode(s, pos)
            for d in arr:
                summ = re.sub(r"\s*(\.\.\.|…)\s*$", "", _norm(d.get("summary")))
                out.append((f"readhub:{d.get('id')}", [_norm(d.get("title")), summ]))
                if limit is not None and len(out) >= limit:
                    return out
    return out


def xwlb_units(limit=None):
    """xinwenlianbo transcripts as (key, [paragraph]): markdown headings (# day, ## story), [原文](url) link lines
    and the **央视网消息**（新闻联播）： lead-in are dropped; link markup keeps its anchor text."""
    out = []
    for fn in ("xwlb_2020-2022.md.gz", "xwlb_2023-2026.md.gz"):
        day = ""
        with gzip.open(D("xinwenlianbo", fn), "rt", encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line.startswith("# "):
                    day = line[2:].strip()
                if not line or line.startswith("#"):
                    continue
                line = _MD_LINK.sub(r"\1", line).replace("**", "").strip("* ")
                line = re.sub(r"^央视网消息\s*[（(]新闻联播[）)]\s*[：:]\s*", "", line)
                if line in ("原文", ""):
                    continue
                out.append((f"xwlb:{day}:{len(out)}", [_norm(line)]))
                if limit is not None and len(out) >= limit:
                    return out
    return out


def laws_units(limit=None):
    """cn-laws documents as (key, [paragraph]) of the article text: the English README, the # title, the date
    bullets up to <!-- INFO END --> and the #### chapter / ###### article headings are dropped."""
    out, doc, body = [], -1, False
    with gzip.open(D("cn-laws", "national_laws.md.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("# "):
                doc += 1
                body = False
                continue
            if line.startswith("<!-- INFO END"):
                body = doc > 0      # doc 0 is the collection's README (English)
                continue
            if not body or not line or line.startswith("#"):
                continue
            line = _MD_LINK.sub(r"\1", line).replace("**", "")
            out.append((f"law:{doc}:{len(out)}", [_norm(line)]))
            if limit is not None and len(out) >= limit:
                return out
    return out


ROUND2_SOURCES = [("cls-flash-news-2026", flash_units), ("readhub-news", readhub_units),
                  ("xinwenlianbo", xwlb_units), ("cn-laws", laws_units)]
MONITOR_SOURCES = ("cls-flash-news-2026", "readhub-news")
MONITOR_PERMILLE = 10                             # 1 % of the finance news units -> monitor_flash.npz


def probe_texts():
    """Texts of the committed probe lists in tools/train/eval/ (written by hand; excluded from pre-training)."""
    out = []
    for fn, col in (("finance_sentiment_50.tsv", 1), ("no_single_industry.txt", 0), ("entities_probe.tsv", 0)):
        with open(os.path.join(HERE, "eval", fn), encoding="utf-8") as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                p = line.rstrip("\n").split("\t")
                if len(p) > col and p[col].strip():
                    out.append(p[col])
    return out


def round2_exclusion_texts():
    """Every text that the round-2 corpus must not contain: validation_texts(), the val dicts of the round-2
    tasks (sentiment, industry, ner: they include flash-news texts) and the probe lists. Returns {name: set}."""
    import tasks
    ex = {"validation_texts": set(validation_texts())}
    for name in ("sentiment", "industry", "ner"):
        d = getattr(tasks, name)()
        ex["tasks." + name] = {e["text"] for v in d["val"].values() for e in v}
    ex["eval probes"] = set(probe_texts())
    return {k: {_norm(t) for t in v if _norm(t)} for k, v in ex.items()}


class Excluder:
    """Finds the pieces that leak a held-out text: a piece (or a whole unit) that equals or contains a held-out
    text of >= SHINGLE characters (index: the first SHINGLE characters of each held-out text), a piece that
    equals a shorter held-out text, or a piece that is itself part of a held-out text (its first and last
    SHINGLE-character shingles are held-out shingles, confirmed by a substring search)."""

    def __init__(self, texts):
        self.exact = set(texts)
        self.first = collections.defaultdict(list)
        self.shingles = set()
        for t in self.exact:
            if len(t) >= SHINGLE:
                self.first[t[:SHINGLE]].append(t)
                self.shingles.update(t[i:i + SHINGLE] for i in range(len(t) - SHINGLE + 1))
        self.big = "\x00".join(sorted(self.exact))

    def contains(self, s):
        """The first held-out text (>= SHINGLE chars) that s contains, or None."""
        f = self.first
        for i in range(len(s) - SHINGLE + 1):
            c = f.get(s[i:i + SHINGLE])
            if c:
                for t in c:
                    if s.startswith(t, i):
                        return t
        return None

    def leaks(self, piece):
        if piece in self.exact:
            return "equal"
        if self.contains(piece):
            return "contains"
        if (len(piece) >= SHINGLE and piece[:SHINGLE] in self.shingles and piece[-SHINGLE:] in self.shingles
                and piece in self.big):
            return "inside"
        return None


def _admit(t, seen, ex, drop, count_duplicates=False):
    """True when t is new and contains / is part of no held-out text; else counts why in drop."""
    if t in seen:
        if count_duplicates:
            drop["duplicate"] += 1
        return False
    why = ex.leaks(t)
    if why:
        drop[why] += 1
        return False
    seen.add(t)
    return True


def pretrain_texts_round2(limit=None, inject=None, exclude=None):
    """Round-2 pre-training texts: the round-1 texts plus pieces (<= PIECE_MAX chars at sentence ends) of the
    flash news, readhub topics, xinwenlianbo paragraphs and law paragraphs; de-duplicated; without any text that
    leaks a held-out text (Excluder over round2_exclusion_texts()). A unit (flash item, topic, paragraph) that
    contains a held-out text is dropped whole, so that its other pieces (the rest of a validation item) stay out
    too. 1 % of the finance units (MONITOR_SOURCES, salted hash of the unit key) go to the monitor list instead.
    limit: first N texts (units) per source, for tests. inject: [(source, text)] added at the start of a source
    (negative control). Returns (texts, monitor, counts, report); counts is ordered like texts (per source)."""
    exclude = exclude if exclude is not None else round2_exclusion_texts()
    ex = Excluder(set().union(*exclude.values()))
    report = {"excluded_texts": {k: len(v) for k, v in exclude.items()}, "dropped": {}, "pieces": {},
              "monitor": {}}
    seen, out, counts, monitor = set(), [], {}, []
    for name, texts in _round1_sources():
        n, drop = 0, collections.Counter()
        for t in (texts if limit is None else texts[:limit]):
            t = _norm(t)
            if len(t) < 2 or not _admit(t, seen, ex, drop):
                continue
            out.append(t)
            n += 1
        counts[name] = n
        report["dropped"][name] = dict(drop)
    inject = inject or []
    for name, reader in ROUND2_SOURCES:
        units = [(f"inject:{i}", [t]) for i, (s, t) in enumerate(inject) if s == name] + reader(limit)
        n, n_mon, drop, npieces = 0, 0, collections.Counter(), 0
        for key, texts in units:
            texts = [_norm(t) for t in texts if _norm(t)]
            if any(ex.contains(t) for t in texts):
                k = sum(len(cut_pieces(t)) for t in texts)
                drop["unit contains"] += k
                npieces += k
                continue
            to_mon = name in MONITOR_SOURCES and is_val(key, "monitor-flash", MONITOR_PERMILLE)
            for t in texts:
                for p in cut_pieces(t):
                    npieces += 1
                    if not _admit(p, seen, ex, drop, count_duplicates=True):
                        continue
                    if to_mon:
                        monitor.append(p)
                        n_mon += 1
                    else:
                        out.append(p)
                        n += 1
        counts[name] = n
        report["pieces"][name] = npieces
        report["monitor"][name] = n_mon
        report["dropped"][name] = dict(drop)
    return out, monitor, counts, report

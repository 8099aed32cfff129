"""Fine-tune one finbert task model from the pre-trained encoder and export it to models/finbert-<task>/.

    FINBERT_TRAIN_THREADS=1 python tools/train/finetune.py sentiment     # or: type, industry, ner

Resumable: state (model, optimizer, scheduler, RNG, epoch/batch position) is written atomically to
tools/train/work/ft-<task>/ckpt.pt every --ckpt-minutes and on SIGTERM; running the same command again
resumes. When training is complete the model is evaluated on the validation split(s), exported in fp16
(model.safetensors) with config.json / vocab.txt / tokenizer_config.json, re-loaded with transformers to
check fp16 vs fp32 logits, and a model card (README.md) is written.

  --fresh            once the task checkpoint is finished, discard it and train again from the current encoder
                     (e.g. after more pre-training); an unfinished one is resumed, so re-running is safe
  --restart          discard any task checkpoint, finished or not
  --encoder DIR      encoder to start from (default tools/train/work/pretrain/encoder, the latest
                     pre-training checkpoint)
  --export-only      re-evaluate / re-export the finished checkpoint
Fixed number of epochs, no model selection on the validation split (the reported figures are not tuned on).
"""
import argparse
import collections
import json
import math
import os
import random
import re
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import tasks  # noqa: E402

ENCODER = os.path.join(common.WORK, "pretrain", "encoder")
CRF_LR_FACTOR = 50


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=sorted(tasks.BUILDERS))
    ap.add_argument("--encoder", default=ENCODER)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int)
    ap.add_argument("--seed", type=int, default=common.SEED)
    ap.add_argument("--ckpt-minutes", type=float, default=10.0)
    ap.add_argument("--fresh", action="store_true",
                    help="if the task checkpoint is finished, discard it and train again from the current encoder; "
                         "an unfinished checkpoint is resumed (so re-running the same command is safe)")
    ap.add_argument("--restart", action="store_true", help="discard any task checkpoint")
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--work", help="work directory name under tools/train/work (default ft-<task>), so two runs "
                                   "of one task can go side by side")
    ap.add_argument("--aug-names", type=float, default=0.0, metavar="P",
                    help="ner: add, for a fraction P of the training sentences naming a person, a copy with every "
                         "person name replaced by another training-set name (seeded); teaches name boundaries "
                         "from context rather than from the names seen")
    ap.add_argument("--pseudo", metavar="FILE",
                    help="ner: add the pseudo-labelled sentences of FILE (pseudo.py) to the training set, each "
                         "as a corpus annotating only the types pseudo.py labelled; industry: add the "
                         "pseudo-labelled examples of FILE (industry_knowledge.py --pseudo-out: held-out "
                         "companies' names and corpus sentences, labelled from the corpus, not from the gazetteer)")
    ap.add_argument("--pseudo-min-p", type=float, default=0.0, metavar="P",
                    help="industry: keep only the pseudo-labelled companies predicted with probability >= P")
    ap.add_argument("--pseudo-min-examples", type=int, default=0, metavar="N",
                    help="industry: repeat each pseudo-labelled company's examples up to N")
    ap.add_argument("--train-sources", metavar="SRC[:F],...",
                    help="ner, sentiment: train only on the sentences of these corpora (tasks.NER_SOURCE_TYPES or "
                         "tasks.SENTIMENT_SOURCES names), each "
                         "cut to the fraction F (default 1) by a salted hash of the text, so a smaller fraction is a "
                         "subset of a larger one; validation is unchanged (a learning curve, README)")
    ap.add_argument("--flash-weak", type=int, metavar="N",
                    help="ner: how many weak flash-news texts to add (tasks.flash_weak_ner; default "
                         "tasks.FLASH_WEAK_MAX), a hash-ordered sample")
    ap.add_argument("--name-copies", type=int, default=1, metavar="K",
                    help="industry: K copies of each training company's name-only example (a company's name "
                         "carries more of its industry than the texts around it, tasks.industry)")
    ap.add_argument("--dev", action="store_true",
                    help="industry: train and score on the development split (tasks.industry(dev=True)) to choose "
                         "options without the reported split; needs --out")
    ap.add_argument("--init-model", metavar="DIR",
                    help="warm start from a finished task model (e.g. the shipped models/finbert-<task>): its "
                         "encoder, and its head rows (classifier, CRF) for the labels it shares with this task; "
                         "new labels start from the usual random initialisation")
    ap.add_argument("--calib", action="store_true",
                    help="multi-label: hold out 10 %% of the training texts (salted hash) as a calibration split, "
                         "choose the decision threshold on it (micro-F1) and write it to config.json "
                         "(finbert_threshold); validation is then scored at that threshold and at 0.5")
    ap.add_argument("--bf16", action="store_true",
                    help="training forward pass under bfloat16 autocast (fp32 weights, optimizer and loss); "
                         "~1.5x faster on CPUs with AVX512-BF16/AMX; evaluation and export stay fp32")
    return ap.parse_args()


# ------------------------------------------------------------------------------------------------
# learning curves (ner / sentiment --train-sources)
# ------------------------------------------------------------------------------------------------

def parse_sources(spec, known):
    """'cluener2020:0.5,weibo-ner' -> {'cluener2020': 0.5, 'weibo-ner': 1.0}; corpora not in known are refused."""
    keep = {}
    for part in spec.split(","):
        src, _, frac = part.strip().partition(":")
        if src not in known:
            sys.exit(f"--train-sources: unknown corpus {src!r} (one of {', '.join(sorted(known))})")
        f = float(frac) if frac else 1.0
        if not 0 < f <= 1:
            sys.exit(f"--train-sources: fraction of {src} must be in (0, 1], got {f}")
        keep[src] = f
    return keep


def subsample_sources(examples, keep):
    """The examples of the corpora in keep, each corpus cut to its fraction by a salted MD5 of the text
    (nested: the 25 % sample is part of the 50 % one)."""
    out = []
    for e in examples:
        f = keep.get(e["source"])
        if f is not None and common.is_val(e["text"], "learning-curve", int(round(f * 1000))):
            out.append(e)
    return out


# ------------------------------------------------------------------------------------------------
# name substitution (ner --aug-names)
# ------------------------------------------------------------------------------------------------

_NAME_CHARS = re.compile(r"^[\u4e00-\u9fff·]{2,8}$")


def name_pool(examples):
    """Distinct person names of the training sentences: Chinese characters (and the middle dot of
    transliterated names) only, 2-8 long, so Weibo handles and Latin strings do not enter."""
    pool = set()
    for e in examples:
        for st, en, t in e["spans"]:
            if t == "person" and _NAME_CHARS.match(e["text"][st:en]):
                pool.add(e["text"][st:en])
    return sorted(pool)


def substitute_names(e, pool, rng):
    """Copy of example e with each person span replaced by a random name of the pool; the other spans and
    the ignored spans move with the text. None if e names no person or a person span touches an ignored
    span (its labels would become ambiguous)."""
    people = [sp for sp in e["spans"] if sp[2] == "person"]
    if not people or any(s < ie and i0 < en for s, en, _ in people for i0, ie in e["ignore"]):
        return None
    text, shift, spans, pos = [], 0, [], 0
    moves = []  # (old position, offset to add from there on)
    for s, en, t in sorted(e["spans"]):
        text.append(e["text"][pos:s])
        new = rng.choice(pool) if t == "person" else e["text"][s:en]
        spans.append((s + shift, s + shift + len(new), t))
        text.append(new)
        shift += len(new) - (en - s)
        moves.append((en, shift))
        pos = en
    text.append(e["text"][pos:])

    def moved(x):
        d = 0
        for old, off in moves:
            if x >= old:
                d = off
        return x + d

    out = dict(e)
    out["text"] = "".join(text)
    out["spans"] = spans
    out["ignore"] = [(moved(a), moved(b)) for a, b in e["ignore"]]
    return out


def augment_names(examples, p, seed):
    """Substituted copies of a fraction p of the sentences that name a person (appended to the set)."""
    rng = random.Random(seed)
    pool = name_pool(examples)
    extra = []
    for e in examples:
        if rng.random() < p:
            c = substitute_names(e, pool, rng)
            if c is not None:
                extra.append(c)
    return extra, len(pool)


def load_pseudo_industry(path, labels, min_p, min_examples=0):
    """Pseudo-labelled industry examples of industry_knowledge.py --pseudo-out; those of companies predicted
    with probability < min_p are left out; a company with fewer than min_examples has its examples repeated
    (cyclically) up to that number, so that rarely named companies are learnt as well as the frequent ones."""
    idx = {l: i for i, l in enumerate(labels)}
    by_company = collections.defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d["p"] >= min_p:
                by_company[d["company"]].append({"text": d["text"], "y": idx[d["label"]], "company": d["company"],
                                                 "source": "pseudo"})
    out = []
    for c, ex in by_company.items():
        out += [ex[i % len(ex)] for i in range(max(len(ex), min_examples))]
    return out


def load_pseudo(path):
    """Pseudo-labelled sentences of pseudo.py as training examples of a partially annotated corpus."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out.append({"text": d["text"], "spans": [tuple(s) for s in d["spans"]], "ignore": [],
                        "source": "pseudo", "types": d["types"]})
    return out


# ------------------------------------------------------------------------------------------------
# encoding
# ------------------------------------------------------------------------------------------------

def encode(tok, data, examples, max_len):
    texts = [e["text"] for e in examples]
    enc = tok(texts, truncation=True, max_length=max_len, return_offsets_mapping=(data["kind"] == "tok"))
    out = []
    L = len(data["labels"])
    for i, e in enumerate(examples):
        ids = enc["input_ids"][i]
        r = {"ids": ids}
        if data["kind"] == "seq":
            r["y"] = e["y"]
        elif data["kind"] == "multi":
            v = [0.0] * L
            for y in e["y"]:
                v[y] = 1.0
            r["y"] = v
        else:
            r["offsets"] = enc["offset_mapping"][i]
            r["y"] = token_labels(e, r["offsets"], data["labels"])
            r["types"] = e.get("types", [])
        out.append(r)
    return out


def token_labels(e, offsets, labels):
    """BIO label per token from character spans; -100 for special tokens and ignored spans (any tag);
    -1 for an unlabelled token of a corpus that does not annotate every type (O or a tag of a type the
    corpus does not annotate, see tasks.NER_SOURCE_TYPES)."""
    lid = {l: i for i, l in enumerate(labels)}
    types = e.get("types")
    partial = types is not None and set(types) != {l.split("-", 1)[1] for l in labels if l != "O"}
    n = len(e["text"])
    ch = ["O"] * (n + 1)
    for s, t, lab in e["spans"]:
        ch[s] = "B-" + lab
        for k in range(s + 1, t):
            ch[k] = "I-" + lab
    ign = [False] * (n + 1)
    for s, t in e["ignore"]:
        for k in range(s, t):
            ign[k] = True
    ys = []
    for (s, t) in offsets:
        if s == t:
            ys.append(-100)
        elif any(ign[s:t]):
            ys.append(-100)
        elif ch[s] == "O" and partial:
            ys.append(-1)
        else:
            ys.append(lid[ch[s]])
    return ys


def allowed_tags(enc, b, T, labels):
    """[B, T, L] bool: the tags each token may take in the partial-label CRF (see token_labels)."""
    L = len(labels)
    out = torch.zeros(len(b), T, L, dtype=torch.bool)
    for i, k in enumerate(b):
        r = enc[k]
        types = set(r.get("types", []))
        open_ = torch.tensor([j == 0 or labels[j].split("-", 1)[1] not in types for j in range(L)])
        for t, y in enumerate(r["y"]):
            if y == -100:
                out[i, t] = True
            elif y == -1:
                out[i, t] = open_
            else:
                out[i, t, y] = True
    return out


def batches(enc, batch, seed, epoch, shuffle=True):
    """Length-bucketed batches: shuffle, sort within pools of 50 batches, shuffle batch order."""
    idx = list(range(len(enc)))
    rng = random.Random(seed + 7919 * epoch)
    if shuffle:
        rng.shuffle(idx)
    pool = batch * 50
    out = []
    for i in range(0, len(idx), pool):
        chunk = sorted(idx[i:i + pool], key=lambda k: len(enc[k]["ids"]))
        out += [chunk[j:j + batch] for j in range(0, len(chunk), batch)]
    if shuffle:
        rng.shuffle(out)
    return out


def collate(enc, b, kind):
    T = max(len(enc[k]["ids"]) for k in b)
    ids = torch.zeros(len(b), T, dtype=torch.long)
    att = torch.zeros(len(b), T, dtype=torch.long)
    for i, k in enumerate(b):
        x = enc[k]["ids"]
        ids[i, :len(x)] = torch.tensor(x)
        att[i, :len(x)] = 1
    if kind == "seq":
        y = torch.tensor([enc[k]["y"] for k in b], dtype=torch.long)
    elif kind == "multi":
        y = torch.tensor([enc[k]["y"] for k in b], dtype=torch.float)
    else:
        y = torch.full((len(b), T), -100, dtype=torch.long)
        for i, k in enumerate(b):
            yy = enc[k]["y"]
            y[i, :len(yy)] = torch.tensor([0 if v == -1 else v for v in yy])  # softmax head: unlabelled = O
    return ids, att, y


# ------------------------------------------------------------------------------------------------
# CRF head (token task)
# ------------------------------------------------------------------------------------------------

class CRF(torch.nn.Module):
    """Linear-chain CRF over the token classifier's emissions, with pytorch-crf's parameter names
    (crf.transitions [from, to], crf.start_transitions, crf.end_transitions): the tensors finbert's
    engine reads and decodes with Viterbi. Runs over the text tokens only ([CLS]/[SEP] excluded), as
    the engine does."""

    def __init__(self, n_labels):
        super().__init__()
        self.transitions = torch.nn.Parameter(torch.empty(n_labels, n_labels).uniform_(-0.1, 0.1))
        self.start_transitions = torch.nn.Parameter(torch.empty(n_labels).uniform_(-0.1, 0.1))
        self.end_transitions = torch.nn.Parameter(torch.empty(n_labels).uniform_(-0.1, 0.1))

    def log_partition(self, em, mask):
        """log sum over tag paths of exp(score); em [B, T, L], mask [B, T] (prefix of True)."""
        a = self.start_transitions + em[:, 0]
        for t in range(1, em.shape[1]):
            nxt = torch.logsumexp(a.unsqueeze(2) + self.transitions + em[:, t].unsqueeze(1), dim=1)
            a = torch.where(mask[:, t].unsqueeze(1), nxt, a)
        return torch.logsumexp(a + self.end_transitions, dim=1)

    def nll(self, em, allowed, mask):
        """Negative log-likelihood of the gold tags, given as the set of tags allowed at each position
        (allowed [B, T, L] bool): one tag for a labelled token, several where the annotation is partial
        (ignored spans, types the corpus does not annotate); the numerator sums over every path through
        the allowed tags (partial-label CRF)."""
        return self.log_partition(em, mask) - self.log_partition(em.masked_fill(~allowed, -1e4), mask)

    def viterbi(self, em):
        """Best tag path for one sequence of emissions [n, L] (numpy)."""
        tr = self.transitions.detach().numpy()
        score = self.start_transitions.detach().numpy() + em[0]
        back = []
        for t in range(1, len(em)):
            tot = score[:, None] + tr + em[t][None, :]
            back.append(tot.argmax(0))
            score = tot.max(0)
        best = int(np.argmax(score + self.end_transitions.detach().numpy()))
        path = [best]
        for b in reversed(back):
            best = int(b[best])
            path.append(best)
        return path[::-1]


def forward_logits(model, ids, att, bf16):
    """Training forward pass, under bfloat16 autocast with bf16; the logits come back in fp32, so the
    losses are computed in fp32."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        lg = model(input_ids=ids, attention_mask=att).logits
    return lg.float()


def crf_loss(model, ids, att, allowed, bf16=False):
    """Per-token-normalised CRF NLL over the text tokens of each sequence (the CRF runs in fp32)."""
    lg = forward_logits(model, ids, att, bf16)
    lens = att.sum(1) - 2
    T = lg.shape[1] - 2
    em, al = lg[:, 1:T + 1], allowed[:, 1:T + 1]
    mask = torch.arange(T).unsqueeze(0) < lens.unsqueeze(1)
    return model.crf.nll(em, al, mask).sum() / lens.sum().clamp(min=1)


def task_loss(model, ids, att, y, kind, bf16=False):
    """The loss transformers computes for this problem type, on fp32 logits."""
    lg = forward_logits(model, ids, att, bf16)
    if kind == "multi":
        return torch.nn.functional.binary_cross_entropy_with_logits(lg, y)
    return torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), y.reshape(-1), ignore_index=-100)


def token_tags(model, lg):
    """Tags of one sequence's logits [n, L] incl. [CLS]/[SEP]: CRF path or argmax."""
    if getattr(model, "crf", None) is None or len(lg) <= 2:
        return lg.argmax(-1).tolist()
    return [0] + model.crf.viterbi(lg[1:-1]) + [0]


# ------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------

def predict(model, enc, kind, bs=64):
    model.eval()
    outs = [None] * len(enc)
    with torch.no_grad():
        for b in batches(enc, bs, 0, 0, shuffle=False):
            ids, att, _ = collate(enc, b, kind)
            lg = model(input_ids=ids, attention_mask=att).logits.float()
            for i, k in enumerate(b):
                outs[k] = lg[i, :len(enc[k]["ids"])].numpy() if kind == "tok" else lg[i].numpy()
    model.train()
    return outs


def f1(p, r):
    return 2 * p * r / (p + r) if p + r else 0.0


def seq_metrics(labels, ys, logits):
    pred = [int(np.argmax(l)) for l in logits]
    acc = float(np.mean([a == b for a, b in zip(pred, ys)])) if ys else 0.0
    per = {}
    for c, name in enumerate(labels):
        tp = sum(1 for a, b in zip(pred, ys) if a == c and b == c)
        fp = sum(1 for a, b in zip(pred, ys) if a == c and b != c)
        fn = sum(1 for a, b in zip(pred, ys) if a != c and b == c)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        per[name] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1(p, r), 4), "support": tp + fn}
    present = [v["f1"] for v in per.values() if v["support"] > 0]
    top3 = float(np.mean([y in np.argsort(-l)[:3] for l, y in zip(logits, ys)])) if ys else 0.0
    return {"n": len(ys), "accuracy": round(acc, 4), "macro_f1": round(float(np.mean(present)), 4),
            "top3_accuracy": round(top3, 4), "per_class": per}


def multi_metrics(labels, ys, logits, threshold=0.5):
    P = [[1 if 1 / (1 + math.exp(-v)) >= threshold else 0 for v in l] for l in logits]
    tp = fp = fn = 0
    per = {}
    for c, name in enumerate(labels):
        a = sum(1 for p, y in zip(P, ys) if p[c] and c in y)
        b = sum(1 for p, y in zip(P, ys) if p[c] and c not in y)
        d = sum(1 for p, y in zip(P, ys) if not p[c] and c in y)
        tp, fp, fn = tp + a, fp + b, fn + d
        pp = a / (a + b) if a + b else 0.0
        rr = a / (a + d) if a + d else 0.0
        per[name] = {"precision": round(pp, 4), "recall": round(rr, 4), "f1": round(f1(pp, rr), 4), "support": a + d}
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    exact = float(np.mean([set(i for i, v in enumerate(p_) if v) == set(y) for p_, y in zip(P, ys)]))
    present = [v["f1"] for v in per.values() if v["support"] > 0]
    return {"n": len(ys), "threshold": threshold, "micro_f1": round(f1(p, r), 4), "micro_precision": round(p, 4),
            "micro_recall": round(r, 4), "macro_f1": round(float(np.mean(present)), 4), "exact_match": round(exact, 4), "per_class": per}


def decode_spans(labels, tag_ids, offsets):
    """Token BIO tags -> character spans (start, end_excl, type); I- without B- starts a span."""
    spans, cur = [], None
    for t, (s, e) in zip(tag_ids, offsets):
        if s == e:
            continue
        lab = labels[t]
        if lab == "O":
            if cur:
                spans.append(tuple(cur)); cur = None
            continue
        p, typ = lab.split("-", 1)
        if p == "B" or cur is None or cur[2] != typ:
            if cur:
                spans.append(tuple(cur))
            cur = [s, e, typ]
        else:
            cur[1] = e
    if cur:
        spans.append(tuple(cur))
    return spans


def scored_spans(labels, e, r, tag_ids):
    """The predicted spans of example e that are scored: none overlapping an ignored gold span, and only
    types e's corpus annotates (a corpus that does not annotate a type cannot judge predictions of it,
    tasks.NER_SOURCE_TYPES)."""
    pred = decode_spans(labels, tag_ids, r["offsets"])
    pred = [p for p in pred if not any(p[0] < t and s < p[1] for s, t in e["ignore"])]
    if e.get("types"):
        pred = [p for p in pred if p[2] in e["types"]]
    return pred


def ner_metrics(labels, examples, enc, logits, tags=None):
    types = sorted({l.split("-", 1)[1] for l in labels if l != "O"})
    c = {t: [0, 0, 0] for t in types}  # tp, fp, fn
    for e, r, lg in zip(examples, enc, logits):
        pred = scored_spans(labels, e, r, tags(lg) if tags else lg.argmax(-1).tolist())
        gold = set(e["spans"])
        ps = set(pred)
        for p in ps:
            c[p[2]][0 if p in gold else 1] += 1
        for g in gold:
            if g not in ps:
                c[g[2]][2] += 1
    out = {}
    T = [0, 0, 0]
    for t, (tp, fp, fn) in c.items():
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        out[t] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1(p, r), 4), "support": tp + fn}
        T = [T[0] + tp, T[1] + fp, T[2] + fn]
    p = T[0] / (T[0] + T[1]) if T[0] + T[1] else 0.0
    r = T[0] / (T[0] + T[2]) if T[0] + T[2] else 0.0
    return {"n": len(examples), "micro_f1": round(f1(p, r), 4), "per_type": out}


def evaluate(model, data, encv):
    res = {}
    if data["kind"] == "tok":  # "all" once, then per source subsets of it
        ex_all, enc_all = data["val"]["all"], encv["all"]
        lg_all = predict(model, enc_all, "tok")
        for name in data["val"]:
            if name in data.get("val_separate", ()):  # a set of its own, not a subset of "all"
                ex, enc = data["val"][name], encv[name]
                res[name] = ner_metrics(data["labels"], ex, enc, predict(model, enc, "tok"),
                                        lambda lg: token_tags(model, lg))
                continue
            keep = [i for i, e in enumerate(ex_all) if name == "all" or e["source"] == name]
            res[name] = ner_metrics(data["labels"], [ex_all[i] for i in keep], [enc_all[i] for i in keep],
                                    [lg_all[i] for i in keep], lambda lg: token_tags(model, lg))
        return res
    for name, ex in data["val"].items():
        lg = predict(model, encv[name], data["kind"])
        ys = [e["y"] for e in ex]
        if data["kind"] == "seq":
            res[name] = seq_metrics(data["labels"], ys, lg)
        elif data["kind"] == "multi":
            t = data.get("config", {}).get("finbert_threshold", 0.5)
            res[name] = multi_metrics(data["labels"], ys, lg, t)
            if t != 0.5:
                res[f"{name} (threshold 0.5)"] = multi_metrics(data["labels"], ys, lg)
        else:
            res[name] = ner_metrics(data["labels"], ex, encv[name], lg)
    return res


def carve_calib(data):
    """--calib: 10 % of the training texts (salted hash of the text) become a calibration split; the model
    never trains on them, so the threshold chosen on them is not fitted to the validation split."""
    keep, cal = [], []
    for e in data["train"]:
        (cal if common.is_val(e["text"], "calib", 100) else keep).append(e)
    data["train"], data["calib"] = keep, cal
    data["notes"] += (f" Calibration (--calib): {len(cal)} of the training texts (10 % by salted text hash) are held "
                      f"out of training; the decision threshold is the one with the best micro-F1 on them "
                      f"(grid 0.10-0.70), and validation is scored at that threshold.")


def choose_threshold(model, data, enc_cal):
    """Threshold on the sigmoid with the best micro-F1 on the calibration split (ties: the one nearer 0.5)."""
    lg = predict(model, enc_cal, "multi")
    ys = [e["y"] for e in data["calib"]]
    grid = [round(0.05 * k, 2) for k in range(2, 15)]
    scores = {t: multi_metrics(data["labels"], ys, lg, t)["micro_f1"] for t in grid}
    best = max(grid, key=lambda t: (scores[t], -abs(t - 0.5)))
    return best, scores


def headline(task, res):
    first = next(iter(res))
    r = res[first]
    if task == "ner":
        return (f"company F1 {r['per_type']['company']['f1']:.3f} person F1 {r['per_type']['person']['f1']:.3f} "
                f"micro F1 {r['micro_f1']:.3f}")
    if "micro_f1" in r:
        return f"{first}: micro-F1 {r['micro_f1']:.3f} macro-F1 {r['macro_f1']:.3f}"
    return f"{first}: accuracy {r['accuracy']:.3f} macro-F1 {r['macro_f1']:.3f}"


# ------------------------------------------------------------------------------------------------

def build_model(data, task, encoder):
    from transformers import (AutoConfig, BertForSequenceClassification, BertForTokenClassification,
                              ElectraForSequenceClassification, ElectraForTokenClassification)
    labels = data["labels"]
    kw = dict(num_labels=len(labels), id2label={i: l for i, l in enumerate(labels)},
              label2id={l: i for i, l in enumerate(labels)})
    if data["kind"] == "multi":
        kw["problem_type"] = "multi_label_classification"
    elif data["kind"] == "seq":
        kw["problem_type"] = "single_label_classification"
    cfg = AutoConfig.from_pretrained(encoder, **kw)
    cfg.architectures = None
    electra = cfg.model_type == "electra"   # a factorised encoder (pretrain.py --embedding-size)
    if electra:
        cls = ElectraForTokenClassification if data["kind"] == "tok" else ElectraForSequenceClassification
    else:
        cls = BertForTokenClassification if data["kind"] == "tok" else BertForSequenceClassification
    model = cls.from_pretrained(encoder, config=cfg)
    if electra:
        import factorise
        factorise.fp32_projection(model)
    if data.get("crf"):
        model.crf = CRF(len(labels))
    return model


def warm_start(model, init_dir, labels):
    """Copy the weights of a finished task model into model. Encoder tensors must match in shape; head rows
    (classifier weight/bias, CRF transitions) are copied by label name, so a label set that grew (industry's
    no-single-industry class) keeps what was learnt for the old labels. Returns a short description."""
    from safetensors.torch import load_file
    sd = load_file(os.path.join(init_dir, "model.safetensors"))
    cfg = json.load(open(os.path.join(init_dir, "config.json"), encoding="utf-8"))
    old = [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
    pos = {l: i for i, l in enumerate(old)}
    pairs = [(i, pos[l]) for i, l in enumerate(labels) if l in pos]
    own = model.state_dict()
    head = ("classifier.", "crf.")
    n_enc, n_head = 0, 0
    with torch.no_grad():
        for k, v in sd.items():
            if k not in own:
                continue
            v = v.float()
            if not k.startswith(head):
                if own[k].shape != v.shape:
                    sys.exit(f"--init-model: {k} has shape {tuple(v.shape)}, this model {tuple(own[k].shape)}")
                own[k].copy_(v); n_enc += 1
                continue
            new_i = torch.tensor([i for i, _ in pairs], dtype=torch.long)
            old_i = torch.tensor([j for _, j in pairs], dtype=torch.long)
            if k in ("classifier.weight", "classifier.bias", "crf.start_transitions", "crf.end_transitions"):
                own[k][new_i] = v[old_i]
            elif k == "crf.transitions":
                own[k][new_i[:, None], new_i[None, :]] = v[old_i[:, None], old_i[None, :]]
            else:
                sys.exit(f"--init-model: unexpected head tensor {k}")
            n_head += 1
    missing = [k for k in own if k not in sd]
    if missing:
        sys.exit(f"--init-model: {init_dir} lacks {', '.join(missing[:5])}")
    new = [l for l in labels if l not in pos]
    return (f"{os.path.relpath(init_dir, common.REPO)}: {n_enc} encoder tensors, {n_head} head tensors for "
            f"{len(pairs)} shared labels" + (f"; new labels {', '.join(new)}" if new else ""))


def main():
    a = parse()
    task = a.task
    wd = os.path.join(common.WORK, a.work or f"ft-{task}")
    os.makedirs(wd, exist_ok=True)
    logf = os.path.join(wd, "train.log")
    ck_path = os.path.join(wd, "ckpt.pt")
    if os.path.exists(ck_path) and (a.restart or (a.fresh and not a.export_only and
                                                  torch.load(ck_path, map_location="cpu",
                                                             weights_only=False).get("done"))):
        os.remove(ck_path)
    nthr = common.threads()
    if a.dev and (task != "industry" or not a.out):
        sys.exit("--dev applies to industry and needs --out")
    ck = torch.load(ck_path, map_location="cpu", weights_only=False) if os.path.exists(ck_path) else None
    if ck:
        a.flash_weak = ck["args"].get("flash_weak")  # the data must match the checkpoint's
    if a.flash_weak:
        if task != "ner":
            sys.exit("--flash-weak applies to ner only")
        tasks.FLASH_WEAK_MAX = a.flash_weak
    data = tasks.industry(dev=True) if a.dev else tasks.BUILDERS[task]()
    if os.environ.get("FINBERT_SMOKE"):  # quick pipeline test on a few examples
        n = int(os.environ["FINBERT_SMOKE"])
        data["train"] = data["train"][:n]
        data["val"] = {k: v[:n] for k, v in data["val"].items()}
    for k in ("epochs", "lr", "max_len"):
        if getattr(a, k) is None:
            setattr(a, k, data[k])
    if ck:
        for k in ("epochs", "lr", "batch", "max_len", "seed"):
            setattr(a, k, ck["args"][k])
        a.aug_names = ck["args"].get("aug_names", 0.0)  # the data must match the checkpoint's
        a.pseudo = ck["args"].get("pseudo")
        a.pseudo_min_p = ck["args"].get("pseudo_min_p", 0.0)
        a.pseudo_min_examples = ck["args"].get("pseudo_min_examples", 0)
        a.name_copies = ck["args"].get("name_copies", 1)
        a.train_sources = ck["args"].get("train_sources")
        a.calib = ck["args"].get("calib", False)
        enc_info = ck["encoder_info"]
    else:
        st = os.path.join(a.encoder, "pretrain_state.json")
        enc_info = json.load(open(st)) if os.path.exists(st) else {}
        enc_info["path"] = os.path.relpath(a.encoder, common.REPO)
    if a.train_sources:
        known = {"ner": tasks.NER_SOURCE_TYPES, "sentiment": tasks.SENTIMENT_SOURCES}.get(a.task)
        if known is None:
            sys.exit("--train-sources applies to ner and sentiment only")
        keep = parse_sources(a.train_sources, known)
        data["train"] = subsample_sources(data["train"], keep)
        data["notes"] += (f" Learning-curve run (--train-sources {a.train_sources}): {len(data['train'])} training "
                          f"sentences, only those corpora, each cut to the given fraction by a salted text hash.")
    if a.aug_names > 0:
        if data["kind"] != "tok":
            sys.exit("--aug-names applies to ner only")
        extra, n_pool = augment_names(data["train"], a.aug_names, a.seed)
        data["train"] = data["train"] + extra
        data["notes"] += (f" Name substitution (--aug-names {a.aug_names}): {len(extra)} more training sentences, "
                          f"copies of sentences naming a person with every person name replaced by one of the "
                          f"{n_pool} distinct Chinese person names of the training sentences.")
    if a.name_copies > 1:
        if task != "industry":
            sys.exit("--name-copies applies to industry only")
        names = [e for e in data["train"] if e["text"] == e["company"]]
        data["train"] = data["train"] + names * (a.name_copies - 1)
        data["notes"] += (f" Each training-company name example appears {a.name_copies} times (--name-copies "
                          f"{a.name_copies}, chosen on a development split of the training companies: "
                          f"finetune.py --dev, tools/train/README.md).")
    if a.calib:
        if data["kind"] != "multi":
            sys.exit("--calib applies to multi-label tasks (type) only")
        carve_calib(data)
    if a.pseudo and task == "industry":
        extra = load_pseudo_industry(a.pseudo, data["labels"], a.pseudo_min_p, a.pseudo_min_examples)
        data["train"] = data["train"] + extra
        data["notes"] += (f" Pseudo-labels from the unlabelled corpus (--pseudo {os.path.basename(a.pseudo)}, "
                          f"--pseudo-min-p {a.pseudo_min_p}, --pseudo-min-examples {a.pseudo_min_examples}): "
                          f"{len(extra)} more training examples of {len({e['company'] for e in extra})} companies "
                          f"whose gazetteer industry is not used "
                          f"(the validation companies): each company's name and sentences of the pre-training "
                          f"corpus naming it, labelled with the industry a linear model trained on the training "
                          f"companies predicts from the corpus pieces naming it (tools/train/industry_knowledge.py, "
                          f"options in Reproduce; the validation texts are not in the corpus).")
        data["sources"].append("pseudo-labelled sentences of the round-2 corpus: cls-flash-news-2026, readhub-news, "
                               "cn-laws and the round-1 texts (industries predicted, not given; xinwenlianbo left "
                               "out, its licence covers pre-training only)")
        for src in ("readhub-news", "cn-laws"):
            data["sources"].append(f"{src} (corpus sentences naming a held-out company, pseudo-labelled)")
    elif a.pseudo:
        if data["kind"] != "tok":
            sys.exit("--pseudo applies to ner and industry only")
        extra = load_pseudo(a.pseudo)
        data["train"] = data["train"] + extra
        data["notes"] += (f" Self-training (--pseudo {os.path.basename(a.pseudo)}): {len(extra)} more training "
                          f"sentences from the unlabelled shared text, labelled by an ensemble of earlier NER runs "
                          f"(tools/train/pseudo.py; types {', '.join(extra[0]['types']) if extra else '-'}, the "
                          f"others left open).")
    common.seed_all(a.seed)
    tok = common.tokenizer()
    model = build_model(data, task, a.encoder)
    if a.init_model and not ck:
        enc_info["init_model"] = warm_start(model, a.init_model, data["labels"])
        common.log(logf, f"warm start from {enc_info['init_model']}")
    enc_tr = encode(tok, data, data["train"], a.max_len)
    encv = {n: encode(tok, data, ex, 512 if data["kind"] == "tok" else a.max_len) for n, ex in data["val"].items()
            if data["kind"] != "tok" or n == "all" or n in data.get("val_separate", ())}
    nb = math.ceil(len(enc_tr) / a.batch)
    total = nb * a.epochs
    warm = max(1, int(0.06 * total))
    nd = ["bias", "LayerNorm.weight"]
    enc_params = [(n, p) for n, p in model.named_parameters() if not n.startswith("crf.")]
    groups = [{"params": [p for n, p in enc_params if not any(x in n for x in nd)], "weight_decay": 0.01},
              {"params": [p for n, p in enc_params if any(x in n for x in nd)], "weight_decay": 0.0}]
    if data.get("crf"):
        # transitions start near 0 and must reach large negative values (O -> I-x) within the run
        groups.append({"params": list(model.crf.parameters()), "weight_decay": 0.0, "lr": a.lr * CRF_LR_FACTOR})
    opt = torch.optim.AdamW(groups, lr=a.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    step, ep, pos, done = 0, 0, 0, False
    if ck:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        torch.set_rng_state(ck["torch_rng"])
        step, ep, pos, done = ck["step"], ck["epoch"], ck["pos"], ck.get("done", False)
        common.log(logf, f"resumed {task} at step {step}/{total} (epoch {ep}, batch {pos}), threads={nthr}, bf16={a.bf16}")
    else:
        common.log(logf, f"new {task} run: train {len(enc_tr)} examples, {nb} batches/epoch x {a.epochs} epochs, "
                         f"lr {a.lr}, max_len {a.max_len}, encoder {enc_info}, threads={nthr}, bf16={a.bf16}")
    stop = common.StopFlag()

    def save(done_flag):
        common.atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                                  "torch_rng": torch.get_rng_state(), "step": step, "epoch": ep, "pos": pos,
                                  "done": done_flag, "args": vars(a), "encoder_info": enc_info}, ck_path)

    model.train()
    t_last, t0, ntok, run = time.time(), time.time(), 0, float("nan")
    if not done and not a.export_only:
        while ep < a.epochs and not stop.stop:
            bl = batches(enc_tr, a.batch, a.seed, ep)
            while pos < len(bl) and not stop.stop:
                ids, att, y = collate(enc_tr, bl[pos], data["kind"])
                if data.get("crf"):
                    loss = crf_loss(model, ids, att, allowed_tags(enc_tr, bl[pos], ids.shape[1], data["labels"]),
                                    a.bf16)
                else:
                    loss = task_loss(model, ids, att, y, data["kind"], a.bf16)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
                step += 1; pos += 1; ntok += int(att.sum())
                lv = loss.item()
                run = lv if math.isnan(run) else 0.98 * run + 0.02 * lv
                if step % 50 == 0:
                    common.log(logf, f"step {step}/{total} ep {ep} loss {run:.4f} lr {sched.get_last_lr()[0]:.2e} "
                                     f"{ntok / (time.time() - t0):.0f} tok/s")
                if time.time() - t_last > a.ckpt_minutes * 60:
                    save(False); t_last = time.time()
                    common.log(logf, f"checkpoint step {step}")
            if pos >= len(bl):
                ep, pos = ep + 1, 0
                res = evaluate(model, data, encv)
                common.log(logf, f"epoch {ep} done: {headline(task, res)}")
                save(False); t_last = time.time()
        if stop.stop:
            save(False)
            common.log(logf, f"stopped at step {step}; run the same command to resume")
            return
        save(True)
    calib = None
    if a.calib:
        t, scores = choose_threshold(model, data, encode(tok, data, data["calib"], a.max_len))
        data.setdefault("config", {})["finbert_threshold"] = t
        calib = {"n": len(data["calib"]), "threshold": t, "micro_f1_by_threshold": scores}
        common.log(logf, f"calibration split ({len(data['calib'])} texts): threshold {t}, micro-F1 {scores[t]:.4f} "
                         f"(at 0.5: {scores[0.5]:.4f})")
    res = evaluate(model, data, encv)
    common.log(logf, f"final: {headline(task, res)}")
    out = a.out or os.path.join(common.MODELS, f"finbert-{task}")
    info = {"task": task, "steps": step, "epochs": a.epochs, "lr": a.lr, "batch": a.batch, "max_len": a.max_len,
            "seed": a.seed, "train_examples": len(enc_tr), "encoder": enc_info, "threads": nthr, "bf16": a.bf16,
            "crf": bool(data.get("crf")), "aug_names": a.aug_names,
            "pseudo": os.path.basename(a.pseudo) if a.pseudo else None, "pseudo_min_p": a.pseudo_min_p,
            "pseudo_min_examples": a.pseudo_min_examples, "name_copies": a.name_copies, "flash_weak": a.flash_weak,
            "pseudo_cmd": (open(a.pseudo + ".cmd", encoding="utf-8").read().strip()
                           if a.pseudo and os.path.exists(a.pseudo + ".cmd") else None),
            "calibration": calib, "metrics": res}
    import export
    info["export"] = export.export(model, data, out, encv, info)
    with open(os.path.join(wd, "metrics.json"), "w") as f:
        json.dump(info, f, ensure_ascii=False, indent=1)
    import cards
    cards.write_card(out, task, data, info)
    common.log(logf, f"exported {out}: {json.dumps(info['export'])}")


if __name__ == "__main__":
    main()

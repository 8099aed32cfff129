#!/usr/bin/env python3
"""Is a held-out company's industry in the unlabelled pre-training text? A measurement for issue 20's industry
floor (accuracy on texts about companies the model was not trained on).

For every company of the industry gazetteer (tasks.industry_companies), the pieces of the round-2 pre-training
corpus (work/corpus2, built by prepare.py --round2; validation texts are already excluded from it) that name
it are collected, up to --max-contexts per company in a fixed hashed order. The company's name is replaced by
a placeholder in them, so that only what the text says about the company counts (the name alone is measured
elsewhere: 0.411). A linear model on character 1-3-grams (TF-IDF, logistic regression) learns the industry from
the training companies' contexts and predicts the held-out companies' (the same 80/20 split by stock code as
tasks.industry). Reported: company-level accuracy, and accuracy over the held-out validation texts when each
text gets its company's prediction. It estimates what a model that had absorbed the corpus's facts about
each company (a larger encoder, or retrieval) could reach; it is not a model finbert can ship.

--pseudo-out FILE brings those facts into a model that can be shipped: it writes the held-out companies'
names and up to --pseudo-pieces corpus sentences naming each, labelled with the predicted industry (never the
gazetteer's), for finetune.py industry --pseudo FILE (semi-supervised: the model learns the unlabelled
companies' industries from the corpus). --dev does all of it on finetune.py --dev's development split, with
the development texts also left out of the corpus pieces, so that options are chosen without the reported split.

    python3 tools/train/industry_knowledge.py [--keep-name] [--max-contexts N] [--control] [--dev]
        [--skip-sources NAME,...] [--pseudo-out FILE [--pseudo-pieces N]]
"""
import argparse
import collections
import hashlib
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import tasks  # noqa: E402


def corpus_texts(corpus_dir, skip_sources=()):
    """The texts of a prepare.py corpus, decoded from token ids (CJK is one token per character; '##' pieces
    are joined, [UNK] kept as a marker), without those of skip_sources (meta.json counts the texts per source
    in corpus order)."""
    z = np.load(os.path.join(corpus_dir, "corpus.npz"))
    vocab = [line.rstrip("\n") for line in open(common.VOCAB, encoding="utf-8")]
    tok = [v[2:] if v.startswith("##") else v for v in vocab]
    ids, off = z["ids"], z["offsets"]
    counts = json.load(open(os.path.join(corpus_dir, "meta.json"), encoding="utf-8"))["sources"]
    if sum(counts.values()) != len(off) - 1 or not set(skip_sources) <= set(counts):
        sys.exit(f"{corpus_dir}: meta.json sources do not match the corpus, or unknown source in {skip_sources}")
    skip, start = [], 0
    for name, n in counts.items():
        if name in skip_sources:
            skip.append((start, start + n))
        start += n
    for i in range(len(off) - 1):
        if not any(lo <= i < hi for lo, hi in skip):
            yield "".join(tok[j] for j in ids[off[i]:off[i + 1]])


def mention_window(t, n, width=150):
    """The sentence of t that names n (the first mention), cut to `width` characters around the name: the
    training text of a pseudo-labelled example (finbert_industry is applied to headlines and short bodies)."""
    i = t.find(n)
    lo = max(t.rfind(c, 0, i) for c in "。！？!?；;") + 1
    his = [j for j in (t.find(c, i + len(n)) for c in "。！？!?；;") if j >= 0]
    hi = min(his) + 1 if his else len(t)
    if hi - lo > width:
        lo = max(lo, min(i - (width - len(n)) // 2, hi - width))
        hi = lo + width
    return t[lo:hi].strip()


def company_contexts(corpus_dir, comp, leaks=None, skip_sources=()):
    """{company name: [the corpus pieces naming it]} over the gazetteer's names, without the pieces for which
    leaks(piece) is true and those of skip_sources; and the number of pieces read."""
    names = sorted(comp, key=len, reverse=True)
    name_re = re.compile("|".join(re.escape(n) for n in names))
    ctx = collections.defaultdict(list)
    n_texts = 0
    for t in corpus_texts(corpus_dir, skip_sources):
        n_texts += 1
        if leaks and leaks(t):
            continue
        for n in {m.group(0) for m in name_re.finditer(t)}:
            ctx[n].append(t)
    for n, ts in ctx.items():
        ctx[n] = sorted(set(ts), key=lambda t: hashlib.md5((n + "\x00" + t).encode("utf-8")).hexdigest())
    return ctx, n_texts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.path.join(common.WORK, "corpus2"))
    ap.add_argument("--max-contexts", type=int, default=40)
    ap.add_argument("--keep-name", action="store_true", help="leave the company name in its contexts")
    ap.add_argument("--control", action="store_true",
                    help="negative control: each held-out company gets another held-out company's contexts "
                         "(seeded permutation); the accuracy must fall to about the majority-class share")
    ap.add_argument("--dev", action="store_true",
                    help="the development split of finetune.py --dev: the held-out companies are left out "
                         "altogether and 20 %% of the others (tasks.industry(dev=True)) play their part")
    ap.add_argument("--pseudo-out", metavar="FILE",
                    help="write pseudo-labelled industry examples for finetune.py industry --pseudo: each "
                         "held-out company's name and up to --pseudo-pieces corpus sentences naming it, "
                         "labelled with the industry predicted from its contexts, with its probability")
    ap.add_argument("--pseudo-pieces", type=int, default=8)
    ap.add_argument("--skip-sources", default="", metavar="NAME,...",
                    help="leave these corpus sources out (meta.json names); --pseudo-out needs xinwenlianbo among "
                         "them: its transcripts are licensed for pre-training experiments only (its SOURCE.md)")
    a = ap.parse_args()
    skip_sources = tuple(x for x in a.skip_sources.split(",") if x)
    if a.pseudo_out and "xinwenlianbo" not in skip_sources:
        sys.exit("--pseudo-out writes training sentences: add --skip-sources xinwenlianbo (pre-training use only)")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    comp, _ = tasks.industry_companies()
    held = {n: common.is_val(c[0], "industry", 200) for n, c in comp.items()}
    if a.dev:
        comp = {n: c for n, c in comp.items() if not held[n]}
        held = {n: common.is_val(c[0], "industry-dev", 200) for n, c in comp.items()}
    ind = tasks.industry(dev=a.dev)
    vname = "dev_companies" if a.dev else "heldout_companies"
    leaks = None
    if a.dev:
        # corpus2 leaves out the reported split's validation texts, not the development split's: leave out the
        # pieces that equal, contain or are part of a development text (compared without case and spaces, as
        # the corpus is stored as lower-cased token ids)
        norm = lambda t: re.sub(r"\s+", "", t.lower())  # noqa: E731
        ex = common.Excluder({norm(e["text"]) for k in (vname, vname + "_flash") for e in ind["val"][k]})
        leaks = lambda t: ex.leaks(norm(t.replace("[UNK]", "?")))  # noqa: E731
    ctx, n_texts = company_contexts(a.corpus, comp, leaks, skip_sources)
    docs = {}
    for n, ts in ctx.items():
        doc = " ".join(ts[:a.max_contexts])
        docs[n] = doc if a.keep_name else doc.replace(n, "Ｘ")
    tr = [n for n in docs if not held[n]]
    va = [n for n in docs if held[n]]
    if a.control:
        perm = np.random.default_rng(0).permutation(len(va))
        docs.update({n: docs[va[j]] for n, j in zip(va, perm)})
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, max_features=300000)
    xtr = vec.fit_transform([docs[n] for n in tr])
    clf = LogisticRegression(C=10.0, max_iter=2000)
    clf.fit(xtr, [comp[n][1] for n in tr])
    proba = clf.predict_proba(vec.transform([docs[n] for n in va])) if va else np.zeros((0, 1))
    pred = {n: clf.classes_[k] for n, k in zip(va, proba.argmax(1))}
    conf = {n: float(p) for n, p in zip(va, proba.max(1))}
    n_held = sum(held.values())
    acc_c = np.mean([pred[n] == comp[n][1] for n in va]) if va else float("nan")
    # the held-out validation texts of the industry task, each given its company's prediction
    vt, labels = ind["val"][vname], ind["labels"]
    cov = [e for e in vt if e["company"] in pred]
    acc_t = np.mean([pred[e["company"]] == labels[e["y"]] for e in cov]) if cov else float("nan")
    print(f"corpus: {n_texts} texts; companies named in it: {len(docs)} of {len(comp)} "
          f"(training {len(tr)}, held-out {len(va)} of {n_held}); contexts per company <= {a.max_contexts}; "
          f"name {'kept' if a.keep_name else 'masked'}" + ("; DEVELOPMENT split" if a.dev else "")
          + (f"; without {', '.join(skip_sources)}" if skip_sources else ""))
    major = collections.Counter(comp[n][1] for n in tr).most_common(1)[0]
    print(f"held-out companies named in the corpus: accuracy {acc_c:.3f} ({len(va)} companies; the most "
          f"frequent training industry, {major[0]}, is {np.mean([comp[n][1] == major[0] for n in va]):.3f} of them)"
          + ("; CONTROL: contexts permuted among held-out companies" if a.control else ""))
    print(f"held-out validation texts whose company is named in the corpus: {len(cov)} of {len(vt)}; "
          f"accuracy with the company's prediction {acc_t:.3f}; counting the others as wrong "
          f"{acc_t * len(cov) / max(len(vt), 1):.3f}")
    if a.pseudo_out:
        write_pseudo(a.pseudo_out, va, ctx, pred, conf, a.pseudo_pieces)
        # the command that wrote it, for the model card's Reproduce section
        with open(a.pseudo_out + ".cmd", "w", encoding="utf-8") as f:
            argv = [os.path.relpath(os.path.abspath(x), common.REPO) if x == a.pseudo_out else x
                    for x in sys.argv[1:]]
            f.write(" ".join(["python", "tools/train/industry_knowledge.py"] + argv) + "\n")


def write_pseudo(path, companies, ctx, pred, conf, pieces):
    """One JSON line per example: {"text", "label", "p", "company"}; the label is never the true one (the
    held-out companies' labels are not read here except to score the prediction above)."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for c in sorted(companies):
            texts = [c] + [mention_window(t, c) for t in ctx[c][:pieces]]
            for t in dict.fromkeys(texts):
                f.write(json.dumps({"text": t, "label": pred[c], "p": round(conf[c], 4), "company": c},
                                   ensure_ascii=False) + "\n")
                n += 1
    print(f"pseudo-labelled examples: {n} ({len(companies)} companies, name + up to {pieces} sentences each) "
          f"-> {path}")


if __name__ == "__main__":
    main()

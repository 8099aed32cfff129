"""Reference figures for the sentence-level starter tasks: a linear model on character n-grams.

    python3 tools/train/baselines.py [sentiment industry type] [--out FILE]

TF-IDF of character 1-3-grams (sublinear tf, min_df 2) + logistic regression (C = 1, one-vs-rest for the
multi-label news type), trained on each task's training split and scored on the same headline validation
split as the model cards (tasks.py). No hyper-parameter is chosen on the validation split. The figures say
how much of a task a model that only counts character n-grams gets, so the BERT figures can be read
against them (for industry: how far the weak labels themselves carry).

`industry-names`: the same model trained on the training companies' short names alone and applied to the
name of the company each validation text is about (the text itself unused): how much of the industry task
a company's name gives away. `industry-masked`: the text model with the company's name replaced by a
placeholder in every text (training and validation): how much the rest of the text says. `industry-text-name`:
masked text and company name as two separate feature blocks.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402


def char_ngrams(min_df=2):
    """The character 1-3-gram TF-IDF features of every baseline here (finfe_analysis.py uses them too)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=min_df, sublinear_tf=True)


def run(task):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    t0 = time.time()
    d = tasks.BUILDERS[task]()
    name, val = next(iter(d["val"].items()))
    vec = char_ngrams()
    X = vec.fit_transform([e["text"] for e in d["train"]])
    Xv = vec.transform([e["text"] for e in val])
    if d["kind"] == "multi":
        L = len(d["labels"])
        Y = np.zeros((len(d["train"]), L), dtype=int)
        for i, e in enumerate(d["train"]):
            Y[i, e["y"]] = 1
        keep = Y.sum(0) > 0
        clf = OneVsRestClassifier(LogisticRegression(C=1.0, max_iter=2000)).fit(X, Y[:, keep])
        P = np.zeros((len(val), L), dtype=int)
        P[:, keep] = clf.predict(Xv)
        G = np.zeros_like(P)
        for i, e in enumerate(val):
            G[i, e["y"]] = 1
        tp, fp, fn = int((P & G).sum()), int((P & ~G.astype(bool)).sum()), int((~P.astype(bool) & G).sum())
        p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
        res = {"micro_f1": round(2 * p * r / (p + r) if p + r else 0.0, 4)}
    else:
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(X, [e["y"] for e in d["train"]])
        res = {"accuracy": round(float((clf.predict(Xv) == np.array([e["y"] for e in val])).mean()), 4)}
    res.update({"validation": name, "n": len(val), "train": len(d["train"]), "seconds": round(time.time() - t0, 1)})
    return res


def run_industry_names():
    from sklearn.linear_model import LogisticRegression
    t0 = time.time()
    d = tasks.industry()
    name, val = next(iter(d["val"].items()))
    comp, _ = tasks.industry_companies()
    idx = {l: i for i, l in enumerate(d["labels"])}
    held = {e["company"] for e in val}
    # gazetteer names only: round 2 adds texts without a company ("", the 无单一行业 class) or keyed by stock code
    train = sorted({e["company"] for e in d["train"] if e["company"] in comp} - held)
    vec = char_ngrams(min_df=1)
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(vec.fit_transform(train), [idx[comp[n][1]] for n in train])
    pred = clf.predict(vec.transform([e["company"] for e in val]))
    acc = float((pred == np.array([e["y"] for e in val])).mean())
    return {"accuracy": round(acc, 4), "validation": name, "n": len(val), "train_companies": len(train),
            "seconds": round(time.time() - t0, 1)}


def run_industry_split(name_block, text_block):
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    t0 = time.time()
    d = tasks.industry()
    name, val = next(iter(d["val"].items()))
    train = [e for e in d["train"] if e["text"] != e["company"] or name_block]

    def masked(e):
        return e["text"].replace(e["company"], "□") if e["company"] else e["text"]   # "": no company named

    blocks, vblocks = [], []
    if text_block:
        vt = char_ngrams()
        blocks.append(vt.fit_transform([masked(e) for e in train]))
        vblocks.append(vt.transform([masked(e) for e in val]))
    if name_block:
        vn = char_ngrams(min_df=1)
        blocks.append(vn.fit_transform([e["company"] for e in train]))
        vblocks.append(vn.transform([e["company"] for e in val]))
    clf = LogisticRegression(C=1.0, max_iter=3000).fit(sp.hstack(blocks).tocsr(), [e["y"] for e in train])
    acc = float((clf.predict(sp.hstack(vblocks).tocsr()) == np.array([e["y"] for e in val])).mean())
    return {"accuracy": round(acc, 4), "validation": name, "n": len(val), "train": len(train),
            "seconds": round(time.time() - t0, 1)}


EXTRA = {"industry-names": run_industry_names,
         "industry-masked": lambda: run_industry_split(False, True),
         "industry-text-name": lambda: run_industry_split(True, True)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tasks", nargs="*", default=["sentiment", "type", "industry", *EXTRA])
    ap.add_argument("--out")
    a = ap.parse_args()
    out = {t: EXTRA[t]() if t in EXTRA else run(t) for t in a.tasks}
    print(json.dumps(out, ensure_ascii=False, indent=1))
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()

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

    python3 tools/train/industry_knowledge.py
"""
import argparse
import collections
import hashlib
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import tasks  # noqa: E402


def corpus_texts(corpus_dir):
    """The texts of a prepare.py corpus, decoded from token ids (CJK is one token per character; '##' pieces
    are joined, [UNK] kept as a marker)."""
    z = np.load(os.path.join(corpus_dir, "corpus.npz"))
    vocab = [line.rstrip("\n") for line in open(common.VOCAB, encoding="utf-8")]
    tok = [v[2:] if v.startswith("##") else v for v in vocab]
    ids, off = z["ids"], z["offsets"]
    for i in range(len(off) - 1):
        yield "".join(tok[j] for j in ids[off[i]:off[i + 1]])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.path.join(common.WORK, "corpus2"))
    ap.add_argument("--max-contexts", type=int, default=40)
    ap.add_argument("--keep-name", action="store_true", help="leave the company name in its contexts")
    ap.add_argument("--control", action="store_true",
                    help="negative control: each held-out company gets another held-out company's contexts "
                         "(seeded permutation); the accuracy must fall to about the majority-class share")
    a = ap.parse_args()
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    comp, _ = tasks.industry_companies()
    held = {n: common.is_val(c[0], "industry", 200) for n, c in comp.items()}
    names = sorted(comp, key=len, reverse=True)
    name_re = re.compile("|".join(re.escape(n) for n in names))
    ctx = collections.defaultdict(list)
    n_texts = 0
    for t in corpus_texts(a.corpus):
        n_texts += 1
        found = {m.group(0) for m in name_re.finditer(t)}
        for n in found:
            ctx[n].append(t)
    docs = {}
    for n, ts in ctx.items():
        ts = sorted(set(ts), key=lambda t: hashlib.md5((n + "\x00" + t).encode("utf-8")).hexdigest())
        ts = ts[:a.max_contexts]
        doc = " ".join(ts)
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
    pred = dict(zip(va, clf.predict(vec.transform([docs[n] for n in va]))))
    n_held = sum(held.values())
    acc_c = np.mean([pred[n] == comp[n][1] for n in va]) if va else float("nan")
    # the held-out validation texts of the industry task, each given its company's prediction
    ind = tasks.industry()
    vt, labels = ind["val"]["heldout_companies"], ind["labels"]
    cov = [e for e in vt if e["company"] in pred]
    acc_t = np.mean([pred[e["company"]] == labels[e["y"]] for e in cov]) if cov else float("nan")
    print(f"corpus: {n_texts} texts; companies named in it: {len(docs)} of {len(comp)} "
          f"(training {len(tr)}, held-out {len(va)} of {n_held}); contexts per company <= {a.max_contexts}; "
          f"name {'kept' if a.keep_name else 'masked'}")
    major = collections.Counter(comp[n][1] for n in tr).most_common(1)[0]
    print(f"held-out companies named in the corpus: accuracy {acc_c:.3f} ({len(va)} companies; the most "
          f"frequent training industry, {major[0]}, is {np.mean([comp[n][1] == major[0] for n in va]):.3f} of them)"
          + ("; CONTROL: contexts permuted among held-out companies" if a.control else ""))
    print(f"held-out validation texts whose company is named in the corpus: {len(cov)} of {len(vt)}; "
          f"accuracy with the company's prediction {acc_t:.3f}; counting the others as wrong "
          f"{acc_t * len(cov) / max(len(vt), 1):.3f}")


if __name__ == "__main__":
    main()

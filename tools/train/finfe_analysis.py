"""What holds FinFE accuracy near 0.72 (issue 20's sentiment floor is 0.75): label consistency, where a model
misses, a linear learning curve and a linear + model ensemble.

    python3 tools/train/finfe_analysis.py [MODEL_DIR ...]      # default: models/finbert-sentiment

1. Label consistency: FinFE repeats texts (train and validation files). For every pair of rows with the same
   text, do the labels agree? With three classes and errors spread evenly over the two wrong ones, a pairwise
   agreement a means each row carries the text's most common label with probability q, q^2 + (1 - q)^2 / 2 = a:
   about the accuracy a model that knew that label would get on one row.
2. Per validation group (finfe_val_dedup: one row per text, majority label): texts seen once, texts whose
   repeated rows all agree, texts with a majority over conflicting rows. Accuracy of each model and of a
   linear model (TF-IDF character 1-3-grams + logistic regression, as baselines.py) trained on FinFE alone;
   each model's misses among the texts whose rows all agree, by confusion, and the first --examples of them.
3. Linear learning curve on FinFE alone: 12.5 / 25 / 50 / 100 % of the training texts, nested samples by the
   same salted hash as finetune.py --train-sources (the BERT curve is finetune.py sentiment
   --train-sources finfe:F, README, Status).
4. Ensemble: each model's softmax plus the linear model's probabilities (trained on the same sentiment
   training set as the models), argmax.
Nothing is tuned on the validation split. About 1 minute per model on one thread.
"""
import argparse
import collections
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baselines  # noqa: E402
import common  # noqa: E402
import tasks  # noqa: E402


def linear(train):
    """baselines.py's sentiment model (character 1-3-grams, logistic regression C = 1) on (text, label) rows."""
    from sklearn.linear_model import LogisticRegression
    vec = baselines.char_ngrams()
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(vec.fit_transform([t for t, _ in train]),
                                                       [y for _, y in train])
    return lambda texts: clf.predict_proba(vec.transform(texts))


def label_agreement(rows):
    by = collections.defaultdict(list)
    for t, y in rows:
        by[t].append(y)
    pairs = agree = 0
    for ys in by.values():
        for i in range(len(ys)):
            for j in range(i + 1, len(ys)):
                pairs += 1
                agree += ys[i] == ys[j]
    a = agree / pairs
    q = (1 + (1 + 6 * (a - 0.5)) ** 0.5) / 3          # root of 1.5 q^2 - q + 0.5 - a = 0
    return {"repeated_texts": sum(len(v) > 1 for v in by.values()), "pairs": pairs,
            "pairwise_agreement": round(a, 4), "implied_label_accuracy": round(q, 4)}


def model_probs(model_dir, texts):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).float().eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            b = tok(texts[i:i + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
            out.append(torch.softmax(model(**b).logits.float(), -1).numpy())
    return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=[os.path.join(common.REPO, "models", "finbert-sentiment")])
    ap.add_argument("--examples", type=int, default=20, help="misses listed per model (validation order)")
    a = ap.parse_args()
    common.threads()
    fe_tr, fe_va = common.sentiment_splits()["finfe"]
    tr_d, _ = tasks._majority(fe_tr)
    va_d, _ = tasks._majority(fe_va)
    texts, y = [t for t, _ in va_d], np.array([l for _, l in va_d])
    rows_of = collections.defaultdict(list)
    for t, l in fe_va:
        rows_of[t].append(l)

    def group(t):
        ys = rows_of[t]
        return "seen once" if len(ys) == 1 else "repeated, all rows agree" if len(set(ys)) == 1 else "majority"

    groups = [group(t) for t in texts]
    res = {"label_consistency": {"train": label_agreement(fe_tr), "validation": label_agreement(fe_va),
                                 "both": label_agreement(fe_tr + fe_va)},
           "validation": "finfe_val_dedup", "n": len(texts)}
    curve = []
    for f in (0.125, 0.25, 0.5, 1.0):
        sub = [(t, l) for t, l in tr_d if common.is_val(t, "learning-curve", int(round(f * 1000)))]
        acc = float((linear(sub)(texts).argmax(1) == y).mean())
        curve.append({"fraction": f, "train_texts": len(sub), "accuracy": round(acc, 4)})
    res["linear_learning_curve_finfe_only"] = curve
    p_fe = linear(tr_d)(texts)
    p_all = linear([(e["text"], e["y"]) for e in tasks.sentiment()["train"]])(texts)
    res["linear_sentiment_train"] = round(float((p_all.argmax(1) == y).mean()), 4)

    def by_group(pred):
        out = {}
        for g in sorted(set(groups)):
            m = np.array([x == g for x in groups])
            out[g] = {"n": int(m.sum()), "accuracy": round(float((pred[m] == y[m]).mean()), 4),
                      "mean_chars": round(float(np.mean([len(t) for t, k in zip(texts, m) if k])), 1)}
        return out

    res["linear_finfe_only_by_group"] = by_group(p_fe.argmax(1))
    res["models"] = []
    sure = [i for i, g in enumerate(groups) if g == "repeated, all rows agree"]
    L = tasks.SENT_LABELS
    for d in a.models:
        p = model_probs(d, texts)
        pred = p.argmax(1)
        miss = [i for i in sure if pred[i] != y[i]]
        confusions = collections.Counter(f"{L[y[i]]} read as {L[pred[i]]}" for i in miss)
        res["models"].append({"model": os.path.relpath(d, common.REPO),
                              "accuracy": round(float((pred == y).mean()), 4),
                              "by_group": by_group(pred),
                              "misses_where_rows_agree": dict(confusions.most_common()),
                              "first_misses_where_rows_agree": [f"{texts[i]} ({L[y[i]]} read as {L[pred[i]]})"
                                                                for i in miss[:a.examples]],
                              "ensemble_with_linear": round(float(((p + p_all).argmax(1) == y).mean()), 4),
                              "agreement_with_linear": round(float((pred == p_fe.argmax(1)).mean()), 4)})
    print(json.dumps(res, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

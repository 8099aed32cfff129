#!/usr/bin/env python3
"""finbert's outputs for the shipped models vs Hugging Face transformers, and int8 vs fp32.

For every model in models/ (finbert-sentiment, -type, -industry, -ner) takes the first N texts of
its validation split (the split the model cards report; tools/train/tasks.py) and compares

  parity   finbert-cli (fp32 arithmetic on the fp16 weights) vs transformers (the same weights
           in fp32): predicted labels per text (argmax; multi-label: the set of logits > 0; NER:
           every token's label, the Viterbi path when the model has a CRF head) and the largest
           |logit difference|;
  int8     finbert-cli --precision int8 vs fp32: label agreement, and the task metric of both
           against the gold labels (accuracy / micro-F1 / entity-level F1), plus entity F1 of the
           int8 entities measured against the fp32 ones.

    make && python3 tools/check_models.py [--n 1000] [--json out.json]

Needs transformers + torch (tools/train/requirements.txt) and ../shared/data (or FINBERT_DATA).
Exit status 1 when a parity check fails (labels must agree on 100 % of the texts, logits within
1e-3).
"""
import argparse
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "train"))
import tasks  # noqa: E402

TASK_OF = {"finbert-sentiment": "sentiment", "finbert-type": "type", "finbert-industry": "industry",
           "finbert-ner": "ner", "finbert-base": "sentiment"}  # the encoder: embeddings of sentiment texts
LOGIT_TOL = 1e-3


def validation(task, n):
    data = tasks.BUILDERS[task]()
    # NER: "all" is the union of the per-corpus lists; the others: every list in order
    lists = [data["val"]["all"]] if task == "ner" else list(data["val"].values())
    seen, out = set(), []
    for rows in lists:
        for r in rows:
            # finbert-cli reads one text per line
            if r["text"] not in seen and r["text"].strip() and "\n" not in r["text"]:
                seen.add(r["text"])
                out.append(r)
    return data, out[:n]


def cli(model, cmd, texts, precision, extra=()):
    p = subprocess.run([os.path.join(ROOT, "build", "finbert-cli"), cmd, model, "--precision", precision,
                        *extra], input="".join(t + "\n" for t in texts), capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"finbert-cli {cmd} {model} failed: {p.stderr}")
    return [json.loads(line) for line in p.stdout.splitlines()]


def labels_of(logits, cut=None):
    """The predicted label: argmax, or for a multi-label model (cut = the threshold as a logit) every label
    whose logit is above cut."""
    if cut is not None:
        return tuple(i for i, v in enumerate(logits) if v > cut)
    return max(range(len(logits)), key=lambda i: logits[i])


def prf(pred, gold):
    tp = len(pred & gold)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(gold) if gold else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def ents_set(i, ents, ignore=(), types=None):
    """Entities of text i as a set; those overlapping an ignored gold span, or of a type the text's corpus
    does not annotate (tasks.NER_SOURCE_TYPES), are not scored, as in the model cards."""
    out = set()
    for e in ents:
        if any(e["start"] < b and a < e["end"] for a, b in ignore):
            continue
        if types and e["label"] not in types:
            continue
        out.add((i, e["start"], e["end"], e["label"]))
    return out


def crf_of(model_dir, torch):
    """(start, transitions [from, to], end) as float lists when the model has a CRF head, else None."""
    from safetensors import safe_open
    with safe_open(os.path.join(model_dir, "model.safetensors"), "pt") as f:
        if "crf.transitions" not in f.keys():
            return None
        g = lambda k: f.get_tensor(k).float().tolist()  # noqa: E731
        return g("crf.start_transitions"), g("crf.transitions"), g("crf.end_transitions")


def viterbi(em, start, trans, end):
    """Best tag path (pytorch-crf semantics) over emissions em [n][L]."""
    L = len(start)
    score = [start[j] + em[0][j] for j in range(L)]
    back = []
    for t in range(1, len(em)):
        nxt, bk = [], []
        for j in range(L):
            i = max(range(L), key=lambda i: score[i] + trans[i][j])
            bk.append(i)
            nxt.append(score[i] + trans[i][j] + em[t][j])
        score = nxt
        back.append(bk)
    best = max(range(L), key=lambda j: score[j] + end[j])
    path = [best]
    for bk in reversed(back):
        best = bk[best]
        path.append(best)
    return path[::-1]


def check(model_dir, n, torch, transformers):
    name = os.path.basename(model_dir)
    task = TASK_OF[name]
    data, rows = validation(task, n)
    texts = [r["text"] for r in rows]
    tok = transformers.BertTokenizerFast.from_pretrained(model_dir)
    res = {"model": name, "texts": len(texts)}
    if name == "finbert-base":
        # embeddings (mean pooling) vs transformers' BertModel, and int8 vs fp32
        m = transformers.BertModel.from_pretrained(model_dir, add_pooling_layer=False).float().eval()
        fp = cli(model_dir, "embed", texts, "fp32", ["--pooling", "mean"])
        q8 = cli(model_dir, "embed", texts, "int8", ["--pooling", "mean"])
        worst, cos_ref, cos_q8 = 0.0, 1.0, 1.0
        with torch.no_grad():
            for i in range(0, len(texts), 32):
                b = tok(texts[i:i + 32], return_tensors="pt", padding=True, truncation=True, max_length=512)
                h = m(**b).last_hidden_state
                msk = b["attention_mask"].unsqueeze(-1).float()
                ref = (h * msk).sum(1) / msk.sum(1)
                mine = torch.tensor([f["embedding"] for f in fp[i:i + 32]])
                q = torch.tensor([f["embedding"] for f in q8[i:i + 32]])
                worst = max(worst, float((ref - mine).abs().max()))
                cos_ref = min(cos_ref, float(torch.nn.functional.cosine_similarity(ref, mine).min()))
                cos_q8 = min(cos_q8, float(torch.nn.functional.cosine_similarity(q, mine).min()))
        res.update(parity_same_labels=1.0 if cos_ref > 0.9999 else 0.0, parity_max_logit_diff=worst,
                   parity_min_cosine=cos_ref, int8_vs_fp32_min_cosine=cos_q8)
    elif task == "ner":
        m = transformers.AutoModelForTokenClassification.from_pretrained(model_dir).float().eval()
        crf = crf_of(model_dir, torch)
        res["crf"] = crf is not None

        def tags(rows):
            # a CRF head: the labels are the Viterbi path over the emissions, as finbert decodes them
            return viterbi(rows, *crf) if crf is not None and rows else [labels_of(r) for r in rows]
        fp = cli(model_dir, "entities", texts, "fp32", ["--logits"])
        q8 = cli(model_dir, "entities", texts, "int8", ["--logits"])
        same, worst, tokens = 0, 0.0, 0
        with torch.no_grad():
            for t, f in zip(texts, fp):
                b = tok(t, return_tensors="pt", truncation=True, max_length=512)
                ref = m(**b).logits[0, 1:-1].tolist()
                mine = f["token_logits"]
                ok = len(ref) == len(mine)
                if ok:
                    for a, c in zip(ref, mine):
                        worst = max(worst, max(abs(x - y) for x, y in zip(a, c)))
                        tokens += 1
                    ok = tags(ref) == tags(mine)
                same += ok
        gold, pf, pq = set(), set(), set()
        for i, (r, f, q) in enumerate(zip(rows, fp, q8)):
            gold |= {(i, s, e, l) for s, e, l in r["spans"]}
            pf |= ents_set(i, f["entities"], r.get("ignore", ()), r.get("types"))
            pq |= ents_set(i, q["entities"], r.get("ignore", ()), r.get("types"))
        diffs = [abs(x - y) for f, q in zip(fp, q8) for a, c in zip(f["token_logits"], q["token_logits"])
                 for x, y in zip(a, c)]
        res["int8_mean_abs_logit_diff"] = sum(diffs) / max(1, len(diffs))
        tok_agree = [a == c for f, q in zip(fp, q8)
                     for a, c in zip(tags(f["token_logits"]), tags(q["token_logits"]))]
        res["int8_token_label_agreement"] = sum(tok_agree) / max(1, len(tok_agree))
        res.update(parity_same_labels=same / len(texts), parity_tokens=tokens, parity_max_logit_diff=worst,
                   fp32_entity_f1=prf(pf, gold), int8_entity_f1=prf(pq, gold), int8_vs_fp32_entity_f1=prf(pq, pf))
        for ty in ("company", "person"):
            g = {x for x in gold if x[3] == ty}
            res[f"fp32_{ty}_f1"] = prf({x for x in pf if x[3] == ty}, g)
            res[f"int8_{ty}_f1"] = prf({x for x in pq if x[3] == ty}, g)
    else:
        multi = None  # the multi-label threshold as a logit: config.json finbert_threshold, else 0.5
        if data["kind"] == "multi":
            with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
                t = json.load(f).get("finbert_threshold", 0.5)
            multi = math.log(t / (1 - t))
            res["threshold"] = t
        m = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir).float().eval()
        fp = cli(model_dir, "classify", texts, "fp32")
        q8 = cli(model_dir, "classify", texts, "int8")
        same, worst = 0, 0.0
        with torch.no_grad():
            for i in range(0, len(texts), 32):
                b = tok(texts[i:i + 32], return_tensors="pt", padding=True, truncation=True, max_length=512)
                for ref, f in zip(m(**b).logits.tolist(), fp[i:i + 32]):
                    worst = max(worst, max(abs(x - y) for x, y in zip(ref, f["logits"])))
                    same += labels_of(ref, multi) == labels_of(f["logits"], multi)
        agree = sum(labels_of(f["logits"], multi) == labels_of(q["logits"], multi) for f, q in zip(fp, q8))
        diffs = [abs(x - y) for f, q in zip(fp, q8) for x, y in zip(f["logits"], q["logits"])]
        res["int8_mean_abs_logit_diff"] = sum(diffs) / len(diffs)
        if multi is not None:
            gold = {(i, y) for i, r in enumerate(rows) for y in r["y"]}
            mf = {(i, y) for i, f in enumerate(fp) for y in labels_of(f["logits"], multi)}
            mq = {(i, y) for i, q in enumerate(q8) for y in labels_of(q["logits"], multi)}
            res.update(fp32_micro_f1=prf(mf, gold), int8_micro_f1=prf(mq, gold))
        else:
            res.update(fp32_accuracy=sum(labels_of(f["logits"]) == r["y"] for f, r in zip(fp, rows)) / len(rows),
                       int8_accuracy=sum(labels_of(q["logits"]) == r["y"] for q, r in zip(q8, rows)) / len(rows))
        res.update(parity_same_labels=same / len(texts), parity_max_logit_diff=worst,
                   int8_label_agreement=agree / len(texts))
    res["parity_ok"] = res["parity_same_labels"] == 1.0 and res["parity_max_logit_diff"] <= LOGIT_TOL
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.path.join(ROOT, "models"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--json")
    a = ap.parse_args()
    import torch
    import transformers
    torch.set_num_threads(int(os.environ.get("FINBERT_TRAIN_THREADS", "1")))
    out, ok = [], True
    for name in sorted(TASK_OF):
        d = os.path.join(a.models, name)
        if not os.path.isfile(os.path.join(d, "config.json")):
            continue
        r = check(d, a.n, torch, transformers)
        ok &= r["parity_ok"]
        print(json.dumps(r, ensure_ascii=False), flush=True)
        out.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What an NER model tags at the names that flash news links: companies, and indices / futures / funds.

    python3 tools/train/ner_flash_eval.py MODEL_DIR... [--cli build/finbert-cli] [--limit N] [--examples N]
                                          [--flash-weak N]

The flash feeds link each item to names, and the upstream record says of each link whether it is a listed
company or an index, a futures contract or a fund (tasks.flash_links). This scores, on flash texts that no
training sample took (neither tasks.flash_weak_ner's sample nor the sample of the round-2 recipe, which took
every link as a company; the same event reported by another feed may still have been trained on):
  - indices etc.: of the mentions of a linked index / futures contract / fund, the share that a predicted
    company span overlaps (should be 0);
  - companies: of the mentions of a linked company, the share predicted as a company span exactly, and the
    share that a company span overlaps with other boundaries.
A name counts once per text. The models run through finbert-cli, so the figures are the engine's.
"""
import argparse
import collections
import hashlib
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import common  # noqa: E402
import tasks  # noqa: E402


def eval_texts(limit):
    """(text, companies, others) for the flash texts outside both training samples, hash-ordered."""
    data = tasks.ner()
    val = {e["text"] for v in data["val"].values() for e in v}
    trained = {e["text"] for e in data["train"] if e["source"] == "flash-weak"}
    # the round-2 recipe's sample (tasks.flash_weak_ner before flash_links: every linked name was a company, a
    # text was a candidate when one occurs in it); checked equal to what 8d5c0c9's tasks.ner() sampled
    items = common.flash_items(raw=True)
    old, seen, out = [], set(), []
    for it in items:
        names = {(st.get("name") or "").strip() for st in it["stocks"]} - {""}
        comp, other, _ = tasks.flash_links(it)
        for t in tasks.flash_texts(it):
            if t in seen:
                continue
            seen.add(t)
            if any(len(n) >= 2 and n in t for n in names):
                old.append(t)
            c = sorted(n for n in comp if n in t)
            o = sorted(n for n in other if n in t)
            if c or o:
                out.append((t, c, o))
    old.sort(key=lambda t: hashlib.md5(t.encode("utf-8")).hexdigest())
    trained |= set(old[:tasks.FLASH_WEAK_MAX])
    out = [r for r in out if r[0] not in trained and r[0] not in val]
    out.sort(key=lambda r: hashlib.md5(r[0].encode("utf-8")).hexdigest())
    return out[:limit]


def entities(cli, model, texts):
    res = subprocess.run([cli, "entities", model], input="\n".join(texts) + "\n", capture_output=True,
                         text=True, check=True)
    out = [json.loads(l)["entities"] for l in res.stdout.splitlines()]
    assert len(out) == len(texts), (len(out), len(texts))
    return out


def score(rows, preds, examples):
    n_o = hit_o = n_c = exact_c = over_c = 0
    wrong = collections.Counter()
    for (t, comp, other), ents in zip(rows, preds):
        spans = [(e["start"], e["end"]) for e in ents if e["label"] == "company"]
        for n in other:
            n_o += 1
            where = [(m.start(), m.end()) for m in re.finditer(re.escape(n), t)]
            if any(s < we and ws < e for ws, we in where for s, e in spans):
                hit_o += 1
                wrong[n] += 1
        for n in comp:
            n_c += 1
            where = [(m.start(), m.end()) for m in re.finditer(re.escape(n), t)]
            if any(w in spans for w in where):
                exact_c += 1
            elif any(s < we and ws < e for ws, we in where for s, e in spans):
                over_c += 1
    return {"index_futures_fund_mentions": n_o, "tagged_company": hit_o / max(n_o, 1),
            "company_mentions": n_c, "company_exact": exact_c / max(n_c, 1),
            "company_other_boundaries": over_c / max(n_c, 1),
            "most_tagged": wrong.most_common(examples)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--cli", default=os.path.join(REPO, "build", "finbert-cli"))
    ap.add_argument("--limit", type=int, default=4000)
    ap.add_argument("--examples", type=int, default=8)
    ap.add_argument("--flash-weak", type=int, metavar="N",
                    help="the models' training sample took N weak flash texts (finetune.py --flash-weak): leave "
                         "those out too")
    a = ap.parse_args()
    if a.flash_weak:
        tasks.FLASH_WEAK_MAX = max(a.flash_weak, tasks.FLASH_WEAK_MAX)
    rows = eval_texts(a.limit)
    print(f"{len(rows)} flash texts outside the training samples: "
          f"{sum(len(r[2]) for r in rows)} index / futures / fund mentions, {sum(len(r[1]) for r in rows)} company")
    for m in a.models:
        r = score(rows, entities(a.cli, m, [t for t, _, _ in rows]), a.examples)
        print(json.dumps({"model": m, **r}, ensure_ascii=False))


if __name__ == "__main__":
    main()

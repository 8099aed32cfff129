#!/usr/bin/env python3
"""Pseudo-label unlabelled sentences with an ensemble of fine-tuned NER runs (self-training data).

The NER corpora of the shared data are small (20 k training sentences), but the shared data holds
~136 k more unlabelled texts (financial news and headlines, news titles, Weibo posts). The runs given
(same task, same encoder) label those texts: the ensemble's tags are the mean of the runs' emissions,
decoded with their mean CRF transitions (as average.py --ensemble). A sentence is kept only if it has
an entity of the chosen types (--types) and every run alone decodes the same spans of those types as the ensemble (agreement filter: the spans the runs disagree
on are the likeliest errors). `finetune.py ner --pseudo FILE` adds the kept sentences to the training set.

Texts: common.pretrain_texts() (already free of every validation split's texts) minus the NER
corpora's own sentences, cut at sentence ends into pieces of 8-150 characters.

    python3 tools/train/pseudo.py ft-ner ft-ner-seed2 ft-ner-aug --encoder $PWD/tools/train/work/pretrain-run3/encoder \
        --out tools/train/work/pseudo-ner.jsonl
"""
import argparse
import json
import os
import re
import time

import numpy as np
import torch

import average
import common
import finetune
import tasks

_CUT = re.compile(r"(?<=[。！？!?；;])")


def sentences(limit=None):
    """Unlabelled pieces with their count per source group (pretrain texts minus NER sentences)."""
    texts, _ = common.pretrain_texts()
    ner = {re.sub(r"\s+", " ", t).strip() for t, _, _ in common.ner_all_raw()}
    val = {re.sub(r"\s+", " ", t).strip() for t in common.validation_texts()}
    out, seen = [], set()
    for t in texts:
        if t in ner:
            continue
        for p in _CUT.split(t):
            p = p.strip()
            if 8 <= len(p) <= 150 and p not in seen and p not in val:
                seen.add(p)
                out.append(p)
    if limit:
        import random
        out = random.Random(common.SEED).sample(out, min(limit, len(out)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="NER work directories under tools/train/work (same encoder)")
    ap.add_argument("--encoder", default=finetune.ENCODER)
    ap.add_argument("--out", required=True)
    ap.add_argument("--types", default=",".join(tasks.NER_TYPES),
                    help="entity types to label (comma-separated); the others are left open: finetune.py "
                         "trains the pseudo-labelled sentences as a corpus annotating only these types")
    ap.add_argument("--limit", type=int, help="label a seeded random sample of N pieces")
    a = ap.parse_args()
    torch.set_num_threads(common.threads())
    data = tasks.ner()
    labels = data["labels"]
    tok = common.tokenizer()
    model = finetune.build_model(data, "ner", a.encoder)
    sds, avg = average.load_runs(a.runs)
    texts = sentences(a.limit)
    print(f"{len(texts)} unlabelled pieces", flush=True)
    exs = [{"text": t, "spans": [], "ignore": []} for t in texts]
    enc = finetune.encode(tok, data, exs, data["max_len"])
    t0 = time.time()
    per_run = []
    for sd in sds:
        model.load_state_dict(sd)
        per_run.append(finetune.predict(model, enc, "tok", bs=128))
        print(f"  run labelled in {time.time() - t0:.0f}s", flush=True)
    model.load_state_dict(avg)
    crfs = []
    for sd in sds:
        c = finetune.CRF(len(labels))
        c.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith("crf.")})
        crfs.append(c)
    types = a.types.split(",")

    def spans_of(tags, offsets):
        return [sp for sp in finetune.decode_spans(labels, tags, offsets) if sp[2] in types]

    kept, n_ent, n_agree = 0, 0, 0
    counts = {}
    with open(a.out + ".tmp", "w", encoding="utf-8") as f:
        for i, (e, r) in enumerate(zip(exs, enc)):
            mean = np.mean([lg[i] for lg in per_run], axis=0)
            spans = spans_of(finetune.token_tags(model, mean), r["offsets"])
            if not spans:
                continue
            n_ent += 1
            agree = all(spans_of([0] + c.viterbi(lg[i][1:-1]) + [0], r["offsets"]) == spans
                        for c, lg in zip(crfs, per_run))
            if not agree:
                continue
            n_agree += 1
            # a span cut by truncation (text longer than max_len tokens) would teach a wrong boundary
            if len(r["ids"]) >= data["max_len"]:
                continue
            for s, en, typ in spans:
                counts[typ] = counts.get(typ, 0) + 1
            f.write(json.dumps({"text": e["text"], "spans": spans, "types": types}, ensure_ascii=False) + "\n")
            kept += 1
    os.replace(a.out + ".tmp", a.out)
    print(json.dumps({"pieces": len(texts), "with_entities": n_ent, "runs_agree": n_agree, "kept": kept,
                      "spans": counts, "runs": a.runs, "seconds": round(time.time() - t0)}, ensure_ascii=False))


if __name__ == "__main__":
    main()

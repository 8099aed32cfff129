#!/usr/bin/env python3
"""Sort one NER run's errors for one entity type on the validation split by kind.

For every gold span the run missed: boundary (a predicted span of the same type overlaps it), wrong type
(a span of another type overlaps it) or no overlap; for every spurious prediction that overlaps no gold
span of its type: wrong type or no overlap. Prints the counts, then one line per error (corpus, kind,
span, overlapping spans, context). Scoring as finetune.ner_metrics (ignored spans and types the corpus
does not annotate are left out). A measurement tool.

    python3 tools/train/ner_errors.py ft-ner --encoder $PWD/tools/train/work/pretrain-run3/encoder --type person
"""
import argparse
import collections
import os

import torch

import common
import finetune
import tasks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", help="NER work directory under tools/train/work")
    ap.add_argument("--encoder", default=finetune.ENCODER, help="the encoder the run started from (config)")
    ap.add_argument("--type", default="person", choices=tasks.NER_TYPES)
    a = ap.parse_args()
    torch.set_num_threads(common.threads())
    data = tasks.ner()
    model = finetune.build_model(data, "ner", a.encoder)
    model.load_state_dict(torch.load(os.path.join(common.WORK, a.run, "ckpt.pt"), map_location="cpu",
                                     weights_only=False)["model"])
    ex = data["val"]["all"]
    enc = finetune.encode(common.tokenizer(), data, ex, 512)
    kinds, rows = collections.Counter(), []
    for e, r, lg in zip(ex, enc, finetune.predict(model, enc, "tok")):
        pred = finetune.scored_spans(data["labels"], e, r, finetune.token_tags(model, lg))
        t = e["text"]
        gold = {s for s in e["spans"] if s[2] == a.type}
        mine = {p for p in pred if p[2] == a.type}

        def show(spans):
            return " ".join(f"{t[s:en]}/{ty}" for s, en, ty in spans) or "-"

        for g in sorted(gold - mine):
            ov = [p for p in pred if p[0] < g[1] and g[0] < p[1]]
            k = ("missed: no overlap" if not ov else "missed: boundary" if any(p[2] == a.type for p in ov)
                 else "missed: typed " + ov[0][2])
            kinds[k] += 1
            rows.append((e["source"], k, t[g[0]:g[1]], show(ov), t[max(0, g[0] - 12):g[1] + 12]))
        for p in sorted(mine - gold):
            ov = [g for g in e["spans"] if g[0] < p[1] and p[0] < g[1]]
            if any(g[2] == a.type for g in ov):
                continue  # the same error as the boundary miss above
            k = "spurious: no overlap" if not ov else "spurious: gold is " + ov[0][2]
            kinds[k] += 1
            rows.append((e["source"], k, t[p[0]:p[1]], show(ov), t[max(0, p[0] - 12):p[1] + 12]))
    for k, n in kinds.most_common():
        print(f"{n:5d}  {k}")
    for r in rows:
        print(" | ".join(r))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Evaluate the weight average ("model soup") of fine-tuned runs of one task, or their ensemble.

Every run must start from the same encoder (their weights then stay close enough to average).
Loads each run's final checkpoint (tools/train/work/<run>/ckpt.pt), averages the floating-point
tensors, and prints the task's validation metrics of the average, as finetune.py does for one run.
With --ensemble, averages the runs' outputs instead (logits; for a CRF head the emissions and the
transition scores): the figure a distilled single model could at best approach.
A measurement tool: it does not export a model.

    python3 tools/train/average.py ner ft-ner ft-ner-seed2 ft-ner-aug --encoder $PWD/tools/train/work/pretrain-run3/encoder
"""
import argparse
import json
import os

import torch

import common
import finetune
import tasks


def ensemble(model, sds, avg, data, encv):
    """Validation metrics of the mean of the runs' logits (CRF: mean transitions decode them)."""
    names = list(encv)
    logits = {n: None for n in names}
    for sd in sds:
        model.load_state_dict(sd)
        for n in names:
            lg = finetune.predict(model, encv[n], data["kind"])
            logits[n] = lg if logits[n] is None else [x + y for x, y in zip(logits[n], lg)]
    logits = {n: [x / len(sds) for x in lg] for n, lg in logits.items()}
    model.load_state_dict(avg)  # the CRF's mean transitions decode the mean emissions
    res = {}
    if data["kind"] == "tok":
        ex_all, enc_all, lg_all = data["val"]["all"], encv["all"], logits["all"]
        for name in data["val"]:
            keep = [i for i, e in enumerate(ex_all) if name == "all" or e["source"] == name]
            res[name] = finetune.ner_metrics(data["labels"], [ex_all[i] for i in keep], [enc_all[i] for i in keep],
                                             [lg_all[i] for i in keep], lambda lg: finetune.token_tags(model, lg))
        return res
    for name, ex in data["val"].items():
        ys = [e["y"] for e in ex]
        metric = finetune.seq_metrics if data["kind"] == "seq" else finetune.multi_metrics
        res[name] = metric(data["labels"], ys, logits[name])
    return res


def load_runs(runs):
    """The runs' final state dicts and their weight average (integer tensors from the first run)."""
    sds = [torch.load(os.path.join(common.WORK, r, "ckpt.pt"), map_location="cpu", weights_only=False)["model"]
           for r in runs]
    avg = {k: (sum(sd[k].float() for sd in sds) / len(sds)) if sds[0][k].is_floating_point() else sds[0][k]
           for k in sds[0]}
    return sds, avg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=sorted(tasks.BUILDERS))
    ap.add_argument("runs", nargs="+", help="work directory names under tools/train/work")
    ap.add_argument("--encoder", default=finetune.ENCODER, help="the encoder the runs started from (config)")
    ap.add_argument("--ensemble", action="store_true", help="average outputs instead of weights")
    a = ap.parse_args()
    torch.set_num_threads(common.threads())
    data = tasks.BUILDERS[a.task]()
    tok = common.tokenizer()
    model = finetune.build_model(data, a.task, a.encoder)
    sds, avg = load_runs(a.runs)
    if data["kind"] == "tok":
        encv = {"all": finetune.encode(tok, data, data["val"]["all"], 512)}
    else:
        encv = {n: finetune.encode(tok, data, ex, data["max_len"]) for n, ex in data["val"].items()}
    if a.ensemble:
        res = ensemble(model, sds, avg, data, encv)
    else:
        model.load_state_dict(avg)
        res = finetune.evaluate(model, data, encv)
    what = "ensemble" if a.ensemble else "weight average"
    print(f"{what} of {', '.join(a.runs)}: {finetune.headline(a.task, res)}")
    print(json.dumps(res, ensure_ascii=False))


if __name__ == "__main__":
    main()

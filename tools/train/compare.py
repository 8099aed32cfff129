"""Paired bootstrap of a validation metric between fine-tuned models: is a difference more than the noise of
the validation texts? (It does not see fine-tuning-seed noise, which needs several runs per arm.)

    python3 tools/train/compare.py sentiment finfe_val_dedup tools/train/work/se-bert-model \
        tools/train/work/se-e128l5-model [...]

The first model is the control. Each model is an exported directory (finetune.py --out), run in fp32 with
transformers; single-label tasks score accuracy, multi-label ones micro-F1 at the model's finbert_threshold
(0.5 without one). 2,000 resamples of the texts, the same resamples for every model (seed 0).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import tasks  # noqa: E402


def scores(model_dir, rows, data):
    """Per-text statistics: correct (0/1) for single-label, (true positives, predicted, gold) for multi-label."""
    from transformers import AutoModelForSequenceClassification, BertTokenizerFast
    m = AutoModelForSequenceClassification.from_pretrained(model_dir).float().eval()
    tk = BertTokenizerFast.from_pretrained(model_dir)
    texts = [r["text"] for r in rows]
    with torch.no_grad():
        lg = torch.cat([m(**tk(texts[i:i + 64], padding=True, truncation=True, max_length=data["max_len"],
                                 return_tensors="pt")).logits.float() for i in range(0, len(texts), 64)]).numpy()
    if data["kind"] == "seq":
        return (lg.argmax(1) == np.array([r["y"] for r in rows])).astype(float)[:, None]
    cfg = json.load(open(os.path.join(model_dir, "config.json"), encoding="utf-8"))
    pred = 1 / (1 + np.exp(-lg)) >= cfg.get("finbert_threshold", 0.5)
    gold = np.zeros_like(pred)
    for i, r in enumerate(rows):
        gold[i, r["y"]] = True
    return np.stack([(pred & gold).sum(1), pred.sum(1), gold.sum(1)], 1).astype(float)


def metric(v, ix):
    """accuracy or micro-F1 over the texts ix (last axis of ix: the texts of one resample)"""
    s = v[ix].sum(-2)
    return s[..., 0] / ix.shape[-1] if v.shape[1] == 1 else 2 * s[..., 0] / (s[..., 1] + s[..., 2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=["sentiment", "type", "industry"])
    ap.add_argument("split")
    ap.add_argument("models", nargs="+", help="control first")
    ap.add_argument("--resamples", type=int, default=2000)
    a = ap.parse_args()
    common.threads()
    data = tasks.BUILDERS[a.task]()
    if a.split not in data["val"]:
        raise SystemExit(f"{a.task} has no split {a.split}: {', '.join(data['val'])}")
    rows = data["val"][a.split]
    n = len(rows)
    ix = np.random.default_rng(0).integers(0, n, (a.resamples, n))
    every = np.arange(n)
    base = None
    for d in a.models:
        v = scores(d, rows, data)
        full, boot = metric(v, every), metric(v, ix)
        line = f"{a.split} ({n} texts) {os.path.basename(os.path.normpath(d))}: {full:.4f} (bootstrap SE {boot.std():.4f})"
        if base is None:
            base = v
        else:
            diff = boot - metric(base, ix)
            lo, hi = np.percentile(diff, [2.5, 97.5])
            line += f"; minus control {full - metric(base, every):+.4f}, 95 % CI [{lo:+.4f}, {hi:+.4f}]"
        print(line, flush=True)


if __name__ == "__main__":
    main()

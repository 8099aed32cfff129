#!/usr/bin/env python3
"""Reference engines on the same model and inputs as bench_engine.

ONNX Runtime (CPU, full graph optimisations incl. BERT fusions; fp32 and
dynamic int8) and PyTorch (fp32, and torch.ao dynamic int8), random token
ids of a fixed length, fixed batch, same thread count.  Prints one JSON
line per engine, in the format of bench_engine.

Usage: bench_ref.py MODEL_DIR --batch B --length L --threads T [--seconds S]
       [--engines ort,ort-int8,torch,torch-int8]
"""
import argparse
import json
import os
import time

import numpy as np


def timed(fn, seconds, min_iters=3):
    fn()  # warm-up
    lat = []
    t_end = time.perf_counter() + seconds
    while len(lat) < min_iters or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t0)
    return sorted(lat)


def report(name, precision, lat, batch, length, threads, extra=None):
    total = sum(lat)
    out = {"engine": name, "precision": precision, "batch": batch, "length": length,
           "iters": len(lat), "tokens_per_s": round(batch * length * len(lat) / total, 1),
           "seqs_per_s": round(batch * len(lat) / total, 2),
           "p50_ms": round(lat[len(lat) // 2] * 1e3, 3),
           "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, 3),
           "threads": threads}
    out.update(extra or {})
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--engines", default="ort,ort-int8,torch,torch-int8")
    args = ap.parse_args()
    engines = args.engines.split(",")
    rng = np.random.default_rng(42)
    ids = rng.integers(1000, 21128, size=(args.batch, args.length), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = np.ones_like(ids)
    types = np.zeros_like(ids)

    for eng in [e for e in engines if e.startswith("ort")]:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        path = os.path.join(args.model_dir, "model.int8.onnx" if eng == "ort-int8" else "model.onnx")
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        lat = timed(lambda: sess.run(None, feed), args.seconds)
        report("onnxruntime", "int8" if eng == "ort-int8" else "fp32", lat, args.batch,
               args.length, args.threads, {"version": ort.__version__})

    for eng in [e for e in engines if e.startswith("torch")]:
        import torch
        from transformers import AutoModelForSequenceClassification
        torch.set_num_threads(args.threads)
        model = AutoModelForSequenceClassification.from_pretrained(args.model_dir).eval()
        if eng == "torch-int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        t_ids, t_mask, t_types = (torch.from_numpy(a) for a in (ids, mask, types))

        def run():
            with torch.inference_mode():
                model(input_ids=t_ids, attention_mask=t_mask, token_type_ids=t_types)
        lat = timed(run, args.seconds)
        report("pytorch", "int8" if eng == "torch-int8" else "fp32", lat, args.batch,
               args.length, args.threads, {"version": torch.__version__})


if __name__ == "__main__":
    main()

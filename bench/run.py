#!/usr/bin/env python3
"""finbert vs ONNX Runtime vs PyTorch, same machine, same run.

For each model geometry and (batch, length) case, runs build/bench_engine
and bench/bench_ref.py with equal thread counts, then prints a table of
tokens/s, p50/p99 and the ratios finbert/ORT and finbert/PyTorch.  Each
case runs in two environments: as given (e.g. OPENBLAS_CORETYPE=Haswell
forcing AVX2 GEMM kernels) and with OPENBLAS_CORETYPE unset (OpenBLAS picks
the kernel for this CPU); the OpenBLAS core in use is reported.

Usage: python3 bench/make_models.py   (once; writes bench/work/)
       make bench-engine && python3 bench/run.py [--quick] [--json out.jsonl]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CASES = [("bert-base", 32, 128), ("bert-base", 1, 64), ("bert-base", 1, 128),
         ("bert-base", 32, 32), ("bert-base", 4, 512), ("small", 32, 128), ("small", 1, 64)]
QUICK = [("bert-base", 32, 128), ("bert-base", 1, 64), ("small", 32, 128)]


def run_json(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--engines", default="ort,ort-int8,torch,torch-int8")
    ap.add_argument("--json", default=None)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench_engine"))
    args = ap.parse_args()
    envs = [("as-given", dict(os.environ))]
    if "OPENBLAS_CORETYPE" in os.environ:
        best = dict(os.environ)
        del best["OPENBLAS_CORETYPE"]
        envs.append(("coretype-unset", best))
    rows = []
    for env_name, env in envs:
        for model, batch, length in (QUICK if args.quick else CASES):
            d = os.path.join(HERE, "work", model)
            common = ["--batch", str(batch), "--length", str(length), "--threads", str(args.threads),
                      "--seconds", str(args.seconds)]
            res = run_json([args.bench, d] + common, env)
            res += run_json([sys.executable, os.path.join(HERE, "bench_ref.py"), d] + common
                            + ["--engines", args.engines], env)
            for r in res:
                r.update(model=model, env=env_name)
            rows += res
            fb = res[0]
            line = [f"{env_name:15s} {model:9s} b={batch:<3d} L={length:<4d}",
                    f"finbert {fb['tokens_per_s']:8.0f} tok/s p50 {fb['p50_ms']:8.1f} ms"
                    f" [{fb['kernel']}/{fb['blas_core']}]"]
            for r in res[1:]:
                line.append(f"{r['engine']}-{r['precision']} {r['tokens_per_s']:8.0f} "
                            f"(x{fb['tokens_per_s'] / r['tokens_per_s']:.2f}, p50 {r['p50_ms']:.1f})")
            print(" | ".join(line), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""finbert vs ONNX Runtime vs PyTorch, same machine, same run.

For each model geometry and (batch, length) case, runs build/bench_engine
(fp32 and int8) and bench/bench_ref.py with equal thread counts, then
prints a table of tokens/s, p50/p99 and the ratios finbert/ORT and
finbert/PyTorch at the same precision (fp32 vs fp32, int8 vs int8).  Each
case runs in two environments: as given (e.g. OPENBLAS_CORETYPE=Haswell
forcing AVX2 GEMM kernels) and with OPENBLAS_CORETYPE unset (OpenBLAS picks
the kernel for this CPU); the OpenBLAS core in use is reported.

Every repetition of a case also runs build/bench_peak: the CPU's fp32 FMA,
int8 vpdpbusd and bfloat16 vdpbf16ps peaks on the same threads, measured
next to the engines because a shared host's speed moves from minute to
minute (the case keeps the highest of its repetitions, as for the engines).
From them and the model's geometry every finbert figure is also given as a
share of the ceiling: all multiply-adds at the fp32 peak (fp32), or the
linear layers at the int8 peak and attention at the bfloat16 peak (int8,
as the engine runs them), with everything else free.

Usage: python3 bench/make_models.py   (once; writes bench/work/)
       make bench-engine bench-peak && python3 bench/run.py [--quick] [--repeat N] [--json out.jsonl]

With --repeat N every engine runs N times per case, interleaved with the
others, and the table shows each engine's best run (all runs' tokens/s are
in the JSON as "runs").
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


def macs_per_token(model_dir, length, task="forward"):
    """(linear, attention) multiply-adds per token of a BERT encoder at this length.

    For "classify" the last layer needs only the [CLS] row after its QKV
    projection (keys and values of every row, one query), as the engine runs
    it, so that layer's attention, output projection and feed-forward count
    once per sequence: 6 % fewer multiply-adds for BERT-base at length 128.
    """
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    n, h, i = c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"]
    lin, att = 4 * h * h + 2 * h * i, 2 * length * h      # one layer, per token
    if task == "classify":
        return (n - 1) * lin + 3 * h * h + (h * h + 2 * h * i) / length, (n - 1) * att + att / length
    return n * lin, n * att


def ceilings(peak, model_dir, length, task):
    """Tokens/s if every multiply-add ran at the measured peak (see the module doc)."""
    lin, att = macs_per_token(model_dir, length, task)
    out = {}
    fp32 = max((peak.get(k) or {}).get("gmac_per_s", 0.0) for k in ("fp32_fma_zmm", "fp32_fma_ymm"))
    if fp32 > 0:
        out["fp32"] = fp32 * 1e9 / (lin + att)
    q8, bf = (peak.get("int8_vpdpbusd_zmm") or {}), (peak.get("bf16_vdpbf16ps_zmm") or {})
    if q8 and bf:
        out["int8"] = 1.0 / (lin / (q8["gmac_per_s"] * 1e9) + att / (bf["gmac_per_s"] * 1e9))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--engines", default="ort,ort-int8,torch,torch-int8")
    ap.add_argument("--precisions", default="fp32,int8", help="finbert precisions to run")
    ap.add_argument("--json", default=None)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench_engine"))
    ap.add_argument("--peak", default=os.path.join(ROOT, "build", "bench_peak"))
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure every engine this many times, interleaved, and keep each "
                         "engine's best run (on a shared machine the slow runs are other jobs' doing)")
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
            best = {}
            peak = {"engine": "peak", "threads": args.threads}
            for rep in range(args.repeat):
                for k, v in run_json([args.peak, "--threads", str(args.threads), "--seconds", "0.6"], env)[0].items():
                    if isinstance(v, dict) and v["gmac_per_s"] > (peak.get(k) or {}).get("gmac_per_s", 0.0):
                        peak[k] = v
                once = []
                for prec in args.precisions.split(","):
                    once += run_json([args.bench, d] + common + ["--precision", prec], env)
                once += run_json([sys.executable, os.path.join(HERE, "bench_ref.py"), d] + common
                                 + ["--engines", args.engines], env)
                for r in once:
                    key = (r["engine"], r["precision"])
                    r["runs"] = best.get(key, {}).get("runs", []) + [r["tokens_per_s"]]
                    if key not in best or r["tokens_per_s"] > best[key]["tokens_per_s"]:
                        best[key] = r
                    else:
                        best[key]["runs"] = r["runs"]
            res = list(best.values()) + [peak]
            for r in res:
                r.update(model=model, env=env_name)
            rows += res
            mine = {r["precision"]: r for r in res if r["engine"] == "finbert"}
            ceil = ceilings(peak, d, length, next(iter(mine.values()))["task"]) if mine else {}
            line = [f"{env_name:15s} {model:9s} b={batch:<3d} L={length:<4d}"]
            for prec, fb in mine.items():
                share = ""
                if prec in ceil:
                    fb["ceiling_tok_s"] = round(ceil[prec], 1)
                    share = f" = {100 * fb['tokens_per_s'] / ceil[prec]:.0f}% of {ceil[prec]:.0f}"
                line.append(f"finbert-{prec} {fb['tokens_per_s']:8.0f} tok/s{share} p50 {fb['p50_ms']:8.1f} ms"
                            f" [{fb['kernel']}/{fb['blas_core']}]")
            for r in res:
                if r["engine"] in ("finbert", "peak"):
                    continue
                fb = mine.get(r["precision"])
                # throughput finbert/other (> 1: finbert faster), latency
                # finbert/other (< 1: finbert faster)
                ratio = (f"tok/s x{fb['tokens_per_s'] / r['tokens_per_s']:.2f}, "
                         f"p50 latency x{fb['p50_ms'] / r['p50_ms']:.2f}") if fb else "-"
                line.append(f"{r['engine']}-{r['precision']} {r['tokens_per_s']:8.0f} "
                            f"(p50 {r['p50_ms']:.1f}; {ratio})")
            line.append("peaks " + ", ".join(f"{k} {v['gmac_per_s']:.0f}" for k, v in peak.items()
                                             if isinstance(v, dict) and not k.endswith("ymm")) + " G MAC/s")
            print(" | ".join(line), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()

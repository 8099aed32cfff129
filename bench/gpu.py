#!/usr/bin/env python3
"""finbert's CUDA backend against PyTorch CUDA on one GPU, in one run.

  python3 bench/gpu.py --out DIR [--build build] [--seconds 8] [--quick]

Cases (random-weight models made by build/make_random_model, fp16):
  BERT-base (12 layers, hidden 768, 12 heads), batch 256 x length 128:
      tokens/s, finbert with each attention variant (fused, GEMM) with two
      batches in flight, PyTorch fp16 with scaled_dot_product_attention,
      and PyTorch + torch.compile where it works;
  BERT-base, batch 1 x length 64: p50 / p99 latency of one batch;
  the starter geometry (4 layers, hidden 256), batch 256 x 128: tokens/s.
Parity: finbert on the GPU against PyTorch fp32 on the same token ids
(sequence logits of BERT-base and the starter models, token logits of
finbert-ner): max |logit difference|, labels.
GPU utilisation: nvidia-smi sampled every 100 ms during each finbert
throughput run.

Writes DIR/gpu.json (every figure) and DIR/gpu.txt (a table); a missing
PyTorch (or one without CUDA) skips its rows and says so.  Nothing here is
a pass/fail test: the targets of the issue (>= 1,000,000 tokens/s and
>= 1.3x PyTorch fp16 SDPA at 256 x 128, <= 1.5 ms at 1 x 64) are printed
next to the figures.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(HERE, "work")
GEOMETRIES = {
    "gpu-bert-base": ["--hidden", "768", "--layers", "12", "--heads", "12", "--intermediate", "3072"],
    "gpu-small": ["--hidden", "256", "--layers", "4", "--heads", "4", "--intermediate", "1024"],
}
TEXTS = os.path.join(ROOT, "test", "fixtures", "golden", "forward.json")


def log(*a):
    print(*a, flush=True)


def run(cmd, timeout):
    log("$", " ".join(cmd))
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (cmd[0], p.returncode, p.stderr.strip()[-500:]))
    return p.stdout


class Sampler:
    """nvidia-smi utilisation samples while a run lasts."""

    def __init__(self):
        self.samples = []
        self.proc = None

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 "-lms", "100"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                u, m = (float(x) for x in line.split(","))
                self.samples.append((u, m))
            except ValueError:
                pass

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()

    def summary(self):
        if not self.samples:
            return None
        util = sorted(u for u, _ in self.samples)
        return {"util_mean": sum(util) / len(util), "util_p50": util[len(util) // 2],
                "mem_max_mib": max(m for _, m in self.samples), "samples": len(util)}


MODULE = None  # the CUDA module (--module)


def finbert(build, model, batch, length, attention, seconds, pipeline, timeout=240):
    cmd = [os.path.join(build, "bench_engine"), model, "--batch", str(batch), "--length", str(length),
           "--device", "cuda", "--cuda-module", MODULE,
           "--attention", attention, "--seconds", str(seconds), "--iters", "20",
           "--pipeline", "1" if pipeline else "0"]
    with Sampler() as s:
        out = json.loads(run(cmd, timeout).strip().splitlines()[-1])
    out["gpu"] = s.summary()
    return out


def torch_rows(models, seconds, quick):
    """PyTorch fp16 SDPA (and torch.compile) figures, or why not."""
    try:
        import torch
    except ImportError as e:
        return {"skipped": "no PyTorch: %s" % e}
    if not torch.cuda.is_available():
        return {"skipped": "PyTorch %s has no CUDA device" % torch.__version__}
    sys.path.insert(0, HERE)
    from torch_bert import TorchBert
    res = {"torch": torch.__version__, "cuda": torch.version.cuda,
           "device": torch.cuda.get_device_name(0)}

    def timed(fn, ids, seconds, min_iters):
        with torch.inference_mode():
            for _ in range(3):
                fn(ids)
            torch.cuda.synchronize()
            lat = []
            t_end = time.time() + seconds
            while len(lat) < min_iters or time.time() < t_end:
                a = torch.cuda.Event(enable_timing=True)
                b = torch.cuda.Event(enable_timing=True)
                a.record()
                fn(ids)
                b.record()
                b.synchronize()
                lat.append(a.elapsed_time(b) / 1e3)
        lat.sort()
        return lat

    for name, cases in models.items():
        m = TorchBert(os.path.join(WORK, name), device="cuda", dtype=torch.float16)
        for batch, length in cases:
            ids = torch.randint(1000, 20000, (batch, length), device="cuda")
            ids[:, 0] = 101
            key = "%s %dx%d" % (name, batch, length)
            lat = timed(m.sequence_logits, ids, seconds, 10)
            res[key + " sdpa"] = {"tokens_per_s": batch * length * len(lat) / sum(lat),
                                  "p50_ms": lat[len(lat) // 2] * 1e3,
                                  "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3}
            log(key, "sdpa", res[key + " sdpa"])
            # torch.compile takes tens of seconds per shape: the main case only
            if quick or not hasattr(torch, "compile") or (batch, length) != (256, 128) or \
                    name != "gpu-bert-base":
                continue
            try:
                c = torch.compile(m.sequence_logits)
                lat = timed(c, ids, seconds, 10)
                res[key + " compiled"] = {"tokens_per_s": batch * length * len(lat) / sum(lat),
                                          "p50_ms": lat[len(lat) // 2] * 1e3}
                log(key, "compiled", res[key + " compiled"])
            except Exception as e:  # torch.compile needs triton, a compiler...
                res[key + " compiled"] = {"skipped": str(e).splitlines()[0][:200]}
        del m
        torch.cuda.empty_cache()
    return res


def parity(build, names):
    """finbert (GPU) against PyTorch fp32 on the same ids."""
    try:
        import torch
    except ImportError as e:
        return {"skipped": "no PyTorch: %s" % e}
    sys.path.insert(0, HERE)
    from torch_bert import TorchBert
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with open(TEXTS) as f:
        texts = [t for t in json.load(f)["texts"] if t.strip()]
    lines = "\n".join(t.replace("\n", " ") for t in texts) + "\n"
    res = {}
    dirs = [os.path.join(WORK, n) if n.startswith("gpu-") else os.path.join(ROOT, "models", n)
            for n in names]
    cli = os.path.join(build, "finbert-cli")
    for d in dirs:
        if not os.path.isdir(d):
            continue
        name = os.path.basename(d)
        ner = name.endswith("-ner")
        tok = [json.loads(x)["ids"] for x in
               subprocess.run([cli, "tokenize", d], input=lines, capture_output=True, text=True,
                              cwd=ROOT, check=True).stdout.splitlines()]
        for attention in ("fused", "gemm"):
            cmd = [cli, "entities" if ner else "classify", d, "--device", "cuda",
                   "--cuda-module", MODULE, "--attention", attention,
                   "--max-length", "512"] + (["--logits"] if ner else [])
            out = [json.loads(x) for x in subprocess.run(cmd, input=lines, capture_output=True, text=True,
                                                          cwd=ROOT, check=True).stdout.splitlines()]
            m = TorchBert(d, device=dev, dtype=torch.float32)
            worst, labels_diff, n = 0.0, 0, 0
            with torch.inference_mode():
                for ids, o in zip(tok, out):
                    if len(ids) > 512:
                        ids = ids[:511] + ids[-1:]  # truncated as finbert does: [CLS] ... [SEP]
                    if ner and len(ids) > 510:
                        continue  # windows: compared where one window covers the text
                    t = torch.tensor([ids], device=dev)
                    if ner:
                        ref = m.token_logits(t)[0, 1:-1].cpu()
                        got = torch.tensor(o["token_logits"])
                    else:
                        ref = m.sequence_logits(t)[0].cpu()
                        got = torch.tensor(o["logits"])
                    worst = max(worst, (ref - got).abs().max().item())
                    labels_diff += int((ref.argmax(-1) != got.argmax(-1)).sum())
                    n += 1
            res["%s %s" % (name, attention)] = {"max_logit_diff": worst, "labels_differ": labels_diff,
                                                 "texts": n}
            log(name, attention, res["%s %s" % (name, attention)])
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--module", help="the CUDA module (default BUILD/finbert_cuda.so)")
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run of every step (with --module build/finbert_cuda_harness.so: "
                         "checks this script without a GPU)")
    a = ap.parse_args()
    global MODULE
    MODULE = a.module or os.path.join(a.build, "finbert_cuda.so")
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(WORK, exist_ok=True)
    result = {"time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    for name, geo in GEOMETRIES.items():
        d = os.path.join(WORK, name)
        if a.smoke and name != "gpu-small":
            continue
        if not os.path.exists(os.path.join(d, "model.safetensors")):
            run([os.path.join(a.build, "make_random_model"), d] + geo, 300)

    fb = {}
    base = os.path.join(WORK, "gpu-bert-base")
    small = os.path.join(WORK, "gpu-small")
    cases = (("bert-base 256x128", (base, 256, 128, True)),
             ("bert-base 1x64", (base, 1, 64, False)),
             ("small 256x128", (small, 256, 128, True)))
    if a.smoke:
        cases = (("small 256x128", (small, 2, 16, True)), ("bert-base 1x64", (small, 1, 16, False)))
        a.seconds = 0.1
    for attention in ("fused", "gemm"):
        for key, args in cases:
            try:
                fb["%s %s" % (key, attention)] = finbert(a.build, *args[:3], attention, a.seconds, args[3])
            except Exception as e:
                fb["%s %s" % (key, attention)] = {"error": str(e)}
            log(key, attention, fb["%s %s" % (key, attention)])
    result["finbert"] = fb
    try:
        result["pytorch"] = torch_rows({"gpu-bert-base": [(256, 128), (1, 64)], "gpu-small": [(256, 128)]},
                                       a.seconds, a.quick)
    except Exception as e:
        result["pytorch"] = {"error": str(e)}
    try:
        result["parity"] = parity(a.build, ["finbert-sentiment"] if a.smoke else
                                  ["gpu-bert-base", "finbert-sentiment", "finbert-industry", "finbert-type",
                                   "finbert-ner"])
    except Exception as e:
        result["parity"] = {"error": str(e)}

    with open(os.path.join(a.out, "gpu.json"), "w") as f:
        json.dump(result, f, indent=1)
    lines = []
    pt = result["pytorch"]
    for key in ("bert-base 256x128", "bert-base 1x64", "small 256x128"):
        tkey = key.replace("bert-base", "gpu-bert-base").replace("small", "gpu-small")
        ref = pt.get(tkey + " sdpa", {}) if isinstance(pt, dict) else {}
        comp = pt.get(tkey + " compiled", {}) if isinstance(pt, dict) else {}
        for attention in ("fused", "gemm"):
            r = fb.get("%s %s" % (key, attention))
            if r is None:
                continue
            if "error" in r:
                lines.append("%-18s %-6s ERROR %s" % (key, attention, r["error"][:160]))
                continue
            ratio = r["tokens_per_s"] / ref["tokens_per_s"] if ref.get("tokens_per_s") else None
            lines.append("%-18s %-6s finbert %12.0f tok/s p50 %8.3f ms | PyTorch SDPA %s, compiled %s | x%s | GPU busy %s" % (
                key, attention, r["tokens_per_s"], r["p50_ms"],
                "%.0f tok/s p50 %.3f ms" % (ref["tokens_per_s"], ref["p50_ms"]) if ref.get("tokens_per_s") else "-",
                "%.0f tok/s" % comp["tokens_per_s"] if comp.get("tokens_per_s") else comp.get("skipped", "-")[:60],
                "%.2f" % ratio if ratio else "-",
                "%.0f %%" % r["gpu"]["util_mean"] if r.get("gpu") else "-"))
    lines.append("targets: BERT-base 256x128 >= 1,000,000 tok/s and >= 1.3x PyTorch SDPA; 1x64 p50 <= 1.5 ms")
    if "skipped" in pt:
        lines.append("PyTorch: " + pt["skipped"])
    par = result["parity"]
    for k, v in sorted(par.items()) if isinstance(par, dict) else []:
        lines.append("parity %-28s %s" % (k, v))
    with open(os.path.join(a.out, "gpu.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    log("\n".join(lines))
    # a finbert case that failed fails the step (PyTorch may be absent)
    sys.exit(1 if any("error" in r for r in fb.values()) else 0)


if __name__ == "__main__":
    main()

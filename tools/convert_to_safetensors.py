#!/usr/bin/env python3
"""Convert a Hugging Face checkpoint's pytorch_model.bin to model.safetensors.

finbert reads only safetensors (a pickle can execute code; safetensors is a
plain header plus raw tensors).  This tool loads the pickle with
torch.load(weights_only=True) — PyTorch's restricted unpickler — and writes
model.safetensors next to it, keeping tensor names and dtypes (optionally
casting to fp16 to halve the size).

Usage: python3 tools/convert_to_safetensors.py MODEL_DIR [--fp16]
"""
import argparse
import os
import sys

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--fp16", action="store_true", help="store floating tensors as fp16")
    args = ap.parse_args()
    src = os.path.join(args.model_dir, "pytorch_model.bin")
    dst = os.path.join(args.model_dir, "model.safetensors")
    if not os.path.exists(src):
        sys.exit(f"{src}: not found")
    state = torch.load(src, map_location="cpu", weights_only=True)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out, seen = {}, {}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            continue
        if args.fp16 and t.is_floating_point():
            t = t.to(torch.float16)
        key = (t.data_ptr(), tuple(t.shape), t.dtype)
        if key in seen:          # tied weights are stored once
            continue
        seen[key] = name
        out[name] = t.contiguous().clone()
    save_file(out, dst, metadata={"format": "pt"})
    print(f"{dst}: {len(out)} tensors, {os.path.getsize(dst)} bytes")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the safetensors fixtures of test/test_safetensors.c.

The positive fixtures are written by the real `safetensors` package (0.8,
through its torch API, the only one with bfloat16), so the C reader is
tested against the reference writer.  Values cover what fp conversion must
preserve: signed zeros, subnormals, infinities, NaN, extremes.  The two
unsupported-dtype fixtures are also written by the reference (torch
float8_e4m3fn and uint16 tensors).  Structural negative cases are built in C
by the test itself.

Usage: python3 tools/gen_safetensors_fixtures.py [outdir]
"""
import math
import os
import sys

import torch
from safetensors.torch import load_file, save_file

INF = math.inf
NAN = math.nan


def floats():
    return {
        # F32: zero, -0, plain values, smallest subnormal 2^-149, subnormal
        # 2^-130, +-inf, nan, FLT_MAX
        "f32": torch.tensor([[0.0, -0.0, 1.5, -2.25, 2.0 ** -149],
                             [2.0 ** -130, INF, -INF, NAN, 3.4028234663852886e38]],
                            dtype=torch.float32),
        # F16: smallest subnormal 2^-24, subnormal 2^-15, max 65504,
        # smallest normal 2^-14, +-inf, nan, a value with a full mantissa
        "f16": torch.tensor([0.0, -0.0, 1.0, -65504.0, 2.0 ** -24, 2.0 ** -15,
                             2.0 ** -14, INF, -INF, NAN, 0.333251953125],
                            dtype=torch.float16),
        # BF16: smallest subnormal 2^-133, smallest normal 2^-126, +-inf,
        # nan, a large value, exact fractions
        "bf16": torch.tensor([1.0, -2.0, 2.0 ** -133, 2.0 ** -126, INF, -INF,
                              NAN, 1.5 * 2.0 ** 100, 0.15625],
                             dtype=torch.bfloat16),
        # F64: rounding to fp32, overflow to inf, underflow to 0, nan
        "f64": torch.tensor([1.0 / 3.0, 1e300, -1e300, 1e-320, NAN, -1.0],
                            dtype=torch.float64),
        "empty_f32": torch.zeros((0,), dtype=torch.float32),
        "empty_f16_3x0": torch.zeros((3, 0), dtype=torch.float16),
        "scalar": torch.tensor(42.0, dtype=torch.float32),
        "bert.embeddings.word_embeddings.weight":
            torch.arange(6, dtype=torch.float32).reshape(3, 2) / 4,
        "层.权重": torch.tensor([7.0], dtype=torch.float32),
        "i64": torch.tensor([-1, 2 ** 40], dtype=torch.int64),
        "i32": torch.tensor([-(2 ** 31), 2 ** 31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 7], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "test", "data", "safetensors")
    os.makedirs(out, exist_ok=True)

    def path(name):
        return os.path.join(out, name)

    save_file(floats(), path("floats.safetensors"),
              metadata={"format": "pt", "note": "中文 fixture"})
    save_file({}, path("metadata_only.safetensors"), metadata={"format": "pt"})
    save_file({}, path("empty.safetensors"))
    save_file({"w": torch.zeros((2,), dtype=torch.float8_e4m3fn)},
              path("unsupported_f8_e4m3.safetensors"))
    save_file({"w": torch.zeros((2,), dtype=torch.uint16)},
              path("unsupported_u16.safetensors"))

    # the reference must read back what it wrote
    for name in ("floats", "metadata_only", "empty",
                 "unsupported_f8_e4m3", "unsupported_u16"):
        load_file(path(name + ".safetensors"))


if __name__ == "__main__":
    main()

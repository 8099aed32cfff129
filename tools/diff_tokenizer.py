#!/usr/bin/env python3
"""Differential fuzzing of the engine's tokenizer against Hugging Face
BertTokenizerFast on random Unicode (and mutated real lines).

    make engine            # or BUILD=... engine
    python3 tools/diff_tokenizer.py [--lib build/libfinbert_engine.a]
                                    [--n 20000] [--seed 1] [--vocab FILE]

Builds tools/fb_tokenize_lines.c against the engine library, tokenizes the
same strings with both, in the uncased and the cased mode, and prints every
difference (exit status 1 when there is one).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_tokenizer_golden as golden  # noqa: E402

ROOT = golden.ROOT


def build_tool(lib, workdir):
    exe = os.path.join(workdir, "fb_tokenize_lines")
    pk = subprocess.check_output(["pkg-config", "--cflags", "--libs", "icu-uc", "icu-i18n",
                                  "json-c", "openblas"], text=True).split()
    subprocess.check_call(["cc", "-std=gnu11", "-O2", "-I" + os.path.join(ROOT, "src", "engine"),
                           os.path.join(ROOT, "tools", "fb_tokenize_lines.c"), lib, "-o", exe]
                          + pk + ["-lm", "-lpthread"])
    return exe


def mutate(rng, line, pool):
    s = list(line)
    for _ in range(rng.randint(1, 6)):
        pos = rng.randint(0, len(s))
        r = rng.random()
        if r < 0.5:
            s[pos:pos] = list(rng.choice(pool))
        elif r < 0.8 and s:
            del s[min(pos, len(s) - 1)]
        else:
            s[pos:pos] = [chr(rng.choice([0x301, 0x316, 0x200d, 0xfe0f, 0x0, 0xfeff, 0x3000,
                                          0x130, 0x3a3, 0xdf, 0x1f600, 0x20000, 0x2b820]))]
    return "".join(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libfinbert_engine.a"))
    ap.add_argument("--vocab", default=os.path.join(ROOT, "test", "data", "bert-base-chinese-vocab.txt"))
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    texts = golden.random_strings(rng, args.n // 2)
    real = [json.loads(l) for l in open(os.path.join(golden.OUT, "real_lines.jsonl"), encoding="utf-8")]
    pool = golden.random_strings(random.Random(args.seed + 1), 500)
    texts += [mutate(rng, rng.choice(real), pool) for _ in range(args.n - len(texts))]

    unc, cas = golden.hf_tokenizers(args.vocab)
    bad = 0
    with tempfile.TemporaryDirectory() as work:
        exe = build_tool(args.lib, work)
        inp = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts)
        for mode, hf in (("uncased", unc), ("cased", cas)):
            out = subprocess.run([exe, args.vocab, mode], input=inp, capture_output=True,
                                 text=True, check=True).stdout.split("\n")
            for i, t in enumerate(texts):
                want = golden.canonical(hf, t)
                if out[i] != want:
                    bad += 1
                    if bad <= 20:
                        print("%s %s\n  hf:     %s\n  engine: %s" % (mode, json.dumps(t), want, out[i]))
    print("%d strings x 2 modes, %d differences" % (len(texts), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

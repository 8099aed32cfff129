#!/usr/bin/env python3
"""Measure where ICU and Hugging Face `tokenizers` disagree on the Unicode
properties the BERT tokenizer uses, and write the differences as
src/engine/text/unicode_hf_overrides.h.

Hugging Face's BertNormalizer / BertPreTokenizer rely on the Rust crates
`unicode_categories` (general categories: "other" for clean_text, Mn for
strip_accents, P* for punctuation) and `unicode-normalization-alignments`
(NFD), whose tables are older than ICU's, and on Rust's std (whitespace,
lowercase), whose tables may be newer.  This script asks the installed
`tokenizers` about every code point, asks the engine's own unicode.c
compiled against ICU alone (tools/fb_unicode_dump.c), and emits one range
table per property with Hugging Face's answer wherever they differ.  It then
rebuilds the dump tool with the table and checks that every code point now
agrees.

Usage (from the repository root, with `tokenizers` installed):
    python3 tools/gen_unicode_overrides.py [--check]
--check only verifies the committed table (exit status 1 on a difference).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import tokenizers
from tokenizers import normalizers, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src", "engine", "text", "unicode_hf_overrides.h")

FIELDS = ["clean", "cjk", "ws", "punct", "mn", "ccc", "decomp", "lower"]


def code_points():
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        yield c


def seq(s):
    return ".".join("%X" % ord(ch) for ch in s)


def build_dump(with_overrides, workdir):
    exe = os.path.join(workdir, "dump_hf" if with_overrides else "dump_icu")
    flags = subprocess.check_output(
        ["pkg-config", "--cflags", "--libs", "icu-uc", "icu-i18n"], text=True).split()
    cmd = ["cc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror",
           "-I" + os.path.join(ROOT, "src", "engine")]
    if not with_overrides:
        cmd.append("-DFB_UNICODE_NO_OVERRIDES")
    cmd += [os.path.join(ROOT, "tools", "fb_unicode_dump.c"),
            os.path.join(ROOT, "src", "engine", "unicode.c"),
            "-o", exe] + flags + ["-lpthread"]
    subprocess.check_call(cmd)
    out = subprocess.check_output([exe], text=True)
    table = {}
    for line in out.splitlines():
        f = line.split("\t")
        table[int(f[0], 16)] = f[1:]
    return table


def measure_hf(icu):
    """Hugging Face's answer for every code point ('-' where it is not
    observable and cannot matter)."""
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=False)
    cjk = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True,
                                     strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=True, lowercase=False)
    lower = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=True)
    nfd = normalizers.NFD()
    pre = pre_tokenizers.BertPreTokenizer()

    hf = {}
    for c in code_points():
        ch = chr(c)
        r = clean.normalize_str(ch)
        if r == "":
            cl = "1"
        elif r == " ":
            cl = "2"
        elif r == ch:
            cl = "0"
        else:
            raise SystemExit("clean_text gives %r for U+%04X" % (r, c))
        r = cjk.normalize_str(ch)
        if r == " " + ch + " ":
            cj = "1"
        elif r == ch:
            cj = "0"
        else:
            raise SystemExit("handle_chinese_chars gives %r for U+%04X" % (r, c))
        parts = pre.pre_tokenize_str("a" + ch + "a")
        if len(parts) == 2:
            ws, pu = "1", "-"
        elif len(parts) == 3:
            ws, pu = "0", "1"
        elif len(parts) == 1:
            ws, pu = "0", "0"
        else:
            raise SystemExit("pre-tokenizer gives %r for U+%04X" % (parts, c))
        d = nfd.normalize_str(ch)
        s = strip.normalize_str(ch)
        mn = ("1" if s == "" else "0") if d == ch else "-"
        hf[c] = [cl, cj, ws, pu, mn, "-", seq(d), seq(lower.normalize_str(ch))]

    # strip_accents must be NFD followed by dropping Mn: check it on the
    # decomposing code points with the Mn answers measured above.
    for c in code_points():
        d = nfd.normalize_str(chr(c))
        if d != chr(c):
            want = "".join(x for x in d if hf[ord(x)][4] != "1")
            got = strip.normalize_str(chr(c))
            if want != got:
                raise SystemExit("strip_accents(U+%04X) = %r, expected %r" % (c, got, want))

    # Combining classes, measured through canonical reordering against one
    # reference mark per class value (only non-decomposing code points with
    # a nonzero class in ICU; classes of assigned characters never change,
    # so the others are 0 in both).
    by_ccc = {}
    for c in sorted(icu):
        v = int(icu[c][5])
        if v and icu[c][6] == "%X" % c and v not in by_ccc:
            by_ccc[v] = c
    refs = sorted(by_ccc.items())

    def swapped(a, b):
        return nfd.normalize_str(chr(a) + chr(b)) == chr(b) + chr(a)

    # keep only reference marks whose classes Hugging Face agrees on: drop
    # the mark with the most inconsistent pairs until all pairs agree
    def consistent(a, b):
        (va, ma), (vb, mb) = a, b
        return swapped(ma, mb) == (vb < va) and swapped(mb, ma) == (va < vb)

    good = list(refs)
    while True:
        bad = [sum(not consistent(a, b) for b in good if b is not a) for a in good]
        if not good or max(bad) == 0:
            break
        del good[bad.index(max(bad))]
    if len(good) < len(refs) // 2:
        raise SystemExit("too few reference marks for combining classes")
    for c in code_points():
        if hf[c][6] != "%X" % c:
            continue                       # decomposes: class never used
        if int(icu[c][5]) == 0:
            hf[c][5] = "0"
            continue
        others = [(v, m) for v, m in good if m != c]
        obs = [(swapped(c, m), swapped(m, c)) for v, m in others]
        found = None
        for cand in [0] + [v for v, m in refs]:
            pred = [(cand != 0 and v < cand, cand != 0 and cand < v) for v, m in others]
            if pred == obs:
                found = cand
                break
        if found is None:
            raise SystemExit("cannot measure the combining class of U+%04X" % c)
        hf[c][5] = str(found)
    return hf


def diff(hf, mine):
    out = {f: [] for f in FIELDS}
    for c in code_points():
        for i, f in enumerate(FIELDS):
            if hf[c][i] != "-" and hf[c][i] != mine[c][i]:
                out[f].append(c)
    return out


def ranges(cps, value):
    out = []
    for c in cps:
        v = value(c)
        if out and out[-1][1] == c - 1 and out[-1][2] == v:
            out[-1][1] = c
        else:
            out.append([c, c, v])
    return out


def write_header(hf, d):
    lines = [
        "/*",
        " * unicode_hf_overrides.h — GENERATED by tools/gen_unicode_overrides.py;",
        " * do not edit.  Code points where Hugging Face tokenizers %s" % tokenizers.__version__,
        " * disagrees with ICU %s, with the Hugging Face answer." % icu_version(),
        " * Ranges are {first, last, value}; maps are {code point, length, mapping}.",
        " * Each table ends with a sentinel that is not searched.",
        " */",
        "",
    ]

    def range_table(name, field, conv):
        rs = ranges(d[field], lambda c: conv(hf[c][FIELDS.index(field)]))
        lines.append("/* %s: %d code points in %d ranges */" % (field, len(d[field]), len(rs)))
        lines.append("static const fb_uc_range %s[] = {" % name)
        for lo, hi, v in rs:
            lines.append("\t{0x%04X, 0x%04X, %d}," % (lo, hi, v))
        lines.append("\t{0x7FFFFFFF, 0x7FFFFFFF, 0}")
        lines.append("};")
        lines.append("")

    def map_table(name, field):
        lines.append("/* %s: %d code points */" % (field, len(d[field])))
        lines.append("static const fb_uc_map %s[] = {" % name)
        for c in d[field]:
            to = [int(x, 16) for x in hf[c][FIELDS.index(field)].split(".")]
            if len(to) > 4:
                raise SystemExit("mapping of U+%04X is too long" % c)
            lines.append("\t{0x%04X, %d, {%s}}," % (c, len(to), ", ".join("0x%04X" % x for x in to)))
        lines.append("\t{0x7FFFFFFF, 0, {0}}")
        lines.append("};")
        lines.append("")

    range_table("fb_hf_clean_overrides", "clean", int)
    range_table("fb_hf_ws_overrides", "ws", int)
    range_table("fb_hf_punct_overrides", "punct", int)
    range_table("fb_hf_mn_overrides", "mn", int)
    range_table("fb_hf_ccc_overrides", "ccc", int)
    map_table("fb_hf_decomp_overrides", "decomp")
    map_table("fb_hf_lower_overrides", "lower")
    with open(OUT, "w") as f:
        f.write("\n".join(lines))


def icu_version():
    return subprocess.check_output(["pkg-config", "--modversion", "icu-uc"], text=True).strip()


def summary(d):
    return ", ".join("%s %d" % (f, len(d[f])) for f in FIELDS)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        icu = build_dump(False, work)
        hf = measure_hf(icu)
        if not args.check:
            d = diff(hf, icu)
            if d["cjk"]:
                raise SystemExit("CJK ranges differ at %s: update fb_uc_is_cjk" %
                                 ", ".join("U+%04X" % c for c in d["cjk"][:10]))
            print("ICU alone vs Hugging Face, differing code points:", summary(d))
            write_header(hf, d)
            print("wrote", os.path.relpath(OUT, ROOT))
        mine = build_dump(True, work)
        d = diff(hf, mine)
        print("engine (ICU + overrides) vs Hugging Face:", summary(d))
        if any(d.values()):
            for f in FIELDS:
                for c in d[f][:5]:
                    print("  %s U+%04X: hf %s engine %s" % (f, c, hf[c], mine[c]))
            sys.exit(1)


if __name__ == "__main__":
    main()

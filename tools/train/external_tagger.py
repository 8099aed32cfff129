#!/usr/bin/env python3
"""Person names: finbert's NER model against an independently trained tagger, Baidu LAC (Apache-2.0), on the NER
validation splits. A measurement tool (issue 20: is an off-the-shelf tagger a shortcut to the person floor,
as a teacher or as a second opinion?).

LAC 2.1.2 (PyPI) ships its BiGRU-CRF model inside the source archive and needs PaddlePaddle; paddle 2.6 has no
`paddle.fluid`, which LAC's own driver imports, so this script feeds LAC's model through `paddle.inference` and
uses only LAC's segmenter and vocabulary code. Set up once, outside the system Python:

    python3 -m venv /tmp/pdenv && /tmp/pdenv/bin/pip install 'paddlepaddle==2.6.2' 'numpy<2'
    python3 -m pip download --no-deps -d /tmp/lac LAC==2.1.2 && tar -xzf /tmp/lac/LAC-2.1.2.tar.gz -C /tmp/lac

then, with the system Python (torch, transformers):

    python3 tools/train/external_tagger.py models/finbert-ner --lac-dir /tmp/lac/LAC-2.1.2 --lac-python /tmp/pdenv/bin/python

Scoring is finetune.ner_metrics' for persons: exact spans, predictions overlapping an ignored gold span left
out, corpora that do not annotate persons (cfsc) left out.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import types


def lac_tagger(lac_dir, threads=1):
    """A function texts -> per-character LAC tags ('PER-B', 'n-I', ...) using LAC's model and code."""
    import numpy as np
    from paddle.inference import Config, create_predictor
    # LAC/__init__ imports LAC/lac.py, which needs paddle.fluid: load the three modules used here on their own
    pkg = types.ModuleType("LAC")
    pkg.__path__ = [os.path.join(lac_dir, "LAC")]
    sys.modules["LAC"] = pkg
    mods = {}
    for name in ("prefix_tree", "segment", "reader"):
        spec = importlib.util.spec_from_file_location("LAC." + name, os.path.join(lac_dir, "LAC", name + ".py"))
        mods[name] = importlib.util.module_from_spec(spec)
        sys.modules["LAC." + name] = mods[name]
        spec.loader.exec_module(mods[name])
    root = os.path.join(lac_dir, "LAC", "lac_model")
    args = types.SimpleNamespace(word_dict_path=f"{root}/conf/word.dic", label_dict_path=f"{root}/conf/tag.dic",
                                 word_rep_dict_path=f"{root}/conf/q2b.dic", model="lac")
    ds = mods["reader"].Dataset(args)
    seg = mods["segment"].Segment(dict_path=f"{root}/conf/small_seg.dic")
    cfg = Config(f"{root}/model")
    cfg.disable_glog_info()
    cfg.switch_ir_optim(False)
    cfg.set_cpu_math_library_num_threads(threads)
    pred = create_predictor(cfg)

    def run(texts):
        # as LAC's LacModel.texts2tensor / parse_result: dictionary words are one input unit, tagged once
        lod, data, lens = [0], [], []
        for t in texts:
            ids, wl = ds.text_to_ids(seg.fast_cut(t))
            data += ids
            lod.append(lod[-1] + len(ids))
            lens.append(wl)
        h = pred.get_input_handle("words")
        arr = np.array(data, "int64").reshape(-1, 1)
        h.reshape(list(arr.shape))
        h.copy_from_cpu(arr)
        h.set_lod([lod])
        pred.run()
        o = pred.get_output_handle(pred.get_output_names()[0])
        dec, olod = o.copy_to_cpu().reshape(-1), o.lod()[0]
        out = []
        for i, t in enumerate(texts):
            tags = []
            for tg, n in zip((ds.id2label_dict[str(x)] for x in dec[olod[i]:olod[i + 1]]), lens[i]):
                tags += [tg] + [tg[:-2] + "-I"] * (n - 1)
            if len(tags) != len(t):
                raise SystemExit(f"LAC tags {len(tags)} characters of a {len(t)}-character text")
            out.append(tags)
        return out
    return run


def tag_spans(tags, want):
    """[start, end, type) spans of the wanted LAC types from per-character X-B / X-I tags"""
    res, s, cur = [], 0, None
    for i, tg in enumerate(tags + ["O-B"]):
        typ, bi = tg[:-2], tg[-1]
        if bi == "B" or typ != cur:
            if cur in want:
                res.append((s, i, cur))
            s, cur = i, typ
    return res


def run_lac(inp, out, lac_dir):
    run = lac_tagger(lac_dir)
    texts = [json.loads(line)["text"] for line in open(inp, encoding="utf-8")]
    with open(out, "w", encoding="utf-8") as f:
        for k in range(0, len(texts), 64):
            batch = texts[k:k + 64]
            nonempty = [t for t in batch if t]
            tagged = iter(run(nonempty) if nonempty else [])
            for t in batch:
                sp = tag_spans(next(tagged), ("PER",)) if t else []
                f.write(json.dumps([[s, e] for s, e, _ in sp]) + "\n")


def our_spans(model_dir, examples):
    """Spans (start, end, type) of the exported finbert NER model (fp32, Viterbi with its CRF), as finetune.py
    decodes them."""
    from safetensors.torch import load_file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common
    import finetune
    import tasks
    common.threads()
    data = {"labels": tasks.NER_LABELS, "kind": "tok", "crf": True}
    model = finetune.build_model(data, "ner", model_dir).float()
    sd = load_file(os.path.join(model_dir, "model.safetensors"))
    model.crf.load_state_dict({k[4:]: v.float() for k, v in sd.items() if k.startswith("crf.")})
    enc = finetune.encode(common.tokenizer(), data, examples, 512)
    out = []
    for r, lg in zip(enc, finetune.predict(model, enc, "tok")):
        sp = finetune.decode_spans(tasks.NER_LABELS, finetune.token_tags(model, lg), r["offsets"])
        out.append(sp)
    return out


def f1(rows):
    tp = fp = fn = 0
    for gold, pred in rows:
        tp += len(gold & pred)
        fp += len(pred - gold)
        fn += len(gold - pred)
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return 2 * p * r / max(p + r, 1e-9), p, r, tp + fn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", help="exported finbert NER model directory")
    ap.add_argument("--lac-dir", required=True, help="the unpacked LAC-2.1.2 source archive")
    ap.add_argument("--lac-python", default=sys.executable, help="a Python with paddlepaddle 2.6")
    ap.add_argument("--run-lac", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run_lac:
        return run_lac(*a.run_lac, a.lac_dir)
    if not a.model:
        ap.error("model directory required")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tasks
    val = tasks.ner()["val"]
    names = ["all"] + sorted(k for k in val if k != "all")
    ex = [e for k in ("all", "msra-ner-train") for e in val[k]]
    with tempfile.TemporaryDirectory() as td:
        with open(os.path.join(td, "in.jsonl"), "w", encoding="utf-8") as f:
            for e in ex:
                f.write(json.dumps({"text": e["text"]}, ensure_ascii=False) + "\n")
        subprocess.run([a.lac_python, os.path.abspath(__file__), "--lac-dir", a.lac_dir, "--run-lac",
                        os.path.join(td, "in.jsonl"), os.path.join(td, "out.jsonl")], check=True)
        lac = [{tuple(s) for s in json.loads(line)} for line in open(os.path.join(td, "out.jsonl"))]
    spans = our_spans(a.model, ex)
    ours = [{(s, e) for s, e, t in sp if t == "person"} for sp in spans]
    if len(lac) != len(ex) or len(ours) != len(ex):
        raise SystemExit("prediction count mismatch")

    def scored(i, pred):
        e = ex[i]
        return {p for p in pred if not any(p[0] < t and s < p[1] for s, t in e["ignore"])}

    def free(i):  # LAC's names where finbert tagged no entity of any type
        return ours[i] | {p for p in lac[i] if not any(p[0] < t and s < p[1] for s, t, _ in spans[i])}

    arms = {"finbert": lambda i: ours[i], "LAC": lambda i: lac[i], "union": lambda i: ours[i] | lac[i],
            "intersection": lambda i: ours[i] & lac[i], "finbert + LAC where finbert tagged nothing": free}
    n_all = len(val["all"])
    print("person F1 (precision / recall, gold names) on the NER validation splits")
    for arm, pick in arms.items():
        print(f"\n{arm}:")
        for name in names:
            idx = ([i for i in range(n_all) if name == "all" or ex[i]["source"] == name] if name != "msra-ner-train"
                   else range(n_all, len(ex)))
            idx = [i for i in idx if "person" in ex[i]["types"]]
            if not idx:
                continue
            rows = [({(s, t) for s, t, lab in ex[i]["spans"] if lab == "person"}, scored(i, pick(i))) for i in idx]
            f, p, r, g = f1(rows)
            print(f"  {name:18s} F1 {f:.3f}  P {p:.3f}  R {r:.3f}  ({g} names)")


if __name__ == "__main__":
    main()

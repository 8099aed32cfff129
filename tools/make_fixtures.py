#!/usr/bin/env python3
"""Generate the engine's test fixtures and golden outputs.

Small random-weight checkpoints of every architecture/head the engine
supports, written in Hugging Face layout with the real Chinese BERT
vocabulary, plus golden token ids, logits, hidden states and embeddings
computed by `transformers` on real Chinese financial sentences from
../shared/data.  Output (committed, so `make test` needs no Python):

  test/fixtures/models/<name>/{config.json,vocab.txt,tokenizer_config.json,model.safetensors}
  test/fixtures/golden/forward.json

Usage: python3 tools/make_fixtures.py [--shared ../shared]
Requires: torch, transformers, safetensors, tokenizers (developer tool).
"""
import argparse
import csv
import json
import os
import random
import shutil

import torch
from safetensors.torch import save_file
from transformers import (AlbertConfig, AlbertForSequenceClassification,
                          BertConfig, BertForSequenceClassification,
                          BertForTokenClassification, BertModel,
                          BertTokenizerFast, ElectraConfig,
                          ElectraForSequenceClassification,
                          ElectraForTokenClassification)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_MODELS = os.path.join(ROOT, "test", "fixtures", "models")
OUT_GOLDEN = os.path.join(ROOT, "test", "fixtures", "golden")

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=512,
             type_vocab_size=2)


def randomize(model, seed):
    """Weights large enough that outputs are far from uniform (random
    initialisation at std 0.02 makes every label tie)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))
    model.eval()
    return model


def round_weights(model, dtype):
    """Round parameters through dtype so the golden equals what a reader
    of the saved half-precision file computes in fp32."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def save_model(model, name, vocab, dtype=torch.float32, extra_config=None):
    d = os.path.join(OUT_MODELS, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(d)
    if extra_config:
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        cfg.update(extra_config)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, ensure_ascii=False)
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    # tied or shared parameters are saved once, as save_pretrained does
    seen = {}
    for k in list(state):
        ptr = model.state_dict()[k].data_ptr()
        if ptr in seen and model.state_dict()[k].shape == model.state_dict()[seen[ptr]].shape:
            del state[k]
        else:
            seen[ptr] = k
    save_file(state, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(vocab, os.path.join(d, "vocab.txt"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenize_chinese_chars": True,
                   "strip_accents": None, "model_max_length": 512,
                   "tokenizer_class": "BertTokenizer"}, f, indent=2)
    return d


def load_texts(shared, rng):
    texts = []
    with open(os.path.join(shared, "data/choice-news-headlines/CH.csv"), encoding="utf-8") as f:
        rows = [r["Text"] for r in csv.DictReader(f)]
    texts += rng.sample(rows, 10)
    with open(os.path.join(shared, "data/bbt-fincuge/finfe/train_list.json"), encoding="utf-8") as f:
        data = json.load(f)
    finfe = [d[0] if isinstance(d, list) else d.get("text", "") for d in data]
    texts += rng.sample([t for t in finfe if t], 8)
    with open(os.path.join(shared, "data/cluener2020/train.json"), encoding="utf-8") as f:
        cl = [json.loads(line)["text"] for line in f]
    texts += rng.sample(cl, 8)
    # edge cases: empty, one character, mixed scripts, long texts
    texts += ["", "涨", "Apple发布iPhone 15，股价上涨3.5%！", "  贵州茅台（600519.SH）  ",
              "UNwant\u00e9d,running 华为Mate60"]
    long_text = "".join(rng.sample(rows, 40))
    texts.append(long_text[:700])      # beyond 512 tokens: truncated
    texts.append(long_text[:510])      # exactly at the limit
    return texts


def reference_spans(text, tok, logits, id2label):
    """Independent reference of the engine's BIO decoding: argmax per
    token, '##' pieces join the word before them, I-x without an open x
    entity starts one (as the transformers pipeline does)."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    toks = tok.convert_ids_to_tokens(enc["input_ids"])
    offs = enc["offset_mapping"]
    labels = [id2label[int(torch.tensor(row).argmax())] for row in logits]
    for i in range(1, len(toks)):
        if toks[i].startswith("##") and offs[i][0] == offs[i - 1][1]:
            prev = labels[i - 1]
            labels[i] = "O" if prev == "O" else "I-" + prev[2:]
    spans, cur = [], None
    for i, lab in enumerate(labels):
        if lab == "O":
            if cur:
                spans.append(cur)
            cur = None
            continue
        tag, typ = lab[0], lab[2:]
        if tag == "B" or cur is None or cur[1] != typ:
            if cur:
                spans.append(cur)
            cur = [i, typ, i]
        else:
            cur[2] = i
    if cur:
        spans.append(cur)
    return [[text[offs[a][0]:offs[b][1]], typ, offs[a][0], offs[b][1]] for a, typ, b in spans]


def viterbi(emissions, start, trans, end):
    """Reference CRF decoding (pytorch-crf semantics): argmax over tag
    paths of start[y0] + sum emissions[t, y_t] + sum trans[y_{t-1}, y_t]
    + end[y_T]."""
    n, L = emissions.shape
    score = start + emissions[0]
    back = []
    for t in range(1, n):
        total = score.unsqueeze(1) + trans + emissions[t].unsqueeze(0)   # [from, to]
        score, idx = total.max(0)
        back.append(idx)
    best = int((score + end).argmax())
    path = [best]
    for idx in reversed(back):
        best = int(idx[best])
        path.append(best)
    return path[::-1]


def crf_spans(text, tok, emissions, start, trans, end, id2label):
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    if not enc["input_ids"]:
        return []
    labels = viterbi(emissions, start, trans, end)
    # reuse the argmax reference decoder on one-hot "logits" of the path
    onehot = torch.full((len(labels), len(id2label)), -1e4)
    onehot[torch.arange(len(labels)), torch.tensor(labels)] = 0.0
    return reference_spans(text, tok, onehot.tolist(), id2label)


def golden_for(model, tok, texts, kind):
    out = {}
    enc = [tok(t, truncation=True, max_length=512) for t in texts]
    out["ids"] = [e["input_ids"] for e in enc]
    with torch.no_grad():
        rows = []
        for e in enc:
            ids = torch.tensor([e["input_ids"]])
            res = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                        token_type_ids=torch.zeros_like(ids))
            if kind == "sequence":
                rows.append(res.logits[0].tolist())
            elif kind == "token":
                rows.append(res.logits[0].tolist())
                if len(e["input_ids"]) < 512:
                    out.setdefault("spans", []).append(reference_spans(
                        texts[len(rows) - 1], tok, res.logits[0][1:-1].tolist(),
                        model.config.id2label))
                else:
                    out.setdefault("spans", []).append(None)
            else:
                h = res.last_hidden_state[0]
                rows.append({"cls": h[0].tolist(), "mean": h.mean(0).tolist(),
                             "pooler": res.pooler_output[0].tolist(),
                             "hidden": h.tolist() if len(e["input_ids"]) <= 64 else None})
        out["outputs"] = rows
        # a padded batch of 7 through transformers: the engine never pads,
        # but the golden shows padding-free agreement for mixed lengths
        batch = tok(texts[:7], truncation=True, max_length=512, padding=True, return_tensors="pt")
        if kind != "encoder":
            res = model(**batch)
            out["batch7_logits"] = [
                res.logits[i][: int(batch["attention_mask"][i].sum())].tolist()
                if kind == "token" else res.logits[i].tolist() for i in range(7)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    args = ap.parse_args()
    rng = random.Random(20261122)
    torch.manual_seed(0)
    vocab = os.path.join(args.shared, "data/vocab/bert-base-chinese-vocab.txt")
    os.makedirs(OUT_GOLDEN, exist_ok=True)
    texts = load_texts(args.shared, rng)
    tok = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    V = tok.vocab_size

    specs = []
    # name, constructor, dtype for the file, kind, extra config
    sent = {0: "negative", 1: "neutral", 2: "positive"}
    cfg = BertConfig(vocab_size=V, hidden_act="gelu", num_labels=3, id2label=sent,
                     label2id={v: k for k, v in sent.items()}, **SMALL)
    specs.append(("cls", BertForSequenceClassification(cfg), torch.float32, "sequence", 1))
    specs.append(("cls_f16", BertForSequenceClassification(cfg), torch.float16, "sequence", 1))
    types = {0: "earnings", 1: "merger", 2: "policy", 3: "market"}
    cfg = BertConfig(vocab_size=V, hidden_act="gelu_new", num_labels=4, id2label=types,
                     label2id={v: k for k, v in types.items()},
                     problem_type="multi_label_classification", **SMALL)
    specs.append(("multilabel", BertForSequenceClassification(cfg), torch.bfloat16, "sequence", 2))
    ner = {0: "O", 1: "B-company", 2: "I-company", 3: "B-person", 4: "I-person"}
    cfg = BertConfig(vocab_size=V, hidden_act="gelu", num_labels=5, id2label=ner,
                     label2id={v: k for k, v in ner.items()}, **SMALL)
    specs.append(("ner", BertForTokenClassification(cfg), torch.float16, "token", 3))
    cfg = BertConfig(vocab_size=V, hidden_act="gelu", **SMALL)
    specs.append(("encoder", BertModel(cfg, add_pooling_layer=True), torch.float32, "encoder", 4))
    cfg = ElectraConfig(vocab_size=V, embedding_size=16, hidden_act="gelu", num_labels=3,
                        id2label=sent, label2id={v: k for k, v in sent.items()}, **SMALL)
    specs.append(("electra_cls", ElectraForSequenceClassification(cfg), torch.float16, "sequence", 5))
    cfg = ElectraConfig(vocab_size=V, embedding_size=16, hidden_act="gelu", num_labels=5,
                        id2label=ner, label2id={v: k for k, v in ner.items()}, **SMALL)
    specs.append(("electra_ner", ElectraForTokenClassification(cfg), torch.float16, "token", 6))
    cfg = AlbertConfig(vocab_size=V, embedding_size=16, hidden_act="gelu_new", num_labels=3,
                       id2label=sent, label2id={v: k for k, v in sent.items()}, **SMALL)
    specs.append(("albert_cls", AlbertForSequenceClassification(cfg), torch.float16, "sequence", 7))

    golden = {"texts": texts, "models": {}}
    for name, model, dtype, kind, seed in specs:
        randomize(model, seed if name != "cls_f16" else 1)
        if dtype != torch.float32:
            round_weights(model, dtype)
        save_model(model, name, vocab, dtype)
        g = golden_for(model, tok, texts, kind)
        g["kind"] = kind
        g["labels"] = [model.config.id2label[i] for i in range(model.config.num_labels)] \
            if kind != "encoder" else []
        golden["models"][name] = g
        print(f"{name}: {kind}, {dtype}, {sum(p.numel() for p in model.parameters())} parameters")

    # NER with a CRF layer (pytorch-crf tensor names): the ner model plus
    # transitions strong enough to change the decoding
    ner_model = [m for n, m, *_ in specs if n == "ner"][0]
    g = torch.Generator().manual_seed(8)
    L = ner_model.config.num_labels
    crf = {"crf.transitions": 0.7 * torch.randn(L, L, generator=g),
           "crf.start_transitions": torch.randn(L, generator=g),
           "crf.end_transitions": torch.randn(L, generator=g)}
    d = save_model(ner_model, "ner_crf", vocab, torch.float16)
    from safetensors.torch import load_file
    state = load_file(os.path.join(d, "model.safetensors"))
    state.update({k: v.to(torch.float16) for k, v in crf.items()})
    save_file(state, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    crf = {k: v.to(torch.float16).to(torch.float32) for k, v in crf.items()}
    spans = []
    with torch.no_grad():
        for text in texts:
            e = tok(text, truncation=True, max_length=512)
            if len(e["input_ids"]) >= 512:
                spans.append(None)
                continue
            ids = torch.tensor([e["input_ids"]])
            em = ner_model(input_ids=ids).logits[0][1:-1]
            spans.append(crf_spans(text, tok, em, crf["crf.start_transitions"],
                                   crf["crf.transitions"], crf["crf.end_transitions"],
                                   ner_model.config.id2label) if len(em) else [])
    golden["models"]["ner_crf"] = {"kind": "token", "spans": spans,
                                   "outputs": golden["models"]["ner"]["outputs"],
                                   "ids": golden["models"]["ner"]["ids"],
                                   "labels": golden["models"]["ner"]["labels"]}

    with open(os.path.join(OUT_GOLDEN, "forward.json"), "w") as f:
        json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
    print("texts:", len(texts), "token lengths:", sorted(len(i) for i in golden["models"]["cls"]["ids"]))


if __name__ == "__main__":
    main()

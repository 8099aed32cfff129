#!/usr/bin/env python3
"""Benchmark models (random weights; speed does not depend on them).

Writes Hugging Face directories and ONNX exports into bench/work/:
  bert-base/   12 layers, hidden 768, 12 heads, intermediate 3072 (BERT-base,
               FinBERT-base, RoBERTa-wwm-ext geometry), 3-label classifier
  small/       the starter-model geometry (see tools/train), 3-label classifier
Each directory gets model.onnx (fp32) and model.int8.onnx (ONNX Runtime
dynamic quantisation) for the reference runs.

Usage: python3 bench/make_models.py [--shared ../shared]
"""
import argparse
import json
import os
import shutil

import torch
from transformers import BertConfig, BertForSequenceClassification

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work")
GEOMETRIES = {
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                  intermediate_size=1024),
}


def export_onnx(model, d):
    model.eval()
    ids = torch.randint(1000, 20000, (2, 16))
    onnx_path = os.path.join(d, "model.onnx")
    torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), onnx_path,
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["logits"],
                      dynamic_axes={k: {0: "batch", 1: "seq"} for k in
                                    ["input_ids", "attention_mask", "token_type_ids"]},
                      opset_version=17, dynamo=False)
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(onnx_path, os.path.join(d, "model.int8.onnx"), weight_type=QuantType.QInt8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared"))
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    vocab = os.path.join(args.shared, "data/vocab/bert-base-chinese-vocab.txt")
    if not os.path.exists(vocab):
        vocab = os.path.join(HERE, "..", "test/fixtures/models/cls/vocab.txt")
    torch.manual_seed(0)
    for name, geo in GEOMETRIES.items():
        if args.only and name != args.only:
            continue
        d = os.path.join(WORK, name)
        os.makedirs(d, exist_ok=True)
        cfg = BertConfig(vocab_size=21128, max_position_embeddings=512, num_labels=3,
                         id2label={0: "negative", 1: "neutral", 2: "positive"},
                         label2id={"negative": 0, "neutral": 1, "positive": 2}, **geo)
        model = BertForSequenceClassification(cfg).eval()
        model.config.architectures = ["BertForSequenceClassification"]
        model.save_pretrained(d, safe_serialization=True)
        shutil.copy(vocab, os.path.join(d, "vocab.txt"))
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({"do_lower_case": True}, f)
        export_onnx(model, d)
        print(name, "->", d)


if __name__ == "__main__":
    main()

"""fp16 export of a fine-tuned model + verification that it loads with transformers.

Writes config.json (id2label/label2id/problem_type), model.safetensors (fp16, standard tensor names),
vocab.txt, tokenizer_config.json (+ special_tokens_map.json as written by transformers; no tokenizer.json).
Then reloads the directory with AutoModelFor{Sequence,Token}Classification and BertTokenizerFast and
compares: token ids vs the training tokenizer, and logits of the fp16 weights (computed in fp32) vs the
fp32 training weights on up to 1000 validation texts.
"""
import copy
import json
import os
import shutil

import torch

import common


def drop_tokenizer_json(d):
    """finbert and BertTokenizerFast both build the tokenizer from vocab.txt + tokenizer_config.json;
    tokenizer.json (~200 KB a model) is left out to keep models/ under 60 MB with five models."""
    p = os.path.join(d, "tokenizer.json")
    if os.path.exists(p):
        os.remove(p)


def tidy(d):
    """Files finbert and BertTokenizerFast do not need, which transformers 4.x writes: special_tokens_map.json
    (the special tokens are the defaults) and config.json's _name_or_path (a path on the training machine)."""
    p = os.path.join(d, "special_tokens_map.json")
    if os.path.exists(p):
        os.remove(p)
    p = os.path.join(d, "config.json")
    cfg = json.load(open(p, encoding="utf-8"))
    if cfg.pop("_name_or_path", None) is not None:
        with open(p, "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")


def weights_dtype(path):
    """dtype of the tensors as stored (transformers loads them as float32, so ask the file, not the model)."""
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        return str(f.get_tensor(next(iter(f.keys()))).dtype)


def export(model, data, out, encv, info):
    from transformers import (AutoModelForSequenceClassification, AutoModelForTokenClassification,
                              BertTokenizerFast)
    tmp = out.rstrip("/") + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    m16 = copy.deepcopy(model).half().eval()
    m16.config.architectures = [type(model).__name__]
    for k, v in data.get("config", {}).items():  # e.g. industry's finbert_no_industry_label
        setattr(m16.config, k, v)
    m16.save_pretrained(tmp, safe_serialization=True)
    tok = common.tokenizer()
    tok.save_pretrained(tmp)
    shutil.copy(common.VOCAB, os.path.join(tmp, "vocab.txt"))
    drop_tokenizer_json(tmp)
    tidy(tmp)
    for fn in os.listdir(tmp):  # safetensors writes 0600; the database server must be able to read the files
        os.chmod(os.path.join(tmp, fn), 0o644)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.replace(tmp, out)

    # ---- verification
    auto = AutoModelForTokenClassification if data["kind"] == "tok" else AutoModelForSequenceClassification
    loaded = auto.from_pretrained(out)
    dtype_on_disk = weights_dtype(os.path.join(out, "model.safetensors"))
    loaded = loaded.float().eval()
    tk = BertTokenizerFast.from_pretrained(out)
    first = next(iter(data["val"]))
    ex = data["val"][first][:1000]
    texts = [e["text"] for e in ex]
    ref = common.tokenizer()
    maxlen = info["max_len"]
    same_ids = all(a == b for a, b in zip(tk(texts)["input_ids"], ref(texts)["input_ids"]))
    model.eval()
    maxdiff, agree, n = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            b = tk(texts[i:i + 32], padding=True, truncation=True, max_length=maxlen, return_tensors="pt")
            la = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            lb = loaded(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            if data["kind"] == "tok":
                msk = b["attention_mask"].bool()
                la, lb = la[msk], lb[msk]
            maxdiff = max(maxdiff, float((la - lb).abs().max()))
            if data["kind"] == "multi":
                agree += int(((la > 0) == (lb > 0)).all(-1).sum())
            else:
                agree += int((la.argmax(-1) == lb.argmax(-1)).sum())
            n += la.shape[0]
    model.train()
    size = os.path.getsize(os.path.join(out, "model.safetensors"))
    return {"dir": os.path.relpath(out, common.REPO), "weights_dtype": dtype_on_disk,
            "safetensors_bytes": size, "tokenizer_ids_identical": bool(same_ids),
            "fp16_vs_fp32_max_abs_logit_diff": round(maxdiff, 5),
            "fp16_vs_fp32_same_prediction": round(agree / max(1, n), 5), "checked_items": n}

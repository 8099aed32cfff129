"""A plain-PyTorch BERT (sequence and token classification heads) read
straight from a model directory's model.safetensors, for bench/gpu.py: the
PyTorch side of the GPU comparison without transformers (a GPU machine may
have torch only).

Attention is torch.nn.functional.scaled_dot_product_attention (FlashAttention
or memory-efficient kernels where PyTorch picks them); a key-padding mask is
passed only when a batch has padding.  GELU is the erf form BERT uses.
Checked against transformers on the CPU by `python3 bench/torch_bert.py DIR`
(where transformers is installed).
"""
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[meta["dtype"]])
        out[name] = t.reshape(meta["shape"]) if meta["shape"] else t
    return out


def attention(q, k, v, mask):
    """SDPA where torch has it (2.0+), else the same in plain operations."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    s = (q @ k.transpose(-1, -2)) / (q.shape[-1] ** 0.5)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


class TorchBert:
    """BERT encoder + heads; weights as given (fp32 / fp16) on device."""

    def __init__(self, model_dir, device="cuda", dtype=torch.float16):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""

        def get(name, with_prefix=True):
            key = (prefix if with_prefix else "") + name
            t = w.get(key)
            if t is None and "LayerNorm" in key:
                t = w.get(key.replace(".weight", ".gamma").replace(".bias", ".beta"))
            return None if t is None else t.to(device=device, dtype=dtype)

        self.H = self.cfg["hidden_size"]
        self.heads = self.cfg["num_attention_heads"]
        self.eps = self.cfg.get("layer_norm_eps", 1e-12)
        self.act = self.cfg.get("hidden_act", "gelu")
        self.word = get("embeddings.word_embeddings.weight")
        self.pos = get("embeddings.position_embeddings.weight")
        self.type0 = get("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(self.cfg["num_hidden_layers"]):
            b = "encoder.layer.%d." % i
            qkv_w = torch.cat([get(b + "attention.self.%s.weight" % p) for p in ("query", "key", "value")])
            qkv_b = torch.cat([get(b + "attention.self.%s.bias" % p) for p in ("query", "key", "value")])
            self.layers.append(dict(
                qkv=(qkv_w, qkv_b),
                ao=(get(b + "attention.output.dense.weight"), get(b + "attention.output.dense.bias")),
                ln1=(get(b + "attention.output.LayerNorm.weight"), get(b + "attention.output.LayerNorm.bias")),
                inter=(get(b + "intermediate.dense.weight"), get(b + "intermediate.dense.bias")),
                out=(get(b + "output.dense.weight"), get(b + "output.dense.bias")),
                ln2=(get(b + "output.LayerNorm.weight"), get(b + "output.LayerNorm.bias"))))
        self.pooler = (get("pooler.dense.weight"), get("pooler.dense.bias"))
        self.cls = (get("classifier.weight", False), get("classifier.bias", False))

    def gelu(self, x):
        if self.act == "gelu":
            return F.gelu(x)
        if self.act == "relu":
            return F.relu(x)
        return F.gelu(x, approximate="tanh")

    def encode(self, ids, mask=None):
        """ids [B, L] int64; mask [B, L] bool (True = token) or None."""
        B, L = ids.shape
        H, nh = self.H, self.heads
        x = self.word[ids] + self.pos[:L] + self.type0
        x = F.layer_norm(x, (H,), *self.emb_ln, eps=self.eps)
        am = None if mask is None else mask[:, None, None, :]
        for ly in self.layers:
            qkv = F.linear(x, *ly["qkv"]).view(B, L, 3, nh, H // nh).permute(2, 0, 3, 1, 4)
            a = attention(qkv[0], qkv[1], qkv[2], am)
            a = a.transpose(1, 2).reshape(B, L, H)
            x = F.layer_norm(F.linear(a, *ly["ao"]) + x, (H,), *ly["ln1"], eps=self.eps)
            h = self.gelu(F.linear(x, *ly["inter"]))
            x = F.layer_norm(F.linear(h, *ly["out"]) + x, (H,), *ly["ln2"], eps=self.eps)
        return x

    def sequence_logits(self, ids, mask=None):
        x = self.encode(ids, mask)
        pooled = torch.tanh(F.linear(x[:, 0], *self.pooler))
        return F.linear(pooled, *self.cls)

    def token_logits(self, ids, mask=None):
        return F.linear(self.encode(ids, mask), *self.cls)


def main():
    """Checks this implementation against transformers on the CPU."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification
    d = sys.argv[1]
    ours = TorchBert(d, device="cpu", dtype=torch.float32)
    ids = torch.randint(1000, ours.cfg["vocab_size"], (3, 17))
    ids[:, 0] = 101
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 9:] = False
    arch = ours.cfg.get("architectures", [""])[0]
    if arch.endswith("TokenClassification"):
        ref = AutoModelForTokenClassification.from_pretrained(d).eval()
        got = ours.token_logits(ids, mask)
    else:
        ref = AutoModelForSequenceClassification.from_pretrained(d).eval()
        got = ours.sequence_logits(ids, mask)
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask.long()).logits
    if got.dim() == 3:
        got, want = got[mask], want[mask]
    diff = (got - want).abs().max().item()
    print("%s: max |logit diff| against transformers %.2e" % (d, diff))
    sys.exit(0 if diff < 1e-4 else 1)


if __name__ == "__main__":
    main()

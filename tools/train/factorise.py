"""A factorised-embedding (ELECTRA-layout) encoder made from the shipped BERT encoder, for issue 20's question
"does a factorised embedding buy quality within the size budget?".

    python tools/train/factorise.py --check            # E = H reproduces the BERT encoder (self-test)
    # used by pretrain.py --init models/finbert-base --embedding-size 128 [--layers 5]

Layout (Hugging Face ElectraModel, which finbert loads as ELECTRA): word, position and type embeddings of width
E, LayerNorm over E, then embeddings_project (E -> H); the transformer layers are BERT's. At E = 128 the word
table shrinks from 9,937 x 256 to 9,937 x 128: 1.24 M fewer parameters, 2.5 MB less per fp16 model.

Initialisation from a BERT encoder (so that continued pre-training starts near the trained model, not from
scratch). BERT computes y = g * sqrt(H) * xc / |xc| + b, where xc is the sum of the word, position and type rows
with each row's mean removed (LayerNorm ignores a constant added to every coordinate). With P the top E-1
right singular vectors of the stacked centred rows and R an E x (E-1) orthonormal basis orthogonal to the
all-ones vector:
    E-dim rows     = centred rows @ P @ R^T      (their sum has zero mean over E, so LayerNorm_E only scales)
    LayerNorm_E    = identity affine (gain 1, bias 0)
    projection     = diag(g) * sqrt(H / E) * P @ R^T,  bias b
which reproduces BERT exactly when E = H (the centred rows span H-1 dimensions) and drops the smallest
singular directions below it. Extra layers (--layers > the source's) are appended with zeroed output
projections and the last layer's LayerNorm parameters, so each starts close to the identity (E = 128, a fifth
layer: cosine 0.994 with the four-layer output per token, RMS change 0.11 against an output RMS of 0.95).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def ones_complement(E):
    """E x (E-1) matrix with orthonormal columns, all orthogonal to the all-ones vector."""
    m = torch.eye(E, dtype=torch.float64) - 1.0 / E
    q, _ = torch.linalg.qr(m[:, 1:])
    return q


def factorise_embeddings(word, pos, typ, gain, bias, E):
    """Returns (word_E, pos_E, type_E, proj_weight H x E, proj_bias H) as float32 tensors (see module doc)."""
    H = word.shape[1]
    if not 2 <= E <= H:
        raise SystemExit(f"embedding size {E} outside 2..{H}")
    rows = [t.double() - t.double().mean(1, keepdim=True) for t in (word, pos, typ)]
    _, _, vt = torch.linalg.svd(torch.cat(rows), full_matrices=False)
    P = vt[:E - 1].T                                   # H x (E-1)
    R = ones_complement(E)                             # E x (E-1)
    M = P @ R.T                                        # H x E
    out = [r @ M for r in rows]
    proj = gain.double()[:, None] * (H / E) ** 0.5 * M
    return [t.float() for t in out] + [proj.float(), bias.float().clone()]


def electra_config(bert_cfg, E, layers):
    from transformers import ElectraConfig
    keep = ("vocab_size", "hidden_size", "num_attention_heads", "intermediate_size", "hidden_act",
            "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
            "initializer_range", "layer_norm_eps", "pad_token_id")
    kw = {k: getattr(bert_cfg, k) for k in keep}
    return ElectraConfig(embedding_size=E, num_hidden_layers=layers, tie_word_embeddings=True, **kw)


def init_electra(model, bert_state, bert_cfg):
    """Fills model (ElectraForMaskedLM or ElectraModel) from a BertModel state dict; returns a description."""
    enc = model.electra if hasattr(model, "electra") else model
    E, L = model.config.embedding_size, model.config.num_hidden_layers
    Ls = bert_cfg.num_hidden_layers
    if L < Ls:
        raise SystemExit(f"--layers {L} < the source's {Ls}: dropping trained layers is not supported")
    s = {k[5:] if k.startswith("bert.") else k: v.float() for k, v in bert_state.items()}
    we, pe, te, pw, pb = factorise_embeddings(
        s["embeddings.word_embeddings.weight"], s["embeddings.position_embeddings.weight"],
        s["embeddings.token_type_embeddings.weight"], s["embeddings.LayerNorm.weight"],
        s["embeddings.LayerNorm.bias"], E)
    if E == model.config.hidden_size:
        raise SystemExit("E = H has no embeddings_project in ElectraModel: use the BERT encoder itself")
    own = enc.state_dict()
    new = {"embeddings.word_embeddings.weight": we, "embeddings.position_embeddings.weight": pe,
           "embeddings.token_type_embeddings.weight": te,
           "embeddings.LayerNorm.weight": torch.ones(E), "embeddings.LayerNorm.bias": torch.zeros(E),
           "embeddings_project.weight": pw, "embeddings_project.bias": pb}
    last = f"encoder.layer.{Ls - 1}."
    for k in own:
        if not k.startswith("encoder.layer."):
            continue
        i = int(k.split(".")[2])
        rest = k.split(".", 3)[3]
        if i < Ls:
            if k not in s:
                raise SystemExit(f"source encoder lacks {k}")
            new[k] = s[k]
        elif rest in ("attention.output.dense.weight", "attention.output.dense.bias",
                      "output.dense.weight", "output.dense.bias"):
            new[k] = torch.zeros_like(own[k])
        elif "LayerNorm" in rest:
            new[k] = s[last + rest.replace("attention.output.LayerNorm", "output.LayerNorm")]
        # other tensors of an appended layer keep their fresh initialisation
    with torch.no_grad():
        for k, v in new.items():
            if own[k].shape != v.shape:
                raise SystemExit(f"{k}: shape {tuple(v.shape)} vs {tuple(own[k].shape)}")
            own[k].copy_(v)
    return f"factorised E={E} from H={model.config.hidden_size}, {Ls} trained layers + {L - Ls} appended"


def fp32_projection(model):
    """Under torch 1.13's CPU bfloat16 autocast the projection's output is bfloat16, and the first layer's
    residual LayerNorm then rejects it (BERT's first residual is the fp32 embedding LayerNorm output). Casting
    the projection's output back to fp32 keeps ELECTRA's residual stream in fp32, as BERT's is."""
    enc = model.electra if hasattr(model, "electra") else model
    if hasattr(enc, "embeddings_project"):
        enc.embeddings_project.register_forward_hook(lambda mod, inp, out: out.float())
    return model


def check(src, sizes):
    """Hidden states of the factorised encoder against the BERT encoder on a few sentences."""
    from transformers import BertModel, BertTokenizerFast, ElectraModel
    bert = BertModel.from_pretrained(src, add_pooling_layer=False).float().eval()
    tok = BertTokenizerFast.from_pretrained(src)
    texts = ["宁德时代与特斯拉续签电池供货协议", "央行宣布下调存款准备金率0.25个百分点", "公司2024年净利润同比下降37%"]
    b = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = bert(**b).last_hidden_state
        H = bert.config.hidden_size
        worst = {}
        for E in sizes:
            if E == H:   # ElectraModel has no projection at E = H; test the algebra with E = H via a shim
                we, pe, te, pw, pb = factorise_embeddings(bert.embeddings.word_embeddings.weight,
                                                          bert.embeddings.position_embeddings.weight,
                                                          bert.embeddings.token_type_embeddings.weight,
                                                          bert.embeddings.LayerNorm.weight,
                                                          bert.embeddings.LayerNorm.bias, E)
                ids = b["input_ids"]
                x = we[ids] + pe[torch.arange(ids.shape[1])][None] + te[torch.zeros_like(ids)]
                z = torch.nn.functional.layer_norm(x, (E,), eps=bert.config.layer_norm_eps)
                y = z @ pw.T + pb
                e_ref = bert.embeddings(input_ids=ids)
                worst[E] = (y - e_ref).abs().max().item()
                continue
            m = ElectraModel(electra_config(bert.config, E, bert.config.num_hidden_layers)).eval()
            init_electra(m, bert.state_dict(), bert.config)
            out = m(**b).last_hidden_state
            mask = b["attention_mask"].bool()
            worst[E] = (out - ref)[mask].abs().max().item()
    return worst, H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(common.REPO, "models", "finbert-base"))
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--sizes", default="256,192,128,64")
    a = ap.parse_args()
    if not a.check:
        ap.error("only --check runs standalone; pretrain.py --embedding-size uses this module")
    worst, H = check(a.src, [int(x) for x in a.sizes.split(",")])
    for E, d in worst.items():
        print(f"E={E}: max |hidden - BERT hidden| = {d:.3g}" + (" (embedding output, E = H)" if E == H else ""))
    if worst.get(H, 0.0) > 1e-4:
        raise SystemExit("E = H does not reproduce the BERT embeddings: the factorisation is wrong")


if __name__ == "__main__":
    main()

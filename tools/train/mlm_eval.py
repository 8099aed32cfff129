"""Masked-token loss and accuracy of an encoder on a monitor file with FIXED masks, so that two encoders are
compared on identical text and identical masked positions (pretrain.py logs the same numbers at checkpoints).

    python tools/train/mlm_eval.py tools/train/work/pretrain2/encoder          # a BertForMaskedLM directory
    python tools/train/mlm_eval.py models/finbert-base --fit-head 300          # an export without MLM head
    python tools/train/mlm_eval.py tools/train/work/pt-e128l5/encoder        # factorised (ELECTRA-layout) run

Monitor: tools/train/work/corpus2/monitor_flash.npz (prepare.py --round2: 1 % of the flash + readhub news, never
in the corpus), packed like pre-training (128-token sequences, order and masks from --seed); whole-word masking
with p = 0.15, 80/10/10 [MASK]/random/keep, as in pretrain.py (--masking char: each token on its own).
Exported encoders (models/finbert-base) carry no MLM head: --fit-head N trains only the head (transform and
output bias; the decoder is tied to the frozen word embeddings) for N seeded steps on the round-2 corpus with the
encoder frozen, so such encoders are compared through the same head-fitting recipe (not against a full
pre-training head).
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import pretrain  # noqa: E402

CORPUS2 = os.path.join(common.WORK, "corpus2")


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--monitor", default=os.path.join(CORPUS2, "monitor_flash.npz"))
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--mask-prob", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=pretrain.MONITOR_SEED, help="packing order and masks")
    ap.add_argument("--max-seqs", type=int, default=0, help="score only the first N sequences (0: all)")
    ap.add_argument("--fit-head", type=int, default=0, metavar="STEPS",
                    help="fit a fresh MLM head for STEPS steps with the encoder frozen (for exports without a head)")
    ap.add_argument("--masking", choices=("wwm", "char"), default="wwm",
                    help="masks of the scored sequences: whole jieba words (as pre-training) or single tokens "
                         "(pretrain.py --masking char); the same expected share of masked tokens")
    ap.add_argument("--fit-corpus", default=os.path.join(CORPUS2, "corpus.npz"))
    return ap.parse_args()


def head_transform(model):
    """The MLM head's trainable transform (the decoder is tied to the word embeddings)."""
    return model.generator_predictions if hasattr(model, "electra") else model.cls.predictions.transform


def head_params(model):
    bias = model.generator_lm_head.bias if hasattr(model, "electra") else model.cls.predictions.bias
    return [bias] + list(head_transform(model).parameters())


def fit_head(model, a, vocab_size):
    """Trains the MLM head (transform + output bias) on the frozen encoder: AdamW lr 1e-3, batches of 32, seeded."""
    for p in model.parameters():
        p.requires_grad = False
    head = head_params(model)
    for p in head:
        p.requires_grad = True
    opt = torch.optim.AdamW(head, lr=1e-3, weight_decay=0.0)
    seqs = pretrain.Packer(a.fit_corpus, a.seq_len, a.seed + 1).epoch(0)
    g = torch.Generator().manual_seed(a.seed + 1)
    model.eval()                       # no dropout: the encoder's features are fixed
    for step in range(a.fit_head):
        ids, ws, att = pretrain.batchify(seqs, step % (len(seqs) // 32), 32)
        inp, sel, tgt = pretrain.mask_batch(ids, ws, att, vocab_size, a.mask_prob, g)
        with torch.no_grad():
            h = pretrain.encoder_of(model)(input_ids=inp, attention_mask=att).last_hidden_state[sel]
        loss = torch.nn.functional.cross_entropy(pretrain.head_of(model)(h), tgt)
        loss.backward()
        opt.step(); opt.zero_grad(set_to_none=True)
        if (step + 1) % 50 == 0:
            print(f"  head step {step + 1}/{a.fit_head} loss {loss.item():.3f}", flush=True)


def main():
    a = parse()
    common.threads()
    from transformers import AutoModelForMaskedLM
    with open(os.path.join(a.model_dir, "vocab.txt"), encoding="utf-8") as f1, \
            open(common.VOCAB, encoding="utf-8") as f2:
        if f1.read() != f2.read():
            raise SystemExit(f"{a.model_dir}/vocab.txt differs from {common.VOCAB}: the monitor ids would not match")
    # BertForMaskedLM, or ElectraForMaskedLM for a factorised encoder (pretrain.py --embedding-size)
    model, info = AutoModelForMaskedLM.from_pretrained(a.model_dir, output_loading_info=True)
    model = model.float()
    no_head = [k for k in info["missing_keys"] if k.startswith(("cls.predictions.transform", "generator_predictions"))]
    if no_head and not a.fit_head:
        raise SystemExit(f"{a.model_dir} has no MLM head ({len(no_head)} head weights missing): score a "
                         f"pre-training run's encoder/ directory, or pass --fit-head STEPS")
    vocab_size = model.config.vocab_size
    torch.manual_seed(a.seed)
    t0 = time.time()
    if a.fit_head:
        if not no_head:
            print("note: the directory has an MLM head; --fit-head replaces its training by a fresh fit")
            head_transform(model).apply(model._init_weights)
            torch.nn.init.zeros_(head_params(model)[0])
        fit_head(model, a, vocab_size)
    seqs = pretrain.Packer(a.monitor, a.seq_len, a.seed).epoch(0)
    if a.max_seqs:
        seqs = seqs[:a.max_seqs]
    loss, acc = pretrain.mlm_loss(model, seqs, vocab_size, a.mask_prob, a.seed, whole_words=a.masking == "wwm")
    print(json.dumps({"model": a.model_dir, "monitor": a.monitor, "sequences": len(seqs),
                      "tokens": int(sum(len(s[0]) for s in seqs)), "mask_prob": a.mask_prob, "seed": a.seed,
                      "masking": a.masking,
                      "fit_head_steps": a.fit_head, "mlm_loss": round(loss, 4), "mlm_acc": round(acc, 4),
                      "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()

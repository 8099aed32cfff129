"""Masked-language-model pre-training of the small finbert encoder (whole-word masking, jieba).

    FINBERT_TRAIN_THREADS=1 python tools/train/pretrain.py          # start, or resume if a checkpoint exists
    # round 2: continue the shipped encoder on the round-2 corpus, in a run directory of its own
    FINBERT_TRAIN_THREADS=2 python tools/train/pretrain.py --corpus tools/train/work/corpus2 \
        --out tools/train/work/pretrain2 --init models/finbert-base

Everything lives in tools/train/work/pretrain/ (--out):
  ckpt.pt      full training state (model, optimizer, scheduler, RNG, data position), written
               atomically every --ckpt-minutes and on SIGTERM/SIGINT; running the same command
               again resumes from it (bit-for-bit the same data order and masking).
  encoder/     Hugging Face BertForMaskedLM directory of the latest checkpoint (fp32) for fine-tuning
  train.log    progress log
Training stops by itself after --total-steps.

Factorised embeddings (issue 20's measurement): --embedding-size E (< 256) trains an ELECTRA-layout encoder
(ElectraForMaskedLM: E-wide embeddings, a projection E -> 256, BERT's layers; finbert loads it as ELECTRA) and
--layers N sets its depth; with --init models/finbert-base the shipped encoder is factorised by SVD and extra
layers start near the identity (factorise.py). encoder/ is then an ElectraForMaskedLM directory, which
finetune.py and mlm_eval.py take as they take a BERT one.

Data: tools/train/work/corpus/corpus.npz, made by prepare.py (run automatically if missing); --corpus DIR takes
DIR/corpus.npz instead (prepare.py --round2 writes work/corpus2/). When DIR has monitor_flash.npz (held-out finance
news), every checkpoint also logs its MLM loss on fixed masks (the first --flash-seqs sequences; mlm_eval.py
scores all of them, for any encoder).
Each epoch the texts are shuffled (seed + epoch) and packed into sequences of --seq-len tokens
([CLS] a [SEP] b [SEP] ...; a text that does not fit continues in the next sequence). Whole-word masking: each jieba word is
selected with probability 0.15; selected tokens become [MASK] 80 %, random 10 %, unchanged 10 %. --masking char
selects each token on its own instead (issue 20 asks whether whole-word masking helps here; README, Status).
The MLM head is computed only on the selected positions (saves ~half the compute).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

OUT = os.path.join(common.WORK, "pretrain")
CORPUS_DIR = os.path.join(common.WORK, "corpus")

MONITOR_SEED = 20261207        # packing order and masks of monitor_flash.npz (pretrain.py and mlm_eval.py)

ARCH = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
            max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
            hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, initializer_range=0.02,
            layer_norm_eps=1e-12)


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--total-steps", type=int, default=2500)
    ap.add_argument("--ckpt-minutes", type=float, default=10.0)
    ap.add_argument("--mask-prob", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=common.SEED)
    ap.add_argument("--bf16", action="store_true",
                    help="run the forward pass under bfloat16 autocast (fp32 master weights and optimizer); "
                         "~1.5x faster on CPUs with AVX512-BF16/AMX; a per-invocation setting, not restored on resume")
    ap.add_argument("--init", default=None,
                    help="start a new run from this Hugging Face encoder directory (e.g. models/finbert-base, "
                         "the shipped encoder) instead of random weights; the MLM head starts fresh, tied to "
                         "the embeddings; ignored when a checkpoint exists")
    ap.add_argument("--corpus", default=CORPUS_DIR,
                    help="directory with corpus.npz (default: the round-1 corpus); restored from the checkpoint on resume")
    ap.add_argument("--out", default=OUT,
                    help="run directory (checkpoint, encoder/, train.log); a new corpus or --init wants a new one, "
                         "else the existing checkpoint is resumed")
    ap.add_argument("--embedding-size", type=int, default=0, metavar="E",
                    help="factorised embeddings of width E < hidden (ELECTRA layout, factorise.py); with --init the "
                         "BERT encoder is factorised by SVD; restored from the checkpoint on resume")
    ap.add_argument("--layers", type=int, default=ARCH["num_hidden_layers"],
                    help="transformer layers; with --init, layers beyond the source's are appended near-identity "
                         "(factorise.py)")
    ap.add_argument("--masking", choices=("wwm", "char"), default="wwm",
                    help="wwm: whole-word masking over jieba words (the default, as the seed papers); char: each token "
                         "selected on its own with the same probability (the same expected share of masked tokens), "
                         "for issue 20's comparison; the monitors keep whole-word masks; restored on resume")
    ap.add_argument("--flash-seqs", type=int, default=256,
                    help="sequences of the corpus dir's monitor_flash.npz scored at each checkpoint (0: none)")
    return ap.parse_args()


def build_model(a, vocab_size):
    """BertForMaskedLM, or ElectraForMaskedLM (generator-style MLM head) for factorised embeddings."""
    arch = dict(ARCH, num_hidden_layers=a.layers)
    if a.embedding_size and a.embedding_size != arch["hidden_size"]:
        from transformers import ElectraConfig, ElectraForMaskedLM
        import factorise
        return factorise.fp32_projection(ElectraForMaskedLM(ElectraConfig(
            vocab_size=vocab_size, pad_token_id=0, embedding_size=a.embedding_size, **arch)))
    from transformers import BertConfig, BertForMaskedLM
    return BertForMaskedLM(BertConfig(vocab_size=vocab_size, pad_token_id=0, **arch))


def encoder_of(model):
    return model.electra if hasattr(model, "electra") else model.bert


def head_of(model):
    """hidden states of the masked positions -> vocabulary logits"""
    if hasattr(model, "electra"):
        return lambda h: model.generator_lm_head(model.generator_predictions(h))
    return model.cls


def init_from(model, d, logf=None):
    """Copies an exported encoder (BertModel directory with the same vocabulary) into the model's encoder,
    factorised (factorise.py) when the model is an ELECTRA-layout one; returns the number of pre-training steps
    already behind it."""
    from transformers import BertModel
    with open(os.path.join(d, "vocab.txt"), encoding="utf-8") as f1, open(common.VOCAB, encoding="utf-8") as f2:
        if f1.read() != f2.read():
            raise SystemExit(f"{d}/vocab.txt differs from {common.VOCAB}: not this pipeline's encoder")
    enc = BertModel.from_pretrained(d).float()
    state = {k: v for k, v in enc.state_dict().items() if not k.startswith("pooler.")}
    if hasattr(model, "electra"):
        import factorise
        common.log(logf, factorise.init_electra(model, state, enc.config))
    elif model.config.num_hidden_layers != enc.config.num_hidden_layers:
        raise SystemExit("--layers differs from the --init encoder's: supported with --embedding-size only")
    else:
        missing, unexpected = model.bert.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise SystemExit(f"{d}: encoder does not match (missing {missing}, unexpected {unexpected})")
    model.tie_weights()
    # steps behind this encoder: export_encoder.py writes total_steps (models/finbert-base); an encoder saved
    # by this script writes its own steps and those it started from
    st = os.path.join(d, "pretrain_state.json")
    if not os.path.exists(st):
        return 0
    st = json.load(open(st))
    return st["total_steps"] if "total_steps" in st else st.get("step", 0) + st.get("prior_steps", 0)


class Packer:
    def __init__(self, path, seq_len, seed):
        z = np.load(path)
        self.ids, self.ws, self.offs = z["ids"], z["word_start"], z["offsets"]
        self.L, self.seed = seq_len, seed
        self.n = len(self.offs) - 1

    def epoch(self, ep):
        """List of (ids, word_start) arrays, each a packed sequence of <= L tokens."""
        rng = np.random.default_rng(self.seed + 1000 * ep)
        order = rng.permutation(self.n)
        room = self.L - 2
        seqs, cur_i, cur_w = [], [], []
        CLS, SEP = 2, 3

        def flush():
            if cur_i:
                seqs.append((np.array([CLS] + cur_i, dtype=np.int64), np.array([1] + cur_w, dtype=np.int64)))

        used = 0
        for k in order:
            a, b = self.offs[k], self.offs[k + 1]
            ids, ws = self.ids[a:b].tolist(), self.ws[a:b].tolist()
            while ids:
                # fill the current sequence; a text that does not fit continues in the next one
                take = min(len(ids), room - used - 1)
                if take < 8 and take < len(ids) and cur_i:
                    flush(); cur_i, cur_w, used = [], [], 0
                    take = min(len(ids), room - 1)
                cur_i += ids[:take] + [SEP]
                cur_w += [1] + ws[1:take] + [1] if take > 0 else [1]
                cur_w = cur_w[:len(cur_i)]
                used += take + 1
                ids, ws = ids[take:], ws[take:]
                if ws:
                    ws[0] = 1
        flush()
        return seqs


def batchify(seqs, idx, batch):
    part = seqs[idx * batch:(idx + 1) * batch]
    T = max(len(s[0]) for s in part)
    ids = torch.zeros(len(part), T, dtype=torch.long)
    ws = torch.ones(len(part), T, dtype=torch.long)
    att = torch.zeros(len(part), T, dtype=torch.long)
    for i, (a, w) in enumerate(part):
        ids[i, :len(a)] = torch.from_numpy(a)
        ws[i, :len(w)] = torch.from_numpy(w)
        att[i, :len(a)] = 1
    return ids, ws, att


def mask_batch(ids, ws, att, vocab_size, p, gen, whole_words=True):
    """Whole-word masking (whole_words=False: every token its own word, selected on its own with the same
    probability). Returns (input_ids, selected_mask, targets)."""
    if not whole_words:
        ws = torch.ones_like(ws)
    special = (ids <= 4) | (att == 0)
    wid = torch.cumsum(ws, dim=1)                       # word index per token (specials are own words)
    r = torch.rand(ids.shape[0], ids.shape[1] + 1, generator=gen)
    sel = (r.gather(1, wid) < p) & ~special
    # guarantee at least one masked token per sequence
    for i in range(ids.shape[0]):
        if not sel[i].any():
            cand = (~special[i]).nonzero().flatten()
            if len(cand):
                sel[i, cand[torch.randint(len(cand), (1,), generator=gen)]] = True
    inp = ids.clone()
    u = torch.rand(ids.shape, generator=gen)
    inp[sel & (u < 0.8)] = 4                            # [MASK]
    rnd = sel & (u >= 0.8) & (u < 0.9)
    inp[rnd] = torch.randint(5, vocab_size, (int(rnd.sum()),), generator=gen)
    return inp, sel, ids[sel]


def mlm_loss(model, seqs, vocab_size, p, seed=123, batch=32, whole_words=True):
    """Masked-token loss and accuracy on fixed masks (a generator seeded per call): comparable between
    checkpoints and between encoders when seqs, p, seed and whole_words are the same."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    tot, n, corr = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(seqs), batch):
            ids, ws, att = batchify(seqs[i:i + batch], 0, batch)
            inp, sel, tgt = mask_batch(ids, ws, att, vocab_size, p, g, whole_words)
            h = encoder_of(model)(input_ids=inp, attention_mask=att).last_hidden_state
            lg = head_of(model)(h[sel])
            tot += torch.nn.functional.cross_entropy(lg, tgt, reduction="sum").item()
            corr += (lg.argmax(-1) == tgt).sum().item()
            n += len(tgt)
    model.train()
    return tot / n, corr / n


def lr_at(step, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    return a.lr * max(0.0, (a.total_steps - step) / max(1, a.total_steps - a.warmup))


def save_encoder(model, tok_vocab, step, loss, outdir, prior_steps=0, corpus=None, masking="wwm"):
    tmp = outdir + ".tmp"
    if os.path.exists(tmp):
        import shutil
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    import shutil
    shutil.copy(tok_vocab, os.path.join(tmp, "vocab.txt"))
    with open(os.path.join(tmp, "pretrain_state.json"), "w") as f:
        json.dump({"step": step, "loss": loss, "prior_steps": prior_steps,
                   **({"masking": masking} if masking != "wwm" else {}),
                   **({"corpus": os.path.basename(os.path.normpath(corpus))} if corpus else {})}, f)
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    os.replace(tmp, outdir)


def main():
    a = parse()
    out_dir = os.path.abspath(a.out)
    os.makedirs(out_dir, exist_ok=True)
    logf = os.path.join(out_dir, "train.log")
    nthr = common.threads()
    ck_path = os.path.join(out_dir, "ckpt.pt")
    ck = torch.load(ck_path, map_location="cpu", weights_only=False) if os.path.exists(ck_path) else None
    if ck:   # the corpus is the one of the run that created the checkpoint (round 1 before --corpus existed)
        a.corpus = ck["args"].get("corpus", CORPUS_DIR)
    a.corpus = os.path.abspath(a.corpus)
    corpus = os.path.join(a.corpus, "corpus.npz")
    if a.corpus == os.path.abspath(CORPUS_DIR) and (not os.path.exists(corpus) or not os.path.exists(common.VOCAB)):
        import prepare
        prepare.main([])
    if not os.path.exists(corpus):
        raise SystemExit(f"{corpus} missing: run tools/train/prepare.py --round2 (or --out) first")
    vocab_size = sum(1 for _ in open(common.VOCAB, encoding="utf-8"))
    if ck:
        # the schedule and data order are those of the run that created the checkpoint
        for k in ("seq_len", "batch", "lr", "warmup", "total_steps", "mask_prob", "seed"):
            setattr(a, k, ck["args"][k])
        a.embedding_size = ck["args"].get("embedding_size", 0)
        a.masking = ck["args"].get("masking", "wwm")
        a.layers = ck["args"].get("layers", ARCH["num_hidden_layers"])
        a.init, a.init_steps = ck["args"].get("init"), ck["args"].get("init_steps", 0)
    common.seed_all(a.seed)
    model = build_model(a, vocab_size)
    nd = ["bias", "LayerNorm.weight"]
    groups = [{"params": [p for n, p in model.named_parameters() if not any(x in n for x in nd)], "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters() if any(x in n for x in nd)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.98), eps=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, a) / a.lr)
    gen = torch.Generator().manual_seed(a.seed)
    step, ep, pos, hist = 0, 0, 0, []
    if ck:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        step, ep, pos, hist = ck["step"], ck["epoch"], ck["pos"], ck.get("hist", [])
        common.log(logf, f"resumed from step {step} (epoch {ep}, batch {pos}), threads={nthr}, bf16={a.bf16}")
    else:
        a.init_steps = init_from(model, a.init, logf) if a.init else 0
        common.log(logf, f"new run: {json.dumps(vars(a))} arch={type(model).__name__} {ARCH} vocab={vocab_size} "
                         f"params={sum(p.numel() for p in model.parameters())/1e6:.2f}M threads={nthr} bf16={a.bf16}"
                         + (f", encoder initialised from {a.init}" if a.init else ""))
    packer = Packer(corpus, a.seq_len, a.seed)
    seqs = packer.epoch(ep)
    nb = len(seqs) // a.batch
    # fixed held-out batch for MLM loss monitoring: last batch of epoch-0 packing
    mon = Packer(corpus, a.seq_len, a.seed + 7).epoch(0)[-64:]
    # held-out finance news of the corpus dir (prepare.py --round2), same packing and masks as mlm_eval.py
    flash_path = os.path.join(a.corpus, "monitor_flash.npz")
    flash = (Packer(flash_path, a.seq_len, MONITOR_SEED).epoch(0)[:a.flash_seqs]
             if a.flash_seqs > 0 and os.path.exists(flash_path) else [])
    stop = common.StopFlag()

    def checkpoint(tag):
        ev = mlm_loss(model, mon, vocab_size, a.mask_prob)
        fl = mlm_loss(model, flash, vocab_size, a.mask_prob, MONITOR_SEED) if flash else None
        hist.append({"step": step, "epoch": ep, "train_loss": run_loss, "mon_loss": ev[0], "mon_acc": ev[1],
                     **({"flash_loss": fl[0], "flash_acc": fl[1]} if fl else {}),
                     "time": time.strftime("%Y-%m-%d %H:%M:%S")})
        common.atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                                  "gen": gen.get_state(), "torch_rng": torch.get_rng_state(), "step": step,
                                  "epoch": ep, "pos": pos, "args": vars(a), "hist": hist}, ck_path)
        save_encoder(model, common.VOCAB, step, ev[0], os.path.join(out_dir, "encoder"), a.init_steps, a.corpus,
                     a.masking)
        with open(os.path.join(out_dir, "status.json"), "w") as f:
            json.dump({"step": step, "total_steps": a.total_steps, "epoch": ep, "batch_in_epoch": pos,
                       "batches_per_epoch": nb, "args": vars(a), "hist": hist[-5:]}, f, indent=1)
        common.log(logf, f"checkpoint ({tag}) step {step}: train_loss {run_loss:.3f} "
                         f"monitor MLM loss {ev[0]:.3f} acc {ev[1]:.3f}"
                         + (f"; held-out flash MLM loss {fl[0]:.3f} acc {fl[1]:.3f}" if fl else ""))

    model.train()
    run_loss, t_last, t0, tok_count = float("nan"), time.time(), time.time(), 0
    while step < a.total_steps and not stop.stop:
        if pos >= nb:
            ep, pos = ep + 1, 0
            seqs = packer.epoch(ep)
            nb = len(seqs) // a.batch
        ids, ws, att = batchify(seqs, pos, a.batch)
        inp, sel, tgt = mask_batch(ids, ws, att, vocab_size, a.mask_prob, gen, a.masking == "wwm")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            h = encoder_of(model)(input_ids=inp, attention_mask=att).last_hidden_state
        # the MLM head (masked positions only) in fp32: torch 1.13's CPU autocast rejects its LayerNorm on a
        # bfloat16 input, and the head is a small share of the step
        lg = head_of(model)(h[sel].float())
        loss = torch.nn.functional.cross_entropy(lg.float(), tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
        step += 1; pos += 1
        tok_count += int(att.sum())
        lv = loss.item()
        run_loss = lv if math.isnan(run_loss) else 0.98 * run_loss + 0.02 * lv
        if step % 50 == 0:
            el = time.time() - t0
            common.log(logf, f"step {step}/{a.total_steps} ep {ep} batch {pos}/{nb} loss {run_loss:.3f} "
                             f"lr {sched.get_last_lr()[0]:.2e} {tok_count / el:.0f} tok/s")
        if time.time() - t_last > a.ckpt_minutes * 60:
            checkpoint("periodic"); t_last = time.time()
    checkpoint("stop" if stop.stop else "final")
    if step >= a.total_steps:
        common.log(logf, "pre-training finished")


if __name__ == "__main__":
    main()

"""Intermediate supervised training of the pre-trained encoder on the other labelled sentence
datasets in ../shared/data (multi-task, one linear head per dataset), before task fine-tuning.

    FINBERT_TRAIN_THREADS=1 python tools/train/intermediate.py      # start, or resume if a checkpoint exists

Why: the masked-LM encoder trained on CPU here is weak (a few million tokens). Sentence-level
supervision that is plentiful in the shared data -- news topic (TNEWS, THUCNews titles), emotion of
Weibo posts (SMP2020-EWECT), financial negative-event type (BBT-FinCUGE FinESE) and negative-news
detection (FinNSP) -- teaches the encoder (and its pooler) what sentence meaning is, which the
sentence-level starter tasks (sentiment, news type, industry) build on ("intermediate-task
transfer"). None of these labels is a label of a finbert task, and every text of a reported
validation split (sentiment, news type, NER and the industry held-out companies) is left out.

Output: tools/train/work/intermediate/encoder (BertModel with pooler, fp32, + vocab.txt), used by
    python tools/train/finetune.py <task> --fresh --encoder tools/train/work/intermediate/encoder
State (model, optimizer, position) is checkpointed to work/intermediate/ckpt.pt every --ckpt-minutes
and on SIGTERM; the same command resumes.
"""
import argparse
import collections
import json
import math
import os
import random
import re
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

OUT = os.path.join(common.WORK, "intermediate")
PRETRAINED = os.path.join(common.WORK, "pretrain", "encoder")
MIN_CLASS = 30          # drop rarer labels (FinESE has a singleton)


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", default=PRETRAINED)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--ckpt-minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=common.SEED)
    ap.add_argument("--bf16", action="store_true",
                    help="forward pass under bfloat16 autocast (fp32 weights, optimizer and loss)")
    return ap.parse_args()


def _tsv(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) >= 2 and p[0]:
                out.append((p[0], p[1]))
    return out


def datasets():
    """name -> list of (text, label string)."""
    d = {"tnews": _tsv(common.D("tnews", "train.tsv")),
         "thucnews": _tsv(common.D("thucnews-titles", "dev.txt"))}
    d["ewect"] = [(r["content"], r["label"]) for fn in ("virus_train.txt", "virus_eval_labeled.txt",
                                                        "usual_eval_labeled.txt")
                  for r in common.load_json(common.D("smp2020-ewect", fn))]
    d["finese"] = [(r[1], r[2]) for r in common.load_json(common.D("bbt-fincuge", "finese", "train_list.json"))]
    nsp = []
    for r in common.load_json(common.D("bbt-fincuge", "finnsp", "train_list.json"))[1:]:
        title, text = (r[1] or "").strip(), (r[2] or "").strip()
        if r[4] in ("0", "1"):
            nsp.append((text if (not title or title in text) else title + "。" + text, r[4]))
    d["finnsp"] = nsp
    return d


def excluded_texts():
    """Texts of every reported validation split, normalised as the pre-training corpus does."""
    import tasks
    v = set(common.validation_texts())
    v.update(e["text"] for e in tasks.industry()["val"]["heldout_companies"])
    return {re.sub(r"\s+", " ", t).strip() for t in v}


def build(excl):
    data, labels, counts = {}, {}, {}
    for name, rows in datasets().items():
        seen, keep = set(), []
        for t, y in rows:
            t = re.sub(r"\s+", " ", t or "").strip()
            # the industry validation texts are truncated to 300 characters by tasks.industry_texts
            if len(t) < 2 or t in seen or t in excl or t[:300] in excl:
                continue
            seen.add(t)
            keep.append((t, y))
        c = collections.Counter(y for _, y in keep)
        labs = sorted(l for l, n in c.items() if n >= MIN_CLASS)
        idx = {l: i for i, l in enumerate(labs)}
        data[name] = [(t, idx[y]) for t, y in keep if y in idx]
        labels[name] = labs
        counts[name] = {"examples": len(data[name]), "labels": len(labs), "dropped_texts": len(rows) - len(data[name])}
    return data, labels, counts


class MultiTask(torch.nn.Module):
    def __init__(self, encoder, labels):
        super().__init__()
        from transformers import BertModel
        self.bert = BertModel.from_pretrained(encoder, add_pooling_layer=True)
        H = self.bert.config.hidden_size
        self.drop = torch.nn.Dropout(self.bert.config.hidden_dropout_prob)
        self.heads = torch.nn.ModuleDict({n: torch.nn.Linear(H, len(l)) for n, l in labels.items()})

    def forward(self, name, ids, att):
        # the pooled [CLS] vector, as BertForSequenceClassification uses it
        pooled = self.bert(input_ids=ids, attention_mask=att).pooler_output
        return self.heads[name](self.drop(pooled))


def plan(enc, batch, seed, epoch):
    """All (task, [indices]) batches of one epoch, length-bucketed per task, tasks interleaved."""
    rng = random.Random(seed + 7919 * epoch)
    out = []
    for name in sorted(enc):
        idx = list(range(len(enc[name])))
        rng.shuffle(idx)
        pool = batch * 50
        for i in range(0, len(idx), pool):
            chunk = sorted(idx[i:i + pool], key=lambda k: len(enc[name][k][0]))
            out += [(name, chunk[j:j + batch]) for j in range(0, len(chunk), batch)]
    rng.shuffle(out)
    return out


def collate(rows):
    T = max(len(r[0]) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    att = torch.zeros(len(rows), T, dtype=torch.long)
    for i, (x, _) in enumerate(rows):
        ids[i, :len(x)] = torch.tensor(x)
        att[i, :len(x)] = 1
    return ids, att, torch.tensor([r[1] for r in rows], dtype=torch.long)


def save_encoder(model, outdir, info):
    import shutil
    tmp = outdir + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    model.bert.save_pretrained(tmp, safe_serialization=True)
    shutil.copy(common.VOCAB, os.path.join(tmp, "vocab.txt"))
    with open(os.path.join(tmp, "pretrain_state.json"), "w") as f:
        json.dump(info, f, ensure_ascii=False)
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    os.replace(tmp, outdir)


def main():
    a = parse()
    os.makedirs(OUT, exist_ok=True)
    logf = os.path.join(OUT, "train.log")
    ck_path = os.path.join(OUT, "ckpt.pt")
    nthr = common.threads()
    ck = torch.load(ck_path, map_location="cpu", weights_only=False) if os.path.exists(ck_path) else None
    if ck:
        for k in ("epochs", "lr", "batch", "max_len", "seed", "encoder"):
            setattr(a, k, ck["args"][k])
    common.seed_all(a.seed)
    data, labels, counts = build(excluded_texts())
    tok = common.tokenizer()
    enc = {}
    for name, rows in data.items():
        ids = tok([t for t, _ in rows], truncation=True, max_length=a.max_len)["input_ids"]
        enc[name] = [(x, y) for x, (_, y) in zip(ids, rows)]
    model = MultiTask(a.encoder, labels)
    nb = len(plan(enc, a.batch, a.seed, 0))
    total, warm = nb * a.epochs, max(1, int(0.06 * nb * a.epochs))
    nd = ["bias", "LayerNorm.weight"]
    groups = [{"params": [p for n, p in model.named_parameters() if not any(x in n for x in nd)], "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters() if any(x in n for x in nd)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    step, ep, pos = 0, 0, 0
    src = json.load(open(os.path.join(a.encoder, "pretrain_state.json")))
    if ck:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        torch.set_rng_state(ck["torch_rng"])
        step, ep, pos = ck["step"], ck["epoch"], ck["pos"]
        common.log(logf, f"resumed at step {step}/{total}, threads={nthr}")
    else:
        common.log(logf, f"new run: {json.dumps(vars(a))} datasets {json.dumps(counts, ensure_ascii=False)} "
                         f"{nb} batches/epoch, encoder {src}, threads={nthr}")
    stop = common.StopFlag()
    run = collections.defaultdict(lambda: [float("nan"), float("nan")])   # loss, accuracy (running)

    def save():
        common.atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                                  "torch_rng": torch.get_rng_state(), "step": step, "epoch": ep, "pos": pos,
                                  "args": vars(a)}, ck_path)

    model.train()
    t_last, t0, ntok = time.time(), time.time(), 0
    while ep < a.epochs and not stop.stop:
        bl = plan(enc, a.batch, a.seed, ep)
        while pos < len(bl) and not stop.stop:
            name, b = bl[pos]
            ids, att, y = collate([enc[name][k] for k in b])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                lg = model(name, ids, att)
            lg = lg.float()
            loss = torch.nn.functional.cross_entropy(lg, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
            step += 1; pos += 1; ntok += int(att.sum())
            r = run[name]
            acc = float((lg.argmax(-1) == y).float().mean())
            r[0] = loss.item() if math.isnan(r[0]) else 0.95 * r[0] + 0.05 * loss.item()
            r[1] = acc if math.isnan(r[1]) else 0.95 * r[1] + 0.05 * acc
            if step % 100 == 0:
                per = " ".join(f"{n} {v[0]:.3f}/{v[1]:.2f}" for n, v in sorted(run.items()))
                common.log(logf, f"step {step}/{total} ep {ep} lr {sched.get_last_lr()[0]:.2e} "
                                 f"{ntok / (time.time() - t0):.0f} tok/s  loss/train-acc: {per}")
            if time.time() - t_last > a.ckpt_minutes * 60:
                save(); t_last = time.time()
        if pos >= len(bl):
            ep, pos = ep + 1, 0
    save()
    if stop.stop:
        common.log(logf, f"stopped at step {step}; run the same command to resume")
        return
    info = dict(src)
    info.update({"intermediate": {"steps": step, "epochs": a.epochs, "lr": a.lr, "datasets": counts,
                                  "final_train_loss_acc": {n: [round(v[0], 4), round(v[1], 4)] for n, v in run.items()},
                                  "from": os.path.relpath(a.encoder, common.REPO)}})
    save_encoder(model, os.path.join(OUT, "encoder"), info)
    common.log(logf, f"finished: encoder written to {os.path.join(OUT, 'encoder')}")


if __name__ == "__main__":
    main()

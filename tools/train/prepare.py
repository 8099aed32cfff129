"""Build the trimmed vocabulary (tools/train/vocab.txt, committed) and the cached, jieba-segmented,
tokenized pre-training corpus (tools/train/work/corpus/, git-ignored).

    python tools/train/prepare.py            # idempotent: skips steps whose outputs exist
    python tools/train/prepare.py --round2   # round-2 corpus (work/corpus2/) + held-out finance monitor file
    python tools/train/prepare.py --round2 --limit 200 --control   # small test with a negative control
    python tools/train/prepare.py --task-texts sentiment   # FinFE + FinNE training texts (task-adaptive MLM)

Vocabulary = tokens of bert-base-chinese-vocab.txt that WordPiece actually produces on the shared
text (all datasets except ChnSentiCorp) + every GB2312 level-1 character (the 3755 common simplified
CJK characters) present in the original vocab + single ASCII characters and their ##-forms + (no ##-forms of CJK
characters: BertTokenizer splits CJK one character per token, so those are never produced) +
the special tokens. Original order is kept, so [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.
"""
import argparse
import collections
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CORPUS = os.path.join(common.WORK, "corpus")
CORPUS2 = os.path.join(common.WORK, "corpus2")
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _gb2312(ch):
    try:
        b = ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return len(b) == 2 and 0xB0 <= b[0] <= 0xD7   # GB2312 level 1: 3755 common characters


def build_vocab(texts_all):
    if os.path.exists(common.VOCAB):
        print("vocab exists:", common.VOCAB)
        return
    full = [l.rstrip("\n") for l in open(common.FULL_VOCAB, encoding="utf-8")]
    tok = common.tokenizer(common.FULL_VOCAB)
    cnt = collections.Counter()
    for i in range(0, len(texts_all), 2000):
        for ids in tok(texts_all[i:i + 2000], add_special_tokens=False)["input_ids"]:
            cnt.update(ids)
    keep = []
    for i, t in enumerate(full):
        core = t[2:] if t.startswith("##") else t
        if t in SPECIAL or cnt.get(i, 0) > 0:
            keep.append(t)
        elif len(core) == 1 and ((_gb2312(core) and not t.startswith("##")) or (32 < ord(core) < 127)):
            keep.append(t)
    with open(common.VOCAB, "w", encoding="utf-8") as f:
        for t in keep:
            f.write(t + "\n")
    print(f"vocab: {len(keep)} of {len(full)} tokens kept; used by corpus: {len(cnt)}")


def segment_and_tokenize(texts):
    """ids (uint16, concatenated), word_start flags (uint8), offsets (int64) per text."""
    import jieba
    jieba.setLogLevel(60)
    jieba.initialize()
    tok = common.tokenizer()
    all_ids, all_ws, offs = [], [], [0]
    t0 = time.time()
    for i0 in range(0, len(texts), 1000):
        chunk = texts[i0:i0 + 1000]
        enc = tok(chunk, add_special_tokens=False, return_offsets_mapping=True)
        for t, ids, om in zip(chunk, enc["input_ids"], enc["offset_mapping"]):
            # character -> word index from jieba
            wid = np.zeros(len(t) + 1, dtype=np.int64)
            pos = 0
            for k, w in enumerate(jieba.cut(t, HMM=True)):
                wid[pos:pos + len(w)] = k
                pos += len(w)
            ws = np.ones(len(ids), dtype=np.uint8)
            prev = -1
            for j, (s, e) in enumerate(om):
                w = wid[s] if s < len(t) else -2
                ws[j] = 0 if (w == prev and j > 0) else 1
                prev = w
            all_ids.append(np.asarray(ids, dtype=np.uint16))
            all_ws.append(ws)
            offs.append(offs[-1] + len(ids))
        if (i0 // 1000) % 20 == 0:
            print(f"  tokenized {i0 + len(chunk)}/{len(texts)}  {time.time() - t0:.0f}s", flush=True)
    return np.concatenate(all_ids), np.concatenate(all_ws), np.asarray(offs, dtype=np.int64)


def save_npz(path, ids, ws, offs):
    tmp = path + ".tmp.npz"
    np.savez(tmp, ids=ids, word_start=ws, offsets=offs)
    os.replace(tmp, path)


def unk_rates(ids, offs, counts):
    """[UNK] share of the tokens per source (counts: texts per source, in corpus order)."""
    out, k = {}, 0
    for name, n in counts.items():
        a, b = offs[k], offs[k + n]
        seg = ids[a:b]
        out[name] = {"tokens": int(b - a), "unk": int((seg == 1).sum()),
                     "unk_rate": round(float((seg == 1).mean()), 6) if b > a else 0.0}
        k += n
    return out


def unk_chars(texts, top=20):
    """The most frequent characters that the fixed vocabulary maps to [UNK] (what the rate consists of)."""
    tok = common.tokenizer()
    cnt = collections.Counter()
    for t in texts:
        for ch in t:
            if not ch.isspace():
                cnt[ch] += 1
    unk = {ch for ch in cnt if tok.convert_tokens_to_ids(tok.tokenize(ch) or ["[PAD]"]) == [1]}
    return [(ch, cnt[ch]) for ch, _ in cnt.most_common() if ch in unk][:top]


CONTROL_PREFIX = "负对照："


def control_injections(exclude, k=5):
    """Negative control: k held-out texts of each exclusion list (>= 10 chars, a fixed hash-ordered choice),
    injected into readhub-news as they are, inside a longer unit, and (texts >= 24 chars) their first half alone;
    every one must be dropped."""
    inj = []
    for name, texts in sorted(exclude.items()):
        pick = sorted((t for t in texts if len(t) >= 10), key=lambda t: common.hashlib.md5(t.encode()).hexdigest())
        for t in pick[:k]:
            inj.append(("readhub-news", t))
            inj.append(("readhub-news", CONTROL_PREFIX + "据报道，" + t + "此外市场关注后续进展。"))
            if len(t) >= 24:    # a part of a held-out text (its first half): dropped as "inside"
                inj.append(("readhub-news", t[:len(t) // 2]))
    return inj


def main_round2(limit=None, control=False, out_dir=CORPUS2):
    """Round-2 corpus from common.pretrain_texts_round2() and the held-out monitor file monitor_flash.npz
    (1 % of the flash + readhub units, never in the corpus): MLM loss on unseen finance news (mlm_eval.py)."""
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.time()
    exclude = common.round2_exclusion_texts()
    inject = control_injections(exclude) if control else None
    texts, monitor, counts, report = common.pretrain_texts_round2(limit=limit, inject=inject, exclude=exclude)
    print(f"texts {len(texts)}, monitor {len(monitor)}, {time.time() - t0:.0f}s", flush=True)
    if control:
        cores = {t for _, t in inject if not t.startswith(CONTROL_PREFIX)}
        leaked = [t for t in cores if any(t in x or (x in t and len(x) >= 10) for x in texts + monitor)]
        report["control"] = {"injected": len(inject), "leaked": len(leaked)}
        print(f"negative control: {len(inject)} injected held-out texts, {len(leaked)} reached the corpus")
        if leaked:
            raise SystemExit(f"negative control FAILED: {leaked[:3]}")
    ids, ws, offs = segment_and_tokenize(texts)
    save_npz(os.path.join(out_dir, "corpus.npz"), ids, ws, offs)
    mids, mws, moffs = segment_and_tokenize(monitor)
    save_npz(os.path.join(out_dir, "monitor_flash.npz"), mids, mws, moffs)
    new = [n for n, _ in common.ROUND2_SOURCES]
    unk = unk_rates(ids, offs, counts)
    new_tok = sum(unk[n]["tokens"] for n in new)
    new_unk = sum(unk[n]["unk"] for n in new)
    k0 = sum(v for n, v in counts.items() if n not in new)
    meta = {"texts": len(texts), "chars": sum(map(len, texts)), "tokens": int(len(ids)), "sources": counts,
            "vocab_size": sum(1 for _ in open(common.VOCAB, encoding="utf-8")), "limit": limit,
            "monitor": {"texts": len(monitor), "tokens": int(len(mids)), "per_source": report["monitor"],
                        "permille": common.MONITOR_PERMILLE, "salt": "monitor-flash"},
            "pieces_before_filters": report["pieces"], "dropped": report["dropped"],
            "excluded_texts": report["excluded_texts"], "unk": unk,
            "unk_rate_new_text": round(new_unk / max(1, new_tok), 6),
            "unk_chars_new_text": unk_chars(texts[k0:]), **({"control": report["control"]} if control else {})}
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
    print(json.dumps(meta, ensure_ascii=False, indent=1))


TASK_TEXT_SOURCES = {"sentiment": ("finfe", "finne")}


def main_task_texts(task, out_dir):
    """Task-adaptive pre-training corpus (Gururangan et al. 2020, "Don't stop pretraining"): the training texts
    of one task's forum and news sources, without labels; validation texts are never training texts (tasks.py).
    monitor_flash.npz is linked from work/corpus2 so pretrain.py's held-out monitor stays comparable."""
    import tasks
    keep = TASK_TEXT_SOURCES[task]
    spec = getattr(tasks, task)()
    texts = sorted({e["text"] for e in spec["train"] if e.get("source") in keep})
    val = {e["text"] for rows in spec["val"].values() for e in rows}
    if val & set(texts):
        raise SystemExit(f"{len(val & set(texts))} validation texts among the training texts of {task}")
    os.makedirs(out_dir, exist_ok=True)
    ids, ws, offs = segment_and_tokenize(texts)
    save_npz(os.path.join(out_dir, "corpus.npz"), ids, ws, offs)
    mon = os.path.join(CORPUS2, "monitor_flash.npz")
    link = os.path.join(out_dir, "monitor_flash.npz")
    if os.path.exists(mon) and not os.path.exists(link):
        os.symlink(mon, link)
    meta = {"task_texts": task, "sources": list(keep), "texts": len(texts), "chars": sum(map(len, texts)),
            "tokens": int(len(ids)), "vocab_size": sum(1 for _ in open(common.VOCAB, encoding="utf-8"))}
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
    print(json.dumps(meta, ensure_ascii=False, indent=1))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--round2", action="store_true", help="build work/corpus2/ (round-2 corpus + monitor_flash.npz)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N texts per source (tests)")
    ap.add_argument("--control", action="store_true",
                    help="negative control: inject held-out texts into a source and fail unless all are dropped")
    ap.add_argument("--out", default=None, help="output directory (default work/corpus2, or work/corpus2-limitN)")
    ap.add_argument("--task-texts", choices=sorted(TASK_TEXT_SOURCES),
                    help="build a task-adaptive pre-training corpus from the task's training texts "
                         "(default --out work/corpus-tapt-TASK)")
    a = ap.parse_args(argv)
    if a.task_texts:
        return main_task_texts(a.task_texts, a.out or os.path.join(common.WORK, f"corpus-tapt-{a.task_texts}"))
    if a.round2:
        out = a.out or (CORPUS2 if a.limit is None else f"{CORPUS2}-limit{a.limit}")
        return main_round2(a.limit, a.control, out)
    os.makedirs(CORPUS, exist_ok=True)
    texts, counts = common.pretrain_texts()
    # vocabulary coverage uses all shared text incl. validation texts (no labels involved)
    extra = sorted(common.validation_texts())
    build_vocab(texts + extra)
    out = os.path.join(CORPUS, "corpus.npz")
    if os.path.exists(out):
        print("corpus exists:", out)
        return
    ids, ws, offs = segment_and_tokenize(texts)
    tmp = out + ".tmp.npz"
    np.savez(tmp, ids=ids, word_start=ws, offsets=offs)
    os.replace(tmp, out)
    meta = {"texts": len(texts), "chars": sum(map(len, texts)), "tokens": int(len(ids)),
            "sources": counts, "vocab_size": sum(1 for _ in open(common.VOCAB, encoding="utf-8"))}
    with open(os.path.join(CORPUS, "meta.json"), "w") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
    print(json.dumps(meta, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

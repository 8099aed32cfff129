"""Build the trimmed vocabulary (tools/train/vocab.txt, committed) and the cached, jieba-segmented,
tokenized pre-training corpus (tools/train/work/corpus/, git-ignored).

    python tools/train/prepare.py            # idempotent: skips steps whose outputs exist

Vocabulary = tokens of bert-base-chinese-vocab.txt that WordPiece actually produces on the shared
text (all datasets except ChnSentiCorp) + every GB2312 level-1 character (the 3755 common simplified
CJK characters) present in the original vocab + single ASCII characters and their ##-forms + (no ##-forms of CJK
characters: BertTokenizer splits CJK one character per token, so those are never produced) +
the special tokens. Original order is kept, so [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.
"""
import collections
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CORPUS = os.path.join(common.WORK, "corpus")
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


def main():
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

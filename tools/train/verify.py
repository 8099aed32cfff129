"""Load every exported model in models/ with plain transformers and print predictions on sample sentences.

    python tools/train/verify.py            # exit status 1 if a model fails to load or models/ >= 60 MB
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

sys.path.insert(0, os.path.dirname(common.HERE))
import check_models  # noqa: E402  (CRF Viterbi, as finbert decodes)

SAMPLES = [
    "贵州茅台发布年报，净利润同比增长19%，超出市场预期。",
    "受疫情影响，多家航空公司一季度亏损扩大，股价大跌。",
    "中国人民银行宣布下调金融机构存款准备金率0.5个百分点。",
    "平安银行董事长谢永林表示，公司将继续推进零售转型。",
    "今天大盘震荡，成交量与昨日持平。",
]


def main():
    from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification,
                              BertTokenizerFast)
    ok = True
    total = 0
    for root, _, files in os.walk(common.MODELS):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    for name in sorted(os.listdir(common.MODELS)):
        d = os.path.join(common.MODELS, name)
        if not os.path.isfile(os.path.join(d, "config.json")):
            continue
        try:
            cfg = AutoConfig.from_pretrained(d)
            tok = BertTokenizerFast.from_pretrained(d)
            tokcls = "TokenClassification" in (cfg.architectures or [""])[0]
            m = (AutoModelForTokenClassification if tokcls else AutoModelForSequenceClassification).from_pretrained(d)
            m = m.float().eval()
        except Exception as e:  # noqa: BLE001
            print(f"{name}: FAILED to load: {e}")
            ok = False
            continue
        print(f"== {name} ({cfg.model_type}, {cfg.num_hidden_layers}L/{cfg.hidden_size}H, "
              f"{len(cfg.id2label)} labels, problem_type={cfg.problem_type})")
        with torch.no_grad():
            for s in SAMPLES:
                b = tok(s, return_tensors="pt", return_offsets_mapping=True)
                off = b.pop("offset_mapping")[0].tolist()
                lg = m(**b).logits[0]
                if tokcls:
                    crf = check_models.crf_of(d, torch)
                    path = (check_models.viterbi(lg[1:-1].tolist(), *crf) if crf else lg[1:-1].argmax(-1).tolist())
                    tags = ["O"] + [cfg.id2label[int(i)] for i in path] + ["O"]   # [CLS] ... [SEP]
                    ents, cur = [], None
                    for t, (a, z) in zip(tags, off):
                        if a == z or t == "O":
                            if cur:
                                ents.append(cur); cur = None
                            continue
                        p, ty = t.split("-", 1)
                        if p == "B" or not cur or cur[2] != ty:
                            if cur:
                                ents.append(cur)
                            cur = [a, z, ty]
                        else:
                            cur[1] = z
                    if cur:
                        ents.append(cur)
                    print("  ", s, "->", [(s[a:z], ty) for a, z, ty in ents])
                elif cfg.problem_type == "multi_label_classification":
                    p = torch.sigmoid(lg)
                    print("  ", s, "->", [cfg.id2label[i] for i in range(len(p)) if p[i] >= 0.5],
                          f"(top {cfg.id2label[int(p.argmax())]} {float(p.max()):.2f})")
                else:
                    p = torch.softmax(lg, -1)
                    print("  ", s, "->", cfg.id2label[int(p.argmax())], f"{float(p.max()):.2f}")
    print(f"models/ total size: {total / 1e6:.1f} MB")
    if total >= 60e6:
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

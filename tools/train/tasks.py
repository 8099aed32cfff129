"""Task datasets for fine-tuning: sentiment, type, industry, ner.

Every builder returns a dict with
  kind: "seq" (single-label), "multi" (multi-label) or "tok" (token classification)
  labels: list of label names (index = class id)
  train: list of examples, val: dict name -> list of examples (the first entry is the headline metric)
  sources: data sources for the model card
Sequence examples: {"text", "y"} (int, or list of ints for multi-label).
Token examples: {"text", "spans": [(start, end_excl, label)], "ignore": [(start, end_excl)], "source"}.
"""
import collections
import csv
import os
import re

import common

SENT_LABELS = ["negative", "neutral", "positive"]


def _majority(rows):
    """Collapse repeated texts to their majority label; ties are dropped. Returns rows, n_conflicting."""
    by = collections.defaultdict(list)
    for t, y in rows:
        by[t].append(y)
    out, conflicts = [], 0
    for t, ys in by.items():
        c = collections.Counter(ys).most_common()
        if len(c) > 1:
            conflicts += 1
            if c[0][1] == c[1][1]:
                continue
        out.append((t, c[0][0]))
    return out, conflicts


def sentiment():
    sp = common.sentiment_splits()
    fe_tr, fe_va = sp["finfe"]
    ne_tr, ne_va = sp["finne"]
    fe_tr_d, c1 = _majority(fe_tr)
    ne_tr_d, _ = _majority(ne_tr)
    fe_va_d, c2 = _majority(fe_va)
    train = [{"text": t, "y": y} for t, y in fe_tr_d + ne_tr_d]
    val = {
        "finfe_val_dedup": [{"text": t, "y": y} for t, y in fe_va_d],
        "finfe_val_all_rows": [{"text": t, "y": y} for t, y in fe_va],
        "finne_val": [{"text": t, "y": y} for t, y in ne_va],
    }
    notes = (f"FinFE train rows {len(fe_tr)} -> {len(fe_tr_d)} distinct texts (majority label; {c1} texts had "
             f"conflicting labels, ties dropped). Validation: 10 % of distinct FinFE texts by salted text hash "
             f"({len(fe_va)} rows, {len(fe_va_d)} distinct texts with a majority label; no validation text occurs in "
             f"training). FinNE: {len(ne_tr_d)} train / {len(ne_va)} validation sentences.")
    return {"kind": "seq", "labels": SENT_LABELS, "train": train, "val": val, "notes": notes,
            "sources": ["bbt-fincuge/finfe (train_list.json)", "bbt-fincuge/finne (train_list.json)"],
            "max_len": 128, "epochs": 4, "lr": 1e-4}


TYPE_MIN_COUNT = 30


def news_type():
    tr, va = common.finnl_split()
    cnt = collections.Counter(l for _, ls in tr + va for l in ls)
    labels = sorted([l for l, c in cnt.items() if c >= TYPE_MIN_COUNT], key=lambda l: -cnt[l])
    idx = {l: i for i, l in enumerate(labels)}
    dropped = sorted(l for l, c in cnt.items() if c < TYPE_MIN_COUNT)

    def conv(rows):
        out = []
        for t, ls in rows:
            ys = sorted({idx[l] for l in ls if l in idx})
            if ys:
                out.append({"text": t, "y": ys})
        return out

    tra, vaa = conv(tr), conv(va)
    notes = (f"FinNL labels with < {TYPE_MIN_COUNT} occurrences are dropped as upstream noise ({len(dropped)} labels: "
             f"{' '.join(dropped)}); rows left without a label are dropped. Validation: 10 % by salted text hash "
             f"({len(vaa)} texts); training {len(tra)} texts.")
    return {"kind": "multi", "labels": labels, "train": tra, "val": {"finnl_val": vaa}, "notes": notes,
            "sources": ["bbt-fincuge/finnl (train_list.json)"], "max_len": 256, "epochs": 6, "lr": 1.5e-4}


# ------------------------------------------------------------------------------------------------
# Industry (weak labels from the A-share list)
# ------------------------------------------------------------------------------------------------

MAP_CSV = os.path.join(common.HERE, "data", "industry_tushare_to_citic.csv")
_PREFIX = re.compile(r"^(S\*ST|\*ST|SST|ST|S|N|XD|XR|DR)(?=[\u4e00-\u9fff])")


def clean_company_name(n):
    n = re.sub(r"\s+", "", n.replace("\u3000", ""))
    n = _PREFIX.sub("", n)
    n = re.sub(r"[AＡBＢ]$", "", n) if len(n) > 3 else n
    return n


# listed-company short names that are mostly used as ordinary words or as media/place names in the texts
GENERIC_NAMES = {"机器人", "农产品", "太平洋", "老百姓", "太阳能", "中关村", "新华网", "人民网", "金融街"}


def industry_companies():
    m = {r["tushare_industry"]: r["citic_level1"] for r in csv.DictReader(open(MAP_CSV, encoding="utf-8"))}
    comp = {}
    for r in common.stock_rows():
        n = clean_company_name(r["name"])
        if len(n) < 3 or not re.search(r"[\u4e00-\u9fff]", n) or n in GENERIC_NAMES:
            continue
        comp.setdefault(n, (r["code"], m[r["industry"]], r["industry"]))
    return comp, m


def industry_texts():
    texts = []
    texts += [t for t, _ in common.finfe_rows()] + [t for t, _ in common.finne_rows()]
    texts += [t for t, _ in common.finnl_rows()] + common.finnsp_texts() + common.finese_texts()
    texts += common.finre_texts() + common.choice_texts() + common.tnews_texts() + common.thucnews_texts()
    texts += [t for t, _, _ in common.ner_all_raw()]
    seen, out = set(), []
    for t in texts:
        t = re.sub(r"\s+", " ", t or "").strip()
        if 4 <= len(t) and t not in seen:
            seen.add(t)
            out.append(t[:300])
    return out


def industry(dev=False):
    """dev: a development split for choosing training options without looking at the reported split: the
    held-out companies are dropped altogether, and 20 % of the others (another salt) play their part."""
    comp, mapping = industry_companies()
    labels = sorted(set(mapping.values()))
    idx = {l: i for i, l in enumerate(labels)}
    lens = sorted({len(n) for n in comp}, reverse=True)
    held = {n: common.is_val(c[0], "industry", 200) for n, c in comp.items()}
    val_company = {n: common.is_val(c[0], "industry-dev", 200) for n, c in comp.items()} if dev else held
    train, val = [], []
    n_multi = 0
    for t in industry_texts():
        found = set()
        for i in range(len(t)):
            for L in lens:
                if t[i:i + L] in comp:
                    found.add(t[i:i + L])
                    break
        if not found:
            continue
        if dev and any(held[n] for n in found):
            continue
        inds = {comp[n][1] for n in found}
        if len(inds) != 1:
            n_multi += 1
            continue
        y = idx[inds.pop()]
        isv = {val_company[n] for n in found}
        if isv == {True}:
            val.append({"text": t, "y": y, "company": sorted(found)[0]})
        elif isv == {False}:
            train.append({"text": t, "y": y, "company": sorted(found)[0]})
    # the training companies' names themselves (name morphology carries industry: 银行, 证券, 药业 ...)
    names = [{"text": n, "y": idx[c[1]], "company": n} for n, c in comp.items()
             if not val_company[n] and not (dev and held[n])]
    ntr_c = len({e["company"] for e in train})
    nva_c = len({e["company"] for e in val})
    notes = (f"Weak labels: a text gets the CITIC level-1 industry of the listed company it names (gazetteer: "
             f"{len(comp)} cleaned short names of length >= 3 from a-share-stock-list, minus the generic-word names "
             f"{' '.join(sorted(GENERIC_NAMES))}; texts naming companies of "
             f"different industries ({n_multi}) are skipped). Companies are split 80/20 by salted hash of the stock "
             f"code; validation = texts naming only held-out companies ({len(val)} texts, {nva_c} companies); "
             f"training = texts naming only training companies ({len(train)} texts, {ntr_c} companies) + "
             f"the {len(names)} training-company names as one-line examples.")
    return {"kind": "seq", "labels": labels, "train": train + names, "val": {"dev_companies" if dev else "heldout_companies": val},
            "notes": notes, "max_len": 128, "epochs": 5, "lr": 1.5e-4,
            "sources": ["a-share-stock-list (gazetteer + tushare industry)",
                        "texts: bbt-fincuge finfe/finne/finnl/finnsp/finese/finre, choice-news-headlines, tnews, "
                        "thucnews-titles, cluener2020, resume-ner, cfsc, msra-ner, peoples-daily-ner, weibo-ner"]}


# ------------------------------------------------------------------------------------------------
# NER
# ------------------------------------------------------------------------------------------------

NER_TYPES = ["company", "person", "organization", "government", "position", "location"]
NER_LABELS = ["O"] + [f"{p}-{t}" for t in NER_TYPES for p in ("B", "I")]

_GOV = re.compile(r"(政府|人大|人民代表大会|政协|委员会|国务院|法院|检察院|公安|党委|省委|市委|县委|区委|纪委|监察|"
                  r"部$|局$|厅$|署$|办公室$|办$|处$|中央|人民银行|央行|证监会|银保监会|银监会|保监会|发改委|财政)")
_ORG = re.compile(r"(大学|学院|学校|中学|小学|协会|学会|研究院|研究所|研究中心|医院|基金会|联合会|俱乐部|队$|会$|"
                  r"中心$|党|联盟|组织|社$|报$|台$|电视台)")
_COMP = re.compile(r"(公司|集团|银行|证券|股份|控股|有限|信托|保险|基金|投资|实业|科技|资本|资产|期货|券商|厂$|"
                   r"事务所|商行|企业|置业|地产|药业|电子|电器|汽车|航空|传媒|能源|矿业|化工|钢铁|物流|酒店)")


# Entity types each corpus annotates. A corpus that does not annotate a type says nothing about it: its
# unlabelled characters are "O or an entity of an unannotated type" in training (partial-label CRF), and
# predictions of an unannotated type are not scored on that corpus's sentences.
NER_SOURCE_TYPES = {
    "cluener2020": set(NER_TYPES),
    "resume-ner": set(NER_TYPES),
    "msra-ner": {"person", "location", "company", "government", "organization"},
    "peoples-daily-ner": {"person", "location", "company", "government", "organization"},
    "weibo-ner": {"person", "location", "company", "government", "organization"},
    "cfsc": {"company"},
}


def org_kind(name):
    """Heuristic company / government / organization for datasets whose ORG type mixes them; None = unsure."""
    if _COMP.search(name):
        return "company"
    if _GOV.search(name):
        return "government"
    if _ORG.search(name):
        return "organization"
    return None


def map_ner(text, spans, source):
    """Map a dataset's raw types onto NER_TYPES. Spans of types the model should not learn as O
    (ambiguous or unsupported there) are returned in `ignore` (their tokens get no loss and predictions
    overlapping them are not scored)."""
    out, ign = [], []
    for s, e, t in spans:
        lab = None
        if source == "cluener2020":
            lab = {"name": "person", "company": "company", "organization": "organization",
                   "government": "government", "position": "position", "address": "location"}.get(t)
            if t == "scene":
                ign.append((s, e)); continue
        elif source == "resume-ner":
            if t == "NAME":
                lab = "person"
            elif t == "TITLE":
                lab = "position"
            elif t == "LOC":
                lab = "location"
            elif t == "ORG":
                lab = org_kind(text[s:e])
                if lab is None:
                    ign.append((s, e)); continue
            elif t == "CONT":
                ign.append((s, e)); continue
        elif source in ("msra-ner", "peoples-daily-ner"):
            if t == "PER":
                lab = "person"
            elif t == "LOC":
                lab = "location"
            elif t == "ORG":
                lab = org_kind(text[s:e])
                if lab is None:
                    ign.append((s, e)); continue
        elif source == "weibo-ner":
            if t == "PER.NAM":
                lab = "person"
            elif t in ("LOC.NAM", "GPE.NAM"):
                lab = "location"
            elif t == "ORG.NAM":
                lab = org_kind(text[s:e])
                if lab is None:
                    ign.append((s, e)); continue
        elif source == "cfsc":
            if t == "Corporate":
                lab = "company"
            else:  # Stock (stock names, indices, sectors), Market, Economy: not our types, not reliably O
                ign.append((s, e)); continue
        if lab:
            out.append((s, e, lab))
    # drop overlapping spans (keep the first, longest)
    out.sort(key=lambda x: (x[0], -(x[1] - x[0])))
    clean, last = [], -1
    for s, e, l in out:
        if s >= last:
            clean.append((s, e, l)); last = e
    return clean, ign


def ner():
    tr, va = common.ner_split()

    def conv(rows):
        res = []
        for t, sp, src in rows:
            m, ig = map_ner(t, sp, src)
            res.append({"text": t, "spans": m, "ignore": ig, "source": src,
                        "types": sorted(NER_SOURCE_TYPES[src])})
        return res

    tra, vaa = conv(tr), conv(va)
    val = {"all": vaa}
    for src in sorted({e["source"] for e in vaa}):
        val[src] = [e for e in vaa if e["source"] == src]
    notes = (f"{len(tra)} training / {len(vaa)} validation sentences (10 % by salted text hash, per sentence, "
             f"over the union of the six corpora).")
    return {"kind": "tok", "labels": NER_LABELS, "train": tra, "val": val, "notes": notes,
            "max_len": 160, "epochs": 8, "lr": 3e-4, "crf": True,
            "sources": ["cluener2020 (train.json)", "resume-ner (train + dev)", "cfsc (CFSC-NER val.json)",
                        "msra-ner (val)", "peoples-daily-ner (dev)", "weibo-ner (train + dev)"]}


BUILDERS = {"sentiment": sentiment, "type": news_type, "industry": industry, "ner": ner}

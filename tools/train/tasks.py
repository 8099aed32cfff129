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
import hashlib
import os
import re
import unicodedata

import common

SENT_LABELS = ["negative", "neutral", "positive"]
SENTIMENT_SOURCES = ("finfe", "finne", "ths-events")   # the "source" of sentiment()'s training examples


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


# 同花顺 (THS) flash items carry the provider's event tags (raw.tagInfo). Tags whose polarity for the named company
# or market is conventional in finance (buy-backs, holdings increases, profit growth: positive; holdings cuts,
# losses, penalties: negative) label an item; routine tags (open-market operations, turnover, management changes,
# trading halts) label it neutral when it has no polar tag. Items with tags of both polarities are dropped.
THS_POSITIVE = {"业绩上升", "股份回购", "涨停", "连续涨停", "暴涨", "股东增持", "股东增持计划", "控股股东增持", "高管增持",
                "董事增持", "实际控制人增持", "董事长增持", "总经理增持", "副总经理增持", "完成增持计划", "扭亏为盈",
                "业绩预增", "承诺不减持", "终止减持", "中标", "重大合同"}
THS_NEGATIVE = {"业绩下降", "业绩亏损", "业绩预亏损", "由盈转亏", "股东减持", "高管减持", "控股股东减持", "董事减持",
                "实际控制人减持", "董事长减持", "总经理减持", "财务总监减持", "董事会秘书减持", "处罚整改", "罚款",
                "暴跌", "跌停", "个股黑天鹅", "跌破增发价", "利空因素"}
THS_NEUTRAL = {"央行逆回购", "高管变更", "设立子公司", "股票停复牌", "A股成交金额", "成交额", "集合竞价", "融资融券"}


def ths_event_sentiment():
    """(text, label, date) from THS flash items with event tags (see THS_POSITIVE / THS_NEGATIVE / THS_NEUTRAL)."""
    out, seen = [], set()
    for it in common.flash_items(raw=True):
        if it["source"] != "ths":
            continue
        tags = {t.get("name") for t in (it["raw"].get("tagInfo") or [])}
        pos, neg = bool(tags & THS_POSITIVE), bool(tags & THS_NEGATIVE)
        if pos and neg:
            continue
        y = 2 if pos else 0 if neg else 1 if tags & THS_NEUTRAL else None
        if y is None:
            continue
        for t in flash_texts(it):
            if t not in seen:
                seen.add(t)
                out.append((t, y, it["date"]))
    return out


def sentiment(round2=True):
    sp = common.sentiment_splits()
    fe_tr, fe_va = sp["finfe"]
    ne_tr, ne_va = sp["finne"]
    fe_tr_d, c1 = _majority(fe_tr)
    ne_tr_d, _ = _majority(ne_tr)
    fe_va_d, c2 = _majority(fe_va)
    train = ([{"text": t, "y": y, "source": "finfe"} for t, y in fe_tr_d]
             + [{"text": t, "y": y, "source": "finne"} for t, y in ne_tr_d])
    val = {
        "finfe_val_dedup": [{"text": t, "y": y} for t, y in fe_va_d],
        "finfe_val_all_rows": [{"text": t, "y": y} for t, y in fe_va],
        "finne_val": [{"text": t, "y": y} for t, y in ne_va],
    }
    notes = (f"FinFE train rows {len(fe_tr)} -> {len(fe_tr_d)} distinct texts (majority label; {c1} texts had "
             f"conflicting labels, ties dropped). Validation: 10 % of distinct FinFE texts by salted text hash "
             f"({len(fe_va)} rows, {len(fe_va_d)} distinct texts with a majority label; no validation text occurs in "
             f"training). FinNE: {len(ne_tr_d)} train / {len(ne_va)} validation sentences.")
    sources = ["bbt-fincuge/finfe (train_list.json)", "bbt-fincuge/finne (train_list.json)"]
    if round2:
        ev_tr, ev_va = [], []
        for t, y, date in ths_event_sentiment():
            (ev_va if common.is_val(date, "ths-events", 200) else ev_tr).append(
                {"text": t, "y": y, "source": "ths-events"})
        train += ev_tr
        val["ths_event_tags_days"] = ev_va
        cnt = collections.Counter(SENT_LABELS[e["y"]] for e in ev_tr)
        notes += (f" Round 2 adds finance news: 同花顺 flash items (cls-flash-news-2026, research use) labelled by the "
                  f"provider's event tags: positive for {' '.join(sorted(THS_POSITIVE))}; negative for "
                  f"{' '.join(sorted(THS_NEGATIVE))}; neutral for routine tags ({' '.join(sorted(THS_NEUTRAL))}) "
                  f"without a polar tag; items with tags of both polarities are dropped. Titles and bodies: "
                  f"{len(ev_tr)} training texts ({', '.join(f'{k} {v}' for k, v in sorted(cnt.items()))}); "
                  f"validation: {len(ev_va)} texts of held-out days (20 % of the days by salted hash).")
        sources.append("cls-flash-news-2026 (research use; 同花顺 event tags -> sentiment)")
    return {"kind": "seq", "labels": SENT_LABELS, "train": train, "val": val, "notes": notes,
            "sources": sources, "max_len": 128, "epochs": 4, "lr": 1e-4}


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


NO_INDUSTRY = "无单一行业"  # "no single industry": macro, index, commodity, FX, rates, market-wide news

# Flash-news column / topic tags of items about markets as a whole (used only for items that name no stock)
MACRO_SUBJECTS = {
    "环球市场情报", "期货市场情报", "美股动态", "原油市场动态", "盘面直播", "能源类期货", "海外大宗商品", "航运期货",
    "黄金", "碳中和期货", "沪深港通资金动向", "美国宏观速递", "券商策略", "外汇期货", "美联储动态", "人民币大新闻",
    "港股动态", "外围股指", "美元(USD)", "商品期货", "主力合约", "原油期货", "人民银行", "美联储", "成交额",
    "A股市场", "黄金概念", "主力动向"}
NO_INDUSTRY_TRAIN = 6000
_FLASH_HEAD = re.compile(r"^【[^】]*】")
_FLASH_DATELINE = re.compile(r"^(财联社|智通财经|格隆汇)?\d{1,2}月\d{1,2}日(电|讯)?[，,：:]?")


def flash_texts(item, body_chars=150):
    """The title (when it has one) and the body of a flash-news item, body without the 【title】 head and the
    dateline, cut to body_chars: finbert_industry is applied to headlines and to bodies alike."""
    out = []
    title = re.sub(r"\s+", " ", item["title"]).strip()
    body = re.sub(r"\s+", " ", _FLASH_DATELINE.sub("", _FLASH_HEAD.sub("", item["content"].strip()))).strip()
    if len(title) >= 6:
        out.append(title)
    if len(body) >= 10 and body != title:
        out.append(body[:body_chars])
    return out


def flash_industry(comp):
    """Industry examples from flash news: (text, citic label or NO_INDUSTRY, codes, date).
    An item whose linked stocks are all known and share one CITIC industry gets that industry; an item whose
    known stocks span >= 3 industries (market wraps), or that names no stock and carries a market-wide column
    tag (MACRO_SUBJECTS), gets NO_INDUSTRY. Items with unknown stocks (listed after the 2018 list) are skipped."""
    by_code = {c[0]: (n, c[1]) for n, c in comp.items()}
    out, seen = [], set()
    for it in common.flash_items():
        codes, unknown = set(), False
        for st in it["stocks"]:
            code = (st.get("code") or "").split(".")[0]
            name = clean_company_name(st.get("name") or "")
            if code in by_code:
                codes.add(code)
            elif name in comp:
                codes.add(comp[name][0])
            else:
                unknown = True
        if it["stocks"]:
            if unknown or not codes:
                continue
            inds = {by_code[c][1] for c in codes}
            if len(inds) == 1:
                lab = inds.pop()
            elif len(inds) >= 3:
                lab = NO_INDUSTRY
            else:
                continue
        elif MACRO_SUBJECTS & set(it["subjects"]):
            lab = NO_INDUSTRY
        else:
            continue
        for t in flash_texts(it):
            if t not in seen:
                seen.add(t)
                out.append((t, lab, sorted(codes), it["date"]))
    return out


def industry(dev=False, flash=True):
    """dev: a development split for choosing training options without looking at the reported split: the
    held-out companies are dropped altogether, and 20 % of the others (another salt) play their part.
    flash: add the flash-news examples and the NO_INDUSTRY class (round 2)."""
    comp, mapping = industry_companies()
    labels = sorted(set(mapping.values())) + ([NO_INDUSTRY] if flash else [])
    idx = {l: i for i, l in enumerate(labels)}
    lens = sorted({len(n) for n in comp}, reverse=True)
    held = {n: common.is_val(c[0], "industry", 200) for n, c in comp.items()}
    val_company = {n: common.is_val(c[0], "industry-dev", 200) for n, c in comp.items()} if dev else held
    held_code = {c[0]: held[n] for n, c in comp.items()}
    val_code = {c[0]: val_company[n] for n, c in comp.items()}
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
    vname = "dev_companies" if dev else "heldout_companies"
    vals = {vname: val}
    sources = ["a-share-stock-list (gazetteer + tushare industry)",
               "texts: bbt-fincuge finfe/finne/finnl/finnsp/finese/finre, choice-news-headlines, tnews, "
               "thucnews-titles, cluener2020, resume-ner, cfsc, msra-ner, peoples-daily-ner, weibo-ner"]
    if flash:
        fl_tr, fl_va, no_tr, no_va = [], [], [], []
        for t, lab, codes, date in flash_industry(comp):
            if lab == NO_INDUSTRY:
                # split by date: the same event is reported by 2-3 sources on one day
                (no_va if common.is_val(date, "industry-no-single", 200) else no_tr).append(
                    {"text": t, "y": idx[lab], "company": ""})
                continue
            if dev and any(held_code[c] for c in codes):
                continue
            isv = {val_code[c] for c in codes}
            e = {"text": t, "y": idx[lab], "company": codes[0]}
            if isv == {True}:
                fl_va.append(e)
            elif isv == {False}:
                fl_tr.append(e)
        n_no = len(no_tr)
        no_tr = sorted(no_tr, key=lambda e: hashlib.md5(e["text"].encode("utf-8")).hexdigest())[:NO_INDUSTRY_TRAIN]
        vals[vname + "_flash"] = fl_va
        vals["no_single_industry_days"] = no_va
        train = train + fl_tr + no_tr
        notes += (f" Round 2 adds flash news (cls-flash-news-2026, research-use licence): items whose linked stocks "
                  f"share one industry ({len(fl_tr)} training texts, titles and bodies; {len(fl_va)} validation "
                  f"texts of held-out companies, reported separately), and the class {NO_INDUSTRY} (no single "
                  f"industry) from items that link stocks of >= 3 industries or that link no stock and carry a "
                  f"market-wide column tag (global markets, futures, FX, rates, index moves; "
                  f"{len(no_tr)} training texts, a fixed hash-ordered sample of {n_no} so that the class is not "
                  f"half of the training set; validation: {len(no_va)} texts of held-out days, 20 % of the "
                  f"days by salted hash).")
        sources.append("cls-flash-news-2026 (research use; linked stocks -> industry, column tags -> "
                       f"{NO_INDUSTRY})")
    return {"kind": "seq", "labels": labels, "train": train + names, "val": vals,
            "notes": notes, "max_len": 128, "epochs": 5, "lr": 1.5e-4, "sources": sources,
            "config": {"finbert_no_industry_label": NO_INDUSTRY} if flash else {}}


# ------------------------------------------------------------------------------------------------
# NER
# ------------------------------------------------------------------------------------------------

NER_TYPES = ["company", "person", "organization", "government", "position", "location"]
NER_LABELS = ["O"] + [f"{p}-{t}" for t in NER_TYPES for p in ("B", "I")]

_GOV = re.compile(r"(政府|人大|人民代表大会|政协|委员会|国务院|法院|检察院|公安|党委|省委|市委|县委|区委|纪委|监察|"
                  r"部$|局$|厅$|署$|办公室$|办$|处$|中央|人民银行|央行|证监会|银保监会|银监会|保监会|发改委|财政)")
_GOV_FIRST = re.compile(r"(人民银行|中央银行|央行|证监会|银保监会|银监会|保监会|金融监管总局|外汇管理局|外汇局|发改委|"
                        r"国资委|财政部|商务部|国务院)")
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
    "msra-ner-train": {"person", "location", "company", "government", "organization"},
    "flash-weak": {"company"},  # linked stock names; possible unlinked companies are ignored spans
    "peoples-daily-ner": {"person", "location", "company", "government", "organization"},
    "weibo-ner": {"person", "location", "company", "government", "organization"},
    "cfsc": {"company"},
}


def org_kind(name):
    """Heuristic company / government / organization for datasets whose ORG type mixes them; None = unsure.
    Central bank and regulators first: 中国人民银行 ends in 银行 but is not a company (msra-ner-train names it
    hundreds of times)."""
    if _GOV_FIRST.search(name):
        return "government"
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
        elif source in ("msra-ner", "msra-ner-train", "peoples-daily-ner"):
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


_TITLE_BEFORE_NAME = re.compile(r"(董事长|副董事长|总经理|副总经理|总裁|副总裁|董事会秘书|董秘|独立董事|董事|监事会主席|"
                                r"财务总监|首席执行官|CEO|创始人|实控人|实际控制人)([\u4e00-\u9fff]{2,3})")
FLASH_WEAK_MAX = 8000


_COMPANYISH = re.compile(r"[\u4e00-\u9fffA-Za-z]{1,10}(公司|集团|银行|证券|股份|控股|科技|汽车|电子|能源|医药|药业)")


_GENERIC_COMPANY = re.compile(r"^(多家|一家|两家|几家|数家|各家|该|本|这|此|各|其|旗下|上市|子|母|全资|控股子)")


# The flash feeds link more than companies by the same `stocks` field: indices (创业板指 is sz399006, 科创50
# sh000688), index futures (中证500期指), commodity futures (沪金, 原油, LPG) and funds (证券ETF天弘). The upstream
# record says which: THS gives each link a market number, CLS a StockID. Round 2 took every linked name as a
# company, which taught the model 创业板指 and 科创50 as companies.
_THS_SHARE_MARKETS = {"17", "33", "34", "21", "22", "37", "151", "145",  # Shanghai, Shenzhen (A, B, ST, delisted), BSE, NEEQ
                      "177", "178", "169", "185", "170"}                  # Hong Kong, NYSE, NASDAQ, other US listings
_THS_NOT_COMPANY_MARKETS = {"20", "36",               # funds (ETF, LOF)
                            "65", "66", "67", "129"}  # commodity futures (SHFE, DCE, CZCE), index futures (CFFEX)
_CLS_INDEX_PREFIXES = ("sz399", "sh000", "sz980")
# Listed companies whose short name is an everyday word, so most matches in text are the word (机器人概念股,
# 太平洋地区): found as the linked or listed names that jieba's dictionary has with frequency >= 150, then read
# (苹果, 百度, 中国移动 and other companies that news names by that word stay companies).
WORD_STOCK_NAMES = frozenset("老百姓 太平洋 京城 智慧 农产品 大西洋 山水 枢纽 新城 万里 前锋 亚历山大 太阳能 机器人 生化 贝壳 "
                             "松江 三维 长白山 星期六 向日葵 张家界 祁连山 王府井 指南针 峨眉山 康宁 中关村".split())


def flash_links(item):
    """The names an item of flash_items(raw=True) links, as (companies, not companies, unsure). Unsure: links
    of markets not known here (THS 186 is an over-the-counter list with names such as `Energy`, `Lite`), the
    everyday-word names, and eastmoney's links (codes only)."""
    comp, other, unsure = set(), set(), set()
    raw = item.get("raw") or {}
    if item["source"] == "ths":
        links = [((s.get("name") or "").strip(), s.get("stockMarket")) for s in raw.get("stock") or []]
        for n, m in links:
            (comp if m in _THS_SHARE_MARKETS else other if m in _THS_NOT_COMPANY_MARKETS else unsure).add(n)
    elif item["source"] == "cls":
        for s in raw.get("stock_list") or []:
            n, sid = (s.get("name") or "").strip(), s.get("StockID") or ""
            (other if sid.startswith(_CLS_INDEX_PREFIXES) else comp if sid else unsure).add(n)
    named = {(st.get("name") or "").strip() for st in item["stocks"]}
    unsure |= named - comp - other  # linked in `stocks` but not in the raw record: not classified
    word = comp & WORD_STOCK_NAMES
    comp, unsure = comp - word, unsure | word
    return ({n for n in comp if len(n) >= 2}, {n for n in other if len(n) >= 2} - comp,
            {n for n in unsure if len(n) >= 2} - comp - other)


def flash_weak_ner(exclude):
    """Weak finance NER from flash news: the names of an item's linked companies where they occur in its text
    (company), and board members of a-share-executives named right after a job title (person). These texts are
    a corpus that annotates companies (source flash-weak): a token outside the linked names is taught not to be
    part of a company, which gives the boundaries and the negatives (北向资金, 产能, and the linked indices,
    futures and funds: 创业板指, 沪金, flash_links; a text that names one of those is kept even when it names
    no linked company). Strings that may be unlinked companies are left open: any
    name of the company gazetteer (every linked company name of the flash news, the A-share list), anything
    ending like a company name (…公司, …集团, …银行), and links of unsure kind. Persons are positive-only (person
    tokens elsewhere stay open). Texts of any validation split (exclude) are skipped."""
    execs = {n for n, _ in common.executives() if 2 <= len(n) <= 3}
    items = common.flash_items(raw=True)
    links = [flash_links(it) for it in items]
    not_comp = set().union(*(o for _, o, _ in links))
    gaz = set().union(*(c for c, _, _ in links)) | set().union(*(u for _, _, u in links))
    gaz |= {clean_company_name(r["name"]) for r in common.stock_rows()}
    gaz = sorted({g for g in gaz - not_comp if len(g) >= 2}, key=len, reverse=True)
    gaz_re = re.compile("|".join(re.escape(g) for g in gaz))
    out, seen = [], set()
    for it, (comp, other, unsure) in zip(items, links):
        names = sorted(comp, key=len, reverse=True)
        for t in flash_texts(it):
            if t in seen or t in exclude:
                continue
            seen.add(t)
            spans, used = [], [False] * len(t)
            for n in names:
                for m in re.finditer(re.escape(n), t):
                    if not any(used[m.start():m.end()]):
                        spans.append((m.start(), m.end(), "company"))
                        for k in range(m.start(), m.end()):
                            used[k] = True
            if not spans and not any(o in t for o in other):  # a text naming a linked index is a negative
                continue
            for m in _TITLE_BEFORE_NAME.finditer(t):
                n = m.group(2)
                cand = n if n in execs else (n[:2] if n[:2] in execs and len(n) == 3 else None)
                if cand and not any(used[m.start(2):m.start(2) + len(cand)]):
                    spans.append((m.start(2), m.start(2) + len(cand), "person"))
                    for k in range(m.start(2), m.start(2) + len(cand)):
                        used[k] = True
            ignore = []
            for m in list(gaz_re.finditer(t)) + list(_COMPANYISH.finditer(t)):
                if _GENERIC_COMPANY.match(m.group(0)):  # 多家航空公司, 该公司: no name, taught as O
                    continue
                if not any(used[m.start():m.end()]):
                    ignore.append((m.start(), m.end()))
            for n in unsure:
                for m in re.finditer(re.escape(n), t):
                    if not any(used[m.start():m.end()]):
                        ignore.append((m.start(), m.end()))
            out.append({"text": t, "spans": sorted(spans), "ignore": sorted(ignore), "source": "flash-weak",
                        "types": ["company"]})
    out.sort(key=lambda e: hashlib.md5(e["text"].encode("utf-8")).hexdigest())
    return out[:FLASH_WEAK_MAX], len(out)


def ner(round2=True):
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
    sources = ["cluener2020 (train.json)", "resume-ner (train + dev)", "cfsc (CFSC-NER val.json)",
               "msra-ner (val)", "peoples-daily-ner (dev)", "weibo-ner (train + dev)"]
    separate = []
    if round2:
        def norm(t):
            return re.sub(r"\s+", "", unicodedata.normalize("NFKC", t))
        held = {norm(e["text"]) for e in vaa}
        mt_tr, mt_va, n_overlap = [], [], 0
        train_texts = {norm(e["text"]) for e in tra}
        for e in conv(common.ner_msra_train()):
            k = norm(e["text"])
            if k in held:  # msra-ner/val and peoples-daily-ner/dev were carved from this file
                n_overlap += 1
                continue
            if k in train_texts:
                continue
            (mt_va if common.is_val(k, "msra-ner-train") else mt_tr).append(e)
        weak, n_weak = flash_weak_ner({e["text"] for e in vaa} | {e["text"] for e in mt_va})
        tra = tra + mt_tr + weak
        val["msra-ner-train"] = mt_va
        separate = ["msra-ner-train"]
        notes += (f" Round 2 adds msra-ner-train: {len(mt_tr)} training sentences and a validation split of its own "
                  f"({len(mt_va)} sentences, 10 % by salted hash of the NFKC text, reported as msra-ner-train); "
                  f"{n_overlap} of its sentences are validation sentences of the union above (msra-ner/val and "
                  f"peoples-daily-ner/dev were carved from it) and are left out of training. It also adds "
                  f"{len(weak)} flash-news texts (a hash-ordered sample of {n_weak}; cls-flash-news-2026, research "
                  f"use) with weak spans: the names of the linked listed companies where they occur (company; the "
                  f"texts count as annotating companies, so the linked indices, futures and funds such as 创业板指 "
                  f"and 沪金 are taught as not companies, tasks.flash_links; left open are strings that may be "
                  f"unlinked companies: names of the company gazetteer — every linked company name, the A-share "
                  f"list — and strings ending like a company name, and listed companies whose short name is an "
                  f"everyday word such as 机器人) and a-share-executives board members named right after a job "
                  f"title such as 董事长 (person, positive-only: other person tokens stay open).")
        sources += ["msra-ner-train (msra_train_bio.filtered)",
                    "cls-flash-news-2026 (research use; weak company / person spans)",
                    "a-share-executives (person-name gazetteer for the weak spans)"]
    return {"kind": "tok", "labels": NER_LABELS, "train": tra, "val": val, "val_separate": separate,
            "notes": notes, "max_len": 160, "epochs": 8, "lr": 3e-4, "crf": True, "sources": sources}


BUILDERS = {"sentiment": sentiment, "type": news_type, "industry": industry, "ner": ner}

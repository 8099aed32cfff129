"""Model cards (models/<name>/README.md) generated from the training run's metrics."""
import json
import os

import common

LICENSES = {
    "bbt-fincuge": "BBT-FinCUGE (ssymmetry/BBT-FinCUGE-Applications): no license stated; research-use benchmark data",
    "a-share-stock-list": "a-share-stock-list (tushare dump via Data-Reactor/Cute-Crawlers): no license stated; public listing facts",
    "choice-news-headlines": "choice-news-headlines: MIT",
    "tnews": "TNEWS (CLUE): no data license stated; host repo Apache-2.0",
    "thucnews-titles": "THUCNews titles: host repo MIT; THUCTC research data",
    "cluener2020": "CLUENER2020: no license stated; research use",
    "resume-ner": "Resume NER (Zhang & Yang 2018): no license stated; research use",
    "cfsc": "CFSC: no license stated",
    "msra-ner": "MSRA NER (SIGHAN 2006): repo MIT; data for research use",
    "peoples-daily-ner": "People's Daily 1998 NER: no license stated; research use",
    "weibo-ner": "Weibo NER: annotations CC BY-SA 3.0; messages under Weibo terms",
    "smp2020-ewect": "SMP2020-EWECT: no license stated; research use (pre-training text only)",
    "vocab": "bert-base-chinese vocabulary: Apache-2.0 (trimmed)",
    "msra-ner-train": "MSRA NER training file (SIGHAN 2006, via a public zip): no license stated; research use",
    "cls-flash-news-2026": "cls-flash-news-2026 (财联社 / 同花顺 / 东方财富 flash news, archived by "
                           "echo-stacker/cailianshe-daily-archive): no license file; the archive states research use; "
                           "texts © the outlets. Used for training only; no text is redistributed with the model",
    "readhub-news": "readhub-news (real-time-news/readhub archive): MIT for the archive code; no licence for the "
                    "text (Readhub summaries): research / internal use, training only, not redistributed",
    "xinwenlianbo": "xinwenlianbo (landv/xwlb transcripts, © CCTV): no licence; research use, pre-training only, "
                    "not redistributed",
    "cn-laws": "cn-laws (national laws): public domain (Copyright Law of the PRC, art. 5)",
    "a-share-executives": "a-share-executives (lemonhu/stock-knowledge-graph): MIT; public listing facts, names used "
                          "as weak labels only (not republished)",
}

PRETRAIN2_SOURCES = ["cls-flash-news-2026", "readhub-news", "xinwenlianbo", "cn-laws"]
PRETRAIN_SOURCES = ["bbt-fincuge", "choice-news-headlines", "tnews", "thucnews-titles", "smp2020-ewect",
                    "cluener2020", "resume-ner", "cfsc", "msra-ner", "peoples-daily-ner", "weibo-ner"]

TITLES = {"sentiment": "financial sentiment (negative / neutral / positive)",
          "type": "financial news type (multi-label)",
          "industry": "industry of the company a text is about (CITIC level-1, weak labels)",
          "ner": "named entities: company, person, organization, government, position, location"}


def _table_seq(name, r):
    lines = [f"**{name}** (n = {r['n']}): accuracy **{r['accuracy']:.4f}**, macro-F1 {r['macro_f1']:.4f}"
             + (f", top-3 accuracy {r['top3_accuracy']:.4f}" if len(r['per_class']) > 3 else ""), "",
             "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for c, v in r["per_class"].items():
        if v["support"]:
            lines.append(f"| {c} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']} |")
    return lines


def _table_multi(name, r):
    lines = [f"**{name}** (n = {r['n']}, threshold {r.get('threshold', 0.5)} on each sigmoid): micro-F1 **{r['micro_f1']:.4f}** "
             f"(P {r['micro_precision']:.4f}, R {r['micro_recall']:.4f}), macro-F1 {r['macro_f1']:.4f}, "
             f"exact-set match {r['exact_match']:.4f}", "",
             "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for c, v in r["per_class"].items():
        lines.append(f"| {c} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']} |")
    return lines


def _table_ner(res):
    types = list(next(iter(res.values()))["per_type"])
    lines = ["Entity-level exact character-span F1 (precision / recall in the JSON next to the training log). "
             "Predictions overlapping an *ignored* gold span (see label mapping) are not scored.", "",
             "| validation subset | sentences | " + " | ".join(types) + " | micro-F1 |",
             "|---|---|" + "---|" * len(types) + "---|"]
    for name, r in res.items():
        cells = []
        for t in types:
            v = r["per_type"][t]
            cells.append(f"{v['f1']:.4f} ({v['support']})" if v["support"] else "–")
        lines.append(f"| {name} | {r['n']} | " + " | ".join(cells) + f" | {r['micro_f1']:.4f} |")
    lines += ["", "Cells: F1 (number of gold spans)."]
    return lines


NER_MAPPING = """| dataset | raw type | finbert label |
|---|---|---|
| cluener2020 | name / company / organization / government / position / address | person / company / organization / government / position / location |
| cluener2020 | scene | ignored (no loss, not scored) |
| cluener2020 | game, book, movie | O |
| resume-ner | NAME / TITLE / LOC | person / position / location |
| resume-ner | ORG | company, government or organization by name heuristic (`tasks.org_kind`), else ignored |
| resume-ner | CONT (nationality), EDU, PRO, RACE | ignored / O / O / O |
| msra-ner, peoples-daily-ner | PER / LOC | person / location |
| msra-ner, peoples-daily-ner | ORG | company, government or organization by name heuristic, else ignored |
| weibo-ner | PER.NAM / LOC.NAM, GPE.NAM | person / location |
| weibo-ner | ORG.NAM | name heuristic, else ignored |
| weibo-ner | *.NOM (nominal mentions) | O |
| cfsc | Corporate | company |
| cfsc | Stock, Market, Economy | ignored |

Name heuristic (`org_kind`): company if the name contains 公司/集团/银行/证券/股份/控股/有限/信托/保险/基金/投资/
实业/科技/资本/资产/期货/… ; otherwise government if it matches 政府/人大/政协/委员会/法院/检察院/党委/…局/…厅/…部/央行/证监会/…;
otherwise organization if it matches 大学/学院/学校/协会/学会/研究院/研究所/医院/基金会/联合会/俱乐部/…队/…中心/…;
otherwise the span is ignored.

**Partial annotation.** Not every corpus annotates every type: CFSC annotates only companies, and
msra/peoples-daily/weibo do not annotate positions (`tasks.NER_SOURCE_TYPES`). In training, an unlabelled
character of such a corpus may be O *or* part of an entity of a type that corpus does not annotate (the CRF
likelihood sums over those paths), so the model is not taught that the persons of CFSC's financial news are O.
In evaluation, predictions of a type the sentence's corpus does not annotate are not scored."""


def write_card(out, task, data, info):
    name = os.path.basename(out.rstrip("/"))
    exp = info["export"]
    enc = info["encoder"]
    if "step" not in enc and enc.get("runs"):  # models/finbert-base's pretrain_state.json: runs, total_steps
        enc = dict(enc, step=enc["total_steps"], shipped_base=True)
    cfg = json.load(open(os.path.join(out, "config.json")))
    nparams = None
    try:
        from safetensors import safe_open
        with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
            nparams = sum(f.get_slice(k).get_shape().__len__() and
                          __import__("math").prod(f.get_slice(k).get_shape()) for k in f.keys())
    except Exception:
        pass
    L = [f"# {name}", "",
         f"Small Chinese BERT ({cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, "
         f"{cfg['num_attention_heads']} heads, vocabulary {cfg['vocab_size']}) fine-tuned for "
         f"**{TITLES[task]}**. Starter model shipped with finbert; trained on CPU by `tools/train/` from the public "
         f"datasets in `../shared/data`. It is far smaller than FinBERT-base and is meant for the demo, tests and "
         f"users without their own checkpoint.", "",
         "## Files", "",
         f"- `config.json` (`model_type` bert, `{cfg.get('architectures', ['?'])[0]}`"
         + (f", `problem_type` {cfg['problem_type']}" if cfg.get("problem_type") else "") + ", `id2label`/`label2id`)",
         f"- `model.safetensors`: {exp['weights_dtype']} weights, {exp['safetensors_bytes'] / 1e6:.1f} MB"
         + (f", {nparams / 1e6:.2f} M parameters" if nparams else ""),
         "- `vocab.txt`, `tokenizer_config.json`: BertTokenizer, `do_lower_case=True`, CJK split "
         "per character; vocabulary trimmed from bert-base-chinese (tokens the corpus uses + GB2312 level-1 characters); "
         "no `tokenizer.json` (finbert and BertTokenizerFast build the tokenizer from these two files)",
         "", "## Labels", ""]
    L += [" ".join(f"`{i}` {l}" for i, l in enumerate(data["labels"]))]
    if data["kind"] == "multi":
        t = (info.get("calibration") or {}).get("threshold", 0.5)
        L += ["", f"Multi-label: apply a sigmoid per label; labels with probability ≥ {t} are predicted"
              + (" (`finbert_threshold` in `config.json`, chosen on a calibration split carved from the training "
                 "data, see Training data; `finbert_scores()` returns the probabilities, `finbert_type()` the most "
                 "probable label)." if t != 0.5 else ".")]
    if task == "ner":
        L += ["", "BIO tags over characters/tokens. Label mapping from the source datasets:", "", NER_MAPPING]
        if info.get("crf"):
            L += ["", "**CRF head.** A linear-chain CRF sits on the token classifier (tensors `crf.transitions` "
                  "[from, to], `crf.start_transitions`, `crf.end_transitions`, pytorch-crf names) and was trained "
                  "jointly (CRF negative log-likelihood over the text tokens; an ignored span leaves its tags free). "
                  "finbert decodes the tags with Viterbi over the text tokens. Hugging Face "
                  "`BertForTokenClassification` loads the same directory but ignores the `crf.*` tensors: its "
                  "logits are the CRF's emissions, so decode them with the transitions (as "
                  "`tools/check_models.py` does) to reproduce finbert's labels."]
    L += ["", "## Training data", ""]
    for s in data["sources"]:
        L.append(f"- {s}")
    L += ["", data["notes"], "",
          "Encoder: masked-LM pre-training ("
          + ("whole-word masking with jieba" if enc.get("masking", "wwm") == "wwm" else
             "single-token masking in its last run (`pretrain.py --masking char`), whole-word masking with jieba "
             "before it")
          + ") of the same architecture on all Chinese "
          "text of the shared training splits (" + ", ".join(PRETRAIN_SOURCES) + "), excluding ChnSentiCorp "
          "(restrictive license) and the texts of the labeled validation splits used here. "
          + (f"The encoder weights are those of the shipped `{_init_name(enc)}` model (see Round 2: encoder below)."
             if _init_other(task, enc) else
             f"The encoder weights are the {_warm_start(enc)[0]} model's (see {_warm_start(enc)[2]} below); its "
             f"card named the pre-training checkpoint it started from." if enc.get("init_model") else
             f"Encoder checkpoint used: pre-training step {enc.get('step', '?')}"
             + (f" of a run continued from an encoder with {enc['prior_steps']} earlier steps"
                if enc.get("prior_steps") else "")
             + (f" (monitor MLM loss {enc['loss']:.3f})." if "loss" in enc else
                " (the shipped `models/finbert-base`; its runs: tools/train/README.md, Status, Round 1).")), "",
          "Licenses of the sources:", ""]
    used = set()
    for s in data["sources"] + PRETRAIN_SOURCES + (PRETRAIN2_SOURCES if enc.get("corpus") == "corpus2" or _init_other(task, enc) else []) + ["vocab"]:
        key = s.split(" ")[0].split("/")[0]
        if key in LICENSES and key not in used:
            used.add(key)
            L.append(f"- {LICENSES[key]}")
    L += ["- Not used anywhere: ChnSentiCorp (Baidu LUGE agreement forbids redistribution).", "",
          "## Validation metrics", "",
          "Measured on validation splits carved from the shared training data with a fixed salted hash "
          "(see the notes above); no model selection or early stopping on them (fixed epochs).", ""]
    for nm, r in info["metrics"].items():
        if data["kind"] == "seq":
            L += _table_seq(nm, r) + [""]
        elif data["kind"] == "multi":
            L += _table_multi(nm, r) + [""]
    if data["kind"] == "tok":
        L += _table_ner(info["metrics"]) + [""]
    if task == "sentiment":
        L += ["`finfe_val_dedup` is the de-duplicated figure (each distinct text once, majority label; FinFE's "
              "training file repeats texts, sometimes with conflicting labels); `finfe_val_all_rows` keeps the "
              "repeated rows. No validation text occurs in the training data. Reference: FinBERT-base reports "
              "F1 0.895 on 4-class financial sentiment (different data).", ""]
    if task == "ner":
        L += ["Reference: FinBERT-base reports F1 0.922 on company names and 0.917 on person names (different data).",
              ""]
    total = _pretrain_total()
    # a continued run (prior_steps) is not an interim checkpoint of the first run
    interim = (enc.get("step") is not None and not enc.get("prior_steps") and not enc.get("shipped_base") and total
               and enc["step"] < total)
    if interim:
        L += ["## Status", "",
              f"**Interim model.** It was fine-tuned from pre-training checkpoint step {enc['step']} of {total}: "
              f"an almost untrained encoder (MLM loss still on its early plateau; pre-training on one 2-core CPU was "
              f"stopped to leave the CPU to fine-tuning). Re-running pre-training further and then this model's "
              f"command below should raise the figures above.", ""]
    if enc.get("intermediate"):
        im = enc["intermediate"]
        ds = ", ".join(f"{k} ({v['examples']} texts, {v['labels']} labels)" for k, v in im["datasets"].items())
        L += ["## Intermediate training", "",
              f"Between pre-training and this fine-tuning the encoder was trained for {im['epochs']} epoch(s) "
              f"({im['steps']} steps, lr {im['lr']}) on other labelled sentence datasets of the shared data, one "
              f"linear head each on the pooled [CLS] vector (tools/train/intermediate.py): {ds}. tnews/thucnews: "
              f"news topic; ewect: emotion of Weibo posts; finese: financial negative-event type; finnsp: "
              f"negative financial news or not. None of these labels is a finbert task label, and every text of "
              f"the validation splits reported above (and of the industry held-out companies) was left out.", ""]
    if not interim and enc.get("step") is not None:
        L += ["## Encoder", "",
              f"Fine-tuned from finbert's own pre-trained encoder (tools/train/pretrain.py: whole-word-masking MLM on "
              f"the shared Chinese text, {enc['step'] + enc.get('prior_steps', 0)} steps of 32 x 128 tokens, "
              + (f"final MLM loss {enc['loss']:.2f}). " if "loss" in enc else
                 "the shipped `models/finbert-base`, whose `pretrain_state.json` lists the runs). ")
              + (f"The last {enc['step']} steps continued the shipped encoder on the round-2 corpus "
                 f"(tools/train/README.md, Round 2 corpus): the text above plus {', '.join(PRETRAIN2_SOURCES)} "
                 f"(≈ 55 M tokens, 1 % of the flash / readhub items held out as a monitor, every validation text "
                 f"excluded); crawled news text, for training only, never redistributed. "
                 if enc.get("corpus") == "corpus2" else "")
              + "It is a small and briefly trained encoder (one 2-core CPU); FinBERT-base had 3 billion tokens of "
              "pre-training.", ""]
    if task == "industry" and info.get("pseudo"):
        L += ["## Pseudo-labels: what the held-out figures mean", "",
              "The held-out companies' industries from the gazetteer were never used in training, but their names "
              "and sentences of the pre-training corpus that name them were, labelled with the industry a linear "
              "model (character n-grams of all corpus pieces naming the company, trained on the training "
              "companies only) predicts; the validation texts themselves are not in the corpus "
              "(tools/train/README.md, Round 2 corpus). So the held-out figures measure companies without labels "
              "that the corpus talks about (only the gazetteer's held-out companies were pseudo-labelled, not the "
              "companies listed after 2018); a company the corpus never names gets none of it. Chosen on a "
              "development split (finetune.py --dev; tools/train/README.md, Status).", ""]
    if _init_other(task, enc):
        L += ["## Round 2: encoder", "",
              f"This model starts from the encoder of the shipped `{_init_name(enc)}` model (round 2: the "
              f"encoder continued on the round-2 corpus, then fine-tuned on finance sentiment: FinFE, FinNE and "
              f"同花顺 event-tagged flash items; that model's card has the details). `finetune.py --init-model` "
              f"copied its encoder; it shares no label with this task, so the classification head starts from "
              f"the usual random initialisation. None of this model's validation texts is in that model's "
              f"training data or in the round-2 pre-training corpus (which excludes every validation text).", ""]
        L += _card_lineage(os.path.join(common.REPO, "models", _init_name(enc)), f"`{_init_name(enc)}`")
    elif enc.get("init_model"):
        rnd, commit, section, _ = _warm_start(enc)
        L += [f"## {section}", "",
              f"This model continues the {rnd} model rather than starting again from the encoder: "
              f"`finetune.py --init-model` copied {enc['init_model']} (the {rnd} model as committed in {commit}, "
              f"itself fine-tuned as its card described), then it was trained {info['epochs']} more epoch(s) at lr "
              f"{info['lr']} on the data above"
              + (" (round-1 data + the new sources)" if rnd == "round-1" else
                 ", which differ from the round-2 data in the weak flash-news spans: only the links that the feed "
                 "marks as listed companies are company spans, and its indices, futures and funds are taught as "
                 "not companies (tasks.flash_links; tools/train/README.md, Status)")
              + ". Head rows of labels the earlier model did not have start from the usual random initialisation. "
              "Reason: one 2-core CPU; training from the encoder again on the larger data would take several "
              "times longer.", ""]
        L += _card_lineage(_init_dir(enc, task), rnd.replace("-", " ").capitalize())
    fail = os.path.join(common.HERE, "cards", f"{task}-known-failures.md")
    if os.path.exists(fail):
        L += [open(fail, encoding="utf-8").read().rstrip(), ""]
    L += ["## fp16 export check", "",
          f"Reloaded with transformers from this directory: tokenizer ids identical to the training tokenizer: "
          f"{exp['tokenizer_ids_identical']}; on {exp['checked_items']} validation "
          f"{'tokens' if task == 'ner' else 'texts'}, max |logit(fp16 weights) − logit(fp32 weights)| = "
          f"{exp['fp16_vs_fp32_max_abs_logit_diff']}, same prediction {exp['fp16_vs_fp32_same_prediction'] * 100:.2f} %.", "",
          "## Reproduce", "",
          "```sh",
          "pip install -r tools/train/requirements.txt",
          "FINBERT_TRAIN_THREADS=2 python tools/train/pretrain.py --bf16   # encoder (resumable); the shipped "
          "encoder's exact runs: tools/train/README.md, Status"]
    if enc.get("intermediate"):
        L += ["FINBERT_TRAIN_THREADS=1 python tools/train/intermediate.py  # intermediate training (resumable)"]
    if enc.get("corpus") == "corpus2":
        L += ["python tools/train/prepare.py --round2      # the round-2 corpus (tools/train/work/corpus2)",
              f"FINBERT_TRAIN_THREADS=1 python tools/train/pretrain.py --corpus tools/train/work/corpus2 "
              f"--out tools/train/work/pretrain2 --init models/finbert-base --lr 2e-4 --warmup 200 "
              f"--total-steps {enc['step']} --bf16"]
    if enc.get("init_model") and not _init_other(task, enc):
        _, commit, _, d = _warm_start(enc)
        L += [f"mkdir -p {d} && git archive {commit} models/finbert-{task} | tar -x -C {d}"]
    if task == "industry" and info.get("pseudo"):
        L += [info.get("pseudo_cmd") or
              f"python tools/train/industry_knowledge.py --pseudo-out tools/train/work/{info['pseudo']}"]
    L += [f"FINBERT_TRAIN_THREADS=1 python tools/train/finetune.py {task} --fresh"
          + (" --encoder tools/train/work/intermediate/encoder" if enc.get("intermediate") else "")
          + (" --encoder tools/train/work/pretrain2/encoder" if enc.get("corpus") == "corpus2" else "")
          + (" --encoder models/finbert-base" if enc.get("shipped_base") and not enc.get("init_model") else "")
          + (f" --encoder models/finbert-base --init-model models/{_init_name(enc)}" if _init_other(task, enc) else
             f" --encoder models/finbert-base --init-model {_warm_start(enc)[3]}/models/finbert-{task} "
             f"--lr {info['lr']}" if enc.get("init_model") else "")
          + (" --calib" if info.get("calibration") else "")
          + (f" --epochs {info['epochs']}" if info["epochs"] != data["epochs"] else "")
          + (f" --lr {info['lr']}" if info["lr"] != data["lr"] and (_init_other(task, enc) or not enc.get("init_model"))
             else "")
          + (f" --aug-names {info['aug_names']}" if info.get("aug_names") else "")
          + (f" --name-copies {info['name_copies']}" if info.get("name_copies", 1) > 1 else "")
          + (f" --flash-weak {info['flash_weak']}" if info.get("flash_weak") else "")
          + (f" --pseudo tools/train/work/{info['pseudo']}" if info.get("pseudo") else "")
          + (f" --pseudo-min-p {info['pseudo_min_p']}" if info.get("pseudo_min_p") else "")
          + (f" --pseudo-min-examples {info['pseudo_min_examples']}" if info.get("pseudo_min_examples") else "")
          + (f" --seed {info['seed']}" if info.get("seed", common.SEED) != common.SEED else "")
          + (" --bf16" if info.get("bf16") else ""),
          "```", "",
          f"Hyper-parameters: {info['epochs']} epochs, lr {info['lr']}, batch {info['batch']}, max length "
          f"{info['max_len']}, AdamW (weight decay 0.01), linear warm-up 6 % and decay, seed {info['seed']}, "
          f"{info['steps']} steps on {info['train_examples']} examples, CPU ({info['threads']} thread(s)"
          f"{', bfloat16 autocast forward' if info.get('bf16') else ''}).", ""]
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(L))


def _init_name(enc):
    """finbert-<task> of the --init-model directory, e.g. finbert-sentiment."""
    return os.path.basename(enc["init_model"].split(":")[0].rstrip("/"))


def _warm_start(enc):
    """(round, commit, card section, directory) of the same-task model a warm start copied: the round-1 models as
    committed in 8f8b3e7, or the round-2 ones (8882d69), named by the directory they are extracted to (Reproduce)."""
    if "round2" in enc["init_model"] or "round-2" in enc["init_model"]:
        return "round-2", "8882d69", "Warm start from round 2", "/tmp/round2"
    return "round-1", "8f8b3e7", "Round 2: warm start", "/tmp/round1"


def _init_dir(enc, task):
    """Where the --init-model directory is: /tmp/roundN/models/finbert-<task> for a warm start from this task's
    round-N model (extracted there as in Reproduce), else the path recorded (relative to the repository)."""
    init = enc["init_model"]
    if init.startswith(("the round-1 model", "the round-2 model")):
        return f"{_warm_start(enc)[3]}/models/finbert-{task}"
    return os.path.join(common.REPO, init.split(":")[0])


def _init_other(task, enc):
    """True if the model was started from another task's model (its encoder only), not this task's round-1 or
    round-2 model (named "the round-N model (extracted to /tmp/roundN as in Reproduce)" in metrics.json)."""
    init = enc.get("init_model") or ""
    return bool(init) and not init.startswith(("the round-1 model", "the round-2 model")) \
        and _init_name(enc) != f"finbert-{task}"


def _card_lineage(init_dir, who="Round 1"):
    """The account of its encoder in the card of the model this one started from (sections Intermediate
    training, Encoder, and its validation headline lines), so the new card keeps the whole lineage; who names
    the card quoted (round 1 of this task, or another task's model)."""
    p = os.path.join(init_dir, "README.md")
    if not os.path.exists(p):
        return []
    out, keep = [], False
    for line in open(p, encoding="utf-8").read().splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            keep = title in ("Intermediate training", "Encoder", "Round 2: warm start")
            if keep:
                out += [f"### {who} card: warm start from round 1" if title == "Round 2: warm start" else
                        f"### {who}: {title}", ""]
            continue
        if line.startswith("### ") and keep:  # the earlier card's own lineage
            out += [line, ""]
            continue
        if keep and line.strip():
            out += [line, ""]
        if line.startswith("Encoder: masked-LM") or line.startswith("**") and " (n = " in line:
            out += [f"{who} card: " + (line.split(". ", 1)[-1] if line.startswith("Encoder:") else line), ""]
    return out


def _pretrain_total():
    p = os.path.join(common.WORK, "pretrain", "status.json")
    try:
        return json.load(open(p))["total_steps"]
    except Exception:  # noqa: BLE001
        return 2500


if __name__ == "__main__":
    # rewrite a model card from the saved metrics: python tools/train/cards.py <task> [<work name>]
    import sys
    sys.path.insert(0, common.HERE)
    import tasks
    t = sys.argv[1]
    work = sys.argv[2] if len(sys.argv) > 2 else f"ft-{t}"  # the run's --work name
    info = json.load(open(os.path.join(common.WORK, work, "metrics.json"), encoding="utf-8"))
    data = tasks.BUILDERS[t]()
    if info.get("calibration"):
        import finetune
        finetune.carve_calib(data)
    write_card(os.path.join(common.REPO, info["export"]["dir"]), t, data, info)

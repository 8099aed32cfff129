#!/usr/bin/env python3
"""Generate the weight-format fixtures: the same small models saved the way
the seed checkpoints are published, with golden outputs from transformers.

Every file is written by the authors' own libraries:
  - pytorch_model.bin by torch.save, in the zip serialisation and the
    legacy one (_use_new_zipfile_serialization=False, as PyTorch < 1.6
    wrote), with tied weights (one storage), a fused QKV storage read
    through offsets, a transposed (non-contiguous) tensor, fp16 and bf16,
    LayerNorm gamma/beta names (pytorch-pretrained-bert conversions) and
    BertForPreTraining MLM/NSP heads;
  - sharded checkpoints by transformers' save_pretrained(max_shard_size=...);
  - TensorFlow checkpoints by TensorFlow itself (tf.compat.v1.train.Saver,
    two data shards from two devices), with the variable names of
    google-research/bert (incl. run_classifier.py's output_weights /
    output_bias head), google-research/albert, brightmart/albert_zh and
    google-research/electra, optimizer slots (adam_m / adam_v) and
    global_step, and the projects' config file names (bert_config.json,
    albert_config.json, albert_config_tiny.json).

Golden outputs: transformers loading the same files (from_pretrained,
from_tf=True for TensorFlow checkpoints).  Where transformers cannot read
a layout, the reference is stated in the golden file ("reference"):
run_classifier heads (its TF loader stops at the top-level output_bias) use
BertModel from_tf on the encoder plus the head applied in torch to the
checkpoint's own output_weights / output_bias; brightmart/albert_zh (not an
architecture transformers has) uses a TensorFlow forward pass written here
after brightmart's modeling.py, on the checkpoint's variables.

Also writes hostile .bin files for the tests (pickles calling os.system,
builtins.eval, subprocess.Popen) under test/data/torchbin/.

Usage: python3 tools/make_format_fixtures.py
Requires: torch, transformers 4.49, safetensors, tensorflow-cpu 2.15
(developer tool; make test needs none of them).
"""
import collections
import json
import os
import pickle
import re
import shutil
import sys
import tempfile
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (AlbertConfig, AlbertForSequenceClassification,
                          BertConfig, BertForPreTraining,
                          BertForSequenceClassification,
                          BertForTokenClassification, BertModel,
                          BertTokenizerFast, ElectraConfig,
                          ElectraForPreTraining)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from make_fixtures import randomize, round_weights  # noqa: E402

OUT = os.path.join(ROOT, "test", "fixtures", "formats")
GOLDEN = os.path.join(ROOT, "test", "fixtures", "golden", "formats.json")
HOSTILE = os.path.join(ROOT, "test", "data", "torchbin")

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=128, type_vocab_size=2)
SENT = {0: "negative", 1: "neutral", 2: "positive"}
NER = {0: "O", 1: "B-company", 2: "I-company", 3: "B-person", 4: "I-person"}

# texts of the committed forward golden (no ../shared needed): empty, one
# character, Latin words, full-width spaces, 700 characters (truncated)
TEXT_IDS = [0, 7, 10, 13, 26, 27, 28, 29, 30, 31]


def load_texts():
    with open(os.path.join(ROOT, "test/fixtures/golden/forward.json"), encoding="utf-8") as f:
        texts = json.load(f)["texts"]
    return [texts[i] for i in TEXT_IDS]


def make_vocab(texts, path):
    """A small vocabulary: the special tokens, every character of the texts
    and the WordPiece continuations of ASCII letters and digits (so Latin
    words split into characters)."""
    chars = sorted({c for t in texts for c in t.lower() if not c.isspace()})
    extra = [c for c in "abcdefghijklmnopqrstuvwxyz0123456789" if c not in chars]
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + extra + \
        ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(toks) + "\n")
    return len(toks)


def fresh(name, vocab):
    d = os.path.join(OUT, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    shutil.copy(vocab, os.path.join(d, "vocab.txt"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f)
    return d


def write_config(d, model, name="config.json", drop=(), **extra):
    model.config.architectures = [type(model).__name__]
    cfg = model.config.to_dict()
    for k in drop:
        cfg.pop(k, None)
    cfg.update(extra)
    with open(os.path.join(d, name), "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)


def tf_config(d, model, name):
    """A TensorFlow release's config: BERT's field names only."""
    c = model.config
    cfg = {"attention_probs_dropout_prob": 0.1, "hidden_act": c.hidden_act,
           "hidden_dropout_prob": 0.1, "hidden_size": c.hidden_size,
           "initializer_range": 0.02, "intermediate_size": c.intermediate_size,
           "max_position_embeddings": c.max_position_embeddings,
           "num_attention_heads": c.num_attention_heads,
           "num_hidden_layers": c.num_hidden_layers,
           "type_vocab_size": c.type_vocab_size, "vocab_size": c.vocab_size}
    if hasattr(c, "embedding_size"):
        cfg["embedding_size"] = c.embedding_size
    with open(os.path.join(d, name), "w") as f:
        json.dump(cfg, f, indent=2)
    return cfg


# ---------------------------------------------------------------------------
# golden outputs
# ---------------------------------------------------------------------------

def outputs(model, tok, texts, kind):
    """kind: sequence (logits), token (logits without [CLS]/[SEP]),
    encoder (last hidden state and pooler output)."""
    rows = []
    with torch.no_grad():
        for t in texts:
            e = tok(t, truncation=True, max_length=128)
            ids = torch.tensor([e["input_ids"]])
            res = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                        token_type_ids=torch.zeros_like(ids))
            if kind == "sequence":
                rows.append(res.logits[0].tolist())
            elif kind == "token":
                rows.append(res.logits[0][1:-1].tolist())
            else:
                base = res
                rows.append({"hidden": base.last_hidden_state[0].tolist(),
                             "pooler": base.pooler_output[0].tolist()
                             if getattr(base, "pooler_output", None) is not None else None})
    return rows


def max_diff(a, b):
    def flat(x):
        if isinstance(x, dict):
            return [v for k in sorted(x) if x[k] is not None for v in flat(x[k])]
        if isinstance(x, list):
            return [v for y in x for v in flat(y)]
        return [x]
    fa, fb = flat(a), flat(b)
    assert len(fa) == len(fb), (len(fa), len(fb))
    return max([abs(x - y) for x, y in zip(fa, fb)] + [0.0])


# ---------------------------------------------------------------------------
# PyTorch checkpoints
# ---------------------------------------------------------------------------

def state_dict_with_views(model):
    """The state dict as torch.save stores it, plus the views a real
    checkpoint can hold: query/key/value of layer 0 as slices of one fused
    storage (storage offsets), the pooler weight as a transposed view
    (strides (1, H)) of a contiguous [in, out] storage."""
    sd = collections.OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    pre = "bert.encoder.layer.0.attention.self."
    fused = torch.cat([sd[pre + p + ".weight"] for p in ("query", "key", "value")], 0)
    H = fused.shape[1]
    for i, p in enumerate(("query", "key", "value")):
        sd[pre + p + ".weight"] = fused[i * H:(i + 1) * H]
    pw = sd["bert.pooler.dense.weight"]
    sd["bert.pooler.dense.weight"] = pw.t().contiguous().t()
    assert not sd["bert.pooler.dense.weight"].is_contiguous()
    assert sd[pre + "key.weight"].storage_offset() == H * H
    return sd


def bin_zip_cls(tok, texts, vocab, golden):
    """BertForSequenceClassification, torch.save zip, fp32, views."""
    cfg = BertConfig(vocab_size=tok.vocab_size, num_labels=3, id2label=SENT,
                     label2id={v: k for k, v in SENT.items()}, **SMALL)
    m = randomize(BertForSequenceClassification(cfg), 11)
    d = fresh("bin_zip_cls", vocab)
    write_config(d, m)
    torch.save(state_dict_with_views(m), os.path.join(d, "pytorch_model.bin"))
    ref = BertForSequenceClassification.from_pretrained(d).eval()
    golden["bin_zip_cls"] = {"kind": "sequence", "format": "pytorch zip",
                             "reference": "transformers from_pretrained",
                             "outputs": outputs(ref, tok, texts, "sequence")}
    assert max_diff(golden["bin_zip_cls"]["outputs"], outputs(m, tok, texts, "sequence")) < 1e-6
    return m


def gamma_beta(sd):
    out = collections.OrderedDict()
    for k, v in sd.items():
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        out[k] = v
    return out


def bin_legacy_pretraining(tok, texts, vocab, golden):
    """BertForPreTraining (MLM + NSP heads, decoder tied to the word
    embeddings), legacy torch.save, fp16, gamma/beta LayerNorm names."""
    cfg = BertConfig(vocab_size=tok.vocab_size, **SMALL)
    m = randomize(BertForPreTraining(cfg), 12)
    m.tie_weights()
    round_weights(m, torch.float16)
    d = fresh("bin_legacy_pretraining", vocab)
    write_config(d, m)
    sd = collections.OrderedDict((k, v.detach().half()) for k, v in m.state_dict().items()
                                 if "position_ids" not in k)
    # the decoder shares the word embeddings' storage in the file
    sd["cls.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"]
    torch.save(gamma_beta(sd), os.path.join(d, "pytorch_model.bin"),
               _use_new_zipfile_serialization=False)
    ref = BertForPreTraining.from_pretrained(d, torch_dtype=torch.float32).eval()
    golden["bin_legacy_pretraining"] = {"kind": "encoder", "format": "pytorch legacy",
                                        "reference": "transformers from_pretrained (BertForPreTraining.bert)",
                                        "outputs": outputs(ref.bert, tok, texts, "encoder")}


def bin_zip_bf16_ner(tok, texts, vocab, golden):
    """BertForTokenClassification, zip, bf16 weights under the "roberta."
    prefix (conversions of RoBERTa-wwm-ext that kept RobertaModel names for
    a BERT architecture).  transformers' BertForTokenClassification only
    knows "bert.", so the reference is the same weights under "bert."."""
    cfg = BertConfig(vocab_size=tok.vocab_size, num_labels=5, id2label=NER,
                     label2id={v: k for k, v in NER.items()}, **SMALL)
    m = randomize(BertForTokenClassification(cfg), 13)
    round_weights(m, torch.bfloat16)
    d = fresh("bin_zip_bf16_ner", vocab)
    write_config(d, m)
    sd = collections.OrderedDict((k.replace("bert.", "roberta.", 1), v.detach().bfloat16())
                                 for k, v in m.state_dict().items())
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    golden["bin_zip_bf16_ner"] = {"kind": "token", "format": "pytorch zip",
                                  "reference": "transformers, the same bf16 weights under bert. names",
                                  "outputs": outputs(m, tok, texts, "token")}


def sharded(tok, texts, vocab, golden):
    """Sharded checkpoints written by save_pretrained: safetensors (BERT)
    and pytorch_model.bin (ALBERT)."""
    cfg = BertConfig(vocab_size=tok.vocab_size, num_labels=3, id2label=SENT,
                     label2id={v: k for k, v in SENT.items()}, **SMALL)
    m = randomize(BertForSequenceClassification(cfg), 14)
    d = fresh("st_sharded", vocab)
    m.save_pretrained(d, max_shard_size="40KB", safe_serialization=True)
    assert os.path.exists(os.path.join(d, "model.safetensors.index.json"))
    ref = BertForSequenceClassification.from_pretrained(d).eval()
    golden["st_sharded"] = {"kind": "sequence", "format": "safetensors (sharded)",
                            "reference": "transformers from_pretrained",
                            "outputs": outputs(ref, tok, texts, "sequence")}

    cfg = AlbertConfig(vocab_size=tok.vocab_size, embedding_size=16, hidden_act="gelu_new",
                       num_labels=3, id2label=SENT, label2id={v: k for k, v in SENT.items()},
                       **SMALL)
    m = randomize(AlbertForSequenceClassification(cfg), 15)
    d = fresh("bin_sharded_albert", vocab)
    m.save_pretrained(d, max_shard_size="20KB", safe_serialization=False)
    assert os.path.exists(os.path.join(d, "pytorch_model.bin.index.json"))
    ref = AlbertForSequenceClassification.from_pretrained(d).eval()
    golden["bin_sharded_albert"] = {"kind": "sequence", "format": "pytorch zip (sharded)",
                                    "reference": "transformers from_pretrained",
                                    "outputs": outputs(ref, tok, texts, "sequence")}


def precedence(tok, texts, vocab, golden, cls_model):
    """model.safetensors and pytorch_model.bin side by side: the same
    weights (no notice), and a .bin with one tensor changed (notice)."""
    for name, change in (("both_same", False), ("both_differ", True)):
        d = fresh(name, vocab)
        write_config(d, cls_model)
        sd = {k: v.detach().clone().contiguous() for k, v in cls_model.state_dict().items()}
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        if change:
            sd["classifier.bias"] = sd["classifier.bias"] + 0.5
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
        golden[name] = {"kind": "sequence", "format": "safetensors",
                        "reference": "the model written to model.safetensors",
                        "outputs": golden["bin_zip_cls"]["outputs"]}


# ---------------------------------------------------------------------------
# TensorFlow checkpoints
# ---------------------------------------------------------------------------

def tf_session_save(variables, prefix, shards=2):
    """Creates every (name, array) as a TF1 variable, placed round-robin on
    `shards` CPU devices so the sharded Saver writes one data file each,
    and saves them with tf.compat.v1.train.Saver."""
    import tensorflow as tf
    g = tf.Graph()
    with g.as_default():
        for i, (name, arr) in enumerate(variables):
            with tf.device("/cpu:%d" % (i % shards)):
                tf.compat.v1.get_variable(name, initializer=arr)
        with tf.device("/cpu:0"):
            tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver(sharded=shards > 1)
        with tf.compat.v1.Session(graph=g) as s:
            s.run(tf.compat.v1.global_variables_initializer())
            saver.save(s, prefix)
    # the graph (.meta) is not needed to read the weights: dropped to keep
    # the fixtures small (releases ship it; finbert never opens it)
    os.remove(prefix + ".meta")


def with_adam(variables):
    """Adam slots next to every weight, as a training checkpoint has."""
    out = []
    for name, arr in variables:
        out.append((name, arr))
        out.append((name + "/adam_m", np.zeros_like(arr)))
        out.append((name + "/adam_v", np.full_like(arr, 1e-3)))
    return out


def bert_tf_names(sd, scope="bert"):
    """transformers' BERT / ELECTRA names to the TF names of
    google-research/bert (scope "bert") and google-research/electra
    (scope "electra"); kernels back to [in, out]."""
    out = []
    for k, v in sd.items():
        if "position_ids" in k:
            continue
        a = v.detach().float().numpy()
        n = re.sub(r"layer\.(\d+)", r"layer_\1", k).replace(".", "/")
        n = n.replace("bert/", scope + "/", 1) if n.startswith("bert/") else n
        if n.endswith("_embeddings/weight"):
            n = n[:-7]
        elif n.endswith("LayerNorm/weight"):
            n = n[:-6] + "gamma"
        elif n.endswith("LayerNorm/bias"):
            n = n[:-4] + "beta"
        elif n.endswith("/weight"):
            n, a = n[:-6] + "kernel", a.T.copy()
        out.append((n, a))
    return out


def tf_bert(tok, texts, vocab, golden):
    """google-research/bert pretraining checkpoint: bert/..., cls/predictions,
    cls/seq_relationship, Adam slots, global_step, two shards,
    bert_config.json, bert_model.ckpt.*."""
    cfg = BertConfig(vocab_size=tok.vocab_size, **SMALL)
    m = randomize(BertForPreTraining(cfg), 21)
    d = fresh("tf_bert", vocab)
    tf_config(d, m, "bert_config.json")
    sd = {k: v for k, v in m.state_dict().items() if "decoder" not in k}
    variables = bert_tf_names({k: v for k, v in sd.items() if k.startswith("bert.")})
    variables += [("cls/predictions/output_bias", sd["cls.predictions.bias"].numpy()),
                  ("cls/predictions/transform/dense/kernel",
                   sd["cls.predictions.transform.dense.weight"].numpy().T.copy()),
                  ("cls/predictions/transform/dense/bias", sd["cls.predictions.transform.dense.bias"].numpy()),
                  ("cls/predictions/transform/LayerNorm/gamma",
                   sd["cls.predictions.transform.LayerNorm.weight"].numpy()),
                  ("cls/predictions/transform/LayerNorm/beta",
                   sd["cls.predictions.transform.LayerNorm.bias"].numpy()),
                  ("cls/seq_relationship/output_weights", sd["cls.seq_relationship.weight"].numpy()),
                  ("cls/seq_relationship/output_bias", sd["cls.seq_relationship.bias"].numpy())]
    tf_session_save(with_adam(variables), os.path.join(d, "bert_model.ckpt"))
    hf_cfg = BertConfig.from_json_file(os.path.join(d, "bert_config.json"))
    ref = BertForPreTraining.from_pretrained(os.path.join(d, "bert_model.ckpt.index"),
                                             from_tf=True, config=hf_cfg).eval()
    golden["tf_bert"] = {"kind": "encoder", "format": "tensorflow checkpoint (2 shards)",
                         "reference": "transformers BertForPreTraining.from_pretrained(from_tf=True).bert",
                         "outputs": outputs(ref.bert, tok, texts, "encoder")}
    assert max_diff(golden["tf_bert"]["outputs"], outputs(m.bert, tok, texts, "encoder")) < 1e-5


def tf_bert_classifier(tok, texts, vocab, golden):
    """A run_classifier.py fine-tuning checkpoint: bert/... plus the
    top-level output_weights [labels, H] / output_bias, one shard, saved as
    model.ckpt-<step> with a "checkpoint" file; bert_config.json without
    labels (finbert takes the count from output_weights)."""
    cfg = BertConfig(vocab_size=tok.vocab_size, num_labels=4, **SMALL)
    m = randomize(BertForSequenceClassification(cfg), 22)
    d = fresh("tf_bert_classifier", vocab)
    tf_config(d, m, "bert_config.json")
    sd = m.state_dict()
    variables = bert_tf_names({k: v for k, v in sd.items() if k.startswith("bert.")})
    variables += [("output_weights", sd["classifier.weight"].numpy()),
                  ("output_bias", sd["classifier.bias"].numpy())]
    tf_session_save(with_adam(variables), os.path.join(d, "model.ckpt-1000"), shards=1)
    # transformers' TF loader stops at the top-level output_bias: read the
    # encoder from a checkpoint of the bert/ variables alone, written the
    # same way, and apply the fixture's own head variables in torch
    import tensorflow as tf
    with tempfile.TemporaryDirectory() as tmp:
        tf_session_save([v for v in variables if v[0].startswith("bert/")],
                        os.path.join(tmp, "enc.ckpt"), shards=1)
        hf_cfg = BertConfig.from_json_file(os.path.join(d, "bert_config.json"))
        enc = BertModel.from_pretrained(os.path.join(tmp, "enc.ckpt.index"), from_tf=True,
                                        config=hf_cfg).eval()
    prefix = os.path.join(d, "model.ckpt-1000")
    W = torch.tensor(tf.train.load_variable(prefix, "output_weights"))
    b = torch.tensor(tf.train.load_variable(prefix, "output_bias"))
    rows = [[float(x) for x in (torch.tensor(o["pooler"]) @ W.T + b)]
            for o in outputs(enc, tok, texts, "encoder")]
    golden["tf_bert_classifier"] = {
        "kind": "sequence", "format": "tensorflow checkpoint",
        "reference": "transformers BertModel from_tf (encoder variables) + the checkpoint's output_weights/output_bias",
        "outputs": rows}
    assert max_diff(rows, outputs(m, tok, texts, "sequence")) < 1e-5


def albert_tf_names(sd):
    """transformers' ALBERT names to google-research/albert's."""
    layer = [("attention.query.", "attention_1/self/query/"), ("attention.key.", "attention_1/self/key/"),
             ("attention.value.", "attention_1/self/value/"), ("attention.dense.", "attention_1/output/dense/"),
             ("attention.LayerNorm.", "LayerNorm/"), ("ffn_output.", "ffn_1/intermediate/output/dense/"),
             ("ffn.", "ffn_1/intermediate/dense/"), ("full_layer_layer_norm.", "LayerNorm_1/")]
    out = []
    for k, v in sd.items():
        if "position_ids" in k:
            continue
        a = v.detach().float().numpy()
        if k == "classifier.weight":
            out.append(("output_weights", a))
            continue
        if k == "classifier.bias":
            out.append(("output_bias", a))
            continue
        n = k.replace("albert.", "bert/", 1)
        m = re.match(r"bert/encoder\.albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\.(.*)", n)
        if m:
            rest = m.group(3)
            for hf, tfn in layer:
                if rest.startswith(hf):
                    rest = tfn + rest[len(hf):]
                    break
            n = "bert/encoder/transformer/group_%s/inner_group_%s/%s" % (m.group(1), m.group(2), rest)
        n = n.replace("bert/pooler.", "bert/pooler/dense/").replace(".", "/")
        if n.endswith("_embeddings/weight"):
            n = n[:-7]
        elif n.endswith("LayerNorm/weight") or n.endswith("LayerNorm_1/weight"):
            n = n[:-6] + "gamma"
        elif n.endswith("LayerNorm/bias") or n.endswith("LayerNorm_1/bias"):
            n = n[:-4] + "beta"
        elif n.endswith("/weight"):
            n, a = n[:-6] + "kernel", a.T.copy()
        out.append((n, a))
    return out


def tf_albert(tok, texts, vocab, golden):
    """google-research/albert fine-tuning checkpoint (run_classifier head),
    Adam slots, two shards, albert_config.json, model.ckpt-best.*."""
    cfg = AlbertConfig(vocab_size=tok.vocab_size, embedding_size=16, hidden_act="gelu",
                       num_labels=3, **SMALL)
    m = randomize(AlbertForSequenceClassification(cfg), 23)
    d = fresh("tf_albert", vocab)
    tf_config(d, m, "albert_config.json")
    tf_session_save(with_adam(albert_tf_names(m.state_dict())), os.path.join(d, "model.ckpt-best"))
    hf_cfg = AlbertConfig.from_json_file(os.path.join(d, "albert_config.json"))
    hf_cfg.num_labels = 3
    ref = AlbertForSequenceClassification.from_pretrained(
        os.path.join(d, "model.ckpt-best.index"), from_tf=True, config=hf_cfg).eval()
    golden["tf_albert"] = {"kind": "sequence", "format": "tensorflow checkpoint (2 shards)",
                           "reference": "transformers AlbertForSequenceClassification.from_pretrained(from_tf=True)",
                           "outputs": outputs(ref, tok, texts, "sequence")}
    assert max_diff(golden["tf_albert"]["outputs"], outputs(m, tok, texts, "sequence")) < 1e-5


def tf_electra(tok, texts, vocab, golden):
    """google-research/electra pretraining checkpoint: electra/... (the
    discriminator, embeddings_project), discriminator_predictions, some
    generator variables, Adam slots, two shards; a config json."""
    cfg = ElectraConfig(vocab_size=tok.vocab_size, embedding_size=16, **SMALL)
    m = randomize(ElectraForPreTraining(cfg), 24)
    d = fresh("tf_electra", vocab)
    # no model_type: finbert takes it from the checkpoint's variable names
    write_config(d, m, name="discriminator_config.json", drop=("architectures", "model_type"))
    variables = [(n.replace("dense_prediction", "dense_1"), a)
                 for n, a in bert_tf_names(m.state_dict())]
    variables += [("generator/encoder/layer_0/output/dense/bias", np.zeros(16, np.float32)),
                  ("generator_predictions/output_bias", np.zeros(tok.vocab_size, np.float32))]
    tf_session_save(with_adam(variables), os.path.join(d, "electra_small"))
    ref = ElectraForPreTraining.from_pretrained(os.path.join(d, "electra_small.index"), from_tf=True,
                                                config=cfg).eval()
    golden["tf_electra"] = {"kind": "encoder", "format": "tensorflow checkpoint (2 shards)",
                            "reference": "transformers ElectraForPreTraining.from_pretrained(from_tf=True).electra",
                            "outputs": outputs(ref.electra, tok, texts, "encoder")}
    assert max_diff(golden["tf_electra"]["outputs"], outputs(m.electra, tok, texts, "encoder")) < 1e-5


def albert_zh_forward(prefix, cfg, ids_list):
    """brightmart/albert_zh's forward pass (its modeling.py, post-LN, one
    shared layer, word embeddings [V, E] x word_embeddings_2 [E, H] before
    the H-sized position / token-type embeddings), in TensorFlow on the
    checkpoint's variables.  GELU as transformers reads "gelu" (erf)."""
    import tensorflow as tf

    def v(n):
        return tf.constant(tf.train.load_variable(prefix, n))

    def ln(x, scope):
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) / tf.sqrt(var + 1e-12) * v(scope + "/gamma") + v(scope + "/beta")

    def dense(x, scope):
        return tf.matmul(x, v(scope + "/kernel")) + v(scope + "/bias")

    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dh = H // nh
    rows = []
    for ids in ids_list:
        T = len(ids)
        x = tf.matmul(tf.gather(v("bert/embeddings/word_embeddings"), ids),
                      v("bert/embeddings/word_embeddings_2"))
        x = x + tf.gather(v("bert/embeddings/token_type_embeddings"), [0] * T)
        x = x + v("bert/embeddings/position_embeddings")[:T]
        x = ln(x, "bert/embeddings/LayerNorm")
        s = "bert/encoder/layer_shared/"
        for _ in range(cfg["num_hidden_layers"]):
            q, k, val = [tf.transpose(tf.reshape(dense(x, s + "attention/self/" + p), [T, nh, dh]), [1, 0, 2])
                         for p in ("query", "key", "value")]
            a = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / np.sqrt(dh))
            ctx = tf.reshape(tf.transpose(tf.matmul(a, val), [1, 0, 2]), [T, H])
            x = ln(dense(ctx, s + "attention/output/dense") + x, s + "attention/output/LayerNorm")
            inter = dense(x, s + "intermediate/dense")
            inter = 0.5 * inter * (1.0 + tf.math.erf(inter / np.sqrt(2.0)))
            x = ln(dense(inter, s + "output/dense") + x, s + "output/LayerNorm")
        pooled = tf.tanh(dense(x[:1], "bert/pooler/dense"))
        rows.append({"hidden": x.numpy().tolist(), "pooler": pooled[0].numpy().tolist()})
    return rows


def tf_albert_zh(tok, texts, vocab, golden):
    """brightmart/albert_zh's layout (albert_tiny_zh and its kin): written
    with the variables its modeling.py creates, two shards, Adam slots,
    albert_config_tiny.json, albert_model.ckpt.*."""
    rng = np.random.default_rng(25)
    V, E, H, I, P = tok.vocab_size, 16, SMALL["hidden_size"], SMALL["intermediate_size"], 128

    def r(*shape, scale=0.15):
        return (scale * rng.normal(size=shape)).astype(np.float32)

    def ln(scope, n):
        return [(scope + "/gamma", (1 + 0.1 * rng.normal(size=n)).astype(np.float32)),
                (scope + "/beta", r(n, scale=0.1))]

    variables = [("bert/embeddings/word_embeddings", r(V, E)),
                 ("bert/embeddings/word_embeddings_2", r(E, H)),
                 ("bert/embeddings/token_type_embeddings", r(2, H)),
                 ("bert/embeddings/position_embeddings", r(P, H))] + ln("bert/embeddings/LayerNorm", H)
    s = "bert/encoder/layer_shared/"
    for p in ("query", "key", "value"):
        variables += [(s + "attention/self/%s/kernel" % p, r(H, H)), (s + "attention/self/%s/bias" % p, r(H))]
    variables += [(s + "attention/output/dense/kernel", r(H, H)), (s + "attention/output/dense/bias", r(H))]
    variables += ln(s + "attention/output/LayerNorm", H)
    variables += [(s + "intermediate/dense/kernel", r(H, I)), (s + "intermediate/dense/bias", r(I)),
                  (s + "output/dense/kernel", r(I, H)), (s + "output/dense/bias", r(H))]
    variables += ln(s + "output/LayerNorm", H)
    variables += [("bert/pooler/dense/kernel", r(H, H)), ("bert/pooler/dense/bias", r(H))]
    d = fresh("tf_albert_zh", vocab)
    cfg = {"attention_probs_dropout_prob": 0.0, "directionality": "bidi", "hidden_act": "gelu",
           "hidden_dropout_prob": 0.0, "hidden_size": H, "embedding_size": E,
           "initializer_range": 0.02, "intermediate_size": I, "max_position_embeddings": P,
           "num_attention_heads": SMALL["num_attention_heads"],
           "num_hidden_layers": SMALL["num_hidden_layers"], "type_vocab_size": 2,
           "vocab_size": V, "ln_type": "postln"}
    with open(os.path.join(d, "albert_config_tiny.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    prefix = os.path.join(d, "albert_model.ckpt")
    tf_session_save(with_adam(variables), prefix)
    ids = [tok(t, truncation=True, max_length=128)["input_ids"] for t in texts]
    golden["tf_albert_zh"] = {"kind": "encoder", "format": "tensorflow checkpoint (2 shards)",
                              "reference": "TensorFlow forward pass after brightmart/albert_zh modeling.py on the checkpoint variables",
                              "outputs": albert_zh_forward(prefix, cfg, ids)}


# ---------------------------------------------------------------------------
# hostile pickles
# ---------------------------------------------------------------------------

def call_pickle(module, name, arg):
    """A protocol-2 state dict whose one value is module.name(arg): GLOBAL,
    a one-tuple, REDUCE -- what pickle writes for an object reducing to a
    call (hand-assembled so the module is named as an attacker would)."""
    def text(s):
        b = s.encode()
        return b"X" + len(b).to_bytes(4, "little") + b
    return (b"\x80\x02" + b"ccollections\nOrderedDict\n)R(" +
            text("bert.embeddings.word_embeddings.weight") +
            b"c" + module.encode() + b"\n" + name.encode() + b"\n" + text(arg) + b"\x85R" +
            b"u.")


def write_zip_bin(path, pkl_bytes, extra=()):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl_bytes)
        z.writestr("archive/version", "3\n")
        for name, data in extra:
            z.writestr(name, data)


def hostile(vocab, cls_model):
    """pytorch_model.bin files whose pickle calls something other than a
    tensor rebuild; the reader must refuse them without running anything.
    Written with Python's own pickler (protocol 2, as torch.save)."""
    os.makedirs(HOSTILE, exist_ok=True)
    calls = {"os_system": ("os", "system"), "builtins_eval": ("builtins", "eval"),
             "subprocess_popen": ("subprocess", "Popen")}
    for name, (module, fn) in calls.items():
        pkl = call_pickle(module, fn, "touch /tmp/finbert-pwned")
        write_zip_bin(os.path.join(HOSTILE, name + ".bin"), pkl)
        # the same call in the legacy stream's state dict
        with open(os.path.join(HOSTILE, name + "_legacy.bin"), "wb") as f:
            for obj in (0x1950a86a20f9469cfc6c, 1001,
                        {"protocol_version": 1001, "little_endian": True,
                         "type_sizes": {"short": 2, "int": 4, "long": 4}}):
                pickle.dump(obj, f, protocol=2)
            f.write(pkl)
            pickle.dump([], f, protocol=2)
        # Python's own unpickler would run it: the fixture is what it claims
        assert pickle.loads(pkl.replace(module.encode() + b"\n" + fn.encode(),
                                        b"builtins\nlen")) is not None
    # a model directory for the SQL test: a valid config and vocabulary,
    # pytorch_model.bin calling os.system
    d = fresh("bin_evil", vocab)
    write_config(d, cls_model)
    shutil.copy(os.path.join(HOSTILE, "os_system.bin"), os.path.join(d, "pytorch_model.bin"))


def fuzz_seeds():
    """Small seeds (<= 4 KB) for test/fuzz/fuzz_torchbin.c and
    fuzz_tfbundle.c: tiny state dicts in both serialisations and tiny
    TensorFlow checkpoints (index length, index, data shard)."""
    import hashlib
    import tensorflow as tf

    def put(kind, data):
        d = os.path.join(ROOT, "test", "fuzz", "corpus", kind)
        os.makedirs(d, exist_ok=True)
        assert len(data) <= 4096, (kind, len(data))
        with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)

    g = torch.Generator().manual_seed(3)
    base = torch.randn(3, 4, generator=g)
    sds = [collections.OrderedDict([("a.weight", base), ("a.bias", torch.randn(3, generator=g))]),
           collections.OrderedDict([("t", base.t()), ("s", base[1:, 1:3]), ("same", base)]),
           collections.OrderedDict([("h", base.half()), ("b", base.bfloat16()),
                                    ("i", torch.arange(3)), ("LayerNorm.gamma", torch.ones(2))])]
    for sd in sds:
        for legacy in (False, True):
            with tempfile.NamedTemporaryFile() as f:
                torch.save(sd, f.name, _use_new_zipfile_serialization=not legacy)
                put("fuzz_torchbin", open(f.name, "rb").read())
    for name in sorted(os.listdir(HOSTILE)):
        put("fuzz_torchbin", open(os.path.join(HOSTILE, name), "rb").read())

    rng = np.random.default_rng(4)
    layouts = [[("bert/embeddings/word_embeddings", rng.normal(size=(3, 2)).astype(np.float32)),
                ("bert/embeddings/LayerNorm/gamma", np.ones(2, np.float32)),
                ("bert/encoder/layer_0/attention/self/query/kernel", rng.normal(size=(2, 2)).astype(np.float32)),
                ("output_weights", rng.normal(size=(2, 2)).astype(np.float16))],
               [("bert/embeddings/word_embeddings", rng.normal(size=(3, 2)).astype(np.float32)),
                ("bert/embeddings/word_embeddings_2", rng.normal(size=(2, 4)).astype(np.float32)),
                ("bert/encoder/layer_shared/output/dense/kernel", rng.normal(size=(4, 4)).astype(np.float32))],
               [("electra/embeddings_project/kernel", rng.normal(size=(2, 3)).astype(np.float32)),
                ("bert/encoder/transformer/group_0/inner_group_0/LayerNorm_1/beta", np.zeros(3, np.float32))]]
    for variables in layouts:
        with tempfile.TemporaryDirectory() as tmp:
            prefix = os.path.join(tmp, "model.ckpt")
            tf_session_save(with_adam(variables), prefix, shards=1)
            index = open(prefix + ".index", "rb").read()
            data = open(prefix + ".data-00000-of-00001", "rb").read()
            put("fuzz_tfbundle", len(index).to_bytes(4, "little") + index + data)


def main():
    import tensorflow as tf
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    torch.manual_seed(0)
    texts = load_texts()
    os.makedirs(OUT, exist_ok=True)
    vocab = os.path.join(OUT, "vocab.txt")
    make_vocab(texts, vocab)
    tok = BertTokenizerFast(vocab_file=vocab, do_lower_case=True)
    golden = {}
    cls_model = bin_zip_cls(tok, texts, vocab, golden)
    bin_legacy_pretraining(tok, texts, vocab, golden)
    bin_zip_bf16_ner(tok, texts, vocab, golden)
    sharded(tok, texts, vocab, golden)
    precedence(tok, texts, vocab, golden, cls_model)
    tf_bert(tok, texts, vocab, golden)
    tf_bert_classifier(tok, texts, vocab, golden)
    tf_albert(tok, texts, vocab, golden)
    tf_electra(tok, texts, vocab, golden)
    tf_albert_zh(tok, texts, vocab, golden)
    hostile(vocab, cls_model)
    fuzz_seeds()
    os.remove(vocab)
    ids = [tok(t, truncation=True, max_length=128)["input_ids"] for t in texts]
    with open(GOLDEN, "w") as f:
        json.dump({"texts": texts, "ids": ids, "models": golden}, f, ensure_ascii=False,
                  separators=(",", ":"))
    for name, g in golden.items():
        print(f"{name}: {g['format']}, {g['kind']}, reference: {g['reference']}")


if __name__ == "__main__":
    main()

"""Ships finbert's pre-trained encoder as models/finbert-base (the default finbert.embed_model).

    python3 tools/train/export_encoder.py
    python3 tools/train/export_encoder.py --run tools/train/work/pretrain2   # a run with pretrain.py --out

Takes the latest pre-training checkpoint (tools/train/work/pretrain/encoder, a BertForMaskedLM),
keeps the encoder (BertModel without the MLM head and without a pooler: finbert_embed pools with
mean or [CLS]), writes fp16 weights, config.json, vocab.txt, tokenizer_config.json and a model card,
then reloads the directory with transformers and checks mean-pooled embeddings of the fp16 export
against the fp32 checkpoint on 1,000 validation texts.
"""
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import export  # noqa: E402

RUN = os.path.join(common.WORK, "pretrain")
if "--run" in sys.argv:                          # the pre-training run directory (pretrain.py --out)
    RUN = os.path.abspath(sys.argv[sys.argv.index("--run") + 1])
SRC = os.path.join(RUN, "encoder")
OUT = os.path.join(common.MODELS, "finbert-base")


def mean_pool(model, tok, texts):
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            b = tok(texts[i:i + 32], padding=True, truncation=True, max_length=512, return_tensors="pt")
            h = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
            m = b["attention_mask"].unsqueeze(-1).float()
            out.append((h * m).sum(1) / m.sum(1))
    return torch.cat(out)


def main():
    from transformers import BertModel, BertTokenizerFast
    torch.set_num_threads(common.threads())
    state = json.load(open(os.path.join(SRC, "pretrain_state.json")))
    status = json.load(open(os.path.join(RUN, "status.json")))
    enc = BertModel.from_pretrained(SRC, add_pooling_layer=False).float().eval()
    tmp = OUT + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    m16 = BertModel.from_pretrained(SRC, add_pooling_layer=False).half().eval()
    m16.config.architectures = ["BertModel"]
    m16.save_pretrained(tmp, safe_serialization=True)
    tok = common.tokenizer()
    tok.save_pretrained(tmp)
    shutil.copy(common.VOCAB, os.path.join(tmp, "vocab.txt"))
    export.drop_tokenizer_json(tmp)
    # pre-training history, read by `pretrain.py --init` when training continues from this export;
    # a run that continued the shipped encoder keeps that encoder's runs before its own
    args, prior = status["args"], state.get("prior_steps", 0)
    runs = []
    old_state = os.path.join(OUT, "pretrain_state.json")
    if args.get("init") and os.path.exists(old_state):
        old = json.load(open(old_state))
        if old.get("total_steps") == prior:
            runs = old.get("runs", [])
    runs.append({"init": args.get("init"), "prior_steps": prior, "steps": state["step"], "lr": args["lr"],
                 "warmup": args["warmup"], "total_steps": args["total_steps"], "seed": args.get("seed"),
                 **({"corpus": os.path.relpath(args["corpus"], common.REPO)} if args.get("corpus") else {})})
    with open(os.path.join(tmp, "pretrain_state.json"), "w") as f:
        json.dump({"total_steps": prior + state["step"], "tokens_per_step": args["batch"] * args["seq_len"],
                   "runs": runs}, f)
    for fn in os.listdir(tmp):
        os.chmod(os.path.join(tmp, fn), 0o644)
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.replace(tmp, OUT)

    import tasks
    texts = [r["text"] for r in tasks.BUILDERS["sentiment"]()["val"]["finfe_val_dedup"]][:1000]
    loaded = BertModel.from_pretrained(OUT, add_pooling_layer=False).float().eval()
    a = mean_pool(enc, BertTokenizerFast.from_pretrained(SRC), texts)
    b = mean_pool(loaded, BertTokenizerFast.from_pretrained(OUT), texts)
    cos = torch.nn.functional.cosine_similarity(a, b).min().item()
    size = os.path.getsize(os.path.join(OUT, "model.safetensors"))
    hist = status.get("hist", [])
    last = hist[-1] if hist else {}
    card = [
        "# finbert-base", "",
        "finbert's small Chinese BERT encoder, pre-trained from scratch on this repository's CPU with "
        "`tools/train/pretrain.py`; the encoder every shipped task model was fine-tuned from, and the default "
        "`finbert.embed_model` (`finbert_embed(text)`).", "",
        "| | |", "|---|---|",
        f"| architecture | BERT, {enc.config.num_hidden_layers} layers, hidden {enc.config.hidden_size}, "
        f"{enc.config.num_attention_heads} heads, FFN {enc.config.intermediate_size}, 512 positions, no pooler |",
        f"| vocabulary | {enc.config.vocab_size} WordPiece tokens (`tools/train/vocab.txt`, a subset of bert-base-chinese) |",
        f"| weights | fp16, {size / 1e6:.1f} MB |",
        f"| pre-training | whole-word-masking MLM (jieba words), {prior + state['step']} steps of 32 x 128 tokens "
        f"(~{(prior + state['step']) * 32 * 128 / 1e6:.1f} M tokens) on 6.27 M tokens of shared Chinese text"
        + (f" ({runs[0]['prior_steps']} steps in the first run, then "
           + ", then ".join(f"{r['steps']} steps continued from the previous export with `pretrain.py --init "
                            f"{r['init']}`, peak lr {r['lr']}" for r in runs) + ")" if prior else "") + " |",
        f"| final MLM loss / masked-token accuracy (fixed monitor set) | "
        f"{last.get('mon_loss', float('nan')):.3f} / {last.get('mon_acc', float('nan')):.3f} |", "",
        "**Quality.** This is a very small and very briefly trained encoder (a few CPU-hours on one shared 2-core machine); "
        "it is far from FinBERT-base (BERT-base, 3 billion tokens of pre-training). Use it for the demo and tests, "
        "and register a real checkpoint (e.g. FinBERT-base, RoBERTa-wwm-ext) for serious embedding work: "
        "`SELECT finbert_load_model('finbert-base', 'FinBERT_L-12_H-768_A-12_pytorch');`.", "",
        "## Export check", "",
        f"Mean-pooled embeddings of the fp16 export vs the fp32 checkpoint on 1,000 FinFE validation texts: "
        f"minimum cosine {cos:.6f}.", "",
        "## Reproduce", "", "```sh", "pip install -r tools/train/requirements.txt",
        "tools/train/run.sh pretrain            # background, resumable; see tools/train/README.md",
        "python3 tools/train/export_encoder.py", "```", ""]
    with open(os.path.join(OUT, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(card))
    print(json.dumps({"dir": OUT, "step": state["step"], "bytes": size, "min_cosine_fp16_vs_fp32": cos}))


if __name__ == "__main__":
    main()

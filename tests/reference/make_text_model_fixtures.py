"""make_text_model_fixtures.py — tiny random-weight text models and their reference embeddings.

Regenerate (from the repository root, Debian python with torch 1.13):
    /usr/bin/python3 tests/reference/make_text_model_fixtures.py

Writes under tests/fixtures/models/:
  biomedclip/               open_clip layout as published (open_clip_config.json with the real file's
                            structure, open_clip_pytorch_model.bin via torch.save holding text.* and
                            the tiny timm ViT visual.* of make_family_fixtures.biomedclip_visual, vocab.txt,
                            tokenizer_config.json) + a config.json giving the tiny BERT's sizes (the
                            loader's documented override of the built-in table)
  biomedclip-safetensors/   the same model with open_clip_model.safetensors instead of the .bin
  cxr-bert/                 Hugging Face layout of CXR-BERT-specialized: config.json (model_type
                            "cxr-bert", projection_size), pytorch_model.bin with bert.*, the MLM head
                            cls.* (decoder weight tied to the word embeddings: one storage, two keys)
                            and cls_projection_head.*
  bad/missing-tensor/, bad/shape-mismatch/   tiny broken open_clip checkpoints (safetensors)
  expected/texts.txt        the texts, one per line, for the CLI test
  expected/<model>.json     texts, token ids (BertTokenizerRef, after each family's text cleaning),
                            embeddings one text per batch (normalised and raw) and for one
                            mixed-length padded batch (HF-style key mask) in a shuffled order.
The reference model is tests/reference/bert_ref.py (torch.nn, not medvlp)."""
import html
import json
import os
import random
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bert_ref import (BertConfig, CXRBertRef, OpenClipHFText, pad_batch, randomize,  # noqa: E402
                      write_safetensors)
from bert_tokenizer_ref import BertTokenizerRef  # noqa: E402
from make_family_fixtures import biomedclip_vision_cfg, biomedclip_visual  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models")

# Microsoft-style vocabulary order: [PAD] [UNK] [CLS] [SEP] [MASK] = 0..4 (MODELS.md 0.1).
WORDS = """the of and no with left right lung lungs pleural effusion effusions pneumonia heart size normal
is are there mild small large cardio ##pulmonary ##megaly consolidation opacity chest ray ct mri scan
edema pneumo ##thorax atelectasis lobe upper lower bilateral fracture rib tube tubes line lines catheter
tip in at stable unchanged compared to prior study findings impression acute process pulmonary vascular
congestion nodule mass mm cm image histology tissue cell cells tumor brain liver kidney bone a an be
seen clear or compatible multiple spaces tabs junction contact radiology ##s ##ed ##ing ##al
##ity ##ly ##er ##ic ##ation""".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB += [chr(c) for c in range(33, 127) if not chr(c).isupper() and chr(c) != "@"]
VOCAB += ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)] + ["##" + d for d in "0123456789"]
VOCAB += [w for w in WORDS if w not in VOCAB]

TEXTS = [
    "No acute cardiopulmonary process.",
    "Small left pleural effusion.",
    "There is mild cardiomegaly with pulmonary vascular congestion!",
    "Normal chest x-ray",
    "Right upper lobe consolidation, compatible with pneumonia?",
    "pneumothorax",
    "A",
    "Findings: stable 12 mm nodule in the left lower lobe; unchanged compared to prior study.",
    "Histology image of liver tissue with tumor cells",
    "CT scan of the brain.",
    "Bilateral lower lobe atelectasis and small effusions...",
    "Tip of the catheter at the cavo-atrial junction",
    "Edema",
    "Rib fracture (left 5th rib)",
    "Contact @ radiology",
    "  Multiple   spaces\tand tabs  ",
    "Heart &amp; lungs",
    "Heart size is normal. Lungs are clear. No pleural effusion or pneumothorax.",
    "Impression: 1. no acute process 2. stable lines and tubes",
    "Large mass?!",
    " ".join(["Stable bilateral pleural effusions with lower lobe atelectasis."] * 8),
]

TINY = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64)
EMBED_DIM = 16
CONTEXT_LENGTH = 48


def open_clip_clean(text):
    """open_clip HFTokenizer cleaning for ASCII texts: ftfy.fix_text is the identity on them except
    for HTML entities (which the two html.unescape calls also undo), then whitespace collapse."""
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split())


def hi_ml_clean(text):
    return text.rstrip("!?.")


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2) + "\n")


def tokenizer_files(directory, extra):
    write_text(os.path.join(directory, "vocab.txt"), "\n".join(VOCAB) + "\n")
    config = {"do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True,
              "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
              "mask_token": "[MASK]"}
    config.update(extra)
    write_json(os.path.join(directory, "tokenizer_config.json"), config)


def open_clip_config(hf_model_name):
    """The published BiomedCLIP open_clip_config.json structure (MODELS.md 1.2), tiny sizes."""
    return {
        "model_cfg": {
            "embed_dim": EMBED_DIM,
            "vision_cfg": biomedclip_vision_cfg(),
            "text_cfg": {"hf_model_name": hf_model_name, "hf_tokenizer_name": hf_model_name,
                         "hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler",
                         "context_length": CONTEXT_LENGTH},
        },
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                           "std": [0.26862954, 0.26130258, 0.27577711]},
    }


def embed(model, token_id_lists, normalize):
    ids, mask = pad_batch(token_id_lists)
    with torch.no_grad():
        out = model(ids, mask)
    if normalize:
        out = torch.nn.functional.normalize(out, dim=-1)
    return [[float(x) for x in row] for row in out]


def expected(model, tokenizer, clean, context_length, used_prefixes, state):
    """What medvlp must produce; n_params/unused follow from which tensors the text tower reads."""
    used = [k for k, v in state.items() if v.is_floating_point() and k.startswith(used_prefixes)]
    unused = sorted(k for k, v in state.items() if v.is_floating_point() and k not in used)
    token_ids = [tokenizer.encode(clean(t), context_length) for t in TEXTS]
    order = list(range(len(TEXTS)))
    random.Random(7).shuffle(order)
    return {
        "context_length": context_length,
        "n_params": sum(state[k].numel() for k in used),
        "unused": unused,
        "texts": TEXTS,
        "token_ids": token_ids,
        "truncated": [len(tokenizer.encode(clean(t), 10 ** 6)) > context_length for t in TEXTS],
        "single": {"normalized": [embed(model, [ids], True)[0] for ids in token_ids],
                   "raw": [embed(model, [ids], False)[0] for ids in token_ids]},
        "batch": {"order": order, "normalized": embed(model, [token_ids[i] for i in order], True)},
    }


def make_biomedclip(generator):
    text = OpenClipHFText(TINY, EMBED_DIM)
    randomize(text, generator)
    text.eval()
    state = OrderedDict(("text." + k, v) for k, v in text.state_dict().items())
    state.update(biomedclip_visual()[2])
    state["logit_scale"] = torch.tensor(4.6052)
    name = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
    for variant in ("biomedclip", "biomedclip-safetensors"):
        d = os.path.join(ROOT, variant)
        os.makedirs(d, exist_ok=True)
        write_json(os.path.join(d, "open_clip_config.json"), open_clip_config(name))
        write_json(os.path.join(d, "config.json"), dict(TINY.to_hf_dict(), model_type="bert"))
        tokenizer_files(d, {"tokenizer_class": "BertTokenizer", "model_max_length": 1000000000000000019884624838656})
    torch.save(state, os.path.join(ROOT, "biomedclip", "open_clip_pytorch_model.bin"))
    write_safetensors(os.path.join(ROOT, "biomedclip-safetensors", "open_clip_model.safetensors"), state,
                      {"format": "pt"})
    tokenizer = BertTokenizerRef(os.path.join(ROOT, "biomedclip", "vocab.txt"), do_lower_case=True)
    result = expected(text, tokenizer, open_clip_clean, CONTEXT_LENGTH, ("text.", "visual."), state)
    # Every hidden state (embeddings, layer 1, layer 2) of the two first texts run as one padded batch,
    # real positions only: what GLoRIA/MedCLIP-style poolers read.
    ids = result["token_ids"][:2]
    padded, mask = pad_batch(ids)
    with torch.no_grad():
        states = text.transformer(padded, mask)
    result["hidden_states"] = [[[[float(v) for v in row] for row in h[b, :len(ids[b])]] for h in states]
                               for b in range(2)]
    return result


def make_cxr_bert(generator):
    model = CXRBertRef(TINY, EMBED_DIM)
    randomize(model, generator)
    model.eval()
    d = os.path.join(ROOT, "cxr-bert")
    os.makedirs(d, exist_ok=True)
    config = dict(TINY.to_hf_dict(), architectures=["CXRBertModel"], model_type="cxr-bert",
                  projection_size=EMBED_DIM, transformers_version="4.18.0")
    write_json(os.path.join(d, "config.json"), config)
    tokenizer_files(d, {"tokenizer_class": "CXRBertTokenizer"})
    state = model.state_dict()
    assert state["cls.predictions.decoder.weight"].data_ptr() == \
        state["bert.embeddings.word_embeddings.weight"].data_ptr()
    torch.save(state, os.path.join(d, "pytorch_model.bin"))
    tokenizer = BertTokenizerRef(os.path.join(d, "vocab.txt"), do_lower_case=True)
    return expected(model, tokenizer, hi_ml_clean, TINY.max_position_embeddings,
                    ("bert.", "cls_projection_head."), state)


def make_bad(generator):
    """Broken checkpoints of an even tinier model: one tensor missing, one with a wrong shape."""
    small = BertConfig(vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=16, max_position_embeddings=64)
    text = OpenClipHFText(small, 4)
    randomize(text, generator)
    state = OrderedDict(("text." + k, v) for k, v in text.state_dict().items())
    broken = {
        "missing-tensor": lambda s: s.pop("text.transformer.encoder.layer.0.output.dense.bias"),
        "shape-mismatch": lambda s: s.__setitem__("text.transformer.encoder.layer.0.attention.self.key.weight",
                                                  torch.zeros(8, 4)),
    }
    for name, breaker in broken.items():
        d = os.path.join(ROOT, "bad", name)
        os.makedirs(d, exist_ok=True)
        config = open_clip_config("tiny-test-bert")
        config["model_cfg"]["embed_dim"] = 4
        write_json(os.path.join(d, "open_clip_config.json"), config)
        write_json(os.path.join(d, "config.json"), small.to_hf_dict())
        tokenizer_files(d, {})
        s = OrderedDict(state)
        breaker(s)
        write_safetensors(os.path.join(d, "open_clip_model.safetensors"), s)


def main():
    generator = torch.Generator().manual_seed(20240611)
    os.makedirs(os.path.join(ROOT, "expected"), exist_ok=True)
    write_text(os.path.join(ROOT, "expected", "texts.txt"), "".join(t + "\n" for t in TEXTS))  # CLI input
    write_json(os.path.join(ROOT, "expected", "biomedclip.json"), make_biomedclip(generator))
    write_json(os.path.join(ROOT, "expected", "cxr-bert.json"), make_cxr_bert(generator))
    make_bad(generator)


if __name__ == "__main__":
    main()

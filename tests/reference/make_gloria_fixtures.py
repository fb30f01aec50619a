#!/usr/bin/python3
"""Makes the GLoRIA fixtures of tests/families: a tiny model directory holding a Lightning-style
checkpoint in GLoRIA's exact key layout, and the outputs of GLoRIA's forward written here in plain
torch from /work/shared/MODELS.md §3 (no gloria package, no OpenCV, no transformers).

Regenerate from the repository root with Debian's Python (torch 1.13, torchvision 0.14, PIL 9.4):
    /usr/bin/python3 tests/reference/make_gloria_fixtures.py tests/fixtures/families

Reference semantics (gloria `gloria.py` process_img/process_text/get_similarities, models/*):
- image: 8-bit gray image; longer side -> 256 (other int(side·256/long)) with OpenCV INTER_AREA
  (families_ref.opencv_resize_area), zero padding to 256×256 (floor top/left), gray -> RGB, CenterCrop 224,
  ToTensor, Normalize(0.5, 0.5); in the model Upsample(299, bilinear, align_corners=True), torchvision
  ResNet (Bottleneck blocks, eval BatchNorm); local = 1×1 conv (no bias) of layer3, global =
  Linear(avgpool(layer4)).
- text: GLoRIA's regex cleaning, BertTokenizer (do_lower_case on a cased vocab) padded to word_num, BERT
  hidden states of the last 4 layers, aggregate_tokens ("##" pieces summed per layer, [CLS] its own word,
  stop after [SEP], zero padding to word_num), word_emb = sum over layers, sent_emb = sum over layers of
  the mean over all word_num positions.
- similarities: global cosine; local = attention_fn(temp1) + per-word cosine × temp2, exp, max over the
  words, log, on the words 1..n_words (medvlp's documented word count: the real words between [CLS]
  and [SEP], not the official character count); combined = (local + global) / 2.
"""
import json
import os
import re
import shutil
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bert_ref  # noqa: E402
import families_ref  # noqa: E402
import vision_ref  # noqa: E402
from bert_tokenizer_ref import BertTokenizerRef  # noqa: E402

WORD_NUM, LAST_N_LAYERS, TEMP1, TEMP2, TEMP3 = 97, 4, 4.0, 5.0, 10.0
IMSIZE, CROP, UPSAMPLE = 256, 224, 299
RESNET = {"stem_channels": 8, "planes": [4, 8, 8, 16], "blocks": [1, 1, 1, 1]}
BERT = bert_ref.BertConfig(vocab_size=1018, hidden_size=32, num_hidden_layers=5, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=128)

TEXTS = [
    "No acute cardiopulmonary process.",
    "1. Heart size is normal. 2. Right pleural effusion and atelectasis of the left lung base.",
    "Small pneumothorax.\nStable. Lines and tubes unchanged",
    "Pleural effusi\u00f3n on the right; ETT tip 4.5 cm above the carina \ufffd\ufffd unchanged.",
    "Lungs are clear bilaterally without focal consolidation " * 8,
]
IMAGES = [("gloria_gray_410x300.png", (300, 410)), ("gloria_gray_512x384.png", (512, 384)),
          ("gloria_gray_768x576.png", (768, 576)), ("gloria_gray_130x180.png", (180, 130))]


# --- text ------------------------------------------------------------------------------------------
def gloria_clean(text):
    text = text.replace("\n", " ")
    pieces = [p for point in re.split(r"[0-9]+\.", text) for p in point.split(".")]
    sentences = []
    for piece in pieces:
        piece = piece.replace("\ufffd\ufffd", " ")
        tokens = re.findall(r"\w+", piece.lower())
        if len(tokens) <= 1:
            continue
        kept = [t.encode("ascii", "ignore").decode("ascii") for t in tokens]
        sentences.append(" ".join(t for t in kept if t))
    return " ".join(sentences)


def aggregate_tokens(layers, ids, id_to_token):
    """layers: [n_layers, WORD_NUM, hidden] for one text; returns [n_layers, WORD_NUM, hidden], n_words."""
    words, bank = [], []
    for position, token_id in enumerate(ids):
        token = id_to_token[token_id]
        h = layers[:, position]
        if token == "[SEP]":
            words.append(torch.stack(bank).sum(0))
            words.append(h)
            break
        if token.startswith("##"):
            bank.append(h)
        else:
            if bank:
                words.append(torch.stack(bank).sum(0))
            bank = [h]
    n_words = len(words)
    out = torch.zeros_like(layers)
    out[:, :n_words] = torch.stack(words, dim=1)
    return out, n_words


# --- image -----------------------------------------------------------------------------------------
class GloriaImageEncoder(nn.Module):
    def __init__(self, embed_dim):
        super().__init__()
        self.model = vision_ref.TinyResNet(RESNET["stem_channels"], RESNET["planes"], RESNET["blocks"])
        self.global_embedder = nn.Linear(RESNET["planes"][3] * 4, embed_dim)
        self.local_embedder = nn.Conv2d(RESNET["planes"][2] * 4, embed_dim, 1, bias=False)

    def forward(self, crops):
        x = F.interpolate(crops, size=(UPSAMPLE, UPSAMPLE), mode="bilinear", align_corners=True)
        layer3, _, pooled = self.model(x)
        return self.global_embedder(pooled), self.local_embedder(layer3)


def gloria_image_input(gray):
    h, w = gray.shape
    if h >= w:
        new_h, new_w = IMSIZE, int(w * (IMSIZE / h))
    else:
        new_h, new_w = int(h * (IMSIZE / w)), IMSIZE
    resized = families_ref.opencv_resize_area(gray, new_w, new_h)
    pad_h, pad_w = IMSIZE - new_h, IMSIZE - new_w
    padded = np.pad(resized, [(pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)])
    rgb = np.asarray(Image.fromarray(padded).convert("RGB"))
    top = int(round((IMSIZE - CROP) / 2.0))
    crop = rgb[top:top + CROP, top:top + CROP].astype(np.float64) / 255.0
    return (torch.from_numpy(crop).permute(2, 0, 1) - 0.5) / 0.5


def test_image(size, seed):
    """A smooth gradient with structure and noise, so resizing errors show."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = 128 + 90 * np.sin(x / (7.0 + seed)) * np.cos(y / 11.0) + rng.normal(0, 4, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


# --- similarities ----------------------------------------------------------------------------------
def local_similarity(word_emb, n_query, regions):
    """word_emb [hidden, WORD_NUM], regions [hidden, h, w]; words 1..n_query (GLoRIA skips [CLS])."""
    query = word_emb[:, 1:n_query + 1]
    context = regions.reshape(regions.shape[0], -1)
    attn = torch.softmax(context.t() @ query, dim=-1)           # [regions, words], over words
    attn = torch.softmax(attn.t() * TEMP1, dim=-1)              # [words, regions], over regions
    weighted = context @ attn.t()                               # [hidden, words]
    cos = (query * weighted).sum(0) / (query.norm(dim=0) * weighted.norm(dim=0)).clamp(min=1e-8)
    return torch.log(torch.exp(cos * TEMP2).max()).item()


def main(out_root):
    torch.manual_seed(7)
    model_dir = os.path.join(out_root, "gloria")
    expected_dir = os.path.join(out_root, "gloria_expected")
    os.makedirs(model_dir, exist_ok=True)
    os.makedirs(expected_dir, exist_ok=True)
    vocab_path = os.path.join(model_dir, "vocab.txt")
    shutil.copyfile(os.path.join(HERE, "..", "fixtures", "text", "vocab_cased.txt"), vocab_path)
    tokenizer = BertTokenizerRef(vocab_path, do_lower_case=True)
    id_to_token = {i: t for t, i in tokenizer.vocab.items()}

    bert = bert_ref.BertModelRef(BERT, with_pooler=True)
    bert_ref.randomize(bert, torch.Generator().manual_seed(11))
    image_encoder = GloriaImageEncoder(BERT.hidden_size)
    vision_ref.randomise(image_encoder)
    vision_ref.randomise_batchnorm(image_encoder)
    bert, image_encoder = bert.double().eval(), image_encoder.double().eval()

    state = {}
    for key, value in image_encoder.state_dict().items():
        state["gloria.img_encoder." + key] = value.float() if value.is_floating_point() else value
    for key, value in bert.state_dict().items():
        state["gloria.text_encoder.model." + key] = value.float()
    state["gloria.text_encoder.model.embeddings.position_ids"] = torch.arange(128).unsqueeze(0)
    hyper = {"model": {"text": {"bert_type": "emilyalsentzer/Bio_ClinicalBERT", "last_n_layers": 4},
                       "gloria": {"temp1": TEMP1, "temp2": TEMP2, "temp3": TEMP3}},
             "data": {"text": {"word_num": WORD_NUM}, "image": {"imsize": IMSIZE}}}
    families_ref.torch_save(os.path.join(model_dir, "gloria.ckpt"),
                            families_ref.lightning_checkpoint(state, hyper))
    # The .ckpt's hyper_parameters are a pickled OmegaConf object medvlp does not run: the manifest
    # carries the configuration (and the tiny BERT's sizes, which shapes alone cannot tell: 2 heads).
    with open(os.path.join(model_dir, "bert_config.json"), "w") as f:
        json.dump(BERT.to_hf_dict(), f, indent=2)
    manifest = {"family": "gloria", "checkpoint": "gloria.ckpt",
                "text": {"vocab": "vocab.txt", "config": "bert_config.json", "word_num": WORD_NUM,
                         "last_n_layers": LAST_N_LAYERS},
                "image": {"imsize": IMSIZE, "crop": CROP, "upsample": UPSAMPLE},
                "gloria": {"temp1": TEMP1, "temp2": TEMP2, "temp3": TEMP3}}
    with open(os.path.join(model_dir, "medvlp.json"), "w") as f:
        json.dump(manifest, f, indent=2)

    # Texts.
    texts_out = []
    sent_embs, word_embs, n_words_all = [], [], []
    for text in TEXTS:
        cleaned = gloria_clean(text)
        ids = tokenizer.encode(cleaned, max_len=WORD_NUM)
        padded = ids + [tokenizer.vocab["[PAD]"]] * (WORD_NUM - len(ids))
        mask = [1] * len(ids) + [0] * (WORD_NUM - len(ids))
        with torch.no_grad():
            states = bert(torch.tensor([padded]), torch.tensor([mask]))
        layers = torch.stack(states[-LAST_N_LAYERS:])[:, 0]         # [4, WORD_NUM, hidden]
        agg, n_words = aggregate_tokens(layers, ids, id_to_token)
        word_emb = agg.sum(0).t()                                     # [hidden, WORD_NUM]
        sent_emb = agg.mean(1).sum(0)                                 # [hidden]
        sent_embs.append(sent_emb)
        word_embs.append(word_emb)
        n_words_all.append(n_words)
        texts_out.append({"text": text, "cleaned": cleaned, "ids": ids, "n_words": n_words,
                          "sent_emb": sent_emb.tolist()})
        families_ref.save_raw(os.path.join(expected_dir, "word_emb_%d.f32" % (len(texts_out) - 1)),
                              word_emb.t().numpy())

    # Images.
    images_out = []
    for index, (name, size) in enumerate(IMAGES):
        gray = test_image(size, index + 1)
        Image.fromarray(gray, "L").save(os.path.join(expected_dir, name))
        crop = gloria_image_input(gray)
        with torch.no_grad():
            global_emb, local_emb = image_encoder(crop[None])
        # The three channels are the same gray plane: one is stored.
        families_ref.save_raw(os.path.join(expected_dir, name + ".input.f32"), crop[0].numpy())
        families_ref.save_raw(os.path.join(expected_dir, name + ".local.f32"),
                              local_emb[0].permute(1, 2, 0).numpy())   # [19, 19, hidden] HWC
        scores = []
        for t in range(len(TEXTS)):
            g = F.cosine_similarity(global_emb[0], sent_embs[t], dim=0).item()
            loc = local_similarity(word_embs[t], n_words_all[t] - 2, local_emb[0])
            scores.append({"global": g, "local": loc, "combined": (g + loc) / 2})
        images_out.append({"file": name, "global_emb": global_emb[0].tolist(),
                           "local_shape": list(local_emb.shape[2:]), "scores": scores})

    expected = {"word_num": WORD_NUM, "hidden": BERT.hidden_size, "texts": texts_out, "images": images_out}
    with open(os.path.join(expected_dir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "families"))

#!/usr/bin/python3
"""Makes the MedCLIP fixtures of tests/families: tiny model directories in the exact key layouts of
both things called MedCLIP, and their outputs from forwards written here in plain torch/numpy/PIL from
/work/shared/MODELS.md §5 (no medclip package, no transformers, no flax).

Regenerate from the repository root with Debian's Python (torch 1.13, PIL 9.4, python3-msgpack):
    /usr/bin/python3 tests/reference/make_medclip_fixtures.py tests/fixtures/families

RyanWangZf MedCLIP, ResNet variant (medclip/modeling_medclip.py, dataset.py MedCLIPFeatureExtractor):
- pytorch_model.bin state dict: vision_model.model.* (torchvision ResNet, fc = Linear(2048→512, no bias)),
  text_model.model.* (BertModel incl. pooler and position_ids), text_model.projection_head.weight, logit_scale.
- text: hidden states of layers 1, 2 and the last → mean over all positions (one text per batch: no
  padding) → mean over the 3 layers → projection_head → L2.
- image: pad onto a black "L" canvas of side max(224, w, h) at (int((side-w)/2), int((side-h)/2)) (an RGB
  image converts to L in the paste), resize 224×224 BICUBIC, /255, (x - 0.5862785803043838) /
  0.27950088968644304, repeated to 3 channels, ResNet → fc → L2.
flax-community MedCLIP (hybrid CLIP: CLIP ViT-B/32 vision + SciBERT text):
- flax_model.msgpack: text_model/… (FlaxBertModule names, Dense kernels [in, out], LayerNorm scale,
  Embed embedding), vision_model/vision_model/… (FlaxCLIPVisionModule wraps FlaxCLIPVisionTransformer as
  `vision_model`; conv kernel HWIO), visual_projection/kernel, text_projection/kernel, logit_scale; arrays
  as flax.serialization writes them (msgpack ExtType 1 of (shape, dtype name, C-order bytes)).
- text: text_projection(tanh(pooler(h_CLS))) → L2; image: CLIP's PIL transform (shortest side 224
  bicubic, center crop, OpenAI mean/std) → CLIP vision → post_layernorm(h_CLS) → visual_projection → L2.
"""
import json
import os
import shutil
import sys

import msgpack
import numpy as np
import torch
import torch.nn as nn
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bert_ref  # noqa: E402
import families_ref  # noqa: E402
import vision_ref  # noqa: E402
from bert_tokenizer_ref import BertTokenizerRef  # noqa: E402

RW_MEAN, RW_STD, RW_SIZE, RW_MAX_LEN = 0.5862785803043838, 0.27950088968644304, 224, 77
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
EMBED = 16
TEXTS = ["No acute cardiopulmonary process.", "Right pleural effusion and atelectasis of the left lung base.",
         "Heart size is normal; lungs are clear without focal consolidation " * 3]


def rw_image_input(img):
    """MedCLIPFeatureExtractor: pad to a square L canvas, resize 224 bicubic, scale, normalise."""
    w, h = img.size
    side = max(RW_SIZE, w, h)
    canvas = Image.new("L", (side, side))
    canvas.paste(img, (int((side - w) / 2), int((side - h) / 2)))
    resized = canvas.resize((RW_SIZE, RW_SIZE), Image.BICUBIC)
    x = np.asarray(resized).astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(RW_MEAN)) / np.float32(RW_STD)
    return torch.from_numpy(x)[None].repeat(3, 1, 1)


def clip_image_input(img, size=224):
    """CLIP's PIL transform (openai/CLIP _transform): shortest side -> size bicubic, center crop, then
    convert("RGB") (so an RGBA image is resized with its alpha, as PIL does), OpenAI mean/std."""
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    resized = img.resize((new_w, new_h), Image.BICUBIC)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    rgb = resized.crop((left, top, left + size, top + size)).convert("RGB")
    x = np.asarray(rgb).astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(OPENAI_MEAN, np.float32)) / np.asarray(OPENAI_STD, np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)


def test_images(out_dir):
    """A tall gray X-ray-like PNG (padding), a wide RGB JPEG-free PNG (colour → L), a small RGBA one."""
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:300, 0:180]
    gray = np.clip(120 + 80 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 3, x.shape), 0, 255)
    y, x = np.mgrid[0:150, 0:260]
    rgb = np.stack([np.clip(100 + 90 * np.sin(x / (5.0 + c)) + 30 * np.cos(y / 7.0), 0, 255) for c in range(3)], -1)
    y, x = np.mgrid[0:90, 0:120]
    rgba = np.stack([x * 2, y * 2, (x + y) % 256, 128 + (x % 2) * 100], -1)
    images = [("medclip_gray_180x300.png", Image.fromarray(gray.astype(np.uint8), "L")),
              ("medclip_rgb_260x150.png", Image.fromarray(rgb.astype(np.uint8), "RGB")),
              ("medclip_rgba_120x90.png", Image.fromarray(rgba.astype(np.uint8), "RGBA"))]
    for name, img in images:
        img.save(os.path.join(out_dir, name))
    return images


def text_cases(tokenizer, max_len):
    return [tokenizer.encode(t, max_len=max_len) for t in TEXTS]


# --- RyanWangZf MedCLIP ------------------------------------------------------------------------------
def make_rw(out_root, images):
    torch.manual_seed(21)
    model_dir = os.path.join(out_root, "medclip")
    os.makedirs(model_dir, exist_ok=True)
    vocab = os.path.join(model_dir, "vocab.txt")
    shutil.copyfile(os.path.join(HERE, "..", "fixtures", "text", "vocab_cased.txt"), vocab)
    config = bert_ref.BertConfig(vocab_size=1018, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=80)
    bert = bert_ref.BertModelRef(config, with_pooler=True)
    bert_ref.randomize(bert, torch.Generator().manual_seed(22))
    projection = nn.Linear(32, EMBED, bias=False)
    resnet = vision_ref.TinyResNet(8, [4, 8, 8, 16], [1, 1, 1, 1])
    resnet.fc = nn.Linear(64, EMBED, bias=False)
    vision_ref.randomise(resnet)
    vision_ref.randomise_batchnorm(resnet)
    bert, projection, resnet = bert.double().eval(), projection.double().eval(), resnet.double().eval()

    state = {}
    for key, value in resnet.state_dict().items():
        state["vision_model.model." + key] = value.float() if value.is_floating_point() else value
    for key, value in bert.state_dict().items():
        state["text_model.model." + key] = value.float()
    state["text_model.model.embeddings.position_ids"] = torch.arange(80).unsqueeze(0)
    state["text_model.projection_head.weight"] = projection.weight.float()
    state["logit_scale"] = torch.tensor(np.log(1 / 0.07), dtype=torch.float32)
    families_ref.torch_save(os.path.join(model_dir, "pytorch_model.bin"), state)
    with open(os.path.join(model_dir, "bert_config.json"), "w") as f:
        json.dump(config.to_hf_dict(), f, indent=2)
    with open(os.path.join(model_dir, "medvlp.json"), "w") as f:
        json.dump({"family": "medclip", "checkpoint": "pytorch_model.bin",
                   "text": {"vocab": "vocab.txt", "config": "bert_config.json"}}, f, indent=2)

    tokenizer = BertTokenizerRef(vocab, do_lower_case=True)
    texts = []
    for ids in text_cases(tokenizer, RW_MAX_LEN):
        with torch.no_grad():
            states = bert(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
            pooled = torch.stack([states[1], states[2], states[-1]]).permute(1, 0, 2, 3).mean(2).mean(1)
            embed = projection(pooled)[0]
        texts.append({"ids": ids, "embedding": (embed / embed.norm()).tolist()})
    out = []
    for name, img in images:
        x = rw_image_input(img)
        with torch.no_grad():
            _, _, pooled = resnet(x[None].double())
            embed = resnet.fc(pooled)[0]
        families_ref.save_raw(os.path.join(out_root, "medclip_expected", name + ".rw.f32"), x[0].numpy())
        out.append({"file": name, "embedding": (embed / embed.norm()).tolist()})
    return {"texts": [dict(t, text=s) for t, s in zip(texts, TEXTS)], "images": out}


# --- flax-community MedCLIP ----------------------------------------------------------------------------
def flax_ext(tensor):
    array = np.ascontiguousarray(tensor.detach().float().numpy())
    payload = msgpack.packb((list(array.shape), array.dtype.name, array.tobytes("C")), use_bin_type=True)
    return msgpack.ExtType(1, payload)


def flax_tree(state, kernel_keys):
    """A torch-named state dict → the nested flax parameter tree (names split on ".")."""
    tree = {}
    for key, value in state.items():
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = flax_ext(value)
    return tree


def to_flax_names(torch_state, prefix):
    """torch names → flax leaves: Linear weight → kernel [in, out]; Conv weight → kernel HWIO;
    LayerNorm weight → scale; Embedding weight → embedding."""
    out = {}
    for key, value in torch_state.items():
        parts = key.split(".")
        leaf, module = parts[-1], parts[-2] if len(parts) > 1 else ""
        if leaf == "weight" and value.dim() == 2 and "embedding" not in module:
            parts[-1], value = "kernel", value.t()
        elif leaf == "weight" and value.dim() == 4:
            parts[-1], value = "kernel", value.permute(2, 3, 1, 0)
        elif leaf == "weight" and value.dim() == 2:
            parts[-1] = "embedding"
        elif leaf == "weight" and value.dim() == 1:
            parts[-1] = "scale"
        out[prefix + ".".join(parts)] = value
    return out


def make_flax(out_root, images):
    torch.manual_seed(31)
    model_dir = os.path.join(out_root, "medclip-flax")
    os.makedirs(model_dir, exist_ok=True)
    vocab = os.path.join(model_dir, "vocab.txt")
    shutil.copyfile(os.path.join(HERE, "..", "fixtures", "text", "vocab_uncased.txt"), vocab)
    config = bert_ref.BertConfig(vocab_size=730, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=160)
    bert = bert_ref.BertModelRef(config, with_pooler=True)
    bert_ref.randomize(bert, torch.Generator().manual_seed(32))
    text_projection = nn.Linear(32, EMBED, bias=False)
    vision = vision_ref.ClipVision(224, 32, 32, 2, 2, 64, EMBED)
    vision_ref.randomise(vision)
    bert, text_projection, vision = bert.double().eval(), text_projection.double().eval(), vision.double().eval()

    # Flax modules hold no buffers: no position_ids.
    state = to_flax_names({k: v for k, v in bert.state_dict().items() if not k.endswith("position_ids")},
                          "text_model.")
    vision_state = {k[len("vision_model."):]: v for k, v in vision.hf_state_dict().items()
                    if k.startswith("vision_model.")}
    # nn.Embedding position table and the raw class_embedding parameter keep their layouts.
    state.update(to_flax_names(vision_state, "vision_model.vision_model."))
    state["visual_projection.kernel"] = vision.visual_projection.weight.t()
    state["text_projection.kernel"] = text_projection.weight.t()
    state["logit_scale"] = torch.tensor(np.float32(0.0))
    packed = msgpack.packb(flax_tree(state, ()), use_bin_type=True)
    with open(os.path.join(model_dir, "flax_model.msgpack"), "wb") as f:
        f.write(packed)
    # The hub's config.json of a hybrid CLIP (text_config / vision_config as the two sub-configs).
    hub_config = {"model_type": "hybrid-clip", "projection_dim": EMBED, "architectures": ["FlaxHybridCLIP"],
                  "text_config": dict(config.to_hf_dict(), model_type="bert"),
                  "vision_config": {"model_type": "clip_vision_model", "hidden_size": 32, "num_hidden_layers": 2,
                                    "num_attention_heads": 2, "intermediate_size": 64, "image_size": 224,
                                    "patch_size": 32, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}}
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(hub_config, f, indent=2)
    with open(os.path.join(model_dir, "medvlp.json"), "w") as f:
        json.dump({"family": "medclip-flax", "checkpoint": "flax_model.msgpack", "config": "config.json",
                   "text": {"vocab": "vocab.txt", "max_length": 128}}, f, indent=2)

    tokenizer = BertTokenizerRef(vocab, do_lower_case=True)
    texts = []
    for text, ids in zip(TEXTS, text_cases(tokenizer, 128)):
        with torch.no_grad():
            last = bert(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[-1]
            embed = text_projection(bert.pooler(last))[0]
        texts.append({"text": text, "ids": ids, "embedding": (embed / embed.norm()).tolist()})
    out = []
    for index, (name, img) in enumerate(images):
        x = clip_image_input(img)
        with torch.no_grad():
            _, embed = vision(x[None].double())
        if index == 0:   # the tower's same-input test needs one; the CLIP transform is tested in tests/vision
            families_ref.save_raw(os.path.join(out_root, "medclip_expected", name + ".clip.f32"), x.numpy())
        out.append({"file": name, "embedding": (embed[0] / embed[0].norm()).tolist()})
    return {"texts": texts, "images": out}


def main(out_root):
    expected_dir = os.path.join(out_root, "medclip_expected")
    os.makedirs(expected_dir, exist_ok=True)
    images = test_images(expected_dir)
    expected = {"embed_dim": EMBED, "medclip": make_rw(out_root, images),
                "medclip-flax": make_flax(out_root, images)}
    with open(os.path.join(expected_dir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "families"))

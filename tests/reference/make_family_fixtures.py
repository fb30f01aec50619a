#!/usr/bin/python3
"""make_family_fixtures.py — tiny random-weight image towers of every family in the authors' exact key
layouts, test images, and the PyTorch/PIL reference embeddings medvlp must reproduce.

Regenerate (from the repository root, Debian python with torch 1.13 + torchvision 0.14 + PIL), AFTER
make_text_model_fixtures.py (which writes the BiomedCLIP checkpoints with the visual tower built here,
and the CXR-BERT files the BioViL pair reuses):
    /usr/bin/python3 tests/reference/make_text_model_fixtures.py
    /usr/bin/python3 tests/reference/make_family_fixtures.py

Writes under tests/fixtures/models/:
  images/                    test images (RGB PNG, gray JPEG, RGBA PNG, low-contrast gray PNG)
  biovil/                    manifest layout: medvlp.json + the CXR-BERT tiny files (copied from
                             cxr-bert/) + biovil_image_resnet50_proj_size_128.pt (torch.save of a
                             hi-ml ImageModel-shaped module: encoder.encoder.* incl. fc, projector.model.*)
  convirt/                   manifest layout: medvlp.json + model.pth (torch.save of a ModelCLR-shaped
                             module: bert_model.*, bert_l1/2, res_features.0..7, res_l1/2) + vocab.txt
                             (cased, no tokenizer_config.json, as Bio_ClinicalBERT) + config.json
  expected/images_<family>.json   per image: reference embeddings (normalised and raw) from the FILE
                             through the authors' preprocessing in PIL + torchvision; n_params, unused
  expected/images_<family>.f32    the reference's preprocessed input tensors [n, 3, H, W] float32
  bad/manifest-*/            broken medvlp.json files for tests/models/test_model_dir_errors.c
Reference models run in float64. They are plain torch.nn / torchvision modules, not medvlp code.
"""
import json
import os
import shutil
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vision_ref  # noqa: E402
from bert_ref import BertConfig, BertModelRef, pad_batch  # noqa: E402
from bert_tokenizer_ref import BertTokenizerRef  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models")
EMBED_DIM = 16

# BiomedCLIP's tiny timm ViT: open_clip_config vision_cfg image_size 32, head_width 16 => 2 heads.
VIT = dict(image_size=32, patch_size=8, width=32, depth=2, heads=2, mlp_dim=64)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGES = ["rgb_70x52.png", "gray_61x80.jpg", "rgba_48x64.png", "lowcontrast_66x50.png"]


def biomedclip_visual():
    """The tiny visual tower of the BiomedCLIP fixture: (torchvision ViT with timm semantics, head
    weight, open_clip state dict 'visual.*'). Deterministic: make_text_model_fixtures.py saves it."""
    torch.manual_seed(11)
    vit = vision_ref.torchvision_vit(VIT["image_size"], VIT["patch_size"], VIT["depth"], VIT["heads"],
                                     VIT["width"], VIT["mlp_dim"])
    head = torch.randn(EMBED_DIM, VIT["width"]) / VIT["width"] ** 0.5
    state = vision_ref.timm_state_dict(vit, "visual.trunk.")
    state["visual.head.proj.weight"] = head
    return vit.eval(), head, state


def biomedclip_vision_cfg():
    return {"timm_model_name": "tiny_test_vit", "timm_model_pretrained": False, "timm_pool": "",
            "timm_proj": "linear", "image_size": VIT["image_size"], "head_width": VIT["width"] // VIT["heads"]}


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2) + "\n")


def make_images():
    d = os.path.join(ROOT, "images")
    os.makedirs(d, exist_ok=True)
    rng = np.random.RandomState(5)
    y, x = np.mgrid[0:52, 0:70]
    rgb = np.stack([x * 3.5, y * 4.5, (x + y) * 2.0], -1) + rng.randint(0, 40, (52, 70, 3))
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(os.path.join(d, IMAGES[0]))
    y, x = np.mgrid[0:80, 0:61]
    gray = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 9.0) + rng.randint(-20, 20, (80, 61))
    Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8), "L").save(os.path.join(d, IMAGES[1]), quality=90)
    rgba = rng.randint(0, 256, (64, 48, 4)).astype(np.uint8)
    rgba[..., 3] = np.clip(np.mgrid[0:64, 0:48][1] * 6, 0, 255)
    Image.fromarray(rgba, "RGBA").save(os.path.join(d, IMAGES[2]))
    y, x = np.mgrid[0:50, 0:66]
    low = 60 + (x + y) * 0.5 + rng.randint(0, 8, (50, 66))  # 60..124: the min-max stretch matters
    Image.fromarray(low.astype(np.uint8), "L").save(os.path.join(d, IMAGES[3]))
    return [os.path.join(d, name) for name in IMAGES]


def save_expected(name, pixels, embeddings, n_params, unused, extra=None):
    pixels.to(torch.float32).contiguous().numpy().astype("<f4").tofile(
        os.path.join(ROOT, "expected", "images_%s.f32" % name))
    result = {
        "images": IMAGES, "shape": list(pixels.shape), "n_params": n_params, "unused": unused,
        "raw": [[float(v) for v in row] for row in embeddings],
        "normalized": [[float(v) for v in row] for row in F.normalize(embeddings, dim=-1)],
    }
    result.update(extra or {})
    write_json(os.path.join(ROOT, "expected", "images_%s.json" % name), result)


def count(state, used):
    floats = {k: v for k, v in state.items() if v.is_floating_point()}
    return sum(floats[k].numel() for k in floats if used(k)), sorted(k for k in floats if not used(k))


# ---- BiomedCLIP: open_clip eval transform (Resize bicubic shortest, CenterCrop, RGB, OPENAI mean/std)

def make_biomedclip(paths):
    vit, head, _ = biomedclip_visual()
    size = VIT["image_size"]
    transform = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
                           lambda im: im.convert("RGB"), T.ToTensor(), T.Normalize(OPENAI_MEAN, OPENAI_STD)])
    pixels = torch.stack([transform(Image.open(p)) for p in paths])
    with torch.no_grad():
        emb = vit.double()(pixels.double()) @ head.double().t()
    state = torch.load(os.path.join(ROOT, "biomedclip", "open_clip_pytorch_model.bin"))
    for k, v in biomedclip_visual()[2].items():  # the checkpoint holds exactly this tower
        assert torch.equal(state[k], v), k
    n_params, unused = count(state, lambda k: k.startswith(("text.", "visual.")))
    save_expected("biomedclip", pixels, emb, n_params, unused)


# ---- BioViL: hi-ml ImageModel (ResNet + 1x1-conv projector, mean of projected patches) ----------

class BioViLImageRef(nn.Module):
    """hi-ml ImageModel's module tree: encoder.encoder = ResNet (with fc), projector.model = MLP."""

    def __init__(self, joint):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.encoder = vision_ref.TinyResNet(stem_channels=8, planes=(4, 8, 16, 32), blocks=(1, 2, 1, 1))
        self.encoder.encoder.fc = nn.Linear(128, 10)  # torchvision builds fc; stored, unused
        self.projector = nn.Module()
        self.projector.model = nn.Sequential(nn.Conv2d(128, joint, 1, bias=False), nn.BatchNorm2d(joint),
                                             nn.ReLU(inplace=True), nn.Conv2d(joint, joint, 1, bias=True))

    def forward(self, x):
        _, patches, _ = self.encoder.encoder(x)
        projected = self.projector.model(patches)
        return projected.mean(dim=(2, 3))  # global embedding = mean over projected patches


def remap_to_uint8(array):
    """hi-ml image/data/io.py: float64, minus min, divided by the new max, times 255, astype(uint8)."""
    array = array.astype(float)
    array -= array.min()
    array /= array.max()
    array *= 255
    return array.astype(np.uint8)


def make_biovil(paths):
    d = os.path.join(ROOT, "biovil")
    os.makedirs(d, exist_ok=True)
    for name in ("config.json", "pytorch_model.bin", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(ROOT, "cxr-bert", name), os.path.join(d, name))
    torch.manual_seed(12)
    model = BioViLImageRef(EMBED_DIM)
    vision_ref.randomise(model)
    vision_ref.randomise_batchnorm(model)
    model.eval()
    torch.save(model.state_dict(), os.path.join(d, "biovil_image_resnet50_proj_size_128.pt"))
    resize, crop = 80, 72
    write_json(os.path.join(d, "medvlp.json"), {
        "family": "biovil",
        "text": {"checkpoint": "pytorch_model.bin", "config": "config.json", "vocab": "vocab.txt",
                 "tokenizer_config": "tokenizer_config.json"},
        "image": {"checkpoint": "biovil_image_resnet50_proj_size_128.pt", "resize": resize, "crop": crop,
                  "interpolation": "bilinear", "mean": None, "std": None, "color": "L"},
    })
    # skimage io.imread of these PNG/JPEG files is the PIL pixel array of the file's mode.
    transform = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), lambda t: t.expand(3, -1, -1)])
    pixels = torch.stack([transform(Image.fromarray(remap_to_uint8(np.asarray(Image.open(p)))).convert("L"))
                          for p in paths])
    with torch.no_grad():
        emb = model.double()(pixels.double())
    state = model.state_dict()
    n_params, unused = count(state, lambda k: not k.startswith("encoder.encoder.fc."))
    text = torch.load(os.path.join(d, "pytorch_model.bin"))
    text_params, text_unused = count(text, lambda k: k.startswith(("bert.", "cls_projection_head.")))
    save_expected("biovil", pixels, emb, n_params + text_params, sorted(text_unused + unused))


# ---- ConVIRT: ModelCLR (Bio_ClinicalBERT + ResNet, two ReLU heads) -------------------------------

# A cased vocabulary like Bio_ClinicalBERT's (bert-base-cased: [PAD]=0, [UNK]=100, [CLS]=101, ...),
# shrunk: specials at 5..8, capitalised words that lower-casing makes unreachable.
CONVIRT_VOCAB = (["[PAD]", "[unused1]", "[unused2]", "[unused3]", "[unused4]", "[UNK]", "[CLS]", "[SEP]",
                  "[MASK]"] + [chr(c) for c in range(33, 127)] + ["##" + chr(c) for c in range(97, 123)]
                 + "Left Right No the of and no left right lung pleural effusion heart size normal is mild small "
                   "cardio ##megaly consolidation chest edema ##thorax atelectasis lobe".split())
CONVIRT_TEXTS = ["No acute cardiopulmonary process.", "Left pleural effusion", "Mild cardiomegaly.",
                 "Right lower lobe consolidation", "EDEMA", "normal heart size", "x"]
CONVIRT_BERT = BertConfig(vocab_size=len(CONVIRT_VOCAB) + 3, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=64, max_position_embeddings=40)


class ConvirtRef(nn.Module):
    def __init__(self):
        super().__init__()
        self.bert_model = BertModelRef(CONVIRT_BERT, with_pooler=True)
        self.bert_l1 = nn.Linear(32, 32)
        self.bert_l2 = nn.Linear(32, EMBED_DIM)
        resnet = vision_ref.TinyResNet(stem_channels=8, planes=(4, 8, 16, 32), blocks=(2, 1, 1, 1))
        self.res_features = nn.Sequential(*list(resnet.children()))  # conv1 bn1 relu maxpool layer1..4
        self.res_l1 = nn.Linear(128, 128)
        self.res_l2 = nn.Linear(128, EMBED_DIM)

    def text(self, ids, mask):
        h = self.bert_model(ids, mask)[-1]
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        return self.bert_l2(F.relu(self.bert_l1(pooled)))

    def image(self, x):
        h = self.res_features[3](self.res_features[2](self.res_features[1](self.res_features[0](x))))
        for stage in self.res_features[4:]:
            h = stage(h)
        return self.res_l2(F.relu(self.res_l1(h.mean(dim=(2, 3)))))


def make_convirt(paths):
    d = os.path.join(ROOT, "convirt")
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(13)
    model = ConvirtRef()
    vision_ref.randomise(model)
    vision_ref.randomise_batchnorm(model)
    model.eval()
    torch.save(model.state_dict(), os.path.join(d, "model.pth"))
    with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(CONVIRT_VOCAB) + "\n")
    write_json(os.path.join(d, "config.json"), dict(CONVIRT_BERT.to_hf_dict(), model_type="bert"))
    height, width = 40, 48
    write_json(os.path.join(d, "medvlp.json"), {
        "family": "convirt", "checkpoint": "model.pth",
        "text": {"vocab": "vocab.txt", "config": "config.json"},
        "image": {"resize": [height, width], "interpolation": "bilinear", "mean": list(IMAGENET_MEAN),
                  "std": list(IMAGENET_STD), "color": "RGB"},
    })
    transform = T.Compose([lambda im: im.convert("RGB"), T.Resize((height, width)), T.ToTensor(),
                           T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    pixels = torch.stack([transform(Image.open(p)) for p in paths])
    model = model.double()
    with torch.no_grad():
        emb = model.image(pixels.double())
    tokenizer = BertTokenizerRef(os.path.join(d, "vocab.txt"), do_lower_case=True)
    context = min(512, CONVIRT_BERT.max_position_embeddings)
    token_ids = [tokenizer.encode(t, context) for t in CONVIRT_TEXTS]
    text = []
    for ids in token_ids:  # one text per batch; masked mean makes padding irrelevant anyway
        padded, mask = pad_batch([ids])
        with torch.no_grad():
            text.append(model.text(padded, mask)[0])
    text = torch.stack(text)
    state = model.state_dict()
    n_params, unused = count(state, lambda k: not k.startswith("bert_model.pooler."))
    save_expected("convirt", pixels, emb, n_params, unused, {
        "texts": CONVIRT_TEXTS, "token_ids": token_ids, "context_length": context,
        "text_normalized": [[float(v) for v in row] for row in F.normalize(text, dim=-1)],
    })


def make_bad_manifests():
    """Broken medvlp.json files (tests/models/test_model_dir_errors.c); checkpoints by relative path."""
    text = {"checkpoint": "../../cxr-bert/pytorch_model.bin", "config": "../../cxr-bert/config.json",
            "vocab": "../../cxr-bert/vocab.txt"}
    convirt = {"family": "convirt", "checkpoint": "../../convirt/model.pth",
               "text": {"vocab": "../../convirt/vocab.txt", "config": "../../convirt/config.json"}}
    bad = {
        "manifest-no-family": {"checkpoint": "model.pth"},
        "manifest-unknown-family": {"family": "clip-of-the-future"},
        "manifest-missing-checkpoint": {"family": "convirt", "checkpoint": "model.pth"},
        "manifest-bad-crop": dict(convirt, image={"crop": "big"}),
        "manifest-mean-without-std": dict(convirt, image={"mean": [0.5, 0.5, 0.5]}),
        "manifest-wrong-checkpoint": {"family": "biovil", "text": text,
                                      "image": {"checkpoint": "../../convirt/model.pth"}},
        "manifest-no-text-config": {"family": "biovil", "text": {"checkpoint": text["checkpoint"]},
                                    "image": {"checkpoint": "../../biovil/biovil_image_resnet50_proj_size_128.pt"}},
    }
    for name, manifest in bad.items():
        d = os.path.join(ROOT, "bad", name)
        os.makedirs(d, exist_ok=True)
        write_json(os.path.join(d, "medvlp.json"), manifest)


def main():
    os.makedirs(os.path.join(ROOT, "expected"), exist_ok=True)
    paths = make_images()
    make_biomedclip(paths)
    make_biovil(paths)
    make_convirt(paths)
    make_bad_manifests()


if __name__ == "__main__":
    main()

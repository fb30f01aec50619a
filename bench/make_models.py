"""make_models.py — random-weight models and input images for bench/run (not a test; outputs under
bench/out/, gitignored). Each model is written twice with the same weights: the checkpoint medvlp reads
and an ONNX export (torch.onnx, Debian's torch) for ONNX Runtime; torch_engine.py rebuilds the PyTorch
module from the checkpoint.

    /usr/bin/python3 bench/make_models.py OUT_DIR

OUT_DIR/text/: BERT-base in the BiomedCLIP text layout: open_clip_config.json naming BiomedBERT (so
  medvlp takes 768/12/12/3072/512 from its built-in table), open_clip_model.safetensors, a synthetic
  30522-line vocab.txt; OUT_DIR/text.onnx.
OUT_DIR/vit_b16.safetensors (timm/open_clip names + BiomedCLIP's 512-wide head), OUT_DIR/vit_b16.onnx;
OUT_DIR/resnet50.safetensors (torchvision names), OUT_DIR/resnet50.onnx;
OUT_DIR/KIND_state.pt: each torch module's state dict;
OUT_DIR/xray16.png (2048×2500 16-bit gray), OUT_DIR/photo.jpg (3000×3000 RGB, quality 90)."""
import json
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import vision_ref  # noqa: E402
from bert_ref import BertConfig, OpenClipHFText, randomize, write_safetensors  # noqa: E402

BERT_BASE = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                       intermediate_size=3072, max_position_embeddings=512)
BERT_NAME = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
EMBED_DIM = 512


class NormalizedText(torch.nn.Module):
    """The text tower as medvlp runs it: encoder, MLP head, L2 normalisation."""

    def __init__(self, text):
        super().__init__()
        self.text = text

    def forward(self, input_ids, attention_mask):
        return torch.nn.functional.normalize(self.text(input_ids, attention_mask), dim=-1)


class ProjectedVit(torch.nn.Module):
    """torchvision's ViT-B/16 (class-token output after the final LayerNorm) with BiomedCLIP's
    bias-free 768→512 projection: what medvlp's mv_vit_forward computes."""

    def __init__(self, vit, proj):
        super().__init__()
        self.vit = vit
        self.proj = torch.nn.Parameter(proj)

    def forward(self, pixels):
        return self.vit(pixels) @ self.proj.t()


def text_model():
    text = OpenClipHFText(BERT_BASE, EMBED_DIM)
    text.eval()
    return NormalizedText(text)


def vit_model():
    vit = torchvision.models.VisionTransformer(224, 16, 12, 12, 768, 3072).eval()
    vit.heads = torch.nn.Identity()
    return ProjectedVit(vit, torch.zeros(EMBED_DIM, 768)).eval()


def resnet_model():
    resnet = torchvision.models.resnet50().eval()
    resnet.fc = torch.nn.Identity()
    return resnet


def write_text(out_dir):
    model_dir = os.path.join(out_dir, "text")
    os.makedirs(model_dir, exist_ok=True)
    model = text_model()
    randomize(model.text, torch.Generator().manual_seed(1), scale=0.1)
    state = OrderedDict(("text." + k, v) for k, v in model.text.state_dict().items())
    write_safetensors(os.path.join(model_dir, "open_clip_model.safetensors"), state, {"format": "pt"})
    torch.save(model.state_dict(), os.path.join(out_dir, "text_state.pt"))  # for torch_engine.py
    config = {"model_cfg": {"embed_dim": EMBED_DIM, "text_cfg": {
        "hf_model_name": BERT_NAME, "hf_tokenizer_name": BERT_NAME, "hf_proj_type": "mlp",
        "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 256}}}
    with open(os.path.join(model_dir, "open_clip_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(model_dir, "vocab.txt"), "w") as f:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        f.write("\n".join(specials + ["tok%d" % i for i in range(BERT_BASE.vocab_size - len(specials))]) + "\n")
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True}, f)
    ids = torch.randint(5, BERT_BASE.vocab_size, (2, 16))
    torch.onnx.export(model, (ids, torch.ones_like(ids)), os.path.join(out_dir, "text.onnx"),
                      input_names=["input_ids", "attention_mask"], output_names=["embeddings"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                    "embeddings": {0: "batch"}}, opset_version=14)


def export_image(model, path):
    torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), path, input_names=["pixels"],
                      output_names=["embeddings"], dynamic_axes={"pixels": {0: "batch"}, "embeddings": {0: "batch"}},
                      opset_version=14)


def write_images(out_dir):
    """Model weights as vision_ref's parity fixtures randomise them, in both containers."""
    torch.manual_seed(0)
    vit = vit_model()
    vision_ref.randomise(vit.vit)
    with torch.no_grad():
        vit.proj.copy_(torch.randn(EMBED_DIM, 768) / 768 ** 0.5)
    tensors = vision_ref.timm_state_dict(vit.vit, "visual.trunk.")
    tensors["visual.head.proj.weight"] = vit.proj.detach().clone()
    vision_ref.save_safetensors(os.path.join(out_dir, "vit_b16.safetensors"), tensors)
    torch.save(vit.state_dict(), os.path.join(out_dir, "vit_b16_state.pt"))
    export_image(vit, os.path.join(out_dir, "vit_b16.onnx"))
    resnet = resnet_model()
    vision_ref.randomise(resnet)
    vision_ref.randomise_batchnorm(resnet)
    vision_ref.save_safetensors(os.path.join(out_dir, "resnet50.safetensors"), resnet.state_dict())
    torch.save(resnet.state_dict(), os.path.join(out_dir, "resnet50_state.pt"))
    export_image(resnet, os.path.join(out_dir, "resnet50.onnx"))


def write_inputs(out_dir):
    """A smooth gradient with noise (compresses about as well as a radiograph, unlike pure noise)."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:2500, 0:2048]
    gray = (20000 + 15000 * np.sin(x / 300.0) * np.cos(y / 400.0) + rng.normal(0, 500, x.shape))
    Image.fromarray(gray.clip(0, 65535).astype(np.uint16)).save(os.path.join(out_dir, "xray16.png"))
    y, x = np.mgrid[0:3000, 0:3000]
    rgb = np.stack([128 + 100 * np.sin(x / (200.0 + 50 * c)) * np.cos(y / 350.0) for c in range(3)], -1)
    rgb += rng.normal(0, 8, rgb.shape)
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(os.path.join(out_dir, "photo.jpg"), quality=90)


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    write_text(out_dir)
    write_images(out_dir)
    write_inputs(out_dir)


if __name__ == "__main__":
    main(sys.argv[1])

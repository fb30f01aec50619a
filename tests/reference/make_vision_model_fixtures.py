#!/usr/bin/python3
"""Makes the tiny image-encoder fixtures of tests/vitres (ViT timm + CLIP variants, ResNet bottleneck).

Regenerate with Debian's Python (torch 1.13, torchvision 0.14), from the repository root:
    /usr/bin/python3 tests/reference/make_vision_model_fixtures.py tests/fixtures/vitres

The references are independent of medvlp's C code:
- timm ViT (BiomedCLIP's trunk): torchvision.models.VisionTransformer, whose math is timm's
  VisionTransformer with class-token pooling (pre-LN blocks, LayerNorm eps 1e-6, class token concatenated
  then pos_embed added, packed in_proj = timm's fused qkv, exact GELU, final norm). Its weights are saved
  under open_clip/timm key names (see vision_ref.timm_state_dict) plus a random `visual.head.proj.weight`.
- CLIP ViT: vision_ref.ClipVision, HF CLIPVisionModel semantics written in plain torch.nn.
- ResNet: vision_ref.TinyResNet, built from torchvision's own Bottleneck block with torchvision's key
  names and BatchNorm in eval mode with randomised running statistics (so BN folding is exercised).
Outputs are computed in float64 and stored as float32 little-endian raw files; checkpoints are
safetensors written by vision_ref.save_safetensors.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vision_ref  # noqa: E402

N_IMAGES = 3


def save_raw(path, tensor):
    tensor.detach().to(torch.float32).contiguous().numpy().astype("<f4").tofile(path)


def vit_timm(out_dir):
    torch.manual_seed(1)
    image_size, patch_size, width, depth, heads, mlp_dim, proj_dim = 32, 8, 32, 2, 2, 64, 16
    model = vision_ref.torchvision_vit(image_size, patch_size, depth, heads, width, mlp_dim)
    head = torch.randn(proj_dim, width) / width ** 0.5
    images = torch.randn(N_IMAGES, 3, image_size, image_size)
    model = model.double().eval()
    with torch.no_grad():
        pooled = model(images.double())  # heads = Identity: the final-norm class token
        embedding = pooled @ head.double().t()
    tensors = vision_ref.timm_state_dict(model, "visual.trunk.")
    tensors["visual.head.proj.weight"] = head
    vision_ref.save_safetensors(os.path.join(out_dir, "vit_timm.safetensors"), tensors)
    save_raw(os.path.join(out_dir, "vit_timm_input.f32"), images)
    save_raw(os.path.join(out_dir, "vit_timm_pooled.f32"), pooled)
    save_raw(os.path.join(out_dir, "vit_timm_embedding.f32"), embedding)


def vit_clip(out_dir):
    torch.manual_seed(2)
    image_size, patch_size, width, depth, heads, mlp_dim, proj_dim = 32, 8, 32, 2, 2, 64, 16
    model = vision_ref.ClipVision(image_size, patch_size, width, depth, heads, mlp_dim, proj_dim)
    vision_ref.randomise(model)
    images = torch.randn(N_IMAGES, 3, image_size, image_size)
    model = model.double().eval()
    with torch.no_grad():
        pooled, embedding = model(images.double())
    vision_ref.save_safetensors(os.path.join(out_dir, "vit_clip.safetensors"), model.hf_state_dict())
    save_raw(os.path.join(out_dir, "vit_clip_input.f32"), images)
    save_raw(os.path.join(out_dir, "vit_clip_pooled.f32"), pooled)
    save_raw(os.path.join(out_dir, "vit_clip_embedding.f32"), embedding)


def resnet(out_dir):
    torch.manual_seed(3)
    # Odd, non-square input so every stride-2 layer rounds: 63x70 -> 32x35 -> 16x18 -> 8x9 -> 4x5 -> 2x3.
    height, width = 63, 70
    model = vision_ref.TinyResNet(stem_channels=8, planes=(4, 8, 16, 32), blocks=(3, 4, 6, 3))
    vision_ref.randomise_batchnorm(model)
    images = torch.randn(N_IMAGES, 3, height, width)
    model = model.double().eval()
    with torch.no_grad():
        layer3, layer4, pooled = model(images.double())
    state = {k: v for k, v in model.state_dict().items()}
    vision_ref.save_safetensors(os.path.join(out_dir, "resnet_tiny.safetensors"), state)
    # ConVIRT stores nn.Sequential(*resnet.children()[:-1]): let torch itself name the keys.
    sequential = torch.nn.Sequential(*list(model.children()))
    convirt = {"res_features." + k: v for k, v in sequential.state_dict().items()}
    vision_ref.save_safetensors(os.path.join(out_dir, "resnet_tiny_convirt.safetensors"), convirt)
    save_raw(os.path.join(out_dir, "resnet_input.f32"), images)
    save_raw(os.path.join(out_dir, "resnet_layer3.f32"), layer3)  # NCHW, as torch returns it
    save_raw(os.path.join(out_dir, "resnet_layer4.f32"), layer4)
    save_raw(os.path.join(out_dir, "resnet_pooled.f32"), pooled)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/vitres"
    os.makedirs(out_dir, exist_ok=True)
    vit_timm(out_dir)
    vit_clip(out_dir)
    resnet(out_dir)


if __name__ == "__main__":
    main()

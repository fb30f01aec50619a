#!/usr/bin/python3
"""PyTorch side of bench/image: writes random-weight ViT-B/16 (timm/open_clip names) and ResNet-50
(torchvision names) checkpoints for the C bench, and times the same forwards in PyTorch.

    /usr/bin/python3 bench/image/torch_bench.py OUT_DIR THREADS REPEATS
"""
import os
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
import vision_ref  # noqa: E402


def timed(model, batch, repeats):
    x = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        model(x)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - start)
    return best * 1000


def main():
    out_dir, threads, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    os.makedirs(out_dir, exist_ok=True)
    vit = torchvision.models.VisionTransformer(224, 16, 12, 12, 768, 3072).eval()
    vit.heads = torch.nn.Identity()
    tensors = vision_ref.timm_state_dict(vit, "visual.trunk.")
    tensors["visual.head.proj.weight"] = torch.randn(512, 768) / 768 ** 0.5
    vision_ref.save_safetensors(os.path.join(out_dir, "vit_b16.safetensors"), tensors)
    resnet = torchvision.models.resnet50().eval()
    resnet.fc = torch.nn.Identity()
    vision_ref.save_safetensors(os.path.join(out_dir, "resnet50.safetensors"), resnet.state_dict())
    for name, model in (("vit_b16", vit), ("resnet50", resnet)):
        for batch in (1, 8):
            print("torch %-8s batch %d: %8.1f ms" % (name, batch, timed(model, batch, repeats)), flush=True)


if __name__ == "__main__":
    main()

"""torch_engine.py — PyTorch's side of bench/run (the line protocol of medvlp_engine.c).

    /usr/bin/python3 bench/torch_engine.py text|vit_b16|resnet50|png|jpeg PATH THREADS

Models are make_models.py's modules loaded from the state dicts it saved with medvlp's checkpoints
(PATH = OUT_DIR/KIND_state.pt) and run under torch.inference_mode(). png / jpeg time the peer of
medvlp's decoder + transform: PIL decode, convert("RGB") and open_clip's eval transform in
torchvision (Resize 224 bicubic, CenterCrop, ToTensor, Normalize)."""
import io
import re
import sys
import time

import torch
from PIL import Image
from torchvision import transforms

import make_models

MODELS = {"text": make_models.text_model, "vit_b16": make_models.vit_model, "resnet50": make_models.resnet_model}


def rss_kib():
    """Peak and current RSS (VmHWM, VmRSS)."""
    with open("/proc/self/status") as f:
        status = f.read()
    return tuple(int(re.search(field + r":\s+(\d+)", status).group(1)) for field in ("VmHWM", "VmRSS"))


def load(kind, path):
    if kind in MODELS:
        model = MODELS[kind]()
        model.load_state_dict(torch.load(path))
        return model.eval()
    with open(path, "rb") as f:
        data = f.read()
    transform = transforms.Compose([
        transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(224),
        transforms.ToTensor(), transforms.Normalize((0.48145466, 0.4578275, 0.40821073),
                                                    (0.26862954, 0.26130258, 0.27577711))])
    return lambda: transform(Image.open(io.BytesIO(data)).convert("RGB"))


def inputs(kind, batch, seq_len):
    gen = torch.Generator().manual_seed(1)
    if kind == "text":
        ids = torch.randint(5, 30005, (batch, seq_len), generator=gen)
        ids[:, 0], ids[:, -1] = 2, 3
        return (ids, torch.ones_like(ids))
    if kind in MODELS:
        return (torch.rand(batch, 3, 224, 224, generator=gen) - 0.5,)
    return ()


def main(kind, path, threads):
    torch.set_num_threads(threads)
    start = time.perf_counter()
    model = load(kind, path)
    print("%.9f" % (time.perf_counter() - start), flush=True)
    for line in sys.stdin:
        if line.startswith("rss"):
            print(*rss_kib(), flush=True)
            continue
        batch, seq_len, iters = map(int, line.split())
        args = inputs(kind, batch, seq_len)
        with torch.inference_mode():
            start = time.perf_counter()
            for _ in range(iters):
                model(*args)
            print("%.9f" % ((time.perf_counter() - start) / iters), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

"""Reference image encoders for medvlp's parity tests, in plain torch/torchvision (no timm/open_clip/HF).

- torchvision_vit + timm_state_dict: torchvision's VisionTransformer, exported under timm/open_clip names.
- ClipVision: HF CLIPVisionModel(+visual_projection) semantics written here from transformers'
  modeling_clip.py as read (CLIPVisionEmbeddings, CLIPAttention, CLIPMLP, CLIPEncoderLayer,
  CLIPVisionTransformer): conv patch embedding without bias, class_embedding, position_embedding,
  pre_layrnorm, pre-LN layers with separate q/k/v/out projections (query scaled by head_dim**-0.5),
  quick_gelu, eps 1e-5, post_layernorm on the class token, visual_projection without bias.
- TinyResNet: torchvision's ResNet stem/stages composed from torchvision.models.resnet.Bottleneck with
  configurable widths (torchvision's ResNet class hard-codes 64..512), key names identical to torchvision's.
- save_safetensors: the safetensors container (u64 LE header size, JSON header, raw data).
"""
import json
import struct

import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import Bottleneck


def randomise(module, scale=0.5):
    """Non-trivial values for every parameter (LayerNorm gains/biases and attention biases included)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) / fan_in ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1.0 + scale * (torch.rand_like(p) - 0.5))
            else:
                p.copy_(0.1 * torch.randn_like(p))


def torchvision_vit(image_size, patch_size, depth, heads, width, mlp_dim):
    model = torchvision.models.VisionTransformer(image_size, patch_size, depth, heads, width, mlp_dim)
    assert model.encoder.ln.eps == 1e-6
    model.heads = nn.Identity()
    randomise(model)
    return model


def timm_state_dict(model, prefix):
    """torchvision ViT keys -> timm VisionTransformer keys (open_clip TimmModel trunk)."""
    sd = model.state_dict()
    out = {
        prefix + "cls_token": sd["class_token"],
        prefix + "pos_embed": sd["encoder.pos_embedding"],
        prefix + "patch_embed.proj.weight": sd["conv_proj.weight"],
        prefix + "patch_embed.proj.bias": sd["conv_proj.bias"],
        prefix + "norm.weight": sd["encoder.ln.weight"],
        prefix + "norm.bias": sd["encoder.ln.bias"],
    }
    names = {
        "ln_1": "norm1", "ln_2": "norm2",
        "self_attention.in_proj_weight": "attn.qkv.weight", "self_attention.in_proj_bias": "attn.qkv.bias",
        "self_attention.out_proj": "attn.proj", "mlp.0": "mlp.fc1", "mlp.3": "mlp.fc2",
    }
    for i in range(len(model.encoder.layers)):
        src = "encoder.layers.encoder_layer_%d." % i
        for key, value in sd.items():
            if not key.startswith(src):
                continue
            rest = key[len(src):]
            for old, new in names.items():
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            else:
                raise KeyError(key)
            out[prefix + "blocks.%d.%s" % (i, rest)] = value
    assert len(out) == 6 + 12 * len(model.encoder.layers)
    return out


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class ClipLayer(nn.Module):
    def __init__(self, width, heads, mlp_dim, eps):
        super().__init__()
        self.heads = heads
        self.layer_norm1 = nn.LayerNorm(width, eps=eps)
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)
        self.layer_norm2 = nn.LayerNorm(width, eps=eps)
        self.fc1 = nn.Linear(width, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, width)

    def attention(self, x):
        n, t, d = x.shape
        head_dim = d // self.heads
        split = lambda y: y.view(n, t, self.heads, head_dim).transpose(1, 2)  # noqa: E731
        q = split(self.q_proj(x) * head_dim ** -0.5)
        k, v = split(self.k_proj(x)), split(self.v_proj(x))
        weights = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return self.out_proj((weights @ v).transpose(1, 2).reshape(n, t, d))

    def forward(self, x):
        x = x + self.attention(self.layer_norm1(x))
        return x + self.fc2(quick_gelu(self.fc1(self.layer_norm2(x))))


class ClipVision(nn.Module):
    def __init__(self, image_size, patch_size, width, depth, heads, mlp_dim, proj_dim, eps=1e-5):
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, width, patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width))
        self.position_embedding = nn.Embedding((image_size // patch_size) ** 2 + 1, width)
        self.pre_layrnorm = nn.LayerNorm(width, eps=eps)
        self.layers = nn.ModuleList([ClipLayer(width, heads, mlp_dim, eps) for _ in range(depth)])
        self.post_layernorm = nn.LayerNorm(width, eps=eps)
        self.visual_projection = nn.Linear(width, proj_dim, bias=False)

    def forward(self, images):
        patches = self.patch_embedding(images).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(images.shape[0], 1, -1)
        x = torch.cat([cls, patches], dim=1) + self.position_embedding.weight
        x = self.pre_layrnorm(x)
        for layer in self.layers:
            x = layer(x)
        pooled = self.post_layernorm(x[:, 0])
        return pooled, self.visual_projection(pooled)

    def hf_state_dict(self):
        """Keys as HF CLIPModel names them (vision_model.* + visual_projection.weight)."""
        out = {}
        for key, value in self.state_dict().items():
            if key.startswith("visual_projection."):
                out[key] = value
                continue
            if key.startswith("layers."):
                _, i, rest = key.split(".", 2)
                sub = rest.split(".")[0]
                if sub in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    rest = "self_attn." + rest
                elif sub in ("fc1", "fc2"):
                    rest = "mlp." + rest
                key = "encoder.layers.%s.%s" % (i, rest)
            elif key.split(".")[0] in ("patch_embedding", "class_embedding", "position_embedding"):
                key = "embeddings." + key
            out["vision_model." + key] = value
        return out


class TinyResNet(nn.Module):
    """torchvision ResNet(Bottleneck) stem + layer1..4 + global average pool, widths configurable."""

    def __init__(self, stem_channels, planes, blocks):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = stem_channels
        for s in range(4):
            stride = 1 if s == 0 else 2
            layers = []
            for b in range(blocks[s]):
                downsample = None
                if b == 0 and (stride != 1 or inplanes != planes[s] * Bottleneck.expansion):
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, planes[s] * Bottleneck.expansion, 1, stride=stride, bias=False),
                        nn.BatchNorm2d(planes[s] * Bottleneck.expansion))
                layers.append(Bottleneck(inplanes, planes[s], stride if b == 0 else 1, downsample))
                inplanes = planes[s] * Bottleneck.expansion
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*layers))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        layer3 = self.layer3(self.layer2(self.layer1(x)))
        layer4 = self.layer4(layer3)
        return layer3, layer4, layer4.mean(dim=(2, 3))


def randomise_batchnorm(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand_like(m.weight))
                m.bias.copy_(0.2 * torch.randn_like(m.bias))
                m.running_mean.copy_(0.3 * torch.randn_like(m.running_mean))
                m.running_var.copy_(0.5 + 1.5 * torch.rand_like(m.running_var))
                m.num_batches_tracked.fill_(7)


SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float64: "F32", torch.int64: "I64"}


def save_safetensors(path, tensors):
    """Writes the safetensors format: u64 LE header length, JSON header, then each tensor's raw bytes."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        dtype = SAFETENSORS_DTYPES[t.dtype]
        t = t.to(torch.float32) if dtype == "F32" else t
        data = t.numpy().astype("<f4" if dtype == "F32" else "<i8").tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # data starts 8-byte aligned, as the reference writer pads
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)

"""bert_ref.py — an independent PyTorch reference of Hugging Face BertModel and the text heads medvlp
implements (open_clip HFTextEncoder pooling + projection, hi-ml CXR-BERT projection head).

Written from the math in /work/shared/MODELS.md section 0.7 with plain torch.nn modules (no
transformers): post-LN layers, key mask -10000 (transformers <= 4.20), exact erf GELU. Module
attribute names are chosen so that state_dict() keys equal HF's ("embeddings.word_embeddings.weight",
"encoder.layer.0.attention.self.query.weight", ...). Used by make_text_model_fixtures.py and bench/make_models.py.
Runs with Debian's /usr/bin/python3 (torch 1.13)."""
import math

import torch
import torch.nn.functional as F
from torch import nn


class BertConfig:
    def __init__(self, vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
                 intermediate_size, max_position_embeddings, type_vocab_size=2, layer_norm_eps=1e-12):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps

    def to_hf_dict(self):
        return {
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers, "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size, "hidden_act": "gelu",
            "max_position_embeddings": self.max_position_embeddings, "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps, "pad_token_id": 0, "position_embedding_type": "absolute",
        }


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        # A persistent int64 buffer, as in transformers < 4.31 checkpoints.
        self.register_buffer("position_ids", torch.arange(c.max_position_embeddings).unsqueeze(0))

    def forward(self, input_ids):
        seq_len = input_ids.shape[1]
        positions = self.position_ids[:, :seq_len]
        token_types = torch.zeros_like(input_ids)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) \
            + self.token_type_embeddings(token_types)
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def heads(self, x):  # [B, L, H] -> [B, heads, L, head_dim]
        b, l, _ = x.shape
        return x.view(b, l, self.n_heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, h, additive_mask):
        q, k, v = self.heads(self.query(h)), self.heads(self.key(h)), self.heads(self.value(h))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + additive_mask
        probs = F.softmax(scores, dim=-1)
        context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return context.view(h.shape)


class DenseNorm(nn.Module):
    """dense → dropout(off) → LayerNorm(x + residual): HF BertSelfOutput / BertOutput."""

    def __init__(self, in_features, c):
        super().__init__()
        self.dense = nn.Linear(in_features, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = SelfAttention(c)
        self.output = DenseNorm(c.hidden_size, c)

    def forward(self, h, additive_mask):
        return self.output(self.self(h, additive_mask), h)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, h):
        return F.gelu(self.dense(h))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseNorm(c.intermediate_size, c)

    def forward(self, h, additive_mask):
        h = self.attention(h, additive_mask)
        return self.output(self.intermediate(h), h)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([Layer(c) for _ in range(c.num_hidden_layers)])


class Pooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, h):
        return torch.tanh(self.dense(h[:, 0]))


class BertModelRef(nn.Module):
    def __init__(self, c, with_pooler=False):
        super().__init__()
        self.config = c
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)
        if with_pooler:
            self.pooler = Pooler(c)

    def forward(self, input_ids, attention_mask):
        """Returns all hidden states (embeddings output first), like output_hidden_states=True."""
        additive_mask = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        h = self.embeddings(input_ids)
        states = [h]
        for layer in self.encoder.layer:
            h = layer(h, additive_mask)
            states.append(h)
        return states


def pool(last_hidden, attention_mask, kind):
    """open_clip's poolers (hf_model.py): cls_last_hidden_state_pooler, mean_pooler, max_pooler."""
    if kind == "cls_last_hidden_state_pooler":
        return last_hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).float()
    if kind == "mean_pooler":
        return (last_hidden * mask).sum(1) / mask.sum(1)
    if kind == "max_pooler":
        return last_hidden.masked_fill(mask == 0, -torch.inf).max(1).values
    raise ValueError(kind)


class OpenClipHFText(nn.Module):
    """open_clip HFTextEncoder: BERT → pooler → proj ('mlp': Linear-GELU-Linear without biases,
    hidden (width + embed_dim) // 2; 'linear': Linear without bias)."""

    def __init__(self, c, embed_dim, proj_type="mlp", pooler_type="cls_last_hidden_state_pooler"):
        super().__init__()
        self.pooler_type = pooler_type
        self.transformer = BertModelRef(c, with_pooler=(pooler_type == "cls_pooler"))
        width = c.hidden_size
        if proj_type == "mlp":
            hidden = (width + embed_dim) // 2
            self.proj = nn.Sequential(nn.Linear(width, hidden, bias=False), nn.GELU(),
                                      nn.Linear(hidden, embed_dim, bias=False))
        else:
            self.proj = nn.Linear(width, embed_dim, bias=False)

    def forward(self, input_ids, attention_mask):
        last = self.transformer(input_ids, attention_mask)[-1]
        if self.pooler_type == "cls_pooler":
            pooled = self.transformer.pooler(last)
        else:
            pooled = pool(last, attention_mask, self.pooler_type)
        return self.proj(pooled)


class MLMHead(nn.Module):
    """BertOnlyMLMHead, present in CXR-BERT checkpoints but unused for embeddings."""

    def __init__(self, c, word_embeddings):
        super().__init__()
        self.predictions = nn.Module()
        self.predictions.transform = nn.Module()
        self.predictions.transform.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.predictions.transform.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.predictions.decoder = nn.Linear(c.hidden_size, c.vocab_size)
        self.predictions.decoder.weight = word_embeddings.weight  # tied: one storage, two keys
        self.predictions.bias = self.predictions.decoder.bias      # tied like HF's _tie_or_clone


class CXRProjectionHead(nn.Module):
    """hi-ml BertProjectionHead: dense_to_hidden → GELU → LayerNorm → dense_to_output."""

    def __init__(self, c, projection_size):
        super().__init__()
        self.dense_to_hidden = nn.Linear(c.hidden_size, projection_size)
        self.LayerNorm = nn.LayerNorm(projection_size, eps=c.layer_norm_eps)
        self.dense_to_output = nn.Linear(projection_size, projection_size)

    def forward(self, x):
        return self.dense_to_output(self.LayerNorm(F.gelu(self.dense_to_hidden(x))))


class CXRBertRef(nn.Module):
    def __init__(self, c, projection_size):
        super().__init__()
        self.bert = BertModelRef(c)
        self.cls = MLMHead(c, self.bert.embeddings.word_embeddings)
        self.cls_projection_head = CXRProjectionHead(c, projection_size)

    def forward(self, input_ids, attention_mask):
        return self.cls_projection_head(self.bert(input_ids, attention_mask)[-1][:, 0])


def randomize(module, generator, scale=1.0):
    """Weights with non-trivial values (std 0.2·scale matrices, LayerNorm gains near 1), so that
    attention is far from uniform and every tensor matters to the output."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("LayerNorm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            elif "embeddings" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(scale * 0.2 * torch.randn(p.shape, generator=generator))


def pad_batch(token_id_lists, pad_id=0):
    """Pads to the longest (padding='longest'); returns input_ids and attention_mask."""
    longest = max(len(ids) for ids in token_id_lists)
    ids = torch.full((len(token_id_lists), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_id_lists), longest), dtype=torch.long)
    for i, row in enumerate(token_id_lists):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return ids, mask


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format written by hand: u64 LE header length, JSON header (padded with spaces
    to 8 bytes), then each tensor's little-endian bytes in header order."""
    import json
    import struct
    dtypes = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        data = t.detach().contiguous().cpu().numpy().tobytes() if t.dtype != torch.bfloat16 else \
            t.detach().contiguous().view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for blob in blobs:
            f.write(blob)

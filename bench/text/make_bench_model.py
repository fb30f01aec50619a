"""make_bench_model.py — a BERT-base-size BiomedCLIP-layout text model with random weights, and the
same model exported to ONNX (and its state dict, state.pt, for the PyTorch engine), for bench/text/run (not a test; outputs under bench/out/, gitignored).

    /usr/bin/python3 bench/text/make_bench_model.py OUT_DIR

OUT_DIR/model/: open_clip_config.json naming BiomedBERT (so medvlp takes 768/12/12/3072/512 from its
built-in table), open_clip_model.safetensors, a synthetic 30522-line vocab.txt; OUT_DIR/model.onnx."""
import json
import os
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
from bert_ref import BertConfig, OpenClipHFText, randomize, write_safetensors  # noqa: E402

BASE = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, max_position_embeddings=512)
NAME = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"


class Exported(torch.nn.Module):
    def __init__(self, text):
        super().__init__()
        self.text = text

    def forward(self, input_ids, attention_mask):
        return torch.nn.functional.normalize(self.text(input_ids, attention_mask), dim=-1)


def main(out_dir):
    model_dir = os.path.join(out_dir, "model")
    os.makedirs(model_dir, exist_ok=True)
    text = OpenClipHFText(BASE, 512)
    randomize(text, torch.Generator().manual_seed(1), scale=0.1)
    text.eval()
    state = OrderedDict(("text." + k, v) for k, v in text.state_dict().items())
    write_safetensors(os.path.join(model_dir, "open_clip_model.safetensors"), state, {"format": "pt"})
    torch.save(text.state_dict(), os.path.join(out_dir, "state.pt"))  # for bench.py's PyTorch engine
    config = {"model_cfg": {"embed_dim": 512, "text_cfg": {
        "hf_model_name": NAME, "hf_tokenizer_name": NAME, "hf_proj_type": "mlp",
        "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 256}}}
    with open(os.path.join(model_dir, "open_clip_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(model_dir, "vocab.txt"), "w") as f:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        f.write("\n".join(specials + ["tok%d" % i for i in range(BASE.vocab_size - len(specials))]) + "\n")
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True}, f)
    ids = torch.randint(5, BASE.vocab_size, (2, 16))
    mask = torch.ones_like(ids)
    torch.onnx.export(Exported(text), (ids, mask), os.path.join(out_dir, "model.onnx"),
                      input_names=["input_ids", "attention_mask"], output_names=["embeddings"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                    "embeddings": {0: "batch"}}, opset_version=14)


if __name__ == "__main__":
    main(sys.argv[1])

"""quant_accuracy.py — the accuracy cost of `--quant int8` on the benchmark's full-size models (not a
test: it needs bench/run's models and Debian's torch; the CI-sized checks are tests/quant/).

    /usr/bin/python3 bench/quant_accuracy.py MODELS_DIR MEDVLP_ENGINE [N_ITEMS [N_QUERIES [SEQ_LEN [N_IMAGES]]]]

1. cos to PyTorch fp32: 32 random texts of 32 tokens (BERT-base + BiomedCLIP head, normalised), 4 random
   224² images through ViT-B/16 (+ projection) and ResNet-50 (pooled features), run by PyTorch on the
   state dicts and by medvlp_engine ("embed" command) with fp32, int8 and fp16 weights.
2. retrieval: N_ITEMS (default 10000) random texts of SEQ_LEN (default 16) tokens and N_QUERIES (200)
   query texts embedded by medvlp fp32, int8 and fp16; exact top-10 by inner product of each query in
   each index; the mean overlap of int8's and fp16's top-10 lists with fp32's (and the worst query).
   How crowded the fp32 embeddings are is printed with it: the mean cosine of two different items, and
   the mean gap between each query's 10th and 11th best score, against which the quantised scores'
   errors decide the overlap.
3. the same over N_IMAGES (default 2000) random 224² images and 100 query images through ViT-B/16
   (+ projection): an image index, what a caption search retrieves from (int8 only; ~8 minutes)."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_engine  # noqa: E402

TOP_K = 10
CHUNK = 256
IMAGE_QUERIES = 100


class Medvlp:
    def __init__(self, engine, kind, path, quant):
        self.p = subprocess.Popen([engine, kind, path, quant], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        self.p.stdout.readline()  # load time

    def embed(self, inputs, seq_len, dim, tmp):
        """inputs: int32 ids [n, seq_len] or float32 images [n, 3, 224, 224]; returns float32 [n, dim]."""
        out = []
        for start in range(0, len(inputs), CHUNK):
            chunk = np.ascontiguousarray(inputs[start:start + CHUNK])
            chunk.tofile(os.path.join(tmp, "in"))
            self.p.stdin.write("embed %d %d %s %s\n" % (len(chunk), seq_len, os.path.join(tmp, "in"),
                                                        os.path.join(tmp, "out")))
            self.p.stdin.flush()
            assert self.p.stdout.readline().strip() == "ok"
            out.append(np.fromfile(os.path.join(tmp, "out"), dtype=np.float32).reshape(len(chunk), dim))
        return np.concatenate(out)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def random_ids(n, seq_len, gen):
    ids = torch.randint(5, 30522, (n, seq_len), generator=gen, dtype=torch.int32)
    ids[:, 0], ids[:, -1] = 2, 3
    return ids


def cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def parity(models, engine, tmp):
    gen = torch.Generator().manual_seed(5)
    cases = [("text", "text", random_ids(32, 32, gen), 32, 512),
             ("vit_b16", "vit_b16.safetensors", torch.rand(4, 3, 224, 224, generator=gen) - 0.5, 0, 512),
             ("resnet50", "resnet50.safetensors", torch.rand(4, 3, 224, 224, generator=gen) - 0.5, 0, 2048)]
    for kind, path, inputs, seq_len, dim in cases:
        model = torch_engine.load(kind, os.path.join(models, kind + "_state.pt"))
        with torch.inference_mode():
            want = (model(inputs.long(), torch.ones_like(inputs.long())) if kind == "text" else model(inputs)).numpy()
        for quant in ("none", "int8", "fp16"):
            m = Medvlp(engine, kind, os.path.join(models, path), quant)
            got = m.embed(inputs.numpy(), seq_len, dim, tmp)
            m.close()
            c = cosines(got, want)
            print("%-9s %-5s vs PyTorch fp32: min cos %.6f, mean %.6f over %d" % (kind, quant, c.min(), c.mean(),
                                                                                 len(c)), flush=True)


def top_k(queries, items, k=TOP_K):
    scores = queries @ items.T
    return np.argsort(-scores, axis=1)[:, :k]


def normalized(embeddings):
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def retrieval(models, engine, tmp, kind, items, queries, seq_len, quants, what):
    """Top-10 overlap of each quant's index + queries with fp32's; kind's inputs as Medvlp.embed takes them."""
    path, dim = os.path.join(models, "text" if kind == "text" else kind + ".safetensors"), 512
    tops, item_embs, query_embs = {}, {}, {}
    for quant in ("none",) + quants:
        m = Medvlp(engine, kind, path, quant)
        item_embs[quant] = normalized(m.embed(items, seq_len, dim, tmp))
        query_embs[quant] = normalized(m.embed(queries, seq_len, dim, tmp))
        m.close()
        tops[quant] = top_k(query_embs[quant], item_embs[quant])
    fp32_items, fp32_queries = item_embs["none"], query_embs["none"]
    sample = fp32_items[:1000]
    pair_cos = (sample @ sample.T)[np.triu_indices(len(sample), 1)]
    ranked = np.sort(fp32_queries @ fp32_items.T, axis=1)[:, ::-1]
    print("fp32 embeddings: mean cos of two different items %.4f; mean gap between a query's 10th and 11th "
          "score %.2e" % (pair_cos.mean(), (ranked[:, TOP_K - 1] - ranked[:, TOP_K]).mean()), flush=True)
    for quant in quants:
        common = [len(set(a) & set(b)) for a, b in zip(tops["none"], tops[quant])]
        print("retrieval: %d %s, %d queries: top-%d overlap %s vs fp32 %.4f (worst query %d/%d); "
              "items' min cos %s vs fp32 %.6f" % (len(items), what, len(queries), TOP_K, quant, np.mean(common) / TOP_K,
                                                  min(common), TOP_K, quant, cosines(fp32_items, item_embs[quant]).min()),
              flush=True)


def main(models, engine, n_items=10000, n_queries=200, seq_len=16, n_images=2000):
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    n_items, n_queries, seq_len, n_images = int(n_items), int(n_queries), int(seq_len), int(n_images)
    with tempfile.TemporaryDirectory() as tmp:
        parity(models, engine, tmp)
        gen = torch.Generator().manual_seed(9)
        texts, text_queries = random_ids(n_items, seq_len, gen).numpy(), random_ids(n_queries, seq_len, gen).numpy()
        retrieval(models, engine, tmp, "text", texts, text_queries, seq_len, ("int8", "fp16"),
                  "texts of %d tokens" % seq_len)
        if n_images:
            images = (torch.rand(n_images + IMAGE_QUERIES, 3, 224, 224, generator=gen) - 0.5).numpy()
            retrieval(models, engine, tmp, "vit_b16", images[:n_images], images[n_images:], 0, ("int8",),
                      "224² images")


if __name__ == "__main__":
    main(*sys.argv[1:])

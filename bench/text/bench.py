"""bench.py — times medvlp, PyTorch and ONNX Runtime on the same BERT-base text model (bench/text/run).

Each engine is a persistent process (PyTorch runs in this one) answering "SEQ_LEN BATCH ITERS" with the
mean seconds per batch. For every row the engines alternate round by round (so a load spike from other
processes hits all of them), one untimed warm-up round first; the table reports medians over rounds."""
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
import make_bench_model  # noqa: E402
from bert_ref import OpenClipHFText  # noqa: E402

ROWS = [(32, 1), (32, 32), (256, 1), (256, 32)]
ROUNDS = 5
ROUND_SECONDS = 0.6


class Process:
    def __init__(self, argv, cwd=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cwd)

    def time(self, seq_len, batch, iters):
        self.p.stdin.write("%d %d %d\n" % (seq_len, batch, iters))
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("engine process died")
        return float(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def torch_engine(out_dir, threads):
    torch.set_num_threads(threads)
    text = OpenClipHFText(make_bench_model.BASE, 512)
    state = torch.load(os.path.join(out_dir, "state.pt"))
    text.load_state_dict(state)
    text.eval()
    gen = torch.Generator().manual_seed(1)

    class Engine:
        def time(self, seq_len, batch, iters):
            ids = torch.randint(5, 30005, (batch, seq_len), generator=gen)
            ids[:, 0], ids[:, -1] = 2, 3
            mask = torch.ones_like(ids)
            with torch.inference_mode():
                start = time.perf_counter()
                for _ in range(iters):
                    torch.nn.functional.normalize(text(ids, mask), dim=-1)
                return (time.perf_counter() - start) / iters

        def close(self):
            pass
    return Engine()


def main(out_dir, bench_binary, threads):
    here = os.path.dirname(os.path.abspath(__file__))
    engines = {
        "medvlp": Process([bench_binary, os.path.join(out_dir, "model")]),
        "pytorch": torch_engine(out_dir, threads),
        "onnxruntime": Process(["node", os.path.join(here, "ort_bench.js"), os.path.join(out_dir, "model.onnx"),
                                str(threads)], cwd=os.path.join(here, "..")),
    }
    print("| tokens | batch | medvlp texts/s | PyTorch texts/s | ONNX Runtime texts/s | medvlp / ORT |")
    print("|---:|---:|---:|---:|---:|---:|")
    for seq_len, batch in ROWS:
        warm = {name: e.time(seq_len, batch, 1) for name, e in engines.items()}
        times = {name: [] for name in engines}
        for r in range(ROUNDS if seq_len * batch < 4096 else 3):
            names = list(engines)[r % 3:] + list(engines)[:r % 3]
            for name in names:
                iters = max(1, int(ROUND_SECONDS / max(warm[name], 1e-6)))
                times[name].append(engines[name].time(seq_len, batch, iters))
        rate = {name: batch / statistics.median(t) for name, t in times.items()}
        print("| %d | %d | %.1f | %.1f | %.1f | %.2f |" % (seq_len, batch, rate["medvlp"], rate["pytorch"],
                                                       rate["onnxruntime"], rate["medvlp"] / rate["onnxruntime"]),
              flush=True)
    for e in engines.values():
        e.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

"""bench.py — times medvlp, ONNX Runtime and PyTorch side by side on the same weights and inputs
(bench/run builds everything and calls this; not a test).

    /usr/bin/python3 bench/bench.py MODELS_DIR MEDVLP_ENGINE THREADS

Each engine is a persistent process per workload (medvlp_engine.c, ort_engine.js, torch_engine.py)
speaking one line protocol: it prints its load time, then answers "BATCH SEQ_LEN ITERS" with mean
seconds per batch and "rss" with its peak and current RSS. For every row one untimed warm-up round runs first,
then the engines alternate round by round (the order rotating), so a load spike from other processes
hits all of them; the table reports medians over rounds. Prints Markdown tables for BENCHMARKS.md.

Rows marked int8 (fp16) time medvlp with `--quant int8` (`fp16`) weights (another medvlp engine,
"medvlp int8") against the same fp32 ONNX Runtime session; PyTorch is left out of them. ONLY="int8,ViT" (environment)
keeps the rows whose label contains one of the comma-separated words, for quick partial runs."""
import os
import statistics
import subprocess
import sys
import time

ROUND_SECONDS = 1.0
# Between two engines' turns: ONNX Runtime's worker threads spin for a while after a run, and the
# engine timed next would share the cores with them (two-engine rows alternate strictly).
SETTLE_SECONDS = 0.2

# FLOPs (2 per multiply-add) of one item. torchvision's documented figures for its ResNet-50 and
# ViT-B/16 are 4.09 and 17.56 GMACs per 224² image (the ViT head, 768×512, adds 0.4 M).
RESNET50_FLOPS = 2 * 4.09e9
VIT_B16_FLOPS = 2 * 17.56e9 + 2 * 768 * 512


def bert_base_flops(seq_len, width=768, layers=12, ffn=3072, head_hidden=640, embed=512):
    """Every matrix product of BERT-base over one text + BiomedCLIP's MLP head on the CLS token."""
    per_layer = 2 * seq_len * width * (3 * width + width + 2 * ffn) + 2 * 2 * seq_len * seq_len * width
    return layers * per_layer + 2 * (width * head_hidden + head_hidden * embed)


PEAK_N = 2048  # the peak is a PEAK_N³ cblas_sgemm, timed inside every round of every row

# (label, workload, batch, seq_len, flops per item or None, rounds, medvlp weights)
ROWS = [
    ("ViT-B/16 224², batch 1", "vit_b16", 1, 0, VIT_B16_FLOPS, 7, "none"),
    ("ViT-B/16 224², batch 8", "vit_b16", 8, 0, VIT_B16_FLOPS, 3, "none"),
    ("ViT-B/16 224², batch 1, int8", "vit_b16", 1, 0, VIT_B16_FLOPS, 7, "int8"),
    ("ViT-B/16 224², batch 8, int8", "vit_b16", 8, 0, VIT_B16_FLOPS, 3, "int8"),
    ("ViT-B/16 224², batch 1, fp16", "vit_b16", 1, 0, VIT_B16_FLOPS, 5, "fp16"),
    ("ViT-B/16 224², batch 8, fp16", "vit_b16", 8, 0, VIT_B16_FLOPS, 3, "fp16"),
    ("ResNet-50 224², batch 1", "resnet50", 1, 0, RESNET50_FLOPS, 7, "none"),
    ("ResNet-50 224², batch 8", "resnet50", 8, 0, RESNET50_FLOPS, 5, "none"),
    ("ResNet-50 224², batch 1, int8", "resnet50", 1, 0, RESNET50_FLOPS, 7, "int8"),
    ("ResNet-50 224², batch 8, int8", "resnet50", 8, 0, RESNET50_FLOPS, 5, "int8"),
    ("BERT-base 32 tok, batch 1", "text", 1, 32, bert_base_flops(32), 7, "none"),
    ("BERT-base 32 tok, batch 32", "text", 32, 32, bert_base_flops(32), 5, "none"),
    ("BERT-base 256 tok, batch 1", "text", 1, 256, bert_base_flops(256), 5, "none"),
    ("BERT-base 32 tok, batch 1, int8", "text", 1, 32, bert_base_flops(32), 7, "int8"),
    ("BERT-base 32 tok, batch 32, int8", "text", 32, 32, bert_base_flops(32), 5, "int8"),
    ("BERT-base 256 tok, batch 1, int8", "text", 1, 256, bert_base_flops(256), 5, "int8"),
    ("BERT-base 32 tok, batch 1, fp16", "text", 1, 32, bert_base_flops(32), 5, "fp16"),
    ("BERT-base 32 tok, batch 32, fp16", "text", 32, 32, bert_base_flops(32), 5, "fp16"),
    ("decode+preprocess 2048×2500 16-bit PNG", "png", 1, 0, None, 7, "none"),
    ("decode+preprocess 3000×3000 JPEG", "jpeg", 1, 0, None, 7, "none"),
]
ENGINES = ["medvlp", "onnxruntime", "pytorch"]


def row_engines(quant):
    """The engines a row times: int8 and fp16 rows put "medvlp int8" (fp16) in medvlp's column,
    without PyTorch."""
    return ["medvlp " + quant, "onnxruntime"] if quant != "none" else ENGINES


class Engine:
    def __init__(self, argv, cwd=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cwd)
        self.load_seconds = float(self.read())

    def read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("engine process died: %s" % self.p.args)
        return line

    def time(self, batch, seq_len, iters):
        self.p.stdin.write("%d %d %d\n" % (batch, seq_len, iters))
        self.p.stdin.flush()
        return float(self.read())

    def rss_mib(self):
        """Peak and current RSS in MiB."""
        self.p.stdin.write("rss\n")
        self.p.stdin.flush()
        return tuple(int(kib) / 1024 for kib in self.read().split())

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def start_engines(workload, models, medvlp_engine, threads, wanted=("medvlp", "onnxruntime", "pytorch")):
    """The engines of `wanted` that run this workload, started one after another so load times do not
    overlap."""
    here = os.path.dirname(os.path.abspath(__file__))
    medvlp_path = {"text": "text", "vit_b16": "vit_b16.safetensors", "resnet50": "resnet50.safetensors",
                   "png": "xray16.png", "jpeg": "photo.jpg", "sgemm": "-"}[workload]
    engines = {}
    if "medvlp" in wanted:
        engines["medvlp"] = Engine([medvlp_engine, workload, os.path.join(models, medvlp_path)])
    for quant in ("int8", "fp16"):
        if "medvlp " + quant in wanted:
            engines["medvlp " + quant] = Engine([medvlp_engine, workload, os.path.join(models, medvlp_path), quant])
    if workload in ("text", "vit_b16", "resnet50") and "onnxruntime" in wanted:
        engines["onnxruntime"] = Engine(["node", os.path.join(here, "ort_engine.js"), workload,
                                         os.path.join(models, workload + ".onnx"), str(threads)], cwd=here)
    if workload != "sgemm" and "pytorch" in wanted:
        torch_path = os.path.join(models, workload + "_state.pt" if workload in ("text", "vit_b16", "resnet50")
                                  else medvlp_path)
        engines["pytorch"] = Engine(["/usr/bin/python3", os.path.join(here, "torch_engine.py"), workload,
                                     torch_path, str(threads)], cwd=here)
    return engines


def time_row(engines, sgemm, batch, seq_len, rounds):
    """Median seconds per batch of each engine, and the median sgemm GFLOP/s measured between rounds
    (under a shared machine's load the peak moves too; the row is compared with its own rounds)."""
    warm = {name: e.time(batch, seq_len, 1) for name, e in engines.items()}
    times = {name: [] for name in engines}
    peaks = []
    names = list(engines)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            iters = max(1, int(ROUND_SECONDS / max(warm[name], 1e-6)))
            time.sleep(SETTLE_SECONDS)
            times[name].append(engines[name].time(batch, seq_len, iters))
        peaks.append(2 * PEAK_N ** 3 / sgemm.time(1, PEAK_N, 3) / 1e9)
    return {name: statistics.median(t) for name, t in times.items()}, statistics.median(peaks)


def cell(value, fmt):
    return fmt % value if value is not None else "n/a"


def main(models, medvlp_engine, threads):
    print("| row | medvlp /s | ONNX Runtime /s | PyTorch /s | medvlp / ORT | medvlp / PyTorch | medvlp GFLOP/s "
          "| sgemm GFLOP/s | medvlp % of sgemm | ORT % of sgemm | load avg |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    resources = []
    sgemm = start_engines("sgemm", models, medvlp_engine, threads)["medvlp"]
    only = [word for word in os.environ.get("ONLY", "").split(",") if word]
    rows = [row for row in ROWS if not only or any(word in row[0] for word in only)]
    engines, workload = {}, None
    for label, row_workload, batch, seq_len, flops, rounds, quant in rows:
        if row_workload != workload:
            for name, e in engines.items():
                resources.append((workload, name, e.load_seconds) + e.rss_mib())
                e.close()
            workload = row_workload
            wanted = {name for row in rows if row[1] == workload for name in row_engines(row[6])}
            engines = start_engines(workload, models, medvlp_engine, threads, wanted)
        timed = {name: e for name, e in engines.items() if name in row_engines(quant)}
        seconds, peak = time_row(timed, sgemm, batch, seq_len, rounds)
        if quant != "none":
            seconds["medvlp"] = seconds.pop("medvlp " + quant)
        rate = {name: batch / seconds[name] if name in seconds else None for name in ENGINES}
        gflops = {name: rate[name] * flops / 1e9 if flops and rate[name] else None for name in ENGINES}
        ort_ratio = rate["medvlp"] / rate["onnxruntime"] if rate["onnxruntime"] else None
        torch_ratio = rate["medvlp"] / rate["pytorch"] if rate["pytorch"] else None
        share = {name: gflops[name] / peak * 100 if gflops[name] else None for name in ENGINES}
        print("| %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %s | %.1f |" % (
            label, cell(rate["medvlp"], "%.2f"), cell(rate["onnxruntime"], "%.2f"), cell(rate["pytorch"], "%.2f"),
            cell(ort_ratio, "**%.2f**"), cell(torch_ratio, "%.2f"), cell(gflops["medvlp"], "%.0f"), peak,
            cell(share["medvlp"], "%.0f%%"), cell(share["onnxruntime"], "%.0f%%"), os.getloadavg()[0]), flush=True)
    for name, e in engines.items():
        resources.append((workload, name, e.load_seconds) + e.rss_mib())
        e.close()
    sgemm.close()
    print("\n| workload | engine | load s | peak RSS MiB | RSS after the rows MiB |\n|---|---|---:|---:|---:|")
    for workload, name, load_seconds, peak_rss, rss in resources:
        if workload in ("text", "vit_b16", "resnet50"):
            print("| %s | %s | %.2f | %.0f | %.0f |" % (workload, name, load_seconds, peak_rss, rss))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

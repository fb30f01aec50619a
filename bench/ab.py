"""ab.py — before/after timing of medvlp builds on one bench/run workload, as bench.py times a row:
the engines (each build's medvlp_engine, then ONNX Runtime) alternate round by round, the order
rotating, SETTLE_SECONDS apart; medians reported, with ORT's time over each. Not part of bench/run.

    /usr/bin/python3 bench/ab.py WORKLOAD BATCH SEQ_LEN ITERS ROUNDS BUILD_DIR [BUILD_DIR...]

WORKLOAD: text, vit_b16 or resnet50 (bench/run's models in bench/out/models); BUILD_DIR: a build
directory holding bench/medvlp_engine (e.g. build-bench, and a worktree's build of the old commit)."""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import SETTLE_SECONDS, Engine  # noqa: E402

MODEL_PATHS = {"text": "text", "vit_b16": "vit_b16.safetensors", "resnet50": "resnet50.safetensors"}


def main(workload, batch, seq_len, iters, rounds, *build_dirs):
    batch, seq_len, iters, rounds = int(batch), int(seq_len), int(iters), int(rounds)
    here = os.path.dirname(os.path.abspath(__file__))
    models = os.path.join(here, "out", "models")
    os.environ.pop("OPENBLAS_CORETYPE", None)  # as bench/run: each library picks its own kernels
    engines = {d: Engine([os.path.join(d, "bench", "medvlp_engine"), workload,
                          os.path.join(models, MODEL_PATHS[workload])]) for d in build_dirs}
    engines["onnxruntime"] = Engine(["node", os.path.join(here, "ort_engine.js"), workload,
                                     os.path.join(models, workload + ".onnx"), os.environ.get("OMP_NUM_THREADS", "2")],
                                    cwd=here)
    for e in engines.values():
        e.time(batch, seq_len, 1)
    times = {name: [] for name in engines}
    names = list(engines)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(SETTLE_SECONDS)
            times[name].append(engines[name].time(batch, seq_len, iters))
    ort = statistics.median(times["onnxruntime"])
    for name in names:
        median = statistics.median(times[name])
        print("%-32s median %.4f s  min %.4f s  ORT/this %.3f" % (name, median, min(times[name]), ort / median))
    for e in engines.values():
        e.close()


if __name__ == "__main__":
    if len(sys.argv) < 7:
        sys.exit(__doc__)
    main(*sys.argv[1:])

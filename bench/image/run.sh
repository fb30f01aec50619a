#!/usr/bin/env bash
# bench/image — ViT-B/16-224 and ResNet-50-224, batch 1 and 8: medvlp (C) against PyTorch, random weights.
#   bench/image/run.sh [THREADS=2] [REPEATS=3]      (after `ninja -C build`)
# Short runs: best of REPEATS after one warm-up, same thread count for OpenBLAS and torch.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${1:-2}; repeats=${2:-3}
# OpenBLAS falls back to its SSE3 (Prescott) kernels on CPUs it cannot identify (generic VM models);
# name the core when it does: OPENBLAS_CORETYPE=SkylakeX bench/image/run.sh
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude bench/image/bench_image.c build/libmedvlp.a -o "$work/bench_image" \
  $(pkg-config --libs openblas jansson libutf8proc libpng libjpeg) -fopenmp -lm -lpthread
/usr/bin/python3 bench/image/torch_bench.py "$work" "$threads" "$repeats"
OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads "$work/bench_image" "$work" "$repeats"

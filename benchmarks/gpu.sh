#!/usr/bin/env bash
# The GPU figures of issue 7 in one prepared run (a machine with CUDA and PyTorch):
# every explainer vs its peer and floor on VGG-16 (random weights), end-to-end Task 1 throughput
# on the 1,300 embedded images in fp32 and bf16 with the projection to 50,000 images, and the
# bf16-vs-fp32 map check. Needs the embedded ILSVRC images in $GRADCAM_DATA_DIR (default data/cache).
set -euo pipefail
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 benchmarks/bench_explainers.py --model vgg16 --device cuda --batch 64 --repeats 5 --task1-images 1300 \
    --num-workers 8 --box-workers 12 --occlusion-images 4 2>&1 | grep -v Warning | tee "$OUT/bench_vgg16_fp32.txt"
python3 benchmarks/bench_explainers.py --model vgg16 --device cuda --batch 128 --task1-images 1300 --num-workers 8 \
    --box-workers 12 --task1-only --precision bf16 2>&1 | tee "$OUT/task1_vgg16_bf16.txt"
python3 benchmarks/bench_gradcam.py --models vgg16 --batch 64 --repeats 5 --device cuda 2>&1 | tee "$OUT/bench_gradcam_vgg16.txt"
python3 benchmarks/bench_explainers.py --model vgg16 --device cuda --batch 64 --precision-check 2>&1 | tee "$OUT/precision_check.txt"

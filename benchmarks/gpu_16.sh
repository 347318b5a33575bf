#!/usr/bin/env bash
# Issue 16's GPU figures in one prepared run, on a lent GPU machine (the device tool), after
# `python benchmarks/gpu_prepare.py` here and one call per part carrying .whl/part-N or
# .gpu/data-N.tar (each call may begin with `bash benchmarks/gpu_16.sh unpack`):
#   1. Task 1 at scale (benchmarks/bench_task1.py): VGG-16 (random weights) and SqueezeNet 1.1 on
#      the embedded images made full size: decoding, plain inference, Task 1 with the boxes in the
#      model's process, in worker processes and on the GPU (kornia), the 50,000-image projection;
#      and the GPU's boxes against opencv's on all 1,300 images at their original sizes
#      (benchmarks/check_device_boxes.py);
#   2. every notebook through papermill with device=cuda (default parameters otherwise; notebook 01
#      with its boxes made on the GPU);
#   3. every printed number of those against the committed CPU outputs
#      (benchmarks/compare_notebooks.py; tolerance: 2 % or 2 units of the last printed digit).
# Everything it writes goes under $OUT (default results/gpu16).
set -uo pipefail
OUT=${OUT:-results/gpu16}
mkdir -p "$OUT/notebooks"
for wheels in .whl/part-*; do  # packages missing on the GPU image, into /tmp/site (kept while warm)
  [ -d "$wheels" ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site "$wheels"/*.whl
done
for part in .gpu/data-*.tar; do [ -f "$part" ] && tar -xf "$part"; done  # into data/cache
[ "${1:-}" = unpack ] && exit 0
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 GRADCAM_DATA_DIR=$PWD/data/cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" \
  | tee -a "$OUT/gpu.txt"
for model in vgg16 squeezenet1_1; do
  python3 benchmarks/bench_task1.py --model $model --device cuda --batch 128 --num-workers 12 \
    --box-workers 12 2>&1 | grep -v Warning | tee "$OUT/task1_$model.txt"
done
python3 benchmarks/check_device_boxes.py --device cuda --full-size 2>&1 | grep -v Warning \
  | tee "$OUT/device_boxes.txt"
for notebook in notebooks/0*.ipynb; do
  name=$(basename "$notebook")
  start=$(date +%s)
  extra=()
  [ "$name" = 01_localization.ipynb ] && extra=(-p boxes_on_device True)
  python3 -m papermill --cwd notebooks "$notebook" "$OUT/notebooks/$name" -p device cuda "${extra[@]}" \
    >"$OUT/notebooks/${name%.ipynb}.log" 2>&1
  echo "$name: exit $? in $(( $(date +%s) - start )) s" | tee -a "$OUT/papermill.txt"
done
python3 benchmarks/compare_notebooks.py notebooks "$OUT/notebooks" | tee "$OUT/compare.txt"

#!/usr/bin/env bash
# Issue 16's GPU figures, prepared to fit a lent GPU machine's 15 minutes (the device tool):
# here, `python benchmarks/gpu_prepare.py` makes .gpu/part-1.tar ... part-5.tar (the wheels the
# GPU image lacks and data/cache, about 40 MB each: what a call carries beside the repository).
# Then, back to back (a warm machine goes back after 30 s idle, and what was unpacked with it):
#   bash benchmarks/gpu_16.sh unpack      4 calls, carrying .gpu/part-1.tar ... part-4.tar
#   bash benchmarks/gpu_16.sh bench       carrying .gpu/part-5.tar (timeout 420 s; about 4 min
#                                         expected, not yet measured there):
#     Task 1 at scale for VGG-16 (random weights) on the embedded images made full size
#     (benchmarks/bench_task1.py: decoding, plain inference, Task 1's maps alone, Task 1 with the
#     boxes in the model's process, in worker processes and on the GPU (kornia), the 50,000-image
#     projection), and the GPU's boxes against opencv's on all 1,300 images at their original
#     sizes at 5, 15 and 50 % (benchmarks/check_device_boxes.py; opencv's side, one CPU core,
#     sets the time);
#   bash benchmarks/gpu_16.sh notebooks   (timeout 480 s; about 4 min expected): every notebook
#     through papermill with device=cuda (default parameters otherwise; notebook 01 with its boxes
#     made on the GPU), all at once (2 CPU threads each), then every printed number against the committed CPU outputs
#     (benchmarks/compare_notebooks.py; tolerance: 2 % or 2 units of the last printed digit);
#   bash benchmarks/gpu_16.sh squeezenet  if time is left: bench_task1.py for SqueezeNet 1.1.
# Each call writes at most 8 files to $OUT (default results/gpu16), as the device tool returns.
# A smoke test of the notebooks step here, in a clone unpacked from the parts: with .venv/bin first
# on PATH and an empty /tmp/site/.installed (the step installs the wheels into /tmp/site, and this
# machine's Python is not the GPU image's 3.12), DEVICE=cpu NOTEBOOKS=notebooks/05_chest_xray.ipynb.
# NB_SECONDS (default 400) bounds each notebook, so that the comparison always runs. The exit
# status is 1 when any command failed.
set -uo pipefail
OUT=${OUT:-results/gpu16}
mkdir -p "$OUT"
step=${1:-bench}
DEVICE=${DEVICE:-cuda}
rc=0
for part in .gpu/part-*.tar; do  # wheels into .whl, data into data/cache (kept while warm)
  [ -f "$part" ] || continue
  if tar -xzf "$part"; then rm "$part" && echo "unpacked $part"; else echo "could not unpack $part" >&2; rc=1; fi
done
# each part holds an empty .gpu/unpacked/part-N-of-M: all M there, or a part is missing
unpacked=(.gpu/unpacked/part-*-of-*)
[ -e "${unpacked[0]}" ] && of=${unpacked[0]##*-of-} || of=unknown
[ "$step" = unpack ] && { echo "parts unpacked: ${#unpacked[@]} of $of"; exit $rc; }
if [ "$of" = unknown ] || [ "${#unpacked[@]}" -ne "$of" ]; then
  echo "parts unpacked: ${#unpacked[@]} of $of; carry the missing ones (gpu_prepare.py parts) first" >&2
  exit 1
fi
if [ ! -f /tmp/site/.installed ]; then  # packages missing on the GPU image, once per machine
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && touch /tmp/site/.installed || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 GRADCAM_DATA_DIR=$PWD/data/cache
task1() {  # bench_task1.py writes its full-size JPEGs into --folder (again on each call)
  python3 benchmarks/bench_task1.py --model "$1" --device cuda --batch 128 --num-workers 12 \
    --box-workers 12 --folder /tmp/full_size_val 2>&1 | grep --line-buffered -v Warning \
    | tee "$OUT/task1_$1.txt" || rc=1
}
case "$step" in
  bench)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
    python3 -c "import torch, torchvision; print('torch', torch.__version__, torchvision.__version__)" \
      | tee -a "$OUT/gpu.txt" || rc=1
    task1 vgg16
    python3 benchmarks/check_device_boxes.py --device cuda --full-size --thresholds 0.05,0.15,0.5 2>&1 \
      | grep --line-buffered -v Warning | tee "$OUT/device_boxes.txt" || rc=1
    ;;
  squeezenet)
    task1 squeezenet1_1
    ;;
  notebooks)
    mkdir -p /tmp/executed
    export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 DEVICE NB_SECONDS=${NB_SECONDS:-400}
    run_notebook() {
      local name extra=() start status
      name=$(basename "$1")
      start=$(date +%s)
      [ "$name" = 01_localization.ipynb ] && extra=(-p boxes_on_device True)
      timeout "$NB_SECONDS" python3 -m papermill --cwd notebooks "$1" "/tmp/executed/$name" \
        -p device "$DEVICE" "${extra[@]}" >"/tmp/executed/${name%.ipynb}.log" 2>&1
      status=$?
      echo "$name: exit $status in $(($(date +%s) - start)) s"
      return $((status != 0))
    }
    export -f run_notebook
    printf '%s\n' ${NOTEBOOKS:-notebooks/0*.ipynb} | xargs -P 8 -n 1 bash -c 'run_notebook "$1"' _ \
      | sort | tee "$OUT/papermill.txt" || rc=1
    python3 benchmarks/compare_notebooks.py notebooks /tmp/executed 2>&1 | tee "$OUT/compare.txt" || rc=1
    tar -czf "$OUT/executed.tar.gz" -C /tmp executed || rc=1  # the executed notebooks and their logs
    ;;
  *)
    echo "unknown step $step: unpack, bench, notebooks or squeezenet" >&2
    exit 2
    ;;
esac
exit $rc

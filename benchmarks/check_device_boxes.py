"""Task 1's boxes made on the model's device (kornia's connected components,
``metrics.threshold_boxes``) against opencv's (``metrics.threshold_box``) on the embedded images:
every top-5 Grad-CAM (and CAM) map, resized to the image's size and binarised at each threshold,
boxed both ways; prints how many boxes differ (a missing box counts as a box), and how many of
Task 1's rows differ between ``run_localization`` with the boxes on the device and with opencv's.

    python benchmarks/check_device_boxes.py                       # CPU: embedded 1,300, 227 x 227
    python benchmarks/check_device_boxes.py --device cuda --full-size   # at the original sizes

opencv boxes the map as the CPU path makes it (resized on the CPU); the device path resizes on the
device, so on a GPU the two maps may differ in the last bits and a pixel at a threshold's edge may
flip: those differences are what this counts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np
from bench_gradcam import build  # bench_gradcam.py, beside this script

from gradcam_core import data, metrics
from gradcam_core.maps import resize_to_image, upsample
from gradcam_core.methods import CAM, GradCAM
from gradcam_core.tasks import localization
from gradcam_core.tasks.common import ImageBatches

SWEEP = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


def compare(model, records, thresholds, batch: int) -> tuple[int, int]:
    """(boxes compared, boxes that differ)."""
    explainers = [GradCAM(model)] + ([CAM(model)] if model.spec.cam_compatible else [])
    compared = differ = 0
    for images, indices in ImageBatches(model, records, "boxes both ways", batch_size=batch):
        forward = explainers[0].forward(images)
        classes = forward.logits.detach().topk(5, dim=1).indices
        for explainer in explainers:
            maps = explainer.maps(forward, classes).detach().float()
            for row, index in enumerate(indices):
                record = records[index]
                width, height = record.size
                on_cpu = resize_to_image(maps[row].cpu(), record.size)
                on_device = maps[row : row + 1]
                if on_device.shape[-2:] != (height, width):
                    on_device = upsample(on_device, (height, width))
                for threshold in thresholds:
                    boxes, found = metrics.threshold_boxes(on_device[0], threshold)
                    boxes, found = boxes.cpu().numpy(), found.cpu().numpy()
                    for k, heat in enumerate(on_cpu):
                        expected = metrics.threshold_box(heat, threshold)
                        same = (
                            (not found[k])
                            if expected is None
                            else found[k] and np.array_equal(expected, boxes[k])
                        )
                        compared += 1
                        differ += not same
    return compared, differ


def compare_rows(model, records, thresholds, batch: int) -> tuple[int, int]:
    """Task 1's rows (:func:`~gradcam_core.tasks.localization.run_localization`, Grad-CAM and
    CAM) with the boxes made on the device against those made by opencv: (rows, rows that
    differ). This covers the device path as Task 1 takes it: maps of several sizes padded
    together, boxed in groups."""
    methods = ("grad-cam", "cam") if model.spec.cam_compatible else ("grad-cam",)
    tables = [
        localization.run_localization(
            model,
            records,
            thresholds=thresholds,
            methods=methods,
            batch_size=batch,
            boxes_on_device=on_device,
        ).table
        for on_device in (False, True)
    ]
    columns = ["image", "method", "threshold", "loc_top1", "loc_topk"]
    left, right = (t[columns].reset_index(drop=True) for t in tables)
    same = (left == right) | (left.isna() & right.isna())
    return len(left), int((~same.all(axis=1)).sum())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="squeezenet1_1")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=1300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--thresholds", default=",".join(map(str, SWEEP)))
    parser.add_argument("--full-size", action="store_true", help="the images at their original sizes")
    args = parser.parse_args(argv)
    model = build(args.model, args.device)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    records = data.load_ilsvrc_val(n_images=args.images)
    with tempfile.TemporaryDirectory() as scratch:
        if args.full_size:
            records = data.load_ilsvrc_val(data.write_full_size_val(records, scratch))
        compared, differ = compare(model, records, thresholds, args.batch)
        rows, rows_differ = compare_rows(model, records, thresholds, args.batch)
    size = "original sizes" if args.full_size else "227 x 227"
    print(
        f"{args.model} on {model.device}: {len(records)} images at {size}, thresholds {thresholds}: "
        f"{compared} boxes compared, {differ} differ; Task 1's rows: {rows} compared, {rows_differ} differ"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

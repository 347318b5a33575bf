"""Task 1 (paper Sec. 4.1, Table 1): weakly-supervised localisation on ILSVRC val -- a box from
each of the top-5 classes' maps, right when the class is right and the box overlaps a
ground-truth box with IoU >= 0.5."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from .. import data, metrics
from ..maps import normalize_maps, resize_to_image
from ..methods import CAM, GradCAM, Saliency
from ..models import LoadedModel
from .common import ImageBatches, TaskRun, autocast, with_model_column

#: Task 1's map methods (boxes from their maps) ...
MAP_METHODS = ("grad-cam", "cam", "backprop")
#: ... and its trivial baselines, which box without a map: the whole image, a centred box.
BASELINES = ("full-image", "centre-box")
#: The paper's binarisation threshold: 15 % of the map's maximum (Sec. 4.1).
PAPER_THRESHOLD = 0.15
#: Every row label a localisation run can produce.
METHODS_AND_BASELINES = MAP_METHODS + BASELINES


class LocalizationRun(TaskRun):
    """Task 1's per-image table: one row per image, method and threshold (baselines have no
    threshold) with ``top5`` (the predicted classes), ``cls_top1``, ``cls_topk``, ``loc_top1``,
    ``loc_topk``."""


@dataclass
class LocalizationExamples:
    """Figure data: images, their normalised top-1 Grad-CAM maps at image size, ground-truth
    boxes, the box extracted from each map (or None) and a title per image."""

    images: list[np.ndarray]
    heatmaps: list[np.ndarray]
    gt_boxes: list[np.ndarray]
    pred_boxes: list
    titles: list[str]


def centre_box(size: tuple[int, int], side: float) -> np.ndarray:
    """A box centred in the image covering ``side`` of its width and of its height."""
    w, h = size
    return np.array(
        [w * (1 - side) / 2, h * (1 - side) / 2, w * (1 + side) / 2, h * (1 + side) / 2], np.float32
    )


def _hits(heat: np.ndarray, predicted, label: int, gt_boxes, thresholds, topk: int) -> np.ndarray:
    """For one image and method: ``(thresholds, topk)`` hits of the boxes of its maps."""
    boxes = [metrics.threshold_box(heat[k], t) for t in thresholds for k in range(topk)]
    hits = metrics.localization_hits(np.tile(predicted, len(thresholds)), boxes, label, gt_boxes)
    return hits.reshape(len(thresholds), topk)


def run_localization(
    model: LoadedModel,
    records,
    *,
    thresholds=(PAPER_THRESHOLD,),
    topk=5,
    methods=METHODS_AND_BASELINES,
    backprop_images: int | None = None,
    centre_box_side=0.5,
    precision="fp32",
    box_workers=0,
    **loading,
) -> LocalizationRun:
    """Task 1 (paper Sec. 4.1, Table 1): for each image, the top-``topk`` classes, a map per class
    and method, a box per map and threshold, and whether classification and localisation are
    right at top-1 and top-``topk``. One row per image, method and threshold.

    ``backprop_images`` limits the gradient-saliency ("Backprop") baseline, whose ``topk``
    full backward passes per image cost ~10 forward passes, to the first images of the run.
    ``box_workers`` > 1 extracts boxes in that many threads (on a GPU the boxes, on the CPU,
    are the bottleneck); rows come out in the same order either way. ``loading``: how images
    are loaded (:class:`~gradcam_core.tasks.common.ImageBatches`: ``batch_size``,
    ``num_workers``, ``progress``).
    """
    unknown = set(methods) - set(METHODS_AND_BASELINES)
    if unknown:
        raise ValueError(f"unknown localisation method(s) {sorted(unknown)}; known: {METHODS_AND_BASELINES}")
    start = time.perf_counter()
    gradcam = GradCAM(model)
    cam = CAM(model) if "cam" in methods and model.spec.cam_compatible else None
    saliency = Saliency(model) if "backprop" in methods else None
    pool = ThreadPoolExecutor(box_workers) if box_workers > 1 else None  # opencv releases the GIL
    rows = []
    batches = ImageBatches(model, records, f"Task 1 {model.name}", **loading)
    seen = 0
    for images, indices in batches:
        with autocast(images.device, precision):
            forward = gradcam.forward(images)
            classes = forward.logits.detach().topk(topk, dim=1).indices
            per_method = {"grad-cam": gradcam.maps(forward, classes)} if "grad-cam" in methods else {}
            if cam is not None:
                per_method["cam"] = cam.maps(forward, classes)
        if saliency is not None:
            limit = (
                len(indices) if backprop_images is None else max(0, min(len(indices), backprop_images - seen))
            )
            if limit:  # maps for the first `limit` images of the batch only
                per_method["backprop"] = saliency.attribute(images[:limit], classes[:limit])
        classes = classes.cpu().numpy()
        hits_by_image = []  # per image: {method: (thresholds, topk) hits}, boxes from a thread pool if asked
        for row_in_batch, index in enumerate(indices):
            record = records[index]
            jobs = {}
            for method, maps in per_method.items():
                if row_in_batch < len(maps):
                    work = (
                        resize_to_image(maps[row_in_batch], record.size),
                        classes[row_in_batch],
                        record.label,
                        record.boxes,
                        thresholds,
                        topk,
                    )
                    jobs[method] = pool.submit(_hits, *work) if pool else _hits(*work)
            hits_by_image.append(jobs)
        for row_in_batch, index in enumerate(indices):
            record = records[index]
            predicted = classes[row_in_batch]
            base = {
                "image": record.name,
                "label": record.label,
                "top5": " ".join(map(str, predicted)),
                "cls_top1": bool(predicted[0] == record.label),
                "cls_topk": bool(record.label in predicted),
            }
            for method, job in hits_by_image[row_in_batch].items():
                hits = job.result() if pool else job
                for threshold, hit in zip(thresholds, hits):
                    rows.append(
                        {
                            **base,
                            "method": method,
                            "threshold": threshold,
                            "loc_top1": bool(hit[0]),
                            "loc_topk": bool(hit.any()),
                        }
                    )
            for method, box in (
                ("full-image", np.array([0, 0, *record.size], np.float32)),
                ("centre-box", centre_box(record.size, centre_box_side)),
            ):
                if method in methods:
                    hit = metrics.localization_hits(predicted, [box] * topk, record.label, record.boxes)
                    rows.append(
                        {
                            **base,
                            "method": method,
                            "threshold": np.nan,
                            "loc_top1": bool(hit[0]),
                            "loc_topk": bool(hit.any()),
                        }
                    )
        seen += len(indices)
    if pool:
        pool.shutdown()
    return LocalizationRun(with_model_column(rows, model), batches.skipped, time.perf_counter() - start)


def localization_examples(
    model: LoadedModel, records, threshold=PAPER_THRESHOLD, count=5
) -> LocalizationExamples:
    """For a figure: the first ``count`` images, their normalised top-1 Grad-CAM maps at image
    size, the ground-truth boxes and the box Task 1 extracts from each map."""
    chosen = list(records[:count])
    images = [data.load_rgb(r.path) for r in chosen]
    maps, classes, _ = GradCAM(model).attribute_top_k(model.preprocess(images), 1)
    heatmaps, boxes, titles = [], [], []
    for record, raw, cls in zip(chosen, maps, classes[:, 0].tolist()):
        heat = resize_to_image(raw, record.size)[0]
        box = metrics.threshold_box(heat, threshold)
        heatmaps.append(normalize_maps(torch.from_numpy(heat)).numpy())
        boxes.append(box)
        right = metrics.localization_correct(cls, box, record.label, record.boxes)
        titles.append(f"{model.class_names[cls]} ({'right' if right else 'wrong'})")
    return LocalizationExamples(
        [np.asarray(im) for im in images], heatmaps, [r.boxes for r in chosen], boxes, titles
    )

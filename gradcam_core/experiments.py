"""Runs of the report's tasks over a dataset: batched through a DataLoader, with a progress bar,
skipping and counting unreadable images, and returning per-image tables (pandas) that the
notebooks summarise with :mod:`gradcam_core.report`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import data, metrics
from .methods import CAM, GradCAM, Saliency
from .models import LoadedModel, to_model_input

#: Localisation methods of Task 1; "full-image" and "centre-box" are trivial baselines.
LOCALIZATION_METHODS = ("grad-cam", "cam", "backprop", "full-image", "centre-box")


@dataclass
class Run:
    """A task's per-image table, the images it could not read, and its wall time."""

    table: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def batches(model: LoadedModel, records, batch_size: int, num_workers: int = 0, desc: str = "", progress: bool = True):
    """Yield ``(images on the model's device, record indices)``; unreadable images are skipped
    and their paths collected in the returned list (filled as the iteration goes)."""
    skipped: list[str] = []
    loader = DataLoader(data.ImageDataset(records, model.spec.transform), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=data.collate_skipping,
                        pin_memory=model.device.type == "cuda")

    def generate():
        for images, indices, failed in tqdm(loader, desc=desc, disable=not progress, unit="batch", mininterval=5):
            skipped.extend(str(records[i].path) for i in failed)
            if images is not None:
                yield to_model_input(images, model.device), indices

    return generate(), skipped


def maps_at_image_size(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(K, h, w)`` maps bilinearly resized to an image's stored ``(width, height)``."""
    if tuple(maps.shape[-2:]) != (size[1], size[0]):
        maps = F.interpolate(maps[None].float(), size=(size[1], size[0]), mode="bilinear", align_corners=False)[0]
    return maps.float().cpu().numpy()


def centre_box(size: tuple[int, int], side: float) -> np.ndarray:
    """A box centred in the image covering ``side`` of its width and of its height."""
    w, h = size
    return np.array([w * (1 - side) / 2, h * (1 - side) / 2, w * (1 + side) / 2, h * (1 + side) / 2], np.float32)


def run_localization(model: LoadedModel, records, *, thresholds=(0.15,), topk: int = 5, batch_size: int = 64,
                     num_workers: int = 0, methods=LOCALIZATION_METHODS, backprop_images: int | None = None,
                     centre_box_side: float = 0.5, progress: bool = True) -> Run:
    """Task 1 (paper Sec. 4.1, Table 1): for each image, the top-``topk`` classes, a map per class
    and method, a box per map and threshold, and whether classification and localisation are
    right at top-1 and top-``topk``. One row per image, method and threshold.

    ``backprop_images`` limits the gradient-saliency ("Backprop") baseline, whose ``topk``
    full backward passes per image cost ~10 forward passes, to the first images of the run.
    """
    unknown = set(methods) - set(LOCALIZATION_METHODS)
    if unknown:
        raise ValueError(f"unknown localisation method(s) {sorted(unknown)}; known: {LOCALIZATION_METHODS}")
    start = time.perf_counter()
    gradcam = GradCAM(model)
    cam = CAM(model) if "cam" in methods and model.spec.cam_compatible else None
    saliency = Saliency(model) if "backprop" in methods else None
    rows = []
    iterator, skipped = batches(model, records, batch_size, num_workers, f"Task 1 {model.name}", progress)
    seen = 0
    for images, indices in iterator:
        forward = gradcam.forward(images)
        classes = forward.logits.detach().topk(topk, dim=1).indices
        per_method = {"grad-cam": gradcam.maps(images, forward, classes)}
        if cam is not None:
            per_method["cam"] = cam.maps(images, forward, classes)
        if saliency is not None:
            limit = len(indices) if backprop_images is None else max(0, min(len(indices), backprop_images - seen))
            if limit:  # maps for the first `limit` images of the batch only
                per_method["backprop"] = saliency.attribute(images[:limit], classes[:limit])
        classes = classes.cpu().numpy()
        for row_in_batch, index in enumerate(indices):
            record = records[index]
            predicted = classes[row_in_batch]
            base = {"image": record.name, "label": record.label, "top5": " ".join(map(str, predicted)),
                    "cls_top1": bool(predicted[0] == record.label), "cls_topk": bool(record.label in predicted)}
            for method, maps in per_method.items():
                if row_in_batch >= len(maps):
                    continue
                heat = maps_at_image_size(maps[row_in_batch], record.size)
                boxes = [metrics.threshold_box(heat[k], t) for t in thresholds for k in range(topk)]
                hits = metrics.localization_hits(np.tile(predicted, len(thresholds)), boxes, record.label,
                                                 record.boxes).reshape(len(thresholds), topk)
                for threshold, hit in zip(thresholds, hits):
                    rows.append({**base, "method": method, "threshold": threshold,
                                 "loc_top1": bool(hit[0]), "loc_topk": bool(hit.any())})
            for method, box in (("full-image", np.array([0, 0, *record.size], np.float32)),
                                ("centre-box", centre_box(record.size, centre_box_side))):
                if method in methods:
                    hit = metrics.localization_hits(predicted, [box] * topk, record.label, record.boxes)
                    rows.append({**base, "method": method, "threshold": np.nan, "loc_top1": bool(hit[0]),
                                 "loc_topk": bool(hit.any())})
        seen += len(indices)
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(0, "model", model.name)
    return Run(table, skipped, time.perf_counter() - start)


def run_pointing_game(model: LoadedModel, records, *, tolerance: float = 15.0, topk: int = 5, batch_size: int = 64,
                      num_workers: int = 0, progress: bool = True) -> Run:
    """Task 2 (paper Sec. 4.3): Grad-CAM maps for the ground-truth class and for the
    top-``topk`` predictions. One row per image and cued class: whether it is the ground truth,
    its rank among the predictions (0 = not predicted), the map's raw (unnormalised) maximum, and
    whether the maximum lies within ``tolerance`` px of a ground-truth box. The centre-point
    baseline is a row with ``method = "centre"``."""
    start = time.perf_counter()
    gradcam = GradCAM(model)
    rows = []
    iterator, skipped = batches(model, records, batch_size, num_workers, f"Task 2 {model.name}", progress)
    for images, indices in iterator:
        forward = gradcam.forward(images)
        predicted = forward.logits.detach().topk(topk, dim=1).indices
        labels = torch.tensor([records[i].label for i in indices], device=images.device)
        cues = torch.cat([labels[:, None], predicted], dim=1)  # ground truth first, then top-k
        maps = gradcam.maps(images, forward, cues)
        predicted = predicted.cpu().numpy()
        for row_in_batch, index in enumerate(indices):
            record = records[index]
            heat = maps_at_image_size(maps[row_in_batch], record.size)
            for j, cls in enumerate(cues[row_in_batch].tolist()):
                if j > 0 and cls == record.label:
                    continue  # the ground-truth map was already computed as cue 0
                rank = int(np.flatnonzero(predicted[row_in_batch] == cls)[0]) + 1 if cls in predicted[row_in_batch] else 0
                rows.append({"image": record.name, "label": record.label, "method": "grad-cam", "cue": cls,
                             "is_gt": cls == record.label, "rank": rank, "raw_max": float(heat[j].max()),
                             "hit": metrics.pointing_hit(heat[j], record.boxes, tolerance)
                             if cls == record.label else False})
            w, h = record.size
            centre = np.zeros((h, w))
            centre[h // 2, w // 2] = 1.0
            rows.append({"image": record.name, "label": record.label, "method": "centre", "cue": record.label,
                         "is_gt": True, "rank": 0, "raw_max": np.nan,
                         "hit": metrics.pointing_hit(centre, record.boxes, tolerance)})
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(0, "model", model.name)
    return Run(table, skipped, time.perf_counter() - start)


def localization_examples(model: LoadedModel, records, threshold: float = 0.15, count: int = 5) -> dict:
    """For a figure: the first ``count`` images, their normalised top-1 Grad-CAM maps at image
    size, the ground-truth boxes and the box Task 1 extracts from each map."""
    from .methods import normalize_maps

    chosen = list(records[:count])
    images = [data.load_rgb(r.path) for r in chosen]
    maps, classes, _ = GradCAM(model).attribute_top_k(model.preprocess(images), 1)
    heatmaps, boxes, titles = [], [], []
    for record, raw, cls in zip(chosen, maps, classes[:, 0].tolist()):
        heat = maps_at_image_size(raw, record.size)[0]
        box = metrics.threshold_box(heat, threshold)
        heatmaps.append(normalize_maps(torch.from_numpy(heat)).numpy())
        boxes.append(box)
        right = metrics.localization_correct(cls, box, record.label, record.boxes)
        titles.append(f"{model.class_names[cls]} ({'right' if right else 'wrong'})")
    return {"images": [np.asarray(im) for im in images], "heatmaps": heatmaps,
            "gt_boxes": [r.boxes for r in chosen], "pred_boxes": boxes, "titles": titles}

"""Task 2 (paper Sec. 4.3): the pointing game -- does the maximum of the map cued with the
ground-truth class lie within a tolerance of a ground-truth box; with the top-5 predictions'
raw maxima for the accuracy/recall variant."""

from __future__ import annotations

import time

import numpy as np
import torch

from .. import metrics
from ..maps import resize_to_image
from ..methods import GradCAM
from ..models import LoadedModel
from .common import ImageBatches, TaskRun, autocast, with_model_column


class PointingRun(TaskRun):
    """Task 2's per-image table: one row per image and cued class (``method`` "grad-cam") with
    ``is_gt``, ``rank`` among the predictions (0 = not predicted), the map's ``raw_max`` and
    ``hit``; and one row per image for the centre-point baseline (``method`` "centre")."""


def centre_point_map(size: tuple[int, int]) -> np.ndarray:
    """A map of an image of ``size = (width, height)`` whose only maximum is its centre pixel:
    the centre-point baseline of the pointing game."""
    w, h = size
    centre = np.zeros((h, w))
    centre[h // 2, w // 2] = 1.0
    return centre


def run_pointing_game(
    model: LoadedModel, records, *, tolerance=metrics.POINTING_TOLERANCE, topk=5, precision="fp32", **loading
) -> PointingRun:
    """Task 2 (paper Sec. 4.3): Grad-CAM maps for the ground-truth class and for the
    top-``topk`` predictions. One row per image and cued class: whether it is the ground truth,
    its rank among the predictions (0 = not predicted), the map's raw (unnormalised) maximum, and
    whether the maximum lies within ``tolerance`` px of a ground-truth box. The centre-point
    baseline is a row with ``method = "centre"``. ``loading``: how images are loaded
    (:class:`~gradcam_core.tasks.common.ImageBatches`)."""
    start = time.perf_counter()
    gradcam = GradCAM(model)
    rows = []
    batches = ImageBatches(model, records, f"Task 2 {model.name}", **loading)
    for images, indices in batches:
        with autocast(images.device, precision):
            forward = gradcam.forward(images)
            predicted = forward.logits.detach().topk(topk, dim=1).indices
            labels = torch.tensor([records[i].label for i in indices], device=images.device)
            cues = torch.cat([labels[:, None], predicted], dim=1)  # ground truth first, then top-k
            maps = gradcam.maps(forward, cues)
        predicted = predicted.cpu().numpy()
        for row_in_batch, index in enumerate(indices):
            record = records[index]
            heat = resize_to_image(maps[row_in_batch], record.size)
            ranks = predicted[row_in_batch]
            for j, cls in enumerate(cues[row_in_batch].tolist()):
                if j > 0 and cls == record.label:
                    continue  # the ground-truth map was already computed as cue 0
                rank = int(np.flatnonzero(ranks == cls)[0]) + 1 if cls in ranks else 0
                hit = metrics.pointing_hit(heat[j], record.boxes, tolerance) if cls == record.label else False
                rows.append(
                    {
                        "image": record.name,
                        "label": record.label,
                        "method": "grad-cam",
                        "cue": cls,
                        "is_gt": cls == record.label,
                        "rank": rank,
                        "raw_max": float(heat[j].max()),
                        "hit": hit,
                    }
                )
            rows.append(
                {
                    "image": record.name,
                    "label": record.label,
                    "method": "centre",
                    "cue": record.label,
                    "is_gt": True,
                    "rank": 0,
                    "raw_max": np.nan,
                    "hit": metrics.pointing_hit(centre_point_map(record.size), record.boxes, tolerance),
                }
            )
    return PointingRun(with_model_column(rows, model), batches.skipped, time.perf_counter() - start)

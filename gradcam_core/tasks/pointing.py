"""Task 2 (paper Sec. 4.3): the pointing game -- does the maximum of the map cued with the
ground-truth class lie within a tolerance of a ground-truth box; with the top-5 predictions'
raw maxima for the accuracy/recall variant."""

from __future__ import annotations

import time

import numpy as np
import torch

from .. import metrics
from ..maps import resize_to_image
from ..methods import GradCAM, create
from ..models import LoadedModel
from .common import ImageBatches, TaskRun, autocast, with_model_column
from .localization import SUCCESSOR_METHODS

#: Methods cued with the ground-truth class only, beside Grad-CAM (which is also cued with each
#: of the top-k predictions for the recall variant); c-MWP is the paper's competitor (Sec. 4.3).
GROUND_TRUTH_METHODS = ("c-mwp",)


class PointingRun(TaskRun):
    """Task 2's per-image table: one row per image and cued class (``method`` "grad-cam") with
    ``is_gt``, ``rank`` among the predictions (0 = not predicted), the map's ``raw_max`` and
    ``hit``; one row per image for each ground-truth-cued method of
    :data:`GROUND_TRUTH_METHODS` and for the centre-point baseline (``method`` "centre").
    Every row carries the image's box ``coverage`` (the share of the image inside the cued
    class's boxes) and whether the image is ``difficult`` (coverage below
    :data:`gradcam_core.metrics.DIFFICULT_COVERAGE`)."""


def centre_point_map(size: tuple[int, int]) -> np.ndarray:
    """A map of an image of ``size = (width, height)`` whose only maximum is its centre pixel:
    the centre-point baseline of the pointing game."""
    w, h = size
    centre = np.zeros((h, w))
    centre[h // 2, w // 2] = 1.0
    return centre


def _hit(heat: np.ndarray, record, tolerance: float) -> bool:
    """The pointing game's decision for one map of ``record``, tolerance in original pixels."""
    return metrics.pointing_hit(heat, record.boxes, tolerance, record.pixel_scale)


def run_pointing_game(
    model: LoadedModel,
    records,
    *,
    tolerance=metrics.POINTING_TOLERANCE,
    topk=5,
    methods=GROUND_TRUTH_METHODS,
    methods_on="difficult",
    precision="fp32",
    **loading,
) -> PointingRun:
    """Task 2 (paper Sec. 4.3): Grad-CAM maps for the ground-truth class and for the
    top-``topk`` predictions, and the maps of ``methods`` (:data:`GROUND_TRUTH_METHODS`, or any of
    Grad-CAM's successors :data:`SUCCESSOR_METHODS`) for the ground-truth class (on every image,
    or with ``methods_on="difficult"`` -- the default, as
    they cost a backward pass or more per image -- on the difficult images only). One row per
    image, method and cued class: whether it is the ground
    truth, its rank among the predictions (0 = not predicted), the map's raw (unnormalised)
    maximum, and whether the maximum lies within ``tolerance`` px of a ground-truth box, in the
    original image's pixels (Zhang et al. 2016; the embedded images are 227 px resizes of larger
    originals, so the tolerance is scaled per image and axis by
    :attr:`~gradcam_core.data.ImageRecord.pixel_scale`). The centre-point baseline is a row with
    ``method = "centre"``. ``loading``: how images are loaded
    (:class:`~gradcam_core.tasks.common.ImageBatches`)."""
    known = GROUND_TRUTH_METHODS + SUCCESSOR_METHODS
    unknown = set(methods) - set(known)
    if unknown:
        raise ValueError(f"unknown pointing-game method(s) {sorted(unknown)}; known: {known}")
    if methods_on not in ("all", "difficult"):
        raise ValueError(f"methods_on must be 'all' or 'difficult', got {methods_on!r}")
    start = time.perf_counter()
    gradcam = GradCAM(model)
    others = {name: create(name, model) for name in methods}
    rows = []
    batches = ImageBatches(model, records, f"Task 2 {model.name}", **loading)
    for images, indices in batches:
        labels = torch.tensor([records[i].label for i in indices], device=images.device)
        with autocast(images.device, precision):
            forward = gradcam.forward(images)
            predicted = forward.logits.detach().topk(topk, dim=1).indices
            cues = torch.cat([labels[:, None], predicted], dim=1)  # ground truth first, then top-k
            maps = gradcam.maps(forward, cues)
        coverages = [metrics.box_coverage(records[i].size[::-1], records[i].boxes) for i in indices]
        chosen = [j for j, c in enumerate(coverages) if methods_on == "all" or c < metrics.DIFFICULT_COVERAGE]
        other_maps = {}
        if chosen and others:
            rows_of = torch.tensor(chosen, device=images.device)
            for name, explainer in others.items():
                maps_chosen = explainer.attribute(images[rows_of], labels[rows_of])
                other_maps[name] = dict(zip(chosen, maps_chosen))
        predicted = predicted.cpu().numpy()
        for row_in_batch, index in enumerate(indices):
            record = records[index]
            coverage = coverages[row_in_batch]
            base = {
                "image": record.name,
                "label": record.label,
                "coverage": round(coverage, 4),
                "difficult": coverage < metrics.DIFFICULT_COVERAGE,
            }

            heat = resize_to_image(maps[row_in_batch], record.size)
            ranks = predicted[row_in_batch]
            for j, cls in enumerate(cues[row_in_batch].tolist()):
                if j > 0 and cls == record.label:
                    continue  # the ground-truth map was already computed as cue 0
                rank = int(np.flatnonzero(ranks == cls)[0]) + 1 if cls in ranks else 0
                rows.append(
                    {
                        **base,
                        "method": "grad-cam",
                        "cue": cls,
                        "is_gt": cls == record.label,
                        "rank": rank,
                        "raw_max": float(heat[j].max()),
                        "hit": _hit(heat[j], record, tolerance) if cls == record.label else False,
                    }
                )
            rank = int(np.flatnonzero(ranks == record.label)[0]) + 1 if record.label in ranks else 0
            for name, other in other_maps.items():
                if row_in_batch not in other:
                    continue
                other_heat = resize_to_image(other[row_in_batch], record.size)[0]
                rows.append(
                    {
                        **base,
                        "method": name,
                        "cue": record.label,
                        "is_gt": True,
                        "rank": rank,
                        "raw_max": float(other_heat.max()),
                        "hit": _hit(other_heat, record, tolerance),
                    }
                )
            rows.append(
                {
                    **base,
                    "method": "centre",
                    "cue": record.label,
                    "is_gt": True,
                    "rank": 0,
                    "raw_max": np.nan,
                    "hit": _hit(centre_point_map(record.size), record, tolerance),
                }
            )
    return PointingRun(with_model_column(rows, model), batches.skipped, time.perf_counter() - start)

"""Task 3 (paper Sec. 5.3), faithfulness: the Spearman rank correlation of Grad-CAM, Guided
Backpropagation and Guided Grad-CAM maps with the occlusion map of the ground-truth class."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import data, metrics
from ..maps import normalize_maps, pool
from ..methods import GradCAM, GuidedBackprop, GuidedGradCAM, Occlusion
from ..methods.occlusion import PATCH_SIZE, STRIDE
from ..models import LoadedModel
from .common import ImageBatches, TaskRun

#: Images per batch by default: each costs one forward pass per occlusion window.
BATCH_SIZE = 8
#: The maps compared with the occlusion map, by registry name.
COMPARED_METHODS = {"grad-cam": GradCAM, "guided-backprop": GuidedBackprop, "guided-grad-cam": GuidedGradCAM}


class OcclusionRun(TaskRun):
    """Task 3's per-image table: one row per image and method with its ``spearman`` correlation
    with the occlusion map (NaN where a map is constant)."""


@dataclass
class OcclusionExamples:
    """Figure data: images ([0, 1] pixels at the input size), their normalised maps by method
    (occlusion first) for the ground-truth class, and a title per image."""

    images: list[np.ndarray]
    maps: dict[str, np.ndarray]
    titles: list[str]


def run_occlusion_correlation(
    model: LoadedModel,
    records,
    *,
    patch_size=PATCH_SIZE,
    stride=STRIDE,
    fill=0.0,
    rank_resolution=56,
    occlusion_batch=64,
    **loading,
) -> OcclusionRun:
    """Task 3 (paper Sec. 5.3): for the ground-truth class, the occlusion map and the Grad-CAM,
    Guided Backpropagation and Guided Grad-CAM maps, and the Spearman rank correlation of each
    with the occlusion map at ``rank_resolution`` (:func:`gradcam_core.maps.pool`). One row per
    image and method. Occluded copies are scored ``occlusion_batch`` at a time; ``loading``:
    how images are loaded (:class:`~gradcam_core.tasks.common.ImageBatches`; batches of
    :data:`BATCH_SIZE` unless ``batch_size`` is given)."""
    start = time.perf_counter()
    explainers = {name: method(model) for name, method in COMPARED_METHODS.items()}
    occlusion = Occlusion(model, patch_size=patch_size, stride=stride, fill=fill, batch_size=occlusion_batch)
    rows = []
    batches = ImageBatches(model, records, f"Task 3 {model.name}", **{"batch_size": BATCH_SIZE, **loading})
    for images, indices in batches:
        labels = torch.tensor([records[i].label for i in indices], device=images.device)
        reference = pool(occlusion.attribute(images, labels), rank_resolution).cpu().numpy()
        per_method = {
            method: pool(explainer.attribute(images, labels), rank_resolution).cpu().numpy()
            for method, explainer in explainers.items()
        }
        for row, index in enumerate(indices):  # rows image by image, whatever the batch size
            record = records[index]
            for method, maps in per_method.items():
                spearman = metrics.rank_correlation(maps[row, 0], reference[row, 0])
                rows.append(
                    {
                        "model": model.name,
                        "image": record.name,
                        "label": record.label,
                        "method": method,
                        "spearman": spearman,
                    }
                )
    return OcclusionRun(pd.DataFrame(rows), batches.skipped, time.perf_counter() - start)


def occlusion_examples(
    model: LoadedModel, records, *, patch_size=PATCH_SIZE, stride=STRIDE, fill=0.0, count=4
) -> OcclusionExamples:
    """For a figure: images and their normalised occlusion, Grad-CAM, Guided Backprop and
    Guided Grad-CAM maps for the ground-truth class."""
    chosen = list(records[:count])
    images = [data.load_rgb(r.path) for r in chosen]
    x = model.preprocess(images)
    labels = torch.tensor([r.label for r in chosen], device=x.device)
    explainers = {"occlusion": Occlusion(model, patch_size=patch_size, stride=stride, fill=fill)}
    explainers.update({name: method(model) for name, method in COMPARED_METHODS.items()})
    maps = {
        name: normalize_maps(explainer.attribute(x, labels)[:, 0]).cpu().numpy()
        for name, explainer in explainers.items()
    }
    return OcclusionExamples(
        [np.asarray(model.spec.pixels(im).permute(1, 2, 0)) for im in images],
        maps,
        [model.class_names[r.label] for r in chosen],
    )

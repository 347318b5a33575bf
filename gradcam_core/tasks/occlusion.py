"""Task 3 (paper Sec. 5.3), faithfulness: the Spearman rank correlation of Grad-CAM, Guided
Backpropagation, Guided Grad-CAM, c-MWP and CAM maps with the occlusion map of the
ground-truth class."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from .. import data, metrics
from ..maps import normalize_maps, pool
from ..methods import Occlusion, create
from ..methods.occlusion import PATCH_SIZE, STRIDE
from ..models import LoadedModel
from .common import ImageBatches, MapExamples, TaskRun

#: Images per batch by default: each costs one forward pass per occlusion window.
BATCH_SIZE = 8
#: The maps compared with the occlusion map, by registry name (the paper's five rows; CAM
#: only where the model is global-average-pool + classifier, :attr:`ModelSpec.cam_compatible`).
COMPARED_METHODS = ("grad-cam", "guided-backprop", "guided-grad-cam", "c-mwp", "cam")
#: Resolutions at which maps are ranked: average-pooled to 56 x 56 (:func:`gradcam_core.maps.pool`)
#: and the input's own ("full"). The choice moves the correlations (Guided Backprop most).
RANK_RESOLUTIONS = (56, "full")


def compared_explainers(model: LoadedModel, names=COMPARED_METHODS) -> dict:
    """The explainers of ``names`` for ``model`` (CAM left out where the model cannot have it)."""
    return {name: create(name, model) for name in names if name != "cam" or model.spec.cam_compatible}


def _at_resolution(maps: torch.Tensor, resolution) -> np.ndarray:
    return (maps if resolution == "full" else pool(maps, resolution)).cpu().numpy()


class OcclusionRun(TaskRun):
    """Task 3's per-image table: one row per image, method and ``resolution`` ("56" or "full")
    with its ``spearman`` correlation with the occlusion map (NaN where a map is constant)."""


class OcclusionExamples(MapExamples):
    """Figure data: images ([0, 1] pixels at the input size), their normalised maps by method
    (occlusion first) for the ground-truth class, and a title per image."""


def run_occlusion_correlation(
    model: LoadedModel,
    records,
    *,
    patch_size=PATCH_SIZE,
    stride=STRIDE,
    fill=0.0,
    rank_resolutions=RANK_RESOLUTIONS,
    methods=COMPARED_METHODS,
    occlusion_batch=64,
    **loading,
) -> OcclusionRun:
    """Task 3 (paper Sec. 5.3): for the ground-truth class, the occlusion map and the maps of
    ``methods`` (:data:`COMPARED_METHODS`), and the Spearman rank correlation of each with the
    occlusion map at each of ``rank_resolutions`` (:data:`RANK_RESOLUTIONS`: a side length to
    average-pool to, or "full"). One row per image, method and resolution. Occluded copies are
    scored ``occlusion_batch`` at a time; ``loading``:
    how images are loaded (:class:`~gradcam_core.tasks.common.ImageBatches`; batches of
    :data:`BATCH_SIZE` unless ``batch_size`` is given)."""
    start = time.perf_counter()
    explainers = compared_explainers(model, methods)
    occlusion = Occlusion(model, patch_size=patch_size, stride=stride, fill=fill, batch_size=occlusion_batch)
    rows = []
    batches = ImageBatches(model, records, f"Task 3 {model.name}", **{"batch_size": BATCH_SIZE, **loading})
    for images, indices in batches:
        labels = torch.tensor([records[i].label for i in indices], device=images.device)
        reference = occlusion.attribute(images, labels)
        per_method = {method: explainer.attribute(images, labels) for method, explainer in explainers.items()}
        at = {
            resolution: (
                _at_resolution(reference, resolution),
                {method: _at_resolution(maps, resolution) for method, maps in per_method.items()},
            )
            for resolution in rank_resolutions
        }
        for row, index in enumerate(indices):  # rows image by image, whatever the batch size
            record = records[index]
            for resolution, (occluded, by_method) in at.items():
                for method, maps in by_method.items():
                    rows.append(
                        {
                            "model": model.name,
                            "image": record.name,
                            "label": record.label,
                            "method": method,
                            "resolution": str(resolution),
                            "spearman": metrics.rank_correlation(maps[row, 0], occluded[row, 0]),
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
    explainers.update(compared_explainers(model))
    maps = {
        name: normalize_maps(explainer.attribute(x, labels)[:, 0]).cpu().numpy()
        for name, explainer in explainers.items()
    }
    return OcclusionExamples(
        [np.asarray(model.spec.pixels(im).permute(1, 2, 0)) for im in images],
        maps,
        [model.class_names[r.label] for r in chosen],
    )

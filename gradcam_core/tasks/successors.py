"""Beyond the paper: Grad-CAM beside its successors -- Grad-CAM++ (Chattopadhyay et al. 2018),
HiResCAM (Draelos and Carin 2020), XGrad-CAM (Fu et al. 2020), LayerCAM (Jiang et al. 2021) and
Score-CAM (Wang et al. 2020), all members of the CAM template of
:mod:`gradcam_core.methods.cam` -- on the report's own tests: Task 1's boxes (the paper's 15 %
threshold and a threshold tuned on held-out images), Task 2's pointing game on the difficult
images, the identities the family's algebra predicts, what each map costs, and a figure of
each method's maps on the same images. Deletion and insertion are :mod:`.deletion`, the sanity
checks :mod:`.sanity`; :func:`gradcam_core.tables.successors_table` joins them all.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import data, metrics
from ..maps import for_display, normalize_maps
from ..methods import create
from ..models import LoadedModel
from .common import ImageBatches, MapExamples, TaskRun, with_model_column
from .localization import PAPER_THRESHOLD, SUCCESSOR_METHODS, LocalizationRun, run_localization
from .pointing import PointingRun, run_pointing_game

#: Grad-CAM and its successors, in the order of the chapter's table.
CAM_METHODS = ("grad-cam", *SUCCESSOR_METHODS)
#: The methods of the chapter's figure of maps: the CAM family beside Guided Backprop and Guided
#: Grad-CAM (the pixel-space maps the paper sets beside Grad-CAM).
FIGURE_METHODS = (*CAM_METHODS, "guided-backprop", "guided-grad-cam")
#: The columns that identify a row of each per-image table of the chapter.
LOCALIZATION_KEYS = ["model", "image", "method", "boxing", "threshold"]
POINTING_KEYS = ["model", "image", "method", "cue"]
IDENTITY_KEYS = ["model", "image", "method"]
#: The successors the CAM family's algebra says equal Grad-CAM where the target layer feeds
#: global average pooling and one linear classifier directly (the gradient is then the same at
#: every position: HiResCAM's element-wise product sums to Grad-CAM's map, XGrad-CAM's
#: activation-weighted gradient average is the plain average). Draelos and Carin state it for
#: HiResCAM; XGrad-CAM follows from Fu et al.'s weight equation.
GRADCAM_IDENTICAL_ON_GAP_LINEAR = ("hirescam", "xgrad-cam")


def ends_in_gap_linear(model: LoadedModel) -> bool:
    """Whether the model's target layer feeds global average pooling and one linear (fully
    connected) classifier directly -- the architecture of Draelos and Carin's equivalence
    (MobileNet, ResNet, GoogLeNet; not SqueezeNet, whose classifier is a 1x1 convolution followed
    by a ReLU before the pooling)."""
    return bool(model.spec.cam_compatible) and isinstance(model.classifier, nn.Linear)


def difficult_records(records) -> list:
    """The records whose ground-truth boxes cover less than
    :data:`gradcam_core.metrics.DIFFICULT_COVERAGE` of the image: Task 2's difficult subset."""
    return [r for r in records if metrics.box_coverage(r.size[::-1], r.boxes) < metrics.DIFFICULT_COVERAGE]


def run_successor_localization(
    model: LoadedModel,
    records,
    *,
    thresholds=(PAPER_THRESHOLD,),
    score_cam_images: int | None = None,
    **loading,
) -> LocalizationRun:
    """Task 1's localisation (:func:`~gradcam_core.tasks.localization.run_localization`, top-1
    class only) for Grad-CAM and each successor of :data:`CAM_METHODS`, boxes at every
    threshold of ``thresholds``; Score-CAM on the first ``score_cam_images`` images only (one
    forward pass per channel of the target layer)."""
    return run_localization(
        model,
        records,
        thresholds=thresholds,
        topk=1,
        methods=CAM_METHODS,
        image_space_images=score_cam_images,
        image_space_topk=1,
        grabcut_images=0,
        grabcut_methods=(),
        **loading,
    )


def run_successor_pointing(
    model: LoadedModel, records, *, score_cam_images: int | None = None, **loading
) -> PointingRun:
    """Task 2's pointing game on the difficult images of ``records`` (:func:`difficult_records`)
    for Grad-CAM (cued with the ground truth and the top-5 predictions, as in Task 2) and each
    successor (cued with the ground truth); Score-CAM on the first ``score_cam_images`` of those
    images only."""
    difficult = difficult_records(records)
    cheap = [name for name in SUCCESSOR_METHODS if name != "score-cam"]
    run = run_pointing_game(model, difficult, methods=cheap, methods_on="all", **loading)
    chosen = difficult if score_cam_images is None else difficult[:score_cam_images]
    if not chosen:  # no difficult image, or no Score-CAM asked for
        return run
    scored = run_pointing_game(model, chosen, methods=("score-cam",), methods_on="all", **loading)
    table = pd.concat([run.table, scored.table[scored.table["method"] == "score-cam"]], ignore_index=True)
    return PointingRun(table, sorted(set(run.skipped) | set(scored.skipped)), run.seconds + scored.seconds)


def run_gradcam_identities(model: LoadedModel, records, *, methods=CAM_METHODS[1:], **loading) -> TaskRun:
    """For each image and successor of ``methods`` (Score-CAM excepted: its weights are not
    gradients), the largest absolute difference between its normalised top-1 map and Grad-CAM's
    (:func:`gradcam_core.maps.normalize_maps`), both maps upsampled to the input as the method
    gives them (bilinear, so equal maps stay equal); columns ``model``, ``image``, ``method``,
    ``max_abs_difference`` and whether the model's target layer feeds global average pooling and
    one linear classifier directly (``gap_linear``, :func:`ends_in_gap_linear`)."""
    start = time.perf_counter()
    gradcam = create("grad-cam", model)
    others = {name: create(name, model) for name in methods if name not in ("grad-cam", "score-cam")}
    rows = []
    batches = ImageBatches(model, records, f"Identities {model.name}", **loading)
    for images, indices in batches:
        forward = gradcam.forward(images)
        classes = forward.logits.detach().argmax(dim=1, keepdim=True)
        reference = normalize_maps(gradcam.maps(forward, classes))
        for name, explainer in others.items():
            difference = (normalize_maps(explainer.maps(forward, classes)) - reference).abs()
            largest = difference.flatten(1).max(dim=1).values.cpu().numpy()
            rows.extend(
                {
                    "image": records[index].name,
                    "method": name,
                    "max_abs_difference": float(value),
                    "gap_linear": ends_in_gap_linear(model),
                }
                for index, value in zip(indices, largest)
            )
    return TaskRun(with_model_column(rows, model), batches.skipped, time.perf_counter() - start)


def method_costs(
    model: LoadedModel,
    records,
    methods,
    *,
    images: int = 4,
    method_images: dict | None = None,
    settings: dict | None = None,
    repeats: int = 2,
) -> pd.DataFrame:
    """What each method's top-1 maps cost, as a multiple of one forward pass of the same images,
    measured in one run on this machine: for each method of ``methods`` (with its ``settings``,
    name -> keyword arguments of :func:`gradcam_core.methods.create`) the best of ``repeats``
    timings of its maps for the first ``images`` images (``method_images`` ``{name: count}``:
    fewer for a costly method, e.g. Score-CAM, timed once), divided by the best of ``repeats``
    plain forward passes (no gradient) of the same images. Columns ``model``, ``method``,
    ``images``, ``seconds_per_image``, ``forward_passes``."""
    settings, method_images = settings or {}, method_images or {}
    all_images = model.preprocess([data.load_rgb(r.path) for r in records[:images]])

    def best(call, repeats=repeats) -> float:
        times = []
        for _ in range(repeats):
            tick = time.perf_counter()
            call()
            times.append(time.perf_counter() - tick)
        return min(times)

    rows = []
    for name in methods:
        count = min(images, method_images.get(name, images))
        x = all_images[:count]

        def forward(x=x):
            with torch.no_grad():
                return model(x)

        forward_seconds = best(forward)
        classes = forward().argmax(dim=1)
        explainer = create(name, model, **settings.get(name, {}))
        times = 1 if name in method_images else repeats
        seconds = best(lambda e=explainer, x=x, classes=classes: e.attribute(x, classes), times)
        rows.append(
            {
                "method": name,
                "images": count,
                "seconds_per_image": seconds / count,
                "forward_passes": seconds / forward_seconds,
            }
        )
    return with_model_column(rows, model)


def successor_examples(
    model: LoadedModel, records, methods, *, count: int = 3, settings: dict | None = None
) -> MapExamples:
    """For a figure: the first ``count`` images and each method's map of the model's top-1 class
    as figures draw maps (:func:`gradcam_core.maps.for_display`: [0, 1], or [-1, 1] with the
    sign kept for signed attributions), titled with that class."""
    settings = settings or {}
    chosen = list(records[:count])
    images = [data.load_rgb(r.path) for r in chosen]
    x = model.preprocess(images)
    with torch.no_grad():
        classes = model(x).argmax(dim=1)
    maps = {}
    for name in methods:
        explainer = create(name, model, **settings.get(name, {}))
        maps[name] = for_display(explainer.attribute(x, classes)[:, 0]).cpu().numpy()
    return MapExamples(
        [np.asarray(model.spec.pixels(im).permute(1, 2, 0)) for im in images],
        maps,
        [model.class_names[int(c)] for c in classes],
    )


def examples_of_models(examples: dict[str, MapExamples]) -> MapExamples:
    """The :func:`successor_examples` of several models (name -> examples, the same methods) as
    one figure's rows, each row titled with its model and class."""
    parts = list(examples.items())
    methods = list(parts[0][1].maps)
    return MapExamples(
        [image for _, part in parts for image in part.images],
        {m: np.concatenate([part.maps[m] for _, part in parts]) for m in methods},
        [f"{name}:\n{title}" for name, part in parts for title in part.titles],
    )
